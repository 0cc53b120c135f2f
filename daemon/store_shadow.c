/* store_shadow.c: the state environments beside the live one (see
 * store.h): a shadow draft's and a partition's, each over the live
 * store's log; adopting a shadow's state as the live one; removing one.
 * Opening and closing the store itself is store_env.c's. */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fnv.h"
#include "log.h"
#include "xalloc.h"

/* Open a shadow store (see store.h): live's log, a state of its own at
 * dir/state_name, recovered by starting afresh (s_recover's checkpoints
 * are the live state's). */
/* store_open_shadow, or with ckpt_root (not NULL: a partition's) a state
 * that has checkpoints of its own there: when it may be torn, it is
 * recovered from its newest checkpoint the log covers and the log after
 * it (store_recover), as the primary's is. */
static store_t *s_open_beside(store_t *live, const char *state_name, bool fresh,
                              const char *ckpt_root, size_t map_size, char *err,
                              size_t errlen)
{
    store_t *self = xcalloc(1, sizeof *self);
    char path[4096];
    self->lock_fd = -1;
    self->ckpt_wake = -1;
    self->dir = xstrdup(live->dir);
    self->ckpt_root = ckpt_root ? xstrdup(ckpt_root) : NULL;
    self->state_name = xstrdup(state_name);
    self->owner = pthread_self();
    self->n_parts = 1;
    self->parts[0] = self;
    self->log_of = live;
    self->log_env = live->log_env;
    self->events = live->events;
    self->first_seq = live->first_seq;
    self->last_seq = live->last_seq;
    snprintf(self->recovery, sizeof self->recovery, "clean");
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
    /* A partition's checkpoints are copied as the primary's are. */
    if (ckpt_root && (self->ckpt_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    store_state_path(self, path, sizeof path);
    if (!fresh && store_marker_torn(self) && ckpt_root) {
        char why[4200];
        snprintf(why, sizeof why, "the machine went down while funneld had %s open (or "
                 "its marker is missing): its pages may be torn", path);
        if (store_recover(self, why, err, errlen) == -1)
            goto fail;
    } else if (!fresh && store_marker_torn(self)) {
        log_warn("[store] %s may be torn (the machine went down with it open): "
                 "rebuilding it from the log", path);
        fresh = true;
    }
    for (int attempt = 0;; attempt++) {
        if (fresh) {
            if (self->first_seq > 1) {
                snprintf(err, errlen,
                         "log_retention dropped the events before %llu: %s cannot be "
                         "built from the log", (unsigned long long)self->first_seq, path);
                goto fail;
            }
            if (store_remove_env_dir(path) == -1) {
                snprintf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
                goto fail;
            }
            self->applied_seq = 0;
            self->watermark_ms = 0;
            self->alert_seq = self->alerts_floor = 0;
            memset(&self->stats, 0, sizeof self->stats);
            self->fresh = true;
        }
        if (store_state_env_open(self, path, map_size, err, errlen) == 0 &&
            store_open_state_dbs(self, err, errlen) == 0)
            break;
        if (self->state_env) {
            mdb_env_close(self->state_env);
            self->state_env = NULL;
        }
        if (attempt > 0 || fresh)
            goto fail;
        log_warn("[store] %s: rebuilding it from the log", err);
        fresh = true;
    }
    int rc = store_marker_write(self, true);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write the marker of %s: %s", path, strerror(rc));
        goto fail;
    }
    self->marked_open = true;
    self->state_map = store_env_map_size(self->state_env);
    store_stats_publish(self);
    return self;

fail:
    store_destroy(&self);
    return NULL;
}

store_t *store_open_shadow(store_t *live, const char *state_name, bool fresh,
                           size_t map_size, char *err, size_t errlen)
{
    return s_open_beside(live, state_name, fresh, NULL, map_size, err, errlen);
}

bool store_fresh(const store_t *self) { return self->fresh; }

store_t *store_open_part(store_t *primary, const char *state_name, bool fresh,
                         size_t map_size, char *err, size_t errlen)
{
    if (primary->log_of != NULL || primary->n_parts >= STORE_PARTS_MAX) {
        snprintf(err, errlen, "at most %d partitions, each of a store with its own log",
                 STORE_PARTS_MAX);
        return NULL;
    }
    char root[4200];
    snprintf(root, sizeof root, "%s/%s.ckpt", primary->dir, state_name);
    store_t *self = s_open_beside(primary, state_name, fresh, root, map_size, err, errlen);
    if (self == NULL)
        return NULL;
    self->primary = primary;
    self->alert_by_log = primary->alert_by_log = true;
    self->part_index = primary->n_parts;
    primary->parts[primary->n_parts++] = self;
    log_info("[store] opened partition %u's state %s: %llu applied, map %zu MiB",
             self->part_index, state_name, (unsigned long long)self->applied_seq,
             self->state_map >> 20);
    return self;
}

unsigned store_parts(const store_t *primary) { return primary->n_parts; }

store_t *store_part(store_t *primary, unsigned i)
{
    return i < primary->n_parts ? primary->parts[i] : NULL;
}

unsigned store_part_index(const store_t *primary, const char *lead_id)
{
    if (primary->n_parts <= 1)
        return 0;
    return fnv1a32(lead_id, strlen(lead_id)) % primary->n_parts;
}

store_t *store_part_of_lead(const store_t *self, const char *lead_id)
{
    return self->parts[store_part_index(self, lead_id)];
}

store_t *store_log_store(store_t *self)
{
    return self->log_of ? self->log_of : self;
}

/* rename(a, b) of dir/a to dir/b; ENOENT is fine when optional. */
static int s_rename_in(const char *dir, const char *a, const char *b, bool optional)
{
    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "%s/%s", dir, a);
    snprintf(pb, sizeof pb, "%s/%s", dir, b);
    if (rename(pa, pb) == 0 || (optional && errno == ENOENT))
        return 0;
    return -1;
}

