/* http_api.c: the dashboard's read-only JSON API (see http_ui.h).
 *
 *   /api/funnel?by=persona|source|cohort&persona=P   funnelctl funnel --json
 *   /api/friction?by=persona|source                  funnelctl friction --json
 *   /api/friction?leads=1&stage=S&limit=N            ... --leads --json
 *   /api/lead/ID?limit=N                             funnelctl lead ID --json
 *   /api/stats                                       funnelctl stats --json
 *   /api/definition                                  the definition in use
 *
 * (/api/leads, the listing, is http_leads.c's.) Each document but the
 * definition is render.c's of the QueryReply the
 * query server answers to the QueryRequest funnelctl would send: the same
 * bytes. A query's error (a bad breakdown, an unknown persona) is a 400
 * {"error"}, an unknown lead a 404, a query server that does not answer
 * in S_QUERY_TIMEOUT_MS a 503.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "defn.h"
#include "funnel.pb-c.h"
#include "http_ui_int.h"
#include "render.h"
#include "xalloc.h"

#define S_QUERY_TIMEOUT_MS 5000
#define S_LEAD_ID_MAX 1024

/* Send doc (consumed) as funnelctl prints it: RENDER_JSON_FLAGS and a
 * newline. */
static void s_send_doc(struct evhttp_request *req, json_t *doc)
{
    char *text = json_dumps(doc, RENDER_JSON_FLAGS);
    json_decref(doc);
    if (text == NULL)
        abort();
    size_t n = strlen(text);
    char *line = xmalloc(n + 2);
    memcpy(line, text, n);
    line[n] = '\n';
    free(text);
    http_ui_send(req, 200, "OK", "application/json", line, n + 1);
    free(line);
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The DEALER to the query server, connected when first needed. */
static void *s_query_sock(http_ui_t *self)
{
    if (self->query_sock || self->src.query_ctx == NULL)
        return self->query_sock;
    void *s = zmq_socket(self->src.query_ctx, ZMQ_DEALER);
    int linger = 0;
    if (s == NULL)
        return NULL;
    if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) == -1 ||
        zmq_connect(s, QUERY_INPROC) == -1) {
        zmq_close(s);
        return NULL;
    }
    self->query_sock = s;
    return s;
}

Funnel__V1__QueryReply *http_api_ask(http_ui_t *self, Funnel__V1__QueryRequest *req,
                                     const char **why)
{
    char id[40];
    void *s = s_query_sock(self);
    if (s == NULL) {
        *why = "the query server cannot be reached";
        return NULL;
    }
    snprintf(id, sizeof id, "http-%" PRIu64, ++self->query_seq);
    req->request_id = id;
    size_t len = funnel__v1__query_request__get_packed_size(req);
    uint8_t *buf = xmalloc(len ? len : 1);
    funnel__v1__query_request__pack(req, buf);
    int rc = zmq_send(s, buf, len, ZMQ_DONTWAIT);
    free(buf);
    req->request_id = NULL;
    if (rc == -1) {
        *why = "the query server is busy";
        return NULL;
    }
    int64_t deadline = s_mono_ms() + S_QUERY_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - s_mono_ms();
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
        if (left <= 0 || zmq_poll(&it, 1, (long)left) == 0) {
            *why = "the query server did not answer in time";
            return NULL;
        }
        /* The body is the last frame (a ROUTER echoes the envelope). */
        zmq_msg_t m;
        zmq_msg_init(&m);
        int more = 1;
        while (more) {
            zmq_msg_close(&m);
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close(&m);
                if (errno == EINTR || errno == EAGAIN)
                    goto again;
                *why = "the query server's answer was lost";
                return NULL;
            }
            more = zmq_msg_more(&m);
        }
        Funnel__V1__QueryReply *r =
            funnel__v1__query_reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        if (r && r->request_id && strcmp(r->request_id, id) == 0)
            return r;
        /* An answer to a request that timed out before. */
        if (r)
            funnel__v1__query_reply__free_unpacked(r, NULL);
    again:;
    }
}

/* Ask and check the reply's kind; on failure answer req and return NULL. */
static Funnel__V1__QueryReply *s_ask_for(http_ui_t *self, struct evhttp_request *req,
                                         Funnel__V1__QueryRequest *qr,
                                         Funnel__V1__QueryReply__ReplyCase want)
{
    const char *why = NULL;
    Funnel__V1__QueryReply *r = http_api_ask(self, qr, &why);
    if (r == NULL) {
        http_ui_send_error(req, 503, "Service Unavailable", why);
        return NULL;
    }
    if (r->error && r->error[0]) {
        bool storage = strncmp(r->error, "storage error", 13) == 0;
        http_ui_send_error(req, storage ? 503 : 400,
                           storage ? "Service Unavailable" : "Bad Request", r->error);
        funnel__v1__query_reply__free_unpacked(r, NULL);
        return NULL;
    }
    if (r->reply_case != want) {
        http_ui_send_error(req, 500, "Internal Server Error",
                           "the query server answered another query");
        funnel__v1__query_reply__free_unpacked(r, NULL);
        return NULL;
    }
    return r;
}

