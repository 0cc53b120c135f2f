/* dwell.h: log-scale histograms of time spent in a stage.
 *
 * A completed stay (the lead left the stage) is counted in one bucket of a
 * histogram kept as report counters (keys_dwell in keys.h, per persona
 * and source too), so histograms are merged by adding counts and a report
 * never scans the leads. Bucket 0 holds stays under one second; bucket
 * k >= 1 holds [dwell_bucket_lo(k), dwell_bucket_lo(k + 1)) milliseconds,
 * the bounds growing by 2^(1/16) per bucket (16 buckets per doubling) from
 * 1 s. A quantile read from the histogram is the value of the bucket
 * holding the exact quantile, so it is within DWELL_REL_ERROR (2.2%) of the
 * exact value for stays of a second or more, and under 1 s for shorter
 * ones (reported as 0).
 *
 * Pure functions, no state.
 */
#ifndef FUNNELD_DWELL_H
#define FUNNELD_DWELL_H

#include <stddef.h>
#include <stdint.h>

#define DWELL_BUCKETS 512       /* the last one is open-ended (~10^4 years) */
#define DWELL_REL_ERROR 0.022   /* (2^(1/16) - 1) / (2^(1/16) + 1) = 2.17% */

/* The bucket of a stay of ms milliseconds (negative counts as 0). */
int dwell_bucket(int64_t ms);

/* The lower bound of bucket k, in ms (0 for bucket 0). */
int64_t dwell_bucket_lo(int k);

/* The value reported for bucket k: 0 for bucket 0, else the point of the
 * bucket with the least worst-case relative error. */
int64_t dwell_value(int k);

/* The nearest-rank quantile q (0 < q <= 1: the value at rank ceil(q * n)
 * of the n counted stays, in ascending order) of the histogram counts[k],
 * k < DWELL_BUCKETS. Returns -1 when the histogram is empty. */
int64_t dwell_quantile(const uint64_t *counts, double q);

#endif
