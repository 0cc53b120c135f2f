/* ctl_nats_query.c: funnelctl's queries across the instances of a cluster
 * (global --nats URL; see daemon/nats_query.h for the subjects).
 *
 *   lead ID       asked of the owner of the lead's partition, on
 *                 funnel.query.<FNV-1a 32 of ID mod --cluster-partitions>;
 *   stats         StatsQuery on funnel.query.all, the replies merged
 *                 (counters added up, the partitions listed together);
 *   funnel, friction, quality
 *                 CountersQuery on funnel.query.all: every instance's raw
 *                 report counters (and marks) added up into one table
 *                 (handlers/merge.h),
 *                 which the report code of handlers/report.c reads through
 *                 its reader interface, as funneld reads its store: the
 *                 conversions, medians and ranks of the merged report are
 *                 computed from the merged counters by the same code. The
 *                 funnel-wide conversion check (whether a stage is below
 *                 its target over the window) is judged once, on the
 *                 merged window counters, by the check's own code
 *                 (pipeline_funnel_check).
 *
 * How many answers to wait for: the live instances' presence keys in the
 * lease bucket <stream>-owners (i.<instance>); without that bucket (every
 * instance pinned by `owns`), until the answers cover every partition.
 * The wait is bounded by --timeout; instances that did not answer, and
 * partitions no answer covers (or two cover), are named on stderr.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "ctl.h"
#include "defn.h"
#include "merge.h"
#include "query_encode.h"
#include "report.h"
#include "xalloc.h"

#define S_MAX_INSTANCES 256
#define S_MAX_PARTITIONS 1024

/* -- gathering ------------------------------------------------------------- */

typedef struct {
    Funnel__V1__QueryReply *r[S_MAX_INSTANCES];
    size_t n;
    char *expected[S_MAX_INSTANCES]; /* presence keys' instance names */
    size_t n_expected;
    bool have_bucket;
} s_gather_t;

static void s_gather_free(s_gather_t *gt)
{
    for (size_t i = 0; i < gt->n; i++)
        funnel__v1__query_reply__free_unpacked(gt->r[i], NULL);
    for (size_t i = 0; i < gt->n_expected; i++)
        free(gt->expected[i]);
    memset(gt, 0, sizeof *gt);
}

/* The instance name and partitions of a gathered reply. */
static const char *s_reply_instance(const Funnel__V1__QueryReply *r, size_t *n_owned,
                                    const uint32_t **owned, unsigned *np)
{
    if (r->reply_case == FUNNEL__V1__QUERY_REPLY__REPLY_COUNTERS) {
        *n_owned = r->counters->n_owned_partitions;
        *owned = r->counters->owned_partitions;
        *np = r->counters->cluster_partitions;
        return r->counters->instance;
    }
    *n_owned = r->stats->n_owned_partitions;
    *owned = r->stats->owned_partitions;
    *np = r->stats->cluster_partitions;
    return r->stats->instance;
}

/* The live instances by their presence keys, when there is a lease
 * bucket. */
static void s_expected(const ctl_opts_t *g, jsCtx *js, s_gather_t *gt)
{
    char bucket[128];
    kvStore *kv = NULL;
    kvKeysList keys = {0};
    snprintf(bucket, sizeof bucket, "%s-owners", g->cfg.stream);
    if (js_KeyValue(&kv, js, bucket) != NATS_OK)
        return;
    gt->have_bucket = true;
    if (kvStore_Keys(&keys, kv, NULL) == NATS_OK)
        for (int i = 0; i < keys.Count && gt->n_expected < S_MAX_INSTANCES; i++)
            if (strncmp(keys.Keys[i], "i.", 2) == 0)
                gt->expected[gt->n_expected++] = xstrdup(keys.Keys[i] + 2);
    kvKeysList_Destroy(&keys);
    kvStore_Destroy(kv);
}

/* Whether every expected instance answered (with a bucket), or the
 * answers cover every partition (without). */
