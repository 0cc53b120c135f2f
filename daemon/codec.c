/* codec.c: see codec.h. */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

void codec_lead_to_pb(const hnd_lead_t *lead, const defn_t *d,
                      Funnel__V1__Lead *out, codec_lead_scratch_t *scratch)
{
    funnel__v1__lead__init(out);
    out->id = (char *)lead->id;
    out->stage = lead->stage >= 0 && (size_t)lead->stage < d->n_stages
                     ? d->stages[lead->stage].name
                     : (char *)"";
    out->stage_entered_at_ms = lead->stage_entered_at_ms;
    out->first_seen_ms = lead->first_seen_ms;
    out->last_event_ms = lead->last_event_ms;
    out->engagement = lead->engagement;
    out->fit = lead->fit;
    out->total = lead->fit + lead->engagement;
    out->persona = (char *)lead->persona;
    out->qualified = lead->qualified;
    out->handoff_status = (Funnel__V1__HandoffStatus)lead->handoff;
    out->handoff_at_ms = lead->handoff_at_ms;
    out->events = lead->events;
    out->first_source = (Funnel__V1__Source)lead->first_source;
    for (size_t i = 0; i < lead->n_attrs; i++) {
        Funnel__V1__Lead__AttrsEntry *e = &scratch->entries[i];
        funnel__v1__lead__attrs_entry__init(e);
        e->key = (char *)lead->attrs[i].key;
        e->value = (char *)lead->attrs[i].value;
        scratch->entry_ptrs[i] = e;
    }
    out->n_attrs = lead->n_attrs;
    out->attrs = scratch->entry_ptrs;
    size_t n = 0;
    for (size_t s = 0; s < d->n_stages && s < 32; s++)
        if (lead->skipped & (1u << s))
            scratch->skipped[n++] = d->stages[s].name;
    out->n_skipped = n;
    out->skipped = scratch->skipped;
}

size_t codec_lead_pack(const hnd_lead_t *lead, const defn_t *d, uint8_t **buf)
{
    Funnel__V1__Lead pb;
    codec_lead_scratch_t scratch;
    codec_lead_to_pb(lead, d, &pb, &scratch);
    size_t len = funnel__v1__lead__get_packed_size(&pb);
    *buf = xmalloc(len);
    funnel__v1__lead__pack(&pb, *buf);
    return len;
}

static void s_copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

int codec_lead_unpack(const void *buf, size_t len, const defn_t *d,
                      hnd_lead_t *lead)
{
    Funnel__V1__Lead *pb = funnel__v1__lead__unpack(NULL, len, buf);
    if (pb == NULL)
        return -1;
    memset(lead, 0, sizeof *lead);
    s_copy(lead->id, sizeof lead->id, pb->id);
    int stage = defn_stage_index(d, pb->stage);
    lead->stage = stage >= 0 ? stage : 0;
    lead->stage_entered_at_ms = pb->stage_entered_at_ms;
    lead->first_seen_ms = pb->first_seen_ms;
    lead->last_event_ms = pb->last_event_ms;
    lead->engagement = pb->engagement;
    lead->fit = pb->fit;
    s_copy(lead->persona, sizeof lead->persona, pb->persona);
    lead->qualified = pb->qualified;
    lead->handoff = (hnd_handoff_t)pb->handoff_status;
    lead->handoff_at_ms = pb->handoff_at_ms;
    lead->events = pb->events;
    lead->first_source = (hnd_source_t)pb->first_source;
    for (size_t i = 0; i < pb->n_attrs && i < HND_ATTRS_MAX; i++) {
        s_copy(lead->attrs[i].key, sizeof lead->attrs[i].key, pb->attrs[i]->key);
        s_copy(lead->attrs[i].value, sizeof lead->attrs[i].value,
               pb->attrs[i]->value);
        lead->n_attrs++;
    }
    for (size_t i = 0; i < pb->n_skipped; i++) {
        int s = defn_stage_index(d, pb->skipped[i]);
        if (s >= 0 && s < 32)
            lead->skipped |= 1u << s;
    }
    funnel__v1__lead__free_unpacked(pb, NULL);
    return 0;
}

void codec_event_view(const Funnel__V1__Event *ev, hnd_kv_t *kv,
                      hnd_event_t *out)
{
    memset(out, 0, sizeof *out);
    out->id = ev->id;
    out->lead_id = ev->lead_id;
    out->type = ev->type;
    out->source = (hnd_source_t)ev->source;
    out->at_ms = ev->occurred_at_ms;
    out->value = ev->value;
    for (size_t i = 0; i < ev->n_attrs; i++) {
        kv[i].key = ev->attrs[i]->key;
        kv[i].value = ev->attrs[i]->value;
    }
    out->attrs = kv;
    out->n_attrs = ev->n_attrs;
}
