"""Config file settings that matter for safety: a tiny LMDB map must grow
(STYLE rule 17: "tiny mapsize -> map grows, nothing lost"), and an
oversized batch is refused whole."""

import signal

from conftest import IngestClient, QueryClient, funnel_dict, make_batch, make_event, now_ms


def test_tiny_map_grows_and_loses_nothing(zctx, daemon_factory, tmp_path):
    cfg = tmp_path / "funneld.yaml"
    cfg.write_text("map_size_mb: 1\nmax_batch_events: 500\n")
    d = daemon_factory(extra_args=["--config", str(cfg)])
    c = IngestClient(zctx, d.ingest_ep)
    q = QueryClient(zctx, d.query_ep)

    n_batches, per, n_leads = 40, 500, 2000
    t0 = now_ms() - 3_600_000
    pad = "x" * 120
    for b in range(n_batches):
        evs = [make_event("m-%04d" % ((b * per + i) % n_leads),
                          ["page_view", "email_open", "form_submit"][i % 3],
                          event_id="m-%d-%d" % (b, i), at_ms=t0 + b * per + i,
                          attrs={"note": "%s-%d-%d" % (pad, b, i), "country": "DE",
                                 "company": pad})
               for i in range(per)]
        c.send(make_batch(evs, batch_id="m-%d" % b))
    acks = {}
    for _ in range(n_batches):
        ack = c.recv_ack(60)
        assert ack is not None, "only %d of %d Acks\n%s" % (len(acks), n_batches, d.stderr())
        assert ack.error == "" and not ack.rejections, ack
        acks[ack.batch_id] = ack
    assert len(acks) == n_batches
    assert sum(a.accepted for a in acks.values()) == n_batches * per

    st = q.stats()
    assert st.applied == n_batches * per
    assert st.leads == n_leads
    l = q.lead("m-0042")
    assert l.events == n_batches * per // n_leads
    assert l.attrs["company"] == pad
    before = funnel_dict(q.funnel())
    # the data no longer fits the initial 1 MiB map of either environment
    sizes = [f.stat().st_size for f in (tmp_path / "state").rglob("*.mdb")]
    assert sizes and max(sizes) > 1 << 20, sizes

    # a batch over max_batch_events is refused whole
    big = make_batch([make_event("big-%d" % i, "page_view") for i in range(501)], "big")
    c.send(big)
    ack = c.recv_ack(10)
    assert ack is not None, "no Ack for an oversized batch"
    assert ack.error != "" and ack.accepted == 0 and ack.duplicates == 0, ack
    assert q.lead("big-0") is None
    st2 = q.stats()
    assert st2.applied == st.applied
    assert st2.rejected > st.rejected

    d.stop_ok(signal.SIGTERM)
    d.start(zctx)
    assert funnel_dict(q.funnel()) == before
    assert q.stats().applied == n_batches * per
    assert q.lead("m-1999").events == n_batches * per // n_leads
    c.close()
    q.close()