static bool s_complete(const s_gather_t *gt)
{
    if (gt->n == 0)
        return false;
    if (gt->have_bucket && gt->n_expected > 0) {
        for (size_t i = 0; i < gt->n_expected; i++) {
            bool seen = false;
            for (size_t j = 0; j < gt->n && !seen; j++) {
                size_t no;
                const uint32_t *ow;
                unsigned np;
                seen = strcmp(s_reply_instance(gt->r[j], &no, &ow, &np), gt->expected[i]) == 0;
            }
            if (!seen)
                return false;
        }
        return true;
    }
    static bool cover[S_MAX_PARTITIONS];
    unsigned np = 0;
    memset(cover, 0, sizeof cover);
    for (size_t j = 0; j < gt->n; j++) {
        size_t no;
        const uint32_t *ow;
        s_reply_instance(gt->r[j], &no, &ow, &np);
        for (size_t k = 0; k < no; k++)
            if (ow[k] < S_MAX_PARTITIONS)
                cover[ow[k]] = true;
    }
    for (unsigned p = 0; p < np && p < S_MAX_PARTITIONS; p++)
        if (!cover[p])
            return false;
    return np > 0;
}

/* Say on stderr who did not answer and which partitions the answers do
 * not cover exactly once. */
static void s_report_gaps(const s_gather_t *gt, double timeout)
{
    for (size_t i = 0; i < gt->n_expected; i++) {
        bool seen = false;
        for (size_t j = 0; j < gt->n && !seen; j++) {
            size_t no;
            const uint32_t *ow;
            unsigned np;
            seen = strcmp(s_reply_instance(gt->r[j], &no, &ow, &np), gt->expected[i]) == 0;
        }
        if (!seen)
            ctl_error("instance %s did not answer within %g s: the figures leave out its "
                      "partitions", gt->expected[i], timeout);
    }
    static unsigned count[S_MAX_PARTITIONS];
    unsigned np = 0;
    memset(count, 0, sizeof count);
    for (size_t j = 0; j < gt->n; j++) {
        size_t no;
        const uint32_t *ow;
        s_reply_instance(gt->r[j], &no, &ow, &np);
        for (size_t k = 0; k < no; k++)
            if (ow[k] < S_MAX_PARTITIONS)
                count[ow[k]]++;
    }
    char miss[512] = "", twice[512] = "";
    for (unsigned p = 0; p < np && p < S_MAX_PARTITIONS; p++) {
        char *l = count[p] == 0 ? miss : count[p] > 1 ? twice : NULL;
        if (l && strlen(l) < sizeof miss - 12)
            snprintf(l + strlen(l), sizeof miss - strlen(l), "%s%u", *l ? "," : "", p);
    }
    if (miss[0])
        ctl_error("no instance that answered owns partition(s) %s: their leads are left out",
                  miss);
    if (twice[0])
        ctl_error("partition(s) %s owned by two instances that answered (one moving now): "
                  "their leads may be counted twice", twice);
}

