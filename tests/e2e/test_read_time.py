"""What funneld says is true when it is read: scores decay to the daemon's
time (here the event-time watermark, --clock event), in the lead query,
in funnelctl lead and in alerts at the time they are raised; and a lead
replayed from the log (--ledger, --as-of) tells its whole ledger and what
it looked like on a given day."""

import datetime
import json

from conftest import (SALES, AlertSubscriber, IngestClient, QueryClient,
                      make_event, pb, uid)

DAY = 86_400_000
HALF_LIFE = 30 * DAY
T0 = 1767225600000          # 2026-01-01T00:00:00Z


def _iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _event_clock(daemon_factory, zctx):
    d = daemon_factory(extra_args=["--clock", "event"])
    return d, IngestClient(zctx, d.ingest_ep), QueryClient(zctx, d.query_ep)


def _tick(ingest, at_ms):
    """Move the event clock to at_ms with another lead (straight into the
    terminal stage action: no deadline of its own)."""
    ack = ingest.publish([make_event(uid("tick"), "closed_won", SALES, at_ms=at_ms)])
    assert ack.accepted == 1


def test_untouched_lead_shows_half_its_engagement_after_a_half_life(daemon_factory, zctx):
    d, ingest, query = _event_clock(daemon_factory, zctx)
    lead = uid("cold")
    # 25 + 20 = 45 engagement: not qualified (50), so nothing else happens
    ingest.publish([make_event(lead, "demo_request", SALES, at_ms=T0,
                               attrs={"industry": "software"}),
                    make_event(lead, "meeting_booked", SALES, at_ms=T0)])
    l = query.lead(lead)
    assert (l.engagement, l.fit, l.scores_as_of_ms) == (45.0, 10.0, T0)

    _tick(ingest, T0 + HALF_LIFE)
    l = query.lead(lead)
    assert l.last_event_ms == T0                    # untouched
    assert l.scores_as_of_ms == T0 + HALF_LIFE      # the daemon's time
    assert abs(l.engagement - 22.5) < 1e-9, l.engagement
    assert abs(l.total - 32.5) < 1e-9               # fit does not decay
    cur = [e.current for e in l.ledger if e.kind == "engagement"]
    assert [round(c, 9) for c in cur] == [12.5, 10.0]
    assert not l.qualified and l.handoff_status == pb.HANDOFF_NONE

    # funnelctl lead, text and JSON
    text = d.ctl("lead", lead).stdout.decode()
    assert "score       total 32.5 (fit 10.0, engagement 22.5) as of 2026-01-31" in text, text
    j = json.loads(d.ctl("lead", lead, json_out=True).stdout)
    assert j["score"]["as_of"] == _iso(T0 + HALF_LIFE)
    assert abs(j["score"]["engagement"] - 22.5) < 1e-9

    # another half-life: a quarter
    _tick(ingest, T0 + 2 * HALF_LIFE)
    assert abs(query.lead(lead).engagement - 11.25) < 1e-9
    ingest.close()
    query.close()


def test_stall_alert_shows_the_score_when_raised(daemon_factory, zctx):
    d, ingest, query = _event_clock(daemon_factory, zctx)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["friction.stall", "stage"])
    # beat the slow joiner at T0 without deadlines
    for _ in range(200):
        w = uid("warm")
        ingest.publish([make_event(w, "closed_won", SALES, at_ms=T0)])
        item = sub.recv(0.1)
        if item and item[1].lead_id == w:
            break
    lead = uid("stall")
    # interest (max_dwell 14d): form_submit 10 + webinar 10
    ingest.publish([make_event(lead, "form_submit", at_ms=T0),
                    make_event(lead, "webinar_attended", at_ms=T0)])
    _tick(ingest, T0 + 15 * DAY)
    _, a = sub.await_alert(lambda t, a: t == "friction.stall" and a.lead_id == lead,
                           what="the stall alert")
    # raised when the watermark passed T0 + 15d: 20 points decayed by 15 days
    assert a.lead.scores_as_of_ms == T0 + 15 * DAY
    assert abs(a.lead.engagement - 20 * 2 ** -0.5) < 1e-9, a.lead.engagement
    assert abs(a.lead.total - a.lead.engagement) < 1e-9
    sub.close()
    ingest.close()
    query.close()


def _lead_query(query, lead, **kw):
    req = pb.QueryRequest()
    req.lead.lead_id = lead
    for k, v in kw.items():
        setattr(req.lead, k, v)
    rep = query.request(req)
    assert rep.error == "", rep.error
    return rep.lead


