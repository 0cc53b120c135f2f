/* defn_diff.c: the semantic difference between two funnel definitions
 * (defn_diff in defn.h), for `funnelctl definition diff`.
 *
 * Each section of a definition is flattened into (key, value) items, e.g.
 * transitions: "demo_request from sales" -> "decision"; the items of the
 * two definitions are matched by key: a key only in A is "removed", only
 * in B "added", in both with different values "changed". The order of
 * stages and of personas matters too ("reordered").
 */
#include "defn.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timetext.h"
#include "xalloc.h"

typedef struct {
    char *key;
    char *val;
} s_item_t;

typedef struct {
    s_item_t *items;
    size_t n, cap;
} s_items_t;

static void s_add(s_items_t *l, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_add(s_items_t *l, const char *key, const char *fmt, ...)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 32;
        l->items = xrealloc(l->items, l->cap * sizeof *l->items);
    }
    va_list ap;
    va_start(ap, fmt);
    l->items[l->n].val = xvasprintf(fmt, ap);
    va_end(ap);
    l->items[l->n].key = xstrdup(key);
    l->n++;
}

static void s_free(s_items_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].key);
        free(l->items[i].val);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* A duration as the definition would write it ("30d"), "none" for 0. */
static const char *s_dur(int64_t ms, char *buf, size_t size)
{
    if (ms == 0) {
        snprintf(buf, size, "none");
        return buf;
    }
    return timetext_duration(ms, TIMETEXT_DUR_EXACT, buf, size);
}

static const char *s_src(int source)
{
    return source == 1 ? " from marketing" : source == 2 ? " from sales" : "";
}

/* Flatten one section of d into l. */
static void s_section(const defn_t *d, const char *section, s_items_t *l)
{
    char k[256], c[256], t[64];
    if (strcmp(section, "name") == 0) {
        s_add(l, "name", "%s", d->name);
    } else if (strcmp(section, "stages") == 0) {
        for (size_t i = 0; i < d->n_stages; i++) {
            const defn_stage_t *s = &d->stages[i];
            if (i >= d->n_order) {
                s_add(l, s->name, "exit");
                continue;
            }
            s_add(l, s->name, "max_dwell %s, conversion_target %g%s",
                  s_dur(s->max_dwell_ms, t, sizeof t), s->conversion_target,
                  s->terminal ? ", terminal" : "");
        }
    } else if (strcmp(section, "transitions") == 0) {
        for (size_t i = 0; i < d->n_transitions; i++) {
            const defn_transition_t *tr = &d->transitions[i];
            snprintf(k, sizeof k, "%s%s%s%s", tr->type, s_src(tr->source),
                     tr->when ? " when " : "",
                     tr->when ? defn_cond_text(tr->when, c, sizeof c) : "");
            s_add(l, k, "to %s", d->stages[tr->stage].name);
        }
    } else if (strcmp(section, "regressions") == 0) {
        for (size_t i = 0; i < d->n_regressions; i++) {
            const defn_regression_t *r = &d->regressions[i];
            size_t used = 0;
            c[0] = '\0';
            for (size_t s = 0; s < d->n_stages; s++)
                if (r->from_mask & (1u << s)) {
                    int n = snprintf(c + used, sizeof c - used, "%s%s",
                                     used ? ", " : "", d->stages[s].name);
                    if (n > 0 && (size_t)n < sizeof c - used)
                        used += (size_t)n;
                }
            s_add(l, r->type, "from [%s] to %s", c, d->stages[r->stage].name);
        }
    } else if (strcmp(section, "scoring") == 0) {
        s_add(l, "half_life", "%s", s_dur(d->half_life_ms, t, sizeof t));
        for (size_t i = 0; i < d->n_points; i++) {
            snprintf(k, sizeof k, "engagement %s", d->points[i].type);
            s_add(l, k, "%g points", d->points[i].points);
        }
    } else if (strcmp(section, "fit") == 0) {
        for (size_t i = 0; i < d->n_fit; i++)
            s_add(l, d->fit[i].label, "%g points", d->fit[i].points);
    } else if (strcmp(section, "qualification") == 0) {
        size_t used = 0;
        char rule[512] = "";
        for (size_t i = 0; i < d->n_clauses; i++) {
            int n = snprintf(rule + used, sizeof rule - used, "%s%s",
                             used ? " or " : "", d->clauses[i].label);
            if (n > 0 && (size_t)n < sizeof rule - used)
                used += (size_t)n;
        }
        s_add(l, "rule", "%s", rule);
    } else if (strcmp(section, "handoff") == 0) {
        s_add(l, "sla", "%s", s_dur(d->handoff_sla_ms, t, sizeof t));
        s_add(l, "accepted", "%s", d->accept_type);
        s_add(l, "rejected", "%s", d->reject_type);
        s_add(l, "recycled", "%s", d->recycle_type);
        s_add(l, "requalify", "%s", d->requalify_type);
        s_add(l, "reason_attr", "%s", d->reason_attr);
        s_add(l, "recycle_to", "%s",
              d->recycle_stage >= 0 ? d->stages[d->recycle_stage].name : "none");
        s_add(l, "reset_engagement", "%s", d->recycle_reset ? "true" : "false");
    } else if (strcmp(section, "friction") == 0) {
        s_add(l, "conversion_window", "%s",
              s_dur(d->conversion_window_ms, t, sizeof t));
        s_add(l, "min_sample", "%u", d->min_sample);
        s_add(l, "alert_recovery", "%s", d->alert_recovery ? "true" : "false");
    } else if (strcmp(section, "quality") == 0) {
        s_add(l, "lost_after", "%s",
              d->quality_lost_after_ms
                  ? s_dur(d->quality_lost_after_ms, t, sizeof t) : "none");
    } else if (strcmp(section, "personas") == 0) {
        for (size_t i = 0; i < d->n_personas; i++) {
            const defn_persona_t *p = &d->personas[i];
            size_t used = 0;
            char when[512] = "every lead";
            for (size_t w = 0; w < p->n_when; w++) {
                int n = snprintf(when + used, sizeof when - used, "%s%s",
                                 used ? " and " : "",
                                 defn_cond_text(&p->when[w], c, sizeof c));
                if (n > 0 && (size_t)n < sizeof when - used)
                    used += (size_t)n;
            }
            s_add(l, p->name, "%s", when);
        }
    }
}

