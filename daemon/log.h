/* log.h: one line per event of interest, to stderr.
 *
 * Lines carry the sd-daemon priority prefix (<3> error ... <7> debug) so
 * that journald files them at the right level when funneld runs under
 * systemd; on a terminal the prefix is replaced by a readable level name.
 * The macros check the level before formatting anything. Callers name
 * their module in brackets: log_info("[store] opened %s", dir).
 */
#ifndef FUNNELD_LOG_H
#define FUNNELD_LOG_H

/* The sd-daemon priorities (SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG of
 * <systemd/sd-daemon.h> are their line prefixes), named apart from
 * <syslog.h>'s LOG_ERR... */
typedef enum {
    LOG_LEVEL_ERR = 3,
    LOG_LEVEL_WARN = 4,
    LOG_LEVEL_INFO = 6,
    LOG_LEVEL_DEBUG = 7,
} log_level_t;

extern log_level_t log_verbosity;

/* Parse "error", "warn", "info" or "debug"; returns 0, or -1 if unknown. */
int log_level_parse(const char *s, log_level_t *out);
/* Name of a level ("info"). */
const char *log_level_name(log_level_t level);

void log_write(log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_at(level, ...)                                                   \
    do {                                                                     \
        if ((level) <= log_verbosity) log_write((level), __VA_ARGS__);       \
    } while (0)
#define log_err(...) log_at(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
