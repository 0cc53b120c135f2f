/* pipeline.c: see pipeline.h. */
#include "pipeline.h"

const hnd_t *const pipeline_default[] = {
    &hnd_attrs,
    &hnd_fit,
    &hnd_stage,
    &hnd_score,
    &hnd_handoff,
    &hnd_qualify,
    &hnd_persona,
    &hnd_quality,
    NULL,
};

int pipeline_apply(const hnd_t *const *pipe, const hnd_event_t *ev,
                   const defn_t *d, bool is_new, hnd_lead_t *lead,
                   hnd_effects_t *fx)
{
    fx->is_new = is_new;
    hnd_effects_reset(fx);
    if (is_new)
        hnd_lead_init(lead, ev);
    fx->prev_stage = lead->stage;

    /* Every handler looks the event's type up: once here. */
    hnd_event_t e = *ev;
    e.type_defn = d;
    e.type_def = defn_type(d, ev->type);
    for (const hnd_t *const *h = pipe; *h != NULL; h++)
        if ((*h)->apply(&e, d, lead, fx) != 0)
            return -1;

    lead->events++;
    if (ev->at_ms > lead->last_event_ms)
        lead->last_event_ms = ev->at_ms;
    return 0;
}

static void s_reset(hnd_effects_t *fx, int stage)
{
    fx->is_new = false;
    fx->prev_stage = stage;
    hnd_effects_reset(fx);
}

int pipeline_deadline(const defn_t *d, hnd_lead_t *lead, const char *kind,
                      int64_t due_ms, int64_t now_ms, hnd_effects_t *fx)
{
    s_reset(fx, lead->stage);
    return h_friction_deadline(d, lead, kind, due_ms, now_ms, fx);
}

void pipeline_funnel_check(const defn_t *d, int64_t now_ms,
                           pipeline_counter_fn *get, void *arg,
                           hnd_effects_t *fx)
{
    s_reset(fx, -1);
    h_friction_check(d, now_ms, get, arg, fx);
}

void pipeline_conversion_window(const defn_t *d, int stage, int64_t today,
                                pipeline_counter_fn *get, void *arg,
                                int64_t *in, int64_t *out)
{
    h_friction_window(d, stage, today, get, arg, in, out);
}
