/* query_lead.c: the lead query (see query_int.h).
 *
 * A plain lead query answers the stored record, decoded and re-encoded
 * with its scores decayed to the daemon's time (query_now_ms), and the
 * newest events of its timeline.
 *
 * With LeadQuery.ledger or LeadQuery.as_of_ms the lead is replayed: its
 * chain of events is read back from the log, in the query's read snapshot,
 * and fed through the same handlers pipeline as live ingest (replay.h),
 * in memory: nothing is written. as_of_ms keeps the events of event time
 * up to it (and the deadlines due by then), and shows the lead decayed to
 * it; ledger answers every score change since the first event instead of
 * the newest few the record keeps. The definition is the one in use now,
 * so after an edit the replay says what today's rules make of the lead's
 * history, which may differ from what the stored record says.
 *
 * Read-your-writes without waiting: with partitions the state applies an
 * event after its Ack, up to two groups behind the log at full load. A
 * lead with events logged but not applied yet (store_read_lead_pending)
 * is answered from its record as of the snapshot with those events
 * replayed on top of it, from the log, in the same snapshot (the chain
 * from the lead's newest entry back to the partition's applied sequence):
 * what the partition will store once it applies them (replay.h), without
 * waiting for its group. When another lead of the slot logged last, the
 * entries not applied yet are scanned for the lead's newest; only when
 * there are too many of them (a state catching up at start-up), or the
 * slots cannot tell, does the query wait for the partition.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "ingest.h"
#include "log.h"
#include "query_int.h"
#include "replay.h"
#include "strcopy.h"
#include "xalloc.h"

#define S_TIMELINE_DEFAULT 100
#define S_TIMELINE_MAX 10000

int64_t query_now_ms(const query_t *q)
{
    return q->event_clock ? store_read_watermark(q->store) : ingest_wall_ms();
}

/* What one lead query holds until its reply is sent: the reply borrows
 * from all of it. */
typedef struct {
    const query_t *q;
    const defn_t *d;
    int64_t as_of;              /* replay: events up to it (INT64_MAX: all) */
    size_t limit;               /* timeline entries kept, newest */
    /* The timeline: a ring of the newest `limit` events (replays see the
     * whole chain), then laid out oldest first in ptrs. */
    Funnel__V1__Event **ring;
    size_t n_seen;
    uint64_t *ring_seq;
    Funnel__V1__TimelineEntry *entries;
    Funnel__V1__TimelineEntry **ptrs;
    size_t n_timeline;
    replay_t *replay;
    hnd_lead_t lead;
    codec_lead_scratch_t scratch;
    Funnel__V1__Lead pb;
    Funnel__V1__LedgerEntry *ledger;        /* the whole ledger (replay) */
    Funnel__V1__LedgerEntry **ledger_ptrs;
    Funnel__V1__LedgerCarry no_carry[2];
    /* A replay of a lead whose older events log retention dropped starts
     * from its record in the oldest checkpoint (seeded), replaying only
     * the events after that checkpoint's sequence (from_seq). */
    bool seeded;
    uint64_t from_seq;
    int64_t newest_ms;          /* newest event time replayed after from_seq */
    hnd_carry_t seed_carry[2];   /* the seed's carry-overs (fit, engagement) */
} s_work_t;

/* Keep ev (owned) as the newest timeline entry; the oldest goes when the
 * ring is full. */
static void s_keep(s_work_t *w, uint64_t seq, Funnel__V1__Event *ev)
{
    size_t at = w->n_seen % w->limit;
    if (w->n_seen >= w->limit)
        funnel__v1__event__free_unpacked(w->ring[at], NULL);
    w->ring[at] = ev;
    w->ring_seq[at] = seq;
    w->n_seen++;
}

static void s_lay_out_timeline(s_work_t *w)
{
    size_t n = w->n_seen < w->limit ? w->n_seen : w->limit;
    size_t first = w->n_seen - n;
    for (size_t i = 0; i < n; i++) {
        size_t at = (first + i) % w->limit;
        Funnel__V1__TimelineEntry *e = &w->entries[i];
        funnel__v1__timeline_entry__init(e);
        e->seq = w->ring_seq[at];
        e->event = w->ring[at];
        w->ptrs[i] = e;
    }
    w->n_timeline = n;
}

