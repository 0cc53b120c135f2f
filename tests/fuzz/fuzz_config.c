/* fuzz_config.c: funneld's YAML config loader under libFuzzer.
 *
 * The input is written to a config file and loaded over the built-in
 * defaults with cfg_load_file(), as `funneld --config FILE` does. It loads,
 * or fails with one line that names the file (with line and column when
 * libcyaml knows them): never a crash or a leak. A loaded config can be
 * dumped and the dump loads again to the same values.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "fuzz.h"

static char s_path[700];
static char s_dump[700];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(s_path, sizeof s_path, "%s/funneld.yaml", fuzz_scratch_dir());
    snprintf(s_dump, sizeof s_dump, "%s/dump.yaml", fuzz_scratch_dir());
    return 0;
}

static void s_write(const char *path, const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd == -1 || (size && write(fd, data, size) != (ssize_t)size)) {
        perror(path);
        abort();
    }
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024] = "";
    cfg_t cfg;

    s_write(s_path, data, size);
    cfg_defaults(&cfg);
    if (cfg_load_file(&cfg, s_path, err, sizeof err) == -1) {
        FUZZ_CHECK(strncmp(err, s_path, strlen(s_path)) == 0 &&
                       err[strlen(s_path)] == ':',
                   "error does not name the file: \"%s\"", err);
        FUZZ_CHECK(strchr(err, '\n') == NULL, "error is not one line: \"%s\"", err);
        cfg_free(&cfg);
        return 0;
    }

    /* --dump-config prints a valid config file with the same values. */
    FILE *f = fopen(s_dump, "w");
    if (f == NULL)
        abort();
    cfg_dump(&cfg, f);
    fclose(f);
    cfg_t again;
    cfg_defaults(&again);
    FUZZ_CHECK(cfg_load_file(&again, s_dump, err, sizeof err) == 0,
               "the dump of a loaded config does not load: %s", err);
    FUZZ_CHECK(cfg.group_max_events == again.group_max_events &&
                   cfg.map_size_mb == again.map_size_mb &&
                   cfg.subscribe_count == again.subscribe_count &&
                   strcmp(cfg.state_dir, again.state_dir) == 0,
               "the dump of a loaded config loads to other values");
    for (unsigned i = 0; i < cfg.subscribe_count; i++)
        FUZZ_CHECK(strcmp(cfg.subscribe[i], again.subscribe[i]) == 0 &&
                       (cfg.subscribe_key[i] == NULL) == (again.subscribe_key[i] == NULL) &&
                       (cfg.subscribe_key[i] == NULL ||
                        strcmp(cfg.subscribe_key[i], again.subscribe_key[i]) == 0),
                   "the dump of a subscribe entry loads to another entry");
    cfg_free(&again);
    cfg_free(&cfg);
    return 0;
}
