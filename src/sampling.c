/* Sampling renormalization's rates: the --sampling-rates file as an immutable map, swapped by reference
 * on reload, and the per-worker counts of where each record's rate came from (see sampling.h).
 *
 * Thread: consumer threads read the generation (atomic) and take the map under `lock` only when it
 * changed, so a reload never stalls counting; each publishes its own counts slot. Reload and collect
 * come from the main loop, the HTTP server or a snapshot taker. */
#include "fx/sampling.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/hash.h"
#include "fx/log.h"

struct rate_entry {
	const char *exporter; /* NUL-terminated, in `text`; NULL: an empty slot */
	size_t len;
	uint32_t rate;
};

struct fx_rate_map {
	atomic_uint refs;
	char *text;		  /* the file's bytes, unescaped in place: the exporters point into it */
	struct rate_entry *slots; /* open addressing, a power of two at least twice `count` */
	size_t mask;
	size_t count;
};

struct worker_counts {
	_Atomic uint64_t counts[FX_RATE_SOURCE_COUNT];
	char pad[64]; /* keeps two workers' slots off one cache line */
};

struct fx_sampling {
	uint32_t default_rate;
	char *rates_file; /* NULL: none */
	size_t n_workers;
	pthread_mutex_t lock; /* guards `map` */
	struct fx_rate_map *map;
	_Atomic uint64_t generation;
	struct worker_counts *workers;
};

static const char *const source_names[FX_RATE_SOURCE_COUNT] = {
    [FX_RATE_RECORD] = "record", [FX_RATE_RECORD_ONE] = "record_one", [FX_RATE_FILE] = "file",
    [FX_RATE_FLAG] = "flag",	 [FX_RATE_UNKNOWN] = "unknown",
};

const char *fx_rate_source_name(enum fx_rate_source source)
{
	return (unsigned)source < FX_RATE_SOURCE_COUNT ? source_names[source] : "unknown";
}

static struct rate_entry *find_slot(const struct fx_rate_map *map, const char *exporter, size_t len)
{
	size_t i = (size_t)fx_hash_bytes(exporter, len) & map->mask;
	while (map->slots[i].exporter &&
	       (map->slots[i].len != len || memcmp(map->slots[i].exporter, exporter, len) != 0))
		i = (i + 1) & map->mask;
	return &map->slots[i];
}

uint32_t fx_rate_map_lookup(const struct fx_rate_map *map, const char *exporter, size_t len)
{
	if (!map || !map->count)
		return 0;
	const struct rate_entry *slot = find_slot(map, exporter, len);
	return slot->exporter ? slot->rate : 0;
}

size_t fx_rate_map_count(const struct fx_rate_map *map)
{
	return map ? map->count : 0;
}

struct fx_rate_map *fx_rate_map_ref(struct fx_rate_map *map)
{
	if (map)
		atomic_fetch_add_explicit(&map->refs, 1, memory_order_relaxed);
	return map;
}

