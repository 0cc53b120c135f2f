/* defn.h: the funnel definition, the one YAML file marketing and sales share.
 *
 * A definition names the stages (in funnel order, then terminal exits such as
 * "lost"), the transitions that move a lead into a stage, the engagement
 * points per event type and the qualification rule. It is loaded with
 * libcyaml, checked semantically, and then read-only: the daemon swaps whole
 * definitions on SIGHUP and never mutates one in place.
 */
#ifndef FUNNELD_DEFN_H
#define FUNNELD_DEFN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEFN_NAME_MAX 63     /* stage names, persona names: bytes */
#define DEFN_STAGES_MAX 16   /* stages incl. exits (a lead keeps a 32-bit skip mask) */

/* A stage. Stages [0, n_order) form the funnel order; stages
 * [n_order, n_stages) are exits outside the order (e.g. "lost"). */
typedef struct {
    char *name;
    int64_t max_dwell_ms;       /* 0: no stall limit */
    double conversion_target;   /* share to the next stage, 0: none */
    bool terminal;              /* no forward move out of it (action, exits) */
} defn_stage_t;

/* source restriction of a transition: 0 any, 1 marketing, 2 sales
 * (the values of hnd_source_t). */
typedef struct {
    char *type;                 /* event type */
    int source;                 /* 0: any source */
    int stage;                  /* index of the target stage */
} defn_transition_t;

typedef struct {
    char *type;
    double points;              /* may be negative */
} defn_points_t;

typedef struct {
    char *name;                 /* the definition's `name:` */
    char *path;                 /* file it was loaded from, or "(built-in)" */
    char hash[17];              /* hex FNV-1a 64 of the file's bytes */

    size_t n_stages;            /* all stages */
    size_t n_order;             /* the first n_order are the funnel order */
    defn_stage_t *stages;

    size_t n_transitions;
    defn_transition_t *transitions;

    size_t n_points;
    defn_points_t *points;
    int64_t half_life_ms;       /* engagement decay, 0: none */

    double qualify_engagement;  /* engagement a lead needs to qualify */
    int64_t handoff_sla_ms;     /* time sales has to answer a handoff */
} defn_t;

/* Load and validate a definition from a YAML file. On error returns NULL
 * and writes one line "file:line:column: what is wrong" (line and column
 * when known) into err. Caller owns the result: defn_destroy(). */
defn_t *defn_load_file(const char *path, char *err, size_t errlen);

/* Same, from a buffer; `name` stands for the file in error messages. */
defn_t *defn_load_buffer(const char *yaml, size_t len, const char *name,
                         char *err, size_t errlen);

/* The default AIDA definition compiled into funneld (handlers/default.yaml).
 * Never fails. Caller owns the result. */
defn_t *defn_load_default(void);

/* Free a definition; accepts NULL and sets *self_p to NULL. */
void defn_destroy(defn_t **self_p);

/* Index of the stage called name, or -1. */
int defn_stage_index(const defn_t *d, const char *name);

/* The transition for an event of `type` from `source` (1 marketing,
 * 2 sales): a transition restricted to that source wins over one for any
 * source. NULL when the type moves no stage. Borrowed from d. */
const defn_transition_t *defn_transition(const defn_t *d, const char *type,
                                         int source);

/* Engagement points of an event type (0 when the type has none). */
double defn_points(const defn_t *d, const char *type);

/* The text of the default definition, NUL-terminated (built-in). */
extern const char defn_default_yaml[];
extern const size_t defn_default_yaml_len;

#endif
