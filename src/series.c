/* The series key: its label names, its total order, the catalog of extra dimensions and the layout that
 * --labels and --label-from make of them, and the folded keys (overflow, top-N "other").
 *
 * Thread: any; a layout is immutable once parsed. */
#include "fx/series.h"

#include <stdio.h>
#include <string.h>

#include "fx/strlist.h"

const char *const fx_label_names[7] = {
    "hostname", "source_as", "source_as_name", "destination_as", "destination_as_name",
    "iface_in", "iface_out",
};
const char *const fx_iface_label_names[4] = {
    "iface_in_name",
    "iface_out_name",
    "iface_in_description",
    "iface_out_description",
};

/* Label, pmacct key(s), kind, maximum. The pmacct keys are those of its JSON output (print/kafka plugins). */
const struct fx_dimension fx_dimension_catalog[] = {
    {"protocol", "ip_proto", NULL, FX_DIM_SCALAR, UINT64_MAX},
    {"source_port", "port_src", NULL, FX_DIM_NUMBER, UINT32_MAX},
    {"destination_port", "port_dst", NULL, FX_DIM_NUMBER, UINT32_MAX},
    {"source_net", "net_src", "mask_src", FX_DIM_NET, 128},
    {"destination_net", "net_dst", "mask_dst", FX_DIM_NET, 128},
    {"source_peer_as", "peer_as_src", NULL, FX_DIM_NUMBER, UINT32_MAX},
    {"destination_peer_as", "peer_as_dst", NULL, FX_DIM_NUMBER, UINT32_MAX},
    {"exporter", "peer_ip_src", NULL, FX_DIM_TEXT, 0},
    {"tos", "tos", NULL, FX_DIM_NUMBER, UINT32_MAX},
    {"vlan_in", "vlan_in", NULL, FX_DIM_NUMBER, UINT32_MAX},
    {"vlan_out", "vlan_out", NULL, FX_DIM_NUMBER, UINT32_MAX},
    {"tag", "tag", NULL, FX_DIM_SCALAR, UINT64_MAX},
    {"tag2", "tag2", NULL, FX_DIM_SCALAR, UINT64_MAX},
    {"class", "class", NULL, FX_DIM_TEXT, 0},
    {"source_country", "country_ip_src", NULL, FX_DIM_TEXT, 0},
    {"destination_country", "country_ip_dst", NULL, FX_DIM_TEXT, 0},
};
const size_t fx_dimension_catalog_size = sizeof(fx_dimension_catalog) / sizeof(fx_dimension_catalog[0]);

static int compare_u32(uint32_t a, uint32_t b)
{
	return (a > b) - (a < b);
}

int fx_series_key_compare(const struct fx_series_key *a, const struct fx_series_key *b)
{
	int c;
	if ((c = compare_u32(a->as_src, b->as_src)) || (c = compare_u32(a->as_dst, b->as_dst)))
		return c;
	if (a->hostname != b->hostname) {
		if (!a->hostname)
			return -1;
		if (!b->hostname)
			return 1;
		c = strcmp(a->hostname, b->hostname);
		if (c)
			return c;
	}
	if ((c = compare_u32(a->iface_in, b->iface_in)) || (c = compare_u32(a->iface_out, b->iface_out)))
		return c;
	if ((c = compare_u32(a->present, b->present)) || (c = compare_u32(a->other, b->other)))
		return c;
	for (size_t i = 0; i < FX_KEY_EXTRA; i++)
		if ((c = compare_u32(a->extra[i], b->extra[i])))
			return c;
	return 0;
}

static int fail(char *why, size_t why_size, const char *text, size_t len, const char *reason)
{
	snprintf(why, why_size, "\"%.*s\": %s", (int)len, text, reason);
	return -1;
}

/* The bit of a built-in label or of an interface-name label; 0 for any other name. */
static uint32_t builtin_bit(const char *name, size_t len)
{
	for (unsigned i = 0; i < 7; i++)
		if (strlen(fx_label_names[i]) == len && !memcmp(name, fx_label_names[i], len))
			return 1u << i;
	for (unsigned i = 0; i < 4; i++)
		if (strlen(fx_iface_label_names[i]) == len && !memcmp(name, fx_iface_label_names[i], len))
			return 1u << (FX_LABEL_IFACE_NAMES_SHIFT + i);
	return 0;
}

static const struct fx_dimension *catalog_row(const char *name, size_t len)
{
	for (size_t i = 0; i < fx_dimension_catalog_size; i++)
		if (strlen(fx_dimension_catalog[i].label) == len &&
		    !memcmp(name, fx_dimension_catalog[i].label, len))
			return &fx_dimension_catalog[i];
	return NULL;
}

bool fx_key_layout_is_catalog_label(const char *name, size_t len)
{
	return builtin_bit(name, len) != 0 || catalog_row(name, len) != NULL;
}

static bool is_label_name(const char *s, size_t len)
{
	if (!len || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
		      (s[i] >= '0' && s[i] <= '9')))
			return false;
	return !(len >= 2 && s[0] == '_' && s[1] == '_');
}

static int add_extra(struct fx_key_layout *layout, const struct fx_dimension *row, char *why, size_t why_size)
{
	for (size_t i = 0; i < layout->n_extra; i++)
		if (!strcmp(layout->extra[i].label, row->label))
			return 0; /* named twice: kept once */
	if (layout->n_extra == FX_KEY_EXTRA)
		return fail(why, why_size, row->label, strlen(row->label),
			    "too many dimensions besides the built-in labels (8 at most)");
	layout->mask |= FX_LABEL_EXTRA(layout->n_extra);
	layout->extra[layout->n_extra++] = *row;
	return 0;
}

