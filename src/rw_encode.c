/* Remote-write encoder: snapshot -> prometheus.WriteRequest bytes -> snappy block, one body per
 * max_series_per_request TimeSeries. Modelled on cmetrics' cmt_encode_prometheus_remote_write.c, but the
 * protobuf is written by hand: the schema is tiny and fixed, and protobuf-c's generic sizing and packing
 * of one message per label, sample and series was two thirds of the time of a push.
 *
 * DESIGN
 * - The wire format (proto/remote.proto, types.proto; proto3):
 *     WriteRequest { repeated TimeSeries timeseries = 1; }            0x0a len TimeSeries, ...
 *     TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
 *     Label        { string name = 1; string value = 2; }              0x0a len name 0x12 len value
 *     Sample       { double value = 1; int64 timestamp = 2; }          0x09 <8 bytes LE> 0x10 varint
 *   written exactly as protobuf_c_message_pack writes it (fields in number order, proto3 defaults left
 *   out: a value that compares equal to 0.0 and a timestamp of 0 are not written); test_rw_encode checks
 *   byte-for-byte equality with protobuf-c on every request it makes, and decodes them with the generated
 *   code.
 * - A TimeSeries' labels are all sorted by name. For a flow series that order is fixed: the external
 *   labels sorting before "__name__" (`head`, encoded once at creation), __name__ (one encoded label per
 *   family), then the flow labels (series_labels.c gives them in name order, each with its position k in
 *   fx_series_label_catalog) with the external labels that sort between catalog names k-1 and k
 *   (`gap[k]`, encoded once). An external label named like flow label k (`clash[k]`) is written only when
 *   the series does not carry label k: the series' own label wins. The flow part (`tail`) is encoded once
 *   per flow series and copied into each of its (up to four) TimeSeries, which differ only in __name__ and
 *   the sample.
 * - Label values come from series_labels.c, whose caches (AS number -> digits and name, hostname ->
 *   length) last one encode, so a series costs a few memcpy and no lookup.
 * - Bounds: head, gap[] and clash[] hold at most every external label; a tail, the flow labels (each value
 *   at most FX_SERIES_LABEL_VALUE_MAX) or a self-metric sample's labels, plus the external labels;
 *   `packed`, max_series_per_request of the longest TimeSeries. A series past them fails the encode with
 *   FX_RW_E_TOO_BIG, which rw_sender.c logs as a failed encoding ("encoding failed: ...").
 * - Values are converted from uint64 to double here and nowhere earlier.
 * - The series of a request are written in snapshot order (sorted by AS numbers, then hostname): the
 *   neighbours that share an AS pair and its names are what snappy, which only looks 64 KiB back, finds.
 *
 * Thread: whichever thread owns the encoder (the sender's). */
#include "fx/rw_encode.h"

#include <assert.h>
#include <math.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/buf.h"
#include "fx/pb_wire.h"
#include "fx/series_labels.h"

#define N_FLOW_LABELS FX_SERIES_LABELS_MAX
/* A varint of a size_t, at most. */
#define VARINT_MAX 10
/* A Sample field at most: tag, length, the double field (9 bytes) and the timestamp field (1 + varint). */
#define SAMPLE_MAX (1 + 1 + 9 + 1 + VARINT_MAX)
/* The labels of one TimeSeries past __name__, not counting external labels: the flow labels, or a
 * self-metric sample's labels and its __name__. */
#define LABELS_PER_SERIES_MAX                                                                                \
	(FX_SERIES_LABELS_MAX > FX_SAMPLE_MAX_LABELS + 1 ? FX_SERIES_LABELS_MAX : FX_SAMPLE_MAX_LABELS + 1)
/* max_series_per_request at most (the config allows 1,000,000), so that a request's bound, series times the
 * longest series, fits a size_t. */
#define REQUEST_SERIES_MAX ((size_t)1 << 20)

