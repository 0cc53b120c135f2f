/* test_defn.c: the funnel definition loader (handlers/defn*.c).
 *
 * The built-in AIDA definition and its SPEC values, the installed copy of
 * it, every class of error with its exact file:line:column, transition
 * lookup with source restrictions, and duration parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "defn.h"
#include "hnd.h"

#define DAY_MS (24LL * 3600 * 1000)

static char s_err[1024];

static defn_t *s_load(const char *yaml)
{
    s_err[0] = '\0';
    return defn_load_buffer(yaml, strlen(yaml), "t.yaml", s_err, sizeof s_err);
}

/* A small valid definition; tests append to it or replace it. */
static const char s_base[] =
    "name: t\n"                                 /* 1 */
    "stages:\n"                                 /* 2 */
    "  - {name: a, max_dwell: 30d}\n"           /* 3 */
    "  - {name: b}\n"                           /* 4 */
    "transitions:\n"                            /* 5 */
    "  - {types: [x], to: b}\n"                 /* 6 */
    "scoring:\n"                                /* 7 */
    "  engagement:\n"                           /* 8 */
    "    - {type: x, points: 5}\n"              /* 9 */
    "qualification:\n"                          /* 10 */
    "  engagement: 10\n";                       /* 11 */

/* ---------------------------------------------------------------------- */

static void test_default_values(void **state)
{
    defn_t *d = defn_load_default();
    assert_non_null(d);
    assert_string_equal(d->name, "aida");
    assert_string_equal(d->path, "(built-in)");

    static const char *const order[] = { "awareness", "interest", "decision",
                                         "action" };
    static const int64_t dwell[] = { 30 * DAY_MS, 14 * DAY_MS, 21 * DAY_MS, 0 };
    assert_int_equal(d->n_order, 4);
    assert_int_equal(d->n_stages, 5);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(d->stages[i].name, order[i]);
        assert_int_equal(d->stages[i].max_dwell_ms, dwell[i]);
        assert_int_equal(defn_stage_index(d, order[i]), (int)i);
        assert_true(d->stages[i].terminal == (i == 3));
    }
    assert_string_equal(d->stages[4].name, "lost");
    assert_true(d->stages[4].terminal);
    assert_int_equal(defn_stage_index(d, "lost"), 4);
    assert_int_equal(defn_stage_index(d, "nowhere"), -1);

    static const struct { const char *type, *stage; } moves[] = {
        { "ad_click", "awareness" }, { "page_view", "awareness" },
        { "email_open", "awareness" }, { "social_engagement", "awareness" },
        { "form_submit", "interest" }, { "content_download", "interest" },
        { "webinar_attended", "interest" }, { "email_click", "interest" },
        { "demo_request", "decision" }, { "meeting_booked", "decision" },
        { "proposal_sent", "decision" }, { "trial_started", "decision" },
        { "closed_won", "action" }, { "purchase", "action" },
        { "closed_lost", "lost" },
    };
    assert_int_equal(d->n_transitions, sizeof moves / sizeof moves[0]);
    for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++) {
        for (int src = HND_SRC_MARKETING; src <= HND_SRC_SALES; src++) {
            const defn_transition_t *t = defn_transition(d, moves[i].type, src);
            assert_non_null(t);
            assert_string_equal(d->stages[t->stage].name, moves[i].stage);
        }
    }
    assert_null(defn_transition(d, "unsubscribe", HND_SRC_MARKETING));

    static const struct { const char *type; double points; } pts[] = {
        { "page_view", 1 }, { "email_open", 2 }, { "email_click", 3 },
        { "content_download", 5 }, { "webinar_attended", 10 },
        { "form_submit", 10 }, { "demo_request", 25 }, { "meeting_booked", 20 },
        { "unsubscribe", -20 },
    };
    assert_int_equal(d->n_points, sizeof pts / sizeof pts[0]);
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++)
        assert_true(defn_points(d, pts[i].type) == pts[i].points);
    assert_true(defn_points(d, "ad_click") == 0);

    assert_int_equal(d->half_life_ms, 30 * DAY_MS);
    assert_true(d->qualify_engagement == 50);
    assert_int_equal(d->handoff_sla_ms, 24LL * 3600 * 1000);
    defn_destroy(&d);
    assert_null(d);
}

static char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

