/* codec.c: see codec.h. */
#include "codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "xalloc.h"

/* The tally kinds by their names in FrictionTally.kind. */
static const char *const s_tally_names[] = {
    [HND_TALLY_STALL] = "stall",
    [HND_TALLY_REGRESSION] = "regression",
    [HND_TALLY_REJECTION] = "handoff_rejected",
    [HND_TALLY_DROPPED] = "dropped",
    [HND_TALLY_DWELL] = "dwell",
    [HND_TALLY_SLA] = "handoff_sla",
};
#define S_TALLY_N (sizeof s_tally_names / sizeof s_tally_names[0])

static const char *s_tally_name(int kind)
{
    return kind > 0 && (size_t)kind < S_TALLY_N ? s_tally_names[kind] : NULL;
}

/* The kind named name, 0 for none. */
static int s_tally_kind(const char *name)
{
    for (size_t k = 1; name && k < S_TALLY_N; k++)
        if (strcmp(s_tally_names[k], name) == 0)
            return (int)k;
    return 0;
}

void codec_lead_to_pb(const hnd_lead_t *lead, const defn_t *d,
                      Funnel__V1__Lead *out, codec_lead_scratch_t *scratch)
{
    codec_lead_to_pb_at(lead, d, lead->last_event_ms, out, scratch);
}

