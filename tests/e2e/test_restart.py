"""Durability: restarts keep every lead; SIGTERM loses nothing acked."""

import signal
import time

import pytest

from conftest import (SALES, IngestClient, QueryClient, at_rest, funnel_dict, make_batch,
                      make_event, now_ms)

TYPES = ["page_view", "email_open", "form_submit", "content_download",
         "demo_request", "meeting_booked", "closed_won", "closed_lost", "unsubscribe"]


def _snapshot(q, leads):
    out = {}
    for lead in leads:
        r = q.lead_reply(lead, timeline_limit=1000)
        assert r.found, "lead %s not found" % lead
        # the record, without the decay to the time of reading
        out[lead] = (at_rest(r.lead).SerializeToString(deterministic=True),
                     [(t.seq, t.event.id) for t in r.timeline])
    return out


def test_restart_keeps_every_lead(zctx, daemon_factory, rng):
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    n_leads = 300
    leads = ["r-%04d" % i for i in range(n_leads)]
    t0 = now_ms() - 86_400_000
    k = 0
    for b in range(10):
        evs = []
        for _ in range(200):
            lead = leads[rng.randrange(n_leads)] if k >= n_leads else leads[k]
            typ = rng.choice(TYPES)
            evs.append(make_event(lead, typ, source=SALES if typ.startswith(("closed", "meet")) else 1,
                                  event_id="r-ev-%d" % k, at_ms=t0 + k * 1000,
                                  attrs={"industry": rng.choice(["retail", "health", "tech"])}))
            k += 1
        ack = c.publish(evs, batch_id="r-%d" % b)
        assert (ack.accepted, ack.error) == (200, "")
    before_leads = _snapshot(q, leads)
    before_funnel = funnel_dict(q.funnel())
    st_before = q.stats()
    assert before_funnel["leads"] == n_leads
    assert st_before.applied == 2000
    c.close()
    q.close()

    d.stop_ok(signal.SIGTERM)
    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    after_leads = _snapshot(q, leads)
    for lead in leads:
        assert after_leads[lead] == before_leads[lead], "lead %s differs after restart" % lead
    assert funnel_dict(q.funnel()) == before_funnel
    st = q.stats()
    for f in ("received", "applied", "duplicates", "rejected", "last_seq", "leads"):
        assert getattr(st, f) == getattr(st_before, f), f

    # and the idempotency index survived as well
    c = IngestClient(zctx, d.ingest_ep)
    ack = c.publish([make_event("r-0000", "page_view", event_id="r-ev-0")])
    assert (ack.accepted, ack.duplicates) == (0, 1)
    c.close()

    # SIGINT is a clean stop too
    d.stop_ok(signal.SIGINT)
    d.start(zctx)
    assert funnel_dict(q.funnel()) == before_funnel
    q.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_signal_while_publishing_loses_nothing_acked(zctx, daemon_factory, sig):
    """SIGTERM: stop intake, commit, ack, exit 0. SIGKILL: no goodbye at all.
    Either way every acked event is there after a restart, none twice."""
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    per, leads_per = 50, 5
    n_batches, window = 400, 8
    t0 = now_ms() - 3_600_000

    def batch(b):
        evs = [make_event("s-%d-%d" % (b, i % leads_per),
                          ["page_view", "email_open", "form_submit"][i % 3],
                          event_id="s-%d-%d" % (b, i), at_ms=t0 + b * per + i)
               for i in range(per)]
        return make_batch(evs, batch_id="s-%d" % b)

    batches = [batch(b) for b in range(n_batches)]
    acked = {}
    sent = 0
    signalled = False
    drained = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        while sent < n_batches and sent - len(acked) < window and d.running():
            c.send(batches[sent])
            sent += 1
        if not signalled and len(acked) >= 20:
            d.send_signal(sig)                 # mid-stream: batches are in flight
            signalled = True
        ack = c.recv_ack(0.5)
        if ack is None:
            if not d.running():
                if drained:
                    break                 # exited, and nothing more came
                drained = True            # one more poll for Acks in transit
            continue
        assert ack.batch_id not in acked, "two Acks for %s" % ack.batch_id
        assert ack.error == "" and not ack.rejections, ack
        assert ack.accepted + ack.duplicates == per
        acked[ack.batch_id] = ack
        if sent == n_batches and len(acked) == n_batches:
            break
    assert signalled, "only %d Acks before the deadline" % len(acked)
    rc = d.stop()
    want = 0 if sig == signal.SIGTERM else -signal.SIGKILL
    assert rc == want, "funneld exited with %r on %s:\n%s" % (rc, sig.name, d.stderr())
    assert len(acked) >= 20
    c.close()          # drop whatever it still queues for the old daemon

    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    for b in range(sent):
        bid = "s-%d" % b
        for j in range(leads_per):
            r = q.lead_reply("s-%d-%d" % (b, j), timeline_limit=1000)
            if bid in acked:
                assert r.found, "acked batch %s: lead %d lost" % (bid, j)
                ids = sorted(t.event.id for t in r.timeline)
                assert ids == sorted("s-%d-%d" % (b, i) for i in range(j, per, leads_per)), bid
                assert r.lead.events == per // leads_per
            elif r.found:
                assert r.lead.events <= per // leads_per
    st = q.stats()
    assert st.applied >= sum(a.accepted for a in acked.values())

    # The client resends what was not acked: everything ends up applied once.
    c2 = IngestClient(zctx, d.ingest_ep)
    for b in range(n_batches):
        if "s-%d" % b not in acked:
            ack = c2.publish(list(batches[b].events), batch_id="s-%d" % b)
            assert ack.accepted + ack.duplicates == per
    st = q.stats()
    assert st.applied == n_batches * per
    assert q.funnel().leads == n_batches * leads_per
    for b in range(0, n_batches, 37):
        assert q.lead("s-%d-0" % b).events == per // leads_per
    c2.close()
    q.close()
