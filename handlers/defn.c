/* defn.c: loading and checking a funnel definition.
 *
 * Loading runs in three passes over the same bytes:
 *
 * 1. The locator parses the text with libyaml's event API and records,
 *    for every event, where it starts and which node it belongs to, and,
 *    for every node, its path ("stages[2].name") and position. Syntax errors
 *    are reported here, with libyaml's own position of the problem.
 * 2. libcyaml loads the text against the schema below into plain structs.
 *    Its messages name the problem but their positions are those of nearby
 *    events, not of the offending one, so the loader runs libcyaml with
 *    debug logging and counts the events it consumes: the event it failed on
 *    is then looked up in the locator's table. Every schema field is
 *    optional, so that missing keys are reported by pass 3 with the position
 *    of the mapping that lacks them.
 * 3. The semantic check turns the structs into a defn_t: durations, names,
 *    references between stages and transitions, ranges, duplicates. Each
 *    complaint asks the locator for the position of the node concerned.
 *
 * Every error becomes one line "file:line:column: what is wrong".
 */
#include "defn.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cyaml/cyaml.h>
#include <yaml.h>

#include "hnd.h"

#define S_FILE_MAX (4u << 20)   /* a definition larger than 4 MiB is a mistake */
#define S_DEPTH_MAX 32          /* nesting deeper than this is a mistake too */
#define S_MSG_MAX 512
/* Durations are capped so that a time plus a duration never overflows. */
#define S_DURATION_MAX (36500LL * 24 * 3600 * 1000)     /* 100 years */
#define S_NONE SIZE_MAX

/* ---------------------------------------------------------------------- */
/* Allocation: out of memory aborts (house rule).                          */

static void *s_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

static void *s_xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (!p)
        abort();
    return p;
}

static char *s_xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

static char *s_xasprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static char *s_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;
    va_start(ap, fmt);
    int rc = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (rc < 0)
        abort();
    return p;
}

/* ---------------------------------------------------------------------- */
/* The YAML schema, as libcyaml sees it.                                   */

typedef struct {
    char *name;
    char *max_dwell;            /* duration */
    double conversion_target;
    char *terminal;             /* boolean, checked here: libcyaml's is lax */
} s_ystage_t;

typedef struct {
    char *name;
} s_yexit_t;

typedef struct {
    char *type;
    double *points;             /* pointer: a missing value is an error */
} s_ypoints_t;

/* A condition (transitions[].when, personas[].when[]) or a fit rule
 * (scoring.fit[], which adds points). */
typedef struct {
    char *attr;
    char *count;
    char *equals;
    char **one_of;
    unsigned one_of_count;
    double *min;
    double *max;
    char *present;              /* boolean, checked here */
    double *points;             /* fit rules only */
} s_ycond_t;

typedef struct {
    char **types;
    unsigned types_count;
    char *to;
    char *source;
    s_ycond_t *when;
} s_ytrans_t;

typedef struct {
    char **types;
    unsigned types_count;
    char **from;
    unsigned from_count;
    char *to;
} s_yregr_t;

typedef struct {
    char *half_life;
    s_ypoints_t *engagement;
    unsigned engagement_count;
    s_ycond_t *fit;
    unsigned fit_count;
} s_yscoring_t;

typedef struct {
    double *fit;
    double *engagement;
    double *total;
} s_yclause_t;

typedef struct {
    double *fit;
    double *engagement;
    double *total;
    s_yclause_t *any_of;
    unsigned any_of_count;
} s_yqual_t;

typedef struct {
    char *sla;
    char *accepted;
    char *rejected;
    char *reason_attr;
    char *recycle_to;
    char *reset_engagement;     /* boolean, checked here */
} s_yhandoff_t;

typedef struct {
    char *name;
    s_ycond_t *when;
    unsigned when_count;
} s_ypersona_t;

typedef struct {
    char *conversion_window;    /* duration, whole days */
    double *min_sample;
    char *alert_recovery;       /* boolean, checked here */
} s_yfriction_t;

typedef struct {
    char *name;
    s_ystage_t *stages;
    unsigned stages_count;
    s_yexit_t *exits;
    unsigned exits_count;
    s_ytrans_t *transitions;
    unsigned transitions_count;
    s_yregr_t *regressions;
    unsigned regressions_count;
    s_yscoring_t *scoring;
    s_yqual_t *qualification;
    s_yhandoff_t *handoff;
    s_ypersona_t *personas;
    unsigned personas_count;
    s_yfriction_t *friction;
} s_ytop_t;

#define S_OPT (CYAML_FLAG_OPTIONAL)
#define S_OPT_PTR (CYAML_FLAG_OPTIONAL | CYAML_FLAG_POINTER)
#define S_STR(key, type, member) \
    CYAML_FIELD_STRING_PTR(key, S_OPT_PTR, type, member, 0, CYAML_UNLIMITED)

static const cyaml_schema_field_t s_stage_fields[] = {
    S_STR("name", s_ystage_t, name),
    S_STR("max_dwell", s_ystage_t, max_dwell),
    CYAML_FIELD_FLOAT("conversion_target", S_OPT | CYAML_FLAG_STRICT,
                      s_ystage_t, conversion_target),
    S_STR("terminal", s_ystage_t, terminal),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_stage_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, s_ystage_t, s_stage_fields),
};

static const cyaml_schema_field_t s_exit_fields[] = {
    S_STR("name", s_yexit_t, name),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_exit_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, s_yexit_t, s_exit_fields),
};

static const cyaml_schema_value_t s_string_value = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 0, CYAML_UNLIMITED),
};

#define S_COND_FIELDS                                                        \
    S_STR("attr", s_ycond_t, attr),                                          \
    S_STR("count", s_ycond_t, count),                                        \
    S_STR("equals", s_ycond_t, equals),                                      \
    CYAML_FIELD_SEQUENCE("one_of", S_OPT_PTR, s_ycond_t, one_of,             \
                         &s_string_value, 0, CYAML_UNLIMITED),               \
    CYAML_FIELD_FLOAT_PTR("min", S_OPT_PTR | CYAML_FLAG_STRICT, s_ycond_t,   \
                          min),                                              \
    CYAML_FIELD_FLOAT_PTR("max", S_OPT_PTR | CYAML_FLAG_STRICT, s_ycond_t,   \
                          max),                                              \
    S_STR("present", s_ycond_t, present)

static const cyaml_schema_field_t s_cond_fields[] = {
    S_COND_FIELDS,
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_cond_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, s_ycond_t, s_cond_fields),
};

static const cyaml_schema_field_t s_fit_fields[] = {
    S_COND_FIELDS,
    CYAML_FIELD_FLOAT_PTR("points", S_OPT_PTR | CYAML_FLAG_STRICT,
                          s_ycond_t, points),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_fit_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, s_ycond_t, s_fit_fields),
};

static const cyaml_schema_field_t s_trans_fields[] = {
    CYAML_FIELD_SEQUENCE("types", S_OPT_PTR, s_ytrans_t, types,
                         &s_string_value, 0, CYAML_UNLIMITED),
    S_STR("to", s_ytrans_t, to),
    S_STR("source", s_ytrans_t, source),
    CYAML_FIELD_MAPPING_PTR("when", S_OPT_PTR, s_ytrans_t, when,
                            s_cond_fields),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_trans_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, s_ytrans_t, s_trans_fields),
};

static const cyaml_schema_field_t s_regr_fields[] = {
    CYAML_FIELD_SEQUENCE("types", S_OPT_PTR, s_yregr_t, types,
                         &s_string_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("from", S_OPT_PTR, s_yregr_t, from,
                         &s_string_value, 0, CYAML_UNLIMITED),
    S_STR("to", s_yregr_t, to),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_regr_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, s_yregr_t, s_regr_fields),
};

static const cyaml_schema_field_t s_points_fields[] = {
    S_STR("type", s_ypoints_t, type),
    CYAML_FIELD_FLOAT_PTR("points", S_OPT_PTR | CYAML_FLAG_STRICT,
                          s_ypoints_t, points),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_points_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, s_ypoints_t, s_points_fields),
};

