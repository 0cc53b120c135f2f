/* partition.c: see partition.h. */
#include "partition.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "codec.h"
#include "fnv.h"
#include "log.h"
#include "xalloc.h"

#define S_RETRY_MS 1000

struct partition {
    store_t *store;
    partition_ops_t ops;
    void *arg;
    partition_opts_t opts;

    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;       /* work, pause, stop, idle */
    bool stop;
    unsigned paused;           /* pause requests outstanding */
    bool busy;                 /* inside a group */
    bool split;                /* store_split_begin done, _end not yet */
    uint64_t notified;         /* partition_notify calls (wakes the thread) */

    /* The thread's own. */
    partition_entry_t *entries;
    const Funnel__V1__Event **decoded; /* ops.decoded's answer for a chunk */
    arena_t *arena;
    uint64_t applied;          /* the state's applied sequence */
    bool failing;              /* a store error is being retried */
    uint64_t hold_at;          /* FUNNELD_PARTITION_HOLD: apply up to here */
};

/* -- the thread ------------------------------------------------------------ */

typedef struct {
    partition_t *p;
    size_t n;
    size_t max;
    uint64_t from;             /* the first log sequence asked for */
    uint64_t last;             /* the last log sequence read */
    bool decoded;              /* p->decoded holds ops.decoded's answer */
} s_chunk_t;

static void s_on_log_event(uint64_t seq, const void *raw, size_t len, void *arg)
{
    s_chunk_t *c = arg;
    const Funnel__V1__Event *ev = NULL;
    c->last = seq;
    if (c->decoded && seq >= c->from && seq - c->from < c->max)
        ev = c->p->decoded[seq - c->from];
    if (ev == NULL) {
        /* Another partition's lead: stepped over without decoding it
         * (with many partitions, each reads every entry of the log). */
        const uint8_t *id;
        size_t n_id;
        if (c->p->opts.count > 1 && codec_event_lead_peek(raw, len, &id, &n_id) == 0 &&
            memchr(id, '\0', n_id) == NULL &&
            fnv1a32(id, n_id) % c->p->opts.count != c->p->opts.index)
            return;
        ProtobufCAllocator alloc = arena_pb_allocator(c->p->arena);
        ev = funnel__v1__event__unpack(&alloc, len, raw);
    }
    if (ev == NULL) {
        log_err("[partition %u] log event %llu is not decodable; skipped", c->p->opts.index,
                (unsigned long long)seq);
        return;
    }
    /* Another partition's lead: stepped over. */
    if (c->p->opts.count > 1 && partition_of(ev->lead_id, c->p->opts.count) != c->p->opts.index)
        return;
    c->p->entries[c->n].seq = seq;
    c->p->entries[c->n].ev = ev;
    c->n++;
}

/* Read the next chunk, at most max entries from the applied sequence on,
 * back from the log. Returns the number of log entries read (those not
 * decodable included), or -1. */
static long s_read(partition_t *self, size_t max, s_chunk_t *c)
{
    arena_reset(self->arena);
    c->p = self;
    c->n = 0;
    c->max = max;
    c->from = self->applied + 1;
    c->last = self->applied;
    c->decoded = self->ops.decoded != NULL;
    if (c->decoded)
        self->ops.decoded(self->arg, c->from, max, self->decoded);
    if (store_read_begin(self->store) != STORE_OK)
        return -1;
    long n = store_read_log(self->store, self->applied + 1, max, s_on_log_event, c);
    store_read_end(self->store);
    return n;
}

/* Apply the chunk in one state group. Returns a store verdict. */
static int s_group_tries(partition_t *self, const s_chunk_t *c);

static int s_group(partition_t *self, const s_chunk_t *c)
{
    /* Between groups a checkpoint may hold the writer (before the peers'
     * snapshots are taken: none is held open meanwhile). */
    store_state_enter(self->store);
    int rc = s_group_tries(self, c);
    store_state_leave(self->store);
    return rc;
}

