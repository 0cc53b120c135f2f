/* query_encode.c: see query_encode.h. */
#include "query_encode.h"


static void *s_alloc(arena_t *a, size_t n, size_t size)
{
    return arena_calloc(a, n ? n : 1, size);
}

/* -- the funnel ---------------------------------------------------------- */

static Funnel__V1__StageCount **s_stage_counts(const report_counts_t *c,
                                               arena_t *a)
{
    Funnel__V1__StageCount *sc = s_alloc(a, c->n_stages, sizeof *sc);
    Funnel__V1__StageCount **scp = s_alloc(a, c->n_stages, sizeof *scp);
    for (size_t i = 0; i < c->n_stages; i++) {
        funnel__v1__stage_count__init(&sc[i]);
        sc[i].stage = c->stages[i].stage;
        sc[i].now = c->stages[i].now;
        sc[i].entered = c->stages[i].entered;
        sc[i].advanced = c->stages[i].advanced;
        sc[i].terminal = c->stages[i].terminal;
        scp[i] = &sc[i];
    }
    return scp;
}

static Funnel__V1__HandoffCounts *s_handoffs(const report_handoffs_t *h,
                                             arena_t *a)
{
    Funnel__V1__HandoffCounts *hc = s_alloc(a, 1, sizeof *hc);
    funnel__v1__handoff_counts__init(hc);
    hc->sent = h->sent;
    hc->accepted = h->accepted;
    hc->rejected = h->rejected;
    return hc;
}

Funnel__V1__FunnelReply *query_encode_funnel(const report_funnel_t *r,
                                             arena_t *a)
{
    Funnel__V1__FunnelReply *fr = s_alloc(a, 1, sizeof *fr);
    funnel__v1__funnel_reply__init(fr);
    fr->leads = r->all.leads;
    fr->n_stages = r->all.n_stages;
    fr->stages = s_stage_counts(&r->all, a);
    fr->handoffs = s_handoffs(&r->all.handoffs, a);
    fr->by = r->by;
    fr->persona = r->persona;
    fr->n_groups = r->n_groups;
    fr->groups = s_alloc(a, r->n_groups, sizeof *fr->groups);
    for (size_t i = 0; i < r->n_groups; i++) {
        const report_counts_t *c = &r->groups[i];
        Funnel__V1__FunnelGroup *g = s_alloc(a, 1, sizeof *g);
        funnel__v1__funnel_group__init(g);
        g->name = c->name;
        g->leads = c->leads;
        g->n_stages = c->n_stages;
        g->stages = s_stage_counts(c, a);
        g->handoffs = s_handoffs(&c->handoffs, a);
        fr->groups[i] = g;
    }
    return fr;
}

/* -- friction ------------------------------------------------------------ */

static Funnel__V1__StageFriction *s_stage(const report_stage_friction_t *s,
                                          arena_t *a)
{
    Funnel__V1__StageFriction *sf = s_alloc(a, 1, sizeof *sf);
    funnel__v1__stage_friction__init(sf);
    sf->stage = s->stage;
    sf->entered = s->entered;
    sf->advanced = s->advanced;
    sf->in_progress = s->in_progress;
    sf->dropped = s->dropped;
    sf->has_conversion = s->has_conversion;
    sf->conversion = s->conversion;
    sf->conversion_target = s->conversion_target;
    sf->window_entered = s->window_entered;
    sf->window_advanced = s->window_advanced;
    sf->has_window_conversion = s->has_window_conversion;
    sf->window_conversion = s->window_conversion;
    sf->below_target = s->below_target;
    sf->completed = s->completed;
    sf->median_ms = s->median_ms;
    sf->p90_ms = s->p90_ms;
    sf->max_dwell_ms = s->max_dwell_ms;
    sf->stalls = s->stalls;
    sf->stalled_now = s->stalled_now;
    sf->regressions = s->regressions;
    sf->rejections = s->rejections;
    return sf;
}

/* The repeated fields of one group's friction (the whole funnel's or a
 * FrictionGroup's). */
typedef struct {
    Funnel__V1__StageFriction **stages;
    Funnel__V1__FrictionPoint **points;
    Funnel__V1__ReasonCount **reasons;
} s_group_t;

static void s_group(const report_friction_group_t *f, arena_t *a,
                    s_group_t *out)
{
    out->stages = s_alloc(a, f->n_stages, sizeof *out->stages);
    for (size_t i = 0; i < f->n_stages; i++)
        out->stages[i] = s_stage(&f->stages[i], a);
    out->points = s_alloc(a, f->n_points, sizeof *out->points);
    for (size_t i = 0; i < f->n_points; i++) {
        const report_point_t *p = &f->points[i];
        Funnel__V1__FrictionPoint *fp = s_alloc(a, 1, sizeof *fp);
        funnel__v1__friction_point__init(fp);
        fp->rank = p->rank;
        fp->kind = (char *)report_point_kind_name(p->kind);
        fp->stage = p->stage;
        fp->value = p->value;
        fp->summary = p->summary;
        out->points[i] = fp;
    }
    out->reasons = s_alloc(a, f->n_reasons, sizeof *out->reasons);
    for (size_t i = 0; i < f->n_reasons; i++) {
        Funnel__V1__ReasonCount *rc = s_alloc(a, 1, sizeof *rc);
        funnel__v1__reason_count__init(rc);
        rc->reason = f->reasons[i].reason;
        rc->count = f->reasons[i].count;
        out->reasons[i] = rc;
    }
}

