/* store_split.c: the store split between two threads (see store.h,
 * "split"): the owner (the loop thread) appends to the log and commits it
 * durably; the state owner (a partition thread, partition.h) applies the
 * logged events to the state. The owner recognises duplicates and links
 * each event to its lead's previous one from a snapshot of the state and
 * from the index of what it logged that the state has not applied yet
 * (the in-flight index below). */
#include "store_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fnv.h"
#include "log.h"
#include "xalloc.h"

/* -- the in-flight index ------------------------------------------------- */

/* One logged event the state may not have applied yet: its sequence and
 * "lead id NUL event id NUL" at off in the index's bytes. */
typedef struct {
    uint64_t seq;
    size_t off;
    uint32_t n_lead;
    uint32_t n_id;
    uint32_t h_id;    /* FNV-1a 32 of lead id, NUL, event id */
    uint32_t h_lead;  /* of the lead id */
} s_flight_t;

struct store_inflight {
    s_flight_t *e;        /* in sequence order */
    size_t n, cap;
    char *buf;
    size_t len, buf_cap;
    htab_t ids;           /* e by lead and event id */
    htab_t leads;         /* e by lead: its newest entry */
    size_t n_begin;       /* at the beginning of the log group */
    size_t len_begin;
};

/* Keys looked up in the index. */
typedef struct {
    const char *lead;
    size_t n_lead;
    const char *id;
    size_t n_id;
} s_key_t;

static bool s_eq_id(const void *ctx, uint32_t index, const void *key)
{
    const struct store_inflight *f = ctx;
    const s_flight_t *e = &f->e[index];
    const s_key_t *k = key;
    return e->n_lead == k->n_lead && e->n_id == k->n_id &&
           memcmp(f->buf + e->off, k->lead, k->n_lead) == 0 &&
           memcmp(f->buf + e->off + e->n_lead + 1, k->id, k->n_id) == 0;
}

static bool s_eq_lead(const void *ctx, uint32_t index, const void *key)
{
    const struct store_inflight *f = ctx;
    const s_flight_t *e = &f->e[index];
    const s_key_t *k = key;
    return e->n_lead == k->n_lead && memcmp(f->buf + e->off, k->lead, k->n_lead) == 0;
}

static void s_key(s_key_t *k, const char *lead, const char *id)
{
    k->lead = lead;
    k->n_lead = strlen(lead);
    k->id = id;
    k->n_id = id ? strlen(id) : 0;
}

/* FNV-1a 32 of "lead id, NUL, event id" (both at most 128 bytes). */
static uint32_t s_hash_id(const s_key_t *k)
{
    char key[S_ID_KEY + 256];
    size_t nl = k->n_lead < 256 ? k->n_lead : 256, ni = k->n_id < 256 ? k->n_id : 256;
    memcpy(key, k->lead, nl);
    key[nl] = '\0';
    memcpy(key + nl + 1, k->id, ni);
    return fnv1a32(key, nl + 1 + ni);
}

/* Index entries 0 .. n-1 again, in slots for at least want entries; for
 * a lead the newest entry wins. */
static void s_flight_reindex(struct store_inflight *f, size_t want)
{
    size_t cap = htab_cap_for(want);
    if (f->ids.cap != cap) {
        htab_init(&f->ids, cap);
        htab_init(&f->leads, cap);
    } else {
        htab_clear(&f->ids);
        htab_clear(&f->leads);
    }
    for (size_t i = 0; i < f->n; i++) {
        const s_flight_t *e = &f->e[i];
        s_key_t k = {f->buf + e->off, e->n_lead, f->buf + e->off + e->n_lead + 1, e->n_id};
        *htab_slot(&f->ids, e->h_id, s_eq_id, f, &k) = (uint32_t)i + 1;
        *htab_slot(&f->leads, e->h_lead, s_eq_lead, f, &k) = (uint32_t)i + 1;
    }
}

