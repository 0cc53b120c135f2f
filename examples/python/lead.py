#!/usr/bin/python3
"""lead.py: ask funneld for one lead and print it as JSON.

    examples/python/lead.py LEAD_ID [--query tcp://127.0.0.1:7703]
        [--timeline N] [--server-key server.pub --client-key crm.key]

Prints the LeadReply (funnel.v1) as one JSON document, field names as in
proto/funnel.proto, 64-bit numbers as strings (protobuf's JSON mapping):

    {"found": true, "lead": {"id": "L-1001", "stage": "decision", ...},
     "timeline": [{"seq": "17", "event": {...}}, ...]}

The query endpoint answers from a snapshot of funneld's last commit: every
event whose Ack was sent before the query arrived is in it.

Exit 0 when funneld knows the lead, 1 when it does not (or answered with an
error), 3 when it does not answer (or CURVE refused this client).
"""

import json

import zmq
from google.protobuf import json_format

import funnel_example as fx


def main():
    ap = fx.parser(__doc__.split("\n\n")[0])
    ap.add_argument("lead_id", metavar="LEAD_ID", help="the lead's id (Event.lead_id)")
    ap.add_argument("--query", default="tcp://127.0.0.1:7703", metavar="ENDPOINT",
                    help="funneld's query endpoint (default tcp://127.0.0.1:7703)")
    ap.add_argument("--timeline", type=int, default=10, metavar="N",
                    help="the newest N events of the lead (default 10)")
    args = ap.parse_args()
    fx.positive(ap, "--timeout", args.timeout)
    fx.positive(ap, "--timeline", args.timeline)
    if not args.lead_id:
        ap.error("LEAD_ID must not be empty")

    curve = fx.Curve(args.server_key, args.client_key)
    pb = fx.load_pb(args.proto)
    ctx = zmq.Context()
    client = fx.Client(ctx, zmq.DEALER, args.query, curve, "query")
    try:
        req = pb.QueryRequest()
        req.lead.lead_id = args.lead_id
        req.lead.timeline_limit = args.timeline
        rep = fx.query(client, pb, req, args.timeout)
    finally:
        client.close()
        ctx.destroy(linger=0)
    if rep.WhichOneof("reply") != "lead":
        fx.fail("funneld answered a lead query with %r" % rep.WhichOneof("reply"), 1)
    if not rep.lead.found:
        fx.fail("funneld does not know lead %r" % args.lead_id, 1)
    print(json.dumps(json_format.MessageToDict(rep.lead, preserving_proto_field_name=True),
                     indent=2))
    return 0


if __name__ == "__main__":
    fx.run(main)
