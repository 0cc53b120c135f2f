/* ctl_leads.c: funnelctl leads, the leads listing: LeadsQuery pages
 * through ctl_query (one request per page, the cursor of each reply in
 * the next), each page's rows printed as they come (common/leadrows.c), so a
 * listing of every lead streams in bounded memory. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "leadrows.h"
#include "timetext.h"
#include "xalloc.h"

#define S_MULTI_MAX 64          /* --stage / --persona values */
#define S_PAGE_BY_ID 10000      /* rows per request, sorted by id */
#define S_PAGE_SORTED 100000    /* and otherwise (each page reads every lead) */

typedef struct {
    const char *stages[S_MULTI_MAX];
    size_t n_stages;
    const char *personas[S_MULTI_MAX];
    size_t n_personas;
    const char *source, *handoff, *since, *sort, *format, *columns;
    bool qualified, not_qualified, stalled, desc;
    bool has_min_score;
    double min_score;
    long limit, page_size;
} s_leads_opts_t;

static const s_leads_opts_t s_leads_defaults = {
    .source = "", .handoff = "", .since = "", .sort = "id", .format = "table",
    .columns = "",
};

static const char *const s_sources[] = { "marketing", "sales", NULL };
static const char *const s_handoffs[] = { "none", "pending", "accepted", "rejected",
                                               "recycled", "requalified", NULL };
static const char *const s_sorts[] = { "score", "engagement", "fit", "stage_age",
                                       "last_event", "id", NULL };
static const char *const s_formats[] = { "table", "csv", "ndjson", "json", NULL };

static int s_add_multi(const ctl_opt_t *o, void *st, const char *arg)
{
    s_leads_opts_t *s = st;
    bool stage = strcmp(o->name, "stage") == 0;
    size_t *n = stage ? &s->n_stages : &s->n_personas;
    if (*n == S_MULTI_MAX) {
        ctl_error("leads: at most %d --%s values", S_MULTI_MAX, o->name);
        return -1;
    }
    if (arg[0] == '\0') {
        ctl_error("leads: --%s wants a name", o->name);
        return -1;
    }
    (stage ? s->stages : s->personas)[(*n)++] = arg;
    return 0;
}

static int s_min_score(const ctl_opt_t *o, void *st, const char *arg)
{
    s_leads_opts_t *s = st;
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end != '\0' || v != v) {
        ctl_error("leads: --%s wants a number, not \"%s\"", o->name, arg);
        return -1;
    }
    s->has_min_score = true;
    s->min_score = v;
    return 0;
}

static const ctl_opt_t s_leads_opts[] = {
    CTL_FN("stage", "S", s_add_multi,
           "only leads in stage S; repeat for any of several (an unknown stage is an "
           "error that names the known ones)"),
    CTL_FN("persona", "P", s_add_multi,
           "only leads of persona P (\"-\": without one); repeat for any of several"),
    CTL_CHOICE("source", s_leads_opts_t, source, s_sources,
               "only leads whose first event came from this source"),
    CTL_CHOICE("handoff", s_leads_opts_t, handoff, s_handoffs,
               "only leads with this handoff status: none, pending, accepted, rejected, "
               "recycled (given back to marketing), requalified (looked at again, the "
               "rule did not hold) (read from each lead: a full scan)"),
    CTL_FLAG("qualified", s_leads_opts_t, qualified, "only leads that qualified"),
    CTL_FLAG("not-qualified", s_leads_opts_t, not_qualified,
             "only leads that did not qualify (yet)"),
    CTL_FN("min-score", "N", s_min_score, "only leads whose total (decayed) is at least N"),
    CTL_FLAG("stalled", s_leads_opts_t, stalled,
             "only leads stalled now (read from the state's marks of stalled leads: "
             "no scan)"),
    CTL_STRING("since", "TIME", s_leads_opts_t, since,
               "only leads with an event at or after TIME: RFC 3339, epoch "
               "milliseconds, or a duration back from funneld's time (7d, 12h)"),
    CTL_CHOICE("sort", s_leads_opts_t, sort, s_sorts,
               "order: score (total), engagement, fit, stage_age (time in the stage), "
               "last_event, id; ties by lead id"),
    CTL_FLAG("desc", s_leads_opts_t, desc, "largest first"),
    CTL_COUNT("limit", "N", s_leads_opts_t, limit, 1, LONG_MAX, "at most N leads"),
    CTL_CHOICE("format", s_leads_opts_t, format, s_formats,
               "table for people, csv (RFC 4180, header row), ndjson (one lead per "
               "line) or json (one document; also --json)"),
    CTL_STRING("columns", "A,B", s_leads_opts_t, columns,
               "the columns, in this order (default lead,stage,in_stage_ms,persona,fit,"
               "engagement,total,handoff,first_source,events,last_event_at; also "
               "stage_entered_at, first_seen, qualified, stalled)"),
    CTL_COUNT("page-size", "N", s_leads_opts_t, page_size, 1, 100000,
              "leads per request to funneld (default 10000 by id, else 100000 or "
              "--limit)"),
    CTL_END,
};

