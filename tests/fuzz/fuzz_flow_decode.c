/* libFuzzer target: the fast scanner and the jansson reference must agree on every input.
 *
 * Each input is decoded as one record by both decoders (kind, and for a flow every field and the
 * hostname bytes), then as a message, line by line, against the reference. Any mismatch aborts.
 * The decoders also read every key of the label catalog (series.c's fx_dimension_catalog: the extra
 * dimensions' pmacct keys and the prefixes' mask keys, as ingest.c configures them), in two sets because
 * a decoder reads at most FX_FLOW_EXTRA_MAX: each input goes through both, and every extra value (absent,
 * number, text bytes) must agree too.
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
#include "fx/series.h"

/* Small enough that the too-large rule is reachable, large enough for every pmacct record. */
#define FUZZ_MAX_RECORD 2048
#define KEY_SETS 2

static struct fx_decoder *fast_decoders[KEY_SETS], *reference_decoders[KEY_SETS];
static struct fx_decoder *fast_decoder, *reference_decoder; /* the pair of the set being checked */
static struct fx_decoder_key keys[KEY_SETS][FX_FLOW_EXTRA_MAX];
static size_t n_keys[KEY_SETS];
static size_t current_set;

/* Every pmacct key of the catalog, typed as ingest.c types them, spread over the key sets. peer_ip_src
 * (the exporter label) is one of the keys the rules always read, so it is no extra key. */
static void catalog_keys(void)
{
	static const enum fx_key_type types[] = {[FX_DIM_NUMBER] = FX_KEY_NUMBER,
						 [FX_DIM_TEXT] = FX_KEY_STRING,
						 [FX_DIM_SCALAR] = FX_KEY_SCALAR,
						 [FX_DIM_NET] = FX_KEY_STRING};
	size_t set = 0;
	for (size_t i = 0; i < fx_dimension_catalog_size; i++) {
		const struct fx_dimension *dim = &fx_dimension_catalog[i];
		if (!strcmp(dim->key, "peer_ip_src"))
			continue;
		size_t need = dim->kind == FX_DIM_NET ? 2 : 1;
		if (n_keys[set] + need > FX_FLOW_EXTRA_MAX / KEY_SETS + 2)
			set++;
		if (set == KEY_SETS)
			abort();
		keys[set][n_keys[set]++] = (struct fx_decoder_key){dim->key, types[dim->kind], dim->max};
		if (dim->kind == FX_DIM_NET)
			keys[set][n_keys[set]++] =
			    (struct fx_decoder_key){dim->mask_key, FX_KEY_NUMBER, dim->max};
	}
}

static bool same_extra(const struct fx_flow_value *a, const struct fx_flow_value *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == FX_VALUE_NUMBER)
		return a->number == b->number;
	if (a->type == FX_VALUE_TEXT)
		return a->len == b->len && (!a->len || memcmp(a->text, b->text, a->len) == 0);
	return true;
}

static bool same_extras(const struct fx_flow *a, const struct fx_flow *b)
{
	/* Only the slots of the keys set: the others are not the decoder's to fill. */
	for (size_t i = 0; i < n_keys[current_set]; i++)
		if (!same_extra(&a->extra[i], &b->extra[i]))
			return false;
	return true;
}

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
	       a->packets == b->packets && a->sampling_rate == b->sampling_rate && same_peer(a, b) &&
	       same_extras(a, b);
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
	if (!fast_decoders[0]) {
		catalog_keys();
		for (size_t set = 0; set < KEY_SETS; set++) {
			fast_decoders[set] = fx_decoder_create(FUZZ_MAX_RECORD);
			reference_decoders[set] = fx_decoder_create(FUZZ_MAX_RECORD);
			if (!fast_decoders[set] || !reference_decoders[set] ||
			    fx_decoder_set_keys(fast_decoders[set], keys[set], n_keys[set]) ||
			    fx_decoder_set_keys(reference_decoders[set], keys[set], n_keys[set]))
				abort();
		}
	}
	/* A copy of exactly `size` bytes, so that ASan sees any read past the record. */
	char *record = malloc(size ? size : 1);
	if (!record)
		abort();
	memcpy(record, data, size);

	for (size_t set = 0; set < KEY_SETS; set++) {
		current_set = set;
		fast_decoder = fast_decoders[set];
		reference_decoder = reference_decoders[set];
		struct fx_flow flow;
		memset(&flow, 0, sizeof(flow));
		enum fx_record_kind kind = fx_decode_record(fast_decoder, record, size, &flow);
		compare_with_reference(kind, &flow, record, size);

		size_t lines = 0;
		if (fx_decode_message(fast_decoder, record, size, check_line, &lines) != lines)
			abort();
	}

	free(record);
	return 0;
}
