/* hnd.c: helpers shared by the handlers (effects, lead attributes). */
#include "hnd.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"

static void s_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

hnd_alert_t *hnd_alert_add(hnd_effects_t *fx, const char *kind,
                           const char *topic, int stage, int from_stage)
{
    if (fx->n_alerts == HND_ALERTS_MAX)
        return NULL;
    hnd_alert_t *a = &fx->alerts[fx->n_alerts++];
    memset(a, 0, sizeof *a);
    s_copy(a->kind, sizeof a->kind, kind);
    s_copy(a->topic, sizeof a->topic, topic);
    a->stage = stage;
    a->from_stage = from_stage;
    return a;
}

void hnd_alert_reason(hnd_alert_t *a, const char *fmt, ...)
{
    if (a == NULL || a->n_reasons == HND_REASONS_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->reasons[a->n_reasons++], HND_REASON_LEN, fmt, ap);
    va_end(ap);
}

/* Add delta to the counter named key (merged with an earlier delta of the
 * same key in this event). Every event adds to dozens of counters, so no
 * formatting here: callers build keys with keys.h. */
static void s_count_key(hnd_effects_t *fx, int64_t delta, const char *key)
{
    uint32_t h = 2166136261u;
    size_t n = 0;
    for (; n < HND_COUNTER_KEY_MAX - 1 && key[n]; n++)
        h = (h ^ (unsigned char)key[n]) * 16777619u;

    /* Open addressing over 256 slots for at most 128 deltas. */
    size_t slot = h & 255;
    for (; fx->delta_slot[slot]; slot = (slot + 1) & 255) {
        hnd_delta_t *d = &fx->deltas[fx->delta_slot[slot] - 1];
        if (d->hash == h && strncmp(d->key, key, n) == 0 && d->key[n] == '\0') {
            d->delta += delta;
            return;
        }
    }
    /* The table is sized for the handlers' worst case; overflowing it is a
     * programming error caught by the unit tests. */
    if (fx->n_deltas == HND_DELTAS_MAX)
        return;
    fx->delta_slot[slot] = (uint8_t)(fx->n_deltas + 1);
    hnd_delta_t *d = &fx->deltas[fx->n_deltas++];
    memcpy(d->key, key, n);
    d->key[n] = '\0';
    d->delta = delta;
    d->hash = h;
}

char *hnd_join(char *buf, size_t cap, const char *a, const char *b,
               const char *c, const char *d)
{
    const char *parts[4] = {a, b, c, d};
    size_t n = 0;
    for (size_t i = 0; i < 4; i++)
        for (const char *p = parts[i]; p && *p && n + 1 < cap; p++)
            buf[n++] = *p;
    buf[n] = '\0';
    return buf;
}

void hnd_count(hnd_effects_t *fx, int64_t delta, const char *key)
{
    s_count_key(fx, delta, key);
}

const char *hnd_lead_attr(const hnd_lead_t *lead, const char *key)
{
    for (size_t i = 0; i < lead->n_attrs; i++)
        if (strcmp(lead->attrs[i].key, key) == 0)
            return lead->attrs[i].value;
    return NULL;
}

int hnd_lead_set_attr(hnd_lead_t *lead, const char *key, const char *value)
{
    for (size_t i = 0; i < lead->n_attrs; i++)
        if (strcmp(lead->attrs[i].key, key) == 0) {
            s_copy(lead->attrs[i].value, sizeof lead->attrs[i].value, value);
            return 0;
        }
    if (lead->n_attrs == HND_ATTRS_MAX)
        return -1;
    hnd_attr_t *a = &lead->attrs[lead->n_attrs++];
    s_copy(a->key, sizeof a->key, key);
    s_copy(a->value, sizeof a->value, value);
    return 0;
}

void hnd_lead_init(hnd_lead_t *lead, const hnd_event_t *ev)
{
    memset(lead, 0, sizeof *lead);
    s_copy(lead->id, sizeof lead->id, ev->lead_id);
    lead->stage = -1;
    lead->first_seen_ms = ev->at_ms;
    lead->last_event_ms = ev->at_ms;
    lead->stage_entered_at_ms = ev->at_ms;
    lead->first_source = ev->source;
}

void hnd_lead_loaded(const defn_t *d, hnd_lead_t *lead)
{
    lead->fit_mask = 0;
    for (size_t i = 0; i < d->n_fit && i < DEFN_FIT_MAX; i++)
        if (hnd_cond_match(&d->fit[i].cond, lead))
            lead->fit_mask |= 1ull << i;
}

uint32_t hnd_lead_count(const hnd_lead_t *lead, const char *type)
{
    for (size_t i = 0; i < lead->n_counts; i++)
        if (strcmp(lead->counts[i].type, type) == 0)
            return lead->counts[i].n;
    return 0;
}

