/* defn_locate.c: pass 1 of loading a definition, the locator.
 *
 * libcyaml (pass 2) and the semantic checks (pass 3) know what is wrong but
 * not where: the locator parses the text once with libyaml's event API and
 * records, for every event, where it starts and which node it belongs to,
 * and, for every node, its path ("stages[2].name") and position. Syntax
 * errors are reported here, with libyaml's own position of the problem.
 * defn_fail() writes every error of a load as one line
 * "file:line:column: what is wrong".
 */
#include "defn_int.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define S_DEPTH_MAX 32          /* nesting deeper than this is a mistake */

/* One open mapping or list during pass 1. */
typedef struct {
    bool is_map;
    size_t node;
    size_t next_index;          /* sequences: index of the next entry */
    bool want_key;              /* mappings: the next node is a key */
    size_t member;              /* mappings: node named by the last key */
} s_frame_t;

void defn_loc_free(defn_loc_t *loc)
{
    for (size_t i = 0; i < loc->n_nodes; i++) {
        free(loc->nodes[i].path);
        free(loc->nodes[i].key);
    }
    free(loc->nodes);
    free(loc->events);
    memset(loc, 0, sizeof *loc);
}

static defn_pos_t s_mark(yaml_mark_t m)
{
    defn_pos_t p = { (int)m.line + 1, (int)m.column + 1 };
    return p;
}

static size_t s_loc_add_node(defn_loc_t *loc, size_t parent, char *path,
                             const char *key, defn_pos_t pos)
{
    if (loc->n_nodes == loc->cap_nodes) {
        loc->cap_nodes = loc->cap_nodes ? 2 * loc->cap_nodes : 64;
        loc->nodes = xrealloc(loc->nodes, loc->cap_nodes * sizeof *loc->nodes);
    }
    defn_node_t *n = &loc->nodes[loc->n_nodes];
    n->path = path;
    n->key = key ? xstrdup(key) : NULL;
    n->parent = parent;
    n->pos = pos;
    return loc->n_nodes++;
}

static void s_loc_add_event(defn_loc_t *loc, defn_pos_t pos, size_t node,
                            bool is_key)
{
    if (loc->n_events == loc->cap_events) {
        loc->cap_events = loc->cap_events ? 2 * loc->cap_events : 256;
        loc->events = xrealloc(loc->events,
                                    loc->cap_events * sizeof *loc->events);
    }
    defn_event_t *e = &loc->events[loc->n_events++];
    e->pos = pos;
    e->node = node;
    e->is_key = is_key;
}

