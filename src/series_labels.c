/* Series key -> ordered label pairs, for every encoder (see series_labels.h).
 *
 * DESIGN
 * - fx_series_labels_get adds the labels in catalog (name) order, so the pairs come out sorted with no sort
 *   (asserted); each AS is looked up once for its number and its name. It is straight-line code rather than
 *   a walk over catalog rows with a switch: it runs for every series of every encode, and the walk cost a
 *   /metrics render of 100,000 series 17% more instructions (callgrind, bench_output).
 * - AS cache: direct-mapped, ASN_SLOTS slots, Fibonacci hashing (neighbouring ASNs spread over the slots),
 *   the most recent ASN wins a slot. A lookup copies what it needs out of the slot (the digits into the
 *   label set, the name pointer, which points into the map), so the source and destination AS of one key
 *   may share a slot: the second lookup evicts the first, which is already read.
 * - Hostname cache: direct-mapped by the interned pointer (equal strings are equal pointers), so a
 *   hostname's length and escaping scan are done once per hostname and snapshot.
 * - Interface cache (only with iface_*_name / iface_*_description kept): direct-mapped by (hostname
 *   pointer, index), holding the entry's name and description with their lengths and escaping, so an
 *   interface is looked up in the maps (a bisection, sometimes the address registry's lock) about once per
 *   snapshot. The catalog is then built per snapshot (as for extra dimensions: only the names kept are in
 *   it), and a key takes a second straight-line path, get_named, whose positions come from builtin_at (a
 *   name kept shifts the labels after it); the sort of the generic path cost it 40% more instructions. The
 *   default labels keep the first straight-line path and the 7-name catalog.
 *
 * Thread: the owner's (one encoder's).
 * Invariant: the caches only hold entries of the snapshot given to the last fx_series_labels_begin. */
#include "fx/series_labels.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "fx/buf.h"
#include "fx/iface_names.h"
#include "fx/intern.h"

#define LIT(s) s, (sizeof(s) - 1)
#define ASN_SLOTS 8192 /* a power of two: the hash keeps the top 13 bits */
#define ASN_SLOT_SHIFT 19
#define HOST_SLOTS 256
#define STRING_SLOTS 1024 /* extra dimensions' strings, by intern id */
#define IFACE_SLOTS 16384 /* a power of two: the hash keeps the top 14 bits */
#define IFACE_SLOT_SHIFT 18
#define N_BUILTIN (FX_SERIES_LABELS_BUILTIN + FX_SERIES_LABELS_IFACE)

/* Positions in the catalog. */
enum {
	LABEL_DESTINATION_AS,
	LABEL_DESTINATION_AS_NAME,
	LABEL_HOSTNAME,
	LABEL_IFACE_IN,
	LABEL_IFACE_OUT,
	LABEL_SOURCE_AS,
	LABEL_SOURCE_AS_NAME,
	/* Not in fx_series_label_catalog: in the order of their bits (fx_iface_label_names). */
	LABEL_IFACE_IN_NAME,
	LABEL_IFACE_OUT_NAME,
	LABEL_IFACE_IN_DESCRIPTION,
	LABEL_IFACE_OUT_DESCRIPTION,
};

/* Kept by the --labels bit of the same name; the AS labels are carried by the key's FX_LABEL_SOURCE_AS or
 * FX_LABEL_DESTINATION_AS bit (the names by the number's bit: a name is a function of the number), the others
 * by their own bit. */
const struct fx_label_name fx_series_label_catalog[FX_SERIES_LABELS_BUILTIN] = {
    {LIT("destination_as")}, {LIT("destination_as_name")}, {LIT("hostname")},	    {LIT("iface_in")},
    {LIT("iface_out")},	     {LIT("source_as")},	   {LIT("source_as_name")},
};

const struct fx_flow_family fx_flow_families[FX_FLOW_FAMILIES] = {
    {"flow_receive_bytes_total", "flow_receive_bytes", "Bytes received.", "bytes", FX_DIR_RECEIVE, false},
    {"flow_transmit_bytes_total", "flow_transmit_bytes", "Bytes transferred.", "bytes", FX_DIR_TRANSMIT,
     false},
    {"flow_receive_packets_total", "flow_receive_packets", "Packets received.", NULL, FX_DIR_RECEIVE, true},
    {"flow_transmit_packets_total", "flow_transmit_packets", "Packets transmitted.", NULL, FX_DIR_TRANSMIT,
     true},
};

