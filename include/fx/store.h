/* The cumulative counters of the whole process, fed by the consumer threads' delta tables, and the
 * snapshots taken from them.
 *
 * A consumer thread counts into a delta table of its own with no lock, and every flush interval hands it
 * over (fx_store_handoff: one mutex per hand-over, never per record). Whoever next needs the totals (a
 * scrape, a push, the main loop's tick) merges the waiting deltas into the cumulative table under the
 * store's lock, then copies it (under the lock) and sorts the copy into a snapshot outside of it.
 *
 * Thread: every function may be called from any thread unless noted. */
#ifndef FX_STORE_H
#define FX_STORE_H

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
};

struct fx_store;

struct fx_store *fx_store_create(const struct fx_store_config *config);
/* Accepts NULL. Deltas still waiting are dropped: fx_store_tick first to keep them. */
void fx_store_destroy(struct fx_store *store);

/* Adds a collector of self-metrics, called in order on every snapshot. Call before threads start. */
int fx_store_add_collector(struct fx_store *store, fx_collect_fn collect, void *opaque);

/* @locality consumer thread `worker` only.
 * Hands `delta` over when the worker's slot is free and returns an empty table to count into next;
 * when the previous hand-over has not been merged yet, returns `delta` itself, to keep counting into. */
struct fx_series_table *fx_store_handoff(struct fx_store *store, size_t worker, struct fx_series_table *delta);

/* @locality consumer thread `worker` only. @locks takes total_lock when the slot is busy.
 * For a full delta (a new key would pass its bound): hands `delta` over like fx_store_handoff, first
 * merging a hand-over still waiting, so that the worker gets an empty table now (a bounded moment: one
 * merge, once per max_series distinct keys, never per record). The delta tables themselves never fold:
 * only the total knows which keys it holds, so only the total decides what overflows. Returns `delta`
 * itself only when no table can be had (out of memory). */
struct fx_series_table *fx_store_handoff_full(struct fx_store *store, size_t worker,
					      struct fx_series_table *delta);

/* Merges the waiting deltas and removes expired series. */
void fx_store_tick(struct fx_store *store);

/* Merges the waiting deltas and returns a new snapshot (owned by the caller), or NULL on allocation
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

#endif
