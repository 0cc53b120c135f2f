/* ctl_shadow.c: funnelctl shadow, the shadow drafts funneld applies beside
 * the live definition (one ShadowQuery), as text or JSON. */
#include "ctl.h"
#include "render.h"

typedef struct {
    const char *name;
} s_shadow_opts_t;

static const s_shadow_opts_t s_shadow_defaults = { .name = NULL };

static const ctl_opt_t s_shadow_opts[] = {
    CTL_END,
};

static int s_run_shadow(ctl_opts_t *g, int argc, char **argv)
{
    s_shadow_opts_t o = s_shadow_defaults;
    int rc;
    int first = ctl_parse(&ctl_cmd_shadow, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (first + 1 < argc) {
        ctl_error("shadow: unexpected argument \"%s\" (see funnelctl shadow --help)",
                  argv[first + 1]);
        return CTL_EXIT_USAGE;
    }
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__ShadowQuery sq = FUNNEL__V1__SHADOW_QUERY__INIT;
    Funnel__V1__QueryReply *reply;
    sq.name = first < argc ? argv[first] : (char *)"";
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_SHADOW;
    req.shadow = &sq;
    if (g->timeout < 0)
        g->timeout = 60; /* reads every lead of each state */
    rc = ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_SHADOW, "shadow", &reply);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (g->json)
        ctl_print_doc(render_shadow_json(reply->shadow));
    else
        render_shadow_text(stdout, reply->shadow);
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return CTL_EXIT_OK;
}

const ctl_cmd_t ctl_cmd_shadow = {
    .name = "shadow",
    .summary = "the shadow drafts: handoffs and agreement with the live definition",
    .usage = "Usage: funnelctl shadow [NAME]\n",
    .about =
        "Show the shadow drafts funneld applies to every live event beside the live\n"
        "definition (config key shadow: a list of {name, definition}), or only NAME:\n"
        "its state (rebuilding from the log since it was added, or following the\n"
        "live stream), its handoffs, and which leads it and the live definition hand\n"
        "off: both, only the live one, only the draft, per ISO week of the lead's first\n"
        "handoff (under the draft, or the live definition for only_live). lead,\n"
        "funnel, friction and quality answer from a draft's state when given its\n"
        "name (see their --help); its alerts come on shadow.NAME.TOPIC.\n",
    .opts = s_shadow_opts,
    .defaults = &s_shadow_defaults,
    .notes =
        "With --json: {\"drafts\":[{\"name\",\"path\",\"definition\",\"hash\",\"state\",\n"
        "\"applied_seq\",\"log_seq\",\"handoffs\",\"live_handoffs\",\"both\",\"only_live\",\n"
        "\"only_draft\",\"weeks\":[{\"week\",\"both\",\"only_live\",\"only_draft\"}]}]}.\n",
    .run = s_run_shadow,
};
