/* metrics.c: see metrics.h. */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys.h"
#include "xalloc.h"

#define S_BUCKETS_MAX 16
#define S_TOPICS_MAX 48
#define S_ALIVE_MS 30000

typedef struct {
    const char *name;
    const char *help;
    double scale;                       /* value unit -> exposed unit */
    size_t n;
    uint64_t bound[S_BUCKETS_MAX];      /* upper bounds, in value units */
} s_hist_def_t;

#define S_MS 1000000ull
static const s_hist_def_t s_hist_defs[METRICS_HIST_N] = {
    [METRICS_COMMIT_NS] = {"funneld_group_commit_seconds",
                           "Durable commit of a group of events (log fsync, then the "
                           "state), handlers excluded.",
                           1e-9, 14,
                           {S_MS / 2, S_MS, 5 * S_MS / 2, 5 * S_MS, 10 * S_MS, 25 * S_MS,
                            50 * S_MS, 100 * S_MS, 250 * S_MS, 500 * S_MS, 1000 * S_MS,
                            2500 * S_MS, 5000 * S_MS, 10000 * S_MS}},
    [METRICS_ACK_NS] = {"funneld_ack_latency_seconds",
                        "A batch on the ingest socket, from its arrival to its Ack "
                        "(sent once its group is durable).",
                        1e-9, 14,
                        {S_MS / 2, S_MS, 5 * S_MS / 2, 5 * S_MS, 10 * S_MS, 25 * S_MS,
                         50 * S_MS, 100 * S_MS, 250 * S_MS, 500 * S_MS, 1000 * S_MS,
                         2500 * S_MS, 5000 * S_MS, 10000 * S_MS}},
    [METRICS_GROUP_EVENTS] = {"funneld_group_events",
                              "Events received in a group committed from intake.", 1, 10,
                              {1, 10, 50, 100, 500, 1000, 2000, 4000, 8000, 16000}},
};

typedef struct {
    atomic_uint_fast64_t bucket[S_BUCKETS_MAX + 1]; /* last: above every bound */
    atomic_uint_fast64_t sum;
} s_hist_t;

typedef struct {
    char topic[48];
    atomic_uint_fast64_t sent;
    atomic_uint_fast64_t failed;
} s_topic_t;

struct metrics {
    s_hist_t hist[METRICS_HIST_N];
    atomic_uint_fast64_t rejected[METRICS_REJ_N];
    atomic_uint_fast64_t batches[2];      /* ingest, stream */
    atomic_uint_fast64_t unwanted;
    atomic_uint_fast64_t alert_queries;   /* by the query thread */
    /* Written by the loop thread only: a slot's topic is complete before
     * n_topics (release) counts it. */
    s_topic_t topics[S_TOPICS_MAX];
    atomic_size_t n_topics;
    atomic_uint_fast64_t other_sent, other_failed;  /* beyond the table */

