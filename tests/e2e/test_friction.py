"""Friction points end to end, with the daemon's clock on event time
(--clock event): scripted histories give exactly the expected friction
alerts, in order; deadlines pending across a SIGKILL fire once after the
restart; a backfill of the real Olist marketing-funnel data gives a
friction report equal to a recomputation from its CSV files."""

import csv
import datetime
import json
import math
import os
import signal

import pytest

from conftest import (AlertSubscriber, IngestClient, QueryClient, MARKETING,
                      SALES, make_event, pb, uid, wait_until, REPLY_TIMEOUT)

HOUR = 3600 * 1000
DAY = 24 * HOUR
T0 = 1736121600000          # 2025-01-06T00:00:00Z

DATA_DIR = os.environ.get("FUNNELD_DATA_DIR",
                          os.path.join(os.path.dirname(__file__), "..", "..",
                                       "..", "shared", "data"))
OLIST = os.path.join(DATA_DIR, "olist-funnel")

# The histogram's stated bound on a median or p90 (README, funnelctl
# friction --help): 2.2% for stays of a second or more.
DWELL_REL_ERROR = 0.022


def event_clock(daemon_factory, **kw):
    args = ["--clock", "event"] + list(kw.pop("extra_args", []))
    return daemon_factory(extra_args=args, **kw)


def sync(sub, ingest, at_ms):
    """Beat the PUB/SUB slow joiner without moving the event clock: warm-up
    leads are created straight in the terminal stage `action` (no
    deadline) at at_ms, until the stage alert of one arrives."""
    warm = set()
    for _ in range(200):
        lead = uid("warmup")
        warm.add(lead)
        ack = ingest.publish([make_event(lead, "closed_won", SALES, at_ms=at_ms)])
        assert ack.accepted == 1, ack
        item = sub.recv(0.1)
        while item is not None:
            if item[0] == "stage" and item[1].lead_id in warm:
                sub.received = [x for x in sub.received
                                if x[1].lead_id not in warm]
                return warm
            item = sub.recv(0.05)
    pytest.fail("alert subscription never became active")


def until_sentinel(sub, ingest, at_ms):
    """Move the clock to at_ms (a lead straight into action), then publish
    a sentinel lead at the same time and receive until its stage alert:
    the deadlines that fell due at at_ms fired after the first commit, so
    every alert published before the sentinel's has then arrived."""
    ingest.publish([make_event(uid("tick"), "closed_won", SALES, at_ms=at_ms)])
    lead = uid("sentinel")
    ingest.publish([make_event(lead, "closed_won", SALES, at_ms=at_ms)])
    sub.await_alert(lambda t, a: t == "stage" and a.lead_id == lead,
                    what="the sentinel's stage alert")
    return [(a.kind, a.lead_id, a.stage) for t, a in sub.received
            if t.startswith("friction.")]


def friction_report(query, **kw):
    req = pb.QueryRequest()
    req.friction.SetInParent()
    for k, v in kw.items():
        setattr(req.friction, k, v)
    rep = query.request(req)
    assert rep.error == "", rep.error
    assert rep.WhichOneof("reply") == "friction", rep
    return rep.friction


def stage_row(report, stage):
    for s in report.stages:
        if s.stage == stage:
            return s
    pytest.fail("no stage %s in the friction report" % stage)


# --------------------------------------------------------------------------
# a scripted history

