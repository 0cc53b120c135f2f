/* ctl_query.c: funnelctl's query client, one QueryRequest out to funneld's
 * query ROUTER through a DEALER and one QueryReply back, within a deadline;
 * see ctl.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "xalloc.h"

/* Largest reply funnelctl accepts (a lead with a long timeline). */
#define S_MAX_REPLY (64 * 1024 * 1024)

/* Send req and wait for the QueryReply that carries its request id
 * (replies with another id are late answers to earlier requests and are
 * skipped). Returns CTL_EXIT_OK with *reply_out set (the caller frees it),
 * or CTL_EXIT_USAGE with the error printed: the socket failed, no reply
 * within the timeout, an undecodable reply, or reply.error set. A signal
 * (EINTR) ends the wait with CTL_EXIT_USAGE and no message. The socket and
 * its context live for this call only. */
static int s_request(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
                     Funnel__V1__QueryReply **reply_out)
{
    int rc = CTL_EXIT_USAGE;
    void *ctx = zmq_ctx_new(), *sock = NULL;
    uint8_t *buf = NULL;
    char request_id[33];
    const char *ep = g->cfg.query;
    double timeout = ctl_timeout(g, CTL_TIMEOUT_S);

    *reply_out = NULL;
    ctl_random_hex(request_id, 16);
    req->request_id = request_id;
    if (!ctx || !(sock = ctl_socket(g, ctx, ZMQ_DEALER, ep)))
        goto done;

    size_t len = funnel__v1__query_request__get_packed_size(req);
    buf = xcalloc(1, len);
    funnel__v1__query_request__pack(req, buf);
    /* Never block on send either: the message is queued for the
     * connection, which may not be up yet. */
    if (zmq_send(sock, buf, len, ZMQ_DONTWAIT) == -1) {
        ctl_error("cannot send to %s: %s", ep, zmq_strerror(zmq_errno()));
        goto done;
    }

    int64_t deadline = timeout > 0 ? ctl_mono_ms() + (int64_t)(timeout * 1000) : -1;
    for (;;) {
        long wait = -1;
        if (deadline >= 0) {
            wait = (long)(deadline - ctl_mono_ms());
            if (wait < 0)
                wait = 0;
        }
        int r = ctl_wait_readable(sock, wait);
        if (r == -1 && zmq_errno() == EINTR)
            goto done; /* interrupted: exit 2 without more noise */
        if (r == -1) {
            ctl_error("cannot receive from %s: %s", ep, zmq_strerror(zmq_errno()));
            goto done;
        }
        if (r == 0) {
            ctl_error("no reply from funneld at %s within %g s (is it running?%s)", ep,
                      timeout, ctl_curve_hint(g));
            goto done;
        }
        zmq_msg_t msg;
        if (ctl_recv_payload(sock, &msg, ZMQ_DONTWAIT) == -1)
            continue; /* spurious wakeup */
        Funnel__V1__QueryReply *reply = NULL;
        if (zmq_msg_size(&msg) <= S_MAX_REPLY)
            reply = funnel__v1__query_reply__unpack(NULL, zmq_msg_size(&msg),
                                                    zmq_msg_data(&msg));
        zmq_msg_close(&msg);
        if (!reply) {
            ctl_error("undecodable reply from funneld at %s", ep);
            goto done;
        }
        if (reply->request_id[0] && strcmp(reply->request_id, request_id) != 0) {
            funnel__v1__query_reply__free_unpacked(reply, NULL);
            continue; /* a late answer to someone else's request */
        }
        if (reply->error[0]) {
            ctl_error("funneld at %s: %s", ep, reply->error);
            funnel__v1__query_reply__free_unpacked(reply, NULL);
            goto done;
        }
        *reply_out = reply;
        rc = CTL_EXIT_OK;
        goto done;
    }
done:
    req->request_id = (char *)protobuf_c_empty_string;
    free(buf);
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

int ctl_query(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
              Funnel__V1__QueryReply__ReplyCase want, const char *what,
              Funnel__V1__QueryReply **reply_out)
{
    int rc = s_request(g, req, reply_out);
    if (rc != CTL_EXIT_OK)
        return rc;
    if ((*reply_out)->reply_case != want) {
        ctl_error("funneld at %s answered a %s query with something else", g->cfg.query,
                  what);
        funnel__v1__query_reply__free_unpacked(*reply_out, NULL);
        *reply_out = NULL;
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}