/* Send req on funnel.query.all and collect the replies of kind want. */
static int s_gather(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
                    Funnel__V1__QueryReply__ReplyCase want, s_gather_t *gt)
{
    double timeout = ctl_timeout(g, CTL_TIMEOUT_S);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    natsInbox *inbox = NULL;
    int rc = CTL_EXIT_USAGE;
    char id[33];

    memset(gt, 0, sizeof *gt);
    if (ctl_nats_connect(g->cfg.nats, timeout, &nc, &js) != 0)
        return CTL_EXIT_USAGE;
    s_expected(g, js, gt);
    ctl_random_hex(id, 16);
    req->request_id = id;
    size_t len = funnel__v1__query_request__get_packed_size(req);
    uint8_t *buf = xmalloc(len ? len : 1);
    funnel__v1__query_request__pack(req, buf);
    req->request_id = (char *)protobuf_c_empty_string;
    if (natsInbox_Create(&inbox) != NATS_OK ||
        natsConnection_SubscribeSync(&sub, nc, inbox) != NATS_OK ||
        natsConnection_PublishRequest(nc, "funnel.query.all", inbox, buf, (int)len) != NATS_OK) {
        ctl_error("cannot ask on NATS at %s: %s", g->cfg.nats, nats_GetLastError(NULL));
        goto out;
    }
    int64_t deadline = ctl_mono_ms() + (int64_t)(timeout * 1000);
    while (!s_complete(gt) && gt->n < S_MAX_INSTANCES) {
        int64_t left = deadline - ctl_mono_ms();
        if (left <= 0)
            break;
        natsMsg *m = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, sub, left);
        if (s == NATS_TIMEOUT)
            break;
        if (s != NATS_OK) {
            ctl_error("NATS at %s: %s", g->cfg.nats, nats_GetLastError(NULL));
            goto out;
        }
        Funnel__V1__QueryReply *r = funnel__v1__query_reply__unpack(
            NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
        natsMsg_Destroy(m);
        if (r == NULL) {
            ctl_error("an undecodable answer on NATS (not a funneld's QueryReply)");
            continue;
        }
        if (strcmp(r->request_id, id) != 0) {
            funnel__v1__query_reply__free_unpacked(r, NULL);
            continue;
        }
        if (r->error[0]) {
            ctl_error("a funneld of the cluster: %s", r->error);
            funnel__v1__query_reply__free_unpacked(r, NULL);
            goto out;
        }
        if (r->reply_case != want) {
            ctl_error("a funneld of the cluster answered with something else");
            funnel__v1__query_reply__free_unpacked(r, NULL);
            goto out;
        }
        gt->r[gt->n++] = r;
    }
    if (gt->n == 0) {
        ctl_error("no funneld answered on NATS at %s within %g s", g->cfg.nats, timeout);
        goto out;
    }
    s_report_gaps(gt, timeout);
    rc = CTL_EXIT_OK;
out:
    free(buf);
    natsSubscription_Destroy(sub);
    natsInbox_Destroy(inbox);
    ctl_nats_close(&nc, &js);
    return rc;
}

/* -- the merges -------------------------------------------------------------- */

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The state partitions of the merged stats (see Stats.partitions): the
 * instances' count, not a sum (in cluster mode each instance holds every
 * cluster partition: the cluster's count), and per partition the sequence
 * applied by the answer that owns it, in that instance's log (0: no
 * answer owns it; the higher where two claim it). Before the owned
 * partitions are merged. */
static void s_merge_partitions(s_gather_t *gt, Funnel__V1__Stats *m)
{
    uint32_t np = 0;
    for (size_t j = 0; j < gt->n; j++) {
        const Funnel__V1__Stats *o = gt->r[j]->stats;
        if (o->partitions != m->partitions)
            ctl_error("instances %s and %s run %u and %u partitions (cluster_partitions "
                      "differs?): the partitions line shows the larger", m->instance,
                      o->instance, m->partitions, o->partitions);
        if (o->partitions > np)
            np = o->partitions;
    }
    uint64_t *seq = xcalloc(np ? np : 1, sizeof *seq);
    for (size_t j = 0; j < gt->n; j++) {
        const Funnel__V1__Stats *o = gt->r[j]->stats;
        for (size_t i = 0; i < o->n_owned_partitions; i++) {
            uint32_t p = o->owned_partitions[i];
            if (p < np && p < o->n_partition_applied_seq && o->partition_applied_seq[p] > seq[p])
                seq[p] = o->partition_applied_seq[p];
        }
    }
    free(m->partition_applied_seq);
    m->partition_applied_seq = seq;
    m->n_partition_applied_seq = np;
    m->partitions = np;
}

/* Stats: every count added up (through the message's descriptor, so that
 * a field added later is merged too); the latest of times and sequences
 * that are not counts; the partitions and instances listed together. */
