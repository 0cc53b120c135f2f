/* lab.c: see lab.h. */
#include "lab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "codec.h"
#include "fnv.h"
#include "htab.h"
#include "ingest.h"
#include "log.h"
#include "pipeline.h"
#include "timetext.h"
#include "xalloc.h"

/* -- the tables --------------------------------------------------------- */

typedef struct {
    char *id;
    uint32_t hash;
    uint8_t *buf;               /* the Lead's encoding, as the store keeps it */
    size_t len, cap;
    size_t n_dl;                /* pending deadlines, as the store keeps them */
    hnd_deadline_t dl[HND_DEADLINES_MAX];
    bool handed_off;
} s_lead_t;

typedef struct {
    char *key;
    uint32_t hash;
    int64_t value;
} s_counter_t;

typedef struct {
    char *key;                  /* set, NUL, lead id */
    size_t set_len;
    size_t key_len;
    uint32_t hash;
    bool on;
    int64_t since_ms;
} s_mark_t;

/* A deadline in the due-time heap; stale once the lead's record no longer
 * lists it with that due time. */
typedef struct {
    int64_t due_ms;
    uint32_t lead;
    char kind[HND_DEADLINE_KIND_MAX + 1];
} s_due_t;

struct lab {
    const defn_t *d;
    const hnd_t *const *pipe;

    s_lead_t *leads;
    size_t n_leads, cap_leads;
    htab_t lead_ix;

    s_counter_t *counters;
    size_t n_counters, cap_counters;
    htab_t counter_ix;

    s_mark_t *marks;
    size_t n_marks, cap_marks;
    htab_t mark_ix;

    s_due_t *heap;
    size_t n_heap, cap_heap;

    lab_week_t *weeks;          /* in time order of first appearance */
    size_t n_weeks, cap_weeks;

    uint64_t events, handoffs;
    int64_t watermark_ms;
    int64_t first_ms, last_ms;      /* of the events applied */

    hnd_effects_t *fx;          /* large: on the heap */
    hnd_lead_t *lead;
    uint8_t *pack;              /* CODEC_LEAD_MAX bytes */
    arena_t *arena;             /* lead decoding */
};

static bool s_lead_eq(const void *ctx, uint32_t i, const void *key)
{
    return strcmp(((const lab_t *)ctx)->leads[i].id, key) == 0;
}

static uint32_t s_lead_hash(const void *ctx, uint32_t i)
{
    return ((const lab_t *)ctx)->leads[i].hash;
}

static bool s_counter_eq(const void *ctx, uint32_t i, const void *key)
{
    return strcmp(((const lab_t *)ctx)->counters[i].key, key) == 0;
}

static uint32_t s_counter_hash(const void *ctx, uint32_t i)
{
    return ((const lab_t *)ctx)->counters[i].hash;
}

typedef struct {
    const char *key;
    size_t len;
} s_bytes_t;

static bool s_mark_eq(const void *ctx, uint32_t i, const void *key)
{
    const s_mark_t *m = &((const lab_t *)ctx)->marks[i];
    const s_bytes_t *k = key;
    return m->key_len == k->len && memcmp(m->key, k->key, k->len) == 0;
}

static uint32_t s_mark_hash(const void *ctx, uint32_t i)
{
    return ((const lab_t *)ctx)->marks[i].hash;
}

/* Make room for one more entry in an array of n entries of size sz. */
static void *s_grow(void *arr, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? 2 * *cap : 256;
    return xrealloc(arr, *cap * sz);
}

/* The slot of key in t after adding an entry would make n entries. */
static void s_index_room(htab_t *t, size_t n, htab_hash_fn *hash_of, const void *ctx)
{
    if (t->cap == 0 || 2 * n > t->cap)
        htab_rebuild(t, htab_cap_for(2 * n), n - 1, hash_of, ctx);
}

static s_lead_t *s_lead_get(lab_t *self, const char *id, bool create)
{
    uint32_t h = fnv1a32_str(id);
    if (self->lead_ix.cap) {
        uint32_t *slot = htab_slot(&self->lead_ix, h, s_lead_eq, self, id);
        if (*slot)
            return &self->leads[*slot - 1];
    }
    if (!create)
        return NULL;
    self->leads = s_grow(self->leads, self->n_leads, &self->cap_leads, sizeof *self->leads);
    s_lead_t *l = &self->leads[self->n_leads++];
    memset(l, 0, sizeof *l);
    l->id = xstrdup(id);
    l->hash = h;
    s_index_room(&self->lead_ix, self->n_leads, s_lead_hash, self);
    *htab_slot(&self->lead_ix, h, s_lead_eq, self, id) = (uint32_t)self->n_leads;
    return l;
}

