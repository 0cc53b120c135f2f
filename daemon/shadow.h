/* shadow.h: shadow drafts, draft definitions applied to the live stream
 * beside the live definition (config key `shadow`, cfg.h).
 *
 * Each draft has a state of its own, state_dir/state.shadow-NAME (a shadow
 * store over the live event log, store_open_shadow), and a partition
 * thread of its own (partition.h) that applies every logged event to it
 * through an applier under the draft's definition (ingest.h): the same
 * handlers and the same code as the live state, on event time as the
 * definition lab runs (so a draft's numbers are those of a backtest of it
 * over the same events). A draft added to the config is rebuilt from the
 * whole log, its progress logged; a draft dropped from it, or whose file
 * changed, is stopped and its state deleted (at start-up and on SIGHUP).
 * Its alerts are published on shadow.<name>.<topic>.
 *
 * A draft's thread reads the log on its own and is woken after each log
 * commit: the loop never waits for it, and nothing of it delays an Ack. A
 * draft that falls behind (being rebuilt, or slower than ingest) only
 * answers its queries later: they wait for it as for the live state, up
 * to QUERY_APPLIED_WAIT_MS, and its alerts come out later.
 *
 * Threading: shadows_new/configure/destroy and the publication of alerts
 * on the loop thread; the set of drafts changes only with the caller's
 * definition lock held exclusively, and shadows_count/get/find are for
 * threads that hold it shared (the queries).
 */
#ifndef FUNNELD_SHADOW_H
#define FUNNELD_SHADOW_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "cfg.h"
#include "defn.h"
#include "hnd.h"
#include "ingest.h"
#include "store.h"

struct event_base;

typedef struct shadows shadows_t;

/* No drafts yet, over the live store, applying with pipeline (opts: the
 * live ingest's, for the clock and retention), publishing on alerts (may
 * be NULL). Everything borrowed must outlive the set. NULL on failure
 * (logged). Caller owns it: shadows_destroy(), before the store. */
shadows_t *shadows_new(struct event_base *base, store_t *live, bus_sock_t *alerts,
                       const hnd_t *const *pipeline, const ingest_opts_t *opts,
                       size_t map_size);

/* Make the drafts those of list: a new one (or one whose file changed) is
 * opened, rebuilt from the log in its thread; one no longer listed is
 * stopped and its state deleted, and so is every other
 * state.shadow-NAME directory in state_dir. The set is swapped with lock
 * held exclusively. A draft whose file cannot be loaded or whose state
 * cannot be opened is left out (logged), the others go on. Returns how
 * many drafts run. Loop thread. */
size_t shadows_configure(shadows_t *self, const cfg_shadow_t *list, unsigned n,
                         pthread_rwlock_t *lock);

/* Wake the drafts' threads: the log was committed further. Loop thread
 * (ingest_on_committed). */
void shadows_notify(void *self);

/* The lowest log sequence every draft has applied (UINT64_MAX: no
 * draft): log retention keeps what comes after it, so that a draft that
 * falls behind still finds its next entries in the log. Loop thread. */
uint64_t shadows_applied_floor(void *self);

/* A draft as queries see it (borrowed, valid while the definition lock
 * is held). */
typedef struct {
    const char *name;
    const char *path;          /* its definition file */
    store_t *store;
    const defn_t *defn;
    bool rebuilding;           /* not caught up with the log once yet */
    uint64_t applied_seq;
    uint64_t log_seq;
} shadow_view_t;

/* The drafts: how many; the i-th; the one named (1, or 0 when there is
 * none). With the definition lock held shared. */
size_t shadows_count(const shadows_t *self);
void shadows_get(const shadows_t *self, size_t i, shadow_view_t *out);
int shadows_find(const shadows_t *self, const char *name, shadow_view_t *out);

/* -- promotion (funnelctl definition promote) ------------------------------ */

/* What a promotion did. */
typedef struct {
    char definition[160];      /* "name (hash)" of the definition now live */
    char path[1024];           /* the definition file it replaced */
    char old_state[64];        /* where the old live state was kept */
    uint64_t applied_seq;      /* where both states stood */
    uint64_t paused_ms;        /* how long ingest waited */
    char warning[512];         /* the draft still in the config's list, or "" */
} shadow_promoted_t;

/* The promotion itself (main.c's), run on the loop thread for
 * shadows_promote: 0 and *out, or -1 with err. */
typedef int shadows_promote_fn(void *arg, const char *name, shadow_promoted_t *out,
                               char *err, size_t errlen);
void shadows_set_promoter(shadows_t *self, shadows_promote_fn *fn, void *arg);

/* Ask the loop thread to promote the draft name and wait for it (at most
 * wait_ms; it goes on if the wait ends first, and its outcome is logged).
 * Any thread but the loop, without the definition lock. Returns 0 and
 * *out, or -1 with err (another promotion under way, the promoter's
 * reason, the wait over). */
int shadows_promote(shadows_t *self, const char *name, int wait_ms, shadow_promoted_t *out,
                    char *err, size_t errlen);

/* Take the draft name out of the set (lock held exclusively meanwhile),
 * its thread stopped and its store closed, its state directory kept; its
 * definition is handed over in *defn (caller owns it). Returns 0, or -1
 * when there is no such draft. Loop thread. */
int shadows_detach(shadows_t *self, const char *name, pthread_rwlock_t *lock, defn_t **defn);

/* Remember that the draft name, of definition hash, was promoted: a
 * configuration that still lists it with a file of that hash does not run
 * it again as a draft (shadows_configure warns instead), until funneld
 * restarts. Loop thread. */
void shadows_note_promoted(shadows_t *self, const char *name, const char *hash);

/* Stop every draft's thread (what it applied is kept: the next start goes
 * on from there) and free. Accepts NULL; sets *self_p to NULL. */
void shadows_destroy(shadows_t **self_p);

#endif
