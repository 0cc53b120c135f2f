/* leadrows.c: see leadrows.h. */
#include "leadrows.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "timetext.h"

static const char *const s_names[LEADROWS_COL_N] = {
    [LEADROWS_COL_LEAD] = "lead",
    [LEADROWS_COL_STAGE] = "stage",
    [LEADROWS_COL_IN_STAGE] = "in_stage_ms",
    [LEADROWS_COL_PERSONA] = "persona",
    [LEADROWS_COL_FIT] = "fit",
    [LEADROWS_COL_ENGAGEMENT] = "engagement",
    [LEADROWS_COL_TOTAL] = "total",
    [LEADROWS_COL_HANDOFF] = "handoff",
    [LEADROWS_COL_SOURCE] = "first_source",
    [LEADROWS_COL_EVENTS] = "events",
    [LEADROWS_COL_LAST_EVENT] = "last_event_at",
    [LEADROWS_COL_STAGE_ENTERED] = "stage_entered_at",
    [LEADROWS_COL_FIRST_SEEN] = "first_seen",
    [LEADROWS_COL_QUALIFIED] = "qualified",
    [LEADROWS_COL_STALLED] = "stalled",
};

const char *leadrows_col_name(leadrows_col_t c)
{
    return c < LEADROWS_COL_N ? s_names[c] : "?";
}

void leadrows_cols_default(leadrows_cols_t *out)
{
    out->n = LEADROWS_COLS_DEFAULT;
    for (size_t i = 0; i < out->n; i++)
        out->col[i] = (leadrows_col_t)i;
}

