/* The cumulative counters and the snapshots taken from them.
 *
 * DESIGN
 * Consumer threads count into delta tables of their own. Every flush interval a thread hands its delta to
 * its slot here and gets back an empty one (two tables alternate per thread), taking `slots_lock` for two
 * pointer swaps: never a lock per record, and never a wait on a merge or a copy.
 * Whoever needs the totals (a scrape, a push, the main loop's tick) takes `total_lock`, collects the handed
 * deltas (under `slots_lock`, pointer swaps only), merges them into `total`, and gives the emptied tables
 * back as spares. A snapshot copies `total` under `total_lock` (one memcpy) and sorts the copy after
 * releasing it, so readers never walk live data and writers never wait for a sort or an encoder.
 *
 * Lock order: total_lock, then slots_lock. Expired series are kept for a while as tombstones so that
 * pushers can send their stale markers. */
#include "fx/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fx/clock.h"
#include "fx/log.h"

#define MAX_COLLECTORS 16
/* Expired series are kept this long for stale markers: longer than any push backlog worth keeping. */
#define TOMBSTONE_KEEP_MS (60 * 60 * 1000)

struct worker_slot {
	struct fx_series_table *handed; /* waiting to be merged; NULL when the slot is free */
	struct fx_series_table *spare;  /* an empty table to give back on the next hand-over */
};

struct collector {
	fx_collect_fn collect;
	void *opaque;
};

struct fx_store {
	struct fx_store_config config;

	pthread_mutex_t slots_lock; /* guards slots[] */
	struct worker_slot *slots;

	pthread_mutex_t total_lock; /* guards everything below */
	struct fx_series_table *total;
	uint64_t refused_records; /* records of new series refused by the full total table */
	struct fx_series *tombstones;
	size_t n_tombstones, cap_tombstones;
	uint64_t expired_total;

	struct collector collectors[MAX_COLLECTORS];
	size_t n_collectors;
};

struct fx_store *fx_store_create(const struct fx_store_config *config)
{
	struct fx_store *store = calloc(1, sizeof(*store));
	if (!store)
		goto fail;
	store->config = *config;
	pthread_mutex_init(&store->slots_lock, NULL);
	pthread_mutex_init(&store->total_lock, NULL);
	store->slots = calloc(config->n_workers ? config->n_workers : 1, sizeof(*store->slots));
	store->total = fx_series_table_create(config->max_series);
	if (!store->slots || !store->total)
		goto fail;
	return store;
fail:
	fx_error("store: out of memory");
	fx_store_destroy(store);
	return NULL;
}

void fx_store_destroy(struct fx_store *store)
{
	if (!store)
		return;
	if (store->slots) {
		for (size_t i = 0; i < store->config.n_workers; i++) {
			fx_series_table_destroy(store->slots[i].handed);
			fx_series_table_destroy(store->slots[i].spare);
		}
	}
	free(store->slots);
	fx_series_table_destroy(store->total);
	free(store->tombstones);
	pthread_mutex_destroy(&store->slots_lock);
	pthread_mutex_destroy(&store->total_lock);
	free(store);
}

int fx_store_add_collector(struct fx_store *store, fx_collect_fn collect, void *opaque)
{
	if (store->n_collectors == MAX_COLLECTORS)
		return -1;
	store->collectors[store->n_collectors++] = (struct collector){collect, opaque};
	return 0;
}

struct fx_series_table *fx_store_handoff(struct fx_store *store, size_t worker, struct fx_series_table *delta)
{
	struct worker_slot *slot = &store->slots[worker];
	pthread_mutex_lock(&store->slots_lock);
	if (slot->handed) {
		/* The last hand-over is not merged yet: keep counting into the same table. */
		pthread_mutex_unlock(&store->slots_lock);
		return delta;
	}
	struct fx_series_table *next = slot->spare;
	if (!next) {
		pthread_mutex_unlock(&store->slots_lock);
		/* First hand-over of this worker: make its second table outside the lock. */
		next = fx_series_table_create(fx_series_table_max(delta));
		if (!next)
			return delta;
		pthread_mutex_lock(&store->slots_lock);
	}
	slot->spare = NULL;
	slot->handed = delta;
	pthread_mutex_unlock(&store->slots_lock);
	return next;
}

/* @locks total_lock held. */
static void merge_handed(struct fx_store *store)
{
	for (size_t i = 0; i < store->config.n_workers; i++) {
		struct worker_slot *slot = &store->slots[i];
		pthread_mutex_lock(&store->slots_lock);
		struct fx_series_table *handed = slot->handed;
		pthread_mutex_unlock(&store->slots_lock);
		if (!handed)
			continue;
		/* The worker never touches a handed table, and only total_lock holders take it back. */
		store->refused_records += fx_series_table_merge(store->total, handed);
		fx_series_table_clear(handed);
		pthread_mutex_lock(&store->slots_lock);
		slot->handed = NULL;
		if (!slot->spare) {
			slot->spare = handed;
			handed = NULL;
		}
		pthread_mutex_unlock(&store->slots_lock);
		fx_series_table_destroy(handed);
	}
}

