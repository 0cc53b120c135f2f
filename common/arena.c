/* arena.c: see arena.h. */
#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

#define S_DEFAULT_CAP 4096

typedef struct s_block {
    struct s_block *next;           /* the block before this one */
    size_t cap;
    size_t used;
    _Alignas(max_align_t) unsigned char mem[];
} s_block_t;

struct arena {
    s_block_t *head;                /* newest block; the first is last */
};

static s_block_t *s_block(s_block_t *next, size_t cap)
{
    if (cap > SIZE_MAX - sizeof(s_block_t)) {
        fprintf(stderr, "arena: block of %zu bytes\n", cap);
        abort();
    }
    s_block_t *b = xmalloc(sizeof *b + cap);
    b->next = next;
    b->cap = cap;
    b->used = 0;
    return b;
}

arena_t *arena_new(size_t first_cap)
{
    arena_t *a = xmalloc(sizeof *a);
    a->head = s_block(NULL, first_cap ? first_cap : S_DEFAULT_CAP);
    return a;
}

void arena_destroy(arena_t **a_p)
{
    if (a_p == NULL || *a_p == NULL)
        return;
    for (s_block_t *b = (*a_p)->head; b;) {
        s_block_t *next = b->next;
        free(b);
        b = next;
    }
    free(*a_p);
    *a_p = NULL;
}

void arena_reset(arena_t *a)
{
    while (a->head->next) {
        s_block_t *next = a->head->next;
        free(a->head);
        a->head = next;
    }
    a->head->used = 0;
}

void *arena_alloc(arena_t *a, size_t size)
{
    const size_t align = _Alignof(max_align_t);
    s_block_t *b = a->head;
    size_t at = (b->used + align - 1) & ~(align - 1);
    if (at > b->cap || size > b->cap - at) {
        /* Twice the last block: a hostile batch of empty events decodes
         * to many times its size, in few blocks all the same. */
        size_t cap = b->cap > SIZE_MAX / 2 ? SIZE_MAX / 2 : 2 * b->cap;
        b = a->head = s_block(b, size > cap ? size : cap);
        at = 0;
    }
    b->used = at + size;
    return b->mem + at;
}

void *arena_calloc(arena_t *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        fprintf(stderr, "arena: %zu times %zu bytes overflows\n", n, size);
        abort();
    }
    void *p = arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

char *arena_strdup(arena_t *a, const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(arena_alloc(a, n), s, n);
}

char *arena_printf(arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static void *s_pb_alloc(void *data, size_t size)
{
    return arena_alloc(data, size);
}

static void s_pb_free(void *data, void *ptr)
{
    /* Freed with the arena. */
}

ProtobufCAllocator arena_pb_allocator(arena_t *a)
{
    return (ProtobufCAllocator){
        .alloc = s_pb_alloc, .free = s_pb_free, .allocator_data = a};
}
