/* query.c: see query.h. Each query: decode, read snapshot, report
 * (handlers/report.c), encode (query_encode.c), reply. */
#include "query.h"
#include "query_int.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "funnel.pb-c.h"
#include "query_leads.h"
#include "query_checkpoint.h"
#include "ingest.h"
#include "keys.h"
#include "nats.h"
#include "nats_query.h"
#include "query_encode.h"
#include "report.h"
#include "log.h"
#include "metrics.h"
#include "query_alerts.h"
#include "xalloc.h"

void query_reply(bus_sock_t *sock, bus_msg_t *msg, const Funnel__V1__QueryReply *r)
{
    size_t len = funnel__v1__query_reply__get_packed_size(r);
    uint8_t *buf = xmalloc(len);
    funnel__v1__query_reply__pack(r, buf);

    if (bus_reply(sock, msg->part, msg->n - 1, buf, len) == -1)
        log_debug("[query] reply not sent (client gone?)");
    free(buf);
}

/* -- reports: the store's read snapshot as a report_reader_t ----------- */

static int64_t s_read_counter(const char *key, void *arg)
{
    return store_read_counter(arg, key);
}

static long s_read_counters(void *arg, const char *prefix, report_counter_fn *fn,
                            void *fn_arg)
{
    return store_read_counters(arg, prefix, fn, fn_arg);
}

static long s_read_marks(void *arg, const char *prefix, report_mark_fn *fn,
                         void *fn_arg)
{
    return store_read_marks(arg, prefix, fn, fn_arg);
}

void query_reader(query_t *q, report_reader_t *rd)
{
    rd->counter = s_read_counter;
    rd->counters = s_read_counters;
    rd->marks = s_read_marks;
    rd->arg = q->store;
}

static void s_funnel(query_t *q, const Funnel__V1__FunnelQuery *fq,
                     bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    report_reader_t rd;
    report_funnel_t *rep = NULL;
    arena_t *a = arena_new(0);
    const char *err = NULL;

    query_reader(q, &rd);
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        goto send;
    }
    int rc = report_funnel(*q->defn_p, &rd, fq ? fq->by : NULL,
                           fq ? fq->persona : NULL, &rep, &err);
    store_read_end(q->store);
    if (rc < 0) {
        r->error = (char *)err;
        goto send;
    }
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_FUNNEL;
    r->funnel = query_encode_funnel(rep, a);
send:
    query_reply(sock, msg, r);
    r->funnel = NULL; /* it pointed into the arena */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    arena_destroy(&a);
    report_funnel_free(&rep);
}

static void s_stats(query_t *q, bus_sock_t *sock, bus_msg_t *msg,
                    Funnel__V1__QueryReply *r)
{
    const defn_t *d = *q->defn_p;
    store_stats_t stats, *st = &stats;
    uint64_t last_seq;
    Funnel__V1__Stats s;
    char defn[160];
    query_ckpt_buf_t ckpt;
    nats_stats_buf_t cluster;

    store_stats_read(q->store, &stats, &last_seq);
    funnel__v1__stats__init(&s);
    s.received = st->received;
    s.applied = st->applied;
    s.duplicates = st->duplicates;
    s.rejected = st->rejected;
    s.commits = st->commits;
    s.alerts = st->alerts;
    s.gaps = st->gaps;
    s.stream_messages = st->stream_messages;
    s.deadlines = st->deadlines;
    s.auth_refused = auth_refused(q->auth);
    s.uptime_ms = (uint64_t)(ingest_wall_ms() - q->started_ms);
    s.last_seq = last_seq;
    uint64_t alerts_floor;
    store_alerts_published(q->store, &s.alert_seq, &alerts_floor);
    s.alerts_first_seq = s.alert_seq > alerts_floor ? alerts_floor + 1 : 0;
    s.alert_queries = metrics_alert_queries(q->metrics);
    if (store_read_begin(q->store) == STORE_OK) {
        int64_t leads = store_read_counter(q->store, keys_name(KEYS_LEADS));
        s.leads = leads > 0 ? (uint64_t)leads : 0;
        int64_t rec = store_read_counter(q->store, keys_name(KEYS_HANDOFFS_RECYCLED));
        int64_t req = store_read_counter(q->store, keys_name(KEYS_HANDOFFS_REQUALIFIED));
        s.handoffs_recycled = rec > 0 ? (uint64_t)rec : 0;
        s.handoffs_requalified = req > 0 ? (uint64_t)req : 0;
        store_read_end(q->store);
    }
    snprintf(defn, sizeof defn, "%s (%s, %s)", d->name,
             strcmp(d->path, "(built-in)") == 0 ? "built-in" : d->path, d->hash);
    s.definition = defn;
    query_checkpoint_stats(q, &s, &ckpt);
    s.partitions = q->partitions;
    uint64_t applied[STORE_PARTS_MAX];
    s.n_partition_applied_seq = store_parts(q->store);
    for (unsigned i = 0; i < store_parts(q->store); i++)
        applied[i] = store_applied_published(store_part(q->store, i));
    s.partition_applied_seq = applied;
    nats_stats(q->nats, &s, &cluster);
    query_lab_stats(q, &s);
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_STATS;
    r->stats = &s;
    query_reply(sock, msg, r);
    r->stats = NULL; /* it pointed into this frame */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
}

