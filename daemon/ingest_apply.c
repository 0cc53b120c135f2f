/* ingest_apply.c: see ingest.h. Applying one logged event to the state
 * (the handlers' effects, its alerts numbered and stored) and the work that
 * ends a group (the funnel-wide conversion check, alert retention): what
 * the loop thread, the partition thread and replay share. Intake, group
 * commit and Acks are in ingest.c. */
#include "ingest_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "log.h"
#include "pipeline.h"
#include "strcopy.h"
#include "xalloc.h"

/* Count fx's alerts; with `stored` (the alerts of a logged entry), number
 * each (alert_seq) and store it in the open group, and queue those some
 * subscriber wants for publication after the commit (a funnel-wide alert,
 * not stored, is encoded only when wanted). lead and ev may be NULL for
 * alerts about the funnel as a whole; at_ms is their time then. lead_pb
 * (lead_len bytes) is the lead's encoding when the caller has it (NULL when
 * every alert of fx is no_lead), embedded in each alert but the no_lead
 * ones. */
static void s_queue_alerts(ingest_t *self, const defn_t *d,
                           const hnd_effects_t *fx, const hnd_lead_t *lead,
                           const uint8_t *lead_pb, size_t lead_len,
                           const hnd_event_t *ev, uint64_t seq, int64_t at_ms,
                           bool stored)
{
    for (size_t i = 0; i < fx->n_alerts; i++) {
        const hnd_alert_t *a = &fx->alerts[i];
        store_stats(self->store)->alerts++;
        /* On a partition thread every alert is kept: the loop, which
         * follows the subscriptions, decides when it publishes them. */
        bool wanted = self->split || ingest_wanted(self, a->topic);
        if (!wanted)
            metrics_alert_unwanted(self->opts.metrics);
        if (!stored && !wanted)
            continue;
        uint8_t *buf;
        size_t len;
        if (stored) {
            /* Written straight into the store; stamped with the watermark,
             * which never goes back, so retention removes a prefix of the
             * stream. */
            codec_alert_wire_t w;
            uint64_t alert_seq;
            codec_alert_prepare(&w, a, d, lead, a->no_lead ? NULL : lead_pb,
                                a->no_lead ? 0 : lead_len, ev, seq,
                                store_alert_next(self->store, seq), at_ms);
            uint8_t *at = store_alert_reserve(self->store, a->topic,
                                              store_watermark(self->store), w.size,
                                              &alert_seq);
            if (at == NULL)
                return; /* the store error is sticky: the group fails */
            codec_alert_write(&w, at);
            if (!wanted)
                continue;
            buf = xmalloc(w.size ? w.size : 1);
            memcpy(buf, at, w.size);
            len = w.size;
        } else {
            buf = codec_alert_pack(a, d, ev, seq, at_ms, &len);
        }
        if (self->n_out == self->cap_out) {
            self->cap_out = self->cap_out ? 2 * self->cap_out : 64;
            self->out = xrealloc(self->out, self->cap_out * sizeof *self->out);
        }
        ingest_alert_t *o = &self->out[self->n_out++];
        strcopy(o->topic, sizeof o->topic, a->topic);
        o->buf = buf;
        o->len = len;
        o->log_seq = seq;
    }
}

/* Whether some alert of fx carries the lead's snapshot. */
static bool s_wants_lead(const hnd_effects_t *fx)
{
    for (size_t i = 0; i < fx->n_alerts; i++)
        if (!fx->alerts[i].no_lead)
            return true;
    return false;
}

/* Apply fx's counter deltas, deadlines and marks for lead_id (NULL: the
 * funnel as a whole, which has counters only). */
static void s_apply_effects(ingest_t *self, const char *lead_id,
                            const hnd_effects_t *fx)
{
    /* The handlers hashed every key already (FNV-1a, as the store does). */
    for (size_t i = 0; i < fx->n_deltas; i++)
        store_counter_add_h(self->store, fx->deltas[i].key, fx->deltas[i].hash,
                            fx->deltas[i].delta);
    if (lead_id == NULL)
        return;
    for (size_t i = 0; i < fx->n_deadlines; i++) {
        const hnd_deadline_t *dl = &fx->deadlines[i];
        if (dl->clear) {
            store_deadline_clear(self->store, lead_id, dl->kind, NULL);
        } else {
            store_deadline_set(self->store, lead_id, dl->kind, dl->due_ms);
        }
    }
    for (size_t i = 0; i < fx->n_marks; i++)
        store_mark(self->store, fx->marks[i].set, lead_id, fx->marks[i].on,
                   fx->marks[i].since_ms);
}

