/* ctl_opt.c: funnelctl's option tables. One generic parser (getopt_long
 * over a command's ctl_opt_t rows and the global ones) and one printer of
 * `funnelctl COMMAND --help` from the same rows; see ctl.h. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* The daemon's defaults (daemon/cfg.h), as funnelctl's. */
#define S_CFG_INIT(type, name, def, help) .name = def,
const ctl_opts_t ctl_global_defaults = {
    .cfg = { CFG_FIELDS(S_CFG_INIT) },
    .json = false,
    .timeout = -1,
};

const ctl_opt_t ctl_global_opts[] = {
    CTL_STRING("ingest", "EP", ctl_opts_t, cfg.ingest, "funneld's ingest endpoint"),
    CTL_STRING("alerts", "EP", ctl_opts_t, cfg.alerts, "funneld's alerts endpoint"),
    CTL_STRING("query", "EP", ctl_opts_t, cfg.query, "funneld's query endpoint"),
    CTL_FLAG("json", ctl_opts_t, json,
             "machine-readable output (one JSON document; NDJSON for watch, alerts)"),
    CTL_SECONDS("timeout", "SECS", ctl_opts_t, timeout,
                "how long to wait for funneld (default " CTL_STR(CTL_TIMEOUT_S)
                "; watch: 0 = forever)"),
    CTL_STRING("server-key", "FILE", ctl_opts_t, server_key,
               "CURVE: funneld's public key file (its NAME.pub; default "
               "$FUNNELCTL_SERVER_KEY)"),
    CTL_STRING("client-key", "FILE", ctl_opts_t, client_key,
               "CURVE: this client's secret key file (NAME.key of funnelctl keygen, "
               "listed in funneld's clients file; default $FUNNELCTL_CLIENT_KEY)"),
    CTL_STRING("nats", "URL", ctl_opts_t, cfg.nats,
               "cluster mode: NATS server URLs, comma-separated: lead asks the owner of the "
               "lead's partition, funnel, friction, quality and stats gather every live "
               "instance's answer and merge them; publish and watch go through NATS "
               "(FUNNELCTL_NATS_CREDENTIALS: a credentials file)"),
    CTL_COUNT("cluster-partitions", "P", ctl_opts_t, cluster_partitions, 1, 1024,
              "with --nats: the cluster's partitions, funneld's cluster_partitions (default "
              "its default)"),
    CTL_STRING("stream", "NAME", ctl_opts_t, cfg.stream,
               "with --nats: the cluster's stream, funneld's `stream` (its lease bucket "
               "NAME-owners lists the live instances)"),
    { "help", NULL, "this text", CTL_OPT_HELP, 0, 0, 0, NULL, NULL },
    CTL_END,
};

const char ctl_exit_help[] =
    "Exit status: 0 success, 1 the answer is \"no\", 2 usage or connection error.\n";

double ctl_timeout(const ctl_opts_t *g, double def)
{
    return g->timeout >= 0 ? g->timeout : def;
}

/* -- parsing ------------------------------------------------------------- */

/* More options than any command has (getopt_long wants an array). */
#define S_MAX_OPTS 64
/* getopt_long's value for row i of the combined table. */
#define S_OPT_BASE 0x100

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

/* Seconds (fractions allowed), >= 0 and at most a year. */
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

static bool s_has_arg(const ctl_opt_t *o)
{
    switch (o->kind) {
    case CTL_OPT_FLAG:
    case CTL_OPT_HELP:
        return false;
    case CTL_OPT_FN:
        return o->arg != NULL;
    default:
        return true;
    }
}

/* Store arg into row o of state st. prefix is "NAME: " for a command's
 * own row, "" for a global one (as funnelctl has always said). Returns 0,
 * 1 (exit 0 now) or -1 (message printed, exit 2). */
