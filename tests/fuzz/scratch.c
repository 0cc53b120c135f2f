/* scratch.c: fuzz_scratch_dir() (see fuzz.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static char s_dir[512];

/* Remove dir and everything below it (the targets create few levels). */
static void s_rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                s_rm_rf(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static void s_cleanup(void)
{
    if (s_dir[0])
        s_rm_rf(s_dir);
}

const char *fuzz_scratch_dir(void)
{
    if (s_dir[0])
        return s_dir;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
                               access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(s_dir, sizeof s_dir, "%s/funneld-fuzz-XXXXXX", base);
    if (mkdtemp(s_dir) == NULL) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(s_cleanup);
    return s_dir;
}

int fuzz_replay = 0;

void fuzz_rm_rf(const char *dir)
{
    s_rm_rf(dir);
}
