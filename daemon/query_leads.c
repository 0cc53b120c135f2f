/* query_leads.c: see query_leads.h.
 *
 * A page is one pass over candidate leads in one read snapshot:
 *
 *   sort by id   the leads from the cursor's id on, in id order, until the
 *                page is full (store_read_leads seeks to the cursor);
 *   other sorts  every candidate, keeping the page_size best after the
 *                cursor in a bounded heap, sorted at the end.
 *
 * Candidates are every lead, or with `stalled` the members of the
 * state's stalled marks (no lead record read for the others). The stage,
 * persona and source counters bound how many leads can pass those
 * filters: none at all needs no pass, and a pass that starts from the
 * first lead in this snapshot (the first page by id, any page of another
 * sort) stops once it has seen that many.
 *
 * The cursor (opaque to clients) holds the sort, the direction, the time
 * the scores are decayed to and the last row's sort key and id. Scores
 * decay to the daemon's time (query_now_ms) by hnd_engagement_at, as
 * `lead` shows them.
 */
#include "query_leads.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "hnd.h"
#include "ingest.h"
#include "keys.h"
#include "log.h"
#include "xalloc.h"

#define S_PAGE_DEFAULT 1000
#define S_PAGE_MAX 100000
#define S_CURSOR_VERSION 1
#define S_CURSOR_FIXED 19   /* version, sort, desc, as_of (8), key (8) */

/* One row of the page, its strings copied out of the snapshot. */
typedef struct {
    double key;                 /* the sort key (0 for id) */
    int stage;                  /* index into the definition, -1: unknown */
    codec_lead_summary_t s;     /* strings repointed at the buffers below */
    double engagement;          /* decayed to as_of */
    char id[HND_ID_MAX + 1];
    char stage_name[DEFN_NAME_MAX + 1];
    char persona[DEFN_NAME_MAX + 1];
} s_row_t;

typedef struct {
    const query_t *q;
    const defn_t *d;
    const Funnel__V1__LeadsQuery *lq;
    /* filters */
    bool stage_on[DEFN_STAGES_MAX];
    bool any_stage;
    uint32_t handoff_mask;      /* bit per status; 0: any */
    int64_t since_ms;           /* 0: no bound */
    /* order */
    int sort;
    bool desc;
    int64_t as_of;
    bool has_cursor;
    double cur_key;
    char cur_id[HND_ID_MAX + 1];
    size_t cur_id_len;
    /* the page */
    size_t page;                /* page_size */
    s_row_t *rows;              /* by id: in order; else a heap, worst on top */
    size_t n, cap;
    bool more;                  /* a match fell beyond the page */
    /* the pass */
    int64_t bound;              /* candidates that can match; -1: unknown */
    int64_t seen;               /* leads seen that pass the counted filters */
    bool counting;              /* the pass started at the first lead */
    uint64_t scanned;
    hnd_lead_t decay;           /* scratch for hnd_engagement_at */
    char err[1200];
} s_list_t;

/* -- filters ------------------------------------------------------------ */

