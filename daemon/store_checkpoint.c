/* store_checkpoint.c: writing durable checkpoints of the state (see
 * store.h and store_ckpt_int.h for the file; store_restore.c reads them
 * back).
 *
 * Writing one: LMDB copies the state from a read transaction of its own
 * (mdb_env_copyfd2 begins it inside the call, in the calling thread), so
 * readers never wait for it. The meta record "applied_seq" is copied in
 * the same snapshot, so the copy says itself which log sequence it
 * covers: it is read back from the copy (which proves the copy opens),
 * never from the live state.
 *
 * While a snapshot is held, LMDB reuses no page freed after it, so every
 * group commit meanwhile takes fresh pages at the end of the file; once
 * the copy ends they are free pages that LMDB 0.9 never gives back, and
 * every later commit pays for them (each allocation of several pages in
 * a row reads the whole free list: a 1M-lead state left with 7 GB of
 * free pages by one copy at full load ingested at 0.6 of its compacted
 * copy's rate, measured). So a split store (its writer a partition
 * thread) is copied with its writer held (s_copy_held): the partition
 * waits at the beginning of its next group (store_hold_writer, at most
 * S_HOLD_MAX_MS) while LMDB's plain copy writes the map's pages straight
 * to the file with O_DIRECT, which takes the CPU next to nothing and the
 * page cache nothing (2.3 GB in about 1.4 s on the development machine
 * at full load); the loop goes on logging and acknowledging meanwhile
 * (intake lets the lag grow while a writer is held: store_parts_held),
 * and queries wait for what was acknowledged, as always, so for the hold
 * at most. The checksum is computed from the map while the writer is
 * still held. A copy longer than the hold lets the writer go on and ends
 * from its snapshot as before, the rest read back for the checksum. An
 * unsplit store (partitions 0), a file system without O_DIRECT, or the
 * test hook below take the copy without the hold (s_copy_piped).
 *
 * Map growth: LMDB remaps an environment only with none of its
 * transactions open in the process, and the copy's transaction lives for
 * the whole copy (seconds for a large state, a minute or two at full load
 * on a loaded machine). So the copy holds state_grow_lock shared, as every
 * read snapshot does; the log has a lock of its own and grows meanwhile.
 * Growing the state's map ahead of need (3/4 full) never waits for the
 * lock (store_group_begin); before the copy the checkpoint thread asks the
 * loop thread to grow the log's map until it is at most a quarter full,
 * and the state's writer (the loop, or the partition thread) to grow the
 * state's until it is at most an eighth full (store_grow_ahead(),
 * store_state_ahead_ask()). While the snapshot is held no page freed
 * after it is reused, so a busy state takes fresh pages for every group
 * commit (80 MB/s at full load beside a 2 GiB state) and can still fill
 * its map during one copy: then the copy gives way. The grower sets ckpt_yield and
 * wakes the drain thread (ckpt_wake), which closes the pipe's read end:
 * LMDB's copy fails with EPIPE at its next buffer, ends its transaction,
 * and the grower, waiting for the lock, remaps; store_checkpoint returns
 * STORE_EAGAIN and the checkpoint thread takes the checkpoint again after
 * growing ahead (see checkpoint.c). Growth waits for a copy for about one
 * slice of it, never for the whole copy.
 *
 * Without the hold: mdb_env_copyfd2(MDB_CP_COMPACT) writes the copy
 * sequentially into a pipe; a drain thread
 * reads it, computes the checksum and writes it to the file in slices,
 * flushing each (s_drain), so that the copy never floods the disk or the
 * page cache that group commits need. It is not paced beyond that: every
 * second the snapshot is held costs the state fresh pages, and a copy
 * paused for the disk's sake held it five times as long (at full load a
 * paced copy went at 10 MB/s, the state's file grew at 80 MB/s meanwhile,
 * and it gave way to the map after 47 s). The checkpoint threads' low
 * priority (checkpoint.c) leaves the CPU to ingest.
 *
 * FUNNELD_CHECKPOINT_HOLD=1 in the environment (for tests) makes the
 * first copy of each store be taken without the hold and wait, its
 * snapshot held, before its drain reads anything, until it must give way
 * or funneld stops: a checkpoint slower than any real one,
 * deterministically. FUNNELD_CHECKPOINT_HOLD=writer:SEQ keeps the
 * writer of the first held copy held until the log is committed up to
 * SEQ (60 s at most).
 *
 * Threads: store_checkpoint() runs in the checkpoint thread; the helpers
 * of store_ckpt_int.h in any (they touch files only). */
