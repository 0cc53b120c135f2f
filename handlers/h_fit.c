/* h_fit.c: fit points from the lead's attributes.
 *
 * Fit is the sum of the points of the fit rules (scoring.fit) that the
 * lead's attributes satisfy now; it does not decay. A rule that starts to
 * match adds its points, one that stops matching (an attribute changed)
 * takes them back; each change is a ledger entry naming the rule. The
 * matching rules are re-derived from the attributes when a stored lead is
 * loaded (hnd_lead_loaded); if a reloaded definition changed the rules,
 * the difference is booked as one "fit rules changed" entry, so the ledger
 * still explains every point.
 */
#include "pipeline.h"

#include <math.h>
#include <stdio.h>

static double s_mask_points(const defn_t *d, uint64_t mask)
{
    double sum = 0;
    for (size_t i = 0; i < d->n_fit; i++)
        if (mask & (1ull << i))
            sum += d->fit[i].points;
    return sum;
}

static int h_fit_apply(const hnd_event_t *ev, const defn_t *d,
                       hnd_lead_t *lead, hnd_effects_t *fx)
{
    int64_t ref = ev->at_ms > lead->last_event_ms ? ev->at_ms
                                                  : lead->last_event_ms;
    char rule[HND_RULE_MAX];

    if (d->n_fit == 0 && lead->fit == 0)
        return 0;
    double expect = s_mask_points(d, lead->fit_mask);
    if (fabs(expect - lead->fit) > 1e-9) {
        hnd_ledger_add(d, lead, HND_LEDGER_FIT,
                       "fit: rules changed (definition reloaded)", ev, ref,
                       expect - lead->fit, ref);
        lead->fit = expect;
    }
    if (ev->n_attrs == 0 && !fx->is_new)
        return 0;

    uint64_t now = 0;
    for (size_t i = 0; i < d->n_fit; i++)
        if (hnd_cond_match(&d->fit[i].cond, lead))
            now |= 1ull << i;
    uint64_t changed = now ^ lead->fit_mask;
    for (size_t i = 0; changed && i < d->n_fit; i++) {
        if (!(changed & (1ull << i)) || d->fit[i].points == 0)
            continue;
        bool on = now & (1ull << i);
        double p = on ? d->fit[i].points : -d->fit[i].points;
        snprintf(rule, sizeof rule, "fit: %s%s", d->fit[i].label,
                 on ? "" : " (no longer)");
        hnd_ledger_add(d, lead, HND_LEDGER_FIT, rule, ev, ref, p, ref);
        lead->fit += p;
    }
    lead->fit_mask = now;
    return 0;
}

const hnd_t hnd_fit = {
    .name = "fit",
    .apply = h_fit_apply,
};
