/* query_shadow.c: queries of the shadow drafts (shadow.h): answering
 * lead, funnel, friction and quality from a draft's state
 * (query_definition), and the ShadowQuery (each draft's handoffs and its
 * agreement with the live definition, lead by lead). Query thread, with
 * the definition lock held shared. */
#include "query_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "keys.h"
#include "log.h"
#include "shadow.h"
#include "timetext.h"
#include "xalloc.h"

int query_definition(const query_t *q, const char *name, query_t *sub,
                     const defn_t **defn_slot, char *err, size_t errlen)
{
    *sub = *q;
    if (name == NULL || name[0] == '\0')
        return 0;
    shadow_view_t v;
    if (shadows_find(q->shadows, name, &v) != 1) {
        snprintf(err, errlen, "no shadow draft named \"%s\" (`funnelctl shadow` lists "
                 "them; config key shadow)", name);
        return -1;
    }
    if (v.rebuilding) {
        snprintf(err, errlen, "shadow draft \"%s\" is being rebuilt from the log (%llu of "
                 "%llu entries applied); ask again when it is done", name,
                 (unsigned long long)v.applied_seq, (unsigned long long)v.log_seq);
        return -1;
    }
    /* Read-your-writes, as for the live state (query_sync). */
    uint64_t want = store_committed_seq(q->store);
    if (store_wait_applied(v.store, want, QUERY_APPLIED_WAIT_MS) != 1)
        log_warn("[query] shadow draft %s has not applied the log up to %llu; answering "
                 "from its state as it is", name, (unsigned long long)want);
    sub->store = v.store;
    *defn_slot = v.defn;
    sub->defn_p = defn_slot;
    return 0;
}

/* -- agreement with the live definition ------------------------------------- */

typedef struct {
    char *id;
    int64_t at_ms;    /* its first handoff; 0: never handed off */
} s_lead_t;

typedef struct {
    const defn_t *d;
    hnd_lead_t *lead;
    s_lead_t *v;
    size_t n, cap;
} s_side_t;

/* A handed-off lead's first handoff time (0: never handed off). */
static int64_t s_first_handoff(const hnd_lead_t *l)
{
    if (l->handoffs_sent == 0)
        return 0;
    if (l->quality.handed_off && l->quality.handoff_at_ms > 0)
        return l->quality.handoff_at_ms;
    if (l->n_handoffs > 0 && l->handoffs[0].at_ms > 0)
        return l->handoffs[0].at_ms;
    return l->handoff_at_ms > 0 ? l->handoff_at_ms : 1;
}

static int s_on_lead(const char *lead_id, size_t id_len, const void *buf, size_t len,
                     void *arg)
{
    s_side_t *s = arg;
    (void)id_len;
    if (codec_lead_unpack(buf, len, s->d, s->lead) == -1)
        return 0;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n].id = xstrdup(lead_id);
    s->v[s->n].at_ms = s_first_handoff(s->lead);
    s->n++;
    return 0;
}

/* Every lead of store, in id order, with its first handoff under d.
 * Returns 0, or -1 on a storage error. */
static int s_read_side(store_t *store, const defn_t *d, hnd_lead_t *lead, s_side_t *s,
                       int64_t *handoffs)
{
    s->d = d;
    s->lead = lead;
    if (store_read_begin(store) != STORE_OK)
        return -1;
    long rc = store_read_leads(store, "", 0, false, s_on_lead, s);
    *handoffs = store_read_counter(store, keys_name(KEYS_HANDOFFS));
    store_read_end(store);
    return rc < 0 ? -1 : 0;
}

static void s_side_free(s_side_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].id);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

