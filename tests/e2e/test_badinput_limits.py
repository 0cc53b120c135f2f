"""Bad input, continued (see test_badinput.py): every limit and every kind
of malformed string is refused with a reason and counted, never a crash;
broken config and definition files are errors with file:line, exit 2."""

import os
import subprocess

import zmq

import pytest

from conftest import (FUNNELD_BIN, IngestClient, QueryClient, make_batch,
                      make_event, now_ms, pb, uid)

DAY = 86_400_000


def _reason(ack, i):
    rej = {r.index: r.reason for r in ack.rejections}
    assert i in rej, "event %d not rejected: %s" % (i, ack)
    return rej[i]


def test_limits_on_strings_attrs_and_times(ingest, query, daemon):
    st0 = query.stats()
    t = now_ms()
    cases = [  # (event, words the reason must contain)
        (make_event("x" * 129, "page_view"), ["lead_id", "128"]),
        (make_event(uid("l"), "page_view", event_id="i" * 129), ["id", "128"]),
        (make_event(uid("l"), "t" * 65), ["type", "64"]),
        (make_event(uid("l"), "page_view", attrs={"k" * 65: "v"}), ["attribute key"]),
        (make_event(uid("l"), "page_view", attrs={"k": "v" * 257}), ["attrs[k]", "256"]),
        (make_event(uid("l"), "page_view", attrs={"": "v"}), ["attribute key"]),
        (make_event(uid("l"), "page_view",
                    attrs={"a%02d" % i: "v" for i in range(33)}), ["33 attrs", "32"]),
        (make_event(uid("l"), "page_view", publisher="p" * 129, seq=1), ["publisher"]),
        (make_event(uid("l"), "page_view", at_ms=946684800000 - 1), ["occurred_at_ms"]),
        (make_event(uid("l"), "page_view", at_ms=-5), ["occurred_at_ms"]),
        (make_event(uid("l"), "page_view", at_ms=t + DAY + 3_600_000), ["future"]),
        (make_event(uid("l"), "page_view", at_ms=2 ** 62), ["future"]),
        (make_event(uid("l"), "page_view", value=float("-inf")), ["value"]),
        (make_event("", "page_view"), ["lead_id"]),
    ]
    ok = [  # at the limits: accepted
        make_event("y" * 128, "page_view"),
        make_event(uid("l"), "page_view", attrs={"a%02d" % i: "v" * 256 for i in range(32)}),
        make_event(uid("l"), "page_view", at_ms=946684800000),
        make_event(uid("l"), "page_view", at_ms=t + DAY - 60_000),
        make_event(uid("l"), "page_view", attrs={"k": ""}),
        make_event(uid("l"), "page_view", attrs={"ключ": "値 ✓"}),
    ]
    evs = [e for e, _ in cases] + ok
    ack = ingest.publish(evs)
    assert ack.error == ""
    for i, (e, words) in enumerate(cases):
        r = _reason(ack, i)
        for w in words:
            assert w in r, "event %d: reason %r lacks %r" % (i, r, w)
    assert ack.accepted == len(ok), ack
    for e in ok:
        assert query.lead(e.lead_id) is not None, e.lead_id
    st = query.stats()
    assert st.rejected - st0.rejected == len(cases)
    assert daemon.running()


def _patch(batch, old, new):
    raw = batch.SerializeToString()
    assert raw.count(old) == 1
    return raw.replace(old, new)


def test_non_utf8_in_every_string_field(ingest, query, daemon):
    """Google's protobuf will not build a non-UTF-8 string: patch bytes."""
    st0 = query.stats()
    fields = {"id": None, "lead_id": None, "type": None, "attr key": None,
              "attr value": None, "publisher": None}
    n = 0
    for field in fields:
        tag = uid("Q")              # unique ASCII marker to patch
        kw = {}
        if field == "id":
            e = make_event(uid("l"), "page_view", event_id=tag)
        elif field == "lead_id":
            e = make_event(tag, "page_view")
        elif field == "type":
            e = make_event(uid("l"), tag)
        elif field == "attr key":
            e = make_event(uid("l"), "page_view", attrs={tag: "v"})
        elif field == "attr value":
            e = make_event(uid("l"), "page_view", attrs={"k": tag})
        else:
            e = make_event(uid("l"), "page_view", publisher=tag, seq=1)
        good = make_event(uid("ok"), "page_view")
        b = make_batch([e, good], batch_id=uid("b"))
        # an overlong encoding of "/" and a lone continuation byte
        for bad in (b"\xc0\xaf", b"\x80", b"\xed\xa0\x80"):
            raw = _patch(b, tag.encode(), tag.encode()[:-len(bad)] + bad)
            ingest.send_raw(raw)
            assert ingest.sock.poll(10_000), "no Ack for non-UTF-8 %s" % field
            frame = ingest.sock.recv()
            ack = pb.Ack()
            try:
                ack.ParseFromString(frame)
            except Exception as e:
                pytest.fail("the Ack for an event with a non-UTF-8 %s is not valid "
                            "protobuf (%s): funneld echoes the invalid bytes in a "
                            "string field (Rejection.event_id?): %r" % (field, e, frame))
            n += 1
            if ack.error:
                continue            # refused whole: acceptable, with a reason
            assert [r.index for r in ack.rejections] == [0], (field, ack)
            assert "UTF-8" in ack.rejections[0].reason, ack
            assert ack.accepted + ack.duplicates == 1
            fields[field] = ack.rejections[0].reason
    assert daemon.running()
    st = query.stats()
    assert st.rejected - st0.rejected >= n
    # the per-event path was taken for most fields (not only whole refusals)
    assert sum(1 for v in fields.values() if v) >= 4, fields


