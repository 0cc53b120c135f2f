"""Ingest: Acks, stage advance, idempotency, messages queued before start."""

import time

from conftest import (MARKETING, SALES, IngestClient, QueryClient, at_rest, funnel_dict,
                      make_batch, make_event, now_ms, uid)


def test_ack_counts_and_stage_progression(ingest, query):
    lead = uid("L")
    t0 = now_ms() - 60_000
    before = query.stats()

    e1 = make_event(lead, "page_view", at_ms=t0, attrs={"industry": "retail"})
    ack = ingest.publish([e1], batch_id="b-1")
    assert ack.batch_id == "b-1"
    assert (ack.accepted, ack.duplicates, list(ack.rejections), ack.error) == (1, 0, [], "")
    assert ack.last_seq > 0
    l = query.lead(lead)
    assert l is not None, "lead not queryable after its Ack"
    assert l.stage == "awareness"
    assert l.events == 1
    assert l.first_seen_ms == t0
    assert l.first_source == MARKETING
    assert l.attrs["industry"] == "retail"
    assert abs(l.engagement - 1.0) < 0.01   # page_view 1
    assert list(l.skipped) == []

    e2 = make_event(lead, "form_submit", at_ms=t0 + 1000)
    ack = ingest.publish([e2], batch_id="b-2")
    assert (ack.accepted, ack.duplicates, len(ack.rejections)) == (1, 0, 0)
    assert ack.last_seq > 0
    l = query.lead(lead)
    assert l.stage == "interest"
    assert l.stage_entered_at_ms == t0 + 1000
    assert l.events == 2
    assert abs(l.engagement - 11.0) < 0.01   # 1 + 10, 1 s of decay is nothing

    # Two events in one batch: demo_request moves to decision, a later
    # page_view is recorded but does not move the lead back.
    e3 = make_event(lead, "demo_request", source=SALES, at_ms=t0 + 2000)
    e4 = make_event(lead, "page_view", at_ms=t0 + 3000, attrs={"industry": "health"})
    ack = ingest.publish([e3, e4], batch_id="b-3")
    assert (ack.accepted, ack.duplicates, len(ack.rejections)) == (2, 0, 0)
    l = query.lead(lead)
    assert l.stage == "decision"
    assert l.stage_entered_at_ms == t0 + 2000
    assert l.events == 4
    assert l.last_event_ms == t0 + 3000
    assert l.attrs["industry"] == "health", "later attrs overwrite earlier ones"
    assert abs(l.engagement - 37.0) < 0.01   # 1 + 10 + 25 + 1
    assert list(l.skipped) == []

    e5 = make_event(lead, "closed_won", source=SALES, at_ms=t0 + 4000, value=1200.0)
    ack = ingest.publish([e5])
    assert ack.accepted == 1
    l = query.lead(lead)
    assert l.stage == "action"
    assert l.events == 5

    # action is terminal: a later interest/awareness event does not move it
    ack = ingest.publish([make_event(lead, "form_submit", at_ms=t0 + 5000),
                          make_event(lead, "page_view", at_ms=t0 + 6000)])
    assert ack.accepted == 2
    l = query.lead(lead)
    assert l.stage == "action"
    assert l.events == 7
    assert l.last_event_ms == t0 + 6000

    # the timeline holds the events in log order
    r = query.lead_reply(lead)
    ids = [t.event.id for t in r.timeline]
    assert ids[:5] == [e1.id, e2.id, e3.id, e4.id, e5.id]
    assert len(ids) == 7
    seqs = [t.seq for t in r.timeline]
    assert seqs == sorted(seqs) and len(set(seqs)) == 7

    after = query.stats()
    assert after.received - before.received == 7
    assert after.applied - before.applied == 7
    assert after.duplicates == before.duplicates
    assert after.rejected == before.rejected
    assert after.commits > before.commits
    assert after.last_seq >= before.last_seq + 7
    assert after.leads == before.leads + 1


