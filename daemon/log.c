/* log.c: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

log_level_t log_verbosity = LOG_LEVEL_INFO;

static const struct {
    const char *name;
    log_level_t level;
    const char *prefix;     /* for journald */
} s_levels[] = {
    {"error", LOG_LEVEL_ERR, SD_ERR},
    {"warn", LOG_LEVEL_WARN, SD_WARNING},
    {"info", LOG_LEVEL_INFO, SD_INFO},
    {"debug", LOG_LEVEL_DEBUG, SD_DEBUG},
};

int log_level_parse(const char *s, log_level_t *out)
{
    for (size_t i = 0; i < sizeof s_levels / sizeof s_levels[0]; i++)
        if (strcmp(s, s_levels[i].name) == 0) {
            *out = s_levels[i].level;
            return 0;
        }
    return -1;
}

const char *log_level_name(log_level_t level)
{
    for (size_t i = 0; i < sizeof s_levels / sizeof s_levels[0]; i++)
        if (s_levels[i].level == level)
            return s_levels[i].name;
    return "?";
}

/* The sd-daemon prefix of a level, "<6>". */
static const char *s_prefix(log_level_t level)
{
    for (size_t i = 0; i < sizeof s_levels / sizeof s_levels[0]; i++)
        if (s_levels[i].level == level)
            return s_levels[i].prefix;
    return SD_NOTICE;
}

void log_write(log_level_t level, const char *fmt, ...)
{
    char line[2048];
    int n;
    va_list ap;

    /* On a terminal: a timestamp and the level; under systemd (stderr is
     * not a TTY) the <N> prefix, journald adds the time itself. */
    if (isatty(STDERR_FILENO)) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        localtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %-5s ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000,
                     log_level_name(level));
    } else {
        n = snprintf(line, sizeof line, "%s", s_prefix(level));
    }
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* One write per line, so concurrent writers never interleave lines. */
    if (write(STDERR_FILENO, line, len) < 0) {
        /* Nowhere left to report it. */
    }
}
