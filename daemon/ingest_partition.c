/* ingest_partition.c: the dispatcher with partitions applying the state
 * off the Ack path (see ingest.h, partition.h). The loop thread logs and
 * acknowledges (ingest.c, ingest_deadline.c); each partition thread runs
 * ingest_apply over the logged entries of its leads, in log order, in a
 * context of its own (an ingest_t: its pipeline scratch, its alerts, its
 * hand-over list), and partition 0 also the group's funnel-wide check,
 * on the counters of every partition. Each hands the alerts of its
 * committed state groups over to the loop thread (its list under a mutex,
 * and the loop's eventfd), which publishes them after the state change
 * that raised them is stored: with one partition as they come; with more,
 * merged in log order up to the lowest sequence every partition has
 * handed over (so that alert numbers, derived from the log sequence, only
 * grow on the alerts socket, and a lead's come in its log order). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ingest_int.h"
#include "arena.h"
#include "log.h"
#include "progress.h"
#include "xalloc.h"

/* How long stopping waits for the partitions to apply what is logged. */
#define S_STOP_WAIT_MS 30000
/* How long a definition reload waits for it. */
#define S_HOLD_WAIT_MS 10000
/* Logged events the partitions may lag behind while a checkpoint holds
 * one (store_parts_held): more than a few seconds of full load. */
#define S_HELD_LAG_MAX (1u << 20)

/* -- on a partition thread ------------------------------------------------ */

static int s_apply(void *arg, const partition_entry_t *e, size_t n)
{
    ingest_t *ctx = arg;
    ingest_out_clear(ctx);
    uint64_t alert_seq = store_alert_seq(ctx->store);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq;
        if (ingest_apply(ctx, e[i].ev, NULL, 0, e[i].seq, &seq) < 0)
            return -1;
    }
    ingest_group_end(ctx, alert_seq);
    return 0;
}

/* Partition 0 with others: their snapshots for the group's funnel-wide
 * check, taken before its own write transaction (their map locks before
 * its write lock, as everywhere), ended once the group is over. */
static void s_begin(void *arg)
{
    ingest_t *ctx = arg;
    if (ctx->owner != ctx || store_parts(ctx->store) <= 1)
        return;
    store_peers_end(ctx->store);
    if (store_peers_begin(ctx->store) != STORE_OK)
        log_warn("[ingest] the other partitions' counters cannot be read: the funnel-wide "
                 "check waits for the next group");
}

static void s_aborted(void *arg)
{
    ingest_t *ctx = arg;
    ingest_out_clear(ctx);
    store_peers_end(ctx->store);
}

static void s_applied(void *arg, uint64_t applied_seq)
{
    ingest_t *ctx = arg;
    store_peers_end(ctx->store);
    pthread_mutex_lock(&ctx->hand_lock);
    if (ctx->n_hand + ctx->n_out > ctx->cap_hand) {
        while (ctx->n_hand + ctx->n_out > ctx->cap_hand)
            ctx->cap_hand = ctx->cap_hand ? 2 * ctx->cap_hand : 256;
        ctx->hand = xrealloc(ctx->hand, ctx->cap_hand * sizeof *ctx->hand);
    }
    for (size_t i = 0; i < ctx->n_out; i++) {
        /* The funnel-wide ones go out with the group that raised them. */
        if (ctx->out[i].log_seq == 0)
            ctx->out[i].log_seq = applied_seq;
        ctx->hand[ctx->n_hand++] = ctx->out[i];
    }
    ctx->hand_applied = applied_seq;
    pthread_mutex_unlock(&ctx->hand_lock);
    ctx->n_out = 0; /* the buffers went with them */
    uint64_t one = 1;
    if (write(ctx->hand_fd, &one, sizeof one) != sizeof one && errno != EAGAIN)
        log_err("[ingest] cannot wake the loop: %s", strerror(errno));
}

