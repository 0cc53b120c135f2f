/* nats_query.c: see nats_query.h. */
#include "nats_query.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "arena.h"
#include "fnv.h"
#include "log.h"
#include "nats.h"
#include "query_int.h"
#include "xalloc.h"

/* The definition file funneld loads at most (defn.c refuses more too). */
#define S_DEFN_MAX (4u * 1024 * 1024)

struct nats_query {
    natsConnection *nc;
    void *zmq_ctx;
    nats_query_owns_fn *owns;
    void *owns_arg;
    pthread_t thread;
    atomic_bool stopping;
    void *sock;              /* DEALER to the query server (responder thread) */
    natsSubscription *sub;   /* responder thread */
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -- the responder (its own thread) ---------------------------------------- */

static void s_close_sock(nats_query_t *self)
{
    if (self->sock)
        zmq_close(self->sock);
    self->sock = NULL;
}

static int s_open_sock(nats_query_t *self)
{
    if (self->sock)
        return 0;
    void *s = zmq_socket(self->zmq_ctx, ZMQ_DEALER);
    int linger = 0;
    if (s == NULL)
        return -1;
    if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) == -1 ||
        zmq_connect(s, QUERY_INPROC) == -1) {
        zmq_close(s);
        return -1;
    }
    self->sock = s;
    return 0;
}

/* Respond to m with a QueryReply carrying only error. */
static void s_respond_error(nats_query_t *self, natsMsg *m, const char *error)
{
    Funnel__V1__QueryReply r;
    funnel__v1__query_reply__init(&r);
    r.error = (char *)error;
    size_t len = funnel__v1__query_reply__get_packed_size(&r);
    uint8_t *buf = xmalloc(len ? len : 1);
    funnel__v1__query_reply__pack(&r, buf);
    natsConnection_Publish(self->nc, natsMsg_GetReply(m), buf, (int)len);
    free(buf);
}

/* The query server's answer to the request data[0..len), within
 * NATS_QUERY_WAIT_MS (the last frame: the ROUTER echoes the envelope).
 * Returns 0 with *out (zmq_msg_close it), or -1 with the reason. */
static int s_ask(nats_query_t *self, const void *data, size_t len, zmq_msg_t *out,
                 const char **why)
{
    if (s_open_sock(self) != 0) {
        *why = "the query server cannot be reached";
        return -1;
    }
    if (zmq_send(self->sock, data, len, ZMQ_DONTWAIT) == -1) {
        *why = "the query server is busy";
        return -1;
    }
    int64_t deadline = s_mono_ms() + NATS_QUERY_WAIT_MS;
    for (;;) {
        int64_t left = deadline - s_mono_ms();
        zmq_pollitem_t it = {.socket = self->sock, .events = ZMQ_POLLIN};
        if (atomic_load(&self->stopping) || left <= 0) {
            /* A late answer must not be taken for the next one's. */
            s_close_sock(self);
            *why = "the query server did not answer in time";
            return -1;
        }
        if (zmq_poll(&it, 1, (long)(left < 500 ? left : 500)) <= 0)
            continue;
        int more = 1;
        zmq_msg_init(out);
        while (more) {
            zmq_msg_close(out);
            zmq_msg_init(out);
            if (zmq_msg_recv(out, self->sock, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close(out);
                if (errno == EAGAIN || errno == EINTR)
                    break;
                s_close_sock(self);
                *why = "the query server's answer was lost";
                return -1;
            }
            more = zmq_msg_more(out);
        }
        if (!more)
            return 0;
    }
}

/* One request from NATS: answered when it is this instance's to answer. */
static void s_serve(nats_query_t *self, natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m);
    const char *reply = natsMsg_GetReply(m);
    if (reply == NULL || reply[0] == '\0')
        return; /* nobody waits for an answer */
    const char *tok = subject + strlen(NATS_SUBJECT_QUERY);
    if (strcmp(subject, NATS_SUBJECT_QUERY_ALL) != 0) {
        char *end = NULL;
        errno = 0;
        unsigned long p = strtoul(tok, &end, 10);
        if (errno || end == tok || *end != '\0' || p > UINT32_MAX ||
            !self->owns(self->owns_arg, (unsigned)p))
            return; /* another instance's partition (or nobody's) */
    }
    zmq_msg_t ans;
    const char *why = NULL;
    if (s_ask(self, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &ans, &why) != 0) {
        log_warn("[nats] query on %s not answered: %s", subject, why);
        s_respond_error(self, m, why);
        return;
    }
    size_t len = zmq_msg_size(&ans);
    int64_t max = natsConnection_GetMaxPayload(self->nc);
    natsStatus s = NATS_OK;
    if (max > 0 && (int64_t)len > max) {
        char e[200];
        snprintf(e, sizeof e, "the answer (%zu bytes) exceeds the NATS server's max_payload "
                 "(%lld bytes); raise max_payload in the server's configuration", len,
                 (long long)max);
        log_warn("[nats] query on %s: %s", subject, e);
        s_respond_error(self, m, e);
    } else {
        s = natsConnection_Publish(self->nc, reply, zmq_msg_data(&ans), (int)len);
    }
    if (s != NATS_OK)
        log_debug("[nats] answer on %s not sent: %s", subject, natsStatus_GetText(s));
    zmq_msg_close(&ans);
}