/* Forget the entries the state applied (seq <= applied). */
static void s_flight_prune(struct store_inflight *f, uint64_t applied)
{
    size_t k = 0;
    while (k < f->n && f->e[k].seq <= applied)
        k++;
    if (k == 0)
        return;
    size_t base = k < f->n ? f->e[k].off : f->len;
    memmove(f->e, f->e + k, (f->n - k) * sizeof *f->e);
    f->n -= k;
    memmove(f->buf, f->buf + base, f->len - base);
    f->len -= base;
    for (size_t i = 0; i < f->n; i++)
        f->e[i].off -= base;
    s_flight_reindex(f, f->n + 1);
}

/* Returns the lead id's FNV-1a 32. */
static uint32_t s_flight_add(struct store_inflight *f, const char *lead, const char *id,
                             uint64_t seq)
{
    s_key_t k;
    s_key(&k, lead, id);
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 1024;
        f->e = xrealloc(f->e, f->cap * sizeof *f->e);
    }
    size_t need = k.n_lead + k.n_id + 2;
    if (f->len + need > f->buf_cap) {
        f->buf_cap = f->buf_cap ? 2 * f->buf_cap : 65536;
        while (f->len + need > f->buf_cap)
            f->buf_cap *= 2;
        f->buf = xrealloc(f->buf, f->buf_cap);
    }
    s_flight_t *e = &f->e[f->n];
    e->seq = seq;
    e->off = f->len;
    e->n_lead = (uint32_t)k.n_lead;
    e->n_id = (uint32_t)k.n_id;
    e->h_id = s_hash_id(&k);
    e->h_lead = fnv1a32(k.lead, k.n_lead);
    memcpy(f->buf + f->len, lead, k.n_lead + 1);
    memcpy(f->buf + f->len + k.n_lead + 1, id, k.n_id + 1);
    f->len += need;
    f->n++;
    uint32_t h_lead = e->h_lead;
    if (2 * (f->n + 1) > f->ids.cap) {
        s_flight_reindex(f, 2 * f->n);
        return h_lead;
    }
    *htab_slot(&f->ids, e->h_id, s_eq_id, f, &k) = (uint32_t)f->n;
    *htab_slot(&f->leads, h_lead, s_eq_lead, f, &k) = (uint32_t)f->n;
    return h_lead;
}

/* -- the leads' newest logged sequences ------------------------------------
 *
 * A lead query must see every event of its lead acknowledged before it
 * arrived, not every event of the log: at full load the state is up to
 * two groups behind the log (the intake's lag bound), and waiting for all
 * of it made a lead query's p99 the lag (56 to 127 ms). So the owner notes
 * each event's sequence in a slot chosen by its lead, and a lead query
 * waits for its lead's partition to apply the sequence in the lead's slot
 * (at most the committed one). Leads sharing a slot only make a query
 * wait longer, never less: the slot holds the newest sequence of any of
 * them. With 2M slots and about 16,000 events in flight, a query of a
 * lead with none of them waits one time in 130. A hash table of exact
 * sequences would need the owner's index of in-flight events, which only
 * the owner may read; these slots are single words written with atomics,
 * and an untouched one costs no memory. */
#define S_MARKS (1u << 21)
#define S_MARK_MOD 4294967295ull /* 2^32 - 1: a slot's sequence mod this, plus 1 */

static size_t s_mark_slot(uint32_t h_lead)
{
    return (size_t)((h_lead * 2654435761u) >> 11) & (S_MARKS - 1);
}

static void s_mark(store_t *self, uint32_t h_lead, uint64_t seq)
{
    uint32_t *marks = self->lead_marks;
    if (marks == NULL) {
        marks = xcalloc(S_MARKS, sizeof *marks);
        __atomic_store_n(&self->marks_base, seq - 1, __ATOMIC_RELAXED);
        __atomic_store_n(&self->lead_marks, marks, __ATOMIC_RELEASE);
    }
    /* The reference first: a reader that sees the slot sees it too. */
    __atomic_store_n(&self->marks_top, seq, __ATOMIC_RELAXED);
    __atomic_store_n(&marks[s_mark_slot(h_lead)], (uint32_t)(seq % S_MARK_MOD) + 1,
                     __ATOMIC_RELEASE);
}

