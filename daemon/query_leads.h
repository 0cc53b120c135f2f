/* query_leads.h: the leads listing of the query endpoint (LeadsQuery ->
 * LeadsReply, see proto/funnel.proto): the leads that pass a query's
 * filters, in its order, one page per request, each page read from a
 * snapshot of its own that ends before the reply goes out.
 *
 * Threading: query_leads() runs in any thread holding the definition's
 * lock shared, the store's reads in that thread's own snapshot. The query
 * server hands listings to a worker (query_leads_worker_t), a thread of
 * its own at a lower scheduling priority (nice +S_NICE): a page that reads
 * every lead neither holds up the query thread's other queries nor, on a
 * busy machine, takes CPU from ingest.
 */
#ifndef FUNNELD_QUERY_LEADS_H
#define FUNNELD_QUERY_LEADS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "bus.h"
#include "funnel.pb-c.h"
#include "query.h"

/* Answer lq: a packed QueryReply carrying request_id (borrowed) and
 * either the page (reply leads) or a reason in its error (an unknown
 * stage or persona, naming the known ones; a cursor of another query; a
 * storage error). Returns a new buffer of *len bytes: the caller frees
 * it. */
uint8_t *query_leads(const query_t *q, const Funnel__V1__LeadsQuery *lq,
                     const char *request_id, size_t *len);

/* -- the worker --------------------------------------------------------- */

typedef struct query_leads_worker query_leads_worker_t;

/* A worker for q (copied; what it points to is borrowed), whose answers
 * are sent from base's thread (the query thread): a pipe watched by base
 * says when some are ready. NULL and a reason in err on failure. Caller
 * owns the result: query_leads_worker_destroy(). */
query_leads_worker_t *query_leads_worker_new(const query_t *q, struct event_base *base,
                                             char *err, size_t errlen);

/* The same worker for other long queries (the definition lab): run
 * answers one request in the worker's thread (a packed QueryReply, which
 * the caller frees, *len bytes; never NULL), taking the definition's lock
 * itself for as long as it needs it, and polling *cancel (set when the
 * worker is destroyed) if it runs long. what names the thread in the log. */
typedef uint8_t *query_job_fn(const query_t *q, const Funnel__V1__QueryRequest *req,
                              const atomic_int *cancel, size_t *len);
query_leads_worker_t *query_worker_new(const query_t *q, struct event_base *base,
                                       query_job_fn *run, const char *what, char *err,
                                       size_t errlen);

/* Start the thread. Returns 0, or -1 (logged). */
int query_leads_worker_start(query_leads_worker_t *self);

/* Queue *req_p (a decoded QueryRequest of a leads query; taken, set to
 * NULL) from the request msg on the ROUTER sock (its envelope copied):
 * the reply goes to sock from the thread of base. Returns 0, or -1 when
 * too many listings wait already (*req_p untouched: answer "busy"). Query
 * thread. */
int query_leads_submit(query_leads_worker_t *self, bus_sock_t *sock, bus_msg_t *msg,
                       Funnel__V1__QueryRequest **req_p);

/* Stop the thread (the page being read is finished first), drop what
 * waits, free. Call after base's loop has stopped. Accepts NULL; sets
 * *self_p to NULL. */
void query_leads_worker_destroy(query_leads_worker_t **self_p);

#endif
