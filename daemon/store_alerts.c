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
    uint64_t block = (seq - 1) / S_ALERT_SPAN(self);
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
    /* Numbered densely, a block's first alert begins it; numbered by log
     * sequence, any alert may find it begun. */
    if (!self->alert_by_log && (seq - 1) % S_ALERT_BLOCK == 0)
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
    self->ablk_n = self->alert_by_log ? 1 : (size_t)((seq - 1) % S_ALERT_BLOCK);
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

uint64_t store_alert_next(store_t *self, uint64_t log_seq)
{
    if (self->alert_by_log && self->alert_seq < log_seq * STORE_ALERTS_PER_ENTRY)
        self->alert_seq = log_seq * STORE_ALERTS_PER_ENTRY - 1;
    return self->alert_seq + 1;
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
    uint64_t last_block = self->alert_seq ? (self->alert_seq - 1) / S_ALERT_SPAN(self) : 0;
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
    /* With partitions: the highest of them all. */
    for (unsigned i = 1; i < self->n_parts; i++) {
        uint64_t l, f;
        store_alerts_published(self->parts[i], &l, &f);
        if (l > *last)
            *last = l;
        if (f > *floor)
            *floor = f;
    }
}

/* With partitions, the alert numbers below this are those of log entries
 * that every partition had applied in the snapshot: what a merged read
 * hands out, so that a reader never passes an alert that a partition
 * behind the others stores later. */
static int s_parts_cut(store_t *self, uint64_t *cut)
{
    uint64_t min = UINT64_MAX;
    for (unsigned i = 0; i < self->n_parts; i++) {
        store_t *p = self->parts[i];
        uint64_t a = 0;
        int rc = store_meta_u64(S_RSTATE(p), p->meta, "applied_seq", &a);
        if (rc != 0) {
            log_err("[store] read partition %u's applied sequence: %s", i, mdb_strerror(rc));
            return STORE_ERR;
        }
        if (a < min)
            min = a;
    }
    *cut = (min + 1) * STORE_ALERTS_PER_ENTRY;
    return STORE_OK;
}

static int s_bounds_one(store_t *self, uint64_t *last, uint64_t *floor);

int store_read_alert_bounds(store_t *self, uint64_t *last, uint64_t *floor)
{
    if (self->n_parts <= 1)
        return s_bounds_one(self, last, floor);
    /* Merged: the highest floor, the highest number below the cut. */
    uint64_t cut;
    if (s_parts_cut(self, &cut) != STORE_OK)
        return STORE_ERR;
    *last = *floor = 0;
    for (unsigned i = 0; i < self->n_parts; i++) {
        uint64_t l, f;
        if (s_bounds_one(self->parts[i], &l, &f) != STORE_OK)
            return STORE_ERR;
        if (l >= cut)
            l = cut - 1;
        if (l > *last)
            *last = l;
        if (f > *floor)
            *floor = f;
    }
    return STORE_OK;
}

static int s_bounds_one(store_t *self, uint64_t *last, uint64_t *floor)
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

/* One partition's block in a merged read. */
typedef struct {
    MDB_cursor *cur;
    MDB_val k, v;
    bool at;                 /* on a block (k, v) */
} s_part_blk_t;

typedef struct {
    store_alert_t *a;
    size_t n, cap;
    uint64_t after, cut;
} s_gather_t;

static int s_on_gather(const store_alert_t *a, void *arg)
{
    s_gather_t *g = arg;
    if (a->seq <= g->after || a->seq >= g->cut)
        return 0;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->a = xrealloc(g->a, g->cap * sizeof *g->a);
    }
    g->a[g->n++] = *a;
    return 0;
}

static int s_alert_cmp(const void *x, const void *y)
{
    const store_alert_t *a = x, *b = y;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* store_read_alerts on a primary with partitions: the blocks of the same
 * number range from every partition (alerts are numbered by log
 * sequence), merged in number order, below the cut (s_parts_cut). */
static long s_read_merged(store_t *self, uint64_t after, store_alert_fn *fn, void *arg)
{
    unsigned np = self->n_parts;
    s_part_blk_t pb[STORE_PARTS_MAX];
    s_gather_t g = {.after = after};
    unsigned char key[8];
    long n = 0;
    int rc = 0;
    bool stop = false;

    memset(pb, 0, sizeof pb);
    if (s_parts_cut(self, &g.cut) != STORE_OK)
        return STORE_ERR;
    for (unsigned i = 0; i < np; i++)
        if ((rc = mdb_cursor_open(S_RSTATE(self->parts[i]), self->parts[i]->alerts,
                                  &pb[i].cur)) != 0)
            goto fail;
    for (uint64_t b = after / S_ALERT_SPAN_LOG; !stop;) {
        uint64_t next = UINT64_MAX;
        for (unsigned i = 0; i < np; i++) {
            pb[i].k = s_block_key(key, b);
            rc = mdb_cursor_get(pb[i].cur, &pb[i].k, &pb[i].v, MDB_SET_RANGE);
            pb[i].at = rc == 0 && pb[i].k.mv_size == 8;
            if (rc != 0 && rc != MDB_NOTFOUND)
                goto fail;
            if (pb[i].at && s_be64_get(pb[i].k.mv_data) < next)
                next = s_be64_get(pb[i].k.mv_data);
        }
        rc = 0;
        if (next == UINT64_MAX || next * S_ALERT_SPAN_LOG + 1 >= g.cut)
            break;
        g.n = 0;
        for (unsigned i = 0; i < np; i++)
            if (pb[i].at && s_be64_get(pb[i].k.mv_data) == next)
                s_block_walk(pb[i].v.mv_data, pb[i].v.mv_size, s_on_gather, &g);
        if (g.n > 1)
            qsort(g.a, g.n, sizeof *g.a, s_alert_cmp);
        for (size_t j = 0; j < g.n && !stop; j++) {
            n++;
            stop = fn(&g.a[j], arg) != 0;
        }
        b = next + 1;
    }
    for (unsigned i = 0; i < np; i++)
        mdb_cursor_close(pb[i].cur);
    free(g.a);
    return n;

fail:
    for (unsigned i = 0; i < np; i++)
        if (pb[i].cur)
            mdb_cursor_close(pb[i].cur);
    free(g.a);
    log_err("[store] read the partitions' alerts after %llu: %s", (unsigned long long)after,
            mdb_strerror(rc));
    return STORE_ERR;
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
    if (self->n_parts > 1)
        return s_read_merged(self, after, fn, arg);
    if ((rc = mdb_cursor_open(S_RSTATE(self), self->alerts, &cur)) != 0)
        goto fail;
    MDB_val k = s_block_key(key, after / S_ALERT_SPAN(self)), v;
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
