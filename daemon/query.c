/* query.c: see query.h. */
#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funnel.pb-c.h"
#include "ingest.h"
#include "log.h"
#include "xalloc.h"

#define S_TIMELINE_DEFAULT 100
#define S_TIMELINE_MAX 10000

typedef struct {
    Funnel__V1__TimelineEntry *entries;
    Funnel__V1__TimelineEntry **ptrs;
    Funnel__V1__Event **events;
    size_t n;
} s_timeline_t;

static void s_on_timeline_event(uint64_t seq, const void *raw, size_t len,
                                void *arg)
{
    s_timeline_t *t = arg;
    Funnel__V1__Event *ev = funnel__v1__event__unpack(NULL, len, raw);
    if (ev == NULL)
        return;
    Funnel__V1__TimelineEntry *e = &t->entries[t->n];
    funnel__v1__timeline_entry__init(e);
    e->seq = seq;
    e->event = ev;
    t->events[t->n] = ev;
    t->ptrs[t->n] = e;
    t->n++;
}

static void s_reply(bus_sock_t *sock, bus_msg_t *msg, const Funnel__V1__QueryReply *r)
{
    size_t len = funnel__v1__query_reply__get_packed_size(r);
    uint8_t *buf = xmalloc(len);
    funnel__v1__query_reply__pack(r, buf);

    const void *parts[BUS_PARTS_MAX];
    size_t lens[BUS_PARTS_MAX];
    int n = 0;
    for (int i = 0; i + 1 < msg->n; i++) {
        parts[n] = zmq_msg_data(&msg->part[i]);
        lens[n++] = zmq_msg_size(&msg->part[i]);
    }
    parts[n] = buf;
    lens[n++] = len;
    if (bus_send(sock, parts, lens, n) == -1)
        log_debug("[query] reply not sent (client gone?)");
    free(buf);
}

static void s_lead(query_t *q, const Funnel__V1__LeadQuery *lq,
                   bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    Funnel__V1__LeadReply lr;
    Funnel__V1__Lead *lead = NULL;
    s_timeline_t t = {0};
    const void *buf;
    size_t len;

    funnel__v1__lead_reply__init(&lr);
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_LEAD;
    r->lead = &lr;

    size_t limit = lq->timeline_limit ? lq->timeline_limit : S_TIMELINE_DEFAULT;
    if (limit > S_TIMELINE_MAX)
        limit = S_TIMELINE_MAX;
    if (lq->lead_id == NULL || lq->lead_id[0] == '\0') {
        r->error = (char *)"lead query without lead_id";
        r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
        goto send;
    }
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
        goto send;
    }
    int found = store_read_lead(q->store, lq->lead_id, &buf, &len);
    if (found == 1) {
        lead = funnel__v1__lead__unpack(NULL, len, buf);
        if (lead) {
            lr.found = true;
            lr.lead = lead;
            t.entries = xcalloc(limit, sizeof *t.entries);
            t.ptrs = xcalloc(limit, sizeof *t.ptrs);
            t.events = xcalloc(limit, sizeof *t.events);
            store_read_timeline(q->store, lq->lead_id, limit, s_on_timeline_event, &t);
            lr.n_timeline = t.n;
            lr.timeline = t.ptrs;
        }
    } else if (found < 0) {
        r->error = (char *)"storage error";
    }
    store_read_end(q->store);

send:
    s_reply(sock, msg, r);
    for (size_t i = 0; i < t.n; i++)
        funnel__v1__event__free_unpacked(t.events[i], NULL);
    free(t.entries);
    free(t.ptrs);
    free(t.events);
    if (lead)
        funnel__v1__lead__free_unpacked(lead, NULL);
}

static uint64_t s_counter(query_t *q, const char *prefix, const char *kind,
                          const char *stage)
{
    char key[256];
    if (stage)
        snprintf(key, sizeof key, "%s%s/%s", prefix, kind, stage);
    else
        snprintf(key, sizeof key, "%s%s", prefix, kind);
    int64_t v = store_read_counter(q->store, key);
    return v > 0 ? (uint64_t)v : 0;
}

