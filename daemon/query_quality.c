/* query_quality.c: the quality query (QualityQuery -> QualityReply), the
 * report of handlers/report.c (report_quality) read from one snapshot at
 * the daemon's time. Query thread only. */
#include "query_int.h"

#include "arena.h"
#include "report.h"

static Funnel__V1__QualityGroup *s_group(const report_quality_group_t *g,
                                         arena_t *a)
{
    Funnel__V1__QualityGroup *pb = arena_calloc(a, 1, sizeof *pb);
    funnel__v1__quality_group__init(pb);
    pb->group = g->name ? g->name : (char *)"";
    pb->handed_off = g->handed_off;
    pb->won = g->won;
    pb->lost = g->lost;
    pb->open = g->open;
    pb->before = g->before;
    pb->lost_timeout = g->lost_timeout;
    pb->all_won = g->all_won;
    pb->all_lost = g->all_lost;
    pb->all_open = g->all_open;
    pb->has_precision = g->has_precision;
    pb->precision = g->precision;
    pb->has_recall = g->has_recall;
    pb->recall = g->recall;
    pb->has_base_rate = g->has_base_rate;
    pb->base_rate = g->base_rate;
    pb->has_lift = g->has_lift;
    pb->lift = g->lift;
    pb->median_handoff_to_won_ms = g->median_handoff_to_won_ms;
    pb->handoffs = g->handoffs;
    pb->rejected = g->rejected;
    pb->has_rejection_rate = g->has_rejection_rate;
    pb->rejection_rate = g->rejection_rate;
    return pb;
}

Funnel__V1__QualityReply *query_quality_encode(const report_quality_t *rep, arena_t *a)
{
    Funnel__V1__QualityReply *qr = arena_calloc(a, 1, sizeof *qr);
    funnel__v1__quality_reply__init(qr);
    qr->all = s_group(&rep->all, a);
    qr->by = rep->by;
    qr->lost_after_ms = rep->lost_after_ms;
    qr->as_of_ms = rep->as_of_ms;
    qr->n_groups = rep->n_groups;
    qr->groups = arena_calloc(a, rep->n_groups ? rep->n_groups : 1, sizeof *qr->groups);
    for (size_t i = 0; i < rep->n_groups; i++)
        qr->groups[i] = s_group(&rep->groups[i], a);
    return qr;
}

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
