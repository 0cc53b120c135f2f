/* auth.c: see auth.h. */
#include "auth.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "curvekey.h"
#include "log.h"
#include "xalloc.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_CONTEXTS_MAX 4
#define S_NAME_MAX 64
/* Refusals are logged at most once a minute per key, for at most this
 * many distinct keys at a time, and at most S_LOG_PER_MINUTE lines a
 * minute in all (random keys must not flood the log). */
#define S_SEEN_MAX 64
#define S_LOG_PER_MINUTE 20
#define S_MINUTE_MS 60000

typedef struct {
    uint8_t key[32];
    char name[S_NAME_MAX];      /* from the clients file; "" if none */
} s_client_t;

typedef struct {
    s_client_t *v;              /* sorted by key */
    size_t n;
} s_clients_t;

/* A key recently seen by the handler thread, for rate-limited logging. */
typedef struct {
    uint8_t key[32];
    int64_t logged_ms;
    uint64_t since_logged;      /* handshakes not logged since */
} s_seen_t;

struct auth {
    char secret[CURVEKEY_TEXT];
    char public[CURVEKEY_TEXT];
    char *clients_file;

    pthread_mutex_t lock;       /* guards clients */
    s_clients_t *clients;

    void *zap[S_CONTEXTS_MAX];  /* REP sockets, one per context */
    void *zap_ctx[S_CONTEXTS_MAX];
    size_t n_zap;
    int stop_fd[2];
    pthread_t thread;
    bool started;

    atomic_uint_fast64_t refused;

