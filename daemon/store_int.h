/* store_int.h: the store's insides, shared by its files and by nobody
 * else (store.h is the API):
 *
 *   store_env.c       opening and closing the two LMDB environments, the
 *                     meta records, the sticky error of a group, the
 *                     definition and the watermark
 *   store_marker.c    the clean-close marker beside the state (torn or not)
 *   store_commit.c    group begin/commit/abort, growing the maps, appending
 *                     to the event log, the group's counter deltas
 *   store_lead.c      lead records (with their pending deadlines in the
 *                     header) and the event ids beside them
 *   store_deadline.c  deadlines and marks
 *   store_read.c      read snapshots, in any thread, and everything read
 *                     through them
 *   store_alerts.c    the stored alert stream: numbering, appending,
 *                     trimming by retention, reading in a snapshot
 *   store_compare.c   comparing the live state with a rebuilt one
 *   store_split.c     the store split between the loop thread (the log)
 *                     and a partition thread (the state): log groups,
 *                     state groups, the index of what is logged and not
 *                     applied yet, the read-your-writes wait
 *   store_checkpoint.c writing durable checkpoints of the state (in the
 *                     checkpoint thread, the partition's writer held)
 *   store_restore.c   listing, pruning and restoring checkpoints, a lead
 *                     read from one, dropping covered log entries
 *   store_ckpt_int.h  the checkpoint file's format, shared by those two
 *
 * Only these files include <lmdb.h>. The write side (groups, leads,
 * deadlines, marks, counters) runs on the thread that opened the store;
 * reads run in any thread, each in its own snapshot. */
#ifndef FUNNELD_STORE_INT_H
#define FUNNELD_STORE_INT_H

#include <endian.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "htab.h"
#include "store.h"

