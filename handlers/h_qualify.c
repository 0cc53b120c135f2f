/* h_qualify.c: engagement scoring and the qualification rule.
 *
 * Engagement is the sum of the points of a lead's events (per event type,
 * from the definition), each decaying with the definition's half-life in
 * event time. lead->engagement holds the value as of lead->last_event_ms;
 * an event at time t moves that reference forward (decaying what was there)
 * or, when it arrives out of order, adds its own points already decayed to
 * the lead's time, so the result does not depend on arrival order.
 *
 * A lead qualifies once, when its engagement first reaches the threshold:
 * it becomes qualified, its handoff status pending, and one "handoff" alert
 * is raised with the score breakdown. Decay never un-qualifies a lead.
 * Counter: "handoffs".
 */
#include "pipeline.h"

#include <math.h>

static double s_decay(const defn_t *d, int64_t dt_ms)
{
    if (d->half_life_ms <= 0 || dt_ms <= 0)
        return 1.0;
    return exp2(-(double)dt_ms / (double)d->half_life_ms);
}

static int h_qualify_apply(const hnd_event_t *ev, const defn_t *d,
                           hnd_lead_t *lead, hnd_effects_t *fx)
{
    double points = defn_points(d, ev->type);
    int64_t ref = lead->last_event_ms;

    if (ev->at_ms >= ref) {
        lead->engagement = lead->engagement * s_decay(d, ev->at_ms - ref) + points;
    } else {
        lead->engagement += points * s_decay(d, ref - ev->at_ms);
    }

    if (lead->qualified || d->qualify_engagement <= 0 ||
        lead->engagement < d->qualify_engagement)
        return 0;

    int64_t t = ev->at_ms > ref ? ev->at_ms : ref;
    lead->qualified = true;
    lead->handoff = HND_HANDOFF_PENDING;
    lead->handoff_at_ms = t;
    hnd_count(fx, 1, "handoffs");

    hnd_alert_t *a = hnd_alert_add(fx, "handoff", "handoff", lead->stage, -1);
    hnd_alert_reason(a, "engagement %.1f >= %.1f (qualification threshold)",
                     lead->engagement, d->qualify_engagement);
    hnd_alert_reason(a, "score: fit %.1f, engagement %.1f, total %.1f",
                     lead->fit, lead->engagement, lead->fit + lead->engagement);
    hnd_alert_reason(a, "qualifying event: %s %s (%+.1f points)", ev->type,
                     ev->id, points);
    return 0;
}

const hnd_t hnd_qualify = {
    .name = "qualify",
    .apply = h_qualify_apply,
};
