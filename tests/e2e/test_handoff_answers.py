"""Sales' four answers to a handoff end to end: accepted, rejected,
recycled (back to marketing, no rejection counted) and requalify (the rule
evaluated again at once); and the reason of an answer, which is kept with
the handoff and counted, never merged into the lead's attributes."""

import json
import os

from conftest import (SALES, AlertSubscriber, IngestClient, QueryClient,
                      make_event, now_ms, pb, uid)

SOURCE_DIR = os.environ.get("FUNNELD_SOURCE_DIR", ".")
DEFAULT_YAML = os.path.join(SOURCE_DIR, "handlers", "default.yaml")


def _qualify(ingest, lead, t0):
    """demo_request 25 + meeting_booked 20 + form_submit 10 = 55 >= 50."""
    ingest.publish([make_event(lead, "demo_request", SALES, at_ms=t0),
                    make_event(lead, "meeting_booked", SALES, at_ms=t0 + 1000),
                    make_event(lead, "form_submit", at_ms=t0 + 2000)])


def _friction(query):
    req = pb.QueryRequest()
    req.friction.SetInParent()
    rep = query.request(req)
    assert rep.error == "", rep.error
    return rep.friction


def _reasons(report):
    return {r.reason: r.count for r in report.rejection_reasons}


def _definition(tmp_path, handoff, personas=None, name="answers.yaml"):
    """The default definition with its handoff section (and personas)
    replaced."""
    text = open(DEFAULT_YAML).read()
    start = text.index("\nhandoff:\n")
    end = text.index("\n# ", start + 1)
    text = text[:start] + "\nhandoff:\n" + handoff + text[end:]
    if personas is not None:
        start = text.index("\npersonas:\n")
        end = text.index("\n# ", start + 1)
        text = text[:start] + "\npersonas:\n" + personas + text[end:]
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reason_is_kept_with_the_handoff_not_merged(daemon_factory, zctx, tmp_path):
    # A persona and a fit rule that would see the reason if it were an
    # attribute of the lead.
    path = _definition(
        tmp_path,
        "  sla: 24h\n  recycle_to: interest\n",
        personas="  - name: budgetless\n    when:\n"
                 "      - {attr: reason, present: true}\n")
    d = daemon_factory(extra_args=["--definition", str(path)])
    ingest, query = IngestClient(zctx, d.ingest_ep), QueryClient(zctx, d.query_ep)
    lead = uid("why")
    t0 = now_ms() - 60_000
    _qualify(ingest, lead, t0)
    assert query.lead(lead).handoff_status == pb.HANDOFF_PENDING
    ingest.publish([make_event(lead, "handoff_rejected", SALES, at_ms=t0 + 3000,
                               attrs={"reason": "no budget", "company_size": "120"})])
    l = query.lead(lead)
    assert l.handoff_status == pb.HANDOFF_REJECTED
    assert "reason" not in l.attrs, dict(l.attrs)
    assert l.attrs["company_size"] == "120"      # the answer's other attributes merge
    assert l.persona == "", l.persona            # the persona rule never saw it
    assert l.handoffs[-1].reason == "no budget"
    assert _reasons(_friction(query)) == {"no budget": 1}

    # funnelctl lead --json tells the same
    j = json.loads(d.ctl("lead", lead, json_out=True).stdout)
    assert "reason" not in j["attrs"]
    assert j["handoff"]["history"][-1]["reason"] == "no budget"
    ingest.close()
    query.close()


