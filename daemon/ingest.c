/* ingest.c: see ingest.h. Intake, group commit and Acks; applying an
 * event to the state is in ingest_apply.c, deadlines falling due in
 * ingest_deadline.c, replay of the log in ingest_replay.c. */
#include "ingest_int.h"

#include <assert.h>
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "codec.h"
#include "log.h"
#include "xalloc.h"

int64_t ingest_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ingest_now_ms(const ingest_t *self)
{
    /* Event time is what has been applied: a deadline must not fall due
     * because of an event that is received but not applied yet (it may be
     * the very event that answers it). */
    if (self->opts.event_clock)
        return store_watermark(self->store);
    return ingest_wall_ms();
}

/* -- pending batches --------------------------------------------------- */

static void s_pending_free(pending_t *p)
{
    arena_destroy(&p->arena);
    for (int i = 0; i < p->n_envelope; i++)
        zmq_msg_close(&p->envelope[i]);
    free(p->verdict);
    free(p->reason);
    free(p->raw_off);
    free(p->raw_len);
    zmq_msg_close(&p->payload);
    free(p);
}

/* The reason buffer of event i, allocated with the first rejection of the
 * batch (most batches have none). */
static char *s_reason(pending_t *p, size_t i)
{
    if (p->reason == NULL)
        p->reason = xcalloc(p->batch->n_events ? p->batch->n_events : 1,
                            sizeof *p->reason);
    return p->reason[i];
}

void ingest_out_clear(ingest_t *self)
{
    for (size_t i = 0; i < self->n_out; i++)
        free(self->out[i].buf);
    self->n_out = 0;
}

bool ingest_wanted(const ingest_t *self, const char *topic)
{
    return self->alert_sink || (self->alerts && bus_wanted(self->alerts, topic));
}

void ingest_set_alert_sink(ingest_t *self, ingest_alert_fn *fn, void *arg)
{
    self->alert_sink = fn;
    self->alert_sink_arg = arg;
}

void ingest_publish(ingest_t *self, const char *topic, const uint8_t *buf,
                    size_t len)
{
    if (self->alert_sink)
        self->alert_sink(self->alert_sink_arg, topic, buf, len);
    if (self->alerts == NULL)
        return;
    const void *parts[2] = {topic, buf};
    size_t lens[2] = {strlen(topic), len};
    /* PUB drops at the high-water mark: a slow subscriber never blocks. */
    int rc = bus_send(self->alerts, parts, lens, 2);
    metrics_alert(self->opts.metrics, topic, rc == 0);
}

void ingest_publish_alert(ingest_t *self, const char *topic, const uint8_t *buf, size_t len)
{
    if (self->alerts)
        bus_refresh(self->alerts);
    if (ingest_wanted(self, topic))
        ingest_publish(self, topic, buf, len);
    else
        metrics_alert_unwanted(self->opts.metrics);
}

void ingest_out_publish(ingest_t *self)
{
    for (size_t i = 0; i < self->n_out; i++)
        ingest_publish(self, self->out[i].topic, self->out[i].buf, self->out[i].len);
    ingest_out_clear(self);
}

/* Publish an alert about intake itself (topic "ingest.<kind>"), which
 * concerns no lead: reasons are copied, event_id may be NULL. */
static void s_notice(ingest_t *self, const char *kind, char **reasons,
                     size_t n_reasons, const char *event_id)
{
    char topic[48];
    snprintf(topic, sizeof topic, "ingest.%s", kind);
    store_stats(self->store)->alerts++;
    store_stats_publish(self->store); /* notices come outside groups */
    if (!ingest_wanted(self, topic)) {
        metrics_alert_unwanted(self->opts.metrics);
        return;
    }
    size_t len;
    uint8_t *buf = codec_notice_pack(kind, topic, ingest_wall_ms(), reasons,
                                     n_reasons, event_id, &len);
    ingest_publish(self, topic, buf, len);
    free(buf);
}

/* Send ack to the client of a request, through its envelope (borrowed). */
static void s_send_ack(bus_sock_t *sock, zmq_msg_t *envelope, int n_envelope,
                       const Funnel__V1__Ack *ack)
{
    size_t len = funnel__v1__ack__get_packed_size(ack);
    uint8_t *buf = xmalloc(len);
    funnel__v1__ack__pack(ack, buf);
    if (bus_reply(sock, envelope, n_envelope, buf, len) == -1)
        log_debug("[ingest] ack of batch \"%s\" not sent (client gone?)",
                  ack->batch_id);
    free(buf);
}

