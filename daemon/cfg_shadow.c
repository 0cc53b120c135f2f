/* cfg_shadow.c: the `shadow` list of the config file (see cfg.h): draft
 * definitions applied beside the live one, each {name, definition}. Read
 * with libyaml's document API, as the list of mappings it is; its syntax
 * was checked by cfg_load_file already. */
#include "cfg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "xalloc.h"

static bool s_is(const yaml_node_t *n, const char *text)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(text) &&
           memcmp(n->data.scalar.value, text, n->data.scalar.length) == 0;
}

/* A non-empty scalar without NUL bytes (borrowed), or NULL. */
static const char *s_text(const yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0 ||
        memchr(n->data.scalar.value, '\0', n->data.scalar.length))
        return NULL;
    return (const char *)n->data.scalar.value;
}

bool cfg_shadow_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CFG_SHADOW_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

void cfg_shadow_free(cfg_shadow_t **list, unsigned *n)
{
    for (unsigned i = 0; i < *n; i++) {
        free((*list)[i].name);
        free((*list)[i].definition);
    }
    free(*list);
    *list = NULL;
    *n = 0;
}

/* Add an entry; -1 with err when its name is bad or taken. */
static int s_add(cfg_shadow_t **list, unsigned *n, const char *name, const char *defn,
                 const char *path, const yaml_mark_t *at, char *err, size_t errlen)
{
    if (!cfg_shadow_name_ok(name)) {
        snprintf(err, errlen,
                 "%s:%zu:%zu: shadow name \"%s\" must be 1 to %d letters, digits, - or _",
                 path, at->line + 1, at->column + 1, name, CFG_SHADOW_NAME_MAX);
        return -1;
    }
    for (unsigned i = 0; i < *n; i++)
        if (strcmp((*list)[i].name, name) == 0) {
            snprintf(err, errlen, "%s:%zu:%zu: shadow name \"%s\" is given twice", path,
                     at->line + 1, at->column + 1, name);
            return -1;
        }
    *list = xrealloc(*list, (*n + 1) * sizeof **list);
    (*list)[*n].name = xstrdup(name);
    (*list)[*n].definition = xstrdup(defn);
    (*n)++;
    return 0;
}

int cfg_shadow_load(const char *path, cfg_shadow_t **list, unsigned *n, char *err,
                    size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    cfg_shadow_t *out = NULL;
    unsigned n_out = 0;
    int rc = -1;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(err, errlen, "%s: cannot start the YAML parser", path);
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s: cannot read the YAML document", path);
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *seq = NULL;
    if (root && root->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
             p < root->data.mapping.pairs.top; p++)
            if (s_is(yaml_document_get_node(&doc, p->key), "shadow"))
                seq = yaml_document_get_node(&doc, p->value);
    if (seq == NULL || (seq->type == YAML_SCALAR_NODE && seq->data.scalar.length == 0) ||
        s_is(seq, "~") || s_is(seq, "null"))
        goto done; /* absent or empty: no shadow drafts */
    if (seq->type != YAML_SEQUENCE_NODE) {
        snprintf(err, errlen, "%s:%zu:%zu: shadow must be a list of {name, definition}",
                 path, seq->start_mark.line + 1, seq->start_mark.column + 1);
        goto out;
    }
    for (yaml_node_item_t *it = seq->data.sequence.items.start;
         it < seq->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(&doc, *it);
        const char *name = NULL, *defn = NULL;
        if (e->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *p = e->data.mapping.pairs.start;
                 p < e->data.mapping.pairs.top; p++) {
                yaml_node_t *k = yaml_document_get_node(&doc, p->key);
                yaml_node_t *v = yaml_document_get_node(&doc, p->value);
                const char **dst = s_is(k, "name") ? &name : s_is(k, "definition") ? &defn : NULL;
                if (dst == NULL) {
                    snprintf(err, errlen,
                             "%s:%zu:%zu: unknown key in a shadow entry (it has name and "
                             "definition)",
                             path, k->start_mark.line + 1, k->start_mark.column + 1);
                    goto out;
                }
                if ((*dst = s_text(v)) == NULL) {
                    snprintf(err, errlen, "%s:%zu:%zu: %s must be a non-empty string", path,
                             v->start_mark.line + 1, v->start_mark.column + 1,
                             k->data.scalar.value);
                    goto out;
                }
            }
        }
        if (name == NULL || defn == NULL) {
            snprintf(err, errlen,
                     "%s:%zu:%zu: a shadow entry is a mapping with name and definition "
                     "(a draft definition file)",
                     path, e->start_mark.line + 1, e->start_mark.column + 1);
            goto out;
        }
        if (s_add(&out, &n_out, name, defn, path, &e->start_mark, err, errlen) == -1)
            goto out;
    }
done:
    cfg_shadow_free(list, n);
    *list = out;
    *n = n_out;
    out = NULL;
    n_out = 0;
    rc = 0;
out:
    cfg_shadow_free(&out, &n_out);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

static void s_quoted(FILE *out, const char *v)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputs("\"\n", out);
}

void cfg_shadow_dump(const cfg_t *cfg, FILE *out)
{
    fprintf(out, "\n# draft definitions applied to every live event beside the live one,\n"
                 "# each in its own state (state_dir/state.shadow-NAME), its alerts on\n"
                 "# shadow.NAME.TOPIC; re-read on SIGHUP:\n");
    fprintf(out, "shadow:%s\n", cfg->shadow_count ? "" : " []");
    for (unsigned i = 0; i < cfg->shadow_count; i++) {
        fputs("  - name: ", out);
        s_quoted(out, cfg->shadow[i].name);
        fputs("    definition: ", out);
        s_quoted(out, cfg->shadow[i].definition);
    }
}
