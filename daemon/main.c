/* main.c: funneld, wired together.
 *
 * The loop thread owns the ingest, stream and alert sockets and every LMDB
 * write transaction. Data flows one way: socket (bus) -> decode and
 * validate (ingest) -> handlers (pipeline) -> store -> Ack and alerts
 * (ingest). The query thread answers queries from read snapshots (see
 * query.h), so queries and ingest never wait for each other.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <fcntl.h>
#include <systemd/sd-daemon.h>

#include "auth.h"
#include "bus.h"
#include "cfg.h"
#include "checkpoint.h"
#include "defn.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "nats.h"
#include "pipeline.h"
#include "query.h"
#include "rebuild.h"
#include "retention.h"
#include "shadow.h"
#include "store.h"
#include "xalloc.h"

typedef struct {
    cfg_t cfg;
    struct event_base *base;
    store_t *store;
    bus_t *bus;
    defn_t *defn;
    ingest_t *ingest;
    query_t query;
    query_server_t *queries;
    auth_t *auth;                  /* CURVE, NULL when off */
    metrics_t *metrics;
    http_t *http;                  /* NULL when `http` is empty */
    checkpoint_t *checkpoint;      /* the checkpoint thread */
    retention_t *retention;        /* log_retention, NULL when off */
    nats_t *nats;                  /* cluster input, NULL without `nats` */
    shadows_t *shadows;            /* the shadow drafts (config shadow) */
    pthread_rwlock_t defn_lock;    /* app.defn: replaced exclusively */
    int exit_code;
    uint64_t watchdog_usec;
} app_t;

/* Open the state's partitions beyond the primary's (state/):
 * state.p1/ .. state.p<P-1>/ of the data directory. When the state was
 * built with another partition count (store_parts_recorded), it is
 * rebuilt from the log (every partition opened fresh, the partitions of
 * the old count that are no longer used removed); the partitions then
 * apply the log at start-up, with progress (ingest_start_partition).
 * Returns 0, or -1 with err. */
static int s_open_partitions(app_t *app, char *err, size_t errlen)
{
    /* With the event clock the loop thread applies one state. */
    unsigned want = app->cfg.partitions > 1 && strcmp(app->cfg.clock, "event") != 0
                        ? app->cfg.partitions
                        : 1;
    unsigned had = 1;
    size_t map = (size_t)app->cfg.map_size_mb << 20;
    if (store_parts_recorded(app->store, &had) != STORE_OK) {
        snprintf(err, errlen, "cannot read the partition count of the state");
        return -1;
    }
    bool rebuild = had != want;
    if (rebuild) {
        uint64_t first, last, bytes, dropped;
        store_log_read(app->store, &first, &last, &bytes, &dropped);
        if (first > 1) {
            snprintf(err, errlen,
                     "the state was built with %u partition(s), partitions is %u: that "
                     "rebuilds the state from the log, but log retention dropped the "
                     "log's events before %llu; set partitions: %u again",
                     had, want, (unsigned long long)first, had);
            return -1;
        }
        log_info("[main] the state was built with %u partition(s), partitions is %u: "
                 "rebuilding it from the log (%llu events)", had, want,
                 (unsigned long long)last);
        store_destroy(&app->store);
        /* The checkpoints are of the old layout: none may be restored. */
        int gone = store_checkpoints_drop(app->cfg.state_dir);
        for (unsigned i = 1; i < STORE_PARTS_MAX; i++) {
            char root[4200];
            snprintf(root, sizeof root, "%s/state.p%u.ckpt", app->cfg.state_dir, i);
            gone += store_checkpoints_drop(root);
        }
        if (gone > 0)
            log_info("[main] deleted %d checkpoint(s) of the old layout", gone);
        app->store = store_open_state(app->cfg.state_dir, "state", true, map, err, errlen);
        if (app->store == NULL)
            return -1;
    }
    for (unsigned i = want; i < STORE_PARTS_MAX; i++) {
        char name[32];
        snprintf(name, sizeof name, "state.p%u", i);
        if (store_remove_state(app->cfg.state_dir, name) != 0 && errno != ENOENT)
            log_warn("[main] cannot remove the unused partition %s: %s", name,
                     strerror(errno));
    }
    for (unsigned i = 1; i < want; i++) {
        char name[32];
        snprintf(name, sizeof name, "state.p%u", i);
        if (store_open_part(app->store, name, rebuild, map, err, errlen) == NULL)
            return -1;
    }
    if (rebuild && store_set_parts_recorded(app->store, want) != STORE_OK) {
        snprintf(err, errlen, "cannot record the partition count of the state");
        return -1;
    }
    return 0;
}

