/* store.h: funneld's durable state, in LMDB. The only module that includes
 * <lmdb.h>.
 *
 * Two environments in the state directory:
 *
 *   log/    the event log: "events" (u64 big-endian sequence -> the
 *           sequence of the same lead's previous event, then the Event
 *           bytes), written with MDB_APPEND and fsync'd at every group
 *           commit. An Ack is sent only once the log commit is durable.
 *           Appends are sequential, so the durable part of a commit is
 *           cheap; the per-lead back links make each lead's timeline a
 *           chain through the log, so no timeline index is written at
 *           random places.
 *   state/  what the log implies: "leads" (lead id -> the sequence of its
 *           last event, its pending deadlines, then the Lead bytes; and,
 *           for idempotency, lead id NUL event id -> the event's sequence,
 *           beside the lead's record, so an event dirties one random page
 *           of the state, not two), "aggregates" (report counter -> i64
 *           BE), "deadlines", "marks", "alerts" (alert_seq -> the
 *           stored alerts, see store_alert_reserve) and "meta" (schema
 *           version, applied sequence, last alert sequence and retention
 *           floor, daemon counters, boot id and clean-close mark). Committed in the same group as the log but
 *           never fsync'd while running (MDB_NOSYNC): a killed
 *           process loses nothing (the page cache has it all) and the state
 *           is brought up to date by replaying the log from the applied
 *           sequence; after the machine itself went down with the state
 *           open (another boot id, no clean-close mark), the state is
 *           rebuilt from the log. A clean close flushes it and marks it.
 *
 * A group commit is one write transaction in each environment. Errors are
 * sticky: the first failure inside a group turns every later call into a
 * no-op, and store_group_commit() reports it, so callers check once.
 *
 * Threading: groups, and every function that is not a read, belong to the
 * thread that opened the store (the loop thread). Reads (store_read_*)
 * may run in other threads too, concurrently with a group: each thread
 * has its own snapshot (LMDB readers never wait for the writer), and
 * growing the maps waits for the snapshots open in other threads.
 * Pointers returned by the store are borrowed and valid until the calling
 * thread's next store call.
 */
#ifndef FUNNELD_STORE_H
#define FUNNELD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store_t;

/* Errors across this module's API. */
enum {
    STORE_OK = 0,
    STORE_ERR = -1,     /* I/O or LMDB error: logged; the group is aborted */
    STORE_EFULL = -2,   /* the map is full: grow with store_grow(), retry */
    STORE_ESTALE = -3,  /* the log committed but the state did not: replay
                           the log from store_applied_seq() */
    STORE_ETXNFULL = -4, /* the group dirtied more pages than one LMDB
                            transaction may: redo it in smaller groups */
    STORE_EAGAIN = -5,  /* a checkpoint gave way to the state's map
                           growing: grow ahead and take it again */
};

/* Counters persisted with the state (the daemon's "stats"). */
typedef struct {
    uint64_t received;
    uint64_t applied;
    uint64_t duplicates;
    uint64_t rejected;
    uint64_t commits;
    uint64_t alerts;
    uint64_t gaps;
    uint64_t stream_messages;
    uint64_t deadlines;      /* deadlines fired (logged as $deadline) */
} store_stats_t;

/* Open (creating if needed) the store in dir, with an initial map size per
 * environment (grown on demand). Takes an exclusive lock on dir: a second
 * daemon on the same directory gets NULL and a clear message in err.
 * Caller owns the result: store_destroy(). */
store_t *store_open(const char *dir, size_t map_size, char *err, size_t errlen);

/* Like store_open, with the state environment in dir/state_name instead of
 * dir/state (state_name may also be an absolute path: --rebuild-dir);
 * when fresh, an existing dir/state_name is deleted first (a rebuild from
 * the log starts from nothing, or, when log retention dropped the log's
 * first entries, from the oldest checkpoint that the log covers: see
 * store_recovery()). */
store_t *store_open_state(const char *dir, const char *state_name, bool fresh,
                          size_t map_size, char *err, size_t errlen);

/* Whether the state environments opened from now on are written through
 * their maps (MDB_WRITEMAP, the default; see store_env.c) or with
 * write(2) (funneld --rebuild). Before any store is opened, one thread. */
void store_writemap(bool on);

/* A shadow store: a state environment of its own, dir/state_name of
 * live's directory, over live's event log (borrowed: live must outlive
 * it). It is written like a split store's state side (store_split_begin,
 * store_state_*, from a partition thread) and read like any store; its
 * log is live's: store_read_log, store_read_timeline and
 * store_committed_seq are live's. Opened fresh (an existing state
 * removed first) when fresh, or when its marker says it may be torn, or
 * when it cannot be opened or does not fit the log; a fresh one starts
 * from nothing, which needs the whole log (NULL and err when log
 * retention dropped its first events). Caller owns the result:
 * store_destroy(), before live. Owner thread (live's). */
