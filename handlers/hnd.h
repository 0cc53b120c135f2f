/* hnd.h: the domain's data types and the handler interface.
 *
 * handlers/ is the pure part of funneld: each handler is a function of
 * (event, definition, lead) that updates the lead in place and records the
 * effects of the change (alerts, report counter deltas). No handler sees a
 * socket, a file or LMDB; the daemon loads the lead, runs the pipeline and
 * stores the result. Everything here is single-threaded and allocation-light.
 */
#ifndef FUNNELD_HND_H
#define FUNNELD_HND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "defn.h"

/* Limits shared by the validator (daemon) and the handlers. */
#define HND_ID_MAX 128        /* event id, lead id: bytes */
#define HND_TYPE_MAX 64       /* event type: bytes */
#define HND_ATTR_KEY_MAX 64   /* attribute key: bytes */
#define HND_ATTR_VAL_MAX 256  /* attribute value: bytes */
#define HND_ATTRS_MAX 32      /* attributes per event and per lead */

typedef enum {
    HND_SRC_UNSPECIFIED = 0,
    HND_SRC_MARKETING = 1,
    HND_SRC_SALES = 2,
} hnd_source_t;

typedef enum {
    HND_HANDOFF_NONE = 0,
    HND_HANDOFF_PENDING = 1,
    HND_HANDOFF_ACCEPTED = 2,
    HND_HANDOFF_REJECTED = 3,
    HND_HANDOFF_RECYCLED = 4,       /* given back to marketing */
    HND_HANDOFF_REQUALIFIED = 5,    /* looked at again; the rule did not hold */
} hnd_handoff_t;

/* A key/value pair. Strings are NUL-terminated. Ownership is stated where
 * the pair is used. */
typedef struct {
    const char *key;
    const char *value;
} hnd_kv_t;

/* One event, as the handlers see it. Every pointer is borrowed from the
 * decoded message and valid for the duration of the pipeline call. */
typedef struct {
    const char *id;
    const char *lead_id;
    const char *type;
    hnd_source_t source;
    int64_t at_ms;            /* event time */
    const hnd_kv_t *attrs;
    size_t n_attrs;
    double value;
    uint64_t log_seq;         /* position in the event log, set by the daemon */
    /* The event type's entry under type_defn (NULL: not one of its
     * types), looked up once by pipeline_apply for every handler; read it
     * with hnd_event_type. Whoever builds an event leaves both NULL. */
    const defn_t *type_defn;
    const defn_type_t *type_def;
} hnd_event_t;

/* The lead record. Owned strings (id, attrs) live in the fixed buffers
 * below, so a lead_t can be copied with plain assignment and never needs
 * freeing. */
typedef struct {
    char key[HND_ATTR_KEY_MAX + 1];
    char value[HND_ATTR_VAL_MAX + 1];
} hnd_attr_t;

/* The score ledger: one entry per change of a lead's fit or engagement,
 * naming the event and the rule that caused it. A lead keeps the newest
 * HND_LEDGER_MAX entries; older ones are summed into one carry-over per
 * kind, so that (entries + carry) always add up to the lead's scores. */
#define HND_LEDGER_MAX 8
#define HND_RULE_MAX 80
typedef enum {
    HND_LEDGER_FIT = 1,
    HND_LEDGER_ENGAGEMENT = 2,
} hnd_ledger_kind_t;

typedef struct {
    hnd_ledger_kind_t kind;
    char rule[HND_RULE_MAX];    /* e.g. "engagement: demo_request" */
    char event_id[HND_ID_MAX + 1];
    uint64_t seq;               /* the event's log sequence */
    int64_t at_ms;              /* the event's time */
    double points;              /* as added; engagement then decays */
} hnd_ledger_t;

/* Entries that left the ledger: their original points, and their value as
 * of value_at_ms (engagement decays from there; fit does not). */
typedef struct {
    uint32_t entries;
    double points;
    double value;
    int64_t value_at_ms;
} hnd_carry_t;

/* A behaviour counter: how many events of a type the lead has had. Kept
 * for the event types the definition names, at most HND_COUNTS_MAX. */
