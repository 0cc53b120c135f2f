/* http.h: HTTP for operations, on libevent's evhttp, in a thread of its
 * own: /metrics (Prometheus text exposition), /healthz and /readyz.
 *
 * Threading: the HTTP thread has its own event_base. It reads the store
 * in its own read snapshots (never inside a group: LMDB readers do not
 * wait for the writer), the published counters (store_stats_read), the
 * metrics' atomics and the definition under defn_lock held shared, like
 * the query thread. It never waits for a group commit.
 *
 * With a token (http_token_file), every request must carry
 * "Authorization: Bearer <token>"; others get 401.
 */
#ifndef FUNNELD_HTTP_H
#define FUNNELD_HTTP_H

#include <stddef.h>

#include "http_ui.h"
#include "query.h"

typedef struct http http_t;

/* An HTTP server for what q points to (copied; borrowed pointers must
 * outlive the server; q->metrics must be set), listening on hostport
 * ("host:port", cfg_http_split) now, so that a busy port is reported at
 * start-up. token_file: "" for none. NULL and one line in err on failure.
 * Caller owns the result: http_destroy(). */
http_t *http_new(const query_t *q, const char *hostport, const char *token_file,
                 char *err, size_t errlen);

/* Serve the dashboard too (http_ui.h), with src's ZeroMQ contexts (their
 * owners must outlive the server). Before http_start(). */
void http_set_ui(http_t *self, const http_ui_src_t *src);

/* Start serving, in the server's thread. Returns 0, or -1 (logged). */
int http_start(http_t *self);

/* Stop the thread (the request being answered is finished first), close
 * and free. Accepts NULL; sets *self_p to NULL. */
void http_destroy(http_t **self_p);

#endif
