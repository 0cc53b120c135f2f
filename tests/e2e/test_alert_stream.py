"""The stored alert stream (README "Guarantees"): every alert raised by a
logged entry is stored with its alert_seq before it is published, published
with it, and retrievable with AlertsSince (paged, by topic prefix)."""

import os
import shutil
import signal
import subprocess

from conftest import (SALES, AlertSubscriber, FUNNELD_BIN, IngestClient,
                      QueryClient, make_batch, make_event, now_ms, pb, uid)


def make_batch_of(events):
    return make_batch(events)


def alerts_since(query, seq=0, topics=(), limit=0):
    req = pb.QueryRequest()
    req.alerts_since.seq = seq
    req.alerts_since.topics.extend(topics)
    req.alerts_since.limit = limit
    rep = query.request(req)
    assert rep.error == "", rep.error
    assert rep.WhichOneof("reply") == "alerts_since", rep
    return rep.alerts_since


def all_alerts(query, seq=0, topics=(), limit=0):
    """Every stored alert after seq, page by page."""
    out = []
    while True:
        page = alerts_since(query, seq, topics, limit)
        out += list(page.alerts)
        assert page.next_seq >= seq
        seq = page.next_seq
        if not page.more:
            return out


def qualify(lead, t0):
    """Events that qualify a fresh lead (one handoff) under the built-in
    definition."""
    return [make_event(lead, "demo_request", source=SALES, at_ms=t0),
            make_event(lead, "meeting_booked", source=SALES, at_ms=t0 + 1000),
            make_event(lead, "form_submit", at_ms=t0 + 2000)]


def test_alerts_are_stored_numbered_and_published_with_their_number(zctx, daemon, ingest,
                                                                   query):
    sub = AlertSubscriber(zctx, daemon.alerts_ep, ["handoff", "stage"])
    sub.sync(ingest)
    base = query.stats().alert_seq
    leads = [uid("st") for _ in range(5)]
    t0 = now_ms() - 60_000
    for lead in leads:
        assert ingest.publish(qualify(lead, t0)).accepted == 3
    sub.await_alert(lambda t, a: t == "handoff" and a.lead_id == leads[-1],
                    what="last handoff")
    live = [a for t, a in sub.received if a.lead_id in leads]
    stored = [a for a in all_alerts(query, base) if a.lead_id in leads]
    # Every alert published is stored, under the number it was published with.
    assert [a.alert_seq for a in live] == sorted(a.alert_seq for a in live)
    assert live and all(a.alert_seq > base for a in live)
    by_seq = {a.alert_seq: a for a in stored}
    for a in live:
        assert by_seq[a.alert_seq] == a
    # Stored alerts are numbered without gaps and in order.
    seqs = [a.alert_seq for a in all_alerts(query, 0)]
    assert seqs == list(range(1, len(seqs) + 1))
    st = query.stats()
    assert st.alert_seq == seqs[-1] and st.alerts_first_seq == 1
    handoffs = [a for a in stored if a.topic == "handoff"]
    assert sorted(a.lead_id for a in handoffs) == sorted(leads)
    assert all(a.lead.handoff_status == pb.HANDOFF_PENDING for a in handoffs)


def test_alerts_are_stored_without_any_subscriber(daemon, ingest, query):
    lead = uid("nosub")
    assert ingest.publish(qualify(lead, now_ms() - 60_000)).accepted == 3
    got = [a for a in all_alerts(query, 0, ["handoff"]) if a.lead_id == lead]
    assert len(got) == 1 and got[0].kind == "handoff" and got[0].lead.id == lead
    assert got[0].lead.qualified


