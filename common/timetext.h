/* timetext.h: times and durations as text, both ways.
 *
 * funneld's times are milliseconds since the Unix epoch (UTC), its
 * durations milliseconds. This module is the one place that writes and
 * reads them as text:
 *
 *   RFC 3339        "2026-11-26T10:00:00Z", "2026-11-26T10:00:00.000Z"
 *   ISO weeks       "2026-W48" (the cohort of a lead)
 *   durations       "30d", "1h30m", "90s", "500ms", "15d 2h", "1.5d"
 *
 * Calendar arithmetic is libc's (gmtime_r, timegm, strftime's %G-W%V);
 * times before 1970 are floored like any other (-1 ms is 23:59:59.999 of
 * 1969-12-31).
 *
 * Pure and thread-safe.
 */
#ifndef FUNNEL_TIMETEXT_H
#define FUNNEL_TIMETEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIMETEXT_DAY_MS INT64_C(86400000)

/* Room for any RFC 3339 text of this module, NUL included (any year an
 * int64_t of milliseconds can reach). */
#define TIMETEXT_RFC3339_LEN 64
/* Room for an ISO week, "2026-W48", NUL included. */
#define TIMETEXT_WEEK_LEN 12

/* Whole days since 1970-01-01 of ms, rounded down. */
static inline int64_t timetext_days_of_ms(int64_t ms)
{
    return ms >= 0 ? ms / TIMETEXT_DAY_MS
                   : -((-(ms + 1)) / TIMETEXT_DAY_MS) - 1;
}

/* ms as an RFC 3339 UTC date and time, to the second
 * ("2026-11-26T10:00:00Z") or with milliseconds ("...:00.000Z"), written
 * to out[size] (TIMETEXT_RFC3339_LEN always suffices). Returns out. */
char *timetext_rfc3339(int64_t ms, bool millis, char *out, size_t size);

/* Parse an RFC 3339 date-time, "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)"
 * ('t', 'z' and a space for 'T' accepted; fractional seconds beyond
 * milliseconds are truncated; second 60, a leap second, counts as the next
 * second) into ms since the epoch. Returns 0, or -1 with a reason in
 * err[errlen] ("expected 'T' at offset 10", "month 13 out of range", ...). */
int timetext_parse_rfc3339(const char *s, int64_t *ms_out, char *err,
                           size_t errlen);

/* The ISO 8601 week of ms, "2026-W48", into out[TIMETEXT_WEEK_LEN].
 * Returns out. The last answer is remembered per thread (asked once per
 * cohort counter, mostly about the same day). */
char *timetext_iso_week(int64_t ms, char *out);

/* What timetext_parse_duration() found. */
typedef enum {
    TIMETEXT_DUR_OK = 0,
    TIMETEXT_DUR_BAD = -1,      /* not a duration */
    TIMETEXT_DUR_NEGATIVE = -2, /* well-formed but negative */
    TIMETEXT_DUR_RANGE = -3,    /* larger than the caller's max */
} timetext_dur_rc_t;

/* Parse a duration: whole milliseconds ("1500"), or one or more
 * <number><unit> parts with units ms, s, m, h, d, w ("30d", "1h30m").
 * Writes *out only on TIMETEXT_DUR_OK; max bounds the result. */
timetext_dur_rc_t timetext_parse_duration(const char *s, int64_t max,
                                          int64_t *out);

/* How timetext_duration() writes a duration. */
typedef enum {
    /* For people, at most two units: "15d 2h", "3h 20m", "45s", "250ms"
     * (negative: 0). */
    TIMETEXT_DUR_SHORT,
    /* One unit, exactly, readable by timetext_parse_duration(): "2w",
     * "30d", "90m", "1500ms". */
    TIMETEXT_DUR_EXACT,
    /* Every unit down to the millisecond: "1d 2h 3m 4.567s", "12 ms"
     * (negative: 0). */
    TIMETEXT_DUR_CLOCK,
    /* The largest unit with one decimal: "1.5d", "2.0h", "45.0s"
     * (negative: "-", the way tables show no value). */
    TIMETEXT_DUR_DECIMAL,
} timetext_dur_style_t;

/* ms as text in style, into buf[size] (32 bytes always suffice). Returns
 * buf. */
char *timetext_duration(int64_t ms, timetext_dur_style_t style, char *buf,
                        size_t size);

#endif
