/* query_alerts.c: see query_alerts.h. */
#include "query_alerts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "log.h"
#include "xalloc.h"

/* Alerts looked at in one page at most, matching or not: a query for a
 * rare topic from far back must not hold its snapshot (which a map growth
 * waits for) for long. The client goes on from next_seq. */
#define S_SCAN_MAX 200000
/* Alert bytes in one page at most (the limit usually comes first). */
#define S_PAGE_BYTES (32u << 20)

/* Protobuf wire format, written by hand where stored encodings are
 * embedded as they are: a length-delimited field is its tag (field << 3 |
 * 2), the length as a varint, then the bytes. */
#define S_TAG_LEN(field) (((field) << 3) | 2)

typedef struct {
    const Funnel__V1__AlertsSince *req;
    size_t limit;
    const void **bufs;       /* borrowed from the snapshot */
    size_t *lens;
    size_t n;
    size_t bytes;            /* of the embedded alerts, tags included */
    size_t scanned;
    uint64_t last_scanned;
    bool cut;                /* stopped by a bound, not by the end */
} s_page_t;

static bool s_topic_matches(const s_page_t *pg, const store_alert_t *a)
{
    if (pg->req->n_topics == 0)
        return true;
    for (size_t i = 0; i < pg->req->n_topics; i++) {
        size_t n = strlen(pg->req->topics[i]);
        if (n <= a->topic_len && memcmp(a->topic, pg->req->topics[i], n) == 0)
            return true;
    }
    return false;
}

/* store_alert_fn: take a matching alert into the page; stop at a bound. */
static int s_on_alert(const store_alert_t *a, void *arg)
{
    s_page_t *pg = arg;
    size_t field = 1 + codec_varint_size(a->len) + a->len;
    if (s_topic_matches(pg, a)) {
        if (pg->n > 0 && pg->bytes + field > S_PAGE_BYTES) {
            pg->cut = true;
            return 1;
        }
        pg->bufs[pg->n] = a->buf;
        pg->lens[pg->n] = a->len;
        pg->n++;
        pg->bytes += field;
    }
    pg->scanned++;
    pg->last_scanned = a->seq;
    if (pg->n == pg->limit || pg->scanned == S_SCAN_MAX) {
        pg->cut = true;
        return 1;
    }
    return 0;
}

static int s_check(const Funnel__V1__AlertsSince *req, char *err, size_t errlen)
{
    if (req->limit > QUERY_ALERTS_MAX) {
        snprintf(err, errlen, "AlertsSince.limit must be at most %d, not %u",
                 QUERY_ALERTS_MAX, req->limit);
        return -1;
    }
    if (req->n_topics > QUERY_ALERTS_TOPICS_MAX) {
        snprintf(err, errlen, "AlertsSince names %zu topics, at most %d", req->n_topics,
                 QUERY_ALERTS_TOPICS_MAX);
        return -1;
    }
    for (size_t i = 0; i < req->n_topics; i++)
        if (strlen(req->topics[i]) > 255) {
            snprintf(err, errlen, "AlertsSince topic %zu is longer than 255 bytes", i);
            return -1;
        }
    return 0;
}

int query_alerts_page(store_t *store, const Funnel__V1__AlertsSince *req,
                      uint8_t **out, size_t *len, char *err, size_t errlen)
{
    s_page_t pg = {.req = req};
    uint64_t last = 0, floor = 0;
    int rc = -1;

    *out = NULL;
    if (s_check(req, err, errlen) == -1)
        return -1;
    pg.limit = req->limit ? req->limit : QUERY_ALERTS_DEFAULT;
    pg.bufs = xmalloc(pg.limit * sizeof *pg.bufs);
    pg.lens = xmalloc(pg.limit * sizeof *pg.lens);
    pg.last_scanned = req->seq;
    if (store_read_begin(store) != STORE_OK) {
        snprintf(err, errlen, "storage error: cannot read the alerts");
        goto out;
    }
    if (store_read_alert_bounds(store, &last, &floor) != STORE_OK ||
        store_read_alerts(store, req->seq, s_on_alert, &pg) < 0) {
        store_read_end(store);
        snprintf(err, errlen, "storage error: cannot read the alerts");
        goto out;
    }

    /* The fields after the alerts, packed by protobuf-c; the alerts go
     * first, as they were stored. */
    Funnel__V1__AlertsSinceReply tail;
    funnel__v1__alerts_since_reply__init(&tail);
    tail.next_seq = pg.last_scanned;
    tail.more = pg.cut && pg.last_scanned < last;
    tail.last_seq = last;
    tail.first_seq = last > floor ? floor + 1 : 0;
    size_t tail_len = funnel__v1__alerts_since_reply__get_packed_size(&tail);
    *len = pg.bytes + tail_len;
    uint8_t *p = *out = xmalloc(*len ? *len : 1);
    for (size_t i = 0; i < pg.n; i++) {
        *p++ = S_TAG_LEN(1);
        p = codec_varint_put(p, pg.lens[i]);
        memcpy(p, pg.bufs[i], pg.lens[i]);
        p += pg.lens[i];
    }
    /* The bytes are copied: the snapshot can end. */
    store_read_end(store);
    funnel__v1__alerts_since_reply__pack(&tail, p);
    rc = 0;
out:
    free(pg.bufs);
    free(pg.lens);
    return rc;
}

/* Send the QueryReply head (request_id, error), followed, when page is
 * not NULL, by the oneof field alerts_since holding page. */
static void s_send(bus_sock_t *sock, bus_msg_t *msg, const char *request_id,
                   const char *error, const uint8_t *page, size_t page_len)
{
    Funnel__V1__QueryReply r;
    funnel__v1__query_reply__init(&r);
    r.request_id = (char *)request_id;
    if (error)
        r.error = (char *)error;
    size_t head = funnel__v1__query_reply__get_packed_size(&r);
    size_t field = page ? 2 + codec_varint_size(page_len) + page_len : 0;
    uint8_t *buf = xmalloc(head + field);
    funnel__v1__query_reply__pack(&r, buf);
    if (page) {
        uint8_t *p = buf + head;
        /* QueryReply.alerts_since = 20: a two-byte tag. */
        p = codec_varint_put(p, S_TAG_LEN(20));
        p = codec_varint_put(p, page_len);
        memcpy(p, page, page_len);
    }

    if (bus_reply(sock, msg->part, msg->n - 1, buf, head + field) == -1)
        log_debug("[query] alerts reply not sent (client gone?)");
    free(buf);
}

void query_alerts_since(store_t *store, const char *request_id,
                        const Funnel__V1__AlertsSince *req, bus_sock_t *sock,
                        bus_msg_t *msg)
{
    char err[256];
    uint8_t *page = NULL;
    size_t len = 0;
    if (query_alerts_page(store, req, &page, &len, err, sizeof err) == -1) {
        s_send(sock, msg, request_id, err, NULL, 0);
        return;
    }
    s_send(sock, msg, request_id, NULL, page, len);
    free(page);
}
