/* ingest_partition.c: the dispatcher with a partition applying the state
 * off the Ack path (see ingest.h, partition.h). The loop thread logs and
 * acknowledges (ingest.c, ingest_deadline.c); the partition thread runs
 * ingest_apply over what was logged, in log order, and the group's
 * funnel-wide checks; it hands the alerts of each committed state group
 * over to the loop thread (a list under a mutex and an eventfd), which
 * publishes them in that order: after the state change that raised them
 * is stored. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ingest_int.h"
#include "log.h"
#include "xalloc.h"

/* How long stopping waits for the partition to apply what is logged. */
#define S_STOP_WAIT_MS 30000
/* How long a definition reload waits for it. */
#define S_HOLD_WAIT_MS 10000

/* -- on the partition thread ---------------------------------------------- */

static int s_apply(void *arg, const partition_entry_t *e, size_t n)
{
    ingest_t *self = arg;
    ingest_out_clear(self);
    uint64_t alert_seq = store_alert_seq(self->store);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq;
        if (ingest_apply(self, e[i].ev, NULL, 0, e[i].seq, &seq) < 0)
            return -1;
    }
    ingest_group_end(self, alert_seq);
    return 0;
}

static void s_aborted(void *arg)
{
    ingest_out_clear(arg);
}

static void s_applied(void *arg, uint64_t applied_seq)
{
    ingest_t *self = arg;
    (void)applied_seq;
    pthread_mutex_lock(&self->hand_lock);
    if (self->n_hand + self->n_out > self->cap_hand) {
        while (self->n_hand + self->n_out > self->cap_hand)
            self->cap_hand = self->cap_hand ? 2 * self->cap_hand : 256;
        self->hand = xrealloc(self->hand, self->cap_hand * sizeof *self->hand);
    }
    if (self->n_out > 0) {
        memcpy(self->hand + self->n_hand, self->out, self->n_out * sizeof *self->out);
        self->n_hand += self->n_out;
    }
    pthread_mutex_unlock(&self->hand_lock);
    self->n_out = 0; /* the buffers went with them */
    uint64_t one = 1;
    if (write(self->hand_fd, &one, sizeof one) != sizeof one && errno != EAGAIN)
        log_err("[ingest] cannot wake the loop: %s", strerror(errno));
}

/* -- on the loop thread ---------------------------------------------------- */

void ingest_part_publish(ingest_t *self)
{
    pthread_mutex_lock(&self->hand_lock);
    ingest_alert_t *hand = self->hand;
    size_t n = self->n_hand;
    self->hand = NULL;
    self->n_hand = self->cap_hand = 0;
    pthread_mutex_unlock(&self->hand_lock);
    if (n > 0 && self->alerts)
        bus_refresh(self->alerts);
    for (size_t i = 0; i < n; i++) {
        if (ingest_wanted(self, hand[i].topic))
            ingest_publish(self, hand[i].topic, hand[i].buf, hand[i].len);
        else
            metrics_alert_unwanted(self->opts.metrics);
        free(hand[i].buf);
    }
    free(hand);
    /* The state moved: deadlines it set or cleared, and intake held back
     * while the partition lagged. */
    ingest_arm_deadlines(self);
    if (self->lagging &&
        store_last_seq(self->store) - store_applied_published(self->store) <= self->lag_max / 2) {
        self->lagging = false;
        if (!self->failing && !self->stopping)
            ingest_intake_pause(self, false);
    }
}

static void s_on_hand(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof n) != sizeof n && errno != EAGAIN)
        log_err("[ingest] hand-over eventfd: %s", strerror(errno));
    ingest_part_publish(arg);
}

void ingest_part_committed(ingest_t *self)
{
    partition_notify(self->part);
    /* As after any commit: deadlines the state holds that fell due fire
     * now, logged after what was just logged (those the events in flight
     * set are armed once the partition applied them). */
    ingest_arm_deadlines(self);
    if (!self->lagging &&
        store_last_seq(self->store) - store_applied_published(self->store) > self->lag_max) {
        self->lagging = true;
        ingest_intake_pause(self, true);
    }
}

int ingest_start_partition(ingest_t *self, size_t lag_max)
{
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
    self->lag_max = lag_max ? lag_max : 2 * self->opts.group_max_events;
    partition_ops_t ops = {.apply = s_apply, .aborted = s_aborted, .applied = s_applied};
    partition_opts_t popts = {.chunk_events = self->opts.group_max_events, .index = 0};
    self->part = partition_new(self->store, &ops, self, &popts);
    self->split = true;
    if (partition_start(self->part) != 0) {
        partition_destroy(&self->part);
        self->split = false;
        return -1;
    }
    return 0;
}

void ingest_stop_partition(ingest_t *self)
{
    if (self->part == NULL || !self->split)
        return;
    partition_stop(self->part, S_STOP_WAIT_MS);
    self->split = false;
    /* What it handed over last; then the deadlines that what it applied
     * last made due fire, as they would have after the commit that made
     * them due. */
    ingest_part_publish(self);
    ingest_on_deadline(-1, 0, self);
}

void ingest_hold(ingest_t *self)
{
    if (self->split && !partition_pause(self->part, S_HOLD_WAIT_MS))
        log_warn("[ingest] the state is behind the log: events logged before this "
                 "point are applied under what follows");
}

void ingest_release(ingest_t *self)
{
    if (self->split)
        partition_resume(self->part);
}

void ingest_part_free(ingest_t *self)
{
    if (self->part == NULL)
        return;
    partition_destroy(&self->part);
    for (size_t i = 0; i < self->n_hand; i++)
        free(self->hand[i].buf);
    free(self->hand);
    self->hand = NULL;
    self->n_hand = self->cap_hand = 0;
    if (self->ev_hand)
        event_free(self->ev_hand);
    self->ev_hand = NULL;
    close(self->hand_fd);
    pthread_mutex_destroy(&self->hand_lock);
}