    atomic_int phase;
    atomic_int_fast64_t heartbeat_ms;     /* monotonic */
    atomic_bool failing;
    pthread_mutex_t lock;                 /* fail_reason */
    char fail_reason[256];
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

metrics_t *metrics_new(void)
{
    metrics_t *self = xcalloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    atomic_store(&self->heartbeat_ms, s_mono_ms());
    atomic_store(&self->phase, METRICS_STARTING);
    return self;
}

void metrics_destroy(metrics_t **self_p)
{
    metrics_t *self = *self_p;
    if (self == NULL)
        return;
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* -- recording (loop thread) ----------------------------------------------- */

#define S_ADD(a, v) atomic_fetch_add_explicit(&(a), (v), memory_order_relaxed)
#define S_GET(a) atomic_load_explicit(&(a), memory_order_relaxed)

void metrics_observe(metrics_t *self, metrics_hist_t h, uint64_t value)
{
    if (self == NULL)
        return;
    const s_hist_def_t *d = &s_hist_defs[h];
    size_t b = 0;
    while (b < d->n && value > d->bound[b])
        b++;
    S_ADD(self->hist[h].bucket[b], 1);
    S_ADD(self->hist[h].sum, value);
}

void metrics_reject(metrics_t *self, int why, uint64_t n)
{
    if (self && why >= 0 && why < METRICS_REJ_N && n > 0)
        S_ADD(self->rejected[why], n);
}

void metrics_batch(metrics_t *self, bool stream)
{
    if (self)
        S_ADD(self->batches[stream ? 1 : 0], 1);
}

void metrics_alert(metrics_t *self, const char *topic, bool sent)
{
    if (self == NULL)
        return;
    size_t n = atomic_load_explicit(&self->n_topics, memory_order_relaxed);
    size_t i = 0;
    while (i < n && strcmp(self->topics[i].topic, topic) != 0)
        i++;
    if (i == n && n < S_TOPICS_MAX && strlen(topic) < sizeof self->topics[n].topic) {
        strcpy(self->topics[n].topic, topic);
        atomic_store_explicit(&self->n_topics, n + 1, memory_order_release);
    }
    if (i < S_TOPICS_MAX && i <= n && strcmp(self->topics[i].topic, topic) == 0) {
        if (sent)
            S_ADD(self->topics[i].sent, 1);
        else
            S_ADD(self->topics[i].failed, 1);
    } else if (sent) {
        S_ADD(self->other_sent, 1);
    } else {
        S_ADD(self->other_failed, 1);
    }
}

void metrics_alert_unwanted(metrics_t *self)
{
    if (self)
        S_ADD(self->unwanted, 1);
}

void metrics_alert_query(metrics_t *self)
{
    if (self)
        S_ADD(self->alert_queries, 1);
}

void metrics_heartbeat(metrics_t *self)
{
    if (self)
        atomic_store_explicit(&self->heartbeat_ms, s_mono_ms(), memory_order_relaxed);
}

void metrics_set_phase(metrics_t *self, metrics_phase_t phase)
{
    if (self)
        atomic_store(&self->phase, (int)phase);
}

void metrics_set_failing(metrics_t *self, const char *reason)
{
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->lock);
    snprintf(self->fail_reason, sizeof self->fail_reason, "%s", reason ? reason : "");
    atomic_store(&self->failing, reason != NULL);
    pthread_mutex_unlock(&self->lock);
}

/* -- reading (any thread) ---------------------------------------------------- */

int metrics_alive(metrics_t *self, char *why, size_t cap)
{
    int64_t age = s_mono_ms() - atomic_load(&self->heartbeat_ms);
    if (age > S_ALIVE_MS) {
        snprintf(why, cap, "the loop thread has not run for %lld s", (long long)(age / 1000));
        return 0;
    }
    return 1;
}

int metrics_ready(metrics_t *self, char *why, size_t cap)
{
    switch (atomic_load(&self->phase)) {
    case METRICS_STARTING:
        snprintf(why, cap, "recovering: bringing the state up to date with the event log");
        return 0;
    case METRICS_STOPPING:
        snprintf(why, cap, "stopping");
        return 0;
    default:
        break;
    }
    if (atomic_load(&self->failing)) {
        pthread_mutex_lock(&self->lock);
        snprintf(why, cap, "intake paused, the store cannot commit: %s", self->fail_reason);
        pthread_mutex_unlock(&self->lock);
        return 0;
    }
    return 1;
}

uint64_t metrics_alert_queries(metrics_t *self)
{
    return self ? S_GET(self->alert_queries) : 0;
}

/* -- the exposition -------------------------------------------------------- */

static void s_family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the text format wants (\\, \", \n). */
static void s_value(FILE *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', out), fputc(*v, out);
        else if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
}

static void s_sample1(FILE *out, const char *name, const char *label, const char *value,
                      uint64_t v)
{
    fprintf(out, "%s{%s=\"", name, label);
    s_value(out, value);
    fprintf(out, "\"} %llu\n", (unsigned long long)v);
}

static void s_plain(FILE *out, const char *name, const char *type, const char *help,
                    uint64_t v)
{
    s_family(out, name, type, help);
    fprintf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void s_histogram(FILE *out, const s_hist_def_t *d, s_hist_t *h)
{
    uint64_t cum = 0;
    s_family(out, d->name, "histogram", d->help);
    for (size_t b = 0; b <= d->n; b++) {
        cum += S_GET(h->bucket[b]);
        if (b < d->n)
            fprintf(out, "%s_bucket{le=\"%g\"} %llu\n", d->name, (double)d->bound[b] * d->scale,
                    (unsigned long long)cum);
        else
            fprintf(out, "%s_bucket{le=\"+Inf\"} %llu\n", d->name, (unsigned long long)cum);
    }
    fprintf(out, "%s_sum %.9g\n%s_count %llu\n", d->name, (double)S_GET(h->sum) * d->scale,
            d->name, (unsigned long long)cum);
}

static uint64_t s_counter(store_t *store, const char *prefix, keys_counter_t c,
                          const char *stage)
{
    char key[KEYS_KEY_MAX];
    int64_t v = store_read_counter(store, keys_counter(key, sizeof key, prefix, c, stage));
    return v > 0 ? (uint64_t)v : 0;
}

/* One family with a sample per stage of the definition. */
static void s_per_stage(FILE *out, const metrics_src_t *src, const char *name,
                        const char *type, const char *help, keys_counter_t c)
{
    s_family(out, name, type, help);
    for (size_t i = 0; i < src->defn->n_stages; i++)
        s_sample1(out, name, "stage", src->defn->stages[i].name,
                  s_counter(src->store, "", c, src->defn->stages[i].name));
}

/* The families read from the state in a snapshot. Returns 0 or -1. */
static int s_render_state(const metrics_src_t *src, FILE *out)
{
    const defn_t *d = src->defn;
    if (store_read_begin(src->store) != STORE_OK)
        return -1;
    s_plain(out, "funneld_leads", "gauge", "Leads funneld knows.",
            s_counter(src->store, "", KEYS_LEADS, NULL));
    s_per_stage(out, src, "funneld_stage_leads", "gauge", "Leads in each stage now.",
                KEYS_NOW);
    s_per_stage(out, src, "funneld_stage_entered_total", "counter",
                "Leads that ever entered each stage.", KEYS_ENTERED);
    s_per_stage(out, src, "funneld_stage_advanced_total", "counter",
                "Leads that entered each stage and moved on to a later one.", KEYS_ADVANCED);

    s_family(out, "funneld_handoffs_total", "counter",
             "Handoffs to sales: sent, accepted and rejected.");
    s_sample1(out, "funneld_handoffs_total", "result", "sent",
              s_counter(src->store, "", KEYS_HANDOFFS, NULL));
    s_sample1(out, "funneld_handoffs_total", "result", "accepted",
              s_counter(src->store, "", KEYS_HANDOFFS_ACCEPTED, NULL));
    s_sample1(out, "funneld_handoffs_total", "result", "rejected",
              s_counter(src->store, "", KEYS_HANDOFFS_REJECTED, NULL));
    s_plain(out, "funneld_handoffs_past_sla", "gauge",
            "Handoffs waiting for sales' answer past the SLA now.",
            s_counter(src->store, "", KEYS_SLA_WAITING, NULL));

    /* Friction points by kind: what the friction report ranks. */
    static const struct {
        const char *kind;
        keys_counter_t c;
    } kinds[] = {{"stall", KEYS_STALLS},
                 {"regression", KEYS_REGRESSIONS},
                 {"handoff_rejected", KEYS_REJECTIONS}};
    const char *fname = "funneld_friction_total";
    s_family(out, fname, "counter",
             "Friction flagged, by kind and stage: stays that stalled, moves back out "
             "of a stage, handoffs rejected while in it, and handoffs answered past "
             "the SLA (stage empty).");
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t i = 0; i < d->n_stages; i++) {
            fprintf(out, "%s{kind=\"%s\",stage=\"", fname, kinds[k].kind);
            s_value(out, d->stages[i].name);
            fprintf(out, "\"} %llu\n", (unsigned long long)s_counter(
                                           src->store, "", kinds[k].c, d->stages[i].name));
        }
    fprintf(out, "%s{kind=\"handoff_sla\",stage=\"\"} %llu\n", fname,
            (unsigned long long)s_counter(src->store, "", KEYS_SLA_BREACHES, NULL));
    s_per_stage(out, src, "funneld_stage_stalled_leads", "gauge",
                "Leads stalled in each stage now (past its max_dwell).", KEYS_STALLED);
    s_family(out, "funneld_stage_below_target", "gauge",
             "1 while the stage's conversion over the rolling window is below its "
             "conversion_target.");
    for (size_t i = 0; i < d->n_stages; i++) {
        char key[KEYS_KEY_MAX];
        int64_t v = store_read_counter(src->store,
                                       keys_conv_below(key, sizeof key, d->stages[i].name));
        s_sample1(out, "funneld_stage_below_target", "stage", d->stages[i].name, v > 0);
    }

    long pending = store_read_deadlines_pending(src->store);
    store_read_end(src->store);
    if (pending < 0)
        return -1;
    s_plain(out, "funneld_deadlines_pending", "gauge",
            "Deadlines pending (stalls and handoff SLAs).", (uint64_t)pending);
    return 0;
}

int metrics_render(metrics_t *self, const metrics_src_t *src, FILE *out)
{
    store_stats_t st;
    uint64_t last_seq;
    store_stats_read(src->store, &st, &last_seq);
    char why[256];
    int ready = metrics_ready(self, why, sizeof why);

    s_family(out, "funneld_build_info", "gauge",
             "funneld's version, the definition in use and whether CURVE is on; always 1.");
    fprintf(out, "funneld_build_info{version=\"%s\",definition=\"", FUNNELD_VERSION);
    s_value(out, src->defn->name);
    fprintf(out, "\",definition_hash=\"%s\",curve=\"%s\"} 1\n", src->defn->hash,
            src->auth ? "on" : "off");
    s_plain(out, "funneld_start_time_seconds", "gauge",
            "When the process started, seconds since the Unix epoch.",
            (uint64_t)(src->started_ms / 1000));
    s_plain(out, "funneld_ready", "gauge",
            "1 when funneld takes events (as /readyz says), else 0.", (uint64_t)ready);
    s_plain(out, "funneld_intake_paused", "gauge",
            "1 while intake is paused because the store cannot commit.",
            (uint64_t)atomic_load(&self->failing));
    s_plain(out, "funneld_state_writer_held", "gauge",
            "1 while a checkpoint holds a partition's writer to copy its state (a few "
            "seconds at most; events are acknowledged meanwhile, queries wait for them).",
            (uint64_t)store_parts_held(src->store));

    /* The persisted counters, as `funnelctl stats` shows them. */
    s_plain(out, "funneld_events_received_total", "counter",
            "Events received on ingest and streams, rejected ones included.", st.received);
    s_plain(out, "funneld_events_applied_total", "counter",
            "Events accepted and applied to leads.", st.applied);
    s_plain(out, "funneld_events_duplicate_total", "counter",
            "Events recognised as duplicates (by lead and event id), not applied again.",
            st.duplicates);
    s_plain(out, "funneld_events_rejected_total", "counter",
            "Events rejected (validation, handlers) and undecodable messages.", st.rejected);
    s_family(out, "funneld_events_rejected_by_reason_total", "counter",
             "Rejections since the process started, by reason.");
    for (int r = 0; r < METRICS_REJ_N; r++) {
        static const char *const more[] = {
            [METRICS_REJ_UNDECODABLE - VALIDATE_WHY_N] = "undecodable",
            [METRICS_REJ_BATCH_TOO_LARGE - VALIDATE_WHY_N] = "batch_too_large",
            [METRICS_REJ_FRAMES - VALIDATE_WHY_N] = "malformed_message",
            [METRICS_REJ_HANDLERS - VALIDATE_WHY_N] = "handlers",
            [METRICS_REJ_TRANSACTION - VALIDATE_WHY_N] = "transaction_too_large",
        };
        s_sample1(out, "funneld_events_rejected_by_reason_total", "reason",
                  r < VALIDATE_WHY_N ? validate_why_name((validate_why_t)r)
                                     : more[r - VALIDATE_WHY_N],
                  S_GET(self->rejected[r]));
    }
    s_family(out, "funneld_batches_total", "counter",
             "EventBatch messages received since the process started, by origin.");
    s_sample1(out, "funneld_batches_total", "origin", "ingest", S_GET(self->batches[0]));
    s_sample1(out, "funneld_batches_total", "origin", "stream", S_GET(self->batches[1]));
    s_plain(out, "funneld_commits_total", "counter",
            "Group commits (durable write transactions).", st.commits);
    for (int h = 0; h < METRICS_HIST_N; h++)
        s_histogram(out, &s_hist_defs[h], &self->hist[h]);

    s_plain(out, "funneld_alerts_raised_total", "counter",
            "Alerts raised (published only when some subscriber wants the topic).",
            st.alerts);
    s_family(out, "funneld_alerts_published_total", "counter",
             "Alerts handed to the alerts socket since the process started, by topic.");
    size_t nt = atomic_load_explicit(&self->n_topics, memory_order_acquire);
    for (size_t i = 0; i < nt; i++)
        s_sample1(out, "funneld_alerts_published_total", "topic", self->topics[i].topic,
                  S_GET(self->topics[i].sent));
    if (S_GET(self->other_sent))
        s_sample1(out, "funneld_alerts_published_total", "topic", "other",
                  S_GET(self->other_sent));
    uint64_t failed = S_GET(self->other_failed);
    for (size_t i = 0; i < nt; i++)
        failed += S_GET(self->topics[i].failed);
    s_family(out, "funneld_alerts_dropped_total", "counter",
             "Alerts not published since the process started: no subscriber wanted the "
             "topic, or the socket refused them.");
    s_sample1(out, "funneld_alerts_dropped_total", "reason", "no_subscriber",
              S_GET(self->unwanted));
    s_sample1(out, "funneld_alerts_dropped_total", "reason", "send_failed", failed);
    s_plain(out, "funneld_alert_queries_total", "counter",
            "AlertsSince queries answered since the process started (funnelctl alerts, "
            "watch's catch-ups and gap fills, /events).",
            S_GET(self->alert_queries));

    s_plain(out, "funneld_deadlines_fired_total", "counter",
            "Deadlines that fell due and were applied.", st.deadlines);
    s_plain(out, "funneld_stream_messages_total", "counter",
            "Messages received on stream SUB sockets.", st.stream_messages);
    s_plain(out, "funneld_stream_gaps_total", "counter",
            "Gaps detected in sequenced publishers' seq numbers.", st.gaps);
    s_plain(out, "funneld_log_last_seq", "gauge",
            "Sequence number of the last entry in the event log.", last_seq);

    store_usage_t lu, su;
    store_usage(src->store, &lu, &su);
    s_family(out, "funneld_store_map_bytes", "gauge",
             "LMDB map size of each environment (it doubles when full; the state's: "
             "every partition's together).");
    s_sample1(out, "funneld_store_map_bytes", "env", "log", lu.map_bytes);
    s_sample1(out, "funneld_store_map_bytes", "env", "state", su.map_bytes);
    s_family(out, "funneld_store_used_bytes", "gauge",
             "Bytes of each environment's map in use (up to its last page).");
    s_sample1(out, "funneld_store_used_bytes", "env", "log", lu.used_bytes);
    s_sample1(out, "funneld_store_used_bytes", "env", "state", su.used_bytes);
    s_family(out, "funneld_store_free_bytes", "gauge",
             "Bytes of the part in use that are free pages on LMDB's free list (freed by "
             "commits, not reused yet); the state's grows by what a checkpoint's copy "
             "held at full load, and its commits slow down with it.");
    s_sample1(out, "funneld_store_free_bytes", "env", "log", lu.free_bytes);
    s_sample1(out, "funneld_store_free_bytes", "env", "state", su.free_bytes);
    s_family(out, "funneld_store_file_bytes", "gauge",
             "Disk space taken by each environment's data file.");
    s_sample1(out, "funneld_store_file_bytes", "env", "log", lu.file_bytes);
    s_sample1(out, "funneld_store_file_bytes", "env", "state", su.file_bytes);

    s_plain(out, "funneld_auth_refused_total", "counter",
            "CURVE handshakes refused since the process started: client key not in "
            "curve_clients_file.",
            auth_refused(src->auth));
    s_plain(out, "funneld_auth_clients", "gauge",
            "Client keys in curve_clients_file (0 with CURVE off).",
            src->auth ? (uint64_t)auth_clients(src->auth) : 0);

    return s_render_state(src, out);
}