/* The one-line error (defn_int.h). The first error wins. */
void defn_fail(defn_loader_t *ld, defn_pos_t pos, const char *fmt, ...)
{
    if (!ld->err || ld->errlen == 0 || ld->err[0] != '\0')
        return;
    char msg[DEFN_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (pos.line > 0)
        snprintf(ld->err, ld->errlen, "%s:%d:%d: %s", ld->name, pos.line,
                 pos.col, msg);
    else
        snprintf(ld->err, ld->errlen, "%s: %s", ld->name, msg);
    for (char *p = ld->err; *p; p++)    /* one line, whatever the text held */
        if ((unsigned char)*p < 0x20)
            *p = '?';
}

/* The position of byte `off` of the text (libyaml's reader errors give only
 * an offset). */
static defn_pos_t s_offset_pos(const defn_loader_t *ld, size_t off)
{
    defn_pos_t p = { 1, 1 };
    for (size_t i = 0; i < off && i < ld->len; i++) {
        if (ld->text[i] == '\n') {
            p.line++;
            p.col = 1;
        } else {
            p.col++;
        }
    }
    return p;
}

static void s_syntax_error(defn_loader_t *ld, const yaml_parser_t *p)
{
    defn_pos_t pos;
    if (p->error == YAML_READER_ERROR) {
        pos = s_offset_pos(ld, p->problem_offset);
        defn_fail(ld, pos, "unreadable text: %s",
                  p->problem ? p->problem : "bad encoding");
        return;
    }
    if (p->error == YAML_MEMORY_ERROR)
        abort();
    pos = s_mark(p->problem_mark);
    if (p->context && (p->context_mark.line != p->problem_mark.line ||
                       p->context_mark.column != p->problem_mark.column))
        defn_fail(ld, pos, "YAML syntax error: %s (%s started at line %zu, "
                  "column %zu)", p->problem ? p->problem : "unknown problem",
                  p->context + (strncmp(p->context, "while ", 6) ? 0 : 6),
                  (size_t)p->context_mark.line + 1,
                  (size_t)p->context_mark.column + 1);
    else
        defn_fail(ld, pos, "YAML syntax error: %s",
                  p->problem ? p->problem : "unknown problem");
}

/* The path of a new node under the top frame. Caller owns the result. */
static char *s_child_path(const defn_loc_t *loc, const s_frame_t *top,
                          const char *key)
{
    const char *base = loc->nodes[top->node].path;
    if (!top->is_map)
        return xasprintf("%s[%zu]", base, top->next_index);
    return xasprintf("%s%s%s", base, base[0] ? "." : "", key);
}

/* Pass 1 (defn_int.h). One libyaml event at a time, with a stack of the
 * open mappings and lists (stack[depth - 1] is the innermost):
 *  - a scalar where a mapping wants a key adds the member's node (its path
 *    is the mapping's plus ".key") and records the key event;
 *  - the value after it (scalar, list or mapping) moves that node's
 *    position to the value;
 *  - an entry of a list adds a node "path[i]";
 *  - a list or mapping pushes a frame, its end pops it.
 * Every event is recorded in order, so that pass 2 can count libcyaml's
 * events and find the one it failed on. The error cases return -1 after
 * defn_fail(); libyaml running out of memory aborts. */
int defn_locate(defn_loader_t *ld)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    s_frame_t stack[S_DEPTH_MAX];
    size_t depth = 0;
    int docs = 0;
    int rc = -1;
    bool done = false;

    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)ld->text,
                                 ld->len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            s_syntax_error(ld, &parser);
            goto cleanup;
        }
        defn_pos_t pos = s_mark(ev.start_mark);
        s_frame_t *top = depth ? &stack[depth - 1] : NULL;
        bool bad = false;

        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            /* fall through */
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
        case YAML_NO_EVENT:
            s_loc_add_event(&ld->loc, pos, DEFN_NONE, false);
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                defn_fail(ld, pos, "a definition is one YAML document; "
                          "remove the second one");
                bad = true;
            }
            s_loc_add_event(&ld->loc, pos, DEFN_NONE, false);
            break;
        case YAML_ALIAS_EVENT:
            defn_fail(ld, pos, "YAML aliases (*%s) are not supported in a "
                      "funnel definition; write the value out",
                      (const char *)ev.data.alias.anchor);
            bad = true;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            size_t node;
            if (top && top->is_map && top->want_key) {
                if (ev.type != YAML_SCALAR_EVENT) {
                    defn_fail(ld, pos, "a key must be a plain word, not a %s",
                              ev.type == YAML_MAPPING_START_EVENT
                                  ? "mapping" : "list");
                    bad = true;
                    break;
                }
                const char *key = (const char *)ev.data.scalar.value;
                node = s_loc_add_node(&ld->loc, top->node,
                                      s_child_path(&ld->loc, top, key),
                                      key, pos);
                s_loc_add_event(&ld->loc, pos, node, true);
                top->member = node;
                top->want_key = false;
                break;
            }
            if (top && top->is_map) {
                node = top->member;
                ld->loc.nodes[node].pos = pos;
                top->want_key = true;
            } else if (top) {
                node = s_loc_add_node(&ld->loc, top->node,
                                      s_child_path(&ld->loc, top, NULL),
                                      NULL, pos);
                top->next_index++;
            } else {
                node = s_loc_add_node(&ld->loc, DEFN_NONE, xstrdup(""),
                                      NULL, pos);
            }
            s_loc_add_event(&ld->loc, pos, node, false);
            if (ev.type != YAML_SCALAR_EVENT) {
                if (depth == S_DEPTH_MAX) {
                    defn_fail(ld, pos, "nested more than %d levels deep",
                              S_DEPTH_MAX);
                    bad = true;
                    break;
                }
                s_frame_t f = {
                    .is_map = ev.type == YAML_MAPPING_START_EVENT,
                    .node = node,
                    .want_key = true,
                    .member = DEFN_NONE,
                };
                stack[depth++] = f;
            }
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            assert(top);
            s_loc_add_event(&ld->loc, pos, top->node, false);
            depth--;
            break;
        }
        yaml_event_delete(&ev);
        if (bad)
            goto cleanup;
    }
    if (docs == 0) {
        defn_pos_t start = { 1, 1 };
        defn_fail(ld, start, "empty definition: expected name:, stages:, "
                  "transitions:, ...");
        goto cleanup;
    }
    rc = 0;
cleanup:
    yaml_parser_delete(&parser);
    return rc;
}

/* The node at path, or its nearest ancestor: a linear search, cut back one
 * component at a time. path is a buffer of its own, changed. */
static const defn_node_t *s_node_at(const defn_loader_t *ld, char *path)
{
    for (;;) {
        for (size_t i = 0; i < ld->loc.n_nodes; i++)
            if (strcmp(ld->loc.nodes[i].path, path) == 0)
                return &ld->loc.nodes[i];
        if (path[0] == '\0')
            return NULL;
        char *cut = strrchr(path, '.');
        char *bracket = strrchr(path, '[');
        if (bracket && (!cut || bracket > cut))
            cut = bracket;
        if (cut)
            *cut = '\0';
        else
            path[0] = '\0';
    }
}

const defn_node_t *defn_node(const defn_loader_t *ld, const char *fmt, ...)
{
    char path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    return s_node_at(ld, path);
}

defn_pos_t defn_pos(const defn_loader_t *ld, const char *fmt, ...)
{
    char path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    return defn_pos_of(s_node_at(ld, path));
}

bool defn_present(const defn_loader_t *ld, const char *path)
{
    const defn_node_t *n = defn_node(ld, "%s", path);
    return n && strcmp(n->path, path) == 0;
}

defn_pos_t defn_pos_of(const defn_node_t *n)
{
    defn_pos_t none = { 0, 0 };
    return n ? n->pos : none;
}