static int s_group_tries(partition_t *self, const s_chunk_t *c)
{
    for (int tries = 0; tries < 8; tries++) {
        if (self->ops.begin)
            self->ops.begin(self->arg);
        int rc = store_state_begin(self->store);
        if (rc != STORE_OK) {
            if (self->ops.aborted)
                self->ops.aborted(self->arg);
            return rc;
        }
        if (self->ops.apply(self->arg, self->entries, c->n) != 0) {
            /* The sticky error comes out of the commit. */
        }
        if (self->opts.count > 1)
            store_state_skip(self->store, c->last);
        rc = store_state_commit(self->store);
        if (rc == STORE_OK)
            return rc;
        if (self->ops.aborted)
            self->ops.aborted(self->arg);
        if (rc != STORE_EFULL || store_grow(self->store) != STORE_OK)
            return rc;
    }
    return STORE_ERR;
}

/* Apply what is committed beyond the applied sequence, chunk by chunk.
 * Returns 0 when caught up (or asked to stop or pause), -1 after a store
 * error (to be retried). */
static int s_catch_up(partition_t *self)
{
    size_t chunk = self->opts.chunk_events;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        bool hold = self->stop || self->paused;
        pthread_mutex_unlock(&self->lock);
        uint64_t committed = store_committed_seq(self->store);
        if (committed > self->hold_at)
            committed = self->hold_at;
        if (committed <= self->applied || hold)
            return 0;
        uint64_t want = committed - self->applied;
        size_t max = want < chunk ? (size_t)want : chunk;
        s_chunk_t c;
        long n = s_read(self, max, &c);
        if (n < 0)
            return -1;
        if (n == 0) {
            log_err("[partition %u] the log holds nothing at %llu, committed up to %llu",
                    self->opts.index, (unsigned long long)self->applied + 1,
                    (unsigned long long)committed);
            return -1;
        }
        int rc = s_group(self, &c);
        if (rc == STORE_ETXNFULL && max > 1) {
            chunk = max / 2;
            continue;
        }
        if (rc != STORE_OK)
            return -1;
        uint64_t before = self->applied;
        self->applied = store_applied_seq(self->store);
        if (self->applied < before + (uint64_t)n) {
            /* Entries that could not even be decoded: step over them,
             * as a replay does. */
            log_err("[partition %u] log entries %llu..%llu cannot be applied",
                    self->opts.index, (unsigned long long)before + 1,
                    (unsigned long long)before + (uint64_t)n);
            if (self->ops.aborted) /* what the group kept goes */
                self->ops.aborted(self->arg);
            return -1;
        }
        if (self->failing) {
            log_info("[partition %u] the state commits again", self->opts.index);
            self->failing = false;
            store_set_stalled(self->store, false);
        }
        if (self->ops.applied)
            self->ops.applied(self->arg, self->applied);
        chunk = self->opts.chunk_events;
    }
}

