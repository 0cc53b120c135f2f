"""A running backtest's progress (BacktestStatusQuery) and its cancellation
(BacktestCancel, funnelctl backtest on Ctrl-C). funneld runs with
FUNNELD_BACKTEST_LOCKSTEP=1: each backtest waits after every chunk of the
log (4096 entries) until a status query has seen it, so that these tests
see every step of a short backtest and cancel one that surely runs, on a
machine of any speed."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest
import zmq

from conftest import (FUNNELCTL_BIN, REPLY_TIMEOUT, Daemon, QueryClient, pb,
                      wait_until)
from test_quality import _default_text, _draft

SOURCE_DIR = os.environ["FUNNELD_SOURCE_DIR"]
EVENTS = 9000  # three chunks of the log (4096 entries each), and the deadline entries
ENDED = ("done", "cancelled", "failed")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backtest_progress")
    live = tmp / "live.yaml"
    live.write_text(_default_text())
    draft = _draft(tmp, lost_after="30d")
    events = tmp / "events.ndjson"
    with open(events, "w") as f:
        subprocess.run([os.path.join(SOURCE_DIR, "tools", "gen-events"), "--events",
                        str(EVENTS), "--leads", "1000", "--start", "2026-03-02T00:00:00Z",
                        "--spacing-ms", "60000", "--seed", "11"], stdout=f, check=True)
    ctx = zmq.Context()
    old = os.environ.get("FUNNELD_BACKTEST_LOCKSTEP")
    os.environ["FUNNELD_BACKTEST_LOCKSTEP"] = "1"
    try:
        d = Daemon(tmp, extra_args=["--clock", "event", "--definition", str(live)])
        d.start(ctx)
    finally:
        if old is None:
            del os.environ["FUNNELD_BACKTEST_LOCKSTEP"]
        else:
            os.environ["FUNNELD_BACKTEST_LOCKSTEP"] = old
    r = d.ctl("publish", str(events), json_out=True, timeout=120)
    assert r.returncode == 0, r.stderr
    q = QueryClient(ctx, d.query_ep)
    yield d, q, ctx, draft
    q.close()
    d.stop_ok()
    ctx.destroy(linger=0)


def _status(q, bid=""):
    """The status of backtest bid (empty: of every one); [] while funneld
    has not received bid (its query comes on another socket)."""
    req = pb.QueryRequest()
    req.backtest_status.id = bid
    rep = q.request(req)
    if bid and rep.error.startswith("no backtest with id %s " % bid):
        return []
    assert rep.WhichOneof("reply") == "backtest_status", rep
    return rep.backtest_status.backtests


def _send_backtest(ctx, d, draft, bid):
    """A DEALER with one BacktestQuery named bid in flight."""
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(d.query_ep)
    req = pb.QueryRequest(request_id="bt-" + bid)
    req.backtest.draft = draft.read_text()
    req.backtest.draft_name = draft.name
    req.backtest.id = bid
    s.send(req.SerializeToString())
    return s


def _reply(s, timeout=REPLY_TIMEOUT):
    assert s.poll(int(timeout * 1000), zmq.POLLIN), "no BacktestReply"
    rep = pb.QueryReply()
    rep.ParseFromString(s.recv_multipart()[-1])
    return rep


def _drive(q, bid, timeout=60):
    """Poll bid's status until it ended (each poll lets it go one chunk
    further); every status seen, in order."""
    seen = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1].state not in ENDED:
        assert time.monotonic() < deadline, seen[-3:]
        st = _status(q, bid)
        assert not seen or st, "backtest %s forgotten" % bid
        if st:
            assert len(st) == 1 and st[0].id == bid
            seen.append(st[0])
    return seen


def _full(ctx, d, q, draft, bid):
    s = _send_backtest(ctx, d, draft, bid)
    try:
        seen = _drive(q, bid)
        rep = _reply(s)
    finally:
        s.close(0)
    assert rep.error == "", rep.error
    return seen, rep.backtest


def test_progress_is_monotonic_and_ends_at_the_total(lab):
    d, q, ctx, draft = lab
    before = q.stats()
    seen, b = _full(ctx, d, q, draft, "steps")
    running = [st for st in seen if st.state == "running"]
    # Lockstep: every chunk is seen running, then the end.
    assert len([st for st in running if st.done > 0]) >= EVENTS // 4096, seen
    assert seen[-1].state == "done", seen[-1]
    assert all(a.done <= b_.done and a.elapsed_ms <= b_.elapsed_ms
               for a, b_ in zip(seen, seen[1:])), seen
    # The log up to the entry current when asked (it may still grow with
    # the deadline entries that event time made due).
    totals = {st.total for st in seen if st.total}
    assert totals == {b.upto_seq} and b.upto_seq >= before.last_seq, (totals, before)
    assert seen[-1].done == seen[-1].total == b.replayed == b.upto_seq
    assert seen[-1].definitions == 2 and seen[-1].draft_name == draft.name
    assert b.events == EVENTS and b.draft.handoffs > 0
    after = q.stats()
    assert after.backtests_done == before.backtests_done + 1
    assert after.backtests_running == 0
    assert "backtest steps of %s" % draft.name in d.stderr()


def test_cancel_stops_a_running_backtest(lab):
    d, q, ctx, draft = lab
    before = q.stats()
    s = _send_backtest(ctx, d, draft, "to-cancel")
    try:
        wait_until(lambda: [st.state for st in _status(q, "to-cancel")] == ["running"],
                   REPLY_TIMEOUT, what="backtest running")
        assert q.stats().backtests_running == 1
        req = pb.QueryRequest()
        req.backtest_cancel.id = "to-cancel"
        rep = q.request(req)
        assert rep.error == "", rep.error
        (st,) = rep.backtest_status.backtests
        assert st.state in ("cancelling", "cancelled"), st
        rep = _reply(s)
    finally:
        s.close(0)
    assert rep.WhichOneof("reply") is None
    assert "backtest to-cancel cancelled after" in rep.error, rep.error
    (st,) = _status(q, "to-cancel")
    assert st.state == "cancelled" and st.done < st.total, st  # stopped before the end
    after = q.stats()
    assert after.backtests_cancelled == before.backtests_cancelled + 1
    assert after.backtests_done == before.backtests_done
    assert after.backtests_running == 0
    ctl = json.loads(d.ctl("stats", json_out=True).stdout)
    assert ctl["backtests_cancelled"] == after.backtests_cancelled
    wait_until(lambda: "backtest to-cancel cancelled after" in d.stderr(), REPLY_TIMEOUT,
               what="the cancellation logged")

    # A cancel of an ended backtest changes nothing; of an unknown one, an error.
    req = pb.QueryRequest()
    req.backtest_cancel.id = "to-cancel"
    assert q.request(req).backtest_status.backtests[0].state == "cancelled"
    req.backtest_cancel.id = "no-such"
    assert "no backtest with id no-such" in q.request(req).error

    # The daemon goes on: a new backtest gives the whole answer.
    seen, b = _full(ctx, d, q, draft, "after-cancel")
    assert seen[-1].state == "done" and seen[-1].done == seen[-1].total
    assert b.replayed == b.upto_seq >= after.last_seq and b.events == EVENTS
    assert b.draft.handoffs > 0 and b.live.handoffs > 0


def test_backtest_ids_are_checked(lab):
    d, q, ctx, draft = lab
    for bid, why in (("steps", "known already"), ("bad id", "letters, digits")):
        s = _send_backtest(ctx, d, draft, bid)
        try:
            rep = _reply(s)
        finally:
            s.close(0)
        assert why in rep.error, rep.error


def _ctl_argv(d, *args):
    return [FUNNELCTL_BIN, "--query", d.query_ep] + list(args)


def test_funnelctl_on_a_terminal_draws_the_progress(lab):
    d, q, ctx, draft = lab
    master, slave = pty.openpty()
    p = subprocess.Popen(_ctl_argv(d, "backtest", str(draft)), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    term = b""
    try:
        while True:
            r, _, _ = select.select([master], [], [], 60)
            assert r, term
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            term += chunk
        out = p.communicate(timeout=60)[0].decode()
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, term
    text = term.decode()
    assert "\r\x1b[K" in text
    assert re.search(r"backtest: 4,096 of [1-9][0-9]{0,2}(,[0-9]{3})* log entries \([0-9]+%\), "
                     r"[0-9]+\.[0-9] s", text), text
    assert "draft" in out and "only" in out  # the report went to stdout


def test_funnelctl_ctrl_c_cancels_and_draws_nothing_without_a_terminal(lab):
    d, q, ctx, draft = lab
    p = subprocess.Popen(_ctl_argv(d, "backtest", str(draft)), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def running():
            mine = [st for st in _status(q) if st.id.startswith("ctl-") and
                    st.state not in ENDED]
            return mine[0] if mine and mine[0].state == "running" else None
        st = wait_until(running, REPLY_TIMEOUT, what="funnelctl's backtest running")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    err = err.decode()
    assert p.returncode == 130, err
    assert out == b""
    # funnelctl waits 5 s for funneld to say where the backtest stopped
    # (a chunk can take longer on a slow build), else says it is stopping.
    assert "interrupted" in err and ("cancelled after" in err or
                                     "funneld cancels backtest %s" % st.id in err), err
    assert "\r" not in err and "log entries (" not in err, err
    wait_until(lambda: _status(q, st.id)[0].state == "cancelled", 60,
               what="backtest %s cancelled" % st.id)
    # Neither --help nor the README hides that a client gone does not cancel.
    h = subprocess.run(_ctl_argv(d, "backtest", "--help"), capture_output=True)
    assert b"BacktestCancel" in h.stdout or b"cancel request" in h.stdout
