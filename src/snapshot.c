/* Snapshot lifetime: a snapshot owns its AS-name and interface-name references and its self-metric list, and
 * either its series arrays or one reference to a shared, immutable block of them (the store hands the same
 * sorted arrays to every snapshot taken while nothing changed).
 *
 * Thread: any; the reference count is atomic, the arrays are never written once shared. */
#include "fx/snapshot.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "fx/iface_names.h"

struct fx_snapshot_shared {
	atomic_size_t refs;
	struct fx_series *series;
	size_t n_series;
	struct fx_series *expired;
	size_t n_expired;
};

struct fx_snapshot_shared *fx_snapshot_shared_create(struct fx_series *series, size_t n_series,
						     struct fx_series *expired, size_t n_expired)
{
	struct fx_snapshot_shared *shared = malloc(sizeof(*shared));
	if (!shared) {
		free(series);
		free(expired);
		return NULL;
	}
	atomic_init(&shared->refs, 1);
	shared->series = series;
	shared->n_series = n_series;
	shared->expired = expired;
	shared->n_expired = n_expired;
	return shared;
}

struct fx_snapshot_shared *fx_snapshot_shared_ref(struct fx_snapshot_shared *shared)
{
	atomic_fetch_add_explicit(&shared->refs, 1, memory_order_relaxed);
	return shared;
}

void fx_snapshot_shared_unref(struct fx_snapshot_shared *shared)
{
	if (!shared || atomic_fetch_sub_explicit(&shared->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(shared->series);
	free(shared->expired);
	free(shared);
}

void fx_snapshot_use_shared(struct fx_snapshot *snapshot, struct fx_snapshot_shared *shared)
{
	snapshot->shared = fx_snapshot_shared_ref(shared);
	snapshot->series = shared->series;
	snapshot->n_series = shared->n_series;
	snapshot->expired = shared->expired;
	snapshot->n_expired = shared->n_expired;
}

void fx_snapshot_destroy(struct fx_snapshot *snapshot)
{
	if (!snapshot)
		return;
	if (snapshot->shared) {
		fx_snapshot_shared_unref(snapshot->shared);
	} else {
		free(snapshot->series);
		free(snapshot->expired);
	}
	fx_asn_map_unref(snapshot->names);
	fx_iface_names_unref(snapshot->interfaces);
	fx_family_list_destroy(snapshot->self);
	free(snapshot);
}

static int compare_series_key(const void *key, const void *series)
{
	return fx_series_key_compare(key, &((const struct fx_series *)series)->key);
}

const struct fx_series *fx_snapshot_next_pushed(const struct fx_snapshot *snapshot, int64_t stale_since_ms,
						size_t *cursor, bool *stale)
{
	*stale = *cursor >= snapshot->n_series;
	if (!*stale)
		return &snapshot->series[(*cursor)++];
	while (*cursor < snapshot->n_series + snapshot->n_expired) {
		const struct fx_series *expired = &snapshot->expired[(*cursor)++ - snapshot->n_series];
		if (expired->updated_ms <= stale_since_ms)
			continue;
		/* A series that came back since it expired is live again: no marker. */
		if (snapshot->n_series && bsearch(&expired->key, snapshot->series, snapshot->n_series,
						  sizeof(*snapshot->series), compare_series_key))
			continue;
		return expired;
	}
	return NULL;
}