struct asn_slot {
	uint32_t asn;
	bool filled;
	bool name_escape;
	uint8_t digits_len;
	char digits[10];
	const char *name; /* from the snapshot's map; NULL when none or empty */
	size_t name_len;
};

struct host_slot {
	const char *hostname; /* NULL: empty slot */
	size_t len;
	bool escape;
};

struct string_slot {
	uint32_t id; /* 0: empty slot */
	const char *string;
	size_t len;
	bool escape;
};

struct iface_slot {
	const char *hostname; /* NULL: empty slot */
	uint32_t ifindex;
	const char *value[2]; /* name, description; NULL when none or empty */
	size_t len[2];
	bool escape[2];
};

struct fx_series_labels {
	uint32_t mask;
	const struct fx_asn_map *names;		 /* NULL when no names are loaded or none is kept */
	const struct fx_iface_names *interfaces; /* NULL when none or no interface name is kept */
	bool named; /* an interface name is kept: the catalog is built, keys take get_named */
	/* The snapshot's layout when it has extra dimensions, else NULL (the built-in catalog). */
	const struct fx_key_layout *layout;
	size_t n_catalog;
	struct fx_label_name catalog[FX_SERIES_LABELS_MAX];
	unsigned builtin_at[N_BUILTIN];	 /* catalog position of built-in label k (LABEL_*) */
	unsigned extra_at[FX_KEY_EXTRA]; /* catalog position of extra dimension i */
	struct host_slot hosts[HOST_SLOTS];
	struct asn_slot asns[ASN_SLOTS];
	struct string_slot strings[STRING_SLOTS];
	struct iface_slot ifaces[IFACE_SLOTS];
};

struct fx_series_labels *fx_series_labels_create(void)
{
	return calloc(1, sizeof(struct fx_series_labels));
}

void fx_series_labels_destroy(struct fx_series_labels *labels)
{
	free(labels);
}

/* Name k of the candidates of a catalog: the 7 built-in ones, the 4 interface-name labels, the layout's
 * extra names. */
static struct fx_label_name candidate(const struct fx_key_layout *layout, unsigned k)
{
	if (k < FX_SERIES_LABELS_BUILTIN)
		return fx_series_label_catalog[k];
	if (k < N_BUILTIN) {
		const char *name = fx_iface_label_names[k - FX_SERIES_LABELS_BUILTIN];
		return (struct fx_label_name){name, strlen(name)};
	}
	const char *name = layout->extra[k - N_BUILTIN].label;
	return (struct fx_label_name){name, strlen(name)};
}

/* The built-in names, the interface-name labels the mask keeps and the layout's extra names (layout may be
 * NULL), in name order (insertion: at most 19). */
static void build_catalog(struct fx_series_labels *labels, const struct fx_key_layout *layout)
{
	size_t n = 0, n_extra = layout ? layout->n_extra : 0;
	/* owner[at]: candidate k, built-in label k (LABEL_*) when k < N_BUILTIN, else extra k - N_BUILTIN */
	unsigned owner[FX_SERIES_LABELS_MAX];
	for (unsigned k = 0; k < N_BUILTIN + n_extra; k++) {
		if (k >= FX_SERIES_LABELS_BUILTIN && k < N_BUILTIN &&
		    !(labels->mask & (1u << (FX_LABEL_IFACE_NAMES_SHIFT + k - FX_SERIES_LABELS_BUILTIN))))
			continue;
		struct fx_label_name name = candidate(layout, k);
		size_t at = n++;
		while (at && strcmp(labels->catalog[at - 1].name, name.name) > 0) {
			labels->catalog[at] = labels->catalog[at - 1];
			owner[at] = owner[at - 1];
			at--;
		}
		labels->catalog[at] = name;
		owner[at] = k;
	}
	for (unsigned at = 0; at < n; at++) {
		if (owner[at] < N_BUILTIN)
			labels->builtin_at[owner[at]] = at;
		else
			labels->extra_at[owner[at] - N_BUILTIN] = at;
	}
	labels->n_catalog = n;
}

