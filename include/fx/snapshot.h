/* Step (5) of the data path: an immutable, sorted view of every series and of the exporter's own metrics,
 * handed to the encoders. Nothing in it changes after it is taken; the taker owns it.
 *
 * The series arrays of the snapshots a store hands out may be shared between snapshots taken while nothing
 * changed (see store.c): they are then owned by a reference-counted fx_snapshot_shared, and never written
 * once shared. A snapshot built by hand (tests) leaves `shared` NULL and owns its arrays directly. */
#ifndef FX_SNAPSHOT_H
#define FX_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/asn_names.h"
#include "fx/family_list.h"
#include "fx/series.h"

struct fx_iface_names;

struct fx_snapshot {
	int64_t taken_ms;    /* wall clock */
	uint32_t label_mask; /* the labels kept (--labels): FX_LABEL_* bits */
	/* The extra dimensions (borrowed; lives as long as the process). NULL: only the built-in labels. */
	const struct fx_key_layout *layout;
	size_t n_series;
	struct fx_series *series; /* sorted by fx_series_key_compare; owned */
	struct fx_asn_map *names; /* owned reference for the AS-name labels; NULL when no names are loaded */
	/* Owned reference for the interface-name labels and flow_interface_info (iface_names.h); NULL when
	 * the store has no interface names. */
	struct fx_iface_names *interfaces;
	struct fx_family_list *self; /* flow_exporter_* families; owned; never NULL */
	/* Series removed by --series-ttl not long ago, with updated_ms set to the time they were removed:
	 * a pusher that has not pushed since then sends each one a stale marker, once. Owned; may be empty.
	 */
	size_t n_expired;
	struct fx_series *expired;
	/* When not NULL, owns `series` and `expired` (one reference); else the snapshot owns them. */
	struct fx_snapshot_shared *shared;
};

/* Takes ownership of both arrays (malloc'ed; n_series and n_expired elements). NULL on allocation failure
 * (the arrays are then freed). The reference returned is the caller's. Thread: any. */
struct fx_snapshot_shared *fx_snapshot_shared_create(struct fx_series *series, size_t n_series,
						     struct fx_series *expired, size_t n_expired);
struct fx_snapshot_shared *fx_snapshot_shared_ref(struct fx_snapshot_shared *shared);
/* Drops a reference; the last one frees the arrays. Accepts NULL. */
void fx_snapshot_shared_unref(struct fx_snapshot_shared *shared);
/* Points snapshot's arrays at the shared ones, taking a new reference. */
void fx_snapshot_use_shared(struct fx_snapshot *snapshot, struct fx_snapshot_shared *shared);

/* The flow series a push writes, in order: every live series, then a stale marker (*stale = true) for
 * every series of `expired` removed after stale_since_ms that is not live again. Start with *cursor = 0;
 * returns the next one, or NULL at the end. */
const struct fx_series *fx_snapshot_next_pushed(const struct fx_snapshot *snapshot, int64_t stale_since_ms,
						size_t *cursor, bool *stale);

/* Frees the snapshot and what it owns. Accepts NULL. */
void fx_snapshot_destroy(struct fx_snapshot *snapshot);

#endif
