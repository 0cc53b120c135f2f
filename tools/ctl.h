/* ctl.h: funnelctl's private header (not a library interface).
 *
 *   funnelctl.c         main, the command table (CTL_COMMANDS), `funnelctl --help`
 *   ctl_opt.c           the option tables: one generic parser and `--help` printer,
 *                       the global options (defaults from daemon/cfg.h's table)
 *   ctl_util.c          messages, clocks, ids, JSON output, socket helpers
 *   ctl_query.c         the query client (QueryRequest -> QueryReply, with a deadline)
 *   ctl_ingest.c        the reliable ingest client (batches, window, Acks, resends)
 *   ctl_publish.c       publish and send
 *   ctl_query_cmds.c    lead, funnel, friction, stats
 *   ctl_watch.c         watch
 *   ctl_alerts.c        alerts, and fetching stored alerts (AlertsSince) for watch
 *   ctl_definition.c    definition check / diff
 *   ctl_leads.c         leads (the listing, paged; rows by common/leadrows.c)
 *   ctl_keygen.c        keygen (CURVE key pairs; the files: daemon/curvekey.c)
 *   ctl_checkpoint.c    checkpoint
 *   ctl_quality.c       quality (lead quality against outcomes)
 *   ctl_backtest.c      backtest (a draft replayed on history beside the live one)
 *   ctl_shadow.c        shadow (the shadow drafts beside the live definition)
 *   ctl_nats.c          publish --nats, watch --nats (NATS JetStream, subjects)
 *   ctl_nats_query.c    the queries with --nats: lead asked of its partition's
 *                       owner, funnel/friction/quality/stats gathered from every
 *                       instance and merged (the report code on merged counters)
 *
 * Every command is a ctl_cmd_t (ctl_<name>.c or a group file) named in
 * CTL_COMMANDS below; its options are one ctl_opt_t table that the generic
 * parser (ctl_parse) reads and `funnelctl COMMAND --help` prints.
 *
 * Exit status of every command: 0 success, 1 the answer is "no", 2 usage or
 * connection error (one line "funnelctl: ..." on stderr). funnelctl is
 * single-threaded; nothing here is thread-safe.
 */
#ifndef FUNNELCTL_CTL_H
#define FUNNELCTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <zmq.h>

#include "cfg.h" /* daemon/: CFG_FIELDS, the daemon's settings and defaults */
#include "funnel.pb-c.h"
#include "render.h"  /* RENDER_JSON_FLAGS */

#ifndef FUNNELD_VERSION
#define FUNNELD_VERSION "dev"
#endif

enum { CTL_EXIT_OK = 0, CTL_EXIT_NO = 1, CTL_EXIT_USAGE = 2 };

/* How long funnelctl waits for funneld when --timeout is not given, and the
 * first Ack timeout of publish and send, in seconds. */
#define CTL_TIMEOUT_S 5
#define CTL_STR_(x) #x
#define CTL_STR(x) CTL_STR_(x)

/* JSON output: 15 significant digits print 0.1 as 0.1. */
#define CTL_JSON_FLAGS RENDER_JSON_FLAGS
#define CTL_NDJSON_FLAGS RENDER_NDJSON_FLAGS

/* The daemon's settings with their built-in defaults, generated from
 * daemon/cfg.h's CFG_FIELDS: funnelctl's default endpoints are the daemon's
 * (ctl_global_defaults.cfg.ingest ...), never a copy of them. */
#define CTL_CFG_STR_MEMBER(name) const char *name;
#define CTL_CFG_UINT_MEMBER(name) unsigned name;
#define CTL_CFG_MEMBER(type, name, def, help) CTL_CFG_##type##_MEMBER(name)
typedef struct {
    CFG_FIELDS(CTL_CFG_MEMBER)
} ctl_cfg_t;

/* Global options, shared by every command. */
typedef struct {
    ctl_cfg_t cfg;    /* .ingest, .alerts, .query: the endpoints in use */
    bool json;
    double timeout;   /* seconds; < 0: not given (see ctl_timeout) */
    /* CURVE: the server's public key file and this client's secret key
     * file (--server-key, --client-key, or FUNNELCTL_SERVER_KEY /
     * FUNNELCTL_CLIENT_KEY); NULL: plain. */
    const char *server_key;
    const char *client_key;
    /* Cluster mode (--nats URL in cfg.nats, --stream in cfg.stream): the
     * cluster's partitions (--cluster-partitions; 0: cfg's default). */
    long cluster_partitions;
    /* The keys, read on first use by ctl_curve (0 not yet, 1 read). */
    int curve_read;
    char curve_server[41], curve_public[41], curve_secret[41];
} ctl_opts_t;

