/* ctl_nats.c: funnelctl's NATS side: `publish --nats URL` (NDJSON events
 * into JetStream, one EventBatch per message on funnel.in.<partition>,
 * the partition computed as funneld checks it: see funnel.proto). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fnv.h"
#include "ndjson.h"
#include "xalloc.h"

/* A message is flushed at this many encoded bytes even below --batch
 * (nats-server refuses messages above 1 MiB by default). */
#define S_MSG_MAX_BYTES (768u * 1024)

unsigned ctl_nats_partition(const char *lead_id, unsigned n)
{
    if (n <= 1)
        return 0;
    return fnv1a32(lead_id, strlen(lead_id)) % n;
}

/* Connect to NATS (comma-separated URLs; FUNNELCTL_NATS_CREDENTIALS: a
 * credentials file) and open JetStream, waiting at most timeout_s for
 * each. Returns 0, or -1 (printed). */
int ctl_nats_connect(const char *urls, double timeout_s, natsConnection **nc, jsCtx **js)
{
    natsOptions *o = NULL;
    char *copy = xstrdup(urls), *save = NULL;
    const char *servers[64];
    int n = 0;
    for (char *u = strtok_r(copy, ",", &save); u && n < 64; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        if (*u)
            servers[n++] = u;
    }
    const char *creds = getenv("FUNNELCTL_NATS_CREDENTIALS");
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, servers, n);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, "funnelctl");
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, (int64_t)(timeout_s * 1000));
    if (s == NATS_OK && creds && *creds)
        s = natsOptions_SetUserCredentialsFromFiles(o, creds, NULL);
    if (s == NATS_OK)
        s = natsConnection_Connect(nc, o);
    if (s == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = (int64_t)(timeout_s * 1000);
        s = natsConnection_JetStream(js, *nc, &jo);
    }
    if (s != NATS_OK)
        ctl_error("cannot connect to NATS at %s: %s", urls, nats_GetLastError(NULL));
    natsOptions_Destroy(o);
    free(copy);
    return s == NATS_OK ? 0 : -1;
}

/* Flush (at most 1 s) and close what s_connect opened. */
void ctl_nats_close(natsConnection **nc, jsCtx **js)
{
    jsCtx_Destroy(*js);
    *js = NULL;
    if (*nc) {
        natsConnection_FlushTimeout(*nc, 1000);
        natsConnection_Destroy(*nc);
    }
    *nc = NULL;
    nats_Close();
}

/* Events gathered for one partition's next message. */
typedef struct {
    Funnel__V1__Event **ev;
    size_t n;
    size_t bytes;
} s_bucket_t;

typedef struct {
    jsCtx *js;
    long retries;
    uint64_t messages, sent;
} s_pub_t;

/* Publish bucket b of partition p as one EventBatch, waiting for the
 * stream's acknowledgement (resending up to retries times). Returns 0,
 * or -1 (printed). The bucket is emptied either way. */
static int s_flush(s_pub_t *pub, s_bucket_t *b, unsigned p)
{
    if (b->n == 0)
        return 0;
    Funnel__V1__EventBatch batch;
    funnel__v1__event_batch__init(&batch);
    batch.events = b->ev;
    batch.n_events = b->n;
    size_t len = funnel__v1__event_batch__get_packed_size(&batch);
    uint8_t *buf = xmalloc(len ? len : 1);
    funnel__v1__event_batch__pack(&batch, buf);
    char subject[48];
    snprintf(subject, sizeof subject, "funnel.in.%u", p);
    natsStatus s = NATS_ERR;
    jsErrCode jerr = 0;
    for (long attempt = 0; attempt <= pub->retries; attempt++) {
        jsPubAck *ack = NULL;
        s = js_Publish(&ack, pub->js, subject, buf, (int)len, NULL, &jerr);
        jsPubAck_Destroy(ack);
        if (s == NATS_OK)
            break;
    }
    free(buf);
    if (s == NATS_OK) {
        pub->messages++;
        pub->sent += b->n;
    } else {
        ctl_error("publishing on %s: %s%s", subject, nats_GetLastError(NULL),
                  s == NATS_NO_RESPONDERS ? " (no JetStream stream captures funnel.in.*: "
                                            "start funneld with `nats` once, or create it)"
                                          : "");
    }
    for (size_t i = 0; i < b->n; i++)
        ndjson_event_destroy(&b->ev[i]);
    b->n = 0;
    b->bytes = 0;
    return s == NATS_OK ? 0 : -1;
}

