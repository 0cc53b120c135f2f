/* store_alerts.c: the stored alert stream (see store.h): numbering and
 * appending the alerts of a group, trimming the oldest by retention, and
 * reading them back in a snapshot.
 *
 * Alerts are kept S_ALERT_BLOCK to a record ("alerts": block number u64 BE
 * -> the block's entries, see S_ALERT_ENTRY): almost every event raises an
 * alert, and one LMDB write per alert would cost more than all the rest of
 * storing it. Block b holds the alerts numbered b * S_ALERT_BLOCK + 1 ..
 * (b + 1) * S_ALERT_BLOCK, whatever the grouping of events into commits,
 * so a state rebuilt from the log holds the same records. A group appends
 * to the last block in memory (read back first when it is partly filled)
 * and writes each block once: when it fills up, and the last one at the
 * commit.
 *
 * The write side is the owner thread's, inside a group; reads run in any
 * thread. */
#include "store_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

/* -- blocks ------------------------------------------------------------------ */

static void s_entry_head(const unsigned char *p, uint64_t *seq, int64_t *stamp,
                         size_t *tlen, size_t *len)
{
    *seq = s_be64_get(p);
    *stamp = (int64_t)s_be64_get(p + 8);
    *tlen = p[16];
    *len = (size_t)p[17] << 24 | (size_t)p[18] << 16 | (size_t)p[19] << 8 | p[20];
}

/* Walk the entries of a block value (v bytes at p): fn for each well-formed
 * one, until fn returns non-zero (then 1 is returned) or the block ends
 * (0). A malformed tail is skipped. */
typedef int s_entry_fn(const store_alert_t *a, void *arg);

static int s_block_walk(const unsigned char *p, size_t n, s_entry_fn *fn, void *arg)
{
    size_t at = 0;
    while (n - at >= S_ALERT_ENTRY) {
        store_alert_t a;
        size_t tlen, len;
        s_entry_head(p + at, &a.seq, &a.stamp_ms, &tlen, &len);
        if (tlen + len > n - at - S_ALERT_ENTRY)
            break;
        a.topic = (const char *)p + at + S_ALERT_ENTRY;
        a.topic_len = tlen;
        a.buf = p + at + S_ALERT_ENTRY + tlen;
        a.len = len;
        if (fn(&a, arg) != 0)
            return 1;
        at += S_ALERT_ENTRY + tlen + len;
    }
    return 0;
}

static MDB_val s_block_key(unsigned char key[8], uint64_t block)
{
    s_be64_put(key, block);
    MDB_val k = {.mv_size = 8, .mv_data = key};
    return k;
}

/* Write the group's open block into "alerts". */
static void s_block_flush(store_t *self)
{
    if (self->ablk_n == 0 || self->ret != STORE_OK)
        return;
    unsigned char key[8];
    MDB_val k = s_block_key(key, self->ablk_no);
    MDB_val v = {.mv_size = self->ablk_len, .mv_data = self->ablk};
    int rc = mdb_put(self->state_txn, self->alerts, &k, &v, 0);
    if (rc != 0)
        store_fail(self, rc, false, "alert block write");
    self->ablk_dirty = false;
}

/* Make the block of alert seq the group's open one: write the open block
 * if it is another, then start the new one, or read it back when it
 * already holds alerts (the last block, partly filled by earlier groups).
 * Returns 0 or -1 (the sticky error is set). */
