/* hnd.c: helpers shared by the handlers (effects, lead attributes). */
#include "hnd.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "fnv.h"
#include "htab.h"
#include "keys.h"
#include "timetext.h"

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

void hnd_alert_reason_join(hnd_alert_t *al, const char *a, const char *b,
                           const char *c, const char *d)
{
    if (al == NULL || al->n_reasons == HND_REASONS_MAX)
        return;
    hnd_join(al->reasons[al->n_reasons++], HND_REASON_LEN, a, b, c, d);
}

/* A counter key as s_count_key() looks it up: pre->s followed by n bytes
 * of key, hashed h. */
typedef struct {
    const hnd_prefix_t *pre;
    const char *key;
    size_t n;
    uint32_t hash;
} s_key_t;

static bool s_delta_eq(const void *ctx, uint32_t index, const void *key)
{
    const hnd_delta_t *d = &((const hnd_effects_t *)ctx)->deltas[index];
    const s_key_t *k = key;
    size_t p = k->pre->len;
    return d->hash == k->hash && memcmp(d->key, k->pre->s, p) == 0 &&
           memcmp(d->key + p, k->key, k->n) == 0 && d->key[p + k->n] == '\0';
}

const hnd_prefix_t hnd_prefix_none = { .s = "", .len = 0, .hash = FNV32_BASIS };

hnd_prefix_t *hnd_prefix_set(hnd_prefix_t *p, const char *s)
{
    size_t n = strnlen(s, sizeof p->s - 1);
    memcpy(p->s, s, n);
    p->s[n] = '\0';
    p->len = n;
    p->hash = fnv1a32(s, n);
    return p;
}

void hnd_effects_reset(hnd_effects_t *fx)
{
    fx->n_alerts = 0;
    fx->n_deltas = 0;
    fx->delta_cap = HND_DELTA_SLOTS_FIRST;
    uint32_t *slot = fx->delta_slot;   /* (the array is longer) */
    memset(slot, 0, HND_DELTA_SLOTS_FIRST * sizeof *slot);
    fx->n_deadlines = 0;
    fx->n_marks = 0;
    fx->group_ok = 0;
}

/* Grow the delta index of fx to all HND_DELTA_SLOTS slots (it is half
 * full): cleared whole, every delta put back by its hash. */
static void s_delta_grow(hnd_effects_t *fx)
{
    memset(fx->delta_slot, 0, sizeof fx->delta_slot);
    fx->delta_cap = HND_DELTA_SLOTS;
    for (size_t i = 0; i < fx->n_deltas; i++) {
        size_t at = fx->deltas[i].hash & (HND_DELTA_SLOTS - 1);
        while (fx->delta_slot[at])
            at = (at + 1) & (HND_DELTA_SLOTS - 1);
        fx->delta_slot[at] = (uint32_t)(i + 1);
    }
}

/* Add delta to the counter named pre->s + key (merged with an earlier
 * delta of the same key in this event). Every event adds to dozens of
 * counters, so no formatting here, and only key's own bytes are hashed:
 * the prefix's hash is kept with it. */
static void s_count_key(hnd_effects_t *fx, int64_t delta, const hnd_prefix_t *pre,
                        const char *key)
{
    size_t n = strnlen(key, HND_COUNTER_KEY_MAX - 1 - pre->len);
    uint32_t h = fnv1a32_more(pre->hash, key, n);
    s_key_t k = {pre, key, n, h};

    /* Open addressing over delta_cap slots for at most half as many
     * deltas. */
    size_t cap = fx->delta_cap ? fx->delta_cap : HND_DELTA_SLOTS;
    size_t at;
    uint32_t e = htab_probe(fx->delta_slot, 4, cap, h, s_delta_eq, fx, &k, &at);
    if (e) {
        fx->deltas[e - 1].delta += delta;
        return;
    }
    /* The table is sized for the handlers' worst case; overflowing it is a
     * programming error caught by the unit tests. */
    if (fx->n_deltas == HND_DELTAS_MAX)
        return;
    fx->delta_slot[at] = (uint32_t)(fx->n_deltas + 1);
    hnd_delta_t *d = &fx->deltas[fx->n_deltas++];
    memcpy(d->key, pre->s, pre->len);
    memcpy(d->key + pre->len, key, n);
    d->key[pre->len + n] = '\0';
    d->delta = delta;
    d->hash = h;
    if (cap < HND_DELTA_SLOTS && 2 * fx->n_deltas >= cap)
        s_delta_grow(fx);
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
    s_count_key(fx, delta, &hnd_prefix_none, key);
}

