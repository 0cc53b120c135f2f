/* store_env.c: opening and closing the store (see store.h; the states
 * beside it, shadows and partitions, are store_shadow.c's): the lock
 * file, the two LMDB environments and their named databases, the meta
 * records (schema, applied sequence, watermark, counters, definition), and
 * the sticky error of a group. */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fnv.h"
#include "log.h"
#include "xalloc.h"

/* -- errors ---------------------------------------------------------------- */

/* Record the first error of a group; MDB_MAP_FULL becomes STORE_EFULL and
 * remembers which environment needs a larger map. */
void store_fail(store_t *self, int rc, bool in_log, const char *what)
{
    /* Split, the loop's log group has a sticky error of its own. */
    bool log_side = store_split_on(self) && !store_state_side(self);
    int *ret = log_side ? &self->log_ret : &self->ret;
    char *last_error = log_side ? self->log_last_error : self->last_error;
    size_t cap = sizeof self->last_error;
    if (*ret != STORE_OK)
        return;
    if (rc == MDB_MAP_FULL) {
        *ret = STORE_EFULL;
        if (in_log)
            self->log_full = true;
        else
            self->state_full = true;
        log_info("[store] %s map full during %s", in_log ? "log" : "state", what);
        return;
    }
    if (rc == MDB_TXN_FULL) {
        *ret = STORE_ETXNFULL;
        log_info("[store] transaction full during %s", what);
        return;
    }
    *ret = STORE_ERR;
    /* LMDB reports a short write (the disk filled up in the middle of it)
     * as EIO: say what the filesystem says. */
    struct statvfs fs;
    if ((rc == EIO || rc == ENOSPC || rc == EDQUOT) &&
        statvfs(self->dir, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < (8u << 20))
        snprintf(last_error, cap,
                 "%s: %s: no space left on the disk (%llu bytes free in %s)", what,
                 mdb_strerror(rc), (unsigned long long)fs.f_bavail * fs.f_frsize,
                 self->dir);
    else
        snprintf(last_error, cap, "%s: %s", what, mdb_strerror(rc));
    log_err("[store] %s", last_error);
}

const char *store_last_error(const store_t *self)
{
    return store_split_on(self) && !store_state_side(self) ? self->log_last_error
                                                  : self->last_error;
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

int store_env_open(MDB_env **env, const char *path, size_t map_size,
                   unsigned flags, char *err, size_t errlen)
{
    int rc;

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
size_t store_env_map_size(MDB_env *env)
{
    MDB_envinfo info;
    if (mdb_env_info(env, &info) != 0)
        return 0;
    return info.me_mapsize;
}

/* -- the state written through its map -------------------------------------
 *
 * LMDB writes the state's pages straight into its shared map
 * (MDB_WRITEMAP) instead of copying every dirty page of a group through
 * write(2): that copy and the filesystem's buffered-write path for it were
 * about a quarter of a partition thread's time (perf, 1M leads), and
 * ingest went from 42k to 52k events/s with two partitions on two cores.
 * The state is committed without fsync either way (it is rebuilt from the
 * log and checkpoints after a power loss), and a killed process loses no
 * written page of the map: the kernel keeps them.
 *
 * The cost: LMDB makes the file as long as the map, a sparse file, and a
 * page written into a hole gets its disk block only when it is first
 * touched, so on a full disk that write kills the process (SIGBUS) where
 * write(2) would have failed the commit. Hence the blocks are allocated
 * (fallocate) ahead of the pages in use: before each state group, the
 * file must be allocated the room (s_room_ahead) past its last page in
 * use, else it is allocated twice that far. A group that cannot have its
 * room fails before it writes anything, with the filesystem's reason, and
 * is retried like a failed commit. The room is an eighth of the state and
 * four times the most a group has grown it, or on a disk with less than
 * that free, twice that most; a group that still outgrows it on a disk
 * full at that moment stops funneld with SIGBUS, said on stderr by the
 * handler in main.c (nothing acknowledged is lost: the log holds it, and
 * the state is recovered from it at the next start). `funneld --rebuild`
 * writes its scratch state with write(2) (store_writemap): it may run on
 * a disk with little room left, and its replay groups are large. So does
 * a filesystem without fallocate (store_state_env_open). */
#define S_ROOM_MIN (4ull << 20)
#define S_ROOM_MAX (512ull << 20)
#define S_ROOM_LEAST (1ull << 20)

/* How far past the pages in use the file is kept allocated: an eighth of
 * the state (at most S_ROOM_MAX, at least S_ROOM_MIN), and at least four
 * times the most one group has grown the state in this process (a burst
 * of new leads in a small state). */
static uint64_t s_room_ahead(const store_t *self, uint64_t used)
{
    uint64_t ahead = used / 8;
    if (ahead > S_ROOM_MAX)
        ahead = S_ROOM_MAX;
    if (ahead < S_ROOM_MIN)
        ahead = S_ROOM_MIN;
    if (ahead < 4 * self->state_grew_max)
        ahead = 4 * self->state_grew_max;
    return ahead;
}

/* Allocate the state file's blocks up to what the pages in use need
 * ahead. Returns 0, or an errno (EOPNOTSUPP: the filesystem cannot). */
static int s_room(store_t *self)
{
    MDB_envinfo info;
    MDB_stat st;
    int fd;
    if (mdb_env_info(self->state_env, &info) != 0 || mdb_env_stat(self->state_env, &st) != 0 ||
        mdb_env_get_fd(self->state_env, &fd) != 0)
        return EIO;
    uint64_t map = info.me_mapsize;
    uint64_t used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
    if (self->state_used && used > self->state_used &&
        used - self->state_used > self->state_grew_max)
        self->state_grew_max = used - self->state_used;
    self->state_used = used;
    uint64_t ahead = s_room_ahead(self, used);
    if (used + ahead <= self->state_room)
        return 0;
    /* Twice the room at once, so that most groups find it there; on a
     * disk too full for that, room for twice the largest group seen (at
     * least S_ROOM_LEAST) is enough to go on. Mode 0: blocks that exist
     * already stay as they are. */
    uint64_t least = 2 * self->state_grew_max > S_ROOM_LEAST ? 2 * self->state_grew_max
                                                             : S_ROOM_LEAST;
    uint64_t want[2] = {used + 2 * ahead, used + least};
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        uint64_t to = want[i] < map ? want[i] : map;
        if (to <= self->state_room)
            return 0;
        if (fallocate(fd, 0, (off_t)self->state_room, (off_t)(to - self->state_room)) == 0) {
            self->state_room = to;
            return 0;
        }
        rc = errno;
        if (rc != ENOSPC && rc != EDQUOT)
            break;
    }
    return rc;
}

/* At a clean close: the room allocated past the pages in use goes back
 * to the disk (the file is cut there; LMDB lengthens it to the map again
 * when it opens it), so that a stopped funneld holds only its pages, as
 * `funneld --rebuild` beside it may need the space. */
static void s_room_give_back(store_t *self)
{
    MDB_envinfo info;
    MDB_stat st;
    int fd;
    if (self->state_room == UINT64_MAX || self->state_txn || self->look_txn ||
        mdb_env_info(self->state_env, &info) != 0 || mdb_env_stat(self->state_env, &st) != 0 ||
        mdb_env_get_fd(self->state_env, &fd) != 0)
        return;
    if (ftruncate(fd, (off_t)((uint64_t)(info.me_last_pgno + 1) * st.ms_psize)) == -1)
        log_warn("[store] cannot give back the room ahead of the state's pages: %s",
                 strerror(errno));
}

int store_state_room(store_t *self)
{
    if (self->state_room == UINT64_MAX)
        return STORE_OK;
    int rc = s_room(self);
    if (rc == 0)
        return STORE_OK;
    self->ret = STORE_OK;
    store_fail(self, rc, false, "allocating room for the state's pages");
    return STORE_ERR;
}

/* Under ThreadSanitizer the state is written with write(2): LMDB's
 * readers learn of a commit through its meta pages and reader table,
 * which TSan cannot see (LMDB is not instrumented), so every page a
 * writer fills in the shared map, through memcpy or funneld's own stores
 * into a reserved record, would look like a race with the readers of the
 * pages before it. */
#ifdef __SANITIZE_THREAD__
static bool s_writemap = false;
#else
static bool s_writemap = true;
#endif

void store_writemap(bool on)
{
#ifdef __SANITIZE_THREAD__
    on = false;
#endif
    s_writemap = on;
}

int store_state_env_open(store_t *self, const char *path, size_t map_size, char *err,
                         size_t errlen)
{
    unsigned flags = MDB_NOSYNC | MDB_NOMETASYNC;
    if (!s_writemap) {
        self->state_room = UINT64_MAX;
        return store_env_open(&self->state_env, path, map_size, flags, err, errlen);
    }
    if (store_env_open(&self->state_env, path, map_size, flags | MDB_WRITEMAP, err,
                       errlen) == -1)
        return -1;
    self->state_room = self->state_used = 0;
    int rc = s_room(self);
    if (rc == 0)
        return 0;
    if (rc != EOPNOTSUPP) {
        /* A full disk: the state's groups fail (and are retried) until
         * there is room; the store still opens, to answer queries. */
        log_warn("[store] %s: cannot allocate room for the state's pages: %s", path,
                 strerror(rc));
        return 0;
    }
    mdb_env_close(self->state_env);
    self->state_env = NULL;
    log_info("[store] %s: the filesystem cannot allocate ahead (fallocate): the state is "
             "written with write(2)", path);
    self->state_room = UINT64_MAX;
    return store_env_open(&self->state_env, path, map_size, flags, err, errlen);
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

int store_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out)
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

int store_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key,
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

int store_stats_put(MDB_txn *txn, MDB_dbi dbi, const store_stats_t *st)
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

int store_log_stats_put(store_t *self, const store_stats_t *st)
{
    if (!self->log_counts)
        return 0;
    int rc = store_stats_put(self->log_txn, self->log_meta, st);
    return rc ? rc : store_meta_put_u64(self->log_txn, self->log_meta, "stats_seq",
                                        self->last_seq);
}

/* The loop's counters as the log keeps them, into the state's just read
 * (or recovered, or rebuilt): each is the higher of the two, so that a
 * state behind the log (a crash while a partition lagged; a checkpoint
 * restored; a rebuild) counts every event the loop received, rejected or
 * found a duplicate before the log's last commit, and a replay does not
 * count again as received what the log's say they counted. A log written
 * before funneld kept them has none: the state's count what it applied,
 * and the replay counts the rest. Returns an LMDB code. Owner thread,
 * while opening. */
static int s_log_stats_merge(store_t *self)
{
    MDB_txn *txn;
    store_stats_t lg;
    uint64_t seq = 0;
    int rc = mdb_txn_begin(self->log_env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = s_str_val("stats_seq"), v;
    int found = mdb_get(txn, self->log_meta, &k, &v);
    if (found == MDB_NOTFOUND) {
        /* Counted with the state, as far as it applied. */
        self->log_counted = self->applied_seq;
        rc = 0;
    } else if ((rc = found) == 0 && (rc = s_stats_get(txn, self->log_meta, &lg)) == 0 &&
               (rc = store_meta_u64(txn, self->log_meta, "stats_seq", &seq)) == 0) {
        store_stats_max_logged(&self->stats, &lg);
        self->log_counted = seq;
    }
    mdb_txn_abort(txn);
    return rc;
}

/* Open the log's database and read its first and last sequence into
 * self. Fails with a message in err; no transaction is left open. Owner
 * thread, while opening. */
static int s_open_log(store_t *self, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc;

    if ((rc = mdb_txn_begin(self->log_env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "events", MDB_CREATE, &self->events)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &self->log_meta)) != 0)
        goto fail;
    if ((rc = mdb_cursor_open(txn, self->events, &cur)) != 0)
        goto fail;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8)
        self->last_seq = s_be64_get(k.mv_data);
    else if (rc != MDB_NOTFOUND)
        goto fail;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && k.mv_size == 8)
        self->first_seq = s_be64_get(k.mv_data);
    else if (rc != MDB_NOTFOUND)
        goto fail;
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        goto fail;
    }
    return 0;