static int s_stage_of(const defn_t *d, const char *name, size_t len)
{
    for (size_t i = 0; i < d->n_stages; i++)
        if (strlen(d->stages[i].name) == len && memcmp(d->stages[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* "a, b, c" of the definition's stage or persona names into buf. */
static void s_known(const defn_t *d, bool personas, char *buf, size_t cap)
{
    size_t n = personas ? d->n_personas : d->n_stages, off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < cap; i++) {
        const char *nm = personas ? d->personas[i].name : d->stages[i].name;
        off += (size_t)snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", nm);
    }
    if (personas && off < cap)
        snprintf(buf + off, cap - off, "%s- (none)", n ? ", " : "");
}

/* Whether the lead passes the filters kept in counters (stage, persona,
 * source): what the bound counts. */
static bool s_counted_pass(const s_list_t *l, const codec_lead_summary_t *s, int stage)
{
    const Funnel__V1__LeadsQuery *lq = l->lq;
    if (l->any_stage && (stage < 0 || !l->stage_on[stage]))
        return false;
    if (lq->source != FUNNEL__V1__SOURCE__SOURCE_UNSPECIFIED &&
        s->first_source != (int)lq->source)
        return false;
    if (lq->n_personas > 0) {
        bool hit = false;
        for (size_t i = 0; i < lq->n_personas && !hit; i++) {
            const char *p = lq->personas[i];
            if (strcmp(p, HND_GROUP_NONE) == 0)
                hit = s->persona_len == 0;
            else
                hit = strlen(p) == s->persona_len &&
                      memcmp(p, s->persona, s->persona_len) == 0;
        }
        if (!hit)
            return false;
    }
    return true;
}

/* The decayed engagement of a lead as of l->as_of, by the handlers' own
 * reading of it (hnd_engagement_at, as `lead` shows it), which needs only
 * the two fields of the summary set in a lead kept for the purpose. */
static double s_engagement_at(s_list_t *l, const codec_lead_summary_t *s)
{
    l->decay.engagement = s->engagement;
    l->decay.last_event_ms = s->last_event_ms;
    return hnd_engagement_at(l->d, &l->decay, l->as_of);
}

static bool s_rest_pass(const s_list_t *l, const codec_lead_summary_t *s, double total)
{
    const Funnel__V1__LeadsQuery *lq = l->lq;
    if (l->handoff_mask &&
        (s->handoff_status < 0 || s->handoff_status >= 32 ||
         !(l->handoff_mask & (1u << s->handoff_status))))
        return false;
    if (lq->qualified == FUNNEL__V1__LEADS_QUALIFIED__LEADS_QUALIFIED_YES && !s->qualified)
        return false;
    if (lq->qualified == FUNNEL__V1__LEADS_QUALIFIED__LEADS_QUALIFIED_NO && s->qualified)
        return false;
    if (lq->has_min_score && !(total >= lq->min_score))
        return false;
    if (lq->stalled && !s->stalled)
        return false;
    if (l->since_ms && s->last_event_ms < l->since_ms)
        return false;
    return true;
}

/* -- order -------------------------------------------------------------- */

static double s_key(const s_list_t *l, const codec_lead_summary_t *s, double eng)
{
    switch (l->sort) {
    case FUNNEL__V1__LEADS_SORT__LEADS_SORT_SCORE: return s->fit + eng;
    case FUNNEL__V1__LEADS_SORT__LEADS_SORT_ENGAGEMENT: return eng;
    case FUNNEL__V1__LEADS_SORT__LEADS_SORT_FIT: return s->fit;
    case FUNNEL__V1__LEADS_SORT__LEADS_SORT_STAGE_AGE:
        return (double)(l->as_of - s->stage_entered_at_ms);
    case FUNNEL__V1__LEADS_SORT__LEADS_SORT_LAST_EVENT: return (double)s->last_event_ms;
    default: return 0;
    }
}

static int s_bytes_cmp(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    return c ? c : (na > nb) - (na < nb);
}

/* <0 when (key, id) comes before (key2, id2) in the listing's order. */
static int s_order(const s_list_t *l, double key, const char *id, size_t n,
                   double key2, const char *id2, size_t n2)
{
    int c = key < key2 ? -1 : key > key2 ? 1 : s_bytes_cmp(id, n, id2, n2);
    return l->desc ? -c : c;
}

static int s_row_order(const s_list_t *l, const s_row_t *a, const s_row_t *b)
{
    return s_order(l, a->key, a->id, a->s.id_len, b->key, b->id, b->s.id_len);
}

/* The heap keeps the worst row of the page on top (index 0). */
static void s_sift_down(s_list_t *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, w = i;
        if (c < l->n && s_row_order(l, &l->rows[c], &l->rows[w]) > 0)
            w = c;
        if (c + 1 < l->n && s_row_order(l, &l->rows[c + 1], &l->rows[w]) > 0)
            w = c + 1;
        if (w == i)
            return;
        s_row_t t = l->rows[i];
        l->rows[i] = l->rows[w];
        l->rows[w] = t;
        i = w;
    }
}

static void s_sift_up(s_list_t *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (s_row_order(l, &l->rows[i], &l->rows[p]) <= 0)
            return;
        s_row_t t = l->rows[i];
        l->rows[i] = l->rows[p];
        l->rows[p] = t;
        i = p;
    }
}

/* qsort's context: the listing being sorted, in the calling thread. */
static __thread const s_list_t *s_sort_list;

static int s_qsort_rows(const void *a, const void *b)
{
    return s_row_order(s_sort_list, a, b);
}

static void s_fill(s_row_t *r, const codec_lead_summary_t *s, int stage, double key,
                   double eng)
{
    r->key = key;
    r->stage = stage;
    r->s = *s;
    r->engagement = eng;
    size_t n = s->id_len < HND_ID_MAX ? s->id_len : HND_ID_MAX;
    memcpy(r->id, s->id, n);
    r->id[n] = '\0';
    r->s.id_len = n;
    n = s->stage_len < DEFN_NAME_MAX ? s->stage_len : DEFN_NAME_MAX;
    memcpy(r->stage_name, s->stage, n);
    r->stage_name[n] = '\0';
    n = s->persona_len < DEFN_NAME_MAX ? s->persona_len : DEFN_NAME_MAX;
    memcpy(r->persona, s->persona, n);
    r->persona[n] = '\0';
    r->s.id = r->id;
    r->s.stage = r->stage_name;
    r->s.persona = r->persona;
}

/* Take a candidate lead (its Lead bytes). Returns 0 to go on, 1 when the
 * pass may stop. */
static int s_take(s_list_t *l, const char *id, size_t id_len, const void *buf, size_t len)
{
    codec_lead_summary_t s;
    l->scanned++;
    if (codec_lead_summary(buf, len, &s) == -1) {
        log_warn("[query] lead %s: its record is not a Lead; left out of the listing", id);
        return 0;
    }
    /* The record's id is the key's (a record always holds its own). */
    s.id = id;
    s.id_len = id_len;
    int stage = s_stage_of(l->d, s.stage, s.stage_len);
    if (!s_counted_pass(l, &s, stage))
        return 0;
    l->seen++;
    bool last = l->counting && l->bound >= 0 && l->seen >= l->bound;
    double eng = s_engagement_at(l, &s);
    if (!s_rest_pass(l, &s, s.fit + eng))
        return last;
    double key = s_key(l, &s, eng);
    if (l->has_cursor &&
        s_order(l, key, id, id_len, l->cur_key, l->cur_id, l->cur_id_len) <= 0)
        return last;

    if (l->sort == FUNNEL__V1__LEADS_SORT__LEADS_SORT_ID) {
        if (l->n == l->page) {
            l->more = true;
            return 1;
        }
    } else if (l->n == l->page) {
        l->more = true;
        if (s_order(l, key, id, id_len, l->rows[0].key, l->rows[0].id,
                    l->rows[0].s.id_len) >= 0)
            return last;
        s_fill(&l->rows[0], &s, stage, key, eng);
        s_sift_down(l, 0);
        return last;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        if (l->cap > l->page)
            l->cap = l->page;
        l->rows = xrealloc(l->rows, l->cap * sizeof *l->rows);
    }
    s_fill(&l->rows[l->n++], &s, stage, key, eng);
    if (l->sort != FUNNEL__V1__LEADS_SORT__LEADS_SORT_ID)
        s_sift_up(l, l->n - 1);
    return last;
}

static int s_on_lead(const char *id, size_t id_len, const void *buf, size_t len, void *arg)
{
    return s_take(arg, id, id_len, buf, len);
}

/* -- candidates from the stalled marks --------------------------------- */

typedef struct {
    const char *only;           /* the exact set wanted, or NULL: any */
    char **ids;
    size_t n, cap;
} s_ids_t;

static void s_on_mark(const char *set, const char *lead_id, int64_t since_ms, void *arg)
{
    s_ids_t *m = arg;
    (void)since_ms;
    if (m->only && strcmp(set, m->only) != 0)
        return;     /* a stage whose name begins with the wanted one's */
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->ids = xrealloc(m->ids, m->cap * sizeof *m->ids);
    }
    m->ids[m->n++] = xstrdup(lead_id);
}