static const cyaml_schema_field_t s_scoring_fields[] = {
    S_STR("half_life", s_yscoring_t, half_life),
    CYAML_FIELD_SEQUENCE("engagement", S_OPT_PTR, s_yscoring_t, engagement,
                         &s_points_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("fit", S_OPT_PTR, s_yscoring_t, fit,
                         &s_fit_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END
};

#define S_THRESHOLD(key, type, member) \
    CYAML_FIELD_FLOAT_PTR(key, S_OPT_PTR | CYAML_FLAG_STRICT, type, member)

static const cyaml_schema_field_t s_clause_fields[] = {
    S_THRESHOLD("fit", s_yclause_t, fit),
    S_THRESHOLD("engagement", s_yclause_t, engagement),
    S_THRESHOLD("total", s_yclause_t, total),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_clause_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, s_yclause_t, s_clause_fields),
};

static const cyaml_schema_field_t s_qual_fields[] = {
    S_THRESHOLD("fit", s_yqual_t, fit),
    S_THRESHOLD("engagement", s_yqual_t, engagement),
    S_THRESHOLD("total", s_yqual_t, total),
    CYAML_FIELD_SEQUENCE("any_of", S_OPT_PTR, s_yqual_t, any_of,
                         &s_clause_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END
};

static const cyaml_schema_field_t s_handoff_fields[] = {
    S_STR("sla", s_yhandoff_t, sla),
    S_STR("accepted", s_yhandoff_t, accepted),
    S_STR("rejected", s_yhandoff_t, rejected),
    S_STR("reason_attr", s_yhandoff_t, reason_attr),
    S_STR("recycle_to", s_yhandoff_t, recycle_to),
    S_STR("reset_engagement", s_yhandoff_t, reset_engagement),
    CYAML_FIELD_END
};

static const cyaml_schema_field_t s_persona_fields[] = {
    S_STR("name", s_ypersona_t, name),
    CYAML_FIELD_SEQUENCE("when", S_OPT_PTR, s_ypersona_t, when,
                         &s_cond_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_persona_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, s_ypersona_t, s_persona_fields),
};

static const cyaml_schema_field_t s_friction_fields[] = {
    S_STR("conversion_window", s_yfriction_t, conversion_window),
    CYAML_FIELD_FLOAT_PTR("min_sample", S_OPT_PTR | CYAML_FLAG_STRICT,
                          s_yfriction_t, min_sample),
    S_STR("alert_recovery", s_yfriction_t, alert_recovery),
    CYAML_FIELD_END
};

static const cyaml_schema_field_t s_top_fields[] = {
    S_STR("name", s_ytop_t, name),
    CYAML_FIELD_SEQUENCE("stages", S_OPT_PTR, s_ytop_t, stages,
                         &s_stage_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("exits", S_OPT_PTR, s_ytop_t, exits,
                         &s_exit_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("transitions", S_OPT_PTR, s_ytop_t, transitions,
                         &s_trans_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("regressions", S_OPT_PTR, s_ytop_t, regressions,
                         &s_regr_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_MAPPING_PTR("scoring", S_OPT_PTR, s_ytop_t, scoring,
                            s_scoring_fields),
    CYAML_FIELD_MAPPING_PTR("qualification", S_OPT_PTR, s_ytop_t,
                            qualification, s_qual_fields),
    CYAML_FIELD_MAPPING_PTR("handoff", S_OPT_PTR, s_ytop_t, handoff,
                            s_handoff_fields),
    CYAML_FIELD_SEQUENCE("personas", S_OPT_PTR, s_ytop_t, personas,
                         &s_persona_value, 0, CYAML_UNLIMITED),
    CYAML_FIELD_MAPPING_PTR("friction", S_OPT_PTR, s_ytop_t, friction,
                            s_friction_fields),
    CYAML_FIELD_END
};
static const cyaml_schema_value_t s_top_value = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, s_ytop_t, s_top_fields),
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
};

/* ---------------------------------------------------------------------- */
/* The locator (pass 1).                                                   */

typedef struct {
    int line;                   /* 1-based; 0: unknown */
    int col;                    /* 1-based */
} s_pos_t;

typedef struct {
    char *path;                 /* "" for the root, "stages[1].name" */
    char *key;                  /* the key naming it in its mapping, or NULL */
    size_t parent;              /* S_NONE for the root */
    s_pos_t pos;                /* where its value starts */
} s_node_t;

typedef struct {
    s_pos_t pos;
    size_t node;                /* S_NONE: stream and document events */
    bool is_key;                /* the event is the key of `node` */
} s_event_t;

typedef struct {
    bool is_map;
    size_t node;
    size_t next_index;          /* sequences: index of the next entry */
    bool want_key;              /* mappings: the next node is a key */
    size_t member;              /* mappings: node named by the last key */
} s_frame_t;

typedef struct {
    s_node_t *nodes;
    size_t n_nodes, cap_nodes;
    s_event_t *events;
    size_t n_events, cap_events;
} s_loc_t;

/* The state of one load. */
typedef struct {
    const char *name;           /* the file, for messages */
    const char *text;
    size_t len;
    char *err;
    size_t errlen;
    s_loc_t loc;
} s_load_t;

static void s_loc_free(s_loc_t *loc)
{
    for (size_t i = 0; i < loc->n_nodes; i++) {
        free(loc->nodes[i].path);
        free(loc->nodes[i].key);
    }
    free(loc->nodes);
    free(loc->events);
    memset(loc, 0, sizeof *loc);
}

static s_pos_t s_mark(yaml_mark_t m)
{
    s_pos_t p = { (int)m.line + 1, (int)m.column + 1 };
    return p;
}

static size_t s_loc_add_node(s_loc_t *loc, size_t parent, char *path,
                             const char *key, s_pos_t pos)
{
    if (loc->n_nodes == loc->cap_nodes) {
        loc->cap_nodes = loc->cap_nodes ? 2 * loc->cap_nodes : 64;
        loc->nodes = s_xrealloc(loc->nodes, loc->cap_nodes * sizeof *loc->nodes);
    }
    s_node_t *n = &loc->nodes[loc->n_nodes];
    n->path = path;
    n->key = key ? s_xstrdup(key) : NULL;
    n->parent = parent;
    n->pos = pos;
    return loc->n_nodes++;
}

static void s_loc_add_event(s_loc_t *loc, s_pos_t pos, size_t node, bool is_key)
{
    if (loc->n_events == loc->cap_events) {
        loc->cap_events = loc->cap_events ? 2 * loc->cap_events : 256;
        loc->events = s_xrealloc(loc->events,
                                 loc->cap_events * sizeof *loc->events);
    }
    s_event_t *e = &loc->events[loc->n_events++];
    e->pos = pos;
    e->node = node;
    e->is_key = is_key;
}

static void s_fail(s_load_t *ld, s_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write the one-line error. The first error wins. */
static void s_fail(s_load_t *ld, s_pos_t pos, const char *fmt, ...)
{
    if (!ld->err || ld->errlen == 0 || ld->err[0] != '\0')
        return;
    char msg[S_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (pos.line > 0)
        snprintf(ld->err, ld->errlen, "%s:%d:%d: %s", ld->name, pos.line,
                 pos.col, msg);
    else
        snprintf(ld->err, ld->errlen, "%s: %s", ld->name, msg);
    for (char *p = ld->err; *p; p++)    /* one line, whatever the text held */
        if ((unsigned char)*p < 0x20)
            *p = '?';
}

/* The position of byte `off` of the text (libyaml's reader errors give only
 * an offset). */
static s_pos_t s_offset_pos(const s_load_t *ld, size_t off)
{
    s_pos_t p = { 1, 1 };
    for (size_t i = 0; i < off && i < ld->len; i++) {
        if (ld->text[i] == '\n') {
            p.line++;
            p.col = 1;
        } else {
            p.col++;
        }
    }
    return p;
}

static void s_syntax_error(s_load_t *ld, const yaml_parser_t *p)
{
    s_pos_t pos;
    if (p->error == YAML_READER_ERROR) {
        pos = s_offset_pos(ld, p->problem_offset);
        s_fail(ld, pos, "unreadable text: %s",
               p->problem ? p->problem : "bad encoding");
        return;
    }
    if (p->error == YAML_MEMORY_ERROR)
        abort();
    pos = s_mark(p->problem_mark);
    if (p->context && (p->context_mark.line != p->problem_mark.line ||
                       p->context_mark.column != p->problem_mark.column))
        s_fail(ld, pos, "YAML syntax error: %s (%s started at line %zu, "
               "column %zu)", p->problem ? p->problem : "unknown problem",
               p->context + (strncmp(p->context, "while ", 6) ? 0 : 6),
               (size_t)p->context_mark.line + 1,
               (size_t)p->context_mark.column + 1);
    else
        s_fail(ld, pos, "YAML syntax error: %s",
               p->problem ? p->problem : "unknown problem");
}

/* The path of a new node under the top frame. Caller owns the result. */
static char *s_child_path(const s_loc_t *loc, const s_frame_t *top,
                          const char *key)
{
    const char *base = loc->nodes[top->node].path;
    if (!top->is_map)
        return s_xasprintf("%s[%zu]", base, top->next_index);
    return s_xasprintf("%s%s%s", base, base[0] ? "." : "", key);
}

/* Pass 1: parse the text, fill ld->loc. Returns 0, or -1 with the error
 * written. */
static int s_locate(s_load_t *ld)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    s_frame_t stack[S_DEPTH_MAX];
    size_t depth = 0;
    int docs = 0;
    int rc = -1;
    bool done = false;

    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)ld->text,
                                 ld->len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            s_syntax_error(ld, &parser);
            goto cleanup;
        }
        s_pos_t pos = s_mark(ev.start_mark);
        s_frame_t *top = depth ? &stack[depth - 1] : NULL;
        bool bad = false;

        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            /* fall through */
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
        case YAML_NO_EVENT:
            s_loc_add_event(&ld->loc, pos, S_NONE, false);
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                s_fail(ld, pos, "a definition is one YAML document; "
                       "remove the second one");
                bad = true;
            }
            s_loc_add_event(&ld->loc, pos, S_NONE, false);
            break;
        case YAML_ALIAS_EVENT:
            s_fail(ld, pos, "YAML aliases (*%s) are not supported in a "
                   "funnel definition; write the value out",
                   (const char *)ev.data.alias.anchor);
            bad = true;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            size_t node;
            if (top && top->is_map && top->want_key) {
                if (ev.type != YAML_SCALAR_EVENT) {
                    s_fail(ld, pos, "a key must be a plain word, not a %s",
                           ev.type == YAML_MAPPING_START_EVENT ? "mapping"
                                                               : "list");
                    bad = true;
                    break;
                }
                const char *key = (const char *)ev.data.scalar.value;
                node = s_loc_add_node(&ld->loc, top->node,
                                      s_child_path(&ld->loc, top, key),
                                      key, pos);
                s_loc_add_event(&ld->loc, pos, node, true);
                top->member = node;
                top->want_key = false;
                break;
            }
            if (top && top->is_map) {
                node = top->member;
                ld->loc.nodes[node].pos = pos;
                top->want_key = true;
            } else if (top) {
                node = s_loc_add_node(&ld->loc, top->node,
                                      s_child_path(&ld->loc, top, NULL),
                                      NULL, pos);
                top->next_index++;
            } else {
                node = s_loc_add_node(&ld->loc, S_NONE, s_xstrdup(""),
                                      NULL, pos);
            }
            s_loc_add_event(&ld->loc, pos, node, false);
            if (ev.type != YAML_SCALAR_EVENT) {
                if (depth == S_DEPTH_MAX) {
                    s_fail(ld, pos, "nested more than %d levels deep",
                           S_DEPTH_MAX);
                    bad = true;
                    break;
                }
                s_frame_t f = {
                    .is_map = ev.type == YAML_MAPPING_START_EVENT,
                    .node = node,
                    .want_key = true,
                    .member = S_NONE,
                };
                stack[depth++] = f;
            }
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            assert(top);
            s_loc_add_event(&ld->loc, pos, top->node, false);
            depth--;
            break;
        }
        yaml_event_delete(&ev);
        if (bad)
            goto cleanup;
    }
    if (docs == 0) {
        s_pos_t start = { 1, 1 };
        s_fail(ld, start, "empty definition: expected name:, stages:, "
               "transitions:, ...");
        goto cleanup;
    }
    rc = 0;
cleanup:
    yaml_parser_delete(&parser);
    return rc;
}

