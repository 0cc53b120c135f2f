/* h_stage.c: move a lead through the funnel stages.
 *
 * Rules (SPEC section 4):
 * - a lead is created in the stage its first event maps to, or in the first
 *   stage when the event's type maps to none;
 * - movement is forward-only: an event mapping to the current or an earlier
 *   stage is recorded (by the daemon, in the lead's timeline) but does not
 *   move the lead;
 * - a transition may carry an attribute condition (`when`): for an event
 *   type, the transitions restricted to the event's source are tried before
 *   those for any source, each group in file order, and the first whose
 *   condition holds applies;
 * - skipping stages is allowed and recorded in the lead's skip mask (a
 *   lead created in a later stage has skipped nothing);
 * - a terminal stage (action, and exits such as lost) is never left by a
 *   transition; an exit can be entered from any non-terminal stage;
 * - explicit regressions (definition `regressions:`) move a lead back, or
 *   out of a terminal stage, when it is in one of their `from` stages; they
 *   win over transitions. A rejected handoff recycles the lead through
 *   h_stage_move (see h_handoff.c).
 *
 * Report counters (keys.h), each funnel-wide and per group (hnd_count_all):
 * KEYS_LEADS, KEYS_NOW, KEYS_ENTERED (leads that ever entered the stage,
 * counted once per lead) and KEYS_ADVANCED (leads that once left it for a
 * later stage of the funnel order, once per lead). Every stage change
 * raises a "stage" alert; a backward move also a "regression" alert on
 * "friction.regression". Every move also does the friction bookkeeping of
 * the stay that ends and the one that begins (h_friction.c).
 */
#include "pipeline.h"

#include <stdio.h>

#include "keys.h"

static bool s_is_backward(const defn_t *d, int from, int to)
{
    if (from < 0)
        return false;
    if (d->stages[from].terminal)
        return true;            /* out of action or an exit */
    return (size_t)to < d->n_order && to < from;
}

/* Contract in pipeline.h. Order: the friction of the stay that ends
 * (h_friction_leave), the stage counters (now, advanced and entered once
 * per lead), the stages skipped over, the new stay and its friction
 * (h_friction_enter), the "stage" alert, and for a move back its
 * regression friction and alert. */
void h_stage_move(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx, int to,
                  int64_t t, const char *why)
{
    char key[HND_COUNTER_KEY_MAX];
    int from = lead->stage;
    bool backward = s_is_backward(d, from, to);

    if (from >= 0) {
        h_friction_leave(d, lead, fx, to, t);
        hnd_count_all(fx, lead, -1, keys_counter(key, sizeof key, "", KEYS_NOW,
                                                 d->stages[from].name));
        if ((size_t)to < d->n_order && to > from &&
            !(lead->advanced & (1u << from))) {
            lead->advanced |= 1u << from;
            hnd_count_all(fx, lead, 1, keys_counter(key, sizeof key, "", KEYS_ADVANCED,
                                                    d->stages[from].name));
        }
    }
    hnd_count_all(fx, lead, 1, keys_counter(key, sizeof key, "", KEYS_NOW,
                                            d->stages[to].name));
    if (!(lead->entered & (1u << to))) {
        lead->entered |= 1u << to;
        hnd_count_all(fx, lead, 1, keys_counter(key, sizeof key, "", KEYS_ENTERED,
                                                d->stages[to].name));
    }

    /* Stages of the funnel order jumped over on the way to `to`. A new
     * lead skipped nothing: its history before its first event is unknown. */
    char skipped[HND_REASON_LEN] = "";
    size_t used = 0;
    if (from >= 0 && (size_t)to < d->n_order && !backward)
        for (int s = from + 1; s < to; s++) {
            lead->skipped |= 1u << s;
            int n = snprintf(skipped + used, sizeof skipped - used, "%s%s",
                             used ? ", " : "", d->stages[s].name);
            if (n > 0 && (size_t)n < sizeof skipped - used)
                used += (size_t)n;
        }

    lead->stage = to;
    lead->stage_entered_at_ms = t;
    h_friction_enter(d, lead, fx, t);

    hnd_alert_t *a = hnd_alert_add(fx, "stage", "stage", to, from);
    if (a)
        a->no_lead = true; /* one per new lead and move: stored light */
    if (from < 0)
        hnd_alert_reason_join(a, "new lead enters ", d->stages[to].name, NULL, NULL);
    else
        hnd_alert_reason_join(a, d->stages[from].name, " -> ", d->stages[to].name, NULL);
    if (used > 0)
        hnd_alert_reason(a, "skipped %s", skipped);
    if (why)
        hnd_alert_reason(a, "%s", why);
    if (backward) {
        h_friction_regression(d, lead, fx, from, to, t);
        hnd_alert_t *r = hnd_alert_add(fx, "regression", "friction.regression",
                                       to, from);
        hnd_alert_reason(r, "%s -> %s (back)", d->stages[from].name,
                         d->stages[to].name);
        if (why)
            hnd_alert_reason(r, "%s", why);
    }
}

/* The transition for ev, given the lead's attributes; NULL when none. */
static const defn_transition_t *s_transition(const defn_t *d,
                                             const defn_type_t *ty,
                                             const hnd_event_t *ev,
                                             const hnd_lead_t *lead)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < ty->tr_count; i++) {
            const defn_transition_t *t = &d->transitions[d->tr_index[ty->tr_first + i]];
            bool want = pass == 0 ? t->source != 0 && t->source == (int)ev->source
                                  : t->source == 0;
            if (want && (t->when == NULL || hnd_cond_match(t->when, lead)))
                return t;
        }
    return NULL;
}

static int h_stage_apply(const hnd_event_t *ev, const defn_t *d,
                         hnd_lead_t *lead, hnd_effects_t *fx)
{
    const defn_type_t *ty = hnd_event_type(ev, d);
    const defn_transition_t *tr = ty ? s_transition(d, ty, ev, lead) : NULL;
    int64_t t = ev->at_ms > lead->last_event_ms ? ev->at_ms
                                                : lead->last_event_ms;

    if (fx->is_new) {
        hnd_count_all(fx, lead, 1, keys_name(KEYS_LEADS));
        h_stage_move(d, lead, fx, tr ? tr->stage : 0, ev->at_ms, NULL);
        return 0;
    }
    if (lead->stage < 0)
        return 0;
    int cur = lead->stage;

    if (ty && ty->regression >= 0) {
        const defn_regression_t *rg = &d->regressions[ty->regression];
        if ((rg->from_mask & (1u << cur)) && rg->stage != cur) {
            char why[HND_REASON_LEN];
            snprintf(why, sizeof why, "regression on %s", ev->type);
            h_stage_move(d, lead, fx, rg->stage, t, why);
            return 0;
        }
    }
    if (tr == NULL)
        return 0;
    int to = tr->stage;
    if (d->stages[cur].terminal || to == cur)
        return 0;
    /* Into an exit (lost) from anywhere not terminal; otherwise forward. */
    if ((size_t)to >= d->n_order || to > cur)
        h_stage_move(d, lead, fx, to, t, NULL);
    return 0;
}

const hnd_t hnd_stage = {
    .name = "stage",
    .apply = h_stage_apply,
};
