/* libFuzzer target: the fast scanner and the jansson reference must agree on every input.
 *
 * Each input is decoded as one record by both decoders (kind, and for a flow every field and the
 * hostname bytes), then as a message, line by line, against the reference. Any mismatch aborts.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude tests/fuzz/fuzz_flow_decode.c \
 *         src/flow_decode.c src/flow_decode_ref.c src/log.c -ljansson -o fuzz_flow_decode
 * (or the CMake way: cmake -S . -B build-fuzz -DFX_FUZZ=ON -DCMAKE_C_COMPILER=clang)
 *   ./fuzz_flow_decode -max_total_time=60 corpus/   (seeds: the lines of the .jsonl fixtures) */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/flow_decode.h"

/* Small enough that the too-large rule is reachable, large enough for every pmacct record. */
#define FUZZ_MAX_RECORD 2048

static struct fx_decoder *fast_decoder, *reference_decoder;

static bool same_peer(const struct fx_flow *a, const struct fx_flow *b)
{
	if ((a->peer_ip_src == NULL) != (b->peer_ip_src == NULL) || a->peer_ip_src_len != b->peer_ip_src_len)
		return false;
	return !a->peer_ip_src || memcmp(a->peer_ip_src, b->peer_ip_src, a->peer_ip_src_len) == 0;
}

static bool same_flow(const struct fx_flow *a, const struct fx_flow *b)
{
	if (a->hostname_len != b->hostname_len || (a->hostname == NULL) != (b->hostname == NULL))
		return false;
	if (a->hostname &&
	    (memcmp(a->hostname, b->hostname, a->hostname_len) != 0 || a->hostname[a->hostname_len] != '\0' ||
	     b->hostname[b->hostname_len] != '\0' || memchr(a->hostname, '\0', a->hostname_len)))
		return false;
	return a->as_src == b->as_src && a->as_dst == b->as_dst && a->has_iface_in == b->has_iface_in &&
	       a->has_iface_out == b->has_iface_out && (!a->has_iface_in || a->iface_in == b->iface_in) &&
	       (!a->has_iface_out || a->iface_out == b->iface_out) && a->bytes == b->bytes &&
	       a->packets == b->packets && a->sampling_rate == b->sampling_rate && same_peer(a, b);
}

static void compare_with_reference(enum fx_record_kind kind, const struct fx_flow *flow, const char *record,
				   size_t len)
{
	struct fx_flow reference_flow;
	memset(&reference_flow, 0, sizeof(reference_flow));
	enum fx_record_kind reference =
	    fx_decode_record_jansson(reference_decoder, record, len, &reference_flow);
	if (kind != reference || (kind == FX_REC_FLOW && !same_flow(flow, &reference_flow))) {
		fprintf(stderr, "decoders disagree: fast %s, jansson %s on %zu bytes\n",
			fx_record_kind_name(kind), fx_record_kind_name(reference), len);
		abort();
	}
}

/* fx_decode_message hands each line to this with the fast decoder's verdict. */
static void check_line(void *opaque, enum fx_record_kind kind, const struct fx_flow *flow, const char *record,
		       size_t len)
{
	size_t *lines = opaque;
	(*lines)++;
	if ((kind == FX_REC_FLOW) != (flow != NULL))
		abort();
	struct fx_flow copy;
	if (flow)
		copy = *flow;
	else
		memset(&copy, 0, sizeof(copy));
	compare_with_reference(kind, &copy, record, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fast_decoder) {
		fast_decoder = fx_decoder_create(FUZZ_MAX_RECORD);
		reference_decoder = fx_decoder_create(FUZZ_MAX_RECORD);
		if (!fast_decoder || !reference_decoder)
			abort();
	}
	/* A copy of exactly `size` bytes, so that ASan sees any read past the record. */
	char *record = malloc(size ? size : 1);
	if (!record)
		abort();
	memcpy(record, data, size);

	struct fx_flow flow;
	memset(&flow, 0, sizeof(flow));
	enum fx_record_kind kind = fx_decode_record(fast_decoder, record, size, &flow);
	compare_with_reference(kind, &flow, record, size);

	size_t lines = 0;
	if (fx_decode_message(fast_decoder, record, size, check_line, &lines) != lines)
		abort();

	free(record);
	return 0;
}