store_t *store_open_shadow(store_t *live, const char *state_name, bool fresh,
                           size_t map_size, char *err, size_t errlen);

/* Make the state environment dir/from (a shadow store's, closed) this
 * store's state, as it is: the current state is closed and renamed to
 * dir/old_name (its marker and its checkpoints go with it, into
 * old_name.mark and old_name/checkpoints), from is renamed to the state
 * and opened in its place. The daemon counters (store_stats) stay this
 * store's; the applied sequence, watermark and stored alerts are from's.
 * Readers in other threads are waited for (the state's map lock); none
 * may begin meanwhile. Owner thread, no group (nor, split, any state
 * group: the partition held) open, and from applied exactly what this
 * state applied. Returns 0, or -1 with err (the state as before when the
 * first rename failed). */
int store_adopt_state(store_t *self, const char *from, const char *old_name, char *err,
                      size_t errlen);

/* Delete the state environment dir/state_name and its marker (a shadow
 * store's, once dropped). Not while it is open. Returns 0, or -1 with
 * errno. */
int store_remove_state(const char *dir, const char *state_name);

/* Whether the store was opened fresh (or found torn and started afresh):
 * a shadow store being rebuilt from the log. */
bool store_fresh(const store_t *self);

/* Mark the log entry seq as applied without writing anything for it (an
 * entry a shadow passes over), inside a state group. */
void store_state_skip(store_t *self, uint64_t seq);

/* -- partitions ----------------------------------------------------------
 * With P > 1 partitions the state is P environments, one per partition,
 * each holding the leads whose id hashes to it (FNV-1a 32 of the id mod
 * P, as partition_of()) and the counters, deadlines, marks and alerts
 * their events raised; the log stays one. The store opened with
 * store_open_state() is the primary (its state is partition 0's); each
 * other partition's is a store opened with store_open_part(), which
 * shares the primary's log. A partition thread applies to its own store
 * (store_split_begin on it); the primary's owner logs (store_log_*: a
 * claim looks in the lead's partition), and reads begun on the primary
 * see every partition: a lead is read in its own, counters are added up,
 * the next deadline is the earliest, the watermark the largest;
 * store_wait_parts_applied() waits for every partition. */
#define STORE_PARTS_MAX 64

/* Open the primary's next partition's state (partition 1, 2, ... in
 * the order of the calls) in dir/state_name: a shadow store of primary
 * (store_open_shadow: its log is primary's; rebuilt from the log when
 * fresh; recovered from its own checkpoints, store_ckpt_root(), and the
 * log after them when torn) that the primary lists among its partitions. Returns
 * the store (the caller destroys it before the primary, or
 * store_destroy() of the primary does), or NULL and err. Owner thread of the primary, before anything is logged split. */
store_t *store_open_part(store_t *primary, const char *state_name, bool fresh,
                         size_t map_size, char *err, size_t errlen);

/* The partitions of the primary (1 when it has none), partition i's
 * store (0: the primary itself), and the partition holding lead_id. */
unsigned store_parts(const store_t *primary);
store_t *store_part(store_t *primary, unsigned i);
unsigned store_part_index(const store_t *primary, const char *lead_id);

/* Cluster mode: whether partition i's state is counted. A partition not
 * counted (this instance no longer owns its cluster partition) keeps its
 * state and goes on applying what was logged of it, but the merged reads
 * begun on the primary leave it out: counters, marks, the leads listed
 * and a lead read in it, the state's stats (applied, leads) and the
 * deadlines due or next. Every partition is counted unless set. Each
 * read snapshot sees the setting of its store_read_begin(). Any thread. */
void store_set_counted(store_t *primary, unsigned i, bool counted);
bool store_counted(const store_t *primary, unsigned i);

/* The partition count the state (a primary's) was built with, as
 * recorded by store_set_parts_recorded (1 when never recorded), into
 * *out; record it (commits at once; no group nor read open). Return 0 or
 * STORE_ERR. Owner thread. */
int store_parts_recorded(store_t *self, unsigned *out);
int store_set_parts_recorded(store_t *self, unsigned n);

/* Delete every checkpoint under root (store_ckpt_root: a state rebuilt
 * in another layout must not be recovered from them). Returns how many.
 * Any thread. */
int store_checkpoints_drop(const char *root);

/* The lowest applied sequence published among the primary's partitions
 * (store_applied_published of each). Any thread. */
uint64_t store_parts_applied_min(store_t *primary);

/* Whether a checkpoint holds the writer of any of the primary's
 * partitions now, while it copies that state (see store_checkpoint):
 * intake then lets the partitions lag further behind the log. Any
 * thread. */
bool store_parts_held(store_t *primary);

/* A partition's view of the others' committed counters, for the
 * funnel-wide check: begin (a snapshot of every other partition's state;
 * STORE_OK or STORE_ERR), then store_counter_get_all(key) is this
 * partition's store_counter_get() (its open group's view) plus the
 * others' values in the snapshots; end (idempotent). The partition's
 * state owner: begin before its state group (the others' map locks are
 * taken before its own write transaction) and end after it; keep it to
 * one group (the others' maps cannot grow meanwhile). */
