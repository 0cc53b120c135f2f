/* curvekey.h: CURVE key files, as funnelctl keygen writes them and funneld
 * and funnelctl read them. Shared by both programs (funnelctl compiles
 * this file too), so the format is defined once.
 *
 * A key file is text: "#" comment lines, then the 40-character Z85 key on
 * a line of its own. NAME.key holds a secret key (mode 0600), NAME.pub the
 * public one. (Z85's alphabet has '#': a line whose first word is a valid
 * key is a key, any other line beginning with '#' a comment.)
 *
 * Threading: any thread; no state.
 */
#ifndef FUNNELD_CURVEKEY_H
#define FUNNELD_CURVEKEY_H

#include <stdbool.h>
#include <stddef.h>

/* A key as Z85 text: 40 characters and a NUL. */
#define CURVEKEY_TEXT 41

/* Whether text[0..len) is a Z85 CURVE key (40 characters that decode). */
bool curvekey_is_key(const char *text, size_t len);

/* Read a key file: the first line whose first word is a key. With secret,
 * the file must not be readable by group or others. Returns 0 and the key
 * in out, or -1 with one line in err naming the file. */
int curvekey_read(const char *path, bool secret, char out[CURVEKEY_TEXT], char *err,
                  size_t errlen);

/* Make a new key pair and write base.key (mode 0600) and base.pub; name
 * goes into their comment lines. Existing files are never replaced.
 * Returns 0 with the public key in pub, or -1 with one line in err (and
 * neither file left behind). */
int curvekey_generate(const char *base, const char *name, char pub[CURVEKEY_TEXT],
                      char *err, size_t errlen);

#endif
