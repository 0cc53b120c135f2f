/* query.h: the query endpoint. One QueryRequest in, one QueryReply out,
 * answered from a read snapshot of the store that ends before the reply is
 * sent (queries never hold a transaction across loop iterations, and never
 * see events that are not yet acknowledged).
 *
 * Threading: the loop thread only.
 */
#ifndef FUNNELD_QUERY_H
#define FUNNELD_QUERY_H

#include <stdint.h>

#include "bus.h"
#include "defn.h"
#include "store.h"

typedef struct {
    store_t *store;
    const defn_t *const *defn_p;   /* the definition in use */
    int64_t started_ms;            /* process start, wall clock */
} query_t;

/* bus_recv_fn for the query ROUTER; arg is a query_t. */
void query_on_request(bus_sock_t *sock, bus_msg_t *msg, void *arg);

#endif
