/* store_commit.c: a group commit (see store.h): beginning, committing and
 * aborting the two write transactions, growing the maps, appending events
 * to the log, and summing the group's counter deltas in a hash table to
 * write them once per group. Owner thread only. */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fnv.h"
#include "log.h"
#include "xalloc.h"

/* -- group commit ---------------------------------------------------------- */

/* How a map's lock is taken to grow it (s_grow_lock). */
typedef enum {
    S_LOCK_WAIT,      /* waiting; a copy holding it gives way */
    S_LOCK_AT_ONCE,   /* free now, or not at all */
    S_LOCK_FOR_COPY,  /* waiting, until a copy begins: never made to give way */
} s_lock_mode_t;

static int s_grow(store_t *self, s_lock_mode_t mode);

/* Whether an environment has used more than 3/4 of its map. */
bool store_env_nearly_full(MDB_env *env)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0)
        return false;
    return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize > info.me_mapsize / 4 * 3;
}

/* Begin a group (see store.h): grow a map that is over 3/4 full first,
 * then open one write transaction in each environment and remember where
 * the counters stood, for an abort. Fails (STORE_ERR, logged) when a
 * transaction or this thread's read snapshot is already open, or LMDB
 * cannot begin; nothing is left open then. The store owns both
 * transactions until commit or abort. Owner thread. */
