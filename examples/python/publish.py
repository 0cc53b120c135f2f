#!/usr/bin/python3
"""publish.py: publish events to funneld and wait for each batch's Ack.

    examples/python/publish.py [--ingest tcp://127.0.0.1:7701] [FILE]
        [--batch-id ID] [--batch-size N] [--timeout SECS] [--tries N]
        [--server-key server.pub --client-key crm.key]

Reads NDJSON events (FILE, or stdin), the format of `funnelctl publish`:

    {"id":"e-1","lead":"L-1001","source":"marketing","type":"form_submit",
     "at":"2026-11-26T10:00:00Z","attrs":{"industry":"retail"},"value":0}

lead, source ("marketing"/"sales") and type are required; at is RFC 3339 or
epoch milliseconds (default: now, as funneld's clock says); id defaults to a
hash of the line, so publishing a file again changes nothing. A file with a
bad line is refused as a whole, each bad line named, before anything is sent.

The events go out in batches of at most --batch-size, one after the other.
funneld sends a batch's Ack only once the batch is durably committed; when
none comes within --timeout, this program sends the very same batch again
(same batch_id, same event ids), up to --tries times in all. That is safe:
funneld recognises the events it has already applied and acknowledges them
as duplicates. One JSON line per Ack on stdout:

    {"batch_id": "...", "accepted": 3, "duplicates": 0, "rejected": [],
     "last_seq": 17, "sends": 1}

Exit 0 when every batch is acknowledged with nothing rejected, 1 when funneld
rejected events or a whole batch, 2 on bad input or usage, 3 when a batch
got no Ack after every try (or CURVE refused this client).
"""

import datetime
import hashlib
import json
import os
import sys

import zmq

import funnel_example as fx

SOURCES = {"marketing": 1, "sales": 2}   # funnel.v1.Source


def parse_at(v):
    """Event time in epoch ms (0: "now", funneld's clock)."""
    if v is None:
        return 0
    if isinstance(v, bool):
        raise ValueError('"at" must be an RFC 3339 string or epoch milliseconds')
    if isinstance(v, int):
        if v <= 0:
            raise ValueError('"at": epoch milliseconds must be positive')
        return v
    if isinstance(v, str):
        try:
            t = datetime.datetime.fromisoformat(v)
        except ValueError:
            raise ValueError('"at": not an RFC 3339 time: %r' % v) from None
        if t.tzinfo is None:
            raise ValueError('"at": %r has no time zone (add Z or +hh:mm)' % v)
        return int(t.timestamp() * 1000)
    raise ValueError('"at" must be an RFC 3339 string or epoch milliseconds')


