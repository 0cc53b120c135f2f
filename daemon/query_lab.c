/* query_lab.c: the definition lab's queries, answered in the lab thread
 * (query_worker_new): a draft definition scored on the event log, replayed
 * into scratch states in memory (lab.h), reported by the same report code
 * as the live state (handlers/report.c). The live state and definition
 * are only read. */
#include "query_int.h"

#include <inttypes.h>
#include <pthread.h>
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

/* -- the backtests funneld remembers ------------------------------------ */

enum { S_WAITING, S_RUNNING, S_CANCELLING, S_DONE, S_CANCELLED, S_FAILED };
static const char *const s_state_names[] = {
    "waiting", "running", "cancelling", "done", "cancelled", "failed",
};

#define S_ENDED_KEPT 16          /* ended backtests remembered */
#define S_RUNS_MAX (S_ENDED_KEPT + 80) /* above the lab queue's 64 waiting */
#define S_ID_MAX 64
#define S_LOCKSTEP_WAIT_MS 10000

typedef struct {
    bool used;
    char id[S_ID_MAX + 1];
    char draft_name[128];
    int state;
    bool cancel;             /* asked by a BacktestCancel */
    bool observed;           /* lockstep: a status query saw the last chunk */
    uint64_t done, total;
    int64_t start_ms, end_ms; /* monotonic; 0: not yet */
    uint64_t ended;          /* order of ending, for forgetting the oldest */
    uint32_t definitions;
    char error[256];
} s_run_t;

