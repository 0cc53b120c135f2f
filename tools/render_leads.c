/* render_leads.c: see render_leads.h. */
#include "render_leads.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "ndjson.h"
#include "render.h"
#include "timetext.h"

static const char *const s_names[RENDER_COL_N] = {
    [RENDER_COL_LEAD] = "lead",
    [RENDER_COL_STAGE] = "stage",
    [RENDER_COL_IN_STAGE] = "in_stage_ms",
    [RENDER_COL_PERSONA] = "persona",
    [RENDER_COL_FIT] = "fit",
    [RENDER_COL_ENGAGEMENT] = "engagement",
    [RENDER_COL_TOTAL] = "total",
    [RENDER_COL_HANDOFF] = "handoff",
    [RENDER_COL_SOURCE] = "first_source",
    [RENDER_COL_EVENTS] = "events",
    [RENDER_COL_LAST_EVENT] = "last_event_at",
    [RENDER_COL_STAGE_ENTERED] = "stage_entered_at",
    [RENDER_COL_FIRST_SEEN] = "first_seen",
    [RENDER_COL_QUALIFIED] = "qualified",
    [RENDER_COL_STALLED] = "stalled",
};

const char *render_col_name(render_col_t c)
{
    return c < RENDER_COL_N ? s_names[c] : "?";
}

void render_cols_default(render_cols_t *out)
{
    out->n = RENDER_COLS_DEFAULT;
    for (size_t i = 0; i < out->n; i++)
        out->col[i] = (render_col_t)i;
}

int render_cols_parse(const char *spec, render_cols_t *out, char *err, size_t errlen)
{
    out->n = 0;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int found = -1;
        for (int c = 0; c < RENDER_COL_N && found < 0; c++)
            if (strlen(s_names[c]) == len && memcmp(s_names[c], p, len) == 0)
                found = c;
        if (found < 0) {
            size_t off = (size_t)snprintf(err, errlen, "unknown column \"%.*s\" (the columns are: ",
                                          (int)(len > 64 ? 64 : len), p);
            for (int c = 0; c < RENDER_COL_N && off < errlen; c++)
                off += (size_t)snprintf(err + off, errlen - off, "%s%s", c ? ", " : "",
                                        s_names[c]);
            if (off < errlen)
                snprintf(err + off, errlen - off, ")");
            return -1;
        }
        for (size_t i = 0; i < out->n; i++)
            if (out->col[i] == (render_col_t)found) {
                snprintf(err, errlen, "column %s given twice", s_names[found]);
                return -1;
            }
        out->col[out->n++] = (render_col_t)found;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* -- values ------------------------------------------------------------- */

typedef enum { S_NULL, S_STR, S_TIME, S_DUR, S_REAL, S_UINT, S_BOOL } s_kind_t;

typedef struct {
    s_kind_t kind;
    const char *s;
    int64_t i;
    uint64_t u;
    double d;
    bool b;
} s_val_t;

static s_val_t s_value(render_col_t c, const Funnel__V1__LeadRow *r, int64_t as_of)
{
    s_val_t v = { .kind = S_NULL };
    switch (c) {
    case RENDER_COL_LEAD: v.kind = S_STR; v.s = r->id; break;
    case RENDER_COL_STAGE: v.kind = S_STR; v.s = r->stage; break;
    case RENDER_COL_IN_STAGE:
        if (r->stage_entered_at_ms) {
            v.kind = S_DUR;
            v.i = as_of > r->stage_entered_at_ms ? as_of - r->stage_entered_at_ms : 0;
        }
        break;
    case RENDER_COL_PERSONA:
        if (r->persona[0]) {
            v.kind = S_STR;
            v.s = r->persona;
        }
        break;
    case RENDER_COL_FIT: v.kind = S_REAL; v.d = r->fit; break;
    case RENDER_COL_ENGAGEMENT: v.kind = S_REAL; v.d = r->engagement; break;
    case RENDER_COL_TOTAL: v.kind = S_REAL; v.d = r->total; break;
    case RENDER_COL_HANDOFF:
        v.kind = S_STR;
        v.s = render_handoff_name(r->handoff_status);
        break;
    case RENDER_COL_SOURCE:
        v.s = render_source_name(r->first_source);
        v.kind = v.s ? S_STR : S_NULL;
        break;
    case RENDER_COL_EVENTS: v.kind = S_UINT; v.u = r->events; break;
    case RENDER_COL_LAST_EVENT: v.i = r->last_event_ms; v.kind = v.i ? S_TIME : S_NULL; break;
    case RENDER_COL_STAGE_ENTERED:
        v.i = r->stage_entered_at_ms;
        v.kind = v.i ? S_TIME : S_NULL;
        break;
    case RENDER_COL_FIRST_SEEN: v.i = r->first_seen_ms; v.kind = v.i ? S_TIME : S_NULL; break;
    case RENDER_COL_QUALIFIED: v.kind = S_BOOL; v.b = r->qualified; break;
    case RENDER_COL_STALLED: v.kind = S_BOOL; v.b = r->stalled; break;
    default: break;
    }
    return v;
}

/* A value as JSON text would write it, strings raw (for CSV) or for
 * people (for the table), into buf; returns the text (buf or a string
 * of the row). */
static const char *s_text(const s_val_t *v, bool human, char *buf, size_t cap)
{
    switch (v->kind) {
    case S_NULL: return human ? "-" : "";
    case S_STR: return v->s;
    case S_TIME:
        return human ? timetext_rfc3339(v->i, false, buf, cap) : ndjson_format_time(v->i, buf);
    case S_DUR:
        if (human)
            return timetext_duration(v->i, TIMETEXT_DUR_SHORT, buf, cap);
        snprintf(buf, cap, "%" PRId64, v->i);
        return buf;
    case S_REAL: snprintf(buf, cap, human ? "%.1f" : "%.15g", v->d); return buf;
    case S_UINT: snprintf(buf, cap, "%" PRIu64, v->u); return buf;
    case S_BOOL: return v->b ? (human ? "yes" : "true") : (human ? "no" : "false");
    }
    return "";
}

/* -- CSV ---------------------------------------------------------------- */

/* One field, quoted when it holds a comma, a quote, CR or LF (RFC 4180
 * section 2), its quotes doubled. */
static void s_csv_field(FILE *out, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, out);
        return;
    }
    putc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            putc('"', out);
        putc(*s, out);
    }
    putc('"', out);
}

