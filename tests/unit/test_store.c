/* test_store.c: the LMDB store on a real temporary directory: round trip,
 * duplicate detection, map growth, crash recovery bookkeeping, locking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"

typedef struct {
    char dir[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = test_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/funneld-test-store-XXXXXX");
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

static void count_event(uint64_t seq, const void *raw, size_t len, void *arg)
{
    (void)seq;
    (void)raw;
    (void)len;
    (*(int *)arg)++;
}

typedef struct {
    uint64_t seq[8];
    char first[16];
    int n;
} timeline_t;

static void collect_event(uint64_t seq, const void *raw, size_t len, void *arg)
{
    timeline_t *t = arg;
    if (t->n == 0)
        memcpy(t->first, raw, len < sizeof t->first ? len : sizeof t->first);
    if (t->n < 8)
        t->seq[t->n] = seq;
    t->n++;
}

static void test_round_trip(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20);

    assert_int_equal(store_group_begin(s), STORE_OK);
    assert_int_equal(store_id_seen(s, "L1", "e1"), 0);
    assert_int_equal(store_event_add(s, "L1", "e1", false, 0, "event-1", 7), 1);
    assert_int_equal(store_event_add(s, "L1", "e2", false, 1, "event-2", 7), 2);
    assert_int_equal(store_event_add(s, "L2", "e3", false, 0, "other-1", 7), 3);
    store_lead_put(s, "L1", 2, "lead-bytes", 10);
    store_lead_put(s, "L2", 3, "lead-2", 6);
    store_counter_add(s, "now/awareness", 2);
    store_counter_add(s, "now/awareness", -1);
    store_stats(s)->applied += 2;
    assert_int_equal(store_group_commit(s), STORE_OK);
    assert_int_equal(store_last_seq(s), 3);
    assert_int_equal(store_applied_seq(s), 3);
    store_destroy(&s);
    assert_null(s);

    /* Reopened: everything is still there. */
    s = open_store(f, 1 << 20);
    assert_int_equal(store_last_seq(s), 3);
    assert_int_equal(store_applied_seq(s), 3);
    assert_int_equal(store_stats(s)->applied, 2);
    assert_int_equal(store_stats(s)->commits, 1);
    assert_int_equal(store_read_begin(s), STORE_OK);
    const void *buf;
    size_t len;
    assert_int_equal(store_read_lead(s, "L1", &buf, &len), 1);
    assert_int_equal(len, 10);
    assert_memory_equal(buf, "lead-bytes", 10);
    assert_int_equal(store_read_lead(s, "L2", &buf, &len), 1);
    assert_memory_equal(buf, "lead-2", 6);
    assert_int_equal(store_read_lead(s, "L3", &buf, &len), 0);
    assert_int_equal(store_read_counter(s, "now/awareness"), 1);
    assert_int_equal(store_read_counter(s, "never"), 0);
    /* The timeline follows the lead's chain through the log, oldest first. */
    timeline_t t = {0};
    assert_int_equal(store_read_timeline(s, "L1", 10, collect_event, &t), 2);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.seq[0], 1);
    assert_int_equal(t.seq[1], 2);
    assert_memory_equal(t.first, "event-1", 7);
    /* Newest only, when limited; unknown leads have none. */
    memset(&t, 0, sizeof t);
    assert_int_equal(store_read_timeline(s, "L1", 1, collect_event, &t), 1);
    assert_int_equal(t.seq[0], 2);
    memset(&t, 0, sizeof t);
    assert_int_equal(store_read_timeline(s, "L", 10, collect_event, &t), 0);
    assert_int_equal(t.n, 0);
    store_read_end(s);
    store_destroy(&s);
}

static void sum_counter(const char *key, int64_t value, void *arg)
{
    (void)key;
    *(int64_t *)arg += value;
}

static void test_counters_by_prefix(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20);
    assert_int_equal(store_group_begin(s), STORE_OK);
    store_counter_add(s, "by/source/marketing/entered/awareness", 3);
    store_counter_add(s, "by/source/sales/entered/awareness", 4);
    store_counter_add(s, "by/sourcex", 100);
    store_counter_add(s, "entered/awareness", 7);
    assert_int_equal(store_group_commit(s), STORE_OK);
    assert_int_equal(store_read_begin(s), STORE_OK);
    int64_t sum = 0;
    assert_int_equal(store_read_counters(s, "by/source/", sum_counter, &sum), 2);
    assert_int_equal(sum, 7);
    sum = 0;
    assert_int_equal(store_read_counters(s, "", sum_counter, &sum), 4);
    assert_int_equal(sum, 114);
    store_read_end(s);
    store_destroy(&s);
}

