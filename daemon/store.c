/* store.c: see store.h. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define STORE_SCHEMA 5
#define STORE_MAXDBS 8
#define S_LEAD_DEADLINES 8   /* pending deadlines a lead may have */

typedef struct {
    char *key;
    int64_t delta;
} s_counter_t;

struct store {
    char *dir;
    char *state_name;
    int lock_fd;
    bool marked_open;     /* meta says "in use": clear it on a clean close */

    MDB_env *log_env;
    MDB_env *state_env;
    size_t log_map;
    size_t state_map;
    MDB_dbi events;       /* log env */
    MDB_dbi leads;        /* state env (with the event ids), and below */
    MDB_dbi aggregates;
    MDB_dbi meta;
    MDB_dbi deadlines;      /* due_ms BE, lead id, NUL, kind -> empty */
    MDB_dbi marks;          /* set, NUL, lead id -> since_ms BE */

    /* The open group, if any. */
    MDB_txn *log_txn;
    MDB_txn *state_txn;
    int ret;              /* sticky error of the group */

    /* The pending deadlines of the lead last read or written in the group,
     * kept in its record's header (so that replacing one needs no lookup):
     * valid for cur_lead only. */
    char cur_lead[160];
    bool cur_valid;
    bool cur_dirty;       /* its deadlines changed since its record was written */
    size_t cur_n;
    struct {
        char kind[16];
        int64_t due;
    } cur_dl[S_LEAD_DEADLINES];
    bool log_full;        /* MDB_MAP_FULL seen in this env */
    bool state_full;
    uint64_t last_seq_begin;
    uint64_t applied_seq_begin;
    int64_t watermark_begin;
    store_stats_t stats_begin;

    /* Readers (read snapshots, in any thread) hold this shared; growing
     * the maps holds it exclusively, as LMDB wants no transaction open. */
    pthread_rwlock_t grow_lock;
    pthread_t owner;      /* the thread that opened the store: groups */
    /* The counters as last published for other threads. */
    pthread_mutex_t pub_lock;
    store_stats_t pub_stats;
    uint64_t pub_last_seq;

    int64_t watermark_ms; /* largest event time applied */
    uint64_t last_seq;    /* last event in the log */
    uint64_t applied_seq; /* last event applied to the state */
    store_stats_t stats;

    s_counter_t *ctr;     /* counter deltas of the open group */
    size_t n_ctr;
    size_t cap_ctr;
    uint32_t *ctr_index;  /* open addressing: slot -> ctr index + 1, 0 empty */
    size_t cap_index;     /* a power of two, >= 2 * cap_ctr */
};

/* A read snapshot belongs to the thread that began it (the loop thread for
 * replay and deadlines, the query thread for queries), so each thread has
 * its own; a thread reads one store at a time. */
static __thread struct {
    const store_t *store;
    MDB_txn *rlog;
    MDB_txn *rstate;
} t_read;

/* This thread's snapshot of self, or NULL. */
#define S_RLOG(self) (t_read.store == (self) ? t_read.rlog : NULL)
#define S_RSTATE(self) (t_read.store == (self) ? t_read.rstate : NULL)

/* -- keys and values ----------------------------------------------------- */

static void s_be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t s_be64_get(const void *vp)
{
    const unsigned char *p = vp;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static MDB_val s_str_val(const char *s)
{
    MDB_val v = {.mv_size = strlen(s), .mv_data = (void *)s};
    return v;
}

/* -- errors ---------------------------------------------------------------- */

/* Record the first error of a group; MDB_MAP_FULL becomes STORE_EFULL and
 * remembers which environment needs a larger map. */
static void s_fail(store_t *self, int rc, bool in_log, const char *what)
{
    if (self->ret != STORE_OK)
        return;
    if (rc == MDB_MAP_FULL) {
        self->ret = STORE_EFULL;
        if (in_log)
            self->log_full = true;
        else
            self->state_full = true;
        log_info("[store] %s map full during %s", in_log ? "log" : "state", what);
        return;
    }
    if (rc == MDB_TXN_FULL) {
        self->ret = STORE_ETXNFULL;
        log_info("[store] transaction full during %s", what);
        return;
    }
    self->ret = STORE_ERR;
    /* LMDB reports a short write (the disk filled up in the middle of it)
     * as EIO: say what the filesystem says. */
    struct statvfs fs;
    if ((rc == EIO || rc == ENOSPC || rc == EDQUOT) &&
        statvfs(self->dir, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < (8u << 20))
        log_err("[store] %s: %s: no space left on the disk (%llu bytes free in %s)", what,
                mdb_strerror(rc), (unsigned long long)fs.f_bavail * fs.f_frsize,
                self->dir);
    else
        log_err("[store] %s: %s", what, mdb_strerror(rc));
}

/* -- open and close -------------------------------------------------------- */

static int s_mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) == -1 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0750) == -1 && errno != EEXIST)
        return -1;
    return 0;
}

static int s_env_open(MDB_env **env, const char *dir, const char *sub,
                      size_t map_size, unsigned flags, char *err, size_t errlen)
{
    char path[4096];
    int rc;

    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (s_mkdir_p(path) == -1) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    if ((rc = mdb_env_create(env)) != 0 ||
        (rc = mdb_env_set_maxdbs(*env, STORE_MAXDBS)) != 0 ||
        (rc = mdb_env_set_mapsize(*env, map_size)) != 0 ||
        (rc = mdb_env_open(*env, path, flags | MDB_NOTLS, 0640)) != 0) {
        snprintf(err, errlen, "cannot open LMDB environment %s: %s", path,
                 mdb_strerror(rc));
        return -1;
    }
    /* Reader slots left by a killed process would pin old pages. */
    int dead = 0;
    mdb_reader_check(*env, &dead);
    if (dead > 0)
        log_info("[store] cleared %d stale reader slot(s) in %s", dead, path);
    return 0;
}

