/* h_stage.c: advance a lead through the funnel stages.
 *
 * Rules (SPEC section 4):
 * - a lead is created in the stage its first event maps to, or in the first
 *   stage when the event's type maps to none;
 * - movement is forward-only: an event mapping to the current or an earlier
 *   stage is recorded (by the daemon, in the lead's timeline) but does not
 *   move the lead;
 * - skipping stages is allowed and recorded in the lead's skip mask (a
 *   lead created in a later stage has skipped nothing);
 * - a terminal stage (action, and exits such as lost) is never left;
 * - an exit such as lost can be entered from any non-terminal stage.
 *
 * Report counters: "leads", "now/<stage>", "entered/<stage>" and
 * "advanced/<stage>" (left the stage for a later one in the funnel order).
 * Every stage change raises a "stage" alert.
 */
#include "pipeline.h"

#include <stdio.h>

static void s_enter(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                    int to, int64_t t)
{
    int from = lead->stage;

    if (from >= 0) {
        hnd_count(fx, -1, "now/%s", d->stages[from].name);
        if ((size_t)to < d->n_order && to > from)
            hnd_count(fx, 1, "advanced/%s", d->stages[from].name);
    }
    hnd_count(fx, 1, "now/%s", d->stages[to].name);
    hnd_count(fx, 1, "entered/%s", d->stages[to].name);

    /* Stages of the funnel order jumped over on the way to `to`. A new
     * lead skipped nothing: its history before its first event is unknown. */
    char skipped[HND_REASON_LEN] = "";
    size_t used = 0;
    if (from >= 0 && (size_t)to < d->n_order)
        for (int s = from + 1; s < to; s++) {
            lead->skipped |= 1u << s;
            int n = snprintf(skipped + used, sizeof skipped - used, "%s%s",
                             used ? ", " : "", d->stages[s].name);
            if (n > 0 && (size_t)n < sizeof skipped - used)
                used += (size_t)n;
        }

    lead->stage = to;
    lead->stage_entered_at_ms = t;

    hnd_alert_t *a = hnd_alert_add(fx, "stage", "stage", to, from);
    if (from < 0)
        hnd_alert_reason(a, "new lead enters %s", d->stages[to].name);
    else
        hnd_alert_reason(a, "%s -> %s", d->stages[from].name,
                         d->stages[to].name);
    if (used > 0)
        hnd_alert_reason(a, "skipped %s", skipped);
}

static int h_stage_apply(const hnd_event_t *ev, const defn_t *d,
                         hnd_lead_t *lead, hnd_effects_t *fx)
{
    const defn_transition_t *tr = defn_transition(d, ev->type, (int)ev->source);

    if (fx->is_new) {
        hnd_count(fx, 1, "leads");
        s_enter(d, lead, fx, tr ? tr->stage : 0, ev->at_ms);
        return 0;
    }
    if (tr == NULL || lead->stage < 0)
        return 0;

    int cur = lead->stage;
    int to = tr->stage;
    if (d->stages[cur].terminal || to == cur)
        return 0;
    /* Into an exit (lost) from anywhere not terminal; otherwise forward. */
    if ((size_t)to >= d->n_order || to > cur) {
        int64_t t = ev->at_ms > lead->last_event_ms ? ev->at_ms
                                                    : lead->last_event_ms;
        s_enter(d, lead, fx, to, t);
    }
    return 0;
}

const hnd_t hnd_stage = {
    .name = "stage",
    .apply = h_stage_apply,
};
