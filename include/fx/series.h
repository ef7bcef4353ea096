/* A flow series: the label tuple that identifies it and its four counters. Shared by the series tables
 * (series_table.c), the snapshot and the encoders. */
#ifndef FX_SERIES_H
#define FX_SERIES_H

#include <stdint.h>

#include "fx/classify.h"

/* The flow labels, as bits. --labels chooses which are kept; a key's `present` says which it carries. */
enum fx_label_bit {
	FX_LABEL_HOSTNAME = 1u << 0,
	FX_LABEL_SOURCE_AS = 1u << 1,
	FX_LABEL_SOURCE_AS_NAME = 1u << 2,
	FX_LABEL_DESTINATION_AS = 1u << 3,
	FX_LABEL_DESTINATION_AS_NAME = 1u << 4,
	FX_LABEL_IFACE_IN = 1u << 5,
	FX_LABEL_IFACE_OUT = 1u << 6,
	FX_LABEL_ALL = (1u << 7) - 1,
};

/* Label names in the order of the bits above: "hostname", "source_as", ... */
extern const char *const fx_label_names[7];

/* Identifies a series. A label not kept by --labels, or absent from the record, has its bit clear in
 * `present` and its field zero / NULL, so records that differ only there land in the same series.
 * The AS names are not part of the key: they are a function of the AS number, looked up when encoding
 * (series_labels.c). */
struct fx_series_key {
	const char *hostname; /* interned (see intern.h): equal strings have equal pointers; NULL if absent */
	uint32_t as_src;
	uint32_t as_dst;
	uint32_t iface_in;
	uint32_t iface_out;
	uint32_t present; /* FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS | ... */
};

struct fx_series {
	struct fx_series_key key;
	uint64_t bytes[2]; /* indexed by enum fx_direction: FX_DIR_RECEIVE, FX_DIR_TRANSMIT */
	uint64_t packets[2];
	uint64_t records;   /* records added (for counting what a full table refuses) */
	int64_t updated_ms; /* wall clock of the last update */
	uint32_t seen;	    /* bit (1 << direction) once the direction has had a record */
	int64_t created_ms; /* wall clock of the first record: when the series started counting (remote write
			     * 2.0's start_timestamp, OpenMetrics' _created); merges keep the earliest */
};

/* Total order used by snapshots: the AS numbers (source, then destination), hostname (byte order, absent
 * first), the interfaces, then present. AS numbers first, so that the series of one AS pair, which carry
 * the longest labels (the AS names), are neighbours: what a compressor with a short window (snappy, in
 * remote write) and a scrape's gzip find. */
int fx_series_key_compare(const struct fx_series_key *a, const struct fx_series_key *b);

#endif
