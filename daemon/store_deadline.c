/* store_deadline.c: deadlines ("deadlines": due time, lead, kind) and
 * marks ("marks": set, lead -> since) (see store.h). Writes run on the
 * owner thread inside a group. */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strcopy.h"
#include "xalloc.h"

static MDB_val s_due_key(unsigned char *buf, size_t cap, int64_t due,
                         const char *lead_id, const char *kind)
{
    s_be64_put(buf, (uint64_t)due);
    MDB_val pk = store_pair_key(buf + 8, cap - 8, lead_id, kind);
    MDB_val v = {.mv_size = pk.mv_size + 8, .mv_data = buf};
    return v;
}

/* Remove the current lead's deadline of kind, if any: 1 and its due time
 * in *due, 0 when it had none, or an LMDB error (> 1). */
static int s_deadline_del(store_t *self, const char *lead_id, const char *kind,
                          int64_t *due)
{
    unsigned char db[520];
    int rc = store_cur_load(self, lead_id);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < self->cur_n; i++) {
        if (strncmp(self->cur_dl[i].kind, kind, 15) != 0)
            continue;
        *due = self->cur_dl[i].due;
        MDB_val dk = s_due_key(db, sizeof db, *due, lead_id, kind);
        if ((rc = mdb_del(self->state_txn, self->deadlines, &dk, NULL)) != 0 &&
            rc != MDB_NOTFOUND)
            return rc;
        self->cur_dl[i] = self->cur_dl[--self->cur_n];
        self->cur_dirty = true;
        return 1;
    }
    return 0;
}

void store_deadline_set(store_t *self, const char *lead_id, const char *kind,
                        int64_t due_ms)
{
    if (self->ret != STORE_OK)
        return;
    int64_t old;
    int rc = s_deadline_del(self, lead_id, kind, &old);
    if (rc < 0 || rc > 1) {
        store_fail(self, rc, false, "deadline replace");
        return;
    }
    if (self->cur_n == S_LEAD_DEADLINES) {
        log_err("[store] lead %s has more than %d kinds of deadline; %s dropped",
                lead_id, S_LEAD_DEADLINES, kind);
        return;
    }
    unsigned char db[520];
    MDB_val dk = s_due_key(db, sizeof db, due_ms, lead_id, kind);
    MDB_val empty = {.mv_size = 0, .mv_data = ""};
    if ((rc = mdb_put(self->state_txn, self->deadlines, &dk, &empty, 0)) != 0) {
        store_fail(self, rc, false, "deadline write");
        return;
    }
    strcopy(self->cur_dl[self->cur_n].kind, sizeof self->cur_dl[0].kind, kind);
    self->cur_dl[self->cur_n].due = due_ms;
    self->cur_n++;
    self->cur_dirty = true;
}

int store_deadline_clear(store_t *self, const char *lead_id, const char *kind,
                         int64_t *due_ms)
{
    if (self->ret != STORE_OK)
        return self->ret;
    int64_t due = 0;
    int rc = s_deadline_del(self, lead_id, kind, &due);
    if (rc < 0 || rc > 1) {
        store_fail(self, rc, false, "deadline clear");
        return self->ret;
    }
    if (due_ms)
        *due_ms = due;
    return rc;
}

/* Copy the deadlines due at or before now_ms, earliest first, into out
 * (at most max; see store.h). Reads the open group if there is one, else
 * this thread's read snapshot. An entry that is not a deadline key is
 * logged and, in a group, deleted, so that it is not due forever. An
 * LMDB error returns 0: in a group it becomes the sticky error, else it
 * is logged. Owner thread. */
static size_t s_due_one(store_t *self, int64_t now_ms, size_t max, store_due_t *out);

static int s_due_cmp(const void *a, const void *b)
{
    const store_due_t *x = a, *y = b;
    if (x->due_ms != y->due_ms)
        return x->due_ms < y->due_ms ? -1 : 1;
    int c = strcmp(x->lead_id, y->lead_id);
    return c ? c : strcmp(x->kind, y->kind);
}

