/* funnel-bench: load generator and raw-ceiling probes for funneld.
 *
 *   funnel-bench load   drive the ingest socket: events over random leads,
 *                       batches in a window, optionally at a fixed rate;
 *                       reports events/s and Ack latency percentiles
 *   funnel-bench query  lead queries while funneld works; latency percentiles
 *   funnel-bench lmdb-append | lmdb-random | zmq
 *                       what the parts can do on this machine, measured the
 *                       way funneld uses them
 *
 * Every mode prints one JSON object on stdout (tools/bench reads them).
 * Durations are wall-clock; run on an otherwise idle machine.
 */
#include <errno.h>
#include <getopt.h>
#include <lmdb.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "funnel.pb-c.h"

typedef struct {
    const char *ingest;
    const char *query;
    const char *dir;
    long events;
    long leads;
    long batch;
    long window;
    double rate;          /* events/s, 0: as fast as acks allow */
    long sync_every;
    long keys;
    long size;
    long count;
    unsigned seed;
    const char *prefix;
    bool seq_ids;         /* event ids P-e0, P-e1, ... instead of random */
    bool seq_leads;       /* event i goes to lead i % leads: every lead exists */
} opts_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_die(const char *what)
{
    fprintf(stderr, "funnel-bench: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* xorshift64*: fast, reproducible. */
static uint64_t s_rng_state = 88172645463325252ULL;
static uint64_t s_rand(void)
{
    s_rng_state ^= s_rng_state >> 12;
    s_rng_state ^= s_rng_state << 25;
    s_rng_state ^= s_rng_state >> 27;
    return s_rng_state * 2685821657736338717ULL;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_pct(double *v, size_t n, double p)
{
    if (n == 0)
        return NAN;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0)
        i--;
    if (i >= n)
        i = n - 1;
    return v[i];
}

static void s_print_latency(const char *name, double *v, size_t n)
{
    qsort(v, n, sizeof *v, s_cmp_double);
    printf("\"%s_ms\": {\"n\": %zu, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
           "\"max\": %.3f}",
           name, n, s_pct(v, n, 50) * 1e3, s_pct(v, n, 90) * 1e3,
           s_pct(v, n, 99) * 1e3, n ? v[n - 1] * 1e3 : NAN);
}

/* -- load -------------------------------------------------------------- */

/* A funnel-shaped mix: many views, few deals (as tools/gen-events). */
static const struct {
    const char *type;
    int source;
    int weight;
} s_mix[] = {
    {"page_view", 1, 30},        {"ad_click", 1, 6},
    {"email_open", 1, 16},       {"email_click", 1, 8},
    {"social_engagement", 1, 4}, {"form_submit", 1, 7},
    {"content_download", 1, 7},  {"webinar_attended", 1, 4},
    {"unsubscribe", 1, 1},       {"demo_request", 2, 4},
    {"meeting_booked", 2, 3},    {"proposal_sent", 2, 2},
    {"trial_started", 2, 2},     {"closed_won", 2, 1},
    {"closed_lost", 2, 1},
};
#define S_NMIX (sizeof s_mix / sizeof s_mix[0])

typedef struct {
    uint8_t *buf;
    size_t len;
    double sent_at;
    bool in_flight;
} s_batch_t;

static size_t s_make_batch(const opts_t *o, long first, long n, uint8_t **out)
{
    Funnel__V1__EventBatch b;
    Funnel__V1__Event *evs = calloc((size_t)n, sizeof *evs);
    Funnel__V1__Event **ptrs = calloc((size_t)n, sizeof *ptrs);
    char (*ids)[48] = calloc((size_t)n, sizeof *ids);
    char (*leads)[48] = calloc((size_t)n, sizeof *leads);
    char batch_id[32];
    int total = 0;

    if (!evs || !ptrs || !ids || !leads)
        s_die("calloc");
    for (size_t i = 0; i < S_NMIX; i++)
        total += s_mix[i].weight;
    int64_t now = s_wall_ms();
    for (long i = 0; i < n; i++) {
        int r = (int)(s_rand() % (uint64_t)total), k = 0;
        while (r >= s_mix[k].weight)
            r -= s_mix[k++].weight;
        funnel__v1__event__init(&evs[i]);
        if (o->seq_ids) {
            snprintf(ids[i], sizeof ids[i], "%s-e%ld", o->prefix, first + i);
        } else {
            /* Like the UUIDs most publishers use: spread over the id space. */
            uint64_t r1 = s_rand(), r2 = s_rand();
            snprintf(ids[i], sizeof ids[i], "%s-%08llx-%04llx-%04llx-%012llx", o->prefix,
                     (unsigned long long)(r1 >> 32), (unsigned long long)(r1 >> 16 & 0xffff),
                     (unsigned long long)(r1 & 0xffff), (unsigned long long)(r2 >> 16));
        }
        snprintf(leads[i], sizeof leads[i], "%s-L%llu", o->prefix,
                 o->seq_leads ? (unsigned long long)((first + i) % o->leads)
                              : (unsigned long long)(s_rand() % (uint64_t)o->leads));
        evs[i].id = ids[i];
        evs[i].lead_id = leads[i];
        evs[i].type = (char *)s_mix[k].type;
        evs[i].source = (Funnel__V1__Source)s_mix[k].source;
        evs[i].occurred_at_ms = now;
        ptrs[i] = &evs[i];
    }
    funnel__v1__event_batch__init(&b);
    snprintf(batch_id, sizeof batch_id, "%ld", first);
    b.batch_id = batch_id;
    b.events = ptrs;
    b.n_events = (size_t)n;
    size_t len = funnel__v1__event_batch__get_packed_size(&b);
    *out = malloc(len);
    if (*out == NULL)
        s_die("malloc");
    funnel__v1__event_batch__pack(&b, *out);
    free(evs);
    free(ptrs);
    free(ids);
    free(leads);
    return len;
}

static int s_load(const opts_t *o)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, hwm = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_connect(s, o->ingest) == -1)
        s_die("connect");

    long n_batches = (o->events + o->batch - 1) / o->batch;
    s_batch_t *batches = calloc((size_t)n_batches, sizeof *batches);
    double *lat = calloc((size_t)n_batches, sizeof *lat);
    size_t n_lat = 0;
    if (!batches || !lat)
        s_die("calloc");

    /* At full speed, batches are prepared up front so that encoding never
     * limits the measurement; at a fixed rate each is encoded when it is
     * sent, so its events carry their send time (alert latency). */
    for (long i = 0; i < n_batches && o->rate <= 0; i++) {
        long first = i * o->batch;
        long n = o->events - first < o->batch ? o->events - first : o->batch;
        batches[i].len = s_make_batch(o, first, n, &batches[i].buf);
    }

    long next = 0, acked = 0, in_flight = 0, accepted = 0, dups = 0, rejected = 0;
    double start = s_now();
    while (acked < n_batches) {
        /* Send while the window and the rate allow. */
        while (next < n_batches && in_flight < o->window) {
            if (o->rate > 0) {
                double due = start + (double)(next * o->batch) / o->rate;
                if (s_now() < due)
                    break;
            }
            if (batches[next].buf == NULL) {
                long first = next * o->batch;
                long n = o->events - first < o->batch ? o->events - first : o->batch;
                batches[next].len = s_make_batch(o, first, n, &batches[next].buf);
            }
            batches[next].sent_at = s_now();
            if (zmq_send(s, batches[next].buf, batches[next].len, 0) == -1)
                s_die("send");
            batches[next].in_flight = true;
            next++;
            in_flight++;
        }
        zmq_pollitem_t pi = {.socket = s, .events = ZMQ_POLLIN};
        long timeout = 1000;
        if (o->rate > 0 && next < n_batches) {
            double due = start + (double)(next * o->batch) / o->rate - s_now();
            timeout = due > 0 ? (long)(due * 1000) : 0;
        }
        int rc = zmq_poll(&pi, 1, timeout);
        if (rc == -1)
            s_die("poll");
        while (rc > 0) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close(&m);
                break;
            }
            Funnel__V1__Ack *ack = funnel__v1__ack__unpack(NULL, zmq_msg_size(&m),
                                                          zmq_msg_data(&m));
            zmq_msg_close(&m);
            if (ack == NULL)
                continue;
            long i = strtol(ack->batch_id, NULL, 10) / o->batch;
            if (i >= 0 && i < n_batches && batches[i].in_flight) {
                batches[i].in_flight = false;
                lat[n_lat++] = s_now() - batches[i].sent_at;
                accepted += ack->accepted;
                dups += ack->duplicates;
                rejected += (long)ack->n_rejections;
                acked++;
                in_flight--;
            }
            funnel__v1__ack__free_unpacked(ack, NULL);
        }
    }
    double secs = s_now() - start;
    printf("{\"mode\": \"load\", \"events\": %ld, \"batch\": %ld, \"window\": %ld, "
           "\"rate\": %.0f, \"seconds\": %.3f, \"events_per_s\": %.1f, "
           "\"accepted\": %ld, \"duplicates\": %ld, \"rejected\": %ld, ",
           o->events, o->batch, o->window, o->rate, secs,
           (double)o->events / secs, accepted, dups, rejected);
    s_print_latency("ack", lat, n_lat);
    printf("}\n");
    for (long i = 0; i < n_batches; i++)
        free(batches[i].buf);
    free(batches);
    free(lat);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}

