/* store_read.c: read snapshots and what is read through them (see
 * store.h): leads, counters, marks, the next deadline, timelines and the
 * log; and the counters published for other threads. Any thread, each in
 * its own snapshot. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "xalloc.h"

__thread struct store_snapshot store_snapshot;

/* -- reads ----------------------------------------------------------------- */


/* End the snapshots of partitions 1 .. n-1 of this thread's snapshot,
 * in the reverse order of their locks. */
static void s_parts_end(store_t *self, unsigned n)
{
    for (unsigned i = n; i-- > 1;) {
        mdb_txn_abort(store_snapshot.rpart[i]);
        store_snapshot.rpart[i] = NULL;
        pthread_rwlock_unlock(&self->parts[i]->state_grow_lock);
    }
    store_snapshot.rpart[0] = NULL;
}

int store_read_begin(store_t *self)
{
    MDB_txn *rlog = NULL, *rstate = NULL;
    int rc;

    if (store_snapshot.store != NULL)
        return STORE_ERR; /* this thread has a snapshot open already */
    /* A group is read by its own thread only (split: the log's by the
     * owner, the state's by the partition thread). */
    bool owner = pthread_equal(pthread_self(), self->owner);
    bool state_owner = store_split_on(self) ? pthread_equal(pthread_self(), self->state_owner)
                                            : owner;
    if (state_owner && self->state_txn)
        return STORE_ERR;
    if (owner && (self->log_txn || self->look_txn))
        return STORE_ERR;
    /* Always the state's lock first, then the log's (as store_grow); the
     * partitions' in their order (a primary's snapshot holds them all). */
    pthread_rwlock_rdlock(&self->state_grow_lock);
    if ((rc = mdb_txn_begin(self->state_env, NULL, MDB_RDONLY, &rstate)) != 0) {
        pthread_rwlock_unlock(&self->state_grow_lock);
        log_err("[store] begin read: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    store_snapshot.rpart[0] = rstate;
    for (unsigned i = 1; i < self->n_parts; i++) {
        store_t *p = self->parts[i];
        pthread_rwlock_rdlock(&p->state_grow_lock);
        if ((rc = mdb_txn_begin(p->state_env, NULL, MDB_RDONLY, &store_snapshot.rpart[i])) != 0) {
            pthread_rwlock_unlock(&p->state_grow_lock);
            s_parts_end(self, i);
            mdb_txn_abort(rstate);
            pthread_rwlock_unlock(&self->state_grow_lock);
            log_err("[store] begin read of partition %u: %s", i, mdb_strerror(rc));
            return STORE_ERR;
        }
    }
    pthread_rwlock_rdlock(S_LOG_LOCK(self));
    if ((rc = mdb_txn_begin(self->log_env, NULL, MDB_RDONLY, &rlog)) != 0) {
        pthread_rwlock_unlock(S_LOG_LOCK(self));
        s_parts_end(self, self->n_parts);
        mdb_txn_abort(rstate);
        pthread_rwlock_unlock(&self->state_grow_lock);
        log_err("[store] begin read: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    store_snapshot.store = self;
    /* A partition's or a draft's own snapshot counts itself. */
    store_snapshot.counted = self->primary || self->log_of
                                 ? UINT64_MAX
                                 : __atomic_load_n(&self->counted, __ATOMIC_ACQUIRE);
    store_snapshot.rlog = rlog;
    store_snapshot.rstate = rstate;
    return STORE_OK;
}

void store_read_end(store_t *self)
{
    if (store_snapshot.store != self)
        return;
    mdb_txn_abort(store_snapshot.rlog);
    pthread_rwlock_unlock(S_LOG_LOCK(self));
    s_parts_end(self, self->n_parts);
    mdb_txn_abort(store_snapshot.rstate);
    store_snapshot.store = NULL;
    store_snapshot.rlog = store_snapshot.rstate = NULL;
    pthread_rwlock_unlock(&self->state_grow_lock);
}

void store_stats_publish(store_t *self)
{
    /* Split, each side publishes what it owns. */
    bool state_side = store_state_side(self), log_side = !store_split_on(self) || !state_side;
    pthread_mutex_lock(&self->pub_lock);
    if (state_side) {
        self->pub_stats = self->stats;
        self->pub_alert_seq = self->alert_seq;
        self->pub_alerts_floor = self->alerts_floor;
        if (self->pub_applied_seq != self->applied_seq) {
            self->pub_applied_seq = self->applied_seq;
            pthread_cond_broadcast(&self->pub_cond);
        }
    }
    if (log_side) {
        if (store_split_on(self))
            self->pub_lstats = self->lstats;
        self->pub_last_seq = self->last_seq;
        self->pub_first_seq = self->first_seq;
    }
    pthread_mutex_unlock(&self->pub_lock);
}

void store_log_read(store_t *self, uint64_t *first, uint64_t *last, uint64_t *bytes,
                    uint64_t *dropped)
{
    if (self->log_of) {
        store_log_read(self->log_of, first, last, bytes, dropped);
        return;
    }
    pthread_mutex_lock(&self->pub_lock);
    *first = self->pub_first_seq;
    *last = self->pub_last_seq;
    *dropped = self->log_dropped;
    pthread_mutex_unlock(&self->pub_lock);
    /* The pages of the log's entries, from a snapshot of its own (only the
     * log's map lock: this never waits for a checkpoint). */
    *bytes = 0;
    MDB_txn *txn;
    MDB_stat st;
    pthread_rwlock_rdlock(S_LOG_LOCK(self));
    if (mdb_txn_begin(self->log_env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_stat(txn, self->events, &st) == 0)
            *bytes = (uint64_t)st.ms_psize *
                     (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
        mdb_txn_abort(txn);
    }
    pthread_rwlock_unlock(S_LOG_LOCK(self));
}

void store_stats_read(store_t *self, store_stats_t *out, uint64_t *last_seq)
{
    pthread_mutex_lock(&self->pub_lock);
    /* The state's side of partition 0 unless it is not counted. */
    if (self->primary || self->log_of || store_counted(self, 0))
        *out = self->pub_stats;
    else
        memset(out, 0, sizeof *out);
    if (store_split_on(self))
        store_stats_sum(out, &self->pub_lstats);
    *last_seq = self->pub_last_seq;
    pthread_mutex_unlock(&self->pub_lock);
    /* And what the other partitions counted applied. */
    for (unsigned i = 1; i < self->n_parts; i++) {
        if (!store_counted(self, i))
            continue;
        store_stats_t ps;
        uint64_t ignored;
        store_stats_read(self->parts[i], &ps, &ignored);
        store_stats_sum(out, &ps);
    }
}

/* lead_id's record in its partition (if counted) in the read snapshot:
 * 1 and *v, 0 for an unknown lead, or STORE_ERR (logged). */
static int s_read_record(store_t *self, const char *lead_id, MDB_val *v)
{
    if (!store_snap_counts(store_part_index(self, lead_id)))
        return 0;
    self = store_part_of_lead(self, lead_id);
    MDB_val k = s_str_val(lead_id);
    int rc = mdb_get(S_RSTATE(self), self->leads, &k, v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0) {
        log_err("[store] read lead: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    return 1;
}

int store_read_lead(store_t *self, const char *lead_id, const void **buf,
                    size_t *len)
{
    MDB_val v;
    int got = s_read_record(self, lead_id, &v);
    if (got != 1)
        return got;
    return store_lead_split(NULL, lead_id, &v, buf, len, NULL);
}

long store_read_lead_deadlines(store_t *self, const char *lead_id, store_lead_deadline_t *out,
                               size_t max)
{
    MDB_val v;
    int got = s_read_record(self, lead_id, &v);
    if (got != 1)
        return got;
    const unsigned char *p = v.mv_data;
    if (v.mv_size < S_LEAD_FIXED || p[8] > S_LEAD_DEADLINES ||
        v.mv_size < S_LEAD_FIXED + (size_t)p[8] * S_LEAD_DL)
        return 0; /* malformed: store_read_lead says so */
    size_t n = p[8] < max ? p[8] : max;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *d = p + S_LEAD_FIXED + i * S_LEAD_DL;
        memcpy(out[i].kind, d, 16);
        out[i].kind[15] = '\0';
        out[i].due_ms = (int64_t)s_be64_get(d + 16);
    }
    return (long)n;
}

/* Longest lead id a scan hands out (validate.c allows 128 bytes). */
#define S_SCAN_ID_MAX 256
/* Event ids of one lead stepped over one by one before the scan seeks
 * past the rest of them (a seek costs a descent of the tree). */
#define S_SCAN_IDS_STEPPED 8

/* Bytewise order of two keys (LMDB's default). */
static int s_val_cmp(const MDB_val *a, const MDB_val *b)
{
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    return c ? c : (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

/* One partition's walk through its leads in id order, from after: at
 * the next lead record (id, its Lead bytes) once s_lead_next returned 1. */
typedef struct {
    MDB_cursor *cur;
    const char *after;
    size_t after_len;
    bool desc;
    bool started;
    int ids;                 /* consecutive event-id keys stepped over */
    MDB_val k, v;
    char id[S_SCAN_ID_MAX + 2];
    size_t id_len;
    const void *buf;
    size_t len;
    int rc;
} s_lead_walk_t;

/* Move w to its next lead: 1 there, 0 at the end, -1 on an LMDB error
 * (in w->rc). */
static int s_lead_next(s_lead_walk_t *w)
{
    int rc;
    MDB_val *k = &w->k, *v = &w->v;
    if (!w->started) {
        w->started = true;
        *k = (MDB_val){.mv_size = w->after_len, .mv_data = (void *)w->after};
        if (w->after_len == 0) {
            rc = mdb_cursor_get(w->cur, k, v, w->desc ? MDB_LAST : MDB_FIRST);
        } else {
            rc = mdb_cursor_get(w->cur, k, v, MDB_SET_RANGE);
            if (w->desc)
                rc = rc == MDB_NOTFOUND ? mdb_cursor_get(w->cur, k, v, MDB_LAST)
                                        : rc == 0 ? mdb_cursor_get(w->cur, k, v, MDB_PREV)
                                                  : rc;
        }
    } else {
        rc = mdb_cursor_get(w->cur, k, v, w->desc ? MDB_PREV : MDB_NEXT);
    }
    /* Ascending, the first key may be `after` itself (exclusive); either
     * way its event ids follow it and are stepped over below. Descending
     * from SET_RANGE's key (>= after), MDB_PREV gave the last key < after,
     * unless SET_RANGE found nothing, when MDB_LAST is that key. */
    for (; rc == 0; rc = mdb_cursor_get(w->cur, k, v, w->desc ? MDB_PREV : MDB_NEXT)) {
        const char *nul = memchr(k->mv_data, '\0', k->mv_size);
        if (nul) {
            /* An event id "lead id, NUL, event id": ascending, after a
             * few, jump to the first key past the lead's ids ("lead id"
             * then \x01; no lead id holds a NUL). */
            size_t plen = (size_t)(nul - (const char *)k->mv_data);
            if (!w->desc && ++w->ids > S_SCAN_IDS_STEPPED && plen <= S_SCAN_ID_MAX) {
                memcpy(w->id, k->mv_data, plen);
                w->id[plen] = '\x01';
                MDB_val seek = {.mv_size = plen + 1, .mv_data = w->id};
                w->ids = 0;
                rc = mdb_cursor_get(w->cur, &seek, v, MDB_SET_RANGE);
                if (rc != 0)
                    break;
                *k = seek;
                /* Process the key landed on as the loop would. */
                if (memchr(k->mv_data, '\0', k->mv_size))
                    continue;
            } else {
                continue;
            }
        }
        w->ids = 0;
        if (k->mv_size == w->after_len && w->after_len > 0 &&
            memcmp(k->mv_data, w->after, w->after_len) == 0)
            continue;
        if (k->mv_size > S_SCAN_ID_MAX)
            continue;
        if (!store_lead_split(NULL, NULL, v, &w->buf, &w->len, NULL))
            continue;
        memcpy(w->id, k->mv_data, k->mv_size);
        w->id[k->mv_size] = '\0';
        w->id_len = k->mv_size;
        return 1;
    }
    if (rc == MDB_NOTFOUND)
        return 0;
    w->rc = rc;
    return -1;
}

long store_read_leads(store_t *self, const char *after, size_t after_len, bool desc,
                      store_lead_fn *fn, void *arg)
{
    /* Every partition's walk, merged in id order (a lead is in one). */
    s_lead_walk_t *w = xcalloc(self->n_parts, sizeof *w);
    bool *at = xcalloc(self->n_parts, sizeof *at);
    unsigned np = self->n_parts;
    long n = 0;
    int rc = 0;

    for (unsigned i = 0; i < np; i++) {
        store_t *p = self->parts[i];
        if (!store_snap_counts(i))
            continue; /* at[i] stays false */
        w[i].after = after;
        w[i].after_len = after_len;
        w[i].desc = desc;
        if ((rc = mdb_cursor_open(S_RSTATE(p), p->leads, &w[i].cur)) != 0)
            goto fail;
        int got = s_lead_next(&w[i]);
        if (got < 0) {
            rc = w[i].rc;
            goto fail;
        }
        at[i] = got == 1;
    }
    for (;;) {
        int best = -1;
        for (unsigned i = 0; i < np; i++) {
            if (!at[i])
                continue;
            if (best < 0) {
                best = (int)i;
                continue;
            }
            MDB_val a = {.mv_size = w[i].id_len, .mv_data = w[i].id};
            MDB_val b = {.mv_size = w[best].id_len, .mv_data = w[best].id};
            int c = s_val_cmp(&a, &b);
            if (desc ? c > 0 : c < 0)
                best = (int)i;
        }
        if (best < 0)
            break;
        n++;
        if (fn(w[best].id, w[best].id_len, w[best].buf, w[best].len, arg) != 0)
            break;
        int got = s_lead_next(&w[best]);
        if (got < 0) {
            rc = w[best].rc;
            goto fail;
        }
        at[best] = got == 1;
    }
    for (unsigned i = 0; i < np; i++)
        if (w[i].cur)
            mdb_cursor_close(w[i].cur);
    free(w);
    free(at);
    return n;

fail:
    for (unsigned i = 0; i < np; i++)
        if (w[i].cur)
            mdb_cursor_close(w[i].cur);
    free(w);
    free(at);
    log_err("[store] read leads: %s", mdb_strerror(rc));
    return STORE_ERR;
}

int64_t store_read_watermark(store_t *self)
{
    /* The largest of the partitions'. */
    int64_t best = 0;
    for (unsigned i = 0; i < self->n_parts; i++) {
        store_t *p = self->parts[i];
        uint64_t ms = 0;
        if (store_meta_u64(S_RSTATE(p), p->meta, "watermark_ms", &ms) == 0 &&
            (int64_t)ms > best)
            best = (int64_t)ms;
    }
    return best;
}

int64_t store_read_counter(store_t *self, const char *key)
{
    /* Added up over the partitions. */
    int64_t sum = 0;
    for (unsigned i = 0; i < self->n_parts; i++) {
        store_t *p = self->parts[i];
        if (!store_snap_counts(i))
            continue;
        MDB_val k = s_str_val(key), v;
        if (mdb_get(S_RSTATE(p), p->aggregates, &k, &v) == 0 && v.mv_size == 8)
            sum += (int64_t)s_be64_get(v.mv_data);
    }
    return sum;
}

/* Call fn(key as a C string, its u64 value, arg) for every record of dbi
 * in the read snapshot whose key begins with prefix and whose value is a
 * u64; what stands for counters and marks alike. Keys of 512 bytes or
 * more are skipped; the key is borrowed for the call. Returns how many,
 * or STORE_ERR (logged with `what`). Any thread, in its read snapshot. */
typedef void s_u64_fn(const char *key, size_t key_len, uint64_t value, void *arg);

/* One partition's cursor in a merged scan, at its current record. */
typedef struct {
    MDB_cursor *cur;
    MDB_val k, v;
    bool at;            /* on a record within the prefix */
} s_scan_cur_t;

/* Step c to its next record within the prefix (first: its first). */
static int s_scan_step(s_scan_cur_t *c, const char *prefix, size_t plen, bool first)
{
    int rc;
    if (first) {
        c->k = s_str_val(prefix);
        rc = mdb_cursor_get(c->cur, &c->k, &c->v, plen ? MDB_SET_RANGE : MDB_FIRST);
    } else {
        rc = mdb_cursor_get(c->cur, &c->k, &c->v, MDB_NEXT);
    }
    c->at = rc == 0 && c->k.mv_size >= plen && memcmp(c->k.mv_data, prefix, plen) == 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}


/* The scan below over every partition of self (one when it has none),
 * merged in key order: a key held by several partitions is passed once,
 * with their values added up when sum (counters), else the first's. */
static long s_scan_prefix(store_t *self, MDB_dbi dbi, const char *prefix,
                          const char *what, s_u64_fn *fn, void *arg, bool sum)
{
    s_scan_cur_t cs[STORE_PARTS_MAX];
    unsigned np = self->n_parts;
    size_t plen = strlen(prefix);
    char key[512];
    long n = 0;
    int rc = 0;

    memset(cs, 0, sizeof cs);
    for (unsigned i = 0; i < np; i++) {
        store_t *p = self->parts[i];
        /* The databases have the same handles in every partition (opened
         * in the same order), but each partition's own is used. */
        MDB_dbi d = dbi == self->aggregates ? p->aggregates : dbi == self->marks ? p->marks : dbi;
        if (!store_snap_counts(i))
            continue; /* no cursor: never at a record */
        if ((rc = mdb_cursor_open(S_RSTATE(p), d, &cs[i].cur)) != 0 ||
            (rc = s_scan_step(&cs[i], prefix, plen, true)) != 0)
            goto fail;
    }
    for (;;) {
        int lo = -1;
        for (unsigned i = 0; i < np; i++)
            if (cs[i].at && (lo < 0 || s_val_cmp(&cs[i].k, &cs[lo].k) < 0))
                lo = (int)i;
        if (lo < 0)
            break;
        MDB_val k = cs[lo].k;
        bool ok = k.mv_size < sizeof key && cs[lo].v.mv_size == 8;
        uint64_t value = ok ? s_be64_get(cs[lo].v.mv_data) : 0;
        if (ok)
            memcpy(key, k.mv_data, k.mv_size);
        /* Every partition at this key moves on (values added up). */
        for (unsigned i = 0; i < np; i++) {
            if (!cs[i].at || ((int)i != lo && s_val_cmp(&cs[i].k, &k) != 0))
                continue;
            if ((int)i != lo && sum && cs[i].v.mv_size == 8)
                value += s_be64_get(cs[i].v.mv_data);
            if ((rc = s_scan_step(&cs[i], prefix, plen, false)) != 0)
                goto fail;
        }
        if (!ok)
            continue;
        key[k.mv_size] = '\0';
        fn(key, k.mv_size, value, arg);
        n++;
    }
    for (unsigned i = 0; i < np; i++)
        if (cs[i].cur)
            mdb_cursor_close(cs[i].cur);
    return n;

fail:
    for (unsigned i = 0; i < np; i++)
        if (cs[i].cur)
            mdb_cursor_close(cs[i].cur);
    log_err("[store] read %s %s: %s", what, prefix, mdb_strerror(rc));
    return STORE_ERR;
}

typedef struct {
    store_mark_fn *fn;
    void *arg;
} s_marks_arg_t;

static void s_on_mark(const char *key, size_t len, uint64_t value, void *arg)
{
    const s_marks_arg_t *m = arg;
    size_t ns = strlen(key); /* set, NUL, lead id */
    if (ns < len)
        m->fn(key, key + ns + 1, (int64_t)value, m->arg);
}

long store_read_marks(store_t *self, const char *prefix, store_mark_fn *fn,
                      void *arg)
{
    s_marks_arg_t m = {fn, arg};
    return s_scan_prefix(self, self->marks, prefix, "marks", s_on_mark, &m, false);
}

static int s_next_deadline(store_t *self, int64_t *due_ms);

int store_read_next_deadline(store_t *self, int64_t *due_ms)
{
    /* The earliest of the partitions'. */
    int found = 0;
    for (unsigned i = 0; i < self->n_parts; i++) {
        int64_t due;
        if (!store_snap_counts(i))
            continue;
        int rc = s_next_deadline(self->parts[i], &due);
        if (rc < 0)
            return rc;
        if (rc == 1 && (!found || due < *due_ms)) {
            *due_ms = due;
            found = 1;
        }
    }
    return found;
}

static int s_next_deadline(store_t *self, int64_t *due_ms)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_cursor_open(S_RSTATE(self), self->deadlines, &cur);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (cur)
        mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0 || k.mv_size < 8) {
        log_err("[store] read next deadline: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    *due_ms = (int64_t)s_be64_get(k.mv_data);
    return 1;
}

long store_read_deadlines_pending(store_t *self)
{
    long n = 0;
    for (unsigned i = 0; i < self->n_parts; i++) {
        MDB_stat st;
        if (!store_snap_counts(i))
            continue;
        int rc = mdb_stat(S_RSTATE(self->parts[i]), self->parts[i]->deadlines, &st);
        if (rc != 0) {
            log_err("[store] read deadlines: %s", mdb_strerror(rc));
            return STORE_ERR;
        }
        n += (long)st.ms_entries;
    }
    return n;
}

/* The pages of env's file that no tree of the last commit uses: the
 * records of LMDB's free list (database 0), each a list of page numbers
 * whose first word is its length, read in a short snapshot of their own
 * (the environments are opened MDB_NOTLS, so it may nest in the caller's).
 * lmdb-utils' `mdb_stat -f` counts them the same way. */
static uint64_t s_free_pages(MDB_env *env)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t pages = 0;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_cursor_open(txn, 0, &cur) == 0) {
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            size_t n;
            if (v.mv_size >= sizeof n) {
                memcpy(&n, v.mv_data, sizeof n);
                pages += n;
            }
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return pages;
}

/* One environment's figures, added to *out. */
static void s_env_usage(MDB_env *env, const char *path, store_usage_t *out)
{
    MDB_envinfo info;
    MDB_stat st;
    char file[4200];
    struct stat fst;
    if (mdb_env_info(env, &info) == 0 && mdb_env_stat(env, &st) == 0) {
        out->map_bytes += info.me_mapsize;
        out->used_bytes += ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
        out->free_bytes += s_free_pages(env) * st.ms_psize;
    }
    snprintf(file, sizeof file, "%s/data.mdb", path);
    if (stat(file, &fst) == 0)
        out->file_bytes += (uint64_t)fst.st_blocks * 512;
}

void store_usage(store_t *self, store_usage_t *log, store_usage_t *state)
{
    char path[4096];
    memset(log, 0, sizeof *log);
    memset(state, 0, sizeof *state);
    /* The maps do not grow meanwhile (each has its own lock). */
    pthread_rwlock_rdlock(S_LOG_LOCK(self));
    snprintf(path, sizeof path, "%s/log", self->dir);
    s_env_usage(self->log_env, path, log);
    pthread_rwlock_unlock(S_LOG_LOCK(self));
    /* The state: every partition's environment together. */
    for (unsigned i = 0; i < self->n_parts; i++) {
        store_t *p = self->parts[i];
        pthread_rwlock_rdlock(&p->state_grow_lock);
        store_state_path(p, path, sizeof path);
        s_env_usage(p->state_env, path, state);
        pthread_rwlock_unlock(&p->state_grow_lock);
    }
}

typedef struct {
    store_counter_fn *fn;
    void *arg;
} s_counters_arg_t;

static void s_on_counter(const char *key, size_t len, uint64_t value, void *arg)
{
    const s_counters_arg_t *c = arg;
    c->fn(key, (int64_t)value, c->arg);
}

long store_read_counters(store_t *self, const char *prefix,
                         store_counter_fn *fn, void *arg)
{
    s_counters_arg_t c = {fn, arg};
    return s_scan_prefix(self, self->aggregates, prefix, "counters", s_on_counter, &c, true);
}

/* Walk lead_id's chain back through the log from its record's head, at
 * most limit events, then call fn for them oldest first (see store.h).
 * The Event bytes are borrowed from the snapshot for the call; the small
 * arrays of the walk are this function's. A missing or malformed event
 * in the chain returns STORE_ERR (logged) before fn is called. Any
 * thread, in its read snapshot. */
long store_read_timeline(store_t *self, const char *lead_id, size_t limit,
                         store_event_fn *fn, void *arg)
{
    return store_read_chain(self, lead_id, 0, UINT64_MAX, limit, fn, arg);
}

long store_read_chain(store_t *self, const char *lead_id, uint64_t head, uint64_t keep_above,
                      size_t limit, store_event_fn *fn, void *arg)
{
    MDB_val k = s_str_val(lead_id), v;
    uint64_t *seqs = NULL;
    const void **raws = NULL;
    size_t *lens = NULL, n = 0, cap = 0;
    uint64_t seq = head;
    int rc = 0;

    if (limit == 0)
        limit = 1;
    /* The lead's record in its partition (if counted); the chain in the
     * primary's log. */
    if (!store_snap_counts(store_part_index(self, lead_id)))
        return 0;
    if (seq == 0) {
        store_t *part = store_part_of_lead(self, lead_id);
        rc = mdb_get(S_RSTATE(part), part->leads, &k, &v);
        if (rc == MDB_NOTFOUND)
            return 0;
        if (rc != 0 || v.mv_size < S_LEAD_FIXED)
            goto fail;
        seq = s_be64_get(v.mv_data);
    }
    /* Newest first along the chain, then handed out oldest first. The
     * arrays grow with the chain: limit may be SIZE_MAX (the whole chain),
     * and every entry after keep_above is taken whatever the limit. */
    while (seq != 0 && (n < limit || seq > keep_above)) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            if (cap > limit && n < limit)
                cap = limit;
            seqs = xrealloc(seqs, cap * sizeof *seqs);
            raws = xrealloc(raws, cap * sizeof *raws);
            lens = xrealloc(lens, cap * sizeof *lens);
        }
        unsigned char sk[8];
        s_be64_put(sk, seq);
        MDB_val ek = {.mv_size = 8, .mv_data = sk}, ev;
        rc = mdb_get(S_RLOG(self), self->events, &ek, &ev);
        if (rc == MDB_NOTFOUND) {
            /* Log retention dropped the older part of the chain. */
            rc = 0;
            break;
        }
        if (rc != 0 || ev.mv_size < S_LOG_HDR)
            goto fail;
        seqs[n] = seq;
        raws[n] = (const unsigned char *)ev.mv_data + S_LOG_HDR;
        lens[n] = ev.mv_size - S_LOG_HDR;
        n++;
        uint64_t prev = s_be64_get(ev.mv_data);
        if (prev >= seq) /* a chain only goes back */
            break;
        seq = prev;
    }
    for (size_t i = n; i-- > 0;)
        fn(seqs[i], raws[i], lens[i], arg);
    free(seqs);
    free(raws);
    free(lens);
    return (long)n;

fail:
    free(seqs);
    free(raws);
    free(lens);
    log_err("[store] read timeline of %s at %llu: %s", lead_id,
            (unsigned long long)seq, rc ? mdb_strerror(rc) : "malformed record");
    return STORE_ERR;
}

/* Call fn for the logged events from sequence from on, at most max (see
 * store.h); the bytes are borrowed from the snapshot for the call. An
 * LMDB error returns STORE_ERR (logged). Any thread, in its read
 * snapshot. */
long store_read_log(store_t *self, uint64_t from, size_t max,
                    store_event_fn *fn, void *arg)
{
    MDB_cursor *cur = NULL;
    unsigned char sk[8];
    long n = 0;
    int rc;

    s_be64_put(sk, from);
    if ((rc = mdb_cursor_open(S_RLOG(self), self->events, &cur)) != 0)
        goto fail;
    MDB_val k = {.mv_size = 8, .mv_data = sk}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && (size_t)n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size >= S_LOG_HDR)
            fn(s_be64_get(k.mv_data), (const unsigned char *)v.mv_data + S_LOG_HDR,
               v.mv_size - S_LOG_HDR, arg);
        n++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto fail;
    mdb_cursor_close(cur);
    return n;

fail:
    if (cur)
        mdb_cursor_close(cur);
    log_err("[store] read log from %llu: %s", (unsigned long long)from,
            mdb_strerror(rc));
    return STORE_ERR;
}
