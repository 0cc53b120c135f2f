/* shadow.c: see shadow.h. */
#include "shadow.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "partition.h"
#include "xalloc.h"

#define S_PREFIX "state.shadow-"
#define S_PROGRESS_MS 2000
#define S_INDEX_BASE 100      /* partition numbers of the drafts, in logs */

typedef struct shadows shadows_t;

typedef struct {
    char name[CFG_SHADOW_NAME_MAX + 1];
    char *path;
    defn_t *defn;
    const defn_t *defn_ro;      /* what the applier reads (*defn_p) */
    store_t *store;
    ingest_t *applier;
    partition_t *part;
    shadows_t *set;

    /* The draft's thread's. */
    int64_t started_ms, logged_ms;
    bool rebuilding;            /* also read under hand_lock */

    pthread_mutex_t hand_lock;
    ingest_alert_t *hand;       /* applied, to publish */
    size_t n_hand, cap_hand;
} s_shadow_t;

struct shadows {
    struct event_base *base;
    store_t *live;
    bus_sock_t *alerts;
    const hnd_t *const *pipeline;
    ingest_opts_t opts;
    size_t map_size;
    s_shadow_t **v;
    size_t n;
    unsigned next_index;
    int hand_fd;
    struct event *ev_hand;

    /* A promotion asked for by a query thread (shadows_promote). */
    shadows_promote_fn *promote_fn;
    void *promote_arg;
    pthread_mutex_t p_lock;
    pthread_cond_t p_cond;
    int p_fd;
    struct event *ev_promote;
    enum { S_P_IDLE, S_P_ASKED, S_P_DONE } p_state;
    bool p_waited;             /* someone waits for the outcome */
    char p_name[CFG_SHADOW_NAME_MAX + 1];
    int p_rc;
    char p_err[512];
    shadow_promoted_t p_out;

    /* The drafts promoted since the start (shadows_note_promoted). */
    struct s_promoted {
        char name[CFG_SHADOW_NAME_MAX + 1];
        char hash[sizeof(((defn_t *)0)->hash)];
    } *promoted;
    size_t n_promoted;
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -- on a draft's thread ---------------------------------------------------- */

static int s_apply(void *arg, const partition_entry_t *e, size_t n)
{
    s_shadow_t *sh = arg;
    bool caught_up = n > 0 && e[n - 1].seq >= store_committed_seq(sh->store);
    return ingest_applier_apply(sh->applier, e, n, caught_up);
}

static void s_aborted(void *arg)
{
    s_shadow_t *sh = arg;
    ingest_applier_drop(sh->applier);
}

static void s_applied(void *arg, uint64_t applied_seq)
{
    s_shadow_t *sh = arg;
    pthread_mutex_lock(&sh->hand_lock);
    ingest_applier_take(sh->applier, &sh->hand, &sh->n_hand, &sh->cap_hand);
    bool rebuilding = sh->rebuilding;
    pthread_mutex_unlock(&sh->hand_lock);
    uint64_t one = 1;
    if (write(sh->set->hand_fd, &one, sizeof one) != sizeof one && errno != EAGAIN)
        log_err("[shadow %s] cannot wake the loop: %s", sh->name, strerror(errno));
    if (!rebuilding)
        return;
    uint64_t committed = store_committed_seq(sh->store);
    int64_t now = s_mono_ms();
    if (applied_seq >= committed) {
        log_info("[shadow %s] rebuilt from the log: %llu entries in %.1f s; following "
                 "the live stream", sh->name, (unsigned long long)applied_seq,
                 (double)(now - sh->started_ms) / 1000.0);
        pthread_mutex_lock(&sh->hand_lock);
        sh->rebuilding = false;
        pthread_mutex_unlock(&sh->hand_lock);
    } else if (now - sh->logged_ms >= S_PROGRESS_MS) {
        sh->logged_ms = now;
        log_info("[shadow %s] rebuilding from the log: %llu of %llu entries (%.0f%%)",
                 sh->name, (unsigned long long)applied_seq, (unsigned long long)committed,
                 100.0 * (double)applied_seq / (double)committed);
    }
}

/* -- on the loop thread ------------------------------------------------------ */

static void s_publish(shadows_t *self, s_shadow_t *sh)
{
    pthread_mutex_lock(&sh->hand_lock);
    ingest_alert_t *hand = sh->hand;
    size_t n = sh->n_hand;
    sh->hand = NULL;
    sh->n_hand = sh->cap_hand = 0;
    pthread_mutex_unlock(&sh->hand_lock);
    for (size_t i = 0; i < n; i++) {
        char topic[128];
        snprintf(topic, sizeof topic, "shadow.%s.%s", sh->name, hand[i].topic);
        if (self->alerts && bus_wanted(self->alerts, topic)) {
            const void *parts[2] = {topic, hand[i].buf};
            size_t lens[2] = {strlen(topic), hand[i].len};
            /* PUB drops at the high-water mark: never blocks. */
            (void)bus_send(self->alerts, parts, lens, 2);
        }
        free(hand[i].buf);
    }
    free(hand);
}

static void s_on_hand(evutil_socket_t fd, short what, void *arg)
{
    shadows_t *self = arg;
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof n) != sizeof n && errno != EAGAIN)
        log_err("[shadow] hand-over eventfd: %s", strerror(errno));
    if (self->alerts)
        bus_refresh(self->alerts);
    for (size_t i = 0; i < self->n; i++)
        s_publish(self, self->v[i]);
}

