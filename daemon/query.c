/* query.c: see query.h. */
#include "query.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dwell.h"
#include "funnel.pb-c.h"
#include "pipeline.h"
#include "ingest.h"
#include "keys.h"
#include "log.h"
#include "xalloc.h"

#define S_TIMELINE_DEFAULT 100
#define S_TIMELINE_MAX 10000

typedef struct {
    Funnel__V1__TimelineEntry *entries;
    Funnel__V1__TimelineEntry **ptrs;
    Funnel__V1__Event **events;
    size_t n;
} s_timeline_t;

static void s_on_timeline_event(uint64_t seq, const void *raw, size_t len,
                                void *arg)
{
    s_timeline_t *t = arg;
    Funnel__V1__Event *ev = funnel__v1__event__unpack(NULL, len, raw);
    if (ev == NULL)
        return;
    /* funneld's own log entries ($deadline) show in the lead's friction
     * history, not among its events. */
    if (ev->type[0] == '$') {
        funnel__v1__event__free_unpacked(ev, NULL);
        return;
    }
    Funnel__V1__TimelineEntry *e = &t->entries[t->n];
    funnel__v1__timeline_entry__init(e);
    e->seq = seq;
    e->event = ev;
    t->events[t->n] = ev;
    t->ptrs[t->n] = e;
    t->n++;
}

/* A duration for the report's summaries: "15d 2h" (hnd_duration_text),
 * "-" for none. */
static char *s_ms_text(int64_t ms, char *buf, size_t size)
{
    if (ms < 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    return hnd_duration_text(ms, buf, size);
}

static void s_reply(bus_sock_t *sock, bus_msg_t *msg, const Funnel__V1__QueryReply *r)
{
    size_t len = funnel__v1__query_reply__get_packed_size(r);
    uint8_t *buf = xmalloc(len);
    funnel__v1__query_reply__pack(r, buf);

    if (bus_reply(sock, msg->part, msg->n - 1, buf, len) == -1)
        log_debug("[query] reply not sent (client gone?)");
    free(buf);
}

static void s_lead(query_t *q, const Funnel__V1__LeadQuery *lq,
                   bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    Funnel__V1__LeadReply lr;
    Funnel__V1__Lead *lead = NULL;
    s_timeline_t t = {0};
    const void *buf;
    size_t len;

    funnel__v1__lead_reply__init(&lr);
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_LEAD;
    r->lead = &lr;

    size_t limit = lq->timeline_limit ? lq->timeline_limit : S_TIMELINE_DEFAULT;
    if (limit > S_TIMELINE_MAX)
        limit = S_TIMELINE_MAX;
    if (lq->lead_id == NULL || lq->lead_id[0] == '\0') {
        r->error = (char *)"lead query without lead_id";
        r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
        goto send;
    }
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
        goto send;
    }
    int found = store_read_lead(q->store, lq->lead_id, &buf, &len);
    if (found == 1) {
        lead = funnel__v1__lead__unpack(NULL, len, buf);
        if (lead) {
            lr.found = true;
            lr.lead = lead;
            t.entries = xcalloc(limit, sizeof *t.entries);
            t.ptrs = xcalloc(limit, sizeof *t.ptrs);
            t.events = xcalloc(limit, sizeof *t.events);
            if (store_read_timeline(q->store, lq->lead_id, limit, s_on_timeline_event,
                                    &t) < 0)
                r->error = (char *)"storage error reading the lead's timeline";
            lr.n_timeline = t.n;
            lr.timeline = t.ptrs;
        }
    } else if (found < 0) {
        r->error = (char *)"storage error";
    }
    store_read_end(q->store);

send:
    s_reply(sock, msg, r);
    r->lead = NULL; /* it pointed into this frame */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    for (size_t i = 0; i < t.n; i++)
        funnel__v1__event__free_unpacked(t.events[i], NULL);
    free(t.entries);
    free(t.ptrs);
    free(t.events);
    if (lead)
        funnel__v1__lead__free_unpacked(lead, NULL);
}

static uint64_t s_counter(query_t *q, const char *prefix, keys_counter_t kind,
                          const char *stage)
{
    char key[KEYS_KEY_MAX];
    keys_counter(key, sizeof key, prefix, kind, stage);
    int64_t v = store_read_counter(q->store, key);
    return v > 0 ? (uint64_t)v : 0;
}