void codec_lead_to_pb_at(const hnd_lead_t *lead, const defn_t *d,
                         int64_t as_of_ms, Funnel__V1__Lead *out,
                         codec_lead_scratch_t *scratch)
{
    as_of_ms = hnd_scores_as_of(lead, as_of_ms);
    funnel__v1__lead__init(out);
    out->id = (char *)lead->id;
    out->stage = lead->stage >= 0 && (size_t)lead->stage < d->n_stages
                     ? d->stages[lead->stage].name
                     : (char *)"";
    out->stage_entered_at_ms = lead->stage_entered_at_ms;
    out->first_seen_ms = lead->first_seen_ms;
    out->last_event_ms = lead->last_event_ms;
    out->engagement = hnd_engagement_at(d, lead, as_of_ms);
    out->fit = lead->fit;
    out->total = lead->fit + out->engagement;
    out->scores_as_of_ms = as_of_ms;
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

    size_t ne = 0, na = 0;
    for (size_t s = 0; s < d->n_stages && s < 32; s++) {
        if (lead->entered & (1u << s))
            scratch->entered[ne++] = d->stages[s].name;
        if (lead->advanced & (1u << s))
            scratch->advanced[na++] = d->stages[s].name;
    }
    out->n_entered = ne;
    out->entered = scratch->entered;
    out->n_advanced = na;
    out->advanced = scratch->advanced;

    for (size_t i = 0; i < lead->n_ledger; i++) {
        const hnd_ledger_t *e = &lead->ledger[i];
        Funnel__V1__LedgerEntry *p = &scratch->ledger[i];
        funnel__v1__ledger_entry__init(p);
        p->kind = e->kind == HND_LEDGER_FIT ? (char *)"fit" : (char *)"engagement";
        p->rule = (char *)e->rule;
        p->event_id = (char *)e->event_id;
        p->seq = e->seq;
        p->at_ms = e->at_ms;
        p->points = e->points;
        p->current = hnd_ledger_value_at(d, lead, e, as_of_ms);
        scratch->ledger_ptrs[i] = p;
    }
    out->n_ledger = lead->n_ledger;
    out->ledger = scratch->ledger_ptrs;

    const hnd_carry_t *carry[2] = { &lead->older_fit, &lead->older_engagement };
    Funnel__V1__LedgerCarry *pc[2] = { &scratch->older_fit,
                                       &scratch->older_engagement };
    for (int k = 0; k < 2; k++) {
        funnel__v1__ledger_carry__init(pc[k]);
        pc[k]->entries = carry[k]->entries;
        pc[k]->points = carry[k]->points;
        pc[k]->value = carry[k]->value;
        pc[k]->value_at_ms = carry[k]->value_at_ms;
        pc[k]->current = hnd_carry_value_at(d, lead,
                                            k == 0 ? HND_LEDGER_FIT
                                                   : HND_LEDGER_ENGAGEMENT,
                                            as_of_ms);
    }
    out->older_fit = pc[0];
    out->older_engagement = pc[1];

    for (size_t i = 0; i < lead->n_counts; i++) {
        Funnel__V1__BehaviourCount *c = &scratch->counts[i];
        funnel__v1__behaviour_count__init(c);
        c->type = (char *)lead->counts[i].type;
        c->count = lead->counts[i].n;
        scratch->count_ptrs[i] = c;
    }
    out->n_counts = lead->n_counts;
    out->counts = scratch->count_ptrs;

    for (size_t i = 0; i < lead->n_handoffs; i++) {
        const hnd_handoff_rec_t *h = &lead->handoffs[i];
        Funnel__V1__HandoffRecord *r = &scratch->handoffs[i];
        funnel__v1__handoff_record__init(r);
        r->status = (Funnel__V1__HandoffStatus)h->status;
        r->at_ms = h->at_ms;
        r->answered_at_ms = h->answered_at_ms;
        r->rule = (char *)h->rule;
        r->reason = (char *)h->reason;
        r->fit = h->fit;
        r->engagement = h->engagement;
        scratch->handoff_ptrs[i] = r;
    }
    out->n_handoffs = lead->n_handoffs;
    out->handoffs = scratch->handoff_ptrs;

    for (size_t i = 0; i < lead->n_pchanges; i++) {
        const hnd_pchange_t *c = &lead->pchanges[i];
        Funnel__V1__PersonaChange *r = &scratch->pchanges[i];
        funnel__v1__persona_change__init(r);
        r->from = (char *)c->from;
        r->to = (char *)c->to;
        r->at_ms = c->at_ms;
        r->seq = c->seq;
        scratch->pchange_ptrs[i] = r;
    }
    out->n_persona_history = lead->n_pchanges;
    out->persona_history = scratch->pchange_ptrs;
    out->handoffs_sent = lead->handoffs_sent;
    out->handoffs_accepted = lead->handoffs_accepted;
    out->handoffs_rejected = lead->handoffs_rejected;
    out->handoffs_recycled = lead->handoffs_recycled;
    out->handoffs_requalified = lead->handoffs_requalified;

    for (size_t i = 0; i < lead->n_friction; i++) {
        const hnd_friction_t *f = &lead->friction[i];
        Funnel__V1__FrictionRecord *r = &scratch->friction[i];
        funnel__v1__friction_record__init(r);
        r->kind = (char *)f->kind;
        r->stage = f->stage >= 0 && (size_t)f->stage < d->n_stages
                       ? d->stages[f->stage].name
                       : (char *)"";
        r->at_ms = f->at_ms;
        r->duration_ms = f->duration_ms;
        r->detail = (char *)f->detail;
        scratch->friction_ptrs[i] = r;
    }
    out->n_friction = lead->n_friction;
    out->friction = scratch->friction_ptrs;
    out->frictions = lead->frictions;
    out->stalled = lead->stalled;
    out->sla_breached = lead->sla_breached;
    size_t nt = 0;
    for (size_t i = 0; i < lead->n_tally; i++) {
        const hnd_tally_t *t = &lead->tally[i];
        const char *kind = s_tally_name(t->kind);
        if (!kind || (t->stage != HND_TALLY_NO_STAGE && t->stage >= d->n_stages))
            continue;
        Funnel__V1__FrictionTally *r = &scratch->tally[nt];
        funnel__v1__friction_tally__init(r);
        r->kind = (char *)kind;
        r->stage = t->stage == HND_TALLY_NO_STAGE ? (char *)""
                                                  : d->stages[t->stage].name;
        r->bucket = t->bucket;
        r->count = t->n;
        scratch->tally_ptrs[nt++] = r;
    }
    for (size_t i = 0; i < lead->n_rtally; i++) {
        Funnel__V1__FrictionTally *r = &scratch->tally[nt];
        funnel__v1__friction_tally__init(r);
        r->kind = (char *)"reason";
        r->stage = (char *)lead->rtally[i].reason;
        r->count = lead->rtally[i].n;
        scratch->tally_ptrs[nt++] = r;
    }
    out->n_friction_tally = nt;
    out->friction_tally = scratch->tally_ptrs;

    const hnd_quality_t *q = &lead->quality;
    Funnel__V1__LeadQuality *lq = &scratch->quality;
    funnel__v1__lead_quality__init(lq);
    lq->outcome = q->outcome == HND_OUTCOME_WON    ? (char *)"won"
                  : q->outcome == HND_OUTCOME_LOST ? (char *)"lost"
                                                   : (char *)"";
    lq->outcome_at_ms = q->outcome_at_ms;
    lq->outcome_after_handoff = q->outcome_after_handoff;
    lq->handed_off = q->handed_off;
    lq->handoff_at_ms = q->handoff_at_ms;
    lq->rule = (char *)q->rule;
    lq->booked = q->booked;
    out->quality = lq;
}

