/* progress.c: see progress.h. */
#include "progress.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xalloc.h"

/* A terminal line is redrawn at most this often. */
#define S_DRAW_MS 200
/* systemd hears from a long start-up at least this often. */
#define S_NOTIFY_MS 2000

struct progress {
    const char *module, *verb, *done_verb, *unit;
    uint64_t total, done;
    unsigned interval_ms;
    bool tty;          /* redraw one line on stderr instead of logging */
    bool drawn;        /* a line is on the terminal: clear it at the end */
    bool notify;       /* NOTIFY_SOCKET is set */
    uint64_t t0, last_log, last_draw, last_notify;
};

static uint64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void progress_count_text(uint64_t n, char *out, size_t cap)
{
    static const char suffix[] = "kMGTPE";
    if (n < 10000) {
        snprintf(out, cap, "%" PRIu64, n);
        return;
    }
    double v = (double)n;
    int i = -1;
    while (v >= 1000.0 && i < (int)sizeof suffix - 2) {
        v /= 1000.0;
        i++;
    }
    /* One decimal while it says something: 1.2M, 12.3k, but 10M, 250k. */
    if (v < 100.0 && (uint64_t)(v * 10.0) % 10 != 0)
        snprintf(out, cap, "%.1f%c", (double)(uint64_t)(v * 10.0) / 10.0, suffix[i]);
    else
        snprintf(out, cap, "%" PRIu64 "%c", (uint64_t)v, suffix[i]);
}

void progress_duration_text(uint64_t ms, char *out, size_t cap)
{
    uint64_t s = (ms + 500) / 1000;
    if (s < 60)
        snprintf(out, cap, "%" PRIu64 "s", s);
    else if (s < 3600)
        snprintf(out, cap, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else
        snprintf(out, cap, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
}

/* "replaying 1.2M of 10M events (12%), 85.3k events/s, 1m45s left" */
static void s_text(const progress_t *self, uint64_t now, char *out, size_t cap)
{
    char done[32], total[32], rate[32], left[32];
    progress_count_text(self->done, done, sizeof done);
    progress_count_text(self->total, total, sizeof total);
    uint64_t pct = self->total ? self->done * 100 / self->total : 100;
    uint64_t elapsed = now - self->t0;
    if (self->done == 0 || elapsed == 0) {
        snprintf(out, cap, "%s %s of %s %s (%" PRIu64 "%%)", self->verb, done, total,
                 self->unit, pct);
        return;
    }
    double per_s = (double)self->done * 1000.0 / (double)elapsed;
    progress_count_text((uint64_t)per_s, rate, sizeof rate);
    uint64_t rest = self->total > self->done ? self->total - self->done : 0;
    progress_duration_text((uint64_t)((double)rest * 1000.0 / per_s), left, sizeof left);
    snprintf(out, cap, "%s %s of %s %s (%" PRIu64 "%%), %s %s/s, %s left", self->verb,
             done, total, self->unit, pct, rate, self->unit, left);
}

static void s_notify(progress_t *self, const char *text)
{
    /* sd_notify copies nothing it does not need; one datagram for both. */
    sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=%s",
               (unsigned long long)PROGRESS_EXTEND_USEC, text);
}

progress_t *progress_new(const char *module, const char *verb, const char *done_verb,
                         const char *unit, uint64_t total, unsigned interval_ms)
{
    progress_t *self = xcalloc(1, sizeof *self);
    self->module = module;
    self->verb = verb;
    self->done_verb = done_verb;
    self->unit = unit;
    self->total = total;
    self->interval_ms = interval_ms;
    self->tty = isatty(STDERR_FILENO) == 1;
    self->notify = getenv("NOTIFY_SOCKET") != NULL;
    self->t0 = self->last_log = self->last_notify = s_mono_ms();
    self->last_draw = 0; /* the first update draws at once */
    if (self->notify) {
        char text[256];
        s_text(self, self->t0, text, sizeof text);
        s_notify(self, text);
    }
    return self;
}

void progress_update(progress_t *self, uint64_t done)
{
    uint64_t now = s_mono_ms();
    self->done = done;
    bool draw = self->tty && now - self->last_draw >= S_DRAW_MS;
    bool log = !self->tty && now - self->last_log >= self->interval_ms;
    unsigned every = self->interval_ms < S_NOTIFY_MS ? self->interval_ms : S_NOTIFY_MS;
    bool notify = self->notify && now - self->last_notify >= every;
    if (!draw && !(log && LOG_LEVEL_INFO <= log_verbosity) && !notify)
        return;

    char text[256];
    s_text(self, now, text, sizeof text);
    if (draw) {
        /* \r and erase to the end of the line: the line is redrawn in place. */
        fprintf(stderr, "\r\033[K%s", text);
        fflush(stderr);
        self->drawn = true;
        self->last_draw = now;
    }
    if (log) {
        log_info("[%s] %s", self->module, text);
        self->last_log = now;
    }
    if (notify) {
        s_notify(self, text);
        self->last_notify = now;
    }
}

static void s_clear_line(progress_t *self)
{
    if (self->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        self->drawn = false;
    }
}

void progress_done(progress_t *self)
{
    uint64_t elapsed = s_mono_ms() - self->t0;
    s_clear_line(self);
    char took[32], rate[32];
    progress_duration_text(elapsed, took, sizeof took);
    progress_count_text(elapsed ? self->done * 1000 / elapsed : self->done, rate,
                        sizeof rate);
    log_info("[%s] %s %" PRIu64 " %s in %s (%s %s/s)", self->module, self->done_verb,
             self->done, self->unit, took, rate, self->unit);
    if (self->notify)
        sd_notifyf(0, "STATUS=%s %" PRIu64 " %s", self->done_verb, self->done, self->unit);
}

void progress_destroy(progress_t **self_p)
{
    progress_t *self = *self_p;
    if (self == NULL)
        return;
    s_clear_line(self);
    free(self);
    *self_p = NULL;
}
