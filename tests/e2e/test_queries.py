"""Query answers for questions that have no answer: an unknown persona is
an error, not an empty group; an unknown lead is a "no"."""

import json


def test_unknown_persona_is_an_error(daemon):
    r = daemon.ctl("funnel", "--by", "persona", "--persona", "no_such_persona")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert b"no such persona" in r.stderr
    # A persona of the definition with no lead yet is an empty group.
    r = daemon.ctl("funnel", "--by", "persona", "--persona", "evaluator", json_out=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["leads"] == 0


def test_unknown_lead_is_a_no(daemon):
    r = daemon.ctl("lead", "L-never-seen", json_out=True)
    assert r.returncode == 1
    assert r.stdout == b""
    assert b"unknown lead L-never-seen" in r.stderr
