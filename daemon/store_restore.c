/* store_restore.c: reading checkpoints back (see store.h; the file is
 * described in store_ckpt_int.h): listing and pruning them, restoring the
 * newest intact one when the state cannot be trusted, reading one lead
 * from the oldest (lead --ledger after log retention), and dropping the
 * log entries that checkpoints cover (log retention).
 *
 * Restoring: the checkpoint is verified where it lies (trailer, checksum in
 * one sequential read, that it opens), then renamed into the state, or,
 * when it is the last way to recover, copied (s_restore_one).
 *
 * Threads: restoring runs in the owner thread while the store opens;
 * listing, pruning and reading a lead in any thread (they touch files
 * only); dropping log entries where retention.c runs it. */
#include "store_int.h"
#include "store_ckpt_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

static int s_ckpt_cmp(const void *a, const void *b)
{
    uint64_t x = ((const store_ckpt_t *)a)->seq, y = ((const store_ckpt_t *)b)->seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

size_t store_checkpoint_list(const char *state_dir, store_ckpt_t *out, size_t max)
{
    char dir[4096];
    size_t n = 0;
    ckpt_dir(state_dir, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    store_ckpt_t all[STORE_CKPT_MAX * 2];
    while ((e = readdir(d)) != NULL && n < sizeof all / sizeof all[0]) {
        unsigned long long seq;
        char tail[8];
        /* Exactly ckpt-<20 digits>.mdb. */
        if (strlen(e->d_name) != 29 || sscanf(e->d_name, "ckpt-%20llu%4s", &seq, tail) != 2 ||
            strcmp(tail, ".mdb") != 0)
            continue;
        char path[4400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == -1 || !S_ISREG(st.st_mode))
            continue;
        store_ckpt_t *c = &all[n++];
        memset(c, 0, sizeof *c);
        c->seq = seq;
        c->bytes = (uint64_t)st.st_size;
        c->created_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        snprintf(c->name, sizeof c->name, "%s", e->d_name);
    }
    closedir(d);
    qsort(all, n, sizeof all[0], s_ckpt_cmp);
    if (n > max)
        n = max;
    memcpy(out, all, n * sizeof all[0]);
    return n;
}

int store_checkpoint_prune(const char *state_dir, unsigned keep)
{
    store_ckpt_t list[STORE_CKPT_MAX];
    char dir[4096], path[4400];
    int deleted = 0;

    ckpt_dir(state_dir, dir, sizeof dir);
    size_t n = store_checkpoint_list(state_dir, list, STORE_CKPT_MAX);
    for (size_t i = keep ? keep : 1; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, list[i].name);
        if (unlink(path) == 0)
            deleted++;
        else
            log_warn("[checkpoint] cannot delete %s: %s", path, strerror(errno));
    }
    if (deleted)
        ckpt_fsync_dir(dir);
    return deleted;
}

/* The checksum (XXH3-64, or with crc CRC-32) of the first len bytes of
 * fd, read in large sequential chunks. 0, or -1 with errno. */
static int s_sum_file(int fd, uint64_t len, bool crc, uint64_t *out)
{
    unsigned char *buf = xmalloc(CKPT_CHUNK);
    ckpt_sum_t sum;
    ckpt_sum_init(&sum, crc);
    uint64_t off = 0;
    int rc = -1;

    (void)posix_fadvise(fd, 0, (off_t)len, POSIX_FADV_SEQUENTIAL);
    while (off < len) {
        size_t want = len - off < CKPT_CHUNK ? (size_t)(len - off) : CKPT_CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0)
                errno = EIO; /* shorter than it said */
            goto out;
        }
        ckpt_sum_add(&sum, buf, (size_t)n);
        off += (uint64_t)n;
    }
    rc = 0;
out:
    *out = ckpt_sum_end(&sum);
    free(buf);
    return rc;
}

/* Copy len bytes of in to out from offset 0: copy_file_range (the kernel
 * copies, or shares the blocks where the file system can), else read and
 * write. 0, or -1 with errno. */
