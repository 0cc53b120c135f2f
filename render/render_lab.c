/* render_lab.c: the quality report and the definition lab's backtest as
 * JSON and as text (see render.h). Pure. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"
#include "timetext.h"

static json_t *s_rate(bool has, double v)
{
    return has ? json_real(v) : json_null();
}

static void s_set(json_t *o, const char *k, json_t *v)
{
    if (v == NULL || json_object_set_new(o, k, v) == -1)
        abort();
}

static json_t *s_u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

json_t *render_quality_group_json(const Funnel__V1__QualityGroup *g)
{
    json_t *o = json_object();
    if (g->group[0])
        s_set(o, "group", json_string(g->group));
    s_set(o, "handed_off", s_u64(g->handed_off));
    s_set(o, "won", s_u64(g->won));
    s_set(o, "lost", s_u64(g->lost));
    s_set(o, "open", s_u64(g->open));
    s_set(o, "outcome_before_handoff", s_u64(g->before));
    s_set(o, "lost_after_timeout", s_u64(g->lost_timeout));
    s_set(o, "precision", s_rate(g->has_precision, g->precision));
    s_set(o, "recall", s_rate(g->has_recall, g->recall));
    s_set(o, "base_rate", s_rate(g->has_base_rate, g->base_rate));
    s_set(o, "lift", s_rate(g->has_lift, g->lift));
    s_set(o, "median_handoff_to_won_ms", g->median_handoff_to_won_ms >= 0
                                             ? json_integer(g->median_handoff_to_won_ms)
                                             : json_null());
    s_set(o, "rejection_rate", s_rate(g->has_rejection_rate, g->rejection_rate));
    json_t *all = json_object();
    s_set(all, "won", s_u64(g->all_won));
    s_set(all, "lost", s_u64(g->all_lost));
    s_set(all, "open", s_u64(g->all_open));
    s_set(o, "all_leads", all);
    return o;
}

json_t *render_quality_json(const Funnel__V1__QualityReply *q)
{
    json_t *doc = render_quality_group_json(q->all);
    s_set(doc, "lost_after_ms", json_integer(q->lost_after_ms));
    s_set(doc, "as_of_ms", json_integer(q->as_of_ms));
    s_set(doc, "definition", json_string(q->definition));
    if (q->by[0]) {
        json_t *groups = json_array();
        for (size_t i = 0; i < q->n_groups; i++)
            json_array_append_new(groups, render_quality_group_json(q->groups[i]));
        s_set(doc, "by", json_string(q->by));
        s_set(doc, "groups", groups);
    }
    return doc;
}

static void s_cell_rate(FILE *out, bool has, double v, bool pct)
{
    if (!has)
        fprintf(out, " %9s", "-");
    else if (pct)
        fprintf(out, " %8.1f%%", 100 * v);
    else
        fprintf(out, " %9.2f", v);
}

static void s_quality_row(FILE *out, const char *name, const Funnel__V1__QualityGroup *g)
{
    char med[32] = "-";
    if (g->median_handoff_to_won_ms >= 0)
        timetext_duration(g->median_handoff_to_won_ms, TIMETEXT_DUR_SHORT, med, sizeof med);
    fprintf(out, "%-32.32s %10" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64,
            name, g->handed_off, g->won, g->lost, g->open, g->before);
    s_cell_rate(out, g->has_precision, g->precision, true);
    s_cell_rate(out, g->has_recall, g->recall, true);
    s_cell_rate(out, g->has_base_rate, g->base_rate, true);
    s_cell_rate(out, g->has_lift, g->lift, false);
    fprintf(out, " %10s", med);
    s_cell_rate(out, g->has_rejection_rate, g->rejection_rate, true);
    fputc('\n', out);
}

static void s_quality_head(FILE *out)
{
    fprintf(out, "%-32s %10s %8s %8s %8s %8s %9s %9s %9s %9s %10s %9s\n", "group",
            "handed_off", "won", "lost", "open", "before", "precision", "recall", "base_rate",
            "lift", "to_won", "rejected");
}

void render_quality_text(FILE *out, const Funnel__V1__QualityReply *q)
{
    char t[32];
    if (q->lost_after_ms > 0)
        fprintf(out, "Open leads count as lost %s after their handoff (quality.lost_after).\n",
                timetext_duration(q->lost_after_ms, TIMETEXT_DUR_SHORT, t, sizeof t));
    else
        fprintf(out, "Open leads are left out of precision and base rate "
                     "(no quality.lost_after).\n");
    s_quality_head(out);
    s_quality_row(out, "(all)", q->all);
    for (size_t i = 0; i < q->n_groups; i++)
        s_quality_row(out, q->groups[i]->group, q->groups[i]);
}

/* -- backtest ----------------------------------------------------------- */

