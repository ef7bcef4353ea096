/* Top-N with "other": which series a snapshot exposes when --top-n is set (issue 10).
 *
 * Per group (the --top-n-group labels of a key), at most N series are exposed: those that carried the most
 * bytes over the last --top-n-window, re-ranked once per window with hysteresis (an incumbent is replaced
 * only by a challenger that carried more than 5/4 of its bytes). The rest of the group is one "other"
 * series (group labels kept, every other label "other"), whose counters grow by what the folded series
 * gained while folded. A demoted series stays exposed, frozen at its value, until the next ranking (one
 * window), then leaves (a stale marker once, like an expired series); promoted again it continues from
 * that value. Every exposed counter is monotonic and every increment lands in exactly one exposed series.
 *
 * Thread: one snapshot taker at a time (the store holds its topn lock around fx_topn_apply). */
#ifndef FX_TOPN_H
#define FX_TOPN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/series.h"
#include "fx/snapshot.h"

struct fx_topn_config {
	size_t n;
	int64_t window_ms;
	uint32_t group;			    /* FX_LABEL_* of the group */
	const struct fx_key_layout *layout; /* borrowed: the dimensions folded into "other" */
	size_t max_series;		    /* bound of the state (--max-series) */
	bool series_expire;		    /* --series-ttl is set: held series may leave the input */
};

struct fx_topn;

struct fx_topn *fx_topn_create(const struct fx_topn_config *config);
/* Accepts NULL. */
void fx_topn_destroy(struct fx_topn *topn);

/* Replaces snapshot's arrays (every held and overflow series, sorted) by the exposed ones at now_ms: the
 * exposed series with their shown values and the "other" series, sorted, and as expired the snapshot's own
 * plus the series that left the exposition. Returns 0 or -1 (memory; the snapshot is then unchanged). */
int fx_topn_apply(struct fx_topn *topn, struct fx_snapshot *snapshot, int64_t now_ms);

#endif
