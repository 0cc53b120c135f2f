/* defn_schema.c: pass 2 of loading a definition, libcyaml.
 *
 * libcyaml loads the text against the schema below into the plain structs
 * of defn_int.h. Its messages name the problem but their positions are
 * those of nearby events, not of the offending one, so the loader runs
 * libcyaml with debug logging and counts the events it consumes: the event
 * it failed on is then looked up in the locator's table (defn_locate.c).
 */
#include "defn_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cyaml/cyaml.h>

/* ---------------------------------------------------------------------- */
/* The schema tables. Every field is optional (pass 3 reports a missing   */
/* key with the position of the mapping that lacks it), every number is   */
/* CYAML_FLAG_STRICT (no silent rounding or overflow). The shapes:        */
/*   S_STR   a single value kept as text (names, durations, booleans)     */
/*   S_NUM   a number, NULL when absent                                   */
/*   S_LIST  a list of entries of `value`                                 */
/*   S_MAP   a mapping with `fields`, NULL when absent                    */
/* and S_ENTRY defines the value of a list entry that is a mapping.       */

#define S_OPT (CYAML_FLAG_OPTIONAL)
#define S_OPT_PTR (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER)
#define S_STR(key, type, member) \
    CYAML_FIELD_STRING_PTR(key, S_OPT_PTR, type, member, 0, CYAML_UNLIMITED)
#define S_NUM(key, type, member) \
    CYAML_FIELD_FLOAT_PTR(key, S_OPT_PTR | CYAML_FLAG_STRICT, type, member)
#define S_LIST(key, type, member, value) \
    CYAML_FIELD_SEQUENCE(key, S_OPT_PTR, type, member, value, 0, \
                         CYAML_UNLIMITED)
#define S_MAP(key, type, member, fields) \
    CYAML_FIELD_MAPPING_PTR(key, S_OPT_PTR, type, member, fields)
#define S_ENTRY(name, type, fields)                                          \
    static const cyaml_schema_value_t name = {                               \
        CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, type, fields),               \
    }

static const cyaml_schema_value_t s_string_value = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

static const cyaml_schema_field_t s_stage_fields[] = {
    S_STR("name", defn_ystage_t, name),
    S_STR("max_dwell", defn_ystage_t, max_dwell),
    CYAML_FIELD_FLOAT("conversion_target", S_OPT | CYAML_FLAG_STRICT,
                      defn_ystage_t, conversion_target),
    S_STR("terminal", defn_ystage_t, terminal),
    CYAML_FIELD_END
};
S_ENTRY(s_stage_value, defn_ystage_t, s_stage_fields);

static const cyaml_schema_field_t s_exit_fields[] = {
    S_STR("name", defn_yexit_t, name),
    CYAML_FIELD_END
};
S_ENTRY(s_exit_value, defn_yexit_t, s_exit_fields);

/* A condition; a fit rule is one with points. */
#define S_COND_FIELDS                                                        \
    S_STR("attr", defn_ycond_t, attr),                                       \
    S_STR("count", defn_ycond_t, count),                                     \
    S_STR("equals", defn_ycond_t, equals),                                   \
    S_LIST("one_of", defn_ycond_t, one_of, &s_string_value),                 \
    S_NUM("min", defn_ycond_t, min),                                         \
    S_NUM("max", defn_ycond_t, max),                                         \
    S_STR("present", defn_ycond_t, present)

static const cyaml_schema_field_t s_cond_fields[] = {
    S_COND_FIELDS,
    CYAML_FIELD_END
};
S_ENTRY(s_cond_value, defn_ycond_t, s_cond_fields);

static const cyaml_schema_field_t s_fit_fields[] = {
    S_COND_FIELDS,
    S_NUM("points", defn_ycond_t, points),
    CYAML_FIELD_END
};
S_ENTRY(s_fit_value, defn_ycond_t, s_fit_fields);

