/* rebuild.c: see rebuild.h. */
#include "rebuild.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest.h"
#include "log.h"
#include "store.h"

static void s_print_diff(const char *name, const store_diff_t *d)
{
    printf("  %-12s %10llu compared, %llu differ, %llu only live, %llu only rebuilt\n",
           name, (unsigned long long)d->compared, (unsigned long long)d->differ,
           (unsigned long long)d->missing, (unsigned long long)d->extra);
}

static bool s_same(const store_diff_t *d)
{
    return d->differ == 0 && d->missing == 0 && d->extra == 0;
}

/* Delete the scratch state (its LMDB files and marker). */
static void s_remove_scratch(const char *state_dir)
{
    char path[4096], f[4200];
    snprintf(path, sizeof path, "%s/state.rebuild", state_dir);
    const char *files[] = {"data.mdb", "lock.mdb"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(f, sizeof f, "%s/%s", path, files[i]);
        if (unlink(f) == -1 && errno != ENOENT)
            fprintf(stderr, "funneld: cannot delete %s: %s\n", f, strerror(errno));
    }
    rmdir(path);
    snprintf(f, sizeof f, "%s.mark", path);
    unlink(f);
}

static void s_diff_add(store_diff_t *a, const store_diff_t *b)
{
    a->compared += b->compared;
    a->differ += b->differ;
    a->missing += b->missing;
    a->extra += b->extra;
}

/* Compare the rebuilt state's partitions with the live ones (state/,
 * state.p1/, ...), adding up their differences into *out. */
static int s_compare_parts(store_t *store, store_compare_t *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < store_parts(store); i++) {
        char name[32];
        store_compare_t c;
        snprintf(name, sizeof name, i ? "state.p%u" : "state", i);
        if (store_compare_state(store_part(store, i), name, &c) != STORE_OK)
            return STORE_ERR;
        s_diff_add(&out->leads, &c.leads);
        s_diff_add(&out->event_ids, &c.event_ids);
        s_diff_add(&out->counters, &c.counters);
        s_diff_add(&out->deadlines, &c.deadlines);
        s_diff_add(&out->marks, &c.marks);
        s_diff_add(&out->alerts, &c.alerts);
        out->applied_seq_differs |= c.applied_seq_differs;
        out->alert_seq_differs |= c.alert_seq_differs;
        if (out->first_difference[0] == '\0' && c.first_difference[0])
            snprintf(out->first_difference, sizeof out->first_difference, "%s%s%.200s",
                     i ? name : "", i ? ": " : "", c.first_difference);
    }
    return STORE_OK;
}

