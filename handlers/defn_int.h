/* defn_int.h: the definition loader's insides, shared by its files and by
 * nobody else (defn.h is the public API):
 *
 *   defn.c         the public API (loading, lookups, destroy), allocation,
 *                  the event-type table and the definition hash
 *   defn_locate.c  pass 1, the locator: where every node of the text is,
 *                  and the one-line error "file:line:column: ..."
 *   defn_schema.c  pass 2: the libcyaml schema, and libcyaml's failures
 *                  told at the position of the event they happened on
 *   defn_check.c   pass 3, values: durations, booleans, names, numbers,
 *                  sources and conditions
 *   defn_build.c   pass 3, the sections in order: name, stages,
 *                  transitions, regressions, personas (and the order itself)
 *   defn_rules.c   pass 3, the rules: scoring, qualification, handoff,
 *                  friction, quality
 *
 * Adding a section to the definition: its struct below and its member in
 * defn_ytop_t, its schema table and its line in s_top_fields and
 * s_mappings (defn_schema.c), its builder (defn_build.c or defn_rules.c)
 * and its line in defn_build.c's s_sections, its fields in defn.h and
 * their freeing in defn_destroy(), and its comparison in defn_diff.c.
 *
 * Everything is pure and reentrant: one load's state is its
 * defn_loader_t; nothing is shared between loads.
 */
#ifndef FUNNELD_DEFN_INT_H
#define FUNNELD_DEFN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "defn.h"
#include "xalloc.h"

#define DEFN_MSG_MAX 512        /* one error message, before its position */
#define DEFN_NONE SIZE_MAX      /* no node */

/* ---------------------------------------------------------------------- */
/* The YAML as libcyaml loads it (pass 2). Every field is optional (NULL  */
/* or 0 when absent) so that pass 3 reports missing keys with a position; */
/* booleans and durations stay text, checked in pass 3.                   */

typedef struct {
    char *name;
    char *max_dwell;            /* duration */
    double conversion_target;
    char *terminal;             /* boolean, checked in pass 3 (libcyaml's
                                   is lax) */
} defn_ystage_t;

typedef struct {
    char *name;
} defn_yexit_t;

typedef struct {
    char *type;
    double *points;             /* pointer: a missing value is an error */
} defn_ypoints_t;

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
    char *present;              /* boolean, checked in pass 3 */
    double *points;             /* fit rules only */
} defn_ycond_t;

typedef struct {
    char **types;
    unsigned types_count;
    char *to;
    char *source;
    defn_ycond_t *when;
} defn_ytrans_t;

typedef struct {
    char **types;
    unsigned types_count;
    char **from;
    unsigned from_count;
    char *to;
} defn_yregr_t;

typedef struct {
    char *half_life;
    defn_ypoints_t *engagement;
    unsigned engagement_count;
    defn_ycond_t *fit;
    unsigned fit_count;
} defn_yscoring_t;

typedef struct {
    double *fit;
    double *engagement;
    double *total;
} defn_yclause_t;

typedef struct {
    double *fit;
    double *engagement;
    double *total;
    defn_yclause_t *any_of;
    unsigned any_of_count;
} defn_yqual_t;

typedef struct {
    char *sla;
    char *accepted;
    char *rejected;
    char *recycled;
    char *requalify;
    char *reason_attr;
    char *recycle_to;
    char *reset_engagement;     /* boolean, checked in pass 3 */
} defn_yhandoff_t;

typedef struct {
    char *name;
    defn_ycond_t *when;
    unsigned when_count;
} defn_ypersona_t;

typedef struct {
    char *conversion_window;    /* duration, whole days */
    double *min_sample;
    char *alert_recovery;       /* boolean, checked in pass 3 */
} defn_yfriction_t;

typedef struct {
    char *lost_after;           /* duration, whole days */
} defn_yquality_t;

typedef struct {
    char *name;
    defn_ystage_t *stages;
    unsigned stages_count;
    defn_yexit_t *exits;
    unsigned exits_count;
    defn_ytrans_t *transitions;
    unsigned transitions_count;
    defn_yregr_t *regressions;
    unsigned regressions_count;
    defn_yscoring_t *scoring;
    defn_yqual_t *qualification;
    defn_yhandoff_t *handoff;
    defn_ypersona_t *personas;
    unsigned personas_count;
    defn_yfriction_t *friction;
    defn_yquality_t *quality;
} defn_ytop_t;

/* ---------------------------------------------------------------------- */
/* The locator's table and one load's state (defn_locate.c).              */

typedef struct {
    int line;                   /* 1-based; 0: unknown */
    int col;                    /* 1-based */
} defn_pos_t;

typedef struct {
    char *path;                 /* "" for the root, "stages[1].name" */
    char *key;                  /* the key naming it in its mapping, or NULL */
    size_t parent;              /* DEFN_NONE for the root */
    defn_pos_t pos;             /* where its value starts */
} defn_node_t;

typedef struct {
    defn_pos_t pos;
    size_t node;                /* DEFN_NONE: stream and document events */
    bool is_key;                /* the event is the key of `node` */
} defn_event_t;

typedef struct {
    defn_node_t *nodes;
    size_t n_nodes, cap_nodes;
    defn_event_t *events;
    size_t n_events, cap_events;
} defn_loc_t;

