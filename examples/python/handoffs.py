#!/usr/bin/python3
"""handoffs.py: print funneld's handoff alerts as they come.

    examples/python/handoffs.py [--alerts tcp://127.0.0.1:7702]
        [--topic handoff]... [--count N] [--idle SECS]
        [--server-key server.pub --client-key sales-tool.key]

Subscribes to the alert topic `handoff` (a lead qualified and is handed to
sales; --topic for others: "stage", "friction." for every friction point)
and prints one JSON line per alert:

    {"alert_seq": 42, "topic": "handoff", "lead": "L-1001", "at_ms": ...,
     "stage": "decision", "reasons": ["engagement >= 50"], "persona": "...",
     "fit": 10.0, "engagement": 56.0, "total": 66.0}

This is the plain live stream: an alert published while the program is not
connected (or beyond funneld's alerts_hwm) is not seen here. A consumer that
must handle every handoff keeps the last alert_seq it handled and fills gaps
from funneld's store: see alerts_resume.py.

Exit 0 after --count alerts, or after --idle seconds without one (default:
run until interrupted); 3 when CURVE refused this client.
"""

import json

import zmq

import funnel_example as fx


def show(topic, alert):
    """One line per alert; replace with the call into your sales tool."""
    lead = alert.lead
    print(json.dumps({"alert_seq": alert.alert_seq, "topic": topic, "lead": alert.lead_id,
                      "at_ms": alert.at_ms, "stage": alert.stage,
                      "reasons": list(alert.reasons), "persona": lead.persona,
                      "fit": lead.fit, "engagement": lead.engagement,
                      "total": lead.total}), flush=True)


def main():
    ap = fx.parser(__doc__.split("\n\n")[0],
                   epilog="For at-least-once delivery across restarts see "
                          "alerts_resume.py.")
    ap.add_argument("--alerts", default="tcp://127.0.0.1:7702", metavar="ENDPOINT",
                    help="funneld's alerts endpoint (default tcp://127.0.0.1:7702)")
    ap.add_argument("--topic", action="append", metavar="PREFIX",
                    help="topic prefix to subscribe to (repeatable; default: handoff)")
    ap.add_argument("--count", type=int, default=0, metavar="N",
                    help="exit after N alerts (default: never)")
    ap.add_argument("--idle", type=float, default=0.0, metavar="SECS",
                    help="exit after SECS without an alert (default: never)")
    args = ap.parse_args()
    if args.count < 0 or args.idle < 0:
        ap.error("--count and --idle must not be negative")

    curve = fx.Curve(args.server_key, args.client_key)
    pb = fx.load_pb(args.proto)
    ctx = zmq.Context()
    client = fx.Client(ctx, zmq.SUB, args.alerts, curve, "alerts")
    for t in args.topic or ["handoff"]:
        client.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
    seen = 0
    try:
        while args.count == 0 or seen < args.count:
            # --timeout does not apply here: alerts come when leads qualify.
            if not client.wait(args.idle if args.idle else 3600.0):
                if args.idle:
                    break
                continue
            frames = client.sock.recv_multipart()
            if len(frames) != 2:
                continue                 # not [topic][Alert]: not funneld's
            alert = pb.Alert()
            try:
                alert.ParseFromString(frames[1])
            except Exception:
                fx.fail("an undecodable Alert on %s: is it funneld's alerts endpoint?"
                        % args.alerts, 3)
            show(frames[0].decode(errors="replace"), alert)
            seen += 1
    finally:
        client.close()
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    fx.run(main)
