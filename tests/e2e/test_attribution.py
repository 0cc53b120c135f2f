"""One attribution rule per report: `friction --by persona` counts every
column of a lead (entries, advances, stays in progress, completed stays and
their median and p90, drops, stalls, regressions, rejections and reasons)
under the persona the lead has now, and `friction --by cohort` under the ISO
week of its first event. Whole tables are recomputed here, independently,
from the events published: random histories whose leads change persona
along the way, replayed in Python under the definition's rules."""

import collections
import datetime
import json
import math
import random

from conftest import (MARKETING, SALES, IngestClient, QueryClient, make_event, pb)

HOUR = 3600 * 1000
DAY = 24 * HOUR
T0 = 1767225600000          # 2026-01-01T00:00:00Z
DWELL_REL_ERROR = 0.022     # the histogram's bound on a median or p90

DEFINITION = """
name: attribution
stages:
  - {name: a, max_dwell: 2d}
  - {name: b, max_dwell: 3d}
  - {name: c, terminal: true}
exits:
  - {name: lost}
transitions:
  - {types: [to_a], to: a}
  - {types: [to_b], to: b}
  - {types: [to_c], to: c}
  - {types: [drop], to: lost}
regressions:
  - {types: [back], from: [b], to: a}
scoring:
  engagement:
    - {type: hot, points: 30}
qualification:
  engagement: 50
handoff:
  sla: 999d
  recycle_to: a
personas:
  - name: px
    when:
      - {attr: kind, equals: x}
  - name: py
    when:
      - {attr: kind, equals: y}
"""
ORDER = ["a", "b", "c"]
STAGES = ORDER + ["lost"]
MAX_DWELL = {"a": 2 * DAY, "b": 3 * DAY}
TERMINAL = {"c", "lost"}
TO = {"to_a": "a", "to_b": "b", "to_c": "c", "drop": "lost"}
REASONS = ["no budget", "too small", "not ready"]


