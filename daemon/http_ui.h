/* http_ui.h: the dashboard on funneld's HTTP server (http.c): the pages
 * and their static files (http_static.c), the read-only JSON API under
 * /api/ (http_api.c) and the live alerts as Server-Sent Events from
 * /events (http_sse.c).
 *
 * The API serves the documents of `funnelctl ... --json`, from the same
 * code: it sends the query server the QueryRequest funnelctl would send,
 * over an inproc socket in the query server's ZeroMQ context (so CURVE,
 * which guards its TCP endpoint, does not apply in the process), and
 * renders the QueryReply with funnelctl's renderer (render/render.h). The
 * event stream subscribes to the alerts XPUB over an inproc socket in the
 * loop thread's context, like any subscriber, and only while a browser
 * listens: a slow browser is dropped, the loop thread never waits.
 *
 * Threading: everything here runs on the HTTP thread (its event_base),
 * but http_ui_new() and http_ui_destroy(), which run before the thread
 * starts and after it stopped.
 */
#ifndef FUNNELD_HTTP_UI_H
#define FUNNELD_HTTP_UI_H

#include <stdbool.h>

#include "query.h"

struct event_base;
struct evhttp_request;

/* The inproc endpoint the alerts XPUB also binds (the query ROUTER's is
 * QUERY_INPROC). */
#define HTTP_UI_ALERTS_INPROC "inproc://funneld-alerts"

typedef struct {
    void *query_ctx;     /* the query server's ZeroMQ context */
    void *alerts_ctx;    /* the loop thread's, where the alerts XPUB is */
} http_ui_src_t;

typedef struct http_ui http_ui_t;

/* The dashboard for the state q points to (copied; borrowed pointers must
 * outlive it) on base, with src's contexts (borrowed: the UI's sockets
 * must be closed, by http_ui_destroy(), before those contexts end). Never
 * fails (sockets are made when first needed). Caller owns the result. */
http_ui_t *http_ui_new(struct event_base *base, const query_t *q,
                       const http_ui_src_t *src);

/* Answer req when path is the dashboard's ("/", "/lead/...", "/api/...",
 * "/events", "/static/...", "/favicon.ico"); false otherwise (nothing
 * sent). The method (GET or HEAD) and the token were checked. */
bool http_ui_handle(http_ui_t *self, struct evhttp_request *req, const char *path);

/* Close every event stream and socket and free. After the HTTP thread has
 * stopped, before evhttp_free(). Accepts NULL; sets *self_p to NULL. */
void http_ui_destroy(http_ui_t **self_p);

#endif
