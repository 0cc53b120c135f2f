/* ndjson: funnelctl's NDJSON event format, RFC 3339 times, default ids.
 * Contracts in ndjson.h. */
#include "ndjson.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest time funnelctl accepts: 9999-12-31T23:59:59.999Z. */
#define S_MAX_MS INT64_C(253402300799999)

/* ------------------------------------------------------------------ */
/* small helpers                                                      */

static void *s_xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fputs("funnelctl: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *s_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = s_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

static void s_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_err(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, NDJSON_ERR_MAX, fmt, ap);
    va_end(ap);
}

static bool s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trim whitespace at both ends of [*line, *line + *len). */
static void s_trim(const char **line, size_t *len)
{
    while (*len > 0 && s_is_space((*line)[0])) {
        (*line)++;
        (*len)--;
    }
    while (*len > 0 && s_is_space((*line)[*len - 1]))
        (*len)--;
}

/* ------------------------------------------------------------------ */
/* ids                                                                */

uint64_t ndjson_fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

void ndjson_line_id(const char *line, size_t len, char *out)
{
    s_trim(&line, &len);
    snprintf(out, NDJSON_LINE_ID_LEN, "h-%016" PRIx64, ndjson_fnv1a64(line, len));
}

/* ------------------------------------------------------------------ */
/* time                                                               */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t s_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse of s_days_from_civil. */
static void s_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool s_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned s_days_in_month(int64_t y, unsigned m)
{
    static const unsigned days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && s_leap(y) ? 29 : days[m - 1];
}

/* Read exactly n digits at s[*pos]; advance *pos. Returns 0 or -1. */
static int s_digits(const char *s, size_t *pos, int n, unsigned *out, const char *what,
                    char *err)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[*pos];
        if (c < '0' || c > '9') {
            s_err(err, "expected %d-digit %s at offset %zu", n, what, *pos - (size_t)i);
            return -1;
        }
        v = v * 10 + (unsigned)(c - '0');
        (*pos)++;
    }
    *out = v;
    return 0;
}

static int s_expect(const char *s, size_t *pos, const char *set, const char *what, char *err)
{
    if (s[*pos] == '\0' || !strchr(set, s[*pos])) {
        s_err(err, "expected %s at offset %zu", what, *pos);
        return -1;
    }
    (*pos)++;
    return 0;
}

int ndjson_parse_time(const char *s, int64_t *ms_out, char *err)
{
    size_t pos = 0;
    unsigned year, mon, day, hour, min, sec, ms = 0;

    if (s_digits(s, &pos, 4, &year, "year", err) == -1 ||
        s_expect(s, &pos, "-", "'-'", err) == -1 ||
        s_digits(s, &pos, 2, &mon, "month", err) == -1 ||
        s_expect(s, &pos, "-", "'-'", err) == -1 ||
        s_digits(s, &pos, 2, &day, "day", err) == -1 ||
        s_expect(s, &pos, "Tt ", "'T'", err) == -1 ||
        s_digits(s, &pos, 2, &hour, "hour", err) == -1 ||
        s_expect(s, &pos, ":", "':'", err) == -1 ||
        s_digits(s, &pos, 2, &min, "minute", err) == -1 ||
        s_expect(s, &pos, ":", "':'", err) == -1 ||
        s_digits(s, &pos, 2, &sec, "second", err) == -1)
        return -1;

    if (s[pos] == '.') {
        pos++;
        if (s[pos] < '0' || s[pos] > '9') {
            s_err(err, "expected digits after '.' at offset %zu", pos);
            return -1;
        }
        int n = 0;
        while (s[pos] >= '0' && s[pos] <= '9') {
            if (n < 3)
                ms = ms * 10 + (unsigned)(s[pos] - '0');
            n++;
            pos++;
        }
        for (; n < 3; n++)
            ms *= 10;
    }

    int offset_min = 0;
    if (s[pos] == 'Z' || s[pos] == 'z') {
        pos++;
    } else if (s[pos] == '+' || s[pos] == '-') {
        int sign = s[pos] == '-' ? -1 : 1;
        unsigned oh, om;
        pos++;
        if (s_digits(s, &pos, 2, &oh, "offset hour", err) == -1 ||
            s_expect(s, &pos, ":", "':' in the offset", err) == -1 ||
            s_digits(s, &pos, 2, &om, "offset minute", err) == -1)
            return -1;
        if (oh > 23 || om > 59) {
            s_err(err, "offset out of range");
            return -1;
        }
        offset_min = sign * (int)(oh * 60 + om);
    } else {
        s_err(err, "expected 'Z' or a UTC offset (+HH:MM) at offset %zu", pos);
        return -1;
    }
    if (s[pos] != '\0') {
        s_err(err, "trailing characters at offset %zu", pos);
        return -1;
    }

    if (mon < 1 || mon > 12) {
        s_err(err, "month %u out of range", mon);
        return -1;
    }
    if (day < 1 || day > s_days_in_month(year, mon)) {
        s_err(err, "day %u out of range for %04u-%02u", day, year, mon);
        return -1;
    }
    if (hour > 23) {
        s_err(err, "hour %u out of range", hour);
        return -1;
    }
    if (min > 59) {
        s_err(err, "minute %u out of range", min);
        return -1;
    }
    if (sec > 60) { /* 60: a leap second, counted as the next second */
        s_err(err, "second %u out of range", sec);
        return -1;
    }

    int64_t days = s_days_from_civil(year, mon, day);
    int64_t secs = days * 86400 + hour * 3600 + min * 60 + sec - (int64_t)offset_min * 60;
    int64_t total = secs * 1000 + ms;
    if (total <= 0) {
        s_err(err, "before 1970-01-01T00:00:00Z");
        return -1;
    }
    *ms_out = total;
    return 0;
}

