/* test_partition.c: a partition thread applying what the test (the store's
 * owner) logs, on a real LMDB store in a temporary directory: log order,
 * read-your-writes through store_wait_applied, duplicates recognised while
 * logged and not applied, each lead's previous event, a stop behind the
 * log that the next open finds to replay, map growth inside the
 * partition's groups, the state's map grown ahead of a checkpoint when
 * asked, and the lead-to-partition assignment; and four
 * partitions, each over a state of its own (store_open_part) sharing the
 * log: each applies only its leads, reads on the primary merge them
 * (counters, leads listing, deadlines), duplicates and each lead's
 * previous event come from the lead's partition, and one stopped behind
 * the log alone replays; entries the owner holds decoded (ops.decoded)
 * are applied as held, the others decoded from the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "partition.h"
#include "store.h"

typedef struct {
    char dir[64];
    uint64_t last_applied; /* as ops.applied saw it */
    uint64_t order_errors; /* entries applied out of log order */
    uint64_t prev;         /* the last sequence applied */
    int applied_calls;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = test_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/funneld-test-part-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    test_free(f);
    return 0;
}

static store_t *open_store(const fixture_t *f, size_t map)
{
    char err[256] = "";
    store_t *s = store_open(f->dir, map, err, sizeof err);
    if (s == NULL)
        fail_msg("store_open: %s", err);
    return s;
}

/* The partition's apply: each event indexed and counted per lead, its
 * lead's record (a few bytes) written with the event as its last. */
static store_t *g_store;

static int fake_apply(void *arg, const partition_entry_t *e, size_t n)
{
    fixture_t *f = arg;
    for (size_t i = 0; i < n; i++) {
        if (e[i].seq != f->prev + 1)
            f->order_errors++;
        f->prev = e[i].seq;
        char key[200];
        snprintf(key, sizeof key, "n/%s", e[i].ev->lead_id);
        const void *buf;
        size_t len;
        uint64_t last;
        if (store_lead_get(g_store, e[i].ev->lead_id, &buf, &len, &last) < 0)
            return -1;
        store_event_replayed(g_store, e[i].ev->lead_id, e[i].ev->id, e[i].seq);
        store_counter_add(g_store, key, 1);
        store_lead_put(g_store, e[i].ev->lead_id, e[i].seq, "lead", 4);
        store_stats(g_store)->applied++;
    }
    return 0;
}

static void fake_aborted(void *arg)
{
    fixture_t *f = arg;
    f->prev = store_applied_seq(g_store); /* redone from there */
}

static void fake_applied(void *arg, uint64_t applied_seq)
{
    fixture_t *f = arg;
    f->last_applied = applied_seq;
    f->applied_calls++;
}

static partition_t *start(fixture_t *f, store_t *s)
{
    g_store = s;
    f->prev = store_applied_seq(s);
    partition_ops_t ops = {.apply = fake_apply, .aborted = fake_aborted,
                           .applied = fake_applied};
    partition_opts_t opts = {.chunk_events = 100, .index = 0};
    partition_t *p = partition_new(s, &ops, f, &opts);
    assert_int_equal(partition_start(p), 0);
    return p;
}

/* Log one event in its own log group: 1 logged (its sequence in *seq and
 * the lead's previous in *prev), 0 a duplicate. */
static int log_one(store_t *s, const char *lead, const char *id, uint64_t *seq,
                   uint64_t *prev)
{
    Funnel__V1__Event ev;
    funnel__v1__event__init(&ev);
    ev.id = (char *)id;
    ev.lead_id = (char *)lead;
    ev.type = (char *)"page_view";
    ev.source = FUNNEL__V1__SOURCE__SOURCE_MARKETING;
    ev.occurred_at_ms = 1700000000000;
    uint8_t buf[512];
    size_t len = funnel__v1__event__pack(&ev, buf);
    assert_int_equal(store_log_begin(s), STORE_OK);
    int c = store_log_claim(s, lead, id, false, prev);
    assert_true(c >= 0);
    if (c == 1)
        *seq = store_log_append(s, lead, id, *prev, buf, len); /* 0: see the commit */
    int rc = store_log_commit(s);
    if (rc == STORE_EFULL) {
        assert_int_equal(store_grow(s), STORE_OK);
        return log_one(s, lead, id, seq, prev);
    }
    assert_int_equal(rc, STORE_OK);
    return c;
}

