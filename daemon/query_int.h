/* query_int.h: shared by the parts of the query server (query.c: the
 * socket, the thread and the reports; query_lead.c: the lead query and its
 * replays from the log). Query thread only. */
#ifndef FUNNELD_QUERY_INT_H
#define FUNNELD_QUERY_INT_H

#include <stdatomic.h>

#include "arena.h"
#include "bus.h"
#include "funnel.pb-c.h"
#include "query.h"
#include "report.h"

/* Send reply r to the client of request msg (its routing frames). */
void query_reply(bus_sock_t *sock, bus_msg_t *msg, const Funnel__V1__QueryReply *r);

/* Answer a LeadQuery: the stored lead (scores decayed to the daemon's
 * time) and its timeline, or with lq->ledger / lq->as_of_ms the lead
 * replayed from its chain of events in the log. Sends the reply; r's
 * oneof is left unset. Called with q->defn_lock held shared. */
void query_lead(query_t *q, const Funnel__V1__LeadQuery *lq, bus_sock_t *sock,
                bus_msg_t *msg, Funnel__V1__QueryReply *r);

/* The store's read snapshot as a report reader (handlers/report.h):
 * between store_read_begin and store_read_end. */
void query_reader(query_t *q, report_reader_t *rd);

/* Answer a QualityQuery (query_quality.c): report_quality at the daemon's
 * time. Sends the reply; r's oneof is left unset. Called with
 * q->defn_lock held shared. */
void query_quality(query_t *q, const Funnel__V1__QualityQuery *qq,
                   bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryReply *r);


/* The definition lab's answers (query_lab.c), in the lab thread (a
 * query_worker_new() job): a QualityQuery with a draft, a BacktestQuery. */
uint8_t *query_lab(const query_t *q, const Funnel__V1__QueryRequest *req,
                   const atomic_int *cancel, size_t *len);

/* The backtests funneld remembers (query_lab.c): those waiting for the
 * lab thread or running, with their progress, and the last 16 that ended.
 * Registered by the query thread when it queues a BacktestQuery, moved on
 * by the lab thread, read and cancelled by the query thread (under a mutex
 * of their own). FUNNELD_BACKTEST_LOCKSTEP=1 in the environment (for
 * tests) makes every backtest wait after each chunk of the log until a
 * BacktestStatusQuery has seen its progress (at most 10 s), so that a test
 * sees each step of a short backtest, and cancels one surely running. */
query_lab_runs_t *query_lab_runs_new(void);
void query_lab_runs_destroy(query_lab_runs_t **self_p);

/* Remember the backtest bq (waiting), before it is queued: an empty id is
 * given one ("bt-N", set in bq->id, a protobuf-c string of the request).
 * Returns 0, or -1 with the reason in err (a bad id, one known already,
 * too many backtests). Query thread. */
int query_lab_register(query_lab_runs_t *self, Funnel__V1__BacktestQuery *bq, char *err,
                       size_t errlen);
/* Forget backtest id (it could not be queued). */
void query_lab_unregister(query_lab_runs_t *self, const char *id);

/* Answer a BacktestStatusQuery / a BacktestCancel (a BacktestStatusReply).
 * Sends the reply; r's oneof is left unset. Query thread. */
void query_lab_status(query_t *q, const Funnel__V1__BacktestStatusQuery *sq,
                      bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryReply *r);
void query_lab_cancel(query_t *q, const Funnel__V1__BacktestCancel *bc, bus_sock_t *sock,
                      bus_msg_t *msg, Funnel__V1__QueryReply *r);

/* The backtest counters of stats (Stats.backtests_*). */
void query_lab_stats(const query_t *q, Funnel__V1__Stats *s);

/* The query to answer for the definition named (query_shadow.c): *q
 * itself when name is empty, else *q with the shadow draft's store and
 * definition (held in *defn_slot), once the draft applied what the log
 * had committed (waiting as query_sync does). Returns 0, or -1 with the
 * reason in err (no such draft; still being rebuilt). */
int query_definition(const query_t *q, const char *name, query_t *sub,
                     const defn_t **defn_slot, char *err, size_t errlen);

/* Answer a PromoteQuery: the loop thread promotes the draft
 * (shadows_promote) while this thread waits, with q->defn_lock released
 * meanwhile (the promotion replaces the definition) and held shared again
 * when it returns. Sends the reply; r's oneof is left unset. */
#define QUERY_PROMOTE_WAIT_MS 60000
void query_promote(query_t *q, const Funnel__V1__PromoteQuery *pq, bus_sock_t *sock,
                   bus_msg_t *msg, Funnel__V1__QueryReply *r);

/* Answer a ShadowQuery. Sends the reply; r's oneof is left unset. */
void query_shadow(query_t *q, const Funnel__V1__ShadowQuery *sq, bus_sock_t *sock,
                  bus_msg_t *msg, Funnel__V1__QueryReply *r);

#endif