void fx_series_labels_begin(struct fx_series_labels *labels, const struct fx_snapshot *snapshot)
{
	labels->mask = snapshot->label_mask;
	labels->names =
	    labels->mask & (FX_LABEL_SOURCE_AS_NAME | FX_LABEL_DESTINATION_AS_NAME) ? snapshot->names : NULL;
	labels->interfaces = labels->mask & FX_LABEL_IFACE_NAMES ? snapshot->interfaces : NULL;
	labels->layout = snapshot->layout && snapshot->layout->n_extra ? snapshot->layout : NULL;
	labels->named = (labels->mask & FX_LABEL_IFACE_NAMES) != 0;
	if (labels->layout || labels->named) {
		build_catalog(labels, labels->layout);
	} else {
		memcpy(labels->catalog, fx_series_label_catalog, sizeof(fx_series_label_catalog));
		labels->n_catalog = FX_SERIES_LABELS_BUILTIN;
		for (unsigned k = 0; k < FX_SERIES_LABELS_BUILTIN; k++)
			labels->builtin_at[k] = k;
	}
	memset(labels->hosts, 0, sizeof(labels->hosts));
	memset(labels->asns, 0, sizeof(labels->asns));
	memset(labels->strings, 0, sizeof(labels->strings));
	if (labels->interfaces)
		memset(labels->ifaces, 0, sizeof(labels->ifaces));
}

const struct fx_label_name *fx_series_labels_catalog(const struct fx_series_labels *labels, size_t *n)
{
	*n = labels->n_catalog;
	return labels->catalog;
}

static bool needs_escape(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\\' || s[i] == '"' || s[i] == '\n')
			return true;
	return false;
}

static const struct asn_slot *lookup_asn(struct fx_series_labels *labels, uint32_t asn)
{
	struct asn_slot *slot = &labels->asns[(uint32_t)(asn * 2654435769u) >> ASN_SLOT_SHIFT];
	if (!slot->filled || slot->asn != asn) {
		slot->asn = asn;
		slot->filled = true;
		slot->digits_len = (uint8_t)fx_u64_to_dec(asn, slot->digits);
		const char *name = fx_asn_map_lookup(labels->names, asn);
		slot->name_len = name ? strlen(name) : 0;
		slot->name = slot->name_len ? name : NULL;
		slot->name_escape = slot->name && needs_escape(name, slot->name_len);
	}
	return slot;
}

static const struct host_slot *lookup_host(struct fx_series_labels *labels, const char *hostname)
{
	uintptr_t bits = (uintptr_t)hostname;
	struct host_slot *slot = &labels->hosts[((bits >> 4) ^ (bits >> 12)) % HOST_SLOTS];
	if (slot->hostname != hostname) {
		slot->hostname = hostname;
		slot->len = strlen(hostname);
		slot->escape = needs_escape(hostname, slot->len);
	}
	return slot;
}

/* Appends a pair to out; its value is not empty. */
static inline void add_pair(struct fx_label_set *out, unsigned label, const char *value, size_t len,
			    bool escape)
{
	assert(out->n == 0 || out->pairs[out->n - 1].label < label);
	out->pairs[out->n++] =
	    (struct fx_label_pair){.label = label, .escape = escape, .value = value, .value_len = len};
}

static inline void add_number(struct fx_label_set *out, unsigned label, uint64_t value)
{
	char *digits = out->digits[out->n];
	add_pair(out, label, digits, fx_u64_to_dec(value, digits), false);
}

/* The number and name labels of one AS (catalog positions `number` and `number + 1`). The slot's digits are
 * copied: the other AS of the key may take the slot next. */
static inline void add_as(struct fx_series_labels *labels, struct fx_label_set *out, uint32_t asn,
			  unsigned number, bool keep_number, bool keep_name)
{
	const struct asn_slot *slot = lookup_asn(labels, asn);
	if (keep_number) {
		char *digits = out->digits[out->n];
		memcpy(digits, slot->digits, sizeof(slot->digits));
		add_pair(out, number, digits, slot->digits_len, false);
	}
	if (keep_name && slot->name)
		add_pair(out, number + 1, slot->name, slot->name_len, slot->name_escape);
}

