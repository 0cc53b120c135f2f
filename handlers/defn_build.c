/* defn_build.c: pass 3 of loading a definition, the funnel itself and the
 * order of the sections.
 *
 * The semantic check turns libcyaml's structs into a defn_t, section by
 * section (s_sections below): names, references between stages and
 * transitions, ranges, duplicates. Each complaint asks the locator for the
 * position of the node concerned. This file builds the name, the stages,
 * transitions, regressions and personas; defn_rules.c the rules.
 */
#include "defn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hnd.h"

/* ---------------------------------------------------------------------- */
/* Stages.                                                                 */

int defn_find_stage(const defn_t *d, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(d->stages[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* stages and exits: the funnel order, then the exits (terminal, outside
 * the order); at least one stage, at most DEFN_STAGES_MAX in all, names
 * unique. A stage's max_dwell, terminal and conversion_target are checked
 * against each other (a terminal stage does not stall, the last stage has
 * nothing to convert to). */
static int s_build_stages(defn_loader_t *ld, const defn_ytop_t *y,
                          defn_t *d)
{
    char path[64];
    size_t n_exits = y->exits ? y->exits_count : 0;
    size_t n_order = y->stages ? y->stages_count : 0;
    size_t total = n_order + n_exits;

    if (!y->stages && !defn_present(ld, "stages")) {
        defn_fail(ld, defn_pos(ld, "stages"),
                  "missing 'stages': list the funnel's stages in order");
        return -1;
    }
    if (n_order == 0) {
        defn_fail(ld, defn_pos(ld, "stages"),
                  "stages: no stages; a funnel needs at least one");
        return -1;
    }
    if (total > DEFN_STAGES_MAX) {
        const defn_node_t *n = n_order > DEFN_STAGES_MAX
            ? defn_node(ld, "stages[%d]", DEFN_STAGES_MAX)
            : defn_node(ld, "exits[%zu]", DEFN_STAGES_MAX - n_order);
        defn_fail(ld, defn_pos_of(n), "too many stages: %zu, at most %d "
                  "(exits included)", total, DEFN_STAGES_MAX);
        return -1;
    }
    d->stages = xcalloc(total, sizeof *d->stages);
    d->n_order = n_order;

    for (size_t i = 0; i < total; i++) {
        bool is_exit = i >= n_order;
        size_t k = is_exit ? i - n_order : i;
        const char *name = is_exit ? y->exits[k].name : y->stages[k].name;
        defn_stage_t *st = &d->stages[i];

        snprintf(path, sizeof path, "%s[%zu].name", is_exit ? "exits" : "stages",
                 k);
        if (defn_word(ld, name, DEFN_NAME_MAX, "stage name", path) < 0)
            return -1;
        int dup = defn_find_stage(d, i, name);
        if (dup >= 0) {
            bool dup_exit = (size_t)dup >= n_order;
            defn_pos_t first = defn_pos(ld, "%s[%zu].name",
                                        dup_exit ? "exits" : "stages",
                                        dup_exit ? (size_t)dup - n_order
                                                 : (size_t)dup);
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "duplicate stage '%s' (first defined at line %d)", name,
                      first.line);
            return -1;
        }
        st->name = xstrdup(name);
        d->n_stages = i + 1;
        if (is_exit) {
            st->terminal = true;
            continue;
        }

        const defn_ystage_t *ys = &y->stages[k];
        snprintf(path, sizeof path, "stages[%zu].terminal", k);
        if (defn_bool(ld, ys->terminal, path, &st->terminal) < 0)
            return -1;
        snprintf(path, sizeof path, "stages[%zu].max_dwell", k);
        if (defn_duration(ld, ys->max_dwell, path, &st->max_dwell_ms) < 0)
            return -1;
        if (st->terminal && st->max_dwell_ms > 0) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "%s: a terminal stage cannot stall; remove max_dwell",
                      path);
            return -1;
        }
        snprintf(path, sizeof path, "stages[%zu].conversion_target", k);
        if (defn_number(ld, ys->conversion_target, path) < 0)
            return -1;
        if (ys->conversion_target < 0 || ys->conversion_target > 1) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "%s: %g is outside 0..1 (a share of the stage's leads)",
                      path, ys->conversion_target);
            return -1;
        }
        if (ys->conversion_target > 0 && (st->terminal || k + 1 == n_order)) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "%s: stage '%s' has no next stage to convert to", path,
                      name);
            return -1;
        }
        st->conversion_target = ys->conversion_target;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Transitions and regressions.                                            */

static const char *s_source_name(int source)
{
    return source == HND_SRC_MARKETING ? "marketing"
           : source == HND_SRC_SALES   ? "sales"
                                       : "";
}

/* transitions: per entry a target stage, an optional source and condition
 * (kept in d->tconds) and its event types; one transition per type and
 * source among those without a condition, and no condition twice. */