#define STORE_SCHEMA 6   /* 6: the stored alerts */
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
    /* A shadow store (store_open_shadow): the live store whose log it
     * reads (log_env and events are that store's, borrowed); NULL for a
     * store of its own. */
    struct store *log_of;
    bool fresh;           /* opened from nothing (store_fresh) */
    bool marked_open;     /* meta says "in use": clear it on a clean close */

    MDB_env *log_env;
    MDB_env *state_env;
    size_t log_map;
    size_t state_map;
    /* The state is written through its map (MDB_WRITEMAP, see
     * store_state_room): bytes of its file allocated from the start,
     * UINT64_MAX when it is written with write(2) instead. */
    uint64_t state_room;
    uint64_t state_used;     /* the state's pages in use at the last group */
    uint64_t state_grew_max; /* the most one group grew them by */
    MDB_dbi events;       /* log env */
    MDB_dbi log_meta;     /* log env: the loop's counters (store_log_stats_put) */
    MDB_dbi leads;        /* state env (with the event ids), and below */
    MDB_dbi aggregates;
    MDB_dbi meta;
    MDB_dbi deadlines;      /* due_ms BE, lead id, NUL, kind -> empty */
    MDB_dbi marks;          /* set, NUL, lead id -> since_ms BE */
    MDB_dbi alerts;         /* block BE -> alerts: see S_ALERT_BLOCK */

    /* The open group, if any. */
    MDB_txn *log_txn;
    MDB_txn *state_txn;
    int ret;              /* sticky error of the group */
    char last_error[256]; /* the last STORE_ERR, one line */

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
    uint64_t alert_seq_begin;
    uint64_t alerts_floor_begin;

    /* Readers (read snapshots, in any thread) hold these shared; growing
     * a map holds its environment's lock exclusively, as LMDB wants no
     * transaction of that environment open while it remaps it. One per
     * environment: a checkpoint copies the state from a snapshot held for
     * seconds and takes only state_grow_lock, so the log's map grows
     * meanwhile without waiting for it (see store_checkpoint.c). */
    pthread_rwlock_t grow_lock;        /* the log's map */
    pthread_rwlock_t state_grow_lock;  /* the state's map */
    /* Set while a checkpoint copies the state: growing ahead of need
     * (store_group_begin) does not wait for it then. */
    volatile int copying;
    /* Set once funneld stops: a checkpoint being copied is dropped. */
    volatile int ckpt_cancel;
    /* Set when the state's map must grow while a checkpoint copies it:
     * that copy gives way at once (STORE_EAGAIN) instead of holding the
     * growth, and so ingest, for the rest of its copy. ckpt_wake
     * (an eventfd, for the store's life) wakes the copy's drain thread
     * for this and for ckpt_cancel. ckpt_held: FUNNELD_CHECKPOINT_HOLD
     * already held one copy (see store_checkpoint.c). */
    volatile int ckpt_yield;
    int ckpt_wake;
    bool ckpt_held;
    /* A checkpoint holding the state's writer while it copies (split: the
     * writer is a partition thread; see store_checkpoint.c). hold_want
     * makes store_state_begin wait until it is cleared; hold_group says a
     * state group is open, which the checkpoint lets end first. held
     * (atomic, any thread): the writer is held now, so that intake lets
     * the lag grow meanwhile (store_parts_held). */
    pthread_mutex_t hold_lock;
    pthread_cond_t hold_cond;
    bool hold_want;
    bool hold_group;
    int held;
    bool ckpt_no_direct;  /* its file system refused a direct write */
    /* Growing the state's map ahead of a checkpoint, asked of the thread
     * that writes the state (store_state_ahead_ask, any thread) and
     * served by it at the beginning of a state group once the map is
     * grown (store_state_begin): split, only the state owner may remap
     * the state. Atomics. */
    uint64_t ahead_asked;
    uint64_t ahead_served;
    pthread_t owner;      /* the thread that opened the store: groups */
    /* The counters as last published for other threads. */
    pthread_mutex_t pub_lock;
    store_stats_t pub_stats;
    uint64_t pub_last_seq;
    uint64_t pub_alert_seq;
    uint64_t pub_alerts_floor;
    uint64_t pub_first_seq;

    int64_t watermark_ms; /* largest event time applied */
    uint64_t last_seq;    /* last event in the log */
    uint64_t first_seq;   /* first event in the log (0: empty); above 1
                             once log retention dropped older entries */
    uint64_t log_dropped; /* entries dropped by retention, this process */
    char recovery[256];   /* how this open brought the state back */
    char consumed[64];    /* the checkpoint the recovery renamed into the
                             state ("" if none) */
    uint64_t applied_seq; /* last event applied to the state */
    store_stats_t stats;
    /* The last log sequence whose event the loop's counters (received)
     * count: those kept with the log say so; a replay counts the events
     * after it only (store_log_counted). The log's owner's. */
    uint64_t log_counted;
    uint64_t log_counted_begin;
    /* false for a store that only reads the log (a rebuild): its counters
     * are not the loop's and are not kept with the log. */
    bool log_counts;
    uint64_t alert_seq;   /* last alert stored ("alert_seq" in meta) */
    uint64_t alerts_floor; /* last alert trimmed ("alerts_floor" in meta) */
    /* The group's open block of alerts (store_alerts.c), in memory until
     * it is written. */
    unsigned char *ablk;
    size_t ablk_cap;
    size_t ablk_len;
    size_t ablk_n;        /* alerts in it */
    uint64_t ablk_no;
    bool ablk_valid;
    bool ablk_dirty;      /* changed since written */

    s_counter_t *ctr;     /* counter deltas of the open group */
    size_t n_ctr;
    size_t cap_ctr;
    htab_t ctr_index;     /* ctr by key (FNV-1a 32); cap >= 2 * n_ctr */

    /* Split (store_split.c, between store_split_begin and _end): the log
     * written by the owner (the loop thread), the state by state_owner (a
     * partition thread). Each side has its own sticky error and counters;
     * fields above marked as the state's (state_txn, applied_seq,
     * watermark_ms, stats, alert_seq, ...) are then state_owner's, the
     * log's (log_txn, last_seq, first_seq, log_full) the owner's. */
    bool split;
    pthread_t state_owner;
    int log_ret;            /* sticky error of a log group */
    char log_last_error[256];
    uint64_t log_seq_begin;
    uint64_t log_first_begin;
    store_stats_t lstats;   /* the loop's counters (received, duplicates...) */
    store_stats_t lstats_begin;
    /* The owner's snapshot of the state during a log group (claims, the
     * leads' last events, deadlines due), and the applied sequence it
     * sees; holds state_grow_lock shared. */
    MDB_txn *look_txn;
    /* A cursor on leads in look_txn, opened by the first claim: a claim
     * looks up an event's id key, then its lead's record, which sort
     * side by side, and a positioned cursor finds the second on the leaf
     * page of the first instead of descending the tree again. */
    MDB_cursor *look_cur;
    uint64_t look_applied;
    struct store_inflight *infl; /* logged, not yet applied (store_split.c) */
    /* The leads' newest logged sequences, for a lead query's wait
     * (store_wait_lead_applied): S_MARKS slots by the lead id's hash, each
     * the sequence last logged for a lead hashing there, as seq mod
     * (2^32 - 1) + 1 (0: none since marks_base); marks_top is the newest
     * sequence stored, the reference to decode them by. Written by the
     * owner as it logs, read by any thread; allocated at the first
     * event logged, marks_base the log's last sequence then. */
    uint32_t *lead_marks;
    uint64_t marks_top;
    uint64_t marks_base;
    /* Published (pub_lock): the loop's counters as of each log commit
     * not yet applied, so that the state persists those matching what it
     * applied; the applied sequence, with pub_cond broadcast when it moves. */
    struct store_lmark *lmarks;
    size_t n_lmarks, cap_lmarks;
    store_stats_t pub_lstats;
    uint64_t pub_applied_seq;
    bool pub_stalled;       /* the state cannot commit: nobody waits for it */
    pthread_cond_t pub_cond;

    /* Partitions (store_open_part): a partition's state is a store of its
     * own whose log is its primary's (log_env borrowed, never written nor
     * read through it: reads of the log go through the primary); the
     * primary lists them all, itself first, and routes each lead to
     * parts[FNV-1a 32 of its id % n_parts] (claims, deadlines due and
     * reads of the state merge or route across them). n_parts is 1 (the
     * primary alone) unless parts were opened. */
    store_t *primary;       /* NULL: this store's log is its own */
    unsigned part_index;    /* in the primary's parts */
    store_t *parts[STORE_PARTS_MAX];
    unsigned n_parts;
    /* With partitions, alerts are numbered by the log sequence of the
     * entry raising them (store_alert_next), so that they are unique and
     * increasing across partitions; a block of "alerts" then spans
     * S_ALERT_SPAN_LOG numbers. */
    bool alert_by_log;
    /* Where this store's checkpoints are: <ckpt_root>/checkpoints (the
     * data directory, or a partition's <dir>/<state_name>.ckpt). */
    char *ckpt_root;
    /* A partition's snapshots of the other partitions' states during a
     * state group (store_peers_begin), for the funnel-wide check. */
    MDB_txn *peer_txn[STORE_PARTS_MAX];
    bool peers_open;
    /* The primary's: bit i set while partition i is counted in merged
     * reads (store_set_counted; all of them unless set). Atomic. */
    uint64_t counted;
};

