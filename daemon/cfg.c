/* cfg.c: see cfg.h. */
#include "cfg.h"
#include "nats_cfg.h"

#include "timetext.h"

#include <cyaml/cyaml.h>
#include <yaml.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "timetext.h"
#include "xalloc.h"

/* -- the table --------------------------------------------------------- */

typedef enum { S_STR, S_UINT } s_type_t;

typedef struct {
    const char *key;
    s_type_t type;
    size_t offset;
    const char *def_str;
    unsigned def_uint;
    const char *help;
} s_field_t;

#define S_STR_ROW(name, def, help) \
    {#name, S_STR, offsetof(cfg_t, name), def, 0, help},
#define S_UINT_ROW(name, def, help) \
    {#name, S_UINT, offsetof(cfg_t, name), NULL, def, help},
#define S_ROW(type, name, def, help) S_##type##_ROW(name, def, help)

static const s_field_t s_fields[] = {CFG_FIELDS(S_ROW)};
#define S_NFIELDS (sizeof s_fields / sizeof s_fields[0])

static char **s_str(cfg_t *cfg, const s_field_t *f)
{
    return (char **)((char *)cfg + f->offset);
}

static unsigned *s_uint(cfg_t *cfg, const s_field_t *f)
{
    return (unsigned *)((char *)cfg + f->offset);
}

unsigned cfg_default_partitions(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long p = cores - 1;
    return p < 1 ? 1 : p > 8 ? 8 : (unsigned)p;
}

void cfg_defaults(cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < S_NFIELDS; i++) {
        const s_field_t *f = &s_fields[i];
        if (f->type == S_STR)
            *s_str(cfg, f) = xstrdup(f->def_str);
        else
            *s_uint(cfg, f) = f->def_uint;
    }
    /* One partition per core but the loop thread's. */
    cfg->partitions = cfg_default_partitions();
}

void cfg_free(cfg_t *cfg)
{
    for (size_t i = 0; i < S_NFIELDS; i++)
        if (s_fields[i].type == S_STR) {
            free(*s_str(cfg, &s_fields[i]));
            *s_str(cfg, &s_fields[i]) = NULL;
        }
    for (unsigned i = 0; i < cfg->subscribe_count; i++) {
        free(cfg->subscribe[i]);
        free(cfg->subscribe_key[i]);
    }
    free(cfg->subscribe);
    free(cfg->subscribe_key);
    cfg_shadow_free(&cfg->shadow, &cfg->shadow_count);
    free(cfg->config_file);
    cfg->config_file = NULL;
    cfg->subscribe = NULL;
    cfg->subscribe_key = NULL;
    cfg->subscribe_count = 0;
}

/* Add a subscribe entry; key (the publisher's public key file) may be
 * NULL. Both copied. */
static void s_add_subscribe(cfg_t *cfg, const char *ep, const char *key)
{
    unsigned n = cfg->subscribe_count + 1;
    cfg->subscribe = xrealloc(cfg->subscribe, n * sizeof *cfg->subscribe);
    cfg->subscribe_key = xrealloc(cfg->subscribe_key, n * sizeof *cfg->subscribe_key);
    cfg->subscribe[n - 1] = xstrdup(ep);
    cfg->subscribe_key[n - 1] = key ? xstrdup(key) : NULL;
    cfg->subscribe_count = n;
}

static void s_clear_subscribe(cfg_t *cfg)
{
    for (unsigned i = 0; i < cfg->subscribe_count; i++) {
        free(cfg->subscribe[i]);
        free(cfg->subscribe_key[i]);
    }
    cfg->subscribe_count = 0;
}

/* -- the config file ----------------------------------------------------- */

/* What a file may set: every field optional, so a pointer tells "absent"
 * from "0". */
#define S_FILE_STR(name) char *name;
#define S_FILE_UINT(name) unsigned *name;
#define S_FILE_MEMBER(type, name, def, help) S_FILE_##type(name)
typedef struct {
    CFG_FIELDS(S_FILE_MEMBER)
} s_file_t;

/* Where each field of s_fields sits in s_file_t. */
#define S_FILE_OFFSET(type, name, def, help) offsetof(s_file_t, name),
static const size_t s_file_offsets[] = {CFG_FIELDS(S_FILE_OFFSET)};

#define S_SCHEMA_STR(name) \
    CYAML_FIELD_STRING_PTR(#name, CYAML_FLAG_OPTIONAL, s_file_t, name, 0, CYAML_UNLIMITED),
#define S_SCHEMA_UINT(name) CYAML_FIELD_UINT_PTR(#name, CYAML_FLAG_OPTIONAL, s_file_t, name),
#define S_SCHEMA(type, name, def, help) S_SCHEMA_##type(name)

/* `subscribe` entries are either an endpoint or a mapping (endpoint,
 * curve_server_key), which libcyaml cannot express: s_load_subscribe()
 * reads them. */
static const cyaml_schema_field_t s_file_fields[] = {
    CFG_FIELDS(S_SCHEMA)
    CYAML_FIELD_IGNORE("subscribe", CYAML_FLAG_OPTIONAL),
    CYAML_FIELD_IGNORE("shadow", CYAML_FLAG_OPTIONAL), /* cfg_shadow.c */
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t s_file_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, s_file_t, s_file_fields),
};

/* libcyaml reports problems through its log function, as several lines
 * (the error, then a backtrace of where in the document). Keep them. */
typedef struct {
    char text[1024];
    size_t len;
} s_yaml_log_t;

static void s_yaml_log(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    s_yaml_log_t *lg = ctx;
    if (level < CYAML_LOG_ERROR || lg->len >= sizeof lg->text - 1)
        return;
    int n = vsnprintf(lg->text + lg->len, sizeof lg->text - lg->len, fmt, args);
    if (n > 0)
        lg->len += (size_t)n;
    if (lg->len >= sizeof lg->text)
        lg->len = sizeof lg->text - 1;
}

/* Squash libcyaml's multi-line report into one line: runs of line breaks
 * become "; ", runs of blanks one space. */
static void s_one_line(const char *in, char *out, size_t cap)
{
    size_t w = 0;
    bool brk = false, blank = false;
    for (const char *r = in; *r && w + 3 < cap; r++) {
        if (*r == '\n') {
            brk = w > 0;
            continue;
        }
        if (*r == ' ' || *r == '\t') {
            blank = w > 0;
            continue;
        }
        if (brk) {
            out[w++] = ';';
            out[w++] = ' ';
        } else if (blank) {
            out[w++] = ' ';
        }
        brk = blank = false;
        out[w++] = *r;
    }
    out[w] = '\0';
}

/* Line and column (1-based) of the first line of path whose first word is
 * the key `name` (up to ';', the end of libcyaml's message). */
static void s_find_key(const char *path, const char *name, unsigned *line,
                       unsigned *col)
{
    char key[128], buf[1024];
    size_t n = strcspn(name, ";");
    if (n == 0 || n >= sizeof key)
        return;
    memcpy(key, name, n);
    key[n] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    for (unsigned l = 1; fgets(buf, sizeof buf, f); l++) {
        size_t ws = strspn(buf, " \t");
        if (strncmp(buf + ws, key, n) == 0 &&
            buf[ws + n + strspn(buf + ws + n, " \t")] == ':') {
            *line = l;
            *col = (unsigned)ws + 1;
            break;
        }
    }
    fclose(f);
}

/* Open the config file at path and a libyaml parser reading it. Returns
 * the file (the caller deletes the parser, then closes it), or NULL with
 * "path: problem" in err. */
static FILE *s_yaml_open(const char *path, yaml_parser_t *parser, char *err,
                         size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (!yaml_parser_initialize(parser)) {
        fclose(f);
        snprintf(err, errlen, "%s: cannot start the YAML parser", path);
        return NULL;
    }
    yaml_parser_set_input_file(parser, f);
    return f;
}

/* libcyaml says little about YAML syntax errors: read the file with
 * libyaml's parser first, which knows where the problem is. Returns 0, or
 * -1 with "file:line:column: problem" in err. */
static int s_syntax_check(const char *path, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_event_t event;
    int rc = 0;
    FILE *f = s_yaml_open(path, &parser, err, errlen);
    if (f == NULL)
        return -1;
    for (;;) {
        if (!yaml_parser_parse(&parser, &event)) {
            /* Where the construct in trouble began (an unclosed "[" is
             * noticed only at the end of the file) when libyaml knows it. */
            yaml_mark_t at = parser.context ? parser.context_mark : parser.problem_mark;
            snprintf(err, errlen, "%s:%zu:%zu: YAML syntax error: %s%s%s", path,
                     at.line + 1, at.column + 1,
                     parser.problem ? parser.problem : "malformed",
                     parser.context ? " " : "", parser.context ? parser.context : "");
            rc = -1;
            break;
        }
        bool end = event.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&event);
        if (end)
            break;
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

static bool s_scalar_is(const yaml_node_t *n, const char *text)
{
    return n && n->type == YAML_SCALAR_NODE &&
           n->data.scalar.length == strlen(text) &&
           memcmp(n->data.scalar.value, text, n->data.scalar.length) == 0;
}

/* A non-empty scalar without NUL bytes as a C string (borrowed), or NULL. */
static const char *s_scalar_text(const yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0 ||
        memchr(n->data.scalar.value, '\0', n->data.scalar.length))
        return NULL;
    return (const char *)n->data.scalar.value;
}

/* Read the `subscribe` list of the config file at path into cfg: each
 * entry an endpoint, or a mapping {endpoint: EP, curve_server_key: FILE}.
 * The syntax was checked already. Returns 0, or -1 with "file:line:col:
 * what" in err. */
static int s_load_subscribe(cfg_t *cfg, const char *path, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = 0;
    FILE *f = s_yaml_open(path, &parser, err, errlen);
    if (f == NULL)
        return -1;
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s: cannot read the YAML document", path);
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *list = NULL;
    if (root && root->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
             p < root->data.mapping.pairs.top; p++)
            if (s_scalar_is(yaml_document_get_node(&doc, p->key), "subscribe"))
                list = yaml_document_get_node(&doc, p->value);
    if (list == NULL || (list->type == YAML_SCALAR_NODE && list->data.scalar.length == 0) ||
        s_scalar_is(list, "~") || s_scalar_is(list, "null"))
        goto out; /* absent or empty */
    if (list->type != YAML_SEQUENCE_NODE) {
        snprintf(err, errlen, "%s:%zu:%zu: subscribe must be a list of endpoints", path,
                 list->start_mark.line + 1, list->start_mark.column + 1);
        rc = -1;
        goto out;
    }
    for (yaml_node_item_t *it = list->data.sequence.items.start;
         it < list->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(&doc, *it);
        const char *ep = NULL, *key = NULL;
        yaml_mark_t at = e->start_mark;
        if (e->type == YAML_SCALAR_NODE) {
            ep = s_scalar_text(e);
        } else if (e->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *p = e->data.mapping.pairs.start;
                 p < e->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(&doc, p->key);
                yaml_node_t *v = yaml_document_get_node(&doc, p->value);
                const char **dst = s_scalar_is(k, "endpoint")           ? &ep
                                   : s_scalar_is(k, "curve_server_key") ? &key
                                                                        : NULL;
                if (dst == NULL) {
                    snprintf(err, errlen,
                             "%s:%zu:%zu: unknown key in a subscribe entry (it has "
                             "endpoint and curve_server_key)",
                             path, k->start_mark.line + 1, k->start_mark.column + 1);
                    rc = -1;
                    goto out;
                }
                if ((*dst = s_scalar_text(v)) == NULL) {
                    snprintf(err, errlen, "%s:%zu:%zu: %s must be a non-empty string",
                             path, v->start_mark.line + 1, v->start_mark.column + 1,
                             k->data.scalar.value);
                    rc = -1;
                    goto out;
                }
            }
        }
        if (ep == NULL) {
            snprintf(err, errlen,
                     "%s:%zu:%zu: a subscribe entry is an endpoint, or a mapping "
                     "with endpoint (and curve_server_key)",
                     path, at.line + 1, at.column + 1);
            rc = -1;
            goto out;
        }
        s_add_subscribe(cfg, ep, key);
    }
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* The settings that were renamed or replaced: a hint for whoever still
 * has them in a file or on a command line. */
static const char *s_replaced_hint(const char *key)
{
    if (strncmp(key, "allow_remote", 12) == 0 || strncmp(key, "allow-remote", 12) == 0)
        return "allow_remote was replaced: for remote clients set curve_secret_file "
               "and curve_clients_file (CURVE, see README \"Deployment\"), or, on a "
               "network you trust, insecure_remote: 1";
    return NULL;
}

int cfg_load_file(cfg_t *cfg, const char *path, char *err, size_t errlen)
{
    s_yaml_log_t lg = {.len = 0};
    const cyaml_config_t config = {
        .log_fn = s_yaml_log,
        .log_ctx = &lg,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
    };
    s_file_t *file = NULL;

    if (s_syntax_check(path, err, errlen) == -1)
        return -1;

    cyaml_err_t rc = cyaml_load_file(path, &config, &s_file_schema,
                                     (cyaml_data_t **)&file, NULL);
    if (rc != CYAML_OK) {
        /* libcyaml: "Load: <what>\nLoad: Backtrace:\n  in ... (line: L,
         * column: C)". Report "file:L:C: <what>; in ...". */
        char line[1024];
        unsigned l = 0, c = 0;
        lg.text[lg.len] = '\0';
        s_one_line(lg.text, line, sizeof line);
        const char *at = strstr(line, "(line: ");
        if (at)
            sscanf(at, "(line: %u, column: %u)", &l, &c);
        char *msg = line;
        while (strncmp(msg, "Load: ", 6) == 0)
            msg += 6;
        char *bt = strstr(msg, "; Load: Backtrace:;");
        if (bt)
            memmove(bt + 1, bt + 19, strlen(bt + 19) + 1);
        /* libcyaml places an unknown key at the value before it: find the
         * key itself (config files are one flat mapping). */
        const char *uk = strstr(msg, "Unexpected key: ");
        const char *hint = NULL;
        if (uk) {
            s_find_key(path, uk + 16, &l, &c);
            hint = s_replaced_hint(uk + 16);
            msg[strcspn(msg, ";")] = '\0'; /* the backtrace points elsewhere */
        }
        if (l)
            snprintf(err, errlen, "%s:%u:%u: %s%s%s", path, l, c, msg,
                     hint ? "; " : "", hint ? hint : "");
        else
            snprintf(err, errlen, "%s: %s%s%s", path, cyaml_strerror(rc),
                     msg[0] ? ": " : "", msg);
        return -1;
    }
    if (file == NULL) /* an empty document sets nothing */
        return 0;
    if (s_load_subscribe(cfg, path, err, errlen) == -1 ||
        cfg_shadow_load(path, &cfg->shadow, &cfg->shadow_count, err, errlen) == -1) {
        cyaml_free(&config, &s_file_schema, file, 0);
        return -1;
    }
    for (size_t i = 0; i < S_NFIELDS; i++) {
        const s_field_t *f = &s_fields[i];
        if (f->type == S_STR) {
            char *v = *(char **)((char *)file + s_file_offsets[i]);
            if (v) {
                free(*s_str(cfg, f));
                *s_str(cfg, f) = xstrdup(v);
            }
        } else {
            unsigned *v = *(unsigned **)((char *)file + s_file_offsets[i]);
            if (v)
                *s_uint(cfg, f) = *v;
        }
    }
    cyaml_free(&config, &s_file_schema, file, 0);
    return 0;
}

/* -- the command line ---------------------------------------------------- */

enum {
    S_OPT_CONFIG = 1000,
    S_OPT_SUBSCRIBE,
    S_OPT_DUMP,
    S_OPT_REBUILD,
    S_OPT_REBUILD_REPLACE,
    S_OPT_HELP,
    S_OPT_VERSION,
    S_OPT_FIELD, /* S_OPT_FIELD + i: s_fields[i] */
};

/* "state_dir" -> "state-dir" */
static void s_opt_name(char *dst, size_t cap, const char *key)
{
    size_t i = 0;
    for (; key[i] && i + 1 < cap; i++)
        dst[i] = key[i] == '_' ? '-' : key[i];
    dst[i] = '\0';
}

static int s_parse_uint(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > UINT_MAX)
        return -1;
    *out = (unsigned)v;
    return 0;
}