static int s_build_transitions(defn_loader_t *ld, const defn_ytop_t *y,
                               defn_t *d)
{
    char path[96];
    size_t n = 0;

    for (unsigned i = 0; y->transitions && i < y->transitions_count; i++)
        n += y->transitions[i].types ? y->transitions[i].types_count : 0;
    d->transitions = xcalloc(n, sizeof *d->transitions);
    d->tconds = xcalloc(y->transitions ? y->transitions_count : 0,
                             sizeof *d->tconds);

    for (unsigned i = 0; y->transitions && i < y->transitions_count; i++) {
        const defn_ytrans_t *t = &y->transitions[i];
        const defn_cond_t *when = NULL;
        int source, stage;

        snprintf(path, sizeof path, "transitions[%u].to", i);
        if (!t->to) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "transitions[%u]: missing 'to' (the stage it moves into)",
                      i);
            return -1;
        }
        stage = defn_find_stage(d, d->n_stages, t->to);
        if (stage < 0) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "%s: transition to unknown stage '%s'", path, t->to);
            return -1;
        }
        snprintf(path, sizeof path, "transitions[%u].source", i);
        if (defn_source(ld, t->source, path, &source) < 0)
            return -1;
        if (!t->types || t->types_count == 0) {
            defn_fail(ld, defn_pos(ld, "transitions[%u].types", i),
                      "transitions[%u]: no event types (types: [a, b])", i);
            return -1;
        }
        if (t->when) {
            snprintf(path, sizeof path, "transitions[%u].when", i);
            if (defn_cond(ld, t->when, path, false,
                          &d->tconds[d->n_tconds]) < 0) {
                defn_cond_free(&d->tconds[d->n_tconds]);
                return -1;
            }
            when = &d->tconds[d->n_tconds++];
        }
        for (unsigned j = 0; j < t->types_count; j++) {
            const char *type = t->types[j];
            snprintf(path, sizeof path, "transitions[%u].types[%u]", i, j);
            if (defn_word(ld, type, HND_TYPE_MAX, "event type", path) < 0)
                return -1;
            for (size_t k = 0; k < d->n_transitions; k++) {
                const defn_transition_t *o = &d->transitions[k];
                if (o->source != source || strcmp(o->type, type) != 0)
                    continue;
                if (o->when == NULL) {
                    defn_fail(ld, defn_pos(ld, "%s", path),
                              "%s: event type '%s'%s%s already has a "
                              "transition (to '%s')%s", path, type,
                              source ? " from " : "", s_source_name(source),
                              d->stages[o->stage].name,
                              when ? " without a condition, so this one "
                                     "is never used" : "");
                    return -1;
                }
                if (when) {
                    char ta[192], tb[192];
                    defn_cond_text(o->when, ta, sizeof ta);
                    defn_cond_text(when, tb, sizeof tb);
                    if (strcmp(ta, tb) == 0) {
                        defn_fail(ld, defn_pos(ld, "%s", path),
                                  "%s: event type '%s' already has a "
                                  "transition when %s (to '%s')", path,
                                  type, ta,
                                  d->stages[o->stage].name);
                        return -1;
                    }
                }
            }
            defn_transition_t *tr = &d->transitions[d->n_transitions++];
            tr->type = xstrdup(type);
            tr->source = source;
            tr->stage = stage;
            tr->when = (defn_cond_t *)when;
        }
    }
    return 0;
}

/* regressions: per entry a target stage, the stages it moves from (every
 * non-terminal stage but the target by default) and its event types; one
 * regression per type. */