def test_scripted_history_alerts_in_order(daemon_factory, zctx):
    d = event_clock(daemon_factory)
    ingest = IngestClient(zctx, d.ingest_ep)
    query = QueryClient(zctx, d.query_ep)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["friction.", "stage"])
    try:
        sync(sub, ingest, T0 - HOUR)

        def send(lead, type_, at, source=MARKETING, **attrs):
            ack = ingest.publish([make_event(lead, type_, source, at_ms=at,
                                             attrs=attrs)])
            assert ack.accepted == 1, ack

        stall, hand, back, late = (uid("stall"), uid("hand"), uid("back"),
                                   uid("late"))
        tick = lambda at: send(uid("tick"), "closed_won", at, SALES)  # noqa

        send(stall, "form_submit", T0)                  # interest, 14d
        send(hand, "demo_request", T0, SALES)           # decision, 25 points
        send(hand, "meeting_booked", T0 + HOUR, SALES)  # 45
        send(hand, "webinar_attended", T0 + 2 * HOUR)   # 55: handoff, SLA 24h
        tick(T0 + 2 * DAY)                              # -> handoff_sla
        send(hand, "handoff_rejected", T0 + 3 * DAY, SALES, reason="no budget")
        send(back, "demo_request", T0 + 4 * DAY, SALES)
        send(back, "closed_lost", T0 + 5 * DAY, SALES)
        send(back, "deal_reopened", T0 + 6 * DAY, SALES)  # lost -> decision
        tick(T0 + 15 * DAY)                             # stall of `stall`
        tick(T0 + 18 * DAY)                             # stall of `hand`
        send(stall, "closed_won", T0 + 19 * DAY, SALES)  # was flagged: nothing
        send(late, "form_submit", T0 + 19 * DAY)        # due T0 + 33d
        # Its own next event jumps the clock past its due time: the stay is
        # flagged as it ends; then `back`'s decision deadline (T0 + 27d).
        send(late, "demo_request", T0 + 40 * DAY, SALES)

        got = until_sentinel(sub, ingest, T0 + 40 * DAY)
        assert got == [
            ("handoff_sla", hand, "decision"),
            ("handoff_rejected", hand, "decision"),
            ("regression", hand, "interest"),
            ("regression", back, "decision"),
            ("stall", stall, "interest"),
            ("stall", hand, "interest"),
            ("stall", late, "interest"),
            ("stall", back, "decision"),
        ]
        topics = {(t, a.kind) for t, a in sub.received if t.startswith("friction.")}
        assert all(t == "friction." + k for t, k in topics), topics
        by_kind = {(a.kind, a.lead_id): a for t, a in sub.received}
        a = by_kind[("stall", stall)]
        assert any("max_dwell 14d" in r for r in a.reasons), a.reasons
        a = by_kind[("handoff_rejected", hand)]
        assert any("no budget" in r for r in a.reasons), a.reasons

        # The lead keeps its friction history, oldest first.
        lead = query.lead(hand)
        assert [(f.kind, f.stage) for f in lead.friction] == [
            ("handoff_sla", "decision"), ("handoff_rejected", "decision"),
            ("regression", "interest"), ("stall", "interest")]
        assert lead.frictions == 4 and lead.stalled and not lead.sla_breached
        assert lead.friction[1].detail == "no budget"
        assert not query.lead(stall).stalled

        # The report counts the same.
        rep = friction_report(query)
        interest, decision = stage_row(rep, "interest"), stage_row(rep, "decision")
        assert (interest.stalls, interest.stalled_now) == (3, 1)  # hand only
        assert (decision.stalls, decision.stalled_now) == (1, 1)
        assert decision.regressions == 1 and decision.rejections == 1
        assert stage_row(rep, "lost").regressions == 1
        assert rep.sla_breaches == 1 and rep.handoffs_past_sla == 0
        assert [(r.reason, r.count) for r in rep.rejection_reasons] == [("no budget", 1)]
        kinds = [p.kind for p in rep.points]
        assert kinds == sorted(kinds, key=["conversion", "dwell", "stall",
                                           "regression", "handoff_rejected",
                                           "handoff_sla"].index)
        assert [p.rank for p in rep.points] == list(range(1, len(rep.points) + 1))
        stalls = [(p.stage, p.value) for p in rep.points if p.kind == "stall"]
        assert stalls == [("interest", 3), ("decision", 1)]

        # The stalled leads of a stage, from the marks, longest first.
        rep = friction_report(query, leads=True, stage="interest")
        assert [(l.lead_id, l.since_ms) for l in rep.leads] == [(hand, T0 + 3 * DAY)]
        rep = friction_report(query, leads=True, stage="decision")
        assert [l.lead_id for l in rep.leads] == [back]

        # funnelctl shows the same.
        r = d.ctl("friction", "--stage", "interest", "--leads", json_out=True)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert [x["lead"] for x in doc["leads"]] == [hand] and doc["total"] == 1
        r = d.ctl("lead", hand, json_out=True)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert [h["kind"] for h in doc["friction"]["history"]] == [
            "handoff_sla", "handoff_rejected", "regression", "stall"]
        r = d.ctl("friction")
        assert r.returncode == 0 and b"stall" in r.stdout, r
    finally:
        sub.close()
        query.close()
        ingest.close()