static s_counter_t *s_counter(lab_t *self, const char *key, uint32_t h, bool create)
{
    if (self->counter_ix.cap) {
        uint32_t *slot = htab_slot(&self->counter_ix, h, s_counter_eq, self, key);
        if (*slot)
            return &self->counters[*slot - 1];
    }
    if (!create)
        return NULL;
    self->counters = s_grow(self->counters, self->n_counters, &self->cap_counters,
                            sizeof *self->counters);
    s_counter_t *c = &self->counters[self->n_counters++];
    c->key = xstrdup(key);
    c->hash = h;
    c->value = 0;
    s_index_room(&self->counter_ix, self->n_counters, s_counter_hash, self);
    *htab_slot(&self->counter_ix, h, s_counter_eq, self, key) = (uint32_t)self->n_counters;
    return c;
}

static void s_mark(lab_t *self, const char *set, const char *lead_id, bool on,
                   int64_t since_ms)
{
    char key[HND_MARK_SET_MAX + 1 + HND_ID_MAX + 1];
    size_t sl = strlen(set), ll = strlen(lead_id);
    memcpy(key, set, sl + 1);
    memcpy(key + sl + 1, lead_id, ll);
    s_bytes_t k = {key, sl + 1 + ll};
    uint32_t h = fnv1a32(key, k.len);
    s_mark_t *m = NULL;
    if (self->mark_ix.cap) {
        uint32_t *slot = htab_slot(&self->mark_ix, h, s_mark_eq, self, &k);
        if (*slot)
            m = &self->marks[*slot - 1];
    }
    if (m == NULL) {
        if (!on)
            return;
        self->marks = s_grow(self->marks, self->n_marks, &self->cap_marks,
                             sizeof *self->marks);
        m = &self->marks[self->n_marks++];
        m->key = xmalloc(k.len + 1);
        memcpy(m->key, key, k.len);
        m->key[k.len] = '\0';
        m->key_len = k.len;
        m->set_len = sl;
        m->hash = h;
        s_index_room(&self->mark_ix, self->n_marks, s_mark_hash, self);
        *htab_slot(&self->mark_ix, h, s_mark_eq, self, &k) = (uint32_t)self->n_marks;
    }
    m->on = on;
    m->since_ms = on ? since_ms : 0;
}

/* -- the deadline heap -------------------------------------------------- */

static bool s_due_before(const s_due_t *a, const s_due_t *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->lead < b->lead);
}

static void s_heap_push(lab_t *self, const s_due_t *e)
{
    self->heap = s_grow(self->heap, self->n_heap, &self->cap_heap, sizeof *self->heap);
    size_t i = self->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!s_due_before(e, &self->heap[p]))
            break;
        self->heap[i] = self->heap[p];
        i = p;
    }
    self->heap[i] = *e;
}

static void s_heap_pop(lab_t *self)
{
    s_due_t last = self->heap[--self->n_heap];
    size_t i = 0, n = self->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && s_due_before(&self->heap[c + 1], &self->heap[c]))
            c++;
        if (!s_due_before(&self->heap[c], &last))
            break;
        self->heap[i] = self->heap[c];
        i = c;
    }
    if (n)
        self->heap[i] = last;
}

/* -- applying ----------------------------------------------------------- */

static void s_week_add(lab_t *self, int64_t ms)
{
    char w[TIMETEXT_WEEK_LEN];
    timetext_iso_week(ms, w);
    for (size_t i = self->n_weeks; i-- > 0;) {
        if (strcmp(self->weeks[i].week, w) == 0) {
            self->weeks[i].handoffs++;
            return;
        }
    }
    self->weeks = s_grow(self->weeks, self->n_weeks, &self->cap_weeks, sizeof *self->weeks);
    lab_week_t *e = &self->weeks[self->n_weeks++];
    snprintf(e->week, sizeof e->week, "%s", w);
    e->handoffs = 1;
}

/* The effects of one event or fired deadline of lead l (NULL: the funnel
 * as a whole), as ingest applies them to the store; t is their time. */