#define HND_COUNTS_MAX 24
typedef struct {
    char type[HND_TYPE_MAX + 1];
    uint32_t n;
} hnd_counter_t;

/* One handoff to sales and its answer; the newest HND_HANDOFFS_MAX kept. */
#define HND_HANDOFFS_MAX 4
#define HND_HREASON_MAX 128
typedef struct {
    hnd_handoff_t status;
    int64_t at_ms;              /* handed off (event time) */
    int64_t answered_at_ms;     /* 0: no answer yet */
    char rule[HND_RULE_MAX];    /* the qualification clause that matched */
    char reason[HND_HREASON_MAX];   /* the answer's reason (reason_attr) */
    double fit, engagement;     /* the score when handed off */
} hnd_handoff_rec_t;

/* A persona change; the newest HND_PCHANGES_MAX kept. */
#define HND_PCHANGES_MAX 4
typedef struct {
    char from[DEFN_NAME_MAX + 1];   /* "" for none */
    char to[DEFN_NAME_MAX + 1];
    int64_t at_ms;
    uint64_t seq;
} hnd_pchange_t;

/* A friction point of the lead (friction history); the newest
 * HND_FRICTION_MAX kept, older ones only counted (hnd_lead_t.frictions). */
#define HND_FRICTION_MAX 8
#define HND_FRICTION_KIND_MAX 23
typedef struct {
    char kind[HND_FRICTION_KIND_MAX + 1];   /* stall, regression,
                                               handoff_rejected, handoff_sla */
    int stage;                  /* stage concerned, -1 for none */
    int64_t at_ms;              /* event time it was flagged at */
    int64_t duration_ms;        /* stall: time in the stage; handoff_sla:
                                   time waited; 0 otherwise */
    char detail[HND_HREASON_MAX];   /* e.g. the rejection reason */
} hnd_friction_t;

/* What a lead added to the friction report's counters (h_friction.c), so
 * that they move with it when its persona changes (h_persona.c): every
 * column of a report by persona counts under the persona the lead has
 * now. One entry per counter: kind, stage (HND_TALLY_NO_STAGE for none),
 * histogram bucket (dwell), how many. A lead keeps at most HND_TALLY_MAX
 * counters and HND_RTALLY_MAX rejection reasons; what comes beyond them
 * stays with the persona it was booked under (a lead would need more than
 * 64 different stay lengths or 8 different reasons). */
typedef enum {
    HND_TALLY_STALL = 1,        /* KEYS_STALLS/<stage> */
    HND_TALLY_REGRESSION,       /* KEYS_REGRESSIONS/<stage> */
    HND_TALLY_REJECTION,        /* KEYS_REJECTIONS/<stage> */
    HND_TALLY_DROPPED,          /* KEYS_DROPPED/<stage> */
    HND_TALLY_DWELL,            /* keys_dwell <stage>, <bucket> */
    HND_TALLY_SLA,              /* KEYS_SLA_BREACHES */
} hnd_tally_kind_t;
#define HND_TALLY_MAX 64
#define HND_TALLY_NO_STAGE 255
typedef struct {
    uint8_t kind;               /* hnd_tally_kind_t */
    uint8_t stage;
    uint16_t bucket;
    uint32_t n;
} hnd_tally_t;
#define HND_RTALLY_MAX 8
#define HND_RREASON_MAX 40      /* a reason's bytes in its counter key */
typedef struct {
    char reason[HND_RREASON_MAX + 1];  /* as in KEYS_REJREASON */
    uint32_t n;
} hnd_rtally_t;

/* A lead's outcome (h_quality.c): won once it entered the funnel's last
 * stage, lost once it entered an exit (the latest such entry counts), open
 * until then. */
typedef enum {
    HND_OUTCOME_OPEN = 0,
    HND_OUTCOME_WON = 1,
    HND_OUTCOME_LOST = 2,
} hnd_outcome_t;

/* What the quality report counts of a lead; written by h_quality.c only. */
typedef struct {
    bool booked;                /* counted in the quality counters */
    hnd_outcome_t outcome;
    int64_t outcome_at_ms;      /* when it entered the outcome's stage */
    bool outcome_after_handoff; /* the lead had been handed off when it
                                   entered that stage */
    bool handed_off;            /* handed off at least once */
    int64_t handoff_at_ms;      /* its first handoff */
    char rule[HND_RULE_MAX];    /* the clause of its first handoff */
} hnd_quality_t;

