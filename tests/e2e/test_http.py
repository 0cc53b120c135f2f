"""HTTP for operations: /metrics in the Prometheus text format (checked by
Debian's promtool, values equal to `funnelctl stats` and `funnelctl
funnel`), /healthz and /readyz, the bearer token, and the rules for
where HTTP may listen. Disk full on /readyz: see test_faults.py."""

import json
import re
import shutil
import subprocess

import pytest

from conftest import (REPLY_TIMEOUT, SALES, CurveKeys, IngestClient, free_port,
                      make_event, uid, write_clients_file)

PROMTOOL = shutil.which("promtool")
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """{(name, frozenset of label pairs): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def promtool_check(text):
    if PROMTOOL is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).decode()


def test_metrics_pass_promtool_and_equal_funnelctl(daemon_factory, zctx):
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    lead = uid("L")
    dup = make_event(lead, "page_view")
    assert c.publish([dup, make_event(lead, "form_submit")]).accepted == 2
    assert c.publish([dup]).duplicates == 1
    bad = make_event(uid("L"), "page_view")
    bad.ClearField("source")
    assert len(c.publish([bad, make_event(uid("L"), "page_view")]).rejections) == 1
    # a handoff: engagement 10+25+20 >= 50
    for t in ("demo_request", "meeting_booked"):
        assert c.publish([make_event(lead, t, source=SALES)]).accepted == 1
    c.send_raw(b"\xff\xff not protobuf")
    assert c.recv_ack().error
    c.close()

    status, text, headers = d.http_get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    rc, out = promtool_check(text)
    assert rc == 0 and out.strip() == "", out
    m = parse(text)

    r = d.ctl("stats", json_out=True)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    for name, key in [("funneld_events_received_total", "received"),
                      ("funneld_events_applied_total", "applied"),
                      ("funneld_events_duplicate_total", "duplicates"),
                      ("funneld_events_rejected_total", "rejected"),
                      ("funneld_commits_total", "commits"),
                      ("funneld_alerts_raised_total", "alerts"),
                      ("funneld_deadlines_fired_total", "deadlines"),
                      ("funneld_stream_gaps_total", "gaps"),
                      ("funneld_stream_messages_total", "stream_messages"),
                      ("funneld_log_last_seq", "last_seq"),
                      ("funneld_leads", "leads"),
                      ("funneld_auth_refused_total", "auth_refused"),
                      ("funneld_alert_queries_total", "alert_queries")]:
        assert value(m, name) == st[key], (name, value(m, name), st[key])
    assert st["applied"] == 5 and st["duplicates"] == 1

    r = d.ctl("funnel", json_out=True)
    assert r.returncode == 0, r.stderr
    fun = json.loads(r.stdout)
    for s in fun["stages"]:
        assert value(m, "funneld_stage_leads", stage=s["stage"]) == s["now"], s
        assert value(m, "funneld_stage_entered_total", stage=s["stage"]) == s["entered"], s
    assert value(m, "funneld_handoffs_total", result="sent") == 1

    # What the process measured: rejections by reason, batches, histograms.
    assert value(m, "funneld_events_rejected_by_reason_total", reason="bad_source") == 1
    assert value(m, "funneld_events_rejected_by_reason_total", reason="undecodable") == 1
    assert sum(v for (n, _), v in m.items()
               if n == "funneld_events_rejected_by_reason_total") == st["rejected"]
    assert value(m, "funneld_batches_total", origin="ingest") == 6
    # every batch that decoded got an Ack: 5 of them; each group's events
    assert value(m, "funneld_ack_latency_seconds_count") == 5
    assert value(m, "funneld_ack_latency_seconds_bucket", le="+Inf") == 5
    assert value(m, "funneld_group_events_sum") == st["received"] - 1
    assert value(m, "funneld_group_commit_seconds_count") >= 1
    assert value(m, "funneld_ready") == 1
    assert value(m, "funneld_store_used_bytes", env="log") > 0
    assert value(m, "funneld_store_map_bytes", env="state") >= \
        value(m, "funneld_store_used_bytes", env="state")
    build = [k for k in m if k[0] == "funneld_build_info"]
    assert len(build) == 1 and ("curve", "off") in build[0][1]


def mdb_free_pages(env_dir):
    """The free pages of an LMDB environment, as lmdb-utils' mdb_stat -f
    counts them (4096-byte pages on the machines funneld runs on)."""
    r = subprocess.run(["mdb_stat", "-f", env_dir], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    found = re.search(r"Free pages: (\d+)", r.stdout)
    assert found, r.stdout
    return int(found.group(1))


def test_store_free_bytes_are_lmdb_free_lists(daemon_factory, zctx):
    """funneld_store_free_bytes: the free lists of the log and of every
    partition's state, equal to what mdb_stat -f reads beside the running
    daemon (scraped before and after it, so that a commit between them is
    seen and the comparison taken again)."""
    assert shutil.which("mdb_stat"), "mdb_stat (lmdb-utils) is missing"
    d = daemon_factory(extra_args=["--partitions", "2"])
    c = IngestClient(zctx, d.ingest_ep)
    # Batches committed one by one: each commit frees the pages it copied.
    for i in range(6):
        assert c.publish([make_event(uid("L"), "page_view") for _ in range(50)]).accepted == 50
    c.close()
    assert d.ctl("stats", json_out=True).returncode == 0  # waits until applied
    for attempt in range(5):
        before = parse(d.http_get("/metrics")[1])
        log_pages = mdb_free_pages(d.state_dir + "/log")
        state_pages = (mdb_free_pages(d.state_dir + "/state") +
                       mdb_free_pages(d.state_dir + "/state.p1"))
        after = parse(d.http_get("/metrics")[1])
        if all(value(before, "funneld_store_free_bytes", env=e) ==
               value(after, "funneld_store_free_bytes", env=e) for e in ("log", "state")):
            break
    assert value(after, "funneld_store_free_bytes", env="log") == log_pages * 4096
    assert value(after, "funneld_store_free_bytes", env="state") == state_pages * 4096
    assert state_pages > 0, "six commits freed no page of the state"
    for e in ("log", "state"):
        assert value(after, "funneld_store_free_bytes", env=e) < \
            value(after, "funneld_store_used_bytes", env=e)
    assert value(after, "funneld_store_file_bytes", env="state") > 0


def test_health_ready_and_errors(daemon_factory):
    d = daemon_factory()
    assert d.http_get("/healthz")[:2] == (200, "ok\n")
    assert d.http_get("/readyz")[:2] == (200, "ready\n")
    assert d.http_get("/nowhere")[0] == 404
    assert d.http_get("/metrics", method="POST")[0] == 405
    assert d.http_get("/metrics", method="HEAD")[0] == 200


def test_token_and_curve(daemon_factory, tmp_path, zctx):
    server = CurveKeys().write(tmp_path, "server")
    crm = CurveKeys()
    clients = tmp_path / "clients"
    write_clients_file(clients, [(crm, "crm")])
    token = tmp_path / "token"
    token.write_text("s3cret-%s\n" % uid("t"))
    d = daemon_factory(curve=(server.public, crm),
                       extra_args=["--curve-secret-file", server.key_file,
                                   "--curve-clients-file", str(clients),
                                   "--http-token-file", str(token)])
    good = token.read_text().strip()
    assert d.http_get("/metrics")[0] == 401
    assert d.http_get("/metrics", token="wrong")[0] == 401
    assert d.http_get("/healthz", token=good[:-1])[0] == 401
    status, text, _ = d.http_get("/metrics", token=good)
    assert status == 200
    m = parse(text)
    assert value(m, "funneld_auth_clients") == 1
    assert any(("curve", "on") in k[1] for k in m if k[0] == "funneld_build_info")
    rc, out = promtool_check(text)
    assert rc == 0, out


def test_where_http_may_listen(daemon_factory, tmp_path, zctx):
    d = daemon_factory(start=False, extra_args=["--http", "0.0.0.0:%d" % free_port()])
    d.spawn()
    assert d.proc.wait(REPLY_TIMEOUT) == 2
    assert "refusing to serve http on 0.0.0.0" in d.stderr()
    assert "http_token_file" in d.stderr()
    # A port that is taken is an error at start-up, named.
    first = daemon_factory()
    d2 = daemon_factory(start=False, state_dir=tmp_path / "other")
    d2.http_port = first.http_port
    d2.spawn()
    assert d2.proc.wait(REPLY_TIMEOUT) == 2
    assert "cannot listen for http on 127.0.0.1:%d" % first.http_port in d2.stderr()
    # Empty: no HTTP at all.
    d3 = daemon_factory(start=False, state_dir=tmp_path / "third", extra_args=["--http", ""])
    d3.start(zctx)
    assert "[http]" not in d3.stderr()