static Funnel__V1__QueryReply *s_merge_stats(s_gather_t *gt)
{
    static const char *const s_latest[] = {"uptime_ms", "last_seq", "alert_seq",
                                           "cluster_partitions", "partitions", NULL};
    Funnel__V1__Stats *m = gt->r[0]->stats;
    const ProtobufCMessageDescriptor *desc = m->base.descriptor;
    s_merge_partitions(gt, m);
    for (size_t j = 1; j < gt->n; j++) {
        Funnel__V1__Stats *o = gt->r[j]->stats;
        for (unsigned f = 0; f < desc->n_fields; f++) {
            const ProtobufCFieldDescriptor *fd = &desc->fields[f];
            if (fd->label == PROTOBUF_C_LABEL_REPEATED)
                continue;
            bool latest = false;
            for (size_t k = 0; s_latest[k]; k++)
                latest |= strcmp(fd->name, s_latest[k]) == 0;
            char *a = (char *)m + fd->offset, *b = (char *)o + fd->offset;
            if (fd->type == PROTOBUF_C_TYPE_UINT64) {
                uint64_t *x = (uint64_t *)a, y = *(uint64_t *)b;
                *x = latest ? (y > *x ? y : *x) : *x + y;
            } else if (fd->type == PROTOBUF_C_TYPE_UINT32) {
                uint32_t *x = (uint32_t *)a, y = *(uint32_t *)b;
                *x = latest ? (y > *x ? y : *x) : *x + y;
            } else if (fd->type == PROTOBUF_C_TYPE_INT64) {
                int64_t *x = (int64_t *)a, y = *(int64_t *)b;
                *x = latest ? (y > *x ? y : *x) : *x + y;
            }
        }
        if (o->n_owned_partitions == 0)
            continue;
        m->owned_partitions = xrealloc(m->owned_partitions,
                                       (m->n_owned_partitions + o->n_owned_partitions) *
                                           sizeof *m->owned_partitions);
        memcpy(m->owned_partitions + m->n_owned_partitions, o->owned_partitions,
               o->n_owned_partitions * sizeof *o->owned_partitions);
        m->n_owned_partitions += o->n_owned_partitions;
    }
    if (m->n_owned_partitions > 1)
        qsort(m->owned_partitions, m->n_owned_partitions, sizeof *m->owned_partitions,
              s_cmp_u32);
    /* The instances, in name order of answers, as one line. */
    size_t cap = 64;
    for (size_t j = 0; j < gt->n; j++)
        cap += strlen(gt->r[j]->stats->instance) + 2;
    char *names = xmalloc(cap);
    names[0] = '\0';
    for (size_t j = 0; j < gt->n; j++)
        snprintf(names + strlen(names), cap - strlen(names), "%s%s", j ? ", " : "",
                 gt->r[j]->stats->instance);
    char *state = xmalloc(cap + 64);
    snprintf(state, cap + 64, "%zu instance%s answered: %s", gt->n, gt->n == 1 ? "" : "s",
             names);
    free(names);
    if (m->nats != protobuf_c_empty_string)
        free(m->nats);
    m->nats = state;
    Funnel__V1__QueryReply *r = gt->r[0];
    gt->r[0] = gt->r[--gt->n];
    return r;
}

/* The merged counters (and marks) of every CountersReply and the
 * definition they were counted under. Returns the definition (caller
 * destroys it) or NULL (printed). */
static defn_t *s_merge_counters(s_gather_t *gt, merge_table_t *t, int64_t *now_ms)
{
    const Funnel__V1__CountersReply *c0 = gt->r[0]->counters;
    for (size_t j = 1; j < gt->n; j++) {
        const Funnel__V1__CountersReply *c = gt->r[j]->counters;
        if (strcmp(c->definition_hash, c0->definition_hash) != 0) {
            ctl_error("instances %s and %s run different definitions (%s %s, %s %s): their "
                      "counters cannot be merged", c0->instance, c->instance,
                      c0->definition_name, c0->definition_hash, c->definition_name,
                      c->definition_hash);
            return NULL;
        }
    }
    char err[512];
    defn_t *d = c0->definition_yaml[0]
                    ? defn_load_buffer(c0->definition_yaml, strlen(c0->definition_yaml),
                                       c0->definition_name, err, sizeof err)
                    : defn_load_default();
    if (d == NULL) {
        ctl_error("the cluster's definition: %s", err);
        return NULL;
    }
    *now_ms = 0;
    for (size_t j = 0; j < gt->n; j++) {
        const Funnel__V1__CountersReply *c = gt->r[j]->counters;
        for (size_t i = 0; i < c->n_counters; i++)
            merge_add(t, c->counters[i]->key, c->counters[i]->value);
        for (size_t i = 0; i < c->n_marks; i++)
            merge_add_mark(t, c->marks[i]->set, c->marks[i]->lead_id, c->marks[i]->since_ms);
        if (c->now_ms > *now_ms)
            *now_ms = c->now_ms;
    }
    merge_settle(t);
    merge_judge(t, d);
    return d;
}