static int s_block_open(store_t *self, uint64_t seq)
{
    uint64_t block = (seq - 1) / S_ALERT_BLOCK;
    if (self->ablk_valid && self->ablk_no == block)
        return 0;
    if (self->ablk_valid && self->ablk_dirty)
        s_block_flush(self);
    if (self->ret != STORE_OK)
        return -1;
    self->ablk_valid = true;
    self->ablk_dirty = false;
    self->ablk_no = block;
    self->ablk_len = 0;
    self->ablk_n = 0;
    if ((seq - 1) % S_ALERT_BLOCK == 0)
        return 0;
    unsigned char key[8];
    MDB_val k = s_block_key(key, block), v;
    int rc = mdb_get(self->state_txn, self->alerts, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0; /* trimmed meanwhile cannot be (the last block stays) */
    if (rc != 0) {
        store_fail(self, rc, false, "alert block read");
        return -1;
    }
    if (v.mv_size > self->ablk_cap) {
        self->ablk_cap = v.mv_size * 2;
        self->ablk = xrealloc(self->ablk, self->ablk_cap);
    }
    memcpy(self->ablk, v.mv_data, v.mv_size);
    self->ablk_len = v.mv_size;
    self->ablk_n = (size_t)((seq - 1) % S_ALERT_BLOCK);
    return 0;
}

void *store_alert_reserve(store_t *self, const char *topic, int64_t stamp_ms,
                          size_t len, uint64_t *seq_out)
{
    if (self->ret != STORE_OK || self->state_txn == NULL)
        return NULL;
    uint64_t seq = self->alert_seq + 1;
    if (s_block_open(self, seq) != 0)
        return NULL;
    size_t tlen = strlen(topic);
    if (tlen > S_ALERT_TOPIC_MAX)
        tlen = S_ALERT_TOPIC_MAX;
    if (len > UINT32_MAX) {
        store_fail(self, MDB_BAD_VALSIZE, false, "alert append");
        return NULL;
    }
    size_t need = self->ablk_len + S_ALERT_ENTRY + tlen + len;
    if (need > self->ablk_cap) {
        self->ablk_cap = need * 2 > 65536 ? need * 2 : 65536;
        self->ablk = xrealloc(self->ablk, self->ablk_cap);
    }
    unsigned char *p = self->ablk + self->ablk_len;
    s_be64_put(p, seq);
    s_be64_put(p + 8, (uint64_t)stamp_ms);
    p[16] = (unsigned char)tlen;
    p[17] = (unsigned char)(len >> 24);
    p[18] = (unsigned char)(len >> 16);
    p[19] = (unsigned char)(len >> 8);
    p[20] = (unsigned char)len;
    memcpy(p + S_ALERT_ENTRY, topic, tlen);
    self->ablk_len = need;
    self->ablk_n++;
    self->ablk_dirty = true;
    self->alert_seq = seq;
    *seq_out = seq;
    /* A full block is written by the next append (the next block) or the
     * commit: the caller writes the alert's bytes first. */
    return p + S_ALERT_ENTRY + tlen;
}

void store_alerts_group_end(store_t *self, bool commit)
{
    if (commit && self->ablk_valid && self->ablk_dirty)
        s_block_flush(self);
    self->ablk_valid = self->ablk_dirty = false;
    self->ablk_len = self->ablk_n = 0;
}

uint64_t store_alert_seq(const store_t *self)
{
    return self->alert_seq;
}

uint64_t store_alerts_floor(const store_t *self)
{
    return self->alerts_floor;
}

/* -- retention --------------------------------------------------------------- */

typedef struct {
    uint64_t last_seq;
    int64_t last_stamp;
    size_t n;
} s_block_tail_t;

static int s_on_tail(const store_alert_t *a, void *arg)
{
    s_block_tail_t *t = arg;
    t->last_seq = a->seq;
    t->last_stamp = a->stamp_ms;
    t->n++;
    return 0;
}

/* Delete, from the first on, whole blocks whose newest alert is stamped
 * before before_ms (stamps grow with the sequence: they are the watermark
 * when each was raised), never the last block (appended to), at most
 * max_alerts alerts' worth (rounded up to a block). The floor moves to the
 * last alert deleted. */
size_t store_alerts_trim(store_t *self, int64_t before_ms, size_t max_alerts)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t n = 0;
    int rc;

    if (self->ret != STORE_OK || self->state_txn == NULL || max_alerts == 0)
        return 0;
    /* The group's open block is written first, so that the walk below sees
     * every block as it is. */
    if (self->ablk_valid && self->ablk_dirty)
        s_block_flush(self);
    self->ablk_valid = false;
    uint64_t last_block = self->alert_seq ? (self->alert_seq - 1) / S_ALERT_BLOCK : 0;
    if ((rc = mdb_cursor_open(self->state_txn, self->alerts, &cur)) != 0)
        goto fail;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < max_alerts;
         rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
        if (k.mv_size != 8 || s_be64_get(k.mv_data) >= last_block)
            break;
        s_block_tail_t t = {0};
        s_block_walk(v.mv_data, v.mv_size, s_on_tail, &t);
        if (t.n > 0 && t.last_stamp >= before_ms)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            goto fail;
        if (t.last_seq > self->alerts_floor)
            self->alerts_floor = t.last_seq;
        n += t.n;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto fail;
    mdb_cursor_close(cur);
    return n;

fail:
    if (cur)
        mdb_cursor_close(cur);
    store_fail(self, rc, false, "alert trim");
    return n;
}

/* -- reads ------------------------------------------------------------------- */

void store_alerts_published(store_t *self, uint64_t *last, uint64_t *floor)
{
    pthread_mutex_lock(&self->pub_lock);
    *last = self->pub_alert_seq;
    *floor = self->pub_alerts_floor;
    pthread_mutex_unlock(&self->pub_lock);
}

int store_read_alert_bounds(store_t *self, uint64_t *last, uint64_t *floor)
{
    MDB_txn *txn = S_RSTATE(self);
    if (txn == NULL)
        return STORE_ERR;
    int rc;
    if ((rc = store_meta_u64(txn, self->meta, "alert_seq", last)) != 0 ||
        (rc = store_meta_u64(txn, self->meta, "alerts_floor", floor)) != 0) {
        log_err("[store] read alert bounds: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    return STORE_OK;
}

typedef struct {
    uint64_t after;
    store_alert_fn *fn;
    void *arg;
    long n;
} s_read_t;

static int s_on_read(const store_alert_t *a, void *arg)
{
    s_read_t *r = arg;
    if (a->seq <= r->after)
        return 0;
    r->n++;
    return r->fn(a, r->arg);
}

/* Walk the alerts after `after` in the snapshot, block by block from the
 * one holding after + 1, handing each to fn until it asks to stop (see
 * store.h). Bytes are borrowed from the snapshot for the call. */
long store_read_alerts(store_t *self, uint64_t after, store_alert_fn *fn, void *arg)
{
    MDB_cursor *cur = NULL;
    unsigned char key[8];
    s_read_t r = {.after = after, .fn = fn, .arg = arg};
    int rc;

    if (after == UINT64_MAX)
        return 0;
    if ((rc = mdb_cursor_open(S_RSTATE(self), self->alerts, &cur)) != 0)
        goto fail;
    MDB_val k = s_block_key(key, after / S_ALERT_BLOCK), v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (s_block_walk(v.mv_data, v.mv_size, s_on_read, &r))
            break;
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto fail;
    mdb_cursor_close(cur);
    return r.n;

fail:
    if (cur)
        mdb_cursor_close(cur);
    log_err("[store] read alerts after %llu: %s", (unsigned long long)after,
            mdb_strerror(rc));
    return STORE_ERR;
}