static const char *s_kv_get(const hnd_kv_t *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].value;
    return NULL;
}


/* pb's encoding into stack (cap bytes) or, when larger, a buffer
 * allocated into *heap (else *heap = stack); its length in *len. */
static const uint8_t *s_encode(const Funnel__V1__Event *pb, uint8_t *stack, size_t cap,
                               uint8_t **heap, size_t *len)
{
    *len = funnel__v1__event__get_packed_size(pb);
    *heap = *len > cap ? xmalloc(*len) : stack;
    funnel__v1__event__pack(pb, *heap);
    return *heap;
}

uint64_t ingest_log_event(ingest_t *self, const Funnel__V1__Event *pb, const void *raw,
                          size_t raw_len, uint64_t prev_seq)
{
    uint8_t stack[1024], *ebuf = stack;
    size_t elen = raw_len;
    if (raw == NULL || raw_len == 0)
        raw = s_encode(pb, stack, sizeof stack, &ebuf, &elen);
    uint64_t seq = store_log_append(self->store, pb->lead_id, pb->id, prev_seq, raw, elen);
    if (ebuf != stack)
        free(ebuf);
    return seq;
}

/* Apply one event inside the open group. replay_seq is the event's log
 * sequence when it is replayed from the log, 0 for a new event (which is
 * then appended). A "$deadline" entry is a deadline that fell due: it
 * runs pipeline_deadline() instead of the event handlers. Returns 0 and
 * the event's sequence in *seq_out, 1 when the event was not applied
 * (a handler refused it, or the deadline is gone), -1 on a store error. */
/* ingest_apply, or with unlogged a "$deadline" entry that is not in the
 * log (an applier's own deadline): the lead keeps its last sequence and
 * no event id is indexed. */
static int s_apply(ingest_t *self, const Funnel__V1__Event *pb, const void *raw,
                   size_t raw_len, uint64_t replay_seq, bool unlogged, uint64_t *seq_out)
{
    const defn_t *d = *self->defn_p;
    hnd_kv_t kv[HND_ATTRS_MAX];
    hnd_event_t ev;
    hnd_lead_t lead;
    hnd_effects_t fx;
    const void *buf;
    size_t len;
    uint64_t prev_seq = 0;
    bool deadline = strcmp(pb->type, INGEST_DEADLINE_TYPE) == 0;

    codec_event_view(pb, kv, &ev);
    ev.log_seq = replay_seq ? replay_seq : store_last_seq(self->store) + 1;

    int found = store_lead_get(self->store, pb->lead_id, &buf, &len, &prev_seq);
    if (found < 0)
        return -1;
    if (found && codec_lead_unpack(buf, len, d, &lead) == -1) {
        log_err("[ingest] stored lead %s is not decodable; starting it afresh",
                pb->lead_id);
        found = 0;
    }
    int refused;
    if (deadline) {
        const char *kind = s_kv_get(kv, ev.n_attrs, "kind");
        const char *due = s_kv_get(kv, ev.n_attrs, "due_ms");
        int64_t stored_due = 0;
        refused = !found || kind == NULL || due == NULL;
        if (!refused) {
            /* The record as read (borrowed only until the next write). */
            void *copy = xmalloc(len ? len : 1);
            memcpy(copy, buf, len);
            int had = store_deadline_clear(self->store, pb->lead_id, kind, &stored_due);
            if (had < 0) {
                free(copy);
                return -1;
            }
            if (had == 1 && stored_due != strtoll(due, NULL, 10)) {
                /* An event logged before this entry set the deadline anew
                 * (the loop found the old one due in a state that had not
                 * applied that event yet): the new one stays, in the
                 * lead's record as in the index. */
                store_deadline_set(self->store, pb->lead_id, kind, stored_due);
                store_lead_put(self->store, pb->lead_id, prev_seq, copy, len);
                free(copy);
                if (replay_seq && !unlogged)
                    store_event_replayed(self->store, pb->lead_id, pb->id, replay_seq);
                return 1;
            }
            free(copy);
            refused = had == 0 ||
                      pipeline_deadline(d, &lead, kind, stored_due, pb->occurred_at_ms,
                                        &fx) != 0;
        }
    } else {
        refused = pipeline_apply(self->pipeline, &ev, d, !found, &lead, &fx) != 0;
    }
    if (refused) {
        /* A logged event stays indexed, so replay moves past it. */
        if (replay_seq && !unlogged)
            store_event_replayed(self->store, pb->lead_id, pb->id, replay_seq);
        return 1;
    }

    /* The event first: the lead record keeps its sequence, the head of the
     * lead's timeline chain. */
    uint64_t seq = replay_seq;
    if (unlogged) {
        seq = prev_seq;
    } else if (replay_seq) {
        store_event_replayed(self->store, pb->lead_id, pb->id, replay_seq);
    } else {
        /* As received when it can be: the same bytes decode to the same
         * event. */
        uint8_t stack[1024], *ebuf = stack;
        size_t elen = raw_len;
        if (raw == NULL || raw_len == 0)
            raw = s_encode(pb, stack, sizeof stack, &ebuf, &elen);
        /* New events had their id claimed by the caller; deadlines not. */
        seq = store_event_add(self->store, pb->lead_id, pb->id, !deadline, found ? prev_seq : 0,
                              raw, elen);
        if (ebuf != stack)
            free(ebuf);
    }

    /* Deadlines first: the lead's record lists them. */
    s_apply_effects(self, lead.id, &fx);
    const uint8_t *lbuf;
    size_t llen = codec_lead_pack(&lead, d, &lbuf);
    store_lead_put(self->store, lead.id, seq, lbuf, llen);
    if (seq == 0)
        return -1;
    store_set_watermark(self->store, pb->occurred_at_ms);
    /* The alerts' snapshot has the scores as of the watermark when they
     * are raised (the daemon's time as far as the log tells it, so that a
     * replay stores the same bytes): the stored record, unless the lead's
     * last event is older than that. */
    const uint8_t *snap = lbuf;
    size_t snap_len = llen;
    if (s_wants_lead(&fx) &&
        hnd_scores_as_of(&lead, store_watermark(self->store)) != lead.last_event_ms)
        snap_len = codec_lead_pack_at(&lead, d, store_watermark(self->store), &snap);
    s_queue_alerts(self, d, &fx, &lead, snap, snap_len, &ev, seq, pb->occurred_at_ms, true);
    if (deadline)
        store_stats(self->store)->deadlines++;
    else
        store_stats(self->store)->applied++;
    *seq_out = seq;
    return 0;
}