/* The output of the listing, page by page. */
typedef struct {
    const s_leads_opts_t *o;
    leadrows_cols_t cols;
    int widths[LEADROWS_COL_N];
    bool started;               /* header (or "[") written */
    size_t rows;
    int64_t as_of;
} s_out_t;

static void s_emit_page(s_out_t *out, Funnel__V1__LeadsReply *lr, size_t n)
{
    const char *f = out->o->format;
    if (!out->started) {
        out->as_of = lr->as_of_ms;
        if (strcmp(f, "csv") == 0) {
            leadrows_csv_header(stdout, &out->cols);
        } else if (strcmp(f, "table") == 0) {
            leadrows_table_widths(&out->cols, lr->leads, n, lr->as_of_ms, out->widths);
            leadrows_table_header(stdout, &out->cols, out->widths);
        } else if (strcmp(f, "json") == 0) {
            leadrows_json_begin(stdout, lr->as_of_ms);
        }
        out->started = true;
    }
    for (size_t i = 0; i < n; i++) {
        const Funnel__V1__LeadRow *row = lr->leads[i];
        if (strcmp(f, "csv") == 0) {
            leadrows_csv(stdout, &out->cols, row, out->as_of);
        } else if (strcmp(f, "table") == 0) {
            leadrows_table(stdout, &out->cols, out->widths, row, out->as_of);
        } else if (strcmp(f, "json") == 0) {
            leadrows_json_item(stdout, &out->cols, row, out->as_of, out->rows == 0);
        } else {
            json_t *doc = leadrows_json(&out->cols, row, out->as_of);
            json_dumpf(doc, stdout, CTL_NDJSON_FLAGS);
            putchar('\n');
            json_decref(doc);
        }
        out->rows++;
    }
}

static void s_finish(s_out_t *out)
{
    if (strcmp(out->o->format, "json") == 0) {
        if (!out->started)
            leadrows_json_begin(stdout, out->as_of);
        leadrows_json_end(stdout, out->rows);
    } else if (strcmp(out->o->format, "table") == 0 && !out->started) {
        leadrows_table_widths(&out->cols, NULL, 0, 0, out->widths);
        leadrows_table_header(stdout, &out->cols, out->widths);
    } else if (strcmp(out->o->format, "csv") == 0 && !out->started) {
        leadrows_csv_header(stdout, &out->cols);
    }
    fflush(stdout);
}

