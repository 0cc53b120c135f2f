/* nats_cfg.c: see nats_cfg.h. */
#include "nats_cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "xalloc.h"

/* A decimal number at *p (after blanks), advancing *p. Returns 0, or -1. */
static int s_number(const char **p, unsigned long *out)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
    if (!isdigit((unsigned char)**p))
        return -1;
    char *end;
    errno = 0;
    *out = strtoul(*p, &end, 10);
    if (errno)
        return -1;
    *p = end;
    while (**p == ' ' || **p == '\t')
        (*p)++;
    return 0;
}

int nats_cfg_owns(const char *text, unsigned n, bool *owned, char *err, size_t errlen)
{
    memset(owned, 0, n * sizeof *owned);
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0') {
        for (unsigned i = 0; i < n; i++)
            owned[i] = true;
        return (int)n;
    }
    int count = 0;
    for (;;) {
        unsigned long lo, hi;
        const char *item = p;
        if (s_number(&p, &lo) == -1)
            goto bad;
        hi = lo;
        if (*p == '-') {
            p++;
            if (s_number(&p, &hi) == -1)
                goto bad;
        }
        if (hi < lo) {
            snprintf(err, errlen, "owns: the range %lu-%lu is reversed", lo, hi);
            return -1;
        }
        if (hi >= n) {
            snprintf(err, errlen, "owns: partition %lu is out of range: cluster_partitions "
                                  "is %u, so partitions are 0..%u", hi, n, n - 1);
            return -1;
        }
        for (unsigned long i = lo; i <= hi; i++) {
            if (owned[i]) {
                snprintf(err, errlen, "owns: partition %lu is listed twice", i);
                return -1;
            }
            owned[i] = true;
            count++;
        }
        if (*p == '\0')
            return count;
        if (*p != ',') {
            p = item;
            goto bad;
        }
        p++;
    }
bad:
    snprintf(err, errlen, "owns must be a list of partitions and ranges such as "
                          "\"0-5,9\", not \"%s\"", text);
    return -1;
}

/* Whether each comma-separated URL of the `nats` setting has a scheme NATS
 * knows and a host. */
static int s_check_urls(const char *urls, char *err, size_t errlen)
{
    char *copy = xstrdup(urls), *save = NULL;
    int rc = 0;
    for (char *u = strtok_r(copy, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ')
            u++;
        const char *rest = strncmp(u, "nats://", 7) == 0 ? u + 7
                           : strncmp(u, "tls://", 6) == 0 ? u + 6
                                                          : NULL;
        if (rest == NULL || *rest == '\0' || *rest == ':' || *rest == '/') {
            snprintf(err, errlen, "nats must be NATS server URLs, comma-separated "
                                  "(nats://127.0.0.1:4222, tls://nats.example.com:4222), "
                                  "not \"%s\"", urls);
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

int nats_cfg_check(const cfg_t *cfg, char *err, size_t errlen)
{
    if (cfg->cluster_partitions == 0 || cfg->cluster_partitions > NATS_CFG_PARTITIONS_MAX) {
        snprintf(err, errlen, "cluster_partitions must be 1..%d, not %u",
                 NATS_CFG_PARTITIONS_MAX, cfg->cluster_partitions);
        return -1;
    }
    if (cfg->stream_replicas == 0 || cfg->stream_replicas > 5) {
        snprintf(err, errlen, "stream_replicas must be 1..5, not %u", cfg->stream_replicas);
        return -1;
    }
    size_t sl = strlen(cfg->stream);
    bool name_ok = sl > 0 && sl <= 64;
    for (size_t i = 0; i < sl; i++)
        name_ok &= isalnum((unsigned char)cfg->stream[i]) || cfg->stream[i] == '_' ||
                   cfg->stream[i] == '-';
    if (!name_ok) {
        snprintf(err, errlen, "stream must be 1..64 letters, digits, '_' or '-', not \"%s\"",
                 cfg->stream);
        return -1;
    }
    if (cfg->lease_ms < 1000 || cfg->lease_ms > 600000) {
        snprintf(err, errlen, "lease_ms must be 1000..600000, not %u", cfg->lease_ms);
        return -1;
    }
    bool inst_ok = strlen(cfg->instance) <= 64;
    for (const char *c = cfg->instance; *c; c++)
        inst_ok &= isalnum((unsigned char)*c) || *c == '_' || *c == '-';
    if (!inst_ok) {
        snprintf(err, errlen, "instance must be at most 64 letters, digits, '_' or '-', "
                              "not \"%s\"", cfg->instance);
        return -1;
    }
    bool *owned = xcalloc(cfg->cluster_partitions, sizeof *owned);
    int n = nats_cfg_owns(cfg->owns, cfg->cluster_partitions, owned, err, errlen);
    free(owned);
    if (n < 0)
        return -1;
    if (cfg->nats[0] == '\0') {
        if (cfg->owns[0] || cfg->nats_credentials[0]) {
            snprintf(err, errlen, "%s is set but nats is not: name the NATS servers "
                                  "(nats: nats://127.0.0.1:4222)",
                     cfg->owns[0] ? "owns" : "nats_credentials");
            return -1;
        }
        return 0;
    }
    if (s_check_urls(cfg->nats, err, errlen) == -1)
        return -1;
    /* Each cluster partition is one of the state's partitions. */
    if (cfg->cluster_partitions > STORE_PARTS_MAX) {
        snprintf(err, errlen, "cluster_partitions must be 1..%d in cluster mode (each is one "
                              "of the state's partitions), not %u",
                 STORE_PARTS_MAX, cfg->cluster_partitions);
        return -1;
    }
    if (strcmp(cfg->clock, "event") == 0) {
        snprintf(err, errlen, "clock event is for one funneld (a backfill), not cluster mode: "
                              "the cluster partitions apply with the wall clock");
        return -1;
    }
    if (cfg->nats_credentials[0] && access(cfg->nats_credentials, R_OK) != 0) {
        snprintf(err, errlen, "nats_credentials %s: %s", cfg->nats_credentials,
                 strerror(errno));
        return -1;
    }
    return 0;
}
