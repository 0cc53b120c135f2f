/* ndjson: funnelctl's NDJSON event format (SPEC section 6), RFC 3339 times and
 * default event ids.
 *
 * One line is one JSON object:
 *
 *   {"id":"e-1","lead":"L-1001","source":"marketing","type":"form_submit",
 *    "at":"2026-11-26T10:00:00Z","attrs":{"industry":"retail"},"value":0}
 *
 *   lead, source, type  required strings; source is "marketing" or "sales";
 *   id                  optional; default ndjson_line_id() of the line's bytes,
 *                       so that republishing a file is idempotent;
 *   at                  optional; RFC 3339 string or epoch milliseconds (a JSON
 *                       integer, or a string of digits); default: now;
 *   attrs               optional object; string values, numbers and booleans
 *                       are accepted and stringified;
 *   value               optional number;
 *   publisher, seq      optional (a publisher's name and sequence number).
 *
 * Unknown keys are ignored, so that newer files still load. A JSON null is
 * the same as an absent optional field.
 *
 * Everything here is pure (no I/O, no clock: "now" is a parameter), so it
 * is unit-tested on its own (tests/unit/test_ndjson.c). Thread-safe.
 */
#ifndef FUNNELCTL_NDJSON_H
#define FUNNELCTL_NDJSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "funnel.pb-c.h"

/* Longest line ndjson_parse_line() accepts, in bytes (without the newline). */
#define NDJSON_MAX_LINE (1024 * 1024)

/* Field limits of funnel.proto (bytes). */
#define NDJSON_MAX_ID   128
#define NDJSON_MAX_LEAD 128
#define NDJSON_MAX_TYPE 64

/* Room for an error message from this module, NUL included. */
#define NDJSON_ERR_MAX 256

/* Room for ndjson_line_id(): "h-" + 16 hex digits + NUL. */
#define NDJSON_LINE_ID_LEN 19

/* Room for ndjson_format_time(): "2026-11-26T10:00:00.000Z" + NUL, with
 * room for any year an int64_t of milliseconds can hold. */
#define NDJSON_TIME_LEN 64

/* Parse one line of NDJSON (len bytes, without its '\n'; a trailing '\r' is
 * ignored) into a new event. now_ms is the event time given to events
 * without "at".
 *
 * Returns 1 and sets *ev_out (caller owns it, free with ndjson_event_free())
 * on success; 0 for an empty or whitespace-only line, which callers skip
 * silently (*ev_out NULL); -1 on a bad line, with a one-line reason in
 * err[NDJSON_ERR_MAX] (e.g. "missing field \"lead\""), *ev_out NULL. */
int ndjson_parse_line(const char *line, size_t len, int64_t now_ms,
                      Funnel__V1__Event **ev_out, char *err);

/* Build an event from an already decoded JSON object with the same rules as
 * ndjson_parse_line(). default_id is used when the object has no "id"
 * (borrowed; must not be NULL when "id" may be absent).
 * Returns a new event (caller owns it, free with ndjson_event_free()), or
 * NULL with a reason in err[NDJSON_ERR_MAX]. obj stays the caller's. */
Funnel__V1__Event *ndjson_event_from_json(const json_t *obj, const char *default_id,
                                          int64_t now_ms, char *err);

/* Free an event made by this module (and only those: strings and entries
 * are plain malloc'd). Accepts NULL and sets *ev_p NULL. */
void ndjson_event_destroy(Funnel__V1__Event **ev_p);
/* Same, for callers that hold a plain pointer. Accepts NULL. */
void ndjson_event_free(Funnel__V1__Event *ev);

/* Default event id of a line: "h-" followed by the 16 lowercase hex digits
 * of the FNV-1a 64-bit hash (fnv.h) of the line's bytes (a trailing '\r' and
 * surrounding whitespace excluded, so a CRLF copy of a file hashes alike).
 * Writes NDJSON_LINE_ID_LEN bytes (NUL included) to out. */
void ndjson_line_id(const char *line, size_t len, char *out);

/* Parse an RFC 3339 date-time: "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)"
 * ('t', 'z' and a space for 'T' accepted; fractional seconds beyond
 * milliseconds are truncated) into ms since the Unix epoch (UTC).
 * Returns 0, or -1 with a reason in err[NDJSON_ERR_MAX] ("expected 'T' at
 * offset 10", "month 13 out of range", ...). Times before 1970 are refused:
 * funneld's event time is unsigned in practice and 0 means "now". */
int ndjson_parse_time(const char *s, int64_t *ms_out, char *err);

/* Parse a time given on the command line or in a file: RFC 3339, or a
 * string of digits meaning epoch milliseconds. Same returns as
 * ndjson_parse_time(); err reads "bad time \"...\": reason". */
int ndjson_parse_time_arg(const char *s, int64_t *ms_out, char *err);

/* Format ms since the epoch as RFC 3339 UTC with milliseconds,
 * "2026-11-26T10:00:00.000Z", into buf[NDJSON_TIME_LEN]. Returns buf. */
char *ndjson_format_time(int64_t ms, char *buf);

#endif
