"""Issue 3 end to end: the handoff loop, reports by persona, source and
cohort, and `funnelctl definition check/diff`."""

import datetime
import json
import os
import random

from conftest import (MARKETING, SALES, AlertSubscriber, make_event, now_ms, pb,
                      uid)

SOURCE_DIR = os.environ.get("FUNNELD_SOURCE_DIR", ".")
DEFAULT_YAML = os.path.join(SOURCE_DIR, "handlers", "default.yaml")
DAY = 86_400_000


def _ctl_json(daemon, *args):
    r = daemon.ctl(*args, json_out=True)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def test_handoff_loop(zctx, daemon, ingest, query):
    sub = AlertSubscriber(zctx, daemon.alerts_ep,
                          ["handoff", "stage", "friction.handoff_rejected",
                           "friction.regression"])
    sub.sync(ingest)
    lead = uid("loop")
    t0 = now_ms() - 60_000

    def handoffs():
        return [a for t, a in sub.received if t == "handoff" and a.lead_id == lead]

    # demo_request 25 + meeting_booked 20 + form_submit 10 = 55 >= 50.
    ingest.publish([make_event(lead, "demo_request", SALES, at_ms=t0,
                               attrs={"industry": "software"}),
                    make_event(lead, "meeting_booked", SALES, at_ms=t0 + 1000)])
    ingest.publish([make_event(lead, "form_submit", at_ms=t0 + 2000)])
    _, first = sub.await_alert(lambda t, a: t == "handoff" and a.lead_id == lead,
                               what="first handoff")
    assert first.kind == "handoff"
    assert first.lead.handoff_status == pb.HANDOFF_PENDING
    assert any("rule matched: engagement >= 50" in r for r in first.reasons)
    assert any(r.startswith("breakdown:") for r in first.reasons)
    # The alert's snapshot explains every point.
    assert abs(sum(e.current for e in first.lead.ledger if e.kind == "fit")
               - first.lead.fit) < 1e-6
    assert abs(sum(e.current for e in first.lead.ledger if e.kind == "engagement")
               - first.lead.engagement) < 1e-6
    assert first.lead.fit == 10            # industry=software, a default fit rule

    # Sales rejects it: recycled to interest, engagement restarts.
    rej = make_event(lead, "handoff_rejected", SALES, at_ms=t0 + 3000,
                     attrs={"reason": "no budget this year"})
    ingest.publish([rej])
    _, fr = sub.await_alert(lambda t, a: t == "friction.handoff_rejected"
                            and a.lead_id == lead, what="handoff_rejected alert")
    assert any("no budget this year" in r for r in fr.reasons)
    _, st = sub.await_alert(lambda t, a: t == "stage" and a.lead_id == lead
                            and a.event_id == rej.id, what="recycle stage alert")
    assert (st.from_stage, st.stage) == ("decision", "interest")
    l = query.lead(lead)
    assert l.handoff_status == pb.HANDOFF_REJECTED
    assert not l.qualified
    assert l.stage == "interest"
    assert abs(l.engagement) < 1e-9
    assert l.handoffs[-1].reason == "no budget this year"
    assert l.handoffs[-1].status == pb.HANDOFF_REJECTED

    # It qualifies again later: a second handoff.
    ingest.publish([make_event(lead, "demo_request", SALES, at_ms=t0 + 4000)])
    assert len(handoffs()) == 1
    ingest.publish([make_event(lead, "meeting_booked", SALES, at_ms=t0 + 5000),
                    make_event(lead, "webinar_attended", at_ms=t0 + 6000)])
    _, second = sub.await_alert(lambda t, a: t == "handoff" and a.lead_id == lead
                                and a.event_id != first.event_id,
                                what="second handoff")
    assert second.lead.handoffs_sent == 2
    ingest.publish([make_event(lead, "handoff_accepted", SALES, at_ms=t0 + 7000)])

    j = _ctl_json(daemon, "lead", lead)
    assert j["handoff"]["status"] == "accepted"
    assert [h["status"] for h in j["handoff"]["history"]] == ["rejected", "accepted"]
    assert j["handoff"]["history"][0]["reason"] == "no budget this year"
    assert j["persona"] == "evaluator"
    ledger = j["score"]["ledger"]
    older = j["score"]["older"]
    eng = older["engagement"]["current"] + sum(e["current"] for e in ledger
                                               if e["kind"] == "engagement")
    fit = older["fit"]["current"] + sum(e["current"] for e in ledger if e["kind"] == "fit")
    assert abs(eng - j["score"]["engagement"]) < 1e-6
    assert abs(fit - j["score"]["fit"]) < 1e-6
    assert any(e["rule"].startswith("recycle:") for e in ledger) or \
        older["engagement"]["entries"] > 0

    f = _ctl_json(daemon, "funnel")
    assert f["handoffs"]["sent"] == 2
    assert f["handoffs"]["accepted"] == 1
    assert f["handoffs"]["rejected"] == 1
    assert f["handoffs"]["acceptance_rate"] == 0.5
    text = daemon.ctl("lead", lead).stdout.decode()
    assert "score ledger" in text and "persona history" in text
    # Exactly two handoff alerts for the lead: more events, then a barrier
    # (another lead's handoff, published after them).
    ingest.publish([make_event(lead, "demo_request", SALES, at_ms=t0 + 8000)])
    other = uid("barrier")
    ingest.publish([make_event(other, "demo_request", SALES),
                    make_event(other, "meeting_booked", SALES),
                    make_event(other, "form_submit")])
    sub.await_alert(lambda t, a: t == "handoff" and a.lead_id == other,
                    what="barrier handoff")
    assert len(handoffs()) == 2


