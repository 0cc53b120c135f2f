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

    uint8_t *buf;
    size_t len = codec_lead_pack(lead, d, &buf);
    assert_true(len > 0);
    assert_int_equal(codec_lead_unpack(buf, len, d, back), 0);
    free(buf);

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

    /* Packing what came back gives the same bytes: nothing was lost. */
    uint8_t *buf2, *buf3;
    size_t len2 = codec_lead_pack(lead, d, &buf2);
    size_t len3 = codec_lead_pack(back, d, &buf3);
    assert_int_equal(len2, len3);
    assert_memory_equal(buf2, buf3, len2);
    free(buf2);
    free(buf3);

    /* Bytes that are not a Lead are refused. */
    assert_int_equal(codec_lead_unpack("\xff\xff\xff", 3, d, back), -1);
    free(lead);
    free(back);
    defn_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
