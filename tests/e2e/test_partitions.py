"""Partitions: the state applied behind the Acks, as stats report it."""

import json

import pytest

from conftest import IngestClient, QueryClient, make_batch, make_event, now_ms


def _publish(c, n, prefix):
    t0 = now_ms() - 3_600_000
    evs = [make_event("%s-%03d" % (prefix, i % 40), "page_view", event_id="%s-ev-%d" % (prefix, i),
                      at_ms=t0 + i * 1000) for i in range(n)]
    ack = c.publish(evs, batch_id=prefix)
    assert (ack.accepted, ack.error) == (n, "")


@pytest.mark.parametrize("partitions", [0, 1])
def test_stats_report_the_partitions_and_what_each_applied(zctx, daemon_factory, partitions):
    d = daemon_factory(extra_args=["--partitions", str(partitions)])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)
    _publish(c, 120, "pa")
    st = q.stats()
    # Read-your-writes: the stats query waited for the state to apply
    # what was acknowledged before it.
    assert st.partitions == partitions
    assert list(st.partition_applied_seq) == [st.last_seq] and st.last_seq >= 120, st
    r = d.ctl("stats", json_out=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["partitions"] == partitions
    assert out["partition_applied_seq"] == [st.last_seq]
    text = d.ctl("stats").stdout.decode()
    assert ("partitions       %d" % partitions) in text, text
    c.close()
    q.close()


def test_event_clock_applies_on_the_loop(zctx, daemon_factory):
    d = daemon_factory(extra_args=["--partitions", "1", "--clock", "event"])
    q = QueryClient(zctx, d.query_ep)
    assert q.stats().partitions == 0
    q.close()
