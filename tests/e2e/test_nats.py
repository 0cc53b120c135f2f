"""Cluster input over NATS JetStream against a real nats-server (started
by each test on a loopback port in its temp dir): funneld creates the
stream, consumes its partitions through durable pull consumers into the
usual ingest path, acknowledges after its log commit, survives
redelivery, checks partitions, and rides out NATS being unreachable or
lost."""

import json
import signal
import subprocess

import pytest

from conftest import FUNNELD_BIN, REPLY_TIMEOUT, make_batch, make_event, now_ms, \
    funnel_dict, uid, wait_until
from natsutil import NatsServer, nats_server, partition_of  # noqa: F401 (fixture)

P = 4
WAIT = 30.0
TAKEOVER_WAIT = 120.0


def nats_args(server, *more):
    return ["--nats", server.url, "--cluster-partitions", str(P)] + list(more)


def ndjson(n_leads, per_lead, prefix):
    """n_leads * per_lead events, lines of funnelctl publish."""
    t = now_ms() - 3600 * 1000
    types = ["page_view", "form_submit", "demo_request", "meeting_booked"]
    out = []
    for i in range(n_leads):
        for k in range(per_lead):
            out.append(json.dumps({
                "id": "%s-%d-%d" % (prefix, i, k), "lead": "%s-L%d" % (prefix, i),
                "source": "marketing" if k % 2 == 0 else "sales",
                "type": types[k % len(types)], "at": t + i * 10 + k,
                "attrs": {"industry": "software"}}))
    return ("\n".join(out) + "\n").encode()


def wait_stream(server):
    """Until funneld made the stream (publishing before would fail)."""
    c = server.client()
    try:
        wait_until(lambda: c.js_api("STREAM.INFO.FUNNEL").get("config"), WAIT, what="stream")
    finally:
        c.close()


def publish_nats(daemon, server, data, partitions=P):
    wait_stream(server)
    r = daemon.ctl("publish", "--nats", server.url, "--cluster-partitions", str(partitions),
                   "-", input=data)
    assert r.returncode == 0, r.stderr.decode()
    return r


def stats_of(query):
    return query.stats()


def settled(query, received):
    """Stats once `received` events were taken in and every message
    received was acknowledged."""
    def check():
        st = query.stats()
        return st if (st.received >= received and st.nats_messages > 0 and
                      st.nats_acked == st.nats_messages) else None
    wait_until(check, WAIT, what="%d events received and acknowledged" % received)
    # One stats reply can be read between a group's commit and its apply:
    # the query waited for what was committed when it arrived. A query sent
    # after the acknowledgements were seen sees their events applied
    # (read-your-writes).
    return query.stats()


def test_events_over_jetstream_are_ingested_once_even_when_all_delivered_again(
        daemon_factory, nats_server, zctx, tmp_path):
    from conftest import QueryClient
    # Static ownership: the partitions' consumers are funneld-p<N>.
    d = daemon_factory(extra_args=nats_args(nats_server, "--owns", "0-%d" % (P - 1)))
    q = QueryClient(zctx, d.query_ep)
    st = q.stats()
    assert st.cluster_partitions == P and list(st.owned_partitions) == list(range(P))
    assert st.stream == "FUNNEL"
    data = ndjson(40, 5, "a")
    publish_nats(d, nats_server, data)
    st = settled(q, 200)
    assert (st.received, st.applied, st.duplicates, st.rejected) == (200, 200, 0, 0), st
    assert st.leads == 40
    # The publisher put every lead on its partition's subject.
    c = nats_server.client()
    info = c.js_api("STREAM.INFO.FUNNEL", {"subjects_filter": "funnel.in.*"})
    subjects = info["state"].get("subjects", {})
    expected = {}
    for i in range(40):
        p = partition_of("a-L%d" % i, P)
        expected["funnel.in.%d" % p] = expected.get("funnel.in.%d" % p, 0) + 1
    assert set(subjects) == set(expected), (subjects, expected)
    before = funnel_dict(q.funnel())
    last_seq = st.last_seq

    # SIGKILL, then every consumer deleted: on restart the consumers are
    # created again and JetStream delivers every message once more (what
    # a crash between the log commit and the acknowledgement does to the
    # messages in flight, here to all of them).
    d.stop(signal.SIGKILL)
    for p in range(P):
        r = c.js_api("CONSUMER.DELETE.FUNNEL.funneld-p%d" % p)
        assert r.get("success") is True, r
    d.start(zctx)
    q.close()
    q = QueryClient(zctx, d.query_ep)
    st = settled(q, 400)  # the counters are the state's, kept across starts
    assert (st.received, st.duplicates, st.applied) == (400, 200, 200), st
    assert st.nats_messages == 4  # this process's: every message again
    assert st.last_seq == last_seq and st.leads == 40
    assert funnel_dict(q.funnel()) == before
    c.close()
    q.close()


