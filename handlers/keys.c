/* keys.c: see keys.h. */
#include "keys.h"

#include <string.h>

/* Each counter's name within its group; a trailing '/' when a stage (or
 * reason) follows. */
static const char *const s_counter_name[KEYS_COUNTER_N] = {
    [KEYS_LEADS] = "leads",
    [KEYS_HANDOFFS] = "handoffs",
    [KEYS_HANDOFFS_ACCEPTED] = "handoffs/accepted",
    [KEYS_HANDOFFS_REJECTED] = "handoffs/rejected",
    [KEYS_HANDOFFS_RECYCLED] = "handoffs/recycled",
    [KEYS_HANDOFFS_REQUALIFIED] = "handoffs/requalified",
    [KEYS_SLA_BREACHES] = "friction/handoff_sla",
    [KEYS_SLA_WAITING] = "sla/waiting",
    [KEYS_NOW] = "now/",
    [KEYS_ENTERED] = "entered/",
    [KEYS_ADVANCED] = "advanced/",
    [KEYS_DROPPED] = "dropped/",
    [KEYS_STALLS] = "friction/stall/",
    [KEYS_STALLED] = "stalled/",
    [KEYS_REGRESSIONS] = "friction/regression/",
    [KEYS_REJECTIONS] = "friction/handoff_rejected/",
    [KEYS_REJREASON] = "rejreason/",
    [KEYS_Q_HANDED] = "quality/handed_off",
    [KEYS_Q_WON] = "quality/won",
    [KEYS_Q_LOST] = "quality/lost",
    [KEYS_Q_BEFORE] = "quality/before",
    [KEYS_Q_OPEN] = "quality/open/",
    [KEYS_Q_TO_WON] = "quality/to_won/",
    [KEYS_Q_ALL_WON] = "quality/all/won",
    [KEYS_Q_ALL_LOST] = "quality/all/lost",
    [KEYS_Q_ALL_OPEN] = "quality/all/open/",
};

static const char *const s_by_prefix[KEYS_BY_N] = {
    [KEYS_BY_PERSONA] = "by/persona/",
    [KEYS_BY_SOURCE] = "by/source/",
    [KEYS_BY_COHORT] = "by/cohort/",
};

static const char *const s_by_name[KEYS_BY_N] = {
    [KEYS_BY_PERSONA] = "persona",
    [KEYS_BY_SOURCE] = "source",
    [KEYS_BY_COHORT] = "cohort",
};

#define S_CONV "~conv/"
#define S_DWELL "dwell/"

const char keys_conv_day[] = S_CONV "day";
const char keys_conv_expired[] = S_CONV "expired";
const char keys_mark_sla[] = "sla_breached";
const char keys_stalled_prefix[] = "stalled/";
const char keys_deadline_stall[] = "stall";
const char keys_deadline_sla[] = "sla";

/* Append s (NULL: nothing) at *n, keeping room for the NUL. */
static inline void s_cat(char *buf, size_t cap, size_t *n, const char *s)
{
    size_t i = *n;
    if (s)
        for (; *s && i + 1 < cap; s++)
            buf[i++] = *s;
    *n = i;
}

/* Append v as printf's "%0<width>lld" would. */
static void s_num(char *buf, size_t cap, size_t *n, int64_t v, int width)
{
    char digits[24];
    int k = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {            /* as printf's "%0*d": the width counts the sign */
        width--;
        if (*n + 1 < cap)
            buf[(*n)++] = '-';
    }
    for (; width > k && *n + 1 < cap; width--)
        buf[(*n)++] = '0';
    while (k > 0 && *n + 1 < cap)
        buf[(*n)++] = digits[--k];
}

char *keys_counter(char *buf, size_t cap, const char *prefix, keys_counter_t c,
                   const char *stage)
{
    size_t n = 0;
    const char *name = s_counter_name[c];
    s_cat(buf, cap, &n, prefix);
    s_cat(buf, cap, &n, name);
    if (name[strlen(name) - 1] == '/')
        s_cat(buf, cap, &n, stage);
    buf[n] = '\0';
    return buf;
}

const char *keys_name(keys_counter_t c)
{
    return s_counter_name[c];
}

char *keys_group_prefix(char *buf, size_t cap, keys_by_t by, const char *name)
{
    size_t n = 0;
    s_cat(buf, cap, &n, s_by_prefix[by]);
    s_cat(buf, cap, &n, name);
    s_cat(buf, cap, &n, "/");
    buf[n] = '\0';
    return buf;
}

