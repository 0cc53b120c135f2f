"""Consumers of the stored alert stream: funnelctl alerts, and funnelctl
watch resuming (--since, --resume) and filling gaps by itself."""

import json
import os
import select
import signal
import subprocess
import time

import pytest

from conftest import (FUNNELCTL_BIN, SALES, IngestClient, QueryClient, make_event,
                      now_ms, pb, uid, wait_until)


def qualify(lead, t0):
    return [make_event(lead, "demo_request", source=SALES, at_ms=t0),
            make_event(lead, "meeting_booked", source=SALES, at_ms=t0 + 1000),
            make_event(lead, "form_submit", at_ms=t0 + 2000)]


def ctl_argv(d, *args):
    return [FUNNELCTL_BIN, "--ingest", d.ingest_ep, "--alerts", d.alerts_ep,
            "--query", d.query_ep] + list(args)


def ndjson(text):
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def stored(query, seq=0, topics=()):
    out = []
    while True:
        req = pb.QueryRequest()
        req.alerts_since.seq = seq
        req.alerts_since.topics.extend(topics)
        rep = query.request(req)
        assert rep.error == "", rep.error
        out += list(rep.alerts_since.alerts)
        seq = rep.alerts_since.next_seq
        if not rep.alerts_since.more:
            return out


