/* The cumulative counters and the snapshots taken from them.
 *
 * DESIGN
 * Consumer threads count into delta tables of their own, one each. Every flush interval a thread merges
 * its delta into `total` itself, if `total_lock` is free at that moment (a trylock), and empties it: never
 * a lock per record, and never a wait on a snapshot's copy, a checkpoint's or another thread's merge (the
 * lock busy, it counts on into the same delta and tries at its next flush). One table per thread, not two
 * alternating with a merge by whoever reads next: at 100,000 series the second tables were a quarter of
 * the memory of catching up. A thread waits for the lock only when its delta is full (once per max_series
 * distinct keys) or must be in the totals now (the end, a revocation).
 * A snapshot copies `total` under `total_lock` (one memcpy) and sorts the copy after releasing it, so
 * readers never walk live data and writers never wait for a sort or an encoder.
 *
 * Sorting without sorting: the series of `total` only ever move when some expire (the table appends new
 * series and fills a hole with its last one). So the store keeps `order`, the positions of `total` in key
 * order, valid while `layout_epoch` (bumped by every expiry) has not changed. A snapshot whose copy only
 * gained series sorts the new positions and merges them in (O(n + k log k)), then permutes its copy in
 * place; a full sort happens only after an expiry, or the first time.
 *
 * Nothing changed, nothing copied: `generation` counts every change of the totals or the tombstones.
 * The last sorted arrays are kept (`cached`, shared and reference counted, see snapshot.h); a snapshot
 * taken at the same generation shares them: no copy, no sort. A push every interval with no records
 * flowing therefore costs the store nothing but its self-metrics.
 *
 * Durable mode (--state-dir): the checkpoint thread takes consistent copies of the totals with the offsets
 * they cover (fx_store_state_take), makes them durable, commits their offsets and then publishes them
 * (fx_store_publish); from then on snapshots copy the published state instead of `total`. A take when
 * nothing changed returns the last state itself, and a state's arrays outlive it as the store's spare, for
 * the next take to copy into (no allocation, no page faults, for a copy that is 128 MB at a full table). The
 * offsets travel with the deltas: a worker's hand-over carries the offsets its delta covers, and they reach
 * `offsets` in the same merge as the counts, under total_lock, so a copy never has counts without their
 * offsets or offsets without their counts.
 *
 * Lock order: topn_lock, total_lock, sort_lock. sort_lock is only taken by snapshot takers, so a worker's
 * merge never waits for a sort. Expired series are kept for a while as tombstones so that
 * pushers can send their stale markers. */
#define _GNU_SOURCE /* qsort_r */
#include "fx/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/buf.h"
#include "fx/clock.h"
#include "fx/log.h"
#include "fx/topn.h"

#define MAX_COLLECTORS 16
/* Expired series are kept this long for stale markers: longer than any push backlog worth keeping. */
#define TOMBSTONE_KEEP_MS (60 * 60 * 1000)

struct collector {
	fx_collect_fn collect;
	fx_snapshot_collect_fn with_snapshot; /* instead of collect, when set */
	void *opaque;
};

struct fx_store {
	struct fx_store_config config;

	pthread_mutex_t total_lock; /* guards everything below */
	struct fx_series_table *total;
	uint64_t refused_records; /* records of new series refused by the full total table */
	struct fx_series *tombstones;
	size_t n_tombstones, cap_tombstones;
	uint64_t expired_total;
	uint64_t expired_unmarked; /* expired series refused a tombstone (bound or memory): no stale marker */

	uint64_t generation;   /* bumped by every change of total or of the tombstones */
	uint64_t layout_epoch; /* bumped whenever series of total move (expiry) */

	pthread_mutex_t sort_lock; /* guards everything below; taken after total_lock, never before it */
	uint32_t *order;	   /* positions [0, n_order) of total, in key order, for order_epoch */
	size_t n_order, cap_order;
	uint64_t order_epoch;
	bool order_valid;
	struct fx_snapshot_shared *cached; /* the sorted arrays of cached_generation, or NULL */
	uint64_t cached_generation;