def test_skip_is_recorded(ingest, query):
    lead = uid("skip")
    t0 = now_ms()
    ingest.publish([make_event(lead, "ad_click", at_ms=t0)])
    assert query.lead(lead).stage == "awareness"
    ingest.publish([make_event(lead, "meeting_booked", source=SALES, at_ms=t0 + 10)])
    l = query.lead(lead)
    assert l.stage == "decision"
    assert list(l.skipped) == ["interest"]

    # created straight into decision: nothing skipped before the first stage
    lead2 = uid("skip")
    ingest.publish([make_event(lead2, "trial_started", at_ms=t0)])
    l2 = query.lead(lead2)
    assert l2.stage == "decision"
    # a type that maps to no stage creates the lead in awareness
    lead3 = uid("skip")
    ingest.publish([make_event(lead3, "unsubscribe", at_ms=t0)])
    l3 = query.lead(lead3)
    assert l3.stage == "awareness"
    assert abs(l3.engagement - (-20.0)) < 0.01


def _at_last_event(l):
    """A lead's engagement as of its last event: the reply's is decayed
    to the time of reading (scores_as_of_ms, half-life 30 days)."""
    assert l.scores_as_of_ms >= l.last_event_ms
    return l.engagement / 2 ** (-(l.scores_as_of_ms - l.last_event_ms) / (30 * 86_400_000))


def test_engagement_decays_with_half_life_in_event_time(ingest, query):
    """Half-life 30 days, in event time: 25 points 30 days before the
    latest event count 12.5, 60 days before 6.25; and the lead as read
    has decayed on to the time of reading (the daemon's wall clock)."""
    lead = uid("decay")
    day = 86_400_000
    t = now_ms() - 90 * day
    ingest.publish([make_event(lead, "demo_request", source=SALES, at_ms=t)])
    before = now_ms()
    l = query.lead(lead)
    assert before <= l.scores_as_of_ms <= now_ms()
    assert abs(_at_last_event(l) - 25.0) < 0.01
    assert abs(l.engagement - 25.0 * 2 ** (-(l.scores_as_of_ms - t) / (30 * day))) < 0.01
    assert abs(l.total - (l.fit + l.engagement)) < 1e-9
    ingest.publish([make_event(lead, "webinar_attended", at_ms=t + 30 * day)])
    assert abs(_at_last_event(query.lead(lead)) - (12.5 + 10.0)) < 0.01
    ingest.publish([make_event(lead, "page_view", at_ms=t + 60 * day)])
    l = query.lead(lead)
    assert abs(_at_last_event(l) - (6.25 + 5.0 + 1.0)) < 0.01
    assert l.last_event_ms == t + 60 * day
    # an older event arriving late does not move the lead's time backwards
    ingest.publish([make_event(lead, "email_open", at_ms=t + 1)])
    l = query.lead(lead)
    assert l.last_event_ms == t + 60 * day
    assert l.events == 4
    assert 12.25 - 0.01 < _at_last_event(l) <= 12.25 + 2.0 + 0.01


def test_closed_lost_and_funnel_counts(ingest, query):
    base = query.funnel()
    assert [s.stage for s in base.stages][:4] == ["awareness", "interest", "decision", "action"]
    assert "lost" in [s.stage for s in base.stages if s.terminal]
    assert not any(s.terminal for s in base.stages[:3])

    t0 = now_ms()
    a, b = uid("fa"), uid("fb")
    ingest.publish([make_event(a, "page_view", at_ms=t0),
                    make_event(a, "content_download", at_ms=t0 + 1),
                    make_event(b, "email_open", at_ms=t0),
                    make_event(b, "closed_lost", source=SALES, at_ms=t0 + 1)])
    assert query.lead(a).stage == "interest"
    assert query.lead(b).stage == "lost"
    f = query.funnel()
    d0 = {s.stage: s for s in base.stages}
    d1 = {s.stage: s for s in f.stages}
    assert f.leads == base.leads + 2
    assert d1["awareness"].entered - d0["awareness"].entered == 2
    assert d1["awareness"].advanced - d0["awareness"].advanced == 1  # lost is no advance
    assert d1["awareness"].now - d0["awareness"].now == 0
    assert d1["interest"].entered - d0["interest"].entered == 1
    assert d1["interest"].now - d0["interest"].now == 1
    assert d1["lost"].entered - d0["lost"].entered == 1
    assert d1["lost"].now - d0["lost"].now == 1


