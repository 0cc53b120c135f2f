/* rebuild.h: recompute the state from the event log (funneld --rebuild).
 *
 * The operator's tool after a definition change, and the crash tests'
 * judge: every logged event is replayed in order through the handlers into
 * a fresh state environment (state.rebuild/, or rebuild_dir), which is
 * then compared with the live state, database by database, and deleted
 * (a rebuild_dir is kept). With replace, the rebuilt state becomes the
 * live one and the old one is kept as state.old-<time>. When log
 * retention dropped the log's first events, the rebuild starts from the
 * oldest checkpoint the log covers, and says so.
 * The daemon must not be running (the state directory's lock says so).
 */
#ifndef FUNNELD_REBUILD_H
#define FUNNELD_REBUILD_H

#include <stdbool.h>
#include <stddef.h>

#include "defn.h"
#include "hnd.h"

/* With partitions above 1 the log is applied as funneld applies it, into
 * that many partitions (state.rebuild/, state.rebuild.p1/, ... deleted
 * afterwards), each compared with the live one (state/, state.p1/, ...);
 * neither rebuild_dir nor replace is accepted then.
 * Returns 0 when the states are identical (or, with replace, when the
 * rebuilt state is in place), 1 when they differ, 2 on an error (reported
 * on stderr). A summary goes to stdout; the replay's progress to stderr (a
 * line on a terminal, else a log line every progress_interval_ms; see
 * progress.h). */
int rebuild_run(const char *state_dir, const char *rebuild_dir, size_t map_size,
                const defn_t *const *defn_p, const hnd_t *const *pipeline, bool replace,
                unsigned progress_interval_ms, unsigned partitions);

#endif
