// common.js: what the Node client examples of funneld share.
//
// - the protocol, loaded from proto/funnel.proto at start by protobufjs's
//   own .proto loader (keepCase: the field names of the proto): the .proto
//   file is the contract, and there is no generated code to keep in step;
// - the options every example takes (--proto, --server-key, --client-key,
//   --timeout, --help), and CURVE on a socket from the key files that
//   `funnelctl keygen NAME` writes (NAME.pub, NAME.key: a `#` comment line,
//   then the 40-character Z85 key);
// - the socket's handshake events, which turn a refused CURVE handshake into
//   a clear error instead of a silent wait.
//
// Exit codes of the examples: 0 done, 1 funneld answered with an error (or:
// not found), 2 bad usage or input, 3 no answer from funneld, or its CURVE
// refused us.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const util = require("node:util");

const protobuf = require("protobufjs");
const zmq = require("zeromq");

const DEFAULT_PROTO = path.join(__dirname, "..", "..", "proto", "funnel.proto");

class Failure extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

function fail(message, code = 2) {
  throw new Failure(message, code);
}

const prog = path.basename(process.argv[1] || "example");

// Print a Failure (or anything else) on stderr and exit with its code.
function exitWith(err) {
  if (err instanceof Failure) {
    process.stderr.write(`${prog}: ${err.message}\n`);
    process.exit(err.code);
  }
  process.stderr.write(`${prog}: ${err && err.stack ? err.stack : err}\n`);
  process.exit(70);
}

// Run the async main(); its result is the exit code.
function run(main) {
  main().then((code) => process.exit(code || 0), exitWith);
}

// -- the protocol ------------------------------------------------------------

// The funnel.v1 types, from the .proto file (default: the repository's
// proto/funnel.proto, or $FUNNEL_PROTO).
function loadProto(file) {
  const proto = path.resolve(file || process.env.FUNNEL_PROTO || DEFAULT_PROTO);
  if (!fs.existsSync(proto)) {
    fail(`no funnel.proto at ${proto}: pass --proto FILE (funneld's proto/funnel.proto)`);
  }
  let root;
  try {
    root = new protobuf.Root().loadSync(proto, { keepCase: true });
  } catch (e) {
    fail(`cannot load ${proto}: ${e.message}`);
  }
  const t = (name) => root.lookupType(`funnel.v1.${name}`);
  return {
    Event: t("Event"), EventBatch: t("EventBatch"), Ack: t("Ack"), Alert: t("Alert"),
    QueryRequest: t("QueryRequest"), QueryReply: t("QueryReply"),
    LeadReply: t("LeadReply"),
    Source: root.lookupEnum("funnel.v1.Source").values,
  };
}

// A uint64/int64 field (a Long, or a number) as a JS number.
function num(v) {
  return typeof v === "number" ? v : Number(String(v));
}

// -- options -----------------------------------------------------------------

const COMMON_OPTIONS = {
  proto: { type: "string", arg: "FILE",
    help: "funneld's funnel.proto (default: $FUNNEL_PROTO, or proto/funnel.proto of " +
          "the source tree these examples are in)" },
  "server-key": { type: "string", arg: "FILE",
    help: "CURVE: funneld's public key file (NAME.pub of funnelctl keygen; default " +
          "$FUNNELCTL_SERVER_KEY)" },
  "client-key": { type: "string", arg: "FILE",
    help: "CURVE: this client's secret key file (NAME.key; its public key must be in " +
          "funneld's curve_clients_file; default $FUNNELCTL_CLIENT_KEY)" },
  timeout: { type: "string", arg: "SECS", default: "5",
    help: "how long to wait for funneld's answer (default 5)" },
  help: { type: "boolean", short: "h", help: "show this help and exit" },
};