bool cfg_endpoint_is_local(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *host = ep + 6;
    return strncmp(host, "127.", 4) == 0 || strncmp(host, "localhost:", 10) == 0 ||
           strncmp(host, "[::1]:", 6) == 0;
}

bool cfg_endpoint_is_tcp(const char *ep)
{
    return strncmp(ep, "tcp://", 6) == 0;
}

int cfg_http_split(const char *hostport, char *host, size_t hostlen, unsigned *port)
{
    const char *colon, *h = hostport;
    size_t hn;
    if (h[0] == '[') {
        const char *close = strchr(h, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h++;
        hn = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(h, ':');
        if (colon == NULL || memchr(h, ':', (size_t)(colon - h)))
            return -1; /* a v6 address needs its brackets */
        hn = (size_t)(colon - h);
    }
    if (hn == 0 || hn >= hostlen || s_parse_uint(colon + 1, port) == -1 ||
        *port == 0 || *port > 65535)
        return -1;
    memcpy(host, h, hn);
    host[hn] = '\0';
    return 0;
}

bool cfg_host_is_local(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "::1") == 0;
}

/* The rules for what may be reached from other machines: a non-loopback
 * TCP endpoint (bound or, for subscribe, connected to) needs CURVE, or the
 * explicit insecure_remote; a non-loopback http needs CURVE and a token. */
