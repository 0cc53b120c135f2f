"""Shadow drafts (config key shadow): draft definitions applied to every
live event beside the live one, each in a state of its own. A draft
identical to the live definition differs in nothing; a draft's numbers are
those of a backtest of the same draft over the same events; drafts are
added (rebuilt from the log) and dropped (their state deleted) by a reload;
their alerts come on shadow.<name>.<topic>."""

import json
import os
import signal
import subprocess

from conftest import (AlertSubscriber, Daemon, IngestClient, make_event, uid,
                      wait_until)
from test_quality import _default_text, _draft

SOURCE_DIR = os.environ["FUNNELD_SOURCE_DIR"]


def _config(tmp_path, shadows, live):
    path = tmp_path / "funneld.yaml"
    lines = ["definition: %s" % json.dumps(str(live)), "shadow:"]
    if not shadows:
        lines[-1] += " []"
    for name, defn in shadows:
        lines += ["  - name: %s" % name, "    definition: %s" % json.dumps(str(defn))]
    path.write_text("\n".join(lines) + "\n")
    return path


def _events(tmp_path, n=3000, leads=300):
    path = tmp_path / "events.ndjson"
    with open(path, "w") as f:
        subprocess.run([os.path.join(SOURCE_DIR, "tools", "gen-events"), "--events", str(n),
                        "--leads", str(leads), "--start", "2026-03-02T00:00:00Z",
                        "--spacing-ms", "600000", "--seed", "7"], stdout=f, check=True)
    return path


def _json(d, *args, timeout=60):
    r = d.ctl(*args, json_out=True, timeout=timeout)
    assert r.returncode == 0, (args, r.stderr)
    return json.loads(r.stdout)


def _shadow(d, name):
    drafts = _json(d, "shadow")["drafts"]
    return next((s for s in drafts if s["name"] == name), None)


def _following(d, name):
    s = _shadow(d, name)
    return s if s and s["state"] == "following" and s["applied_seq"] == s["log_seq"] else None


def _daemon(daemon_factory, tmp_path, shadows, live, clock="event"):
    cfg = _config(tmp_path, shadows, live)
    return daemon_factory(extra_args=["--config", str(cfg), "--clock", clock]), cfg


def test_shadow_equals_live_and_backtest(daemon_factory, tmp_path):
    live = tmp_path / "live.yaml"
    live.write_text(_default_text())
    draft = _draft(tmp_path, lost_after="30d")
    d, _ = _daemon(daemon_factory, tmp_path, [("same", live), ("low", draft)], live)
    events = _events(tmp_path)
    r = d.ctl("publish", str(events), json_out=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("same", "low"):
        wait_until(lambda: _following(d, name), 60, what="shadow %s following" % name)

    # Identical to the live definition: no difference anywhere.
    same = _shadow(d, "same")
    assert same["only_live"] == same["only_draft"] == 0
    assert same["both"] > 0 and same["handoffs"] == same["live_handoffs"] > 0
    for cmd in (["funnel"], ["funnel", "--by", "persona"], ["friction"], ["quality"],
                ["quality", "--by", "source"]):
        assert _json(d, *cmd) == _json(d, *cmd, "--definition", "same"), cmd
    lead = "gen-L%d" % 1
    assert _json(d, "lead", lead) == _json(d, "lead", lead, "--definition", "same")

    # The draft: what a backtest of it over the same events says.
    low = _shadow(d, "low")
    b = _json(d, "backtest", str(draft), timeout=300)
    assert b["draft"]["handoffs"] == low["handoffs"] > same["handoffs"]
    assert b["both"]["count"] == low["both"]
    assert b["only_live"]["count"] == low["only_live"]
    assert b["only_draft"]["count"] == low["only_draft"] > 0
    funnel = _json(d, "funnel", "--definition", "low")
    assert [s["now"] for s in b["draft"]["stages"]] == [s["now"] for s in funnel["stages"]]
    assert b["draft"]["leads"] == funnel["leads"]
    q = _json(d, "quality", "--definition", "low")
    for k in ("handed_off", "won", "lost", "open", "precision", "recall", "lift"):
        assert b["draft"]["quality"][k] == q[k], k
    assert q["definition"] == "aida"
    # The live state is the live definition's, untouched.
    assert _json(d, "funnel")["handoffs"] != funnel["handoffs"]

    text = d.ctl("shadow", "low").stdout.decode()
    assert "Shadow low" in text and "only draft %d" % low["only_draft"] in text
    r = d.ctl("funnel", "--definition", "nope")
    assert r.returncode == 2 and b"no shadow draft named" in r.stderr
    r = d.ctl("quality", "--definition", "low", "--draft", str(draft))
    assert r.returncode == 2 and b"do not combine" in r.stderr


def test_shadow_added_and_dropped_by_reload(daemon_factory, tmp_path, zctx):
    live = tmp_path / "live.yaml"
    live.write_text(_default_text())
    draft = _draft(tmp_path)
    d, cfg = _daemon(daemon_factory, tmp_path, [("first", draft)], live)
    r = d.ctl("publish", str(_events(tmp_path, n=1500)), json_out=True, timeout=120)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: _following(d, "first"), 60, what="first following")
    state = d.state_dir
    assert os.path.isdir(os.path.join(state, "state.shadow-first"))

    # Drop first, add second (the live definition): rebuilt from the log.
    _config(tmp_path, [("second", live)], live)
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: _following(d, "second"), 60, what="second rebuilt")
    assert [s["name"] for s in _json(d, "shadow")["drafts"]] == ["second"]
    wait_until(lambda: not os.path.exists(os.path.join(state, "state.shadow-first")), 10,
               what="state.shadow-first deleted")
    assert _json(d, "funnel") == _json(d, "funnel", "--definition", "second")
    log = d.stderr()
    assert "[shadow second]" in log and "rebuilt from the log" in log
    assert "[shadow first] dropped" in log

    # A bad entry is refused with its place; the drafts running go on.
    cfg.write_text(cfg.read_text() + "  - name: bad name\n    definition: x.yaml\n")
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: "keeping the shadow drafts" in d.stderr(), 10, what="refusal")
    assert "shadow name \"bad name\"" in d.stderr()
    assert _following(d, "second")

    # After a restart it goes on from its state (nothing rebuilt).
    d.stop_ok()
    _config(tmp_path, [("second", live)], live)
    d.start(zctx)
    wait_until(lambda: _following(d, "second"), 60, what="second after restart")
    assert "following the live stream" in d.stderr(tail=40)