static void s_ack_error(bus_sock_t *sock, bus_msg_t *msg, const char *batch_id,
                        const char *error)
{
    Funnel__V1__Ack ack;
    funnel__v1__ack__init(&ack);
    ack.batch_id = (char *)batch_id;
    ack.error = (char *)error;
    s_send_ack(sock, msg->part, msg->n - 1, &ack);
}

/* -- applying events --------------------------------------------------- */

/* A group's work between begin and commit. Returns INGEST_FILLED, or
 * INGEST_NOTHING when there was nothing to do (the group is dropped); a store
 * error is sticky in the store and comes out of the commit. */

/* Run one group: begin, fill, the funnel-wide checks, commit. A map found
 * full is grown and the group redone (a group fill is repeatable: it
 * starts from the pending batches, the log or the deadlines, which only a
 * commit changes). With retry_stale (replay), a failed state commit is
 * redone too: replay appends nothing, so nothing of it is in the log twice.
 * The alerts of the last attempt are left in self->out. Returns the
 * store's verdict (STORE_OK, _ESTALE, _ETXNFULL, _ERR) or INGEST_NOTHING. */
int ingest_run_group(ingest_t *self, ingest_fill_fn *fill, void *arg, bool retry_stale)
{
    int rc = STORE_ERR;
    /* Subscriptions made meanwhile count for this group's alerts (at
     * start-up, the replay runs before the loop). */
    if (self->alerts)
        bus_refresh(self->alerts);
    for (int tries = 0; tries < INGEST_COMMIT_TRIES; tries++) {
        ingest_out_clear(self);
        if ((rc = store_group_begin(self->store)) != STORE_OK)
            return rc;
        uint64_t alert_seq = store_alert_seq(self->store);
        if (fill(self, arg) == INGEST_NOTHING) {
            store_group_abort(self->store);
            return INGEST_NOTHING;
        }
        ingest_group_end(self, alert_seq);
        uint64_t t0 = metrics_now_ns();
        rc = store_group_commit(self->store);
        if (rc == STORE_OK)
            metrics_observe(self->opts.metrics, METRICS_COMMIT_NS, metrics_now_ns() - t0);
        metrics_heartbeat(self->opts.metrics);
        bool again = rc == STORE_EFULL || (retry_stale && rc == STORE_ESTALE);
        if (!again || store_grow(self->store) != STORE_OK)
            break;
    }
    return rc;
}

/* ingest_fill_fn: the events of the first *(size_t *)arg pending batches. */
static int s_fill_pending(ingest_t *self, void *arg)
{
    size_t max_batches = *(const size_t *)arg;
    store_stats_t *st = store_stats(self->store);
    size_t n = 0;
    for (pending_t *p = self->head; p && n < max_batches; p = p->next, n++) {
        if (p->logged)
            continue;
        p->accepted = p->duplicates = 0;
        p->last_seq = 0;
        for (size_t i = 0; i < p->batch->n_events; i++) {
            Funnel__V1__Event *ev = p->batch->events[i];
            st->received++;
            if (p->verdict[i] == V_REJECTED) {
                st->rejected++;
                continue;
            }
            int claimed = store_id_claim(self->store, ev->lead_id, ev->id);
            if (claimed < 0)
                goto out;
            if (!claimed) {
                p->verdict[i] = V_DUPLICATE;
                p->duplicates++;
                st->duplicates++;
                continue;
            }
            uint64_t seq = 0;
            int r = ingest_apply(self, ev,
                                 p->raw_len && p->raw_len[i]
                                     ? (const uint8_t *)zmq_msg_data(&p->payload) + p->raw_off[i]
                                     : NULL,
                                 p->raw_len ? p->raw_len[i] : 0, 0, &seq);
            if (r < 0)
                goto out;
            if (r > 0) {
                store_id_release(self->store, ev->lead_id, ev->id);
                p->verdict[i] = V_REJECTED;
                snprintf(s_reason(p, i), INGEST_REASON_LEN, "refused by the funnel handlers");
                st->rejected++;
                continue;
            }
            p->verdict[i] = V_ACCEPTED;
            p->accepted++;
            p->last_seq = seq;
        }
    }
out:
    return INGEST_FILLED;
}

