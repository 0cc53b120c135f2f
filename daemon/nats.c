/* nats.c: see nats.h. */
#include "nats_int.h"

#include <errno.h>
#include <event2/event.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "fnv.h"
#include "log.h"
#include "nats_lease.h"
#include "nats_query.h"
#include "xalloc.h"

/* Messages pulled in one request, and the most queued for the loop
 * before the fetch threads wait: bounds what funneld holds, JetStream
 * keeps the rest. */
#define S_FETCH_BATCH 64
#define S_FETCH_WAIT_MS 1000
#define S_QUEUE_MAX 256
/* Unacknowledged messages a consumer may have out (a message is a batch),
 * and how long JetStream waits for an acknowledgement before it delivers
 * the message again. */
#define S_MAX_ACK_PENDING 1024
#define S_ACK_WAIT_NS (60LL * 1000000000LL)


/* -- connection events (libnats' threads) ------------------------------- */

static void s_set_url(nats_t *self, natsConnection *nc)
{
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    pthread_mutex_lock(&self->lock);
    if (url[0])
        snprintf(self->url, sizeof self->url, "%s", url);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

static void s_on_connected(natsConnection *nc, void *closure)
{
    nats_t *self = closure;
    atomic_store(&self->state, NATS_ST_CONNECTED);
    s_set_url(self, nc);
    log_info("[nats] connected to %s", self->url);
}

static void s_on_disconnected(natsConnection *nc, void *closure)
{
    nats_t *self = closure;
    if (atomic_load(&self->state) == NATS_ST_CLOSED)
        return;
    atomic_store(&self->state, NATS_ST_DISCONNECTED);
    log_warn("[nats] lost the connection to %s; reconnecting every %d ms (queries and "
             "the ZeroMQ ingest go on meanwhile)", self->url, NATS_RECONNECT_MS);
}

static void s_on_reconnected(natsConnection *nc, void *closure)
{
    nats_t *self = closure;
    pthread_mutex_lock(&self->lock);
    self->stream_ok = false; /* the server may have lost it */
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < self->n_parts; i++)
        atomic_store(&self->parts[i].check, true);
    atomic_store(&self->state, NATS_ST_CONNECTED);
    s_set_url(self, nc);
    log_info("[nats] reconnected to %s; resuming", self->url);
}

static void s_on_closed(natsConnection *nc, void *closure)
{
    nats_t *self = closure;
    atomic_store(&self->state, NATS_ST_CLOSED);
    pthread_mutex_lock(&self->lock);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

static void s_on_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
                       void *closure)
{
    log_warn("[nats] %s", natsStatus_GetText(err));
}

/* -- the stream and the consumers (fetch threads) ------------------------ */

/* Wait on cond for at most ms, or until stopping. Returns whether to go on.
 * Called with lock held. */
static bool s_wait_locked(nats_t *self, int ms)
{
    if (self->stopping)
        return false;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&self->cond, &self->lock, &ts);
    return !self->stopping;
}

static bool s_pause_ms(nats_t *self, int ms)
{
    pthread_mutex_lock(&self->lock);
    bool go_on = s_wait_locked(self, ms);
    pthread_mutex_unlock(&self->lock);
    return go_on;
}

static const char *s_why(natsStatus s, jsErrCode jerr, char *buf, size_t cap)
{
    const char *last = nats_GetLastError(NULL);
    if (jerr)
        snprintf(buf, cap, "%s (JetStream error %d)", last && *last ? last : natsStatus_GetText(s),
                 (int)jerr);
    else
        snprintf(buf, cap, "%s", last && *last ? last : natsStatus_GetText(s));
    return buf;
}

/* Make sure the stream exists: create it when it does not. Returns 0, or
 * -1 (logged once per run of failures). */
static int s_ensure_stream_locked(nats_t *self);
static int s_ensure_stream(nats_t *self)
{
    pthread_mutex_lock(&self->setup_lock);
    int rc = s_ensure_stream_locked(self);
    pthread_mutex_unlock(&self->setup_lock);
    return rc;
}