static defn_t *s_load_definition(const char *path, char *err, size_t errlen)
{
    if (path == NULL || path[0] == '\0')
        return defn_load_default();
    return defn_load_file(path, err, errlen);
}

static void s_on_stop(evutil_socket_t sig, short what, void *arg)
{
    app_t *app = arg;
    log_info("[main] %s: stopping intake, committing what is pending",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    sd_notify(0, "STOPPING=1");
    metrics_set_phase(app->metrics, METRICS_STOPPING);
    if (ingest_shutdown(app->ingest) != 0) {
        log_err("[main] the last group could not be committed; its events were "
                "not acknowledged and will be resent by their publishers");
        app->exit_code = 1;
    }
    event_base_loopexit(app->base, NULL);
}

/* Record which definition the state is applied with; say so when it
 * changes under existing leads, since they keep what the old one did. */
static void s_note_definition(app_t *app)
{
    char was[256], now[256];
    snprintf(now, sizeof now, "%s %s", app->defn->hash, app->defn->name);
    if (store_definition(app->store, was, sizeof was) != STORE_OK)
        return;
    if (strcmp(was, now) == 0)
        return;
    if (was[0] != '\0' && store_last_seq(app->store) > 0)
        log_warn("[main] the state was built with definition %s; from now on %s "
                 "applies. Leads keep what the old definition did to them; "
                 "`funneld --rebuild-replace` recomputes everything under the new one",
                 was, now);
    store_set_definition(app->store, now);
}

static void s_on_reload(evutil_socket_t sig, short what, void *arg)
{
    app_t *app = arg;
    char err[1024];

    sd_notify(0, "RELOADING=1");
    defn_t *next = s_load_definition(app->cfg.definition, err, sizeof err);
    if (next == NULL) {
        log_err("[main] SIGHUP: keeping definition \"%s\": %s", app->defn->name, err);
    } else {
        /* Groups are committed within one callback, so nothing holds the
         * old definition now. */
        log_info("[main] SIGHUP: definition \"%s\" (%s) replaces \"%s\" (%s)",
                 next->name, next->hash, app->defn->name, app->defn->hash);
        /* The query thread may be using the old one; the partition
         * applies what was logged before this point under the old one
         * first, and is held meanwhile. */
        ingest_hold(app->ingest);
        pthread_rwlock_wrlock(&app->defn_lock);
        defn_destroy(&app->defn);
        app->defn = next;
        pthread_rwlock_unlock(&app->defn_lock);
        s_note_definition(app);
        ingest_release(app->ingest);
    }
    /* The shadow drafts of the config file as it is now. */
    if (app->cfg.config_file) {
        cfg_shadow_t *list = NULL;
        unsigned n = 0;
        if (cfg_shadow_load(app->cfg.config_file, &list, &n, err, sizeof err) == -1) {
            log_err("[main] SIGHUP: keeping the shadow drafts: %s", err);
        } else {
            cfg_shadow_free(&app->cfg.shadow, &app->cfg.shadow_count);
            app->cfg.shadow = list;
            app->cfg.shadow_count = n;
        }
    }
    shadows_configure(app->shadows, app->cfg.shadow, app->cfg.shadow_count,
                      &app->defn_lock);
    if (app->auth)
        auth_reload(app->auth);
    sd_notify(0, "READY=1");
}

/* Write text (len bytes) to path durably: a temporary file beside it,
 * fsync; the caller renames it into place (s_install). Returns 0, or -1
 * with err. */
static int s_write_temp(const char *tmp, const char *text, size_t len, char *err,
                        size_t errlen)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1 || write(fd, text, len) != (ssize_t)len || fsync(fd) == -1) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        if (fd != -1)
            close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    return 0;
}