/* The counts of one funnel (whole, or one group): the counters whose keys
 * begin with prefix ("" or a group prefix, keys_group_prefix). */
typedef struct {
    char *name;
    uint64_t leads;
    Funnel__V1__StageCount sc[DEFN_STAGES_MAX];
    Funnel__V1__StageCount *scp[DEFN_STAGES_MAX];
    Funnel__V1__HandoffCounts hc;
    Funnel__V1__FunnelGroup group;
} s_counts_t;

static void s_read_counts(query_t *q, const defn_t *d, const char *prefix,
                          s_counts_t *c)
{
    c->leads = s_counter(q, prefix, KEYS_LEADS, NULL);
    for (size_t i = 0; i < d->n_stages && i < DEFN_STAGES_MAX; i++) {
        Funnel__V1__StageCount *sc = &c->sc[i];
        funnel__v1__stage_count__init(sc);
        sc->stage = d->stages[i].name;
        sc->now = s_counter(q, prefix, KEYS_NOW, d->stages[i].name);
        sc->entered = s_counter(q, prefix, KEYS_ENTERED, d->stages[i].name);
        sc->advanced = s_counter(q, prefix, KEYS_ADVANCED, d->stages[i].name);
        sc->terminal = d->stages[i].terminal;
        c->scp[i] = sc;
    }
    funnel__v1__handoff_counts__init(&c->hc);
    c->hc.sent = s_counter(q, prefix, KEYS_HANDOFFS, NULL);
    c->hc.accepted = s_counter(q, prefix, KEYS_HANDOFFS_ACCEPTED, NULL);
    c->hc.rejected = s_counter(q, prefix, KEYS_HANDOFFS_REJECTED, NULL);
}

/* The distinct group names under a "by/<dim>/" prefix. */
typedef struct {
    keys_by_t by;
    char **names;
    size_t n, cap;
} s_groups_t;

static void s_on_group_counter(const char *key, int64_t value, void *arg)
{
    s_groups_t *g = arg;
    const char *name = key + strlen(keys_by_prefix(g->by));
    size_t len = keys_group_name_len(key, g->by);
    if (g->n > 0 && strlen(g->names[g->n - 1]) == len &&
        memcmp(g->names[g->n - 1], name, len) == 0)
        return;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->names = xrealloc(g->names, g->cap * sizeof *g->names);
    }
    char *copy = xmalloc(len + 1);
    memcpy(copy, name, len);
    copy[len] = '\0';
    g->names[g->n++] = copy;
}