static int s_ensure_stream_locked(nats_t *self)
{
    pthread_mutex_lock(&self->lock);
    bool ok = self->stream_ok, stop = self->stopping;
    pthread_mutex_unlock(&self->lock);
    if (ok)
        return 0;
    /* Stopping: no lookup (each may wait out JetStream's timeout while the
     * server is gone, one fetch thread after another on setup_lock, longer
     * than a stop may take). */
    if (stop)
        return -1;

    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    char why[512];
    natsStatus s = js_GetStreamInfo(&si, self->js, self->stream, NULL, &jerr);
    if (s == NATS_OK) {
        log_info("[nats] stream %s: %llu messages, subjects %s%s", self->stream,
                 (unsigned long long)si->State.Msgs,
                 si->Config->SubjectsLen > 0 ? si->Config->Subjects[0] : "(none)",
                 si->Config->SubjectsLen > 1 ? ", ..." : "");
        jsStreamInfo_Destroy(si);
    } else if (jerr == JSStreamNotFoundErr || s == NATS_NOT_FOUND) {
        jsStreamConfig sc;
        const char *subjects[] = {NATS_SUBJECT_IN "*"};
        jsStreamConfig_Init(&sc);
        sc.Name = self->stream;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Replicas = self->replicas;
        jerr = 0;
        s = js_AddStream(&si, self->js, &sc, NULL, &jerr);
        if (s == NATS_OK) {
            log_info("[nats] created stream %s on %s* (file storage, %u replica%s)",
                     self->stream, NATS_SUBJECT_IN, self->replicas,
                     self->replicas == 1 ? "" : "s");
            jsStreamInfo_Destroy(si);
        } else if (jerr != JSStreamNameExistErr) { /* else: created meanwhile */
            pthread_mutex_lock(&self->lock);
            bool logged = self->stream_failing;
            self->stream_failing = true;
            pthread_mutex_unlock(&self->lock);
            if (!logged)
                log_err("[nats] cannot create stream %s: %s; retrying", self->stream,
                        s_why(s, jerr, why, sizeof why));
            return -1;
        }
    } else {
        pthread_mutex_lock(&self->lock);
        bool logged = self->stream_failing;
        self->stream_failing = true;
        pthread_mutex_unlock(&self->lock);
        if (!logged)
            log_warn("[nats] cannot look up stream %s: %s; retrying", self->stream,
                     s_why(s, jerr, why, sizeof why));
        return -1;
    }
    pthread_mutex_lock(&self->lock);
    self->stream_ok = true;
    self->stream_failing = false;
    pthread_mutex_unlock(&self->lock);
    return 0;
}

/* A partition taken (a lease): say how much of its subject this
 * instance's consumer has still to deliver, which is what the state lacks
 * of it. */
static void s_log_pending(nats_part_t *part)
{
    nats_t *self = part->owner;
    jsConsumerInfo *ci = NULL;
    if (js_GetConsumerInfo(&ci, self->js, self->stream, part->durable, NULL, NULL) != NATS_OK)
        return;
    /* Not yet delivered, and delivered but never acknowledged (refused
     * by the fencing, or out when the partition was given up). */
    unsigned long long n = (unsigned long long)ci->NumPending +
                           (unsigned long long)(ci->NumAckPending > 0 ? ci->NumAckPending : 0);
    if (n > 0)
        log_info("[nats] %s: replaying %llu message(s) of the partition into this "
                 "instance's state (its other partitions go on meanwhile)", part->subject, n);
    jsConsumerInfo_Destroy(ci);
}

/* Subscribe part to its durable consumer (created when absent, delivering
 * the partition's subject from its first message). The subscription it
 * replaces, if any, is kept (see nats_part_t.old). Returns 0, or -1. */
