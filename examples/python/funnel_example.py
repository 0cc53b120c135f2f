"""funnel_example.py: what the Python client examples of funneld share.

- funnel_pb2, generated from proto/funnel.proto by protoc (Debian's
  protobuf-compiler) into a scratch directory at start, removed at exit: the
  .proto file is the contract, and the code is always the one it describes;
- the options every example takes (--proto, --server-key, --client-key,
  --timeout), and CURVE on a socket from the key files that
  `funnelctl keygen NAME` writes (NAME.pub, NAME.key: a `#` comment line,
  then the 40-character Z85 key);
- a socket monitor that turns a refused CURVE handshake into a clear error
  instead of a silent wait.

Needs python3-zmq and python3-protobuf (Debian 12). Exit codes of the
examples: 0 done, 1 funneld answered with an error (or: not found),
2 bad usage or input, 3 no answer from funneld, or its CURVE refused us.
"""

import argparse
import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import zmq
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO = os.path.join(HERE, "..", "..", "proto", "funnel.proto")


class Failure(Exception):
    """An error for the user: the message, and the exit code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def fail(message, code=2):
    raise Failure(message, code)


def run(main):
    """Run main(), turning a Failure into its message on stderr and its exit
    code, and Ctrl-C into exit 130 without a traceback."""
    prog = os.path.basename(sys.argv[0])
    try:
        sys.exit(main() or 0)
    except Failure as e:
        print("%s: %s" % (prog, e), file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        sys.exit(130)


# -- the generated code ------------------------------------------------------

def load_pb(proto=None):
    """Generate funnel_pb2 from the .proto file (default: the repository's
    proto/funnel.proto, or $FUNNEL_PROTO) into a scratch directory and
    import it. The directory is removed when the program exits."""
    proto = os.path.abspath(proto or os.environ.get("FUNNEL_PROTO") or DEFAULT_PROTO)
    if not os.path.isfile(proto):
        fail("no funnel.proto at %s: pass --proto FILE (funneld's proto/funnel.proto)"
             % proto)
    protoc = shutil.which("protoc")
    if protoc is None:
        fail("protoc not found: install it (apt-get install protobuf-compiler)")
    out = tempfile.mkdtemp(prefix="funnel_pb2-")
    atexit.register(shutil.rmtree, out, True)
    p = subprocess.run([protoc, "-I", os.path.dirname(proto), "--python_out", out,
                        os.path.basename(proto)], capture_output=True, text=True)
    if p.returncode != 0:
        fail("protoc failed on %s:\n%s" % (proto, p.stderr.strip()))
    module = os.path.splitext(os.path.basename(proto))[0] + "_pb2"
    sys.path.insert(0, out)
    return importlib.import_module(module)


# -- options -----------------------------------------------------------------

def parser(description, epilog=None):
    """An ArgumentParser with the options every example takes."""
    ap = argparse.ArgumentParser(description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proto", metavar="FILE",
                    help="funneld's funnel.proto (default: $FUNNEL_PROTO, or "
                         "proto/funnel.proto of the source tree these examples are in)")
    ap.add_argument("--server-key", metavar="FILE",
                    default=os.environ.get("FUNNELCTL_SERVER_KEY"),
                    help="CURVE: funneld's public key file (NAME.pub of funnelctl keygen; "
                         "default $FUNNELCTL_SERVER_KEY)")
    ap.add_argument("--client-key", metavar="FILE",
                    default=os.environ.get("FUNNELCTL_CLIENT_KEY"),
                    help="CURVE: this client's secret key file (NAME.key; its public key "
                         "must be in funneld's curve_clients_file; default "
                         "$FUNNELCTL_CLIENT_KEY)")
    ap.add_argument("--timeout", type=float, default=5.0, metavar="SECS",
                    help="how long to wait for funneld's answer (default 5)")
    return ap


def positive(ap, name, value):
    if value <= 0:
        ap.error("%s must be positive" % name)


# -- CURVE ---------------------------------------------------------------------

def read_key(path, secret):
    """The Z85 key (bytes) of a key file as funnelctl keygen writes it.
    A secret key file must be readable by its owner only, as funneld and
    funnelctl require."""
    try:
        with open(path, "rb") as f:
            if secret and os.fstat(f.fileno()).st_mode & 0o077:
                fail("%s: a secret key must be readable by its owner only (mode %03o); "
                     "chmod 600 %s" % (path, os.fstat(f.fileno()).st_mode & 0o777, path))
            lines = f.read().splitlines()
    except OSError as e:
        fail("%s: %s" % (path, e.strerror))
    for line in lines:
        words = line.split()
        if not words:
            continue
        w = words[0]
        if len(w) == 40:
            try:
                z85.decode(w)
                return w
            except Exception:       # KeyError, struct.error: not Z85
                pass
        if w.startswith(b"#"):
            continue            # a comment (a key may begin with "#": tried first)
        break
    fail("%s: not a CURVE key file (a 40-character Z85 key, as funnelctl keygen "
         "writes)" % path)


class Curve:
    """The client's CURVE keys, or plain (both files None)."""

    def __init__(self, server_key_file, client_key_file):
        self.on = bool(server_key_file or client_key_file)
        if not self.on:
            return
        if not (server_key_file and client_key_file):
            fail("CURVE needs both --server-key (funneld's NAME.pub) and --client-key "
                 "(this client's NAME.key)")
        self.server = read_key(server_key_file, False)
        self.secret = read_key(client_key_file, True)
        self.public = zmq.curve_public(self.secret)

    def apply(self, sock):
        """Make sock a CURVE client (before connect)."""
        if self.on:
            sock.curve_serverkey = self.server
            sock.curve_publickey = self.public
            sock.curve_secretkey = self.secret


HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class Client:
    """One socket to one funneld endpoint, with a monitor on its handshakes.

    wait(timeout) returns True when the socket has a message, False on
    timeout, and raises a Failure (exit 3) as soon as the handshake fails:
    funneld's ZAP handler refused our key (not in its clients file), we
    speak plain to a CURVE server, or it closed our CURVE handshake (another
    server key, or CURVE off there). libzmq would retry such a connection
    forever; none of them mends itself."""

    def __init__(self, ctx, kind, endpoint, curve, what):
        self.curve = curve
        self.what = what
        self.endpoint = endpoint
        self.sock = ctx.socket(kind)
        self.sock.linger = 0
        curve.apply(self.sock)
        self.mon = self.sock.get_monitor_socket(HANDSHAKE_EVENTS)
        self.connected = False
        try:
            self.sock.connect(endpoint)
        except zmq.ZMQError as e:
            fail("cannot connect to %r: %s" % (endpoint, e))
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self.poller.register(self.mon, zmq.POLLIN)

    def close(self):
        self.sock.disable_monitor()
        self.mon.close(0)
        self.sock.close(0)

    def _handshake_event(self):
        ev = recv_monitor_message(self.mon)["event"]
        if ev == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.connected = True
            return
        if ev == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            fail("funneld at %s refused this client's CURVE key %s: it is not in "
                 "funneld's curve_clients_file" % (self.endpoint,
                                                  self.curve.public.decode()), 3)
        if self.curve.on:
            # funneld closed the connection at the handshake: it could not
            # read our HELLO (another server key) or has CURVE off.
            fail("the CURVE handshake with %s failed: is --server-key funneld's public "
                 "key (its NAME.pub), and is CURVE on there?" % self.endpoint, 3)
        fail("the handshake with %s failed: funneld has CURVE on there; pass "
             "--server-key and --client-key" % self.endpoint, 3)

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready = dict(self.poller.poll(int(left * 1000) + 1))
            if self.mon in ready:
                self._handshake_event()
            if self.sock in ready:
                return True

    def timeout_hint(self):
        if self.connected:
            return ""
        if self.curve.on:
            return (" (no connection was established: is funneld running there, and is "
                    "--server-key its public key?)")
        return " (no connection was established: is funneld running there?)"


def query(client, pb, req, timeout):
    """Send a QueryRequest and return its QueryReply (a Failure on error or
    timeout). Replies to earlier requests (a timed-out one) are skipped by
    request_id."""
    req.request_id = os.urandom(8).hex()
    client.sock.send(req.SerializeToString())
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not client.wait(left):
            fail("no reply from funneld's query endpoint %s within %gs%s"
                 % (client.endpoint, timeout, client.timeout_hint()), 3)
        rep = pb.QueryReply()
        try:
            rep.ParseFromString(client.sock.recv())
        except Exception:
            fail("an undecodable QueryReply from %s: is it funneld's query endpoint?"
                 % client.endpoint, 3)
        if rep.request_id != req.request_id:
            continue
        if rep.error:
            fail("funneld: " + rep.error, 1)
        return rep
