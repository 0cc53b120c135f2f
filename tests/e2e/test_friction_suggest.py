"""funnelctl friction --suggest: a max_dwell per stage from the p90 of its
completed stays, checked against the stays the test itself wrote; the
personas whose p90 differs by more than half are named; the fragment pastes
into a definition that funnelctl definition check accepts."""

import json
import math
import os

import yaml

from conftest import IngestClient, make_event
from test_friction import DAY, DWELL_REL_ERROR, HOUR, T0, _nearest_rank, event_clock

SOURCE_DIR = os.environ["FUNNELD_SOURCE_DIR"]


def _round_up(ms):
    unit = DAY if ms >= 2 * DAY else HOUR if ms >= 2 * HOUR else 60000
    return math.ceil(ms / unit) * unit


def test_friction_suggest_proposes_the_p90_of_completed_stays(daemon_factory, zctx,
                                                              tmp_path):
    d = event_clock(daemon_factory)
    # awareness (page_view) -> interest (form_submit) after a known stay:
    # 20 decision makers (role cto) staying 1..20 days, 20 leads without a
    # persona staying 2..40 hours.
    stays = {}
    for i in range(20):
        stays["dm-%d" % i] = ((i + 1) * DAY, {"role": "cto"})
        stays["an-%d" % i] = ((i + 1) * 2 * HOUR, {})
    evs = []
    for lead, (stay, attrs) in stays.items():
        evs.append(make_event(lead, "page_view", at_ms=T0, attrs=attrs))
        evs.append(make_event(lead, "form_submit", at_ms=T0 + stay))
    ingest = IngestClient(zctx, d.ingest_ep)
    try:
        assert ingest.publish(evs).accepted == len(evs)
    finally:
        ingest.close()

    r = d.ctl("friction", "--suggest", json_out=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = {s["stage"]: s for s in doc["stages"]}
    assert set(rows) == {"awareness"}   # the only stage with completed stays
    row = rows["awareness"]
    exact = _nearest_rank(sorted(s for s, _ in stays.values()), 0.9)
    assert row["completed"] == len(stays)
    assert abs(row["p90_ms"] - exact) <= DWELL_REL_ERROR * exact
    assert row["suggested_ms"] == _round_up(row["p90_ms"])
    assert row["max_dwell_ms"] == 30 * DAY
    # By persona: the decision makers' p90 (18d) is within half of 16d; the
    # leads without a persona (p90 36h) are far below it.
    dm = _nearest_rank(sorted(s for k, (s, _) in stays.items() if k.startswith("dm")), 0.9)
    an = _nearest_rank(sorted(s for k, (s, _) in stays.items() if k.startswith("an")), 0.9)
    assert abs(dm - exact) * 2 <= exact < abs(an - exact) * 2
    named = {p["persona"]: p for p in row["personas"]}
    assert "decision_maker" not in named and len(named) == 1, named
    (other,) = named.values()
    assert abs(other["p90_ms"] - an) <= DWELL_REL_ERROR * an
    assert other["suggested_ms"] == _round_up(other["p90_ms"])

    # The text is a YAML fragment; pasted into the default definition, it
    # is a valid definition with the suggested max_dwell.
    r = d.ctl("friction", "--suggest")
    assert r.returncode == 0
    text = r.stdout.decode()
    frag = yaml.safe_load(text)
    assert frag == {"stages": [{"name": "awareness", "max_dwell": row["suggested"]}]}
    assert "# persona %s" % other["persona"] in text
    default = open(os.path.join(SOURCE_DIR, "handlers", "default.yaml")).read()
    old = "- {name: awareness, max_dwell: 30d}"
    assert old in default
    path = tmp_path / "suggested.yaml"
    path.write_text(default.replace(old, "- {name: awareness, max_dwell: %s}"
                                    % frag["stages"][0]["max_dwell"]))
    r = d.ctl("definition", "check", str(path), json_out=True)
    assert r.returncode == 0 and json.loads(r.stdout)["valid"], r.stdout

    r = d.ctl("friction", "--suggest", "--leads")
    assert r.returncode == 2 and "--suggest" in r.stderr.decode()


def test_friction_suggest_without_completed_stays(daemon):
    r = daemon.ctl("friction", "--suggest")
    assert r.returncode == 0
    assert "nothing to suggest" in r.stdout.decode()
    assert yaml.safe_load(r.stdout) is None   # comments only
