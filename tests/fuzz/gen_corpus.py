#!/usr/bin/python3
"""Write the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/.

    /usr/bin/python3 tests/fuzz/gen_corpus.py BUILD_DIR

BUILD_DIR is a build directory (it holds pyproto/funnel_pb2.py, which protoc
generates from proto/funnel.proto). Seeds are small, named seed-*, and
rewritten each run; anything else in the corpus directories (crash-*,
inputs the fuzzers found) is left alone, so that crashes stay as regression
inputs. The record format of the ingest target is described in
fuzz_ingest.c.
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "pyproto"))
import funnel_pb2 as pb  # noqa: E402

T0 = 1767225600000          # 2026-01-01T00:00:00Z
M, S = pb.SOURCE_MARKETING, pb.SOURCE_SALES


def ev(lead, typ, eid, at=T0, src=M, attrs=None, value=0.0, publisher="", seq=0):
    e = pb.Event(id=eid, lead_id=lead, source=src, type=typ, occurred_at_ms=at,
                 value=value, publisher=publisher, seq=seq)
    for k, v in (attrs or {}).items():
        e.attrs[k] = v
    return e


def batch(events, bid="b"):
    b = pb.EventBatch(batch_id=bid)
    b.events.extend(events)
    return b.SerializeToString()


def rec(op, payload=b""):
    return struct.pack("<BH", op, len(payload)) + payload


INGEST, STREAM, LOOP = 0, 2, 3
TOPIC_SALES = 0x10          # op bits 4-5 choose the stream topic
TRUNCATED, DELIM, ONE_FRAME = 0x10, 0x20, 0x40


def ingest_seeds():
    s = {}
    aida = [ev("L1", "page_view", "a1", T0, attrs={"industry": "retail"}),
            ev("L1", "form_submit", "a2", T0 + 1000),
            ev("L1", "demo_request", "a3", T0 + 2000, S),
            ev("L1", "meeting_booked", "a4", T0 + 3000, S),
            ev("L1", "closed_won", "a5", T0 + 4000, S, value=1200.0)]
    s["aida"] = bytes([3]) + rec(INGEST, batch(aida, "aida")) + rec(LOOP)
    s["resend"] = bytes([1]) + rec(INGEST, batch(aida[:3], "r")) + \
        rec(INGEST, batch(aida[:3], "r")) + rec(INGEST, batch(aida[2:], "r2"))
    s["dup_in_batch"] = bytes([0]) + rec(INGEST, batch([aida[0], aida[0], aida[1]]))
    s["disorder"] = bytes([2]) + rec(INGEST, batch(
        [ev("L2", "meeting_booked", "d1", T0 + 9000, S),
         ev("L2", "page_view", "d2", T0),
         ev("L2", "form_submit", "d3", T0 + 5000)]))
    s["lost"] = bytes([0]) + rec(INGEST, batch(
        [ev("L3", "email_open", "l1"), ev("L3", "closed_lost", "l2", T0 + 1, S),
         ev("L3", "unsubscribe", "l3", T0 + 2), ev("L3", "purchase", "l4", T0 + 3)]))
    s["stream_gap"] = bytes([3]) + \
        rec(STREAM, batch([ev("L4", "page_view", "g1", publisher="web", seq=1)])) + \
        rec(STREAM, batch([ev("L4", "email_click", "g2", publisher="web", seq=5)])) + \
        rec(STREAM | TOPIC_SALES, batch([ev("L4", "meeting_booked", "g3", src=S,
                                            publisher="crm", seq=1)])) + rec(LOOP)
    s["stream_and_ingest"] = bytes([3]) + \
        rec(STREAM, batch([ev("L5", "content_download", "si1")])) + \
        rec(INGEST, batch([ev("L5", "content_download", "si1")])) + rec(LOOP)
    bad = [ev("", "page_view", "x1"), ev("L6", "", "x2"), ev("L6", "page_view", ""),
           ev("L6", "page_view", "x3", at=1000), ev("L6", "page_view", "x4", at=T0 * 10),
           ev("L6", "page_view", "x5", src=0), ev("L6", "page_view", "x6", value=float("inf")),
           ev("L6", "page_view", "x7", attrs={"k%02d" % i: "v" for i in range(33)}),
           ev("L6", "t" * 65, "x8"), ev("L6", "page_view", "x9", attrs={"": "empty key"}),
           ev("L6", "page_view", "x10", attrs={"k": "v" * 257}),
           ev("L6", "page_view", "x11", at=0)]
    s["invalid"] = bytes([3]) + rec(INGEST, batch(bad)) + rec(STREAM, batch(bad[:4]))
    raw = batch([ev("L7", "page_view", "u1")])
    s["non_utf8"] = bytes([0]) + rec(INGEST, raw.replace(b"L7", b"\xff7"))
    s["undecodable"] = bytes([0]) + rec(INGEST, b"\x0a\xff\xff\xff\x0f garbage") + \
        rec(STREAM, b"\x12\x99") + rec(STREAM | ONE_FRAME, b"marketing")
    s["oversized_batch"] = bytes([8]) + rec(INGEST, batch(
        [ev("L8", "page_view", "o%d" % i) for i in range(5)]))
    s["frames"] = bytes([0]) + rec(INGEST | TRUNCATED, batch(aida[:1])) + \
        rec(INGEST | DELIM, batch([ev("L9", "page_view", "f1")]))
    s["event_clock"] = bytes([4 | 2]) + rec(INGEST, batch(
        [ev("L10", "email_open", "c1", T0), ev("L10", "webinar_attended", "c2", T0 + 86400000 * 40),
         ev("L10", "form_submit", "c3", 0)])) + rec(LOOP)
    s["empty"] = bytes([0]) + rec(INGEST, b"")
    return s


def definition_seeds():
    with open(os.path.join(SRC, "handlers", "default.yaml"), "rb") as f:
        default = f.read()
    small = (b"name: small\nstages:\n  - {name: a, max_dwell: 1d}\n  - {name: b}\n"
             b"exits:\n  - {name: out}\ntransitions:\n  - {types: [x], to: b, source: sales}\n"
             b"  - {types: [y], to: out}\nscoring:\n  half_life: 1h30m\n  engagement:\n"
             b"    - {type: x, points: -2.5}\nqualification:\n  engagement: 10\n"
             b"handoff:\n  sla: 500ms\n")
    return {
        "default": default,
        "small": small,
        "malformed": b"name: [unclosed\nstages:\n  - {name: a\n",
        "wrong_type": small.replace(b"engagement: 10", b"engagement: lots"),
        "unknown_key": small + b"colour: blue\n",
        "unknown_stage": small.replace(b"to: b,", b"to: nowhere,"),
        "bad_duration": small.replace(b"max_dwell: 1d", b"max_dwell: 3 fortnights"),
        "dup_stage": small.replace(b"{name: b}", b"{name: a}"),
        "tabs": b"name:\tx\n\tstages: 1\n",
        "anchors": b"a: &x [1, *x]\n",
        "empty": b"",
    }


def config_seeds():
    return {
        "full": (b"state_dir: /tmp/funneld\nclock: event\nlog_level: debug\n"
                 b"group_max_events: 100\nmap_size_mb: 1\nmax_message_kb: 64\n"
                 b"subscribe:\n  - tcp://127.0.0.1:7800\n  - ipc:///tmp/up\n"),
        "malformed": b"state_dir: [x\n",
        "wrong_type": b"map_size_mb: big\n",
        "negative": b"group_max_events: -5\n",
        "unknown_key": b"colour: blue\n",
        "subscribe_scalar": b"subscribe: tcp://127.0.0.1:1\n",
        "quoted": b"state_dir: 'a \"quoted\" \\\\ dir'\n",
        "empty": b"",
    }


def main():
    for target, seeds in (("ingest", ingest_seeds()),
                          ("definition", definition_seeds()),
                          ("config", config_seeds())):
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):
            if name.startswith("seed-"):
                os.remove(os.path.join(d, name))
        for name, data in seeds.items():
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
        print("%s: %d seeds in %s" % (target, len(seeds), d))


if __name__ == "__main__":
    main()