struct query_lab_runs {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* a chunk's progress seen, a cancel (lockstep) */
    s_run_t runs[S_RUNS_MAX];
    uint64_t next_id, n_ended;
    uint64_t done, cancelled, failed;
    bool lockstep;           /* FUNNELD_BACKTEST_LOCKSTEP=1 */
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

query_lab_runs_t *query_lab_runs_new(void)
{
    query_lab_runs_t *self = xcalloc(1, sizeof *self);
    pthread_mutex_init(&self->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cv, &ca);
    pthread_condattr_destroy(&ca);
    const char *ls = getenv("FUNNELD_BACKTEST_LOCKSTEP");
    self->lockstep = ls && strcmp(ls, "1") == 0;
    if (self->lockstep)
        log_warn("[lab] FUNNELD_BACKTEST_LOCKSTEP=1: each backtest waits after every log "
                 "chunk until a status query has seen it (for tests)");
    return self;
}

void query_lab_runs_destroy(query_lab_runs_t **self_p)
{
    query_lab_runs_t *self = *self_p;
    if (self == NULL)
        return;
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

static bool s_ended(const s_run_t *r)
{
    return r->state >= S_DONE;
}

/* The run called id, or NULL. Under mu. */
static s_run_t *s_run_find(query_lab_runs_t *self, const char *id)
{
    for (size_t i = 0; i < S_RUNS_MAX; i++)
        if (self->runs[i].used && strcmp(self->runs[i].id, id) == 0)
            return &self->runs[i];
    return NULL;
}

/* End run r in state st (its counter counted, the oldest ended run beyond
 * S_ENDED_KEPT forgotten). Under mu. */
static void s_run_end(query_lab_runs_t *self, s_run_t *r, int st, const char *error)
{
    r->state = st;
    r->end_ms = s_mono_ms();
    r->ended = ++self->n_ended;
    if (error)
        snprintf(r->error, sizeof r->error, "%.255s", error);
    if (st == S_DONE)
        self->done++;
    else if (st == S_CANCELLED)
        self->cancelled++;
    else
        self->failed++;
    size_t n = 0;
    s_run_t *oldest = NULL;
    for (size_t i = 0; i < S_RUNS_MAX; i++) {
        s_run_t *e = &self->runs[i];
        if (!e->used || !s_ended(e))
            continue;
        n++;
        if (oldest == NULL || e->ended < oldest->ended)
            oldest = e;
    }
    if (n > S_ENDED_KEPT)
        oldest->used = false;
    pthread_cond_broadcast(&self->cv);
}

static bool s_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > S_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int query_lab_register(query_lab_runs_t *self, Funnel__V1__BacktestQuery *bq, char *err,
                       size_t errlen)
{
    int rc = -1;
    pthread_mutex_lock(&self->mu);
    if (bq->id[0] == '\0') {
        char id[32];
        snprintf(id, sizeof id, "bt-%" PRIu64, ++self->next_id);
        /* The request's strings are protobuf-c's: freed by free_unpacked. */
        if (bq->id != protobuf_c_empty_string)
            free(bq->id);
        bq->id = xstrdup(id);
    } else if (!s_id_ok(bq->id)) {
        snprintf(err, errlen, "backtest id: at most %d bytes of letters, digits, '.', '_' "
                 "and '-'", S_ID_MAX);
        goto out;
    }
    if (s_run_find(self, bq->id)) {
        snprintf(err, errlen, "a backtest with id %s is known already: choose another id",
                 bq->id);
        goto out;
    }
    s_run_t *r = NULL;
    for (size_t i = 0; i < S_RUNS_MAX && r == NULL; i++)
        if (!self->runs[i].used)
            r = &self->runs[i];
    if (r == NULL) {
        snprintf(err, errlen, "busy: too many backtests waiting; ask again later");
        goto out;
    }
    memset(r, 0, sizeof *r);
    r->used = true;
    snprintf(r->id, sizeof r->id, "%s", bq->id);
    snprintf(r->draft_name, sizeof r->draft_name, "%s",
             bq->draft_name[0] ? bq->draft_name : "draft");
    r->state = S_WAITING;
    rc = 0;
out:
    pthread_mutex_unlock(&self->mu);
    return rc;
}

void query_lab_unregister(query_lab_runs_t *self, const char *id)
{
    pthread_mutex_lock(&self->mu);
    s_run_t *r = s_run_find(self, id);
    if (r)
        r->used = false;
    pthread_mutex_unlock(&self->mu);
}

static void s_status_fill(const s_run_t *r, int64_t now, Funnel__V1__BacktestStatus *st,
                          arena_t *a)
{
    funnel__v1__backtest_status__init(st);
    st->id = arena_strdup(a, r->id);
    st->state = (char *)s_state_names[r->state];
    st->done = r->done;
    st->total = r->total;
    if (r->start_ms)
        st->elapsed_ms = (uint64_t)((r->end_ms ? r->end_ms : now) - r->start_ms);
    st->draft_name = arena_strdup(a, r->draft_name);
    st->definitions = r->definitions;
    st->error = arena_strdup(a, r->error);
}

/* Reply with the runs matching id (empty: every one), cancelling the one
 * named first when cancel. */
static void s_status_reply(query_t *q, const char *id, bool cancel, bus_sock_t *sock,
                           bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    query_lab_runs_t *self = q->lab_runs;
    arena_t *a = arena_new(0);
    char err[160];
    Funnel__V1__BacktestStatusReply sr;
    funnel__v1__backtest_status_reply__init(&sr);
    if (cancel && (id == NULL || id[0] == '\0')) {
        r->error = (char *)"backtest_cancel: name the backtest (its id)";
        goto send;
    }
    pthread_mutex_lock(&self->mu);
    int64_t now = s_mono_ms();
    sr.backtests = arena_calloc(a, S_RUNS_MAX, sizeof *sr.backtests);
    s_run_t *named = id && id[0] ? s_run_find(self, id) : NULL;
    if (id && id[0] && named == NULL) {
        pthread_mutex_unlock(&self->mu);
        snprintf(err, sizeof err, "no backtest with id %.64s (funneld remembers the last "
                 "%d that ended)", id, S_ENDED_KEPT);
        r->error = err;
        goto send;
    }
    if (cancel && !s_ended(named) && !named->cancel) {
        named->cancel = true;
        if (named->state == S_RUNNING)
            named->state = S_CANCELLING;
        else /* waiting: it will not start */
            s_run_end(self, named, S_CANCELLED, NULL);
        log_info("[lab] backtest %s: cancel asked (%s)", named->id,
                 named->state == S_CANCELLED ? "it had not started" : "it stops at the end of "
                 "its log chunk");
        pthread_cond_broadcast(&self->cv);
    }
    bool seen = false;
    for (size_t i = 0; i < S_RUNS_MAX; i++) {
        s_run_t *e = &self->runs[i];
        if (!e->used || (named && e != named))
            continue;
        Funnel__V1__BacktestStatus *st = arena_calloc(a, 1, sizeof *st);
        s_status_fill(e, now, st, a);
        sr.backtests[sr.n_backtests++] = st;
        if (e->state == S_RUNNING && !e->observed) {
            e->observed = true;
            seen = true;
        }
    }
    if (seen)
        pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_BACKTEST_STATUS;
    r->backtest_status = &sr;
send:
    query_reply(sock, msg, r);
    r->backtest_status = NULL;
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    arena_destroy(&a);
}

void query_lab_status(query_t *q, const Funnel__V1__BacktestStatusQuery *sq,
                      bus_sock_t *sock, bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    s_status_reply(q, sq ? sq->id : NULL, false, sock, msg, r);
}

void query_lab_cancel(query_t *q, const Funnel__V1__BacktestCancel *bc, bus_sock_t *sock,
                      bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    s_status_reply(q, bc ? bc->id : NULL, true, sock, msg, r);
}

void query_lab_stats(const query_t *q, Funnel__V1__Stats *s)
{
    query_lab_runs_t *self = q->lab_runs;
    if (self == NULL)
        return;
    pthread_mutex_lock(&self->mu);
    s->backtests_done = self->done;
    s->backtests_cancelled = self->cancelled;
    s->backtests_failed = self->failed;
    for (size_t i = 0; i < S_RUNS_MAX; i++)
        if (self->runs[i].used && !s_ended(&self->runs[i]))
            s->backtests_running++;
    pthread_mutex_unlock(&self->mu);
}

/* The lab thread's side of one backtest. */
typedef struct {
    query_lab_runs_t *runs;
    char id[S_ID_MAX + 1];
    uint64_t done, total;    /* as far as it came */
    bool cancelled;          /* by a BacktestCancel */
    bool failed;             /* with error */
    char error[256];
    uint32_t definitions;    /* replayed (once known) */
    const atomic_int *stop;  /* the lab thread is stopping */
} s_track_t;

/* The backtest starts running: 0, or -1 when it was cancelled while it
 * waited (ended here). */
static int s_track_start(s_track_t *t)
{
    if (t->runs == NULL)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&t->runs->mu);
    s_run_t *r = s_run_find(t->runs, t->id);
    if (r && r->cancel) {
        t->cancelled = true;
        if (!s_ended(r))
            s_run_end(t->runs, r, S_CANCELLED, NULL);
        rc = -1;
    } else if (r) {
        r->state = S_RUNNING;
        r->start_ms = s_mono_ms();
    }
    pthread_mutex_unlock(&t->runs->mu);
    return rc;
}

/* lab_progress_fn: the progress, and whether it was cancelled. */
static int s_track_progress(uint64_t done, uint64_t total, void *arg)
{
    s_track_t *t = arg;
    t->done = done;
    t->total = total;
    if (t->runs == NULL)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&t->runs->mu);
    s_run_t *r = s_run_find(t->runs, t->id);
    if (r) {
        r->done = done;
        r->total = total;
        r->definitions = t->definitions;
        r->observed = false;
        if (t->runs->lockstep && !r->cancel && done > 0 && done < total) {
            /* In slices, so that a stopping thread does not wait long. */
            int64_t until = s_mono_ms() + S_LOCKSTEP_WAIT_MS;
            while (!r->observed && !r->cancel && !(t->stop && atomic_load(t->stop)) &&
                   s_mono_ms() < until) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_nsec += 50 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&t->runs->cv, &t->runs->mu, &ts);
            }
        }
        if (r->cancel) {
            t->cancelled = true;
            rc = 1;
        }
    }
    pthread_mutex_unlock(&t->runs->mu);
    return rc;
}