def test_conversion_crossing_alerts_once(daemon_factory, zctx, tmp_path):
    """A stage below its target over the window alerts on the crossing,
    then once when it recovers; not on every event."""
    src = os.environ.get("FUNNELD_SOURCE_DIR",
                         os.path.join(os.path.dirname(__file__), "..", ".."))
    text = open(os.path.join(src, "handlers", "default.yaml")).read()
    old = "- {name: interest,  max_dwell: 14d}"
    assert old in text
    text = text.replace(old, "- {name: interest, max_dwell: 14d, conversion_target: 0.5}")
    text = text.replace("min_sample: 20", "min_sample: 4")
    path = tmp_path / "conv.yaml"
    path.write_text(text)
    d = event_clock(daemon_factory, extra_args=["--definition", str(path)])
    ingest = IngestClient(zctx, d.ingest_ep)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["friction.", "stage"])
    try:
        sync(sub, ingest, T0 - HOUR)
        leads = [uid("c") for _ in range(8)]
        for i, lead in enumerate(leads[:6]):       # 0 of 4, 5, 6 moved on
            ingest.publish([make_event(lead, "form_submit", at_ms=T0 + i * HOUR)])
        for i, lead in enumerate(leads[:3]):       # 3 of 6: recovered
            ingest.publish([make_event(lead, "demo_request", SALES,
                                       at_ms=T0 + 8 * HOUR + i * HOUR)])
        got = until_sentinel(sub, ingest, T0 + 12 * HOUR)
        assert [(k, s) for k, l, s in got] == [
            ("conversion", "interest"), ("conversion_recovered", "interest")]
        assert all(l == "" for k, l, s in got)
        q = QueryClient(zctx, d.query_ep)
        rep = friction_report(q)
        row = stage_row(rep, "interest")
        assert (row.window_entered, row.window_advanced) == (6, 3)
        assert row.has_window_conversion and not row.below_target
        q.close()
    finally:
        sub.close()
        ingest.close()


# --------------------------------------------------------------------------
# restart: deadlines pending across SIGKILL fire once

def test_deadlines_survive_sigkill(daemon_factory, zctx):
    d = event_clock(daemon_factory)
    ingest = IngestClient(zctx, d.ingest_ep)
    leads = [uid("k") for _ in range(5)]
    hand = uid("khand")
    for i, lead in enumerate(leads):
        ack = ingest.publish([make_event(lead, "form_submit", at_ms=T0 + i * HOUR)])
        assert ack.accepted == 1
    ingest.publish([make_event(hand, "demo_request", SALES, at_ms=T0),
                    make_event(hand, "meeting_booked", SALES, at_ms=T0),
                    make_event(hand, "webinar_attended", MARKETING, at_ms=T0)])
    ingest.close()
    d.stop(signal.SIGKILL)

    d.start(zctx)           # nothing is due yet at the old watermark
    ingest = IngestClient(zctx, d.ingest_ep)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["friction.", "stage"])
    q = QueryClient(zctx, d.query_ep)
    try:
        sync(sub, ingest, T0)
        assert until_sentinel(sub, ingest, T0 + HOUR) == []
        # Later in event time: every pending deadline falls due, once.
        got = until_sentinel(sub, ingest, T0 + 20 * DAY)
        assert sorted(got) == sorted([("stall", l, "interest") for l in leads] +
                                     [("handoff_sla", hand, "decision")])
        assert got[0][0] == "handoff_sla"     # due first (T0 + 24h)
        sub.received.clear()
    finally:
        sub.close()
        ingest.close()
        q.close()

    # Killed again right after they fired, restarted: they stay fired.
    d.stop(signal.SIGKILL)
    d.start(zctx)
    ingest = IngestClient(zctx, d.ingest_ep)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["friction.", "stage"])
    q = QueryClient(zctx, d.query_ep)
    try:
        sync(sub, ingest, T0)
        assert until_sentinel(sub, ingest, T0 + 60 * DAY) == [
            ("stall", hand, "decision")]      # its own, due T0 + 21d
        rep = friction_report(q)
        assert stage_row(rep, "interest").stalls == 5
        assert stage_row(rep, "interest").stalled_now == 5
        assert rep.sla_breaches == 1 and rep.handoffs_past_sla == 1
        for lead in leads:
            lr = q.lead(lead)
            assert lr.stalled and lr.frictions == 1, lr
    finally:
        sub.close()
        ingest.close()
        q.close()


# --------------------------------------------------------------------------
# a backfill of real data

def _ms(text):
    if len(text) == 10:
        dt = datetime.datetime.strptime(text, "%Y-%m-%d")
    else:
        dt = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def _olist_events():
    """(at_ms, order, lead, type, source, attrs): a form_submit at each
    MQL's first contact, a closed_won at each won date; in time order."""
    evs = []
    with open(os.path.join(OLIST, "olist_marketing_qualified_leads_dataset.csv"),
              newline="") as f:
        for r in csv.DictReader(f):
            evs.append((_ms(r["first_contact_date"]), 0, r["mql_id"], "form_submit",
                        MARKETING, {"origin": r["origin"] or "unknown"}))
    with open(os.path.join(OLIST, "olist_closed_deals_dataset.csv"),
              newline="") as f:
        for r in csv.DictReader(f):
            evs.append((_ms(r["won_date"]), 1, r["mql_id"], "closed_won", SALES,
                        {"business_segment": r["business_segment"]}))
    evs.sort()
    return evs


