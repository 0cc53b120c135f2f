/* pipeline.h: run the handlers over one event.
 *
 * The pipeline is a NULL-terminated table of handlers, a parameter so that
 * the daemon's tests can run a trivial one. pipeline_default is the
 * product's: attributes, fit, stage advancement, engagement, handoff
 * answers, qualification, personas (in that order: qualification sees the
 * scores of the event, personas the lead as the event left it).
 */
#ifndef FUNNELD_PIPELINE_H
#define FUNNELD_PIPELINE_H

#include "hnd.h"

extern const hnd_t hnd_attrs;     /* merge the event's attributes */
extern const hnd_t hnd_fit;       /* fit points from attributes */
extern const hnd_t hnd_stage;     /* stage moves, regressions */
extern const hnd_t hnd_score;     /* engagement points, decay */
extern const hnd_t hnd_handoff;   /* sales' answers: accept, reject, recycle */
extern const hnd_t hnd_qualify;   /* the qualification rule, handoff alert */
extern const hnd_t hnd_persona;   /* behaviour counters, persona */

extern const hnd_t *const pipeline_default[];

/* Move lead into stage `to` at time t, with its report counters and its
 * "stage" alert (plus a "regression" alert for a move back); why, when not
 * NULL, is added to the alerts' reasons. For the handlers (h_stage.c). */
void h_stage_move(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx, int to,
                  int64_t t, const char *why);

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
