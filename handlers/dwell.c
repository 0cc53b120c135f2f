/* dwell.c: see dwell.h. */
#include "dwell.h"

#include <math.h>

int64_t dwell_bucket_lo(int k)
{
    if (k <= 0)
        return 0;
    return (int64_t)ceil(1000.0 * exp2((double)(k - 1) / 16.0));
}

int dwell_bucket(int64_t ms)
{
    if (ms < 1000)
        return 0;
    int k = 1 + (int)floor(16.0 * log2((double)ms / 1000.0));
    if (k < 1)
        k = 1;
    if (k > DWELL_BUCKETS - 1)
        k = DWELL_BUCKETS - 1;
    /* The bounds are what decides; the logarithm only finds the place. */
    while (k > 1 && ms < dwell_bucket_lo(k))
        k--;
    while (k < DWELL_BUCKETS - 1 && ms >= dwell_bucket_lo(k + 1))
        k++;
    return k;
}

int64_t dwell_value(int k)
{
    if (k <= 0)
        return 0;
    /* Bucket k holds [lo, hi]; 2*lo*hi/(lo+hi) is off by at most
     * (hi-lo)/(hi+lo) relative to any value of the bucket. */
    double lo = (double)dwell_bucket_lo(k);
    double hi = (double)dwell_bucket_lo(k + 1) - 1;
    if (k == DWELL_BUCKETS - 1 || hi < lo)
        return (int64_t)lo;
    return (int64_t)llround(2.0 * lo * hi / (lo + hi));
}

int64_t dwell_quantile(const uint64_t *counts, double q)
{
    uint64_t n = 0;
    for (int k = 0; k < DWELL_BUCKETS; k++)
        n += counts[k];
    if (n == 0)
        return -1;
    uint64_t rank = (uint64_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    uint64_t cum = 0;
    for (int k = 0; k < DWELL_BUCKETS; k++) {
        cum += counts[k];
        if (cum >= rank)
            return dwell_value(k);
    }
    return dwell_value(DWELL_BUCKETS - 1);
}
