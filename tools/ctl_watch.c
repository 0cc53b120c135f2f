/* ctl_watch.c: funnelctl watch, a SUB to funneld's alerts PUB printing
 * [topic][Alert] messages as they come; with --since or --resume, first the
 * stored alerts after a sequence number, then the live ones without a gap
 * or a duplicate at the seam; and, whenever the numbers show alerts missed
 * on the live stream, those alerts fetched from funneld's store.
 *
 * A jump in the numbers is not always a loss: with topics, the alerts of
 * the other topics are numbered too, and with partitions the numbers step
 * by the log sequence of the entry raising them (and alerts may come
 * slightly out of order). So a jump does not ask the store at once: the
 * live alerts after it are held, ordered by number, for at most
 * S_HOLD_MS or S_HOLD_MAX alerts, and printed as soon as the numbers
 * before them are printed (a late alert closes the gap by itself); what is
 * still held then is filled with one AlertsSince up to the highest held
 * number, the fetched and the held alerts merged and each printed once, in
 * alert_seq order. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "render.h"
#include "xalloc.h"

/* With a sequence to keep (--since, --resume): how long the live stream may
 * be quiet before the store is asked whether anything was missed (the
 * seam, where the subscription was not active yet, and alerts dropped at
 * the high-water mark with nothing after them to show the gap). */
#define S_IDLE_CHECK_MS 1000
/* Live alerts held after a jump in the numbers, before the store is asked
 * for the missing ones: at most this long (from the first held) and this
 * many, whichever comes first. At tens of thousands of alerts a second
 * that is about ten AlertsSince a second, each over a few thousand
 * numbers; an alert waits at most S_HOLD_MS longer than it did. */
#define S_HOLD_MS 100
#define S_HOLD_MAX 4096

typedef struct {
    long count;
    long since;           /* -1: not given */
    const char *resume;   /* NULL: not given */
} s_watch_opts_t;

static const s_watch_opts_t s_watch_defaults = { .count = 0, .since = -1, .resume = NULL };

static const ctl_opt_t s_watch_opts[] = {
    CTL_COUNT("count", "N", s_watch_opts_t, count, 1, LONG_MAX, "exit after N alerts"),
    CTL_COUNT("since", "SEQ", s_watch_opts_t, since, 0, LONG_MAX,
              "first the stored alerts numbered above SEQ (alert_seq), then the live ones"),
    CTL_STRING("resume", "FILE", s_watch_opts_t, resume,
               "start after the alert_seq kept in FILE (when there is one; else from the "
               "alerts stored now on, or from --since), and keep there the last one "
               "printed (replaced atomically)"),
    CTL_END,
};

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* A live alert held until the numbers before it are printed. */
typedef struct {
    Funnel__V1__Alert *a;  /* owned */
    char *topic;           /* owned: the frame it came on (may be NULL) */
} s_held_t;

typedef struct {
    ctl_opts_t *g;
    ctl_topics_t topics;
    bool tracking;        /* seq is known: gaps are filled */
    uint64_t seq;         /* everything numbered up to it was printed (or did
                             not match the topics) */
    long printed;
    long count;           /* exit after this many (0: never) */
    const char *resume;
    uint64_t saved;       /* what the resume file holds */
    long fetched;         /* by the last fill */
    s_held_t *held;       /* live alerts numbered above seq + 1, ascending,
                             each number once */
    size_t n_held, cap_held;
    size_t at_held;       /* during a fill: the held ones printed */
    int64_t hold_until;   /* with n_held > 0: when to fill (monotonic ms) */
} s_watch_t;

/* The resume file: one decimal alert_seq and a newline. Returns 1 with
 * *seq, 0 when there is no file, -1 when it holds something else
 * (printed). */