const char *keys_by_prefix(keys_by_t by)
{
    return s_by_prefix[by];
}

int keys_by_parse(const char *dim)
{
    for (int i = 0; i < KEYS_BY_N; i++)
        if (strcmp(dim, s_by_name[i]) == 0)
            return i;
    return -1;
}

char *keys_in_group(char *buf, size_t cap, keys_by_t by, const char *name,
                    const char *key)
{
    size_t n = 0;
    s_cat(buf, cap, &n, s_by_prefix[by]);
    s_cat(buf, cap, &n, name);
    s_cat(buf, cap, &n, "/");
    s_cat(buf, cap, &n, key);
    buf[n] = '\0';
    return buf;
}

size_t keys_group_name_len(const char *key, keys_by_t by)
{
    const char *name = key + strlen(s_by_prefix[by]);
    const char *slash = strchr(name, '/');
    return slash ? (size_t)(slash - name) : strlen(name);
}

char *keys_quality(char *buf, size_t cap, const char *prefix, keys_counter_t c,
                   int64_t n)
{
    size_t len = 0;
    s_cat(buf, cap, &len, prefix);
    s_cat(buf, cap, &len, s_counter_name[c]);
    if (n >= 0)
        s_num(buf, cap, &len, n, c == KEYS_Q_TO_WON ? 3 : 6);
    buf[len] = '\0';
    return buf;
}

const char keys_clause_prefix_all[] = "by/clause/";

char *keys_clause_prefix(char *buf, size_t cap, const char *label)
{
    size_t n = 0;
    s_cat(buf, cap, &n, keys_clause_prefix_all);
    for (size_t i = 0; label[i] && i < 63 && n + 2 < cap; i++)
        buf[n++] = label[i] == '/' ? '|' : label[i];
    s_cat(buf, cap, &n, "/");
    buf[n] = '\0';
    return buf;
}

char *keys_dwell(char *buf, size_t cap, const char *prefix, const char *stage,
                 int bucket)
{
    size_t n = 0;
    s_cat(buf, cap, &n, prefix);
    s_cat(buf, cap, &n, S_DWELL);
    s_cat(buf, cap, &n, stage);
    s_cat(buf, cap, &n, "/");
    s_num(buf, cap, &n, bucket, 3);
    buf[n] = '\0';
    return buf;
}

char *keys_dwell_prefix(char *buf, size_t cap, const char *prefix,
                        const char *stage)
{
    size_t n = 0;
    s_cat(buf, cap, &n, prefix);
    s_cat(buf, cap, &n, S_DWELL);
    s_cat(buf, cap, &n, stage);
    s_cat(buf, cap, &n, "/");
    buf[n] = '\0';
    return buf;
}

int keys_dwell_bucket(const char *rest)
{
    int k = 0;
    if (*rest < '0' || *rest > '9')
        return -1;
    for (; *rest >= '0' && *rest <= '9'; rest++) {
        k = 10 * k + (*rest - '0');
        if (k > 1000000)
            return -1;
    }
    return *rest == '\0' ? k : -1;
}

char *keys_rejreason_prefix(char *buf, size_t cap, const char *prefix)
{
    return keys_counter(buf, cap, prefix, KEYS_REJREASON, NULL);
}

char *keys_conv(char *buf, size_t cap, const char *stage, bool out, int64_t day)
{
    size_t n = 0;
    s_cat(buf, cap, &n, S_CONV);
    s_cat(buf, cap, &n, stage);
    s_cat(buf, cap, &n, out ? "/out/" : "/in/");
    s_num(buf, cap, &n, day, 6);
    buf[n] = '\0';
    return buf;
}

char *keys_conv_below(char *buf, size_t cap, const char *stage)
{
    size_t n = 0;
    s_cat(buf, cap, &n, S_CONV "below/");
    s_cat(buf, cap, &n, stage);
    buf[n] = '\0';
    return buf;
}

bool keys_is_rolling(const void *key, size_t len)
{
    return len > 0 && ((const char *)key)[0] == '~';
}

char *keys_mark_stalled(char *buf, size_t cap, const char *stage)
{
    size_t n = 0;
    s_cat(buf, cap, &n, keys_stalled_prefix);
    s_cat(buf, cap, &n, stage);
    buf[n] = '\0';
    return buf;
}

const char *keys_mark_stage(const char *set)
{
    size_t n = sizeof keys_stalled_prefix - 1;
    return strncmp(set, keys_stalled_prefix, n) == 0 ? set + n : NULL;
}