static const s_item_t *s_find(const s_items_t *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].key, key) == 0)
            return &l->items[i];
    return NULL;
}

/* The keys common to a and b, in a's order and in b's, joined: whether
 * the shared items were reordered. */
static size_t s_order(const char *section, const s_items_t *a,
                      const s_items_t *b, defn_diff_fn *fn, void *arg)
{
    char oa[1024] = "", ob[1024] = "";
    size_t ua = 0, ub = 0;
    for (int pass = 0; pass < 2; pass++) {
        const s_items_t *x = pass ? b : a, *y = pass ? a : b;
        char *o = pass ? ob : oa;
        size_t *u = pass ? &ub : &ua;
        for (size_t i = 0; i < x->n; i++) {
            if (!s_find(y, x->items[i].key))
                continue;
            int n = snprintf(o + *u, 1024 - *u, "%s%s", *u ? ", " : "",
                             x->items[i].key);
            if (n > 0 && (size_t)n < 1024 - *u)
                *u += (size_t)n;
        }
    }
    if (strcmp(oa, ob) == 0)
        return 0;
    fn(section, "reordered", "order", oa, ob, arg);
    return 1;
}

size_t defn_diff(const defn_t *a, const defn_t *b, defn_diff_fn *fn, void *arg)
{
    static const char *const sections[] = {
        "name", "stages", "transitions", "regressions", "scoring", "fit",
        "qualification", "handoff", "personas", "friction", "quality",
    };
    size_t n = 0;
    for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
        s_items_t la = {0}, lb = {0};
        s_section(a, sections[s], &la);
        s_section(b, sections[s], &lb);
        for (size_t i = 0; i < la.n; i++) {
            const s_item_t *o = s_find(&lb, la.items[i].key);
            if (!o) {
                fn(sections[s], "removed", la.items[i].key, la.items[i].val,
                   NULL, arg);
                n++;
            } else if (strcmp(o->val, la.items[i].val) != 0) {
                fn(sections[s], "changed", la.items[i].key, la.items[i].val,
                   o->val, arg);
                n++;
            }
        }
        for (size_t i = 0; i < lb.n; i++)
            if (!s_find(&la, lb.items[i].key)) {
                fn(sections[s], "added", lb.items[i].key, NULL,
                   lb.items[i].val, arg);
                n++;
            }
        if (strcmp(sections[s], "stages") == 0 ||
            strcmp(sections[s], "personas") == 0)
            n += s_order(sections[s], &la, &lb, fn, arg);
        s_free(&la);
        s_free(&lb);
    }
    return n;
}