/* Logged, not applied by every partition yet. Loop thread. */
static uint64_t s_lag(ingest_t *self)
{
    return store_last_seq(self->store) - store_parts_applied_min(self->store);
}

/* How far intake lets the partitions lag behind the log: lag_max, or
 * S_HELD_LAG_MAX while a checkpoint holds a partition's writer (for a
 * few seconds: store_checkpoint), so that Acks go on meanwhile. */
static uint64_t s_lag_bound(ingest_t *self)
{
    return store_parts_held(self->store) && S_HELD_LAG_MAX > self->lag_max ? S_HELD_LAG_MAX
                                                                           : self->lag_max;
}

/* partition_ops_t.decoded: what the loop still holds of from..from+n-1
 * (ingest_part_keep), the rest NULL. */
static void s_decoded(void *arg, uint64_t from, size_t n, const Funnel__V1__Event **evs)
{
    ingest_t *loop = ((ingest_t *)arg)->owner;
    memset(evs, 0, n * sizeof *evs);
    pthread_mutex_lock(&loop->feed_lock);
    /* The first kept batch that ends at or after from (in log order). */
    size_t lo = loop->at_fed, hi = loop->n_fed;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (loop->fed[mid].first + loop->fed[mid].n <= from)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < loop->n_fed && loop->fed[i].first < from + n; i++) {
        const ingest_fed_t *f = &loop->fed[i];
        for (size_t k = 0; k < f->n; k++)
            if (f->first + k >= from && f->first + k < from + n)
                evs[f->first + k - from] = f->evs[k];
    }
    pthread_mutex_unlock(&loop->feed_lock);
}

/* -- on the loop thread ---------------------------------------------------- */

void ingest_part_keep(ingest_t *self, pending_t *p)
{
    if (!self->split || self->n_parts == 0 || p->accepted == 0 || p->logged)
        return;
    /* Lagging further than usual (a checkpoint holds a partition): the
     * partitions decode these from the log, so that the lag costs no
     * memory. */
    if (s_lag(self) > self->lag_max)
        return;
    ingest_fed_t f = {.first = p->last_seq - p->accepted + 1, .n = p->accepted,
                      .arena = p->arena};
    f.evs = xmalloc(f.n * sizeof *f.evs);
    size_t k = 0;
    /* s_fill_log logged a batch's accepted events one after the other. */
    for (size_t i = 0; i < p->batch->n_events && k < f.n; i++)
        if (p->verdict[i] == V_ACCEPTED)
            f.evs[k++] = p->batch->events[i];
    if (k != f.n) {
        free(f.evs);
        return; /* not as logged: the partitions decode them from the log */
    }
    p->arena = NULL;
    pthread_mutex_lock(&self->feed_lock);
    if (self->at_fed > 0 && self->at_fed == self->n_fed)
        self->at_fed = self->n_fed = 0;
    if (self->n_fed == self->cap_fed && self->at_fed > 0) {
        memmove(self->fed, self->fed + self->at_fed,
                (self->n_fed - self->at_fed) * sizeof *self->fed);
        self->n_fed -= self->at_fed;
        self->at_fed = 0;
    }
    if (self->n_fed == self->cap_fed) {
        self->cap_fed = self->cap_fed ? 2 * self->cap_fed : 64;
        self->fed = xrealloc(self->fed, self->cap_fed * sizeof *self->fed);
    }
    self->fed[self->n_fed++] = f;
    pthread_mutex_unlock(&self->feed_lock);
}

/* Free the kept batches every partition applied (up to upto). */
static void s_feed_release(ingest_t *self, uint64_t upto)
{
    pthread_mutex_lock(&self->feed_lock);
    while (self->at_fed < self->n_fed &&
           self->fed[self->at_fed].first + self->fed[self->at_fed].n - 1 <= upto) {
        ingest_fed_t *f = &self->fed[self->at_fed++];
        free(f->evs);
        arena_destroy(&f->arena);
    }
    pthread_mutex_unlock(&self->feed_lock);
}

