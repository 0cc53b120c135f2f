/* nats_cfg.h: the cluster settings (nats, cluster_partitions, stream,
 * stream_replicas, nats_credentials, owns; daemon/cfg.h's table), checked
 * and read. Kept apart from nats.c so that cfg.c and funnelctl need no
 * NATS client library.
 *
 * Pure functions of the configuration; thread-safe.
 */
#ifndef FUNNELD_NATS_CFG_H
#define FUNNELD_NATS_CFG_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

/* At most this many cluster partitions. */
#define NATS_CFG_PARTITIONS_MAX 1024

/* Subjects: an event of cluster partition p is published on
 * NATS_SUBJECT_IN "<p>"; the stream holds NATS_SUBJECT_IN "*". */
#define NATS_SUBJECT_IN "funnel.in."

/* Alerts go out on NATS_SUBJECT_ALERTS "<topic>" as well (core NATS). */
#define NATS_SUBJECT_ALERTS "funnel.alerts."

/* Check the cluster settings (only when `nats` is set, except that a bad
 * value is always refused). Returns 0, or -1 with one line in err naming
 * the setting and what is wrong. */
int nats_cfg_check(const cfg_t *cfg, char *err, size_t errlen);

/* Parse an `owns` list ("0-5,9"; blanks around items allowed; empty: every
 * partition) against n partitions into owned[0..n-1]. Returns the number
 * of partitions owned, or -1 with one line in err (a partition out of
 * range, a reversed or malformed range, a partition listed twice). */
int nats_cfg_owns(const char *text, unsigned n, bool *owned, char *err, size_t errlen);

#endif
