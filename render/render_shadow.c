/* render_shadow.c: the shadow drafts (ShadowReply, PromoteReply) as JSON
 * and as text. */
#include <inttypes.h>

#include "render.h"

static json_t *s_u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *s_draft_json(const Funnel__V1__ShadowDraft *d)
{
    json_t *weeks = json_array();
    for (size_t i = 0; i < d->n_weeks; i++)
        json_array_append_new(weeks, json_pack("{s:s, s:o, s:o, s:o}", "week",
                                               d->weeks[i]->week, "both",
                                               s_u64(d->weeks[i]->both), "only_live",
                                               s_u64(d->weeks[i]->only_live), "only_draft",
                                               s_u64(d->weeks[i]->only_draft)));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "name", d->name, "path", d->path, "definition", d->definition, "hash",
                     d->hash, "state", d->state, "applied_seq", s_u64(d->applied_seq),
                     "log_seq", s_u64(d->log_seq), "handoffs", s_u64(d->handoffs),
                     "live_handoffs", s_u64(d->live_handoffs), "both", s_u64(d->both),
                     "only_live", s_u64(d->only_live), "only_draft", s_u64(d->only_draft),
                     "weeks", weeks);
}

json_t *render_shadow_json(const Funnel__V1__ShadowReply *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->n_drafts; i++)
        json_array_append_new(a, s_draft_json(r->drafts[i]));
    return json_pack("{s:o}", "drafts", a);
}

void render_shadow_text(FILE *out, const Funnel__V1__ShadowReply *r)
{
    if (r->n_drafts == 0) {
        fprintf(out, "No shadow drafts (config key shadow: a list of {name, definition}).\n");
        return;
    }
    for (size_t i = 0; i < r->n_drafts; i++) {
        const Funnel__V1__ShadowDraft *d = r->drafts[i];
        if (i)
            fputc('\n', out);
        fprintf(out, "Shadow %s: definition \"%s\" (%s, %s), %s, applied %" PRIu64
                     " of %" PRIu64 " log entries\n",
                d->name, d->definition, d->path, d->hash, d->state, d->applied_seq,
                d->log_seq);
        fprintf(out, "  handoffs      %10" PRIu64 "   (live %" PRIu64 ")\n", d->handoffs,
                d->live_handoffs);
        fprintf(out, "  leads handed off: both %" PRIu64 ", only live %" PRIu64
                     ", only draft %" PRIu64 "\n",
                d->both, d->only_live, d->only_draft);
        if (d->n_weeks == 0)
            continue;
        fprintf(out, "  %-10s %10s %10s %10s\n", "week", "both", "only_live", "only_draft");
        for (size_t k = 0; k < d->n_weeks; k++)
            fprintf(out, "  %-10s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
                    d->weeks[k]->week, d->weeks[k]->both, d->weeks[k]->only_live,
                    d->weeks[k]->only_draft);
    }
}

json_t *render_promote_json(const Funnel__V1__PromoteReply *r)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s}", "definition", r->definition, "path",
                     r->path, "old_state", r->old_state, "applied_seq", s_u64(r->applied_seq),
                     "ingest_paused_ms", s_u64(r->ingest_paused_ms), "warning", r->warning);
}

void render_promote_text(FILE *out, const char *name, const Funnel__V1__PromoteReply *r)
{
    fprintf(out, "Shadow draft %s is live: definition %s, written to %s.\n"
                 "Its state (at log entry %" PRIu64 ") is the live state; the old one is kept "
                 "as %s.\nIngest waited %" PRIu64 " ms.\n",
            name, r->definition, r->path, r->applied_seq, r->old_state, r->ingest_paused_ms);
    if (r->warning[0])
        fprintf(out, "Warning: %s.\n", r->warning);
}
