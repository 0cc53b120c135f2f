/* http_leads.c: see http_leads.h. */
#include "http_leads.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <limits.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leadrows.h"
#include "log.h"
#include "query_leads.h"
#include "xalloc.h"

#define S_MULTI_MAX 64          /* stage / persona values, as funnelctl */
#define S_PAGE_BY_ID 10000      /* leads per page, as funnelctl: by id */
#define S_PAGE_SORTED 100000    /* and otherwise (each page reads every lead) */

/* One listing being answered, page by page. */
typedef struct {
    const query_t *q;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct evkeyvalq params;    /* the parsed query string: lq points into it */
    Funnel__V1__LeadsQuery lq;
    char *stages[S_MULTI_MAX], *personas[S_MULTI_MAX];
    Funnel__V1__HandoffStatus handoff;
    leadrows_cols_t cols;
    uint8_t *cursor;
    long limit;                 /* 0: none */
    size_t rows;
    int64_t as_of;
    bool started;               /* the 200 and the document's head are out */
} s_list_t;

static void s_free(s_list_t *l)
{
    evhttp_clear_headers(&l->params);
    free(l->cursor);
    free(l);
}

static void s_error(struct evhttp_request *req, int code, const char *reason,
                    const char *text)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, NULL);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evbuffer_add_printf(body, "%s\n", text);
    evhttp_send_reply(req, code, reason, body);
    evbuffer_free(body);
}