static int s_subscribe(nats_part_t *part)
{
    nats_t *self = part->owner;
    jsSubOptions so;
    jsErrCode jerr = 0;
    char why[512];
    natsSubscription *sub = NULL;

    jsSubOptions_Init(&so);
    so.Stream = self->stream;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.MaxAckPending = S_MAX_ACK_PENDING;
    so.Config.AckWait = S_ACK_WAIT_NS;
    natsStatus s = js_PullSubscribe(&sub, self->js, part->subject, part->durable, NULL, &so,
                                    &jerr);
    if (s != NATS_OK) {
        if (!part->failing)
            log_warn("[nats] %s: cannot subscribe consumer %s: %s; retrying", part->subject,
                     part->durable, s_why(s, jerr, why, sizeof why));
        part->failing = true;
        if (jerr == JSStreamNotFoundErr) {
            pthread_mutex_lock(&self->lock);
            self->stream_ok = false;
            pthread_mutex_unlock(&self->lock);
        }
        return -1;
    }
    if (part->sub) {
        part->old = xrealloc(part->old, (part->n_old + 1) * sizeof *part->old);
        part->old[part->n_old++] = part->sub;
    }
    part->sub = sub;
    if (part->failing)
        log_info("[nats] %s: consuming again (consumer %s)", part->subject, part->durable);
    else
        log_info("[nats] %s: consuming (durable consumer %s of stream %s)", part->subject,
                 part->durable, self->stream);
    if (self->leased)
        s_log_pending(part);
    part->failing = false;
    return 0;
}

/* After a reconnect or a failed fetch: whether the consumer still exists
 * (a server that lost its store lost it); subscribe again when not.
 * Returns 0, or -1 (try later). */
static int s_check_consumer(nats_part_t *part)
{
    nats_t *self = part->owner;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetConsumerInfo(&ci, self->js, self->stream, part->durable, NULL, &jerr);
    if (s == NATS_OK) {
        jsConsumerInfo_Destroy(ci);
        return 0;
    }
    if (jerr != JSConsumerNotFoundErr && jerr != JSStreamNotFoundErr && s != NATS_NOT_FOUND)
        return -1;
    log_warn("[nats] %s: consumer %s is gone; creating it again", part->subject, part->durable);
    pthread_mutex_lock(&self->lock);
    self->stream_ok = false;
    pthread_mutex_unlock(&self->lock);
    if (s_ensure_stream(self) != 0)
        return -1;
    return s_subscribe(part);
}

/* Queue the messages of list (taking them) and wake the loop. */
static void s_queue(nats_part_t *part, natsMsgList *list)
{
    nats_t *self = part->owner;
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < list->Count; i++) {
        nats_item_t *it = xcalloc(1, sizeof *it);
        it->msg = list->Msgs[i];
        it->part = part;
        list->Msgs[i] = NULL;
        if (self->tail)
            self->tail->next = it;
        else
            self->head = it;
        self->tail = it;
        self->n_queued++;
    }
    pthread_mutex_unlock(&self->lock);
    atomic_fetch_add(&self->messages, (uint_fast64_t)list->Count);
    natsMsgList_Destroy(list);
    uint64_t one = 1;
    if (write(self->wake_fd, &one, sizeof one) != sizeof one && errno != EAGAIN)
        log_err("[nats] cannot wake the loop: %s", strerror(errno));
}

