/* report.c: see report.h. */
#include "report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "dwell.h"
#include "keys.h"
#include "timetext.h"
#include "xalloc.h"

#define S_DAY_MS TIMETEXT_DAY_MS
#define S_REASONS_MAX 10        /* rejection reasons listed */
#define S_TOP_REASONS 3         /* named in the handoff_rejected point */
#define S_LEADS_DEFAULT 1000
#define S_STALL_SAMPLE 20       /* stays that make a median mean something */

/* Everything a report points to comes from its arena (common/arena.h),
 * freed at once by report_*_free(). */

static void *s_alloc(arena_t *a, size_t n, size_t size)
{
    return arena_calloc(a, n ? n : 1, size);
}

static char *s_strndup(arena_t *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* -- reading ------------------------------------------------------------ */

static uint64_t s_get(const report_reader_t *rd, const char *key)
{
    int64_t v = rd->counter(key, rd->arg);
    return v > 0 ? (uint64_t)v : 0;
}

static uint64_t s_counter(const report_reader_t *rd, const char *prefix,
                          keys_counter_t c, const char *stage)
{
    char key[KEYS_KEY_MAX];
    return s_get(rd, keys_counter(key, sizeof key, prefix, c, stage));
}

/* The distinct group names under keys_by_prefix(by), in key order. */
typedef struct {
    arena_t *arena;
    keys_by_t by;
    const char *prefix;         /* keys_by_prefix(by), or another's */
    char **names;
    size_t n, cap;
} s_groups_t;

static void s_on_group_counter(const char *key, int64_t value, void *arg)
{
    (void)value;
    s_groups_t *g = arg;
    const char *name = key + strlen(g->prefix);
    const char *slash = strchr(name, '/');
    size_t len = slash ? (size_t)(slash - name) : strlen(name);
    if (g->n > 0 && strlen(g->names[g->n - 1]) == len &&
        memcmp(g->names[g->n - 1], name, len) == 0)
        return;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        char **names = s_alloc(g->arena, g->cap, sizeof *names);
        if (g->n)
            memcpy(names, g->names, g->n * sizeof *names);
        g->names = names;
    }
    g->names[g->n++] = s_strndup(g->arena, name, len);
}

static int s_read_groups(const report_reader_t *rd, keys_by_t by,
                         s_groups_t *g)
{
    g->by = by;
    g->prefix = keys_by_prefix(by);
    return rd->counters(rd->arg, g->prefix, s_on_group_counter, g) < 0
               ? -1 : 0;
}

/* -- the funnel ---------------------------------------------------------- */

/* The counts of the leads under counter prefix ("" or a group's). */
static void s_read_counts(const defn_t *d, const report_reader_t *rd,
                          const char *prefix, arena_t *a,
                          report_counts_t *c)
{
    c->leads = s_counter(rd, prefix, KEYS_LEADS, NULL);
    c->n_stages = d->n_stages < DEFN_STAGES_MAX ? d->n_stages : DEFN_STAGES_MAX;
    c->stages = s_alloc(a, c->n_stages, sizeof *c->stages);
    for (size_t i = 0; i < c->n_stages; i++) {
        report_stage_count_t *sc = &c->stages[i];
        const char *nm = d->stages[i].name;
        sc->stage = arena_strdup(a, nm);
        sc->now = s_counter(rd, prefix, KEYS_NOW, nm);
        sc->entered = s_counter(rd, prefix, KEYS_ENTERED, nm);
        sc->advanced = s_counter(rd, prefix, KEYS_ADVANCED, nm);
        sc->terminal = d->stages[i].terminal;
    }
    c->handoffs.sent = s_counter(rd, prefix, KEYS_HANDOFFS, NULL);
    c->handoffs.accepted = s_counter(rd, prefix, KEYS_HANDOFFS_ACCEPTED, NULL);
    c->handoffs.rejected = s_counter(rd, prefix, KEYS_HANDOFFS_REJECTED, NULL);
}

