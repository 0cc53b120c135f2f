/* defn_rules.c: pass 3 of loading a definition, the rules: scoring
 * (engagement points and fit rules), qualification, handoff, friction and
 * quality.
 * Each section's builder checks its YAML (defn_int.h's structs) and fills
 * its part of the defn_t; the order they run in is defn_build.c's.
 */
#include "defn_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hnd.h"
#include "timetext.h"

/* ---------------------------------------------------------------------- */
/* Scoring: engagement points and fit rules.                               */

/* scoring (defn_int.h): the decay's half_life, the engagement points per
 * event type (each type once, each with finite points), the fit rules
 * (conditions with points, at most DEFN_FIT_MAX, each rule once). */
int defn_build_scoring(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d)
{
    char path[96], text[192];
    const defn_yscoring_t *sc = y->scoring;
    size_t n = sc && sc->engagement ? sc->engagement_count : 0;
    size_t nf = sc && sc->fit ? sc->fit_count : 0;

    d->points = xcalloc(n, sizeof *d->points);
    d->fit = xcalloc(nf, sizeof *d->fit);
    if (sc && defn_duration(ld, sc->half_life, "scoring.half_life",
                            &d->half_life_ms) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const defn_ypoints_t *p = &sc->engagement[i];
        snprintf(path, sizeof path, "scoring.engagement[%zu].type", i);
        if (defn_word(ld, p->type, HND_TYPE_MAX, "event type", path) < 0)
            return -1;
        for (size_t k = 0; k < d->n_points; k++) {
            if (strcmp(d->points[k].type, p->type) == 0) {
                defn_pos_t first =
                    defn_pos(ld, "scoring.engagement[%zu].type", k);
                defn_fail(ld, defn_pos(ld, "%s", path),
                          "%s: duplicate points for event type '%s' (first at "
                          "line %d)", path, p->type, first.line);
                return -1;
            }
        }
        snprintf(path, sizeof path, "scoring.engagement[%zu].points", i);
        if (!p->points) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "scoring.engagement[%zu]: missing 'points'", i);
            return -1;
        }
        if (defn_number(ld, *p->points, path) < 0)
            return -1;
        d->points[d->n_points].type = xstrdup(p->type);
        d->points[d->n_points].points = *p->points;
        d->n_points++;
    }
    if (nf > DEFN_FIT_MAX) {
        defn_fail(ld, defn_pos(ld, "scoring.fit[%d]", DEFN_FIT_MAX),
                  "scoring.fit: too many rules: %zu, at most %d", nf,
                  DEFN_FIT_MAX);
        return -1;
    }
    for (size_t i = 0; i < nf; i++) {
        const defn_ycond_t *f = &sc->fit[i];
        defn_fit_t *r = &d->fit[d->n_fit];
        snprintf(path, sizeof path, "scoring.fit[%zu]", i);
        if (defn_cond(ld, f, path, false, &r->cond) < 0) {
            defn_cond_free(&r->cond);
            return -1;
        }
        d->n_fit++;
        if (!f->points) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "%s: missing 'points'", path);
            return -1;
        }
        snprintf(path, sizeof path, "scoring.fit[%zu].points", i);
        if (defn_number(ld, *f->points, path) < 0)
            return -1;
        r->points = *f->points;
        defn_cond_text(&r->cond, text, sizeof text);
        for (size_t k = 0; k < i; k++)
            if (strcmp(d->fit[k].label, text) == 0) {
                defn_fail(ld, defn_pos(ld, "scoring.fit[%zu]", i),
                          "scoring.fit[%zu]: duplicate rule '%s' (first at "
                          "line %d)", i, text,
                          defn_pos(ld, "scoring.fit[%zu]", k).line);
                return -1;
            }
        r->label = xstrdup(text);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Qualification.                                                          */

static void s_clause_label(defn_clause_t *c)
{
    char buf[160];
    size_t used = 0;
    const struct { bool has; const char *name; double v; } t[] = {
        { c->has_fit, "fit", c->fit },
        { c->has_engagement, "engagement", c->engagement },
        { c->has_total, "total", c->total },
    };
    buf[0] = '\0';
    for (size_t i = 0; i < 3; i++) {
        if (!t[i].has)
            continue;
        int n = snprintf(buf + used, sizeof buf - used, "%s%s >= %g",
                         used ? " and " : "", t[i].name, t[i].v);
        if (n > 0 && (size_t)n < sizeof buf - used)
            used += (size_t)n;
    }
    c->label = xstrdup(buf);
}

