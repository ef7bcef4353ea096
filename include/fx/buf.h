/* A growable byte buffer with a maximum size fixed at creation (curl's dynbuf). */
#ifndef FX_BUF_H
#define FX_BUF_H

#include <stddef.h>
#include <stdint.h>

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
static inline void fx_buf_reset(struct fx_buf *buf) { buf->len = 0; }

/* Makes room for at least `more` bytes past len. */
__attribute__((warn_unused_result)) int fx_buf_reserve(struct fx_buf *buf, size_t more);
__attribute__((warn_unused_result)) int fx_buf_append(struct fx_buf *buf, const void *bytes, size_t n);
__attribute__((warn_unused_result)) int fx_buf_append_str(struct fx_buf *buf, const char *s);
__attribute__((warn_unused_result)) int fx_buf_append_u64(struct fx_buf *buf, uint64_t value);
__attribute__((warn_unused_result)) int fx_buf_printf(struct fx_buf *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Writes the decimal digits of value to out (at least 20 bytes) and returns how many. */
size_t fx_u64_to_dec(uint64_t value, char *out);

#endif
