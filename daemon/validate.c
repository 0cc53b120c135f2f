/* validate.c: see validate.h. */
#include "validate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hnd.h"
#include "timetext.h"

const validate_limits_t validate_defaults = {
    .min_at_ms = 946684800000LL,        /* 2000-01-01T00:00:00Z */
    .max_future_ms = 24LL * 3600 * 1000,
};

bool validate_utf8(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;

    while (p[n]) {
        unsigned char c = p[n];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            n++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t i = 1; i < len; i++) {
            if ((p[n + i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[n + i] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        n += len;
    }
    return n <= max;
}

/* An event time as RFC 3339 UTC (to the second), for messages. */
static const char *s_time(int64_t ms, char out[TIMETEXT_RFC3339_LEN])
{
    return timetext_rfc3339(ms, false, out, TIMETEXT_RFC3339_LEN);
}

/* Check a required or optional string field. */
static const char *s_string(const char *field, const char *s, size_t max,
                            bool required, char *buf, size_t buflen,
                            validate_why_t *why)
{
    if (s == NULL || s[0] == '\0') {
        if (!required)
            return NULL;
        snprintf(buf, buflen, "missing %s", field);
        *why = VALIDATE_MISSING;
        return buf;
    }
    if (strlen(s) > max) {
        snprintf(buf, buflen, "%s longer than %zu bytes", field, max);
        *why = VALIDATE_TOO_LONG;
        return buf;
    }
    if (!validate_utf8(s, max)) {
        snprintf(buf, buflen, "%s is not valid UTF-8", field);
        *why = VALIDATE_UTF8;
        return buf;
    }
    return NULL;
}

const char *validate_event(const Funnel__V1__Event *ev, int64_t now_ms,
                           const validate_limits_t *lim, char *buf,
                           size_t buflen)
{
    validate_why_t why;
    return validate_event_why(ev, now_ms, lim, buf, buflen, &why);
}

const char *validate_why_name(validate_why_t why)
{
    static const char *const names[VALIDATE_WHY_N] = {
        [VALIDATE_MISSING] = "missing_field",   [VALIDATE_TOO_LONG] = "too_long",
        [VALIDATE_UTF8] = "invalid_utf8",       [VALIDATE_RESERVED] = "reserved",
        [VALIDATE_SOURCE] = "bad_source",       [VALIDATE_TIME] = "bad_time",
        [VALIDATE_VALUE] = "bad_value",         [VALIDATE_ATTRS] = "too_many_attrs",
    };
    return why < VALIDATE_WHY_N ? names[why] : "?";
}

const char *validate_event_why(const Funnel__V1__Event *ev, int64_t now_ms,
                               const validate_limits_t *lim, char *buf,
                               size_t buflen, validate_why_t *why)
{
    const char *r;

    if ((r = s_string("id", ev->id, HND_ID_MAX, true, buf, buflen, why)) ||
        (r = s_string("lead_id", ev->lead_id, HND_ID_MAX, true, buf, buflen, why)) ||
        (r = s_string("type", ev->type, HND_TYPE_MAX, true, buf, buflen, why)) ||
        (r = s_string("publisher", ev->publisher, HND_ID_MAX, false, buf, buflen, why)))
        return r;

    if (ev->id[0] == '$') {
        snprintf(buf, buflen, "id \"%.40s\": ids beginning with $ are reserved "
                 "for funneld", ev->id);
        *why = VALIDATE_RESERVED;
        return buf;
    }
    if (ev->type[0] == '$') {
        snprintf(buf, buflen, "type \"%s\": types beginning with $ are reserved "
                 "for funneld", ev->type);
        *why = VALIDATE_RESERVED;
        return buf;
    }
    if (ev->source == FUNNEL__V1__SOURCE__SOURCE_UNSPECIFIED) {
        snprintf(buf, buflen, "missing source (must be MARKETING or SALES)");
        *why = VALIDATE_SOURCE;
        return buf;
    }
    if (ev->source != FUNNEL__V1__SOURCE__SOURCE_MARKETING &&
        ev->source != FUNNEL__V1__SOURCE__SOURCE_SALES) {
        snprintf(buf, buflen, "unknown source %d (must be MARKETING or SALES)",
                 (int)ev->source);
        *why = VALIDATE_SOURCE;
        return buf;
    }

    if (ev->occurred_at_ms != 0) {
        char at[TIMETEXT_RFC3339_LEN], lim_at[TIMETEXT_RFC3339_LEN];
        if (ev->occurred_at_ms < lim->min_at_ms) {
            snprintf(buf, buflen,
                     "occurred_at_ms %lld (%s) is before the earliest accepted time %s",
                     (long long)ev->occurred_at_ms, s_time(ev->occurred_at_ms, at),
                     s_time(lim->min_at_ms, lim_at));
            *why = VALIDATE_TIME;
            return buf;
        }
        if (ev->occurred_at_ms > now_ms + lim->max_future_ms) {
            snprintf(buf, buflen,
                     "occurred_at_ms %lld (%s) is more than %lld h in the future",
                     (long long)ev->occurred_at_ms, s_time(ev->occurred_at_ms, at),
                     (long long)(lim->max_future_ms / 3600000));
            *why = VALIDATE_TIME;
            return buf;
        }
    }

    if (!isfinite(ev->value)) {
        snprintf(buf, buflen, "value is not a finite number");
        *why = VALIDATE_VALUE;
        return buf;
    }

    if (ev->n_attrs > HND_ATTRS_MAX) {
        snprintf(buf, buflen, "%zu attrs, more than %d", ev->n_attrs,
                 HND_ATTRS_MAX);
        *why = VALIDATE_ATTRS;
        return buf;
    }
    for (size_t i = 0; i < ev->n_attrs; i++) {
        const char *k = ev->attrs[i]->key, *v = ev->attrs[i]->value;
        if ((r = s_string("attribute key", k, HND_ATTR_KEY_MAX, true, buf, buflen, why)))
            return r;
        char field[HND_ATTR_KEY_MAX + 16];
        snprintf(field, sizeof field, "attrs[%s]", k);
        if ((r = s_string(field, v, HND_ATTR_VAL_MAX, false, buf, buflen, why)))
            return r;
    }
    return NULL;
}