static void *s_main(void *arg)
{
    partition_t *self = arg;
    char name[16];
    snprintf(name, sizeof name, "partition%u", self->opts.index);
    pthread_setname_np(pthread_self(), name);
    store_split_begin(self->store);
    self->applied = store_applied_seq(self->store);
    /* For tests: a state behind its Acks, deterministically. */
    const char *hold = getenv("FUNNELD_PARTITION_HOLD");
    self->hold_at = UINT64_MAX;
    if (hold && strcmp(hold, "1") == 0) {
        self->hold_at = store_committed_seq(self->store);
        log_warn("[partition %u] FUNNELD_PARTITION_HOLD=1: nothing logged after %llu is "
                 "applied", self->opts.index, (unsigned long long)self->hold_at);
    }
    pthread_mutex_lock(&self->lock);
    self->split = true;
    pthread_cond_broadcast(&self->cond);
    uint64_t seen = self->notified;
    for (;;) {
        /* Wait for a commit beyond what is applied (notify), unless
         * paused; stop when asked, whatever is left (partition_stop waits
         * for the catch-up first when it should). */
        while (!self->stop && (self->paused || self->notified == seen))
            pthread_cond_wait(&self->cond, &self->lock);
        if (self->stop)
            break;
        seen = self->notified;
        self->busy = true;
        pthread_mutex_unlock(&self->lock);

        int rc = s_catch_up(self);

        pthread_mutex_lock(&self->lock);
        self->busy = false;
        pthread_cond_broadcast(&self->cond);
        if (rc != 0) {
            if (!self->failing)
                log_err("[partition %u] cannot apply the log from %llu to the state; "
                        "retrying every second", self->opts.index,
                        (unsigned long long)self->applied + 1);
            self->failing = true;
            store_set_stalled(self->store, true);
            /* Again in a second, or as soon as the log commits again (the
             * disk may have room again), or when asked to stop. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += S_RETRY_MS / 1000;
            uint64_t at = self->notified;
            while (!self->stop && self->notified == at &&
                   pthread_cond_timedwait(&self->cond, &self->lock, &until) != ETIMEDOUT) {
            }
            seen = self->notified - 1; /* try again */
        } else if (store_committed_seq(self->store) > self->applied && !self->paused) {
            seen = self->notified - 1; /* committed meanwhile */
        }
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

/* -- the owner's side ------------------------------------------------------ */

partition_t *partition_new(store_t *store, const partition_ops_t *ops, void *arg,
                           const partition_opts_t *opts)
{
    partition_t *self = xcalloc(1, sizeof *self);
    self->store = store;
    self->ops = *ops;
    self->arg = arg;
    self->opts = *opts;
    if (self->opts.chunk_events == 0)
        self->opts.chunk_events = 8192;
    self->entries = xcalloc(self->opts.chunk_events, sizeof *self->entries);
    if (self->ops.decoded)
        self->decoded = xcalloc(self->opts.chunk_events, sizeof *self->decoded);
    self->arena = arena_new(1 << 20);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    return self;
}

int partition_start(partition_t *self)
{
    if (self->started)
        return 0;
    int rc = pthread_create(&self->thread, NULL, s_main, self);
    if (rc != 0) {
        log_err("[partition %u] cannot start its thread: %s", self->opts.index,
                strerror(rc));
        return -1;
    }
    self->started = true;
    pthread_mutex_lock(&self->lock);
    while (!self->split)
        pthread_cond_wait(&self->cond, &self->lock);
    pthread_mutex_unlock(&self->lock);
    return 0;
}

void partition_notify(partition_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->notified++;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

bool partition_pause(partition_t *self, int wait_ms)
{
    bool caught_up = true;
    if (self->started)
        caught_up = store_wait_applied(self->store, store_committed_seq(self->store),
                                       wait_ms) == 1;
    pthread_mutex_lock(&self->lock);
    self->paused++;
    while (self->busy)
        pthread_cond_wait(&self->cond, &self->lock);
    pthread_mutex_unlock(&self->lock);
    return caught_up;
}

void partition_resume(partition_t *self)
{
    pthread_mutex_lock(&self->lock);
    if (self->paused > 0)
        self->paused--;
    self->notified++;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

bool partition_stop(partition_t *self, int wait_ms)
{
    if (!self->started)
        return true;
    bool caught_up;
    if (wait_ms > 0) {
        /* Up to wait_ms, unless the state is stalled (cannot commit). */
        partition_notify(self);
        caught_up = store_wait_applied(self->store, store_committed_seq(self->store),
                                       wait_ms) == 1;
    } else {
        caught_up = store_applied_published(self->store) >= store_committed_seq(self->store);
    }
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    self->started = false;
    store_split_end(self->store);
    if (!caught_up)
        log_warn("[partition %u] stopped behind the log: the next start replays "
                 "from %llu", self->opts.index,
                 (unsigned long long)store_applied_seq(self->store) + 1);
    return caught_up;
}

void partition_destroy(partition_t **self_p)
{
    partition_t *self = *self_p;
    if (self == NULL)
        return;
    partition_stop(self, 0);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->cond);
    arena_destroy(&self->arena);
    free(self->entries);
    free(self->decoded);
    free(self);
    *self_p = NULL;
}

unsigned partition_of(const char *lead_id, unsigned n)
{
    if (n <= 1)
        return 0;
    return fnv1a32(lead_id, strlen(lead_id)) % n;
}
