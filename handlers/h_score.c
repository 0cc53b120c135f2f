/* h_score.c: engagement scoring, with its ledger.
 *
 * Engagement is the sum of the points of a lead's events (per event type,
 * from the definition), each decaying with the definition's half-life in
 * event time. lead->engagement holds the value as of lead->last_event_ms;
 * an event at time t moves that reference forward (decaying what was there)
 * or, when it arrives out of order, adds its own points already decayed to
 * the lead's time, so the result does not depend on arrival order.
 *
 * Every scoring event writes a ledger entry (event id, seq, time, rule,
 * points). Its current value is points * 2^-((ref - at) / half_life), so
 * the current values of the entries plus the carry-over add up to
 * lead->engagement at any time.
 */
#include "pipeline.h"

#include <stdio.h>

static int h_score_apply(const hnd_event_t *ev, const defn_t *d,
                         hnd_lead_t *lead, hnd_effects_t *fx)
{
    const defn_type_t *ty = hnd_event_type(ev, d);
    int64_t ref = lead->last_event_ms;
    double points = ty ? ty->points : 0;

    /* The lead's time moves to the event's: decay what is there, whether
     * or not the event scores. */
    if (points == 0) {
        if (ev->at_ms > ref)
            lead->engagement *= hnd_decay(d, ev->at_ms - ref);
        return 0;
    }
    if (ev->at_ms >= ref)
        lead->engagement = lead->engagement * hnd_decay(d, ev->at_ms - ref) +
                           points;
    else
        lead->engagement += points * hnd_decay(d, ref - ev->at_ms);

    char rule[HND_RULE_MAX];
    hnd_join(rule, sizeof rule, "engagement: ", ev->type, NULL, NULL);
    hnd_ledger_add(d, lead, HND_LEDGER_ENGAGEMENT, rule, ev, ev->at_ms, points,
                   ev->at_ms > ref ? ev->at_ms : ref);
    return 0;
}

const hnd_t hnd_score = {
    .name = "score",
    .apply = h_score_apply,
};