typedef struct {
    char id[HND_ID_MAX + 1];
    int stage;                  /* index into defn_t.stages */
    int64_t stage_entered_at_ms;
    int64_t first_seen_ms;
    int64_t last_event_ms;
    double engagement;
    double fit;
    char persona[DEFN_NAME_MAX + 1];
    bool qualified;
    hnd_handoff_t handoff;
    int64_t handoff_at_ms;
    hnd_source_t first_source;
    uint64_t events;
    uint32_t skipped;           /* bit i: stage i was skipped over */
    uint32_t entered;           /* bit i: stage i was ever entered */
    uint32_t advanced;          /* bit i: the lead once left stage i for a
                                   later stage of the funnel order */
    uint64_t fit_mask;          /* bit i: fit rule i matches (derived from
                                   attrs by hnd_lead_loaded, not stored) */
    size_t n_attrs;
    hnd_attr_t attrs[HND_ATTRS_MAX];

    size_t n_ledger;            /* oldest first */
    hnd_ledger_t ledger[HND_LEDGER_MAX];
    hnd_carry_t older_fit;
    hnd_carry_t older_engagement;

    size_t n_counts;
    hnd_counter_t counts[HND_COUNTS_MAX];

    uint32_t handoffs_sent, handoffs_accepted, handoffs_rejected;
    uint32_t handoffs_recycled, handoffs_requalified;
    size_t n_handoffs;          /* oldest first */
    hnd_handoff_rec_t handoffs[HND_HANDOFFS_MAX];

    size_t n_pchanges;          /* oldest first */
    hnd_pchange_t pchanges[HND_PCHANGES_MAX];

    bool stalled;               /* flagged stalled in its current stay */
    bool sla_breached;          /* its pending handoff is past the SLA */
    uint32_t frictions;         /* friction points ever flagged */
    size_t n_friction;          /* oldest first */
    hnd_friction_t friction[HND_FRICTION_MAX];

    size_t n_tally;             /* its friction counters (above) */
    hnd_tally_t tally[HND_TALLY_MAX];
    size_t n_rtally;
    hnd_rtally_t rtally[HND_RTALLY_MAX];

    hnd_quality_t quality;
} hnd_lead_t;

/* An alert raised by a handler. The daemon fills in the lead snapshot
 * (unless no_lead), stores it and publishes it on `topic` after the change
 * is committed. */
#define HND_REASONS_MAX 8
#define HND_REASON_LEN 160
typedef struct {
    char kind[32];
    char topic[48];
    int stage;                  /* stage concerned, -1 for none */
    int from_stage;             /* for stage changes, -1 for none */
    int64_t at_ms;              /* event time the alert refers to; 0: the
                                   event's (for a fired deadline: set to
                                   the due time) */
    bool no_lead;               /* carries no lead snapshot (Alert.lead): the
                                   "stage" alert of nearly every event,
                                   whose subscribers have lead_id, stage
                                   and from_stage, and `lead` for the rest */
    size_t n_reasons;
    char reasons[HND_REASONS_MAX][HND_REASON_LEN];
} hnd_alert_t;

/* A change to one report counter (its key built by keys.h). The
 * daemon sums the deltas of a group commit and applies them to the
 * aggregates database. */
#define HND_COUNTER_KEY_MAX 200  /* KEYS_KEY_MAX: a group prefix, a counter, a stage */
typedef struct {
    char key[HND_COUNTER_KEY_MAX];
    int64_t delta;
    uint32_t hash;              /* of key, 32-bit FNV-1a: merges deltas
                                   cheaply, and the store reuses it */
} hnd_delta_t;

/* A deadline of the lead (e.g. "stall" when it has stayed too long in a
 * stage, "sla" when sales has not answered a handoff). The daemon keeps
 * them in LMDB ordered by due time, written in the same transaction as the
 * lead, and calls pipeline_deadline() when one falls due (daemon time:
 * wall clock, or the event-time watermark with --clock event). A lead has
 * at most one deadline per kind: setting one replaces the previous one of
 * that kind; clearing removes it (a no-op when there is none). */