/* The lock that guards the log's map for readers: the live store's for a
 * shadow store, which reads the live store's log. */
#define S_LOG_LOCK(self) ((self)->log_of ? &(self)->log_of->grow_lock : &(self)->grow_lock)

/* The store holding lead_id's state among self's partitions (self when
 * it has none). */
store_t *store_part_of_lead(const store_t *self, const char *lead_id);

/* Whether the store is split (any thread). */
static inline bool store_split_on(const store_t *self)
{
    return __atomic_load_n(&self->split, __ATOMIC_ACQUIRE);
}

/* Whether the calling thread writes the state: always when not split. */
static inline bool store_state_side(const store_t *self)
{
    return !__atomic_load_n(&self->split, __ATOMIC_ACQUIRE) ||
           pthread_equal(pthread_self(), self->state_owner);
}


/* Shared by store_commit.c and store_split.c: flush the group's counter
 * deltas into the state, clear them; whether an environment is over 3/4
 * full; grow the maps marked full (ahead: only those free now).
 * (store_commit.c) */
void store_counters_flush(store_t *self);
void store_counters_clear(store_t *self);
bool store_env_nearly_full(MDB_env *env);

/* With the state written through its map: make sure the state's file
 * has its disk blocks allocated some way past the pages in use, before
 * a state group begins (see store_env.c). Returns STORE_OK, or STORE_ERR
 * with the store's error set (a full disk) and nothing written. State
 * owner, no state transaction open. */
