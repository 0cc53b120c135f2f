/* render: JSON and text output of funneld's replies and alerts.
 * Contracts in render.h. */
#include "render.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "timetext.h"
#include "xalloc.h"

/* A JSON string that never fails: protobuf-c does not check UTF-8, jansson
 * does, so bytes that are not valid UTF-8 come out as '?'. */
static json_t *s_str(const char *s)
{
    if (!s)
        s = "";
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *copy = xmalloc(n + 1);
    for (size_t i = 0; i <= n; i++)
        copy[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    j = json_string(copy);
    free(copy);
    return j;
}

/* A string, or null when empty. */
static json_t *s_str_or_null(const char *s)
{
    return s && *s ? s_str(s) : json_null();
}

static json_t *s_u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static void s_set(json_t *obj, const char *key, json_t *v)
{
    if (!v || json_object_set_new(obj, key, v) == -1)
        abort();
}

json_t *render_time_json(int64_t ms)
{
    char buf[TIMETEXT_RFC3339_LEN];
    if (ms == 0)
        return json_null();
    return json_string(timetext_rfc3339(ms, true, buf, TIMETEXT_RFC3339_LEN));
}

/* For text: the time, or "-" when unknown. */
static const char *s_time_text(int64_t ms, char *buf)
{
    if (ms == 0)
        return "-";
    return timetext_rfc3339(ms, true, buf, TIMETEXT_RFC3339_LEN);
}

const char *render_source_name(Funnel__V1__Source s)
{
    switch (s) {
    case FUNNEL__V1__SOURCE__SOURCE_MARKETING:
        return "marketing";
    case FUNNEL__V1__SOURCE__SOURCE_SALES:
        return "sales";
    default:
        return NULL;
    }
}

const char *render_handoff_name(Funnel__V1__HandoffStatus s)
{
    switch (s) {
    case FUNNEL__V1__HANDOFF_STATUS__HANDOFF_PENDING:
        return "pending";
    case FUNNEL__V1__HANDOFF_STATUS__HANDOFF_ACCEPTED:
        return "accepted";
    case FUNNEL__V1__HANDOFF_STATUS__HANDOFF_REJECTED:
        return "rejected";
    case FUNNEL__V1__HANDOFF_STATUS__HANDOFF_RECYCLED:
        return "recycled";
    case FUNNEL__V1__HANDOFF_STATUS__HANDOFF_REQUALIFIED:
        return "requalified";
    default:
        return "none";
    }
}

static json_t *s_source_json(Funnel__V1__Source s)
{
    const char *name = render_source_name(s);
    return name ? json_string(name) : json_null();
}

/* ------------------------------------------------------------------ */
/* lead                                                               */

static json_t *s_event_attrs_json(const Funnel__V1__Event *ev)
{
    json_t *o = json_object();
    for (size_t i = 0; i < ev->n_attrs; i++)
        s_set(o, ev->attrs[i]->key, s_str(ev->attrs[i]->value));
    return o;
}

json_t *render_lead_record_json(const Funnel__V1__Lead *lead)
{
    json_t *o = json_object();
    if (!lead)
        return o;
    s_set(o, "lead", s_str(lead->id));
    s_set(o, "stage", s_str(lead->stage));
    s_set(o, "stage_entered_at", render_time_json(lead->stage_entered_at_ms));

    json_t *score = json_object();
    s_set(score, "fit", json_real(lead->fit));
    s_set(score, "engagement", json_real(lead->engagement));
    s_set(score, "total", json_real(lead->total));
    s_set(score, "as_of", render_time_json(lead->scores_as_of_ms));
    s_set(o, "score", score);
    if (lead->as_of_ms)
        s_set(o, "as_of", render_time_json(lead->as_of_ms));

    s_set(o, "persona", s_str_or_null(lead->persona));
    s_set(o, "qualified", json_boolean(lead->qualified));

    json_t *handoff = json_object();
    s_set(handoff, "status", json_string(render_handoff_name(lead->handoff_status)));
    s_set(handoff, "at", render_time_json(lead->handoff_at_ms));
    s_set(o, "handoff", handoff);

    json_t *attrs = json_object();
    for (size_t i = 0; i < lead->n_attrs; i++)
        s_set(attrs, lead->attrs[i]->key, s_str(lead->attrs[i]->value));
    s_set(o, "attrs", attrs);

    s_set(o, "events", s_u64(lead->events));
    s_set(o, "first_source", s_source_json(lead->first_source));
    s_set(o, "first_seen", render_time_json(lead->first_seen_ms));
    s_set(o, "last_event_at", render_time_json(lead->last_event_ms));

    json_t *skipped = json_array();
    for (size_t i = 0; i < lead->n_skipped; i++)
        json_array_append_new(skipped, s_str(lead->skipped[i]));
    s_set(o, "skipped", skipped);

    s_set(handoff, "sent", s_u64(lead->handoffs_sent));
    s_set(handoff, "accepted", s_u64(lead->handoffs_accepted));
    s_set(handoff, "rejected", s_u64(lead->handoffs_rejected));
    s_set(handoff, "recycled", s_u64(lead->handoffs_recycled));
    s_set(handoff, "requalified", s_u64(lead->handoffs_requalified));
    json_t *hist = json_array();
    for (size_t i = 0; i < lead->n_handoffs; i++) {
        const Funnel__V1__HandoffRecord *h = lead->handoffs[i];
        json_t *e = json_object();
        s_set(e, "status", json_string(render_handoff_name(h->status)));
        s_set(e, "at", render_time_json(h->at_ms));
        s_set(e, "answered_at", render_time_json(h->answered_at_ms));
        s_set(e, "rule", s_str(h->rule));
        s_set(e, "reason", s_str_or_null(h->reason));
        s_set(e, "fit", json_real(h->fit));
        s_set(e, "engagement", json_real(h->engagement));
        json_array_append_new(hist, e);
    }
    s_set(handoff, "history", hist);

    json_t *ledger = json_array();
    for (size_t i = 0; i < lead->n_ledger; i++) {
        const Funnel__V1__LedgerEntry *l = lead->ledger[i];
        json_t *e = json_object();
        s_set(e, "kind", s_str(l->kind));
        s_set(e, "rule", s_str(l->rule));
        s_set(e, "event_id", s_str_or_null(l->event_id));
        s_set(e, "seq", s_u64(l->seq));
        s_set(e, "at", render_time_json(l->at_ms));
        s_set(e, "points", json_real(l->points));
        s_set(e, "current", json_real(l->current));
        json_array_append_new(ledger, e);
    }
    s_set(score, "ledger", ledger);
    s_set(score, "ledger_complete", json_boolean(lead->ledger_complete));
    json_t *older = json_object();
    const Funnel__V1__LedgerCarry *carry[2] = { lead->older_fit, lead->older_engagement };
    const char *carry_name[2] = { "fit", "engagement" };
    for (int k = 0; k < 2; k++) {
        json_t *c = json_object();
        s_set(c, "entries", s_u64(carry[k] ? carry[k]->entries : 0));
        s_set(c, "points", json_real(carry[k] ? carry[k]->points : 0));
        s_set(c, "current", json_real(carry[k] ? carry[k]->current : 0));
        s_set(older, carry_name[k], c);
    }
    s_set(score, "older", older);

    json_t *counts = json_object();
    for (size_t i = 0; i < lead->n_counts; i++)
        s_set(counts, lead->counts[i]->type, s_u64(lead->counts[i]->count));
    s_set(o, "counts", counts);

    json_t *ph = json_array();
    for (size_t i = 0; i < lead->n_persona_history; i++) {
        const Funnel__V1__PersonaChange *c = lead->persona_history[i];
        json_t *e = json_object();
        s_set(e, "from", s_str_or_null(c->from));
        s_set(e, "to", s_str_or_null(c->to));
        s_set(e, "at", render_time_json(c->at_ms));
        s_set(e, "seq", s_u64(c->seq));
        json_array_append_new(ph, e);
    }
    s_set(o, "persona_history", ph);

    json_t *entered = json_array();
    for (size_t i = 0; i < lead->n_entered; i++)
        json_array_append_new(entered, s_str(lead->entered[i]));
    s_set(o, "entered", entered);

    json_t *fr = json_object();
    s_set(fr, "stalled", json_boolean(lead->stalled));
    s_set(fr, "sla_breached", json_boolean(lead->sla_breached));
    s_set(fr, "total", s_u64(lead->frictions));
    json_t *fh = json_array();
    for (size_t i = 0; i < lead->n_friction; i++) {
        const Funnel__V1__FrictionRecord *f = lead->friction[i];
        json_t *e = json_object();
        s_set(e, "kind", s_str(f->kind));
        s_set(e, "stage", s_str_or_null(f->stage));
        s_set(e, "at", render_time_json(f->at_ms));
        s_set(e, "duration_ms", f->duration_ms ? json_integer(f->duration_ms) : json_null());
        s_set(e, "detail", s_str_or_null(f->detail));
        json_array_append_new(fh, e);
    }
    s_set(fr, "history", fh);
    s_set(o, "friction", fr);
    return o;
}

json_t *render_lead_json(const Funnel__V1__LeadReply *reply)
{
    json_t *o = render_lead_record_json(reply->lead);
    json_t *timeline = json_array();
    for (size_t i = 0; i < reply->n_timeline; i++) {
        const Funnel__V1__TimelineEntry *t = reply->timeline[i];
        json_t *e = json_object();
        s_set(e, "seq", s_u64(t->seq));
        if (t->event) {
            const Funnel__V1__Event *ev = t->event;
            s_set(e, "id", s_str(ev->id));
            s_set(e, "type", s_str(ev->type));
            s_set(e, "source", s_source_json(ev->source));
            s_set(e, "at", render_time_json(ev->occurred_at_ms));
            s_set(e, "attrs", s_event_attrs_json(ev));
            s_set(e, "value", json_real(ev->value));
        }
        json_array_append_new(timeline, e);
    }
    s_set(o, "timeline", timeline);
    return o;
}

static void s_fmt_score(double v, char *buf, size_t size)
{
    snprintf(buf, size, "%.1f", v);
}

void render_lead_text(FILE *out, const Funnel__V1__LeadReply *reply)
{
    const Funnel__V1__Lead *l = reply->lead;
    char t1[TIMETEXT_RFC3339_LEN], fit[32], eng[32], tot[32];
    if (!l)
        return;
    fprintf(out, "lead        %s\n", l->id);
    if (l->as_of_ms)
        fprintf(out, "as of       %s (replayed from the log with the definition in use)\n",
                s_time_text(l->as_of_ms, t1));
    fprintf(out, "stage       %s (since %s)\n", l->stage, s_time_text(l->stage_entered_at_ms, t1));
    s_fmt_score(l->fit, fit, sizeof fit);
    s_fmt_score(l->engagement, eng, sizeof eng);
    s_fmt_score(l->total, tot, sizeof tot);
    fprintf(out, "score       total %s (fit %s, engagement %s) as of %s\n", tot, fit, eng,
            s_time_text(l->scores_as_of_ms, t1));
    fprintf(out, "persona     %s\n", l->persona && *l->persona ? l->persona : "-");
    fprintf(out, "qualified   %s\n", l->qualified ? "yes" : "no");
    if (l->handoff_status == FUNNEL__V1__HANDOFF_STATUS__HANDOFF_NONE)
        fprintf(out, "handoff     none\n");
    else
        fprintf(out, "handoff     %s (%s)\n", render_handoff_name(l->handoff_status),
                s_time_text(l->handoff_at_ms, t1));
    fprintf(out, "first seen  %s", s_time_text(l->first_seen_ms, t1));
    const char *src = render_source_name(l->first_source);
    if (src)
        fprintf(out, " (%s)", src);
    fputc('\n', out);
    fprintf(out, "last event  %s\n", s_time_text(l->last_event_ms, t1));
    fprintf(out, "events      %" PRIu64 "\n", l->events);
    if (l->n_skipped) {
        fprintf(out, "skipped    ");
        for (size_t i = 0; i < l->n_skipped; i++)
            fprintf(out, " %s", l->skipped[i]);
        fputc('\n', out);
    }
    fprintf(out, "attrs      ");
    if (l->n_attrs == 0)
        fprintf(out, " -");
    for (size_t i = 0; i < l->n_attrs; i++)
        fprintf(out, " %s=%s", l->attrs[i]->key, l->attrs[i]->value);
    fputc('\n', out);
    if (l->n_counts) {
        fprintf(out, "counts     ");
        for (size_t i = 0; i < l->n_counts; i++)
            fprintf(out, " %s=%" PRIu64, l->counts[i]->type, l->counts[i]->count);
        fputc('\n', out);
    }
    render_ledger_text(out, l);
    if (l->n_handoffs) {
        fprintf(out, "handoffs (%u sent, %u accepted, %u rejected, %u recycled, %u requalified)\n",
                l->handoffs_sent, l->handoffs_accepted, l->handoffs_rejected,
                l->handoffs_recycled, l->handoffs_requalified);
        for (size_t i = 0; i < l->n_handoffs; i++) {
            const Funnel__V1__HandoffRecord *h = l->handoffs[i];
            char t2[TIMETEXT_RFC3339_LEN];
            fprintf(out, "  %s  %-11s fit %.1f engagement %.1f (%s)", s_time_text(h->at_ms, t1),
                    render_handoff_name(h->status), h->fit, h->engagement, h->rule);
            if (h->answered_at_ms)
                fprintf(out, ", answered %s", s_time_text(h->answered_at_ms, t2));
            if (h->reason && *h->reason)
                fprintf(out, ", reason: %s", h->reason);
            fputc('\n', out);
        }
    }
    if (l->n_friction || l->stalled || l->sla_breached) {
        fprintf(out, "friction (%u flagged%s%s)\n", l->frictions,
                l->stalled ? ", stalled now" : "",
                l->sla_breached ? ", handoff past SLA now" : "");
        for (size_t i = 0; i < l->n_friction; i++) {
            const Funnel__V1__FrictionRecord *f = l->friction[i];
            fprintf(out, "  %s  %-16s %-10s %s\n", s_time_text(f->at_ms, t1), f->kind,
                    f->stage && *f->stage ? f->stage : "-", f->detail ? f->detail : "");
        }
    }
    if (l->n_persona_history) {
        fprintf(out, "persona history\n");
        for (size_t i = 0; i < l->n_persona_history; i++) {
            const Funnel__V1__PersonaChange *c = l->persona_history[i];
            fprintf(out, "  %s  #%-6" PRIu64 " %s -> %s\n", s_time_text(c->at_ms, t1), c->seq,
                    c->from && *c->from ? c->from : "-", c->to && *c->to ? c->to : "-");
        }
    }

    if (reply->n_timeline == 0)
        return;
    fprintf(out, "timeline (%zu of %" PRIu64 " events)\n", reply->n_timeline, l->events);
    for (size_t i = 0; i < reply->n_timeline; i++) {
        const Funnel__V1__TimelineEntry *t = reply->timeline[i];
        const Funnel__V1__Event *ev = t->event;
        if (!ev)
            continue;
        const char *s = render_source_name(ev->source);
        fprintf(out, "  %s  #%-6" PRIu64 " %-9s %-20s %s", s_time_text(ev->occurred_at_ms, t1),
                t->seq, s ? s : "-", ev->type, ev->id);
        if (ev->value != 0)
            fprintf(out, "  value=%.10g", ev->value);
        for (size_t k = 0; k < ev->n_attrs; k++)
            fprintf(out, "  %s=%s", ev->attrs[k]->key, ev->attrs[k]->value);
        fputc('\n', out);
    }
}

void render_ledger_text(FILE *out, const Funnel__V1__Lead *l)
{
    char t1[TIMETEXT_RFC3339_LEN];
    double sum[2] = { 0, 0 };
    if (l->n_ledger == 0 && !(l->older_fit && l->older_fit->entries) &&
        !(l->older_engagement && l->older_engagement->entries))
        return;
    fprintf(out, "score ledger (points as added -> as of %s%s)\n",
            s_time_text(l->scores_as_of_ms, t1),
            l->ledger_complete ? ", every change since the first event" : "");
    const Funnel__V1__LedgerCarry *carry[2] = { l->older_fit, l->older_engagement };
    for (int k = 0; k < 2; k++)
        if (carry[k] && carry[k]->entries) {
            fprintf(out, "  %-24s %-10s %-28s %+9.2f -> %+9.2f  (%u older entr%s)\n", "-",
                    k == 0 ? "fit" : "engagement", "older entries", carry[k]->points,
                    carry[k]->current, carry[k]->entries,
                    carry[k]->entries == 1 ? "y" : "ies");
            sum[k] += carry[k]->current;
        }
    for (size_t i = 0; i < l->n_ledger; i++) {
        const Funnel__V1__LedgerEntry *e = l->ledger[i];
        bool fit = e->kind && strcmp(e->kind, "fit") == 0;
        /* The rule's text repeats its kind ("engagement: page_view"). */
        const char *rule = e->rule ? e->rule : "";
        size_t kl = e->kind ? strlen(e->kind) : 0;
        if (kl && strncmp(rule, e->kind, kl) == 0 && rule[kl] == ':')
            rule += kl + 1 + (rule[kl + 1] == ' ');
        fprintf(out, "  %-24s %-10s %-28s %+9.2f -> %+9.2f  %s #%" PRIu64 "\n",
                s_time_text(e->at_ms, t1), e->kind, rule, e->points, e->current + 0.0,
                e->event_id, e->seq);
        sum[fit ? 0 : 1] += e->current;
    }
    /* + 0.0 turns a sum of -0.0 into 0.0 */
    fprintf(out, "  sums: fit %.2f, engagement %.2f, total %.2f\n", sum[0] + 0.0,
            sum[1] + 0.0, sum[0] + sum[1] + 0.0);
}

/* ------------------------------------------------------------------ */
/* funnel                                                             */

/* Returns true and sets *ratio when the conversion of a stage is defined. */
static bool s_conversion(const Funnel__V1__StageCount *s, double *ratio)
{
    if (s->terminal || s->entered == 0)
        return false;
    *ratio = (double)s->advanced / (double)s->entered;
    return true;
}

static json_t *s_handoffs_json(const Funnel__V1__HandoffCounts *h)
{
    json_t *o = json_object();
    uint64_t sent = h ? h->sent : 0, acc = h ? h->accepted : 0, rej = h ? h->rejected : 0;
    s_set(o, "sent", s_u64(sent));
    s_set(o, "accepted", s_u64(acc));
    s_set(o, "rejected", s_u64(rej));
    s_set(o, "acceptance_rate",
          acc + rej ? json_real((double)acc / (double)(acc + rej)) : json_null());
    return o;
}

static json_t *s_stages_json(Funnel__V1__StageCount *const *st, size_t n);

json_t *render_funnel_json(const Funnel__V1__FunnelReply *reply)
{
    json_t *o = json_object();
    s_set(o, "leads", s_u64(reply->leads));
    s_set(o, "stages", s_stages_json(reply->stages, reply->n_stages));
    s_set(o, "handoffs", s_handoffs_json(reply->handoffs));
    if (reply->persona && *reply->persona)
        s_set(o, "persona", s_str(reply->persona));
    if (reply->by && *reply->by) {
        s_set(o, "by", s_str(reply->by));
        json_t *groups = json_array();
        for (size_t i = 0; i < reply->n_groups; i++) {
            const Funnel__V1__FunnelGroup *g = reply->groups[i];
            json_t *e = json_object();
            s_set(e, "group", s_str(g->name));
            s_set(e, "leads", s_u64(g->leads));
            s_set(e, "stages", s_stages_json(g->stages, g->n_stages));
            s_set(e, "handoffs", s_handoffs_json(g->handoffs));
            json_array_append_new(groups, e);
        }
        s_set(o, "groups", groups);
    }
    return o;
}

static json_t *s_stages_json(Funnel__V1__StageCount *const *st, size_t n)
{
    json_t *stages = json_array();
    for (size_t i = 0; i < n; i++) {
        const Funnel__V1__StageCount *s = st[i];
        json_t *e = json_object();
        double ratio;
        s_set(e, "stage", s_str(s->stage));
        s_set(e, "now", s_u64(s->now));
        s_set(e, "entered", s_u64(s->entered));
        s_set(e, "advanced", s_u64(s->advanced));
        s_set(e, "conversion", s_conversion(s, &ratio) ? json_real(ratio) : json_null());
        s_set(e, "terminal", json_boolean(s->terminal));
        json_array_append_new(stages, e);
    }
    return stages;
}

static void s_stages_text(FILE *out, Funnel__V1__StageCount *const *st, size_t n,
                          const char *indent)
{
    int w = 5;
    for (size_t i = 0; i < n; i++) {
        int len = (int)strlen(st[i]->stage);
        if (len > w)
            w = len;
    }
    fprintf(out, "%s%-*s  %10s  %10s  %10s  %10s\n", indent, w, "stage", "now", "entered",
            "advanced", "conversion");
    for (size_t i = 0; i < n; i++) {
        const Funnel__V1__StageCount *s = st[i];
        char conv[32];
        double ratio;
        if (s->terminal)
            snprintf(conv, sizeof conv, "(terminal)");
        else if (s_conversion(s, &ratio))
            snprintf(conv, sizeof conv, "%.1f%%", ratio * 100.0);
        else
            snprintf(conv, sizeof conv, "-");
        fprintf(out, "%s%-*s  %10" PRIu64 "  %10" PRIu64 "  %10" PRIu64 "  %10s\n", indent, w,
                s->stage, s->now, s->entered, s->advanced, conv);
    }
}

static void s_handoffs_text(FILE *out, const Funnel__V1__HandoffCounts *h, const char *indent)
{
    uint64_t sent = h ? h->sent : 0, acc = h ? h->accepted : 0, rej = h ? h->rejected : 0;
    char rate[32] = "-";
    if (acc + rej)
        snprintf(rate, sizeof rate, "%.1f%%", 100.0 * (double)acc / (double)(acc + rej));
    fprintf(out, "%shandoffs: %" PRIu64 " sent, %" PRIu64 " accepted, %" PRIu64
            " rejected, acceptance rate %s\n", indent, sent, acc, rej, rate);
}

void render_funnel_text(FILE *out, const Funnel__V1__FunnelReply *reply)
{
    if (reply->persona && *reply->persona)
        fprintf(out, "persona %s\n", reply->persona);
    s_stages_text(out, reply->stages, reply->n_stages, "");
    fprintf(out, "%" PRIu64 " lead%s\n", reply->leads, reply->leads == 1 ? "" : "s");
    s_handoffs_text(out, reply->handoffs, "");
    if (!reply->by || !*reply->by)
        return;
    for (size_t i = 0; i < reply->n_groups; i++) {
        const Funnel__V1__FunnelGroup *g = reply->groups[i];
        fprintf(out, "\n%s %s: %" PRIu64 " lead%s\n", reply->by, g->name, g->leads,
                g->leads == 1 ? "" : "s");
        s_stages_text(out, g->stages, g->n_stages, "  ");
        s_handoffs_text(out, g->handoffs, "  ");
    }
}

/* ------------------------------------------------------------------ */
/* stats                                                              */

json_t *render_stats_json(const Funnel__V1__Stats *st)
{
    char up[64];
    json_t *o = json_object();
    s_set(o, "received", s_u64(st->received));
    s_set(o, "applied", s_u64(st->applied));
    s_set(o, "duplicates", s_u64(st->duplicates));
    s_set(o, "rejected", s_u64(st->rejected));
    s_set(o, "commits", s_u64(st->commits));
    s_set(o, "uptime_ms", s_u64(st->uptime_ms));
    s_set(o, "uptime", json_string(timetext_duration((int64_t)st->uptime_ms,
                                                     TIMETEXT_DUR_CLOCK, up, sizeof up)));
    s_set(o, "last_seq", s_u64(st->last_seq));
    s_set(o, "leads", s_u64(st->leads));
    s_set(o, "alerts", s_u64(st->alerts));
    s_set(o, "gaps", s_u64(st->gaps));
    s_set(o, "stream_messages", s_u64(st->stream_messages));
    s_set(o, "deadlines", s_u64(st->deadlines));
    s_set(o, "auth_refused", s_u64(st->auth_refused));
    s_set(o, "handoffs_recycled", s_u64(st->handoffs_recycled));
    s_set(o, "handoffs_requalified", s_u64(st->handoffs_requalified));
    s_set(o, "alert_seq", s_u64(st->alert_seq));
    s_set(o, "alerts_first_seq", s_u64(st->alerts_first_seq));
    s_set(o, "alert_queries", s_u64(st->alert_queries));
    s_set(o, "definition", s_str(st->definition));
    s_set(o, "log_first_seq", s_u64(st->log_first_seq));
    s_set(o, "log_bytes", s_u64(st->log_bytes));
    s_set(o, "log_dropped", s_u64(st->log_dropped));
    json_t *cks = json_array();
    for (size_t i = 0; i < st->n_checkpoints; i++)
        json_array_append_new(cks, render_checkpoint_json(st->checkpoints[i]));
    s_set(o, "checkpoints", cks);
    s_set(o, "checkpoints_taken", s_u64(st->checkpoints_taken));
    s_set(o, "checkpoints_failed", s_u64(st->checkpoints_failed));
    s_set(o, "checkpoints_yielded", s_u64(st->checkpoints_yielded));
    s_set(o, "backtests_done", s_u64(st->backtests_done));
    s_set(o, "backtests_cancelled", s_u64(st->backtests_cancelled));
    s_set(o, "backtests_failed", s_u64(st->backtests_failed));
    s_set(o, "backtests_running", s_u64(st->backtests_running));
    s_set(o, "checkpoint_error", s_str(st->checkpoint_error));
    s_set(o, "checkpoint_running", json_boolean(st->checkpoint_running));
    s_set(o, "recovery", s_str(st->recovery));
    s_set(o, "replayed_at_start", s_u64(st->replayed_at_start));
    s_set(o, "partitions", s_u64(st->partitions));
    json_t *pa = json_array();
    for (size_t i = 0; i < st->n_partition_applied_seq; i++)
        json_array_append_new(pa, s_u64(st->partition_applied_seq[i]));
    s_set(o, "partition_applied_seq", pa);
    if (st->nats && *st->nats) {
        json_t *owned = json_array();
        for (size_t i = 0; i < st->n_owned_partitions; i++)
            json_array_append_new(owned, json_integer(st->owned_partitions[i]));
        s_set(o, "nats", s_str(st->nats));
        s_set(o, "stream", s_str(st->stream));
        s_set(o, "cluster_partitions", json_integer(st->cluster_partitions));
        s_set(o, "owned_partitions", owned);
        s_set(o, "nats_messages", s_u64(st->nats_messages));
        s_set(o, "nats_acked", s_u64(st->nats_acked));
        s_set(o, "nats_alerts", s_u64(st->nats_alerts));
        s_set(o, "nats_alerts_failed", s_u64(st->nats_alerts_failed));
        s_set(o, "cluster_checks", s_u64(st->cluster_checks));
    }
    return o;
}

json_t *render_checkpoint_json(const Funnel__V1__CheckpointInfo *c)
{
    json_t *o = json_object();
    s_set(o, "name", s_str(c->name));
    s_set(o, "seq", s_u64(c->seq));
    s_set(o, "bytes", s_u64(c->bytes));
    s_set(o, "created_at", render_time_json(c->created_ms));
    return o;
}

void render_checkpoint_text(FILE *out, const Funnel__V1__CheckpointInfo *c)
{
    char at[64];
    fprintf(out, "%s  seq %" PRIu64 ", %.1f MiB, %s\n", c->name, c->seq,
            (double)c->bytes / (1 << 20),
            timetext_rfc3339(c->created_ms, false, at, sizeof at));
}

void render_stats_text(FILE *out, const Funnel__V1__Stats *st)
{
    char up[64];
    fprintf(out, "uptime           %s (%" PRIu64 " ms)\n",
            timetext_duration((int64_t)st->uptime_ms, TIMETEXT_DUR_CLOCK, up, sizeof up),
            st->uptime_ms);
    fprintf(out, "definition       %s\n", st->definition && *st->definition ? st->definition : "-");
    fprintf(out, "received         %" PRIu64 "\n", st->received);
    fprintf(out, "applied          %" PRIu64 "\n", st->applied);
    fprintf(out, "duplicates       %" PRIu64 "\n", st->duplicates);
    fprintf(out, "rejected         %" PRIu64 "\n", st->rejected);
    fprintf(out, "commits          %" PRIu64 "\n", st->commits);
    fprintf(out, "last seq         %" PRIu64 "\n", st->last_seq);
    fprintf(out, "leads            %" PRIu64 "\n", st->leads);
    fprintf(out, "alerts           %" PRIu64 "\n", st->alerts);
    fprintf(out, "gaps             %" PRIu64 "\n", st->gaps);
    fprintf(out, "stream messages  %" PRIu64 "\n", st->stream_messages);
    fprintf(out, "deadlines fired  %" PRIu64 "\n", st->deadlines);
    fprintf(out, "auth refused     %" PRIu64 "\n", st->auth_refused);
    fprintf(out, "recycled         %" PRIu64 "\n", st->handoffs_recycled);
    fprintf(out, "requalified      %" PRIu64 "\n", st->handoffs_requalified);
    fprintf(out, "alert seq        %" PRIu64 " (stored from %" PRIu64 ")\n", st->alert_seq,
            st->alerts_first_seq);
    fprintf(out, "alert queries    %" PRIu64 " (AlertsSince answered since start)\n",
            st->alert_queries);
    fprintf(out, "log              seq %" PRIu64 "..%" PRIu64 ", %.1f MiB%s\n",
            st->log_first_seq, st->last_seq, (double)st->log_bytes / (1 << 20),
            st->log_dropped ? " (older entries dropped by log_retention)" : "");
    fprintf(out, "recovery         %s (%" PRIu64 " events replayed at start)\n",
            st->recovery && *st->recovery ? st->recovery : "-", st->replayed_at_start);
    fprintf(out, "partitions       %u%s", st->partitions,
            st->partitions ? ", applied up to seq" : " (the loop applies the state), applied up to seq");
    for (size_t i = 0; i < st->n_partition_applied_seq; i++)
        fprintf(out, "%s%" PRIu64, i ? ", " : " ", st->partition_applied_seq[i]);
    fprintf(out, "\n");
    fprintf(out, "checkpoints      %" PRIu64 " taken, %" PRIu64 " failed since start%s\n",
            st->checkpoints_taken, st->checkpoints_failed,
            st->checkpoint_running ? ", one being written now" : "");
    if (st->checkpoints_yielded)
        fprintf(out, "  gave way       %" PRIu64 " times to the state's map growing\n",
                st->checkpoints_yielded);
    if (st->checkpoint_error && *st->checkpoint_error)
        fprintf(out, "  last failure   %s\n", st->checkpoint_error);
    if (st->backtests_done || st->backtests_cancelled || st->backtests_failed ||
        st->backtests_running)
        fprintf(out, "backtests        %" PRIu64 " done, %" PRIu64 " cancelled, %" PRIu64
                " failed since start, %u waiting or running\n", st->backtests_done,
                st->backtests_cancelled, st->backtests_failed, st->backtests_running);
    for (size_t i = 0; i < st->n_checkpoints; i++) {
        fprintf(out, "  ");
        render_checkpoint_text(out, st->checkpoints[i]);
    }
    if (st->nats && *st->nats) {
        fprintf(out, "nats             %s\n", st->nats);
        fprintf(out, "stream           %s, %" PRIu64 " messages received, %" PRIu64
                     " acknowledged\n", st->stream ? st->stream : "-", st->nats_messages,
                st->nats_acked);
        fprintf(out, "nats alerts      %" PRIu64 " published on funnel.alerts.*%s\n",
                st->nats_alerts, st->nats_alerts_failed ? " (some not: NATS lost)" : "");
        if (st->cluster_checks)
            fprintf(out, "cluster checks   %" PRIu64 " rounds of the conversion check judged "
                         "here for the cluster\n", st->cluster_checks);
        fprintf(out, "partitions       %zu of %u:", st->n_owned_partitions,
                st->cluster_partitions);
        /* As ranges: 0-5,9. */
        for (size_t i = 0; i < st->n_owned_partitions;) {
            size_t j = i;
            while (j + 1 < st->n_owned_partitions &&
                   st->owned_partitions[j + 1] == st->owned_partitions[j] + 1)
                j++;
            fprintf(out, "%s%u", i ? "," : " ", st->owned_partitions[i]);
            if (j > i)
                fprintf(out, "-%u", st->owned_partitions[j]);
            i = j + 1;
        }
        fputc('\n', out);
    }
}

/* ------------------------------------------------------------------ */
/* alerts                                                             */

json_t *render_alert_json(const Funnel__V1__Alert *a, const char *topic)
{
    json_t *o = json_object();
    s_set(o, "kind", s_str(a->kind));
    s_set(o, "topic", s_str(topic ? topic : a->topic));
    s_set(o, "lead", s_str_or_null(a->lead_id));
    s_set(o, "at", render_time_json(a->at_ms));
    s_set(o, "stage", s_str_or_null(a->stage));
    s_set(o, "from_stage", s_str_or_null(a->from_stage));
    json_t *reasons = json_array();
    for (size_t i = 0; i < a->n_reasons; i++)
        json_array_append_new(reasons, s_str(a->reasons[i]));
    s_set(o, "reasons", reasons);
    s_set(o, "event_id", s_str_or_null(a->event_id));
    s_set(o, "seq", s_u64(a->seq));
    s_set(o, "alert_seq", s_u64(a->alert_seq));
    s_set(o, "snapshot", a->lead ? render_lead_record_json(a->lead) : json_null());
    return o;
}

void render_alert_text(FILE *out, const Funnel__V1__Alert *a, const char *topic)
{
    char t[TIMETEXT_RFC3339_LEN];
    /* The stored alert's number first (none: "-"), to resume from. */
    if (a->alert_seq)
        fprintf(out, "#%-8" PRIu64 " ", a->alert_seq);
    else
        fprintf(out, "%-9s ", "-");
    fprintf(out, "%s  %-16s", s_time_text(a->at_ms, t), topic ? topic : a->topic);
    if (a->lead_id && *a->lead_id)
        fprintf(out, " lead %s", a->lead_id);
    if (a->from_stage && *a->from_stage)
        fprintf(out, " %s -> %s", a->from_stage, a->stage && *a->stage ? a->stage : "?");
    else if (a->stage && *a->stage)
        fprintf(out, " stage %s", a->stage);
    if (a->lead) {
        char tot[32];
        s_fmt_score(a->lead->total, tot, sizeof tot);
        fprintf(out, " score %s", tot);
        if (a->lead->persona && *a->lead->persona)
            fprintf(out, " persona %s", a->lead->persona);
    }
    /* The first reason on the alert's line, the others (score breakdown,
     * rules matched) indented below it, so the lines stay readable. */
    if (a->n_reasons > 0)
        fprintf(out, ": %s", a->reasons[0]);
    fputc('\n', out);
    for (size_t i = 1; i < a->n_reasons; i++)
        fprintf(out, "    %s\n", a->reasons[i]);
}

/* ------------------------------------------------------------------ */
/* friction                                                           */

static json_t *s_ms_json(int64_t ms)
{
    return ms >= 0 ? json_integer(ms) : json_null();
}

static json_t *s_fstages_json(Funnel__V1__StageFriction *const *st, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const Funnel__V1__StageFriction *s = st[i];
        json_t *e = json_object();
        s_set(e, "stage", s_str(s->stage));
        s_set(e, "entered", s_u64(s->entered));
        s_set(e, "advanced", s_u64(s->advanced));
        s_set(e, "in_progress", s_u64(s->in_progress));
        s_set(e, "dropped", s_u64(s->dropped));
        s_set(e, "conversion", s->has_conversion ? json_real(s->conversion) : json_null());
        s_set(e, "conversion_target",
              s->conversion_target > 0 ? json_real(s->conversion_target) : json_null());
        json_t *w = json_object();
        s_set(w, "entered", s_u64(s->window_entered));
        s_set(w, "advanced", s_u64(s->window_advanced));
        s_set(w, "conversion",
              s->has_window_conversion ? json_real(s->window_conversion) : json_null());
        s_set(w, "below_target", json_boolean(s->below_target));
        s_set(e, "window", w);
        json_t *d = json_object();
        s_set(d, "completed", s_u64(s->completed));
        s_set(d, "median_ms", s->completed ? s_ms_json(s->median_ms) : json_null());
        s_set(d, "p90_ms", s->completed ? s_ms_json(s->p90_ms) : json_null());
        s_set(d, "max_dwell_ms", s->max_dwell_ms ? json_integer(s->max_dwell_ms) : json_null());
        s_set(e, "dwell", d);
        s_set(e, "stalls", s_u64(s->stalls));
        s_set(e, "stalled_now", s_u64(s->stalled_now));
        s_set(e, "regressions", s_u64(s->regressions));
        s_set(e, "rejections", s_u64(s->rejections));
        json_array_append_new(a, e);
    }
    return a;
}

