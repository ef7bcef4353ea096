/* The AS-name map: cidr-report's asn.txt ("<asn>\t<name>, <CC>" per line) parsed into an immutable,
 * reference-counted ASN -> name table, and looked up by binary search. Pure: no I/O, no lock.
 *
 * Invariants: a map never changes after fx_asn_map_parse returns (only its reference count does) and is
 * freed by its last unref; names are valid UTF-8 without NUL, never empty.
 *
 * Thread: any; a map may be read by any number of threads while they hold a reference. */
#include "fx/asn_map.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fx/log.h"

/* One line of the list. The name is at names + name_offset, NUL-terminated. Offsets grow with the line
 * number, so sorting by (asn, name_offset) puts a later duplicate after an earlier one. */
struct asn_entry {
	uint32_t asn;
	uint32_t name_offset;
};

/* Immutable after fx_asn_map_parse returns; only `refs` changes, atomically. Two allocations: this struct
 * with its entries (sorted by asn, unique), and the pool of names. */
struct fx_asn_map {
	atomic_size_t refs;
	size_t count;
	char *names;
	struct asn_entry entries[];
};

/* Bounded so that name offsets fit in 32 bits (every loader also caps its input at MAX_LIST_BYTES). */
#define MAX_PARSE_BYTES ((size_t)UINT32_MAX / 2)