static int s_resume_read(const char *path, uint64_t *seq)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        ctl_error("watch: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char buf[64] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (n == 0 || buf[0] < '0' || buf[0] > '9' || errno || (*end && strcmp(end, "\n") != 0)) {
        ctl_error("watch: %s does not hold an alert sequence number (a decimal number "
                  "and a newline)", path);
        return -1;
    }
    *seq = v;
    return 1;
}

/* Replace the resume file by one holding seq: written beside it, synced,
 * renamed over it, so that it always holds a whole number. Returns 0, or
 * -1 (printed). */
static int s_resume_write(s_watch_t *w)
{
    if (!w->resume || w->saved == w->seq)
        return 0;
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", w->resume, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        ctl_error("watch: resume file name too long");
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        ctl_error("watch: cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%" PRIu64 "\n", w->seq);
    if (write(fd, line, (size_t)len) != len || fsync(fd) == -1) {
        ctl_error("watch: cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    if (rename(tmp, w->resume) == -1) {
        ctl_error("watch: cannot replace %s: %s", w->resume, strerror(errno));
        unlink(tmp);
        return -1;
    }
    w->saved = w->seq;
    return 0;
}

static bool s_done(const s_watch_t *w)
{
    return w->count > 0 && w->printed >= w->count;
}

/* ctl_alert_fn for stored alerts. Past --count they are not printed (nor
 * counted in seq): the next run starts with them. */
static void s_on_stored(const Funnel__V1__Alert *a, void *arg)
{
    s_watch_t *w = arg;
    if (s_done(w) || a->alert_seq <= w->seq)
        return;
    ctl_print_alert(w->g, a, NULL);
    w->printed++;
    w->fetched++;
    w->seq = a->alert_seq;
}

/* Print the stored alerts after w->seq, up to upto (0: all). Returns 0,
 * or -1 when funneld could not be asked (printed). */
static int s_fill(s_watch_t *w, uint64_t upto)
{
    uint64_t seq = w->seq;
    w->fetched = 0;
    int rc = ctl_alerts_fetch(w->g, &w->topics, &seq, upto, 0, s_on_stored, w, NULL);
    /* Alerts looked at but not matching count as handled, unless --count
     * stopped the printing before them. */
    if (rc == CTL_EXIT_OK && !s_done(w) && seq > w->seq)
        w->seq = seq;
    return rc == CTL_EXIT_OK ? 0 : -1;
}

/* Print a (borrowed) and count it; a numbered one moves seq to it. */
static void s_print(s_watch_t *w, const Funnel__V1__Alert *a, const char *topic)
{
    ctl_print_alert(w->g, a, topic);
    w->printed++;
    if (a->alert_seq)
        w->seq = a->alert_seq;
}

static void s_held_free(s_held_t *h)
{
    funnel__v1__alert__free_unpacked(h->a, NULL);
    free(h->topic);
}

/* Print the held alerts that follow seq without a gap (all of them, with
 * upto_all: the ones up to the end), and forget every printed one. With
 * --count reached, nothing more is printed. */
static void s_release(s_watch_t *w, bool upto_all)
{
    size_t k = 0;
    while (k < w->n_held && !s_done(w) &&
           (upto_all || w->held[k].a->alert_seq == w->seq + 1)) {
        s_print(w, w->held[k].a, w->held[k].topic);
        s_held_free(&w->held[k]);
        k++;
    }
    if (k == 0)
        return;
    memmove(w->held, w->held + k, (w->n_held - k) * sizeof *w->held);
    w->n_held -= k;
}

/* Hold a live alert numbered above seq + 1 (takes a and topic). One whose
 * number is held already is dropped. */
static void s_hold(s_watch_t *w, Funnel__V1__Alert *a, char *topic)
{
    uint64_t n = a->alert_seq;
    size_t lo = 0, hi = w->n_held;   /* mostly ascending: the end first */
    if (hi > 0 && w->held[hi - 1].a->alert_seq < n) {
        lo = hi;
    } else {
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (w->held[mid].a->alert_seq < n)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < w->n_held && w->held[lo].a->alert_seq == n) {
            s_held_t dup = { a, topic };
            s_held_free(&dup);
            return;
        }
    }
    if (w->n_held == w->cap_held) {
        w->cap_held = w->cap_held ? 2 * w->cap_held : 64;
        w->held = xrealloc(w->held, w->cap_held * sizeof *w->held);
    }
    memmove(w->held + lo + 1, w->held + lo, (w->n_held - lo) * sizeof *w->held);
    w->held[lo] = (s_held_t){ a, topic };
    if (w->n_held++ == 0)
        w->hold_until = ctl_mono_ms() + S_HOLD_MS;
}