static const cyaml_schema_field_t s_trans_fields[] = {
    S_LIST("types", defn_ytrans_t, types, &s_string_value),
    S_STR("to", defn_ytrans_t, to),
    S_STR("source", defn_ytrans_t, source),
    S_MAP("when", defn_ytrans_t, when, s_cond_fields),
    CYAML_FIELD_END
};
S_ENTRY(s_trans_value, defn_ytrans_t, s_trans_fields);

static const cyaml_schema_field_t s_regr_fields[] = {
    S_LIST("types", defn_yregr_t, types, &s_string_value),
    S_LIST("from", defn_yregr_t, from, &s_string_value),
    S_STR("to", defn_yregr_t, to),
    CYAML_FIELD_END
};
S_ENTRY(s_regr_value, defn_yregr_t, s_regr_fields);

static const cyaml_schema_field_t s_points_fields[] = {
    S_STR("type", defn_ypoints_t, type),
    S_NUM("points", defn_ypoints_t, points),
    CYAML_FIELD_END
};
S_ENTRY(s_points_value, defn_ypoints_t, s_points_fields);

static const cyaml_schema_field_t s_scoring_fields[] = {
    S_STR("half_life", defn_yscoring_t, half_life),
    S_LIST("engagement", defn_yscoring_t, engagement, &s_points_value),
    S_LIST("fit", defn_yscoring_t, fit, &s_fit_value),
    CYAML_FIELD_END
};

static const cyaml_schema_field_t s_clause_fields[] = {
    S_NUM("fit", defn_yclause_t, fit),
    S_NUM("engagement", defn_yclause_t, engagement),
    S_NUM("total", defn_yclause_t, total),
    CYAML_FIELD_END
};
S_ENTRY(s_clause_value, defn_yclause_t, s_clause_fields);

static const cyaml_schema_field_t s_qual_fields[] = {
    S_NUM("fit", defn_yqual_t, fit),
    S_NUM("engagement", defn_yqual_t, engagement),
    S_NUM("total", defn_yqual_t, total),
    S_LIST("any_of", defn_yqual_t, any_of, &s_clause_value),
    CYAML_FIELD_END
};

static const cyaml_schema_field_t s_handoff_fields[] = {
    S_STR("sla", defn_yhandoff_t, sla),
    S_STR("accepted", defn_yhandoff_t, accepted),
    S_STR("rejected", defn_yhandoff_t, rejected),
    S_STR("recycled", defn_yhandoff_t, recycled),
    S_STR("requalify", defn_yhandoff_t, requalify),
    S_STR("reason_attr", defn_yhandoff_t, reason_attr),
    S_STR("recycle_to", defn_yhandoff_t, recycle_to),
    S_STR("reset_engagement", defn_yhandoff_t, reset_engagement),
    CYAML_FIELD_END
};

static const cyaml_schema_field_t s_persona_fields[] = {
    S_STR("name", defn_ypersona_t, name),
    S_LIST("when", defn_ypersona_t, when, &s_cond_value),
    CYAML_FIELD_END
};
S_ENTRY(s_persona_value, defn_ypersona_t, s_persona_fields);

static const cyaml_schema_field_t s_friction_fields[] = {
    S_STR("conversion_window", defn_yfriction_t, conversion_window),
    S_NUM("min_sample", defn_yfriction_t, min_sample),
    S_STR("alert_recovery", defn_yfriction_t, alert_recovery),
    CYAML_FIELD_END
};

static const cyaml_schema_field_t s_quality_fields[] = {
    S_STR("lost_after", defn_yquality_t, lost_after),
    CYAML_FIELD_END
};

/* The top level; a new section gets its line here and in s_mappings. */
static const cyaml_schema_field_t s_top_fields[] = {
    S_STR("name", defn_ytop_t, name),
    S_LIST("stages", defn_ytop_t, stages, &s_stage_value),
    S_LIST("exits", defn_ytop_t, exits, &s_exit_value),
    S_LIST("transitions", defn_ytop_t, transitions, &s_trans_value),
    S_LIST("regressions", defn_ytop_t, regressions, &s_regr_value),
    S_MAP("scoring", defn_ytop_t, scoring, s_scoring_fields),
    S_MAP("qualification", defn_ytop_t, qualification, s_qual_fields),
    S_MAP("handoff", defn_ytop_t, handoff, s_handoff_fields),
    S_LIST("personas", defn_ytop_t, personas, &s_persona_value),
    S_MAP("friction", defn_ytop_t, friction, s_friction_fields),
    S_MAP("quality", defn_ytop_t, quality, s_quality_fields),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_top_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, defn_ytop_t, s_top_fields),
};