	/* --top-n: the exposed view. topn_lock serializes snapshot takers (the ranking's state must see the
	 * totals in order); taken before total_lock. */
	pthread_mutex_t topn_lock;
	struct fx_topn *topn;
	uint64_t exposed; /* series of the last snapshot; guarded by total_lock */

	/* Durable mode; guarded by total_lock. `offsets`: where the counts of `total` stop, per partition.
	 * `published`: what snapshots show once set (NULL: the live totals). */
	struct fx_partition_offset *offsets;
	size_t n_offsets, cap_offsets;
	struct fx_store_state *published;
	/* Per worker: a full delta was merged in the middle of a message (fx_store_handoff_full), so the counts
	 * are ahead of the offsets until the worker's next fx_store_handoff. */
	bool *ahead;
	/* A state whose last reference went, its arrays kept for the next take; exchanged atomically. */
	struct fx_store_state *_Atomic spare_state;

	struct collector collectors[MAX_COLLECTORS];
	size_t n_collectors;
	bool locks_ready; /* the mutexes are initialised (fx_store_destroy after a failed create) */
};

static void state_free(struct fx_store_state *state);

/* Initialises the mutexes, all or none. Returns 0 or -1. */
static int init_locks(struct fx_store *store)
{
	if (pthread_mutex_init(&store->total_lock, NULL) != 0)
		return -1;
	if (pthread_mutex_init(&store->sort_lock, NULL) != 0)
		goto destroy_total;
	if (pthread_mutex_init(&store->topn_lock, NULL) != 0)
		goto destroy_sort;
	store->locks_ready = true;
	return 0;
destroy_sort:
	pthread_mutex_destroy(&store->sort_lock);
destroy_total:
	pthread_mutex_destroy(&store->total_lock);
	return -1;
}

struct fx_store *fx_store_create(const struct fx_store_config *config)
{
	struct fx_store *store = calloc(1, sizeof(*store));
	if (!store)
		goto fail;
	store->config = *config;
	if (init_locks(store))
		goto fail;
	store->ahead = calloc(config->n_workers ? config->n_workers : 1, sizeof(*store->ahead));
	/* Rows as wide as the layout's keys (series_table.h): the totals are most of the store's memory. */
	store->total = fx_series_table_create_narrow(config->max_series,
						     config->layout ? config->layout->n_extra : 0);
	if (!store->ahead || !store->total)
		goto fail;
	if (config->layout) {
		store->config.label_mask = config->layout->mask;
		fx_series_table_set_fold(store->total, config->layout);
	}
	if (config->layout && config->top_n) {
		struct fx_topn_config topn = {config->top_n, config->top_n_window_ms, config->top_n_group,
					      config->layout, config->max_series, config->series_ttl_ms > 0};
		store->topn = fx_topn_create(&topn);
		if (!store->topn)
			goto fail;
	}
	return store;
fail:
	fx_error("store: out of resources (memory or a mutex)");
	fx_store_destroy(store);
	return NULL;
}

void fx_store_destroy(struct fx_store *store)
{
	if (!store)
		return;
	free(store->ahead);
	fx_series_table_destroy(store->total);
	free(store->tombstones);
	free(store->order);
	free(store->offsets);
	fx_store_state_unref(store->published);
	state_free(atomic_exchange(&store->spare_state, NULL));
	fx_snapshot_shared_unref(store->cached);
	if (store->locks_ready) {
		pthread_mutex_destroy(&store->total_lock);
		pthread_mutex_destroy(&store->sort_lock);
		pthread_mutex_destroy(&store->topn_lock);
	}
	fx_topn_destroy(store->topn);
	free(store);
}