    /* The handler thread's own. */
    s_seen_t seen[S_SEEN_MAX];
    int64_t window_ms;
    unsigned window_lines;
    uint64_t window_unlogged;
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -- the allowlist ---------------------------------------------------------- */

static int s_cmp_client(const void *a, const void *b)
{
    return memcmp(((const s_client_t *)a)->key, ((const s_client_t *)b)->key, 32);
}

static void s_clients_free(s_clients_t *c)
{
    if (c == NULL)
        return;
    free(c->v);
    free(c);
}

/* Parse the clients file: a key and an optional name per line, # starts a
 * comment. Returns the allowlist (caller owns it) or NULL and err. */
static s_clients_t *s_clients_load(const char *path, char *err, size_t errlen)
{
    char line[1024];
    unsigned lineno = 0;
    size_t cap = 0;
    s_clients_t *c = xcalloc(1, sizeof *c);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, errlen, "%s:%u: line longer than %zu bytes", path, lineno,
                     sizeof line - 2);
            goto fail;
        }
        line[strcspn(line, "\r\n")] = '\0';
        char *w = line + strspn(line, " \t");
        size_t n = strcspn(w, " \t");
        if (*w == '\0' || (*w == '#' && !curvekey_is_key(w, n)))
            continue;
        if (!curvekey_is_key(w, n)) {
            snprintf(err, errlen, "%s:%u: not a CURVE public key (40 Z85 characters, "
                                  "as in a NAME.pub of funnelctl keygen)",
                     path, lineno);
            goto fail;
        }
        if (c->n == cap) {
            cap = cap ? 2 * cap : 16;
            c->v = xrealloc(c->v, cap * sizeof *c->v);
        }
        s_client_t *cl = &c->v[c->n++];
        char text[CURVEKEY_TEXT];
        memcpy(text, w, 40);
        text[40] = '\0';
        zmq_z85_decode(cl->key, text);
        /* The name: the rest of the line, up to a comment. */
        char *name = w + n + strspn(w + n, " \t");
        if (name[0] == '#')
            name[0] = '\0';
        for (char *h = name; (h = strchr(h, '#')) != NULL; h++)
            if (h[-1] == ' ' || h[-1] == '\t') {
                *h = '\0';
                break;
            }
        size_t nl = strlen(name);
        while (nl > 0 && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
            nl--;
        if (nl >= S_NAME_MAX)
            nl = S_NAME_MAX - 1;
        /* The name goes into logs: printable ASCII only. */
        for (size_t i = 0; i < nl; i++)
            cl->name[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
        cl->name[nl] = '\0';
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    if (c->n > 1)
        qsort(c->v, c->n, sizeof *c->v, s_cmp_client);
    return c;
fail:
    if (f)
        fclose(f);
    s_clients_free(c);
    return NULL;
}

/* -- lifecycle -------------------------------------------------------------- */

auth_t *auth_new(const char *secret_file, const char *clients_file, char *err,
                 size_t errlen)
{
    auth_t *self = xcalloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->stop_fd[0] = self->stop_fd[1] = -1;
    atomic_init(&self->refused, 0);
    self->clients_file = xstrdup(clients_file);
    if (curvekey_read(secret_file, true, self->secret, err, errlen) == -1)
        goto fail;
    if (zmq_curve_public(self->public, self->secret) == -1) {
        snprintf(err, errlen, "%s: cannot derive the public key: %s", secret_file,
                 zmq_strerror(errno));
        goto fail;
    }
    self->clients = s_clients_load(clients_file, err, errlen);
    if (self->clients == NULL)
        goto fail;
    if (pipe2(self->stop_fd, O_CLOEXEC | O_NONBLOCK) == -1) {
        snprintf(err, errlen, "auth: pipe: %s", strerror(errno));
        goto fail;
    }
    log_info("[auth] CURVE on: server public key %s, %zu client keys allowed (%s)",
             self->public, self->clients->n, clients_file);
    if (self->clients->n == 0)
        log_warn("[auth] %s lists no client key: every client is refused", clients_file);
    return self;
fail:
    auth_destroy(&self);
    return NULL;
}

void auth_stop(auth_t *self)
{
    if (self == NULL)
        return;
    if (self->started) {
        (void)!write(self->stop_fd[1], "x", 1);
        pthread_join(self->thread, NULL);
        self->started = false;
    }
    for (size_t i = 0; i < self->n_zap; i++)
        zmq_close(self->zap[i]);
    self->n_zap = 0;
}

void auth_destroy(auth_t **self_p)
{
    auth_t *self = *self_p;
    if (self == NULL)
        return;
    auth_stop(self);
    for (int i = 0; i < 2; i++)
        if (self->stop_fd[i] != -1)
            close(self->stop_fd[i]);
    s_clients_free(self->clients);
    pthread_mutex_destroy(&self->lock);
    explicit_bzero(self->secret, sizeof self->secret);
    free(self->clients_file);
    free(self);
    *self_p = NULL;
}

const char *auth_secret_key(const auth_t *self)
{
    return self->secret;
}

const char *auth_public_key(const auth_t *self)
{
    return self->public;
}

int auth_attach(auth_t *self, void *zctx, char *err, size_t errlen)
{
    if (self->started || self->n_zap == S_CONTEXTS_MAX) {
        snprintf(err, errlen, "auth: cannot attach another context");
        return -1;
    }
    void *s = zmq_socket(zctx, ZMQ_REP);
    int linger = 0;
    if (s == NULL || zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) == -1 ||
        zmq_bind(s, S_ZAP_ENDPOINT) == -1) {
        snprintf(err, errlen, "auth: cannot bind the ZAP handler %s: %s", S_ZAP_ENDPOINT,
                 zmq_strerror(errno));
        if (s)
            zmq_close(s);
        return -1;
    }
    self->zap_ctx[self->n_zap] = zctx;
    self->zap[self->n_zap++] = s;
    return 0;
}

void auth_detach(auth_t *self, void *zctx)
{
    assert(!self->started);
    for (size_t i = 0; i < self->n_zap; i++)
        if (self->zap_ctx[i] == zctx) {
            zmq_close(self->zap[i]);
            self->n_zap--;
            self->zap[i] = self->zap[self->n_zap];
            self->zap_ctx[i] = self->zap_ctx[self->n_zap];
            return;
        }
}

