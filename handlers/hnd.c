/* hnd.c: helpers shared by the handlers (effects, lead attributes). */
#include "hnd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void s_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

hnd_alert_t *hnd_alert_add(hnd_effects_t *fx, const char *kind,
                           const char *topic, int stage, int from_stage)
{
    if (fx->n_alerts == HND_ALERTS_MAX)
        return NULL;
    hnd_alert_t *a = &fx->alerts[fx->n_alerts++];
    memset(a, 0, sizeof *a);
    s_copy(a->kind, sizeof a->kind, kind);
    s_copy(a->topic, sizeof a->topic, topic);
    a->stage = stage;
    a->from_stage = from_stage;
    return a;
}

void hnd_alert_reason(hnd_alert_t *a, const char *fmt, ...)
{
    if (a == NULL || a->n_reasons == HND_REASONS_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->reasons[a->n_reasons++], HND_REASON_LEN, fmt, ap);
    va_end(ap);
}

void hnd_count(hnd_effects_t *fx, int64_t delta, const char *fmt, ...)
{
    char key[HND_COUNTER_KEY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);

    /* One event touches few counters: merge deltas of the same key. */
    for (size_t i = 0; i < fx->n_deltas; i++)
        if (strcmp(fx->deltas[i].key, key) == 0) {
            fx->deltas[i].delta += delta;
            return;
        }
    /* The table is sized for the handlers' worst case; overflowing it is a
     * programming error caught by the unit tests. */
    if (fx->n_deltas == HND_DELTAS_MAX)
        return;
    hnd_delta_t *d = &fx->deltas[fx->n_deltas++];
    memcpy(d->key, key, sizeof key);
    d->delta = delta;
}

const char *hnd_lead_attr(const hnd_lead_t *lead, const char *key)
{
    for (size_t i = 0; i < lead->n_attrs; i++)
        if (strcmp(lead->attrs[i].key, key) == 0)
            return lead->attrs[i].value;
    return NULL;
}

int hnd_lead_set_attr(hnd_lead_t *lead, const char *key, const char *value)
{
    for (size_t i = 0; i < lead->n_attrs; i++)
        if (strcmp(lead->attrs[i].key, key) == 0) {
            s_copy(lead->attrs[i].value, sizeof lead->attrs[i].value, value);
            return 0;
        }
    if (lead->n_attrs == HND_ATTRS_MAX)
        return -1;
    hnd_attr_t *a = &lead->attrs[lead->n_attrs++];
    s_copy(a->key, sizeof a->key, key);
    s_copy(a->value, sizeof a->value, value);
    return 0;
}

void hnd_lead_init(hnd_lead_t *lead, const hnd_event_t *ev)
{
    memset(lead, 0, sizeof *lead);
    s_copy(lead->id, sizeof lead->id, ev->lead_id);
    lead->stage = -1;
    lead->first_seen_ms = ev->at_ms;
    lead->last_event_ms = ev->at_ms;
    lead->stage_entered_at_ms = ev->at_ms;
    lead->first_source = ev->source;
}
