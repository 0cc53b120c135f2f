/* test_defn_rules.c: the parts of the funnel definition added for the
 * ideal lead and personas: conditions, regressions, fit rules, the
 * qualification rule, handoff settings and personas; every semantic error
 * with its exact file:line:column; and the semantic diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "defn.h"
#include "hnd.h"

static char s_err[1024];

static defn_t *s_load(const char *yaml)
{
    s_err[0] = '\0';
    return defn_load_buffer(yaml, strlen(yaml), "t.yaml", s_err, sizeof s_err);
}

#define HEAD                                         \
    "name: t\n"                          /* 1 */     \
    "stages: [{name: a}, {name: b}]\n"   /* 2 */     \
    "exits: [{name: lost}]\n"            /* 3 */     \
    "transitions:\n"                     /* 4 */     \
    "  - {types: [x], to: b}\n"          /* 5 */     \
    "scoring:\n"                         /* 6 */     \
    "  engagement: [{type: x, points: 5}]\n" /* 7 */

typedef struct {
    const char *what;
    const char *yaml;
    int line, col;
    const char *needle;
} s_case_t;

static const s_case_t s_cases[] = {
    { "unknown stage in a transition",
      HEAD "  fit: []\n"
      "qualification: {engagement: 1}\n"
      "regressions:\n"
      "  - {types: [y], to: nowhere}\n",
      11, 22, "regressions[0].to: regression to unknown stage 'nowhere'" },
    { "unknown from stage",
      HEAD "qualification: {engagement: 1}\n"
      "regressions:\n"
      "  - {types: [y], from: [zz], to: a}\n",
      10, 25, "regressions[0].from[0]: unknown stage 'zz'" },
    { "recycle to an unknown stage",
      HEAD "qualification: {engagement: 1}\n"
      "handoff: {recycle_to: c}\n",
      9, 23, "handoff.recycle_to: unknown stage 'c'" },
    { "recycle to a terminal stage",
      HEAD "qualification: {engagement: 1}\n"
      "handoff: {recycle_to: lost}\n",
      9, 23, "is terminal" },
    { "persona counter on an unknown event type",
      HEAD "qualification: {engagement: 1}\n"
      "personas:\n"
      "  - name: p\n"
      "    when:\n"
      "      - {count: download, min: 2}\n",
      12, 17, "personas[0].when[0].count: no transition, regression, scoring "
              "rule or handoff answer names event type 'download'" },
    { "duplicate persona",
      HEAD "qualification: {engagement: 1}\n"
      "personas:\n"
      "  - {name: p, when: [{attr: r, equals: c}]}\n"
      "  - {name: p}\n",
      11, 12, "duplicate persona 'p' (first defined at line 10)" },
    { "persona after a catch-all",
      HEAD "qualification: {engagement: 1}\n"
      "personas:\n"
      "  - {name: all}\n"
      "  - {name: p}\n",
      11, 12, "never assigned" },
    { "fit threshold no lead could reach",
      HEAD "  fit: [{attr: i, equals: s, points: 10}]\n"
      "qualification:\n"
      "  any_of:\n"
      "    - {engagement: 5}\n"
      "    - {fit: 20, engagement: 5}\n",
      12, 13, "qualification.any_of[1].fit: threshold 20 can never be "
              "reached: the fit rules (scoring.fit) add up to at most 10" },
    { "total threshold no lead could reach",
      "name: t\n"
      "stages: [{name: a}]\n"
      "scoring:\n"
      "  engagement: [{type: u, points: -5}]\n"
      "  fit: [{attr: i, equals: s, points: 10}]\n"
      "qualification: {total: 11}\n",
      6, 24, "qualification.total: threshold 11 can never be reached" },
    { "thresholds and any_of together",
      HEAD "qualification:\n"
      "  engagement: 5\n"
      "  any_of: [{total: 5}]\n",
      10, 11, "thresholds and any_of together" },
    { "clause without threshold",
      HEAD "qualification:\n"
      "  any_of: [{total: 5}, {}]\n",
      9, 24, "qualification.any_of[1]: no threshold" },
    { "fit rule with two tests",
      HEAD "  fit:\n"
      "    - {attr: size, min: 5, equals: x, points: 1}\n"
      "qualification: {engagement: 1}\n",
      9, 7, "scoring.fit[0]: more than one test" },
    { "fit rule without points",
      HEAD "  fit:\n"
      "    - {attr: size, min: 5}\n"
      "qualification: {engagement: 1}\n",
      9, 7, "scoring.fit[0]: missing 'points'" },
    { "range max below min",
      HEAD "  fit:\n"
      "    - {attr: size, min: 50, max: 5, points: 1}\n"
      "qualification: {engagement: 1}\n",
      9, 34, "max 5 is below min 50" },
    { "counter in a fit rule",
      HEAD "  fit:\n"
      "    - {count: x, min: 1, points: 1}\n"
      "qualification: {engagement: 1}\n",
      9, 15, "for personas only" },
    { "unknown condition key",
      HEAD "qualification: {engagement: 1}\n"
      "personas:\n"
      "  - {name: p, when: [{atr: role, equals: x}]}\n",
      10, 23, "unknown key 'atr' (known here: attr, count, equals, one_of, "
              "min, max, present)" },
    { "conditional transition after an unconditional one",
      "name: t\n"
      "stages: [{name: a}, {name: b}]\n"
      "transitions:\n"
      "  - {types: [x], to: a}\n"
      "  - {types: [x], to: b, when: {attr: t, equals: g}}\n"
      "qualification: {engagement: 0}\n",
      5, 14, "never used" },
    { "duplicate regression",
      HEAD "qualification: {engagement: 1}\n"
      "regressions:\n"
      "  - {types: [y], to: a}\n"
      "  - {types: [y], to: b}\n",
      11, 14, "already has a regression" },
    { "bad present",
      HEAD "  fit: [{attr: e, present: maybe, points: 1}]\n"
      "qualification: {engagement: 1}\n",
      8, 28, "expected true or false, not 'maybe'" },
    { "same accept and reject type",
      HEAD "qualification: {engagement: 1}\n"
      "handoff: {accepted: ok, rejected: ok}\n",
      9, 35, "same event type as handoff.accepted" },
};

