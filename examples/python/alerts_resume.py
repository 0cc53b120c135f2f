#!/usr/bin/python3
"""alerts_resume.py: a resumable consumer of funneld's handoff alerts.

What a sales integration runs: every handoff is handled at least once, even
across restarts of the consumer, reconnects and a subscriber too slow for
funneld's alerts_hwm; repeats are dropped by their alert_seq.

    protoc --python_out=DIR proto/funnel.proto      # makes DIR/funnel_pb2.py
    PYTHONPATH=DIR examples/python/alerts_resume.py --state handoff.seq \\
        [--alerts tcp://127.0.0.1:7702] [--query tcp://127.0.0.1:7703] \\
        [--topic handoff]... [--count N] [--idle SECS]
        [--server-key server.pub --client-key sales-tool.key]

How: subscribe first, then read the stored alerts after the last handled
number (AlertsSince, page by page) up to the live sequence, then follow the
live stream, dropping what was handled already; whenever a live alert's
number jumps, fetch the alerts in between from the store (with topic
filters a jump may hide nothing: the store says). The last handled number
is kept in the --state file, written atomically (a temporary file, fsync,
rename) after every alert handled.

handle() prints one JSON line per alert; replace it with the call into your
CRM. Exit 0 after --count alerts, or after --idle seconds without one (0:
run until interrupted).

Needs python3-zmq and python3-protobuf, and funnel_pb2 generated from
proto/funnel.proto (package funnel.v1).
"""

import argparse
import json
import os
import sys
import time
import uuid

import zmq

import funnel_example as fx
import funnel_pb2 as pb


def handle(alert):
    """The integration's work for one alert: here, one JSON line."""
    print(json.dumps({"alert_seq": alert.alert_seq, "topic": alert.topic,
                      "lead": alert.lead_id, "at_ms": alert.at_ms,
                      "reasons": list(alert.reasons)}), flush=True)


class Consumer:
    def __init__(self, ctx, alerts_ep, query_ep, topics, state_path, curve):
        self.topics = topics
        self.state_path = state_path
        self.seq = self.load()
        self.handled = 0
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        curve.apply(self.sub)
        for t in topics or [""]:
            self.sub.setsockopt(zmq.SUBSCRIBE, t.encode())
        self.sub.connect(alerts_ep)          # subscribed before the catch-up
        self.query = ctx.socket(zmq.DEALER)
        self.query.setsockopt(zmq.LINGER, 0)
        curve.apply(self.query)
        self.query.connect(query_ep)

    # -- the state file: the last alert_seq handled ------------------------
    def load(self):
        try:
            with open(self.state_path) as f:
                return int(f.read().strip())
        except FileNotFoundError:
            return None                      # first run: from the live sequence

    def save(self):
        tmp = "%s.tmp.%d" % (self.state_path, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % self.seq)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    # -- funneld's query socket ----------------------------------------------
    def ask(self, req, timeout=10.0):
        req.request_id = uuid.uuid4().hex
        self.query.send(req.SerializeToString())
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.query.poll(int(left * 1000) + 1):
                raise RuntimeError("no reply from funneld's query endpoint")
            rep = pb.QueryReply()
            rep.ParseFromString(self.query.recv())
            if rep.request_id != req.request_id:
                continue                     # a late reply to an earlier request
            if rep.error:
                raise RuntimeError("funneld: " + rep.error)
            return rep

    def live_seq(self):
        req = pb.QueryRequest()
        req.stats.SetInParent()
        return self.ask(req).stats.alert_seq

    def catch_up(self, upto=None):
        """Handle the stored alerts after self.seq (up to upto, if given)."""
        while True:
            req = pb.QueryRequest()
            req.alerts_since.seq = self.seq
            req.alerts_since.topics.extend(self.topics)
            req.alerts_since.limit = 1000
            page = self.ask(req).alerts_since
            if page.first_seq > self.seq + 1:
                print("alerts %d..%d are no longer stored (alerts_retention)"
                      % (self.seq + 1, page.first_seq - 1), file=sys.stderr)
            for a in page.alerts:
                if upto is not None and a.alert_seq > upto:
                    return
                self.deliver(a)
            nxt = page.next_seq if upto is None else min(page.next_seq, upto)
            self.seq = max(self.seq, nxt)    # the rest did not match the topics
            if not page.more or (upto is not None and self.seq >= upto):
                return

    def deliver(self, a):
        if a.alert_seq == 0:                 # not stored: no number to keep
            handle(a)
            return
        if a.alert_seq <= self.seq:
            return                           # handled already (a repeat)
        handle(a)
        self.handled += 1
        self.seq = a.alert_seq
        self.save()

    def run(self, count=0, idle=0.0):
        if self.seq is None:
            self.seq = self.live_seq()
            self.save()
        self.catch_up()
        last = time.monotonic()
        while count == 0 or self.handled < count:
            if idle and time.monotonic() - last > idle:
                return
            if not self.sub.poll(1000):
                self.catch_up()              # quiet: anything missed?
                continue
            topic, body = self.sub.recv_multipart()
            a = pb.Alert()
            a.ParseFromString(body)
            if a.alert_seq > self.seq + 1:
                self.catch_up(upto=a.alert_seq - 1)   # a gap: from the store
            self.deliver(a)
            last = time.monotonic()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", default="tcp://127.0.0.1:7702")
    ap.add_argument("--query", default="tcp://127.0.0.1:7703")
    ap.add_argument("--topic", action="append", default=None,
                    help="topic prefix (repeatable; default: handoff)")
    ap.add_argument("--state", required=True, help="file keeping the last alert_seq handled")
    ap.add_argument("--count", type=int, default=0, help="exit after N alerts")
    ap.add_argument("--idle", type=float, default=0.0,
                    help="exit after SECS without an alert (0: never)")
    ap.add_argument("--server-key", metavar="FILE",
                    default=os.environ.get("FUNNELCTL_SERVER_KEY"),
                    help="CURVE: funneld's public key file (NAME.pub of funnelctl keygen)")
    ap.add_argument("--client-key", metavar="FILE",
                    default=os.environ.get("FUNNELCTL_CLIENT_KEY"),
                    help="CURVE: this client's secret key file (NAME.key)")
    args = ap.parse_args()
    curve = fx.Curve(args.server_key, args.client_key)
    ctx = zmq.Context()
    c = Consumer(ctx, args.alerts, args.query, args.topic or ["handoff"], args.state, curve)
    try:
        c.run(args.count, args.idle)
    except KeyboardInterrupt:
        pass
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    fx.run(main)
