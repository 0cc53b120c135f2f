"""funnelctl backtest: a draft replayed on funneld's history beside the live
definition. On the Olist data, the draft's side is checked against an
independent computation from the CSV files (which leads, which weeks,
precision, recall, lift), the live side against the live counters; a draft
identical to the live definition differs in nothing; a sweep's row at the
draft's own value is the draft."""

import collections
import datetime
import json
import os

import pytest

from test_quality import (OLIST, _check_olist, _default_text, _draft, _olist,
                          _olist_expected, _publish, _quality, _same_report)

pytestmark = pytest.mark.skipif(not os.path.isdir(OLIST),
                                reason="no Olist data at %s" % OLIST)


def _backtest(d, *args):
    r = d.ctl("backtest", *args, json_out=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _week(ms):
    iso = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isocalendar()
    return "%04d-W%02d" % (iso[0], iso[1])


@pytest.fixture(scope="module")
def olist_daemon(tmp_path_factory, request):
    """One funneld on the default definition (with quality.lost_after) that
    has every Olist lead, for the tests of this module."""
    from conftest import Daemon, zmq
    tmp = tmp_path_factory.mktemp("backtest")
    live = tmp / "live.yaml"
    live.write_text(_default_text() + "\nquality:\n  lost_after: 90d\n")
    d = Daemon(tmp, extra_args=["--clock", "event", "--definition", str(live)])
    ctx = zmq.Context()
    d.start(ctx)
    origin, won, events = _olist()
    _publish(d, tmp, events)
    yield d, live, tmp, (origin, won, events)
    d.stop()
    ctx.destroy(linger=0)


def test_backtest_of_a_draft_on_olist_matches_csv(olist_daemon):
    d, live, tmp, (origin, won, events) = olist_daemon
    draft = _draft(tmp, lost_after="90d")
    b = _backtest(d, str(draft), "--sample", "3")
    e = _olist_expected(origin, won, events)

    # The draft's side: the CSVs' numbers.
    assert b["draft"]["definition"] == "aida"
    assert b["events"] == len(events)
    _check_olist(b["draft"]["quality"],
                 _quality(d, "--draft", str(draft), "--by", "clause"), e, won)
    # Each lead is handed off once, at its first contact: the weeks are
    # those of the first contacts of the leads the draft hands off.
    weeks = collections.Counter(_week(origin[m][1]) for m in e["handed"])
    assert {w["week"]: w["draft"] for w in b["weeks"] if w["draft"]} == weeks
    assert b["draft"]["handoffs"] == len(e["handed"])

    # The live side: what the live counters say.
    _same_report(b["live"]["quality"], _quality(d))
    assert sum(w["live"] for w in b["weeks"]) == b["live"]["handoffs"]
    assert b["live"]["leads"] == b["draft"]["leads"] == len(origin)
    funnel = json.loads(d.ctl("funnel", json_out=True).stdout)
    assert [s["now"] for s in b["live"]["stages"]] == \
           [s["now"] for s in funnel["stages"]]

    # Both / only one: consistent with each side's handed-off leads.
    live_handed = b["live"]["quality"]["handed_off"]
    assert b["both"]["count"] + b["only_live"]["count"] == live_handed
    assert b["both"]["count"] + b["only_draft"]["count"] == len(e["handed"])
    assert set(b["only_draft"]["sample"]) <= e["handed"]
    assert set(b["both"]["sample"]) <= e["handed"]
    assert not set(b["only_live"]["sample"]) & e["handed"]
    for k in ("both", "only_live", "only_draft"):
        assert len(b[k]["sample"]) == min(3, b[k]["count"])

    # Text for people.
    r = d.ctl("backtest", str(draft), timeout=300)
    assert r.returncode == 0
    text = r.stdout.decode()
    assert "Backtest of draft" in text and "only_draft" in text
    assert "%d" % len(e["handed"]) in text


def test_backtest_of_the_live_definition_differs_in_nothing(olist_daemon):
    d, live, tmp, _ = olist_daemon
    b = _backtest(d, str(live))
    assert b["only_live"]["count"] == b["only_draft"]["count"] == 0
    assert b["both"]["count"] == b["live"]["quality"]["handed_off"]
    assert all(w["live"] == w["draft"] for w in b["weeks"])
    assert b["live"] == b["draft"]


def test_backtest_sweep_and_window(olist_daemon):
    d, live, tmp, (origin, won, events) = olist_daemon
    draft = _draft(tmp, lost_after="90d")
    b = _backtest(d, str(draft), "--sweep", "qualification.total=15:35:10")
    rows = b["sweep"]["rows"]
    assert b["sweep"]["key"] == "qualification.total"
    assert [r["value"] for r in rows] == [15, 25, 35]
    # The draft itself has total >= 25: its row is the draft.
    q = b["draft"]["quality"]
    assert rows[1]["handed_off"] == q["handed_off"]
    assert rows[1]["precision"] == pytest.approx(q["precision"])
    assert rows[1]["recall"] == pytest.approx(q["recall"])
    assert rows[1]["handoffs"] == b["draft"]["handoffs"]
    # A higher bar hands off no more leads.
    assert rows[0]["handed_off"] >= rows[1]["handed_off"] >= rows[2]["handed_off"]
    span_weeks = (max(e[0] for e in events) - min(e[0] for e in events)) / (7 * 86400000)
    assert rows[1]["handoffs_per_week"] == pytest.approx(rows[1]["handoffs"] / span_weeks)

    # A window of event time: only the events inside it.
    cut = sorted(e[0] for e in events)[len(events) // 2]
    iso = datetime.datetime.fromtimestamp(cut / 1000, datetime.timezone.utc)
    until = iso.strftime("%Y-%m-%dT%H:%M:%SZ")
    w = _backtest(d, str(draft), "--until", until)
    assert w["events"] == sum(1 for e in events if e[0] < cut)
    assert w["until_ms"] == cut and w["since_ms"] is None
    w = _backtest(d, str(draft), "--since", str(cut))
    assert w["events"] == sum(1 for e in events if e[0] >= cut)


def test_backtest_refuses_bad_input(olist_daemon):
    d, live, tmp, _ = olist_daemon
    draft = _draft(tmp, lost_after="90d")
    cases = [
        (("backtest",), "name the draft"),
        (("backtest", str(draft), "--sweep", "qualification.total=35:15:10"), "--sweep"),
        (("backtest", str(draft), "--sweep", "qualification.total"), "--sweep"),
        (("backtest", str(draft), "--since", "yesterday"), "--since"),
        (("backtest", str(draft), "--since", "2018-01-02", "--until", "2018-01-01"),
         "--since"),
        (("backtest", str(tmp / "missing.yaml")), "missing.yaml"),
    ]
    for argv, what in cases:
        r = d.ctl(*argv)
        assert r.returncode == 2, argv
        assert what in r.stderr.decode(), (argv, r.stderr)
    # funneld's own refusals: a key that cannot be swept, too many values.
    r = d.ctl("backtest", str(draft), "--sweep", "stages.awareness=1:2:1")
    assert r.returncode == 2 and "not a threshold that can be swept" in r.stderr.decode()
    r = d.ctl("backtest", str(draft), "--sweep", "qualification.total=0:100:1")
    assert r.returncode == 2 and "at most 50" in r.stderr.decode()
    # ... and it answers the next one.
    assert _backtest(d, str(live))["only_live"]["count"] == 0
