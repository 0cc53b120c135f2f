/* ctl_alerts.c: funnelctl alerts, the stored alerts after an alert
 * sequence number (AlertsSince, page by page); and the fetch and print
 * helpers that watch shares (see ctl.h). */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "render.h"

/* Alerts asked for per page: the most funneld gives. */
#define S_PAGE 10000

void ctl_print_alert(const ctl_opts_t *g, const Funnel__V1__Alert *a, const char *topic)
{
    if (g->json) {
        json_t *doc = render_alert_json(a, topic);
        ctl_print_json(doc, CTL_NDJSON_FLAGS);
        json_decref(doc);
    } else {
        render_alert_text(stdout, a, topic);
        fflush(stdout);
    }
}

int ctl_alerts_fetch(ctl_opts_t *g, const ctl_topics_t *topics, uint64_t *seq,
                     uint64_t upto, long limit, ctl_alert_fn *fn, void *arg,
                     ctl_alerts_bounds_t *bounds)
{
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__AlertsSince as = FUNNEL__V1__ALERTS_SINCE__INIT;
    long taken = 0;
    bool first = true;

    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_ALERTS_SINCE;
    req.alerts_since = &as;
    as.topics = (char **)topics->names;
    as.n_topics = topics->n;
    for (;;) {
        Funnel__V1__QueryReply *reply;
        long want = limit > 0 && limit - taken < S_PAGE ? limit - taken : S_PAGE;
        as.seq = *seq;
        as.limit = (uint32_t)want;
        int rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_ALERTS_SINCE,
                           "alerts_since", &reply);
        if (rc != CTL_EXIT_OK)
            return rc;
        const Funnel__V1__AlertsSinceReply *r = reply->alerts_since;
        if (first && bounds) {
            bounds->last_seq = r->last_seq;
            bounds->first_seq = r->first_seq;
        }
        first = false;
        bool done = false;
        for (size_t i = 0; i < r->n_alerts && !done; i++) {
            const Funnel__V1__Alert *a = r->alerts[i];
            if (upto && a->alert_seq > upto) {
                done = true;
                break;
            }
            fn(a, arg);
            *seq = a->alert_seq;
            done = limit > 0 && ++taken >= limit;
        }
        if (!done) {
            /* Everything up to next_seq was looked at (the rest did not
             * match the topics): go on from there. */
            uint64_t next = upto && r->next_seq > upto ? upto : r->next_seq;
            if (next > *seq)
                *seq = next;
            done = !r->more || (upto && *seq >= upto);
        }
        funnel__v1__query_reply__free_unpacked(reply, NULL);
        if (done)
            return CTL_EXIT_OK;
    }
}

/* The alerts funneld no longer stores between since and its oldest. */
void ctl_alerts_note_retention(uint64_t since, const ctl_alerts_bounds_t *b)
{
    if (b->first_seq > since + 1)
        ctl_error("alerts %" PRIu64 "..%" PRIu64 " are no longer stored by funneld "
                  "(alerts_retention): continuing from %" PRIu64,
                  since + 1, b->first_seq - 1, b->first_seq);
}

int ctl_topic_opt(const ctl_opt_t *o, void *state, const char *arg)
{
    ctl_topics_t *t = (ctl_topics_t *)((char *)state + o->offset);
    if (t->n == CTL_TOPICS_MAX) {
        ctl_error("at most %d topics", CTL_TOPICS_MAX);
        return -1;
    }
    if (strlen(arg) > 255) {
        ctl_error("a topic is at most 255 bytes");
        return -1;
    }
    t->names[t->n++] = arg;
    return 0;
}

/* -- funnelctl alerts ------------------------------------------------------ */

typedef struct {
    ctl_topics_t topics;
    long since;
    long limit;
} s_alerts_opts_t;

static const s_alerts_opts_t s_alerts_defaults = { .since = 0, .limit = 0 };

static const ctl_opt_t s_alerts_opts[] = {
    CTL_TOPICS("topic", s_alerts_opts_t, topics,
               "only alerts whose topic begins with T (\"handoff\", \"stage\", \"friction\", "
               "...); repeatable; default: every topic"),
    CTL_COUNT("since", "SEQ", s_alerts_opts_t, since, 0, LONG_MAX,
              "the alerts numbered above SEQ (alert_seq; default 0: from the oldest stored)"),
    CTL_COUNT("limit", "N", s_alerts_opts_t, limit, 1, LONG_MAX,
              "at most N alerts (default: all)"),
    CTL_END,
};

static void s_on_alert(const Funnel__V1__Alert *a, void *arg)
{
    const ctl_opts_t *g = arg;
    ctl_print_alert(g, a, NULL);
}

static int s_run_alerts(ctl_opts_t *g, int argc, char **argv)
{
    s_alerts_opts_t o = s_alerts_defaults;
    int rc;
    int first = ctl_parse(&ctl_cmd_alerts, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (first < argc) {
        ctl_error("alerts: unexpected argument \"%s\" (topics go with --topic; see "
                  "funnelctl alerts --help)", argv[first]);
        return CTL_EXIT_USAGE;
    }
    uint64_t seq = (uint64_t)o.since;
    ctl_alerts_bounds_t b = { 0 };
    rc = ctl_alerts_fetch(g, &o.topics, &seq, 0, o.limit, s_on_alert, g, &b);
    if (rc == CTL_EXIT_OK)
        ctl_alerts_note_retention((uint64_t)o.since, &b);
    return rc;
}

const ctl_cmd_t ctl_cmd_alerts = {
    .name = "alerts",
    .summary = "print the stored alerts after an alert sequence number",
    .usage = "Usage: funnelctl alerts [--topic T]... [--since SEQ] [--limit N] [--json]\n",
    .about =
        "Print the alerts funneld stored after alert sequence number SEQ, oldest first,\n"
        "and exit: every alert raised by an event or a deadline (handoff, stage, the\n"
        "friction alerts of a lead) is stored before it is published, under its\n"
        "alert_seq, for alerts_retention (default 30 days). Lines as in funnelctl\n"
        "watch, each starting with #alert_seq; with --json one JSON document a line,\n"
        "as watch prints them (with \"alert_seq\"). Read page by page: any number of\n"
        "alerts, without waiting for funneld's writes.\n",
    .opts = s_alerts_opts,
    .defaults = &s_alerts_defaults,
    .notes = "When alerts after SEQ are no longer stored (alerts_retention), a line on\n"
             "stderr says which, and the listing starts at the oldest stored.\n",
    .exits = "Exit status: 0 when the alerts were listed (none is no error), 2 on a usage or\n"
             "connection error.\n",
    .run = s_run_alerts,
};
