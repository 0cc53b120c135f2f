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

#include "lead_fixture.h"
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

typedef lead_fixture_t fixture_t;

static int setup(void **state)
{
    return fixture_setup(state, s_yaml);
}

#define teardown fixture_teardown

static void apply_kv(fixture_t *f, const char *type, const hnd_kv_t *kv, size_t n)
{
    fixture_event(f->d, &f->lead, &f->fx, f->n, "L", f->n == 0, type,
                  HND_SRC_MARKETING, T0 + f->n * 1000LL, kv, n, 10);
    f->n++;
}

#define delta fx_delta

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

/* The civil date behind the week, as friction reasons print it. */
static void test_time_text(void **state)
{
    char t[24];
    assert_string_equal(hnd_time_text(0, t), "1970-01-01T00:00:00Z");
    assert_string_equal(hnd_time_text(-1000, t), "1969-12-31T23:59:59Z");
    assert_string_equal(hnd_time_text(951782400000LL, t), "2000-02-29T00:00:00Z");
    assert_string_equal(hnd_time_text(1735516800000LL, t), "2024-12-30T00:00:00Z");
    assert_string_equal(hnd_time_text(1798761599000LL, t), "2026-12-31T23:59:59Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_match_and_reevaluation, setup, teardown),
        cmocka_unit_test(test_iso_week),
        cmocka_unit_test(test_time_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
