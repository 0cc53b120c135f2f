/* Unit tests of tools/ndjson: funnelctl's NDJSON event lines, RFC 3339
 * times and default event ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ndjson.h"

#define NOW INT64_C(1800000000000) /* 2027-01-15T08:00:00.000Z */

/* Parse a C string as a line; returns the ndjson_parse_line result. */
static int s_parse(const char *line, Funnel__V1__Event **ev, char *err)
{
    err[0] = '\0';
    return ndjson_parse_line(line, strlen(line), NOW, ev, err);
}

/* Expect a line to be refused with exactly this reason. */
static void s_expect_error(const char *line, const char *reason)
{
    Funnel__V1__Event *ev = (void *)1;
    char err[NDJSON_ERR_MAX];
    assert_int_equal(s_parse(line, &ev, err), -1);
    assert_null(ev);
    assert_string_equal(err, reason);
}

/* Expect a line to be refused with a reason beginning with prefix. */
static void s_expect_error_prefix(const char *line, const char *prefix)
{
    Funnel__V1__Event *ev = (void *)1;
    char err[NDJSON_ERR_MAX];
    assert_int_equal(s_parse(line, &ev, err), -1);
    assert_null(ev);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("error \"%s\" does not begin with \"%s\"", err, prefix);
}

static Funnel__V1__Event *s_expect_event(const char *line)
{
    Funnel__V1__Event *ev = NULL;
    char err[NDJSON_ERR_MAX];
    int r = s_parse(line, &ev, err);
    if (r != 1)
        fail_msg("line refused: %s", err);
    assert_non_null(ev);
    return ev;
}

static const char *s_attr(const Funnel__V1__Event *ev, const char *key)
{
    for (size_t i = 0; i < ev->n_attrs; i++)
        if (strcmp(ev->attrs[i]->key, key) == 0)
            return ev->attrs[i]->value;
    return NULL;
}

/* ------------------------------------------------------------------ */

static void test_full_line(void **state)
{
    (void)state;
    Funnel__V1__Event *ev = s_expect_event(
        "{\"id\":\"e-000123\",\"lead\":\"L-1001\",\"source\":\"marketing\","
        "\"type\":\"form_submit\",\"at\":\"2026-11-26T10:00:00Z\","
        "\"attrs\":{\"industry\":\"retail\",\"company_size\":\"120\"},\"value\":0}");
    assert_string_equal(ev->id, "e-000123");
    assert_string_equal(ev->lead_id, "L-1001");
    assert_int_equal(ev->source, FUNNEL__V1__SOURCE__SOURCE_MARKETING);
    assert_string_equal(ev->type, "form_submit");
    assert_int_equal(ev->occurred_at_ms, INT64_C(1795687200000));
    assert_int_equal(ev->n_attrs, 2);
    assert_string_equal(s_attr(ev, "industry"), "retail");
    assert_string_equal(s_attr(ev, "company_size"), "120");
    assert_true(ev->value == 0.0);
    ndjson_event_destroy(&ev);
    assert_null(ev);
}

static void test_minimal_line_defaults(void **state)
{
    (void)state;
    Funnel__V1__Event *ev = s_expect_event(
        "{\"lead\":\"L-1\",\"source\":\"sales\",\"type\":\"meeting_booked\"}");
    assert_int_equal(ev->source, FUNNEL__V1__SOURCE__SOURCE_SALES);
    assert_int_equal(ev->occurred_at_ms, NOW);
    assert_int_equal(ev->n_attrs, 0);
    assert_int_equal(strncmp(ev->id, "h-", 2), 0);
    assert_int_equal(strlen(ev->id), 18);
    ndjson_event_free(ev);
}

static void test_null_optional_fields(void **state)
{
    (void)state;
    Funnel__V1__Event *ev = s_expect_event(
        "{\"id\":null,\"lead\":\"L-1\",\"source\":\"sales\",\"type\":\"t\",\"at\":null,"
        "\"attrs\":null,\"value\":null,\"extra\":[1,2]}");
    assert_int_equal(ev->occurred_at_ms, NOW);
    assert_int_equal(strncmp(ev->id, "h-", 2), 0);
    ndjson_event_free(ev);
}

static void test_missing_fields(void **state)
{
    (void)state;
    s_expect_error("{\"source\":\"sales\",\"type\":\"t\"}", "missing field \"lead\"");
    s_expect_error("{\"lead\":\"L\",\"type\":\"t\"}", "missing field \"source\"");
    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\"}", "missing field \"type\"");
    s_expect_error("{\"lead\":null,\"source\":\"sales\",\"type\":\"t\"}",
                   "missing field \"lead\"");
    s_expect_error("{}", "missing field \"lead\"");
}