/* ingest_fill_fn with a partition: the events of the first
 * *(size_t *)arg pending batches, deduplicated and appended to the log
 * only (the partition applies them once the log is committed). */
static int s_fill_log(ingest_t *self, void *arg)
{
    size_t max_batches = *(const size_t *)arg;
    store_stats_t *st = store_stats(self->store);
    size_t n = 0;
    for (pending_t *p = self->head; p && n < max_batches; p = p->next, n++) {
        if (p->logged)
            continue;
        p->accepted = p->duplicates = 0;
        p->last_seq = 0;
        for (size_t i = 0; i < p->batch->n_events; i++) {
            Funnel__V1__Event *ev = p->batch->events[i];
            st->received++;
            if (p->verdict[i] == V_REJECTED) {
                st->rejected++;
                continue;
            }
            uint64_t prev = 0;
            int claimed = store_log_claim(self->store, ev->lead_id, ev->id, false, &prev);
            if (claimed < 0)
                goto out;
            if (!claimed) {
                p->verdict[i] = V_DUPLICATE;
                p->duplicates++;
                st->duplicates++;
                continue;
            }
            const void *raw = p->raw_len && p->raw_len[i]
                                  ? (const uint8_t *)zmq_msg_data(&p->payload) + p->raw_off[i]
                                  : NULL;
            uint64_t seq = ingest_log_event(self, ev, raw, p->raw_len ? p->raw_len[i] : 0,
                                            prev);
            if (seq == 0)
                goto out;
            p->verdict[i] = V_ACCEPTED;
            p->accepted++;
            p->last_seq = seq;
        }
    }
out:
    return INGEST_FILLED;
}

int ingest_run_log_group(ingest_t *self, ingest_fill_fn *fill, void *arg)
{
    int rc = STORE_ERR;
    for (int tries = 0; tries < INGEST_COMMIT_TRIES; tries++) {
        if ((rc = store_log_begin(self->store)) != STORE_OK)
            return rc;
        if (fill(self, arg) == INGEST_NOTHING) {
            store_log_abort(self->store);
            return INGEST_NOTHING;
        }
        uint64_t t0 = metrics_now_ns();
        rc = store_log_commit(self->store);
        if (rc == STORE_OK)
            metrics_observe(self->opts.metrics, METRICS_COMMIT_NS, metrics_now_ns() - t0);
        metrics_heartbeat(self->opts.metrics);
        if (rc != STORE_EFULL || store_grow(self->store) != STORE_OK)
            break;
    }
    return rc;
}

void ingest_intake_pause(ingest_t *self, bool pause)
{
    for (size_t i = 0; i < self->n_intake; i++)
        if (pause)
            bus_pause(self->intake[i]);
        else
            bus_resume(self->intake[i]);
    for (size_t i = 0; i < self->n_intake_fn; i++)
        self->intake_fn[i](self->intake_arg[i], pause);
}

