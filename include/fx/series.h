/* A flow series: the label tuple that identifies it and its four counters. Shared by the series tables
 * (series_table.c), the snapshot and the encoders; the dimensions a key can carry (the catalog) and the
 * layout --labels / --label-from make of them are here too. */
#ifndef FX_SERIES_H
#define FX_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/classify.h"

struct fx_intern;

/* The flow labels, as bits. --labels chooses which are kept; a key's `present` says which it carries. The
 * seven built-in labels have fixed bits; the extra dimensions of a layout (FX_KEY_EXTRA of them at most:
 * protocol, ports, prefixes, ..., --label-from) have bit FX_LABEL_EXTRA(i) for extra slot i. The interface
 * names and descriptions (bits 16 to 19) are, like the AS names, kept by --labels but never carried by a
 * key: they are a function of (hostname, interface index), looked up when encoding. */
enum fx_label_bit {
	FX_LABEL_HOSTNAME = 1u << 0,
	FX_LABEL_SOURCE_AS = 1u << 1,
	FX_LABEL_SOURCE_AS_NAME = 1u << 2,
	FX_LABEL_DESTINATION_AS = 1u << 3,
	FX_LABEL_DESTINATION_AS_NAME = 1u << 4,
	FX_LABEL_IFACE_IN = 1u << 5,
	FX_LABEL_IFACE_OUT = 1u << 6,
	FX_LABEL_ALL = (1u << 7) - 1,
	FX_LABEL_IFACE_IN_NAME = 1u << 16,
	FX_LABEL_IFACE_OUT_NAME = 1u << 17,
	FX_LABEL_IFACE_IN_DESCRIPTION = 1u << 18,
	FX_LABEL_IFACE_OUT_DESCRIPTION = 1u << 19,
};
#define FX_LABEL_IFACE_NAMES_SHIFT 16
#define FX_LABEL_IFACE_NAMES                                                                                 \
	(FX_LABEL_IFACE_IN_NAME | FX_LABEL_IFACE_OUT_NAME | FX_LABEL_IFACE_IN_DESCRIPTION |                  \
	 FX_LABEL_IFACE_OUT_DESCRIPTION)
#define FX_KEY_EXTRA 8
#define FX_LABEL_EXTRA(i) (1u << (8 + (i)))
#define FX_LABEL_EXTRA_ALL (((1u << FX_KEY_EXTRA) - 1) << 8)

/* Label names in the order of the bits above: "hostname", "source_as", ... */
extern const char *const fx_label_names[7];
/* The interface-name labels in the order of their bits, from FX_LABEL_IFACE_NAMES_SHIFT: "iface_in_name",
 * "iface_out_name", "iface_in_description", "iface_out_description". */
extern const char *const fx_iface_label_names[4];

/* Identifies a series: a fixed-width tuple, built once per record, hashed and compared as bytes (no padding:
 * every byte is a field, and a field a key does not carry is zero).
 * A label not kept by --labels, or absent from the record, has its bit clear in `present` and its field
 * zero / NULL, so records that differ only there land in the same series. A label whose bit is set in
 * `other` carries the value "other" (its field is zero): the overflow series and the top-N "other" series.
 * The AS names are not part of the key: they are a function of the AS number, looked up when encoding
 * (series_labels.c); so are the interface names and descriptions, of the hostname and the interface index. */
struct fx_series_key {
	const char *hostname; /* interned (see intern.h): equal strings have equal pointers; NULL if absent */
	uint32_t as_src;
	uint32_t as_dst;
	uint32_t iface_in;
	uint32_t iface_out;
	uint32_t present; /* FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS | ... | FX_LABEL_EXTRA(i) */
	uint32_t other;	  /* labels whose value is "other" (a subset of present) */
	/* Extra dimension i of the layout: a number, or the id of an interned string (fx_intern_id). */
	uint32_t extra[FX_KEY_EXTRA];
};

/* The counters first and the key last, its extra dimensions at the very end: a series table keeps only the
 * extra slots its layout uses (series_table.h), so a row of a table is a prefix of this struct. */
