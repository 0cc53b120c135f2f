"""funnelctl watch and the jumps in the alert numbers that are no loss: with a
topic (the alerts of the other topics are numbered too) and with partitions
(the numbers step by the log's), the live alerts after a jump are held and
one AlertsSince fills a whole range. Every alert is printed once, in order,
and funneld answers a handful of AlertsSince queries (Stats.alert_queries),
not one per alert."""

import json
import os
import signal

from conftest import SALES, IngestClient, QueryClient, make_event, now_ms, uid, wait_until
from test_alert_consumers import Watch, stored

BATCHES = 6          # EventBatches, each committed (and its alerts published) at once
PER_BATCH = 60       # leads qualifying in each (a handoff alert each)
VIEWS = 3            # fresh leads' page_views before each (a stage alert each)


def qualify(lead, t0):
    return [make_event(lead, "demo_request", source=SALES, at_ms=t0),
            make_event(lead, "meeting_booked", source=SALES, at_ms=t0 + 1000),
            make_event(lead, "form_submit", at_ms=t0 + 2000)]


def load(c):
    """BATCHES batches, each of PER_BATCH leads qualifying, every one after
    VIEWS new leads' page_views, so that handoff and stage alerts alternate.
    Returns the qualified leads, in order."""
    t0 = now_ms() - 3_600_000
    leads = []
    at = t0
    for _ in range(BATCHES):
        evs = []
        for _ in range(PER_BATCH):
            for _ in range(VIEWS):
                evs.append(make_event(uid("pv"), "page_view", at_ms=at))
                at += 1
            lead = uid("hq")
            leads.append(lead)
            evs += qualify(lead, at)
            at += 3000
        ack = c.publish(evs, timeout=60)
        assert (ack.accepted, ack.error) == (len(evs), ""), ack
    return leads


def test_watch_handoff_fills_the_other_topics_numbers_in_batches(daemon, ingest, query):
    base = query.stats().alert_queries
    n = 1 + BATCHES * PER_BATCH
    w = Watch(daemon, "--json", "watch", "handoff", "--since", "0", "--count", str(n))
    try:
        # Going: it printed a handoff raised after it started.
        warm = uid("warm")
        assert ingest.publish(qualify(warm, now_ms() - 60_000)).accepted == 3
        first = w.line(timeout=30)
        assert first and first["lead"] == warm, first
        leads = load(ingest)
        rc, docs, err = w.finish()
    finally:
        w.kill()
    assert rc == 0, err
    used = query.stats().alert_queries - base
    docs = [first] + docs
    assert [d["lead"] for d in docs] == [warm] + leads        # each once, in order
    handoffs = stored(query, 0, ["handoff"])
    assert [d["alert_seq"] for d in docs] == [a.alert_seq for a in handoffs]
    assert all(d["topic"] == "handoff" for d in docs)
    # Nearly every handoff came after stage alerts (numbered too): one
    # query per jump would be more than this bound; a batched fill per
    # 100 ms or 4096 alerts stays far below it.
    stages = len(stored(query, 0, ["stage"]))
    assert stages > 1000 and len(leads) > stages // 10, (stages, len(leads))
    assert 1 <= used < stages // 10, "%d AlertsSince for %d stage and %d handoff alerts" % (
        used, stages, len(leads))
    # funnelctl stats shows the counter (the stored() reads above are in it).
    asked = query.stats().alert_queries
    st = json.loads(daemon.ctl("stats", json_out=True).stdout)
    assert st["alert_queries"] == asked > base + used
    text = daemon.ctl("stats").stdout.decode()
    assert "alert queries    %d " % asked in text, text


def test_watch_with_partitions_prints_every_alert_once_in_order(tmp_path, zctx,
                                                                 daemon_factory):
    d = daemon_factory(extra_args=["--partitions", "2"])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    resume = str(tmp_path / "resume")
    base = q.stats().alert_queries
    w = Watch(d, "--json", "watch", "stage", "handoff", "--resume", resume)
    try:
        # Without a file it starts after the alerts stored now.
        wait_until(lambda: os.path.exists(resume), 10, what="the resume file")
        start = int(open(resume).read())
        warm = uid("warm")
        assert c.publish(qualify(warm, now_ms() - 60_000)).accepted == 3
        docs = []
        while not any(x["lead"] == warm and x["topic"] == "handoff" for x in docs):
            doc = w.line(timeout=30)
            assert doc is not None, "watch stopped after %d alerts" % len(docs)
            docs.append(doc)
        leads = load(c)
        # The last alert: a new lead's stage alert after everything else.
        end = uid("end")
        assert c.publish([make_event(end, "page_view")]).accepted == 1
        while docs[-1]["lead"] != end:
            doc = w.line(timeout=30)
            assert doc is not None, "watch stopped after %d alerts" % len(docs)
            docs.append(doc)
        w.p.send_signal(signal.SIGTERM)
        rc, rest, err = w.finish()
    finally:
        w.kill()
    assert rc == 0, err
    assert rest == [], rest
    used = q.stats().alert_queries - base
    want = stored(q, start, ["stage", "handoff"])
    seqs = [x["alert_seq"] for x in docs]
    assert seqs == [a.alert_seq for a in want]                # each once, in order
    assert [x["topic"] for x in docs] == [a.topic for a in want]
    assert [x["lead"] for x in docs if x["topic"] == "handoff"] == [warm] + leads
    assert int(open(resume).read()) == seqs[-1]
    # The numbers step by the log sequence (16 to an entry): nearly every
    # alert follows a jump, and one query per jump would be thousands.
    assert len(docs) > 1500 and seqs[-1] - seqs[0] > 4 * len(docs), (len(docs), seqs[-1])
    assert 1 <= used < len(docs) // 10, "%d AlertsSince for %d alerts" % (used, len(docs))
    c.close()
    q.close()
