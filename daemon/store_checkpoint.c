/* store_checkpoint.c: durable checkpoints of the state (see store.h),
 * restoring the newest intact one when the state cannot be trusted, and
 * dropping log entries that checkpoints cover (log retention).
 *
 * Writing one: mdb_env_copyfd2(MDB_CP_COMPACT) copies the state from a
 * read transaction of its own (LMDB begins it inside the call, in the
 * calling thread, and copies page by page through a writer thread of its
 * own), so ingest and queries go on meanwhile: readers never wait for
 * it, and a writer only keeps the pages of that snapshot from being
 * reused (the state file may grow by what is written meanwhile). The
 * meta record "applied_seq" is copied in the same snapshot, so the copy
 * says itself which log sequence it covers: it is read back from the copy
 * (which proves the copy opens), never from the live state.
 *
 * Map growth: LMDB remaps an environment only with none of its
 * transactions open in the process, and the copy's transaction lives for
 * the whole copy (seconds for a large state). So the copy holds
 * state_grow_lock shared, as every read snapshot does; the log has a lock
 * of its own and grows meanwhile. Growing the state's map ahead of need
 * (3/4 full) never waits for the lock (store_group_begin); the checkpoint
 * thread asks the loop thread to grow every map that is half full before
 * the copy (store_grow_ahead()), so the state would have to double during
 * one copy before growing it really waited for the copy to end.
 *
 * The file: the copy's LMDB pages, then a trailer of S_TRAILER bytes
 * ("FNLDCKP1", u64 BE seq, u64 BE length of the LMDB data, u32 BE CRC-32
 * of that data, 4 zero bytes). It is written as checkpoints/ckpt.tmp,
 * fsync'd, renamed to ckpt-<seq, 20 digits>.mdb and the directory fsync'd:
 * a name of that form is a complete file unless the disk itself lost it,
 * which the trailer (length and CRC) tells before LMDB maps a page.
 *
 * Threads: store_checkpoint() runs in the checkpoint thread; restoring
 * runs in the owner thread while the store opens; listing and pruning in
 * any thread (they touch files only). */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "xalloc.h"

#define S_TRAILER 32
#define S_MAGIC "FNLDCKP1"
#define S_CHUNK (1u << 20)
#define S_TMP "ckpt.tmp"

static void s_ckpt_dir(const char *state_dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", state_dir, STORE_CKPT_DIR);
}

/* fsync a directory, so that a rename in it is durable. 0 or -1. */
static int s_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Open the LMDB file at path (a checkpoint, or a restored data.mdb)
 * read-only, without a lock file, and read its schema and applied
 * sequence. Returns 0, or an LMDB error. */
static int s_read_meta(const char *path, uint64_t *schema, uint64_t *applied)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    int rc;

    if ((rc = mdb_env_create(&env)) != 0)
        return rc;
    if ((rc = mdb_env_set_maxdbs(env, STORE_MAXDBS)) != 0 ||
        (rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS,
                           0640)) != 0 ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", 0, &meta)) != 0 ||
        (rc = store_meta_u64(txn, meta, "schema", schema)) != 0 ||
        (rc = store_meta_u64(txn, meta, "applied_seq", applied)) != 0)
        goto out;
out:
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc;
}

static void s_trailer_put(unsigned char *t, uint64_t seq, uint64_t len, uint32_t crc)
{
    memset(t, 0, S_TRAILER);
    memcpy(t, S_MAGIC, 8);
    s_be64_put(t + 8, seq);
    s_be64_put(t + 16, len);
    t[24] = (unsigned char)(crc >> 24);
    t[25] = (unsigned char)(crc >> 16);
    t[26] = (unsigned char)(crc >> 8);
    t[27] = (unsigned char)crc;
}

/* Copy len bytes of fd from offset 0 to out (if out != -1), computing their
 * CRC-32 into *crc. Returns 0, or -1 with errno. */
