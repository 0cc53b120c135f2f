/* ctl_backtest.c: funnelctl backtest, a draft definition replayed on
 * funneld's history beside the live one (one BacktestQuery). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "timetext.h"

typedef struct {
    const char *since, *until, *sweep;
    long sample;
} s_backtest_opts_t;

static const s_backtest_opts_t s_backtest_defaults = {
    .since = "", .until = "", .sweep = "", .sample = 5,
};

static const ctl_opt_t s_backtest_opts[] = {
    CTL_STRING("since", "TIME", s_backtest_opts_t, since,
               "only the events at or after TIME (event time: RFC 3339, a date "
               "YYYY-MM-DD, or epoch milliseconds)"),
    CTL_STRING("until", "TIME", s_backtest_opts_t, until,
               "only the events before TIME (as --since)"),
    CTL_COUNT("sample", "N", s_backtest_opts_t, sample, 0, 1000,
              "list up to N lead ids of each of both / only_live / only_draft"),
    CTL_STRING("sweep", "KEY=FROM:TO:STEP", s_backtest_opts_t, sweep,
               "also backtest the draft with the threshold KEY at each value from FROM "
               "to TO by STEP (at most 50), in the same pass over the log: one row each "
               "with handoffs per week, precision and recall. KEY: qualification.fit, "
               "qualification.engagement, qualification.total (every clause that sets "
               "it) or qualification.any_of[N].<one of them>"),
    CTL_END,
};

/* TIME: RFC 3339, a date (midnight UTC) or epoch milliseconds. */
static int s_time(const char *opt, const char *s, int64_t *out)
{
    char err[128], buf[64];
    size_t n = strlen(s);
    bool digits = n > 0;
    for (size_t i = 0; i < n; i++)
        digits = digits && isdigit((unsigned char)s[i]);
    if (digits && n < 19) {
        *out = strtoll(s, NULL, 10);
        return 0;
    }
    if (n == 10) {
        snprintf(buf, sizeof buf, "%sT00:00:00Z", s);
        s = buf;
    }
    if (timetext_parse_rfc3339(s, out, err, sizeof err) == 0)
        return 0;
    ctl_error("backtest: --%s wants RFC 3339, YYYY-MM-DD or epoch milliseconds: %s",
              opt, err);
    return -1;
}

/* KEY=FROM:TO:STEP into q. */
static int s_sweep(const char *s, Funnel__V1__BacktestQuery *q, char *key, size_t cap)
{
    const char *eq = strchr(s, '=');
    if (eq == NULL || eq == s || (size_t)(eq - s) >= cap)
        goto bad;
    memcpy(key, s, (size_t)(eq - s));
    key[eq - s] = '\0';
    double v[3];
    const char *p = eq + 1;
    for (int i = 0; i < 3; i++) {
        char *end;
        errno = 0;
        v[i] = strtod(p, &end);
        if (end == p || errno || !isfinite(v[i]) || *end != (i < 2 ? ':' : '\0'))
            goto bad;
        p = end + 1;
    }
    if (!(v[2] > 0) || v[1] < v[0])
        goto bad;
    q->sweep_key = key;
    q->sweep_from = v[0];
    q->sweep_to = v[1];
    q->sweep_step = v[2];
    return 0;
bad:
    ctl_error("backtest: --sweep wants KEY=FROM:TO:STEP with FROM <= TO and STEP > 0 "
              "(e.g. qualification.engagement=20:80:10), not \"%s\"", s);
    return -1;
}

