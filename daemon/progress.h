/* progress.h: how far long work has got (the replay of the event log at
 * start-up, funneld --rebuild), for the person or the service manager
 * waiting for it.
 *
 * On a terminal (stderr is a TTY) one line is redrawn in place: done of
 * total, the rate and the time left. Otherwise an info log line says the
 * same every interval_ms (0: at every update). Under systemd (NOTIFY_SOCKET
 * set), sd_notify also gets STATUS= with the same words and
 * EXTEND_TIMEOUT_USEC=, so that a long start-up is not killed by the unit's
 * start timeout while it makes progress.
 *
 * Threading: one thread per progress_t (the loop thread for the replay).
 */
#ifndef FUNNELD_PROGRESS_H
#define FUNNELD_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef struct progress progress_t;

/* How much longer systemd is asked to wait at each notification: many
 * notifications fit in it, since they come every few seconds at most. */
#define PROGRESS_EXTEND_USEC (60ULL * 1000 * 1000)

/* Start reporting work on total units. verb is the -ing form ("replaying"),
 * done_verb the past ("replayed"), unit the plural noun ("events"); all
 * borrowed, they must outlive the progress_t (string literals). module
 * names the log lines ("ingest"). Caller owns the result:
 * progress_destroy(). */
progress_t *progress_new(const char *module, const char *verb, const char *done_verb,
                         const char *unit, uint64_t total, unsigned interval_ms);

/* done units of total are finished. Cheap when nothing is due: call it as
 * often as is convenient. */
void progress_update(progress_t *self, uint64_t done);

/* The work is finished: say so with the units done, how long it took and
 * the rate (one info log line, and STATUS= under systemd). */
void progress_done(progress_t *self);

/* Clear the terminal line, if any, and free. Accepts NULL. */
void progress_destroy(progress_t **self_p);

/* "950", "12.3k", "1.2M", "10M": n for people. */
void progress_count_text(uint64_t n, char *out, size_t cap);

/* "45s", "3m05s", "2h10m": a duration for people. */
void progress_duration_text(uint64_t ms, char *out, size_t cap);

#endif