int fx_store_add_collector(struct fx_store *store, fx_collect_fn collect, void *opaque)
{
	if (store->n_collectors == MAX_COLLECTORS)
		return -1;
	store->collectors[store->n_collectors++] = (struct collector){collect, NULL, opaque};
	return 0;
}

int fx_store_add_snapshot_collector(struct fx_store *store, fx_snapshot_collect_fn collect, void *opaque)
{
	if (store->n_collectors == MAX_COLLECTORS)
		return -1;
	store->collectors[store->n_collectors++] = (struct collector){NULL, collect, opaque};
	return 0;
}

static int advance_offsets(struct fx_store *store, const struct fx_partition_offset *offsets, size_t n);

/* Merges delta and its offsets into the totals and empties it. Returns false, changing nothing, when the
 * offsets cannot be taken (out of memory). @locks total_lock held. */
static bool merge(struct fx_store *store, size_t worker, struct fx_series_table *delta,
		  const struct fx_partition_offset *offsets, size_t n)
{
	if (advance_offsets(store, offsets, n))
		return false;
	store->refused_records += fx_series_table_merge(store->total, delta);
	fx_series_table_clear(delta);
	store->generation++;
	store->ahead[worker] = false; /* called between messages: the offsets cover every count */
	return true;
}

bool fx_store_handoff(struct fx_store *store, size_t worker, struct fx_series_table *delta,
		      const struct fx_partition_offset *offsets, size_t n, bool wait)
{
	if (wait)
		pthread_mutex_lock(&store->total_lock);
	else if (pthread_mutex_trylock(&store->total_lock) != 0)
		return false;
	bool merged = merge(store, worker, delta, offsets, n);
	pthread_mutex_unlock(&store->total_lock);
	return merged;
}

void fx_store_handoff_full(struct fx_store *store, size_t worker, struct fx_series_table *delta)
{
	pthread_mutex_lock(&store->total_lock);
	(void)merge(store, worker, delta, NULL, 0); /* no offsets to take: cannot fail */
	store->ahead[worker] = true;
	pthread_mutex_unlock(&store->total_lock);
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
		struct fx_series *tombstones = NULL;
		/* Bounded by max_series: past it (more expirations within TOMBSTONE_KEEP_MS than series
		 * allowed), or out of memory, the series leaves without a stale marker, and is counted. */
		if (cap > store->n_tombstones)
			tombstones = realloc(store->tombstones, cap * sizeof(*tombstones));
		if (!tombstones) {
			store->expired_unmarked++;
			return;
		}
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
	if (kept != store->n_tombstones)
		store->generation++;
	store->n_tombstones = kept;
	if (store->config.series_ttl_ms <= 0)
		return;
	struct expiry expiry = {store, now_ms};
	size_t removed = fx_series_table_expire(store->total, now_ms - store->config.series_ttl_ms,
						keep_tombstone, &expiry);
	if (removed) {
		store->generation++;
		store->layout_epoch++;
	}
	if (removed)
		fx_debug("store: %zu series expired (not updated for %lld ms)", removed,
			 (long long)store->config.series_ttl_ms);
}

void fx_store_tick(struct fx_store *store)
{
	pthread_mutex_lock(&store->total_lock);
	expire(store, fx_wall_ms());
	pthread_mutex_unlock(&store->total_lock);
}

static int compare_positions(const void *a, const void *b, void *series)
{
	const struct fx_series *array = series;
	return fx_series_key_compare(&array[*(const uint32_t *)a].key, &array[*(const uint32_t *)b].key);
}

static struct fx_series *copy_series(const struct fx_series *from, size_t n)
{
	struct fx_series *copy = malloc(n ? n * sizeof(*copy) : 1);
	if (copy && n)
		memcpy(copy, from, n * sizeof(*copy));
	return copy;
}

/* Brings `order` up to date for a copy of total's n series at layout `epoch`, and writes the key order of
 * the copy to `out` (n positions). Returns 0 or -1 (memory).
 * @locks sort_lock held. */
