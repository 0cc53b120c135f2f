"""Lead quality against outcomes (funnelctl quality): the report's counts and
rates, recomputed independently — on a handful of leads written here, and on
the real Olist data from its CSV files."""

import collections
import csv
import datetime
import json
import os

import pytest

from conftest import QueryClient, pb

DATA_DIR = os.environ.get("FUNNELD_DATA_DIR",
                          os.path.join(os.path.dirname(__file__), "..", "..",
                                       "..", "shared", "data"))
OLIST = os.path.join(DATA_DIR, "olist-funnel")
SOURCE_DIR = os.environ["FUNNELD_SOURCE_DIR"]
DAY = 86400000


def _ms(text):
    fmt = "%Y-%m-%d" if len(text) == 10 else "%Y-%m-%d %H:%M:%S"
    dt = datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)


def _default_text():
    return open(os.path.join(SOURCE_DIR, "handlers", "default.yaml")).read()


def _draft(tmp_path, name="draft.yaml", lost_after="90d"):
    """The default definition with origin fit rules, two qualification
    clauses and quality.lost_after."""
    text = _default_text()
    text = text.replace(
        "    - {attr: company_size, min: 50, max: 5000, points: 10}\n",
        "    - {attr: company_size, min: 50, max: 5000, points: 10}\n"
        "    - {attr: origin, one_of: [organic_search, paid_search], points: 20}\n"
        "    - {attr: origin, equals: direct_traffic, points: 15}\n")
    text = text.replace("qualification:\n  engagement: 50\n",
                        "qualification:\n  any_of:\n"
                        "    - {fit: 20, engagement: 10}\n"
                        "    - {total: 25}\n")
    assert "any_of" in text and "origin" in text
    if lost_after:
        text += "\nquality:\n  lost_after: %s\n" % lost_after
    path = tmp_path / name
    path.write_text(text)
    return path


