/* funnelctl: the companion CLI of funneld (SPEC section 6).
 *
 *   funnelctl [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]
 *
 * Commands are rows of s_commands (name, summary, help, function). Each
 * command function parses its own options (the global ones are accepted
 * anywhere) and returns the exit status:
 *
 *   0  success
 *   1  the answer is "no" (unknown lead, rejected event, ...)
 *   2  usage or connection error, with one line "funnelctl: ..." on stderr
 *
 * Sockets: ingest is a DEALER to funneld's ROUTER (one EventBatch frame out,
 * one Ack frame back after the durable commit), query a DEALER to its query
 * ROUTER (one QueryRequest out, one QueryReply back), alerts a SUB to its
 * PUB (two frames, [topic][Alert]). Every socket has ZMQ_LINGER 0 and every
 * wait a deadline, so funnelctl never hangs on a daemon that is not there.
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "defn.h"
#include "funnel.pb-c.h"
#include "ndjson.h"
#include "render.h"

#ifndef FUNNELD_VERSION
#define FUNNELD_VERSION "dev"
#endif

enum { S_EXIT_OK = 0, S_EXIT_NO = 1, S_EXIT_USAGE = 2 };

#define S_DEFAULT_INGEST "tcp://127.0.0.1:7701"
#define S_DEFAULT_ALERTS "tcp://127.0.0.1:7702"
#define S_DEFAULT_QUERY  "tcp://127.0.0.1:7703"
#define S_DEFAULT_TIMEOUT 5.0

/* A batch is flushed at this many encoded bytes even below --batch, so
 * that a file of long lines does not make one huge message. */
#define S_BATCH_MAX_BYTES (4u * 1024 * 1024)
/* Longest wait between two resends of a batch. */
#define S_BACKOFF_MAX_MS 60000
/* Largest reply funnelctl accepts (a lead with a long timeline). */
#define S_MAX_REPLY (64 * 1024 * 1024)
/* JSON output: 15 significant digits print 0.1 as 0.1. */
#define S_JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))
#define S_NDJSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* Global options, shared by every command. */
typedef struct {
    const char *ingest;
    const char *alerts;
    const char *query;
    bool json;
    double timeout;   /* seconds; meaningful only when timeout_set */
    bool timeout_set;
} ctl_opts_t;

typedef int ctl_cmd_fn(ctl_opts_t *g, int argc, char **argv);

typedef struct {
    const char *name;
    const char *summary;  /* one line for `funnelctl --help` */
    const char *help;     /* the text of `funnelctl CMD --help` */
    ctl_cmd_fn *run;
} ctl_cmd_t;

/* ------------------------------------------------------------------ */
/* small helpers                                                      */

static void s_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether a progress line is on stderr now (cleared before any message). */
static bool s_progress_shown;

static void s_clear_progress(void)
{
    if (s_progress_shown) {
        fputs("\r\033[K", stderr);
        s_progress_shown = false;
    }
}

/* One line on stderr: "funnelctl: ...". */
static void s_error(const char *fmt, ...)
{
    va_list ap;
    s_clear_progress();
    fputs("funnelctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void *s_xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fputs("funnelctl: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Milliseconds of the monotonic clock, for deadlines. */
static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds since the epoch, for event times. */
static int64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* n random bytes as 2n lowercase hex digits into out[2n + 1]. */
static void s_random_hex(char *out, size_t n)
{
    unsigned char buf[32];
    assert(n <= sizeof buf);
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* No entropy source: fall back to time and pid, still unique
             * enough for batch and request ids. */
            uint64_t x = (uint64_t)s_wall_ms() ^ ((uint64_t)getpid() << 40) ^
                         (uint64_t)s_mono_ms() << 20;
            for (; got < n; got++, x = x * 6364136223846793005u + 1442695040888963407u)
                buf[got] = (unsigned char)(x >> 56);
            break;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", buf[i]);
}

/* Parse a count: a decimal integer in [min, max]. Returns 0 or -1. */
static int s_parse_count(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Parse seconds (fractions allowed), >= 0. Returns 0 or -1. */
static int s_parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v >= 0) || v > 86400.0 * 365)
        return -1;
    *out = v;
    return 0;
}

static void s_print_json(json_t *doc, size_t flags)
{
    json_dumpf(doc, stdout, flags);
    fputc('\n', stdout);
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* options                                                            */

/* Long options every command accepts; getopt values above 0x100. */
enum {
    S_OPT_INGEST = 0x100,
    S_OPT_ALERTS,
    S_OPT_QUERY,
    S_OPT_JSON,
    S_OPT_TIMEOUT,
    S_OPT_HELP,
    S_OPT_FIRST_LOCAL /* commands number their own options from here */
};

#define S_GLOBAL_OPTIONS                                         \
    { "ingest", required_argument, NULL, S_OPT_INGEST },         \
    { "alerts", required_argument, NULL, S_OPT_ALERTS },         \
    { "query", required_argument, NULL, S_OPT_QUERY },           \
    { "json", no_argument, NULL, S_OPT_JSON },                   \
    { "timeout", required_argument, NULL, S_OPT_TIMEOUT },       \
    { "help", no_argument, NULL, S_OPT_HELP }

#define S_GLOBAL_HELP                                                              \
    "\nGlobal options (before or after the command):\n"                            \
    "  --ingest EP      funneld's ingest endpoint (default " S_DEFAULT_INGEST ")\n" \
    "  --alerts EP      funneld's alerts endpoint (default " S_DEFAULT_ALERTS ")\n" \
    "  --query EP       funneld's query endpoint (default " S_DEFAULT_QUERY ")\n"   \
    "  --json           machine-readable output (one JSON document; NDJSON for watch)\n" \
    "  --timeout SECS   how long to wait for funneld (default 5; watch: 0 = forever)\n" \
    "  --help           this text\n"

#define S_EXIT_HELP \
    "\nExit status: 0 success, 1 the answer is \"no\", 2 usage or connection error.\n"

static const ctl_cmd_t *s_find_command(const char *name);

/* Handle a global option. Returns 0 when handled, -1 on a bad value
 * (message printed), 1 when c is not a global option. */
static int s_global_option(ctl_opts_t *g, int c, const char *arg)
{
    switch (c) {
    case S_OPT_INGEST:
        g->ingest = arg;
        return 0;
    case S_OPT_ALERTS:
        g->alerts = arg;
        return 0;
    case S_OPT_QUERY:
        g->query = arg;
        return 0;
    case S_OPT_JSON:
        g->json = true;
        return 0;
    case S_OPT_TIMEOUT:
        if (s_parse_seconds(arg, &g->timeout) == -1) {
            s_error("--timeout wants seconds >= 0, not \"%s\"", arg);
            return -1;
        }
        g->timeout_set = true;
        return 0;
    default:
        return 1;
    }
}

/* Print the error for an option getopt_long refused. */
static void s_bad_option(const char *cmd, int argc, char **argv, int c)
{
    const char *what = optind - 1 < argc ? argv[optind - 1] : "?";
    if (c == ':')
        s_error("%s: option %s needs a value (see funnelctl %s --help)", cmd, what, cmd);
    else
        s_error("%s: unknown option %s (see funnelctl %s --help)", cmd, what, cmd);
}

static void s_command_help(const ctl_cmd_t *cmd)
{
    fputs(cmd->help, stdout);
    fputs(S_GLOBAL_HELP, stdout);
    if (!strstr(cmd->help, "Exit status"))
        fputs(S_EXIT_HELP, stdout);
}

/* Parse the options of a command that has no options of its own beyond
 * the global ones. Returns -1 (exit with *rc) or the index of the first
 * operand. */
static int s_parse_plain(ctl_opts_t *g, const char *name, int argc, char **argv, int *rc)
{
    static const struct option opts[] = { S_GLOBAL_OPTIONS, { 0, 0, 0, 0 } };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == S_OPT_HELP) {
            s_command_help(s_find_command(name));
            *rc = S_EXIT_OK;
            return -1;
        }
        int r = s_global_option(g, c, optarg);
        if (r == 0)
            continue;
        if (r == 1)
            s_bad_option(name, argc, argv, c);
        *rc = S_EXIT_USAGE;
        return -1;
    }
    return optind;
}

/* ------------------------------------------------------------------ */
/* sockets                                                            */

/* A new socket of the given type, linger 0, connected to endpoint.
 * Returns it (caller closes it) or NULL with the error printed. */
