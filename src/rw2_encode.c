/* Remote-write 2.0 encoder: snapshot -> io.prometheus.write.v2.Request bytes -> snappy block, one body per
 * max_series_per_request TimeSeries (see rw2_encode.h). Written by hand like the 1.0 encoder (rw_encode.c)
 * and for the same reason: protobuf-c's generic packing of one message per series and sample would be most
 * of the time of a push.
 *
 * DESIGN
 * - The wire format (proto/io/prometheus/write/v2/types.proto; proto3), fields in number order but in
 *   Sample, defaults left out, as protobuf_c_message_pack writes them (test_rw2_encode compares the bytes):
 *     Request    { repeated string symbols = 4; repeated TimeSeries timeseries = 5; }
 *     TimeSeries { repeated uint32 labels_refs = 1 (packed); repeated Sample samples = 2;
 *                  Metadata metadata = 5; }
 *     Sample     { int64 start_timestamp = 3; double value = 1; int64 timestamp = 2; }
 *     Metadata   { MetricType type = 1; uint32 help_ref = 3; uint32 unit_ref = 4; }
 *   A request is its symbols (0x22 len bytes, symbols[0] = "") followed by its TimeSeries (0x2a len ...):
 *   both are built in their own buffer and joined when the request is full.
 * - Sample fields: start_timestamp is written first. After the timestamp (number order) it would cut in two
 *   the run of bytes that is the same in every TimeSeries of a family (the value's exponent, the request
 *   timestamp, the metadata, the next TimeSeries' first labels), and the second TimeSeries of a label set
 *   (packets after bytes) would need two snappy copies more to get it; in front of the value it is copied
 *   with the labels, from the first TimeSeries of the label set, in one (17.8 instead of 19.6 bytes a
 *   sample at 100,000 series whose start times spread over an hour: tests/bench/README.md). Protobuf
 *   parsers take the fields of a message in any order (the encoding guide: "parsers must be able to parse
 *   fields in any order"): protobuf-c, Google's runtime (tests/e2e/lib/rw2_receiver.py) and the generated
 *   Unmarshal of Prometheus' prompb (a loop over the fields, a switch on their number) do.
 * - Symbols: a per-request open-addressing table of (hash, reference) over the strings already written
 *   into the symbols buffer, so a string is written once and referenced by its index. The strings every
 *   request uses (label names of the catalog, __name__, family names, help texts, units, external labels)
 *   are "constants": their reference is cached per request in `const_ref` (0 = not yet in this request),
 *   so they cost no hashing. The flow label values of a series are interned once per request for all of
 *   its (up to four) TimeSeries (`tail`, with the request generation that made it).
 * - Label order is the 1.0 encoder's: external labels sorting before __name__, __name__, then the flow
 *   labels (series_labels.c, name order) with the external labels between them; an external label named
 *   like a flow label the series carries loses to it.
 * - Series order and request splits are the 1.0 encoder's, so request i of both encodings of a snapshot
 *   carry the same TimeSeries (the sender's fallback re-sends request i as 1.0).
 * - Bounds: `series` holds at most max_series_per_request of the longest TimeSeries; `symbols` at most the
 *   strings of that many series at their longest (FX_SERIES_LABEL_VALUE_MAX a value); past them the encode
 *   fails with FX_RW_E_TOO_BIG.
 *
 * Thread: whichever thread owns the encoder (the sender's). */
#include "fx/rw2_encode.h"

#include <assert.h>
#include <math.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fx/buf.h"
#include "fx/hash.h"
#include "fx/pb_wire.h"
#include "fx/series_labels.h"

#define N_FLOW_LABELS FX_SERIES_LABELS_MAX
#define REQUEST_SERIES_MAX ((size_t)1 << 20)
/* References in one TimeSeries at most: __name__ and its value, every flow label or a self-metric sample's
 * labels, every external label (counted apart). */
#define OWN_LABELS_MAX                                                                                       \
	(1 + (FX_SERIES_LABELS_MAX > FX_SAMPLE_MAX_LABELS ? FX_SERIES_LABELS_MAX : FX_SAMPLE_MAX_LABELS))
