"""funnelctl against a real daemon, checked against a recomputation.

The model below implements the default AIDA definition of SPEC section 4 so
that the daemon's answers can be checked against the generated events."""

import datetime
import json
import re
import subprocess
import time

import pytest

from conftest import (FUNNELCTL_BIN, SALES, QueryClient, make_event, now_ms,
                      uid, wait_until)

ORDER = ["awareness", "interest", "decision", "action"]
STAGE_OF = {
    "ad_click": "awareness", "page_view": "awareness", "email_open": "awareness",
    "social_engagement": "awareness",
    "form_submit": "interest", "content_download": "interest",
    "webinar_attended": "interest", "email_click": "interest",
    "demo_request": "decision", "meeting_booked": "decision",
    "proposal_sent": "decision", "trial_started": "decision",
    "closed_won": "action", "purchase": "action",
    "closed_lost": "lost",
}
POINTS = {"page_view": 1, "email_open": 2, "email_click": 3, "content_download": 5,
          "webinar_attended": 10, "form_submit": 10, "demo_request": 25,
          "meeting_booked": 20, "unsubscribe": -20}
SALES_TYPES = {"demo_request", "meeting_booked", "proposal_sent", "closed_won",
               "closed_lost", "purchase"}
QUALIFY = 50.0
HALF_LIFE_MS = 30 * 86_400_000


def _parse_time(text):
    """ms of an RFC 3339 UTC time as funnelctl --json writes it."""
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


class ModelLead:
    def __init__(self, lead_id, typ):
        self.id = lead_id
        self.stage = STAGE_OF.get(typ, "awareness")
        self.entered = {self.stage}
        self.advanced = set()
        self.skipped = []
        self.engagement = 0.0
        self.qualified = False
        self.events = 0
        self.attrs = {}

    def apply(self, typ, attrs):
        self.events += 1
        self.attrs.update(attrs)
        self.engagement += POINTS.get(typ, 0)
        if self.engagement >= QUALIFY:
            self.qualified = True
        target = STAGE_OF.get(typ)
        if target is None or target == self.stage or self.stage in ("action", "lost"):
            return
        if target == "lost":
            self.stage = "lost"
            self.entered.add("lost")
            return
        cur, new = ORDER.index(self.stage), ORDER.index(target)
        if new <= cur:
            return                      # forward-only
        self.advanced.add(self.stage)
        self.skipped += ORDER[cur + 1:new]
        self.stage = target
        self.entered.add(target)


def model_funnel(leads):
    out = {"leads": len(leads), "stages": {}}
    for st in ORDER + ["lost"]:
        out["stages"][st] = {
            "now": sum(1 for l in leads.values() if l.stage == st),
            "entered": sum(1 for l in leads.values() if st in l.entered),
            "advanced": sum(1 for l in leads.values() if st in l.advanced),
        }
    return out


def rfc3339(ms):
    return datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(rng, n_events=10_000, n_leads=400):
    """NDJSON lines, the model after applying them, the bad line numbers,
    and the number of duplicate lines."""
    base = (now_ms() - 2 * 3_600_000) // 1000 * 1000
    lead_ids = ["G-%04d" % i for i in range(n_leads)]
    # all events of a lead share one event time (a whole second, so that
    # RFC 3339 and epoch ms spell the same instant): no decay, exact sums,
    # and no doubt about qualification at exactly 50
    lead_t0 = {l: base + 1000 * rng.randrange(3_600) for l in lead_ids}
    # skewed activity and type mix, so that leads end up in every stage
    weights = [rng.choice([1, 1, 2, 3, 8]) for _ in lead_ids]
    common = ["page_view"] * 30 + ["email_open"] * 15 + ["ad_click"] * 5 + \
        ["social_engagement"] * 3 + ["email_click"] * 6 + ["content_download"] * 4 + \
        ["webinar_attended"] * 2 + ["form_submit"] * 3 + ["unsubscribe"] * 2 + \
        ["demo_request"] * 2 + ["meeting_booked"] * 1 + ["trial_started"] * 1 + \
        ["proposal_sent"] * 1 + ["video_play"] * 2
    rare = ["closed_won", "purchase", "closed_lost"]
    lines = []
    model = {}
    seen_ids = set()
    for k in range(n_events):
        lead = lead_ids[k] if k < n_leads else rng.choices(lead_ids, weights)[0]
        typ = rng.choice(rare) if rng.random() < 0.004 else rng.choice(common)
        at = lead_t0[lead]
        obj = {"lead": lead, "source": "sales" if typ in SALES_TYPES else "marketing",
               "type": typ}
        if k % 50 != 7:
            obj["id"] = "g-%05d" % k
        else:
            # funnelctl derives the id from the line; `value` keeps it unique
            obj["value"] = float(k)
        obj["at"] = rfc3339(at) if k % 2 == 0 else at
        attrs = {}
        if rng.random() < 0.2:
            attrs["industry"] = rng.choice(["retail", "health", "tech", "finance"])
        if rng.random() < 0.1:
            attrs["company_size"] = str(rng.randrange(1, 5000))
        if attrs:
            obj["attrs"] = attrs
        if typ in ("closed_won", "purchase"):
            obj["value"] = float(rng.randrange(100, 10000))
        lines.append(json.dumps(obj, separators=(",", ":")))
        if "id" in obj:
            assert obj["id"] not in seen_ids
            seen_ids.add(obj["id"])
        if lead not in model:
            model[lead] = ModelLead(lead, typ)
        model[lead].apply(typ, attrs)
    # exact repeats of earlier lines (with ids): duplicates, not applied twice
    dup_lines = [lines[i] for i in range(100, 2100, 100)]
    # bad lines, each reported with its line number and skipped
    bad = ['{"id":"bad-1","lead":"BAD-1","source":"marketing","type":',
           '{"id":"bad-2","source":"marketing","type":"page_view"}',
           '{"id":"bad-3","lead":"BAD-3","source":"marketing"}',
           '{"id":"bad-4","lead":"BAD-4","source":"finance","type":"page_view"}',
           '{"id":"bad-5","lead":"BAD-5","source":"marketing","type":"page_view","at":"yesterday"}',
           '["not", "an", "object"]']
    out = list(lines)
    bad_lines = []
    for j, line in enumerate(dup_lines):
        out.insert(3000 + j * 300, line)
    for j, line in enumerate(bad):
        pos = 500 + j * 1500
        out.insert(pos, line)
    for i, line in enumerate(out):
        if line in bad:
            bad_lines.append(i + 1)
    assert len(bad_lines) == len(bad)
    return out, model, bad_lines, len(dup_lines)