void hnd_count_under(hnd_effects_t *fx, int64_t delta, const hnd_prefix_t *pre,
                     const char *key)
{
    s_count_key(fx, delta, pre, key);
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

bool hnd_is_answer(const defn_t *d, const char *type)
{
    const defn_type_t *ty = defn_type(d, type);
    return ty != NULL && ty->answer;
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

int64_t hnd_scores_as_of(const hnd_lead_t *lead, int64_t at_ms)
{
    return at_ms > lead->last_event_ms ? at_ms : lead->last_event_ms;
}

double hnd_engagement_at(const defn_t *d, const hnd_lead_t *lead, int64_t at_ms)
{
    return lead->engagement *
           hnd_decay(d, hnd_scores_as_of(lead, at_ms) - lead->last_event_ms);
}

double hnd_ledger_value_at(const defn_t *d, const hnd_lead_t *lead,
                           const hnd_ledger_t *e, int64_t at_ms)
{
    if (e->kind == HND_LEDGER_FIT)
        return e->points;
    return e->points * hnd_decay(d, hnd_scores_as_of(lead, at_ms) - e->at_ms);
}

double hnd_carry_value_at(const defn_t *d, const hnd_lead_t *lead,
                          hnd_ledger_kind_t kind, int64_t at_ms)
{
    if (kind == HND_LEDGER_FIT)
        return lead->older_fit.value;
    const hnd_carry_t *c = &lead->older_engagement;
    return c->value * hnd_decay(d, hnd_scores_as_of(lead, at_ms) - c->value_at_ms);
}

double hnd_ledger_value(const defn_t *d, const hnd_lead_t *lead,
                        const hnd_ledger_t *e)
{
    return hnd_ledger_value_at(d, lead, e, lead->last_event_ms);
}

double hnd_carry_value(const defn_t *d, const hnd_lead_t *lead,
                       hnd_ledger_kind_t kind)
{
    return hnd_carry_value_at(d, lead, kind, lead->last_event_ms);
}

static __thread hnd_ledger_tap_fn *s_tap;
static __thread void *s_tap_arg;

void hnd_ledger_tap(hnd_ledger_tap_fn *fn, void *arg)
{
    s_tap = fn;
    s_tap_arg = arg;
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
    if (s_tap)
        s_tap(e, s_tap_arg);
}

char *hnd_iso_week(int64_t ms, char *out)
{
    return timetext_iso_week(ms, out);
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

const hnd_prefix_t *hnd_group(hnd_effects_t *fx, const hnd_lead_t *lead, int by)
{
    hnd_prefix_t *p = &fx->group[by];
    unsigned bit = 1u << by;
    char week[12];
    const char *name;
    if (by == KEYS_BY_PERSONA) {
        /* The persona changes within an event (h_persona): compared. */
        name = hnd_persona_group(lead->persona);
        size_t skip = strlen(keys_by_prefix(KEYS_BY_PERSONA)), n = strlen(name);
        if ((fx->group_ok & bit) && p->len == skip + n + 1 &&
            memcmp(p->s + skip, name, n) == 0)
            return p;
    } else if (by == KEYS_BY_SOURCE) {
        if ((fx->group_ok & bit) && fx->group_source == lead->first_source)
            return p;
        name = s_source_group(lead->first_source);
        fx->group_source = lead->first_source;
    } else {
        if ((fx->group_ok & bit) && fx->group_first_seen_ms == lead->first_seen_ms)
            return p;
        name = hnd_iso_week(lead->first_seen_ms, week);
        fx->group_first_seen_ms = lead->first_seen_ms;
    }
    char buf[HND_PREFIX_MAX];
    hnd_prefix_set(p, keys_group_prefix(buf, sizeof buf, (keys_by_t)by, name));
    fx->group_ok |= bit;
    return p;
}

void hnd_count_all(hnd_effects_t *fx, const hnd_lead_t *lead, int64_t delta,
                   const char *key)
{
    hnd_count_groups(fx, lead, delta, key);
    s_count_key(fx, delta, hnd_group(fx, lead, KEYS_BY_COHORT), key);
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
    s_count_key(fx, delta, &hnd_prefix_none, key);
    s_count_key(fx, delta, hnd_group(fx, lead, KEYS_BY_PERSONA), key);
    s_count_key(fx, delta, hnd_group(fx, lead, KEYS_BY_SOURCE), key);
}

void hnd_count_in(hnd_effects_t *fx, const hnd_lead_t *lead, int by,
                  int64_t delta, const char *key)
{
    s_count_key(fx, delta, hnd_group(fx, lead, by), key);
}

char *hnd_tally_key(const defn_t *d, const hnd_tally_t *t, char *buf, size_t cap)
{
    const char *stage = t->stage == HND_TALLY_NO_STAGE ? HND_GROUP_NONE
                        : t->stage < d->n_stages         ? d->stages[t->stage].name
                                                         : NULL;
    switch (t->kind) {
    case HND_TALLY_SLA:
        return keys_counter(buf, cap, "", KEYS_SLA_BREACHES, NULL);
    case HND_TALLY_DWELL:
        return stage ? keys_dwell(buf, cap, "", stage, t->bucket) : NULL;
    case HND_TALLY_STALL:
        return stage ? keys_counter(buf, cap, "", KEYS_STALLS, stage) : NULL;
    case HND_TALLY_REGRESSION:
        return stage ? keys_counter(buf, cap, "", KEYS_REGRESSIONS, stage) : NULL;
    case HND_TALLY_REJECTION:
        return stage ? keys_counter(buf, cap, "", KEYS_REJECTIONS, stage) : NULL;
    case HND_TALLY_DROPPED:
        return stage ? keys_counter(buf, cap, "", KEYS_DROPPED, stage) : NULL;
    default:
        return NULL;
    }
}

char *hnd_duration_text(int64_t ms, char *buf, size_t size)
{
    return timetext_duration(ms, TIMETEXT_DUR_SHORT, buf, size);
}

char *hnd_time_text(int64_t ms, char *out)
{
    return timetext_rfc3339(ms, false, out, 24);
}