/* Log events i = from .. from+n-1 (lead "<lead_fmt % (i % leads)>", id
 * "e<i>") in one log group. Returns the last sequence. */
static uint64_t log_group(store_t *s, const char *lead_fmt, int leads, int from, int n)
{
    assert_int_equal(store_log_begin(s), STORE_OK);
    uint64_t seq = 0;
    for (int i = from; i < from + n; i++) {
        char lead[64], id[64];
        snprintf(lead, sizeof lead, lead_fmt, i % leads);
        snprintf(id, sizeof id, "e%d", i);
        Funnel__V1__Event ev;
        funnel__v1__event__init(&ev);
        ev.id = id;
        ev.lead_id = lead;
        ev.type = (char *)"page_view";
        ev.occurred_at_ms = 1700000000000;
        uint8_t buf[512];
        size_t len = funnel__v1__event__pack(&ev, buf);
        uint64_t prev;
        assert_int_equal(store_log_claim(s, lead, id, false, &prev), 1);
        seq = store_log_append(s, lead, id, prev, buf, len);
    }
    int rc = store_log_commit(s);
    if (rc == STORE_EFULL) {
        assert_int_equal(store_grow(s), STORE_OK);
        return log_group(s, lead_fmt, leads, from, n);
    }
    assert_int_equal(rc, STORE_OK);
    return seq;
}

static int64_t read_counter(store_t *s, const char *key)
{
    assert_int_equal(store_read_begin(s), STORE_OK);
    int64_t v = store_read_counter(s, key);
    store_read_end(s);
    return v;
}

static void test_applies_in_log_order(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 4 << 20);
    partition_t *p = start(f, s);
    uint64_t seq = 0;
    for (int i = 0; i < 1000; i += 10) {
        seq = log_group(s, "L%d", 37, i, 10);
        partition_notify(p);
    }
    /* Read-your-writes: everything committed is applied after the wait. */
    assert_int_equal(store_wait_applied(s, store_committed_seq(s), 30000), 1);
    assert_true(store_applied_published(s) >= seq);
    int64_t total = 0;
    for (int l = 0; l < 37; l++) {
        char key[32];
        snprintf(key, sizeof key, "n/L%d", l);
        total += read_counter(s, key);
    }
    assert_int_equal(total, 1000);
    assert_true(partition_stop(p, 30000));
    assert_int_equal(f->order_errors, 0);
    assert_int_equal(f->last_applied, seq);
    assert_true(f->applied_calls > 0);
    /* The counters of both sides add up, once the state is given back. */
    store_stats_t st;
    uint64_t last;
    store_stats_read(s, &st, &last);
    assert_int_equal(st.applied, 1000);
    assert_int_equal(last, seq);
    partition_destroy(&p);
    store_destroy(&s);
}

static void test_duplicates_in_flight(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 4 << 20);
    partition_t *p = start(f, s);
    uint64_t s1 = 0, s2 = 0, s3 = 0, prev = 99;

    /* Held: what is logged stays unapplied. */
    assert_true(partition_pause(p, 1000));
    assert_int_equal(log_one(s, "L1", "e1", &s1, &prev), 1);
    assert_int_equal(prev, 0);
    partition_notify(p);
    /* Logged, not applied: a duplicate all the same. */
    assert_int_equal(log_one(s, "L1", "e1", &s2, &prev), 0);
    assert_int_equal(store_applied_published(s), 0);
    /* The lead's previous event is the one in flight. */
    assert_int_equal(log_one(s, "L1", "e2", &s2, &prev), 1);
    assert_int_equal(prev, s1);
    /* Another lead with the same event id is another event. */
    assert_int_equal(log_one(s, "L2", "e1", &s3, &prev), 1);
    assert_int_equal(prev, 0);
    partition_resume(p);
    assert_int_equal(store_wait_applied(s, s3, 30000), 1);

    /* Applied: still a duplicate (from the state now), and the lead's
     * previous event comes from its record. */
    assert_int_equal(log_one(s, "L1", "e1", &s3, &prev), 0);
    assert_int_equal(log_one(s, "L1", "e2", &s3, &prev), 0);
    uint64_t s4 = 0;
    assert_int_equal(log_one(s, "L1", "e3", &s4, &prev), 1);
    assert_int_equal(prev, s2);
    assert_true(partition_stop(p, 30000));
    assert_int_equal(read_counter(s, "n/L1"), 3);
    partition_destroy(&p);
    store_destroy(&s);
}