void fx_rate_map_unref(struct fx_rate_map *map)
{
	if (!map || atomic_fetch_sub_explicit(&map->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(map->slots);
	free(map->text);
	free(map);
}

static int parse_rate(const char *text, uint32_t *rate)
{
	uint64_t value = 0;
	if (!*text)
		return -1;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		value = value * 10 + (uint64_t)(*p - '0');
		if (value > UINT32_MAX)
			return -1;
	}
	if (value == 0)
		return -1;
	*rate = (uint32_t)value;
	return 0;
}

static int add_rate(struct fx_rate_map *map, const struct fx_csv_record *record, struct fx_parse_error *error)
{
	uint32_t rate;
	if (record->n_fields != 2)
		return fx_parse_fail(error, record->line, "%zu fields, expected 2 (exporter,rate)",
				     record->n_fields);
	if (record->lens[0] == 0)
		return fx_parse_fail(error, record->line, "the exporter is empty");
	if (parse_rate(record->fields[1], &rate))
		return fx_parse_fail(error, record->line,
				     "rate \"%s\" is not a whole number from 1 to 4294967295",
				     record->fields[1]);
	if (map->count == FX_RATE_MAP_MAX_ENTRIES)
		return fx_parse_fail(error, record->line, "more than %d exporters", FX_RATE_MAP_MAX_ENTRIES);
	struct rate_entry *slot = find_slot(map, record->fields[0], record->lens[0]);
	if (slot->exporter)
		return fx_parse_fail(error, record->line, "exporter \"%s\" is named twice",
				     record->fields[0]);
	*slot = (struct rate_entry){record->fields[0], record->lens[0], rate};
	map->count++;
	return 0;
}

static int check_header(const struct fx_csv_record *record, const char *const *names, size_t n,
			struct fx_parse_error *error)
{
	bool same = record->n_fields == n;
	for (size_t i = 0; same && i < n; i++)
		same = !strcmp(record->fields[i], names[i]);
	if (same)
		return 0;
	char want[128] = "";
	for (size_t i = 0; i < n; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", i ? "," : "", names[i]);
	return fx_parse_fail(error, record->line, "the first line must be the header \"%s\"", want);
}

int fx_rate_map_parse(const char *text, size_t len, struct fx_rate_map **out, struct fx_parse_error *error)
{
	static const char *const header[] = {"exporter", "rate"};
	struct fx_csv csv;
	struct fx_csv_record record;
	int rc;
	/* Every line holds at most one exporter: the line count bounds the table. */
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	size_t capacity = 16;
	while (capacity < 2 * lines && capacity < 4 * (size_t)FX_RATE_MAP_MAX_ENTRIES)
		capacity *= 2;
	struct fx_rate_map *map = calloc(1, sizeof(*map));
	if (!map || !(map->text = malloc(len + 1)) || !(map->slots = calloc(capacity, sizeof(*map->slots)))) {
		fx_parse_fail(error, 0, "out of memory");
		goto fail;
	}
	atomic_init(&map->refs, 1);
	map->mask = capacity - 1;
	memcpy(map->text, text, len);
	map->text[len] = '\0';
	fx_csv_init(&csv, map->text, len);
	rc = fx_csv_next(&csv, &record, error);
	if (rc == 0) {
		fx_parse_fail(error, 1, "empty file: the first line must be the header \"exporter,rate\"");
		goto fail;
	}
	if (rc < 0 || check_header(&record, header, 2, error))
		goto fail;
	while ((rc = fx_csv_next(&csv, &record, error)) == 1)
		if (add_rate(map, &record, error))
			goto fail;
	if (rc < 0)
		goto fail;
	*out = map;
	return 0;
fail:
	fx_rate_map_unref(map);
	return -1;
}

static int load_file(const char *path, struct fx_rate_map **out, struct fx_parse_error *error)
{
	size_t len;
	char *text = fx_read_file(path, FX_MAP_FILE_MAX_BYTES, &len, error);
	if (!text)
		return -1;
	int rc = fx_rate_map_parse(text, len, out, error);
	free(text);
	return rc;
}

struct fx_sampling *fx_sampling_create(const struct fx_sampling_config *config, struct fx_parse_error *error)
{
	struct fx_sampling *sampling = calloc(1, sizeof(*sampling));
	if (!sampling)
		goto oom;
	pthread_mutex_init(&sampling->lock, NULL);
	sampling->default_rate = config->default_rate;
	sampling->n_workers = config->n_workers;
	sampling->workers = calloc(config->n_workers ? config->n_workers : 1, sizeof(*sampling->workers));
	if (!sampling->workers)
		goto oom;
	if (config->rates_file && config->rates_file[0]) {
		if (!(sampling->rates_file = strdup(config->rates_file)))
			goto oom;
		if (load_file(sampling->rates_file, &sampling->map, error))
			goto fail;
	}
	return sampling;
oom:
	fx_parse_fail(error, 0, "out of memory");
fail:
	fx_sampling_destroy(sampling);
	return NULL;
}

void fx_sampling_destroy(struct fx_sampling *sampling)
{
	if (!sampling)
		return;
	fx_rate_map_unref(sampling->map);
	pthread_mutex_destroy(&sampling->lock);
	free(sampling->workers);
	free(sampling->rates_file);
	free(sampling);
}

uint32_t fx_sampling_default_rate(const struct fx_sampling *sampling)
{
	return sampling->default_rate;
}

uint64_t fx_sampling_generation(const struct fx_sampling *sampling)
{
	return atomic_load_explicit(&sampling->generation, memory_order_acquire);
}

struct fx_rate_map *fx_sampling_acquire(struct fx_sampling *sampling)
{
	pthread_mutex_lock(&sampling->lock);
	struct fx_rate_map *map = fx_rate_map_ref(sampling->map);
	pthread_mutex_unlock(&sampling->lock);
	return map;
}

void fx_sampling_publish(struct fx_sampling *sampling, size_t worker,
			 const uint64_t counts[FX_RATE_SOURCE_COUNT])
{
	if (worker >= sampling->n_workers)
		return;
	for (int i = 0; i < FX_RATE_SOURCE_COUNT; i++)
		atomic_store_explicit(&sampling->workers[worker].counts[i], counts[i], memory_order_relaxed);
}

int fx_sampling_reload(void *opaque, struct fx_parse_error *error)
{
	struct fx_sampling *sampling = opaque;
	struct fx_rate_map *map = NULL;
	if (!sampling->rates_file)
		return 0;
	if (load_file(sampling->rates_file, &map, error))
		return -1;
	pthread_mutex_lock(&sampling->lock);
	struct fx_rate_map *old = sampling->map;
	sampling->map = map;
	pthread_mutex_unlock(&sampling->lock);
	atomic_fetch_add_explicit(&sampling->generation, 1, memory_order_release);
	fx_rate_map_unref(old); /* a consumer thread may still hold it until its next message */
	fx_info("sampling rates: %s reloaded (%zu exporters)", sampling->rates_file, fx_rate_map_count(map));
	return 0;
}

int fx_sampling_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_sampling *sampling = opaque;
	uint64_t sums[FX_RATE_SOURCE_COUNT] = {0};
	for (size_t w = 0; w < sampling->n_workers; w++)
		for (int i = 0; i < FX_RATE_SOURCE_COUNT; i++)
			sums[i] +=
			    atomic_load_explicit(&sampling->workers[w].counts[i], memory_order_relaxed);
	if (fx_family_begin(
		out, "flow_exporter_records_sampling_rate_total",
		"Flow records counted, by where their sampling rate came from: the --sampling-rates "
		"file, the record's sampling_rate (record_one: 1, pmacct renormalized or unsampled), "
		"--sampling-rate, or unknown (counted 1:1).",
		FX_METRIC_COUNTER))
		return -1;
	for (int i = 0; i < FX_RATE_SOURCE_COUNT; i++) {
		struct fx_label source = {"source", source_names[i]};
		if (fx_family_add_u64(out, sums[i], 1, &source))
			return -1;
	}
	pthread_mutex_lock(&sampling->lock);
	size_t count = fx_rate_map_count(sampling->map);
	pthread_mutex_unlock(&sampling->lock);
	if (fx_family_begin(out, "flow_exporter_sampling_rates",
			    "Exporters named in the --sampling-rates file.", FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, count, 0, NULL))
		return -1;
	return 0;
}
