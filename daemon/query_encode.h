/* query_encode.h: the funnel and friction reports (handlers/report.h) as
 * protobuf replies, for the query server (query.c).
 *
 * A reply built here points into the report it was built from (strings)
 * and into the arena it was built in (messages, arrays): both must outlive
 * the packing of the reply. Used by the query thread only; out of memory
 * aborts (xalloc.h).
 */
#ifndef FUNNELD_QUERY_ENCODE_H
#define FUNNELD_QUERY_ENCODE_H

#include <stddef.h>

#include "funnel.pb-c.h"
#include "report.h"

/* Everything a reply points to, freed at once after it is sent. Zero it
 * to start. */
typedef struct {
    void **ptrs;
    size_t n, cap;
} query_encode_arena_t;

void query_encode_arena_free(query_encode_arena_t *a);

/* FunnelReply for r (its groups, by and persona included). */
Funnel__V1__FunnelReply *query_encode_funnel(const report_funnel_t *r,
                                             query_encode_arena_t *a);

/* FrictionReply for r (its groups and leads included). */
Funnel__V1__FrictionReply *query_encode_friction(const report_friction_t *r,
                                                 query_encode_arena_t *a);

#endif