static void test_stop_behind_the_log(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 4 << 20);
    partition_t *p = start(f, s);
    uint64_t seq = 0, prev;
    assert_int_equal(log_one(s, "L1", "a", &seq, &prev), 1);
    partition_notify(p);
    assert_int_equal(store_wait_applied(s, seq, 30000), 1);
    assert_true(partition_pause(p, 1000));
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "b%d", i);
        assert_int_equal(log_one(s, "L1", id, &seq, &prev), 1);
    }
    /* Stopped without waiting: 5 logged events are not applied. */
    assert_false(partition_stop(p, 0));
    partition_destroy(&p);
    assert_int_equal(store_applied_seq(s), 1);
    assert_int_equal(store_last_seq(s), 6);
    store_destroy(&s);

    /* The next open knows what to replay: only what was not applied. */
    s = open_store(f, 4 << 20);
    assert_int_equal(store_applied_seq(s), 1);
    assert_int_equal(store_last_seq(s), 6);
    f->applied_calls = 0;
    p = start(f, s);
    partition_notify(p);
    assert_int_equal(store_wait_applied(s, 6, 30000), 1);
    assert_true(partition_stop(p, 30000));
    assert_int_equal(f->order_errors, 0);
    assert_int_equal(read_counter(s, "n/L1"), 6);
    partition_destroy(&p);
    store_destroy(&s);
}

static void test_map_grows_in_partition(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20); /* 1 MiB maps: both grow */
    partition_t *p = start(f, s);
    uint64_t seq = 0;
    for (int i = 0; i < 6000; i += 100) {
        seq = log_group(s, "lead-with-a-longer-id-%d", 1000000, i, 100);
        partition_notify(p);
    }
    partition_notify(p);
    assert_int_equal(store_wait_applied(s, seq, 60000), 1);
    assert_true(partition_stop(p, 30000));
    assert_int_equal(f->order_errors, 0);
    assert_int_equal(read_counter(s, "n/lead-with-a-longer-id-5999"), 1);
    partition_destroy(&p);
    store_destroy(&s);
}

/* Asked ahead of a checkpoint, the partition thread (the state's writer)
 * grows the state's map at its next group until the state uses at most an
 * eighth of it; the owner cannot (it must not remap the state). */
static void test_state_grown_ahead_when_asked(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20);
    partition_t *p = start(f, s);
    uint64_t seq = 0;
    for (int i = 0; i < 1500; i += 100)
        seq = log_group(s, "lead-with-a-longer-id-%d", 1000000, i, 100);
    partition_notify(p);
    assert_int_equal(store_wait_applied(s, seq, 60000), 1);
    store_usage_t lu, before, after;
    store_usage(s, &lu, &before);
    assert_true(before.used_bytes * 8 > before.map_bytes); /* there is growing to do */
    uint64_t ticket = store_state_ahead_ask(s);
    assert_true(ticket > 0); /* asked: not 0, "nothing to grow" */
    /* Served at a group of the partition's: log until the map grew. */
    store_usage(s, &lu, &after);
    for (int i = 1500; i < 6500 && after.map_bytes < 8 * before.used_bytes; i += 100) {
        seq = log_group(s, "lead-with-a-longer-id-%d", 1000000, i, 100);
        partition_notify(p);
        assert_int_equal(store_wait_applied(s, seq, 60000), 1);
        store_usage(s, &lu, &after);
    }
    assert_true(store_state_ahead_served(s, ticket));
    assert_true(after.map_bytes >= 8 * before.used_bytes);
    assert_true(after.map_bytes > before.map_bytes);
    assert_true(partition_stop(p, 30000));
    partition_destroy(&p);
    store_destroy(&s);
}