def _histories(rng, n_leads):
    """[(at, order, lead, type, source, attrs)] over about five weeks."""
    out = []
    k = 0
    for i in range(n_leads):
        lead = "A-%03d" % i
        t = T0 + rng.randrange(0, 35 * DAY)
        first = rng.choice(["note", "to_a", "to_b", "hot"])
        attrs = {"kind": rng.choice("xyz")} if rng.random() < 0.7 else {}
        out.append((t, k, lead, first, MARKETING, attrs))
        k += 1
        for _ in range(rng.randrange(3, 11)):
            t += rng.randrange(HOUR // 2, 4 * DAY)
            typ = rng.choices(["to_a", "to_b", "to_c", "drop", "back", "hot",
                               "handoff_rejected", "note"],
                              [1, 4, 2, 1, 2, 4, 2, 3])[0]
            attrs = {}
            src = MARKETING
            if typ == "note":
                attrs = {"kind": rng.choice("xyz")}
            elif typ == "handoff_rejected":
                attrs = {"reason": rng.choice(REASONS)}
                src = SALES
            out.append((t, k, lead, typ, src, attrs))
            k += 1
    out.sort()
    return out


class _Lead:
    def __init__(self, first_seen):
        self.first_seen = first_seen
        self.stage = None
        self.entered_at = 0
        self.entered = set()
        self.advanced = set()
        self.kind = None
        self.engagement = 0
        self.qualified = False
        self.pending = False
        # what the lead counted: (column, stage) -> n; stays per stage;
        # rejection reasons
        self.counts = collections.Counter()
        self.stays = collections.defaultdict(list)
        self.reasons = collections.Counter()

    def persona(self):
        return {"x": "px", "y": "py"}.get(self.kind, "-")

    def move(self, to, t):
        frm = self.stage
        if frm is not None:
            if frm not in TERMINAL:
                dwell = t - self.entered_at
                self.stays[frm].append(dwell)
                if to == "lost":
                    self.counts["dropped", frm] += 1
                if dwell >= MAX_DWELL.get(frm, math.inf):
                    self.counts["stalls", frm] += 1     # noticed as it left
            if to in ORDER and ORDER.index(to) > ORDER.index(frm) if frm in ORDER else False:
                self.advanced.add(frm)
            backward = frm in TERMINAL or (to in ORDER and ORDER.index(to) < ORDER.index(frm))
            if backward:
                self.counts["regressions", frm] += 1
        self.entered.add(to)
        self.stage = to
        self.entered_at = t


def _simulate(events, end):
    leads = {}
    for at, _, lead_id, typ, _src, attrs in events:
        l = leads.get(lead_id)
        if l is None:
            l = leads[lead_id] = _Lead(at)
            l.move(TO.get(typ, "a"), at)
        else:
            cur = l.stage
            if typ == "back" and cur == "b":
                l.move("a", at)
            elif typ in TO and cur not in TERMINAL and TO[typ] != cur and (
                    TO[typ] == "lost" or ORDER.index(TO[typ]) > ORDER.index(cur)):
                l.move(TO[typ], at)
        if typ != "handoff_rejected" and "kind" in attrs:
            l.kind = attrs["kind"]
        if typ == "hot":
            l.engagement += 30
        if typ == "handoff_rejected" and l.pending:
            l.pending = l.qualified = False
            l.counts["rejections", l.stage] += 1
            l.reasons[attrs["reason"]] += 1
            l.engagement = 0
            if l.stage not in TERMINAL and l.stage != "a":
                l.move("a", at)
        if not l.qualified and typ != "handoff_rejected" and l.engagement >= 50:
            l.qualified = l.pending = True
    # the stays in progress past their max_dwell: stalled by their deadline
    for l in leads.values():
        if l.stage in MAX_DWELL and end - l.entered_at >= MAX_DWELL[l.stage]:
            l.counts["stalls", l.stage] += 1
            l.counts["stalled_now", l.stage] += 1
    return leads


def _nearest_rank(values, q):
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


def _tables(leads, group_of):
    """{group: ({stage: row}, {reason: n})} as the report should say."""
    rows = collections.defaultdict(lambda: {s: collections.Counter() for s in STAGES})
    stays = collections.defaultdict(lambda: collections.defaultdict(list))
    reasons = collections.defaultdict(collections.Counter)
    for l in leads.values():
        g = group_of(l)
        for s in l.entered:
            rows[g][s]["entered"] += 1
        for s in l.advanced:
            rows[g][s]["advanced"] += 1
        rows[g][l.stage]["in_progress"] += 1
        for (col, s), n in l.counts.items():
            rows[g][s][col] += n
        for s, v in l.stays.items():
            stays[g][s] += v
        reasons[g].update(l.reasons)
    return rows, stays, reasons


COLUMNS = ["entered", "advanced", "in_progress", "dropped", "stalls", "stalled_now",
           "regressions", "rejections"]


def _check_table(what, got_stages, got_reasons, want_rows, want_stays, want_reasons):
    for s in got_stages:
        want = want_rows[s.stage]
        got = {c: getattr(s, c) for c in COLUMNS}
        assert got == {c: want[c] for c in COLUMNS}, (what, s.stage, got, dict(want))
        v = want_stays.get(s.stage, [])
        assert s.completed == len(v), (what, s.stage, s.completed, len(v))
        if not v:
            assert s.median_ms == -1 and s.p90_ms == -1, (what, s.stage)
            continue
        for q, got_q in ((0.5, s.median_ms), (0.9, s.p90_ms)):
            exact = _nearest_rank(v, q)
            assert abs(got_q - exact) <= DWELL_REL_ERROR * exact, \
                (what, s.stage, q, got_q, exact)
    assert {r.reason: r.count for r in got_reasons} == dict(want_reasons), what


def _friction(query, by):
    req = pb.QueryRequest()
    req.friction.by = by
    rep = query.request(req)
    assert rep.error == "", rep.error
    return rep.friction


def _iso_week(ms):
    y, w, _ = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isocalendar()
    return "%04d-W%02d" % (y, w)


def test_friction_tables_by_persona_and_cohort_match_the_log(daemon_factory, zctx, tmp_path):
    path = tmp_path / "attribution.yaml"
    path.write_text(DEFINITION)
    d = daemon_factory(extra_args=["--clock", "event", "--definition", str(path)])
    ingest, query = IngestClient(zctx, d.ingest_ep), QueryClient(zctx, d.query_ep)
    rng = random.Random(0xA771)
    events = _histories(rng, 80)
    end = events[-1][0] + DAY
    # Two leads at the end, straight into the terminal c, in batches of
    # their own: the first moves the clock (deadlines due fire after its
    # commit), the second is answered after them.
    tail = [(end, len(events), "Z-tick", "to_c", SALES, {}),
            (end, len(events) + 1, "Z-sentinel", "to_c", SALES, {})]
    batch = []
    for i, (at, _, lead, typ, src, attrs) in enumerate(events):
        batch.append(make_event(lead, typ, src, event_id="at-%d" % i, at_ms=at, attrs=attrs))
        if len(batch) == 40:
            assert ingest.publish(batch).accepted == len(batch)
            batch = []
    if batch:
        assert ingest.publish(batch).accepted == len(batch)
    for at, k, lead, typ, src, attrs in tail:
        assert ingest.publish([make_event(lead, typ, src, event_id="at-%d" % k,
                                          at_ms=at)]).accepted == 1

    leads = _simulate(events + tail, end)
    personas = {l.persona() for l in leads.values()}
    # the histories are worth testing: leads changed persona after
    # counting, and every column has something in it
    changed = sum(1 for at, _, lead, typ, _, attrs in events if typ == "note")
    assert changed > 50 and len(personas) == 3
    total = collections.Counter()
    for l in leads.values():
        for (col, _), n in l.counts.items():
            total[col] += n
    assert all(total[c] > 0 for c in ("dropped", "stalls", "stalled_now",
                                      "regressions", "rejections")), total

    # funnel-wide
    rows, stays, reasons = _tables(leads, lambda l: "")
    rep = _friction(query, "")
    _check_table("all", rep.stages, rep.rejection_reasons, rows[""], stays[""], reasons[""])

    for by, group_of in (("persona", lambda l: l.persona()),
                         ("cohort", lambda l: _iso_week(l.first_seen))):
        rows, stays, reasons = _tables(leads, group_of)
        rep = _friction(query, by)
        assert rep.by == by
        names = [g.name for g in rep.groups]
        assert set(rows) <= set(names), (by, sorted(rows), names)
        for g in rep.groups:
            # a group every lead has left shows zeros
            _check_table("%s %s" % (by, g.name), g.stages, g.rejection_reasons,
                         rows[g.name], stays[g.name], reasons[g.name])
        if by == "cohort":
            assert len(names) >= 5, names
    ingest.close()
    query.close()


def test_friction_by_cohort_through_funnelctl(daemon_factory, zctx):
    d = daemon_factory(extra_args=["--clock", "event"])
    ingest = IngestClient(zctx, d.ingest_ep)
    # two cohorts, each with stays in interest of known lengths
    for w, hours in ((0, [10, 20, 30]), (7, [40, 50])):
        for i, h in enumerate(hours):
            lead = "C%d-%d" % (w, i)
            t = T0 + w * DAY
            ingest.publish([make_event(lead, "form_submit", at_ms=t),
                            make_event(lead, "demo_request", SALES, at_ms=t + h * HOUR)])
    r = d.ctl("friction", "--by", "cohort")
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "2026-W01" in out and "2026-W02" in out, out
    j = json.loads(d.ctl("friction", "--by", "cohort", json_out=True).stdout)
    groups = {g["group"]: g for g in j["groups"]}
    interest = {name: next(s for s in g["stages"] if s["stage"] == "interest")
                for name, g in groups.items()}
    w1, w2 = interest["2026-W01"]["dwell"], interest["2026-W02"]["dwell"]
    assert (w1["completed"], w2["completed"]) == (3, 2)
    assert abs(w1["median_ms"] - 20 * HOUR) <= DWELL_REL_ERROR * 20 * HOUR
    assert abs(w1["p90_ms"] - 30 * HOUR) <= DWELL_REL_ERROR * 30 * HOUR
    assert abs(w2["median_ms"] - 40 * HOUR) <= DWELL_REL_ERROR * 40 * HOUR
    assert abs(w2["p90_ms"] - 50 * HOUR) <= DWELL_REL_ERROR * 50 * HOUR
    ingest.close()
