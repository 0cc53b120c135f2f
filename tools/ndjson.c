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

#include "fnv.h"
#include "timetext.h"
#include "xalloc.h"

/* Largest time funnelctl accepts: 9999-12-31T23:59:59.999Z. */
#define S_MAX_MS INT64_C(253402300799999)

/* ------------------------------------------------------------------ */
/* small helpers                                                      */

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

void ndjson_line_id(const char *line, size_t len, char *out)
{
    s_trim(&line, &len);
    snprintf(out, NDJSON_LINE_ID_LEN, "h-%016" PRIx64, fnv1a64(line, len));
}

/* ------------------------------------------------------------------ */
/* time                                                               */

int ndjson_parse_time(const char *s, int64_t *ms_out, char *err)
{
    int64_t ms;
    if (timetext_parse_rfc3339(s, &ms, err, NDJSON_ERR_MAX) == -1)
        return -1;
    if (ms <= 0) {
        s_err(err, "before 1970-01-01T00:00:00Z");
        return -1;
    }
    *ms_out = ms;
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
    return timetext_rfc3339(ms, true, buf, NDJSON_TIME_LEN);
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
        *out = xstrdup(json_string_value(v));
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
    *out = xstrdup(num);
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
    ev->attrs = xcalloc(1, n * sizeof *ev->attrs);

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
        Funnel__V1__Event__AttrsEntry *e = xcalloc(1, sizeof *e);
        funnel__v1__event__attrs_entry__init(e);
        e->key = xstrdup(key);
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

    ev = xcalloc(1, sizeof *ev);
    funnel__v1__event__init(ev);
    ev->id = xstrdup(id);
    ev->lead_id = xstrdup(lead);
    ev->type = xstrdup(type);
    ev->source = src;
    if (publisher)
        ev->publisher = xstrdup(publisher);

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
