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
    # The cluster's partition count, not a sum; each partition's applied
    # sequence as its owner reports it.
    assert st["partitions"] == P, st
    owners = {"qa": qa.stats(), "qb": qb.stats()}
    assert all(o.partitions == P for o in owners.values())
    want = [0] * P
    for o in owners.values():
        for p in o.owned_partitions:
            want[p] = o.partition_applied_seq[p]
    assert st["partition_applied_seq"] == want and max(want) > 0, (st, want)
    text = solo.ctl(*(cluster + ["stats"])).stdout.decode()
    line = "partitions       %d, applied up to seq %s\n" % (P, ", ".join(map(str, want)))
    assert line in text, text

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


def test_conversion_alert_judged_once_on_the_merged_counters(daemon_factory, nats_server, zctx,
                                                             tmp_path):
    """A stage below its conversion target only on the cluster's merged
    counters (each instance alone has fewer entries than min_sample) is
    alerted once, by the owner of partition 0, on NATS and on its PUB; the
    other instance raises nothing."""
    import os
    import funnel_pb2 as pb
    from conftest import AlertSubscriber, IngestClient, now_ms
    from natsutil import NatsClient
    src = os.environ.get("FUNNELD_SOURCE_DIR",
                         os.path.join(os.path.dirname(__file__), "..", ".."))
    text = open(os.path.join(src, "handlers", "default.yaml")).read()
    old = "- {name: interest,  max_dwell: 14d}"
    assert old in text and "min_sample: 20" in text
    text = text.replace(old, "- {name: interest, max_dwell: 14d, conversion_target: 0.5}")
    text = text.replace("min_sample: 20", "min_sample: 10")
    defn = tmp_path / "conv.yaml"
    defn.write_text(text)
    lease = ["--lease-ms", "3000", "--definition", str(defn)]
    ds = {n: daemon_factory(extra_args=nats_args(nats_server, "--instance", n, *lease),
                            state_dir=tmp_path / n) for n in ("ca", "cb")}
    qs = {n: QueryClient(zctx, d.query_ep) for n, d in ds.items()}

    def spread():
        o = {n: set(q.stats().owned_partitions) for n, q in qs.items()}
        return o if all(len(v) == 2 for v in o.values()) and not o["ca"] & o["cb"] else None
    o = wait_until(spread, TAKEOVER_WAIT, what="two partitions each")
    judge = "ca" if 0 in o["ca"] else "cb"
    other = "cb" if judge == "ca" else "ca"
    subs = {}
    for n, d in ds.items():
        subs[n] = AlertSubscriber(zctx, d.alerts_ep, ["friction.conversion"])
        ing = IngestClient(zctx, d.ingest_ep)
        subs[n].sync(ing)
        ing.close()
    nc = NatsClient(nats_server.port)
    nc.subscribe("funnel.alerts.friction.>")
    nc.sync()

    # Three leads of each partition enter interest and none moves on: six
    # per instance (below min_sample), twelve in the cluster, 0% < 50%.
    leads, i = {p: [] for p in range(P)}, 0
    while any(len(v) < 3 for v in leads.values()):
        lead = "cv-L%d" % i
        i += 1
        if len(leads[partition_of(lead, P)]) < 3:
            leads[partition_of(lead, P)].append(lead)
    lines = [json.dumps({"id": "cv-%s" % lead, "lead": lead, "source": "marketing",
                         "type": "form_submit", "at": now_ms()})
             for v in leads.values() for lead in v]
    publish_nats(ds["ca"], nats_server, ("\n".join(lines) + "\n").encode())
    every = [lead for v in leads.values() for lead in v]
    wait_until(lambda: all(any(q.lead(lead) is not None for q in qs.values())
                           for lead in every), TAKEOVER_WAIT, what="the twelve leads applied")

    subject, payload = nc.next_msg(TAKEOVER_WAIT) or (None, None)
    assert subject == "funnel.alerts.friction.conversion", subject
    al = pb.Alert()
    al.ParseFromString(payload)
    assert al.kind == "conversion" and al.stage == "interest" and al.lead_id == "", al
    assert any("of 12 entries" in r for r in al.reasons), al.reasons
    assert any("judged once for the cluster by instance %s" % judge in r
               for r in al.reasons), al.reasons
    topic, got = subs[judge].await_alert(lambda t, a: a.kind == "conversion",
                                         what="the conversion alert on the judge's PUB")
    assert topic == "friction.conversion" and got.reasons == al.reasons
    # Three more rounds judged on the same figures: nothing more, anywhere.
    base = qs[judge].stats().cluster_checks
    assert base > 0
    wait_until(lambda: qs[judge].stats().cluster_checks >= base + 3, TAKEOVER_WAIT,
               what="three more rounds of the cluster's check")
    assert nc.next_msg(0.5) is None
    assert subs[other].recv(0.5) is None and subs[judge].recv(0.5) is None
    assert qs[other].stats().cluster_checks == 0
    for s in subs.values():
        s.close()
    for q in qs.values():
        q.close()
    nc.close()