#include "store_int.h"
#include "store_ckpt_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

#define S_SLICE (8u << 20)   /* written, then flushed, at a time */
#define S_PIPE (1 << 20)      /* the copy's pipe */
#define S_TMP "ckpt.tmp"
#define S_ALIGN 4096u         /* O_DIRECT's alignment */
#define S_HOLD_GROUP_MS 5000  /* the writer's group given to end */
#define S_HOLD_MAX_MS 3000    /* the writer held at most this long */
#define S_HOLD_TEST_MS 60000  /* FUNNELD_CHECKPOINT_HOLD=writer:SEQ: at most */
#define S_HOLD_TEST_POLL_MS 10
#define S_STOP_POLL_MS 50     /* a held copy looks at cancel and yield */
#define S_UNHELD 1            /* s_copy_held: not taken that way */

/* -- shared with store_restore.c (store_ckpt_int.h) ------------------- */

void ckpt_dir(const char *state_dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", state_dir, STORE_CKPT_DIR);
}

/* A partition's checkpoint root (beside the data directory's) is made
 * when its first checkpoint is written. 0 or -1. */
static int s_mkdir_root(const char *root)
{
    return mkdir(root, 0750) == -1 && errno != EEXIST ? -1 : 0;
}

int ckpt_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int ckpt_open(const char *path, MDB_env **env, MDB_txn **txn)
{
    int rc;
    *env = NULL;
    *txn = NULL;
    if ((rc = mdb_env_create(env)) != 0)
        return rc;
    if ((rc = mdb_env_set_maxdbs(*env, STORE_MAXDBS)) != 0 ||
        (rc = mdb_env_open(*env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS,
                           0640)) != 0 ||
        (rc = mdb_txn_begin(*env, NULL, MDB_RDONLY, txn)) != 0)
        ckpt_close(env, txn);
    return rc;
}

void ckpt_close(MDB_env **env, MDB_txn **txn)
{
    if (*txn)
        mdb_txn_abort(*txn);
    if (*env)
        mdb_env_close(*env);
    *txn = NULL;
    *env = NULL;
}

int ckpt_read_meta(const char *path, uint64_t *schema, uint64_t *applied)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    int rc = ckpt_open(path, &env, &txn);
    if (rc != 0)
        return rc;
    if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) == 0 &&
        (rc = store_meta_u64(txn, meta, "schema", schema)) == 0)
        rc = store_meta_u64(txn, meta, "applied_seq", applied);
    ckpt_close(&env, &txn);
    return rc;
}

static void s_trailer_put(unsigned char *t, uint64_t seq, uint64_t len, uint64_t sum)
{
    memset(t, 0, CKPT_TRAILER);
    memcpy(t, CKPT_MAGIC, 8);
    s_be64_put(t + 8, seq);
    s_be64_put(t + 16, len);
    s_be64_put(t + 24, sum);
}

void ckpt_sum_init(ckpt_sum_t *s, bool crc)
{
    s->crc = crc;
    s->c = crc32(0L, Z_NULL, 0);
    s->x = NULL;
    if (!crc) {
        s->x = XXH3_createState();
        if (s->x == NULL) {
            log_err("[store] out of memory for a checksum state");
            abort();
        }
        XXH3_64bits_reset(s->x);
    }
}

void ckpt_sum_add(ckpt_sum_t *s, const unsigned char *p, size_t n)
{
    if (s->crc)
        s->c = crc32(s->c, p, (uInt)n);
    else
        XXH3_64bits_update(s->x, p, n);
}