int ingest_apply(ingest_t *self, const Funnel__V1__Event *pb, const void *raw,
                 size_t raw_len, uint64_t replay_seq, uint64_t *seq_out)
{
    return s_apply(self, pb, raw, raw_len, replay_seq, false, seq_out);
}

/* Funnel-wide checks at the end of a group, inside it. */
static int64_t s_counter_get(const char *key, void *arg)
{
    return store_counter_get(arg, key);
}

static int64_t s_counter_get_all(const char *key, void *arg)
{
    return store_counter_get_all(arg, key);
}

/* The funnel-wide check, judged once per group on the funnel's counters:
 * with partitions, by partition 0 only, on its own counters (its open
 * group's view) added to the others' as last committed; what it counts
 * is partition 0's, so the merged reads see it once. */
static void s_funnel_check(ingest_t *self)
{
    hnd_effects_t fx;
    int64_t now = ingest_now_ms(self);
    if (self->owner != NULL && self->owner != self)
        return; /* another partition's context than partition 0's */
    if (store_parts(self->store) > 1) {
        /* The others' snapshots were taken before the group began
         * (ingest_partition.c); without them it is judged next time. */
        if (!store_peers_open(self->store))
            return;
        pipeline_funnel_check(*self->defn_p, now, s_counter_get_all, self->store, &fx);
    } else {
        pipeline_funnel_check(*self->defn_p, now, s_counter_get, self->store, &fx);
    }
    s_apply_effects(self, NULL, &fx);
    /* Cluster mode: judged for the whole cluster instead (nats_judge.h). */
    if (self->opts.cluster_judged)
        fx.n_alerts = 0;
    s_queue_alerts(self, *self->defn_p, &fx, NULL, NULL, 0, NULL, 0, now, false);
}

/* Retention of the stored alerts, inside the group: those stamped more
 * than alerts_retention_ms before the daemon's time go, in a bounded step
 * (twice as many as the group stored, and at least S_TRIM_MIN), so that a
 * backlog is worked off over a few groups without making any one slow. */
#define S_TRIM_MIN 1024