/* Acknowledge the first n pending batches and drop them. */
static void s_ack_first(ingest_t *self, size_t n)
{
    metrics_t *m = self->opts.metrics;
    uint64_t now_ns = m ? metrics_now_ns() : 0, events = 0;
    while (self->head && n-- > 0) {
        pending_t *p = self->head;
        self->head = p->next;
        events += p->batch->n_events;
        if (m) {
            /* Validation refusals were counted on arrival; the rest are
             * the handlers' (or the transaction's). */
            uint64_t n_rej = 0;
            for (size_t i = 0; i < p->batch->n_events; i++)
                n_rej += p->verdict[i] == V_REJECTED;
            metrics_reject(m, p->txn_refused ? METRICS_REJ_TRANSACTION : METRICS_REJ_HANDLERS,
                           n_rej - (n_rej >= p->n_invalid ? p->n_invalid : n_rej));
            if (p->reply)
                metrics_observe(m, METRICS_ACK_NS, now_ns - p->recv_ns);
        }
        if (p->reply) {
            Funnel__V1__Ack ack;
            Funnel__V1__Rejection rej[64], *rejp[64];
            Funnel__V1__Rejection **rejs = rejp, *rejv = rej;
            size_t n_rej = 0;
            for (size_t i = 0; i < p->batch->n_events; i++)
                n_rej += p->verdict[i] == V_REJECTED;
            if (n_rej > 64) {
                rejs = xmalloc(n_rej * sizeof *rejs);
                rejv = xmalloc(n_rej * sizeof *rejv);
            }
            size_t k = 0;
            for (size_t i = 0; i < p->batch->n_events; i++) {
                if (p->verdict[i] != V_REJECTED)
                    continue;
                funnel__v1__rejection__init(&rejv[k]);
                rejv[k].index = (uint32_t)i;
                rejv[k].reason = s_reason(p, i);
                /* Echoed only when it is valid UTF-8: proto3 strings must
                 * be, and one bad id must not make the whole Ack
                 * undecodable for a strict client. */
                const char *eid = p->batch->events[i]->id;
                rejv[k].event_id = eid && validate_utf8(eid, SIZE_MAX) ? (char *)eid
                                                                      : (char *)"";
                rejs[k] = &rejv[k];
                k++;
            }
            funnel__v1__ack__init(&ack);
            ack.batch_id = p->batch->batch_id &&
                                   validate_utf8(p->batch->batch_id, SIZE_MAX)
                               ? p->batch->batch_id
                               : (char *)"";
            ack.accepted = p->accepted;
            ack.duplicates = p->duplicates;
            ack.n_rejections = n_rej;
            ack.rejections = rejs;
            ack.last_seq = p->last_seq;
            s_send_ack(p->reply, p->envelope, p->n_envelope, &ack);
            if (rejs != rejp) {
                free(rejs);
                free(rejv);
            }
        }
        self->n_pending_events -= p->batch->n_events;
        if (p->done)
            p->done(p->done_arg, true);
        ingest_part_keep(self, p);
        s_pending_free(p);
    }
    if (self->head == NULL)
        self->tail = NULL;
    metrics_observe(m, METRICS_GROUP_EVENTS, events);
}

static int s_committed(ingest_t *self, int rc, size_t n_batches);

/* Commit the pending group; on success acknowledge it and publish its
 * alerts. Returns 0, or -1 when the store failed (pending kept, retried). */
static int s_commit(ingest_t *self)
{
    int rc = STORE_ERR;

    if (self->head == NULL)
        return 0;
    evtimer_del(self->ev_commit);

    /* A state left behind the log (a failed state commit whose replay
     * failed too) is brought up to date first, so that the ids of events
     * already logged are known and never logged twice. */
    if (!self->split && store_applied_seq(self->store) < store_last_seq(self->store) &&
        ingest_replay(self) < 0)
        return s_committed(self, STORE_ERR, 0);

    /* Normally one group takes everything pending; a transaction that
     * dirties more pages than LMDB allows is split in halves. */
    size_t chunk = SIZE_MAX;
    while (self->head) {
        size_t n_batches = 0;
        for (pending_t *p = self->head; p && n_batches < chunk; p = p->next)
            n_batches++;
        rc = self->split ? ingest_run_log_group(self, s_fill_log, &n_batches)
                         : ingest_run_group(self, s_fill_pending, &n_batches, false);
        if (rc == STORE_ETXNFULL && n_batches > 1) {
            chunk = n_batches / 2;
            log_info("[ingest] group too large for one transaction; "
                     "committing %zu batches at a time", chunk);
            continue;
        }
        if (rc == STORE_ETXNFULL) {
            /* One batch alone is too much for a transaction: refuse its
             * events (its Ack says why) rather than retry forever. */
            pending_t *p = self->head;
            log_warn("[ingest] a batch of %zu events needs more pages than one "
                     "transaction may hold; refused", p->batch->n_events);
            p->txn_refused = true;
            for (size_t i = 0; i < p->batch->n_events; i++) {
                p->verdict[i] = V_REJECTED;
                snprintf(s_reason(p, i), INGEST_REASON_LEN,
                         "batch too large for one transaction: send smaller batches");
            }
            continue;
        }
        if (s_committed(self, rc, n_batches) != 0)
            return -1;
    }
    return 0;
}

/* After a group commit of the first n_batches pending batches returned rc:
 * acknowledge and publish, or enter (or stay in) the failing state. */
