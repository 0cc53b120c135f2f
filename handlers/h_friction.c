/* h_friction.c: friction points, the places where leads get stuck.
 *
 * Kinds (each an alert on "friction.<kind>" with Alert.kind = <kind>, an
 * entry in the lead's friction history and report counters):
 * - stall: a lead stayed in a stage at least its max_dwell. Entering a
 *   stage with a max_dwell sets the lead's keys_deadline_stall deadline
 *   (entry time + max_dwell); leaving clears it. When the deadline falls
 *   due the lead is flagged stalled for the rest of its stay and put in the
 *   stage's set (keys_mark_stalled). A lead that leaves a stage after max_dwell without
 *   having been flagged (its deadline and its move fell in the same group,
 *   or the daemon was down) is flagged as it leaves, so a stay is alerted
 *   exactly once whatever the timing of deadlines, and a backfill gives the
 *   same stalls however it is batched.
 * - handoff_sla: a pending handoff got no answer within handoff.sla. Same
 *   pattern: the keys_deadline_sla deadline is set when a handoff becomes
 *   pending and cleared by the answer; the lead is in the set keys_mark_sla
 *   from the
 *   breach until the answer; an answer after the SLA that was not flagged
 *   yet is flagged as it arrives.
 * - regression: a lead moved backwards (recycled after a rejection,
 *   reopened deal); raised by h_stage_move.
 * - handoff_rejected: sales rejected a handoff (h_handoff.c), with its
 *   reason.
 * - conversion (and conversion_recovered): a stage's conversion over the
 *   rolling window crossed its conversion_target (h_friction_check, run by
 *   pipeline_funnel_check).
 *
 * Counters (keys.h; funnel-wide, and per persona, source and cohort):
 *   KEYS_STALLS        stays flagged stalled in the stage, ever
 *   KEYS_STALLED       leads stalled in the stage now
 *   KEYS_SLA_BREACHES  handoffs answered late or not at all
 *   KEYS_SLA_WAITING   handoffs waiting past the SLA now
 *   KEYS_REGRESSIONS   moves back out of the stage
 *   KEYS_REJECTIONS    rejections of leads in the stage
 *   KEYS_REJREASON     rejections per reason (first 40 bytes)
 *   keys_dwell         completed stays, log-scale (dwell.h)
 *   KEYS_DROPPED       stays that ended in an exit (lost)
 * and funnel-wide only, for the conversion check, in event-time days
 * (days since 1970-01-01). They are rolling-window counters
 * (keys_is_rolling): which buckets exist depends on when the checks ran,
 * so `funneld --rebuild` leaves them out of its comparison:
 *   keys_conv          entries into the stage that day, and moves from it
 *                      to a later stage that day
 *   keys_conv_below    1 while below target (crossings only)
 *   keys_conv_day, keys_conv_expired   the last day checked; the first day
 *                      whose buckets are still kept
 * One attribution rule for the persona breakdown: every counter follows
 * the lead's persona now. The gauges (KEYS_STALLED, KEYS_SLA_WAITING) are
 * moved by h_persona.c from what the lead is; the totals (stalls, stays,
 * drops, regressions, rejections and their reasons, SLA breaches) are
 * tallied on the lead as they are booked (s_book), and h_persona.c moves
 * its tally, so that a `friction --by persona` table counts every column
 * of a lead under the persona it has now, as `funnel --by persona` does.
 */
#include "pipeline.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dwell.h"
#include "keys.h"
#include "timetext.h"

#define S_DAY_MS TIMETEXT_DAY_MS
#define S_EXPIRE_BACK 400       /* days looked back for buckets at first */
#define S_EXPIRE_STEPS 500      /* days expired per check, at most */
#define S_REASON_KEY_MAX HND_RREASON_MAX

static int64_t s_day(int64_t ms)
{
    return timetext_days_of_ms(ms);
}

/* Count one more of tally kind (stage, bucket) on the lead: the entry
 * h_persona.c moves with it. Full: not tallied (see hnd.h). */