enum flow_family { RECEIVE_BYTES, TRANSMIT_BYTES, RECEIVE_PACKETS, TRANSMIT_PACKETS, N_FLOW_FAMILIES };

static const char *const flow_family_names[N_FLOW_FAMILIES] = {
    "flow_receive_bytes_total",
    "flow_transmit_bytes_total",
    "flow_receive_packets_total",
    "flow_transmit_packets_total",
};

struct external_label {
	char *name, *value; /* owned */
};

struct fx_rw_encoder {
	size_t max_series;

	/* Built at creation. */
	struct external_label *external; /* sorted by name */
	size_t n_external;
	size_t externals_len; /* their encoded size: what head, gap[] and clash[] hold together at most */
	struct fx_buf head;   /* encoded external labels sorting before __name__ */
	struct fx_buf gap[N_FLOW_LABELS + 1];	    /* gap[k]: those between sorted flow labels k-1 and k */
	struct fx_buf clash[N_FLOW_LABELS];	    /* an external label named like sorted flow label k: only
						       written when the series does not carry that label */
	struct fx_buf family_name[N_FLOW_FAMILIES]; /* encoded __name__ label of the flow families */
	/* The flow-label catalog gap[] and clash[] were encoded for (series_labels.h): the built-in one at
	 * creation, encoded again when a snapshot's layout brings another. */
	struct fx_label_name catalog[N_FLOW_LABELS];
	size_t n_catalog;

	/* Per encode. */
	struct fx_series_labels *series_labels;
	struct fx_buf tail;   /* the flow labels of the series being written */
	struct fx_buf packed; /* the WriteRequest being built, reused */
	size_t n_series;      /* TimeSeries in `packed` */
	int64_t timestamp_ms;
};

/* ---- Protobuf primitives ---- */

/* Varints: pb_wire.h, shared with the 2.0 encoder. */

/* The encoded size of a Label field (tag, length, message). */
static inline size_t label_field_len(size_t name_len, size_t value_len)
{
	size_t inner =
	    1 + fx_pb_varint_len(name_len) + name_len + 1 + fx_pb_varint_len(value_len) + value_len;
	return 1 + fx_pb_varint_len(inner) + inner;
}

/* Writes a Label field of a TimeSeries at p (room for label_field_len) and returns the end. */
static inline char *write_label(char *p, const char *name, size_t name_len, const char *value,
				size_t value_len)
{
	size_t inner =
	    1 + fx_pb_varint_len(name_len) + name_len + 1 + fx_pb_varint_len(value_len) + value_len;
	*p++ = 0x0a;
	p = fx_pb_write_varint(p, inner);
	*p++ = 0x0a;
	p = fx_pb_write_varint(p, name_len);
	memcpy(p, name, name_len);
	p += name_len;
	*p++ = 0x12;
	p = fx_pb_write_varint(p, value_len);
	memcpy(p, value, value_len);
	return p + value_len;
}

/* The FX_RW_E_* code of an fx_buf error. */
static int rw_error(int buf_rc)
{
	return buf_rc == FX_BUF_E_TOO_BIG ? FX_RW_E_TOO_BIG : FX_RW_E_NOMEM;
}

static int append_label(struct fx_buf *out, const char *name, const char *value)
{
	size_t name_len = strlen(name), value_len = strlen(value);
	int rc = fx_buf_reserve(out, label_field_len(name_len, value_len));
	if (rc)
		return rc;
	out->len = (size_t)(write_label(out->data + out->len, name, name_len, value, value_len) - out->data);
	return 0;
}

/* The Sample message of one value: proto3 leaves out a value equal to 0.0 (-0.0 too, as protobuf-c
 * compares the double) and a timestamp of 0. */
static inline size_t sample_len(uint64_t value_bits, int64_t timestamp)
{
	double value;
	memcpy(&value, &value_bits, sizeof(value));
	return (value != 0.0 ? 9 : 0) + (timestamp != 0 ? 1 + fx_pb_varint_len((uint64_t)timestamp) : 0);
}