static void *s_socket(void *ctx, int type, const char *endpoint)
{
    void *sock = zmq_socket(ctx, type);
    if (!sock) {
        s_error("cannot create a socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int linger = 0;
    if (zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) == -1) {
        s_error("cannot set ZMQ_LINGER: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_connect(sock, endpoint) == -1) {
        s_error("cannot connect to \"%s\": %s", endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    return sock;
fail:
    zmq_close(sock);
    return NULL;
}

/* Receive one message of possibly several frames; keep the last frame, the
 * payload (a DEALER may see an empty delimiter frame before it, when the
 * daemon answers REQ-style). Returns 0 with msg initialised (caller closes
 * it) or -1 with errno-like zmq_errno(). */
static int s_recv_payload(void *sock, zmq_msg_t *msg, int flags)
{
    zmq_msg_init(msg);
    for (;;) {
        if (zmq_msg_recv(msg, sock, flags) == -1) {
            zmq_msg_close(msg);
            return -1;
        }
        if (!zmq_msg_more(msg))
            return 0;
        flags = 0; /* the rest of a multipart message is already here */
    }
}

/* Wait up to timeout_ms (-1: forever) for the socket to become readable.
 * Returns 1 readable, 0 timed out, -1 interrupted by a signal or error. */
static int s_wait_readable(void *sock, long timeout_ms)
{
    zmq_pollitem_t item = { .socket = sock, .events = ZMQ_POLLIN };
    int r = zmq_poll(&item, 1, timeout_ms);
    if (r == -1)
        return -1;
    return r > 0 && (item.revents & ZMQ_POLLIN) ? 1 : 0;
}

/* Send one QueryRequest to g->query and wait for the matching QueryReply.
 * Returns S_EXIT_OK with *reply_out set (caller frees it with
 * funnel__v1__query_reply__free_unpacked), or S_EXIT_USAGE with the error
 * printed (no reply in time, undecodable reply, reply.error set). */
static int s_query(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
                   Funnel__V1__QueryReply **reply_out)
{
    int rc = S_EXIT_USAGE;
    void *ctx = zmq_ctx_new(), *sock = NULL;
    uint8_t *buf = NULL;
    char request_id[33];
    double timeout = g->timeout_set ? g->timeout : S_DEFAULT_TIMEOUT;

    *reply_out = NULL;
    s_random_hex(request_id, 16);
    req->request_id = request_id;
    if (!ctx || !(sock = s_socket(ctx, ZMQ_DEALER, g->query)))
        goto done;

    size_t len = funnel__v1__query_request__get_packed_size(req);
    buf = s_xmalloc(len);
    funnel__v1__query_request__pack(req, buf);
    /* Never block on send either: the message is queued for the
     * connection, which may not be up yet. */
    if (zmq_send(sock, buf, len, ZMQ_DONTWAIT) == -1) {
        s_error("cannot send to %s: %s", g->query, zmq_strerror(zmq_errno()));
        goto done;
    }

    int64_t deadline = timeout > 0 ? s_mono_ms() + (int64_t)(timeout * 1000) : -1;
    for (;;) {
        long wait = -1;
        if (deadline >= 0) {
            wait = (long)(deadline - s_mono_ms());
            if (wait < 0)
                wait = 0;
        }
        int r = s_wait_readable(sock, wait);
        if (r == -1 && zmq_errno() == EINTR)
            goto done; /* interrupted: exit 2 without more noise */
        if (r == -1) {
            s_error("cannot receive from %s: %s", g->query, zmq_strerror(zmq_errno()));
            goto done;
        }
        if (r == 0) {
            s_error("no reply from funneld at %s within %g s (is it running?)", g->query,
                    timeout);
            goto done;
        }
        zmq_msg_t msg;
        if (s_recv_payload(sock, &msg, ZMQ_DONTWAIT) == -1)
            continue; /* spurious wakeup */
        Funnel__V1__QueryReply *reply = NULL;
        if (zmq_msg_size(&msg) <= S_MAX_REPLY)
            reply = funnel__v1__query_reply__unpack(NULL, zmq_msg_size(&msg),
                                                    zmq_msg_data(&msg));
        zmq_msg_close(&msg);
        if (!reply) {
            s_error("undecodable reply from funneld at %s", g->query);
            goto done;
        }
        if (reply->request_id[0] && strcmp(reply->request_id, request_id) != 0) {
            funnel__v1__query_reply__free_unpacked(reply, NULL);
            continue; /* a late answer to someone else's request */
        }
        if (reply->error[0]) {
            s_error("funneld at %s: %s", g->query, reply->error);
            funnel__v1__query_reply__free_unpacked(reply, NULL);
            goto done;
        }
        *reply_out = reply;
        rc = S_EXIT_OK;
        goto done;
    }
done:
    req->request_id = (char *)protobuf_c_empty_string;
    free(buf);
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

/* s_query, for a reply of the kind `want` only: anything else is reported
 * ("funneld at EP answered a WHAT query with something else") and freed.
 * Returns S_EXIT_OK with *reply_out (free with ..._free_unpacked), or an
 * exit status (printed). */
static int s_query_expect(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
                          Funnel__V1__QueryReply__ReplyCase want, const char *what,
                          Funnel__V1__QueryReply **reply_out)
{
    int rc = s_query(g, req, reply_out);
    if (rc != S_EXIT_OK)
        return rc;
    if ((*reply_out)->reply_case != want) {
        s_error("funneld at %s answered a %s query with something else", g->query, what);
        funnel__v1__query_reply__free_unpacked(*reply_out, NULL);
        *reply_out = NULL;
        return S_EXIT_USAGE;
    }
    return S_EXIT_OK;
}

/* Print a JSON document on stdout and free it. */
static void s_print_doc(json_t *doc)
{
    s_print_json(doc, S_JSON_FLAGS);
    json_decref(doc);
}

/* ------------------------------------------------------------------ */
/* the reliable ingest client (publish and send)                      */

/* One batch in flight: packed once, resent as is until its Ack comes. */
typedef struct {
    bool used;
    char id[48];
    uint8_t *buf;
    size_t len;
    size_t n;             /* events */
    uint64_t *lines;      /* input line of each event */
    int attempts;         /* sends so far */
    int64_t deadline_ms;  /* monotonic: resend (or give up) at */
} s_batch_t;

typedef struct {
    ctl_opts_t *g;
    void *sock;
    const char *name;     /* input name for messages ("stdin" for -) */
    bool quiet;           /* no per-event messages on stderr (send prints its own) */
    long window;
    long retries;
    double ack_timeout;   /* seconds */
    s_batch_t *slots;     /* window of them */
    long inflight;
    uint64_t next_batch;
    char run_id[17];      /* random prefix of this run's batch ids */
    /* counters for the summary */
    uint64_t lines, sent, accepted, duplicates, rejected, bad_lines;
    /* for send: the outcome of the last Ack */
    char last_result[16];
    char last_reason[512];
} s_ingest_t;

static void s_batch_clear(s_batch_t *b)
{
    free(b->buf);
    free(b->lines);
    memset(b, 0, sizeof *b);
}

/* The lines of a batch, "12" or "12-40", for messages. */
static const char *s_batch_lines(const s_batch_t *b, char *buf, size_t size)
{
    if (b->n == 0)
        snprintf(buf, size, "?");
    else if (b->n == 1 || b->lines[0] == b->lines[b->n - 1])
        snprintf(buf, size, "%" PRIu64, b->lines[0]);
    else
        snprintf(buf, size, "%" PRIu64 "-%" PRIu64, b->lines[0], b->lines[b->n - 1]);
    return buf;
}

static long s_backoff_ms(const s_ingest_t *in, int attempts)
{
    double ms = in->ack_timeout * 1000.0;
    for (int i = 1; i < attempts && ms < S_BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > S_BACKOFF_MAX_MS)
        ms = S_BACKOFF_MAX_MS;
    return ms < 1 ? 1 : (long)ms;
}

/* (Re)send a batch and arm its deadline. Returns 0 or -1 (printed). */
static int s_batch_send(s_ingest_t *in, s_batch_t *b)
{
    b->attempts++;
    b->deadline_ms = s_mono_ms() + s_backoff_ms(in, b->attempts);
    if (zmq_send(in->sock, b->buf, b->len, ZMQ_DONTWAIT) == -1) {
        if (zmq_errno() == EAGAIN)
            return 0; /* queue full (daemon away): the deadline resends */
        s_error("cannot send to %s: %s", in->g->ingest, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

/* Take ownership of events[0..n) (freed here) and lines (kept by the
 * batch), pack them as one EventBatch and send it. The caller makes sure a
 * slot is free. Returns 0 or -1 (printed). */
static int s_ingest_submit(s_ingest_t *in, Funnel__V1__Event **events, uint64_t *lines,
                           size_t n)
{
    s_batch_t *b = NULL;
    for (long i = 0; i < in->window; i++)
        if (!in->slots[i].used) {
            b = &in->slots[i];
            break;
        }
    assert(b);

    Funnel__V1__EventBatch batch = FUNNEL__V1__EVENT_BATCH__INIT;
    b->used = true;
    snprintf(b->id, sizeof b->id, "%s-%" PRIu64, in->run_id, ++in->next_batch);
    batch.batch_id = b->id;
    batch.events = events;
    batch.n_events = n;
    b->len = funnel__v1__event_batch__get_packed_size(&batch);
    b->buf = s_xmalloc(b->len);
    funnel__v1__event_batch__pack(&batch, b->buf);
    b->n = n;
    b->lines = lines;
    for (size_t i = 0; i < n; i++)
        ndjson_event_destroy(&events[i]);

    in->inflight++;
    in->sent += n;
    return s_batch_send(in, b);
}

/* Account for one Ack. */
static void s_ingest_on_ack(s_ingest_t *in, const Funnel__V1__Ack *ack)
{
    s_batch_t *b = NULL;
    char range[64];
    for (long i = 0; i < in->window; i++)
        if (in->slots[i].used && strcmp(in->slots[i].id, ack->batch_id) == 0) {
            b = &in->slots[i];
            break;
        }
    if (!b)
        return; /* the Ack of an earlier send of a batch already acked */

    if (ack->error[0]) {
        /* Whole message refused: nothing of it applied, not resent. */
        if (!in->quiet)
            s_error("%s:%s: batch refused by funneld: %s", in->name,
                s_batch_lines(b, range, sizeof range), ack->error);
        in->rejected += b->n;
        snprintf(in->last_result, sizeof in->last_result, "refused");
        snprintf(in->last_reason, sizeof in->last_reason, "%s", ack->error);
    } else {
        in->accepted += ack->accepted;
        in->duplicates += ack->duplicates;
        snprintf(in->last_result, sizeof in->last_result,
                 ack->accepted ? "accepted" : ack->duplicates ? "duplicate" : "rejected");
        in->last_reason[0] = '\0';
        for (size_t i = 0; i < ack->n_rejections; i++) {
            const Funnel__V1__Rejection *r = ack->rejections[i];
            in->rejected++;
            snprintf(in->last_result, sizeof in->last_result, "rejected");
            snprintf(in->last_reason, sizeof in->last_reason, "%s", r->reason);
            if (in->quiet)
                continue;
            if (r->index < b->n)
                s_error("%s:%" PRIu64 ": rejected by funneld: %s", in->name, b->lines[r->index],
                        r->reason);
            else
                s_error("%s:%s: rejected by funneld (event %s): %s", in->name,
                        s_batch_lines(b, range, sizeof range), r->event_id, r->reason);
        }
    }
    s_batch_clear(b);
    in->inflight--;
}

/* Wait at most max_wait_ms (-1: until the next deadline) for Acks and
 * handle them; resend batches whose deadline passed. Returns 0, or -1 when
 * a batch ran out of retries or the socket failed (printed). */
static int s_ingest_pump(s_ingest_t *in, long max_wait_ms)
{
    int64_t now = s_mono_ms();
    long wait = max_wait_ms;
    for (long i = 0; i < in->window; i++) {
        if (!in->slots[i].used)
            continue;
        long left = (long)(in->slots[i].deadline_ms - now);
        if (left < 0)
            left = 0;
        if (wait < 0 || left < wait)
            wait = left;
    }

    int r = s_wait_readable(in->sock, wait);
    if (r == -1) {
        if (zmq_errno() == EINTR)
            return 0;
        s_error("cannot receive from %s: %s", in->g->ingest, zmq_strerror(zmq_errno()));
        return -1;
    }
    /* Drain every Ack that is there. */
    while (r == 1) {
        zmq_msg_t msg;
        if (s_recv_payload(in->sock, &msg, ZMQ_DONTWAIT) == -1)
            break;
        Funnel__V1__Ack *ack =
            funnel__v1__ack__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
        zmq_msg_close(&msg);
        if (!ack) {
            s_error("undecodable Ack from funneld at %s (ignored)", in->g->ingest);
            continue;
        }
        s_ingest_on_ack(in, ack);
        funnel__v1__ack__free_unpacked(ack, NULL);
    }

    now = s_mono_ms();
    for (long i = 0; i < in->window; i++) {
        s_batch_t *b = &in->slots[i];
        if (!b->used || b->deadline_ms > now)
            continue;
        if (b->attempts > in->retries) {
            char range[64];
            if (in->quiet)
                s_error("no Ack from funneld at %s after %d attempts (is it running?)",
                        in->g->ingest, b->attempts);
            else
                s_error("no Ack from funneld at %s for %s:%s after %d attempts (is it "
                        "running?)",
                        in->g->ingest, in->name, s_batch_lines(b, range, sizeof range),
                        b->attempts);
            return -1;
        }
        if (s_batch_send(in, b) == -1)
            return -1;
    }
    return 0;
}

/* Set up an ingest client. Returns 0 or -1 (printed). */
static int s_ingest_open(s_ingest_t *in, void *ctx, ctl_opts_t *g)
{
    in->g = g;
    in->slots = s_xmalloc((size_t)in->window * sizeof *in->slots);
    s_random_hex(in->run_id, 8);
    in->sock = zmq_socket(ctx, ZMQ_DEALER);
    if (in->sock == NULL) {
        s_error("cannot create a socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    /* Queue only to a connected funneld, so that an absent one is noticed
     * in --timeout seconds instead of after every resend. */
    int linger = 0, immediate = 1;
    if (zmq_setsockopt(in->sock, ZMQ_LINGER, &linger, sizeof linger) == -1 ||
        zmq_setsockopt(in->sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate) == -1 ||
        zmq_connect(in->sock, g->ingest) == -1) {
        s_error("cannot connect to \"%s\": %s", g->ingest, zmq_strerror(zmq_errno()));
        return -1;
    }
    double timeout = g->timeout_set && g->timeout > 0 ? g->timeout : S_DEFAULT_TIMEOUT;
    zmq_pollitem_t item = {.socket = in->sock, .events = ZMQ_POLLOUT};
    int r = zmq_poll(&item, 1, (long)(timeout * 1000));
    if (r <= 0) {
        s_error("funneld is not reachable at %s: no connection within %g s (is it "
                "running? see --ingest)", g->ingest, timeout);
        return -1;
    }
    return 0;
}

static void s_ingest_close(s_ingest_t *in)
{
    if (in->slots)
        for (long i = 0; i < in->window; i++)
            s_batch_clear(&in->slots[i]);
    free(in->slots);
    in->slots = NULL;
    if (in->sock)
        zmq_close(in->sock);
    in->sock = NULL;
}

/* ------------------------------------------------------------------ */
/* publish                                                            */

static const char s_publish_help[] =
    "Usage: funnelctl publish [OPTIONS] [FILE|-]\n"
    "\n"
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
    "\"events_per_s\"}).\n"
    "\n"
    "Options:\n"
    "  --batch N         events per batch (default 1000)\n"
    "  --window N        batches in flight (default 16: funneld commits a group\n"
    "                    while the next batches are already on their way)\n"
    "  --ack-timeout S   resend a batch with no Ack after S seconds, doubling each\n"
    "                    time up to 60 s (default 5)\n"
    "  --retries N       resends before giving up with exit 2 (default 3)\n"
    "  --strict          exit 1 when any line was bad, not only when funneld\n"
    "                    rejected an event\n"
    "\n"
    "Exit status: 0 when every event sent was stored (accepted or duplicate), even\n"
    "if bad lines were skipped (they are reported; see --strict); 1 when funneld\n"
    "rejected an event; 2 on a usage or connection error (no connection to funneld\n"
    "within --timeout seconds, default 5; or no Ack after the retries).\n";

static const char s_send_help[] =
    "Usage: funnelctl send --lead L --source S --type T [--attr K=V]... [--at TIME]\n"
    "                      [--value X] [--id ID]\n"
    "\n"
    "Send one event and wait for funneld's Ack, then print \"accepted ID\",\n"
    "\"duplicate ID\" or \"rejected ID: reason\" (with --json: {\"id\",\"result\",\"reason\"}).\n"
    "\n"
    "Options:\n"
    "  --lead L          the lead id (required)\n"
    "  --source S        marketing or sales (required)\n"
    "  --type T          the event type, e.g. form_submit (required)\n"
    "  --attr K=V        a lead attribute; repeat for more\n"
    "  --at TIME         event time: RFC 3339 or epoch milliseconds (default now)\n"
    "  --value X         a number attached to the event, e.g. a deal amount\n"
    "  --id ID           the event id (default: 32 random hex digits)\n"
    "  --ack-timeout S   resend after S seconds without an Ack (default 5)\n"
    "  --retries N       resends before giving up with exit 2 (default 3)\n"
    "\n"
    "Exit status: 0 accepted or duplicate, 1 rejected, 2 usage or connection error.\n";

enum {
    S_OPT_BATCH = S_OPT_FIRST_LOCAL,
    S_OPT_WINDOW,
    S_OPT_ACK_TIMEOUT,
    S_OPT_RETRIES,
    S_OPT_STRICT,
    S_OPT_LEAD,
    S_OPT_SOURCE,
    S_OPT_TYPE,
    S_OPT_ATTR,
    S_OPT_AT,
    S_OPT_VALUE,
    S_OPT_ID,
    S_OPT_LIMIT,
    S_OPT_COUNT,
    S_OPT_BY,
    S_OPT_PERSONA,
    S_OPT_STAGE,
    S_OPT_LEADS,
};

/* Progress on a terminal: "[#####.....]  45%  12000 lines  11000 acked  3400 ev/s". */
typedef struct {
    bool enabled;
    off_t size;           /* bytes of a regular input file, else 0 */
    off_t done;           /* bytes read */
    int64_t t0, last;
} s_progress_t;

static void s_progress_draw(s_progress_t *p, const s_ingest_t *in, bool force)
{
    if (!p->enabled)
        return;
    int64_t now = s_mono_ms();
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
    s_progress_shown = true;
}

static int s_cmd_publish(ctl_opts_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        S_GLOBAL_OPTIONS,
        { "batch", required_argument, NULL, S_OPT_BATCH },
        { "window", required_argument, NULL, S_OPT_WINDOW },
        { "ack-timeout", required_argument, NULL, S_OPT_ACK_TIMEOUT },
        { "retries", required_argument, NULL, S_OPT_RETRIES },
        { "strict", no_argument, NULL, S_OPT_STRICT },
        { 0, 0, 0, 0 },
    };
    long batch_max = 1000;
    bool strict = false;
    s_ingest_t in = { .window = 16, .retries = 3, .ack_timeout = 5.0 };
    int rc = S_EXIT_USAGE, c;
    FILE *fp = NULL;
    void *ctx = NULL;
    char *line = NULL;
    size_t cap = 0;
    Funnel__V1__Event **events = NULL;
    uint64_t *lines = NULL;
    size_t n = 0, bytes = 0;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case S_OPT_HELP:
            s_command_help(s_find_command("publish"));
            return S_EXIT_OK;
        case S_OPT_BATCH:
            if (s_parse_count(optarg, 1, 1000000, &batch_max) == -1) {
                s_error("publish: --batch wants 1..1000000, not \"%s\"", optarg);
                return S_EXIT_USAGE;
            }
            break;
        case S_OPT_WINDOW:
            if (s_parse_count(optarg, 1, 1024, &in.window) == -1) {
                s_error("publish: --window wants 1..1024, not \"%s\"", optarg);
                return S_EXIT_USAGE;
            }
            break;
        case S_OPT_ACK_TIMEOUT:
            if (s_parse_seconds(optarg, &in.ack_timeout) == -1 || in.ack_timeout <= 0) {
                s_error("publish: --ack-timeout wants seconds > 0, not \"%s\"", optarg);
                return S_EXIT_USAGE;
            }
            break;
        case S_OPT_RETRIES:
            if (s_parse_count(optarg, 0, 1000, &in.retries) == -1) {
                s_error("publish: --retries wants 0..1000, not \"%s\"", optarg);
                return S_EXIT_USAGE;
            }
            break;
        case S_OPT_STRICT:
            strict = true;
            break;
        default: {
            int r = s_global_option(g, c, optarg);
            if (r == 1)
                s_bad_option("publish", argc, argv, c);
            if (r != 0)
                return S_EXIT_USAGE;
        }
        }
    }
    if (argc - optind > 1) {
        s_error("publish: one FILE at most (see funnelctl publish --help)");
        return S_EXIT_USAGE;
    }

    const char *path = optind < argc ? argv[optind] : "-";
    s_progress_t prog = { .enabled = isatty(STDERR_FILENO) == 1 };
    if (strcmp(path, "-") == 0) {
        fp = stdin;
        in.name = "stdin";
    } else {
        fp = fopen(path, "r");
        if (!fp) {
            s_error("cannot open %s: %s", path, strerror(errno));
            goto done;
        }
        in.name = path;
        struct stat st;
        if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode))
            prog.size = st.st_size;
    }

    ctx = zmq_ctx_new();
    if (!ctx) {
        s_error("cannot create a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    if (s_ingest_open(&in, ctx, g) == -1)
        goto done;

    int64_t t0 = s_mono_ms();
    prog.t0 = t0;
    bool eof = false;
    events = s_xmalloc((size_t)batch_max * sizeof *events);
    while (!eof || in.inflight > 0) {
        /* Fill the window. */
        while (!eof && in.inflight < in.window) {
            ssize_t len = getline(&line, &cap, fp);
            if (len < 0) {
                if (ferror(fp)) {
                    s_error("cannot read %s: %s", in.name, strerror(errno));
                    goto done;
                }
                eof = true;
            } else {
                in.lines++;
                prog.done += len;
                Funnel__V1__Event *ev;
                char err[NDJSON_ERR_MAX];
                int r = ndjson_parse_line(line, (size_t)len, s_wall_ms(), &ev, err);
                if (r == -1) {
                    s_error("%s:%" PRIu64 ": %s", in.name, in.lines, err);
                    in.bad_lines++;
                } else if (r == 1) {
                    if (!lines)
                        lines = s_xmalloc((size_t)batch_max * sizeof *lines);
                    events[n] = ev;
                    lines[n] = in.lines;
                    n++;
                    bytes += funnel__v1__event__get_packed_size(ev) + 8;
                }
            }
            if (n > 0 && (eof || n == (size_t)batch_max || bytes >= S_BATCH_MAX_BYTES)) {
                int r = s_ingest_submit(&in, events, lines, n);
                lines = NULL; /* the batch owns it now */
                n = 0;
                bytes = 0;
                if (r == -1)
                    goto done;
            }
            s_progress_draw(&prog, &in, false);
        }
        if (in.inflight > 0 &&
            s_ingest_pump(&in, eof || in.inflight >= in.window ? (prog.enabled ? 100 : -1) : 0) == -1)
            goto done;
        s_progress_draw(&prog, &in, false);
    }
    s_clear_progress();

    double secs = (double)(s_mono_ms() - t0) / 1000.0;
    double rate = secs > 0 ? (double)in.sent / secs : 0;
    if (g->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "lines", json_integer((json_int_t)in.lines));
        json_object_set_new(doc, "sent", json_integer((json_int_t)in.sent));
        json_object_set_new(doc, "accepted", json_integer((json_int_t)in.accepted));
        json_object_set_new(doc, "duplicates", json_integer((json_int_t)in.duplicates));
        json_object_set_new(doc, "rejected", json_integer((json_int_t)in.rejected));
        json_object_set_new(doc, "bad_lines", json_integer((json_int_t)in.bad_lines));
        json_object_set_new(doc, "seconds", json_real(round(secs * 1000) / 1000));
        json_object_set_new(doc, "events_per_s", json_real(round(rate * 10) / 10));
        s_print_json(doc, S_JSON_FLAGS);
        json_decref(doc);
    } else {
        fprintf(stderr,
                "funnelctl: %s: %" PRIu64 " lines, %" PRIu64 " events sent: %" PRIu64
                " accepted, %" PRIu64 " duplicates, %" PRIu64 " rejected; %" PRIu64
                " bad lines; %.3f s, %.0f events/s\n",
                in.name, in.lines, in.sent, in.accepted, in.duplicates, in.rejected,
                in.bad_lines, secs, rate);
    }
    rc = in.rejected > 0 || (strict && in.bad_lines > 0) ? S_EXIT_NO : S_EXIT_OK;

done:
    s_clear_progress();
    for (size_t i = 0; i < n; i++)
        ndjson_event_destroy(&events[i]);
    free(events);
    free(lines);
    free(line);
    s_ingest_close(&in);
    if (fp && fp != stdin)
        fclose(fp);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

/* ------------------------------------------------------------------ */
/* send                                                               */

static int s_cmd_send(ctl_opts_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        S_GLOBAL_OPTIONS,
        { "lead", required_argument, NULL, S_OPT_LEAD },
        { "source", required_argument, NULL, S_OPT_SOURCE },
        { "type", required_argument, NULL, S_OPT_TYPE },
        { "attr", required_argument, NULL, S_OPT_ATTR },
        { "at", required_argument, NULL, S_OPT_AT },
        { "value", required_argument, NULL, S_OPT_VALUE },
        { "id", required_argument, NULL, S_OPT_ID },
        { "ack-timeout", required_argument, NULL, S_OPT_ACK_TIMEOUT },
        { "retries", required_argument, NULL, S_OPT_RETRIES },
        { 0, 0, 0, 0 },
    };
    s_ingest_t in = {
        .window = 1, .retries = 3, .ack_timeout = 5.0, .name = "send", .quiet = true,
    };
    json_t *obj = json_object(), *attrs = json_object();
    void *ctx = NULL;
    Funnel__V1__Event *ev = NULL;
    int rc = S_EXIT_USAGE, c;
    char err[NDJSON_ERR_MAX];

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case S_OPT_HELP:
            s_command_help(s_find_command("send"));
            rc = S_EXIT_OK;
            goto done;
        case S_OPT_LEAD:
            json_object_set_new(obj, "lead", json_string(optarg));
            break;
        case S_OPT_SOURCE:
            json_object_set_new(obj, "source", json_string(optarg));
            break;
        case S_OPT_TYPE:
            json_object_set_new(obj, "type", json_string(optarg));
            break;
        case S_OPT_ID:
            json_object_set_new(obj, "id", json_string(optarg));
            break;
        case S_OPT_AT:
            json_object_set_new(obj, "at", json_string(optarg));
            break;
        case S_OPT_VALUE: {
            char *end;
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(v)) {
                s_error("send: --value wants a number, not \"%s\"", optarg);
                goto done;
            }
            json_object_set_new(obj, "value", json_real(v));
            break;
        }
        case S_OPT_ATTR: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                s_error("send: --attr wants KEY=VALUE, not \"%s\"", optarg);
                goto done;
            }
            char *key = strndup(optarg, (size_t)(eq - optarg));
            json_t *v = json_string(eq + 1);
            if (!key || !v) {
                free(key);
                json_decref(v);
                s_error("send: --attr \"%s\" is not valid UTF-8", optarg);
                goto done;
            }
            json_object_set_new(attrs, key, v);
            free(key);
            break;
        }
        case S_OPT_ACK_TIMEOUT:
            if (s_parse_seconds(optarg, &in.ack_timeout) == -1 || in.ack_timeout <= 0) {
                s_error("send: --ack-timeout wants seconds > 0, not \"%s\"", optarg);
                goto done;
            }
            break;
        case S_OPT_RETRIES:
            if (s_parse_count(optarg, 0, 1000, &in.retries) == -1) {
                s_error("send: --retries wants 0..1000, not \"%s\"", optarg);
                goto done;
            }
            break;
        default: {
            int r = s_global_option(g, c, optarg);
            if (r == 1)
                s_bad_option("send", argc, argv, c);
            if (r != 0)
                goto done;
        }
        }
    }
    if (optind < argc) {
        s_error("send: unexpected argument \"%s\" (see funnelctl send --help)", argv[optind]);
        goto done;
    }
    static const char *const required[] = { "lead", "source", "type" };
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        if (!json_object_get(obj, required[i])) {
            s_error("send: --%s is required (see funnelctl send --help)", required[i]);
            goto done;
        }
    if (json_object_size(attrs) > 0)
        json_object_set(obj, "attrs", attrs);

    char id[33];
    s_random_hex(id, 16);
    ev = ndjson_event_from_json(obj, id, s_wall_ms(), err);
    if (!ev) {
        s_error("send: %s", err);
        goto done;
    }
    char *event_id = strdup(ev->id);

    ctx = zmq_ctx_new();
    if (!ctx || s_ingest_open(&in, ctx, g) == -1) {
        free(event_id);
        goto done;
    }
    uint64_t *lines = s_xmalloc(sizeof *lines);
    lines[0] = 1;
    int r = s_ingest_submit(&in, &ev, lines, 1);
    while (r == 0 && in.inflight > 0)
        r = s_ingest_pump(&in, -1);
    if (r == 0) {
        bool rejected = strcmp(in.last_result, "rejected") == 0 ||
                        strcmp(in.last_result, "refused") == 0;
        if (g->json) {
            json_t *doc = json_object();
            json_object_set_new(doc, "id", json_string(event_id));
            json_object_set_new(doc, "result", json_string(in.last_result));
            json_object_set_new(doc, "reason",
                                rejected ? json_string(in.last_reason) : json_null());
            s_print_json(doc, S_JSON_FLAGS);
            json_decref(doc);
        } else if (rejected) {
            printf("%s %s: %s\n", in.last_result, event_id, in.last_reason);
        } else {
            printf("%s %s\n", in.last_result, event_id);
        }
        rc = rejected ? S_EXIT_NO : S_EXIT_OK;
    }
    free(event_id);

done:
    ndjson_event_destroy(&ev);
    json_decref(obj);
    json_decref(attrs);
    s_ingest_close(&in);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

/* ------------------------------------------------------------------ */
/* lead, funnel, stats                                                */

static const char s_lead_help[] =
    "Usage: funnelctl lead [--limit N] ID\n"
    "\n"
    "Show one lead: its stage and since when, scores (fit, engagement, total),\n"
    "persona, whether it qualified, its handoff status, attributes, skipped stages,\n"
    "its friction history (stalls, regressions, rejected handoffs, handoffs past the\n"
    "SLA; the newest 8, and whether it is stalled or past the SLA now) and its\n"
    "timeline of events.\n"
    "\n"
    "With --json, one document: {\"lead\",\"stage\",\"stage_entered_at\",\"score\":{\"fit\",\n"
    "\"engagement\",\"total\"},\"persona\",\"qualified\",\"handoff\":{\"status\",\"at\"},\"attrs\",\n"
    "\"events\",\"first_source\",\"first_seen\",\"last_event_at\",\"skipped\",\"timeline\":[{\"seq\",\n"
    "\"id\",\"type\",\"source\",\"at\",\"attrs\",\"value\"}]}; times are RFC 3339 UTC with\n"
    "milliseconds, null when unknown. Also \"friction\":{\"stalled\",\"sla_breached\",\"total\",\n"
    "\"history\":[{\"kind\",\"stage\",\"at\",\"duration_ms\",\"detail\"}]}.\n"
    "\n"
    "Options:\n"
    "  --limit N   at most N timeline entries, the newest (default: funneld's, 100)\n"
    "\n"
    "Exit status: 0 found, 1 unknown lead, 2 usage or connection error.\n";

static int s_cmd_lead(ctl_opts_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        S_GLOBAL_OPTIONS,
        { "limit", required_argument, NULL, S_OPT_LIMIT },
        { 0, 0, 0, 0 },
    };
    long limit = 0;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == S_OPT_HELP) {
            s_command_help(s_find_command("lead"));
            return S_EXIT_OK;
        }
        if (c == S_OPT_LIMIT) {
            if (s_parse_count(optarg, 1, 1000000, &limit) == -1) {
                s_error("lead: --limit wants 1..1000000, not \"%s\"", optarg);
                return S_EXIT_USAGE;
            }
            continue;
        }
        int r = s_global_option(g, c, optarg);
        if (r == 1)
            s_bad_option("lead", argc, argv, c);
        if (r != 0)
            return S_EXIT_USAGE;
    }
    if (argc - optind != 1) {
        s_error("lead: one lead ID wanted (see funnelctl lead --help)");
        return S_EXIT_USAGE;
    }
    const char *id = argv[optind];

    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__LeadQuery lq = FUNNEL__V1__LEAD_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    lq.lead_id = (char *)id;
    lq.timeline_limit = (uint32_t)limit;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD;
    req.lead = &lq;
    int rc = s_query_expect(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_LEAD, "lead", &reply);
    if (rc != S_EXIT_OK)
        return rc;
    if (!reply->lead->found || !reply->lead->lead) {
        s_error("unknown lead %s", id);
        rc = S_EXIT_NO;
    } else if (g->json) {
        s_print_doc(render_lead_json(reply->lead));
    } else {
        render_lead_text(stdout, reply->lead);
    }
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return rc;
}