#define FIRST_SLOTS 4096

enum metric_type { TYPE_COUNTER = 1, TYPE_GAUGE = 2 };

/* Constants: fixed positions, then two per external label (name, value). */
enum {
	CONST_NAME,				      /* "__name__" */
	CONST_UNIT_BYTES,			      /* "bytes" */
	CONST_FAMILY,				      /* FX_FLOW_FAMILIES family names */
	CONST_HELP = CONST_FAMILY + FX_FLOW_FAMILIES, /* FX_FLOW_FAMILIES help texts */
	CONST_LABEL = CONST_HELP + FX_FLOW_FAMILIES,  /* the catalog's label names */
	CONST_EXTERNAL = CONST_LABEL + N_FLOW_LABELS,
};

struct str {
	const char *s;
	size_t len;
};

struct slot {
	uint32_t hash;
	uint32_t ref; /* 0: empty (reference 0 is "", never looked up) */
};

struct fx_rw2_encoder {
	size_t max_series;
	/* External labels, sorted by name; where each goes in a flow series (see DESIGN). */
	struct fx_label *external; /* owned strings */
	size_t n_external;
	size_t n_head;	 /* external[0 .. n_head) sort before __name__ */
	unsigned *ext_k; /* the others: before flow label ext_k[e] (n_catalog: after all), or ... */
	bool *ext_clash; /* ... named like it (written only when the series does not carry it) */
	/* The flow-label catalog ext_k, ext_clash and the CONST_LABEL constants were made for: the built-in
	 * one at first, then that of the last snapshot encoded (series_labels.h). */
	struct fx_label_name catalog[N_FLOW_LABELS];
	size_t n_catalog;

	struct str *consts; /* CONST_EXTERNAL + 2 * n_external */
	size_t n_consts;
	uint32_t *const_ref; /* per request */

	/* Per request. */
	struct fx_buf symbols; /* encoded symbols fields */
	size_t *sym_off;       /* where symbol r's bytes start in `symbols` */
	uint32_t *sym_len;
	size_t n_symbols, cap_symbols;
	struct slot *slots;
	size_t n_slots;	      /* a power of two */
	struct fx_buf series; /* encoded TimeSeries fields */
	size_t n_series;
	uint64_t generation; /* requests started, so that a tail knows the request its references belong to */

	/* Per encode. */
	struct fx_series_labels *series_labels;
	struct fx_buf packed; /* symbols + series, the request before compression */
	int64_t timestamp_ms;
	uint32_t *head_refs; /* the external labels before __name__, and __name__: 2 * (n_head + 1) */
	uint32_t *tail_refs; /* the flow labels and the externals between them: 2 * (labels + n_external) */
	size_t tail_len;
	uint64_t tail_generation; /* the request whose symbols tail_refs points to */
};

/* ---- Symbols ---- */

static int grow_slots(struct fx_rw2_encoder *encoder)
{
	size_t n = encoder->n_slots * 2;
	struct slot *slots = calloc(n, sizeof(*slots));
	if (!slots)
		return FX_RW_E_NOMEM;
	for (size_t i = 0; i < encoder->n_slots; i++) {
		struct slot old = encoder->slots[i];
		if (!old.ref)
			continue;
		size_t j = old.hash & (n - 1);
		while (slots[j].ref)
			j = (j + 1) & (n - 1);
		slots[j] = old;
	}
	free(encoder->slots);
	encoder->slots = slots;
	encoder->n_slots = n;
	return 0;
}

