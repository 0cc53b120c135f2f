/* retention.c: see retention.h. */
#include "retention.h"

#include <event2/event.h>
#include <stdlib.h>

#include "funnel.pb-c.h"
#include "log.h"
#include "xalloc.h"

#define S_STEP 1000          /* entries per transaction */
#define S_IDLE_MS 1000       /* between looks when there is nothing to drop */
#define S_BUSY_MS 10         /* between steps while there is */

struct retention {
    store_t *store;
    int64_t max_age_ms;
    uint64_t max_bytes;
    struct event *ev;
    uint64_t dropped;
    uint64_t (*hold_fn)(void *arg); /* retention_hold */
    void *hold_arg;
};

typedef struct {
    int64_t cutoff_ms;       /* entries with an event time below it may go */
    uint64_t upto;           /* the last such entry of the run from the first */
    bool stop;
} s_scan_t;

/* store_event_fn: extend the run of entries old enough, from the first. */
static void s_on_entry(uint64_t seq, const void *raw, size_t len, void *arg)
{
    s_scan_t *s = arg;
    if (s->stop)
        return;
    Funnel__V1__Event *ev = funnel__v1__event__unpack(NULL, len, raw);
    if (ev != NULL && ev->occurred_at_ms < s->cutoff_ms)
        s->upto = seq;
    else
        s->stop = true;
    if (ev)
        funnel__v1__event__free_unpacked(ev, NULL);
}

static void s_arm(retention_t *self, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(self->ev, &tv);
}

/* One step: find how far the log may be dropped, drop at most S_STEP
 * entries of it. Loop thread, between groups (a timer callback). */
static void s_on_timer(evutil_socket_t fd, short what, void *arg)
{
    retention_t *self = arg;
    store_ckpt_t list[STORE_CKPT_MAX];
    (void)fd;
    (void)what;
    size_t n = store_checkpoint_list(store_dir(self->store), list, STORE_CKPT_MAX);
    uint64_t first = store_first_seq(self->store);
    if (n == 0 || first == 0 || list[n - 1].seq < first) {
        s_arm(self, S_IDLE_MS);
        return;
    }
    /* Covered: by the oldest checkpoint kept, so that every kept one stays
     * usable (recovery, --rebuild); with partitions, by every partition's
     * oldest (each recovers from its own). */
    uint64_t covered = list[n - 1].seq;
    for (unsigned i = 1; i < store_parts(self->store); i++) {
        store_ckpt_t pl[STORE_CKPT_MAX];
        size_t pn = store_checkpoint_list(store_ckpt_root(store_part(self->store, i)), pl,
                                          STORE_CKPT_MAX);
        uint64_t pc = pn ? pl[pn - 1].seq : 0;
        if (pc < covered)
            covered = pc;
    }
    if (covered < first) {
        s_arm(self, S_IDLE_MS);
        return;
    }
    uint64_t upto = 0;
    if (self->max_bytes) {
        uint64_t f, l, bytes, d;
        store_log_read(self->store, &f, &l, &bytes, &d);
        if (bytes > self->max_bytes)
            upto = first + S_STEP - 1;
    } else {
        s_scan_t s = {.cutoff_ms = store_watermark(self->store) - self->max_age_ms};
        if (store_read_begin(self->store) == STORE_OK) {
            store_read_log(self->store, first, S_STEP, s_on_entry, &s);
            store_read_end(self->store);
        }
        upto = s.upto;
    }
    if (upto > covered)
        upto = covered;
    if (self->hold_fn) {
        /* Nor what a follower of the log (a shadow draft) has not read. */
        uint64_t hold = self->hold_fn(self->hold_arg);
        if (upto > hold)
            upto = hold;
    }
    long dropped = upto >= first ? store_log_drop(self->store, upto, S_STEP) : 0;
    if (dropped > 0) {
        if (self->dropped == 0)
            log_info("[retention] dropping log entries from %llu on (log_retention; "
                     "covered by checkpoint %s)", (unsigned long long)first,
                     list[n - 1].name);
        self->dropped += (uint64_t)dropped;
        log_debug("[retention] dropped %ld log entries up to %llu", dropped,
                  (unsigned long long)(first + (uint64_t)dropped - 1));
    }
    s_arm(self, dropped == S_STEP ? S_BUSY_MS : S_IDLE_MS);
}

void retention_hold(retention_t *self, uint64_t (*fn)(void *arg), void *arg)
{
    self->hold_fn = fn;
    self->hold_arg = arg;
}

retention_t *retention_new(struct event_base *base, store_t *store, int64_t max_age_ms,
                           uint64_t max_bytes)
{
    retention_t *self = xcalloc(1, sizeof *self);
    self->store = store;
    self->max_age_ms = max_age_ms;
    self->max_bytes = max_bytes;
    self->ev = evtimer_new(base, s_on_timer, self);
    if (self->ev == NULL) {
        log_err("[retention] cannot arm a timer");
        free(self);
        return NULL;
    }
    s_arm(self, S_IDLE_MS);
    return self;
}

void retention_destroy(retention_t **self_p)
{
    retention_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->ev)
        event_free(self->ev);
    free(self);
    *self_p = NULL;
}
