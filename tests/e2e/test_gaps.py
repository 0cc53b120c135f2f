"""Gaps on best-effort streams: a sequenced publisher's missing seq numbers
are counted (stats gaps, funnelctl stats) and alerted on ingest.gap."""

import json
import time

import pytest
import zmq

from conftest import (AlertSubscriber, IngestClient, QueryClient, free_port,
                      make_batch, make_event, tcp_ep, uid)


def test_seq_gaps_are_counted_and_alerted(zctx, daemon_factory):
    up = zctx.socket(zmq.PUB)
    up.setsockopt(zmq.LINGER, 0)
    ep = tcp_ep(free_port())
    up.bind(ep)
    d = daemon_factory(subscribe=[ep])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["ingest.gap"])
    sub.sync(c)

    pubname = uid("web")
    lead = uid("gap")

    def send(seq):
        up.send_multipart([b"marketing.web", make_batch(
            [make_event(lead, "page_view", event_id="%s-%d" % (pubname, seq),
                        publisher=pubname, seq=seq)]).SerializeToString()])

    # seq 1 is the baseline; resend it until the subscription is live
    deadline = time.monotonic() + 15
    while q.lead(lead) is None:
        assert time.monotonic() < deadline, "stream never delivered"
        send(1)
        time.sleep(0.05)   # publication period; the query decides
    st0 = q.stats()
    for seq in (2, 3, 6, 4, 6, 10):   # 6 after 3: 2 missing; 10 after 6: 3 missing
        send(seq)
    t, a = sub.await_alert(lambda t, a: t == "ingest.gap", what="first gap alert")
    assert a.kind == "gap"
    assert pubname in a.reasons[0] and "3 to 6" in a.reasons[0], list(a.reasons)
    assert a.event_id == "%s-6" % pubname
    t, a = sub.await_alert(lambda t, a: t == "ingest.gap" and "10" in a.reasons[0],
                           what="second gap alert")
    assert "6 to 10" in a.reasons[0] and "3 event" in a.reasons[0], list(a.reasons)

    def applied():
        l = q.lead(lead)
        return l if l and l.events == 6 else None   # 1,2,3,6,4,10 (6 twice)
    from conftest import wait_until
    wait_until(applied, 10, what="six stream events applied")
    st = q.stats()
    assert st.gaps - st0.gaps == 2 + 3, st
    # a repeat (6) and a late one (4) are not gaps: exactly two alerts
    assert len([x for x in sub.received if x[0] == "ingest.gap"]) == 2

    r = d.ctl("stats", json_out=True)
    assert r.returncode == 0, r.stderr
    js = json.loads(r.stdout)
    assert js["gaps"] == st.gaps

    # the ingest socket is not a stream: seq there is not gap-checked
    ack = c.publish([make_event(lead, "email_open", publisher=pubname, seq=99)])
    assert ack.accepted == 1
    assert q.stats().gaps == st.gaps
    sub.close()
    c.close()
    q.close()
    up.close(0)
