"""Queries run in a thread of their own, beside ingest: they must see every
event acknowledged before they were sent, never more than what was
committed, keep being answered while the maps grow under them (growth
waits for the query thread's read snapshots), and while SIGHUP replaces
the definition they read (the swap waits for the query in progress)."""

import os
import signal
import threading

import pytest

from conftest import IngestClient, QueryClient, make_event, now_ms, uid, wait_until

DEFAULT_YAML = os.path.join(os.environ["FUNNELD_SOURCE_DIR"], "handlers", "default.yaml")


# partitions 4: every partition's map grows under the queries, which read
# all of them (read-your-writes over the four).
@pytest.mark.parametrize("partitions", [None, 4])
def test_queries_during_ingest_and_map_growth(zctx, daemon_factory, tmp_path, partitions):
    cfg = tmp_path / "funneld.yaml"
    cfg.write_text("map_size_mb: 1\ngroup_max_events: 2000\n" +
                   ("partitions: %d\n" % partitions if partitions else ""))
    d = daemon_factory(extra_args=["--config", str(cfg)])
    n_batches, per, n_leads = 30, 500, 3000
    total = n_batches * per

    # A second client queries without pause while the batches go in.
    seen, errors = [], []
    done = threading.Event()

    def query_loop():
        q = QueryClient(zctx, d.query_ep)
        try:
            while not done.is_set():
                st = q.stats(timeout=10, fail=False)
                if st is None:
                    errors.append("a stats query went unanswered")
                    return
                seen.append(st.applied)
                lead = q.lead_reply("c-%04d" % (len(seen) % n_leads))
                if lead.found and lead.lead.events < 1:
                    errors.append("lead %s found with no events" % lead.lead.id)
        except Exception as e:  # noqa: BLE001 - reported to the main thread
            errors.append(repr(e))
        finally:
            q.close()

    t = threading.Thread(target=query_loop)
    t.start()
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    t0 = now_ms() - 3_600_000
    pad = "y" * 150
    acked = 0
    try:
        for b in range(n_batches):
            evs = [make_event("c-%04d" % ((b * per + i) % n_leads), "page_view",
                              event_id="c-%d-%d" % (b, i), at_ms=t0 + b * per + i,
                              attrs={"note": "%s-%d-%d" % (pad, b, i)})
                   for i in range(per)]
            ack = c.publish(evs, batch_id="c-%d" % b, timeout=60)
            assert ack.error == "" and ack.accepted == per, ack
            acked += ack.accepted
            # What was acknowledged is visible to the next query.
            assert q.stats().applied >= acked
    finally:
        done.set()
        t.join(30)
    assert not t.is_alive(), "the query client hangs"
    assert not errors, errors
    assert len(seen) > 0
    # Snapshots of successive commits: never backwards, never ahead.
    assert seen == sorted(seen), "applied went backwards between queries"
    assert seen[-1] <= total
    assert q.stats().applied == total
    assert "map grown" in d.stderr(), "the test was meant to grow the maps"
    c.close()
    q.close()


def test_queries_during_reloads(zctx, daemon_factory, tmp_path):
    text = open(DEFAULT_YAML).read()
    assert "\nname: aida\n" in text, "default.yaml's name moved"
    path = tmp_path / "funnel.yaml"
    path.write_text(text.replace("\nname: aida\n", "\nname: v0\n"))
    d = daemon_factory(extra_args=["--definition", str(path)])
    c = IngestClient(zctx, d.ingest_ep)
    for b in range(5):
        evs = [make_event(uid("rl"), t) for t in ("page_view", "form_submit", "demo_request")]
        assert c.publish(evs).accepted == len(evs)

    answered, errors = [0], []
    done = threading.Event()

    def query_loop():
        # funnel and stats read the definition (stage names, its name).
        q = QueryClient(zctx, d.query_ep)
        try:
            while not done.is_set():
                f = q.funnel()
                if not f.stages:
                    errors.append("a funnel reply without stages")
                    return
                if not q.stats().definition.startswith("v"):
                    errors.append("a stats reply with another definition")
                    return
                answered[0] += 1
        except Exception as e:  # noqa: BLE001 - reported to the main thread
            errors.append(repr(e))
        finally:
            q.close()

    t = threading.Thread(target=query_loop)
    t.start()
    q = QueryClient(zctx, d.query_ep)
    try:
        for i in range(1, 21):
            path.write_text(text.replace("\nname: aida\n", "\nname: v%d\n" % i))
            d.send_signal(signal.SIGHUP)
            wait_until(lambda: q.stats().definition.startswith("v%d " % i), 10,
                       what="definition v%d in use" % i)
    finally:
        done.set()
        t.join(30)
    assert not t.is_alive(), "the query client hangs"
    assert not errors, errors
    assert answered[0] > 0
    assert d.running()
    c.close()
    q.close()
