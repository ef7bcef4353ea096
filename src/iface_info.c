/* The flow_interface_* families (see iface_info.h). At each snapshot: the distinct (hostname, ifindex)
 * pairs of the series (hostnames are interned, so a pair is a pointer and a number, deduplicated in a hash
 * set sized for the snapshot), sorted, then named by fx_iface_names_find (the file's map, else the SNMP
 * map), the rule the inline labels use too.
 *
 * Thread: `lock` guards the two map pointers only; collect works on its own references. */
#include "fx/iface_info.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/log.h"

struct fx_iface_info {
	char *names_file; /* NULL: none */
	pthread_mutex_t lock;
	struct fx_iface_map *file;
	struct fx_iface_map *snmp;
	void (*want)(void *opaque, const char *const *hostnames, size_t n);
	void *want_opaque;
	struct fx_exporter_peers *peers; /* NULL: the file names exporters by hostname only */
};

struct used {
	const char *hostname; /* NULL: an empty slot */
	uint32_t ifindex;
};

static int load(const char *path, struct fx_iface_map **out, struct fx_parse_error *error)
{
	size_t len;
	char *text = fx_read_file(path, 256u << 20, &len, error);
	if (!text)
		return -1;
	int rc = fx_iface_map_parse(text, len, out, error);
	free(text);
	return rc;
}