static void s_tally(hnd_lead_t *lead, hnd_tally_kind_t kind, int stage, int bucket)
{
    uint8_t st = stage < 0 || stage >= HND_TALLY_NO_STAGE ? HND_TALLY_NO_STAGE
                                                         : (uint8_t)stage;
    for (size_t i = 0; i < lead->n_tally; i++) {
        hnd_tally_t *t = &lead->tally[i];
        if (t->kind == kind && t->stage == st && t->bucket == bucket) {
            t->n++;
            return;
        }
    }
    if (lead->n_tally == HND_TALLY_MAX)
        return;
    hnd_tally_t *t = &lead->tally[lead->n_tally++];
    t->kind = (uint8_t)kind;
    t->stage = st;
    t->bucket = (uint16_t)bucket;
    t->n = 1;
}

/* Book one friction total of the lead under key: funnel-wide, in its
 * source, cohort and persona groups, and in its tally (kind, stage,
 * bucket), by which h_persona.c moves the persona group's count when the
 * persona changes. */
static void s_book(hnd_lead_t *lead, hnd_effects_t *fx, hnd_tally_kind_t kind,
                   int stage, int bucket, const char *key)
{
    hnd_count(fx, 1, key);
    hnd_count_in(fx, lead, KEYS_BY_SOURCE, 1, key);
    hnd_count_in(fx, lead, KEYS_BY_COHORT, 1, key);
    hnd_count_in(fx, lead, KEYS_BY_PERSONA, 1, key);
    s_tally(lead, kind, stage, bucket);
}

/* The same for a rejection reason (its key's reason part, at most
 * HND_RREASON_MAX bytes). */
static void s_book_reason(hnd_lead_t *lead, hnd_effects_t *fx, const char *reason,
                          const char *key)
{
    hnd_count(fx, 1, key);
    hnd_count_in(fx, lead, KEYS_BY_SOURCE, 1, key);
    hnd_count_in(fx, lead, KEYS_BY_COHORT, 1, key);
    hnd_count_in(fx, lead, KEYS_BY_PERSONA, 1, key);
    for (size_t i = 0; i < lead->n_rtally; i++)
        if (strcmp(lead->rtally[i].reason, reason) == 0) {
            lead->rtally[i].n++;
            return;
        }
    if (lead->n_rtally == HND_RTALLY_MAX)
        return;
    hnd_rtally_t *r = &lead->rtally[lead->n_rtally++];
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    r->n = 1;
}

void h_friction_note(hnd_lead_t *lead, const char *kind, int stage,
                     int64_t at_ms, int64_t duration_ms, const char *fmt, ...)
{
    if (lead->n_friction == HND_FRICTION_MAX) {
        memmove(&lead->friction[0], &lead->friction[1],
                (HND_FRICTION_MAX - 1) * sizeof lead->friction[0]);
        lead->n_friction--;
    }
    hnd_friction_t *f = &lead->friction[lead->n_friction++];
    memset(f, 0, sizeof *f);
    snprintf(f->kind, sizeof f->kind, "%s", kind);
    f->stage = stage;
    f->at_ms = at_ms;
    f->duration_ms = duration_ms;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
    lead->frictions++;
}

/* Flag the lead's current stay as stalled, at time at after dwell ms in
 * the stage. late: noticed as the lead leaves (no gauge, no mark). */
static void s_stall(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                    int64_t at, int64_t dwell, bool late)
{
    const defn_stage_t *st = &d->stages[lead->stage];
    char dw[32], lim[32], since[24], key[HND_COUNTER_KEY_MAX];
    char set[HND_MARK_SET_MAX + 1];
    hnd_duration_text(dwell, dw, sizeof dw);
    hnd_duration_text(st->max_dwell_ms, lim, sizeof lim);
    hnd_time_text(lead->stage_entered_at_ms, since);

    s_book(lead, fx, HND_TALLY_STALL, lead->stage, 0,
           keys_counter(key, sizeof key, "", KEYS_STALLS, st->name));
    if (!late) {
        lead->stalled = true;
        hnd_count_all(fx, lead, 1, keys_counter(key, sizeof key, "",
                                                KEYS_STALLED, st->name));
        hnd_mark(fx, true, lead->stage_entered_at_ms,
                 keys_mark_stalled(set, sizeof set, st->name));
    }
    h_friction_note(lead, "stall", lead->stage, at, dwell,
                    "%s for %s (max_dwell %s)%s", st->name, dw, lim,
                    late ? ", noticed as it left" : "");
    hnd_alert_t *a = hnd_alert_add(fx, "stall", "friction.stall", lead->stage, -1);
    if (a)
        a->at_ms = at;
    hnd_alert_reason(a, "stalled in %s: %s there, max_dwell %s", st->name, dw,
                     lim);
    hnd_alert_reason(a, "in %s since %s", st->name, since);
    if (late)
        hnd_alert_reason(a, "noticed as the lead left %s", st->name);
}

