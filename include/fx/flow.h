/* One pmacct flow record, as the decoder hands it to the counting step. */
#ifndef FX_FLOW_H
#define FX_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest number of extra keys a decoder reads (fx_decoder_set_keys). */
#define FX_FLOW_EXTRA_MAX 16

/* What an extra key's rule (7, flow_rules.h) made of its value. */
enum fx_value_type {
	FX_VALUE_ABSENT, /* the key is not in the record, or is null */
	FX_VALUE_NUMBER, /* a non-negative integer: `number` */
	FX_VALUE_TEXT,	 /* a string (unescaped, no U+0000) or true/false: `text`, `len` */
};

struct fx_flow_value {
	enum fx_value_type type;
	uint64_t number;
	/* Borrowed like hostname: valid until the decoder decodes the next record; not NUL-terminated. */
	const char *text;
	size_t len;
};

struct fx_flow {
	/* pmacct `label`, or `peer_ip_src` when the label is empty or absent; NULL when both are.
	 * Borrowed: valid until the decoder decodes the next record. UTF-8, no NUL inside. */
	const char *hostname;
	size_t hostname_len;
	/* pmacct `peer_ip_src` (the exporter's address), NULL when empty or absent; not NUL-terminated.
	 * Borrowed: valid while the record is and until the decoder decodes the next record. */
	const char *peer_ip_src;
	size_t peer_ip_src_len;
	uint32_t as_src;
	uint32_t as_dst;
	uint32_t iface_in;  /* meaningful only when has_iface_in */
	uint32_t iface_out; /* meaningful only when has_iface_out */
	bool has_iface_in;
	bool has_iface_out;
	uint64_t bytes;
	uint64_t packets;
	/* pmacct `sampling_rate` (aggregate primitive sampling_rate), 0 when absent. pmacct writes 1 once it
	 * renormalized (*_renormalize: true) and nfacctd 0 for an export with no sampling information. */
	uint32_t sampling_rate;
	/* The extra keys set with fx_decoder_set_keys, in the order given there. */
	struct fx_flow_value extra[FX_FLOW_EXTRA_MAX];
};

#endif
