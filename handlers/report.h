/* report.h: the funnel and friction reports, as a pure function of the
 * definition and the report counters and marks.
 *
 * The handlers write report counters and marks (keys.h); a report reads
 * them back through a report_reader_t (the daemon's is a read snapshot of
 * the store; a test's, a table in memory) and returns plain structs: every
 * rule of a report (which groups, conversion, the conversion window, the
 * ranking of friction points, the order of rejection reasons and leads)
 * lives here, none in the daemon, which only maps the structs onto the
 * wire (daemon/query_encode.c).
 *
 * Ownership: a report owns everything it points to (strings included,
 * copied from the definition and the counters), so it outlives both and
 * two reports can be compared field by field; it comes from the report's
 * own arena (common/arena.h), which report_*_free() releases at once.
 * Pure and thread-safe: a report uses only its arguments (the reader is
 * called from the calling thread only).
 */
#ifndef FUNNELD_REPORT_H
#define FUNNELD_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "defn.h"
#include "pipeline.h"

/* What a report reads. counter: one counter's value (0 when absent),
 * called as counter(key, arg). counters: fn(key, value, fn_arg) for every
 * counter whose key begins with prefix, in key order; marks: fn(set,
 * lead_id, since_ms, fn_arg) for every member of every set whose name
 * begins with prefix, in key order (strings borrowed for the call). Both
 * return the number of entries or a negative number on a read error. */
typedef void report_counter_fn(const char *key, int64_t value, void *arg);
typedef void report_mark_fn(const char *set, const char *lead_id,
                            int64_t since_ms, void *arg);
typedef struct {
    pipeline_counter_fn *counter;
    long (*counters)(void *arg, const char *prefix, report_counter_fn *fn,
                     void *fn_arg);
    long (*marks)(void *arg, const char *prefix, report_mark_fn *fn,
                  void *fn_arg);
    void *arg;
} report_reader_t;

/* -- the funnel ---------------------------------------------------------- */

typedef struct {
    char *stage;
    uint64_t now;               /* leads in the stage now */
    uint64_t entered;           /* leads that ever entered it */
    uint64_t advanced;          /* ... and later moved on in the order */
    bool terminal;
} report_stage_count_t;

typedef struct {
    uint64_t sent, accepted, rejected;
} report_handoffs_t;

/* The counts of the whole funnel (name "") or of one group. */
typedef struct {
    char *name;
    uint64_t leads;
    size_t n_stages;            /* the definition's, at most DEFN_STAGES_MAX */
    report_stage_count_t *stages;
    report_handoffs_t handoffs;
} report_counts_t;

typedef struct {
    report_counts_t all;        /* with a persona filter, that persona's */
    char *by;                   /* the breakdown asked for, "" for none */
    char *persona;              /* the persona filter, "" for none */
    size_t n_groups;            /* groups with leads, in name order */
    report_counts_t *groups;
    arena_t *arena;
} report_funnel_t;

/* The funnel report under d: whole, or by "persona", "source" or "cohort"
 * (by "" for none), or the leads of one persona (persona "" for all; with
 * a breakdown only by persona). Returns 0 and *out (caller frees with
 * report_funnel_free), or -1 and *err, a static message for the user: an
 * unknown breakdown, a persona filter with another breakdown, a persona
 * neither the definition nor the counters know, a read error ("storage
 * error"). */
int report_funnel(const defn_t *d, const report_reader_t *rd, const char *by,
                  const char *persona, report_funnel_t **out, const char **err);
void report_funnel_free(report_funnel_t **r_p);

/* -- friction ---------------------------------------------------------- */

typedef struct {
    char *stage;
    uint64_t entered, advanced;
    uint64_t in_progress;       /* in the stage now */
    uint64_t dropped;           /* stays that ended in an exit */
    bool has_conversion;        /* entered > 0 and not terminal */
    double conversion;          /* advanced / entered (0 when none) */
    double conversion_target;   /* 0: none */
    /* The conversion window ending with the last day checked (the whole
     * funnel only, for a stage with a target). */
    uint64_t window_entered, window_advanced;
    bool has_window_conversion; /* window_entered >= min_sample (and > 0) */
    double window_conversion;
    bool below_target;          /* as the conversion check holds it */
    uint64_t completed;         /* completed stays */
    int64_t median_ms, p90_ms;  /* of the completed stays, -1 for none */
    int64_t max_dwell_ms;       /* 0: none */
    uint64_t stalls;            /* stays flagged stalled, ever */
    uint64_t stalled_now;
    uint64_t regressions;       /* moves back out of the stage */
    uint64_t rejections;        /* handoffs rejected while in it */
} report_stage_friction_t;

/* The sections of the ranking, in rank order. */
typedef enum {
    REPORT_POINT_CONVERSION,        /* below target: the shortfall */
    REPORT_POINT_DWELL,             /* the median stay */
    REPORT_POINT_STALL,
    REPORT_POINT_REGRESSION,
    REPORT_POINT_HANDOFF_REJECTED,
    REPORT_POINT_HANDOFF_SLA,       /* handoffs waiting past the SLA now */
} report_point_kind_t;