static void s_friction(query_t *q, const Funnel__V1__FrictionQuery *fq,
                       bus_sock_t *sock, bus_msg_t *msg,
                       Funnel__V1__QueryReply *r)
{
    report_reader_t rd;
    report_friction_t *rep = NULL;
    arena_t *a = arena_new(0);
    report_friction_query_t rq = {0};
    const char *err = NULL;

    if (fq) {
        rq.by = fq->by;
        rq.stage = fq->stage;
        rq.leads = fq->leads;
        rq.limit = fq->limit;
    }
    query_reader(q, &rd);
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        goto send;
    }
    int rc = report_friction(*q->defn_p, &rd, &rq, &rep, &err);
    store_read_end(q->store);
    if (rc < 0) {
        r->error = (char *)err;
        goto send;
    }
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_FRICTION;
    r->friction = query_encode_friction(rep, a);
send:
    query_reply(sock, msg, r);
    r->friction = NULL; /* it pointed into the arena */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    arena_destroy(&a);
    report_friction_free(&rep);
}

/* The definition a query names (LeadQuery etc.: definition), or NULL. */
static const char *s_definition_name(const Funnel__V1__QueryRequest *req)
{
    switch (req->query_case) {
    case FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD:
        return req->lead ? req->lead->definition : NULL;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FUNNEL:
        return req->funnel ? req->funnel->definition : NULL;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FRICTION:
        return req->friction ? req->friction->definition : NULL;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_QUALITY:
        return req->quality ? req->quality->definition : NULL;
    default:
        return NULL;
    }
}