/* Flag the lead's pending handoff as past its SLA. */
static void s_sla(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                  int64_t sent, int64_t at, bool late)
{
    char wait[32], sla[32], since[24];
    hnd_duration_text(at - sent, wait, sizeof wait);
    hnd_duration_text(d->handoff_sla_ms, sla, sizeof sla);
    hnd_time_text(sent, since);

    s_book(lead, fx, HND_TALLY_SLA, -1, 0, keys_name(KEYS_SLA_BREACHES));
    if (!late) {
        lead->sla_breached = true;
        hnd_count_all(fx, lead, 1, keys_name(KEYS_SLA_WAITING));
        hnd_mark(fx, true, sent, keys_mark_sla);
    }
    h_friction_note(lead, "handoff_sla", lead->stage, at, at - sent,
                    "no answer from sales for %s (SLA %s)%s", wait, sla,
                    late ? ", answered late" : "");
    hnd_alert_t *a = hnd_alert_add(fx, "handoff_sla", "friction.handoff_sla",
                                   lead->stage, -1);
    if (a)
        a->at_ms = at;
    hnd_alert_reason(a, "handoff waited %s for an answer from sales, SLA %s",
                     wait, sla);
    hnd_alert_reason(a, "handed off at %s", since);
    if (late)
        hnd_alert_reason(a, "noticed as the late answer arrived");
}

void h_friction_leave(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                      int to, int64_t t)
{
    int from = lead->stage;
    const defn_stage_t *st = &d->stages[from];
    char key[HND_COUNTER_KEY_MAX], set[HND_MARK_SET_MAX + 1];
    int64_t dwell = t - lead->stage_entered_at_ms;
    if (dwell < 0)
        dwell = 0;

    if (!st->terminal) {
        int bucket = dwell_bucket(dwell);
        s_book(lead, fx, HND_TALLY_DWELL, from, bucket,
               keys_dwell(key, sizeof key, "", st->name, bucket));
        if ((size_t)to >= d->n_order)
            s_book(lead, fx, HND_TALLY_DROPPED, from, 0,
                   keys_counter(key, sizeof key, "", KEYS_DROPPED, st->name));
        if (st->conversion_target > 0 && (size_t)to < d->n_order && to > from)
            hnd_count(fx, 1, keys_conv(key, sizeof key, st->name, true, s_day(t)));
    }
    if (st->max_dwell_ms > 0 && !lead->stalled && dwell >= st->max_dwell_ms)
        s_stall(d, lead, fx, t, dwell, true);
    if (lead->stalled) {
        hnd_count_all(fx, lead, -1, keys_counter(key, sizeof key, "",
                                                 KEYS_STALLED, st->name));
        hnd_mark(fx, false, 0, keys_mark_stalled(set, sizeof set, st->name));
        lead->stalled = false;
    }
}

void h_friction_enter(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                      int64_t t)
{
    const defn_stage_t *st = &d->stages[lead->stage];
    char key[HND_COUNTER_KEY_MAX];
    lead->stalled = false;
    if (st->max_dwell_ms > 0 && !st->terminal)
        hnd_deadline_set(fx, keys_deadline_stall, t + st->max_dwell_ms);
    else
        hnd_deadline_clear(fx, keys_deadline_stall);
    if (st->conversion_target > 0)
        hnd_count(fx, 1, keys_conv(key, sizeof key, st->name, false, s_day(t)));
}