static void s_effects(lab_t *self, s_lead_t *l, const hnd_effects_t *fx, int64_t t)
{
    for (size_t i = 0; i < fx->n_deltas; i++) {
        s_counter_t *c = s_counter(self, fx->deltas[i].key, fx->deltas[i].hash, true);
        c->value += fx->deltas[i].delta;
    }
    if (l == NULL)
        return;
    uint32_t li = (uint32_t)(l - self->leads);
    for (size_t i = 0; i < fx->n_deadlines; i++) {
        const hnd_deadline_t *d = &fx->deadlines[i];
        size_t k = 0;
        while (k < l->n_dl && strcmp(l->dl[k].kind, d->kind) != 0)
            k++;
        if (d->clear) {
            if (k < l->n_dl)
                l->dl[k] = l->dl[--l->n_dl];
            continue;
        }
        if (k == l->n_dl) {
            if (l->n_dl == HND_DEADLINES_MAX)
                continue;
            l->dl[l->n_dl++] = *d;
        } else {
            l->dl[k].due_ms = d->due_ms;
        }
        s_due_t e = {.due_ms = d->due_ms, .lead = li};
        snprintf(e.kind, sizeof e.kind, "%s", d->kind);
        s_heap_push(self, &e);
    }
    for (size_t i = 0; i < fx->n_marks; i++)
        s_mark(self, fx->marks[i].set, l->id, fx->marks[i].on, fx->marks[i].since_ms);
    for (size_t i = 0; i < fx->n_alerts; i++) {
        const hnd_alert_t *a = &fx->alerts[i];
        if (strcmp(a->topic, "handoff") == 0) {
            self->handoffs++;
            l->handed_off = true;
            s_week_add(self, a->at_ms ? a->at_ms : t);
        }
    }
}

static void s_store_lead(lab_t *self, s_lead_t *l)
{
    size_t len = codec_lead_pack_into(self->lead, self->d, self->pack);
    if (len > l->cap) {
        l->cap = len + len / 4;
        l->buf = xrealloc(l->buf, l->cap);
    }
    memcpy(l->buf, self->pack, len);
    l->len = len;
}

/* Fire the deadlines due at or before now_ms, earliest first. */
static void s_fire(lab_t *self, int64_t now_ms)
{
    while (self->n_heap && self->heap[0].due_ms <= now_ms) {
        s_due_t e = self->heap[0];
        s_heap_pop(self);
        s_lead_t *l = &self->leads[e.lead];
        size_t k = 0;
        while (k < l->n_dl && strcmp(l->dl[k].kind, e.kind) != 0)
            k++;
        if (k == l->n_dl || l->dl[k].due_ms != e.due_ms)
            continue; /* replaced or cleared since */
        l->dl[k] = l->dl[--l->n_dl];
        if (codec_lead_unpack_in(self->arena, l->buf, l->len, self->d, self->lead) == -1)
            continue;
        int64_t at = now_ms > e.due_ms ? now_ms : e.due_ms;
        if (pipeline_deadline(self->d, self->lead, e.kind, e.due_ms, at, self->fx) != 0)
            continue;
        s_effects(self, l, self->fx, at);
        s_store_lead(self, l);
    }
}

static int64_t s_counter_get(const char *key, void *arg)
{
    s_counter_t *c = s_counter(arg, key, fnv1a32_str(key), false);
    return c ? c->value : 0;
}

static void s_funnel_check(lab_t *self, int64_t now_ms)
{
    pipeline_funnel_check(self->d, now_ms, s_counter_get, self, self->fx);
    s_effects(self, NULL, self->fx, now_ms);
}

lab_t *lab_new(const defn_t *d, const hnd_t *const *pipe)
{
    lab_t *self = xcalloc(1, sizeof *self);
    self->d = d;
    self->pipe = pipe;
    self->fx = xcalloc(1, sizeof *self->fx);
    self->lead = xcalloc(1, sizeof *self->lead);
    self->pack = xmalloc(CODEC_LEAD_MAX);
    self->arena = arena_new(256 * 1024);
    return self;
}

void lab_destroy(lab_t **self_p)
{
    lab_t *self = *self_p;
    if (self == NULL)
        return;
    for (size_t i = 0; i < self->n_leads; i++) {
        free(self->leads[i].id);
        free(self->leads[i].buf);
    }
    for (size_t i = 0; i < self->n_counters; i++)
        free(self->counters[i].key);
    for (size_t i = 0; i < self->n_marks; i++)
        free(self->marks[i].key);
    free(self->leads);
    free(self->counters);
    free(self->marks);
    free(self->heap);
    free(self->weeks);
    htab_free(&self->lead_ix);
    htab_free(&self->counter_ix);
    htab_free(&self->mark_ix);
    free(self->fx);
    free(self->lead);
    free(self->pack);
    arena_destroy(&self->arena);
    free(self);
    *self_p = NULL;
}

