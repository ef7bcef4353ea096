/* The interface-name map (see iface_map.h): CSV text -> entries sorted by (exporter, ifindex), looked up by
 * bisection. The entries' strings point into one copy of the text (unescaped in place by the CSV reader)
 * or, for built maps, into one block of copies.
 *
 * Thread: any; a map never changes after it is built. */
#include "fx/iface_map.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	struct fx_iface_entry entry;
	size_t line; /* of the file, for naming a duplicate; 0 for built maps */
};

struct fx_iface_map {
	atomic_uint refs;
	char *strings; /* every string of the entries */
	struct slot *slots;
	size_t count;
};

static int compare_keys(const struct fx_iface_entry *x, const char *exporter, uint32_t ifindex)
{
	int c = strcmp(x->exporter, exporter);
	if (c)
		return c;
	return x->ifindex < ifindex ? -1 : x->ifindex > ifindex;
}

/* By key, then by line: of two entries for one key, the later line comes second. */
static int compare_slots(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;
	int c = compare_keys(&x->entry, y->entry.exporter, y->entry.ifindex);
	if (c)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int parse_u64(const char *text, uint64_t max, uint64_t *out)
{
	uint64_t value = 0;
	if (!*text)
		return -1;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		uint64_t digit = (uint64_t)(*p - '0');
		if (value > (max - digit) / 10)
			return -1;
		value = value * 10 + digit;
	}
	*out = value;
	return 0;
}

static int parse_entry(const struct fx_csv_record *record, struct fx_iface_entry *entry,
		       struct fx_parse_error *error)
{
	uint64_t ifindex;
	if (record->n_fields != 5)
		return fx_parse_fail(error, record->line,
				     "%zu fields, expected 5 (exporter,ifindex,name,description,speed)",
				     record->n_fields);
	if (!record->lens[0])
		return fx_parse_fail(error, record->line, "the exporter is empty");
	if (parse_u64(record->fields[1], UINT32_MAX, &ifindex))
		return fx_parse_fail(error, record->line,
				     "ifindex \"%s\" is not a whole number from 0 to 4294967295",
				     record->fields[1]);
	if (!record->lens[2])
		return fx_parse_fail(error, record->line, "the name is empty");
	*entry = (struct fx_iface_entry){
	    record->fields[0],	(uint32_t)ifindex, record->fields[2], record->fields[3], 0,
	    record->lens[4] > 0};
	if (entry->has_speed && parse_u64(record->fields[4], UINT64_MAX, &entry->speed_bps))
		return fx_parse_fail(error, record->line,
				     "speed \"%s\" is not a whole number of bits per second",
				     record->fields[4]);
	return 0;
}

static int check_header(const struct fx_csv_record *record, struct fx_parse_error *error)
{
	static const char *const names[] = {"exporter", "ifindex", "name", "description", "speed"};
	bool same = record->n_fields == 5;
	for (size_t i = 0; same && i < 5; i++)
		same = !strcmp(record->fields[i], names[i]);
	if (same)
		return 0;
	return fx_parse_fail(error, record->line,
			     "the first line must be the header \"exporter,ifindex,name,description,speed\"");
}

static struct fx_iface_map *new_map(size_t capacity, size_t strings_len)
{
	struct fx_iface_map *map = calloc(1, sizeof(*map));
	if (!map)
		return NULL;
	atomic_init(&map->refs, 1);
	map->slots = calloc(capacity ? capacity : 1, sizeof(*map->slots));
	map->strings = malloc(strings_len + 1);
	if (!map->slots || !map->strings) {
		fx_iface_map_unref(map);
		return NULL;
	}
	return map;
}

/* Reads every line after the header into the map. */
static int read_entries(struct fx_csv *csv, struct fx_iface_map *map, size_t capacity,
			struct fx_parse_error *error)
{
	struct fx_csv_record record;
	int rc;
	while ((rc = fx_csv_next(csv, &record, error)) == 1) {
		if (map->count == FX_IFACE_MAP_MAX_ENTRIES || map->count == capacity)
			return fx_parse_fail(error, record.line, "more than %d interfaces",
					     FX_IFACE_MAP_MAX_ENTRIES);
		struct slot *slot = &map->slots[map->count];
		if (parse_entry(&record, &slot->entry, error))
			return -1;
		slot->line = record.line;
		map->count++;
	}
	return rc;
}