static void s_free(s_shadow_t **sh_p, bool remove)
{
    s_shadow_t *sh = *sh_p;
    if (sh == NULL)
        return;
    partition_destroy(&sh->part);
    ingest_destroy(&sh->applier);
    for (size_t i = 0; i < sh->n_hand; i++)
        free(sh->hand[i].buf);
    free(sh->hand);
    pthread_mutex_destroy(&sh->hand_lock);
    store_destroy(&sh->store);
    if (remove) {
        char state[64];
        snprintf(state, sizeof state, S_PREFIX "%s", sh->name);
        if (store_remove_state(store_dir(sh->set->live), state) == -1)
            log_err("[shadow %s] cannot delete %s/%s: %s", sh->name,
                    store_dir(sh->set->live), state, strerror(errno));
        else
            log_info("[shadow %s] dropped; its state %s deleted", sh->name, state);
    }
    defn_destroy(&sh->defn);
    free(sh->path);
    free(sh);
    *sh_p = NULL;
}

/* Open draft e and start its thread. NULL when it cannot run (logged). */
static s_shadow_t *s_open(shadows_t *self, const cfg_shadow_t *e, defn_t *defn)
{
    char err[1024], state[64];
    s_shadow_t *sh = xcalloc(1, sizeof *sh);
    snprintf(sh->name, sizeof sh->name, "%s", e->name);
    sh->path = xstrdup(e->definition);
    sh->defn = defn;
    sh->defn_ro = defn;
    sh->set = self;
    pthread_mutex_init(&sh->hand_lock, NULL);
    snprintf(state, sizeof state, S_PREFIX "%s", e->name);
    /* A draft whose definition changed starts from nothing: its state
     * records the definition it was applied with. */
    sh->store = store_open_shadow(self->live, state, false, self->map_size, err, sizeof err);
    char want[256], was[256] = "";
    snprintf(want, sizeof want, "%s %s", defn->hash, defn->name);
    if (sh->store && store_definition(sh->store, was, sizeof was) == STORE_OK &&
        strcmp(was, want) != 0 && store_applied_seq(sh->store) > 0) {
        log_info("[shadow %s] its definition changed (%s -> %s): rebuilding its state",
                 e->name, was, want);
        store_destroy(&sh->store);
        sh->store = store_open_shadow(self->live, state, true, self->map_size, err,
                                      sizeof err);
    }
    if (sh->store == NULL) {
        log_err("[shadow %s] not started: %s", e->name, err);
        goto fail;
    }
    store_set_definition(sh->store, want);
    sh->rebuilding = store_applied_seq(sh->store) < store_committed_seq(self->live);
    sh->started_ms = sh->logged_ms = s_mono_ms();
    if (sh->rebuilding)
        log_info("[shadow %s] definition \"%s\" (%s, %s): %s from the log, from %llu to "
                 "%llu", e->name, defn->name, e->definition, defn->hash,
                 store_fresh(sh->store) || store_applied_seq(sh->store) == 0
                     ? "rebuilding its state"
                     : "catching up",
                 (unsigned long long)store_applied_seq(sh->store) + 1,
                 (unsigned long long)store_committed_seq(self->live));
    else
        log_info("[shadow %s] definition \"%s\" (%s, %s): following the live stream",
                 e->name, defn->name, e->definition, defn->hash);
    sh->applier = ingest_applier_new(sh->store, &sh->defn_ro, self->pipeline, &self->opts);
    partition_ops_t ops = {.apply = s_apply, .aborted = s_aborted, .applied = s_applied};
    partition_opts_t popts = {
        .chunk_events = self->opts.group_max_events ? self->opts.group_max_events : 8192,
        .index = self->next_index++,
    };
    sh->part = partition_new(sh->store, &ops, sh, &popts);
    if (partition_start(sh->part) != 0)
        goto fail;
    partition_notify(sh->part);
    return sh;
fail:
    sh->defn = NULL; /* the caller's */
    s_free(&sh, false);
    return NULL;
}