static void test_partition_of(void **state)
{
    (void)state;
    unsigned count[4] = {0};
    for (int i = 0; i < 4000; i++) {
        char lead[32];
        snprintf(lead, sizeof lead, "L-%d", i);
        unsigned k = partition_of(lead, 4);
        assert_true(k < 4);
        assert_int_equal(partition_of(lead, 4), k); /* a function of the id */
        assert_int_equal(partition_of(lead, 1), 0);
        count[k]++;
    }
    for (int k = 0; k < 4; k++)
        assert_in_range(count[k], 800, 1200);
}

/* -- P partitions, each over a state of its own -------------------------- */

#define NP 4

typedef struct {
    store_t *st;
    unsigned index;
    uint64_t prev;          /* the last sequence applied */
    uint64_t order_errors;  /* not increasing */
    uint64_t foreign;       /* entries of another partition's leads */
    uint64_t applied;
} part_ctx_t;

static int part_apply(void *arg, const partition_entry_t *e, size_t n)
{
    part_ctx_t *c = arg;
    for (size_t i = 0; i < n; i++) {
        if (e[i].seq <= c->prev)
            c->order_errors++;
        c->prev = e[i].seq;
        if (partition_of(e[i].ev->lead_id, NP) != c->index)
            c->foreign++;
        char key[200];
        snprintf(key, sizeof key, "n/%s", e[i].ev->lead_id);
        const void *buf;
        size_t len;
        uint64_t last;
        if (store_lead_get(c->st, e[i].ev->lead_id, &buf, &len, &last) < 0)
            return -1;
        store_event_replayed(c->st, e[i].ev->lead_id, e[i].ev->id, e[i].seq);
        store_counter_add(c->st, key, 1);
        store_counter_add(c->st, "all", 1);
        /* A deadline per lead, due at its last sequence (in ms). */
        store_deadline_set(c->st, e[i].ev->lead_id, "stall", (int64_t)e[i].seq);
        store_lead_put(c->st, e[i].ev->lead_id, e[i].seq, "lead", 4);
        store_stats(c->st)->applied++;
    }
    return 0;
}

static void part_aborted(void *arg)
{
    part_ctx_t *c = arg;
    c->prev = store_applied_seq(c->st);
}

typedef struct {
    store_t *primary;
    store_t *st[NP];
    part_ctx_t ctx[NP];
    partition_t *p[NP];
} parts_t;

static void parts_open(const fixture_t *f, parts_t *ps)
{
    memset(ps, 0, sizeof *ps);
    ps->primary = open_store(f, 4 << 20);
    ps->st[0] = ps->primary;
    for (unsigned i = 1; i < NP; i++) {
        char name[32], err[256] = "";
        snprintf(name, sizeof name, "state-p%d.%u", NP, i);
        ps->st[i] = store_open_part(ps->primary, name, false, 4 << 20, err, sizeof err);
        if (ps->st[i] == NULL)
            fail_msg("store_open_part: %s", err);
        assert_ptr_equal(store_part(ps->primary, i), ps->st[i]);
    }
    assert_int_equal(store_parts(ps->primary), NP);
}

static void parts_start(parts_t *ps)
{
    partition_ops_t ops = {.apply = part_apply, .aborted = part_aborted};
    for (unsigned i = 0; i < NP; i++) {
        ps->ctx[i].st = ps->st[i];
        ps->ctx[i].index = i;
        ps->ctx[i].prev = store_applied_seq(ps->st[i]);
        partition_opts_t opts = {.chunk_events = 50, .index = i, .count = NP};
        ps->p[i] = partition_new(ps->st[i], &ops, &ps->ctx[i], &opts);
        assert_int_equal(partition_start(ps->p[i]), 0);
    }
}

static void parts_notify(parts_t *ps)
{
    for (unsigned i = 0; i < NP; i++)
        partition_notify(ps->p[i]);
}