/* The whole text must be a finite number. */
static bool s_number(const char *s, double *out)
{
    char *end;
    if (!s || !*s)
        return false;
    *out = strtod(s, &end);
    while (*end == ' ')
        end++;
    return *end == '\0' && isfinite(*out);
}

static bool s_range(const defn_cond_t *c, double v)
{
    return (!c->has_min || v >= c->min) && (!c->has_max || v <= c->max);
}

bool hnd_cond_match(const defn_cond_t *c, const hnd_lead_t *lead)
{
    if (c->op == DEFN_COND_COUNT)
        return s_range(c, (double)hnd_lead_count(lead, c->attr));
    const char *v = hnd_lead_attr(lead, c->attr);
    double x;
    switch (c->op) {
    case DEFN_COND_EQUALS:
        return v && strcmp(v, c->values[0]) == 0;
    case DEFN_COND_ONE_OF:
        if (!v)
            return false;
        for (size_t i = 0; i < c->n_values; i++)
            if (strcmp(v, c->values[i]) == 0)
                return true;
        return false;
    case DEFN_COND_PRESENT:
        return (v && *v) == c->present;
    case DEFN_COND_RANGE:
        return s_number(v, &x) && s_range(c, x);
    default:
        return false;
    }
}

double hnd_decay(const defn_t *d, int64_t dt_ms)
{
    if (d->half_life_ms <= 0 || dt_ms <= 0)
        return 1.0;
    return exp2(-(double)dt_ms / (double)d->half_life_ms);
}

double hnd_ledger_value(const defn_t *d, const hnd_lead_t *lead,
                        const hnd_ledger_t *e)
{
    if (e->kind == HND_LEDGER_FIT)
        return e->points;
    return e->points * hnd_decay(d, lead->last_event_ms - e->at_ms);
}

double hnd_carry_value(const defn_t *d, const hnd_lead_t *lead,
                       hnd_ledger_kind_t kind)
{
    if (kind == HND_LEDGER_FIT)
        return lead->older_fit.value;
    const hnd_carry_t *c = &lead->older_engagement;
    return c->value * hnd_decay(d, lead->last_event_ms - c->value_at_ms);
}

void hnd_ledger_add(const defn_t *d, hnd_lead_t *lead, hnd_ledger_kind_t kind,
                    const char *rule, const hnd_event_t *ev, int64_t at_ms,
                    double points, int64_t ref_ms)
{
    if (lead->n_ledger == HND_LEDGER_MAX) {
        const hnd_ledger_t *old = &lead->ledger[0];
        hnd_carry_t *c = old->kind == HND_LEDGER_FIT ? &lead->older_fit
                                                     : &lead->older_engagement;
        c->entries++;
        c->points += old->points;
        if (old->kind == HND_LEDGER_FIT) {
            c->value += old->points;
        } else {
            c->value = c->value * hnd_decay(d, ref_ms - c->value_at_ms) +
                       old->points * hnd_decay(d, ref_ms - old->at_ms);
            c->value_at_ms = ref_ms;
        }
        memmove(&lead->ledger[0], &lead->ledger[1],
                (HND_LEDGER_MAX - 1) * sizeof lead->ledger[0]);
        lead->n_ledger--;
    }
    hnd_ledger_t *e = &lead->ledger[lead->n_ledger++];
    e->kind = kind;
    s_copy(e->rule, sizeof e->rule, rule);
    s_copy(e->event_id, sizeof e->event_id, ev->id ? ev->id : "");
    e->seq = ev->log_seq;
    e->at_ms = at_ms;
    e->points = points;
}

/* Whole days since 1970-01-01 of ms, rounded down. */
static int64_t s_days_of_ms(int64_t ms)
{
    return ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
}

/* Days since 1970-01-01 to the civil date y-m-d (H. Hinnant's
 * algorithm). */
static void s_civil_of_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

