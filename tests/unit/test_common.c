/* Unit tests of common/: FNV-1a, the open-addressing index, the arena and
 * time text, each against values worked out independently (published FNV
 * test vectors, dates checked against the calendar). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "fnv.h"
#include "htab.h"
#include "strcopy.h"
#include "timetext.h"
#include "xalloc.h"

#include "funnel.pb-c.h"

/* -- FNV-1a --------------------------------------------------------------- */

static void test_fnv_vectors(void **state)
{
    /* The reference vectors of the FNV authors' test suite. */
    assert_int_equal(fnv1a32("", 0), UINT32_C(0x811c9dc5));
    assert_int_equal(fnv1a32("a", 1), UINT32_C(0xe40c292c));
    assert_int_equal(fnv1a32("foobar", 6), UINT32_C(0xbf9cf968));
    assert_true(fnv1a64("", 0) == UINT64_C(0xcbf29ce484222325));
    assert_true(fnv1a64("a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
    assert_true(fnv1a64("foobar", 6) == UINT64_C(0x85944171f73967e8));
}

static void test_fnv_strings(void **state)
{
    size_t n = 99;
    assert_int_equal(fnv1a32_str("foobar"), fnv1a32("foobar", 6));
    /* Bounded: hashes the first max bytes and says how many. */
    assert_int_equal(fnv1a32_strn("foobar", 3, &n), fnv1a32("foo", 3));
    assert_int_equal(n, 3);
    assert_int_equal(fnv1a32_strn("ab", 10, &n), fnv1a32("ab", 2));
    assert_int_equal(n, 2);
}

/* -- the index ------------------------------------------------------------ */

typedef struct {
    char keys[200][16];
    size_t n;
} s_set_t;

static bool s_eq(const void *ctx, uint32_t i, const void *key)
{
    return strcmp(((const s_set_t *)ctx)->keys[i], key) == 0;
}

static uint32_t s_hash_of(const void *ctx, uint32_t i)
{
    return fnv1a32_str(((const s_set_t *)ctx)->keys[i]);
}

/* Add key unless present; returns its index. Grows the table at half. */
static uint32_t s_add(htab_t *t, s_set_t *set, const char *key)
{
    uint32_t *slot = htab_slot(t, fnv1a32_str(key), s_eq, set, key);
    if (*slot)
        return *slot - 1;
    snprintf(set->keys[set->n], sizeof set->keys[0], "%s", key);
    set->n++;
    if (htab_cap_for(set->n) > t->cap)
        htab_rebuild(t, htab_cap_for(set->n), set->n, s_hash_of, set);
    else
        *slot = (uint32_t)set->n;
    return (uint32_t)set->n - 1;
}

/* strcopy writes what snprintf "%s" writes: truncated, terminated. */
static void test_strcopy(void **state)
{
    (void)state;
    const char *srcs[] = {"", "a", "lead-0042", "0123456789abcdef", "0123456789abcdefXYZ"};
    for (size_t i = 0; i < sizeof srcs / sizeof *srcs; i++) {
        for (size_t cap = 1; cap <= 18; cap++) {
            char a[20], b[20];
            memset(a, '#', sizeof a);
            memset(b, '#', sizeof b);
            size_t n = strcopy(a, cap, srcs[i]);
            snprintf(b, cap, "%s", srcs[i]);
            assert_memory_equal(a, b, sizeof a);
            assert_int_equal(n, strlen(b));
        }
    }
}

static void test_htab(void **state)
{
    static s_set_t set;
    htab_t t = {0};
    char k[16];
    htab_init(&t, htab_cap_for(0));
    assert_int_equal(t.cap, 16);
    for (int i = 0; i < 150; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(s_add(&t, &set, k), i);
    }
    assert_int_equal(set.n, 150);
    assert_true(t.cap >= 300);
    /* Every key found again, at its own index, after the growths. */
    for (int i = 149; i >= 0; i--) {
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(s_add(&t, &set, k), i);
        assert_int_equal(*htab_slot(&t, fnv1a32_str(k), s_eq, &set, k), i + 1);
    }
    assert_int_equal(set.n, 150);
    assert_int_equal(*htab_slot(&t, fnv1a32_str("absent"), s_eq, &set, "absent"), 0);
    htab_clear(&t);
    assert_int_equal(*htab_slot(&t, fnv1a32_str("k1"), s_eq, &set, "k1"), 0);
    htab_free(&t);
    assert_int_equal(t.cap, 0);
}

static void test_htab_small(void **state)
{
    /* A table of byte-wide slots, as a struct may embed. */
    static s_set_t set;
    uint8_t slot[32] = {0};
    const char *keys[] = {"a", "b", "c", "a", "d", "b"};
    const uint32_t want[] = {0, 1, 2, 0, 3, 1};
    for (size_t i = 0; i < 6; i++) {
        size_t at;
        uint32_t e = htab_probe(slot, 1, 32, fnv1a32_str(keys[i]), s_eq, &set, keys[i], &at);
        if (e == 0) {
            snprintf(set.keys[set.n], sizeof set.keys[0], "%s", keys[i]);
            e = slot[at] = (uint8_t)++set.n;
        }
        assert_int_equal(e - 1, want[i]);
        assert_int_equal(slot[at], e);
    }
    assert_int_equal(set.n, 4);
}

/* -- the arena ------------------------------------------------------------ */

static void test_arena(void **state)
{
    arena_t *a = arena_new(64);
    char *p[100];
    for (int i = 0; i < 100; i++) {
        p[i] = arena_printf(a, "string %d", i);
        assert_int_equal((uintptr_t)p[i] % _Alignof(max_align_t), 0);
    }
    /* Growth keeps what was allocated before. */
    for (int i = 0; i < 100; i++) {
        char want[32];
        snprintf(want, sizeof want, "string %d", i);
        assert_string_equal(p[i], want);
    }
    unsigned char *z = arena_calloc(a, 1000, 3);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(z[i], 0);
    assert_string_equal(arena_strdup(a, "copy"), "copy");
    /* After a reset the first block is reused. */
    arena_reset(a);
    void *first = arena_alloc(a, 8);
    arena_reset(a);
    assert_ptr_equal(arena_alloc(a, 8), first);
    arena_destroy(&a);
    assert_null(a);
    arena_destroy(&a);
}

static void test_arena_protobuf(void **state)
{
    /* A decoded message lives in the arena and goes with it. */
    Funnel__V1__Event ev = FUNNEL__V1__EVENT__INIT;
    ev.id = "e-1";
    ev.lead_id = "L-1";
    ev.type = "form_submit";
    uint8_t buf[128];
    size_t len = funnel__v1__event__pack(&ev, buf);
    arena_t *a = arena_new(16);
    ProtobufCAllocator alloc = arena_pb_allocator(a);
    Funnel__V1__Event *out = funnel__v1__event__unpack(&alloc, len, buf);
    assert_non_null(out);
    assert_string_equal(out->lead_id, "L-1");
    assert_string_equal(out->type, "form_submit");
    arena_destroy(&a);
}

/* -- time text ------------------------------------------------------------ */

static void test_rfc3339_out(void **state)
{
    char t[TIMETEXT_RFC3339_LEN];
    assert_string_equal(timetext_rfc3339(0, false, t, sizeof t), "1970-01-01T00:00:00Z");
    assert_string_equal(timetext_rfc3339(-1, true, t, sizeof t), "1969-12-31T23:59:59.999Z");
    assert_string_equal(timetext_rfc3339(951782400000LL, false, t, sizeof t),
                        "2000-02-29T00:00:00Z");
    assert_string_equal(timetext_rfc3339(1795687200007LL, true, t, sizeof t),
                        "2026-11-26T10:00:00.007Z");
    /* The largest time fits the buffer. */
    timetext_rfc3339(INT64_MAX, true, t, sizeof t);
    assert_true(strlen(t) > 20 && t[strlen(t) - 1] == 'Z');
}

static void test_rfc3339_in(void **state)
{
    char err[128];
    int64_t ms = 0;
    assert_int_equal(timetext_parse_rfc3339("2026-11-26T10:00:00Z", &ms, err, sizeof err), 0);
    assert_true(ms == 1795687200000LL);
    assert_int_equal(timetext_parse_rfc3339("2026-11-26T12:00:00.007+02:00", &ms, err,
                                            sizeof err), 0);
    assert_true(ms == 1795687200007LL);
    /* Before 1970 is a time like any other here. */
    assert_int_equal(timetext_parse_rfc3339("1969-12-31T23:59:59Z", &ms, err, sizeof err), 0);
    assert_true(ms == -1000);
    /* A leap second is the next second. */
    assert_int_equal(timetext_parse_rfc3339("2016-12-31T23:59:60Z", &ms, err, sizeof err), 0);
    assert_true(ms == 1483228800000LL);
    assert_int_equal(timetext_parse_rfc3339("2027-02-29T00:00:00Z", &ms, err, sizeof err), -1);
    assert_string_equal(err, "day 29 out of range for 2027-02");
    assert_int_equal(timetext_parse_rfc3339("2026-11-26X10:00:00Z", &ms, err, sizeof err), -1);
    assert_string_equal(err, "expected 'T' at offset 10");
    /* Out and back in. */
    char t[TIMETEXT_RFC3339_LEN];
    for (int64_t v = -86400001; v < 4000000000000LL; v += 987654321987LL) {
        assert_int_equal(timetext_parse_rfc3339(timetext_rfc3339(v, true, t, sizeof t), &ms,
                                                err, sizeof err), 0);
        assert_true(ms == v);
    }
}

static void test_iso_week(void **state)
{
    char w[TIMETEXT_WEEK_LEN];
    assert_string_equal(timetext_iso_week(1795687200000LL, w), "2026-W48");
    assert_string_equal(timetext_iso_week(0, w), "1970-W01");
    /* 2021-01-03 belongs to the last week of 2020; 2024-12-30 to 2025's first. */
    assert_string_equal(timetext_iso_week(1609632000000LL, w), "2020-W53");
    assert_string_equal(timetext_iso_week(1735516800000LL, w), "2025-W01");
    assert_string_equal(timetext_iso_week(1735516800000LL + 3600000, w), "2025-W01");
    assert_int_equal(timetext_days_of_ms(-1), -1);
    assert_int_equal(timetext_days_of_ms(-86400000), -1);
    assert_int_equal(timetext_days_of_ms(-86400001), -2);
    assert_int_equal(timetext_days_of_ms(86399999), 0);
}

static void test_duration_in(void **state)
{
    int64_t v = -1;
    const int64_t max = 36500LL * 86400000;
    assert_int_equal(timetext_parse_duration("30d", max, &v), TIMETEXT_DUR_OK);
    assert_true(v == 30LL * 86400000);
    assert_int_equal(timetext_parse_duration("1h30m", max, &v), TIMETEXT_DUR_OK);
    assert_true(v == 5400000);
    assert_int_equal(timetext_parse_duration("90s", max, &v), TIMETEXT_DUR_OK);
    assert_true(v == 90000);
    assert_int_equal(timetext_parse_duration("2w500ms", max, &v), TIMETEXT_DUR_OK);
    assert_true(v == 2 * 604800000LL + 500);
    assert_int_equal(timetext_parse_duration("1500", max, &v), TIMETEXT_DUR_OK);
    assert_true(v == 1500);
    assert_int_equal(timetext_parse_duration("-5m", max, &v), TIMETEXT_DUR_NEGATIVE);
    assert_int_equal(timetext_parse_duration("36501d", max, &v), TIMETEXT_DUR_RANGE);
    assert_int_equal(timetext_parse_duration("99999999999999999999", max, &v),
                     TIMETEXT_DUR_RANGE);
    assert_int_equal(timetext_parse_duration("1.5h", max, &v), TIMETEXT_DUR_BAD);
    assert_int_equal(timetext_parse_duration("h1", max, &v), TIMETEXT_DUR_BAD);
    assert_int_equal(timetext_parse_duration("5mins", max, &v), TIMETEXT_DUR_BAD);
    assert_int_equal(timetext_parse_duration("", max, &v), TIMETEXT_DUR_BAD);
}

static void test_duration_out(void **state)
{
    char b[32];
    const int64_t d = 86400000, h = 3600000;
    assert_string_equal(timetext_duration(15 * d + 2 * h + 5, TIMETEXT_DUR_SHORT, b, sizeof b),
                        "15d 2h");
    assert_string_equal(timetext_duration(3 * h + 1200000, TIMETEXT_DUR_SHORT, b, sizeof b),
                        "3h 20m");
    assert_string_equal(timetext_duration(45000, TIMETEXT_DUR_SHORT, b, sizeof b), "45s");
    assert_string_equal(timetext_duration(250, TIMETEXT_DUR_SHORT, b, sizeof b), "250ms");
    assert_string_equal(timetext_duration(-5, TIMETEXT_DUR_SHORT, b, sizeof b), "0ms");
    assert_string_equal(timetext_duration(2 * 604800000LL, TIMETEXT_DUR_EXACT, b, sizeof b),
                        "2w");
    assert_string_equal(timetext_duration(90 * 60000, TIMETEXT_DUR_EXACT, b, sizeof b), "90m");
    assert_string_equal(timetext_duration(1500, TIMETEXT_DUR_EXACT, b, sizeof b), "1500ms");
    assert_string_equal(timetext_duration(d + 2 * h + 3 * 60000 + 4567, TIMETEXT_DUR_CLOCK, b,
                                          sizeof b), "1d 2h 3m 4.567s");
    assert_string_equal(timetext_duration(d, TIMETEXT_DUR_CLOCK, b, sizeof b),
                        "1d 0h 0m 0.000s");
    assert_string_equal(timetext_duration(61001, TIMETEXT_DUR_CLOCK, b, sizeof b),
                        "1m 1.001s");
    assert_string_equal(timetext_duration(12, TIMETEXT_DUR_CLOCK, b, sizeof b), "12 ms");
    assert_string_equal(timetext_duration(d + d / 2, TIMETEXT_DUR_DECIMAL, b, sizeof b), "1.5d");
    assert_string_equal(timetext_duration(2 * h, TIMETEXT_DUR_DECIMAL, b, sizeof b), "2.0h");
    assert_string_equal(timetext_duration(500, TIMETEXT_DUR_DECIMAL, b, sizeof b), "0.5s");
    assert_string_equal(timetext_duration(-1, TIMETEXT_DUR_DECIMAL, b, sizeof b), "-");
    /* EXACT reads back. */
    int64_t v;
    const int64_t samples[] = {1, 999, 60000, 7 * d, 3 * h + 1};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        timetext_duration(samples[i], TIMETEXT_DUR_EXACT, b, sizeof b);
        assert_int_equal(timetext_parse_duration(b, INT64_MAX, &v), TIMETEXT_DUR_OK);
        assert_true(v == samples[i]);
    }
}

static void test_xalloc(void **state)
{
    char *s = xasprintf("%s-%d", "lead", 7);
    assert_string_equal(s, "lead-7");
    free(s);
    int *z = xcalloc(0, sizeof *z); /* never NULL, even for nothing */
    assert_non_null(z);
    free(z);
    char *d = xstrndup("abcdef", 3);
    assert_string_equal(d, "abc");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv_vectors),
        cmocka_unit_test(test_fnv_strings),
        cmocka_unit_test(test_strcopy),
        cmocka_unit_test(test_htab),
        cmocka_unit_test(test_htab_small),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_arena_protobuf),
        cmocka_unit_test(test_rfc3339_out),
        cmocka_unit_test(test_rfc3339_in),
        cmocka_unit_test(test_iso_week),
        cmocka_unit_test(test_duration_in),
        cmocka_unit_test(test_duration_out),
        cmocka_unit_test(test_xalloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
