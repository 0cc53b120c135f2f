/* query.h: the query endpoint, served by a thread of its own. One
 * QueryRequest in, one QueryReply out, answered from a read snapshot of
 * the store's last commit that ends before the reply is sent: a query sees
 * every acknowledged event (Acks follow the commit; with a partition
 * applying the state behind the Acks, query_sync() waits for it first)
 * and none that is not yet committed.
 *
 * Threading: the query thread has its own libevent loop, ZeroMQ context
 * and ROUTER socket. With the loop thread it shares only the store (reads
 * run in the query thread's own snapshots, the daemon's counters come
 * through store_stats_read()) and the definition in use, which a reload
 * replaces while holding defn_lock exclusively (queries hold it shared).
 * So a query never waits for a group commit, nor a group for a query.
 * Leads listings (LeadsQuery) are handed on to a thread of the query
 * server's own at a lower priority (query_leads.h), which reads them in
 * its own snapshots; the query thread sends their answers. The definition
 * lab's queries (a QualityQuery with a draft: query_lab.c), which replay
 * the event log, go to a second such thread, the lab thread.
 */
#ifndef FUNNELD_QUERY_H
#define FUNNELD_QUERY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "bus.h"
#include "defn.h"
#include "hnd.h"
#include "store.h"

typedef struct {
    store_t *store;
    const defn_t *const *defn_p;   /* the definition in use */
    pthread_rwlock_t *defn_lock;   /* held shared while *defn_p is used */
    int64_t started_ms;            /* process start, wall clock */
    auth_t *auth;                  /* CURVE, or NULL: the query context's
                                      ZAP handler, and auth_refused */
    struct metrics *metrics;       /* what the loop thread measured (the
                                      HTTP server reads it), may be NULL */
    bool event_clock;              /* daemon time = the event-time
                                      watermark (else the wall clock) */
    const hnd_t *const *pipeline;  /* the handlers ingest runs, for replays
                                      of a lead's events (query_lead.c) */
    struct checkpoint *checkpoint; /* the checkpoint thread, or NULL */
    uint64_t replayed_at_start;    /* events replayed from the log at start */
    unsigned partitions;           /* partition threads applying the state
                                      (0: the loop thread applies it) */
    struct nats *nats;             /* cluster input (nats.h), or NULL */
    struct shadows *shadows;       /* the shadow drafts (shadow.h), or NULL;
                                      changed with defn_lock held exclusively */
    struct query_lab_runs *lab_runs; /* the backtests (query_int.h), made by
                                        the query server */
} query_t;
typedef struct query_lab_runs query_lab_runs_t;

/* The daemon's time for a reader in a read snapshot: the wall clock, or
 * the snapshot's event-time watermark with --clock event. The time a
 * lead's scores are decayed to when read. Query thread. */
int64_t query_now_ms(const query_t *q);

/* Read-your-writes with a partition (partition.h), which applies the
 * state behind the Acks: wait until the state has applied everything the
 * log had committed when this is called, at most QUERY_APPLIED_WAIT_MS
 * (then the query is answered from the state as it is, and the wait is
 * logged). Every Ack follows its log commit, so a query received after an
 * Ack sees that Ack's events. Without a partition it returns at once.
 * Call before taking defn_lock. Any query-serving thread. */
#define QUERY_APPLIED_WAIT_MS 10000
void query_sync(const query_t *q);

/* The same for a query of one lead: waits only until the lead's
 * partition has applied the lead's events logged so far (at full load the
 * state is up to two groups behind the log, and most leads have none of
 * their events among them), within the same bound. A lead query of the
 * live state calls it only when it cannot read those events from the log
 * instead (query_lead.c). */
void query_sync_lead(const query_t *q, const char *lead_id);

typedef struct query_server query_server_t;

/* The query ROUTER also binds this endpoint in its own ZeroMQ context
 * (query_server_context()): the HTTP API asks its queries there, in the
 * process, where CURVE does not apply. */
#define QUERY_INPROC "inproc://funneld-query"

/* A query server for q (copied; what it points to is borrowed and must
 * outlive the server) on a ROUTER bound to endpoint now, so that a bad or
 * busy endpoint is reported at start-up. With q->auth, a ZAP handler is
 * attached to the thread's context before the bind (opts then carry the
 * CURVE server key). NULL and a reason in err on
 * failure. Caller owns the result: query_server_destroy(). */
query_server_t *query_server_new(const query_t *q, const char *endpoint,
                                 const bus_opts_t *opts, int budget, char *err,
                                 size_t errlen);

/* The server's ZeroMQ context, for inproc peers (QUERY_INPROC). Borrowed:
 * their sockets must close before query_server_destroy(). */
void *query_server_context(query_server_t *self);

/* Set what stats report as replayed_at_start. Before query_server_start(). */
void query_set_replayed(query_server_t *self, uint64_t replayed);

/* The number of partition threads applying the state (stats), once they
 * started. Before query_server_start(). */
void query_set_partitions(query_server_t *self, unsigned partitions);

/* Start answering, in the server's thread. Returns 0, or -1 (logged). */
int query_server_start(query_server_t *self);

/* Stop the thread (the query being answered is finished first), close the
 * socket and free. Accepts NULL; sets *self_p to NULL. */
void query_server_destroy(query_server_t **self_p);

#endif