def test_alerts_since_pages_and_filters_by_topic_prefix(daemon, ingest, query):
    t0 = now_ms() - 3_600_000
    leads = [uid("pg") for _ in range(30)]
    for i, lead in enumerate(leads):
        assert ingest.publish(qualify(lead, t0 + i * 10_000)).accepted == 3
    everything = all_alerts(query, 0)
    assert len(everything) >= 60     # a stage alert and a handoff per lead at least
    # Small pages give the same alerts in the same order.
    assert all_alerts(query, 0, limit=7) == everything
    page = alerts_since(query, 0, limit=7)
    assert len(page.alerts) == 7 and page.more and page.next_seq == page.alerts[-1].alert_seq
    assert page.last_seq == everything[-1].alert_seq and page.first_seq == 1
    # After seq: exactly the later ones.
    mid = everything[len(everything) // 2].alert_seq
    assert all_alerts(query, mid) == [a for a in everything if a.alert_seq > mid]
    # Topic prefixes, as SUB subscriptions: "hand" takes "handoff".
    assert all_alerts(query, 0, ["hand"]) == [a for a in everything if a.topic == "handoff"]
    both = all_alerts(query, 0, ["handoff", "stage"], limit=5)
    assert both == [a for a in everything if a.topic in ("handoff", "stage")]
    # Nothing after the last one.
    end = alerts_since(query, everything[-1].alert_seq)
    assert len(end.alerts) == 0 and not end.more
    assert end.next_seq == everything[-1].alert_seq


def test_alerts_since_refuses_bad_requests_with_a_reason(daemon, query):
    req = pb.QueryRequest()
    req.alerts_since.limit = 10001
    rep = query.request(req)
    assert "limit must be at most 10000" in rep.error
    assert rep.WhichOneof("reply") is None
    req = pb.QueryRequest()
    req.alerts_since.topics.extend(["t%d" % i for i in range(65)])
    rep = query.request(req)
    assert "at most 64" in rep.error
    # The daemon still answers.
    assert query.stats().received == 0


def test_replay_after_kill_gives_the_same_numbers(zctx, daemon_factory):
    """SIGKILL, then start: what the state held keeps its numbers, what the
    replay applies again gets the numbers it had (the stream is a function
    of the log)."""
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    t0 = now_ms() - 3_600_000
    leads = [uid("kr") for _ in range(40)]
    for i, lead in enumerate(leads):
        assert c.publish(qualify(lead, t0 + i * 5000)).accepted == 3
    before = all_alerts(q, 0)
    q.close()
    c.close()
    d.stop(signal.SIGKILL)
    # Lose the derived state entirely: the log alone gives the same stream.
    shutil.rmtree(os.path.join(d.state_dir, "state"))
    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    after = all_alerts(q, 0)
    q.close()
    assert after == before
    handoffs = [a.lead_id for a in after if a.topic == "handoff"]
    assert sorted(handoffs) == sorted(leads)


def test_rebuild_is_identical_including_the_alerts(zctx, daemon_factory):
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    t0 = now_ms() - 3_600_000
    for i in range(20):
        assert c.publish(qualify(uid("rb"), t0 + i * 5000)).accepted == 3
    c.close()
    d.stop_ok()
    out = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir, "--rebuild"],
                         capture_output=True, timeout=120)
    text = out.stdout.decode()
    assert out.returncode == 0, text + out.stderr.decode()
    assert "identical" in text
    line = [ln for ln in text.splitlines() if ln.strip().startswith("alerts")]
    assert line and " 0 differ, 0 only live, 0 only rebuilt" in line[0], text
    assert int(line[0].split()[1]) >= 1, text   # blocks of alerts compared


