/* htab.c: see htab.h. */
#include "htab.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

size_t htab_cap_for(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

void htab_init(htab_t *t, size_t cap)
{
    free(t->slot);
    t->slot = xcalloc(cap, sizeof *t->slot);
    t->cap = cap;
}

void htab_clear(htab_t *t)
{
    if (t->slot)
        memset(t->slot, 0, t->cap * sizeof *t->slot);
}

void htab_free(htab_t *t)
{
    free(t->slot);
    t->slot = NULL;
    t->cap = 0;
}

void htab_rebuild(htab_t *t, size_t cap, size_t n, htab_hash_fn *hash_of,
                  const void *ctx)
{
    if (cap != t->cap)
        htab_init(t, cap);
    else
        htab_clear(t);
    size_t mask = cap - 1;
    for (size_t e = 0; e < n; e++) {
        size_t i = hash_of(ctx, (uint32_t)e) & mask;
        while (t->slot[i])
            i = (i + 1) & mask;
        t->slot[i] = (uint32_t)e + 1;
    }
}
