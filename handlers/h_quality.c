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

/* The keys (without a group prefix) the lead's classes are counted
 * under: the every-lead class first, then the handed-off ones (none when
 * not handed off). Built once and counted under every prefix. */
typedef struct {
    size_t n, n_all;            /* keys; of them the every-lead class's */
    const char *key[4];
    char buf[2][HND_COUNTER_KEY_MAX];
} s_keys_t;

static void s_keys(const hnd_lead_t *lead, s_keys_t *k)
{
    const hnd_quality_t *q = &lead->quality;
    keys_counter_t c = s_all_class(q);
    k->n = 0;
    if (c == KEYS_Q_ALL_OPEN)
        k->key[k->n++] = keys_quality(k->buf[0], sizeof k->buf[0], "", c,
                                      timetext_days_of_ms(lead->first_seen_ms));
    else
        k->key[k->n++] = keys_name(c);
    k->n_all = k->n;
    if (!q->handed_off)
        return;
    k->key[k->n++] = keys_name(KEYS_Q_HANDED);
    c = s_handed_class(q);
    if (c == KEYS_Q_OPEN) {
        k->key[k->n++] = keys_quality(k->buf[1], sizeof k->buf[1], "", c,
                                      timetext_days_of_ms(q->handoff_at_ms));
        return;
    }
    k->key[k->n++] = keys_name(c);
    if (c == KEYS_Q_WON)
        k->key[k->n++] = keys_quality(k->buf[1], sizeof k->buf[1], "", KEYS_Q_TO_WON,
                                      dwell_bucket(q->outcome_at_ms - q->handoff_at_ms));
}

/* Count (v = 1) or uncount (v = -1) keys from..k->n of k under pre. */
static void s_count(hnd_effects_t *fx, const s_keys_t *k, size_t from,
                    const hnd_prefix_t *pre, int64_t v)
{
    for (size_t i = from; i < k->n; i++)
        hnd_count_under(fx, v, pre, k->key[i]);
}

void h_quality_move(const hnd_lead_t *lead, hnd_effects_t *fx,
                    const hnd_prefix_t *pre, int64_t v)
{
    if (!lead->quality.booked)
        return;
    s_keys_t k;
    s_keys(lead, &k);
    s_count(fx, &k, 0, pre, v);
}

/* Count (v = 1) or uncount the lead everywhere: funnel-wide, its persona's
 * and source's groups, and (handed-off counters only) its clause's. */
static void s_book(hnd_effects_t *fx, const hnd_lead_t *lead, int64_t v)
{
    if (!lead->quality.booked)
        return;
    s_keys_t k;
    s_keys(lead, &k);
    s_count(fx, &k, 0, &hnd_prefix_none, v);
    s_count(fx, &k, 0, hnd_group(fx, lead, KEYS_BY_PERSONA), v);
    s_count(fx, &k, 0, hnd_group(fx, lead, KEYS_BY_SOURCE), v);
    if (lead->quality.handed_off) {
        char buf[KEYS_PREFIX_MAX];
        hnd_prefix_t clause;
        hnd_prefix_set(&clause, keys_clause_prefix(buf, sizeof buf, lead->quality.rule));
        s_count(fx, &k, k.n_all, &clause, v);
    }
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