/* A count parameter in [min, max]; 0 and true when absent. */
static bool s_count_arg(struct evhttp_request *req, struct evkeyvalq *args,
                        const char *key, long min, long max, long *out)
{
    const char *v = evhttp_find_header(args, key);
    char *end;
    char msg[160];
    *out = 0;
    if (v == NULL)
        return true;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || errno || n < min || n > max) {
        snprintf(msg, sizeof msg, "%s: want a whole number from %ld to %ld", key, min, max);
        http_ui_send_error(req, 400, "Bad Request", msg);
        return false;
    }
    *out = n;
    return true;
}

static void s_funnel(http_ui_t *self, struct evhttp_request *req)
{
    static const char *const allowed[] = {"by", "persona", NULL};
    struct evkeyvalq args;
    if (http_ui_query_args(req, allowed, &args) == -1)
        return;
    Funnel__V1__QueryRequest qr = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__FunnelQuery fq = FUNNEL__V1__FUNNEL_QUERY__INIT;
    const char *by = evhttp_find_header(&args, "by");
    const char *persona = evhttp_find_header(&args, "persona");
    fq.by = (char *)(by ? by : "");
    fq.persona = (char *)(persona ? persona : "");
    qr.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_FUNNEL;
    qr.funnel = &fq;
    Funnel__V1__QueryReply *r =
        s_ask_for(self, req, &qr, FUNNEL__V1__QUERY_REPLY__REPLY_FUNNEL);
    if (r) {
        s_send_doc(req, render_funnel_json(r->funnel));
        funnel__v1__query_reply__free_unpacked(r, NULL);
    }
    evhttp_clear_headers(&args);
}

static void s_friction(http_ui_t *self, struct evhttp_request *req)
{
    static const char *const allowed[] = {"by", "leads", "stage", "limit", NULL};
    struct evkeyvalq args;
    long limit;
    if (http_ui_query_args(req, allowed, &args) == -1)
        return;
    const char *by = evhttp_find_header(&args, "by");
    const char *leads = evhttp_find_header(&args, "leads");
    const char *stage = evhttp_find_header(&args, "stage");
    bool with_leads = leads && (strcmp(leads, "1") == 0 || strcmp(leads, "true") == 0);
    if (leads && !with_leads && strcmp(leads, "0") != 0 && strcmp(leads, "false") != 0) {
        http_ui_send_error(req, 400, "Bad Request", "leads: want 1, true, 0 or false");
        goto out;
    }
    if (!s_count_arg(req, &args, "limit", 1, 10000000, &limit))
        goto out;
    /* As funnelctl friction's options combine. */
    if ((stage || limit) && !with_leads) {
        http_ui_send_error(req, 400, "Bad Request", "stage and limit go with leads=1");
        goto out;
    }
    if (with_leads && by) {
        http_ui_send_error(req, 400, "Bad Request", "by does not combine with leads=1");
        goto out;
    }
    Funnel__V1__QueryRequest qr = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__FrictionQuery fq = FUNNEL__V1__FRICTION_QUERY__INIT;
    fq.by = (char *)(by ? by : "");
    fq.stage = (char *)(stage ? stage : "");
    fq.leads = with_leads;
    fq.limit = (uint32_t)limit;
    qr.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_FRICTION;
    qr.friction = &fq;
    Funnel__V1__QueryReply *r =
        s_ask_for(self, req, &qr, FUNNEL__V1__QUERY_REPLY__REPLY_FRICTION);
    if (r) {
        s_send_doc(req, with_leads ? render_friction_leads_json(r->friction)
                                   : render_friction_json(r->friction));
        funnel__v1__query_reply__free_unpacked(r, NULL);
    }
out:
    evhttp_clear_headers(&args);
}

static void s_stats(http_ui_t *self, struct evhttp_request *req)
{
    static const char *const allowed[] = {NULL};
    struct evkeyvalq args;
    if (http_ui_query_args(req, allowed, &args) == -1)
        return;
    Funnel__V1__QueryRequest qr = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__StatsQuery sq = FUNNEL__V1__STATS_QUERY__INIT;
    qr.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_STATS;
    qr.stats = &sq;
    Funnel__V1__QueryReply *r =
        s_ask_for(self, req, &qr, FUNNEL__V1__QUERY_REPLY__REPLY_STATS);
    if (r) {
        s_send_doc(req, render_stats_json(r->stats));
        funnel__v1__query_reply__free_unpacked(r, NULL);
    }
    evhttp_clear_headers(&args);
}

