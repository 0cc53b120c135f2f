"""Alerts of events replayed from the log at start-up are published again
(README "Guarantees": at most once per commit, after it; a replay
re-publishes)."""

import os
import shutil
import time

import pytest
import zmq

from conftest import IngestClient, make_event, now_ms, pb


def test_replayed_events_publish_their_alerts_again(zctx, daemon_factory):
    d = daemon_factory()
    c = IngestClient(zctx, d.ingest_ep)
    n_batches, per = 8, 5000
    t0 = now_ms() - 3_600_000
    ids = []
    for b in range(n_batches):
        evs = [make_event("rp-%d-%d" % (b, i), "page_view", event_id="rp-%d-%d" % (b, i),
                          at_ms=t0 + b * per + i) for i in range(per)]
        ids += [e.id for e in evs]
        # 5,000 new leads a batch: a minute's bound for a sanitizer build
        # on a loaded machine (ThreadSanitizer took over 7 s a batch)
        assert c.publish(evs, batch_id="rp-%d" % b, timeout=60).accepted == per
    c.close()
    d.stop_ok()
    n = len(ids)

    # Lose the derived state: at start-up funneld replays the whole log.
    shutil.rmtree(os.path.join(d.state_dir, "state"))
    sub = zctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.RECONNECT_IVL, 5)
    sub.setsockopt(zmq.SUBSCRIBE, b"stage")
    sub.connect(d.alerts_ep)            # before funneld binds: no slow joiner
    d.start(zctx)
    assert "replaying events 1..%d" % n in d.stderr(), d.stderr()

    seen = {}
    deadline = time.monotonic() + 90
    while ids[-1] not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not sub.poll(int(left * 1000) + 1):
            pytest.fail("no alert for the last replayed event (seq %d); %d alerts "
                        "received" % (n, len(seen)))
        topic, body = sub.recv_multipart()
        a = pb.Alert()
        a.ParseFromString(body)
        assert topic == b"stage" and a.kind == "stage"
        assert 1 <= a.seq <= n, a.seq
        # the alert names the logged event at its sequence
        assert a.event_id == ids[a.seq - 1], (a.seq, a.event_id)
        assert a.event_id not in seen, "alert for %s published twice" % a.event_id
        seen[a.event_id] = a.seq
    assert len(seen) >= per          # at least the last chunk, in full
    sub.close(0)
