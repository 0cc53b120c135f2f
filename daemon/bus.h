/* bus.h: ZeroMQ sockets driven by the libevent loop.
 *
 * The one place that knows how ZMQ_FD behaves: it signals edges, not
 * levels, and only ever becomes readable. So every socket (even a
 * write-only PUB) is watched for EV_READ, a wakeup drains messages while
 * ZMQ_EVENTS reports ZMQ_POLLIN, up to a work budget, and when messages
 * remain (budget spent) or may have arrived unseen (after a send, after
 * registering) a zero-timeout timer re-runs the drain after the loop has
 * polled everything else. Never event_active(): it would starve the rest.
 *
 * Threading: one loop thread owns the bus and all its sockets.
 */
#ifndef FUNNELD_BUS_H
#define FUNNELD_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

struct event_base;

typedef struct bus bus_t;
typedef struct bus_sock bus_sock_t;

/* A received multipart message. Parts beyond BUS_PARTS_MAX are dropped and
 * `truncated` is set. The bus closes every part after the handler returns;
 * a handler that keeps data copies it. */
#define BUS_PARTS_MAX 4
typedef struct {
    zmq_msg_t part[BUS_PARTS_MAX];
    int n;
    bool truncated;
} bus_msg_t;

typedef void bus_recv_fn(bus_sock_t *sock, bus_msg_t *msg, void *arg);

typedef struct {
    int linger_ms;          /* ZMQ_LINGER: how long close waits to flush */
    int64_t max_msg_bytes;  /* ZMQ_MAXMSGSIZE, -1: unlimited */
    int sndhwm;             /* ZMQ_SNDHWM, 0: libzmq's default */
    int rcvhwm;             /* ZMQ_RCVHWM, 0: libzmq's default */
    /* CURVE (Z85 keys, borrowed for the call), all NULL: none. A bound
     * socket with curve_secret is a CURVE server: it admits the clients
     * its context's ZAP handler allows (auth.h) and refuses every
     * handshake when there is none. A connecting socket with
     * curve_server_key is a CURVE client with the key pair curve_public /
     * curve_secret. */
    const char *curve_secret;
    const char *curve_public;
    const char *curve_server_key;
} bus_opts_t;

/* A bus on base. Caller owns the result: bus_destroy(). Returns NULL and
 * writes a reason into err when ZeroMQ cannot start. */
bus_t *bus_new(struct event_base *base, char *err, size_t errlen);

/* A bus on base whose sockets live in ctx, another bus's context (for
 * inproc peers of that bus's sockets, from another thread: each bus is
 * still owned by one thread). bus_destroy() closes its sockets but leaves
 * ctx alone, so it must come before the owner's. Never fails. */
bus_t *bus_new_shared(struct event_base *base, void *ctx);

/* Close every socket (each with its linger) and terminate the context.
 * Accepts NULL; sets *self_p to NULL. */
void bus_destroy(bus_t **self_p);

/* A socket of `type` (ZMQ_ROUTER, ZMQ_PUB, ZMQ_SUB, ...) bound to (bind
 * true) or connected to endpoint. Owned by the bus. NULL and a reason in
 * err on failure (bad endpoint, address in use). */
bus_sock_t *bus_socket(bus_t *self, int type, const char *endpoint, bool bind,
                       const bus_opts_t *opts, char *err, size_t errlen);

/* Subscribe a SUB socket to a topic prefix. Returns 0 or -1. */
int bus_subscribe(bus_sock_t *sock, const char *prefix);
/* Undo one bus_subscribe of prefix (ZeroMQ counts them). 0 or -1. */
int bus_unsubscribe(bus_sock_t *sock, const char *prefix);

/* Bind sock to one more endpoint (e.g. an inproc one beside its TCP
 * endpoint). Returns 0, or -1 and a reason in err. */
int bus_bind(bus_sock_t *sock, const char *endpoint, char *err, size_t errlen);

/* Deliver every message received on sock to fn(sock, msg, arg), at most
 * budget messages per wakeup. Starts watching immediately (and handles
 * messages already queued). */
void bus_on_recv(bus_sock_t *sock, bus_recv_fn *fn, void *arg, int budget);

/* Called from a receive callback: deliver no further message in this
 * wakeup. What is queued is delivered after the loop has polled once more
 * (a zero-timeout re-arm), so that signals, timers and other sockets get
 * their turn between long pieces of work (ingest yields after each group
 * commit: a budget of large batches would otherwise hold a SIGTERM back
 * for as long as applying all of them takes). Loop thread only. */
void bus_yield(bus_sock_t *sock);

/* Stop / restart delivering messages (they queue in ZeroMQ meanwhile). */
void bus_pause(bus_sock_t *sock);
void bus_resume(bus_sock_t *sock);

/* Send a multipart message of n parts without blocking (data is copied).
 * Returns 0, or -1 with errno (EAGAIN: high-water mark reached, the message
 * is dropped; EHOSTUNREACH: ROUTER peer gone). */
int bus_send(bus_sock_t *sock, const void *const *data, const size_t *len,
             int n);

/* Answer a request received on a ROUTER socket: the request's envelope
 * (its frames before the last: the peer's routing id, and whatever a
 * DEALER put before its body), n_envelope frames of which at most
 * BUS_PARTS_MAX - 1 are sent, then the body, as bus_send() (data copied,
 * the envelope stays the caller's). Returns bus_send()'s. */
int bus_reply(bus_sock_t *sock, zmq_msg_t *envelope, int n_envelope,
              const void *body, size_t len);

/* For an XPUB socket: keep the set of topic prefixes its subscribers
 * want, from the subscription messages it receives (read like any other
 * messages, budget per wakeup), so that a publisher can skip building
 * what nobody would receive. */
void bus_track_subscriptions(bus_sock_t *sock, int budget);

/* Handle now what is queued on sock (e.g. subscriptions) rather than at
 * the loop's next turn. */
void bus_refresh(bus_sock_t *sock);

/* Whether some subscriber of a tracked XPUB wants topic (some prefix of
 * it was subscribed to); always true for any other socket. */
bool bus_wanted(const bus_sock_t *sock, const char *topic);

/* The ZeroMQ context, for inproc peers in the same process (tests).
 * Borrowed. */
void *bus_context(bus_t *self);

/* The endpoint the socket was created with. Borrowed. */
const char *bus_endpoint(const bus_sock_t *sock);

#endif