/* Answer req (NULL: it did not decode), which it frees or hands on. */
static void s_request(query_t *q, query_leads_worker_t *leads, query_leads_worker_t *lab,
                      bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryRequest *req)
{
    Funnel__V1__QueryReply r;

    funnel__v1__query_reply__init(&r);
    if (req == NULL) {
        r.error = (char *)"undecodable QueryRequest";
        query_reply(sock, msg, &r);
        return;
    }
    r.request_id = req->request_id;
    /* --definition NAME: a shadow draft's state and definition. */
    const char *dname = s_definition_name(req);
    query_t sub;
    const defn_t *sub_defn;
    char derr[512];
    if (query_definition(q, dname, &sub, &sub_defn, derr, sizeof derr) != 0) {
        r.error = derr;
        query_reply(sock, msg, &r);
        funnel__v1__query_request__free_unpacked(req, NULL);
        return;
    }
    if (dname && dname[0] && req->query_case == FUNNEL__V1__QUERY_REQUEST__QUERY_QUALITY &&
        req->quality->draft[0]) {
        r.error = (char *)"quality takes a definition or a draft, not both";
        query_reply(sock, msg, &r);
        funnel__v1__query_request__free_unpacked(req, NULL);
        return;
    }
    switch (req->query_case) {
    case FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD:
        query_lead(&sub, req->lead, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FUNNEL:
        s_funnel(&sub, req->funnel, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_SHADOW:
        query_shadow(q, req->shadow, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_PROMOTE:
        query_promote(q, req->promote, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_STATS:
        s_stats(q, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FRICTION:
        s_friction(&sub, req->friction, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_QUALITY:
        if (req->quality && req->quality->draft[0]) {
            /* A draft is replayed from the log by the lab thread. */
            if (query_leads_submit(lab, sock, msg, &req) == -1) {
                r.error = (char *)"busy: too many definition lab queries waiting; "
                                  "ask again later";
                query_reply(sock, msg, &r);
            }
            break;
        }
        query_quality(&sub, req->quality, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_BACKTEST: {
        char id[80];
        if (query_lab_register(q->lab_runs, req->backtest, derr, sizeof derr) == -1) {
            r.error = derr;
            query_reply(sock, msg, &r);
            break;
        }
        snprintf(id, sizeof id, "%s", req->backtest->id);
        if (query_leads_submit(lab, sock, msg, &req) == -1) {
            query_lab_unregister(q->lab_runs, id);
            r.error = (char *)"busy: too many definition lab queries waiting; "
                              "ask again later";
            query_reply(sock, msg, &r);
        }
        break;
    }
    case FUNNEL__V1__QUERY_REQUEST__QUERY_BACKTEST_STATUS:
        query_lab_status(q, req->backtest_status, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_BACKTEST_CANCEL:
        query_lab_cancel(q, req->backtest_cancel, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_LEADS:
        /* Answered by the listing thread (query_leads.h), which takes req. */
        if (query_leads_submit(leads, sock, msg, &req) == -1) {
            r.error = (char *)"busy: too many leads listings waiting; ask again later";
            query_reply(sock, msg, &r);
        }
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_ALERTS_SINCE:
        query_alerts_since(q->store, req->request_id, req->alerts_since, sock, msg);
        metrics_alert_query(q->metrics);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_COUNTERS:
        nats_query_counters(q, req->counters, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_CHECKPOINT: {
        query_ckpt_buf_t ckpt;
        query_checkpoint(q, req->checkpoint, &r, &ckpt);
        query_reply(sock, msg, &r);
        break;
    }
    default:
        r.error = (char *)"QueryRequest names no query (lead, funnel, stats, friction, "
                          "leads, alerts_since, quality, backtest, backtest_status, "
                          "backtest_cancel or shadow)";
        query_reply(sock, msg, &r);
        break;
    }
    /* The reply's oneof pointed into the handler's stack frame. */
    r.reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    r.lead = NULL;
    funnel__v1__query_request__free_unpacked(req, NULL);
}

/* -- the query thread ---------------------------------------------------- */

struct query_server {
    query_t q;
    struct event_base *base;
    bus_t *bus;
    struct event *ev_stop;
    int stop_fd[2];        /* a byte written to [1] stops the loop */
    pthread_t thread;
    bool started;
    query_leads_worker_t *leads;   /* the listing thread */
    query_leads_worker_t *lab;     /* the definition lab's thread */
};

void query_sync(const query_t *q)
{
    uint64_t want = store_committed_seq(q->store);
    if (store_wait_parts_applied(q->store, want, QUERY_APPLIED_WAIT_MS) != 1)
        log_warn("[query] the state has not applied the log up to %llu (it cannot "
                 "commit, or took longer than %d ms); answering from the state as it is",
                 (unsigned long long)want, QUERY_APPLIED_WAIT_MS);
}

void query_sync_lead(const query_t *q, const char *lead_id)
{
    if (store_wait_lead_applied(q->store, lead_id, QUERY_APPLIED_WAIT_MS) != 1)
        log_warn("[query] the state has not applied lead %s's events logged so far (it "
                 "cannot commit, or took longer than %d ms); answering from the state as it is",
                 lead_id, QUERY_APPLIED_WAIT_MS);
}

/* bus_recv_fn for the query ROUTER; arg is the query_server_t. */
static void s_on_request(bus_sock_t *sock, bus_msg_t *msg, void *arg)
{
    query_server_t *self = arg;
    if (msg->n < 2 || msg->truncated)
        return;
    zmq_msg_t *payload = &msg->part[msg->n - 1];
    Funnel__V1__QueryRequest *req = funnel__v1__query_request__unpack(
        NULL, zmq_msg_size(payload), zmq_msg_data(payload));
    /* Read-your-writes, before defn_lock: a query of one lead of the live
     * state reads its lead's events not applied yet from the log
     * (query_lead.c), any other waits for the log to be applied. */
    const char *dname = req ? s_definition_name(req) : NULL;
    if (!(req && req->query_case == FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD &&
          (dname == NULL || dname[0] == '\0') && req->lead->lead_id && req->lead->lead_id[0]))
        query_sync(&self->q);
    /* A reload waits for this query to be answered. */
    pthread_rwlock_rdlock(self->q.defn_lock);
    s_request(&self->q, self->leads, self->lab, sock, msg, req);
    pthread_rwlock_unlock(self->q.defn_lock);
}

static void s_on_stop(evutil_socket_t fd, short what, void *arg)
{
    query_server_t *self = arg;
    char c;
    (void)!read(fd, &c, 1);
    event_base_loopbreak(self->base);
}

query_server_t *query_server_new(const query_t *q, const char *endpoint,
                                 const bus_opts_t *opts, int budget, char *err,
                                 size_t errlen)
{
    query_server_t *self = xcalloc(1, sizeof *self);
    self->q = *q;
    self->q.lab_runs = query_lab_runs_new();
    self->stop_fd[0] = self->stop_fd[1] = -1;
    if (pipe2(self->stop_fd, O_CLOEXEC | O_NONBLOCK) == -1) {
        snprintf(err, errlen, "query thread: pipe: %s", strerror(errno));
        goto fail;
    }
    self->base = event_base_new();
    if (self->base == NULL) {
        snprintf(err, errlen, "query thread: cannot create an event loop");
        goto fail;
    }
    self->ev_stop = event_new(self->base, self->stop_fd[0], EV_READ | EV_PERSIST,
                              s_on_stop, self);
    if (self->ev_stop == NULL || event_add(self->ev_stop, NULL) == -1) {
        snprintf(err, errlen, "query thread: cannot watch its stop pipe");
        goto fail;
    }
    self->bus = bus_new(self->base, err, errlen);
    if (self->bus == NULL)
        goto fail;
    if (q->auth && auth_attach(q->auth, bus_context(self->bus), err, errlen) == -1)
        goto fail;
    bus_sock_t *sock = bus_socket(self->bus, ZMQ_ROUTER, endpoint, true, opts, err, errlen);
    if (sock == NULL) {
        if (q->auth) /* or terminating the context would wait for it */
            auth_detach(q->auth, bus_context(self->bus));
        goto fail;
    }
    if (bus_bind(sock, QUERY_INPROC, err, errlen) == -1) {
        if (q->auth)
            auth_detach(q->auth, bus_context(self->bus));
        goto fail;
    }
    self->leads = query_leads_worker_new(&self->q, self->base, err, errlen);
    if (self->leads == NULL)
        goto fail;
    self->lab = query_worker_new(&self->q, self->base, query_lab, "lab", err, errlen);
    if (self->lab == NULL)
        goto fail;
    /* Created here, used only by the query thread from its start on. */
    bus_on_recv(sock, s_on_request, self, budget);
    return self;
fail:
    query_server_destroy(&self);
    return NULL;
}

static void *s_thread(void *arg)
{
    query_server_t *self = arg;
    if (event_base_dispatch(self->base) == -1)
        log_err("[query] event loop failed; queries are no longer answered");
    return NULL;
}

void *query_server_context(query_server_t *self)
{
    return bus_context(self->bus);
}

void query_set_replayed(query_server_t *self, uint64_t replayed)
{
    self->q.replayed_at_start = replayed;
}

void query_set_partitions(query_server_t *self, unsigned partitions)
{
    self->q.partitions = partitions;
}

int query_server_start(query_server_t *self)
{
    if (query_leads_worker_start(self->leads) == -1 ||
        query_leads_worker_start(self->lab) == -1)
        return -1;
    int rc = pthread_create(&self->thread, NULL, s_thread, self);
    if (rc != 0) {
        log_err("[query] cannot start the query thread: %s", strerror(rc));
        return -1;
    }
    self->started = true;
    return 0;
}

void query_server_destroy(query_server_t **self_p)
{
    query_server_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->started) {
        (void)!write(self->stop_fd[1], "x", 1);
        pthread_join(self->thread, NULL);
    }
    /* After the query thread (which sends its answers), before the bus
     * (the sockets its answers name). */
    query_leads_worker_destroy(&self->leads);
    query_leads_worker_destroy(&self->lab);
    query_lab_runs_destroy(&self->q.lab_runs);
    bus_destroy(&self->bus);
    if (self->ev_stop)
        event_free(self->ev_stop);
    if (self->base)
        event_base_free(self->base);
    for (int i = 0; i < 2; i++)
        if (self->stop_fd[i] != -1)
            close(self->stop_fd[i]);
    free(self);
    *self_p = NULL;
}