/* Contract in report.h. The breakdown lists the groups that have a
 * counter under its prefix and keeps those with leads now (a persona
 * every lead left has counters at 0). */
int report_funnel(const defn_t *d, const report_reader_t *rd, const char *by,
                  const char *persona, report_funnel_t **out, const char **err)
{
    char prefix[KEYS_PREFIX_MAX] = "";
    by = by ? by : "";
    persona = persona ? persona : "";
    *out = NULL;

    int dim = by[0] ? keys_by_parse(by) : -1;
    if (by[0] && dim < 0) {
        *err = "unknown breakdown: by wants persona, source or cohort";
        return -1;
    }
    if (persona[0] && by[0] && dim != KEYS_BY_PERSONA) {
        *err = "a persona filter combines only with a breakdown by persona";
        return -1;
    }
    if (strlen(persona) > DEFN_NAME_MAX || strchr(persona, '/')) {
        *err = "no such persona";
        return -1;
    }
    if (persona[0])
        keys_group_prefix(prefix, sizeof prefix, KEYS_BY_PERSONA, persona);

    arena_t *a = arena_new(0);
    report_funnel_t *r = s_alloc(a, 1, sizeof *r);
    r->arena = a;
    r->by = arena_strdup(a, by);
    r->persona = arena_strdup(a, persona);
    s_read_counts(d, rd, prefix, a, &r->all);
    r->all.name = arena_strdup(a, "");
    if (persona[0] && r->all.leads == 0) {
        /* A persona the definition does not name and no lead ever had is
         * a typo, not an empty group. */
        bool known = strcmp(persona, HND_GROUP_NONE) == 0;
        for (size_t i = 0; i < d->n_personas && !known; i++)
            known = strcmp(d->personas[i].name, persona) == 0;
        if (!known) {
            *err = "no such persona in the definition or the counters";
            goto fail;
        }
    }
    if (dim >= 0) {
        s_groups_t g = { .arena = a, .by = (keys_by_t)dim };
        if (persona[0]) {
            g.names = s_alloc(a, 1, sizeof *g.names);
            g.names[0] = r->persona;
            g.n = 1;
        } else if (s_read_groups(rd, (keys_by_t)dim, &g) < 0) {
            *err = "storage error";
            goto fail;
        }
        r->groups = s_alloc(a, g.n, sizeof *r->groups);
        for (size_t i = 0; i < g.n; i++) {
            char gpre[KEYS_PREFIX_MAX];
            report_counts_t *c = &r->groups[r->n_groups];
            keys_group_prefix(gpre, sizeof gpre, g.by, g.names[i]);
            s_read_counts(d, rd, gpre, a, c);
            if (c->leads == 0)
                continue;       /* every lead moved to another persona */
            c->name = g.names[i];
            r->n_groups++;
        }
    }
    *out = r;
    return 0;
fail:
    arena_destroy(&a);
    return -1;
}

void report_funnel_free(report_funnel_t **r_p)
{
    if (*r_p) {
        arena_t *a = (*r_p)->arena;     /* *r_p lives in it */
        arena_destroy(&a);
    }
    *r_p = NULL;
}

/* -- friction ------------------------------------------------------------ */

const char *report_point_kind_name(report_point_kind_t kind)
{
    static const char *const names[] = {
        [REPORT_POINT_CONVERSION] = "conversion",
        [REPORT_POINT_DWELL] = "dwell",
        [REPORT_POINT_STALL] = "stall",
        [REPORT_POINT_REGRESSION] = "regression",
        [REPORT_POINT_HANDOFF_REJECTED] = "handoff_rejected",
        [REPORT_POINT_HANDOFF_SLA] = "handoff_sla",
    };
    return (size_t)kind < sizeof names / sizeof names[0] ? names[kind] : "";
}

/* A duration for the summaries: "15d 2h" (hnd_duration_text), "-" for
 * none. */
