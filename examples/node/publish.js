#!/usr/bin/env node
// publish.js: publish events to funneld and wait for each batch's Ack.
//
//     node examples/node/publish.js [--ingest tcp://127.0.0.1:7701] [FILE]
//         [--batch-id ID] [--batch-size N] [--timeout SECS] [--tries N]
//         [--server-key server.pub --client-key crm.key]
//
// Reads NDJSON events (FILE, or stdin), the format of `funnelctl publish`:
//
//     {"id":"e-1","lead":"L-1001","source":"marketing","type":"form_submit",
//      "at":"2026-11-26T10:00:00Z","attrs":{"industry":"retail"},"value":0}
//
// lead, source ("marketing"/"sales") and type are required; at is RFC 3339 or
// epoch milliseconds (default: now, as funneld's clock says); id defaults to
// a hash of the line (the same as publish.py's), so publishing a file again
// changes nothing. A file with a bad line is refused as a whole, each bad line
// named, before anything is sent.
//
// The events go out in batches of at most --batch-size, one after the other.
// funneld sends a batch's Ack only once the batch is durably committed; when
// none comes within --timeout, this program sends the very same batch again
// (same batch_id, same event ids), up to --tries times in all. That is safe:
// funneld recognises the events it has already applied and acknowledges them
// as duplicates. One JSON line per Ack on stdout:
//
//     {"batch_id":"...","accepted":3,"duplicates":0,"rejected":[],"last_seq":17,"sends":1}
//
// Exit 0 when every batch is acknowledged with nothing rejected, 1 when
// funneld rejected events or a whole batch, 2 on bad input or usage, 3 when a
// batch got no Ack after every try (or CURVE refused this client).
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");

const ex = require("./common.js");

const USAGE = "publish.js [--ingest ENDPOINT] [--batch-id ID] [--batch-size N] " +
  "[--tries N] [--timeout SECS] [--server-key FILE --client-key FILE] [FILE]";
const RFC3339 = /^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$/;

function parseAt(v) {
  if (v === undefined || v === null) return 0;
  if (typeof v === "number") {
    if (!Number.isInteger(v) || v <= 0) {
      throw new Error('"at": epoch milliseconds must be a positive integer');
    }
    return v;
  }
  if (typeof v === "string") {
    if (!RFC3339.test(v)) throw new Error(`"at": not an RFC 3339 time: ${JSON.stringify(v)}`);
    return Date.parse(v);
  }
  throw new Error('"at" must be an RFC 3339 string or epoch milliseconds');
}

// One NDJSON line -> the fields of a funnel.v1.Event (Error: what is wrong).
function toEvent(pb, line) {
  let obj;
  try {
    obj = JSON.parse(line);
  } catch (e) {
    throw new Error(`not JSON: ${e.message}`);
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new Error("not a JSON object");
  }
  for (const key of ["lead", "source", "type"]) {
    if (typeof obj[key] !== "string" || !obj[key]) {
      throw new Error(`missing field "${key}" (a non-empty string)`);
    }
  }
  if (obj.source !== "marketing" && obj.source !== "sales") {
    throw new Error('"source" must be "marketing" or "sales"');
  }
  if (obj.id !== undefined && obj.id !== null && (typeof obj.id !== "string" || !obj.id)) {
    throw new Error('"id" must be a non-empty string');
  }
  const id = obj.id ||
    "h-" + crypto.createHash("sha256").update(line).digest("hex").slice(0, 32);
  const attrs = {};
  const a = obj.attrs || {};
  if (typeof a !== "object" || Array.isArray(a)) throw new Error('"attrs" must be an object');
  for (const [k, v] of Object.entries(a)) {
    if (typeof v === "string") attrs[k] = v;
    else if (typeof v === "number" || typeof v === "boolean") attrs[k] = String(v);
    else throw new Error(`attr "${k}" must be a string, number or boolean`);
  }
  const ev = { id, lead_id: obj.lead, type: obj.type, attrs,
    source: obj.source === "sales" ? pb.Source.SOURCE_SALES : pb.Source.SOURCE_MARKETING,
    occurred_at_ms: parseAt(obj.at) };
  if (obj.value !== undefined && obj.value !== null) {
    if (typeof obj.value !== "number") throw new Error('"value" must be a number');
    ev.value = obj.value;
  }
  return pb.Event.create(ev);
}

function readEvents(pb, text, name) {
  const events = [];
  const errors = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    try {
      events.push(toEvent(pb, line));
    } catch (e) {
      errors.push(`${name}:${i + 1}: ${e.message}`);
    }
  });
  if (errors.length) {
    ex.fail(`${errors.join("\n")}\nnothing was sent: fix the lines and run again`);
  }
  return events;
}