static void *s_fetch_main(void *arg)
{
    nats_part_t *part = arg;
    nats_t *self = part->owner;
    char why[512];

    for (;;) {
        pthread_mutex_lock(&self->lock);
        /* Wait for the connection and for room in the queue. */
        while (!self->stopping && (atomic_load(&self->state) != NATS_ST_CONNECTED ||
                                   self->n_queued >= S_QUEUE_MAX))
            s_wait_locked(self, 1000);
        bool stop = self->stopping;
        pthread_mutex_unlock(&self->lock);
        if (stop)
            break;
        if (!atomic_load(&part->active)) {
            /* Not held (leases): the stream exists all the same, for the
             * publishers; then wait to be given the partition. */
            part->idle = true;
            s_ensure_stream(self);
            pthread_mutex_lock(&self->lock);
            if (!atomic_load(&part->active))
                s_wait_locked(self, 1000);
            pthread_mutex_unlock(&self->lock);
            continue;
        }

        if (part->idle && part->sub)
            s_log_pending(part); /* taken again */
        part->idle = false;
        if (part->sub == NULL || atomic_exchange(&part->check, false)) {
            int rc = s_ensure_stream(self);
            if (rc == 0)
                rc = part->sub ? s_check_consumer(part) : s_subscribe(part);
            if (rc != 0) {
                if (part->sub)
                    atomic_store(&part->check, true);
                if (!s_pause_ms(self, 1000))
                    break;
                continue;
            }
        }

        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, part->sub, S_FETCH_BATCH, S_FETCH_WAIT_MS,
                                              &jerr);
        if (s == NATS_OK) {
            if (part->failing)
                log_info("[nats] %s: fetching again", part->subject);
            part->failing = false;
            s_queue(part, &list);
            continue;
        }
        natsMsgList_Destroy(&list);
        if (s == NATS_TIMEOUT)
            continue;
        if (atomic_load(&self->state) != NATS_ST_CONNECTED)
            continue; /* the disconnection is logged, and waited for above */
        if (!part->failing)
            log_warn("[nats] %s: fetch failed: %s; retrying", part->subject,
                     s_why(s, jerr, why, sizeof why));
        part->failing = true;
        atomic_store(&part->check, true);
        if (!s_pause_ms(self, 1000))
            break;
    }
    return NULL;
}

/* -- the loop's side ------------------------------------------------------ */

/* ingest_done_fn: the message's events are durable (or it was refused
 * whole): acknowledge it; or it is handed back (not committed): JetStream
 * delivers it again after the ack wait. */
static void s_done(void *arg, bool committed)
{
    nats_item_t *it = arg;
    nats_t *self = it->part->owner;
    if (committed) {
        natsStatus s = natsMsg_Ack(it->msg, NULL);
        if (s == NATS_OK)
            atomic_fetch_add(&self->acked, 1);
        else
            log_debug("[nats] %s: acknowledgement not sent (%s); the message comes again "
                      "and its events are recognised as duplicates", it->part->subject,
                      natsStatus_GetText(s));
    } else {
        natsMsg_Nak(it->msg, NULL);
    }
    natsMsg_Destroy(it->msg);
    free(it);
}

static void s_drain(nats_t *self)
{
    unsigned budget = self->budget;
    bool more = false;
    while (!self->paused) {
        pthread_mutex_lock(&self->lock);
        nats_item_t *it = self->head;
        if (it) {
            self->head = it->next;
            if (self->head == NULL)
                self->tail = NULL;
            if (self->n_queued-- == S_QUEUE_MAX)
                pthread_cond_broadcast(&self->cond);
        }
        more = self->head != NULL;
        pthread_mutex_unlock(&self->lock);
        if (it == NULL)
            break;
        it->next = NULL;
        if (!atomic_load(&it->part->active)) {
            /* Given up meanwhile (fencing): not applied here; refused
             * (Nak), so that this instance's consumer has it again as
             * soon as the partition comes back, not after the ack wait. */
            natsMsg_Nak(it->msg, NULL);
            natsMsg_Destroy(it->msg);
            free(it);
            continue;
        }
        ingest_source_t src = {
            .origin = it->part->origin,
            .partition = (int)it->part->partition,
            .n_partitions = self->n_partitions,
            .done = s_done,
            .done_arg = it,
        };
        bool yielded = ingest_submit(self->ingest, natsMsg_GetData(it->msg),
                                     (size_t)natsMsg_GetDataLength(it->msg), &src);
        if (yielded || --budget == 0)
            break;
    }
    if (more && !self->paused) {
        /* Other sockets get their turn first (STYLE: re-arm by a timer). */
        struct timeval zero = {0, 0};
        evtimer_add(self->ev_drain, &zero);
    }
}

