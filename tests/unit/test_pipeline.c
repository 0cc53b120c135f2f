/* test_pipeline.c: the handlers, in memory: stage advancement and
 * qualification under the default AIDA definition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline.h"

#define DAY_MS (24LL * 3600 * 1000)
#define T0 1790000000000LL

typedef struct {
    defn_t *d;
    hnd_lead_t lead;
    hnd_effects_t fx;
    int n;          /* events applied */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = test_calloc(1, sizeof *f);
    f->d = defn_load_default();
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

/* Apply an event of `type` at T0 + at_ms to the fixture's lead. */
static void apply_src(fixture_t *f, const char *type, int64_t at_ms,
                      hnd_source_t src)
{
    char id[32];
    snprintf(id, sizeof id, "e%d", f->n);
    hnd_event_t ev = {
        .id = id,
        .lead_id = "L-1",
        .type = type,
        .source = src,
        .at_ms = T0 + at_ms,
    };
    assert_int_equal(pipeline_apply(pipeline_default, &ev, f->d, f->n == 0,
                                    &f->lead, &f->fx),
                     0);
    f->n++;
}

static void apply(fixture_t *f, const char *type, int64_t at_ms)
{
    apply_src(f, type, at_ms, HND_SRC_MARKETING);
}

static const char *stage(const fixture_t *f)
{
    return f->d->stages[f->lead.stage].name;
}

static int64_t delta(const hnd_effects_t *fx, const char *key)
{
    for (size_t i = 0; i < fx->n_deltas; i++)
        if (strcmp(fx->deltas[i].key, key) == 0)
            return fx->deltas[i].delta;
    return 0;
}

static size_t alerts_of(const hnd_effects_t *fx, const char *kind)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->n_alerts; i++)
        n += strcmp(fx->alerts[i].kind, kind) == 0;
    return n;
}

/* The delta index after a reset from garbage, past its first size (it
 * grows at half full) and reset again: every key merged, none lost. */
static void test_delta_index_grows(void **state)
{
    fixture_t *f = *state;
    char key[32];
    memset(&f->fx, 0xa5, sizeof f->fx);
    for (int round = 0; round < 2; round++) {
        hnd_effects_reset(&f->fx);
        assert_int_equal(f->fx.n_deltas, 0);
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < 3 * HND_DELTA_SLOTS_FIRST / 2; i++) {
                snprintf(key, sizeof key, "k/%d", i);
                hnd_count(&f->fx, i + round, key);
            }
        assert_int_equal(f->fx.n_deltas, 3 * HND_DELTA_SLOTS_FIRST / 2);
        for (int i = 0; i < 3 * HND_DELTA_SLOTS_FIRST / 2; i++) {
            snprintf(key, sizeof key, "k/%d", i);
            assert_int_equal(delta(&f->fx, key), 2 * (i + round));
        }
    }
}

static void test_created_in_mapped_stage(void **state)
{
    fixture_t *f = *state;
    apply(f, "form_submit", 0);
    assert_string_equal(stage(f), "interest");
    assert_int_equal(f->lead.events, 1);
    assert_int_equal(delta(&f->fx, "leads"), 1);
    assert_int_equal(delta(&f->fx, "entered/interest"), 1);
    assert_int_equal(delta(&f->fx, "now/interest"), 1);
    assert_int_equal(alerts_of(&f->fx, "stage"), 1);
    assert_int_equal(f->fx.alerts[0].from_stage, -1);
    /* Its history before the first event is unknown: nothing skipped. */
    assert_int_equal(f->lead.skipped, 0);
}

static void test_unknown_type_creates_in_first_stage(void **state)
{
    fixture_t *f = *state;
    apply(f, "no_such_event", 0);
    assert_string_equal(stage(f), "awareness");
    assert_int_equal(f->lead.skipped, 0);
    /* ...and moves nothing later. */
    apply(f, "no_such_event", 1000);
    assert_string_equal(stage(f), "awareness");
    assert_int_equal(f->fx.n_alerts, 0);
    assert_int_equal(f->fx.n_deltas, 0);
}

static void test_forward_only(void **state)
{
    fixture_t *f = *state;
    apply(f, "page_view", 0);
    apply(f, "form_submit", 1000);
    assert_string_equal(stage(f), "interest");
    assert_int_equal(delta(&f->fx, "advanced/awareness"), 1);
    assert_int_equal(delta(&f->fx, "now/awareness"), -1);
    assert_int_equal(delta(&f->fx, "now/interest"), 1);
    int64_t entered = f->lead.stage_entered_at_ms;

    apply(f, "page_view", 2000); /* maps to an earlier stage */
    assert_string_equal(stage(f), "interest");
    assert_int_equal(f->lead.stage_entered_at_ms, entered);
    assert_int_equal(alerts_of(&f->fx, "stage"), 0);
    assert_int_equal(f->lead.events, 3);
}

