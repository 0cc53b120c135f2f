/* ctl_ingest.c: funnelctl's reliable ingest client (publish and send).
 *
 * A DEALER to funneld's ingest ROUTER: each batch is one EventBatch frame,
 * answered by one Ack frame after funneld's durable commit. Up to `window`
 * batches are in flight; one without an Ack is resent as is (same batch id,
 * so funneld's duplicate detection makes the resend harmless) after
 * ack_timeout seconds, doubling up to S_BACKOFF_MAX_MS, `retries` times.
 * See ctl.h for the calls.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ndjson.h"
#include "xalloc.h"

/* Longest wait between two resends of a batch. */
#define S_BACKOFF_MAX_MS 60000

static void s_batch_clear(ctl_batch_t *b)
{
    free(b->buf);
    free(b->lines);
    memset(b, 0, sizeof *b);
}

/* The lines of a batch, "12" or "12-40", for messages. */
static const char *s_batch_lines(const ctl_batch_t *b, char *buf, size_t size)
{
    if (b->n == 0)
        snprintf(buf, size, "?");
    else if (b->n == 1 || b->lines[0] == b->lines[b->n - 1])
        snprintf(buf, size, "%" PRIu64, b->lines[0]);
    else
        snprintf(buf, size, "%" PRIu64 "-%" PRIu64, b->lines[0], b->lines[b->n - 1]);
    return buf;
}

static long s_backoff_ms(const ctl_ingest_t *in, int attempts)
{
    double ms = in->ack_timeout * 1000.0;
    for (int i = 1; i < attempts && ms < S_BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > S_BACKOFF_MAX_MS)
        ms = S_BACKOFF_MAX_MS;
    return ms < 1 ? 1 : (long)ms;
}

