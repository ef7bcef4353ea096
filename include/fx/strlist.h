/* Comma-separated lists, as flags write them ("a, b,c"): the one tokenizer of config.c and series.c. */
#ifndef FX_STRLIST_H
#define FX_STRLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The next element of the list at *cursor, spaces around it trimmed (possibly empty: "a,,b"), in
 * *item / *len; advances *cursor past it and its comma. Returns false when the list is used up. */
static inline bool fx_strlist_next(const char **cursor, const char **item, size_t *len)
{
	const char *p = *cursor;
	if (!p)
		return false;
	const char *comma = strchr(p, ',');
	size_t n = comma ? (size_t)(comma - p) : strlen(p);
	*cursor = comma ? comma + 1 : NULL;
	while (n && *p == ' ') {
		p++;
		n--;
	}
	while (n && p[n - 1] == ' ')
		n--;
	*item = p;
	*len = n;
	return true;
}

#endif