def test_oversized_message_is_dropped_and_daemon_lives(zctx, daemon_factory, tmp_path):
    cfg = tmp_path / "funneld.yaml"
    cfg.write_text("max_message_kb: 64\nmax_batch_events: 100\n")
    d = daemon_factory(extra_args=["--config", str(cfg)])
    q = QueryClient(zctx, d.query_ep)
    st0 = q.stats()
    # over ZMQ_MAXMSGSIZE: ZeroMQ drops the connection, no Ack can come
    big = IngestClient(zctx, d.ingest_ep)
    lead = uid("big")
    big.send(make_batch([make_event(lead, "page_view", attrs={"pad": "x" * 250})
                         for _ in range(300)]))      # ~100 KiB
    assert big.recv_ack(2.0) is None
    big.close()
    assert q.lead(lead) is None
    # over max_batch_events but under the size limit: refused with a reason
    c = IngestClient(zctx, d.ingest_ep)
    c.send(make_batch([make_event(uid("many"), "page_view") for _ in range(101)],
                      batch_id="many"))
    ack = c.recv_ack()
    assert ack is not None, "no Ack for a batch over max_batch_events"
    assert ack.error and "101" in ack.error and "100" in ack.error, ack
    # a publisher with a window of batches must know which one was refused
    assert ack.batch_id == "many", "the refusal does not name the batch: %r" % ack
    # a query message over the limit does not stop the query socket either
    s = zctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(d.query_ep)
    s.send(b"\x0a" + b"\xff" * (80 << 10))
    s.close(0)
    # and it still works
    ok = uid("ok")
    assert c.publish([make_event(ok, "page_view")]).accepted == 1
    assert q.lead(ok) is not None
    st = q.stats()
    assert st.rejected - st0.rejected == 1          # the refused batch
    assert st.applied - st0.applied == 1
    assert d.running()
    c.close()
    q.close()


# --------------------------------------------------------------------------
# config and definition files

def _run(*args, timeout=30):
    return subprocess.run([FUNNELD_BIN, *args], capture_output=True, text=True,
                          timeout=timeout)


BAD_CONFIGS = [  # (text, line the error must name)
    ("state_dir: /tmp/x\nmap_size_mb: [1\n", 2),
    ("state_dir: /tmp/x\nmap_size_mb: big\n", 2),
    ("log_level: info\n\ngroup_max_events: -3\n", 3),
    ("clock: wall\ncolour: blue\n", 2),
    ("subscribe: tcp://127.0.0.1:1\n", 1),
    ("state_dir:\n  nested: 1\n", 2),
    ("\t- tab\n", 1),
]


def test_bad_config_files_exit_2_with_file_and_line(tmp_path):
    for i, (text, line) in enumerate(BAD_CONFIGS):
        f = tmp_path / ("bad%d.yaml" % i)
        f.write_text(text)
        state = tmp_path / ("state%d" % i)
        r = _run("--config", str(f), "--state-dir", str(state))
        assert r.returncode == 2, (text, r.returncode, r.stderr)
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1, err
        assert "%s:%d:" % (f, line) in err, (text, err)
        assert not state.exists(), "state touched before the config was checked"
    # binary garbage and an empty file
    g = tmp_path / "garbage.yaml"
    g.write_bytes(b"\x00\xff\xfe: \x01\n\x80")
    r = _run("--config", str(g), "--dump-config")
    assert r.returncode == 2 and str(g) in r.stderr, r.stderr
    e = tmp_path / "empty.yaml"
    e.write_text("")
    r = _run("--config", str(e), "--dump-config")
    assert r.returncode == 0, r.stderr
    # a missing file
    r = _run("--config", str(tmp_path / "nope.yaml"), "--dump-config")
    assert r.returncode == 2 and "nope.yaml" in r.stderr


def test_dump_config_round_trips_strings_that_need_quoting(tmp_path):
    """--dump-config prints a valid config file: strings with quotes or
    backslashes must survive a round trip."""
    f = tmp_path / "q.yaml"
    weird = 'a "quoted" \\ dir'
    f.write_text("state_dir: '%s'\n" % weird.replace("'", "''"))
    r = _run("--config", str(f), "--dump-config")
    assert r.returncode == 0, r.stderr
    dump = tmp_path / "dump.yaml"
    dump.write_text(r.stdout)
    r2 = _run("--config", str(dump), "--dump-config")
    assert r2.returncode == 0, "the dump is not a valid config:\n%s\n%s" % (r.stdout, r2.stderr)
    assert r2.stdout == r.stdout


def test_bad_definition_files_exit_2_with_file_and_line(tmp_path):
    src = os.environ.get("FUNNELD_SOURCE_DIR", ".")
    with open(os.path.join(src, "handlers", "default.yaml")) as fh:
        good = fh.read()
    assert "engagement: 50" in good
    cases = [
        good.replace("engagement: 50", "engagement: [50"),      # malformed YAML
        good.replace("engagement: 50", "engagement: lots"),     # wrong type
        good.replace("name: aida", "name: [aida]"),             # wrong type
        good + "\nsurprise: 1\n",                               # unknown key
        "\x00\xff not yaml",
    ]
    for i, text in enumerate(cases):
        f = tmp_path / ("def%d.yaml" % i)
        f.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
        state = tmp_path / ("dstate%d" % i)
        r = _run("--definition", str(f), "--state-dir", str(state), "--log-level", "error",
                 "--ingest", "tcp://127.0.0.1:1", "--query", "tcp://127.0.0.1:1",
                 "--alerts", "tcp://127.0.0.1:1")
        assert r.returncode == 2, (i, r.returncode, r.stderr)
        assert str(f) in r.stderr, r.stderr
        if i < 4:
            assert ("%s:" % f) in r.stderr and any(
                ("%s:%d" % (f, n)) in r.stderr for n in range(1, 200)), r.stderr
