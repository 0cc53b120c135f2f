/* ingest_replay.c: bring the state up to date with the event log (see
 * ingest.h). */
#include <stdlib.h>
#include <string.h>

#include "ingest_int.h"
#include "log.h"
#include "progress.h"
#include "xalloc.h"

#define S_REPLAY_CHUNK 4096

typedef struct {
    uint64_t seq;
    Funnel__V1__Event *ev;
} s_replayed_t;

typedef struct {
    s_replayed_t *items;
    size_t n;
} s_replay_chunk_t;

static void s_on_log_event(uint64_t seq, const void *raw, size_t len, void *arg)
{
    s_replay_chunk_t *c = arg;
    Funnel__V1__Event *ev = funnel__v1__event__unpack(NULL, len, raw);
    if (ev == NULL) {
        log_err("[ingest] log event %llu is not decodable; skipped",
                (unsigned long long)seq);
        return;
    }
    c->items[c->n].seq = seq;
    c->items[c->n].ev = ev;
    c->n++;
}

/* ingest_fill_fn: a chunk of events read back from the log. */
static int s_fill_replay(ingest_t *self, void *arg)
{
    s_replay_chunk_t *c = arg;
    store_stats_t *st = store_stats(self->store);
    /* Received once: the log's commits keep what the loop counted. */
    uint64_t counted = store_log_counted(self->store);
    for (size_t i = 0; i < c->n; i++) {
        if (c->items[i].seq > counted) {
            if (strcmp(c->items[i].ev->type, INGEST_DEADLINE_TYPE) != 0)
                st->received++;
            store_log_counted_to(self->store, c->items[i].seq);
        }
        if (c->items[i].ev->occurred_at_ms > self->watermark_ms)
            self->watermark_ms = c->items[i].ev->occurred_at_ms;
        uint64_t seq;
        if (ingest_apply(self, c->items[i].ev, NULL, 0, c->items[i].seq, &seq) < 0)
            break;
    }
    return INGEST_FILLED;
}

/* ingest_replay, reporting to progress (NULL: silently). */
static long s_replay(ingest_t *self, progress_t *progress)
{
    long total = 0;
    s_replay_chunk_t chunk = {.items = xcalloc(S_REPLAY_CHUNK, sizeof(s_replayed_t))};

    while (store_applied_seq(self->store) < store_last_seq(self->store)) {
        uint64_t from = store_applied_seq(self->store) + 1;
        chunk.n = 0;
        if (store_read_begin(self->store) != STORE_OK)
            goto fail;
        long n = store_read_log(self->store, from, S_REPLAY_CHUNK, s_on_log_event,
                                &chunk);
        store_read_end(self->store);
        if (n <= 0)
            goto fail;

        int rc = ingest_run_group(self, s_fill_replay, &chunk, true);
        for (size_t i = 0; i < chunk.n; i++)
            funnel__v1__event__free_unpacked(chunk.items[i].ev, NULL);
        if (rc != STORE_OK)
            goto fail;
        ingest_out_publish(self);
        total += n;
        if (progress)
            progress_update(progress, (uint64_t)total);
        if (store_applied_seq(self->store) < from) {
            /* Every event of the chunk was undecodable: step over them. */
            log_err("[ingest] log events from %llu cannot be replayed",
                    (unsigned long long)from);
            goto fail;
        }
    }
    free(chunk.items);
    return total;

fail:
    free(chunk.items);
    return -1;
}

long ingest_replay(ingest_t *self)
{
    return s_replay(self, NULL);
}

long ingest_recover(ingest_t *self)
{
    /* With several partitions each applies the log from its own applied
     * sequence when started (ingest_start_partition). */
    if (store_parts(self->store) > 1)
        return 0;
    uint64_t applied = store_applied_seq(self->store);
    uint64_t last = store_last_seq(self->store);
    if (applied >= last)
        return 0;
    log_info("[ingest] replaying events %llu..%llu from the log",
             (unsigned long long)applied + 1, (unsigned long long)last);
    progress_t *progress = progress_new("ingest", "replaying", "replayed", "events",
                                        last - applied, self->opts.progress_interval_ms);
    long n = s_replay(self, progress);
    if (n >= 0)
        progress_done(progress);
    progress_destroy(&progress);
    return n;
}

