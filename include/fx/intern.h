/* Interned label strings (hostnames). Equal strings get the same pointer, so series keys compare and
 * hash by pointer, and a snapshot can keep the pointer with no copy and no reference count.
 * Strings are never freed before the pool is destroyed; the pool is bounded at creation.
 *
 * Thread: any thread; a mutex guards insertion. Callers on the hot path cache what they looked up. */
#ifndef FX_INTERN_H
#define FX_INTERN_H

#include <stddef.h>
#include <stdint.h>

struct fx_intern;

struct fx_intern *fx_intern_create(size_t max_strings);
/* Frees every string: call only after every user of the pointers has stopped. Accepts NULL. */
void fx_intern_destroy(struct fx_intern *pool);

/* Returns the pool's NUL-terminated copy of s[0..len), or NULL when the pool is full (max_strings) or out
 * of memory. s must not contain NUL. */
const char *fx_intern_get(struct fx_intern *pool, const char *s, size_t len);
size_t fx_intern_count(struct fx_intern *pool);

/* The same string by a number: its id (from 1, dense), or 0 when the pool is full or out of memory. A key
 * keeps the 32-bit id of an extra dimension's string where a pointer would not fit. */
uint32_t fx_intern_id(struct fx_intern *pool, const char *s, size_t len);
/* The NUL-terminated string of an id this pool returned, NULL for 0 or an unknown id. Takes no lock: the id
 * must have reached the caller through a lock or another synchronization after fx_intern_id returned it (as
 * a key does, through the store). */
const char *fx_intern_string(const struct fx_intern *pool, uint32_t id);

#endif
