/* fnv.h: the FNV-1a hash (Fowler, Noll, Vo), 32 and 64 bits.
 *
 * funneld's one implementation of it. Some values are on disk or on the
 * wire and must never change: a definition's hash is FNV-1a 64 of the
 * file's bytes, funnelctl's default event ids are FNV-1a 64 of the line.
 * The 32-bit form keys the in-memory counter tables. Static inline: the
 * counter keys of every event are hashed on the hot path.
 *
 * Pure, thread-safe.
 */
#ifndef FUNNEL_FNV_H
#define FUNNEL_FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV32_BASIS UINT32_C(2166136261)
#define FNV32_PRIME UINT32_C(16777619)
#define FNV64_BASIS UINT64_C(0xcbf29ce484222325)
#define FNV64_PRIME UINT64_C(0x100000001b3)

/* FNV-1a 32 of len bytes at data. */
static inline uint32_t fnv1a32(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t h = FNV32_BASIS;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV32_PRIME;
    return h;
}

/* FNV-1a 32 of the string s, read up to its NUL or max bytes, whichever
 * comes first; *len_out (may be NULL) gets the number of bytes hashed. One
 * pass: callers that copy the key afterwards learn its length here. */
static inline uint32_t fnv1a32_strn(const char *s, size_t max, size_t *len_out)
{
    uint32_t h = FNV32_BASIS;
    size_t n = 0;
    for (; n < max && s[n]; n++)
        h = (h ^ (unsigned char)s[n]) * FNV32_PRIME;
    if (len_out)
        *len_out = n;
    return h;
}

/* FNV-1a 32 continued from h (the hash of what came before: FNV32_BASIS
 * for nothing) over len more bytes at data: the hash of a prefix is
 * computed once for every key built on it. */
static inline uint32_t fnv1a32_more(uint32_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV32_PRIME;
    return h;
}

/* FNV-1a 32 of the NUL-terminated string s. */
static inline uint32_t fnv1a32_str(const char *s)
{
    return fnv1a32_strn(s, SIZE_MAX, NULL);
}

/* FNV-1a 64 of len bytes at data. */
static inline uint64_t fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = FNV64_BASIS;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV64_PRIME;
    return h;
}

#endif