/* The global options at their defaults (endpoints from the daemon's table). */
extern const ctl_opts_t ctl_global_defaults;

/* --timeout if given, else def. */
double ctl_timeout(const ctl_opts_t *g, double def);

/* -- option tables ------------------------------------------------------ */

typedef enum {
    CTL_OPT_FLAG,        /* bool = true; no argument */
    CTL_OPT_STRING,      /* const char * = the argument (points into argv) */
    CTL_OPT_COUNT,       /* long, a decimal integer in [min, max] */
    CTL_OPT_SECONDS,     /* double, seconds >= 0 (fractions allowed) */
    CTL_OPT_SECONDS_POS, /* double, seconds > 0 */
    CTL_OPT_CHOICE,      /* const char *, one of choices */
    CTL_OPT_FN,          /* fn(row, state, argument) */
    CTL_OPT_HELP,        /* print the command's help, exit 0 */
} ctl_opt_kind_t;

struct ctl_opt;
/* A handler for a CTL_OPT_FN row: arg is NULL for a row without .arg.
 * Returns 0 (go on), 1 (done: exit 0 now) or -1 (error printed: exit 2). */
typedef int ctl_opt_fn(const struct ctl_opt *o, void *state, const char *arg);

/* One option: --name [ARG], its help text and where its value goes
 * (offset into the command's state struct). Tables end with a row whose
 * name is NULL. Use the CTL_* row macros below. */
typedef struct ctl_opt {
    const char *name;           /* without the leading -- */
    const char *arg;            /* placeholder in --help ("N"); NULL: none */
    const char *help;           /* one paragraph; wrapped by the printer */
    ctl_opt_kind_t kind;
    size_t offset;              /* of the target in the state struct */
    long min, max;              /* CTL_OPT_COUNT (max LONG_MAX: no limit) */
    const char *const *choices; /* CTL_OPT_CHOICE, NULL-terminated */
    ctl_opt_fn *fn;             /* CTL_OPT_FN */
} ctl_opt_t;

/* offsetof(type, member), failing to compile unless member has type T. */
#define CTL_OFF(type, member, T) \
    (offsetof(type, member) + 0 * sizeof(_Generic(((type *)0)->member, T: 1)))

#define CTL_FLAG(name, type, member, help) \
    { name, NULL, help, CTL_OPT_FLAG, CTL_OFF(type, member, bool), 0, 0, NULL, NULL }
#define CTL_STRING(name, arg, type, member, help) \
    { name, arg, help, CTL_OPT_STRING, CTL_OFF(type, member, const char *), 0, 0, NULL, NULL }
#define CTL_COUNT(name, arg, type, member, lo, hi, help) \
    { name, arg, help, CTL_OPT_COUNT, CTL_OFF(type, member, long), lo, hi, NULL, NULL }
#define CTL_SECONDS(name, arg, type, member, help) \
    { name, arg, help, CTL_OPT_SECONDS, CTL_OFF(type, member, double), 0, 0, NULL, NULL }
#define CTL_SECONDS_POS(name, arg, type, member, help) \
    { name, arg, help, CTL_OPT_SECONDS_POS, CTL_OFF(type, member, double), 0, 0, NULL, NULL }
#define CTL_CHOICE(name, type, member, choices, help) \
    { name, NULL, help, CTL_OPT_CHOICE, CTL_OFF(type, member, const char *), 0, 0, choices, NULL }
#define CTL_FN(name, arg, fn, help) \
    { name, arg, help, CTL_OPT_FN, 0, 0, 0, NULL, fn }
/* A repeatable option collecting topic prefixes into a ctl_topics_t
 * member (at most CTL_TOPICS_MAX, each at most 255 bytes). */
#define CTL_TOPICS_MAX 64
typedef struct {
    const char *names[CTL_TOPICS_MAX]; /* point into argv */
    size_t n;
} ctl_topics_t;
int ctl_topic_opt(const struct ctl_opt *o, void *state, const char *arg);
#define CTL_TOPICS(name, type, member, help) \
    { name, "T", help, CTL_OPT_FN, CTL_OFF(type, member, ctl_topics_t), 0, 0, NULL, ctl_topic_opt }
#define CTL_END { NULL, NULL, NULL, CTL_OPT_FLAG, 0, 0, 0, NULL, NULL }

typedef int ctl_run_fn(ctl_opts_t *g, int argc, char **argv);