static void s_on_promote(evutil_socket_t fd, short what, void *arg)
{
    shadows_t *self = arg;
    uint64_t n;
    (void)what;
    if (read(fd, &n, sizeof n) != sizeof n && errno != EAGAIN)
        log_err("[shadow] promotion eventfd: %s", strerror(errno));
    pthread_mutex_lock(&self->p_lock);
    bool asked = self->p_state == S_P_ASKED;
    char name[sizeof self->p_name];
    snprintf(name, sizeof name, "%s", self->p_name);
    pthread_mutex_unlock(&self->p_lock);
    if (!asked)
        return;
    shadow_promoted_t out;
    char err[512] = "";
    memset(&out, 0, sizeof out);
    int rc = self->promote_fn
                 ? self->promote_fn(self->promote_arg, name, &out, err, sizeof err)
                 : -1;
    if (self->promote_fn == NULL)
        snprintf(err, sizeof err, "promotion is not available");
    if (rc == 0)
        log_info("[shadow %s] promoted: definition %s is live (%s); the old state is %s",
                 name, out.definition, out.path, out.old_state);
    else
        log_err("[shadow %s] not promoted: %s", name, err);
    pthread_mutex_lock(&self->p_lock);
    self->p_rc = rc;
    snprintf(self->p_err, sizeof self->p_err, "%s", err);
    self->p_out = out;
    self->p_state = self->p_waited ? S_P_DONE : S_P_IDLE;
    pthread_cond_broadcast(&self->p_cond);
    pthread_mutex_unlock(&self->p_lock);
}

void shadows_set_promoter(shadows_t *self, shadows_promote_fn *fn, void *arg)
{
    self->promote_fn = fn;
    self->promote_arg = arg;
}

int shadows_promote(shadows_t *self, const char *name, int wait_ms, shadow_promoted_t *out,
                    char *err, size_t errlen)
{
    if (!cfg_shadow_name_ok(name)) {
        snprintf(err, errlen, "\"%s\" is not a shadow draft's name", name);
        return -1;
    }
    pthread_mutex_lock(&self->p_lock);
    if (self->p_state != S_P_IDLE) {
        pthread_mutex_unlock(&self->p_lock);
        snprintf(err, errlen, "another promotion is under way");
        return -1;
    }
    self->p_state = S_P_ASKED;
    self->p_waited = true;
    snprintf(self->p_name, sizeof self->p_name, "%s", name);
    uint64_t one = 1;
    if (write(self->p_fd, &one, sizeof one) != sizeof one && errno != EAGAIN)
        log_err("[shadow] cannot wake the loop: %s", strerror(errno));
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    while (self->p_state == S_P_ASKED &&
           pthread_cond_timedwait(&self->p_cond, &self->p_lock, &until) != ETIMEDOUT) {
    }
    int rc = -1;
    if (self->p_state == S_P_DONE) {
        rc = self->p_rc;
        *out = self->p_out;
        snprintf(err, errlen, "%s", self->p_err);
        self->p_state = S_P_IDLE;
    } else {
        self->p_waited = false; /* the loop logs the outcome */
        snprintf(err, errlen, "the promotion did not end within %d s; funneld's log "
                 "says how it ends", wait_ms / 1000);
    }
    pthread_mutex_unlock(&self->p_lock);
    return rc;
}

int shadows_detach(shadows_t *self, const char *name, pthread_rwlock_t *lock, defn_t **defn)
{
    for (size_t k = 0; k < self->n; k++) {
        s_shadow_t *sh = self->v[k];
        if (strcmp(sh->name, name) != 0)
            continue;
        pthread_rwlock_wrlock(lock);
        memmove(self->v + k, self->v + k + 1, (self->n - k - 1) * sizeof *self->v);
        self->n--;
        pthread_rwlock_unlock(lock);
        s_publish(self, sh);
        *defn = sh->defn;
        sh->defn = NULL;
        s_free(&sh, false);
        return 0;
    }
    return -1;
}