/* Appends a symbol (a new reference) to the symbols buffer. */
static int add_symbol(struct fx_rw2_encoder *encoder, const char *s, size_t len)
{
	if (encoder->n_symbols == encoder->cap_symbols) {
		size_t cap = encoder->cap_symbols;
		size_t *off = fx_array_grow(encoder->sym_off, &cap, encoder->n_symbols, sizeof(*off), 1024);
		if (!off)
			return FX_RW_E_NOMEM;
		encoder->sym_off = off;
		uint32_t *lens = realloc(encoder->sym_len, cap * sizeof(*lens));
		if (!lens)
			return FX_RW_E_NOMEM;
		encoder->sym_len = lens;
		encoder->cap_symbols = cap;
	}
	int rc = fx_buf_reserve(&encoder->symbols, 1 + FX_PB_VARINT_MAX + len);
	if (rc)
		return rc == FX_BUF_E_TOO_BIG ? FX_RW_E_TOO_BIG : FX_RW_E_NOMEM;
	char *p = encoder->symbols.data + encoder->symbols.len;
	*p++ = FX_PB_TAG(4, FX_PB_LEN);
	p = fx_pb_write_varint(p, len);
	encoder->sym_off[encoder->n_symbols] = (size_t)(p - encoder->symbols.data);
	encoder->sym_len[encoder->n_symbols] = (uint32_t)len;
	if (len)
		memcpy(p, s, len);
	encoder->symbols.len = (size_t)(p + len - encoder->symbols.data);
	encoder->n_symbols++;
	return 0;
}

/* The reference of s in this request's symbols, adding it when new. Returns 0 or an FX_RW_E_* code. */
static int intern(struct fx_rw2_encoder *encoder, const char *s, size_t len, uint32_t *ref)
{
	assert(len > 0);
	if (2 * encoder->n_symbols >= encoder->n_slots) {
		int rc = grow_slots(encoder);
		if (rc)
			return rc;
	}
	uint32_t hash = (uint32_t)fx_hash_bytes(s, len);
	size_t mask = encoder->n_slots - 1;
	size_t i = hash & mask;
	for (;; i = (i + 1) & mask) {
		struct slot *slot = &encoder->slots[i];
		if (!slot->ref)
			break;
		if (slot->hash == hash && encoder->sym_len[slot->ref] == len &&
		    memcmp(encoder->symbols.data + encoder->sym_off[slot->ref], s, len) == 0) {
			*ref = slot->ref;
			return 0;
		}
	}
	uint32_t next = (uint32_t)encoder->n_symbols;
	int rc = add_symbol(encoder, s, len);
	if (rc)
		return rc;
	encoder->slots[i] = (struct slot){hash, next};
	*ref = next;
	return 0;
}

static int intern_const(struct fx_rw2_encoder *encoder, size_t c, uint32_t *ref)
{
	if (encoder->const_ref[c]) {
		*ref = encoder->const_ref[c];
		return 0;
	}
	int rc = intern(encoder, encoder->consts[c].s, encoder->consts[c].len, ref);
	if (!rc)
		encoder->const_ref[c] = *ref;
	return rc;
}

/* Starts a request: no symbols but "", no series. */
static int begin_request(struct fx_rw2_encoder *encoder)
{
	fx_buf_reset(&encoder->symbols);
	fx_buf_reset(&encoder->series);
	encoder->n_symbols = 0;
	encoder->n_series = 0;
	encoder->generation++;
	memset(encoder->slots, 0, encoder->n_slots * sizeof(*encoder->slots));
	memset(encoder->const_ref, 0, encoder->n_consts * sizeof(*encoder->const_ref));
	return add_symbol(encoder, "", 0);
}

/* ---- Requests ---- */

/* Joins symbols and series, compresses them into one request of `out` and starts the next. */
static int flush(struct fx_rw2_encoder *encoder, struct fx_rw_requests *out)
{
	if (encoder->n_series == 0)
		return 0;
	struct fx_rw_request *items = fx_array_grow(out->items, &out->cap, out->n, sizeof(*items), 8);
	if (!items)
		return FX_RW_E_NOMEM;
	out->items = items;
	fx_buf_reset(&encoder->packed);
	if (fx_buf_append(&encoder->packed, encoder->symbols.data, encoder->symbols.len) ||
	    fx_buf_append(&encoder->packed, encoder->series.data, encoder->series.len))
		return FX_RW_E_NOMEM;
	size_t body_len = snappy_max_compressed_length(encoder->packed.len);
	char *body = malloc(body_len ? body_len : 1);
	if (!body)
		return FX_RW_E_NOMEM;
	if (snappy_compress(encoder->packed.data, encoder->packed.len, body, &body_len) != SNAPPY_OK) {
		free(body);
		return FX_RW_E_ENCODE;
	}
	char *shrunk = realloc(body, body_len ? body_len : 1);
	if (shrunk)
		body = shrunk;
	out->items[out->n++] = (struct fx_rw_request){
	    .body = body,
	    .len = body_len,
	    .n_series = encoder->n_series,
	    .n_samples = encoder->n_series,
	    .timestamp_ms = encoder->timestamp_ms,
	};
	return begin_request(encoder);
}