// Parse argv by spec = {usage, about, options, positionals: [[NAME, help]...]}:
// returns {values, positionals}; --help prints the usage and exits 0; a bad
// option exits 2 with the usage line.
function parse(spec) {
  const options = { ...spec.options, ...COMMON_OPTIONS };
  const usage = () => {
    const lines = [`usage: ${spec.usage}`, "", spec.about, ""];
    for (const [name, help] of spec.positionals || []) {
      lines.push(`  ${name.padEnd(24)} ${help}`);
    }
    for (const [name, o] of Object.entries(options)) {
      const flag = `--${name}${o.arg ? " " + o.arg : ""}`;
      lines.push(`  ${flag.padEnd(24)} ${o.help}`);
    }
    if (spec.epilog) lines.push("", spec.epilog);
    return lines.join("\n") + "\n";
  };
  const parseOptions = {};
  for (const [name, o] of Object.entries(options)) {
    parseOptions[name] = { type: o.type };
    if (o.short) parseOptions[name].short = o.short;
    if (o.multiple) parseOptions[name].multiple = true;
  }
  let parsed;
  try {
    parsed = util.parseArgs({ args: process.argv.slice(2), options: parseOptions,
      allowPositionals: true, strict: true });
  } catch (e) {
    process.stderr.write(`usage: ${spec.usage}\n${prog}: ${e.message}\n`);
    process.exit(2);
  }
  if (parsed.values.help) {
    process.stdout.write(usage());
    process.exit(0);
  }
  const values = parsed.values;
  for (const [name, o] of Object.entries(options)) {
    if (values[name] === undefined && o.default !== undefined) values[name] = o.default;
  }
  if (values["server-key"] === undefined) values["server-key"] = process.env.FUNNELCTL_SERVER_KEY;
  if (values["client-key"] === undefined) values["client-key"] = process.env.FUNNELCTL_CLIENT_KEY;
  const n = (spec.positionals || []).length;
  if (parsed.positionals.length > n || parsed.positionals.length < (spec.required || 0)) {
    process.stderr.write(`usage: ${spec.usage}\n${prog}: ` +
      `${parsed.positionals.length > n ? "too many arguments" : "missing " +
        spec.positionals[parsed.positionals.length][0]}\n`);
    process.exit(2);
  }
  values.timeout = number(spec.usage, "--timeout", values.timeout, { positive: true });
  return { values, positionals: parsed.positionals };
}

