/* lab.h: a definition's scratch state in memory, for the definition lab
 * (funnelctl quality --draft, funnelctl backtest).
 *
 * A lab_t applies logged events under a definition of its own through the
 * same handlers as ingest (pipeline_apply, pipeline_deadline) and keeps
 * what ingest would have stored in the state (each lead's record, the
 * report counters, the marks, the pending deadlines) in memory, so that the
 * reports of handlers/report.c read it through a report_reader_t exactly
 * as they read the live state. Nothing is written to the store and no
 * alert is published.
 *
 * Time: a lab runs on event time. A deadline falls due when the events'
 * time passes it (before the event that passes it is applied), and
 * lab_finish() fires those due by the daemon's time; the "$deadline"
 * entries of the log (the live definition's deadlines) are passed over.
 *
 * On top of the state, a lab counts the handoffs it raised (alert topic
 * "handoff") per ISO week of their time, and which leads were handed off.
 *
 * Threading: a lab_t belongs to one thread (any thread: it uses only its
 * own buffers); lab_replay_log reads the store in that thread's own read
 * snapshots, one chunk of the log at a time.
 */
#ifndef FUNNELD_LAB_H
#define FUNNELD_LAB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "defn.h"
#include "funnel.pb-c.h"
#include "hnd.h"
#include "report.h"
#include "store.h"

typedef struct lab lab_t;

/* An empty scratch state under d with the handlers pipe (both borrowed:
 * they must outlive the lab). Caller owns it: lab_destroy(). */
lab_t *lab_new(const defn_t *d, const hnd_t *const *pipe);
void lab_destroy(lab_t **self_p);

/* The definition the lab applies. Borrowed. */
const defn_t *lab_defn(const lab_t *self);

/* Apply the logged event pb (log sequence seq; pointers borrowed for the
 * call), first firing the lab's deadlines due before its time. Returns 0,
 * or 1 when it was not applied (a handler refused it, or a "$deadline"
 * entry). */
int lab_apply(lab_t *self, const Funnel__V1__Event *pb, uint64_t seq);

/* Fire the deadlines due at or before now_ms (the daemon's time) and run
 * the funnel-wide checks at that time. */
void lab_finish(lab_t *self, int64_t now_ms);

/* The lab's state as a report reader (valid while the lab lives and is not
 * applying events). */
void lab_reader(lab_t *self, report_reader_t *rd);

/* Events applied, leads, handoffs raised, the largest event time seen
 * (the lab's clock). */
uint64_t lab_events(const lab_t *self);
/* The earliest and the latest time of the events applied (0: none). */
int64_t lab_first_ms(const lab_t *self);
int64_t lab_last_ms(const lab_t *self);
size_t lab_leads(const lab_t *self);
uint64_t lab_handoffs(const lab_t *self);
int64_t lab_watermark(const lab_t *self);

/* Handoffs per ISO week of their time: week is "2026-W48". */
typedef struct {
    char week[12];              /* TIMETEXT_WEEK_LEN */
    uint64_t handoffs;
} lab_week_t;

/* The weeks with handoffs, oldest first, at most max into out; returns how
 * many there are (may exceed max). */
size_t lab_weeks(const lab_t *self, lab_week_t *out, size_t max);

/* Call fn(lead_id, handed_off, arg) for every lead, in no particular
 * order; fn returns 0 to go on. */
typedef int lab_lead_fn(const char *lead_id, bool handed_off, void *arg);
void lab_each_lead(const lab_t *self, lab_lead_fn *fn, void *arg);

/* Whether lead_id exists in the lab (1) and was handed off (*handed_off). */
int lab_lead_handed_off(const lab_t *self, const char *lead_id, bool *handed_off);

/* Replay the log of store up to and including sequence upto (0: the last
 * one now) through each of the n labs: every event whose time lies in
 * [since_ms, until_ms) (0: unbounded), decoded once, LAB_CHUNK entries at
 * a time. *cancel (may be NULL) is polled between chunks; progress (may be
 * NULL) is called once before the first with 0 and the total, and after
 * each with the entries read and the total: it returns 0 to go on, else
 * the replay stops there as cancelled. Returns the number of log entries
 * read, -1 on a storage error, -2 when cancelled. Any thread. */
#define LAB_CHUNK 4096
typedef int lab_progress_fn(uint64_t done, uint64_t total, void *arg);
long lab_replay_log(store_t *store, uint64_t upto, int64_t since_ms, int64_t until_ms,
                    lab_t *const *labs, size_t n, const atomic_int *cancel,
                    lab_progress_fn *progress, void *progress_arg);

#endif
