/* test_keys.c: the key builder (keys.c). Every key it builds is compared
 * with the key the state on disk holds (spelled out here, as funneld wrote
 * it before keys.c existed), and every parser with the builder's output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hnd.h"
#include "keys.h"

static void test_counters(void **state)
{
    (void)state;
    char k[KEYS_KEY_MAX], pre[KEYS_PREFIX_MAX];
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_LEADS, "x"), "leads");
    assert_string_equal(keys_name(KEYS_HANDOFFS), "handoffs");
    assert_string_equal(keys_name(KEYS_HANDOFFS_ACCEPTED), "handoffs/accepted");
    assert_string_equal(keys_name(KEYS_HANDOFFS_REJECTED), "handoffs/rejected");
    assert_string_equal(keys_name(KEYS_SLA_BREACHES), "friction/handoff_sla");
    assert_string_equal(keys_name(KEYS_SLA_WAITING), "sla/waiting");
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_NOW, "demo"), "now/demo");
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_ENTERED, "a"), "entered/a");
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_ADVANCED, "a"), "advanced/a");
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_DROPPED, "a"), "dropped/a");
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_STALLS, "a"), "friction/stall/a");
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_STALLED, "a"), "stalled/a");
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_REGRESSIONS, "a"),
                        "friction/regression/a");
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_REJECTIONS, "a"),
                        "friction/handoff_rejected/a");
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_REJREASON, "no budget"),
                        "rejreason/no budget");
    assert_string_equal(keys_rejreason_prefix(k, sizeof k, "by/source/sales/"),
                        "by/source/sales/rejreason/");

    assert_string_equal(keys_group_prefix(pre, sizeof pre, KEYS_BY_PERSONA, "-"),
                        "by/persona/-/");
    assert_string_equal(keys_counter(k, sizeof k, pre, KEYS_NOW, "b"), "by/persona/-/now/b");
    assert_string_equal(keys_in_group(k, sizeof k, KEYS_BY_COHORT, "2026-W48", "leads"),
                        "by/cohort/2026-W48/leads");
    assert_string_equal(keys_in_group(k, sizeof k, KEYS_BY_SOURCE, "sales",
                                      "friction/stall/a"),
                        "by/source/sales/friction/stall/a");
    assert_string_equal(keys_by_prefix(KEYS_BY_SOURCE), "by/source/");
    assert_int_equal(keys_by_parse("persona"), KEYS_BY_PERSONA);
    assert_int_equal(keys_by_parse("source"), KEYS_BY_SOURCE);
    assert_int_equal(keys_by_parse("cohort"), KEYS_BY_COHORT);
    assert_int_equal(keys_by_parse("personas"), -1);
    assert_int_equal(keys_by_parse(""), -1);
    assert_int_equal(keys_group_name_len("by/persona/looker/now/a", KEYS_BY_PERSONA), 6);
    assert_int_equal(keys_group_name_len("by/source/sales", KEYS_BY_SOURCE), 5);
}

static void test_truncation(void **state)
{
    (void)state;
    /* As snprintf: cut to fit, always terminated. */
    char k[12];
    assert_string_equal(keys_counter(k, sizeof k, "", KEYS_STALLS, "abc"), "friction/st");
    char big[HND_COUNTER_KEY_MAX], name[300], want[HND_COUNTER_KEY_MAX];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    memcpy(want, "by/persona/", 11);
    memset(want + 11, 'n', sizeof want - 12);
    want[sizeof want - 1] = '\0';
    assert_string_equal(keys_in_group(big, sizeof big, KEYS_BY_PERSONA, name, "leads"),
                        want);
    assert_int_equal(strlen(big), HND_COUNTER_KEY_MAX - 1);
}

static void test_dwell(void **state)
{
    (void)state;
    char k[KEYS_KEY_MAX], pre[KEYS_KEY_MAX];
    assert_string_equal(keys_dwell(k, sizeof k, "", "a", 7), "dwell/a/007");
    assert_string_equal(keys_dwell(k, sizeof k, "by/persona/x/", "a", 511),
                        "by/persona/x/dwell/a/511");
    assert_string_equal(keys_dwell_prefix(pre, sizeof pre, "", "a"), "dwell/a/");
    for (int b = 0; b < 600; b += 37) {
        keys_dwell(k, sizeof k, "", "stage", b);
        assert_int_equal(keys_dwell_bucket(k + strlen("dwell/stage/")), b);
    }
    assert_int_equal(keys_dwell_bucket(""), -1);
    assert_int_equal(keys_dwell_bucket("12x"), -1);
    assert_int_equal(keys_dwell_bucket("x"), -1);
}

static void test_conv(void **state)
{
    (void)state;
    char k[KEYS_KEY_MAX], want[KEYS_KEY_MAX];
    int64_t days[] = { 20717, 0, 7, 1234567, -3, -20717, -1234567 };
    for (size_t i = 0; i < sizeof days / sizeof days[0]; i++) {
        snprintf(want, sizeof want, "~conv/s/in/%06lld", (long long)days[i]);
        assert_string_equal(keys_conv(k, sizeof k, "s", false, days[i]), want);
        snprintf(want, sizeof want, "~conv/s/out/%06lld", (long long)days[i]);
        assert_string_equal(keys_conv(k, sizeof k, "s", true, days[i]), want);
    }
    assert_string_equal(keys_conv_below(k, sizeof k, "a"), "~conv/below/a");
    assert_string_equal(keys_conv_day, "~conv/day");
    assert_string_equal(keys_conv_expired, "~conv/expired");
    assert_true(keys_is_rolling(keys_conv_day, strlen(keys_conv_day)));
    assert_true(keys_is_rolling(k, 1));
    assert_false(keys_is_rolling("leads", 5));
    assert_false(keys_is_rolling("~", 0));
}

static void test_marks_deadlines(void **state)
{
    (void)state;
    char s[HND_MARK_SET_MAX + 1];
    assert_string_equal(keys_mark_stalled(s, sizeof s, "decision"), "stalled/decision");
    assert_string_equal(keys_mark_stage(s), "decision");
    assert_string_equal(keys_stalled_prefix, "stalled/");
    assert_string_equal(keys_mark_sla, "sla_breached");
    assert_null(keys_mark_stage(keys_mark_sla));
    assert_null(keys_mark_stage("stalled"));
    assert_string_equal(keys_deadline_stall, "stall");
    assert_string_equal(keys_deadline_sla, "sla");
    assert_true(strlen(keys_deadline_stall) <= HND_DEADLINE_KIND_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_dwell),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_marks_deadlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
