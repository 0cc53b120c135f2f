"""Checkpoints: a power loss (staged with FUNNELD_BOOT_ID: the next start
is in another boot, so the state open at the kill cannot be trusted) is
recovered from the newest intact checkpoint plus the log after it; a torn
or truncated checkpoint is skipped for an older one; a disk that fills up
during a checkpoint leaves ingest running; --rebuild cleans up after
itself."""

import json
import os
import signal
import subprocess

from conftest import (FUNNELD_BIN, IngestClient, QueryClient, at_rest, make_event, now_ms, pb,
                      wait_until)

TYPES = ["page_view", "email_open", "form_submit", "content_download",
         "demo_request", "meeting_booked", "closed_won", "closed_lost"]


def _publish(c, prefix, n_batches, per=100, n_leads=150, t0=None):
    """Acknowledged batches of events over n_leads leads; returns how many."""
    t0 = t0 if t0 is not None else now_ms() - 60_000
    for b in range(n_batches):
        evs = []
        for i in range(per):
            k = b * per + i
            typ = TYPES[(k * 7 + b) % len(TYPES)]
            evs.append(make_event("ck-%03d" % ((k * 13) % n_leads), typ,
                                  source=2 if typ.startswith(("closed", "meet", "demo")) else 1,
                                  event_id="%s-%d" % (prefix, k), at_ms=t0 + k))
        ack = c.publish(evs, batch_id="%s-b%d" % (prefix, b))
        assert ack.accepted == per and not ack.rejections, ack
    return n_batches * per


def _checkpoint(d):
    r = d.ctl("checkpoint", json_out=True)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["state"] == "done", doc
    return doc["checkpoint"]


def _leads(q, n_leads=150):
    out = {}
    for i in range(n_leads):
        r = q.lead_reply("ck-%03d" % i, timeline_limit=1000)
        if r.found:
            out[r.lead.id] = (at_rest(r.lead).SerializeToString(deterministic=True),
                              [(t.seq, t.event.id) for t in r.timeline])
    return out


def _rebuild(d):
    r = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir, "--rebuild",
                        "--log-level", "warn"], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def _power_loss(d, monkeypatch, zctx, boot):
    """SIGKILL, then start in another boot."""
    d.stop(signal.SIGKILL)
    monkeypatch.setenv("FUNNELD_BOOT_ID", boot)
    d.start(zctx)