uint64_t ckpt_sum_end(ckpt_sum_t *s)
{
    if (s->crc)
        return (uint32_t)s->c;
    uint64_t v = XXH3_64bits_digest(s->x);
    XXH3_freeState(s->x);
    s->x = NULL;
    return v;
}

/* What the drain thread of one checkpoint works on: the copy comes out of
 * LMDB into a pipe, and the drain writes it to the checkpoint file in
 * paced slices, computing the checksum on the way (see store_checkpoint). */
typedef struct {
    int in;                /* the pipe's read end */
    int out;               /* the checkpoint file */
    uint64_t len;          /* bytes read from the pipe (= the file's data) */
    uint64_t sum;          /* XXH3-64 of them */
    int err;               /* errno of the first failed write or read, 0 */
    const volatile int *cancel; /* set: funneld stops, the copy is dropped */
    const volatile int *yield;  /* set: the state's map must grow */
    int wake;              /* eventfd: one of the two above was set */
    bool hold;             /* FUNNELD_CHECKPOINT_HOLD: wait before reading */
    bool stopped;          /* it closed the pipe for one of the two */
} s_drain_t;

static int64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether the copy must stop now (funneld stops, or the state's map must
 * grow). */
static bool s_must_stop(const s_drain_t *d)
{
    return __atomic_load_n(d->cancel, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(d->yield, __ATOMIC_ACQUIRE);
}

/* Wait until the pipe has data (with_pipe), the copy must stop, or
 * timeout_ms pass (-1: no limit). Returns true when the copy must stop. A
 * wake-up for a copy that need not stop (left over from an earlier one)
 * is consumed. */
static bool s_wait(s_drain_t *d, bool with_pipe, int timeout_ms)
{
    int64_t until = timeout_ms < 0 ? INT64_MAX : s_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        if (s_must_stop(d))
            return true;
        struct pollfd p[2] = {{.fd = d->wake, .events = POLLIN},
                              {.fd = d->in, .events = POLLIN}};
        int64_t left = until == INT64_MAX ? -1 : (until - s_now_ns()) / 1000000;
        if (until != INT64_MAX && left <= 0)
            return false;
        int n = poll(p, with_pipe ? 2 : 1, (int)(left > 60000 ? 60000 : left));
        if (n < 0 && errno != EINTR)
            return s_must_stop(d);
        if (n > 0 && (p[0].revents & POLLIN)) {
            uint64_t v;
            if (read(d->wake, &v, sizeof v) < 0 && errno != EAGAIN)
                return s_must_stop(d);
            continue;
        }
        if (n > 0 && with_pipe && p[1].revents)
            return false;
    }
}

/* Fill buf with up to cap bytes of the pipe; returns how many (0 at its
 * end), -1 with errno, or -2 when the copy must stop (s_wait). */
