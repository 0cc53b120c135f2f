/* fuzz_definition.c: the funnel definition loader under libFuzzer.
 *
 * Any bytes given to defn_load_buffer() either load into a definition that
 * the handlers can use (every lookup answers, every stage index is in
 * range), or fail with one line naming the file ("fuzz.yaml:line:col: ..."
 * or "fuzz.yaml: ..."): never a crash, a leak or an unnamed error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "defn.h"
#include "fuzz.h"

#define S_NAME "fuzz.yaml"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024] = "";
    /* An exact-size copy, not NUL-terminated: the loader takes a length. */
    char *yaml = malloc(size ? size : 1);
    if (size)
        memcpy(yaml, data, size);
    defn_t *d = defn_load_buffer(yaml, size, S_NAME, err, sizeof err);
    if (d == NULL) {
        FUZZ_CHECK(strncmp(err, S_NAME ":", strlen(S_NAME) + 1) == 0,
                   "error does not name the file: \"%s\"", err);
        FUZZ_CHECK(strchr(err, '\n') == NULL, "error is not one line: \"%s\"", err);
    } else {
        FUZZ_CHECK(d->n_stages > 0 && d->n_stages <= DEFN_STAGES_MAX &&
                       d->n_order <= d->n_stages,
                   "%zu stages, %zu in order", d->n_stages, d->n_order);
        for (size_t i = 0; i < d->n_stages; i++) {
            FUZZ_CHECK(d->stages[i].name && d->stages[i].name[0], "stage %zu unnamed", i);
            FUZZ_CHECK(defn_stage_index(d, d->stages[i].name) == (int)i ||
                           defn_stage_index(d, d->stages[i].name) >= 0,
                       "stage %s not found by name", d->stages[i].name);
        }
        for (size_t i = 0; i < d->n_transitions; i++) {
            const defn_transition_t *t = &d->transitions[i];
            FUZZ_CHECK(t->stage >= 0 && (size_t)t->stage < d->n_stages,
                       "transition %s to stage %d of %zu", t->type, t->stage,
                       d->n_stages);
            for (int src = 1; src <= 2; src++) {
                const defn_transition_t *f = defn_transition(d, t->type, src);
                FUZZ_CHECK(f == NULL || ((size_t)f->stage < d->n_stages),
                           "lookup of %s gives stage %d", t->type, f->stage);
            }
        }
        for (size_t i = 0; i < d->n_points; i++)
            (void)defn_points(d, d->points[i].type);
        (void)defn_points(d, "no-such-type");
        defn_destroy(&d);
        FUZZ_CHECK(d == NULL, "defn_destroy does not clear the pointer");
    }
    free(yaml);
    return 0;
}