/* A command: its texts, its option table and its function. `funnelctl
 * NAME --help` prints usage, about, the options (with the defaults read
 * from *defaults), notes, the global options and exits (or the generic
 * exit-status line). */
typedef struct {
    const char *name;
    const char *summary;      /* one line for `funnelctl --help` */
    const char *usage;        /* "Usage: funnelctl NAME ..." line(s) */
    const char *about;        /* what it does, preformatted; NULL: none */
    const ctl_opt_t *opts;    /* its own options; NULL: only the global ones */
    const void *defaults;     /* the state opts point into, at its defaults */
    const char *notes;        /* after the options (--json format ...); or NULL */
    const char *exits;        /* "Exit status: ..."; NULL: the generic line */
    ctl_run_fn *run;          /* argv[0] is the command name */
} ctl_cmd_t;

/* The commands, in the order `funnelctl --help` lists them.
 *
 * Adding a command NAME: write ctl_NAME.c (or add to a group file such as
 * ctl_query_cmds.c) defining `const ctl_cmd_t ctl_cmd_NAME` with its
 * option table (ctl_opt_t rows on a state struct) and its run function,
 * which starts with ctl_parse(); then add X(NAME) here. tools/CMakeLists.txt
 * builds every tools/ctl_*.c, and --help comes from the table. */
#define CTL_COMMANDS(X) \
    X(publish)          \
    X(send)             \
    X(lead)             \
    X(funnel)           \
    X(friction)         \
    X(quality)          \
    X(backtest)         \
    X(shadow)           \
    X(leads)            \
    X(watch)            \
    X(alerts)           \
    X(stats)            \
    X(checkpoint)       \
    X(definition)       \
    X(keygen)

#define CTL_DECLARE(name) extern const ctl_cmd_t ctl_cmd_##name;
CTL_COMMANDS(CTL_DECLARE)
#undef CTL_DECLARE

/* The command called name, or NULL. */
const ctl_cmd_t *ctl_find_command(const char *name);

/* Parse a command's options (its table and the global ones, anywhere among
 * the operands; getopt_long rules: --opt=V, unique abbreviations, -- ends
 * options) into *state and *g. Values are checked as they come, so the
 * first bad one is the one reported ("NAME: --opt wants ..."). Returns the
 * index in argv of the first operand, or -1 when funnelctl should exit with
 * *rc: 0 after --help (printed on stdout), 2 after an error (printed). */
int ctl_parse(const ctl_cmd_t *cmd, ctl_opts_t *g, void *state, int argc, char **argv,
              int *rc);

/* main's own options, before the command (stops at the first operand;
 * --help prints `funnelctl --help` with the command list, --version).
 * Returns the index of the command name or -1 with *rc as ctl_parse. */
int ctl_parse_global(ctl_opts_t *g, int argc, char **argv, int *rc);

/* Print `funnelctl CMD --help` on out. */
void ctl_command_help(const ctl_cmd_t *cmd, FILE *out);

/* Print `funnelctl --help` on out. */
void ctl_usage(FILE *out);

/* The global options and main's own (--version), formatted as in --help,
 * for ctl_usage. */
void ctl_print_main_options(FILE *out);

extern const ctl_opt_t ctl_global_opts[];
extern const char ctl_exit_help[]; /* the generic "Exit status: ..." line */

/* -- ctl_util.c --------------------------------------------------------- */

/* One line on stderr, "funnelctl: ...", after clearing a progress line. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Clear the progress line from stderr if one shows; ctl_mark_progress()
 * says one is drawn now (publish's progress bar). */
void ctl_clear_progress(void);
void ctl_mark_progress(void);


/* The whole of file path (at most max bytes), NUL-terminated, *len bytes
 * (may be NULL). NULL with the error printed ("funnelctl: PATH: ...").
 * Caller frees. */
char *ctl_read_file(const char *path, size_t max, size_t *len);

/* A draft definition for the lab commands: path loaded and checked here
 * first (its FILE:LINE:COLUMN error printed and NULL returned when it is
 * not valid), then its text read for funneld (caller frees). */
char *ctl_read_draft(const char *path);

/* How long the lab commands (quality --draft, backtest) wait for funneld
 * when --timeout is not given: they replay the event log. */
#define CTL_LAB_TIMEOUT_S 600

int64_t ctl_mono_ms(void); /* monotonic clock, for deadlines */
int64_t ctl_wall_ms(void); /* since the epoch, for event times */

/* n (<= 32) random bytes as 2n lowercase hex digits into out[2n + 1]. */
void ctl_random_hex(char *out, size_t n);

/* Print a JSON document on stdout (one line after it), flush; the
 * _doc variant also frees it. */