int rebuild_run(const char *state_dir, const char *rebuild_dir, size_t map_size,
                const defn_t *const *defn_p, const hnd_t *const *pipeline, bool replace,
                unsigned progress_interval_ms, unsigned partitions)
{
    char err[1024];
    struct event_base *base = NULL;
    store_t *store = NULL;
    ingest_t *ingest = NULL;
    int rc = 2;

    base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "funneld: cannot create the event loop\n");
        goto out;
    }
    bool scratch = rebuild_dir == NULL || rebuild_dir[0] == '\0';
    unsigned np = partitions > 1 ? partitions : 1;
    if (np > 1 && (replace || !scratch)) {
        fprintf(stderr, "funneld: rebuild: with partitions %u the rebuild is compared "
                "with the live state only (no --rebuild-dir, no replacing); a change of "
                "partitions rebuilds the live state at start-up\n", np);
        goto out;
    }
    store = store_open_state(state_dir, scratch ? "state.rebuild" : rebuild_dir, true,
                             map_size, err, sizeof err);
    if (store == NULL) {
        fprintf(stderr, "funneld: rebuild: %s\n", err);
        goto out;
    }
    /* The counters kept with the log stay the live state's. */
    store_log_read_only(store);
    /* With partitions, as funneld applies them: each partition's state
     * beside the scratch one, applied by partition threads. */
    for (unsigned i = 1; i < np; i++) {
        char name[48];
        snprintf(name, sizeof name, "state.rebuild.p%u", i);
        if (store_open_part(store, name, true, map_size, err, sizeof err) == NULL) {
            fprintf(stderr, "funneld: rebuild: %s\n", err);
            goto out;
        }
    }
    ingest_opts_t opts = {
        .group_max_events = 10000,
        .max_batch_events = 10000,
        .event_clock = np == 1,
        .progress_interval_ms = progress_interval_ms,
        .limits = validate_defaults,
        .log_read_only = true,
    };
    ingest = ingest_new(base, store, defn_p, pipeline, NULL, &opts);
    long n = ingest_recover(ingest);
    if (n >= 0 && np > 1 && ingest_start_partition(ingest, 0, &n) != 0)
        n = -1;
    if (n >= 0 && np > 1)
        ingest_stop_partition(ingest);
    if (n < 0) {
        fprintf(stderr, "funneld: rebuild: replaying the event log failed\n");
        goto out;
    }
    if (store_sync(store) != STORE_OK)
        goto out;
    if (store_first_seq(store) > 1)
        printf("the rebuild %s\n", store_recovery(store));

    char live[4096];
    snprintf(live, sizeof live, "%s/state/data.mdb", state_dir);
    FILE *probe = fopen(live, "r");
    store_compare_t cmp;
    bool same = false;
    if (probe == NULL) {
        printf("rebuilt %ld events from %s/log; there is no live state to compare\n",
               n, state_dir);
    } else {
        fclose(probe);
        if (s_compare_parts(store, &cmp) != STORE_OK)
            goto out;
        same = s_same(&cmp.leads) && s_same(&cmp.event_ids) &&
               s_same(&cmp.counters) && s_same(&cmp.deadlines) &&
               s_same(&cmp.marks) && s_same(&cmp.alerts) &&
               !cmp.applied_seq_differs && !cmp.alert_seq_differs;
        printf("rebuilt %ld events from %s/log: the live state is %s\n", n,
               state_dir, same ? "identical" : "DIFFERENT");
        s_print_diff("leads", &cmp.leads);
        s_print_diff("event ids", &cmp.event_ids);
        s_print_diff("counters", &cmp.counters);
        s_print_diff("deadlines", &cmp.deadlines);
        s_print_diff("marks", &cmp.marks);
        s_print_diff("alerts", &cmp.alerts);
        if (cmp.applied_seq_differs)
            printf("  the applied sequence differs\n");
        if (cmp.alert_seq_differs)
            printf("  the last alert sequence differs\n");
        if (cmp.first_difference[0])
            printf("  first difference: %s\n", cmp.first_difference);
    }
    rc = same ? 0 : 1;

    if (!replace) {
        ingest_destroy(&ingest);
        store_destroy(&store);
        if (scratch) {
            s_remove_scratch(state_dir);
            for (unsigned i = 1; i < np; i++) {
                char name[48];
                snprintf(name, sizeof name, "state.rebuild.p%u", i);
                if (store_remove_state(state_dir, name) != 0)
                    fprintf(stderr, "funneld: cannot delete %s/%s: %s\n", state_dir, name,
                            strerror(errno));
            }
            printf("the rebuilt state was deleted (--rebuild-dir DIR writes and keeps it)\n");
        } else {
            printf("the rebuilt state is in %s\n", rebuild_dir);
        }
    } else {
        /* Close before renaming: LMDB keeps its files open. */
        ingest_destroy(&ingest);
        store_destroy(&store);
        char from[4096], to[4200], old[4200];
        time_t now = time(NULL);
        snprintf(from, sizeof from, "%s/state", state_dir);
        snprintf(old, sizeof old, "%s/state.old-%lld", state_dir, (long long)now);
        snprintf(to, sizeof to, "%s/state.rebuild", state_dir);
        if (rename(from, old) == -1 && errno != ENOENT) {
            fprintf(stderr, "funneld: cannot move %s to %s: %s\n", from, old,
                    strerror(errno));
            rc = 2;
            goto out;
        }
        if (rename(to, from) == -1) {
            fprintf(stderr, "funneld: cannot move %s to %s: %s\n", to, from,
                    strerror(errno));
            rc = 2;
            goto out;
        }
        /* Its clean-close marker goes with it. */
        char mark_from[4200], mark_to[4200];
        snprintf(mark_from, sizeof mark_from, "%s/state.rebuild.mark", state_dir);
        snprintf(mark_to, sizeof mark_to, "%s/state.mark", state_dir);
        if (rename(mark_from, mark_to) == -1)
            fprintf(stderr, "funneld: cannot move %s to %s: %s (the next start "
                    "will rebuild the state again)\n", mark_from, mark_to,
                    strerror(errno));
        printf("the rebuilt state is now live; the previous one is in %s\n", old);
        rc = 0;
    }

out:
    ingest_destroy(&ingest);
    store_destroy(&store);
    if (base)
        event_base_free(base);
    return rc;
}