/* "conversion", "dwell", "stall", "regression", "handoff_rejected",
 * "handoff_sla": FrictionPoint.kind. */
const char *report_point_kind_name(report_point_kind_t kind);

typedef struct {
    uint32_t rank;              /* 1 for the worst */
    report_point_kind_t kind;
    char *stage;                /* "" for handoff_sla */
    double value;               /* a count, a share (conversion) or ms */
    char *summary;              /* one line for people */
} report_point_t;

typedef struct {
    char *reason;
    uint64_t count;
} report_reason_t;

/* The friction of the whole funnel (name "") or of one group. */
typedef struct {
    char *name;
    size_t n_stages;            /* every stage of the definition */
    report_stage_friction_t *stages;
    size_t n_points;            /* ranked, worst first */
    report_point_t *points;
    size_t n_reasons;           /* most frequent first, at most 10 */
    report_reason_t *reasons;
    uint64_t past_sla;          /* handoffs waiting past the SLA now */
    uint64_t breaches;          /* SLA breaches ever */
} report_friction_group_t;

typedef struct {
    char *lead_id;
    char *set;                  /* the mark set (keys.h) */
    char *stage;                /* the stage of a stalled set, else "" */
    int64_t since_ms;
} report_lead_t;

/* A friction query: by "" (none), "persona", "source" or "cohort"; with leads, the
 * leads stalled in `stage` ("" for every stage, plus those waiting past the
 * SLA), those stalled longest first, at most limit (0: 1000). */
typedef struct {
    const char *by;
    const char *stage;
    bool leads;
    uint32_t limit;
} report_friction_query_t;

typedef struct {
    report_friction_group_t all;
    uint32_t window_days;       /* the conversion window */
    uint32_t min_sample;
    int64_t window_end_ms;      /* start of the last day checked, 0: never */
    char *by;
    size_t n_groups;            /* every group, in name order */
    report_friction_group_t *groups;
    uint64_t leads_total;       /* members of the listed sets */
    size_t n_leads;             /* listed: at most the limit */
    report_lead_t *leads;
    arena_t *arena;
} report_friction_t;

/* The friction report under d for query q. Returns 0 and *out (caller
 * frees with report_friction_free), or -1 and *err, a static message for
 * the user: an unknown breakdown, a stage that is not a non-terminal stage
 * of the funnel order, a read error ("storage error"). */
int report_friction(const defn_t *d, const report_reader_t *rd,
                    const report_friction_query_t *q, report_friction_t **out,
                    const char **err);
void report_friction_free(report_friction_t **r_p);

/* -- quality ------------------------------------------------------------- */

/* Lead quality against outcomes, over the whole funnel (name "") or one
 * group. Handed-off leads: handed_off = won + lost + open + before, where
 * won and lost came after the lead's first handoff, before is a lead whose
 * outcome came first, and lost includes lost_timeout, the leads open for
 * quality.lost_after since their handoff (open the rest). The all_*
 * counts are the same over every lead (the timeout from its first event).
 * A rate is absent (has_* false) when its denominator is 0:
 *   precision = won / (won + lost); recall = won / all_won;
 *   base_rate = all_won / (all_won + all_lost); lift = precision / base_rate;
 *   rejection_rate = handoffs rejected / handoffs sent (not per clause). */
typedef struct {
    char *name;
    uint64_t handed_off, won, lost, open, before, lost_timeout;
    uint64_t all_won, all_lost, all_open, all_lost_timeout;
    bool has_precision, has_recall, has_base_rate, has_lift;
    double precision, recall, base_rate, lift;
    int64_t median_handoff_to_won_ms;   /* -1: no lead won after a handoff */
    uint64_t handoffs, rejected;
    bool has_rejection_rate;
    double rejection_rate;
} report_quality_group_t;

typedef struct {
    report_quality_group_t all;
    char *by;                   /* "", "persona", "source" or "clause" */
    int64_t lost_after_ms;      /* the definition's, 0: none */
    int64_t as_of_ms;           /* the time the timeouts are counted at */
    size_t n_groups;            /* groups with leads, in name order */
    report_quality_group_t *groups;
    arena_t *arena;
} report_quality_t;

/* The quality report under d at time now_ms (the daemon's time: an open
 * lead counts as lost once the whole days from its handoff's day, or its
 * first event's, to now_ms's reach quality.lost_after), whole or by
 * "persona", "source" or "clause" (the clause of the lead's first handoff;
 * its groups have no leads of their own: base rate and recall are the
 * funnel's). Returns 0 and *out (free with report_quality_free) or -1 and
 * *err, a static message: an unknown breakdown, a read error. */
int report_quality(const defn_t *d, const report_reader_t *rd, const char *by,
                   int64_t now_ms, report_quality_t **out, const char **err);
void report_quality_free(report_quality_t **r_p);

#endif