static uint64_t double_bits(double value)
{
	uint64_t bits;
	if (isnan(value))
		return FX_RW_NAN_BITS;
	memcpy(&bits, &value, sizeof(bits));
	return bits;
}

struct series_fields {
	const uint32_t *refs[2]; /* two runs of label references, in order */
	size_t n_refs[2];
	uint64_t value_bits;
	int64_t start_ms;
	enum metric_type type;
	uint32_t help_ref, unit_ref;
};

static size_t refs_len(const struct series_fields *fields)
{
	size_t n = 0;
	for (int r = 0; r < 2; r++)
		for (size_t i = 0; i < fields->n_refs[r]; i++)
			n += fx_pb_varint_len(fields->refs[r][i]);
	return n;
}

static size_t sample_len(uint64_t bits, int64_t timestamp, int64_t start)
{
	double value;
	memcpy(&value, &bits, sizeof(value));
	return (value != 0.0 ? 9 : 0) + (timestamp ? 1 + fx_pb_varint_len((uint64_t)timestamp) : 0) +
	       (start ? 1 + fx_pb_varint_len((uint64_t)start) : 0);
}

static size_t metadata_len(const struct series_fields *fields)
{
	return 2 + (fields->help_ref ? 1 + fx_pb_varint_len(fields->help_ref) : 0) +
	       (fields->unit_ref ? 1 + fx_pb_varint_len(fields->unit_ref) : 0);
}

/* Writes one TimeSeries field into `series`. Its references belong to the current request. */
static int write_series(struct fx_rw2_encoder *encoder, const struct series_fields *fields)
{
	size_t labels = refs_len(fields);
	size_t sample = sample_len(fields->value_bits, encoder->timestamp_ms, fields->start_ms);
	size_t metadata = metadata_len(fields);
	size_t inner = 1 + fx_pb_varint_len(labels) + labels + 1 + fx_pb_varint_len(sample) + sample + 1 +
		       fx_pb_varint_len(metadata) + metadata;
	int rc = fx_buf_reserve(&encoder->series, 1 + FX_PB_VARINT_MAX + inner);
	if (rc)
		return rc == FX_BUF_E_TOO_BIG ? FX_RW_E_TOO_BIG : FX_RW_E_NOMEM;
	char *p = encoder->series.data + encoder->series.len;
	*p++ = FX_PB_TAG(5, FX_PB_LEN);
	p = fx_pb_write_varint(p, inner);
	*p++ = FX_PB_TAG(1, FX_PB_LEN);
	p = fx_pb_write_varint(p, labels);
	for (int r = 0; r < 2; r++)
		for (size_t i = 0; i < fields->n_refs[r]; i++)
			p = fx_pb_write_varint(p, fields->refs[r][i]);
	*p++ = FX_PB_TAG(2, FX_PB_LEN);
	p = fx_pb_write_varint(p, sample);
	/* start_timestamp before value (see "Sample fields" in DESIGN). */
	if (fields->start_ms) {
		*p++ = FX_PB_TAG(3, FX_PB_VARINT);
		p = fx_pb_write_varint(p, (uint64_t)fields->start_ms);
	}
	double value;
	memcpy(&value, &fields->value_bits, sizeof(value));
	if (value != 0.0) {
		*p++ = FX_PB_TAG(1, FX_PB_FIXED64);
		p = fx_pb_write_fixed64(p, fields->value_bits);
	}
	if (encoder->timestamp_ms) {
		*p++ = FX_PB_TAG(2, FX_PB_VARINT);
		p = fx_pb_write_varint(p, (uint64_t)encoder->timestamp_ms);
	}
	*p++ = FX_PB_TAG(5, FX_PB_LEN);
	p = fx_pb_write_varint(p, metadata);
	*p++ = FX_PB_TAG(1, FX_PB_VARINT);
	*p++ = (char)fields->type;
	if (fields->help_ref) {
		*p++ = FX_PB_TAG(3, FX_PB_VARINT);
		p = fx_pb_write_varint(p, fields->help_ref);
	}
	if (fields->unit_ref) {
		*p++ = FX_PB_TAG(4, FX_PB_VARINT);
		p = fx_pb_write_varint(p, fields->unit_ref);
	}
	encoder->series.len = (size_t)(p - encoder->series.data);
	encoder->n_series++;
	return 0;
}