/* r (allocated in an arena) packed and unpacked again: a reply the
 * commands free as any other. */
static Funnel__V1__QueryReply *s_own(const Funnel__V1__QueryReply *r)
{
    size_t len = funnel__v1__query_reply__get_packed_size(r);
    uint8_t *buf = xmalloc(len ? len : 1);
    funnel__v1__query_reply__pack(r, buf);
    Funnel__V1__QueryReply *o = funnel__v1__query_reply__unpack(NULL, len, buf);
    free(buf);
    return o;
}

/* funnel, friction or quality from the merged counters. */
static int s_report(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
                    Funnel__V1__QueryReply__ReplyCase want, Funnel__V1__QueryReply **out)
{
    Funnel__V1__CountersQuery cq;
    Funnel__V1__QueryRequest creq;
    s_gather_t gt;
    merge_table_t t = {0};
    arena_t *a = NULL;
    defn_t *d = NULL;
    int64_t now_ms = 0;
    const char *err = NULL;
    report_funnel_t *rf = NULL;
    report_friction_t *rfr = NULL;
    report_quality_t *rq = NULL;
    Funnel__V1__QueryReply r;
    int rc;

    funnel__v1__counters_query__init(&cq);
    funnel__v1__query_request__init(&creq);
    cq.marks = want == FUNNEL__V1__QUERY_REPLY__REPLY_FRICTION;
    creq.query_case = FUNNEL__V1__QUERY_REQUEST__QUERY_COUNTERS;
    creq.counters = &cq;
    rc = s_gather(g, &creq, FUNNEL__V1__QUERY_REPLY__REPLY_COUNTERS, &gt);
    if (rc != CTL_EXIT_OK)
        return rc;
    rc = CTL_EXIT_USAGE;
    if ((d = s_merge_counters(&gt, &t, &now_ms)) == NULL)
        goto out;
    report_reader_t rd;
    merge_reader(&t, &rd);
    a = arena_new(0);
    funnel__v1__query_reply__init(&r);
    if (want == FUNNEL__V1__QUERY_REPLY__REPLY_FUNNEL) {
        const Funnel__V1__FunnelQuery *fq = req->funnel;
        if (report_funnel(d, &rd, fq ? fq->by : NULL, fq ? fq->persona : NULL, &rf, &err) < 0)
            goto fail;
        r.funnel = query_encode_funnel(rf, a);
    } else if (want == FUNNEL__V1__QUERY_REPLY__REPLY_FRICTION) {
        const Funnel__V1__FrictionQuery *fq = req->friction;
        report_friction_query_t q = {0};
        if (fq) {
            q.by = fq->by;
            q.stage = fq->stage;
            q.leads = fq->leads;
            q.limit = fq->limit;
        }
        if (report_friction(d, &rd, &q, &rfr, &err) < 0)
            goto fail;
        r.friction = query_encode_friction(rfr, a);
    } else {
        const Funnel__V1__QualityQuery *qq = req->quality;
        if (report_quality(d, &rd, qq ? qq->by : NULL, now_ms, &rq, &err) < 0)
            goto fail;
        r.quality = query_quality_encode(rq, a);
        r.quality->definition = d->name;
    }
    r.reply_case = want;
    *out = s_own(&r);
    rc = CTL_EXIT_OK;
    goto out;
fail:
    ctl_error("the cluster's counters: %s", err);
out:
    report_funnel_free(&rf);
    report_friction_free(&rfr);
    report_quality_free(&rq);
    arena_destroy(&a);
    defn_destroy(&d);
    merge_free(&t);
    s_gather_free(&gt);
    return rc;
}