static int s_run_leads(ctl_opts_t *g, int argc, char **argv)
{
    s_leads_opts_t o = s_leads_defaults;
    s_out_t out = { .o = &o };
    uint8_t *cursor = NULL;
    Funnel__V1__QueryReply *reply = NULL;
    int rc;
    int first = ctl_parse(&ctl_cmd_leads, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (first < argc) {
        ctl_error("leads: unexpected argument \"%s\" (see funnelctl leads --help)",
                  argv[first]);
        return CTL_EXIT_USAGE;
    }
    if (o.qualified && o.not_qualified) {
        ctl_error("leads: --qualified and --not-qualified exclude each other");
        return CTL_EXIT_USAGE;
    }
    if (g->json)
        o.format = "json";
    char err[512];
    if (o.columns[0] ? leadrows_cols_parse(o.columns, &out.cols, err, sizeof err)
                     : (leadrows_cols_default(&out.cols), 0)) {
        ctl_error("leads: --columns: %s", err);
        return CTL_EXIT_USAGE;
    }

    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__LeadsQuery lq = FUNNEL__V1__LEADS_QUERY__INIT;
    Funnel__V1__HandoffStatus handoff;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_LEADS;
    req.leads = &lq;
    lq.n_stages = o.n_stages;
    lq.stages = (char **)o.stages;
    lq.n_personas = o.n_personas;
    lq.personas = (char **)o.personas;
    if (o.source[0])
        lq.source = (Funnel__V1__Source)leadrows_enum_value(&funnel__v1__source__descriptor,
                                                     "SOURCE_", o.source);
    if (o.handoff[0]) {
        handoff = (Funnel__V1__HandoffStatus)leadrows_enum_value(
            &funnel__v1__handoff_status__descriptor, "HANDOFF_", o.handoff);
        lq.n_handoff = 1;
        lq.handoff = &handoff;
    }
    lq.qualified = o.qualified       ? FUNNEL__V1__LEADS_QUALIFIED__LEADS_QUALIFIED_YES
                   : o.not_qualified ? FUNNEL__V1__LEADS_QUALIFIED__LEADS_QUALIFIED_NO
                                     : FUNNEL__V1__LEADS_QUALIFIED__LEADS_QUALIFIED_ANY;
    lq.has_min_score = o.has_min_score;
    lq.min_score = o.min_score;
    lq.stalled = o.stalled;
    if (o.since[0] &&
        leadrows_parse_since(o.since, &lq.since_ms, &lq.within_ms, err, sizeof err) == -1) {
        ctl_error("leads: --%s", err);
        return CTL_EXIT_USAGE;
    }
    lq.sort = (Funnel__V1__LeadsSort)leadrows_enum_value(&funnel__v1__leads_sort__descriptor,
                                                  "LEADS_SORT_", o.sort);
    lq.desc = o.desc;
    bool by_id = lq.sort == FUNNEL__V1__LEADS_SORT__LEADS_SORT_ID;
    long page = o.page_size ? o.page_size : by_id ? S_PAGE_BY_ID : S_PAGE_SORTED;
    if (o.limit && o.limit < page)
        page = o.limit;
    lq.page_size = (uint32_t)page;

    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    /* The next page is asked for as soon as a reply names it, before this
     * page is printed: funneld reads it while funnelctl writes. */
    ctl_query_conn_t conn;
    rc = ctl_query_open(&conn, g);
    if (rc == CTL_EXIT_OK)
        rc = ctl_query_send(&conn, &req);
    while (rc == CTL_EXIT_OK) {
        rc = ctl_query_recv(&conn, FUNNEL__V1__QUERY_REPLY__REPLY_LEADS, "leads", &reply);
        if (rc != CTL_EXIT_OK)
            break;
        Funnel__V1__LeadsReply *lr = reply->leads;
        size_t n = lr->n_leads;
        if (o.limit && out.rows + n > (size_t)o.limit)
            n = (size_t)o.limit - out.rows;
        bool last = lr->next_cursor.len == 0 || (o.limit && out.rows + n >= (size_t)o.limit);
        if (!last) {
            free(cursor);
            cursor = xmalloc(lr->next_cursor.len);
            memcpy(cursor, lr->next_cursor.data, lr->next_cursor.len);
            lq.cursor.data = cursor;
            lq.cursor.len = lr->next_cursor.len;
            rc = ctl_query_send(&conn, &req);
        }
        s_emit_page(&out, lr, n);
        funnel__v1__query_reply__free_unpacked(reply, NULL);
        reply = NULL;
        if (last)
            break;
    }
    ctl_query_close(&conn);
    free(cursor);
    if (rc == CTL_EXIT_OK)
        s_finish(&out);
    else
        fflush(stdout);
    return rc;
}

const ctl_cmd_t ctl_cmd_leads = {
    .name = "leads",
    .summary = "list, filter and export leads (table, CSV, NDJSON, JSON)",
    .usage = "Usage: funnelctl leads [--stage S]... [--persona P]... [--source marketing|sales]\n"
             "         [--handoff none|pending|accepted|rejected|recycled|requalified]\n"
             "         [--qualified|--not-qualified]\n"
             "         [--min-score N] [--stalled] [--since TIME]\n"
             "         [--sort score|engagement|fit|stage_age|last_event|id] [--desc]\n"
             "         [--limit N] [--format table|csv|ndjson|json] [--columns A,B,...]\n",
    .about =
        "List the leads that pass every filter given (filters combine with \"and\"; a\n"
        "repeated --stage or --persona matches any of its values), in the order of --sort\n"
        "(default id). Scores are decayed to funneld's time (the wall clock, or the\n"
        "event-time watermark when funneld runs on event time), as `funnelctl lead` shows\n"
        "them; in_stage_ms is the time in the current stage at that time.\n"
        "\n"
        "Formats: table (for people), csv (RFC 4180: a header row of the column names,\n"
        "CRLF line ends, fields with commas, quotes or line breaks quoted), ndjson (one\n"
        "JSON document per lead per line, the columns as keys) and json (one document,\n"
        "{\"as_of\",\"leads\":[...]}). Times are RFC 3339 UTC with milliseconds (empty in\n"
        "CSV, null in JSON, when unknown), scores numbers, in_stage_ms milliseconds.\n"
        "\n"
        "How it reads: funnelctl asks for one page at a time; funneld answers each from a\n"
        "read snapshot of its own, held only while the page is read, so a listing never\n"
        "holds back ingest or other queries, and stopping costs funneld nothing. Across\n"
        "pages the listing is not one snapshot: every lead that does not change while it\n"
        "runs is listed once, in order, with scores decayed to the time of the first page;\n"
        "a lead that changes meanwhile is listed as the page that reaches it finds it\n"
        "(possibly twice or not at all if the change moves it across pages).\n"
        "\n"
        "Cost: by id, a page reads leads from where the last one ended; with another sort\n"
        "each page reads every candidate lead and keeps the best (ask for fewer pages with\n"
        "--limit or --page-size). --stalled reads the state's marks of stalled leads\n"
        "instead of every lead; --stage, --persona and --source are checked on each lead\n"
        "read, and funneld's stage, persona and source counts end a scan once every lead\n"
        "that can match was seen (no match at all: no scan). --handoff, --qualified,\n"
        "--not-qualified, --min-score and --since are read from each lead (a full scan).\n",
    .opts = s_leads_opts,
    .defaults = &s_leads_defaults,
    .run = s_run_leads,
};