/* A counter that returns to zero is removed, so that the state does not
 * depend on how events were grouped into commits (a rebuild compares
 * byte for byte). */
static void test_counter_back_to_zero(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20);
    int64_t sum = 0;
    assert_int_equal(store_group_begin(s), STORE_OK);
    store_counter_add(s, "now/decision", 1);
    assert_int_equal(store_group_commit(s), STORE_OK);
    assert_int_equal(store_group_begin(s), STORE_OK);
    store_counter_add(s, "now/decision", -1);
    assert_int_equal(store_group_commit(s), STORE_OK);
    assert_int_equal(store_read_begin(s), STORE_OK);
    assert_int_equal(store_read_counters(s, "now/", sum_counter, &sum), 0);
    store_read_end(s);
    store_destroy(&s);
}

static void test_deadlines_ordered_and_replaced(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20);
    store_due_t due[8];
    int64_t when = 0;

    const void *buf;
    size_t len;
    /* A lead's deadlines are set between reading and writing its record. */
    assert_int_equal(store_group_begin(s), STORE_OK);
    assert_int_equal(store_lead_get(s, "L2", &buf, &len, NULL), 0);
    store_deadline_set(s, "L2", "stall", 300);
    store_lead_put(s, "L2", 1, "l2", 2);
    assert_int_equal(store_lead_get(s, "L1", &buf, &len, NULL), 0);
    store_deadline_set(s, "L1", "stall", 200);
    store_deadline_set(s, "L1", "sla", 100);
    store_lead_put(s, "L1", 2, "l1", 2);
    assert_int_equal(store_lead_get(s, "L3", &buf, &len, NULL), 0);
    store_deadline_set(s, "L3", "stall", 999);
    store_lead_put(s, "L3", 3, "l3", 2);
    /* Setting again replaces: L3's stall moves from 999 to 150. */
    assert_int_equal(store_lead_get(s, "L3", &buf, &len, NULL), 1);
    assert_memory_equal(buf, "l3", 2);
    store_deadline_set(s, "L3", "stall", 150);
    store_lead_put(s, "L3", 3, "l3", 2);
    assert_int_equal(store_group_commit(s), STORE_OK);

    assert_int_equal(store_group_begin(s), STORE_OK);
    size_t n = store_deadlines_due(s, 250, 8, due);
    assert_int_equal(n, 3);
    assert_string_equal(due[0].lead_id, "L1");
    assert_string_equal(due[0].kind, "sla");
    assert_int_equal(due[0].due_ms, 100);
    assert_string_equal(due[1].lead_id, "L3");
    assert_int_equal(due[1].due_ms, 150);
    assert_string_equal(due[2].kind, "stall");
    assert_int_equal(due[2].due_ms, 200);
    /* Clearing reports the due time once, then nothing. */
    assert_int_equal(store_lead_get(s, "L1", &buf, &len, NULL), 1);
    assert_memory_equal(buf, "l1", 2); /* the deadlines do not show in it */
    assert_int_equal(len, 2);
    assert_int_equal(store_deadline_clear(s, "L1", "sla", &when), 1);
    assert_int_equal(when, 100);
    assert_int_equal(store_deadline_clear(s, "L1", "sla", &when), 0);
    store_lead_put(s, "L1", 2, "l1", 2);
    assert_int_equal(store_deadlines_due(s, 250, 8, due), 2);
    assert_int_equal(store_group_commit(s), STORE_OK);

    assert_int_equal(store_read_begin(s), STORE_OK);
    assert_int_equal(store_read_next_deadline(s, &when), 1);
    assert_int_equal(when, 150);
    store_read_end(s);
    store_destroy(&s);

    /* Kept across a restart. */
    s = open_store(f, 1 << 20);
    assert_int_equal(store_read_begin(s), STORE_OK);
    assert_int_equal(store_deadlines_due(s, 1000, 8, due), 3);
    store_read_end(s);
    store_destroy(&s);
}

static void count_mark(const char *set, const char *lead, int64_t since, void *arg)
{
    (void)set;
    (void)lead;
    *(int64_t *)arg += since;
}