shadows_t *shadows_new(struct event_base *base, store_t *live, bus_sock_t *alerts,
                       const hnd_t *const *pipeline, const ingest_opts_t *opts,
                       size_t map_size)
{
    shadows_t *self = xcalloc(1, sizeof *self);
    self->base = base;
    self->live = live;
    self->alerts = alerts;
    self->pipeline = pipeline;
    self->opts = *opts;
    self->map_size = map_size;
    self->next_index = S_INDEX_BASE;
    pthread_mutex_init(&self->p_lock, NULL);
    pthread_cond_init(&self->p_cond, NULL);
    self->p_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    self->hand_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (self->hand_fd == -1 || self->p_fd == -1) {
        log_err("[shadow] eventfd: %s", strerror(errno));
        shadows_destroy(&self);
        return NULL;
    }
    self->ev_promote = event_new(base, self->p_fd, EV_READ | EV_PERSIST, s_on_promote, self);
    if (self->ev_promote == NULL || event_add(self->ev_promote, NULL) != 0) {
        log_err("[shadow] cannot watch the promotion eventfd");
        shadows_destroy(&self);
        return NULL;
    }
    self->ev_hand = event_new(base, self->hand_fd, EV_READ | EV_PERSIST, s_on_hand, self);
    if (self->ev_hand == NULL || event_add(self->ev_hand, NULL) != 0) {
        log_err("[shadow] cannot watch the drafts' eventfd");
        shadows_destroy(&self);
        return NULL;
    }
    return self;
}

static s_shadow_t *s_find(const shadows_t *self, const char *name)
{
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->v[i]->name, name) == 0)
            return self->v[i];
    return NULL;
}

/* Delete the state.shadow-NAME directories of state_dir that no draft of
 * v uses (drafts dropped while funneld was down). */
static void s_sweep(shadows_t *self, s_shadow_t *const *v, size_t n)
{
    const char *dir = store_dir(self->live);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    char names[64][64];
    size_t n_names = 0;
    while ((de = readdir(d)) != NULL && n_names < 64) {
        size_t pl = strlen(S_PREFIX), l = strlen(de->d_name);
        if (strncmp(de->d_name, S_PREFIX, pl) != 0 || l >= 64 ||
            (l > 5 && strcmp(de->d_name + l - 5, ".mark") == 0))
            continue;
        bool used = false;
        for (size_t i = 0; i < n; i++)
            used = used || strcmp(v[i]->name, de->d_name + pl) == 0;
        if (!used)
            snprintf(names[n_names++], sizeof names[0], "%s", de->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < n_names; i++) {
        if (store_remove_state(dir, names[i]) == -1)
            log_err("[shadow] cannot delete %s/%s: %s", dir, names[i], strerror(errno));
        else
            log_info("[shadow] %s/%s deleted: no shadow draft of that name is "
                     "configured", dir, names[i]);
    }
}

/* Mark old as kept (in kept, by its place in the set). */
static s_shadow_t *s_keep(shadows_t *self, bool *kept, s_shadow_t *old)
{
    for (size_t k = 0; k < self->n; k++)
        if (self->v[k] == old)
            kept[k] = true;
    return old;
}

static bool s_was_promoted(const shadows_t *self, const char *name, const char *hash)
{
    for (size_t i = 0; i < self->n_promoted; i++)
        if (strcmp(self->promoted[i].name, name) == 0 &&
            strcmp(self->promoted[i].hash, hash) == 0)
            return true;
    return false;
}

void shadows_note_promoted(shadows_t *self, const char *name, const char *hash)
{
    if (s_was_promoted(self, name, hash))
        return;
    self->promoted = xrealloc(self->promoted, (self->n_promoted + 1) * sizeof *self->promoted);
    struct s_promoted *p = &self->promoted[self->n_promoted++];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->hash, sizeof p->hash, "%s", hash);
}