/* -- query ------------------------------------------------------------- */

static int s_query(const opts_t *o)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, tmo = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (zmq_connect(s, o->query) == -1)
        s_die("connect");
    double *lat = calloc((size_t)o->count, sizeof *lat);
    size_t n = 0;
    long found = 0;
    for (long i = 0; i < o->count; i++) {
        char lead[48];
        snprintf(lead, sizeof lead, "%s-L%llu", o->prefix,
                 (unsigned long long)(s_rand() % (uint64_t)o->leads));
        Funnel__V1__QueryRequest req;
        Funnel__V1__LeadQuery lq;
        funnel__v1__query_request__init(&req);
        funnel__v1__lead_query__init(&lq);
        lq.lead_id = lead;
        lq.timeline_limit = 20;
        req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD;
        req.lead = &lq;
        uint8_t buf[256];
        size_t len = funnel__v1__query_request__pack(&req, buf);
        double t0 = s_now();
        if (zmq_send(s, buf, len, 0) == -1)
            s_die("send");
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) == -1)
            s_die("no query reply within 5 s");
        lat[n++] = s_now() - t0;
        Funnel__V1__QueryReply *r = funnel__v1__query_reply__unpack(
            NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        if (r && r->reply_case == FUNNEL__V1__QUERY_REPLY__REPLY_LEAD && r->lead->found)
            found++;
        if (r)
            funnel__v1__query_reply__free_unpacked(r, NULL);
        zmq_msg_close(&m);
    }
    printf("{\"mode\": \"query\", \"queries\": %ld, \"found\": %ld, ", o->count, found);
    s_print_latency("lead_query", lat, n);
    printf("}\n");
    free(lat);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}

