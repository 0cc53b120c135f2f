/* pipeline.c: see pipeline.h. */
#include "pipeline.h"

#include <string.h>

const hnd_t *const pipeline_default[] = {
    &hnd_attrs,
    &hnd_fit,
    &hnd_stage,
    &hnd_score,
    &hnd_handoff,
    &hnd_qualify,
    &hnd_persona,
    NULL,
};

int pipeline_apply(const hnd_t *const *pipe, const hnd_event_t *ev,
                   const defn_t *d, bool is_new, hnd_lead_t *lead,
                   hnd_effects_t *fx)
{
    fx->is_new = is_new;
    fx->n_alerts = 0;
    fx->n_deltas = 0;
    fx->n_deadlines = 0;
    fx->n_marks = 0;
    if (is_new)
        hnd_lead_init(lead, ev);
    fx->prev_stage = lead->stage;

    for (const hnd_t *const *h = pipe; *h != NULL; h++)
        if ((*h)->apply(ev, d, lead, fx) != 0)
            return -1;

    lead->events++;
    if (ev->at_ms > lead->last_event_ms)
        lead->last_event_ms = ev->at_ms;
    return 0;
}

/* Until friction handling lands, deadlines and funnel checks do nothing:
 * no handler sets a deadline yet. */
int pipeline_deadline(const defn_t *d, hnd_lead_t *lead, const char *kind,
                      int64_t due_ms, int64_t now_ms, hnd_effects_t *fx)
{
    memset(fx, 0, sizeof *fx);
    fx->prev_stage = lead->stage;
    return 0;
}

void pipeline_funnel_check(const defn_t *d, int64_t now_ms,
                           pipeline_counter_fn *get, void *arg,
                           hnd_effects_t *fx)
{
    memset(fx, 0, sizeof *fx);
}
