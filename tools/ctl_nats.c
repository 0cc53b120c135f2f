/* ctl_nats.c: funnelctl's NATS side: `publish --nats URL` (NDJSON events
 * into JetStream, one EventBatch per message on funnel.in.<partition>,
 * the partition computed as funneld checks it: see funnel.proto). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <nats/nats.h>
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
static int s_connect(const char *urls, double timeout_s, natsConnection **nc, jsCtx **js)
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
static void s_close(natsConnection **nc, jsCtx **js)
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

    if (s_connect(o->urls, ctl_timeout(g, CTL_TIMEOUT_S), &nc, &pub.js) == -1)
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
    s_close(&nc, &pub.js);
    return rc;
}
