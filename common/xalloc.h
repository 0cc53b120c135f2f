/* xalloc.h: allocation that never returns NULL.
 *
 * funneld and funnelctl cannot do anything useful without memory; like
 * Redis' zmalloc they report and abort instead of threading ENOMEM through
 * every caller. The message names the program (xalloc_set_name(): the
 * daemon puts its journald priority prefix there).
 *
 * Thread-safe (xalloc_set_name() excepted: call it once at start-up).
 */
#ifndef FUNNEL_XALLOC_H
#define FUNNEL_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

/* The name that starts the out-of-memory line, e.g. "<2>funneld" (borrowed,
 * must outlive every allocation). Default: the program's short name. */
void xalloc_set_name(const char *name);

/* malloc/calloc/realloc/strdup/strndup that abort with "<name>: out of
 * memory allocating N bytes" on stderr instead of returning NULL. A size of
 * 0 allocates 1 byte, so the result is never NULL. xcalloc zeroes. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* A new string formatted like printf (caller frees). Aborts like xmalloc. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