int store_peers_begin(store_t *self);
bool store_peers_open(const store_t *self);
int64_t store_counter_get_all(store_t *self, const char *key);
void store_peers_end(store_t *self);

/* The directory whose checkpoints/ holds this store's checkpoints (the
 * state_dir of store_checkpoint_list and the other checkpoint calls): the
 * data directory (store_dir) for the primary and shadows; for partition i
 * beyond the primary, <dir>/state.p<i>.ckpt, so that each partition has
 * checkpoints of its own, each at its own applied sequence. Borrowed. */
const char *store_ckpt_root(const store_t *self);

/* The store whose log this one reads and writes (itself, or the store
 * a shadow or partition follows). */
store_t *store_log_store(store_t *self);

/* Differences between this store's state and the state environment in
 * dir/other_name, per database (leads, event ids, counters, and the
 * applied sequence). */
typedef struct {
    uint64_t compared;   /* records looked at */
    uint64_t differ;     /* present in both, different bytes */
    uint64_t missing;    /* only in the other state */
    uint64_t extra;      /* only in this state */
} store_diff_t;

typedef struct {
    store_diff_t leads;       /* incl. each lead's timeline head */
    store_diff_t event_ids;   /* kept with the leads, compared apart */
    store_diff_t counters;
    store_diff_t deadlines;   /* both deadline databases */
    store_diff_t marks;
    store_diff_t alerts;      /* those above both states' retention floor */
    bool applied_seq_differs;
    bool alert_seq_differs;   /* the last alert sequence */
    char first_difference[256]; /* a human-readable example, "" if none */
} store_compare_t;

/* Compare; returns 0 (and fills *out, all zero when identical) or
 * STORE_ERR. Must not be called while a group or read is open. */
int store_compare_state(store_t *self, const char *other_name,
                        store_compare_t *out);

/* The directory of the store. Borrowed. */
const char *store_dir(const store_t *self);

/* Flush the state, close both environments, release the lock. Accepts
 * NULL; sets *self_p to NULL. */
void store_destroy(store_t **self_p);

/* Sequence of the last event in the log (0 when empty). */
uint64_t store_last_seq(const store_t *self);
/* Sequence of the last event applied to the state. */
uint64_t store_applied_seq(const store_t *self);
/* The persisted counters; the caller updates them between group_begin and
 * group_commit and they are written with the group. Those only the loop
 * counts as it logs and acknowledges (received, duplicates, rejected,
 * commits, gaps, stream_messages) are written with the log's commit too,
 * so that after a crash they are what was acknowledged, whatever the state
 * had applied; the state's (applied, deadlines, alerts) are counted again
 * by the replay. Counts changed outside a group (a message refused whole)
 * are written with the next one. */
store_stats_t *store_stats(store_t *self);

/* The last log sequence whose event the counters count as received (as
 * the log's last commit recorded them; for a log written before funneld
 * kept them there, the state's applied sequence): a replay counts as
 * received only the events after it, and moves it up to each one it
 * counts (store_log_counted_to; a group aborted puts it back). Until it
 * reaches the log's end a group does not write the counters with the
 * log. Owner thread. */
uint64_t store_log_counted(const store_t *self);
void store_log_counted_to(store_t *self, uint64_t seq);

/* This store only reads the log (a rebuild): its counters are its own,
 * never written with the log's commits. Right after opening it. */
void store_log_read_only(store_t *self);

/* Make the counters as they are now, and the last sequence, visible to
 * store_stats_read() (done by every group commit; call it after changing
 * them outside a group). */
void store_stats_publish(store_t *self);

/* A copy of the counters and the last sequence as last published. Any
 * thread. */
void store_stats_read(store_t *self, store_stats_t *out, uint64_t *last_seq);

/* -- group commit ------------------------------------------------------ */

/* Begin a group. Returns 0 or STORE_ERR. */
int store_group_begin(store_t *self);

/* Event ids are those of one lead: a resent event carries the same lead id
 * and id, so that pair is what makes an event a duplicate. */

/* Whether event id of lead_id has been applied: 1 yes, 0 no, STORE_ERR on
 * error (sticky). Sees the events added earlier in the same group. */
int store_id_seen(store_t *self, const char *lead_id, const char *id);

/* Index event id of lead_id for the next event to be appended, unless it
 * is there: 1 claimed (a new event: append it with store_event_add(...,
 * true, ...), or give the id back with store_id_release()), 0 already
 * applied (a duplicate), <0 on error (sticky). Cheaper than store_id_seen()
 * followed by an append that indexes the id. */
int store_id_claim(store_t *self, const char *lead_id, const char *id);
void store_id_release(store_t *self, const char *lead_id, const char *id);

/* The stored record of lead_id: 1 and *buf, *len set (borrowed: valid until
 * the next store call) and *last_seq (if not NULL) the sequence of its
 * last event; 0 when the lead is unknown, <0 on error. */
