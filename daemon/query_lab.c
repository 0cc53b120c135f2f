/* query_lab.c: the definition lab's queries, answered in the lab thread
 * (query_worker_new): a draft definition scored on the event log, replayed
 * into scratch states in memory (lab.h), reported by the same report code
 * as the live state (handlers/report.c). The live state and definition
 * are only read. */
#include "query_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "lab.h"
#include "log.h"
#include "query_encode.h"
#include "report.h"
#include "xalloc.h"

/* A packed QueryReply of r. */
static uint8_t *s_pack(const Funnel__V1__QueryReply *r, size_t *len)
{
    *len = funnel__v1__query_reply__get_packed_size(r);
    uint8_t *buf = xmalloc(*len ? *len : 1);
    funnel__v1__query_reply__pack(r, buf);
    return buf;
}

static uint8_t *s_error(const char *request_id, const char *msg, size_t *len)
{
    Funnel__V1__QueryReply r;
    funnel__v1__query_reply__init(&r);
    r.request_id = (char *)request_id;
    r.error = (char *)msg;
    return s_pack(&r, len);
}

/* The daemon's time and the last log sequence, as a query sees them now. */
static int s_now(const query_t *q, int64_t *now_ms, uint64_t *last_seq)
{
    store_stats_t st;
    store_stats_read(q->store, &st, last_seq);
    if (store_read_begin(q->store) != STORE_OK)
        return -1;
    *now_ms = query_now_ms(q);
    store_read_end(q->store);
    return 0;
}

/* Load the draft of text (name for its messages). NULL and err. */
static defn_t *s_draft(const char *text, const char *name, char *err, size_t errlen)
{
    if (text == NULL || text[0] == '\0') {
        snprintf(err, errlen, "the draft definition is empty");
        return NULL;
    }
    return defn_load_buffer(text, strlen(text), name && name[0] ? name : "draft", err,
                            errlen);
}

/* quality --draft: report_quality over a scratch state of the draft. */
static uint8_t *s_quality_draft(const query_t *q, const Funnel__V1__QueryRequest *req,
                                const atomic_int *cancel, size_t *len)
{
    const Funnel__V1__QualityQuery *qq = req->quality;
    char err[1024];
    uint8_t *out = NULL;
    lab_t *lab = NULL;
    report_quality_t *rep = NULL;
    arena_t *a = NULL;
    defn_t *d = s_draft(qq->draft, qq->draft_name, err, sizeof err);
    if (d == NULL)
        return s_error(req->request_id, err, len);

    int64_t now;
    uint64_t upto;
    if (s_now(q, &now, &upto) == -1) {
        out = s_error(req->request_id, "storage error", len);
        goto done;
    }
    lab = lab_new(d, q->pipeline);
    long n = lab_replay_log(q->store, upto, 0, 0, &lab, 1, cancel, NULL, NULL);
    if (n < 0) {
        out = s_error(req->request_id, n == -2 ? "funneld is stopping" : "storage error",
                      len);
        goto done;
    }
    lab_finish(lab, now);
    report_reader_t rd;
    lab_reader(lab, &rd);
    const char *rerr = NULL;
    if (report_quality(d, &rd, qq->by, now, &rep, &rerr) < 0) {
        out = s_error(req->request_id, rerr, len);
        goto done;
    }
    a = arena_new(0);
    Funnel__V1__QueryReply r;
    funnel__v1__query_reply__init(&r);
    r.request_id = req->request_id;
    r.reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_QUALITY;
    r.quality = query_quality_encode(rep, a);
    r.quality->definition = d->name;
    r.quality->replayed = (uint64_t)n;
    r.quality->upto_seq = upto;
    out = s_pack(&r, len);
done:
    report_quality_free(&rep);
    arena_destroy(&a);
    lab_destroy(&lab);
    defn_destroy(&d);
    return out;
}

/* -- backtest ----------------------------------------------------------- */

#define S_SWEEP_MAX 50
#define S_WEEK_MS (7 * 86400000LL)