static int s_committed(ingest_t *self, int rc, size_t n_batches)
{
    if (rc == STORE_ESTALE) {
        /* Durable in the log, missing from the state: bring it up to date
         * from the log; the acks are owed either way. */
        log_warn("[ingest] state commit failed after the log commit; replaying");
        ingest_out_clear(self);
        /* If the state map filled up inside the commit, grow it first. */
        if (store_grow(self->store) != STORE_OK || ingest_replay(self) < 0) {
            /* The events are in the log with their verdicts: whatever
             * happens next, these batches are only acknowledged, never
             * applied again. */
            size_t n = 0;
            for (pending_t *p = self->head; p && n < n_batches; p = p->next, n++)
                p->logged = true;
            rc = STORE_ERR;
        } else {
            rc = STORE_OK;
        }
    }
    if (rc != STORE_OK) {
        if (!self->split) /* else the partition's */
            ingest_out_clear(self);
        if (!self->failing) {
            log_err("[ingest] cannot commit %zu pending events; intake paused, "
                    "nothing acknowledged, retrying every second",
                    self->n_pending_events);
            const char *why = store_last_error(self->store);
            metrics_set_failing(self->opts.metrics,
                                why[0] ? why : "store commit failed (disk full or I/O error)");
            char *reason = (char *)"store commit failed (disk full or I/O error); "
                                   "intake paused";
            s_notice(self, "store", &reason, 1, NULL);
        }
        self->failing = true;
        ingest_intake_pause(self, true);
        struct timeval tv = {1, 0};
        evtimer_add(self->ev_retry, &tv);
        return -1;
    }
    if (self->failing) {
        log_info("[ingest] store commits again; intake resumed");
        self->failing = false;
        metrics_set_failing(self->opts.metrics, NULL);
        if (!self->stopping && !self->lagging)
            ingest_intake_pause(self, false);
    }
    s_ack_first(self, n_batches);
    ingest_committed(self);
    if (self->split) {
        ingest_part_committed(self);
        return 0;
    }
    ingest_out_publish(self);
    ingest_arm_deadlines(self);
    return 0;
}

void ingest_on_committed(ingest_t *self, void (*fn)(void *arg), void *arg)
{
    self->committed_fn = fn;
    self->committed_arg = arg;
}

void ingest_committed(ingest_t *self)
{
    if (self->committed_fn)
        self->committed_fn(self->committed_arg);
}

static void s_on_commit(evutil_socket_t fd, short what, void *arg)
{
    s_commit(arg);
}

static void s_on_retry(evutil_socket_t fd, short what, void *arg)
{
    s_commit(arg);
}

/* -- intake -------------------------------------------------------------- */

/* Streams are best effort: a sequenced publisher's seq numbers reveal the
 * messages that never arrived. Count the missing ones and say so on
 * ingest.gap. Repeats and reordering (seq <= last) are not gaps. */
static void s_check_gap(ingest_t *self, const Funnel__V1__Event *ev,
                        const char *origin)
{
    if (ev->seq == 0 || ev->publisher == NULL || ev->publisher[0] == '\0')
        return;
    ingest_publisher_t *p = NULL;
    for (size_t i = 0; i < self->n_publishers; i++)
        if (strcmp(self->publishers[i].name, ev->publisher) == 0) {
            p = &self->publishers[i];
            break;
        }
    if (p == NULL) {
        /* Bounded: a publisher name per process (say, with a UUID in it)
         * must not grow the daemon without end. */
        if (self->n_publishers == INGEST_PUBLISHERS_MAX) {
            if (!self->publishers_full)
                log_warn("[ingest] more than %d sequenced stream publishers: "
                         "gaps of new ones are not tracked", INGEST_PUBLISHERS_MAX);
            self->publishers_full = true;
            return;
        }
        self->publishers = xrealloc(self->publishers,
                                    (self->n_publishers + 1) * sizeof *p);
        p = &self->publishers[self->n_publishers++];
        p->name = xstrdup(ev->publisher);
        p->last_seq = ev->seq; /* the first one seen is the baseline */
        return;
    }
    if (ev->seq > p->last_seq + 1) {
        uint64_t missing = ev->seq - p->last_seq - 1;
        store_stats(self->store)->gaps += missing;
        char reason[256];
        char *reasons[1] = {reason};
        snprintf(reason, sizeof reason,
                 "publisher %s: seq jumped from %llu to %llu, %llu event(s) missing (%s)",
                 p->name, (unsigned long long)p->last_seq,
                 (unsigned long long)ev->seq, (unsigned long long)missing, origin);
        log_warn("[ingest] %s", reason);
        s_notice(self, "gap", reasons, 1, ev->id);
    }
    if (ev->seq > p->last_seq)
        p->last_seq = ev->seq;
}