/* rename tmp over path, then fsync path's directory. */
static int s_install(const char *tmp, const char *path, char *err, size_t errlen)
{
    if (rename(tmp, path) == -1) {
        snprintf(err, errlen, "cannot rename %.300s to %.300s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1 || fsync(fd) == -1) {
        snprintf(err, errlen, "cannot flush the directory %.300s: %s", dir, strerror(errno));
        if (fd != -1)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After promoting name: whether the config file still lists it under
 * `shadow` (read again: it may have been edited since the last reload);
 * if so the warning, logged and into warning, else "". */
static void s_promote_listed(app_t *app, const char *name, char *warning, size_t cap)
{
    cfg_shadow_t *list = NULL;
    unsigned n = 0;
    char err[512];
    bool listed = false;
    warning[0] = '\0';
    const char *file = app->cfg.config_file;
    if (file == NULL)
        return;
    if (cfg_shadow_load(file, &list, &n, err, sizeof err) == -1) {
        log_warn("[main] promote: cannot read %s again to see whether it still lists %s: "
                 "%s", file, name, err);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        listed = listed || strcmp(list[i].name, name) == 0;
    cfg_shadow_free(&list, &n);
    if (!listed)
        return;
    snprintf(warning, cap, "shadow draft %s is the live definition now but %s still lists "
             "it under `shadow`: remove it from there (a reload does not run it again as a "
             "draft; a restart would rebuild it from the whole log)", name, file);
    log_warn("[main] %s", warning);
}

/* funnelctl definition promote NAME (shadows_promote_fn): the shadow
 * draft's state becomes the live state as it is, the old one is kept as
 * state.old-<time>, and the definition file in use is replaced by the
 * draft's (a temporary file, fsync, rename, fsync of the directory).
 * Ingest waits meanwhile: the live partition is held, and the draft
 * first applies what the log holds. Loop thread. */
static int s_promote(void *arg, const char *name, shadow_promoted_t *out, char *err,
                     size_t errlen)
{
    app_t *app = arg;
    shadow_view_t v;
    char tmp[4200], old[64], from[64];
    size_t len = 0;
    char *text = NULL;
    defn_t *loaded = NULL, *next = NULL;
    int rc = -1;
    const char *path = app->cfg.definition;

    if (store_parts(app->store) > 1) {
        snprintf(err, errlen, "a draft cannot be promoted while the state has %u partitions "
                 "(partitions: 1 first)", store_parts(app->store));
        return -1;
    }
    if (shadows_find(app->shadows, name, &v) != 1) {
        snprintf(err, errlen, "no shadow draft named \"%s\"", name);
        return -1;
    }
    if (v.rebuilding) {
        snprintf(err, errlen, "shadow draft \"%s\" is still being rebuilt from the log",
                 name);
        return -1;
    }
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "the live definition is the built-in one: set `definition` "
                 "to a file, which promotion replaces");
        return -1;
    }
    /* The draft's file as the draft was loaded from it. */
    FILE *f = fopen(v.path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", v.path, strerror(errno));
        return -1;
    }
    text = xmalloc(1 << 20);
    len = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    loaded = defn_load_buffer(text, len, v.path, err, errlen);
    if (loaded == NULL)
        goto out;
    if (strcmp(loaded->hash, v.defn->hash) != 0) {
        snprintf(err, errlen, "%s changed since the draft was loaded from it: reload "
                 "funneld (SIGHUP) first, which rebuilds the draft", v.path);
        goto out;
    }
    snprintf(tmp, sizeof tmp, "%s.promote-%d.tmp", path, (int)getpid());
    if (s_write_temp(tmp, text, len, err, errlen) == -1)
        goto out;
    /* The live partition stops between groups; the draft applies what the
     * log holds: then both states stand at the same sequence. */
    int64_t held_ms = s_mono_ms(), caught_ms = 0;
    ingest_hold(app->ingest);
    uint64_t committed = store_committed_seq(app->store);
    if (store_wait_applied(v.store, committed, 30000) != 1 ||
        store_applied_published(app->store) != committed) {
        snprintf(err, errlen, "the draft or the live state did not catch up with the log "
                 "(%llu) within 30 s", (unsigned long long)committed);
        unlink(tmp);
        goto release;
    }
    caught_ms = s_mono_ms();
    defn_t *draft = NULL;
    shadows_detach(app->shadows, name, &app->defn_lock, &draft);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(old, sizeof old, "state.old-%Y%m%dT%H%M%SZ", &tm);
    snprintf(from, sizeof from, "state.shadow-%s", name);
    pthread_rwlock_wrlock(&app->defn_lock);
    if (store_adopt_state(app->store, from, old, err, errlen) != 0) {
        pthread_rwlock_unlock(&app->defn_lock);
        defn_destroy(&draft);
        unlink(tmp);
        goto release;
    }
    char ierr[1024];
    if (s_install(tmp, path, ierr, sizeof ierr) == 0) {
        /* The definition now comes from the file in use. */
        char lerr[256];
        next = defn_load_file(path, lerr, sizeof lerr);
    } else {
        snprintf(err, errlen, "the draft's state is the live state now, but the "
                 "definition file was not replaced: %s", ierr);
    }
    if (next == NULL) {
        next = draft;
        draft = NULL;
    }
    defn_destroy(&draft);
    defn_destroy(&app->defn);
    app->defn = next;
    pthread_rwlock_unlock(&app->defn_lock);
    s_note_definition(app);
    ingest_start_deadlines(app->ingest);
    snprintf(out->definition, sizeof out->definition, "%s (%s)", next->name, next->hash);
    snprintf(out->path, sizeof out->path, "%s", path);
    snprintf(out->old_state, sizeof out->old_state, "%s", old);
    out->applied_seq = committed;
    /* err is set when the file could not be replaced after the swap. */
    rc = err[0] && strcmp(next->path, path) != 0 ? -1 : 0;
    shadows_note_promoted(app->shadows, name, loaded->hash);
release:
    ingest_release(app->ingest);
    out->paused_ms = (uint64_t)(s_mono_ms() - held_ms);
    if (caught_ms)
        log_info("[main] promote: ingest paused %llu ms (%lld ms of them for the states to "
                 "apply the log, %lld ms for the swap and the file)",
                 (unsigned long long)out->paused_ms, (long long)(caught_ms - held_ms),
                 (long long)(s_mono_ms() - caught_ms));
    else
        log_info("[main] promote: ingest paused %llu ms", (unsigned long long)out->paused_ms);
    if (rc == 0)
        s_promote_listed(app, name, out->warning, sizeof out->warning);
out:
    defn_destroy(&loaded);
    free(text);
    return rc;
}

static void s_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    app_t *app = arg;
    metrics_heartbeat(app->metrics);
}

static void s_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    /* Sent from the loop: a stuck loop stops the pings and systemd
     * restarts the daemon. */
    sd_notify(0, "WATCHDOG=1");
}