static void test_marks(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20);
    int64_t sum = 0;
    assert_int_equal(store_group_begin(s), STORE_OK);
    store_mark(s, "stalled/decision", "L1", true, 10);
    store_mark(s, "stalled/decision", "L2", true, 20);
    store_mark(s, "stalled/interest", "L3", true, 40);
    store_mark(s, "stalled/decision", "L2", false, 0);
    store_mark(s, "stalled/decision", "L9", false, 0); /* never there: fine */
    assert_int_equal(store_group_commit(s), STORE_OK);
    assert_int_equal(store_read_begin(s), STORE_OK);
    assert_int_equal(store_read_marks(s, "stalled/decision", count_mark, &sum), 1);
    assert_int_equal(sum, 10);
    sum = 0;
    assert_int_equal(store_read_marks(s, "stalled/", count_mark, &sum), 2);
    assert_int_equal(sum, 50);
    store_read_end(s);
    store_destroy(&s);
}

static void test_duplicates(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20);

    assert_int_equal(store_group_begin(s), STORE_OK);
    assert_int_equal(store_event_add(s, "L", "e1", false, 0, "x", 1), 1);
    /* Seen within the same group... */
    assert_int_equal(store_id_seen(s, "L", "e1"), 1);
    assert_int_equal(store_group_commit(s), STORE_OK);

    /* ...and in later ones, but an aborted group leaves no trace. */
    assert_int_equal(store_group_begin(s), STORE_OK);
    assert_int_equal(store_id_seen(s, "L", "e1"), 1);
    assert_int_equal(store_event_add(s, "L", "e2", false, 1, "y", 1), 2);
    store_group_abort(s);
    assert_int_equal(store_last_seq(s), 1);
    assert_int_equal(store_group_begin(s), STORE_OK);
    assert_int_equal(store_id_seen(s, "L", "e2"), 0);
    store_group_abort(s);
    store_destroy(&s);
}

/* A map far too small for the data: every group that hits MDB_MAP_FULL is
 * redone after store_grow(), and nothing is lost. */
static void test_map_grows(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 64 * 1024);
    char id[32], lead[32], payload[300];
    const int groups = 40, per_group = 100;
    int grown = 0;

    memset(payload, 'p', sizeof payload);
    for (int g = 0; g < groups; g++) {
        int rc;
        do {
            assert_int_equal(store_group_begin(s), STORE_OK);
            for (int i = 0; i < per_group; i++) {
                int k = g * per_group + i;
                snprintf(id, sizeof id, "event-%06d", k);
                snprintf(lead, sizeof lead, "lead-%04d", k % 500);
                uint64_t seq = store_event_add(s, lead, id, false, 0, payload, sizeof payload);
                store_lead_put(s, lead, seq, payload, sizeof payload);
                store_counter_add(s, "events", 1);
            }
            rc = store_group_commit(s);
            if (rc == STORE_EFULL) {
                assert_int_equal(store_grow(s), STORE_OK);
                grown++;
            }
        } while (rc == STORE_EFULL);
        assert_int_equal(rc, STORE_OK);
    }
    assert_true(grown > 0);
    assert_int_equal(store_last_seq(s), groups * per_group);
    store_destroy(&s);

    s = open_store(f, 64 * 1024);
    assert_int_equal(store_last_seq(s), groups * per_group);
    assert_int_equal(store_read_begin(s), STORE_OK);
    assert_int_equal(store_read_counter(s, "events"), groups * per_group);
    int n = 0;
    assert_int_equal(store_read_log(s, 1, 100000, count_event, &n), groups * per_group);
    assert_int_equal(n, groups * per_group);
    store_read_end(s);
    store_destroy(&s);
}

/* A child process commits and dies without closing (kill -9). */
static void die_after_commit(const fixture_t *f, int events)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256], id[32];
        store_t *s = store_open(f->dir, 1 << 20, err, sizeof err);
        if (s == NULL || store_group_begin(s) != STORE_OK)
            _exit(3);
        for (int i = 0; i < events; i++) {
            snprintf(id, sizeof id, "e%d", i);
            store_event_add(s, "L", id, false, 0, "x", 1);
        }
        _exit(store_group_commit(s) == STORE_OK ? 0 : 4);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_killed_process_keeps_state(void **state)
{
    fixture_t *f = *state;
    setenv("FUNNELD_BOOT_ID", "boot-a", 1);
    die_after_commit(f, 5);
    store_t *s = open_store(f, 1 << 20);
    assert_int_equal(store_last_seq(s), 5);
    assert_int_equal(store_applied_seq(s), 5); /* trusted: same boot */
    store_destroy(&s);
    unsetenv("FUNNELD_BOOT_ID");
}