/* A flag parameter: absent or "" / "1" / "true" on, "0" / "false" off. */
static int s_flag(const char *v, bool *out)
{
    if (v[0] == '\0' || strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* Whether v names a handoff status (as funnelctl leads --handoff takes
 * them: every HandoffStatus, in lower case without HANDOFF_). */
static bool s_handoff_known(const char *v)
{
    static const char *const names[] = {"none", "pending", "accepted", "rejected",
                                        "recycled", "requalified"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(v, names[i]) == 0)
            return true;
    return false;
}

/* The query string into l->lq. Returns 0, or -1 with the reason in err. */
static int s_parse(s_list_t *l, char *err, size_t errlen)
{
    Funnel__V1__LeadsQuery *lq = &l->lq;
    bool qualified = false, not_qualified = false, desc = false, stalled = false;
    const char *columns = NULL;

    for (struct evkeyval *kv = l->params.tqh_first; kv; kv = kv->next.tqe_next) {
        const char *k = kv->key, *v = kv->value;
        int e;
        if (strcmp(k, "stage") == 0 || strcmp(k, "persona") == 0) {
            bool st = k[0] == 's';
            size_t *n = st ? &lq->n_stages : &lq->n_personas;
            if (*n == S_MULTI_MAX || v[0] == '\0') {
                snprintf(err, errlen, "%s: at most %d, each a name", k, S_MULTI_MAX);
                return -1;
            }
            (st ? l->stages : l->personas)[(*n)++] = (char *)v;
        } else if (strcmp(k, "source") == 0) {
            if (strcmp(v, "marketing") != 0 && strcmp(v, "sales") != 0) {
                snprintf(err, errlen, "source wants marketing or sales, not \"%.64s\"", v);
                return -1;
            }
            lq->source = (Funnel__V1__Source)leadrows_enum_value(
                &funnel__v1__source__descriptor, "SOURCE_", v);
        } else if (strcmp(k, "handoff") == 0) {
            e = s_handoff_known(v) ? leadrows_enum_value(
                                         &funnel__v1__handoff_status__descriptor,
                                         "HANDOFF_", v)
                                   : -1;
            if (e < 0) {
                snprintf(err, errlen,
                         "handoff wants none, pending, accepted, rejected, recycled or "
                         "requalified, not \"%.64s\"", v);
                return -1;
            }
            l->handoff = (Funnel__V1__HandoffStatus)e;
            lq->n_handoff = 1;
            lq->handoff = &l->handoff;
        } else if (strcmp(k, "qualified") == 0 || strcmp(k, "not-qualified") == 0 ||
                   strcmp(k, "stalled") == 0 || strcmp(k, "desc") == 0) {
            bool *b = k[0] == 'q' ? &qualified : k[0] == 'n' ? &not_qualified
                      : k[0] == 's' ? &stalled : &desc;
            if (s_flag(v, b) == -1) {
                snprintf(err, errlen, "%s is a flag (empty, 1, true, 0 or false)", k);
                return -1;
            }
        } else if (strcmp(k, "min-score") == 0) {
            char *end;
            errno = 0;
            double d = strtod(v, &end);
            if (errno || end == v || *end != '\0' || d != d) {
                snprintf(err, errlen, "min-score wants a number, not \"%.64s\"", v);
                return -1;
            }
            lq->has_min_score = true;
            lq->min_score = d;
        } else if (strcmp(k, "since") == 0) {
            if (leadrows_parse_since(v, &lq->since_ms, &lq->within_ms, err, errlen) == -1)
                return -1;
        } else if (strcmp(k, "sort") == 0) {
            e = strcmp(v, "unspecified") == 0
                    ? -1
                    : leadrows_enum_value(&funnel__v1__leads_sort__descriptor, "LEADS_SORT_", v);
            if (e < 0) {
                snprintf(err, errlen, "sort wants score, engagement, fit, stage_age, "
                                      "last_event or id, not \"%.64s\"", v);
                return -1;
            }
            lq->sort = (Funnel__V1__LeadsSort)e;
        } else if (strcmp(k, "limit") == 0) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno || end == v || *end != '\0' || n < 1) {
                snprintf(err, errlen, "limit wants a number >= 1, not \"%.64s\"", v);
                return -1;
            }
            l->limit = n;
        } else if (strcmp(k, "columns") == 0) {
            columns = v;
        } else {
            snprintf(err, errlen, "unknown parameter \"%.64s\" (stage, persona, source, "
                                  "handoff, qualified, not-qualified, min-score, stalled, "
                                  "since, sort, desc, limit, columns)", k);
            return -1;
        }
    }
    if (qualified && not_qualified) {
        snprintf(err, errlen, "qualified and not-qualified exclude each other");
        return -1;
    }
    lq->stages = l->stages;
    lq->personas = l->personas;
    lq->qualified = qualified       ? FUNNEL__V1__LEADS_QUALIFIED__LEADS_QUALIFIED_YES
                    : not_qualified ? FUNNEL__V1__LEADS_QUALIFIED__LEADS_QUALIFIED_NO
                                    : FUNNEL__V1__LEADS_QUALIFIED__LEADS_QUALIFIED_ANY;
    lq->stalled = stalled;
    lq->desc = desc;
    if (columns ? leadrows_cols_parse(columns, &l->cols, err, errlen) == -1
                : (leadrows_cols_default(&l->cols), false))
        return -1;
    long page = lq->sort == FUNNEL__V1__LEADS_SORT__LEADS_SORT_ID ? S_PAGE_BY_ID
                                                                  : S_PAGE_SORTED;
    if (l->limit && l->limit < page)
        page = l->limit;
    lq->page_size = (uint32_t)page;
    return 0;
}

static void s_on_written(struct evhttp_connection *evcon, void *arg);

/* The connection went away mid-listing: drop it. */
static void s_on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    s_free(arg);
}

/* Read the next page and send it; the last one ends the answer and frees
 * l. */
