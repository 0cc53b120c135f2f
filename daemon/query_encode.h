/* query_encode.h: the funnel and friction reports (handlers/report.h) as
 * protobuf replies, for the query server (query.c).
 *
 * A reply built here points into the report it was built from (strings)
 * and into the arena it was built in (messages, arrays): both must outlive
 * the packing of the reply (an arena per reply, common/arena.h). Used by
 * the query thread only; out of memory aborts.
 */
#ifndef FUNNELD_QUERY_ENCODE_H
#define FUNNELD_QUERY_ENCODE_H

#include <stddef.h>

#include "arena.h"
#include "funnel.pb-c.h"
#include "report.h"

/* FunnelReply for r (its groups, by and persona included). */
Funnel__V1__FunnelReply *query_encode_funnel(const report_funnel_t *r,
                                             arena_t *a);

/* FrictionReply for r (its groups and leads included). */
Funnel__V1__FrictionReply *query_encode_friction(const report_friction_t *r,
                                                 arena_t *a);

/* QualityReply for r (its groups included; definition left empty). */
Funnel__V1__QualityReply *query_quality_encode(const report_quality_t *r, arena_t *a);

#endif