static void s_funnel(query_t *q, const Funnel__V1__FunnelQuery *fq,
                     bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    const defn_t *d = *q->defn_p;
    Funnel__V1__FunnelReply fr;
    s_counts_t all;
    s_groups_t g = {0};
    s_counts_t *gc = NULL;
    Funnel__V1__FunnelGroup **gp = NULL;
    size_t n_groups = 0;
    char prefix[160] = "";
    const char *by = fq && fq->by ? fq->by : "";
    const char *persona = fq && fq->persona ? fq->persona : "";

    funnel__v1__funnel_reply__init(&fr);
    int by_dim = by[0] ? keys_by_parse(by) : -1;
    if (by[0] && by_dim < 0) {
        r->error = (char *)"unknown breakdown: by wants persona, source or cohort";
        goto send;
    }
    if (persona[0] && by[0] && by_dim != KEYS_BY_PERSONA) {
        r->error = (char *)"a persona filter combines only with a breakdown by persona";
        goto send;
    }
    if (strlen(persona) > DEFN_NAME_MAX || strchr(persona, '/')) {
        r->error = (char *)"no such persona";
        goto send;
    }
    if (persona[0])
        keys_group_prefix(prefix, sizeof prefix, KEYS_BY_PERSONA, persona);
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        goto send;
    }
    s_read_counts(q, d, prefix, &all);
    if (persona[0] && all.leads == 0) {
        /* A persona the definition does not name and no lead ever had is
         * a typo, not an empty group. */
        bool known = strcmp(persona, HND_GROUP_NONE) == 0;
        for (size_t i = 0; i < d->n_personas && !known; i++)
            known = strcmp(d->personas[i].name, persona) == 0;
        if (!known) {
            store_read_end(q->store);
            r->error = (char *)"no such persona in the definition or the counters";
            goto send;
        }
    }
    if (by[0]) {
        const char *gprefix = keys_by_prefix((keys_by_t)by_dim);
        g.by = (keys_by_t)by_dim;
        if (persona[0]) {
            g.names = xcalloc(1, sizeof *g.names);
            g.names[0] = xstrdup(persona);
            g.n = 1;
        } else if (store_read_counters(q->store, gprefix, s_on_group_counter,
                                       &g) < 0) {
            store_read_end(q->store);
            r->error = (char *)"storage error";
            goto send;
        }
        gc = xcalloc(g.n ? g.n : 1, sizeof *gc);
        gp = xcalloc(g.n ? g.n : 1, sizeof *gp);
        for (size_t i = 0; i < g.n; i++) {
            char gpre[KEYS_PREFIX_MAX];
            s_counts_t *c = &gc[n_groups];
            keys_group_prefix(gpre, sizeof gpre, g.by, g.names[i]);
            s_read_counts(q, d, gpre, c);
            if (c->leads == 0)
                continue;       /* every lead moved to another persona */
            funnel__v1__funnel_group__init(&c->group);
            c->group.name = g.names[i];
            c->group.leads = c->leads;
            c->group.n_stages = d->n_stages < DEFN_STAGES_MAX ? d->n_stages
                                                             : DEFN_STAGES_MAX;
            c->group.stages = c->scp;
            c->group.handoffs = &c->hc;
            gp[n_groups++] = &c->group;
        }
    }
    store_read_end(q->store);

    fr.leads = all.leads;
    fr.n_stages = d->n_stages < DEFN_STAGES_MAX ? d->n_stages : DEFN_STAGES_MAX;
    fr.stages = all.scp;
    fr.handoffs = &all.hc;
    fr.by = (char *)by;
    fr.persona = (char *)persona;
    fr.n_groups = n_groups;
    fr.groups = gp;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_FUNNEL;
    r->funnel = &fr;
send:
    s_reply(sock, msg, r);
    r->funnel = NULL; /* it pointed into this frame */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    for (size_t i = 0; i < g.n; i++)
        free(g.names[i]);
    free(g.names);
    free(gc);
    free(gp);
}

static void s_stats(query_t *q, bus_sock_t *sock, bus_msg_t *msg,
                    Funnel__V1__QueryReply *r)
{
    const defn_t *d = *q->defn_p;
    store_stats_t stats, *st = &stats;
    uint64_t last_seq;
    Funnel__V1__Stats s;
    char defn[160];

    store_stats_read(q->store, &stats, &last_seq);
    funnel__v1__stats__init(&s);
    s.received = st->received;
    s.applied = st->applied;
    s.duplicates = st->duplicates;
    s.rejected = st->rejected;
    s.commits = st->commits;
    s.alerts = st->alerts;
    s.gaps = st->gaps;
    s.stream_messages = st->stream_messages;
    s.deadlines = st->deadlines;
    s.auth_refused = auth_refused(q->auth);
    s.uptime_ms = (uint64_t)(ingest_wall_ms() - q->started_ms);
    s.last_seq = last_seq;
    if (store_read_begin(q->store) == STORE_OK) {
        int64_t leads = store_read_counter(q->store, keys_name(KEYS_LEADS));
        s.leads = leads > 0 ? (uint64_t)leads : 0;
        store_read_end(q->store);
    }
    snprintf(defn, sizeof defn, "%s (%s, %s)", d->name,
             strcmp(d->path, "(built-in)") == 0 ? "built-in" : d->path, d->hash);
    s.definition = defn;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_STATS;
    r->stats = &s;
    s_reply(sock, msg, r);
    r->stats = NULL; /* it pointed into this frame */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
}

/* -- the friction report ---------------------------------------------- */

#define S_DAY_MS 86400000
#define S_REASONS_MAX 10
#define S_LEADS_DEFAULT 1000

/* Everything a friction reply points to, freed after the reply is sent. */
typedef struct {
    void **ptrs;
    size_t n, cap;
} s_arena_t;

static void *s_alloc(s_arena_t *a, size_t n, size_t size)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->ptrs = xrealloc(a->ptrs, a->cap * sizeof *a->ptrs);
    }
    void *p = xcalloc(n ? n : 1, size);
    a->ptrs[a->n++] = p;
    return p;
}