def test_wrong_partition_and_undecodable_messages_are_refused_and_acknowledged(
        daemon_factory, nats_server, zctx):
    from conftest import QueryClient
    d = daemon_factory(extra_args=nats_args(nats_server, "--owns", "0-%d" % (P - 1)))
    q = QueryClient(zctx, d.query_ep)
    wait_until(lambda: "connected" in q.stats().nats, WAIT, what="connected")
    c = nats_server.client()
    # The stream exists once funneld made it (or publishing would fail).
    wait_until(lambda: c.js_api("STREAM.INFO.FUNNEL").get("config"), WAIT, what="stream")
    lead_ok = next("p-%d" % i for i in range(100) if partition_of("p-%d" % i, P) == 1)
    lead_bad = next("p-%d" % i for i in range(100) if partition_of("p-%d" % i, P) == 2)
    batch = make_batch([make_event(lead_ok, "page_view"), make_event(lead_bad, "page_view")])
    c.js_publish("funnel.in.1", batch.SerializeToString())
    c.js_publish("funnel.in.1", b"\xff\xfe not protobuf")
    def done():
        st = q.stats()
        return st if st.nats_messages == 2 and st.nats_acked == 2 and st.received == 3 \
            else None
    wait_until(done, WAIT, what="both messages settled")
    st = q.stats()          # asked after the commit: its event is applied
    assert (st.applied, st.rejected) == (1, 2), st
    assert q.lead(lead_ok) is not None and q.lead(lead_bad) is None
    log = d.stderr()
    assert "belongs to partition 2 of 4, not 1" in log, log
    assert "undecodable EventBatch" in log
    c.close()
    q.close()


def test_owns_limits_the_partitions_consumed(daemon_factory, nats_server, zctx):
    from conftest import QueryClient
    d = daemon_factory(extra_args=nats_args(nats_server, "--owns", "0, 2"))
    q = QueryClient(zctx, d.query_ep)
    assert list(q.stats().owned_partitions) == [0, 2]
    data = ndjson(30, 2, "o")
    publish_nats(d, nats_server, data)
    mine = [i for i in range(30) if partition_of("o-L%d" % i, P) in (0, 2)]
    assert 0 < len(mine) < 30
    st = settled(q, 2 * len(mine))
    # The other partitions stay in the stream for their owners.
    assert st.received == 2 * len(mine) and st.leads == len(mine), st
    r = d.ctl("stats")
    assert "partitions       2 of 4: 0,2" in r.stdout.decode(), r.stdout
    q.close()


def test_nats_unreachable_at_start_then_lost_funneld_answers_and_resumes(
        daemon_factory, zctx, tmp_path):
    from conftest import QueryClient, IngestClient
    server = NatsServer(tmp_path / "nats")  # not started yet
    d = daemon_factory(extra_args=nats_args(server))
    q = QueryClient(zctx, d.query_ep)
    assert q.stats().nats.startswith("connecting to "), q.stats().nats
    assert "cannot reach %s" % server.url in d.stderr()
    # The ZeroMQ ingest and queries work without NATS.
    ing = IngestClient(zctx, d.ingest_ep)
    ack = ing.publish([make_event("z-1", "page_view")])
    assert ack.accepted == 1
    assert q.lead("z-1") is not None

    server.start()
    wait_until(lambda: q.stats().nats.startswith("connected to"), WAIT, what="connected")
    wait_stream(server)
    publish_nats(d, server, ndjson(5, 2, "u"))
    settled(q, 11)

    server.stop()
    wait_until(lambda: q.stats().nats.startswith("disconnected"), WAIT, what="disconnected")
    assert q.lead("u-L1") is not None  # still answering
    assert "lost the connection to" in d.stderr()

    server.start()  # same port, same store: the stream and consumers are there
    wait_until(lambda: q.stats().nats.startswith("connected to"), WAIT, what="reconnected")
    publish_nats(d, server, ndjson(5, 2, "v"))
    st = wait_until(lambda: (lambda s: s if s.applied == 21 and s.nats_acked == s.nats_messages
                             else None)(q.stats()), WAIT, what="21 events applied")
    # Acknowledgements still buffered when the server went away bring their
    # messages again: counted as duplicates, never applied twice.
    assert st.received == st.applied + st.duplicates and st.leads == 11, st
    assert q.lead("v-L4") is not None
    ing.close()
    q.close()
    server.stop()