static void s_publish_one(ingest_t *self, ingest_alert_t *a)
{
    if (ingest_wanted(self, a->topic))
        ingest_publish(self, a->topic, a->buf, a->len);
    else
        metrics_alert_unwanted(self->opts.metrics);
    free(a->buf);
}

/* Move what ctx handed over to the end of its waiting list; returns the
 * sequence it handed over up to. */
static uint64_t s_take(ingest_t *ctx)
{
    pthread_mutex_lock(&ctx->hand_lock);
    if (ctx->n_wait + ctx->n_hand > ctx->cap_wait) {
        while (ctx->n_wait + ctx->n_hand > ctx->cap_wait)
            ctx->cap_wait = ctx->cap_wait ? 2 * ctx->cap_wait : 256;
        ctx->wait = xrealloc(ctx->wait, ctx->cap_wait * sizeof *ctx->wait);
    }
    if (ctx->n_hand > 0)
        memcpy(ctx->wait + ctx->n_wait, ctx->hand, ctx->n_hand * sizeof *ctx->hand);
    ctx->n_wait += ctx->n_hand;
    ctx->n_hand = 0;
    uint64_t upto = ctx->hand_applied;
    pthread_mutex_unlock(&ctx->hand_lock);
    return upto;
}

/* Publish the waiting alerts of every partition up to the lowest
 * sequence they all handed over (all of them with everything), merged in
 * log order. */
static void s_publish_merged(ingest_t *self, bool everything)
{
    uint64_t floor = UINT64_MAX;
    size_t any = 0;
    for (unsigned i = 0; i < self->n_parts; i++) {
        uint64_t upto = s_take(self->pctx[i]);
        if (upto < floor)
            floor = upto;
        self->pctx[i]->at_wait = 0;
        any += self->pctx[i]->n_wait;
    }
    if (everything)
        floor = UINT64_MAX;
    if (any > 0 && self->alerts)
        bus_refresh(self->alerts);
    for (;;) {
        ingest_t *best = NULL;
        for (unsigned i = 0; i < self->n_parts; i++) {
            ingest_t *c = self->pctx[i];
            if (c->at_wait < c->n_wait && c->wait[c->at_wait].log_seq <= floor &&
                (best == NULL || c->wait[c->at_wait].log_seq < best->wait[best->at_wait].log_seq))
                best = c;
        }
        if (best == NULL)
            break;
        s_publish_one(self, &best->wait[best->at_wait++]);
    }
    for (unsigned i = 0; i < self->n_parts; i++) {
        ingest_t *c = self->pctx[i];
        if (c->at_wait == 0)
            continue;
        memmove(c->wait, c->wait + c->at_wait, (c->n_wait - c->at_wait) * sizeof *c->wait);
        c->n_wait -= c->at_wait;
        c->at_wait = 0;
    }
}

static void s_publish(ingest_t *self, bool everything)
{
    if (self->n_parts > 1) {
        s_publish_merged(self, everything);
    } else {
        pthread_mutex_lock(&self->hand_lock);
        ingest_alert_t *hand = self->hand;
        size_t n = self->n_hand;
        self->hand = NULL;
        self->n_hand = self->cap_hand = 0;
        pthread_mutex_unlock(&self->hand_lock);
        if (n > 0 && self->alerts)
            bus_refresh(self->alerts);
        for (size_t i = 0; i < n; i++)
            s_publish_one(self, &hand[i]);
        free(hand);
    }
    s_feed_release(self, store_parts_applied_min(self->store));
    /* The state moved: deadlines it set or cleared, and intake held back
     * while the partitions lagged. */
    ingest_arm_deadlines(self);
    if (self->lagging &&
        store_last_seq(self->store) - store_parts_applied_min(self->store) <= self->lag_max / 2) {
        self->lagging = false;
        if (!self->failing && !self->stopping)
            ingest_intake_pause(self, false);
    }
}

