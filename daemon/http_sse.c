/* http_sse.c: GET /events, the live alerts as Server-Sent Events (see
 * http_ui.h).
 *
 * /events?topics=handoff,friction. streams the alerts whose topic begins
 * with one of the prefixes (none given: every alert), each as one event
 * whose data is the alert as `funnelctl watch --json` prints it (one line
 * of JSON). The first stream subscribes the HTTP thread to the alerts XPUB
 * (inproc, in the loop thread's context), each stream adds its prefixes
 * (ZeroMQ counts subscriptions) and takes them back when it closes, so the
 * loop thread builds no alert that nobody watches.
 *
 * A stream whose unsent output passes S_CLIENT_BUF_MAX (a browser that
 * does not read) is closed: the SUB is drained at once whatever the
 * browsers do, and the XPUB drops at its high-water mark rather than wait.
 * Idle streams get a comment every S_PING_S seconds; "retry:" tells the
 * browser to reconnect after S_RETRY_MS when funneld restarts.
 *
 * Each stored alert goes with its alert_seq as the event's id. A browser
 * that reconnects sends the last one it saw (Last-Event-ID; or ?since=SEQ):
 * the stream then starts with the stored alerts after it (AlertsSince from
 * the query server, the newest S_CATCHUP_MAX at most), and live alerts
 * already sent are skipped. So neither a restart of funneld nor a drop for
 * slowness loses an alert: a catch-up that does not fit in the stream's
 * buffer ends the stream, and the browser's next reconnect goes on.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <errno.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funnel.pb-c.h"
#include "http_ui_int.h"
#include "log.h"
#include "render.h"
#include "xalloc.h"

#define S_TOPICS_MAX 16
#define S_TOPIC_LEN_MAX 64
#define S_CLIENTS_MAX 256
#define S_CLIENT_BUF_MAX (1024 * 1024)
#define S_PING_S 15
#define S_RETRY_MS 2000
#define S_STREAM_TIMEOUT_S (24 * 3600)
#define S_BUDGET 256
#define S_CATCHUP_MAX 10000
#define S_CATCHUP_PAGE 1000

struct http_sse_client {
    http_sse_client_t *next;
    http_ui_t *ui;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    size_t n_topics;
    char topics[S_TOPICS_MAX][S_TOPIC_LEN_MAX + 1];
    uint64_t last_seq;           /* the newest alert_seq sent */
};

/* Unlink c, take back its subscriptions and free it. */
static void s_client_free(http_ui_t *ui, http_sse_client_t *c)
{
    for (http_sse_client_t **p = &ui->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            ui->n_clients--;
            break;
        }
    for (size_t i = 0; i < c->n_topics && ui->alerts_sub; i++)
        bus_unsubscribe(ui->alerts_sub, c->topics[i]);
    free(c);
}

/* The connection closes: the browser went away, or s_drop freed it. When
 * the browser went away evhttp has detached the streamed request from the
 * connection and leaves it to us: ending the reply frees it. (When we free
 * the connection, the request is still on it and evhttp frees it.) */
static void s_on_close(struct evhttp_connection *evcon, void *arg)
{
    http_sse_client_t *c = arg;
    struct evhttp_request *req = c->req;
    s_client_free(c->ui, c);
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_send_reply_end(req);
}

/* Close c's connection now (closes and frees c through s_on_close). */
static void s_drop(http_sse_client_t *c)
{
    evhttp_connection_free(c->evcon);
}

static size_t s_pending(const http_sse_client_t *c)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

/* Send text to c, or drop c when it does not keep up. */
static void s_send(http_ui_t *ui, http_sse_client_t *c, const char *text, size_t len)
{
    if (s_pending(c) + len > S_CLIENT_BUF_MAX) {
        ui->dropped++;
        log_warn("[http] dropped a slow /events client (%zu bytes unsent; %llu dropped "
                 "so far)", s_pending(c), (unsigned long long)ui->dropped);
        s_drop(c);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        s_drop(c);
        return;
    }
    evbuffer_add(b, text, len);
    evhttp_send_reply_chunk(c->req, b);
    evbuffer_free(b);
}