static json_t *s_points_json(Funnel__V1__FrictionPoint *const *pt, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object();
        s_set(e, "rank", s_u64(pt[i]->rank));
        s_set(e, "kind", s_str(pt[i]->kind));
        s_set(e, "stage", s_str_or_null(pt[i]->stage));
        s_set(e, "value", json_real(pt[i]->value));
        s_set(e, "summary", s_str(pt[i]->summary));
        json_array_append_new(a, e);
    }
    return a;
}

static json_t *s_reasons_json(Funnel__V1__ReasonCount *const *r, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object();
        s_set(e, "reason", s_str(r[i]->reason));
        s_set(e, "count", s_u64(r[i]->count));
        json_array_append_new(a, e);
    }
    return a;
}

json_t *render_friction_json(const Funnel__V1__FrictionReply *r)
{
    json_t *o = json_object();
    s_set(o, "points", s_points_json(r->points, r->n_points));
    s_set(o, "stages", s_fstages_json(r->stages, r->n_stages));
    s_set(o, "rejection_reasons", s_reasons_json(r->rejection_reasons, r->n_rejection_reasons));
    json_t *h = json_object();
    s_set(h, "past_sla_now", s_u64(r->handoffs_past_sla));
    s_set(h, "sla_breaches", s_u64(r->sla_breaches));
    s_set(o, "handoffs", h);
    json_t *w = json_object();
    s_set(w, "days", s_u64(r->window_days));
    s_set(w, "min_sample", s_u64(r->min_sample));
    s_set(w, "last_day", render_time_json(r->window_end_ms));
    s_set(o, "window", w);
    if (r->by && *r->by) {
        s_set(o, "by", s_str(r->by));
        json_t *groups = json_array();
        for (size_t i = 0; i < r->n_groups; i++) {
            const Funnel__V1__FrictionGroup *g = r->groups[i];
            json_t *e = json_object();
            s_set(e, "group", s_str(g->name));
            s_set(e, "points", s_points_json(g->points, g->n_points));
            s_set(e, "stages", s_fstages_json(g->stages, g->n_stages));
            s_set(e, "rejection_reasons",
                  s_reasons_json(g->rejection_reasons, g->n_rejection_reasons));
            json_t *gh = json_object();
            s_set(gh, "past_sla_now", s_u64(g->handoffs_past_sla));
            s_set(gh, "sla_breaches", s_u64(g->sla_breaches));
            s_set(e, "handoffs", gh);
            json_array_append_new(groups, e);
        }
        s_set(o, "groups", groups);
    }
    return o;
}