static const char s_funnel_help[] =
    "Usage: funnelctl funnel [--by persona|source|cohort] [--persona P]\n"
    "\n"
    "Show the funnel: for each stage (funnel order, then the terminal stages) the\n"
    "leads in it now, the leads that ever entered it, those that went on to a later\n"
    "stage, and the conversion (advanced / entered); then the handoffs sent to\n"
    "sales, accepted, rejected, and the acceptance rate (accepted / answered).\n"
    "\n"
    "Options:\n"
    "  --by persona   the same per persona (the persona each lead has now; \"-\":\n"
    "                 leads without one)\n"
    "  --by source    per source of the lead's first event (marketing, sales)\n"
    "  --by cohort    per ISO week of the lead's first event (e.g. 2026-W48)\n"
    "  --persona P    only the leads of persona P (combines with --by persona only)\n"
    "\n"
    "Every number comes from counters funneld keeps as events arrive; a report\n"
    "never scans the leads.\n"
    "\n"
    "With --json: {\"leads\":n,\"stages\":[{\"stage\",\"now\",\"entered\",\"advanced\",\n"
    "\"conversion\",\"terminal\"}],\"handoffs\":{\"sent\",\"accepted\",\"rejected\",\n"
    "\"acceptance_rate\"}}; conversion is null when nothing entered the stage or the\n"
    "stage is terminal. With --by, also \"by\" and \"groups\":[{\"group\",\"leads\",\n"
    "\"stages\",\"handoffs\"}]; with --persona, \"persona\".\n";

