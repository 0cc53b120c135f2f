/* nats_query.h: queries across the instances of a cluster, over NATS.
 *
 * Each instance subscribes to funnel.query.> and answers, with the reply
 * its query endpoint gives, a QueryRequest that comes on
 *   funnel.query.<partition>  only while it owns that cluster partition
 *                             (a lead's: funnelctl --nats URL lead ID);
 *   funnel.query.all          always: every live instance answers, and
 *                             funnelctl gathers and merges the replies
 *                             (CountersQuery, StatsQuery).
 * The request goes to the query server unchanged (inproc, QUERY_INPROC),
 * so a NATS query is answered exactly as a ZeroMQ one (read-your-writes,
 * shadow drafts, errors). One request at a time; a reply larger than the
 * NATS server's max_payload is answered with an error saying so.
 *
 * CountersQuery (query thread): the instance's raw report counters and
 * mark sets, the definition in use (its text) and the daemon's time, from
 * one read snapshot: what funnelctl adds up and feeds to the report code.
 */
#ifndef FUNNELD_NATS_QUERY_H
#define FUNNELD_NATS_QUERY_H

#include <stdbool.h>

#include <nats/nats.h>

#include "bus.h"
#include "funnel.pb-c.h"
#include "query.h"

#define NATS_SUBJECT_QUERY "funnel.query."
#define NATS_SUBJECT_QUERY_ALL "funnel.query.all"
/* How long the responder waits for the query server's answer. */
#define NATS_QUERY_WAIT_MS 30000

typedef struct nats_query nats_query_t;

/* Whether this instance owns cluster partition p now (any thread). */
typedef bool nats_query_owns_fn(void *arg, unsigned p);

/* A responder on nc (borrowed, must outlive it) asking the query server
 * in zmq_ctx (query_server_context(); borrowed: destroy the responder
 * before the query server). Runs its own thread from now on; the
 * subscription is made there (again until it succeeds). NULL if the
 * thread cannot start. Caller owns the result. */
nats_query_t *nats_query_new(natsConnection *nc, void *zmq_ctx, nats_query_owns_fn *owns,
                             void *arg);

/* Stop the thread (the request being answered is finished or given up
 * first), unsubscribe, close its socket, free. Accepts NULL. */
void nats_query_destroy(nats_query_t **self_p);

/* Answer a CountersQuery (query thread, defn_lock held shared): the
 * CountersReply of q's state, definition and cluster settings. Sends the
 * reply; r's oneof is left unset. */
void nats_query_counters(query_t *q, const Funnel__V1__CountersQuery *cq, bus_sock_t *sock,
                         bus_msg_t *msg, Funnel__V1__QueryReply *r);

#endif
