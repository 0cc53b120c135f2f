/* test_persona.c: behaviour counters and personas (h_persona): first
 * match wins, re-evaluation as the lead changes, the history, and the
 * report counters moving between persona groups; the ISO-week cohort. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline.h"

#define T0 1795694400000LL      /* 2026-11-26T12:00:00Z, ISO week 2026-W48 */

static const char s_yaml[] =
    "name: t\n"
    "stages: [{name: a}, {name: b}]\n"
    "transitions: [{types: [dl], to: b}]\n"
    "scoring:\n"
    "  engagement: [{type: view, points: 1}]\n"
    "qualification: {engagement: 0}\n"
    "personas:\n"
    "  - name: boss\n"
    "    when: [{attr: role, one_of: [ceo, cto]}]\n"
    "  - name: reader\n"
    "    when: [{count: dl, min: 2}]\n"
    "  - name: looker\n"
    "    when: [{count: view, min: 1, max: 2}]\n";

typedef struct {
    defn_t *d;
    hnd_lead_t lead;
    hnd_effects_t fx;
    int n;
} fixture_t;

static int setup(void **state)
{
    char err[512];
    fixture_t *f = test_calloc(1, sizeof *f);
    f->d = defn_load_buffer(s_yaml, strlen(s_yaml), "t.yaml", err, sizeof err);
    if (!f->d)
        fail_msg("%s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    defn_destroy(&f->d);
    test_free(f);
    return 0;
}

static void apply_kv(fixture_t *f, const char *type, const hnd_kv_t *kv, size_t n)
{
    char id[32];
    snprintf(id, sizeof id, "e%d", f->n);
    hnd_event_t ev = {
        .id = id, .lead_id = "L", .type = type, .source = HND_SRC_MARKETING,
        .at_ms = T0 + f->n * 1000LL, .attrs = kv, .n_attrs = n,
        .log_seq = (uint64_t)f->n + 10,
    };
    assert_int_equal(pipeline_apply(pipeline_default, &ev, f->d, f->n == 0, &f->lead,
                                    &f->fx), 0);
    f->n++;
}

static int64_t delta(const hnd_effects_t *fx, const char *key)
{
    for (size_t i = 0; i < fx->n_deltas; i++)
        if (strcmp(fx->deltas[i].key, key) == 0)
            return fx->deltas[i].delta;
    return 0;
}

static void test_first_match_and_reevaluation(void **state)
{
    fixture_t *f = *state;
    apply_kv(f, "view", NULL, 0);
    assert_string_equal(f->lead.persona, "looker");
    /* A new lead: created in group "-", moved to looker within the event. */
    assert_int_equal(delta(&f->fx, "by/persona/looker/leads"), 1);
    assert_int_equal(delta(&f->fx, "by/persona/-/leads"), 0);
    assert_int_equal(delta(&f->fx, "by/persona/looker/now/a"), 1);
    assert_int_equal(delta(&f->fx, "by/cohort/2026-W48/leads"), 1);
    assert_int_equal(delta(&f->fx, "by/source/marketing/entered/a"), 1);

    apply_kv(f, "dl", NULL, 0);                 /* still looker (dl 1) */
    assert_string_equal(f->lead.persona, "looker");
    apply_kv(f, "dl", NULL, 0);                 /* reader comes first */
    assert_string_equal(f->lead.persona, "reader");
    assert_int_equal(delta(&f->fx, "by/persona/looker/leads"), -1);
    assert_int_equal(delta(&f->fx, "by/persona/reader/leads"), 1);
    assert_int_equal(delta(&f->fx, "by/persona/looker/now/b"), -1);
    assert_int_equal(delta(&f->fx, "by/persona/reader/now/b"), 1);
    assert_int_equal(delta(&f->fx, "by/persona/reader/entered/a"), 1);
    assert_int_equal(delta(&f->fx, "by/persona/reader/entered/b"), 1);
    assert_int_equal(delta(&f->fx, "by/persona/reader/advanced/a"), 1);
    assert_int_equal(delta(&f->fx, "by/persona/looker/advanced/a"), -1);

    hnd_kv_t boss[] = { { "role", "cto" } };
    apply_kv(f, "other", boss, 1);              /* attrs win: first rule */
    assert_string_equal(f->lead.persona, "boss");

    hnd_kv_t nobody[] = { { "role", "intern" } };
    apply_kv(f, "view", nobody, 1);
    assert_string_equal(f->lead.persona, "reader");
    assert_int_equal(hnd_lead_count(&f->lead, "dl"), 2);
    assert_int_equal(hnd_lead_count(&f->lead, "view"), 2);
    assert_int_equal(hnd_lead_count(&f->lead, "other"), 0);   /* not named */

    /* History: newest HND_PCHANGES_MAX changes, oldest first. */
    assert_int_equal(f->lead.n_pchanges, 4);
    assert_string_equal(f->lead.pchanges[0].from, "");
    assert_string_equal(f->lead.pchanges[0].to, "looker");
    assert_string_equal(f->lead.pchanges[3].from, "boss");
    assert_string_equal(f->lead.pchanges[3].to, "reader");
    assert_int_equal(f->lead.pchanges[3].seq, 14);
    apply_kv(f, "dl", boss, 1);
    assert_int_equal(f->lead.n_pchanges, 4);
    assert_string_equal(f->lead.pchanges[3].to, "boss");
    assert_string_equal(f->lead.pchanges[0].to, "reader");
}

static void test_iso_week(void **state)
{
    char w[12];
    assert_string_equal(hnd_iso_week(T0, w), "2026-W48");
    assert_string_equal(hnd_iso_week(0, w), "1970-W01");
    /* 2021-01-03 (Sunday) belongs to 2020-W53; 2024-12-30 to 2025-W01. */
    assert_string_equal(hnd_iso_week(1609632000000LL, w), "2020-W53");
    assert_string_equal(hnd_iso_week(1735516800000LL, w), "2025-W01");
    assert_string_equal(hnd_iso_week(1514764800000LL, w), "2018-W01");  /* 2018-01-01 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_match_and_reevaluation, setup, teardown),
        cmocka_unit_test(test_iso_week),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