/* A map already larger than map_size on disk keeps its size. */
static size_t s_env_map_size(MDB_env *env)
{
    MDB_envinfo info;
    if (mdb_env_info(env, &info) != 0)
        return 0;
    return info.me_mapsize;
}

static int s_lock(store_t *self, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/funneld.lock", self->dir);
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (self->lock_fd == -1) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) == -1) {
        char pid[32] = "";
        ssize_t n = pread(self->lock_fd, pid, sizeof pid - 1, 0);
        if (n > 0) {
            pid[n] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
        }
        snprintf(err, errlen,
                 "state directory %s is in use by another funneld%s%s%s",
                 self->dir, n > 0 ? " (pid " : "", n > 0 ? pid : "",
                 n > 0 ? ")" : "");
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(self->lock_fd, 0) == -1 ||
        pwrite(self->lock_fd, pid, (size_t)len, 0) != len)
        log_warn("[store] cannot write pid to %s: %s", path, strerror(errno));
    return 0;
}

static int s_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out)
{
    MDB_val k = s_str_val(key), v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rc != 0 || v.mv_size != 8)
        return rc ? rc : MDB_CORRUPTED;
    *out = s_be64_get(v.mv_data);
    return 0;
}

static int s_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key,
                          uint64_t value)
{
    unsigned char buf[8];
    s_be64_put(buf, value);
    MDB_val k = s_str_val(key), v = {.mv_size = 8, .mv_data = buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* The counters, as one value of consecutive u64 BE fields, in the order of
 * store_stats_t (new fields are appended; shorter old values read as 0). */
#define S_NSTATS (sizeof(store_stats_t) / sizeof(uint64_t))

static int s_stats_put(MDB_txn *txn, MDB_dbi dbi, const store_stats_t *st)
{
    unsigned char buf[S_NSTATS * 8];
    const uint64_t *f = (const uint64_t *)st;
    for (size_t i = 0; i < S_NSTATS; i++)
        s_be64_put(buf + 8 * i, f[i]);
    MDB_val k = s_str_val("stats"), v = {.mv_size = sizeof buf, .mv_data = buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int s_stats_get(MDB_txn *txn, MDB_dbi dbi, store_stats_t *st)
{
    MDB_val k = s_str_val("stats"), v;
    memset(st, 0, sizeof *st);
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    uint64_t *f = (uint64_t *)st;
    for (size_t i = 0; i < S_NSTATS && 8 * (i + 1) <= v.mv_size; i++)
        f[i] = s_be64_get((const unsigned char *)v.mv_data + 8 * i);
    return 0;
}

/* Open the named databases and read where the log and the state stand. */
static int s_open_dbs(store_t *self, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc;

    if ((rc = mdb_txn_begin(self->log_env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "events", MDB_CREATE, &self->events)) != 0)
        goto fail;
    if ((rc = mdb_cursor_open(txn, self->events, &cur)) != 0)
        goto fail;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        self->last_seq = s_be64_get(k.mv_data);
    else if (rc != MDB_NOTFOUND)
        goto fail;
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        goto fail;
    }

    uint64_t schema = 0;
    if ((rc = mdb_txn_begin(self->state_env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "leads", MDB_CREATE, &self->leads)) != 0 ||
        (rc = mdb_dbi_open(txn, "aggregates", MDB_CREATE, &self->aggregates)) != 0 ||
        (rc = mdb_dbi_open(txn, "deadlines", MDB_CREATE, &self->deadlines)) != 0 ||
        (rc = mdb_dbi_open(txn, "marks", MDB_CREATE, &self->marks)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &self->meta)) != 0 ||
        (rc = s_meta_u64(txn, self->meta, "schema", &schema)) != 0 ||
        (rc = s_meta_u64(txn, self->meta, "applied_seq", &self->applied_seq)) != 0 ||
        (rc = s_meta_u64(txn, self->meta, "watermark_ms", (uint64_t *)&self->watermark_ms)) != 0 ||
        (rc = s_stats_get(txn, self->meta, &self->stats)) != 0)
        goto fail;
    if (schema == 0) {
        if ((rc = s_meta_put_u64(txn, self->meta, "schema", STORE_SCHEMA)) != 0)
            goto fail;
    } else if (schema != STORE_SCHEMA) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "state schema %llu is not %d: rebuild the state",
                 (unsigned long long)schema, STORE_SCHEMA);
        return -1;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        goto fail;
    }
    if (self->applied_seq > self->last_seq) {
        snprintf(err, errlen,
                 "state is ahead of the event log (applied %llu > logged %llu): "
                 "the log was lost or replaced",
                 (unsigned long long)self->applied_seq,
                 (unsigned long long)self->last_seq);
        return -1;
    }
    return 0;

fail:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    snprintf(err, errlen, "cannot open databases in %s: %s", self->dir,
             mdb_strerror(rc));
    return -1;
}