static char *s_ms_text(int64_t ms, char *buf, size_t size)
{
    if (ms < 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    return hnd_duration_text(ms, buf, size);
}

typedef struct {
    size_t plen;
    uint64_t counts[DWELL_BUCKETS];
} s_hist_t;

static void s_on_dwell(const char *key, int64_t value, void *arg)
{
    s_hist_t *h = arg;
    int k = keys_dwell_bucket(key + h->plen);
    if (k >= 0 && k < DWELL_BUCKETS && value > 0)
        h->counts[k] += (uint64_t)value;
}

typedef struct {
    arena_t *arena;
    size_t plen;
    report_reason_t *items;
    size_t n, cap;
} s_reasons_t;

static void s_on_reason(const char *key, int64_t value, void *arg)
{
    s_reasons_t *r = arg;
    if (value <= 0)
        return;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        report_reason_t *items = s_alloc(r->arena, r->cap, sizeof *items);
        if (r->n)
            memcpy(items, r->items, r->n * sizeof *items);
        r->items = items;
    }
    r->items[r->n].reason = arena_strdup(r->arena, key + r->plen);
    r->items[r->n].count = (uint64_t)value;
    r->n++;
}

/* Most frequent first; ties by reason. */
static int s_cmp_reason(const void *a, const void *b)
{
    const report_reason_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->reason, y->reason);
}

/* A point being ranked: its section (report_point_kind_t), its key within
 * the section (larger is worse) and the stage order for ties. */
typedef struct {
    int section;
    double key;
    size_t order;
    report_point_t p;
} s_rank_t;

