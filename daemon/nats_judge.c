/* nats_judge.c: see nats_judge.h. */
#include "nats_judge.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "defn.h"
#include "funnel.pb-c.h"
#include "hnd.h"
#include "keys.h"
#include "log.h"
#include "merge.h"
#include "nats_cfg.h"
#include "nats_query.h"
#include "pipeline.h"
#include "xalloc.h"

#define S_MAX_ANSWERS 256
/* Without conversion targets, one round in this many asks again. */
#define S_IDLE_ROUNDS 30

struct nats_judge {
    natsConnection *nc;
    jsCtx *js;
    nats_judge_opts_t o;
    char *stream;
    char *instance;
    kvStore *owners;        /* the lease bucket (leased) */
    kvStore *verdicts;      /* <stream>-conversion */
    defn_t *defn;           /* the cluster's, by its hash */
    char defn_hash[17];
    bool warned;            /* a round that cannot judge was logged */
    unsigned idle;          /* rounds skipped: no stage has a target */
    atomic_uint_fast64_t rounds;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Once per run of rounds that cannot judge. */
static void s_warn(nats_judge_t *self, const char *why)
{
    if (!self->warned)
        log_warn("[nats] the cluster's conversion check waits: %s", why);
    else
        log_debug("[nats] the cluster's conversion check waits: %s", why);
    self->warned = true;
}

/* The lease bucket (leased: the live instances), and the verdicts'
 * bucket too when verdicts (created when absent, only once a stage has a
 * target to judge). Returns 0, or -1. */
static int s_open_buckets(nats_judge_t *self, bool verdicts)
{
    char bucket[96];
    if (self->o.leased && self->owners == NULL) {
        snprintf(bucket, sizeof bucket, "%s-owners", self->stream);
        if (js_KeyValue(&self->owners, self->js, bucket) != NATS_OK) {
            self->owners = NULL;
            return -1;
        }
    }
    if (self->verdicts || !verdicts)
        return 0;
    snprintf(bucket, sizeof bucket, "%s-conversion", self->stream);
    if (js_KeyValue(&self->verdicts, self->js, bucket) == NATS_OK)
        return 0;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.History = 1;
    kc.StorageType = js_FileStorage;
    kc.Replicas = (int)self->o.replicas;
    if (js_CreateKeyValue(&self->verdicts, self->js, &kc) == NATS_OK) {
        log_info("[nats] created bucket %s (the cluster's conversion verdicts)", bucket);
        return 0;
    }
    /* Created by another meanwhile? */
    if (js_KeyValue(&self->verdicts, self->js, bucket) == NATS_OK)
        return 0;
    self->verdicts = NULL;
    return -1;
}

/* -- gathering the counters ------------------------------------------------ */

typedef struct {
    Funnel__V1__QueryReply *r[S_MAX_ANSWERS];
    size_t n;
    char *expected[S_MAX_ANSWERS];
    size_t n_expected;
} s_answers_t;

static void s_answers_free(s_answers_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        funnel__v1__query_reply__free_unpacked(a->r[i], NULL);
    for (size_t i = 0; i < a->n_expected; i++)
        free(a->expected[i]);
    memset(a, 0, sizeof *a);
}

/* Every expected instance answered, and the answers cover every partition
 * exactly once (twice is not complete either: a partition moving). */
static bool s_complete(const nats_judge_t *self, const s_answers_t *a, char *why, size_t cap)
{
    for (size_t i = 0; i < a->n_expected; i++) {
        bool seen = false;
        for (size_t j = 0; j < a->n && !seen; j++)
            seen = strcmp(a->r[j]->counters->instance, a->expected[i]) == 0;
        if (!seen) {
            snprintf(why, cap, "instance %s has not answered", a->expected[i]);
            return false;
        }
    }
    unsigned np = self->o.n_partitions;
    unsigned char *count = xcalloc(np ? np : 1, 1);
    bool ok = true;
    for (size_t j = 0; j < a->n; j++) {
        const Funnel__V1__CountersReply *c = a->r[j]->counters;
        for (size_t k = 0; k < c->n_owned_partitions; k++)
            if (c->owned_partitions[k] < np && count[c->owned_partitions[k]] < 2)
                count[c->owned_partitions[k]]++;
    }
    for (unsigned p = 0; p < np && ok; p++)
        if (count[p] != 1) {
            snprintf(why, cap, "partition %u is %s", p,
                     count[p] ? "counted by two instances (moving)" : "owned by none that answered");
            ok = false;
        }
    free(count);
    return ok;
}

/* Ask every instance (funnel.query.all) for its counters; collect the
 * answers until complete or NATS_JUDGE_GATHER_MS. Returns 0 when
 * complete, else -1 with why. */
static int s_gather(nats_judge_t *self, s_answers_t *a, char *why, size_t cap)
{
    natsSubscription *sub = NULL;
    natsInbox *inbox = NULL;
    uint8_t *buf = NULL;
    char id[40];
    int rc = -1;

    memset(a, 0, sizeof *a);
    if (self->owners) {
        kvKeysList keys = {0};
        if (kvStore_Keys(&keys, self->owners, NULL) == NATS_OK)
            for (int i = 0; i < keys.Count && a->n_expected < S_MAX_ANSWERS; i++)
                if (strncmp(keys.Keys[i], "i.", 2) == 0)
                    a->expected[a->n_expected++] = xstrdup(keys.Keys[i] + 2);
        kvKeysList_Destroy(&keys);
    }
    Funnel__V1__CountersQuery cq;
    Funnel__V1__QueryRequest req;
    funnel__v1__counters_query__init(&cq);
    funnel__v1__query_request__init(&req);
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_COUNTERS;
    req.counters = &cq;
    snprintf(id, sizeof id, "judge-%s-%llu", self->instance,
             (unsigned long long)atomic_load(&self->rounds));
    req.request_id = id;
    size_t len = funnel__v1__query_request__get_packed_size(&req);
    buf = xmalloc(len ? len : 1);
    funnel__v1__query_request__pack(&req, buf);
    if (natsInbox_Create(&inbox) != NATS_OK ||
        natsConnection_SubscribeSync(&sub, self->nc, inbox) != NATS_OK ||
        natsConnection_PublishRequest(self->nc, NATS_SUBJECT_QUERY_ALL, inbox, buf, (int)len) !=
            NATS_OK) {
        snprintf(why, cap, "cannot ask on %s: %s", NATS_SUBJECT_QUERY_ALL,
                 nats_GetLastError(NULL));
        goto out;
    }
    int64_t deadline = s_mono_ms() + NATS_JUDGE_GATHER_MS;
    snprintf(why, cap, "no instance answered");
    for (;;) {
        if (a->n > 0 && s_complete(self, a, why, cap)) {
            rc = 0;
            break;
        }
        int64_t left = deadline - s_mono_ms();
        natsMsg *m = NULL;
        if (left <= 0 || a->n == S_MAX_ANSWERS ||
            natsSubscription_NextMsg(&m, sub, left) != NATS_OK)
            break;
        Funnel__V1__QueryReply *r = funnel__v1__query_reply__unpack(
            NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
        natsMsg_Destroy(m);
        if (r == NULL)
            continue;
        if (strcmp(r->request_id, id) != 0 ||
            r->reply_case != FUNNEL__V1__QUERY_REPLY__REPLY_COUNTERS) {
            if (r->error[0])
                snprintf(why, cap, "an instance answered: %s", r->error);
            funnel__v1__query_reply__free_unpacked(r, NULL);
            continue;
        }
        a->r[a->n++] = r;
    }
out:
    free(buf);
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    return rc;
}

/* -- judging ---------------------------------------------------------------- */

/* The cluster's definition (every answer's, one hash), loaded once per
 * hash. NULL with why. */
static const defn_t *s_definition(nats_judge_t *self, const s_answers_t *a, char *why,
                                  size_t cap)
{
    const Funnel__V1__CountersReply *c0 = a->r[0]->counters;
    for (size_t j = 1; j < a->n; j++)
        if (strcmp(a->r[j]->counters->definition_hash, c0->definition_hash) != 0) {
            snprintf(why, cap, "instances %s and %s run different definitions", c0->instance,
                     a->r[j]->counters->instance);
            return NULL;
        }
    if (self->defn && strcmp(self->defn_hash, c0->definition_hash) == 0)
        return self->defn;
    defn_destroy(&self->defn);
    char err[512] = "";
    self->defn = c0->definition_yaml[0]
                     ? defn_load_buffer(c0->definition_yaml, strlen(c0->definition_yaml),
                                        c0->definition_name, err, sizeof err)
                     : defn_load_default();
    if (self->defn == NULL) {
        snprintf(why, cap, "the cluster's definition: %s", err);
        return NULL;
    }
    snprintf(self->defn_hash, sizeof self->defn_hash, "%s", c0->definition_hash);
    return self->defn;
}

/* The verdict's key of stage name in the conversion bucket (a KV key
 * holds letters, digits, '-', '_', '/', '=' and '.'). */
static void s_verdict_key(const char *stage, char *out, size_t cap)
{
    int n = snprintf(out, cap, "below.%s", stage);
    for (char *c = out + 6; n > 0 && *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            *c = '_';
}

typedef struct {
    uint64_t rev;       /* of the verdict read; 0: none yet */
    bool below;
    bool written;       /* changed by this round, and the write won */
} s_verdict_t;

static void s_round(nats_judge_t *self)
{
    s_answers_t a;
    merge_table_t t = {0};
    hnd_effects_t *fx = NULL;
    s_verdict_t *v = NULL;
    char why[512];

    /* A definition without conversion targets has nothing to judge: it
     * is asked for again now and then, in case it changed. */
    bool targets = self->defn == NULL;
    for (size_t s = 0; self->defn && s < self->defn->n_stages; s++)
        targets |= self->defn->stages[s].conversion_target > 0;
    if (!targets && self->idle++ % S_IDLE_ROUNDS != 0)
        return;
    if (s_open_buckets(self, false) != 0) {
        s_warn(self, "the lease bucket cannot be opened");
        return;
    }
    if (s_gather(self, &a, why, sizeof why) != 0) {
        s_warn(self, why);
        goto out;
    }
    const defn_t *d = s_definition(self, &a, why, sizeof why);
    if (d == NULL) {
        s_warn(self, why);
        goto out;
    }
    targets = false;
    for (size_t s = 0; s < d->n_stages; s++)
        targets |= d->stages[s].conversion_target > 0;
    if (targets && s_open_buckets(self, true) != 0) {
        s_warn(self, "the verdicts' KV bucket cannot be opened");
        goto out;
    }
    if (!targets) { /* nothing to judge */
        atomic_fetch_add(&self->rounds, 1);
        goto out;
    }
    int64_t now_ms = 0;
    for (size_t j = 0; j < a.n; j++) {
        const Funnel__V1__CountersReply *c = a.r[j]->counters;
        for (size_t i = 0; i < c->n_counters; i++)
            merge_add(&t, c->counters[i]->key, c->counters[i]->value);
        if (c->now_ms > now_ms)
            now_ms = c->now_ms;
    }
    merge_settle(&t);
    /* The cluster's verdicts, as the check reads its own. */
    v = xcalloc(d->n_stages ? d->n_stages : 1, sizeof *v);
    char key[KEYS_KEY_MAX], vkey[160];
    for (size_t s = 0; s < d->n_stages; s++) {
        if (d->stages[s].conversion_target <= 0)
            continue;
        s_verdict_key(d->stages[s].name, vkey, sizeof vkey);
        kvEntry *e = NULL;
        if (kvStore_Get(&e, self->verdicts, vkey) == NATS_OK) {
            v[s].rev = kvEntry_Revision(e);
            v[s].below = kvEntry_ValueLen(e) == 1 && ((const char *)kvEntry_Value(e))[0] == '1';
            kvEntry_Destroy(e);
        }
        if (v[s].below)
            merge_set(&t, keys_conv_below(key, sizeof key, d->stages[s].name), 1);
    }
    fx = xcalloc(1, sizeof *fx);
    pipeline_funnel_check(d, now_ms, merge_counter, &t, fx);
    /* A verdict that changed is written against the revision read: only
     * one judge's write wins, and only the winner alerts. */
    for (size_t i = 0; i < fx->n_deltas; i++) {
        if (!merge_is_below_key(fx->deltas[i].key))
            continue;
        for (size_t s = 0; s < d->n_stages; s++) {
            if (d->stages[s].conversion_target <= 0 ||
                strcmp(keys_conv_below(key, sizeof key, d->stages[s].name), fx->deltas[i].key) != 0)
                continue;
            bool below = fx->deltas[i].delta > 0;
            s_verdict_key(d->stages[s].name, vkey, sizeof vkey);
            uint64_t rev = 0;
            natsStatus st = v[s].rev == 0
                                ? kvStore_Create(&rev, self->verdicts, vkey, below ? "1" : "0", 1)
                                : kvStore_Update(&rev, self->verdicts, vkey, below ? "1" : "0", 1,
                                                 v[s].rev);
            v[s].written = st == NATS_OK;
            if (st != NATS_OK)
                log_info("[nats] %s: the cluster's conversion verdict was written meanwhile "
                         "by another instance; not alerting from here", d->stages[s].name);
        }
    }
    /* The round counts before its alerts leave: whoever saw one of them
     * and then asks for the stats finds the round that raised it. */
    atomic_fetch_add(&self->rounds, 1);
    for (size_t i = 0; i < fx->n_alerts; i++) {
        hnd_alert_t *al = &fx->alerts[i];
        if (al->stage < 0 || (size_t)al->stage >= d->n_stages || !v[al->stage].written)
            continue;
        hnd_alert_reason(al, "judged once for the cluster by instance %s, on the counters of "
                             "%zu instance%s", self->instance, a.n, a.n == 1 ? "" : "s");
        size_t len;
        uint8_t *buf = codec_alert_pack(al, d, NULL, 0, al->at_ms ? al->at_ms : now_ms, &len);
        log_info("[nats] the cluster's %s alert: %s", al->kind,
                 al->n_reasons ? al->reasons[0] : "");
        self->o.alert(self->o.arg, al->topic, buf, len);
    }
    if (self->warned)
        log_info("[nats] the cluster's conversion check is judged again (%zu instances)", a.n);
    self->warned = false;
out:
    free(fx);
    free(v);
    merge_free(&t);
    s_answers_free(&a);
}

static void *s_main(void *arg)
{
    nats_judge_t *self = arg;
    pthread_mutex_lock(&self->lock);
    while (!self->stopping) {
        pthread_mutex_unlock(&self->lock);
        if (self->o.owns(self->o.arg, 0) &&
            natsConnection_Status(self->nc) == NATS_CONN_STATUS_CONNECTED)
            s_round(self);
        pthread_mutex_lock(&self->lock);
        if (self->stopping)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + NATS_JUDGE_MS * 1000000LL;
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait(&self->cond, &self->lock, &ts);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

nats_judge_t *nats_judge_new(natsConnection *nc, jsCtx *js, const nats_judge_opts_t *opts)
{
    nats_judge_t *self = xcalloc(1, sizeof *self);
    self->nc = nc;
    self->js = js;
    self->o = *opts;
    self->stream = xstrdup(opts->stream);
    self->instance = xstrdup(opts->instance);
    self->o.stream = self->stream;
    self->o.instance = self->instance;
    atomic_init(&self->rounds, 0);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->cond);
        free(self->stream);
        free(self->instance);
        free(self);
        return NULL;
    }
    return self;
}

void nats_judge_destroy(nats_judge_t **self_p)
{
    nats_judge_t *self = *self_p;
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    if (self->owners)
        kvStore_Destroy(self->owners);
    if (self->verdicts)
        kvStore_Destroy(self->verdicts);
    defn_destroy(&self->defn);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->cond);
    free(self->stream);
    free(self->instance);
    free(self);
    *self_p = NULL;
}

uint64_t nats_judge_rounds(const nats_judge_t *self)
{
    return self ? (uint64_t)atomic_load(&((nats_judge_t *)self)->rounds) : 0;
}
