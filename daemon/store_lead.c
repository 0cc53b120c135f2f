/* store_lead.c: lead records and the event ids kept beside them in
 * "leads" (see store.h). A lead's pending deadlines live in its record's
 * header; the group keeps the current lead's copy (cur_*) so that
 * replacing one needs no lookup. Owner thread, inside a group. */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "strcopy.h"

/* -- keys -------------------------------------------------------------- */

/* "lead id, NUL, tail" keys; cap bounds lead ids (<= 128) and tails. */
MDB_val store_pair_key(unsigned char *buf, size_t cap, const char *a,
                       const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na + nb + 1 > cap) {
        na = na > cap / 2 ? cap / 2 : na;
        nb = cap - na - 1;
    }
    memcpy(buf, a, na);
    buf[na] = '\0';
    memcpy(buf + na + 1, b, nb);
    MDB_val v = {.mv_size = na + 1 + nb, .mv_data = buf};
    return v;
}

/* -- event ids ----------------------------------------------------------- */

MDB_val store_id_key(unsigned char *buf, const char *lead_id, const char *id)
{
    return store_pair_key(buf, S_ID_KEY, lead_id, id);
}

int store_id_claim(store_t *self, const char *lead_id, const char *id)
{
    if (self->ret != STORE_OK)
        return self->ret;
    /* One descent of the tree: the put itself says whether the id was
     * there. The sequence is the one the next appended event gets. */
    unsigned char seqbuf[8], kbuf[S_ID_KEY];
    s_be64_put(seqbuf, self->last_seq + 1);
    MDB_val k = store_id_key(kbuf, lead_id, id), v = {.mv_size = 8, .mv_data = seqbuf};
    int rc = mdb_put(self->state_txn, self->leads, &k, &v, MDB_NOOVERWRITE);
    if (rc == 0)
        return 1;
    if (rc == MDB_KEYEXIST)
        return 0;
    store_fail(self, rc, false, "event id claim");
    return self->ret;
}

void store_id_release(store_t *self, const char *lead_id, const char *id)
{
    if (self->ret != STORE_OK)
        return;
    unsigned char kbuf[S_ID_KEY];
    MDB_val k = store_id_key(kbuf, lead_id, id);
    int rc = mdb_del(self->state_txn, self->leads, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        store_fail(self, rc, false, "event id release");
}

int store_id_seen(store_t *self, const char *lead_id, const char *id)
{
    if (self->ret != STORE_OK)
        return self->ret;
    unsigned char kbuf[S_ID_KEY];
    MDB_val k = store_id_key(kbuf, lead_id, id), v;
    int rc = mdb_get(self->state_txn, self->leads, &k, &v);
    if (rc == 0)
        return 1;
    if (rc == MDB_NOTFOUND)
        return 0;
    store_fail(self, rc, false, "event id lookup");
    return self->ret;
}

/* Split a stored lead. With cur (the group's writer), its deadlines become
 * the current lead's. Returns 1, or 0 when the record is malformed. */
int store_lead_split(store_t *cur, const char *lead_id, const MDB_val *v,
                        const void **buf, size_t *len, uint64_t *last_seq)
{
    const unsigned char *p = v->mv_data;
    if (v->mv_size < S_LEAD_FIXED)
        return 0;
    size_t n = p[8];
    size_t hdr = S_LEAD_FIXED + n * S_LEAD_DL;
    if (n > S_LEAD_DEADLINES || v->mv_size < hdr)
        return 0;
    if (last_seq)
        *last_seq = s_be64_get(p);
    if (cur) {
        strcopy(cur->cur_lead, sizeof cur->cur_lead, lead_id);
        cur->cur_valid = true;
        cur->cur_n = n;
        for (size_t i = 0; i < n; i++) {
            const unsigned char *d = p + S_LEAD_FIXED + i * S_LEAD_DL;
            memcpy(cur->cur_dl[i].kind, d, 16);
            cur->cur_dl[i].kind[15] = '\0';
            cur->cur_dl[i].due = (int64_t)s_be64_get(d + 16);
        }
    }
    *buf = p + hdr;
    *len = v->mv_size - hdr;
    return 1;
}

/* Make lead_id the current lead, reading its pending deadlines from its
 * record (none for a new lead). Returns 0 or an LMDB error. */
int store_cur_load(store_t *self, const char *lead_id)
{
    if (self->cur_valid && strcmp(self->cur_lead, lead_id) == 0)
        return 0;
    if (self->cur_valid && self->cur_dirty)
        log_err("[store] deadlines of lead %s changed but its record was not written",
                self->cur_lead);
    self->cur_dirty = false;
    MDB_val k = s_str_val(lead_id), v;
    const void *buf;
    size_t len;
    int rc = mdb_get(self->state_txn, self->leads, &k, &v);
    if (rc == 0 && store_lead_split(self, lead_id, &v, &buf, &len, NULL))
        return 0;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    strcopy(self->cur_lead, sizeof self->cur_lead, lead_id);
    self->cur_valid = true;
    self->cur_n = 0;
    return 0;
}

int store_lead_get(store_t *self, const char *lead_id, const void **buf,
                   size_t *len, uint64_t *last_seq)
{
    if (self->ret != STORE_OK)
        return self->ret;
    if (self->cur_valid && self->cur_dirty && strcmp(self->cur_lead, lead_id) != 0)
        log_err("[store] deadlines of lead %s changed but its record was not written",
                self->cur_lead);
    self->cur_dirty = false;
    MDB_val k = s_str_val(lead_id), v;
    int rc = mdb_get(self->state_txn, self->leads, &k, &v);
    if (rc == MDB_NOTFOUND) {
        strcopy(self->cur_lead, sizeof self->cur_lead, lead_id);
        self->cur_valid = true;
        self->cur_n = 0;
        return 0;
    }
    if (rc != 0) {
        store_fail(self, rc, false, "lead lookup");
        return self->ret;
    }
    return store_lead_split(self, lead_id, &v, buf, len, last_seq);
}

void store_lead_put(store_t *self, const char *lead_id, uint64_t last_seq,
                    const void *buf, size_t len)
{
    if (self->ret != STORE_OK)
        return;
    int rc = store_cur_load(self, lead_id);
    if (rc != 0) {
        store_fail(self, rc, false, "lead write");
        return;
    }
    size_t hdr = S_LEAD_FIXED + self->cur_n * S_LEAD_DL;
    MDB_val k = s_str_val(lead_id), v = {.mv_size = len + hdr, .mv_data = NULL};
    rc = mdb_put(self->state_txn, self->leads, &k, &v, MDB_RESERVE);
    if (rc != 0) {
        store_fail(self, rc, false, "lead write");
        return;
    }
    unsigned char *p = v.mv_data;
    s_be64_put(p, last_seq);
    self->cur_dirty = false;
    p[8] = (unsigned char)self->cur_n;
    for (size_t i = 0; i < self->cur_n; i++) {
        unsigned char *d = p + S_LEAD_FIXED + i * S_LEAD_DL;
        memset(d, 0, 16);
        memcpy(d, self->cur_dl[i].kind, strnlen(self->cur_dl[i].kind, 15));
        s_be64_put(d + 16, (uint64_t)self->cur_dl[i].due);
    }
    memcpy(p + hdr, buf, len);
}