void ingest_part_publish(ingest_t *self)
{
    s_publish(self, false);
}

static void s_on_hand(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof n) != sizeof n && errno != EAGAIN)
        log_err("[ingest] hand-over eventfd: %s", strerror(errno));
    ingest_part_publish(arg);
}

static void s_notify_all(ingest_t *self)
{
    for (unsigned i = 0; i < self->n_parts; i++)
        partition_notify(self->parts[i]);
}

void ingest_part_notify(ingest_t *self)
{
    s_notify_all(self);
}

void ingest_part_committed(ingest_t *self)
{
    s_notify_all(self);
    /* As after any commit: deadlines the state holds that fell due fire
     * now, logged after what was just logged (those the events in flight
     * set are armed once the partition applied them). */
    ingest_arm_deadlines(self);
    if (!self->lagging && s_lag(self) > s_lag_bound(self)) {
        self->lagging = true;
        ingest_intake_pause(self, true);
    }
}

/* Partition i's applying context: the loop's own for partition 0, else
 * one over partition i's store sharing the loop's definition, pipeline,
 * options and hand-over eventfd. */
static ingest_t *s_ctx_new(ingest_t *self, store_t *store)
{
    ingest_t *c = xcalloc(1, sizeof *c);
    c->base = self->base;
    c->store = store;
    c->defn_p = self->defn_p;
    c->pipeline = self->pipeline;
    c->opts = self->opts;
    c->split = true;
    c->owner = self;
    c->hand_fd = self->hand_fd;
    pthread_mutex_init(&c->hand_lock, NULL);
    return c;
}

static void s_ctx_free(ingest_t *c)
{
    bool sub = c->owner != NULL && c != c->owner;
    if (sub) {
        ingest_out_clear(c);
        free(c->out);
    }
    for (size_t i = 0; i < c->n_hand; i++)
        free(c->hand[i].buf);
    free(c->hand);
    for (size_t i = 0; i < c->n_wait; i++)
        free(c->wait[i].buf);
    free(c->wait);
    c->hand = c->wait = NULL;
    c->n_hand = c->cap_hand = c->n_wait = c->cap_wait = 0;
    pthread_mutex_destroy(&c->hand_lock);
    if (sub)
        free(c);
}

/* Wait until every partition applied what the log held when they started
 * (each from its own applied sequence), with progress. Returns the
 * entries they had to apply (the most any of them had), or -1 when one
 * could not within what it keeps retrying. */
static long s_catch_up(ingest_t *self)
{
    uint64_t last = store_committed_seq(self->store);
    uint64_t min = store_parts_applied_min(self->store);
    if (min >= last)
        return 0;
    log_info("[ingest] %u partitions applying the log from %llu to %llu",
             self->n_parts, (unsigned long long)min + 1, (unsigned long long)last);
    progress_t *progress = progress_new("ingest", "replaying", "replayed", "events",
                                        last - min, self->opts.progress_interval_ms);
    for (;;) {
        if (store_wait_parts_applied(self->store, last, 250) == 1)
            break;
        progress_update(progress, store_parts_applied_min(self->store) - min);
        s_publish(self, false); /* what they handed over meanwhile */
    }
    progress_update(progress, last - min);
    progress_done(progress);
    progress_destroy(&progress);
    return (long)(last - min);
}

