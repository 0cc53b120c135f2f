#!/usr/bin/python3
"""nats_publish.py: publish events into a funneld cluster through NATS JetStream.

    examples/python/nats_publish.py [--nats nats://127.0.0.1:4222]
        [--cluster-partitions 32] [--batch-size N] [FILE]

Reads NDJSON events (FILE, or stdin; the format of `funnelctl publish`,
parsed by publish.py), groups them by cluster partition and publishes each
group as one EventBatch on subject funnel.in.<partition>, waiting for the
stream's acknowledgement of each message. The partition of an event is

    FNV-1a 32 (offset basis 2166136261, prime 16777619) of the UTF-8 bytes
    of its lead id, mod cluster_partitions

(partition_of below): funneld rejects an event that arrives on another
partition's subject. The funneld instance owning the partition consumes the
message and acknowledges it to JetStream once its events are durable; a
message published twice is harmless (funneld recognises event ids).

Debian packages no Python NATS client: this speaks the NATS text protocol
(CONNECT, SUB, PUB, MSG/HMSG) on a socket, enough for a JetStream publish.
One JSON line per message on stdout: {"subject", "events", "stream", "seq"}.
Exit 0 when every message was stored, 2 on bad input or usage, 3 when NATS
or the stream is not there.
"""

import json
import socket
import sys
import urllib.parse

import funnel_example as fx
import publish


def partition_of(lead_id, n):
    h = 2166136261
    for b in lead_id.encode("utf-8"):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h % n


class Nats:
    """A NATS connection that does request-reply, nothing more."""

    def __init__(self, url, timeout):
        u = urllib.parse.urlparse(url)
        if u.scheme != "nats" or not u.hostname:
            fx.fail("--nats wants nats://HOST:PORT, not %r" % url)
        try:
            self.sock = socket.create_connection((u.hostname, u.port or 4222), timeout)
        except OSError as e:
            fx.fail("cannot connect to NATS at %s: %s" % (url, e.strerror or e), 3)
        self.buf = b""
        self.line()  # INFO
        connect = {"verbose": False, "headers": True, "no_responders": True,
                   "name": "nats_publish.py"}
        if u.username:
            connect.update(user=urllib.parse.unquote(u.username),
                           **{"pass": urllib.parse.unquote(u.password or "")})
        self.sock.sendall(b"CONNECT %s\r\nSUB _INBOX.py.* 1\r\n" % json.dumps(connect).encode())
        self.n = 0

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                fx.fail("NATS closed the connection", 3)
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def payload(self, n):
        while len(self.buf) < n + 2:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, data):
        """Publish data with a reply subject; return (headers, payload) of the reply."""
        self.n += 1
        reply = b"_INBOX.py.%d" % self.n
        self.sock.sendall(b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), reply, len(data), data))
        while True:
            parts = self.line().split()
            if parts and parts[0] == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif parts and parts[0] == b"-ERR":
                fx.fail("NATS: %s" % b" ".join(parts[1:]).decode(), 3)
            elif parts and parts[0] in (b"MSG", b"HMSG"):
                body = self.payload(int(parts[-1]))
                hlen = int(parts[-2]) if parts[0] == b"HMSG" else 0
                if parts[1] == reply:
                    return body[:hlen], body[hlen:]


def main():
    ap = fx.parser(__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", default="-", metavar="FILE",
                    help="NDJSON events (default: stdin)")
    ap.add_argument("--nats", default="nats://127.0.0.1:4222", metavar="URL")
    ap.add_argument("--cluster-partitions", type=int, default=32, metavar="P",
                    help="funneld's cluster_partitions (default 32)")
    ap.add_argument("--batch-size", type=int, default=1000, metavar="N")
    args = ap.parse_args()
    fx.positive(ap, "--cluster-partitions", args.cluster_partitions)
    fx.positive(ap, "--batch-size", args.batch_size)
    pb = fx.load_pb(args.proto)
    if args.file == "-":
        events = publish.read_events(pb, sys.stdin, "stdin")
    else:
        try:
            with open(args.file) as f:
                events = publish.read_events(pb, f, args.file)
        except OSError as e:
            fx.fail("%s: %s" % (args.file, e.strerror))

    groups = {}
    for ev in events:
        groups.setdefault(partition_of(ev.lead_id, args.cluster_partitions), []).append(ev)
    nats = Nats(args.nats, args.timeout)
    for p in sorted(groups):
        evs = groups[p]
        for i in range(0, len(evs), args.batch_size):
            batch = pb.EventBatch()
            batch.events.extend(evs[i:i + args.batch_size])
            subject = "funnel.in.%d" % p
            headers, reply = nats.request(subject, batch.SerializeToString())
            if b" 503" in headers.split(b"\r\n")[0]:
                fx.fail("no stream captures %s: start funneld with `nats` once" % subject, 3)
            ack = json.loads(reply)
            if "error" in ack:
                fx.fail("JetStream refused the message on %s: %s" % (subject, ack["error"]), 3)
            print(json.dumps({"subject": subject, "events": len(batch.events),
                              "stream": ack["stream"], "seq": ack["seq"]}), flush=True)
    return 0


if __name__ == "__main__":
    fx.run(main)
