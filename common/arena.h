/* arena.h: funneld's arena allocator.
 *
 * Memory for things that die together (a decoded batch, a decoded lead, a
 * report's reply) comes from an arena and is freed with it in one go,
 * instead of one malloc and free per object. An arena is a chain of
 * blocks: allocation bumps a pointer in the newest block, and a request
 * that does not fit starts a block twice the size of the last (or the
 * request's size, if larger). arena_reset() keeps the first block for
 * reuse, so an arena recycled per event allocates nothing once warm.
 *
 * Usable as a protobuf-c allocator (arena_pb_allocator()): the decoded
 * message is then freed with the arena, never with *_free_unpacked().
 *
 * Out of memory aborts (xalloc.h). Not thread-safe: one owner per arena.
 */
#ifndef FUNNEL_ARENA_H
#define FUNNEL_ARENA_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

typedef struct arena arena_t;

/* A new arena whose first block holds first_cap bytes (0: a small
 * default). Caller owns it: arena_destroy(). */
arena_t *arena_new(size_t first_cap);

/* Free every block and the arena. Accepts NULL and sets *a_p NULL. */
void arena_destroy(arena_t **a_p);

/* Forget everything allocated: later allocations reuse the first block;
 * the others are freed. Pointers into the arena become invalid. */
void arena_reset(arena_t *a);

/* size bytes aligned for any type (max_align_t); never NULL. */
void *arena_alloc(arena_t *a, size_t size);

/* n * size zeroed bytes; never NULL (aborts when n * size overflows). */
void *arena_calloc(arena_t *a, size_t n, size_t size);

/* A copy of the string s, or a printf-formatted string, in the arena. */
char *arena_strdup(arena_t *a, const char *s);
char *arena_printf(arena_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A protobuf-c allocator over a: pass its address to *_unpack(). Its free
 * does nothing; the memory goes with the arena. a stays the caller's. */
ProtobufCAllocator arena_pb_allocator(arena_t *a);

#endif