json_t *render_friction_leads_json(const Funnel__V1__FrictionReply *r)
{
    json_t *o = json_object();
    json_t *a = json_array();
    for (size_t i = 0; i < r->n_leads; i++) {
        const Funnel__V1__FrictionLead *l = r->leads[i];
        json_t *e = json_object();
        s_set(e, "lead", s_str(l->lead_id));
        s_set(e, "set", s_str(l->set));
        s_set(e, "stage", s_str_or_null(l->stage));
        s_set(e, "since", render_time_json(l->since_ms));
        json_array_append_new(a, e);
    }
    s_set(o, "leads", a);
    s_set(o, "total", s_u64(r->leads_total));
    return o;
}

static void s_friction_body(FILE *out, Funnel__V1__FrictionPoint *const *pt, size_t np,
                            Funnel__V1__StageFriction *const *st, size_t ns,
                            Funnel__V1__ReasonCount *const *rs, size_t nr,
                            const char *indent)
{
    if (np == 0)
        fprintf(out, "%sno friction points\n", indent);
    for (size_t i = 0; i < np; i++)
        fprintf(out, "%s%2u. %-16s %s\n", indent, pt[i]->rank, pt[i]->kind, pt[i]->summary);
    int w = 5;
    for (size_t i = 0; i < ns; i++)
        if ((int)strlen(st[i]->stage) > w)
            w = (int)strlen(st[i]->stage);
    fprintf(out, "\n%s%-*s %8s %8s %8s %8s %7s %7s %9s %9s %7s %7s %6s %6s\n", indent, w,
            "stage", "entered", "advanced", "in_prog", "dropped", "conv", "target", "median",
            "p90", "stays", "stalls", "regr", "rej");
    for (size_t i = 0; i < ns; i++) {
        const Funnel__V1__StageFriction *s = st[i];
        char conv[16] = "-", target[16] = "-", med[16], p90[16];
        if (s->has_window_conversion)
            snprintf(conv, sizeof conv, "%.1f%%w", 100 * s->window_conversion);
        else if (s->has_conversion)
            snprintf(conv, sizeof conv, "%.1f%%", 100 * s->conversion);
        if (s->conversion_target > 0)
            snprintf(target, sizeof target, "%.1f%%", 100 * s->conversion_target);
        timetext_duration(s->completed ? s->median_ms : -1, TIMETEXT_DUR_DECIMAL, med,
                          sizeof med);
        timetext_duration(s->completed ? s->p90_ms : -1, TIMETEXT_DUR_DECIMAL, p90,
                          sizeof p90);
        fprintf(out, "%s%-*s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
                " %7s %7s %9s %9s %7" PRIu64 " %7" PRIu64 " %6" PRIu64 " %6" PRIu64 "\n",
                indent, w, s->stage, s->entered, s->advanced, s->in_progress, s->dropped,
                conv, target, med, p90, s->completed, s->stalls, s->regressions,
                s->rejections);
    }
    if (nr) {
        fprintf(out, "%srejection reasons:", indent);
        for (size_t i = 0; i < nr; i++)
            fprintf(out, "%s %s (%" PRIu64 ")", i ? "," : "", rs[i]->reason, rs[i]->count);
        fputc('\n', out);
    }
}