/* Which mapping schema applies at a path (indices written "[]"), so that an
 * unknown key can be answered with the keys that are known there. */
static const struct {
    const char *path;
    const cyaml_schema_field_t *fields;
} s_mappings[] = {
    { "", s_top_fields },
    { "stages[]", s_stage_fields },
    { "exits[]", s_exit_fields },
    { "transitions[]", s_trans_fields },
    { "transitions[].when", s_cond_fields },
    { "regressions[]", s_regr_fields },
    { "scoring", s_scoring_fields },
    { "scoring.engagement[]", s_points_fields },
    { "scoring.fit[]", s_fit_fields },
    { "qualification", s_qual_fields },
    { "qualification.any_of[]", s_clause_fields },
    { "handoff", s_handoff_fields },
    { "personas[]", s_persona_fields },
    { "personas[].when[]", s_cond_fields },
    { "friction", s_friction_fields },
    { "quality", s_quality_fields },
};

/* ---------------------------------------------------------------------- */
/* Running libcyaml.                                                      */

/* What libcyaml logged during one load. */
typedef struct {
    size_t events;              /* events libcyaml has consumed */
    char msg[DEFN_MSG_MAX];     /* its first error message */
    defn_pos_t backtrace;       /* its first backtrace position */
} s_cylog_t;

/* libcyaml's log function: counts the events it consumes (its debug lines
 * "Load: Event: ...") and keeps its first error message and the first
 * position of its backtrace in the s_cylog_t at ctx. */
static void s_cyaml_log(cyaml_log_t level, void *ctx, const char *fmt,
                        va_list args)
{
    s_cylog_t *cl = ctx;
    if (level == CYAML_LOG_DEBUG) {
        if (strncmp(fmt, "Load: Event: ", 13) == 0)
            cl->events++;
        return;
    }
    if (level < CYAML_LOG_ERROR)
        return;
    char line[DEFN_MSG_MAX];
    vsnprintf(line, sizeof line, fmt, args);
    line[strcspn(line, "\n")] = '\0';
    const char *at = strstr(line, "(line: ");
    if (at) {
        unsigned l, c;
        if (cl->backtrace.line == 0 &&
            sscanf(at, "(line: %u, column: %u)", &l, &c) == 2) {
            cl->backtrace.line = (int)l;
            cl->backtrace.col = (int)c;
        }
        return;
    }
    if (cl->msg[0] || strstr(line, "Backtrace"))
        return;
    const char *text = strncmp(line, "Load: ", 6) == 0 ? line + 6 : line;
    snprintf(cl->msg, sizeof cl->msg, "%s", text);
}

/* The keys known in the mapping holding node `n`, comma separated. */
static void s_known_keys(const defn_loader_t *ld, const defn_node_t *n,
                         char *out, size_t outlen)
{
    char pattern[256];
    size_t o = 0;
    out[0] = '\0';
    if (n->parent == DEFN_NONE)
        return;
    /* The parent's path with every index written "[]". */
    for (const char *p = ld->loc.nodes[n->parent].path;
         *p && o + 3 < sizeof pattern; p++) {
        pattern[o++] = *p;
        if (*p == '[') {
            while (p[1] && p[1] != ']')
                p++;
        }
    }
    pattern[o] = '\0';
    for (size_t i = 0; i < sizeof s_mappings / sizeof s_mappings[0]; i++) {
        if (strcmp(s_mappings[i].path, pattern) != 0)
            continue;
        size_t w = 0;
        for (const cyaml_schema_field_t *f = s_mappings[i].fields; f->key;
             f++) {
            int k = snprintf(out + w, outlen - w, "%s%s", w ? ", " : "",
                             f->key);
            if (k < 0 || (size_t)k >= outlen - w)
                break;
            w += (size_t)k;
        }
        return;
    }
}

