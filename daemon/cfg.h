/* cfg.h: funneld's configuration.
 *
 * One struct, one table (CFG_FIELDS below) that gives each setting its key,
 * type, built-in default and help text. The same table drives the defaults,
 * the YAML config file (through a libcyaml schema generated from it), the
 * command-line options (--state-dir for state_dir), --help and
 * --dump-config, so none of them can drift from the others.
 *
 * Precedence: built-in defaults < config file < command line.
 */
#ifndef FUNNELD_CFG_H
#define FUNNELD_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* X(type, key, default, help). type is STR or UINT. */
#define CFG_FIELDS(X)                                                          \
    X(STR, state_dir, "./var/funneld",                                         \
      "directory holding the LMDB environments (log/, state/)")                \
    X(STR, definition, "",                                                     \
      "funnel definition YAML file; empty: the built-in AIDA definition")      \
    X(STR, ingest, "tcp://127.0.0.1:7701",                                     \
      "ingest ROUTER endpoint (EventBatch in, Ack out)")                       \
    X(STR, alerts, "tcp://127.0.0.1:7702",                                     \
      "alerts PUB endpoint ([topic][Alert])")                                  \
    X(STR, query, "tcp://127.0.0.1:7703",                                      \
      "query ROUTER endpoint (QueryRequest in, QueryReply out)")               \
    X(STR, clock, "wall",                                                      \
      "daemon time: wall (live) or event (event-time watermark, backfills)")   \
    X(STR, log_level, "info", "error, warn, info or debug")                    \
    X(UINT, drain_budget, 256,                                                 \
      "messages handled per socket wakeup before other work gets a turn")      \
    X(UINT, group_max_events, 8000,                                            \
      "commit a group once this many events are pending")                      \
    X(UINT, group_delay_ms, 0,                                                 \
      "wait at most this long for more events before committing a group")     \
    X(UINT, partitions, 1,                                                     \
      "state partitions, each one LMDB state and one thread applying it off "   \
      "the Ack path (1..64; default: the cores less one, 1 to 8; a change "     \
      "rebuilds the state from the log); 0: the loop thread applies one "       \
      "state before each Ack (as with clock event)")                            \
    X(UINT, max_batch_events, 10000,                                           \
      "larger EventBatch messages are refused whole")                          \
    X(UINT, max_message_kb, 16384,                                             \
      "larger messages are dropped by ZeroMQ (ZMQ_MAXMSGSIZE), in KiB")        \
    X(UINT, map_size_mb, 256,                                                  \
      "initial LMDB map size per environment, MiB (grows when full)")          \
    X(UINT, alerts_hwm, 100000,                                                \
      "alerts queued per slow subscriber before they are dropped")             \
    X(STR, alerts_retention, "30d",                                            \
      "how long stored alerts stay retrievable by alert_seq, in daemon time "  \
      "(e.g. 30d, 12h, 90m); 0: for ever")                                     \
    X(UINT, linger_ms, 2000,                                                   \
      "how long shutdown waits to deliver queued acks and replies")            \
    X(UINT, progress_interval_ms, 5000,                                        \
      "log replay and rebuild progress this often when not on a terminal")     \
    X(STR, curve_secret_file, "",                                              \
      "CURVE: the server's secret key file (funnelctl keygen); set, every TCP "  \
      "endpoint authenticates and encrypts")                                    \
    X(STR, curve_clients_file, "",                                             \
      "CURVE: allowed client public keys, one a line (# comments, a name may "   \
      "follow the key); reloaded on SIGHUP")                                    \
    X(UINT, insecure_remote, 0,                                                \
      "1: allow non-loopback TCP without CURVE (unauthenticated, plain text)")   \
    X(STR, http, "127.0.0.1:7704",                                             \
      "HTTP for operations (/metrics, /healthz, /readyz), host:port; empty: "    \
      "off")                                                                    \
    X(STR, http_token_file, "",                                                \
      "file holding the bearer token HTTP requests must carry; required for a " \
      "non-loopback http")                                                     \
    X(STR, checkpoint_interval, "5m",                                          \
      "take a durable checkpoint of the state this often (30s, 5m, 1h); a "    \
      "restart after a power loss replays only the log after the newest one; " \
      "0: no automatic checkpoints")                                           \
    X(UINT, checkpoint_events, 2000000,                                        \
      "also take one once this many events were logged since the last, "       \
      "whichever comes first (0: by time only)")                               \
    X(UINT, checkpoint_keep, 2,                                                \
      "checkpoints kept in state_dir/checkpoints (at least 1)")                \
    X(STR, log_retention, "",                                                  \
      "drop event-log entries older than this event-time duration (90d) or "   \
      "beyond this size of log (50G, 512M), and only those a kept checkpoint " \
      "covers; empty: keep the whole log")                                     \
    X(STR, rebuild_dir, "",                                                    \
      "--rebuild writes the rebuilt state here and keeps it; empty: "          \
      "state_dir/state.rebuild, deleted after the comparison")               \
    X(STR, nats, "",                                                           \
      "cluster mode: NATS server URLs, comma-separated (nats://host:4222, "    \
      "tls://host:4222); events are then also consumed from JetStream")       \
    X(UINT, cluster_partitions, 32,                                            \
      "partitions of the cluster (fixed for its life): a lead's is FNV-1a 32 " \
      "of its id mod this, its subject funnel.in.<partition>; 1..64: each is "  \
      "one of the state's partitions (partitions is this in cluster mode)")    \
    X(STR, stream, "FUNNEL",                                                   \
      "the JetStream stream of funnel.in.* (created if absent)")              \
    X(UINT, stream_replicas, 1,                                                \
      "replicas of the stream when funneld creates it (1..5)")                 \
    X(STR, nats_credentials, "",                                               \
      "NATS credentials file (user JWT and nkey seed, as nsc writes it); "     \
      "empty: none")                                                           \
    X(STR, owns, "",                                                           \
      "the cluster partitions this instance consumes, e.g. 0-5,9 (static); "   \
      "empty: its share, claimed by leases")                                   \
    X(STR, instance, "",                                                       \
      "this instance's name in the cluster (letters, digits, '_', '-'); "      \
      "empty: the host name and a hash of state_dir")                          \
    X(UINT, lease_ms, 10000,                                                   \
      "how long a partition lease lasts unless refreshed (1000..600000)")