int ingest_start_partition(ingest_t *self, size_t lag_max, long *replayed)
{
    if (replayed)
        *replayed = 0;
    if (self->part)
        return 0;
    self->hand_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->hand_fd == -1) {
        log_err("[ingest] eventfd: %s", strerror(errno));
        return -1;
    }
    self->ev_hand = event_new(self->base, self->hand_fd, EV_READ | EV_PERSIST, s_on_hand, self);
    if (self->ev_hand == NULL || event_add(self->ev_hand, NULL) != 0) {
        log_err("[ingest] cannot watch the partition's eventfd");
        return -1;
    }
    pthread_mutex_init(&self->hand_lock, NULL);
    self->owner = self;
    self->lag_max = lag_max ? lag_max : 2 * self->opts.group_max_events;
    unsigned np = store_parts(self->store);
    pthread_mutex_init(&self->feed_lock, NULL);
    partition_ops_t ops = {.apply = s_apply,
                           .aborted = s_aborted,
                           .applied = s_applied,
                           .begin = s_begin,
                           .decoded = s_decoded};
    self->n_parts = 0;
    for (unsigned i = 0; i < np; i++) {
        ingest_t *c = i == 0 ? self : s_ctx_new(self, store_part(self->store, i));
        partition_opts_t popts = {
            .chunk_events = self->opts.group_max_events, .index = i, .count = np};
        self->pctx[i] = c;
        self->parts[i] = partition_new(c->store, &ops, c, &popts);
        self->n_parts = i + 1;
    }
    self->part = self->parts[0];
    self->split = true;
    for (unsigned i = 0; i < np; i++) {
        if (partition_start(self->parts[i]) != 0) {
            for (unsigned j = i; j-- > 0;)
                partition_stop(self->parts[j], 0);
            self->split = false;
            return -1;
        }
    }
    if (np > 1) {
        /* Each from its own applied sequence (ingest_recover left it to
         * them), before anything is logged: claims see what they apply. */
        s_notify_all(self);
        long n = s_catch_up(self);
        if (replayed)
            *replayed = n;
        s_publish(self, false);
    }
    return 0;
}

void ingest_stop_partition(ingest_t *self)
{
    if (self->part == NULL || !self->split)
        return;
    s_notify_all(self);
    if (self->n_parts > 1 && !self->opts.log_read_only) {
        /* The loop cannot apply to several partitions: the deadlines that
         * what they applied last made due are logged while they still run,
         * and applied by them. */
        store_wait_parts_applied(self->store, store_committed_seq(self->store),
                                 S_STOP_WAIT_MS);
        s_publish(self, false);
        ingest_on_deadline(-1, 0, self);
        s_notify_all(self);
    }
    for (unsigned i = 0; i < self->n_parts; i++)
        partition_stop(self->parts[i], S_STOP_WAIT_MS);
    self->split = false;
    /* What they handed over last; then the deadlines that what they
     * applied last made due fire, as they would have after the commit
     * that made them due. */
    s_publish(self, true);
    if (self->n_parts <= 1 && !self->opts.log_read_only)
        ingest_on_deadline(-1, 0, self);
}

void ingest_hold(ingest_t *self)
{
    if (!self->split)
        return;
    bool caught_up = true;
    for (unsigned i = 0; i < self->n_parts; i++)
        caught_up = partition_pause(self->parts[i], S_HOLD_WAIT_MS) && caught_up;
    if (!caught_up)
        log_warn("[ingest] the state is behind the log: events logged before this "
                 "point are applied under what follows");
}

void ingest_release(ingest_t *self)
{
    if (!self->split)
        return;
    for (unsigned i = 0; i < self->n_parts; i++)
        partition_resume(self->parts[i]);
}

void ingest_part_free(ingest_t *self)
{
    if (self->part == NULL)
        return;
    for (unsigned i = 0; i < self->n_parts; i++)
        partition_destroy(&self->parts[i]);
    self->part = NULL;
    for (unsigned i = self->n_parts; i-- > 0;)
        s_ctx_free(self->pctx[i]);
    self->n_parts = 0;
    s_feed_release(self, UINT64_MAX);
    free(self->fed);
    self->fed = NULL;
    self->n_fed = self->cap_fed = self->at_fed = 0;
    pthread_mutex_destroy(&self->feed_lock);
    if (self->ev_hand)
        event_free(self->ev_hand);
    self->ev_hand = NULL;
    close(self->hand_fd);
}