/* One clause from its three optional thresholds at `path` (a mapping). */
static int s_clause(defn_loader_t *ld, const double *fit, const double *eng,
                    const double *total, const char *path, double max_fit,
                    double max_eng_points, defn_clause_t *c)
{
    const struct { const double *v; const char *key; } th[] = {
        { fit, "fit" }, { eng, "engagement" }, { total, "total" },
    };
    char sub[128];
    if (!fit && !eng && !total) {
        defn_fail(ld, defn_pos(ld, "%s", path),
                  "%s: no threshold; give fit, engagement and/or total", path);
        return -1;
    }
    for (size_t i = 0; i < 3; i++) {
        if (!th[i].v)
            continue;
        snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "",
                 th[i].key);
        if (defn_number(ld, *th[i].v, sub) < 0)
            return -1;
        if (*th[i].v < 0) {
            defn_fail(ld, defn_pos(ld, "%s", sub),
                      "%s: negative threshold %g", sub, *th[i].v);
            return -1;
        }
        bool unreachable = false;
        const char *why = "";
        if (i == 0 && *th[i].v > max_fit) {
            unreachable = true;
            why = "the fit rules (scoring.fit) add up to at most";
        } else if (i == 1 && *th[i].v > 0 && max_eng_points <= 0) {
            unreachable = true;
            why = "no event type has positive points (scoring.engagement)";
        } else if (i == 2 && *th[i].v > max_fit && max_eng_points <= 0) {
            unreachable = true;
            why = "no event type has positive points and the fit rules add "
                  "up to at most";
        }
        if (unreachable) {
            if (i == 1)
                defn_fail(ld, defn_pos(ld, "%s", sub),
                          "%s: threshold %g can never be reached: %s", sub,
                          *th[i].v, why);
            else
                defn_fail(ld, defn_pos(ld, "%s", sub),
                          "%s: threshold %g can never be reached: %s %g", sub,
                          *th[i].v, why, max_fit);
            return -1;
        }
    }
    c->has_fit = fit != NULL;
    c->fit = fit ? *fit : 0;
    c->has_engagement = eng != NULL;
    c->engagement = eng ? *eng : 0;
    c->has_total = total != NULL;
    c->total = total ? *total : 0;
    s_clause_label(c);
    return 0;
}

/* qualification (defn_int.h): one clause of thresholds, or any_of: a list
 * of clauses, never both. A threshold that no score can reach (above the
 * sum of the positive fit points, or engagement with no positive points)
 * is an error. Needs the scoring built. */