static char *s_strdup(s_arena_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *s_strdup(s_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = s_alloc(a, (size_t)n + 1, 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static void s_arena_free(s_arena_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->ptrs[i]);
    free(a->ptrs);
}

static int64_t s_read_counter_fn(const char *key, void *arg)
{
    return store_read_counter(arg, key);
}

typedef struct {
    size_t plen;
    uint64_t counts[DWELL_BUCKETS];
} s_hist_t;

static void s_on_dwell(const char *key, int64_t value, void *arg)
{
    s_hist_t *h = arg;
    int k = atoi(key + h->plen);
    if (k >= 0 && k < DWELL_BUCKETS && value > 0)
        h->counts[k] += (uint64_t)value;
}

typedef struct {
    s_arena_t *arena;
    size_t plen;
    Funnel__V1__ReasonCount **items;
    size_t n, cap;
} s_reasons_t;

static void s_on_reason(const char *key, int64_t value, void *arg)
{
    s_reasons_t *r = arg;
    if (value <= 0)
        return;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->items = xrealloc(r->items, r->cap * sizeof *r->items);
    }
    Funnel__V1__ReasonCount *c = s_alloc(r->arena, 1, sizeof *c);
    funnel__v1__reason_count__init(c);
    c->reason = s_strdup(r->arena, "%s", key + r->plen);
    c->count = (uint64_t)value;
    r->items[r->n++] = c;
}

static int s_cmp_reason(const void *a, const void *b)
{
    const Funnel__V1__ReasonCount *x = *(Funnel__V1__ReasonCount *const *)a;
    const Funnel__V1__ReasonCount *y = *(Funnel__V1__ReasonCount *const *)b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->reason, y->reason);
}

/* A point being ranked: its section, its key within the section (larger is
 * worse) and the stage order for ties. */
