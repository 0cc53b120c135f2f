/* merge.h: report counters and mark sets of several funneld instances
 * added up into one table, read by the report code (report.h) through its
 * reader interface and by the funnel-wide check (pipeline_funnel_check)
 * as each instance reads its own store: what funnelctl --nats computes
 * the merged reports from, and what the instance judging the cluster's
 * conversion check (daemon/nats_judge.c) judges.
 *
 * Counters of the same key add up, except the rolling window's
 * bookkeeping, which is not a count: the day last checked and the first
 * day kept are the latest of any instance, and the instances' verdicts
 * (whether a stage is below its target) are dropped, to be judged again
 * on the merged counters. Marks are kept side by side.
 *
 * Threads: a table belongs to its caller's thread.
 */
#ifndef FUNNEL_MERGE_H
#define FUNNEL_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "defn.h"
#include "report.h"

typedef struct {
    char *key;
    int64_t v;
} merge_counter_t;

typedef struct {
    char *set, *lead;
    int64_t since;
} merge_mark_t;

/* Zero-initialised before use (merge_table_t t = {0}); merge_free after. */
typedef struct {
    merge_counter_t *c;
    size_t n, cap;
    merge_mark_t *m;
    size_t mn, mcap;
} merge_table_t;

/* Collect one instance's counter (key copied) or mark (copied). */
void merge_add(merge_table_t *t, const char *key, int64_t v);
void merge_add_mark(merge_table_t *t, const char *set, const char *lead, int64_t since_ms);

/* Sort and combine what was collected (see above); reads need it. */
void merge_settle(merge_table_t *t);

/* Set key to v in a settled table (added when absent), keeping it
 * settled. */
void merge_set(merge_table_t *t, const char *key, int64_t v);

/* Whether key is a verdict of the conversion check ("below target"). */
bool merge_is_below_key(const char *key);

/* A settled table's counter (0 when absent): a pipeline_counter_fn and a
 * report reader's counter, arg being the table. */
int64_t merge_counter(const char *key, void *arg);

/* A report reader over the settled table t (borrowed). */
void merge_reader(merge_table_t *t, report_reader_t *rd);

/* The conversion check of the whole funnel judged on the merged counters
 * at the day last checked, its verdicts (below target) set in the table
 * for the friction report. */
void merge_judge(merge_table_t *t, const defn_t *d);

void merge_free(merge_table_t *t);

#endif