static int s_check_remote(const cfg_t *cfg, char *err, size_t errlen)
{
    bool curve = cfg->curve_secret_file[0] != '\0';
    if (cfg->insecure_remote > 1) {
        snprintf(err, errlen, "insecure_remote must be 0 or 1, not %u",
                 cfg->insecure_remote);
        return -1;
    }
    if (curve && cfg->curve_clients_file[0] == '\0') {
        snprintf(err, errlen, "curve_secret_file is set but curve_clients_file is not: "
                              "name the file of the client public keys allowed in");
        return -1;
    }
    if (!curve && cfg->curve_clients_file[0] != '\0') {
        snprintf(err, errlen, "curve_clients_file is set but curve_secret_file is not: "
                              "CURVE needs the server's secret key");
        return -1;
    }
    const char *bound[] = {cfg->ingest, cfg->alerts, cfg->query};
    for (size_t i = 0; i < 3 && !curve && !cfg->insecure_remote; i++)
        if (!cfg_endpoint_is_local(bound[i])) {
            snprintf(err, errlen,
                     "refusing to bind %s: it is not a loopback address and CURVE is "
                     "off; set curve_secret_file and curve_clients_file to "
                     "authenticate clients (or, on a network you trust, "
                     "insecure_remote: 1)",
                     bound[i]);
            return -1;
        }
    for (unsigned i = 0; i < cfg->subscribe_count; i++) {
        const char *ep = cfg->subscribe[i];
        const char *key = cfg->subscribe_key[i];
        if (key && !curve) {
            snprintf(err, errlen, "subscribe %s has a curve_server_key but "
                                  "curve_secret_file is not set: funneld connects "
                                  "with its own key pair", ep);
            return -1;
        }
        if (key && !cfg_endpoint_is_tcp(ep)) {
            snprintf(err, errlen, "subscribe %s has a curve_server_key, which only a "
                                  "tcp:// endpoint can use", ep);
            return -1;
        }
        if (curve && cfg_endpoint_is_tcp(ep) && key == NULL) {
            snprintf(err, errlen, "subscribe %s needs a curve_server_key (the "
                                  "publisher's public key file): with CURVE on, "
                                  "every TCP endpoint is authenticated", ep);
            return -1;
        }
        if (!curve && !cfg->insecure_remote && !cfg_endpoint_is_local(ep)) {
            snprintf(err, errlen,
                     "refusing to subscribe to %s: it is not a loopback address and "
                     "CURVE is off; set curve_secret_file and a curve_server_key for "
                     "the entry (or, on a network you trust, insecure_remote: 1)", ep);
            return -1;
        }
    }
    if (cfg->http[0]) {
        char host[256];
        unsigned port;
        if (cfg_http_split(cfg->http, host, sizeof host, &port) == -1) {
            snprintf(err, errlen, "http must be host:port (e.g. 127.0.0.1:7704, "
                                  "[::1]:7704) or empty, not \"%s\"", cfg->http);
            return -1;
        }
        if (!cfg_host_is_local(host) &&
            (!curve || cfg->http_token_file[0] == '\0')) {
            snprintf(err, errlen,
                     "refusing to serve http on %s: it is not a loopback address; "
                     "that needs CURVE on (curve_secret_file) and http_token_file "
                     "(the bearer token every request must carry)",
                     cfg->http);
            return -1;
        }
    }
    return 0;
}