/* The backtest ended: done, cancelled, or failed (with t->error). */
static void s_track_end(s_track_t *t)
{
    if (t->runs == NULL)
        return;
    pthread_mutex_lock(&t->runs->mu);
    s_run_t *r = s_run_find(t->runs, t->id);
    if (r && !s_ended(r))
        s_run_end(t->runs, r, t->cancelled ? S_CANCELLED : t->failed ? S_FAILED : S_DONE,
                  t->failed ? t->error : NULL);
    pthread_mutex_unlock(&t->runs->mu);
}

/* The error reply msg, the backtest failed with it. */
static uint8_t *s_bt_error(s_track_t *t, const char *request_id, const char *msg,
                           size_t *len)
{
    t->failed = true;
    snprintf(t->error, sizeof t->error, "%.255s", msg);
    return s_error(request_id, msg, len);
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
    s_track_t tr = { .runs = q->lab_runs, .stop = cancel };
    snprintf(tr.id, sizeof tr.id, "%s", bq->id);

    if (s_track_start(&tr) == -1) {
        snprintf(err, sizeof err, "backtest %s cancelled before it started", bq->id);
        out = s_error(req->request_id, err, len);
        goto done;
    }

    if ((defs[0] = s_live(q, err, sizeof err)) == NULL ||
        (defs[1] = s_draft(bq->draft, bq->draft_name, err, sizeof err)) == NULL) {
        out = s_bt_error(&tr, req->request_id, err, len);
        goto done;
    }
    if (bq->until_ms && bq->since_ms >= bq->until_ms) {
        out = s_bt_error(&tr, req->request_id, "the time window is empty (since is not before "
                      "until)", len);
        goto done;
    }
    if (bq->sweep_key[0]) {
        if (!(bq->sweep_step > 0) || !(bq->sweep_to >= bq->sweep_from)) {
            out = s_bt_error(&tr, req->request_id, "sweep: FROM:TO:STEP wants FROM <= TO and a "
                          "STEP above 0", len);
            goto done;
        }
        double span = (bq->sweep_to - bq->sweep_from) / bq->sweep_step;
        if (span + 1 > S_SWEEP_MAX + 1e-9) {
            snprintf(err, sizeof err, "sweep: %.0f values; at most %d", span + 1,
                     S_SWEEP_MAX);
            out = s_bt_error(&tr, req->request_id, err, len);
            goto done;
        }
        n_sweep = (size_t)(span + 1e-9) + 1;
        for (size_t i = 0; i < n_sweep; i++) {
            double v = bq->sweep_from + (double)i * bq->sweep_step;
            defs[2 + i] = s_draft(bq->draft, bq->draft_name, err, sizeof err);
            if (defs[2 + i] == NULL ||
                defn_set_threshold(defs[2 + i], bq->sweep_key, v, err, sizeof err) == -1) {
                out = s_bt_error(&tr, req->request_id, err, len);
                goto done;
            }
        }
    }
    n_labs = 2 + n_sweep;
    tr.definitions = (uint32_t)n_labs;
    for (size_t i = 0; i < n_labs; i++)
        labs[i] = lab_new(defs[i], q->pipeline);

    int64_t now;
    uint64_t upto;
    if (s_now(q, &now, &upto) == -1) {
        out = s_bt_error(&tr, req->request_id, "storage error", len);
        goto done;
    }
    int64_t t0 = s_mono_ms(), c0 = s_cpu_ms();
    long n = lab_replay_log(q->store, upto, bq->since_ms, bq->until_ms, labs, n_labs,
                            cancel, s_track_progress, &tr);
    if (n == -2 && tr.cancelled) {
        snprintf(err, sizeof err, "backtest %s cancelled after %" PRIu64 " of %" PRIu64
                 " log entries", bq->id, tr.done, tr.total);
        out = s_error(req->request_id, err, len);
        goto done;
    }
    if (n < 0) {
        out = s_bt_error(&tr, req->request_id,
                         n == -2 ? "funneld is stopping" : "storage error", len);
        goto done;
    }
    for (size_t i = 0; i < n_labs; i++)
        lab_finish(labs[i], now);
    int64_t elapsed = s_mono_ms() - t0, cpu = s_cpu_ms() - c0;

    Funnel__V1__BacktestReply br;
    funnel__v1__backtest_reply__init(&br);
    if (s_side(labs[0], now, &reps[0], a, &br.live, &rerr) < 0 ||
        s_side(labs[1], now, &reps[1], a, &br.draft, &rerr) < 0) {
        out = s_bt_error(&tr, req->request_id, rerr, len);
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
            out = s_bt_error(&tr, req->request_id, rerr, len);
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
    if (tr.cancelled)
        log_info("[lab] backtest %s cancelled after %" PRIu64 " of %" PRIu64 " log entries; "
                 "its scratch states are freed", bq->id, tr.done, tr.total);
    else if (tr.failed)
        log_info("[lab] backtest %s failed after %" PRIu64 " of %" PRIu64 " log entries: %s",
                 bq->id, tr.done, tr.total, tr.error);
    else
        log_info("[lab] backtest %s of %s: %" PRIu64 " log entries through %zu definitions",
                 bq->id, bq->draft_name[0] ? bq->draft_name : "draft", tr.done, n_labs);
    s_track_end(&tr);
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
