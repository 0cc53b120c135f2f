/* defn_check.c: pass 3 of loading a definition, the values.
 *
 * The checks every section shares: durations, booleans, names, numbers,
 * event sources and conditions (transitions[].when, scoring.fit[],
 * personas[].when[]), each complaining at the position of the node
 * concerned; and a condition's text (defn_cond_text, public).
 */
#include "defn_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hnd.h"
#include "timetext.h"

/* Durations are capped so that a time plus a duration never overflows. */
#define S_DURATION_MAX (36500LL * 24 * 3600 * 1000)     /* 100 years */

int defn_duration(defn_loader_t *ld, const char *text, const char *path,
                  int64_t *out)
{
    *out = 0;
    if (!text)
        return 0;
    defn_pos_t pos = defn_pos(ld, "%s", path);
    switch (timetext_parse_duration(text, S_DURATION_MAX, out)) {
    case TIMETEXT_DUR_OK:
        return 0;
    case TIMETEXT_DUR_NEGATIVE:
        defn_fail(ld, pos, "%s: negative duration '%s'", path, text);
        return -1;
    case TIMETEXT_DUR_RANGE:
        defn_fail(ld, pos, "%s: duration '%s' is too large (at most 36500d)",
                  path, text);
        return -1;
    default:
        defn_fail(ld, pos, "%s: bad duration '%s' (write e.g. 30d, 24h, 90m, "
                  "45s, 500ms, or a number of milliseconds)", path, text);
        return -1;
    }
}

int defn_bool(defn_loader_t *ld, const char *text, const char *path, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on" };
    static const char *const no[] = { "false", "no", "off" };
    *out = false;
    if (!text)
        return 0;
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0)
            return 0;
    }
    defn_fail(ld, defn_pos(ld, "%s", path),
              "%s: expected true or false, not '%s'", path, text);
    return -1;
}

int defn_word(defn_loader_t *ld, const char *text, size_t max,
              const char *what, const char *path)
{
    defn_pos_t pos = defn_pos(ld, "%s", path);
    if (!text) {
        defn_fail(ld, pos, "%s: missing %s", path, what);
        return -1;
    }
    if (text[0] == '\0') {
        defn_fail(ld, pos, "%s: empty %s", path, what);
        return -1;
    }
    if (strlen(text) > max) {
        defn_fail(ld, pos, "%s: %s longer than %zu bytes", path, what, max);
        return -1;
    }
    for (const char *p = text; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            defn_fail(ld, pos, "%s: control character in %s", path, what);
            return -1;
        }
    }
    return 0;
}

int defn_number(defn_loader_t *ld, double v, const char *path)
{
    if (isfinite(v))
        return 0;
    defn_fail(ld, defn_pos(ld, "%s", path), "%s: not a finite number",
              path);
    return -1;
}

