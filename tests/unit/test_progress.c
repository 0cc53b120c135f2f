/* test_progress.c: the numbers and durations progress lines show people
 * ("replaying 1.2M of 10M events ... 1m45s left"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "progress.h"

static const char *count(uint64_t n)
{
    static char buf[32];
    progress_count_text(n, buf, sizeof buf);
    return buf;
}

static const char *duration(uint64_t ms)
{
    static char buf[32];
    progress_duration_text(ms, buf, sizeof buf);
    return buf;
}

static void test_counts_are_exact_below_ten_thousand(void **state)
{
    assert_string_equal(count(0), "0");
    assert_string_equal(count(950), "950");
    assert_string_equal(count(9999), "9999");
}

static void test_larger_counts_get_a_suffix_and_a_decimal_while_it_says_something(void **state)
{
    assert_string_equal(count(10000), "10k");
    assert_string_equal(count(12345), "12.3k");
    assert_string_equal(count(250000), "250k");
    assert_string_equal(count(999999), "999k");     /* truncated, never rounded up */
    assert_string_equal(count(1234567), "1.2M");
    assert_string_equal(count(10000000), "10M");
    assert_string_equal(count(10500000), "10.5M");
    assert_string_equal(count(1000000), "1M");
    assert_string_equal(count(3000000000ULL), "3G");
    assert_string_equal(count(UINT64_MAX), "18.4E");
}

static void test_durations(void **state)
{
    assert_string_equal(duration(0), "0s");
    assert_string_equal(duration(1499), "1s");
    assert_string_equal(duration(59400), "59s");
    assert_string_equal(duration(105000), "1m45s");
    assert_string_equal(duration(3600000), "1h00m");
    assert_string_equal(duration(7800000), "2h10m");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_are_exact_below_ten_thousand),
        cmocka_unit_test(test_larger_counts_get_a_suffix_and_a_decimal_while_it_says_something),
        cmocka_unit_test(test_durations),
    };
    return cmocka_run_group_tests_name("progress", tests, NULL, NULL);
}
