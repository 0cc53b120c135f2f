/* ctl_watch.c: funnelctl watch, a SUB to funneld's alerts PUB printing
 * [topic][Alert] messages as they come. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "render.h"

typedef struct {
    long count;
} s_watch_opts_t;

static const s_watch_opts_t s_watch_defaults = { 0 };

static const ctl_opt_t s_watch_opts[] = {
    CTL_COUNT("count", "N", s_watch_opts_t, count, 1, LONG_MAX, "exit after N alerts"),
    CTL_END,
};

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* Print one alert (NDJSON with --json, else text) from its two frames. A
 * message without a topic frame or an undecodable alert is reported and
 * skipped: returns 0 then, 1 when an alert was printed. */
static int s_print_alert(const ctl_opts_t *g, zmq_msg_t *topic, zmq_msg_t *body, bool two)
{
    if (!two) {
        ctl_error("alert without a topic frame from %s (ignored)", g->cfg.alerts);
        return 0;
    }
    char *name = strndup(zmq_msg_data(topic), zmq_msg_size(topic));
    Funnel__V1__Alert *a =
        funnel__v1__alert__unpack(NULL, zmq_msg_size(body), zmq_msg_data(body));
    if (!a) {
        ctl_error("undecodable alert on topic \"%s\" from %s (ignored)", name ? name : "?",
                  g->cfg.alerts);
        free(name);
        return 0;
    }
    if (g->json) {
        json_t *doc = render_alert_json(a, name);
        ctl_print_json(doc, CTL_NDJSON_FLAGS);
        json_decref(doc);
    } else {
        render_alert_text(stdout, a, name);
        fflush(stdout);
    }
    funnel__v1__alert__free_unpacked(a, NULL);
    free(name);
    return 1;
}

/* funnelctl watch [--count N] [TOPIC...]: subscribe to the TOPIC prefixes
 * (all when none), print alerts until SIGINT/SIGTERM (exit 0), --count
 * alerts (0), or --timeout seconds without one (0 when some came and
 * --count, if given, was reached, else 1 with a message). Exit 2 on
 * usage or socket errors. */
static int s_run_watch(ctl_opts_t *g, int argc, char **argv)
{
    s_watch_opts_t o = s_watch_defaults;
    int rc = CTL_EXIT_USAGE;
    void *ctx = NULL, *sock = NULL;
    zmq_msg_t topic, body;
    zmq_msg_init(&topic);
    zmq_msg_init(&body);

    int first = ctl_parse(&ctl_cmd_watch, g, &o, argc, argv, &rc);
    if (first < 0)
        goto done;
    rc = CTL_EXIT_USAGE;
    long count = o.count;
    double timeout = ctl_timeout(g, 0);

    struct sigaction sa = { .sa_handler = s_on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    ctx = zmq_ctx_new();
    if (!ctx || !(sock = ctl_socket(g, ctx, ZMQ_SUB, g->cfg.alerts)))
        goto done;
    if (first == argc)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
    for (int i = first; i < argc; i++)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, argv[i], strlen(argv[i]));

    long seen = 0;
    int64_t deadline = timeout > 0 ? ctl_mono_ms() + (int64_t)(timeout * 1000) : -1;
    while (!s_stop) {
        long wait = -1;
        if (deadline >= 0) {
            wait = (long)(deadline - ctl_mono_ms());
            if (wait < 0)
                wait = 0;
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
        if (r == 0) {
            if (seen == 0)
                ctl_error("no alert from funneld at %s within %g s", g->cfg.alerts, timeout);
            else if (count > 0)
                ctl_error("%ld of %ld alerts from funneld at %s within %g s", seen, count,
                          g->cfg.alerts, timeout);
            rc = seen > 0 && count == 0 ? CTL_EXIT_OK : CTL_EXIT_NO;
            goto done;
        }
        /* Drain: [topic][Alert] messages. */
        while (zmq_msg_recv(&topic, sock, ZMQ_DONTWAIT) != -1) {
            bool two = zmq_msg_more(&topic);
            if (two && zmq_msg_recv(&body, sock, 0) == -1)
                break;
            while (zmq_msg_more(two ? &body : &topic)) /* ignore extra frames */
                if (zmq_msg_recv(&body, sock, 0) == -1)
                    break;
            if (!s_print_alert(g, &topic, &body, two))
                continue;
            seen++;
            if (timeout > 0)
                deadline = ctl_mono_ms() + (int64_t)(timeout * 1000);
            if (count > 0 && seen >= count) {
                rc = CTL_EXIT_OK;
                goto done;
            }
        }
    }
    rc = CTL_EXIT_OK; /* SIGINT / SIGTERM */

done:
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
    .summary = "print live alerts",
    .usage = "Usage: funnelctl watch [--count N] [TOPIC...]\n",
    .about =
        "Print funneld's alerts as they are published: a line each, with its first\n"
        "reason, and its further reasons indented below (with --json, one JSON object a\n"
        "line: {\"kind\",\"topic\",\"lead\",\"at\",\"stage\",\"from_stage\",\"reasons\",\n"
        "\"event_id\",\"seq\",\"snapshot\"}, snapshot being the lead as after the\n"
        "alert). TOPICs are prefixes (\"handoff\", \"stage\", \"friction.\", ...); all alerts\n"
        "when none is given. Alerts published before watch connects are not seen.\n",
    .opts = s_watch_opts,
    .defaults = &s_watch_defaults,
    .notes = "The global --timeout SECS means here: exit when no alert came for SECS\n"
             "seconds (default 0: wait forever).\n",
    .exits =
        "Exit status: 0 on SIGINT/SIGTERM, after --count alerts, or at the --timeout\n"
        "when some alerts came (and --count, if given, was reached); 1 when the\n"
        "--timeout passed with none (or fewer than --count); 2 on a usage or\n"
        "connection error.\n",
    .run = s_run_watch,
};