/* ---- Flow series ---- */

static int push_const_pair(struct fx_rw2_encoder *encoder, size_t name_const, size_t value_const,
			   uint32_t *refs, size_t *n)
{
	int rc = intern_const(encoder, name_const, &refs[*n]);
	if (!rc)
		rc = intern_const(encoder, value_const, &refs[*n + 1]);
	*n += 2;
	return rc;
}

static int push_external(struct fx_rw2_encoder *encoder, size_t e, uint32_t *refs, size_t *n)
{
	return push_const_pair(encoder, CONST_EXTERNAL + 2 * e, CONST_EXTERNAL + 2 * e + 1, refs, n);
}

/* Interns the flow labels of a series with the external labels between them into tail_refs. */
static int build_tail(struct fx_rw2_encoder *encoder, const struct fx_label_set *set)
{
	size_t n = 0, i = 0, e = encoder->n_head;
	int rc = 0;
	for (unsigned k = 0; k < encoder->n_catalog && !rc; k++) {
		while (!rc && e < encoder->n_external && encoder->ext_k[e] == k && !encoder->ext_clash[e])
			rc = push_external(encoder, e++, encoder->tail_refs, &n);
		if (rc)
			break;
		bool clash = e < encoder->n_external && encoder->ext_k[e] == k && encoder->ext_clash[e];
		if (i < set->n && set->pairs[i].label == k) {
			const struct fx_label_pair *pair = &set->pairs[i++];
			rc = intern_const(encoder, CONST_LABEL + k, &encoder->tail_refs[n]);
			if (!rc)
				rc =
				    intern(encoder, pair->value, pair->value_len, &encoder->tail_refs[n + 1]);
			n += 2;
		} else if (clash) {
			rc = push_external(encoder, e, encoder->tail_refs, &n);
		}
		e += clash;
	}
	while (!rc && e < encoder->n_external)
		rc = push_external(encoder, e++, encoder->tail_refs, &n);
	encoder->tail_len = n;
	encoder->tail_generation = encoder->generation;
	return rc;
}

/* Adds the TimeSeries of one flow series (live, or a stale marker when `stale`), in the 1.0 encoder's
 * family order. */
static int add_flow_series(struct fx_rw2_encoder *encoder, const struct fx_series *flow, bool stale,
			   struct fx_rw_requests *out)
{
	static const unsigned order[FX_FLOW_FAMILIES] = {0, 2, 1, 3}; /* receive bytes, packets; transmit */
	if (!(flow->seen & ((1u << FX_DIR_RECEIVE) | (1u << FX_DIR_TRANSMIT))))
		return 0;
	struct fx_label_set set;
	fx_series_labels_get(encoder->series_labels, &flow->key, &set);
	encoder->tail_generation = 0;
	int64_t start = flow->created_ms > 0 && flow->created_ms != INT64_MAX ? flow->created_ms : 0;
	for (size_t o = 0; o < FX_FLOW_FAMILIES; o++) {
		const struct fx_flow_family *family = &fx_flow_families[order[o]];
		if (!(flow->seen & (1u << family->direction)))
			continue;
		int rc;
		if (encoder->n_series == encoder->max_series && (rc = flush(encoder, out)))
			return rc;
		if (encoder->tail_generation != encoder->generation && (rc = build_tail(encoder, &set)))
			return rc;
		uint32_t *refs = encoder->head_refs;
		size_t n = 0;
		for (size_t e = 0; e < encoder->n_head && !rc; e++)
			rc = push_external(encoder, e, refs, &n);
		if (!rc)
			rc = push_const_pair(encoder, CONST_NAME, CONST_FAMILY + order[o], refs, &n);
		struct series_fields fields = {
		    .refs = {refs, encoder->tail_refs},
		    .n_refs = {n, encoder->tail_len},
		    .value_bits = stale ? FX_RW_STALE_NAN_BITS
					: double_bits((double)fx_flow_family_value(family, flow)),
		    .start_ms = start,
		    .type = TYPE_COUNTER,
		};
		if (!rc)
			rc = intern_const(encoder, CONST_HELP + order[o], &fields.help_ref);
		if (!rc && family->unit)
			rc = intern_const(encoder, CONST_UNIT_BYTES, &fields.unit_ref);
		if (rc || (rc = write_series(encoder, &fields)))
			return rc;
	}
	return 0;
}

