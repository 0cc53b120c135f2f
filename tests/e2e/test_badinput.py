"""Bad input is refused with a reason and never stops the daemon."""

import random

from conftest import (MARKETING, SALES, make_batch, make_event, now_ms, pb, uid)


def _good_roundtrip(ingest, query):
    lead = uid("alive")
    ack = ingest.publish([make_event(lead, "page_view")])
    assert (ack.accepted, ack.error) == (1, "")
    assert query.lead(lead) is not None
    return lead


def test_undecodable_message_gets_an_error_ack(ingest, query, daemon):
    st0 = query.stats()
    rnd = random.Random(7)
    # bytes that cannot be an EventBatch: field 1 (events) length-delimited
    # with a length far beyond the message, then random noise
    junk = b"\x0a\xff\xff\xff\x0f" + bytes(rnd.randrange(256) for _ in range(64))
    check = pb.EventBatch()
    try:
        check.ParseFromString(junk)
        raise AssertionError("test bug: junk decodes")
    except Exception as e:  # google.protobuf.message.DecodeError
        assert "AssertionError" not in type(e).__name__
    ingest.send_raw(junk)
    ack = ingest.recv_ack()
    assert ack is not None, "no Ack for an undecodable message"
    assert ack.error != "", ack
    assert ack.accepted == 0 and ack.duplicates == 0

    # an empty message is a valid, empty EventBatch or refused: either way
    # an Ack comes back and nothing is applied
    ingest.send_raw(b"")
    ack = ingest.recv_ack()
    assert ack is not None, "no Ack for an empty message"
    assert ack.accepted == 0

    _good_roundtrip(ingest, query)
    st = query.stats()
    assert st.applied - st0.applied == 1
    assert st.rejected - st0.rejected >= 1   # the undecodable message
    assert daemon.running()


def test_invalid_events_are_rejected_with_reasons(ingest, query, daemon):
    st0 = query.stats()
    ok1 = make_event(uid("v"), "page_view")
    no_lead = make_event(None, "page_view", event_id=uid("nolead"))
    src0 = make_event(uid("v"), "page_view", source=pb.SOURCE_UNSPECIFIED,
                      event_id=uid("src0"))
    src7 = make_event(uid("v"), "page_view", event_id=uid("src7"))
    src7.source = 7                          # out of the enum's range
    no_type = make_event(uid("v"), "", event_id=uid("notype"))
    no_id = make_event(uid("v"), "page_view", event_id="")
    long_lead = make_event("x" * 129, "page_view", event_id=uid("longlead"))
    ok2 = make_event(uid("v"), "form_submit", source=SALES)
    evs = [ok1, no_lead, src0, src7, no_type, no_id, long_lead, ok2]
    ack = ingest.publish(evs, batch_id="mixed")
    assert ack.error == ""
    assert ack.accepted == 2
    assert ack.duplicates == 0
    rej = {r.index: r for r in ack.rejections}
    assert sorted(rej) == [1, 2, 3, 4, 5, 6], list(ack.rejections)
    assert "lead" in rej[1].reason, rej[1].reason
    assert rej[1].event_id == no_lead.id
    assert "source" in rej[2].reason, rej[2].reason
    assert rej[2].event_id == src0.id
    assert "source" in rej[3].reason, rej[3].reason
    assert rej[3].event_id == src7.id
    assert "type" in rej[4].reason, rej[4].reason
    assert "id" in rej[5].reason, rej[5].reason
    assert "lead" in rej[6].reason, rej[6].reason
    assert ack.accepted + ack.duplicates + len(ack.rejections) == len(evs)

    # rejected events are not stored; their leads do not exist
    for e in (src0, src7, no_type, no_id):
        assert query.lead(e.lead_id) is None, e.lead_id
    assert query.lead(ok1.lead_id).stage == "awareness"
    assert query.lead(ok2.lead_id).stage == "interest"
    assert query.lead(ok2.lead_id).first_source == SALES

    # a rejected id was not recorded: the corrected event is accepted
    fixed = make_event(uid("v"), "page_view", source=MARKETING, event_id=src0.id)
    ack = ingest.publish([fixed])
    assert (ack.accepted, ack.duplicates) == (1, 0)

    # a batch of nothing but bad events
    ack = ingest.publish([make_event(None, "page_view"), make_event(None, "page_view")])
    assert ack.accepted == 0 and [r.index for r in ack.rejections] == [0, 1]

    _good_roundtrip(ingest, query)
    st = query.stats()
    assert st.rejected - st0.rejected == 6 + 2
    assert st.applied - st0.applied == 2 + 1 + 1
    assert st.received - st0.received == len(evs) + 1 + 2 + 1
    assert daemon.running()


def test_query_with_a_req_socket(zctx, daemon):
    """SPEC section 3: query clients may be DEALER or REQ."""
    import zmq
    s = zctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(daemon.query_ep)
    req = pb.QueryRequest(request_id="req-1")
    req.stats.SetInParent()
    s.send(req.SerializeToString())
    assert s.poll(10_000), "no reply to a REQ client"
    rep = pb.QueryReply()
    rep.ParseFromString(s.recv())
    assert rep.request_id == "req-1" and rep.WhichOneof("reply") == "stats"
    s.close(0)


def test_query_errors_do_not_stop_it(zctx, daemon, query):
    # undecodable query: an error reply (or at least no crash)
    query.sock.send(b"\x0a\xff\xff\xff\x0f\x00")
    if query.sock.poll(5000):
        rep = pb.QueryReply()
        rep.ParseFromString(query.sock.recv())
        assert rep.error != ""
    # a request with no query set
    req = pb.QueryRequest(request_id="empty")
    rep = query.request(req)
    assert rep.error != "", rep
    # an unknown lead is found=false, not an error
    r = query.lead_reply(uid("nobody"))
    assert not r.found
    assert query.stats() is not None
    assert daemon.running()


def test_absurd_values_are_rejected(ingest, query, daemon):
    day = 86_400_000
    past = make_event(uid("t"), "page_view", at_ms=1_000)             # 1970
    future = make_event(uid("t"), "page_view", at_ms=now_ms() + 3 * day)
    nan = make_event(uid("t"), "page_view", value=float("nan"))
    bad_utf8 = make_event(uid("t"), "page_view")
    zero_time = make_event(uid("t"), "page_view", at_ms=0)           # 0 = "now"
    ack = ingest.publish([past, future, nan, zero_time])
    rej = {r.index: r.reason for r in ack.rejections}
    assert sorted(rej) == [0, 1, 2], list(ack.rejections)
    assert "occurred_at" in rej[0] and "occurred_at" in rej[1], rej
    assert "value" in rej[2], rej
    assert ack.accepted == 1
    l = query.lead(zero_time.lead_id)
    assert l is not None and abs(l.first_seen_ms - now_ms()) < 60_000, l
    for e in (past, future, nan):
        assert query.lead(e.lead_id) is None
    # a string field that is not UTF-8 cannot be built with Google's
    # protobuf (it checks); patch the bytes of an encoded event instead
    raw = make_batch([bad_utf8]).SerializeToString()
    lead_bytes = bad_utf8.lead_id.encode()
    raw = raw.replace(lead_bytes, b"\xff" + lead_bytes[1:])
    ingest.send_raw(raw)
    ack = ingest.recv_ack()
    assert ack is not None
    assert ack.accepted == 0
    assert ack.error != "" or [r.index for r in ack.rejections] == [0], ack
    assert daemon.running()
