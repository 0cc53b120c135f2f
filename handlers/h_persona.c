/* h_persona.c: behaviour counters and customer personas.
 *
 * The lead counts its events per type, for the event types the definition
 * names (transitions, regressions, scoring, handoff answers, persona
 * rules), at most HND_COUNTS_MAX types; when full, a type a persona rule
 * counts takes the place of the least counted type no rule counts.
 *
 * Then its persona is re-evaluated: the personas are tried in order and
 * the first whose conditions all hold names it ("" when none does). A
 * change is recorded in the lead's persona history, and the lead's report
 * counters move from the old persona's group to the new one (KEYS_LEADS,
 * KEYS_NOW, KEYS_ENTERED, KEYS_ADVANCED, the KEYS_HANDOFFS counters, the
 * friction gauges, every friction total the lead has booked, from its
 * tally: h_friction.c, and its quality counters: h_quality.c), so that the
 * persona reports, funnel, friction and quality, count every column of a
 * lead under the persona it has now.
 */
#include "pipeline.h"

#include <stdio.h>
#include <string.h>

#include "keys.h"

static void s_count(const defn_t *d, const defn_type_t *ty, hnd_lead_t *lead)
{
    for (size_t i = 0; i < lead->n_counts; i++)
        if (strcmp(lead->counts[i].type, ty->type) == 0) {
            lead->counts[i].n++;
            return;
        }
    hnd_counter_t *c = NULL;
    if (lead->n_counts < HND_COUNTS_MAX) {
        c = &lead->counts[lead->n_counts++];
    } else if (ty->persona_ref) {
        for (size_t i = 0; i < lead->n_counts; i++) {
            const defn_type_t *o = defn_type(d, lead->counts[i].type);
            if ((!o || !o->persona_ref) && (!c || lead->counts[i].n < c->n))
                c = &lead->counts[i];
        }
    }
    if (!c)
        return;
    hnd_join(c->type, sizeof c->type, ty->type, NULL, NULL, NULL);
    c->n = 1;
}

/* Move the lead's counters between persona groups: -1 from `from`, +1 to
 * `to` (group names). */
static void s_move(const defn_t *d, const hnd_lead_t *lead, hnd_effects_t *fx,
                   const char *from, const char *to)
{
    const char *g[2] = { from, to };
    char buf[KEYS_PREFIX_MAX], key[HND_COUNTER_KEY_MAX];
    hnd_prefix_t pre;
    for (int k = 0; k < 2; k++) {
        int64_t v = k == 0 ? -1 : 1;
        const hnd_prefix_t *p =
            hnd_prefix_set(&pre, keys_group_prefix(buf, sizeof buf, KEYS_BY_PERSONA, g[k]));
        hnd_count_under(fx, v, p, keys_name(KEYS_LEADS));
        if (lead->stage >= 0)
            hnd_count_under(fx, v, p, keys_counter(key, sizeof key, "", KEYS_NOW,
                                                   d->stages[lead->stage].name));
        for (size_t s = 0; s < d->n_stages; s++) {
            if (lead->entered & (1u << s))
                hnd_count_under(fx, v, p, keys_counter(key, sizeof key, "", KEYS_ENTERED,
                                                       d->stages[s].name));
            if (lead->advanced & (1u << s))
                hnd_count_under(fx, v, p, keys_counter(key, sizeof key, "", KEYS_ADVANCED,
                                                       d->stages[s].name));
        }
        if (lead->handoffs_sent)
            hnd_count_under(fx, v * lead->handoffs_sent, p, keys_name(KEYS_HANDOFFS));
        if (lead->handoffs_accepted)
            hnd_count_under(fx, v * lead->handoffs_accepted, p,
                            keys_name(KEYS_HANDOFFS_ACCEPTED));
        if (lead->handoffs_rejected)
            hnd_count_under(fx, v * lead->handoffs_rejected, p,
                            keys_name(KEYS_HANDOFFS_REJECTED));
        if (lead->handoffs_recycled)
            hnd_count_under(fx, v * lead->handoffs_recycled, p,
                            keys_name(KEYS_HANDOFFS_RECYCLED));
        if (lead->handoffs_requalified)
            hnd_count_under(fx, v * lead->handoffs_requalified, p,
                            keys_name(KEYS_HANDOFFS_REQUALIFIED));
        /* The friction gauges follow the lead (the totals stay where they
         * were booked, see h_friction.c). */
        if (lead->stalled && lead->stage >= 0)
            hnd_count_under(fx, v, p, keys_counter(key, sizeof key, "", KEYS_STALLED,
                                                   d->stages[lead->stage].name));
        if (lead->sla_breached)
            hnd_count_under(fx, v, p, keys_name(KEYS_SLA_WAITING));
        /* The friction totals, as booked (h_friction.c). */
        for (size_t i = 0; i < lead->n_tally; i++)
            if (hnd_tally_key(d, &lead->tally[i], key, sizeof key))
                hnd_count_under(fx, v * lead->tally[i].n, p, key);
        for (size_t i = 0; i < lead->n_rtally; i++)
            hnd_count_under(fx, v * lead->rtally[i].n, p,
                            keys_counter(key, sizeof key, "", KEYS_REJREASON,
                                         lead->rtally[i].reason));
        h_quality_move(lead, fx, p, v);
    }
}

static int h_persona_apply(const hnd_event_t *ev, const defn_t *d,
                           hnd_lead_t *lead, hnd_effects_t *fx)
{
    const defn_type_t *ty = hnd_event_type(ev, d);
    if (ty)
        s_count(d, ty, lead);

    const char *name = "";
    for (size_t i = 0; i < d->n_personas; i++) {
        const defn_persona_t *p = &d->personas[i];
        size_t k = 0;
        while (k < p->n_when && hnd_cond_match(&p->when[k], lead))
            k++;
        if (k == p->n_when) {
            name = p->name;
            break;
        }
    }
    if (strcmp(name, lead->persona) == 0)
        return 0;

    s_move(d, lead, fx, hnd_persona_group(lead->persona),
           hnd_persona_group(name));
    if (lead->n_pchanges == HND_PCHANGES_MAX) {
        memmove(&lead->pchanges[0], &lead->pchanges[1],
                (HND_PCHANGES_MAX - 1) * sizeof lead->pchanges[0]);
        lead->n_pchanges--;
    }
    hnd_pchange_t *c = &lead->pchanges[lead->n_pchanges++];
    snprintf(c->from, sizeof c->from, "%s", lead->persona);
    snprintf(c->to, sizeof c->to, "%s", name);
    c->at_ms = ev->at_ms > lead->last_event_ms ? ev->at_ms : lead->last_event_ms;
    c->seq = ev->log_seq;
    snprintf(lead->persona, sizeof lead->persona, "%s", name);
    return 0;
}

const hnd_t hnd_persona = {
    .name = "persona",
    .apply = h_persona_apply,
};