@pytest.mark.parametrize("args, message", [
    (["--nats", "nats://127.0.0.1:4222", "--owns", "0-40"],
     "owns: partition 40 is out of range: cluster_partitions is 32"),
    (["--nats", "nats://127.0.0.1:4222", "--owns", "3-1"], "owns: the range 3-1 is reversed"),
    (["--nats", "nats://127.0.0.1:4222", "--owns", "1,x"], "owns must be a list"),
    (["--nats", "nats://127.0.0.1:4222", "--owns", "1,1"], "partition 1 is listed twice"),
    (["--nats", "nats://127.0.0.1:4222", "--cluster-partitions", "0"],
     "cluster_partitions must be 1..1024"),
    (["--nats", "nats://127.0.0.1:4222", "--stream-replicas", "7"],
     "stream_replicas must be 1..5"),
    (["--nats", "nats://127.0.0.1:4222", "--stream", "a.b"], "stream must be 1..64 letters"),
    (["--nats", "http://127.0.0.1:4222"], "nats must be NATS server URLs"),
    (["--owns", "1"], "owns is set but nats is not"),
    (["--nats", "nats://127.0.0.1:4222", "--nats-credentials", "/nonexistent/x.creds"],
     "nats_credentials /nonexistent/x.creds: No such file"),
])
def test_bad_cluster_settings_are_refused_clearly(tmp_path, args, message):
    r = subprocess.run([FUNNELD_BIN, "--state-dir", str(tmp_path / "s")] + args,
                       capture_output=True, text=True, timeout=REPLY_TIMEOUT)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()  # nothing touched