def to_event(pb, line):
    """One NDJSON line -> funnel.v1.Event (ValueError: what is wrong)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError("not JSON: %s" % e.msg) from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    ev = pb.Event()
    for key in ("lead", "source", "type"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise ValueError('missing field "%s" (a non-empty string)' % key)
    if obj["source"] not in SOURCES:
        raise ValueError('"source" must be "marketing" or "sales"')
    ev.lead_id, ev.type, ev.source = obj["lead"], obj["type"], SOURCES[obj["source"]]
    eid = obj.get("id")
    if eid is not None and (not isinstance(eid, str) or not eid):
        raise ValueError('"id" must be a non-empty string')
    ev.id = eid or "h-" + hashlib.sha256(line.encode()).hexdigest()[:32]
    ev.occurred_at_ms = parse_at(obj.get("at"))
    attrs = obj.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise ValueError('"attrs" must be an object')
    for k, v in attrs.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = repr(v)
        elif not isinstance(v, str):
            raise ValueError('attr "%s" must be a string, number or boolean' % k)
        ev.attrs[k] = v
    value = obj.get("value")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError('"value" must be a number')
        ev.value = value
    return ev


def read_events(pb, f, name):
    events, errors = [], []
    for n, line in enumerate(f, 1):
        line = line.strip()
        if not line:
            continue
        try:
            events.append(to_event(pb, line))
        except ValueError as e:
            errors.append("%s:%d: %s" % (name, n, e))
    if errors:
        fx.fail("\n".join(errors) + "\nnothing was sent: fix the lines and run again")
    return events


def publish(client, pb, batch, timeout, tries):
    """Send batch until its Ack arrives (at most tries sends); return the Ack
    and the number of sends. The same bytes every time: a resend is the same
    batch, which funneld answers with duplicates for what it has applied."""
    data = batch.SerializeToString()
    for send in range(1, tries + 1):
        if send > 1:
            print("publish: no Ack for batch %s within %gs: sending it again (%d of %d)"
                  % (batch.batch_id, timeout, send, tries), file=sys.stderr, flush=True)
        # A DEALER queues the message while it is not connected; a copy
        # written to a connection that then broke is the one a resend replaces.
        client.sock.send(data)
        while client.wait(timeout):
            ack = pb.Ack()
            try:
                ack.ParseFromString(client.sock.recv())
            except Exception:
                fx.fail("an undecodable Ack from %s: is it funneld's ingest endpoint?"
                        % client.endpoint, 3)
            if ack.batch_id == batch.batch_id:
                return ack, send
            # an Ack of an earlier batch's extra send: already answered
    fx.fail("no Ack for batch %s after %d sends, %gs each%s; it may or may not be "
            "applied: publishing it again is safe" % (batch.batch_id, tries, timeout,
                                                      client.timeout_hint()), 3)


def main():
    ap = fx.parser(__doc__.split("\n\n")[0],
                   epilog="Resends are safe: funneld keeps each event's id and "
                          "acknowledges a repeat as a duplicate.")
    ap.add_argument("file", nargs="?", default="-", metavar="FILE",
                    help="NDJSON events (default: stdin)")
    ap.add_argument("--ingest", default="tcp://127.0.0.1:7701", metavar="ENDPOINT",
                    help="funneld's ingest endpoint (default tcp://127.0.0.1:7701)")
    ap.add_argument("--batch-id", metavar="ID",
                    help="the batch id (with several batches: ID-1, ID-2, ...; "
                         "default: random)")
    ap.add_argument("--batch-size", type=int, default=1000, metavar="N",
                    help="events per batch (default 1000; funneld's max_batch_events "
                         "is 10000 by default)")
    ap.add_argument("--tries", type=int, default=5, metavar="N",
                    help="sends of one batch before giving up (default 5)")
    args = ap.parse_args()
    fx.positive(ap, "--timeout", args.timeout)
    fx.positive(ap, "--batch-size", args.batch_size)
    fx.positive(ap, "--tries", args.tries)

    curve = fx.Curve(args.server_key, args.client_key)
    pb = fx.load_pb(args.proto)
    if args.file == "-":
        events = read_events(pb, sys.stdin, "stdin")
    else:
        try:
            with open(args.file) as f:
                events = read_events(pb, f, args.file)
        except OSError as e:
            fx.fail("%s: %s" % (args.file, e.strerror))
    if not events:
        fx.fail("no events in %s" % ("stdin" if args.file == "-" else args.file))

    chunks = [events[i:i + args.batch_size] for i in range(0, len(events), args.batch_size)]
    base = args.batch_id or "py-" + os.urandom(6).hex()
    ctx = zmq.Context()
    client = fx.Client(ctx, zmq.DEALER, args.ingest, curve, "ingest")
    status = 0
    try:
        for i, chunk in enumerate(chunks, 1):
            batch = pb.EventBatch()
            batch.events.extend(chunk)
            batch.batch_id = base if len(chunks) == 1 else "%s-%d" % (base, i)
            ack, sends = publish(client, pb, batch, args.timeout, args.tries)
            print(json.dumps({"batch_id": ack.batch_id, "accepted": ack.accepted,
                              "duplicates": ack.duplicates,
                              "rejected": [{"index": r.index, "event_id": r.event_id,
                                            "reason": r.reason} for r in ack.rejections],
                              "last_seq": ack.last_seq, "sends": sends}), flush=True)
            if ack.error:
                fx.fail("funneld refused batch %s: %s (not applied; resending it "
                        "unchanged would not help)" % (ack.batch_id, ack.error), 1)
            for r in ack.rejections:
                print("publish: event %d (%s) rejected: %s" % (r.index, r.event_id, r.reason),
                      file=sys.stderr)
                status = 1
    finally:
        client.close()
        ctx.destroy(linger=0)
    return status


if __name__ == "__main__":
    fx.run(main)