int cfg_duration_ms(const char *text, long long *ms)
{
    int64_t v;
    if (timetext_parse_duration(text, INT64_MAX / 4, &v) != TIMETEXT_DUR_OK)
        return -1;
    *ms = (long long)v;
    return 0;
}

int cfg_checkpoint_interval_ms(const cfg_t *cfg, int64_t *ms)
{
    /* At most a year: anything longer is a typo, not a policy. */
    return timetext_parse_duration(cfg->checkpoint_interval, 366LL * 86400000, ms) ==
                   TIMETEXT_DUR_OK
               ? 0
               : -1;
}

int cfg_log_retention(const cfg_t *cfg, int64_t *ms, uint64_t *bytes, char *err,
                      size_t errlen)
{
    const char *s = cfg->log_retention;
    *ms = 0;
    *bytes = 0;
    if (s[0] == '\0' || strcmp(s, "0") == 0)
        return 0;
    /* A size: digits, then K, M, G or T (powers of 1024), optionally
     * followed by B or iB. */
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (end != s && errno == 0 && *end && strchr("KMGT", *end) &&
        (strcmp(end + 1, "") == 0 || strcmp(end + 1, "B") == 0 ||
         strcmp(end + 1, "iB") == 0)) {
        int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 40;
        if (n == 0 || n > (UINT64_MAX >> shift)) {
            snprintf(err, errlen, "log_retention \"%s\" is not a usable size", s);
            return -1;
        }
        *bytes = (uint64_t)n << shift;
        return 0;
    }
    if (timetext_parse_duration(s, INT64_MAX / 4, ms) != TIMETEXT_DUR_OK || *ms <= 0) {
        snprintf(err, errlen, "log_retention must be a duration of event time (90d, 12h) "
                              "or a size of log (50G, 512M), not \"%s\"", s);
        return -1;
    }
    return 0;
}