/* ctl_alert_fn for a fill of the held range: the held alerts numbered
 * below a first, then a itself, the held copy when there is one (it came
 * live), else the stored one (it was missed). */
static void s_on_filled(const Funnel__V1__Alert *a, void *arg)
{
    s_watch_t *w = arg;
    while (w->at_held < w->n_held && !s_done(w) &&
           w->held[w->at_held].a->alert_seq < a->alert_seq) {
        s_print(w, w->held[w->at_held].a, w->held[w->at_held].topic);
        w->at_held++;
    }
    if (s_done(w))
        return;
    if (w->at_held < w->n_held && w->held[w->at_held].a->alert_seq == a->alert_seq) {
        s_print(w, w->held[w->at_held].a, w->held[w->at_held].topic);
        w->at_held++;
        return;
    }
    if (a->alert_seq <= w->seq)
        return;
    s_print(w, a, NULL);
    w->fetched++;
}

/* Fill the gaps below the highest held alert with one AlertsSince (paged
 * only beyond a page's worth), print the fetched and the held alerts
 * merged, and say on stderr how many were missed on the live stream. When
 * funneld cannot be asked (printed), the held alerts are printed as they
 * are. */
static void s_flush(s_watch_t *w)
{
    if (w->n_held == 0)
        return;
    uint64_t from = w->seq + 1, upto = w->held[w->n_held - 1].a->alert_seq;
    uint64_t seq = w->seq;
    w->fetched = 0;
    w->at_held = 0;
    (void)ctl_alerts_fetch(w->g, &w->topics, &seq, upto, 0, s_on_filled, w, NULL);
    for (size_t i = 0; i < w->at_held; i++)
        s_held_free(&w->held[i]);
    memmove(w->held, w->held + w->at_held, (w->n_held - w->at_held) * sizeof *w->held);
    w->n_held -= w->at_held;
    w->at_held = 0;
    /* Held alerts the store did not give (it had not answered, or they
     * fell to alerts_retention meanwhile) are printed all the same. */
    s_release(w, true);
    for (size_t i = 0; i < w->n_held; i++) /* --count reached */
        s_held_free(&w->held[i]);
    w->n_held = 0;
    if (w->fetched > 0)
        ctl_error("watch: %ld alert(s) numbered %" PRIu64 "..%" PRIu64
                  " were missed on the live stream; fetched from funneld's store",
                  w->fetched, from, upto - 1);
}

/* Whether the held alerts are due for their fill. */
static bool s_hold_due(const s_watch_t *w)
{
    return w->n_held > 0 && (w->n_held >= S_HOLD_MAX || ctl_mono_ms() >= w->hold_until);
}

/* A live alert (taken, with its topic). Numbered ones already printed are
 * dropped; the next number is printed at once; one beyond it is held until
 * the gap closes or is filled (s_flush). */
static void s_on_live(s_watch_t *w, Funnel__V1__Alert *a, char *topic)
{
    if (a->alert_seq == 0) { /* not stored: no number to keep */
        s_print(w, a, topic);
        goto drop;
    }
    if (!w->tracking) {
        w->tracking = true;
        w->seq = a->alert_seq - 1;
    }
    if (a->alert_seq <= w->seq)
        goto drop;
    if (w->n_held == 0 && a->alert_seq == w->seq + 1) {
        s_print(w, a, topic);
        goto drop;
    }
    s_hold(w, a, topic);
    s_release(w, false);
    return;
drop:
    funnel__v1__alert__free_unpacked(a, NULL);
    free(topic);
}