static int s_build_regressions(defn_loader_t *ld, const defn_ytop_t *y,
                               defn_t *d)
{
    char path[96];
    size_t n = 0;

    for (unsigned i = 0; y->regressions && i < y->regressions_count; i++)
        n += y->regressions[i].types ? y->regressions[i].types_count : 0;
    d->regressions = xcalloc(n, sizeof *d->regressions);

    for (unsigned i = 0; y->regressions && i < y->regressions_count; i++) {
        const defn_yregr_t *r = &y->regressions[i];
        uint32_t from = 0;

        snprintf(path, sizeof path, "regressions[%u].to", i);
        if (!r->to) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "regressions[%u]: missing 'to' (the stage it moves back "
                      "to)", i);
            return -1;
        }
        int stage = defn_find_stage(d, d->n_stages, r->to);
        if (stage < 0) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "%s: regression to unknown stage '%s'", path, r->to);
            return -1;
        }
        if (!r->types || r->types_count == 0) {
            defn_fail(ld, defn_pos(ld, "regressions[%u].types", i),
                      "regressions[%u]: no event types (types: [a, b])", i);
            return -1;
        }
        for (unsigned j = 0; r->from && j < r->from_count; j++) {
            snprintf(path, sizeof path, "regressions[%u].from[%u]", i, j);
            int s = defn_find_stage(d, d->n_stages, r->from[j]);
            if (s < 0) {
                defn_fail(ld, defn_pos(ld, "%s", path),
                          "%s: unknown stage '%s'", path, r->from[j]);
                return -1;
            }
            if (s == stage) {
                defn_fail(ld, defn_pos(ld, "%s", path),
                          "%s: a regression from '%s' to itself moves nothing",
                          path, r->from[j]);
                return -1;
            }
            from |= 1u << s;
        }
        if (!r->from)
            for (size_t s = 0; s < d->n_stages; s++)
                if (!d->stages[s].terminal && (int)s != stage)
                    from |= 1u << s;
        for (unsigned j = 0; j < r->types_count; j++) {
            const char *type = r->types[j];
            snprintf(path, sizeof path, "regressions[%u].types[%u]", i, j);
            if (defn_word(ld, type, HND_TYPE_MAX, "event type", path) < 0)
                return -1;
            for (size_t k = 0; k < d->n_regressions; k++)
                if (strcmp(d->regressions[k].type, type) == 0) {
                    defn_fail(ld, defn_pos(ld, "%s", path),
                              "%s: event type '%s' already has a regression "
                              "(to '%s')", path, type,
                              d->stages[d->regressions[k].stage].name);
                    return -1;
                }
            defn_regression_t *rg = &d->regressions[d->n_regressions++];
            rg->type = xstrdup(type);
            rg->from_mask = from;
            rg->stage = stage;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Personas.                                                               */

/* personas: names unique and without '/', none after one that matches
 * every lead; their conditions may count event types, which the type
 * table must then hold (marked persona_ref). Needs the type table. */
static int s_build_personas(defn_loader_t *ld, const defn_ytop_t *y,
                            defn_t *d)
{
    char path[96];
    size_t n = y->personas ? y->personas_count : 0;

    d->personas = xcalloc(n, sizeof *d->personas);
    for (size_t i = 0; i < n; i++) {
        const defn_ypersona_t *yp = &y->personas[i];
        defn_persona_t *p = &d->personas[d->n_personas];

        snprintf(path, sizeof path, "personas[%zu].name", i);
        if (defn_word(ld, yp->name, DEFN_NAME_MAX, "persona name", path) < 0)
            return -1;
        if (strchr(yp->name, '/')) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "%s: '/' is not allowed in a persona name", path);
            return -1;
        }
        for (size_t k = 0; k < d->n_personas; k++)
            if (strcmp(d->personas[k].name, yp->name) == 0) {
                defn_fail(ld, defn_pos(ld, "%s", path),
                          "%s: duplicate persona '%s' (first defined at line "
                          "%d)", path, yp->name,
                          defn_pos(ld, "personas[%zu].name", k).line);
                return -1;
            }
        if (d->n_personas > 0 && d->personas[d->n_personas - 1].n_when == 0) {
            defn_fail(ld, defn_pos(ld, "%s", path),
                      "%s: persona '%s' is never assigned: '%s' before it has "
                      "no conditions and matches every lead", path, yp->name,
                      d->personas[d->n_personas - 1].name);
            return -1;
        }
        p->name = xstrdup(yp->name);
        d->n_personas++;
        size_t nw = yp->when ? yp->when_count : 0;
        p->when = xcalloc(nw, sizeof *p->when);
        for (size_t w = 0; w < nw; w++) {
            snprintf(path, sizeof path, "personas[%zu].when[%zu]", i, w);
            if (defn_cond(ld, &yp->when[w], path, true,
                          &p->when[p->n_when]) < 0) {
                defn_cond_free(&p->when[p->n_when]);
                return -1;
            }
            p->n_when++;
            const defn_cond_t *c = &p->when[w];
            if (c->op != DEFN_COND_COUNT)
                continue;
            int t = defn_type_find(d, c->attr);
            if (t < 0) {
                defn_fail(ld, defn_pos(ld, "%s.count", path),
                          "%s.count: no transition, regression, scoring "
                          "rule or handoff answer names event type '%s', so "
                          "funneld keeps no counter for it", path, c->attr);
                return -1;
            }
            d->types[t].persona_ref = true;
        }
    }
    return 0;
}


/* ---------------------------------------------------------------------- */
/* The sections, in the order they are built.                              */

static int s_build_name(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d)
{
    if (defn_word(ld, y->name, DEFN_NAME_MAX, "definition name", "name") < 0)
        return -1;
    d->name = xstrdup(y->name);
    return 0;
}

static int s_build_type_table(defn_loader_t *ld, const defn_ytop_t *y,
                              defn_t *d)
{
    (void)ld;
    defn_build_types(y, d);
    return 0;
}

/* A section builder: defn_build()'s contract for its part. */
typedef int s_section_fn(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d);

/* A section may use what the ones before it built: transitions,
 * regressions and handoff name stages, qualification weighs the scoring,
 * the type table takes the types of everything before it, and personas
 * count the types in it. The first error stops the build, so the order
 * is also the order in which a definition's mistakes are told. */
static s_section_fn *const s_sections[] = {
    s_build_name,
    s_build_stages,
    s_build_transitions,
    s_build_regressions,
    defn_build_scoring,
    defn_build_qualification,
    defn_build_handoff,
    defn_build_friction,
    defn_build_quality,
    s_build_type_table,
    s_build_personas,
};

int defn_build(defn_loader_t *ld, const defn_ytop_t *y, defn_t *d)
{
    if (!y) {
        defn_fail(ld, defn_pos(ld, "%s", ""), "empty definition");
        return -1;
    }
    for (size_t i = 0; i < sizeof s_sections / sizeof s_sections[0]; i++)
        if (s_sections[i](ld, y, d) < 0)
            return -1;
    return 0;
}