static void test_errors(void **state)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        char prefix[64];
        defn_t *d = s_load(c->yaml);
        if (d)
            fail_msg("%s: loaded, expected an error", c->what);
        snprintf(prefix, sizeof prefix, "t.yaml:%d:%d: ", c->line, c->col);
        if (strncmp(s_err, prefix, strlen(prefix)) != 0 || !strstr(s_err, c->needle)) {
            print_error("%s: got \"%s\", want \"%s...%s\"\n", c->what, s_err, prefix,
                        c->needle);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_loaded(void **state)
{
    defn_t *d = s_load(
        HEAD "  fit:\n"
        "    - {attr: size, min: 50, max: 500, points: 10}\n"
        "    - {attr: ind, one_of: [a, b], points: 5}\n"
        "qualification:\n"
        "  any_of: [{fit: 10, engagement: 5}, {total: 20}]\n"
        "regressions: [{types: [reopen], from: [lost], to: a}]\n"
        "handoff: {recycle_to: a, reset_engagement: false, reason_attr: why}\n"
        "personas:\n"
        "  - {name: p, when: [{count: reopen, min: 1}, {attr: ind, present: true}]}\n");
    if (!d)
        fail_msg("%s", s_err);
    assert_int_equal(d->n_fit, 2);
    assert_string_equal(d->fit[0].label, "size in 50..500");
    assert_string_equal(d->fit[1].label, "ind in [a, b]");
    assert_int_equal(d->n_clauses, 2);
    assert_string_equal(d->clauses[0].label, "fit >= 10 and engagement >= 5");
    assert_string_equal(d->clauses[1].label, "total >= 20");
    assert_int_equal(d->recycle_stage, 0);
    assert_false(d->recycle_reset);
    assert_string_equal(d->reason_attr, "why");
    assert_string_equal(d->accept_type, "handoff_accepted");
    const defn_type_t *t = defn_type(d, "reopen");
    assert_non_null(t);
    assert_true(t->persona_ref);
    assert_int_equal(d->regressions[t->regression].from_mask, 1u << 2);
    assert_non_null(defn_type(d, "handoff_rejected"));
    assert_null(defn_type(d, "nothing"));
    assert_true(defn_type(d, "x")->points == 5);
    defn_destroy(&d);
}

typedef struct {
    char lines[32][256];
    size_t n;
} s_diffs_t;

static void s_on_diff(const char *section, const char *change, const char *what,
                      const char *a, const char *b, void *arg)
{
    s_diffs_t *o = arg;
    if (o->n < 32)
        snprintf(o->lines[o->n++], 256, "%s %s %s: %s | %s", section, change, what,
                 a ? a : "-", b ? b : "-");
}

static bool s_has(const s_diffs_t *o, const char *line)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->lines[i], line) == 0)
            return true;
    return false;
}