int store_state_room(store_t *self);

/* Open self->state_env at path: written through its map with room
 * allocated ahead (store_state_room), or with write(2) on a filesystem
 * that cannot allocate ahead (then said in the log). Returns 0, or -1
 * with err filled. Owner thread. */
int store_state_env_open(store_t *self, const char *path, size_t map_size, char *err,
                         size_t errlen);
int store_grow_marked(store_t *self, bool ahead);

/* Ahead of a checkpoint the state's map is grown until it uses at most
 * 1/STORE_AHEAD_DIV of it (see store_grow_ahead). */
#define STORE_AHEAD_DIV 8

/* The state owner's side of store_state_ahead_ask: grow the state's map
 * until STORE_AHEAD_DIV times what it uses, waiting for the readers'
 * snapshots to end, but only while no copy runs (a copy holding the lock
 * is never made to give way for this). Returns whether it is grown that
 * far (false: try again at a later group). State owner, no state group
 * open. (store_commit.c) */
bool store_state_grow_ahead(store_t *self);

/* Make a checkpoint copying the state now give way (store_checkpoint
 * returns STORE_EAGAIN), waking its drain thread: the state's map must
 * grow. Any thread (the grower's). */
void store_checkpoint_yield(store_t *self);

/* a += b, field by field. (store_split.c) */
void store_stats_sum(store_stats_t *a, const store_stats_t *b);

/* The counters only the loop counts, as it logs and acknowledges
 * (received, duplicates, rejected, commits, gaps, stream messages): the
 * log keeps them with every commit, so that they are exact after any
 * crash; the others (applied, deadlines, alerts) are the state's, which a
 * replay counts again. Copy those of from into to; raise those of to to
 * from's where from's are higher (both being counts since the state was
 * created, the higher is the later). (store_split.c) */
void store_stats_take_logged(store_stats_t *to, const store_stats_t *from);
void store_stats_max_logged(store_stats_t *to, const store_stats_t *from);

/* Write the loop's counters st, as of the log's last sequence, into the
 * open log transaction (the log's meta: "stats" and "stats_seq"), unless
 * this store only reads the log. Returns an LMDB code. Log owner, in a
 * log group. (store_env.c) */
int store_log_stats_put(store_t *self, const store_stats_t *st);

/* Shared by store_env.c and store_shadow.c: create (mkdir -p) and open
 * the LMDB environment at path; open (creating) the state's databases and
 * read its meta; recover a state that may be torn from a checkpoint (or
 * start it afresh), `why` saying why. 0, or -1 with err. (store_env.c) */
int store_env_open(MDB_env **env, const char *path, size_t map_size, unsigned flags,
                   char *err, size_t errlen);
int store_open_state_dbs(store_t *self, char *err, size_t errlen);
int store_recover(store_t *self, const char *why, char *err, size_t errlen);

/* Hold the state's writer (a split store's state owner) between groups:
 * waits at most wait_ms for the group it is in to end. Returns whether it
 * is held (false when not split, or the group did not end in time: then
 * nothing is held). Release (idempotent, any thread) lets it go on.
 * store_writer_held: whether it is held now (any thread). (store_split.c) */
bool store_hold_writer(store_t *self, int wait_ms);
void store_release_writer(store_t *self);
bool store_writer_held(const store_t *self);

/* Free what split mode allocated. (store_split.c) */
void store_split_free(store_t *self);

/* A read snapshot belongs to the thread that began it (the loop thread for
 * replay and deadlines, the query thread for queries), so each thread has
 * its own; a thread reads one store at a time. (store_read.c) */
