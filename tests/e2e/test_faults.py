"""Resource faults and operations: disk full, slow or absent consumers,
SIGTERM under load, a second daemon on the same state directory."""

import os
import signal
import subprocess
import time

import pytest
import zmq

from conftest import (FUNNELD_BIN, AlertSubscriber, Daemon, IngestClient,
                      QueryClient, make_batch, make_event, now_ms, uid, wait_until)


# --------------------------------------------------------------------------
# disk full

@pytest.fixture
def small_fs(tmp_path):
    """A 16 MiB tmpfs (needs root and mount(2)); skipped where not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs",
                        str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs to fill up (needs root): %s"
                    % (r.stderr.strip() or r.returncode))
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path, leave=2 << 20):
    """Write a filler file until the filesystem is full, then give back
    `leave` bytes, so that funneld commits a few groups before it fills."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (256 << 10, 4096, 512):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError:
                pass
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)


def test_disk_full_pauses_then_resumes_losing_nothing(zctx, daemon_factory, small_fs, tmp_path):
    cfg = tmp_path / "funneld.yaml"
    cfg.write_text("map_size_mb: 64\n")
    d = daemon_factory(state_dir=small_fs / "state", extra_args=["--config", str(cfg)])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["ingest.store"])
    sub.sync(c)
    st0 = q.stats()
    _fill(small_fs / "filler")

    pad = "p" * 200
    acked, sent, stuck = {}, [], None
    for b in range(400):
        evs = [make_event("df-%d-%d" % (b, i), "page_view", event_id="df-%d-%d" % (b, i),
                          attrs={"note": pad, "n": str(i)}) for i in range(200)]
        batch = make_batch(evs, batch_id="df-%d" % b)
        sent.append(batch)
        c.send(batch)
        ack = c.recv_ack(3.0)
        if ack is None:
            stuck = batch.batch_id
            break
        assert ack.error == "" and ack.accepted == 200, ack
        acked[ack.batch_id] = ack
    assert stuck is not None, "the disk never filled up"
    if not d.running():
        rc = d.proc.poll()
        pytest.fail("funneld died when the disk filled up (exit %r%s) instead of "
                    "pausing intake:\n%s" % (rc, ", SIGBUS" if rc == -signal.SIGBUS else "",
                                               d.stderr(40)))

    # it says why, on the alert topic and in its log
    t, a = sub.await_alert(lambda t, a: t == "ingest.store", what="ingest.store alert")
    assert a.kind == "store" and a.reasons, a
    wait_until(lambda: "cannot commit" in d.stderr(), 10, what="the log saying why")
    assert "No space left" in d.stderr() or "ENOSPC" in d.stderr() or \
        "MDB_" in d.stderr() or "space" in d.stderr(), d.stderr()
    # ... keeps answering queries, and acknowledges nothing meanwhile
    st = q.stats()
    assert st is not None and d.running()
    assert q.lead("df-0-0") is not None
    more = make_batch([make_event(uid("wait"), "page_view")], batch_id="df-more")
    c.send(more)
    assert c.recv_ack(1.5) is None, "an Ack while the store cannot commit"
    # ... and HTTP says so: alive, not ready, with the store's reason
    assert d.http_get("/healthz")[0] == 200
    status, text, _ = d.http_get("/readyz")
    assert status == 503, text
    assert text.startswith("intake paused, the store cannot commit: ") and \
        "no space left on the disk" in text, text
    status, text, _ = d.http_get("/metrics")
    assert status == 200 and "\nfunneld_intake_paused 1\n" in text

    # space returns: it resumes by itself, and the pending batches get Acks
    os.unlink(small_fs / "filler")
    got = {}
    deadline = time.monotonic() + 30
    while len(got) < 2:
        left = deadline - time.monotonic()
        ack = c.recv_ack(left) if left > 0 else None
        assert ack is not None, "no Ack after space returned; got %s\n%s" % (
            sorted(got), d.stderr())
        got[ack.batch_id] = ack
    assert set(got) == {stuck, "df-more"}
    assert got[stuck].accepted + got[stuck].duplicates == 200
    wait_until(lambda: "intake resumed" in d.stderr(), 10, what="resume logged")
    assert d.http_get("/readyz")[:2] == (200, "ready\n")

    n_unique = 200 * (len(acked) + 1) + 1
    # the state's side may have stopped too (no room for its pages): it
    # retries every second, and applies every event once
    st = wait_until(lambda: (lambda s: s if s.applied - st0.applied >= n_unique else None)(
        q.stats()), 15, what="the state applying every logged event")
    assert st.applied - st0.applied == n_unique, st
    # every event logged once: the log holds exactly the events applied
    assert st.last_seq - st0.last_seq == n_unique, st
    for b in list(acked)[:: max(1, len(acked) // 10)] + [stuck]:
        n = b.split("-")[1]
        assert q.lead("df-%s-199" % n).events == 1
    c.close()
    q.close()
    sub.close()
    d.stop_ok()
    # the rebuild's scratch state goes beside the small disk: that holds
    # about as much state as it had room for, and no second copy of it
    r = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir, "--rebuild",
                        "--rebuild-dir", str(tmp_path / "rebuilt")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "identical" in r.stdout, r.stdout + r.stderr


# --------------------------------------------------------------------------
# slow consumers never block ingest

def _publish_many(c, prefix, n_batches=40, per=500, timeout=20.0):
    """Publish n_batches new leads' events (each a stage alert); returns the
    seconds it took to get every Ack."""
    t0 = time.monotonic()
    for b in range(n_batches):
        c.send(make_batch([make_event("%s-%d-%d" % (prefix, b, i), "page_view")
                           for i in range(per)], batch_id="%s-%d" % (prefix, b)))
    for _ in range(n_batches):
        ack = c.recv_ack(max(0.1, timeout - (time.monotonic() - t0)))
        assert ack is not None, "ingest blocked: Acks stopped"
        assert ack.accepted == per
    return time.monotonic() - t0


def test_slow_or_absent_alert_subscriber_never_blocks_ingest(zctx, daemon_factory, tmp_path):
    cfg = tmp_path / "funneld.yaml"
    cfg.write_text("alerts_hwm: 50\n")
    d = daemon_factory(extra_args=["--config", str(cfg)])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    # absent: nobody subscribed
    _publish_many(c, "abs", n_batches=10)
    # slow: a subscriber to everything that never reads, tiny receive queue
    slow = zctx.socket(zmq.SUB)
    slow.setsockopt(zmq.RCVHWM, 10)
    slow.setsockopt(zmq.RCVBUF, 4096)
    slow.setsockopt(zmq.LINGER, 0)
    slow.setsockopt(zmq.SUBSCRIBE, b"")
    slow.connect(d.alerts_ep)
    live = AlertSubscriber(zctx, d.alerts_ep, ["stage"])
    live.sync(c)
    _publish_many(c, "slow", n_batches=40)       # 20000 stage alerts
    # every Ack came; the state applies them all too (a stats query waits
    # up to 10 s for that, too little for ThreadSanitizer at a high load)
    wait_until(lambda: q.stats().applied >= 25000, 90, interval=0.2,
               what="the state to apply the 25,000 acknowledged events")
    # the healthy subscriber gets alerts again once it reads: alerts it
    # did not read in time were dropped at the high-water mark, never queued
    # without bound, and never held ingest up
    deadline = time.monotonic() + 45
    got = False
    while not got:
        assert time.monotonic() < deadline, "no stage alert after the flood"
        lead = uid("after")
        assert c.publish([make_event(lead, "page_view")]).accepted == 1
        end = time.monotonic() + 0.2
        while not got and time.monotonic() < end:
            item = live.recv(end - time.monotonic())
            got = item is not None and item[1].lead_id == lead
    assert d.running()
    slow.close(0)
    live.close()
    c.close()
    q.close()


def test_slow_query_client_never_blocks_ingest(zctx, daemon):
    c = IngestClient(zctx, daemon.ingest_ep)
    _publish_many(c, "pre", n_batches=4)
    # a query client that asks a lot and never reads its replies
    slow = zctx.socket(zmq.DEALER)
    slow.setsockopt(zmq.RCVHWM, 1)
    slow.setsockopt(zmq.RCVBUF, 4096)
    slow.setsockopt(zmq.SNDHWM, 0)
    slow.setsockopt(zmq.LINGER, 0)
    slow.connect(daemon.query_ep)
    from conftest import pb
    for i in range(3000):
        req = pb.QueryRequest(request_id="slow-%d" % i)
        if i % 2:
            req.funnel.SetInParent()
        else:
            req.lead.lead_id = "pre-0-%d" % (i % 500)
            req.lead.timeline_limit = 1000
        slow.send(req.SerializeToString())
    took = _publish_many(c, "q", n_batches=20)
    assert took < 20
    q = QueryClient(zctx, daemon.query_ep)
    assert q.lead("q-19-499") is not None
    assert q.stats().applied == 24 * 500
    slow.close(0)
    q.close()
    c.close()


# --------------------------------------------------------------------------
# operations

def test_sigterm_under_heavy_publish_is_bounded_and_loses_nothing(zctx, daemon_factory):
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    per, n_batches = 4000, 30
    batches = [make_batch([make_event("ht-%d" % (i % 1000), "email_open",
                                      event_id="ht-%d-%d" % (b, i)) for i in range(per)],
                          batch_id="ht-%d" % b) for b in range(n_batches)]
    for b in batches:
        c.send(b)                 # all in flight at once
    first = c.recv_ack(20)
    assert first is not None
    acked = {first.batch_id: first}
    t0 = time.monotonic()
    d.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("funneld did not exit within 10 s of SIGTERM under load")
    took = time.monotonic() - t0
    assert rc == 0, d.stderr()
    while True:
        ack = c.recv_ack(0.5)
        if ack is None:
            break
        acked[ack.batch_id] = ack
    d.stop()                      # reap and record
    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    st = q.stats()
    n_acked = sum(a.accepted for a in acked.values())
    assert st.applied >= n_acked, (st.applied, n_acked)
    assert st.last_seq == st.applied
    # what was acked is there; resending everything completes the set once
    c2 = IngestClient(zctx, d.ingest_ep)
    for b in batches:
        ack = c2.publish(list(b.events), batch_id=b.batch_id, timeout=30)
        assert ack.accepted + ack.duplicates == per
        if b.batch_id in acked:
            assert ack.duplicates == per, b.batch_id
    st = q.stats()
    assert st.applied == per * n_batches and st.last_seq == per * n_batches
    print("SIGTERM under load: exit after %.2f s, %d of %d batches acked first"
          % (took, len(acked), n_batches))
    c.close()
    c2.close()
    q.close()


def test_second_daemon_on_the_same_state_dir_refuses(zctx, daemon_factory, tmp_path):
    d1 = daemon_factory()
    d2 = Daemon(tmp_path, state_dir=d1.state_dir, log_name="second")
    r = subprocess.run(d2.argv(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    msg = r.stderr
    assert "in use" in msg and str(d1.proc.pid) in msg, msg
    assert d1.state_dir in msg, msg
    # the first one is unharmed
    c = IngestClient(zctx, d1.ingest_ep)
    assert c.publish([make_event(uid("ok"), "page_view")]).accepted == 1
    c.close()