const defn_t *lab_defn(const lab_t *self)
{
    return self->d;
}

int lab_apply(lab_t *self, const Funnel__V1__Event *pb, uint64_t seq)
{
    if (strcmp(pb->type, INGEST_DEADLINE_TYPE) == 0)
        return 1;
    if (pb->occurred_at_ms > self->watermark_ms)
        self->watermark_ms = pb->occurred_at_ms;
    s_fire(self, pb->occurred_at_ms - 1);

    hnd_kv_t kv[HND_ATTRS_MAX];
    hnd_event_t ev;
    codec_event_view(pb, kv, &ev);
    ev.log_seq = seq;
    s_lead_t *l = s_lead_get(self, pb->lead_id, false);
    bool found = l != NULL && l->len > 0;
    if (found && codec_lead_unpack_in(self->arena, l->buf, l->len, self->d, self->lead) == -1)
        found = false;
    if (pipeline_apply(self->pipe, &ev, self->d, !found, self->lead, self->fx) != 0)
        return 1;
    if (l == NULL)
        l = s_lead_get(self, self->lead->id, true);
    s_effects(self, l, self->fx, pb->occurred_at_ms);
    s_store_lead(self, l);
    if (self->events == 0 || pb->occurred_at_ms < self->first_ms)
        self->first_ms = pb->occurred_at_ms;
    if (self->events == 0 || pb->occurred_at_ms > self->last_ms)
        self->last_ms = pb->occurred_at_ms;
    self->events++;
    return 0;
}

void lab_finish(lab_t *self, int64_t now_ms)
{
    s_fire(self, now_ms);
    s_funnel_check(self, now_ms);
}

uint64_t lab_events(const lab_t *self)
{
    return self->events;
}

int64_t lab_first_ms(const lab_t *self)
{
    return self->first_ms;
}

int64_t lab_last_ms(const lab_t *self)
{
    return self->last_ms;
}

size_t lab_leads(const lab_t *self)
{
    return self->n_leads;
}

uint64_t lab_handoffs(const lab_t *self)
{
    return self->handoffs;
}

int64_t lab_watermark(const lab_t *self)
{
    return self->watermark_ms;
}

static int s_week_cmp(const void *a, const void *b)
{
    return strcmp(((const lab_week_t *)a)->week, ((const lab_week_t *)b)->week);
}

size_t lab_weeks(const lab_t *self, lab_week_t *out, size_t max)
{
    /* Sorted in place: the order of first appearance is not kept. */
    if (self->n_weeks > 1) /* weeks is NULL until the first handoff */
        qsort(self->weeks, self->n_weeks, sizeof *self->weeks, s_week_cmp);
    for (size_t i = 0; i < self->n_weeks && i < max; i++)
        out[i] = self->weeks[i];
    return self->n_weeks;
}

void lab_each_lead(const lab_t *self, lab_lead_fn *fn, void *arg)
{
    for (size_t i = 0; i < self->n_leads; i++)
        if (fn(self->leads[i].id, self->leads[i].handed_off, arg) != 0)
            return;
}

int lab_lead_handed_off(const lab_t *self, const char *lead_id, bool *handed_off)
{
    s_lead_t *l = s_lead_get((lab_t *)self, lead_id, false);
    if (l == NULL)
        return 0;
    *handed_off = l->handed_off;
    return 1;
}

/* -- the report reader -------------------------------------------------- */

static int64_t s_rd_counter(const char *key, void *arg)
{
    return s_counter_get(key, arg);
}

static int s_strp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static long s_rd_counters(void *arg, const char *prefix, report_counter_fn *fn,
                          void *fn_arg)
{
    lab_t *self = arg;
    size_t pl = strlen(prefix), n = 0;
    const char **keys = xmalloc((self->n_counters + 1) * sizeof *keys);
    for (size_t i = 0; i < self->n_counters; i++)
        if (strncmp(self->counters[i].key, prefix, pl) == 0)
            keys[n++] = self->counters[i].key;
    qsort(keys, n, sizeof *keys, s_strp_cmp);
    for (size_t i = 0; i < n; i++)
        fn(keys[i], s_counter_get(keys[i], self), fn_arg);
    free(keys);
    return (long)n;
}