void render_leads_csv_header(FILE *out, const render_cols_t *cols)
{
    for (size_t i = 0; i < cols->n; i++) {
        if (i)
            putc(',', out);
        fputs(s_names[cols->col[i]], out);
    }
    fputs("\r\n", out);
}

void render_lead_csv(FILE *out, const render_cols_t *cols, const Funnel__V1__LeadRow *row,
                     int64_t as_of_ms)
{
    char buf[TIMETEXT_RFC3339_LEN];
    for (size_t i = 0; i < cols->n; i++) {
        if (i)
            putc(',', out);
        s_val_t v = s_value(cols->col[i], row, as_of_ms);
        s_csv_field(out, s_text(&v, false, buf, sizeof buf));
    }
    fputs("\r\n", out);
}

/* -- JSON --------------------------------------------------------------- */

json_t *render_lead_row_json(const render_cols_t *cols, const Funnel__V1__LeadRow *row,
                             int64_t as_of_ms)
{
    json_t *o = json_object();
    for (size_t i = 0; i < cols->n; i++) {
        s_val_t v = s_value(cols->col[i], row, as_of_ms);
        json_t *j;
        switch (v.kind) {
        case S_STR: j = json_string(v.s); break;
        case S_TIME: j = render_time_json(v.i); break;
        case S_DUR: j = json_integer(v.i); break;
        case S_REAL: j = json_real(v.d); break;
        case S_UINT: j = json_integer((json_int_t)v.u); break;
        case S_BOOL: j = json_boolean(v.b); break;
        default: j = json_null(); break;
        }
        /* An id that is not UTF-8 cannot be a JSON string: null. */
        json_object_set_new(o, s_names[cols->col[i]], j ? j : json_null());
    }
    return o;
}

/* -- table -------------------------------------------------------------- */

static bool s_right(render_col_t c)
{
    return c == RENDER_COL_FIT || c == RENDER_COL_ENGAGEMENT || c == RENDER_COL_TOTAL ||
           c == RENDER_COL_EVENTS || c == RENDER_COL_IN_STAGE;
}

void render_leads_table_widths(const render_cols_t *cols, Funnel__V1__LeadRow *const *rows,
                               size_t n, int64_t as_of_ms, int *widths)
{
    char buf[TIMETEXT_RFC3339_LEN];
    for (size_t i = 0; i < cols->n; i++) {
        int w = (int)strlen(s_names[cols->col[i]]);
        for (size_t k = 0; k < n; k++) {
            s_val_t v = s_value(cols->col[i], rows[k], as_of_ms);
            int len = (int)strlen(s_text(&v, true, buf, sizeof buf));
            if (len > w)
                w = len;
        }
        widths[cols->col[i]] = w;
    }
}

/* A cell: padded to width; a control character (a line break in a lead
 * id) shows as '?', so that a row stays one line. */
static void s_cell(FILE *out, render_col_t c, const char *s, int width, bool last)
{
    char clean[512];
    if (strpbrk(s, "\n\r\t\v\f\x1b")) {
        size_t n = 0;
        for (; *s && n + 1 < sizeof clean; s++)
            clean[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
        clean[n] = '\0';
        s = clean;
    }
    if (s_right(c))
        fprintf(out, "%*s", width, s);
    else if (last)
        fputs(s, out);
    else
        fprintf(out, "%-*s", width, s);
}

void render_leads_table_header(FILE *out, const render_cols_t *cols, const int *widths)
{
    for (size_t i = 0; i < cols->n; i++) {
        if (i)
            fputs("  ", out);
        s_cell(out, cols->col[i], s_names[cols->col[i]], widths[cols->col[i]],
               i + 1 == cols->n);
    }
    putc('\n', out);
}

void render_lead_table(FILE *out, const render_cols_t *cols, const int *widths,
                       const Funnel__V1__LeadRow *row, int64_t as_of_ms)
{
    char buf[TIMETEXT_RFC3339_LEN];
    for (size_t i = 0; i < cols->n; i++) {
        if (i)
            fputs("  ", out);
        s_val_t v = s_value(cols->col[i], row, as_of_ms);
        s_cell(out, cols->col[i], s_text(&v, true, buf, sizeof buf), widths[cols->col[i]],
               i + 1 == cols->n);
    }
    putc('\n', out);
}
