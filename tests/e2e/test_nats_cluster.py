"""Cluster mode at scale: funneld on a 3-node JetStream cluster (an R3
stream) with one nats-server killed mid-stream, where every message
JetStream acknowledged to the publisher reaches funneld's state; and
three funneld instances sharing 12 partitions by leases, one killed and
one joining."""

import concurrent.futures
import json
import os
import signal

import pytest

from conftest import QueryClient, make_batch, make_event, wait_until
from natsutil import NatsCluster, NatsError, nats_server, partition_of  # noqa: F401

P = 4
WAIT = 120.0
# The 3-instance test's size: 300,000 events in the plain build, 30,000
# under ASan/TSan (FUNNELD_SANITIZER, tests/CMakeLists.txt), whose slower
# daemons the CI's time budget could not carry through ten times as many.
SANITIZER = os.environ.get("FUNNELD_SANITIZER", "")
LEADS_PER_HALF = 1500 if SANITIZER else 15000
BIG_WAIT = 900.0


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

    def stream_led():
        # A cluster still electing its meta leader may not answer a request
        # in time: asked again, within WAIT.
        nonlocal c
        try:
            i = c.js_api("STREAM.INFO.FUNNEL")
        except (OSError, NatsError):
            c.close()
            c = nats_cluster.servers[0].client()
            return None
        return i if i.get("config") and (i.get("cluster") or {}).get("leader") else None
    info = wait_until(stream_led, WAIT, what="the R3 stream and its leader")
    assert info["config"]["num_replicas"] == 3, info
    # Killed mid-stream: the stream's leader, unless that is the server the
    # publisher talks to (then another one), so that a new leader is
    # elected while messages keep coming.
    leader = info["cluster"]["leader"]
    victim = nats_cluster.by_name(leader) if leader != "n0" else nats_cluster.servers[1]
    if victim is nats_cluster.servers[0]:
        victim = nats_cluster.servers[1]

    # The publisher sends each message until JetStream acknowledges it (a
    # request without an answer while a new leader is elected is sent
    # again: the events' ids make a stored copy harmless).
    import time
    acked, resent = {}, 0
    n_msgs, per_msg = 60, 5
    for m in range(n_msgs):
        if m == n_msgs // 3:
            victim.stop(signal.SIGKILL)
        lead = "r3-L%d" % m
        p = partition_of(lead, P)
        events = [make_event(lead, "page_view", event_id="r3-%d-%d" % (m, k))
                  for k in range(per_msg)]
        payload = make_batch(events).SerializeToString()
        deadline = time.monotonic() + WAIT
        while True:
            try:
                c.js_publish("funnel.in.%d" % p, payload, timeout=5.0)
                acked[lead] = per_msg
                break
            except (NatsError, OSError, ValueError):
                resent += 1
                assert time.monotonic() < deadline, "message %d never acknowledged" % m
                c.close()
                c = nats_cluster.servers[0].client()
    assert len(acked) == n_msgs
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


