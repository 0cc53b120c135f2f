"""NATS for the end-to-end tests: a real nats-server with JetStream on a
loopback port in a temporary directory, and a minimal client of the NATS
text protocol (CONNECT, SUB, PUB, MSG/HMSG, PING/PONG) on a plain socket:
enough to publish into JetStream and to call the JetStream API
($JS.API.*), independent of the C client funneld links.

Synchronisation: a server is ready when it accepts a connection and
answers PING; a request waits for its reply with a deadline."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

import pytest

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
READY_TIMEOUT = 15.0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsError(Exception):
    pass


class NatsClient:
    """One connection; request() is a blocking request-reply."""

    def __init__(self, port, timeout=READY_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self._line()  # INFO {...}
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"name":"funneld-tests"}\r\nPING\r\n')
        while True:
            line = self._line()
            if line == b"PONG":
                break
            if line.startswith(b"-ERR"):
                raise NatsError(line.decode())
        self.inbox = "_INBOX.t%s" % uuid.uuid4().hex
        self.sock.sendall(("SUB %s.* 1\r\n" % self.inbox).encode())
        self.n = 0

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise NatsError("connection closed by the server")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload=b"", timeout=10.0):
        """Publish payload on subject with a reply inbox; return the reply's
        payload (bytes) and headers (bytes, b"" without)."""
        self.n += 1
        reply = "%s.%d" % (self.inbox, self.n)
        self.sock.settimeout(timeout)
        self.sock.sendall(b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), reply.encode(),
                                                       len(payload), payload))
        while True:
            parts = self._line().split()
            if not parts:
                continue
            if parts[0] == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif parts[0] == b"MSG":
                data = self._bytes(int(parts[-1]))
                if parts[1].decode() == reply:
                    return data, b""
            elif parts[0] == b"HMSG":
                total = self._bytes(int(parts[-1]))
                hlen = int(parts[-2])
                if parts[1].decode() == reply:
                    return total[hlen:], total[:hlen]
            elif parts[0] == b"-ERR":
                raise NatsError(b" ".join(parts).decode())

    def subscribe(self, subject):
        """Subscribe (sid 2+); active once sync() returned."""
        self.sids = getattr(self, "sids", 1) + 1
        self.sock.sendall(("SUB %s %d\r\n" % (subject, self.sids)).encode())

    def sync(self, timeout=10.0):
        self.sock.settimeout(timeout)
        self.sock.sendall(b"PING\r\n")
        self.queued = getattr(self, "queued", [])
        while True:
            m = self._next()
            if m == "PONG":
                return
            if m:
                self.queued.append(m)

    def _next(self):
        """One protocol item: "PONG", a (subject, payload) message, or None."""
        parts = self._line().split()
        if not parts:
            return None
        if parts[0] == b"PING":
            self.sock.sendall(b"PONG\r\n")
        elif parts[0] == b"PONG":
            return "PONG"
        elif parts[0] == b"MSG":
            return parts[1].decode(), self._bytes(int(parts[-1]))
        elif parts[0] == b"HMSG":
            total = self._bytes(int(parts[-1]))
            return parts[1].decode(), total[int(parts[-2]):]
        elif parts[0] == b"-ERR":
            raise NatsError(b" ".join(parts).decode())
        return None

    def next_msg(self, timeout):
        """The next (subject, payload) on a subscription, or None on timeout."""
        self.queued = getattr(self, "queued", [])
        if self.queued:
            return self.queued.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                m = self._next()
            except socket.timeout:
                return None
            if m and m != "PONG":
                return m

    def js_publish(self, subject, payload, timeout=10.0):
        """Publish into JetStream; returns the PubAck ({"stream", "seq"})."""
        data, headers = self.request(subject, payload, timeout)
        if b"503" in headers:
            raise NatsError("no stream captures %s" % subject)
        ack = json.loads(data)
        if "error" in ack:
            raise NatsError(ack["error"])
        return ack

    def js_api(self, what, body=None):
        data, headers = self.request("$JS.API." + what,
                                     json.dumps(body).encode() if body else b"")
        return json.loads(data) if data else {}


class NatsServer:
    """nats-server -js on 127.0.0.1:port, its store in directory."""

    def __init__(self, directory, port=None, name="nats", cluster=None):
        self.dir = str(directory)
        # A port of its own choosing may be taken by another test between
        # free_port() and the server's bind: then start() takes another.
        self.chosen = port is None and cluster is None
        self.started = False  # once up, a restart keeps its port
        self.port = port or free_port()
        self.name = name
        self.proc = None
        self.logs = []
        # (cluster port, [route URLs], cluster name): one of a cluster.
        self.cluster = cluster

    @property
    def url(self):
        if not self.started:
            self.chosen = False  # handed out before the start: the port stays
        return "nats://127.0.0.1:%d" % self.port

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        log = os.path.join(self.dir, "%s.%d.log" % (self.name, len(self.logs)))
        self.logs.append(log)
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-js", "-sd", os.path.join(self.dir, "store"), "-a", "127.0.0.1",
             "-p", str(self.port), "-n", self.name] + self._cluster_args(),
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                if (self.chosen and not self.started and len(self.logs) <= 3 and
                        b"address already in use" in open(log, "rb").read()):
                    self._log.close()
                    self.port = free_port()
                    return self.start()
                pytest.fail("nats-server exited with %d:\n%s" % (self.proc.returncode,
                                                                 self.log()))
            try:
                c = NatsClient(self.port, timeout=1.0)
                c.close()
                self.started = True
                return self
            except (OSError, NatsError):
                if time.monotonic() >= deadline:
                    pytest.fail("nats-server not ready within %.0fs:\n%s"
                                % (READY_TIMEOUT, self.log()))
                time.sleep(0.05)

    def _cluster_args(self):
        if not self.cluster:
            return []
        cport, routes, cname = self.cluster
        return ["--cluster", "nats://127.0.0.1:%d" % cport, "--cluster_name", cname,
                "--routes", ",".join(routes)]

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()
        self.proc = None

    def log(self):
        return "\n".join(open(p, errors="replace").read()[-4000:] for p in self.logs)

    def client(self):
        return NatsClient(self.port)


@pytest.fixture
def nats_server(tmp_path):
    """A running nats-server with JetStream (stopped at teardown)."""
    s = NatsServer(tmp_path / "nats").start()
    yield s
    s.stop()


class NatsCluster:
    """n nats-servers with JetStream routed into one cluster on loopback,
    each with its own store under directory; ready once JetStream answers
    with a meta leader (so that a replicated stream can be created)."""

    def __init__(self, directory, n=3):
        cports = [free_port() for _ in range(n)]
        routes = ["nats://127.0.0.1:%d" % p for p in cports]
        self.servers = [NatsServer(os.path.join(str(directory), "n%d" % i), name="n%d" % i,
                                   cluster=(cports[i], [r for j, r in enumerate(routes)
                                                        if j != i], "funnel-test"))
                        for i in range(n)]

    @property
    def urls(self):
        return ",".join(s.url for s in self.servers)

    def start(self):
        for s in self.servers:
            s.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                c = self.servers[0].client()
                try:
                    info = c.js_api("INFO")
                finally:
                    c.close()
                if "error" not in info and info.get("api") is not None:
                    meta = info.get("meta_cluster") or info.get("cluster") or {}
                    if meta.get("leader") or "meta_cluster" not in info:
                        return self
            except (OSError, NatsError, ValueError):
                pass
            if time.monotonic() >= deadline:
                pytest.fail("JetStream cluster not ready within 60 s:\n%s"
                            % "\n".join(s.log() for s in self.servers))
            time.sleep(0.2)

    def by_name(self, name):
        return next(s for s in self.servers if s.name == name)

    def stop(self):
        for s in self.servers:
            s.stop()


def partition_of(lead_id, n):
    """FNV-1a 32 of the lead id's UTF-8 bytes, mod n: funneld's rule."""
    h = 2166136261
    for b in lead_id.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h % n
