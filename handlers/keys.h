/* keys.h: the names of funneld's report counters, mark sets and deadline
 * kinds, built and parsed here only.
 *
 * The handlers write report counters (hnd_count_*), the reports read them
 * (report.c) and the store keeps them by name; all three agree on a name
 * through these functions, so no other file spells a key. Layout (what is
 * on disk; it never changes without a migration):
 *
 *   [group]<counter>                  a counter, funnel-wide ([group] "")
 *                                     or of one group of leads
 *   by/<dim>/<name>/                  group: dim persona, source or cohort;
 *                                     name "-" for none (HND_GROUP_NONE)
 *   leads, handoffs, handoffs/accepted, handoffs/rejected,
 *   handoffs/recycled, handoffs/requalified,
 *   now/<stage>, entered/<stage>, advanced/<stage>      (h_stage, h_handoff)
 *   dropped/<stage>, friction/stall/<stage>, stalled/<stage>,
 *   friction/regression/<stage>, friction/handoff_rejected/<stage>,
 *   friction/handoff_sla, sla/waiting, rejreason/<reason>,
 *   dwell/<stage>/<bucket, 3 digits>                    (h_friction)
 *   quality/handed_off, quality/won, quality/lost, quality/before,
 *   quality/open/<day, 6 digits>, quality/to_won/<bucket, 3 digits>,
 *   quality/all/won, quality/all/lost, quality/all/open/<day> (h_quality)
 *   by/clause/<label>/quality/...   the handed-off leads' counters per
 *                                   clause of their first handoff
 *   ~conv/<stage>/in/<day, 6 digits>, ~conv/<stage>/out/<day>,
 *   ~conv/below/<stage>, ~conv/day, ~conv/expired       (funnel-wide only)
 *
 * A key beginning with '~' is a rolling-window counter (keys_is_rolling).
 * Mark sets: "stalled/<stage>" and "sla_breached"; deadline kinds "stall"
 * and "sla".
 *
 * Every builder writes into the caller's buffer, truncating to fit (the
 * result is always NUL-terminated), and returns it: no allocation, no
 * printf, since an event builds about fifty keys. Pure, thread-safe.
 */
#ifndef FUNNELD_KEYS_H
#define FUNNELD_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A counter's name within its group. With a stage ("now/<stage>"), or
 * without (the stage argument is then ignored). */
typedef enum {
    KEYS_LEADS,              /* leads */
    KEYS_HANDOFFS,           /* handoffs (sent) */
    KEYS_HANDOFFS_ACCEPTED,  /* handoffs/accepted */
    KEYS_HANDOFFS_REJECTED,  /* handoffs/rejected */
    KEYS_HANDOFFS_RECYCLED,  /* handoffs/recycled: given back, not rejected */
    KEYS_HANDOFFS_REQUALIFIED, /* handoffs/requalified: looked at again */
    KEYS_SLA_BREACHES,       /* friction/handoff_sla: answered late or never */
    KEYS_SLA_WAITING,        /* sla/waiting: waiting past the SLA now */
    KEYS_NOW,                /* now/<stage> */
    KEYS_ENTERED,            /* entered/<stage> */
    KEYS_ADVANCED,           /* advanced/<stage> */
    KEYS_DROPPED,            /* dropped/<stage> */
    KEYS_STALLS,             /* friction/stall/<stage> */
    KEYS_STALLED,            /* stalled/<stage> (now) */
    KEYS_REGRESSIONS,        /* friction/regression/<stage> */
    KEYS_REJECTIONS,         /* friction/handoff_rejected/<stage> */
    KEYS_REJREASON,          /* rejreason/<reason>: the reason as "stage" */
    /* Lead quality (h_quality.c): each lead counted once, in the class it
     * is in now. Handed-off leads: */
    KEYS_Q_HANDED,           /* quality/handed_off */
    KEYS_Q_WON,              /* quality/won: won after the first handoff */
    KEYS_Q_LOST,             /* quality/lost: lost after it */
    KEYS_Q_BEFORE,           /* quality/before: the outcome came first */
    KEYS_Q_OPEN,             /* quality/open/<day of the first handoff> */
    KEYS_Q_TO_WON,           /* quality/to_won/<bucket>: handoff to won */
    /* Every lead: */
    KEYS_Q_ALL_WON,          /* quality/all/won */
    KEYS_Q_ALL_LOST,         /* quality/all/lost */
    KEYS_Q_ALL_OPEN,         /* quality/all/open/<day of the first event> */
    KEYS_COUNTER_N
} keys_counter_t;

/* A breakdown of the leads into groups. */
typedef enum {
    KEYS_BY_PERSONA,
    KEYS_BY_SOURCE,
    KEYS_BY_COHORT,
    KEYS_BY_N
} keys_by_t;