int ndjson_parse_time_arg(const char *s, int64_t *ms_out, char *err)
{
    char why[NDJSON_ERR_MAX];
    size_t n = strlen(s);
    bool digits = n > 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            digits = false;

    if (digits) {
        if (n > 15) {
            s_err(err, "bad time \"%.40s\": epoch milliseconds out of range", s);
            return -1;
        }
        int64_t v = strtoll(s, NULL, 10);
        if (v <= 0 || v > S_MAX_MS) {
            s_err(err, "bad time \"%.40s\": epoch milliseconds out of range", s);
            return -1;
        }
        *ms_out = v;
        return 0;
    }
    if (ndjson_parse_time(s, ms_out, why) == -1) {
        s_err(err, "bad time \"%.64s\": %s", s, why);
        return -1;
    }
    return 0;
}

char *ndjson_format_time(int64_t ms, char *buf)
{
    int64_t secs = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t y;
    unsigned m, d;
    s_civil_from_days(days, &y, &m, &d);
    snprintf(buf, NDJSON_TIME_LEN, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u.%03uZ", y, m, d,
             (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60),
             (unsigned)rem);
    return buf;
}

/* ------------------------------------------------------------------ */
/* events                                                             */

static void s_free_str(char *s)
{
    if (s && s != protobuf_c_empty_string)
        free(s);
}

void ndjson_event_free(Funnel__V1__Event *ev)
{
    if (!ev)
        return;
    s_free_str(ev->id);
    s_free_str(ev->lead_id);
    s_free_str(ev->type);
    s_free_str(ev->publisher);
    for (size_t i = 0; i < ev->n_attrs; i++) {
        if (!ev->attrs[i])
            continue;
        s_free_str(ev->attrs[i]->key);
        s_free_str(ev->attrs[i]->value);
        free(ev->attrs[i]);
    }
    free(ev->attrs);
    free(ev);
}

void ndjson_event_destroy(Funnel__V1__Event **ev_p)
{
    if (!ev_p)
        return;
    ndjson_event_free(*ev_p);
    *ev_p = NULL;
}

/* A string field. Returns 0 (*out NULL when absent and optional) or -1. */
static int s_get_string(const json_t *obj, const char *key, bool required, size_t max,
                        const char **out, char *err)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) {
            s_err(err, "missing field \"%s\"", key);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        s_err(err, "field \"%s\" must be a string", key);
        return -1;
    }
    size_t n = json_string_length(v);
    if (n == 0) {
        s_err(err, "field \"%s\" must not be empty", key);
        return -1;
    }
    if (max && n > max) {
        s_err(err, "field \"%s\" is longer than %zu bytes", key, max);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

/* The shortest "%.*g" of d that reads back as d. */
static void s_format_double(double d, char *buf, size_t size)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* An attribute value as a string, into buf. Returns 0 or -1. */
static int s_attr_string(const char *key, const json_t *v, char **out, char *err)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        *out = s_xstrdup(json_string_value(v));
        return 0;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        s_format_double(json_real_value(v), num, sizeof num);
        break;
    case JSON_TRUE:
        strcpy(num, "true");
        break;
    case JSON_FALSE:
        strcpy(num, "false");
        break;
    default:
        s_err(err, "attr \"%.64s\" must be a string, number or boolean", key);
        return -1;
    }
    *out = s_xstrdup(num);
    return 0;
}

static int s_get_attrs(const json_t *obj, Funnel__V1__Event *ev, char *err)
{
    const json_t *attrs = json_object_get(obj, "attrs");
    if (!attrs || json_is_null(attrs))
        return 0;
    if (!json_is_object(attrs)) {
        s_err(err, "field \"attrs\" must be an object");
        return -1;
    }
    size_t n = json_object_size(attrs);
    if (n == 0)
        return 0;
    ev->attrs = s_xmalloc(n * sizeof *ev->attrs);

    const char *key;
    json_t *v;
    /* json_object_foreach wants a non-const object; it does not modify it. */
    json_object_foreach((json_t *)attrs, key, v) {
        if (key[0] == '\0') {
            s_err(err, "attrs key must not be empty");
            return -1;
        }
        char *value = NULL;
        if (s_attr_string(key, v, &value, err) == -1)
            return -1;
        Funnel__V1__Event__AttrsEntry *e = s_xmalloc(sizeof *e);
        funnel__v1__event__attrs_entry__init(e);
        e->key = s_xstrdup(key);
        e->value = value;
        ev->attrs[ev->n_attrs++] = e;
    }
    return 0;
}

