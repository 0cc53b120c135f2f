/* nats.h: cluster input over NATS JetStream (config `nats`).
 *
 * funneld consumes the JetStream stream `stream` (subjects
 * funnel.in.<partition>, one EventBatch a message: see funnel.proto)
 * besides its ZeroMQ ingest. It creates the stream when it is absent
 * (file storage, stream_replicas replicas, subjects funnel.in.*), and
 * consumes each cluster partition it owns (pinned by `owns`, else its
 * share claimed by leases: nats_lease.h) through one durable pull
 * consumer ("funneld-p<N>" pinned, "funneld-<instance>-p<N>" leased: a
 * takeover then replays what this instance's state lacks of the subject),
 * filtered on that partition's subject. Each message goes into the same
 * decode -> validate -> dedup -> log path as a ZeroMQ stream's batch
 * (ingest_submit), with the partition of every event's lead checked, and
 * is acknowledged on JetStream only once its group is durable in the log
 * (fsync'd); a message delivered again is harmless, its events being
 * recognised by their ids. Each cluster partition is one of the state's
 * partitions (its own LMDB environment and applying thread): a partition
 * this instance gives away keeps its state, no longer counted in what it
 * answers (store_set_counted), and resumes from it when it comes back.
 *
 * NATS unreachable at start or lost later: funneld logs it, keeps
 * answering queries and its ZeroMQ ingest, reconnects by itself (every
 * NATS_RECONNECT_MS), makes sure the stream and its consumers exist again
 * and resumes.
 *
 * Threads: libnats' own; one fetch thread per owned partition, which
 * pulls batches of messages and queues them; the loop thread, which drains
 * the queue into ingest (drain_budget a wakeup, paused with ingest's
 * intake) and acknowledges. nats_stats() from any thread.
 */
#ifndef FUNNELD_NATS_H
#define FUNNELD_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "funnel.pb-c.h"
#include "ingest.h"
#include "nats_cfg.h"
#include "store.h"

struct event_base;

#define NATS_RECONNECT_MS 250

typedef struct nats nats_t;

/* A cluster input for cfg's cluster settings (cfg->nats set, checked by
 * cfg_load), on base. Nothing is connected yet. NULL and one line in err
 * on failure. Borrowed: base must outlive it. Caller owns the result:
 * nats_destroy(). Loop thread. */
nats_t *nats_new(struct event_base *base, const cfg_t *cfg, char *err, size_t errlen);

/* Connect (in the background when NATS is unreachable: logged) and start
 * consuming into ingest, which must outlive the input and be destroyed
 * before it (its uncommitted batches are then handed back unacknowledged).
 * store is ingest's (borrowed), whose partitions are the cluster's
 * (cfg_load: partitions = cluster_partitions): from now on it counts only
 * the partitions this instance owns (store_set_counted): those of `owns`,
 * or those it holds leases of after each round of the leases that
 * reached NATS (until the first, and while NATS is unreachable, what it
 * has). Returns 0, or -1 with one line in err (bad credentials file, no
 * thread). Loop thread, once. */
int nats_start(nats_t *self, ingest_t *ingest, store_t *store, char *err, size_t errlen);

/* Stop the fetch threads, drop what is queued (unacknowledged: JetStream
 * delivers it again), get the acknowledgements out (at most 1 s) and
 * close. Accepts NULL. After ingest_destroy(). Loop thread. */
void nats_destroy(nats_t **self_p);

/* Answer queries over NATS (nats_query.h) through the query server of
 * zmq_ctx (query_server_context()), from nats_start() on. Before
 * nats_start(). Loop thread. */
void nats_serve_queries(nats_t *self, void *zmq_ctx);

/* Stop answering queries over NATS: before the query server is destroyed
 * (its context waits for the responder's socket). Accepts NULL. Loop
 * thread. */
void nats_stop_queries(nats_t *self);

/* This instance's name in the cluster; "" for NULL. Any thread. */
const char *nats_instance(const nats_t *self);

/* Whether this instance owns (applies) cluster partition p now. Any
 * thread. */
bool nats_owns(nats_t *self, unsigned p);

/* The partitions owned now, ascending, into out[0..cap) (*n of them);
 * returns cluster_partitions (0 for NULL). Any thread. */
unsigned nats_owned(nats_t *self, uint32_t *out, size_t cap, size_t *n);

/* Fill s's cluster fields (nats, cluster_partitions, owned_partitions,
 * stream, nats_messages, nats_acked); buf holds what they point to and
 * must outlive s. self may be NULL (nothing filled). Any thread. */
typedef struct {
    char state[320];
    char stream[72];
    char instance[96];
    uint32_t owned[NATS_CFG_PARTITIONS_MAX];
} nats_stats_buf_t;
void nats_stats(nats_t *self, Funnel__V1__Stats *s, nats_stats_buf_t *buf);

#endif