Funnel__V1__FrictionReply *query_encode_friction(const report_friction_t *r,
                                                 arena_t *a)
{
    Funnel__V1__FrictionReply *fr = s_alloc(a, 1, sizeof *fr);
    s_group_t g;
    funnel__v1__friction_reply__init(fr);
    s_group(&r->all, a, &g);
    fr->n_stages = r->all.n_stages;
    fr->stages = g.stages;
    fr->n_points = r->all.n_points;
    fr->points = g.points;
    fr->n_rejection_reasons = r->all.n_reasons;
    fr->rejection_reasons = g.reasons;
    fr->handoffs_past_sla = r->all.past_sla;
    fr->sla_breaches = r->all.breaches;
    fr->window_days = r->window_days;
    fr->min_sample = r->min_sample;
    fr->window_end_ms = r->window_end_ms;
    fr->by = r->by;

    fr->n_groups = r->n_groups;
    fr->groups = s_alloc(a, r->n_groups, sizeof *fr->groups);
    for (size_t i = 0; i < r->n_groups; i++) {
        const report_friction_group_t *f = &r->groups[i];
        Funnel__V1__FrictionGroup *grp = s_alloc(a, 1, sizeof *grp);
        funnel__v1__friction_group__init(grp);
        s_group(f, a, &g);
        grp->name = f->name;
        grp->n_stages = f->n_stages;
        grp->stages = g.stages;
        grp->n_points = f->n_points;
        grp->points = g.points;
        grp->n_rejection_reasons = f->n_reasons;
        grp->rejection_reasons = g.reasons;
        grp->handoffs_past_sla = f->past_sla;
        grp->sla_breaches = f->breaches;
        fr->groups[i] = grp;
    }

    fr->leads_total = r->leads_total;
    fr->n_leads = r->n_leads;
    fr->leads = s_alloc(a, r->n_leads, sizeof *fr->leads);
    for (size_t i = 0; i < r->n_leads; i++) {
        Funnel__V1__FrictionLead *l = s_alloc(a, 1, sizeof *l);
        funnel__v1__friction_lead__init(l);
        l->lead_id = r->leads[i].lead_id;
        l->set = r->leads[i].set;
        l->stage = r->leads[i].stage;
        l->since_ms = r->leads[i].since_ms;
        fr->leads[i] = l;
    }
    return fr;
}

/* -- quality ------------------------------------------------------------- */

static Funnel__V1__QualityGroup *s_quality_group(const report_quality_group_t *g,
                                         arena_t *a)
{
    Funnel__V1__QualityGroup *pb = arena_calloc(a, 1, sizeof *pb);
    funnel__v1__quality_group__init(pb);
    pb->group = g->name ? g->name : (char *)"";
    pb->handed_off = g->handed_off;
    pb->won = g->won;
    pb->lost = g->lost;
    pb->open = g->open;
    pb->before = g->before;
    pb->lost_timeout = g->lost_timeout;
    pb->all_won = g->all_won;
    pb->all_lost = g->all_lost;
    pb->all_open = g->all_open;
    pb->has_precision = g->has_precision;
    pb->precision = g->precision;
    pb->has_recall = g->has_recall;
    pb->recall = g->recall;
    pb->has_base_rate = g->has_base_rate;
    pb->base_rate = g->base_rate;
    pb->has_lift = g->has_lift;
    pb->lift = g->lift;
    pb->median_handoff_to_won_ms = g->median_handoff_to_won_ms;
    pb->handoffs = g->handoffs;
    pb->rejected = g->rejected;
    pb->has_rejection_rate = g->has_rejection_rate;
    pb->rejection_rate = g->rejection_rate;
    return pb;
}

Funnel__V1__QualityReply *query_quality_encode(const report_quality_t *rep, arena_t *a)
{
    Funnel__V1__QualityReply *qr = arena_calloc(a, 1, sizeof *qr);
    funnel__v1__quality_reply__init(qr);
    qr->all = s_quality_group(&rep->all, a);
    qr->by = rep->by;
    qr->lost_after_ms = rep->lost_after_ms;
    qr->as_of_ms = rep->as_of_ms;
    qr->n_groups = rep->n_groups;
    qr->groups = arena_calloc(a, rep->n_groups ? rep->n_groups : 1, sizeof *qr->groups);
    for (size_t i = 0; i < rep->n_groups; i++)
        qr->groups[i] = s_quality_group(&rep->groups[i], a);
    return qr;
}