typedef struct {
    int section;
    double key;
    size_t order;
    Funnel__V1__FrictionPoint *p;
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

/* The friction of the leads under counter prefix ("" or
 * a group prefix): stages, ranked points, rejection reasons. */
typedef struct {
    Funnel__V1__StageFriction **stages;
    size_t n_stages;
    Funnel__V1__FrictionPoint **points;
    size_t n_points;
    Funnel__V1__ReasonCount **reasons;
    size_t n_reasons;
    uint64_t past_sla, breaches;
} s_friction_t;

static void s_point(s_arena_t *a, s_rank_t *r, size_t *n, int section,
                    double key, size_t order, const char *kind,
                    const char *stage, double value, char *summary)
{
    Funnel__V1__FrictionPoint *p = s_alloc(a, 1, sizeof *p);
    funnel__v1__friction_point__init(p);
    p->kind = (char *)kind;
    p->stage = (char *)stage;
    p->value = value;
    p->summary = summary;
    r[*n].section = section;
    r[*n].key = key;
    r[*n].order = order;
    r[*n].p = p;
    (*n)++;
}

static void s_read_friction(query_t *q, const defn_t *d, const char *prefix,
                            bool whole, s_arena_t *a, s_friction_t *f)
{
    char key[256], t1[32], t2[32], t3[32];
    size_t n = d->n_stages;
    f->stages = s_alloc(a, n, sizeof *f->stages);
    /* at most 5 points per stage, plus one */
    s_rank_t *rank = s_alloc(a, 5 * n + 1, sizeof *rank);
    size_t nr = 0;
    int64_t today = whole ? store_read_counter(q->store, keys_conv_day) : 0;

    s_reasons_t rs = { .arena = a };
    keys_rejreason_prefix(key, sizeof key, prefix);
    rs.plen = strlen(key);
    store_read_counters(q->store, key, s_on_reason, &rs);
    if (rs.n > 1)
        qsort(rs.items, rs.n, sizeof *rs.items, s_cmp_reason);
    f->n_reasons = rs.n < S_REASONS_MAX ? rs.n : S_REASONS_MAX;
    f->reasons = s_alloc(a, f->n_reasons, sizeof *f->reasons);
    if (f->n_reasons)
        memcpy(f->reasons, rs.items, f->n_reasons * sizeof *f->reasons);
    char top[200] = "";
    size_t used = 0;
    for (size_t i = 0; i < rs.n && i < 3; i++) {
        int k = snprintf(top + used, sizeof top - used, "%s%s (%" PRIu64 ")",
                         i ? ", " : "", rs.items[i]->reason, rs.items[i]->count);
        if (k > 0 && (size_t)k < sizeof top - used)
            used += (size_t)k;
    }
    free(rs.items);

    for (size_t i = 0; i < d->n_stages; i++) {
        const defn_stage_t *st = &d->stages[i];
        const char *nm = st->name;
        Funnel__V1__StageFriction *sf = s_alloc(a, 1, sizeof *sf);
        funnel__v1__stage_friction__init(sf);
        sf->stage = (char *)nm;
        sf->entered = s_counter(q, prefix, KEYS_ENTERED, nm);
        sf->advanced = s_counter(q, prefix, KEYS_ADVANCED, nm);
        sf->in_progress = s_counter(q, prefix, KEYS_NOW, nm);
        sf->dropped = s_counter(q, prefix, KEYS_DROPPED, nm);
        sf->has_conversion = sf->entered > 0 && !st->terminal;
        sf->conversion = sf->entered ? (double)sf->advanced / (double)sf->entered : 0;
        sf->conversion_target = st->conversion_target;
        sf->max_dwell_ms = st->max_dwell_ms;
        sf->stalls = s_counter(q, prefix, KEYS_STALLS, nm);
        sf->stalled_now = s_counter(q, prefix, KEYS_STALLED, nm);
        sf->regressions = s_counter(q, prefix, KEYS_REGRESSIONS, nm);
        sf->rejections = s_counter(q, prefix, KEYS_REJECTIONS, nm);

        s_hist_t *h = s_alloc(a, 1, sizeof *h);
        keys_dwell_prefix(key, sizeof key, prefix, nm);
        h->plen = strlen(key);
        store_read_counters(q->store, key, s_on_dwell, h);
        for (int k = 0; k < DWELL_BUCKETS; k++)
            sf->completed += h->counts[k];
        sf->median_ms = dwell_quantile(h->counts, 0.5);
        sf->p90_ms = dwell_quantile(h->counts, 0.9);

        if (whole && st->conversion_target > 0 && today > 0) {
            int64_t in, out;
            pipeline_conversion_window(d, (int)i, today, s_read_counter_fn,
                                       q->store, &in, &out);
            sf->window_entered = in > 0 ? (uint64_t)in : 0;
            sf->window_advanced = out > 0 ? (uint64_t)out : 0;
            if (in > 0 && in >= (int64_t)d->min_sample) {
                sf->has_window_conversion = true;
                sf->window_conversion = (double)out / (double)in;
            }
            keys_conv_below(key, sizeof key, nm);
            sf->below_target = store_read_counter(q->store, key) > 0;
        }
        f->stages[f->n_stages++] = sf;

        /* conversion against target: the window's when it is defined */
        if (st->conversion_target > 0 &&
            (sf->has_window_conversion || sf->has_conversion)) {
            bool w = sf->has_window_conversion;
            double c = w ? sf->window_conversion : sf->conversion;
            if (c < st->conversion_target)
                s_point(a, rank, &nr, 0, st->conversion_target - c, i,
                        "conversion", nm, c,
                        s_strdup(a, "%s: conversion %.1f%% against target "
                                 "%.1f%% (%" PRIu64 " of %" PRIu64 " %s)",
                                 nm, 100 * c, 100 * st->conversion_target,
                                 w ? sf->window_advanced : sf->advanced,
                                 w ? sf->window_entered : sf->entered,
                                 w ? "in the window" : "ever"));
        }
        /* A long stay is friction once the median nears the stage's limit
         * (half of max_dwell); without a limit, once 20 stays make the
         * median mean something. */
        bool slow = st->max_dwell_ms > 0 ? sf->median_ms * 2 >= st->max_dwell_ms
                                         : sf->completed >= 20;
        if (sf->completed > 0 && slow)
            s_point(a, rank, &nr, 1, (double)sf->median_ms, i, "dwell", nm,
                    (double)sf->median_ms,
                    s_strdup(a, "%s: median stay %s, p90 %s over %" PRIu64
                             " completed stays%s%s%s", nm,
                             s_ms_text(sf->median_ms, t1, sizeof t1),
                             s_ms_text(sf->p90_ms, t2, sizeof t2),
                             sf->completed,
                             st->max_dwell_ms ? " (max_dwell " : "",
                             st->max_dwell_ms
                                 ? s_ms_text(st->max_dwell_ms, t3, sizeof t3)
                                 : "",
                             st->max_dwell_ms ? ")" : ""));
        if (sf->stalls > 0)
            s_point(a, rank, &nr, 2, (double)sf->stalls, i, "stall", nm,
                    (double)sf->stalls,
                    s_strdup(a, "%s: %" PRIu64 " stalls, %" PRIu64
                             " stalled now", nm, sf->stalls, sf->stalled_now));
        if (sf->regressions > 0)
            s_point(a, rank, &nr, 3, (double)sf->regressions, i, "regression",
                    nm, (double)sf->regressions,
                    s_strdup(a, "%s: %" PRIu64 " moves back", nm,
                             sf->regressions));
        if (sf->rejections > 0)
            s_point(a, rank, &nr, 4, (double)sf->rejections, i,
                    "handoff_rejected", nm, (double)sf->rejections,
                    s_strdup(a, "%s: %" PRIu64 " handoffs rejected%s%s", nm,
                             sf->rejections, top[0] ? "; top reasons: " : "",
                             top));
    }
    f->past_sla = s_counter(q, prefix, KEYS_SLA_WAITING, NULL);
    f->breaches = s_counter(q, prefix, KEYS_SLA_BREACHES, NULL);
    if (f->past_sla > 0)
        s_point(a, rank, &nr, 5, (double)f->past_sla, 0, "handoff_sla", "",
                (double)f->past_sla,
                s_strdup(a, "%" PRIu64 " handoffs waiting past the SLA of %s "
                         "(%" PRIu64 " breaches ever)", f->past_sla,
                         s_ms_text(d->handoff_sla_ms, t1, sizeof t1),
                         f->breaches));
    if (nr > 1)
        qsort(rank, nr, sizeof *rank, s_cmp_rank);
    f->points = s_alloc(a, nr, sizeof *f->points);
    for (size_t i = 0; i < nr; i++) {
        rank[i].p->rank = (uint32_t)(i + 1);
        f->points[f->n_points++] = rank[i].p;
    }
}

typedef struct {
    s_arena_t *arena;
    const char *only;           /* exact set wanted, or NULL */
    Funnel__V1__FrictionLead **items;
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
        m->items = xrealloc(m->items, m->cap * sizeof *m->items);
    }
    Funnel__V1__FrictionLead *l = s_alloc(m->arena, 1, sizeof *l);
    funnel__v1__friction_lead__init(l);
    l->lead_id = s_strdup(m->arena, "%s", lead_id);
    l->set = s_strdup(m->arena, "%s", set);
    const char *stage = keys_mark_stage(set);
    l->stage = stage ? l->set + (stage - set) : (char *)"";
    l->since_ms = since_ms;
    m->items[m->n++] = l;
}