struct store_snapshot {
    const store_t *store;
    MDB_txn *rlog;
    MDB_txn *rstate;
    /* A primary with partitions: each partition's state, rpart[0] being
     * rstate. */
    MDB_txn *rpart[STORE_PARTS_MAX];
    uint64_t counted;       /* the primary's counted partitions at begin */
};
extern __thread struct store_snapshot store_snapshot;

/* This thread's snapshot of self, or NULL. */
#define S_RLOG(self) (store_snapshot.store == (self) ? store_snapshot.rlog : NULL)
static inline MDB_txn *store_rstate_of(const store_t *self)
{
    if (store_snapshot.store == self)
        return store_snapshot.rstate;
    if (self->primary && store_snapshot.store == self->primary)
        return store_snapshot.rpart[self->part_index];
    return NULL;
}
#define S_RSTATE(self) store_rstate_of(self)

/* Whether this thread's snapshot of primary counts partition i
 * (store_set_counted). */
static inline bool store_snap_counts(unsigned i)
{
    return (store_snapshot.counted >> i) & 1;
}

/* The state transaction this thread reads the state in: its group's
 * (the thread writing the state), its log group's snapshot (the owner,
 * split), or else its read snapshot. */
static inline bool store_state_writer(const store_t *self)
{
    pthread_t me = pthread_self();
    return store_split_on(self) ? pthread_equal(me, self->state_owner)
                                : pthread_equal(me, self->owner);
}

static inline MDB_txn *store_state_txn_of(const store_t *self)
{
    bool owner = pthread_equal(pthread_self(), self->owner);
    if (store_split_on(self)) {
        if (pthread_equal(pthread_self(), self->state_owner) && self->state_txn)
            return self->state_txn;
        if (owner && self->look_txn)
            return self->look_txn;
    } else if (owner && self->state_txn) {
        return self->state_txn;
    }
    return S_RSTATE(self);
}
#define S_STATE_TXN(self) store_state_txn_of(self)

/* -- keys and values ----------------------------------------------------- */

static inline void s_be64_put(unsigned char *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
}

static inline uint64_t s_be64_get(const void *vp)
{
    uint64_t v;
    memcpy(&v, vp, 8);
    return be64toh(v);
}

static inline MDB_val s_str_val(const char *s)
{
    MDB_val v = {.mv_size = strlen(s), .mv_data = (void *)s};
    return v;
}

/* -- record layouts -------------------------------------------------------- */

/* An event id is kept in "leads" beside its lead's record, under the key
 * "lead id, NUL, event id" (no lead id holds a NUL): the id of an event
 * falls in the page its lead's record is in, which the event dirties
 * anyway, so idempotency costs no random page of its own. */
#define S_ID_KEY (128 * 2 + 2)   /* both are at most 128 bytes: validate.c */

/* A stored lead: u64 BE sequence of its last event (the head of its
 * timeline chain through the log); one byte n and n pending deadlines of
 * the lead (16-byte kind, u64 BE due time); then its Lead bytes. */
#define S_LEAD_FIXED 9
#define S_LEAD_DL 24

/* A logged event: u64 BE sequence of the previous event of the same lead
 * (0 for its first), then the Event bytes. The chain gives every lead its
 * timeline without an index written at random places. */
#define S_LOG_HDR 8

/* Stored alerts, S_ALERT_BLOCK to a record of "alerts" (block number u64
 * BE; see store_alerts.c), each entry: u64 BE alert_seq, u64 BE stamp (the
 * event-time watermark when it was raised, which retention measures), one
 * byte n, u32 BE length m, the n bytes of its topic (filtered without
 * decoding), then its m Alert bytes as published. */
#define S_ALERT_BLOCK 64
/* Numbered by log sequence (partitions), a block spans the numbers of 128
 * log entries, of which a partition holds its share. */
