/* test_report.c: the funnel and friction reports (report.c) over a fake
 * reader, a table of counters and marks in memory: the funnel and its
 * groups, the persona filter and its errors, the ranking of friction points
 * (sections, worst first, ties in stage order), the dwell rules (half of
 * max_dwell, 20 completed stays), rejection reasons, the conversion window
 * and target, the per-group friction, the listed leads, read errors. The
 * keys are built with keys.h (test_keys.c pins them to the state on
 * disk). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dwell.h"
#include "keys.h"
#include "lead_fixture.h"
#include "report.h"

#define DAY 86400000LL
#define HOUR 3600000LL

static const char s_yaml[] =
    "name: r\n"
    "stages:\n"
    "  - {name: a, max_dwell: 1d, conversion_target: 0.5}\n"
    "  - {name: b, max_dwell: 2d, conversion_target: 0.8}\n"
    "  - {name: c}\n"
    "  - {name: won, terminal: true}\n"
    "exits: [{name: lost}]\n"
    "transitions:\n"
    "  - {types: [pa], to: a}\n"
    "  - {types: [pb], to: b}\n"
    "  - {types: [pc], to: c}\n"
    "  - {types: [win], to: won}\n"
    "  - {types: [lose], to: lost}\n"
    "personas:\n"
    "  - name: boss\n"
    "    when: [{attr: role, one_of: [ceo]}]\n"
    "  - name: looker\n"
    "    when: [{attr: role, one_of: [intern]}]\n"
    "scoring:\n"
    "  engagement: [{type: hot, points: 50}]\n"
    "qualification: {engagement: 50}\n"
    "handoff: {sla: 1h}\n"
    "friction: {conversion_window: 3d, min_sample: 4}\n";

/* -- the fake reader ----------------------------------------------------- */

typedef struct {
    char key[KEYS_KEY_MAX];
    int64_t v;
} counter_t;

typedef struct {
    char set[HND_MARK_SET_MAX + 1];
    char lead[32];
    int64_t since;
} mark_t;

typedef struct {
    defn_t *d;
    counter_t counters[512];
    size_t n_counters;
    mark_t marks[32];
    size_t n_marks;
    bool fail_counters, fail_marks;
    report_reader_t rd;
} fixture_t;

static void add(fixture_t *f, const char *key, int64_t v)
{
    for (size_t i = 0; i < f->n_counters; i++)
        if (strcmp(f->counters[i].key, key) == 0) {
            f->counters[i].v += v;
            return;
        }
    assert_true(f->n_counters < sizeof f->counters / sizeof f->counters[0]);
    snprintf(f->counters[f->n_counters].key, KEYS_KEY_MAX, "%s", key);
    f->counters[f->n_counters++].v = v;
}

/* Add v to counter c (of stage) funnel-wide, or in group by/name. */
static void count(fixture_t *f, int by, const char *name, keys_counter_t c,
                  const char *stage, int64_t v)
{
    char pre[KEYS_PREFIX_MAX] = "", key[KEYS_KEY_MAX];
    if (by >= 0)
        keys_group_prefix(pre, sizeof pre, (keys_by_t)by, name);
    add(f, keys_counter(key, sizeof key, pre, c, stage), v);
}

static void dwell(fixture_t *f, const char *stage, int64_t ms, int64_t n)
{
    char key[KEYS_KEY_MAX];
    add(f, keys_dwell(key, sizeof key, "", stage, dwell_bucket(ms)), n);
}

static void mark(fixture_t *f, const char *set, const char *lead, int64_t since)
{
    mark_t *m = &f->marks[f->n_marks++];
    snprintf(m->set, sizeof m->set, "%s", set);
    snprintf(m->lead, sizeof m->lead, "%s", lead);
    m->since = since;
}

static int64_t s_counter(const char *key, void *arg)
{
    fixture_t *f = arg;
    for (size_t i = 0; i < f->n_counters; i++)
        if (strcmp(f->counters[i].key, key) == 0)
            return f->counters[i].v;
    return 0;
}

static int s_cmp_counter(const void *a, const void *b)
{
    return strcmp(((const counter_t *)a)->key, ((const counter_t *)b)->key);
}