/* The newest sequence logged for any lead of lead_id's slot (marks made). */
static uint64_t s_slot_seq(const store_t *self, const uint32_t *marks, const char *lead_id)
{
    size_t len = strlen(lead_id);
    uint32_t m = __atomic_load_n(&marks[s_mark_slot(fnv1a32(lead_id, len))], __ATOMIC_ACQUIRE);
    if (m == 0) /* No event of these leads logged since the slots were made. */
        return __atomic_load_n(&self->marks_base, __ATOMIC_RELAXED);
    /* The slot's sequence is the newest one at most S_MARK_MOD - 1 below
     * the reference; one older than that was applied long ago, and
     * whatever it decodes to is waited for at worst. */
    uint64_t top = __atomic_load_n(&self->marks_top, __ATOMIC_RELAXED);
    uint64_t back = (top % S_MARK_MOD + 1 + S_MARK_MOD - m) % S_MARK_MOD;
    return back <= top ? top - back : 0;
}

int store_wait_lead_applied(store_t *self, const char *lead_id, int timeout_ms)
{
    uint64_t committed = store_committed_seq(self);
    const uint32_t *marks = __atomic_load_n(&self->lead_marks, __ATOMIC_ACQUIRE);
    if (marks == NULL || self->n_parts == 0 || self->log_of)
        return store_wait_parts_applied(self, committed, timeout_ms);
    uint64_t seq = s_slot_seq(self, marks, lead_id);
    if (seq > committed) /* logged after this query came, not acknowledged before it */
        seq = committed;
    return store_wait_applied(store_part_of_lead(self, lead_id), seq, timeout_ms);
}

int store_read_lead_pending(store_t *self, const char *lead_id, uint64_t *head,
                            uint64_t *applied)
{
    if (self->n_parts == 0)
        return 0; /* applied before each Ack */
    const uint32_t *marks = __atomic_load_n(&self->lead_marks, __ATOMIC_ACQUIRE);
    unsigned i = store_part_index(self, lead_id);
    if (marks == NULL || self->log_of || S_RLOG(self) == NULL || !store_snap_counts(i))
        return -1;
    store_t *part = store_part_of_lead(self, lead_id);
    uint64_t seq = s_slot_seq(self, marks, lead_id), at = 0;
    if (store_meta_u64(S_RSTATE(part), part->meta, "applied_seq", &at) != 0)
        return -1;
    if (seq <= at)
        return 0;
    /* Visible in this snapshot of the log: committed before it began, so
     * acknowledged or about to be. A newer one is not (it may hide an
     * older one of the lead that is): wait then. */
    unsigned char sk[8];
    s_be64_put(sk, seq);
    MDB_val k = {.mv_size = 8, .mv_data = sk}, v;
    if (mdb_get(S_RLOG(self), self->events, &k, &v) != 0)
        return -1;
    *head = seq;
    *applied = at;
    return 1;
}

/* The entry of lead_id's event id (or, id NULL, lead_id's newest entry),
 * or NULL. */
static const s_flight_t *s_flight_find(const struct store_inflight *f, const char *lead,
                                       const char *id)
{
    if (f->n == 0)
        return NULL;
    s_key_t k;
    s_key(&k, lead, id);
    uint32_t at = id ? htab_probe(f->ids.slot, sizeof *f->ids.slot, f->ids.cap, s_hash_id(&k),
                                  s_eq_id, f, &k, NULL)
                     : htab_probe(f->leads.slot, sizeof *f->leads.slot, f->leads.cap,
                                  fnv1a32(k.lead, k.n_lead), s_eq_lead, f, &k,
                                  NULL);
    return at ? &f->e[at - 1] : NULL;
}

/* -- the loop's counters, as of each log commit ------------------------- */

struct store_lmark {
    uint64_t seq;
    store_stats_t st;
};

void store_stats_sum(store_stats_t *a, const store_stats_t *b)
{
    a->received += b->received;
    a->applied += b->applied;
    a->duplicates += b->duplicates;
    a->rejected += b->rejected;
    a->commits += b->commits;
    a->alerts += b->alerts;
    a->gaps += b->gaps;
    a->stream_messages += b->stream_messages;
    a->deadlines += b->deadlines;
}