def test_shadow_alerts_on_their_own_topic(daemon_factory, tmp_path, zctx):
    live = tmp_path / "live.yaml"
    live.write_text(_default_text())
    draft = tmp_path / "draft.yaml"
    draft.write_text(_default_text().replace("qualification:\n  engagement: 50\n",
                                             "qualification:\n  engagement: 5\n"))
    d, _ = _daemon(daemon_factory, tmp_path, [("easy", draft)], live, clock="wall")
    ing = IngestClient(zctx, d.ingest_ep)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["shadow.easy.handoff", "handoff"])
    try:
        sub.sync(ing)
        lead = uid("s")
        ing.publish([make_event(lead, "form_submit")])
        topic, alert = sub.await_alert(lambda t, a: t == "shadow.easy.handoff" and
                                       a.lead_id == lead, what="shadow handoff")
        assert alert.kind == "handoff"
        # The live definition (engagement 50) does not hand it off.
        assert not any(t == "handoff" and a.lead_id == lead for t, a in sub.received)
    finally:
        sub.close()
        ing.close()


def test_promote_makes_the_draft_live(daemon_factory, tmp_path, zctx):
    live = tmp_path / "live.yaml"
    live.write_text(_default_text())
    draft = _draft(tmp_path)
    d, cfg = _daemon(daemon_factory, tmp_path, [("low", draft)], live, clock="wall")
    r = d.ctl("publish", str(_events(tmp_path, n=1500)), json_out=True, timeout=120)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: _following(d, "low"), 60, what="low following")
    r = d.ctl("definition", "promote", "nope")
    assert r.returncode == 2 and b"no shadow draft named" in r.stderr
    want = _json(d, "funnel", "--definition", "low")
    want_q = _json(d, "quality", "--definition", "low")
    old_live = _json(d, "funnel")
    assert want != old_live

    p = _json(d, "definition", "promote", "low", timeout=120)
    assert p["path"] == str(live) and p["old_state"].startswith("state.old-")
    # The draft's state is the live state as it was (nothing replayed), the
    # file in use is the draft's, the old state is kept.
    assert _json(d, "funnel") == want
    assert {k: v for k, v in _json(d, "quality").items() if k != "as_of_ms"} == \
           {k: v for k, v in want_q.items() if k != "as_of_ms"}
    assert live.read_bytes() == draft.read_bytes()
    assert not [f for f in os.listdir(tmp_path) if ".promote-" in f]
    old = os.path.join(d.state_dir, p["old_state"])
    assert os.path.isfile(os.path.join(old, "data.mdb"))
    assert not os.path.exists(os.path.join(d.state_dir, "state.shadow-low"))
    assert _json(d, "shadow")["drafts"] == []
    stats = _json(d, "stats")
    assert p["definition"].split("(")[1].rstrip(")") in stats["definition"]
    assert "promoted" in d.stderr()
    # How long ingest waited, in the reply and the log; the config still
    # lists the draft: the reply and the log say to take it out.
    assert isinstance(p["ingest_paused_ms"], int) and p["ingest_paused_ms"] >= 0
    assert "promote: ingest paused %d ms" % p["ingest_paused_ms"] in d.stderr()
    assert "still lists it under `shadow`: remove it" in p["warning"], p
    assert str(cfg) in p["warning"] and p["warning"] in d.stderr()
    r = d.ctl("definition", "promote", "low")  # no longer a draft
    assert r.returncode == 2 and b"no shadow draft named" in r.stderr

    # A reload with the config unchanged does not run it again as a draft.
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: "[shadow low] was promoted" in d.stderr(), 10, what="reload")
    assert _json(d, "shadow")["drafts"] == []
    assert not os.path.exists(os.path.join(d.state_dir, "state.shadow-low"))
    assert _json(d, "funnel") == want

    # Ingest goes on under it; a restart replays nothing and keeps it.
    lead = uid("after")
    r = d.ctl("send", "--lead", lead, "--type", "demo_request", "--source", "marketing")
    assert r.returncode == 0, r.stderr
    assert _json(d, "lead", lead)["lead"] == lead
    before = _json(d, "funnel")
    d.stop_ok()
    _config(tmp_path, [], live)
    d.start(zctx)
    assert _json(d, "funnel") == before