static bool s_wants(const http_sse_client_t *c, const char *topic)
{
    for (size_t i = 0; i < c->n_topics; i++)
        if (strncmp(topic, c->topics[i], strlen(c->topics[i])) == 0)
            return true;
    return false;
}

/* One event of the stream for a (with its alert_seq as the id): a new
 * string, the caller frees it. The data is one line of compact JSON, so no
 * newline can end it early. */
static char *s_event_text(const Funnel__V1__Alert *a, const char *topic)
{
    json_t *doc = render_alert_json(a, topic);
    char *json = json_dumps(doc, RENDER_NDJSON_FLAGS);
    json_decref(doc);
    if (json == NULL)
        abort();
    char *text = a->alert_seq ? xasprintf("id: %llu\ndata: %s\n\n",
                                          (unsigned long long)a->alert_seq, json)
                              : xasprintf("data: %s\n\n", json);
    free(json);
    return text;
}

/* bus_recv_fn of the alerts SUB: [topic, Alert]. */
static void s_on_alert(bus_sock_t *sock, bus_msg_t *msg, void *arg)
{
    http_ui_t *ui = arg;
    char topic[S_TOPIC_LEN_MAX + 1];
    if (msg->n != 2 || msg->truncated)
        return;
    size_t tlen = zmq_msg_size(&msg->part[0]);
    if (tlen > S_TOPIC_LEN_MAX)
        tlen = S_TOPIC_LEN_MAX;
    memcpy(topic, zmq_msg_data(&msg->part[0]), tlen);
    topic[tlen] = '\0';
    Funnel__V1__Alert *a = funnel__v1__alert__unpack(NULL, zmq_msg_size(&msg->part[1]),
                                                      zmq_msg_data(&msg->part[1]));
    if (a == NULL) {
        log_warn("[http] an undecodable alert on %s: not streamed", topic);
        return;
    }
    char *text = s_event_text(a, topic);
    uint64_t seq = a->alert_seq;
    funnel__v1__alert__free_unpacked(a, NULL);
    size_t len = strlen(text);
    for (http_sse_client_t *c = ui->clients, *next; c; c = next) {
        next = c->next; /* s_send may free c */
        /* Numbered alerts a catch-up sent already are not sent again. */
        if (!s_wants(c, topic) || (seq && seq <= c->last_seq))
            continue;
        if (seq)
            c->last_seq = seq;
        s_send(ui, c, text, len);
    }
    free(text);
}

static void s_on_ping(evutil_socket_t fd, short what, void *arg)
{
    http_ui_t *ui = arg;
    static const char ping[] = ": ping\n\n";
    for (http_sse_client_t *c = ui->clients, *next; c; c = next) {
        next = c->next;
        s_send(ui, c, ping, sizeof ping - 1);
    }
}

/* The SUB to the alerts and the ping timer, made with the first stream.
 * Returns 0 or -1. */
static int s_start(http_ui_t *ui)
{
    char err[256];
    if (ui->alerts_sub)
        return 0;
    if (ui->src.alerts_ctx == NULL)
        return -1;
    if (ui->alerts_bus == NULL)
        ui->alerts_bus = bus_new_shared(ui->base, ui->src.alerts_ctx);
    bus_opts_t opts = {.linger_ms = 0, .max_msg_bytes = -1, .rcvhwm = 10000};
    ui->alerts_sub = bus_socket(ui->alerts_bus, ZMQ_SUB, HTTP_UI_ALERTS_INPROC, false,
                                &opts, err, sizeof err);
    if (ui->alerts_sub == NULL) {
        log_warn("[http] /events: %s", err);
        return -1;
    }
    bus_on_recv(ui->alerts_sub, s_on_alert, ui, S_BUDGET);
    ui->ev_ping = event_new(ui->base, -1, EV_PERSIST, s_on_ping, ui);
    struct timeval tv = {S_PING_S, 0};
    if (ui->ev_ping)
        event_add(ui->ev_ping, &tv);
    return 0;
}

