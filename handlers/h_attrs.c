/* h_attrs.c: merge an event's attributes into its lead.
 *
 * A later event overwrites an earlier value of the same key. A lead holds at
 * most HND_ATTRS_MAX attributes; keys beyond that are dropped (the event
 * itself keeps them in the log).
 */
#include "pipeline.h"

static int h_attrs_apply(const hnd_event_t *ev, const defn_t *d,
                         hnd_lead_t *lead, hnd_effects_t *fx)
{
    for (size_t i = 0; i < ev->n_attrs; i++)
        (void)hnd_lead_set_attr(lead, ev->attrs[i].key, ev->attrs[i].value);
    return 0;
}

const hnd_t hnd_attrs = {
    .name = "attrs",
    .apply = h_attrs_apply,
};