/* -- raw ceilings ------------------------------------------------------ */

static void s_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static MDB_env *s_env(const char *dir, unsigned flags)
{
    MDB_env *env;
    mkdir(dir, 0750);
    if (mdb_env_create(&env) || mdb_env_set_mapsize(env, (size_t)8 << 30) ||
        mdb_env_open(env, dir, flags, 0640)) {
        fprintf(stderr, "funnel-bench: cannot open LMDB in %s\n", dir);
        exit(2);
    }
    return env;
}

/* Sequential appends, one durable commit per sync_every puts: the event
 * log's pattern. */
static int s_lmdb_append(const opts_t *o)
{
    MDB_env *env = s_env(o->dir, 0);
    MDB_txn *txn;
    MDB_dbi dbi;
    unsigned char key[8];
    char *val = malloc((size_t)o->size);
    memset(val, 'x', (size_t)o->size);
    double t0 = s_now();
    for (long i = 0; i < o->count;) {
        mdb_txn_begin(env, NULL, 0, &txn);
        mdb_dbi_open(txn, NULL, 0, &dbi);
        for (long j = 0; j < o->sync_every && i < o->count; j++, i++) {
            s_be64(key, (uint64_t)i + 1);
            MDB_val k = {8, key}, v = {(size_t)o->size, val};
            mdb_put(txn, dbi, &k, &v, MDB_APPEND);
        }
        if (mdb_txn_commit(txn)) {
            fprintf(stderr, "funnel-bench: commit failed\n");
            return 2;
        }
    }
    double secs = s_now() - t0;
    printf("{\"mode\": \"lmdb-append\", \"puts\": %ld, \"sync_every\": %ld, "
           "\"value\": %ld, \"seconds\": %.3f, \"puts_per_s\": %.1f}\n",
           o->count, o->sync_every, o->size, secs, (double)o->count / secs);
    mdb_env_close(env);
    free(val);
    return 0;
}