int store_lead_get(store_t *self, const char *lead_id, const void **buf,
                   size_t *len, uint64_t *last_seq);

/* Write the record of lead_id, whose last event is last_seq. Copies buf. */
void store_lead_put(store_t *self, const char *lead_id, uint64_t last_seq,
                    const void *buf, size_t len);

/* Append a new event to the log (raw: its Event encoding, copied), linked
 * to prev_seq, the previous event of the same lead (0: none), and index
 * its id unless id_claimed (store_id_claim() did). Returns the event's
 * sequence, or 0 on error (sticky). */
uint64_t store_event_add(store_t *self, const char *lead_id, const char *id,
                         bool id_claimed,
                         uint64_t prev_seq, const void *raw, size_t len);

/* Index the id of an event that is already in the log at seq (replay). */
void store_event_replayed(store_t *self, const char *lead_id, const char *id,
                          uint64_t seq);

/* Deadlines: at most one per lead and kind (at most 8 kinds), ordered by
 * due time in "deadlines" (due_ms BE, lead id, NUL, kind), and listed in
 * the lead's record, so that replacing one needs no lookup: set and clear
 * them between store_lead_get() and store_lead_put() of that lead (or
 * before the put of a new one). Set replaces the lead's deadline of that
 * kind. Clear returns 1 (and its due time in *due_ms if not NULL) when
 * there was one, 0 when not, <0 on error. */
void store_deadline_set(store_t *self, const char *lead_id, const char *kind,
                        int64_t due_ms);
int store_deadline_clear(store_t *self, const char *lead_id, const char *kind,
                         int64_t *due_ms);

/* A deadline that fell due. */
typedef struct {
    char lead_id[129];
    char kind[16];
    int64_t due_ms;
} store_due_t;

/* Copy up to max deadlines due at or before now_ms into out, earliest
 * first (they stay stored: clear each when it is handled). In the open
 * group, or else in the read snapshot. Returns how many. */
size_t store_deadlines_due(store_t *self, int64_t now_ms, size_t max,
                           store_due_t *out);

/* Remove exactly this due deadline (both of its entries), whatever became
 * of its lead: for deadlines that can no longer be applied. */
void store_deadline_drop(store_t *self, const store_due_t *due);

/* Put lead_id in (on) or take it out of the named set ("marks": set, NUL,
 * lead id -> since_ms BE). */
void store_mark(store_t *self, const char *set, const char *lead_id, bool on,
                int64_t since_ms);

/* A report counter as the open group sees it: committed value plus the
 * group's pending delta (or, outside a group, in the read snapshot). */
int64_t store_counter_get(store_t *self, const char *key);

/* The event-time watermark (largest event time applied), kept with the
 * state; set only ever moves it forward, and it is saved with the group. */
int64_t store_watermark(const store_t *self);
void store_set_watermark(store_t *self, int64_t ms);

/* The definition the state was last applied with, as recorded by
 * store_set_definition() ("" when none), into out. Returns 0 or STORE_ERR.
 * Set commits at once; not while a group or a read is open. */
int store_definition(store_t *self, char *out, size_t cap);
int store_set_definition(store_t *self, const char *text);

/* Add delta to a report counter; summed in memory, written at commit.
 * The _h form takes the key's 32-bit FNV-1a hash, when the caller has it. */
void store_counter_add(store_t *self, const char *key, int64_t delta);
void store_counter_add_h(store_t *self, const char *key, uint32_t hash, int64_t delta);

/* Commit the group: the log durably (fsync), then the state. Returns
 * STORE_OK, STORE_EFULL (nothing committed: store_grow() and redo the
 * group), STORE_ETXNFULL (nothing committed: redo in smaller groups),
 * STORE_ESTALE (the log is durable but the state commit failed:
 * replay from store_applied_seq()) or STORE_ERR (nothing committed). */
int store_group_commit(store_t *self);

/* Abandon the group; nothing of it is kept. Safe to call when no group is
 * open. */
void store_group_abort(store_t *self);

/* Double the map of every environment that reported MDB_MAP_FULL. Must be
 * called with no group open. Returns 0 or STORE_ERR. */
int store_grow(store_t *self);

/* Flush the state environment to disk (it is committed without fsync;
 * store_destroy() flushes it too). Returns 0 or STORE_ERR. */
int store_sync(store_t *self);

/* -- stored alerts -----------------------------------------------------
 * The alerts raised by logged entries (events, fired deadlines) are kept
 * in the state, in the group of the entry that raised them, under an alert
 * sequence number: 1, 2, 3, ... in the order they are raised. The last
 * number is kept with the state, so a replay of the log from the applied
 * sequence, or a rebuild from nothing, numbers every alert as the first
 * time. Retention removes the oldest ones (store_alerts_trim) and moves
 * the floor: the alerts kept are always floor+1 .. store_alert_seq(). */