void ctl_print_json(json_t *doc, size_t flags);
void ctl_print_doc(json_t *doc);

/* A new socket of type, linger 0, a CURVE client when g has keys (see
 * ctl_curve), connected to endpoint; NULL with the error printed. The
 * caller closes it. */
void *ctl_socket(ctl_opts_t *g, void *ctx, int type, const char *endpoint);

/* Make sock a CURVE client of funneld when --server-key / --client-key
 * (or their environment variables) are given: both are needed; the keys
 * are read at the first call. Before zmq_connect. Returns 0, or -1 with
 * the error printed (a missing or unreadable key file, a secret key others
 * may read). */
int ctl_curve(ctl_opts_t *g, void *sock);

/* A hint for "no answer from funneld": with CURVE, the key may not be
 * allowed in. "" without CURVE. Static text. */
const char *ctl_curve_hint(const ctl_opts_t *g);

/* Receive one message, keeping its last frame (a DEALER may see an empty
 * delimiter first). Returns 0 with *msg initialised (caller closes it) or
 * -1 (zmq_errno()). */
int ctl_recv_payload(void *sock, zmq_msg_t *msg, int flags);

/* Wait up to timeout_ms (-1: forever) for sock to be readable. Returns 1
 * readable, 0 timed out, -1 interrupted or failed (zmq_errno()). */
int ctl_wait_readable(void *sock, long timeout_ms);

/* -- ctl_query.c -------------------------------------------------------- */

/* Send req to g's query endpoint and wait (--timeout, default
 * CTL_TIMEOUT_S) for the reply of the kind want. Returns CTL_EXIT_OK with
 * *reply_out (free with funnel__v1__query_reply__free_unpacked), or
 * CTL_EXIT_USAGE with the error printed: no reply in time, undecodable,
 * reply.error set, or another kind ("funneld at EP answered a WHAT query
 * with something else"). req->request_id is set during the call only. */
int ctl_query(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
              Funnel__V1__QueryReply__ReplyCase want, const char *what,
              Funnel__V1__QueryReply **reply_out);

/* The same in steps, for a client with one request in flight while it
 * works on the last reply (the pages of a listing): open a connection,
 * send a request (its request_id is set during the call only), receive
 * its reply (returns as ctl_query), close. open and send return
 * CTL_EXIT_OK or CTL_EXIT_USAGE (printed); close accepts a connection
 * whose open failed. */
typedef struct {
    ctl_opts_t *g;
    void *ctx, *sock;
    char request_id[33];  /* of the request in flight */
} ctl_query_conn_t;
int ctl_query_open(ctl_query_conn_t *c, ctl_opts_t *g);
int ctl_query_send(ctl_query_conn_t *c, Funnel__V1__QueryRequest *req);
int ctl_query_recv(ctl_query_conn_t *c, Funnel__V1__QueryReply__ReplyCase want,
                   const char *what, Funnel__V1__QueryReply **reply_out);
void ctl_query_close(ctl_query_conn_t *c);

/* -- ctl_alerts.c ------------------------------------------------------- */

/* Print one alert as watch and alerts do: NDJSON with --json, else a text
 * line (topic: the frame it came on, NULL: its own field). */
void ctl_print_alert(const ctl_opts_t *g, const Funnel__V1__Alert *a, const char *topic);

/* The stored stream's bounds as funneld's first page saw them. */
typedef struct {
    uint64_t last_seq;    /* newest alert_seq stored */
    uint64_t first_seq;   /* oldest still stored (0: none) */
} ctl_alerts_bounds_t;

typedef void ctl_alert_fn(const Funnel__V1__Alert *a, void *arg);

/* Fetch the stored alerts after *seq whose topic begins with one of
 * topics (none: all), page by page (AlertsSince), and call fn(alert, arg)
 * for each, in alert_seq order (the alert is borrowed for the call): up to
 * the newest stored, or to alert_seq upto (0: no bound), at most limit of
 * them (0: no limit). *seq moves along: everything up to it was handed out
 * or did not match. bounds (may be NULL) receives the first page's.
 * Returns CTL_EXIT_OK, or CTL_EXIT_USAGE with the error printed. */
int ctl_alerts_fetch(ctl_opts_t *g, const ctl_topics_t *topics, uint64_t *seq,
                     uint64_t upto, long limit, ctl_alert_fn *fn, void *arg,
                     ctl_alerts_bounds_t *bounds);

/* Say on stderr which alerts after since funneld no longer stores. */
void ctl_alerts_note_retention(uint64_t since, const ctl_alerts_bounds_t *b);