static const struct string_slot *lookup_string(struct fx_series_labels *labels, uint32_t id)
{
	struct string_slot *slot = &labels->strings[(uint32_t)(id * 2654435769u) >> 22];
	if (slot->id != id) {
		const char *string = fx_intern_string(labels->layout->strings, id);
		slot->id = id;
		slot->string = string ? string : "";
		slot->len = strlen(slot->string);
		slot->escape = needs_escape(slot->string, slot->len);
	}
	return slot;
}

static const struct iface_slot *lookup_iface(struct fx_series_labels *labels, const char *hostname,
					     uint32_t ifindex)
{
	uintptr_t bits = (uintptr_t)hostname;
	uint32_t hash = ((uint32_t)(bits >> 4) ^ (uint32_t)(bits >> 20)) * 0x85EBCA6Bu + ifindex;
	struct iface_slot *slot = &labels->ifaces[(uint32_t)(hash * 2654435769u) >> IFACE_SLOT_SHIFT];
	if (slot->hostname != hostname || slot->ifindex != ifindex) {
		const struct fx_iface_entry *entry =
		    fx_iface_names_find(labels->interfaces, hostname, ifindex);
		const char *values[2] = {entry ? entry->name : NULL, entry ? entry->description : NULL};
		slot->hostname = hostname;
		slot->ifindex = ifindex;
		for (int i = 0; i < 2; i++) {
			size_t len = values[i] ? strlen(values[i]) : 0;
			/* Past what an encoder holds: left out rather than failing the whole encode. */
			if (len > FX_SERIES_LABEL_VALUE_MAX)
				len = 0;
			slot->value[i] = len ? values[i] : NULL;
			slot->len[i] = len;
			slot->escape[i] = len && needs_escape(values[i], len);
		}
	}
	return slot;
}

/* A pair at its catalog position, out of order (sorted by the caller). */
static void put_pair(struct fx_label_set *out, unsigned label, const char *value, size_t len, bool escape)
{
	out->pairs[out->n++] =
	    (struct fx_label_pair){.label = label, .escape = escape, .value = value, .value_len = len};
}

static void put_as(struct fx_series_labels *labels, struct fx_label_set *out, const struct fx_series_key *key,
		   uint32_t bit, uint32_t asn, unsigned number)
{
	uint32_t kept = labels->mask & key->present;
	if (key->other & bit) {
		if (kept & bit)
			put_pair(out, labels->builtin_at[number], "other", 5, false);
		return;
	}
	const struct asn_slot *slot = lookup_asn(labels, asn);
	if (kept & bit) {
		char *digits = out->digits[out->n];
		memcpy(digits, slot->digits, sizeof(slot->digits));
		put_pair(out, labels->builtin_at[number], digits, slot->digits_len, false);
	}
	if ((labels->mask & (bit << 1)) && slot->name)
		put_pair(out, labels->builtin_at[number + 1], slot->name, slot->name_len, slot->name_escape);
}

/* The name and description of the interface of the key's `bit` (FX_LABEL_IFACE_IN or _OUT); `name_at`
 * is LABEL_IFACE_IN_NAME or LABEL_IFACE_OUT_NAME. None for an interface or hostname that is absent or
 * "other". */
static inline void put_iface_names(struct fx_series_labels *labels, struct fx_label_set *out,
				   const struct fx_series_key *key, uint32_t bit, uint32_t ifindex,
				   unsigned name_at)
{
	unsigned description_at = name_at + 2; /* the order of fx_iface_label_names */
	uint32_t name_bit = 1u << (FX_LABEL_IFACE_NAMES_SHIFT + name_at - FX_SERIES_LABELS_BUILTIN);
	uint32_t description_bit =
	    1u << (FX_LABEL_IFACE_NAMES_SHIFT + description_at - FX_SERIES_LABELS_BUILTIN);
	uint32_t wanted = labels->mask & (name_bit | description_bit);
	if (!labels->interfaces || !wanted ||
	    (key->present & (bit | FX_LABEL_HOSTNAME)) != (bit | FX_LABEL_HOSTNAME) ||
	    (key->other & (bit | FX_LABEL_HOSTNAME)) || !key->hostname)
		return;
	const struct iface_slot *slot = lookup_iface(labels, key->hostname, ifindex);
	/* In name order: iface_in_description < iface_in_name. */
	if ((wanted & description_bit) && slot->value[1])
		put_pair(out, labels->builtin_at[description_at], slot->value[1], slot->len[1],
			 slot->escape[1]);
	if ((wanted & name_bit) && slot->value[0])
		put_pair(out, labels->builtin_at[name_at], slot->value[0], slot->len[0], slot->escape[0]);
}