// Send batch until its Ack arrives (at most tries sends); {ack, sends}. The
// same bytes every time: a resend is the same batch, which funneld answers
// with duplicates for what it has applied.
async function publish(client, pb, batch, timeout, tries) {
  const data = pb.EventBatch.encode(batch).finish();
  for (let send = 1; send <= tries; send++) {
    if (send > 1) {
      process.stderr.write(`publish: no Ack for batch ${batch.batch_id} within ${timeout}s: ` +
        `sending it again (${send} of ${tries})\n`);
    }
    // A DEALER queues the message while it is not connected; a copy written
    // to a connection that then broke is the one a resend replaces.
    await client.send(data, timeout);
    const deadline = Date.now() + timeout * 1000;
    for (;;) {
      const left = (deadline - Date.now()) / 1000;
      const frames = left > 0 ? await client.receive(left) : null;
      if (frames === null) break;
      let ack;
      try {
        ack = pb.Ack.decode(frames[frames.length - 1]);
      } catch (e) {
        ex.fail(`an undecodable Ack from ${client.endpoint}: is it funneld's ingest endpoint?`, 3);
      }
      if (ack.batch_id === batch.batch_id) return { ack, sends: send };
      // an Ack of an earlier batch's extra send: already answered
    }
  }
  ex.fail(`no Ack for batch ${batch.batch_id} after ${tries} sends, ${timeout}s each` +
    `${client.timeoutHint()}; it may or may not be applied: publishing it again is safe`, 3);
}

async function main() {
  const { values, positionals } = ex.parse({
    usage: USAGE,
    about: "Publish NDJSON events to funneld in batches and wait for each batch's Ack, " +
      "sending the same batch again when none comes in time.",
    epilog: "Resends are safe: funneld keeps each event's id and acknowledges a repeat " +
      "as a duplicate.",
    positionals: [["FILE", "NDJSON events (default: stdin)"]],
    options: {
      ingest: { type: "string", arg: "ENDPOINT", default: "tcp://127.0.0.1:7701",
        help: "funneld's ingest endpoint (default tcp://127.0.0.1:7701)" },
      "batch-id": { type: "string", arg: "ID",
        help: "the batch id (with several batches: ID-1, ID-2, ...; default: random)" },
      "batch-size": { type: "string", arg: "N", default: "1000",
        help: "events per batch (default 1000; funneld's max_batch_events is 10000 by default)" },
      tries: { type: "string", arg: "N", default: "5",
        help: "sends of one batch before giving up (default 5)" },
    },
  });
  const batchSize = ex.number(USAGE, "--batch-size", values["batch-size"],
    { positive: true, integer: true });
  const tries = ex.number(USAGE, "--tries", values.tries, { positive: true, integer: true });
  const file = positionals[0] || "-";

  const curve = new ex.Curve(values["server-key"], values["client-key"]);
  const pb = ex.loadProto(values.proto);
  let text;
  try {
    text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    ex.fail(`${file}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  }
  const name = file === "-" ? "stdin" : file;
  const events = readEvents(pb, text, name);
  if (!events.length) ex.fail(`no events in ${name}`);

  const chunks = [];
  for (let i = 0; i < events.length; i += batchSize) chunks.push(events.slice(i, i + batchSize));
  const base = values["batch-id"] || "js-" + crypto.randomBytes(6).toString("hex");
  const client = new ex.Client(ex.zmq.Dealer, values.ingest, curve);
  let status = 0;
  try {
    for (let i = 0; i < chunks.length; i++) {
      const batch = pb.EventBatch.create({ events: chunks[i],
        batch_id: chunks.length === 1 ? base : `${base}-${i + 1}` });
      const { ack, sends } = await publish(client, pb, batch, values.timeout, tries);
      process.stdout.write(JSON.stringify({ batch_id: ack.batch_id, accepted: ack.accepted,
        duplicates: ack.duplicates,
        rejected: ack.rejections.map((r) => ({ index: r.index, event_id: r.event_id,
          reason: r.reason })),
        last_seq: ex.num(ack.last_seq), sends }) + "\n");
      if (ack.error) {
        ex.fail(`funneld refused batch ${ack.batch_id}: ${ack.error} (not applied; ` +
          "resending it unchanged would not help)", 1);
      }
      for (const r of ack.rejections) {
        process.stderr.write(`publish: event ${r.index} (${r.event_id}) rejected: ${r.reason}\n`);
        status = 1;
      }
    }
  } finally {
    client.close();
  }
  return status;
}

ex.run(main);
