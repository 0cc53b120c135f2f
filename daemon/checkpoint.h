/* checkpoint.h: the checkpoint thread. Takes durable checkpoints of the
 * state (store_checkpoint(), see store.h) every checkpoint_interval, or
 * once checkpoint_events events were logged since the last one, whichever
 * comes first, and whenever one is asked for (funnelctl checkpoint); keeps
 * the newest checkpoint_keep of them. A checkpoint that fails (disk full)
 * is logged and counted, leaves the live state as it was, and is retried
 * after S_RETRY_MS (or the interval, if shorter).
 *
 * When the store's recovery renamed the newest checkpoint into the state
 * (store_recovery_consumed()), the thread takes one at once to replace
 * it, automatic checkpoints or not.
 *
 * Threading: one thread of its own, at nice 10 and in the idle I/O class
 * (inherited by the threads a copy starts), which only reads the store
 * (the copy runs in LMDB's read snapshot). Before each copy it asks the loop
 * thread, through an eventfd watched by the loop's event base, to grow
 * the maps ahead (store_grow_ahead(): map growth is the owner's), then
 * the thread that writes the copied state (a partition thread when split)
 * to grow the state's (store_state_ahead_ask()), and waits for each at
 * most a second (a busy thread answers at its next group; the copy does
 * not wait longer). A copy during which the state's map must grow anyway
 * gives way (STORE_EAGAIN) and is begun again at once. checkpoint_request(), _status() and
 * _stats() may be called from any thread (the query thread answers
 * funnelctl with them); everything else from the loop thread.
 */
#ifndef FUNNELD_CHECKPOINT_H
#define FUNNELD_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct event_base;

typedef struct checkpoint checkpoint_t;

typedef struct {
    int64_t interval_ms;   /* automatic checkpoints: 0 none at all */
    uint64_t events;       /* also after this many events (0: time only) */
    unsigned keep;         /* checkpoints kept, >= 1 */
} checkpoint_opts_t;

/* What became of one request. */
typedef enum {
    CHECKPOINT_PENDING = 0,  /* not finished yet */
    CHECKPOINT_DONE,         /* a checkpoint begun after the request is on disk */
    CHECKPOINT_FAILED,       /* the checkpoint that was to serve it failed */
} checkpoint_state_t;

typedef struct {
    uint64_t taken;          /* since this process started */
    uint64_t failed;
    uint64_t yielded;        /* copies that gave way to the map growing */
    bool running;            /* one is being written now */
    uint64_t last_ms;        /* how long the last successful one took */
    store_ckpt_t last;       /* the last successful one (seq 0, "" if none) */
    char error[512];         /* why the last one failed ("" when it did not) */
} checkpoint_stats_t;

/* A checkpointer of store, whose loop-side eventfd is watched by base (the
 * loop thread's). The thread starts with checkpoint_start(). NULL and err
 * on failure. Caller owns it: checkpoint_destroy(), before the store. */
checkpoint_t *checkpoint_new(struct event_base *base, store_t *store,
                             const checkpoint_opts_t *opts, char *err, size_t errlen);

/* Start the thread. 0, or -1 (logged). Loop thread. */
int checkpoint_start(checkpoint_t *self);

/* Ask for a checkpoint now; returns the ticket to follow it with
 * checkpoint_status(). A request while one is being written is served by
 * the next one (which sees everything committed before the request). Any
 * thread. */
uint64_t checkpoint_request(checkpoint_t *self);

/* The fate of ticket; *out (if not NULL) gets the checkpoint that served
 * it when DONE, *error (if not NULL, errlen bytes) why when FAILED. Any
 * thread. */
checkpoint_state_t checkpoint_status(checkpoint_t *self, uint64_t ticket, store_ckpt_t *out,
                                     char *error, size_t errlen);

/* A copy of the counters. Any thread. */
void checkpoint_stats(checkpoint_t *self, checkpoint_stats_t *out);

/* Stop the thread (a copy under way is dropped: store_checkpoint_cancel),
 * free. Accepts NULL; sets *self_p to NULL. Loop thread. */
void checkpoint_destroy(checkpoint_t **self_p);

#endif