/* Friction per kind: the friction events a side's stages counted. */
typedef struct {
    uint64_t stall, regression, handoff_rejected, handoff_sla, dropped, below_target;
} s_kinds_t;

static s_kinds_t s_kinds(const Funnel__V1__FrictionReply *f)
{
    s_kinds_t k = {0};
    for (size_t i = 0; f && i < f->n_stages; i++) {
        const Funnel__V1__StageFriction *s = f->stages[i];
        k.stall += s->stalls;
        k.regression += s->regressions;
        k.handoff_rejected += s->rejections;
        k.dropped += s->dropped;
        k.below_target += s->below_target;
    }
    if (f)
        k.handoff_sla = f->sla_breaches;
    return k;
}

static json_t *s_side_json(const Funnel__V1__BacktestSide *s)
{
    json_t *o = json_object();
    if (s == NULL)
        return o;
    s_set(o, "definition", json_string(s->definition));
    s_set(o, "handoffs", s_u64(s->handoffs));
    s_set(o, "leads", s_u64(s->funnel ? s->funnel->leads : 0));
    json_t *stages = json_array();
    for (size_t i = 0; s->funnel && i < s->funnel->n_stages; i++) {
        const Funnel__V1__StageCount *c = s->funnel->stages[i];
        json_t *e = json_object();
        s_set(e, "stage", json_string(c->stage));
        s_set(e, "now", s_u64(c->now));
        s_set(e, "entered", s_u64(c->entered));
        const Funnel__V1__StageFriction *f = NULL;
        if (s->friction && i < s->friction->n_stages)
            f = s->friction->stages[i];
        s_set(e, "conversion", f && f->has_conversion ? json_real(f->conversion)
                                                      : json_null());
        json_array_append_new(stages, e);
    }
    s_set(o, "stages", stages);
    s_kinds_t k = s_kinds(s->friction);
    json_t *fr = json_object();
    s_set(fr, "stall", s_u64(k.stall));
    s_set(fr, "regression", s_u64(k.regression));
    s_set(fr, "handoff_rejected", s_u64(k.handoff_rejected));
    s_set(fr, "handoff_sla", s_u64(k.handoff_sla));
    s_set(fr, "dropped", s_u64(k.dropped));
    s_set(fr, "conversion_below_target", s_u64(k.below_target));
    s_set(o, "friction", fr);
    s_set(o, "quality", s->quality ? render_quality_json(s->quality) : json_null());
    return o;
}

static json_t *s_set_json(const Funnel__V1__BacktestSet *set)
{
    json_t *o = json_object();
    json_t *ids = json_array();
    s_set(o, "count", s_u64(set ? set->count : 0));
    for (size_t i = 0; set && i < set->n_sample; i++)
        json_array_append_new(ids, json_string(set->sample[i]));
    s_set(o, "sample", ids);
    return o;
}

