/* A small, generic list of metric families for the exporter's own metrics (flow_exporter_*): built by
 * collectors when a snapshot is taken, then encoded like the flow series by every output.
 * Strings are copied into the list, so collectors may pass stack buffers.
 *
 * Thread: a list is built and read by one thread at a time. */
#ifndef FX_FAMILY_LIST_H
#define FX_FAMILY_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fx_metric_type { FX_METRIC_COUNTER, FX_METRIC_GAUGE };

#define FX_SAMPLE_MAX_LABELS 4

struct fx_label {
	const char *name;
	const char *value;
};

struct fx_sample {
	struct fx_label labels[FX_SAMPLE_MAX_LABELS]; /* sorted by name when added */
	size_t n_labels;
	bool is_integer; /* exact uint64 value in `integer`, else `real` */
	uint64_t integer;
	double real;
};

struct fx_family {
	const char *name;
	const char *help;
	enum fx_metric_type type;
	struct fx_sample *samples;
	size_t n_samples;
	size_t cap_samples;
};

struct fx_family_list;

struct fx_family_list *fx_family_list_create(void);
void fx_family_list_destroy(struct fx_family_list *list);

/* Starts a family (name and help are copied). Samples added next belong to it. Returns 0 or -1 (memory).
 * A family with no samples is not encoded. */
__attribute__((warn_unused_result)) int fx_family_begin(struct fx_family_list *list, const char *name,
							const char *help, enum fx_metric_type type);
/* Adds a sample to the current family. Labels: n_labels pairs of (name, value); empty values are left
 * out. Returns 0 or -1 (memory, or more than FX_SAMPLE_MAX_LABELS labels). */
__attribute__((warn_unused_result)) int fx_family_add_u64(struct fx_family_list *list, uint64_t value,
							  size_t n_labels, const struct fx_label *labels);
__attribute__((warn_unused_result)) int fx_family_add_double(struct fx_family_list *list, double value,
							     size_t n_labels, const struct fx_label *labels);

/* The labels a sample is written with: __name__ (the family's name, in *name_label) and the sample's
 * non-empty labels, sorted by name, the first of a duplicate name kept. Fills own (room for
 * FX_SAMPLE_OWN_LABELS) with borrowed pointers and returns how many. */
#define FX_SAMPLE_OWN_LABELS (1 + FX_SAMPLE_MAX_LABELS)
size_t fx_sample_own_labels(const struct fx_family *family, const struct fx_sample *sample,
			    struct fx_label *name_label, const struct fx_label **own);

size_t fx_family_list_count(const struct fx_family_list *list);
const struct fx_family *fx_family_list_get(const struct fx_family_list *list, size_t index);

/* A collector appends the families of one module. Called from the thread that takes a snapshot. */
typedef int (*fx_collect_fn)(void *opaque, struct fx_family_list *out);

#endif