/* Decode and validate one EventBatch message and queue it. reply is the
 * ingest socket (with msg's leading frames as the envelope), or NULL for a
 * stream or src's source (ingest_submit; msg is then NULL). Returns true
 * when the batch filled the group and it was committed: the caller then
 * yields the loop (bus_yield). */
static bool s_submit(ingest_t *self, bus_sock_t *reply, bus_msg_t *msg,
                     zmq_msg_t *payload, const char *origin, const ingest_source_t *src)
{
    Funnel__V1__EventBatch *batch = NULL;
    char why[INGEST_REASON_LEN];
    store_stats_t *st = store_stats(self->store);
    /* Decoded structures take about twice the encoding's size. */
    arena_t *arena = arena_new(2 * zmq_msg_size(payload) + 4096);
    ProtobufCAllocator alloc = arena_pb_allocator(arena);

    int rej = METRICS_REJ_FRAMES;
    metrics_batch(self->opts.metrics, reply == NULL);
    if (msg && msg->truncated) {
        snprintf(why, sizeof why, "message has more than %d frames", BUS_PARTS_MAX);
        goto refuse;
    }
    rej = METRICS_REJ_UNDECODABLE;
    batch = funnel__v1__event_batch__unpack(&alloc, zmq_msg_size(payload),
                                            zmq_msg_data(payload));
    if (batch == NULL) {
        snprintf(why, sizeof why, "undecodable EventBatch (%zu bytes)",
                 zmq_msg_size(payload));
        goto refuse;
    }
    if (batch->n_events > self->opts.max_batch_events) {
        snprintf(why, sizeof why, "batch of %zu events, more than %zu",
                 batch->n_events, self->opts.max_batch_events);
        rej = METRICS_REJ_BATCH_TOO_LARGE;
        goto refuse;
    }

    pending_t *p = xcalloc(1, sizeof *p);
    p->batch = batch;
    p->arena = arena;
    p->reply = reply;
    p->recv_ns = self->opts.metrics ? metrics_now_ns() : 0;
    p->verdict = xcalloc(batch->n_events ? batch->n_events : 1, 1);
    if (src) {
        p->done = src->done;
        p->done_arg = src->done_arg;
    }
    zmq_msg_init(&p->payload);
    if (batch->n_events > 0 && zmq_msg_copy(&p->payload, payload) == 0) {
        p->raw_off = xmalloc(batch->n_events * sizeof *p->raw_off);
        p->raw_len = xmalloc(batch->n_events * sizeof *p->raw_len);
        if (codec_index_batch(zmq_msg_data(&p->payload), zmq_msg_size(&p->payload),
                           batch->n_events, p->raw_off, p->raw_len) == -1) {
            free(p->raw_off);
            free(p->raw_len);
            p->raw_off = p->raw_len = NULL;
        }
    }
    if (reply)
        for (int i = 0; i + 1 < msg->n; i++) {
            zmq_msg_init(&p->envelope[i]);
            zmq_msg_copy(&p->envelope[i], &msg->part[i]);
            p->n_envelope++;
        }

    int64_t wall = ingest_wall_ms();
    size_t n_rejected = 0;
    for (size_t i = 0; i < batch->n_events; i++) {
        Funnel__V1__Event *ev = batch->events[i];
        char why_ev[INGEST_REASON_LEN];
        validate_why_t vwhy;
        if (validate_event_why(ev, wall, &self->opts.limits, why_ev, sizeof why_ev,
                               &vwhy) != NULL) {
            snprintf(s_reason(p, i), INGEST_REASON_LEN, "%s", why_ev);
            p->verdict[i] = V_REJECTED;
            p->n_invalid++;
            metrics_reject(self->opts.metrics, (int)vwhy, 1);
            n_rejected++;
            log_debug("[ingest] %s: event %zu rejected: %s", origin, i, why_ev);
            continue;
        }
        /* "now" is resolved here, so the log keeps the time applied. */
        if (ev->occurred_at_ms == 0) {
            int64_t now = self->opts.event_clock ? self->watermark_ms : wall;
            ev->occurred_at_ms = now ? now : wall;
            if (p->raw_len)
                p->raw_len[i] = 0; /* changed: encoded again */
        }
        if (ev->occurred_at_ms > self->watermark_ms)
            self->watermark_ms = ev->occurred_at_ms;
        if (src && src->partition >= 0 &&
            partition_of(ev->lead_id, src->n_partitions) != (unsigned)src->partition) {
            /* The publisher computed another partition: applying it here
             * would give the lead two owners. */
            snprintf(s_reason(p, i), INGEST_REASON_LEN,
                     "lead %.64s belongs to partition %u of %u, not %d (FNV-1a 32 of "
                     "the lead id mod the partitions)", ev->lead_id,
                     partition_of(ev->lead_id, src->n_partitions), src->n_partitions,
                     src->partition);
            p->verdict[i] = V_REJECTED;
            p->n_invalid++;
            n_rejected++;
            continue;
        }
        if (reply == NULL && src == NULL)
            s_check_gap(self, ev, origin);
    }

    if (reply == NULL && n_rejected > 0) {
        /* Streams have nobody to answer: say it on ingest.rejected. */
        char *reasons[HND_REASONS_MAX];
        size_t nr = 0;
        for (size_t i = 0; i < batch->n_events && nr < HND_REASONS_MAX; i++)
            if (p->verdict[i] == V_REJECTED)
                reasons[nr++] = s_reason(p, i);
        s_notice(self, "rejected", reasons, nr, NULL);
        log_info("[ingest] %s: %zu of %zu events rejected, first: %s", origin,
                 n_rejected, batch->n_events, reasons[0]);
    }

    if (self->tail)
        self->tail->next = p;
    else
        self->head = p;
    self->tail = p;
    self->n_pending_events += batch->n_events;

    if (self->n_pending_events >= self->opts.group_max_events) {
        s_commit(self);
        return true;
    }
    if (!evtimer_pending(self->ev_commit, NULL)) {
        struct timeval tv = {self->opts.group_delay_ms / 1000,
                             (self->opts.group_delay_ms % 1000) * 1000};
        evtimer_add(self->ev_commit, &tv);
    }
    return false;

refuse:;
    /* A batch that decoded but is refused keeps its id in the Ack, so a
     * publisher with several in flight knows which one. */
    char batch_id[256] = "";
    if (batch && batch->batch_id && validate_utf8(batch->batch_id, sizeof batch_id - 1))
        snprintf(batch_id, sizeof batch_id, "%s", batch->batch_id);
    arena_destroy(&arena);
    st->received++;
    st->rejected++;
    metrics_reject(self->opts.metrics, rej, 1);
    /* Outside any group: published here, before the reply, so that a
     * query sent after it counts this refusal. */
    store_stats_publish(self->store);
    log_info("[ingest] %s: message refused: %s", origin, why);
    if (reply) {
        s_ack_error(reply, msg, batch_id, why);
    } else {
        char *reason = why;
        s_notice(self, "rejected", &reason, 1, NULL);
    }
    if (src && src->done)
        src->done(src->done_arg, true); /* never applicable: settled */
    return false;
}