/* Where a stream resumes: the Last-Event-ID header, else ?since=. Returns
 * 1 and *seq, 0 for neither (live only), -1 with a 400 sent when it is not
 * a number. */
static int s_resume_seq(struct evhttp_request *req, const char *since, uint64_t *seq)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req),
                                       "Last-Event-ID");
    char *end;
    *seq = 0;
    if (v == NULL || v[0] == '\0')
        v = since;
    if (v == NULL || v[0] == '\0')
        return 0;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || errno) {
        http_ui_send_error(req, 400, "Bad Request",
                           "since / Last-Event-ID: want an alert_seq (a whole number)");
        return -1;
    }
    *seq = n;
    return 1;
}

/* The topics parameter: comma-separated prefixes of [a-z0-9._-], at most
 * S_TOPICS_MAX; absent or empty: every topic. And where to resume
 * (s_resume_seq: *resume and *since). 0, or -1 with a 400 sent. */
static int s_topics(struct evhttp_request *req, http_sse_client_t *c, uint64_t *since,
                    bool *resume)
{
    static const char *const allowed[] = {"topics", "since", NULL};
    struct evkeyvalq args;
    char msg[200];
    if (http_ui_query_args(req, allowed, &args) == -1)
        return -1;
    const char *t = evhttp_find_header(&args, "topics");
    c->n_topics = 0;
    while (t && *t) {
        size_t n = strcspn(t, ",");
        if (n == 0 || n > S_TOPIC_LEN_MAX || c->n_topics == S_TOPICS_MAX ||
            strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789._-") < n) {
            snprintf(msg, sizeof msg, "topics: want at most %d comma-separated topic "
                     "prefixes of 1 to %d characters a-z 0-9 . _ -", S_TOPICS_MAX,
                     S_TOPIC_LEN_MAX);
            evhttp_clear_headers(&args);
            http_ui_send_error(req, 400, "Bad Request", msg);
            return -1;
        }
        memcpy(c->topics[c->n_topics], t, n);
        c->topics[c->n_topics++][n] = '\0';
        t += n;
        if (*t == ',')
            t++;
    }
    if (c->n_topics == 0)
        c->topics[c->n_topics++][0] = '\0';
    int rc = s_resume_seq(req, evhttp_find_header(&args, "since"), since);
    evhttp_clear_headers(&args);
    *resume = rc == 1;
    return rc < 0 ? -1 : 0;
}

/* Send c the stored alerts of its topics after seq (the newest
 * S_CATCHUP_MAX at most). Returns 0 when done, 1 when c's buffer filled
 * first (the caller ends the stream: the browser resumes from what it got),
 * -1 when the store could not be asked (logged; live alerts go on). */