static long s_counters(void *arg, const char *prefix, report_counter_fn *fn,
                       void *fn_arg)
{
    fixture_t *f = arg;
    if (f->fail_counters)
        return -1;
    qsort(f->counters, f->n_counters, sizeof f->counters[0], s_cmp_counter);
    long n = 0;
    for (size_t i = 0; i < f->n_counters; i++)
        if (strncmp(f->counters[i].key, prefix, strlen(prefix)) == 0) {
            fn(f->counters[i].key, f->counters[i].v, fn_arg);
            n++;
        }
    return n;
}

static int s_cmp_mark(const void *a, const void *b)
{
    const mark_t *x = a, *y = b;
    int c = strcmp(x->set, y->set);
    return c ? c : strcmp(x->lead, y->lead);
}

static long s_marks(void *arg, const char *prefix, report_mark_fn *fn,
                    void *fn_arg)
{
    fixture_t *f = arg;
    if (f->fail_marks)
        return -1;
    qsort(f->marks, f->n_marks, sizeof f->marks[0], s_cmp_mark);
    long n = 0;
    for (size_t i = 0; i < f->n_marks; i++)
        if (strncmp(f->marks[i].set, prefix, strlen(prefix)) == 0) {
            fn(f->marks[i].set, f->marks[i].lead, f->marks[i].since, fn_arg);
            n++;
        }
    return n;
}