static void test_machine_restart_rebuilds_state(void **state)
{
    fixture_t *f = *state;
    setenv("FUNNELD_BOOT_ID", "boot-a", 1);
    die_after_commit(f, 5);
    /* The machine went down with the state open: another boot now. */
    setenv("FUNNELD_BOOT_ID", "boot-b", 1);
    store_t *s = open_store(f, 1 << 20);
    assert_int_equal(store_last_seq(s), 5);
    assert_int_equal(store_applied_seq(s), 0); /* to be replayed from the log */
    assert_int_equal(store_group_begin(s), STORE_OK);
    assert_int_equal(store_id_seen(s, "L", "e1"), 0);
    store_group_abort(s);
    store_destroy(&s);
    /* A clean close in boot b is trusted in boot c. */
    setenv("FUNNELD_BOOT_ID", "boot-c", 1);
    s = open_store(f, 1 << 20);
    assert_int_equal(store_last_seq(s), 5);
    store_destroy(&s);
    unsetenv("FUNNELD_BOOT_ID");
}

static void test_second_open_refused(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    store_t *s = open_store(f, 1 << 20);
    store_t *t = store_open(f->dir, 1 << 20, err, sizeof err);
    assert_null(t);
    assert_non_null(strstr(err, "in use by another funneld"));
    store_destroy(&s);
    /* Released on close. */
    s = open_store(f, 1 << 20);
    store_destroy(&s);
}

/* Event ids are kept beside their lead's record: they are a lead's own
 * (the same id under another lead is another event), they never read as a
 * lead, and a released claim leaves nothing behind. */
static void test_ids_beside_leads(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20);
    const void *buf;
    size_t len;
    uint64_t last = 0;

    assert_int_equal(store_group_begin(s), STORE_OK);
    assert_int_equal(store_id_claim(s, "L", "e1"), 1);
    assert_int_equal(store_id_claim(s, "L", "e1"), 0);
    assert_int_equal(store_id_claim(s, "M", "e1"), 1);
    store_id_release(s, "M", "e1");
    assert_int_equal(store_id_seen(s, "M", "e1"), 0);
    /* The id entry sorts right after "L" and before "L2": neither is a
     * lead until written. */
    assert_int_equal(store_lead_get(s, "L", &buf, &len, &last), 0);
    assert_int_equal(store_event_add(s, "L", "e1", true, 0, "x", 1), 1);
    store_lead_put(s, "L", 1, "lead-L", 6);
    assert_int_equal(store_id_claim(s, "L2", "x"), 1);
    assert_int_equal(store_event_add(s, "L2", "x", true, 0, "y", 1), 2);
    store_lead_put(s, "L2", 2, "lead-L2", 7);
    assert_int_equal(store_group_commit(s), STORE_OK);

    assert_int_equal(store_group_begin(s), STORE_OK);
    assert_int_equal(store_lead_get(s, "L", &buf, &len, &last), 1);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "lead-L", 6);
    assert_int_equal(last, 1);
    assert_int_equal(store_lead_get(s, "L2", &buf, &len, &last), 1);
    assert_int_equal(last, 2);
    assert_int_equal(store_id_seen(s, "L", "e1"), 1);
    assert_int_equal(store_id_seen(s, "L", "x"), 0);
    assert_int_equal(store_id_seen(s, "L2", "x"), 1);
    store_group_abort(s);
    store_destroy(&s);
}

static void test_replayed_events_are_indexed(void **state)
{
    fixture_t *f = *state;
    store_t *s = open_store(f, 1 << 20);
    assert_int_equal(store_group_begin(s), STORE_OK);
    assert_int_equal(store_event_add(s, "L", "e1", false, 0, "x", 1), 1);
    assert_int_equal(store_group_commit(s), STORE_OK);
    /* Re-indexing an event already in the log (replay) does not append. */
    assert_int_equal(store_group_begin(s), STORE_OK);
    store_event_replayed(s, "L", "e1", 1);
    assert_int_equal(store_group_commit(s), STORE_OK);
    assert_int_equal(store_last_seq(s), 1);
    assert_int_equal(store_applied_seq(s), 1);
    store_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_beside_leads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadlines_ordered_and_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_marks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_by_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_back_to_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_grows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_process_keeps_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_machine_restart_rebuilds_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_open_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replayed_events_are_indexed, setup, teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
