/* query_alerts.h: the AlertsSince query of the query endpoint (see
 * query.h and proto/funnel.proto): the stored alerts after an alert
 * sequence number, a page at a time.
 *
 * Threading: the query thread, which reads the store in its own snapshot;
 * it never waits for a group commit.
 */
#ifndef FUNNELD_QUERY_ALERTS_H
#define FUNNELD_QUERY_ALERTS_H

#include "bus.h"
#include "funnel.pb-c.h"
#include "store.h"

#define QUERY_ALERTS_DEFAULT 1000    /* AlertsSince.limit 0 */
#define QUERY_ALERTS_MAX 10000       /* the largest limit */
#define QUERY_ALERTS_TOPICS_MAX 64   /* topic prefixes in one query */

/* Answer req on sock to the client of msg (its routing frames are echoed):
 * a QueryReply with request_id and either alerts_since or an error (a bad
 * limit or topic list, a storage error). The stored Alert bytes go into
 * the reply as they are, without decoding them. Everything is borrowed;
 * the snapshot ends before the reply is sent. */
void query_alerts_since(store_t *store, const char *request_id,
                        const Funnel__V1__AlertsSince *req, bus_sock_t *sock,
                        bus_msg_t *msg);

/* The same page as encoded bytes of an AlertsSinceReply (for tests and the
 * reply above): 0 and *out (caller frees), *len, or -1 with a reason in
 * err. */
int query_alerts_page(store_t *store, const Funnel__V1__AlertsSince *req,
                      uint8_t **out, size_t *len, char *err, size_t errlen);

#endif
