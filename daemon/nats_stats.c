/* nats_stats.c: what the cluster input reports (nats_stats), who owns
 * which partition, and the query responder's settings (see nats.h). */
#include "nats_int.h"

#include <stdio.h>

void nats_stats(nats_t *self, Funnel__V1__Stats *s, nats_stats_buf_t *buf)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    switch (atomic_load(&self->state)) {
    case NATS_ST_CONNECTED:
        snprintf(buf->state, sizeof buf->state, "connected to %s", self->url);
        break;
    case NATS_ST_DISCONNECTED:
        snprintf(buf->state, sizeof buf->state, "disconnected from %s, reconnecting",
                 self->url);
        break;
    case NATS_ST_CLOSED:
        snprintf(buf->state, sizeof buf->state, "closed");
        break;
    default:
        snprintf(buf->state, sizeof buf->state, "connecting to %s", self->urls);
        break;
    }
    pthread_mutex_unlock(&self->lock);
    snprintf(buf->stream, sizeof buf->stream, "%s", self->stream);
    size_t k = 0;
    nats_owned(self, buf->owned, NATS_CFG_PARTITIONS_MAX, &k);
    s->nats = buf->state;
    s->stream = buf->stream;
    s->cluster_partitions = self->n_partitions;
    s->n_owned_partitions = k;
    s->owned_partitions = buf->owned;
    s->nats_messages = (uint64_t)atomic_load(&self->messages);
    s->nats_acked = (uint64_t)atomic_load(&self->acked);
    s->nats_alerts = (uint64_t)atomic_load(&self->alerts);
    s->nats_alerts_failed = (uint64_t)atomic_load(&self->alerts_failed);
    s->cluster_checks = nats_judge_rounds(__atomic_load_n(&self->judge, __ATOMIC_ACQUIRE));
    snprintf(buf->instance, sizeof buf->instance, "%s", self->instance);
    s->instance = buf->instance;
}

void nats_serve_queries(nats_t *self, void *zmq_ctx)
{
    self->query_ctx = zmq_ctx;
}

void nats_stop_queries(nats_t *self)
{
    if (self)
        nats_query_destroy(&self->queries);
}

const char *nats_instance(const nats_t *self)
{
    return self ? self->instance : "";
}

bool nats_owns(nats_t *self, unsigned p)
{
    for (size_t i = 0; i < self->n_parts; i++)
        if (self->parts[i].partition == p)
            return atomic_load(&self->parts[i].active);
    return false;
}

unsigned nats_owned(nats_t *self, uint32_t *out, size_t cap, size_t *n)
{
    *n = 0;
    if (self == NULL)
        return 0;
    for (size_t i = 0; i < self->n_parts && *n < cap; i++)
        if (atomic_load(&self->parts[i].active))
            out[(*n)++] = self->parts[i].partition;
    return self->n_partitions;
}