/* The node at the path built from fmt, or, when there is none (a missing
 * key), the nearest ancestor that exists. */
static const s_node_t *s_node(const s_load_t *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const s_node_t *s_node(const s_load_t *ld, const char *fmt, ...)
{
    char path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    for (;;) {
        for (size_t i = 0; i < ld->loc.n_nodes; i++)
            if (strcmp(ld->loc.nodes[i].path, path) == 0)
                return &ld->loc.nodes[i];
        if (path[0] == '\0')
            return NULL;
        char *cut = strrchr(path, '.');
        char *bracket = strrchr(path, '[');
        if (bracket && (!cut || bracket > cut))
            cut = bracket;
        if (cut)
            *cut = '\0';
        else
            path[0] = '\0';
    }
}

/* Whether the text has a node at exactly this path. */
static bool s_present(const s_load_t *ld, const char *path)
{
    const s_node_t *n = s_node(ld, "%s", path);
    return n && strcmp(n->path, path) == 0;
}

static s_pos_t s_pos_of(const s_node_t *n)
{
    s_pos_t none = { 0, 0 };
    return n ? n->pos : none;
}

/* ---------------------------------------------------------------------- */
/* libcyaml (pass 2).                                                      */

typedef struct {
    size_t events;              /* events libcyaml has consumed */
    char msg[S_MSG_MAX];        /* its first error message */
    s_pos_t backtrace;          /* its first backtrace position */
} s_cylog_t;

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
    char line[S_MSG_MAX];
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
static void s_known_keys(const s_load_t *ld, const s_node_t *n, char *out,
                         size_t outlen)
{
    char pattern[256];
    size_t o = 0;
    out[0] = '\0';
    if (n->parent == S_NONE)
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

/* Report a libcyaml failure at the event it failed on. */
static void s_cyaml_error(s_load_t *ld, cyaml_err_t rc, const s_cylog_t *cl)
{
    const s_event_t *ev = NULL;
    const s_node_t *n = NULL;
    s_pos_t pos = cl->backtrace;

    if (cl->events > 0 && cl->events <= ld->loc.n_events) {
        ev = &ld->loc.events[cl->events - 1];
        pos = ev->pos;
        if (ev->node != S_NONE)
            n = &ld->loc.nodes[ev->node];
    }
    const char *what = n && n->path[0] ? n->path : "definition";
    const char *m = cl->msg;
    char a[64], b[64];

    if (rc == CYAML_ERR_INVALID_KEY && n && ev->is_key) {
        char known[256];
        s_known_keys(ld, n, known, sizeof known);
        if (known[0])
            s_fail(ld, pos, "unknown key '%s' (known here: %s)", n->key, known);
        else
            s_fail(ld, pos, "unknown key '%s'", n->key);
    } else if (strncmp(m, "Mapping field already seen: ", 28) == 0) {
        s_fail(ld, pos, "duplicate key '%s'", m + 28);
    } else if (sscanf(m, "Expecting %63[A-Z_], got event: %63[A-Z_]", a, b) == 2) {
        s_fail(ld, pos, "%s: expected %s, not %s", what, s_cyaml_type_name(a),
               s_cyaml_type_name(b));
    } else if (strncmp(m, "Invalid FLOAT value: ", 21) == 0) {
        s_fail(ld, pos, "%s: '%s' is not a number", what, m + 21);
    } else if (strncmp(m, "FLOAT ", 6) == 0) {
        s_fail(ld, pos, "%s: number out of range", what);
    } else if (m[0]) {
        s_fail(ld, pos, "%s: %s", what, m);
    } else {
        s_fail(ld, pos, "%s: %s", what, cyaml_strerror(rc));
    }
}

/* ---------------------------------------------------------------------- */
/* Values (pass 3).                                                        */

enum { S_DUR_OK = 0, S_DUR_BAD = -1, S_DUR_NEG = -2, S_DUR_RANGE = -3 };

/* Parse a duration: whole milliseconds ("1500"), or one or more
 * <number><unit> parts with units ms, s, m, h, d, w ("30d", "1h30m"). */
static int s_parse_duration(const char *s, int64_t *out)
{
    static const struct { const char *unit; int64_t ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
        { "d", 86400000 }, { "w", 604800000 },
    };
    const char *p = s;
    bool neg = *p == '-';
    bool bare;
    int64_t total = 0;

    p += neg;
    if (!isdigit((unsigned char)*p))
        return S_DUR_BAD;
    bare = p[strspn(p, "0123456789")] == '\0';
    while (*p) {
        int64_t v = 0, mult = 0;
        if (!isdigit((unsigned char)*p))
            return S_DUR_BAD;
        for (; isdigit((unsigned char)*p); p++) {
            if (v > (INT64_MAX - (*p - '0')) / 10)
                return S_DUR_RANGE;
            v = v * 10 + (*p - '0');
        }
        if (bare) {
            mult = 1;
        } else {
            for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
                size_t ul = strlen(units[i].unit);
                if (strncmp(p, units[i].unit, ul) == 0 &&
                    !isalpha((unsigned char)p[ul])) {
                    mult = units[i].ms;
                    p += ul;
                    break;
                }
            }
            if (mult == 0)
                return S_DUR_BAD;
        }
        if (v > INT64_MAX / mult || total > INT64_MAX - v * mult)
            return S_DUR_RANGE;
        total += v * mult;
    }
    if (neg)
        return S_DUR_NEG;
    if (total > S_DURATION_MAX)
        return S_DUR_RANGE;
    *out = total;
    return S_DUR_OK;
}

/* Check and convert the duration at `path` (text may be NULL: absent, 0). */
static int s_duration(s_load_t *ld, const char *text, const char *path,
                      int64_t *out)
{
    *out = 0;
    if (!text)
        return 0;
    s_pos_t pos = s_pos_of(s_node(ld, "%s", path));
    switch (s_parse_duration(text, out)) {
    case S_DUR_OK:
        return 0;
    case S_DUR_NEG:
        s_fail(ld, pos, "%s: negative duration '%s'", path, text);
        return -1;
    case S_DUR_RANGE:
        s_fail(ld, pos, "%s: duration '%s' is too large (at most 36500d)",
               path, text);
        return -1;
    default:
        s_fail(ld, pos, "%s: bad duration '%s' (write e.g. 30d, 24h, 90m, "
               "45s, 500ms, or a number of milliseconds)", path, text);
        return -1;
    }
}

static int s_bool(s_load_t *ld, const char *text, const char *path, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on" };
    static const char *const no[] = { "false", "no", "off" };
    *out = false;
    if (!text)
        return 0;
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0)
            return 0;
    }
    s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
           "%s: expected true or false, not '%s'", path, text);
    return -1;
}

