/* bus.c: see bus.h. */
#include "bus.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xalloc.h"

struct bus_sock {
    bus_t *bus;
    void *zsock;
    char *endpoint;
    struct event *ev_fd;     /* ZMQ_FD readable: an edge */
    struct event *ev_rearm;  /* zero-timeout timer: drain again */
    bus_recv_fn *fn;
    void *arg;
    int budget;
    bool paused;
    bool yield;              /* bus_yield(): end this drain early */
    bool tracked;            /* XPUB: subscriptions kept in subs */
    char **subs;             /* topic prefixes some subscriber wants */
    size_t n_subs;
    size_t subs_unkept;      /* subscribed but not kept (see below):
                                while any, every topic is wanted */
    bus_sock_t *next;
};

/* Distinct subscriptions kept per XPUB, and their length; beyond, every
 * topic counts as wanted (correct, only slower). */
#define BUS_SUBS_MAX 256
#define BUS_SUB_LEN_MAX 256

struct bus {
    struct event_base *base;
    void *ctx;
    bool own_ctx;           /* terminated by bus_destroy */
    bus_sock_t *socks;
};

static const struct timeval s_zero_tv = {0, 0};

bus_t *bus_new(struct event_base *base, char *err, size_t errlen)
{
    bus_t *self = xcalloc(1, sizeof *self);
    self->base = base;
    self->ctx = zmq_ctx_new();
    if (self->ctx == NULL) {
        snprintf(err, errlen, "cannot create ZeroMQ context: %s",
                 zmq_strerror(errno));
        free(self);
        return NULL;
    }
    self->own_ctx = true;
    return self;
}

bus_t *bus_new_shared(struct event_base *base, void *ctx)
{
    bus_t *self = xcalloc(1, sizeof *self);
    self->base = base;
    self->ctx = ctx;
    return self;
}

static void s_sock_free(bus_sock_t *s)
{
    if (s->ev_fd) {
        event_del(s->ev_fd); /* before zmq_close: ZMQ_FD dies with it */
        event_free(s->ev_fd);
    }
    if (s->ev_rearm)
        event_free(s->ev_rearm);
    if (s->zsock)
        zmq_close(s->zsock);
    for (size_t i = 0; i < s->n_subs; i++)
        free(s->subs[i]);
    free(s->subs);
    free(s->endpoint);
    free(s);
}

void bus_destroy(bus_t **self_p)
{
    bus_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->socks) {
        bus_sock_t *s = self->socks;
        self->socks = s->next;
        s_sock_free(s);
    }
    /* Every socket has a finite linger, so this returns. */
    while (self->own_ctx && zmq_ctx_term(self->ctx) == -1 && errno == EINTR)
        ;
    free(self);
    *self_p = NULL;
}

static int s_setopt_int(void *zs, int opt, int value)
{
    return zmq_setsockopt(zs, opt, &value, sizeof value);
}

/* A draft option of libzmq 4.3 (Debian builds the drafts in): a CURVE
 * server with a ZAP domain refuses handshakes while no ZAP handler is
 * bound, instead of admitting everyone (start-up, shutdown). */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

static int s_setopt_str(void *zs, int opt, const char *value)
{
    return zmq_setsockopt(zs, opt, value, strlen(value) + 1);
}

static int s_set_curve(void *zs, const bus_opts_t *opts, bool bind)
{
    if (opts->curve_secret == NULL)
        return 0;
    if (bind && opts->curve_server_key == NULL)
        return s_setopt_int(zs, ZMQ_CURVE_SERVER, 1) == -1 ||
                       s_setopt_str(zs, ZMQ_CURVE_SECRETKEY, opts->curve_secret) == -1 ||
                       zmq_setsockopt(zs, ZMQ_ZAP_DOMAIN, "funneld", 7) == -1 ||
                       s_setopt_int(zs, ZMQ_ZAP_ENFORCE_DOMAIN, 1) == -1
                   ? -1
                   : 0;
    if (opts->curve_server_key == NULL || opts->curve_public == NULL)
        return 0;
    return s_setopt_str(zs, ZMQ_CURVE_SERVERKEY, opts->curve_server_key) == -1 ||
                   s_setopt_str(zs, ZMQ_CURVE_PUBLICKEY, opts->curve_public) == -1 ||
                   s_setopt_str(zs, ZMQ_CURVE_SECRETKEY, opts->curve_secret) == -1
               ? -1
               : 0;
}