static inline char *write_sample(char *p, uint64_t value_bits, int64_t timestamp)
{
	double value;
	memcpy(&value, &value_bits, sizeof(value));
	if (value != 0.0) {
		*p++ = 0x09;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		memcpy(p, &value_bits, 8); /* fixed64 is little-endian on the wire */
		p += 8;
#else
		for (int i = 0; i < 8; i++)
			*p++ = (char)(value_bits >> (8 * i));
#endif
	}
	if (timestamp != 0) {
		*p++ = 0x10;
		p = fx_pb_write_varint(p, (uint64_t)timestamp);
	}
	return p;
}

const char *fx_rw_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
	case FX_RW_E_NOMEM:
		return "out of memory";
	case FX_RW_E_ENCODE:
		return "snappy encoding failed";
	case FX_RW_E_TOO_BIG:
		return "a series is larger than the encoder's bound (a label value over 1 MiB)";
	default:
		return "unknown error";
	}
}

void fx_rw_request_free(struct fx_rw_request *request)
{
	if (!request)
		return;
	free(request->body);
	memset(request, 0, sizeof(*request));
}

void fx_rw_requests_free(struct fx_rw_requests *requests)
{
	if (!requests)
		return;
	for (size_t i = 0; i < requests->n; i++)
		free(requests->items[i].body);
	free(requests->items);
	memset(requests, 0, sizeof(*requests));
}

static int compare_external(const void *a, const void *b)
{
	return strcmp(((const struct external_label *)a)->name, ((const struct external_label *)b)->name);
}

void fx_rw_encoder_destroy(struct fx_rw_encoder *encoder)
{
	if (!encoder)
		return;
	for (size_t i = 0; i < encoder->n_external; i++) {
		free(encoder->external[i].name);
		free(encoder->external[i].value);
	}
	free(encoder->external);
	fx_buf_free(&encoder->head);
	for (size_t k = 0; k <= N_FLOW_LABELS; k++)
		fx_buf_free(&encoder->gap[k]);
	for (size_t k = 0; k < N_FLOW_LABELS; k++)
		fx_buf_free(&encoder->clash[k]);
	for (size_t f = 0; f < N_FLOW_FAMILIES; f++)
		fx_buf_free(&encoder->family_name[f]);
	fx_series_labels_destroy(encoder->series_labels);
	fx_buf_free(&encoder->tail);
	fx_buf_free(&encoder->packed);
	free(encoder);
}

/* Encodes the external labels into head, gap[] and clash[] (see DESIGN) for encoder->catalog. */
static int encode_externals(struct fx_rw_encoder *encoder)
{
	fx_buf_reset(&encoder->head);
	for (size_t k = 0; k <= N_FLOW_LABELS; k++)
		fx_buf_reset(&encoder->gap[k]);
	for (size_t k = 0; k < N_FLOW_LABELS; k++)
		fx_buf_reset(&encoder->clash[k]);
	const struct fx_label_name *catalog = encoder->catalog;
	size_t n_catalog = encoder->n_catalog;
	for (size_t i = 0; i < encoder->n_external; i++) {
		const struct external_label *label = &encoder->external[i];
		int c = strcmp(label->name, "__name__");
		if (c == 0)
			continue; /* the series' own __name__ wins */
		if (c < 0) {
			if (append_label(&encoder->head, label->name, label->value))
				return -1;
			continue;
		}
		size_t k = 0;
		while (k < n_catalog && strcmp(catalog[k].name, label->name) < 0)
			k++;
		struct fx_buf *into = k < n_catalog && strcmp(catalog[k].name, label->name) == 0
					  ? &encoder->clash[k]
					  : &encoder->gap[k];
		if (append_label(into, label->name, label->value))
			return -1;
	}
	return 0;
}

