"""funneld --rebuild: recompute the state from the event log and compare;
--rebuild-replace makes a new definition's results live."""

import os
import signal
import subprocess

from conftest import (FUNNELD_BIN, SALES, IngestClient, QueryClient, make_event,
                      now_ms)

SRC = os.environ.get("FUNNELD_SOURCE_DIR", ".")


def _rebuild(d, *extra):
    r = subprocess.run([FUNNELD_BIN, "--state-dir", d.state_dir, "--log-level", "warn",
                        *extra], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def _publish_history(c, n_leads=60, per=8):
    """Batches of events over many leads, types cycling through every stage."""
    types = ["page_view", "email_open", "form_submit", "content_download",
             "demo_request", "meeting_booked", "closed_won", "closed_lost"]
    t0 = now_ms() - 86_400_000
    k = 0
    for b in range(per):
        evs = []
        for i in range(n_leads):
            typ = types[(i + b) % len(types)] if i % 5 else types[min(b, 3)]
            evs.append(make_event("rb-%03d" % i, typ, event_id="rb-%d-%d" % (b, i),
                                  source=SALES if typ.startswith(("closed", "meet", "demo")) else 1,
                                  at_ms=t0 + k * 1000))
            k += 1
        ack = c.publish(evs, batch_id="rb-%d" % b)
        assert ack.accepted == n_leads and not ack.rejections, ack
    return k


def test_rebuild_identical_after_a_normal_run(zctx, daemon_factory):
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    n = _publish_history(c)
    c.close()
    d.stop_ok()
    rc, out = _rebuild(d, "--rebuild")
    assert rc == 0, out
    assert "identical" in out and ("rebuilt %d events" % n) in out, out
    # the live state was left alone, and the daemon starts on it
    assert not os.path.exists(os.path.join(d.state_dir, "state.old")), out
    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    assert q.stats().applied == n
    q.close()


def test_rebuild_while_running_is_refused(zctx, daemon):
    rc, out = _rebuild(daemon, "--rebuild")
    assert rc == 2, out
    assert "in use" in out, out
    assert daemon.running()


def test_rebuild_counter_back_to_zero_is_identical(zctx, daemon_factory):
    """A lead enters decision in one group commit and leaves it in the next:
    the live "now" counter of decision goes 1 then 0. A rebuild that applies
    both events in one group must still find the states identical."""
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    t0 = now_ms() - 60_000
    assert c.publish([make_event("z-1", "demo_request", source=SALES, event_id="z-a",
                                 at_ms=t0)]).accepted == 1
    assert c.publish([make_event("z-1", "closed_won", source=SALES, event_id="z-b",
                                 at_ms=t0 + 1000)]).accepted == 1
    c.close()
    d.stop_ok()
    rc, out = _rebuild(d, "--rebuild")
    assert rc == 0 and "identical" in out, out


def test_definition_change_then_rebuild_replace(zctx, daemon_factory, tmp_path):
    with open(os.path.join(SRC, "handlers", "default.yaml")) as f:
        text = f.read()
    assert "engagement: 50" in text
    lower = tmp_path / "lower.yaml"
    lower.write_text(text.replace("engagement: 50", "engagement: 12"))

    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    t0 = now_ms() - 3_600_000
    # engagement 10 + 3 = 13: not qualified at 50, qualified at 12
    warm = ["w-%d" % i for i in range(5)]
    evs = []
    for i, lead in enumerate(warm):
        evs += [make_event(lead, "form_submit", event_id="%s-a" % lead, at_ms=t0 + i),
                make_event(lead, "email_click", event_id="%s-b" % lead, at_ms=t0 + 100 + i)]
    cold = make_event("cold-1", "page_view", event_id="cold-a", at_ms=t0)
    ack = c.publish(evs + [cold])
    assert ack.accepted == len(evs) + 1
    for lead in warm:
        assert not q.lead(lead).qualified
    c.close()
    q.close()
    d.stop_ok()

    rc, out = _rebuild(d, "--rebuild")
    assert rc == 0 and "identical" in out, out
    rc, out = _rebuild(d, "--rebuild", "--definition", str(lower))
    assert rc == 1, out
    assert "DIFFERENT" in out, out
    assert "leads" in out
    # a plain rebuild changed nothing live
    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    assert not q.lead("w-0").qualified
    q.close()
    d.stop_ok()

    rc, out = _rebuild(d, "--rebuild-replace", "--definition", str(lower))
    assert rc == 0, out
    olds = [n for n in os.listdir(d.state_dir) if n.startswith("state.old-")]
    assert len(olds) == 1, os.listdir(d.state_dir)
    d.extra_args += ["--definition", str(lower)]
    d.start(zctx)
    q = QueryClient(zctx, d.query_ep)
    for lead in warm:
        l = q.lead(lead)
        assert l.qualified, "%s not qualified under the new definition: %s" % (lead, l)
        assert l.events == 2
    assert not q.lead("cold-1").qualified
    assert q.stats().last_seq == len(evs) + 1
    q.close()
    d.stop_ok()
    # and the new state is identical to a rebuild under the new definition
    rc, out = _rebuild(d, "--rebuild", "--definition", str(lower))
    assert rc == 0 and "identical" in out, out
