/* ctl_publish.c: the ingest commands, publish (NDJSON from a file or stdin)
 * and send (one event from options), both over ctl_ingest.c. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "ndjson.h"
#include "xalloc.h"

/* A batch is flushed at this many encoded bytes even below --batch, so
 * that a file of long lines does not make one huge message. */
#define S_BATCH_MAX_BYTES (4u * 1024 * 1024)

/* -- publish ------------------------------------------------------------- */

typedef struct {
    long batch, window, retries;
    double ack_timeout;
    bool strict;
} s_publish_opts_t;

static const s_publish_opts_t s_publish_defaults = {
    .batch = 1000, .window = 16, .retries = 3, .ack_timeout = CTL_TIMEOUT_S,
};

static const ctl_opt_t s_publish_opts[] = {
    CTL_COUNT("batch", "N", s_publish_opts_t, batch, 1, 1000000, "events per batch"),
    CTL_COUNT("window", "N", s_publish_opts_t, window, 1, 1024,
              "batches in flight: funneld commits a group while the next batches are "
              "already on their way"),
    CTL_SECONDS_POS("ack-timeout", "S", s_publish_opts_t, ack_timeout,
                    "resend a batch with no Ack after S seconds, doubling each time up "
                    "to 60 s"),
    CTL_COUNT("retries", "N", s_publish_opts_t, retries, 0, 1000,
              "resends before giving up with exit 2"),
    CTL_FLAG("strict", s_publish_opts_t, strict,
             "exit 1 when any line was bad, not only when funneld rejected an event"),
    CTL_END,
};

/* Progress on a terminal: "[#####.....]  45%  12000 lines  11000 acked  3400 ev/s". */
typedef struct {
    bool enabled;
    off_t size;           /* bytes of a regular input file, else 0 */
    off_t done;           /* bytes read */
    int64_t t0, last;
} s_progress_t;

static void s_progress_draw(s_progress_t *p, const ctl_ingest_t *in, bool force)
{
    if (!p->enabled)
        return;
    int64_t now = ctl_mono_ms();
    if (!force && now - p->last < 100)
        return;
    p->last = now;
    double secs = (double)(now - p->t0) / 1000.0;
    uint64_t acked = in->accepted + in->duplicates + in->rejected;
    double rate = secs > 0 ? (double)acked / secs : 0;
    fputs("\r\033[K", stderr);
    if (p->size > 0) {
        int pct = (int)(100.0 * (double)p->done / (double)p->size);
        if (pct > 100)
            pct = 100;
        char bar[21];
        for (int i = 0; i < 20; i++)
            bar[i] = i < pct / 5 ? '#' : '.';
        bar[20] = '\0';
        fprintf(stderr, "[%s] %3d%%  ", bar, pct);
    }
    fprintf(stderr, "%" PRIu64 " lines  %" PRIu64 " acked  %.0f ev/s", in->lines, acked, rate);
    fflush(stderr);
    ctl_mark_progress();
}

/* The summary: one JSON document on stdout with --json, else one line on
 * stderr. */
static void s_publish_summary(const ctl_opts_t *g, const ctl_ingest_t *in, int64_t t0)
{
    double secs = (double)(ctl_mono_ms() - t0) / 1000.0;
    double rate = secs > 0 ? (double)in->sent / secs : 0;
    if (g->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "lines", json_integer((json_int_t)in->lines));
        json_object_set_new(doc, "sent", json_integer((json_int_t)in->sent));
        json_object_set_new(doc, "accepted", json_integer((json_int_t)in->accepted));
        json_object_set_new(doc, "duplicates", json_integer((json_int_t)in->duplicates));
        json_object_set_new(doc, "rejected", json_integer((json_int_t)in->rejected));
        json_object_set_new(doc, "bad_lines", json_integer((json_int_t)in->bad_lines));
        json_object_set_new(doc, "seconds", json_real(round(secs * 1000) / 1000));
        json_object_set_new(doc, "events_per_s", json_real(round(rate * 10) / 10));
        ctl_print_doc(doc);
    } else {
        fprintf(stderr,
                "funnelctl: %s: %" PRIu64 " lines, %" PRIu64 " events sent: %" PRIu64
                " accepted, %" PRIu64 " duplicates, %" PRIu64 " rejected; %" PRIu64
                " bad lines; %.3f s, %.0f events/s\n",
                in->name, in->lines, in->sent, in->accepted, in->duplicates, in->rejected,
                in->bad_lines, secs, rate);
    }
}