static int s_markp_cmp(const void *a, const void *b)
{
    const s_mark_t *x = *(const s_mark_t *const *)a, *y = *(const s_mark_t *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static long s_rd_marks(void *arg, const char *prefix, report_mark_fn *fn, void *fn_arg)
{
    lab_t *self = arg;
    size_t pl = strlen(prefix), n = 0;
    const s_mark_t **ms = xmalloc((self->n_marks + 1) * sizeof *ms);
    for (size_t i = 0; i < self->n_marks; i++)
        if (self->marks[i].on && self->marks[i].set_len >= pl &&
            memcmp(self->marks[i].key, prefix, pl) == 0)
            ms[n++] = &self->marks[i];
    qsort(ms, n, sizeof *ms, s_markp_cmp);
    for (size_t i = 0; i < n; i++)
        fn(ms[i]->key, ms[i]->key + ms[i]->set_len + 1, ms[i]->since_ms, fn_arg);
    free(ms);
    return (long)n;
}

void lab_reader(lab_t *self, report_reader_t *rd)
{
    rd->counter = s_rd_counter;
    rd->counters = s_rd_counters;
    rd->marks = s_rd_marks;
    rd->arg = self;
}

/* -- replaying the log -------------------------------------------------- */

typedef struct {
    Funnel__V1__Event **ev;
    uint64_t *seq;
    size_t n;
    uint64_t last;
} s_chunk_t;

static void s_on_log(uint64_t seq, const void *raw, size_t len, void *arg)
{
    s_chunk_t *c = arg;
    c->last = seq;
    Funnel__V1__Event *ev = funnel__v1__event__unpack(NULL, len, raw);
    if (ev == NULL) {
        log_err("[lab] log event %llu is not decodable; skipped", (unsigned long long)seq);
        return;
    }
    c->ev[c->n] = ev;
    c->seq[c->n] = seq;
    c->n++;
}

long lab_replay_log(store_t *store, uint64_t upto, int64_t since_ms, int64_t until_ms,
                    lab_t *const *labs, size_t n, const atomic_int *cancel,
                    lab_progress_fn *progress, void *progress_arg)
{
    s_chunk_t c = {
        .ev = xcalloc(LAB_CHUNK, sizeof *c.ev),
        .seq = xcalloc(LAB_CHUNK, sizeof *c.seq),
    };
    long total = 0, rc = -1;
    uint64_t first, last, bytes, dropped;
    store_log_read(store, &first, &last, &bytes, &dropped);
    if (upto == 0 || upto > last)
        upto = last;
    uint64_t from = first ? first : 1;
    uint64_t span = upto >= from && upto > 0 ? upto - from + 1 : 0;
    if (progress && progress(0, span, progress_arg) != 0) {
        rc = -2;
        goto out;
    }

    while (from <= upto && upto > 0) {
        if (cancel && atomic_load(cancel)) {
            rc = -2;
            goto out;
        }
        c.n = 0;
        c.last = 0;
        size_t max = upto - from + 1 < LAB_CHUNK ? (size_t)(upto - from + 1) : LAB_CHUNK;
        if (store_read_begin(store) != STORE_OK)
            goto out;
        long got = store_read_log(store, from, max, s_on_log, &c);
        store_read_end(store);
        if (got < 0)
            goto out;
        if (got == 0 || c.last < from)
            break;
        for (size_t i = 0; i < c.n; i++) {
            const Funnel__V1__Event *ev = c.ev[i];
            if ((since_ms && ev->occurred_at_ms < since_ms) ||
                (until_ms && ev->occurred_at_ms >= until_ms))
                continue;
            for (size_t k = 0; k < n; k++)
                lab_apply(labs[k], ev, c.seq[i]);
        }
        for (size_t i = 0; i < c.n; i++)
            funnel__v1__event__free_unpacked(c.ev[i], NULL);
        c.n = 0;
        total += got;
        from = c.last + 1;
        if (progress && progress((uint64_t)total, span, progress_arg) != 0) {
            rc = -2;
            goto out;
        }
    }
    rc = total;
out:
    for (size_t i = 0; i < c.n; i++)
        funnel__v1__event__free_unpacked(c.ev[i], NULL);
    free(c.ev);
    free(c.seq);
    return rc;
}