/* /api/lead/ID: ID is the rest of the path, percent-decoded. */
static void s_lead(http_ui_t *self, struct evhttp_request *req, const char *rest)
{
    static const char *const allowed[] = {"limit", NULL};
    struct evkeyvalq args;
    long limit;
    size_t len = 0;
    char *id = NULL;
    if (http_ui_query_args(req, allowed, &args) == -1)
        return;
    if (!s_count_arg(req, &args, "limit", 1, 1000000, &limit))
        goto out;
    id = evhttp_uridecode(rest, 0, &len);
    if (id == NULL || len == 0 || len > S_LEAD_ID_MAX || strlen(id) != len) {
        http_ui_send_error(req, 400, "Bad Request",
                           "want /api/lead/ID with a lead id of 1 to 1024 bytes");
        goto out;
    }
    Funnel__V1__QueryRequest qr = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__LeadQuery lq = FUNNEL__V1__LEAD_QUERY__INIT;
    lq.lead_id = id;
    lq.timeline_limit = (uint32_t)limit;
    qr.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD;
    qr.lead = &lq;
    Funnel__V1__QueryReply *r =
        s_ask_for(self, req, &qr, FUNNEL__V1__QUERY_REPLY__REPLY_LEAD);
    if (r == NULL)
        goto out;
    if (!r->lead->found || r->lead->lead == NULL) {
        char *msg = xasprintf("unknown lead %s", id);
        http_ui_send_error(req, 404, "Not Found", msg);
        free(msg);
    } else {
        s_send_doc(req, render_lead_json(r->lead));
    }
    funnel__v1__query_reply__free_unpacked(r, NULL);
out:
    free(id);
    evhttp_clear_headers(&args);
}

/* -- the definition in use ---------------------------------------------- */

static json_t *s_str(const char *s)
{
    json_t *v = s ? json_string(s) : json_null();
    return v ? v : json_string("?");
}

static void s_set(json_t *o, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(o, key, v) != 0)
        abort();
}

static json_t *s_conds(const defn_cond_t *c, size_t n)
{
    char buf[512];
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, s_str(defn_cond_text(&c[i], buf, sizeof buf)));
    return a;
}

static const char *s_source(int source)
{
    return source == 1 ? "marketing" : source == 2 ? "sales" : NULL;
}

static json_t *s_ms(int64_t ms)
{
    return ms ? json_integer(ms) : json_null();
}

/* The definition as the dashboard shows it: {"name","path","hash",
 * "stages":[{"stage","order","terminal","max_dwell_ms","conversion_target"}],
 * "transitions":[{"type","source","to","when"}],"regressions":[{"type","from",
 * "to"}],"scoring":{"points":[{"type","points"}],"half_life_ms","fit":[{"rule",
 * "points"}]},"qualification":[rule],"handoff":{"sla_ms","accept_type",
 * "reject_type","reason_attr","recycle_stage","recycle_reset"},"personas":[{
 * "persona","when"}],"friction":{"conversion_window_ms","min_sample",
 * "alert_recovery"}}; null where unset. */
