/* timetext.c: see timetext.h. */
#include "timetext.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The UTC calendar fields of ms (floored to the second) and the
 * millisecond within that second. Returns 0, or -1 when the year does not
 * fit a struct tm. */
static int s_civil(int64_t ms, struct tm *tm, int *milli)
{
    int64_t secs = ms / 1000, rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    *milli = (int)rem;
    return gmtime_r(&t, tm) ? 0 : -1;
}

char *timetext_rfc3339(int64_t ms, bool millis, char *out, size_t size)
{
    struct tm tm;
    int milli;
    if (s_civil(ms, &tm, &milli) < 0) {
        snprintf(out, size, "?");
        return out;
    }
    long long year = (long long)tm.tm_year + 1900;
    if (millis)
        snprintf(out, size, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", year,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 milli);
    else
        snprintf(out, size, "%04lld-%02d-%02dT%02d:%02d:%02dZ", year,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return out;
}

char *timetext_iso_week(int64_t ms, char *out)
{
    int64_t days = timetext_days_of_ms(ms);
    static __thread int64_t last_days = INT64_MIN;
    static __thread char last[TIMETEXT_WEEK_LEN];
    if (days != last_days) {
        struct tm tm;
        int milli;
        if (s_civil(days * TIMETEXT_DAY_MS, &tm, &milli) < 0 ||
            strftime(last, sizeof last, "%G-W%V", &tm) == 0)
            snprintf(last, sizeof last, "?");
        last_days = days;
    }
    memcpy(out, last, sizeof last);
    return out;
}

/* -- RFC 3339 in --------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t pos;
    char *err;
    size_t errlen;
} s_scan_t;

static int s_fail(s_scan_t *sc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int s_fail(s_scan_t *sc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc->err, sc->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Exactly n digits at the scan position. Returns 0 or -1. */
static int s_digits(s_scan_t *sc, int n, unsigned *out, const char *what)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        char c = sc->s[sc->pos];
        if (c < '0' || c > '9')
            return s_fail(sc, "expected %d-digit %s at offset %zu", n, what,
                          sc->pos - (size_t)i);
        v = v * 10 + (unsigned)(c - '0');
        sc->pos++;
    }
    *out = v;
    return 0;
}

/* One character of set at the scan position. Returns 0 or -1. */
static int s_expect(s_scan_t *sc, const char *set, const char *what)
{
    char c = sc->s[sc->pos];
    if (c == '\0' || !strchr(set, c))
        return s_fail(sc, "expected %s at offset %zu", what, sc->pos);
    sc->pos++;
    return 0;
}

static unsigned s_days_in_month(unsigned y, unsigned m)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30,
                                      31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int timetext_parse_rfc3339(const char *s, int64_t *ms_out, char *err,
                           size_t errlen)
{
    s_scan_t sc = {.s = s, .err = err, .errlen = errlen};
    unsigned year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0, ms = 0;

    if (s_digits(&sc, 4, &year, "year") == -1 || s_expect(&sc, "-", "'-'") == -1 ||
        s_digits(&sc, 2, &mon, "month") == -1 || s_expect(&sc, "-", "'-'") == -1 ||
        s_digits(&sc, 2, &day, "day") == -1 || s_expect(&sc, "Tt ", "'T'") == -1 ||
        s_digits(&sc, 2, &hour, "hour") == -1 || s_expect(&sc, ":", "':'") == -1 ||
        s_digits(&sc, 2, &min, "minute") == -1 || s_expect(&sc, ":", "':'") == -1 ||
        s_digits(&sc, 2, &sec, "second") == -1)
        return -1;

    if (s[sc.pos] == '.') {
        sc.pos++;
        if (s[sc.pos] < '0' || s[sc.pos] > '9')
            return s_fail(&sc, "expected digits after '.' at offset %zu", sc.pos);
        int n = 0;
        for (; s[sc.pos] >= '0' && s[sc.pos] <= '9'; n++, sc.pos++)
            if (n < 3)
                ms = ms * 10 + (unsigned)(s[sc.pos] - '0');
        for (; n < 3; n++)
            ms *= 10;
    }

    int offset_min = 0;
    if (s[sc.pos] == 'Z' || s[sc.pos] == 'z') {
        sc.pos++;
    } else if (s[sc.pos] == '+' || s[sc.pos] == '-') {
        int sign = s[sc.pos] == '-' ? -1 : 1;
        unsigned oh = 0, om = 0;
        sc.pos++;
        if (s_digits(&sc, 2, &oh, "offset hour") == -1 ||
            s_expect(&sc, ":", "':' in the offset") == -1 ||
            s_digits(&sc, 2, &om, "offset minute") == -1)
            return -1;
        if (oh > 23 || om > 59)
            return s_fail(&sc, "offset out of range");
        offset_min = sign * (int)(oh * 60 + om);
    } else {
        return s_fail(&sc, "expected 'Z' or a UTC offset (+HH:MM) at offset %zu",
                      sc.pos);
    }
    if (s[sc.pos] != '\0')
        return s_fail(&sc, "trailing characters at offset %zu", sc.pos);

    if (mon < 1 || mon > 12)
        return s_fail(&sc, "month %u out of range", mon);
    if (day < 1 || day > s_days_in_month(year, mon))
        return s_fail(&sc, "day %u out of range for %04u-%02u", day, year, mon);
    if (hour > 23)
        return s_fail(&sc, "hour %u out of range", hour);
    if (min > 59)
        return s_fail(&sc, "minute %u out of range", min);
    if (sec > 60) /* 60: a leap second, counted as the next second */
        return s_fail(&sc, "second %u out of range", sec);

    /* timegm() carries a second 60 into the next minute. */
    struct tm tm = {.tm_year = (int)year - 1900, .tm_mon = (int)mon - 1,
                    .tm_mday = (int)day, .tm_hour = (int)hour,
                    .tm_min = (int)min, .tm_sec = (int)sec};
    int64_t secs = (int64_t)timegm(&tm) - (int64_t)offset_min * 60;
    *ms_out = secs * 1000 + ms;
    return 0;
}