static void test_skip_recorded(void **state)
{
    fixture_t *f = *state;
    apply(f, "page_view", 0);
    apply(f, "demo_request", 1000);
    assert_string_equal(stage(f), "decision");
    int interest = defn_stage_index(f->d, "interest");
    assert_true(f->lead.skipped & (1u << interest));
    assert_int_equal(delta(&f->fx, "entered/interest"), 0);
    assert_int_equal(delta(&f->fx, "advanced/awareness"), 1);
    assert_int_equal(alerts_of(&f->fx, "stage"), 1);
    /* The alert says what was skipped. */
    const hnd_alert_t *a = &f->fx.alerts[0];
    assert_int_equal(a->n_reasons, 2);
    assert_non_null(strstr(a->reasons[1], "interest"));
}

static void test_lost_from_any_stage_and_terminal(void **state)
{
    fixture_t *f = *state;
    apply(f, "form_submit", 0);
    apply(f, "closed_lost", 1000);
    assert_string_equal(stage(f), "lost");
    /* Entering an exit is not advancing. */
    assert_int_equal(delta(&f->fx, "advanced/interest"), 0);
    assert_int_equal(delta(&f->fx, "entered/lost"), 1);
    /* lost is terminal: a later purchase does not move it. */
    apply(f, "closed_won", 2000);
    assert_string_equal(stage(f), "lost");
    assert_int_equal(f->fx.n_alerts, 0);
}

static void test_action_is_terminal(void **state)
{
    fixture_t *f = *state;
    apply(f, "demo_request", 0);
    apply(f, "closed_won", 1000);
    assert_string_equal(stage(f), "action");
    apply(f, "closed_lost", 2000);
    assert_string_equal(stage(f), "action");
}

static void test_qualifies_exactly_once(void **state)
{
    fixture_t *f = *state;
    apply(f, "demo_request", 0);      /* 25 */
    assert_false(f->lead.qualified);
    apply(f, "meeting_booked", 1000); /* 45 */
    assert_false(f->lead.qualified);
    assert_int_equal(alerts_of(&f->fx, "handoff"), 0);
    apply(f, "form_submit", 2000);    /* 55 >= 50 */
    assert_true(f->lead.qualified);
    assert_int_equal(f->lead.handoff, HND_HANDOFF_PENDING);
    assert_int_equal(f->lead.handoff_at_ms, T0 + 2000);
    assert_int_equal(alerts_of(&f->fx, "handoff"), 1);
    assert_int_equal(delta(&f->fx, "handoffs"), 1);
    for (int i = 0; i < 5; i++) {
        apply(f, "demo_request", 3000 + i);
        assert_int_equal(alerts_of(&f->fx, "handoff"), 0);
    }
    assert_true(f->lead.engagement > 150);
}

static void test_decay_half_life(void **state)
{
    fixture_t *f = *state;
    apply(f, "demo_request", 0);                    /* 25 */
    apply(f, "page_view", 30 * DAY_MS);             /* 25/2 + 1 */
    assert_float_equal(f->lead.engagement, 13.5, 1e-6);
    /* 13.5 is far below the threshold. */
    assert_false(f->lead.qualified);
}

static void test_out_of_order_same_score(void **state)
{
    fixture_t *f = *state;
    apply(f, "page_view", 0);
    apply(f, "demo_request", 30 * DAY_MS);
    double in_order = f->lead.engagement;
    int64_t last = f->lead.last_event_ms;

    fixture_t g = {.d = f->d};
    apply(&g, "demo_request", 30 * DAY_MS);
    apply(&g, "page_view", 0); /* arrives late */
    assert_float_equal(g.lead.engagement, in_order, 1e-9);
    /* A lead's time never moves backwards. */
    assert_int_equal(g.lead.last_event_ms, last);
}

static void test_negative_points(void **state)
{
    fixture_t *f = *state;
    apply(f, "form_submit", 0);
    apply(f, "unsubscribe", 1);
    assert_true(f->lead.engagement < -9.99 && f->lead.engagement > -10.01);
}

static void test_attrs_merged(void **state)
{
    fixture_t *f = *state;
    hnd_kv_t kv[2] = {{"industry", "retail"}, {"country", "BR"}};
    hnd_event_t ev = {.id = "a", .lead_id = "L-1", .type = "page_view",
                      .source = HND_SRC_MARKETING, .at_ms = T0,
                      .attrs = kv, .n_attrs = 2};
    assert_int_equal(pipeline_apply(pipeline_default, &ev, f->d, true, &f->lead, &f->fx), 0);
    hnd_kv_t kv2[1] = {{"industry", "health"}};
    ev.id = "b";
    ev.attrs = kv2;
    ev.n_attrs = 1;
    assert_int_equal(pipeline_apply(pipeline_default, &ev, f->d, false, &f->lead, &f->fx), 0);
    assert_string_equal(hnd_lead_attr(&f->lead, "industry"), "health");
    assert_string_equal(hnd_lead_attr(&f->lead, "country"), "BR");
    assert_int_equal(f->lead.n_attrs, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delta_index_grows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_created_in_mapped_stage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_type_creates_in_first_stage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_from_any_stage_and_terminal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_is_terminal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qualifies_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decay_half_life, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_same_score, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attrs_merged, setup, teardown),
    };
    return cmocka_run_group_tests_name("pipeline", tests, NULL, NULL);
}