/* A stage name or event type: present, not empty, not too long, printable. */
static int s_word(s_load_t *ld, const char *text, size_t max,
                  const char *what, const char *path)
{
    s_pos_t pos = s_pos_of(s_node(ld, "%s", path));
    if (!text) {
        s_fail(ld, pos, "%s: missing %s", path, what);
        return -1;
    }
    if (text[0] == '\0') {
        s_fail(ld, pos, "%s: empty %s", path, what);
        return -1;
    }
    if (strlen(text) > max) {
        s_fail(ld, pos, "%s: %s longer than %zu bytes", path, what, max);
        return -1;
    }
    for (const char *p = text; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            s_fail(ld, pos, "%s: control character in %s", path, what);
            return -1;
        }
    }
    return 0;
}

static int s_number(s_load_t *ld, double v, const char *path)
{
    if (isfinite(v))
        return 0;
    s_fail(ld, s_pos_of(s_node(ld, "%s", path)), "%s: not a finite number",
           path);
    return -1;
}

/* ---------------------------------------------------------------------- */
/* Building the definition.                                                */

static int s_find_stage(const defn_t *d, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(d->stages[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int s_build_stages(s_load_t *ld, const s_ytop_t *y, defn_t *d)
{
    char path[64];
    size_t n_exits = y->exits ? y->exits_count : 0;
    size_t n_order = y->stages ? y->stages_count : 0;
    size_t total = n_order + n_exits;

    if (!y->stages && !s_present(ld, "stages")) {
        s_fail(ld, s_pos_of(s_node(ld, "stages")),
               "missing 'stages': list the funnel's stages in order");
        return -1;
    }
    if (n_order == 0) {
        s_fail(ld, s_pos_of(s_node(ld, "stages")),
               "stages: no stages; a funnel needs at least one");
        return -1;
    }
    if (total > DEFN_STAGES_MAX) {
        const s_node_t *n = n_order > DEFN_STAGES_MAX
            ? s_node(ld, "stages[%d]", DEFN_STAGES_MAX)
            : s_node(ld, "exits[%zu]", DEFN_STAGES_MAX - n_order);
        s_fail(ld, s_pos_of(n), "too many stages: %zu, at most %d "
               "(exits included)", total, DEFN_STAGES_MAX);
        return -1;
    }
    d->stages = s_xcalloc(total, sizeof *d->stages);
    d->n_order = n_order;

    for (size_t i = 0; i < total; i++) {
        bool is_exit = i >= n_order;
        size_t k = is_exit ? i - n_order : i;
        const char *name = is_exit ? y->exits[k].name : y->stages[k].name;
        defn_stage_t *st = &d->stages[i];

        snprintf(path, sizeof path, "%s[%zu].name", is_exit ? "exits" : "stages",
                 k);
        if (s_word(ld, name, DEFN_NAME_MAX, "stage name", path) < 0)
            return -1;
        int dup = s_find_stage(d, i, name);
        if (dup >= 0) {
            s_pos_t first = s_pos_of(s_node(ld, "%s[%zu].name",
                                            (size_t)dup >= n_order ? "exits"
                                                                   : "stages",
                                            (size_t)dup >= n_order
                                                ? (size_t)dup - n_order
                                                : (size_t)dup));
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "duplicate stage '%s' (first defined at line %d)", name,
                   first.line);
            return -1;
        }
        st->name = s_xstrdup(name);
        d->n_stages = i + 1;
        if (is_exit) {
            st->terminal = true;
            continue;
        }

        const s_ystage_t *ys = &y->stages[k];
        snprintf(path, sizeof path, "stages[%zu].terminal", k);
        if (s_bool(ld, ys->terminal, path, &st->terminal) < 0)
            return -1;
        snprintf(path, sizeof path, "stages[%zu].max_dwell", k);
        if (s_duration(ld, ys->max_dwell, path, &st->max_dwell_ms) < 0)
            return -1;
        if (st->terminal && st->max_dwell_ms > 0) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "%s: a terminal stage cannot stall; remove max_dwell", path);
            return -1;
        }
        snprintf(path, sizeof path, "stages[%zu].conversion_target", k);
        if (s_number(ld, ys->conversion_target, path) < 0)
            return -1;
        if (ys->conversion_target < 0 || ys->conversion_target > 1) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "%s: %g is outside 0..1 (a share of the stage's leads)",
                   path, ys->conversion_target);
            return -1;
        }
        if (ys->conversion_target > 0 && (st->terminal || k + 1 == n_order)) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "%s: stage '%s' has no next stage to convert to", path,
                   name);
            return -1;
        }
        st->conversion_target = ys->conversion_target;
    }
    return 0;
}