/* funnelctl publish [FILE|-]: read NDJSON lines, parse each (a bad line is
 * reported as NAME:LINE and skipped), gather batches of --batch events (or
 * S_BATCH_MAX_BYTES), keep --window of them in flight through the ingest
 * client until every one is acked, then print the summary. Exit 0 when
 * every event sent was stored, 1 when funneld rejected one (or, with
 * --strict, a line was bad), 2 on usage, I/O or connection errors. */
static int s_run_publish(ctl_opts_t *g, int argc, char **argv)
{
    s_publish_opts_t o = s_publish_defaults;
    ctl_ingest_t in = { 0 };
    int rc = CTL_EXIT_USAGE;
    FILE *fp = NULL;
    void *ctx = NULL;
    char *line = NULL;
    size_t cap = 0;
    Funnel__V1__Event **events = NULL;
    uint64_t *lines = NULL;
    size_t n = 0, bytes = 0;

    int first = ctl_parse(&ctl_cmd_publish, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (argc - first > 1) {
        ctl_error("publish: one FILE at most (see funnelctl publish --help)");
        return CTL_EXIT_USAGE;
    }
    in.window = o.window;
    in.retries = o.retries;
    in.ack_timeout = o.ack_timeout;

    const char *path = first < argc ? argv[first] : "-";
    if (g->cfg.nats && g->cfg.nats[0]) {
        /* --nats (a global option): into NATS JetStream instead, one
         * message per batch on funnel.in.<partition>, partition = FNV-1a
         * 32 of the lead id mod --cluster-partitions, each stored by the
         * stream before the next. */
        ctl_nats_publish_opts_t no = {
            .urls = g->cfg.nats,
            .partitions = g->cluster_partitions ? g->cluster_partitions
                                                : (long)ctl_global_defaults.cfg.cluster_partitions,
            .batch = o.batch,
            .retries = o.retries,
            .strict = o.strict,
        };
        fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
        if (!fp) {
            ctl_error("cannot open %s: %s", path, strerror(errno));
            return CTL_EXIT_USAGE;
        }
        rc = ctl_nats_publish(g, &no, fp, fp == stdin ? "stdin" : path);
        if (fp != stdin)
            fclose(fp);
        return rc;
    }
    s_progress_t prog = { .enabled = isatty(STDERR_FILENO) == 1 };
    if (strcmp(path, "-") == 0) {
        fp = stdin;
        in.name = "stdin";
    } else {
        fp = fopen(path, "r");
        if (!fp) {
            ctl_error("cannot open %s: %s", path, strerror(errno));
            goto done;
        }
        in.name = path;
        struct stat st;
        if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode))
            prog.size = st.st_size;
    }

    ctx = zmq_ctx_new();
    if (!ctx) {
        ctl_error("cannot create a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    if (ctl_ingest_open(&in, ctx, g) == -1)
        goto done;

    int64_t t0 = ctl_mono_ms();
    prog.t0 = t0;
    bool eof = false;
    events = xcalloc(1, (size_t)o.batch * sizeof *events);
    while (!eof || in.inflight > 0) {
        /* Fill the window. */
        while (!eof && in.inflight < in.window) {
            ssize_t len = getline(&line, &cap, fp);
            if (len < 0) {
                if (ferror(fp)) {
                    ctl_error("cannot read %s: %s", in.name, strerror(errno));
                    goto done;
                }
                eof = true;
            } else {
                in.lines++;
                prog.done += len;
                Funnel__V1__Event *ev;
                char err[NDJSON_ERR_MAX];
                int r = ndjson_parse_line(line, (size_t)len, ctl_wall_ms(), &ev, err);
                if (r == -1) {
                    ctl_error("%s:%" PRIu64 ": %s", in.name, in.lines, err);
                    in.bad_lines++;
                } else if (r == 1) {
                    if (!lines)
                        lines = xcalloc(1, (size_t)o.batch * sizeof *lines);
                    events[n] = ev;
                    lines[n] = in.lines;
                    n++;
                    bytes += funnel__v1__event__get_packed_size(ev) + 8;
                }
            }
            if (n > 0 && (eof || n == (size_t)o.batch || bytes >= S_BATCH_MAX_BYTES)) {
                int r = ctl_ingest_submit(&in, events, lines, n);
                lines = NULL; /* the batch owns it now */
                n = 0;
                bytes = 0;
                if (r == -1)
                    goto done;
            }
            s_progress_draw(&prog, &in, false);
        }
        if (in.inflight > 0 &&
            ctl_ingest_pump(&in, eof || in.inflight >= in.window ? (prog.enabled ? 100 : -1)
                                                                 : 0) == -1)
            goto done;
        s_progress_draw(&prog, &in, false);
    }
    ctl_clear_progress();
    s_publish_summary(g, &in, t0);
    rc = in.rejected > 0 || (o.strict && in.bad_lines > 0) ? CTL_EXIT_NO : CTL_EXIT_OK;

done:
    ctl_clear_progress();
    for (size_t i = 0; i < n; i++)
        ndjson_event_destroy(&events[i]);
    free(events);
    free(lines);
    free(line);
    ctl_ingest_close(&in);
    if (fp && fp != stdin)
        fclose(fp);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

const ctl_cmd_t ctl_cmd_publish = {
    .name = "publish",
    .summary = "publish NDJSON events from a file or stdin, reliably",
    .usage = "Usage: funnelctl publish [OPTIONS] [FILE|-]\n",
    .about =
        "Publish NDJSON events (one JSON object a line) from FILE, or standard input\n"
        "when FILE is - or absent, to funneld's ingest endpoint, reliably: events go in\n"
        "batches, several batches are in flight, and each batch is resent until funneld\n"
        "acknowledges it after its durable commit. Duplicates (same event id) are\n"
        "recognised by funneld, so publishing a file twice is harmless.\n"
        "\n"
        "Line format:\n"
        "  {\"id\":\"e-1\",\"lead\":\"L-1001\",\"source\":\"marketing\",\"type\":\"form_submit\",\n"
        "   \"at\":\"2026-11-26T10:00:00Z\",\"attrs\":{\"industry\":\"retail\"},\"value\":0}\n"
        "  lead, source (marketing|sales) and type are required; at is RFC 3339 or epoch\n"
        "  milliseconds, default now; attrs values are strings (numbers and booleans are\n"
        "  stringified); id defaults to \"h-\" + a hash of the line, so identical lines\n"
        "  are one event. Empty lines are skipped.\n"
        "\n"
        "A bad line is reported as \"funnelctl: FILE:LINE: reason\" and skipped; events\n"
        "funneld rejects are reported the same way. A progress bar shows on stderr when\n"
        "it is a terminal; a summary follows (with --json: one JSON document on stdout,\n"
        "{\"lines\",\"sent\",\"accepted\",\"duplicates\",\"rejected\",\"bad_lines\",\"seconds\",\n"
        "\"events_per_s\"}).\n",
    .opts = s_publish_opts,
    .defaults = &s_publish_defaults,
    .exits =
        "Exit status: 0 when every event sent was stored (accepted or duplicate), even\n"
        "if bad lines were skipped (they are reported; see --strict); 1 when funneld\n"
        "rejected an event; 2 on a usage or connection error (no connection to funneld\n"
        "within --timeout seconds, default " CTL_STR(CTL_TIMEOUT_S) "; or no Ack after "
        "the retries).\n",
    .run = s_run_publish,
};

/* -- send ---------------------------------------------------------------- */

typedef struct {
    json_t *obj;      /* the event as publish would read it */
    json_t *attrs;    /* --attr K=V */
    double ack_timeout;
    long retries;
} s_send_opts_t;

static const s_send_opts_t s_send_defaults = {
    .ack_timeout = CTL_TIMEOUT_S, .retries = 3,
};

/* --lead, --source, --type, --at, --id: the event's field of that name. */
static int s_send_field(const ctl_opt_t *o, void *st, const char *arg)
{
    s_send_opts_t *s = st;
    json_object_set_new(s->obj, o->name, json_string(arg));
    return 0;
}

static int s_send_value(const ctl_opt_t *o, void *st, const char *arg)
{
    s_send_opts_t *s = st;
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !isfinite(v)) {
        ctl_error("send: --value wants a number, not \"%s\"", arg);
        return -1;
    }
    json_object_set_new(s->obj, "value", json_real(v));
    return 0;
}

static int s_send_attr(const ctl_opt_t *o, void *st, const char *arg)
{
    s_send_opts_t *s = st;
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        ctl_error("send: --attr wants KEY=VALUE, not \"%s\"", arg);
        return -1;
    }
    char *key = strndup(arg, (size_t)(eq - arg));
    json_t *v = json_string(eq + 1);
    if (!key || !v) {
        free(key);
        json_decref(v);
        ctl_error("send: --attr \"%s\" is not valid UTF-8", arg);
        return -1;
    }
    json_object_set_new(s->attrs, key, v);
    free(key);
    return 0;
}