static int s_cmp_rank(const void *a, const void *b)
{
    const s_rank_t *x = a, *y = b;
    if (x->section != y->section)
        return x->section - y->section;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void s_point(arena_t *a, s_rank_t *r, size_t *n,
                    report_point_kind_t kind, double key, size_t order,
                    const char *stage, double value, char *summary)
{
    s_rank_t *e = &r[(*n)++];
    e->section = (int)kind;
    e->key = key;
    e->order = order;
    e->p.kind = kind;
    e->p.stage = arena_strdup(a, stage);
    e->p.value = value;
    e->p.summary = summary;
}

/* The rejection reasons under prefix, most frequent first: the first
 * S_REASONS_MAX into f, the first S_TOP_REASONS as text into top. */
static void s_read_reasons(const report_reader_t *rd, const char *prefix,
                           arena_t *a, report_friction_group_t *f,
                           char *top, size_t topsize)
{
    char key[KEYS_KEY_MAX];
    s_reasons_t rs = { .arena = a };
    keys_rejreason_prefix(key, sizeof key, prefix);
    rs.plen = strlen(key);
    rd->counters(rd->arg, key, s_on_reason, &rs);
    if (rs.n > 1)
        qsort(rs.items, rs.n, sizeof *rs.items, s_cmp_reason);
    f->n_reasons = rs.n < S_REASONS_MAX ? rs.n : S_REASONS_MAX;
    f->reasons = rs.items;
    size_t used = 0;
    top[0] = '\0';
    for (size_t i = 0; i < rs.n && i < S_TOP_REASONS; i++) {
        int k = snprintf(top + used, topsize - used, "%s%s (%" PRIu64 ")",
                         i ? ", " : "", rs.items[i].reason, rs.items[i].count);
        if (k > 0 && (size_t)k < topsize - used)
            used += (size_t)k;
    }
}

/* The counters of stage i under prefix into sf; with whole (the funnel,
 * not a group) also its conversion window as of day `today`. */
static void s_read_stage(const defn_t *d, const report_reader_t *rd,
                         const char *prefix, size_t i, bool whole,
                         int64_t today, arena_t *a,
                         report_stage_friction_t *sf)
{
    const defn_stage_t *st = &d->stages[i];
    const char *nm = st->name;
    char key[KEYS_KEY_MAX];
    sf->stage = arena_strdup(a, nm);
    sf->entered = s_counter(rd, prefix, KEYS_ENTERED, nm);
    sf->advanced = s_counter(rd, prefix, KEYS_ADVANCED, nm);
    sf->in_progress = s_counter(rd, prefix, KEYS_NOW, nm);
    sf->dropped = s_counter(rd, prefix, KEYS_DROPPED, nm);
    sf->has_conversion = sf->entered > 0 && !st->terminal;
    sf->conversion = sf->entered ? (double)sf->advanced / (double)sf->entered : 0;
    sf->conversion_target = st->conversion_target;
    sf->max_dwell_ms = st->max_dwell_ms;
    sf->stalls = s_counter(rd, prefix, KEYS_STALLS, nm);
    sf->stalled_now = s_counter(rd, prefix, KEYS_STALLED, nm);
    sf->regressions = s_counter(rd, prefix, KEYS_REGRESSIONS, nm);
    sf->rejections = s_counter(rd, prefix, KEYS_REJECTIONS, nm);

    s_hist_t *h = xcalloc(1, sizeof *h);
    keys_dwell_prefix(key, sizeof key, prefix, nm);
    h->plen = strlen(key);
    rd->counters(rd->arg, key, s_on_dwell, h);
    for (int k = 0; k < DWELL_BUCKETS; k++)
        sf->completed += h->counts[k];
    sf->median_ms = dwell_quantile(h->counts, 0.5);
    sf->p90_ms = dwell_quantile(h->counts, 0.9);
    free(h);

    if (whole && st->conversion_target > 0 && today > 0) {
        int64_t in, out;
        pipeline_conversion_window(d, (int)i, today, rd->counter, rd->arg, &in,
                                   &out);
        sf->window_entered = in > 0 ? (uint64_t)in : 0;
        sf->window_advanced = out > 0 ? (uint64_t)out : 0;
        if (in > 0 && in >= (int64_t)d->min_sample) {
            sf->has_window_conversion = true;
            sf->window_conversion = (double)out / (double)in;
        }
        sf->below_target = rd->counter(keys_conv_below(key, sizeof key, nm),
                                       rd->arg) > 0;
    }
}

/* The friction points of stage i (sf read), appended to rank. The rules:
 * - conversion: below the stage's target, measured over the window when
 *   the window has its sample, else over all time; worse by shortfall;
 * - dwell: once the median stay reaches half of max_dwell or, without a
 *   max_dwell, once S_STALL_SAMPLE stays make the median mean something;
 *   worse by median;
 * - stall, regression, handoff_rejected: any; worse by count (the last
 *   names the top reasons, top, which are counted over all stages). */
static void s_stage_points(const defn_stage_t *st, size_t i,
                           const report_stage_friction_t *sf, const char *top,
                           arena_t *a, s_rank_t *rank, size_t *nr)
{
    const char *nm = st->name;
    char t1[32], t2[32], t3[32];
    if (st->conversion_target > 0 &&
        (sf->has_window_conversion || sf->has_conversion)) {
        bool w = sf->has_window_conversion;
        double c = w ? sf->window_conversion : sf->conversion;
        if (c < st->conversion_target)
            s_point(a, rank, nr, REPORT_POINT_CONVERSION,
                    st->conversion_target - c, i, nm, c,
                    arena_printf(a, "%s: conversion %.1f%% against target "
                             "%.1f%% (%" PRIu64 " of %" PRIu64 " %s)",
                             nm, 100 * c, 100 * st->conversion_target,
                             w ? sf->window_advanced : sf->advanced,
                             w ? sf->window_entered : sf->entered,
                             w ? "in the window" : "ever"));
    }
    bool slow = st->max_dwell_ms > 0 ? sf->median_ms * 2 >= st->max_dwell_ms
                                     : sf->completed >= S_STALL_SAMPLE;
    if (sf->completed > 0 && slow)
        s_point(a, rank, nr, REPORT_POINT_DWELL, (double)sf->median_ms, i, nm,
                (double)sf->median_ms,
                arena_printf(a, "%s: median stay %s, p90 %s over %" PRIu64
                         " completed stays%s%s%s", nm,
                         s_ms_text(sf->median_ms, t1, sizeof t1),
                         s_ms_text(sf->p90_ms, t2, sizeof t2), sf->completed,
                         st->max_dwell_ms ? " (max_dwell " : "",
                         st->max_dwell_ms
                             ? s_ms_text(st->max_dwell_ms, t3, sizeof t3)
                             : "",
                         st->max_dwell_ms ? ")" : ""));
    if (sf->stalls > 0)
        s_point(a, rank, nr, REPORT_POINT_STALL, (double)sf->stalls, i, nm,
                (double)sf->stalls,
                arena_printf(a, "%s: %" PRIu64 " stalls, %" PRIu64 " stalled now",
                         nm, sf->stalls, sf->stalled_now));
    if (sf->regressions > 0)
        s_point(a, rank, nr, REPORT_POINT_REGRESSION, (double)sf->regressions,
                i, nm, (double)sf->regressions,
                arena_printf(a, "%s: %" PRIu64 " moves back", nm, sf->regressions));
    if (sf->rejections > 0)
        s_point(a, rank, nr, REPORT_POINT_HANDOFF_REJECTED,
                (double)sf->rejections, i, nm, (double)sf->rejections,
                arena_printf(a, "%s: %" PRIu64 " handoffs rejected%s%s", nm,
                         sf->rejections, top[0] ? "; top reasons over all stages: " : "", top));
}

/* The friction of the leads under counter prefix ("" or a group's):
 * every stage, the ranked points (section by section in
 * report_point_kind_t order; within one, worst first; ties in stage
 * order), the rejection reasons. whole: the funnel, whose stages also get
 * their conversion window. Allocates from a. */
static void s_read_friction(const defn_t *d, const report_reader_t *rd,
                            const char *prefix, bool whole, arena_t *a,
                            report_friction_group_t *f)
{
    char top[200], t1[32];
    size_t n = d->n_stages;
    f->stages = s_alloc(a, n, sizeof *f->stages);
    /* at most 5 points per stage, plus one */
    s_rank_t *rank = xcalloc(5 * n + 1, sizeof *rank);
    size_t nr = 0;
    int64_t today = whole ? rd->counter(keys_conv_day, rd->arg) : 0;

    s_read_reasons(rd, prefix, a, f, top, sizeof top);
    for (size_t i = 0; i < n; i++) {
        report_stage_friction_t *sf = &f->stages[f->n_stages++];
        s_read_stage(d, rd, prefix, i, whole, today, a, sf);
        s_stage_points(&d->stages[i], i, sf, top, a, rank, &nr);
    }
    f->past_sla = s_counter(rd, prefix, KEYS_SLA_WAITING, NULL);
    f->breaches = s_counter(rd, prefix, KEYS_SLA_BREACHES, NULL);
    if (f->past_sla > 0)
        s_point(a, rank, &nr, REPORT_POINT_HANDOFF_SLA, (double)f->past_sla, 0,
                "", (double)f->past_sla,
                arena_printf(a, "%" PRIu64 " handoffs waiting past the SLA of %s "
                         "(%" PRIu64 " breaches ever)", f->past_sla,
                         s_ms_text(d->handoff_sla_ms, t1, sizeof t1),
                         f->breaches));
    if (nr > 1)
        qsort(rank, nr, sizeof *rank, s_cmp_rank);
    f->points = s_alloc(a, nr, sizeof *f->points);
    for (size_t i = 0; i < nr; i++) {
        f->points[i] = rank[i].p;
        f->points[i].rank = (uint32_t)(i + 1);
    }
    f->n_points = nr;
    free(rank);
}

typedef struct {
    arena_t *arena;
    const char *only;           /* exact set wanted, or NULL */
    report_lead_t *items;
    size_t n, cap;
} s_marks_t;

static void s_on_mark(const char *set, const char *lead_id, int64_t since_ms,
                      void *arg)
{
    s_marks_t *m = arg;
    if (m->only && strcmp(set, m->only) != 0)
        return;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        report_lead_t *items = s_alloc(m->arena, m->cap, sizeof *items);
        if (m->n)
            memcpy(items, m->items, m->n * sizeof *items);
        m->items = items;
    }
    report_lead_t *l = &m->items[m->n++];
    l->lead_id = arena_strdup(m->arena, lead_id);
    l->set = arena_strdup(m->arena, set);
    const char *stage = keys_mark_stage(set);
    l->stage = stage ? l->set + (stage - set) : l->set + strlen(l->set);
    l->since_ms = since_ms;
}

