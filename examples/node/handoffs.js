#!/usr/bin/env node
// handoffs.js: print funneld's handoff alerts as they come.
//
//     node examples/node/handoffs.js [--alerts tcp://127.0.0.1:7702]
//         [--topic handoff]... [--count N] [--idle SECS]
//         [--server-key server.pub --client-key sales-tool.key]
//
// Subscribes to the alert topic `handoff` (a lead qualified and is handed to
// sales; --topic for others: "stage", "friction." for every friction point)
// and prints one JSON line per alert:
//
//     {"alert_seq":42,"topic":"handoff","lead":"L-1001","at_ms":...,
//      "stage":"decision","reasons":["engagement >= 50"],"persona":"...",
//      "fit":10,"engagement":56,"total":66}
//
// This is the plain live stream: an alert published while the program is
// not connected (or beyond funneld's alerts_hwm) is not seen here. A consumer
// that must handle every handoff keeps the last alert_seq it handled and
// fills gaps from funneld's store (AlertsSince): see
// examples/python/alerts_resume.py.
//
// Exit 0 after --count alerts, or after --idle seconds without one (default:
// run until interrupted); 3 when CURVE refused this client.
"use strict";

const ex = require("./common.js");

const USAGE = "handoffs.js [--alerts ENDPOINT] [--topic PREFIX]... [--count N] " +
  "[--idle SECS] [--server-key FILE --client-key FILE]";

// One line per alert; replace with the call into your sales tool.
function show(topic, alert) {
  const lead = alert.lead || {};
  process.stdout.write(JSON.stringify({ alert_seq: ex.num(alert.alert_seq), topic,
    lead: alert.lead_id, at_ms: ex.num(alert.at_ms), stage: alert.stage,
    reasons: alert.reasons, persona: lead.persona || "", fit: lead.fit || 0,
    engagement: lead.engagement || 0, total: lead.total || 0 }) + "\n");
}

async function main() {
  const { values } = ex.parse({
    usage: USAGE,
    about: "Subscribe to funneld's handoff alerts (or other topics) and print one JSON " +
      "line per alert.",
    epilog: "For at-least-once delivery across restarts see examples/python/alerts_resume.py.",
    options: {
      alerts: { type: "string", arg: "ENDPOINT", default: "tcp://127.0.0.1:7702",
        help: "funneld's alerts endpoint (default tcp://127.0.0.1:7702)" },
      topic: { type: "string", arg: "PREFIX", multiple: true,
        help: "topic prefix to subscribe to (repeatable; default: handoff)" },
      count: { type: "string", arg: "N", default: "0",
        help: "exit after N alerts (default: never)" },
      idle: { type: "string", arg: "SECS", default: "0",
        help: "exit after SECS without an alert (default: never)" },
    },
  });
  const count = ex.number(USAGE, "--count", values.count, { integer: true });
  const idle = ex.number(USAGE, "--idle", values.idle);

  const curve = new ex.Curve(values["server-key"], values["client-key"]);
  const pb = ex.loadProto(values.proto);
  const client = new ex.Client(ex.zmq.Subscriber, values.alerts, curve);
  for (const t of values.topic || ["handoff"]) client.sock.subscribe(t);
  let seen = 0;
  process.on("SIGINT", () => { client.close(); process.exit(0); });
  try {
    while (count === 0 || seen < count) {
      // --timeout does not apply here: alerts come when leads qualify.
      const frames = await client.receive(idle);
      if (frames === null) break; // --idle seconds without an alert
      if (frames.length !== 2) continue; // not [topic][Alert]: not funneld's
      let alert;
      try {
        alert = pb.Alert.decode(frames[1]);
      } catch (e) {
        ex.fail(`an undecodable Alert on ${values.alerts}: is it funneld's alerts endpoint?`, 3);
      }
      show(frames[0].toString(), alert);
      seen++;
    }
  } finally {
    client.close();
  }
  return 0;
}

ex.run(main);