/* With partitions (store_open_part), alerts are numbered by the log
 * sequence of the entry that raises them: the k-th alert (k from 0) of
 * entry seq is seq * STORE_ALERTS_PER_ENTRY + k, unique and increasing
 * across partitions (an entry raises at most HND_ALERTS_MAX, 8). */
#define STORE_ALERTS_PER_ENTRY 16

/* The number the next alert stored in the open group gets, as an alert of
 * log entry log_seq: store_alert_seq() + 1 with one partition; with
 * partitions, numbered as above (the numbering moves on to the entry's
 * first number when it is the entry's first alert). Owner thread (the
 * state's), inside a group, before store_alert_reserve(). */
uint64_t store_alert_next(store_t *self, uint64_t log_seq);

/* The last alert sequence assigned (in the open group too), and the last
 * one removed by retention (0: none). Owner thread. */
uint64_t store_alert_seq(const store_t *self);
uint64_t store_alerts_floor(const store_t *self);

/* Store an alert under store_alert_seq() + 1 in the open group: its topic
 * (at most 255 bytes are kept, for filtering), stamp_ms (the time
 * retention measures; it must not decrease from one alert to the next)
 * and room for its encoding of len bytes, which the caller writes at the
 * returned address (borrowed: valid until the next store call) with that
 * number in it. Returns NULL on error (sticky); else *seq is the number.
 * Owner thread, inside a group. */
void *store_alert_reserve(store_t *self, const char *topic, int64_t stamp_ms,
                          size_t len, uint64_t *seq);

/* Remove, oldest first, at most max alerts stamped before before_ms (a
 * bounded step: call it once per group). Returns how many were removed.
 * Owner thread, inside a group. */
size_t store_alerts_trim(store_t *self, int64_t before_ms, size_t max);

/* The last alert sequence and the retention floor as of the last commit.
 * Any thread. */
void store_alerts_published(store_t *self, uint64_t *last, uint64_t *floor);

/* -- reads (queries, replay) --------------------------------------------
 * A read begins a snapshot of the last commit, in the calling thread, that
 * ends with store_read_end() in the same thread; keep it short (a map
 * cannot grow meanwhile), never across loop iterations. The owner thread
 * must not begin one while its group is open. */

int store_read_begin(store_t *self);
void store_read_end(store_t *self);


/* Like store_lead_get, in the read snapshot. */
int store_read_lead(store_t *self, const char *lead_id, const void **buf,
                    size_t *len);

/* The pending deadlines of lead_id's record in the read snapshot, at most
 * max of them into out: their number (0 for an unknown lead), or
 * STORE_ERR. */
typedef struct {
    char kind[16];
    int64_t due_ms;
} store_lead_deadline_t;
long store_read_lead_deadlines(store_t *self, const char *lead_id, store_lead_deadline_t *out,
                               size_t max);

/* Call fn(lead_id, id_len, buf, len, arg) for the stored leads in id
 * order (bytewise), with each lead's Lead bytes: ascending from the first
 * id after `after` (after_len bytes; exclusive; 0 bytes: from the first),
 * or with desc descending from the last id before it (0 bytes: from the
 * last). lead_id is NUL-terminated; it and buf are borrowed for the call.
 * fn returns 0 to go on, 1 to stop there. Returns the number of leads
 * visited, or STORE_ERR (logged). A lead's event ids, kept beside it,
 * are passed over without being read. */
typedef int store_lead_fn(const char *lead_id, size_t id_len, const void *buf,
                          size_t len, void *arg);
long store_read_leads(store_t *self, const char *after, size_t after_len, bool desc,
                      store_lead_fn *fn, void *arg);

/* The event-time watermark as of the snapshot (the largest event time
 * applied by the commits it sees; 0 when none). */
int64_t store_read_watermark(store_t *self);

/* Value of a report counter (0 when never written). */
int64_t store_read_counter(store_t *self, const char *key);

/* Call fn(set, lead_id, since_ms, arg) for every member of every set whose
 * name begins with prefix, in key order (strings borrowed for the call).
 * Returns the number visited, or STORE_ERR. */
typedef void store_mark_fn(const char *set, const char *lead_id,
                           int64_t since_ms, void *arg);
long store_read_marks(store_t *self, const char *prefix, store_mark_fn *fn,
                      void *arg);

/* The earliest pending deadline: 1 and *due_ms, 0 when none, or
 * STORE_ERR. */
int store_read_next_deadline(store_t *self, int64_t *due_ms);

/* Call fn(key, value, arg) for every report counter whose key begins with
 * prefix, in key order (key borrowed for the call). Returns the number of
 * counters visited, or STORE_ERR. */
typedef void store_counter_fn(const char *key, int64_t value, void *arg);
long store_read_counters(store_t *self, const char *prefix,
                         store_counter_fn *fn, void *arg);

/* Call fn for the newest `limit` events of lead_id (SIZE_MAX: all of its
 * chain), oldest first, with the event's sequence and its Event bytes
 * (borrowed for the call); the chain holds funneld's "$deadline" entries of
 * the lead too. Returns the number of events visited (0 for an unknown
 * lead), or STORE_ERR. */
