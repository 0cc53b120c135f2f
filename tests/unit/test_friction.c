/* test_friction.c: friction points (h_friction.c): stall and SLA deadlines
 * set and cleared with the lead's moves, a stall alerted once per stay,
 * late breaches, rejection and regression counters, the dwell histograms'
 * quantiles against an exact sorted-array computation, and the conversion
 * check's window and crossings. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dwell.h"
#include "lead_fixture.h"
#include "pipeline.h"

#define T0 1790000000000LL      /* a day boundary: 20717 * 86400000 + ... */
#define HOUR 3600000LL
#define DAY 86400000LL

static const char s_yaml[] =
    "name: f\n"
    "stages:\n"
    "  - {name: a, max_dwell: 1d, conversion_target: 0.5}\n"
    "  - {name: b, max_dwell: 2d}\n"
    "  - {name: won, terminal: true}\n"
    "exits: [{name: lost}]\n"
    "transitions:\n"
    "  - {types: [pa], to: a}\n"
    "  - {types: [pb], to: b}\n"
    "  - {types: [win], to: won}\n"
    "  - {types: [lose], to: lost}\n"
    "regressions:\n"
    "  - {types: [back], to: a}\n"
    "scoring:\n"
    "  engagement: [{type: hot, points: 50}]\n"
    "qualification: {engagement: 50}\n"
    "handoff: {sla: 1h, recycle_to: a}\n"
    "friction: {conversion_window: 3d, min_sample: 4}\n";

typedef struct {
    char key[HND_COUNTER_KEY_MAX];
    int64_t v;
} counter_t;