static int s_catch_up(http_ui_t *ui, http_sse_client_t *c, uint64_t seq)
{
    char *topics[S_TOPICS_MAX];
    size_t sent = 0;
    bool first = true;
    for (size_t i = 0; i < c->n_topics; i++)
        topics[i] = c->topics[i];
    c->last_seq = seq;
    for (;;) {
        Funnel__V1__QueryRequest qr = FUNNEL__V1__QUERY_REQUEST__INIT;
        Funnel__V1__AlertsSince as = FUNNEL__V1__ALERTS_SINCE__INIT;
        as.seq = seq;
        /* One "" prefix (every topic) is no topic list. */
        as.n_topics = c->topics[0][0] ? c->n_topics : 0;
        as.topics = topics;
        as.limit = S_CATCHUP_PAGE;
        qr.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_ALERTS_SINCE;
        qr.alerts_since = &as;
        const char *why = NULL;
        Funnel__V1__QueryReply *r = http_api_ask(ui, &qr, &why);
        if (r == NULL || (r->error && r->error[0]) ||
            r->reply_case != FUNNEL__V1__QUERY_REPLY__REPLY_ALERTS_SINCE) {
            log_warn("[http] /events: the stored alerts after %llu cannot be read: %s",
                     (unsigned long long)seq, r ? r->error : why);
            if (r)
                funnel__v1__query_reply__free_unpacked(r, NULL);
            return -1;
        }
        const Funnel__V1__AlertsSinceReply *p = r->alerts_since;
        if (first && p->last_seq > seq + S_CATCHUP_MAX) {
            /* Too far behind: the newest ones only. */
            char note[96];
            int n = snprintf(note, sizeof note, ": alerts %llu..%llu skipped\n\n",
                             (unsigned long long)seq + 1,
                             (unsigned long long)(p->last_seq - S_CATCHUP_MAX));
            s_send(ui, c, note, (size_t)n);
            seq = c->last_seq = p->last_seq - S_CATCHUP_MAX;
            first = false;
            funnel__v1__query_reply__free_unpacked(r, NULL);
            continue;
        }
        first = false;
        for (size_t i = 0; i < p->n_alerts; i++) {
            const Funnel__V1__Alert *a = p->alerts[i];
            if (a->alert_seq <= c->last_seq)
                continue;
            char *text = s_event_text(a, a->topic);
            size_t len = strlen(text);
            bool full = s_pending(c) + len > S_CLIENT_BUF_MAX / 2;
            if (!full) {
                s_send(ui, c, text, len);
                c->last_seq = a->alert_seq;
                sent++;
            }
            free(text);
            if (full) {
                funnel__v1__query_reply__free_unpacked(r, NULL);
                return 1;
            }
        }
        bool more = p->more && p->next_seq > seq;
        seq = p->next_seq;
        funnel__v1__query_reply__free_unpacked(r, NULL);
        if (!more || sent >= S_CATCHUP_MAX)
            return 0;
    }
}

bool http_sse_handle(http_ui_t *ui, struct evhttp_request *req, const char *path)
{
    if (strcmp(path, "/events") != 0)
        return false;
    http_sse_client_t *c = xcalloc(1, sizeof *c);
    uint64_t since = 0;
    bool resume = false;
    c->ui = ui;
    if (s_topics(req, c, &since, &resume) == -1) {
        free(c);
        return true;
    }
    if (ui->n_clients >= S_CLIENTS_MAX) {
        free(c);
        http_ui_send_error(req, 503, "Service Unavailable", "too many /events streams");
        return true;
    }
    if (s_start(ui) == -1) {
        free(c);
        http_ui_send_error(req, 503, "Service Unavailable", "alerts cannot be streamed");
        return true;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        free(c);
        evhttp_send_reply(req, 200, "OK", NULL);
        return true;
    }
    for (size_t i = 0; i < c->n_topics; i++)
        bus_subscribe(ui->alerts_sub, c->topics[i]);
    c->req = req;
    c->evcon = evhttp_request_get_connection(req);
    c->next = ui->clients;
    ui->clients = c;
    ui->n_clients++;
    evhttp_connection_set_timeout(c->evcon, S_STREAM_TIMEOUT_S);
    evhttp_connection_set_closecb(c->evcon, s_on_close, c);
    evhttp_send_reply_start(req, 200, "OK");
    char hello[64];
    int n = snprintf(hello, sizeof hello, "retry: %d\n: funneld alerts\n\n", S_RETRY_MS);
    s_send(ui, c, hello, (size_t)n);
    /* Subscribed first, so that nothing falls between the stored alerts
     * and the live ones (those sent twice are skipped by number). */
    if (resume && s_catch_up(ui, c, since) == 1) {
        /* End the stream (from within evhttp's callback: not by freeing
         * the connection); the browser reconnects from what it got. */
        evhttp_connection_set_closecb(c->evcon, NULL, NULL);
        s_client_free(ui, c);
        evhttp_send_reply_end(req);
    }
    return true;
}

void http_sse_close(http_ui_t *ui)
{
    while (ui->clients) {
        http_sse_client_t *c = ui->clients;
        evhttp_connection_set_closecb(c->evcon, NULL, NULL);
        struct evhttp_connection *evcon = c->evcon;
        s_client_free(ui, c);
        evhttp_connection_free(evcon);
    }
    if (ui->ev_ping)
        event_free(ui->ev_ping);
    ui->ev_ping = NULL;
    bus_destroy(&ui->alerts_bus);
    ui->alerts_sub = NULL;
}