def _line_reported(text, n):
    return re.search(r"(line[ :#]*%d\b|:%d:)" % (n, n), text, re.I) is not None


def _json(proc, what):
    assert proc.returncode == 0, "%s: exit %d\nstdout: %s\nstderr: %s" % (
        what, proc.returncode, proc.stdout.decode(errors="replace")[-2000:],
        proc.stderr.decode(errors="replace")[-2000:])
    try:
        return json.loads(proc.stdout)
    except ValueError:
        pytest.fail("%s: stdout is not one JSON document: %r" % (what, proc.stdout[:500]))


def test_publish_ndjson_and_recompute(zctx, daemon, tmp_path, rng):
    lines, model, bad_lines, n_dups = generate(rng)
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n")
    q = QueryClient(zctx, daemon.query_ep)
    st0 = q.stats()

    t = time.monotonic()
    p = daemon.ctl("publish", str(path), timeout=120)
    elapsed = time.monotonic() - t
    report = (p.stdout + p.stderr).decode(errors="replace")
    # exit 0: every event sent was stored; bad lines are reported, not fatal
    assert p.returncode == 0, "publish exit %d: %s" % (p.returncode, report[-3000:])
    for n in bad_lines:
        assert _line_reported(report, n), "bad line %d not reported:\n%s" % (n, report[-3000:])
    good_lines = set(range(1, len(lines) + 1)) - set(bad_lines)
    wrongly = [n for n in sorted(good_lines)[:: 97] if _line_reported(p.stderr.decode(errors="replace"), n)
               and n not in bad_lines]
    assert not wrongly, "good lines reported as bad: %s" % wrongly

    st1 = q.stats()
    n_unique = sum(l.events for l in model.values())
    assert n_unique == 10_000
    assert st1.applied - st0.applied == n_unique, "publish took %.1fs" % elapsed
    assert st1.duplicates - st0.duplicates == n_dups
    assert st1.leads - st0.leads == len(model)
    for b in ("BAD-1", "BAD-3", "BAD-4", "BAD-5"):
        assert q.lead(b) is None, "bad line's lead %s exists" % b

    # the funnel, over the query socket and through funnelctl
    fm = model_funnel(model)
    f = q.funnel()
    assert f.leads == fm["leads"]
    got = {s.stage: {"now": s.now, "entered": s.entered, "advanced": s.advanced}
           for s in f.stages}
    assert got == fm["stages"], "funnel differs from the recomputation:\n%s\n%s" % (
        got, fm["stages"])

    fj = _json(daemon.ctl("funnel", json_out=True), "funnelctl funnel --json")
    assert fj["leads"] == fm["leads"]
    names = [s["stage"] for s in fj["stages"]]
    assert names[:4] == ORDER and "lost" in names[4:]
    for s in fj["stages"]:
        m = fm["stages"].get(s["stage"])
        assert m is not None, s
        assert (s["now"], s["entered"]) == (m["now"], m["entered"]), (s, m)
        if s["stage"] in ORDER[:3]:
            if m["entered"]:
                assert s["conversion"] is not None
                assert abs(s["conversion"] - m["advanced"] / m["entered"]) < 1e-6, (s, m)
            else:
                assert s["conversion"] is None, s

    # every lead over the query socket
    for lead_id, m in model.items():
        l = q.lead(lead_id)
        assert l is not None, lead_id
        assert (l.stage, l.events, l.qualified) == (m.stage, m.events, m.qualified), \
            (lead_id, l, vars(m))
        # the model sums points; the reply is decayed to the time of reading
        decayed = m.engagement * 2 ** (-(l.scores_as_of_ms - l.last_event_ms) / HALF_LIFE_MS)
        assert abs(l.engagement - decayed) < 0.05, (lead_id, l.engagement, decayed)
        assert list(l.skipped) == m.skipped, (lead_id, list(l.skipped), m.skipped)
        for k, v in m.attrs.items():
            assert l.attrs[k] == v, (lead_id, k)

    # a sample through funnelctl lead --json
    sample = sorted(model)[::16]
    assert any(model[x].qualified for x in sample) and any(not model[x].qualified for x in sample)
    for lead_id in sample:
        m = model[lead_id]
        j = _json(daemon.ctl("lead", lead_id, json_out=True), "funnelctl lead %s" % lead_id)
        assert j["lead"] == lead_id
        assert j["stage"] == m.stage, (j, vars(m))
        assert j["events"] == m.events, (j, vars(m))
        assert j["qualified"] == m.qualified, (j, vars(m))
        as_of = _parse_time(j["score"]["as_of"])
        decayed = m.engagement * 2 ** (-(as_of - _parse_time(j["last_event_at"])) / HALF_LIFE_MS)
        assert abs(j["score"]["engagement"] - decayed) < 0.05, (j, vars(m))
        assert abs(j["score"]["total"] - (j["score"]["fit"] + j["score"]["engagement"])) < 0.01
        assert j["handoff"]["status"] == ("pending" if m.qualified else "none"), j
        for k, v in m.attrs.items():
            assert j["attrs"][k] == v

    # republishing the file changes nothing: only duplicates
    p = daemon.ctl("publish", str(path), timeout=120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    st2 = q.stats()
    assert st2.applied == st1.applied
    assert st2.duplicates - st1.duplicates == n_unique + n_dups
    assert st2.leads == st1.leads
    assert q.funnel() == f
    q.close()


def test_lead_unknown_exits_1_and_stats(zctx, daemon):
    p = daemon.ctl("lead", uid("nobody"))
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip() != b""
    p = daemon.ctl("lead", uid("nobody"), json_out=True)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)

    q = QueryClient(zctx, daemon.query_ep)
    st = q.stats()
    j = _json(daemon.ctl("stats", json_out=True), "funnelctl stats --json")
    assert j["leads"] == st.leads
    assert j["applied"] == st.applied
    q.close()