static int s_copy_file(int in, int out, uint64_t len)
{
    loff_t ioff = 0, ooff = 0;
    while ((uint64_t)ioff < len) {
        ssize_t n = copy_file_range(in, &ioff, out, &ooff, (size_t)(len - (uint64_t)ioff), 0);
        if (n > 0)
            continue;
        if (n == 0) {
            errno = EIO; /* shorter than it said */
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
            return -1;
        break; /* not between these files: by hand */
    }
    unsigned char *buf = xmalloc(CKPT_CHUNK);
    int rc = 0;
    while ((uint64_t)ioff < len) {
        size_t want = len - (uint64_t)ioff < CKPT_CHUNK ? (size_t)(len - (uint64_t)ioff)
                                                             : CKPT_CHUNK;
        ssize_t n = pread(in, buf, want, ioff);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0)
                errno = EIO;
            rc = -1;
            break;
        }
        if (ckpt_write_full(out, buf, (size_t)n, (uint64_t)ooff) == -1) {
            rc = -1;
            break;
        }
        ioff += n;
        ooff += n;
    }
    free(buf);
    return rc;
}

/* Bring the checkpoint at src back as the state directory path's
 * data.mdb. It is verified first, in place: its trailer, its length, the
 * checksum of its data (one sequential read, which also brings its pages
 * into the page cache for the replay that follows) and that it opens with
 * the sequence its trailer says. Then, with consume, it is renamed into
 * place (its trailer cut off): nothing is copied, whatever the size of the
 * state, and the checkpoint is gone; otherwise it is copied (kernel copy).
 * Returns 1 restored (*renamed says how), 0 when the checkpoint is not
 * intact (why in reason, nothing changed), -1 on an I/O error (err). */
static int s_restore_one(const char *src, const char *path, uint64_t want_seq, bool consume,
                         bool *renamed, char *reason, size_t reasonlen, char *err,
                         size_t errlen)
{
    char tmp[4200], final[4200], dir[4400];
    unsigned char t[CKPT_TRAILER];
    struct stat st;
    int in = -1, out = -1, ret = 0;

    snprintf(tmp, sizeof tmp, "%s/data.mdb.restore", path);
    snprintf(final, sizeof final, "%s/data.mdb", path);
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in == -1 || fstat(in, &st) == -1) {
        snprintf(reason, reasonlen, "cannot open it: %s", strerror(errno));
        goto out;
    }
    if (st.st_size < CKPT_TRAILER + 2 * 4096 ||
        pread(in, t, CKPT_TRAILER, st.st_size - CKPT_TRAILER) != CKPT_TRAILER ||
        (memcmp(t, CKPT_MAGIC, 8) != 0 && memcmp(t, CKPT_MAGIC_CRC, 8) != 0)) {
        snprintf(reason, reasonlen, "it is truncated or torn (no trailer at its end)");
        goto out;
    }
    uint64_t seq = s_be64_get(t + 8), len = s_be64_get(t + 16);
    bool crc = memcmp(t, CKPT_MAGIC_CRC, 8) == 0;
    uint64_t sum_want = crc ? s_be64_get(t + 24) >> 32 : s_be64_get(t + 24), sum = 0;
    if (len != (uint64_t)st.st_size - CKPT_TRAILER || seq != want_seq) {
        snprintf(reason, reasonlen, "its trailer does not match its name or length");
        goto out;
    }
    if (s_sum_file(in, len, crc, &sum) == -1) {
        snprintf(reason, reasonlen, "cannot read it: %s", strerror(errno));
        goto out;
    }
    if (sum != sum_want) {
        snprintf(reason, reasonlen, "it is torn (%s %016llx, its trailer says %016llx)",
                 crc ? "CRC-32" : "XXH3-64", (unsigned long long)sum,
                 (unsigned long long)sum_want);
        goto out;
    }
    uint64_t schema = 0, applied = 0;
    int rc = ckpt_read_meta(src, &schema, &applied);
    if (rc != 0 || schema != STORE_SCHEMA || applied != seq) {
        snprintf(reason, reasonlen, "it does not open as a state of schema %d at %llu (%s)",
                 STORE_SCHEMA, (unsigned long long)seq,
                 rc ? mdb_strerror(rc) : "other meta");
        goto out;
    }
    if (mkdir(path, 0750) == -1 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        ret = -1;
        goto out;
    }
    if (consume) {
        /* The state is recovered from the log after a crash anyway, and
         * its marker (written once it opens) says "open in this boot"
         * until a clean close: a crash from here on recovers it again,
         * from an older checkpoint. The directories are flushed all the
         * same, so that the checkpoint's name never outlives the rename
         * while LMDB writes to its pages. */
        if (rename(src, final) == 0) {
            ret = 1;
            *renamed = true;
            if (truncate(final, (off_t)len) == -1 || ckpt_fsync_dir(path) == -1) {
                snprintf(err, errlen, "cutting the trailer off %s: %s", final,
                         strerror(errno));
                ret = -1;
                goto out;
            }
            snprintf(dir, sizeof dir, "%s", src);
            char *slash = strrchr(dir, '/');
            if (slash) {
                *slash = '\0';
                (void)ckpt_fsync_dir(dir);
            }
            goto out;
        }
        if (errno != EXDEV) {
            snprintf(err, errlen, "renaming %s to %s: %s", src, final, strerror(errno));
            ret = -1;
            goto out;
        }
        /* Another file system (--rebuild-dir): copied. */
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out == -1) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        ret = -1;
        goto out;
    }
    if (s_copy_file(in, out, len) == -1) {
        snprintf(err, errlen, "copying %s to %s: %s", src, tmp, strerror(errno));
        ret = -1;
        goto out;
    }
    close(out);
    out = -1;
    /* No fsync: as above. */
    if (rename(tmp, final) == -1) {
        snprintf(err, errlen, "renaming %s to %s: %s", tmp, final, strerror(errno));
        ret = -1;
        goto out;
    }
    ret = 1;
