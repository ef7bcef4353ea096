/* An RFC 4180 CSV reader for the operator's map files (interface names, sampling rates): fields separated
 * by commas, records by CRLF or LF, a field in double quotes may hold commas, line breaks and doubled
 * quotes. Pure: text in, records out, no I/O. Blank lines are skipped. Every field must be valid UTF-8.
 *
 * The reader unescapes in place: the text must be writable and have one writable byte after `len` (each
 * field is then NUL-terminated in it).
 *
 * Thread: a reader belongs to the thread that created it. */
#ifndef FX_CSV_H
#define FX_CSV_H

#include <stddef.h>

#define FX_CSV_MAX_FIELDS 16

struct fx_csv {
	char *next;
	char *end;
	size_t line; /* 1-based line of the next byte */
};

struct fx_csv_record {
	const char *fields[FX_CSV_MAX_FIELDS]; /* NUL-terminated, pointing into the text */
	size_t lens[FX_CSV_MAX_FIELDS];
	size_t n_fields;
	size_t line; /* where the record starts */
};

/* Why a file was refused: the 1-based line and a sentence. Filled by the readers of each format too. */
struct fx_parse_error {
	size_t line; /* 0: not about one line (I/O, memory) */
	char message[200];
};

void fx_csv_init(struct fx_csv *csv, char *text, size_t len);

/* Reads the next record. Returns 1 with *record filled, 0 at the end, -1 on a syntax error (then *error
 * names the line: an unterminated quote, a quote inside an unquoted field, text after a closing quote, too
 * many fields, invalid UTF-8). */
int fx_csv_next(struct fx_csv *csv, struct fx_csv_record *record, struct fx_parse_error *error);

/* Sets *error to line and a printf message. Returns -1, for `return fx_parse_fail(...)`. */
int fx_parse_fail(struct fx_parse_error *error, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads a whole file into a malloc'ed, NUL-terminated buffer of at most max_bytes (one more byte is
 * allocated for the reader's NUL). Returns NULL with *error set when it cannot. */
char *fx_read_file(const char *path, size_t max_bytes, size_t *len, struct fx_parse_error *error);

#endif