def test_recycled_goes_back_without_a_rejection(zctx, daemon, ingest, query):
    sub = AlertSubscriber(zctx, daemon.alerts_ep,
                          ["recycled", "friction.handoff_rejected", "stage"])
    sub.sync(ingest)
    st0 = query.stats()
    lead = uid("recy")
    t0 = now_ms() - 60_000
    _qualify(ingest, lead, t0)
    assert query.lead(lead).stage == "decision"
    ans = make_event(lead, "handoff_recycled", SALES, at_ms=t0 + 3000,
                     attrs={"reason": "not ready yet"})
    ingest.publish([ans])
    _, a = sub.await_alert(lambda t, a: t == "recycled" and a.lead_id == lead,
                           what="the handoff_recycled alert")
    assert a.kind == "handoff_recycled"
    assert a.event_id == ans.id
    assert any("not ready yet" in r for r in a.reasons), list(a.reasons)
    assert any("recycled to interest" in r for r in a.reasons), list(a.reasons)
    # the stage move back comes with it, but no rejection
    sub.await_alert(lambda t, a: t == "stage" and a.lead_id == lead
                    and a.event_id == ans.id and a.stage == "interest",
                    what="the recycle's stage alert")
    assert not [x for t, x in sub.received
                if t == "friction.handoff_rejected" and x.lead_id == lead]

    l = query.lead(lead)
    assert l.handoff_status == pb.HANDOFF_RECYCLED
    assert not l.qualified
    assert l.stage == "interest"
    assert abs(l.engagement) < 1e-9                 # reset_engagement
    assert (l.handoffs_sent, l.handoffs_recycled, l.handoffs_rejected) == (1, 1, 0)
    assert l.handoffs[-1].status == pb.HANDOFF_RECYCLED
    assert l.handoffs[-1].reason == "not ready yet"
    assert "reason" not in l.attrs
    st = query.stats()
    assert st.handoffs_recycled == st0.handoffs_recycled + 1
    f = query.funnel()
    assert f.handoffs.rejected == 0
    assert _reasons(_friction(query)) == {}

    # it may qualify again later: a new handoff
    _qualify(ingest, lead, t0 + 10_000)
    l = query.lead(lead)
    assert (l.handoff_status, l.handoffs_sent) == (pb.HANDOFF_PENDING, 2)
    sub.close()


def test_requalify_evaluates_the_rule_now(zctx, daemon, ingest, query):
    sub = AlertSubscriber(zctx, daemon.alerts_ep, ["handoff"])
    sub.sync(ingest)
    t0 = now_ms() - 60_000

    # The rule still holds: a new handoff at once, with its alert.
    yes = uid("requal")
    _qualify(ingest, yes, t0)
    sub.await_alert(lambda t, a: t == "handoff" and a.lead_id == yes, what="handoff 1")
    again = make_event(yes, "handoff_requalify", SALES, at_ms=t0 + 3000)
    ingest.publish([again])
    _, h2 = sub.await_alert(lambda t, a: t == "handoff" and a.lead_id == yes
                            and a.event_id == again.id, what="handoff 2")
    assert any("handoff #2" in r for r in h2.reasons), list(h2.reasons)
    l = query.lead(yes)
    assert (l.handoff_status, l.qualified, l.handoffs_sent) == (pb.HANDOFF_PENDING, True, 2)
    assert l.handoffs_requalified == 1
    assert [h.status for h in l.handoffs] == [pb.HANDOFF_REQUALIFIED, pb.HANDOFF_PENDING]

    # The rule no longer holds (an unsubscribe took 20 points away while
    # pending): no new handoff, status requalified.
    no = uid("requal")
    _qualify(ingest, no, t0)
    ingest.publish([make_event(no, "unsubscribe", at_ms=t0 + 2500)])
    ingest.publish([make_event(no, "handoff_requalify", SALES, at_ms=t0 + 3000)])
    l = query.lead(no)
    assert (l.handoff_status, l.qualified, l.handoffs_sent) == \
        (pb.HANDOFF_REQUALIFIED, False, 1)
    assert query.stats().handoffs_requalified == 2
    sub.close()


def test_answer_types_are_configurable(daemon_factory, zctx, tmp_path):
    path = _definition(tmp_path, "  recycle_to: interest\n  recycled: nurture_again\n"
                                 "  requalify: look_again\n")
    d = daemon_factory(extra_args=["--definition", str(path)])
    ingest, query = IngestClient(zctx, d.ingest_ep), QueryClient(zctx, d.query_ep)
    t0 = now_ms() - 60_000
    lead = uid("conf")
    _qualify(ingest, lead, t0)
    ingest.publish([make_event(lead, "handoff_recycled", SALES, at_ms=t0 + 3000)])
    assert query.lead(lead).handoff_status == pb.HANDOFF_PENDING   # not an answer here
    ingest.publish([make_event(lead, "nurture_again", SALES, at_ms=t0 + 4000)])
    assert query.lead(lead).handoff_status == pb.HANDOFF_RECYCLED

    # the same type for two answers is refused, naming both
    bad = _definition(tmp_path, "  recycled: handoff_rejected\n", name="bad.yaml")
    r = d.ctl("definition", "check", str(bad))
    assert r.returncode == 1
    assert "handoff.recycled: same event type as handoff.rejected" in r.stderr.decode(), \
        r.stderr.decode()
    # and diff names the answers
    r = d.ctl("definition", "diff", DEFAULT_YAML, str(path))
    out = r.stdout.decode()
    assert "recycled" in out and "nurture_again" in out, out
    ingest.close()
    query.close()