class Watch:
    """funnelctl watch as a process, its stdout read line by line."""

    def __init__(self, d, *args):
        self.p = subprocess.Popen(ctl_argv(d, *args), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.buf = b""

    def line(self, timeout=10):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def finish(self, timeout=60):
        out, err = self.p.communicate(timeout=timeout)
        return self.p.returncode, ndjson((self.buf + out).decode()), err.decode()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def test_funnelctl_alerts_prints_the_stored_alerts(daemon, ingest, query):
    t0 = now_ms() - 3_600_000
    leads = [uid("ca") for _ in range(6)]
    for i, lead in enumerate(leads):
        assert ingest.publish(qualify(lead, t0 + i * 10_000)).accepted == 3
    p = daemon.ctl("--json", "alerts", "--topic", "handoff")
    assert p.returncode == 0, p.stderr
    docs = ndjson(p.stdout.decode())
    assert [x["lead"] for x in docs] == leads
    want = [a.alert_seq for a in stored(query, 0, ["handoff"])]
    assert [x["alert_seq"] for x in docs] == want
    assert all(x["topic"] == "handoff" and x["snapshot"]["qualified"] for x in docs)

    # --since and --limit; several topics.
    p = daemon.ctl("--json", "alerts", "--since", str(want[1]), "--limit", "3",
                   "--topic", "handoff")
    assert [x["alert_seq"] for x in ndjson(p.stdout.decode())] == want[2:5]
    p = daemon.ctl("--json", "alerts", "--topic", "stage", "--topic", "handoff")
    seqs = [x["alert_seq"] for x in ndjson(p.stdout.decode())]
    assert seqs == [a.alert_seq for a in stored(query, 0, ["stage", "handoff"])]
    assert seqs == sorted(seqs) and set(want) <= set(seqs)
    # Text: a line per alert, starting with its number.
    p = daemon.ctl("alerts", "--topic", "handoff")
    lines = [ln for ln in p.stdout.decode().splitlines() if ln.startswith("#")]
    assert [int(ln.split()[0].lstrip("#")) for ln in lines] == want
    # Nothing after the last: nothing printed, exit 0.
    p = daemon.ctl("alerts", "--since", str(query.stats().alert_seq))
    assert p.returncode == 0 and p.stdout == b""


def test_funnelctl_alerts_refuses_bad_arguments(daemon):
    for args in (["alerts", "--since", "-1"], ["alerts", "--limit", "0"],
                 ["alerts", "handoff"], ["alerts", "--topic"]):
        p = daemon.ctl(*args)
        assert p.returncode == 2, args
        assert p.stderr.startswith(b"funnelctl: "), (args, p.stderr)


def test_watch_resume_prints_exactly_the_alerts_missed_while_stopped(tmp_path, zctx, daemon,
                                                                     ingest):
    resume = str(tmp_path / "resume")
    w = Watch(daemon, "--json", "watch", "handoff", "--resume", resume)
    try:
        # Without a file it starts at the live sequence and writes it.
        wait_until(lambda: os.path.exists(resume), 10, what="the resume file")
        start = int(open(resume).read())
        first = uid("first")
        assert ingest.publish(qualify(first, now_ms() - 60_000)).accepted == 3
        doc = w.line()
        assert doc and doc["lead"] == first and doc["alert_seq"] > start
        wait_until(lambda: int(open(resume).read()) == doc["alert_seq"], 10,
                   what="the resume file to hold the printed alert")
        w.p.send_signal(signal.SIGTERM)
        rc, rest, err = w.finish()
        assert rc == 0, err
        assert rest == []
    finally:
        w.kill()
    # 100 leads qualify while no watcher runs.
    t0 = now_ms() - 3_600_000
    leads = [uid("missed") for _ in range(100)]
    for i in range(0, 100, 10):
        evs = []
        for j, lead in enumerate(leads[i:i + 10]):
            evs += qualify(lead, t0 + (i + j) * 10_000)
        assert ingest.publish(evs).accepted == 30
    w = Watch(daemon, "--json", "watch", "handoff", "--resume", resume, "--count", "100")
    try:
        rc, docs, err = w.finish()
    finally:
        w.kill()
    assert rc == 0, err
    assert [x["lead"] for x in docs] == leads           # each once, in order
    seqs = [x["alert_seq"] for x in docs]
    assert seqs == sorted(set(seqs)) and seqs[0] > doc["alert_seq"]
    assert int(open(resume).read()) == seqs[-1]
    # Nothing is left after it: a third run prints nothing new.
    p = daemon.ctl("alerts", "--topic", "handoff", "--since", open(resume).read().strip())
    assert p.returncode == 0 and p.stdout == b""


def test_watch_resume_refuses_a_file_that_holds_no_number(tmp_path, daemon):
    bad = tmp_path / "resume"
    bad.write_text("twelve\n")
    p = daemon.ctl("watch", "--resume", str(bad), "--timeout", "1")
    assert p.returncode == 2
    assert b"does not hold an alert sequence number" in p.stderr
    assert bad.read_text() == "twelve\n"      # left as it was


def test_watch_since_follows_without_gap_or_duplicate_at_the_seam(zctx, daemon, ingest,
                                                                 query):
    t0 = now_ms() - 3_600_000
    for i in range(30):
        assert ingest.publish(qualify(uid("before"), t0 + i * 10_000)).accepted == 3
    w = Watch(daemon, "--json", "watch", "--since", "0")
    try:
        # More alerts while watch reads the stored ones and subscribes.
        for i in range(30):
            assert ingest.publish(qualify(uid("during"), t0 + (30 + i) * 10_000)).accepted == 3
        total = query.stats().alert_seq
        got = []
        while len(got) < total:
            doc = w.line()
            assert doc is not None, "watch stopped after %d of %d alerts" % (len(got), total)
            got.append(doc["alert_seq"])
        assert got == list(range(1, total + 1))
        # And the live ones after it.
        late = uid("late")
        assert ingest.publish(qualify(late, now_ms())).accepted == 3
        after = query.stats().alert_seq
        while len(got) < after:
            doc = w.line()
            assert doc is not None
            got.append(doc["alert_seq"])
        assert got == list(range(1, after + 1))
        assert doc["lead"] == late
    finally:
        w.kill()


def test_slow_watcher_fills_the_gap_by_itself(tmp_path, zctx, daemon_factory):
    d = daemon_factory(extra_args=["--alerts-hwm", "10"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    out = open(tmp_path / "watch.out", "wb")
    err = open(tmp_path / "watch.err", "wb")
    p = subprocess.Popen(ctl_argv(d, "watch", "stage", "--since", "0"), stdout=out, stderr=err)
    try:
        def printed():
            return open(tmp_path / "watch.out", "rb").read().decode().splitlines()
        # Live: it has seen a live alert once one comes after the catch-up.
        warm = uid("warm")
        assert c.publish([make_event(warm, "page_view")], timeout=60).accepted == 1
        wait_until(lambda: any(warm in ln for ln in printed()), 10, what="watch going")
        # The watcher stops reading; funneld drops its alerts beyond 10.
        p.send_signal(signal.SIGSTOP)
        t0 = now_ms() - 3_600_000
        for b in range(30):
            evs = [make_event(uid("slow"), "page_view", at_ms=t0 + b * 1000 + i)
                   for i in range(1000)]
            assert c.publish(evs, timeout=60).accepted == 1000
        total = q.stats().alert_seq
        p.send_signal(signal.SIGCONT)
        wait_until(lambda: len(printed()) >= total, 60, interval=0.1,
                   what="watch to print all %d stage alerts" % total)
        seqs = [int(ln.split()[0].lstrip("#")) for ln in printed()]
        assert seqs == list(range(1, total + 1))    # every one, once, in order
        text = open(tmp_path / "watch.err", "rb").read().decode()
        assert "missed on the live stream; fetched from funneld's store" in text, text
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.terminate()
            p.wait(10)
        out.close()
        err.close()
        q.close()
        c.close()
