/* nats_judge.h: the funnel-wide conversion check of a cluster, judged
 * once for the whole cluster on its merged counters.
 *
 * In cluster mode no instance raises friction.conversion (or
 * conversion_recovered) on its own leads (ingest_opts_t.cluster_judged):
 * the instance owning cluster partition 0 (its lease, or `owns`) judges
 * it every NATS_JUDGE_MS. A round asks every instance for its counters
 * (CountersQuery on funnel.query.all, its own included), and judges only
 * when the answers are complete: every live instance answered (the
 * presence keys of the lease bucket) and they cover every cluster
 * partition exactly once, under one definition. The counters are added up
 * (handlers/merge.h) and the check's own code (pipeline_funnel_check)
 * runs on them. Whether a stage is below its target is the cluster's, kept
 * in the KV bucket <stream>-conversion (key "below.<stage>", "1" or "0"),
 * and a verdict that changes is written there against the revision read
 * (kvStore_Create / kvStore_Update), so that of two instances judging at
 * once (partition 0 changing hands) only one raises the alert, and a new
 * judge goes on from the last verdict. The alert (not stored, as the
 * conversion alerts of one funneld: alert_seq 0) is handed to fn, which
 * publishes it on the alerts socket and on NATS.
 *
 * Threads: one of its own; fn and owns are called on it.
 */
#ifndef FUNNELD_NATS_JUDGE_H
#define FUNNELD_NATS_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#define NATS_JUDGE_MS 1000
/* How long a round waits for the instances' answers. */
#define NATS_JUDGE_GATHER_MS 5000

typedef struct nats_judge nats_judge_t;

/* Whether this instance owns cluster partition p now. */
typedef bool nats_judge_owns_fn(void *arg, unsigned p);
/* An alert of the cluster: topic, and buf (len bytes, an Alert) handed
 * over (the callee frees it). */
typedef void nats_judge_alert_fn(void *arg, const char *topic, uint8_t *buf, size_t len);

typedef struct {
    const char *stream;        /* the buckets are <stream>-owners, -conversion */
    const char *instance;
    unsigned n_partitions;
    unsigned replicas;         /* of the conversion bucket when created */
    bool leased;               /* a lease bucket lists the live instances */
    nats_judge_owns_fn *owns;
    nats_judge_alert_fn *alert;
    void *arg;
} nats_judge_opts_t;

/* A judge through nc and js (borrowed, must outlive it), running its
 * thread from now on (idle while this instance does not own partition 0
 * or NATS is unreachable). NULL if the thread cannot start. Caller owns
 * the result: nats_judge_destroy(). */
nats_judge_t *nats_judge_new(natsConnection *nc, jsCtx *js, const nats_judge_opts_t *opts);

/* Stop the thread (a round under way is finished first) and free.
 * Accepts NULL. */
void nats_judge_destroy(nats_judge_t **self_p);

/* Rounds judged on complete answers since the start (Stats
 * cluster_checks). Any thread; 0 for NULL. */
uint64_t nats_judge_rounds(const nats_judge_t *self);

#endif
