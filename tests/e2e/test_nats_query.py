"""Queries across the instances of a cluster over NATS (funnel.query.<p>,
funnel.query.all): funnelctl --nats gathers every live instance's raw
counters and the report code computes the merged reports from them, which
must equal those of one funneld fed the same events."""

import json

from conftest import QueryClient, wait_until
from natsutil import nats_server, partition_of  # noqa: F401 (fixture)
from test_nats import P, TAKEOVER_WAIT, nats_args, ndjson, publish_nats

GATHER = ["--timeout", "30"]


def doc(r):
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout.decode())


def test_merged_reports_of_two_instances_equal_one_instances(daemon_factory, nats_server,
                                                             zctx, tmp_path):
    lease = ["--lease-ms", "3000"]
    a = daemon_factory(extra_args=nats_args(nats_server, "--instance", "qa", *lease),
                       state_dir=tmp_path / "a")
    b = daemon_factory(extra_args=nats_args(nats_server, "--instance", "qb", *lease),
                       state_dir=tmp_path / "b")
    solo = daemon_factory(state_dir=tmp_path / "solo")
    qa, qb = QueryClient(zctx, a.query_ep), QueryClient(zctx, b.query_ep)

    def spread():
        oa, ob = set(qa.stats().owned_partitions), set(qb.stats().owned_partitions)
        return (oa, ob) if len(oa) == 2 and len(ob) == 2 and not oa & ob else None
    oa, ob = wait_until(spread, TAKEOVER_WAIT, what="two partitions each")

    data = ndjson(60, 6, "m")
    publish_nats(a, nats_server, data)
    r = solo.ctl("publish", "-", input=data)
    assert r.returncode == 0, r.stderr.decode()
    wait_until(lambda: qa.stats().applied + qb.stats().applied == 360, TAKEOVER_WAIT,
               what="360 events applied between a and b")
    sa, sb = qa.stats(), qb.stats()
    assert 0 < sa.leads < 60 and sa.leads + sb.leads == 60, (sa.leads, sb.leads)

    cluster = ["--nats", nats_server.url, "--cluster-partitions", str(P)] + GATHER
    for args in (["funnel"], ["funnel", "--by", "source"], ["friction"],
                 ["friction", "--by", "source"], ["quality"]):
        merged = doc(solo.ctl(*(cluster + args), json_out=True))
        one = doc(solo.ctl(*args, json_out=True))
        merged.pop("as_of_ms", None)
        one.pop("as_of_ms", None)
        assert merged == one, (args, merged, one)
        # Each instance alone has only part of it.
        part = doc(a.ctl(*args, json_out=True))
        part.pop("as_of_ms", None)
        assert part != one, args

    st = doc(solo.ctl(*(cluster + ["stats"]), json_out=True))
    assert st["applied"] == 360 and st["leads"] == 60, st
    assert sorted(st["owned_partitions"]) == list(range(P)), st
    assert "2 instances answered" in st["nats"] and "qa" in st["nats"] and "qb" in st["nats"]

    # A lead is asked of its partition's owner, whichever that is.
    for i in (0, 1, 2, 3, 7):
        lead = "m-L%d" % i
        got = doc(solo.ctl(*(cluster + ["lead", lead]), json_out=True))
        want = doc(solo.ctl("lead", lead, json_out=True))
        assert got["lead"] == want["lead"] == lead
        assert got["stage"] == want["stage"] and len(got["timeline"]) == len(want["timeline"])
    r = solo.ctl(*(cluster + ["lead", "m-L999"]))
    assert r.returncode == 1 and b"unknown lead m-L999" in r.stderr, r.stderr

    # One instance gone (SIGKILL: its presence key stays until the lease
    # lapses): the gather names it and says which partitions are missing.
    b.stop(9)
    r = solo.ctl("--nats", nats_server.url, "--timeout", "2", "--json", "funnel")
    err = r.stderr.decode()
    assert "instance qb did not answer" in err, err
    assert "owns partition(s) %s" % ",".join(str(p) for p in sorted(ob)) in err, err
    qa.close()
    qb.close()