/* ---- Self-metric samples ---- */

/* One self-metric sample: __name__ and its non-empty labels (sorted, the first of a duplicate name kept)
 * merged with the external labels, the sample's own label winning a tie; as the 1.0 encoder. */
static int add_self_sample(struct fx_rw2_encoder *encoder, const struct fx_family *family,
			   const struct fx_sample *sample, struct fx_rw_requests *out)
{
	const struct fx_label *own[FX_SAMPLE_OWN_LABELS];
	struct fx_label name_label;
	size_t n_own = fx_sample_own_labels(family, sample, &name_label, own);
	int rc;
	if (encoder->n_series == encoder->max_series && (rc = flush(encoder, out)))
		return rc;
	size_t i = 0, e = 0, n = 0;
	uint32_t *refs = encoder->tail_refs;
	encoder->tail_generation = 0; /* tail_refs is reused here */
	rc = 0;
	while (!rc && (i < n_own || e < encoder->n_external)) {
		int c = i == n_own		   ? 1
			: e == encoder->n_external ? -1
						   : strcmp(own[i]->name, encoder->external[e].name);
		if (c > 0) {
			rc = push_external(encoder, e++, refs, &n);
			continue;
		}
		if (c == 0)
			e++; /* the sample's own label wins */
		rc = intern(encoder, own[i]->name, strlen(own[i]->name), &refs[n]);
		if (!rc)
			rc = intern(encoder, own[i]->value, strlen(own[i]->value), &refs[n + 1]);
		n += 2;
		i++;
	}
	struct series_fields fields = {
	    .refs = {refs, NULL},
	    .n_refs = {n, 0},
	    .value_bits =
		sample->is_integer ? double_bits((double)sample->integer) : double_bits(sample->real),
	    .type = family->type == FX_METRIC_COUNTER ? TYPE_COUNTER : TYPE_GAUGE,
	};
	if (!rc && family->help && family->help[0])
		rc = intern(encoder, family->help, strlen(family->help), &fields.help_ref);
	return rc ? rc : write_series(encoder, &fields);
}