/* (Re)send a batch and arm its deadline. Returns 0 or -1 (printed). */
static int s_batch_send(ctl_ingest_t *in, ctl_batch_t *b)
{
    b->attempts++;
    b->deadline_ms = ctl_mono_ms() + s_backoff_ms(in, b->attempts);
    if (zmq_send(in->sock, b->buf, b->len, ZMQ_DONTWAIT) == -1) {
        if (zmq_errno() == EAGAIN)
            return 0; /* queue full (daemon away): the deadline resends */
        ctl_error("cannot send to %s: %s", in->g->cfg.ingest, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

int ctl_ingest_submit(ctl_ingest_t *in, Funnel__V1__Event **events, uint64_t *lines,
                      size_t n)
{
    ctl_batch_t *b = NULL;
    for (long i = 0; i < in->window; i++)
        if (!in->slots[i].used) {
            b = &in->slots[i];
            break;
        }
    assert(b);

    Funnel__V1__EventBatch batch = FUNNEL__V1__EVENT_BATCH__INIT;
    b->used = true;
    snprintf(b->id, sizeof b->id, "%s-%" PRIu64, in->run_id, ++in->next_batch);
    batch.batch_id = b->id;
    batch.events = events;
    batch.n_events = n;
    b->len = funnel__v1__event_batch__get_packed_size(&batch);
    b->buf = xcalloc(1, b->len);
    funnel__v1__event_batch__pack(&batch, b->buf);
    b->n = n;
    b->lines = lines;
    for (size_t i = 0; i < n; i++)
        ndjson_event_destroy(&events[i]);

    in->inflight++;
    in->sent += n;
    return s_batch_send(in, b);
}

/* Account for one Ack: find its batch (an Ack for a batch no longer in
 * flight, the answer to an earlier send of it, is ignored), add its
 * counts, report rejected events (or the refusal of the whole batch) as
 * "NAME:LINE: ..." unless quiet, remember the last outcome for send, free
 * the slot. */
static void s_on_ack(ctl_ingest_t *in, const Funnel__V1__Ack *ack)
{
    ctl_batch_t *b = NULL;
    char range[64];
    for (long i = 0; i < in->window; i++)
        if (in->slots[i].used && strcmp(in->slots[i].id, ack->batch_id) == 0) {
            b = &in->slots[i];
            break;
        }
    if (!b)
        return; /* the Ack of an earlier send of a batch already acked */

    if (ack->error[0]) {
        /* Whole message refused: nothing of it applied, not resent. */
        if (!in->quiet)
            ctl_error("%s:%s: batch refused by funneld: %s", in->name,
                      s_batch_lines(b, range, sizeof range), ack->error);
        in->rejected += b->n;
        snprintf(in->last_result, sizeof in->last_result, "refused");
        snprintf(in->last_reason, sizeof in->last_reason, "%s", ack->error);
    } else {
        in->accepted += ack->accepted;
        in->duplicates += ack->duplicates;
        snprintf(in->last_result, sizeof in->last_result,
                 ack->accepted ? "accepted" : ack->duplicates ? "duplicate" : "rejected");
        in->last_reason[0] = '\0';
        for (size_t i = 0; i < ack->n_rejections; i++) {
            const Funnel__V1__Rejection *r = ack->rejections[i];
            in->rejected++;
            snprintf(in->last_result, sizeof in->last_result, "rejected");
            snprintf(in->last_reason, sizeof in->last_reason, "%s", r->reason);
            if (in->quiet)
                continue;
            if (r->index < b->n)
                ctl_error("%s:%" PRIu64 ": rejected by funneld: %s", in->name,
                          b->lines[r->index], r->reason);
            else
                ctl_error("%s:%s: rejected by funneld (event %s): %s", in->name,
                          s_batch_lines(b, range, sizeof range), r->event_id, r->reason);
        }
    }
    s_batch_clear(b);
    in->inflight--;
}

int ctl_ingest_pump(ctl_ingest_t *in, long max_wait_ms)
{
    int64_t now = ctl_mono_ms();
    long wait = max_wait_ms;
    for (long i = 0; i < in->window; i++) {
        if (!in->slots[i].used)
            continue;
        long left = (long)(in->slots[i].deadline_ms - now);
        if (left < 0)
            left = 0;
        if (wait < 0 || left < wait)
            wait = left;
    }

    int r = ctl_wait_readable(in->sock, wait);
    if (r == -1) {
        if (zmq_errno() == EINTR)
            return 0;
        ctl_error("cannot receive from %s: %s", in->g->cfg.ingest, zmq_strerror(zmq_errno()));
        return -1;
    }
    /* Drain every Ack that is there. */
    while (r == 1) {
        zmq_msg_t msg;
        if (ctl_recv_payload(in->sock, &msg, ZMQ_DONTWAIT) == -1)
            break;
        Funnel__V1__Ack *ack =
            funnel__v1__ack__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
        zmq_msg_close(&msg);
        if (!ack) {
            ctl_error("undecodable Ack from funneld at %s (ignored)", in->g->cfg.ingest);
            continue;
        }
        s_on_ack(in, ack);
        funnel__v1__ack__free_unpacked(ack, NULL);
    }

    now = ctl_mono_ms();
    for (long i = 0; i < in->window; i++) {
        ctl_batch_t *b = &in->slots[i];
        if (!b->used || b->deadline_ms > now)
            continue;
        if (b->attempts > in->retries) {
            char range[64];
            if (in->quiet)
                ctl_error("no Ack from funneld at %s after %d attempts (is it running?)",
                          in->g->cfg.ingest, b->attempts);
            else
                ctl_error("no Ack from funneld at %s for %s:%s after %d attempts (is it "
                          "running?)",
                          in->g->cfg.ingest, in->name, s_batch_lines(b, range, sizeof range),
                          b->attempts);
            return -1;
        }
        if (s_batch_send(in, b) == -1)
            return -1;
    }
    return 0;
}

int ctl_ingest_open(ctl_ingest_t *in, void *ctx, ctl_opts_t *g)
{
    const char *ep = g->cfg.ingest;
    in->g = g;
    in->slots = xcalloc(1, (size_t)in->window * sizeof *in->slots);
    ctl_random_hex(in->run_id, 8);
    in->sock = zmq_socket(ctx, ZMQ_DEALER);
    if (in->sock == NULL) {
        ctl_error("cannot create a socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    /* Queue only to a connected funneld, so that an absent one is noticed
     * in --timeout seconds instead of after every resend. */
    int linger = 0, immediate = 1;
    if (ctl_curve(g, in->sock) == -1)
        return -1;
    if (zmq_setsockopt(in->sock, ZMQ_LINGER, &linger, sizeof linger) == -1 ||
        zmq_setsockopt(in->sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate) == -1 ||
        zmq_connect(in->sock, ep) == -1) {
        ctl_error("cannot connect to \"%s\": %s", ep, zmq_strerror(zmq_errno()));
        return -1;
    }
    double timeout = ctl_timeout(g, 0);
    if (!(timeout > 0))
        timeout = CTL_TIMEOUT_S;
    zmq_pollitem_t item = {.socket = in->sock, .events = ZMQ_POLLOUT};
    int r = zmq_poll(&item, 1, (long)(timeout * 1000));
    if (r <= 0) {
        ctl_error("funneld is not reachable at %s: no connection within %g s (is it "
                  "running? see --ingest%s)", ep, timeout, ctl_curve_hint(g));
        return -1;
    }
    return 0;
}

void ctl_ingest_close(ctl_ingest_t *in)
{
    if (in->slots)
        for (long i = 0; i < in->window; i++)
            s_batch_clear(&in->slots[i]);
    free(in->slots);
    in->slots = NULL;
    if (in->sock)
        zmq_close(in->sock);
    in->sock = NULL;
}