/* The counts of one funnel (whole, or one group): the counters whose keys
 * begin with prefix ("" or "by/persona/<p>/"). */
typedef struct {
    char *name;
    uint64_t leads;
    Funnel__V1__StageCount sc[DEFN_STAGES_MAX];
    Funnel__V1__StageCount *scp[DEFN_STAGES_MAX];
    Funnel__V1__HandoffCounts hc;
    Funnel__V1__FunnelGroup group;
} s_counts_t;

static void s_read_counts(query_t *q, const defn_t *d, const char *prefix,
                          s_counts_t *c)
{
    c->leads = s_counter(q, prefix, "leads", NULL);
    for (size_t i = 0; i < d->n_stages && i < DEFN_STAGES_MAX; i++) {
        Funnel__V1__StageCount *sc = &c->sc[i];
        funnel__v1__stage_count__init(sc);
        sc->stage = d->stages[i].name;
        sc->now = s_counter(q, prefix, "now", d->stages[i].name);
        sc->entered = s_counter(q, prefix, "entered", d->stages[i].name);
        sc->advanced = s_counter(q, prefix, "advanced", d->stages[i].name);
        sc->terminal = d->stages[i].terminal;
        c->scp[i] = sc;
    }
    funnel__v1__handoff_counts__init(&c->hc);
    c->hc.sent = s_counter(q, prefix, "handoffs", NULL);
    c->hc.accepted = s_counter(q, prefix, "handoffs", "accepted");
    c->hc.rejected = s_counter(q, prefix, "handoffs", "rejected");
}

/* The distinct group names under a "by/<dim>/" prefix. */
typedef struct {
    size_t plen;
    char **names;
    size_t n, cap;
} s_groups_t;

static void s_on_group_counter(const char *key, int64_t value, void *arg)
{
    s_groups_t *g = arg;
    const char *name = key + g->plen;
    const char *slash = strchr(name, '/');
    size_t len = slash ? (size_t)(slash - name) : strlen(name);
    if (g->n > 0 && strlen(g->names[g->n - 1]) == len &&
        memcmp(g->names[g->n - 1], name, len) == 0)
        return;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->names = xrealloc(g->names, g->cap * sizeof *g->names);
    }
    char *copy = xmalloc(len + 1);
    memcpy(copy, name, len);
    copy[len] = '\0';
    g->names[g->n++] = copy;
}

static void s_funnel(query_t *q, const Funnel__V1__FunnelQuery *fq,
                     bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    const defn_t *d = *q->defn_p;
    Funnel__V1__FunnelReply fr;
    s_counts_t all;
    s_groups_t g = {0};
    s_counts_t *gc = NULL;
    Funnel__V1__FunnelGroup **gp = NULL;
    size_t n_groups = 0;
    char prefix[160] = "";
    const char *by = fq && fq->by ? fq->by : "";
    const char *persona = fq && fq->persona ? fq->persona : "";

    funnel__v1__funnel_reply__init(&fr);
    if (by[0] && strcmp(by, "persona") != 0 && strcmp(by, "source") != 0 &&
        strcmp(by, "cohort") != 0) {
        r->error = (char *)"unknown breakdown: by wants persona, source or cohort";
        goto send;
    }
    if (persona[0] && by[0] && strcmp(by, "persona") != 0) {
        r->error = (char *)"a persona filter combines only with a breakdown by persona";
        goto send;
    }
    if (strlen(persona) > DEFN_NAME_MAX || strchr(persona, '/')) {
        r->error = (char *)"no such persona";
        goto send;
    }
    if (persona[0])
        snprintf(prefix, sizeof prefix, "by/persona/%s/", persona);
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        goto send;
    }
    s_read_counts(q, d, prefix, &all);
    if (by[0]) {
        char gprefix[64];
        snprintf(gprefix, sizeof gprefix, "by/%s/", by);
        g.plen = strlen(gprefix);
        if (persona[0]) {
            g.names = xcalloc(1, sizeof *g.names);
            g.names[0] = xstrdup(persona);
            g.n = 1;
        } else if (store_read_counters(q->store, gprefix, s_on_group_counter,
                                       &g) < 0) {
            store_read_end(q->store);
            r->error = (char *)"storage error";
            goto send;
        }
        gc = xcalloc(g.n ? g.n : 1, sizeof *gc);
        gp = xcalloc(g.n ? g.n : 1, sizeof *gp);
        for (size_t i = 0; i < g.n; i++) {
            char gpre[256];
            s_counts_t *c = &gc[n_groups];
            snprintf(gpre, sizeof gpre, "%s%s/", gprefix, g.names[i]);
            s_read_counts(q, d, gpre, c);
            if (c->leads == 0)
                continue;       /* every lead moved to another persona */
            funnel__v1__funnel_group__init(&c->group);
            c->group.name = g.names[i];
            c->group.leads = c->leads;
            c->group.n_stages = d->n_stages < DEFN_STAGES_MAX ? d->n_stages
                                                             : DEFN_STAGES_MAX;
            c->group.stages = c->scp;
            c->group.handoffs = &c->hc;
            gp[n_groups++] = &c->group;
        }
    }
    store_read_end(q->store);

    fr.leads = all.leads;
    fr.n_stages = d->n_stages < DEFN_STAGES_MAX ? d->n_stages : DEFN_STAGES_MAX;
    fr.stages = all.scp;
    fr.handoffs = &all.hc;
    fr.by = (char *)by;
    fr.persona = (char *)persona;
    fr.n_groups = n_groups;
    fr.groups = gp;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_FUNNEL;
    r->funnel = &fr;
