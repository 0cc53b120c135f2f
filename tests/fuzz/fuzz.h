/* fuzz.h: the libFuzzer entry points every target in tests/fuzz/ defines.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt): with clang and
 * -fsanitize=fuzzer (FUNNELD_FUZZ=ON) as real fuzzers, and in every build
 * with replay_main.c as a plain program that runs the target over each file
 * of its corpus, so that the corpus (and every crash once found) is a
 * regression test even without clang.
 */
#ifndef FUNNELD_FUZZ_H
#define FUNNELD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Called once before the first input; may be absent in libFuzzer's eyes
 * but every target here defines it. Returns 0. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Run one input. Returns 0; a broken invariant aborts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort with a message when cond is false: an invariant of funneld that
 * the input broke. Unlike assert(), never compiled out. */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz: invariant broken: %s: ", #cond);            \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* A private scratch directory for the process (on /dev/shm when it exists,
 * else $TMPDIR or /tmp), removed at exit. Borrowed. */
const char *fuzz_scratch_dir(void);

/* Remove a directory tree (a store the target resets). */
void fuzz_rm_rf(const char *dir);

/* 1 when run by replay_main.c (the corpus as a regression test): a target
 * with state across inputs then starts every input afresh and checks its
 * end-of-input invariants after each, so that every file of the corpus
 * reproduces on its own. 0 under libFuzzer. */
extern int fuzz_replay;

#endif