#define CFG_STR_MEMBER(name) char *name;
#define CFG_UINT_MEMBER(name) unsigned name;
#define CFG_MEMBER(type, name, def, help) CFG_##type##_MEMBER(name)

/* A shadow draft (config key `shadow`, a list of {name, definition}): a
 * draft definition file applied to every live event beside the live
 * definition (daemon/shadow.h). */
#define CFG_SHADOW_NAME_MAX 24
typedef struct {
    char *name;                 /* CFG_SHADOW_NAME_MAX of [A-Za-z0-9_-] */
    char *definition;           /* its definition file */
} cfg_shadow_t;

typedef struct {
    CFG_FIELDS(CFG_MEMBER)
    char **subscribe;           /* upstream PUB endpoints to SUB to */
    char **subscribe_key;       /* per entry: the publisher's CURVE public
                                   key file, or NULL (plain) */
    unsigned subscribe_count;
    cfg_shadow_t *shadow;       /* the shadow drafts (cfg_shadow.c) */
    unsigned shadow_count;
    char *config_file;          /* --config, re-read for `shadow` on SIGHUP */
} cfg_t;

/* What the command line asked for besides settings. */
typedef enum {
    CFG_RUN = 0,
    CFG_HELP,
    CFG_VERSION,
    CFG_DUMP,
    CFG_REBUILD,            /* recompute the state from the log, compare */
    CFG_REBUILD_REPLACE,    /* ... and replace the live state with it */
    CFG_ERROR,
} cfg_action_t;

/* Build the configuration from the built-in defaults, the config file named
 * by --config (if any) and the command line. On CFG_ERROR, err holds one
 * line saying what is wrong (with file:line where the file is at fault).
 * The caller frees *cfg with cfg_free() whatever the result. */
cfg_action_t cfg_load(cfg_t *cfg, int argc, char **argv, char *err,
                      size_t errlen);

/* Load only a YAML config file over *cfg (which holds defaults). Returns 0,
 * or -1 with one line in err. */
int cfg_load_file(cfg_t *cfg, const char *path, char *err, size_t errlen);

/* Set the built-in defaults (cfg must be zeroed or freed). */
void cfg_defaults(cfg_t *cfg);

/* The default of `partitions`: the online cores less one (the loop
 * thread's), at least 1 and at most 8 (1 on a two-core machine). */
unsigned cfg_default_partitions(void);

void cfg_free(cfg_t *cfg);

/* Print the effective configuration as YAML (a valid config file). */
void cfg_dump(const cfg_t *cfg, FILE *out);

/* Whether a ZeroMQ endpoint stays on this machine (loopback TCP, ipc,
 * inproc). */
bool cfg_endpoint_is_local(const char *ep);

/* Whether a ZeroMQ endpoint is TCP (what CURVE protects). */
bool cfg_endpoint_is_tcp(const char *ep);

/* Split an `http` setting "host:port" ("[v6]:port") into host (brackets
 * removed) and port. Returns 0, or -1 when it is not of that form. */
int cfg_http_split(const char *hostport, char *host, size_t hostlen,
                   unsigned *port);

/* Whether an http host is loopback (127.x.y.z, ::1, localhost). */
bool cfg_host_is_local(const char *host);

/* A duration setting ("30d", "12h", "1h30m", "500ms", "0", or whole
 * milliseconds: timetext_parse_duration(), as every duration of funneld)
 * in milliseconds into *ms. Returns 0, or -1 when text is not one. */
int cfg_duration_ms(const char *text, long long *ms);
/* checkpoint_interval as milliseconds (0: off). Returns 0, or -1 when it
 * is not a duration. */
int cfg_checkpoint_interval_ms(const cfg_t *cfg, int64_t *ms);

/* log_retention: a duration of event time (*ms > 0, *bytes 0), a size of
 * log (*bytes > 0, *ms 0), or off (both 0). Returns 0, or -1 with err. */
int cfg_log_retention(const cfg_t *cfg, int64_t *ms, uint64_t *bytes, char *err,
                      size_t errlen);

/* The `shadow` list of the config file at path into *list and *n
 * (replacing what they held; an absent key is an empty list). Returns 0,
 * or -1 with "file:line:col: what" in err (*list untouched). Free with
 * cfg_shadow_free(). (cfg_shadow.c) */
int cfg_shadow_load(const char *path, cfg_shadow_t **list, unsigned *n, char *err,
                    size_t errlen);
void cfg_shadow_free(cfg_shadow_t **list, unsigned *n);
/* Whether name is a valid shadow name. */
bool cfg_shadow_name_ok(const char *name);
/* The list as YAML, for --dump-config. */
void cfg_shadow_dump(const cfg_t *cfg, FILE *out);

/* Print usage and every option with its default. */
void cfg_usage(const char *argv0);

#endif
