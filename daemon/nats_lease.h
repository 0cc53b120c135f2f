/* nats_lease.h: ownership of cluster partitions by leases in a NATS KV
 * bucket, spread evenly over the live instances.
 *
 * The bucket (`<stream>-owners`, TTL = lease_ms) holds one key per live
 * instance, "i.<instance>", rewritten every lease_ms / 4 (its presence),
 * and one key per claimed partition, "p.<N>" = the owner's instance name.
 * A claim is kvStore_Create (it succeeds only while the key is absent,
 * deleted or expired) and is refreshed by kvStore_Update against its last
 * revision, so that two instances never both hold one. An instance's share
 * is P / live instances (the first P mod live ones, in name order, one
 * more): it claims free partitions up to its share and releases (deletes)
 * those above it, so an instance that joins gets its share and the
 * partitions of one that leaves or dies are claimed by the others once
 * their keys expired (lease_ms after the last refresh).
 *
 * Fencing: an instance stops applying a partition (fn(p, false)) when its
 * claim was not refreshed successfully for 2/3 of lease_ms, or when the
 * key names another owner: before the key can expire and anyone else can
 * claim it (the margin covers the refresh interval and clock-rate drift,
 * not a pause of the whole process longer than a third of the lease in the
 * middle of a group commit).
 *
 * Threads: one of its own; fn is called on it.
 */
#ifndef FUNNELD_NATS_LEASE_H
#define FUNNELD_NATS_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include <nats/nats.h>

typedef struct nats_lease nats_lease_t;

/* fn(arg, partition, true): this instance now owns partition; false: it
 * must stop applying it now. fn(arg, NATS_LEASE_ROUND, true): a round
 * reached the bucket, so what this instance holds now is all it owns
 * (every other partition is another's or free); no such call while the
 * bucket cannot be reached. */
#define NATS_LEASE_ROUND UINT32_MAX
typedef void nats_lease_fn(void *arg, unsigned partition, bool own);

/* A lease keeper for instance among n partitions in bucket (created if
 * absent with replicas), running its thread from now on, through js (whose
 * request wait should be well below lease_ms) on nc. Both are borrowed and
 * must outlive it; while nc is not connected, only the fencing runs. Caller owns the result: nats_lease_destroy(). NULL
 * if the thread cannot start. */
nats_lease_t *nats_lease_new(natsConnection *nc, jsCtx *js, const char *bucket, const char *instance, unsigned n,
                             unsigned replicas, int64_t lease_ms, nats_lease_fn *fn,
                             void *arg);

/* Stop the thread, tell fn that every held partition is given up, and
 * (when connected) delete this instance's keys, so that the others take
 * over at once. Accepts NULL. */
void nats_lease_destroy(nats_lease_t **self_p);

#endif