fail:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    snprintf(err, errlen, "cannot open the event log in %s: %s", self->dir,
             mdb_strerror(rc));
    return -1;
}

/* Open the named databases of the state and read where it stands
 * (schema, applied sequence, watermark, counters) into self; a new state
 * gets the current schema. Fails with a message in err when LMDB cannot,
 * the schema is another one, or the state is ahead of the log; no
 * transaction is left open. Owner thread, while opening. */
int store_open_state_dbs(store_t *self, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    int rc;

    uint64_t schema = 0;
    if ((rc = mdb_txn_begin(self->state_env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "leads", MDB_CREATE, &self->leads)) != 0 ||
        (rc = mdb_dbi_open(txn, "aggregates", MDB_CREATE, &self->aggregates)) != 0 ||
        (rc = mdb_dbi_open(txn, "deadlines", MDB_CREATE, &self->deadlines)) != 0 ||
        (rc = mdb_dbi_open(txn, "marks", MDB_CREATE, &self->marks)) != 0 ||
        (rc = mdb_dbi_open(txn, "alerts", MDB_CREATE, &self->alerts)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &self->meta)) != 0 ||
        (rc = store_meta_u64(txn, self->meta, "schema", &schema)) != 0 ||
        (rc = store_meta_u64(txn, self->meta, "applied_seq", &self->applied_seq)) != 0 ||
        (rc = store_meta_u64(txn, self->meta, "watermark_ms",
                             (uint64_t *)&self->watermark_ms)) != 0 ||
        (rc = store_meta_u64(txn, self->meta, "alert_seq", &self->alert_seq)) != 0 ||
        (rc = store_meta_u64(txn, self->meta, "alerts_floor", &self->alerts_floor)) != 0 ||
        (rc = s_stats_get(txn, self->meta, &self->stats)) != 0)
        goto fail;
    if (schema == 0) {
        if ((rc = store_meta_put_u64(txn, self->meta, "schema", STORE_SCHEMA)) != 0)
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
    if (self->first_seq > self->applied_seq + 1) {
        snprintf(err, errlen,
                 "the event log begins at %llu but the state stands at %llu: the "
                 "events in between are gone",
                 (unsigned long long)self->first_seq,
                 (unsigned long long)self->applied_seq);
        return -1;
    }
    return 0;

fail:
    if (txn)
        mdb_txn_abort(txn);
    snprintf(err, errlen, "cannot open databases in %s: %s", self->dir,
             mdb_strerror(rc));
    return -1;
}

