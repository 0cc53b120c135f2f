/* http_leads.h: GET /api/leads, the leads listing over HTTP: the
 * parameters of `funnelctl leads` as a query string (stage and persona
 * repeatable; qualified, not-qualified, stalled and desc flags; min-score,
 * since, source, handoff, sort, limit, columns), and the document of
 * `funnelctl leads --format json` as the answer, {"as_of","leads":[...]},
 * written by the same code (common/leadrows.c).
 *
 * The answer is chunked, one page of the listing (query_leads, a read
 * snapshot of its own) per chunk, and the next page is read only once the
 * last chunk went out: a client that stops reading holds one page in
 * memory and nothing else, and the HTTP thread answers other requests
 * between pages. A bad parameter is a 400 with the reason (an unknown
 * stage or persona names the known ones).
 *
 * Threading: the HTTP thread (http.c).
 */
#ifndef FUNNELD_HTTP_LEADS_H
#define FUNNELD_HTTP_LEADS_H

#include <event2/http.h>

#include "query.h"

/* Answer req (GET or HEAD /api/leads) from what q points to (borrowed;
 * it must outlive the answer, which may end after this returns). */
void http_leads(const query_t *q, struct evhttp_request *req);

#endif
