/* nats_int.h: the cluster input's insides, shared by nats.c (the
 * connection, the consumers, the loop's side, the lifecycle) and
 * nats_stats.c (what it reports, and who owns what). Not for other
 * modules: nats.h is the interface. */
#ifndef FUNNELD_NATS_INT_H
#define FUNNELD_NATS_INT_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nats.h"
#include "nats_judge.h"
#include "nats_lease.h"
#include "nats_query.h"

struct event;

/* The connection's state (nats_t.state). */
enum { NATS_ST_CONNECTING = 0, NATS_ST_CONNECTED, NATS_ST_DISCONNECTED, NATS_ST_CLOSED };

typedef struct nats_part nats_part_t;

/* An alert of the cluster's conversion check on its way to the loop. */
typedef struct nats_judged {
    char topic[48];
    uint8_t *buf;
    size_t len;
    struct nats_judged *next;
} nats_judged_t;

/* One message on its way: queued, then in ingest until settled. */
typedef struct nats_item {
    natsMsg *msg;
    nats_part_t *part;
    struct nats_item *next;
} nats_item_t;

/* One owned cluster partition and its consumer (its fetch thread's). */
struct nats_part {
    nats_t *owner;
    unsigned partition;
    char subject[40];
    char durable[128];
    char origin[64];
    pthread_t thread;
    bool started;
    natsSubscription *sub;
    /* Subscriptions replaced after the consumer vanished: messages from
     * them may still wait for their acknowledgement, which reads the
     * subscription, so they are destroyed last. */
    natsSubscription **old;
    size_t n_old;
    atomic_bool check;      /* after a reconnect: does the consumer exist? */
    atomic_bool active;     /* owned now: consume it (leases change it) */
    bool failing;           /* a failure was logged; recovery is logged too */
    bool idle;              /* fetch thread: was not held */
};

struct nats {
    struct event_base *base;
    ingest_t *ingest;
    store_t *store;         /* ingest's: counts the partitions owned */
    char *urls;
    char *credentials;
    char *stream;
    unsigned n_partitions;
    unsigned replicas;
    unsigned budget;
    bool *owned;
    bool leased;            /* owns empty: ownership by leases */
    char instance[96];
    int64_t lease_ms;
    nats_lease_t *lease;
    void *query_ctx;        /* the query server's, for nats_query */
    nats_query_t *queries;
    nats_judge_t *judge;    /* the cluster's conversion check (atomic:
                               nats_stats reads it) */
    jsCtx *lease_js;        /* requests wait lease_ms / 8 at most */

    natsOptions *nopts;
    natsConnection *nc;
    jsCtx *js;

    nats_part_t *parts;
    size_t n_parts;

    pthread_mutex_t setup_lock; /* one stream look-up or creation at a time */
    pthread_mutex_t lock;   /* the queue, stopping, url, the stream check */
    pthread_cond_t cond;    /* state or queue space changed, stopping */
    nats_item_t *head, *tail;
    size_t n_queued;
    nats_judged_t *judged;  /* the judge's alerts, for the loop to publish */
    bool stopping;
    bool stream_ok;         /* the stream exists (since the last reconnect) */
    bool stream_failing;
    char url[256];          /* connected to, or last connected to */

    atomic_int state;       /* S_* */
    atomic_uint_fast64_t messages;
    atomic_uint_fast64_t acked;
    atomic_uint_fast64_t alerts;        /* published on funnel.alerts.* */
    atomic_uint_fast64_t alerts_failed; /* not even buffered */

    bool paused;            /* loop thread: ingest's intake is paused */
    int wake_fd;
    struct event *ev_wake;
    struct event *ev_drain;
};

#endif
