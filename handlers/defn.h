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

#include "htab.h"

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

/* A condition on one attribute of the lead, or (personas only) on one
 * behaviour counter (the number of events of a type the lead has had).
 * Exactly one test applies: */
typedef enum {
    DEFN_COND_EQUALS = 1,       /* attr == value */
    DEFN_COND_ONE_OF,           /* attr is one of values */
    DEFN_COND_RANGE,            /* min <= number(attr) <= max */
    DEFN_COND_PRESENT,          /* attr set and not empty (or absent, when
                                   `present` is false) */
    DEFN_COND_COUNT,            /* min <= count(type) <= max */
} defn_cond_op_t;

typedef struct {
    defn_cond_op_t op;
    char *attr;                 /* attribute key, or event type for COUNT */
    char **values;              /* EQUALS: 1 value; ONE_OF: n_values */
    size_t n_values;
    bool has_min, has_max;
    double min, max;            /* RANGE, COUNT (inclusive) */
    bool present;               /* PRESENT: true = must be set */
} defn_cond_t;

/* source restriction of a transition: 0 any, 1 marketing, 2 sales
 * (the values of hnd_source_t). */
typedef struct {
    char *type;                 /* event type */
    int source;                 /* 0: any source */
    int stage;                  /* index of the target stage */
    defn_cond_t *when;          /* NULL: no attribute condition */
} defn_transition_t;

/* An explicit backward move (or a move out of a terminal stage): an event
 * of `type` moves a lead that is in one of the `from` stages to `to`. */
typedef struct {
    char *type;
    uint32_t from_mask;         /* bit i: stage i; default: every stage
                                   that is not terminal */
    int stage;                  /* target */
} defn_regression_t;

typedef struct {
    char *type;
    double points;              /* may be negative */
} defn_points_t;

/* A fit rule: points while the lead's attributes satisfy the condition. */
#define DEFN_FIT_MAX 64         /* a lead keeps a 64-bit mask of matches */
typedef struct {
    defn_cond_t cond;
    double points;
    char *label;                /* "company_size in 50..5000" */
} defn_fit_t;

/* One clause of the qualification rule: every threshold set must be met
 * (>=). The rule is met when any clause is. */
typedef struct {
    bool has_fit, has_engagement, has_total;
    double fit, engagement, total;
    char *label;                /* "fit >= 20 and engagement >= 30" */
} defn_clause_t;

/* A persona: its name applies when every condition holds (no condition:
 * every lead). Personas are tried in order; the first match wins. */
typedef struct {
    char *name;
    defn_cond_t *when;
    size_t n_when;
} defn_persona_t;

/* Per event type named anywhere in the definition: what it does.
 * Built at load time so that the handlers look a type up once. */
typedef struct {
    char *type;
    double points;              /* engagement points, 0: none */
    bool has_points;
    int tr_first;               /* its transitions: tr_index[first..+n) */
    int tr_count;
    int regression;             /* index into regressions, -1: none */
    bool persona_ref;           /* a persona counts it */
    bool answer;                /* one of the four handoff answers */
} defn_type_t;