static void put_number(struct fx_series_labels *labels, struct fx_label_set *out, const struct fx_series_key *key,
		       uint32_t bit, unsigned at, uint64_t value)
{
	if (!(labels->mask & key->present & bit))
		return;
	if (key->other & bit) {
		put_pair(out, at, "other", 5, false);
		return;
	}
	char *digits = out->digits[out->n];
	put_pair(out, at, digits, fx_u64_to_dec(value, digits), false);
}

static void put_extras(struct fx_series_labels *labels, struct fx_label_set *out, const struct fx_series_key *key)
{
	const struct fx_key_layout *layout = labels->layout;
	for (size_t i = 0; layout && i < layout->n_extra; i++) {
		uint32_t bit = FX_LABEL_EXTRA(i);
		if (!(labels->mask & key->present & bit))
			continue;
		if ((key->other & bit) || layout->extra[i].kind == FX_DIM_NUMBER) {
			put_number(labels, out, key, bit, labels->extra_at[i], key->extra[i]);
			continue;
		}
		const struct string_slot *slot = lookup_string(labels, key->extra[i]);
		if (slot->len)
			put_pair(out, labels->extra_at[i], slot->string, slot->len, slot->escape);
	}
}

/* Any key of a layout with extra dimensions or interface names, or with "other" labels: every pair, then
 * sorted. */
static void get_generic(struct fx_series_labels *labels, const struct fx_series_key *key, struct fx_label_set *out)
{
	uint32_t present = key->present;
	out->n = 0;
	if (present & FX_LABEL_DESTINATION_AS)
		put_as(labels, out, key, FX_LABEL_DESTINATION_AS, key->as_dst, LABEL_DESTINATION_AS);
	if (labels->mask & present & FX_LABEL_HOSTNAME) {
		if (key->other & FX_LABEL_HOSTNAME) {
			put_pair(out, labels->builtin_at[LABEL_HOSTNAME], "other", 5, false);
		} else if (key->hostname) {
			const struct host_slot *host = lookup_host(labels, key->hostname);
			if (host->len)
				put_pair(out, labels->builtin_at[LABEL_HOSTNAME], key->hostname, host->len,
					 host->escape);
		}
	}
	put_number(labels, out, key, FX_LABEL_IFACE_IN, labels->builtin_at[LABEL_IFACE_IN], key->iface_in);
	put_iface_names(labels, out, key, FX_LABEL_IFACE_IN, key->iface_in, LABEL_IFACE_IN_NAME);
	put_number(labels, out, key, FX_LABEL_IFACE_OUT, labels->builtin_at[LABEL_IFACE_OUT], key->iface_out);
	put_iface_names(labels, out, key, FX_LABEL_IFACE_OUT, key->iface_out, LABEL_IFACE_OUT_NAME);
	if (present & FX_LABEL_SOURCE_AS)
		put_as(labels, out, key, FX_LABEL_SOURCE_AS, key->as_src, LABEL_SOURCE_AS);
	put_extras(labels, out, key);
	/* Insertion sort by catalog position; the digits move with their pair (they are pointed at). */
	for (size_t i = 1; i < out->n; i++) {
		struct fx_label_pair pair = out->pairs[i];
		char digits[20];
		bool own = pair.value == out->digits[i];
		if (own)
			memcpy(digits, out->digits[i], sizeof(digits));
		size_t j = i;
		for (; j && out->pairs[j - 1].label > pair.label; j--) {
			out->pairs[j] = out->pairs[j - 1];
			if (out->pairs[j].value == out->digits[j - 1]) {
				memcpy(out->digits[j], out->digits[j - 1], sizeof(digits));
				out->pairs[j].value = out->digits[j];
			}
		}
		out->pairs[j] = pair;
		if (own) {
			memcpy(out->digits[j], digits, sizeof(digits));
			out->pairs[j].value = out->digits[j];
		}
	}
}

