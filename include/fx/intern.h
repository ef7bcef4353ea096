/* Interned label strings (hostnames). Equal strings get the same pointer, so series keys compare and
 * hash by pointer, and a snapshot can keep the pointer with no copy and no reference count.
 * Strings are never freed before the pool is destroyed; the pool is bounded at creation.
 *
 * Thread: any thread; a mutex guards insertion. Callers on the hot path cache what they looked up. */
#ifndef FX_INTERN_H
#define FX_INTERN_H

#include <stddef.h>

struct fx_intern;

struct fx_intern *fx_intern_create(size_t max_strings);
/* Frees every string: call only after every user of the pointers has stopped. Accepts NULL. */
void fx_intern_destroy(struct fx_intern *pool);

/* Returns the pool's NUL-terminated copy of s[0..len), or NULL when the pool is full (max_strings) or out
 * of memory. s must not contain NUL. */
const char *fx_intern_get(struct fx_intern *pool, const char *s, size_t len);
size_t fx_intern_count(struct fx_intern *pool);

#endif