# -- reports -------------------------------------------------------------

ORDER = ["awareness", "interest", "decision", "action"]
STAGE_OF = {"page_view": "awareness", "content_download": "interest",
            "webinar_attended": "interest", "demo_request": "decision",
            "closed_won": "action", "closed_lost": "lost"}
POINTS = {"page_view": 1, "content_download": 5, "webinar_attended": 10,
          "demo_request": 25}
BOSSES = {"cto", "ceo", "cio", "vp", "director", "head", "owner"}


def _persona(role, counts):
    if role in BOSSES:
        return "decision_maker"
    if counts.get("demo_request", 0) >= 1:
        return "evaluator"
    if counts.get("content_download", 0) >= 2:
        return "researcher"
    if counts.get("webinar_attended", 0) >= 1:
        return "event_goer"
    return "-"


def _recompute(leads):
    """Per group dimension: {group: {"leads", "now", "entered", "advanced",
    "handoffs"}} from the events, as the default definition says."""
    out = {"persona": {}, "source": {}, "cohort": {}}
    for events in leads.values():
        stage, entered, advanced = None, set(), set()
        counts, role, eng, handoffs = {}, None, 0, 0
        for ev in events:
            to = STAGE_OF.get(ev.type)
            if stage is None:
                stage = to or "awareness"
                entered.add(stage)
            elif to and stage not in ("action", "lost"):
                if to == "lost":
                    stage = to
                    entered.add(to)
                elif ORDER.index(to) > ORDER.index(stage):
                    advanced.add(stage)
                    stage = to
                    entered.add(to)
            role = ev.attrs.get("role", role)
            counts[ev.type] = counts.get(ev.type, 0) + 1
            eng += POINTS.get(ev.type, 0)
            if eng >= 50 and handoffs == 0:
                handoffs = 1
        first = events[0]
        week = datetime.datetime.fromtimestamp(first.occurred_at_ms / 1000,
                                               datetime.timezone.utc).isocalendar()
        groups = {"persona": _persona(role, counts),
                  "source": "marketing" if first.source == MARKETING else "sales",
                  "cohort": "%04d-W%02d" % (week[0], week[1])}
        for dim, g in groups.items():
            r = out[dim].setdefault(g, {"leads": 0, "now": {}, "entered": {},
                                        "advanced": {}, "handoffs": 0})
            r["leads"] += 1
            r["now"][stage] = r["now"].get(stage, 0) + 1
            for s in entered:
                r["entered"][s] = r["entered"].get(s, 0) + 1
            for s in advanced:
                r["advanced"][s] = r["advanced"].get(s, 0) + 1
            r["handoffs"] += handoffs
    return out


