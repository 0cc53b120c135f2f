"""funneld on a 3-node JetStream cluster (an R3 stream) with one
nats-server killed mid-stream: every message JetStream acknowledged to the
publisher reaches funneld's state; nothing acknowledged is lost."""

import signal

import pytest

from conftest import QueryClient, make_batch, make_event, wait_until
from natsutil import NatsCluster, NatsError, partition_of

P = 4
WAIT = 120.0


@pytest.fixture
def nats_cluster(tmp_path):
    c = NatsCluster(tmp_path / "nats").start()
    yield c
    c.stop()


def test_r3_stream_loses_nothing_acknowledged_when_a_server_dies(daemon_factory, nats_cluster,
                                                                 zctx):
    d = daemon_factory(extra_args=["--nats", nats_cluster.urls, "--cluster-partitions", str(P),
                                   "--owns", "0-%d" % (P - 1), "--stream-replicas", "3"])
    q = QueryClient(zctx, d.query_ep)
    c = nats_cluster.servers[0].client()
    info = wait_until(lambda: (lambda i: i if i.get("config") and
                               (i.get("cluster") or {}).get("leader") else None)(
                                   c.js_api("STREAM.INFO.FUNNEL")), WAIT,
                      what="the R3 stream and its leader")
    assert info["config"]["num_replicas"] == 3, info
    # Killed mid-stream: the stream's leader, unless that is the server the
    # publisher talks to (then another one), so that a new leader is
    # elected while messages keep coming.
    leader = info["cluster"]["leader"]
    victim = nats_cluster.by_name(leader) if leader != "n0" else nats_cluster.servers[1]
    if victim is nats_cluster.servers[0]:
        victim = nats_cluster.servers[1]

    acked, refused = {}, 0
    n_msgs, per_msg = 120, 5
    for m in range(n_msgs):
        if m == n_msgs // 3:
            victim.stop(signal.SIGKILL)
        lead = "r3-L%d" % m
        p = partition_of(lead, P)
        events = [make_event(lead, "page_view", event_id="r3-%d-%d" % (m, k))
                  for k in range(per_msg)]
        try:
            c.js_publish("funnel.in.%d" % p, make_batch(events).SerializeToString(),
                         timeout=2.0)
            acked[lead] = per_msg
        except (NatsError, OSError, ValueError):
            refused += 1  # not acknowledged: the publisher would send it again
            c.close()
            c = nats_cluster.servers[0].client()
    assert len(acked) >= n_msgs // 2, (len(acked), refused)
    want = sum(acked.values())

    def applied():
        st = q.stats()
        return st if st.applied >= want else None
    st = wait_until(applied, WAIT, what="the %d acknowledged events applied" % want)
    for lead in acked:
        assert q.lead(lead) is not None, lead
    assert st.rejected == 0, st
    assert "connected to" in st.nats, st.nats
    c.close()
    q.close()