static int s_copy_crc(int fd, uint64_t len, int out, uint32_t *crc)
{
    unsigned char *buf = xmalloc(S_CHUNK);
    uLong c = crc32(0L, Z_NULL, 0);
    uint64_t off = 0;
    int rc = -1;

    while (off < len) {
        size_t want = len - off < S_CHUNK ? (size_t)(len - off) : S_CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* shorter than it said */
            goto out;
        }
        c = crc32(c, buf, (uInt)n);
        if (out != -1) {
            for (ssize_t done = 0; done < n;) {
                ssize_t w = pwrite(out, buf + done, (size_t)(n - done), (off_t)off + done);
                if (w <= 0) {
                    if (w == 0)
                        errno = EIO;
                    goto out;
                }
                done += w;
            }
        }
        off += (uint64_t)n;
    }
    *crc = (uint32_t)c;
    rc = 0;
out:
    free(buf);
    return rc;
}

int store_checkpoint(store_t *self, store_ckpt_t *out, char *err, size_t errlen)
{
    char dir[4096], tmp[4200], final[4200];
    unsigned char trailer[S_TRAILER];
    uint64_t schema = 0, seq = 0;
    uint32_t crc = 0;
    struct stat st;
    int fd = -1, rc;

    s_ckpt_dir(self->dir, dir, sizeof dir);
    if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return STORE_ERR;
    }
    snprintf(tmp, sizeof tmp, "%s/%s", dir, S_TMP);
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd == -1) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return STORE_ERR;
    }

    /* The copy, from LMDB's own read transaction: the state's map must
     * not be remapped meanwhile. */
    pthread_rwlock_rdlock(&self->state_grow_lock);
    __atomic_store_n(&self->copying, 1, __ATOMIC_RELEASE);
    rc = mdb_env_copyfd2(self->state_env, fd, MDB_CP_COMPACT);
    __atomic_store_n(&self->copying, 0, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&self->state_grow_lock);
    if (rc != 0) {
        /* A write that hit a full disk comes back as EIO or ENOSPC. */
        snprintf(err, errlen, "copying the state to %s: %s", tmp,
                 rc == EIO ? "input/output error (is the disk full?)" : mdb_strerror(rc));
        goto fail;
    }
    if (fstat(fd, &st) == -1 || fsync(fd) == -1) {
        snprintf(err, errlen, "flushing %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if ((rc = s_read_meta(tmp, &schema, &seq)) != 0) {
        snprintf(err, errlen, "the copy %s does not open: %s", tmp, mdb_strerror(rc));
        goto fail;
    }
    if (schema != STORE_SCHEMA) {
        snprintf(err, errlen, "the copy %s has schema %llu, not %d", tmp,
                 (unsigned long long)schema, STORE_SCHEMA);
        goto fail;
    }
    if (s_copy_crc(fd, (uint64_t)st.st_size, -1, &crc) == -1) {
        snprintf(err, errlen, "reading back %s: %s", tmp, strerror(errno));
        goto fail;
    }
    s_trailer_put(trailer, seq, (uint64_t)st.st_size, crc);
    if (pwrite(fd, trailer, S_TRAILER, st.st_size) != S_TRAILER || fsync(fd) == -1) {
        snprintf(err, errlen, "writing the trailer of %s: %s", tmp,
                 errno ? strerror(errno) : "short write");
        goto fail;
    }
    close(fd);
    fd = -1;
    snprintf(final, sizeof final, "%s/ckpt-%020llu.mdb", dir, (unsigned long long)seq);
    if (rename(tmp, final) == -1 || s_fsync_dir(dir) == -1) {
        snprintf(err, errlen, "renaming %s to %s: %s", tmp, final, strerror(errno));
        goto fail;
    }
    memset(out, 0, sizeof *out);
    out->seq = seq;
    out->bytes = (uint64_t)st.st_size + S_TRAILER;
    out->created_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    snprintf(out->name, sizeof out->name, "ckpt-%020llu.mdb", (unsigned long long)seq);
    return STORE_OK;

fail:
    if (fd != -1)
        close(fd);
    unlink(tmp);
    return STORE_ERR;
}