static int s_cmp_lead(const void *a, const void *b)
{
    const Funnel__V1__FrictionLead *x = *(Funnel__V1__FrictionLead *const *)a;
    const Funnel__V1__FrictionLead *y = *(Funnel__V1__FrictionLead *const *)b;
    if (x->since_ms != y->since_ms)
        return x->since_ms < y->since_ms ? -1 : 1;
    return strcmp(x->lead_id, y->lead_id);
}

static void s_friction(query_t *q, const Funnel__V1__FrictionQuery *fq,
                       bus_sock_t *sock, bus_msg_t *msg,
                       Funnel__V1__QueryReply *r)
{
    const defn_t *d = *q->defn_p;
    Funnel__V1__FrictionReply fr;
    s_arena_t a = {0};
    s_groups_t g = {0};
    s_marks_t m = { .arena = &a };
    s_friction_t all = {0};
    char set[128];
    const char *by = fq && fq->by ? fq->by : "";
    const char *stage = fq && fq->stage ? fq->stage : "";

    funnel__v1__friction_reply__init(&fr);
    int by_dim = by[0] ? keys_by_parse(by) : -1;
    if (by[0] && by_dim != KEYS_BY_PERSONA && by_dim != KEYS_BY_SOURCE) {
        r->error = (char *)"unknown breakdown: by wants persona or source";
        goto send;
    }
    if (stage[0]) {
        int s = defn_stage_index(d, stage);
        if (s < 0 || (size_t)s >= d->n_order || d->stages[s].terminal) {
            r->error = (char *)"no such stage (a stage of the funnel order "
                               "that is not terminal)";
            goto send;
        }
    }
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        goto send;
    }
    s_read_friction(q, d, "", true, &a, &all);
    fr.n_stages = all.n_stages;
    fr.stages = all.stages;
    fr.n_points = all.n_points;
    fr.points = all.points;
    fr.n_rejection_reasons = all.n_reasons;
    fr.rejection_reasons = all.reasons;
    fr.handoffs_past_sla = all.past_sla;
    fr.sla_breaches = all.breaches;
    fr.window_days = (uint32_t)(d->conversion_window_ms / S_DAY_MS);
    fr.min_sample = d->min_sample;
    int64_t day = store_read_counter(q->store, keys_conv_day);
    fr.window_end_ms = day > 0 ? day * S_DAY_MS : 0;
    fr.by = (char *)by;

    if (by[0]) {
        g.by = (keys_by_t)by_dim;
        if (store_read_counters(q->store, keys_by_prefix(g.by), s_on_group_counter,
                                &g) < 0) {
            store_read_end(q->store);
            r->error = (char *)"storage error";
            goto send;
        }
        fr.groups = s_alloc(&a, g.n, sizeof *fr.groups);
        for (size_t i = 0; i < g.n; i++) {
            char gpre[KEYS_PREFIX_MAX];
            s_friction_t gf = {0};
            keys_group_prefix(gpre, sizeof gpre, g.by, g.names[i]);
            s_read_friction(q, d, gpre, false, &a, &gf);
            Funnel__V1__FrictionGroup *grp = s_alloc(&a, 1, sizeof *grp);
            funnel__v1__friction_group__init(grp);
            grp->name = s_strdup(&a, "%s", g.names[i]);
            grp->n_stages = gf.n_stages;
            grp->stages = gf.stages;
            grp->n_points = gf.n_points;
            grp->points = gf.points;
            grp->n_rejection_reasons = gf.n_reasons;
            grp->rejection_reasons = gf.reasons;
            grp->handoffs_past_sla = gf.past_sla;
            grp->sla_breaches = gf.breaches;
            fr.groups[fr.n_groups++] = grp;
        }
    }

    if (fq && fq->leads) {
        long rc;
        if (stage[0]) {
            keys_mark_stalled(set, sizeof set, stage);
            m.only = set;
            rc = store_read_marks(q->store, set, s_on_mark, &m);
        } else {
            rc = store_read_marks(q->store, keys_stalled_prefix, s_on_mark, &m);
            if (rc >= 0) {
                m.only = keys_mark_sla;
                rc = store_read_marks(q->store, keys_mark_sla, s_on_mark, &m);
            }
        }
        if (rc < 0) {
            store_read_end(q->store);
            r->error = (char *)"storage error";
            goto send;
        }
        if (m.n > 1)
            qsort(m.items, m.n, sizeof *m.items, s_cmp_lead);
        size_t limit = fq->limit ? fq->limit : S_LEADS_DEFAULT;
        fr.leads_total = m.n;
        fr.n_leads = m.n < limit ? m.n : limit;
        fr.leads = m.items;
    }
    store_read_end(q->store);
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_FRICTION;
    r->friction = &fr;
