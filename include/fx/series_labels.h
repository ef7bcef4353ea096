/* A series key as its label pairs: the one place that knows which labels a key carries, in which order, and
 * how each value is spelled. The text exposition (/metrics and the Pushgateway) and remote write both get
 * their flow labels here, and differ only in how they write a pair.
 *
 * The label catalog is the list of names a key can carry, in name order (the order both formats write);
 * encoders prepare their per-name bytes by catalog position (text prefixes, protobuf fields, the external
 * labels that sort between two flow labels). A new dimension of the key is a row of the catalog and a case
 * of series_labels.c, and every encoder writes it.
 *
 * Values are borrowed: AS names from the snapshot's map, interface names and descriptions from the
 * snapshot's interface names (iface_names.h), hostnames interned by the ingest step, numbers written into
 * the fx_label_set. Direct-mapped caches make a key cost a few loads: AS number -> (digits, name), hostname
 * pointer -> (length, escaping needed) and (hostname, interface index) -> (name, description).
 *
 * Thread: a fx_series_labels is used by one thread at a time (each encoder keeps its own). */
#ifndef FX_SERIES_LABELS_H
#define FX_SERIES_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/series.h"
#include "fx/snapshot.h"

/* Labels a series key can carry: the seven built-in ones, the four interface-name labels (iface_in_name,
 * ...: in the catalog only when --labels keeps them) and the extra dimensions of its layout. */
#define FX_SERIES_LABELS_BUILTIN 7
#define FX_SERIES_LABELS_IFACE 4
#define FX_SERIES_LABELS_MAX (FX_SERIES_LABELS_BUILTIN + FX_SERIES_LABELS_IFACE + FX_KEY_EXTRA)

/* The longest label value an encoder has to hold. Values are hostnames (at most a record:
 * --max-record-bytes, 64 KiB by default), AS names (one line of the AS-name list, a few hundred bytes in
 * practice), interface names and descriptions (a field of the --interface-names file, or ifName / ifAlias:
 * one longer than this is left out) and numbers. Encoders size their buffers for a label set of
 * FX_SERIES_LABELS_MAX values this long (escaped, for the text format) and refuse, with an error their
 * callers count, a set that needs more.
 */
#define FX_SERIES_LABEL_VALUE_MAX ((size_t)1 << 20)

struct fx_label_name {
	const char *name;
	size_t len;
};

/* The built-in labels: destination_as, destination_as_name, hostname, iface_in, iface_out, source_as,
 * source_as_name. A snapshot whose layout has extra dimensions, or whose mask keeps interface names, has a
 * longer catalog (these, the interface-name labels kept and the extra names, in name order):
 * fx_series_labels_catalog. */
extern const struct fx_label_name fx_series_label_catalog[FX_SERIES_LABELS_BUILTIN];
/* The longest name in a catalog (a --label-from name is shorter than FX_LAYOUT_NAME_MAX). */
#define FX_SERIES_LABEL_NAME_MAX (FX_LAYOUT_NAME_MAX - 1)

struct fx_label_pair {
	unsigned label;	   /* position in the catalog of the snapshot (fx_series_labels_catalog) */
	bool escape;	   /* the value holds a backslash, double quote or newline */
	const char *value; /* not NUL-terminated; valid until the next fx_series_labels_begin */
	size_t value_len;  /* never 0: empty values are left out */
};

/* A key's labels in name order. Numbers are written into `digits`, so the set is not to be copied. */
struct fx_label_set {
	size_t n;
	struct fx_label_pair pairs[FX_SERIES_LABELS_MAX];
	char digits[FX_SERIES_LABELS_MAX][20];
};

/* The four flow families, in the order the text format writes them. `name` is the sample name (with
 * _total), `base` the OpenMetrics family name (without), `unit` "bytes" or NULL. */
struct fx_flow_family {
	const char *name;
	const char *base;
	const char *help;
	const char *unit;
	enum fx_direction direction;
	bool packets;
};
#define FX_FLOW_FAMILIES 4
extern const struct fx_flow_family fx_flow_families[FX_FLOW_FAMILIES];

/* A flow series' value in a family. */
static inline uint64_t fx_flow_family_value(const struct fx_flow_family *family,
					    const struct fx_series *series)
{
	return family->packets ? series->packets[family->direction] : series->bytes[family->direction];
}

struct fx_series_labels;

/* NULL on allocation failure. */
struct fx_series_labels *fx_series_labels_create(void);
/* Accepts NULL. */
void fx_series_labels_destroy(struct fx_series_labels *labels);

/* Starts on a snapshot (borrowed until the next call): its label_mask, AS names and interface names;
 * forgets the caches, which hold pointers into the previous snapshot. */
void fx_series_labels_begin(struct fx_series_labels *labels, const struct fx_snapshot *snapshot);

/* The catalog of the snapshot given to the last fx_series_labels_begin: its label names in name order,
 * *n of them (fx_series_label_catalog itself when the layout has no extra dimension and no interface name
 * is kept). Valid until the next begin. */
const struct fx_label_name *fx_series_labels_catalog(const struct fx_series_labels *labels, size_t *n);

/* The labels of key: those the snapshot's mask keeps and the key carries, with non-empty values, in name
 * order; the AS names looked up in the snapshot's map, the interface names and descriptions in its
 * interface names by (hostname, index). A label of the key's `other` bits has the value "other" (and an AS
 * or interface of them no name; nor has an interface whose hostname is "other"). */
void fx_series_labels_get(struct fx_series_labels *labels, const struct fx_series_key *key,
			  struct fx_label_set *out);

#endif