static int s_cmd_funnel(ctl_opts_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        S_GLOBAL_OPTIONS,
        { "by", required_argument, NULL, S_OPT_BY },
        { "persona", required_argument, NULL, S_OPT_PERSONA },
        { 0, 0, 0, 0 },
    };
    const char *by = "", *persona = "";
    int c, rc;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == S_OPT_HELP) {
            s_command_help(s_find_command("funnel"));
            return S_EXIT_OK;
        }
        if (c == S_OPT_BY) {
            if (strcmp(optarg, "persona") != 0 && strcmp(optarg, "source") != 0 &&
                strcmp(optarg, "cohort") != 0) {
                s_error("funnel: --by wants persona, source or cohort, not \"%s\"", optarg);
                return S_EXIT_USAGE;
            }
            by = optarg;
            continue;
        }
        if (c == S_OPT_PERSONA) {
            persona = optarg;
            continue;
        }
        int r = s_global_option(g, c, optarg);
        if (r == 1)
            s_bad_option("funnel", argc, argv, c);
        if (r != 0)
            return S_EXIT_USAGE;
    }
    if (optind < argc) {
        s_error("funnel: unexpected argument \"%s\" (see funnelctl funnel --help)", argv[optind]);
        return S_EXIT_USAGE;
    }
    if (persona[0] && by[0] && strcmp(by, "persona") != 0) {
        s_error("funnel: --persona combines only with --by persona");
        return S_EXIT_USAGE;
    }
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__FunnelQuery fq = FUNNEL__V1__FUNNEL_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    fq.by = (char *)by;
    fq.persona = (char *)persona;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_FUNNEL;
    req.funnel = &fq;
    rc = s_query_expect(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_FUNNEL, "funnel", &reply);
    if (rc != S_EXIT_OK)
        return rc;
    if (g->json)
        s_print_doc(render_funnel_json(reply->funnel));
    else
        render_funnel_text(stdout, reply->funnel);
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return rc;
}

