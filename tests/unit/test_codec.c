/* test_codec.c: a lead survives its trip through the stored encoding
 * (funnel.v1.Lead) unchanged, whatever the handlers put in it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "pipeline.h"

#define T0 1790000000000LL

static void apply(const defn_t *d, hnd_lead_t *lead, int n, const char *type,
                  int64_t at, hnd_source_t src, const hnd_kv_t *kv, size_t n_kv)
{
    char id[16];
    hnd_effects_t fx;
    snprintf(id, sizeof id, "e%d", n);
    hnd_event_t ev = {.id = id, .lead_id = "L-1", .type = type, .source = src,
                      .at_ms = at, .attrs = kv, .n_attrs = n_kv, .log_seq = (uint64_t)n + 1};
    assert_int_equal(pipeline_apply(pipeline_default, &ev, d, n == 0, lead, &fx), 0);
}

static void test_round_trip(void **state)
{
    defn_t *d = defn_load_default();
    hnd_lead_t *lead = calloc(1, sizeof *lead), *back = calloc(1, sizeof *back);
    hnd_kv_t kv[2] = {{"industry", "retail"}, {"role", "cto"}};

    apply(d, lead, 0, "page_view", T0, HND_SRC_MARKETING, kv, 2);
    apply(d, lead, 1, "demo_request", T0 + 1000, HND_SRC_SALES, NULL, 0);
    apply(d, lead, 2, "meeting_booked", T0 + 2000, HND_SRC_SALES, NULL, 0);
    apply(d, lead, 3, "form_submit", T0 + 3000, HND_SRC_MARKETING, NULL, 0);
    assert_true(lead->qualified);
    /* A rejection: friction totals tallied on the lead (a rejection with
     * its reason, the stay in decision, the regression to interest). */
    hnd_kv_t why = {"reason", "no budget"};
    apply(d, lead, 4, "handoff_rejected", T0 + 4000, HND_SRC_SALES, &why, 1);
    assert_true(lead->n_tally >= 3);
    assert_int_equal(lead->n_rtally, 1);

    const uint8_t *buf;
    size_t len = codec_lead_pack(lead, d, &buf);
    assert_true(len > 0);
    assert_int_equal(codec_lead_unpack(buf, len, d, back), 0);

    assert_string_equal(back->id, lead->id);
    assert_int_equal(back->stage, lead->stage);
    assert_int_equal(back->stage_entered_at_ms, lead->stage_entered_at_ms);
    assert_int_equal(back->first_seen_ms, lead->first_seen_ms);
    assert_int_equal(back->last_event_ms, lead->last_event_ms);
    assert_float_equal(back->engagement, lead->engagement, 0);
    assert_float_equal(back->fit, lead->fit, 0);
    assert_string_equal(back->persona, lead->persona);
    assert_int_equal(back->qualified, lead->qualified);
    assert_int_equal(back->handoff, lead->handoff);
    assert_int_equal(back->handoff_at_ms, lead->handoff_at_ms);
    assert_int_equal(back->events, lead->events);
    assert_int_equal(back->skipped, lead->skipped);
    assert_int_equal(back->n_attrs, lead->n_attrs);
    assert_string_equal(hnd_lead_attr(back, "role"), "cto");
    assert_int_equal(back->n_tally, lead->n_tally);
    assert_memory_equal(back->tally, lead->tally, lead->n_tally * sizeof lead->tally[0]);
    assert_int_equal(back->n_rtally, 1);
    assert_string_equal(back->rtally[0].reason, "no budget");

    /* Packing what came back gives the same bytes: nothing was lost. */
    const uint8_t *b;
    size_t len2 = codec_lead_pack(lead, d, &b);
    uint8_t *buf2 = malloc(len2);
    memcpy(buf2, b, len2);
    size_t len3 = codec_lead_pack(back, d, &b);
    assert_int_equal(len2, len3);
    assert_memory_equal(buf2, b, len2);
    free(buf2);

    /* Bytes that are not a Lead are refused. */
    assert_int_equal(codec_lead_unpack("\xff\xff\xff", 3, d, back), -1);
    free(lead);
    free(back);
    defn_destroy(&d);
}

/* Every fixed-size field of a lead filled to its limit, and the longest
 * stage names: the encoding stays within CODEC_LEAD_MAX, the buffer
 * codec_lead_pack() packs into without measuring. */