/* lead ID: asked of the owner of its partition. */
static int s_lead(ctl_opts_t *g, Funnel__V1__QueryRequest *req, Funnel__V1__QueryReply **out)
{
    double timeout = ctl_timeout(g, CTL_TIMEOUT_S);
    unsigned np = g->cluster_partitions > 0 ? (unsigned)g->cluster_partitions
                                            : ctl_global_defaults.cfg.cluster_partitions;
    unsigned p = ctl_nats_partition(req->lead->lead_id, np);
    char subject[48];
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsMsg *m = NULL;
    char id[33];
    int rc = CTL_EXIT_USAGE;

    snprintf(subject, sizeof subject, "funnel.query.%u", p);
    if (ctl_nats_connect(g->cfg.nats, timeout, &nc, &js) != 0)
        return CTL_EXIT_USAGE;
    ctl_random_hex(id, 16);
    req->request_id = id;
    size_t len = funnel__v1__query_request__get_packed_size(req);
    uint8_t *buf = xmalloc(len ? len : 1);
    funnel__v1__query_request__pack(req, buf);
    req->request_id = (char *)protobuf_c_empty_string;
    natsStatus s = natsConnection_Request(&m, nc, subject, buf, (int)len,
                                          (int64_t)(timeout * 1000));
    free(buf);
    if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS) {
        ctl_error("no funneld answered on %s within %g s: no instance owns partition %u of "
                  "%u now (or --cluster-partitions is not the cluster's)", subject, timeout, p,
                  np);
        goto out;
    }
    if (s != NATS_OK) {
        ctl_error("NATS at %s: %s", g->cfg.nats, nats_GetLastError(NULL));
        goto out;
    }
    Funnel__V1__QueryReply *r = funnel__v1__query_reply__unpack(
        NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
    if (r == NULL) {
        ctl_error("undecodable answer on %s", subject);
        goto out;
    }
    if (r->error[0]) {
        ctl_error("funneld owning partition %u: %s", p, r->error);
        funnel__v1__query_reply__free_unpacked(r, NULL);
        goto out;
    }
    *out = r;
    rc = CTL_EXIT_OK;
out:
    natsMsg_Destroy(m);
    ctl_nats_close(&nc, &js);
    return rc;
}

/* The definition a query names (a shadow draft): not across a cluster. */
static bool s_names_definition(const Funnel__V1__QueryRequest *req)
{
    switch (req->query_case) {
    case FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD:
        return req->lead && req->lead->definition[0];
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FUNNEL:
        return req->funnel && req->funnel->definition[0];
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FRICTION:
        return req->friction && req->friction->definition[0];
    case FUNNEL__V1__QUERY_REQUEST__QUERY_QUALITY:
        return req->quality && (req->quality->definition[0] || req->quality->draft[0]);
    default:
        return false;
    }
}

int ctl_nats_query(ctl_opts_t *g, Funnel__V1__QueryRequest *req,
                   Funnel__V1__QueryReply__ReplyCase want, const char *what,
                   Funnel__V1__QueryReply **reply_out)
{
    *reply_out = NULL;
    if (s_names_definition(req)) {
        ctl_error("%s: --definition and --draft ask one funneld, not a cluster: not with "
                  "--nats", what);
        return CTL_EXIT_USAGE;
    }
    switch (req->query_case) {
    case FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD:
        return s_lead(g, req, reply_out);
    case FUNNEL__V1__QUERY_REQUEST__QUERY_STATS: {
        s_gather_t gt;
        int rc = s_gather(g, req, want, &gt);
        if (rc == CTL_EXIT_OK)
            *reply_out = s_merge_stats(&gt);
        s_gather_free(&gt);
        return rc;
    }
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FUNNEL:
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FRICTION:
    case FUNNEL__V1__QUERY_REQUEST__QUERY_QUALITY:
        return s_report(g, req, want, reply_out);
    default:
        ctl_error("%s: not answered across a cluster (--nats): ask one funneld (--query)",
                  what);
        return CTL_EXIT_USAGE;
    }
}