def test_three_instances_one_killed_mid_stream_one_joining(daemon_factory, nats_server, zctx,
                                                           tmp_path):
    """3 instances, 12 partitions by leases; one SIGKILL'd while events
    come: the survivors take its partitions over and replay them, and the
    merged funnel equals one funneld's fed the same events; then one
    joins and takes its share, and the merged funnel is still one
    funneld's (a partition moved is counted by its new owner only).
    300,000 events of 30,000 leads in the plain build, 30,000 of 3,000
    under the sanitizers (LEADS_PER_HALF); the single funneld is fed
    while the cluster is, and the NATS publisher sends batches of 1,000."""
    from test_nats import ndjson
    np_ = 12
    lease = ["--lease-ms", "3000"]

    def args(name):
        return ["--nats", nats_server.url, "--cluster-partitions", str(np_), "--instance",
                name] + lease
    ds = {n: daemon_factory(extra_args=args(n), state_dir=tmp_path / n) for n in "abc"}
    qs = {n: QueryClient(zctx, d.query_ep) for n, d in ds.items()}
    solo = daemon_factory(state_dir=tmp_path / "solo")

    def owned(names):
        return {n: set(qs[n].stats().owned_partitions) for n in names}

    def spread(names, each):
        o = owned(names)
        if all(len(v) == each for v in o.values()) and \
                sorted(p for v in o.values() for p in v) == list(range(np_)):
            return o
        return None
    wait_until(lambda: spread("abc", 4), WAIT, what="four partitions each")

    nl = LEADS_PER_HALF
    first, second = ndjson(nl, 10, "x1"), ndjson(nl, 10, "x2")
    n = 2 * nl * 10
    # The single funneld takes both halves while the cluster takes them.
    pool = concurrent.futures.ThreadPoolExecutor(1)
    fed = pool.submit(solo.ctl, "publish", "--batch", "1000", "-", input=first + second,
                      timeout=BIG_WAIT)
    pub = ["publish", "--nats", nats_server.url, "--cluster-partitions", str(np_), "--batch",
           "1000", "-"]
    r = ds["a"].ctl(*pub, input=first, timeout=BIG_WAIT)
    assert r.returncode == 0, r.stderr.decode()
    ds["c"].stop(signal.SIGKILL)  # mid-stream: half of the events are in
    r = ds["a"].ctl(*pub, input=second, timeout=BIG_WAIT)
    assert r.returncode == 0, r.stderr.decode()
    r = fed.result()
    pool.shutdown()
    assert r.returncode == 0, r.stderr.decode()

    o = wait_until(lambda: spread("ab", 6), WAIT, what="a and b take c's partitions over")
    wait_until(lambda: qs["a"].stats().applied + qs["b"].stats().applied == n, BIG_WAIT,
               what="every event applied by a or b")
    sa, sb = qs["a"].stats(), qs["b"].stats()
    # No event applied twice, every lead in exactly one instance: its owner's.
    assert sa.applied + sb.applied == n and sa.leads + sb.leads == 2 * nl, (sa, sb)
    for i in range(0, nl, nl // 15):
        for pre in ("x1", "x2"):
            lead = "%s-L%d" % (pre, i)
            on = [m for m in "ab" if qs[m].lead(lead) is not None]
            assert on == [m for m in "ab" if partition_of(lead, np_) in o[m]], lead
    cluster = ["--nats", nats_server.url, "--timeout", "30"]
    merged = json.loads(solo.ctl(*(cluster + ["funnel"]), json_out=True).stdout)
    one = json.loads(solo.ctl("funnel", json_out=True).stdout)
    assert merged == one, (merged, one)

    # One joins: it takes its share (12 / 3), replayed from the stream.
    ds["d"] = daemon_factory(extra_args=args("d"), state_dir=tmp_path / "d")
    qs["d"] = QueryClient(zctx, ds["d"].query_ep)
    o = wait_until(lambda: spread("abd", 4), WAIT, what="the joiner's share")
    mine = [p for p in o["d"]]
    want = sum(1 for pre in ("x1", "x2") for i in range(nl)
               if partition_of("%s-L%d" % (pre, i), np_) in mine)
    st = wait_until(lambda: (lambda s: s if s.leads == want and s.applied == want * 10
                             else None)(qs["d"].stats()), BIG_WAIT,
                    what="the joiner's partitions replayed")
    assert st.applied == want * 10 and st.duplicates == 0, st
    # The partitions a and b gave d are no longer counted there: every
    # lead is counted once, by its owner, and the merged figures after the
    # move are still one funneld's.
    sa, sb = qs["a"].stats(), qs["b"].stats()
    assert sa.leads + sb.leads + st.leads == 2 * nl, (sa.leads, sb.leads, st.leads)
    assert sa.applied + sb.applied + st.applied == n, (sa.applied, sb.applied, st.applied)
    for i in range(0, nl, nl // 15):
        lead = "x1-L%d" % i
        on = [m for m in "abd" if qs[m].lead(lead) is not None]
        assert on == [m for m in "abd" if partition_of(lead, np_) in o[m]], lead
    merged = json.loads(solo.ctl(*(cluster + ["funnel"]), json_out=True).stdout)
    assert merged == one, (merged, one)
    for q in qs.values():
        q.close()