/* Stalled (or waiting) longest first; ties by lead id. */
static int s_cmp_lead(const void *a, const void *b)
{
    const report_lead_t *x = a, *y = b;
    if (x->since_ms != y->since_ms)
        return x->since_ms < y->since_ms ? -1 : 1;
    return strcmp(x->lead_id, y->lead_id);
}

/* The leads of the friction sets q asks for into r: -1 on a read error. */
static int s_read_leads(const report_reader_t *rd,
                        const report_friction_query_t *q, report_friction_t *r)
{
    s_marks_t m = { .arena = r->arena };
    const char *stage = q->stage ? q->stage : "";
    char set[KEYS_KEY_MAX];
    long rc;
    if (stage[0]) {
        m.only = keys_mark_stalled(set, sizeof set, stage);
        rc = rd->marks(rd->arg, set, s_on_mark, &m);
    } else {
        rc = rd->marks(rd->arg, keys_stalled_prefix, s_on_mark, &m);
        if (rc >= 0) {
            m.only = keys_mark_sla;
            rc = rd->marks(rd->arg, keys_mark_sla, s_on_mark, &m);
        }
    }
    if (rc < 0)
        return -1;
    if (m.n > 1)
        qsort(m.items, m.n, sizeof *m.items, s_cmp_lead);
    size_t limit = q->limit ? q->limit : S_LEADS_DEFAULT;
    r->leads_total = m.n;
    r->n_leads = m.n < limit ? m.n : limit;
    r->leads = m.items;
    return 0;
}