static const char *s_attr(const Funnel__V1__Event *ev, const char *key)
{
    for (size_t i = 0; i < ev->n_attrs; i++)
        if (strcmp(ev->attrs[i]->key, key) == 0)
            return ev->attrs[i]->value;
    return NULL;
}

/* store_event_fn of a plain lead query: the timeline. funneld's own log
 * entries ($deadline) show in the lead's friction history, not among its
 * events. */
static void s_on_timeline_event(uint64_t seq, const void *raw, size_t len,
                                void *arg)
{
    s_work_t *w = arg;
    Funnel__V1__Event *ev = funnel__v1__event__unpack(NULL, len, raw);
    if (ev == NULL)
        return;
    if (ev->type[0] == '$') {
        funnel__v1__event__free_unpacked(ev, NULL);
        return;
    }
    s_keep(w, seq, ev);
}

/* store_event_fn of a replay: the event through the handlers, a logged
 * deadline through pipeline_deadline; those after w->as_of are left out. */
static void s_on_replay_event(uint64_t seq, const void *raw, size_t len,
                              void *arg)
{
    s_work_t *w = arg;
    Funnel__V1__Event *ev = funnel__v1__event__unpack(NULL, len, raw);
    if (ev == NULL) {
        log_warn("[query] log event %" PRIu64 " is not decodable; replay skips it",
                 seq);
        return;
    }
    if (seq <= w->from_seq) {
        /* Already in the record the replay started from (a checkpoint's,
         * or the state's for the events not applied yet). */
        if (ev->type[0] != '$' && ev->occurred_at_ms <= w->as_of)
            s_keep(w, seq, ev);
        else
            funnel__v1__event__free_unpacked(ev, NULL);
        return;
    }
    if (ev->occurred_at_ms > w->newest_ms)
        w->newest_ms = ev->occurred_at_ms;
    if (strcmp(ev->type, INGEST_DEADLINE_TYPE) == 0) {
        const char *kind = s_attr(ev, "kind"), *due = s_attr(ev, "due_ms");
        if (kind && due) {
            int64_t due_ms = strtoll(due, NULL, 10);
            if (due_ms <= w->as_of)
                (void)replay_deadline(w->replay, w->d, kind, due_ms,
                                      ev->occurred_at_ms, seq);
        }
        funnel__v1__event__free_unpacked(ev, NULL);
        return;
    }
    if (ev->occurred_at_ms > w->as_of) {
        funnel__v1__event__free_unpacked(ev, NULL);
        return;
    }
    hnd_kv_t kv[HND_ATTRS_MAX];
    hnd_event_t hev;
    codec_event_view(ev, kv, &hev);
    hev.log_seq = seq;
    (void)replay_event(w->replay, w->q->pipeline, w->d, &hev);
    s_keep(w, seq, ev);
}

/* The replayed lead into w->pb, as of `at`; with whole_ledger, every score
 * change instead of the newest few. */