static int s_cmp_id(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The stalled leads (of the wanted stages, when some are), each once, in
 * id order (descending for a descending listing by id), read and taken.
 * Returns 0 or -1 (storage error). */
static int s_pass_stalled(s_list_t *l)
{
    s_ids_t m = {0};
    char set[HND_MARK_SET_MAX + 1];
    int rc = 0;

    if (l->any_stage) {
        for (size_t i = 0; i < l->d->n_stages && rc == 0; i++)
            if (l->stage_on[i]) {
                keys_mark_stalled(set, sizeof set, l->d->stages[i].name);
                m.only = set;
                if (store_read_marks(l->q->store, set, s_on_mark, &m) < 0)
                    rc = -1;
            }
    } else if (store_read_marks(l->q->store, keys_stalled_prefix, s_on_mark, &m) < 0) {
        rc = -1;
    }
    if (rc == 0 && m.n > 1)
        qsort(m.ids, m.n, sizeof *m.ids, s_cmp_id);
    bool backwards = l->desc && l->sort == FUNNEL__V1__LEADS_SORT__LEADS_SORT_ID;
    const char *prev = NULL;
    for (size_t k = 0; rc == 0 && k < m.n; k++) {
        const char *id = m.ids[backwards ? m.n - 1 - k : k];
        if (prev && strcmp(prev, id) == 0)
            continue;   /* a lead is stalled in one stage, but once is enough */
        prev = id;
        const void *buf;
        size_t len;
        int found = store_read_lead(l->q->store, id, &buf, &len);
        if (found < 0) {
            rc = -1;
            break;
        }
        if (found == 0)
            continue;
        if (s_take(l, id, strlen(id), buf, len) != 0)
            break;
    }
    for (size_t k = 0; k < m.n; k++)
        free(m.ids[k]);
    free(m.ids);
    return rc;
}

/* -- the bound from the counters ---------------------------------------- */

static int64_t s_count(const s_list_t *l, const char *prefix, keys_counter_t c,
                       const char *stage)
{
    char key[KEYS_KEY_MAX];
    keys_counter(key, sizeof key, prefix, c, stage);
    int64_t v = store_read_counter(l->q->store, key);
    return v > 0 ? v : 0;
}

/* Leads now in the wanted stages (all: every lead) under a counter
 * prefix. */
static int64_t s_count_stages(const s_list_t *l, const char *prefix)
{
    if (!l->any_stage)
        return s_count(l, prefix, KEYS_LEADS, NULL);
    int64_t n = 0;
    for (size_t i = 0; i < l->d->n_stages; i++)
        if (l->stage_on[i])
            n += s_count(l, prefix, KEYS_NOW, l->d->stages[i].name);
    return n;
}

/* How many leads can pass the stage, persona and source filters, by the
 * counters of this snapshot; -1 when none of them is asked for. */
static int64_t s_bound(const s_list_t *l)
{
    const Funnel__V1__LeadsQuery *lq = l->lq;
    char pre[KEYS_PREFIX_MAX];
    int64_t b = -1;
    if (l->any_stage)
        b = s_count_stages(l, "");
    if (lq->n_personas > 0) {
        int64_t n = 0;
        for (size_t i = 0; i < lq->n_personas; i++) {
            bool dup = false;
            for (size_t j = 0; j < i && !dup; j++)
                dup = strcmp(lq->personas[i], lq->personas[j]) == 0;
            if (dup)
                continue;
            keys_group_prefix(pre, sizeof pre, KEYS_BY_PERSONA, lq->personas[i]);
            n += s_count_stages(l, pre);
        }
        if (b < 0 || n < b)
            b = n;
    }
    if (lq->source != FUNNEL__V1__SOURCE__SOURCE_UNSPECIFIED) {
        keys_group_prefix(pre, sizeof pre, KEYS_BY_SOURCE,
                          lq->source == FUNNEL__V1__SOURCE__SOURCE_SALES ? "sales"
                                                                       : "marketing");
        int64_t n = s_count_stages(l, pre);
        if (b < 0 || n < b)
            b = n;
    }
    return b;
}

/* -- the request -------------------------------------------------------- */

static void s_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t s_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Check the query and set up the listing. Returns 0, or -1 with l->err. */
static int s_prepare(s_list_t *l)
{
    const Funnel__V1__LeadsQuery *lq = l->lq;
    const defn_t *d = l->d;
    char known[1024];

    for (size_t i = 0; i < lq->n_stages; i++) {
        int s = defn_stage_index(d, lq->stages[i]);
        if (s < 0 || s >= DEFN_STAGES_MAX) {
            s_known(d, false, known, sizeof known);
            snprintf(l->err, sizeof l->err, "unknown stage \"%.64s\" (the stages are: %s)",
                     lq->stages[i], known);
            return -1;
        }
        l->stage_on[s] = true;
        l->any_stage = true;
    }
    for (size_t i = 0; i < lq->n_personas; i++) {
        const char *p = lq->personas[i];
        bool ok = strcmp(p, HND_GROUP_NONE) == 0;
        for (size_t k = 0; k < d->n_personas && !ok; k++)
            ok = strcmp(d->personas[k].name, p) == 0;
        if (!ok && strlen(p) <= DEFN_NAME_MAX && !strchr(p, '/')) {
            /* A persona the definition dropped that leads still have. */
            char pre[KEYS_PREFIX_MAX];
            keys_group_prefix(pre, sizeof pre, KEYS_BY_PERSONA, p);
            ok = s_count(l, pre, KEYS_LEADS, NULL) > 0;
        }
        if (!ok) {
            s_known(d, true, known, sizeof known);
            snprintf(l->err, sizeof l->err,
                     "unknown persona \"%.64s\" (the personas are: %s)", p, known);
            return -1;
        }
    }
    for (size_t i = 0; i < lq->n_handoff; i++) {
        int h = (int)lq->handoff[i];
        if (h < 0 || h >= 32 || !protobuf_c_enum_descriptor_get_value(
                                    &funnel__v1__handoff_status__descriptor, h)) {
            snprintf(l->err, sizeof l->err, "unknown handoff status %d", h);
            return -1;
        }
        l->handoff_mask |= 1u << h;
    }
    if (lq->source != FUNNEL__V1__SOURCE__SOURCE_UNSPECIFIED &&
        lq->source != FUNNEL__V1__SOURCE__SOURCE_MARKETING &&
        lq->source != FUNNEL__V1__SOURCE__SOURCE_SALES) {
        snprintf(l->err, sizeof l->err, "unknown source %d", (int)lq->source);
        return -1;
    }
    if (!protobuf_c_enum_descriptor_get_value(&funnel__v1__leads_sort__descriptor,
                                              (int)lq->sort)) {
        snprintf(l->err, sizeof l->err, "unknown sort %d", (int)lq->sort);
        return -1;
    }
    if (!protobuf_c_enum_descriptor_get_value(&funnel__v1__leads_qualified__descriptor,
                                              (int)lq->qualified)) {
        snprintf(l->err, sizeof l->err, "unknown qualified filter %d", (int)lq->qualified);
        return -1;
    }
    if (lq->within_ms < 0 || lq->since_ms < 0) {
        snprintf(l->err, sizeof l->err, "since_ms and within_ms must not be negative");
        return -1;
    }
    l->sort = (int)lq->sort;
    l->desc = lq->desc;
    l->page = lq->page_size ? lq->page_size : S_PAGE_DEFAULT;
    if (l->page > S_PAGE_MAX)
        l->page = S_PAGE_MAX;

    if (lq->cursor.len > 0) {
        const uint8_t *c = lq->cursor.data;
        size_t n = lq->cursor.len;
        if (n < S_CURSOR_FIXED || n > S_CURSOR_FIXED + HND_ID_MAX ||
            c[0] != S_CURSOR_VERSION || c[1] != (uint8_t)l->sort ||
            c[2] != (uint8_t)l->desc) {
            snprintf(l->err, sizeof l->err,
                     "bad cursor (not a next_cursor of a listing with this sort)");
            return -1;
        }
        l->has_cursor = true;
        l->as_of = (int64_t)s_get_be64(c + 3);
        uint64_t bits = s_get_be64(c + 11);
        memcpy(&l->cur_key, &bits, sizeof bits);
        l->cur_id_len = n - S_CURSOR_FIXED;
        memcpy(l->cur_id, c + S_CURSOR_FIXED, l->cur_id_len);
        l->cur_id[l->cur_id_len] = '\0';
    } else {
        l->as_of = query_now_ms(l->q);
    }
    l->since_ms = lq->since_ms;
    if (lq->within_ms > 0 && l->as_of - lq->within_ms > l->since_ms)
        l->since_ms = l->as_of - lq->within_ms;
    return 0;
}

/* Read the page, in the open snapshot. Returns 0 or -1 (storage error). */
static int s_read_page(s_list_t *l)
{
    bool by_id = l->sort == FUNNEL__V1__LEADS_SORT__LEADS_SORT_ID;
    l->bound = s_bound(l);
    if (l->bound == 0)
        return 0;       /* the counters say nothing can match */
    l->counting = !(by_id && l->has_cursor);
    if (l->lq->stalled)
        return s_pass_stalled(l);
    long n = store_read_leads(l->q->store, by_id && l->has_cursor ? l->cur_id : NULL,
                              by_id && l->has_cursor ? l->cur_id_len : 0,
                              by_id && l->desc, s_on_lead, l);
    return n < 0 ? -1 : 0;
}

static void s_row_pb(const s_list_t *l, const s_row_t *r, Funnel__V1__LeadRow *pb)
{
    funnel__v1__lead_row__init(pb);
    pb->id = (char *)r->id;
    pb->stage = (char *)r->stage_name;
    pb->stage_entered_at_ms = r->s.stage_entered_at_ms;
    pb->persona = (char *)r->persona;
    pb->fit = r->s.fit;
    pb->engagement = r->engagement;
    pb->total = r->s.fit + r->engagement;
    pb->handoff_status = (Funnel__V1__HandoffStatus)r->s.handoff_status;
    pb->first_source = (Funnel__V1__Source)r->s.first_source;
    pb->events = r->s.events;
    pb->last_event_ms = r->s.last_event_ms;
    pb->first_seen_ms = r->s.first_seen_ms;
    pb->qualified = r->s.qualified;
    pb->stalled = r->s.stalled;
    (void)l;
}

uint8_t *query_leads(const query_t *q, const Funnel__V1__LeadsQuery *lq,
                     const char *request_id, size_t *len)
{
    Funnel__V1__QueryReply r = FUNNEL__V1__QUERY_REPLY__INIT;
    Funnel__V1__LeadsReply lr = FUNNEL__V1__LEADS_REPLY__INIT;
    Funnel__V1__LeadRow *pbs = NULL, **ptrs = NULL;
    uint8_t cursor[S_CURSOR_FIXED + HND_ID_MAX];
    s_list_t *l = xcalloc(1, sizeof *l);

    l->q = q;
    l->d = *q->defn_p;
    l->lq = lq;
    r.request_id = (char *)(request_id ? request_id : "");
    if (store_read_begin(q->store) != STORE_OK) {
        snprintf(l->err, sizeof l->err, "storage error");
        goto reply;
    }
    if (s_prepare(l) == 0 && s_read_page(l) == -1)
        snprintf(l->err, sizeof l->err, "storage error reading the leads");
    store_read_end(q->store);
    if (l->err[0])
        goto reply;

    if (l->sort != FUNNEL__V1__LEADS_SORT__LEADS_SORT_ID && l->n > 1) {
        s_sort_list = l;
        qsort(l->rows, l->n, sizeof *l->rows, s_qsort_rows);
        s_sort_list = NULL;
    }
    pbs = xcalloc(l->n ? l->n : 1, sizeof *pbs);
    ptrs = xcalloc(l->n ? l->n : 1, sizeof *ptrs);
    for (size_t i = 0; i < l->n; i++) {
        s_row_pb(l, &l->rows[i], &pbs[i]);
        ptrs[i] = &pbs[i];
    }
    lr.n_leads = l->n;
    lr.leads = ptrs;
    lr.as_of_ms = l->as_of;
    lr.scanned = l->scanned;
    if (l->more && l->n > 0) {
        const s_row_t *last = &l->rows[l->n - 1];
        uint64_t bits;
        memcpy(&bits, &last->key, sizeof bits);
        cursor[0] = S_CURSOR_VERSION;
        cursor[1] = (uint8_t)l->sort;
        cursor[2] = (uint8_t)l->desc;
        s_put_be64(cursor + 3, (uint64_t)l->as_of);
        s_put_be64(cursor + 11, bits);
        memcpy(cursor + S_CURSOR_FIXED, last->id, last->s.id_len);
        lr.next_cursor.data = cursor;
        lr.next_cursor.len = S_CURSOR_FIXED + last->s.id_len;
    }
    r.reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_LEADS;
    r.leads = &lr;

reply:
    if (l->err[0])
        r.error = l->err;
    *len = funnel__v1__query_reply__get_packed_size(&r);
    uint8_t *buf = xmalloc(*len ? *len : 1);
    funnel__v1__query_reply__pack(&r, buf);
    free(pbs);
    free(ptrs);
    free(l->rows);
    free(l);
    return buf;
}

/* -- the worker --------------------------------------------------------- */

/* The worker's niceness: under CPU contention it gets a small share
 * (CFS weights: nice 10 is about a tenth of nice 0), so a listing slows
 * down before ingest does; on an idle machine it runs at full speed. */
#define S_NICE 10
/* Listings waiting for the worker at most; more are answered "busy". */
#define S_QUEUE_MAX 64

typedef struct s_job {
    struct s_job *next;
    bus_sock_t *sock;
    zmq_msg_t env[BUS_PARTS_MAX];
    int n_env;
    Funnel__V1__QueryRequest *req;
    uint8_t *reply;
    size_t len;
} s_job_t;

typedef struct {
    s_job_t *head, *tail;
    size_t n;
} s_jobs_t;

struct query_leads_worker {
    query_t q;
    query_job_fn *run;
    const char *what;       /* "listing", "lab": for the log */
    atomic_int cancel;      /* set by destroy: a long job stops early */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_jobs_t todo, done;    /* under mu */
    bool stop;              /* under mu */
    int pipe_fd[2];         /* a byte in [1]: answers are done */
    struct event *ev;
};

static void s_push(s_jobs_t *l, s_job_t *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
}

static s_job_t *s_pop(s_jobs_t *l)
{
    s_job_t *j = l->head;
    if (j) {
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
        l->n--;
    }
    return j;
}

static void s_job_free(s_job_t *j)
{
    for (int i = 0; i < j->n_env; i++)
        zmq_msg_close(&j->env[i]);
    if (j->req)
        funnel__v1__query_request__free_unpacked(j->req, NULL);
    free(j->reply);
    free(j);
}

static void *s_worker(void *arg)
{
    query_leads_worker_t *self = arg;
    /* Linux's nice is per thread: this one only. */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), S_NICE) == -1)
        log_debug("[query] %s thread keeps its priority: %s", self->what, strerror(errno));
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (!self->stop && self->todo.head == NULL)
            pthread_cond_wait(&self->cv, &self->mu);
        if (self->stop)
            break;
        s_job_t *j = s_pop(&self->todo);
        pthread_mutex_unlock(&self->mu);

        j->reply = self->run(&self->q, j->req, &self->cancel, &j->len);
        funnel__v1__query_request__free_unpacked(j->req, NULL);
        j->req = NULL;

        pthread_mutex_lock(&self->mu);
        s_push(&self->done, j);
        (void)!write(self->pipe_fd[1], "x", 1);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* The query thread: send the answers that are done. */