/* For asserts: the pairs are in catalog order, each label once. */
__attribute__((unused)) static bool in_name_order(const struct fx_label_set *out)
{
	for (size_t i = 1; i < out->n; i++)
		if (out->pairs[i - 1].label >= out->pairs[i].label)
			return false;
	return true;
}

/* A key of the built-in labels, none "other", with interface names kept: in catalog order, as the fast path
 * of fx_series_labels_get, at the positions of builtin_at. An AS name still follows its number
 * (destination_as, destination_as_name, then source_as, source_as_name: no interface label between). */
static void get_named(struct fx_series_labels *labels, const struct fx_series_key *key,
		      struct fx_label_set *out)
{
	uint32_t mask = labels->mask, present = key->present;
	const unsigned *at = labels->builtin_at;
	out->n = 0;
	if (present & FX_LABEL_DESTINATION_AS)
		add_as(labels, out, key->as_dst, at[LABEL_DESTINATION_AS], mask & FX_LABEL_DESTINATION_AS,
		       mask & FX_LABEL_DESTINATION_AS_NAME);
	if ((mask & present & FX_LABEL_HOSTNAME) && key->hostname) {
		const struct host_slot *host = lookup_host(labels, key->hostname);
		if (host->len)
			add_pair(out, at[LABEL_HOSTNAME], key->hostname, host->len, host->escape);
	}
	if (mask & present & FX_LABEL_IFACE_IN)
		add_number(out, at[LABEL_IFACE_IN], key->iface_in);
	put_iface_names(labels, out, key, FX_LABEL_IFACE_IN, key->iface_in, LABEL_IFACE_IN_NAME);
	if (mask & present & FX_LABEL_IFACE_OUT)
		add_number(out, at[LABEL_IFACE_OUT], key->iface_out);
	put_iface_names(labels, out, key, FX_LABEL_IFACE_OUT, key->iface_out, LABEL_IFACE_OUT_NAME);
	if (present & FX_LABEL_SOURCE_AS)
		add_as(labels, out, key->as_src, at[LABEL_SOURCE_AS], mask & FX_LABEL_SOURCE_AS,
		       mask & FX_LABEL_SOURCE_AS_NAME);
	assert(in_name_order(out));
}

void fx_series_labels_get(struct fx_series_labels *labels, const struct fx_series_key *key,
			  struct fx_label_set *out)
{
	uint32_t mask = labels->mask, present = key->present;
	if (labels->layout || key->other) {
		get_generic(labels, key, out);
		return;
	}
	if (labels->named) {
		get_named(labels, key, out);
		return;
	}
	out->n = 0;
	/* In catalog (name) order; the catalog rows say which bits keep and carry each label. */
	if (present & FX_LABEL_DESTINATION_AS)
		add_as(labels, out, key->as_dst, LABEL_DESTINATION_AS, mask & FX_LABEL_DESTINATION_AS,
		       mask & FX_LABEL_DESTINATION_AS_NAME);
	if ((mask & present & FX_LABEL_HOSTNAME) && key->hostname) {
		const struct host_slot *host = lookup_host(labels, key->hostname);
		if (host->len)
			add_pair(out, LABEL_HOSTNAME, key->hostname, host->len, host->escape);
	}
	if (mask & present & FX_LABEL_IFACE_IN)
		add_number(out, LABEL_IFACE_IN, key->iface_in);
	if (mask & present & FX_LABEL_IFACE_OUT)
		add_number(out, LABEL_IFACE_OUT, key->iface_out);
	if (present & FX_LABEL_SOURCE_AS)
		add_as(labels, out, key->as_src, LABEL_SOURCE_AS, mask & FX_LABEL_SOURCE_AS,
		       mask & FX_LABEL_SOURCE_AS_NAME);
}