static void s_step(s_list_t *l)
{
    size_t len;
    query_sync(l->q);
    pthread_rwlock_rdlock(l->q->defn_lock);
    uint8_t *buf = query_leads(l->q, &l->lq, "", &len);
    pthread_rwlock_unlock(l->q->defn_lock);
    Funnel__V1__QueryReply *r = funnel__v1__query_reply__unpack(NULL, len, buf);
    free(buf);

    if (r == NULL || r->error[0] || r->reply_case != FUNNEL__V1__QUERY_REPLY__REPLY_LEADS) {
        const char *why = r && r->error[0] ? r->error : "the listing could not be read";
        /* Before anything is sent: sending may close the connection. */
        evhttp_connection_set_closecb(l->evcon, NULL, NULL);
        if (!l->started) {
            bool storage = strstr(why, "storage") != NULL;
            s_error(l->req, storage ? 500 : 400, storage ? "Internal Server Error"
                                                         : "Bad Request", why);
        } else {
            /* The 200 is out: cut the document short, which a reader sees
             * as invalid JSON. */
            log_warn("[http] /api/leads: %s; the answer is cut short", why);
            evhttp_send_reply_end(l->req);
        }
        if (r)
            funnel__v1__query_reply__free_unpacked(r, NULL);
        s_free(l);
        return;
    }

    Funnel__V1__LeadsReply *lr = r->leads;
    char *text = NULL;
    size_t tlen = 0;
    FILE *out = open_memstream(&text, &tlen);
    if (out == NULL) {
        funnel__v1__query_reply__free_unpacked(r, NULL);
        evhttp_connection_set_closecb(l->evcon, NULL, NULL);
        if (!l->started)
            evhttp_send_error(l->req, HTTP_INTERNAL, NULL);
        else
            evhttp_send_reply_end(l->req);
        s_free(l);
        return;
    }
    if (!l->started) {
        l->as_of = lr->as_of_ms;
        leadrows_json_begin(out, l->as_of);
    }
    size_t n = lr->n_leads;
    if (l->limit && l->rows + n > (size_t)l->limit)
        n = (size_t)l->limit - l->rows;
    for (size_t i = 0; i < n; i++, l->rows++)
        leadrows_json_item(out, &l->cols, lr->leads[i], l->as_of, l->rows == 0);
    bool last = lr->next_cursor.len == 0 || (l->limit && l->rows >= (size_t)l->limit);
    if (last) {
        leadrows_json_end(out, l->rows);
    } else {
        free(l->cursor);
        l->cursor = xmalloc(lr->next_cursor.len);
        memcpy(l->cursor, lr->next_cursor.data, lr->next_cursor.len);
        l->lq.cursor.data = l->cursor;
        l->lq.cursor.len = lr->next_cursor.len;
    }
    funnel__v1__query_reply__free_unpacked(r, NULL);
    fclose(out);

    if (!l->started) {
        evhttp_add_header(evhttp_request_get_output_headers(l->req), "Content-Type",
                          "application/json");
        evhttp_send_reply_start(l->req, 200, "OK");
        l->started = true;
    }
    struct evbuffer *chunk = evbuffer_new();
    if (chunk)
        evbuffer_add(chunk, text, tlen);
    free(text);
    if (last || chunk == NULL) {
        evhttp_connection_set_closecb(l->evcon, NULL, NULL);
        if (chunk)
            evhttp_send_reply_chunk(l->req, chunk);
        evhttp_send_reply_end(l->req);
        if (chunk)
            evbuffer_free(chunk);
        s_free(l);
        return;
    }
    /* The next page once this one is written out. */
    evhttp_send_reply_chunk_with_cb(l->req, chunk, s_on_written, l);
    evbuffer_free(chunk);
}

static void s_on_written(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    s_step(arg);
}

void http_leads(const query_t *q, struct evhttp_request *req)
{
    char err[1200];
    s_list_t *l = xcalloc(1, sizeof *l);
    l->q = q;
    l->req = req;
    funnel__v1__leads_query__init(&l->lq);
    TAILQ_INIT(&l->params);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    /* evhttp's parser wants key=value: a bare flag ("&desc") gets its "=". */
    char *fixed = NULL;
    if (query) {
        size_t n = strlen(query), o = 0;
        fixed = xmalloc(2 * n + 2);
        for (const char *p = query; *p;) {
            size_t len = strcspn(p, "&");
            memcpy(fixed + o, p, len);
            o += len;
            if (len > 0 && memchr(p, '=', len) == NULL)
                fixed[o++] = '=';
            p += len;
            if (*p == '&')
                fixed[o++] = *p++;
        }
        fixed[o] = '\0';
    }
    int prc = fixed ? evhttp_parse_query_str(fixed, &l->params) : 0;
    free(fixed);
    if (prc != 0) {
        s_error(req, 400, "Bad Request", "the query string cannot be parsed");
        s_free(l);
        return;
    }
    if (s_parse(l, err, sizeof err) == -1) {
        s_error(req, 400, "Bad Request", err);
        s_free(l);
        return;
    }
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evhttp_send_reply(req, 200, "OK", NULL);
        s_free(l);
        return;
    }
    l->evcon = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(l->evcon, s_on_close, l);
    s_step(l);
}