/* Copies the external labels into the encoder, sorted by name; returns their encoded size. */
static int copy_externals(struct fx_rw_encoder *encoder, const struct fx_rw_encoder_config *config,
			  size_t *encoded_len)
{
	*encoded_len = 0;
	if (config->n_external_labels) {
		encoder->external = calloc(config->n_external_labels, sizeof(*encoder->external));
		if (!encoder->external)
			return -1;
	}
	for (size_t i = 0; i < config->n_external_labels; i++) {
		encoder->external[i].name = strdup(config->external_labels[i].name);
		encoder->external[i].value = strdup(config->external_labels[i].value);
		encoder->n_external++;
		if (!encoder->external[i].name || !encoder->external[i].value)
			return -1;
		*encoded_len +=
		    label_field_len(strlen(encoder->external[i].name), strlen(encoder->external[i].value));
	}
	if (encoder->n_external)
		qsort(encoder->external, encoder->n_external, sizeof(*encoder->external), compare_external);
	return 0;
}

/* Gives every buffer its maximum, derived from what can be in it (see "Bounds" in DESIGN), and memory, so
 * that writers may take data pointers before appending. */
static int init_buffers(struct fx_rw_encoder *encoder, size_t externals_len)
{
	/* The longest label: a flow label value, or a self-metric label name or value, at their maximum. */
	size_t label_max = label_field_len(FX_SERIES_LABEL_VALUE_MAX, FX_SERIES_LABEL_VALUE_MAX);
	/* A TimeSeries' labels past __name__: every flow label (or a self-metric sample's own labels and its
	 * __name__), and every external label. */
	size_t tail_max = externals_len + LABELS_PER_SERIES_MAX * label_max;
	size_t name_max = label_field_len(sizeof("__name__") - 1, sizeof("flow_transmit_packets_total") - 1);
	size_t series_max = 1 + VARINT_MAX + externals_len + name_max + tail_max + SAMPLE_MAX;
	fx_buf_init(&encoder->head, externals_len);
	for (size_t k = 0; k <= N_FLOW_LABELS; k++)
		fx_buf_init(&encoder->gap[k], externals_len);
	for (size_t k = 0; k < N_FLOW_LABELS; k++)
		fx_buf_init(&encoder->clash[k], externals_len);
	for (size_t f = 0; f < N_FLOW_FAMILIES; f++)
		fx_buf_init(&encoder->family_name[f], name_max);
	fx_buf_init(&encoder->tail, tail_max);
	fx_buf_init(&encoder->packed, encoder->max_series * series_max);
	if (fx_buf_reserve(&encoder->head, 0) || fx_buf_reserve(&encoder->tail, 256) ||
	    fx_buf_reserve(&encoder->packed, 0))
		return -1;
	for (size_t k = 0; k <= N_FLOW_LABELS; k++)
		if (fx_buf_reserve(&encoder->gap[k], 0) ||
		    (k < N_FLOW_LABELS && fx_buf_reserve(&encoder->clash[k], 0)))
			return -1;
	return 0;
}

struct fx_rw_encoder *fx_rw_encoder_create(const struct fx_rw_encoder_config *config)
{
	struct fx_rw_encoder *encoder = calloc(1, sizeof(*encoder));
	if (!encoder)
		return NULL;
	size_t max = config->max_series_per_request; /* --remote-write-max-series, validated by config.c */
	assert(max > 0);
	/* A request of more series than memory can address is no request: the bound of `packed` saturates. */
	assert(max <= REQUEST_SERIES_MAX);
	encoder->max_series = max;
	memcpy(encoder->catalog, fx_series_label_catalog, sizeof(fx_series_label_catalog));
	encoder->n_catalog = FX_SERIES_LABELS_BUILTIN;
	if (copy_externals(encoder, config, &encoder->externals_len) ||
	    init_buffers(encoder, encoder->externals_len) || encode_externals(encoder))
		goto fail;
	for (size_t f = 0; f < N_FLOW_FAMILIES; f++)
		if (append_label(&encoder->family_name[f], "__name__", flow_family_names[f]))
			goto fail;
	encoder->series_labels = fx_series_labels_create();
	if (!encoder->series_labels)
		goto fail;
	return encoder;
fail:
	fx_rw_encoder_destroy(encoder);
	return NULL;
}

