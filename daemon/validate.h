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

/* Why an event is refused, by kind (for metrics). */
typedef enum {
    VALIDATE_MISSING,      /* a required field is empty */
    VALIDATE_TOO_LONG,     /* a string beyond its limit */
    VALIDATE_UTF8,         /* a string that is not UTF-8 */
    VALIDATE_RESERVED,     /* an id or type beginning with $ */
    VALIDATE_SOURCE,       /* no or an unknown source */
    VALIDATE_TIME,         /* before 2000-01-01 or too far ahead */
    VALIDATE_VALUE,        /* a value that is not a finite number */
    VALIDATE_ATTRS,        /* too many attributes */
    VALIDATE_WHY_N
} validate_why_t;

/* validate_event, also saying why (*why set only when refused). */
const char *validate_event_why(const Funnel__V1__Event *ev, int64_t now_ms,
                               const validate_limits_t *lim, char *buf,
                               size_t buflen, validate_why_t *why);

/* The kind's name ("missing_field", "too_long", ...): a static string. */
const char *validate_why_name(validate_why_t why);

/* Whether s is valid UTF-8 (no overlong forms, no surrogates) without NUL
 * bytes, of at most max bytes. */
bool validate_utf8(const char *s, size_t max);

#endif
