/* h_attrs.c: merge an event's attributes into its lead.
 *
 * A later event overwrites an earlier value of the same key. A lead holds at
 * most HND_ATTRS_MAX attributes; keys beyond that are dropped (the event
 * itself keeps them in the log).
 *
 * Answers are not attributes: the reason of a handoff answer (the
 * attribute handoff.reason_attr of an event of one of the four answer
 * types) belongs to the handoff (h_handoff.c keeps it with the handoff
 * record and counts rejection reasons), so it is never merged into the
 * lead, where fit and persona rules would see it. The answer's other
 * attributes are merged as any event's.
 */
#include "pipeline.h"

#include <string.h>

static int h_attrs_apply(const hnd_event_t *ev, const defn_t *d,
                         hnd_lead_t *lead, hnd_effects_t *fx)
{
    (void)fx;
    const defn_type_t *ety = hnd_event_type(ev, d);
    bool answer = ety != NULL && ety->answer;
    for (size_t i = 0; i < ev->n_attrs; i++) {
        if (answer && strcmp(ev->attrs[i].key, d->reason_attr) == 0)
            continue;
        (void)hnd_lead_set_attr(lead, ev->attrs[i].key, ev->attrs[i].value);
    }
    return 0;
}

const hnd_t hnd_attrs = {
    .name = "attrs",
    .apply = h_attrs_apply,
};