int store_adopt_state(store_t *self, const char *from, const char *old_name, char *err,
                      size_t errlen)
{
    char path[4096], a[300], b[300];
    int rc = -1;
    if (self->state_name[0] == '/' || self->log_txn || self->state_txn || self->look_txn) {
        snprintf(err, errlen, "the state cannot be replaced now");
        return -1;
    }
    pthread_rwlock_wrlock(&self->state_grow_lock);
    uint64_t applied = self->applied_seq;
    store_stats_t stats = self->stats;
    int sync = mdb_env_sync(self->state_env, 1);
    mdb_env_close(self->state_env);
    self->state_env = NULL;
    if (sync == 0 && self->marked_open)
        store_marker_write(self, false);
    if (s_rename_in(self->dir, self->state_name, old_name, false) == -1) {
        snprintf(err, errlen, "cannot rename %s/%s to %s: %s", self->dir, self->state_name,
                 old_name, strerror(errno));
        goto reopen;
    }
    snprintf(a, sizeof a, "%s.mark", self->state_name);
    snprintf(b, sizeof b, "%s.mark", old_name);
    s_rename_in(self->dir, a, b, true);
    snprintf(b, sizeof b, "%s/" STORE_CKPT_DIR, old_name);
    if (s_rename_in(self->dir, STORE_CKPT_DIR, b, true) == -1)
        log_warn("[store] cannot move %s/%s into %s: %s (they hold the old state)",
                 self->dir, STORE_CKPT_DIR, old_name, strerror(errno));
    if (s_rename_in(self->dir, from, self->state_name, false) == -1) {
        snprintf(err, errlen, "cannot rename %s/%s to %s: %s", self->dir, from,
                 self->state_name, strerror(errno));
        /* Put the old one back. */
        s_rename_in(self->dir, old_name, self->state_name, false);
        snprintf(a, sizeof a, "%s.mark", old_name);
        snprintf(b, sizeof b, "%s.mark", self->state_name);
        s_rename_in(self->dir, a, b, true);
        goto reopen;
    }
    snprintf(a, sizeof a, "%s.mark", from);
    snprintf(b, sizeof b, "%s.mark", self->state_name);
    s_rename_in(self->dir, a, b, true);
    rc = 0;
reopen:
    store_state_path(self, path, sizeof path);
    char oerr[1024];
    if (store_state_env_open(self, path, self->state_map ? self->state_map : (256u << 20),
                             oerr, sizeof oerr) != 0 ||
        store_open_state_dbs(self, oerr, sizeof oerr) != 0) {
        /* Nothing sensible can go on without a state. */
        log_err("[store] cannot open the state %s again: %s", path, oerr);
        abort();
    }
    if (rc == 0 && self->applied_seq != applied)
        log_warn("[store] the adopted state applied %llu, the old one %llu",
                 (unsigned long long)self->applied_seq, (unsigned long long)applied);
    self->stats = stats;
    self->ablk_valid = self->ablk_dirty = false;
    self->cur_valid = self->cur_dirty = false;
    self->state_map = store_env_map_size(self->state_env);
    store_marker_write(self, true);
    self->marked_open = true;
    pthread_mutex_lock(&self->pub_lock);
    self->pub_applied_seq = self->applied_seq;
    self->pub_alert_seq = self->alert_seq;
    self->pub_alerts_floor = self->alerts_floor;
    pthread_cond_broadcast(&self->pub_cond);
    pthread_mutex_unlock(&self->pub_lock);
    pthread_rwlock_unlock(&self->state_grow_lock);
    return rc;
}

int store_remove_state(const char *dir, const char *state_name)
{
    char path[4096], mark[4200];
    snprintf(path, sizeof path, "%s/%s", dir, state_name);
    snprintf(mark, sizeof mark, "%s.mark", path);
    if (store_remove_env_dir(path) == -1)
        return -1;
    if (unlink(mark) == -1 && errno != ENOENT)
        return -1;
    return 0;
}