static int update_order(struct fx_store *store, const struct fx_series *copy, size_t n, uint64_t epoch,
			uint32_t *out)
{
	if (store->order_valid && store->order_epoch == epoch && store->n_order >= n) {
		/* A later copy already extended the order: its prefix of positions < n is this copy's order.
		 */
		size_t k = 0;
		for (size_t i = 0; i < store->n_order; i++)
			if (store->order[i] < n)
				out[k++] = store->order[i];
		return k == n ? 0 : -1;
	}
	size_t from = store->order_valid && store->order_epoch == epoch ? store->n_order : 0;
	if (n > store->cap_order) {
		size_t cap = store->cap_order ? store->cap_order : 1024;
		while (cap < n)
			cap *= 2;
		uint32_t *order = realloc(store->order, cap * sizeof(*order));
		if (!order)
			return -1;
		store->order = order;
		store->cap_order = cap;
	}
	/* The new positions [from, n), sorted among themselves, then merged with the known order. */
	uint32_t *added = malloc((n - from ? n - from : 1) * sizeof(*added));
	if (!added)
		return -1;
	for (size_t i = from; i < n; i++)
		added[i - from] = (uint32_t)i;
	qsort_r(added, n - from, sizeof(*added), compare_positions, (void *)copy);
	size_t a = 0, b = 0, w = 0;
	while (a < from && b < n - from) {
		if (fx_series_key_compare(&copy[store->order[a]].key, &copy[added[b]].key) < 0)
			out[w++] = store->order[a++];
		else
			out[w++] = added[b++];
	}
	while (a < from)
		out[w++] = store->order[a++];
	while (b < n - from)
		out[w++] = added[b++];
	free(added);
	if (n)
		memcpy(store->order, out, n * sizeof(*out));
	store->n_order = n;
	store->order_epoch = epoch;
	store->order_valid = true;
	return 0;
}

/* Rearranges series so that series'[i] = series[order[i]], in place, following the permutation's cycles.
 * Returns 0 or -1 (memory). */
static int permute(struct fx_series *series, const uint32_t *order, size_t n)
{
	uint64_t *done = calloc((n + 63) / 64 + 1, sizeof(*done));
	if (!done)
		return -1;
	for (size_t start = 0; start < n; start++) {
		if (done[start / 64] & (UINT64_C(1) << (start % 64)))
			continue;
		struct fx_series held = series[start];
		size_t at = start;
		for (;;) {
			done[at / 64] |= UINT64_C(1) << (at % 64);
			size_t next = order[at];
			if (next == start) {
				series[at] = held;
				break;
			}
			series[at] = series[next];
			at = next;
		}
	}
	free(done);
	return 0;
}

/* What a snapshot takes from the store, on its way from the totals to shared, sorted arrays. */
struct taking {
	struct fx_series *series; /* the copy of total, malloc'ed; NULL once shared or when `shared` is set */
	size_t n_series, cap_series;
	struct fx_series *expired; /* the copy of the tombstones */
	size_t n_expired;
	uint64_t generation, epoch;	   /* of total when it was copied */
	struct fx_snapshot_shared *shared; /* one reference: the cached arrays, or the copy once shared */
};

/* What snapshots show: the published durable state, else the live totals; its size, generation and layout
 * epoch. @locks total_lock held. */
static size_t exposed_count(const struct fx_store *store, uint64_t *generation, uint64_t *epoch)
{
	if (store->published) {
		*generation = store->published->generation;
		*epoch = store->published->epoch;
		return store->published->n_series;
	}
	*generation = store->generation;
	*epoch = store->layout_epoch;
	return fx_series_table_count(store->total);
}

/* Copies the exposed_count series snapshots show into out. @locks total_lock held. */
static void copy_exposed(const struct fx_store *store, struct fx_series *out)
{
	if (!store->published)
		fx_series_table_copy_out(store->total, out);
	else if (store->published->n_series)
		memcpy(out, store->published->series, store->published->n_series * sizeof(*out));
}

