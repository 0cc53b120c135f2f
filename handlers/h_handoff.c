/* h_handoff.c: sales' answer to a handoff.
 *
 * An event of the definition's accept type (handoff_accepted) marks a
 * pending handoff accepted; one of the reject type (handoff_rejected)
 * marks it rejected, with the reason taken from the event's attribute
 * handoff.reason_attr ("reason"). A rejection recycles the lead: it is no
 * longer qualified (so it may qualify again later, which is a new
 * handoff), its engagement restarts from 0 when handoff.reset_engagement
 * (a ledger entry books the reset), and it moves to handoff.recycle_to when
 * that is set and the lead is not in a terminal stage (a "stage" alert, and
 * a "regression" alert when that is a move back). Every rejection raises a
 * "handoff_rejected" alert on "friction.handoff_rejected".
 *
 * The answer clears the handoff's SLA deadline; an answer after the SLA
 * that was not flagged yet is a "handoff_sla" friction point
 * (h_friction.c). A rejection is a friction point too, counted per stage
 * and per reason.
 *
 * An answer with no pending handoff changes nothing. Counters, per group
 * too: KEYS_HANDOFFS_ACCEPTED, KEYS_HANDOFFS_REJECTED.
 */
#include "pipeline.h"

#include <stdio.h>
#include <string.h>

#include "keys.h"

static const char *s_reason(const hnd_event_t *ev, const defn_t *d)
{
    for (size_t i = 0; i < ev->n_attrs; i++)
        if (strcmp(ev->attrs[i].key, d->reason_attr) == 0)
            return ev->attrs[i].value;
    return "";
}

/* hnd_apply_fn: sales' answer (accept_type, reject_type) to the pending
 * handoff: the handoff's status and record, the KEYS_HANDOFFS_ACCEPTED or
 * _REJECTED counters, the SLA bookkeeping (h_friction_answered); a
 * rejection also books its friction (h_friction_rejected), raises
 * "handoff_rejected", resets engagement (recycle_reset) and recycles the
 * lead (h_stage_move). Any other event, or no pending handoff: nothing.
 * Always 0. */
static int h_handoff_apply(const hnd_event_t *ev, const defn_t *d,
                           hnd_lead_t *lead, hnd_effects_t *fx)
{
    bool accept = strcmp(ev->type, d->accept_type) == 0;
    bool reject = !accept && strcmp(ev->type, d->reject_type) == 0;
    if ((!accept && !reject) || lead->handoff != HND_HANDOFF_PENDING)
        return 0;

    int64_t t = ev->at_ms > lead->last_event_ms ? ev->at_ms : lead->last_event_ms;
    h_friction_answered(d, lead, fx, lead->handoff_at_ms, t);
    hnd_handoff_rec_t *h = lead->n_handoffs ? &lead->handoffs[lead->n_handoffs - 1]
                                            : NULL;
    lead->handoff_at_ms = t;
    if (h)
        h->answered_at_ms = t;
    if (accept) {
        lead->handoff = HND_HANDOFF_ACCEPTED;
        lead->handoffs_accepted++;
        if (h)
            h->status = HND_HANDOFF_ACCEPTED;
        hnd_count_all(fx, lead, 1, keys_name(KEYS_HANDOFFS_ACCEPTED));
        return 0;
    }

    const char *reason = s_reason(ev, d);
    lead->handoff = HND_HANDOFF_REJECTED;
    lead->handoffs_rejected++;
    lead->qualified = false;
    if (h) {
        h->status = HND_HANDOFF_REJECTED;
        snprintf(h->reason, sizeof h->reason, "%s", reason);
    }
    hnd_count_all(fx, lead, 1, keys_name(KEYS_HANDOFFS_REJECTED));
    h_friction_rejected(d, lead, fx, reason, t);

    hnd_alert_t *a = hnd_alert_add(fx, "handoff_rejected",
                                   "friction.handoff_rejected", lead->stage, -1);
    hnd_alert_reason(a, "sales rejected the handoff%s%s", reason[0] ? ": " : "",
                     reason);

    if (d->recycle_reset && lead->engagement != 0) {
        hnd_ledger_add(d, lead, HND_LEDGER_ENGAGEMENT,
                       "recycle: handoff rejected, engagement restarts", ev, t,
                       -lead->engagement, t);
        hnd_alert_reason(a, "engagement %.1f reset to 0", lead->engagement);
        /* The entry cancels the decayed sum exactly from t on. */
        lead->engagement = 0;
    }
    int to = d->recycle_stage;
    if (to >= 0 && lead->stage >= 0 && lead->stage != to &&
        !d->stages[lead->stage].terminal) {
        char why[HND_REASON_LEN];
        snprintf(why, sizeof why, "recycled: handoff rejected%s%s",
                 reason[0] ? ": " : "", reason);
        hnd_alert_reason(a, "recycled to %s", d->stages[to].name);
        h_stage_move(d, lead, fx, to, t, why);
    }
    return 0;
}

const hnd_t hnd_handoff = {
    .name = "handoff",
    .apply = h_handoff_apply,
};