typedef void store_event_fn(uint64_t seq, const void *raw, size_t len,
                            void *arg);
long store_read_timeline(store_t *self, const char *lead_id, size_t limit,
                         store_event_fn *fn, void *arg);

/* The same from the log entry head (a newer event of the lead than its
 * record's, store_read_lead_pending) back along the chain, at most limit
 * events but always every one after keep_above (the events a lead query
 * replays on top of the record): store_read_timeline is head 0 (the
 * record's), keep_above UINT64_MAX (none). */
long store_read_chain(store_t *self, const char *lead_id, uint64_t head, uint64_t keep_above,
                      size_t limit, store_event_fn *fn, void *arg);

/* Call fn for each log event with sequence >= from, at most max of them.
 * Returns the number visited, or STORE_ERR. */
long store_read_log(store_t *self, uint64_t from, size_t max,
                    store_event_fn *fn, void *arg);

/* The last alert sequence and the retention floor in the read snapshot.
 * Returns 0 or STORE_ERR. */
int store_read_alert_bounds(store_t *self, uint64_t *last, uint64_t *floor);

/* A stored alert as read (everything borrowed from the snapshot). */
typedef struct {
    uint64_t seq;
    int64_t stamp_ms;
    const char *topic;     /* topic_len bytes, not NUL-terminated */
    size_t topic_len;
    const void *buf;       /* the Alert encoding, len bytes */
    size_t len;
} store_alert_t;

/* Call fn for each stored alert with a sequence above `after`, in order,
 * until fn returns non-zero. Returns the number of records visited, or
 * STORE_ERR. */
typedef int store_alert_fn(const store_alert_t *a, void *arg);
long store_read_alerts(store_t *self, uint64_t after, store_alert_fn *fn, void *arg);

/* One environment's size: its map, the part of the map in use (up to the
 * last page written), of that part the pages on LMDB's free list (freed
 * by commits, not reused yet: a checkpoint's copy at full load leaves the
 * pages its snapshot held there, see README "Performance"), and the disk
 * blocks of its data file. */
typedef struct {
    uint64_t map_bytes;
    uint64_t used_bytes;
    uint64_t free_bytes;
    uint64_t file_bytes;
} store_usage_t;

/* The log's and the state's sizes (the state's: every partition's
 * together), for metrics. Any thread, in or outside a read snapshot (it
 * waits for a map growing meanwhile). Reading the free list takes a
 * short snapshot of each environment and reads every record of it. */
void store_usage(store_t *self, store_usage_t *log, store_usage_t *state);

/* Deadlines pending, in the read snapshot; STORE_ERR on an error. */
long store_read_deadlines_pending(store_t *self);

/* What the last store error was, one line ("" when none yet): for the
 * readiness check. Owner thread. Borrowed until the next store call. */
const char *store_last_error(const store_t *self);

/* -- split: the log on one thread, the state on another ------------------
 * Between store_split_begin() and store_split_end() the store is split
 * (partition.h): the owner (the loop thread) decodes nothing of the state
 * but appends to the log in log groups (store_log_*), fsync'd at each
 * commit, and a state owner (a partition thread) applies what was logged
 * to the state in state groups (store_state_*; inside them every state
 * call above works as in a group: store_lead_get, store_event_replayed,
 * counters, deadlines, marks, alerts). The owner recognises duplicates and
 * each lead's previous event from a snapshot of the state taken at the
 * beginning of its log group and from an in-memory index of the events
 * it logged that the state had not applied then, so an event logged and
 * not yet applied is a duplicate when resent. The counters (store_stats())
 * are the calling side's: intake's on the owner, applying's on the state
 * owner; store_stats_read() adds them up; each log commit keeps the
 * owner's with the log, and the state persists them as of the log commit
 * it applied up to; opening takes the log's (see store_stats), so after a
 * crash they count what was acknowledged once, and the replay counts
 * again only what the state had not applied. */

/* Make the calling thread the state owner. Call with no group open, the
 * state up to date with the log (ingest_recover), before the owner logs
 * anything split; the owner must not touch the state side meanwhile. */
void store_split_begin(store_t *self);

/* The owner takes the state back (after the state owner stopped and was
 * joined). */
void store_split_end(store_t *self);

/* A log group (owner): begin (its snapshot of the state, STORE_OK or
 * STORE_ERR), claim (1: new, with the sequence of the lead's previous
 * logged event in *prev_seq; 0: a duplicate, logged or applied before;
 * with logged_only, only what is logged and not applied counts, for
 * funneld's own "$deadline" entries; <0 on error, sticky), append (its
 * sequence, or 0 on error, sticky; raw copied), commit (the log durably:
 * STORE_OK, STORE_EFULL: store_grow() and redo, STORE_ERR; published for
 * store_committed_seq()), abort. */
