/* The cumulative counters of the whole process, fed by the consumer threads' delta tables, and the
 * snapshots taken from them.
 *
 * A consumer thread counts into a delta table of its own with no lock, and every flush interval merges it
 * into the cumulative table when the store's lock is free (fx_store_handoff: one lock per flush, never per
 * record, never a wait). A scrape or a push copies the cumulative table under the lock and sorts the copy
 * into a snapshot outside of it.
 *
 * Thread: every function may be called from any thread unless noted. */
#ifndef FX_STORE_H
#define FX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/family_list.h"
#include "fx/series_table.h"
#include "fx/snapshot.h"

struct fx_store_config {
	size_t n_workers;     /* consumer threads that hand deltas over, numbered 0..n_workers-1 */
	size_t max_series;    /* bound of the cumulative table (--max-series) */
	uint32_t label_mask;  /* FX_LABEL_* kept, copied into every snapshot (layout->mask when layout is set) */
	/* The key's dimensions (borrowed, immutable, outlives the store), given to every snapshot. When set,
	 * records of new series past max_series go to their hostname's overflow series; NULL: refused. */
	const struct fx_key_layout *layout;
	int64_t series_ttl_ms; /* a series not updated for this long is removed; 0 = never */
	/* --top-n (0: every series exposed), --top-n-window, --top-n-group (FX_LABEL_* bits; needs layout). */
	size_t top_n;
	int64_t top_n_window_ms;
	uint32_t top_n_group;
	/* Returns the current AS names with a reference (see fx_asn_names_acquire), or NULL. May be NULL. */
	struct fx_asn_map *(*acquire_names)(void *opaque);
	void *names_opaque;
	/* Returns the interface names in force with a reference (see fx_iface_info_acquire_names), or NULL.
	 * May be NULL. */
	struct fx_iface_names *(*acquire_interfaces)(void *opaque);
	void *interfaces_opaque;
};

struct fx_store;

struct fx_store *fx_store_create(const struct fx_store_config *config);
/* Accepts NULL. */
void fx_store_destroy(struct fx_store *store);

/* Adds a collector of self-metrics, called in order on every snapshot. Call before threads start. */
int fx_store_add_collector(struct fx_store *store, fx_collect_fn collect, void *opaque);

/* A collector that also reads the snapshot's series (the interfaces they use, for instance): called, in
 * the same order as the others, once the series are in place. Call before threads start. */
typedef int (*fx_snapshot_collect_fn)(void *opaque, const struct fx_snapshot *snapshot,
				      struct fx_family_list *out);
int fx_store_add_snapshot_collector(struct fx_store *store, fx_snapshot_collect_fn collect, void *opaque);

struct fx_partition_offset;

/* @locality consumer thread `worker` only, between two messages.
 * Merges `delta` into the totals and empties it, with the offsets its counts cover (n of them, copied;
 * durable mode, else none). Without `wait`, only when the totals are free right now: false when they are
 * busy (a snapshot's copy, a checkpoint's, another worker's merge), and then nothing is taken: keep counting
 * into `delta`, keep its offsets, and try again at the next flush. With `wait`, waits for them (the end, a
 * revocation). false with `wait` only when out of memory. */
bool fx_store_handoff(struct fx_store *store, size_t worker, struct fx_series_table *delta,
		      const struct fx_partition_offset *offsets, size_t n, bool wait);

/* @locality consumer thread `worker` only. @locks waits for total_lock.
 * For a full delta (a new key would pass its bound), in the middle of a message: merges it now and empties
 * it (a bounded moment: one merge, once per max_series distinct keys, never per record); its counts are
 * ahead of its offsets until the worker's next fx_store_handoff. The delta tables themselves never fold:
 * only the total knows which keys it holds, so only the total decides what overflows. */
void fx_store_handoff_full(struct fx_store *store, size_t worker, struct fx_series_table *delta);

/* Removes expired series. */
void fx_store_tick(struct fx_store *store);

