/* h_handoff.c: sales' answer to a handoff.
 *
 * Four answers, each an event type of the definition's handoff section:
 * - accepted (handoff_accepted): the pending handoff is accepted.
 * - rejected (handoff_rejected): it is rejected, a friction point counted
 *   per stage and per reason. The lead is recycled: it is no longer
 *   qualified (so it may qualify again later, which is a new handoff), its
 *   engagement restarts from 0 when handoff.reset_engagement (a ledger
 *   entry books the reset), and it moves to handoff.recycle_to when that
 *   is set and the lead is not in a terminal stage (a "stage" alert, and a
 *   "regression" alert when that is a move back). A "handoff_rejected"
 *   alert on "friction.handoff_rejected".
 * - recycled (handoff_recycled): "not ready yet": the lead goes back to
 *   marketing exactly as a rejected one does (not qualified, engagement
 *   reset, back to handoff.recycle_to), but no rejection is counted and it
 *   is not a friction point: its own counter (KEYS_HANDOFFS_RECYCLED) and
 *   its own alert, "handoff_recycled" on topic "recycled".
 * - requalify (handoff_requalify): "look at it again now": the pending
 *   handoff is closed and the lead is no longer qualified; h_qualify, which
 *   runs next, evaluates the rule at once on the lead's scores at the
 *   answer, and a lead that meets it is handed off again (a new handoff and
 *   a new "handoff" alert). One that does not is left with handoff status
 *   requalified (HND_HANDOFF_REQUALIFIED) and may qualify later.
 *   Counter: KEYS_HANDOFFS_REQUALIFIED.
 *
 * The reason of any answer (its attribute handoff.reason_attr) is kept
 * with the handoff record; h_attrs.c never merges it into the lead.
 *
 * Every answer clears the handoff's SLA deadline; an answer after the SLA
 * that was not flagged yet is a "handoff_sla" friction point
 * (h_friction.c). An answer with no pending handoff changes nothing.
 * Counters, per group too: KEYS_HANDOFFS_ACCEPTED, KEYS_HANDOFFS_REJECTED,
 * KEYS_HANDOFFS_RECYCLED, KEYS_HANDOFFS_REQUALIFIED.
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

/* Give the lead back to marketing at t: engagement reset, back to
 * recycle_to; a is the answer's alert (may be NULL), what names the
 * answer in the ledger and the stage alert. */
static void s_recycle(const hnd_event_t *ev, const defn_t *d, hnd_lead_t *lead,
                      hnd_effects_t *fx, hnd_alert_t *a, const char *what,
                      const char *reason, int64_t t)
{
    if (d->recycle_reset && lead->engagement != 0) {
        char rule[HND_RULE_MAX];
        hnd_join(rule, sizeof rule, "recycle: ", what, ", engagement restarts",
                 NULL);
        hnd_ledger_add(d, lead, HND_LEDGER_ENGAGEMENT, rule, ev, t,
                       -lead->engagement, t);
        hnd_alert_reason(a, "engagement %.1f reset to 0", lead->engagement);
        /* The entry cancels the decayed sum exactly from t on. */
        lead->engagement = 0;
    }
    int to = d->recycle_stage;
    if (to >= 0 && lead->stage >= 0 && lead->stage != to &&
        !d->stages[lead->stage].terminal) {
        char why[HND_REASON_LEN];
        snprintf(why, sizeof why, "recycled: %s%s%s", what,
                 reason[0] ? ": " : "", reason);
        hnd_alert_reason(a, "recycled to %s", d->stages[to].name);
        h_stage_move(d, lead, fx, to, t, why);
    }
}

/* hnd_apply_fn: sales' answer (one of the four answer types) to the
 * pending handoff: the handoff's status, record and reason, its counter,
 * the SLA bookkeeping (h_friction_answered); a rejection also books its
 * friction (h_friction_rejected) and raises "handoff_rejected", a recycle
 * raises "handoff_recycled", both give the lead back (s_recycle); a
 * requalify leaves the decision to h_qualify. Any other event, or no
 * pending handoff: nothing. Always 0. */
static int h_handoff_apply(const hnd_event_t *ev, const defn_t *d,
                           hnd_lead_t *lead, hnd_effects_t *fx)
{
    const defn_type_t *ty = hnd_event_type(ev, d);
    if (!ty || !ty->answer || lead->handoff != HND_HANDOFF_PENDING)
        return 0;
    bool accept = strcmp(ev->type, d->accept_type) == 0;
    bool reject = strcmp(ev->type, d->reject_type) == 0;
    bool recycle = strcmp(ev->type, d->recycle_type) == 0;

    int64_t t = ev->at_ms > lead->last_event_ms ? ev->at_ms : lead->last_event_ms;
    h_friction_answered(d, lead, fx, lead->handoff_at_ms, t);
    hnd_handoff_rec_t *h = lead->n_handoffs ? &lead->handoffs[lead->n_handoffs - 1]
                                            : NULL;
    const char *reason = s_reason(ev, d);
    lead->handoff_at_ms = t;
    if (h) {
        h->answered_at_ms = t;
        snprintf(h->reason, sizeof h->reason, "%s", reason);
    }
    hnd_handoff_t status = accept    ? HND_HANDOFF_ACCEPTED
                           : reject  ? HND_HANDOFF_REJECTED
                           : recycle ? HND_HANDOFF_RECYCLED
                                     : HND_HANDOFF_REQUALIFIED;
    lead->handoff = status;
    if (h)
        h->status = status;
    if (accept) {
        lead->handoffs_accepted++;
        hnd_count_all(fx, lead, 1, keys_name(KEYS_HANDOFFS_ACCEPTED));
        return 0;
    }
    lead->qualified = false;
    if (status == HND_HANDOFF_REQUALIFIED) {
        /* h_qualify decides, on this event, whether it is a new handoff. */
        lead->handoffs_requalified++;
        hnd_count_all(fx, lead, 1, keys_name(KEYS_HANDOFFS_REQUALIFIED));
        return 0;
    }
    if (recycle) {
        lead->handoffs_recycled++;
        hnd_count_all(fx, lead, 1, keys_name(KEYS_HANDOFFS_RECYCLED));
        hnd_alert_t *a = hnd_alert_add(fx, "handoff_recycled", "recycled",
                                       lead->stage, -1);
        hnd_alert_reason(a, "sales gave the handoff back to marketing%s%s",
                         reason[0] ? ": " : "", reason);
        s_recycle(ev, d, lead, fx, a, "handoff recycled", reason, t);
        return 0;
    }

    lead->handoffs_rejected++;
    hnd_count_all(fx, lead, 1, keys_name(KEYS_HANDOFFS_REJECTED));
    h_friction_rejected(d, lead, fx, reason, t);
    hnd_alert_t *a = hnd_alert_add(fx, "handoff_rejected",
                                   "friction.handoff_rejected", lead->stage, -1);
    hnd_alert_reason(a, "sales rejected the handoff%s%s", reason[0] ? ": " : "",
                     reason);
    s_recycle(ev, d, lead, fx, a, "handoff rejected", reason, t);
    return 0;
}

const hnd_t hnd_handoff = {
    .name = "handoff",
    .apply = h_handoff_apply,
};