static int s_check(const cfg_t *cfg, char *err, size_t errlen)
{
    int64_t ms;
    uint64_t bytes;
    if (cfg_checkpoint_interval_ms(cfg, &ms) == -1) {
        snprintf(err, errlen, "checkpoint_interval must be a duration (30s, 5m, 1h; 0: off) "
                              "of at most a year, not \"%s\"", cfg->checkpoint_interval);
        return -1;
    }
    if (cfg->partitions > 64) {
        snprintf(err, errlen, "partitions must be 0..64, not %u", cfg->partitions);
        return -1;
    }

    if (cfg->checkpoint_keep == 0 || cfg->checkpoint_keep > 32) {
        snprintf(err, errlen, "checkpoint_keep must be 1..32, not %u", cfg->checkpoint_keep);
        return -1;
    }
    if (cfg_log_retention(cfg, &ms, &bytes, err, errlen) == -1)
        return -1;
    if (strcmp(cfg->clock, "wall") != 0 && strcmp(cfg->clock, "event") != 0) {
        snprintf(err, errlen, "clock must be \"wall\" or \"event\", not \"%s\"",
                 cfg->clock);
        return -1;
    }
    const char *levels[] = {"error", "warn", "info", "debug"};
    bool ok = false;
    for (size_t i = 0; i < 4; i++)
        ok |= strcmp(cfg->log_level, levels[i]) == 0;
    if (!ok) {
        snprintf(err, errlen,
                 "log_level must be error, warn, info or debug, not \"%s\"",
                 cfg->log_level);
        return -1;
    }
    if (cfg->state_dir[0] == '\0') {
        snprintf(err, errlen, "state_dir must not be empty");
        return -1;
    }
    if (cfg->map_size_mb == 0 || cfg->map_size_mb > 1024 * 1024) {
        snprintf(err, errlen, "map_size_mb must be 1..1048576, not %u",
                 cfg->map_size_mb);
        return -1;
    }
    /* Values that end up in int options of libzmq or libevent. */
    if (cfg->linger_ms > 600000 || cfg->group_delay_ms > 600000) {
        snprintf(err, errlen, "linger_ms and group_delay_ms must be at most 600000 "
                              "(10 minutes)");
        return -1;
    }
    if (cfg->alerts_hwm > INT_MAX || cfg->drain_budget > 1000000 ||
        cfg->max_message_kb > 1024 * 1024) {
        snprintf(err, errlen, "alerts_hwm must be at most %d, drain_budget at most "
                              "1000000 and max_message_kb at most 1048576", INT_MAX);
        return -1;
    }
    long long retention;
    if (cfg_duration_ms(cfg->alerts_retention, &retention) == -1) {
        snprintf(err, errlen, "alerts_retention must be a duration such as 30d, 12h "
                              "or 90m (0: keep every alert), not \"%s\"",
                 cfg->alerts_retention);
        return -1;
    }
    if (s_check_remote(cfg, err, errlen) == -1 || nats_cfg_check(cfg, err, errlen) == -1)
        return -1;
    if (cfg->drain_budget == 0 || cfg->group_max_events == 0 ||
        cfg->max_batch_events == 0) {
        snprintf(err, errlen, "drain_budget, group_max_events and "
                              "max_batch_events must be at least 1");
        return -1;
    }
    return 0;
}