typedef struct {
    char *name;                 /* the definition's `name:` */
    char *path;                 /* file it was loaded from, or "(built-in)" */
    char hash[17];              /* hex FNV-1a 64 of the file's bytes */

    size_t n_stages;            /* all stages */
    size_t n_order;             /* the first n_order are the funnel order */
    defn_stage_t *stages;

    size_t n_transitions;
    defn_transition_t *transitions;
    size_t n_tconds;            /* the transitions' conditions (owned here) */
    defn_cond_t *tconds;

    size_t n_regressions;
    defn_regression_t *regressions;

    size_t n_points;
    defn_points_t *points;
    int64_t half_life_ms;       /* engagement decay, 0: none */

    size_t n_fit;
    defn_fit_t *fit;

    size_t n_clauses;           /* at least 1 */
    defn_clause_t *clauses;
    double qualify_engagement;  /* the first clause's engagement threshold
                                   (0: none), kept for simple rules */

    int64_t handoff_sla_ms;     /* time sales has to answer a handoff */
    char *accept_type;          /* event type: sales accepted (handoff_accepted) */
    char *reject_type;          /* event type: sales rejected (handoff_rejected) */
    char *recycle_type;         /* event type: sales gave the lead back, not
                                   rejected (handoff_recycled) */
    char *requalify_type;       /* event type: sales asks for the rule to be
                                   evaluated again now (handoff_requalify) */
    char *reason_attr;          /* attribute holding the reason ("reason") */
    int recycle_stage;          /* stage a rejected lead returns to, -1: stays */
    bool recycle_reset;         /* rejection restarts engagement from 0 */

    size_t n_personas;
    defn_persona_t *personas;

    /* friction: the conversion check over a rolling window of event time
     * (whole days), which alerts only when a stage's conversion to a later
     * stage crosses its conversion_target, once the window holds at least
     * min_sample entries; alert_recovery: also when it comes back up. */
    int64_t conversion_window_ms;   /* default 7d */
    uint32_t min_sample;            /* default 20 */
    bool alert_recovery;            /* default true */

    /* quality: a lead still open this long after its first handoff (or,
     * for the base rate, after its first event) counts as lost in the
     * quality report (whole days; 0: open leads stay open). */
    int64_t quality_lost_after_ms;

    /* The type table: every event type named by the definition. */
    size_t n_types;
    defn_type_t *types;
    int *tr_index;              /* transitions grouped by type */
    htab_t type_index;          /* types by name (FNV-1a 32) */
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
 * 2 sales) as h_stage.c selects it, among the transitions without an
 * attribute condition (which need a lead to be decided): a transition
 * restricted to that source wins over one for any source, and the first
 * listed wins among equals. NULL when no such transition moves the type.
 * Borrowed from d. */
const defn_transition_t *defn_transition(const defn_t *d, const char *type,
                                         int source);

/* Engagement points of an event type (0 when the type has none). */
double defn_points(const defn_t *d, const char *type);

/* The type table entry of an event type, or NULL when the definition
 * never names it. Borrowed from d. O(1). */
const defn_type_t *defn_type(const defn_t *d, const char *type);

/* A condition as text, e.g. "industry in [retail, software]",
 * "company_size in 50..5000", "count(content_download) >= 2". Writes to
 * buf[size], returns buf. */
char *defn_cond_text(const defn_cond_t *c, char *buf, size_t size);

/* The semantic difference between two definitions, one call of fn per
 * difference: section ("stages", "transitions", "regressions", "scoring",
 * "fit", "qualification", "handoff", "personas", "friction", "quality", "name"),
 * change ("added", "removed", "changed", "reordered"), what (the item), and
 * the values in a and in b (NULL where absent). Strings are borrowed for
 * the call.
 * Returns the number of differences (0: equal). */
typedef void defn_diff_fn(const char *section, const char *change,
                          const char *what, const char *in_a,
                          const char *in_b, void *arg);
size_t defn_diff(const defn_t *a, const defn_t *b, defn_diff_fn *fn,
                 void *arg);

/* Set one threshold of a freshly loaded definition that nothing uses yet
 * (a backtest's sweep: the one exception to "never mutated in place"):
 * key "qualification.fit", ".engagement" or ".total" sets that threshold
 * in every clause that has one (the only clause gains it when it has
 * not), "qualification.any_of[N].<threshold>" (N from 0) in clause N
 * alone; the clauses' labels follow. Returns 0, or -1 and a message in
 * err (an unknown key, a clause out of range, no clause with that
 * threshold, a value that is not finite). */
int defn_set_threshold(defn_t *d, const char *key, double v, char *err, size_t errlen);

/* The text of the default definition, NUL-terminated (built-in). */
extern const char defn_default_yaml[];
extern const size_t defn_default_yaml_len;

#endif