int defn_source(defn_loader_t *ld, const char *text, const char *path, int *out)
{
    *out = HND_SRC_UNSPECIFIED;
    if (!text)
        return 0;
    if (strcmp(text, "marketing") == 0)
        *out = HND_SRC_MARKETING;
    else if (strcmp(text, "sales") == 0)
        *out = HND_SRC_SALES;
    else {
        defn_fail(ld, defn_pos(ld, "%s", path),
                  "%s: unknown source '%s' (marketing or sales; omit it for "
                  "both)", path, text);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Conditions (transitions[].when, scoring.fit[], personas[].when[]).     */

void defn_cond_free(defn_cond_t *c)
{
    free(c->attr);
    for (size_t i = 0; i < c->n_values; i++)
        free(c->values[i]);
    free(c->values);
    memset(c, 0, sizeof *c);
}

/* A condition (defn_int.h). It tests either an attribute (attr:) with
 * exactly one of equals, one_of, min/max or present, or, when allowed, a
 * behaviour counter (count:) with min and/or max. The checks run in the
 * order of the keys' meaning, so that the first complaint is the one about
 * the condition's shape, then its values. */
int defn_cond(defn_loader_t *ld, const defn_ycond_t *y, const char *path,
              bool allow_count, defn_cond_t *out)
{
    char sub[160];
    defn_pos_t at = defn_pos(ld, "%s", path);
    int tests = (y->equals != NULL) + (y->one_of != NULL) +
                (y->min != NULL || y->max != NULL) + (y->present != NULL);

    memset(out, 0, sizeof *out);
    if (y->attr && y->count) {
        defn_fail(ld, defn_pos(ld, "%s.count", path),
                  "%s: 'attr' and 'count' together; a condition tests one "
                  "attribute or one counter", path);
        return -1;
    }
    if (y->count) {
        if (!allow_count) {
            defn_fail(ld, defn_pos(ld, "%s.count", path),
                      "%s: behaviour counters (count:) are for personas only; "
                      "use attr: here", path);
            return -1;
        }
        snprintf(sub, sizeof sub, "%s.count", path);
        if (defn_word(ld, y->count, HND_TYPE_MAX, "event type", sub) < 0)
            return -1;
        if (y->equals || y->one_of || y->present || (!y->min && !y->max)) {
            defn_fail(ld, at, "%s: a counter condition takes min and/or max "
                      "(e.g. {count: content_download, min: 2})", path);
            return -1;
        }
        out->op = DEFN_COND_COUNT;
        out->attr = xstrdup(y->count);
    } else {
        if (!y->attr) {
            defn_fail(ld, at, "%s: missing 'attr' (the attribute to test)%s",
                      path, allow_count ? " or 'count' (an event type)" : "");
            return -1;
        }
        snprintf(sub, sizeof sub, "%s.attr", path);
        if (defn_word(ld, y->attr, HND_ATTR_KEY_MAX, "attribute", sub) < 0)
            return -1;
        if (tests != 1) {
            defn_fail(ld, at, "%s: %s test; write exactly one of equals, "
                      "one_of, min/max, present", path,
                      tests == 0 ? "no" : "more than one");
            return -1;
        }
        out->attr = xstrdup(y->attr);
        if (y->equals) {
            out->op = DEFN_COND_EQUALS;
            out->values = xcalloc(1, sizeof *out->values);
            out->values[0] = xstrdup(y->equals);
            out->n_values = 1;
        } else if (y->one_of) {
            out->op = DEFN_COND_ONE_OF;
            if (y->one_of_count == 0) {
                defn_fail(ld, defn_pos(ld, "%s.one_of", path),
                          "%s.one_of: empty list; nothing could match", path);
                return -1;
            }
            out->values = xcalloc(y->one_of_count, sizeof *out->values);
            for (unsigned i = 0; i < y->one_of_count; i++)
                out->values[out->n_values++] = xstrdup(y->one_of[i]);
        } else if (y->present) {
            out->op = DEFN_COND_PRESENT;
            snprintf(sub, sizeof sub, "%s.present", path);
            if (defn_bool(ld, y->present, sub, &out->present) < 0)
                return -1;
        } else {
            out->op = DEFN_COND_RANGE;
        }
    }
    if (y->min) {
        snprintf(sub, sizeof sub, "%s.min", path);
        if (defn_number(ld, *y->min, sub) < 0)
            return -1;
        out->has_min = true;
        out->min = *y->min;
    }
    if (y->max) {
        snprintf(sub, sizeof sub, "%s.max", path);
        if (defn_number(ld, *y->max, sub) < 0)
            return -1;
        out->has_max = true;
        out->max = *y->max;
    }
    if (out->has_min && out->has_max && out->min > out->max) {
        defn_fail(ld, defn_pos(ld, "%s.max", path),
                  "%s: max %g is below min %g; nothing could match", path,
                  out->max, out->min);
        return -1;
    }
    if (out->op == DEFN_COND_COUNT && out->has_max && out->max < 0) {
        defn_fail(ld, defn_pos(ld, "%s.max", path),
                  "%s: max %g: a count is never negative", path, out->max);
        return -1;
    }
    return 0;
}

/* defn.h. The text is cut to fit buf (always NUL-terminated); a list
 * cut short loses its closing ']'. */
char *defn_cond_text(const defn_cond_t *c, char *buf, size_t size)
{
    size_t used = 0;
    int n;
    buf[0] = '\0';
    switch (c->op) {
    case DEFN_COND_EQUALS:
        snprintf(buf, size, "%s = %s", c->attr, c->values[0]);
        break;
    case DEFN_COND_ONE_OF:
        n = snprintf(buf, size, "%s in [", c->attr);
        used = n > 0 && (size_t)n < size ? (size_t)n : size - 1;
        for (size_t i = 0; i < c->n_values && used + 1 < size; i++) {
            n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                         c->values[i]);
            used = n > 0 && (size_t)n < size - used ? used + (size_t)n
                                                   : size - 1;
        }
        if (used + 1 < size)
            snprintf(buf + used, size - used, "]");
        break;
    case DEFN_COND_PRESENT:
        snprintf(buf, size, "%s %s", c->attr,
                 c->present ? "present" : "absent");
        break;
    case DEFN_COND_RANGE:
    case DEFN_COND_COUNT: {
        char what[HND_TYPE_MAX + 16];
        if (c->op == DEFN_COND_COUNT)
            snprintf(what, sizeof what, "count(%s)", c->attr);
        else
            snprintf(what, sizeof what, "%s", c->attr);
        if (c->has_min && c->has_max)
            snprintf(buf, size, "%s in %g..%g", what, c->min, c->max);
        else if (c->has_min)
            snprintf(buf, size, "%s >= %g", what, c->min);
        else
            snprintf(buf, size, "%s <= %g", what, c->max);
        break;
    }
    }
    return buf;
}