void store_state_path(const store_t *self, char *out, size_t cap)
{
    if (self->state_name[0] == '/')
        snprintf(out, cap, "%s", self->state_name);
    else
        snprintf(out, cap, "%s/%s", self->dir, self->state_name);
}

/* rm -rf of one of the store's own subdirectories (flat: LMDB's files). */
int store_remove_env_dir(const char *path)
{
    const char *files[] = {"data.mdb", "lock.mdb", "data.mdb.restore"};
    for (size_t i = 0; i < 3; i++) {
        char f[4200];
        snprintf(f, sizeof f, "%s/%s", path, files[i]);
        if (unlink(f) == -1 && errno != ENOENT)
            return -1;
    }
    /* A directory of the operator's (--rebuild-dir) may hold more. */
    if (rmdir(path) == -1 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
        return -1;
    return 0;
}

store_t *store_open(const char *dir, size_t map_size, char *err, size_t errlen)
{
    return store_open_state(dir, "state", false, map_size, err, errlen);
}

const char *store_ckpt_root(const store_t *self)
{
    return self->ckpt_root ? self->ckpt_root : self->dir;
}

const char *store_dir(const store_t *self)
{
    return self->dir;
}

/* Bring the state back from what can be trusted, after why (the reason
 * the state itself cannot be): the newest good checkpoint that the log
 * covers, else nothing (a rebuild from the whole log), which is possible
 * only while the log still begins at its first event. The state
 * environment must be closed. Returns 0 (the state directory holds the
 * checkpoint's copy, or nothing) or -1 with err filled. Owner thread,
 * while opening. */
static void *s_unlink_thread(void *arg)
{
    unlink(arg);
    free(arg);
    return NULL;
}

/* Move the untrusted state's data file out of the way, to be deleted by a
 * thread of its own: freeing the blocks of a file of gigabytes takes the
 * file system seconds, which the recovery does not wait for. A leftover
 * of a crash meanwhile is replaced by the next one. Best effort: the
 * caller removes whatever is left. */
static void s_discard_state(const store_t *self, const char *path)
{
    char from[4200], to[4200];
    snprintf(from, sizeof from, "%s/data.mdb", path);
    snprintf(to, sizeof to, "%s/state.torn.mdb", self->dir);
    if (rename(from, to) == -1)
        return;
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    char *arg = xstrdup(to);
    if (pthread_create(&t, &a, s_unlink_thread, arg) != 0) {
        unlink(arg);
        free(arg);
    }
    pthread_attr_destroy(&a);
}

int store_recover(store_t *self, const char *why, char *err, size_t errlen)
{
    char path[4096], name[64];
    uint64_t seq = 0;

    store_state_path(self, path, sizeof path);
    s_discard_state(self, path);
    if (store_remove_env_dir(path) == -1) {
        snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
        return -1;
    }
    self->applied_seq = 0;
    self->alert_seq = self->alerts_floor = 0;
    memset(&self->stats, 0, sizeof self->stats);
    bool consumed = false;
    int got = store_checkpoint_restore(self, self->first_seq, self->last_seq, false, true,
                                       &seq, name, sizeof name, &consumed, err, errlen);
    if (got < 0)
        return -1;
    if (got == 1) {
        log_warn("[store] %s; restored checkpoint %s (sequence %llu): replaying "
                 "the %llu logged events after it", why, name, (unsigned long long)seq,
                 (unsigned long long)(self->last_seq - seq));
        snprintf(self->recovery, sizeof self->recovery,
                 "restored checkpoint %s (seq %llu), replayed the log after it",
                 name, (unsigned long long)seq);
        if (consumed)
            snprintf(self->consumed, sizeof self->consumed, "%s", name);
        return 0;
    }
    if (self->first_seq > 1) {
        snprintf(err, errlen,
                 "%s, and no intact checkpoint is covered by the event log (which "
                 "begins at %llu after log_retention): the state cannot be "
                 "recovered; restore a backup of %s",
                 why, (unsigned long long)self->first_seq, self->dir);
        return -1;
    }
    log_warn("[store] %s; no usable checkpoint: rebuilding the state from the "
             "whole event log (%llu events)", why, (unsigned long long)self->last_seq);
    snprintf(self->recovery, sizeof self->recovery,
             "rebuilt from the whole log (no usable checkpoint)");
    return 0;
}

/* Open the store (see store.h): lock dir, open the log, remove the state
 * when fresh (and, when retention dropped the log's first events, start
 * it from the oldest checkpoint instead), recover it (s_recover) when its
 * marker says it may be torn or LMDB cannot open it, then mark it open in
 * this boot. Returns the store, owned by the caller (store_destroy()), or
 * NULL with err filled; what was opened is closed again. The calling
 * thread becomes the owner (groups and writes). */
store_t *store_open_state(const char *dir, const char *state_name, bool fresh,
                          size_t map_size, char *err, size_t errlen)
{
    store_t *self = xcalloc(1, sizeof *self);
    char path[4096], why[5400] = "";
    self->lock_fd = -1;
    self->ckpt_wake = -1;
    self->dir = xstrdup(dir);
    self->state_name = xstrdup(state_name);
    self->owner = pthread_self();
    self->n_parts = 1;
    self->parts[0] = self;
    self->counted = UINT64_MAX;
    self->log_counts = true;
    snprintf(self->recovery, sizeof self->recovery, "clean");
    /* Writers first: a stream of queries must not keep a map from growing. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&self->grow_lock, &attr);
    pthread_rwlock_init(&self->state_grow_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&self->pub_lock, NULL);
    pthread_cond_init(&self->pub_cond, NULL);
    pthread_mutex_init(&self->hold_lock, NULL);
    pthread_cond_init(&self->hold_cond, NULL);
    self->ckpt_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->ckpt_wake == -1) {
        snprintf(err, errlen, "cannot create an eventfd: %s", strerror(errno));
        goto fail;
    }

    if (s_mkdir_p(dir) == -1) {
        snprintf(err, errlen, "cannot create state directory %s: %s", dir,
                 strerror(errno));
        goto fail;
    }
    if (s_lock(self, err, errlen) == -1)
        goto fail;
    snprintf(path, sizeof path, "%s/log", dir);
    if (store_env_open(&self->log_env, path, map_size, 0, err, errlen) == -1 ||
        s_open_log(self, err, errlen) == -1)
        goto fail;
    store_state_path(self, path, sizeof path);
    if (fresh) {
        if (store_remove_env_dir(path) == -1) {
            snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
            goto fail;
        }
        snprintf(self->recovery, sizeof self->recovery, "rebuilt from the whole log");
        if (self->first_seq > 1) {
            char name[64];
            uint64_t seq;
            bool consumed;
            int got = store_checkpoint_restore(self, self->first_seq, self->last_seq,
                                               true, false, &seq, name, sizeof name,
                                               &consumed, err, errlen);
            if (got < 0)
                goto fail;
            if (got == 0) {
                snprintf(err, errlen,
                         "log_retention dropped the events before %llu and no "
                         "intact checkpoint is covered by the log: the state cannot "
                         "be rebuilt from it",
                         (unsigned long long)self->first_seq);
                goto fail;
            }
            snprintf(self->recovery, sizeof self->recovery,
                     "started from the oldest checkpoint %s (seq %llu): log_retention "
                     "dropped the events before %llu",
                     name, (unsigned long long)seq, (unsigned long long)self->first_seq);
        }
    } else if (store_marker_torn(self)) {
        /* A state that may be torn, or that LMDB cannot open, is recovered
         * from a checkpoint and the log: it holds nothing they do not. */
        snprintf(why, sizeof why, "the machine went down while funneld had %s open "
                 "(or its marker is missing): its pages may be torn", path);
        if (store_recover(self, why, err, errlen) == -1)
            goto fail;
    }
    /* The state is recoverable from the log: commit it without fsync. */
    for (int attempt = 0;; attempt++) {
        if (store_state_env_open(self, path, map_size, err, errlen) == 0 &&
            store_open_state_dbs(self, err, errlen) == 0)
            break;
        if (attempt > 0 || fresh)
            goto fail;
        if (self->state_env) {
            mdb_env_close(self->state_env);
            self->state_env = NULL;
        }
        char reason[5400];
        snprintf(reason, sizeof reason, "%s%s%s", why[0] ? why : "", why[0] ? "; then " : "",
                 err);
        snprintf(why, sizeof why, "%s", reason);
        if (store_recover(self, why, err, errlen) == -1)
            goto fail;
    }
    int rc = s_log_stats_merge(self);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read the counters kept with the event log in %s: %s",
                 dir, mdb_strerror(rc));
        goto fail;
    }
    rc = store_marker_write(self, true);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write the marker of %s: %s", path, strerror(rc));
        goto fail;
    }
    self->marked_open = true;
    self->log_map = store_env_map_size(self->log_env);
    self->state_map = store_env_map_size(self->state_env);
    log_info("[store] opened %s: events %llu..%llu logged, %llu applied, map %zu+%zu MiB",
             dir, (unsigned long long)self->first_seq, (unsigned long long)self->last_seq,
             (unsigned long long)self->applied_seq, self->log_map >> 20,
             self->state_map >> 20);
    store_stats_publish(self);
    return self;