out:
    if (in != -1)
        close(in);
    if (out != -1)
        close(out);
    if (ret != 1)
        unlink(tmp);
    return ret;
}

int store_checkpoint_restore(store_t *self, uint64_t first, uint64_t last, bool oldest,
                             bool may_consume, uint64_t *seq, char *name, size_t namelen,
                             bool *consumed, char *err, size_t errlen)
{
    store_ckpt_t list[STORE_CKPT_MAX];
    char dir[4096], src[4400], path[4096], reason[256];

    *consumed = false;
    ckpt_dir(store_ckpt_root(self), dir, sizeof dir);
    store_state_path(self, path, sizeof path);
    size_t n = store_checkpoint_list(store_ckpt_root(self), list, STORE_CKPT_MAX);
    for (size_t k = 0; k < n; k++) {
        const store_ckpt_t *c = &list[oldest ? n - 1 - k : k];
        if (c->seq > last) {
            log_warn("[store] checkpoint %s is ahead of the event log (which ends at "
                     "%llu): skipped", c->name, (unsigned long long)last);
            continue;
        }
        if (first > 1 && c->seq + 1 < first) {
            log_warn("[store] checkpoint %s is older than the event log (which begins "
                     "at %llu after log_retention): skipped", c->name,
                     (unsigned long long)first);
            continue;
        }
        /* Renamed into the state only while recovery stays possible
         * without it: the log still begins at its first event, or an
         * older checkpoint that the log covers remains. */
        bool consume = may_consume && !oldest && first <= 1;
        for (size_t j = k + 1; may_consume && !oldest && !consume && j < n; j++)
            consume = list[j].seq <= last && list[j].seq + 1 >= first;
        snprintf(src, sizeof src, "%s/%s", dir, c->name);
        reason[0] = '\0';
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        bool renamed = false;
        int rc = s_restore_one(src, path, c->seq, consume, &renamed, reason, sizeof reason,
                               err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            log_warn("[store] checkpoint %s cannot be used: %s; trying an older one",
                     c->name, reason);
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        log_info("[store] checkpoint %s (%.1f MiB) verified and %s in %.2f s", c->name,
                 (double)c->bytes / (1 << 20),
                 renamed ? "renamed into the state" : "copied into the state",
                 (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        *seq = c->seq;
        *consumed = renamed;
        snprintf(name, namelen, "%s", c->name);
        return 1;
    }
    return 0;
}

int store_checkpoint_lead(const char *state_dir, uint64_t first, const char *lead_id,
                          store_ckpt_lead_t *out)
{
    store_ckpt_t list[STORE_CKPT_MAX];
    char dir[4096], path[4400];
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi leads;
    int rc, ret = STORE_ERR;

    memset(out, 0, sizeof *out);
    size_t n = store_checkpoint_list(state_dir, list, STORE_CKPT_MAX);
    while (n > 0 && first > 1 && list[n - 1].seq + 1 < first)
        n--; /* older than the log: not the one retention keeps it for */
    if (n == 0)
        return 0;
    out->ckpt = list[n - 1];
    ckpt_dir(state_dir, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/%s", dir, out->ckpt.name);
    if ((rc = ckpt_open(path, &env, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "leads", 0, &leads)) != 0)
        goto out;
    MDB_val k = {.mv_size = strlen(lead_id), .mv_data = (void *)lead_id}, v;
    rc = mdb_get(txn, leads, &k, &v);
    if (rc == MDB_NOTFOUND) {
        ret = 0;
        goto out;
    }
    if (rc != 0)
        goto out;
    const void *buf;
    size_t len;
    if (!store_lead_split(NULL, lead_id, &v, &buf, &len, NULL)) {
        rc = MDB_CORRUPTED;
        goto out;
    }
    const unsigned char *p = v.mv_data;
    out->n_deadlines = p[8] < STORE_LEAD_DEADLINES ? p[8] : STORE_LEAD_DEADLINES;
    for (size_t i = 0; i < out->n_deadlines; i++) {
        const unsigned char *d = p + S_LEAD_FIXED + i * S_LEAD_DL;
        memcpy(out->deadlines[i].kind, d, 16);
        out->deadlines[i].kind[15] = '\0';
        out->deadlines[i].due_ms = (int64_t)s_be64_get(d + 16);
    }
    out->buf = xmalloc(len ? len : 1);
    memcpy(out->buf, buf, len);
    out->len = len;
    ret = 1;
out:
    if (ret == STORE_ERR)
        log_err("[store] reading lead %s from checkpoint %s: %s", lead_id, out->ckpt.name,
                mdb_strerror(rc));
    ckpt_close(&env, &txn);
    return ret;
}

/* -- log retention --------------------------------------------------------- */

long store_log_drop(store_t *self, uint64_t upto, size_t max)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    long n = 0;
    int rc;

    if (self->log_txn || (store_state_side(self) && self->state_txn))
        return STORE_ERR;
    /* The last entry stays, whatever: it is where the sequence goes on. */
    if (self->last_seq == 0)
        return 0;
    if (upto >= self->last_seq)
        upto = self->last_seq - 1;
    if (self->first_seq == 0 || self->first_seq > upto)
        return 0;
    if ((rc = mdb_txn_begin(self->log_env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_cursor_open(txn, self->events, &cur)) != 0)
        goto fail;
    MDB_val k, v;
    uint64_t next = self->first_seq;
    while ((size_t)n < max) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc != 0 || k.mv_size != 8)
            goto fail;
        uint64_t seq = s_be64_get(k.mv_data);
        if (seq > upto) {
            next = seq;
            break;
        }
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            goto fail;
        n++;
        next = seq + 1;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        goto fail;
    pthread_mutex_lock(&self->pub_lock);
    self->first_seq = next;
    self->pub_first_seq = next;
    self->log_dropped += (uint64_t)n;
    pthread_mutex_unlock(&self->pub_lock);
    return n;

fail:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    log_err("[store] dropping log entries up to %llu: %s", (unsigned long long)upto,
            mdb_strerror(rc));
    return STORE_ERR;
}