#define HND_DEADLINE_KIND_MAX 15
typedef struct {
    char kind[HND_DEADLINE_KIND_MAX + 1];
    int64_t due_ms;             /* when it falls due; ignored by a clear */
    bool clear;                 /* true: remove the lead's deadline of kind */
} hnd_deadline_t;

/* Membership of the lead in a named set (keys_mark_stalled): the
 * daemon keeps sets in LMDB (set name, NUL, lead id -> since_ms) so that a
 * report can list a set's leads without scanning all leads. */
#define HND_MARK_SET_MAX 95
typedef struct {
    char set[HND_MARK_SET_MAX + 1];
    bool on;                    /* true: add (or refresh), false: remove */
    int64_t since_ms;           /* with on: the time stored with the mark */
} hnd_mark_t;

/* A counter key prefix ("" or a group prefix of keys.h, at most
 * HND_PREFIX_MAX - 1 bytes) with its length and the FNV-1a 32 hash of its
 * bytes, so that the keys counted under it (hnd_count_under) hash only
 * their own bytes. */
#define HND_PREFIX_MAX 96       /* KEYS_PREFIX_MAX */
typedef struct {
    char s[HND_PREFIX_MAX];
    size_t len;
    uint32_t hash;
} hnd_prefix_t;

/* Set p to the prefix s (truncated to HND_PREFIX_MAX - 1 bytes); returns
 * p. */
hnd_prefix_t *hnd_prefix_set(hnd_prefix_t *p, const char *s);
/* The empty prefix: funnel-wide counters. */
extern const hnd_prefix_t hnd_prefix_none;

#define HND_ALERTS_MAX 8
/* The worst event: a persona change moves every counter of the lead
 * (about 40 per group, and its tally of up to 72) out of one group and
 * into another, on top of the event's own (about 100). */
#define HND_DELTAS_MAX 512
#define HND_DELTA_SLOTS 1024     /* a power of two, 2 * HND_DELTAS_MAX */
#define HND_DELTA_SLOTS_FIRST 256 /* in use after a reset: most events
                                   have fewer than half as many deltas */
#define HND_DEADLINES_MAX 8
#define HND_MARKS_MAX 8
/* What one event (or a fired deadline) did besides changing the lead.
 * Reset by the pipeline for every event. */
typedef struct {
    bool is_new;                /* the lead was created by this event */
    int prev_stage;             /* the lead's stage before the event */
    size_t n_alerts;
    hnd_alert_t alerts[HND_ALERTS_MAX];
    size_t n_deltas;
    hnd_delta_t deltas[HND_DELTAS_MAX];
    uint32_t delta_slot[HND_DELTA_SLOTS]; /* htab.h index of deltas: its
                                   first delta_cap slots are in use */
    size_t delta_cap;           /* a power of two; 0 for HND_DELTA_SLOTS
                                   (a zeroed fx is empty). hnd_effects_reset
                                   clears only HND_DELTA_SLOTS_FIRST slots;
                                   the index grows when half full */
    size_t n_deadlines;
    hnd_deadline_t deadlines[HND_DEADLINES_MAX];
    size_t n_marks;
    hnd_mark_t marks[HND_MARKS_MAX];
    /* The lead's group prefixes (hnd_group), built once per event: bit
     * i of group_ok says group[i] (keys_by_t i) holds the prefix of
     * group_persona, group_source or group_first_seen_ms. */
    unsigned group_ok;
    hnd_prefix_t group[3];
    hnd_source_t group_source;
    int64_t group_first_seen_ms;
} hnd_effects_t;

/* Empty fx's alerts, deltas, deadlines and marks (not is_new and
 * prev_stage): what the pipeline does before an event. fx may hold
 * anything before. Clears only the part of the delta index the next
 * event uses first, not the whole of it. */
void hnd_effects_reset(hnd_effects_t *fx);

/* Set (replace) the lead's deadline of kind, due at due_ms; or clear it.
 * Later calls for the same kind within one event win. */