static void test_largest_lead_fits(void **state)
{
    defn_t *d = defn_load_default();
    hnd_lead_t *lead = calloc(1, sizeof *lead);
    memset(lead, 'x', sizeof *lead);
    lead->id[sizeof lead->id - 1] = '\0';
    lead->persona[sizeof lead->persona - 1] = '\0';
    /* Booleans and enums must hold valid values; everything else stays
     * at its largest. */
    lead->qualified = lead->stalled = lead->sla_breached = true;
    lead->handoff = HND_HANDOFF_REJECTED;
    lead->first_source = HND_SRC_SALES;
    lead->stage = 0;
    lead->skipped = UINT32_MAX;
    lead->n_attrs = HND_ATTRS_MAX;
    for (size_t i = 0; i < HND_ATTRS_MAX; i++) {
        lead->attrs[i].key[sizeof lead->attrs[i].key - 1] = '\0';
        lead->attrs[i].value[sizeof lead->attrs[i].value - 1] = '\0';
    }
    lead->n_ledger = HND_LEDGER_MAX;
    for (size_t i = 0; i < HND_LEDGER_MAX; i++) {
        lead->ledger[i].rule[sizeof lead->ledger[i].rule - 1] = '\0';
        lead->ledger[i].event_id[sizeof lead->ledger[i].event_id - 1] = '\0';
        lead->ledger[i].kind = HND_LEDGER_FIT;
    }
    lead->n_counts = HND_COUNTS_MAX;
    for (size_t i = 0; i < HND_COUNTS_MAX; i++)
        lead->counts[i].type[sizeof lead->counts[i].type - 1] = '\0';
    lead->n_handoffs = HND_HANDOFFS_MAX;
    for (size_t i = 0; i < HND_HANDOFFS_MAX; i++) {
        lead->handoffs[i].rule[sizeof lead->handoffs[i].rule - 1] = '\0';
        lead->handoffs[i].reason[sizeof lead->handoffs[i].reason - 1] = '\0';
        lead->handoffs[i].status = HND_HANDOFF_REJECTED;
    }
    lead->n_pchanges = HND_PCHANGES_MAX;
    for (size_t i = 0; i < HND_PCHANGES_MAX; i++) {
        lead->pchanges[i].from[sizeof lead->pchanges[i].from - 1] = '\0';
        lead->pchanges[i].to[sizeof lead->pchanges[i].to - 1] = '\0';
    }
    lead->n_friction = HND_FRICTION_MAX;
    for (size_t i = 0; i < HND_FRICTION_MAX; i++) {
        lead->friction[i].kind[sizeof lead->friction[i].kind - 1] = '\0';
        lead->friction[i].detail[sizeof lead->friction[i].detail - 1] = '\0';
        lead->friction[i].stage = 0;
    }
    lead->n_tally = HND_TALLY_MAX;
    for (size_t i = 0; i < HND_TALLY_MAX; i++) {
        lead->tally[i].kind = HND_TALLY_DWELL;
        lead->tally[i].stage = 0;
    }
    lead->n_rtally = HND_RTALLY_MAX;
    for (size_t i = 0; i < HND_RTALLY_MAX; i++)
        lead->rtally[i].reason[sizeof lead->rtally[i].reason - 1] = '\0';
    lead->quality.booked = lead->quality.handed_off = true;
    lead->quality.outcome_after_handoff = true;
    lead->quality.outcome = HND_OUTCOME_LOST;
    lead->quality.rule[sizeof lead->quality.rule - 1] = '\0';
    Funnel__V1__Lead pb;
    codec_lead_scratch_t scratch;
    codec_lead_to_pb(lead, d, &pb, &scratch);
    size_t need = funnel__v1__lead__get_packed_size(&pb);
    assert_true(need > 10000);
    assert_true(need <= CODEC_LEAD_MAX);
    print_message("largest lead: %zu bytes encoded, bound %zu\n", need,
                  (size_t)CODEC_LEAD_MAX);
    free(lead);
    defn_destroy(&d);
}

/* The summary a listing reads straight from the bytes says what
 * protobuf-c's full decoding says, for a lead with every kind of field. */