int auth_reload(auth_t *self)
{
    char err[512];
    s_clients_t *next = s_clients_load(self->clients_file, err, sizeof err);
    if (next == NULL) {
        log_err("[auth] SIGHUP: keeping the %zu client keys allowed: %s",
                auth_clients(self), err);
        return -1;
    }
    pthread_mutex_lock(&self->lock);
    s_clients_t *old = self->clients;
    self->clients = next;
    pthread_mutex_unlock(&self->lock);
    log_info("[auth] SIGHUP: %zu client keys allowed (were %zu), from %s", next->n,
             old->n, self->clients_file);
    s_clients_free(old);
    return 0;
}

uint64_t auth_refused(const auth_t *self)
{
    return self ? atomic_load_explicit(&((auth_t *)self)->refused, memory_order_relaxed)
                : 0;
}

size_t auth_clients(auth_t *self)
{
    pthread_mutex_lock(&self->lock);
    size_t n = self->clients->n;
    pthread_mutex_unlock(&self->lock);
    return n;
}

/* -- the handler thread --------------------------------------------------- */

/* Whether this handshake of key deserves a log line now (at most once a
 * minute per key, and S_LOG_PER_MINUTE lines a minute in all); *unlogged
 * is set to the handshakes of the key not logged since its last line. */
static bool s_should_log(auth_t *self, const uint8_t *key, uint64_t *unlogged)
{
    int64_t now = s_mono_ms();
    s_seen_t *slot = NULL, *oldest = &self->seen[0];
    for (size_t i = 0; i < S_SEEN_MAX; i++) {
        s_seen_t *s = &self->seen[i];
        if (s->logged_ms != 0 && memcmp(s->key, key, 32) == 0) {
            slot = s;
            break;
        }
        if (s->logged_ms < oldest->logged_ms)
            oldest = s;
    }
    if (slot && now - slot->logged_ms < S_MINUTE_MS) {
        slot->since_logged++;
        return false;
    }
    if (now - self->window_ms >= S_MINUTE_MS) {
        if (self->window_unlogged > 0)
            log_warn("[auth] %" PRIu64 " more CURVE handshakes were refused or "
                     "accepted in the last minute without a log line",
                     self->window_unlogged);
        self->window_ms = now;
        self->window_lines = 0;
        self->window_unlogged = 0;
    }
    if (self->window_lines >= S_LOG_PER_MINUTE) {
        self->window_unlogged++;
        return false;
    }
    self->window_lines++;
    if (slot == NULL) {
        slot = oldest;
        memcpy(slot->key, key, 32);
        slot->since_logged = 0;
    }
    *unlogged = slot->since_logged;
    slot->since_logged = 0;
    slot->logged_ms = now ? now : 1;
    return true;
}

/* Copy a ZAP frame as printable text (peer address, domain) for logs. */
static void s_frame_text(zmq_msg_t *m, char *out, size_t cap)
{
    size_t n = zmq_msg_size(m);
    const unsigned char *p = zmq_msg_data(m);
    if (n > cap - 1)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    out[n] = '\0';
}

/* Answer one ZAP request on the REP socket zs. Requests are version,
 * request id, domain, address, routing id, mechanism, credentials (RFC
 * 27); replies version, request id, status code, status text, user id,
 * metadata. */