static void s_replayed_pb(s_work_t *w, const hnd_lead_t *lead, int64_t at,
                          bool whole_ledger)
{
    codec_lead_to_pb_at(lead, w->d, at, &w->pb, &w->scratch);
    w->pb.as_of_ms = w->pb.scores_as_of_ms;
    if (!whole_ledger)
        return;
    size_t n;
    const hnd_ledger_t *all = replay_ledger(w->replay, &n);
    w->ledger = xcalloc(n ? n : 1, sizeof *w->ledger);
    w->ledger_ptrs = xcalloc(n ? n : 1, sizeof *w->ledger_ptrs);
    for (size_t i = 0; i < n; i++) {
        const hnd_ledger_t *e = &all[i];
        Funnel__V1__LedgerEntry *p = &w->ledger[i];
        funnel__v1__ledger_entry__init(p);
        p->kind = e->kind == HND_LEDGER_FIT ? (char *)"fit" : (char *)"engagement";
        p->rule = (char *)e->rule;
        p->event_id = (char *)e->event_id;
        p->seq = e->seq;
        p->at_ms = e->at_ms;
        p->points = e->points;
        p->current = hnd_ledger_value_at(w->d, lead, e, at);
        w->ledger_ptrs[i] = p;
    }
    w->pb.n_ledger = n;
    w->pb.ledger = w->ledger_ptrs;
    for (int k = 0; k < 2; k++)
        funnel__v1__ledger_carry__init(&w->no_carry[k]);
    w->pb.older_fit = &w->no_carry[0];
    w->pb.older_engagement = &w->no_carry[1];
    w->pb.ledger_complete = !w->seeded;
    if (!w->seeded)
        return;
    /* From the checkpoint on: what the record then carried over stays
     * carried over, decayed to `at` as the lead's own would be. */
    hnd_lead_t *tmp = xmalloc(sizeof *tmp);
    *tmp = *lead;
    tmp->older_fit = w->seed_carry[0];
    tmp->older_engagement = w->seed_carry[1];
    for (int k = 0; k < 2; k++) {
        Funnel__V1__LedgerCarry *pc = &w->no_carry[k];
        pc->entries = w->seed_carry[k].entries;
        pc->points = w->seed_carry[k].points;
        pc->value = w->seed_carry[k].value;
        pc->value_at_ms = w->seed_carry[k].value_at_ms;
        pc->current = hnd_carry_value_at(w->d, tmp,
                                         k == 0 ? HND_LEDGER_FIT : HND_LEDGER_ENGAGEMENT, at);
    }
    free(tmp);
}

/* Log retention dropped events before the log's first: start the replay
 * from the lead's record in the oldest checkpoint, when it holds the lead
 * (a lead first seen after it has its whole chain in the log). Returns 0,
 * or -1 with r->error set. Query thread, in a read snapshot. */
static int s_seed_from_checkpoint(s_work_t *w, const char *lead_id,
                                  Funnel__V1__QueryReply *r)
{
    uint64_t first, last, bytes, dropped;
    store_log_read(w->q->store, &first, &last, &bytes, &dropped);
    if (first <= 1)
        return 0;
    store_ckpt_lead_t cl;
    /* In the lead's partition's checkpoints. */
    store_t *part = store_part(w->q->store, store_part_index(w->q->store, lead_id));
    int got = store_checkpoint_lead(store_ckpt_root(part), first, lead_id, &cl);
    if (got < 0) {
        r->error = (char *)"storage error reading the lead from the oldest checkpoint";
        return -1;
    }
    if (got == 0)
        return 0;
    int rc = codec_lead_decode(cl.buf, cl.len, w->d, &w->lead);
    free(cl.buf);
    if (rc != 0) {
        r->error = (char *)"the lead in the oldest checkpoint is not decodable";
        return -1;
    }
    hnd_deadline_t dl[STORE_LEAD_DEADLINES];
    memset(dl, 0, sizeof dl);
    for (size_t i = 0; i < cl.n_deadlines; i++) {
        snprintf(dl[i].kind, sizeof dl[i].kind, "%s", cl.deadlines[i].kind);
        dl[i].due_ms = cl.deadlines[i].due_ms;
    }
    replay_seed(w->replay, &w->lead, dl, cl.n_deadlines);
    w->seeded = true;
    w->from_seq = cl.ckpt.seq;
    w->seed_carry[0] = w->lead.older_fit;
    w->seed_carry[1] = w->lead.older_engagement;
    return 0;
}

/* Log entries not applied yet that a lead query scans for its lead's
 * newest when another lead of its slot logged last: the lag bound is
 * twice group_max_events (16,000 by default), about 1.5 ms of scanning;
 * beyond it (a state catching up at start-up) the query waits instead. */
#define S_PENDING_SCAN_MAX 65536

typedef struct {
    const char *lead_id;
    size_t len;
    uint64_t newest;            /* the newest entry of the lead seen, or 0 */
} s_head_t;