static const ctl_opt_t s_send_opts[] = {
    CTL_FN("lead", "L", s_send_field, "the lead id (required)"),
    CTL_FN("source", "S", s_send_field, "marketing or sales (required)"),
    CTL_FN("type", "T", s_send_field, "the event type, e.g. form_submit (required)"),
    CTL_FN("attr", "K=V", s_send_attr, "a lead attribute; repeat for more"),
    CTL_FN("at", "TIME", s_send_field,
           "event time: RFC 3339 or epoch milliseconds (default now)"),
    CTL_FN("value", "X", s_send_value, "a number attached to the event, e.g. a deal amount"),
    CTL_FN("id", "ID", s_send_field, "the event id (default: 32 random hex digits)"),
    CTL_SECONDS_POS("ack-timeout", "S", s_send_opts_t, ack_timeout,
                    "resend after S seconds without an Ack"),
    CTL_COUNT("retries", "N", s_send_opts_t, retries, 0, 1000,
              "resends before giving up with exit 2"),
    CTL_END,
};

/* Print the outcome of the Ack: "accepted ID", "duplicate ID" or
 * "rejected ID: reason" (with --json {"id","result","reason"}). Returns the
 * exit status: 1 when rejected (or the batch refused), else 0. */
static int s_send_report(const ctl_opts_t *g, const ctl_ingest_t *in, const char *event_id)
{
    bool rejected =
        strcmp(in->last_result, "rejected") == 0 || strcmp(in->last_result, "refused") == 0;
    if (g->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "id", json_string(event_id));
        json_object_set_new(doc, "result", json_string(in->last_result));
        json_object_set_new(doc, "reason", rejected ? json_string(in->last_reason) : json_null());
        ctl_print_doc(doc);
    } else if (rejected) {
        printf("%s %s: %s\n", in->last_result, event_id, in->last_reason);
    } else {
        printf("%s %s\n", in->last_result, event_id);
    }
    return rejected ? CTL_EXIT_NO : CTL_EXIT_OK;
}