int store_log_begin(store_t *self);
int store_log_claim(store_t *self, const char *lead_id, const char *id, bool logged_only,
                    uint64_t *prev_seq);
uint64_t store_log_append(store_t *self, const char *lead_id, const char *id,
                          uint64_t prev_seq, const void *raw, size_t len);
int store_log_commit(store_t *self);
void store_log_abort(store_t *self);

/* Events in the owner's index of logged, not yet applied ones (as of its
 * last log group). Owner. */
size_t store_log_inflight(const store_t *self);

/* A state group (state owner): begin (STORE_OK or STORE_ERR), commit
 * (STORE_OK; STORE_EFULL: store_grow() and redo; STORE_ETXNFULL: redo
 * with fewer events; STORE_ERR; nothing is kept on an error), abort.
 * The applied sequence is published with the commit (store_wait_applied). */
int store_state_begin(store_t *self);
int store_state_commit(store_t *self);
void store_state_abort(store_t *self);

/* Around everything a state group does, its retries and the map's
 * growth included (state owner): enter waits while a checkpoint holds the
 * writer to copy the state (store_checkpoint: seconds at most), then
 * marks the writer busy until leave, which the checkpoint waits for
 * before it holds it. */
void store_state_enter(store_t *self);
void store_state_leave(store_t *self);

/* The log's last sequence as last committed, and the state's applied
 * sequence as last committed. Any thread. */
uint64_t store_committed_seq(store_t *self);
uint64_t store_applied_published(store_t *self);

/* Wait at most timeout_ms until the state has applied seq (at most 2 s
 * while the state is stalled). Returns 1 when it has, 0 on the timeout.
 * Any thread but the state owner. */
int store_wait_applied(store_t *self, uint64_t seq, int timeout_ms);

/* The same for every partition of the primary self (one bound for them
 * all): what a query waits for (read-your-writes). */
int store_wait_parts_applied(store_t *self, uint64_t seq, int timeout_ms);

/* What a query of one lead waits for: at most timeout_ms, until the
 * lead's partition has applied every event of that lead logged and
 * committed before the call (and perhaps a few of other leads; see
 * store_split.c), rather than the whole log. 1 when it has, 0 on the
 * timeout. Any thread but the owners. */
int store_wait_lead_applied(store_t *self, const char *lead_id, int timeout_ms);

/* What a lead query reads instead of waiting: whether lead_id's
 * partition, as of this thread's read snapshot, lacks events of the lead
 * that the log committed (logged and acknowledged, not applied yet).
 *   0  it lacks none (as far as the lead's slot tells: see store_split.c);
 *   1  it may: *head is the newest logged sequence of the lead's slot,
 *      visible in the snapshot, and *applied the partition's applied
 *      sequence; when the log entry at *head is lead_id's, the events
 *      after *applied along its chain (store_read_chain) are the missing
 *      ones, else another lead of the slot is (wait instead);
 *  -1  it cannot tell (no slots yet, a draft's store, a state being
 *      recovered): wait (store_wait_lead_applied) and read again.
 * In the read snapshot, any thread. */
int store_read_lead_pending(store_t *self, const char *lead_id, uint64_t *head,
                            uint64_t *applied);

/* Say that the state cannot commit (a store error being retried), or
 * that it commits again: while stalled, store_wait_applied() waits 2 s at
 * most. State owner. */
void store_set_stalled(store_t *self, bool stalled);

/* -- checkpoints and log retention ------------------------------------
 * A checkpoint is a consistent, fsync'd copy of the state environment
 * (page for page with the partition's writer held for the copy, else
 * compacted: see store_checkpoint.c), <state_dir>/checkpoints/ckpt-<seq>.mdb, where seq is the
 * applied sequence recorded in the copy's own meta (read from the same
 * snapshot): the state after every logged event up to seq. After the
 * LMDB data it carries a trailer (magic, seq, data length, XXH3-64 of the
 * data), so that a torn or truncated file is recognised before LMDB maps
 * it. When the state cannot be trusted at open (the machine went down
 * with it open, or LMDB cannot open it), store_open restores the newest
 * checkpoint that is intact and whose sequence the log covers, then the
 * log after it is replayed as after any crash; without one the state is
 * rebuilt from the whole log. Restoring verifies the checkpoint where it
 * lies (one sequential read) and renames it into the state, copying
 * nothing, unless it is the only way left to recover (log retention
 * dropped the log's first events and no older checkpoint the log covers
 * remains): then it is copied (copy_file_range). */

#define STORE_CKPT_DIR "checkpoints"
#define STORE_CKPT_MAX 64   /* listed at most */

typedef struct {
    uint64_t seq;          /* last log sequence the checkpoint covers */
    uint64_t bytes;        /* size of its file */
    int64_t created_ms;    /* its file's modification time */
    char name[48];         /* file name in <state_dir>/checkpoints */
    uint64_t held_ms;      /* how long its copy held the state's writer
                              (0: not held; written only by store_checkpoint) */
} store_ckpt_t;

