/* leadrows: the rows of a leads listing (funnel.v1.LeadRow) as CSV, JSON
 * documents and a text table, one column set for all three: what
 * `funnelctl leads` prints and funneld's /api/leads answers, written in
 * one place so that both say the same.
 *
 * Columns (their names are the CSV header, the JSON keys and what
 * --columns takes): lead, stage, in_stage_ms (as_of - stage_entered_at),
 * persona, fit, engagement, total, handoff, first_source, events,
 * last_event_at, and also stage_entered_at, first_seen, qualified,
 * stalled. Values follow funnelctl's JSON conventions (times RFC 3339 UTC
 * with milliseconds, null when 0; persona and first_source null when
 * none; handoff "none", "pending", "accepted", "rejected"); CSV writes the JSON value as text (null as an empty field,
 * strings unquoted unless RFC 4180 wants quotes, scores with at most 6
 * decimals); the table writes them
 * for people ("3d 4h", "2026-11-26T10:00:00Z", "-" for none, scores with
 * one decimal).
 *
 * Pure: no sockets, no clock; any thread. Output goes to the FILE given.
 * (A library of its own, funnel_leadrows, as it needs jansson and the
 * protocol, which the rest of common/ does not.)
 */
#ifndef FUNNEL_LEADROWS_H
#define FUNNEL_LEADROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "funnel.pb-c.h"

typedef enum {
    LEADROWS_COL_LEAD,
    LEADROWS_COL_STAGE,
    LEADROWS_COL_IN_STAGE,
    LEADROWS_COL_PERSONA,
    LEADROWS_COL_FIT,
    LEADROWS_COL_ENGAGEMENT,
    LEADROWS_COL_TOTAL,
    LEADROWS_COL_HANDOFF,
    LEADROWS_COL_SOURCE,
    LEADROWS_COL_EVENTS,
    LEADROWS_COL_LAST_EVENT,
    LEADROWS_COL_STAGE_ENTERED,
    LEADROWS_COL_FIRST_SEEN,
    LEADROWS_COL_QUALIFIED,
    LEADROWS_COL_STALLED,
    LEADROWS_COL_N
} leadrows_col_t;

/* The default columns: lead ... last_event_at. */
#define LEADROWS_COLS_DEFAULT 11

/* A column set. */
typedef struct {
    leadrows_col_t col[LEADROWS_COL_N];
    size_t n;
} leadrows_cols_t;

/* The default set. */
void leadrows_cols_default(leadrows_cols_t *out);

/* Parse "a,b,..." (names as above, each at most once). Returns 0, or -1
 * with a message naming the known columns in err[errlen]. */
int leadrows_cols_parse(const char *spec, leadrows_cols_t *out, char *err, size_t errlen);

/* Every column's name, "lead, stage, ...", for help texts. */
const char *leadrows_col_name(leadrows_col_t c);

/* CSV (RFC 4180, CRLF line ends): the header line, then one line per row.
 * as_of_ms is the time in_stage_ms is measured to (LeadsReply.as_of_ms). */
void leadrows_csv_header(FILE *out, const leadrows_cols_t *cols);
void leadrows_csv(FILE *out, const leadrows_cols_t *cols, const Funnel__V1__LeadRow *row,
                     int64_t as_of_ms);

/* One row as a JSON object with the columns' keys, in column order (new
 * reference). */
json_t *leadrows_json(const leadrows_cols_t *cols, const Funnel__V1__LeadRow *row,
                             int64_t as_of_ms);

/* The table: widths[] (LEADROWS_COL_N entries) are set from rows by
 * leadrows_table_widths (at least the header's), then the header and
 * each row print padded to them (a longer value widens its line only). */
void leadrows_table_widths(const leadrows_cols_t *cols, Funnel__V1__LeadRow *const *rows,
                               size_t n, int64_t as_of_ms, int *widths);
void leadrows_table_header(FILE *out, const leadrows_cols_t *cols, const int *widths);
void leadrows_table(FILE *out, const leadrows_cols_t *cols, const int *widths,
                       const Funnel__V1__LeadRow *row, int64_t as_of_ms);

/* The document of --format json and /api/leads, written as it goes:
 * begin ({"as_of": TIME, "leads": [), one item per row (first: the first
 * row), end with the number of rows written (]}). */
void leadrows_json_begin(FILE *out, int64_t as_of_ms);
void leadrows_json_item(FILE *out, const leadrows_cols_t *cols, const Funnel__V1__LeadRow *row,
                        int64_t as_of_ms, bool first);
void leadrows_json_end(FILE *out, size_t n);

/* The value of the enum d whose name is prefix + name in upper case
 * ("HANDOFF_" + "pending"), or -1. */
int leadrows_enum_value(const ProtobufCEnumDescriptor *d, const char *prefix, const char *name);

/* A "since" of a listing: RFC 3339, epoch milliseconds (digits), or a
 * duration back from funneld's time ("7d", "12h": *within_ms). Sets one
 * of *since_ms and *within_ms (the other untouched). Returns 0, or -1
 * with the reason in err[errlen]. */
int leadrows_parse_since(const char *s, int64_t *since_ms, int64_t *within_ms, char *err,
                         size_t errlen);

/* "none", "pending", ... (the enum's name in lower case); the source's
 * name, NULL when unspecified. */
const char *leadrows_handoff_name(Funnel__V1__HandoffStatus s);
const char *leadrows_source_name(Funnel__V1__Source s);

#endif