/* funnelctl send: build one event from the options (as publish would read
 * the same JSON line), send it as a batch of one and wait for its Ack. */
static int s_run_send(ctl_opts_t *g, int argc, char **argv)
{
    s_send_opts_t o = s_send_defaults;
    ctl_ingest_t in = { .window = 1, .name = "send", .quiet = true };
    void *ctx = NULL;
    Funnel__V1__Event *ev = NULL;
    int rc = CTL_EXIT_USAGE;
    char err[NDJSON_ERR_MAX];

    o.obj = json_object();
    o.attrs = json_object();
    int first = ctl_parse(&ctl_cmd_send, g, &o, argc, argv, &rc);
    if (first < 0)
        goto done;
    rc = CTL_EXIT_USAGE;
    if (first < argc) {
        ctl_error("send: unexpected argument \"%s\" (see funnelctl send --help)", argv[first]);
        goto done;
    }
    static const char *const required[] = { "lead", "source", "type" };
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        if (!json_object_get(o.obj, required[i])) {
            ctl_error("send: --%s is required (see funnelctl send --help)", required[i]);
            goto done;
        }
    if (json_object_size(o.attrs) > 0)
        json_object_set(o.obj, "attrs", o.attrs);
    in.retries = o.retries;
    in.ack_timeout = o.ack_timeout;

    char id[33];
    ctl_random_hex(id, 16);
    ev = ndjson_event_from_json(o.obj, id, ctl_wall_ms(), err);
    if (!ev) {
        ctl_error("send: %s", err);
        goto done;
    }
    char *event_id = xstrdup(ev->id);

    ctx = zmq_ctx_new();
    if (!ctx || ctl_ingest_open(&in, ctx, g) == -1) {
        free(event_id);
        goto done;
    }
    uint64_t *lines = xcalloc(1, sizeof *lines);
    lines[0] = 1;
    int r = ctl_ingest_submit(&in, &ev, lines, 1);
    while (r == 0 && in.inflight > 0)
        r = ctl_ingest_pump(&in, -1);
    if (r == 0)
        rc = s_send_report(g, &in, event_id);
    free(event_id);

done:
    ndjson_event_destroy(&ev);
    json_decref(o.obj);
    json_decref(o.attrs);
    ctl_ingest_close(&in);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

const ctl_cmd_t ctl_cmd_send = {
    .name = "send",
    .summary = "send one event and wait for its Ack",
    .usage = "Usage: funnelctl send --lead L --source S --type T [--attr K=V]... [--at TIME]\n"
             "                      [--value X] [--id ID]\n",
    .about = "Send one event and wait for funneld's Ack, then print \"accepted ID\",\n"
             "\"duplicate ID\" or \"rejected ID: reason\" (with --json: {\"id\",\"result\","
             "\"reason\"}).\n",
    .opts = s_send_opts,
    .defaults = &s_send_defaults,
    .exits = "Exit status: 0 accepted or duplicate, 1 rejected, 2 usage or connection "
             "error.\n",
    .run = s_run_send,
};