static void test_installed_equals_embedded(void **state)
{
    const char *src = getenv("FUNNELD_SOURCE_DIR");
    if (!src) {
        skip();
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/handlers/default.yaml", src);
    size_t len;
    char *text = s_read(path, &len);
    assert_int_equal(len, defn_default_yaml_len);
    assert_memory_equal(text, defn_default_yaml, len);
    assert_int_equal(strlen(defn_default_yaml), defn_default_yaml_len);

    defn_t *file = defn_load_file(path, s_err, sizeof s_err);
    assert_non_null(file);
    defn_t *builtin = defn_load_default();
    assert_string_equal(file->path, path);
    assert_string_equal(file->hash, builtin->hash);
    defn_destroy(&file);
    defn_destroy(&builtin);
    free(text);
}

static void test_hash(void **state)
{
    /* FNV-1a 64 of the bytes, as 16 lowercase hex digits. */
    defn_t *d = s_load(s_base);
    assert_non_null(d);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = s_base; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 0x100000001b3ULL;
    }
    char want[17];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)h);
    assert_string_equal(d->hash, want);
    assert_string_equal(d->path, "t.yaml");
    /* Optional parts take their defaults. */
    assert_int_equal(d->n_order, 2);
    assert_int_equal(d->n_stages, 2);
    assert_int_equal(d->half_life_ms, 0);
    assert_int_equal(d->handoff_sla_ms, 24LL * 3600 * 1000);
    assert_false(d->stages[1].terminal);
    defn_destroy(&d);

    /* One byte more: another hash. */
    char *more = malloc(sizeof s_base + 2);
    snprintf(more, sizeof s_base + 2, "%s\n", s_base);
    defn_t *e = s_load(more);
    assert_non_null(e);
    assert_string_not_equal(e->hash, want);
    defn_destroy(&e);
    free(more);
}

/* ---------------------------------------------------------------------- */
/* Errors: each gives file:line:column and says what is wrong.             */

typedef struct {
    const char *what;
    const char *yaml;
    int line, col;
    const char *needle;         /* part of the message */
} s_case_t;