static int s_get_at(const json_t *obj, int64_t now_ms, int64_t *at, char *err)
{
    const json_t *v = json_object_get(obj, "at");
    if (!v || json_is_null(v)) {
        *at = now_ms;
        return 0;
    }
    if (json_is_string(v))
        return ndjson_parse_time_arg(json_string_value(v), at, err);
    if (json_is_integer(v) || json_is_real(v)) {
        double d = json_number_value(v);
        if (json_is_real(v) && d != floor(d)) {
            s_err(err, "bad time %.17g: epoch milliseconds must be an integer", d);
            return -1;
        }
        if (d <= 0 || d > (double)S_MAX_MS) {
            s_err(err, "bad time %.17g: epoch milliseconds out of range", d);
            return -1;
        }
        *at = json_is_integer(v) ? (int64_t)json_integer_value(v) : (int64_t)d;
        return 0;
    }
    s_err(err, "field \"at\" must be an RFC 3339 string or epoch milliseconds");
    return -1;
}

Funnel__V1__Event *ndjson_event_from_json(const json_t *obj, const char *default_id,
                                          int64_t now_ms, char *err)
{
    const char *id, *lead, *source, *type, *publisher;
    Funnel__V1__Event *ev = NULL;

    if (!json_is_object(obj)) {
        s_err(err, "not a JSON object");
        return NULL;
    }
    if (s_get_string(obj, "lead", true, NDJSON_MAX_LEAD, &lead, err) == -1 ||
        s_get_string(obj, "source", true, 0, &source, err) == -1 ||
        s_get_string(obj, "type", true, NDJSON_MAX_TYPE, &type, err) == -1 ||
        s_get_string(obj, "id", false, NDJSON_MAX_ID, &id, err) == -1 ||
        s_get_string(obj, "publisher", false, 0, &publisher, err) == -1)
        return NULL;

    Funnel__V1__Source src;
    if (strcmp(source, "marketing") == 0)
        src = FUNNEL__V1__SOURCE__SOURCE_MARKETING;
    else if (strcmp(source, "sales") == 0)
        src = FUNNEL__V1__SOURCE__SOURCE_SALES;
    else {
        s_err(err, "field \"source\" must be \"marketing\" or \"sales\"");
        return NULL;
    }
    if (!id)
        id = default_id;
    if (!id || !*id) {
        s_err(err, "missing field \"id\"");
        return NULL;
    }

    ev = s_xmalloc(sizeof *ev);
    funnel__v1__event__init(ev);
    ev->id = s_xstrdup(id);
    ev->lead_id = s_xstrdup(lead);
    ev->type = s_xstrdup(type);
    ev->source = src;
    if (publisher)
        ev->publisher = s_xstrdup(publisher);

    if (s_get_at(obj, now_ms, &ev->occurred_at_ms, err) == -1)
        goto fail;

    const json_t *value = json_object_get(obj, "value");
    if (value && !json_is_null(value)) {
        if (!json_is_number(value)) {
            s_err(err, "field \"value\" must be a number");
            goto fail;
        }
        ev->value = json_number_value(value);
    }

    const json_t *seq = json_object_get(obj, "seq");
    if (seq && !json_is_null(seq)) {
        if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
            s_err(err, "field \"seq\" must be a non-negative integer");
            goto fail;
        }
        ev->seq = (uint64_t)json_integer_value(seq);
    }

    if (s_get_attrs(obj, ev, err) == -1)
        goto fail;
    return ev;

fail:
    ndjson_event_free(ev);
    return NULL;
}

int ndjson_parse_line(const char *line, size_t len, int64_t now_ms,
                      Funnel__V1__Event **ev_out, char *err)
{
    *ev_out = NULL;
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;

    const char *body = line;
    size_t blen = len;
    s_trim(&body, &blen);
    if (blen == 0)
        return 0;
    if (len > NDJSON_MAX_LINE) {
        s_err(err, "line longer than %d bytes", NDJSON_MAX_LINE);
        return -1;
    }

    json_error_t jerr;
    json_t *obj = json_loadb(body, blen, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        s_err(err, "invalid JSON: %s (column %d)", jerr.text, jerr.column);
        return -1;
    }
    if (!json_is_object(obj)) {
        s_err(err, "not a JSON object");
        json_decref(obj);
        return -1;
    }

    char id[NDJSON_LINE_ID_LEN];
    ndjson_line_id(body, blen, id);
    *ev_out = ndjson_event_from_json(obj, id, now_ms, err);
    json_decref(obj);
    return *ev_out ? 1 : -1;
}