static int s_source(s_load_t *ld, const char *text, const char *path, int *out)
{
    *out = HND_SRC_UNSPECIFIED;
    if (!text)
        return 0;
    if (strcmp(text, "marketing") == 0)
        *out = HND_SRC_MARKETING;
    else if (strcmp(text, "sales") == 0)
        *out = HND_SRC_SALES;
    else {
        s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
               "%s: unknown source '%s' (marketing or sales; omit it for "
               "both)", path, text);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Conditions (transitions[].when, scoring.fit[], personas[].when[]).     */

static void s_cond_free(defn_cond_t *c)
{
    free(c->attr);
    for (size_t i = 0; i < c->n_values; i++)
        free(c->values[i]);
    free(c->values);
    memset(c, 0, sizeof *c);
}

/* Build *out from the YAML condition at `path`. allow_count: personas may
 * test behaviour counters. */
static int s_cond(s_load_t *ld, const s_ycond_t *y, const char *path,
                  bool allow_count, defn_cond_t *out)
{
    char sub[160];
    s_pos_t at = s_pos_of(s_node(ld, "%s", path));
    int tests = (y->equals != NULL) + (y->one_of != NULL) +
                (y->min != NULL || y->max != NULL) + (y->present != NULL);

    memset(out, 0, sizeof *out);
    if (y->attr && y->count) {
        s_fail(ld, s_pos_of(s_node(ld, "%s.count", path)),
               "%s: 'attr' and 'count' together; a condition tests one "
               "attribute or one counter", path);
        return -1;
    }
    if (y->count) {
        if (!allow_count) {
            s_fail(ld, s_pos_of(s_node(ld, "%s.count", path)),
                   "%s: behaviour counters (count:) are for personas only; "
                   "use attr: here", path);
            return -1;
        }
        snprintf(sub, sizeof sub, "%s.count", path);
        if (s_word(ld, y->count, HND_TYPE_MAX, "event type", sub) < 0)
            return -1;
        if (y->equals || y->one_of || y->present || (!y->min && !y->max)) {
            s_fail(ld, at, "%s: a counter condition takes min and/or max "
                   "(e.g. {count: content_download, min: 2})", path);
            return -1;
        }
        out->op = DEFN_COND_COUNT;
        out->attr = s_xstrdup(y->count);
    } else {
        if (!y->attr) {
            s_fail(ld, at, "%s: missing 'attr' (the attribute to test)%s",
                   path, allow_count ? " or 'count' (an event type)" : "");
            return -1;
        }
        snprintf(sub, sizeof sub, "%s.attr", path);
        if (s_word(ld, y->attr, HND_ATTR_KEY_MAX, "attribute", sub) < 0)
            return -1;
        if (tests != 1) {
            s_fail(ld, at, "%s: %s test; write exactly one of equals, "
                   "one_of, min/max, present", path,
                   tests == 0 ? "no" : "more than one");
            return -1;
        }
        out->attr = s_xstrdup(y->attr);
        if (y->equals) {
            out->op = DEFN_COND_EQUALS;
            out->values = s_xcalloc(1, sizeof *out->values);
            out->values[0] = s_xstrdup(y->equals);
            out->n_values = 1;
        } else if (y->one_of) {
            out->op = DEFN_COND_ONE_OF;
            if (y->one_of_count == 0) {
                s_fail(ld, s_pos_of(s_node(ld, "%s.one_of", path)),
                       "%s.one_of: empty list; nothing could match", path);
                return -1;
            }
            out->values = s_xcalloc(y->one_of_count, sizeof *out->values);
            for (unsigned i = 0; i < y->one_of_count; i++)
                out->values[out->n_values++] = s_xstrdup(y->one_of[i]);
        } else if (y->present) {
            out->op = DEFN_COND_PRESENT;
            snprintf(sub, sizeof sub, "%s.present", path);
            if (s_bool(ld, y->present, sub, &out->present) < 0)
                return -1;
        } else {
            out->op = DEFN_COND_RANGE;
        }
    }
    if (y->min) {
        snprintf(sub, sizeof sub, "%s.min", path);
        if (s_number(ld, *y->min, sub) < 0)
            return -1;
        out->has_min = true;
        out->min = *y->min;
    }
    if (y->max) {
        snprintf(sub, sizeof sub, "%s.max", path);
        if (s_number(ld, *y->max, sub) < 0)
            return -1;
        out->has_max = true;
        out->max = *y->max;
    }
    if (out->has_min && out->has_max && out->min > out->max) {
        s_fail(ld, s_pos_of(s_node(ld, "%s.max", path)),
               "%s: max %g is below min %g; nothing could match", path,
               out->max, out->min);
        return -1;
    }
    if (out->op == DEFN_COND_COUNT && out->has_max && out->max < 0) {
        s_fail(ld, s_pos_of(s_node(ld, "%s.max", path)),
               "%s: max %g: a count is never negative", path, out->max);
        return -1;
    }
    return 0;
}

char *defn_cond_text(const defn_cond_t *c, char *buf, size_t size)
{
    size_t used = 0;
    int n;
    buf[0] = '\0';
    switch (c->op) {
    case DEFN_COND_EQUALS:
        snprintf(buf, size, "%s = %s", c->attr, c->values[0]);
        break;
    case DEFN_COND_ONE_OF:
        n = snprintf(buf, size, "%s in [", c->attr);
        used = n > 0 && (size_t)n < size ? (size_t)n : size - 1;
        for (size_t i = 0; i < c->n_values && used + 1 < size; i++) {
            n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                         c->values[i]);
            used = n > 0 && (size_t)n < size - used ? used + (size_t)n
                                                   : size - 1;
        }
        if (used + 1 < size)
            snprintf(buf + used, size - used, "]");
        break;
    case DEFN_COND_PRESENT:
        snprintf(buf, size, "%s %s", c->attr,
                 c->present ? "present" : "absent");
        break;
    case DEFN_COND_RANGE:
    case DEFN_COND_COUNT: {
        char what[HND_TYPE_MAX + 16];
        if (c->op == DEFN_COND_COUNT)
            snprintf(what, sizeof what, "count(%s)", c->attr);
        else
            snprintf(what, sizeof what, "%s", c->attr);
        if (c->has_min && c->has_max)
            snprintf(buf, size, "%s in %g..%g", what, c->min, c->max);
        else if (c->has_min)
            snprintf(buf, size, "%s >= %g", what, c->min);
        else
            snprintf(buf, size, "%s <= %g", what, c->max);
        break;
    }
    }
    return buf;
}

/* ---------------------------------------------------------------------- */
/* Transitions and regressions.                                            */

static const char *s_source_name(int source)
{
    return source == HND_SRC_MARKETING ? "marketing"
           : source == HND_SRC_SALES   ? "sales"
                                       : "";
}

static int s_build_transitions(s_load_t *ld, const s_ytop_t *y, defn_t *d)
{
    char path[96];
    size_t n = 0;

    for (unsigned i = 0; y->transitions && i < y->transitions_count; i++)
        n += y->transitions[i].types ? y->transitions[i].types_count : 0;
    d->transitions = s_xcalloc(n, sizeof *d->transitions);
    d->tconds = s_xcalloc(y->transitions ? y->transitions_count : 0,
                          sizeof *d->tconds);

    for (unsigned i = 0; y->transitions && i < y->transitions_count; i++) {
        const s_ytrans_t *t = &y->transitions[i];
        const defn_cond_t *when = NULL;
        int source, stage;

        snprintf(path, sizeof path, "transitions[%u].to", i);
        if (!t->to) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "transitions[%u]: missing 'to' (the stage it moves into)",
                   i);
            return -1;
        }
        stage = s_find_stage(d, d->n_stages, t->to);
        if (stage < 0) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "%s: transition to unknown stage '%s'", path, t->to);
            return -1;
        }
        snprintf(path, sizeof path, "transitions[%u].source", i);
        if (s_source(ld, t->source, path, &source) < 0)
            return -1;
        if (!t->types || t->types_count == 0) {
            s_fail(ld, s_pos_of(s_node(ld, "transitions[%u].types", i)),
                   "transitions[%u]: no event types (types: [a, b])", i);
            return -1;
        }
        if (t->when) {
            snprintf(path, sizeof path, "transitions[%u].when", i);
            if (s_cond(ld, t->when, path, false, &d->tconds[d->n_tconds]) < 0) {
                s_cond_free(&d->tconds[d->n_tconds]);
                return -1;
            }
            when = &d->tconds[d->n_tconds++];
        }
        for (unsigned j = 0; j < t->types_count; j++) {
            const char *type = t->types[j];
            snprintf(path, sizeof path, "transitions[%u].types[%u]", i, j);
            if (s_word(ld, type, HND_TYPE_MAX, "event type", path) < 0)
                return -1;
            for (size_t k = 0; k < d->n_transitions; k++) {
                const defn_transition_t *o = &d->transitions[k];
                if (o->source != source || strcmp(o->type, type) != 0)
                    continue;
                if (o->when == NULL) {
                    s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                           "%s: event type '%s'%s%s already has a transition "
                           "(to '%s')%s", path, type,
                           source ? " from " : "", s_source_name(source),
                           d->stages[o->stage].name,
                           when ? " without a condition, so this one is "
                                  "never used" : "");
                    return -1;
                }
                if (when) {
                    char ta[192], tb[192];
                    defn_cond_text(o->when, ta, sizeof ta);
                    defn_cond_text(when, tb, sizeof tb);
                    if (strcmp(ta, tb) == 0) {
                        s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                               "%s: event type '%s' already has a transition "
                               "when %s (to '%s')", path, type, ta,
                               d->stages[o->stage].name);
                        return -1;
                    }
                }
            }
            defn_transition_t *tr = &d->transitions[d->n_transitions++];
            tr->type = s_xstrdup(type);
            tr->source = source;
            tr->stage = stage;
            tr->when = (defn_cond_t *)when;
        }
    }
    return 0;
}