static const s_case_t s_cases[] = {
    /* syntax */
    { "unclosed flow mapping",
      "name: t\n"
      "stages:\n"
      "  - {name: a\n"
      "transitions: []\n",
      4, 12, "YAML syntax error: did not find expected ',' or '}'" },
    { "tab indentation",
      "name: t\n"
      "stages:\n"
      "\t- {name: a}\n",
      3, 1, "YAML syntax error" },
    { "bad indentation",
      "name: t\n"
      "stages:\n"
      "  - {name: a}\n"
      " qualification: {engagement: 1}\n",
      4, 2, "YAML syntax error: did not find expected key" },
    { "alias",
      "name: &n t\n"
      "stages:\n"
      "  - {name: *n}\n",
      3, 12, "aliases" },
    { "second document",
      "name: t\n"
      "stages: [{name: a}]\n"
      "qualification: {engagement: 0}\n"
      "---\n"
      "name: u\n",
      4, 1, "one YAML document" },
    { "empty file", "", 1, 1, "empty definition" },
    { "comments only", "# nothing\n\n", 1, 1, "empty definition" },
    /* unknown keys */
    { "unknown top-level key",
      "name: t\n"
      "stage:\n"
      "  - {name: a}\n",
      2, 1, "unknown key 'stage' (known here: name, stages, exits, "
            "transitions, regressions, scoring, qualification, handoff, "
            "personas, friction, quality)" },
    { "unknown stage key",
      "name: t\n"
      "stages:\n"
      "  - name: a\n"
      "    dwell: 3d\n",
      4, 5, "unknown key 'dwell' (known here: name, max_dwell, "
            "conversion_target, terminal)" },
    { "unknown qualification key",
      "name: t\n"
      "stages: [{name: a}]\n"
      "qualification:\n"
      "  engagment: 10\n",
      4, 3, "unknown key 'engagment'" },
    { "duplicate key",
      "name: t\n"
      "stages: [{name: a}]\n"
      "name: u\n",
      3, 1, "duplicate key 'name'" },
    /* wrong types */
    { "stages not a list",
      "name: t\n"
      "stages: a\n",
      2, 9, "stages: expected a list, not a single value" },
    { "stage name a list",
      "name: t\n"
      "stages:\n"
      "  - {name: [a]}\n",
      3, 12, "stages[0].name: expected a single value, not a list" },
    { "points not a number",
      "name: t\n"
      "stages: [{name: a}]\n"
      "scoring:\n"
      "  engagement:\n"
      "    - {type: x, points: lots}\n",
      5, 25, "scoring.engagement[0].points: 'lots' is not a number" },
    { "points infinite",
      "name: t\n"
      "stages: [{name: a}]\n"
      "scoring:\n"
      "  engagement:\n"
      "    - {type: x, points: inf}\n",
      5, 25, "not a finite number" },
    { "terminal not a boolean",
      "name: t\n"
      "stages:\n"
      "  - {name: a, terminal: maybe}\n",
      3, 25, "stages[0].terminal: expected true or false, not 'maybe'" },
    { "scoring a list",
      "name: t\n"
      "stages: [{name: a}]\n"
      "scoring: [1]\n",
      3, 10, "scoring: expected a mapping" },
    { "root a scalar", "aida\n", 1, 1, "expected a mapping" },
    /* missing pieces */
    { "no name",
      "stages: [{name: a}]\n"
      "qualification: {engagement: 1}\n",
      1, 1, "name: missing definition name" },
    { "no stages key",
      "name: t\n"
      "qualification: {engagement: 1}\n",
      1, 1, "missing 'stages'" },
    { "empty stages",
      "name: t\n"
      "stages: []\n"
      "qualification: {engagement: 1}\n",
      2, 9, "no stages" },
    { "stage without name",
      "name: t\n"
      "stages:\n"
      "  - {name: a}\n"
      "  - {max_dwell: 3d}\n",
      4, 5, "stages[1].name: missing stage name" },
    { "transition without to",
      "name: t\n"
      "stages: [{name: a}]\n"
      "transitions:\n"
      "  - {types: [x]}\n",
      4, 5, "missing 'to'" },
    { "transition without types",
      "name: t\n"
      "stages: [{name: a}]\n"
      "transitions:\n"
      "  - {to: a}\n",
      4, 5, "no event types" },
    { "points entry without points",
      "name: t\n"
      "stages: [{name: a}]\n"
      "scoring:\n"
      "  engagement:\n"
      "    - {type: x}\n",
      5, 7, "missing 'points'" },
    { "no qualification",
      "name: t\n"
      "stages: [{name: a}]\n",
      1, 1, "missing 'qualification'" },
    /* semantics */
    { "duplicate stage",
      "name: t\n"
      "stages:\n"
      "  - {name: a}\n"
      "  - {name: b}\n"
      "  - {name: a}\n",
      5, 12, "duplicate stage 'a' (first defined at line 3)" },
    { "exit named like a stage",
      "name: t\n"
      "stages:\n"
      "  - {name: a}\n"
      "exits:\n"
      "  - {name: a}\n",
      5, 12, "duplicate stage 'a'" },
    { "transition to unknown stage",
      "name: t\n"
      "stages: [{name: a}, {name: b}]\n"
      "transitions:\n"
      "  - {types: [x], to: a}\n"
      "  - {types: [y], to: c}\n",
      5, 22, "transitions[1].to: transition to unknown stage 'c'" },
    { "duplicate transition",
      "name: t\n"
      "stages: [{name: a}, {name: b}]\n"
      "transitions:\n"
      "  - {types: [x], to: a}\n"
      "  - {types: [y, x], to: b}\n",
      5, 17, "event type 'x' already has a transition (to 'a')" },
    { "unknown source",
      "name: t\n"
      "stages: [{name: a}]\n"
      "transitions:\n"
      "  - {types: [x], to: a, source: crm}\n",
      4, 33, "unknown source 'crm'" },
    { "duplicate points",
      "name: t\n"
      "stages: [{name: a}]\n"
      "scoring:\n"
      "  engagement:\n"
      "    - {type: x, points: 1}\n"
      "    - {type: y, points: 2}\n"
      "    - {type: x, points: 3}\n",
      7, 14, "duplicate points for event type 'x' (first at line 5)" },
    { "too many stages",
      "name: t\n"
      "stages:\n"
      "  - {name: s1}\n  - {name: s2}\n  - {name: s3}\n  - {name: s4}\n"
      "  - {name: s5}\n  - {name: s6}\n  - {name: s7}\n  - {name: s8}\n"
      "  - {name: s9}\n  - {name: s10}\n  - {name: s11}\n  - {name: s12}\n"
      "  - {name: s13}\n  - {name: s14}\n  - {name: s15}\n"
      "exits:\n"
      "  - {name: e1}\n"
      "  - {name: e2}\n",
      20, 5, "too many stages: 17, at most 16" },
    { "negative duration",
      "name: t\n"
      "stages:\n"
      "  - {name: a, max_dwell: -3d}\n",
      3, 26, "stages[0].max_dwell: negative duration '-3d'" },
    { "bad duration",
      "name: t\n"
      "stages:\n"
      "  - {name: a, max_dwell: 3 days}\n",
      3, 26, "bad duration '3 days'" },
    { "bad half-life",
      "name: t\n"
      "stages: [{name: a}]\n"
      "scoring:\n"
      "  half_life: soon\n",
      4, 14, "scoring.half_life: bad duration 'soon'" },
    { "negative sla",
      "name: t\n"
      "stages: [{name: a}]\n"
      "qualification: {engagement: 0}\n"
      "handoff:\n"
      "  sla: -1h\n",
      5, 8, "handoff.sla: negative duration" },
    { "conversion target above 1",
      "name: t\n"
      "stages:\n"
      "  - {name: a, conversion_target: 1.5}\n"
      "  - {name: b}\n",
      3, 34, "conversion_target: 1.5 is outside 0..1" },
    { "conversion target below 0",
      "name: t\n"
      "stages:\n"
      "  - {name: a,\n"
      "     conversion_target: -0.1}\n"
      "  - {name: b}\n",
      4, 25, "is outside 0..1" },
    { "conversion target on the last stage",
      "name: t\n"
      "stages:\n"
      "  - {name: a}\n"
      "  - {name: b, conversion_target: 0.5}\n",
      4, 34, "no next stage" },
    { "unreachable threshold",
      "name: t\n"
      "stages: [{name: a}]\n"
      "scoring:\n"
      "  engagement:\n"
      "    - {type: unsubscribe, points: -20}\n"
      "qualification:\n"
      "  engagement: 50\n",
      7, 15, "threshold 50 can never be reached" },
    { "unreachable threshold, no scoring",
      "name: t\n"
      "stages: [{name: a}]\n"
      "qualification:\n"
      "  engagement: 1\n",
      4, 15, "can never be reached" },
    { "event type too long",
      "name: t\n"
      "stages: [{name: a}]\n"
      "transitions:\n"
      "  - types:\n"
      "    - x\n"
      "    - aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
      "    to: a\n",
      6, 7, "event type longer than 64 bytes" },
};