int ctl_nats_publish(const ctl_opts_t *g, const ctl_nats_publish_opts_t *o, FILE *fp,
                     const char *name)
{
    natsConnection *nc = NULL;
    s_pub_t pub = {.retries = o->retries};
    unsigned np = (unsigned)o->partitions;
    s_bucket_t *buckets = xcalloc(np, sizeof *buckets);
    char *line = NULL;
    size_t cap = 0;
    uint64_t lines = 0, bad = 0;
    int rc = CTL_EXIT_USAGE;

    if (ctl_nats_connect(o->urls, ctl_timeout(g, CTL_TIMEOUT_S), &nc, &pub.js) == -1)
        goto done;
    int64_t t0 = ctl_mono_ms();
    for (;;) {
        ssize_t len = getline(&line, &cap, fp);
        if (len < 0) {
            if (ferror(fp)) {
                ctl_error("cannot read %s: %s", name, strerror(errno));
                goto done;
            }
            break;
        }
        lines++;
        Funnel__V1__Event *ev;
        char err[NDJSON_ERR_MAX];
        int r = ndjson_parse_line(line, (size_t)len, ctl_wall_ms(), &ev, err);
        if (r == -1) {
            ctl_error("%s:%" PRIu64 ": %s", name, lines, err);
            bad++;
            continue;
        }
        if (r == 0)
            continue;
        unsigned p = ctl_nats_partition(ev->lead_id, np);
        s_bucket_t *b = &buckets[p];
        if (b->ev == NULL)
            b->ev = xcalloc((size_t)o->batch, sizeof *b->ev);
        size_t sz = funnel__v1__event__get_packed_size(ev) + 8;
        if (b->n > 0 && b->bytes + sz > S_MSG_MAX_BYTES && s_flush(&pub, b, p) == -1)
            goto done;
        b->ev[b->n++] = ev;
        b->bytes += sz;
        if (b->n == (size_t)o->batch && s_flush(&pub, b, p) == -1)
            goto done;
    }
    for (unsigned p = 0; p < np; p++)
        if (s_flush(&pub, &buckets[p], p) == -1)
            goto done;
    double secs = (double)(ctl_mono_ms() - t0) / 1000.0;
    double rate = secs > 0 ? (double)pub.sent / secs : 0;
    if (g->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "lines", json_integer((json_int_t)lines));
        json_object_set_new(doc, "sent", json_integer((json_int_t)pub.sent));
        json_object_set_new(doc, "messages", json_integer((json_int_t)pub.messages));
        json_object_set_new(doc, "bad_lines", json_integer((json_int_t)bad));
        json_object_set_new(doc, "seconds", json_real(round(secs * 1000) / 1000));
        json_object_set_new(doc, "events_per_s", json_real(round(rate * 10) / 10));
        ctl_print_doc(doc);
    } else {
        fprintf(stderr,
                "funnelctl: %s: %" PRIu64 " lines, %" PRIu64 " events in %" PRIu64
                " messages stored by JetStream (%u partitions); %" PRIu64
                " bad lines; %.3f s, %.0f events/s\n",
                name, lines, pub.sent, pub.messages, np, bad, secs, rate);
    }
    rc = o->strict && bad > 0 ? CTL_EXIT_NO : CTL_EXIT_OK;

done:
    for (unsigned p = 0; p < np; p++) {
        for (size_t i = 0; i < buckets[p].n; i++)
            ndjson_event_destroy(&buckets[p].ev[i]);
        free(buckets[p].ev);
    }
    free(buckets);
    free(line);
    ctl_nats_close(&nc, &pub.js);
    return rc;
}

