/* strcopy.h: a bounded string copy, for the hot path.
 *
 * What snprintf(dst, cap, "%s", src) writes (at most cap - 1 bytes of
 * src, always terminated), without printf's machinery: about 600
 * instructions a call there, a few dozen here. Static inline.
 *
 * Pure, thread-safe.
 */
#ifndef FUNNEL_STRCOPY_H
#define FUNNEL_STRCOPY_H

#include <stddef.h>
#include <string.h>

/* Copy src into dst (cap bytes, cap > 0), truncated to cap - 1 bytes and
 * terminated. Returns the bytes copied. */
static inline size_t strcopy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

#endif