static void s_retention(ingest_t *self, uint64_t alert_seq_begin)
{
    if (self->opts.alerts_retention_ms <= 0)
        return;
    size_t added = (size_t)(store_alert_seq(self->store) - alert_seq_begin);
    store_alerts_trim(self->store, ingest_now_ms(self) - self->opts.alerts_retention_ms,
                      S_TRIM_MIN + 2 * added);
}

void ingest_group_end(ingest_t *self, uint64_t alert_seq_begin)
{
    s_funnel_check(self);
    s_retention(self, alert_seq_begin);
}

/* -- appliers (ingest.h) --------------------------------------------------- */

ingest_t *ingest_applier_new(store_t *store, const defn_t *const *defn_p,
                             const hnd_t *const *pipeline, const ingest_opts_t *opts)
{
    ingest_t *self = xcalloc(1, sizeof *self);
    self->store = store;
    self->defn_p = defn_p;
    self->pipeline = pipeline;
    self->opts = *opts;
    self->opts.metrics = NULL; /* the live state's figures are not its */
    self->split = true;        /* every alert is kept for the caller */
    self->hand_fd = -1;
    return self;
}

#define S_DUE_MAX 256

/* Fire the applier's deadlines due at or before now_ms, at now_ms (as the
 * lab does), earliest first, until none is due. Returns 0 or -1. */
static int s_fire_own(ingest_t *self, int64_t now_ms)
{
    store_due_t due[S_DUE_MAX];
    for (int round = 0; round < 1024; round++) {
        size_t n = store_deadlines_due(self->store, now_ms, S_DUE_MAX, due);
        if (n == 0)
            return 0;
        for (size_t i = 0; i < n; i++) {
            const store_due_t *d = &due[i];
            Funnel__V1__Event ev;
            Funnel__V1__Event__AttrsEntry a[2], *ap[2] = {&a[0], &a[1]};
            char due_s[24];
            snprintf(due_s, sizeof due_s, "%lld", (long long)d->due_ms);
            funnel__v1__event__init(&ev);
            funnel__v1__event__attrs_entry__init(&a[0]);
            funnel__v1__event__attrs_entry__init(&a[1]);
            a[0].key = (char *)"kind";
            a[0].value = (char *)d->kind;
            a[1].key = (char *)"due_ms";
            a[1].value = due_s;
            ev.id = (char *)INGEST_DEADLINE_TYPE;
            ev.lead_id = (char *)d->lead_id;
            ev.type = (char *)INGEST_DEADLINE_TYPE;
            ev.occurred_at_ms = now_ms > d->due_ms ? now_ms : d->due_ms;
            ev.attrs = ap;
            ev.n_attrs = 2;
            uint64_t seq;
            int r = s_apply(self, &ev, NULL, 0, 0, true, &seq);
            if (r < 0)
                return -1;
            if (r > 0) /* it cannot be applied (its lead is gone): drop it */
                store_deadline_drop(self->store, d);
        }
    }
    return 0;
}

int ingest_applier_apply(ingest_t *self, const partition_entry_t *e, size_t n,
                         bool caught_up)
{
    ingest_out_clear(self);
    uint64_t alert_seq = store_alert_seq(self->store);
    for (size_t i = 0; i < n; i++) {
        const Funnel__V1__Event *ev = e[i].ev;
        if (strcmp(ev->type, INGEST_DEADLINE_TYPE) == 0) {
            store_state_skip(self->store, e[i].seq);
            continue;
        }
        uint64_t seq;
        if (s_fire_own(self, ev->occurred_at_ms - 1) != 0 ||
            ingest_apply(self, ev, NULL, 0, e[i].seq, &seq) < 0)
            return -1;
        store_state_skip(self->store, e[i].seq); /* refused ones too */
    }
    if (caught_up && s_fire_own(self, ingest_now_ms(self)) != 0)
        return -1;
    ingest_group_end(self, alert_seq);
    return 0;
}

void ingest_applier_take(ingest_t *self, ingest_alert_t **list, size_t *n, size_t *cap)
{
    if (*n + self->n_out > *cap) {
        while (*n + self->n_out > *cap)
            *cap = *cap ? 2 * *cap : 64;
        *list = xrealloc(*list, *cap * sizeof **list);
    }
    if (self->n_out > 0)
        memcpy(*list + *n, self->out, self->n_out * sizeof *self->out);
    *n += self->n_out;
    self->n_out = 0; /* the buffers went with them */
}

void ingest_applier_drop(ingest_t *self)
{
    ingest_out_clear(self);
}
