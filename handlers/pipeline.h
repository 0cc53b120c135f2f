/* pipeline.h: run the handlers over one event.
 *
 * The pipeline is a NULL-terminated table of handlers, a parameter so that
 * the daemon's tests can run a trivial one. pipeline_default is the
 * product's: attributes, fit, stage advancement, engagement, handoff
 * answers, qualification, personas, quality (in that order: qualification
 * sees the scores of the event, personas the lead as the event left it,
 * quality its outcome and handoff after the persona moved its counters).
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
extern const hnd_t hnd_quality;   /* outcomes against handoffs */

extern const hnd_t *const pipeline_default[];

/* Move lead into stage `to` at time t, with its report counters and its
 * "stage" alert (plus a "regression" alert for a move back); why, when not
 * NULL, is added to the alerts' reasons. For the handlers (h_stage.c). */
void h_stage_move(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx, int to,
                  int64_t t, const char *why);

/* Count (v = 1) or uncount (v = -1) the lead's quality counters under
 * counter prefix pre, as h_quality.c booked them (nothing for a lead it
 * has not seen yet): for h_persona.c, which moves a lead between persona
 * groups before h_quality runs. */
void h_quality_move(const hnd_lead_t *lead, hnd_effects_t *fx,
                    const hnd_prefix_t *pre, int64_t v);

/* Friction bookkeeping for the handlers (h_friction.c). t is the lead's
 * time. leave: before the lead leaves its stage for `to` (completed stay,
 * dropped, late stall, stalled flag cleared); enter: after it entered its
 * new stage (stall deadline, conversion window); regression: a move back
 * from `from` to `to`; handoff_sent: a handoff became pending (SLA
 * deadline); answered: sales answered the handoff sent at `sent` (SLA
 * deadline cleared, late breach flagged); rejected: with its reason. */
void h_friction_leave(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                      int to, int64_t t);
void h_friction_enter(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                      int64_t t);
void h_friction_regression(const defn_t *d, hnd_lead_t *lead,
                           hnd_effects_t *fx, int from, int to, int64_t t);
void h_friction_handoff_sent(const defn_t *d, hnd_lead_t *lead,
                             hnd_effects_t *fx, int64_t t);
void h_friction_answered(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                         int64_t sent, int64_t t);
void h_friction_rejected(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                         const char *reason, int64_t t);
/* The friction side of pipeline_deadline, pipeline_funnel_check and
 * pipeline_conversion_window (same contracts; fx is reset by the
 * pipeline_ functions). */
int h_friction_deadline(const defn_t *d, hnd_lead_t *lead, const char *kind,
                        int64_t due_ms, int64_t now_ms, hnd_effects_t *fx);
typedef int64_t pipeline_counter_fn(const char *key, void *arg);
void h_friction_check(const defn_t *d, int64_t now_ms,
                      pipeline_counter_fn *get, void *arg, hnd_effects_t *fx);
void h_friction_window(const defn_t *d, int stage, int64_t today,
                       pipeline_counter_fn *get, void *arg, int64_t *in,
                       int64_t *out);
/* Append to the lead's friction history (the oldest entry goes when full);
 * detail is printf-formatted. */
void h_friction_note(hnd_lead_t *lead, const char *kind, int stage,
                     int64_t at_ms, int64_t duration_ms, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Apply ev to lead. When is_new, lead is initialised from the event first
 * (its previous content is ignored). fx is reset, then receives the alerts
 * and counter deltas of the event. After the handlers, the lead's event
 * count and time are advanced (a lead's time never moves backwards).
 * Returns 0, or -1 when a handler refused the event (lead then undefined:
 * the caller discards it). */
int pipeline_apply(const hnd_t *const *pipe, const hnd_event_t *ev,
                   const defn_t *d, bool is_new, hnd_lead_t *lead,
                   hnd_effects_t *fx);

/* A deadline of lead (set earlier through hnd_deadline_set) fell due: the
 * daemon removed it and calls this with the lead, the deadline's kind and
 * due time, and the daemon's time now_ms. fx is reset, then receives the
 * alerts, counter deltas, new deadlines and marks. Returns 0 (the lead is
 * stored and the effects applied) or -1 (nothing is kept). Pure. */
int pipeline_deadline(const defn_t *d, hnd_lead_t *lead, const char *kind,
                      int64_t due_ms, int64_t now_ms, hnd_effects_t *fx);

/* pipeline_counter_fn (declared above with the friction functions) reads
 * a report counter (the value committed so far plus the open group's
 * deltas), for checks over the whole funnel. */

/* After a group of events (and fired deadlines), at daemon time now_ms:
 * checks over the whole funnel, e.g. a stage's conversion over a rolling
 * window crossing its target. Reads counters through get(key, arg), and
 * writes alerts and counter deltas (e.g. to remember that a stage is below
 * target, so that only crossings alert) into fx, which it resets. Pure. */
void pipeline_funnel_check(const defn_t *d, int64_t now_ms,
                           pipeline_counter_fn *get, void *arg,
                           hnd_effects_t *fx);

/* For reports: entries into `stage` and moves on from it to a later stage
 * over the conversion window ending with day `today` (days since
 * 1970-01-01 of event time), from the counters kept for the check. */
void pipeline_conversion_window(const defn_t *d, int stage, int64_t today,
                                pipeline_counter_fn *get, void *arg,
                                int64_t *in, int64_t *out);

#endif
