/* auth.h: CURVE for funneld's endpoints. The server's key pair (from
 * curve_secret_file), the allowlist of client public keys (from
 * curve_clients_file, reloaded on SIGHUP) and the ZAP handler (RFC 27)
 * that applies the allowlist to every CURVE handshake.
 *
 * libzmq asks a ZAP handler bound at inproc://zeromq.zap.01 in the
 * socket's own context about every client that completes the CURVE
 * handshake; funneld has two contexts (the loop thread's and the query
 * thread's), so the handler binds one REP socket in each (auth_attach).
 *
 * Threading: the handler runs in a thread of its own, not on the loop
 * thread: the loop thread spends up to hundreds of milliseconds in a group
 * commit (its fsync), or seconds retrying a failing store, and a client
 * that connects meanwhile must still be answered at once. The allowlist is
 * shared with the loop thread (which reloads it) under a mutex held only
 * for a lookup or a pointer swap; the refusal counter is atomic. Every
 * other function belongs to the thread that created the auth (the loop
 * thread), except auth_refused(), which any thread may call.
 */
#ifndef FUNNELD_AUTH_H
#define FUNNELD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "curvekey.h" /* key files; CURVEKEY_TEXT */

typedef struct auth auth_t;

/* The server key pair from secret_file and the allowlist from
 * clients_file. NULL and one line in err when either is unreadable or
 * malformed (the clients file's errors name its line). Caller owns the
 * result: auth_destroy(). */
auth_t *auth_new(const char *secret_file, const char *clients_file, char *err,
                 size_t errlen);

/* Stop the handler thread and close its ZAP sockets (a context cannot be
 * terminated before). Handshakes after this are refused (the CURVE
 * servers enforce their ZAP domain); auth_refused() and auth_clients()
 * still answer, for threads that are still running. Accepts NULL. */
void auth_stop(auth_t *self);

/* auth_stop(), then free: once no other thread uses self. Accepts NULL;
 * sets *self_p to NULL. */
void auth_destroy(auth_t **self_p);

/* The server's keys, Z85 (borrowed, valid as long as self). */
const char *auth_secret_key(const auth_t *self);
const char *auth_public_key(const auth_t *self);

/* Bind a ZAP handler socket in the ZeroMQ context zctx. Call it for each
 * context before any CURVE server socket of that context binds, and
 * before auth_start(). Returns 0, or -1 with a reason in err. */
int auth_attach(auth_t *self, void *zctx, char *err, size_t errlen);

/* Close the ZAP handler socket of zctx again (a failed start-up must
 * terminate that context). Only before auth_start(). */
void auth_detach(auth_t *self, void *zctx);

/* Start answering ZAP requests in the handler thread. Returns 0 or -1
 * (logged). */
int auth_start(auth_t *self);

/* Read the clients file again; on an error keep the current allowlist
 * and log why. Connections already made stay (ZAP runs at the
 * handshake): a revoked key is refused at its next connection. Returns 0
 * or -1. */
int auth_reload(auth_t *self);

/* Handshakes refused because the client key is not listed, since start.
 * Any thread; 0 for NULL. */
uint64_t auth_refused(const auth_t *self);

/* Number of client keys in the allowlist now. Any thread. */
size_t auth_clients(auth_t *self);

#endif
