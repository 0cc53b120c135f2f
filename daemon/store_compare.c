/* store_compare.c: comparing the live state with one rebuilt beside it
 * from the log, for funneld --rebuild (see store.h). */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "log.h"

/* -- comparing two states ---------------------------------------------- */

/* Rolling-window counters in "aggregates" (keys_is_rolling) depend on
 * when the checks ran, not only on the log, so a rebuild does not compare
 * them. */
static bool s_volatile_key(const MDB_val *k, bool aggregates)
{
    return aggregates && keys_is_rolling(k->mv_data, k->mv_size);
}

/* Stored alerts at or below a retention floor are gone from one state
 * (retention runs on daemon time, not on the log) and only those above
 * it are compared. */
static bool s_trimmed_alert(const MDB_val *k, uint64_t floor)
{
    /* Retention removes whole blocks: the floor ends one. */
    return floor && k->mv_size == 8 &&
           (s_be64_get(k->mv_data) + 1) * S_ALERT_BLOCK <= floor;
}

/* Merge the sorted keys of database a_dbi (the live state, in a_txn) and
 * b_dbi (the rebuilt one, in b_txn), counting into *d what is in both,
 * only in one, or differs; keys with a NUL go to *ids instead when ids is
 * not NULL (the event ids kept in "leads"); with a floor (not 0), the
 * blocks of stored alerts up to it are left out (removed by retention). The first difference found
 * anywhere is written into first (firstlen bytes) if it is still "".
 * Both transactions stay the caller's. Returns 0 or an LMDB error. Owner
 * thread, with no group open. */
static int s_compare_db(MDB_txn *a_txn, MDB_dbi a_dbi, MDB_txn *b_txn,
                        MDB_dbi b_dbi, const char *name, store_diff_t *d,
                        store_diff_t *ids, uint64_t floor, char *first,
                        size_t firstlen)
{
    store_diff_t *records = d;
    bool aggregates = strcmp(name, "aggregates") == 0;
    MDB_cursor *ca = NULL, *cb = NULL;
    MDB_val ka, va, kb, vb;
    int ra, rb, rc = 0;

    if ((rc = mdb_cursor_open(a_txn, a_dbi, &ca)) != 0 ||
        (rc = mdb_cursor_open(b_txn, b_dbi, &cb)) != 0)
        goto out;
    ra = mdb_cursor_get(ca, &ka, &va, MDB_FIRST);
    rb = mdb_cursor_get(cb, &kb, &vb, MDB_FIRST);
    /* A merge of two sorted key sequences. */
    while (ra == 0 || rb == 0) {
        int cmp;
        if (ra != 0)
            cmp = 1;
        else if (rb != 0)
            cmp = -1;
        else {
            size_t n = ka.mv_size < kb.mv_size ? ka.mv_size : kb.mv_size;
            cmp = memcmp(ka.mv_data, kb.mv_data, n);
            if (cmp == 0)
                cmp = ka.mv_size < kb.mv_size ? -1 : ka.mv_size > kb.mv_size;
        }
        const MDB_val *k = cmp <= 0 ? &ka : &kb;
        const char *what = NULL;
        if (s_volatile_key(k, aggregates) || s_trimmed_alert(k, floor)) {
            if (cmp <= 0)
                ra = mdb_cursor_get(ca, &ka, &va, MDB_NEXT);
            if (cmp >= 0)
                rb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT);
            continue;
        }
        /* "leads" holds the event ids too: keys with a NUL. */
        d = ids && memchr(k->mv_data, '\0', k->mv_size) ? ids : records;
        d->compared++;
        if (cmp < 0) {
            d->extra++;
            what = "only in the rebuilt state";
        } else if (cmp > 0) {
            d->missing++;
            what = "only in the live state";
        } else if (va.mv_size != vb.mv_size ||
                   memcmp(va.mv_data, vb.mv_data, va.mv_size) != 0) {
            d->differ++;
            what = "differs";
        }
        if (what && first[0] == '\0') {
            int klen = (int)(k->mv_size > 80 ? 80 : k->mv_size);
            const char *kd = k->mv_data;
            int printable = 1;
            for (int i = 0; i < klen; i++)
                printable &= kd[i] >= 0x20 && kd[i] < 0x7f;
            snprintf(first, firstlen, "%s key \"%.*s\"%s: %s", name,
                     printable ? klen : 0, kd, printable ? "" : " (binary)", what);
        }
        if (cmp <= 0)
            ra = mdb_cursor_get(ca, &ka, &va, MDB_NEXT);
        if (cmp >= 0)
            rb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT);
    }
    if (ra != MDB_NOTFOUND)
        rc = ra;
    else if (rb != MDB_NOTFOUND)
        rc = rb;
