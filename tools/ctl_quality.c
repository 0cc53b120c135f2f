/* ctl_quality.c: funnelctl quality, lead quality against outcomes (one
 * QualityQuery), as a table or JSON. */
#include <string.h>

#include "ctl.h"

typedef struct {
    const char *by;
    const char *draft;
    const char *definition;
} s_quality_opts_t;

static const s_quality_opts_t s_quality_defaults = { .by = "", .draft = NULL };

static const char *const s_quality_by[] = { "persona", "source", "clause", NULL };

static const ctl_opt_t s_quality_opts[] = {
    CTL_CHOICE("by", s_quality_opts_t, by, s_quality_by,
               "the same per group: persona, the persona a lead has now; source, the "
               "source of its first event; clause, the qualification clause of its first "
               "handoff (base rate and recall are then the funnel's)"),
    CTL_STRING("draft", "FILE", s_quality_opts_t, draft,
               "score the draft definition FILE instead: funneld replays its event log "
               "(up to the event current when asked) through the draft into a scratch "
               "state, in a thread of its own, without changing the live definition or "
               "state; the draft is checked here first"),
    CTL_STRING("definition", "NAME", s_quality_opts_t, definition,
               "measure the shadow draft NAME instead (config key shadow; funnelctl "
               "shadow lists them): its state, kept as live events arrive"),
    CTL_END,
};

static int s_run_quality(ctl_opts_t *g, int argc, char **argv)
{
    s_quality_opts_t o = s_quality_defaults;
    int rc;
    int first = ctl_parse(&ctl_cmd_quality, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (first < argc) {
        ctl_error("quality: unexpected argument \"%s\" (see funnelctl quality --help)",
                  argv[first]);
        return CTL_EXIT_USAGE;
    }
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__QualityQuery qq = FUNNEL__V1__QUALITY_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    if (o.draft && o.definition) {
        ctl_error("quality: --draft and --definition do not combine");
        return CTL_EXIT_USAGE;
    }
    char *draft = NULL;
    if (o.draft) {
        if ((draft = ctl_read_draft(o.draft)) == NULL)
            return CTL_EXIT_USAGE;
        qq.draft = draft;
        qq.draft_name = (char *)o.draft;
        if (g->timeout < 0)
            g->timeout = CTL_LAB_TIMEOUT_S;
    }
    qq.by = (char *)o.by;
    qq.definition = (char *)(o.definition ? o.definition : "");
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_QUALITY;
    req.quality = &qq;
    rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_QUALITY, "quality", &reply);
    free(draft);
    if (rc != CTL_EXIT_OK)
        return rc;
    const Funnel__V1__QualityReply *q = reply->quality;
    if (g->json) {
        json_t *doc = render_quality_json(q);
        json_object_set_new(doc, "draft", json_boolean(o.draft != NULL));
        if (o.draft) {
            json_object_set_new(doc, "replayed", json_integer((json_int_t)q->replayed));
            json_object_set_new(doc, "upto_seq", json_integer((json_int_t)q->upto_seq));
        }
        ctl_print_doc(doc);
    } else {
        if (o.draft)
            printf("Draft \"%s\" (%s), scored on %llu log entries up to %llu; the live "
                   "definition is unchanged.\n",
                   q->definition, o.draft, (unsigned long long)q->replayed,
                   (unsigned long long)q->upto_seq);
        render_quality_text(stdout, q);
    }
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cmd_quality = {
    .name = "quality",
    .summary = "lead quality: do the leads handed off go on to buy?",
    .usage = "Usage: funnelctl quality [--by persona|source|clause] [--draft FILE|--definition NAME]\n",
    .about =
        "Measure the qualification rule against outcomes. A lead is won once it\n"
        "entered the funnel's last stage, lost once it entered an exit, open otherwise.\n"
        "Over the leads handed off at least once:\n"
        "  handed_off  leads handed off; won, lost: their outcome came after their\n"
        "              first handoff; open: none yet; before: the outcome came first\n"
        "  precision   won / (won + lost)\n"
        "  recall      won leads handed off before they were won / all won leads\n"
        "  base_rate   won / (won + lost) over every lead; lift = precision / base_rate\n"
        "  to_won      median time from the first handoff to won (within 2.2%)\n"
        "  rejected    share of the handoffs sales rejected\n"
        "Open leads are left out of precision and base rate unless the definition\n"
        "sets quality.lost_after (whole days): a lead still open that long after its\n"
        "handoff (for the base rate, its first event), counted in days of the\n"
        "daemon's time, is lost. Every number comes from counters funneld keeps as\n"
        "events arrive.\n",
    .opts = s_quality_opts,
    .defaults = &s_quality_defaults,
    .notes =
        "With --json: {\"handed_off\",\"won\",\"lost\",\"open\",\"outcome_before_handoff\",\n"
        "\"lost_after_timeout\",\"precision\",\"recall\",\"base_rate\",\"lift\",\n"
        "\"median_handoff_to_won_ms\",\"rejection_rate\",\"all_leads\":{\"won\",\"lost\",\"open\"},\n"
        "\"lost_after_ms\",\"as_of_ms\",\"definition\",\"draft\"} (with --draft also\n"
        "\"replayed\", the log entries replayed, and \"upto_seq\") and with --by, \"by\" and \"groups\": [the same per\n"
        "group, with \"group\"]. A rate with nothing to divide by is null.\n",
    .run = s_run_quality,
};