typedef struct {
    defn_t *d;
    hnd_lead_t lead;
    hnd_effects_t fx;
    int n;
    counter_t counters[4096];
    size_t n_counters;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = test_calloc(1, sizeof *f);
    f->d = fixture_defn(s_yaml, "f.yaml");
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

/* -- a counter store, as the daemon keeps the aggregates -------------- */

static int64_t *s_slot(fixture_t *f, const char *key)
{
    for (size_t i = 0; i < f->n_counters; i++)
        if (strcmp(f->counters[i].key, key) == 0)
            return &f->counters[i].v;
    assert_true(f->n_counters < 4096);
    counter_t *c = &f->counters[f->n_counters++];
    snprintf(c->key, sizeof c->key, "%s", key);
    c->v = 0;
    return &c->v;
}

static int64_t get_counter(const char *key, void *arg)
{
    return *s_slot(arg, key);
}

static void commit(fixture_t *f)
{
    for (size_t i = 0; i < f->fx.n_deltas; i++)
        *s_slot(f, f->fx.deltas[i].key) += f->fx.deltas[i].delta;
}

static int64_t counter(fixture_t *f, const char *key)
{
    return *s_slot(f, key);
}

/* -- helpers ----------------------------------------------------------- */

static void apply_at(fixture_t *f, hnd_lead_t *lead, const char *lead_id,
                     bool is_new, const char *type, int64_t at,
                     const hnd_kv_t *kv, size_t n)
{
    fixture_event(f->d, lead, &f->fx, f->n, lead_id, is_new, type, HND_SRC_SALES, at,
                  kv, n, 1);
    commit(f);
    f->n++;
}

static void apply(fixture_t *f, const char *type, int64_t at)
{
    apply_at(f, &f->lead, "L", f->n == 0, type, at, NULL, 0);
}

static void fire(fixture_t *f, const char *kind, int64_t due, int64_t now)
{
    assert_int_equal(pipeline_deadline(f->d, &f->lead, kind, due, now, &f->fx), 0);
    commit(f);
}

#define alert fx_alert

static const hnd_deadline_t *deadline(const hnd_effects_t *fx, const char *kind)
{
    for (size_t i = 0; i < fx->n_deadlines; i++)
        if (strcmp(fx->deadlines[i].kind, kind) == 0)
            return &fx->deadlines[i];
    return NULL;
}

static const hnd_mark_t *mark(const hnd_effects_t *fx, const char *set)
{
    for (size_t i = 0; i < fx->n_marks; i++)
        if (strcmp(fx->marks[i].set, set) == 0)
            return &fx->marks[i];
    return NULL;
}

/* -- deadlines ---------------------------------------------------------- */

static void test_stall_deadline_follows_stage(void **state)
{
    fixture_t *f = *state;
    apply(f, "pa", T0);                 /* new lead in a: due T0 + 1d */
    const hnd_deadline_t *dl = deadline(&f->fx, "stall");
    assert_non_null(dl);
    assert_false(dl->clear);
    assert_int_equal(dl->due_ms, T0 + DAY);

    apply(f, "hot", T0 + HOUR);         /* no move: no stall deadline */
    assert_null(deadline(&f->fx, "stall"));
    assert_non_null(deadline(&f->fx, "sla"));   /* qualified: SLA 1h */
    assert_int_equal(deadline(&f->fx, "sla")->due_ms, T0 + 2 * HOUR);

    apply(f, "pb", T0 + 2 * HOUR);      /* into b: replaced, due + 2d */
    dl = deadline(&f->fx, "stall");
    assert_non_null(dl);
    assert_false(dl->clear);
    assert_int_equal(dl->due_ms, T0 + 2 * HOUR + 2 * DAY);

    apply(f, "win", T0 + 3 * HOUR);     /* terminal: no limit, cleared */
    dl = deadline(&f->fx, "stall");
    assert_non_null(dl);
    assert_true(dl->clear);
    assert_int_equal(f->fx.n_deadlines, 1);
}

static void test_stall_once_per_stay(void **state)
{
    fixture_t *f = *state;
    apply(f, "pa", T0);

    /* Early (a stale or re-armed deadline): re-set, nothing flagged. */
    fire(f, "stall", T0 + DAY, T0 + DAY - 1);
    assert_int_equal(f->fx.n_alerts, 0);
    assert_int_equal(deadline(&f->fx, "stall")->due_ms, T0 + DAY);
    assert_false(f->lead.stalled);

    fire(f, "stall", T0 + DAY, T0 + DAY);
    const hnd_alert_t *a = alert(&f->fx, "stall");
    assert_non_null(a);
    assert_string_equal(a->topic, "friction.stall");
    assert_int_equal(a->stage, 0);
    assert_int_equal(a->at_ms, T0 + DAY);
    assert_true(f->lead.stalled);
    const hnd_mark_t *m = mark(&f->fx, "stalled/a");
    assert_non_null(m);
    assert_true(m->on);
    assert_int_equal(m->since_ms, T0);
    assert_int_equal(counter(f, "friction/stall/a"), 1);
    assert_int_equal(counter(f, "stalled/a"), 1);
    assert_int_equal(counter(f, "by/persona/-/stalled/a"), 1);
    assert_int_equal(counter(f, "by/source/sales/friction/stall/a"), 1);
    assert_int_equal(f->lead.n_friction, 1);
    assert_string_equal(f->lead.friction[0].kind, "stall");
    assert_int_equal(f->lead.friction[0].duration_ms, DAY);

    /* The same deadline again (delivered twice): nothing more. */
    fire(f, "stall", T0 + DAY, T0 + 2 * DAY);
    assert_int_equal(f->fx.n_alerts, 0);
    assert_int_equal(counter(f, "friction/stall/a"), 1);

    /* Leaving ends the stay: out of the set, no second alert. */
    apply(f, "pb", T0 + 3 * DAY);
    assert_null(alert(&f->fx, "stall"));
    m = mark(&f->fx, "stalled/a");
    assert_non_null(m);
    assert_false(m->on);
    assert_false(f->lead.stalled);
    assert_int_equal(counter(f, "stalled/a"), 0);
    assert_int_equal(counter(f, "friction/stall/a"), 1);
    char key[64];
    snprintf(key, sizeof key, "dwell/a/%03d", dwell_bucket(3 * DAY));
    assert_int_equal(counter(f, key), 1);

    /* A stay in b past max_dwell whose deadline never fired (the move
     * came in the same group): flagged as it leaves, once. */
    apply(f, "lose", T0 + 6 * DAY);
    a = alert(&f->fx, "stall");
    assert_non_null(a);
    assert_int_equal(a->stage, 1);
    assert_int_equal(counter(f, "friction/stall/b"), 1);
    assert_int_equal(counter(f, "stalled/b"), 0);   /* never stalled "now" */
    assert_null(mark(&f->fx, "stalled/b"));
    assert_int_equal(counter(f, "dropped/b"), 1);
    assert_int_equal(f->lead.n_friction, 2);
    /* Its deadline, if it still comes, finds a lead in lost: nothing. */
    fire(f, "stall", T0 + 3 * DAY + 2 * DAY, T0 + 7 * DAY);
    assert_int_equal(f->fx.n_alerts, 0);
}

static void test_stall_not_before_max_dwell(void **state)
{
    fixture_t *f = *state;
    apply(f, "pa", T0);
    apply(f, "pb", T0 + DAY - 1);       /* just inside the limit */
    assert_null(alert(&f->fx, "stall"));
    assert_int_equal(counter(f, "friction/stall/a"), 0);
    apply(f, "win", T0 + DAY - 1 + 2 * DAY);    /* exactly max_dwell: stall */
    assert_non_null(alert(&f->fx, "stall"));
    assert_int_equal(counter(f, "friction/stall/b"), 1);
}

static void test_handoff_sla(void **state)
{
    fixture_t *f = *state;
    apply(f, "pa", T0);
    apply(f, "hot", T0 + HOUR);         /* handoff pending, SLA 1h */
    assert_int_equal(f->lead.handoff, HND_HANDOFF_PENDING);

    fire(f, "sla", T0 + 2 * HOUR, T0 + 2 * HOUR);
    const hnd_alert_t *a = alert(&f->fx, "handoff_sla");
    assert_non_null(a);
    assert_string_equal(a->topic, "friction.handoff_sla");
    assert_true(f->lead.sla_breached);
    assert_non_null(mark(&f->fx, "sla_breached"));
    assert_true(mark(&f->fx, "sla_breached")->on);
    assert_int_equal(counter(f, "sla/waiting"), 1);
    assert_int_equal(counter(f, "friction/handoff_sla"), 1);
    fire(f, "sla", T0 + 2 * HOUR, T0 + 3 * HOUR);   /* once */
    assert_int_equal(f->fx.n_alerts, 0);

    apply(f, "handoff_accepted", T0 + 5 * HOUR);
    assert_true(deadline(&f->fx, "sla")->clear);
    assert_false(mark(&f->fx, "sla_breached")->on);
    assert_false(f->lead.sla_breached);
    assert_int_equal(counter(f, "sla/waiting"), 0);
    assert_int_equal(counter(f, "friction/handoff_sla"), 1);
    assert_null(alert(&f->fx, "handoff_sla"));
}

static void test_rejection_late_sla_and_regression(void **state)
{
    fixture_t *f = *state;
    apply(f, "pa", T0);
    apply(f, "pb", T0 + HOUR);
    apply(f, "hot", T0 + 2 * HOUR);     /* pending in b */
    hnd_kv_t why[] = { { "reason", "no budget" } };
    apply_at(f, &f->lead, "L", false, "handoff_rejected", T0 + 4 * HOUR, why, 1);
    /* answered 2h after the handoff: late, not flagged yet */
    assert_non_null(alert(&f->fx, "handoff_sla"));
    assert_non_null(alert(&f->fx, "handoff_rejected"));
    const hnd_alert_t *r = alert(&f->fx, "regression");  /* recycled to a */
    assert_non_null(r);
    assert_string_equal(r->topic, "friction.regression");
    assert_int_equal(counter(f, "friction/handoff_sla"), 1);
    assert_int_equal(counter(f, "sla/waiting"), 0);
    assert_int_equal(counter(f, "friction/handoff_rejected/b"), 1);
    assert_int_equal(counter(f, "rejreason/no budget"), 1);
    assert_int_equal(counter(f, "by/persona/-/rejreason/no budget"), 1);
    assert_int_equal(counter(f, "friction/regression/b"), 1);
    /* history: handoff_sla, handoff_rejected, regression (oldest first) */
    assert_int_equal(f->lead.frictions, 3);
    assert_string_equal(f->lead.friction[0].kind, "handoff_sla");
    assert_string_equal(f->lead.friction[1].kind, "handoff_rejected");
    assert_string_equal(f->lead.friction[1].detail, "no budget");
    assert_string_equal(f->lead.friction[2].kind, "regression");

    /* The history is bounded: the newest HND_FRICTION_MAX are kept. */
    for (int i = 0; i < 10; i++) {
        apply(f, "pb", T0 + (5 + 2 * i) * HOUR);
        apply(f, "back", T0 + (6 + 2 * i) * HOUR);
    }
    assert_int_equal(f->lead.n_friction, HND_FRICTION_MAX);
    assert_int_equal(f->lead.frictions, 13);
    assert_int_equal(counter(f, "friction/regression/b"), 11);
}

/* -- histograms -------------------------------------------------------- */

static uint64_t s_rng = 0x9E3779B97F4A7C15ULL;

static uint64_t s_next(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_dwell_buckets(void **state)
{
    (void)state;
    assert_int_equal(dwell_bucket(-5), 0);
    assert_int_equal(dwell_bucket(999), 0);
    assert_int_equal(dwell_bucket(1000), 1);
    for (int k = 1; k < DWELL_BUCKETS - 1; k++) {
        int64_t lo = dwell_bucket_lo(k), hi = dwell_bucket_lo(k + 1);
        assert_true(hi > lo);
        assert_int_equal(dwell_bucket(lo), k);
        assert_int_equal(dwell_bucket(hi - 1), k);
        int64_t v = dwell_value(k);
        assert_true(v >= lo && v < hi);
        /* the representative is within the bound of both ends */
        assert_true(fabs((double)(v - lo)) <= DWELL_REL_ERROR * (double)lo);
        assert_true(fabs((double)(hi - 1 - v)) <= DWELL_REL_ERROR * (double)(hi - 1));
    }
    /* 36500 days fit below the open-ended last bucket */
    assert_true(dwell_bucket(36500 * DAY) < DWELL_BUCKETS - 1);
}

/* Quantiles from the histogram against the nearest-rank quantile of the
 * sorted values: within DWELL_REL_ERROR (2.2%) for values of 1 s or more,
 * 0 for values under 1 s. */
static void test_dwell_quantiles(void **state)
{
    (void)state;
    enum { N = 20000 };
    int64_t *v = test_malloc(N * sizeof *v);
    uint64_t *counts = test_calloc(DWELL_BUCKETS, sizeof *counts);
    const double qs[] = { 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0 };

    for (int dist = 0; dist < 4; dist++)
        for (int n = 1; n <= N; n = n < 10 ? n + 1 : n * 3) {
            memset(counts, 0, DWELL_BUCKETS * sizeof *counts);
            for (int i = 0; i < n; i++) {
                uint64_t r = s_next();
                switch (dist) {
                case 0:     /* uniform over 0..30 days */
                    v[i] = (int64_t)(r % (uint64_t)(30 * DAY));
                    break;
                case 1:     /* log-uniform over 1 ms .. 1 year */
                    v[i] = (int64_t)exp2((double)(r % 35000) / 1000.0);
                    break;
                case 2:     /* a few distinct values, many ties */
                    v[i] = (int64_t)(r % 4) * 7 * DAY + 1000;
                    break;
                default:    /* sub-second and seconds */
                    v[i] = (int64_t)(r % 5000);
                    break;
                }
                counts[dwell_bucket(v[i])]++;
            }
            qsort(v, (size_t)n, sizeof *v, s_cmp_i64);
            for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
                size_t rank = (size_t)ceil(qs[k] * n);
                if (rank < 1)
                    rank = 1;
                int64_t exact = v[rank - 1];
                int64_t est = dwell_quantile(counts, qs[k]);
                if (exact < 1000)
                    assert_int_equal(est, 0);
                else if (fabs((double)(est - exact)) > DWELL_REL_ERROR * (double)exact)
                    fail_msg("dist %d n %d q %.2f: exact %lld, histogram %lld", dist,
                             n, qs[k], (long long)exact, (long long)est);
            }
        }
    memset(counts, 0, DWELL_BUCKETS * sizeof *counts);
    assert_int_equal(dwell_quantile(counts, 0.5), -1);
    test_free(v);
    test_free(counts);
}

/* -- the conversion window ---------------------------------------------- */

static void check(fixture_t *f, int64_t now)
{
    pipeline_funnel_check(f->d, now, get_counter, f, &f->fx);
    commit(f);
}

static void enter(fixture_t *f, const char *id, int64_t at)
{
    hnd_lead_t lead;
    apply_at(f, &lead, id, true, "pa", at, NULL, 0);
}

static void enter_and_advance(fixture_t *f, const char *id, int64_t at,
                              int64_t advance_at)
{
    hnd_lead_t lead;
    apply_at(f, &lead, id, true, "pa", at, NULL, 0);
    apply_at(f, &lead, id, false, "pb", advance_at, NULL, 0);
}

static void test_conversion_crossing(void **state)
{
    fixture_t *f = *state;
    int64_t d0 = (T0 / DAY) * DAY;

    /* Three entries, none moved on: below target but under min_sample. */
    enter(f, "c1", d0 + HOUR);
    enter(f, "c2", d0 + HOUR);
    enter(f, "c3", d0 + HOUR);
    check(f, d0 + 2 * HOUR);
    assert_int_equal(f->fx.n_alerts, 0);

    /* The fourth: 0 of 4 < 50%: one alert, on the crossing only. */
    enter(f, "c4", d0 + 3 * HOUR);
    check(f, d0 + 3 * HOUR);
    const hnd_alert_t *a = alert(&f->fx, "conversion");
    assert_non_null(a);
    assert_string_equal(a->topic, "friction.conversion");
    assert_int_equal(a->stage, 0);
    assert_int_equal(f->fx.n_alerts, 1);
    assert_int_equal(counter(f, "~conv/below/a"), 1);
    check(f, d0 + 4 * HOUR);
    assert_int_equal(f->fx.n_alerts, 0);
    enter(f, "c5", d0 + 5 * HOUR);      /* 0 of 5: still below, no alert */
    check(f, d0 + 5 * HOUR);
    assert_int_equal(f->fx.n_alerts, 0);

    /* Next day three move on: 3 of 5 >= 50%: recovered, once. */
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "r%d", i);
        enter_and_advance(f, id, d0 + DAY + HOUR, d0 + DAY + 2 * HOUR);
    }
    check(f, d0 + DAY + 3 * HOUR);      /* 3 of 8: still below */
    assert_int_equal(f->fx.n_alerts, 0);
    enter_and_advance(f, "r3", d0 + DAY + 4 * HOUR, d0 + DAY + 5 * HOUR);
    check(f, d0 + DAY + 5 * HOUR);      /* 4 of 9: below */
    assert_int_equal(f->fx.n_alerts, 0);
    enter_and_advance(f, "r4", d0 + DAY + 6 * HOUR, d0 + DAY + 7 * HOUR);
    check(f, d0 + DAY + 7 * HOUR);      /* 5 of 10: at target */
    assert_non_null(alert(&f->fx, "conversion_recovered"));
    assert_int_equal(counter(f, "~conv/below/a"), 0);
    check(f, d0 + DAY + 8 * HOUR);
    assert_int_equal(f->fx.n_alerts, 0);

    /* Five days later the window (3 days) holds nothing: the old day
     * buckets are dropped, and the state stands without a sample. */
    check(f, d0 + 5 * DAY);
    assert_int_equal(f->fx.n_alerts, 0);
    char key[64];
    snprintf(key, sizeof key, "~conv/a/in/%06lld", (long long)(d0 / DAY));
    assert_int_equal(counter(f, key), 0);
    snprintf(key, sizeof key, "~conv/a/out/%06lld", (long long)(d0 / DAY + 1));
    assert_int_equal(counter(f, key), 0);
    assert_int_equal(counter(f, "~conv/expired"), d0 / DAY + 3);
    assert_int_equal(counter(f, "~conv/day"), d0 / DAY + 5);
    int64_t in, out;
    pipeline_conversion_window(f->d, 0, d0 / DAY + 5, get_counter, f, &in, &out);
    assert_int_equal(in, 0);
    assert_int_equal(out, 0);

    /* Four fresh entries that do not move on: below again. */
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "n%d", i);
        enter(f, id, d0 + 5 * DAY + HOUR);
    }
    check(f, d0 + 5 * DAY + 2 * HOUR);
    assert_non_null(alert(&f->fx, "conversion"));
}