struct fx_iface_info *fx_iface_info_create(const char *names_file, struct fx_parse_error *error)
{
	struct fx_iface_info *info = calloc(1, sizeof(*info));
	if (!info) {
		fx_parse_fail(error, 0, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&info->lock, NULL);
	if (names_file && names_file[0]) {
		info->names_file = strdup(names_file);
		if (!info->names_file) {
			fx_parse_fail(error, 0, "out of memory");
			goto fail;
		}
		if (load(info->names_file, &info->file, error))
			goto fail;
	}
	return info;
fail:
	fx_iface_info_destroy(info);
	return NULL;
}

void fx_iface_info_destroy(struct fx_iface_info *info)
{
	if (!info)
		return;
	fx_iface_map_unref(info->file);
	fx_iface_map_unref(info->snmp);
	pthread_mutex_destroy(&info->lock);
	free(info->names_file);
	free(info);
}

int fx_iface_info_reload(void *opaque, struct fx_parse_error *error)
{
	struct fx_iface_info *info = opaque;
	struct fx_iface_map *map = NULL;
	if (!info->names_file)
		return 0;
	if (load(info->names_file, &map, error))
		return -1;
	pthread_mutex_lock(&info->lock);
	struct fx_iface_map *old = info->file;
	info->file = map;
	pthread_mutex_unlock(&info->lock);
	fx_iface_map_unref(old);
	fx_info("interface names: %s reloaded (%zu interfaces)", info->names_file, fx_iface_map_count(map));
	return 0;
}

void fx_iface_info_set_snmp(struct fx_iface_info *info, struct fx_iface_map *map)
{
	pthread_mutex_lock(&info->lock);
	struct fx_iface_map *old = info->snmp;
	info->snmp = map;
	pthread_mutex_unlock(&info->lock);
	fx_iface_map_unref(old);
}

void fx_iface_info_set_listener(struct fx_iface_info *info,
				void (*want)(void *opaque, const char *const *hostnames, size_t n),
				void *opaque)
{
	info->want = want;
	info->want_opaque = opaque;
}

/* Hands the distinct hostnames of the sorted pairs to the listener. */
static void tell_listener(const struct fx_iface_info *info, const struct used *used, size_t n)
{
	const char **hostnames = calloc(n ? n : 1, sizeof(*hostnames));
	size_t distinct = 0;
	if (!hostnames)
		return;
	for (size_t i = 0; i < n; i++)
		if (!distinct || hostnames[distinct - 1] != used[i].hostname)
			hostnames[distinct++] = used[i].hostname;
	info->want(info->want_opaque, hostnames, distinct);
	free(hostnames);
}

void fx_iface_info_set_peers(struct fx_iface_info *info, struct fx_exporter_peers *peers)
{
	info->peers = peers;
}

void fx_iface_info_acquire(struct fx_iface_info *info, struct fx_iface_map **file, struct fx_iface_map **snmp)
{
	pthread_mutex_lock(&info->lock);
	*file = fx_iface_map_ref(info->file);
	*snmp = fx_iface_map_ref(info->snmp);
	pthread_mutex_unlock(&info->lock);
}

struct fx_iface_names *fx_iface_info_acquire_names(struct fx_iface_info *info)
{
	struct fx_iface_map *file, *snmp;
	fx_iface_info_acquire(info, &file, &snmp);
	return fx_iface_names_create(file, snmp, info->peers);
}

static size_t hash_pair(const char *hostname, uint32_t ifindex)
{
	uint64_t h = (uint64_t)(uintptr_t)hostname * UINT64_C(0x9E3779B97F4A7C15) ^ ifindex;
	return (size_t)(h ^ h >> 29) * 0x85EBCA6Bu;
}

static void add_used(struct used *set, size_t mask, size_t *n, const char *hostname, uint32_t ifindex)
{
	size_t i = hash_pair(hostname, ifindex) & mask;
	while (set[i].hostname) {
		if (set[i].hostname == hostname && set[i].ifindex == ifindex)
			return;
		i = (i + 1) & mask;
	}
	set[i] = (struct used){hostname, ifindex};
	(*n)++;
}

static int compare_used(const void *a, const void *b)
{
	const struct used *x = a, *y = b;
	int c = strcmp(x->hostname, y->hostname);
	return c ? c : (x->ifindex < y->ifindex ? -1 : x->ifindex > y->ifindex);
}

/* The distinct (hostname, ifindex) pairs of the snapshot's series, sorted; *n of them. NULL when none or
 * on allocation failure (*failed set). */
static struct used *used_interfaces(const struct fx_snapshot *snapshot, size_t *n, bool *failed)
{
	size_t capacity = 16;
	*n = 0;
	*failed = false;
	while (capacity < 4 * snapshot->n_series)
		capacity *= 2;
	struct used *set = calloc(capacity, sizeof(*set));
	if (!set) {
		*failed = true;
		return NULL;
	}
	for (size_t i = 0; i < snapshot->n_series; i++) {
		const struct fx_series_key *key = &snapshot->series[i].key;
		if (!(key->present & FX_LABEL_HOSTNAME))
			continue;
		if (key->present & FX_LABEL_IFACE_IN)
			add_used(set, capacity - 1, n, key->hostname, key->iface_in);
		if (key->present & FX_LABEL_IFACE_OUT)
			add_used(set, capacity - 1, n, key->hostname, key->iface_out);
	}
	size_t kept = 0;
	for (size_t i = 0; i < capacity; i++)
		if (set[i].hostname)
			set[kept++] = set[i];
	qsort(set, kept, sizeof(*set), compare_used);
	return set;
}

static int add_interfaces(struct fx_family_list *out, const struct used *used, size_t n,
			  const struct fx_iface_entry *const *named, bool speeds)
{
	char ifindex[16];
	for (size_t i = 0; i < n; i++) {
		const struct fx_iface_entry *entry = named[i];
		if (!entry || (speeds && !entry->has_speed))
			continue;
		snprintf(ifindex, sizeof(ifindex), "%" PRIu32, used[i].ifindex);
		struct fx_label labels[4] = {{"hostname", used[i].hostname},
					     {"ifindex", ifindex},
					     {"name", entry->name},
					     {"description", entry->description}};
		if (speeds ? fx_family_add_u64(out, entry->speed_bps, 2, labels)
			   : fx_family_add_u64(out, 1, 4, labels))
			return -1;
	}
	return 0;
}

static int add_families(struct fx_family_list *out, const struct used *used, size_t n,
			const struct fx_iface_entry *const *named, size_t unnamed, size_t file_count,
			size_t snmp_count)
{
	const struct fx_label file = {"source", "file"}, snmp = {"source", "snmp"};
	if (fx_family_begin(
		out, "flow_interface_info",
		"Name and description of each interface the flow series use (join on hostname and "
		"iface_in or iface_out = ifindex).",
		FX_METRIC_GAUGE) ||
	    add_interfaces(out, used, n, named, false) ||
	    fx_family_begin(out, "flow_interface_speed_bps",
			    "Speed of each interface the flow series use, in "
			    "bits per second, where known.",
			    FX_METRIC_GAUGE) ||
	    add_interfaces(out, used, n, named, true) ||
	    fx_family_begin(out, "flow_exporter_interface_names",
			    "Interfaces named, by source (the "
			    "--interface-names file, SNMP).",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, file_count, 1, &file) || fx_family_add_u64(out, snmp_count, 1, &snmp) ||
	    fx_family_begin(out, "flow_exporter_interfaces_unnamed",
			    "Interfaces the flow series use that no source names.", FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, unnamed, 0, NULL))
		return -1;
	return 0;
}

int fx_iface_info_collect(void *opaque, const struct fx_snapshot *snapshot, struct fx_family_list *out)
{
	struct fx_iface_info *info = opaque;
	size_t n, unnamed = 0;
	bool failed;
	int rc = -1;
	struct fx_iface_names *names = snapshot->interfaces ? fx_iface_names_ref(snapshot->interfaces)
							    : fx_iface_info_acquire_names(info);
	struct used *used = used_interfaces(snapshot, &n, &failed);
	const struct fx_iface_entry **named = calloc(n ? n : 1, sizeof(*named));
	if (!names || failed || !named)
		goto out;
	if (info->want)
		tell_listener(info, used, n);
	for (size_t i = 0; i < n; i++) {
		named[i] = fx_iface_names_find(names, used[i].hostname, used[i].ifindex);
		unnamed += !named[i];
	}
	rc = add_families(out, used, n, named, unnamed, fx_iface_map_count(fx_iface_names_file(names)),
			  fx_iface_map_count(fx_iface_names_snmp(names)));
out:
	free(named);
	free(used);
	fx_iface_names_unref(names);
	return rc;
}