/* The loop's own counters (see store_stats_take_logged), by offset. */
static const size_t s_logged[] = {
    offsetof(store_stats_t, received), offsetof(store_stats_t, duplicates),
    offsetof(store_stats_t, rejected), offsetof(store_stats_t, commits),
    offsetof(store_stats_t, gaps),     offsetof(store_stats_t, stream_messages),
};
#define S_NLOGGED (sizeof s_logged / sizeof s_logged[0])

void store_stats_take_logged(store_stats_t *to, const store_stats_t *from)
{
    for (size_t i = 0; i < S_NLOGGED; i++)
        memcpy((char *)to + s_logged[i], (const char *)from + s_logged[i], sizeof(uint64_t));
}

void store_stats_max_logged(store_stats_t *to, const store_stats_t *from)
{
    for (size_t i = 0; i < S_NLOGGED; i++) {
        uint64_t *t = (uint64_t *)(void *)((char *)to + s_logged[i]);
        const uint64_t *f = (const uint64_t *)(const void *)((const char *)from + s_logged[i]);
        if (*f > *t)
            *t = *f;
    }
}

/* Record the loop's counters as of the log's last sequence. Under
 * pub_lock. */
static void s_lmark_push(store_t *self)
{
    if (self->n_lmarks > 0 && self->lmarks[self->n_lmarks - 1].seq == self->last_seq) {
        self->lmarks[self->n_lmarks - 1].st = self->lstats;
        return;
    }
    if (self->n_lmarks == self->cap_lmarks) {
        self->cap_lmarks = self->cap_lmarks ? 2 * self->cap_lmarks : 64;
        self->lmarks = xrealloc(self->lmarks, self->cap_lmarks * sizeof *self->lmarks);
    }
    self->lmarks[self->n_lmarks].seq = self->last_seq;
    self->lmarks[self->n_lmarks].st = self->lstats;
    self->n_lmarks++;
}

/* The loop's counters as of the newest log commit the state's applied
 * sequence covers, the older marks dropped. Under pub_lock. */
static store_stats_t s_lmark_take(store_t *self, uint64_t applied)
{
    size_t k = 0;
    while (k + 1 < self->n_lmarks && self->lmarks[k + 1].seq <= applied)
        k++;
    memmove(self->lmarks, self->lmarks + k, (self->n_lmarks - k) * sizeof *self->lmarks);
    self->n_lmarks -= k;
    return self->lmarks[0].st;
}

/* -- beginning and ending ------------------------------------------------ */

void store_split_begin(store_t *self)
{
    pthread_mutex_lock(&self->pub_lock);
    /* The loop counts from the persisted base on; the state's side counts
     * what it applies from zero; published and persisted, they add up. */
    self->lstats = self->stats;
    memset(&self->stats, 0, sizeof self->stats);
    self->n_lmarks = 0;
    s_lmark_push(self);
    self->pub_lstats = self->lstats;
    self->pub_stats = self->stats;
    self->pub_applied_seq = self->applied_seq;
    self->log_ret = STORE_OK;
    if (self->infl == NULL)
        self->infl = xcalloc(1, sizeof *self->infl);
    self->state_owner = pthread_self();
    __atomic_store_n(&self->split, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&self->pub_lock);
}

void store_split_end(store_t *self)
{
    pthread_mutex_lock(&self->pub_lock);
    store_stats_sum(&self->stats, &self->lstats);
    memset(&self->lstats, 0, sizeof self->lstats);
    self->n_lmarks = 0;
    __atomic_store_n(&self->split, false, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&self->pub_lock);
    struct store_inflight *f = self->infl;
    if (f) {
        f->n = f->len = 0;
        htab_clear(&f->ids);
        htab_clear(&f->leads);
    }
    store_stats_publish(self);
}

void store_split_free(store_t *self)
{
    struct store_inflight *f = self->infl;
    if (f) {
        free(f->e);
        free(f->buf);
        htab_free(&f->ids);
        htab_free(&f->leads);
        free(f);
        self->infl = NULL;
    }
    if (self->lead_marks) {
        free(self->lead_marks);
        self->lead_marks = NULL;
    }
    free(self->lmarks);
    self->lmarks = NULL;
}