static ssize_t s_read_full(s_drain_t *d, unsigned char *buf, size_t cap)
{
    int fd = d->in;
    size_t got = 0;
    while (got < cap) {
        if (s_wait(d, true, -1))
            return -2;
        ssize_t n = read(fd, buf + got, cap - got);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int ckpt_write_full(int fd, const unsigned char *buf, size_t n, uint64_t off)
{
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(off + done));
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            if (w == 0)
                errno = EIO;
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

/* The drain thread: reads the pipe to its end, and writes what it reads
 * to the file in slices of S_SLICE. Each slice's writeback is started at
 * once (sync_file_range), and the previous slice's awaited, so that at
 * most two slices are dirty or in flight: the checkpoint never fills the
 * page cache with dirty pages that a group commit's fsync of the log
 * would queue behind. After a failed write it only reads on (LMDB's copy
 * must run to its end) and discards. Once funneld stops
 * (store_checkpoint_cancel) or the state's map must grow (ckpt_yield),
 * woken by ckpt_wake while it waits for the pipe, it closes the pipe's read end (stopped):
 * LMDB's copy then fails with EPIPE at its next write and ends its
 * snapshot. The drain owns the pipe's read end and closes it in any
 * case. */
static void *s_drain(void *arg)
{
    s_drain_t *d = arg;
    unsigned char *buf = xmalloc(S_SLICE);
    ckpt_sum_t sum;
    ckpt_sum_init(&sum, false);
    uint64_t prev_off = 0, prev_len = 0;

    if (d->hold)
        (void)s_wait(d, false, -1);
    for (;;) {
        ssize_t n = s_read_full(d, buf, S_SLICE);
        if (n == -2) {
            d->stopped = true;
            break;
        }
        if (n < 0) {
            if (d->err == 0)
                d->err = errno;
            break;
        }
        if (n == 0)
            break;
        ckpt_sum_add(&sum, buf, (size_t)n);
        if (d->err == 0) {
            if (ckpt_write_full(d->out, buf, (size_t)n, d->len) == -1) {
                d->err = errno;
            } else {
                (void)sync_file_range(d->out, (off_t)d->len, n, SYNC_FILE_RANGE_WRITE);
                if (prev_len)
                    (void)sync_file_range(d->out, (off_t)prev_off, (off_t)prev_len,
                                          SYNC_FILE_RANGE_WAIT_BEFORE |
                                              SYNC_FILE_RANGE_WRITE |
                                              SYNC_FILE_RANGE_WAIT_AFTER);
                prev_off = d->len;
                prev_len = (uint64_t)n;
            }
        }
        d->len += (uint64_t)n;
    }
    close(d->in);
    d->in = -1;
    d->sum = ckpt_sum_end(&sum);
    free(buf);
    return NULL;
}

void store_checkpoint_cancel(store_t *self)
{
    __atomic_store_n(&self->ckpt_cancel, 1, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (self->ckpt_wake != -1)
        (void)!write(self->ckpt_wake, &one, sizeof one);
    /* And every partition's (a primary's copies them one after another). */
    for (unsigned i = 1; self->primary == NULL && i < self->n_parts; i++)
        store_checkpoint_cancel(self->parts[i]);
}

void store_checkpoint_yield(store_t *self)
{
    __atomic_store_n(&self->ckpt_yield, 1, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (self->ckpt_wake != -1)
        (void)!write(self->ckpt_wake, &one, sizeof one);
}

/* The writer's release at the end of its hold (s_copy_held), in a
 * thread of its own, as LMDB's copy blocks the checkpoint thread: it
 * first computes the checksum of what the copy writes, from the map
 * (unchanged while the writer is held: the copy's bytes are the map's
 * first len bytes), then lets the writer go on once the copy ended or the
 * hold ran out, whichever comes first. The checksum stands only if the
 * copy ended before the writer went on (else the copy is read back for
 * it: a plain copy takes free pages too, which the writer may reuse
 * meanwhile). Until the copy ends it also looks every S_STOP_POLL_MS at
 * whether the copy must stop (funneld stops, or the state's map must
 * grow once the writer went on), and if so points the copy's descriptor
 * at /dev/full: LMDB's copy fails at its next write (a write already
 * under way ends first). */
typedef struct {
    store_t *store;
    const unsigned char *map;
    uint64_t len;
    int fd;                /* the copy's */
    pthread_mutex_t lock;
    pthread_cond_t cond;   /* CLOCK_MONOTONIC */
    bool done;             /* the copy ended */
    uint64_t linger_seq;   /* FUNNELD_CHECKPOINT_HOLD=writer:SEQ: held until
                              the log is committed up to SEQ (or until_ns) */
    int64_t until_ns;
    int64_t released_ns;   /* when it let the writer go on */
    bool summed;           /* sum is the copy's */
    uint64_t sum;
    bool stopped;          /* it made the copy fail (cancel or yield) */
} s_release_t;

/* Under r->lock. Whether the copy must stop, and if so makes it fail. */
static bool s_release_stop(s_release_t *r)
{
    if (r->stopped)
        return true;
    if (!__atomic_load_n(&r->store->ckpt_cancel, __ATOMIC_ACQUIRE) &&
        !__atomic_load_n(&r->store->ckpt_yield, __ATOMIC_ACQUIRE))
        return false;
    int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (full == -1)
        return false; /* the copy runs to its end */
    r->stopped = dup2(full, r->fd) != -1;
    close(full);
    return r->stopped;
}

static void s_mono_ts(struct timespec *ts, int64_t ns)
{
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
}

static void *s_releaser(void *arg)
{
    s_release_t *r = arg;
    ckpt_sum_t x;
    ckpt_sum_init(&x, false);
    uint64_t off = 0;
    while (r->map != NULL && off < r->len && s_now_ns() < r->until_ns) {
        size_t n = r->len - off < S_SLICE ? (size_t)(r->len - off) : S_SLICE;
        ckpt_sum_add(&x, r->map + off, n);
        off += n;
    }
    uint64_t sum = ckpt_sum_end(&x);
    struct timespec ts;
    pthread_mutex_lock(&r->lock);
    r->summed = r->map != NULL && off == r->len;
    r->sum = sum;
    /* The hold: until the copy ends (tests: and the log reaches
     * linger_seq), or until_ns. */
    for (;;) {
        if (!r->done && s_release_stop(r))
            break;
        int64_t now = s_now_ns();
        if (now >= r->until_ns)
            break;
        if (r->done && (r->linger_seq == 0 || store_committed_seq(r->store) >= r->linger_seq ||
                        __atomic_load_n(&r->store->ckpt_cancel, __ATOMIC_ACQUIRE)))
            break;
        int64_t at = now + (r->done ? S_HOLD_TEST_POLL_MS : S_STOP_POLL_MS) * 1000000LL;
        s_mono_ts(&ts, at < r->until_ns ? at : r->until_ns);
        (void)pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    r->summed = r->summed && r->done;
    store_release_writer(r->store);
    r->released_ns = s_now_ns();
    /* The rest of a copy longer than the hold. */
    while (!r->done && !s_release_stop(r)) {
        s_mono_ts(&ts, s_now_ns() + S_STOP_POLL_MS * 1000000LL);
        (void)pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* Turn O_DIRECT on or off for fd. 0 or -1. */
static int s_direct(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl == -1)
        return -1;
    return fcntl(fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT);
}

/* Read the copy back from fd (O_DIRECT: aligned, and the page cache that
 * the state needs is left alone), its length and XXH3-64. 0, or -1 with
 * errno. */
static int s_sum_back(int fd, uint64_t *len, uint64_t *sum)
{
    unsigned char *buf = NULL;
    if (posix_memalign((void **)&buf, S_ALIGN, S_SLICE) != 0) {
        errno = ENOMEM;
        return -1;
    }
    ckpt_sum_t x;
    ckpt_sum_init(&x, false);
    uint64_t off = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, S_SLICE, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        ckpt_sum_add(&x, buf, (size_t)n);
        off += (uint64_t)n;
    }
    int saved = errno;
    *sum = ckpt_sum_end(&x);
    *len = off;
    free(buf);
    errno = saved;
    return rc;
}

/* The copy with the state's writer held (split stores only; see the top
 * of this file): LMDB's plain copy, page for page from the map, straight
 * into fd with O_DIRECT (the disk reads the map's pages itself: next to
 * no CPU, and no page cache taken from the state), while the partition
 * thread waits before its next group for at most S_HOLD_MAX_MS. Returns
 * STORE_OK (len and sum of what fd holds), STORE_ERR (err filled),
 * STORE_EAGAIN (the copy gave way to the state's map growing, after the
 * hold), or S_UNHELD when this copy cannot be taken so (not split, no
 * direct I/O on this file system, FUNNELD_CHECKPOINT_HOLD=1, the writer's
 * group did not end in time): fd is then empty again. Checkpoint
 * thread. */
static int s_copy_held(store_t *self, int fd, const char *tmp, uint64_t *len, uint64_t *sum,
                       uint64_t *held_ms, char *err, size_t errlen)
{
    const char *test_hold = getenv("FUNNELD_CHECKPOINT_HOLD");
    if (!store_split_on(self) || (test_hold && strcmp(test_hold, "1") == 0 && !self->ckpt_held))
        return S_UNHELD;
    unsigned long long linger_seq = 0;
    if (test_hold && sscanf(test_hold, "writer:%llu", &linger_seq) == 1 && !self->ckpt_held)
        self->ckpt_held = true;
    else
        linger_seq = 0;
    if (self->ckpt_no_direct || s_direct(fd, true) == -1)
        return S_UNHELD;
    if (!store_hold_writer(self, S_HOLD_GROUP_MS)) {
        (void)s_direct(fd, false);
        return S_UNHELD;
    }
    int64_t t0 = s_now_ns();
    /* The map is not remapped from here on (the environment is read
     * below, and by the copy); the writer is held, so no group of its
     * waits for this lock meanwhile. */
    pthread_rwlock_rdlock(&self->state_grow_lock);
    /* A yield asked for before this copy began served a copy that ended. */
    __atomic_store_n(&self->ckpt_yield, 0, __ATOMIC_RELEASE);
    /* What LMDB's plain copy writes, the writer held: the map up to the
     * last page in use, at most the file. txnid tells afterwards whether
     * anything (a definition stored by the loop, say) wrote meanwhile. */
    MDB_envinfo info;
    MDB_stat mst;
    struct stat fst;
    mdb_filehandle_t mfd;
    size_t txnid = 0;
    s_release_t r = {.store = self, .fd = fd, .linger_seq = linger_seq,
                     .until_ns = t0 + (int64_t)(linger_seq ? S_HOLD_TEST_MS : S_HOLD_MAX_MS) *
                                          1000000};
    if (mdb_env_info(self->state_env, &info) == 0 && mdb_env_stat(self->state_env, &mst) == 0 &&
        mdb_env_get_fd(self->state_env, &mfd) == 0 && fstat(mfd, &fst) == 0) {
        txnid = info.me_last_txnid;
        r.len = ((uint64_t)info.me_last_pgno + 1) * mst.ms_psize;
        if (r.len > (uint64_t)fst.st_size)
            r.len = (uint64_t)fst.st_size;
        /* A map of our own (LMDB does not say where its own is): the same
         * pages of the page cache. */
        void *m = r.len > 0 ? mmap(NULL, r.len, PROT_READ, MAP_SHARED, mfd, 0) : MAP_FAILED;
        r.map = m == MAP_FAILED ? NULL : m;
    }
    pthread_mutex_init(&r.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r.cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t releaser;
    bool timed = pthread_create(&releaser, NULL, s_releaser, &r) == 0;
    if (!timed)
        log_warn("[store] cannot time the checkpoint's hold on the state's writer; it is "
                 "held for the whole copy");

    __atomic_store_n(&self->copying, 1, __ATOMIC_RELEASE);
    int rc = mdb_env_copyfd2(self->state_env, fd, 0);
    __atomic_store_n(&self->copying, 0, __ATOMIC_RELEASE);
    int64_t took = s_now_ns() - t0;
    if (timed) {
        pthread_mutex_lock(&r.lock);
        r.done = true;
        pthread_cond_signal(&r.cond);
        pthread_mutex_unlock(&r.lock);
        pthread_join(releaser, NULL);
    } else {
        r.released_ns = s_now_ns();
    }
    if (r.summed && (mdb_env_info(self->state_env, &info) != 0 || info.me_last_txnid != txnid))
        r.summed = false;
    pthread_rwlock_unlock(&self->state_grow_lock);
    store_release_writer(self);
    *held_ms = (uint64_t)(r.released_ns - t0) / 1000000;
    if (*held_ms == 0)
        *held_ms = 1; /* held, however briefly */
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.lock);
    if (r.map != NULL)
        munmap((void *)r.map, r.len);
    if (r.released_ns - t0 < took)
        log_info("[store] the checkpoint's copy took %.2f s; the state's writer went on "
                 "after %.2f s of it", (double)took / 1e9, (double)*held_ms / 1000);
    if (r.stopped) {
        bool cancelled = __atomic_load_n(&self->ckpt_cancel, __ATOMIC_ACQUIRE);
        snprintf(err, errlen, "%s", cancelled ? "dropped: funneld stops"
                                              : "gave way to the state's map growing");
        return cancelled ? STORE_ERR : STORE_EAGAIN;
    }
    if (rc == EINVAL && ftruncate(fd, 0) == 0 && s_direct(fd, false) == 0) {
        /* The file system took O_DIRECT, then refused a direct write. */
        log_warn("[store] %s takes no direct writes: checkpoints are copied without holding "
                 "the state's writer", tmp);
        self->ckpt_no_direct = true;
        return S_UNHELD;
    }
    if (rc != 0) {
        snprintf(err, errlen, "copying the state to %s: %s", tmp,
                 rc == EIO ? "input/output error (is the disk full?)" : mdb_strerror(rc));
        return STORE_ERR;
    }
    if (r.summed) {
        *len = r.len;
        *sum = r.sum;
    } else if (s_sum_back(fd, len, sum) == -1) {
        snprintf(err, errlen, "reading %s back: %s", tmp, strerror(errno));
        return STORE_ERR;
    }
    (void)s_direct(fd, false); /* the trailer's write is not aligned */
    return STORE_OK;
}

/* The copy without holding the writer: LMDB's compacting copy into a
 * pipe, written to fd by a drain thread in paced slices (s_drain), and
 * given way when the state's map must grow. Returns STORE_OK (len and
 * sum of what was written), STORE_EAGAIN, or STORE_ERR (err filled).
 * Checkpoint thread. */
static int s_copy_piped(store_t *self, int fd, const char *tmp, uint64_t *len, uint64_t *sum,
                        char *err, size_t errlen)
{
    int rc, pfd[2] = {-1, -1};
    s_drain_t drain = {.in = -1, .out = -1, .cancel = &self->ckpt_cancel,
                       .yield = &self->ckpt_yield, .wake = self->ckpt_wake};
    pthread_t drainer;

    if (pipe2(pfd, O_CLOEXEC) == -1) {
        snprintf(err, errlen, "cannot create a pipe for the copy: %s", strerror(errno));
        return STORE_ERR;
    }
    if (!self->ckpt_held) {
        const char *hold = getenv("FUNNELD_CHECKPOINT_HOLD");
        drain.hold = hold != NULL && strcmp(hold, "1") == 0;
        self->ckpt_held = drain.hold;
    }
    /* Held, the smallest pipe: LMDB then blocks holding its snapshot
     * however small the state is. */
    (void)fcntl(pfd[1], F_SETPIPE_SZ, drain.hold ? 4096 : S_PIPE);
    drain.in = pfd[0];
    drain.out = fd;
    /* A yield asked for before this copy began served a copy that ended:
     * forgotten (a grower still waiting asks again, see store_commit.c). */
    __atomic_store_n(&self->ckpt_yield, 0, __ATOMIC_RELEASE);
    /* Created by this thread, the drain (and LMDB's own writer thread)
     * inherit its scheduling and I/O priority (see checkpoint.c). */
    if ((rc = pthread_create(&drainer, NULL, s_drain, &drain)) != 0) {
        snprintf(err, errlen, "cannot start the checkpoint's writer: %s", strerror(rc));
        close(pfd[0]);
        close(pfd[1]);
        return STORE_ERR;
    }

    /* The copy, from LMDB's own read transaction: the state's map must
     * not be remapped meanwhile. LMDB writes the compacted file
     * sequentially, so a pipe takes it. */
    pthread_rwlock_rdlock(&self->state_grow_lock);
    __atomic_store_n(&self->copying, 1, __ATOMIC_RELEASE);
    rc = mdb_env_copyfd2(self->state_env, pfd[1], MDB_CP_COMPACT);
    __atomic_store_n(&self->copying, 0, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&self->state_grow_lock);
    close(pfd[1]);
    pthread_join(drainer, NULL); /* it closes the read end */
    if (drain.stopped) {
        bool cancelled = __atomic_load_n(&self->ckpt_cancel, __ATOMIC_ACQUIRE);
        snprintf(err, errlen, "%s", cancelled ? "dropped: funneld stops"
                                              : "gave way to the state's map growing");
        return cancelled ? STORE_ERR : STORE_EAGAIN;
    }
    if (drain.err != 0) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(drain.err));
        return STORE_ERR;
    }
    if (rc != 0) {
        snprintf(err, errlen, "copying the state to %s: %s", tmp,
                 rc == EIO ? "input/output error (is the disk full?)" : mdb_strerror(rc));
        return STORE_ERR;
    }
    *len = drain.len;
    *sum = drain.sum;
    return STORE_OK;
}

int store_checkpoint(store_t *self, store_ckpt_t *out, char *err, size_t errlen)
{
    char dir[4096], tmp[4200], final[4200];
    unsigned char trailer[CKPT_TRAILER];
    uint64_t schema = 0, seq = 0, len = 0, sum = 0, held_ms = 0;
    struct stat st;
    int fd = -1, rc;

    ckpt_dir(store_ckpt_root(self), dir, sizeof dir);
    if (s_mkdir_root(store_ckpt_root(self)) == -1 ||
        (mkdir(dir, 0750) == -1 && errno != EEXIST)) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return STORE_ERR;
    }
    snprintf(tmp, sizeof tmp, "%s/%s", dir, S_TMP);
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd == -1) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return STORE_ERR;
    }
    rc = s_copy_held(self, fd, tmp, &len, &sum, &held_ms, err, errlen);
    if (rc == S_UNHELD)
        rc = s_copy_piped(self, fd, tmp, &len, &sum, err, errlen);
    if (rc != STORE_OK) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    if (fstat(fd, &st) == -1 || fsync(fd) == -1) {
        snprintf(err, errlen, "flushing %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if ((uint64_t)st.st_size != len) {
        snprintf(err, errlen, "%s holds %llu bytes, the copy was %llu", tmp,
                 (unsigned long long)st.st_size, (unsigned long long)len);
        goto fail;
    }
    if ((rc = ckpt_read_meta(tmp, &schema, &seq)) != 0) {
        snprintf(err, errlen, "the copy %s does not open: %s", tmp, mdb_strerror(rc));
        goto fail;
    }
    if (schema != STORE_SCHEMA) {
        snprintf(err, errlen, "the copy %s has schema %llu, not %d", tmp,
                 (unsigned long long)schema, STORE_SCHEMA);
        goto fail;
    }
    s_trailer_put(trailer, seq, len, sum);
    errno = 0;
    if (pwrite(fd, trailer, CKPT_TRAILER, st.st_size) != CKPT_TRAILER || fsync(fd) == -1) {
        snprintf(err, errlen, "writing the trailer of %s: %s", tmp,
                 errno ? strerror(errno) : "short write");
        goto fail;
    }
    close(fd);
    fd = -1;
    snprintf(final, sizeof final, "%s/ckpt-%020llu.mdb", dir, (unsigned long long)seq);
    if (rename(tmp, final) == -1 || ckpt_fsync_dir(dir) == -1) {
        snprintf(err, errlen, "renaming %s to %s: %s", tmp, final, strerror(errno));
        goto fail;
    }
    memset(out, 0, sizeof *out);
    out->seq = seq;
    out->bytes = (uint64_t)st.st_size + CKPT_TRAILER;
    out->created_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    out->held_ms = held_ms;
    snprintf(out->name, sizeof out->name, "ckpt-%020llu.mdb", (unsigned long long)seq);
    return STORE_OK;

fail:
    if (fd != -1)
        close(fd);
    unlink(tmp);
    return STORE_ERR;
}