/* The calling thread's CPU time (ms). */
static int64_t s_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The live definition, loaded again from its file for the lab thread (the
 * daemon's copy may be replaced by a reload meanwhile): NULL and err when
 * the file changed since it was loaded (its hash differs). */
static defn_t *s_live(const query_t *q, char *err, size_t errlen)
{
    char path[4096], hash[sizeof(((defn_t *)0)->hash)];
    pthread_rwlock_rdlock(q->defn_lock);
    snprintf(path, sizeof path, "%s", (*q->defn_p)->path);
    memcpy(hash, (*q->defn_p)->hash, sizeof hash);
    pthread_rwlock_unlock(q->defn_lock);
    defn_t *d = strcmp(path, "(built-in)") == 0 ? defn_load_default()
                                                : defn_load_file(path, err, errlen);
    if (d == NULL)
        return NULL;
    if (strcmp(d->hash, hash) != 0) {
        snprintf(err, errlen, "the live definition's file %.512s changed since funneld loaded "
                 "it: reload funneld (SIGHUP) or restore the file, then backtest again",
                 path);
        defn_destroy(&d);
        return NULL;
    }
    return d;
}

/* One side's reports, kept until the reply is packed. */
typedef struct {
    report_funnel_t *funnel;
    report_friction_t *friction;
    report_quality_t *quality;
} s_reports_t;

static void s_reports_free(s_reports_t *r)
{
    report_funnel_free(&r->funnel);
    report_friction_free(&r->friction);
    report_quality_free(&r->quality);
}

static int s_side(lab_t *lab, int64_t now, s_reports_t *rep, arena_t *a,
                  Funnel__V1__BacktestSide **out, const char **err)
{
    const defn_t *d = lab_defn(lab);
    report_reader_t rd;
    lab_reader(lab, &rd);
    report_friction_query_t fq = { .by = "", .stage = "" };
    if (report_funnel(d, &rd, "", "", &rep->funnel, err) < 0 ||
        report_friction(d, &rd, &fq, &rep->friction, err) < 0 ||
        report_quality(d, &rd, "", now, &rep->quality, err) < 0)
        return -1;
    Funnel__V1__BacktestSide *s = arena_calloc(a, 1, sizeof *s);
    funnel__v1__backtest_side__init(s);
    s->definition = d->name;
    s->handoffs = lab_handoffs(lab);
    s->funnel = query_encode_funnel(rep->funnel, a);
    s->friction = query_encode_friction(rep->friction, a);
    s->quality = query_quality_encode(rep->quality, a);
    s->quality->definition = d->name;
    *out = s;
    return 0;
}

typedef struct {
    const lab_t *other;
    Funnel__V1__BacktestSet *both, *only; /* both NULL: count only `only` */
    size_t sample;
    arena_t *a;
} s_cmp_t;

static void s_set_add(Funnel__V1__BacktestSet *set, const char *id, size_t sample,
                      arena_t *a)
{
    if (set->n_sample < sample)
        set->sample[set->n_sample++] = arena_strdup(a, id);
    set->count++;
}

static int s_on_lead(const char *id, bool handed_off, void *arg)
{
    s_cmp_t *c = arg;
    if (!handed_off)
        return 0;
    bool other = false;
    if (lab_lead_handed_off(c->other, id, &other) == 1 && other) {
        if (c->both)
            s_set_add(c->both, id, c->sample, c->a);
    } else {
        s_set_add(c->only, id, c->sample, c->a);
    }
    return 0;
}

static Funnel__V1__BacktestSet *s_set_new(size_t sample, arena_t *a)
{
    Funnel__V1__BacktestSet *set = arena_calloc(a, 1, sizeof *set);
    funnel__v1__backtest_set__init(set);
    set->sample = arena_calloc(a, sample ? sample : 1, sizeof *set->sample);
    return set;
}

/* The weeks of both sides, merged in week order. */
static void s_weeks(const lab_t *live, const lab_t *draft, arena_t *a,
                    Funnel__V1__BacktestReply *r)
{
    size_t nl = lab_weeks(live, NULL, 0), nd = lab_weeks(draft, NULL, 0);
    lab_week_t *wl = xcalloc(nl + 1, sizeof *wl), *wd = xcalloc(nd + 1, sizeof *wd);
    lab_weeks(live, wl, nl);
    lab_weeks(draft, wd, nd);
    r->weeks = arena_calloc(a, nl + nd + 1, sizeof *r->weeks);
    size_t i = 0, k = 0;
    while (i < nl || k < nd) {
        int c = i == nl ? 1 : k == nd ? -1 : strcmp(wl[i].week, wd[k].week);
        Funnel__V1__BacktestWeek *w = arena_calloc(a, 1, sizeof *w);
        funnel__v1__backtest_week__init(w);
        w->week = arena_strdup(a, c <= 0 ? wl[i].week : wd[k].week);
        if (c <= 0)
            w->live = wl[i++].handoffs;
        if (c >= 0)
            w->draft = wd[k++].handoffs;
        r->weeks[r->n_weeks++] = w;
    }
    free(wl);
    free(wd);
}

static uint8_t *s_backtest(const query_t *q, const Funnel__V1__QueryRequest *req,
                           const atomic_int *cancel, size_t *len)
{
    const Funnel__V1__BacktestQuery *bq = req->backtest;
    char err[1024];
    const char *rerr = NULL;
    uint8_t *out = NULL;
    defn_t *defs[2 + S_SWEEP_MAX] = {0};
    lab_t *labs[2 + S_SWEEP_MAX] = {0};
    s_reports_t reps[2] = {0};
    size_t n_sweep = 0, n_labs = 0;
    arena_t *a = arena_new(0);

    if ((defs[0] = s_live(q, err, sizeof err)) == NULL ||
        (defs[1] = s_draft(bq->draft, bq->draft_name, err, sizeof err)) == NULL) {
        out = s_error(req->request_id, err, len);
        goto done;
    }
    if (bq->until_ms && bq->since_ms >= bq->until_ms) {
        out = s_error(req->request_id, "the time window is empty (since is not before "
                      "until)", len);
        goto done;
    }
    if (bq->sweep_key[0]) {
        if (!(bq->sweep_step > 0) || !(bq->sweep_to >= bq->sweep_from)) {
            out = s_error(req->request_id, "sweep: FROM:TO:STEP wants FROM <= TO and a "
                          "STEP above 0", len);
            goto done;
        }
        double span = (bq->sweep_to - bq->sweep_from) / bq->sweep_step;
        if (span + 1 > S_SWEEP_MAX + 1e-9) {
            snprintf(err, sizeof err, "sweep: %.0f values; at most %d", span + 1,
                     S_SWEEP_MAX);
            out = s_error(req->request_id, err, len);
            goto done;
        }
        n_sweep = (size_t)(span + 1e-9) + 1;
        for (size_t i = 0; i < n_sweep; i++) {
            double v = bq->sweep_from + (double)i * bq->sweep_step;
            defs[2 + i] = s_draft(bq->draft, bq->draft_name, err, sizeof err);
            if (defs[2 + i] == NULL ||
                defn_set_threshold(defs[2 + i], bq->sweep_key, v, err, sizeof err) == -1) {
                out = s_error(req->request_id, err, len);
                goto done;
            }
        }
    }
    n_labs = 2 + n_sweep;
    for (size_t i = 0; i < n_labs; i++)
        labs[i] = lab_new(defs[i], q->pipeline);

    int64_t now;
    uint64_t upto;
    if (s_now(q, &now, &upto) == -1) {
        out = s_error(req->request_id, "storage error", len);
        goto done;
    }
    int64_t t0 = s_mono_ms(), c0 = s_cpu_ms();
    long n = lab_replay_log(q->store, upto, bq->since_ms, bq->until_ms, labs, n_labs,
                            cancel, NULL, NULL);
    if (n < 0) {
        out = s_error(req->request_id, n == -2 ? "funneld is stopping" : "storage error",
                      len);
        goto done;
    }
    for (size_t i = 0; i < n_labs; i++)
        lab_finish(labs[i], now);
    int64_t elapsed = s_mono_ms() - t0, cpu = s_cpu_ms() - c0;

    Funnel__V1__BacktestReply br;
    funnel__v1__backtest_reply__init(&br);
    if (s_side(labs[0], now, &reps[0], a, &br.live, &rerr) < 0 ||
        s_side(labs[1], now, &reps[1], a, &br.draft, &rerr) < 0) {
        out = s_error(req->request_id, rerr, len);
        goto done;
    }
    size_t sample = bq->sample > 1000 ? 1000 : bq->sample;
    br.both = s_set_new(sample, a);
    br.only_live = s_set_new(sample, a);
    br.only_draft = s_set_new(sample, a);
    s_cmp_t c = { .other = labs[1], .both = br.both, .only = br.only_live,
                  .sample = sample, .a = a };
    lab_each_lead(labs[0], s_on_lead, &c);
    c = (s_cmp_t){ .other = labs[0], .both = NULL, .only = br.only_draft,
                   .sample = sample, .a = a };
    lab_each_lead(labs[1], s_on_lead, &c);
    s_weeks(labs[0], labs[1], a, &br);

    br.replayed = (uint64_t)n;
    br.upto_seq = upto;
    br.events = lab_events(labs[1]);
    br.since_ms = bq->since_ms;
    br.until_ms = bq->until_ms;
    br.as_of_ms = now;
    br.elapsed_ms = (uint64_t)(elapsed > 0 ? elapsed : 0);
    br.cpu_ms = (uint64_t)(cpu > 0 ? cpu : 0);
    br.sweep_key = bq->sweep_key;
    br.sweep = arena_calloc(a, n_sweep ? n_sweep : 1, sizeof *br.sweep);
    for (size_t i = 0; i < n_sweep; i++) {
        lab_t *l = labs[2 + i];
        report_reader_t rd;
        report_quality_t *qr = NULL;
        lab_reader(l, &rd);
        if (report_quality(lab_defn(l), &rd, "", now, &qr, &rerr) < 0) {
            out = s_error(req->request_id, rerr, len);
            goto done;
        }
        Funnel__V1__BacktestSweepRow *row = arena_calloc(a, 1, sizeof *row);
        funnel__v1__backtest_sweep_row__init(row);
        row->value = bq->sweep_from + (double)i * bq->sweep_step;
        row->handoffs = lab_handoffs(l);
        int64_t span = lab_last_ms(l) - lab_first_ms(l);
        double weeks = span > S_WEEK_MS ? (double)span / (double)S_WEEK_MS : 1.0;
        row->handoffs_per_week = (double)row->handoffs / weeks;
        row->handed_off = qr->all.handed_off;
        row->has_precision = qr->all.has_precision;
        row->precision = qr->all.precision;
        row->has_recall = qr->all.has_recall;
        row->recall = qr->all.recall;
        report_quality_free(&qr);
        br.sweep[br.n_sweep++] = row;
    }

    Funnel__V1__QueryReply r;
    funnel__v1__query_reply__init(&r);
    r.request_id = req->request_id;
    r.reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_BACKTEST;
    r.backtest = &br;
    out = s_pack(&r, len);
done:
    for (size_t i = 0; i < 2; i++)
        s_reports_free(&reps[i]);
    for (size_t i = 0; i < 2 + S_SWEEP_MAX; i++) {
        lab_destroy(&labs[i]);
        defn_destroy(&defs[i]);
    }
    arena_destroy(&a);
    return out;
}

uint8_t *query_lab(const query_t *q, const Funnel__V1__QueryRequest *req,
                   const atomic_int *cancel, size_t *len)
{
    switch (req->query_case) {
    case FUNNEL__V1__QUERY_REQUEST__QUERY_QUALITY:
        return s_quality_draft(q, req, cancel, len);
    case FUNNEL__V1__QUERY_REQUEST__QUERY_BACKTEST:
        return s_backtest(q, req, cancel, len);
    default:
        return s_error(req->request_id, "not a definition lab query", len);
    }
}