void h_friction_regression(const defn_t *d, hnd_lead_t *lead,
                           hnd_effects_t *fx, int from, int to, int64_t t)
{
    char key[HND_COUNTER_KEY_MAX];
    s_book(lead, fx, HND_TALLY_REGRESSION, from, 0,
           keys_counter(key, sizeof key, "", KEYS_REGRESSIONS, d->stages[from].name));
    h_friction_note(lead, "regression", to, t, 0, "%s -> %s",
                    d->stages[from].name, d->stages[to].name);
}

void h_friction_handoff_sent(const defn_t *d, hnd_lead_t *lead,
                             hnd_effects_t *fx, int64_t t)
{
    if (lead->sla_breached) {   /* a handoff replaced without an answer */
        hnd_count_all(fx, lead, -1, keys_name(KEYS_SLA_WAITING));
        lead->sla_breached = false;
    }
    hnd_deadline_set(fx, keys_deadline_sla, t + d->handoff_sla_ms);
}

void h_friction_answered(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                         int64_t sent, int64_t t)
{
    hnd_deadline_clear(fx, keys_deadline_sla);
    if (lead->sla_breached) {
        hnd_count_all(fx, lead, -1, keys_name(KEYS_SLA_WAITING));
        hnd_mark(fx, false, 0, keys_mark_sla);
        lead->sla_breached = false;
    } else if (t - sent >= d->handoff_sla_ms) {
        s_sla(d, lead, fx, sent, t, true);
    }
}

void h_friction_rejected(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                         const char *reason, int64_t t)
{
    char key[S_REASON_KEY_MAX + 1], buf[HND_COUNTER_KEY_MAX];
    size_t n = strlen(reason);
    if (n > S_REASON_KEY_MAX) {
        n = S_REASON_KEY_MAX;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;            /* never cut a UTF-8 sequence */
    }
    memcpy(key, reason, n);
    key[n] = '\0';
    const char *stage = lead->stage >= 0 ? d->stages[lead->stage].name : "-";
    s_book(lead, fx, HND_TALLY_REJECTION, lead->stage, 0,
           keys_counter(buf, sizeof buf, "", KEYS_REJECTIONS, stage));
    const char *why = n ? key : "(no reason)";
    s_book_reason(lead, fx, why, keys_counter(buf, sizeof buf, "", KEYS_REJREASON, why));
    h_friction_note(lead, "handoff_rejected", lead->stage, t, 0, "%s",
                    reason[0] ? reason : "(no reason)");
}

/* -- deadlines --------------------------------------------------------- */

int h_friction_deadline(const defn_t *d, hnd_lead_t *lead, const char *kind,
                        int64_t due_ms, int64_t now_ms, hnd_effects_t *fx)
{
    (void)due_ms;
    if (lead->stage < 0 || (size_t)lead->stage >= d->n_stages)
        return 0;

    /* The deadline is re-derived from the lead under the definition in
     * use, so a reloaded definition or a stale deadline never misfires. */
    if (strcmp(kind, keys_deadline_stall) == 0) {
        const defn_stage_t *st = &d->stages[lead->stage];
        if (st->max_dwell_ms <= 0 || st->terminal || lead->stalled)
            return 0;
        int64_t due = lead->stage_entered_at_ms + st->max_dwell_ms;
        if (due > now_ms) {
            hnd_deadline_set(fx, keys_deadline_stall, due);
            return 0;
        }
        s_stall(d, lead, fx, due, st->max_dwell_ms, false);
    } else if (strcmp(kind, keys_deadline_sla) == 0) {
        if (lead->handoff != HND_HANDOFF_PENDING || lead->sla_breached)
            return 0;
        int64_t due = lead->handoff_at_ms + d->handoff_sla_ms;
        if (due > now_ms) {
            hnd_deadline_set(fx, keys_deadline_sla, due);
            return 0;
        }
        s_sla(d, lead, fx, lead->handoff_at_ms, due, false);
    }
    return 0;
}

/* -- the conversion check ---------------------------------------------- */

/* The stage's day bucket (out: moves on, else entries). */
static int64_t s_get_conv(pipeline_counter_fn *get, void *arg,
                          const char *stage, bool out, int64_t day)
{
    char key[HND_COUNTER_KEY_MAX];
    return get(keys_conv(key, sizeof key, stage, out, day), arg);
}

