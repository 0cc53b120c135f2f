/* ctl_util.c: funnelctl's messages, clocks, ids, JSON output and socket
 * helpers; see ctl.h. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "xalloc.h"
#include "curvekey.h"
#include "defn.h"

/* Whether a progress line is on stderr now (cleared before any message). */
static bool s_progress_shown;

void ctl_mark_progress(void)
{
    s_progress_shown = true;
}

void ctl_clear_progress(void)
{
    if (s_progress_shown) {
        fputs("\r\033[K", stderr);
        s_progress_shown = false;
    }
}

void ctl_error(const char *fmt, ...)
{
    va_list ap;
    ctl_clear_progress();
    fputs("funnelctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int64_t ctl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ctl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ctl_random_hex(char *out, size_t n)
{
    unsigned char buf[32];
    assert(n <= sizeof buf);
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* No entropy source: fall back to time and pid, still unique
             * enough for batch and request ids. */
            uint64_t x = (uint64_t)ctl_wall_ms() ^ ((uint64_t)getpid() << 40) ^
                         (uint64_t)ctl_mono_ms() << 20;
            for (; got < n; got++, x = x * 6364136223846793005u + 1442695040888963407u)
                buf[got] = (unsigned char)(x >> 56);
            break;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", buf[i]);
}

void ctl_print_json(json_t *doc, size_t flags)
{
    json_dumpf(doc, stdout, flags);
    fputc('\n', stdout);
    fflush(stdout);
}

void ctl_print_doc(json_t *doc)
{
    ctl_print_json(doc, CTL_JSON_FLAGS);
    json_decref(doc);
}

int ctl_curve(ctl_opts_t *g, void *sock)
{
    char err[512];
    if (g->server_key == NULL && g->client_key == NULL)
        return 0;
    if (!g->curve_read) {
        if (g->server_key == NULL || g->client_key == NULL) {
            ctl_error("CURVE needs both --server-key (funneld's NAME.pub) and "
                      "--client-key (this client's NAME.key)");
            return -1;
        }
        if (curvekey_read(g->server_key, false, g->curve_server, err, sizeof err) == -1 ||
            curvekey_read(g->client_key, true, g->curve_secret, err, sizeof err) == -1) {
            ctl_error("%s", err);
            return -1;
        }
        if (zmq_curve_public(g->curve_public, g->curve_secret) == -1) {
            ctl_error("%s: cannot derive the public key: %s", g->client_key,
                      zmq_strerror(zmq_errno()));
            return -1;
        }
        g->curve_read = 1;
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, g->curve_server, 41) == -1 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, g->curve_public, 41) == -1 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, g->curve_secret, 41) == -1) {
        ctl_error("cannot set the CURVE keys: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

const char *ctl_curve_hint(const ctl_opts_t *g)
{
    return g->curve_read ? "; with CURVE: is --server-key funneld's key, and is the "
                           "--client-key's public key in funneld's clients file?"
                         : "";
}

void *ctl_socket(ctl_opts_t *g, void *ctx, int type, const char *endpoint)
{
    void *sock = zmq_socket(ctx, type);
    if (!sock) {
        ctl_error("cannot create a socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int linger = 0;
    if (zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) == -1) {
        ctl_error("cannot set ZMQ_LINGER: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (ctl_curve(g, sock) == -1)
        goto fail;
    if (zmq_connect(sock, endpoint) == -1) {
        ctl_error("cannot connect to \"%s\": %s", endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    return sock;
fail:
    zmq_close(sock);
    return NULL;
}

int ctl_recv_payload(void *sock, zmq_msg_t *msg, int flags)
{
    zmq_msg_init(msg);
    for (;;) {
        if (zmq_msg_recv(msg, sock, flags) == -1) {
            zmq_msg_close(msg);
            return -1;
        }
        if (!zmq_msg_more(msg))
            return 0;
        flags = 0; /* the rest of a multipart message is already here */
    }
}

int ctl_wait_readable(void *sock, long timeout_ms)
{
    zmq_pollitem_t item = { .socket = sock, .events = ZMQ_POLLIN };
    int r = zmq_poll(&item, 1, timeout_ms);
    if (r == -1)
        return -1;
    return r > 0 && (item.revents & ZMQ_POLLIN) ? 1 : 0;
}

char *ctl_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        ctl_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            ctl_error("%s: larger than %zu bytes", path, max);
            goto fail;
        }
        if (got == 0)
            break;
        if (n == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
    }
    if (ferror(f)) {
        ctl_error("%s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

char *ctl_read_draft(const char *path)
{
    char err[1024];
    defn_t *d = defn_load_file(path, err, sizeof err);
    if (d == NULL) {
        ctl_clear_progress();
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    defn_destroy(&d);
    size_t len;
    char *text = ctl_read_file(path, 1 << 20, &len);
    if (text && strlen(text) != len) {
        ctl_error("%s: holds a NUL byte", path);
        free(text);
        return NULL;
    }
    return text;
}
