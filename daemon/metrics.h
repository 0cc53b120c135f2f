/* metrics.h: what funneld measures about itself beyond the persisted
 * counters (store_stats_t), and the Prometheus text exposition of both.
 *
 * The loop thread records: latency and size histograms (a group commit,
 * an Ack, the events of a group), rejections by reason, batches, alerts
 * published by topic and dropped, a heartbeat, and whether it is
 * recovering, running, failing to commit or stopping. Each record is a
 * few relaxed atomic adds (per group or per batch, not per event), so it
 * costs the data path nothing measurable. The HTTP thread reads them
 * (metrics_render, metrics_alive, metrics_ready) without ever waiting for
 * the loop thread: everything it reads is atomic, or under a mutex that
 * the loop thread takes only when the store starts or stops failing.
 *
 * The counts here are since the process started (Prometheus counters
 * reset with the process); the persisted ones are since the state was
 * created and equal `funnelctl stats`.
 */
#ifndef FUNNELD_METRICS_H
#define FUNNELD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "auth.h"
#include "defn.h"
#include "store.h"
#include "validate.h"

typedef struct metrics metrics_t;

typedef enum {
    METRICS_COMMIT_NS,     /* a group's durable commit (log fsync + state) */
    METRICS_ACK_NS,        /* a batch: received -> acknowledged */
    METRICS_GROUP_EVENTS,  /* events in an intake group */
    METRICS_HIST_N
} metrics_hist_t;

/* Why events were rejected: the validation kinds (validate_why_t), then
 * these. */
typedef enum {
    METRICS_REJ_UNDECODABLE = VALIDATE_WHY_N, /* not an EventBatch */
    METRICS_REJ_BATCH_TOO_LARGE,   /* more than max_batch_events */
    METRICS_REJ_FRAMES,            /* a message of the wrong shape */
    METRICS_REJ_HANDLERS,          /* refused by the funnel handlers */
    METRICS_REJ_TRANSACTION,       /* a batch too large for a transaction */
    METRICS_REJ_N
} metrics_rej_t;

typedef enum {
    METRICS_STARTING = 0,   /* recovering the state from the log */
    METRICS_RUNNING,
    METRICS_STOPPING,
} metrics_phase_t;

/* Caller owns the result: metrics_destroy(). */
metrics_t *metrics_new(void);
/* Accepts NULL; sets *self_p to NULL. */
void metrics_destroy(metrics_t **self_p);

/* Every recording function accepts self == NULL (unit tests, rebuild) and
 * is for the loop thread. */
void metrics_observe(metrics_t *self, metrics_hist_t h, uint64_t value);
void metrics_reject(metrics_t *self, int why, uint64_t n);
void metrics_batch(metrics_t *self, bool stream);
/* An alert handed to the alerts socket (sent) or not (send failed). topic
 * is one of funneld's fixed topics. */
void metrics_alert(metrics_t *self, const char *topic, bool sent);
/* An alert raised that no subscriber wanted (not built, not sent). */
void metrics_alert_unwanted(metrics_t *self);
/* An AlertsSince query answered. Unlike the others, for the query thread
 * (a relaxed atomic add: any thread). */
void metrics_alert_query(metrics_t *self);
/* The loop thread is alive (a timer, and every group). */
void metrics_heartbeat(metrics_t *self);
void metrics_set_phase(metrics_t *self, metrics_phase_t phase);
/* Intake paused because the store cannot commit (reason: one line), or
 * resumed (reason NULL). */
void metrics_set_failing(metrics_t *self, const char *reason);

/* Monotonic clock, ns: for the latency observations. */
uint64_t metrics_now_ns(void);

/* Whether the loop thread is alive (a heartbeat within the last 30 s;
 * starting counts). 0 with the reason in why otherwise. Any thread. */
int metrics_alive(metrics_t *self, char *why, size_t cap);
/* Whether funneld takes events: recovered, not stopping, store
 * committing. 0 with the reason in why otherwise. Any thread. */
int metrics_ready(metrics_t *self, char *why, size_t cap);
/* AlertsSince queries answered since the process started (0 when self is
 * NULL). Any thread. */
uint64_t metrics_alert_queries(metrics_t *self);

/* What metrics_render reads besides self. Borrowed. */
typedef struct {
    store_t *store;
    const defn_t *defn;      /* held by the caller for the call */
    auth_t *auth;            /* NULL: CURVE off */
    int64_t started_ms;      /* process start, wall clock */
} metrics_src_t;

/* Write every metric family in the Prometheus text exposition format
 * (version 0.0.4) to out: the persisted counters (as `funnelctl stats`
 * shows them), the report counters in a read snapshot of the calling
 * thread (leads per stage, handoffs, friction), the store's sizes, and
 * what self recorded. Returns 0, or -1 when the store could not be read
 * (what could be written is). Any thread but the loop thread. */
int metrics_render(metrics_t *self, const metrics_src_t *src, FILE *out);

#endif