/* Entries into stage s and moves on from it over days [first, last]. */
static void s_window(const defn_stage_t *st, int64_t first, int64_t last,
                     pipeline_counter_fn *get, void *arg, int64_t *in,
                     int64_t *out)
{
    *in = *out = 0;
    for (int64_t day = first; day <= last; day++) {
        *in += s_get_conv(get, arg, st->name, false, day);
        *out += s_get_conv(get, arg, st->name, true, day);
    }
}

void h_friction_window(const defn_t *d, int stage, int64_t today,
                       pipeline_counter_fn *get, void *arg, int64_t *in,
                       int64_t *out)
{
    int64_t days = d->conversion_window_ms / S_DAY_MS;
    if (days < 1)
        days = 1;
    s_window(&d->stages[stage], today - days + 1, today, get, arg, in, out);
}

/* Contract in pipeline.h (pipeline_funnel_check). Moves the checked day
 * forward (never back), expires the day buckets that left the window (a
 * bounded number per call, within what fx holds), then alerts on each
 * stage whose window conversion crossed its target, with min_sample
 * entries at least; keys_conv_below remembers the side. */
void h_friction_check(const defn_t *d, int64_t now_ms,
                      pipeline_counter_fn *get, void *arg, hnd_effects_t *fx)
{
    size_t n_target = 0;
    for (size_t s = 0; s < d->n_stages; s++)
        if (d->stages[s].conversion_target > 0)
            n_target++;
    if (n_target == 0)
        return;

    /* The day being checked never moves back (a wall clock set back). */
    int64_t today = s_day(now_ms);
    int64_t was = get(keys_conv_day, arg);
    if (today > was)
        hnd_count(fx, today - was, keys_conv_day);
    else
        today = was;
    int64_t days = d->conversion_window_ms / S_DAY_MS;
    if (days < 1)
        days = 1;
    int64_t first = today - days + 1;

    /* Drop the day buckets that left the window, a bounded number of days
     * per check (and as many as the effects hold). */
    int64_t kept = get(keys_conv_expired, arg);
    char key[HND_COUNTER_KEY_MAX];
    int64_t e = kept ? kept : first - S_EXPIRE_BACK;
    for (int steps = 0; e < first && steps < S_EXPIRE_STEPS &&
                        fx->n_deltas + 2 * n_target + 2 < HND_DELTAS_MAX;
         steps++, e++)
        for (size_t s = 0; s < d->n_stages; s++) {
            const defn_stage_t *st = &d->stages[s];
            if (st->conversion_target <= 0)
                continue;
            for (int out = 0; out < 2; out++) {
                keys_conv(key, sizeof key, st->name, out, e);
                int64_t v = get(key, arg);
                if (v)
                    hnd_count(fx, -v, key);
            }
        }
    if (e != kept)
        hnd_count(fx, e - kept, keys_conv_expired);

    for (size_t s = 0; s < d->n_stages; s++) {
        const defn_stage_t *st = &d->stages[s];
        if (st->conversion_target <= 0)
            continue;
        int64_t in, out;
        s_window(st, first, today, get, arg, &in, &out);
        bool prev = get(keys_conv_below(key, sizeof key, st->name), arg) > 0;
        if (in < (int64_t)d->min_sample)
            continue;           /* too few to tell: the state stands */
        double conv = (double)out / (double)in;
        bool below = conv < st->conversion_target;
        if (below == prev)
            continue;
        hnd_count(fx, below ? 1 : -1, keys_conv_below(key, sizeof key, st->name));
        if (!below && !d->alert_recovery)
            continue;
        hnd_alert_t *a = below
            ? hnd_alert_add(fx, "conversion", "friction.conversion", (int)s, -1)
            : hnd_alert_add(fx, "conversion_recovered",
                            "friction.conversion_recovered", (int)s, -1);
        if (a)
            a->at_ms = now_ms;
        char win[32];
        hnd_duration_text(days * S_DAY_MS, win, sizeof win);
        hnd_alert_reason(a, "%s: conversion %.1f%% (%" PRId64 " of %" PRId64
                         " entries moved on) over the last %s, %s target "
                         "%.1f%%", st->name, 100.0 * conv, out, in, win,
                         below ? "below" : "back at or above",
                         100.0 * st->conversion_target);
    }
}