#define S_ALERT_SPAN_LOG (128 * STORE_ALERTS_PER_ENTRY)
#define S_ALERT_SPAN(self) ((self)->alert_by_log ? S_ALERT_SPAN_LOG : S_ALERT_BLOCK)
#define S_ALERT_ENTRY 21
#define S_ALERT_TOPIC_MAX 255

/* -- shared by the store's files ------------------------------------------- */

/* Record the first error of a group; MDB_MAP_FULL becomes STORE_EFULL and
 * remembers which environment needs a larger map (in_log: the log's).
 * Logs it; later errors of the same group are ignored. Owner thread.
 * (store_env.c) */
void store_fail(store_t *self, int rc, bool in_log, const char *what);
/* Append one event to the open log transaction as the next sequence: the
 * S_LOG_HDR header (prev_seq, the lead's previous event) and raw[len].
 * Returns the sequence, or 0 after store_fail() ("log append"). Loop
 * thread (the log's writer). Shared by store_event_add and
 * store_log_append. */
uint64_t store_log_put(store_t *self, uint64_t prev_seq, const void *raw, size_t len);


/* The size of an environment's map, 0 when LMDB cannot say. (store_env.c) */
size_t store_env_map_size(MDB_env *env);

/* A u64 BE meta record in txn: *out (0 when absent), or an LMDB error.
 * Writing one: 0 or an LMDB error. (store_env.c) */
int store_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *out);
int store_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t value);

/* Write the daemon counters into meta: 0 or an LMDB error. (store_env.c) */
int store_stats_put(MDB_txn *txn, MDB_dbi dbi, const store_stats_t *st);

/* Whether the state may be torn (the machine went down with it open);
 * write the marker durably, open (in this boot) or clean: 0 or an errno
 * value. (store_marker.c) */
bool store_marker_torn(store_t *self);
int store_marker_write(store_t *self, bool open);

/* "a, NUL, b" into buf (cap bytes, both cut to fit); an event id's key in
 * "leads" (buf of S_ID_KEY bytes). The value points into buf.
 * (store_lead.c) */
MDB_val store_pair_key(unsigned char *buf, size_t cap, const char *a, const char *b);
MDB_val store_id_key(unsigned char *buf, const char *lead_id, const char *id);

/* Split a stored lead record v into its Lead bytes (*buf, *len: in v) and,
 * when last_seq is not NULL, the sequence of its last event. With cur (the
 * group's writer), its deadlines become the current lead's. Returns 1, or
 * 0 when the record is malformed. (store_lead.c) */
int store_lead_split(store_t *cur, const char *lead_id, const MDB_val *v,
                     const void **buf, size_t *len, uint64_t *last_seq);

/* Restore the newest (oldest: the oldest) good checkpoint (see
 * store_checkpoint.c) into dir/state_name, one whose sequence the log
 * (first..last) covers. With may_consume, the newest may be renamed into
 * the state rather than copied (*consumed then true: the checkpoint is
 * gone), when recovery stays possible without it. Returns 1 and its
 * sequence in *seq (and its name in name) when one was restored, 0 when
 * there is none to use (each rejected one logged), -1 on an I/O error
 * (err filled). Owner thread, while opening, with the state environment
 * closed. */
int store_checkpoint_restore(store_t *self, uint64_t first, uint64_t last,
                             bool oldest, bool may_consume, uint64_t *seq, char *name,
                             size_t namelen, bool *consumed, char *err, size_t errlen);

/* The state environment's directory: dir/state_name, or state_name when
 * that is absolute. (store_env.c) */
void store_state_path(const store_t *self, char *out, size_t cap);

/* rm -rf of one of the store's environment directories (flat: LMDB's
 * files). 0, or -1 with errno. (store_env.c) */
int store_remove_env_dir(const char *path);

/* Make lead_id the current lead of the group, reading its pending
 * deadlines from its record (none for a new lead). Returns 0 or an LMDB
 * error. Owner thread, inside a group. (store_lead.c) */
int store_cur_load(store_t *self, const char *lead_id);

/* End the group's open block of alerts: written into the group before
 * its commit (commit true), or dropped when it aborts. (store_alerts.c) */
void store_alerts_group_end(store_t *self, bool commit);

#endif
