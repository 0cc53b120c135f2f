/* defn.c: loading and checking a funnel definition, the public API.
 *
 * Loading runs in three passes over the same bytes:
 *
 * 1. The locator (defn_locate.c) parses the text with libyaml's event API
 *    and records, for every event, where it starts and which node it
 *    belongs to, and, for every node, its path ("stages[2].name") and
 *    position. Syntax errors are reported here, with libyaml's own position
 *    of the problem.
 * 2. libcyaml (defn_schema.c) loads the text against the schema into plain
 *    structs. Its messages name the problem but their positions are those
 *    of nearby events, not of the offending one, so the loader runs
 *    libcyaml with debug logging and counts the events it consumes: the
 *    event it failed on is then looked up in the locator's table. Every
 *    schema field is optional, so that missing keys are reported by pass 3
 *    with the position of the mapping that lacks them.
 * 3. The semantic check (defn_build.c, defn_rules.c, with the value checks
 *    of defn_check.c) turns the structs into a defn_t: durations, names,
 *    references between stages and transitions, ranges, duplicates. Each
 *    complaint asks the locator for the position of the node concerned.
 *
 * Every error becomes one line "file:line:column: what is wrong".
 *
 * This file holds the public API, the allocation helpers, the event-type
 * table and the definition hash. defn_int.h is what the files share.
 */
#include "defn_int.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"

#define S_FILE_MAX (4u << 20)   /* a definition larger than 4 MiB is a mistake */

/* ---------------------------------------------------------------------- */
/* The type table.                                                         */

static bool s_type_eq(const void *ctx, uint32_t index, const void *key)
{
    return strcmp(((const defn_t *)ctx)->types[index].type, key) == 0;
}

int defn_type_find(const defn_t *d, const char *type)
{
    if (d->type_index.cap == 0)
        return -1;
    uint32_t e = htab_probe(d->type_index.slot, sizeof *d->type_index.slot,
                            d->type_index.cap, fnv1a32_str(type), s_type_eq, d,
                            type, NULL);
    return (int)e - 1;
}

/* Index of type in the table, added when missing. The table is sized by
 * the caller (defn_build_types) so it never fills. */
static int s_type_add(defn_t *d, const char *type)
{
    uint32_t *slot = htab_slot(&d->type_index, fnv1a32_str(type), s_type_eq, d, type);
    if (*slot)
        return (int)*slot - 1;
    int t = (int)d->n_types++;
    *slot = (uint32_t)t + 1;
    defn_type_t *e = &d->types[t];
    e->type = xstrdup(type);
    e->regression = -1;
    return t;
}

/* The type table (defn_int.h): sized for every type the definition could
 * name, filled from the points, regressions, handoff answers and
 * transitions in that order, then d->tr_index groups the transitions by
 * type. Owned by d. */
void defn_build_types(const defn_ytop_t *y, defn_t *d)
{
    size_t most = d->n_transitions + d->n_regressions + d->n_points + 4;
    for (unsigned i = 0; y->personas && i < y->personas_count; i++)
        most += y->personas[i].when ? y->personas[i].when_count : 0;
    htab_init(&d->type_index, htab_cap_for(most));
    d->types = xcalloc(most, sizeof *d->types);
    d->tr_index = xcalloc(d->n_transitions, sizeof *d->tr_index);

    for (size_t i = 0; i < d->n_points; i++) {
        defn_type_t *e = &d->types[s_type_add(d, d->points[i].type)];
        e->points = d->points[i].points;
        e->has_points = true;
    }
    for (size_t i = 0; i < d->n_regressions; i++)
        d->types[s_type_add(d, d->regressions[i].type)].regression = (int)i;
    d->types[s_type_add(d, d->accept_type)].answer = true;
    d->types[s_type_add(d, d->reject_type)].answer = true;
    d->types[s_type_add(d, d->recycle_type)].answer = true;
    d->types[s_type_add(d, d->requalify_type)].answer = true;
    for (size_t i = 0; i < d->n_transitions; i++) {
        defn_type_t *e = &d->types[s_type_add(d, d->transitions[i].type)];
        e->tr_count++;
    }
    /* Group the transitions by type, keeping file order within a type. */
    int next = 0;
    for (size_t t = 0; t < d->n_types; t++) {
        d->types[t].tr_first = next;
        next += d->types[t].tr_count;
        d->types[t].tr_count = 0;
    }
    for (size_t i = 0; i < d->n_transitions; i++) {
        defn_type_t *e = &d->types[defn_type_find(d, d->transitions[i].type)];
        d->tr_index[e->tr_first + e->tr_count++] = (int)i;
    }
}

/* The definition hash: hex FNV-1a 64 of the text's bytes. */
static void s_hash(const char *text, size_t len, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, fnv1a64(text, len));
}

/* ---------------------------------------------------------------------- */
/* Public API.                                                             */

/* The three passes over the same bytes (see the top of this file); the
 * error, if any, is written by the pass that found it, else "invalid
 * definition". Every pass's allocations are freed here, whatever the
 * outcome. */
