/* retention.h: log retention (log_retention). On a timer of the loop
 * thread, drops the event log's oldest entries that are both beyond the
 * limit (older in event time than the watermark minus max_age_ms, or while
 * the log's entries occupy more than max_bytes) and covered by the oldest
 * checkpoint kept on disk, at most S_STEP of them per small write
 * transaction of the log between group commits, so that ingest never
 * waits for it. Never the last entry (the sequence goes on from it).
 *
 * Threading: the loop thread only.
 */
#ifndef FUNNELD_RETENTION_H
#define FUNNELD_RETENTION_H

#include <stdint.h>

#include "store.h"

struct event_base;

typedef struct retention retention_t;

/* A retention of store's log on base's loop: max_age_ms > 0 (event time)
 * or max_bytes > 0. NULL when the timer cannot be armed (logged). Caller
 * owns it: retention_destroy(), before the store. */
retention_t *retention_new(struct event_base *base, store_t *store, int64_t max_age_ms,
                           uint64_t max_bytes);

/* Never drop entries beyond fn(arg), the last entry every follower of
 * the log has applied (the shadow drafts: shadows_applied_floor). */
void retention_hold(retention_t *self, uint64_t (*fn)(void *arg), void *arg);

/* Accepts NULL; sets *self_p to NULL. */
void retention_destroy(retention_t **self_p);

#endif
