/* http.c: see http.h.
 *
 * Requests are dispatched through the route table s_routes: a path (exact,
 * or a prefix when it ends with '/') and a handler that answers the
 * request on the HTTP thread. To add a route, write a handler and add its
 * row; the dispatcher has checked the method (GET or HEAD) and the token
 * before any handler runs. What no row answers goes to the dashboard
 * (http_ui.h: its pages, /api/ and /events, in files of their own).
 */
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "http_ui.h"
#include "http_leads.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

#define S_TOKEN_MAX 512

struct http {
    query_t q;
    struct event_base *base;
    struct evhttp *http;
    struct event *ev_stop;
    int stop_fd[2];
    pthread_t thread;
    bool started;
    char token[S_TOKEN_MAX];      /* "" for none */
    char where[300];              /* host:port, for logs */
    http_ui_t *ui;                /* the dashboard, or NULL */
};

typedef void s_route_fn(http_t *self, struct evhttp_request *req);

static void s_send_text(struct evhttp_request *req, int code, const char *reason,
                        const char *text)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evbuffer_add(body, text, strlen(text));
    evhttp_send_reply(req, code, reason, body);
    evbuffer_free(body);
}

/* GET /healthz: 200 while the loop thread runs. */
static void s_healthz(http_t *self, struct evhttp_request *req)
{
    char why[256], text[300];
    if (metrics_alive(self->q.metrics, why, sizeof why)) {
        s_send_text(req, 200, "OK", "ok\n");
        return;
    }
    snprintf(text, sizeof text, "%s\n", why);
    s_send_text(req, 503, "Service Unavailable", text);
}

/* GET /readyz: 200 once recovered, while intake runs. */
static void s_readyz(http_t *self, struct evhttp_request *req)
{
    char why[256], text[300];
    if (metrics_ready(self->q.metrics, why, sizeof why)) {
        s_send_text(req, 200, "OK", "ready\n");
        return;
    }
    snprintf(text, sizeof text, "%s\n", why);
    s_send_text(req, 503, "Service Unavailable", text);
}

/* GET /metrics: the Prometheus text exposition. */
static void s_metrics(http_t *self, struct evhttp_request *req)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    /* A scrape sees every event acknowledged before it, as a query does
     * (the partitions apply off the Ack path), so that /metrics and
     * funnelctl stats agree. A reload waits for this request, as it does
     * for a query. */
    query_sync(&self->q);
    pthread_rwlock_rdlock(self->q.defn_lock);
    metrics_src_t src = {
        .store = self->q.store,
        .defn = *self->q.defn_p,
        .auth = self->q.auth,
        .started_ms = self->q.started_ms,
    };
    int rc = metrics_render(self->q.metrics, &src, out);
    pthread_rwlock_unlock(self->q.defn_lock);
    fclose(out);
    if (rc != 0)
        log_warn("[http] /metrics: the state could not be read; its families are missing");
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        free(text);
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evbuffer_add(body, text, len);
    free(text);
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
}

/* GET /api/leads: the leads listing (http_leads.h). */
static void s_leads(http_t *self, struct evhttp_request *req)
{
    http_leads(&self->q, req);
}

static const struct {
    const char *path;    /* exact, or a prefix when it ends with '/' */
    s_route_fn *fn;
} s_routes[] = {
    {"/metrics", s_metrics},
    {"/healthz", s_healthz},
    {"/readyz", s_readyz},
    {"/api/leads", s_leads},
};

/* Compare without leaking where the first difference is. */
static bool s_token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i < lb ? i : 0]);
    return diff == 0;
}

static void s_dispatch(struct evhttp_request *req, void *arg)
{
    http_t *self = arg;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        s_send_text(req, 405, "Method Not Allowed", "only GET and HEAD\n");
        return;
    }
    if (self->token[0]) {
        const char *auth =
            evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
        if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 ||
            !s_token_equal(auth + 7, self->token)) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                              "Bearer realm=\"funneld\"");
            s_send_text(req, 401, "Unauthorized", "a valid bearer token is required\n");
            return;
        }
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL)
        path = "/";
    for (size_t i = 0; i < sizeof s_routes / sizeof s_routes[0]; i++) {
        const char *p = s_routes[i].path;
        size_t n = strlen(p);
        if (p[n - 1] == '/' ? strncmp(path, p, n) == 0 : strcmp(path, p) == 0) {
            s_routes[i].fn(self, req);
            return;
        }
    }
    if (self->ui && http_ui_handle(self->ui, req, path))
        return;
    s_send_text(req, 404, "Not Found", self->ui
                    ? "not found: try /, /api/funnel, /api/leads, /events, /metrics, /healthz or /readyz\n"
                    : "not found: try /metrics, /healthz, /readyz or /api/leads\n");
}

