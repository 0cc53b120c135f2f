/* xalloc.h: allocation that never returns NULL.
 *
 * funneld cannot do anything useful without memory; like Redis' zmalloc it
 * reports and aborts instead of threading ENOMEM through every caller.
 */
#ifndef FUNNELD_XALLOC_H
#define FUNNELD_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