/* The copy's memory is allocated and touched before total_lock is taken, so that the page faults of a
 * fresh allocation are not paid while it is held; it is sized from a peek at the count, with room for what
 * the merge may add meanwhile. Nothing is allocated when the cached arrays look current. Returns 0 or -1
 * (memory). */
static int reserve_copy(struct fx_store *store, struct taking *taking)
{
	pthread_mutex_lock(&store->total_lock);
	uint64_t generation = 0, epoch = 0;
	size_t peek = exposed_count(store, &generation, &epoch);
	bool unchanged = store->cached && store->cached_generation == generation;
	pthread_mutex_unlock(&store->total_lock);
	if (unchanged)
		return 0;
	taking->cap_series = peek + peek / 8 + 64;
	taking->series = malloc(taking->cap_series * sizeof(*taking->series));
	if (!taking->series)
		return -1;
	memset(taking->series, 0, taking->cap_series * sizeof(*taking->series));
	return 0;
}

/* Under total_lock: either takes a reference to the cached arrays (nothing changed since they were sorted)
 * or copies total and the tombstones. Afterwards gives back the copy's slack, since the arrays may be kept
 * for a while (cached, or by a slow scrape). A failed copy leaves taking->series or taking->expired NULL. */
static void copy_total(struct fx_store *store, struct taking *taking, int64_t *taken_ms)
{
	pthread_mutex_lock(&store->total_lock);
	*taken_ms = fx_wall_ms();
	size_t n = exposed_count(store, &taking->generation, &taking->epoch);
	pthread_mutex_lock(&store->sort_lock);
	if (store->cached && store->cached_generation == taking->generation)
		taking->shared = fx_snapshot_shared_ref(store->cached);
	pthread_mutex_unlock(&store->sort_lock);
	if (!taking->shared) {
		if (n > taking->cap_series || !taking->series) {
			free(taking->series);
			taking->series = malloc(n ? n * sizeof(*taking->series) : 1);
		}
		if (taking->series)
			copy_exposed(store, taking->series);
		taking->n_series = n;
		taking->n_expired = store->n_tombstones;
		taking->expired = copy_series(store->tombstones, store->n_tombstones);
	}
	pthread_mutex_unlock(&store->total_lock);

	if (taking->shared) {
		free(taking->series);
		taking->series = NULL;
	} else if (taking->series && taking->n_series && taking->n_series < taking->cap_series) {
		struct fx_series *shrunk = realloc(taking->series, taking->n_series * sizeof(*shrunk));
		if (shrunk)
			taking->series = shrunk;
	}
}

/* Puts the copy in key order: the order is brought up to date under sort_lock (see update_order), the copy
 * permuted outside it. Returns 0 or -1 (memory). */
static int sort_copy(struct fx_store *store, struct taking *taking)
{
	uint32_t *order = malloc(taking->n_series ? taking->n_series * sizeof(*order) : 1);
	if (!order)
		return -1;
	pthread_mutex_lock(&store->sort_lock);
	int rc = update_order(store, taking->series, taking->n_series, taking->epoch, order);
	if (rc)
		store->order_valid = false;
	pthread_mutex_unlock(&store->sort_lock);
	if (!rc)
		rc = permute(taking->series, order, taking->n_series);
	free(order);
	return rc;
}

/* Hands the sorted copy to a shared block (taking->shared) and caches it for the snapshots that follow,
 * unless a newer one was cached meanwhile. Returns 0 or -1 (memory). */
static int share_sorted(struct fx_store *store, struct taking *taking)
{
	taking->shared =
	    fx_snapshot_shared_create(taking->series, taking->n_series, taking->expired, taking->n_expired);
	taking->series = taking->expired = NULL;
	if (!taking->shared)
		return -1;
	pthread_mutex_lock(&store->sort_lock);
	if (!store->cached || taking->generation > store->cached_generation) {
		fx_snapshot_shared_unref(store->cached);
		store->cached = fx_snapshot_shared_ref(taking->shared);
		store->cached_generation = taking->generation;
	}
	pthread_mutex_unlock(&store->sort_lock);
	return 0;
}

