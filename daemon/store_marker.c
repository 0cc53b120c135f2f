/* store_marker.c: the marker file beside the state that says whether
 * the state may be torn (see store_int.h). */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* This boot of the machine, "" when unknown. FUNNELD_BOOT_ID overrides
 * it, so that tests can stage a machine restart. */
static void s_boot_id(char *out, size_t cap)
{
    const char *forced = getenv("FUNNELD_BOOT_ID");
    if (forced) {
        snprintf(out, cap, "%s", forced);
        return;
    }
    out[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL)
        return;
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* The state is committed without fsync, so only the page cache holds its
 * latest pages: a killed process loses nothing, but a machine that went
 * down with the state open may have written some pages and not others.
 * A small marker file beside it, fsync'd, says "open in boot B" while
 * funneld runs and "clean" after a clean close. It lives outside the state
 * because the state itself is what cannot be trusted. */
static void s_marker_path(const store_t *self, char *out, size_t cap)
{
    char state[4096];
    store_state_path(self, state, sizeof state);
    snprintf(out, cap, "%s.mark", state);
}

/* Whether the state directory may be torn: it exists, and the marker is
 * missing or says it was open in another boot. */
bool store_marker_torn(store_t *self)
{
    char path[4200], data[4200], state[4096], text[128] = "", now[64];
    store_state_path(self, state, sizeof state);
    snprintf(data, sizeof data, "%s/data.mdb", state);
    if (access(data, F_OK) != 0)
        return false; /* nothing there yet */
    s_marker_path(self, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    if (fgets(text, sizeof text, f) == NULL)
        text[0] = '\0';
    fclose(f);
    text[strcspn(text, "\n")] = '\0';
    if (strcmp(text, "clean") == 0)
        return false;
    s_boot_id(now, sizeof now);
    return strncmp(text, "open ", 5) != 0 || now[0] == '\0' || strcmp(text + 5, now) != 0;
}

/* Write the marker durably: "open <boot id>" or "clean". Returns 0 or an
 * errno value. */
int store_marker_write(store_t *self, bool open)
{
    char path[4200], text[128], boot[64];
    s_marker_path(self, path, sizeof path);
    s_boot_id(boot, sizeof boot);
    int n = open ? snprintf(text, sizeof text, "open %s\n", boot)
                 : snprintf(text, sizeof text, "clean\n");
    int fd = openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd == -1)
        return errno;
    int rc = 0;
    if (write(fd, text, (size_t)n) != n || fsync(fd) == -1)
        rc = errno ? errno : EIO;
    close(fd);
    return rc;
}
