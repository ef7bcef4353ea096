/* fx_buf: a growable byte buffer with a hard maximum. Growth doubles, so appends are amortised O(1).
 * Also the digit table of fx_u64_to_dec and the doubling step of every growable array (fx_array_grow). */
#include "fx/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fx_buf_init(struct fx_buf *buf, size_t max)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
	buf->max = max;
}

void fx_buf_free(struct fx_buf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

int fx_buf_reserve(struct fx_buf *buf, size_t more)
{
	if (more > buf->max || buf->len > buf->max - more)
		return FX_BUF_E_TOO_BIG;
	size_t need = buf->len + more + 1; /* room for a NUL terminator */
	if (need <= buf->cap)
		return 0;
	size_t cap = buf->cap ? buf->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > buf->max + 1)
		cap = buf->max + 1;
	char *data = realloc(buf->data, cap);
	if (!data)
		return FX_BUF_E_NOMEM;
	buf->data = data;
	buf->cap = cap;
	return 0;
}

int fx_buf_append(struct fx_buf *buf, const void *bytes, size_t n)
{
	int rc = fx_buf_reserve(buf, n);
	if (rc)
		return rc;
	if (n)
		memcpy(buf->data + buf->len, bytes, n);
	buf->len += n;
	buf->data[buf->len] = '\0';
	return 0;
}

int fx_buf_append_str(struct fx_buf *buf, const char *s)
{
	return fx_buf_append(buf, s, strlen(s));
}

const char fx_digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

void *fx_array_grow(void *items, size_t *cap, size_t n, size_t element_size, size_t first_cap)
{
	if (n < *cap)
		return items;
	size_t grown_cap = *cap ? *cap * 2 : first_cap;
	if (grown_cap < *cap || grown_cap > SIZE_MAX / element_size)
		return NULL;
	void *grown = realloc(items, grown_cap * element_size);
	if (grown)
		*cap = grown_cap;
	return grown;
}

int fx_buf_printf(struct fx_buf *buf, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return FX_BUF_E_NOMEM;
	int rc = fx_buf_reserve(buf, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf->len += (size_t)n;
	return 0;
}