struct expiry {
	struct fx_store *store;
	int64_t now_ms;
};

static void keep_tombstone(void *opaque, const struct fx_series *series)
{
	struct expiry *expiry = opaque;
	struct fx_store *store = expiry->store;
	if (store->n_tombstones == store->cap_tombstones) {
		size_t cap = store->cap_tombstones ? store->cap_tombstones * 2 : 256;
		if (cap > store->config.max_series)
			cap = store->config.max_series;
		if (cap <= store->n_tombstones)
			return; /* bounded: more expirations at once than series allowed */
		struct fx_series *tombstones = realloc(store->tombstones, cap * sizeof(*tombstones));
		if (!tombstones)
			return;
		store->tombstones = tombstones;
		store->cap_tombstones = cap;
	}
	struct fx_series *tombstone = &store->tombstones[store->n_tombstones++];
	*tombstone = *series;
	tombstone->updated_ms = expiry->now_ms;
	store->expired_total++;
}

/* @locks total_lock held. */
static void expire(struct fx_store *store, int64_t now_ms)
{
	size_t kept = 0;
	for (size_t i = 0; i < store->n_tombstones; i++)
		if (store->tombstones[i].updated_ms >= now_ms - TOMBSTONE_KEEP_MS)
			store->tombstones[kept++] = store->tombstones[i];
	store->n_tombstones = kept;
	if (store->config.series_ttl_ms <= 0)
		return;
	struct expiry expiry = {store, now_ms};
	size_t removed =
		fx_series_table_expire(store->total, now_ms - store->config.series_ttl_ms, keep_tombstone, &expiry);
	if (removed)
		fx_debug("store: %zu series expired (not updated for %lld ms)", removed,
			 (long long)store->config.series_ttl_ms);
}

void fx_store_tick(struct fx_store *store)
{
	pthread_mutex_lock(&store->total_lock);
	merge_handed(store);
	expire(store, fx_wall_ms());
	pthread_mutex_unlock(&store->total_lock);
}

static int compare_series(const void *a, const void *b)
{
	return fx_series_key_compare(&((const struct fx_series *)a)->key, &((const struct fx_series *)b)->key);
}

static struct fx_series *copy_series(const struct fx_series *from, size_t n)
{
	struct fx_series *copy = malloc(n ? n * sizeof(*copy) : 1);
	if (copy && n)
		memcpy(copy, from, n * sizeof(*copy));
	return copy;
}

struct fx_snapshot *fx_store_snapshot(struct fx_store *store)
{
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	if (!snapshot)
		goto fail;
	snapshot->label_mask = store->config.label_mask;
	snapshot->self = fx_family_list_create();
	if (!snapshot->self)
		goto fail;

	pthread_mutex_lock(&store->total_lock);
	merge_handed(store);
	snapshot->taken_ms = fx_wall_ms();
	snapshot->n_series = fx_series_table_count(store->total);
	snapshot->series = copy_series(fx_series_table_array(store->total), snapshot->n_series);
	snapshot->n_expired = store->n_tombstones;
	snapshot->expired = copy_series(store->tombstones, store->n_tombstones);
	pthread_mutex_unlock(&store->total_lock);
	if (!snapshot->series || !snapshot->expired)
		goto fail;

	qsort(snapshot->series, snapshot->n_series, sizeof(struct fx_series), compare_series);
	if (store->config.acquire_names)
		snapshot->names = store->config.acquire_names(store->config.names_opaque);
	for (size_t i = 0; i < store->n_collectors; i++)
		if (store->collectors[i].collect(store->collectors[i].opaque, snapshot->self))
			goto fail;
	return snapshot;
fail:
	fx_error("store: cannot take a snapshot: out of memory");
	fx_snapshot_destroy(snapshot);
	return NULL;
}

int fx_store_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_store *store = opaque;
	pthread_mutex_lock(&store->total_lock);
	uint64_t series = fx_series_table_count(store->total);
	uint64_t refused = store->refused_records;
	uint64_t expired = store->expired_total;
	pthread_mutex_unlock(&store->total_lock);
	const struct fx_label reason = {"reason", "series_limit"};
	if (fx_family_begin(out, "flow_exporter_series", "Flow series held in memory.", FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, series, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_series_limit", "The most flow series held (--max-series).",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, store->config.max_series, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_series_expired_total",
			    "Flow series removed after --series-ttl without updates.", FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, expired, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_store_records_dropped_total",
			    "Records of new series refused by the full series table (--max-series).",
			    FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, refused, 1, &reason))
		return -1;
	return 0;
}
