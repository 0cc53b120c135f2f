/* test_partition.c: a partition thread applying what the test (the store's
 * owner) logs, on a real LMDB store in a temporary directory: log order,
 * read-your-writes through store_wait_applied, duplicates recognised while
 * logged and not applied, each lead's previous event, a stop behind the
 * log that the next open finds to replay, map growth inside the
 * partition's groups, and the lead-to-partition assignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_applies_in_log_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_behind_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_grows_in_partition, setup, teardown),
        cmocka_unit_test(test_partition_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