static int s_ckpt_cmp(const void *a, const void *b)
{
    uint64_t x = ((const store_ckpt_t *)a)->seq, y = ((const store_ckpt_t *)b)->seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

size_t store_checkpoint_list(const char *state_dir, store_ckpt_t *out, size_t max)
{
    char dir[4096];
    size_t n = 0;
    s_ckpt_dir(state_dir, dir, sizeof dir);
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

    s_ckpt_dir(state_dir, dir, sizeof dir);
    size_t n = store_checkpoint_list(state_dir, list, STORE_CKPT_MAX);
    for (size_t i = keep ? keep : 1; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, list[i].name);
        if (unlink(path) == 0)
            deleted++;
        else
            log_warn("[checkpoint] cannot delete %s: %s", path, strerror(errno));
    }
    if (deleted)
        s_fsync_dir(dir);
    return deleted;
}

/* Copy the checkpoint at src into the state directory path as data.mdb,
 * checking its trailer, length and CRC on the way, then that it opens
 * with the sequence its trailer says. Returns 1 restored, 0 when the
 * checkpoint is not intact (why in reason, nothing left behind), -1 on an
 * I/O error of the destination (err). */
static int s_restore_one(const char *src, const char *path, uint64_t want_seq,
                         char *reason, size_t reasonlen, char *err, size_t errlen)
{
    char tmp[4200], final[4200];
    unsigned char t[S_TRAILER];
    struct stat st;
    int in = -1, out = -1, ret = 0;

    snprintf(tmp, sizeof tmp, "%s/data.mdb.restore", path);
    snprintf(final, sizeof final, "%s/data.mdb", path);
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in == -1 || fstat(in, &st) == -1) {
        snprintf(reason, reasonlen, "cannot open it: %s", strerror(errno));
        goto out;
    }
    if (st.st_size < S_TRAILER + 2 * 4096 ||
        pread(in, t, S_TRAILER, st.st_size - S_TRAILER) != S_TRAILER ||
        memcmp(t, S_MAGIC, 8) != 0) {
        snprintf(reason, reasonlen, "it is truncated or torn (no trailer at its end)");
        goto out;
    }
    uint64_t seq = s_be64_get(t + 8), len = s_be64_get(t + 16);
    uint32_t crc_want = (uint32_t)t[24] << 24 | (uint32_t)t[25] << 16 |
                        (uint32_t)t[26] << 8 | t[27], crc = 0;
    if (len != (uint64_t)st.st_size - S_TRAILER || seq != want_seq) {
        snprintf(reason, reasonlen, "its trailer does not match its name or length");
        goto out;
    }
    if (mkdir(path, 0750) == -1 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        ret = -1;
        goto out;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out == -1) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        ret = -1;
        goto out;
    }
    if (s_copy_crc(in, len, out, &crc) == -1) {
        snprintf(err, errlen, "copying %s to %s: %s", src, tmp, strerror(errno));
        ret = -1;
        goto out;
    }
    if (crc != crc_want) {
        snprintf(reason, reasonlen, "it is torn (CRC-32 %08x, its trailer says %08x)", crc,
                 crc_want);
        goto out;
    }
    close(out);
    out = -1;
    uint64_t schema = 0, applied = 0;
    int rc = s_read_meta(tmp, &schema, &applied);
    if (rc != 0 || schema != STORE_SCHEMA || applied != seq) {
        snprintf(reason, reasonlen, "it does not open as a state of schema %d at %llu (%s)",
                 STORE_SCHEMA, (unsigned long long)seq,
                 rc ? mdb_strerror(rc) : "other meta");
        goto out;
    }
    /* No fsync: the state is committed without one anyway, and its marker
     * (written once it opens) says "open in this boot" until a clean close. */
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
                             uint64_t *seq, char *name, size_t namelen, char *err,
                             size_t errlen)
{
    store_ckpt_t list[STORE_CKPT_MAX];
    char dir[4096], src[4400], path[4096], reason[256];

    s_ckpt_dir(self->dir, dir, sizeof dir);
    store_state_path(self, path, sizeof path);
    size_t n = store_checkpoint_list(self->dir, list, STORE_CKPT_MAX);
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
        snprintf(src, sizeof src, "%s/%s", dir, c->name);
        reason[0] = '\0';
        int rc = s_restore_one(src, path, c->seq, reason, sizeof reason, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            log_warn("[store] checkpoint %s cannot be used: %s; trying an older one",
                     c->name, reason);
            continue;
        }
        *seq = c->seq;
        snprintf(name, namelen, "%s", c->name);
        return 1;
    }
    return 0;
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
