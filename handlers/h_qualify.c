/* h_qualify.c: the ideal lead. The qualification rule and the handoff.
 *
 * The rule is a list of clauses (qualification.any_of, or one clause given
 * directly); a clause holds when every threshold it sets is met (fit,
 * engagement, total: >=), the rule when any clause does. A clause whose
 * thresholds are all 0 never holds (qualification: {engagement: 0} turns
 * handoffs off).
 *
 * A lead that is not qualified and meets the rule qualifies: its handoff
 * status becomes pending and one "handoff" alert is raised, with the score
 * breakdown and the clauses that matched. Decay never un-qualifies a lead;
 * only a rejected handoff does (h_handoff.c), after which the lead may
 * qualify again: a new handoff. The answer events themselves never
 * qualify a lead, except requalify ("look at it again now"), which is
 * evaluated as any other event right after h_handoff.c closed the pending
 * handoff. Counter: KEYS_HANDOFFS (handoffs sent), per group too.
 */
#include "pipeline.h"

#include <stdio.h>
#include <string.h>

#include "keys.h"

static bool s_clause_holds(const defn_clause_t *c, const hnd_lead_t *lead)
{
    if ((!c->has_fit || c->fit == 0) && (!c->has_engagement || c->engagement == 0) &&
        (!c->has_total || c->total == 0))
        return false;
    return (!c->has_fit || lead->fit >= c->fit) &&
           (!c->has_engagement || lead->engagement >= c->engagement) &&
           (!c->has_total || lead->fit + lead->engagement >= c->total);
}

/* The newest ledger entries as "rule +points, ..." into buf. */
static void s_breakdown(const defn_t *d, const hnd_lead_t *lead, char *buf,
                        size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = lead->n_ledger; i-- > 0 && used + 1 < size;) {
        const hnd_ledger_t *e = &lead->ledger[i];
        int n = snprintf(buf + used, size - used, "%s%s %+.1f",
                         used ? ", " : "", e->rule, hnd_ledger_value(d, lead, e));
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

/* hnd_apply_fn: a lead not qualified yet whose scores now meet a clause
 * of the qualification rule (answer events never qualify) is handed off:
 * pending handoff, its record (the oldest dropped when full), the
 * KEYS_HANDOFFS counters, the SLA deadline (h_friction_handoff_sent) and a
 * "handoff" alert naming the clauses and the score breakdown. Always 0. */
static int h_qualify_apply(const hnd_event_t *ev, const defn_t *d,
                           hnd_lead_t *lead, hnd_effects_t *fx)
{
    if (lead->qualified)
        return 0;
    const defn_type_t *ty = hnd_event_type(ev, d);
    if (ty && ty->answer && strcmp(ev->type, d->requalify_type) != 0)
        return 0;
    const defn_clause_t *first = NULL;
    size_t matched = 0;
    for (size_t i = 0; i < d->n_clauses; i++)
        if (s_clause_holds(&d->clauses[i], lead)) {
            if (!first)
                first = &d->clauses[i];
            matched++;
        }
    if (!first)
        return 0;

    int64_t t = ev->at_ms > lead->last_event_ms ? ev->at_ms : lead->last_event_ms;
    lead->qualified = true;
    lead->handoff = HND_HANDOFF_PENDING;
    lead->handoff_at_ms = t;
    lead->handoffs_sent++;
    if (lead->n_handoffs == HND_HANDOFFS_MAX) {
        memmove(&lead->handoffs[0], &lead->handoffs[1],
                (HND_HANDOFFS_MAX - 1) * sizeof lead->handoffs[0]);
        lead->n_handoffs--;
    }
    hnd_handoff_rec_t *h = &lead->handoffs[lead->n_handoffs++];
    memset(h, 0, sizeof *h);
    h->status = HND_HANDOFF_PENDING;
    h->at_ms = t;
    snprintf(h->rule, sizeof h->rule, "%s", first->label);
    h->fit = lead->fit;
    h->engagement = lead->engagement;
    hnd_count_all(fx, lead, 1, keys_name(KEYS_HANDOFFS));
    h_friction_handoff_sent(d, lead, fx, t);

    hnd_alert_t *a = hnd_alert_add(fx, "handoff", "handoff", lead->stage, -1);
    for (size_t i = 0; i < d->n_clauses; i++)
        if (s_clause_holds(&d->clauses[i], lead))
            hnd_alert_reason(a, "rule matched: %s", d->clauses[i].label);
    hnd_alert_reason(a, "score: fit %.1f, engagement %.1f, total %.1f",
                     lead->fit, lead->engagement, lead->fit + lead->engagement);
    hnd_alert_reason(a, "qualifying event: %s %s", ev->type, ev->id);
    char buf[HND_REASON_LEN - 16];
    s_breakdown(d, lead, buf, sizeof buf);
    if (buf[0])
        hnd_alert_reason(a, "breakdown: %s", buf);
    if (lead->handoffs_sent > 1)
        hnd_alert_reason(a, "handoff #%u of this lead", lead->handoffs_sent);
    (void)matched;
    return 0;
}

const hnd_t hnd_qualify = {
    .name = "qualify",
    .apply = h_qualify_apply,
};
