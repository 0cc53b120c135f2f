/* h_quality.c: lead quality against outcomes.
 *
 * A lead's outcome is won once it entered the funnel's last stage, lost
 * once it entered an exit (the latest such entry counts: a lost lead
 * reopened and won is won), open otherwise. Its first handoff (time and
 * the qualification clause that produced it) is kept, and whether the
 * outcome's stage was entered after it (in the order the events were
 * applied: an event that both moves a lead into its outcome and qualifies
 * it moved it first, so the handoff came too late to count).
 *
 * Each lead is counted once, in the class it is in now, in the report
 * counters of keys.h (KEYS_Q_*), funnel-wide, per persona and per source:
 *   every lead       quality/all/won, quality/all/lost, or
 *                    quality/all/open/<day of its first event>;
 *   handed-off ones  quality/handed_off, plus quality/won (and
 *                    quality/to_won/<bucket of handoff-to-won time>),
 *                    quality/lost, quality/before (the outcome came
 *                    first), or quality/open/<day of the first handoff>;
 *                    these also per clause (keys_clause_prefix).
 * The open counters are kept per day so that the report can count an open
 * lead as lost once quality.lost_after has passed (report_quality).
 *
 * The handler runs last, after h_persona: a persona change first moves
 * the lead's counters between persona groups (h_quality_move, called by
 * h_persona.c), then a change of class moves them between classes here.
 * Only this file writes hnd_lead_t.quality.
 */
#include "pipeline.h"

#include <string.h>

#include "dwell.h"
#include "keys.h"
#include "timetext.h"

/* The class of every lead: KEYS_Q_ALL_WON, _LOST or _OPEN. */
static keys_counter_t s_all_class(const hnd_quality_t *q)
{
    return q->outcome == HND_OUTCOME_WON    ? KEYS_Q_ALL_WON
           : q->outcome == HND_OUTCOME_LOST ? KEYS_Q_ALL_LOST
                                            : KEYS_Q_ALL_OPEN;
}

/* The class of a handed-off lead: KEYS_Q_WON, _LOST, _BEFORE or _OPEN. */
static keys_counter_t s_handed_class(const hnd_quality_t *q)
{
    if (q->outcome == HND_OUTCOME_OPEN)
        return KEYS_Q_OPEN;
    if (!q->outcome_after_handoff)
        return KEYS_Q_BEFORE;
    return q->outcome == HND_OUTCOME_WON ? KEYS_Q_WON : KEYS_Q_LOST;
}

/* Count (v = 1) or uncount (v = -1) the every-lead class of the lead
 * under counter prefix pre. */
static void s_book_all(hnd_effects_t *fx, const hnd_lead_t *lead,
                       const hnd_prefix_t *pre, int64_t v)
{
    char key[HND_COUNTER_KEY_MAX];
    const hnd_quality_t *q = &lead->quality;
    keys_counter_t c = s_all_class(q);
    if (c == KEYS_Q_ALL_OPEN)
        keys_quality(key, sizeof key, "", c,
                     timetext_days_of_ms(lead->first_seen_ms));
    else
        keys_counter(key, sizeof key, "", c, NULL);
    hnd_count_under(fx, v, pre, key);
}

/* The same for the handed-off class (nothing when not handed off). */
static void s_book_handed(hnd_effects_t *fx, const hnd_quality_t *q,
                          const hnd_prefix_t *pre, int64_t v)
{
    char key[HND_COUNTER_KEY_MAX];
    if (!q->handed_off)
        return;
    hnd_count_under(fx, v, pre, keys_name(KEYS_Q_HANDED));
    keys_counter_t c = s_handed_class(q);
    if (c == KEYS_Q_OPEN) {
        hnd_count_under(fx, v, pre, keys_quality(key, sizeof key, "", c,
                                                 timetext_days_of_ms(q->handoff_at_ms)));
        return;
    }
    hnd_count_under(fx, v, pre, keys_name(c));
    if (c == KEYS_Q_WON)
        hnd_count_under(fx, v, pre,
                        keys_quality(key, sizeof key, "", KEYS_Q_TO_WON,
                                     dwell_bucket(q->outcome_at_ms - q->handoff_at_ms)));
}

void h_quality_move(const hnd_lead_t *lead, hnd_effects_t *fx,
                    const hnd_prefix_t *pre, int64_t v)
{
    if (!lead->quality.booked)
        return;
    s_book_all(fx, lead, pre, v);
    s_book_handed(fx, &lead->quality, pre, v);
}

/* Count (v = 1) or uncount the lead everywhere: funnel-wide, its persona's
 * and source's groups, and (handed-off counters only) its clause's. */
static void s_book(hnd_effects_t *fx, const hnd_lead_t *lead, int64_t v)
{
    char buf[KEYS_PREFIX_MAX];
    hnd_prefix_t clause;
    h_quality_move(lead, fx, &hnd_prefix_none, v);
    h_quality_move(lead, fx, hnd_group(fx, lead, KEYS_BY_PERSONA), v);
    h_quality_move(lead, fx, hnd_group(fx, lead, KEYS_BY_SOURCE), v);
    if (lead->quality.booked && lead->quality.handed_off)
        s_book_handed(fx, &lead->quality,
                      hnd_prefix_set(&clause, keys_clause_prefix(buf, sizeof buf,
                                                                 lead->quality.rule)),
                      v);
}

static bool s_same(const hnd_quality_t *a, const hnd_quality_t *b)
{
    return a->booked == b->booked && a->outcome == b->outcome &&
           a->outcome_at_ms == b->outcome_at_ms &&
           a->outcome_after_handoff == b->outcome_after_handoff &&
           a->handed_off == b->handed_off &&
           a->handoff_at_ms == b->handoff_at_ms && strcmp(a->rule, b->rule) == 0;
}

/* hnd_apply_fn: the lead's outcome (an entry into the last stage or an
 * exit by this event), then its first handoff (when this event made it);
 * when either changed, the lead's counters move from its old class to its
 * new one. Always 0. */
static int h_quality_apply(const hnd_event_t *ev, const defn_t *d,
                           hnd_lead_t *lead, hnd_effects_t *fx)
{
    (void)ev;
    hnd_quality_t q = lead->quality;
    bool moved = fx->is_new || lead->stage != fx->prev_stage;
    if (moved && lead->stage >= 0 && d->n_order > 0) {
        size_t s = (size_t)lead->stage;
        hnd_outcome_t o = s == d->n_order - 1 ? HND_OUTCOME_WON
                          : s >= d->n_order   ? HND_OUTCOME_LOST
                                              : HND_OUTCOME_OPEN;
        if (o != HND_OUTCOME_OPEN) {
            q.outcome = o;
            q.outcome_at_ms = lead->stage_entered_at_ms;
            q.outcome_after_handoff = q.handed_off;
        }
    }
    if (!q.handed_off && lead->handoffs_sent > 0 && lead->n_handoffs > 0) {
        const hnd_handoff_rec_t *h = &lead->handoffs[lead->n_handoffs - 1];
        q.handed_off = true;
        q.handoff_at_ms = h->at_ms;
        memcpy(q.rule, h->rule, sizeof q.rule);
        q.rule[sizeof q.rule - 1] = '\0';
    }
    q.booked = true;
    if (lead->quality.booked && s_same(&q, &lead->quality))
        return 0;
    s_book(fx, lead, -1);
    lead->quality = q;
    s_book(fx, lead, 1);
    return 0;
}

const hnd_t hnd_quality = {
    .name = "quality",
    .apply = h_quality_apply,
};
