/* htab.h: funneld's open-addressing hash index.
 *
 * The index maps a key to the position of its entry in an array the
 * caller owns (entries keep their own keys, in their own layout): slot i
 * holds the entry's index + 1, 0 is an empty slot. Probing is linear from
 * hash & (cap - 1); cap is a power of two and callers keep the load below
 * one (htab_cap_for() gives at most 1/2), so a probe always ends on an
 * empty slot. Entries are never removed one by one: a table is cleared or
 * rebuilt whole.
 *
 * The probe is static inline so that the equality callback, a static
 * function of the caller, inlines with it (counter keys are looked up
 * dozens of times per event). Slots may live in the caller's own storage
 * (htab_probe() on a fixed array, of uint8_t for at most 255 entries) or
 * in an htab_t of uint32_t slots that the functions below allocate.
 *
 * Not thread-safe: one owner per table.
 */
#ifndef FUNNEL_HTAB_H
#define FUNNEL_HTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether entry `index` has key `key` (both as the caller defines them). */
typedef bool htab_eq_fn(const void *ctx, uint32_t index, const void *key);
/* The hash of entry `index`'s key (for a rebuild). */
typedef uint32_t htab_hash_fn(const void *ctx, uint32_t index);

typedef struct {
    uint32_t *slot;     /* cap slots: entry index + 1, 0 empty */
    size_t cap;         /* a power of two; 0: nothing allocated yet */
} htab_t;

/* Look key up in slots[cap], an array of unsigned integers `width` bytes
 * wide (1 or 4: a small table embedded in a struct may use uint8_t
 * slots). Returns its entry's index + 1, or 0 when it is absent; *at (may
 * be NULL) gets the position of its slot, or of the empty slot where it
 * belongs, to be set to index + 1 when the caller adds it. cap must be a
 * power of two with an empty slot left. */
static inline uint32_t htab_probe(const void *slots, size_t width, size_t cap,
                                  uint32_t hash, htab_eq_fn *eq,
                                  const void *ctx, const void *key, size_t *at)
{
    size_t mask = cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        uint32_t s = width == 1 ? ((const uint8_t *)slots)[i]
                                : ((const uint32_t *)slots)[i];
        if (s == 0 || eq(ctx, s - 1, key)) {
            if (at)
                *at = i;
            return s;
        }
    }
}

/* The slot of key in t (allocated): holding its entry's index + 1, or the
 * empty slot (0) where it belongs, as htab_probe(). */
static inline uint32_t *htab_slot(const htab_t *t, uint32_t hash,
                                  htab_eq_fn *eq, const void *ctx,
                                  const void *key)
{
    size_t at;
    htab_probe(t->slot, sizeof *t->slot, t->cap, hash, eq, ctx, key, &at);
    return &t->slot[at];
}

/* The smallest power of two at least 16 with room for n entries at a load
 * of at most 1/2. */
size_t htab_cap_for(size_t n);

/* Allocate cap empty slots (cap: a power of two), replacing t's. Aborts
 * when out of memory. */
void htab_init(htab_t *t, size_t cap);

/* Empty every slot (entries are the caller's). */
void htab_clear(htab_t *t);

/* Free the slots; t is empty (cap 0) afterwards. Accepts an empty t. */
void htab_free(htab_t *t);

/* Rebuild t with cap slots (a power of two above n) for the entries
 * 0 .. n-1, whose keys are distinct, hash_of(ctx, i) giving each hash:
 * after a growth, or after the caller reordered its entries. */
void htab_rebuild(htab_t *t, size_t cap, size_t n, htab_hash_fn *hash_of,
                  const void *ctx);

#endif
