/* lead_fixture.h: what the handler tests share: a definition loaded from
 * a YAML string, a lead in memory, and events applied to it through the
 * real pipeline. Header-only, for tests/unit/test_*.c. */
#ifndef FUNNELD_LEAD_FIXTURE_H
#define FUNNELD_LEAD_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline.h"

typedef struct {
    defn_t *d;
    hnd_lead_t lead;
    hnd_effects_t fx;
    int n;          /* events applied so far */
} lead_fixture_t;

/* The definition in yaml (called `name` in errors); the test fails on an
 * error. Caller owns the result. */
static inline defn_t *fixture_defn(const char *yaml, const char *name)
{
    char err[512];
    defn_t *d = defn_load_buffer(yaml, strlen(yaml), name, err, sizeof err);
    if (!d)
        fail_msg("%s", err);
    return d;
}

/* cmocka setup and teardown of a lead_fixture_t over yaml. */
static inline int fixture_setup(void **state, const char *yaml)
{
    lead_fixture_t *f = test_calloc(1, sizeof *f);
    f->d = fixture_defn(yaml, "t.yaml");
    *state = f;
    return 0;
}

static inline int fixture_teardown(void **state)
{
    lead_fixture_t *f = *state;
    defn_destroy(&f->d);
    test_free(f);
    return 0;
}

/* Apply event number n (id "e<n>", log sequence n + seq_base) of `type`
 * from src at at_ms, with attributes kv[0..n_kv), to lead (created by it
 * when is_new); the effects go to fx. The test fails if the pipeline
 * refuses it. */
static inline void fixture_event(const defn_t *d, hnd_lead_t *lead, hnd_effects_t *fx,
                                 int n, const char *lead_id, bool is_new,
                                 const char *type, hnd_source_t src, int64_t at_ms,
                                 const hnd_kv_t *kv, size_t n_kv, uint64_t seq_base)
{
    char id[32];
    snprintf(id, sizeof id, "e%d", n);
    hnd_event_t ev = {
        .id = id, .lead_id = lead_id, .type = type, .source = src,
        .at_ms = at_ms, .attrs = kv, .n_attrs = n_kv,
        .log_seq = (uint64_t)n + seq_base,
    };
    assert_int_equal(pipeline_apply(pipeline_default, &ev, d, is_new, lead, fx), 0);
}

/* The first alert of kind in fx, or NULL. */
static inline const hnd_alert_t *fx_alert(const hnd_effects_t *fx, const char *kind)
{
    for (size_t i = 0; i < fx->n_alerts; i++)
        if (strcmp(fx->alerts[i].kind, kind) == 0)
            return &fx->alerts[i];
    return NULL;
}

/* fx's delta of the counter key (0 when it has none). */
static inline int64_t fx_delta(const hnd_effects_t *fx, const char *key)
{
    for (size_t i = 0; i < fx->n_deltas; i++)
        if (strcmp(fx->deltas[i].key, key) == 0)
            return fx->deltas[i].delta;
    return 0;
}

#endif