/* -- the definition's friction section --------------------------------- */

static void test_friction_config(void **state)
{
    fixture_t *f = *state;
    char err[512];
    assert_int_equal(f->d->conversion_window_ms, 3 * DAY);
    assert_int_equal(f->d->min_sample, 4);
    assert_true(f->d->alert_recovery);

    static const char base[] =
        "name: g\nstages: [{name: a}]\ntransitions: [{types: [x], to: a}]\n"
        "scoring: {engagement: [{type: x, points: 1}]}\n"
        "qualification: {engagement: 1}\n";
    static const struct { const char *friction, *want; } bad[] = {
        { "friction: {conversion_window: 36h}\n",
          "g.yaml:6:31: friction.conversion_window: '36h' is not a whole number of "
          "days between 1d and 366d" },
        { "friction: {min_sample: 0}\n",
          "g.yaml:6:24: friction.min_sample: 0 is not a whole number of leads from 1 up" },
        { "friction: {alert_recovery: maybe}\n",
          "g.yaml:6:28: friction.alert_recovery: expected true or false, not 'maybe'" },
        { "friction: {window: 7d}\n", "unknown key 'window'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "%s%s", base, bad[i].friction);
        defn_t *d = defn_load_buffer(yaml, strlen(yaml), "g.yaml", err, sizeof err);
        assert_null(d);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("got \"%s\", want \"%s\"", err, bad[i].want);
    }
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%s", base);
    defn_t *d = defn_load_buffer(yaml, strlen(yaml), "g.yaml", err, sizeof err);
    assert_non_null(d);
    assert_int_equal(d->conversion_window_ms, 7 * DAY);     /* defaults */
    assert_int_equal(d->min_sample, 20);
    defn_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stall_deadline_follows_stage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stall_once_per_stay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stall_not_before_max_dwell, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handoff_sla, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejection_late_sla_and_regression, setup,
                                        teardown),
        cmocka_unit_test(test_dwell_buckets),
        cmocka_unit_test(test_dwell_quantiles),
        cmocka_unit_test_setup_teardown(test_conversion_crossing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_friction_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
