/* http_ui.c: see http_ui.h. The dispatch to the dashboard's three route
 * files and what their answers share. */
#include "http_ui.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "http_ui_int.h"
#include "render.h"
#include "xalloc.h"

/* Scripts, styles, images and connections from funneld only: no inline
 * script, no CDN, nothing that a value shown on a page could bring in. */
#define S_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
              "img-src 'self'; connect-src 'self'; base-uri 'none'; "     \
              "form-action 'none'; frame-ancestors 'none'"

http_ui_t *http_ui_new(struct event_base *base, const query_t *q,
                       const http_ui_src_t *src)
{
    http_ui_t *self = xcalloc(1, sizeof *self);
    self->q = *q;
    self->src = *src;
    self->base = base;
    return self;
}

bool http_ui_handle(http_ui_t *self, struct evhttp_request *req, const char *path)
{
    return http_api_handle(self, req, path) || http_sse_handle(self, req, path) ||
           http_static_handle(self, req, path);
}

void http_ui_destroy(http_ui_t **self_p)
{
    http_ui_t *self = *self_p;
    if (self == NULL)
        return;
    http_sse_close(self);
    http_api_close(self);
    free(self);
    *self_p = NULL;
}

void http_ui_send(struct evhttp_request *req, int code, const char *reason,
                  const char *type, const void *data, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Content-Security-Policy", S_CSP);
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evbuffer_add(body, data, len);
    evhttp_send_reply(req, code, reason, body);
    evbuffer_free(body);
}

void http_ui_send_error(struct evhttp_request *req, int code, const char *reason,
                        const char *msg)
{
    json_t *doc = json_object();
    if (doc == NULL)
        abort();
    json_t *v = json_string(msg);
    json_object_set_new(doc, "error", v ? v : json_string("(not UTF-8)"));
    char *text = json_dumps(doc, RENDER_JSON_FLAGS);
    json_decref(doc);
    if (text == NULL)
        abort();
    size_t n = strlen(text);
    char *line = xmalloc(n + 2);
    memcpy(line, text, n);
    line[n] = '\n';
    free(text);
    http_ui_send(req, code, reason, "application/json", line, n + 1);
    free(line);
}

int http_ui_query_args(struct evhttp_request *req, const char *const *allowed,
                       struct evkeyvalq *q)
{
    char msg[200];
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    TAILQ_INIT(q);
    if (query == NULL || query[0] == '\0')
        return 0;
    if (evhttp_parse_query_str(query, q) != 0) {
        http_ui_send_error(req, 400, "Bad Request", "the query string cannot be decoded");
        return -1;
    }
    for (struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next) {
        bool known = false;
        for (size_t i = 0; allowed[i]; i++)
            known = known || strcmp(kv->key, allowed[i]) == 0;
        for (struct evkeyval *o = q->tqh_first; known && o != kv; o = o->next.tqe_next)
            if (strcmp(o->key, kv->key) == 0) {
                snprintf(msg, sizeof msg, "parameter \"%.64s\" given twice", kv->key);
                goto bad;
            }
        if (!known && allowed[0] == NULL) {
            snprintf(msg, sizeof msg, "unknown parameter \"%.64s\" (this takes none)",
                     kv->key);
            goto bad;
        }
        if (!known) {
            int n = snprintf(msg, sizeof msg, "unknown parameter \"%.64s\" (known:", kv->key);
            for (size_t i = 0; allowed[i] && n > 0 && (size_t)n < sizeof msg; i++)
                n += snprintf(msg + n, sizeof msg - (size_t)n, " %s", allowed[i]);
            if (n > 0 && (size_t)n < sizeof msg)
                snprintf(msg + n, sizeof msg - (size_t)n, ")");
            goto bad;
        }
    }
    return 0;
bad:
    evhttp_clear_headers(q);
    http_ui_send_error(req, 400, "Bad Request", msg);
    return -1;
}