static struct event *s_every(app_t *app, event_callback_fn fn, uint64_t usec)
{
    struct event *ev = event_new(app->base, -1, EV_PERSIST, fn, app);
    struct timeval tv = {(time_t)(usec / 1000000), (suseconds_t)(usec % 1000000)};
    if (ev == NULL || event_add(ev, &tv) == -1) {
        log_err("[main] cannot arm a timer");
        exit(1);
    }
    return ev;
}

/* opts for a socket on endpoint: with CURVE on, a TCP endpoint is a CURVE
 * server (bound) or, given the server's key, a client. */
static bus_opts_t s_opts(const app_t *app, const bus_opts_t *base, const char *endpoint,
                         const char *server_key)
{
    bus_opts_t o = *base;
    if (app->auth && cfg_endpoint_is_tcp(endpoint)) {
        o.curve_secret = auth_secret_key(app->auth);
        o.curve_public = auth_public_key(app->auth);
        o.curve_server_key = server_key;
    }
    return o;
}

/* SIGBUS: the state is written through its map (see store_env.c), and a
 * page that gets no disk block (a full disk) faults. Say so, then let the
 * fault happen again with the default action (SA_RESETHAND). */
static void s_sigbus(int sig)
{
    (void)sig;
    static const char msg[] =
        "funneld: SIGBUS: a page of the state's map got no disk block (is the disk full?); "
        "nothing acknowledged is lost: the log holds it, and the next start recovers the "
        "state from it\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
}