static int parse_label(struct fx_key_layout *layout, const char *name, size_t len, char *why, size_t why_size)
{
	uint32_t bit = builtin_bit(name, len);
	if (bit) {
		layout->mask |= bit;
		return 0;
	}
	const struct fx_dimension *row = catalog_row(name, len);
	if (!row)
		return fail(why, why_size, name, len, "unknown label (the catalog is in the README)");
	return add_extra(layout, row, why, why_size);
}

/* One --label-from row, NAME=KEY: a scalar key of pmacct's JSON as label NAME. */
static int parse_from(struct fx_key_layout *layout, const char *row, char *why, size_t why_size)
{
	const char *eq = strchr(row, '=');
	size_t len = eq ? (size_t)(eq - row) : strlen(row);
	if (!eq || !eq[1])
		return fail(why, why_size, row, strlen(row),
			    "expected NAME=KEY, e.g. as_path_len=as_path_len");
	if (!is_label_name(row, len) || len >= FX_LAYOUT_NAME_MAX || strlen(eq + 1) >= FX_LAYOUT_NAME_MAX)
		return fail(why, why_size, row, len, "not a label name (or longer than 63 bytes)");
	if (fx_key_layout_is_catalog_label(row, len))
		return fail(why, why_size, row, len, "is a label of the catalog: name it in --labels");
	for (size_t i = 0; i < layout->n_extra; i++)
		if (strlen(layout->extra[i].label) == len && !memcmp(layout->extra[i].label, row, len))
			return fail(why, why_size, row, len, "given twice");
	size_t slot = layout->n_extra;
	if (slot < FX_KEY_EXTRA) {
		memcpy(layout->names[slot][0], row, len);
		layout->names[slot][0][len] = '\0';
		snprintf(layout->names[slot][1], FX_LAYOUT_NAME_MAX, "%s", eq + 1);
	}
	struct fx_dimension dim = {slot < FX_KEY_EXTRA ? layout->names[slot][0] : "",
				   slot < FX_KEY_EXTRA ? layout->names[slot][1] : "", NULL, FX_DIM_SCALAR,
				   UINT64_MAX};
	return add_extra(layout, &dim, why, why_size);
}

/* An interface is named per exporter (the hostname label) and index, looked up when encoding: its name
 * cannot outlive a dropped index or hostname. */
static int check_iface_names(uint32_t mask, char *why, size_t why_size)
{
	for (unsigned i = 0; i < 4; i++) {
		uint32_t index = i % 2 ? FX_LABEL_IFACE_OUT : FX_LABEL_IFACE_IN;
		if (!(mask & (1u << (FX_LABEL_IFACE_NAMES_SHIFT + i))))
			continue;
		if (!(mask & index))
			return snprintf(why, why_size, "%s needs %s", fx_iface_label_names[i],
					i % 2 ? "iface_out" : "iface_in"),
			       -1;
		if (!(mask & FX_LABEL_HOSTNAME))
			return snprintf(why, why_size,
					"%s needs hostname (interfaces are named per exporter)",
					fx_iface_label_names[i]),
			       -1;
	}
	return 0;
}

int fx_key_layout_parse(struct fx_key_layout *layout, const char *labels, const char *const *from,
			size_t n_from, struct fx_intern *strings, char *why, size_t why_size)
{
	memset(layout, 0, sizeof(*layout));
	layout->strings = strings;
	if (strcmp(labels, "none") != 0) {
		const char *cursor = *labels ? labels : NULL, *p;
		size_t len;
		while (fx_strlist_next(&cursor, &p, &len))
			if (len && parse_label(layout, p, len, why, why_size))
				return -1;
	}
	/* A name is looked up from its number when encoding, so it cannot outlive a dropped number. */
	if ((layout->mask & FX_LABEL_SOURCE_AS_NAME) && !(layout->mask & FX_LABEL_SOURCE_AS))
		return snprintf(why, why_size, "source_as_name needs source_as"), -1;
	if ((layout->mask & FX_LABEL_DESTINATION_AS_NAME) && !(layout->mask & FX_LABEL_DESTINATION_AS))
		return snprintf(why, why_size, "destination_as_name needs destination_as"), -1;
	if (check_iface_names(layout->mask, why, why_size))
		return -1;
	for (size_t i = 0; i < n_from; i++)
		if (parse_from(layout, from[i], why, why_size))
			return -1;
	return 0;
}

uint32_t fx_key_layout_dims(const struct fx_key_layout *layout)
{
	return layout->mask &
	       ~(uint32_t)(FX_LABEL_SOURCE_AS_NAME | FX_LABEL_DESTINATION_AS_NAME | FX_LABEL_IFACE_NAMES);
}

void fx_key_fold(const struct fx_series_key *key, uint32_t dims, uint32_t keep, struct fx_series_key *out)
{
	uint32_t folded = dims & ~keep;
	*out = *key;
	out->present = (key->present & keep) | folded;
	out->other = (key->other & keep) | folded;
	if (!(out->present & FX_LABEL_HOSTNAME) || (folded & FX_LABEL_HOSTNAME))
		out->hostname = NULL;
	if (folded & FX_LABEL_SOURCE_AS)
		out->as_src = 0;
	if (folded & FX_LABEL_DESTINATION_AS)
		out->as_dst = 0;
	if (folded & FX_LABEL_IFACE_IN)
		out->iface_in = 0;
	if (folded & FX_LABEL_IFACE_OUT)
		out->iface_out = 0;
	for (size_t i = 0; i < FX_KEY_EXTRA; i++)
		if (folded & FX_LABEL_EXTRA(i))
			out->extra[i] = 0;
}

void fx_key_overflow(const struct fx_key_layout *layout, const struct fx_series_key *key,
		     struct fx_series_key *out)
{
	fx_key_fold(key, fx_key_layout_dims(layout), FX_LABEL_HOSTNAME, out);
}