def _nearest_rank(sorted_values, q):
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _recompute(evs, max_dwell):
    """What the friction report must say about `interest`, from the events
    alone: a stay is a stall when it lasted max_dwell or more, or when it is
    still open and the last event time is max_dwell or more after it
    began."""
    stage, since = {}, {}
    stays, stalls, first_source = [], 0, {}
    for at, _, lead, type_, source, _ in evs:
        if lead not in stage:
            first_source[lead] = source
            stage[lead] = "interest" if type_ == "form_submit" else "action"
            since[lead] = at
            continue
        if stage[lead] == "interest" and type_ == "closed_won":
            stays.append(at - since[lead])
            stalls += at - since[lead] >= max_dwell
            stage[lead] = "action"
    watermark = max(e[0] for e in evs)
    open_ = [l for l in stage if stage[l] == "interest"]
    stalled_now = sorted(l for l in open_ if watermark - since[l] >= max_dwell)
    entered = sum(1 for l in stage if first_source[l] == MARKETING)
    return {
        "entered": entered, "advanced": len(stays), "in_progress": len(open_),
        "completed": len(stays), "stalls": stalls + len(stalled_now),
        "stalled_now": stalled_now, "stays": sorted(stays),
        "action": sum(1 for l in stage if stage[l] == "action"),
        "since": since,
    }


@pytest.mark.skipif(not os.path.isdir(OLIST), reason="no Olist data at %s" % OLIST)
@pytest.mark.parametrize("batch", [10000, 500], ids=["one-batch", "batches-of-500"])
def test_olist_backfill_report_matches_csv(daemon_factory, zctx, tmp_path, batch):
    """The same report whether the history arrives in one batch or in many
    (each group moves the event clock, and deadlines fire in between)."""
    src = os.environ.get("FUNNELD_SOURCE_DIR",
                         os.path.join(os.path.dirname(__file__), "..", ".."))
    text = open(os.path.join(src, "handlers", "default.yaml")).read()
    old = "- {name: interest,  max_dwell: 14d}"
    text = text.replace(old, "- {name: interest, max_dwell: 14d, conversion_target: 0.2}")
    path = tmp_path / "olist.yaml"
    path.write_text(text)
    d = event_clock(daemon_factory, extra_args=["--definition", str(path)])

    evs = _olist_events()
    ingest = IngestClient(zctx, d.ingest_ep)
    try:
        for i in range(0, len(evs), batch):
            b = [make_event(lead, type_, source, event_id="olist-%d" % (i + k),
                            at_ms=at, attrs=attrs)
                 for k, (at, _, lead, type_, source, attrs) in enumerate(evs[i:i + batch])]
            ack = ingest.publish(b, timeout=60)
            assert ack.accepted == len(b), ack
    finally:
        ingest.close()

    want = _recompute(evs, 14 * DAY)
    q = QueryClient(zctx, d.query_ep)
    try:
        # Deadlines fall due after the commit that moved the clock: wait
        # until the last of them has fired.
        wait_until(lambda: stage_row(friction_report(q), "interest").stalls
                   == want["stalls"], REPLY_TIMEOUT,
                   what="%d stalls in interest" % want["stalls"])
        rep = friction_report(q)
    finally:
        q.close()
    row = stage_row(rep, "interest")
    assert row.entered == want["entered"]
    assert row.advanced == want["advanced"]
    assert row.in_progress == want["in_progress"]
    assert row.dropped == 0
    assert row.completed == want["completed"]
    assert row.stalls == want["stalls"]
    assert row.stalled_now == len(want["stalled_now"])
    assert stage_row(rep, "action").in_progress == want["action"]
    for q_, got in ((0.5, row.median_ms), (0.9, row.p90_ms)):
        exact = _nearest_rank(want["stays"], q_)
        assert abs(got - exact) <= DWELL_REL_ERROR * exact, (q_, got, exact)
    conv = want["advanced"] / want["entered"]
    assert abs(row.conversion - conv) < 1e-12
    assert rep.points[0].kind == "conversion" and rep.points[0].stage == "interest"
    assert abs(rep.points[0].value - conv) < 1e-12

    # The stalled leads of interest, from the marks: the same leads,
    # stalled longest first.
    r = d.ctl("friction", "--stage", "interest", "--leads", "--limit", "100000",
              json_out=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["total"] == len(want["stalled_now"])
    assert sorted(x["lead"] for x in doc["leads"]) == want["stalled_now"]
    since = [want["since"][x["lead"]] for x in doc["leads"]]
    assert since == sorted(since)

    # The text report, as the README shows it.
    r = d.ctl("friction")
    assert r.returncode == 0, r.stderr
    (tmp_path / "olist-friction.txt").write_bytes(r.stdout)
    print(r.stdout.decode())
