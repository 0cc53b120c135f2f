/* http_ui_int.h: what http_ui.c, http_api.c, http_sse.c and
 * http_static.c share. Not for other modules: see http_ui.h.
 * Thread: the HTTP thread's, as http_ui.h says.
 */
#ifndef FUNNELD_HTTP_UI_INT_H
#define FUNNELD_HTTP_UI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/http.h>
#include <jansson.h>

#include "bus.h"
#include "funnel.pb-c.h"
#include "http_ui.h"

typedef struct http_sse_client http_sse_client_t;

struct http_ui {
    query_t q;
    http_ui_src_t src;
    struct event_base *base;
    /* http_api.c: the DEALER to the query server, made when first used. */
    void *query_sock;
    uint64_t query_seq;          /* request ids */
    /* http_sse.c: the SUB to the alerts, made with the first stream. */
    bus_t *alerts_bus;
    bus_sock_t *alerts_sub;
    http_sse_client_t *clients;  /* the open streams */
    size_t n_clients;
    struct event *ev_ping;       /* keeps idle streams open */
    uint64_t dropped;            /* streams dropped for being slow */
};

/* Send text with Content-Type type and status code (and the headers every
 * dashboard answer has: no sniffing, the content security policy). */
void http_ui_send(struct evhttp_request *req, int code, const char *reason,
                  const char *type, const void *data, size_t len);

/* {"error": msg} as JSON with status code. */
void http_ui_send_error(struct evhttp_request *req, int code, const char *reason,
                        const char *msg);

/* The request's query string as key/value pairs into q (caller clears it
 * with evhttp_clear_headers); each key must be one of allowed (NULL-
 * terminated) and appear once. Returns 0, or -1 with a 400 sent. */
int http_ui_query_args(struct evhttp_request *req, const char *const *allowed,
                       struct evkeyvalq *q);

/* req's reply from the query server (req->request_id is set here), or
 * NULL with *why (static) when there is none in time. Waits on the HTTP
 * thread: the query server answers from a read snapshot, never waiting for
 * ingest. Caller frees the reply (funnel__v1__query_reply__free_unpacked). */
Funnel__V1__QueryReply *http_api_ask(http_ui_t *self, Funnel__V1__QueryRequest *req,
                                     const char **why);

/* The routes of each file. Each returns false when path is not its own. */
bool http_api_handle(http_ui_t *self, struct evhttp_request *req, const char *path);
bool http_sse_handle(http_ui_t *self, struct evhttp_request *req, const char *path);
bool http_static_handle(http_ui_t *self, struct evhttp_request *req, const char *path);

/* Close the API's socket; close every stream and the alerts socket. */
void http_api_close(http_ui_t *self);
void http_sse_close(http_ui_t *self);

#endif