bus_sock_t *bus_socket(bus_t *self, int type, const char *endpoint, bool bind,
                       const bus_opts_t *opts, char *err, size_t errlen)
{
    bus_sock_t *s = xcalloc(1, sizeof *s);
    s->bus = self;
    s->endpoint = xstrdup(endpoint);
    s->zsock = zmq_socket(self->ctx, type);
    if (s->zsock == NULL)
        goto fail;
    /* The default linger is infinite: a peer that never reads would hang
     * shutdown in zmq_ctx_term. */
    if (s_setopt_int(s->zsock, ZMQ_LINGER, opts->linger_ms) == -1)
        goto fail;
    if (opts->max_msg_bytes != 0 &&
        zmq_setsockopt(s->zsock, ZMQ_MAXMSGSIZE, &opts->max_msg_bytes,
                       sizeof opts->max_msg_bytes) == -1)
        goto fail;
    if (opts->sndhwm > 0 && s_setopt_int(s->zsock, ZMQ_SNDHWM, opts->sndhwm) == -1)
        goto fail;
    if (opts->rcvhwm > 0 && s_setopt_int(s->zsock, ZMQ_RCVHWM, opts->rcvhwm) == -1)
        goto fail;
    if (s_set_curve(s->zsock, opts, bind) == -1)
        goto fail;
    if ((bind ? zmq_bind(s->zsock, endpoint) : zmq_connect(s->zsock, endpoint)) == -1)
        goto fail;

    int fd;
    size_t fdlen = sizeof fd;
    if (zmq_getsockopt(s->zsock, ZMQ_FD, &fd, &fdlen) == -1)
        goto fail;
    s->next = self->socks;
    self->socks = s;
    return s;

fail:
    snprintf(err, errlen, "cannot %s %s: %s", bind ? "bind" : "connect to",
             endpoint, zmq_strerror(errno));
    s_sock_free(s);
    return NULL;
}

