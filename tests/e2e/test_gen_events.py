"""tools/gen-events writes sales' answers to the handoffs it makes: a
funneld fed its output shows an acceptance rate and the top rejection
reasons, as the walk-through does with its bulk data. The counts funneld
reports are compared with the answers in the file itself."""

import collections
import json
import os
import subprocess

SOURCE_DIR = os.environ.get("FUNNELD_SOURCE_DIR", ".")
GEN_EVENTS = os.path.join(SOURCE_DIR, "tools", "gen-events")


def _ctl_json(d, *args):
    r = d.ctl(*args, json_out=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_generated_answers_give_an_acceptance_rate(daemon, tmp_path):
    path = tmp_path / "gen.ndjson"
    with open(path, "wb") as f:
        subprocess.run([GEN_EVENTS, "--events", "6000", "--leads", "150", "--seed", "3"],
                       stdout=f, check=True)
    answers = collections.Counter()
    reasons = collections.Counter()
    with open(path) as f:
        for line in f:
            ev = json.loads(line)
            if ev["type"].startswith("handoff_"):
                answers[ev["type"]] += 1
                if ev["type"] == "handoff_rejected":
                    reasons[ev["attrs"]["reason"]] += 1
    # the generator answered some handoffs each way, rejections with reasons
    assert answers["handoff_accepted"] > 0 and answers["handoff_rejected"] > 0, answers
    assert sum(reasons.values()) == answers["handoff_rejected"]

    assert _ctl_json(daemon, "publish", str(path))["accepted"] == 6000

    # The generator follows each lead's engagement by the default
    # definition's points, not funneld's every rule (clamping at 0, terminal
    # stages), so a few of its answers find no pending handoff and change
    # nothing; most do.
    h = _ctl_json(daemon, "funnel")["handoffs"]
    for kind in ("accepted", "rejected"):
        wrote = answers["handoff_" + kind]
        assert 0.8 * wrote <= h[kind] <= wrote, (kind, h, answers)
    assert h["sent"] >= h["accepted"] + h["rejected"]
    assert abs(h["acceptance_rate"] - h["accepted"] / (h["accepted"] + h["rejected"])) < 1e-9
    assert 0.4 < h["acceptance_rate"] < 0.85, h        # 55 : 30 written

    # recycled: given back to marketing, counted apart, not a rejection
    recycled = _ctl_json(daemon, "stats")["handoffs_recycled"]
    assert 0.8 * answers["handoff_recycled"] <= recycled <= answers["handoff_recycled"]

    # the top rejection reasons: the generator's, counted once per rejection
    shown = {r["reason"]: r["count"] for r in _ctl_json(daemon, "friction")["rejection_reasons"]}
    assert sum(shown.values()) == h["rejected"], shown
    assert all(0 < n <= reasons[r] for r, n in shown.items()), (shown, reasons)
    assert len(shown) >= 3, shown