def test_python_example_publishes_on_the_partitions_funneld_checks(
        daemon_factory, nats_server, zctx, tmp_path):
    import os
    import sys
    from conftest import QueryClient
    d = daemon_factory(extra_args=nats_args(nats_server))
    q = QueryClient(zctx, d.query_ep)
    wait_until(lambda: "connected" in q.stats().nats, WAIT, what="connected")
    c = nats_server.client()
    wait_until(lambda: c.js_api("STREAM.INFO.FUNNEL").get("config"), WAIT, what="stream")
    src = os.environ.get("FUNNELD_SOURCE_DIR", os.path.join(os.path.dirname(__file__),
                                                            "..", ".."))
    prog = os.path.join(src, "examples", "python", "nats_publish.py")
    r = subprocess.run([sys.executable, prog, "--nats", nats_server.url,
                        "--cluster-partitions", str(P), "-"], input=ndjson(12, 2, "py"),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    lines = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert sum(x["events"] for x in lines) == 24
    st = settled(q, 24)
    # Not one event on a wrong subject: the C and the Python rule agree.
    assert (st.applied, st.rejected, st.leads) == (24, 0, 12), st
    c.close()
    q.close()


def test_alerts_go_out_on_nats_subjects_too(daemon_factory, nats_server, zctx):
    from conftest import QueryClient, pb
    d = daemon_factory(extra_args=nats_args(nats_server))
    q = QueryClient(zctx, d.query_ep)
    wait_until(lambda: "connected" in q.stats().nats, WAIT, what="connected")
    sub = nats_server.client()
    sub.subscribe("funnel.alerts.>")
    sub.sync()
    publish_nats(d, nats_server, ndjson(1, 4, "al"))  # one lead, handed off
    seen = {}
    while "funnel.alerts.handoff" not in seen:
        m = sub.next_msg(WAIT)
        assert m is not None, "no handoff alert on NATS; got %s" % sorted(seen)
        a = pb.Alert()
        a.ParseFromString(m[1])
        seen[m[0]] = a
    assert seen["funnel.alerts.handoff"].lead_id == "al-L0"
    assert seen["funnel.alerts.handoff"].alert_seq > 0
    assert "funnel.alerts.stage" in seen
    st = wait_until(lambda: (lambda s: s if s.nats_alerts >= len(seen) else None)(q.stats()),
                    WAIT, what="nats_alerts counted")
    assert st.nats_alerts_failed == 0
    sub.close()
    q.close()


def test_funnelctl_watch_nats_prints_cluster_alerts(daemon_factory, nats_server, zctx):
    from conftest import QueryClient, FUNNELCTL_BIN
    import time
    d = daemon_factory(extra_args=nats_args(nats_server))
    q = QueryClient(zctx, d.query_ep)
    wait_until(lambda: "connected" in q.stats().nats, WAIT, what="connected")
    watch = subprocess.Popen([FUNNELCTL_BIN, "--json", "watch", "--nats", nats_server.url,
                              "--count", "1", "handoff"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    # Beat the subscription's start: a fresh qualifying lead each round
    # until watch has printed one handoff and exited.
    deadline = time.monotonic() + WAIT
    n = 0
    while watch.poll() is None:
        assert time.monotonic() < deadline, "watch --nats printed no handoff"
        publish_nats(d, nats_server, ndjson(1, 4, "w%d" % n))
        n += 1
        try:
            watch.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
    out, err = watch.communicate()
    assert watch.returncode == 0, err.decode()
    doc = json.loads(out.decode().splitlines()[0])
    assert doc["topic"] == "handoff" and doc["kind"] == "handoff", doc
    assert doc["lead"].startswith("w") and doc["lead"].endswith("-L0"), doc
    r = d.ctl("watch", "--nats", nats_server.url, "--since", "3")
    assert r.returncode == 2 and b"not with --since" in r.stderr, r.stderr
    q.close()


def test_leases_spread_partitions_and_a_survivor_takes_over_with_a_replay(
        daemon_factory, nats_server, zctx, tmp_path):
    from conftest import QueryClient
    lease = ["--lease-ms", "3000"]
    a = daemon_factory(extra_args=nats_args(nats_server, "--instance", "a", *lease),
                       state_dir=tmp_path / "a")
    qa = QueryClient(zctx, a.query_ep)
    wait_until(lambda: sorted(qa.stats().owned_partitions) == list(range(P)), TAKEOVER_WAIT,
               what="a alone claims every partition")
    b = daemon_factory(extra_args=nats_args(nats_server, "--instance", "b", *lease),
                       state_dir=tmp_path / "b")
    qb = QueryClient(zctx, b.query_ep)

    def spread():
        oa, ob = set(qa.stats().owned_partitions), set(qb.stats().owned_partitions)
        return (oa, ob) if len(oa) == 2 and len(ob) == 2 and not oa & ob else None
    oa, ob = wait_until(spread, TAKEOVER_WAIT, what="two partitions each")
    assert oa | ob == set(range(P))

    publish_nats(a, nats_server, ndjson(40, 5, "k"))
    def both():
        sa, sb = qa.stats(), qb.stats()
        return (sa, sb) if sa.applied + sb.applied == 200 else None
    sa, sb = wait_until(both, TAKEOVER_WAIT, what="200 events applied between a and b")
    # Each lead lives where its partition is owned, and only there.
    for i in range(40):
        lead = "k-L%d" % i
        on_a, on_b = qa.lead(lead) is not None, qb.lead(lead) is not None
        assert on_a != on_b and on_a == (partition_of(lead, P) in oa), lead
    assert sa.leads + sb.leads == 40

    b.stop(signal.SIGKILL)  # its leases lapse; a claims and replays them
    # Generous bounds: on a loaded machine the lease expiry, the claim and
    # the replay each take what they take; nothing here is timed.
    wait_until(lambda: sorted(qa.stats().owned_partitions) == list(range(P)), TAKEOVER_WAIT,
               what="a takes over b's partitions")
    # Waited for on the state's own counters: messages a once fetched for
    # a partition it then gave up were refused back to JetStream (Nak) and
    # are fetched again, so nats_messages may exceed nats_acked for good.
    st = wait_until(lambda: (lambda s: s if s.leads == 40 and s.applied == 200
                             else None)(qa.stats()), TAKEOVER_WAIT,
                    what="b's leads replayed into a")
    assert st.rejected == 0 and st.received == st.applied + st.duplicates, st
    for i in range(40):
        assert qa.lead("k-L%d" % i) is not None
    log = a.stderr()
    assert "replaying" in log and "claimed (lease" in log, log
    qa.close()
    qb.close()