/* rm -rf of one of the store's own subdirectories (flat: LMDB's files). */
static int s_remove_env_dir(const char *path)
{
    const char *files[] = {"data.mdb", "lock.mdb"};
    for (size_t i = 0; i < 2; i++) {
        char f[4200];
        snprintf(f, sizeof f, "%s/%s", path, files[i]);
        if (unlink(f) == -1 && errno != ENOENT)
            return -1;
    }
    if (rmdir(path) == -1 && errno != ENOENT)
        return -1;
    return 0;
}

/* This boot of the machine, "" when unknown. FUNNELD_BOOT_ID overrides
 * it, so that tests can stage a machine restart. */
static void s_boot_id(char *out, size_t cap)
{
    const char *forced = getenv("FUNNELD_BOOT_ID");
    if (forced) {
        snprintf(out, cap, "%s", forced);
        return;
    }
    out[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* The state is committed without fsync, so only the page cache holds its
 * latest pages: a killed process loses nothing, but a machine that went
 * down with the state open may have written some pages and not others.
 * A small marker file beside it, fsync'd, says "open in boot B" while
 * funneld runs and "clean" after a clean close. It lives outside the state
 * because the state itself is what cannot be trusted. */
static void s_marker_path(const store_t *self, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.mark", self->dir, self->state_name);
}

/* Whether the state directory may be torn: it exists, and the marker is
 * missing or says it was open in another boot. */
static bool s_state_torn(store_t *self)
{
    char path[4200], data[4200], text[128] = "", now[64];
    snprintf(data, sizeof data, "%s/%s/data.mdb", self->dir, self->state_name);
    if (access(data, F_OK) != 0)
        return false; /* nothing there yet */
    s_marker_path(self, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    if (fgets(text, sizeof text, f) == NULL)
        text[0] = '\0';
    fclose(f);
    text[strcspn(text, "\n")] = '\0';
    if (strcmp(text, "clean") == 0)
        return false;
    s_boot_id(now, sizeof now);
    return strncmp(text, "open ", 5) != 0 || now[0] == '\0' || strcmp(text + 5, now) != 0;
}

/* Write the marker durably: "open <boot id>" or "clean". Returns 0 or an
 * errno value. */
static int s_mark_open(store_t *self, bool open)
{
    char path[4200], text[128], boot[64];
    s_marker_path(self, path, sizeof path);
    s_boot_id(boot, sizeof boot);
    int n = open ? snprintf(text, sizeof text, "open %s\n", boot)
                 : snprintf(text, sizeof text, "clean\n");
    int fd = openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd == -1)
        return errno;
    int rc = 0;
    if (write(fd, text, (size_t)n) != n || fsync(fd) == -1)
        rc = errno ? errno : EIO;
    close(fd);
    return rc;
}

store_t *store_open(const char *dir, size_t map_size, char *err, size_t errlen)
{
    return store_open_state(dir, "state", false, map_size, err, errlen);
}

const char *store_dir(const store_t *self)
{
    return self->dir;
}

store_t *store_open_state(const char *dir, const char *state_name, bool fresh,
                          size_t map_size, char *err, size_t errlen)
{
    store_t *self = xcalloc(1, sizeof *self);
    self->lock_fd = -1;
    self->dir = xstrdup(dir);
    self->state_name = xstrdup(state_name);
    self->owner = pthread_self();
    /* Writers first: a stream of queries must not keep a map from growing. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&self->grow_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&self->pub_lock, NULL);

    if (s_mkdir_p(dir) == -1) {
        snprintf(err, errlen, "cannot create state directory %s: %s", dir,
                 strerror(errno));
        goto fail;
    }
    if (s_lock(self, err, errlen) == -1)
        goto fail;
    if (s_env_open(&self->log_env, dir, "log", map_size, 0, err, errlen) == -1)
        goto fail;
    /* The state is recoverable from the log: commit it without fsync. */
    if (fresh) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, state_name);
        if (s_remove_env_dir(path) == -1) {
            snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
            goto fail;
        }
    }
    /* A state that may be torn, or that LMDB cannot open, is rebuilt from
     * the log: it holds nothing the log does not. */
    bool rebuild = !fresh && s_state_torn(self);
    if (rebuild)
        log_warn("[store] the machine went down while funneld had %s/%s open (or "
                 "its marker is missing): its pages may be torn; rebuilding the "
                 "state from the event log", dir, state_name);
    for (int attempt = 0;; attempt++) {
        if (rebuild) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, state_name);
            if (self->state_env) {
                mdb_env_close(self->state_env);
                self->state_env = NULL;
            }
            if (s_remove_env_dir(path) == -1) {
                snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
                goto fail;
            }
            self->applied_seq = 0;
            memset(&self->stats, 0, sizeof self->stats);
        }
        if (s_env_open(&self->state_env, dir, state_name, map_size,
                       MDB_NOSYNC | MDB_NOMETASYNC, err, errlen) == 0 &&
            s_open_dbs(self, err, errlen) == 0)
            break;
        if (attempt > 0 || fresh || rebuild)
            goto fail;
        log_warn("[store] %s; rebuilding the state from the event log", err);
        rebuild = true;
    }
    int rc = s_mark_open(self, true);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write the marker of %s/%s: %s", dir, state_name,
                 strerror(rc));
        goto fail;
    }
    self->marked_open = true;
    self->log_map = s_env_map_size(self->log_env);
    self->state_map = s_env_map_size(self->state_env);
    log_info("[store] opened %s: %llu events logged, %llu applied, map %zu+%zu MiB",
             dir, (unsigned long long)self->last_seq,
             (unsigned long long)self->applied_seq, self->log_map >> 20,
             self->state_map >> 20);
    store_stats_publish(self);
    return self;