/* Random upserts over `keys` keys, durable commit per sync_every: the naive
 * lead-state pattern. The keys are loaded first (not timed). */
static int s_lmdb_random(const opts_t *o)
{
    MDB_env *env = s_env(o->dir, 0);
    MDB_txn *txn;
    MDB_dbi dbi;
    char key[32];
    char *val = malloc((size_t)o->size);
    memset(val, 'y', (size_t)o->size);
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    for (long i = 0; i < o->keys; i++) {
        snprintf(key, sizeof key, "lead-%010ld", i);
        MDB_val k = {strlen(key), key}, v = {(size_t)o->size, val};
        mdb_put(txn, dbi, &k, &v, 0);
    }
    mdb_txn_commit(txn);
    double t0 = s_now();
    for (long i = 0; i < o->count;) {
        mdb_txn_begin(env, NULL, 0, &txn);
        for (long j = 0; j < o->sync_every && i < o->count; j++, i++) {
            snprintf(key, sizeof key, "lead-%010llu",
                     (unsigned long long)(s_rand() % (uint64_t)o->keys));
            MDB_val k = {strlen(key), key}, v = {(size_t)o->size, val};
            mdb_put(txn, dbi, &k, &v, 0);
        }
        if (mdb_txn_commit(txn)) {
            fprintf(stderr, "funnel-bench: commit failed\n");
            return 2;
        }
    }
    double secs = s_now() - t0;
    printf("{\"mode\": \"lmdb-random\", \"keys\": %ld, \"puts\": %ld, \"sync_every\": %ld, "
           "\"value\": %ld, \"seconds\": %.3f, \"puts_per_s\": %.1f}\n",
           o->keys, o->count, o->sync_every, o->size, secs, (double)o->count / secs);
    mdb_env_close(env);
    free(val);
    return 0;
}

/* ZeroMQ PUSH -> PULL over loopback TCP, one thread each side via inproc
 * would flatter it; both ends here in one thread, interleaved. */
static int s_zmq(const opts_t *o)
{
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH), *pull = zmq_socket(ctx, ZMQ_PULL);
    int zero = 0, hwm = 100000;
    zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_bind(pull, "tcp://127.0.0.1:*") == -1)
        s_die("bind");
    char ep[128];
    size_t eplen = sizeof ep;
    zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ep, &eplen);
    zmq_connect(push, ep);
    char *msg = calloc(1, (size_t)o->size);
    long sent = 0, got = 0;
    double t0 = s_now();
    char buf[4096];
    while (got < o->count) {
        while (sent < o->count && zmq_send(push, msg, (size_t)o->size, ZMQ_DONTWAIT) != -1)
            sent++;
        while (zmq_recv(pull, buf, sizeof buf, sent < o->count ? ZMQ_DONTWAIT : 0) != -1) {
            if (++got == o->count)
                break;
        }
    }
    double secs = s_now() - t0;
    printf("{\"mode\": \"zmq\", \"messages\": %ld, \"size\": %ld, \"seconds\": %.3f, "
           "\"msgs_per_s\": %.1f}\n",
           o->count, o->size, secs, (double)o->count / secs);
    free(msg);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    return 0;
}