static void test_errors(void **state)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        const s_case_t *c = &s_cases[i];
        char prefix[64];
        defn_t *d = s_load(c->yaml);
        if (d)
            fail_msg("%s: loaded, expected an error", c->what);
        snprintf(prefix, sizeof prefix, "t.yaml:%d:%d: ", c->line, c->col);
        if (strncmp(s_err, prefix, strlen(prefix)) != 0 ||
            !strstr(s_err, c->needle))
            fail_msg("%s: got \"%s\", want \"%s...%s\"", c->what, s_err,
                     prefix, c->needle);
        assert_null(strchr(s_err, '\n'));
    }
}

static void test_error_from_file(void **state)
{
    char path[] = "/tmp/test_defn_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] =
        "name: t\n"
        "stages:\n"
        "  - {name: a}\n"
        "transitions:\n"
        "  - {types: [x], to: z}\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)sizeof text - 1);
    close(fd);

    char want[128];
    snprintf(want, sizeof want, "%s:5:22: ", path);
    assert_null(defn_load_file(path, s_err, sizeof s_err));
    assert_memory_equal(s_err, want, strlen(want));
    unlink(path);

    /* A file that is not there: its name and why, no position. */
    assert_null(defn_load_file(path, s_err, sizeof s_err));
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(s_err, want);

    /* A short buffer still gets a NUL-terminated, truncated line; NULL err
     * is allowed. */
    char small[8];
    assert_null(defn_load_buffer("x: [", 4, "t.yaml", small, sizeof small));
    assert_string_equal(small, "t.yaml:");
    assert_null(defn_load_buffer("x: [", 4, "t.yaml", NULL, 0));
}