def test_retention_drops_what_is_older_and_nothing_else(zctx, daemon_factory):
    # Event clock: daemon time is the watermark, so ages are exact.
    d = daemon_factory(extra_args=["--clock", "event", "--alerts-retention", "10d"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    day, hour = 86_400_000, 3_600_000
    t0 = now_ms() - 100 * day
    old = [uid("old") for _ in range(60)]
    for i, lead in enumerate(old):
        assert c.publish(qualify(lead, t0 + i * 60_000)).accepted == 3
    boundary = q.stats().alert_seq          # the last alert stamped on day 0
    kept = [uid("kept") for _ in range(10)]
    for i, lead in enumerate(kept):
        assert c.publish(qualify(lead, t0 + 5 * day + hour + i * 60_000)).accepted == 3
    first = all_alerts(q, 0)
    assert {a.lead_id for a in first} == set(old) | set(kept)   # nothing is old yet
    assert len(first) == q.stats().alert_seq
    # Daemon time moves to day 15: what was stamped before day 5 (the
    # first leads' alerts) is older than 10 days; the rest is not.
    assert c.publish([make_event(uid("late"), "page_view", at_ms=t0 + 15 * day)]).accepted == 1
    page = alerts_since(q, 0)
    # Retention removes whole blocks of 64 alerts, oldest first: every
    # block that holds only old alerts, never one with a newer alert.
    floor = page.first_seq - 1
    assert floor % 64 == 0 and boundary - 64 < floor <= boundary, (floor, boundary)
    rest = all_alerts(q, 0)
    # Exactly those went; the rest kept their numbers and bytes.
    assert rest[:len(first) - floor] == first[floor:]
    assert all(a.alert_seq > floor for a in rest)
    st = q.stats()
    assert st.alerts_first_seq == floor + 1 and st.alert_seq >= page.last_seq
    # Asking from before the floor starts at the floor: the gap shows.
    assert alerts_since(q, 3).alerts[0].alert_seq == floor + 1
    q.close()
    c.close()
    d.stop_ok()
    # The rebuild keeps every alert; it compares those above the floor.
    out = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir, "--rebuild"],
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()


def test_bad_retention_is_refused_with_a_reason(tmp_path):
    out = subprocess.run([FUNNELD_BIN, "--state-dir", str(tmp_path / "s"),
                          "--alerts-retention", "30 days"], capture_output=True,
                         timeout=30)
    assert out.returncode != 0
    assert b"alerts_retention must be a duration" in out.stderr


def test_sigkill_after_a_group_commit_keeps_every_handoff_once_and_its_number(
        zctx, daemon_factory):
    """SIGKILL a few ms after a large batch is sent (funneld is then inside
    or just past its group commit), restart: `funnelctl alerts --since 0`
    lists one handoff for every lead of every acknowledged event, each once,
    those already published under the number they were published with."""
    import json
    import time
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["handoff"])
    sub.sync(c)
    t0 = now_ms() - 3_600_000
    acked = []
    for b in range(4):
        leads = [uid("k%d" % b) for _ in range(100)]
        evs = [e for i, lead in enumerate(leads) for e in qualify(lead, t0 + i * 10)]
        assert c.publish(evs).accepted == 300
        acked += leads
    sub.await_alert(lambda t, a: a.lead_id == acked[-1], what="the last acked handoff")
    # A large batch, and the kill right behind it.
    pending = [uid("kp") for _ in range(2000)]
    c.send(make_batch_of([e for lead in pending for e in qualify(lead, t0)]))
    time.sleep(0.005)
    d.stop(signal.SIGKILL)
    while sub.recv(0.5) is not None:   # what the killed process got out
        pass
    published = {a.lead_id: a.alert_seq for t, a in sub.received if t == "handoff"}
    sub.close()
    c.close()
    d.start(zctx)
    p = d.ctl("--json", "alerts", "--topic", "handoff", "--since", "0")
    assert p.returncode == 0, p.stderr
    docs = [json.loads(x) for x in p.stdout.decode().splitlines() if x.strip()]
    by_lead = {}
    for x in docs:
        assert x["lead"] not in by_lead, "handoff of %s stored twice" % x["lead"]
        by_lead[x["lead"]] = x["alert_seq"]
    for lead in acked:
        assert lead in by_lead, "no stored handoff for acknowledged lead %s" % lead
    for lead, seq in published.items():
        if lead in by_lead:
            assert by_lead[lead] == seq, (lead, seq, by_lead[lead])
    assert set(published) <= set(by_lead)
    seqs = [x["alert_seq"] for x in docs]
    assert seqs == sorted(seqs)
