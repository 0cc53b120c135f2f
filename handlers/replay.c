/* replay.c: see replay.h. */
#include "replay.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

struct replay {
    bool found;
    hnd_lead_t lead;
    hnd_effects_t fx;
    size_t n_deadlines;             /* pending, as the store would keep them */
    hnd_deadline_t deadlines[HND_DEADLINES_MAX];
    hnd_ledger_t *ledger;           /* every change */
    size_t n_ledger, cap_ledger;
};

replay_t *replay_new(void)
{
    return xcalloc(1, sizeof(replay_t));
}

void replay_destroy(replay_t **self_p)
{
    if (*self_p == NULL)
        return;
    free((*self_p)->ledger);
    free(*self_p);
    *self_p = NULL;
}

static void s_on_ledger(const hnd_ledger_t *e, void *arg)
{
    replay_t *self = arg;
    if (self->n_ledger == self->cap_ledger) {
        self->cap_ledger = self->cap_ledger ? 2 * self->cap_ledger : 64;
        self->ledger = xrealloc(self->ledger, self->cap_ledger * sizeof *self->ledger);
    }
    self->ledger[self->n_ledger++] = *e;
}

/* The effects' deadlines, as the daemon applies them after the pipeline:
 * a set replaces the lead's deadline of its kind, a clear removes it. */
static void s_keep_deadlines(replay_t *self)
{
    for (size_t i = 0; i < self->fx.n_deadlines; i++) {
        const hnd_deadline_t *d = &self->fx.deadlines[i];
        size_t k = 0;
        while (k < self->n_deadlines && strcmp(self->deadlines[k].kind, d->kind) != 0)
            k++;
        if (d->clear) {
            if (k < self->n_deadlines)
                self->deadlines[k] = self->deadlines[--self->n_deadlines];
        } else if (k < self->n_deadlines) {
            self->deadlines[k].due_ms = d->due_ms;
        } else if (self->n_deadlines < HND_DEADLINES_MAX) {
            self->deadlines[self->n_deadlines++] = *d;
        }
    }
}

void replay_seed(replay_t *self, const hnd_lead_t *lead, const hnd_deadline_t *dl,
                 size_t n_dl)
{
    self->lead = *lead;
    self->found = true;
    self->n_deadlines = 0;
    for (size_t i = 0; i < n_dl && i < HND_DEADLINES_MAX; i++) {
        self->deadlines[i] = dl[i];
        self->deadlines[i].clear = false;
        self->n_deadlines++;
    }
    self->n_ledger = 0;
    for (size_t i = 0; i < lead->n_ledger; i++)
        s_on_ledger(&lead->ledger[i], self);
}

int replay_event(replay_t *self, const hnd_t *const *pipe, const defn_t *d,
                 const hnd_event_t *ev)
{
    hnd_lead_t next = self->lead;
    size_t n_ledger = self->n_ledger;
    hnd_ledger_tap(s_on_ledger, self);
    int rc = pipeline_apply(pipe, ev, d, !self->found, &next, &self->fx);
    hnd_ledger_tap(NULL, NULL);
    if (rc != 0) {
        self->n_ledger = n_ledger;  /* nothing of a refused event is kept */
        return 1;
    }
    self->lead = next;
    self->found = true;
    s_keep_deadlines(self);
    return 0;
}

int replay_deadline(replay_t *self, const defn_t *d, const char *kind,
                    int64_t due_ms, int64_t now_ms, uint64_t seq)
{
    (void)seq;
    if (!self->found)
        return 1;
    size_t k = 0;
    while (k < self->n_deadlines && strcmp(self->deadlines[k].kind, kind) != 0)
        k++;
    if (k == self->n_deadlines)
        return 1;
    /* Taken from the store before it fires, as ingest does (a deadline
     * that was replaced meanwhile goes too, and does not fire). */
    int64_t kept_due = self->deadlines[k].due_ms;
    self->deadlines[k] = self->deadlines[--self->n_deadlines];
    if (kept_due != due_ms)
        return 1;
    hnd_lead_t next = self->lead;
    size_t n_ledger = self->n_ledger;
    hnd_ledger_tap(s_on_ledger, self);
    int rc = pipeline_deadline(d, &next, kind, due_ms, now_ms, &self->fx);
    hnd_ledger_tap(NULL, NULL);
    if (rc != 0) {
        self->n_ledger = n_ledger;
        return 1;
    }
    self->lead = next;
    s_keep_deadlines(self);
    return 0;
}

const hnd_lead_t *replay_lead(const replay_t *self)
{
    return self->found ? &self->lead : NULL;
}

const hnd_ledger_t *replay_ledger(const replay_t *self, size_t *n)
{
    *n = self->n_ledger;
    return self->ledger;
}