static int s_read_token(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "http_token_file %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, cap - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' ||
                     out[n - 1] == '\t'))
        out[--n] = '\0';
    if (more || n == 0 || strpbrk(out, "\r\n") != NULL) {
        snprintf(err, errlen, "http_token_file %s: must hold one token of 1 to %zu "
                              "characters on one line", path, cap - 2);
        return -1;
    }
    return 0;
}

static void s_on_stop(evutil_socket_t fd, short what, void *arg)
{
    http_t *self = arg;
    char c;
    (void)!read(fd, &c, 1);
    event_base_loopbreak(self->base);
}

http_t *http_new(const query_t *q, const char *hostport, const char *token_file,
                 char *err, size_t errlen)
{
    char host[256];
    unsigned port;
    http_t *self = xcalloc(1, sizeof *self);
    self->q = *q;
    self->stop_fd[0] = self->stop_fd[1] = -1;
    snprintf(self->where, sizeof self->where, "%s", hostport);
    if (cfg_http_split(hostport, host, sizeof host, &port) == -1) {
        snprintf(err, errlen, "http: not host:port: %s", hostport);
        goto fail;
    }
    if (token_file[0] &&
        s_read_token(token_file, self->token, sizeof self->token, err, errlen) == -1)
        goto fail;
    if (pipe2(self->stop_fd, O_CLOEXEC | O_NONBLOCK) == -1) {
        snprintf(err, errlen, "http: pipe: %s", strerror(errno));
        goto fail;
    }
    self->base = event_base_new();
    self->http = self->base ? evhttp_new(self->base) : NULL;
    if (self->http == NULL) {
        snprintf(err, errlen, "http: cannot create the server");
        goto fail;
    }
    self->ev_stop = event_new(self->base, self->stop_fd[0], EV_READ | EV_PERSIST,
                              s_on_stop, self);
    if (self->ev_stop == NULL || event_add(self->ev_stop, NULL) == -1) {
        snprintf(err, errlen, "http: cannot watch its stop pipe");
        goto fail;
    }
    /* Requests are small GETs: bound what a client may send and how long
     * it may take. */
    evhttp_set_max_headers_size(self->http, 16384);
    evhttp_set_max_body_size(self->http, 4096);
    evhttp_set_timeout(self->http, 10);
    evhttp_set_allowed_methods(self->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                                               EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                               EVHTTP_REQ_DELETE);
    evhttp_set_gencb(self->http, s_dispatch, self);
    errno = 0;
    if (evhttp_bind_socket(self->http, host, (uint16_t)port) != 0) {
        snprintf(err, errlen, "cannot listen for http on %s: %s", hostport,
                 errno ? strerror(errno) : "bind failed");
        goto fail;
    }
    return self;
fail:
    http_destroy(&self);
    return NULL;
}

static void *s_thread(void *arg)
{
    http_t *self = arg;
    if (event_base_dispatch(self->base) == -1)
        log_err("[http] event loop failed; HTTP is no longer served");
    return NULL;
}

void http_set_ui(http_t *self, const http_ui_src_t *src)
{
    self->ui = http_ui_new(self->base, &self->q, src);
}

int http_start(http_t *self)
{
    int rc = pthread_create(&self->thread, NULL, s_thread, self);
    if (rc != 0) {
        log_err("[http] cannot start the HTTP thread: %s", strerror(rc));
        return -1;
    }
    self->started = true;
    log_info("[http] serving %s/api/leads, /metrics, /healthz and /readyz on http://%s/%s",
             self->ui ? "the dashboard at /, its API at /api/, /events, " : "",
             self->where, self->token[0] ? " (bearer token required)" : "");
    return 0;
}

void http_destroy(http_t **self_p)
{
    http_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->started) {
        (void)!write(self->stop_fd[1], "x", 1);
        pthread_join(self->thread, NULL);
    }
    http_ui_destroy(&self->ui); /* its streams, before evhttp frees them */
    if (self->http)
        evhttp_free(self->http);
    if (self->ev_stop)
        event_free(self->ev_stop);
    if (self->base)
        event_base_free(self->base);
    for (int i = 0; i < 2; i++)
        if (self->stop_fd[i] != -1)
            close(self->stop_fd[i]);
    explicit_bzero(self->token, sizeof self->token);
    free(self);
    *self_p = NULL;
}