static const char s_friction_help[] =
    "Usage: funnelctl friction [--by persona|source]\n"
    "       funnelctl friction --leads [--stage STAGE] [--limit N]\n"
    "\n"
    "Show the friction points of the funnel, worst first, in this order:\n"
    "  conversion        stages whose conversion to a later stage is below their\n"
    "                    conversion_target (over the rolling window of the\n"
    "                    definition's friction.conversion_window when it holds at\n"
    "                    least friction.min_sample entries, else over all time),\n"
    "                    largest shortfall first\n"
    "  dwell             median time in the stage of completed stays, longest first\n"
    "  stall             stays longer than the stage's max_dwell, most first\n"
    "  regression        moves back out of the stage, most first\n"
    "  handoff_rejected  handoffs sales rejected, per stage, with the top reasons\n"
    "  handoff_sla       handoffs waiting for an answer past the SLA now\n"
    "then a table per stage (entered, advanced, in progress, dropped to an exit,\n"
    "conversion (\"w\": over the window) and target, median and p90 time in stage,\n"
    "completed stays, stalls, regressions, rejections) and the rejection reasons.\n"
    "\n"
    "Time in stage comes from log-scale histograms (16 buckets per doubling): a\n"
    "median or p90 is within 2.2% of the exact value for stays of a second or more;\n"
    "stays under a second count as 0. Leads still in a stage are in progress, not\n"
    "dropped. Every number comes from counters funneld keeps as events arrive.\n"
    "\n"
    "Options:\n"
    "  --by persona   the same per persona (the persona a lead had when the friction\n"
    "                 was flagged or the stay completed; stalled-now and past-SLA-now\n"
    "                 follow the lead's persona now)\n"
    "  --by source    per source of the lead's first event\n"
    "  --leads        list the leads stalled now (in every stage, and those whose\n"
    "                 handoff waits past the SLA), stalled longest first\n"
    "  --stage STAGE  with --leads: only the leads stalled in STAGE\n"
    "  --limit N      with --leads: at most N leads (default 1000)\n"
    "\n"
    "With --json: {\"points\":[{\"rank\",\"kind\",\"stage\",\"value\",\"summary\"}],\"stages\":[{\n"
    "\"stage\",\"entered\",\"advanced\",\"in_progress\",\"dropped\",\"conversion\",\n"
    "\"conversion_target\",\"window\":{\"entered\",\"advanced\",\"conversion\",\"below_target\"},\n"
    "\"dwell\":{\"completed\",\"median_ms\",\"p90_ms\",\"max_dwell_ms\"},\"stalls\",\"stalled_now\",\n"
    "\"regressions\",\"rejections\"}],\"rejection_reasons\":[{\"reason\",\"count\"}],\"handoffs\":{\n"
    "\"past_sla_now\",\"sla_breaches\"},\"window\":{\"days\",\"min_sample\",\"last_day\"}}, with\n"
    "--by also \"by\" and \"groups\"; with --leads {\"leads\":[{\"lead\",\"set\",\"stage\",\n"
    "\"since\"}],\"total\"}.\n"
    "\n"
    "Exit status: 0 success, 2 usage or connection error.\n";