/* The judge's alerts, in their order, on the alerts socket and NATS. */
static void s_publish_judged(nats_t *self)
{
    pthread_mutex_lock(&self->lock);
    nats_judged_t *j = self->judged;
    self->judged = NULL;
    pthread_mutex_unlock(&self->lock);
    nats_judged_t *rev = NULL;
    while (j) {
        nats_judged_t *next = j->next;
        j->next = rev;
        rev = j;
        j = next;
    }
    while (rev) {
        nats_judged_t *next = rev->next;
        ingest_publish_alert(self->ingest, rev->topic, rev->buf, rev->len);
        free(rev->buf);
        free(rev);
        rev = next;
    }
}

static void s_on_wake(evutil_socket_t fd, short what, void *arg)
{
    nats_t *self = arg;
    uint64_t n;
    if (read(self->wake_fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_err("[nats] eventfd: %s", strerror(errno));
    s_publish_judged(self);
    s_drain(self);
}

/* nats_judge_alert_fn (the judge's thread): queued for the loop. */
static void s_on_judged(void *arg, const char *topic, uint8_t *buf, size_t len)
{
    nats_t *self = arg;
    nats_judged_t *j = xcalloc(1, sizeof *j);
    snprintf(j->topic, sizeof j->topic, "%s", topic);
    j->buf = buf;
    j->len = len;
    pthread_mutex_lock(&self->lock);
    j->next = self->judged;
    self->judged = j;
    pthread_mutex_unlock(&self->lock);
    uint64_t one = 1;
    if (write(self->wake_fd, &one, sizeof one) != sizeof one && errno != EAGAIN)
        log_err("[nats] cannot wake the loop: %s", strerror(errno));
}

static void s_on_drain(evutil_socket_t fd, short what, void *arg)
{
    s_drain(arg);
}

/* ingest_alert_fn: the alert on funnel.alerts.<topic>, core NATS (at most
 * once, live; libnats buffers what is published while it reconnects). */
static void s_on_alert(void *arg, const char *topic, const uint8_t *buf, size_t len)
{
    nats_t *self = arg;
    char subject[128];
    int n = snprintf(subject, sizeof subject, NATS_SUBJECT_ALERTS "%s", topic);
    if (n < 0 || (size_t)n >= sizeof subject)
        return;
    /* A token is never empty nor a wildcard, and subjects hold no blanks. */
    for (char *c = subject + strlen(NATS_SUBJECT_ALERTS); *c; c++)
        if (*c == ' ' || *c == '\t' || *c == '*' || *c == '>')
            *c = '_';
    if (natsConnection_Publish(self->nc, subject, buf, (int)len) == NATS_OK)
        atomic_fetch_add(&self->alerts, 1);
    else
        atomic_fetch_add(&self->alerts_failed, 1);
}

/* ingest_pause_fn. */
static void s_on_pause(void *arg, bool pause)
{
    nats_t *self = arg;
    self->paused = pause;
    if (!pause) {
        struct timeval zero = {0, 0};
        evtimer_add(self->ev_drain, &zero);
    }
}

/* -- lifecycle ------------------------------------------------------------- */

/* `instance`, or the host name (what a consumer name may hold) and a hash
 * of the absolute state_dir: stable across restarts of one installation. */
static void s_instance_name(const cfg_t *cfg, char *out, size_t cap)
{
    if (cfg->instance[0]) {
        snprintf(out, cap, "%s", cfg->instance);
        return;
    }
    char host[64] = "funneld";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    for (char *c = host; *c; c++)
        if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') && !(*c >= '0' && *c <= '9') &&
            *c != '-')
            *c = '_';
    char *abs = realpath(cfg->state_dir, NULL);
    const char *dir = abs ? abs : cfg->state_dir;
    snprintf(out, cap, "%s-%08x", host, fnv1a32(dir, strlen(dir)));
    free(abs);
}

/* Count partition p's state in what this instance answers, or not: the
 * state's partition p is cluster partition p (one state partition in all
 * when the cluster has one). */
static void s_count(nats_t *self, unsigned p, bool own)
{
    if (self->store && p < store_parts(self->store))
        store_set_counted(self->store, p, own);
}

/* nats_lease_fn (the lease thread): start or stop consuming partition p.
 * A partition claimed is counted at once; after a round that reached the
 * bucket, exactly those held are (the others are owned elsewhere: given
 * to a joiner, claimed by another after this instance's lease lapsed).
 * Until the first such round, and while the bucket cannot be reached,
 * what the state has stays counted: this instance answers for it. */
static void s_on_lease(void *arg, unsigned p, bool own)
{
    nats_t *self = arg;
    if (p == NATS_LEASE_ROUND) {
        for (unsigned i = 0; i < self->n_partitions; i++)
            s_count(self, i, nats_owns(self, i));
        return;
    }
    nats_part_t *part = &self->parts[p];
    atomic_store(&part->active, own);
    if (own)
        s_count(self, p, true);
    pthread_mutex_lock(&self->lock);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

/* nats_query_owns_fn. */
static bool s_owns(void *arg, unsigned p)
{
    return nats_owns(arg, p);
}

nats_t *nats_new(struct event_base *base, const cfg_t *cfg, char *err, size_t errlen)
{
    nats_t *self = xcalloc(1, sizeof *self);
    self->base = base;
    self->urls = xstrdup(cfg->nats);
    self->credentials = xstrdup(cfg->nats_credentials);
    self->stream = xstrdup(cfg->stream);
    self->n_partitions = cfg->cluster_partitions;
    self->replicas = cfg->stream_replicas;
    self->budget = cfg->drain_budget ? cfg->drain_budget : 1;
    self->wake_fd = -1;
    pthread_mutex_init(&self->lock, NULL);
    pthread_mutex_init(&self->setup_lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    atomic_init(&self->state, NATS_ST_CONNECTING);
    atomic_init(&self->messages, 0);
    atomic_init(&self->acked, 0);
    atomic_init(&self->alerts, 0);
    atomic_init(&self->alerts_failed, 0);
    snprintf(self->url, sizeof self->url, "%s", self->urls);

    self->owned = xcalloc(self->n_partitions, sizeof *self->owned);
    if (nats_cfg_owns(cfg->owns, self->n_partitions, self->owned, err, errlen) < 0)
        goto fail;
    /* Without `owns`, every partition may come to this instance by a
     * lease: each has its consumer and fetch thread, idle while not held. */
    self->leased = cfg->owns[0] == '\0';
    self->lease_ms = cfg->lease_ms;
    s_instance_name(cfg, self->instance, sizeof self->instance);
    for (unsigned p = 0; p < self->n_partitions; p++)
        self->n_parts += self->owned[p];
    self->parts = xcalloc(self->n_parts ? self->n_parts : 1, sizeof *self->parts);
    size_t k = 0;
    for (unsigned p = 0; p < self->n_partitions; p++) {
        if (!self->owned[p])
            continue;
        nats_part_t *part = &self->parts[k++];
        part->owner = self;
        part->partition = p;
        atomic_init(&part->check, false);
        snprintf(part->subject, sizeof part->subject, NATS_SUBJECT_IN "%u", p);
        /* Leased, each instance has its own consumer of a partition: one
         * taking it over replays the subject from its first message into
         * its state; static, the partition's consumer is the cluster's. */
        if (self->leased)
            snprintf(part->durable, sizeof part->durable, "funneld-%s-p%u", self->instance, p);
        else
            snprintf(part->durable, sizeof part->durable, "funneld-p%u", p);
        atomic_init(&part->active, !self->leased);
        snprintf(part->origin, sizeof part->origin, "nats %s", part->subject);
    }
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wake_fd < 0) {
        snprintf(err, errlen, "nats: eventfd: %s", strerror(errno));
        goto fail;
    }
    self->ev_wake = event_new(base, self->wake_fd, EV_READ | EV_PERSIST, s_on_wake, self);
    self->ev_drain = evtimer_new(base, s_on_drain, self);
    if (self->ev_wake == NULL || self->ev_drain == NULL) {
        snprintf(err, errlen, "nats: cannot create events");
        goto fail;
    }
    return self;
fail:
    nats_destroy(&self);
    return NULL;
}

/* natsOptions for self's settings. Returns 0, or -1 with err. */
static int s_options(nats_t *self, char *err, size_t errlen)
{
    char *servers[64];
    int n = 0;
    char *copy = xstrdup(self->urls), *save = NULL;
    for (char *u = strtok_r(copy, ",", &save); u && n < 64; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        size_t l = strlen(u);
        while (l > 0 && u[l - 1] == ' ')
            u[--l] = '\0';
        if (l)
            servers[n++] = u;
    }
    natsStatus s = natsOptions_Create(&self->nopts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(self->nopts, (const char **)servers, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(self->nopts, "funneld");
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(self->nopts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(self->nopts, NATS_RECONNECT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(self->nopts, true, s_on_connected, self);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(self->nopts, s_on_disconnected, self);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(self->nopts, s_on_reconnected, self);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(self->nopts, s_on_closed, self);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(self->nopts, s_on_error, self);
    free(copy);
    if (s != NATS_OK) {
        snprintf(err, errlen, "nats: %s", nats_GetLastError(NULL));
        return -1;
    }
    if (self->credentials[0] &&
        natsOptions_SetUserCredentialsFromFiles(self->nopts, self->credentials, NULL) !=
            NATS_OK) {
        snprintf(err, errlen, "nats_credentials %s: %s", self->credentials,
                 nats_GetLastError(NULL));
        return -1;
    }
    return 0;
}

int nats_start(nats_t *self, ingest_t *ingest, store_t *store, char *err, size_t errlen)
{
    self->ingest = ingest;
    self->store = store;
    /* Pinned: the partitions of `owns`; leased: every one until the
     * first round of the leases (s_on_lease). */
    for (unsigned p = 0; p < self->n_partitions && !self->leased; p++)
        s_count(self, p, nats_owns(self, p));
    ingest_add_intake_fn(ingest, s_on_pause, self);
    if (event_add(self->ev_wake, NULL) != 0) {
        snprintf(err, errlen, "nats: cannot watch the eventfd");
        return -1;
    }
    if (s_options(self, err, errlen) == -1)
        return -1;
    natsStatus s = natsConnection_Connect(&self->nc, self->nopts);
    if (s == NATS_OK) {
        atomic_store(&self->state, NATS_ST_CONNECTED);
        s_set_url(self, self->nc);
        log_info("[nats] connected to %s", self->url);
    } else if (s == NATS_NOT_YET_CONNECTED) {
        log_warn("[nats] cannot reach %s: retrying every %d ms in the background; "
                 "queries and the ZeroMQ ingest are served meanwhile",
                 self->urls, NATS_RECONNECT_MS);
    } else {
        snprintf(err, errlen, "nats: cannot connect to %s: %s", self->urls,
                 nats_GetLastError(NULL));
        return -1;
    }
    ingest_set_alert_sink(ingest, s_on_alert, self);
    jsOptions jo;
    jsOptions_Init(&jo);
    if (natsConnection_JetStream(&self->js, self->nc, &jo) != NATS_OK) {
        snprintf(err, errlen, "nats: JetStream: %s", nats_GetLastError(NULL));
        return -1;
    }
    for (size_t i = 0; i < self->n_parts; i++) {
        if (pthread_create(&self->parts[i].thread, NULL, s_fetch_main, &self->parts[i]) != 0) {
            snprintf(err, errlen, "nats: cannot start a fetch thread");
            return -1;
        }
        self->parts[i].started = true;
    }
    if (self->query_ctx &&
        (self->queries = nats_query_new(self->nc, self->query_ctx, s_owns, self)) == NULL) {
        snprintf(err, errlen, "nats: cannot start the query responder thread");
        return -1;
    }
    if (self->leased) {
        char bucket[96];
        snprintf(bucket, sizeof bucket, "%s-owners", self->stream);
        jsOptions lo;
        jsOptions_Init(&lo);
        lo.Wait = self->lease_ms / 8;
        if (natsConnection_JetStream(&self->lease_js, self->nc, &lo) != NATS_OK) {
            snprintf(err, errlen, "nats: JetStream: %s", nats_GetLastError(NULL));
            return -1;
        }
        self->lease = nats_lease_new(self->nc, self->lease_js, bucket, self->instance, self->n_partitions,
                                     self->replicas, self->lease_ms, s_on_lease, self);
        if (self->lease == NULL) {
            snprintf(err, errlen, "nats: cannot start the lease thread");
            return -1;
        }
        log_info("[nats] cluster of %u partitions, stream %s: instance %s claims its share "
                 "by leases of %lld ms in bucket %s", self->n_partitions, self->stream,
                 self->instance, (long long)self->lease_ms, bucket);
    } else {
        log_info("[nats] cluster of %u partitions, stream %s: consuming %zu of them (owns)",
                 self->n_partitions, self->stream, self->n_parts);
    }
    nats_judge_opts_t jo2 = {
        .stream = self->stream,
        .instance = self->instance,
        .n_partitions = self->n_partitions,
        .replicas = self->replicas,
        .leased = self->leased,
        .owns = s_owns,
        .alert = s_on_judged,
        .arg = self,
    };
    nats_judge_t *judge = nats_judge_new(self->nc, self->js, &jo2);
    if (judge == NULL) {
        snprintf(err, errlen, "nats: cannot start the conversion check's thread");
        return -1;
    }
    __atomic_store_n(&self->judge, judge, __ATOMIC_RELEASE); /* nats_stats reads it */
    return 0;
}

void nats_destroy(nats_t **self_p)
{
    nats_t *self = *self_p;
    if (self == NULL)
        return;
    nats_query_destroy(&self->queries);
    nats_judge_t *judge = self->judge;
    __atomic_store_n(&self->judge, NULL, __ATOMIC_RELEASE);
    nats_judge_destroy(&judge);
    while (self->judged) { /* not published: the process stops */
        nats_judged_t *j = self->judged;
        self->judged = j->next;
        free(j->buf);
        free(j);
    }
    /* First the leases (released: the others take over at once). */
    nats_lease_destroy(&self->lease);
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < self->n_parts; i++)
        if (self->parts[i].started)
            pthread_join(self->parts[i].thread, NULL);
    /* Queued, never handed to ingest: JetStream delivers them again. */
    while (self->head) {
        nats_item_t *it = self->head;
        self->head = it->next;
        natsMsg_Nak(it->msg, NULL);
        natsMsg_Destroy(it->msg);
        free(it);
    }
    if (self->nc && natsConnection_Status(self->nc) == NATS_CONN_STATUS_CONNECTED)
        natsConnection_FlushTimeout(self->nc, 1000); /* the last acknowledgements */
    for (size_t i = 0; i < self->n_parts; i++) {
        nats_part_t *part = &self->parts[i];
        natsSubscription_Destroy(part->sub);
        for (size_t j = 0; j < part->n_old; j++)
            natsSubscription_Destroy(part->old[j]);
        free(part->old);
    }
    jsCtx_Destroy(self->js);
    jsCtx_Destroy(self->lease_js);
    if (self->nc) {
        atomic_store(&self->state, NATS_ST_CLOSED);
        natsConnection_Close(self->nc);
        natsConnection_Destroy(self->nc);
    }
    natsOptions_Destroy(self->nopts);
    if (self->ev_wake)
        event_free(self->ev_wake);
    if (self->ev_drain)
        event_free(self->ev_drain);
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    /* libnats' own threads and memory, so that nothing outlives funneld's. */
    nats_CloseAndWait(2000);
    pthread_mutex_destroy(&self->lock);
    pthread_mutex_destroy(&self->setup_lock);
    pthread_cond_destroy(&self->cond);
    free(self->parts);
    free(self->owned);
    free(self->urls);
    free(self->credentials);
    free(self->stream);
    free(self);
    *self_p = NULL;
}
