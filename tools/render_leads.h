/* render_leads: the rows of a leads listing (funnel.v1.LeadRow) as CSV,
 * JSON documents and a text table, one column set for all three.
 *
 * Columns (their names are the CSV header, the JSON keys and what
 * --columns takes): lead, stage, in_stage_ms (as_of - stage_entered_at),
 * persona, fit, engagement, total, handoff, first_source, events,
 * last_event_at, and also stage_entered_at, first_seen, qualified,
 * stalled. Values follow render.h's JSON conventions (times RFC 3339 UTC
 * with milliseconds, null when 0; persona and first_source null when
 * none); CSV writes the JSON value as text (null as an empty field,
 * strings unquoted unless RFC 4180 wants quotes); the table writes them
 * for people ("3d 4h", "2026-11-26T10:00:00Z", "-" for none, scores with
 * one decimal).
 *
 * Pure: no sockets, no clock. Output goes to the FILE given.
 */
#ifndef FUNNELCTL_RENDER_LEADS_H
#define FUNNELCTL_RENDER_LEADS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "funnel.pb-c.h"

typedef enum {
    RENDER_COL_LEAD,
    RENDER_COL_STAGE,
    RENDER_COL_IN_STAGE,
    RENDER_COL_PERSONA,
    RENDER_COL_FIT,
    RENDER_COL_ENGAGEMENT,
    RENDER_COL_TOTAL,
    RENDER_COL_HANDOFF,
    RENDER_COL_SOURCE,
    RENDER_COL_EVENTS,
    RENDER_COL_LAST_EVENT,
    RENDER_COL_STAGE_ENTERED,
    RENDER_COL_FIRST_SEEN,
    RENDER_COL_QUALIFIED,
    RENDER_COL_STALLED,
    RENDER_COL_N
} render_col_t;

/* The default columns: lead ... last_event_at. */
#define RENDER_COLS_DEFAULT 11

/* A column set. */
typedef struct {
    render_col_t col[RENDER_COL_N];
    size_t n;
} render_cols_t;

/* The default set. */
void render_cols_default(render_cols_t *out);

/* Parse "a,b,..." (names as above, each at most once). Returns 0, or -1
 * with a message naming the known columns in err[errlen]. */
int render_cols_parse(const char *spec, render_cols_t *out, char *err, size_t errlen);

/* Every column's name, "lead, stage, ...", for help texts. */
const char *render_col_name(render_col_t c);

/* CSV (RFC 4180, CRLF line ends): the header line, then one line per row.
 * as_of_ms is the time in_stage_ms is measured to (LeadsReply.as_of_ms). */
void render_leads_csv_header(FILE *out, const render_cols_t *cols);
void render_lead_csv(FILE *out, const render_cols_t *cols, const Funnel__V1__LeadRow *row,
                     int64_t as_of_ms);

/* One row as a JSON object with the columns' keys, in column order (new
 * reference). */
json_t *render_lead_row_json(const render_cols_t *cols, const Funnel__V1__LeadRow *row,
                             int64_t as_of_ms);

/* The table: widths[] (RENDER_COL_N entries) are set from rows by
 * render_leads_table_widths (at least the header's), then the header and
 * each row print padded to them (a longer value widens its line only). */
void render_leads_table_widths(const render_cols_t *cols, Funnel__V1__LeadRow *const *rows,
                               size_t n, int64_t as_of_ms, int *widths);
void render_leads_table_header(FILE *out, const render_cols_t *cols, const int *widths);
void render_lead_table(FILE *out, const render_cols_t *cols, const int *widths,
                       const Funnel__V1__LeadRow *row, int64_t as_of_ms);

#endif
