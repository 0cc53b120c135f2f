/* query_checkpoint.c: see query_checkpoint.h. */
#include "query_checkpoint.h"

#include <stdio.h>
#include <string.h>

#include "checkpoint.h"

static void s_info(Funnel__V1__CheckpointInfo *info, store_ckpt_t *c)
{
    funnel__v1__checkpoint_info__init(info);
    info->name = c->name;
    info->seq = c->seq;
    info->bytes = c->bytes;
    info->created_ms = c->created_ms;
}

void query_checkpoint(query_t *q, const Funnel__V1__CheckpointQuery *cq,
                      Funnel__V1__QueryReply *r, query_ckpt_buf_t *buf)
{
    Funnel__V1__CheckpointReply *cr = &buf->reply;
    if (q->checkpoint == NULL) {
        r->error = (char *)"checkpoints are not available in this process";
        return;
    }
    funnel__v1__checkpoint_reply__init(cr);
    uint64_t ticket = cq->ticket ? cq->ticket : checkpoint_request(q->checkpoint);
    buf->error[0] = '\0';
    checkpoint_state_t st = checkpoint_status(q->checkpoint, ticket, &buf->list[0],
                                              buf->error, sizeof buf->error);
    cr->ticket = ticket;
    cr->pending = st == CHECKPOINT_PENDING;
    cr->done = st == CHECKPOINT_DONE;
    cr->failed = st == CHECKPOINT_FAILED;
    cr->error = buf->error;
    if (st == CHECKPOINT_DONE) {
        s_info(&buf->info[0], &buf->list[0]);
        cr->checkpoint = &buf->info[0];
    }
    checkpoint_stats_t cs;
    checkpoint_stats(q->checkpoint, &cs);
    cr->took_ms = cs.last_ms;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_CHECKPOINT;
    r->checkpoint = cr;
}

void query_checkpoint_stats(query_t *q, Funnel__V1__Stats *s, query_ckpt_buf_t *buf)
{
    uint64_t first, last, bytes, dropped;
    store_log_read(q->store, &first, &last, &bytes, &dropped);
    s->log_first_seq = first;
    s->log_bytes = bytes;
    s->log_dropped = dropped;
    size_t n = store_checkpoint_list(store_dir(q->store), buf->list, STORE_CKPT_MAX);
    for (size_t i = 0; i < n; i++) {
        s_info(&buf->info[i], &buf->list[i]);
        buf->ptrs[i] = &buf->info[i];
    }
    s->n_checkpoints = n;
    s->checkpoints = buf->ptrs;
    buf->error[0] = '\0';
    if (q->checkpoint) {
        checkpoint_stats_t cs;
        checkpoint_stats(q->checkpoint, &cs);
        s->checkpoints_taken = cs.taken;
        s->checkpoints_failed = cs.failed;
        s->checkpoints_yielded = cs.yielded;
        s->checkpoint_running = cs.running;
        snprintf(buf->error, sizeof buf->error, "%s", cs.error);
    }
    s->checkpoint_error = buf->error;
    s->recovery = (char *)store_recovery(q->store);
    s->replayed_at_start = q->replayed_at_start;
}