static void parts_close(parts_t *ps, bool wait)
{
    for (unsigned i = 0; i < NP; i++) {
        if (wait)
            assert_true(partition_stop(ps->p[i], 30000));
        partition_destroy(&ps->p[i]);
    }
    for (unsigned i = NP; i-- > 1;)
        store_destroy(&ps->st[i]);
    assert_int_equal(store_parts(ps->primary), 1);
    store_destroy(&ps->primary);
}

typedef struct {
    char prev[64];
    int n;
    int64_t sum;
    int out_of_order;
} counters_seen_t;

static void on_counter(const char *key, int64_t value, void *arg)
{
    counters_seen_t *c = arg;
    if (c->n > 0 && strcmp(c->prev, key) >= 0)
        c->out_of_order++;
    snprintf(c->prev, sizeof c->prev, "%s", key);
    c->n++;
    c->sum += value;
}

typedef struct {
    char prev[64];
    int n;
    int out_of_order;
    bool desc;
} leads_seen_t;

static int on_lead(const char *lead_id, size_t id_len, const void *buf, size_t len, void *arg)
{
    leads_seen_t *l = arg;
    (void)id_len;
    (void)buf;
    (void)len;
    int c = l->n > 0 ? strcmp(lead_id, l->prev) : (l->desc ? -1 : 1);
    if (l->desc ? c >= 0 : c <= 0)
        l->out_of_order++;
    snprintf(l->prev, sizeof l->prev, "%s", lead_id);
    l->n++;
    return 0;
}