out:
    if (ca)
        mdb_cursor_close(ca);
    if (cb)
        mdb_cursor_close(cb);
    return rc;
}

/* Open dir/other_name read-only as a second environment, compare each of
 * its databases with the live state's (see store.h) and close it again.
 * Returns STORE_OK with *out filled, or STORE_ERR (logged) when either
 * state cannot be opened or read. Owner thread, no group or read open. */
int store_compare_state(store_t *self, const char *other_name,
                        store_compare_t *out)
{
    MDB_env *env = NULL;
    MDB_txn *a = NULL, *b = NULL;
    MDB_dbi leads, agg, meta, dl, mk, al;
    char path[4096];
    int rc;

    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "%s/%s", self->dir, other_name);
    if ((rc = mdb_env_create(&env)) != 0 ||
        (rc = mdb_env_set_maxdbs(env, STORE_MAXDBS)) != 0 ||
        (rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS, 0640)) != 0 ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &b)) != 0 ||
        (rc = mdb_dbi_open(b, "leads", 0, &leads)) != 0 ||
        (rc = mdb_dbi_open(b, "aggregates", 0, &agg)) != 0 ||
        (rc = mdb_dbi_open(b, "deadlines", 0, &dl)) != 0 ||
        (rc = mdb_dbi_open(b, "marks", 0, &mk)) != 0 ||
        (rc = mdb_dbi_open(b, "alerts", 0, &al)) != 0 ||
        (rc = mdb_dbi_open(b, "meta", 0, &meta)) != 0 ||
        (rc = mdb_txn_begin(self->state_env, NULL, MDB_RDONLY, &a)) != 0)
        goto out;
    char *first = out->first_difference;
    size_t fl = sizeof out->first_difference;
    uint64_t other_applied = 0, other_alert_seq = 0, other_floor = 0;
    if ((rc = store_meta_u64(b, meta, "applied_seq", &other_applied)) != 0 ||
        (rc = store_meta_u64(b, meta, "alert_seq", &other_alert_seq)) != 0 ||
        (rc = store_meta_u64(b, meta, "alerts_floor", &other_floor)) != 0)
        goto out;
    uint64_t floor = other_floor > self->alerts_floor ? other_floor : self->alerts_floor;
    if ((rc = s_compare_db(a, self->leads, b, leads, "leads", &out->leads, &out->event_ids,
                           0, first, fl)) != 0 ||
        (rc = s_compare_db(a, self->aggregates, b, agg, "aggregates", &out->counters, NULL,
                           0, first, fl)) != 0 ||
        (rc = s_compare_db(a, self->deadlines, b, dl, "deadlines", &out->deadlines, NULL,
                           0, first, fl)) != 0 ||
        (rc = s_compare_db(a, self->marks, b, mk, "marks", &out->marks, NULL, 0, first,
                           fl)) != 0 ||
        (rc = s_compare_db(a, self->alerts, b, al, "alerts", &out->alerts, NULL, floor,
                           first, fl)) != 0)
        goto out;
    out->applied_seq_differs = other_applied != self->applied_seq;
    out->alert_seq_differs = other_alert_seq != self->alert_seq;

out:
    if (a)
        mdb_txn_abort(a);
    if (b)
        mdb_txn_abort(b);
    if (env)
        mdb_env_close(env);
    if (rc != 0) {
        log_err("[store] compare with %s: %s", path, mdb_strerror(rc));
        return STORE_ERR;
    }
    return STORE_OK;
}