static int s_cmd_friction(ctl_opts_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        S_GLOBAL_OPTIONS,
        { "by", required_argument, NULL, S_OPT_BY },
        { "stage", required_argument, NULL, S_OPT_STAGE },
        { "leads", no_argument, NULL, S_OPT_LEADS },
        { "limit", required_argument, NULL, S_OPT_LIMIT },
        { 0, 0, 0, 0 },
    };
    const char *by = "", *stage = "";
    bool leads = false;
    long limit = 0;
    int c, rc;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == S_OPT_HELP) {
            s_command_help(s_find_command("friction"));
            return S_EXIT_OK;
        }
        if (c == S_OPT_BY) {
            if (strcmp(optarg, "persona") != 0 && strcmp(optarg, "source") != 0) {
                s_error("friction: --by wants persona or source, not \"%s\"", optarg);
                return S_EXIT_USAGE;
            }
            by = optarg;
            continue;
        }
        if (c == S_OPT_STAGE) {
            stage = optarg;
            continue;
        }
        if (c == S_OPT_LEADS) {
            leads = true;
            continue;
        }
        if (c == S_OPT_LIMIT) {
            if (s_parse_count(optarg, 1, 10000000, &limit) == -1) {
                s_error("friction: --limit wants 1..10000000, not \"%s\"", optarg);
                return S_EXIT_USAGE;
            }
            continue;
        }
        int r = s_global_option(g, c, optarg);
        if (r == 1)
            s_bad_option("friction", argc, argv, c);
        if (r != 0)
            return S_EXIT_USAGE;
    }
    if (optind < argc) {
        s_error("friction: unexpected argument \"%s\" (see funnelctl friction --help)",
                argv[optind]);
        return S_EXIT_USAGE;
    }
    if ((stage[0] || limit) && !leads) {
        s_error("friction: --stage and --limit go with --leads");
        return S_EXIT_USAGE;
    }
    if (leads && by[0]) {
        s_error("friction: --by does not combine with --leads");
        return S_EXIT_USAGE;
    }
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__FrictionQuery fq = FUNNEL__V1__FRICTION_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    fq.by = (char *)by;
    fq.stage = (char *)stage;
    fq.leads = leads;
    fq.limit = (uint32_t)limit;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_FRICTION;
    req.friction = &fq;
    rc = s_query_expect(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_FRICTION, "friction",
                        &reply);
    if (rc != S_EXIT_OK)
        return rc;
    if (g->json) {
        s_print_doc(leads ? render_friction_leads_json(reply->friction)
                          : render_friction_json(reply->friction));
    } else if (leads) {
        render_friction_leads_text(stdout, reply->friction);
    } else {
        render_friction_text(stdout, reply->friction);
    }
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return rc;
}