cfg_action_t cfg_load(cfg_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    struct option opts[S_NFIELDS + 8];
    char names[S_NFIELDS][64];
    size_t n = 0;

    for (size_t i = 0; i < S_NFIELDS; i++) {
        s_opt_name(names[i], sizeof names[i], s_fields[i].key);
        opts[n++] = (struct option){names[i], required_argument, NULL,
                                    S_OPT_FIELD + (int)i};
    }
    opts[n++] = (struct option){"config", required_argument, NULL, S_OPT_CONFIG};
    opts[n++] = (struct option){"subscribe", required_argument, NULL, S_OPT_SUBSCRIBE};
    opts[n++] = (struct option){"dump-config", no_argument, NULL, S_OPT_DUMP};
    opts[n++] = (struct option){"rebuild", no_argument, NULL, S_OPT_REBUILD};
    opts[n++] = (struct option){"rebuild-replace", no_argument, NULL,
                                S_OPT_REBUILD_REPLACE};
    opts[n++] = (struct option){"help", no_argument, NULL, S_OPT_HELP};
    opts[n++] = (struct option){"version", no_argument, NULL, S_OPT_VERSION};
    opts[n] = (struct option){NULL, 0, NULL, 0};

    cfg_defaults(cfg);

    /* First pass: the config file, which the other options override. */
    const char *config = NULL;
    cfg_action_t action = CFG_RUN;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == S_OPT_CONFIG)
            config = optarg;
        else if (c == S_OPT_HELP || c == 'h')
            action = CFG_HELP;
        else if (c == S_OPT_VERSION && action == CFG_RUN)
            action = CFG_VERSION;
        else if (c == '?') {
            const char *hint = s_replaced_hint(argv[optind - 1] + 2);
            if (optopt)
                snprintf(err, errlen, "unknown option -%c (see --help)", optopt);
            else if (hint && strncmp(argv[optind - 1], "--", 2) == 0)
                snprintf(err, errlen, "unknown option %s: %s", argv[optind - 1], hint);
            else
                snprintf(err, errlen, "unknown option %s (see --help)",
                         argv[optind - 1]);
            return CFG_ERROR;
        } else if (c == ':') {
            snprintf(err, errlen, "option %s needs a value", argv[optind - 1]);
            return CFG_ERROR;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", argv[optind]);
        return CFG_ERROR;
    }
    if (action == CFG_HELP || action == CFG_VERSION)
        return action;
    if (config && cfg_load_file(cfg, config, err, errlen) == -1)
        return CFG_ERROR;
    if (config)
        cfg->config_file = xstrdup(config);

    /* Second pass: every other option. --subscribe on the command line
     * replaces the file's list. */
    bool cli_subscribe = false;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c >= S_OPT_FIELD) {
            const s_field_t *f = &s_fields[c - S_OPT_FIELD];
            if (f->type == S_STR) {
                free(*s_str(cfg, f));
                *s_str(cfg, f) = xstrdup(optarg);
            } else if (s_parse_uint(optarg, s_uint(cfg, f)) == -1) {
                snprintf(err, errlen, "--%s needs a non-negative integer, not \"%s\"",
                         names[c - S_OPT_FIELD], optarg);
                return CFG_ERROR;
            }
        } else if (c == S_OPT_SUBSCRIBE) {
            if (!cli_subscribe) {
                s_clear_subscribe(cfg);
                cli_subscribe = true;
            }
            s_add_subscribe(cfg, optarg, NULL);
        } else if (c == S_OPT_DUMP) {
            action = CFG_DUMP;
        } else if (c == S_OPT_REBUILD && action == CFG_RUN) {
            action = CFG_REBUILD;
        } else if (c == S_OPT_REBUILD_REPLACE) {
            action = CFG_REBUILD_REPLACE;
        }
    }
    if (s_check(cfg, err, errlen) == -1) {
        if (config) {
            /* The value may come from the file or the command line. */
            size_t used = strlen(err);
            snprintf(err + used, errlen - used, " (from %s or the command line)", config);
        }
        return CFG_ERROR;
    }
    /* Cluster mode: the state's partitions are the cluster's. */
    if (cfg->nats[0])
        cfg->partitions = cfg->cluster_partitions;
    if (action == CFG_REBUILD_REPLACE && cfg->rebuild_dir[0]) {
        snprintf(err, errlen, "--rebuild-replace renames the rebuilt state into "
                              "state_dir: not with rebuild_dir (--rebuild-dir)");
        return CFG_ERROR;
    }
    if (cfg->rebuild_dir[0] && cfg->rebuild_dir[0] != '/') {
        snprintf(err, errlen, "rebuild_dir must be an absolute path, not \"%s\"",
                 cfg->rebuild_dir);
        return CFG_ERROR;
    }
    return action;
}

