/* ctl_query_cmds.c: the report commands, lead, funnel, friction and stats:
 * one QueryRequest each through ctl_query, the reply rendered by render.c
 * as text or JSON. */
#include <string.h>

#include "ctl.h"
#include "ndjson.h"
#include "render.h"

/* "NAME: unexpected argument" when operands follow. Returns 0 or -1. */
static int s_no_operands(const char *name, int first, int argc, char **argv)
{
    if (first >= argc)
        return 0;
    ctl_error("%s: unexpected argument \"%s\" (see funnelctl %s --help)", name, argv[first],
              name);
    return -1;
}

/* -- lead ---------------------------------------------------------------- */

typedef struct {
    long limit;
    bool ledger;
    const char *as_of;
    const char *definition;
} s_lead_opts_t;

static const s_lead_opts_t s_lead_defaults = { 0 };

static const ctl_opt_t s_lead_opts[] = {
    CTL_COUNT("limit", "N", s_lead_opts_t, limit, 1, 1000000,
              "at most N timeline entries, the newest (default: funneld's, 100)"),
    CTL_FLAG("ledger", s_lead_opts_t, ledger,
             "every score change since the lead's first event, replayed from the "
             "event log through the definition in use"),
    CTL_STRING("as-of", "TIME", s_lead_opts_t, as_of,
               "the lead as it was at TIME (RFC 3339 or epoch ms), replayed from the "
               "event log through the definition in use: stage, scores decayed to "
               "TIME, persona, handoff status, friction so far"),
    CTL_STRING("definition", "NAME", s_lead_opts_t, definition,
               "answer from the shadow draft NAME (config key shadow; funnelctl shadow lists "
               "them): its state and its definition instead of the live ones"),
    CTL_END,
};

/* A --ledger whose replay could not start from the lead's first event
 * (log_retention dropped it; the reply's ledger is not complete) started
 * from the lead's record in the oldest checkpoint: which one, and from
 * what the log begins, asked of funneld's stats. 0 (*note filled, or ""
 * when the stats do not say), or -1. */
static int s_ledger_start(ctl_opts_t *g, char *note, size_t cap, json_t **doc)
{
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__StatsQuery sq = FUNNEL__V1__STATS_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    note[0] = '\0';
    *doc = NULL;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_STATS;
    req.stats = &sq;
    if (ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_STATS, "stats", &reply) !=
        CTL_EXIT_OK)
        return -1;
    const Funnel__V1__Stats *st = reply->stats;
    const Funnel__V1__CheckpointInfo *oldest = NULL;
    for (size_t i = 0; i < st->n_checkpoints; i++)
        if (st->checkpoints[i]->seq + 1 >= st->log_first_seq)
            oldest = st->checkpoints[i];
    if (oldest && st->log_first_seq > 1) {
        snprintf(note, cap,
                 "the ledger starts from the oldest checkpoint %s (seq %llu): "
                 "log_retention dropped the events before %llu",
                 oldest->name, (unsigned long long)oldest->seq,
                 (unsigned long long)st->log_first_seq);
        *doc = json_pack("{s:s, s:I, s:I}", "checkpoint", oldest->name, "seq",
                         (json_int_t)oldest->seq, "log_first_seq",
                         (json_int_t)st->log_first_seq);
    }
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return 0;
}

