/* checkpoint.c: see checkpoint.h. */
#include "checkpoint.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/ioprio.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define S_RETRY_MS 30000      /* after a failure, at the latest */
#define S_POLL_MS 1000        /* the events trigger is looked at this often */
#define S_HEADROOM_WAIT_MS 1000
#define S_STATE_ROOM_WAIT_MS 5000 /* the state owner: at its next group */
#define S_HEADROOM_POLL_MS 5
#define S_NICE 10             /* the checkpoint thread's CPU priority */
#define S_YIELDS_MAX 8        /* a checkpoint gives way at most this often in a row */

struct checkpoint {
    store_t *store;
    checkpoint_opts_t opts;
    struct event *ev_grow;     /* the loop's side of grow_fd */
    int grow_fd;               /* eventfd: "grow the maps ahead, please" */
    pthread_t thread;
    bool started;

    /* Everything below under lock; cond wakes the thread (a request, a
     * stop) and the thread waiting for the loop's growing ahead. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    uint64_t requested;        /* tickets handed out */
    uint64_t serving;          /* the checkpoint being written serves up to this */
    uint64_t done;             /* tickets up to this were served by a success */
    uint64_t failed_upto;      /* ... by a failure (when above done) */
    uint64_t grow_asked;       /* headroom requests to the loop */
    uint64_t grow_done;
    uint64_t last_seq;         /* sequence of the newest checkpoint on disk */
    int64_t next_due_ms;       /* monotonic; automatic checkpoints */
    char replacing[64];        /* the checkpoint the recovery consumed, "" */
    checkpoint_stats_t st;
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_deadline(struct timespec *ts, int64_t ms_from_now)
{
    /* cond is on CLOCK_MONOTONIC (see checkpoint_new). */
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms_from_now / 1000;
    ts->tv_nsec += (ms_from_now % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* The loop's side: grow the maps ahead of the copy, then say so. Loop
 * thread; groups are begun and committed within one callback, so none is
 * open here. */
static void s_on_grow(evutil_socket_t fd, short what, void *arg)
{
    checkpoint_t *self = arg;
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof n) != sizeof n)
        return;
    pthread_mutex_lock(&self->lock);
    uint64_t asked = self->grow_asked;
    pthread_mutex_unlock(&self->lock);
    if (store_grow_ahead(self->store) != STORE_OK)
        log_warn("[checkpoint] cannot grow the maps ahead of the checkpoint; it goes on");
    pthread_mutex_lock(&self->lock);
    self->grow_done = asked;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

/* Whether an automatic checkpoint is due now: the interval passed, or
 * opts.events were logged since the newest checkpoint; never when nothing
 * was logged since. Under lock. */
static bool s_auto_due(checkpoint_t *self, int64_t now)
{
    if (self->opts.interval_ms <= 0)
        return false;
    store_stats_t st;
    uint64_t last_seq;
    store_stats_read(self->store, &st, &last_seq);
    if (last_seq <= self->last_seq)
        return false;
    if (now >= self->next_due_ms)
        return true;
    return self->opts.events > 0 && last_seq - self->last_seq >= self->opts.events;
}

/* Ask the loop to grow the maps ahead and wait for it (at most
 * S_HEADROOM_WAIT_MS), then the thread that writes store's state (a
 * partition's, split) to grow its map when it must (at most
 * S_STATE_ROOM_WAIT_MS: it waits for the map's lock, which the loop's
 * snapshots hold most of the time at full load). Checkpoint thread,
 * without lock. */
static void s_headroom(checkpoint_t *self, store_t *store)
{
    uint64_t one = 1;
    pthread_mutex_lock(&self->lock);
    uint64_t want = ++self->grow_asked;
    pthread_mutex_unlock(&self->lock);
    if (write(self->grow_fd, &one, sizeof one) != sizeof one)
        return;
    struct timespec ts;
    s_deadline(&ts, S_HEADROOM_WAIT_MS);
    pthread_mutex_lock(&self->lock);
    while (self->grow_done < want && !self->stop)
        if (pthread_cond_timedwait(&self->cond, &self->lock, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&self->lock);
    /* The state owner grows it at its next group, which signals nothing
     * of ours: looked at every S_HEADROOM_POLL_MS. */
    uint64_t ticket = store_state_ahead_ask(store);
    int64_t until = s_mono_ms() + S_STATE_ROOM_WAIT_MS;
    while (!store_state_ahead_served(store, ticket) && s_mono_ms() < until) {
        pthread_mutex_lock(&self->lock);
        bool stop = self->stop;
        pthread_mutex_unlock(&self->lock);
        if (stop)
            break;
        struct timespec nap = {0, S_HEADROOM_POLL_MS * 1000000L};
        nanosleep(&nap, NULL);
    }
}

/* One store's checkpoint (the primary's or a partition's). A copy that
 * gave way to the state's map growing (STORE_EAGAIN) is begun again at
 * once, after growing ahead, at most S_YIELDS_MAX times in a row (the
 * maps double each time, and the pages freed meanwhile are reused, so it
 * seldom gives way twice); beyond that it counts as failed. A
 * partition's copy holds its writer and seldom takes long (see
 * store_checkpoint.c); every copy goes as fast as the machine lets its
 * low-priority threads: every
 * second a copy holds its snapshot takes fresh pages for every group
 * commit (a copy paced for the disk's sake once went at 10 MB/s while the
 * state's file grew at 80 MB/s, and gave way to the map after 47 s).
 * Returns a store verdict, err filled on an error. Checkpoint thread,
 * without lock. */
static int s_copy(checkpoint_t *self, store_t *store, store_ckpt_t *c, char *err,
                  size_t errlen, int64_t t0)
{
    int rc;
    for (unsigned yields = 0;; yields++) {
        s_headroom(self, store);
        rc = store_checkpoint(store, c, err, errlen);
        if (rc != STORE_EAGAIN)
            break;
        pthread_mutex_lock(&self->lock);
        self->st.yielded++;
        bool stop = self->stop;
        pthread_mutex_unlock(&self->lock);
        if (stop || yields + 1 >= S_YIELDS_MAX) {
            snprintf(err, errlen, "gave way to the state's map growing %u times in a row",
                     yields + 1);
            rc = STORE_ERR;
            break;
        }
        log_info("[checkpoint] gave way to the state's map growing after %.2f s; "
                 "taking it again", (double)(s_mono_ms() - t0) / 1000);
    }
    return rc;
}

/* Write one checkpoint of every partition and account for it (see
 * checkpoint.h). Checkpoint thread, without lock. */
static void s_take(checkpoint_t *self)
{
    store_ckpt_t c;
    char err[512];
    int64_t t0 = s_mono_ms();
    int rc = s_copy(self, self->store, &c, err, sizeof err, t0);
    uint64_t held_max = rc == STORE_OK ? c.held_ms : 0;
    /* With partitions, each one's own, at its own applied sequence (a
     * restore replays each from its own); the primary's describes them. */
    for (unsigned i = 1; rc == STORE_OK && i < store_parts(self->store); i++) {
        store_t *part = store_part(self->store, i);
        store_ckpt_t pc;
        char perr[480];
        rc = s_copy(self, part, &pc, perr, sizeof perr, t0);
        if (rc != STORE_OK) {
            snprintf(err, sizeof err, "partition %u: %s", i, perr);
            break;
        }
        store_checkpoint_prune(store_ckpt_root(part), self->opts.keep);
        if (pc.held_ms > held_max)
            held_max = pc.held_ms;
        /* The checkpoints cover the log up to the lowest of them. */
        if (pc.seq < c.seq)
            c.seq = pc.seq;
    }
    int64_t took = s_mono_ms() - t0;
    if (rc == STORE_OK) {
        int pruned = store_checkpoint_prune(store_dir(self->store), self->opts.keep);
        char held[64] = "";
        if (held_max > 0)
            snprintf(held, sizeof held, ", the state's writer held %.2f s%s",
                     (double)held_max / 1000, store_parts(self->store) > 1 ? " at most" : "");
        log_info("[checkpoint] %s: the state at sequence %llu, %.1f MiB in %.2f s%s%s%s",
                 c.name, (unsigned long long)c.seq, (double)c.bytes / (1 << 20),
                 (double)took / 1000, held,
                 store_parts(self->store) > 1 ? " (partition 0; each partition's too)" : "",
                 pruned > 0 ? "; older ones deleted" : "");
    } else {
        log_err("[checkpoint] failed, the live state is untouched (retried in %lld s): %s",
                (long long)((self->opts.interval_ms > 0 && self->opts.interval_ms < S_RETRY_MS
                                 ? self->opts.interval_ms
                                 : S_RETRY_MS) / 1000),
                err);
    }
    pthread_mutex_lock(&self->lock);
    self->st.running = false;
    if (rc == STORE_OK) {
        self->st.taken++;
        self->st.last = c;
        self->st.last_ms = (uint64_t)took;
        self->st.error[0] = '\0';
        self->done = self->serving;
        self->last_seq = c.seq;
        self->next_due_ms = s_mono_ms() + self->opts.interval_ms;
    } else {
        self->st.failed++;
        snprintf(self->st.error, sizeof self->st.error, "%s", err);
        self->failed_upto = self->serving;
        int64_t retry = self->opts.interval_ms > 0 && self->opts.interval_ms < S_RETRY_MS
                            ? self->opts.interval_ms
                            : S_RETRY_MS;
        self->next_due_ms = s_mono_ms() + retry;
    }
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

/* Give the calling thread the lowest CPU priority (nice S_NICE) and the
 * idle I/O class, both inherited by the threads it creates (the copy's
 * writer and LMDB's own): a checkpoint runs on what ingest and queries
 * leave over. The idle class needs an I/O scheduler that knows classes
 * (mq-deadline, bfq); without one it changes nothing. Failures are
 * logged, not fatal. */
static void s_lower_priority(void)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (setpriority(PRIO_PROCESS, (id_t)tid, S_NICE) == -1)
        log_warn("[checkpoint] cannot lower the checkpoint thread's priority: %s",
                 strerror(errno));
    if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid,
                IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0)) == -1)
        log_warn("[checkpoint] cannot give the checkpoint thread the idle I/O class: %s",
                 strerror(errno));
}