int store_group_begin(store_t *self)
{
    int rc;

    /* Grow ahead of need, while no transaction is open: a map that fills
     * up inside the state commit (after the log commit) costs a replay.
     * Ahead of need it never waits: a map whose lock a checkpoint holds
     * (or a query, at this moment) is grown at a later group. */
    self->log_full = store_env_nearly_full(self->log_env);
    self->state_full = store_env_nearly_full(self->state_env);
    if ((self->log_full || self->state_full) && !S_RLOG(self) && !S_RSTATE(self) &&
        !self->log_txn && !self->state_txn && s_grow(self, S_LOCK_AT_ONCE) != STORE_OK)
        return STORE_ERR;
    if (self->log_txn || self->state_txn || S_RLOG(self) || S_RSTATE(self)) {
        log_err("[store] group begun while another transaction is open");
        return STORE_ERR;
    }
    if (store_state_room(self) != STORE_OK)
        return STORE_ERR;
    self->ret = STORE_OK;
    self->cur_valid = self->cur_dirty = false;
    self->log_full = self->state_full = false;
    self->last_seq_begin = self->last_seq;
    self->applied_seq_begin = self->applied_seq;
    self->watermark_begin = self->watermark_ms;
    self->stats_begin = self->stats;
    self->log_counted_begin = self->log_counted;
    self->alert_seq_begin = self->alert_seq;
    self->alerts_floor_begin = self->alerts_floor;
    if ((rc = mdb_txn_begin(self->log_env, NULL, 0, &self->log_txn)) != 0) {
        self->log_txn = NULL;
        log_err("[store] begin log txn: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    if ((rc = mdb_txn_begin(self->state_env, NULL, 0, &self->state_txn)) != 0) {
        self->state_txn = NULL;
        mdb_txn_abort(self->log_txn);
        self->log_txn = NULL;
        log_err("[store] begin state txn: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    return STORE_OK;
}

static void s_index_event(store_t *self, const char *lead_id, const char *id,
                          uint64_t seq)
{
    unsigned char seqbuf[8], kbuf[S_ID_KEY];
    int rc;

    s_be64_put(seqbuf, seq);
    MDB_val k = store_id_key(kbuf, lead_id, id), v = {.mv_size = 8, .mv_data = seqbuf};
    if ((rc = mdb_put(self->state_txn, self->leads, &k, &v, 0)) != 0) {
        store_fail(self, rc, false, "event id write");
        return;
    }
    if (seq > self->applied_seq)
        self->applied_seq = seq;
}

uint64_t store_log_put(store_t *self, uint64_t prev_seq, const void *raw, size_t len)
{
    unsigned char key[8];
    uint64_t seq = self->last_seq + 1;
    s_be64_put(key, seq);
    MDB_val k = {.mv_size = 8, .mv_data = key};
    MDB_val v = {.mv_size = len + S_LOG_HDR, .mv_data = NULL};
    int rc = mdb_put(self->log_txn, self->events, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc != 0) {
        store_fail(self, rc, true, "log append");
        return 0;
    }
    s_be64_put(v.mv_data, prev_seq);
    memcpy((unsigned char *)v.mv_data + S_LOG_HDR, raw, len);
    self->last_seq = seq;
    if (self->first_seq == 0)
        self->first_seq = seq;
    return seq;
}

uint64_t store_event_add(store_t *self, const char *lead_id, const char *id,
                         bool id_claimed,
                         uint64_t prev_seq, const void *raw, size_t len)
{
    if (self->ret != STORE_OK)
        return 0;
    uint64_t seq = store_log_put(self, prev_seq, raw, len);
    if (seq == 0)
        return 0;
    if (id_claimed) {
        if (seq > self->applied_seq)
            self->applied_seq = seq;
    } else {
        s_index_event(self, lead_id, id, seq);
    }
    return self->ret == STORE_OK ? seq : 0;
}

void store_event_replayed(store_t *self, const char *lead_id, const char *id,
                          uint64_t seq)
{
    if (self->ret != STORE_OK)
        return;
    s_index_event(self, lead_id, id, seq);
}

/* The counter index (htab.h) compares and rehashes the group's keys. */
static bool s_counter_eq(const void *ctx, uint32_t index, const void *key)
{
    return strcmp(((const store_t *)ctx)->ctr[index].key, key) == 0;
}

static uint32_t s_counter_hash(const void *ctx, uint32_t index)
{
    return fnv1a32_str(((const store_t *)ctx)->ctr[index].key);
}

void store_counter_add(store_t *self, const char *key, int64_t delta)
{
    store_counter_add_h(self, key, fnv1a32_str(key), delta);
}

void store_counter_add_h(store_t *self, const char *key, uint32_t hash, int64_t delta)
{
    /* Every event adds to a dozen counters or more (per stage, persona,
     * source, cohort): summed here, in a hash table, and written once per
     * group. */
    if (self->ctr_index.cap == 0)
        htab_init(&self->ctr_index, 256);
    uint32_t *slot = htab_slot(&self->ctr_index, hash, s_counter_eq, self, key);
    if (*slot) {
        self->ctr[*slot - 1].delta += delta;
        return;
    }
    if (self->n_ctr == self->cap_ctr) {
        self->cap_ctr = self->cap_ctr ? 2 * self->cap_ctr : 64;
        self->ctr = xrealloc(self->ctr, self->cap_ctr * sizeof *self->ctr);
    }
    self->ctr[self->n_ctr].key = xstrdup(key);
    self->ctr[self->n_ctr].delta = delta;
    self->n_ctr++;
    if (2 * self->n_ctr > self->ctr_index.cap) {
        htab_rebuild(&self->ctr_index, 2 * self->ctr_index.cap, self->n_ctr,
                     s_counter_hash, self);
    } else {
        *slot = (uint32_t)self->n_ctr;
    }
}

void store_counters_clear(store_t *self)
{
    for (size_t i = 0; i < self->n_ctr; i++)
        free(self->ctr[i].key);
    self->n_ctr = 0;
    htab_clear(&self->ctr_index);
}

static int s_counter_cmp(const void *a, const void *b)
{
    return strcmp(((const s_counter_t *)a)->key, ((const s_counter_t *)b)->key);
}

/* Write the group's counter deltas into "aggregates", each added to the
 * committed value; a sum of zero deletes the record. The deltas stay
 * owned by the table (store_counters_clear() frees them). An LMDB error is
 * made the group's sticky error and stops the flush. Owner thread, inside
 * a group, just before the commit. */
void store_counters_flush(store_t *self)
{
    /* In key order: neighbouring counters share pages. The index is not
     * used after this (the group ends). */
    if (self->n_ctr == 0)
        return;
    qsort(self->ctr, self->n_ctr, sizeof *self->ctr, s_counter_cmp);
    htab_rebuild(&self->ctr_index, self->ctr_index.cap, self->n_ctr,
                 s_counter_hash, self);
    for (size_t i = 0; i < self->n_ctr && self->ret == STORE_OK; i++) {
        if (self->ctr[i].delta == 0)
            continue;
        MDB_val k = s_str_val(self->ctr[i].key), v;
        int64_t value = 0;
        int rc = mdb_get(self->state_txn, self->aggregates, &k, &v);
        if (rc == 0 && v.mv_size == 8)
            value = (int64_t)s_be64_get(v.mv_data);
        else if (rc != 0 && rc != MDB_NOTFOUND) {
            store_fail(self, rc, false, "counter read");
            return;
        }
        int64_t next = value + self->ctr[i].delta;
        if (next == 0) {
            /* Absent and zero are the same: the state must not depend on
             * how events happened to be grouped into commits. */
            if ((rc = mdb_del(self->state_txn, self->aggregates, &k, NULL)) != 0 &&
                rc != MDB_NOTFOUND)
                store_fail(self, rc, false, "counter delete");
            continue;
        }
        unsigned char buf[8];
        s_be64_put(buf, (uint64_t)next);
        v.mv_size = 8;
        v.mv_data = buf;
        if ((rc = mdb_put(self->state_txn, self->aggregates, &k, &v, 0)) != 0)
            store_fail(self, rc, false, "counter write");
    }
}

void store_group_abort(store_t *self)
{
    self->cur_valid = self->cur_dirty = false;
    store_alerts_group_end(self, false);
    if (self->log_txn) {
        mdb_txn_abort(self->log_txn);
        self->log_txn = NULL;
    }
    if (self->state_txn) {
        mdb_txn_abort(self->state_txn);
        self->state_txn = NULL;
        self->last_seq = self->last_seq_begin;
        if (self->last_seq_begin == 0) /* an empty log stays empty */
            self->first_seq = 0;
        self->applied_seq = self->applied_seq_begin;
        __atomic_store_n(&self->watermark_ms, self->watermark_begin, __ATOMIC_RELAXED);
        self->stats = self->stats_begin;
        self->log_counted = self->log_counted_begin;
        self->alert_seq = self->alert_seq_begin;
        self->alerts_floor = self->alerts_floor_begin;
    }
    store_counters_clear(self);
}

/* Commit the group (see store.h for the returns): flush the counters,
 * write applied_seq, the watermark and the counters into meta (the loop's
 * into the log's too), commit the log (fsync'd: the durable part) and
 * then the state. Any failure before
 * the log commit aborts the whole group and restores the in-memory
 * counters; a failed state commit leaves the log durable and returns
 * STORE_ESTALE. Both transactions are ended either way. Publishes the
 * counters for other threads. Owner thread. */
int store_group_commit(store_t *self)
{
    int rc;

    if (self->log_txn == NULL || self->state_txn == NULL)
        return STORE_ERR;
    store_alerts_group_end(self, true);
    store_counters_flush(self);
    /* Whether the counters count every event logged before the group (not
     * while a replay of an older log counts them again). */
    bool counted = self->log_counted >= self->last_seq_begin;
    if (self->ret == STORE_OK) {
        self->stats.commits++;
        if ((rc = store_meta_put_u64(self->state_txn, self->meta, "applied_seq",
                                 self->applied_seq)) != 0 ||
            (rc = store_meta_put_u64(self->state_txn, self->meta, "watermark_ms",
                                 (uint64_t)self->watermark_ms)) != 0 ||
            (rc = store_meta_put_u64(self->state_txn, self->meta, "alert_seq",
                                     self->alert_seq)) != 0 ||
            (rc = store_meta_put_u64(self->state_txn, self->meta, "alerts_floor",
                                     self->alerts_floor)) != 0 ||
            (rc = store_stats_put(self->state_txn, self->meta, &self->stats)) != 0)
            store_fail(self, rc, false, "meta write");
        /* And the loop's counters with the log, which a replay cannot
         * count again (the rejected, the duplicates). */
        else if (counted && (rc = store_log_stats_put(self, &self->stats)) != 0)
            store_fail(self, rc, true, "log counters write");
    }
    if (self->ret != STORE_OK) {
        int ret = self->ret;
        store_group_abort(self);
        return ret;
    }

    /* The durable part: the log, appended sequentially, fsync'd here. A
     * failed commit frees the txn: never touch it again. */
    rc = mdb_txn_commit(self->log_txn);
    self->log_txn = NULL;
    if (rc != 0) {
        store_fail(self, rc, true, "log commit");
        int ret = self->ret;
        store_group_abort(self);
        return ret;
    }

    if (counted)
        self->log_counted = self->last_seq;

    rc = mdb_txn_commit(self->state_txn);
    self->state_txn = NULL;
    store_counters_clear(self);
    if (rc != 0) {
        /* The events are durable in the log, and the loop's counters with
         * them; the state is not (the replay counts it again). */
        store_fail(self, rc, false, "state commit");
        self->applied_seq = self->applied_seq_begin;
        __atomic_store_n(&self->watermark_ms, self->watermark_begin, __ATOMIC_RELAXED);
        store_stats_t logged = self->stats;
        self->stats = self->stats_begin;
        store_stats_take_logged(&self->stats, &logged);
        self->alert_seq = self->alert_seq_begin;
        self->alerts_floor = self->alerts_floor_begin;
        store_stats_publish(self);
        return STORE_ESTALE;
    }
    store_stats_publish(self);
    return STORE_OK;
}

static int s_grow_env(MDB_env *env, size_t *map, const char *name)
{
    size_t next = *map * 2;
    int rc = mdb_env_set_mapsize(env, next);
    if (rc != 0) {
        log_err("[store] cannot grow the %s map to %zu MiB: %s", name,
                next >> 20, mdb_strerror(rc));
        return STORE_ERR;
    }
    *map = store_env_map_size(env);
    log_info("[store] %s map grown to %zu KiB", name, *map >> 10);
    return STORE_OK;
}

/* Take an environment's map lock exclusively: at once or not at all
 * (S_LOCK_AT_ONCE, growing ahead of need), else waiting for the snapshots
 * of other threads to end. A checkpoint copying the state is not waited
 * for: with S_LOCK_WAIT it is made to give way (store_checkpoint_yield),
 * and asked again every S_YIELD_ASK_MS while the lock is not free and a
 * copy runs (one that began after the first ask, or missed it, gives way
 * too); with S_LOCK_FOR_COPY (growing for a copy about to begin) the
 * growth is given up instead. Returns whether it is held. */
#define S_YIELD_ASK_MS 50
static bool s_grow_lock(store_t *self, pthread_rwlock_t *lock, s_lock_mode_t mode)
{
    if (pthread_rwlock_trywrlock(lock) == 0)
        return true;
    if (mode == S_LOCK_AT_ONCE)
        return false;
    bool said = false;
    for (;;) {
        if (lock == &self->state_grow_lock &&
            __atomic_load_n(&self->copying, __ATOMIC_ACQUIRE)) {
            if (mode == S_LOCK_FOR_COPY)
                return false;
            if (!said)
                log_warn("[store] the state's map is full while a checkpoint copies it: "
                         "the checkpoint gives way (taken again after the map grew)");
            said = true;
            store_checkpoint_yield(self);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += S_YIELD_ASK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = pthread_rwlock_timedwrlock(lock, &until);
        if (rc == 0)
            return true;
        if (rc != ETIMEDOUT) {
            pthread_rwlock_wrlock(lock);
            return true;
        }
    }
}

/* Grow the maps marked full (see store_grow); S_LOCK_AT_ONCE: only those
 * whose lock is free now, the others stay as they are (not an error), as
 * with S_LOCK_FOR_COPY once a copy runs (see s_grow_lock). */
static int s_grow(store_t *self, s_lock_mode_t mode)
{
    /* Split, each side grows its own environment's map only. */
    bool state_side = store_state_side(self), log_side = !store_split_on(self) || !state_side;
    if ((log_side && (self->log_txn || self->look_txn)) || (state_side && self->state_txn) ||
        S_RLOG(self) || S_RSTATE(self))
        return STORE_ERR;
    int ret = STORE_OK;
    /* LMDB resizes a map only with no transaction of its environment
     * open in the process: wait for the other threads' snapshots to end.
     * The state's lock first, then the log's, as readers take them. */
    bool state_held = state_side && self->state_full &&
                      s_grow_lock(self, &self->state_grow_lock, mode);
    bool log_held = log_side && self->log_full && s_grow_lock(self, &self->grow_lock, mode);
    if (log_held && s_grow_env(self->log_env, &self->log_map, "log") != 0)
        ret = STORE_ERR;
    if (state_held && s_grow_env(self->state_env, &self->state_map, "state") != 0)
        ret = STORE_ERR;
    if (log_held)
        pthread_rwlock_unlock(&self->grow_lock);
    if (state_held)
        pthread_rwlock_unlock(&self->state_grow_lock);
    if (log_side)
        self->log_full = false;
    if (state_side)
        self->state_full = false;
    return ret;
}

int store_grow(store_t *self)
{
    return s_grow(self, S_LOCK_WAIT);
}

int store_grow_marked(store_t *self, bool ahead)
{
    return s_grow(self, ahead ? S_LOCK_AT_ONCE : S_LOCK_WAIT);
}

/* Whether an environment has used more than 1/div of its map. */
static bool s_env_used_over(MDB_env *env, unsigned div)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0)
        return false;
    return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize > info.me_mapsize / div;
}

/* Grow ahead of a checkpoint (see store.h): doubling the log's map while
 * it is more than a quarter full, the state's while it is more than
 * 1/STORE_AHEAD_DIV full. A map is address space only (without
 * MDB_WRITEMAP the file grows as pages are written, whatever the map), and
 * while a copy holds its snapshot a busy state takes fresh pages for every
 * commit: 80 MB/s at full load beside a 2 GiB state (a paced copy of it
 * at 10 MB/s gave way to the map after 25 s). Owner thread, no group
 * open. */
int store_grow_ahead(store_t *self)
{
    /* Split, each side grows its own map: the state's is grown by the
     * state owner when asked (store_state_ahead_ask). */
    bool state_side = store_state_side(self), log_side = !store_split_on(self) || !state_side;
    for (int i = 0; i < 8; i++) {
        if (log_side)
            self->log_full = s_env_used_over(self->log_env, 4);
        if (state_side)
            self->state_full = s_env_used_over(self->state_env, STORE_AHEAD_DIV);
        if (!(log_side && self->log_full) && !(state_side && self->state_full))
            return STORE_OK;
        if (s_grow(self, S_LOCK_WAIT) != STORE_OK)
            return STORE_ERR;
    }
    return STORE_OK;
}

bool store_state_grow_ahead(store_t *self)
{
    for (int i = 0; i < 8; i++) {
        if (!s_env_used_over(self->state_env, STORE_AHEAD_DIV))
            return true;
        size_t before = self->state_map;
        self->state_full = true;
        /* Waiting for the lock (the loop's snapshot of the state is open
         * for most of every log group at full load: taken only when free,
         * it was not taken within a second), but given up once the copy
         * begins (one that did not wait for us longer): it is never made
         * to give way for this. */
        if (s_grow(self, S_LOCK_FOR_COPY) != STORE_OK || self->state_map == before)
            return false;
    }
    return !s_env_used_over(self->state_env, STORE_AHEAD_DIV);
}

uint64_t store_state_ahead_ask(store_t *self)
{
    if (!store_split_on(self))
        return 0;
    /* Nothing to ask of a state that has the room already (most of them:
     * the owner may begin no group for a while). The map does not grow
     * meanwhile under its lock. */
    pthread_rwlock_rdlock(&self->state_grow_lock);
    bool over = s_env_used_over(self->state_env, STORE_AHEAD_DIV);
    pthread_rwlock_unlock(&self->state_grow_lock);
    return over ? __atomic_add_fetch(&self->ahead_asked, 1, __ATOMIC_ACQ_REL) : 0;
}

bool store_state_ahead_served(store_t *self, uint64_t ticket)
{
    /* A writer with nothing to apply begins no group to serve it, and
     * takes no fresh pages either: the copy need not wait for it. */
    return ticket == 0 || !store_split_on(self) ||
           __atomic_load_n(&self->ahead_served, __ATOMIC_ACQUIRE) >= ticket ||
           store_applied_published(self) >= store_committed_seq(self);
}

int store_sync(store_t *self)
{
    int rc = mdb_env_sync(self->state_env, 1);
    if (rc != 0) {
        log_err("[store] state sync: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    return STORE_OK;
}


int64_t store_counter_get(store_t *self, const char *key)
{
    int64_t value = 0;
    if (self->ctr_index.cap) {
        uint32_t *slot = htab_slot(&self->ctr_index, fnv1a32_str(key),
                                   s_counter_eq, self, key);
        if (*slot)
            value = self->ctr[*slot - 1].delta;
    }
    MDB_txn *txn = self->state_txn ? self->state_txn : S_RSTATE(self);
    if (txn == NULL)
        return value;
    MDB_val k = s_str_val(key), v;
    if (mdb_get(txn, self->aggregates, &k, &v) == 0 && v.mv_size == 8)
        value += (int64_t)s_be64_get(v.mv_data);
    return value;
}
