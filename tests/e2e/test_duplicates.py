"""Duplicates and disorder beyond a plain resend: the same event on a
stream and on the ingest socket, a copy with other content, events of one
lead out of event-time order, resends across a SIGKILL."""

import signal
import time

import pytest
import zmq

from conftest import (SALES, IngestClient, QueryClient, free_port, make_batch,
                      make_event, now_ms, tcp_ep, uid)


class Upstream:
    def __init__(self, ctx):
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.ep = tcp_ep(free_port())
        self.sock.bind(self.ep)

    def pub(self, topic, batch):
        self.sock.send_multipart([topic, batch.SerializeToString()])


def _until(cond, send, timeout=15.0, what="condition"):
    """send() then check cond() until it holds (slow joiner on PUB/SUB)."""
    deadline = time.monotonic() + timeout
    while True:
        send()
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail("%s never held" % what)
        time.sleep(0.05)   # publication period; cond() decides


def test_same_event_on_stream_and_ingest_is_applied_once(zctx, daemon_factory):
    up = Upstream(zctx)
    d = daemon_factory(subscribe=[up.ep])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    lead = uid("si")
    t0 = now_ms() - 10_000
    e1 = make_event(lead, "content_download", at_ms=t0)
    e2 = make_event(lead, "form_submit", at_ms=t0 + 1)
    # stream first, then the same ids on ingest
    _until(lambda: q.lead(lead), lambda: up.pub(b"marketing", make_batch([e1])),
           what="stream event applied")
    st0 = q.stats()
    ack = c.publish([e1, e2])
    assert (ack.accepted, ack.duplicates) == (1, 1), ack
    # ingest first, then the same ids on the stream, then a marker behind them
    for _ in range(3):
        up.pub(b"marketing", make_batch([e1, e2]))
    marker = uid("mark")
    _until(lambda: q.lead(marker), lambda: up.pub(b"marketing",
                                                  make_batch([make_event(marker, "page_view")])),
           what="marker")
    l = q.lead(lead)
    assert l.events == 2
    assert abs(l.engagement - 15.0) < 0.01, l
    r = q.lead_reply(lead, timeline_limit=10)
    assert sorted(t.event.id for t in r.timeline) == sorted([e1.id, e2.id])
    st = q.stats()
    assert st.duplicates - st0.duplicates >= 1 + 3 * 2
    c.close()
    q.close()


def test_a_copy_with_other_content_is_still_a_duplicate(ingest, query):
    lead = uid("cp")
    e = make_event(lead, "page_view", event_id=uid("id"))
    assert ingest.publish([e]).accepted == 1
    forged = make_event(lead, "demo_request", source=SALES, event_id=e.id,
                        attrs={"industry": "retail"})
    ack = ingest.publish([make_event(lead, "email_open"), forged])
    assert (ack.accepted, ack.duplicates) == (1, 1), ack
    l = query.lead(lead)
    assert l.stage == "awareness" and l.events == 2
    assert "industry" not in l.attrs
    assert abs(l.engagement - 3.0) < 0.01


def test_an_id_is_a_leads_own(ingest, query):
    """A resend carries the same lead and id; the same id under another
    lead is another event (ids need only be unique among a lead's events),
    and stays a duplicate under each lead."""
    a, b, eid = uid("ida"), uid("idb"), uid("id")
    assert ingest.publish([make_event(a, "page_view", event_id=eid)]).accepted == 1
    ack = ingest.publish([make_event(b, "page_view", event_id=eid),
                          make_event(a, "email_open", event_id=eid)])
    assert (ack.accepted, ack.duplicates) == (1, 1), ack
    assert query.lead(a).events == 1 and query.lead(b).events == 1
    ack = ingest.publish([make_event(b, "page_view", event_id=eid)])
    assert (ack.accepted, ack.duplicates) == (0, 1), ack


def test_out_of_event_time_order(ingest, query):
    """Applied in arrival order; forward-only stages; a lead's time never
    moves backwards."""
    lead = uid("oo")
    t0 = now_ms() - 3_600_000
    late = make_event(lead, "meeting_booked", source=SALES, at_ms=t0 + 60_000)
    early = make_event(lead, "page_view", at_ms=t0)
    middle = make_event(lead, "form_submit", at_ms=t0 + 30_000)
    assert ingest.publish([late]).accepted == 1
    assert ingest.publish([early, middle]).accepted == 2
    l = query.lead(lead)
    assert l.stage == "decision"          # never moved back by older events
    assert l.events == 3
    assert l.last_event_ms == t0 + 60_000
    assert abs(l.engagement - 31.0) < 0.5, l  # 20 + 1 + 10, decay under a minute
    r = query.lead_reply(lead, timeline_limit=10)
    # the timeline is in arrival (log) order
    assert [t.event.id for t in r.timeline] == [late.id, early.id, middle.id]
    seqs = [t.seq for t in r.timeline]
    assert seqs == sorted(seqs)


def test_resend_after_sigkill_is_applied_once(zctx, daemon_factory):
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    evs = [make_event("rk-%d" % (i % 7), "email_open", event_id="rk-%d" % i)
           for i in range(200)]
    b = make_batch(evs, batch_id="rk")
    c.send(b)
    assert c.await_ack("rk").accepted == 200
    d.stop(signal.SIGKILL)
    d.start(zctx)
    c2 = IngestClient(zctx, d.ingest_ep)
    c2.send(b)                                    # a publisher that missed the Ack
    ack = c2.await_ack("rk")
    assert (ack.accepted, ack.duplicates) == (0, 200), ack
    # the same events spread over two new batches
    assert c2.publish(evs[:100], batch_id="rk-a").duplicates == 100
    assert c2.publish(evs[100:], batch_id="rk-b").duplicates == 100
    st = q.stats()
    assert st.applied == 200 and st.last_seq == 200
    assert sum(q.lead("rk-%d" % i).events for i in range(7)) == 200
    c.close()
    c2.close()
    q.close()
