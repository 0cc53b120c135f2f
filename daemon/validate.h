/* validate.h: what funneld accepts from the outside, checked once at the
 * door so that the handlers never re-check (SPEC section 7: bad input gets
 * a precise reason and loses nothing else). Pure: no I/O.
 */
#ifndef FUNNELD_VALIDATE_H
#define FUNNELD_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "funnel.pb-c.h"

typedef struct {
    int64_t min_at_ms;      /* earliest acceptable event time */
    int64_t max_future_ms;  /* how far past "now" an event time may be */
} validate_limits_t;

/* The default limits: events from 2000-01-01 on, up to one day ahead. */
extern const validate_limits_t validate_defaults;

/* Check one event received at daemon time now_ms. Returns NULL when it is
 * acceptable, else writes the reason into buf and returns buf. An event
 * time of 0 is acceptable (it means "now"). */
const char *validate_event(const Funnel__V1__Event *ev, int64_t now_ms,
                           const validate_limits_t *lim, char *buf,
                           size_t buflen);

/* Whether s is valid UTF-8 (no overlong forms, no surrogates) without NUL
 * bytes, of at most max bytes. */
bool validate_utf8(const char *s, size_t max);

#endif