int bus_subscribe(bus_sock_t *sock, const char *prefix)
{
    return zmq_setsockopt(sock->zsock, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
}

int bus_unsubscribe(bus_sock_t *sock, const char *prefix)
{
    return zmq_setsockopt(sock->zsock, ZMQ_UNSUBSCRIBE, prefix, strlen(prefix));
}

int bus_bind(bus_sock_t *sock, const char *endpoint, char *err, size_t errlen)
{
    if (zmq_bind(sock->zsock, endpoint) == -1) {
        snprintf(err, errlen, "cannot bind %s: %s", endpoint, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

void *bus_context(bus_t *self)
{
    return self->ctx;
}

const char *bus_endpoint(const bus_sock_t *sock)
{
    return sock->endpoint;
}

static int s_zevents(bus_sock_t *s)
{
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(s->zsock, ZMQ_EVENTS, &events, &len) == -1)
        return 0;
    return events;
}

/* Receive one whole multipart message and hand it over. Returns 0, or -1
 * when nothing was there (EAGAIN) or the socket failed. */
static int s_recv_one(bus_sock_t *s)
{
    bus_msg_t msg;
    zmq_msg_t extra;
    int more = 1;

    msg.n = 0;
    msg.truncated = false;
    while (more) {
        zmq_msg_t *part = msg.n < BUS_PARTS_MAX ? &msg.part[msg.n] : &extra;
        zmq_msg_init(part);
        if (zmq_msg_recv(part, s->zsock, ZMQ_DONTWAIT) == -1) {
            int e = errno;
            zmq_msg_close(part);
            for (int i = 0; i < msg.n; i++)
                zmq_msg_close(&msg.part[i]);
            if (e != EAGAIN)
                log_warn("[bus] receive on %s: %s", s->endpoint, zmq_strerror(e));
            return -1;
        }
        more = zmq_msg_more(part);
        if (part == &extra) {
            msg.truncated = true;
            zmq_msg_close(&extra);
        } else {
            msg.n++;
        }
    }
    s->fn(s, &msg, s->arg);
    for (int i = 0; i < msg.n; i++)
        zmq_msg_close(&msg.part[i]);
    return 0;
}

/* Schedule another drain if messages are waiting: no edge will announce
 * them. */
static void s_kick(bus_sock_t *s)
{
    if (s->fn && !s->paused && (s_zevents(s) & ZMQ_POLLIN))
        evtimer_add(s->ev_rearm, &s_zero_tv);
}

static void s_drain(bus_sock_t *s)
{
    int budget = s->budget;
    s->yield = false;
    while (budget-- > 0 && !s->paused && !s->yield && (s_zevents(s) & ZMQ_POLLIN))
        if (s_recv_one(s) == -1)
            break;
    s_kick(s);
}

void bus_yield(bus_sock_t *sock)
{
    sock->yield = true;
}

static void s_on_fd(evutil_socket_t fd, short what, void *arg)
{
    s_drain(arg);
}

static void s_on_rearm(evutil_socket_t fd, short what, void *arg)
{
    s_drain(arg);
}

void bus_on_recv(bus_sock_t *sock, bus_recv_fn *fn, void *arg, int budget)
{
    int fd;
    size_t fdlen = sizeof fd;

    sock->fn = fn;
    sock->arg = arg;
    sock->budget = budget > 0 ? budget : 1;
    zmq_getsockopt(sock->zsock, ZMQ_FD, &fd, &fdlen);
    sock->ev_fd = event_new(sock->bus->base, fd, EV_READ | EV_PERSIST, s_on_fd, sock);
    sock->ev_rearm = evtimer_new(sock->bus->base, s_on_rearm, sock);
    if (sock->ev_fd == NULL || sock->ev_rearm == NULL || event_add(sock->ev_fd, NULL) == -1) {
        log_err("[bus] cannot watch %s", sock->endpoint);
        abort();
    }
    /* The edge may have fired before we watched the fd. */
    s_kick(sock);
}

void bus_pause(bus_sock_t *sock)
{
    if (sock->paused || sock->ev_fd == NULL)
        return;
    sock->paused = true;
    event_del(sock->ev_fd);
    evtimer_del(sock->ev_rearm);
}

void bus_resume(bus_sock_t *sock)
{
    if (!sock->paused)
        return;
    sock->paused = false;
    event_add(sock->ev_fd, NULL);
    s_kick(sock);
}

int bus_send(bus_sock_t *sock, const void *const *data, const size_t *len, int n)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
        if (zmq_send(sock->zsock, data[i], len[i], flags) == -1) {
            rc = -1;
            break;
        }
    }
    /* zmq_send may consume the edge that announced incoming messages. */
    int e = errno;
    if (sock->ev_rearm)
        s_kick(sock);
    errno = e;
    return rc;
}

int bus_reply(bus_sock_t *sock, zmq_msg_t *envelope, int n_envelope,
              const void *body, size_t len)
{
    const void *parts[BUS_PARTS_MAX];
    size_t lens[BUS_PARTS_MAX];
    int n = 0;
    for (int i = 0; i < n_envelope && n + 1 < BUS_PARTS_MAX; i++) {
        parts[n] = zmq_msg_data(&envelope[i]);
        lens[n++] = zmq_msg_size(&envelope[i]);
    }
    parts[n] = body;
    lens[n++] = len;
    return bus_send(sock, parts, lens, n);
}

/* -- XPUB subscriptions -------------------------------------------------- */

/* bus_recv_fn of a tracked XPUB: [1 prefix] subscribes, [0 prefix]
 * unsubscribes. Without ZMQ_XPUB_VERBOSE, libzmq passes a prefix's first
 * subscription and its last unsubscription only (a subscriber that goes
 * away unsubscribes all it had), so the prefixes form a set. */
static void s_on_subscription(bus_sock_t *s, bus_msg_t *msg, void *arg)
{
    (void)arg;
    if (msg->n != 1 || zmq_msg_size(&msg->part[0]) < 1)
        return;
    const char *data = zmq_msg_data(&msg->part[0]);
    size_t len = zmq_msg_size(&msg->part[0]) - 1;
    if (data[0] != 0 && data[0] != 1)
        return; /* not a subscription: XPUB passes other messages too */
    size_t i = 0;
    while (i < s->n_subs &&
           !(strlen(s->subs[i]) == len && memcmp(s->subs[i], data + 1, len) == 0))
        i++;
    if (data[0] == 1 && i == s->n_subs) {
        if (s->n_subs == BUS_SUBS_MAX || len > BUS_SUB_LEN_MAX ||
            memchr(data + 1, '\0', len)) {
            s->subs_unkept++;
            return;
        }
        s->subs = xrealloc(s->subs, (s->n_subs + 1) * sizeof *s->subs);
        s->subs[s->n_subs] = xmalloc(len + 1);
        memcpy(s->subs[s->n_subs], data + 1, len);
        s->subs[s->n_subs][len] = '\0';
        s->n_subs++;
    } else if (data[0] == 0 && i < s->n_subs) {
        free(s->subs[i]);
        s->subs[i] = s->subs[--s->n_subs];
    } else if (data[0] == 0 && s->subs_unkept > 0) {
        /* libzmq passes only unsubscriptions of what it passed as
         * subscribed: this is one of the prefixes not kept. */
        s->subs_unkept--;
    }
}

void bus_track_subscriptions(bus_sock_t *sock, int budget)
{
    sock->tracked = true;
    bus_on_recv(sock, s_on_subscription, NULL, budget);
}

void bus_refresh(bus_sock_t *sock)
{
    if (sock->fn && !sock->paused)
        s_drain(sock);
}

bool bus_wanted(const bus_sock_t *sock, const char *topic)
{
    if (!sock->tracked || sock->subs_unkept > 0)
        return true;
    for (size_t i = 0; i < sock->n_subs; i++)
        if (strncmp(topic, sock->subs[i], strlen(sock->subs[i])) == 0)
            return true;
    return false;
}