def test_power_loss_recovers_from_the_checkpoint_and_replays_only_after_it(
        zctx, daemon_factory, monkeypatch):
    monkeypatch.setenv("FUNNELD_BOOT_ID", "boot-a")
    d = daemon_factory(extra_args=["--checkpoint-interval", "0"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    n1 = _publish(c, "a", 20)
    ck = _checkpoint(d)
    assert ck["seq"] == n1, ck
    assert os.path.exists(os.path.join(d.state_dir, "checkpoints", ck["name"]))
    assert "the state's writer held" in d.stderr()   # copied with the partition held
    n2 = _publish(c, "b", 7)            # acknowledged after the checkpoint
    before = _leads(q)
    st0 = q.stats()
    c.close()
    q.close()

    _power_loss(d, monkeypatch, zctx, "boot-b")
    q = QueryClient(zctx, d.query_ep)
    st = q.stats()
    # the replay covered only the events after the checkpoint
    assert st.recovery.startswith("restored checkpoint %s" % ck["name"]), st.recovery
    assert st.replayed_at_start == n2, st
    assert "restored checkpoint %s" % ck["name"] in d.stderr()
    assert "replaying events %d..%d from the log" % (n1 + 1, n1 + n2) in d.stderr()
    # nothing acknowledged is lost
    assert st.applied == st0.applied == n1 + n2
    assert (st.log_first_seq, st.last_seq) == (1, n1 + n2)
    assert _leads(q) == before
    # the checkpoint was renamed into the state (nothing copied): a new one
    # of the recovered state replaces it, automatic checkpoints off or not
    assert "checkpoint %s (" % ck["name"] in d.stderr()
    assert "renamed into the state" in d.stderr()
    st = _wait_checkpoints(q, [n1 + n2])
    assert not os.path.exists(os.path.join(d.state_dir, "checkpoints", ck["name"]))
    q.close()
    d.stop_ok()
    rc, out = _rebuild(d)
    assert rc == 0 and "identical" in out, out


def _wait_checkpoints(q, seqs):
    """Stats once the checkpoints on disk are those of seqs, newest first."""
    return wait_until(
        lambda: (lambda s: s if [x.seq for x in s.checkpoints] == sorted(seqs, reverse=True)
                 else None)(q.stats()),
        30, what="checkpoints at %s" % seqs)


def _truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def _tear(path):
    """Garbage in the middle, length unchanged (a lost write)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(8192))


def test_torn_or_truncated_newest_checkpoint_is_skipped(zctx, daemon_factory, monkeypatch):
    monkeypatch.setenv("FUNNELD_BOOT_ID", "boot-a")
    d = daemon_factory(extra_args=["--checkpoint-interval", "0", "--checkpoint-keep", "3"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    n = _publish(c, "a", 10)
    old = _checkpoint(d)
    n += _publish(c, "b", 5)
    newer = _checkpoint(d)
    n += _publish(c, "c", 5)
    newest = _checkpoint(d)
    n += _publish(c, "d", 3)
    assert old["seq"] < newer["seq"] < newest["seq"] < n
    before = _leads(q)
    q.close()

    # the newest is truncated: the one before it serves
    _truncate(os.path.join(d.state_dir, "checkpoints", newest["name"]))
    _power_loss(d, monkeypatch, zctx, "boot-b")
    q = QueryClient(zctx, d.query_ep)
    st = q.stats()
    assert st.recovery.startswith("restored checkpoint %s" % newer["name"]), st.recovery
    assert st.replayed_at_start == n - newer["seq"], st
    assert "checkpoint %s cannot be used: it is truncated" % newest["name"] in d.stderr()
    assert st.applied == n and _leads(q) == before
    # newer was renamed into the state; its replacement covers everything
    _wait_checkpoints(q, [n, newest["seq"], old["seq"]])
    replacement = "ckpt-%020d.mdb" % n

    # and torn (same length, garbage inside): the replacement is skipped,
    # the truncated one too, the oldest serves
    _tear(os.path.join(d.state_dir, "checkpoints", replacement))
    q.close()
    _power_loss(d, monkeypatch, zctx, "boot-c")
    q = QueryClient(zctx, d.query_ep)
    st = q.stats()
    assert st.recovery.startswith("restored checkpoint %s" % old["name"]), st.recovery
    assert st.replayed_at_start == n - old["seq"], st
    assert "checkpoint %s cannot be used: it is torn" % replacement in d.stderr()
    assert st.applied == n and _leads(q) == before
    q.close()
    c.close()
    d.stop_ok()
    rc, out = _rebuild(d)
    assert rc == 0 and "identical" in out, out


def test_power_loss_without_a_checkpoint_rebuilds_from_the_log(zctx, daemon_factory,
                                                               monkeypatch):
    monkeypatch.setenv("FUNNELD_BOOT_ID", "boot-a")
    d = daemon_factory(extra_args=["--checkpoint-interval", "0"])
    c = IngestClient(zctx, d.ingest_ep)
    n = _publish(c, "a", 4)
    c.close()
    _power_loss(d, monkeypatch, zctx, "boot-b")
    q = QueryClient(zctx, d.query_ep)
    st = q.stats()
    assert st.recovery.startswith("rebuilt from the whole log"), st.recovery
    assert st.replayed_at_start == n and st.applied == n
    q.close()


def test_clean_shutdown_replays_nothing_and_keeps_checkpoints(zctx, daemon_factory):
    d = daemon_factory(extra_args=["--checkpoint-interval", "0"])
    c = IngestClient(zctx, d.ingest_ep)
    _publish(c, "a", 3)
    c.close()
    ck = _checkpoint(d)
    d.stop_ok()
    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    st = q.stats()
    assert (st.recovery, st.replayed_at_start) == ("clean", 0)
    assert [x.name for x in st.checkpoints] == [ck["name"]]
    q.close()


def test_automatic_checkpoints_keep_the_newest(zctx, daemon_factory):
    d = daemon_factory(extra_args=["--checkpoint-interval", "200ms", "--checkpoint-keep", "2"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    seqs = []
    for b in range(4):
        n = _publish(c, "a%d" % b, 1)
        st = wait_until(lambda: (lambda s: s if s.checkpoints and not s.checkpoint_running and
                                 s.checkpoints[0].seq == (b + 1) * n else None)(q.stats()),
                        10, what="a checkpoint at %d" % ((b + 1) * n))
        seqs.append(st.checkpoints[0].seq)
        assert len(st.checkpoints) <= 2
    st = q.stats()
    assert [x.seq for x in st.checkpoints] == seqs[-1:-3:-1]
    assert st.checkpoints_taken >= 4 and st.checkpoints_failed == 0
    names = sorted(os.listdir(os.path.join(d.state_dir, "checkpoints")))
    assert names == sorted(x.name for x in st.checkpoints)
    r = d.ctl("stats")
    assert r.returncode == 0 and b"checkpoints " in r.stdout and \
        st.checkpoints[0].name.encode() in r.stdout, r.stdout
    c.close()
    q.close()


def test_disk_full_during_a_checkpoint_leaves_ingest_running(zctx, daemon_factory, tmp_path):
    from test_faults import _fill
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs",
                        str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        import pytest
        pytest.skip("cannot mount a small tmpfs to fill up (needs root): %s"
                    % (r.stderr.strip() or r.returncode))
    try:
        cfg = tmp_path / "funneld.yaml"
        cfg.write_text("map_size_mb: 64\ncheckpoint_interval: 1s\n")
        d = daemon_factory(state_dir=mnt / "state", extra_args=["--config", str(cfg)])
        c = IngestClient(zctx, d.ingest_ep)
        q = QueryClient(zctx, d.query_ep)
        n = _publish(c, "a", 30, n_leads=3000)
        wait_until(lambda: q.stats().checkpoints_taken >= 1, 15, what="a first checkpoint")
        # fill the disk so that the next checkpoint (as large as the state)
        # cannot be written, but a few more group commits can
        _fill(mnt / "filler", leave=1 << 20)
        n += _publish(c, "b", 2, n_leads=3000)
        st = wait_until(lambda: (lambda s: s if s.checkpoints_failed >= 1 else None)(q.stats()),
                        15, what="a failed checkpoint")
        assert st.checkpoint_error, st
        assert "checkpoint" in d.stderr() and "failed, the live state is untouched" in d.stderr()
        # ingest goes on: every batch is acknowledged
        n += _publish(c, "c", 3, per=20, n_leads=3000)
        assert q.stats().applied == n
        assert not os.path.exists(mnt / "state" / "checkpoints" / "ckpt.tmp")
        # room again: the checkpoint is retried by itself
        os.unlink(mnt / "filler")
        taken = q.stats().checkpoints_taken
        st = wait_until(lambda: (lambda s: s if s.checkpoints_taken > taken and
                                 s.checkpoints[0].seq == n else None)(q.stats()),
                        15, what="a retried checkpoint")
        assert st.checkpoint_error == ""
        c.close()
        q.close()
        d.stop_ok()
        rc, out = _rebuild(d)
        assert rc == 0 and "identical" in out, out
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_rebuild_deletes_its_scratch_state_or_keeps_it_in_rebuild_dir(zctx, daemon_factory,
                                                                      tmp_path):
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    _publish(c, "a", 3)
    c.close()
    d.stop_ok()
    rc, out = _rebuild(d)
    assert rc == 0 and "identical" in out and "deleted" in out, out
    assert not os.path.exists(os.path.join(d.state_dir, "state.rebuild")), out
    assert not os.path.exists(os.path.join(d.state_dir, "state.rebuild.mark")), out
    keep = tmp_path / "elsewhere" / "rebuilt"
    r = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir, "--rebuild",
                        "--rebuild-dir", str(keep), "--log-level", "warn"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "identical" in r.stdout, r.stdout + r.stderr
    assert os.path.exists(keep / "data.mdb"), r.stdout
    assert not os.path.exists(os.path.join(d.state_dir, "state.rebuild"))
    # bad input: a relative directory, or with --rebuild-replace
    for extra in (["--rebuild-dir", "rel/dir", "--rebuild"],
                  ["--rebuild-dir", str(keep), "--rebuild-replace"]):
        r = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir] + extra,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "rebuild_dir" in r.stderr, r.stderr
    d.start(zctx)


def test_bad_checkpoint_settings_are_refused(tmp_path):
    for args, what in ((["--checkpoint-interval", "often"], "checkpoint_interval"),
                       (["--checkpoint-keep", "0"], "checkpoint_keep"),
                       (["--log-retention", "12 parsecs"], "log_retention")):
        r = subprocess.run([FUNNELD_BIN, "--state-dir", str(tmp_path / "s")] + args,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and what in r.stderr, (args, r.stderr)
        assert not os.path.exists(tmp_path / "s" / "log"), "nothing may be created"


def test_retention_drops_only_entries_a_kept_checkpoint_covers(zctx, daemon_factory):
    d = daemon_factory(extra_args=["--clock", "event", "--log-retention", "30d",
                                   "--checkpoint-interval", "0", "--checkpoint-keep", "2"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    old_t0 = now_ms() - 100 * 86_400_000
    n_half = _publish(c, "old1", 3, n_leads=40, t0=old_t0)
    a = _checkpoint(d)
    n_old = n_half + _publish(c, "old2", 3, n_leads=40, t0=old_t0 + 10_000)
    n_all = n_old + _publish(c, "new", 2, n_leads=40, t0=now_ms() - 1000)
    # everything before the recent events is beyond 30 days, but only what
    # the oldest kept checkpoint (a, at n_half) covers may go
    st = wait_until(lambda: (lambda s: s if s.log_first_seq == n_half + 1 else None)(q.stats()),
                    15, what="the entries up to %d dropped" % n_half)
    assert st.log_dropped == n_half and a["seq"] == n_half
    b = _checkpoint(d)
    _publish(c, "new2", 1, n_leads=40, t0=now_ms() - 500)
    _checkpoint(d)                # a is deleted (keep 2): b is the oldest now
    assert b["seq"] >= n_all
    st = wait_until(lambda: (lambda s: s if s.log_dropped == n_old else None)(q.stats()),
                    15, what="every old entry dropped")
    # the recent entries are within 30 days: kept, though covered
    assert st.log_first_seq == n_old + 1 and st.last_seq >= n_all, st
    r = d.ctl("stats")
    assert b"dropped by log_retention" in r.stdout, r.stdout
    for i in range(40):        # every lead still answers, its history cut
        assert q.lead("ck-%03d" % i) is not None
    c.close()
    q.close()
    d.stop_ok()
    rc, out = _rebuild(d)
    assert rc == 0 and "identical" in out, out
    assert "oldest checkpoint" in out and b["name"] in out, out


def test_the_only_checkpoint_retention_relies_on_is_copied_not_renamed(
        zctx, daemon_factory, monkeypatch):
    """After log_retention dropped the log's first events, the one checkpoint
    the log covers is the only way to recover: restoring copies it, and it
    serves the next power loss too."""
    monkeypatch.setenv("FUNNELD_BOOT_ID", "boot-a")
    d = daemon_factory(extra_args=["--clock", "event", "--log-retention", "30d",
                                   "--checkpoint-interval", "0", "--checkpoint-keep", "1"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    n_old = _publish(c, "old", 4, n_leads=40, t0=now_ms() - 100 * 86_400_000)
    a = _checkpoint(d)
    n = n_old + _publish(c, "new", 3, n_leads=40, t0=now_ms() - 1000)
    wait_until(lambda: q.stats().log_first_seq == n_old + 1, 15,
               what="the entries up to %d dropped" % n_old)
    before = _leads(q, 40)
    q.close()
    for boot in ("boot-b", "boot-c"):
        _power_loss(d, monkeypatch, zctx, boot)
        q = QueryClient(zctx, d.query_ep)
        st = q.stats()
        assert st.recovery.startswith("restored checkpoint %s" % a["name"]), st.recovery
        assert st.replayed_at_start == st.last_seq - a["seq"] and st.applied == n, st
        assert st.log_first_seq == n_old + 1
        assert "checkpoint %s (" % a["name"] in d.stderr()
        assert "copied into the state" in d.stderr()
        assert [x.name for x in st.checkpoints] == [a["name"]]
        assert _leads(q, 40) == before
        q.close()
    c.close()
    d.stop_ok()


def _ledger(d, lead_id):
    r = d.ctl("lead", lead_id, "--ledger", json_out=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def _entry(e):
    return (e["kind"], e["rule"], e["event_id"], e["seq"], round(e["points"], 9))


def test_ledger_after_retention_starts_from_the_oldest_checkpoint_and_says_so(
        zctx, daemon_factory):
    d = daemon_factory(extra_args=["--clock", "event", "--log-retention", "30d",
                                   "--checkpoint-interval", "0", "--checkpoint-keep", "1"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    n_old = _publish(c, "old", 4, n_leads=20, t0=now_ms() - 100 * 86_400_000)
    _publish(c, "new", 1, n_leads=20, t0=now_ms() - 2000)
    ids = ["ck-%03d" % i for i in range(20)]
    # no checkpoint yet: nothing may be dropped, the whole log is there
    full = {i: _ledger(d, i) for i in ids}
    for doc in full.values():
        assert doc["score"]["ledger_complete"] is True and "ledger_from" not in doc
    a = _checkpoint(d)
    st = wait_until(lambda: (lambda s: s if s.log_first_seq == n_old + 1 else None)(q.stats()),
                    15, what="the entries up to %d dropped" % n_old)
    _publish(c, "later", 1, n_leads=20, t0=now_ms() - 1000)   # after the checkpoint
    want_note = ("the ledger starts from the oldest checkpoint %s (seq %d): log_retention "
                 "dropped the events before %d" % (a["name"], a["seq"], st.log_first_seq))
    cut = 0
    for i in ids:
        doc = _ledger(d, i)
        stored = json.loads(d.ctl("lead", i, json_out=True).stdout)
        assert doc["score"]["ledger_complete"] is False, doc["score"]
        assert doc["ledger_from"] == {"checkpoint": a["name"], "seq": a["seq"],
                                      "log_first_seq": st.log_first_seq}
        # the replay from the checkpoint's record comes out as the stored lead
        for k in ("fit", "engagement", "total"):
            assert round(doc["score"][k], 6) == round(stored["score"][k], 6), (i, k)
        assert doc["stage"] == stored["stage"]
        got = [_entry(e) for e in doc["score"]["ledger"]]
        # it begins with the newest changes the checkpoint's record kept,
        # as the whole log gave them ...
        whole = [_entry(e) for e in full[i]["score"]["ledger"]]
        kept = [e for e in got if e[3] <= a["seq"]]
        assert len(kept) == min(8, len(whole)) and kept == whole[len(whole) - len(kept):]
        cut += len(whole) > len(kept)
        # ... and ends with the changes after it, as the stored record has them
        after = [e for e in got if e[3] > a["seq"]]
        assert after, i
        newest = [_entry(e) for e in stored["score"]["ledger"]]
        assert got[len(got) - len(newest):] == newest
        text = d.ctl("lead", i, "--ledger")
        assert text.returncode == 0 and want_note in text.stdout.decode(), text.stdout
    assert cut > 0   # some leads had more old changes than a record keeps
    c.close()
    q.close()
    d.stop_ok()


def _ask_checkpoint(q, ticket=0):
    req = pb.QueryRequest()
    req.checkpoint.ticket = ticket
    rep = q.request(req)
    assert rep.error == "", rep.error
    return rep.checkpoint


def _metric(d, name):
    status, text, _ = d.http_get("/metrics")
    assert status == 200, status
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


def test_a_checkpoint_holds_the_writer_while_acks_go_on(zctx, daemon_factory, tmp_path,
                                                          monkeypatch):
    # The copy is taken with the partition's writer held between groups, so
    # that no group commit takes fresh pages while it runs (a real copy
    # holds it as long as it takes, 3 s at most). Held here until the log
    # reaches sequence 1300 (FUNNELD_CHECKPOINT_HOLD=writer:1300, 60 s at
    # most): which it does only if intake goes on acknowledging meanwhile,
    # beyond the lag that otherwise pauses it (twice group_max_events, 100
    # here). The checkpoint is the state as it was held, and the partition
    # catches up afterwards.
    monkeypatch.setenv("FUNNELD_CHECKPOINT_HOLD", "writer:1300")
    cfg = tmp_path / "funneld.yaml"
    cfg.write_text("group_max_events: 50\ncheckpoint_interval: 0\n")
    d = daemon_factory(extra_args=["--config", str(cfg)])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    n1 = _publish(c, "a", 3)
    assert q.stats().applied == n1
    assert _metric(d, "funneld_state_writer_held") == 0
    ticket = _ask_checkpoint(q).ticket
    # (a scrape waits for what was acknowledged before it, as a query does:
    # nothing here yet)
    wait_until(lambda: _metric(d, "funneld_state_writer_held") == 1, 30,
               what="the checkpoint holding the writer")
    n2 = _publish(c, "b", 10)            # each batch acknowledged while held
    assert n1 + n2 == 1300
    cr = wait_until(lambda: (lambda r: r if not r.pending else None)(_ask_checkpoint(q, ticket)),
                    60, what="the checkpoint written")
    assert cr.done and not cr.failed, cr
    assert cr.checkpoint.seq == n1, cr     # the state as it was held
    err = d.stderr()
    assert "the state's writer held" in err and "went on after" not in err, err
    assert _metric(d, "funneld_state_writer_held") == 0
    st = q.stats()
    assert st.applied == n1 + n2 and st.checkpoints_taken == 1, st
    c.close()
    q.close()
    d.stop_ok()
    rc, out = _rebuild(d)
    assert rc == 0 and "identical" in out, out


def test_a_map_filling_during_a_checkpoint_does_not_stall_ingest(zctx, daemon_factory,
                                                                 tmp_path, monkeypatch):
    # The first copy holds its snapshot until it must give way
    # (FUNNELD_CHECKPOINT_HOLD): slower than any real checkpoint. While it
    # holds it no freed page is reused, so every group commit takes fresh
    # pages and the 1 MiB map fills: growing it must not wait for the copy.
    monkeypatch.setenv("FUNNELD_CHECKPOINT_HOLD", "1")
    cfg = tmp_path / "funneld.yaml"
    cfg.write_text("map_size_mb: 1\ncheckpoint_interval: 0\n")
    d = daemon_factory(extra_args=["--config", str(cfg)])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    n = _publish(c, "a", 3, n_leads=2000)
    ticket = _ask_checkpoint(q).ticket
    wait_until(lambda: q.stats().checkpoint_running, 15, what="the checkpoint copying")
    assert _ask_checkpoint(q, ticket).pending
    # every batch is acknowledged within the usual bound (the copy gave way),
    # batch after batch until the map filled: it was grown ahead of the
    # copy to eight times what the state used, so how many batches that
    # takes depends on the pages they dirty
    for i in range(400):
        n += _publish(c, "b%d" % i, 1, n_leads=2000)
        err = d.stderr()
        if "the checkpoint gives way" in err and "state map grown" in err:
            break  # the grower logs the growth after the copy gave way
    assert "state map grown" in d.stderr() and "the checkpoint gives way" in d.stderr()
    # the checkpoint asked for was begun again and written
    cr = wait_until(lambda: (lambda r: r if not r.pending else None)(_ask_checkpoint(q, ticket)),
                    30, what="the checkpoint begun again")
    assert cr.done and not cr.failed, cr
    assert "gave way to the state's map growing after" in d.stderr()
    assert "taking it again" in d.stderr()
    st = q.stats()
    assert st.checkpoints_yielded >= 1 and st.checkpoints_taken == 1, st
    assert 3 * 100 <= cr.checkpoint.seq <= n, cr
    assert st.applied == n
    r = d.ctl("stats")
    assert b"gave way" in r.stdout, r.stdout
    c.close()
    q.close()
    d.stop_ok()
    rc, out = _rebuild(d)
    assert rc == 0 and "identical" in out, out