static void *s_main(void *arg)
{
    nats_query_t *self = arg;
    bool failing = false;
    while (!atomic_load(&self->stopping)) {
        if (self->sub == NULL) {
            natsStatus s = natsConnection_SubscribeSync(&self->sub, self->nc,
                                                        NATS_SUBJECT_QUERY ">");
            if (s != NATS_OK) {
                self->sub = NULL;
                if (!failing)
                    log_warn("[nats] cannot subscribe to %s>: %s; retrying",
                             NATS_SUBJECT_QUERY, natsStatus_GetText(s));
                failing = true;
                struct timespec ts = {0, 500 * 1000000L};
                nanosleep(&ts, NULL);
                continue;
            }
            natsSubscription_SetPendingLimits(self->sub, 4096, 64 * 1024 * 1024);
            log_info("[nats] answering queries on %s<partition> (the partitions owned) "
                     "and %s", NATS_SUBJECT_QUERY, NATS_SUBJECT_QUERY_ALL);
            failing = false;
        }
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, self->sub, 500);
        if (s == NATS_TIMEOUT)
            continue;
        if (s == NATS_SLOW_CONSUMER) {
            log_warn("[nats] queries came faster than answered: some were dropped");
            continue;
        }
        if (s != NATS_OK) {
            if (s == NATS_INVALID_SUBSCRIPTION || s == NATS_CONNECTION_CLOSED) {
                natsSubscription_Destroy(self->sub);
                self->sub = NULL;
            }
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        s_serve(self, m);
        natsMsg_Destroy(m);
    }
    s_close_sock(self);
    return NULL;
}

nats_query_t *nats_query_new(natsConnection *nc, void *zmq_ctx, nats_query_owns_fn *owns,
                             void *arg)
{
    nats_query_t *self = xcalloc(1, sizeof *self);
    self->nc = nc;
    self->zmq_ctx = zmq_ctx;
    self->owns = owns;
    self->owns_arg = arg;
    atomic_init(&self->stopping, false);
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

void nats_query_destroy(nats_query_t **self_p)
{
    nats_query_t *self = *self_p;
    if (self == NULL)
        return;
    atomic_store(&self->stopping, true);
    pthread_join(self->thread, NULL);
    if (self->sub) {
        natsSubscription_Unsubscribe(self->sub);
        natsSubscription_Destroy(self->sub);
    }
    free(self);
    *self_p = NULL;
}

/* -- CountersQuery (the query thread) -------------------------------------- */

typedef struct {
    arena_t *a;
    Funnel__V1__Counter **v;
    size_t n, cap;
    Funnel__V1__Mark **mv;
    size_t mn, mcap;
} s_dump_t;

static void s_on_counter(const char *key, int64_t value, void *arg)
{
    s_dump_t *d = arg;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 256;
        d->v = xrealloc(d->v, d->cap * sizeof *d->v);
    }
    Funnel__V1__Counter *c = arena_calloc(d->a, 1, sizeof *c);
    funnel__v1__counter__init(c);
    c->key = arena_strdup(d->a, key);
    c->value = value;
    d->v[d->n++] = c;
}