/* ------------------------------------------------------------------ */
/* definition                                                         */

static const char s_definition_help[] =
    "Usage: funnelctl definition check FILE\n"
    "       funnelctl definition diff A B\n"
    "\n"
    "Work with funnel definitions (YAML) without a running funneld.\n"
    "\n"
    "check FILE   validate FILE as funneld would load it: its syntax, every key and\n"
    "             value, and what they mean together (unknown stages, duplicates,\n"
    "             persona rules on event types nothing counts, thresholds no lead\n"
    "             could reach). An error is one line FILE:LINE:COLUMN: what is wrong.\n"
    "diff A B     the semantic difference between two definitions, one line per\n"
    "             difference: stages added, removed, changed or reordered;\n"
    "             transitions, regressions, points, fit rules, the qualification rule,\n"
    "             handoff settings and personas added, removed or changed.\n"
    "\n"
    "With --json: check prints {\"file\",\"valid\",\"error\",\"name\",\"hash\"}; diff\n"
    "prints {\"a\",\"b\",\"equal\",\"differences\":[{\"section\",\"change\",\"what\",\"a\",\n"
    "\"b\"}]}.\n"
    "\n"
    "Exit status: check: 0 valid, 1 invalid; diff: 0 equal, 1 different (or a file\n"
    "is invalid); 2 usage error.\n";

typedef struct {
    bool json;
    json_t *list;
} s_diff_out_t;

static void s_on_diff(const char *section, const char *change, const char *what,
                      const char *in_a, const char *in_b, void *arg)
{
    s_diff_out_t *o = arg;
    if (o->json) {
        json_t *e = json_pack("{s:s, s:s, s:s}", "section", section, "change", change,
                              "what", what);
        if (!e)
            abort();
        json_object_set_new(e, "a", in_a ? json_string(in_a) : json_null());
        json_object_set_new(e, "b", in_b ? json_string(in_b) : json_null());
        json_array_append_new(o->list, e);
        return;
    }
    if (strcmp(change, "added") == 0)
        printf("%s: added %s: %s\n", section, what, in_b);
    else if (strcmp(change, "removed") == 0)
        printf("%s: removed %s: %s\n", section, what, in_a);
    else if (strcmp(change, "reordered") == 0)
        printf("%s: reordered: %s -> %s\n", section, in_a, in_b);
    else
        printf("%s: changed %s: %s -> %s\n", section, what, in_a, in_b);
}

static int s_cmd_definition(ctl_opts_t *g, int argc, char **argv)
{
    int rc;
    int first = s_parse_plain(g, "definition", argc, argv, &rc);
    char err[1024];
    if (first < 0)
        return rc;
    const char *sub = first < argc ? argv[first] : NULL;
    int nargs = argc - first - 1;
    if (sub && strcmp(sub, "check") == 0 && nargs == 1) {
        const char *file = argv[first + 1];
        defn_t *d = defn_load_file(file, err, sizeof err);
        if (g->json) {
            json_t *o = json_pack("{s:s, s:b}", "file", file, "valid", d != NULL);
            if (!o)
                abort();
            json_object_set_new(o, "error", d ? json_null() : json_string(err));
            json_object_set_new(o, "name", d ? json_string(d->name) : json_null());
            json_object_set_new(o, "hash", d ? json_string(d->hash) : json_null());
            s_print_json(o, S_JSON_FLAGS);
            json_decref(o);
        } else if (d) {
            printf("%s: valid: definition \"%s\" (%zu stages, %zu transitions, %zu "
                   "engagement rules, %zu fit rules, %zu personas; hash %s)\n",
                   file, d->name, d->n_stages, d->n_transitions, d->n_points, d->n_fit,
                   d->n_personas, d->hash);
        } else {
            s_clear_progress();
            fprintf(stderr, "%s\n", err);
        }
        rc = d ? S_EXIT_OK : S_EXIT_NO;
        defn_destroy(&d);
        return rc;
    }
    if (sub && strcmp(sub, "diff") == 0 && nargs == 2) {
        const char *fa = argv[first + 1], *fb = argv[first + 2];
        defn_t *a = defn_load_file(fa, err, sizeof err);
        if (!a) {
            fprintf(stderr, "%s\n", err);
            return S_EXIT_NO;
        }
        defn_t *b = defn_load_file(fb, err, sizeof err);
        if (!b) {
            fprintf(stderr, "%s\n", err);
            defn_destroy(&a);
            return S_EXIT_NO;
        }
        s_diff_out_t out = { .json = g->json, .list = json_array() };
        size_t n = defn_diff(a, b, s_on_diff, &out);
        if (g->json) {
            json_t *o = json_pack("{s:s, s:s, s:b}", "a", fa, "b", fb, "equal", n == 0);
            if (!o)
                abort();
            json_object_set(o, "differences", out.list);
            s_print_json(o, S_JSON_FLAGS);
            json_decref(o);
        } else if (n == 0) {
            printf("%s and %s define the same funnel\n", fa, fb);
        } else {
            printf("%zu difference%s between %s and %s\n", n, n == 1 ? "" : "s", fa, fb);
        }
        json_decref(out.list);
        defn_destroy(&a);
        defn_destroy(&b);
        return n == 0 ? S_EXIT_OK : S_EXIT_NO;
    }
    s_error("definition: want \"check FILE\" or \"diff A B\" (see funnelctl definition --help)");
    return S_EXIT_USAGE;
}

static const char s_stats_help[] =
    "Usage: funnelctl stats\n"
    "\n"
    "Show funneld's counters: events received, applied, duplicates, rejected, group\n"
    "commits, last log sequence, leads, alerts, stream gaps and messages, the\n"
    "definition in use, and the uptime.\n"
    "\n"
    "With --json: every counter by its protocol name, plus \"uptime_ms\" and \"uptime\"\n"
    "(for people).\n";

static int s_cmd_stats(ctl_opts_t *g, int argc, char **argv)
{
    int rc;
    int first = s_parse_plain(g, "stats", argc, argv, &rc);
    if (first < 0)
        return rc;
    if (first < argc) {
        s_error("stats: unexpected argument \"%s\" (see funnelctl stats --help)", argv[first]);
        return S_EXIT_USAGE;
    }
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__StatsQuery sq = FUNNEL__V1__STATS_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_STATS;
    req.stats = &sq;
    rc = s_query_expect(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_STATS, "stats", &reply);
    if (rc != S_EXIT_OK)
        return rc;
    if (g->json)
        s_print_doc(render_stats_json(reply->stats));
    else
        render_stats_text(stdout, reply->stats);
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return rc;
}

