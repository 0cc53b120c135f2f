/* ctl_checkpoint.c: funnelctl checkpoint: ask funneld for a durable
 * checkpoint of its state now and wait until it is on disk (or failed). */
#include <time.h>

#include "ctl.h"
#include "render.h"

#define S_POLL_MS 100

typedef struct {
    double wait;   /* seconds; 0: do not wait */
} s_ckpt_opts_t;

static const s_ckpt_opts_t s_ckpt_defaults = { .wait = 600 };

static const ctl_opt_t s_ckpt_opts[] = {
    CTL_SECONDS("wait", "S", s_ckpt_opts_t, wait,
                "wait at most S seconds for the checkpoint to be written (default 600; "
                "0: ask for it and return at once)"),
    CTL_END,
};

/* One CheckpointQuery (ticket 0: take one now). CTL_EXIT_OK and *reply_out,
 * or CTL_EXIT_USAGE (printed). */
static int s_ask(ctl_opts_t *g, uint64_t ticket, Funnel__V1__QueryReply **reply_out)
{
    Funnel__V1__QueryRequest req = FUNNEL__V1__QUERY_REQUEST__INIT;
    Funnel__V1__CheckpointQuery cq = FUNNEL__V1__CHECKPOINT_QUERY__INIT;
    cq.ticket = ticket;
    req.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_CHECKPOINT;
    req.checkpoint = &cq;
    return ctl_query(g, &req, FUNNEL__V1__QUERY_REPLY__REPLY_CHECKPOINT, "checkpoint",
                     reply_out);
}

static int s_run_checkpoint(ctl_opts_t *g, int argc, char **argv)
{
    s_ckpt_opts_t o = s_ckpt_defaults;
    Funnel__V1__QueryReply *reply = NULL;
    int rc;
    int first = ctl_parse(&ctl_cmd_checkpoint, g, &o, argc, argv, &rc);
    if (first < 0)
        return rc;
    if (first < argc) {
        ctl_error("checkpoint: unexpected argument \"%s\" (see funnelctl checkpoint --help)",
                  argv[first]);
        return CTL_EXIT_USAGE;
    }
    int64_t t0 = ctl_mono_ms(), deadline = t0 + (int64_t)(o.wait * 1000);
    if ((rc = s_ask(g, 0, &reply)) != CTL_EXIT_OK)
        return rc;
    uint64_t ticket = reply->checkpoint->ticket;
    /* The reply comes at once: ask again until it is written or failed. */
    while (reply->checkpoint->pending && o.wait > 0 && ctl_mono_ms() < deadline) {
        funnel__v1__query_reply__free_unpacked(reply, NULL);
        reply = NULL;
        struct timespec ts = { 0, S_POLL_MS * 1000000L };
        nanosleep(&ts, NULL);
        if ((rc = s_ask(g, ticket, &reply)) != CTL_EXIT_OK)
            return rc;
    }
    const Funnel__V1__CheckpointReply *cr = reply->checkpoint;
    double secs = (double)(ctl_mono_ms() - t0) / 1000.0;
    if (g->json) {
        json_t *o_json = json_object();
        json_object_set_new(o_json, "ticket", json_integer((json_int_t)cr->ticket));
        json_object_set_new(o_json, "state", json_string(cr->done      ? "done"
                                                          : cr->failed ? "failed"
                                                                       : "pending"));
        json_object_set_new(o_json, "error", json_string(cr->error ? cr->error : ""));
        json_object_set_new(o_json, "checkpoint",
                            cr->checkpoint ? render_checkpoint_json(cr->checkpoint)
                                           : json_null());
        json_object_set_new(o_json, "took_ms", json_integer((json_int_t)cr->took_ms));
        json_object_set_new(o_json, "waited_s", json_real(secs));
        ctl_print_doc(o_json);
    } else if (cr->done && cr->checkpoint) {
        printf("checkpoint written in %.2f s: ", (double)cr->took_ms / 1000.0);
        render_checkpoint_text(stdout, cr->checkpoint);
    } else if (cr->failed) {
        ctl_error("checkpoint failed (funneld retries later; the live state is untouched): %s",
                  cr->error);
    } else if (o.wait > 0) {
        ctl_error("checkpoint: not written within %.0f s (ticket %llu; it goes on)", o.wait,
                  (unsigned long long)ticket);
    } else {
        printf("checkpoint asked for (ticket %llu)\n", (unsigned long long)ticket);
    }
    rc = cr->done || (o.wait == 0 && !cr->failed) ? CTL_EXIT_OK : CTL_EXIT_NO;
    funnel__v1__query_reply__free_unpacked(reply, NULL);
    return rc;
}

const ctl_cmd_t ctl_cmd_checkpoint = {
    .name = "checkpoint",
    .summary = "take a durable checkpoint of funneld's state now and wait for it",
    .usage = "Usage: funnelctl checkpoint [--wait S]\n",
    .about =
        "Ask funneld for a durable checkpoint of its state now (in state_dir/checkpoints,\n"
        "written from a snapshot: ingest and queries go on meanwhile) and wait until it\n"
        "is on disk. After a power loss funneld restores the newest checkpoint and\n"
        "replays only the events logged after it. funneld also takes them by itself\n"
        "(checkpoint_interval, checkpoint_events) and keeps checkpoint_keep of them.\n"
        "\n"
        "With --json, one document: {\"ticket\",\"state\" (done, failed or pending),\"error\",\n"
        "\"checkpoint\":{\"name\",\"seq\",\"bytes\",\"created_at\"} or null,\"took_ms\",\"waited_s\"}.\n",
    .opts = s_ckpt_opts,
    .defaults = &s_ckpt_defaults,
    .exits = "Exit status: 0 written (or, with --wait 0, asked for), 1 failed or not written\n"
             "in time, 2 usage or connection error.\n",
    .run = s_run_checkpoint,
};
