"""The real Olist marketing-funnel data, replayed through `funnelctl publish`
with a definition whose personas are the leads' acquisition origins: the
per-persona (that is, per-origin) report equals a recomputation from the CSV
files."""

import collections
import csv
import datetime
import json
import os
import re

import pytest

DATA_DIR = os.environ.get("FUNNELD_DATA_DIR",
                          os.path.join(os.path.dirname(__file__), "..", "..",
                                       "..", "shared", "data"))
OLIST = os.path.join(DATA_DIR, "olist-funnel")
SOURCE_DIR = os.environ["FUNNELD_SOURCE_DIR"]


def _ms(text):
    fmt = "%Y-%m-%d" if len(text) == 10 else "%Y-%m-%d %H:%M:%S"
    dt = datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)


def _read():
    """{mql_id: origin} and {mql_id: won_ms}, straight from the CSVs."""
    origin, won = {}, {}
    with open(os.path.join(OLIST, "olist_marketing_qualified_leads_dataset.csv"),
              newline="") as f:
        for r in csv.DictReader(f):
            origin[r["mql_id"]] = (r["origin"] or "unknown", _ms(r["first_contact_date"]))
    with open(os.path.join(OLIST, "olist_closed_deals_dataset.csv"), newline="") as f:
        for r in csv.DictReader(f):
            won[r["mql_id"]] = _ms(r["won_date"])
    return origin, won


def _persona(origin):
    return "o_" + re.sub(r"[^a-z0-9_]", "_", origin)


@pytest.mark.skipif(not os.path.isdir(OLIST), reason="no Olist data at %s" % OLIST)
def test_olist_per_origin_report_matches_csv(daemon_factory, tmp_path):
    origin, won = _read()
    origins = sorted({o for o, _ in origin.values()})

    # The default definition, with one persona per origin.
    text = open(os.path.join(SOURCE_DIR, "handlers", "default.yaml")).read()
    start = text.index("\npersonas:\n")
    end = text.index("\n# ", start + 1)
    personas = "\npersonas:\n" + "".join(
        "  - name: %s\n    when:\n      - {attr: origin, equals: %s}\n"
        % (_persona(o), o) for o in origins)
    path = tmp_path / "by-origin.yaml"
    path.write_text(text[:start] + personas + text[end:])
    d = daemon_factory(extra_args=["--clock", "event", "--definition", str(path)])
    r = d.ctl("definition", "check", str(path))
    assert r.returncode == 0, r.stdout + r.stderr

    # NDJSON in event-time order: a form_submit at each first contact, a
    # closed_won at each won date.
    events = [(at, 0, lead, "form_submit", "marketing", {"origin": o})
              for lead, (o, at) in origin.items()]
    events += [(at, 1, lead, "closed_won", "sales", {}) for lead, at in won.items()]
    events.sort()
    ndjson = tmp_path / "olist.ndjson"
    with open(ndjson, "w") as f:
        for i, (at, _, lead, type_, source, attrs) in enumerate(events):
            f.write(json.dumps({"id": "olist-%d" % i, "lead": lead, "source": source,
                                "type": type_, "at": at, "attrs": attrs}) + "\n")

    r = d.ctl("publish", str(ndjson), json_out=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["accepted"] == len(events), summary
    assert summary["bad_lines"] == 0

    r = d.ctl("funnel", "--by", "persona", json_out=True)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["leads"] == len(origin)

    leads = collections.Counter(_persona(o) for o, _ in origin.values())
    wins = collections.Counter(_persona(origin[m][0]) for m in won)
    groups = {g["group"]: g for g in report["groups"]}
    got_leads = {name: g["leads"] for name, g in groups.items() if g["leads"]}
    assert got_leads == dict(leads)
    for name, g in groups.items():
        stages = {s["stage"]: s for s in g["stages"]}
        assert stages["action"]["entered"] == wins.get(name, 0), name
        assert stages["action"]["now"] == wins.get(name, 0), name
        # Every lead that did not win is still in interest (none was lost).
        assert stages["interest"]["now"] == leads.get(name, 0) - wins.get(name, 0), name