/* Contract in report.h. Groups are every name with a counter under the
 * breakdown's prefix (a friction total stays with the group it was booked
 * in), each read like the funnel but without the conversion window, which
 * is kept funnel-wide only. */
int report_friction(const defn_t *d, const report_reader_t *rd,
                    const report_friction_query_t *q, report_friction_t **out,
                    const char **err)
{
    const char *by = q && q->by ? q->by : "";
    const char *stage = q && q->stage ? q->stage : "";
    *out = NULL;

    int dim = by[0] ? keys_by_parse(by) : -1;
    if (by[0] && dim < 0) {
        *err = "unknown breakdown: by wants persona, source or cohort";
        return -1;
    }
    if (stage[0]) {
        int s = defn_stage_index(d, stage);
        if (s < 0 || (size_t)s >= d->n_order || d->stages[s].terminal) {
            *err = "no such stage (a stage of the funnel order that is not "
                   "terminal)";
            return -1;
        }
    }

    arena_t *a = arena_new(0);
    report_friction_t *r = s_alloc(a, 1, sizeof *r);
    r->arena = a;
    s_read_friction(d, rd, "", true, a, &r->all);
    r->all.name = arena_strdup(a, "");
    r->window_days = (uint32_t)(d->conversion_window_ms / S_DAY_MS);
    r->min_sample = d->min_sample;
    int64_t day = rd->counter(keys_conv_day, rd->arg);
    r->window_end_ms = day > 0 ? day * S_DAY_MS : 0;
    r->by = arena_strdup(a, by);

    if (dim >= 0) {
        s_groups_t g = { .arena = a };
        if (s_read_groups(rd, (keys_by_t)dim, &g) < 0) {
            *err = "storage error";
            goto fail;
        }
        r->groups = s_alloc(a, g.n, sizeof *r->groups);
        for (size_t i = 0; i < g.n; i++) {
            char gpre[KEYS_PREFIX_MAX];
            report_friction_group_t *gf = &r->groups[r->n_groups++];
            keys_group_prefix(gpre, sizeof gpre, g.by, g.names[i]);
            s_read_friction(d, rd, gpre, false, a, gf);
            gf->name = g.names[i];
        }
    }
    if (q && q->leads && s_read_leads(rd, q, r) < 0) {
        *err = "storage error";
        goto fail;
    }
    *out = r;
    return 0;
fail:
    arena_destroy(&a);
    return -1;
}