static void test_wrong_types(void **state)
{
    (void)state;
    s_expect_error("{\"lead\":1001,\"source\":\"sales\",\"type\":\"t\"}",
                   "field \"lead\" must be a string");
    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":[\"t\"]}",
                   "field \"type\" must be a string");
    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"id\":5}",
                   "field \"id\" must be a string");
    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"value\":\"12\"}",
                   "field \"value\" must be a number");
    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"attrs\":[]}",
                   "field \"attrs\" must be an object");
    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"at\":true}",
                   "field \"at\" must be an RFC 3339 string or epoch milliseconds");
    s_expect_error("{\"lead\":\"\",\"source\":\"sales\",\"type\":\"t\"}",
                   "field \"lead\" must not be empty");
    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"seq\":-1}",
                   "field \"seq\" must be a non-negative integer");
}

static void test_bad_source(void **state)
{
    (void)state;
    const char *want = "field \"source\" must be \"marketing\" or \"sales\"";
    s_expect_error("{\"lead\":\"L\",\"source\":\"support\",\"type\":\"t\"}", want);
    s_expect_error("{\"lead\":\"L\",\"source\":\"Marketing\",\"type\":\"t\"}", want);
    s_expect_error("{\"lead\":\"L\",\"source\":2,\"type\":\"t\"}",
                   "field \"source\" must be a string");
}

static void test_field_limits(void **state)
{
    (void)state;
    char line[512];
    char lead[130];
    memset(lead, 'x', 129);
    lead[129] = '\0';
    snprintf(line, sizeof line, "{\"lead\":\"%s\",\"source\":\"sales\",\"type\":\"t\"}", lead);
    s_expect_error(line, "field \"lead\" is longer than 128 bytes");
    lead[128] = '\0';
    snprintf(line, sizeof line, "{\"lead\":\"%s\",\"source\":\"sales\",\"type\":\"t\"}", lead);
    Funnel__V1__Event *ev = s_expect_event(line);
    ndjson_event_free(ev);
}

static void test_rfc3339_variants(void **state)
{
    (void)state;
    int64_t ms;
    char err[NDJSON_ERR_MAX];
    assert_int_equal(ndjson_parse_time("2026-11-26T10:00:00Z", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200000));
    assert_int_equal(ndjson_parse_time("2026-11-26T12:00:00+02:00", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200000));
    assert_int_equal(ndjson_parse_time("2026-11-26T05:30:00-04:30", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200000));
    assert_int_equal(ndjson_parse_time("2026-11-26t10:00:00z", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200000));
    assert_int_equal(ndjson_parse_time("2026-11-26 10:00:00Z", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200000));
    /* fractional seconds: 1 to 9 digits, truncated to ms */
    assert_int_equal(ndjson_parse_time("2026-11-26T10:00:00.5Z", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200500));
    assert_int_equal(ndjson_parse_time("2026-11-26T10:00:00.123Z", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200123));
    assert_int_equal(ndjson_parse_time("2026-11-26T10:00:00.123999999+00:00", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200123));
    /* leap day, epoch start */
    assert_int_equal(ndjson_parse_time("2028-02-29T00:00:00Z", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1835395200000));
    assert_int_equal(ndjson_parse_time("1970-01-01T00:00:00.001Z", &ms, err), 0);
    assert_int_equal(ms, 1);
}

static void test_rfc3339_errors(void **state)
{
    (void)state;
    int64_t ms;
    char err[NDJSON_ERR_MAX];
    assert_int_equal(ndjson_parse_time("2026-11-26T10:00:00", &ms, err), -1);
    assert_string_equal(err, "expected 'Z' or a UTC offset (+HH:MM) at offset 19");
    assert_int_equal(ndjson_parse_time("2026-13-01T00:00:00Z", &ms, err), -1);
    assert_string_equal(err, "month 13 out of range");
    assert_int_equal(ndjson_parse_time("2027-02-29T00:00:00Z", &ms, err), -1);
    assert_string_equal(err, "day 29 out of range for 2027-02");
    assert_int_equal(ndjson_parse_time("2026-11-26T24:00:00Z", &ms, err), -1);
    assert_string_equal(err, "hour 24 out of range");
    assert_int_equal(ndjson_parse_time("2026-11-26", &ms, err), -1);
    assert_string_equal(err, "expected 'T' at offset 10");
    assert_int_equal(ndjson_parse_time("2026-11-26T10:00:00.Z", &ms, err), -1);
    assert_int_equal(ndjson_parse_time("2026-11-26T10:00:00Zjunk", &ms, err), -1);
    assert_string_equal(err, "trailing characters at offset 20");
    assert_int_equal(ndjson_parse_time("2026-11-26T10:00:00+0200", &ms, err), -1);
    assert_int_equal(ndjson_parse_time("1969-12-31T23:59:59Z", &ms, err), -1);
    assert_int_equal(ndjson_parse_time("", &ms, err), -1);

    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"at\":\"yesterday\"}",
                   "bad time \"yesterday\": expected 4-digit year at offset 0");
    s_expect_error_prefix(
        "{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"at\":\"2026-02-30T00:00:00Z\"}",
        "bad time \"2026-02-30T00:00:00Z\": day 30 out of range");
}