json_t *render_backtest_json(const Funnel__V1__BacktestReply *r)
{
    json_t *o = json_object();
    s_set(o, "live", s_side_json(r->live));
    s_set(o, "draft", s_side_json(r->draft));
    s_set(o, "both", s_set_json(r->both));
    s_set(o, "only_live", s_set_json(r->only_live));
    s_set(o, "only_draft", s_set_json(r->only_draft));
    json_t *weeks = json_array();
    for (size_t i = 0; i < r->n_weeks; i++)
        json_array_append_new(weeks, json_pack("{s:s, s:I, s:I}", "week", r->weeks[i]->week,
                                               "live", (json_int_t)r->weeks[i]->live,
                                               "draft", (json_int_t)r->weeks[i]->draft));
    s_set(o, "weeks", weeks);
    s_set(o, "replayed", s_u64(r->replayed));
    s_set(o, "upto_seq", s_u64(r->upto_seq));
    s_set(o, "events", s_u64(r->events));
    s_set(o, "since_ms", r->since_ms ? json_integer(r->since_ms) : json_null());
    s_set(o, "until_ms", r->until_ms ? json_integer(r->until_ms) : json_null());
    s_set(o, "as_of_ms", json_integer(r->as_of_ms));
    s_set(o, "elapsed_ms", s_u64(r->elapsed_ms));
    s_set(o, "cpu_ms", s_u64(r->cpu_ms));
    if (r->sweep_key[0]) {
        json_t *sw = json_object(), *rows = json_array();
        s_set(sw, "key", json_string(r->sweep_key));
        for (size_t i = 0; i < r->n_sweep; i++) {
            const Funnel__V1__BacktestSweepRow *w = r->sweep[i];
            json_t *e = json_object();
            s_set(e, "value", json_real(w->value));
            s_set(e, "handoffs", s_u64(w->handoffs));
            s_set(e, "handoffs_per_week", json_real(w->handoffs_per_week));
            s_set(e, "handed_off", s_u64(w->handed_off));
            s_set(e, "precision", s_rate(w->has_precision, w->precision));
            s_set(e, "recall", s_rate(w->has_recall, w->recall));
            json_array_append_new(rows, e);
        }
        s_set(sw, "rows", rows);
        s_set(o, "sweep", sw);
    }
    return o;
}

static void s_pct(FILE *out, bool has, double v)
{
    if (has)
        fprintf(out, " %8.1f%%", 100 * v);
    else
        fprintf(out, " %9s", "-");
}

static void s_ids(FILE *out, const char *name, const Funnel__V1__BacktestSet *set)
{
    fprintf(out, "  %-11s %8" PRIu64, name, set ? set->count : 0);
    for (size_t i = 0; set && i < set->n_sample; i++)
        fprintf(out, "%s%s", i ? ", " : "   e.g. ", set->sample[i]);
    fputc('\n', out);
}

