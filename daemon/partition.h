/* partition.h: a partition, the unit of funneld's state: one thread that
 * applies the logged events to the state, in log order, off the path of
 * the Acks.
 *
 * The loop thread decodes, validates, deduplicates and appends events to
 * the log (store_log_*), fsyncs it and acknowledges; it then calls
 * partition_notify(). The partition thread reads what was committed
 * beyond the state's applied sequence back from the log (in chunks of at
 * most opts.chunk_events; an entry the loop still holds decoded,
 * ops->decoded, is taken as it is instead of being decoded again), and applies each chunk inside one state group
 * (store_state_*) through ops->apply, then commits the state (without
 * fsync: it is recomputed from the log after a crash, from the applied
 * sequence the state itself records, so a crash replays only what the
 * partition had not applied), publishes the applied sequence
 * (store_wait_applied) and calls ops->applied, which hands what the group
 * raised (its alerts) over for publication. A map found full is grown and
 * the chunk redone; a chunk too large for one transaction is redone in
 * halves; any other store error is retried every second (logged once)
 * while the loop goes on logging, up to what its own bound on the lag
 * allows.
 *
 * Tests stage a state behind its Acks with FUNNELD_PARTITION_HOLD=1 in
 * funneld's environment: each partition applies what the log held when
 * it started and nothing logged after it (a stats query, which waits for
 * what was acknowledged, then waits its 10 s; a clean stop its 30 s).
 *
 * Threading: partition_new/start/notify/pause/resume/stop/destroy on the
 * store's owner (the loop thread); ops->apply and ops->applied run on the
 * partition thread, which is the store's state owner between
 * partition_start() and partition_stop() (store_split_begin/_end).
 */
#ifndef FUNNELD_PARTITION_H
#define FUNNELD_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "funnel.pb-c.h"
#include "store.h"

typedef struct partition partition_t;

/* One logged entry being applied: its log sequence and its Event
 * (decoded for the call, borrowed). */
typedef struct {
    uint64_t seq;
    const Funnel__V1__Event *ev;
} partition_entry_t;

typedef struct {
    /* Apply n entries, in order, inside the open state group (store
     * state calls only). Returns 0, or -1 on a store error (the group is
     * then aborted and redone: apply must be repeatable, keeping nothing
     * of a failed attempt). */
    int (*apply)(void *arg, const partition_entry_t *e, size_t n);
    /* The group was aborted: drop what apply kept for publication. */
    void (*aborted)(void *arg);
    /* The group is committed (applied sequence published): publish what
     * apply kept. May be NULL. */
    void (*applied)(void *arg, uint64_t applied_seq);
    /* Before each attempt at a group, outside any transaction of the
     * partition's (e.g. to take snapshots of other states first); aborted
     * or applied follows. May be NULL. */
    void (*begin)(void *arg);
    /* The entries from..from+n-1 that the caller still holds decoded (the
     * loop keeps the batches it logged until every partition applied
     * them): evs[i] is entry from+i's Event, or NULL to decode it from the
     * log. Each Event stays valid until the partition's applied sequence
     * is published beyond it. May be NULL (everything is decoded from the
     * log, as a replay does). */
    void (*decoded)(void *arg, uint64_t from, size_t n, const Funnel__V1__Event **evs);
} partition_ops_t;

typedef struct {
    size_t chunk_events;      /* at most this many entries per state group */
    unsigned index;           /* this partition's number (its logs, its leads) */
    unsigned count;           /* partitions in all: with more than one, this
                                 one applies only the entries of its leads
                                 (partition_of(lead, count) == index) and
                                 steps over the others' (its applied
                                 sequence covers them); 0 or 1: every entry */
} partition_opts_t;

/* A partition over store (borrowed; it must outlive the partition),
 * applying through ops with arg. With P > 1 partitions, store is the
 * partition's own (store_open_part(), or the primary for partition 0),
 * whose log is the primary's. Not started yet.
 * Caller owns the result: partition_destroy(). */
partition_t *partition_new(store_t *store, const partition_ops_t *ops, void *arg,
                           const partition_opts_t *opts);

/* Start the thread and make it the store's state owner. The state must be
 * up to date with the log (ingest_recover) and no group open. Returns 0,
 * or -1 (logged) when the thread cannot start. */
int partition_start(partition_t *self);

/* Say that the log was committed further (wakes the thread). */
void partition_notify(partition_t *self);

/* Hold the thread between groups (it finishes the one it is in), e.g.
 * to replace the definition it applies: while paused, the caller may
 * touch what ops->apply reads. Waits at most wait_ms for the state to
 * apply everything committed first; returns whether it did. Resume
 * undoes it. */
bool partition_pause(partition_t *self, int wait_ms);
void partition_resume(partition_t *self);

/* Let the thread apply everything committed (waiting at most wait_ms),
 * stop and join it, and give the state back to the store's owner
 * (store_split_end). Returns whether everything committed was applied.
 * Idempotent; also done by destroy. */
bool partition_stop(partition_t *self, int wait_ms);

/* Stop (as above, without waiting to catch up) and free. Accepts NULL. */
void partition_destroy(partition_t **self_p);

/* The lead's partition among n: FNV-1a 32 of its id, mod n. */
unsigned partition_of(const char *lead_id, unsigned n);

#endif