def _publish(d, tmp_path, events):
    path = tmp_path / "events.ndjson"
    with open(path, "w") as f:
        for i, (at, _, lead, type_, source, attrs) in enumerate(events):
            f.write(json.dumps({"id": "q-%d" % i, "lead": lead, "source": source,
                                "type": type_, "at": at, "attrs": attrs}) + "\n")
    r = d.ctl("publish", str(path), json_out=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accepted"] == len(events)


def _quality(d, *args):
    r = d.ctl("quality", *args, json_out=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_quality_counts_outcomes_after_the_first_handoff(daemon_factory, tmp_path):
    path = _draft(tmp_path, lost_after=None)
    d = daemon_factory(extra_args=["--clock", "event", "--definition", str(path)])
    t0 = _ms("2026-01-05")
    ev = []
    # a: handed off (paid_search), then won 3 days later.
    ev.append((t0, 0, "a", "form_submit", "marketing", {"origin": "paid_search"}))
    ev.append((t0 + 3 * DAY, 1, "a", "closed_won", "sales", {}))
    # b: handed off (direct_traffic, second clause), rejected, then lost.
    ev.append((t0 + DAY, 0, "b", "form_submit", "marketing", {"origin": "direct_traffic"}))
    ev.append((t0 + 2 * DAY, 1, "b", "handoff_rejected", "sales", {"reason": "budget"}))
    ev.append((t0 + 4 * DAY, 1, "b", "closed_lost", "sales", {}))
    # c: won before any handoff, handed off afterwards.
    ev.append((t0, 0, "c", "closed_won", "sales", {}))
    ev.append((t0 + DAY, 1, "c", "form_submit", "marketing", {"origin": "organic_search"}))
    # e: never handed off, won.  f: handed off, still open.  g: lost, not handed.
    ev.append((t0 + DAY, 0, "e", "form_submit", "marketing", {"origin": "email"}))
    ev.append((t0 + 5 * DAY, 1, "e", "closed_won", "sales", {}))
    ev.append((t0 + 2 * DAY, 0, "f", "form_submit", "marketing", {"origin": "paid_search"}))
    ev.append((t0 + 2 * DAY, 0, "g", "form_submit", "marketing", {"origin": "email"}))
    ev.append((t0 + 6 * DAY, 1, "g", "closed_lost", "sales", {}))
    ev.sort()
    _publish(d, tmp_path, ev)

    q = _quality(d)
    assert (q["handed_off"], q["won"], q["lost"], q["open"],
            q["outcome_before_handoff"]) == (4, 1, 1, 1, 1), q
    assert q["all_leads"] == {"won": 3, "lost": 2, "open": 1}
    assert q["precision"] == pytest.approx(0.5)
    assert q["recall"] == pytest.approx(1 / 3)
    assert q["base_rate"] == pytest.approx(3 / 5)
    assert q["lift"] == pytest.approx(0.5 / 0.6)
    assert q["rejection_rate"] == pytest.approx(1 / 4)
    # 3 days within the histogram's 2.2%.
    assert abs(q["median_handoff_to_won_ms"] - 3 * DAY) <= 0.022 * 3 * DAY
    assert q["lost_after_ms"] == 0

    by = _quality(d, "--by", "clause")
    groups = {g["group"]: g for g in by["groups"]}
    assert set(groups) == {"fit >= 20 and engagement >= 10", "total >= 25"}, groups
    assert groups["total >= 25"]["lost"] == 1
    assert groups["total >= 25"]["precision"] == 0
    assert groups["fit >= 20 and engagement >= 10"]["won"] == 1
    assert groups["fit >= 20 and engagement >= 10"]["base_rate"] == q["base_rate"]

    src = _quality(d, "--by", "source")
    assert [g["group"] for g in src["groups"]] == ["marketing", "sales"]
    assert src["groups"][1]["outcome_before_handoff"] == 1   # c began with sales

    r = d.ctl("quality", "--by", "cohort")
    assert r.returncode == 2 and "--by" in r.stderr.decode()


def _olist():
    """The Olist leads from the CSV files: origin and first contact per
    mql_id, won date per mql_id, and the events funneld is given."""
    origin, won = {}, {}
    with open(os.path.join(OLIST, "olist_marketing_qualified_leads_dataset.csv"),
              newline="") as f:
        for r in csv.DictReader(f):
            origin[r["mql_id"]] = (r["origin"] or "unknown", _ms(r["first_contact_date"]))
    with open(os.path.join(OLIST, "olist_closed_deals_dataset.csv"), newline="") as f:
        for r in csv.DictReader(f):
            won[r["mql_id"]] = _ms(r["won_date"])
    events = [(at, 0, lead, "form_submit", "marketing", {"origin": o})
              for lead, (o, at) in origin.items()]
    events += [(at, 1, lead, "closed_won", "sales", {}) for lead, at in won.items()]
    events.sort()
    return origin, won, events


def _olist_expected(origin, won, events):
    """The independent computation of _draft()'s quality, from the CSVs: a
    lead is handed off at its first contact when its origin scores (the
    draft's fit rules); won after the handoff when its won event comes
    after its form_submit in event order; open leads are lost once 90 whole
    days passed (daemon time = the latest event time)."""
    today = max(at for at, *_ in events) // DAY
    first = collections.defaultdict(lambda: float("inf"))
    for at, _, lead, *_ in events:
        first[lead] = min(first[lead], at)
    handed = {m for m, (o, _) in origin.items()
              if o in ("organic_search", "paid_search", "direct_traffic")}
    won_after = {m for m in handed if m in won and won[m] >= origin[m][1]}
    before = {m for m in handed if m in won and won[m] < origin[m][1]}
    open_ = {m for m in handed if m not in won}
    timed_out = {m for m in open_ if today - origin[m][1] // DAY >= 90}
    all_lost = {m for m in first if m not in won and today - first[m] // DAY >= 90}
    precision = len(won_after) / (len(won_after) + len(timed_out))
    return {
        "handed": handed, "won_after": won_after, "before": before, "open": open_,
        "timed_out": timed_out, "precision": precision,
        "recall": len(won_after) / len(won),
        "base_rate": len(won) / (len(won) + len(all_lost)),
        "direct": {m for m in handed if origin[m][0] == "direct_traffic"},
    }


def _check_olist(q, by_clause, e, won):
    assert q["handed_off"] == len(e["handed"])
    assert q["won"] == len(e["won_after"])
    assert q["outcome_before_handoff"] == len(e["before"])
    assert q["lost"] == len(e["timed_out"]) == q["lost_after_timeout"]
    assert q["open"] == len(e["open"]) - len(e["timed_out"])
    assert q["all_leads"]["won"] == len(won)
    assert q["precision"] == pytest.approx(e["precision"])
    assert q["recall"] == pytest.approx(e["recall"])
    assert q["base_rate"] == pytest.approx(e["base_rate"])
    assert q["lift"] == pytest.approx(e["precision"] / e["base_rate"])
    assert q["lift"] > 1.0   # the draft's origins do buy more often
    groups = {g["group"]: g for g in by_clause["groups"]}
    assert groups["total >= 25"]["handed_off"] == len(e["direct"])
    assert groups["total >= 25"]["won"] == len(e["direct"] & e["won_after"])


@pytest.mark.skipif(not os.path.isdir(OLIST), reason="no Olist data at %s" % OLIST)
def test_quality_of_a_draft_on_olist_matches_csv(daemon_factory, tmp_path):
    origin, won, events = _olist()
    path = _draft(tmp_path, lost_after="90d")
    d = daemon_factory(extra_args=["--clock", "event", "--definition", str(path)])
    _publish(d, tmp_path, events)
    e = _olist_expected(origin, won, events)
    _check_olist(_quality(d), _quality(d, "--by", "clause"), e, won)


# What a draft's report adds to the live one's.
_LAB_KEYS = ("definition", "draft", "replayed", "upto_seq")


def _same_report(a, b):
    strip = lambda q: {k: v for k, v in q.items() if k not in _LAB_KEYS}
    assert strip(a) == strip(b)


@pytest.mark.skipif(not os.path.isdir(OLIST), reason="no Olist data at %s" % OLIST)
def test_quality_draft_scores_history_without_changing_the_live_one(daemon_factory,
                                                                    tmp_path):
    """funnelctl quality --draft: the live daemon runs the default definition;
    the draft, replayed from the log into a scratch state, gives the numbers
    the CSVs give; the live definition replayed as a draft gives the live
    report exactly; the live state is left as it was."""
    origin, won, events = _olist()
    live = tmp_path / "live.yaml"
    live.write_text(_default_text() + "\nquality:\n  lost_after: 90d\n")
    d = daemon_factory(extra_args=["--clock", "event", "--definition", str(live)])
    _publish(d, tmp_path, events)
    before = _quality(d)
    before_clause = _quality(d, "--by", "clause")
    assert before["definition"] == "aida" and before["draft"] is False

    draft = _draft(tmp_path, lost_after="90d")
    q = _quality(d, "--draft", str(draft))
    # The whole log as it was when asked (events, and the live definition's
    # deadlines that fell due, which the draft passes over: it has its own).
    r = d.ctl("stats", json_out=True)
    last_seq = json.loads(r.stdout)["last_seq"]
    assert q["draft"] is True and q["replayed"] == q["upto_seq"]
    assert len(events) <= q["upto_seq"] <= last_seq
    e = _olist_expected(origin, won, events)
    _check_olist(q, _quality(d, "--draft", str(draft), "--by", "clause"), e, won)
    assert q["handed_off"] != before["handed_off"]

    # A draft identical to the live definition: no difference at all.
    for by in ((), ("--by", "clause"), ("--by", "source"), ("--by", "persona")):
        _same_report(_quality(d, "--draft", str(live), *by), _quality(d, *by))

    # The live definition and its counters are untouched.
    _same_report(_quality(d), before)
    _same_report(_quality(d, "--by", "clause"), before_clause)
    r = d.ctl("quality", "--draft", str(draft))
    assert r.returncode == 0
    text = r.stdout.decode()
    assert "Draft \"aida\"" in text and "the live definition is unchanged" in text


def test_quality_draft_refuses_bad_drafts(daemon_factory, zctx, tmp_path):
    d = daemon_factory()
    bad = tmp_path / "bad.yaml"
    bad.write_text(_default_text().replace("name: aida", "name: aida\nbogus_key: 1"))
    r = d.ctl("quality", "--draft", str(bad))
    assert r.returncode == 2
    assert str(bad) in r.stderr.decode() and "bogus_key" in r.stderr.decode()
    r = d.ctl("quality", "--draft", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "missing.yaml" in r.stderr.decode()
    # The daemon checks the text too (a client that skips funnelctl's check),
    # and keeps answering.
    q = QueryClient(zctx, d.query_ep)
    try:
        req = pb.QueryRequest()
        req.quality.draft = "name: x\nstages: 12\n"
        req.quality.draft_name = "sent.yaml"
        rep = q.request(req)
        assert rep.WhichOneof("reply") is None
        assert rep.error.startswith("sent.yaml"), rep.error
        req = pb.QueryRequest()
        req.quality.SetInParent()
        assert q.request(req).WhichOneof("reply") == "quality"
    finally:
        q.close()