static int s_build_regressions(s_load_t *ld, const s_ytop_t *y, defn_t *d)
{
    char path[96];
    size_t n = 0;

    for (unsigned i = 0; y->regressions && i < y->regressions_count; i++)
        n += y->regressions[i].types ? y->regressions[i].types_count : 0;
    d->regressions = s_xcalloc(n, sizeof *d->regressions);

    for (unsigned i = 0; y->regressions && i < y->regressions_count; i++) {
        const s_yregr_t *r = &y->regressions[i];
        uint32_t from = 0;

        snprintf(path, sizeof path, "regressions[%u].to", i);
        if (!r->to) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "regressions[%u]: missing 'to' (the stage it moves back "
                   "to)", i);
            return -1;
        }
        int stage = s_find_stage(d, d->n_stages, r->to);
        if (stage < 0) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "%s: regression to unknown stage '%s'", path, r->to);
            return -1;
        }
        if (!r->types || r->types_count == 0) {
            s_fail(ld, s_pos_of(s_node(ld, "regressions[%u].types", i)),
                   "regressions[%u]: no event types (types: [a, b])", i);
            return -1;
        }
        for (unsigned j = 0; r->from && j < r->from_count; j++) {
            snprintf(path, sizeof path, "regressions[%u].from[%u]", i, j);
            int s = s_find_stage(d, d->n_stages, r->from[j]);
            if (s < 0) {
                s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                       "%s: unknown stage '%s'", path, r->from[j]);
                return -1;
            }
            if (s == stage) {
                s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                       "%s: a regression from '%s' to itself moves nothing",
                       path, r->from[j]);
                return -1;
            }
            from |= 1u << s;
        }
        if (!r->from)
            for (size_t s = 0; s < d->n_stages; s++)
                if (!d->stages[s].terminal && (int)s != stage)
                    from |= 1u << s;
        for (unsigned j = 0; j < r->types_count; j++) {
            const char *type = r->types[j];
            snprintf(path, sizeof path, "regressions[%u].types[%u]", i, j);
            if (s_word(ld, type, HND_TYPE_MAX, "event type", path) < 0)
                return -1;
            for (size_t k = 0; k < d->n_regressions; k++)
                if (strcmp(d->regressions[k].type, type) == 0) {
                    s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                           "%s: event type '%s' already has a regression "
                           "(to '%s')", path, type,
                           d->stages[d->regressions[k].stage].name);
                    return -1;
                }
            defn_regression_t *rg = &d->regressions[d->n_regressions++];
            rg->type = s_xstrdup(type);
            rg->from_mask = from;
            rg->stage = stage;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Scoring: engagement points and fit rules.                               */

static int s_build_scoring(s_load_t *ld, const s_ytop_t *y, defn_t *d)
{
    char path[96], text[192];
    const s_yscoring_t *sc = y->scoring;
    size_t n = sc && sc->engagement ? sc->engagement_count : 0;
    size_t nf = sc && sc->fit ? sc->fit_count : 0;

    d->points = s_xcalloc(n, sizeof *d->points);
    d->fit = s_xcalloc(nf, sizeof *d->fit);
    if (sc && s_duration(ld, sc->half_life, "scoring.half_life",
                         &d->half_life_ms) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const s_ypoints_t *p = &sc->engagement[i];
        snprintf(path, sizeof path, "scoring.engagement[%zu].type", i);
        if (s_word(ld, p->type, HND_TYPE_MAX, "event type", path) < 0)
            return -1;
        for (size_t k = 0; k < d->n_points; k++) {
            if (strcmp(d->points[k].type, p->type) == 0) {
                s_pos_t first = s_pos_of(
                    s_node(ld, "scoring.engagement[%zu].type", k));
                s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                       "%s: duplicate points for event type '%s' (first at "
                       "line %d)", path, p->type, first.line);
                return -1;
            }
        }
        snprintf(path, sizeof path, "scoring.engagement[%zu].points", i);
        if (!p->points) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "scoring.engagement[%zu]: missing 'points'", i);
            return -1;
        }
        if (s_number(ld, *p->points, path) < 0)
            return -1;
        d->points[d->n_points].type = s_xstrdup(p->type);
        d->points[d->n_points].points = *p->points;
        d->n_points++;
    }
    if (nf > DEFN_FIT_MAX) {
        s_fail(ld, s_pos_of(s_node(ld, "scoring.fit[%d]", DEFN_FIT_MAX)),
               "scoring.fit: too many rules: %zu, at most %d", nf,
               DEFN_FIT_MAX);
        return -1;
    }
    for (size_t i = 0; i < nf; i++) {
        const s_ycond_t *f = &sc->fit[i];
        defn_fit_t *r = &d->fit[d->n_fit];
        snprintf(path, sizeof path, "scoring.fit[%zu]", i);
        if (s_cond(ld, f, path, false, &r->cond) < 0) {
            s_cond_free(&r->cond);
            return -1;
        }
        d->n_fit++;
        if (!f->points) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "%s: missing 'points'", path);
            return -1;
        }
        snprintf(path, sizeof path, "scoring.fit[%zu].points", i);
        if (s_number(ld, *f->points, path) < 0)
            return -1;
        r->points = *f->points;
        defn_cond_text(&r->cond, text, sizeof text);
        for (size_t k = 0; k < i; k++)
            if (strcmp(d->fit[k].label, text) == 0) {
                s_fail(ld, s_pos_of(s_node(ld, "scoring.fit[%zu]", i)),
                       "scoring.fit[%zu]: duplicate rule '%s' (first at line "
                       "%d)", i, text,
                       s_pos_of(s_node(ld, "scoring.fit[%zu]", k)).line);
                return -1;
            }
        r->label = s_xstrdup(text);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Qualification and handoff.                                              */

static void s_clause_label(defn_clause_t *c)
{
    char buf[160];
    size_t used = 0;
    const struct { bool has; const char *name; double v; } t[] = {
        { c->has_fit, "fit", c->fit },
        { c->has_engagement, "engagement", c->engagement },
        { c->has_total, "total", c->total },
    };
    buf[0] = '\0';
    for (size_t i = 0; i < 3; i++) {
        if (!t[i].has)
            continue;
        int n = snprintf(buf + used, sizeof buf - used, "%s%s >= %g",
                         used ? " and " : "", t[i].name, t[i].v);
        if (n > 0 && (size_t)n < sizeof buf - used)
            used += (size_t)n;
    }
    c->label = s_xstrdup(buf);
}

/* One clause from its three optional thresholds at `path` (a mapping). */
static int s_clause(s_load_t *ld, const double *fit, const double *eng,
                    const double *total, const char *path, double max_fit,
                    double max_eng_points, defn_clause_t *c)
{
    const struct { const double *v; const char *key; } th[] = {
        { fit, "fit" }, { eng, "engagement" }, { total, "total" },
    };
    char sub[128];
    if (!fit && !eng && !total) {
        s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
               "%s: no threshold; give fit, engagement and/or total", path);
        return -1;
    }
    for (size_t i = 0; i < 3; i++) {
        if (!th[i].v)
            continue;
        snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "",
                 th[i].key);
        if (s_number(ld, *th[i].v, sub) < 0)
            return -1;
        if (*th[i].v < 0) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", sub)),
                   "%s: negative threshold %g", sub, *th[i].v);
            return -1;
        }
        bool unreachable = false;
        const char *why = "";
        if (i == 0 && *th[i].v > max_fit) {
            unreachable = true;
            why = "the fit rules (scoring.fit) add up to at most";
        } else if (i == 1 && *th[i].v > 0 && max_eng_points <= 0) {
            unreachable = true;
            why = "no event type has positive points (scoring.engagement)";
        } else if (i == 2 && *th[i].v > max_fit && max_eng_points <= 0) {
            unreachable = true;
            why = "no event type has positive points and the fit rules add "
                  "up to at most";
        }
        if (unreachable) {
            if (i == 1)
                s_fail(ld, s_pos_of(s_node(ld, "%s", sub)),
                       "%s: threshold %g can never be reached: %s", sub,
                       *th[i].v, why);
            else
                s_fail(ld, s_pos_of(s_node(ld, "%s", sub)),
                       "%s: threshold %g can never be reached: %s %g", sub,
                       *th[i].v, why, max_fit);
            return -1;
        }
    }
    c->has_fit = fit != NULL;
    c->fit = fit ? *fit : 0;
    c->has_engagement = eng != NULL;
    c->engagement = eng ? *eng : 0;
    c->has_total = total != NULL;
    c->total = total ? *total : 0;
    s_clause_label(c);
    return 0;
}