static int setup(void **state)
{
    fixture_t *f = test_calloc(1, sizeof *f);
    f->d = fixture_defn(s_yaml, "r.yaml");
    f->rd.counter = s_counter;
    f->rd.counters = s_counters;
    f->rd.marks = s_marks;
    f->rd.arg = f;
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

static report_friction_t *friction(fixture_t *f, const char *by,
                                   const char *stage, bool leads, uint32_t limit)
{
    report_friction_query_t q = { .by = by, .stage = stage, .leads = leads,
                                  .limit = limit };
    report_friction_t *r = NULL;
    const char *err = NULL;
    if (report_friction(f->d, &f->rd, &q, &r, &err) != 0)
        fail_msg("report_friction: %s", err);
    return r;
}

static const char *friction_err(fixture_t *f, const char *by, const char *stage,
                                bool leads)
{
    report_friction_query_t q = { .by = by, .stage = stage, .leads = leads };
    report_friction_t *r = NULL;
    const char *err = NULL;
    assert_int_equal(report_friction(f->d, &f->rd, &q, &r, &err), -1);
    assert_null(r);
    return err;
}

static const char *funnel_err(fixture_t *f, const char *by, const char *persona)
{
    report_funnel_t *r = NULL;
    const char *err = NULL;
    assert_int_equal(report_funnel(f->d, &f->rd, by, persona, &r, &err), -1);
    assert_null(r);
    return err;
}

static const report_stage_friction_t *stage_of(const report_friction_group_t *g,
                                               const char *stage)
{
    for (size_t i = 0; i < g->n_stages; i++)
        if (strcmp(g->stages[i].stage, stage) == 0)
            return &g->stages[i];
    fail_msg("no stage %s", stage);
    return NULL;
}

/* -- the funnel ---------------------------------------------------------- */

static void s_group_leads(fixture_t *f)
{
    /* whole funnel: 3 leads; by persona: "-" 1, boss 2, looker left (0) */
    count(f, -1, NULL, KEYS_LEADS, NULL, 3);
    count(f, -1, NULL, KEYS_NOW, "a", 2);
    count(f, -1, NULL, KEYS_NOW, "lost", 1);
    count(f, -1, NULL, KEYS_ENTERED, "a", 3);
    count(f, -1, NULL, KEYS_ADVANCED, "a", 1);
    count(f, -1, NULL, KEYS_HANDOFFS, NULL, 4);
    count(f, -1, NULL, KEYS_HANDOFFS_ACCEPTED, NULL, 1);
    count(f, -1, NULL, KEYS_HANDOFFS_REJECTED, NULL, 2);
    count(f, KEYS_BY_PERSONA, "boss", KEYS_LEADS, NULL, 2);
    count(f, KEYS_BY_PERSONA, "boss", KEYS_NOW, "a", 2);
    count(f, KEYS_BY_PERSONA, "boss", KEYS_HANDOFFS, NULL, 3);
    count(f, KEYS_BY_PERSONA, "-", KEYS_LEADS, NULL, 1);
    count(f, KEYS_BY_PERSONA, "-", KEYS_NOW, "lost", 1);
    count(f, KEYS_BY_PERSONA, "looker", KEYS_LEADS, NULL, 0);
    count(f, KEYS_BY_PERSONA, "looker", KEYS_ENTERED, "a", 0);
    count(f, KEYS_BY_SOURCE, "sales", KEYS_LEADS, NULL, 1);
    count(f, KEYS_BY_SOURCE, "marketing", KEYS_LEADS, NULL, 2);
    count(f, KEYS_BY_COHORT, "2026-W48", KEYS_LEADS, NULL, 3);
}

static void test_funnel_whole(void **state)
{
    fixture_t *f = *state;
    s_group_leads(f);
    report_funnel_t *r = NULL;
    const char *err = NULL;
    assert_int_equal(report_funnel(f->d, &f->rd, "", "", &r, &err), 0);
    assert_int_equal(r->all.leads, 3);
    assert_string_equal(r->all.name, "");
    assert_int_equal(r->all.n_stages, f->d->n_stages);
    assert_string_equal(r->all.stages[0].stage, "a");
    assert_int_equal(r->all.stages[0].now, 2);
    assert_int_equal(r->all.stages[0].entered, 3);
    assert_int_equal(r->all.stages[0].advanced, 1);
    assert_false(r->all.stages[0].terminal);
    assert_string_equal(r->all.stages[4].stage, "lost");
    assert_int_equal(r->all.stages[4].now, 1);
    assert_true(r->all.stages[4].terminal);
    assert_true(r->all.stages[3].terminal);     /* won */
    assert_int_equal(r->all.handoffs.sent, 4);
    assert_int_equal(r->all.handoffs.accepted, 1);
    assert_int_equal(r->all.handoffs.rejected, 2);
    assert_int_equal(r->n_groups, 0);
    assert_string_equal(r->by, "");
    report_funnel_free(&r);
    assert_null(r);
    report_funnel_free(&r);     /* NULL is fine */
}

static void test_funnel_groups(void **state)
{
    fixture_t *f = *state;
    s_group_leads(f);
    report_funnel_t *r = NULL;
    const char *err = NULL;

    /* in name order; a persona every lead left is not a group */
    assert_int_equal(report_funnel(f->d, &f->rd, "persona", NULL, &r, &err), 0);
    assert_string_equal(r->by, "persona");
    assert_int_equal(r->all.leads, 3);
    assert_int_equal(r->n_groups, 2);
    assert_string_equal(r->groups[0].name, "-");
    assert_int_equal(r->groups[0].leads, 1);
    assert_int_equal(r->groups[0].stages[4].now, 1);
    assert_string_equal(r->groups[1].name, "boss");
    assert_int_equal(r->groups[1].leads, 2);
    assert_int_equal(r->groups[1].stages[0].now, 2);
    assert_int_equal(r->groups[1].handoffs.sent, 3);
    report_funnel_free(&r);

    assert_int_equal(report_funnel(f->d, &f->rd, "source", NULL, &r, &err), 0);
    assert_int_equal(r->n_groups, 2);
    assert_string_equal(r->groups[0].name, "marketing");
    assert_int_equal(r->groups[0].leads, 2);
    assert_string_equal(r->groups[1].name, "sales");
    report_funnel_free(&r);

    assert_int_equal(report_funnel(f->d, &f->rd, "cohort", NULL, &r, &err), 0);
    assert_int_equal(r->n_groups, 1);
    assert_string_equal(r->groups[0].name, "2026-W48");
    assert_int_equal(r->groups[0].leads, 3);
    report_funnel_free(&r);
}

static void test_funnel_persona(void **state)
{
    fixture_t *f = *state;
    s_group_leads(f);
    report_funnel_t *r = NULL;
    const char *err = NULL;

    /* the top-level counts are the persona's */
    assert_int_equal(report_funnel(f->d, &f->rd, NULL, "boss", &r, &err), 0);
    assert_string_equal(r->persona, "boss");
    assert_int_equal(r->all.leads, 2);
    assert_int_equal(r->all.stages[0].now, 2);
    assert_int_equal(r->all.handoffs.sent, 3);
    assert_int_equal(r->n_groups, 0);
    report_funnel_free(&r);

    /* with the breakdown by persona: that persona's group only */
    assert_int_equal(report_funnel(f->d, &f->rd, "persona", "boss", &r, &err), 0);
    assert_int_equal(r->n_groups, 1);
    assert_string_equal(r->groups[0].name, "boss");
    report_funnel_free(&r);

    /* a persona of the definition without leads is empty, not an error */
    assert_int_equal(report_funnel(f->d, &f->rd, "persona", "looker", &r, &err), 0);
    assert_int_equal(r->all.leads, 0);
    assert_int_equal(r->n_groups, 0);
    report_funnel_free(&r);

    assert_string_equal(funnel_err(f, NULL, "ghost"),
                        "no such persona in the definition or the counters");
    assert_string_equal(funnel_err(f, NULL, "a/b"), "no such persona");
    assert_string_equal(funnel_err(f, "source", "boss"),
                        "a persona filter combines only with a breakdown by persona");
    assert_string_equal(funnel_err(f, "country", NULL),
                        "unknown breakdown: by wants persona, source or cohort");
    f->fail_counters = true;
    assert_string_equal(funnel_err(f, "persona", NULL), "storage error");
}

/* -- friction ------------------------------------------------------------ */

static void test_friction_ranking(void **state)
{
    fixture_t *f = *state;
    /* conversion below target, ever (no window checked yet): b's shortfall
     * (0.8 - 1/3) is larger than a's (0.5 - 0.3) */
    count(f, -1, NULL, KEYS_ENTERED, "a", 10);
    count(f, -1, NULL, KEYS_ADVANCED, "a", 3);
    count(f, -1, NULL, KEYS_ENTERED, "b", 3);
    count(f, -1, NULL, KEYS_ADVANCED, "b", 1);
    /* dwell: a's median (0.6d) reaches half its max_dwell (1d); b's (0.5d)
     * does not reach half of 2d; c has no max_dwell and 20 stays */
    dwell(f, "a", DAY * 6 / 10, 5);
    dwell(f, "b", DAY / 2, 5);
    dwell(f, "c", HOUR, 20);
    /* stalls: b more than a; regressions tied: stage order */
    count(f, -1, NULL, KEYS_STALLS, "a", 2);
    count(f, -1, NULL, KEYS_STALLS, "b", 5);
    count(f, -1, NULL, KEYS_STALLED, "b", 1);
    count(f, -1, NULL, KEYS_REGRESSIONS, "b", 3);
    count(f, -1, NULL, KEYS_REGRESSIONS, "a", 3);
    count(f, -1, NULL, KEYS_REJECTIONS, "b", 4);
    count(f, -1, NULL, KEYS_REJREASON, "no budget", 3);
    count(f, -1, NULL, KEYS_REJREASON, "timing", 1);
    count(f, -1, NULL, KEYS_SLA_WAITING, NULL, 2);
    count(f, -1, NULL, KEYS_SLA_BREACHES, NULL, 7);

    report_friction_t *r = friction(f, "", "", false, 0);
    static const struct { report_point_kind_t kind; const char *stage; } want[] = {
        { REPORT_POINT_CONVERSION, "b" }, { REPORT_POINT_CONVERSION, "a" },
        { REPORT_POINT_DWELL, "a" },      { REPORT_POINT_DWELL, "c" },
        { REPORT_POINT_STALL, "b" },      { REPORT_POINT_STALL, "a" },
        { REPORT_POINT_REGRESSION, "a" }, { REPORT_POINT_REGRESSION, "b" },
        { REPORT_POINT_HANDOFF_REJECTED, "b" }, { REPORT_POINT_HANDOFF_SLA, "" },
    };
    assert_int_equal(r->all.n_points, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < r->all.n_points; i++) {
        const report_point_t *p = &r->all.points[i];
        assert_int_equal(p->rank, i + 1);
        assert_int_equal(p->kind, want[i].kind);
        assert_string_equal(p->stage, want[i].stage);
    }
    const report_point_t *p = r->all.points;
    assert_float_equal(p[0].value, 1.0 / 3, 1e-12);
    assert_string_equal(p[0].summary,
                        "b: conversion 33.3% against target 80.0% (1 of 3 ever)");
    assert_float_equal(p[1].value, 0.3, 1e-12);
    assert_float_equal(p[2].value, (double)dwell_value(dwell_bucket(DAY * 6 / 10)), 0);
    assert_int_equal(stage_of(&r->all, "a")->median_ms,
                     dwell_value(dwell_bucket(DAY * 6 / 10)));
    assert_int_equal(stage_of(&r->all, "c")->completed, 20);
    assert_float_equal(p[4].value, 5, 0);
    assert_string_equal(p[4].summary, "b: 5 stalls, 1 stalled now");
    assert_string_equal(p[6].summary, "a: 3 moves back");
    assert_string_equal(p[8].summary,
                        "b: 4 handoffs rejected; top reasons over all stages: no budget (3), timing (1)");
    assert_string_equal(p[9].summary,
                        "2 handoffs waiting past the SLA of 1h (7 breaches ever)");
    assert_int_equal(r->all.past_sla, 2);
    assert_int_equal(r->all.breaches, 7);
    assert_string_equal(report_point_kind_name(REPORT_POINT_HANDOFF_REJECTED),
                        "handoff_rejected");

    /* terminal stages have no conversion; the rest is as counted */
    const report_stage_friction_t *won = stage_of(&r->all, "won");
    assert_false(won->has_conversion);
    assert_int_equal(won->completed, 0);
    assert_int_equal(won->median_ms, -1);
    assert_int_equal(stage_of(&r->all, "b")->max_dwell_ms, 2 * DAY);
    report_friction_free(&r);
}

static void test_friction_dwell_rules(void **state)
{
    fixture_t *f = *state;
    /* below half of max_dwell, and 19 stays without a max_dwell: no point */
    dwell(f, "a", DAY * 4 / 10, 30);
    dwell(f, "c", 30 * HOUR, 19);
    report_friction_t *r = friction(f, NULL, NULL, false, 0);
    assert_int_equal(r->all.n_points, 0);
    assert_int_equal(stage_of(&r->all, "c")->completed, 19);
    report_friction_free(&r);

    /* the 20th stay makes c's median count; a's median moves past half */
    dwell(f, "c", 30 * HOUR, 1);
    dwell(f, "a", DAY * 7 / 10, 31);
    r = friction(f, NULL, NULL, false, 0);
    assert_int_equal(r->all.n_points, 2);
    assert_int_equal(r->all.points[0].kind, REPORT_POINT_DWELL);
    assert_string_equal(r->all.points[0].stage, "c");   /* 30h > 0.7d */
    assert_string_equal(r->all.points[1].stage, "a");
    char want[200], t1[32], t2[32];
    int64_t m = dwell_value(dwell_bucket(DAY * 7 / 10));
    snprintf(want, sizeof want, "a: median stay %s, p90 %s over 61 completed stays "
             "(max_dwell 1d)", hnd_duration_text(m, t1, sizeof t1),
             hnd_duration_text(m, t2, sizeof t2));
    assert_string_equal(r->all.points[1].summary, want);
    report_friction_free(&r);
}

static void test_friction_reasons(void **state)
{
    fixture_t *f = *state;
    /* 12 reasons: most frequent first, ties by name, at most 10 kept */
    const char *names[] = { "k", "j", "i", "h", "g", "f", "e", "d", "c", "b",
                            "a", "zero" };
    for (int i = 0; i < 11; i++)
        count(f, -1, NULL, KEYS_REJREASON, names[i], i < 5 ? 2 : 1);
    count(f, -1, NULL, KEYS_REJREASON, names[11], 0);   /* not a reason */
    count(f, -1, NULL, KEYS_REJECTIONS, "a", 16);
    report_friction_t *r = friction(f, NULL, NULL, false, 0);
    static const char *order[] = { "g", "h", "i", "j", "k", "a", "b", "c", "d", "e" };
    assert_int_equal(r->all.n_reasons, 10);
    for (size_t i = 0; i < 10; i++) {
        assert_string_equal(r->all.reasons[i].reason, order[i]);
        assert_int_equal(r->all.reasons[i].count, i < 5 ? 2 : 1);
    }
    assert_int_equal(r->all.n_points, 1);
    assert_string_equal(r->all.points[0].summary,
                        "a: 16 handoffs rejected; top reasons over all stages: g (2), h (2), i (2)");
    report_friction_free(&r);
}

static void test_friction_window(void **state)
{
    fixture_t *f = *state;
    char key[KEYS_KEY_MAX];
    int64_t today = 20717;
    /* ever: a at 6/10 (above 0.5); the 3-day window: 1 of 5 (below) */
    count(f, -1, NULL, KEYS_ENTERED, "a", 10);
    count(f, -1, NULL, KEYS_ADVANCED, "a", 6);
    add(f, keys_conv_day, today);
    add(f, keys_conv(key, sizeof key, "a", false, today - 3), 50);  /* left it */
    add(f, keys_conv(key, sizeof key, "a", false, today - 2), 3);
    add(f, keys_conv(key, sizeof key, "a", false, today), 2);
    add(f, keys_conv(key, sizeof key, "a", true, today - 1), 1);
    add(f, keys_conv_below(key, sizeof key, "a"), 1);
    /* b: 3 entries in the window, under min_sample 4: ever counts */
    count(f, -1, NULL, KEYS_ENTERED, "b", 10);
    count(f, -1, NULL, KEYS_ADVANCED, "b", 9);
    add(f, keys_conv(key, sizeof key, "b", false, today), 3);
    /* the same counters in a group get no window */
    count(f, KEYS_BY_PERSONA, "boss", KEYS_ENTERED, "a", 10);
    count(f, KEYS_BY_PERSONA, "boss", KEYS_ADVANCED, "a", 6);

    report_friction_t *r = friction(f, "persona", NULL, false, 0);
    assert_int_equal(r->window_days, 3);
    assert_int_equal(r->min_sample, 4);
    assert_int_equal(r->window_end_ms, today * DAY);
    const report_stage_friction_t *a = stage_of(&r->all, "a");
    assert_int_equal(a->window_entered, 5);
    assert_int_equal(a->window_advanced, 1);
    assert_true(a->has_window_conversion);
    assert_float_equal(a->window_conversion, 0.2, 1e-12);
    assert_true(a->below_target);
    assert_true(a->has_conversion);
    assert_float_equal(a->conversion, 0.6, 1e-12);
    const report_stage_friction_t *b = stage_of(&r->all, "b");
    assert_int_equal(b->window_entered, 3);
    assert_false(b->has_window_conversion);
    assert_false(b->below_target);
    assert_int_equal(r->all.n_points, 1);
    assert_string_equal(r->all.points[0].summary,
                        "a: conversion 20.0% against target 50.0% (1 of 5 in the window)");

    assert_int_equal(r->n_groups, 1);
    assert_string_equal(r->groups[0].name, "boss");
    a = stage_of(&r->groups[0], "a");
    assert_int_equal(a->entered, 10);
    assert_int_equal(a->window_entered, 0);
    assert_false(a->has_window_conversion);
    assert_false(a->below_target);
    assert_int_equal(r->groups[0].n_points, 0);     /* 0.6 ever: on target */
    report_friction_free(&r);
}

static void test_friction_groups(void **state)
{
    fixture_t *f = *state;
    /* every group with a counter is listed (friction totals stay where
     * they were booked), in name order, each ranked on its own */
    count(f, KEYS_BY_SOURCE, "sales", KEYS_STALLS, "b", 2);
    count(f, KEYS_BY_SOURCE, "sales", KEYS_REGRESSIONS, "a", 1);
    count(f, KEYS_BY_SOURCE, "marketing", KEYS_SLA_WAITING, NULL, 1);
    count(f, KEYS_BY_SOURCE, "marketing", KEYS_REJREASON, "late", 1);
    count(f, KEYS_BY_PERSONA, "boss", KEYS_STALLS, "a", 9);
    count(f, -1, NULL, KEYS_STALLS, "b", 2);

    report_friction_t *r = friction(f, "source", NULL, false, 0);
    assert_string_equal(r->by, "source");
    assert_int_equal(r->all.n_points, 1);
    assert_int_equal(r->n_groups, 2);
    const report_friction_group_t *m = &r->groups[0], *s = &r->groups[1];
    assert_string_equal(m->name, "marketing");
    assert_int_equal(m->past_sla, 1);
    assert_int_equal(m->n_points, 1);
    assert_int_equal(m->points[0].kind, REPORT_POINT_HANDOFF_SLA);
    assert_int_equal(m->n_reasons, 1);
    assert_string_equal(m->reasons[0].reason, "late");
    assert_string_equal(s->name, "sales");
    assert_int_equal(s->n_points, 2);
    assert_int_equal(s->points[0].kind, REPORT_POINT_STALL);
    assert_string_equal(s->points[0].stage, "b");
    assert_int_equal(s->points[1].kind, REPORT_POINT_REGRESSION);
    assert_int_equal(s->points[1].rank, 2);
    report_friction_free(&r);

    assert_string_equal(friction_err(f, "week", NULL, false),
                        "unknown breakdown: by wants persona, source or cohort");
    f->fail_counters = true;
    assert_string_equal(friction_err(f, "persona", NULL, false), "storage error");
}

static void test_friction_leads(void **state)
{
    fixture_t *f = *state;
    char set[HND_MARK_SET_MAX + 1];
    mark(f, keys_mark_stalled(set, sizeof set, "a"), "L2", 200);
    mark(f, keys_mark_stalled(set, sizeof set, "a"), "L1", 200);
    mark(f, keys_mark_stalled(set, sizeof set, "b"), "L3", 100);
    mark(f, keys_mark_sla, "L4", 150);

    /* without leads: none listed */
    report_friction_t *r = friction(f, NULL, NULL, false, 0);
    assert_int_equal(r->n_leads, 0);
    assert_int_equal(r->leads_total, 0);
    report_friction_free(&r);

    /* every set, stalled longest first, ties by lead id */
    r = friction(f, NULL, NULL, true, 0);
    static const char *order[] = { "L3", "L4", "L1", "L2" };
    assert_int_equal(r->leads_total, 4);
    assert_int_equal(r->n_leads, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(r->leads[i].lead_id, order[i]);
    assert_string_equal(r->leads[0].set, "stalled/b");
    assert_string_equal(r->leads[0].stage, "b");
    assert_int_equal(r->leads[0].since_ms, 100);
    assert_string_equal(r->leads[1].set, keys_mark_sla);
    assert_string_equal(r->leads[1].stage, "");
    report_friction_free(&r);

    /* the limit cuts the list, not the total */
    r = friction(f, NULL, NULL, true, 2);
    assert_int_equal(r->leads_total, 4);
    assert_int_equal(r->n_leads, 2);
    assert_string_equal(r->leads[1].lead_id, "L4");
    report_friction_free(&r);

    /* one stage: its stalled leads only */
    r = friction(f, NULL, "a", true, 0);
    assert_int_equal(r->leads_total, 2);
    assert_string_equal(r->leads[0].lead_id, "L1");
    assert_string_equal(r->leads[1].lead_id, "L2");
    report_friction_free(&r);

    const char *bad = "no such stage (a stage of the funnel order that is not terminal)";
    assert_string_equal(friction_err(f, NULL, "won", true), bad);
    assert_string_equal(friction_err(f, NULL, "lost", true), bad);
    assert_string_equal(friction_err(f, NULL, "zz", true), bad);
    f->fail_marks = true;
    assert_string_equal(friction_err(f, NULL, NULL, true), "storage error");
}

/* Two reports of the same counters are equal field by field, and a report
 * outlives the definition it was made under. */
static void test_friction_owns(void **state)
{
    fixture_t *f = *state;
    count(f, -1, NULL, KEYS_STALLS, "a", 2);
    report_friction_t *r1 = friction(f, NULL, NULL, false, 0);
    report_friction_t *r2 = friction(f, NULL, NULL, false, 0);
    defn_destroy(&f->d);
    f->d = fixture_defn(s_yaml, "r.yaml");
    assert_int_equal(r1->all.n_stages, r2->all.n_stages);
    for (size_t i = 0; i < r1->all.n_stages; i++) {
        assert_string_equal(r1->all.stages[i].stage, r2->all.stages[i].stage);
        assert_int_equal(r1->all.stages[i].stalls, r2->all.stages[i].stalls);
    }
    assert_string_equal(r1->all.points[0].summary, r2->all.points[0].summary);
    assert_string_equal(r1->all.points[0].stage, "a");
    report_friction_free(&r1);
    report_friction_free(&r2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_funnel_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_funnel_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_funnel_persona, setup, teardown),
        cmocka_unit_test_setup_teardown(test_friction_ranking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_friction_dwell_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_friction_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_friction_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_friction_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_friction_leads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_friction_owns, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