/* Write a checkpoint of the state's last commit into
 * <state_dir>/checkpoints (a temporary file, fsync, rename, fsync of the
 * directory); *out describes it. A failure (disk full, I/O error) leaves
 * the live state untouched and no partial file behind: STORE_ERR and the
 * reason in err. STORE_EAGAIN (nothing left behind either) when the
 * state's map had to grow during the copy: the copy holds a read snapshot
 * of the state, which LMDB's remapping must wait for, so it gives way at
 * once; grow ahead (store_grow_ahead, store_state_ahead_ask) and call
 * again. The copy holds its snapshot only as long as the machine takes to
 * copy; a split store's writer waits between groups meanwhile, for
 * S_HOLD_MAX_MS at most (see store_checkpoint.c). Any thread but the
 * owner's. */
int store_checkpoint(store_t *self, store_ckpt_t *out, char *err, size_t errlen);

/* A lead's record as a checkpoint holds it. */
#define STORE_LEAD_DEADLINES 8
typedef struct {
    store_ckpt_t ckpt;        /* the checkpoint it was read from */
    void *buf;                /* the Lead bytes (malloc'd: free() it) */
    size_t len;
    size_t n_deadlines;       /* the lead's pending deadlines then */
    struct {
        char kind[16];
        int64_t due_ms;
    } deadlines[STORE_LEAD_DEADLINES];
} store_ckpt_lead_t;

/* Read lead_id's record from the oldest checkpoint in state_dir whose
 * sequence the log, which begins at first, covers (the one log retention
 * keeps the log for), opened read-only where it lies. Returns 1 (out
 * filled; the caller frees out->buf), 0 when that checkpoint does not
 * hold the lead or there is none (out->ckpt.seq 0 when none), STORE_ERR
 * when it cannot be read (logged). Any thread. */
int store_checkpoint_lead(const char *state_dir, uint64_t first, const char *lead_id,
                          store_ckpt_lead_t *out);

/* Make a store_checkpoint() under way (and any later one) give up at its
 * next slice, writing nothing more: for a stop that must not wait for a
 * copy. Any thread. */
void store_checkpoint_cancel(store_t *self);

/* The checkpoints in state_dir, newest (highest sequence) first, at most
 * max; by name only, not verified. Returns how many. Any thread. */
size_t store_checkpoint_list(const char *state_dir, store_ckpt_t *out, size_t max);

/* Delete all but the newest keep checkpoints (keep >= 1), and temporary
 * files of checkpoints that never finished. Returns how many were
 * deleted. Any thread. */
int store_checkpoint_prune(const char *state_dir, unsigned keep);

/* How this open brought the state back ("clean", "restored checkpoint
 * ..., replay from ...", "rebuilt from the log: ..."), for stats.
 * Borrowed; set while opening. */
const char *store_recovery(const store_t *self);

/* The name of the checkpoint this open's recovery renamed into the state
 * (restoring without copying it, see store_restore.c), which is no
 * longer on disk and should be replaced by a new one once the log is
 * replayed; "" when none. Borrowed; set while opening. */
const char *store_recovery_consumed(const store_t *self);

/* The log as last published: its first and last sequence (0, 0 when
 * empty) and the bytes its entries occupy (LMDB pages in use), and the
 * entries retention dropped since the store was opened. Any thread. */
void store_log_read(store_t *self, uint64_t *first, uint64_t *last, uint64_t *bytes,
                    uint64_t *dropped);

/* The first sequence in the log (1 unless retention dropped older
 * entries; 0 when empty). Owner thread. */
uint64_t store_first_seq(const store_t *self);

/* Drop the log entries from the first one up to and including upto, at
 * most max of them, in one small write transaction of the log. Returns
 * how many were dropped, or STORE_ERR. Owner thread, no group open. */
long store_log_drop(store_t *self, uint64_t upto, size_t max);

/* Grow the log's map while it is more than a quarter full, and the
 * state's while it is more than an eighth full, ahead of a checkpoint (so
 * that neither is likely to fill while the checkpoint holds the state's
 * snapshot; a map is address space, the files grow only as pages are
 * written). Split, the state's map is the state owner's: ask it with
 * store_state_ahead_ask. Returns 0 or STORE_ERR. Owner thread, no group
 * open. */
int store_grow_ahead(store_t *self);

/* Ask the thread that writes the state to grow the state's map as
 * store_grow_ahead does, at the beginning of its next state group (it
 * waits for the map's lock then, giving up once a copy begins); returns a ticket,
 * 0 when there is nothing to grow (the state uses at most an eighth of its
 * map) or the store is not split (store_grow_ahead grows it then).
 * store_state_ahead_served(ticket) tells when that is done (at once for 0),
 * or that the writer has nothing to apply (it serves nothing then, and
 * takes no fresh pages); the caller waits for it a bounded time. Any
 * thread. */
uint64_t store_state_ahead_ask(store_t *self);
bool store_state_ahead_served(store_t *self, uint64_t ticket);

#endif
