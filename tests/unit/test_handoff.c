/* test_handoff.c: the qualification rule (h_qualify), the handoff loop
 * (h_handoff: accept, reject, recycle, requalify) and the explicit moves of
 * h_stage (regressions, conditional transitions). */
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

#define T0 1790000000000LL

static const char s_yaml[] =
    "name: t\n"
    "stages: [{name: a}, {name: b}, {name: c}, {name: won, terminal: true}]\n"
    "exits: [{name: lost}]\n"
    "transitions:\n"
    "  - {types: [x], to: b}\n"
    "  - {types: [demo], to: c}\n"
    "  - {types: [win], to: won}\n"
    "  - {types: [lose], to: lost}\n"
    "  - {types: [call], to: c, when: {attr: tier, equals: gold}}\n"
    "  - {types: [call], to: b}\n"
    "regressions:\n"
    "  - {types: [reopen], from: [lost], to: c}\n"
    "scoring:\n"
    "  engagement: [{type: x, points: 10}, {type: demo, points: 30}]\n"
    "  fit: [{attr: industry, equals: software, points: 20}]\n"
    "qualification:\n"
    "  any_of:\n"
    "    - {fit: 20, engagement: 30}\n"
    "    - {total: 60}\n"
    "handoff: {recycle_to: b}\n";

typedef lead_fixture_t fixture_t;

static int setup(void **state)
{
    return fixture_setup(state, s_yaml);
}

#define teardown fixture_teardown

static void apply_kv(fixture_t *f, const char *type, const hnd_kv_t *kv, size_t n)
{
    fixture_event(f->d, &f->lead, &f->fx, f->n, "L", f->n == 0, type, HND_SRC_SALES,
                  T0 + f->n * 1000LL, kv, n, 1);
    f->n++;
}

static void apply(fixture_t *f, const char *type)
{
    apply_kv(f, type, NULL, 0);
}

#define alert fx_alert
#define delta fx_delta

static bool has_reason(const hnd_alert_t *a, const char *needle)
{
    for (size_t i = 0; a && i < a->n_reasons; i++)
        if (strstr(a->reasons[i], needle))
            return true;
    return false;
}

static const char *stage(const fixture_t *f)
{
    return f->d->stages[f->lead.stage].name;
}

static void test_rule_all_of(void **state)
{
    fixture_t *f = *state;
    hnd_kv_t kv[] = { { "industry", "software" } };
    apply_kv(f, "x", kv, 1);
    apply(f, "x");
    assert_false(f->lead.qualified);            /* fit 20, engagement 20 */
    apply(f, "x");
    assert_true(f->lead.qualified);             /* fit 20, engagement 30 */
    const hnd_alert_t *a = alert(&f->fx, "handoff");
    assert_non_null(a);
    assert_string_equal(a->topic, "handoff");
    assert_true(has_reason(a, "rule matched: fit >= 20 and engagement >= 30"));
    assert_false(has_reason(a, "rule matched: total >= 60"));
    assert_true(has_reason(a, "breakdown: engagement: x"));
    assert_string_equal(f->lead.handoffs[0].rule, "fit >= 20 and engagement >= 30");
}

static void test_rule_any_of_total(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 5; i++)
        apply(f, "x");
    assert_false(f->lead.qualified);            /* total 50 */
    apply(f, "x");
    assert_true(f->lead.qualified);             /* total 60 */
    assert_true(has_reason(alert(&f->fx, "handoff"), "rule matched: total >= 60"));
    assert_int_equal(f->lead.handoff, HND_HANDOFF_PENDING);
    assert_int_equal(delta(&f->fx, "handoffs"), 1);
    assert_int_equal(delta(&f->fx, "by/persona/-/handoffs"), 1);
    assert_int_equal(delta(&f->fx, "by/source/sales/handoffs"), 1);
}