def test_ledger_and_as_of_replay_the_log(daemon_factory, zctx):
    d, ingest, query = _event_clock(daemon_factory, zctx)
    lead = uid("hist")
    evs = [make_event(lead, "page_view", at_ms=T0 + i * DAY) for i in range(12)]
    evs.append(make_event(lead, "form_submit", at_ms=T0 + 12 * DAY,
                          attrs={"industry": "software", "role": "cto"}))
    evs.append(make_event(lead, "demo_request", SALES, at_ms=T0 + 13 * DAY))
    evs.append(make_event(lead, "meeting_booked", SALES, at_ms=T0 + 13 * DAY))
    evs.append(make_event(lead, "handoff_rejected", SALES, at_ms=T0 + 14 * DAY,
                          attrs={"reason": "no budget"}))
    ingest.publish(evs)
    _tick(ingest, T0 + 20 * DAY)

    plain = _lead_query(query, lead).lead
    assert len(plain.ledger) == 8 and plain.older_engagement.entries > 0
    assert not plain.ledger_complete and plain.as_of_ms == 0

    # --ledger: every change since the first event, current as of now
    rep = _lead_query(query, lead, ledger=True)
    l = rep.lead
    assert l.ledger_complete and l.as_of_ms == T0 + 20 * DAY
    kinds = [(e.kind, e.rule) for e in l.ledger]
    assert kinds.count(("engagement", "engagement: page_view")) == 12
    assert ("engagement", "recycle: handoff rejected, engagement restarts") in kinds
    assert sum(1 for k, _ in kinds if k == "fit") == 2    # industry, role
    # the entries add up to the scores, and match the stored record's
    assert abs(sum(e.current for e in l.ledger if e.kind == "engagement") - l.engagement) < 1e-9
    assert abs(sum(e.current for e in l.ledger if e.kind == "fit") - l.fit) < 1e-9
    assert abs(l.engagement - plain.engagement) < 1e-9
    assert (l.stage, l.persona, l.handoff_status, l.fit) == \
        (plain.stage, plain.persona, plain.handoff_status, plain.fit)
    assert [e.event_id for e in l.ledger[-8:]] == [e.event_id for e in plain.ledger]

    # --as-of: the lead as it was on the day of the demo (pending handoff),
    # its scores decayed to that time
    at = T0 + 13 * DAY + 3600_000
    l = _lead_query(query, lead, as_of_ms=at).lead
    assert l.as_of_ms == at and l.scores_as_of_ms == at
    assert (l.stage, l.handoff_status, l.persona) == ("decision", pb.HANDOFF_PENDING,
                                                      "decision_maker")
    assert l.events == 15
    want = sum(2 ** (-(at - (T0 + i * DAY)) / HALF_LIFE) for i in range(12)) \
        + 10 * 2 ** (-(at - (T0 + 12 * DAY)) / HALF_LIFE) \
        + 45 * 2 ** (-(at - (T0 + 13 * DAY)) / HALF_LIFE)
    assert abs(l.engagement - want) < 1e-9, (l.engagement, want)
    # before the form: awareness, no persona, and its friction so far
    l = _lead_query(query, lead, as_of_ms=T0 + 5 * DAY).lead
    assert (l.stage, l.persona, l.handoff_status, l.events) == \
        ("awareness", "", pb.HANDOFF_NONE, 6)
    # before the first event: none
    assert not _lead_query(query, lead, as_of_ms=T0 - 1).found

    # through funnelctl, the same document shape plus "as_of"
    j = json.loads(d.ctl("lead", lead, "--as-of", _iso(at), json_out=True).stdout)
    assert j["as_of"] == _iso(at) and j["stage"] == "decision"
    assert j["handoff"]["status"] == "pending"
    j = json.loads(d.ctl("lead", lead, "--ledger", json_out=True).stdout)
    assert j["score"]["ledger_complete"] is True and len(j["score"]["ledger"]) == 18
    r = d.ctl("lead", lead, "--as-of", _iso(T0 - DAY))
    assert r.returncode == 1 and "no events by" in r.stderr.decode()
    r = d.ctl("lead", lead, "--as-of", "yesterday")
    assert r.returncode == 2 and "bad time" in r.stderr.decode()
    ingest.close()
    query.close()


def test_replay_of_a_long_chain(daemon_factory, zctx):
    """2,000 events of one lead: the whole chain is replayed (the bench,
    tools/bench/replay, measures 10,000)."""
    d, ingest, query = _event_clock(daemon_factory, zctx)
    lead = uid("long")
    n = 2000
    for b in range(0, n, 500):
        ingest.publish([make_event(lead, "email_open", at_ms=T0 + (b + i) * 60_000)
                        for i in range(500)])
    l = _lead_query(query, lead, ledger=True).lead
    assert l.events == n and len(l.ledger) == n and l.ledger_complete
    plain = query.lead(lead)
    assert abs(l.engagement - plain.engagement) < 1e-6
    ingest.close()
    query.close()