static void test_summary_matches_decoding(void **state)
{
    defn_t *d = defn_load_default();
    hnd_lead_t *lead = calloc(1, sizeof *lead);
    hnd_kv_t kv[2] = {{"industry", "software"}, {"role", "cto"}};

    apply(d, lead, 0, "page_view", T0, HND_SRC_SALES, kv, 2);
    apply(d, lead, 1, "demo_request", T0 + 1000, HND_SRC_SALES, NULL, 0);
    apply(d, lead, 2, "meeting_booked", T0 + 2000, HND_SRC_SALES, NULL, 0);
    apply(d, lead, 3, "webinar_attended", T0 + 3000, HND_SRC_MARKETING, NULL, 0);
    lead->stalled = true;
    const uint8_t *buf;
    size_t len = codec_lead_pack(lead, d, &buf);
    Funnel__V1__Lead *pb = funnel__v1__lead__unpack(NULL, len, buf);
    assert_non_null(pb);

    codec_lead_summary_t s;
    assert_int_equal(codec_lead_summary(buf, len, &s), 0);
    assert_int_equal(s.id_len, strlen(pb->id));
    assert_memory_equal(s.id, pb->id, s.id_len);
    assert_int_equal(s.stage_len, strlen(pb->stage));
    assert_memory_equal(s.stage, pb->stage, s.stage_len);
    assert_int_equal(s.persona_len, strlen(pb->persona));
    assert_true(s.persona_len > 0);
    assert_memory_equal(s.persona, pb->persona, s.persona_len);
    assert_int_equal(s.stage_entered_at_ms, pb->stage_entered_at_ms);
    assert_int_equal(s.first_seen_ms, pb->first_seen_ms);
    assert_int_equal(s.last_event_ms, pb->last_event_ms);
    assert_float_equal(s.engagement, pb->engagement, 0);
    assert_float_equal(s.fit, pb->fit, 0);
    assert_true(s.fit > 0 && s.engagement > 0);
    assert_int_equal(s.qualified, pb->qualified);
    assert_true(s.qualified);
    assert_int_equal(s.handoff_status, pb->handoff_status);
    assert_int_equal(s.first_source, pb->first_source);
    assert_int_equal(s.events, pb->events);
    assert_true(s.stalled && pb->stalled);
    /* Cut short, the bytes are not a message. */
    assert_int_equal(codec_lead_summary(buf, len - 1, &s), -1);
    funnel__v1__lead__free_unpacked(pb, NULL);
    free(lead);
    defn_destroy(&d);
}

/* The Alert written by hand (codec_alert_prepare/write) is byte for byte
 * what protobuf-c packs for the same message, for each alert of a lead's
 * events (with and without reasons, stages, a negative time), and decodes
 * with protobuf-c to the same fields; the lead's scores at as_of_ms. */
static void check_alert(const defn_t *d, const hnd_alert_t *a, const hnd_lead_t *lead,
                        const hnd_event_t *ev, uint64_t seq, uint64_t alert_seq,
                        int64_t at_ms, int64_t as_of_ms)
{
    const uint8_t *lb;
    size_t llen = lead ? codec_lead_pack_at(lead, d, as_of_ms, &lb) : 0;
    uint8_t *lead_pb = lead ? malloc(llen) : NULL;
    if (lead)
        memcpy(lead_pb, lb, llen);
    codec_alert_wire_t w;
    codec_alert_prepare(&w, a, d, lead, lead_pb, llen, ev, seq, alert_seq, at_ms);
    uint8_t *mine = malloc(w.size + 1);
    codec_alert_write(&w, mine);

    Funnel__V1__Alert al;
    Funnel__V1__Lead snap;
    codec_lead_scratch_t scratch;
    char *reasons[HND_REASONS_MAX];
    funnel__v1__alert__init(&al);
    al.kind = (char *)a->kind;
    al.topic = (char *)a->topic;
    al.at_ms = w.at_ms;
    if (lead) {
        codec_lead_to_pb_at(lead, d, as_of_ms, &snap, &scratch);
        al.lead = &snap;
        al.lead_id = (char *)lead->id;
    }
    al.stage = a->stage >= 0 ? d->stages[a->stage].name : (char *)"";
    al.from_stage = a->from_stage >= 0 ? d->stages[a->from_stage].name : (char *)"";
    for (size_t r = 0; r < a->n_reasons; r++)
        reasons[r] = (char *)a->reasons[r];
    al.n_reasons = a->n_reasons;
    al.reasons = reasons;
    al.event_id = ev ? (char *)ev->id : (char *)"";
    al.seq = seq;
    al.alert_seq = alert_seq;
    size_t want = funnel__v1__alert__get_packed_size(&al);
    uint8_t *theirs = malloc(want + 1);
    funnel__v1__alert__pack(&al, theirs);
    Funnel__V1__Alert *back = funnel__v1__alert__unpack(NULL, w.size, mine);
    assert_non_null(back);
    assert_int_equal(w.size, want);
    assert_memory_equal(mine, theirs, want);
    if (lead)
        assert_int_equal(back->lead->scores_as_of_ms, hnd_scores_as_of(lead, as_of_ms));
    assert_int_equal(back->alert_seq, alert_seq);
    assert_int_equal(back->seq, seq);
    assert_int_equal(back->n_reasons, a->n_reasons);
    assert_int_equal(back->lead != NULL, lead != NULL);
    funnel__v1__alert__free_unpacked(back, NULL);
    free(mine);
    free(theirs);
    free(lead_pb);
}