fail:
    store_destroy(&self);
    return NULL;
}

/* Close the store (see store.h): end this thread's snapshot and the
 * group, flush the state and only then mark it clean, close both
 * environments and the lock, free everything. Errors are logged (the
 * state is left marked open, so the next start replays or rebuilds).
 * Owner thread, with no other thread reading. */
void store_destroy(store_t **self_p)
{
    store_t *self = *self_p;
    if (self == NULL)
        return;
    /* A primary's partitions still open go first, the last first. */
    while (self->primary == NULL && self->n_parts > 1) {
        store_t *part = self->parts[self->n_parts - 1];
        store_destroy(&part);
    }
    store_read_end(self);
    store_group_abort(self);
    if (self->state_env) {
        /* Flushed first, then marked clean: a clean mark never precedes
         * the pages it vouches for. */
        int rc = mdb_env_sync(self->state_env, 1);
        if (rc != 0)
            log_err("[store] flushing the state: %s", mdb_strerror(rc));
        s_room_give_back(self);
        mdb_env_close(self->state_env);
        if (rc == 0 && self->marked_open && (rc = store_marker_write(self, false)) != 0)
            log_err("[store] marking the state clean: %s", strerror(rc));
    }
    if (self->log_env && self->log_of == NULL)
        mdb_env_close(self->log_env);
    if (self->primary) {
        /* Out of the primary's list (parts are destroyed before it). */
        store_t *p = self->primary;
        for (unsigned i = 1; i < p->n_parts; i++)
            if (p->parts[i] == self) {
                memmove(p->parts + i, p->parts + i + 1,
                        (p->n_parts - i - 1) * sizeof *p->parts);
                p->n_parts--;
                break;
            }
    }
    if (self->lock_fd != -1)
        close(self->lock_fd);
    if (self->ckpt_wake != -1)
        close(self->ckpt_wake);
    for (size_t i = 0; i < self->n_ctr; i++)
        free(self->ctr[i].key);
    free(self->ctr);
    htab_free(&self->ctr_index);
    free(self->ablk);
    pthread_rwlock_destroy(&self->grow_lock);
    pthread_rwlock_destroy(&self->state_grow_lock);
    pthread_mutex_destroy(&self->pub_lock);
    pthread_cond_destroy(&self->pub_cond);
    pthread_mutex_destroy(&self->hold_lock);
    pthread_cond_destroy(&self->hold_cond);
    store_split_free(self);
    free(self->dir);
    free(self->ckpt_root);
    free(self->state_name);
    free(self);
    *self_p = NULL;
}

uint64_t store_last_seq(const store_t *self) { return self->last_seq; }
uint64_t store_first_seq(const store_t *self) { return self->first_seq; }
const char *store_recovery(const store_t *self) { return self->recovery; }

const char *store_recovery_consumed(const store_t *self) { return self->consumed; }
uint64_t store_applied_seq(const store_t *self) { return self->applied_seq; }
uint64_t store_log_counted(const store_t *self) { return self->log_counted; }
void store_log_counted_to(store_t *self, uint64_t seq)
{
    if (seq > self->log_counted)
        self->log_counted = seq;
}
void store_log_read_only(store_t *self) { self->log_counts = false; }
store_stats_t *store_stats(store_t *self)
{
    return store_state_side(self) ? &self->stats : &self->lstats;
}

int64_t store_watermark(const store_t *self)
{
    /* Split, the loop reads what the partition thread applies. */
    return __atomic_load_n(&self->watermark_ms, __ATOMIC_RELAXED);
}

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
        __atomic_store_n(&self->watermark_ms, ms, __ATOMIC_RELAXED);
}