int fx_iface_map_parse(const char *text, size_t len, struct fx_iface_map **out, struct fx_parse_error *error)
{
	struct fx_csv csv;
	struct fx_csv_record header;
	/* Every entry takes a line of its own: the line count bounds the table. */
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	struct fx_iface_map *map = new_map(lines, len);
	if (!map)
		return fx_parse_fail(error, 0, "out of memory");
	memcpy(map->strings, text, len);
	map->strings[len] = '\0';
	fx_csv_init(&csv, map->strings, len);
	int rc = fx_csv_next(&csv, &header, error);
	if (rc == 0)
		fx_parse_fail(error, 1,
			      "empty file: the first line must be the header "
			      "\"exporter,ifindex,name,description,speed\"");
	if (rc != 1 || check_header(&header, error) || read_entries(&csv, map, lines, error))
		goto fail;
	qsort(map->slots, map->count, sizeof(*map->slots), compare_slots);
	for (size_t i = 1; i < map->count; i++) {
		const struct fx_iface_entry *entry = &map->slots[i].entry;
		if (!compare_keys(&map->slots[i - 1].entry, entry->exporter, entry->ifindex)) {
			fx_parse_fail(error, map->slots[i].line,
				      "exporter \"%s\" ifindex %u is named twice (line %zu)", entry->exporter,
				      entry->ifindex, map->slots[i - 1].line);
			goto fail;
		}
	}
	*out = map;
	return 0;
fail:
	fx_iface_map_unref(map);
	return -1;
}

static size_t strings_size(const struct fx_iface_entry *entries, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += strlen(entries[i].exporter) + strlen(entries[i].name) +
			 strlen(entries[i].description) + 3;
	return total;
}

static const char *copy_string(char **next, const char *text)
{
	size_t len = strlen(text) + 1;
	char *copy = memcpy(*next, text, len);
	*next += len;
	return copy;
}

struct fx_iface_map *fx_iface_map_build(const struct fx_iface_entry *entries, size_t n)
{
	struct fx_iface_map *map = new_map(n, strings_size(entries, n));
	if (!map)
		return NULL;
	char *next = map->strings;
	for (size_t i = 0; i < n; i++) {
		struct slot *slot = &map->slots[i];
		slot->entry = entries[i];
		slot->entry.exporter = copy_string(&next, entries[i].exporter);
		slot->entry.name = copy_string(&next, entries[i].name);
		slot->entry.description = copy_string(&next, entries[i].description);
		slot->line = i + 1; /* keeps the first of two entries for one key */
	}
	map->count = n;
	qsort(map->slots, n, sizeof(*map->slots), compare_slots);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		const struct fx_iface_entry *entry = &map->slots[i].entry;
		if (kept && !compare_keys(&map->slots[kept - 1].entry, entry->exporter, entry->ifindex))
			continue;
		map->slots[kept++] = map->slots[i];
	}
	map->count = kept;
	return map;
}

const struct fx_iface_entry *fx_iface_map_lookup(const struct fx_iface_map *map, const char *exporter,
						 uint32_t ifindex)
{
	if (!map)
		return NULL;
	size_t low = 0, high = map->count;
	while (low < high) {
		size_t mid = low + (high - low) / 2;
		int c = compare_keys(&map->slots[mid].entry, exporter, ifindex);
		if (c == 0)
			return &map->slots[mid].entry;
		if (c < 0)
			low = mid + 1;
		else
			high = mid;
	}
	return NULL;
}

size_t fx_iface_map_count(const struct fx_iface_map *map)
{
	return map ? map->count : 0;
}

const struct fx_iface_entry *fx_iface_map_entry(const struct fx_iface_map *map, size_t i)
{
	return &map->slots[i].entry;
}

struct fx_iface_map *fx_iface_map_ref(struct fx_iface_map *map)
{
	if (map)
		atomic_fetch_add_explicit(&map->refs, 1, memory_order_relaxed);
	return map;
}

void fx_iface_map_unref(struct fx_iface_map *map)
{
	if (!map || atomic_fetch_sub_explicit(&map->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(map->slots);
	free(map->strings);
	free(map);
}
