/* query_lab.c: the definition lab's queries, answered in the lab thread
 * (query_worker_new): a draft definition scored on the event log, replayed
 * into scratch states in memory (lab.h), reported by the same report code
 * as the live state (handlers/report.c). The live state and definition
 * are only read. */
#include "query_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "lab.h"
#include "log.h"
#include "report.h"
#include "xalloc.h"

/* A packed QueryReply of r. */
static uint8_t *s_pack(const Funnel__V1__QueryReply *r, size_t *len)
{
    *len = funnel__v1__query_reply__get_packed_size(r);
    uint8_t *buf = xmalloc(*len ? *len : 1);
    funnel__v1__query_reply__pack(r, buf);
    return buf;
}

static uint8_t *s_error(const char *request_id, const char *msg, size_t *len)
{
    Funnel__V1__QueryReply r;
    funnel__v1__query_reply__init(&r);
    r.request_id = (char *)request_id;
    r.error = (char *)msg;
    return s_pack(&r, len);
}

/* The daemon's time and the last log sequence, as a query sees them now. */
static int s_now(const query_t *q, int64_t *now_ms, uint64_t *last_seq)
{
    store_stats_t st;
    store_stats_read(q->store, &st, last_seq);
    if (store_read_begin(q->store) != STORE_OK)
        return -1;
    *now_ms = query_now_ms(q);
    store_read_end(q->store);
    return 0;
}

/* Load the draft of text (name for its messages). NULL and err. */
static defn_t *s_draft(const char *text, const char *name, char *err, size_t errlen)
{
    if (text == NULL || text[0] == '\0') {
        snprintf(err, errlen, "the draft definition is empty");
        return NULL;
    }
    return defn_load_buffer(text, strlen(text), name && name[0] ? name : "draft", err,
                            errlen);
}

/* quality --draft: report_quality over a scratch state of the draft. */
static uint8_t *s_quality_draft(const query_t *q, const Funnel__V1__QueryRequest *req,
                                const atomic_int *cancel, size_t *len)
{
    const Funnel__V1__QualityQuery *qq = req->quality;
    char err[1024];
    uint8_t *out = NULL;
    lab_t *lab = NULL;
    report_quality_t *rep = NULL;
    arena_t *a = NULL;
    defn_t *d = s_draft(qq->draft, qq->draft_name, err, sizeof err);
    if (d == NULL)
        return s_error(req->request_id, err, len);

    int64_t now;
    uint64_t upto;
    if (s_now(q, &now, &upto) == -1) {
        out = s_error(req->request_id, "storage error", len);
        goto done;
    }
    lab = lab_new(d, q->pipeline);
    long n = lab_replay_log(q->store, upto, 0, 0, &lab, 1, cancel, NULL, NULL);
    if (n < 0) {
        out = s_error(req->request_id, n == -2 ? "funneld is stopping" : "storage error",
                      len);
        goto done;
    }
    lab_finish(lab, now);
    report_reader_t rd;
    lab_reader(lab, &rd);
    const char *rerr = NULL;
    if (report_quality(d, &rd, qq->by, now, &rep, &rerr) < 0) {
        out = s_error(req->request_id, rerr, len);
        goto done;
    }
    a = arena_new(0);
    Funnel__V1__QueryReply r;
    funnel__v1__query_reply__init(&r);
    r.request_id = req->request_id;
    r.reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_QUALITY;
    r.quality = query_quality_encode(rep, a);
    r.quality->definition = d->name;
    r.quality->replayed = (uint64_t)n;
    r.quality->upto_seq = upto;
    out = s_pack(&r, len);
done:
    report_quality_free(&rep);
    arena_destroy(&a);
    lab_destroy(&lab);
    defn_destroy(&d);
    return out;
}

uint8_t *query_lab(const query_t *q, const Funnel__V1__QueryRequest *req,
                   const atomic_int *cancel, size_t *len)
{
    switch (req->query_case) {
    case FUNNEL__V1__QUERY_REQUEST__QUERY_QUALITY:
        return s_quality_draft(q, req, cancel, len);
    default:
        return s_error(req->request_id, "not a definition lab query", len);
    }
}