void report_friction_free(report_friction_t **r_p)
{
    if (*r_p) {
        arena_t *a = (*r_p)->arena;     /* *r_p lives in it */
        arena_destroy(&a);
    }
    *r_p = NULL;
}

/* -- quality ------------------------------------------------------------- */

/* Open leads per day (quality/open/<day>): the sum, and the part whose
 * day lies lost_days or more before today (lost_days 0: none). */
typedef struct {
    size_t skip;                /* the prefix's length */
    int64_t today, lost_days;
    uint64_t open, timed_out;
} s_open_t;

static void s_on_open(const char *key, int64_t value, void *arg)
{
    s_open_t *o = arg;
    int day = keys_dwell_bucket(key + o->skip);   /* a number: the day */
    if (value <= 0 || day < 0)
        return;
    if (o->lost_days > 0 && o->today - day >= o->lost_days)
        o->timed_out += (uint64_t)value;
    else
        o->open += (uint64_t)value;
}

static int s_read_open(const report_reader_t *rd, const char *pre,
                       keys_counter_t c, int64_t today, int64_t lost_days,
                       uint64_t *open, uint64_t *timed_out)
{
    char key[KEYS_KEY_MAX];
    keys_quality(key, sizeof key, pre, c, -1);
    s_open_t o = { .skip = strlen(key), .today = today, .lost_days = lost_days };
    if (rd->counters(rd->arg, key, s_on_open, &o) < 0)
        return -1;
    *open = o.open;
    *timed_out = o.timed_out;
    return 0;
}

typedef struct {
    size_t skip;
    uint64_t *counts;
} s_tohist_t;

static void s_on_to_won(const char *key, int64_t value, void *arg)
{
    s_tohist_t *h = arg;
    int k = keys_dwell_bucket(key + h->skip);
    if (k >= 0 && k < DWELL_BUCKETS && value > 0)
        h->counts[k] += (uint64_t)value;
}

/* One group's quality under counter prefix pre; base (NULL: its own) is
 * the group whose every-lead counts give its base rate and recall. */
static int s_read_quality(const report_reader_t *rd, const char *pre,
                          int64_t today, int64_t lost_days,
                          const report_quality_group_t *base, bool rejections,
                          report_quality_group_t *g)
{
    char key[KEYS_KEY_MAX];
    uint64_t hist[DWELL_BUCKETS] = {0};
    g->handed_off = s_counter(rd, pre, KEYS_Q_HANDED, NULL);
    g->won = s_counter(rd, pre, KEYS_Q_WON, NULL);
    g->lost = s_counter(rd, pre, KEYS_Q_LOST, NULL);
    g->before = s_counter(rd, pre, KEYS_Q_BEFORE, NULL);
    if (s_read_open(rd, pre, KEYS_Q_OPEN, today, lost_days, &g->open,
                    &g->lost_timeout) < 0)
        return -1;
    g->lost += g->lost_timeout;
    if (base) {
        g->all_won = base->all_won;
        g->all_lost = base->all_lost;
        g->all_open = base->all_open;
        g->all_lost_timeout = base->all_lost_timeout;
    } else {
        g->all_won = s_counter(rd, pre, KEYS_Q_ALL_WON, NULL);
        g->all_lost = s_counter(rd, pre, KEYS_Q_ALL_LOST, NULL);
        if (s_read_open(rd, pre, KEYS_Q_ALL_OPEN, today, lost_days,
                        &g->all_open, &g->all_lost_timeout) < 0)
            return -1;
        g->all_lost += g->all_lost_timeout;
    }
    g->has_precision = g->won + g->lost > 0;
    g->precision = g->has_precision ? (double)g->won / (double)(g->won + g->lost) : 0;
    g->has_recall = g->all_won > 0;
    g->recall = g->has_recall ? (double)g->won / (double)g->all_won : 0;
    g->has_base_rate = g->all_won + g->all_lost > 0;
    g->base_rate = g->has_base_rate
                       ? (double)g->all_won / (double)(g->all_won + g->all_lost)
                       : 0;
    g->has_lift = g->has_precision && g->has_base_rate && g->base_rate > 0;
    g->lift = g->has_lift ? g->precision / g->base_rate : 0;

    keys_quality(key, sizeof key, pre, KEYS_Q_TO_WON, -1);
    s_tohist_t h = { .skip = strlen(key), .counts = hist };
    if (rd->counters(rd->arg, key, s_on_to_won, &h) < 0)
        return -1;
    g->median_handoff_to_won_ms = dwell_quantile(hist, 0.5);

    if (rejections) {
        g->handoffs = s_counter(rd, pre, KEYS_HANDOFFS, NULL);
        g->rejected = s_counter(rd, pre, KEYS_HANDOFFS_REJECTED, NULL);
        g->has_rejection_rate = g->handoffs > 0;
        g->rejection_rate =
            g->has_rejection_rate ? (double)g->rejected / (double)g->handoffs : 0;
    }
    return 0;
}