static void s_on_head(uint64_t seq, const void *raw, size_t len, void *arg)
{
    s_head_t *h = arg;
    const uint8_t *id;
    size_t n;
    if (codec_event_lead_peek(raw, len, &id, &n) == 0 && n == h->len &&
        memcmp(id, h->lead_id, n) == 0)
        h->newest = seq;
}

/* Whether lead_id's events are in the state as of the snapshot (0), or
 * some are still to be applied and the log entry at *head is the lead's
 * newest (1), or neither can be told (-1: wait, then read the state). */
static int s_pending(const query_t *q, const char *lead_id, uint64_t *head, uint64_t *applied)
{
    int pending = store_read_lead_pending(q->store, lead_id, head, applied);
    if (pending != 1)
        return pending;
    s_head_t h = {lead_id, strlen(lead_id), 0};
    if (store_read_log(q->store, *head, 1, s_on_head, &h) == 1 && h.newest == *head)
        return 1;
    /* Another lead of the slot logged last: the lead's own newest entry,
     * if any, is among those not applied yet. */
    long n = store_read_log(q->store, *applied + 1, S_PENDING_SCAN_MAX, s_on_head, &h);
    if (n < 0 || n == S_PENDING_SCAN_MAX)
        return -1;
    if (h.newest == 0)
        return 0;
    *head = h.newest;
    return 1;
}

/* A plain lead query of a lead with events not applied yet: its record
 * (if any), with its pending deadlines, seeds a replay of the events of
 * its chain after the partition's applied sequence. */
static void s_answer_pending(s_work_t *w, const char *lead_id, int found, const void *buf,
                             size_t len, uint64_t head, uint64_t applied, int64_t now,
                             Funnel__V1__QueryReply *r, Funnel__V1__LeadReply *lr)
{
    w->replay = replay_new();
    w->as_of = INT64_MAX;
    w->from_seq = applied;
    if (found == 1) {
        if (codec_lead_decode(buf, len, w->d, &w->lead) != 0) {
            r->error = (char *)"the stored lead is not decodable";
            return;
        }
        store_lead_deadline_t sd[STORE_LEAD_DEADLINES];
        hnd_deadline_t dl[STORE_LEAD_DEADLINES];
        long n = store_read_lead_deadlines(w->q->store, lead_id, sd, STORE_LEAD_DEADLINES);
        if (n < 0) {
            r->error = (char *)"storage error";
            return;
        }
        memset(dl, 0, sizeof dl);
        for (long i = 0; i < n; i++) {
            strcopy(dl[i].kind, sizeof dl[i].kind, sd[i].kind);
            dl[i].due_ms = sd[i].due_ms;
        }
        replay_seed(w->replay, &w->lead, dl, (size_t)n);
    }
    if (store_read_chain(w->q->store, lead_id, head, applied, w->limit, s_on_replay_event,
                         w) < 0) {
        r->error = (char *)"storage error reading the lead's timeline";
        return;
    }
    const hnd_lead_t *lead = replay_lead(w->replay);
    if (lead == NULL)
        return; /* a new lead whose events were all refused */
    /* On the event clock the state's watermark moves to these events'
     * times once they are applied. */
    if (w->q->event_clock && w->newest_ms > now)
        now = w->newest_ms;
    codec_lead_to_pb_at(lead, w->d, now, &w->pb, &w->scratch);
    lr->found = true;
    lr->lead = &w->pb;
}