static int s_run_lead(ctl_opts_t *g, int argc, char **argv)
{
    s_lead_opts_t o = s_lead_defaults;
    int rc;
    int first = ctl_parse(&ctl_cmd_lead, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (argc - first != 1) {
        ctl_error("lead: one lead ID wanted (see funnelctl lead --help)");
        return CTL_EXIT_USAGE;
    }
    const char *id = argv[first];
    int64_t as_of = 0;
    char err[NDJSON_ERR_MAX];
    if (o.as_of && ndjson_parse_time_arg(o.as_of, &as_of, err) < 0) {
        ctl_error("lead --as-of: %s", err);
        return CTL_EXIT_USAGE;
    }

    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__LeadQuery lq = FUNNEL__V1__LEAD_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    lq.lead_id = (char *)id;
    lq.timeline_limit = (uint32_t)o.limit;
    lq.ledger = o.ledger;
    lq.as_of_ms = as_of;
    lq.definition = (char *)(o.definition ? o.definition : "");
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD;
    req.lead = &lq;
    rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_LEAD, "lead", &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if ((!reply->lead->found || !reply->lead->lead) && o.as_of) {
        ctl_error("lead %s had no events by %s", id, o.as_of);
        rc = CTL_EXIT_NO;
    } else if (!reply->lead->found || !reply->lead->lead) {
        ctl_error("unknown lead %s", id);
        rc = CTL_EXIT_NO;
    } else {
        char note[512] = "";
        json_t *from = NULL;
        if (o.ledger && !reply->lead->lead->ledger_complete &&
            s_ledger_start(g, note, sizeof note, &from) == -1)
            rc = CTL_EXIT_NO;
        if (g->json) {
            json_t *doc = render_lead_json(reply->lead);
            if (from)
                json_object_set_new(doc, "ledger_from", from);
            ctl_print_doc(doc);
        } else {
            if (note[0])
                printf("%s\n", note);
            render_lead_text(stdout, reply->lead);
            json_decref(from);
        }
    }
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return rc;
}

const ctl_cmd_t ctl_cmd_lead = {
    .name = "lead",
    .summary = "show one lead: stage, scores, persona, handoff, timeline",
    .usage = "Usage: funnelctl lead [--limit N] [--ledger] [--as-of TIME] [--definition NAME] ID\n",
    .about =
        "Show one lead: its stage and since when, scores (fit, engagement, total),\n"
        "persona, whether it qualified, its handoff status, attributes, skipped stages,\n"
        "its friction history (stalls, regressions, rejected handoffs, handoffs past the\n"
        "SLA; the newest 8, and whether it is stalled or past the SLA now) and its\n"
        "timeline of events.\n"
        "\n"
        "Scores are shown decayed to the daemon's time (the wall clock, or the event-time\n"
        "watermark when funneld runs on the event clock): engagement halves every half-life since\n"
        "the lead's last event, and \"as of\" says the time. Qualification is decided\n"
        "at events and does not change when read.\n"
        "\n"
        "--ledger and --as-of replay the lead's chain of events from funneld's event log\n"
        "through the definition in use today (nothing is written): --ledger lists every\n"
        "score change since the first event (the record keeps the newest 8), --as-of TIME\n"
        "shows the lead as it was at TIME (events of event time up to TIME, scores\n"
        "decayed to TIME). After an edit of the definition a replay says what today's\n"
        "rules make of the lead's history, which may differ from the stored record.\n"
        "Once log_retention dropped a lead's older events, the replay starts from the\n"
        "lead's record in the oldest checkpoint and says so: \"the ledger starts from\n"
        "the oldest checkpoint NAME (seq N): log_retention dropped the events before M\"\n"
        "(the ledger then holds the changes that record kept and every one after it).\n"
        "\n"
        "With --json, one document: {\"lead\",\"stage\",\"stage_entered_at\",\"score\":{\"fit\",\n"
        "\"engagement\",\"total\",\"as_of\",\"ledger\",\"ledger_complete\",\"older\"},\"persona\",\"qualified\",\"handoff\":{\"status\",\"at\"},\"attrs\",\n"
        "\"events\",\"first_source\",\"first_seen\",\"last_event_at\",\"skipped\",\"timeline\":[{\"seq\",\n"
        "\"id\",\"type\",\"source\",\"at\",\"attrs\",\"value\"}]}; times are RFC 3339 UTC with\n"
        "milliseconds, null when unknown. Also \"friction\":{\"stalled\",\"sla_breached\",\"total\",\n"
        "\"history\":[{\"kind\",\"stage\",\"at\",\"duration_ms\",\"detail\"}]}. With --ledger\n"
        "or --as-of the same document plus \"as_of\", the time the lead is shown as of,\n"
        "and, for a ledger started from a checkpoint, \"ledger_from\":{\"checkpoint\",\"seq\",\n"
        "\"log_first_seq\"}.\n",
    .opts = s_lead_opts,
    .defaults = &s_lead_defaults,
    .exits = "Exit status: 0 found, 1 unknown lead, 2 usage or connection error.\n",
    .run = s_run_lead,
};

/* -- funnel -------------------------------------------------------------- */

typedef struct {
    const char *by, *persona, *definition;
} s_funnel_opts_t;

static const s_funnel_opts_t s_funnel_defaults = { .by = "", .persona = "" };

static const char *const s_funnel_by[] = { "persona", "source", "cohort", NULL };

static const ctl_opt_t s_funnel_opts[] = {
    CTL_CHOICE("by", s_funnel_opts_t, by, s_funnel_by,
               "the same per group: persona, the persona each lead has now (\"-\": leads "
               "without one); source, the source of the lead's first event (marketing, "
               "sales); cohort, the ISO week of the lead's first event (e.g. 2026-W48)"),
    CTL_STRING("persona", "P", s_funnel_opts_t, persona,
               "only the leads of persona P (combines with --by persona only)"),
    CTL_STRING("definition", "NAME", s_funnel_opts_t, definition,
               "answer from the shadow draft NAME (config key shadow; funnelctl shadow lists "
               "them): its state and its definition instead of the live ones"),
    CTL_END,
};

static int s_run_funnel(ctl_opts_t *g, int argc, char **argv)
{
    s_funnel_opts_t o = s_funnel_defaults;
    int rc;
    int first = ctl_parse(&ctl_cmd_funnel, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (s_no_operands("funnel", first, argc, argv) == -1)
        return CTL_EXIT_USAGE;
    if (o.persona[0] && o.by[0] && strcmp(o.by, "persona") != 0) {
        ctl_error("funnel: --persona combines only with --by persona");
        return CTL_EXIT_USAGE;
    }
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__FunnelQuery fq = FUNNEL__V1__FUNNEL_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    fq.by = (char *)o.by;
    fq.persona = (char *)o.persona;
    fq.definition = (char *)(o.definition ? o.definition : "");
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_FUNNEL;
    req.funnel = &fq;
    rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_FUNNEL, "funnel", &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (g->json)
        ctl_print_doc(render_funnel_json(reply->funnel));
    else
        render_funnel_text(stdout, reply->funnel);
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return rc;
}

const ctl_cmd_t ctl_cmd_funnel = {
    .name = "funnel",
    .summary = "show leads per stage and conversion",
    .usage = "Usage: funnelctl funnel [--by persona|source|cohort] [--persona P] [--definition NAME]\n",
    .about =
        "Show the funnel: for each stage (funnel order, then the terminal stages) the\n"
        "leads in it now, the leads that ever entered it, those that went on to a later\n"
        "stage, and the conversion (advanced / entered); then the handoffs sent to\n"
        "sales, accepted, rejected, and the acceptance rate (accepted / answered).\n",
    .opts = s_funnel_opts,
    .defaults = &s_funnel_defaults,
    .notes =
        "Every number comes from counters funneld keeps as events arrive; a report\n"
        "never scans the leads.\n"
        "\n"
        "With --json: {\"leads\":n,\"stages\":[{\"stage\",\"now\",\"entered\",\"advanced\",\n"
        "\"conversion\",\"terminal\"}],\"handoffs\":{\"sent\",\"accepted\",\"rejected\",\n"
        "\"acceptance_rate\"}}; conversion is null when nothing entered the stage or the\n"
        "stage is terminal. With --by, also \"by\" and \"groups\":[{\"group\",\"leads\",\n"
        "\"stages\",\"handoffs\"}]; with --persona, \"persona\".\n",
    .run = s_run_funnel,
};

/* -- friction ------------------------------------------------------------ */

typedef struct {
    const char *by, *stage, *definition;
    bool leads, suggest;
    long limit;
} s_friction_opts_t;

static const s_friction_opts_t s_friction_defaults = { .by = "", .stage = "" };

static const char *const s_friction_by[] = { "persona", "source", "cohort", NULL };

static const ctl_opt_t s_friction_opts[] = {
    CTL_CHOICE("by", s_friction_opts_t, by, s_friction_by,
               "the same per group: persona, the persona each lead has now (every column: "
               "a lead's entries, stays, stalls, regressions and rejections move with it "
               "when its persona changes); source, the source of the lead's first event; "
               "cohort, the ISO week of its first event (e.g. 2026-W48)"),
    CTL_FLAG("leads", s_friction_opts_t, leads,
             "list the leads stalled now (in every stage, and those whose handoff waits "
             "past the SLA), stalled longest first"),
    CTL_STRING("stage", "STAGE", s_friction_opts_t, stage,
               "with --leads: only the leads stalled in STAGE"),
    CTL_COUNT("limit", "N", s_friction_opts_t, limit, 1, 10000000,
              "with --leads: at most N leads (default 1000)"),
    CTL_FLAG("suggest", s_friction_opts_t, suggest,
             "propose a max_dwell per stage from the p90 of its completed stays (rounded "
             "up to whole minutes, hours or days), printed as a YAML fragment to paste "
             "into the definition; personas whose p90 (over at least 10 stays) differs "
             "by more than half are named in comments"),
    CTL_STRING("definition", "NAME", s_friction_opts_t, definition,
               "answer from the shadow draft NAME (config key shadow; funnelctl shadow lists "
               "them): its state and its definition instead of the live ones"),
    CTL_END,
};

/* friction --suggest: the whole funnel's friction and its persona
 * breakdown, two queries. */
static int s_friction_suggest(ctl_opts_t *g, const char *definition)
{
    Funnel__V1__QueryReply *all = NULL, *by = NULL;
    for (int i = 0; i < 2; i++) {
        Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
        Funnel__V1__FrictionQuery fq = FUNNEL__V1__FRICTION_QUERY__INIT;
        fq.by = (char *)(i ? "persona" : "");
        fq.definition = (char *)(definition ? definition : "");
        req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_FRICTION;
        req.friction = &fq;
        int rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_FRICTION, "friction",
                           i ? &by : &all);
        if (rc != CTL_EXIT_OK) {
            if (all)
                funnel__v1__query_reply__free_unpacked(all, NULL);
            return rc;
        }
    }
    if (g->json)
        ctl_print_doc(render_dwell_suggest_json(all->friction, by->friction));
    else
        render_dwell_suggest_text(stdout, all->friction, by->friction);
    funnel__v1__query_reply__free_unpacked(all, NULL);
    funnel__v1__query_reply__free_unpacked(by, NULL);
    return CTL_EXIT_OK;
}

static int s_run_friction(ctl_opts_t *g, int argc, char **argv)
{
    s_friction_opts_t o = s_friction_defaults;
    int rc;
    int first = ctl_parse(&ctl_cmd_friction, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (s_no_operands("friction", first, argc, argv) == -1)
        return CTL_EXIT_USAGE;
    if ((o.stage[0] || o.limit) && !o.leads) {
        ctl_error("friction: --stage and --limit go with --leads");
        return CTL_EXIT_USAGE;
    }
    if (o.leads && o.by[0]) {
        ctl_error("friction: --by does not combine with --leads");
        return CTL_EXIT_USAGE;
    }
    if (o.suggest && (o.leads || o.by[0])) {
        ctl_error("friction: --suggest does not combine with --leads or --by");
        return CTL_EXIT_USAGE;
    }
    if (o.suggest)
        return s_friction_suggest(g, o.definition);
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__FrictionQuery fq = FUNNEL__V1__FRICTION_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    fq.by = (char *)o.by;
    fq.stage = (char *)o.stage;
    fq.leads = o.leads;
    fq.limit = (uint32_t)o.limit;
    fq.definition = (char *)(o.definition ? o.definition : "");
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_FRICTION;
    req.friction = &fq;
    rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_FRICTION, "friction", &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (g->json) {
        ctl_print_doc(o.leads ? render_friction_leads_json(reply->friction)
                              : render_friction_json(reply->friction));
    } else if (o.leads) {
        render_friction_leads_text(stdout, reply->friction);
    } else {
        render_friction_text(stdout, reply->friction);
    }
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return rc;
}

const ctl_cmd_t ctl_cmd_friction = {
    .name = "friction",
    .summary = "show friction points, worst first; stalled leads",
    .usage = "Usage: funnelctl friction [--by persona|source|cohort] [--definition NAME]\n"
             "       funnelctl friction --leads [--stage STAGE] [--limit N]\n"
             "       funnelctl friction --suggest\n",
    .about =
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
        "With --by, one attribution rule for every column of a group's table: a lead\n"
        "counts under its group now, its persona as it is now (when the persona changes,\n"
        "everything the lead counted, entries, stays and their histograms, stalls,\n"
        "regressions, rejections and reasons, moves to the new persona's group, as in\n"
        "funnel --by persona), its first event's source, or its cohort.\n",
    .opts = s_friction_opts,
    .defaults = &s_friction_defaults,
    .notes =
        "With --json: {\"points\":[{\"rank\",\"kind\",\"stage\",\"value\",\"summary\"}],\"stages\":[{\n"
        "\"stage\",\"entered\",\"advanced\",\"in_progress\",\"dropped\",\"conversion\",\n"
        "\"conversion_target\",\"window\":{\"entered\",\"advanced\",\"conversion\",\"below_target\"},\n"
        "\"dwell\":{\"completed\",\"median_ms\",\"p90_ms\",\"max_dwell_ms\"},\"stalls\",\"stalled_now\",\n"
        "\"regressions\",\"rejections\"}],\"rejection_reasons\":[{\"reason\",\"count\"}],\"handoffs\":{\n"
        "\"past_sla_now\",\"sla_breaches\"},\"window\":{\"days\",\"min_sample\",\"last_day\"}}, with\n"
        "--by also \"by\" and \"groups\"; with --leads {\"leads\":[{\"lead\",\"set\",\"stage\",\n"
        "\"since\"}],\"total\"}; with --suggest {\"stages\":[{\"stage\",\"completed\",\"p90_ms\",\n"
        "\"max_dwell_ms\",\"suggested_ms\",\"suggested\",\"personas\":[{\"persona\",\n"
        "\"completed\",\"p90_ms\",\"suggested_ms\",\"suggested\"}]}]}.\n",
    .exits = "Exit status: 0 success, 2 usage or connection error.\n",
    .run = s_run_friction,
};

/* -- stats --------------------------------------------------------------- */

static int s_run_stats(ctl_opts_t *g, int argc, char **argv)
{
    int rc;
    int first = ctl_parse(&ctl_cmd_stats, g, NULL, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (s_no_operands("stats", first, argc, argv) == -1)
        return CTL_EXIT_USAGE;
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__StatsQuery sq = FUNNEL__V1__STATS_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_STATS;
    req.stats = &sq;
    rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_STATS, "stats", &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (g->json)
        ctl_print_doc(render_stats_json(reply->stats));
    else
        render_stats_text(stdout, reply->stats);
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return rc;
}

const ctl_cmd_t ctl_cmd_stats = {
    .name = "stats",
    .summary = "show funneld's counters",
    .usage = "Usage: funnelctl stats\n",
    .about =
        "Show funneld's counters: events received, applied, duplicates, rejected, group\n"
        "commits, last log sequence, leads, alerts, stream gaps and messages, deadlines\n"
        "fired, handoffs sales recycled (handoff_recycled) and asked to requalify\n"
        "(handoff_requalify), CURVE handshakes refused, the definition in use, and the\n"
        "uptime.\n"
        "\n"
        "With --json: every counter by its protocol name, plus \"uptime_ms\" and \"uptime\"\n"
        "(for people).\n",
    .run = s_run_stats,
};
