/* store_parts.c: what a store with partitions needs beyond the merged
 * reads (store_read.c) and the routed claims (store_split.c): the
 * partition count the state was built with, the lowest applied sequence
 * of them all, and a partition's view of the others' counters during its
 * state group (the funnel-wide check, judged once on the counters of
 * every partition). See store.h. */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define S_META_PARTS "partitions"

int store_parts_recorded(store_t *self, unsigned *out)
{
    MDB_txn *txn;
    uint64_t v = 0;
    int rc = mdb_txn_begin(self->state_env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = store_meta_u64(txn, self->meta, S_META_PARTS, &v);
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        log_err("[store] read the partitions the state was built with: %s",
                mdb_strerror(rc));
        return STORE_ERR;
    }
    *out = v ? (unsigned)v : 1;
    return STORE_OK;
}

int store_set_parts_recorded(store_t *self, unsigned n)
{
    MDB_txn *txn;
    int rc;
    if (self->log_txn || self->state_txn || S_RSTATE(self))
        return STORE_ERR;
    if ((rc = mdb_txn_begin(self->state_env, NULL, 0, &txn)) != 0)
        goto fail;
    if ((rc = store_meta_put_u64(txn, self->meta, S_META_PARTS, n)) != 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto fail;
    return STORE_OK;
fail:
    log_err("[store] record the partitions: %s", mdb_strerror(rc));
    return STORE_ERR;
}

void store_set_counted(store_t *primary, unsigned i, bool counted)
{
    if (i >= STORE_PARTS_MAX)
        return;
    uint64_t bit = (uint64_t)1 << i;
    if (counted)
        __atomic_fetch_or(&primary->counted, bit, __ATOMIC_RELEASE);
    else
        __atomic_fetch_and(&primary->counted, ~bit, __ATOMIC_RELEASE);
}

bool store_counted(const store_t *primary, unsigned i)
{
    return i < STORE_PARTS_MAX && (__atomic_load_n(&primary->counted, __ATOMIC_ACQUIRE) >> i) & 1;
}

uint64_t store_parts_applied_min(store_t *primary)
{
    uint64_t min = store_applied_published(primary);
    for (unsigned i = 1; i < primary->n_parts; i++) {
        uint64_t a = store_applied_published(primary->parts[i]);
        if (a < min)
            min = a;
    }
    return min;
}

bool store_parts_held(store_t *primary)
{
    for (unsigned i = 0; i < primary->n_parts; i++)
        if (store_writer_held(primary->parts[i]))
            return true;
    return false;
}

int store_peers_begin(store_t *self)
{
    store_t *pr = self->primary ? self->primary : self;
    if (self->peers_open)
        return STORE_ERR;
    for (unsigned i = 0; i < pr->n_parts; i++) {
        store_t *p = pr->parts[i];
        self->peer_txn[i] = NULL;
        if (p == self)
            continue;
        pthread_rwlock_rdlock(&p->state_grow_lock);
        int rc = mdb_txn_begin(p->state_env, NULL, MDB_RDONLY, &self->peer_txn[i]);
        if (rc != 0) {
            pthread_rwlock_unlock(&p->state_grow_lock);
            self->peer_txn[i] = NULL;
            log_err("[store] read partition %u's counters: %s", i, mdb_strerror(rc));
            self->peers_open = true;
            store_peers_end(self);
            return STORE_ERR;
        }
    }
    self->peers_open = true;
    return STORE_OK;
}

void store_peers_end(store_t *self)
{
    store_t *pr = self->primary ? self->primary : self;
    if (!self->peers_open)
        return;
    for (unsigned i = pr->n_parts; i-- > 0;) {
        if (self->peer_txn[i] == NULL)
            continue;
        mdb_txn_abort(self->peer_txn[i]);
        self->peer_txn[i] = NULL;
        pthread_rwlock_unlock(&pr->parts[i]->state_grow_lock);
    }
    self->peers_open = false;
}

bool store_peers_open(const store_t *self)
{
    return self->peers_open;
}

int64_t store_counter_get_all(store_t *self, const char *key)
{
    int64_t value = store_counter_get(self, key);
    if (!self->peers_open)
        return value;
    store_t *pr = self->primary ? self->primary : self;
    for (unsigned i = 0; i < pr->n_parts; i++) {
        if (self->peer_txn[i] == NULL)
            continue;
        MDB_val k = s_str_val(key), v;
        if (mdb_get(self->peer_txn[i], pr->parts[i]->aggregates, &k, &v) == 0 &&
            v.mv_size == 8)
            value += (int64_t)s_be64_get(v.mv_data);
    }
    return value;
}

int store_checkpoints_drop(const char *root)
{
    store_ckpt_t list[STORE_CKPT_MAX];
    size_t n = store_checkpoint_list(root, list, STORE_CKPT_MAX);
    int dropped = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/%s", root, STORE_CKPT_DIR, list[i].name);
        if (unlink(path) == 0)
            dropped++;
        else if (errno != ENOENT)
            log_warn("[store] cannot delete %s: %s", path, strerror(errno));
    }
    return dropped;
}