static int s_apply(const ctl_opt_t *o, void *st, const char *prefix, const char *arg)
{
    char *t = (char *)st + o->offset;
    switch (o->kind) {
    case CTL_OPT_FLAG:
        *(bool *)t = true;
        return 0;
    case CTL_OPT_STRING:
        *(const char **)t = arg;
        return 0;
    case CTL_OPT_COUNT:
        if (s_parse_count(arg, o->min, o->max, (long *)t) == 0)
            return 0;
        if (o->max == LONG_MAX)
            ctl_error("%s--%s wants a number >= %ld, not \"%s\"", prefix, o->name, o->min, arg);
        else
            ctl_error("%s--%s wants %ld..%ld, not \"%s\"", prefix, o->name, o->min, o->max,
                      arg);
        return -1;
    case CTL_OPT_SECONDS:
        if (s_parse_seconds(arg, (double *)t) == 0)
            return 0;
        ctl_error("%s--%s wants seconds >= 0, not \"%s\"", prefix, o->name, arg);
        return -1;
    case CTL_OPT_SECONDS_POS:
        if (s_parse_seconds(arg, (double *)t) == 0 && *(double *)t > 0)
            return 0;
        ctl_error("%s--%s wants seconds > 0, not \"%s\"", prefix, o->name, arg);
        return -1;
    case CTL_OPT_CHOICE: {
        size_t n = 0;
        for (; o->choices[n]; n++)
            if (strcmp(o->choices[n], arg) == 0) {
                *(const char **)t = o->choices[n];
                return 0;
            }
        char list[256] = "";
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s",
                     i == 0 ? "" : i + 1 == n ? " or " : ", ", o->choices[i]);
        }
        ctl_error("%s--%s wants %s, not \"%s\"", prefix, o->name, list, arg);
        return -1;
    }
    case CTL_OPT_FN:
        return o->fn(o, st, arg);
    case CTL_OPT_HELP:
        break;
    }
    return -1;
}

/* The parser behind ctl_parse and ctl_parse_global: getopt_long over the
 * global rows (into *g) and the local rows (into *st), in that order, with
 * values S_OPT_BASE + row. cmd is NULL for main's own options: then
 * parsing stops at the first operand (the command), --help prints
 * `funnelctl --help`, and errors name no command. Returns the index of the
 * first operand, or -1 with *rc (0 after --help or a handler that ends
 * funnelctl, 2 after an error, printed). getopt's state (optind) is
 * reset first, so every command parses its argv from the start. */
static int s_parse(const ctl_cmd_t *cmd, const ctl_opt_t *local, ctl_opts_t *g, void *st,
                   int argc, char **argv, int *rc)
{
    struct option longs[S_MAX_OPTS + 1];
    const ctl_opt_t *rows[S_MAX_OPTS];
    void *targets[S_MAX_OPTS];
    bool global[S_MAX_OPTS];
    size_t n = 0;
    char prefix[64] = "";
    if (cmd)
        snprintf(prefix, sizeof prefix, "%s: ", cmd->name);

    for (int pass = 0; pass < 2; pass++) {
        const ctl_opt_t *o = pass == 0 ? ctl_global_opts : local;
        for (; o && o->name; o++) {
            if (n == S_MAX_OPTS)
                abort(); /* a table too long: a programming error */
            rows[n] = o;
            targets[n] = pass == 0 ? (void *)g : st;
            global[n] = pass == 0;
            longs[n] = (struct option){ o->name, s_has_arg(o) ? required_argument : no_argument,
                                        NULL, S_OPT_BASE + (int)n };
            n++;
        }
    }
    longs[n] = (struct option){ 0, 0, 0, 0 };

    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, cmd ? ":" : "+:", longs, NULL)) != -1) {
        if (c < S_OPT_BASE || c >= S_OPT_BASE + (int)n) {
            const char *what = optind - 1 < argc ? argv[optind - 1] : "?";
            const char *problem = c == ':' ? "option %s needs a value" : "unknown option %s";
            char msg[128];
            snprintf(msg, sizeof msg, problem, what);
            if (cmd)
                ctl_error("%s: %s (see funnelctl %s --help)", cmd->name, msg, cmd->name);
            else
                ctl_error("%s (see funnelctl --help)", msg);
            *rc = CTL_EXIT_USAGE;
            return -1;
        }
        size_t i = (size_t)(c - S_OPT_BASE);
        if (rows[i]->kind == CTL_OPT_HELP) {
            if (cmd)
                ctl_command_help(cmd, stdout);
            else
                ctl_usage(stdout);
            *rc = CTL_EXIT_OK;
            return -1;
        }
        int r = s_apply(rows[i], targets[i], global[i] ? "" : prefix, optarg);
        if (r != 0) {
            *rc = r == 1 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
            return -1;
        }
    }
    return optind;
}

int ctl_parse(const ctl_cmd_t *cmd, ctl_opts_t *g, void *state, int argc, char **argv,
              int *rc)
{
    return s_parse(cmd, cmd->opts, g, state, argc, argv, rc);
}

static int s_version(const ctl_opt_t *o, void *st, const char *arg)
{
    printf("funnelctl %s\n", FUNNELD_VERSION);
    return 1;
}

static const ctl_opt_t s_main_opts[] = {
    CTL_FN("version", NULL, s_version, "print the version"),
    CTL_END,
};

int ctl_parse_global(ctl_opts_t *g, int argc, char **argv, int *rc)
{
    return s_parse(NULL, s_main_opts, g, NULL, argc, argv, rc);
}

/* -- help ---------------------------------------------------------------- */