void hnd_deadline_set(hnd_effects_t *fx, const char *kind, int64_t due_ms);
void hnd_deadline_clear(hnd_effects_t *fx, const char *kind);

/* Put the lead in (on) or take it out of the set named set (keys.h). */
void hnd_mark(hnd_effects_t *fx, bool on, int64_t since_ms, const char *set);

/* A handler: one concern of the domain. `apply` updates `lead` for `ev`
 * under definition `d` and appends its effects to `fx`. Returns 0, or -1
 * when the event cannot be applied (the pipeline stops; nothing is kept). */
typedef int hnd_apply_fn(const hnd_event_t *ev, const defn_t *d,
                         hnd_lead_t *lead, hnd_effects_t *fx);

typedef struct {
    const char *name;
    hnd_apply_fn *apply;
} hnd_t;

/* Append an alert to fx; returns it for the reasons to be filled, or NULL
 * when fx is full (the alert is dropped and the caller carries on). */
hnd_alert_t *hnd_alert_add(hnd_effects_t *fx, const char *kind,
                           const char *topic, int stage, int from_stage);
/* Append a printf-formatted reason to an alert (truncated to fit). */
void hnd_alert_reason(hnd_alert_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append the reason a b c d (NULLs skipped, truncated to fit) to an
 * alert: hnd_alert_reason's "%s%s%s%s" without printf, for alerts raised
 * by nearly every event. */
void hnd_alert_reason_join(hnd_alert_t *al, const char *a, const char *b,
                           const char *c, const char *d);
/* buf = a b c d (NULLs skipped), truncated to fit cap. Returns buf. For
 * ledger rules built per event, where printf costs. */
char *hnd_join(char *buf, size_t cap, const char *a, const char *b,
               const char *c, const char *d);

/* Add delta to the counter named key (built with keys.h). */
void hnd_count(hnd_effects_t *fx, int64_t delta, const char *key);
/* Add delta to the counter named pre->s + key (what hnd_count of the
 * joined key does, the key truncated to HND_COUNTER_KEY_MAX - 1 bytes in
 * all), hashing only key's bytes. */
void hnd_count_under(hnd_effects_t *fx, int64_t delta, const hnd_prefix_t *pre,
                     const char *key);

/* Set attribute key=value on the lead (overwrite, or append while there is
 * room). Returns 0, or -1 when the lead already holds HND_ATTRS_MAX other
 * attributes. */
int hnd_lead_set_attr(hnd_lead_t *lead, const char *key, const char *value);
/* Borrowed pointer to the value of key, or NULL. */
const char *hnd_lead_attr(const hnd_lead_t *lead, const char *key);

/* defn_type(d, ev->type), as pipeline_apply looked it up for the event
 * (or looked up now when ev was not prepared under d). */
static inline const defn_type_t *hnd_event_type(const hnd_event_t *ev, const defn_t *d)
{
    return ev->type_defn == d && d ? ev->type_def : defn_type(d, ev->type);
}

/* Whether type is one of the definition's handoff answers (accepted,
 * rejected, recycled, requalify). */
bool hnd_is_answer(const defn_t *d, const char *type);

/* Initialise a new lead for its first event (stage set by the pipeline). */
void hnd_lead_init(hnd_lead_t *lead, const hnd_event_t *ev);

/* Derive what a stored lead does not keep (the fit rules its attributes
 * match under d). Called by whoever decodes a stored lead, before the
 * pipeline runs on it. */
void hnd_lead_loaded(const defn_t *d, hnd_lead_t *lead);

/* Whether the lead satisfies condition c (attribute tests on its
 * attributes, counter tests on its behaviour counters). */
bool hnd_cond_match(const defn_cond_t *c, const hnd_lead_t *lead);

/* The lead's count of events of `type` (0 when not counted). */
uint32_t hnd_lead_count(const hnd_lead_t *lead, const char *type);

/* Engagement decay factor over dt_ms under d's half-life (1 for dt <= 0). */
double hnd_decay(const defn_t *d, int64_t dt_ms);

/* The current value of a ledger entry or a carry-over, as of the lead's
 * last event time (the time lead->engagement refers to). */
double hnd_ledger_value(const defn_t *d, const hnd_lead_t *lead,
                        const hnd_ledger_t *e);
double hnd_carry_value(const defn_t *d, const hnd_lead_t *lead,
                       hnd_ledger_kind_t kind);

/* Decay at the time of reading: the time a lead's scores are shown as of
 * (at_ms, but never before its last event, which is what the stored
 * engagement refers to), and its engagement, a ledger entry's and a
 * carry-over's value as of that time. Qualification is decided at events
 * (h_qualify.c); these only say what the scores are worth when read. */
int64_t hnd_scores_as_of(const hnd_lead_t *lead, int64_t at_ms);
double hnd_engagement_at(const defn_t *d, const hnd_lead_t *lead, int64_t at_ms);
double hnd_ledger_value_at(const defn_t *d, const hnd_lead_t *lead,
                           const hnd_ledger_t *e, int64_t at_ms);
double hnd_carry_value_at(const defn_t *d, const hnd_lead_t *lead,
                          hnd_ledger_kind_t kind, int64_t at_ms);

/* Record a score change in the ledger; when it is full the oldest entry
 * moves into its kind's carry-over, valued as of ref_ms (the time the
 * lead's engagement refers to after this event). `rule` is copied. */
void hnd_ledger_add(const defn_t *d, hnd_lead_t *lead, hnd_ledger_kind_t kind,
                    const char *rule, const hnd_event_t *ev, int64_t at_ms,
                    double points, int64_t ref_ms);

/* A ledger tap: called with every entry hnd_ledger_add books in the
 * calling thread while it is set (fn NULL: none), before the lead's
 * bounded ledger may drop older entries. For replays that want every score
 * change of a lead (replay.c). The entry is borrowed for the call. */
typedef void hnd_ledger_tap_fn(const hnd_ledger_t *e, void *arg);
void hnd_ledger_tap(hnd_ledger_tap_fn *fn, void *arg);

/* The ISO week of a time, "2026-W48" (out holds at least 12 bytes). */
char *hnd_iso_week(int64_t ms, char *out);

/* The report group names of a lead: persona ("-" for none), first source,
 * cohort. */
#define HND_GROUP_NONE "-"
const char *hnd_persona_group(const char *persona);

/* Add delta to the funnel-wide counter `key` and to its copies per group
 * of the lead, by persona, first source and cohort (keys_in_group; the
 * persona as the lead has it now). */
void hnd_count_all(hnd_effects_t *fx, const hnd_lead_t *lead, int64_t delta,
                   const char *key);

/* Add delta to the funnel-wide counter `key` and to its copies per
 * persona and per source of the lead (keys_in_group). */
void hnd_count_groups(hnd_effects_t *fx, const hnd_lead_t *lead, int64_t delta,
                      const char *key);

/* The prefix of the lead's group of breakdown by (a keys_by_t: persona
 * as the lead has it now, first source, cohort), "by/<dim>/<name>/":
 * kept in fx, built again only when that group of the lead changed since
 * (fx reset by hnd_effects_reset or zeroed). Borrowed from fx. */
const hnd_prefix_t *hnd_group(hnd_effects_t *fx, const hnd_lead_t *lead, int by);

/* Add delta to the copy of counter `key` in the lead's group of one
 * breakdown only (by: a keys_by_t). */
void hnd_count_in(hnd_effects_t *fx, const hnd_lead_t *lead, int by,
                  int64_t delta, const char *key);

/* The counter key of a tally entry (KEYS_STALLS/<stage>, keys_dwell, ...)
 * under definition d, into buf: what h_friction.c booked it as. NULL when
 * d has no such stage. */
char *hnd_tally_key(const defn_t *d, const hnd_tally_t *t, char *buf,
                    size_t cap);

/* A duration for people, at most two units: "15d 2h", "3h 20m", "45s",
 * "250ms". Writes to buf[size], returns buf. */
char *hnd_duration_text(int64_t ms, char *buf, size_t size);

/* A time as an RFC 3339 UTC date and time to the second,
 * "2026-11-26T10:00:00Z" (out holds at least 24 bytes). */
char *hnd_time_text(int64_t ms, char *out);

#endif