void ingest_on_ingest(bus_sock_t *sock, bus_msg_t *msg, void *arg)
{
    ingest_t *self = arg;
    if (msg->n < 2) /* a ROUTER always prepends the peer's identity */
        return;
    if (s_submit(self, sock, msg, &msg->part[msg->n - 1], "ingest", NULL))
        bus_yield(sock);
}

static void s_on_stream(ingest_t *self, bus_sock_t *sock, bus_msg_t *msg)
{
    char origin[96];
    store_stats(self->store)->stream_messages++;
    if (msg->n != 2) {
        log_info("[ingest] stream %s: message of %d frames, expected [topic][EventBatch]",
                 bus_endpoint(sock), msg->n);
        store_stats(self->store)->rejected++;
        metrics_reject(self->opts.metrics, METRICS_REJ_FRAMES, 1);
        return;
    }
    /* The topic is the publisher's bytes: printable ASCII only goes into
     * logs and alerts, the rest as '?'. */
    char topic[41];
    size_t tn = zmq_msg_size(&msg->part[0]);
    const unsigned char *tp = zmq_msg_data(&msg->part[0]);
    if (tn > sizeof topic - 1)
        tn = sizeof topic - 1;
    for (size_t i = 0; i < tn; i++)
        topic[i] = tp[i] >= 0x20 && tp[i] < 0x7f ? (char)tp[i] : '?';
    topic[tn] = '\0';
    snprintf(origin, sizeof origin, "stream %s topic %s", bus_endpoint(sock), topic);
    if (s_submit(self, NULL, msg, &msg->part[1], origin, NULL))
        bus_yield(sock);
}

