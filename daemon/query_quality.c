/* query_quality.c: the quality query (QualityQuery -> QualityReply), the
 * report of handlers/report.c (report_quality) read from one snapshot at
 * the daemon's time. Query thread only. */
#include "query_int.h"

#include "arena.h"
#include "query_encode.h"
#include "report.h"

void query_quality(query_t *q, const Funnel__V1__QualityQuery *qq,
                   bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    report_reader_t rd;
    report_quality_t *rep = NULL;
    arena_t *a = arena_new(0);
    const char *err = NULL;
    Funnel__V1__QualityReply *qr;

    query_reader(q, &rd);
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        goto send;
    }
    int64_t now = query_now_ms(q);
    int rc = report_quality(*q->defn_p, &rd, qq ? qq->by : NULL, now, &rep, &err);
    store_read_end(q->store);
    if (rc < 0) {
        r->error = (char *)err;
        goto send;
    }
    qr = query_quality_encode(rep, a);
    qr->definition = (*q->defn_p)->name;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_QUALITY;
    r->quality = qr;
send:
    query_reply(sock, msg, r);
    r->quality = NULL; /* it pointed into this frame */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    arena_destroy(&a);
    report_quality_free(&rep);
}
