/* replay_main.c: run a fuzz target over files, without libFuzzer.
 *
 *   fuzz_<target>_replay PATH...
 *
 * Each PATH is a file or a directory (its regular files, in name order).
 * Every input is run once through LLVMFuzzerTestOneInput; a broken
 * invariant or a sanitizer report aborts, so the corpus is a regression
 * test in every build. Exit 0 when every input ran, 2 on a usage or read
 * error (an empty corpus is an error too: the test would prove nothing).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int s_run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf == NULL)
        abort();
    /* An exact-size copy, so that an overread is caught by ASan. */
    uint8_t *data = malloc(n ? n : 1);
    memcpy(data, buf, n);
    free(buf);
    fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static long s_run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) == -1) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return s_run_file(path) == 0 ? 1 : -1;

    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, s_cmp);
    long done = 0;
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            if (s_run_file(p) == -1)
                done = -1;
            else if (done >= 0)
                done++;
        }
        free(names[i]);
    }
    free(names);
    return done;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    fuzz_replay = 1;
    LLVMFuzzerInitialize(&argc, &argv);
    long total = 0;
    for (int i = 1; i < argc; i++) {
        long n = s_run_path(argv[i]);
        if (n < 0)
            return 2;
        total += n;
    }
    fprintf(stderr, "%s: %ld inputs replayed, no invariant broken\n", argv[0], total);
    return total > 0 ? 0 : 2;
}