void ingest_on_stream(bus_sock_t *sock, bus_msg_t *msg, void *arg)
{
    ingest_t *self = arg;
    s_on_stream(self, sock, msg);
    /* Stream counters (messages, gaps, refusals) change outside groups. */
    store_stats_publish(self->store);
}

bool ingest_submit(ingest_t *self, const void *data, size_t len, const ingest_source_t *src)
{
    zmq_msg_t payload;
    if (zmq_msg_init_size(&payload, len) != 0) {
        log_err("[ingest] %s: cannot allocate %zu bytes", src->origin, len);
        abort();
    }
    if (len)
        memcpy(zmq_msg_data(&payload), data, len);
    bool yielded = s_submit(self, NULL, NULL, &payload, src->origin, src);
    zmq_msg_close(&payload);
    store_stats_publish(self->store);
    return yielded;
}

/* -- lifecycle ------------------------------------------------------------- */

ingest_t *ingest_new(struct event_base *base, store_t *store,
                     const defn_t *const *defn_p, const hnd_t *const *pipeline,
                     bus_sock_t *alerts, const ingest_opts_t *opts)
{
    ingest_t *self = xcalloc(1, sizeof *self);
    self->base = base;
    self->store = store;
    self->defn_p = defn_p;
    self->pipeline = pipeline;
    self->alerts = alerts;
    self->opts = *opts;
    if (self->opts.group_max_events == 0)
        self->opts.group_max_events = 1;
    self->ev_commit = evtimer_new(base, s_on_commit, self);
    self->ev_retry = evtimer_new(base, s_on_retry, self);
    self->ev_deadline = evtimer_new(base, ingest_on_deadline, self);
    self->watermark_ms = store_watermark(store);
    if (self->ev_commit == NULL || self->ev_retry == NULL || self->ev_deadline == NULL) {
        log_err("[ingest] cannot create timers");
        abort();
    }
    return self;
}

void ingest_add_intake(ingest_t *self, bus_sock_t *sock)
{
    if (self->n_intake < INGEST_INTAKE_MAX)
        self->intake[self->n_intake++] = sock;
}

void ingest_add_intake_fn(ingest_t *self, ingest_pause_fn *fn, void *arg)
{
    assert(self->n_intake_fn < INGEST_INTAKE_MAX);
    self->intake_fn[self->n_intake_fn] = fn;
    self->intake_arg[self->n_intake_fn++] = arg;
}

int ingest_shutdown(ingest_t *self)
{
    self->stopping = true;
    ingest_intake_pause(self, true);
    int rc = s_commit(self);
    ingest_stop_partition(self);
    return rc;
}

void ingest_destroy(ingest_t **self_p)
{
    ingest_t *self = *self_p;
    if (self == NULL)
        return;
    ingest_stop_partition(self);
    ingest_part_free(self);
    while (self->head) {
        pending_t *p = self->head;
        self->head = p->next;
        if (p->done)
            p->done(p->done_arg, false);
        s_pending_free(p);
    }
    ingest_out_clear(self);
    free(self->out);
    for (size_t i = 0; i < self->n_publishers; i++)
        free(self->publishers[i].name);
    free(self->publishers);
    if (self->ev_commit) /* an applier has no timers */
        event_free(self->ev_commit);
    if (self->ev_retry)
        event_free(self->ev_retry);
    if (self->ev_deadline)
        event_free(self->ev_deadline);
    free(self);
    *self_p = NULL;
}
