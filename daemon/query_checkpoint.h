/* query_checkpoint.h: the query thread's side of checkpoints and the log:
 * the CheckpointQuery (funnelctl checkpoint) and the log and checkpoint
 * fields of Stats. Query thread; the replies point into the caller's
 * query_ckpt_buf_t, valid until it goes out of scope.
 */
#ifndef FUNNELD_QUERY_CHECKPOINT_H
#define FUNNELD_QUERY_CHECKPOINT_H

#include "funnel.pb-c.h"
#include "query.h"

typedef struct {
    Funnel__V1__CheckpointReply reply;
    Funnel__V1__CheckpointInfo info[STORE_CKPT_MAX];
    Funnel__V1__CheckpointInfo *ptrs[STORE_CKPT_MAX];
    store_ckpt_t list[STORE_CKPT_MAX];
    char error[512];
} query_ckpt_buf_t;

/* Answer a CheckpointQuery into *r (its checkpoint reply or its error):
 * ticket 0 asks for a checkpoint now, another follows that ticket. */
void query_checkpoint(query_t *q, const Funnel__V1__CheckpointQuery *cq,
                      Funnel__V1__QueryReply *r, query_ckpt_buf_t *buf);

/* Fill the log and checkpoint fields of s (numbers 40-49). */
void query_checkpoint_stats(query_t *q, Funnel__V1__Stats *s, query_ckpt_buf_t *buf);

#endif