/* The state of one load. */
typedef struct {
    const char *name;           /* the file, for messages */
    const char *text;
    size_t len;
    char *err;
    size_t errlen;
    defn_loc_t loc;
} defn_loader_t;

/* Pass 1: parse ld->text with libyaml's event API and fill ld->loc: every
 * event's position and node, every node's path and position. Rejects
 * syntax errors, a second document, aliases, non-scalar keys, nesting
 * deeper than 32 and an empty text. Returns 0, or -1 with the error
 * written (ld->loc then holds what was read so far: free it anyway). */
int defn_locate(defn_loader_t *ld);

/* Free the locator's table; leaves it empty. */
void defn_loc_free(defn_loc_t *loc);

/* Write the one-line error "name:line:col: message" ("name: message" when
 * pos.line is 0) into ld->err, control characters replaced by '?'. The
 * first error of a load wins; later calls do nothing. */
void defn_fail(defn_loader_t *ld, defn_pos_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The node at the path built from fmt, or, when there is none (a missing
 * key), the nearest ancestor that exists; NULL when not even the root
 * does. Borrowed from ld->loc. */
const defn_node_t *defn_node(const defn_loader_t *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The position of defn_node(ld, fmt, ...): where to complain about the
 * value at that path (or, when it is missing, about the mapping that
 * lacks it); line 0 (unknown) when there is no node at all. */
defn_pos_t defn_pos(const defn_loader_t *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Whether the text has a node at exactly this path. */
bool defn_present(const defn_loader_t *ld, const char *path);

/* The position of a node; line 0 (unknown) for NULL. */
defn_pos_t defn_pos_of(const defn_node_t *n);

/* ---------------------------------------------------------------------- */
/* Pass 2 (defn_schema.c).                                                */

/* Load ld->text against the schema into *out, after defn_locate(). On a
 * schema error returns -1, *out NULL, and the error written at the
 * position of the event libcyaml failed on. An empty document gives 0 and
 * *out NULL. Caller owns *out: defn_schema_free(). Aborts on OOM. */
int defn_schema_load(defn_loader_t *ld, defn_ytop_t **out);

/* Free what defn_schema_load() returned; accepts NULL. */
void defn_schema_free(defn_ytop_t *y);

/* ---------------------------------------------------------------------- */
/* Values (defn_check.c). Each checks the value found at `path` (text     */
/* NULL: absent) and returns 0, or -1 with the error written at the       */
/* node's position.                                                       */

/* A duration into *out (0 when absent): "30d", "1h30m", "500ms", or a
 * number of milliseconds; at most 36500d. */
int defn_duration(defn_loader_t *ld, const char *text, const char *path,
                  int64_t *out);

/* true/yes/on or false/no/off, any case, into *out (false when absent). */
int defn_bool(defn_loader_t *ld, const char *text, const char *path,
              bool *out);

/* A name (what: "stage name", "event type", ...): present, not empty, at
 * most max bytes, no control character. */
int defn_word(defn_loader_t *ld, const char *text, size_t max,
              const char *what, const char *path);

/* A finite number. */
int defn_number(defn_loader_t *ld, double v, const char *path);

/* "marketing" or "sales" into *out as hnd_source_t (unspecified when
 * absent). */
int defn_source(defn_loader_t *ld, const char *text, const char *path,
                int *out);

/* Build *out from the YAML condition at `path`; allow_count: a behaviour
 * counter (count:) is allowed (personas). On -1, *out may hold part of
 * the condition: the caller frees it with defn_cond_free(). */
int defn_cond(defn_loader_t *ld, const defn_ycond_t *y, const char *path,
              bool allow_count, defn_cond_t *out);

/* Free what a condition owns and zero it. */
void defn_cond_free(defn_cond_t *c);

/* ---------------------------------------------------------------------- */
/* Pass 3: building the definition (defn_build.c, defn_rules.c).          */

/* Check y and fill d (zeroed by the caller) section by section. Returns
 * 0, or -1 with the error written; d then holds what was built so far,
 * for defn_destroy(). y NULL is an empty definition (an error). */
int defn_build(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d);

/* Index of the stage called name among d's first n stages, or -1. */
int defn_find_stage(const defn_t *d, size_t n, const char *name);

/* The sections of defn_rules.c, with defn_build()'s contract; each
 * leaves its defaults in d when its section is absent. scoring.half_life
 * and .engagement[] (points) and .fit[] (fit rules); qualification (after
 * scoring: a threshold no score can reach is an error); handoff (after
 * the stages); friction. */
int defn_build_scoring(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d);
int defn_build_qualification(defn_loader_t *ld, const defn_ytop_t *y,
                             defn_t *d);
int defn_build_handoff(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d);
int defn_build_friction(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d);
/* quality: lost_after (whole days, 0 when absent). */
int defn_build_quality(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d);

/* ---------------------------------------------------------------------- */
/* The event-type table (defn.c).                                         */

/* Index of type in d->types, or -1. */
int defn_type_find(const defn_t *d, const char *type);

/* Build d's type table from every event type named by the transitions,
 * regressions, points and handoff answers, with room for the types the
 * personas count (y->personas). Never fails. */
void defn_build_types(const defn_ytop_t *y, defn_t *d);

#endif