/* -- output -------------------------------------------------------------- */

/* "key: value" (or "  - value" without a key) with value as a YAML
 * double-quoted scalar, escaped so that the output loads back as given. */
static void s_dump_string(FILE *out, const char *key, const char *value)
{
    if (key)
        fprintf(out, "%s: \"", key);
    else
        fputs("  - \"", out);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputs("\"\n", out);
}

void cfg_dump(const cfg_t *cfg, FILE *out)
{
    fprintf(out, "# funneld effective configuration\n");
    for (size_t i = 0; i < S_NFIELDS; i++) {
        const s_field_t *f = &s_fields[i];
        fprintf(out, "\n# %s\n", f->help);
        if (f->type == S_STR)
            s_dump_string(out, f->key, *s_str((cfg_t *)cfg, f));
        else
            fprintf(out, "%s: %u\n", f->key, *s_uint((cfg_t *)cfg, f));
    }
    fprintf(out, "\n# upstream PUB endpoints to subscribe to (topics marketing*, sales*):\n"
                 "# an endpoint, or endpoint and curve_server_key (the publisher's\n"
                 "# public key file)\n");
    fprintf(out, "subscribe:%s\n", cfg->subscribe_count ? "" : " []");
    for (unsigned i = 0; i < cfg->subscribe_count; i++) {
        if (cfg->subscribe_key[i] == NULL) {
            s_dump_string(out, NULL, cfg->subscribe[i]);
            continue;
        }
        fputs("  - ", out);
        s_dump_string(out, "endpoint", cfg->subscribe[i]);
        fputs("    ", out);
        s_dump_string(out, "curve_server_key", cfg->subscribe_key[i]);
    }
    cfg_shadow_dump(cfg, out);
}