/* One [topic][Alert] message. A message without a topic frame or an
 * undecodable alert is reported and skipped. */
static void s_on_message(s_watch_t *w, zmq_msg_t *topic, zmq_msg_t *body, bool two)
{
    if (!two) {
        ctl_error("alert without a topic frame from %s (ignored)", w->g->cfg.alerts);
        return;
    }
    char *name = strndup(zmq_msg_data(topic), zmq_msg_size(topic));
    Funnel__V1__Alert *a =
        funnel__v1__alert__unpack(NULL, zmq_msg_size(body), zmq_msg_data(body));
    if (!a) {
        ctl_error("undecodable alert on topic \"%s\" from %s (ignored)", name ? name : "?",
                  w->g->cfg.alerts);
        free(name);
        return;
    }
    s_on_live(w, a, name);
}

/* Where a --resume without a file starts: the newest alert stored now. */
static int s_live_seq(ctl_opts_t *g, uint64_t *seq)
{
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__StatsQuery sq = FUNNEL__V1__STATS_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_STATS;
    req.stats = &sq;
    int rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_STATS, "stats", &reply);
    if (rc != CTL_EXIT_OK)
        return -1;
    *seq = reply->stats->alert_seq;
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return 0;
}

/* funnelctl watch [--count N] [--since SEQ] [--resume FILE] [TOPIC...]:
 * subscribe to the TOPIC prefixes (all when none); with a starting point,
 * print the stored alerts after it first; then print alerts until
 * SIGINT/SIGTERM (exit 0), --count alerts (0), or --timeout seconds
 * without one (0 when some came and --count, if given, was reached, else 1
 * with a message). Exit 2 on usage, socket or resume file errors. */