static json_t *s_definition_json(const defn_t *d)
{
    json_t *o = json_object(), *a;
    s_set(o, "name", s_str(d->name));
    s_set(o, "path", s_str(d->path));
    s_set(o, "hash", s_str(d->hash));
    a = json_array();
    for (size_t i = 0; i < d->n_stages; i++) {
        const defn_stage_t *st = &d->stages[i];
        json_t *e = json_object();
        s_set(e, "stage", s_str(st->name));
        s_set(e, "order", i < d->n_order ? json_integer((json_int_t)i + 1) : json_null());
        s_set(e, "terminal", json_boolean(st->terminal));
        s_set(e, "max_dwell_ms", s_ms(st->max_dwell_ms));
        s_set(e, "conversion_target",
              st->conversion_target > 0 ? json_real(st->conversion_target) : json_null());
        json_array_append_new(a, e);
    }
    s_set(o, "stages", a);
    a = json_array();
    for (size_t i = 0; i < d->n_transitions; i++) {
        const defn_transition_t *t = &d->transitions[i];
        json_t *e = json_object();
        s_set(e, "type", s_str(t->type));
        s_set(e, "source", s_str(s_source(t->source)));
        s_set(e, "to", s_str(d->stages[t->stage].name));
        s_set(e, "when", t->when ? s_conds(t->when, 1) : json_array());
        json_array_append_new(a, e);
    }
    s_set(o, "transitions", a);
    a = json_array();
    for (size_t i = 0; i < d->n_regressions; i++) {
        const defn_regression_t *r = &d->regressions[i];
        json_t *e = json_object(), *from = json_array();
        s_set(e, "type", s_str(r->type));
        for (size_t k = 0; k < d->n_stages; k++)
            if (r->from_mask & (UINT32_C(1) << k))
                json_array_append_new(from, s_str(d->stages[k].name));
        s_set(e, "from", from);
        s_set(e, "to", s_str(d->stages[r->stage].name));
        json_array_append_new(a, e);
    }
    s_set(o, "regressions", a);
    json_t *scoring = json_object(), *points = json_array(), *fit = json_array();
    for (size_t i = 0; i < d->n_points; i++) {
        json_t *e = json_object();
        s_set(e, "type", s_str(d->points[i].type));
        s_set(e, "points", json_real(d->points[i].points));
        json_array_append_new(points, e);
    }
    for (size_t i = 0; i < d->n_fit; i++) {
        json_t *e = json_object();
        s_set(e, "rule", s_str(d->fit[i].label));
        s_set(e, "points", json_real(d->fit[i].points));
        json_array_append_new(fit, e);
    }
    s_set(scoring, "points", points);
    s_set(scoring, "half_life_ms", s_ms(d->half_life_ms));
    s_set(scoring, "fit", fit);
    s_set(o, "scoring", scoring);
    a = json_array();
    for (size_t i = 0; i < d->n_clauses; i++)
        json_array_append_new(a, s_str(d->clauses[i].label));
    s_set(o, "qualification", a);
    json_t *h = json_object();
    s_set(h, "sla_ms", s_ms(d->handoff_sla_ms));
    s_set(h, "accept_type", s_str(d->accept_type));
    s_set(h, "reject_type", s_str(d->reject_type));
    s_set(h, "reason_attr", s_str(d->reason_attr));
    s_set(h, "recycle_stage",
          d->recycle_stage >= 0 ? s_str(d->stages[d->recycle_stage].name) : json_null());
    s_set(h, "recycle_reset", json_boolean(d->recycle_reset));
    s_set(o, "handoff", h);
    a = json_array();
    for (size_t i = 0; i < d->n_personas; i++) {
        json_t *e = json_object();
        s_set(e, "persona", s_str(d->personas[i].name));
        s_set(e, "when", s_conds(d->personas[i].when, d->personas[i].n_when));
        json_array_append_new(a, e);
    }
    s_set(o, "personas", a);
    json_t *f = json_object();
    s_set(f, "conversion_window_ms", s_ms(d->conversion_window_ms));
    s_set(f, "min_sample", json_integer(d->min_sample));
    s_set(f, "alert_recovery", json_boolean(d->alert_recovery));
    s_set(o, "friction", f);
    return o;
}

static void s_definition(http_ui_t *self, struct evhttp_request *req)
{
    static const char *const allowed[] = {NULL};
    struct evkeyvalq args;
    if (http_ui_query_args(req, allowed, &args) == -1)
        return;
    /* A reload waits for this request, as it does for a query. */
    pthread_rwlock_rdlock(self->q.defn_lock);
    json_t *doc = s_definition_json(*self->q.defn_p);
    pthread_rwlock_unlock(self->q.defn_lock);
    s_send_doc(req, doc);
    evhttp_clear_headers(&args);
}

bool http_api_handle(http_ui_t *self, struct evhttp_request *req, const char *path)
{
    if (strncmp(path, "/api/", 5) != 0 && strcmp(path, "/api") != 0)
        return false;
    if (strcmp(path, "/api/funnel") == 0)
        s_funnel(self, req);
    else if (strcmp(path, "/api/friction") == 0)
        s_friction(self, req);
    else if (strcmp(path, "/api/stats") == 0)
        s_stats(self, req);
    else if (strcmp(path, "/api/definition") == 0)
        s_definition(self, req);
    else if (strncmp(path, "/api/lead/", 10) == 0)
        s_lead(self, req, path + 10);
    else
        http_ui_send_error(req, 404, "Not Found",
                           "no such API: try /api/funnel, /api/friction, /api/lead/ID, "
                           "/api/leads, /api/stats or /api/definition");
    return true;
}

void http_api_close(http_ui_t *self)
{
    if (self->query_sock)
        zmq_close(self->query_sock);
    self->query_sock = NULL;
}