#define S_ZAP_FRAMES 8
static void s_answer(auth_t *self, void *zs)
{
    zmq_msg_t f[S_ZAP_FRAMES], extra;
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t *m = n < S_ZAP_FRAMES ? &f[n] : &extra;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, zs, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close(m);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            return; /* nothing there (or a partial request): no reply owed */
        }
        more = zmq_msg_more(m);
        if (m == &extra)
            zmq_msg_close(&extra);
        else
            n++;
    }

    const char *code = "400", *text = "malformed ZAP request";
    char user[S_NAME_MAX + 16] = "";
    char address[64] = "?", keytext[CURVEKEY_TEXT] = "?";
    bool curve = false;
    if (n >= 7 && zmq_msg_size(&f[0]) == 3 && memcmp(zmq_msg_data(&f[0]), "1.0", 3) == 0) {
        s_frame_text(&f[3], address, sizeof address);
        curve = zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
                zmq_msg_size(&f[6]) == 32;
        text = "not a CURVE handshake";
    }
    if (curve) {
        const uint8_t *key = zmq_msg_data(&f[6]);
        s_client_t probe, *hit;
        memcpy(probe.key, key, 32);
        zmq_z85_encode(keytext, key, 32);
        pthread_mutex_lock(&self->lock);
        hit = self->clients->n ? bsearch(&probe, self->clients->v, self->clients->n,
                                         sizeof probe, s_cmp_client)
                               : NULL;
        if (hit)
            snprintf(user, sizeof user, "%s", hit->name[0] ? hit->name : keytext);
        pthread_mutex_unlock(&self->lock);
        uint64_t unlogged = 0;
        char since[96] = "";
        if (hit) {
            code = "200";
            text = "OK";
            if (s_should_log(self, key, &unlogged)) {
                if (unlogged)
                    snprintf(since, sizeof since, " (and %" PRIu64 " times since the "
                             "last line)", unlogged);
                log_info("[auth] accepted CURVE client \"%s\" (key %s) from %s%s", user,
                         keytext, address, since);
            }
        } else {
            code = "400";
            text = "client key not allowed";
            atomic_fetch_add_explicit(&self->refused, 1, memory_order_relaxed);
            if (s_should_log(self, key, &unlogged)) {
                if (unlogged)
                    snprintf(since, sizeof since, " (and %" PRIu64 " refusals since the "
                             "last line)", unlogged);
                log_warn("[auth] refused CURVE client key %s from %s: not in %s%s",
                         keytext, address, self->clients_file, since);
            }
        }
    } else {
        log_warn("[auth] ZAP request refused: %s", text);
    }

    const void *parts[6] = {n > 0 ? zmq_msg_data(&f[0]) : "1.0",
                            n > 1 ? zmq_msg_data(&f[1]) : "", code, text, user, ""};
    size_t lens[6] = {n > 0 ? zmq_msg_size(&f[0]) : 3, n > 1 ? zmq_msg_size(&f[1]) : 0,
                      strlen(code), strlen(text), strlen(user), 0};
    for (int i = 0; i < 6; i++)
        if (zmq_send(zs, parts[i], lens[i], i < 5 ? ZMQ_SNDMORE : 0) == -1) {
            log_warn("[auth] cannot answer a ZAP request: %s", zmq_strerror(errno));
            break;
        }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

static void *s_thread(void *arg)
{
    auth_t *self = arg;
    zmq_pollitem_t items[S_CONTEXTS_MAX + 1];
    size_t n = self->n_zap;
    for (size_t i = 0; i < n; i++)
        items[i] = (zmq_pollitem_t){.socket = self->zap[i], .events = ZMQ_POLLIN};
    items[n] = (zmq_pollitem_t){.fd = self->stop_fd[0], .events = ZMQ_POLLIN};
    for (;;) {
        if (zmq_poll(items, (int)n + 1, -1) == -1) {
            if (errno == EINTR)
                continue;
            log_err("[auth] poll failed: %s; CURVE clients are no longer admitted",
                    zmq_strerror(errno));
            break;
        }
        if (items[n].revents & ZMQ_POLLIN)
            break;
        for (size_t i = 0; i < n; i++)
            if (items[i].revents & ZMQ_POLLIN)
                s_answer(self, self->zap[i]);
    }
    return NULL;
}

int auth_start(auth_t *self)
{
    /* The sockets were made by this thread; the handler thread uses them
     * from now on (pthread_create is a full barrier). */
    int rc = pthread_create(&self->thread, NULL, s_thread, self);
    if (rc != 0) {
        log_err("[auth] cannot start the ZAP handler thread: %s", strerror(rc));
        return -1;
    }
    self->started = true;
    return 0;
}