/* Longest group prefix: "by/persona/" + a 63-byte name + "/". */
#define KEYS_PREFIX_MAX 96
/* Longest key built (HND_COUNTER_KEY_MAX is the same). */
#define KEYS_KEY_MAX 200

/* buf = prefix + the counter's name (+ "/" + stage when it has one).
 * prefix is "" or a group prefix (keys_group_prefix). */
char *keys_counter(char *buf, size_t cap, const char *prefix, keys_counter_t c,
                   const char *stage);

/* The funnel-wide key of a counter without a stage (KEYS_LEADS ...
 * KEYS_SLA_WAITING, KEYS_Q_HANDED ... KEYS_Q_BEFORE, KEYS_Q_ALL_WON,
 * KEYS_Q_ALL_LOST): a static string. */
const char *keys_name(keys_counter_t c);

/* buf = "by/<dim>/<name>/", the prefix of a group's counters. */
char *keys_group_prefix(char *buf, size_t cap, keys_by_t by, const char *name);
/* "by/<dim>/": the prefix under which every group of by is found. */
const char *keys_by_prefix(keys_by_t by);
/* The breakdown named dim ("persona", "source", "cohort"); -1 for none. */
int keys_by_parse(const char *dim);
/* buf = "by/<dim>/<name>/" + key: a funnel-wide counter key's copy in a
 * group. */
char *keys_in_group(char *buf, size_t cap, keys_by_t by, const char *name,
                    const char *key);
/* The group name a key found under keys_by_prefix(by) begins with: its
 * length (the name is key + strlen(keys_by_prefix(by))). */
size_t keys_group_name_len(const char *key, keys_by_t by);

/* buf = prefix + counter c (KEYS_Q_OPEN, KEYS_Q_TO_WON, KEYS_Q_ALL_OPEN)
 * + n in 6 digits (a day) or 3 (a bucket, dwell.h). With n < 0, only the
 * prefix under which every n is found. */
char *keys_quality(char *buf, size_t cap, const char *prefix, keys_counter_t c,
                   int64_t n);
/* buf = "by/clause/<label>/": the prefix of the quality counters of the
 * leads first handed off by that qualification clause (label truncated to
 * DEFN_NAME_MAX bytes, '/' replaced by '|'). */
char *keys_clause_prefix(char *buf, size_t cap, const char *label);
/* "by/clause/": the prefix under which every clause's group is found. */
extern const char keys_clause_prefix_all[];

/* dwell/<stage>/<bucket>: a completed stay's histogram bucket (dwell.h). */
char *keys_dwell(char *buf, size_t cap, const char *prefix, const char *stage,
                 int bucket);
/* buf = prefix + "dwell/<stage>/", the prefix of the stage's histogram. */
char *keys_dwell_prefix(char *buf, size_t cap, const char *prefix,
                        const char *stage);
/* The bucket of a key found under keys_dwell_prefix() (rest: the part
 * after that prefix); -1 when it is not a bucket number. */
int keys_dwell_bucket(const char *rest);

/* buf = prefix + "rejreason/": the prefix of the rejection reasons (the
 * reason is the rest of the key). */
char *keys_rejreason_prefix(char *buf, size_t cap, const char *prefix);

/* The conversion check's rolling-window counters (funnel-wide only). out:
 * moves on from the stage, else entries into it; day: days since
 * 1970-01-01 of event time. */
char *keys_conv(char *buf, size_t cap, const char *stage, bool out, int64_t day);
/* ~conv/below/<stage>: 1 while the stage is below its target. */
char *keys_conv_below(char *buf, size_t cap, const char *stage);
/* ~conv/day (the last day checked), ~conv/expired (the first day whose
 * buckets are kept). */
extern const char keys_conv_day[];
extern const char keys_conv_expired[];

/* Whether a counter key (len bytes, not necessarily NUL-terminated) is a
 * rolling-window counter: which of them exist depends on when the checks
 * ran, not only on the log, so `funneld --rebuild` does not compare them. */
bool keys_is_rolling(const void *key, size_t len);

/* Mark sets: "stalled/<stage>" (leads stalled in the stage now) and
 * "sla_breached" (handoffs waiting past the SLA). keys_stalled_prefix is
 * the prefix of every stalled set. */
char *keys_mark_stalled(char *buf, size_t cap, const char *stage);
extern const char keys_mark_sla[];
extern const char keys_stalled_prefix[];
/* The stage of a "stalled/<stage>" set; NULL for another set. */
const char *keys_mark_stage(const char *set);

/* Deadline kinds: a stay reaching max_dwell, a handoff reaching its SLA. */
extern const char keys_deadline_stall[];
extern const char keys_deadline_sla[];

#endif
