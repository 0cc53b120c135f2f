/* test_validate.c: what funneld accepts at the door, and the reasons it
 * gives for what it refuses. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "validate.h"

#define NOW 1790000000000LL

typedef struct {
    Funnel__V1__Event ev;
    Funnel__V1__Event__AttrsEntry attr;
    Funnel__V1__Event__AttrsEntry *attrs[1];
    char buf[192];
} fixture_t;

static void good(fixture_t *f)
{
    memset(f, 0, sizeof *f);
    funnel__v1__event__init(&f->ev);
    f->ev.id = "e-1";
    f->ev.lead_id = "L-1";
    f->ev.type = "page_view";
    f->ev.source = FUNNEL__V1__SOURCE__SOURCE_MARKETING;
    f->ev.occurred_at_ms = NOW - 1000;
    funnel__v1__event__attrs_entry__init(&f->attr);
    f->attr.key = "industry";
    f->attr.value = "retail";
    f->attrs[0] = &f->attr;
    f->ev.attrs = f->attrs;
    f->ev.n_attrs = 1;
}

static const char *check(fixture_t *f)
{
    return validate_event(&f->ev, NOW, &validate_defaults, f->buf, sizeof f->buf);
}

static void test_good_event(void **state)
{
    fixture_t f;
    good(&f);
    assert_null(check(&f));
    f.ev.occurred_at_ms = 0; /* "now" */
    assert_null(check(&f));
}

static void test_required_fields(void **state)
{
    fixture_t f;
    good(&f);
    f.ev.lead_id = "";
    assert_string_equal(check(&f), "missing lead_id");
    good(&f);
    f.ev.id = "";
    assert_string_equal(check(&f), "missing id");
    good(&f);
    f.ev.type = "";
    assert_string_equal(check(&f), "missing type");
    good(&f);
    f.ev.type = "$deadline";
    assert_non_null(strstr(check(&f), "reserved"));
    good(&f);
    f.ev.id = "$deadline/stall/L-1/1";
    assert_non_null(strstr(check(&f), "ids beginning with $ are reserved"));
}

static void test_source(void **state)
{
    fixture_t f;
    good(&f);
    f.ev.source = FUNNEL__V1__SOURCE__SOURCE_UNSPECIFIED;
    assert_non_null(strstr(check(&f), "missing source"));
    f.ev.source = (Funnel__V1__Source)7;
    assert_non_null(strstr(check(&f), "unknown source 7"));
    f.ev.source = FUNNEL__V1__SOURCE__SOURCE_SALES;
    assert_null(check(&f));
}

static void test_lengths_and_utf8(void **state)
{
    fixture_t f;
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    good(&f);
    f.ev.lead_id = longid;
    assert_non_null(strstr(check(&f), "lead_id longer than 128 bytes"));
    good(&f);
    f.ev.type = "page\xff";
    assert_string_equal(check(&f), "type is not valid UTF-8");
    good(&f);
    f.ev.id = "caf\xc3\xa9"; /* "café": fine */
    assert_null(check(&f));
    assert_false(validate_utf8("\xc0\xaf", 10));          /* overlong */
    assert_false(validate_utf8("\xed\xa0\x80", 10));      /* surrogate */
    assert_false(validate_utf8("\xe2\x82", 10));          /* truncated */
    assert_true(validate_utf8("\xf0\x9f\x98\x80", 10));   /* emoji */
}

static void test_times(void **state)
{
    fixture_t f;
    good(&f);
    f.ev.occurred_at_ms = 1000; /* 1970 */
    assert_non_null(strstr(check(&f), "before the earliest accepted time"));
    assert_non_null(strstr(check(&f), "(1970-01-01T00:00:01Z)"));
    assert_non_null(strstr(check(&f), "2000-01-01T00:00:00Z"));
    f.ev.occurred_at_ms = NOW + 2 * 24 * 3600 * 1000LL;
    assert_non_null(strstr(check(&f), "in the future"));
    f.ev.occurred_at_ms = NOW + 3600 * 1000LL; /* an hour of clock skew */
    assert_null(check(&f));
}

static void test_value_and_attrs(void **state)
{
    fixture_t f;
    good(&f);
    f.ev.value = NAN;
    assert_string_equal(check(&f), "value is not a finite number");
    good(&f);
    f.attr.key = "";
    assert_string_equal(check(&f), "missing attribute key");
    good(&f);
    f.attr.value = "\xfe";
    assert_string_equal(check(&f), "attrs[industry] is not valid UTF-8");
    good(&f);
    f.ev.n_attrs = 33;
    assert_non_null(strstr(check(&f), "33 attrs"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_event),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_source),
        cmocka_unit_test(test_lengths_and_utf8),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_value_and_attrs),
    };
    return cmocka_run_group_tests_name("validate", tests, NULL, NULL);
}
