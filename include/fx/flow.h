/* One pmacct flow record, as the decoder hands it to the counting step. */
#ifndef FX_FLOW_H
#define FX_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fx_flow {
	/* pmacct `label`, or `peer_ip_src` when the label is empty or absent; NULL when both are.
	 * Borrowed: valid until the decoder decodes the next record. UTF-8, no NUL inside. */
	const char *hostname;
	size_t hostname_len;
	uint32_t as_src;
	uint32_t as_dst;
	uint32_t iface_in;  /* meaningful only when has_iface_in */
	uint32_t iface_out; /* meaningful only when has_iface_out */
	bool has_iface_in;
	bool has_iface_out;
	uint64_t bytes;
	uint64_t packets;
};

#endif
