/* curvekey.c: see curvekey.h. */
#include "curvekey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

bool curvekey_is_key(const char *text, size_t len)
{
    uint8_t bin[32];
    char buf[CURVEKEY_TEXT];
    if (len != 40)
        return false;
    memcpy(buf, text, 40);
    buf[40] = '\0';
    return zmq_z85_decode(bin, buf) != NULL;
}

int curvekey_read(const char *path, bool secret, char out[CURVEKEY_TEXT], char *err,
                  size_t errlen)
{
    char line[512];
    struct stat st;
    int rc = -1;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        snprintf(err, errlen,
                 "%s: a secret key must be readable by its owner only (mode %03o); "
                 "chmod 600 %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        goto out;
    }
    while (fgets(line, sizeof line, f)) {
        char *w = line + strspn(line, " \t\r\n");
        size_t n = strcspn(w, " \t\r\n");
        if (*w == '\0' || (*w == '#' && !curvekey_is_key(w, n)))
            continue;
        if (!curvekey_is_key(w, n)) {
            snprintf(err, errlen, "%s: not a CURVE key (40 Z85 characters, as "
                                  "funnelctl keygen writes)", path);
            goto out;
        }
        memcpy(out, w, 40);
        out[40] = '\0';
        rc = 0;
        goto out;
    }
    snprintf(err, errlen, "%s: no key in the file", path);
out:
    /* The secret is not left behind in stdio's buffer. */
    explicit_bzero(line, sizeof line);
    fclose(f);
    return rc;
}

/* Write text to a new file path (never an existing one) with mode. */
static int s_write_new(const char *path, mode_t mode, const char *text, char *err,
                       size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd == -1) {
        snprintf(err, errlen, "%s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (a key is never replaced: remove it first, or "
                                   "choose another name)"
                                 : "");
        return -1;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    if (w != (ssize_t)len || fsync(fd) == -1 || close(fd) == -1) {
        snprintf(err, errlen, "%s: %s", path, w < 0 ? strerror(errno) : "short write");
        if (w == (ssize_t)len)
            fd = -1; /* closed (or its close failed) */
        if (fd != -1)
            close(fd);
        unlink(path);
        return -1;
    }
    return 0;
}

int curvekey_generate(const char *base, const char *name, char pub[CURVEKEY_TEXT],
                      char *err, size_t errlen)
{
    char sec[CURVEKEY_TEXT], key_path[4096], pub_path[4096], text[256];
    int rc = -1;
    if (snprintf(key_path, sizeof key_path, "%s.key", base) >= (int)sizeof key_path ||
        snprintf(pub_path, sizeof pub_path, "%s.pub", base) >= (int)sizeof pub_path) {
        snprintf(err, errlen, "%s: name too long", base);
        return -1;
    }
    if (zmq_curve_keypair(pub, sec) == -1) {
        snprintf(err, errlen, "cannot make a CURVE key pair: %s", zmq_strerror(errno));
        return -1;
    }
    snprintf(text, sizeof text,
             "# CURVE secret key \"%s\" (funnelctl keygen): keep it private\n%s\n", name,
             sec);
    if (s_write_new(key_path, 0600, text, err, errlen) == -1)
        goto out;
    snprintf(text, sizeof text, "# CURVE public key \"%s\" (funnelctl keygen)\n%s\n", name,
             pub);
    if (s_write_new(pub_path, 0644, text, err, errlen) == -1) {
        unlink(key_path);
        goto out;
    }
    rc = 0;
out:
    explicit_bzero(sec, sizeof sec);
    explicit_bzero(text, sizeof text);
    return rc;
}