send:
    s_reply(sock, msg, r);
    r->friction = NULL; /* it pointed into this frame */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    for (size_t i = 0; i < g.n; i++)
        free(g.names[i]);
    free(g.names);
    free(m.items);
    s_arena_free(&a);
}

static void s_request(query_t *q, bus_sock_t *sock, bus_msg_t *msg)
{
    Funnel__V1__QueryReply r;

    if (msg->n < 2 || msg->truncated)
        return;
    funnel__v1__query_reply__init(&r);
    zmq_msg_t *payload = &msg->part[msg->n - 1];
    Funnel__V1__QueryRequest *req = funnel__v1__query_request__unpack(
        NULL, zmq_msg_size(payload), zmq_msg_data(payload));
    if (req == NULL) {
        r.error = (char *)"undecodable QueryRequest";
        s_reply(sock, msg, &r);
        return;
    }
    r.request_id = req->request_id;
    switch (req->query_case) {
    case FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD:
        s_lead(q, req->lead, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FUNNEL:
        s_funnel(q, req->funnel, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_STATS:
        s_stats(q, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FRICTION:
        s_friction(q, req->friction, sock, msg, &r);
        break;
    default:
        r.error = (char *)"QueryRequest names no query (lead, funnel, stats or friction)";
        s_reply(sock, msg, &r);
        break;
    }
    /* The reply's oneof pointed into the handler's stack frame. */
    r.reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    r.lead = NULL;
    funnel__v1__query_request__free_unpacked(req, NULL);
}

/* bus_recv_fn for the query ROUTER; arg is the query_t. */
static void s_on_request(bus_sock_t *sock, bus_msg_t *msg, void *arg)
{
    query_t *q = arg;
    /* A reload waits for this query to be answered. */
    pthread_rwlock_rdlock(q->defn_lock);
    s_request(q, sock, msg);
    pthread_rwlock_unlock(q->defn_lock);
}

/* -- the query thread ---------------------------------------------------- */

struct query_server {
    query_t q;
    struct event_base *base;
    bus_t *bus;
    struct event *ev_stop;
    int stop_fd[2];        /* a byte written to [1] stops the loop */
    pthread_t thread;
    bool started;
};

static void s_on_stop(evutil_socket_t fd, short what, void *arg)
{
    query_server_t *self = arg;
    char c;
    (void)!read(fd, &c, 1);
    event_base_loopbreak(self->base);
}

query_server_t *query_server_new(const query_t *q, const char *endpoint,
                                 const bus_opts_t *opts, int budget, char *err,
                                 size_t errlen)
{
    query_server_t *self = xcalloc(1, sizeof *self);
    self->q = *q;
    self->stop_fd[0] = self->stop_fd[1] = -1;
    if (pipe2(self->stop_fd, O_CLOEXEC | O_NONBLOCK) == -1) {
        snprintf(err, errlen, "query thread: pipe: %s", strerror(errno));
        goto fail;
    }
    self->base = event_base_new();
    if (self->base == NULL) {
        snprintf(err, errlen, "query thread: cannot create an event loop");
        goto fail;
    }
    self->ev_stop = event_new(self->base, self->stop_fd[0], EV_READ | EV_PERSIST,
                              s_on_stop, self);
    if (self->ev_stop == NULL || event_add(self->ev_stop, NULL) == -1) {
        snprintf(err, errlen, "query thread: cannot watch its stop pipe");
        goto fail;
    }
    self->bus = bus_new(self->base, err, errlen);
    if (self->bus == NULL)
        goto fail;
    if (q->auth && auth_attach(q->auth, bus_context(self->bus), err, errlen) == -1)
        goto fail;
    bus_sock_t *sock = bus_socket(self->bus, ZMQ_ROUTER, endpoint, true, opts, err, errlen);
    if (sock == NULL) {
        if (q->auth) /* or terminating the context would wait for it */
            auth_detach(q->auth, bus_context(self->bus));
        goto fail;
    }
    /* Created here, used only by the query thread from its start on. */
    bus_on_recv(sock, s_on_request, &self->q, budget);
    return self;
fail:
    query_server_destroy(&self);
    return NULL;
}

static void *s_thread(void *arg)
{
    query_server_t *self = arg;
    if (event_base_dispatch(self->base) == -1)
        log_err("[query] event loop failed; queries are no longer answered");
    return NULL;
}

int query_server_start(query_server_t *self)
{
    int rc = pthread_create(&self->thread, NULL, s_thread, self);
    if (rc != 0) {
        log_err("[query] cannot start the query thread: %s", strerror(rc));
        return -1;
    }
    self->started = true;
    return 0;
}

void query_server_destroy(query_server_t **self_p)
{
    query_server_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->started) {
        (void)!write(self->stop_fd[1], "x", 1);
        pthread_join(self->thread, NULL);
    }
    bus_destroy(&self->bus);
    if (self->ev_stop)
        event_free(self->ev_stop);
    if (self->base)
        event_base_free(self->base);
    for (int i = 0; i < 2; i++)
        if (self->stop_fd[i] != -1)
            close(self->stop_fd[i]);
    free(self);
    *self_p = NULL;
}