#define S_WIDTH 80
/* Rows whose "--name ARG" is longer than this start their text below. */
#define S_HEAD_MAX 16

/* "--name ARG" of a row into buf. */
static size_t s_head(const ctl_opt_t *o, char *buf, size_t size)
{
    int len = snprintf(buf, size, "--%s", o->name);
    if (o->arg) {
        len += snprintf(buf + len, size - (size_t)len, " %s", o->arg);
    } else if (o->kind == CTL_OPT_CHOICE) {
        for (size_t i = 0; o->choices[i] && (size_t)len < size; i++)
            len += snprintf(buf + len, size - (size_t)len, "%c%s", i ? '|' : ' ',
                            o->choices[i]);
    }
    return strlen(buf);
}

/* The column option texts start at: after the longest head (up to
 * S_HEAD_MAX), indented 2, plus 3 spaces. */
static int s_column(const ctl_opt_t *a, const ctl_opt_t *b)
{
    size_t width = 0;
    char head[256];
    for (int pass = 0; pass < 2; pass++)
        for (const ctl_opt_t *o = pass ? b : a; o && o->name; o++) {
            size_t len = s_head(o, head, sizeof head);
            if (len <= S_HEAD_MAX && len > width)
                width = len;
        }
    return 2 + (int)width + 3;
}

/* text from column col (the cursor is there), words wrapped at S_WIDTH,
 * continuation lines indented to col; a '\n' in text breaks the line. */
static void s_wrap(FILE *out, const char *text, int col)
{
    int pos = col;
    bool fresh = true;
    for (const char *p = text; *p;) {
        if (*p == '\n' || *p == ' ') {
            if (*p == '\n') {
                fprintf(out, "\n%*s", col, "");
                pos = col;
                fresh = true;
            }
            p++;
            continue;
        }
        int len = (int)strcspn(p, " \n");
        if (!fresh && pos + 1 + len > S_WIDTH) {
            fprintf(out, "\n%*s", col, "");
            pos = col;
            fresh = true;
        }
        if (!fresh) {
            fputc(' ', out);
            pos++;
        }
        fwrite(p, 1, (size_t)len, out);
        pos += len;
        fresh = false;
        p += len;
    }
    fputc('\n', out);
}

/* Print the rows of opts: "  --name ARG   text (default D)", the default
 * read through the row's offset from defaults (numbers > 0 and non-empty
 * strings only; NULL defaults: none). */
static void s_print_options(FILE *out, const ctl_opt_t *opts, const void *defaults, int col)
{
    char head[256], text[2048];
    for (const ctl_opt_t *o = opts; o && o->name; o++) {
        size_t len = s_head(o, head, sizeof head);
        snprintf(text, sizeof text, "%s", o->help);
        const char *t = defaults ? (const char *)defaults + o->offset : NULL;
        size_t used = strlen(text);
        if (t && o->kind == CTL_OPT_COUNT && *(const long *)t > 0)
            snprintf(text + used, sizeof text - used, " (default %ld)", *(const long *)t);
        else if (t && (o->kind == CTL_OPT_SECONDS || o->kind == CTL_OPT_SECONDS_POS) &&
                 *(const double *)t > 0)
            snprintf(text + used, sizeof text - used, " (default %g)", *(const double *)t);
        else if (t && (o->kind == CTL_OPT_STRING || o->kind == CTL_OPT_CHOICE) &&
                 *(const char *const *)t && **(const char *const *)t)
            snprintf(text + used, sizeof text - used, " (default %s)",
                     *(const char *const *)t);
        if (2 + (int)len + 2 > col)
            fprintf(out, "  %s\n%*s", head, col, "");
        else
            fprintf(out, "  %-*s", col - 2, head);
        s_wrap(out, text, col);
    }
}

void ctl_print_main_options(FILE *out)
{
    int col = s_column(ctl_global_opts, s_main_opts);
    s_print_options(out, ctl_global_opts, &ctl_global_defaults, col);
    s_print_options(out, s_main_opts, NULL, col);
}

void ctl_command_help(const ctl_cmd_t *cmd, FILE *out)
{
    int col = s_column(cmd->opts, ctl_global_opts);
    fputs(cmd->usage, out);
    if (cmd->about)
        fprintf(out, "\n%s", cmd->about);
    if (cmd->opts && cmd->opts->name) {
        fputs("\nOptions:\n", out);
        s_print_options(out, cmd->opts, cmd->defaults, col);
    }
    if (cmd->notes)
        fprintf(out, "\n%s", cmd->notes);
    fputs("\nGlobal options (before or after the command):\n", out);
    s_print_options(out, ctl_global_opts, &ctl_global_defaults, col);
    fprintf(out, "\n%s", cmd->exits ? cmd->exits : ctl_exit_help);
}