int leadrows_cols_parse(const char *spec, leadrows_cols_t *out, char *err, size_t errlen)
{
    out->n = 0;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int found = -1;
        for (int c = 0; c < LEADROWS_COL_N && found < 0; c++)
            if (strlen(s_names[c]) == len && memcmp(s_names[c], p, len) == 0)
                found = c;
        if (found < 0) {
            size_t off = (size_t)snprintf(err, errlen, "unknown column \"%.*s\" (the columns are: ",
                                          (int)(len > 64 ? 64 : len), p);
            for (int c = 0; c < LEADROWS_COL_N && off < errlen; c++)
                off += (size_t)snprintf(err + off, errlen - off, "%s%s", c ? ", " : "",
                                        s_names[c]);
            if (off < errlen)
                snprintf(err + off, errlen - off, ")");
            return -1;
        }
        for (size_t i = 0; i < out->n; i++)
            if (out->col[i] == (leadrows_col_t)found) {
                snprintf(err, errlen, "column %s given twice", s_names[found]);
                return -1;
            }
        out->col[out->n++] = (leadrows_col_t)found;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* -- names ------------------------------------------------------------- */

/* An enum value's name as funnelctl and the HTTP API write it: the
 * proto's name without its prefix, in lower case (HANDOFF_PENDING ->
 * "pending"); NULL when the value has no name or is the _UNSPECIFIED
 * one. Names are built once per value, in a thread's own table. */
#define S_ENUM_NAMES 8
static const char *s_enum_name(const ProtobufCEnumDescriptor *d, int value, size_t skip,
                               char (*table)[32])
{
    if (value < 0 || value >= S_ENUM_NAMES)
        return NULL;
    if (table[value][0] == '\0') {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
        if (v == NULL || strlen(v->name) <= skip || strstr(v->name, "UNSPECIFIED"))
            return NULL;
        size_t n = 0;
        for (const char *p = v->name + skip; *p && n + 1 < 32; p++)
            table[value][n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        table[value][n] = '\0';
    }
    return table[value];
}

const char *leadrows_handoff_name(Funnel__V1__HandoffStatus s)
{
    static __thread char names[S_ENUM_NAMES][32];
    const char *n = s_enum_name(&funnel__v1__handoff_status__descriptor, (int)s,
                                strlen("HANDOFF_"), names);
    return n ? n : "none";
}

const char *leadrows_source_name(Funnel__V1__Source s)
{
    static __thread char names[S_ENUM_NAMES][32];
    return s_enum_name(&funnel__v1__source__descriptor, (int)s, strlen("SOURCE_"), names);
}

int leadrows_enum_value(const ProtobufCEnumDescriptor *d, const char *prefix, const char *name)
{
    char full[64];
    size_t np = strlen(prefix), nn = strlen(name);
    if (np + nn >= sizeof full)
        return -1;
    memcpy(full, prefix, np);
    memcpy(full + np, name, nn + 1);
    for (char *p = full; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(d, full);
    return v ? v->value : -1;
}

int leadrows_parse_since(const char *s, int64_t *since_ms, int64_t *within_ms, char *err,
                         size_t errlen)
{
    char why[128];
    int64_t v;
    if (strpbrk(s, "T-t ")) {
        if (timetext_parse_rfc3339(s, &v, why, sizeof why) == -1) {
            snprintf(err, errlen, "since \"%.64s\": %s", s, why);
            return -1;
        }
        *since_ms = v < 1 ? 1 : v;
        return 0;
    }
    if (s[0] && strspn(s, "0123456789") == strlen(s)) {
        errno = 0;
        long long ms = strtoll(s, NULL, 10);
        if (errno) {
            snprintf(err, errlen, "since \"%.64s\" is out of range", s);
            return -1;
        }
        *since_ms = ms < 1 ? 1 : ms;
        return 0;
    }
    if (timetext_parse_duration(s, INT64_MAX / 2, &v) != TIMETEXT_DUR_OK || v <= 0) {
        snprintf(err, errlen, "since wants an RFC 3339 time, epoch milliseconds or a "
                              "duration (7d, 12h), not \"%.64s\"", s);
        return -1;
    }
    *within_ms = v;
    return 0;
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

static s_val_t s_value(leadrows_col_t c, const Funnel__V1__LeadRow *r, int64_t as_of)
{
    s_val_t v = { .kind = S_NULL };
    switch (c) {
    case LEADROWS_COL_LEAD: v.kind = S_STR; v.s = r->id; break;
    case LEADROWS_COL_STAGE: v.kind = S_STR; v.s = r->stage; break;
    case LEADROWS_COL_IN_STAGE:
        if (r->stage_entered_at_ms) {
            v.kind = S_DUR;
            v.i = as_of > r->stage_entered_at_ms ? as_of - r->stage_entered_at_ms : 0;
        }
        break;
    case LEADROWS_COL_PERSONA:
        if (r->persona[0]) {
            v.kind = S_STR;
            v.s = r->persona;
        }
        break;
    case LEADROWS_COL_FIT: v.kind = S_REAL; v.d = r->fit; break;
    case LEADROWS_COL_ENGAGEMENT: v.kind = S_REAL; v.d = r->engagement; break;
    case LEADROWS_COL_TOTAL: v.kind = S_REAL; v.d = r->total; break;
    case LEADROWS_COL_HANDOFF:
        v.kind = S_STR;
        v.s = leadrows_handoff_name(r->handoff_status);
        break;
    case LEADROWS_COL_SOURCE:
        v.s = leadrows_source_name(r->first_source);
        v.kind = v.s ? S_STR : S_NULL;
        break;
    case LEADROWS_COL_EVENTS: v.kind = S_UINT; v.u = r->events; break;
    case LEADROWS_COL_LAST_EVENT: v.i = r->last_event_ms; v.kind = v.i ? S_TIME : S_NULL; break;
    case LEADROWS_COL_STAGE_ENTERED:
        v.i = r->stage_entered_at_ms;
        v.kind = v.i ? S_TIME : S_NULL;
        break;
    case LEADROWS_COL_FIRST_SEEN: v.i = r->first_seen_ms; v.kind = v.i ? S_TIME : S_NULL; break;
    case LEADROWS_COL_QUALIFIED: v.kind = S_BOOL; v.b = r->qualified; break;
    case LEADROWS_COL_STALLED: v.kind = S_BOOL; v.b = r->stalled; break;
    default: break;
    }
    return v;
}

/* An unsigned integer in decimal at p; returns the end. */
static char *s_utoa(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    *p = '\0';
    return p;
}

/* A score for CSV: at most 6 decimals, trailing zeros dropped ("25",
 * "24.999999", "-3.5"); printf("%.15g") where that cannot hold it. printf's
 * floating point is most of a CSV export's time, and 6 decimals are more
 * than a score means. */
static char *s_score_csv(double d, char *buf, size_t cap)
{
    double a = d < 0 ? -d : d;
    if (!(a < 1e12)) {
        snprintf(buf, cap, "%.15g", d);
        return buf;
    }
    uint64_t scaled = (uint64_t)(a * 1e6 + 0.5);
    uint64_t ip = scaled / 1000000, fp = scaled % 1000000;
    char *p = buf;
    if (d < 0 && scaled)
        *p++ = '-';
    p = s_utoa(p, ip);
    if (fp) {
        char frac[7];
        for (int i = 5; i >= 0; i--) {
            frac[i] = (char)('0' + fp % 10);
            fp /= 10;
        }
        int n = 6;
        while (frac[n - 1] == '0')
            n--;
        *p++ = '.';
        memcpy(p, frac, (size_t)n);
        p[n] = '\0';
    }
    return buf;
}

/* RFC 3339 with milliseconds; the text of the last second is kept (a
 * listing's times cluster), so most rows cost a few digits. */
static char *s_time_csv(int64_t ms, char *buf, size_t cap)
{
    static __thread int64_t last_s = INT64_MIN;
    static __thread char last[TIMETEXT_RFC3339_LEN];
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int milli = (int)(ms - sec * 1000);
    if (sec != last_s) {
        timetext_rfc3339(sec * 1000, false, last, sizeof last);
        size_t n = strlen(last);
        if (n > 0 && last[n - 1] == 'Z')
            last[n - 1] = '\0';
        last_s = sec;
    }
    snprintf(buf, cap, "%s.%03dZ", last, milli);
    return buf;
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
        return human ? timetext_rfc3339(v->i, false, buf, cap) : s_time_csv(v->i, buf, cap);
    case S_DUR:
        if (human)
            return timetext_duration(v->i, TIMETEXT_DUR_SHORT, buf, cap);
        if (v->i < 0) {
            buf[0] = '-';
            s_utoa(buf + 1, (uint64_t)-v->i);
        } else {
            s_utoa(buf, (uint64_t)v->i);
        }
        return buf;
    case S_REAL:
        if (human) {
            snprintf(buf, cap, "%.1f", v->d);
            return buf;
        }
        return s_score_csv(v->d, buf, cap);
    case S_UINT: s_utoa(buf, v->u); return buf;
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

void leadrows_csv_header(FILE *out, const leadrows_cols_t *cols)
{
    for (size_t i = 0; i < cols->n; i++) {
        if (i)
            putc(',', out);
        fputs(s_names[cols->col[i]], out);
    }
    fputs("\r\n", out);
}

void leadrows_csv(FILE *out, const leadrows_cols_t *cols, const Funnel__V1__LeadRow *row,
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

json_t *leadrows_json(const leadrows_cols_t *cols, const Funnel__V1__LeadRow *row,
                             int64_t as_of_ms)
{
    json_t *o = json_object();
    for (size_t i = 0; i < cols->n; i++) {
        s_val_t v = s_value(cols->col[i], row, as_of_ms);
        json_t *j;
        switch (v.kind) {
        case S_STR: j = json_string(v.s); break;
        case S_TIME: {
            char t[TIMETEXT_RFC3339_LEN];
            j = json_string(s_time_csv(v.i, t, sizeof t));
            break;
        }
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

static bool s_right(leadrows_col_t c)
{
    return c == LEADROWS_COL_FIT || c == LEADROWS_COL_ENGAGEMENT || c == LEADROWS_COL_TOTAL ||
           c == LEADROWS_COL_EVENTS || c == LEADROWS_COL_IN_STAGE;
}

void leadrows_table_widths(const leadrows_cols_t *cols, Funnel__V1__LeadRow *const *rows,
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
static void s_cell(FILE *out, leadrows_col_t c, const char *s, int width, bool last)
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

void leadrows_table_header(FILE *out, const leadrows_cols_t *cols, const int *widths)
{
    for (size_t i = 0; i < cols->n; i++) {
        if (i)
            fputs("  ", out);
        s_cell(out, cols->col[i], s_names[cols->col[i]], widths[cols->col[i]],
               i + 1 == cols->n);
    }
    putc('\n', out);
}

void leadrows_table(FILE *out, const leadrows_cols_t *cols, const int *widths,
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

/* -- the JSON document -------------------------------------------------- */

void leadrows_json_begin(FILE *out, int64_t as_of_ms)
{
    char t[TIMETEXT_RFC3339_LEN];
    if (as_of_ms)
        fprintf(out, "{\"as_of\": \"%s\", \"leads\": [", s_time_csv(as_of_ms, t, sizeof t));
    else
        fputs("{\"as_of\": null, \"leads\": [", out);
}

void leadrows_json_item(FILE *out, const leadrows_cols_t *cols, const Funnel__V1__LeadRow *row,
                        int64_t as_of_ms, bool first)
{
    json_t *doc = leadrows_json(cols, row, as_of_ms);
    fputs(first ? "\n  " : ",\n  ", out);
    json_dumpf(doc, out, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(doc);
}

void leadrows_json_end(FILE *out, size_t n)
{
    fputs(n ? "\n]}\n" : "]}\n", out);
}