static void test_diff(void **state)
{
    defn_t *a = s_load(
        "name: t\n"
        "stages: [{name: a, max_dwell: 30d}, {name: b}, {name: c}]\n"
        "transitions: [{types: [x], to: b}, {types: [y], to: c}]\n"
        "scoring:\n"
        "  engagement: [{type: x, points: 5}]\n"
        "  fit: [{attr: i, equals: s, points: 10}]\n"
        "qualification: {engagement: 10}\n"
        "personas: [{name: p, when: [{count: x, min: 1}]}, {name: q}]\n");
    defn_t *b = s_load(
        "name: t\n"
        "stages: [{name: b}, {name: a, max_dwell: 14d}, {name: d}]\n"
        "transitions: [{types: [x], to: d}, {types: [z], to: b, source: sales}]\n"
        "scoring:\n"
        "  engagement: [{type: x, points: 7}]\n"
        "  fit: [{attr: i, equals: s, points: 10}]\n"
        "qualification: {any_of: [{engagement: 10}, {fit: 10}]}\n"
        "handoff: {sla: 48h}\n"
        "personas: [{name: p, when: [{count: x, min: 2}]}, {name: r}]\n");
    assert_non_null(a);
    assert_non_null(b);
    s_diffs_t o = { .n = 0 };
    assert_int_equal(defn_diff(a, a, s_on_diff, &o), 0);
    size_t n = defn_diff(a, b, s_on_diff, &o);
    for (size_t i = 0; i < o.n; i++)
        print_message("%s\n", o.lines[i]);
    assert_int_equal(n, o.n);
    assert_true(s_has(&o, "stages changed a: max_dwell 30d, conversion_target 0 | "
                          "max_dwell 2w, conversion_target 0"));
    assert_true(s_has(&o, "stages removed c: max_dwell none, conversion_target 0 | -"));
    assert_true(s_has(&o, "stages added d: - | max_dwell none, conversion_target 0"));
    assert_true(s_has(&o, "stages reordered order: a, b | b, a"));
    assert_true(s_has(&o, "transitions changed x: to b | to d"));
    assert_true(s_has(&o, "transitions removed y: to c | -"));
    assert_true(s_has(&o, "transitions added z from sales: - | to b"));
    assert_true(s_has(&o, "scoring changed engagement x: 5 points | 7 points"));
    assert_true(s_has(&o, "qualification changed rule: engagement >= 10 | "
                          "engagement >= 10 or fit >= 10"));
    assert_true(s_has(&o, "handoff changed sla: 1d | 2d"));
    assert_true(s_has(&o, "personas changed p: count(x) >= 1 | count(x) >= 2"));
    assert_true(s_has(&o, "personas removed q: every lead | -"));
    assert_true(s_has(&o, "personas added r: - | every lead"));
    assert_int_equal(n, 13);
    defn_destroy(&a);
    defn_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_loaded),
        cmocka_unit_test(test_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
