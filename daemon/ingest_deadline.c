/* ingest_deadline.c: deadlines that fall due (see ingest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_int.h"
#include "log.h"
#include "xalloc.h"

#define S_FIRE_MAX 1024

typedef struct {
    store_due_t *due;   /* S_FIRE_MAX slots */
    int64_t now;
    size_t n;           /* deadlines taken by the last fill */
    size_t logged;      /* of them, logged (with a partition) */
} s_fire_t;

/* ingest_fill_fn: the deadlines due at f->now, each logged as a "$deadline"
 * entry and applied. */
static int s_fill_due(ingest_t *self, void *arg)
{
    s_fire_t *f = arg;
    f->n = store_deadlines_due(self->store, f->now, S_FIRE_MAX, f->due);
    if (f->n == 0)
        return INGEST_NOTHING;
    for (size_t i = 0; i < f->n; i++) {
        const store_due_t *d = &f->due[i];
        Funnel__V1__Event ev;
        Funnel__V1__Event__AttrsEntry a[2], *ap[2] = {&a[0], &a[1]};
        char id[256], due_s[24];
        snprintf(id, sizeof id, "%s/%s/%s/%lld", INGEST_DEADLINE_TYPE, d->kind, d->lead_id,
                 (long long)d->due_ms);
        snprintf(due_s, sizeof due_s, "%lld", (long long)d->due_ms);
        funnel__v1__event__init(&ev);
        funnel__v1__event__attrs_entry__init(&a[0]);
        funnel__v1__event__attrs_entry__init(&a[1]);
        a[0].key = (char *)"kind";
        a[0].value = (char *)d->kind;
        a[1].key = (char *)"due_ms";
        a[1].value = due_s;
        ev.id = id;
        ev.lead_id = (char *)d->lead_id;
        ev.type = (char *)INGEST_DEADLINE_TYPE;
        ev.occurred_at_ms = f->now;
        ev.attrs = ap;
        ev.n_attrs = 2;
        uint64_t seq;
        if (self->split) {
            /* Logged only, once: one logged and not applied yet is not
             * due again; the partition applies it (or finds it gone). */
            uint64_t prev = 0;
            int c = store_log_claim(self->store, ev.lead_id, ev.id, true, &prev);
            if (c < 0)
                break;
            if (c == 0)
                continue;
            if (ingest_log_event(self, &ev, NULL, 0, prev) == 0)
                break;
            f->logged++;
            continue;
        }
        int r = ingest_apply(self, &ev, NULL, 0, 0, &seq);
        if (r < 0)
            break;
        if (r > 0) /* it cannot be applied (its lead is gone): drop it */
            store_deadline_drop(self->store, d);
    }
    if (self->split && f->logged == 0)
        return INGEST_NOTHING;
    return INGEST_FILLED;
}

/* Fire the deadlines due at the daemon's time, one group of S_FIRE_MAX
 * per turn of the loop: each is logged as a "$deadline" entry (so that a
 * replay or a rebuild reproduces it exactly), applied through
 * pipeline_deadline(), and its alerts are published after the commit.
 * When a full group leaves more due, the timer is armed again at once
 * and this returns, so that batches, queries and signals are served
 * between groups: a backfill's clock can make a hundred thousand
 * deadlines due at one moment, and a SIGTERM must not wait for them all
 * (those left fire at the next start). */
static void s_fire_due(ingest_t *self)
{
    if (self->firing || self->failing)
        return;
    store_due_t *due = xcalloc(S_FIRE_MAX, sizeof *due);
    self->firing = true;
    int64_t now = ingest_now_ms(self);
    s_fire_t f = {.due = due, .now = now};
    int rc = self->split ? ingest_run_log_group(self, s_fill_due, &f)
                         : ingest_run_group(self, s_fill_due, &f, false);
    bool more = false;
    if (rc == STORE_ESTALE) {
        ingest_out_clear(self);
        if (store_grow(self->store) == STORE_OK && ingest_replay(self) >= 0)
            rc = STORE_OK;
    }
    if (rc != STORE_OK && rc != INGEST_NOTHING) {
        /* Retried with the next commit or the next arming. */
        log_err("[ingest] deadlines due could not be committed; retrying");
        if (!self->split) /* else the partition's */
            ingest_out_clear(self);
        struct timeval tv = {1, 0};
        evtimer_add(self->ev_deadline, &tv);
        self->firing = false;
        free(due);
        return;
    }
    if (rc == STORE_OK) {
        ingest_committed(self);
        if (self->split) {
            /* Applied, published and armed again by the partition. */
            ingest_part_notify(self);
            log_debug("[ingest] %zu deadline(s) logged at %lld", f.logged, (long long)now);
            more = f.logged == S_FIRE_MAX;
        } else {
            ingest_out_publish(self);
            log_debug("[ingest] %zu deadline(s) fired at %lld", f.n, (long long)now);
            more = f.n == S_FIRE_MAX;
        }
    }
    self->firing = false;
    free(due);
    if (more) {
        /* The next group on the loop's next turn. */
        struct timeval next_turn = {0, 0};
        evtimer_add(self->ev_deadline, &next_turn);
    } else if (!self->split) {
        ingest_arm_deadlines(self);
    }
}

void ingest_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    s_fire_due(arg);
}

/* Arm the one deadline timer for the earliest pending deadline: with the
 * wall clock, at its time; with the event clock, now if the watermark has
 * passed it (event time only moves with events). */
void ingest_arm_deadlines(ingest_t *self)
{
    int64_t due = 0;
    if (self->firing)
        return;
    if (store_read_begin(self->store) != STORE_OK)
        return;
    int found = store_read_next_deadline(self->store, &due);
    store_read_end(self->store);
    evtimer_del(self->ev_deadline);
    if (found != 1)
        return;
    int64_t wait = due - ingest_now_ms(self);
    if (self->opts.event_clock && wait > 0)
        return; /* armed again after the next commit */
    if (wait < 0)
        wait = 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(self->ev_deadline, &tv);
}

void ingest_start_deadlines(ingest_t *self)
{
    ingest_arm_deadlines(self);
}

