/* ctl_backtest.c: funnelctl backtest, a draft definition replayed on
 * funneld's history beside the live one (one BacktestQuery). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
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

/* -- waiting: the progress line, Ctrl-C ---------------------------------- */

#define S_POLL_MS 250            /* status asked this often on a terminal */
#define S_CANCEL_WAIT_MS 5000    /* for funneld's answers after Ctrl-C */

static volatile sig_atomic_t s_interrupted;

static void s_on_sigint(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

/* n with thousands separators ("1,000,000") into out. */
static const char *s_grouped(uint64_t n, char *out, size_t cap)
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, n);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

static void s_draw(const Funnel__V1__BacktestStatus *st)
{
    char a[32], b[32];
    double secs = (double)st->elapsed_ms / 1000.0;
    fputs("\r\033[K", stderr);
    if (strcmp(st->state, "waiting") == 0)
        fprintf(stderr, "backtest: waiting for funneld's lab thread");
    else if (st->total == 0)
        fprintf(stderr, "backtest: %s, %.1f s", st->state, secs);
    else
        fprintf(stderr, "backtest: %s of %s log entries (%d%%), %.1f s",
                s_grouped(st->done, a, sizeof a), s_grouped(st->total, b, sizeof b),
                (int)(100.0 * (double)st->done / (double)st->total), secs);
    fflush(stderr);
    ctl_mark_progress();
}

/* A reply on c's socket, now (without waiting): the one to its last
 * request, or NULL (none yet, a late one, undecodable). */
static Funnel__V1__QueryReply *s_take_reply(ctl_query_conn_t *c)
{
    zmq_msg_t msg;
    if (ctl_recv_payload(c->sock, &msg, ZMQ_DONTWAIT) == -1)
        return NULL;
    Funnel__V1__QueryReply *r = funnel__v1__query_reply__unpack(NULL, zmq_msg_size(&msg),
                                                                zmq_msg_data(&msg));
    zmq_msg_close(&msg);
    if (r && strcmp(r->request_id, c->request_id) != 0) {
        funnel__v1__query_reply__free_unpacked(r, NULL);
        r = NULL;
    }
    return r;
}

/* Draw the status of a BacktestStatusReply r (freed) if it names id. */
static void s_on_status(Funnel__V1__QueryReply *r, const char *id)
{
    if (r->reply_case == FUNNEL__V1__QUERY_REPLY__REPLY_BACKTEST_STATUS &&
        r->backtest_status->n_backtests == 1 &&
        strcmp(r->backtest_status->backtests[0]->id, id) == 0)
        s_draw(r->backtest_status->backtests[0]);
    funnel__v1__query_reply__free_unpacked(r, NULL);
}

/* Ctrl-C: ask funneld to cancel backtest id, wait a little for it to say
 * that it stopped, say so. Returns 130. */
static int s_cancel(ctl_opts_t *g, ctl_query_conn_t *main, ctl_query_conn_t *st,
                    const char *id)
{
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends funnelctl at once */
    ctl_clear_progress();
    const char *ep = g->cfg.query;
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__BacktestCancel bc = FUNNEL__V1__BACKTEST_CANCEL__INIT;
    bc.id = (char *)id;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_BACKTEST_CANCEL;
    req.backtest_cancel = &bc;
    Funnel__V1__QueryReply *r = NULL;
    double timeout = g->timeout;
    g->timeout = S_CANCEL_WAIT_MS / 1000.0;
    int rc = ctl_query_send(st, &req);
    if (rc == CTL_EXIT_OK)
        rc = ctl_query_recv(st, FUNNEL__V1__QUERY_REPLY__REPLY_BACKTEST_STATUS,
                            "backtest_cancel", &r);
    g->timeout = timeout;
    if (rc != CTL_EXIT_OK) {
        ctl_error("backtest: interrupted; funneld at %s did not take the cancel request, "
                  "so backtest %s may still run there", ep, id);
        return 130;
    }
    const Funnel__V1__BacktestStatus *bs =
        r->backtest_status->n_backtests ? r->backtest_status->backtests[0] : NULL;
    if (bs && (strcmp(bs->state, "done") == 0 || strcmp(bs->state, "failed") == 0)) {
        ctl_error("backtest: interrupted; backtest %s had %s already", id,
                  strcmp(bs->state, "done") == 0 ? "finished" : "failed");
        funnel__v1__query_reply__free_unpacked(r, NULL);
        return 130;
    }
    funnel__v1__query_reply__free_unpacked(r, NULL);
    /* The backtest's own answer says where it stopped. */
    int64_t deadline = ctl_mono_ms() + S_CANCEL_WAIT_MS;
    for (;;) {
        long wait = (long)(deadline - ctl_mono_ms());
        if (wait <= 0 || ctl_wait_readable(main->sock, wait) != 1)
            break;
        Funnel__V1__QueryReply *br = s_take_reply(main);
        if (br == NULL)
            continue;
        if (br->error[0])
            ctl_error("backtest: interrupted; funneld: %s", br->error);
        else
            ctl_error("backtest: interrupted; backtest %s had finished already", id);
        funnel__v1__query_reply__free_unpacked(br, NULL);
        return 130;
    }
    ctl_error("backtest: interrupted; funneld cancels backtest %s (it stops at the end of "
              "the log chunk it replays)", id);
    return 130;
}