size_t shadows_configure(shadows_t *self, const cfg_shadow_t *list, unsigned n,
                         pthread_rwlock_t *lock)
{
    s_shadow_t **next = xcalloc(n + 1, sizeof *next);
    size_t n_next = 0;
    bool *kept = xcalloc(self->n + 1, sizeof *kept);
    for (unsigned i = 0; i < n; i++) {
        char err[1024];
        defn_t *d = defn_load_file(list[i].definition, err, sizeof err);
        s_shadow_t *old = s_find(self, list[i].name);
        if (d == NULL) {
            log_err("[shadow %s] definition: %s%s", list[i].name, err,
                    old ? "; it goes on with the one it had" : "; not started");
            if (old)
                next[n_next++] = s_keep(self, kept, old);
            continue;
        }
        if (old == NULL && s_was_promoted(self, list[i].name, d->hash)) {
            log_warn("[shadow %s] was promoted: its definition %s is the live one; not run "
                     "again as a draft. Take it out of `shadow` in the config (a restart "
                     "would rebuild it from the whole log)", list[i].name,
                     list[i].definition);
            defn_destroy(&d);
            continue;
        }
        if (old && strcmp(old->defn->hash, d->hash) == 0 &&
            strcmp(old->path, list[i].definition) == 0) {
            defn_destroy(&d);
            next[n_next++] = s_keep(self, kept, old);
            continue;
        }
        if (old) {
            /* Its file changed: rebuilt afresh under the new one. */
            for (size_t k = 0; k < self->n; k++)
                if (self->v[k] == old) {
                    pthread_rwlock_wrlock(lock);
                    memmove(self->v + k, self->v + k + 1, (self->n - k - 1) * sizeof *self->v);
                    memmove(kept + k, kept + k + 1, (self->n - k - 1) * sizeof *kept);
                    self->n--;
                    pthread_rwlock_unlock(lock);
                    s_free(&old, false);
                    break;
                }
        }
        s_shadow_t *sh = s_open(self, &list[i], d);
        if (sh == NULL) {
            defn_destroy(&d);
            continue;
        }
        next[n_next++] = sh;
    }
    s_shadow_t **prev = self->v;
    size_t n_prev = self->n;
    pthread_rwlock_wrlock(lock);
    self->v = next;
    self->n = n_next;
    pthread_rwlock_unlock(lock);
    for (size_t k = 0; k < n_prev; k++)
        if (prev[k] && !kept[k])
            s_free(&prev[k], true);
    free(prev);
    free(kept);
    s_sweep(self, self->v, self->n);
    return self->n;
}

void shadows_notify(void *arg)
{
    shadows_t *self = arg;
    for (size_t i = 0; i < self->n; i++)
        partition_notify(self->v[i]->part);
}

uint64_t shadows_applied_floor(void *arg)
{
    shadows_t *self = arg;
    uint64_t floor = UINT64_MAX;
    for (size_t i = 0; i < self->n; i++) {
        uint64_t a = store_applied_published(self->v[i]->store);
        if (a < floor)
            floor = a;
    }
    return floor;
}

size_t shadows_count(const shadows_t *self)
{
    return self ? self->n : 0;
}

void shadows_get(const shadows_t *self, size_t i, shadow_view_t *out)
{
    s_shadow_t *sh = self->v[i];
    out->name = sh->name;
    out->path = sh->path;
    out->store = sh->store;
    out->defn = sh->defn;
    pthread_mutex_lock(&sh->hand_lock);
    out->rebuilding = sh->rebuilding;
    pthread_mutex_unlock(&sh->hand_lock);
    out->applied_seq = store_applied_published(sh->store);
    out->log_seq = store_committed_seq(sh->store);
}

int shadows_find(const shadows_t *self, const char *name, shadow_view_t *out)
{
    for (size_t i = 0; self && i < self->n; i++)
        if (strcmp(self->v[i]->name, name) == 0) {
            shadows_get(self, i, out);
            return 1;
        }
    return 0;
}

void shadows_destroy(shadows_t **self_p)
{
    shadows_t *self = *self_p;
    if (self == NULL)
        return;
    for (size_t i = 0; i < self->n; i++)
        s_free(&self->v[i], false);
    free(self->v);
    if (self->ev_hand)
        event_free(self->ev_hand);
    if (self->ev_promote)
        event_free(self->ev_promote);
    if (self->hand_fd != -1)
        close(self->hand_fd);
    if (self->p_fd != -1)
        close(self->p_fd);
    pthread_mutex_destroy(&self->p_lock);
    pthread_cond_destroy(&self->p_cond);
    free(self->promoted);
    free(self);
    *self_p = NULL;
}
