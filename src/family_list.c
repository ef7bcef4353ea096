/* The self-metric family list: families and samples in growable arrays; every string is copied into a
 * list-owned allocation so that collectors can pass temporary buffers. */
#include "fx/family_list.h"

#include <stdlib.h>
#include <string.h>

#include "fx/buf.h"

struct fx_family_list {
	struct fx_family *families;
	size_t n, cap;
	char **strings; /* every copied string, freed at destroy */
	size_t n_strings, cap_strings;
};

struct fx_family_list *fx_family_list_create(void)
{
	return calloc(1, sizeof(struct fx_family_list));
}

void fx_family_list_destroy(struct fx_family_list *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->n; i++)
		free(list->families[i].samples);
	for (size_t i = 0; i < list->n_strings; i++)
		free(list->strings[i]);
	free(list->families);
	free(list->strings);
	free(list);
}

static const char *copy_string(struct fx_family_list *list, const char *s)
{
	char **strings =
	    fx_array_grow(list->strings, &list->cap_strings, list->n_strings, sizeof(*strings), 64);
	if (!strings)
		return NULL;
	list->strings = strings;
	char *copy = strdup(s);
	if (!copy)
		return NULL;
	list->strings[list->n_strings++] = copy;
	return copy;
}

int fx_family_begin(struct fx_family_list *list, const char *name, const char *help, enum fx_metric_type type)
{
	struct fx_family *families =
	    fx_array_grow(list->families, &list->cap, list->n, sizeof(*families), 16);
	if (!families)
		return -1;
	list->families = families;
	struct fx_family *family = &list->families[list->n];
	memset(family, 0, sizeof(*family));
	family->name = copy_string(list, name);
	family->help = copy_string(list, help);
	family->type = type;
	if (!family->name || !family->help)
		return -1;
	list->n++;
	return 0;
}

static struct fx_sample *add_sample(struct fx_family_list *list, size_t n_labels,
				    const struct fx_label *labels)
{
	if (list->n == 0 || n_labels > FX_SAMPLE_MAX_LABELS)
		return NULL;
	struct fx_family *family = &list->families[list->n - 1];
	struct fx_sample *samples =
	    fx_array_grow(family->samples, &family->cap_samples, family->n_samples, sizeof(*samples), 8);
	if (!samples)
		return NULL;
	family->samples = samples;
	struct fx_sample *sample = &family->samples[family->n_samples];
	memset(sample, 0, sizeof(*sample));
	for (size_t i = 0; i < n_labels; i++) {
		if (!labels[i].value || !labels[i].value[0])
			continue;
		struct fx_label label = {copy_string(list, labels[i].name),
					 copy_string(list, labels[i].value)};
		if (!label.name || !label.value)
			return NULL;
		/* insertion sort: at most FX_SAMPLE_MAX_LABELS labels */
		size_t at = sample->n_labels;
		while (at > 0 && strcmp(sample->labels[at - 1].name, label.name) > 0) {
			sample->labels[at] = sample->labels[at - 1];
			at--;
		}
		sample->labels[at] = label;
		sample->n_labels++;
	}
	family->n_samples++;
	return sample;
}

/* Adds a sample holding one exact integer (is_integer) or one double. */
static int add_value(struct fx_family_list *list, bool is_integer, uint64_t integer, double real,
		     size_t n_labels, const struct fx_label *labels)
{
	struct fx_sample *sample = add_sample(list, n_labels, labels);
	if (!sample)
		return -1;
	sample->is_integer = is_integer;
	sample->integer = integer;
	sample->real = real;
	return 0;
}

int fx_family_add_u64(struct fx_family_list *list, uint64_t value, size_t n_labels,
		      const struct fx_label *labels)
{
	return add_value(list, true, value, 0.0, n_labels, labels);
}

int fx_family_add_double(struct fx_family_list *list, double value, size_t n_labels,
			 const struct fx_label *labels)
{
	return add_value(list, false, 0, value, n_labels, labels);
}

size_t fx_family_list_count(const struct fx_family_list *list)
{
	return list->n;
}

const struct fx_family *fx_family_list_get(const struct fx_family_list *list, size_t index)
{
	return index < list->n ? &list->families[index] : NULL;
}

size_t fx_sample_own_labels(const struct fx_family *family, const struct fx_sample *sample,
			    struct fx_label *name_label, const struct fx_label **own)
{
	*name_label = (struct fx_label){"__name__", family->name};
	size_t n_own = 0;
	own[n_own++] = name_label;
	for (size_t l = 0; l < sample->n_labels && l < FX_SAMPLE_MAX_LABELS; l++) {
		const struct fx_label *label = &sample->labels[l];
		if (!label->value || !label->value[0])
			continue;
		size_t k = n_own;
		while (k > 0 && strcmp(own[k - 1]->name, label->name) > 0)
			k--;
		if (k > 0 && strcmp(own[k - 1]->name, label->name) == 0)
			continue; /* a duplicate name: keep the first */
		memmove(&own[k + 1], &own[k], (n_own - k) * sizeof(own[0]));
		own[k] = label;
		n_own++;
	}
	return n_own;
}