static void s_usage(void)
{
    printf("usage: funnel-bench MODE [options]\n\n"
           "  load         --ingest EP --events N --leads N --batch N --window N\n"
           "               [--rate EVENTS_PER_S] [--seed N] [--prefix P] [--ids random|seq]\n"
           "               [--lead-order random|seq]\n"
           "               (event ids: random, like UUIDs, by default; seq: P-e0, P-e1, ...;\n"
           "               lead order seq: event i to lead i %% N, so all N leads exist)\n"
           "  query        --query EP --leads N --count N [--prefix P]\n"
           "  lmdb-append  --dir D --count N --sync-every N --size BYTES\n"
           "  lmdb-random  --dir D --keys N --count N --sync-every N --size BYTES\n"
           "  zmq          --count N --size BYTES\n");
}

int main(int argc, char **argv)
{
    opts_t o = {.ingest = "tcp://127.0.0.1:7701", .query = "tcp://127.0.0.1:7703",
                .dir = "/tmp/funnel-bench", .events = 100000, .leads = 1000000,
                .batch = 1000, .window = 8, .sync_every = 1000, .keys = 1000000,
                .size = 200, .count = 100000, .seed = 1, .prefix = "bench"};
    static const struct option lo[] = {
        {"ingest", 1, 0, 'i'}, {"query", 1, 0, 'q'},   {"dir", 1, 0, 'd'},
        {"events", 1, 0, 'e'}, {"leads", 1, 0, 'l'},   {"batch", 1, 0, 'b'},
        {"window", 1, 0, 'w'}, {"rate", 1, 0, 'r'},    {"sync-every", 1, 0, 's'},
        {"keys", 1, 0, 'k'},   {"size", 1, 0, 'z'},    {"count", 1, 0, 'c'},
        {"seed", 1, 0, 'S'},   {"prefix", 1, 0, 'p'},  {"help", 0, 0, 'h'},
        {"ids", 1, 0, 'I'},    {"lead-order", 1, 0, 'O'},
        {0, 0, 0, 0},
    };
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        s_usage();
        return argc < 2 ? 2 : 0;
    }
    const char *mode = argv[1];
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'i': o.ingest = optarg; break;
        case 'q': o.query = optarg; break;
        case 'd': o.dir = optarg; break;
        case 'e': o.events = atol(optarg); break;
        case 'l': o.leads = atol(optarg); break;
        case 'b': o.batch = atol(optarg); break;
        case 'w': o.window = atol(optarg); break;
        case 'r': o.rate = atof(optarg); break;
        case 's': o.sync_every = atol(optarg); break;
        case 'k': o.keys = atol(optarg); break;
        case 'z': o.size = atol(optarg); break;
        case 'c': o.count = atol(optarg); break;
        case 'S': o.seed = (unsigned)atol(optarg); break;
        case 'p': o.prefix = optarg; break;
        case 'I':
            if (strcmp(optarg, "random") != 0 && strcmp(optarg, "seq") != 0) {
                fprintf(stderr, "funnel-bench: --ids is random or seq, not %s\n", optarg);
                return 2;
            }
            o.seq_ids = strcmp(optarg, "seq") == 0;
            break;
        case 'O':
            if (strcmp(optarg, "random") != 0 && strcmp(optarg, "seq") != 0) {
                fprintf(stderr, "funnel-bench: --lead-order is random or seq, not %s\n",
                        optarg);
                return 2;
            }
            o.seq_leads = strcmp(optarg, "seq") == 0;
            break;
        case 'h': s_usage(); return 0;
        default: s_usage(); return 2;
        }
    }
    if (o.events < 1 || o.leads < 1 || o.batch < 1 || o.window < 1 ||
        o.sync_every < 1 || o.keys < 1 || o.size < 1 || o.count < 1) {
        fprintf(stderr, "funnel-bench: counts and sizes must be >= 1\n");
        return 2;
    }
    s_rng_state ^= (uint64_t)o.seed * 0x9E3779B97F4A7C15ULL;
    if (strcmp(mode, "load") == 0)
        return s_load(&o);
    if (strcmp(mode, "query") == 0)
        return s_query(&o);
    if (strcmp(mode, "lmdb-append") == 0)
        return s_lmdb_append(&o);
    if (strcmp(mode, "lmdb-random") == 0)
        return s_lmdb_random(&o);
    if (strcmp(mode, "zmq") == 0)
        return s_zmq(&o);
    fprintf(stderr, "funnel-bench: unknown mode %s\n", mode);
    s_usage();
    return 2;
}