/* Returns a new snapshot (owned by the caller), or NULL on allocation
 * failure. */
struct fx_snapshot *fx_store_snapshot(struct fx_store *store);

/* Self-metrics of the store: flow_exporter_series (held: overflow series not counted),
 * flow_exporter_series_exposed (in the last snapshot: exposed series, other and overflow ones included),
 * flow_exporter_records_overflow_total{hostname} (records that went to an overflow series),
 * flow_exporter_series_limit,
 * flow_exporter_series_expired_total, flow_exporter_series_expired_unmarked_total (expired series that got
 * no tombstone, hence no stale marker: the tombstones are bounded by max_series). A collect callback
 * (fx_collect_fn), hence the opaque pointer. */
int fx_store_collect(void *store, struct fx_family_list *out);

/* Records of new series the full cumulative table refused (--max-series), since creation. */
uint64_t fx_store_refused_records(struct fx_store *store);

/* ---- Durable state (--state-dir, checkpoint.c) ----
 * With a state directory, what snapshots expose is the last state a checkpoint made durable (and whose
 * offsets were committed), never the live totals: fx_store_publish switches a store to that mode. */

#define FX_TOPIC_NAME_MAX 250 /* Kafka topic names are at most 249 bytes */

/* Where the counts of one partition stop: every record before `next` is in the counters, none after. */
struct fx_partition_offset {
	char topic[FX_TOPIC_NAME_MAX];
	int32_t partition;
	int64_t next;
};

/* Sets the offset of topic[partition] in a list of n (cap allocated, grown with fx_array_grow) to the
 * larger of its value and next, adding it when absent. Returns 0 or -1 (memory). Thread: the list's owner. */
int fx_partition_offsets_advance(struct fx_partition_offset **list, size_t *n, size_t *cap, const char *topic,
				 int32_t partition, int64_t next);

/* A consistent copy of the counters and of the offsets they cover (reference counted, immutable). */
struct fx_store_state {
	struct fx_series *series; /* in the positions of the store's table at `epoch` */
	size_t n_series;
	struct fx_partition_offset *offsets;
	size_t n_offsets;
	uint64_t generation; /* of the totals when copied */
	uint64_t epoch;	     /* positions change when the epoch does (expiry) */
	int64_t taken_ms;
	_Atomic int refs;
	/* Private to the store: the arrays' room, and the store their last reference gives them back to. */
	size_t cap_series, cap_offsets;
	struct fx_store *home;
};

/* Copies the totals and their offsets (one memcpy under the store's lock),
 * or, when the totals are still those of `last` (may be NULL), returns another reference to `last`: nothing
 * changed, nothing copied. NULL on allocation failure, or with errno EAGAIN while a worker has handed over a
 * full delta in the middle of a message (its counts are then ahead of its offsets until its next flush).
 * The reference returned is the caller's. */
struct fx_store_state *fx_store_state_take(struct fx_store *store, struct fx_store_state *last);
struct fx_store_state *fx_store_state_ref(struct fx_store_state *state);
/* Accepts NULL. The last reference gives the state's arrays back to its store, for the next take to copy
 * into (a full table's copy is 128 MB at 1,000,000 series: allocating it every second was mostly page
 * faults); so every state must go before its store. */
void fx_store_state_unref(struct fx_store_state *state);

/* From now on every snapshot shows `state` (a reference is taken; the previous one is dropped) instead of
 * the live totals: exposed never runs ahead of durable. Thread: the checkpoint thread, or main before the
 * threads start. */
void fx_store_publish(struct fx_store *store, struct fx_store_state *state);

/* Before any hand-over: puts the restored series (borrowed; keys interned in the store's pools) and the
 * offsets they cover into the empty store. Series past --max-series go to their overflow series, as new
 * ones would. Returns 0 or -1 (memory). */
int fx_store_restore(struct fx_store *store, const struct fx_series_table *series,
		     const struct fx_partition_offset *offsets, size_t n_offsets);

#endif
