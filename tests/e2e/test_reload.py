"""SIGHUP reloads the funnel definition: a valid one takes effect for the
next events, an invalid one is refused and the old one kept; a restart with
another definition than the state was built with says so."""

import os
import re
import signal

from conftest import (SALES, AlertSubscriber, IngestClient, QueryClient,
                      make_event, now_ms, uid, wait_until)

SOURCE_DIR = os.environ["FUNNELD_SOURCE_DIR"]
DEFAULT_YAML = os.path.join(SOURCE_DIR, "handlers", "default.yaml")


def _definition(threshold, name="aida"):
    text = open(DEFAULT_YAML).read()
    old = "qualification:\n  engagement: 50\n"
    assert old in text, "default.yaml's qualification rule moved"
    text = text.replace(old, "qualification:\n  engagement: %d\n" % threshold)
    return text.replace("\nname: aida\n", "\nname: %s\n" % name)


def _log_has(daemon, needle):
    return needle in daemon.stderr(tail=100000)


def test_sighup_valid_and_invalid(daemon_factory, zctx, tmp_path):
    path = tmp_path / "funnel.yaml"
    path.write_text(_definition(50, "strict"))
    d = daemon_factory(extra_args=["--definition", str(path)])
    ingest, query = IngestClient(zctx, d.ingest_ep), QueryClient(zctx, d.query_ep)
    sub = AlertSubscriber(zctx, d.alerts_ep, ["handoff"])
    try:
        sub.sync(ingest)
        strict = query.stats().definition
        assert "strict" in strict

        t0 = now_ms() - 60_000
        lead = uid("reload")
        assert ingest.publish([make_event(lead, "demo_request", source=SALES,
                                          at_ms=t0)]).accepted == 1
        assert not query.lead(lead).qualified          # 25 < 50

        # An invalid file: refused, said in the log, the old one kept.
        path.write_text("name: broken\nstages: [\n")
        d.send_signal(signal.SIGHUP)
        wait_until(lambda: _log_has(d, "SIGHUP: keeping definition"), 10,
                   what="the refusal in the log")
        # The reason names the file, line and column.
        assert re.search(re.escape(str(path)) + r":\d+:\d+: ", d.stderr(tail=100000))
        assert query.stats().definition == strict
        other = uid("reload")
        assert ingest.publish([make_event(other, "demo_request", source=SALES,
                                          at_ms=t0)]).accepted == 1
        assert not query.lead(other).qualified

        # A valid one with a lower threshold: the next event qualifies.
        path.write_text(_definition(20, "lenient"))
        d.send_signal(signal.SIGHUP)
        wait_until(lambda: "lenient" in query.stats().definition, 10,
                   what="the new definition in stats")
        assert ingest.publish([make_event(lead, "page_view", at_ms=t0 + 1000)]).accepted == 1
        topic, alert = sub.await_alert(lambda t, a: a.lead_id == lead,
                                       what="handoff under the new definition")
        assert alert.kind == "handoff"
        assert query.lead(lead).qualified
    finally:
        sub.close()
        ingest.close()
        query.close()

    # Restarted with yet another definition: the daemon says the state was
    # built with a different one.
    d.stop_ok()
    path.write_text(_definition(60, "third"))
    d.start(zctx)
    assert _log_has(d, "the state was built with definition")
    assert "rebuild-replace" in d.stderr(tail=100000)