/* The buffers codec_lead_pack, codec_lead_pack_at and codec_lead_unpack
 * reuse from one call to the next: one set per thread that applies
 * events (the loop, the live partition, each shadow draft's), made at its
 * first call and freed when it ends. */
typedef struct {
    uint8_t pack[CODEC_LEAD_MAX];
    uint8_t pack_at[CODEC_LEAD_MAX];
    arena_t *arena;
} s_scratch_t;

static pthread_key_t s_scratch_key;
static pthread_once_t s_scratch_once = PTHREAD_ONCE_INIT;

static void s_scratch_free(void *p)
{
    s_scratch_t *t = p;
    arena_destroy(&t->arena);
    free(t);
}

static void s_scratch_init(void)
{
    if (pthread_key_create(&s_scratch_key, s_scratch_free) != 0)
        abort();
}

static s_scratch_t *s_scratch(void)
{
    pthread_once(&s_scratch_once, s_scratch_init);
    s_scratch_t *t = pthread_getspecific(s_scratch_key);
    if (t == NULL) {
        t = xcalloc(1, sizeof *t);
        t->arena = arena_new(256 * 1024);
        pthread_setspecific(s_scratch_key, t);
    }
    return t;
}

size_t codec_lead_pack(const hnd_lead_t *lead, const defn_t *d, const uint8_t **buf)
{
    /* Every string of a Lead comes from the lead's fixed-size fields or the
     * definition's names, so its encoding has a bound (CODEC_LEAD_MAX,
     * checked by test_codec on a lead filled to every limit): one pass of
     * packing, without measuring first, into a buffer reused per event. */
    uint8_t *out = s_scratch()->pack;
    Funnel__V1__Lead pb;
    codec_lead_scratch_t scratch;
    codec_lead_to_pb(lead, d, &pb, &scratch);
    *buf = out;
    return funnel__v1__lead__pack(&pb, out);
}

size_t codec_lead_pack_into(const hnd_lead_t *lead, const defn_t *d, uint8_t *out)
{
    Funnel__V1__Lead pb;
    codec_lead_scratch_t scratch;
    codec_lead_to_pb(lead, d, &pb, &scratch);
    return funnel__v1__lead__pack(&pb, out);
}

size_t codec_lead_pack_at(const hnd_lead_t *lead, const defn_t *d, int64_t as_of_ms,
                          const uint8_t **buf)
{
    /* A buffer of its own: the caller holds codec_lead_pack()'s. */
    uint8_t *out = s_scratch()->pack_at;
    Funnel__V1__Lead pb;
    codec_lead_scratch_t scratch;
    codec_lead_to_pb_at(lead, d, as_of_ms, &pb, &scratch);
    *buf = out;
    return funnel__v1__lead__pack(&pb, out);
}

static void s_copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* Decoding a lead happens once per event: its allocations come from an
 * arena of the thread's (s_scratch) that the next decode resets, instead
 * of malloc and free (a lead larger than the first block grows it for the
 * one decode). */
