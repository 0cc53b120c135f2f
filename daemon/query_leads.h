/* query_leads.h: the leads listing of the query endpoint (LeadsQuery ->
 * LeadsReply, see proto/funnel.proto): the leads that pass a query's
 * filters, in its order, one page per request, each page read from a
 * snapshot of its own that ends before the reply goes out.
 *
 * Threading: the query thread, holding the definition's lock shared (as
 * every query does, query.c); the store's reads run in that thread's own
 * snapshot.
 */
#ifndef FUNNELD_QUERY_LEADS_H
#define FUNNELD_QUERY_LEADS_H

#include <stddef.h>
#include <stdint.h>

#include "funnel.pb-c.h"
#include "query.h"

/* Answer lq: a packed QueryReply carrying request_id (borrowed) and
 * either the page (reply leads) or a reason in its error (an unknown
 * stage or persona, naming the known ones; a cursor of another query; a
 * storage error). Returns a new buffer of *len bytes: the caller frees
 * it. */
uint8_t *query_leads(const query_t *q, const Funnel__V1__LeadsQuery *lq,
                     const char *request_id, size_t *len);

#endif