void render_friction_text(FILE *out, const Funnel__V1__FrictionReply *r)
{
    s_friction_body(out, r->points, r->n_points, r->stages, r->n_stages,
                    r->rejection_reasons, r->n_rejection_reasons, "");
    fprintf(out, "handoffs past the SLA now: %" PRIu64 " (%" PRIu64 " breaches ever)\n",
            r->handoffs_past_sla, r->sla_breaches);
    if (!r->by || !*r->by)
        return;
    for (size_t i = 0; i < r->n_groups; i++) {
        const Funnel__V1__FrictionGroup *g = r->groups[i];
        fprintf(out, "\n%s %s:\n", r->by, g->name);
        s_friction_body(out, g->points, g->n_points, g->stages, g->n_stages,
                        g->rejection_reasons, g->n_rejection_reasons, "  ");
        fprintf(out, "  handoffs past the SLA now: %" PRIu64 " (%" PRIu64 " breaches ever)\n",
                g->handoffs_past_sla, g->sla_breaches);
    }
}

void render_friction_leads_text(FILE *out, const Funnel__V1__FrictionReply *r)
{
    char t1[TIMETEXT_RFC3339_LEN];
    for (size_t i = 0; i < r->n_leads; i++) {
        const Funnel__V1__FrictionLead *l = r->leads[i];
        fprintf(out, "%-40s %-24s since %s\n", l->lead_id, l->set, s_time_text(l->since_ms, t1));
    }
    /* A lead stalled and past the SLA is in both sets: entries, not leads. */
    fprintf(out, "%zu of %" PRIu64 " entr%s (a lead in two sets is listed twice)\n",
            r->n_leads, r->leads_total, r->leads_total == 1 ? "y" : "ies");
}