static void test_alert_wire(void **state)
{
    defn_t *d = defn_load_default();
    hnd_lead_t *lead = calloc(1, sizeof *lead);
    const char *types[] = {"page_view", "demo_request", "meeting_booked", "form_submit"};
    size_t checked = 0;
    for (int n = 0; n < 4; n++) {
        char id[16];
        hnd_effects_t fx;
        snprintf(id, sizeof id, "e%d", n);
        hnd_event_t ev = {.id = id, .lead_id = "L-1", .type = types[n],
                          .source = HND_SRC_SALES, .at_ms = T0 + n * 1000,
                          .log_seq = (uint64_t)n + 1};
        assert_int_equal(pipeline_apply(pipeline_default, &ev, d, n == 0, lead, &fx), 0);
        for (size_t i = 0; i < fx.n_alerts; i++, checked++) {
            check_alert(d, &fx.alerts[i], lead, &ev, ev.log_seq, 1000 + checked, T0,
                        lead->last_event_ms);
            check_alert(d, &fx.alerts[i], lead, &ev, 1ull << 40, (1ull << 63) + 5, -1, 0);
            check_alert(d, &fx.alerts[i], lead, &ev, 7, 8, T0,
                        lead->last_event_ms + 30LL * 86400000);
            check_alert(d, &fx.alerts[i], NULL, NULL, 0, 0, -1234567, 0);
        }
    }
    assert_true(checked >= 3); /* stage moves and the handoff at least */
    hnd_alert_t bare = {.kind = "conversion", .topic = "friction.conversion",
                        .stage = -1, .from_stage = -1, .n_reasons = 1,
                        .reasons = {""}};
    check_alert(d, &bare, NULL, NULL, 0, 0, 0, 0);
    free(lead);
    defn_destroy(&d);
}

/* codec_event_lead_peek reads the lead id protobuf-c decodes, without
 * decoding: with other fields around it, the last of two (as decoding
 * merges them), none, and malformed bytes refused. */
static void test_event_lead_peek(void **state)
{
    (void)state;
    Funnel__V1__Event ev;
    Funnel__V1__Event__AttrsEntry a, *ap[1] = {&a};
    funnel__v1__event__init(&ev);
    funnel__v1__event__attrs_entry__init(&a);
    a.key = (char *)"industry";
    a.value = (char *)"retail";
    ev.id = (char *)"e-1";
    ev.lead_id = (char *)"L-peek-42";
    ev.type = (char *)"page_view";
    ev.source = FUNNEL__V1__SOURCE__SOURCE_SALES;
    ev.occurred_at_ms = 1767225600123;
    ev.value = 12.5;
    ev.attrs = ap;
    ev.n_attrs = 1;
    uint8_t buf[512];
    size_t len = funnel__v1__event__pack(&ev, buf);
    const uint8_t *id;
    size_t n;
    assert_int_equal(codec_event_lead_peek(buf, len, &id, &n), 0);
    assert_int_equal(n, strlen(ev.lead_id));
    assert_memory_equal(id, ev.lead_id, n);

    /* two encodings one after the other: the second lead id wins */
    ev.lead_id = (char *)"L-second";
    size_t len2 = funnel__v1__event__pack(&ev, buf + len);
    Funnel__V1__Event *back = funnel__v1__event__unpack(NULL, len + len2, buf);
    assert_non_null(back);
    assert_int_equal(codec_event_lead_peek(buf, len + len2, &id, &n), 0);
    assert_int_equal(n, strlen(back->lead_id));
    assert_memory_equal(id, back->lead_id, n);
    funnel__v1__event__free_unpacked(back, NULL);

    /* truncated at every length: refused or a lead id inside the bytes */
    for (size_t cut = 0; cut < len; cut++) {
        int rc = codec_event_lead_peek(buf, cut, &id, &n);
        assert_true(rc == -1 || (id >= buf && id + n <= buf + cut));
    }
    /* no lead id */
    ev.lead_id = (char *)"";
    len = funnel__v1__event__pack(&ev, buf);
    assert_int_equal(codec_event_lead_peek(buf, len, &id, &n), -1);
    /* a wire type that does not exist */
    const uint8_t bad[] = {0x17, 0x01};
    assert_int_equal(codec_event_lead_peek(bad, sizeof bad, &id, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_largest_lead_fits),
        cmocka_unit_test(test_summary_matches_decoding),
        cmocka_unit_test(test_alert_wire),
        cmocka_unit_test(test_event_lead_peek),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
