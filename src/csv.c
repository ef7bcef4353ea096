/* RFC 4180 CSV, read in place (see csv.h), and reading a map file whole.
 *
 * Thread: any; a reader is owned by its caller. */
#include "fx/csv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fx_parse_fail(struct fx_parse_error *error, size_t line, const char *fmt, ...)
{
	va_list ap;
	error->line = line;
	va_start(ap, fmt);
	vsnprintf(error->message, sizeof(error->message), fmt, ap);
	va_end(ap);
	return -1;
}

void fx_csv_init(struct fx_csv *csv, char *text, size_t len)
{
	csv->next = text;
	csv->end = text + len;
	csv->line = 1;
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF, and no NUL (a label value cannot
 * hold one). */
static bool valid_utf8(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t trail;
		unsigned char lo = 0x80, hi = 0xBF;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			trail = 1;
		else if (c >= 0xE0 && c <= 0xEF)
			trail = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
		else if (c >= 0xF0 && c <= 0xF4)
			trail = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
		else
			return false;
		if (len - i - 1 < trail || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= trail; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
		i += trail + 1;
	}
	return true;
}

/* A quoted field; p is at its opening quote. Unescapes it in place (to p) and returns the byte after the
 * closing quote, or NULL when the quote never closes. */
static char *read_quoted(struct fx_csv *csv, char *p, size_t *len)
{
	char *out = p;
	p++;
	for (;;) {
		if (p == csv->end)
			return NULL;
		if (*p == '"') {
			if (p + 1 < csv->end && p[1] == '"') {
				*out++ = '"';
				p += 2;
				continue;
			}
			*len = (size_t)(out - (csv->next));
			return p + 1;
		}
		if (*p == '\n')
			csv->line++;
		*out++ = *p++;
	}
}

static bool at_record_end(const struct fx_csv *csv, const char *p)
{
	return p == csv->end || *p == '\n' || (*p == '\r' && (p + 1 == csv->end || p[1] == '\n'));
}

/* One field starting at csv->next; leaves csv->next at its delimiter (',', line end or end of text). */
static int read_field(struct fx_csv *csv, struct fx_csv_record *record, struct fx_parse_error *error)
{
	char *start = csv->next, *p = start;
	size_t len = 0;
	if (record->n_fields == FX_CSV_MAX_FIELDS)
		return fx_parse_fail(error, record->line, "more than %d fields", FX_CSV_MAX_FIELDS);
	if (*p == '"') {
		size_t line = csv->line;
		p = read_quoted(csv, p, &len);
		if (!p)
			return fx_parse_fail(error, line, "a quoted field is never closed");
		if (!at_record_end(csv, p) && *p != ',')
			return fx_parse_fail(error, csv->line, "text after a closing quote");
	} else {
		while (!at_record_end(csv, p) && *p != ',') {
			if (*p == '"')
				return fx_parse_fail(error, csv->line,
						     "a quote inside a field that is not quoted");
			p++;
		}
		len = (size_t)(p - start);
	}
	if (!valid_utf8((const unsigned char *)start, len))
		return fx_parse_fail(error, csv->line, "field %zu is not valid UTF-8 text",
				     record->n_fields + 1);
	record->fields[record->n_fields] = start;
	record->lens[record->n_fields] = len;
	record->n_fields++;
	csv->next = p;
	return 0;
}

int fx_csv_next(struct fx_csv *csv, struct fx_csv_record *record, struct fx_parse_error *error)
{
	/* Blank lines (LF or CRLF alone) carry no record. */
	while (csv->next < csv->end &&
	       (*csv->next == '\n' || (*csv->next == '\r' && at_record_end(csv, csv->next)))) {
		if (*csv->next == '\n')
			csv->line++;
		csv->next++;
	}
	if (csv->next == csv->end)
		return 0;
	record->n_fields = 0;
	record->line = csv->line;
	for (;;) {
		if (read_field(csv, record, error))
			return -1;
		char delimiter = csv->next < csv->end ? *csv->next : '\n';
		/* The delimiter's byte becomes the field's NUL (the reader owns one byte past the end). */
		char *field_end =
		    (char *)record->fields[record->n_fields - 1] + record->lens[record->n_fields - 1];
		if (csv->next < csv->end)
			csv->next += delimiter == '\r' && csv->next + 1 < csv->end ? 2 : 1;
		*field_end = '\0';
		if (delimiter != ',') {
			csv->line++;
			return 1;
		}
		if (csv->next == csv->end) { /* "a,b," at the very end: an empty last field */
			record->fields[record->n_fields] = csv->end;
			record->lens[record->n_fields++] = 0;
			*csv->end = '\0';
			return 1;
		}
	}
}

char *fx_read_file(const char *path, size_t max_bytes, size_t *len, struct fx_parse_error *error)
{
	char *text = NULL;
	FILE *file = fopen(path, "rb");
	if (!file) {
		fx_parse_fail(error, 0, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	text = malloc(max_bytes + 1);
	if (!text) {
		fx_parse_fail(error, 0, "out of memory reading %s", path);
		goto fail;
	}
	*len = fread(text, 1, max_bytes + 1, file);
	if (ferror(file)) {
		fx_parse_fail(error, 0, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	if (*len > max_bytes) {
		fx_parse_fail(error, 0, "%s is larger than %zu bytes", path, max_bytes);
		goto fail;
	}
	text[*len] = '\0';
	fclose(file);
	return text;
fail:
	free(text);
	fclose(file);
	return NULL;
}