/* libcyaml's name of a value type or event, as the user knows it. */
static const char *s_cyaml_type_name(const char *t)
{
    static const struct { const char *cy, *ours; } names[] = {
        { "STRING", "a single value" },
        { "FLOAT", "a number" },
        { "INT", "a whole number" },
        { "UINT", "a whole number" },
        { "BOOL", "true or false" },
        { "MAPPING", "a mapping (key: value lines)" },
        { "SEQUENCE", "a list" },
        { "SCALAR", "a single value" },
        { "SEQUENCE_START", "a list" },
        { "MAPPING_START", "a mapping" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].cy, t) == 0)
            return names[i].ours;
    return t;
}

/* Report a libcyaml failure at the event it failed on: the cl->events-th
 * event of the locator's table (libcyaml's own backtrace position when the
 * count is out of the table), in the user's words: an unknown key with the
 * keys known there, a duplicate key, a wrong type, a bad number, else
 * libcyaml's message. */
static void s_cyaml_error(defn_loader_t *ld, cyaml_err_t rc,
                          const s_cylog_t *cl)
{
    const defn_event_t *ev = NULL;
    const defn_node_t *n = NULL;
    defn_pos_t pos = cl->backtrace;

    if (cl->events > 0 && cl->events <= ld->loc.n_events) {
        ev = &ld->loc.events[cl->events - 1];
        pos = ev->pos;
        if (ev->node != DEFN_NONE)
            n = &ld->loc.nodes[ev->node];
    }
    const char *what = n && n->path[0] ? n->path : "definition";
    const char *m = cl->msg;
    char a[64], b[64];

    if (rc == CYAML_ERR_INVALID_KEY && n && ev->is_key) {
        char known[256];
        s_known_keys(ld, n, known, sizeof known);
        if (known[0])
            defn_fail(ld, pos, "unknown key '%s' (known here: %s)", n->key,
                      known);
        else
            defn_fail(ld, pos, "unknown key '%s'", n->key);
    } else if (strncmp(m, "Mapping field already seen: ", 28) == 0) {
        defn_fail(ld, pos, "duplicate key '%s'", m + 28);
    } else if (sscanf(m, "Expecting %63[A-Z_], got event: %63[A-Z_]", a, b) == 2) {
        defn_fail(ld, pos, "%s: expected %s, not %s", what,
                  s_cyaml_type_name(a), s_cyaml_type_name(b));
    } else if (strncmp(m, "Invalid FLOAT value: ", 21) == 0) {
        defn_fail(ld, pos, "%s: '%s' is not a number", what, m + 21);
    } else if (strncmp(m, "FLOAT ", 6) == 0) {
        defn_fail(ld, pos, "%s: number out of range", what);
    } else if (m[0]) {
        defn_fail(ld, pos, "%s: %s", what, m);
    } else {
        defn_fail(ld, pos, "%s: %s", what, cyaml_strerror(rc));
    }
}

int defn_schema_load(defn_loader_t *ld, defn_ytop_t **out)
{
    s_cylog_t cl = { 0 };
    cyaml_config_t cfg = {
        .log_fn = s_cyaml_log,
        .log_ctx = &cl,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_DEBUG,   /* the event count needs it */
        .flags = CYAML_CFG_NO_ALIAS,
    };
    *out = NULL;
    cyaml_err_t rc = cyaml_load_data((const uint8_t *)ld->text, ld->len, &cfg,
                                     &s_top_value, (cyaml_data_t **)out, NULL);
    if (rc != CYAML_OK) {
        if (rc == CYAML_ERR_OOM)
            abort();
        *out = NULL;
        s_cyaml_error(ld, rc, &cl);
        return -1;
    }
    return 0;
}

void defn_schema_free(defn_ytop_t *y)
{
    const cyaml_config_t cfg = {
        .log_fn = NULL,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
        .flags = CYAML_CFG_NO_ALIAS,
    };
    if (y)
        cyaml_free(&cfg, &s_top_value, y, 0);
}