/* The AS and interface names and the self-metrics of every collector. Returns 0 or -1. */
static int add_self_metrics(struct fx_store *store, struct fx_snapshot *snapshot)
{
	if (store->config.acquire_names)
		snapshot->names = store->config.acquire_names(store->config.names_opaque);
	if (store->config.acquire_interfaces) {
		snapshot->interfaces = store->config.acquire_interfaces(store->config.interfaces_opaque);
		if (!snapshot->interfaces)
			return -1;
	}
	for (size_t i = 0; i < store->n_collectors; i++) {
		const struct collector *c = &store->collectors[i];
		if (c->with_snapshot ? c->with_snapshot(c->opaque, snapshot, snapshot->self)
				     : c->collect(c->opaque, snapshot->self))
			return -1;
	}
	return 0;
}

static struct fx_snapshot *take_snapshot(struct fx_store *store);

struct fx_snapshot *fx_store_snapshot(struct fx_store *store)
{
	if (!store->topn)
		return take_snapshot(store);
	pthread_mutex_lock(&store->topn_lock);
	struct fx_snapshot *snapshot = take_snapshot(store);
	pthread_mutex_unlock(&store->topn_lock);
	return snapshot;
}

static struct fx_snapshot *take_snapshot(struct fx_store *store)
{
	struct taking taking = {0};
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	if (!snapshot)
		goto fail;
	snapshot->label_mask = store->config.label_mask;
	snapshot->layout = store->config.layout;
	snapshot->self = fx_family_list_create();
	if (!snapshot->self)
		goto fail;

	if (reserve_copy(store, &taking))
		goto fail;
	copy_total(store, &taking, &snapshot->taken_ms);
	if (!taking.shared) {
		if (!taking.series || !taking.expired || sort_copy(store, &taking) ||
		    share_sorted(store, &taking))
			goto fail;
	}
	fx_snapshot_use_shared(snapshot, taking.shared);
	fx_snapshot_shared_unref(taking.shared);
	taking.shared = NULL;
	if (store->topn && fx_topn_apply(store->topn, snapshot, snapshot->taken_ms))
		goto fail;
	pthread_mutex_lock(&store->total_lock);
	store->exposed = snapshot->n_series;
	pthread_mutex_unlock(&store->total_lock);

	if (add_self_metrics(store, snapshot))
		goto fail;
	return snapshot;
fail:
	fx_error("store: cannot take a snapshot: out of memory");
	free(taking.series);
	free(taking.expired);
	fx_snapshot_shared_unref(taking.shared);
	fx_snapshot_destroy(snapshot);
	return NULL;
}

/* flow_exporter_records_overflow_total{hostname}: the records of the overflow series, which never expire.
 * They are found by a scan of the table (a few ms at a million series, once per snapshot); the hostnames are
 * copied under the lock into `hosts` (interned: they live as long as the process). */
