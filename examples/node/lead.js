#!/usr/bin/env node
// lead.js: ask funneld for one lead and print it as JSON.
//
//     node examples/node/lead.js LEAD_ID [--query tcp://127.0.0.1:7703]
//         [--timeline N] [--server-key server.pub --client-key crm.key]
//
// Prints the LeadReply (funnel.v1) as one JSON document, field names as in
// proto/funnel.proto, enums by name, 64-bit numbers as strings (as
// protobuf's JSON mapping, and lead.py, print them):
//
//     {"found": true, "lead": {"id": "L-1001", "stage": "decision", ...},
//      "timeline": [{"seq": "17", "event": {...}}, ...]}
//
// The query endpoint answers from a snapshot of funneld's last commit: every
// event whose Ack was sent before the query arrived is in it.
//
// Exit 0 when funneld knows the lead, 1 when it does not (or answered with
// an error), 3 when it does not answer (or CURVE refused this client).
"use strict";

const ex = require("./common.js");

const USAGE = "lead.js LEAD_ID [--query ENDPOINT] [--timeline N] " +
  "[--server-key FILE --client-key FILE]";

async function main() {
  const { values, positionals } = ex.parse({
    usage: USAGE,
    about: "Ask funneld for one lead and print it as JSON.",
    positionals: [["LEAD_ID", "the lead's id (Event.lead_id)"]],
    required: 1,
    options: {
      query: { type: "string", arg: "ENDPOINT", default: "tcp://127.0.0.1:7703",
        help: "funneld's query endpoint (default tcp://127.0.0.1:7703)" },
      timeline: { type: "string", arg: "N", default: "10",
        help: "the newest N events of the lead (default 10)" },
    },
  });
  const timeline = ex.number(USAGE, "--timeline", values.timeline,
    { positive: true, integer: true });
  const leadId = positionals[0];
  if (!leadId) ex.fail("LEAD_ID must not be empty");

  const curve = new ex.Curve(values["server-key"], values["client-key"]);
  const pb = ex.loadProto(values.proto);
  const client = new ex.Client(ex.zmq.Dealer, values.query, curve);
  let rep;
  try {
    rep = await ex.query(client, pb, { lead: { lead_id: leadId, timeline_limit: timeline } },
      values.timeout);
  } finally {
    client.close();
  }
  if (!rep.lead) ex.fail(`funneld answered a lead query with ${Object.keys(rep)}`, 1);
  if (!rep.lead.found) ex.fail(`funneld does not know lead ${JSON.stringify(leadId)}`, 1);
  const doc = pb.LeadReply.toObject(rep.lead,
    { longs: String, enums: String });
  process.stdout.write(JSON.stringify(doc, null, 2) + "\n");
  return 0;
}

ex.run(main);
