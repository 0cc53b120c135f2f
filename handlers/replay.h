/* replay.h: one lead's events replayed through the handlers, in memory.
 *
 * The lead's chain of events in the log, fed in log order, rebuilds the
 * lead exactly as ingest built it: each event goes through the same
 * pipeline (pipeline_apply), each logged deadline ("$deadline" entry)
 * through pipeline_deadline when the lead still had that deadline with
 * that due time (as the daemon's deadline store decides it), and the
 * lead's pending deadlines are kept here from the handlers' effects. What
 * the state would have kept elsewhere (report counters, marks, alerts) is
 * dropped: a replay never writes anything.
 *
 * On top of the lead it keeps every score change (every ledger entry the
 * handlers book, not only the newest HND_LEDGER_MAX the lead keeps).
 *
 * The results are those of the definition given, which may not be the one
 * in use when the events arrived. Pure, single-threaded per replay_t (the
 * ledger tap is per thread: one replay at a time in a thread).
 */
#ifndef FUNNELD_REPLAY_H
#define FUNNELD_REPLAY_H

#include "pipeline.h"

typedef struct replay replay_t;

/* A replay of no event yet. Caller owns it: replay_destroy(). */
replay_t *replay_new(void);
void replay_destroy(replay_t **self_p);

/* Start the replay from a lead as it was stored after some event (a
 * checkpoint's record, when the log no longer holds the lead's older
 * events): lead and its n_dl pending deadlines (kind, due_ms) are copied,
 * and the lead's kept ledger entries become the first of the replay's
 * ledger (its carry-overs stay the lead's). Before any event. */
void replay_seed(replay_t *self, const hnd_lead_t *lead, const hnd_deadline_t *dl,
                 size_t n_dl);

/* Apply one event of the lead (pointers borrowed for the call). Returns 0,
 * or 1 when the handlers refused it (the lead is as before, as ingest
 * leaves it). */
int replay_event(replay_t *self, const hnd_t *const *pipe, const defn_t *d,
                 const hnd_event_t *ev);

/* A logged deadline of kind, due at due_ms, fired at the daemon's time
 * now_ms. Returns 0 when it applied, 1 when the lead no longer had it (as
 * ingest skips it). */
int replay_deadline(replay_t *self, const defn_t *d, const char *kind,
                    int64_t due_ms, int64_t now_ms, uint64_t seq);

/* The lead as replayed so far, NULL before its first event. Borrowed. */
const hnd_lead_t *replay_lead(const replay_t *self);

/* Every score change booked so far, oldest first (n in *n). Borrowed,
 * valid until the next replay_ call. */
const hnd_ledger_t *replay_ledger(const replay_t *self, size_t *n);

#endif