/* ------------------------------------------------------------------ */
/* watch                                                              */

static const char s_watch_help[] =
    "Usage: funnelctl watch [--count N] [TOPIC...]\n"
    "\n"
    "Print funneld's alerts as they are published: a line each, with its first\n"
    "reason, and its further reasons indented below (with --json, one JSON object a\n"
    "line: {\"kind\",\"topic\",\"lead\",\"at\",\"stage\",\"from_stage\",\"reasons\",\n"
    "\"event_id\",\"seq\",\"snapshot\"}, snapshot being the lead as after the\n"
    "alert). TOPICs are prefixes (\"handoff\", \"stage\", \"friction.\", ...); all alerts\n"
    "when none is given. Alerts published before watch connects are not seen.\n"
    "\n"
    "Options:\n"
    "  --count N       exit after N alerts\n"
    "  --timeout SECS  exit when no alert came for SECS seconds (default 0: wait\n"
    "                  forever)\n"
    "\n"
    "Exit status: 0 on SIGINT/SIGTERM, after --count alerts, or at the --timeout\n"
    "when some alerts came (and --count, if given, was reached); 1 when the\n"
    "--timeout passed with none (or fewer than --count); 2 on a usage or\n"
    "connection error.\n";

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_cmd_watch(ctl_opts_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        S_GLOBAL_OPTIONS,
        { "count", required_argument, NULL, S_OPT_COUNT },
        { 0, 0, 0, 0 },
    };
    long count = 0;
    int c, rc = S_EXIT_USAGE;
    void *ctx = NULL, *sock = NULL;
    zmq_msg_t topic, body;
    zmq_msg_init(&topic);
    zmq_msg_init(&body);

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        if (c == S_OPT_HELP) {
            s_command_help(s_find_command("watch"));
            rc = S_EXIT_OK;
            goto done;
        }
        if (c == S_OPT_COUNT) {
            if (s_parse_count(optarg, 1, LONG_MAX, &count) == -1) {
                s_error("watch: --count wants a number >= 1, not \"%s\"", optarg);
                goto done;
            }
            continue;
        }
        int r = s_global_option(g, c, optarg);
        if (r == 1)
            s_bad_option("watch", argc, argv, c);
        if (r != 0)
            goto done;
    }
    double timeout = g->timeout_set ? g->timeout : 0;

    struct sigaction sa = { .sa_handler = s_on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    ctx = zmq_ctx_new();
    if (!ctx || !(sock = s_socket(ctx, ZMQ_SUB, g->alerts)))
        goto done;
    if (optind == argc)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
    for (int i = optind; i < argc; i++)
        zmq_setsockopt(sock, ZMQ_SUBSCRIBE, argv[i], strlen(argv[i]));

    long seen = 0;
    int64_t deadline = timeout > 0 ? s_mono_ms() + (int64_t)(timeout * 1000) : -1;
    while (!s_stop) {
        long wait = -1;
        if (deadline >= 0) {
            wait = (long)(deadline - s_mono_ms());
            if (wait < 0)
                wait = 0;
        }
        int r = s_wait_readable(sock, wait);
        if (s_stop)
            break;
        if (r == -1) {
            if (zmq_errno() == EINTR)
                continue;
            s_error("cannot receive from %s: %s", g->alerts, zmq_strerror(zmq_errno()));
            goto done;
        }
        if (r == 0) {
            if (seen == 0)
                s_error("no alert from funneld at %s within %g s", g->alerts, timeout);
            else if (count > 0)
                s_error("%ld of %ld alerts from funneld at %s within %g s", seen, count,
                        g->alerts, timeout);
            rc = seen > 0 && count == 0 ? S_EXIT_OK : S_EXIT_NO;
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
            if (!two) {
                s_error("alert without a topic frame from %s (ignored)", g->alerts);
                continue;
            }
            char *name = strndup(zmq_msg_data(&topic), zmq_msg_size(&topic));
            Funnel__V1__Alert *a =
                funnel__v1__alert__unpack(NULL, zmq_msg_size(&body), zmq_msg_data(&body));
            if (!a) {
                s_error("undecodable alert on topic \"%s\" from %s (ignored)",
                        name ? name : "?", g->alerts);
                free(name);
                continue;
            }
            if (g->json) {
                json_t *doc = render_alert_json(a, name);
                s_print_json(doc, S_NDJSON_FLAGS);
                json_decref(doc);
            } else {
                render_alert_text(stdout, a, name);
                fflush(stdout);
            }
            funnel__v1__alert__free_unpacked(a, NULL);
            free(name);
            seen++;
            if (timeout > 0)
                deadline = s_mono_ms() + (int64_t)(timeout * 1000);
            if (count > 0 && seen >= count) {
                rc = S_EXIT_OK;
                goto done;
            }
        }
    }
    rc = S_EXIT_OK; /* SIGINT / SIGTERM */

done:
    zmq_msg_close(&topic);
    zmq_msg_close(&body);
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

/* ------------------------------------------------------------------ */
/* the command table and main                                         */

static const ctl_cmd_t s_commands[] = {
    { "publish", "publish NDJSON events from a file or stdin, reliably", s_publish_help,
      s_cmd_publish },
    { "send", "send one event and wait for its Ack", s_send_help, s_cmd_send },
    { "lead", "show one lead: stage, scores, persona, handoff, timeline", s_lead_help,
      s_cmd_lead },
    { "funnel", "show leads per stage and conversion", s_funnel_help, s_cmd_funnel },
    { "friction", "show friction points, worst first; stalled leads", s_friction_help,
      s_cmd_friction },
    { "watch", "print live alerts", s_watch_help, s_cmd_watch },
    { "stats", "show funneld's counters", s_stats_help, s_cmd_stats },
    { "definition", "check a funnel definition, or diff two", s_definition_help,
      s_cmd_definition },
};

static const ctl_cmd_t *s_find_command(const char *name)
{
    for (size_t i = 0; i < sizeof s_commands / sizeof *s_commands; i++)
        if (strcmp(s_commands[i].name, name) == 0)
            return &s_commands[i];
    return NULL;
}

static void s_usage(FILE *out)
{
    fputs("Usage: funnelctl [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n"
          "\n"
          "The companion CLI of funneld, the marketing-and-sales funnel daemon.\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof s_commands / sizeof *s_commands; i++)
        fprintf(out, "  %-11s %s\n", s_commands[i].name, s_commands[i].summary);
    fputs("\n`funnelctl COMMAND --help` documents each command.\n", out);
    fputs(S_GLOBAL_HELP, out);
    fputs("  --version        print the version\n", out);
    fputs(S_EXIT_HELP, out);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        S_GLOBAL_OPTIONS,
        { "version", no_argument, NULL, 'V' },
        { 0, 0, 0, 0 },
    };
    ctl_opts_t g = {
        .ingest = S_DEFAULT_INGEST,
        .alerts = S_DEFAULT_ALERTS,
        .query = S_DEFAULT_QUERY,
    };
    int c;

    /* A reader that goes away (funnelctl watch | head) ends us quietly. */
    signal(SIGPIPE, SIG_DFL);

    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
        if (c == S_OPT_HELP) {
            s_usage(stdout);
            return S_EXIT_OK;
        }
        if (c == 'V') {
            printf("funnelctl %s\n", FUNNELD_VERSION);
            return S_EXIT_OK;
        }
        int r = s_global_option(&g, c, optarg);
        if (r == 1) {
            const char *what = optind - 1 < argc ? argv[optind - 1] : "?";
            s_error(c == ':' ? "option %s needs a value (see funnelctl --help)"
                             : "unknown option %s (see funnelctl --help)",
                    what);
        }
        if (r != 0)
            return S_EXIT_USAGE;
    }
    if (optind >= argc) {
        s_usage(stderr);
        return S_EXIT_USAGE;
    }
    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        const ctl_cmd_t *cmd = optind + 1 < argc ? s_find_command(argv[optind + 1]) : NULL;
        if (cmd)
            s_command_help(cmd);
        else
            s_usage(stdout);
        return S_EXIT_OK;
    }
    const ctl_cmd_t *cmd = s_find_command(name);
    if (!cmd) {
        s_error("unknown command \"%s\" (see funnelctl --help)", name);
        return S_EXIT_USAGE;
    }
    return cmd->run(&g, argc - optind, argv + optind);
}