static void *s_thread(void *arg)
{
    checkpoint_t *self = arg;
    s_lower_priority();
    pthread_mutex_lock(&self->lock);
    while (!self->stop) {
        int64_t now = s_mono_ms();
        bool asked = self->requested > self->done && self->requested > self->failed_upto;
        bool retry = self->failed_upto > self->done && now >= self->next_due_ms;
        if (!asked && !retry && !s_auto_due(self, now)) {
            int64_t wait = self->next_due_ms - now;
            if (self->opts.interval_ms <= 0 || wait > S_POLL_MS)
                wait = S_POLL_MS;
            struct timespec ts;
            s_deadline(&ts, wait > 0 ? wait : 1);
            pthread_cond_timedwait(&self->cond, &self->lock, &ts);
            continue;
        }
        /* Every ticket handed out so far is served by this one. */
        self->serving = self->requested;
        self->st.running = true;
        pthread_mutex_unlock(&self->lock);
        s_take(self);
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

checkpoint_t *checkpoint_new(struct event_base *base, store_t *store,
                             const checkpoint_opts_t *opts, char *err, size_t errlen)
{
    checkpoint_t *self = xcalloc(1, sizeof *self);
    self->store = store;
    self->opts = *opts;
    if (self->opts.keep == 0)
        self->opts.keep = 1;
    pthread_mutex_init(&self->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &ca);
    pthread_condattr_destroy(&ca);
    self->grow_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->grow_fd == -1) {
        snprintf(err, errlen, "checkpoint: eventfd: %s", strerror(errno));
        goto fail;
    }
    self->ev_grow = event_new(base, self->grow_fd, EV_READ | EV_PERSIST, s_on_grow, self);
    if (self->ev_grow == NULL || event_add(self->ev_grow, NULL) == -1) {
        snprintf(err, errlen, "checkpoint: cannot watch its eventfd");
        goto fail;
    }
    /* The newest checkpoint on disk: the interval runs from its time, and
     * none is taken while nothing was logged since it. */
    store_ckpt_t newest;
    int64_t now = s_mono_ms();
    self->next_due_ms = now + opts->interval_ms;
    if (store_checkpoint_list(store_dir(store), &newest, 1) == 1) {
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        int64_t age = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000 - newest.created_ms;
        self->last_seq = newest.seq;
        self->st.last = newest;
        self->next_due_ms = now + (age >= opts->interval_ms ? 0 : opts->interval_ms - age);
    }
    /* The recovery renamed the newest checkpoint into the state: a new one
     * replaces it as soon as the thread starts (the log is replayed by
     * then), automatic checkpoints or not, so that as many are kept. */
    const char *consumed = store_recovery_consumed(store);
    if (consumed[0] != '\0') {
        self->requested = 1;
        snprintf(self->replacing, sizeof self->replacing, "%s", consumed);
    }
    return self;
fail:
    checkpoint_destroy(&self);
    return NULL;
}

int checkpoint_start(checkpoint_t *self)
{
    int rc = pthread_create(&self->thread, NULL, s_thread, self);
    if (rc != 0) {
        log_err("[checkpoint] cannot start the checkpoint thread: %s", strerror(rc));
        return -1;
    }
    self->started = true;
    if (self->replacing[0] != '\0')
        log_info("[checkpoint] taking a checkpoint to replace %s, which the recovery "
                 "renamed into the state", self->replacing);
    if (self->opts.interval_ms > 0)
        log_info("[checkpoint] every %lld s%s%llu events, keeping %u",
                 (long long)(self->opts.interval_ms / 1000),
                 self->opts.events ? " or " : "",
                 (unsigned long long)self->opts.events, self->opts.keep);
    else
        log_info("[checkpoint] automatic checkpoints off (checkpoint_interval 0); "
                 "funnelctl checkpoint takes one");
    return 0;
}

uint64_t checkpoint_request(checkpoint_t *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t ticket = ++self->requested;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    return ticket;
}

checkpoint_state_t checkpoint_status(checkpoint_t *self, uint64_t ticket, store_ckpt_t *out,
                                     char *error, size_t errlen)
{
    checkpoint_state_t s = CHECKPOINT_PENDING;
    pthread_mutex_lock(&self->lock);
    if (self->done >= ticket) {
        s = CHECKPOINT_DONE;
        if (out)
            *out = self->st.last;
    } else if (self->failed_upto >= ticket) {
        s = CHECKPOINT_FAILED;
        if (error)
            snprintf(error, errlen, "%s", self->st.error);
    }
    pthread_mutex_unlock(&self->lock);
    return s;
}

void checkpoint_stats(checkpoint_t *self, checkpoint_stats_t *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->st;
    pthread_mutex_unlock(&self->lock);
}

void checkpoint_destroy(checkpoint_t **self_p)
{
    checkpoint_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->started) {
        store_checkpoint_cancel(self->store);
        pthread_mutex_lock(&self->lock);
        self->stop = true;
        pthread_cond_broadcast(&self->cond);
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->thread, NULL);
    }
    if (self->ev_grow)
        event_free(self->ev_grow);
    if (self->grow_fd != -1)
        close(self->grow_fd);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
