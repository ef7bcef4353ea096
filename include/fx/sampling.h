/* Sampling renormalization: the rate a record's bytes and packets are multiplied by.
 *
 * Where the rate comes from, first match wins:
 *  1. --sampling-rates=FILE names the exporter (its `hostname` label value, else its peer_ip_src): that
 *     rate, in place of whatever the records carry (for routers that report a wrong one);
 *  2. the record's pmacct `sampling_rate`, when it is 1 or more. pmacct writes 1 when it renormalized
 *     itself (nfacctd_renormalize / sfacctd_renormalize: true) and for unsampled sFlow, so such records
 *     are counted as they are: never multiplied twice;
 *  3. --sampling-rate=N, for records that carry no rate (no `sampling_rate` key, or nfacctd's 0 for an
 *     export with no sampling information);
 *  4. none known: counted as they are (1:1), and counted in the self-metric (source="unknown").
 *
 * The rates file is an immutable, reference-counted map; a reload builds a new one and swaps a pointer.
 * Consumer threads look the current map up once per Kafka message (one relaxed atomic load), never per
 * record.
 *
 * Thread: fx_sampling_reload and fx_sampling_collect from any thread; the rest as noted. */
#ifndef FX_SAMPLING_H
#define FX_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

#include "fx/csv.h"
#include "fx/family_list.h"

#define FX_RATE_MAP_MAX_ENTRIES 1000000
#define FX_MAP_FILE_MAX_BYTES (256u << 20)

/* Where a record's rate came from (the self-metric's `source` label). */
enum fx_rate_source {
	FX_RATE_RECORD,	    /* the record's sampling_rate, above 1 */
	FX_RATE_RECORD_ONE, /* the record's sampling_rate is 1: renormalized by pmacct, or unsampled */
	FX_RATE_FILE,	    /* --sampling-rates */
	FX_RATE_FLAG,	    /* --sampling-rate */
	FX_RATE_UNKNOWN,    /* none: counted 1:1 */
	FX_RATE_SOURCE_COUNT
};

/* Stable names: "record", "record_one", "file", "flag", "unknown". */
const char *fx_rate_source_name(enum fx_rate_source source);

/* An immutable exporter -> rate map. */
struct fx_rate_map;

/* Parses the rates file: the header line `exporter,rate`, then one exporter a line with a rate from 1 to
 * 4294967295. Returns 0 with *out set (the caller's reference), or -1 with *error naming the line. */
__attribute__((warn_unused_result)) int
fx_rate_map_parse(const char *text, size_t len, struct fx_rate_map **out, struct fx_parse_error *error);
/* The rate of exporter, or 0 when the map does not name it (or map is NULL). */
uint32_t fx_rate_map_lookup(const struct fx_rate_map *map, const char *exporter, size_t len);
size_t fx_rate_map_count(const struct fx_rate_map *map);
struct fx_rate_map *fx_rate_map_ref(struct fx_rate_map *map);
void fx_rate_map_unref(struct fx_rate_map *map); /* accepts NULL */

struct fx_sampling_config {
	uint32_t default_rate;	/* --sampling-rate; 0 = none */
	const char *rates_file; /* --sampling-rates; NULL or "" = none. Copied */
	size_t n_workers;	/* consumer threads that publish their counts */
};

struct fx_sampling;

/* Reads the rates file, if any. Returns NULL with *error set when it cannot be read or parsed (a startup
 * error: the caller exits 2) or on allocation failure. */
struct fx_sampling *fx_sampling_create(const struct fx_sampling_config *config, struct fx_parse_error *error);
void fx_sampling_destroy(struct fx_sampling *sampling); /* accepts NULL */

uint32_t fx_sampling_default_rate(const struct fx_sampling *sampling);

/* @locality consumer threads. A number that changes whenever the map is swapped (relaxed load). */
uint64_t fx_sampling_generation(const struct fx_sampling *sampling);
/* The current map with a reference (drop it with fx_rate_map_unref), or NULL when there is no file. */
struct fx_rate_map *fx_sampling_acquire(struct fx_sampling *sampling);

/* @locality consumer thread `worker`. Publishes its running totals of records by rate source. */
void fx_sampling_publish(struct fx_sampling *sampling, size_t worker,
			 const uint64_t counts[FX_RATE_SOURCE_COUNT]);

/* Re-reads the rates file (nothing to do without one). On failure the previous map stays in force and
 * *error names the line. Returns 0 or -1. */
int fx_sampling_reload(void *sampling, struct fx_parse_error *error);

/* flow_exporter_records_sampling_rate_total{source}, flow_exporter_sampling_rates (exporters in the
 * file). An fx_collect_fn. */
int fx_sampling_collect(void *sampling, struct fx_family_list *out);

#endif