fail:
    store_destroy(&self);
    return NULL;
}

void store_destroy(store_t **self_p)
{
    store_t *self = *self_p;
    if (self == NULL)
        return;
    store_read_end(self);
    store_group_abort(self);
    if (self->state_env) {
        /* Flushed first, then marked clean: a clean mark never precedes
         * the pages it vouches for. */
        int rc = mdb_env_sync(self->state_env, 1);
        if (rc != 0)
            log_err("[store] flushing the state: %s", mdb_strerror(rc));
        mdb_env_close(self->state_env);
        if (rc == 0 && self->marked_open && (rc = s_mark_open(self, false)) != 0)
            log_err("[store] marking the state clean: %s", strerror(rc));
    }
    if (self->log_env)
        mdb_env_close(self->log_env);
    if (self->lock_fd != -1)
        close(self->lock_fd);
    for (size_t i = 0; i < self->n_ctr; i++)
        free(self->ctr[i].key);
    free(self->ctr);
    free(self->ctr_index);
    pthread_rwlock_destroy(&self->grow_lock);
    pthread_mutex_destroy(&self->pub_lock);
    free(self->dir);
    free(self->state_name);
    free(self);
    *self_p = NULL;
}

uint64_t store_last_seq(const store_t *self) { return self->last_seq; }
uint64_t store_applied_seq(const store_t *self) { return self->applied_seq; }
store_stats_t *store_stats(store_t *self) { return &self->stats; }

/* -- group commit ---------------------------------------------------------- */

/* Whether an environment has used more than 3/4 of its map. */
static bool s_env_nearly_full(MDB_env *env)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0)
        return false;
    return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize > info.me_mapsize / 4 * 3;
}