/* Compresses the TimeSeries written so far into one request of `out`, then starts the next. */
static int flush(struct fx_rw_encoder *encoder, struct fx_rw_requests *out)
{
	if (encoder->n_series == 0)
		return 0;
	struct fx_rw_request *items = fx_array_grow(out->items, &out->cap, out->n, sizeof(*items), 8);
	if (!items)
		return FX_RW_E_NOMEM;
	out->items = items;
	size_t packed_len = encoder->packed.len;
	size_t body_len = snappy_max_compressed_length(packed_len);
	char *body = malloc(body_len ? body_len : 1);
	if (!body)
		return FX_RW_E_NOMEM;
	if (snappy_compress(encoder->packed.data, packed_len, body, &body_len) != SNAPPY_OK) {
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
	encoder->n_series = 0;
	fx_buf_reset(&encoder->packed);
	return 0;
}

/* Appends one TimeSeries whose Label fields are the concatenation of parts[0..n_parts) to the request,
 * with one sample; flushes the request first when it is full. */
static int add_series(struct fx_rw_encoder *encoder, const struct fx_buf *const *parts, size_t n_parts,
		      uint64_t value_bits, struct fx_rw_requests *out)
{
	if (encoder->n_series == encoder->max_series) {
		int rc = flush(encoder, out);
		if (rc)
			return rc;
	}
	size_t labels_len = 0;
	for (size_t i = 0; i < n_parts; i++)
		labels_len += parts[i]->len;
	size_t sample = sample_len(value_bits, encoder->timestamp_ms);
	size_t series_len = labels_len + 1 + fx_pb_varint_len(sample) + sample;
	int rc = fx_buf_reserve(&encoder->packed, 1 + VARINT_MAX + series_len);
	if (rc)
		return rw_error(rc);
	char *p = encoder->packed.data + encoder->packed.len;
	*p++ = 0x0a;
	p = fx_pb_write_varint(p, series_len);
	for (size_t i = 0; i < n_parts; i++) {
		memcpy(p, parts[i]->data, parts[i]->len);
		p += parts[i]->len;
	}
	*p++ = 0x12;
	p = fx_pb_write_varint(p, sample);
	p = write_sample(p, value_bits, encoder->timestamp_ms);
	encoder->packed.len = (size_t)(p - encoder->packed.data);
	encoder->n_series++;
	return 0;
}

static uint64_t double_bits(double value)
{
	uint64_t bits;
	if (isnan(value))
		return FX_RW_NAN_BITS;
	memcpy(&bits, &value, sizeof(bits));
	return bits;
}

/* Copies an encoded part at p and returns the end; most parts are empty (no external label there). */
static inline char *copy_part(char *p, const struct fx_buf *part)
{
	if (part->len)
		memcpy(p, part->data, part->len);
	return p + part->len;
}

/* Encodes the flow labels of `key` with the external labels between them into encoder->tail. */
static int build_tail(struct fx_rw_encoder *encoder, const struct fx_series_key *key)
{
	struct fx_label_set set;
	const struct fx_label_name *catalog = encoder->catalog;
	size_t n_catalog = encoder->n_catalog;
	fx_series_labels_get(encoder->series_labels, key, &set);
	size_t bound = encoder->externals_len;
	for (size_t i = 0; i < set.n; i++)
		bound += label_field_len(catalog[set.pairs[i].label].len, set.pairs[i].value_len);
	fx_buf_reset(&encoder->tail);
	int rc = fx_buf_reserve(&encoder->tail, bound);
	if (rc)
		return rw_error(rc);
	/* The pairs and the catalog positions k are both in name order: pair i is label k or a later one. */
	char *p = encoder->tail.data;
	size_t i = 0;
	for (size_t k = 0; k < n_catalog; k++) {
		p = copy_part(p, &encoder->gap[k]);
		if (i < set.n && set.pairs[i].label == k) {
			const struct fx_label_pair *pair = &set.pairs[i++];
			p = write_label(p, catalog[k].name, catalog[k].len, pair->value, pair->value_len);
		} else {
			p = copy_part(p, &encoder->clash[k]);
		}
	}
	p = copy_part(p, &encoder->gap[n_catalog]);
	encoder->tail.len = (size_t)(p - encoder->tail.data);
	return 0;
}

/* Adds the TimeSeries of one flow series (live, or a stale marker when `stale`). */
static int add_flow_series(struct fx_rw_encoder *encoder, const struct fx_series *flow, bool stale,
			   struct fx_rw_requests *out)
{
	static const struct {
		enum flow_family family;
		enum fx_direction direction;
		bool bytes;
	} families[N_FLOW_FAMILIES] = {
	    {RECEIVE_BYTES, FX_DIR_RECEIVE, true},
	    {RECEIVE_PACKETS, FX_DIR_RECEIVE, false},
	    {TRANSMIT_BYTES, FX_DIR_TRANSMIT, true},
	    {TRANSMIT_PACKETS, FX_DIR_TRANSMIT, false},
	};
	if (!(flow->seen & ((1u << FX_DIR_RECEIVE) | (1u << FX_DIR_TRANSMIT))))
		return 0;
	int rc = build_tail(encoder, &flow->key);
	if (rc)
		return rc;
	for (size_t f = 0; f < N_FLOW_FAMILIES; f++) {
		enum fx_direction direction = families[f].direction;
		if (!(flow->seen & (1u << direction)))
			continue;
		uint64_t bits;
		if (stale) {
			bits = FX_RW_STALE_NAN_BITS;
		} else {
			uint64_t counter =
			    families[f].bytes ? flow->bytes[direction] : flow->packets[direction];
			bits = double_bits((double)counter);
		}
		const struct fx_buf *parts[] = {&encoder->head, &encoder->family_name[families[f].family],
						&encoder->tail};
		if ((rc = add_series(encoder, parts, 3, bits, out)))
			return rc;
	}
	return 0;
}

/* One self-metric sample: its own labels (__name__ and the sample's non-empty labels, sorted, the first of
 * a duplicate name kept) merged with the external labels, the own label winning a tie. */
static int add_self_sample(struct fx_rw_encoder *encoder, const struct fx_family *family,
			   const struct fx_sample *sample, struct fx_rw_requests *out)
{
	const struct fx_label *own[FX_SAMPLE_OWN_LABELS];
	struct fx_label name_label;
	size_t n_own = fx_sample_own_labels(family, sample, &name_label, own);
	fx_buf_reset(&encoder->tail);
	size_t i = 0, k = 0;
	while (i < n_own || k < encoder->n_external) {
		const char *name, *value;
		if (k == encoder->n_external) {
			name = own[i]->name;
			value = own[i++]->value;
		} else if (i == n_own) {
			name = encoder->external[k].name;
			value = encoder->external[k++].value;
		} else {
			int c = strcmp(own[i]->name, encoder->external[k].name);
			if (c <= 0) {
				if (c == 0)
					k++; /* the series' own label wins */
				name = own[i]->name;
				value = own[i++]->value;
			} else {
				name = encoder->external[k].name;
				value = encoder->external[k++].value;
			}
		}
		int rc = append_label(&encoder->tail, name, value);
		if (rc)
			return rw_error(rc);
	}
	uint64_t bits = sample->is_integer ? double_bits((double)sample->integer) : double_bits(sample->real);
	const struct fx_buf *parts[] = {&encoder->tail};
	return add_series(encoder, parts, 1, bits, out);
}

static int add_self_families(struct fx_rw_encoder *encoder, const struct fx_family_list *list,
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

int fx_rw_encode(struct fx_rw_encoder *encoder, const struct fx_snapshot *snapshot, int64_t timestamp_ms,
		 int64_t stale_since_ms, struct fx_rw_requests *out)
{
	int rc;
	encoder->timestamp_ms = timestamp_ms;
	encoder->n_series = 0;
	fx_buf_reset(&encoder->packed);
	fx_series_labels_begin(encoder->series_labels, snapshot);
	size_t n_catalog;
	const struct fx_label_name *catalog = fx_series_labels_catalog(encoder->series_labels, &n_catalog);
	if (n_catalog != encoder->n_catalog ||
	    memcmp(catalog, encoder->catalog, n_catalog * sizeof(*catalog))) {
		/* Another layout (extra dimensions): the external labels fall between other names. */
		memcpy(encoder->catalog, catalog, n_catalog * sizeof(*catalog));
		encoder->n_catalog = n_catalog;
		if (encode_externals(encoder))
			return FX_RW_E_NOMEM;
	}

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

/* ---- Metadata (WriteRequest.metadata = 3) ---- */

/* Appends a MetricMetadata field: type = 1, metric_family_name = 2, help = 4, unit = 5 (empty: left out). */
static int append_metadata(struct fx_buf *out, int type, const char *name, const char *help, const char *unit)
{
	size_t name_len = strlen(name), help_len = strlen(help), unit_len = unit ? strlen(unit) : 0;
	size_t inner = 2 + 1 + fx_pb_varint_len(name_len) + name_len +
		       (help_len ? 1 + fx_pb_varint_len(help_len) + help_len : 0) +
		       (unit_len ? 1 + fx_pb_varint_len(unit_len) + unit_len : 0);
	int rc = fx_buf_reserve(out, 1 + VARINT_MAX + inner);
	if (rc)
		return rw_error(rc);
	char *p = out->data + out->len;
	*p++ = 0x1a;
	p = fx_pb_write_varint(p, inner);
	*p++ = 0x08;
	*p++ = (char)type;
	const struct {
		char tag;
		const char *s;
		size_t len;
	} strings[] = {{0x12, name, name_len}, {0x22, help, help_len}, {0x2a, unit, unit_len}};
	for (size_t i = 0; i < 3; i++) {
		if (i > 0 && !strings[i].len)
			continue;
		*p++ = strings[i].tag;
		p = fx_pb_write_varint(p, strings[i].len);
		memcpy(p, strings[i].s, strings[i].len);
		p += strings[i].len;
	}
	out->len = (size_t)(p - out->data);
	return 0;
}

int fx_rw_encode_metadata(struct fx_rw_encoder *encoder, const struct fx_snapshot *snapshot,
			  struct fx_rw_requests *out)
{
	enum { COUNTER = 1, GAUGE = 2 }; /* prometheus.MetricMetadata.MetricType */
	fx_buf_reset(&encoder->packed);
	encoder->n_series = 0;
	int rc = 0;
	for (size_t f = 0; f < FX_FLOW_FAMILIES && !rc; f++)
		rc = append_metadata(&encoder->packed, COUNTER, fx_flow_families[f].name,
				     fx_flow_families[f].help, fx_flow_families[f].unit);
	size_t n_families = snapshot->self ? fx_family_list_count(snapshot->self) : 0;
	for (size_t f = 0; f < n_families && !rc; f++) {
		const struct fx_family *family = fx_family_list_get(snapshot->self, f);
		if (family->n_samples)
			rc = append_metadata(&encoder->packed,
					     family->type == FX_METRIC_COUNTER ? COUNTER : GAUGE,
					     family->name, family->help ? family->help : "", NULL);
	}
	if (rc)
		return rc;
	encoder->timestamp_ms = 0;
	encoder->n_series = 1; /* so that flush makes the request; it holds no TimeSeries */
	rc = flush(encoder, out);
	if (!rc) {
		out->items[out->n - 1].n_series = 0;
		out->items[out->n - 1].n_samples = 0;
	}
	return rc;
}