/* Contract in report.h. */
int report_quality(const defn_t *d, const report_reader_t *rd, const char *by,
                   int64_t now_ms, report_quality_t **out, const char **err)
{
    by = by ? by : "";
    *out = NULL;
    bool clause = strcmp(by, "clause") == 0;
    int dim = by[0] && !clause ? keys_by_parse(by) : -1;
    if (by[0] && !clause && dim != KEYS_BY_PERSONA && dim != KEYS_BY_SOURCE) {
        *err = "unknown breakdown: by wants persona, source or clause";
        return -1;
    }
    int64_t today = timetext_days_of_ms(now_ms);
    int64_t lost_days = d->quality_lost_after_ms / S_DAY_MS;

    arena_t *a = arena_new(0);
    report_quality_t *r = s_alloc(a, 1, sizeof *r);
    r->arena = a;
    r->by = arena_strdup(a, by);
    r->lost_after_ms = d->quality_lost_after_ms;
    r->as_of_ms = now_ms;
    r->all.name = arena_strdup(a, "");
    if (s_read_quality(rd, "", today, lost_days, NULL, true, &r->all) < 0)
        goto storage;
    if (by[0]) {
        s_groups_t g = { .arena = a, .by = (keys_by_t)(dim < 0 ? 0 : dim) };
        if (clause) {
            g.prefix = keys_clause_prefix_all;
            if (rd->counters(rd->arg, g.prefix, s_on_group_counter, &g) < 0)
                goto storage;
        } else if (s_read_groups(rd, (keys_by_t)dim, &g) < 0) {
            goto storage;
        }
        r->groups = s_alloc(a, g.n, sizeof *r->groups);
        for (size_t i = 0; i < g.n; i++) {
            char gpre[KEYS_PREFIX_MAX];
            report_quality_group_t *q = &r->groups[r->n_groups];
            if (clause) {
                snprintf(gpre, sizeof gpre, "%s%s/", keys_clause_prefix_all,
                         g.names[i]);
            } else {
                keys_group_prefix(gpre, sizeof gpre, g.by, g.names[i]);
            }
            if (s_read_quality(rd, gpre, today, lost_days,
                               clause ? &r->all : NULL, !clause, q) < 0)
                goto storage;
            if (q->handed_off == 0 && q->all_won + q->all_lost + q->all_open == 0)
                continue;       /* every lead moved to another group */
            if (clause && q->handed_off == 0)
                continue;
            q->name = g.names[i];
            r->n_groups++;
        }
    }
    *out = r;
    return 0;
storage:
    *err = "storage error";
    arena_destroy(&a);
    return -1;
}

void report_quality_free(report_quality_t **r_p)
{
    if (*r_p) {
        arena_t *a = (*r_p)->arena;
        arena_destroy(&a);
    }
    *r_p = NULL;
}