void query_lead(query_t *q, const Funnel__V1__LeadQuery *lq, bus_sock_t *sock,
                bus_msg_t *msg, Funnel__V1__QueryReply *r)
{
    Funnel__V1__LeadReply lr;
    s_work_t *w = xcalloc(1, sizeof *w);
    const void *buf;
    size_t len;

    funnel__v1__lead_reply__init(&lr);
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY_LEAD;
    r->lead = &lr;
    w->q = q;
    w->d = *q->defn_p;
    w->limit = lq->timeline_limit ? lq->timeline_limit : S_TIMELINE_DEFAULT;
    if (w->limit > S_TIMELINE_MAX)
        w->limit = S_TIMELINE_MAX;
    w->ring = xcalloc(w->limit, sizeof *w->ring);
    w->ring_seq = xcalloc(w->limit, sizeof *w->ring_seq);
    w->entries = xcalloc(w->limit, sizeof *w->entries);
    w->ptrs = xcalloc(w->limit, sizeof *w->ptrs);
    bool replay = lq->ledger || lq->as_of_ms != 0;

    if (lq->lead_id == NULL || lq->lead_id[0] == '\0') {
        r->error = (char *)"lead query without lead_id";
        goto refuse;
    }
    if (lq->as_of_ms < 0) {
        r->error = (char *)"lead query: as_of_ms before 1970";
        goto refuse;
    }
    if (store_read_begin(q->store) != STORE_OK) {
        r->error = (char *)"storage error";
        goto refuse;
    }
    uint64_t head = 0, applied = 0;
    int pending = s_pending(q, lq->lead_id, &head, &applied);
    if (pending < 0) {
        /* Read-your-writes the slow way: wait for the lead's partition to
         * apply what its slot says was logged (bounded), then read. */
        store_read_end(q->store);
        query_sync_lead(q, lq->lead_id);
        if (store_read_begin(q->store) != STORE_OK) {
            r->error = (char *)"storage error";
            goto refuse;
        }
        pending = 0;
    }
    int64_t now = query_now_ms(q);
    int found = store_read_lead(q->store, lq->lead_id, &buf, &len);
    if (found >= 0 && pending == 1 && !replay) {
        s_answer_pending(w, lq->lead_id, found, buf, len, head, applied, now, r, &lr);
    } else if (found == 1 && !replay) {
        if (codec_lead_decode(buf, len, w->d, &w->lead) == 0) {
            codec_lead_to_pb_at(&w->lead, w->d, now, &w->pb, &w->scratch);
            lr.found = true;
            lr.lead = &w->pb;
            if (store_read_timeline(q->store, lq->lead_id, w->limit,
                                    s_on_timeline_event, w) < 0)
                r->error = (char *)"storage error reading the lead's timeline";
        } else {
            r->error = (char *)"the stored lead is not decodable";
        }
    } else if (found == 1 || (found == 0 && pending == 1)) {
        /* The whole chain, from the lead's newest logged event. */
        w->replay = replay_new();
        w->as_of = lq->as_of_ms ? lq->as_of_ms : INT64_MAX;
        if (s_seed_from_checkpoint(w, lq->lead_id, r) < 0) {
            /* r->error says why */
        } else if (store_read_chain(q->store, lq->lead_id, pending == 1 ? head : 0, UINT64_MAX,
                                    SIZE_MAX, s_on_replay_event, w) < 0) {
            r->error = (char *)"storage error reading the lead's events";
        } else if (replay_lead(w->replay) != NULL) {
            s_replayed_pb(w, replay_lead(w->replay), lq->as_of_ms ? lq->as_of_ms : now,
                          lq->ledger);
            lr.found = true;
            lr.lead = &w->pb;
        }
    } else if (found < 0) {
        r->error = (char *)"storage error";
    }
    store_read_end(q->store);
    s_lay_out_timeline(w);
    lr.n_timeline = w->n_timeline;
    lr.timeline = w->ptrs;
    goto send;

refuse:
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
send:
    query_reply(sock, msg, r);
    r->lead = NULL; /* it pointed into this frame */
    r->reply_case = FUNNEL__V1__QUERY_REPLY__REPLY__NOT_SET;
    size_t kept = w->n_seen < w->limit ? w->n_seen : w->limit;
    for (size_t i = 0; i < kept; i++)
        funnel__v1__event__free_unpacked(w->ring[i], NULL);
    free(w->ring);
    free(w->ring_seq);
    free(w->entries);
    free(w->ptrs);
    free(w->ledger);
    free(w->ledger_ptrs);
    replay_destroy(&w->replay);
    free(w);
}