/* -- ctl_ingest.c ------------------------------------------------------- */

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
} ctl_batch_t;

/* The reliable ingest client: set name, quiet, window, retries and
 * ack_timeout, then ctl_ingest_open, submit and pump until inflight is 0,
 * ctl_ingest_close. */
typedef struct {
    ctl_opts_t *g;
    void *sock;
    const char *name;     /* input name for messages ("stdin" for -) */
    bool quiet;           /* no per-event messages on stderr (send prints its own) */
    long window;          /* batches in flight at most */
    long retries;         /* resends of a batch before giving up */
    double ack_timeout;   /* seconds before the first resend (doubles) */
    ctl_batch_t *slots;   /* window of them */
    long inflight;
    uint64_t next_batch;
    char run_id[17];      /* random prefix of this run's batch ids */
    /* counters for the summary */
    uint64_t lines, sent, accepted, duplicates, rejected, bad_lines;
    /* for send: the outcome of the last Ack */
    char last_result[16];
    char last_reason[512];
} ctl_ingest_t;

/* Connect a DEALER to g's ingest endpoint and wait (--timeout if > 0, else
 * CTL_TIMEOUT_S) for the connection. Returns 0 or -1 (printed); call
 * ctl_ingest_close either way. */
int ctl_ingest_open(ctl_ingest_t *in, void *ctx, ctl_opts_t *g);

/* Take events[0..n) (destroyed here) and lines (owned by the batch now),
 * send them as one EventBatch. A slot must be free (inflight < window).
 * Returns 0 or -1 (printed). */
int ctl_ingest_submit(ctl_ingest_t *in, Funnel__V1__Event **events, uint64_t *lines,
                      size_t n);

/* Wait at most max_wait_ms (-1: until the next resend deadline) for Acks,
 * account for them, resend batches due. Returns 0, or -1 when a batch ran
 * out of retries or the socket failed (printed). */
int ctl_ingest_pump(ctl_ingest_t *in, long max_wait_ms);

void ctl_ingest_close(ctl_ingest_t *in);

/* -- NATS (ctl_nats.c) ---------------------------------------------------- */

/* publish --nats: the NDJSON lines of fp (named name in messages) as
 * EventBatch messages on funnel.in.<partition> through JetStream, at most
 * batch events each, every one acknowledged by the stream (resent up to
 * retries times). Returns the exit status. */
typedef struct {
    const char *urls;       /* comma-separated NATS URLs */
    long partitions;        /* the cluster's (funneld's cluster_partitions) */
    long batch, retries;
    bool strict;
} ctl_nats_publish_opts_t;
int ctl_nats_publish(const ctl_opts_t *g, const ctl_nats_publish_opts_t *o, FILE *fp,
                     const char *name);

/* watch --nats: print the alerts on funnel.alerts.<topic> of every topic
 * (or dotted prefix) of topics, all when none, until SIGINT/SIGTERM (0),
 * count alerts (0: no limit; then 0) or timeout seconds without one
 * (0 when some came and count, if given, was reached, else 1). Returns
 * the exit status (2 when NATS cannot be reached). */
int ctl_nats_watch(const ctl_opts_t *g, const ctl_topics_t *topics, long count,
                   double timeout, const char *urls);

/* Connect to NATS (comma-separated URLs; FUNNELCTL_NATS_CREDENTIALS: a
 * credentials file) and open JetStream, waiting at most timeout_s for
 * each. Returns 0, or -1 (printed). ctl_nats_close: flush (at most 1 s)
 * and close what it opened. */
struct __natsConnection;
struct __jsCtx;
int ctl_nats_connect(const char *urls, double timeout_s, struct __natsConnection **nc,
                     struct __jsCtx **js);
void ctl_nats_close(struct __natsConnection **nc, struct __jsCtx **js);

/* ctl_query's answer with --nats (ctl_nats_query.c): a lead asked of its
 * partition's owner on funnel.query.<partition>; stats, funnel, friction
 * and quality gathered on funnel.query.all from every live instance (as
 * many as the lease bucket's presence keys, within --timeout; those that
 * did not answer and the partitions left out are named on stderr) and
 * merged: counts added up, the reports computed by handlers/report.c from
 * the merged counters. Same contract as ctl_query. */
int ctl_nats_query(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
                   Funnel__V1__QueryReply__ReplyCase want, const char *what,
                   Funnel__V1__QueryReply **reply_out);

/* The cluster partition of a lead among n: FNV-1a 32 of its id mod n
 * (funneld's partition_of). */
unsigned ctl_nats_partition(const char *lead_id, unsigned n);

#endif
