/* fx_buf: a growable byte buffer with a hard maximum. Growth doubles, so appends are amortised O(1). */
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

int fx_buf_append_str(struct fx_buf *buf, const char *s) { return fx_buf_append(buf, s, strlen(s)); }

size_t fx_u64_to_dec(uint64_t value, char *out)
{
	char digits[20];
	size_t n = 0;
	do {
		digits[n++] = (char)('0' + value % 10);
		value /= 10;
	} while (value);
	for (size_t i = 0; i < n; i++)
		out[i] = digits[n - 1 - i];
	return n;
}

int fx_buf_append_u64(struct fx_buf *buf, uint64_t value)
{
	char digits[20];
	return fx_buf_append(buf, digits, fx_u64_to_dec(value, digits));
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