/* -- durations ----------------------------------------------------------- */

/* The units, largest first. */
static const struct {
    const char *name;
    int64_t ms;
} s_units[] = {
    {"w", 604800000}, {"d", 86400000}, {"h", 3600000},
    {"m", 60000},     {"s", 1000},     {"ms", 1},
};
#define S_N_UNITS (sizeof s_units / sizeof s_units[0])

timetext_dur_rc_t timetext_parse_duration(const char *s, int64_t max,
                                          int64_t *out)
{
    const char *p = s;
    bool neg = *p == '-';
    int64_t total = 0;

    p += neg;
    if (!isdigit((unsigned char)*p))
        return TIMETEXT_DUR_BAD;
    bool bare = p[strspn(p, "0123456789")] == '\0';
    while (*p) {
        int64_t v = 0, mult = 0;
        if (!isdigit((unsigned char)*p))
            return TIMETEXT_DUR_BAD;
        for (; isdigit((unsigned char)*p); p++) {
            if (v > (INT64_MAX - (*p - '0')) / 10)
                return TIMETEXT_DUR_RANGE;
            v = v * 10 + (*p - '0');
        }
        if (bare) {
            mult = 1;
        } else {
            for (size_t i = 0; i < S_N_UNITS; i++) {
                size_t ul = strlen(s_units[i].name);
                if (strncmp(p, s_units[i].name, ul) == 0 &&
                    !isalpha((unsigned char)p[ul])) {
                    mult = s_units[i].ms;
                    p += ul;
                    break;
                }
            }
            if (mult == 0)
                return TIMETEXT_DUR_BAD;
        }
        if (v > INT64_MAX / mult || total > INT64_MAX - v * mult)
            return TIMETEXT_DUR_RANGE;
        total += v * mult;
    }
    if (neg)
        return TIMETEXT_DUR_NEGATIVE;
    if (total > max)
        return TIMETEXT_DUR_RANGE;
    *out = total;
    return TIMETEXT_DUR_OK;
}

/* Index of unit "d", the largest TIMETEXT_DUR_SHORT and _CLOCK use. */
#define S_DAY 1
/* Index of unit "s", the smallest they use. */
#define S_SEC 4

char *timetext_duration(int64_t ms, timetext_dur_style_t style, char *buf,
                        size_t size)
{
    if (style == TIMETEXT_DUR_EXACT) {
        for (size_t i = 0; i < S_N_UNITS; i++)
            if (ms % s_units[i].ms == 0 && (ms != 0 || s_units[i].ms == 1)) {
                snprintf(buf, size, "%" PRId64 "%s", ms / s_units[i].ms,
                         s_units[i].name);
                break;
            }
        return buf;
    }
    if (style == TIMETEXT_DUR_DECIMAL) {
        if (ms < 0) {
            snprintf(buf, size, "-");
            return buf;
        }
        size_t i = S_DAY;
        while (i < S_SEC && ms < s_units[i].ms)
            i++;
        snprintf(buf, size, "%.1f%s", (double)ms / (double)s_units[i].ms,
                 s_units[i].name);
        return buf;
    }
    if (ms < 0)
        ms = 0;
    if (ms < 1000) {
        snprintf(buf, size, style == TIMETEXT_DUR_CLOCK ? "%" PRId64 " ms"
                                                        : "%" PRId64 "ms", ms);
        return buf;
    }
    size_t i = S_DAY;
    while (ms < s_units[i].ms)
        i++;
    if (style == TIMETEXT_DUR_CLOCK) {
        /* Every unit from the largest down, the seconds with their
         * milliseconds. */
        size_t n = 0;
        for (; i < S_SEC && n < size; i++) {
            int64_t of = i == S_DAY ? ms / s_units[i].ms
                                    : ms % s_units[i - 1].ms / s_units[i].ms;
            n += (size_t)snprintf(buf + n, size - n, "%" PRId64 "%s ", of,
                                  s_units[i].name);
        }
        if (n < size)
            snprintf(buf + n, size - n, "%" PRId64 ".%03" PRId64 "s",
                     ms % 60000 / 1000, ms % 1000);
        return buf;
    }
    /* TIMETEXT_DUR_SHORT: the largest unit and, when some is left, the
     * next one. */
    int64_t a = ms / s_units[i].ms, rest = ms % s_units[i].ms;
    if (i < S_SEC && rest >= s_units[i + 1].ms)
        snprintf(buf, size, "%" PRId64 "%s %" PRId64 "%s", a, s_units[i].name,
                 rest / s_units[i + 1].ms, s_units[i + 1].name);
    else
        snprintf(buf, size, "%" PRId64 "%s", a, s_units[i].name);
    return buf;
}
