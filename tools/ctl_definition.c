/* ctl_definition.c: funnelctl definition check / diff, offline work on
 * funnel definition files through handlers/defn (no funneld needed). */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "render.h"
#include "defn.h"

typedef struct {
    bool json;
    json_t *list;
} s_diff_out_t;

/* defn_diff's callback: one difference, a text line or a JSON entry. */
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

/* check FILE: exit 0 valid, 1 invalid (the loader's FILE:LINE:COLUMN line
 * on stderr, or "error" in the JSON). */
static int s_check(const ctl_opts_t *g, const char *file)
{
    char err[1024];
    defn_t *d = defn_load_file(file, err, sizeof err);
    if (g->json) {
        json_t *o = json_pack("{s:s, s:b}", "file", file, "valid", d != NULL);
        if (!o)
            abort();
        json_object_set_new(o, "error", d ? json_null() : json_string(err));
        json_object_set_new(o, "name", d ? json_string(d->name) : json_null());
        json_object_set_new(o, "hash", d ? json_string(d->hash) : json_null());
        ctl_print_doc(o);
    } else if (d) {
        printf("%s: valid: definition \"%s\" (%zu stages, %zu transitions, %zu "
               "engagement rules, %zu fit rules, %zu personas; hash %s)\n",
               file, d->name, d->n_stages, d->n_transitions, d->n_points, d->n_fit,
               d->n_personas, d->hash);
    } else {
        ctl_clear_progress();
        fprintf(stderr, "%s\n", err);
    }
    int rc = d ? CTL_EXIT_OK : CTL_EXIT_NO;
    defn_destroy(&d);
    return rc;
}

/* diff A B: exit 0 equal, 1 different or a file invalid (its error on
 * stderr). */
static int s_diff(const ctl_opts_t *g, const char *fa, const char *fb)
{
    char err[1024];
    defn_t *a = defn_load_file(fa, err, sizeof err);
    if (!a) {
        fprintf(stderr, "%s\n", err);
        return CTL_EXIT_NO;
    }
    defn_t *b = defn_load_file(fb, err, sizeof err);
    if (!b) {
        fprintf(stderr, "%s\n", err);
        defn_destroy(&a);
        return CTL_EXIT_NO;
    }
    s_diff_out_t out = { .json = g->json, .list = json_array() };
    size_t n = defn_diff(a, b, s_on_diff, &out);
    if (g->json) {
        json_t *o = json_pack("{s:s, s:s, s:b}", "a", fa, "b", fb, "equal", n == 0);
        if (!o)
            abort();
        json_object_set(o, "differences", out.list);
        ctl_print_doc(o);
    } else if (n == 0) {
        printf("%s and %s define the same funnel\n", fa, fb);
    } else {
        printf("%zu difference%s between %s and %s\n", n, n == 1 ? "" : "s", fa, fb);
    }
    json_decref(out.list);
    defn_destroy(&a);
    defn_destroy(&b);
    return n == 0 ? CTL_EXIT_OK : CTL_EXIT_NO;
}

/* promote NAME: the shadow draft NAME becomes the live definition in the
 * running funneld (one PromoteQuery). */
static int s_promote(ctl_opts_t *g, const char *name)
{
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__PromoteQuery pq = FUNNEL__V1__PROMOTE_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    pq.name = (char *)name;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_PROMOTE;
    req.promote = &pq;
    if (g->timeout < 0)
        g->timeout = 90; /* funneld waits up to 60 s for it */
    int rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_PROMOTE, "promote", &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (g->json)
        ctl_print_doc(render_promote_json(reply->promote));
    else
        render_promote_text(stdout, name, reply->promote);
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return CTL_EXIT_OK;
}

static int s_run_definition(ctl_opts_t *g, int argc, char **argv)
{
    int rc;
    int first = ctl_parse(&ctl_cmd_definition, g, NULL, argc, argv, &rc);
    if (first < 0)
        return rc;
    const char *sub = first < argc ? argv[first] : NULL;
    int nargs = argc - first - 1;
    if (sub && strcmp(sub, "check") == 0 && nargs == 1)
        return s_check(g, argv[first + 1]);
    if (sub && strcmp(sub, "diff") == 0 && nargs == 2)
        return s_diff(g, argv[first + 1], argv[first + 2]);
    if (sub && strcmp(sub, "promote") == 0 && nargs == 1)
        return s_promote(g, argv[first + 1]);
    ctl_error("definition: want \"check FILE\", \"diff A B\" or \"promote NAME\" (see "
              "funnelctl definition --help)");
    return CTL_EXIT_USAGE;
}

const ctl_cmd_t ctl_cmd_definition = {
    .name = "definition",
    .summary = "check a funnel definition, diff two, promote a shadow draft",
    .usage = "Usage: funnelctl definition check FILE\n"
             "       funnelctl definition diff A B\n"
             "       funnelctl definition promote NAME\n",
    .about =
        "Work with funnel definitions (YAML): check and diff without a running\n"
        "funneld; promote in the running one.\n"
        "\n"
        "check FILE   validate FILE as funneld would load it: its syntax, every key and\n"
        "             value, and what they mean together (unknown stages, duplicates,\n"
        "             persona rules on event types nothing counts, thresholds no lead\n"
        "             could reach). An error is one line FILE:LINE:COLUMN: what is wrong.\n"
        "diff A B     the semantic difference between two definitions, one line per\n"
        "             difference: stages added, removed, changed or reordered;\n"
        "             transitions, regressions, points, fit rules, the qualification rule,\n"
        "             handoff settings and personas added, removed or changed.\n"
        "promote NAME the shadow draft NAME (funnelctl shadow) becomes the live\n"
        "             definition: its state becomes the live state as it is (nothing is\n"
        "             replayed), the old live state is kept as state_dir/state.old-TIME,\n"
        "             and the definition file funneld runs with is replaced by the\n"
        "             draft's file atomically. Ingest waits while it happens (how long\n"
        "             is printed and logged: \"promote: ingest paused N ms\"). Then take\n"
        "             NAME out of the config's shadow list: a warning says so while the\n"
        "             config file lists it (a reload does not run it again; a restart\n"
        "             would rebuild it as a draft).\n"
        "\n"
        "With --json: check prints {\"file\",\"valid\",\"error\",\"name\",\"hash\"}; diff\n"
        "prints {\"a\",\"b\",\"equal\",\"differences\":[{\"section\",\"change\",\"what\",\"a\",\n"
        "\"b\"}]}; promote prints {\"definition\",\"path\",\"old_state\",\"applied_seq\",\n"
        "\"ingest_paused_ms\",\"warning\"} (warning \"\" when the config lists it no more).\n",
    .exits = "Exit status: check: 0 valid, 1 invalid; diff: 0 equal, 1 different (or a file\n"
             "is invalid); promote: 0 promoted; 2 usage error, or not promoted (why on stderr).\n",
    .run = s_run_definition,
};