/* -- watch --nats ------------------------------------------------------------ */

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* Subscribe sub to the subjects of topic t (NULL: every alert). */
static int s_watch_subscribe(natsConnection *nc, const char *t, natsSubscription **subs,
                             size_t *n)
{
    char subject[320];
    size_t tl = t ? strlen(t) : 0;
    if (t == NULL || tl == 0)
        snprintf(subject, sizeof subject, "funnel.alerts.>");
    else if (t[tl - 1] == '.')
        snprintf(subject, sizeof subject, "funnel.alerts.%s>", t);
    else
        snprintf(subject, sizeof subject, "funnel.alerts.%s", t);
    for (int k = 0; k < 2; k++) {
        if (natsConnection_SubscribeSync(&subs[*n], nc, subject) != NATS_OK) {
            ctl_error("watch: cannot subscribe to %s: %s", subject, nats_GetLastError(NULL));
            return -1;
        }
        (*n)++;
        /* A whole topic also takes its dotted subtopics. */
        if (t == NULL || tl == 0 || t[tl - 1] == '.')
            break;
        snprintf(subject, sizeof subject, "funnel.alerts.%s.>", t);
    }
    return 0;
}

int ctl_nats_watch(const ctl_opts_t *g, const ctl_topics_t *topics, long count,
                   double timeout, const char *urls)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *subs[2 * CTL_TOPICS_MAX + 1] = {NULL};
    size_t n_subs = 0;
    long printed = 0;
    int rc = CTL_EXIT_USAGE;

    /* --timeout is the idle time here: connect within the default. */
    if (ctl_nats_connect(urls, CTL_TIMEOUT_S, &nc, &js) == -1)
        goto done;
    if (topics->n == 0 && s_watch_subscribe(nc, NULL, subs, &n_subs) == -1)
        goto done;
    for (size_t i = 0; i < topics->n; i++)
        if (s_watch_subscribe(nc, topics->names[i], subs, &n_subs) == -1)
            goto done;
    /* Subscriptions are active once the server answered a round trip. */
    if (natsConnection_FlushTimeout(nc, CTL_TIMEOUT_S * 1000) != NATS_OK) {
        ctl_error("watch: NATS at %s does not answer: %s", urls, nats_GetLastError(NULL));
        goto done;
    }
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int64_t deadline = timeout > 0 ? ctl_mono_ms() + (int64_t)(timeout * 1000) : -1;
    rc = CTL_EXIT_OK;
    while (!s_stop && (count == 0 || printed < count)) {
        if (deadline >= 0 && ctl_mono_ms() >= deadline) {
            if (printed == 0)
                ctl_error("no alert on NATS at %s within %g s", urls, timeout);
            else if (count > 0)
                ctl_error("%ld of %ld alerts on NATS at %s within %g s", printed, count, urls,
                          timeout);
            rc = printed > 0 && count == 0 ? CTL_EXIT_OK : CTL_EXIT_NO;
            break;
        }
        bool got = false;
        for (size_t i = 0; i < n_subs && !s_stop && (count == 0 || printed < count); i++) {
            natsMsg *m = NULL;
            /* Short waits, each subscription in turn: a signal stops it soon. */
            natsStatus s = natsSubscription_NextMsg(&m, subs[i], n_subs > 1 ? 20 : 200);
            if (s == NATS_TIMEOUT)
                continue;
            if (s != NATS_OK) {
                ctl_error("watch: %s", nats_GetLastError(NULL));
                rc = CTL_EXIT_USAGE;
                goto done;
            }
            got = true;
            const char *subject = natsMsg_GetSubject(m);
            const char *topic = subject + strlen("funnel.alerts.");
            Funnel__V1__Alert *a = funnel__v1__alert__unpack(
                NULL, (size_t)natsMsg_GetDataLength(m), (const uint8_t *)natsMsg_GetData(m));
            if (a == NULL) {
                ctl_error("undecodable alert on %s (ignored)", subject);
            } else {
                ctl_print_alert(g, a, topic);
                funnel__v1__alert__free_unpacked(a, NULL);
                printed++;
            }
            natsMsg_Destroy(m);
        }
        if (got && timeout > 0)
            deadline = ctl_mono_ms() + (int64_t)(timeout * 1000);
    }

done:
    for (size_t i = 0; i < n_subs; i++)
        natsSubscription_Destroy(subs[i]);
    ctl_nats_close(&nc, &js);
    return rc;
}
