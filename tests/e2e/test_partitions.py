"""Partitions: the state applied behind the Acks, as stats report it."""

import json
import os
import signal
import subprocess

import pytest

from conftest import (FUNNELD_BIN, SALES, IngestClient, QueryClient, at_rest, funnel_dict, make_batch, pb,
                      make_event, now_ms)


def _publish(c, n, prefix):
    t0 = now_ms() - 3_600_000
    evs = [make_event("%s-%03d" % (prefix, i % 40), "page_view", event_id="%s-ev-%d" % (prefix, i),
                      at_ms=t0 + i * 1000) for i in range(n)]
    ack = c.publish(evs, batch_id=prefix)
    assert (ack.accepted, ack.error) == (n, "")


@pytest.mark.parametrize("partitions", [0, 1, 4])
def test_stats_report_the_partitions_and_what_each_applied(zctx, daemon_factory, partitions):
    d = daemon_factory(extra_args=["--partitions", str(partitions)])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    _publish(c, 120, "pa")
    st = q.stats()
    # Read-your-writes: the stats query waited for the state to apply
    # what was acknowledged before it.
    assert st.partitions == partitions
    n = max(1, partitions)
    assert list(st.partition_applied_seq) == [st.last_seq] * n and st.last_seq >= 120, st
    r = d.ctl("stats", json_out=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["partitions"] == partitions
    assert out["partition_applied_seq"] == [st.last_seq] * n
    text = d.ctl("stats").stdout.decode()
    assert ("partitions       %d" % partitions) in text, text
    c.close()
    q.close()
    # A clean stop applied everything: the restart with the same count
    # replays nothing and rebuilds nothing.
    d.stop_ok(signal.SIGTERM)
    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    again = q.stats()
    assert (again.recovery, again.replayed_at_start) == ("clean", 0), again
    assert list(again.partition_applied_seq) == [st.last_seq] * n, again
    log = d.logs[-1].read_text(errors="replace")
    for said in ("rebuilding it from the log", "replaying events", "applying the log from"):
        assert said not in log, log
    q.close()


def test_event_clock_applies_on_the_loop(zctx, daemon_factory):
    d = daemon_factory(extra_args=["--partitions", "1", "--clock", "event"])
    q = QueryClient(zctx, d.query_ep)
    assert q.stats().partitions == 0
    q.close()


TYPES = ["page_view", "email_open", "form_submit", "content_download",
         "demo_request", "meeting_booked", "closed_won", "closed_lost"]


def _publish_mixed(c, rng, n_leads, n, prefix):
    t0 = now_ms() - 86_400_000
    leads = ["%s-%03d" % (prefix, i) for i in range(n_leads)]
    for b in range(n // 200):
        evs = []
        for j in range(200):
            k = b * 200 + j
            lead = leads[k] if k < n_leads else leads[rng.randrange(n_leads)]
            typ = rng.choice(TYPES)
            evs.append(make_event(lead, typ, source=SALES if typ.startswith(("closed", "meet")) else 1,
                                  event_id="%s-ev-%d" % (prefix, k), at_ms=t0 + k * 1000))
        ack = c.publish(evs, batch_id="%s-%d" % (prefix, b))
        assert (ack.accepted, ack.error) == (200, ""), ack
    return leads


def _reports(d, q, leads):
    out = {"funnel": funnel_dict(q.funnel())}
    for what in (["funnel", "--by", "source"], ["friction"], ["leads", "--limit", "1000"]):
        r = d.ctl(*what, json_out=True)
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        rep.pop("as_of", None)  # the time of reading
        # and the scores decayed to it, the times in stage up to it
        rep = {k: [{f: x for f, x in row.items()
                    if not isinstance(x, float) and not f.endswith("_ms")} for row in v]
               if k == "leads" and isinstance(v, list) else v for k, v in rep.items()}
        out[" ".join(what)] = rep
    out["leads"] = {lead: at_rest(q.lead(lead)).SerializeToString(deterministic=True)
                    for lead in leads}
    return out


def test_four_partitions_apply_every_lead_once(zctx, daemon_factory):
    d = daemon_factory(extra_args=["--partitions", "4"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    _publish(c, 400, "p4")
    st = q.stats()
    # Read-your-writes over every partition; each one has stepped over
    # the others' entries up to the last.
    assert st.partitions == 4
    assert list(st.partition_applied_seq) == [st.last_seq] * 4 and st.last_seq >= 400, st
    assert st.applied == 400, st
    assert funnel_dict(q.funnel())["leads"] == 40
    for i in range(40):
        assert q.lead("p4-%03d" % i).id == "p4-%03d" % i
    # A resend is a duplicate in whichever partition its lead is.
    t0 = now_ms() - 3_600_000
    ack = c.publish([make_event("p4-%03d" % (i % 40), "page_view", event_id="p4-ev-%d" % i,
                                at_ms=t0 + i * 1000) for i in range(50)], batch_id="p4-again")
    assert (ack.accepted, ack.duplicates) == (0, 50), ack
    # The stored alerts, merged across partitions in increasing numbers.
    r = d.ctl("alerts", "--since", "0", json_out=True)
    assert r.returncode == 0, r.stderr
    seqs = [json.loads(line)["alert_seq"] for line in r.stdout.decode().splitlines() if line]
    assert len(seqs) >= 40 and seqs == sorted(set(seqs)), seqs[:20]
    c.close()
    q.close()


def test_partition_count_change_rebuilds_identical_reports(zctx, daemon_factory, rng):
    d = daemon_factory(extra_args=["--partitions", "1"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    leads = _publish_mixed(c, rng, 150, 1200, "pc")
    before = _reports(d, q, leads)
    c.close()
    q.close()
    d.stop_ok(signal.SIGTERM)
    for parts, seen in ((4, "built with 1 partition(s), partitions is 4"),
                        (1, "built with 4 partition(s), partitions is 1")):
        d.extra_args = ["--partitions", str(parts)]
        d.start(zctx)
        q = QueryClient(zctx, d.query_ep)
        st = q.stats()
        assert list(st.partition_applied_seq) == [st.last_seq] * parts, st
        assert seen in d.stderr(), d.stderr()
        after = _reports(d, q, leads)
        for k in before:
            assert after[k] == before[k], "%s differs with %d partitions" % (k, parts)
        q.close()
        d.stop_ok(signal.SIGTERM)
        # --rebuild applies the log into as many partitions and compares
        # each with the live one.
        r = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir, "--log-level", "warn",
                            "--partitions", str(parts), "--rebuild"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "identical" in r.stdout, r.stdout + r.stderr
        assert not os.path.exists(os.path.join(d.state_dir, "state.rebuild.p1"))
    assert not os.path.exists(os.path.join(d.state_dir, "state.p1"))


def _acknowledged(c, prefix):
    """Batches of accepted, rejected (no lead id) and resent events and a
    message refused whole, every one acknowledged: what the counters must
    say (received, applied, duplicates, rejected)."""
    t0 = now_ms() - 60_000
    evs = [make_event("%s-%d" % (prefix, i % 8), "page_view", event_id="%s-ev-%d" % (prefix, i),
                      at_ms=t0 + i) for i in range(40)]
    ack = c.publish(evs + [make_event(None, "page_view") for _ in range(5)], batch_id=prefix + "-a")
    assert (ack.accepted, len(ack.rejections)) == (40, 5), ack
    more = [make_event("%s-%d" % (prefix, i % 8), "email_open", event_id="%s-new-%d" % (prefix, i),
                       at_ms=t0 + 100 + i) for i in range(10)]
    ack = c.publish(evs[:10] + more, batch_id=prefix + "-b")
    assert (ack.accepted, ack.duplicates) == (10, 10), ack
    c.send_raw(b"\x0a\xff\xff\xff\x0f" + b"\x00" * 16)
    assert c.recv_ack().error != ""
    # The refusal is counted outside any group: the next commit keeps it.
    ack = c.publish(more[:3] + [make_event("%s-9" % prefix, "page_view", event_id=prefix + "-last")],
                    batch_id=prefix + "-c")
    assert (ack.accepted, ack.duplicates) == (1, 3), ack
    return {"received": 45 + 20 + 1 + 4, "applied": 51, "duplicates": 13, "rejected": 6}


@pytest.mark.parametrize("partitions", [1, 2])
def test_counters_after_a_kill_while_the_partitions_lag(zctx, daemon_factory, monkeypatch,
                                                        partitions):
    # FUNNELD_PARTITION_HOLD: the partitions apply nothing logged after
    # they started, so the kill finds every event acknowledged, none of
    # them applied.
    monkeypatch.setenv("FUNNELD_PARTITION_HOLD", "1")
    d = daemon_factory(extra_args=["--partitions", str(partitions)])
    monkeypatch.delenv("FUNNELD_PARTITION_HOLD")
    c = IngestClient(zctx, d.ingest_ep)
    want = _acknowledged(c, "ck%d" % partitions)
    c.close()
    d.stop(signal.SIGKILL)
    for restart in range(2):
        d.start(zctx)
        q = QueryClient(zctx, d.query_ep)
        st = q.stats()
        q.close()
        got = {k: getattr(st, k) for k in want}
        # Counted once: the loop's counts kept with the log, whatever the
        # state had applied; the replay applied what it had not.
        assert got == want, (restart, got, want, st.recovery)
        assert st.last_seq == st.applied + st.deadlines, st
        assert list(st.partition_applied_seq) == [st.last_seq] * partitions, st
        if restart == 0:
            assert st.replayed_at_start == st.last_seq, st
        # Killed again at once: the recovered counters hold.
        d.stop(signal.SIGKILL)


@pytest.mark.parametrize("partitions", [1, 2])
def test_a_lead_query_reads_its_leads_events_not_applied_yet(zctx, daemon_factory, monkeypatch,
                                                             partitions):
    # Leads B and C applied; then, the partitions applying nothing logged
    # after they started (FUNNELD_PARTITION_HOLD), a new lead A's event and
    # a second event of B acknowledged: each lead query answers at once
    # what the partition will store once it applies them (read from the
    # log on top of the record), where it used to wait for the partition.
    args = ["--partitions", str(partitions)]
    d = daemon_factory(extra_args=args)
    c = IngestClient(zctx, d.ingest_ep)
    t0 = now_ms() - 60_000
    ack = c.publish([make_event("rw-B", "page_view", event_id="rw-B-1", at_ms=t0),
                     make_event("rw-C", "page_view", event_id="rw-C-1", at_ms=t0)])
    assert (ack.accepted, ack.error) == (2, ""), ack
    c.close()
    q = QueryClient(zctx, d.query_ep)
    assert q.lead("rw-B").events == 1
    q.close()
    d.stop_ok()

    monkeypatch.setenv("FUNNELD_PARTITION_HOLD", "1")
    d.start(zctx)
    monkeypatch.delenv("FUNNELD_PARTITION_HOLD")
    c = IngestClient(zctx, d.ingest_ep)
    ack = c.publish([make_event("rw-A", "page_view", event_id="rw-A-1", at_ms=t0 + 1000),
                     make_event("rw-B", "page_view", event_id="rw-B-1", at_ms=t0),
                     make_event("rw-B", "email_open", event_id="rw-B-2", at_ms=t0 + 2000),
                     make_event("rw-A", "demo_request", event_id="rw-A-2", at_ms=t0 + 3000),
                     # the newest of A's slot and of C's, logged after A's
                     make_event(_SLOT_OF_A, "page_view", event_id="rw-sa-1", at_ms=t0 + 4000),
                     make_event(_SLOT_OF_C, "page_view", event_id="rw-sc-1", at_ms=t0 + 4000)])
    # B's first event again: a duplicate, logged before; the others
    # logged, not applied
    assert (ack.accepted, ack.duplicates, ack.error) == (5, 1, ""), ack
    c.close()
    q = QueryClient(zctx, d.query_ep)
    held = {}
    assert _mark_slot("rw-A") == _mark_slot(_SLOT_OF_A)
    assert _mark_slot("rw-C") == _mark_slot(_SLOT_OF_C)
    for lead in ("rw-A", "rw-B", "rw-C", _SLOT_OF_A, _SLOT_OF_C):
        # The whole log's wait is 10 s: each answer must come well before it.
        rep = q.request(_lead_req(lead), timeout=5)
        assert rep.error == "" and rep.lead.found, (lead, rep)
        held[lead] = rep.lead
    assert "has not applied" not in d.stderr()
    assert held["rw-A"].lead.events == 2 and held["rw-B"].lead.events == 2, held
    assert held["rw-C"].lead.events == 1, held["rw-C"]
    assert [e.event.id for e in held["rw-A"].timeline] == ["rw-A-1", "rw-A-2"]
    assert [e.event.id for e in held["rw-B"].timeline] == ["rw-B-1", "rw-B-2"]
    # A replayed lead query (the whole ledger) starts from the newest event
    # logged too, not from the record's.
    req = _lead_req("rw-A")
    req.lead.ledger = True
    rep = q.request(req, timeout=5)
    assert rep.error == "" and rep.lead.found and rep.lead.lead.events == 2, rep
    assert [e.event_id for e in rep.lead.lead.ledger][-1] == "rw-A-2", rep.lead.lead
    # Not from the state: the partitions stopped at the two events before.
    assert "nothing logged after 2 is applied" in d.stderr()
    q.close()
    # held, it would wait for ever to catch up at a clean stop
    d.stop(signal.SIGKILL)

    # Applied for real (the replay at the start): the records say what the
    # held answers said, but for the scores' decay to the time each was
    # read.
    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    stats = q.stats()
    assert list(stats.partition_applied_seq) == [stats.last_seq] * partitions, stats
    for lead in held:
        rep = q.request(_lead_req(lead), timeout=5)
        assert rep.error == "" and rep.lead.found, (lead, rep)
        got, want = _undecayed(rep.lead), _undecayed(held[lead])
        assert got == want, (lead, got, want)
        assert abs(rep.lead.lead.total - held[lead].lead.total) < 0.01, (rep.lead, held[lead])
    q.close()
    d.stop_ok()


def _mark_slot(lead_id):
    # The slot of lead_id's newest logged sequence (store_split.c).
    h = 0x811C9DC5
    for b in lead_id.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return (((h * 2654435761) & 0xFFFFFFFF) >> 11) & ((1 << 21) - 1)


# Leads whose slot is rw-A's and rw-C's (found by trying rw-slot-N): a
# query of rw-A, whose slot holds the newer event of another lead, scans
# the entries not applied yet for rw-A's own; one of rw-C finds none.
_SLOT_OF_A = "rw-slot-1105341"
_SLOT_OF_C = "rw-slot-893797"


def _undecayed(reply):
    # A LeadReply without what decays with the time it is read at.
    r = pb.LeadReply()
    r.CopyFrom(reply)
    for f in ("engagement", "total", "scores_as_of_ms"):
        r.lead.ClearField(f)
    for e in r.lead.ledger:
        e.ClearField("current")
    return r


def _lead_req(lead_id):
    req = pb.QueryRequest()
    req.lead.lead_id = lead_id
    return req