static int collect_overflow(struct fx_store *store, struct fx_family_list *out)
{
	size_t cap = 64, n = 0;
	struct overflow_row {
		const char *hostname;
		uint64_t records;
	} *rows = malloc(cap * sizeof(*rows));
	if (!rows)
		return -1;
	pthread_mutex_lock(&store->total_lock);
	size_t count = fx_series_table_count(store->total);
	if (fx_series_table_count_held(store->total) != count) {
		for (size_t i = 0; i < count; i++) {
			const struct fx_series *series = fx_series_table_row(store->total, i);
			if (!series->key.other)
				continue;
			if (n == cap) {
				struct overflow_row *grown = realloc(rows, 2 * cap * sizeof(*rows));
				if (!grown)
					break;
				rows = grown;
				cap *= 2;
			}
			rows[n++] = (struct overflow_row){series->key.hostname, series->records};
		}
	}
	pthread_mutex_unlock(&store->total_lock);
	if (!n) {
		free(rows);
		return 0; /* no overflow yet: no family (a counter with no sample says nothing) */
	}
	int rc = fx_family_begin(out, "flow_exporter_records_overflow_total",
				 "Flow records added to an overflow series (hostname kept, every other label "
				 "\"other\"): the table held --max-series series.",
				 FX_METRIC_COUNTER);
	for (size_t i = 0; i < n && !rc; i++) {
		struct fx_label label = {"hostname", rows[i].hostname ? rows[i].hostname : ""};
		rc = fx_family_add_u64(out, rows[i].records, rows[i].hostname ? 1 : 0, &label);
	}
	free(rows);
	return rc;
}

int fx_store_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_store *store = opaque;
	if (collect_overflow(store, out))
		return -1;
	pthread_mutex_lock(&store->total_lock);
	uint64_t series = fx_series_table_count_held(store->total);
	uint64_t exposed = store->exposed;
	uint64_t expired = store->expired_total;
	uint64_t unmarked = store->expired_unmarked;
	pthread_mutex_unlock(&store->total_lock);
	if (fx_family_begin(out, "flow_exporter_series", "Flow series held in memory.", FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, series, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_series_exposed",
			    "Flow series in the last snapshot: what /metrics and the pushes expose (--top-n), "
			    "overflow and other series included.",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, exposed, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_series_limit", "The most flow series held (--max-series).",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, store->config.max_series, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_series_expired_total",
			    "Flow series removed after --series-ttl without updates.", FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, expired, 0, NULL) ||
	    fx_family_begin(
		out, "flow_exporter_series_expired_unmarked_total",
		"Expired flow series sent no stale marker: more expired within an hour than --max-series.",
		FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, unmarked, 0, NULL))
		return -1;
	return 0;
}

uint64_t fx_store_refused_records(struct fx_store *store)
{
	pthread_mutex_lock(&store->total_lock);
	uint64_t refused = store->refused_records;
	pthread_mutex_unlock(&store->total_lock);
	return refused;
}

/* ---- Durable state ---- */

int fx_partition_offsets_advance(struct fx_partition_offset **list, size_t *n, size_t *cap, const char *topic,
				 int32_t partition, int64_t next)
{
	for (size_t i = 0; i < *n; i++) {
		struct fx_partition_offset *p = &(*list)[i];
		if (p->partition == partition && !strcmp(p->topic, topic)) {
			if (next > p->next)
				p->next = next;
			return 0;
		}
	}
	struct fx_partition_offset *grown = fx_array_grow(*list, cap, *n, sizeof(**list), 16);
	if (!grown)
		return -1;
	*list = grown;
	struct fx_partition_offset *p = &grown[(*n)++];
	memset(p, 0, sizeof(*p));
	snprintf(p->topic, sizeof(p->topic), "%s", topic);
	p->partition = partition;
	p->next = next;
	return 0;
}

/* Advances the store's offsets by n of them, all or none: room first, so that a failed allocation changes
 * nothing (the counts they cover are then not merged either). Returns 0 or -1. @locks total_lock held. */
static int advance_offsets(struct fx_store *store, const struct fx_partition_offset *offsets, size_t n)
{
	if (!n)
		return 0;
	if (store->n_offsets + n > store->cap_offsets) {
		size_t cap = store->n_offsets + n + 16;
		struct fx_partition_offset *grown = realloc(store->offsets, cap * sizeof(*grown));
		if (!grown)
			return -1;
		store->offsets = grown;
		store->cap_offsets = cap;
	}
	for (size_t i = 0; i < n; i++) /* cannot fail: there is room for every one */
		(void)fx_partition_offsets_advance(&store->offsets, &store->n_offsets, &store->cap_offsets,
						   offsets[i].topic, offsets[i].partition, offsets[i].next);
	return 0;
}

