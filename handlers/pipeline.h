/* pipeline.h: run the handlers over one event.
 *
 * The pipeline is a NULL-terminated table of handlers, a parameter so that
 * the daemon's tests can run a trivial one. pipeline_default is the
 * product's: attributes, stage advancement, scoring and qualification.
 */
#ifndef FUNNELD_PIPELINE_H
#define FUNNELD_PIPELINE_H

#include "hnd.h"

extern const hnd_t hnd_attrs;
extern const hnd_t hnd_stage;
extern const hnd_t hnd_qualify;

extern const hnd_t *const pipeline_default[];

/* Apply ev to lead. When is_new, lead is initialised from the event first
 * (its previous content is ignored). fx is reset, then receives the alerts
 * and counter deltas of the event. After the handlers, the lead's event
 * count and time are advanced (a lead's time never moves backwards).
 * Returns 0, or -1 when a handler refused the event (lead then undefined:
 * the caller discards it). */
int pipeline_apply(const hnd_t *const *pipe, const hnd_event_t *ev,
                   const defn_t *d, bool is_new, hnd_lead_t *lead,
                   hnd_effects_t *fx);

#endif