static void s_on_sigbus_say(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_sigbus;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

static struct event *s_on_signal(app_t *app, int sig, event_callback_fn fn)
{
    struct event *ev = evsignal_new(app->base, sig, fn, app);
    if (ev == NULL || event_add(ev, NULL) == -1) {
        log_err("[main] cannot watch signal %d", sig);
        exit(1);
    }
    return ev;
}

int main(int argc, char **argv)
{
    app_t app = {.exit_code = 0, .defn_lock = PTHREAD_RWLOCK_INITIALIZER};
    char err[1024];
    struct event *evs[8] = {NULL};
    size_t n_evs = 0;
    int rc = 2;

    /* Out of memory is critical, as journald should file it. */
    xalloc_set_name(SD_CRIT "funneld");
    cfg_action_t action = cfg_load(&app.cfg, argc, argv, err, sizeof err);
    switch (action) {
    case CFG_HELP:
        cfg_usage(argv[0]);
        cfg_free(&app.cfg);
        return 0;
    case CFG_VERSION:
        printf("funneld %s\n", FUNNELD_VERSION);
        cfg_free(&app.cfg);
        return 0;
    case CFG_DUMP:
        cfg_dump(&app.cfg, stdout);
        cfg_free(&app.cfg);
        return 0;
    case CFG_ERROR:
        fprintf(stderr, "funneld: %s\n", err);
        cfg_free(&app.cfg);
        return 2;
    case CFG_RUN:
    case CFG_REBUILD:
    case CFG_REBUILD_REPLACE:
        break;
    }
    log_level_parse(app.cfg.log_level, &log_verbosity);
    signal(SIGPIPE, SIG_IGN);
    s_on_sigbus_say();
    /* A rebuild may run on a disk with little room left, beside the live
     * state: its states are written with write(2), whose failure is an
     * error, and no room is allocated ahead (store_writemap). */
    store_writemap(action == CFG_RUN);

    app.defn = s_load_definition(app.cfg.definition, err, sizeof err);
    if (app.defn == NULL) {
        log_err("[main] definition: %s", err);
        goto out;
    }
    if (action != CFG_RUN) {
        rc = rebuild_run(app.cfg.state_dir, app.cfg.rebuild_dir,
                         (size_t)app.cfg.map_size_mb << 20,
                         (const defn_t *const *)&app.defn, pipeline_default,
                         action == CFG_REBUILD_REPLACE, app.cfg.progress_interval_ms,
                         strcmp(app.cfg.clock, "event") == 0 ? 1 : app.cfg.partitions);
        goto out;
    }
    log_info("[main] funneld %s: definition \"%s\" from %s, hash %s", FUNNELD_VERSION,
             app.defn->name, app.defn->path, app.defn->hash);

    app.base = event_base_new();
    if (app.base == NULL) {
        log_err("[main] cannot create the event loop");
        goto out;
    }
    app.metrics = metrics_new();
    app.store = store_open(app.cfg.state_dir, (size_t)app.cfg.map_size_mb << 20,
                           err, sizeof err);
    if (app.store == NULL) {
        log_err("[main] store: %s", err);
        goto out;
    }
    if (s_open_partitions(&app, err, sizeof err) != 0) {
        log_err("[main] store: %s", err);
        goto out;
    }
    app.bus = bus_new(app.base, err, sizeof err);
    if (app.bus == NULL) {
        log_err("[main] %s", err);
        goto out;
    }
    if (app.cfg.curve_secret_file[0]) {
        app.auth = auth_new(app.cfg.curve_secret_file, app.cfg.curve_clients_file, err,
                            sizeof err);
        if (app.auth == NULL || auth_attach(app.auth, bus_context(app.bus), err,
                                            sizeof err) == -1) {
            log_err("[main] CURVE: %s", err);
            goto out;
        }
    } else if (app.cfg.insecure_remote) {
        log_warn("[main] INSECURE: insecure_remote is set and CURVE is off: whoever "
                 "reaches a non-loopback endpoint may publish events and read every "
                 "lead, unauthenticated and in plain text; set curve_secret_file and "
                 "curve_clients_file instead");
    }

    bus_opts_t in_opts = {
        .linger_ms = (int)app.cfg.linger_ms,
        .max_msg_bytes = (int64_t)app.cfg.max_message_kb * 1024,
    };
    bus_opts_t pub_opts = {
        /* The last commit's alerts get out too; a slow subscriber delays
         * shutdown by linger_ms at most. */
        .linger_ms = (int)app.cfg.linger_ms,
        .sndhwm = (int)app.cfg.alerts_hwm,
        /* What subscribers send are subscriptions: topic prefixes. */
        .max_msg_bytes = 4096,
    };
    /* An XPUB, so that funneld knows which topics have subscribers and
     * builds no alert that nobody would receive. */
    bus_opts_t alerts_opts = s_opts(&app, &pub_opts, app.cfg.alerts, NULL);
    bus_opts_t ingest_opts = s_opts(&app, &in_opts, app.cfg.ingest, NULL);
    bus_opts_t query_opts = s_opts(&app, &in_opts, app.cfg.query, NULL);
    bus_sock_t *alerts = bus_socket(app.bus, ZMQ_XPUB, app.cfg.alerts, true,
                                    &alerts_opts, err, sizeof err);
    if (alerts)
        bus_track_subscriptions(alerts, (int)app.cfg.drain_budget);
    /* The dashboard's event stream subscribes here, in the process. */
    if (alerts && bus_bind(alerts, HTTP_UI_ALERTS_INPROC, err, sizeof err) == -1)
        alerts = NULL;
    bus_sock_t *ingest_sock = alerts ? bus_socket(app.bus, ZMQ_ROUTER, app.cfg.ingest,
                                                  true, &ingest_opts, err, sizeof err)
                                     : NULL;
    int64_t interval_ms = 0;
    cfg_checkpoint_interval_ms(&app.cfg, &interval_ms);
    checkpoint_opts_t copts = {
        .interval_ms = interval_ms,
        .events = app.cfg.checkpoint_events,
        .keep = app.cfg.checkpoint_keep,
    };
    app.checkpoint = checkpoint_new(app.base, app.store, &copts, err, sizeof err);
    if (app.checkpoint == NULL) {
        log_err("[main] %s", err);
        goto out;
    }
    if (app.cfg.nats[0] && (app.nats = nats_new(app.base, &app.cfg, err, sizeof err)) == NULL) {
        log_err("[main] %s", err);
        goto out;
    }
    ingest_opts_t iopts = {
        .group_max_events = app.cfg.group_max_events,
        .group_delay_ms = (int)app.cfg.group_delay_ms,
        .max_batch_events = app.cfg.max_batch_events,
        .event_clock = strcmp(app.cfg.clock, "event") == 0,
        .progress_interval_ms = app.cfg.progress_interval_ms,
        .limits = validate_defaults,
        .metrics = app.metrics,
    };
    long long retention = 0;
    (void)cfg_duration_ms(app.cfg.alerts_retention, &retention); /* checked by cfg_load */
    iopts.alerts_retention_ms = retention;
    app.shadows = shadows_new(app.base, app.store, alerts, pipeline_default, &iopts,
                              (size_t)app.cfg.map_size_mb << 20);
    if (app.shadows == NULL)
        goto out;
    shadows_set_promoter(app.shadows, s_promote, &app);
    app.query = (query_t){
        .store = app.store,
        .defn_p = (const defn_t *const *)&app.defn,
        .defn_lock = &app.defn_lock,
        .started_ms = ingest_wall_ms(),
        .auth = app.auth,
        .metrics = app.metrics,
        .event_clock = strcmp(app.cfg.clock, "event") == 0,
        .pipeline = pipeline_default,
        .checkpoint = app.checkpoint,
        .nats = app.nats,
        .shadows = app.shadows,
    };
    app.queries = ingest_sock ? query_server_new(&app.query, app.cfg.query, &query_opts,
                                                 (int)app.cfg.drain_budget, err, sizeof err)
                              : NULL;
    if (app.queries == NULL) {
        log_err("[main] %s", err);
        goto out;
    }
    /* Every CURVE server is bound: admit clients from now on, during the
     * recovery below too (a handshake must not wait for it). */
    if (app.auth && auth_start(app.auth) != 0)
        goto out;
    /* HTTP answers from now on: /readyz says "recovering" meanwhile. */
    if (app.cfg.http[0]) {
        app.http = http_new(&app.query, app.cfg.http, app.cfg.http_token_file, err,
                            sizeof err);
        if (app.http == NULL) {
            log_err("[main] %s", err);
            goto out;
        }
        http_ui_src_t ui = {
            .query_ctx = query_server_context(app.queries),
            .alerts_ctx = bus_context(app.bus),
        };
        http_set_ui(app.http, &ui);
        if (http_start(app.http) != 0)
            goto out;
    }

    /* Cluster mode: the conversion alerts are the cluster's (nats_judge.h). */
    iopts.cluster_judged = app.nats != NULL;
    app.ingest = ingest_new(app.base, app.store, (const defn_t *const *)&app.defn,
                            pipeline_default, alerts, &iopts);
    long replayed = ingest_recover(app.ingest);
    if (replayed < 0) {
        log_err("[main] cannot bring the state up to date with the event log");
        goto out;
    }
    /* Read by the query thread, which starts below. */
    query_set_replayed(app.queries, (uint64_t)replayed);
    s_note_definition(&app);
    /* With the event clock the daemon's time is the applied events' own:
     * deadlines must fire between the events that pass them, in log
     * order, so the loop applies the state itself. */
    if (app.cfg.partitions > 0 && strcmp(app.cfg.clock, "event") == 0)
        log_info("[main] clock event: the state is applied before each Ack "
                 "(partitions apply with the wall clock only)");
    else if (app.cfg.partitions > 0 && ingest_start_partition(app.ingest, 0, &replayed) != 0)
        goto out;
    else if (app.cfg.partitions > 0)
        query_set_partitions(app.queries, app.cfg.partitions);
    if (store_parts(app.store) > 1)
        query_set_replayed(app.queries, (uint64_t)replayed);
    ingest_start_deadlines(app.ingest);
    /* The drafts follow the log in threads of their own, woken after
     * each commit; one being added is rebuilt from the log meanwhile. */
    shadows_configure(app.shadows, app.cfg.shadow, app.cfg.shadow_count, &app.defn_lock);
    ingest_on_committed(app.ingest, shadows_notify, app.shadows);

    bus_on_recv(ingest_sock, ingest_on_ingest, app.ingest, (int)app.cfg.drain_budget);
    ingest_add_intake(app.ingest, ingest_sock);
    for (unsigned i = 0; i < app.cfg.subscribe_count; i++) {
        /* A SUB has nothing of value to flush: never wait for it. */
        bus_opts_t sub_opts = in_opts;
        sub_opts.linger_ms = 0;
        char server_key[CURVEKEY_TEXT];
        if (app.cfg.subscribe_key[i]) {
            if (curvekey_read(app.cfg.subscribe_key[i], false, server_key, err,
                              sizeof err) == -1) {
                log_err("[main] subscribe %s: curve_server_key: %s", app.cfg.subscribe[i],
                        err);
                goto out;
            }
            sub_opts = s_opts(&app, &sub_opts, app.cfg.subscribe[i], server_key);
        }
        bus_sock_t *sub = bus_socket(app.bus, ZMQ_SUB, app.cfg.subscribe[i], false,
                                     &sub_opts, err, sizeof err);
        if (sub == NULL || bus_subscribe(sub, "marketing") == -1 ||
            bus_subscribe(sub, "sales") == -1) {
            log_err("[main] stream: %s", err);
            goto out;
        }
        bus_on_recv(sub, ingest_on_stream, app.ingest, (int)app.cfg.drain_budget);
        ingest_add_intake(app.ingest, sub);
        log_info("[main] subscribed to %s (topics marketing*, sales*%s)",
                 app.cfg.subscribe[i], app.cfg.subscribe_key[i] ? ", CURVE" : "");
    }
    if (app.nats)
        nats_serve_queries(app.nats, query_server_context(app.queries));
    if (app.nats && nats_start(app.nats, app.ingest, app.store, err, sizeof err) != 0) {
        log_err("[main] %s", err);
        goto out;
    }
    /* Before the first query is answered: a client that saw funneld
     * answer may stop it at once, and SIGTERM must find its handler. */
    evs[n_evs++] = s_on_signal(&app, SIGTERM, s_on_stop);
    evs[n_evs++] = s_on_signal(&app, SIGINT, s_on_stop);
    evs[n_evs++] = s_on_signal(&app, SIGHUP, s_on_reload);
    /* Recovered, intake in place: /readyz says so before the first query
     * is answered, so that a client that saw an answer never finds
     * funneld "recovering" (seen under TSan in test_http). */
    metrics_set_phase(app.metrics, METRICS_RUNNING);
    if (query_server_start(app.queries) != 0 || checkpoint_start(app.checkpoint) != 0)
        goto out;
    int64_t keep_ms = 0;
    uint64_t keep_bytes = 0;
    cfg_log_retention(&app.cfg, &keep_ms, &keep_bytes, err, sizeof err);
    if ((keep_ms || keep_bytes) &&
        (app.retention = retention_new(app.base, app.store, keep_ms, keep_bytes)) == NULL)
        goto out;
    if (app.retention)
        retention_hold(app.retention, shadows_applied_floor, app.shadows);

    evs[n_evs++] = s_every(&app, s_on_heartbeat, 1000000);
    if (sd_watchdog_enabled(0, &app.watchdog_usec) > 0 && app.watchdog_usec > 0)
        evs[n_evs++] = s_every(&app, s_on_watchdog, app.watchdog_usec / 2);

    log_info("[main] ready: ingest %s, alerts %s, query %s, state %s, clock %s, %s",
             app.cfg.ingest, app.cfg.alerts, app.cfg.query, app.cfg.state_dir,
             app.cfg.clock, app.auth ? "CURVE on" : "CURVE off");
    /* STATUS= replaces the replay's progress in `systemctl status`. */
    sd_notifyf(0, "READY=1\nSTATUS=ready: ingest %s, alerts %s, query %s",
               app.cfg.ingest, app.cfg.alerts, app.cfg.query);

    if (event_base_dispatch(app.base) == -1) {
        log_err("[main] event loop failed");
        goto out;
    }
    rc = app.exit_code;
    log_info("[main] stopped");

out:
    /* First: its ZAP sockets belong to the contexts terminated below. The
     * query and HTTP threads read its counters until they stop. */
    auth_stop(app.auth);
    http_destroy(&app.http);
    nats_stop_queries(app.nats); /* its socket is in the query server's context */
    query_server_destroy(&app.queries);
    /* A checkpoint being written is dropped (not waited for); before the store. */
    checkpoint_destroy(&app.checkpoint);
    retention_destroy(&app.retention);
    for (size_t i = 0; i < n_evs; i++)
        event_free(evs[i]);
    /* After the queries (which read them), before the store (whose log
     * they read); what they applied is kept. */
    if (app.ingest)
        ingest_on_committed(app.ingest, NULL, NULL);
    shadows_destroy(&app.shadows);
    ingest_destroy(&app.ingest);
    nats_destroy(&app.nats); /* after ingest: its batches go back unacknowledged */
    bus_destroy(&app.bus); /* flushes queued acks within linger_ms */
    store_destroy(&app.store);
    if (app.base)
        event_base_free(app.base);
    defn_destroy(&app.defn);
    auth_destroy(&app.auth);
    metrics_destroy(&app.metrics);
    cfg_free(&app.cfg);
    pthread_rwlock_destroy(&app.defn_lock);
    return rc;
}