size_t store_deadlines_due(store_t *self, int64_t now_ms, size_t max,
                           store_due_t *out)
{
    /* A partition's own state (its writer), or one store alone. */
    if (self->n_parts <= 1 || (store_state_writer(self) && self->state_txn))
        return s_due_one(self, now_ms, max, out);
    /* Every partition's, the earliest max of them all. */
    store_due_t *all = xcalloc((size_t)self->n_parts * (max ? max : 1), sizeof *all);
    size_t n = 0;
    for (unsigned i = 0; i < self->n_parts; i++)
        if (store_counted(self, i)) /* leads owned elsewhere: not fired here */
            n += s_due_one(self->parts[i], now_ms, max, all + n);
    qsort(all, n, sizeof *all, s_due_cmp);
    if (n > max)
        n = max;
    memcpy(out, all, n * sizeof *out);
    free(all);
    return n;
}

static size_t s_due_one(store_t *self, int64_t now_ms, size_t max, store_due_t *out)
{
    MDB_cursor *cur = NULL;
    size_t n = 0;
    int rc;

    MDB_txn *txn = S_STATE_TXN(self);
    bool writer = store_state_writer(self) && txn != NULL && txn == self->state_txn;
    if (writer && self->ret != STORE_OK)
        return 0;
    if ((rc = mdb_cursor_open(txn, self->deadlines, &cur)) != 0)
        goto fail;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 10)
            continue;
        int64_t due = (int64_t)s_be64_get(k.mv_data);
        if (due > now_ms)
            break;
        const char *lead = (const char *)k.mv_data + 8;
        size_t rest = k.mv_size - 8;
        size_t nl = strnlen(lead, rest);
        if (nl >= rest || nl > sizeof out[n].lead_id - 1 ||
            rest - nl - 1 > sizeof out[n].kind - 1) {
            /* Not one of ours: it would be due forever. */
            log_err("[store] dropping a malformed deadline entry (%zu bytes)", k.mv_size);
            if (writer && mdb_cursor_del(cur, 0) == 0 &&
                mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT) != 0)
                break;
            continue;
        }
        memcpy(out[n].lead_id, lead, nl);
        out[n].lead_id[nl] = '\0';
        memcpy(out[n].kind, lead + nl + 1, rest - nl - 1);
        out[n].kind[rest - nl - 1] = '\0';
        out[n].due_ms = due;
        n++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND && n < max)
        goto fail;
    mdb_cursor_close(cur);
    return n;

fail:
    if (cur)
        mdb_cursor_close(cur);
    if (writer)
        store_fail(self, rc, false, "deadline scan");
    else
        log_err("[store] deadline scan: %s", mdb_strerror(rc));
    return 0;
}

void store_deadline_drop(store_t *self, const store_due_t *due)
{
    if (self->ret != STORE_OK)
        return;
    unsigned char db[520];
    MDB_val dk = s_due_key(db, sizeof db, due->due_ms, due->lead_id, due->kind);
    int rc = mdb_del(self->state_txn, self->deadlines, &dk, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        store_fail(self, rc, false, "deadline drop");
    /* The lead (if any) still lists it: a later set or clear of that kind
     * deletes a key that is gone, which is harmless. */
}

void store_mark(store_t *self, const char *set, const char *lead_id, bool on,
                int64_t since_ms)
{
    if (self->ret != STORE_OK)
        return;
    unsigned char kb[512], sb[8];
    MDB_val k = store_pair_key(kb, sizeof kb, set, lead_id);
    int rc;
    if (on) {
        s_be64_put(sb, (uint64_t)since_ms);
        MDB_val v = {.mv_size = 8, .mv_data = sb};
        rc = mdb_put(self->state_txn, self->marks, &k, &v, 0);
    } else {
        rc = mdb_del(self->state_txn, self->marks, &k, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (rc != 0)
        store_fail(self, rc, false, "mark write");
}