void render_backtest_text(FILE *out, const Funnel__V1__BacktestReply *r)
{
    const Funnel__V1__BacktestSide *l = r->live, *d = r->draft;
    if (l == NULL || d == NULL)
        return;
    fprintf(out, "Backtest of draft \"%s\" against live \"%s\": %" PRIu64
                 " events (%" PRIu64 " log entries up to %" PRIu64 ") in %" PRIu64 " ms (%" PRIu64
                 " ms of CPU).\n\n",
            d->definition, l->definition, r->events, r->replayed, r->upto_seq, r->elapsed_ms,
            r->cpu_ms);
    fprintf(out, "%-24s %12s %12s\n", "", "live", "draft");
    fprintf(out, "%-24s %12" PRIu64 " %12" PRIu64 "\n", "handoffs", l->handoffs, d->handoffs);
    fprintf(out, "%-24s %12" PRIu64 " %12" PRIu64 "\n", "leads",
            l->funnel ? l->funnel->leads : 0, d->funnel ? d->funnel->leads : 0);
    /* Stages by name: the two definitions may not have the same ones. */
    for (size_t i = 0; l->funnel && i < l->funnel->n_stages; i++) {
        const Funnel__V1__StageCount *c = l->funnel->stages[i];
        uint64_t dn = 0;
        bool in_draft = false;
        for (size_t k = 0; d->funnel && k < d->funnel->n_stages; k++)
            if (strcmp(d->funnel->stages[k]->stage, c->stage) == 0) {
                dn = d->funnel->stages[k]->now;
                in_draft = true;
            }
        char label[80];
        snprintf(label, sizeof label, "now in %s", c->stage);
        if (in_draft)
            fprintf(out, "%-24s %12" PRIu64 " %12" PRIu64 "\n", label, c->now, dn);
        else
            fprintf(out, "%-24s %12" PRIu64 " %12s\n", label, c->now, "-");
    }
    for (size_t i = 0; l->friction && i < l->friction->n_stages; i++) {
        const Funnel__V1__StageFriction *f = l->friction->stages[i];
        if (!f->has_conversion)
            continue;
        const Funnel__V1__StageFriction *g = NULL;
        for (size_t k = 0; d->friction && k < d->friction->n_stages; k++)
            if (strcmp(d->friction->stages[k]->stage, f->stage) == 0)
                g = d->friction->stages[k];
        char label[80];
        snprintf(label, sizeof label, "conversion %s", f->stage);
        fprintf(out, "%-24s %11.1f%%", label, 100 * f->conversion);
        if (g && g->has_conversion)
            fprintf(out, " %11.1f%%\n", 100 * g->conversion);
        else
            fprintf(out, " %12s\n", "-");
    }
    s_kinds_t kl = s_kinds(l->friction), kd = s_kinds(d->friction);
    const struct { const char *name; uint64_t a, b; } rows[] = {
        { "friction stall", kl.stall, kd.stall },
        { "friction regression", kl.regression, kd.regression },
        { "friction rejected", kl.handoff_rejected, kd.handoff_rejected },
        { "friction handoff_sla", kl.handoff_sla, kd.handoff_sla },
        { "friction dropped", kl.dropped, kd.dropped },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        fprintf(out, "%-24s %12" PRIu64 " %12" PRIu64 "\n", rows[i].name, rows[i].a, rows[i].b);
    if (l->quality && d->quality) {
        const Funnel__V1__QualityGroup *a = l->quality->all, *b = d->quality->all;
        fprintf(out, "%-24s %12" PRIu64 " %12" PRIu64 "\n", "handed off (leads)",
                a->handed_off, b->handed_off);
        fprintf(out, "%-24s %12" PRIu64 " %12" PRIu64 "\n", "won after handoff", a->won,
                b->won);
        fprintf(out, "%-24s", "precision");
        s_pct(out, a->has_precision, a->precision);
        fputs("   ", out);
        s_pct(out, b->has_precision, b->precision);
        fprintf(out, "\n%-24s", "recall");
        s_pct(out, a->has_recall, a->recall);
        fputs("   ", out);
        s_pct(out, b->has_recall, b->recall);
        fprintf(out, "\n%-24s", "lift");
        if (a->has_lift)
            fprintf(out, " %12.2f", a->lift);
        else
            fprintf(out, " %12s", "-");
        if (b->has_lift)
            fprintf(out, " %12.2f\n", b->lift);
        else
            fprintf(out, " %12s\n", "-");
    }
    fprintf(out, "\nLeads handed off:\n");
    s_ids(out, "both", r->both);
    s_ids(out, "only_live", r->only_live);
    s_ids(out, "only_draft", r->only_draft);
    if (r->n_weeks) {
        fprintf(out, "\nHandoffs per week:\n  %-10s %8s %8s\n", "week", "live", "draft");
        for (size_t i = 0; i < r->n_weeks; i++)
            fprintf(out, "  %-10s %8" PRIu64 " %8" PRIu64 "\n", r->weeks[i]->week,
                    r->weeks[i]->live, r->weeks[i]->draft);
    }
    if (r->sweep_key[0]) {
        fprintf(out, "\nSweep of %s:\n  %10s %9s %10s %10s %9s %9s\n", r->sweep_key, "value",
                "handoffs", "per_week", "handed_off", "precision", "recall");
        for (size_t i = 0; i < r->n_sweep; i++) {
            const Funnel__V1__BacktestSweepRow *w = r->sweep[i];
            fprintf(out, "  %10g %9" PRIu64 " %10.1f %10" PRIu64, w->value, w->handoffs,
                    w->handoffs_per_week, w->handed_off);
            s_pct(out, w->has_precision, w->precision);
            s_pct(out, w->has_recall, w->recall);
            fputc('\n', out);
        }
    }
}

/* -- friction --suggest ------------------------------------------------- */

/* A persona's p90 is mentioned when it rests on at least this many
 * completed stays and differs from the stage's by more than half. */
#define S_SUGGEST_MIN_STAYS 10

/* p90_ms rounded up to whole minutes, hours or days (the unit the duration
 * is at least two of), as the definition writes durations. */
static int64_t s_round_up(int64_t ms)
{
    const int64_t min = 60000, hour = 60 * min, day = 24 * hour;
    int64_t unit = ms >= 2 * day ? day : ms >= 2 * hour ? hour : min;
    int64_t r = (ms + unit - 1) / unit * unit;
    return r > 0 ? r : min;
}

static bool s_differs(int64_t a, int64_t b)
{
    int64_t d = a > b ? a - b : b - a;
    return 2 * d > b;
}

json_t *render_dwell_suggest_json(const Funnel__V1__FrictionReply *all,
                                  const Funnel__V1__FrictionReply *by_persona)
{
    json_t *o = json_object(), *stages = json_array();
    char t[32];
    for (size_t i = 0; i < all->n_stages; i++) {
        const Funnel__V1__StageFriction *s = all->stages[i];
        if (s->completed == 0 || s->p90_ms < 0)
            continue;
        int64_t sug = s_round_up(s->p90_ms);
        json_t *e = json_object(), *ps = json_array();
        s_set(e, "stage", json_string(s->stage));
        s_set(e, "completed", s_u64(s->completed));
        s_set(e, "p90_ms", json_integer(s->p90_ms));
        s_set(e, "max_dwell_ms", s->max_dwell_ms > 0 ? json_integer(s->max_dwell_ms)
                                                     : json_null());
        s_set(e, "suggested_ms", json_integer(sug));
        s_set(e, "suggested", json_string(timetext_duration(sug, TIMETEXT_DUR_EXACT, t,
                                                             sizeof t)));
        for (size_t k = 0; by_persona && k < by_persona->n_groups; k++) {
            const Funnel__V1__FrictionGroup *g = by_persona->groups[k];
            if (i >= g->n_stages)
                continue;
            const Funnel__V1__StageFriction *p = g->stages[i];
            if (p->completed < S_SUGGEST_MIN_STAYS || p->p90_ms < 0 ||
                !s_differs(p->p90_ms, s->p90_ms))
                continue;
            int64_t psug = s_round_up(p->p90_ms);
            json_array_append_new(
                ps, json_pack("{s:s, s:I, s:I, s:I, s:s}", "persona", g->name, "completed",
                              (json_int_t)p->completed, "p90_ms", (json_int_t)p->p90_ms,
                              "suggested_ms", (json_int_t)psug, "suggested",
                              timetext_duration(psug, TIMETEXT_DUR_EXACT, t, sizeof t)));
        }
        s_set(e, "personas", ps);
        json_array_append_new(stages, e);
    }
    s_set(o, "stages", stages);
    return o;
}

void render_dwell_suggest_text(FILE *out, const Funnel__V1__FrictionReply *all,
                               const Funnel__V1__FrictionReply *by_persona)
{
    json_t *doc = render_dwell_suggest_json(all, by_persona);
    json_t *stages = json_object_get(doc, "stages");
    char t[32], now[32];
    fprintf(out, "# max_dwell per stage: the p90 of the stage's completed stays, rounded up\n"
                 "# (funnelctl friction --suggest). Set each stage's max_dwell in the\n"
                 "# definition's stages list to the value below.\n");
    if (json_array_size(stages) == 0) {
        fprintf(out, "# No stage has completed stays yet: nothing to suggest.\n");
        json_decref(doc);
        return;
    }
    fprintf(out, "stages:\n");
    size_t i;
    json_t *e;
    json_array_foreach(stages, i, e) {
        json_t *cur = json_object_get(e, "max_dwell_ms");
        if (json_is_integer(cur))
            timetext_duration(json_integer_value(cur), TIMETEXT_DUR_EXACT, now, sizeof now);
        else
            snprintf(now, sizeof now, "none");
        fprintf(out, "  - name: %s\n    max_dwell: %-8s # p90 %s of %" JSON_INTEGER_FORMAT
                     " completed stays; now %s\n",
                json_string_value(json_object_get(e, "stage")),
                json_string_value(json_object_get(e, "suggested")),
                timetext_duration(json_integer_value(json_object_get(e, "p90_ms")),
                                  TIMETEXT_DUR_SHORT, t, sizeof t),
                json_integer_value(json_object_get(e, "completed")), now);
        size_t k;
        json_t *p;
        json_array_foreach(json_object_get(e, "personas"), k, p) {
            fprintf(out, "    # persona %s: p90 %s of %" JSON_INTEGER_FORMAT
                         " stays, more than half off the stage's: %s would suit it\n",
                    json_string_value(json_object_get(p, "persona")),
                    timetext_duration(json_integer_value(json_object_get(p, "p90_ms")),
                                      TIMETEXT_DUR_SHORT, t, sizeof t),
                    json_integer_value(json_object_get(p, "completed")),
                    json_string_value(json_object_get(p, "suggested")));
        }
    }
    json_decref(doc);
}