static int add_self_families(struct fx_rw2_encoder *encoder, const struct fx_family_list *list,
			     struct fx_rw_requests *out)
{
	size_t n_families = fx_family_list_count(list);
	for (size_t f = 0; f < n_families; f++) {
		const struct fx_family *family = fx_family_list_get(list, f);
		for (size_t s = 0; s < family->n_samples; s++) {
			int rc = add_self_sample(encoder, family, &family->samples[s], out);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Where each external label goes among the flow labels of encoder->catalog, and the catalog's names as
 * constants. */
static void place_in_catalog(struct fx_rw2_encoder *encoder)
{
	const struct fx_label_name *catalog = encoder->catalog;
	size_t n_catalog = encoder->n_catalog;
	for (size_t e = encoder->n_head; e < encoder->n_external; e++) {
		const char *name = encoder->external[e].name;
		unsigned k = 0;
		while (k < n_catalog && strcmp(catalog[k].name, name) < 0)
			k++;
		encoder->ext_k[e] = k;
		encoder->ext_clash[e] = k < n_catalog && !strcmp(catalog[k].name, name);
	}
	for (size_t k = 0; k < N_FLOW_LABELS; k++)
		encoder->consts[CONST_LABEL + k] =
		    k < n_catalog ? (struct str){catalog[k].name, catalog[k].len} : (struct str){"", 0};
}

/* Follows the catalog of the snapshot series_labels began on, when it is not the one placed for. */
static void follow_catalog(struct fx_rw2_encoder *encoder)
{
	size_t n_catalog;
	const struct fx_label_name *catalog = fx_series_labels_catalog(encoder->series_labels, &n_catalog);
	assert(n_catalog <= N_FLOW_LABELS);
	if (n_catalog == encoder->n_catalog &&
	    !memcmp(catalog, encoder->catalog, n_catalog * sizeof(*catalog)))
		return;
	memcpy(encoder->catalog, catalog, n_catalog * sizeof(*catalog));
	encoder->n_catalog = n_catalog;
	place_in_catalog(encoder);
}

int fx_rw2_encode(struct fx_rw2_encoder *encoder, const struct fx_snapshot *snapshot, int64_t timestamp_ms,
		  int64_t stale_since_ms, struct fx_rw_requests *out)
{
	int rc;
	encoder->timestamp_ms = timestamp_ms;
	fx_series_labels_begin(encoder->series_labels, snapshot);
	follow_catalog(encoder);
	if ((rc = begin_request(encoder)))
		return rc;
	size_t cursor = 0;
	bool stale;
	for (const struct fx_series *series;
	     (series = fx_snapshot_next_pushed(snapshot, stale_since_ms, &cursor, &stale));)
		if ((rc = add_flow_series(encoder, series, stale, out)))
			return rc;
	if (snapshot->self && (rc = add_self_families(encoder, snapshot->self, out)))
		return rc;
	return flush(encoder, out);
}

/* ---- Create and destroy ---- */

void fx_rw2_encoder_destroy(struct fx_rw2_encoder *encoder)
{
	if (!encoder)
		return;
	for (size_t i = 0; i < encoder->n_external; i++) {
		free((char *)encoder->external[i].name);
		free((char *)encoder->external[i].value);
	}
	free(encoder->external);
	free(encoder->ext_k);
	free(encoder->ext_clash);
	free(encoder->consts);
	free(encoder->const_ref);
	fx_buf_free(&encoder->symbols);
	free(encoder->sym_off);
	free(encoder->sym_len);
	free(encoder->slots);
	fx_buf_free(&encoder->series);
	fx_series_labels_destroy(encoder->series_labels);
	fx_buf_free(&encoder->packed);
	free(encoder->head_refs);
	free(encoder->tail_refs);
	free(encoder);
}

static int compare_label_name(const void *a, const void *b)
{
	return strcmp(((const struct fx_label *)a)->name, ((const struct fx_label *)b)->name);
}

/* Copies the external labels (but one named __name__: the series' own always wins), sorted, and finds where
 * each goes in a flow series. */
static int place_externals(struct fx_rw2_encoder *encoder, const struct fx_rw_encoder_config *config)
{
	size_t n = config->n_external_labels;
	encoder->external = calloc(n + 1, sizeof(*encoder->external));
	encoder->ext_k = calloc(n + 1, sizeof(*encoder->ext_k));
	encoder->ext_clash = calloc(n + 1, sizeof(*encoder->ext_clash));
	if (!encoder->external || !encoder->ext_k || !encoder->ext_clash)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(config->external_labels[i].name, "__name__"))
			continue;
		struct fx_label *label = &encoder->external[encoder->n_external++];
		label->name = strdup(config->external_labels[i].name);
		label->value = strdup(config->external_labels[i].value);
		if (!label->name || !label->value)
			return -1;
	}
	qsort(encoder->external, encoder->n_external, sizeof(*encoder->external), compare_label_name);
	for (size_t e = 0; e < encoder->n_external; e++)
		if (strcmp(encoder->external[e].name, "__name__") < 0)
			encoder->n_head = e + 1;
	return 0;
}

static int make_consts(struct fx_rw2_encoder *encoder)
{
	encoder->n_consts = CONST_EXTERNAL + 2 * encoder->n_external;
	encoder->consts = calloc(encoder->n_consts, sizeof(*encoder->consts));
	encoder->const_ref = calloc(encoder->n_consts, sizeof(*encoder->const_ref));
	if (!encoder->consts || !encoder->const_ref)
		return -1;
	struct str *c = encoder->consts;
	c[CONST_NAME] = (struct str){"__name__", 8};
	c[CONST_UNIT_BYTES] = (struct str){"bytes", 5};
	for (size_t f = 0; f < FX_FLOW_FAMILIES; f++) {
		c[CONST_FAMILY + f] =
		    (struct str){fx_flow_families[f].name, strlen(fx_flow_families[f].name)};
		c[CONST_HELP + f] = (struct str){fx_flow_families[f].help, strlen(fx_flow_families[f].help)};
	}
	for (size_t e = 0; e < encoder->n_external; e++) {
		const struct fx_label *label = &encoder->external[e];
		c[CONST_EXTERNAL + 2 * e] = (struct str){label->name, strlen(label->name)};
		c[CONST_EXTERNAL + 2 * e + 1] = (struct str){label->value, strlen(label->value)};
	}
	return 0;
}

/* Every buffer's maximum (see "Bounds" in DESIGN). */
static int init_buffers(struct fx_rw2_encoder *encoder)
{
	/* The constants, with every catalog name as long as a name can be (the catalog follows snapshots). */
	size_t externals_len = N_FLOW_LABELS * (1 + FX_PB_VARINT_MAX + FX_SERIES_LABEL_NAME_MAX);
	for (size_t c = 0; c < encoder->n_consts; c++)
		externals_len += 1 + FX_PB_VARINT_MAX + encoder->consts[c].len;
	size_t n_refs = 2 * (OWN_LABELS_MAX + encoder->n_external);
	size_t string_max = 1 + FX_PB_VARINT_MAX + FX_SERIES_LABEL_VALUE_MAX;
	size_t series_max = 3 * (1 + FX_PB_VARINT_MAX) + n_refs * 5 + 32 + 16;
	fx_buf_init(&encoder->series, encoder->max_series * series_max);
	fx_buf_init(&encoder->symbols, externals_len + encoder->max_series * (n_refs + 1) * string_max);
	fx_buf_init(&encoder->packed, encoder->series.max + encoder->symbols.max);
	encoder->head_refs = calloc(2 * (encoder->n_head + 1), sizeof(*encoder->head_refs));
	encoder->tail_refs = calloc(n_refs, sizeof(*encoder->tail_refs));
	encoder->n_slots = FIRST_SLOTS;
	encoder->slots = calloc(encoder->n_slots, sizeof(*encoder->slots));
	if (!encoder->head_refs || !encoder->tail_refs || !encoder->slots ||
	    fx_buf_reserve(&encoder->symbols, 0) || fx_buf_reserve(&encoder->series, 0) ||
	    fx_buf_reserve(&encoder->packed, 0))
		return -1;
	return 0;
}

struct fx_rw2_encoder *fx_rw2_encoder_create(const struct fx_rw_encoder_config *config)
{
	struct fx_rw2_encoder *encoder = calloc(1, sizeof(*encoder));
	if (!encoder)
		return NULL;
	size_t max = config->max_series_per_request; /* --remote-write-max-series, validated by config.c */
	assert(max > 0);
	assert(max <= REQUEST_SERIES_MAX);
	encoder->max_series = max;
	if (place_externals(encoder, config) || make_consts(encoder))
		goto fail;
	memcpy(encoder->catalog, fx_series_label_catalog, sizeof(fx_series_label_catalog));
	encoder->n_catalog = FX_SERIES_LABELS_BUILTIN;
	place_in_catalog(encoder);
	if (init_buffers(encoder))
		goto fail;
	encoder->series_labels = fx_series_labels_create();
	if (!encoder->series_labels)
		goto fail;
	return encoder;
fail:
	fx_rw2_encoder_destroy(encoder);
	return NULL;
}