def test_reports_by_group(daemon, ingest):
    rng = random.Random(3)
    base = now_ms() - 120 * DAY
    leads = {}
    types = list(STAGE_OF) + ["email_open"]
    weights = [30, 12, 6, 6, 2, 2, 10]
    for i in range(120):
        lead = "R-%03d" % i
        t = base + rng.randrange(0, 100) * DAY        # several cohorts
        src = MARKETING if rng.random() < 0.7 else SALES
        evs = []
        for k in range(rng.randrange(1, 9)):
            attrs = {}
            if rng.random() < 0.15:
                attrs["role"] = rng.choice(["cto", "analyst", "ceo", "intern"])
            evs.append(make_event(lead, rng.choices(types, weights)[0],
                                  src if k == 0 else rng.choice([MARKETING, SALES]),
                                  at_ms=t, attrs=attrs))   # one instant: no decay
        leads[lead] = evs
    # Per-lead order is kept: publish lead by lead, in slices.
    flat = [ev for evs in leads.values() for ev in evs]
    for i in range(0, len(flat), 50):
        assert ingest.publish(flat[i:i + 50]).accepted == len(flat[i:i + 50])

    want = _recompute(leads)
    for dim in ("persona", "source", "cohort"):
        j = _ctl_json(daemon, "funnel", "--by", dim)
        assert j["by"] == dim
        got = {g["group"]: g for g in j["groups"]}
        assert sorted(got) == sorted(want[dim]), dim
        for name, w in want[dim].items():
            g = got[name]
            assert g["leads"] == w["leads"], (dim, name)
            assert g["handoffs"]["sent"] == w["handoffs"], (dim, name)
            for s in g["stages"]:
                st = s["stage"]
                assert s["now"] == w["now"].get(st, 0), (dim, name, st)
                assert s["entered"] == w["entered"].get(st, 0), (dim, name, st)
                assert s["advanced"] == w["advanced"].get(st, 0), (dim, name, st)
        assert sum(g["leads"] for g in j["groups"]) == j["leads"] == len(leads)

    p = _ctl_json(daemon, "funnel", "--persona", "evaluator")
    assert p["persona"] == "evaluator"
    assert p["leads"] == want["persona"]["evaluator"]["leads"]
    r = daemon.ctl("funnel", "--by", "cohort", "--persona", "evaluator")
    assert r.returncode == 2
    r = daemon.ctl("funnel", "--by", "region")
    assert r.returncode == 2
    text = daemon.ctl("funnel", "--by", "persona").stdout.decode()
    assert "persona evaluator:" in text and "acceptance rate" in text


# -- definition check / diff ----------------------------------------------

def test_definition_check_and_diff(daemon, tmp_path):
    r = daemon.ctl("definition", "check", DEFAULT_YAML)
    assert r.returncode == 0, r.stderr
    assert b"valid" in r.stdout

    text = open(DEFAULT_YAML).read()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("recycle_to: interest", "recycle_to: limbo"))
    r = daemon.ctl("definition", "check", str(bad))
    assert r.returncode == 1
    line = r.stderr.decode().strip()
    lineno = [i + 1 for i, l in enumerate(bad.read_text().splitlines())
              if "recycle_to: limbo" in l][0]
    assert line.startswith("%s:%d:15: handoff.recycle_to: unknown stage 'limbo'"
                           % (bad, lineno)), line
    r = daemon.ctl("definition", "check", str(bad), json_out=True)
    assert r.returncode == 1 and json.loads(r.stdout)["valid"] is False

    sales = tmp_path / "sales.yaml"
    sales.write_text(text.replace("engagement: 50", "engagement: 60")
                         .replace("{type: demo_request,     points: 25}",
                                  "{type: demo_request,     points: 30}"))
    r = daemon.ctl("definition", "diff", DEFAULT_YAML, DEFAULT_YAML)
    assert r.returncode == 0
    r = daemon.ctl("definition", "diff", DEFAULT_YAML, str(sales))
    assert r.returncode == 1
    out = r.stdout.decode()
    assert "scoring: changed engagement demo_request: 25 points -> 30 points" in out
    assert "qualification: changed rule: engagement >= 50 -> engagement >= 60" in out
    r = daemon.ctl("definition", "diff", DEFAULT_YAML, str(sales), json_out=True)
    assert r.returncode == 1
    d = json.loads(r.stdout)
    assert d["equal"] is False and len(d["differences"]) == 2
    r = daemon.ctl("definition", "diff", DEFAULT_YAML)
    assert r.returncode == 2
