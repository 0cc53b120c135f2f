"""Alerts: exactly one handoff per qualification; stage alerts per change."""

from conftest import (SALES, AlertSubscriber, make_event, now_ms, pb, uid)


def _handoffs(sub, lead):
    return [a for t, a in sub.received if t == "handoff" and a.lead_id == lead]


def test_exactly_one_handoff(zctx, daemon, ingest, query):
    sub = AlertSubscriber(zctx, daemon.alerts_ep, ["handoff"])
    sub.sync(ingest)
    lead = uid("hot")
    t0 = now_ms() - 10_000

    ack = ingest.publish([make_event(lead, "demo_request", source=SALES, at_ms=t0),
                          make_event(lead, "meeting_booked", source=SALES, at_ms=t0 + 1000)])
    assert ack.accepted == 2
    l = query.lead(lead)
    assert abs(l.engagement - 45.0) < 0.01
    assert not l.qualified
    assert l.handoff_status == pb.HANDOFF_NONE

    trigger = make_event(lead, "form_submit", at_ms=t0 + 2000)
    assert ingest.publish([trigger]).accepted == 1
    topic, alert = sub.await_alert(lambda t, a: t == "handoff" and a.lead_id == lead,
                                   what="handoff for %s" % lead)
    assert alert.kind == "handoff"
    assert alert.topic == "handoff"
    assert alert.event_id == trigger.id
    assert alert.at_ms == t0 + 2000
    assert alert.lead.id == lead
    assert alert.lead.qualified
    assert alert.lead.handoff_status == pb.HANDOFF_PENDING
    assert abs(alert.lead.engagement - 55.0) < 0.01
    assert alert.lead.events == 3
    assert len(alert.reasons) >= 1
    assert any("engagement" in r for r in alert.reasons), list(alert.reasons)
    assert alert.seq > 0

    l = query.lead(lead)
    assert l.qualified
    assert l.handoff_status == pb.HANDOFF_PENDING
    assert l.handoff_at_ms == t0 + 2000

    # More engagement, a dip below the threshold and a climb back over it:
    # still qualified once, so no second handoff.
    assert ingest.publish([make_event(lead, "webinar_attended", at_ms=t0 + 3000)]).accepted == 1
    assert ingest.publish([make_event(lead, "unsubscribe", at_ms=t0 + 4000),
                           make_event(lead, "unsubscribe", at_ms=t0 + 5000)]).accepted == 2
    assert ingest.publish([make_event(lead, "demo_request", source=SALES,
                                      at_ms=t0 + 6000)]).accepted == 1
    l = query.lead(lead)
    assert abs(l.engagement - 50.0) < 0.01      # 55 + 10 - 40 + 25
    assert l.qualified

    # Barrier: another lead qualifies in one batch; its handoff comes after
    # anything the events above could have raised.
    other = uid("hot")
    ingest.publish([make_event(other, "demo_request", source=SALES),
                    make_event(other, "meeting_booked", source=SALES),
                    make_event(other, "form_submit")])
    sub.await_alert(lambda t, a: t == "handoff" and a.lead_id == other,
                    what="handoff for %s" % other)
    assert len(_handoffs(sub, lead)) == 1, [
        (a.event_id, list(a.reasons)) for a in _handoffs(sub, lead)]
    assert len(_handoffs(sub, other)) == 1
    st = query.stats()
    assert st.alerts >= 2
    sub.close()


def test_stage_alerts(zctx, daemon, ingest, query):
    sub = AlertSubscriber(zctx, daemon.alerts_ep, ["stage"])
    sub.sync(ingest)
    lead = uid("st")
    t0 = now_ms() - 10_000
    evs = [make_event(lead, "email_open", at_ms=t0),
           make_event(lead, "email_click", at_ms=t0 + 1),      # interest
           make_event(lead, "page_view", at_ms=t0 + 2),        # no move back
           make_event(lead, "email_click", at_ms=t0 + 3),      # same stage
           make_event(lead, "proposal_sent", source=SALES, at_ms=t0 + 4),
           make_event(lead, "purchase", at_ms=t0 + 5),
           make_event(lead, "closed_lost", source=SALES, at_ms=t0 + 6)]  # after action: no move
    for e in evs:
        assert ingest.publish([e]).accepted == 1

    # barrier: a new lead's creation alert comes after all of the above
    marker = uid("st-marker")
    ingest.publish([make_event(marker, "page_view")])
    sub.await_alert(lambda t, a: a.lead_id == marker, what="stage alert for marker")

    got = [(a.from_stage, a.stage, a.event_id) for t, a in sub.received
           if a.lead_id == lead]
    assert got == [("", "awareness", evs[0].id),
                   ("awareness", "interest", evs[1].id),
                   ("interest", "decision", evs[4].id),
                   ("decision", "action", evs[5].id)]
    for t, a in sub.received:
        if a.lead_id == lead:
            assert t == "stage" and a.kind == "stage" and a.topic == "stage"
            # Stage alerts carry no lead snapshot (stored light): the
            # lead is its id and a LeadQuery away.
            assert not a.HasField("lead")
    assert query.lead(lead).stage == "action"
    assert query.lead(lead).events == len(evs)

    # a skip is one alert, awareness -> decision
    skip = uid("st")
    ingest.publish([make_event(skip, "social_engagement", at_ms=t0),
                    make_event(skip, "trial_started", at_ms=t0 + 1)])
    sub.await_alert(lambda t, a: a.lead_id == skip and a.stage == "decision",
                    what="decision alert for %s" % skip)
    got = [(a.from_stage, a.stage, [r for r in a.reasons if r.startswith("skipped")])
           for t, a in sub.received if a.lead_id == skip]
    assert got == [("", "awareness", []), ("awareness", "decision", ["skipped interest"])]
    assert list(query.lead(skip).skipped) == ["interest"]
    sub.close()