int defn_build_qualification(defn_loader_t *ld, const defn_ytop_t *y,
                             defn_t *d)
{
    const defn_yqual_t *q = y->qualification;
    double max_fit = 0, max_eng = 0;

    for (size_t i = 0; i < d->n_fit; i++)
        if (d->fit[i].points > 0)
            max_fit += d->fit[i].points;
    for (size_t i = 0; i < d->n_points; i++)
        if (d->points[i].points > 0)
            max_eng += d->points[i].points;

    if (!q || (!q->fit && !q->engagement && !q->total && !q->any_of)) {
        defn_fail(ld, defn_pos(ld, "qualification"),
                  "missing '%s': the rule a lead must meet to qualify, e.g. "
                  "{engagement: 50} or any_of: [{fit: 20, engagement: 30}, "
                  "{total: 50}]",
                  q ? "qualification.engagement" : "qualification");
        return -1;
    }
    if (q->any_of && (q->fit || q->engagement || q->total)) {
        defn_fail(ld, defn_pos(ld, "qualification.any_of"),
                  "qualification: thresholds and any_of together; put every "
                  "clause under any_of");
        return -1;
    }
    if (q->any_of) {
        if (q->any_of_count == 0) {
            defn_fail(ld, defn_pos(ld, "qualification.any_of"),
                      "qualification.any_of: empty; no lead could qualify");
            return -1;
        }
        d->clauses = xcalloc(q->any_of_count, sizeof *d->clauses);
        for (unsigned i = 0; i < q->any_of_count; i++) {
            char path[64];
            const defn_yclause_t *c = &q->any_of[i];
            snprintf(path, sizeof path, "qualification.any_of[%u]", i);
            if (s_clause(ld, c->fit, c->engagement, c->total, path, max_fit,
                         max_eng, &d->clauses[d->n_clauses]) < 0)
                return -1;
            d->n_clauses++;
        }
    } else {
        d->clauses = xcalloc(1, sizeof *d->clauses);
        if (s_clause(ld, q->fit, q->engagement, q->total, "qualification",
                     max_fit, max_eng, &d->clauses[0]) < 0)
            return -1;
        d->n_clauses = 1;
    }
    d->qualify_engagement = d->clauses[0].engagement;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Handoff.                                                                */

/* handoff (defn_int.h): the SLA (24 h unless set, never 0), the four
 * answer event types (accepted, rejected, recycled, requalify; distinct)
 * and the reason attribute (with their defaults), the stage a
 * rejected lead returns to and whether its engagement restarts. Needs the
 * stages built. */
int defn_build_handoff(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d)
{
    const defn_yhandoff_t *h = y->handoff;
    d->handoff_sla_ms = 24 * 3600 * 1000;       /* SPEC: 24 h by default */
    if (h && h->sla) {
        if (defn_duration(ld, h->sla, "handoff.sla", &d->handoff_sla_ms) < 0)
            return -1;
        if (d->handoff_sla_ms == 0) {
            defn_fail(ld, defn_pos(ld, "handoff.sla"),
                      "handoff.sla: must be longer than 0");
            return -1;
        }
    }
    const char *acc = h && h->accepted ? h->accepted : "handoff_accepted";
    const char *rej = h && h->rejected ? h->rejected : "handoff_rejected";
    const char *rec = h && h->recycled ? h->recycled : "handoff_recycled";
    const char *req = h && h->requalify ? h->requalify : "handoff_requalify";
    const char *reason = h && h->reason_attr ? h->reason_attr : "reason";
    const char *const types[4] = { acc, rej, rec, req };
    static const char *const keys[4] = { "accepted", "rejected", "recycled",
                                         "requalify" };
    for (int i = 0; i < 4; i++) {
        char path[32];
        snprintf(path, sizeof path, "handoff.%s", keys[i]);
        if (defn_word(ld, types[i], HND_TYPE_MAX, "event type", path) < 0)
            return -1;
        for (int k = 0; k < i; k++)
            if (strcmp(types[i], types[k]) == 0) {
                defn_fail(ld, defn_pos(ld, "%s", path),
                          "%s: same event type as handoff.%s ('%s')", path,
                          keys[k], types[i]);
                return -1;
            }
    }
    if (defn_word(ld, reason, HND_ATTR_KEY_MAX, "attribute",
                  "handoff.reason_attr") < 0)
        return -1;
    d->accept_type = xstrdup(acc);
    d->reject_type = xstrdup(rej);
    d->recycle_type = xstrdup(rec);
    d->requalify_type = xstrdup(req);
    d->reason_attr = xstrdup(reason);
    d->recycle_stage = -1;
    if (h && h->recycle_to) {
        d->recycle_stage = defn_find_stage(d, d->n_stages, h->recycle_to);
        if (d->recycle_stage < 0) {
            defn_fail(ld, defn_pos(ld, "handoff.recycle_to"),
                      "handoff.recycle_to: unknown stage '%s'", h->recycle_to);
            return -1;
        }
        if (d->stages[d->recycle_stage].terminal) {
            defn_fail(ld, defn_pos(ld, "handoff.recycle_to"),
                      "handoff.recycle_to: '%s' is terminal; a recycled lead "
                      "must be able to qualify again", h->recycle_to);
            return -1;
        }
    }
    d->recycle_reset = true;
    if (h && h->reset_engagement &&
        defn_bool(ld, h->reset_engagement, "handoff.reset_engagement",
                  &d->recycle_reset) < 0)
        return -1;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Friction.                                                               */

/* friction (defn_int.h): the rolling window of the conversion check (whole
 * days, 1d..366d, 7d unless set), its min_sample (20) and alert_recovery
 * (true). */
int defn_build_friction(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d)
{
    const defn_yfriction_t *f = y->friction;
    const int64_t day = TIMETEXT_DAY_MS;
    d->conversion_window_ms = 7 * day;
    d->min_sample = 20;
    d->alert_recovery = true;
    if (!f)
        return 0;
    if (f->conversion_window) {
        if (defn_duration(ld, f->conversion_window,
                          "friction.conversion_window",
                          &d->conversion_window_ms) < 0)
            return -1;
        if (d->conversion_window_ms < day ||
            d->conversion_window_ms % day != 0 ||
            d->conversion_window_ms > 366 * day) {
            defn_fail(ld, defn_pos(ld, "friction.conversion_window"),
                      "friction.conversion_window: '%s' is not a whole "
                      "number of days between 1d and 366d",
                      f->conversion_window);
            return -1;
        }
    }
    if (f->min_sample) {
        double v = *f->min_sample;
        if (defn_number(ld, v, "friction.min_sample") < 0)
            return -1;
        if (v < 1 || v > 1e9 || v != floor(v)) {
            defn_fail(ld, defn_pos(ld, "friction.min_sample"),
                      "friction.min_sample: %g is not a whole number of leads "
                      "from 1 up", v);
            return -1;
        }
        d->min_sample = (uint32_t)v;
    }
    if (f->alert_recovery &&
        defn_bool(ld, f->alert_recovery, "friction.alert_recovery",
                  &d->alert_recovery) < 0)
        return -1;
    return 0;
}

/* quality (defn_int.h): lost_after, a whole number of days from 1d to
 * 36500d; absent: 0 (open leads stay open). */
int defn_build_quality(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d)
{
    const defn_yquality_t *q = y->quality;
    const int64_t day = TIMETEXT_DAY_MS;
    d->quality_lost_after_ms = 0;
    if (!q || !q->lost_after)
        return 0;
    if (defn_duration(ld, q->lost_after, "quality.lost_after",
                      &d->quality_lost_after_ms) < 0)
        return -1;
    if (d->quality_lost_after_ms < day || d->quality_lost_after_ms % day != 0) {
        defn_fail(ld, defn_pos(ld, "quality.lost_after"),
                  "quality.lost_after: '%s' is not a whole number of days "
                  "from 1d up", q->lost_after);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Sweeps.                                                                  */

static void s_clause_set(defn_clause_t *c, int which, double v)
{
    bool *has[] = { &c->has_fit, &c->has_engagement, &c->has_total };
    double *val[] = { &c->fit, &c->engagement, &c->total };
    *has[which] = true;
    *val[which] = v;
    free(c->label);
    s_clause_label(c);
}

static bool s_clause_has(const defn_clause_t *c, int which)
{
    return which == 0 ? c->has_fit : which == 1 ? c->has_engagement : c->has_total;
}

int defn_set_threshold(defn_t *d, const char *key, double v, char *err, size_t errlen)
{
    static const char *const names[] = { "fit", "engagement", "total" };
    const char *pre = "qualification.";
    if (!isfinite(v)) {
        snprintf(err, errlen, "%s: the value is not a finite number", key);
        return -1;
    }
    if (strncmp(key, pre, strlen(pre)) != 0)
        goto unknown;
    const char *rest = key + strlen(pre);
    long clause = -1;
    if (strncmp(rest, "any_of[", 7) == 0) {
        char *end;
        clause = strtol(rest + 7, &end, 10);
        if (end == rest + 7 || strncmp(end, "].", 2) != 0 || clause < 0)
            goto unknown;
        if ((size_t)clause >= d->n_clauses) {
            snprintf(err, errlen, "%s: the qualification has %zu clause(s), any_of[0] to "
                     "any_of[%zu]", key, d->n_clauses, d->n_clauses - 1);
            return -1;
        }
        rest = end + 2;
    }
    int which = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(rest, names[i]) == 0)
            which = i;
    if (which < 0)
        goto unknown;
    if (clause >= 0) {
        s_clause_set(&d->clauses[clause], which, v);
    } else {
        size_t n = 0;
        for (size_t i = 0; i < d->n_clauses; i++)
            if (s_clause_has(&d->clauses[i], which)) {
                s_clause_set(&d->clauses[i], which, v);
                n++;
            }
        if (n == 0 && d->n_clauses == 1) {
            s_clause_set(&d->clauses[0], which, v);
        } else if (n == 0) {
            snprintf(err, errlen, "%s: no qualification clause sets %s (name one: "
                     "qualification.any_of[N].%s)", key, names[which], names[which]);
            return -1;
        }
    }
    d->qualify_engagement = d->clauses[0].engagement;
    return 0;
unknown:
    snprintf(err, errlen, "%s: not a threshold that can be swept (qualification.fit, "
             "qualification.engagement, qualification.total, or "
             "qualification.any_of[N].<one of them>)", key);
    return -1;
}