defn_t *defn_load_buffer(const char *yaml, size_t len, const char *name,
                         char *err, size_t errlen)
{
    defn_loader_t ld = {
        .name = name ? name : "(buffer)",
        .text = yaml,
        .len = len,
        .err = err,
        .errlen = errlen,
    };
    defn_ytop_t *y = NULL;
    defn_t *d = NULL;
    defn_t *result = NULL;

    assert(yaml || len == 0);
    if (err && errlen)
        err[0] = '\0';
    if (len > S_FILE_MAX) {
        defn_pos_t none = { 0, 0 };
        defn_fail(&ld, none, "larger than %u bytes: not a funnel definition",
                  S_FILE_MAX);
        goto cleanup;
    }
    if (defn_locate(&ld) < 0)
        goto cleanup;
    if (defn_schema_load(&ld, &y) < 0)
        goto cleanup;
    d = xcalloc(1, sizeof *d);
    if (defn_build(&ld, y, d) < 0)
        goto cleanup;
    d->path = xstrdup(ld.name);
    s_hash(yaml, len, d->hash);
    result = d;
    d = NULL;
cleanup:
    if (!result && err && errlen && err[0] == '\0')
        snprintf(err, errlen, "%s: invalid definition", ld.name);
    defn_destroy(&d);
    defn_schema_free(y);
    defn_loc_free(&ld.loc);
    return result;
}

/* defn.h. Reads the whole file (refusing more than S_FILE_MAX bytes), then
 * defn_load_buffer() with path as the name; an unopenable or unreadable
 * file is an error "path: reason". The buffer is freed here. */
defn_t *defn_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    defn_t *d = NULL;

    assert(path);
    if (err && errlen)
        err[0] = '\0';
    f = fopen(path, "rb");
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    for (;;) {
        if (len == cap) {
            if (cap > S_FILE_MAX) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: larger than %u bytes: not a "
                             "funnel definition", path, S_FILE_MAX);
                goto cleanup;
            }
            cap = cap ? 2 * cap : 16384;
            buf = xrealloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                if (err && errlen)
                    snprintf(err, errlen, "%s: read error", path);
                goto cleanup;
            }
            break;
        }
    }
    d = defn_load_buffer(buf, len, path, err, errlen);
cleanup:
    if (f)
        fclose(f);
    free(buf);
    return d;
}

defn_t *defn_load_default(void)
{
    char err[DEFN_MSG_MAX + 64];
    defn_t *d = defn_load_buffer(defn_default_yaml, defn_default_yaml_len,
                                 "(built-in)", err, sizeof err);
    if (!d) {
        fprintf(stderr, "funneld: the built-in definition is invalid: %s\n",
                err);
        abort();
    }
    return d;
}

/* defn.h. Frees a definition whole or half built (by a failed load):
 * every count says how many entries are built, and the arrays behind them
 * may be NULL. */
void defn_destroy(defn_t **self_p)
{
    assert(self_p);
    defn_t *d = *self_p;
    if (!d)
        return;
    free(d->name);
    free(d->path);
    for (size_t i = 0; i < d->n_stages; i++)
        free(d->stages[i].name);
    free(d->stages);
    for (size_t i = 0; i < d->n_transitions; i++)
        free(d->transitions[i].type);
    free(d->transitions);
    for (size_t i = 0; i < d->n_tconds; i++)
        defn_cond_free(&d->tconds[i]);
    free(d->tconds);
    for (size_t i = 0; i < d->n_regressions; i++)
        free(d->regressions[i].type);
    free(d->regressions);
    for (size_t i = 0; i < d->n_points; i++)
        free(d->points[i].type);
    free(d->points);
    for (size_t i = 0; i < d->n_fit; i++) {
        defn_cond_free(&d->fit[i].cond);
        free(d->fit[i].label);
    }
    free(d->fit);
    for (size_t i = 0; i < d->n_clauses; i++)
        free(d->clauses[i].label);
    free(d->clauses);
    free(d->accept_type);
    free(d->reject_type);
    free(d->recycle_type);
    free(d->requalify_type);
    free(d->reason_attr);
    for (size_t i = 0; i < d->n_personas; i++) {
        free(d->personas[i].name);
        for (size_t k = 0; k < d->personas[i].n_when; k++)
            defn_cond_free(&d->personas[i].when[k]);
        free(d->personas[i].when);
    }
    free(d->personas);
    for (size_t i = 0; i < d->n_types; i++)
        free(d->types[i].type);
    free(d->types);
    free(d->tr_index);
    htab_free(&d->type_index);
    free(d);
    *self_p = NULL;
}

int defn_stage_index(const defn_t *d, const char *name)
{
    assert(d && name);
    return defn_find_stage(d, d->n_stages, name);
}

const defn_transition_t *defn_transition(const defn_t *d, const char *type,
                                         int source)
{
    /* The selection h_stage.c makes (a transition for the event's source
     * first, then one for any source, the first listed in each), over the
     * transitions without an attribute condition. */
    assert(d && type);
    const defn_type_t *ty = defn_type(d, type);
    if (ty == NULL)
        return NULL;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < ty->tr_count; i++) {
            const defn_transition_t *t = &d->transitions[d->tr_index[ty->tr_first + i]];
            bool want = pass == 0 ? t->source != 0 && t->source == source
                                  : t->source == 0;
            if (want && t->when == NULL)
                return t;
        }
    return NULL;
}

double defn_points(const defn_t *d, const char *type)
{
    const defn_type_t *t = defn_type(d, type);
    return t ? t->points : 0;
}

const defn_type_t *defn_type(const defn_t *d, const char *type)
{
    assert(d && type);
    int t = defn_type_find(d, type);
    return t >= 0 ? &d->types[t] : NULL;
}