def test_resent_batch_is_duplicates_only(ingest, query):
    leads = [uid("dup") for _ in range(3)]
    t0 = now_ms()
    evs = []
    for i, lead in enumerate(leads):
        evs += [make_event(lead, "page_view", at_ms=t0 + i),
                make_event(lead, "form_submit", at_ms=t0 + i + 1),
                make_event(lead, "demo_request", source=SALES, at_ms=t0 + i + 2)]
    batch = make_batch(evs, batch_id="dup-1")
    ingest.send(batch)
    ack = ingest.await_ack("dup-1")
    assert (ack.accepted, ack.duplicates, len(ack.rejections)) == (9, 0, 0)
    snap = {l: query.lead(l) for l in leads}
    st0 = query.stats()
    f0 = funnel_dict(query.funnel())

    ingest.send(batch)                  # the very same message again
    ack = ingest.await_ack("dup-1")
    assert ack.error == ""
    assert (ack.accepted, ack.duplicates, len(ack.rejections)) == (0, 9, 0)

    # the same ids in a different batch, reordered, are duplicates as well
    ack = ingest.publish(list(reversed(evs))[:4], batch_id="dup-2")
    assert (ack.accepted, ack.duplicates) == (0, 4)

    # duplicate ids inside one batch: the first is applied, the second not
    lead = uid("dup")
    e = make_event(lead, "email_open")
    ack = ingest.publish([e, e], batch_id="dup-3")
    assert (ack.accepted, ack.duplicates) == (1, 1)
    assert query.lead(lead).events == 1

    for l in leads:
        now = query.lead(l)
        assert at_rest(now) == at_rest(snap[l]), "lead %s changed by duplicates:\n%s\n---\n%s" % (l, snap[l], now)
        assert now.events == 3
        assert abs(now.engagement - 36.0) < 0.01
    st1 = query.stats()
    assert st1.duplicates - st0.duplicates == 9 + 4 + 1
    assert st1.applied - st0.applied == 1
    assert st1.received - st0.received == 9 + 4 + 2
    f1 = funnel_dict(query.funnel())
    # only the one new lead (awareness) differs
    assert f1["leads"] == f0["leads"] + 1
    d0 = {s[0]: s for s in f0["stages"]}
    for s in f1["stages"]:
        delta = (s[1] - d0[s[0]][1], s[2] - d0[s[0]][2], s[3] - d0[s[0]][3])
        assert delta == ((1, 1, 0) if s[0] == "awareness" else (0, 0, 0)), s


def test_messages_queued_before_start_are_all_acked(daemon_factory, zctx):
    """STYLE rule 17: N messages queued before the first callback all get
    acked (the ZMQ_FD edge fires before the loop registers it)."""
    d = daemon_factory(start=False)
    client = IngestClient(zctx, d.ingest_ep)    # connects before anyone binds
    n_batches, per = 20, 500
    t0 = now_ms() - 3_600_000
    types = ["page_view", "email_open", "form_submit", "content_download"]
    leads = set()
    ids = []
    for b in range(n_batches):
        evs = []
        for i in range(per):
            lead = "q-%03d" % ((b * per + i) % 250)
            leads.add(lead)
            evs.append(make_event(lead, types[i % 4], event_id="q-%d-%d" % (b, i),
                                  at_ms=t0 + b * per + i))
        batch = make_batch(evs, batch_id="q-%d" % b)
        ids.append(batch.batch_id)
        client.send(batch)

    d.spawn()
    got = {}
    deadline = time.monotonic() + 60
    while len(got) < n_batches:
        left = deadline - time.monotonic()
        ack = client.recv_ack(left) if left > 0 else None
        assert ack is not None, "only %d of %d Acks; missing %s\n%s" % (
            len(got), n_batches, sorted(set(ids) - set(got)), d.stderr())
        assert ack.batch_id not in got, "second Ack for %s" % ack.batch_id
        got[ack.batch_id] = ack
    assert set(got) == set(ids)
    assert all(a.error == "" and not a.rejections for a in got.values())
    assert sum(a.accepted for a in got.values()) == n_batches * per
    assert sum(a.duplicates for a in got.values()) == 0

    q = QueryClient(zctx, d.query_ep)
    f = q.funnel()
    assert f.leads == len(leads)
    st = q.stats()
    assert st.applied == n_batches * per
    assert st.leads == len(leads)
    assert q.lead("q-007").events == n_batches * per // 250
    q.close()
    client.close()