void cfg_usage(const char *argv0)
{
    printf("Usage: %s [OPTION]...\n\n"
           "funneld keeps one shared, durable record of every lead: it takes\n"
           "marketing and sales events over ZeroMQ, moves each lead through the\n"
           "funnel stages, scores it, publishes lead-handoff and stage alerts, and\n"
           "answers queries. It runs in the foreground; with no options at all it\n"
           "keeps its state in ./var/funneld and listens on loopback.\n\n"
           "Options (each setting can also be a key of the --config file):\n"
           "  --config FILE          YAML config file (keys as below, with _)\n"
           "  --subscribe EP         upstream PUB endpoint to subscribe to\n"
           "                         (repeatable; replaces the file's list; a\n"
           "                         CURVE publisher's curve_server_key is given\n"
           "                         in the file's subscribe entry)\n",
           argv0);
    for (size_t i = 0; i < S_NFIELDS; i++) {
        const s_field_t *f = &s_fields[i];
        char name[64], arg[96];
        s_opt_name(name, sizeof name, f->key);
        snprintf(arg, sizeof arg, "--%s %s", name, f->type == S_STR ? "S" : "N");
        printf("  %-22s %s\n", arg, f->help);
        if (f->type == S_STR)
            printf("  %-22s (default: \"%s\")\n", "", f->def_str);
        else
            printf("  %-22s (default: %u)\n", "", f->def_uint);
    }
    printf("  --rebuild              recompute every lead and counter from the event\n"
           "                         log into a fresh state, compare it with the live\n"
           "                         state, print the differences, exit (0: identical,\n"
           "                         1: different); the daemon must not be running.\n"
           "                         The rebuilt state is deleted afterwards, unless\n"
           "                         --rebuild-dir names where to write and keep it;\n"
           "                         when log_retention dropped the log's first\n"
           "                         events it starts from the oldest checkpoint\n"
           "  --rebuild-replace      the same, then make the rebuilt state the live one\n"
           "                         (after a definition change); the old state is kept\n"
           "                         as state.old-<time>\n"
           "  --dump-config          print the effective configuration as YAML, exit\n"
           "  --version              print the version, exit\n"
           "  -h, --help             this text\n\n"
           "Signals: SIGTERM/SIGINT stop intake, commit and acknowledge what is\n"
           "pending, exit 0; SIGHUP reloads the funnel definition (the old one is\n"
           "kept if the new one is invalid) and the CURVE clients file.\n");
}