static void test_loop(void **state)
{
    fixture_t *f = *state;
    apply(f, "demo");
    apply(f, "demo");                           /* engagement 60: handoff 1 */
    assert_true(f->lead.qualified);
    assert_string_equal(stage(f), "c");

    /* An unrelated event changes nothing about the handoff. */
    apply(f, "x");
    assert_null(alert(&f->fx, "handoff"));

    hnd_kv_t why[] = { { "reason", "no budget" } };
    apply_kv(f, "handoff_rejected", why, 1);
    assert_int_equal(f->lead.handoff, HND_HANDOFF_REJECTED);
    assert_false(f->lead.qualified);
    assert_true(f->lead.engagement == 0);
    assert_string_equal(stage(f), "b");         /* recycled */
    const hnd_alert_t *r = alert(&f->fx, "handoff_rejected");
    assert_non_null(r);
    assert_string_equal(r->topic, "friction.handoff_rejected");
    assert_true(has_reason(r, "no budget"));
    const hnd_alert_t *s = alert(&f->fx, "stage");
    assert_non_null(s);
    assert_int_equal(s->from_stage, 2);
    assert_int_equal(s->stage, 1);
    assert_non_null(alert(&f->fx, "regression"));
    assert_null(alert(&f->fx, "handoff"));
    assert_int_equal(delta(&f->fx, "handoffs/rejected"), 1);
    assert_int_equal(delta(&f->fx, "now/c"), -1);
    assert_int_equal(delta(&f->fx, "now/b"), 1);
    assert_int_equal(delta(&f->fx, "entered/b"), 1);     /* first time in b */
    assert_string_equal(f->lead.handoffs[0].reason, "no budget");
    assert_int_equal(f->lead.handoffs[0].status, HND_HANDOFF_REJECTED);
    /* The reset is a ledger entry: the sums still explain the score. */
    double eng = hnd_carry_value(f->d, &f->lead, HND_LEDGER_ENGAGEMENT);
    for (size_t i = 0; i < f->lead.n_ledger; i++)
        if (f->lead.ledger[i].kind == HND_LEDGER_ENGAGEMENT)
            eng += hnd_ledger_value(f->d, &f->lead, &f->lead.ledger[i]);
    assert_true(fabs(eng) < 1e-9);

    /* A second answer to the same handoff changes nothing. */
    apply(f, "handoff_accepted");
    assert_int_equal(f->lead.handoff, HND_HANDOFF_REJECTED);

    /* It qualifies again: a new handoff. */
    apply(f, "demo");
    assert_false(f->lead.qualified);
    apply(f, "demo");
    assert_true(f->lead.qualified);
    const hnd_alert_t *h = alert(&f->fx, "handoff");
    assert_non_null(h);
    assert_true(has_reason(h, "handoff #2"));
    assert_int_equal(f->lead.handoffs_sent, 2);
    assert_int_equal(f->lead.n_handoffs, 2);

    apply(f, "handoff_accepted");
    assert_int_equal(f->lead.handoff, HND_HANDOFF_ACCEPTED);
    assert_int_equal(f->lead.handoffs_accepted, 1);
    assert_int_equal(f->lead.handoffs[1].status, HND_HANDOFF_ACCEPTED);
    assert_int_equal(delta(&f->fx, "handoffs/accepted"), 1);
    assert_int_equal(delta(&f->fx, "by/persona/-/handoffs/accepted"), 1);
}

static void test_answer_without_handoff(void **state)
{
    fixture_t *f = *state;
    apply(f, "x");
    apply(f, "handoff_rejected");
    assert_int_equal(f->lead.handoff, HND_HANDOFF_NONE);
    assert_int_equal(f->fx.n_alerts, 0);
    assert_string_equal(stage(f), "b");
}

static void test_regression_and_condition(void **state)
{
    fixture_t *f = *state;
    apply(f, "call");                           /* no tier: to b */
    assert_string_equal(stage(f), "b");
    hnd_kv_t gold[] = { { "tier", "gold" } };
    apply_kv(f, "call", gold, 1);               /* condition holds: to c */
    assert_string_equal(stage(f), "c");
    apply(f, "lose");
    assert_string_equal(stage(f), "lost");
    apply(f, "demo");                           /* lost is terminal */
    assert_string_equal(stage(f), "lost");
    apply(f, "reopen");
    assert_string_equal(stage(f), "c");
    assert_non_null(alert(&f->fx, "regression"));
    assert_int_equal(delta(&f->fx, "entered/c"), 0);    /* counted once */
    assert_int_equal(delta(&f->fx, "now/c"), 1);
    assert_int_equal(delta(&f->fx, "now/lost"), -1);
    apply(f, "reopen");                         /* not from c */
    assert_int_equal(f->fx.n_alerts, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rule_all_of, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_any_of_total, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_without_handoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_regression_and_condition, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