int store_group_begin(store_t *self)
{
    int rc;

    /* Grow ahead of need, while no transaction is open: a map that fills
     * up inside the state commit (after the log commit) costs a replay. */
    self->log_full = s_env_nearly_full(self->log_env);
    self->state_full = s_env_nearly_full(self->state_env);
    if ((self->log_full || self->state_full) && !S_RLOG(self) && !S_RSTATE(self) &&
        !self->log_txn && !self->state_txn && store_grow(self) != STORE_OK)
        return STORE_ERR;
    if (self->log_txn || self->state_txn || S_RLOG(self) || S_RSTATE(self)) {
        log_err("[store] group begun while another transaction is open");
        return STORE_ERR;
    }
    self->ret = STORE_OK;
    self->cur_valid = self->cur_dirty = false;
    self->log_full = self->state_full = false;
    self->last_seq_begin = self->last_seq;
    self->applied_seq_begin = self->applied_seq;
    self->watermark_begin = self->watermark_ms;
    self->stats_begin = self->stats;
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

/* An event id is kept in "leads" beside its lead's record, under the key
 * "lead id, NUL, event id" (no lead id holds a NUL): the id of an event
 * falls in the page its lead's record is in, which the event dirties
 * anyway, so idempotency costs no random page of its own. */
#define S_ID_KEY (128 * 2 + 2)   /* both are at most 128 bytes: validate.c */

static MDB_val s_pair_key(unsigned char *buf, size_t cap, const char *a,
                          const char *b);

static MDB_val s_id_key(unsigned char *buf, const char *lead_id, const char *id)
{
    return s_pair_key(buf, S_ID_KEY, lead_id, id);
}

int store_id_claim(store_t *self, const char *lead_id, const char *id)
{
    if (self->ret != STORE_OK)
        return self->ret;
    /* One descent of the tree: the put itself says whether the id was
     * there. The sequence is the one the next appended event gets. */
    unsigned char seqbuf[8], kbuf[S_ID_KEY];
    s_be64_put(seqbuf, self->last_seq + 1);
    MDB_val k = s_id_key(kbuf, lead_id, id), v = {.mv_size = 8, .mv_data = seqbuf};
    int rc = mdb_put(self->state_txn, self->leads, &k, &v, MDB_NOOVERWRITE);
    if (rc == 0)
        return 1;
    if (rc == MDB_KEYEXIST)
        return 0;
    s_fail(self, rc, false, "event id claim");
    return self->ret;
}

void store_id_release(store_t *self, const char *lead_id, const char *id)
{
    if (self->ret != STORE_OK)
        return;
    unsigned char kbuf[S_ID_KEY];
    MDB_val k = s_id_key(kbuf, lead_id, id);
    int rc = mdb_del(self->state_txn, self->leads, &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        s_fail(self, rc, false, "event id release");
}

int store_id_seen(store_t *self, const char *lead_id, const char *id)
{
    if (self->ret != STORE_OK)
        return self->ret;
    unsigned char kbuf[S_ID_KEY];
    MDB_val k = s_id_key(kbuf, lead_id, id), v;
    int rc = mdb_get(self->state_txn, self->leads, &k, &v);
    if (rc == 0)
        return 1;
    if (rc == MDB_NOTFOUND)
        return 0;
    s_fail(self, rc, false, "event id lookup");
    return self->ret;
}

/* A stored lead: u64 BE sequence of its last event (the head of its
 * timeline chain through the log); one byte n and n pending deadlines of
 * the lead (16-byte kind, u64 BE due time); then its Lead bytes. */
#define S_LEAD_FIXED 9
#define S_LEAD_DL 24

/* Split a stored lead. With cur (the group's writer), its deadlines become
 * the current lead's. Returns 1, or 0 when the record is malformed. */
static int s_lead_split(store_t *cur, const char *lead_id, const MDB_val *v,
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
        snprintf(cur->cur_lead, sizeof cur->cur_lead, "%s", lead_id);
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
static int s_cur_load(store_t *self, const char *lead_id)
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
    if (rc == 0 && s_lead_split(self, lead_id, &v, &buf, &len, NULL))
        return 0;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    snprintf(self->cur_lead, sizeof self->cur_lead, "%s", lead_id);
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
        snprintf(self->cur_lead, sizeof self->cur_lead, "%s", lead_id);
        self->cur_valid = true;
        self->cur_n = 0;
        return 0;
    }
    if (rc != 0) {
        s_fail(self, rc, false, "lead lookup");
        return self->ret;
    }
    return s_lead_split(self, lead_id, &v, buf, len, last_seq);
}

void store_lead_put(store_t *self, const char *lead_id, uint64_t last_seq,
                    const void *buf, size_t len)
{
    if (self->ret != STORE_OK)
        return;
    int rc = s_cur_load(self, lead_id);
    if (rc != 0) {
        s_fail(self, rc, false, "lead write");
        return;
    }
    size_t hdr = S_LEAD_FIXED + self->cur_n * S_LEAD_DL;
    MDB_val k = s_str_val(lead_id), v = {.mv_size = len + hdr, .mv_data = NULL};
    rc = mdb_put(self->state_txn, self->leads, &k, &v, MDB_RESERVE);
    if (rc != 0) {
        s_fail(self, rc, false, "lead write");
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

static void s_index_event(store_t *self, const char *lead_id, const char *id,
                          uint64_t seq)
{
    unsigned char seqbuf[8], kbuf[S_ID_KEY];
    int rc;

    s_be64_put(seqbuf, seq);
    MDB_val k = s_id_key(kbuf, lead_id, id), v = {.mv_size = 8, .mv_data = seqbuf};
    if ((rc = mdb_put(self->state_txn, self->leads, &k, &v, 0)) != 0) {
        s_fail(self, rc, false, "event id write");
        return;
    }
    if (seq > self->applied_seq)
        self->applied_seq = seq;
}

/* A logged event: u64 BE sequence of the previous event of the same lead
 * (0 for its first), then the Event bytes. The chain gives every lead its
 * timeline without an index written at random places. */
#define S_LOG_HDR 8

uint64_t store_event_add(store_t *self, const char *lead_id, const char *id,
                         bool id_claimed,
                         uint64_t prev_seq, const void *raw, size_t len)
{
    if (self->ret != STORE_OK)
        return 0;
    unsigned char key[8];
    uint64_t seq = self->last_seq + 1;
    s_be64_put(key, seq);
    MDB_val k = {.mv_size = 8, .mv_data = key};
    MDB_val v = {.mv_size = len + S_LOG_HDR, .mv_data = NULL};
    int rc = mdb_put(self->log_txn, self->events, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc != 0) {
        s_fail(self, rc, true, "log append");
        return 0;
    }
    s_be64_put(v.mv_data, prev_seq);
    memcpy((unsigned char *)v.mv_data + S_LOG_HDR, raw, len);
    self->last_seq = seq;
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

static uint32_t s_hash(const char *key)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* The slot of key in the counter index: its entry, or the empty slot where
 * it belongs. */
static uint32_t *s_counter_slot_h(store_t *self, const char *key, uint32_t h)
{
    size_t mask = self->cap_index - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t *slot = &self->ctr_index[i];
        if (*slot == 0 || strcmp(self->ctr[*slot - 1].key, key) == 0)
            return slot;
    }
}

static uint32_t *s_counter_slot(store_t *self, const char *key)
{
    return s_counter_slot_h(self, key, s_hash(key));
}

static void s_counter_reindex(store_t *self)
{
    free(self->ctr_index);
    self->ctr_index = xcalloc(self->cap_index, sizeof *self->ctr_index);
    for (size_t i = 0; i < self->n_ctr; i++)
        *s_counter_slot(self, self->ctr[i].key) = (uint32_t)i + 1;
}

void store_counter_add(store_t *self, const char *key, int64_t delta)
{
    store_counter_add_h(self, key, s_hash(key), delta);
}

void store_counter_add_h(store_t *self, const char *key, uint32_t hash, int64_t delta)
{
    /* Every event adds to a dozen counters or more (per stage, persona,
     * source, cohort): summed here, in a hash table, and written once per
     * group. */
    if (self->cap_index == 0) {
        self->cap_index = 256;
        self->ctr_index = xcalloc(self->cap_index, sizeof *self->ctr_index);
    }
    uint32_t *slot = s_counter_slot_h(self, key, hash);
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
    if (2 * self->n_ctr > self->cap_index) {
        self->cap_index *= 2;
        s_counter_reindex(self);
    } else {
        *slot = (uint32_t)self->n_ctr;
    }
}

static void s_counters_clear(store_t *self)
{
    for (size_t i = 0; i < self->n_ctr; i++)
        free(self->ctr[i].key);
    self->n_ctr = 0;
    if (self->ctr_index)
        memset(self->ctr_index, 0, self->cap_index * sizeof *self->ctr_index);
}

static int s_counter_cmp(const void *a, const void *b)
{
    return strcmp(((const s_counter_t *)a)->key, ((const s_counter_t *)b)->key);
}

static void s_counters_flush(store_t *self)
{
    /* In key order: neighbouring counters share pages. The index is not
     * used after this (the group ends). */
    if (self->n_ctr == 0)
        return;
    qsort(self->ctr, self->n_ctr, sizeof *self->ctr, s_counter_cmp);
    memset(self->ctr_index, 0, self->cap_index * sizeof *self->ctr_index);
    for (size_t i = 0; i < self->n_ctr; i++)
        *s_counter_slot(self, self->ctr[i].key) = (uint32_t)i + 1;
    for (size_t i = 0; i < self->n_ctr && self->ret == STORE_OK; i++) {
        if (self->ctr[i].delta == 0)
            continue;
        MDB_val k = s_str_val(self->ctr[i].key), v;
        int64_t value = 0;
        int rc = mdb_get(self->state_txn, self->aggregates, &k, &v);
        if (rc == 0 && v.mv_size == 8)
            value = (int64_t)s_be64_get(v.mv_data);
        else if (rc != 0 && rc != MDB_NOTFOUND) {
            s_fail(self, rc, false, "counter read");
            return;
        }
        int64_t next = value + self->ctr[i].delta;
        if (next == 0) {
            /* Absent and zero are the same: the state must not depend on
             * how events happened to be grouped into commits. */
            if ((rc = mdb_del(self->state_txn, self->aggregates, &k, NULL)) != 0 &&
                rc != MDB_NOTFOUND)
                s_fail(self, rc, false, "counter delete");
            continue;
        }
        unsigned char buf[8];
        s_be64_put(buf, (uint64_t)next);
        v.mv_size = 8;
        v.mv_data = buf;
        if ((rc = mdb_put(self->state_txn, self->aggregates, &k, &v, 0)) != 0)
            s_fail(self, rc, false, "counter write");
    }
}

void store_group_abort(store_t *self)
{
    self->cur_valid = self->cur_dirty = false;
    if (self->log_txn) {
        mdb_txn_abort(self->log_txn);
        self->log_txn = NULL;
    }
    if (self->state_txn) {
        mdb_txn_abort(self->state_txn);
        self->state_txn = NULL;
        self->last_seq = self->last_seq_begin;
        self->applied_seq = self->applied_seq_begin;
        self->watermark_ms = self->watermark_begin;
        self->stats = self->stats_begin;
    }
    s_counters_clear(self);
}

int store_group_commit(store_t *self)
{
    int rc;

    if (self->log_txn == NULL || self->state_txn == NULL)
        return STORE_ERR;
    s_counters_flush(self);
    if (self->ret == STORE_OK) {
        self->stats.commits++;
        if ((rc = s_meta_put_u64(self->state_txn, self->meta, "applied_seq",
                                 self->applied_seq)) != 0 ||
            (rc = s_meta_put_u64(self->state_txn, self->meta, "watermark_ms",
                                 (uint64_t)self->watermark_ms)) != 0 ||
            (rc = s_stats_put(self->state_txn, self->meta, &self->stats)) != 0)
            s_fail(self, rc, false, "meta write");
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
        s_fail(self, rc, true, "log commit");
        int ret = self->ret;
        store_group_abort(self);
        return ret;
    }

    rc = mdb_txn_commit(self->state_txn);
    self->state_txn = NULL;
    s_counters_clear(self);
    if (rc != 0) {
        /* The events are durable in the log; the state is not. */
        s_fail(self, rc, false, "state commit");
        self->applied_seq = self->applied_seq_begin;
        self->watermark_ms = self->watermark_begin;
        self->stats = self->stats_begin;
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
    *map = s_env_map_size(env);
    log_info("[store] %s map grown to %zu KiB", name, *map >> 10);
    return STORE_OK;
}

int store_grow(store_t *self)
{
    if (self->log_txn || self->state_txn || S_RLOG(self) || S_RSTATE(self))
        return STORE_ERR;
    int ret = STORE_OK;
    /* LMDB resizes a map only with no transaction open in the process:
     * wait for the other threads' snapshots to end. */
    pthread_rwlock_wrlock(&self->grow_lock);
    if (self->log_full && s_grow_env(self->log_env, &self->log_map, "log") != 0)
        ret = STORE_ERR;
    if (self->state_full &&
        s_grow_env(self->state_env, &self->state_map, "state") != 0)
        ret = STORE_ERR;
    pthread_rwlock_unlock(&self->grow_lock);
    self->log_full = self->state_full = false;
    return ret;
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


/* -- deadlines and marks ---------------------------------------------- */

/* "lead id, NUL, tail" keys; cap bounds lead ids (<= 128) and tails. */
static MDB_val s_pair_key(unsigned char *buf, size_t cap, const char *a,
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

static MDB_val s_due_key(unsigned char *buf, size_t cap, int64_t due,
                         const char *lead_id, const char *kind)
{
    s_be64_put(buf, (uint64_t)due);
    MDB_val pk = s_pair_key(buf + 8, cap - 8, lead_id, kind);
    MDB_val v = {.mv_size = pk.mv_size + 8, .mv_data = buf};
    return v;
}

/* Remove the current lead's deadline of kind, if any: 1 and its due time
 * in *due, 0 when it had none, or an LMDB error (> 1). */
static int s_deadline_del(store_t *self, const char *lead_id, const char *kind,
                          int64_t *due)
{
    unsigned char db[520];
    int rc = s_cur_load(self, lead_id);
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
        s_fail(self, rc, false, "deadline replace");
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
        s_fail(self, rc, false, "deadline write");
        return;
    }
    snprintf(self->cur_dl[self->cur_n].kind, sizeof self->cur_dl[0].kind, "%s", kind);
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
        s_fail(self, rc, false, "deadline clear");
        return self->ret;
    }
    if (due_ms)
        *due_ms = due;
    return rc;
}

size_t store_deadlines_due(store_t *self, int64_t now_ms, size_t max,
                           store_due_t *out)
{
    MDB_cursor *cur = NULL;
    size_t n = 0;
    int rc;

    if (self->ret != STORE_OK)
        return 0;
    MDB_txn *txn = self->state_txn ? self->state_txn : S_RSTATE(self);
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
            if (self->state_txn && mdb_cursor_del(cur, 0) == 0 &&
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
    if (self->state_txn)
        s_fail(self, rc, false, "deadline scan");
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
        s_fail(self, rc, false, "deadline drop");
    /* The lead (if any) still lists it: a later set or clear of that kind
     * deletes a key that is gone, which is harmless. */
}

void store_mark(store_t *self, const char *set, const char *lead_id, bool on,
                int64_t since_ms)
{
    if (self->ret != STORE_OK)
        return;
    unsigned char kb[512], sb[8];
    MDB_val k = s_pair_key(kb, sizeof kb, set, lead_id);
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
        s_fail(self, rc, false, "mark write");
}

int64_t store_counter_get(store_t *self, const char *key)
{
    int64_t value = 0;
    if (self->cap_index) {
        uint32_t *slot = s_counter_slot(self, key);
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

int64_t store_watermark(const store_t *self) { return self->watermark_ms; }

int store_definition(store_t *self, char *out, size_t cap)
{
    MDB_txn *txn;
    MDB_val k = s_str_val("definition"), v;
    out[0] = '\0';
    int rc = mdb_txn_begin(self->state_env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return STORE_ERR;
    rc = mdb_get(txn, self->meta, &k, &v);
    if (rc == 0) {
        size_t n = v.mv_size < cap - 1 ? v.mv_size : cap - 1;
        memcpy(out, v.mv_data, n);
        out[n] = '\0';
    }
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? STORE_OK : STORE_ERR;
}

int store_set_definition(store_t *self, const char *text)
{
    MDB_txn *txn;
    MDB_val k = s_str_val("definition"), v = s_str_val(text);
    int rc;
    if (self->log_txn || self->state_txn || S_RSTATE(self))
        return STORE_ERR;
    if ((rc = mdb_txn_begin(self->state_env, NULL, 0, &txn)) != 0)
        goto fail;
    if ((rc = mdb_put(txn, self->meta, &k, &v, 0)) != 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto fail;
    return STORE_OK;
fail:
    log_err("[store] record the definition: %s", mdb_strerror(rc));
    return STORE_ERR;
}

void store_set_watermark(store_t *self, int64_t ms)
{
    if (ms > self->watermark_ms)
        self->watermark_ms = ms;
}

/* -- reads ----------------------------------------------------------------- */


int store_read_begin(store_t *self)
{
    MDB_txn *rlog = NULL, *rstate = NULL;
    int rc;

    if (t_read.store != NULL)
        return STORE_ERR; /* this thread has a snapshot open already */
    /* The owner's group is read by the owner only. */
    if (pthread_equal(pthread_self(), self->owner) && (self->log_txn || self->state_txn))
        return STORE_ERR;
    pthread_rwlock_rdlock(&self->grow_lock);
    if ((rc = mdb_txn_begin(self->state_env, NULL, MDB_RDONLY, &rstate)) != 0 ||
        (rc = mdb_txn_begin(self->log_env, NULL, MDB_RDONLY, &rlog)) != 0) {
        if (rstate)
            mdb_txn_abort(rstate);
        pthread_rwlock_unlock(&self->grow_lock);
        log_err("[store] begin read: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    t_read.store = self;
    t_read.rlog = rlog;
    t_read.rstate = rstate;
    return STORE_OK;
}

void store_read_end(store_t *self)
{
    if (t_read.store != self)
        return;
    mdb_txn_abort(t_read.rstate);
    mdb_txn_abort(t_read.rlog);
    t_read.store = NULL;
    t_read.rlog = t_read.rstate = NULL;
    pthread_rwlock_unlock(&self->grow_lock);
}

void store_stats_publish(store_t *self)
{
    pthread_mutex_lock(&self->pub_lock);
    self->pub_stats = self->stats;
    self->pub_last_seq = self->last_seq;
    pthread_mutex_unlock(&self->pub_lock);
}

void store_stats_read(store_t *self, store_stats_t *out, uint64_t *last_seq)
{
    pthread_mutex_lock(&self->pub_lock);
    *out = self->pub_stats;
    *last_seq = self->pub_last_seq;
    pthread_mutex_unlock(&self->pub_lock);
}

int store_read_lead(store_t *self, const char *lead_id, const void **buf,
                    size_t *len)
{
    MDB_val k = s_str_val(lead_id), v;
    int rc = mdb_get(S_RSTATE(self), self->leads, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0) {
        log_err("[store] read lead: %s", mdb_strerror(rc));
        return STORE_ERR;
    }
    return s_lead_split(NULL, lead_id, &v, buf, len, NULL);
}

int64_t store_read_counter(store_t *self, const char *key)
{
    MDB_val k = s_str_val(key), v;
    if (mdb_get(S_RSTATE(self), self->aggregates, &k, &v) != 0 || v.mv_size != 8)
        return 0;
    return (int64_t)s_be64_get(v.mv_data);
}

/* Call fn(key as a C string, its u64 value, arg) for every record of dbi
 * in the read snapshot whose key begins with prefix and whose value is a
 * u64; what stands for counters and marks alike. Returns how many, or
 * STORE_ERR (logged with `what`). */
typedef void s_u64_fn(const char *key, size_t key_len, uint64_t value, void *arg);

static long s_scan_prefix(store_t *self, MDB_dbi dbi, const char *prefix,
                          const char *what, s_u64_fn *fn, void *arg)
{
    MDB_cursor *cur = NULL;
    size_t plen = strlen(prefix);
    char key[512];
    long n = 0;
    int rc;

    if ((rc = mdb_cursor_open(S_RSTATE(self), dbi, &cur)) != 0)
        goto fail;
    MDB_val k = s_str_val(prefix), v;
    for (rc = mdb_cursor_get(cur, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
         rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if (k.mv_size >= sizeof key || v.mv_size != 8)
            continue;
        memcpy(key, k.mv_data, k.mv_size);
        key[k.mv_size] = '\0';
        fn(key, k.mv_size, s_be64_get(v.mv_data), arg);
        n++;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto fail;
    mdb_cursor_close(cur);
    return n;

fail:
    if (cur)
        mdb_cursor_close(cur);
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
    return s_scan_prefix(self, self->marks, prefix, "marks", s_on_mark, &m);
}

int store_read_next_deadline(store_t *self, int64_t *due_ms)
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
    return s_scan_prefix(self, self->aggregates, prefix, "counters", s_on_counter, &c);
}

long store_read_timeline(store_t *self, const char *lead_id, size_t limit,
                         store_event_fn *fn, void *arg)
{
    MDB_val k = s_str_val(lead_id), v;
    uint64_t *seqs = NULL;
    const void **raws = NULL;
    size_t *lens = NULL, n = 0;
    uint64_t seq = 0;
    int rc;

    if (limit == 0)
        limit = 1;
    rc = mdb_get(S_RSTATE(self), self->leads, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0 || v.mv_size < S_LEAD_FIXED)
        goto fail;
    seq = s_be64_get(v.mv_data);
    seqs = xcalloc(limit, sizeof *seqs);
    raws = xcalloc(limit, sizeof *raws);
    lens = xcalloc(limit, sizeof *lens);
    /* Newest first along the chain, then handed out oldest first. */
    while (seq != 0 && n < limit) {
        unsigned char sk[8];
        s_be64_put(sk, seq);
        MDB_val ek = {.mv_size = 8, .mv_data = sk}, ev;
        if ((rc = mdb_get(S_RLOG(self), self->events, &ek, &ev)) != 0 ||
            ev.mv_size < S_LOG_HDR)
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

uint64_t store_disk_bytes(store_t *self)
{
    uint64_t total = 0;
    const char *subs[] = {"log/data.mdb", "state/data.mdb"};
    for (size_t i = 0; i < 2; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", self->dir, subs[i]);
        if (stat(path, &st) == 0)
            total += (uint64_t)st.st_blocks * 512;
    }
    return total;
}

/* -- comparing two states ---------------------------------------------- */

/* Keys beginning with '~' in "aggregates" are rolling-window counters,
 * expired when checks run: they depend on when the checks ran, not only on
 * the log, so a rebuild does not compare them. */
static bool s_volatile_key(const MDB_val *k, bool aggregates)
{
    return aggregates && k->mv_size > 0 && ((const char *)k->mv_data)[0] == '~';
}

static int s_compare_db(MDB_txn *a_txn, MDB_dbi a_dbi, MDB_txn *b_txn,
                        MDB_dbi b_dbi, const char *name, store_diff_t *d,
                        store_diff_t *ids, char *first, size_t firstlen)
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
        if (s_volatile_key(k, aggregates)) {
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

int store_compare_state(store_t *self, const char *other_name,
                        store_compare_t *out)
{
    MDB_env *env = NULL;
    MDB_txn *a = NULL, *b = NULL;
    MDB_dbi leads, agg, meta, dl, mk;
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
        (rc = mdb_dbi_open(b, "meta", 0, &meta)) != 0 ||
        (rc = mdb_txn_begin(self->state_env, NULL, MDB_RDONLY, &a)) != 0)
        goto out;
    char *first = out->first_difference;
    size_t fl = sizeof out->first_difference;
    if ((rc = s_compare_db(a, self->leads, b, leads, "leads", &out->leads, &out->event_ids,
                           first, fl)) != 0 ||
        (rc = s_compare_db(a, self->aggregates, b, agg, "aggregates", &out->counters, NULL,
                           first, fl)) != 0 ||
        (rc = s_compare_db(a, self->deadlines, b, dl, "deadlines", &out->deadlines, NULL,
                           first, fl)) != 0 ||
        (rc = s_compare_db(a, self->marks, b, mk, "marks", &out->marks, NULL, first, fl)) != 0)
        goto out;
    uint64_t other_applied = 0;
    if ((rc = s_meta_u64(b, meta, "applied_seq", &other_applied)) != 0)
        goto out;
    out->applied_seq_differs = other_applied != self->applied_seq;

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