static void test_partitions_apply_their_own_leads(void **state)
{
    fixture_t *f = *state;
    parts_t ps;
    parts_open(f, &ps);
    parts_start(&ps);
    uint64_t seq = 0;
    for (int i = 0; i < 1000; i += 20) {
        seq = log_group(ps.primary, "L%d", 37, i, 20);
        parts_notify(&ps);
    }
    /* Read-your-writes: the primary waits for every partition. */
    assert_int_equal(store_wait_parts_applied(ps.primary, store_committed_seq(ps.primary), 30000), 1);
    for (unsigned i = 0; i < NP; i++)
        assert_true(store_applied_published(ps.st[i]) >= seq);
    /* Counters add up over the partitions, once each key, in key order;
     * each lead's live in its own partition only; a lead is read in its
     * own. */
    assert_int_equal(read_counter(ps.primary, "all"), 1000);
    assert_int_equal(store_read_begin(ps.primary), STORE_OK);
    counters_seen_t seen = {.n = 0};
    assert_int_equal(store_read_counters(ps.primary, "n/", on_counter, &seen), 37);
    assert_int_equal(seen.n, 37);
    assert_int_equal(seen.sum, 1000);
    assert_int_equal(seen.out_of_order, 0);
    for (int l = 0; l < 37; l++) {
        char lead[16];
        snprintf(lead, sizeof lead, "L%d", l);
        const void *buf;
        size_t len;
        assert_int_equal(store_read_lead(ps.primary, lead, &buf, &len), 1);
        assert_int_equal(store_part_index(ps.primary, lead), partition_of(lead, NP));
    }
    /* The leads listing, merged in id order both ways, from a point. */
    leads_seen_t ls = {.n = 0};
    assert_int_equal(store_read_leads(ps.primary, "", 0, false, on_lead, &ls), 37);
    assert_int_equal(ls.out_of_order, 0);
    leads_seen_t ld = {.desc = true};
    assert_int_equal(store_read_leads(ps.primary, "L5", 2, true, on_lead, &ld), 32);
    assert_int_equal(ld.out_of_order, 0); /* L0..L4, L10..L36 sort before L5 */
    leads_seen_t la = {.n = 0};
    assert_int_equal(store_read_leads(ps.primary, "L5", 2, false, on_lead, &la), 4);
    /* Deadlines: the earliest of them all, merged across partitions. */
    store_due_t due[64], few[5];
    size_t nd = store_deadlines_due(ps.primary, INT64_MAX, 64, due);
    assert_int_equal(nd, 37);
    for (size_t i = 1; i < nd; i++)
        assert_true(due[i - 1].due_ms <= due[i].due_ms);
    assert_int_equal(due[nd - 1].due_ms, (int64_t)seq);
    assert_int_equal(store_deadlines_due(ps.primary, INT64_MAX, 5, few), 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(few[i].lead_id, due[i].lead_id);
    int64_t next = 0;
    assert_int_equal(store_read_next_deadline(ps.primary, &next), 1);
    assert_int_equal(next, due[0].due_ms);
    assert_int_equal(store_read_deadlines_pending(ps.primary), 37);
    store_read_end(ps.primary);
    /* Partitions 1.. read alone (the primary's reads are merged). */
    unsigned used = 0;
    for (unsigned i = 1; i < NP; i++) {
        int64_t n = read_counter(ps.st[i], "all");
        used += n > 0;
        for (int l = 0; l < 37; l++) {
            char key[16], lead[16];
            snprintf(lead, sizeof lead, "L%d", l);
            snprintf(key, sizeof key, "n/L%d", l);
            int64_t v = read_counter(ps.st[i], key);
            if (partition_of(lead, NP) == i)
                assert_true(v > 0);
            else
                assert_int_equal(v, 0);
        }
    }
    assert_true(used > 1);

    /* Duplicates: applied (in the lead's partition), and logged while
     * that partition is held; the lead's previous event from either. */
    uint64_t s1 = 0, s2 = 0, prev = 0;
    assert_int_equal(log_one(ps.primary, "L5", "e5", &s1, &prev), 0);
    unsigned k = partition_of("L5", NP);
    assert_true(partition_pause(ps.p[k], 1000));
    assert_int_equal(log_one(ps.primary, "L5", "new-1", &s1, &prev), 1);
    assert_true(prev > 0 && prev < s1);
    parts_notify(&ps);
    assert_int_equal(log_one(ps.primary, "L5", "new-1", &s2, &prev), 0);
    assert_int_equal(log_one(ps.primary, "L5", "new-2", &s2, &prev), 1);
    assert_int_equal(prev, s1);
    parts_notify(&ps);
    /* The query's wait covers the held partition: not reached. */
    assert_int_equal(store_wait_parts_applied(ps.primary, s2, 50), 0);
    partition_resume(ps.p[k]);
    assert_int_equal(store_wait_parts_applied(ps.primary, s2, 30000), 1);
    assert_int_equal(log_one(ps.primary, "L5", "new-2", &s2, &prev), 0);

    for (unsigned i = 0; i < NP; i++) {
        assert_true(partition_stop(ps.p[i], 30000));
        assert_int_equal(ps.ctx[i].order_errors, 0);
        assert_int_equal(ps.ctx[i].foreign, 0);
    }
    store_stats_t st;
    uint64_t last;
    store_stats_read(ps.primary, &st, &last);
    assert_int_equal(st.applied, 1002);
    parts_close(&ps, false);
}

static void test_partition_stopped_behind_replays_alone(void **state)
{
    fixture_t *f = *state;
    parts_t ps;
    parts_open(f, &ps);
    parts_start(&ps);
    uint64_t seq = log_group(ps.primary, "M%d", 20, 0, 200);
    parts_notify(&ps);
    assert_int_equal(store_wait_parts_applied(ps.primary, seq, 30000), 1);
    /* One partition held (not the primary's); more logged for every
     * lead. */
    char held[16] = "";
    for (int l = 0; l < 20 && !held[0]; l++) {
        snprintf(held, sizeof held, "M%d", l);
        if (partition_of(held, NP) == 0)
            held[0] = '\0';
    }
    unsigned k = partition_of(held, NP);
    assert_true(k > 0);
    assert_true(partition_pause(ps.p[k], 1000));
    seq = log_group(ps.primary, "M%d", 20, 200, 100);
    parts_notify(&ps);
    for (unsigned i = 1; i < NP; i++)
        if (i != k)
            assert_int_equal(store_wait_applied(ps.st[i], seq, 30000), 1);
    /* Partition 0 alone (the primary's wait covers them all). */
    for (int t = 0; t < 3000 && store_applied_published(ps.primary) < seq; t++)
        usleep(10000);
    assert_int_equal(store_applied_published(ps.primary), seq);
    for (unsigned i = 0; i < NP; i++) {
        assert_int_equal(partition_stop(ps.p[i], i == k ? 0 : 30000), i != k);
        partition_destroy(&ps.p[i]);
    }
    assert_true(store_applied_seq(ps.st[k]) < seq);
    parts_close(&ps, false);

    /* Reopened: the held partition alone is behind, and catches up. */
    parts_open(f, &ps);
    for (unsigned i = 0; i < NP; i++)
        assert_int_equal(store_applied_seq(ps.st[i]) == seq, i != k);
    parts_start(&ps);
    parts_notify(&ps);
    assert_int_equal(store_wait_parts_applied(ps.primary, seq, 30000), 1);
    for (unsigned i = 0; i < NP; i++)
        assert_int_equal(ps.ctx[i].foreign, 0);
    assert_int_equal(read_counter(ps.primary, "all"), 300);
    assert_int_equal(read_counter(ps.primary, "n/M3"), 15);
    char key[32];
    snprintf(key, sizeof key, "n/%s", held);
    assert_int_equal(read_counter(ps.primary, key), 15);
    parts_close(&ps, true);
}

/* ops.decoded: the caller holds the even sequences decoded (one Event of
 * its own, of another type than the log's), the odd ones not. */
typedef struct {
    fixture_t f;
    Funnel__V1__Event held;
    int taken;          /* entries applied as held */
    int from_log;       /* entries applied as decoded from the log */
    int wrong;          /* an even one decoded, an odd one held, a bad lead */
    int asked_wrong;    /* ops.decoded asked from another than applied + 1 */
} held_t;

static int held_apply(void *arg, const partition_entry_t *e, size_t n)
{
    held_t *h = arg;
    for (size_t i = 0; i < n; i++) {
        if (e[i].ev == &h->held)
            h->taken++;
        else if (strcmp(e[i].ev->type, "page_view") == 0 && e[i].ev->lead_id[0] == 'H')
            h->from_log++;
        h->wrong += (e[i].seq % 2 == 0) != (e[i].ev == &h->held);
    }
    return fake_apply(&h->f, e, n);
}

static void held_aborted(void *arg)
{
    fake_aborted(&((held_t *)arg)->f);
}

static void held_decoded(void *arg, uint64_t from, size_t n, const Funnel__V1__Event **evs)
{
    held_t *h = arg;
    h->asked_wrong += from != store_applied_seq(g_store) + 1;
    for (size_t i = 0; i < n; i++)
        evs[i] = (from + i) % 2 == 0 ? &h->held : NULL;
}

static void test_decoded_events_taken_as_held(void **state)
{
    held_t *h = test_calloc(1, sizeof *h);
    memcpy(&h->f, *state, sizeof h->f);
    funnel__v1__event__init(&h->held);
    h->held.id = (char *)"held";
    h->held.lead_id = (char *)"H0";
    h->held.type = (char *)"held";
    store_t *s = open_store(&h->f, 4 << 20);
    g_store = s;
    partition_ops_t ops = {.apply = held_apply, .aborted = held_aborted,
                           .decoded = held_decoded};
    partition_opts_t opts = {.chunk_events = 16, .index = 0};
    partition_t *p = partition_new(s, &ops, h, &opts);
    assert_int_equal(partition_start(p), 0);
    uint64_t seq = 0;
    for (int i = 0; i < 100; i += 10) {
        seq = log_group(s, "H%d", 7, i, 10);
        partition_notify(p);
    }
    assert_int_equal(store_wait_applied(s, seq, 30000), 1);
    assert_true(partition_stop(p, 30000));
    assert_int_equal(h->taken, 50);
    assert_int_equal(h->from_log, 50);
    assert_int_equal(h->wrong, 0);
    assert_int_equal(h->asked_wrong, 0);
    assert_int_equal(h->f.order_errors, 0);
    partition_destroy(&p);
    store_destroy(&s);
    test_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_applies_in_log_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_behind_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_grows_in_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_grown_ahead_when_asked, setup, teardown),
        cmocka_unit_test(test_partition_of),
        cmocka_unit_test_setup_teardown(test_partitions_apply_their_own_leads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_stopped_behind_replays_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_decoded_events_taken_as_held, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