static int s_run_watch(ctl_opts_t *g, int argc, char **argv)
{
    s_watch_opts_t o = s_watch_defaults;
    s_watch_t w = { .g = g };
    int rc = CTL_EXIT_USAGE;
    void *ctx = NULL, *sock = NULL;
    zmq_msg_t topic, body;
    zmq_msg_init(&topic);
    zmq_msg_init(&body);

    int first = ctl_parse(&ctl_cmd_watch, g, &o, argc, argv, &rc);
    if (first < 0)
        goto done;
    rc = CTL_EXIT_USAGE;
    if (argc - first > CTL_TOPICS_MAX) {
        ctl_error("watch: at most %d topics", CTL_TOPICS_MAX);
        goto done;
    }
    for (int i = first; i < argc; i++)
        w.topics.names[w.topics.n++] = argv[i];
    w.count = o.count;
    w.resume = o.resume;
    double timeout = ctl_timeout(g, 0);
    if (g->cfg.nats && g->cfg.nats[0]) {
        if (o.since >= 0 || o.resume) {
            ctl_error("watch: --nats follows the live alerts only: not with --since or "
                      "--resume (those read one funneld's store)");
            goto done;
        }
        rc = ctl_nats_watch(g, &w.topics, o.count, timeout, g->cfg.nats);
        goto done;
    }

    /* Where to start: the resume file, else --since, else (with --resume)
     * the alerts stored from now on; without either, live only. */
    bool catch_up = false;
    if (o.resume) {
        int r = s_resume_read(o.resume, &w.seq);
        if (r < 0)
            goto done;
        if (r == 0 && o.since >= 0)
            w.seq = (uint64_t)o.since;
        else if (r == 0 && s_live_seq(g, &w.seq) == -1)
            goto done;
        w.saved = r ? w.seq : UINT64_MAX;
        catch_up = true;
    } else if (o.since >= 0) {
        w.seq = (uint64_t)o.since;
        catch_up = true;
    }
    w.tracking = catch_up;

    struct sigaction sa = { .sa_handler = s_on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* Subscribe first: what is published while the stored alerts are read
     * is queued meanwhile, and dropped below when already printed. */
    ctx = zmq_ctx_new();
    if (!ctx || !(sock = ctl_socket(g, ctx, ZMQ_SUB, g->cfg.alerts)))
        goto done;
    if (w.topics.n == 0)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
    for (size_t i = 0; i < w.topics.n; i++)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, w.topics.names[i], strlen(w.topics.names[i]));

    if (catch_up) {
        uint64_t since = w.seq;
        ctl_alerts_bounds_t b = { 0 };
        w.fetched = 0;
        uint64_t seq = w.seq;
        if (ctl_alerts_fetch(g, &w.topics, &seq, 0, 0, s_on_stored, &w, &b) != CTL_EXIT_OK)
            goto done;
        if (!s_done(&w) && seq > w.seq)
            w.seq = seq;
        ctl_alerts_note_retention(since, &b);
        if (s_resume_write(&w) == -1)
            goto done;
        if (s_done(&w)) {
            rc = CTL_EXIT_OK;
            goto done;
        }
    }

    int64_t deadline = timeout > 0 ? ctl_mono_ms() + (int64_t)(timeout * 1000) : -1;
    int64_t idle_at = ctl_mono_ms() + S_IDLE_CHECK_MS;
    while (!s_stop) {
        long wait = -1;
        if (deadline >= 0) {
            wait = (long)(deadline - ctl_mono_ms());
            if (wait < 0)
                wait = 0;
        }
        if (catch_up) {
            long idle = (long)(idle_at - ctl_mono_ms());
            if (idle < 0)
                idle = 0;
            if (wait < 0 || idle < wait)
                wait = idle;
        }
        if (w.n_held > 0) {
            long hold = (long)(w.hold_until - ctl_mono_ms());
            if (hold < 0)
                hold = 0;
            if (wait < 0 || hold < wait)
                wait = hold;
        }
        int r = ctl_wait_readable(sock, wait);
        if (s_stop)
            break;
        if (r == -1) {
            if (zmq_errno() == EINTR)
                continue;
            ctl_error("cannot receive from %s: %s", g->cfg.alerts, zmq_strerror(zmq_errno()));
            goto done;
        }
        long before = w.printed;
        if (r == 0 && w.n_held > 0) {
            /* The held alerts' time is up (or a deadline came first):
             * fill their gaps, before anything else. */
            s_flush(&w);
        } else if (r == 0 && catch_up && ctl_mono_ms() >= idle_at &&
                   (deadline < 0 || ctl_mono_ms() < deadline)) {
            /* Quiet: ask the store whether anything went by unseen. */
            uint64_t from = w.seq + 1;
            if (s_fill(&w, 0) == 0 && w.fetched > 0)
                ctl_error("watch: %ld alert(s) numbered from %" PRIu64
                          " were missed on the live stream; fetched from funneld's store",
                          w.fetched, from);
            idle_at = ctl_mono_ms() + S_IDLE_CHECK_MS;
        } else if (r == 0) {
            if (w.printed == 0)
                ctl_error("no alert from funneld at %s within %g s", g->cfg.alerts, timeout);
            else if (w.count > 0)
                ctl_error("%ld of %ld alerts from funneld at %s within %g s", w.printed,
                          w.count, g->cfg.alerts, timeout);
            rc = w.printed > 0 && w.count == 0 ? CTL_EXIT_OK : CTL_EXIT_NO;
            goto done;
        } else {
            /* Drain: [topic][Alert] messages; the held ones are filled
             * when due, also while more keep coming. */
            while (!s_done(&w) && zmq_msg_recv(&topic, sock, ZMQ_DONTWAIT) != -1) {
                bool two = zmq_msg_more(&topic);
                if (two && zmq_msg_recv(&body, sock, 0) == -1)
                    break;
                while (zmq_msg_more(two ? &body : &topic)) /* ignore extra frames */
                    if (zmq_msg_recv(&body, sock, 0) == -1)
                        break;
                s_on_message(&w, &topic, &body, two);
                if (s_hold_due(&w))
                    s_flush(&w);
            }
        }
        if (s_resume_write(&w) == -1)
            goto done;
        if (w.printed > before) {
            idle_at = ctl_mono_ms() + S_IDLE_CHECK_MS;
            if (timeout > 0)
                deadline = ctl_mono_ms() + (int64_t)(timeout * 1000);
        }
        if (s_done(&w)) {
            rc = CTL_EXIT_OK;
            goto done;
        }
    }
    /* SIGINT / SIGTERM: what is held is printed first, its gaps filled. */
    if (!s_done(&w))
        s_flush(&w);
    rc = CTL_EXIT_OK;

done:
    if (rc != CTL_EXIT_USAGE || w.printed > 0)
        (void)s_resume_write(&w);
    for (size_t i = 0; i < w.n_held; i++)
        s_held_free(&w.held[i]);
    free(w.held);
    zmq_msg_close(&topic);
    zmq_msg_close(&body);
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

const ctl_cmd_t ctl_cmd_watch = {
    .name = "watch",
    .summary = "print live alerts; resumable by alert sequence number",
    .usage = "Usage: funnelctl watch [--count N] [--since SEQ | --resume FILE | --nats URL]\n"
             "                      [TOPIC...]\n",
    .about =
        "Print funneld's alerts as they are published: a line each, starting with its\n"
        "alert_seq (\"-\" for alerts that are not stored), with its first reason, and its\n"
        "further reasons indented below (with --json, one JSON object a line:\n"
        "{\"kind\",\"topic\",\"lead\",\"at\",\"stage\",\"from_stage\",\"reasons\",\"event_id\",\n"
        "\"seq\",\"alert_seq\",\"snapshot\"}, snapshot being the lead as after the alert).\n"
        "TOPICs are prefixes (\"handoff\", \"stage\", \"friction.\", ...); all alerts when\n"
        "none is given.\n"
        "\n"
        "Stored alerts are numbered (alert_seq). With --since SEQ, watch first prints\n"
        "the stored alerts after SEQ, then follows the live ones, without a gap or a\n"
        "duplicate at the seam. With --resume FILE it starts after the number in FILE\n"
        "and keeps the last one printed there (replaced atomically): run again, it\n"
        "goes on where it stopped, so every alert is printed at least once and, with\n"
        "the numbers, a consumer drops any repeat. Whenever the numbers show that live\n"
        "alerts were missed (a slow consumer beyond funneld's alerts_hwm, a\n"
        "reconnect), watch fetches them from funneld's store and says so on stderr;\n"
        "with --since or --resume it also asks the store after a second without live\n"
        "alerts. Without either, alerts published before watch connects are not seen.\n"
        "\n"
        "A jump in the numbers is often no loss (the alerts of topics not watched are\n"
        "numbered too; with partitions the numbers step by the log's and may come\n"
        "slightly out of order): the live alerts after a jump are held, at most\n"
        "100 ms or 4096 alerts, and printed as soon as the ones before them came;\n"
        "what is still held then costs one query of funneld's store for the whole\n"
        "range, and every alert is printed once, in alert_seq order. funnelctl stats\n"
        "shows the queries funneld answered (alert queries).\n",
    .opts = s_watch_opts,
    .defaults = &s_watch_defaults,
    .notes = "The global --timeout SECS means here: exit when no alert came for SECS\n"
             "seconds (default 0: wait forever).\n",
    .exits =
        "Exit status: 0 on SIGINT/SIGTERM, after --count alerts, or at the --timeout\n"
        "when some alerts came (and --count, if given, was reached); 1 when the\n"
        "--timeout passed with none (or fewer than --count); 2 on a usage,\n"
        "connection or resume file error.\n",
    .run = s_run_watch,
};