/* Send req (a BacktestQuery named id) and wait for its reply, drawing the
 * progress on stderr every S_POLL_MS when progress; Ctrl-C cancels it.
 * Returns as ctl_query, or 130 after Ctrl-C. */
static int s_wait(ctl_opts_t *g, Funnel__V1__QueryRequest *req, const char *id,
                  bool progress, Funnel__V1__QueryReply **reply_out)
{
    ctl_query_conn_t main, st;
    memset(&st, 0, sizeof st);
    *reply_out = NULL;
    struct sigaction sa = { .sa_handler = s_on_sigint }, old_sa;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa); /* no SA_RESTART: a wait ends with EINTR */
    s_interrupted = 0;
    int rc = ctl_query_open(&main, g);
    if (rc == CTL_EXIT_OK)
        rc = ctl_query_open(&st, g);
    if (rc == CTL_EXIT_OK)
        rc = ctl_query_send(&main, req);
    if (rc != CTL_EXIT_OK)
        goto out;

    Funnel__V1__QueryRequest sreq = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__BacktestStatusQuery sq = FUNNEL__V1__BACKTEST_STATUS_QUERY__INIT;
    sq.id = (char *)id;
    sreq.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_BACKTEST_STATUS;
    sreq.backtest_status = &sq;
    double timeout = ctl_timeout(g, CTL_LAB_TIMEOUT_S);
    int64_t deadline = timeout > 0 ? ctl_mono_ms() + (int64_t)(timeout * 1000) : -1;
    int64_t next_poll = ctl_mono_ms() + (progress ? 0 : INT64_MAX / 2);
    for (;;) {
        if (s_interrupted) {
            rc = s_cancel(g, &main, &st, id);
            goto out;
        }
        int64_t now = ctl_mono_ms();
        if (deadline >= 0 && now >= deadline) {
            ctl_error("no reply from funneld at %s within %g s (is it running?%s)",
                      g->cfg.query, timeout, ctl_curve_hint(g));
            rc = CTL_EXIT_USAGE;
            goto out;
        }
        if (now >= next_poll) {
            if (ctl_query_send(&st, &sreq) != CTL_EXIT_OK) {
                rc = CTL_EXIT_USAGE;
                goto out;
            }
            next_poll = now + S_POLL_MS;
        }
        long wait = (long)((deadline >= 0 && deadline < next_poll ? deadline : next_poll) -
                           now);
        zmq_pollitem_t items[2] = {
            { .socket = main.sock, .events = ZMQ_POLLIN },
            { .socket = st.sock, .events = ZMQ_POLLIN },
        };
        int n = zmq_poll(items, 2, wait > 0 ? wait : 0);
        if (n == -1 && zmq_errno() == EINTR)
            continue;
        if (n == -1) {
            ctl_error("cannot receive from %s: %s", g->cfg.query, zmq_strerror(zmq_errno()));
            rc = CTL_EXIT_USAGE;
            goto out;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            Funnel__V1__QueryReply *r = s_take_reply(&st);
            if (r)
                s_on_status(r, id);
        }
        if (items[0].revents & ZMQ_POLLIN) {
            /* Readable: ctl_query_recv takes the reply without waiting (a
             * late one to another request is skipped, then it waits). */
            rc = ctl_query_recv(&main, FUNNEL__V1__QUERY_REPLY__REPLY_BACKTEST, "backtest",
                                reply_out);
            if (rc != CTL_EXIT_USAGE || !s_interrupted)
                goto out;
        }
    }
out:
    ctl_clear_progress();
    ctl_query_close(&st);
    ctl_query_close(&main);
    sigaction(SIGINT, &old_sa, NULL);
    return rc;
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
    char id[24] = "ctl-";
    ctl_random_hex(id + 4, 8);
    bq.id = id;
    rc = s_wait(g, &req, id, isatty(STDERR_FILENO) == 1 && !g->json, &reply);
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
        "600 s. On a terminal, a line on stderr shows how far funneld has come\n"
        "(backtest: 412,000 of 1,000,000 log entries (41%), 3.2 s), asked every\n"
        "250 ms (BacktestStatusQuery); never with --json or when stderr is not a\n"
        "terminal. Ctrl-C sends funneld a cancel request for this backtest (each has\n"
        "an id; BacktestCancel): it stops at the end of the log chunk it replays and\n"
        "frees its scratch state, and funnelctl exits 130. funneld cannot see that a\n"
        "client went away (ZeroMQ's request/reply does not say), so a backtest whose\n"
        "funnelctl was killed otherwise runs to its end: the cancel request is the\n"
        "way to stop one.\n",
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