struct fx_store_state *fx_store_state_ref(struct fx_store_state *state)
{
	atomic_fetch_add_explicit(&state->refs, 1, memory_order_relaxed);
	return state;
}

static void state_free(struct fx_store_state *state)
{
	if (!state)
		return;
	free(state->series);
	free(state->offsets);
	free(state);
}

void fx_store_state_unref(struct fx_store_state *state)
{
	if (!state || atomic_fetch_sub_explicit(&state->refs, 1, memory_order_acq_rel) != 1)
		return;
	/* Kept for the next take; a spare already there (rare: two states going at once) is freed. */
	state_free(atomic_exchange(&state->home->spare_state, state));
}

/* Room for n elements of `size` in *array (contents not kept), with an eighth more to grow into. Returns 0
 * or -1. */
static int reserve(void **array, size_t *cap, size_t n, size_t size)
{
	if (*array && n <= *cap)
		return 0;
	size_t want = n + n / 8 + 16;
	free(*array); /* first: two at once would be a third copy of the totals at the peak */
	*array = malloc(want * size);
	*cap = *array ? want : 0;
	return *array ? 0 : -1;
}

struct fx_store_state *fx_store_state_take(struct fx_store *store, struct fx_store_state *last)
{
	pthread_mutex_lock(&store->total_lock);
	bool ahead = false;
	for (size_t i = 0; i < store->config.n_workers; i++)
		ahead |= store->ahead[i];
	if (ahead) { /* counts of a message whose offset is not handed over yet: not a consistent state */
		pthread_mutex_unlock(&store->total_lock);
		errno = EAGAIN;
		return NULL;
	}
	if (last && last->generation == store->generation && last->epoch == store->layout_epoch) {
		pthread_mutex_unlock(&store->total_lock);
		return fx_store_state_ref(last);
	}
	struct fx_store_state *state = atomic_exchange(&store->spare_state, NULL);
	if (!state)
		state = calloc(1, sizeof(*state));
	size_t n = fx_series_table_count(store->total);
	if (!state || reserve((void **)&state->series, &state->cap_series, n, sizeof(*state->series)) ||
	    reserve((void **)&state->offsets, &state->cap_offsets, store->n_offsets,
		    sizeof(*state->offsets))) {
		pthread_mutex_unlock(&store->total_lock);
		state_free(state);
		return NULL;
	}
	state->refs = 1;
	state->home = store;
	state->taken_ms = fx_wall_ms();
	state->generation = store->generation;
	state->epoch = store->layout_epoch;
	state->n_series = n;
	fx_series_table_copy_out(store->total, state->series);
	state->n_offsets = store->n_offsets;
	if (store->n_offsets)
		memcpy(state->offsets, store->offsets, store->n_offsets * sizeof(*state->offsets));
	pthread_mutex_unlock(&store->total_lock);
	return state;
}

void fx_store_publish(struct fx_store *store, struct fx_store_state *state)
{
	fx_store_state_ref(state);
	pthread_mutex_lock(&store->total_lock);
	struct fx_store_state *old = store->published;
	store->published = state;
	pthread_mutex_unlock(&store->total_lock);
	fx_store_state_unref(old);
}

int fx_store_restore(struct fx_store *store, const struct fx_series_table *series,
		     const struct fx_partition_offset *offsets, size_t n_offsets)
{
	int rc = 0;
	pthread_mutex_lock(&store->total_lock);
	store->refused_records += fx_series_table_merge(store->total, series);
	store->generation++;
	for (size_t i = 0; i < n_offsets && !rc; i++)
		rc = fx_partition_offsets_advance(&store->offsets, &store->n_offsets, &store->cap_offsets,
						  offsets[i].topic, offsets[i].partition, offsets[i].next);
	pthread_mutex_unlock(&store->total_lock);
	return rc;
}