/* Days since 1970-01-01 of January 1st of year y. */
static int64_t s_days_of_jan1(int64_t y)
{
    y -= 1;     /* March-based year of Jan 1st */
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = 306;  /* Jan 1st, counted from March 1st */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

char *hnd_iso_week(int64_t ms, char *out)
{
    int64_t days = s_days_of_ms(ms);
    /* Asked for once per cohort counter, mostly about the same few days:
     * the last answer is remembered, per thread. */
    static __thread int64_t last_days = INT64_MIN;
    static __thread char last[12];
    if (days == last_days) {
        memcpy(out, last, sizeof last);
        return out;
    }
    int64_t wd = ((days + 3) % 7 + 7) % 7;  /* 0 = Monday; 1970-01-01: Thu */
    int64_t thu = days - wd + 3;            /* the week's Thursday */
    int64_t year, month, mday;
    s_civil_of_days(thu, &year, &month, &mday);
    int64_t week = (thu - s_days_of_jan1(year)) / 7 + 1;
    snprintf(out, 12, "%04d-W%02d", (int)(year % 10000), (int)week);
    memcpy(last, out, sizeof last);
    last_days = days;
    return out;
}

const char *hnd_persona_group(const char *persona)
{
    return persona && *persona ? persona : HND_GROUP_NONE;
}

static const char *s_source_group(hnd_source_t s)
{
    return s == HND_SRC_MARKETING ? "marketing"
           : s == HND_SRC_SALES   ? "sales"
                                  : HND_GROUP_NONE;
}

void hnd_count_all(hnd_effects_t *fx, const hnd_lead_t *lead, int64_t delta,
                   const char *key)
{
    char week[12], buf[HND_COUNTER_KEY_MAX];
    hnd_count_groups(fx, lead, delta, key);
    s_count_key(fx, delta, keys_in_group(buf, sizeof buf, KEYS_BY_COHORT,
                                         hnd_iso_week(lead->first_seen_ms, week),
                                         key));
}

static hnd_deadline_t *s_deadline_slot(hnd_effects_t *fx, const char *kind)
{
    for (size_t i = 0; i < fx->n_deadlines; i++)
        if (strcmp(fx->deadlines[i].kind, kind) == 0)
            return &fx->deadlines[i];
    if (fx->n_deadlines == HND_DEADLINES_MAX)
        return NULL;
    hnd_deadline_t *d = &fx->deadlines[fx->n_deadlines++];
    memset(d, 0, sizeof *d);
    s_copy(d->kind, sizeof d->kind, kind);
    return d;
}

void hnd_deadline_set(hnd_effects_t *fx, const char *kind, int64_t due_ms)
{
    hnd_deadline_t *d = s_deadline_slot(fx, kind);
    if (d) {
        d->due_ms = due_ms;
        d->clear = false;
    }
}

void hnd_deadline_clear(hnd_effects_t *fx, const char *kind)
{
    hnd_deadline_t *d = s_deadline_slot(fx, kind);
    if (d) {
        d->due_ms = 0;
        d->clear = true;
    }
}

void hnd_mark(hnd_effects_t *fx, bool on, int64_t since_ms, const char *set)
{
    /* The last word on a set within one event wins. */
    for (size_t i = 0; i < fx->n_marks; i++)
        if (strcmp(fx->marks[i].set, set) == 0) {
            fx->marks[i].on = on;
            fx->marks[i].since_ms = since_ms;
            return;
        }
    if (fx->n_marks == HND_MARKS_MAX)
        return;
    hnd_mark_t *m = &fx->marks[fx->n_marks++];
    s_copy(m->set, sizeof m->set, set);
    m->on = on;
    m->since_ms = since_ms;
}

void hnd_count_groups(hnd_effects_t *fx, const hnd_lead_t *lead, int64_t delta,
                      const char *key)
{
    char buf[HND_COUNTER_KEY_MAX];
    s_count_key(fx, delta, key);
    s_count_key(fx, delta, keys_in_group(buf, sizeof buf, KEYS_BY_PERSONA,
                                         hnd_persona_group(lead->persona), key));
    s_count_key(fx, delta, keys_in_group(buf, sizeof buf, KEYS_BY_SOURCE,
                                         s_source_group(lead->first_source), key));
}

char *hnd_duration_text(int64_t ms, char *buf, size_t size)
{
    static const struct { const char *u; int64_t ms; } units[] = {
        { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 },
    };
    if (ms < 0)
        ms = 0;
    if (ms < 1000) {
        snprintf(buf, size, "%dms", (int)ms);
        return buf;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms < units[i].ms)
            continue;
        int64_t a = ms / units[i].ms;
        int64_t rest = ms % units[i].ms;
        if (i + 1 < sizeof units / sizeof units[0] &&
            rest >= units[i + 1].ms)
            snprintf(buf, size, "%lld%s %lld%s", (long long)a, units[i].u,
                     (long long)(rest / units[i + 1].ms), units[i + 1].u);
        else
            snprintf(buf, size, "%lld%s", (long long)a, units[i].u);
        break;
    }
    return buf;
}

char *hnd_time_text(int64_t ms, char *out)
{
    int64_t days = s_days_of_ms(ms);
    int64_t sod = (ms - days * 86400000) / 1000;
    int64_t y, mm, dd;
    s_civil_of_days(days, &y, &mm, &dd);
    snprintf(out, 24, "%04d-%02d-%02dT%02d:%02d:%02dZ", (int)(y % 10000),
             (int)mm, (int)dd, (int)(sod / 3600), (int)(sod / 60 % 60),
             (int)(sod % 60));
    return out;
}
