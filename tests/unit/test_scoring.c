/* test_scoring.c: fit rules (h_fit), engagement decay (h_score) and the
 * score ledger: every rule kind, decay exact at 0, 1 and 2 half-lives, and
 * the ledger's entries plus carry-overs adding up to the scores. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lead_fixture.h"
#include "pipeline.h"

#define DAY_MS (24LL * 3600 * 1000)
#define T0 1790000000000LL

static const char s_yaml[] =
    "name: t\n"
    "stages: [{name: a}, {name: b}]\n"
    "transitions: [{types: [x], to: b}]\n"
    "scoring:\n"
    "  half_life: 10d\n"
    "  engagement:\n"
    "    - {type: x, points: 8}\n"
    "    - {type: y, points: 1}\n"
    "    - {type: neg, points: -4}\n"
    "  fit:\n"
    "    - {attr: industry, equals: software, points: 10}\n"
    "    - {attr: country, one_of: [de, fr], points: 3}\n"
    "    - {attr: size, min: 50, max: 500, points: 7}\n"
    "    - {attr: email, present: true, points: 1}\n"
    "    - {attr: competitor, present: false, points: 2}\n"
    "qualification: {engagement: 0}\n";

typedef lead_fixture_t fixture_t;

static int setup(void **state)
{
    return fixture_setup(state, s_yaml);
}

#define teardown fixture_teardown

static void apply_kv(fixture_t *f, const char *type, int64_t at, const hnd_kv_t *kv,
                     size_t n)
{
    fixture_event(f->d, &f->lead, &f->fx, f->n, "L", f->n == 0, type,
                  HND_SRC_MARKETING, T0 + at, kv, n, 1);
    f->n++;
}

static void apply(fixture_t *f, const char *type, int64_t at)
{
    apply_kv(f, type, at, NULL, 0);
}

/* The ledger explains the scores: entries' current values plus carry. */
static void assert_ledger_sums(const fixture_t *f)
{
    double fit = hnd_carry_value(f->d, &f->lead, HND_LEDGER_FIT);
    double eng = hnd_carry_value(f->d, &f->lead, HND_LEDGER_ENGAGEMENT);
    for (size_t i = 0; i < f->lead.n_ledger; i++) {
        const hnd_ledger_t *e = &f->lead.ledger[i];
        if (e->kind == HND_LEDGER_FIT)
            fit += hnd_ledger_value(f->d, &f->lead, e);
        else
            eng += hnd_ledger_value(f->d, &f->lead, e);
    }
    assert_true(fabs(fit - f->lead.fit) < 1e-9);
    assert_true(fabs(eng - f->lead.engagement) < 1e-9);
}

static void test_fit_rules(void **state)
{
    fixture_t *f = *state;
    /* competitor absent: +2 from the start. */
    hnd_kv_t a[] = { { "industry", "software" }, { "country", "fr" }, { "size", "120" } };
    apply_kv(f, "y", 0, a, 3);
    assert_true(f->lead.fit == 10 + 3 + 7 + 2);
    assert_ledger_sums(f);

    hnd_kv_t b[] = { { "email", "x@y" }, { "size", "5000" } };     /* +1, -7 */
    apply_kv(f, "y", 1000, b, 2);
    assert_true(f->lead.fit == 10 + 3 + 2 + 1);
    /* Fit is applied before engagement, rules in definition order: the
     * event's entries are fit size -7, fit email +1, engagement y +1. */
    const hnd_ledger_t *last = &f->lead.ledger[f->lead.n_ledger - 3];
    assert_int_equal(last->kind, HND_LEDGER_FIT);
    assert_string_equal(f->lead.ledger[f->lead.n_ledger - 2].rule, "fit: email present");
    assert_string_equal(last->rule, "fit: size in 50..500 (no longer)");
    assert_true(last->points == -7);
    assert_string_equal(last->event_id, "e1");
    assert_int_equal(last->seq, 2);

    hnd_kv_t c[] = { { "industry", "retail" }, { "competitor", "acme" },
                     { "size", "not a number" }, { "country", "us" } };
    apply_kv(f, "y", 2000, c, 4);
    assert_true(f->lead.fit == 1);
    assert_ledger_sums(f);
}

static void test_decay_exact(void **state)
{
    fixture_t *f = *state;
    apply(f, "x", 0);
    assert_true(f->lead.engagement == 8);           /* 0 half-lives */
    apply(f, "z", 10 * DAY_MS);                     /* unscored: time moves */
    assert_true(f->lead.engagement == 4);           /* 1 half-life */
    apply(f, "z", 20 * DAY_MS);
    assert_true(f->lead.engagement == 2);           /* 2 half-lives */
    /* ledger[0]: fit "competitor absent" +2; ledger[1]: engagement x. */
    assert_string_equal(f->lead.ledger[1].rule, "engagement: x");
    assert_true(hnd_ledger_value(f->d, &f->lead, &f->lead.ledger[1]) == 2);
    assert_true(f->lead.ledger[1].points == 8);
    assert_true(hnd_ledger_value(f->d, &f->lead, &f->lead.ledger[0]) == 2);
    /* Out of order: its points arrive already decayed to the lead's time. */
    apply(f, "x", 10 * DAY_MS);
    assert_true(f->lead.engagement == 2 + 4);
    assert_ledger_sums(f);
}

static void test_ledger_carry(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 3 * HND_LEDGER_MAX; i++) {
        apply(f, i % 5 == 4 ? "neg" : "x", (int64_t)i * DAY_MS / 2);
        assert_ledger_sums(f);
    }
    assert_int_equal(f->lead.n_ledger, HND_LEDGER_MAX);
    /* 24 engagement entries and the first event's fit entry (+2). */
    assert_int_equal(f->lead.older_fit.entries, 1);
    assert_true(f->lead.older_fit.value == 2);
    assert_int_equal(f->lead.older_engagement.entries, 2 * HND_LEDGER_MAX);
    /* The carry keeps the original points of what it holds. */
    double orig = f->lead.older_engagement.points;
    for (size_t i = 0; i < f->lead.n_ledger; i++)
        orig += f->lead.ledger[i].points;
    assert_true(fabs(orig - (8.0 * 20 - 4.0 * 4)) < 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fit_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decay_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ledger_carry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