static void test_epoch_ms(void **state)
{
    (void)state;
    Funnel__V1__Event *ev = s_expect_event(
        "{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"at\":1795687200123}");
    assert_int_equal(ev->occurred_at_ms, INT64_C(1795687200123));
    ndjson_event_free(ev);
    ev = s_expect_event("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"at\":\"1795687200123\"}");
    assert_int_equal(ev->occurred_at_ms, INT64_C(1795687200123));
    ndjson_event_free(ev);
    ev = s_expect_event("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"at\":1.7956872e12}");
    assert_int_equal(ev->occurred_at_ms, INT64_C(1795687200000));
    ndjson_event_free(ev);
    s_expect_error_prefix("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"at\":-5}",
                          "bad time -5: ");
    s_expect_error_prefix("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"at\":0}",
                          "bad time 0: ");
    s_expect_error_prefix("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"at\":12.5}",
                          "bad time 12.5: epoch milliseconds must be an integer");
}

static void test_format_time(void **state)
{
    (void)state;
    char buf[NDJSON_TIME_LEN];
    assert_string_equal(ndjson_format_time(INT64_C(1795687200000), buf),
                        "2026-11-26T10:00:00.000Z");
    assert_string_equal(ndjson_format_time(INT64_C(1835395200007), buf),
                        "2028-02-29T00:00:00.007Z");
    assert_string_equal(ndjson_format_time(0, buf), "1970-01-01T00:00:00.000Z");
    /* round trip */
    int64_t ms;
    char err[NDJSON_ERR_MAX];
    for (int64_t t = 1; t < INT64_C(4102444800000); t += INT64_C(987654321097)) {
        assert_int_equal(ndjson_parse_time(ndjson_format_time(t, buf), &ms, err), 0);
        assert_int_equal(ms, t);
    }
}

static void test_default_id(void **state)
{
    (void)state;
    const char *a = "{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\"}";
    const char *b = "{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"u\"}";
    Funnel__V1__Event *e1 = s_expect_event(a);
    Funnel__V1__Event *e2 = s_expect_event(a);
    Funnel__V1__Event *e3 = s_expect_event(b);
    assert_string_equal(e1->id, e2->id);
    assert_string_not_equal(e1->id, e3->id);

    /* the id is a function of the line's bytes: CRLF and the newline do not
     * count, the known FNV-1a value of the bytes does */
    char id[NDJSON_LINE_ID_LEN];
    ndjson_line_id(a, strlen(a), id);
    assert_string_equal(e1->id, id);
    char crlf[128];
    snprintf(crlf, sizeof crlf, "%s\r\n", a);
    Funnel__V1__Event *e4 = s_expect_event(crlf);
    assert_string_equal(e1->id, e4->id);
    ndjson_line_id("", 0, id);
    assert_string_equal(id, "h-cbf29ce484222325");
    ndjson_line_id("a", 1, id);
    assert_string_equal(id, "h-af63dc4c8601ec8c");

    /* an explicit id wins */
    Funnel__V1__Event *e5 =
        s_expect_event("{\"id\":\"mine\",\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\"}");
    assert_string_equal(e5->id, "mine");
    ndjson_event_free(e1);
    ndjson_event_free(e2);
    ndjson_event_free(e3);
    ndjson_event_free(e4);
    ndjson_event_free(e5);
}

static void test_attrs_non_string(void **state)
{
    (void)state;
    Funnel__V1__Event *ev = s_expect_event(
        "{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"attrs\":{\"size\":120,"
        "\"ratio\":0.1,\"big\":1e21,\"ok\":true,\"no\":false,\"s\":\"x\",\"e\":\"\"}}");
    assert_int_equal(ev->n_attrs, 7);
    assert_string_equal(s_attr(ev, "size"), "120");
    assert_string_equal(s_attr(ev, "ratio"), "0.1");
    assert_string_equal(s_attr(ev, "big"), "1e+21");
    assert_string_equal(s_attr(ev, "ok"), "true");
    assert_string_equal(s_attr(ev, "no"), "false");
    assert_string_equal(s_attr(ev, "s"), "x");
    assert_string_equal(s_attr(ev, "e"), "");
    ndjson_event_free(ev);

    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"attrs\":{\"a\":null}}",
                   "attr \"a\" must be a string, number or boolean");
    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"attrs\":{\"a\":[1]}}",
                   "attr \"a\" must be a string, number or boolean");
    s_expect_error("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"attrs\":{\"\":\"v\"}}",
                   "attrs key must not be empty");
}

