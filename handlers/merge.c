/* merge.c: see merge.h. */
#include "merge.h"

#include <stdlib.h>
#include <string.h>

#include "hnd.h"
#include "keys.h"
#include "pipeline.h"
#include "timetext.h"
#include "xalloc.h"

static int s_cmp_counter(const void *a, const void *b)
{
    return strcmp(((const merge_counter_t *)a)->key, ((const merge_counter_t *)b)->key);
}

static int s_cmp_mark(const void *a, const void *b)
{
    const merge_mark_t *x = a, *y = b;
    int c = strcmp(x->set, y->set);
    return c ? c : strcmp(x->lead, y->lead);
}

void merge_add(merge_table_t *t, const char *key, int64_t v)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->c = xrealloc(t->c, t->cap * sizeof *t->c);
    }
    t->c[t->n].key = xstrdup(key);
    t->c[t->n++].v = v;
}

void merge_add_mark(merge_table_t *t, const char *set, const char *lead, int64_t since_ms)
{
    if (t->mn == t->mcap) {
        t->mcap = t->mcap ? 2 * t->mcap : 256;
        t->m = xrealloc(t->m, t->mcap * sizeof *t->m);
    }
    t->m[t->mn].set = xstrdup(set);
    t->m[t->mn].lead = xstrdup(lead);
    t->m[t->mn++].since = since_ms;
}

void merge_free(merge_table_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->c[i].key);
    for (size_t i = 0; i < t->mn; i++) {
        free(t->m[i].set);
        free(t->m[i].lead);
    }
    free(t->c);
    free(t->m);
    memset(t, 0, sizeof *t);
}

/* The day last checked and the first day kept: the latest of any. */
static bool s_is_max_key(const char *key)
{
    return strcmp(key, keys_conv_day) == 0 || strcmp(key, keys_conv_expired) == 0;
}

bool merge_is_below_key(const char *key)
{
    char below[KEYS_KEY_MAX];
    keys_conv_below(below, sizeof below, "");
    return strncmp(key, below, strlen(below)) == 0;
}

void merge_settle(merge_table_t *t)
{
    if (t->n > 1)
        qsort(t->c, t->n, sizeof *t->c, s_cmp_counter);
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (merge_is_below_key(t->c[i].key)) {
            free(t->c[i].key);
            continue;
        }
        if (k > 0 && strcmp(t->c[k - 1].key, t->c[i].key) == 0) {
            if (s_is_max_key(t->c[i].key))
                t->c[k - 1].v = t->c[i].v > t->c[k - 1].v ? t->c[i].v : t->c[k - 1].v;
            else
                t->c[k - 1].v += t->c[i].v;
            free(t->c[i].key);
            continue;
        }
        t->c[k++] = t->c[i];
    }
    t->n = k;
    if (t->mn > 1)
        qsort(t->m, t->mn, sizeof *t->m, s_cmp_mark);
}

/* The first counter whose key is >= key. */
static size_t s_lower(const merge_table_t *t, const char *key)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->c[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void merge_set(merge_table_t *t, const char *key, int64_t v)
{
    size_t i = s_lower(t, key);
    if (i < t->n && strcmp(t->c[i].key, key) == 0) {
        t->c[i].v = v;
        return;
    }
    merge_add(t, key, v); /* at the end: moved into its place */
    merge_counter_t c = t->c[t->n - 1];
    memmove(t->c + i + 1, t->c + i, (t->n - 1 - i) * sizeof *t->c);
    t->c[i] = c;
}

int64_t merge_counter(const char *key, void *arg)
{
    const merge_table_t *t = arg;
    size_t i = s_lower(t, key);
    return i < t->n && strcmp(t->c[i].key, key) == 0 ? t->c[i].v : 0;
}

static long s_counters(void *arg, const char *prefix, report_counter_fn *fn, void *fn_arg)
{
    const merge_table_t *t = arg;
    size_t pl = strlen(prefix);
    long n = 0;
    for (size_t i = s_lower(t, prefix); i < t->n && strncmp(t->c[i].key, prefix, pl) == 0;
         i++, n++)
        fn(t->c[i].key, t->c[i].v, fn_arg);
    return n;
}

static long s_marks(void *arg, const char *prefix, report_mark_fn *fn, void *fn_arg)
{
    const merge_table_t *t = arg;
    size_t pl = strlen(prefix);
    long n = 0;
    for (size_t i = 0; i < t->mn; i++)
        if (strncmp(t->m[i].set, prefix, pl) == 0) {
            fn(t->m[i].set, t->m[i].lead, t->m[i].since, fn_arg);
            n++;
        }
    return n;
}

void merge_reader(merge_table_t *t, report_reader_t *rd)
{
    rd->counter = merge_counter;
    rd->counters = s_counters;
    rd->marks = s_marks;
    rd->arg = t;
}

void merge_judge(merge_table_t *t, const defn_t *d)
{
    int64_t day = merge_counter(keys_conv_day, t);
    if (day <= 0)
        return;
    hnd_effects_t *fx = xcalloc(1, sizeof *fx);
    pipeline_funnel_check(d, day * TIMETEXT_DAY_MS, merge_counter, t, fx);
    for (size_t i = 0; i < fx->n_deltas; i++)
        if (merge_is_below_key(fx->deltas[i].key) && fx->deltas[i].delta > 0)
            merge_set(t, fx->deltas[i].key, fx->deltas[i].delta);
    free(fx);
}