static void s_on_mark(const char *set, const char *lead_id, int64_t since_ms, void *arg)
{
    s_dump_t *d = arg;
    if (d->mn == d->mcap) {
        d->mcap = d->mcap ? 2 * d->mcap : 64;
        d->mv = xrealloc(d->mv, d->mcap * sizeof *d->mv);
    }
    Funnel__V1__Mark *m = arena_calloc(d->a, 1, sizeof *m);
    funnel__v1__mark__init(m);
    m->set = arena_strdup(d->a, set);
    m->lead_id = arena_strdup(d->a, lead_id);
    m->since_ms = since_ms;
    d->mv[d->mn++] = m;
}

/* The definition file's text, which must be what d was loaded from (its
 * hash); "" for the built-in one. Returns the text (caller frees) or NULL
 * with err. */
static char *s_defn_text(const defn_t *d, char *err, size_t errlen)
{
    if (strcmp(d->path, "(built-in)") == 0)
        return xstrdup("");
    FILE *f = fopen(d->path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read the definition file %s: %s", d->path,
                 strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(S_DEFN_MAX + 1);
    size_t len = fread(buf, 1, S_DEFN_MAX + 1, f);
    fclose(f);
    char hash[17];
    snprintf(hash, sizeof hash, "%016" PRIx64, fnv1a64(buf, len));
    if (len > S_DEFN_MAX || strcmp(hash, d->hash) != 0) {
        snprintf(err, errlen, "the definition file %s changed since funneld loaded it "
                 "(reload funneld: SIGHUP)", d->path);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

void nats_query_counters(query_t *q, const Funnel__V1__CountersQuery *cq, bus_sock_t *sock,
                         bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    const defn_t *d = *q->defn_p;
    Funnel__V1__CountersReply cr;
    s_dump_t dump = {.a = arena_new(0)};
    char err[512];
    uint32_t owned[NATS_CFG_PARTITIONS_MAX];
    char *yaml = s_defn_text(d, err, sizeof err);

    funnel__v1__counters_reply__init(&cr);
    if (yaml == NULL) {
        r->error = err;
        goto send;
    }
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        goto send;
    }
    long rc = store_read_counters(q->store, "", s_on_counter, &dump);
    if (rc >= 0 && cq && cq->marks)
        rc = store_read_marks(q->store, "", s_on_mark, &dump);
    cr.now_ms = query_now_ms(q);
    store_read_end(q->store);
    if (rc < 0) {
        r->error = (char *)"storage error";
        goto send;
    }
    cr.instance = (char *)nats_instance(q->nats);
    cr.cluster_partitions = nats_owned(q->nats, owned, NATS_CFG_PARTITIONS_MAX,
                                       &cr.n_owned_partitions);
    cr.owned_partitions = owned;
    cr.definition_name = d->name;
    cr.definition_hash = (char *)d->hash;
    cr.definition_yaml = yaml;
    cr.n_counters = dump.n;
    cr.counters = dump.v;
    cr.n_marks = dump.mn;
    cr.marks = dump.mv;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_COUNTERS;
    r->counters = &cr;
send:
    query_reply(sock, msg, r);
    r->counters = NULL; /* it pointed into this frame */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    free(yaml);
    free(dump.v);
    free(dump.mv);
    arena_destroy(&dump.a);
}