/* -- the log's side (owner thread) ---------------------------------------- */

static void s_look_end(store_t *self)
{
    /* Every partition's snapshot, in the reverse order of their locks. */
    for (unsigned i = self->n_parts; i-- > 0;) {
        store_t *p = self->parts[i];
        if (p->look_txn == NULL)
            continue;
        if (p->look_cur) {
            mdb_cursor_close(p->look_cur);
            p->look_cur = NULL;
        }
        mdb_txn_abort(p->look_txn);
        p->look_txn = NULL;
        pthread_rwlock_unlock(&p->state_grow_lock);
    }
}

/* Begin the owner's snapshot of p's state and read its applied sequence.
 * Returns 0 or STORE_ERR (logged). */
static int s_look_begin(store_t *p)
{
    int rc;
    pthread_rwlock_rdlock(&p->state_grow_lock);
    if ((rc = mdb_txn_begin(p->state_env, NULL, MDB_RDONLY, &p->look_txn)) != 0) {
        p->look_txn = NULL;
        pthread_rwlock_unlock(&p->state_grow_lock);
        log_err("[store] begin state snapshot: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    if ((rc = store_meta_u64(p->look_txn, p->meta, "applied_seq", &p->look_applied)) != 0) {
        log_err("[store] read the applied sequence: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    return STORE_OK;
}

int store_log_begin(store_t *self)
{
    int rc;
    self->log_full = store_env_nearly_full(self->log_env);
    if (self->log_full && !self->log_txn && !self->look_txn && !S_RLOG(self) &&
        !S_RSTATE(self) && store_grow_marked(self, true) != STORE_OK)
        return STORE_ERR;
    if (self->log_txn || self->look_txn || S_RLOG(self) || S_RSTATE(self)) {
        log_err("[store] log group begun while another transaction is open");
        return STORE_ERR;
    }
    self->log_ret = STORE_OK;
    self->log_full = false;
    self->log_seq_begin = self->last_seq;
    self->log_first_begin = self->first_seq;
    self->lstats_begin = self->lstats;

    /* The state as applied so far (every partition's), and what was
     * logged beyond it: an entry leaves the index once every partition
     * applied it. */
    uint64_t applied = UINT64_MAX;
    for (unsigned i = 0; i < self->n_parts; i++) {
        if (s_look_begin(self->parts[i]) != STORE_OK) {
            s_look_end(self);
            return STORE_ERR;
        }
        if (self->parts[i]->look_applied < applied)
            applied = self->parts[i]->look_applied;
    }
    struct store_inflight *f = self->infl;
    s_flight_prune(f, applied);
    f->n_begin = f->n;
    f->len_begin = f->len;
    if ((rc = mdb_txn_begin(self->log_env, NULL, 0, &self->log_txn)) != 0) {
        self->log_txn = NULL;
        s_look_end(self);
        log_err("[store] begin log txn: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    return STORE_OK;
}

int store_log_claim(store_t *self, const char *lead_id, const char *id, bool logged_only,
                    uint64_t *prev_seq)
{
    if (self->log_ret != STORE_OK)
        return self->log_ret;
    const struct store_inflight *f = self->infl;
    if (s_flight_find(f, lead_id, id))
        return 0;
    unsigned char kbuf[S_ID_KEY];
    MDB_val k, v;
    int rc;
    /* The lead's partition's state. */
    store_t *p = store_part_of_lead(self, lead_id);
    if (p->look_cur == NULL && (rc = mdb_cursor_open(p->look_txn, p->leads, &p->look_cur)) != 0) {
        p->look_cur = NULL;
        store_fail(self, rc, false, "event id lookup");
        return self->log_ret;
    }
    if (!logged_only) {
        k = store_id_key(kbuf, lead_id, id);
        rc = mdb_cursor_get(p->look_cur, &k, &v, MDB_SET);
        if (rc == 0)
            return 0;
        if (rc != MDB_NOTFOUND) {
            store_fail(self, rc, false, "event id lookup");
            return self->log_ret;
        }
    }
    const s_flight_t *last = s_flight_find(f, lead_id, NULL);
    *prev_seq = 0;
    if (last) {
        *prev_seq = last->seq;
        return 1;
    }
    k = s_str_val(lead_id);
    rc = mdb_cursor_get(p->look_cur, &k, &v, MDB_SET);
    if (rc == 0) {
        const void *buf;
        size_t len;
        if (!store_lead_split(NULL, lead_id, &v, &buf, &len, prev_seq))
            *prev_seq = 0;
    } else if (rc != MDB_NOTFOUND) {
        store_fail(self, rc, false, "lead lookup");
        return self->log_ret;
    }
    return 1;
}

uint64_t store_log_append(store_t *self, const char *lead_id, const char *id,
                          uint64_t prev_seq, const void *raw, size_t len)
{
    if (self->log_ret != STORE_OK)
        return 0;
    uint64_t seq = store_log_put(self, prev_seq, raw, len);
    if (seq == 0)
        return 0;
    s_mark(self, s_flight_add(self->infl, lead_id, id, seq), seq);
    return seq;
}

void store_log_abort(store_t *self)
{
    if (self->log_txn) {
        mdb_txn_abort(self->log_txn);
        self->log_txn = NULL;
        self->last_seq = self->log_seq_begin;
        self->first_seq = self->log_first_begin;
        self->lstats = self->lstats_begin;
        struct store_inflight *f = self->infl;
        if (f->n != f->n_begin) {
            f->n = f->n_begin;
            f->len = f->len_begin;
            s_flight_reindex(f, f->n + 1);
        }
    }
    s_look_end(self);
}

int store_log_commit(store_t *self)
{
    if (self->log_txn == NULL)
        return STORE_ERR;
    if (self->log_ret != STORE_OK) {
        int ret = self->log_ret;
        store_log_abort(self);
        return ret;
    }
    self->lstats.commits++;
    /* The loop's counters go with the log, as of its last sequence: split,
     * the loop counts all it logs (what an older log held beyond the
     * state was counted by the replay before, with one partition). */
    int rc = store_log_stats_put(self, &self->lstats);
    if (rc != 0) {
        store_fail(self, rc, true, "log counters write");
        int ret = self->log_ret;
        store_log_abort(self);
        return ret;
    }
    /* The durable part: sequential, fsync'd here. */
    rc = mdb_txn_commit(self->log_txn);
    self->log_txn = NULL;
    if (rc != 0) {
        /* A failed commit freed the txn: put the rest back. */
        store_fail(self, rc, true, "log commit");
        int ret = self->log_ret;
        self->last_seq = self->log_seq_begin;
        self->first_seq = self->log_first_begin;
        self->lstats = self->lstats_begin;
        struct store_inflight *f = self->infl;
        f->n = f->n_begin;
        f->len = f->len_begin;
        s_flight_reindex(f, f->n + 1);
        s_look_end(self);
        return ret;
    }
    s_look_end(self);
    self->log_counted = self->last_seq;
    pthread_mutex_lock(&self->pub_lock);
    s_lmark_push(self);
    self->pub_lstats = self->lstats;
    self->pub_last_seq = self->last_seq;
    self->pub_first_seq = self->first_seq;
    pthread_mutex_unlock(&self->pub_lock);
    return STORE_OK;
}

size_t store_log_inflight(const store_t *self)
{
    return self->infl ? self->infl->n : 0;
}

/* -- the state's side (state owner) --------------------------------------- */

/* -- a checkpoint's hold on the state's writer ----------------------------
 * The state owner waits before each group while a checkpoint holds it
 * (store_hold_writer), and says while it is in one (store_state_enter,
 * _leave), so that the checkpoint can let it end first: a copy taken with
 * the writer held never makes a group commit take fresh pages (see
 * store_checkpoint.c). */

static struct timespec s_until(int timeout_ms);

void store_state_enter(store_t *self)
{
    pthread_mutex_lock(&self->hold_lock);
    while (self->hold_want)
        pthread_cond_wait(&self->hold_cond, &self->hold_lock);
    self->hold_group = true;
    pthread_mutex_unlock(&self->hold_lock);
}

void store_state_leave(store_t *self)
{
    pthread_mutex_lock(&self->hold_lock);
    if (self->hold_group) {
        self->hold_group = false;
        pthread_cond_broadcast(&self->hold_cond);
    }
    pthread_mutex_unlock(&self->hold_lock);
}

bool store_hold_writer(store_t *self, int wait_ms)
{
    if (!store_split_on(self))
        return false;
    struct timespec until = s_until(wait_ms);
    pthread_mutex_lock(&self->hold_lock);
    self->hold_want = true;
    while (self->hold_group)
        if (pthread_cond_timedwait(&self->hold_cond, &self->hold_lock, &until) == ETIMEDOUT)
            break;
    bool held = !self->hold_group;
    if (held) {
        __atomic_store_n(&self->held, 1, __ATOMIC_RELEASE);
    } else {
        self->hold_want = false;
        pthread_cond_broadcast(&self->hold_cond);
    }
    pthread_mutex_unlock(&self->hold_lock);
    return held;
}

void store_release_writer(store_t *self)
{
    pthread_mutex_lock(&self->hold_lock);
    if (self->hold_want) {
        self->hold_want = false;
        __atomic_store_n(&self->held, 0, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&self->hold_cond);
    }
    pthread_mutex_unlock(&self->hold_lock);
}

bool store_writer_held(const store_t *self)
{
    return __atomic_load_n(&self->held, __ATOMIC_ACQUIRE) != 0;
}

int store_state_begin(store_t *self)
{
    int rc;
    /* A checkpoint about to copy the state asked for room first. */
    uint64_t asked = __atomic_load_n(&self->ahead_asked, __ATOMIC_ACQUIRE);
    if (asked > __atomic_load_n(&self->ahead_served, __ATOMIC_RELAXED) && !self->state_txn &&
        !S_RLOG(self) && !S_RSTATE(self) && store_state_grow_ahead(self))
        __atomic_store_n(&self->ahead_served, asked, __ATOMIC_RELEASE);
    self->state_full = store_env_nearly_full(self->state_env);
    if (self->state_full && !self->state_txn && !S_RLOG(self) && !S_RSTATE(self) &&
        store_grow_marked(self, true) != STORE_OK)
        return STORE_ERR;
    if (self->state_txn || S_RLOG(self) || S_RSTATE(self)) {
        log_err("[store] state group begun while another transaction is open");
        return STORE_ERR;
    }
    if (store_state_room(self) != STORE_OK)
        return STORE_ERR;
    self->ret = STORE_OK;
    self->cur_valid = self->cur_dirty = false;
    self->state_full = false;
    self->applied_seq_begin = self->applied_seq;
    self->watermark_begin = self->watermark_ms;
    self->stats_begin = self->stats;
    self->alert_seq_begin = self->alert_seq;
    self->alerts_floor_begin = self->alerts_floor;
    if ((rc = mdb_txn_begin(self->state_env, NULL, 0, &self->state_txn)) != 0) {
        self->state_txn = NULL;
        log_err("[store] begin state txn: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    return STORE_OK;
}

static void s_state_restore(store_t *self)
{
    self->applied_seq = self->applied_seq_begin;
    __atomic_store_n(&self->watermark_ms, self->watermark_begin, __ATOMIC_RELAXED);
    self->stats = self->stats_begin;
    self->alert_seq = self->alert_seq_begin;
    self->alerts_floor = self->alerts_floor_begin;
}

void store_state_abort(store_t *self)
{
    self->cur_valid = self->cur_dirty = false;
    store_alerts_group_end(self, false);
    if (self->state_txn) {
        mdb_txn_abort(self->state_txn);
        self->state_txn = NULL;
        s_state_restore(self);
    }
    store_counters_clear(self);
}

int store_state_commit(store_t *self)
{
    int rc;
    if (self->state_txn == NULL)
        return STORE_ERR;
    store_alerts_group_end(self, true);
    store_counters_flush(self);
    if (self->ret == STORE_OK) {
        pthread_mutex_lock(&self->pub_lock);
        store_stats_t st = s_lmark_take(self, self->applied_seq);
        pthread_mutex_unlock(&self->pub_lock);
        store_stats_sum(&st, &self->stats);
        if ((rc = store_meta_put_u64(self->state_txn, self->meta, "applied_seq",
                                     self->applied_seq)) != 0 ||
            (rc = store_meta_put_u64(self->state_txn, self->meta, "watermark_ms",
                                     (uint64_t)self->watermark_ms)) != 0 ||
            (rc = store_meta_put_u64(self->state_txn, self->meta, "alert_seq",
                                     self->alert_seq)) != 0 ||
            (rc = store_meta_put_u64(self->state_txn, self->meta, "alerts_floor",
                                     self->alerts_floor)) != 0 ||
            (rc = store_stats_put(self->state_txn, self->meta, &st)) != 0)
            store_fail(self, rc, false, "meta write");
    }
    if (self->ret != STORE_OK) {
        int ret = self->ret;
        store_state_abort(self);
        return ret;
    }
    rc = mdb_txn_commit(self->state_txn);
    self->state_txn = NULL;
    store_counters_clear(self);
    if (rc != 0) {
        store_fail(self, rc, false, "state commit");
        s_state_restore(self);
        return self->ret;
    }
    store_stats_publish(self);
    return STORE_OK;
}

void store_state_skip(store_t *self, uint64_t seq)
{
    if (self->ret == STORE_OK && seq > self->applied_seq)
        self->applied_seq = seq;
}

/* -- any thread ----------------------------------------------------------- */

#define S_STALLED_WAIT_MS 2000

uint64_t store_committed_seq(store_t *self)
{
    self = store_log_store(self);
    pthread_mutex_lock(&self->pub_lock);
    uint64_t seq = self->pub_last_seq;
    pthread_mutex_unlock(&self->pub_lock);
    return seq;
}

uint64_t store_applied_published(store_t *self)
{
    pthread_mutex_lock(&self->pub_lock);
    uint64_t seq = self->pub_applied_seq;
    pthread_mutex_unlock(&self->pub_lock);
    return seq;
}

/* Wait until self applied seq, or until (absolute, CLOCK_REALTIME). */
static int s_wait_one(store_t *self, uint64_t seq, struct timespec until);

static struct timespec s_until(int timeout_ms);

int store_wait_applied(store_t *self, uint64_t seq, int timeout_ms)
{
    return s_wait_one(self, seq, s_until(timeout_ms));
}

int store_wait_parts_applied(store_t *self, uint64_t seq, int timeout_ms)
{
    /* Every partition, within the one bound. */
    struct timespec until = s_until(timeout_ms);
    int reached = 1;
    for (unsigned i = 0; i < self->n_parts && reached; i++)
        reached = s_wait_one(self->parts[i], seq, until);
    return reached;
}

static struct timespec s_until(int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    return until;
}

static int s_wait_one(store_t *self, uint64_t seq, struct timespec until)
{
    if (!__atomic_load_n(&self->split, __ATOMIC_ACQUIRE))
        return 1;
    int reached = 1;
    pthread_mutex_lock(&self->pub_lock);
    bool capped = false;
    while (self->pub_applied_seq < seq) {
        if (self->pub_stalled && !capped) {
            /* A state that cannot commit is waited for briefly only: it
             * retries as soon as the log commits again. */
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            now.tv_sec += S_STALLED_WAIT_MS / 1000;
            if (now.tv_sec < until.tv_sec)
                until = now;
            capped = true;
        }
        if (pthread_cond_timedwait(&self->pub_cond, &self->pub_lock, &until) == ETIMEDOUT) {
            reached = self->pub_applied_seq >= seq;
            break;
        }
    }
    pthread_mutex_unlock(&self->pub_lock);
    return reached;
}

void store_set_stalled(store_t *self, bool stalled)
{
    pthread_mutex_lock(&self->pub_lock);
    self->pub_stalled = stalled;
    pthread_cond_broadcast(&self->pub_cond);
    pthread_mutex_unlock(&self->pub_lock);
}