static int s_build_rules(s_load_t *ld, const s_ytop_t *y, defn_t *d)
{
    const s_yqual_t *q = y->qualification;
    double max_fit = 0, max_eng = 0;

    for (size_t i = 0; i < d->n_fit; i++)
        if (d->fit[i].points > 0)
            max_fit += d->fit[i].points;
    for (size_t i = 0; i < d->n_points; i++)
        if (d->points[i].points > 0)
            max_eng += d->points[i].points;

    if (!q || (!q->fit && !q->engagement && !q->total && !q->any_of)) {
        s_fail(ld, s_pos_of(s_node(ld, "qualification")),
               "missing '%s': the rule a lead must meet to qualify, e.g. "
               "{engagement: 50} or any_of: [{fit: 20, engagement: 30}, "
               "{total: 50}]",
               q ? "qualification.engagement" : "qualification");
        return -1;
    }
    if (q->any_of && (q->fit || q->engagement || q->total)) {
        s_fail(ld, s_pos_of(s_node(ld, "qualification.any_of")),
               "qualification: thresholds and any_of together; put every "
               "clause under any_of");
        return -1;
    }
    if (q->any_of) {
        if (q->any_of_count == 0) {
            s_fail(ld, s_pos_of(s_node(ld, "qualification.any_of")),
                   "qualification.any_of: empty; no lead could qualify");
            return -1;
        }
        d->clauses = s_xcalloc(q->any_of_count, sizeof *d->clauses);
        for (unsigned i = 0; i < q->any_of_count; i++) {
            char path[64];
            const s_yclause_t *c = &q->any_of[i];
            snprintf(path, sizeof path, "qualification.any_of[%u]", i);
            if (s_clause(ld, c->fit, c->engagement, c->total, path, max_fit,
                         max_eng, &d->clauses[d->n_clauses]) < 0)
                return -1;
            d->n_clauses++;
        }
    } else {
        d->clauses = s_xcalloc(1, sizeof *d->clauses);
        if (s_clause(ld, q->fit, q->engagement, q->total, "qualification",
                     max_fit, max_eng, &d->clauses[0]) < 0)
            return -1;
        d->n_clauses = 1;
    }
    d->qualify_engagement = d->clauses[0].engagement;

    const s_yhandoff_t *h = y->handoff;
    d->handoff_sla_ms = 24 * 3600 * 1000;       /* SPEC: 24 h by default */
    if (h && h->sla) {
        if (s_duration(ld, h->sla, "handoff.sla", &d->handoff_sla_ms) < 0)
            return -1;
        if (d->handoff_sla_ms == 0) {
            s_fail(ld, s_pos_of(s_node(ld, "handoff.sla")),
                   "handoff.sla: must be longer than 0");
            return -1;
        }
    }
    const char *acc = h && h->accepted ? h->accepted : "handoff_accepted";
    const char *rej = h && h->rejected ? h->rejected : "handoff_rejected";
    const char *reason = h && h->reason_attr ? h->reason_attr : "reason";
    if (s_word(ld, acc, HND_TYPE_MAX, "event type", "handoff.accepted") < 0 ||
        s_word(ld, rej, HND_TYPE_MAX, "event type", "handoff.rejected") < 0 ||
        s_word(ld, reason, HND_ATTR_KEY_MAX, "attribute",
               "handoff.reason_attr") < 0)
        return -1;
    if (strcmp(acc, rej) == 0) {
        s_fail(ld, s_pos_of(s_node(ld, "handoff.rejected")),
               "handoff.rejected: same event type as handoff.accepted ('%s')",
               rej);
        return -1;
    }
    d->accept_type = s_xstrdup(acc);
    d->reject_type = s_xstrdup(rej);
    d->reason_attr = s_xstrdup(reason);
    d->recycle_stage = -1;
    if (h && h->recycle_to) {
        d->recycle_stage = s_find_stage(d, d->n_stages, h->recycle_to);
        if (d->recycle_stage < 0) {
            s_fail(ld, s_pos_of(s_node(ld, "handoff.recycle_to")),
                   "handoff.recycle_to: unknown stage '%s'", h->recycle_to);
            return -1;
        }
        if (d->stages[d->recycle_stage].terminal) {
            s_fail(ld, s_pos_of(s_node(ld, "handoff.recycle_to")),
                   "handoff.recycle_to: '%s' is terminal; a recycled lead "
                   "must be able to qualify again", h->recycle_to);
            return -1;
        }
    }
    d->recycle_reset = true;
    if (h && h->reset_engagement &&
        s_bool(ld, h->reset_engagement, "handoff.reset_engagement",
               &d->recycle_reset) < 0)
        return -1;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The type table.                                                         */

static uint64_t s_fnv(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int s_type_find(const defn_t *d, const char *type)
{
    if (d->n_hash == 0)
        return -1;
    size_t mask = d->n_hash - 1;
    for (size_t i = (size_t)s_fnv(type) & mask;; i = (i + 1) & mask) {
        int t = d->type_hash[i];
        if (t < 0)
            return -1;
        if (strcmp(d->types[t].type, type) == 0)
            return t;
    }
}

/* Index of type in the table, added when missing. The table is sized by
 * the caller (s_build_types) so it never fills. */
static int s_type_add(defn_t *d, const char *type)
{
    int t = s_type_find(d, type);
    if (t >= 0)
        return t;
    size_t mask = d->n_hash - 1;
    size_t i = (size_t)s_fnv(type) & mask;
    while (d->type_hash[i] >= 0)
        i = (i + 1) & mask;
    t = (int)d->n_types++;
    d->type_hash[i] = t;
    defn_type_t *e = &d->types[t];
    e->type = s_xstrdup(type);
    e->regression = -1;
    return t;
}

static void s_build_types(const s_ytop_t *y, defn_t *d)
{
    size_t most = d->n_transitions + d->n_regressions + d->n_points + 2;
    for (unsigned i = 0; y->personas && i < y->personas_count; i++)
        most += y->personas[i].when ? y->personas[i].when_count : 0;
    d->n_hash = 16;
    while (d->n_hash < 2 * most)
        d->n_hash *= 2;
    d->type_hash = s_xcalloc(d->n_hash, sizeof *d->type_hash);
    for (size_t i = 0; i < d->n_hash; i++)
        d->type_hash[i] = -1;
    d->types = s_xcalloc(most, sizeof *d->types);
    d->tr_index = s_xcalloc(d->n_transitions, sizeof *d->tr_index);

    for (size_t i = 0; i < d->n_points; i++) {
        defn_type_t *e = &d->types[s_type_add(d, d->points[i].type)];
        e->points = d->points[i].points;
        e->has_points = true;
    }
    for (size_t i = 0; i < d->n_regressions; i++)
        d->types[s_type_add(d, d->regressions[i].type)].regression = (int)i;
    (void)s_type_add(d, d->accept_type);
    (void)s_type_add(d, d->reject_type);
    for (size_t i = 0; i < d->n_transitions; i++) {
        defn_type_t *e = &d->types[s_type_add(d, d->transitions[i].type)];
        e->tr_count++;
    }
    /* Group the transitions by type, keeping file order within a type. */
    int next = 0;
    for (size_t t = 0; t < d->n_types; t++) {
        d->types[t].tr_first = next;
        next += d->types[t].tr_count;
        d->types[t].tr_count = 0;
    }
    for (size_t i = 0; i < d->n_transitions; i++) {
        defn_type_t *e = &d->types[s_type_find(d, d->transitions[i].type)];
        d->tr_index[e->tr_first + e->tr_count++] = (int)i;
    }
}

/* ---------------------------------------------------------------------- */
/* Personas.                                                               */

static int s_build_personas(s_load_t *ld, const s_ytop_t *y, defn_t *d)
{
    char path[96];
    size_t n = y->personas ? y->personas_count : 0;

    d->personas = s_xcalloc(n, sizeof *d->personas);
    for (size_t i = 0; i < n; i++) {
        const s_ypersona_t *yp = &y->personas[i];
        defn_persona_t *p = &d->personas[d->n_personas];

        snprintf(path, sizeof path, "personas[%zu].name", i);
        if (s_word(ld, yp->name, DEFN_NAME_MAX, "persona name", path) < 0)
            return -1;
        if (strchr(yp->name, '/')) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "%s: '/' is not allowed in a persona name", path);
            return -1;
        }
        for (size_t k = 0; k < d->n_personas; k++)
            if (strcmp(d->personas[k].name, yp->name) == 0) {
                s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                       "%s: duplicate persona '%s' (first defined at line "
                       "%d)", path, yp->name,
                       s_pos_of(s_node(ld, "personas[%zu].name", k)).line);
                return -1;
            }
        if (d->n_personas > 0 && d->personas[d->n_personas - 1].n_when == 0) {
            s_fail(ld, s_pos_of(s_node(ld, "%s", path)),
                   "%s: persona '%s' is never assigned: '%s' before it has "
                   "no conditions and matches every lead", path, yp->name,
                   d->personas[d->n_personas - 1].name);
            return -1;
        }
        p->name = s_xstrdup(yp->name);
        d->n_personas++;
        size_t nw = yp->when ? yp->when_count : 0;
        p->when = s_xcalloc(nw, sizeof *p->when);
        for (size_t w = 0; w < nw; w++) {
            snprintf(path, sizeof path, "personas[%zu].when[%zu]", i, w);
            if (s_cond(ld, &yp->when[w], path, true, &p->when[p->n_when]) < 0) {
                s_cond_free(&p->when[p->n_when]);
                return -1;
            }
            p->n_when++;
            const defn_cond_t *c = &p->when[w];
            if (c->op != DEFN_COND_COUNT)
                continue;
            int t = s_type_find(d, c->attr);
            if (t < 0) {
                s_fail(ld, s_pos_of(s_node(ld, "%s.count", path)),
                       "%s.count: no transition, regression, scoring rule or "
                       "handoff answer names event type '%s', so funneld "
                       "keeps no counter for it", path, c->attr);
                return -1;
            }
            d->types[t].persona_ref = true;
        }
    }
    return 0;
}

