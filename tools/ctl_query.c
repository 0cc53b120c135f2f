/* ctl_query.c: funnelctl's query client, QueryRequests out to funneld's
 * query ROUTER through a DEALER and QueryReplies back, within a deadline;
 * see ctl.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "xalloc.h"

/* Largest reply funnelctl accepts (a lead with a long timeline, a page of
 * a listing). */
#define S_MAX_REPLY (64 * 1024 * 1024)

int ctl_query_open(ctl_query_conn_t *c, ctl_opts_t *g)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    c->ctx = zmq_ctx_new();
    if (!c->ctx || !(c->sock = ctl_socket(g, c->ctx, ZMQ_DEALER, g->cfg.query))) {
        ctl_query_close(c);
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

void ctl_query_close(ctl_query_conn_t *c)
{
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    c->sock = c->ctx = NULL;
}

int ctl_query_send(ctl_query_conn_t *c, Funnel__V1__QueryRequest *req)
{
    const char *ep = c->g->cfg.query;
    ctl_random_hex(c->request_id, 16);
    req->request_id = c->request_id;
    size_t len = funnel__v1__query_request__get_packed_size(req);
    uint8_t *buf = xmalloc(len ? len : 1);
    funnel__v1__query_request__pack(req, buf);
    req->request_id = (char *)protobuf_c_empty_string;
    /* Never block on send either: the message is queued for the
     * connection, which may not be up yet. */
    int rc = zmq_send(c->sock, buf, len, ZMQ_DONTWAIT);
    free(buf);
    if (rc == -1) {
        ctl_error("cannot send to %s: %s", ep, zmq_strerror(zmq_errno()));
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

/* Wait for the QueryReply that carries the last request's id (replies
 * with another id are late answers to earlier requests and are skipped).
 * Returns CTL_EXIT_OK with *reply_out set (the caller frees it), or
 * CTL_EXIT_USAGE with the error printed: the socket failed, no reply
 * within the timeout, an undecodable reply, or reply.error set. A signal
 * (EINTR) ends the wait with CTL_EXIT_USAGE and no message. */
static int s_recv(ctl_query_conn_t *c, Funnel__V1__QueryReply **reply_out)
{
    const char *ep = c->g->cfg.query;
    double timeout = ctl_timeout(c->g, CTL_TIMEOUT_S);

    *reply_out = NULL;
    int64_t deadline = timeout > 0 ? ctl_mono_ms() + (int64_t)(timeout * 1000) : -1;
    for (;;) {
        long wait = -1;
        if (deadline >= 0) {
            wait = (long)(deadline - ctl_mono_ms());
            if (wait < 0)
                wait = 0;
        }
        int r = ctl_wait_readable(c->sock, wait);
        if (r == -1 && zmq_errno() == EINTR)
            return CTL_EXIT_USAGE; /* interrupted: exit 2 without more noise */
        if (r == -1) {
            ctl_error("cannot receive from %s: %s", ep, zmq_strerror(zmq_errno()));
            return CTL_EXIT_USAGE;
        }
        if (r == 0) {
            ctl_error("no reply from funneld at %s within %g s (is it running?%s)", ep,
                      timeout, ctl_curve_hint(c->g));
            return CTL_EXIT_USAGE;
        }
        zmq_msg_t msg;
        if (ctl_recv_payload(c->sock, &msg, ZMQ_DONTWAIT) == -1)
            continue; /* spurious wakeup */
        Funnel__V1__QueryReply *reply = NULL;
        if (zmq_msg_size(&msg) <= S_MAX_REPLY)
            reply = funnel__v1__query_reply__unpack(NULL, zmq_msg_size(&msg),
                                                    zmq_msg_data(&msg));
        zmq_msg_close(&msg);
        if (!reply) {
            ctl_error("undecodable reply from funneld at %s", ep);
            return CTL_EXIT_USAGE;
        }
        if (reply->request_id[0] && strcmp(reply->request_id, c->request_id) != 0) {
            funnel__v1__query_reply__free_unpacked(reply, NULL);
            continue; /* a late answer to someone else's request */
        }
        if (reply->error[0]) {
            ctl_error("funneld at %s: %s", ep, reply->error);
            funnel__v1__query_reply__free_unpacked(reply, NULL);
            return CTL_EXIT_USAGE;
        }
        *reply_out = reply;
        return CTL_EXIT_OK;
    }
}

int ctl_query_recv(ctl_query_conn_t *c, Funnel__V1__QueryReply__ReplyCase want,
                   const char *what, Funnel__V1__QueryReply **reply_out)
{
    int rc = s_recv(c, reply_out);
    if (rc != CTL_EXIT_OK)
        return rc;
    if ((*reply_out)->reply_case != want) {
        ctl_error("funneld at %s answered a %s query with something else", c->g->cfg.query,
                  what);
        funnel__v1__query_reply__free_unpacked(*reply_out, NULL);
        *reply_out = NULL;
        return CTL_EXIT_USAGE;
    }
    return CTL_EXIT_OK;
}

int ctl_query(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
              Funnel__V1__QueryReply__ReplyCase want, const char *what,
              Funnel__V1__QueryReply **reply_out)
{
    ctl_query_conn_t c;
    *reply_out = NULL;
    if (g->cfg.nats && g->cfg.nats[0])
        return ctl_nats_query(g, req, want, what, reply_out);
    int rc = ctl_query_open(&c, g);
    if (rc == CTL_EXIT_OK)
        rc = ctl_query_send(&c, req);
    if (rc == CTL_EXIT_OK)
        rc = ctl_query_recv(&c, want, what, reply_out);
    ctl_query_close(&c);
    return rc;
}