struct fx_series {
	uint64_t bytes[2]; /* indexed by enum fx_direction: FX_DIR_RECEIVE, FX_DIR_TRANSMIT */
	uint64_t packets[2];
	uint64_t records;   /* records added (for counting what a full table refuses or folds) */
	int64_t updated_ms; /* wall clock of the last update */
	int64_t created_ms; /* wall clock of the first record: when the series started counting (remote write
			     * 2.0's start_timestamp, OpenMetrics' _created); merges keep the earliest */
	uint32_t seen;	    /* bit (1 << direction) once the direction has had a record */
	struct fx_series_key key;
};

/* Total order used by snapshots: the AS numbers (source, then destination), hostname (byte order, absent
 * first), the interfaces, present, other, then the extra dimensions by value (an interned string by its
 * id). AS numbers first, so that the series of one AS pair, which carry the longest labels (the AS names),
 * are neighbours: what a compressor with a short window (snappy, in remote write) and a scrape's gzip
 * find. */
int fx_series_key_compare(const struct fx_series_key *a, const struct fx_series_key *b);

/* ---- The catalog of dimensions and the layout of a key ---- */

/* How an extra dimension's value is kept in its slot and spelled. */
enum fx_dim_kind {
	FX_DIM_NUMBER, /* a JSON integer up to UINT32_MAX, kept as is, written in decimal */
	FX_DIM_TEXT,   /* a JSON string, interned */
	FX_DIM_SCALAR, /* a string, a non-negative integer, true or false: its text, interned (ip_proto,
			  tag, --label-from) */
	FX_DIM_NET,    /* net_* (a string) and mask_* (a number), interned as "prefix/mask" */
};

/* A row of the catalog (series.c): label name, pmacct key(s), kind, the largest number accepted. */
struct fx_dimension {
	const char *label;
	const char *key;
	const char *mask_key; /* FX_DIM_NET only */
	enum fx_dim_kind kind;
	uint64_t max;
};

/* The extra dimensions of the catalog (the seven built-in labels are the enum above). */
extern const struct fx_dimension fx_dimension_catalog[];
extern const size_t fx_dimension_catalog_size;

#define FX_LAYOUT_NAME_MAX 64

/* What --labels and --label-from make of the catalog: which built-in labels are kept (mask) and the extra
 * dimensions, in slot order. Immutable once made; borrowed by the ingest step, the store and every
 * snapshot. */
struct fx_key_layout {
	uint32_t mask; /* FX_LABEL_* kept, and FX_LABEL_EXTRA(i) for i < n_extra */
	size_t n_extra;
	struct fx_dimension extra[FX_KEY_EXTRA];
	char names[FX_KEY_EXTRA][2][FX_LAYOUT_NAME_MAX]; /* label and key of a --label-from row */
	/* Where extra string values are interned (borrowed; NULL for a layout only parsed to be checked). */
	struct fx_intern *strings;
};

/* Parses --labels (comma-separated names of the built-in labels and of the catalog, or "none") and the
 * --label-from rows ("NAME=KEY", n_from of them) into layout. Returns 0, or -1 with a reason in why
 * (why_size bytes). strings is borrowed (may be NULL). */
int fx_key_layout_parse(struct fx_key_layout *layout, const char *labels, const char *const *from, size_t n_from,
			struct fx_intern *strings, char *why, size_t why_size);

/* Whether name is a label of the catalog (built-in or extra). */
bool fx_key_layout_is_catalog_label(const char *name, size_t len);

/* The overflow key of key: its hostname kept, every other label the layout keeps set to "other". */
void fx_key_overflow(const struct fx_key_layout *layout, const struct fx_series_key *key,
		     struct fx_series_key *out);

/* The labels (FX_LABEL_* bits, AS and interface names excluded) a key of this layout may carry. */
uint32_t fx_key_layout_dims(const struct fx_key_layout *layout);

/* key with every dimension of `dims` other than those in `keep` set to "other": the group key of top-N
 * (keep = the group's labels). */
void fx_key_fold(const struct fx_series_key *key, uint32_t dims, uint32_t keep, struct fx_series_key *out);

#endif