static void test_blank_lines(void **state)
{
    (void)state;
    Funnel__V1__Event *ev = (void *)1;
    char err[NDJSON_ERR_MAX];
    assert_int_equal(s_parse("", &ev, err), 0);
    assert_null(ev);
    assert_int_equal(s_parse("   \t  ", &ev, err), 0);
    assert_int_equal(s_parse("\n", &ev, err), 0);
    assert_int_equal(s_parse("\r\n", &ev, err), 0);
    /* surrounding whitespace around an object is fine */
    ev = s_expect_event("  {\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\"}  \n");
    ndjson_event_free(ev);
}

static void test_long_line(void **state)
{
    (void)state;
    /* a 512 KiB attribute value is fine */
    size_t n = 512 * 1024;
    char *line = malloc(n + 128);
    assert_non_null(line);
    int k = sprintf(line, "{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\",\"attrs\":{\"a\":\"");
    memset(line + k, 'x', n);
    strcpy(line + k + n, "\"}}");
    Funnel__V1__Event *ev = s_expect_event(line);
    assert_int_equal(strlen(s_attr(ev, "a")), n);
    ndjson_event_free(ev);
    free(line);

    /* beyond NDJSON_MAX_LINE it is refused before parsing */
    n = NDJSON_MAX_LINE + 10;
    line = malloc(n + 1);
    assert_non_null(line);
    memset(line, ' ', n);
    line[0] = '{';
    line[n - 1] = '}';
    line[n] = '\0';
    s_expect_error(line, "line longer than 1048576 bytes");
    free(line);
}

static void test_invalid_json(void **state)
{
    (void)state;
    s_expect_error_prefix("{\"lead\":\"L\",", "invalid JSON: ");
    s_expect_error_prefix("not json", "invalid JSON: ");
    s_expect_error_prefix("{\"lead\":\"L\xff\",\"source\":\"sales\",\"type\":\"t\"}",
                          "invalid JSON: ");
    s_expect_error_prefix("{\"lead\":\"\xc3\x28\",\"source\":\"sales\",\"type\":\"t\"}",
                          "invalid JSON: ");
    s_expect_error_prefix("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\"} trailing",
                          "invalid JSON: ");
    s_expect_error_prefix("{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\"}{}",
                          "invalid JSON: ");
    s_expect_error_prefix("{\"lead\":\"L\",\"lead\":\"M\",\"source\":\"sales\",\"type\":\"t\"}",
                          "invalid JSON: ");
    s_expect_error("[1,2]", "not a JSON object");
    s_expect_error("\"text\"", "not a JSON object");
    s_expect_error("42", "not a JSON object");
    s_expect_error("null", "not a JSON object");

    /* valid UTF-8 beyond ASCII is kept */
    Funnel__V1__Event *ev =
        s_expect_event("{\"lead\":\"L-\xc3\xa9t\xc3\xa9\",\"source\":\"sales\",\"type\":\"t\"}");
    assert_string_equal(ev->lead_id, "L-\xc3\xa9t\xc3\xa9");
    ndjson_event_free(ev);
}

static void test_embedded_nul(void **state)
{
    (void)state;
    static const char line[] = "{\"lead\":\"L\",\"source\":\"sales\",\"type\":\"t\"}\0junk";
    Funnel__V1__Event *ev = NULL;
    char err[NDJSON_ERR_MAX];
    assert_int_equal(ndjson_parse_line(line, sizeof line - 1, NOW, &ev, err), -1);
    assert_null(ev);
}

static void test_parse_time_arg(void **state)
{
    (void)state;
    int64_t ms;
    char err[NDJSON_ERR_MAX];
    assert_int_equal(ndjson_parse_time_arg("1795687200000", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200000));
    assert_int_equal(ndjson_parse_time_arg("2026-11-26T10:00:00Z", &ms, err), 0);
    assert_int_equal(ms, INT64_C(1795687200000));
    assert_int_equal(ndjson_parse_time_arg("0", &ms, err), -1);
    assert_int_equal(ndjson_parse_time_arg("99999999999999999999", &ms, err), -1);
    assert_string_equal(err, "bad time \"99999999999999999999\": epoch milliseconds out of range");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_line),
        cmocka_unit_test(test_minimal_line_defaults),
        cmocka_unit_test(test_null_optional_fields),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bad_source),
        cmocka_unit_test(test_field_limits),
        cmocka_unit_test(test_rfc3339_variants),
        cmocka_unit_test(test_rfc3339_errors),
        cmocka_unit_test(test_epoch_ms),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_default_id),
        cmocka_unit_test(test_attrs_non_string),
        cmocka_unit_test(test_blank_lines),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_parse_time_arg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