def test_send_and_stdin_publish(daemon, query):
    lead = uid("ctl")
    p = daemon.ctl("send", "--lead", lead, "--source", "sales", "--type", "demo_request",
                   "--attr", "industry=retail", "--attr", "role=cto", "--id", "ctl-1",
                   "--value", "12.5")
    assert p.returncode == 0, p.stderr
    l = query.lead(lead)
    assert l is not None and l.stage == "decision"
    assert dict(l.attrs) == {"industry": "retail", "role": "cto"}
    assert l.first_source == SALES
    r = query.lead_reply(lead)
    assert r.timeline[0].event.id == "ctl-1"
    assert r.timeline[0].event.value == 12.5
    # the same id again is a duplicate
    p = daemon.ctl("send", "--lead", lead, "--source", "sales", "--type", "demo_request",
                   "--id", "ctl-1")
    assert p.returncode == 0, p.stderr
    assert query.lead(lead).events == 1

    at = now_ms() - 1000
    data = "\n".join(json.dumps({"lead": lead, "source": "marketing", "type": t, "at": at + i})
                     for i, t in enumerate(["form_submit", "meeting_booked", "page_view"]))
    p = daemon.ctl("publish", "-", input=(data + "\n").encode())
    assert p.returncode == 0, p.stderr
    l = query.lead(lead)
    assert l.events == 4
    assert abs(l.engagement - (25 + 10 + 20 + 1)) < 0.05
    assert l.qualified
    # ids default to a hash of the line: the same input again changes nothing
    p = daemon.ctl("publish", "-", input=(data + "\n").encode())
    assert p.returncode == 0, p.stderr
    assert query.lead(lead).events == 4

    # usage error
    p = daemon.ctl("send", "--lead", lead)
    assert p.returncode == 2
    assert p.stderr.strip() != b""


def test_watch_handoff(zctx, daemon, ingest):
    argv = [FUNNELCTL_BIN, "--ingest", daemon.ingest_ep, "--alerts", daemon.alerts_ep,
            "--query", daemon.query_ep, "--json", "watch", "handoff",
            "--count", "1", "--timeout", "30"]
    w = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    qualified = []
    try:
        # watch's SUB joins late: qualify fresh leads until it has seen one
        def done():
            if w.poll() is not None:
                return True
            lead = uid("w")
            qualified.append(lead)
            ingest.publish([make_event(lead, "demo_request", source=SALES),
                            make_event(lead, "meeting_booked", source=SALES),
                            make_event(lead, "webinar_attended")])
            return False
        wait_until(done, 30, interval=0.1, what="funnelctl watch to exit after 1 alert")
        out, err = w.communicate(timeout=10)
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    assert w.returncode == 0, (w.returncode, err)
    docs = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
    assert len(docs) == 1, out
    text = json.dumps(docs[0])
    assert "handoff" in text
    assert any(lead in text for lead in qualified), text