send:
    s_reply(sock, msg, r);
    for (size_t i = 0; i < g.n; i++)
        free(g.names[i]);
    free(g.names);
    free(gc);
    free(gp);
}

static void s_stats(query_t *q, bus_sock_t *sock, bus_msg_t *msg,
                    Funnel__V1__QueryReply *r)
{
    const defn_t *d = *q->defn_p;
    const store_stats_t *st = store_stats(q->store);
    Funnel__V1__Stats s;
    char defn[160];

    funnel__v1__stats__init(&s);
    s.received = st->received;
    s.applied = st->applied;
    s.duplicates = st->duplicates;
    s.rejected = st->rejected;
    s.commits = st->commits;
    s.alerts = st->alerts;
    s.gaps = st->gaps;
    s.stream_messages = st->stream_messages;
    s.uptime_ms = (uint64_t)(ingest_wall_ms() - q->started_ms);
    s.last_seq = store_last_seq(q->store);
    if (store_read_begin(q->store) == STORE_OK) {
        int64_t leads = store_read_counter(q->store, "leads");
        s.leads = leads > 0 ? (uint64_t)leads : 0;
        store_read_end(q->store);
    }
    snprintf(defn, sizeof defn, "%s (%s, %s)", d->name, d->path, d->hash);
    s.definition = defn;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_STATS;
    r->stats = &s;
    s_reply(sock, msg, r);
}

void query_on_request(bus_sock_t *sock, bus_msg_t *msg, void *arg)
{
    query_t *q = arg;
    Funnel__V1__QueryReply r;

    if (msg->n < 2 || msg->truncated)
        return;
    funnel__v1__query_reply__init(&r);
    zmq_msg_t *payload = &msg->part[msg->n - 1];
    Funnel__V1__QueryRequest *req = funnel__v1__query_request__unpack(
        NULL, zmq_msg_size(payload), zmq_msg_data(payload));
    if (req == NULL) {
        r.error = (char *)"undecodable QueryRequest";
        s_reply(sock, msg, &r);
        return;
    }
    r.request_id = req->request_id;
    switch (req->query_case) {
    case FUNNEL__V1__QUERY_REQUEST__QUERY_LEAD:
        s_lead(q, req->lead, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_FUNNEL:
        s_funnel(q, req->funnel, sock, msg, &r);
        break;
    case FUNNEL__V1__QUERY_REQUEST__QUERY_STATS:
        s_stats(q, sock, msg, &r);
        break;
    default:
        r.error = (char *)"QueryRequest names no query (lead, funnel or stats)";
        s_reply(sock, msg, &r);
        break;
    }
    funnel__v1__query_request__free_unpacked(req, NULL);
}
