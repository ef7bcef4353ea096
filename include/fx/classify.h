/* Step (3) of the data path: the direction of a flow from the operator's local ASNs.
 * As in the Go program: source AS local -> transmit, else destination AS local -> receive, else none. */
#ifndef FX_CLASSIFY_H
#define FX_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fx_direction { FX_DIR_RECEIVE = 0, FX_DIR_TRANSMIT = 1, FX_DIR_NONE = 2 };

#define FX_MAX_LOCAL_ASNS 64

/* The local ASNs, sorted and unique. Immutable after config parsing; shared read-only by all threads. */
struct fx_local_asns {
	uint32_t asn[FX_MAX_LOCAL_ASNS];
	size_t n;
};

enum fx_direction fx_classify(const struct fx_local_asns *local, uint32_t as_src, uint32_t as_dst);

#endif