static void s_lead_from_pb(const Funnel__V1__Lead *pb, const defn_t *d,
                           hnd_lead_t *lead);

int codec_lead_unpack(const void *buf, size_t len, const defn_t *d,
                      hnd_lead_t *lead)
{
    arena_t *arena = s_scratch()->arena;
    arena_reset(arena);
    ProtobufCAllocator alloc = arena_pb_allocator(arena);
    Funnel__V1__Lead *pb = funnel__v1__lead__unpack(&alloc, len, buf);
    if (pb == NULL)
        return -1;
    /* pb stays in the arena until the next decode resets it. */
    s_lead_from_pb(pb, d, lead);
    return 0;
}

int codec_lead_unpack_in(arena_t *a, const void *buf, size_t len, const defn_t *d,
                         hnd_lead_t *lead)
{
    arena_reset(a);
    ProtobufCAllocator alloc = arena_pb_allocator(a);
    Funnel__V1__Lead *pb = funnel__v1__lead__unpack(&alloc, len, buf);
    if (pb == NULL)
        return -1;
    s_lead_from_pb(pb, d, lead);
    return 0;
}

int codec_lead_decode(const void *buf, size_t len, const defn_t *d,
                      hnd_lead_t *lead)
{
    Funnel__V1__Lead *pb = funnel__v1__lead__unpack(NULL, len, buf);
    if (pb == NULL)
        return -1;
    s_lead_from_pb(pb, d, lead);
    funnel__v1__lead__free_unpacked(pb, NULL);
    return 0;
}