static void s_on_done(evutil_socket_t fd, short what, void *arg)
{
    query_leads_worker_t *self = arg;
    char buf[64];
    (void)what;
    while (read(fd, buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&self->mu);
    s_jobs_t done = self->done;
    self->done = (s_jobs_t){0};
    pthread_mutex_unlock(&self->mu);
    for (s_job_t *j; (j = s_pop(&done)) != NULL;) {
        if (bus_reply(j->sock, j->env, j->n_env, j->reply, j->len) == -1)
            log_debug("[query] %s answer not sent (client gone?)", self->what);
        s_job_free(j);
    }
}

/* query_job_fn: a page of a leads listing. */
static uint8_t *s_leads_job(const query_t *q, const Funnel__V1__QueryRequest *req,
                            const atomic_int *cancel, size_t *len)
{
    (void)cancel;
    /* A reload waits for this page, as for any query. */
    query_sync(q);
    pthread_rwlock_rdlock(q->defn_lock);
    uint8_t *reply = query_leads(q, req->leads, req->request_id, len);
    pthread_rwlock_unlock(q->defn_lock);
    return reply;
}

query_leads_worker_t *query_leads_worker_new(const query_t *q, struct event_base *base,
                                             char *err, size_t errlen)
{
    return query_worker_new(q, base, s_leads_job, "listing", err, errlen);
}

query_leads_worker_t *query_worker_new(const query_t *q, struct event_base *base,
                                       query_job_fn *run, const char *what, char *err,
                                       size_t errlen)
{
    query_leads_worker_t *self = xcalloc(1, sizeof *self);
    self->q = *q;
    self->run = run;
    self->what = what;
    atomic_init(&self->cancel, 0);
    self->pipe_fd[0] = self->pipe_fd[1] = -1;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    if (pipe2(self->pipe_fd, O_CLOEXEC | O_NONBLOCK) == -1) {
        snprintf(err, errlen, "%s thread: pipe: %s", what, strerror(errno));
        goto fail;
    }
    self->ev = event_new(base, self->pipe_fd[0], EV_READ | EV_PERSIST, s_on_done, self);
    if (self->ev == NULL || event_add(self->ev, NULL) == -1) {
        snprintf(err, errlen, "%s thread: cannot watch its pipe", what);
        goto fail;
    }
    return self;
fail:
    query_leads_worker_destroy(&self);
    return NULL;
}

int query_leads_worker_start(query_leads_worker_t *self)
{
    int rc = pthread_create(&self->thread, NULL, s_worker, self);
    if (rc != 0) {
        log_err("[query] cannot start the %s thread: %s", self->what, strerror(rc));
        return -1;
    }
    self->started = true;
    return 0;
}

int query_leads_submit(query_leads_worker_t *self, bus_sock_t *sock, bus_msg_t *msg,
                       Funnel__V1__QueryRequest **req_p)
{
    pthread_mutex_lock(&self->mu);
    bool full = self->todo.n >= S_QUEUE_MAX;
    pthread_mutex_unlock(&self->mu);
    if (full)
        return -1;
    s_job_t *j = xcalloc(1, sizeof *j);
    j->sock = sock;
    for (int i = 0; i < msg->n - 1 && i < BUS_PARTS_MAX - 1; i++) {
        zmq_msg_init(&j->env[i]);
        zmq_msg_copy(&j->env[i], &msg->part[i]);
        j->n_env++;
    }
    j->req = *req_p;
    *req_p = NULL;
    pthread_mutex_lock(&self->mu);
    s_push(&self->todo, j);
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    return 0;
}

void query_leads_worker_destroy(query_leads_worker_t **self_p)
{
    query_leads_worker_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->started) {
        atomic_store(&self->cancel, 1);
        pthread_mutex_lock(&self->mu);
        self->stop = true;
        pthread_cond_signal(&self->cv);
        pthread_mutex_unlock(&self->mu);
        pthread_join(self->thread, NULL);
    }
    for (s_job_t *j; (j = s_pop(&self->todo)) != NULL;)
        s_job_free(j);
    for (s_job_t *j; (j = s_pop(&self->done)) != NULL;)
        s_job_free(j);
    if (self->ev)
        event_free(self->ev);
    for (int i = 0; i < 2; i++)
        if (self->pipe_fd[i] != -1)
            close(self->pipe_fd[i]);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}