/* ---------------------------------------------------------------------- */

static void test_transition_source(void **state)
{
    defn_t *d = s_load(
        "name: t\n"
        "stages: [{name: a}, {name: b}, {name: c}]\n"
        "exits: [{name: gone}]\n"
        "transitions:\n"
        "  - {types: [call], to: a}\n"
        "  - {types: [call], source: sales, to: c}\n"
        "  - {types: [note], source: marketing, to: b}\n"
        "  - {types: [bye], to: gone}\n"
        "qualification: {engagement: 0}\n");
    assert_non_null(d);
    assert_int_equal(d->n_order, 3);
    assert_int_equal(d->n_stages, 4);
    assert_true(d->stages[3].terminal);

    const defn_transition_t *t;
    t = defn_transition(d, "call", HND_SRC_SALES);
    assert_non_null(t);
    assert_int_equal(t->stage, defn_stage_index(d, "c"));
    assert_int_equal(t->source, HND_SRC_SALES);
    t = defn_transition(d, "call", HND_SRC_MARKETING);
    assert_non_null(t);
    assert_int_equal(t->stage, defn_stage_index(d, "a"));
    assert_int_equal(t->source, 0);

    t = defn_transition(d, "note", HND_SRC_MARKETING);
    assert_non_null(t);
    assert_int_equal(t->stage, defn_stage_index(d, "b"));
    assert_null(defn_transition(d, "note", HND_SRC_SALES));

    t = defn_transition(d, "bye", HND_SRC_SALES);
    assert_non_null(t);
    assert_int_equal(t->stage, 3);
    assert_null(defn_transition(d, "unknown", HND_SRC_SALES));
    defn_destroy(&d);
}

static void test_durations(void **state)
{
    static const struct { const char *text; int64_t ms; } good[] = {
        { "500ms", 500 }, { "45s", 45000 }, { "90m", 90 * 60000 },
        { "24h", 24 * 3600000LL }, { "30d", 30 * DAY_MS },
        { "2w", 14 * DAY_MS }, { "1h30m", 90 * 60000 },
        { "1d12h", 36 * 3600000LL }, { "1500", 1500 }, { "0", 0 },
        { "0d", 0 }, { "\"30d\"", 30 * DAY_MS },
        { "36500d", 36500 * DAY_MS },
    };
    static const struct { const char *text, *needle; } bad[] = {
        { "3x", "bad duration" }, { "d", "bad duration" },
        { "1.5h", "bad duration" }, { "h1", "bad duration" },
        { "\"\"", "bad duration" }, { "30 d", "bad duration" },
        { "30D", "bad duration" }, { "5mm", "bad duration" },
        { "-3d", "negative duration" }, { "-100", "negative duration" },
        { "99999999999999999999", "too large" },
        { "200000000w", "too large" }, { "36501d", "too large" },
    };
    char yaml[256];

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(yaml, sizeof yaml,
                 "name: t\nstages:\n  - {name: a, max_dwell: %s}\n"
                 "qualification: {engagement: 0}\n", good[i].text);
        defn_t *d = s_load(yaml);
        if (!d)
            fail_msg("%s: %s", good[i].text, s_err);
        if (d->stages[0].max_dwell_ms != good[i].ms)
            fail_msg("%s: got %lld ms", good[i].text,
                     (long long)d->stages[0].max_dwell_ms);
        defn_destroy(&d);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(yaml, sizeof yaml,
                 "name: t\nstages:\n  - {name: a, max_dwell: %s}\n"
                 "qualification: {engagement: 0}\n", bad[i].text);
        defn_t *d = s_load(yaml);
        if (d)
            fail_msg("%s: accepted", bad[i].text);
        if (strncmp(s_err, "t.yaml:3:26: ", 13) != 0 ||
            !strstr(s_err, bad[i].needle))
            fail_msg("%s: got \"%s\"", bad[i].text, s_err);
    }
}

static void test_destroy_null(void **state)
{
    defn_t *d = NULL;
    defn_destroy(&d);
    assert_null(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_values),
        cmocka_unit_test(test_installed_equals_embedded),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_from_file),
        cmocka_unit_test(test_transition_source),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_destroy_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