static void s_lead_from_pb(const Funnel__V1__Lead *pb, const defn_t *d,
                           hnd_lead_t *lead)
{
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
    for (size_t i = 0; i < pb->n_entered; i++) {
        int s = defn_stage_index(d, pb->entered[i]);
        if (s >= 0 && s < 32)
            lead->entered |= 1u << s;
    }
    /* A record from before stages were tracked entered its current one. */
    if (lead->entered == 0 && lead->stage >= 0)
        lead->entered = 1u << lead->stage;
    for (size_t i = 0; i < pb->n_advanced; i++) {
        int s = defn_stage_index(d, pb->advanced[i]);
        if (s >= 0 && s < 32)
            lead->advanced |= 1u << s;
    }
    for (size_t i = 0; i < pb->n_ledger && i < HND_LEDGER_MAX; i++) {
        const Funnel__V1__LedgerEntry *p = pb->ledger[i];
        hnd_ledger_t *e = &lead->ledger[lead->n_ledger++];
        e->kind = p->kind && strcmp(p->kind, "fit") == 0 ? HND_LEDGER_FIT
                                                         : HND_LEDGER_ENGAGEMENT;
        s_copy(e->rule, sizeof e->rule, p->rule);
        s_copy(e->event_id, sizeof e->event_id, p->event_id);
        e->seq = p->seq;
        e->at_ms = p->at_ms;
        e->points = p->points;
    }
    const Funnel__V1__LedgerCarry *pc[2] = { pb->older_fit, pb->older_engagement };
    hnd_carry_t *carry[2] = { &lead->older_fit, &lead->older_engagement };
    for (int k = 0; k < 2; k++) {
        if (!pc[k])
            continue;
        carry[k]->entries = pc[k]->entries;
        carry[k]->points = pc[k]->points;
        carry[k]->value = pc[k]->value;
        carry[k]->value_at_ms = pc[k]->value_at_ms;
    }
    for (size_t i = 0; i < pb->n_counts && i < HND_COUNTS_MAX; i++) {
        hnd_counter_t *c = &lead->counts[lead->n_counts++];
        s_copy(c->type, sizeof c->type, pb->counts[i]->type);
        c->n = pb->counts[i]->count > UINT32_MAX ? UINT32_MAX
                                                 : (uint32_t)pb->counts[i]->count;
    }
    for (size_t i = 0; i < pb->n_handoffs && i < HND_HANDOFFS_MAX; i++) {
        const Funnel__V1__HandoffRecord *r = pb->handoffs[i];
        hnd_handoff_rec_t *h = &lead->handoffs[lead->n_handoffs++];
        h->status = (hnd_handoff_t)r->status;
        h->at_ms = r->at_ms;
        h->answered_at_ms = r->answered_at_ms;
        s_copy(h->rule, sizeof h->rule, r->rule);
        s_copy(h->reason, sizeof h->reason, r->reason);
        h->fit = r->fit;
        h->engagement = r->engagement;
    }
    for (size_t i = 0; i < pb->n_persona_history && i < HND_PCHANGES_MAX; i++) {
        const Funnel__V1__PersonaChange *r = pb->persona_history[i];
        hnd_pchange_t *c = &lead->pchanges[lead->n_pchanges++];
        s_copy(c->from, sizeof c->from, r->from);
        s_copy(c->to, sizeof c->to, r->to);
        c->at_ms = r->at_ms;
        c->seq = r->seq;
    }
    lead->handoffs_sent = pb->handoffs_sent;
    lead->handoffs_accepted = pb->handoffs_accepted;
    lead->handoffs_rejected = pb->handoffs_rejected;
    lead->handoffs_recycled = pb->handoffs_recycled;
    lead->handoffs_requalified = pb->handoffs_requalified;
    for (size_t i = 0; i < pb->n_friction && i < HND_FRICTION_MAX; i++) {
        const Funnel__V1__FrictionRecord *r = pb->friction[i];
        hnd_friction_t *f = &lead->friction[lead->n_friction++];
        s_copy(f->kind, sizeof f->kind, r->kind);
        f->stage = r->stage && r->stage[0] ? defn_stage_index(d, r->stage) : -1;
        f->at_ms = r->at_ms;
        f->duration_ms = r->duration_ms;
        s_copy(f->detail, sizeof f->detail, r->detail);
    }
    lead->frictions = pb->frictions;
    lead->stalled = pb->stalled;
    lead->sla_breached = pb->sla_breached;
    for (size_t i = 0; i < pb->n_friction_tally; i++) {
        const Funnel__V1__FrictionTally *r = pb->friction_tally[i];
        if (r->kind && strcmp(r->kind, "reason") == 0) {
            if (lead->n_rtally == HND_RTALLY_MAX)
                continue;
            hnd_rtally_t *t = &lead->rtally[lead->n_rtally++];
            s_copy(t->reason, sizeof t->reason, r->stage);
            t->n = r->count;
            continue;
        }
        int kind = s_tally_kind(r->kind);
        int ts = r->stage && r->stage[0] ? defn_stage_index(d, r->stage)
                                         : HND_TALLY_NO_STAGE;
        /* A stage the definition no longer has: its counts stay put. */
        if (kind == 0 || ts < 0 || lead->n_tally == HND_TALLY_MAX)
            continue;
        hnd_tally_t *t = &lead->tally[lead->n_tally++];
        t->kind = (uint8_t)kind;
        t->stage = (uint8_t)ts;
        t->bucket = (uint16_t)r->bucket;
        t->n = r->count;
    }
    if (pb->quality) {
        const Funnel__V1__LeadQuality *lq = pb->quality;
        hnd_quality_t *q = &lead->quality;
        q->outcome = lq->outcome && strcmp(lq->outcome, "won") == 0 ? HND_OUTCOME_WON
                     : lq->outcome && strcmp(lq->outcome, "lost") == 0
                         ? HND_OUTCOME_LOST
                         : HND_OUTCOME_OPEN;
        q->outcome_at_ms = lq->outcome_at_ms;
        q->outcome_after_handoff = lq->outcome_after_handoff;
        q->handed_off = lq->handed_off;
        q->handoff_at_ms = lq->handoff_at_ms;
        s_copy(q->rule, sizeof q->rule, lq->rule);
        q->booked = lq->booked;
    }
    hnd_lead_loaded(d, lead);
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

/* A protobuf varint at *p (below end): its value, *p moved past it.
 * Returns 0, or -1 when it is malformed. */
static int s_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* One field of a protobuf message, as s_field_next reads it. */
typedef struct {
    uint64_t num;        /* the field's number */
    unsigned wire;       /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    uint64_t v;          /* wire type 0: the varint */
    const uint8_t *data; /* types 1, 5: its 8 or 4 bytes; type 2: its bytes */
    size_t n;            /* type 2: how many */
} s_field_t;

/* The next field of a protobuf message at *p (below end) in *f; *p moves
 * past it. Hand-written, as are the scans below, because they read one
 * or two fields of a message without unpacking (and allocating) the rest
 * of it. Returns 0, or -1 when the field is malformed or of a wire type
 * proto3 does not write (groups). */
static int s_field_next(const uint8_t **p, const uint8_t *end, s_field_t *f)
{
    uint64_t tag;
    if (s_varint(p, end, &tag) == -1)
        return -1;
    f->num = tag >> 3;
    f->wire = (unsigned)(tag & 7);
    f->v = 0;
    f->data = *p;
    f->n = 0;
    switch (f->wire) {
    case 0:
        return s_varint(p, end, &f->v);
    case 1:
    case 5:
        f->n = f->wire == 1 ? 8 : 4;
        break;
    case 2:
        if (s_varint(p, end, &f->v) == -1)
            return -1;
        f->data = *p;
        f->n = (size_t)f->v;
        break;
    default:
        return -1;
    }
    if (f->v > (uint64_t)(end - *p) || f->n > (size_t)(end - *p))
        return -1;
    *p += f->n;
    return 0;
}

int codec_index_batch(const uint8_t *buf, size_t len, size_t n, uint32_t *off,
                          uint32_t *lens)
{
    const uint8_t *p = buf, *end = buf + len;
    size_t k = 0;
    if (len > UINT32_MAX)
        return -1;
    while (p < end) {
        s_field_t f;
        if (s_field_next(&p, end, &f) == -1)
            return -1;
        if (f.wire == 2 && f.num == 1) {
            if (k == n)
                return -1;
            off[k] = (uint32_t)(f.data - buf);
            lens[k] = (uint32_t)f.n;
            k++;
        }
    }
    return k == n ? 0 : -1;
}

int codec_event_lead_peek(const void *buf, size_t len, const uint8_t **id, size_t *n)
{
    const uint8_t *p = buf, *end = p + len;
    bool found = false;
    while (p < end) {
        s_field_t f;
        if (s_field_next(&p, end, &f) == -1)
            return -1;
        if (f.wire == 2 && f.num == 2) {
            /* The last one is the field's value, as when decoded. */
            *id = f.data;
            *n = f.n;
            found = true;
        }
    }
    return found ? 0 : -1;
}

/* Lead's field numbers that a summary reads (proto/funnel.proto; a field
 * number never changes there, and test_codec checks the summary against
 * protobuf-c's own decoding). */
enum {
    S_LEAD_ID = 1,
    S_LEAD_STAGE = 2,
    S_LEAD_STAGE_ENTERED = 3,
    S_LEAD_FIRST_SEEN = 4,
    S_LEAD_LAST_EVENT = 5,
    S_LEAD_ENGAGEMENT = 6,
    S_LEAD_FIT = 7,
    S_LEAD_PERSONA = 9,
    S_LEAD_QUALIFIED = 10,
    S_LEAD_HANDOFF = 11,
    S_LEAD_EVENTS = 14,
    S_LEAD_FIRST_SOURCE = 15,
    S_LEAD_STALLED = 30,
};

static double s_double_le(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = (u << 8) | p[i];
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

int codec_lead_summary(const void *buf, size_t len, codec_lead_summary_t *out)
{
    const uint8_t *p = buf, *end = p + len;
    memset(out, 0, sizeof *out);
    out->id = out->stage = out->persona = "";
    while (p < end) {
        s_field_t f;
        if (s_field_next(&p, end, &f) == -1)
            return -1;
        uint64_t v = f.v;
        if (f.wire == 0) {
            switch (f.num) {
            case S_LEAD_STAGE_ENTERED: out->stage_entered_at_ms = (int64_t)v; break;
            case S_LEAD_FIRST_SEEN: out->first_seen_ms = (int64_t)v; break;
            case S_LEAD_LAST_EVENT: out->last_event_ms = (int64_t)v; break;
            case S_LEAD_QUALIFIED: out->qualified = v != 0; break;
            case S_LEAD_HANDOFF: out->handoff_status = (int)v; break;
            case S_LEAD_EVENTS: out->events = v; break;
            case S_LEAD_FIRST_SOURCE: out->first_source = (int)v; break;
            case S_LEAD_STALLED: out->stalled = v != 0; break;
            default: break;
            }
        } else if (f.wire == 1) {
            if (f.num == S_LEAD_ENGAGEMENT)
                out->engagement = s_double_le(f.data);
            else if (f.num == S_LEAD_FIT)
                out->fit = s_double_le(f.data);
        } else if (f.wire == 2) {
            if (f.num == S_LEAD_ID) {
                out->id = (const char *)f.data;
                out->id_len = f.n;
            } else if (f.num == S_LEAD_STAGE) {
                out->stage = (const char *)f.data;
                out->stage_len = f.n;
            } else if (f.num == S_LEAD_PERSONA) {
                out->persona = (const char *)f.data;
                out->persona_len = f.n;
            }
        }
    }
    return 0;
}

size_t codec_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

uint8_t *codec_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Alert is written by hand (see codec.h): its field numbers, and the
 * wire types of protobuf (0 varint, 2 length-delimited). */
enum {
    S_AL_KIND = 1, S_AL_TOPIC = 2, S_AL_LEAD_ID = 3, S_AL_AT_MS = 4, S_AL_STAGE = 5,
    S_AL_FROM_STAGE = 6, S_AL_LEAD = 7, S_AL_REASONS = 8, S_AL_EVENT_ID = 9,
    S_AL_SEQ = 10, S_AL_ALERT_SEQ = 11,
};
#define S_TAG(field, wire) ((uint8_t)((field) << 3 | (wire)))

static size_t s_len_field_size(size_t n)
{
    return 1 + codec_varint_size(n) + n;
}

/* A string field, left out when empty (proto3). */
static size_t s_str_size(size_t n)
{
    return n ? s_len_field_size(n) : 0;
}

static uint8_t *s_put_bytes(uint8_t *p, int field, const void *data, size_t n)
{
    *p++ = S_TAG(field, 2);
    p = codec_varint_put(p, n);
    memcpy(p, data, n);
    return p + n;
}

static uint8_t *s_put_str(uint8_t *p, int field, const char *s, size_t n)
{
    return n ? s_put_bytes(p, field, s, n) : p;
}

/* A varint field, left out when 0; an int64 goes as its two's complement
 * (ten bytes when negative), as protobuf has it. */
static size_t s_u64_size(uint64_t v)
{
    return v ? 1 + codec_varint_size(v) : 0;
}

static uint8_t *s_put_u64(uint8_t *p, int field, uint64_t v)
{
    if (v == 0)
        return p;
    *p++ = S_TAG(field, 0);
    return codec_varint_put(p, v);
}

static const char *s_nz(const char *s)
{
    return s ? s : "";
}

void codec_alert_prepare(codec_alert_wire_t *w, const hnd_alert_t *a, const defn_t *d,
                         const hnd_lead_t *lead, const uint8_t *lead_pb, size_t lead_len,
                         const hnd_event_t *ev, uint64_t seq, uint64_t alert_seq,
                         int64_t at_ms)
{
    int64_t t = a->at_ms ? a->at_ms : at_ms;
    if (lead && a->at_ms == 0 && lead->last_event_ms > t)
        t = lead->last_event_ms;
    if (a->at_ms == 0 && ev && ev->at_ms > t)
        t = ev->at_ms;
    const char *strs[CODEC_ALERT_STRS] = {
        s_nz(a->kind), s_nz(a->topic), lead ? lead->id : "",
        a->stage >= 0 && (size_t)a->stage < d->n_stages ? d->stages[a->stage].name : "",
        a->from_stage >= 0 && (size_t)a->from_stage < d->n_stages
            ? d->stages[a->from_stage].name : "",
        ev ? s_nz(ev->id) : "",
    };
    w->size = 0;
    for (int i = 0; i < CODEC_ALERT_STRS; i++) {
        w->str[i] = strs[i];
        w->str_len[i] = strlen(strs[i]);
        w->size += s_str_size(w->str_len[i]);
    }
    w->n_reasons = a->n_reasons < HND_REASONS_MAX ? a->n_reasons : HND_REASONS_MAX;
    for (size_t r = 0; r < w->n_reasons; r++) {
        w->reasons[r] = a->reasons[r];
        w->reason_len[r] = strlen(a->reasons[r]);
        w->size += s_len_field_size(w->reason_len[r]); /* repeated: empty ones too */
    }
    w->at_ms = t;
    w->seq = seq;
    w->alert_seq = alert_seq;
    w->lead_pb = lead ? lead_pb : NULL;
    w->lead_len = lead ? lead_len : 0;
    w->size += s_u64_size((uint64_t)t) + s_u64_size(seq) + s_u64_size(alert_seq);
    if (w->lead_pb)
        w->size += s_len_field_size(w->lead_len);
}

/* Written in field order; the lead snapshot (most of an alert) is copied
 * in as it was encoded for the store, not built and packed again. */
void codec_alert_write(const codec_alert_wire_t *w, uint8_t *out)
{
    uint8_t *p = out;
    p = s_put_str(p, S_AL_KIND, w->str[0], w->str_len[0]);
    p = s_put_str(p, S_AL_TOPIC, w->str[1], w->str_len[1]);
    p = s_put_str(p, S_AL_LEAD_ID, w->str[2], w->str_len[2]);
    p = s_put_u64(p, S_AL_AT_MS, (uint64_t)w->at_ms);
    p = s_put_str(p, S_AL_STAGE, w->str[3], w->str_len[3]);
    p = s_put_str(p, S_AL_FROM_STAGE, w->str[4], w->str_len[4]);
    if (w->lead_pb)
        p = s_put_bytes(p, S_AL_LEAD, w->lead_pb, w->lead_len);
    for (size_t r = 0; r < w->n_reasons; r++)
        p = s_put_bytes(p, S_AL_REASONS, w->reasons[r], w->reason_len[r]);
    p = s_put_str(p, S_AL_EVENT_ID, w->str[5], w->str_len[5]);
    p = s_put_u64(p, S_AL_SEQ, w->seq);
    p = s_put_u64(p, S_AL_ALERT_SEQ, w->alert_seq);
}

uint8_t *codec_alert_pack(const hnd_alert_t *a, const defn_t *d, const hnd_event_t *ev,
                          uint64_t seq, int64_t at_ms, size_t *len)
{
    codec_alert_wire_t w;
    codec_alert_prepare(&w, a, d, NULL, NULL, 0, ev, seq, 0, at_ms);
    uint8_t *buf = xmalloc(w.size ? w.size : 1);
    codec_alert_write(&w, buf);
    *len = w.size;
    return buf;
}

uint8_t *codec_notice_pack(const char *kind, const char *topic, int64_t at_ms,
                           char **reasons, size_t n_reasons,
                           const char *event_id, size_t *len)
{
    Funnel__V1__Alert al;
    funnel__v1__alert__init(&al);
    al.kind = (char *)kind;
    al.topic = (char *)topic;
    al.at_ms = at_ms;
    al.reasons = reasons;
    al.n_reasons = n_reasons;
    if (event_id)
        al.event_id = (char *)event_id;
    *len = funnel__v1__alert__get_packed_size(&al);
    uint8_t *buf = xmalloc(*len);
    funnel__v1__alert__pack(&al, buf);
    return buf;
}