// A numeric option's value, or exit 2 naming the option.
function number(usage, name, text, { positive = false, integer = false } = {}) {
  const v = Number(text);
  const bad = text === undefined || text === "" || !Number.isFinite(v) ||
    (integer && !Number.isInteger(v)) || (positive ? v <= 0 : v < 0);
  if (bad) {
    process.stderr.write(`usage: ${usage}\n${prog}: ${name} must be a ` +
      `${positive ? "positive" : "non-negative"} ${integer ? "integer" : "number"}, ` +
      `not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return v;
}

// -- CURVE ---------------------------------------------------------------------

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
const Z85_INDEX = new Map([...Z85].map((c, i) => [c, i]));

// Z85 text (a multiple of 5 characters) -> bytes, or null when it is not Z85.
function z85Decode(text) {
  if (text.length % 5 !== 0) return null;
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let v = 0;
    for (let j = 0; j < 5; j++) {
      const d = Z85_INDEX.get(text[i + j]);
      if (d === undefined) return null;
      v = v * 85 + d;
    }
    if (v > 0xffffffff) return null;
    out.writeUInt32BE(v, (i / 5) * 4);
  }
  return out;
}

function z85Encode(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4) {
    let v = bytes.readUInt32BE(i);
    const chunk = [];
    for (let j = 0; j < 5; j++) {
      chunk.unshift(Z85[v % 85]);
      v = Math.floor(v / 85);
    }
    s += chunk.join("");
  }
  return s;
}

// The Z85 key of a key file as funnelctl keygen writes it. A secret key
// file must be readable by its owner only, as funneld and funnelctl require.
function readKey(file, secret) {
  let text;
  try {
    const fd = fs.openSync(file, "r");
    try {
      const mode = fs.fstatSync(fd).mode;
      if (secret && (mode & 0o077)) {
        fail(`${file}: a secret key must be readable by its owner only (mode ` +
             `${(mode & 0o777).toString(8).padStart(3, "0")}); chmod 600 ${file}`);
      }
      text = fs.readFileSync(fd, "utf8");
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if (e instanceof Failure) throw e;
    fail(`${file}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
  }
  for (const line of text.split("\n")) {
    const w = line.trim().split(/\s+/)[0];
    if (!w) continue;
    if (w.length === 40 && z85Decode(w)) return w;
    if (w.startsWith("#")) continue; // a comment (a key may begin with "#": tried first)
    break;
  }
  fail(`${file}: not a CURVE key file (a 40-character Z85 key, as funnelctl keygen writes)`);
}

// The public key of a CURVE secret key (both Z85): CURVE's keys are X25519
// keys, which Node's crypto derives (the secret key imported as PKCS #8:
// a fixed DER header for X25519, then the 32 bytes).
const X25519_PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex");

function curvePublic(secretZ85) {
  const priv = crypto.createPrivateKey({ key: Buffer.concat([X25519_PKCS8,
    z85Decode(secretZ85)]), format: "der", type: "pkcs8" });
  const spki = crypto.createPublicKey(priv).export({ format: "der", type: "spki" });
  return z85Encode(spki.subarray(spki.length - 32));
}

class Curve {
  constructor(serverKeyFile, clientKeyFile) {
    this.on = Boolean(serverKeyFile || clientKeyFile);
    if (!this.on) return;
    if (!serverKeyFile || !clientKeyFile) {
      fail("CURVE needs both --server-key (funneld's NAME.pub) and --client-key " +
           "(this client's NAME.key)");
    }
    this.server = readKey(serverKeyFile, false);
    this.secret = readKey(clientKeyFile, true);
    this.public = curvePublic(this.secret);
  }

  // Socket options making a socket a CURVE client (none when plain).
  options() {
    if (!this.on) return {};
    return { curveServerKey: this.server, curvePublicKey: this.public,
      curveSecretKey: this.secret };
  }
}

// One socket to one funneld endpoint. A failed handshake ends the program
// at once (exit 3): funneld's ZAP handler refused our key (not in its
// clients file), we speak plain to a CURVE server, or it closed our CURVE
// handshake (another server key, or CURVE off there). libzmq would retry
// such a connection forever; none of them mends itself.
class Client {
  constructor(SocketClass, endpoint, curve) {
    this.endpoint = endpoint;
    this.curve = curve;
    this.connected = false;
    this.sock = new SocketClass({ linger: 0, ...curve.options() });
    const ev = this.sock.events;
    ev.on("handshake", () => { this.connected = true; });
    ev.on("handshake:error:auth", () => exitWith(new Failure(
      `funneld at ${endpoint} refused this client's CURVE key ${curve.public}: it is not ` +
      "in funneld's curve_clients_file", 3)));
    const other = () => exitWith(new Failure(curve.on
      ? `the CURVE handshake with ${endpoint} failed: is --server-key funneld's public ` +
        "key (its NAME.pub), and is CURVE on there?"
      : `the handshake with ${endpoint} failed: funneld has CURVE on there; pass ` +
        "--server-key and --client-key", 3));
    ev.on("handshake:error:protocol", other);
    ev.on("handshake:error:other", other);
    try {
      this.sock.connect(endpoint);
    } catch (e) {
      fail(`cannot connect to ${JSON.stringify(endpoint)}: ${e.message}`);
    }
  }

  // The next message (an array of frames) within timeout seconds (0: no
  // limit), or null on timeout.
  async receive(timeout) {
    this.sock.receiveTimeout = timeout > 0 ? Math.max(1, Math.round(timeout * 1000)) : -1;
    try {
      return await this.sock.receive();
    } catch (e) {
      if (e.code === "EAGAIN") return null;
      throw e;
    }
  }

  // Send one message (a Buffer or an array of frames); a Failure (exit
  // code 3) when it cannot be queued within timeout seconds (0: no limit),
  // as when funneld refused the handshake and the event saying so has not
  // come yet.
  async send(data, timeout) {
    this.sock.sendTimeout = timeout > 0 ? Math.max(1, Math.round(timeout * 1000)) : -1;
    try {
      await this.sock.send(data);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
      fail(`cannot send to funneld at ${this.endpoint} within ${timeout}s` +
           this.timeoutHint(), 3);
    }
  }

  timeoutHint() {
    return this.connected ? "" : " (no connection was established: is funneld running there?)";
  }

  close() {
    this.sock.events.close();
    this.sock.close();
  }
}

// Send a QueryRequest (a plain object of QueryRequest's fields) and return
// its decoded QueryReply; a Failure on error or timeout. Replies to earlier
// requests are skipped by request_id.
async function query(client, pb, fields, timeout) {
  const request_id = crypto.randomBytes(8).toString("hex");
  await client.send(pb.QueryRequest.encode(pb.QueryRequest.create({ request_id,
    ...fields })).finish(), timeout);
  const deadline = Date.now() + timeout * 1000;
  for (;;) {
    const left = (deadline - Date.now()) / 1000;
    const frames = left > 0 ? await client.receive(left) : null;
    if (frames === null) {
      fail(`no reply from funneld's query endpoint ${client.endpoint} within ` +
           `${timeout}s${client.timeoutHint()}`, 3);
    }
    let rep;
    try {
      rep = pb.QueryReply.decode(frames[frames.length - 1]);
    } catch (e) {
      fail(`an undecodable QueryReply from ${client.endpoint}: is it funneld's query ` +
           "endpoint?", 3);
    }
    if (rep.request_id !== request_id) continue;
    if (rep.error) fail(`funneld: ${rep.error}`, 1);
    return rep;
  }
}

module.exports = { Client, Curve, Failure, fail, loadProto, num, number, parse, query, run,
  zmq, exitWith, curvePublic, z85Decode, z85Encode };