static int s_run_backtest(ctl_opts_t *g, int argc, char **argv)
{
    s_backtest_opts_t o = s_backtest_defaults;
    int rc;
    int first = ctl_parse(&ctl_cmd_backtest, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (first != argc - 1) {
        ctl_error("backtest: %s (see funnelctl backtest --help)",
                  first >= argc ? "name the draft: funnelctl backtest DRAFT.yaml"
                                : "one draft file only");
        return CTL_EXIT_USAGE;
    }
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__BacktestQuery bq = FUNNEL__V1__BACKTEST_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    char key[256];
    if ((o.since[0] && s_time("since", o.since, &bq.since_ms) == -1) ||
        (o.until[0] && s_time("until", o.until, &bq.until_ms) == -1) ||
        (o.sweep[0] && s_sweep(o.sweep, &bq, key, sizeof key) == -1))
        return CTL_EXIT_USAGE;
    if (bq.until_ms && bq.since_ms >= bq.until_ms) {
        ctl_error("backtest: --since must come before --until");
        return CTL_EXIT_USAGE;
    }
    char *draft = ctl_read_draft(argv[first]);
    if (draft == NULL)
        return CTL_EXIT_USAGE;
    bq.draft = draft;
    bq.draft_name = argv[first];
    bq.sample = (uint32_t)o.sample;
    if (g->timeout < 0)
        g->timeout = CTL_LAB_TIMEOUT_S;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_BACKTEST;
    req.backtest = &bq;
    bool tty = isatty(STDERR_FILENO);
    if (tty) {
        fprintf(stderr, "backtest: funneld is replaying its event log through both "
                        "definitions...");
        ctl_mark_progress();
    }
    rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_BACKTEST, "backtest", &reply);
    ctl_clear_progress();
    free(draft);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (g->json)
        ctl_print_doc(render_backtest_json(reply->backtest));
    else
        render_backtest_text(stdout, reply->backtest);
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cmd_backtest = {
    .name = "backtest",
    .summary = "replay history through a draft definition beside the live one",
    .usage = "Usage: funnelctl backtest DRAFT.yaml [--since TIME] [--until TIME] "
             "[--sample N]\n"
             "                          [--sweep KEY=FROM:TO:STEP]\n",
    .about =
        "What would the draft have done? funneld replays its event log, up to the\n"
        "entry current when asked, through the draft and through the live definition,\n"
        "each into a scratch state in memory, in a thread of its own (ingest and\n"
        "other queries go on), and compares them on the same events: per definition\n"
        "the handoffs, the leads now per stage, the conversion per stage, the\n"
        "friction per kind and the lead quality (as funnelctl quality); the leads\n"
        "handed off under both, only the live one, only the draft; the handoffs per\n"
        "ISO week of the handoff, so sales sees the volume it would have to absorb.\n"
        "The replays run on event time: each definition's deadlines (stalls, the\n"
        "handoff SLA) fall due as the events' time passes them. Nothing live changes.\n"
        "The draft is checked here first. Without --timeout, funnelctl waits up to\n"
        "600 s; Ctrl-C stops waiting.\n",
    .opts = s_backtest_opts,
    .defaults = &s_backtest_defaults,
    .notes =
        "With --json: {\"live\",\"draft\": {\"definition\",\"handoffs\",\"leads\",\n"
        "\"stages\":[{\"stage\",\"now\",\"entered\",\"conversion\"}],\"friction\":{\"stall\",\n"
        "\"regression\",\"handoff_rejected\",\"handoff_sla\",\"dropped\",\n"
        "\"conversion_below_target\"},\"quality\":{as funnelctl quality --json}},\n"
        "\"both\",\"only_live\",\"only_draft\": {\"count\",\"sample\":[ids]},\n"
        "\"weeks\":[{\"week\",\"live\",\"draft\"}],\"replayed\",\"upto_seq\",\"events\",\n"
        "\"since_ms\",\"until_ms\",\"as_of_ms\",\"elapsed_ms\",\"cpu_ms\"} and with --sweep,\n"
        "\"sweep\":{\"key\",\"rows\":[{\"value\",\"handoffs\",\"handoffs_per_week\",\n"
        "\"handed_off\",\"precision\",\"recall\"}]}.\n",
    .run = s_run_backtest,
};