/* Go's \s in RE2 (ASCII): tab, newline, form feed, carriage return, space. */
static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* Go's \w (ASCII): [0-9A-Za-z_]. */
static bool is_word(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

/* Copies the valid UTF-8 sequences of [in, in + len) to out and drops every other byte, as Go's
 * strings.ToValidUTF8(s, "") does (invalid: stray continuation bytes, overlong forms, surrogates, values
 * past U+10FFFF, truncated sequences). NUL bytes are dropped too, since names are C strings. Returns the
 * number of bytes written (at most len). */
static size_t copy_valid_utf8(char *out, const unsigned char *in, size_t len)
{
	size_t n = 0, i = 0;
	while (i < len) {
		unsigned char c = in[i];
		if (c < 0x80) {
			if (c != 0)
				out[n++] = (char)c;
			i++;
			continue;
		}
		size_t width;
		unsigned char lo = 0x80, hi = 0xBF; /* the accepted range of the second byte */
		if (c >= 0xC2 && c <= 0xDF) {
			width = 2;
		} else if (c >= 0xE0 && c <= 0xEF) {
			width = 3;
			if (c == 0xE0)
				lo = 0xA0; /* no overlong forms */
			else if (c == 0xED)
				hi = 0x9F; /* no surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			width = 4;
			if (c == 0xF0)
				lo = 0x90; /* no overlong forms */
			else if (c == 0xF4)
				hi = 0x8F; /* nothing past U+10FFFF */
		} else {
			i++; /* a continuation byte without a lead, or C0, C1, F5..FF */
			continue;
		}
		bool valid = i + width <= len && in[i + 1] >= lo && in[i + 1] <= hi;
		for (size_t k = 2; valid && k < width; k++)
			valid = in[i + k] >= 0x80 && in[i + k] <= 0xBF;
		if (!valid) {
			i++; /* drop the lead byte only; what follows is examined again, as Go does */
			continue;
		}
		memcpy(out + n, in + i, width);
		n += width;
		i += width;
	}
	return n;
}

/* Matches one line (without its '\n') against the Go program's `([\d]+)\s+(.*),\s(\w{2})`, anchored at
 * both ends except for surrounding whitespace: digits, whitespace, then the name, which is everything up
 * to the last ", CC". Returns false for a line that does not match or an ASN past 32 bits. */
static bool match_line(const unsigned char *line, size_t len, uint32_t *asn, const unsigned char **name,
		       size_t *name_len)
{
	size_t i = 0;
	while (len > 0 && is_space(line[len - 1]))
		len--; /* also the '\r' of CRLF */
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	size_t digits_start = i;
	uint64_t value = 0;
	while (i < len && line[i] >= '0' && line[i] <= '9') {
		value = value * 10 + (uint64_t)(line[i] - '0');
		if (value > UINT32_MAX)
			return false;
		i++;
	}
	if (i == digits_start || i == len || !is_space(line[i]))
		return false;
	while (i < len && is_space(line[i]))
		i++;
	/* The rest is "<name>,<space><word><word>". */
	if (len - i < 4 || !is_word(line[len - 1]) || !is_word(line[len - 2]) || !is_space(line[len - 3]) ||
	    line[len - 4] != ',')
		return false;
	*asn = (uint32_t)value;
	*name = line + i;
	*name_len = len - 4 - i;
	return true;
}

static int compare_entries(const void *a, const void *b)
{
	const struct asn_entry *x = a, *y = b;
	if (x->asn != y->asn)
		return x->asn < y->asn ? -1 : 1;
	return x->name_offset < y->name_offset ? -1 : x->name_offset > y->name_offset;
}

struct fx_asn_map *fx_asn_map_parse(const char *text, size_t len, size_t *bad_lines)
{
	struct fx_asn_map *map = NULL;
	char *names = NULL;
	size_t bad = 0;

	if (bad_lines)
		*bad_lines = 0;
	if (len > MAX_PARSE_BYTES) {
		fx_error("asn names: a list of %zu bytes is too large to parse", len);
		goto fail;
	}
	/* Upper bounds: one entry per line; the names (each with its NUL) fit in the text plus one byte. */
	size_t max_lines = 1;
	for (const char *p = text; p && (p = memchr(p, '\n', len - (size_t)(p - text))) != NULL; p++)
		max_lines++;
	map = malloc(sizeof(*map) + max_lines * sizeof(map->entries[0]));
	names = malloc(len + 1);
	if (!map || !names)
		goto fail;

	size_t count = 0, names_len = 0;
	const unsigned char *p = (const unsigned char *)text, *end = p + len;
	while (p < end) {
		const unsigned char *newline = memchr(p, '\n', (size_t)(end - p));
		const unsigned char *line_end = newline ? newline : end;
		size_t line_len = (size_t)(line_end - p);
		uint32_t asn;
		const unsigned char *name;
		size_t name_len;
		bool blank = true;
		for (size_t k = 0; k < line_len && blank; k++)
			blank = is_space(p[k]);
		if (blank) {
			/* Blank lines (and the end of the text) are not counted as bad. */
		} else if (!match_line(p, line_len, &asn, &name, &name_len)) {
			bad++;
		} else {
			size_t written = copy_valid_utf8(names + names_len, name, name_len);
			if (written == 0) {
				bad++; /* an empty name would be an absent label: treat it as unknown */
			} else {
				assert(count < max_lines);
				map->entries[count].asn = asn;
				map->entries[count].name_offset = (uint32_t)names_len;
				count++;
				names[names_len + written] = '\0';
				names_len += written + 1;
			}
		}
		p = line_end + 1;
	}

	/* Sort by (asn, line order) and keep the last entry of each ASN: a later duplicate wins. */
	qsort(map->entries, count, sizeof(map->entries[0]), compare_entries);
	size_t unique = 0;
	for (size_t k = 0; k < count; k++) {
		if (unique > 0 && map->entries[unique - 1].asn == map->entries[k].asn)
			unique--;
		map->entries[unique++] = map->entries[k];
	}

	/* Give back what the upper bounds over-allocated; offsets, not pointers, so moving is safe. */
	struct fx_asn_map *shrunk =
	    realloc(map, sizeof(*map) + (unique ? unique : 1) * sizeof(map->entries[0]));
	if (shrunk)
		map = shrunk;
	char *shrunk_names = realloc(names, names_len ? names_len : 1);
	if (shrunk_names)
		names = shrunk_names;
	atomic_init(&map->refs, 1);
	map->count = unique;
	map->names = names;
	if (bad_lines)
		*bad_lines = bad;
	return map;

fail:
	free(map);
	free(names);
	return NULL;
}

const char *fx_asn_map_lookup(const struct fx_asn_map *map, uint32_t asn)
{
	if (!map)
		return NULL;
	size_t lo = 0, hi = map->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t found = map->entries[mid].asn;
		if (found == asn)
			return map->names + map->entries[mid].name_offset;
		if (found < asn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

size_t fx_asn_map_count(const struct fx_asn_map *map)
{
	return map ? map->count : 0;
}

struct fx_asn_map *fx_asn_map_ref(struct fx_asn_map *map)
{
	if (map)
		atomic_fetch_add_explicit(&map->refs, 1, memory_order_relaxed);
	return map;
}

void fx_asn_map_unref(struct fx_asn_map *map)
{
	if (!map)
		return;
	/* acq_rel: the thread that frees sees every other holder's reads as finished. */
	if (atomic_fetch_sub_explicit(&map->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(map->names);
	free(map);
}