/* friction: the rolling window of the conversion check. */
static int s_build_friction(s_load_t *ld, const s_ytop_t *y, defn_t *d)
{
    const s_yfriction_t *f = y->friction;
    const int64_t day = 86400000;
    d->conversion_window_ms = 7 * day;
    d->min_sample = 20;
    d->alert_recovery = true;
    if (!f)
        return 0;
    if (f->conversion_window) {
        if (s_duration(ld, f->conversion_window, "friction.conversion_window",
                       &d->conversion_window_ms) < 0)
            return -1;
        if (d->conversion_window_ms < day ||
            d->conversion_window_ms % day != 0 ||
            d->conversion_window_ms > 366 * day) {
            s_fail(ld, s_pos_of(s_node(ld, "friction.conversion_window")),
                   "friction.conversion_window: '%s' is not a whole number of "
                   "days between 1d and 366d", f->conversion_window);
            return -1;
        }
    }
    if (f->min_sample) {
        double v = *f->min_sample;
        if (s_number(ld, v, "friction.min_sample") < 0)
            return -1;
        if (v < 1 || v > 1e9 || v != floor(v)) {
            s_fail(ld, s_pos_of(s_node(ld, "friction.min_sample")),
                   "friction.min_sample: %g is not a whole number of leads "
                   "from 1 up", v);
            return -1;
        }
        d->min_sample = (uint32_t)v;
    }
    if (f->alert_recovery &&
        s_bool(ld, f->alert_recovery, "friction.alert_recovery",
               &d->alert_recovery) < 0)
        return -1;
    return 0;
}

static int s_build(s_load_t *ld, const s_ytop_t *y, defn_t *d)
{
    if (!y) {
        s_fail(ld, s_pos_of(s_node(ld, "%s", "")), "empty definition");
        return -1;
    }
    if (s_word(ld, y->name, DEFN_NAME_MAX, "definition name", "name") < 0)
        return -1;
    d->name = s_xstrdup(y->name);
    if (s_build_stages(ld, y, d) < 0 || s_build_transitions(ld, y, d) < 0 ||
        s_build_regressions(ld, y, d) < 0 || s_build_scoring(ld, y, d) < 0 ||
        s_build_rules(ld, y, d) < 0 || s_build_friction(ld, y, d) < 0)
        return -1;
    s_build_types(y, d);
    return s_build_personas(ld, y, d);
}

static void s_hash(const char *text, size_t len, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 0x100000001b3ULL;
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

/* ---------------------------------------------------------------------- */
/* Public API.                                                             */

defn_t *defn_load_buffer(const char *yaml, size_t len, const char *name,
                         char *err, size_t errlen)
{
    s_load_t ld = {
        .name = name ? name : "(buffer)",
        .text = yaml,
        .len = len,
        .err = err,
        .errlen = errlen,
    };
    s_cylog_t cl = { 0 };
    cyaml_config_t cfg = {
        .log_fn = s_cyaml_log,
        .log_ctx = &cl,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_DEBUG,
        .flags = CYAML_CFG_NO_ALIAS,
    };
    s_ytop_t *y = NULL;
    defn_t *d = NULL;
    defn_t *result = NULL;

    assert(yaml || len == 0);
    if (err && errlen)
        err[0] = '\0';
    if (len > S_FILE_MAX) {
        s_pos_t none = { 0, 0 };
        s_fail(&ld, none, "larger than %u bytes: not a funnel definition",
               S_FILE_MAX);
        goto cleanup;
    }
    if (s_locate(&ld) < 0)
        goto cleanup;
    cyaml_err_t rc = cyaml_load_data((const uint8_t *)yaml, len, &cfg,
                                     &s_top_value, (cyaml_data_t **)&y, NULL);
    if (rc != CYAML_OK) {
        if (rc == CYAML_ERR_OOM)
            abort();
        y = NULL;
        s_cyaml_error(&ld, rc, &cl);
        goto cleanup;
    }
    d = s_xcalloc(1, sizeof *d);
    if (s_build(&ld, y, d) < 0)
        goto cleanup;
    d->path = s_xstrdup(ld.name);
    s_hash(yaml, len, d->hash);
    result = d;
    d = NULL;
cleanup:
    if (!result && err && errlen && err[0] == '\0')
        snprintf(err, errlen, "%s: invalid definition", ld.name);
    defn_destroy(&d);
    if (y)
        cyaml_free(&cfg, &s_top_value, y, 0);
    s_loc_free(&ld.loc);
    return result;
}

defn_t *defn_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    defn_t *d = NULL;

    assert(path);
    if (err && errlen)
        err[0] = '\0';
    f = fopen(path, "rb");
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    for (;;) {
        if (len == cap) {
            if (cap > S_FILE_MAX) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: larger than %u bytes: not a "
                             "funnel definition", path, S_FILE_MAX);
                goto cleanup;
            }
            cap = cap ? 2 * cap : 16384;
            buf = s_xrealloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: read error", path);
                goto cleanup;
            }
            break;
        }
    }
    d = defn_load_buffer(buf, len, path, err, errlen);
cleanup:
    if (f)
        fclose(f);
    free(buf);
    return d;
}

defn_t *defn_load_default(void)
{
    char err[S_MSG_MAX + 64];
    defn_t *d = defn_load_buffer(defn_default_yaml, defn_default_yaml_len,
                                 "(built-in)", err, sizeof err);
    if (!d) {
        fprintf(stderr, "funneld: the built-in definition is invalid: %s\n",
                err);
        abort();
    }
    return d;
}

void defn_destroy(defn_t **self_p)
{
    assert(self_p);
    defn_t *d = *self_p;
    if (!d)
        return;
    free(d->name);
    free(d->path);
    for (size_t i = 0; i < d->n_stages; i++)
        free(d->stages[i].name);
    free(d->stages);
    for (size_t i = 0; i < d->n_transitions; i++)
        free(d->transitions[i].type);
    free(d->transitions);
    for (size_t i = 0; i < d->n_tconds; i++)
        s_cond_free(&d->tconds[i]);
    free(d->tconds);
    for (size_t i = 0; i < d->n_regressions; i++)
        free(d->regressions[i].type);
    free(d->regressions);
    for (size_t i = 0; i < d->n_points; i++)
        free(d->points[i].type);
    free(d->points);
    for (size_t i = 0; i < d->n_fit; i++) {
        s_cond_free(&d->fit[i].cond);
        free(d->fit[i].label);
    }
    free(d->fit);
    for (size_t i = 0; i < d->n_clauses; i++)
        free(d->clauses[i].label);
    free(d->clauses);
    free(d->accept_type);
    free(d->reject_type);
    free(d->reason_attr);
    for (size_t i = 0; i < d->n_personas; i++) {
        free(d->personas[i].name);
        for (size_t k = 0; k < d->personas[i].n_when; k++)
            s_cond_free(&d->personas[i].when[k]);
        free(d->personas[i].when);
    }
    free(d->personas);
    for (size_t i = 0; i < d->n_types; i++)
        free(d->types[i].type);
    free(d->types);
    free(d->tr_index);
    free(d->type_hash);
    free(d);
    *self_p = NULL;
}

int defn_stage_index(const defn_t *d, const char *name)
{
    assert(d && name);
    return s_find_stage(d, d->n_stages, name);
}

const defn_transition_t *defn_transition(const defn_t *d, const char *type,
                                         int source)
{
    /* The selection h_stage.c makes (a transition for the event's source
     * first, then one for any source, the first listed in each), over the
     * transitions without an attribute condition. */
    assert(d && type);
    const defn_type_t *ty = defn_type(d, type);
    if (ty == NULL)
        return NULL;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < ty->tr_count; i++) {
            const defn_transition_t *t = &d->transitions[d->tr_index[ty->tr_first + i]];
            bool want = pass == 0 ? t->source != 0 && t->source == source
                                  : t->source == 0;
            if (want && t->when == NULL)
                return t;
        }
    return NULL;
}

double defn_points(const defn_t *d, const char *type)
{
    const defn_type_t *t = defn_type(d, type);
    return t ? t->points : 0;
}

const defn_type_t *defn_type(const defn_t *d, const char *type)
{
    assert(d && type);
    int t = s_type_find(d, type);
    return t >= 0 ? &d->types[t] : NULL;
}
