/* A growable byte buffer with a maximum size fixed at creation (curl's dynbuf), the one decimal formatter,
 * and the one grow-by-doubling step of the project's growable arrays. */
#ifndef FX_BUF_H
#define FX_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fx_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* appends past this fail with FX_BUF_E_TOO_BIG and leave the buffer unchanged */
};

#define FX_BUF_E_TOO_BIG (-1)
#define FX_BUF_E_NOMEM (-2)

void fx_buf_init(struct fx_buf *buf, size_t max);
void fx_buf_free(struct fx_buf *buf);
/* Keeps the memory, forgets the contents. */
static inline void fx_buf_reset(struct fx_buf *buf)
{
	buf->len = 0;
}

/* Makes room for at least `more` bytes past len. */
__attribute__((warn_unused_result)) int fx_buf_reserve(struct fx_buf *buf, size_t more);
__attribute__((warn_unused_result)) int fx_buf_append(struct fx_buf *buf, const void *bytes, size_t n);
__attribute__((warn_unused_result)) int fx_buf_append_str(struct fx_buf *buf, const char *s);
__attribute__((warn_unused_result)) int fx_buf_printf(struct fx_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Decimal digits of 00..99, two bytes each. */
extern const char fx_digit_pairs[201];

/* The number of decimal digits of value (1..20). */
static inline size_t fx_dec_len(uint64_t value)
{
	size_t n = 1;
	for (uint64_t limit = 10; value >= limit; limit *= 10) {
		n++;
		if (n == 20)
			break; /* 10^20 does not fit: every value past 10^19 has 20 digits */
	}
	return n;
}

/* Writes the decimal digits of value at out (fx_dec_len(value) bytes, at most 20; no NUL) and returns how
 * many. Two digits a division: one division a digit was the largest cost of a /metrics render. Inline,
 * because the encoders call it for every sample and label number. */
static inline size_t fx_u64_to_dec(uint64_t value, char *out)
{
	size_t n = fx_dec_len(value);
	char *q = out + n;
	while (value >= 100) {
		unsigned pair = (unsigned)(value % 100);
		value /= 100;
		q -= 2;
		memcpy(q, &fx_digit_pairs[2 * pair], 2);
	}
	if (value >= 10) {
		q -= 2;
		memcpy(q, &fx_digit_pairs[2 * value], 2);
	} else {
		*--q = (char)('0' + value);
	}
	return n;
}

/* Makes room for element n of an array of element_size-byte elements with *cap of them allocated: when
 * n == *cap, doubles *cap (first_cap the first time) and reallocates. Returns the array (moved or not), or
 * NULL when memory runs out; *cap and the array are then unchanged. */
void *fx_array_grow(void *items, size_t *cap, size_t n, size_t element_size, size_t first_cap);

#endif
