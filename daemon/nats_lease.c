/* nats_lease.c: see nats_lease.h. */
#include "nats_lease.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "xalloc.h"

typedef struct {
    bool held;
    uint64_t rev;
    int64_t ok_ms;          /* last successful claim or refresh */
} s_claim_t;

struct nats_lease {
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    char *bucket;
    char *instance;
    unsigned n;
    unsigned replicas;
    int64_t lease_ms;
    nats_lease_fn *fn;
    void *arg;
    s_claim_t *claims;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping;
    bool failing;
    unsigned last_share, last_live;
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The bucket, opened or created. Returns 0, or -1. */
static int s_open(nats_lease_t *self)
{
    if (self->kv)
        return 0;
    if (js_KeyValue(&self->kv, self->js, self->bucket) == NATS_OK)
        return 0;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = self->bucket;
    kc.History = 1;
    kc.TTL = self->lease_ms * 1000000LL; /* nanoseconds */
    kc.StorageType = js_FileStorage;
    kc.Replicas = (int)self->replicas;
    if (js_CreateKeyValue(&self->kv, self->js, &kc) == NATS_OK) {
        log_info("[nats] created lease bucket %s (leases of %lld ms)", self->bucket,
                 (long long)self->lease_ms);
        return 0;
    }
    self->kv = NULL;
    return -1;
}

/* This instance's share among the live ones (counting itself). */
static unsigned s_share(nats_lease_t *self, unsigned *live_out)
{
    kvKeysList keys = {0};
    char *names[1024];
    unsigned live = 0;
    bool me = false;
    if (kvStore_Keys(&keys, self->kv, NULL) == NATS_OK) {
        for (int i = 0; i < keys.Count && live < 1023; i++)
            if (strncmp(keys.Keys[i], "i.", 2) == 0) {
                names[live++] = keys.Keys[i] + 2;
                me |= strcmp(keys.Keys[i] + 2, self->instance) == 0;
            }
    }
    if (!me)
        names[live++] = self->instance;
    qsort(names, live, sizeof *names, s_cmp);
    unsigned rank = 0;
    for (unsigned i = 0; i < live; i++)
        if (strcmp(names[i], self->instance) == 0)
            rank = i;
    kvKeysList_Destroy(&keys);
    *live_out = live;
    return self->n / live + (rank < self->n % live);
}

static void s_give_up(nats_lease_t *self, unsigned p, const char *why)
{
    self->claims[p].held = false;
    log_warn("[nats] funnel.in.%u: %s; no longer applied here", p, why);
    self->fn(self->arg, p, false);
}

static void s_tick(nats_lease_t *self)
{
    int64_t now = s_mono_ms();
    char key[32];
    size_t il = strlen(self->instance);

    /* Fencing first: a claim not refreshed for 2/3 of the lease is given
     * up before anyone may take it over. */
    for (unsigned p = 0; p < self->n; p++)
        if (self->claims[p].held && now - self->claims[p].ok_ms > self->lease_ms * 2 / 3)
            s_give_up(self, p, "lease not refreshed in time (NATS unreachable?)");
    if (natsConnection_Status(self->nc) != NATS_CONN_STATUS_CONNECTED)
        return;
    if (s_open(self) != 0) {
        if (!self->failing)
            log_warn("[nats] cannot open the lease bucket %s: %s; retrying", self->bucket,
                     nats_GetLastError(NULL));
        self->failing = true;
        return;
    }
    snprintf(key, sizeof key, "i.%s", self->instance);
    if (kvStore_Put(NULL, self->kv, key, "", 0) != NATS_OK) {
        if (!self->failing)
            log_warn("[nats] cannot refresh presence in %s: %s", self->bucket,
                     nats_GetLastError(NULL));
        self->failing = true;
        return;
    }
    if (self->failing)
        log_info("[nats] lease bucket %s reachable again", self->bucket);
    self->failing = false;

    /* Refresh what is held. */
    unsigned held = 0;
    for (unsigned p = 0; p < self->n; p++) {
        s_claim_t *c = &self->claims[p];
        if (!c->held)
            continue;
        snprintf(key, sizeof key, "p.%u", p);
        uint64_t rev = 0;
        if (kvStore_Update(&rev, self->kv, key, self->instance, (int)il, c->rev) == NATS_OK) {
            c->rev = rev;
            c->ok_ms = now;
            held++;
            continue;
        }
        kvEntry *e = NULL;
        if (kvStore_Get(&e, self->kv, key) == NATS_OK && kvEntry_ValueLen(e) > 0 &&
            ((size_t)kvEntry_ValueLen(e) != il ||
             memcmp(kvEntry_Value(e), self->instance, il) != 0)) {
            kvEntry_Destroy(e);
            s_give_up(self, p, "claimed by another instance");
            continue;
        }
        kvEntry_Destroy(e);
        held++; /* transient: fencing decides */
    }

    unsigned live;
    unsigned share = s_share(self, &live);
    if (share != self->last_share || live != self->last_live)
        log_info("[nats] %u live instance%s: this one's share is %u of %u partitions", live,
                 live == 1 ? "" : "s", share, self->n);
    self->last_share = share;
    self->last_live = live;
    /* Above the share (an instance joined): release the highest. */
    for (unsigned p = self->n; p-- > 0 && held > share;) {
        if (!self->claims[p].held)
            continue;
        s_give_up(self, p, "released to a joining instance");
        snprintf(key, sizeof key, "p.%u", p);
        kvStore_Delete(self->kv, key);
        held--;
    }
    /* Below it: claim free ones, starting at a place of this instance's
     * own so that joiners do not all race for partition 0. */
    unsigned start = 0;
    for (size_t i = 0; i < il; i++)
        start = start * 31 + (unsigned char)self->instance[i];
    for (unsigned k = 0; k < self->n && held < share; k++) {
        unsigned p = (start + k) % self->n;
        s_claim_t *c = &self->claims[p];
        if (c->held)
            continue;
        snprintf(key, sizeof key, "p.%u", p);
        uint64_t rev = 0;
        if (kvStore_Create(&rev, self->kv, key, self->instance, (int)il) != NATS_OK) {
            /* Still ours (given up by the fencing, not yet expired): take
             * it back by its revision, which fails if anyone else wrote. */
            kvEntry *e = NULL;
            bool mine = kvStore_Get(&e, self->kv, key) == NATS_OK &&
                        (size_t)kvEntry_ValueLen(e) == il &&
                        memcmp(kvEntry_Value(e), self->instance, il) == 0 &&
                        kvStore_Update(&rev, self->kv, key, self->instance, (int)il,
                                       kvEntry_Revision(e)) == NATS_OK;
            kvEntry_Destroy(e);
            if (!mine)
                continue;
        }
        c->held = true;
        c->rev = rev;
        c->ok_ms = now;
        held++;
        log_info("[nats] funnel.in.%u: claimed (lease revision %llu)", p,
                 (unsigned long long)rev);
        self->fn(self->arg, p, true);
    }
    self->fn(self->arg, NATS_LEASE_ROUND, true);
}

static void *s_main(void *arg)
{
    nats_lease_t *self = arg;
    pthread_mutex_lock(&self->lock);
    while (!self->stopping) {
        pthread_mutex_unlock(&self->lock);
        s_tick(self);
        pthread_mutex_lock(&self->lock);
        if (self->stopping)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (self->lease_ms / 4) * 1000000LL;
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait(&self->cond, &self->lock, &ts);
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

nats_lease_t *nats_lease_new(natsConnection *nc, jsCtx *js, const char *bucket, const char *instance, unsigned n,
                             unsigned replicas, int64_t lease_ms, nats_lease_fn *fn,
                             void *arg)
{
    nats_lease_t *self = xcalloc(1, sizeof *self);
    self->nc = nc;
    self->js = js;
    self->bucket = xstrdup(bucket);
    self->instance = xstrdup(instance);
    self->n = n;
    self->replicas = replicas;
    self->lease_ms = lease_ms;
    self->fn = fn;
    self->arg = arg;
    self->claims = xcalloc(n, sizeof *self->claims);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    if (pthread_create(&self->thread, NULL, s_main, self) != 0) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->cond);
        free(self->claims);
        free(self->bucket);
        free(self->instance);
        free(self);
        return NULL;
    }
    return self;
}

void nats_lease_destroy(nats_lease_t **self_p)
{
    nats_lease_t *self = *self_p;
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    char key[32];
    bool connected = natsConnection_Status(self->nc) == NATS_CONN_STATUS_CONNECTED;
    for (unsigned p = 0; p < self->n; p++) {
        if (!self->claims[p].held)
            continue;
        self->claims[p].held = false;
        self->fn(self->arg, p, false);
        snprintf(key, sizeof key, "p.%u", p);
        if (self->kv && connected)
            kvStore_Delete(self->kv, key);
    }
    if (self->kv && connected) {
        snprintf(key, sizeof key, "i.%s", self->instance);
        kvStore_Delete(self->kv, key);
    }
    if (self->kv) {
        kvStore_Destroy(self->kv);
    }
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->cond);
    free(self->claims);
    free(self->bucket);
    free(self->instance);
    free(self);
    *self_p = NULL;
}