/* The week row of ms in d's weeks (added, in order, when new). */
static Funnel__V1__ShadowWeek *s_week(Funnel__V1__ShadowDraft *d, int64_t ms, arena_t *a,
                                      size_t *cap)
{
    char w[TIMETEXT_WEEK_LEN];
    timetext_iso_week(ms, w);
    size_t lo = 0, hi = d->n_weeks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(d->weeks[mid]->week, w);
        if (c == 0)
            return d->weeks[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (d->n_weeks == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        Funnel__V1__ShadowWeek **nw = arena_calloc(a, *cap, sizeof *nw);
        if (d->n_weeks)
            memcpy(nw, d->weeks, d->n_weeks * sizeof *nw);
        d->weeks = nw;
    }
    Funnel__V1__ShadowWeek *e = arena_calloc(a, 1, sizeof *e);
    funnel__v1__shadow_week__init(e);
    e->week = arena_strdup(a, w);
    memmove(d->weeks + lo + 1, d->weeks + lo, (d->n_weeks - lo) * sizeof *d->weeks);
    d->weeks[lo] = e;
    d->n_weeks++;
    return e;
}

/* Compare the sorted lead lists of the live state and a draft. */
static void s_agree(const s_side_t *live, const s_side_t *draft,
                    Funnel__V1__ShadowDraft *d, arena_t *a)
{
    size_t i = 0, k = 0, cap = 0;
    while (i < live->n || k < draft->n) {
        int c = i == live->n    ? 1
                : k == draft->n ? -1
                                : strcmp(live->v[i].id, draft->v[k].id);
        int64_t l = c <= 0 ? live->v[i].at_ms : 0;
        int64_t s = c >= 0 ? draft->v[k].at_ms : 0;
        if (c <= 0)
            i++;
        if (c >= 0)
            k++;
        if (l && s) {
            d->both++;
            s_week(d, s, a, &cap)->both++;
        } else if (l) {
            d->only_live++;
            s_week(d, l, a, &cap)->only_live++;
        } else if (s) {
            d->only_draft++;
            s_week(d, s, a, &cap)->only_draft++;
        }
    }
}

void query_shadow(query_t *q, const Funnel__V1__ShadowQuery *sq, bus_sock_t *sock,
                  bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    arena_t *a = arena_new(0);
    hnd_lead_t *lead = xmalloc(sizeof *lead);
    s_side_t live = {0};
    int64_t live_handoffs = 0;
    Funnel__V1__ShadowReply rep;
    funnel__v1__shadow_reply__init(&rep);
    const char *only = sq && sq->name[0] ? sq->name : NULL;
    size_t n = shadows_count(q->shadows);
    if (only && shadows_find(q->shadows, only, &(shadow_view_t){0}) != 1) {
        r->error = arena_printf(a, "no shadow draft named \"%s\"", only);
        goto send;
    }
    if (s_read_side(q->store, *q->defn_p, lead, &live, &live_handoffs) != 0) {
        r->error = (char *)"storage error";
        goto send;
    }
    rep.drafts = arena_calloc(a, n ? n : 1, sizeof *rep.drafts);
    for (size_t i = 0; i < n; i++) {
        shadow_view_t v;
        shadows_get(q->shadows, i, &v);
        if (only && strcmp(v.name, only) != 0)
            continue;
        Funnel__V1__ShadowDraft *d = arena_calloc(a, 1, sizeof *d);
        funnel__v1__shadow_draft__init(d);
        d->name = (char *)v.name;
        d->path = (char *)v.path;
        d->definition = v.defn->name;
        d->hash = (char *)v.defn->hash;
        d->state = v.rebuilding ? (char *)"rebuilding" : (char *)"following";
        if (!v.rebuilding)
            store_wait_applied(v.store, store_committed_seq(q->store),
                               QUERY_APPLIED_WAIT_MS);
        d->applied_seq = store_applied_published(v.store);
        d->log_seq = store_committed_seq(q->store);
        d->live_handoffs = live_handoffs > 0 ? (uint64_t)live_handoffs : 0;
        s_side_t draft = {0};
        int64_t handoffs = 0;
        if (s_read_side(v.store, v.defn, lead, &draft, &handoffs) != 0) {
            s_side_free(&draft);
            r->error = (char *)"storage error";
            goto send;
        }
        d->handoffs = handoffs > 0 ? (uint64_t)handoffs : 0;
        s_agree(&live, &draft, d, a);
        s_side_free(&draft);
        rep.drafts[rep.n_drafts++] = d;
    }
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_SHADOW;
    r->shadow = &rep;
send:
    query_reply(sock, msg, r);
    r->shadow = NULL;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    s_side_free(&live);
    free(lead);
    arena_destroy(&a);
}

void query_promote(query_t *q, const Funnel__V1__PromoteQuery *pq, bus_sock_t *sock,
                   bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    char err[512];
    shadow_promoted_t out;
    Funnel__V1__PromoteReply pr;
    funnel__v1__promote_reply__init(&pr);
    if (q->shadows == NULL || pq == NULL || pq->name[0] == '\0') {
        r->error = (char *)"promote: name a shadow draft";
        goto send;
    }
    pthread_rwlock_unlock(q->defn_lock);
    int rc = shadows_promote(q->shadows, pq->name, QUERY_PROMOTE_WAIT_MS, &out, err,
                             sizeof err);
    pthread_rwlock_rdlock(q->defn_lock);
    if (rc != 0) {
        r->error = err;
        goto send;
    }
    pr.definition = out.definition;
    pr.path = out.path;
    pr.old_state = out.old_state;
    pr.applied_seq = out.applied_seq;
    pr.ingest_paused_ms = out.paused_ms;
    pr.warning = out.warning;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_PROMOTE;
    r->promote = &pr;
send:
    query_reply(sock, msg, r);
    r->promote = NULL;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
}
