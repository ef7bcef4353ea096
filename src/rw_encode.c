/* Remote-write encoder: snapshot -> prometheus.WriteRequest (protobuf-c) -> snappy block, one body per
 * max_series_per_request TimeSeries. Modelled on cmetrics' cmt_encode_prometheus_remote_write.c.
 *
 * DESIGN
 * - No allocation per sample: the protobuf-c messages of one request (TimeSeries, Sample, Label and the
 *   pointer arrays they refer to) live in arenas sized for max_series_per_request at creation, reset after
 *   every request. Only the packed and the compressed bodies are allocated per request.
 * - A flow series' Label messages are built once per request and shared by its (up to four) TimeSeries:
 *   a TimeSeries holds pointers to Labels, so only its pointer array differs (its __name__ and the merge
 *   order). The __name__ and external Labels are built once, at creation.
 * - Label strings are borrowed from the snapshot (interned host names, AS names of its map, self-metric
 *   strings) or written into the request's number arena (AS numbers, interface indexes); they only have to
 *   live until the request is packed, which happens before fx_rw_encode returns.
 * - Values are converted from uint64 to double here and nowhere earlier.
 *
 * Thread: whichever thread owns the encoder (the sender's). */
#include "fx/rw_encode.h"

#include <math.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/buf.h"
#include "remote.pb-c.h"
#include "types.pb-c.h"

#define N_FLOW_LABELS 7
/* Own labels of one TimeSeries at most: __name__ and the seven flow labels, or __name__ and the sample's
 * FX_SAMPLE_MAX_LABELS. */
#define MAX_OWN_LABELS (1 + N_FLOW_LABELS)
/* Decimal digits of a uint32 and a NUL. */
#define NUMBER_CHARS 11

enum flow_family { RECEIVE_BYTES, TRANSMIT_BYTES, RECEIVE_PACKETS, TRANSMIT_PACKETS, N_FLOW_FAMILIES };

static const char *const flow_family_names[N_FLOW_FAMILIES] = {
	"flow_receive_bytes_total",
	"flow_transmit_bytes_total",
	"flow_receive_packets_total",
	"flow_transmit_packets_total",
};

struct fx_rw_encoder {
	size_t max_series;

	/* Built at creation. */
	Prometheus__Label *external; /* sorted by name */
	size_t n_external;
	Prometheus__Label family_name[N_FLOW_FAMILIES]; /* __name__ of the flow families */
	unsigned flow_label_order[N_FLOW_LABELS];       /* indexes of fx_label_names sorted by name */

	/* Per-request arenas, all sized for max_series TimeSeries. */
	Prometheus__TimeSeries *series;
	Prometheus__TimeSeries **series_ptrs;
	Prometheus__Sample *samples;
	Prometheus__Sample **sample_ptrs;
	size_t n_series;
	size_t n_samples;
	Prometheus__Label *labels; /* max_series * MAX_OWN_LABELS */
	size_t n_labels;
	Prometheus__Label **label_ptrs; /* max_series * (MAX_OWN_LABELS + n_external) */
	size_t n_label_ptrs, cap_label_ptrs;
	char *numbers; /* max_series * 4 * NUMBER_CHARS */
	size_t n_numbers;
	uint64_t request_epoch; /* incremented by every flush: Labels built in an older one are gone */

	struct fx_buf packed; /* the WriteRequest before compression, reused */
	int64_t timestamp_ms;
};

/* The Labels of the flow series being encoded, valid while built_epoch == encoder->request_epoch. */
struct series_labels {
	Prometheus__Label *sorted[N_FLOW_LABELS];
	size_t n;
	uint64_t built_epoch;
};

const char *fx_rw_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
	case FX_RW_E_NOMEM:
		return "out of memory";
	case FX_RW_E_ENCODE:
		return "protobuf or snappy encoding failed";
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

static bool label_name_valid(const char *name)
{
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_'))
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_'))
			return false;
	return true;
}

int fx_rw_check_external_labels(const struct fx_label *labels, size_t n, char *err, size_t errlen)
{
	char unused[1];
	if (!err || errlen == 0) {
		err = unused;
		errlen = sizeof(unused);
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = labels[i].name, *value = labels[i].value;
		if (!name || !label_name_valid(name)) {
			snprintf(err, errlen, "external label \"%s\": invalid name", name ? name : "");
			return -1;
		}
		if (name[0] == '_' && name[1] == '_') {
			snprintf(err, errlen, "external label \"%s\": names starting with __ are reserved", name);
			return -1;
		}
		if (!value || !value[0]) {
			snprintf(err, errlen, "external label \"%s\": empty value", name);
			return -1;
		}
		for (size_t k = 0; k < N_FLOW_LABELS; k++)
			if (strcmp(name, fx_label_names[k]) == 0) {
				snprintf(err, errlen, "external label \"%s\" clashes with the flow label of that name",
					 name);
				return -1;
			}
		for (size_t k = 0; k < i; k++)
			if (strcmp(name, labels[k].name) == 0) {
				snprintf(err, errlen, "external label \"%s\" given twice", name);
				return -1;
			}
	}
	return 0;
}

static int compare_label(const void *a, const void *b)
{
	return strcmp(((const Prometheus__Label *)a)->name, ((const Prometheus__Label *)b)->name);
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
	free(encoder->series);
	free(encoder->series_ptrs);
	free(encoder->samples);
	free(encoder->sample_ptrs);
	free(encoder->labels);
	free(encoder->label_ptrs);
	free(encoder->numbers);
	fx_buf_free(&encoder->packed);
	free(encoder);
}

struct fx_rw_encoder *fx_rw_encoder_create(const struct fx_rw_encoder_config *config)
{
	struct fx_rw_encoder *encoder = calloc(1, sizeof(*encoder));
	if (!encoder)
		return NULL;
	size_t max = config->max_series_per_request ? config->max_series_per_request
						    : FX_RW_DEFAULT_MAX_SERIES_PER_REQUEST;
	encoder->max_series = max;

	if (config->n_external_labels) {
		encoder->external = calloc(config->n_external_labels, sizeof(*encoder->external));
		if (!encoder->external)
			goto fail;
	}
	for (size_t i = 0; i < config->n_external_labels; i++) {
		Prometheus__Label init = PROMETHEUS__LABEL__INIT;
		encoder->external[i] = init;
		encoder->external[i].name = strdup(config->external_labels[i].name);
		encoder->external[i].value = strdup(config->external_labels[i].value);
		encoder->n_external++;
		if (!encoder->external[i].name || !encoder->external[i].value)
			goto fail;
	}
	if (encoder->n_external)
		qsort(encoder->external, encoder->n_external, sizeof(*encoder->external), compare_label);

	for (size_t f = 0; f < N_FLOW_FAMILIES; f++) {
		Prometheus__Label init = PROMETHEUS__LABEL__INIT;
		encoder->family_name[f] = init;
		encoder->family_name[f].name = (char *)"__name__";
		encoder->family_name[f].value = (char *)flow_family_names[f];
	}
	/* Insertion sort of the seven flow label names. */
	for (unsigned i = 0; i < N_FLOW_LABELS; i++) {
		unsigned k = i;
		while (k > 0 && strcmp(fx_label_names[encoder->flow_label_order[k - 1]], fx_label_names[i]) > 0) {
			encoder->flow_label_order[k] = encoder->flow_label_order[k - 1];
			k--;
		}
		encoder->flow_label_order[k] = i;
	}

	encoder->series = calloc(max, sizeof(*encoder->series));
	encoder->series_ptrs = calloc(max, sizeof(*encoder->series_ptrs));
	encoder->samples = calloc(max, sizeof(*encoder->samples));
	encoder->sample_ptrs = calloc(max, sizeof(*encoder->sample_ptrs));
	encoder->labels = calloc(max * MAX_OWN_LABELS, sizeof(*encoder->labels));
	encoder->cap_label_ptrs = max * (MAX_OWN_LABELS + encoder->n_external);
	encoder->label_ptrs = calloc(encoder->cap_label_ptrs, sizeof(*encoder->label_ptrs));
	encoder->numbers = malloc(max * 4 * NUMBER_CHARS);
	if (!encoder->series || !encoder->series_ptrs || !encoder->samples || !encoder->sample_ptrs ||
	    !encoder->labels || !encoder->label_ptrs || !encoder->numbers)
		goto fail;
	Prometheus__TimeSeries series_init = PROMETHEUS__TIME_SERIES__INIT;
	Prometheus__Sample sample_init = PROMETHEUS__SAMPLE__INIT;
	Prometheus__Label label_init = PROMETHEUS__LABEL__INIT;
	for (size_t i = 0; i < max; i++) {
		encoder->series[i] = series_init;
		encoder->series_ptrs[i] = &encoder->series[i];
		encoder->samples[i] = sample_init;
		encoder->sample_ptrs[i] = &encoder->samples[i];
		encoder->series[i].n_samples = 1;
		encoder->series[i].samples = &encoder->sample_ptrs[i];
	}
	for (size_t i = 0; i < max * MAX_OWN_LABELS; i++)
		encoder->labels[i] = label_init;
	fx_buf_init(&encoder->packed, SIZE_MAX / 2);
	return encoder;
fail:
	fx_rw_encoder_destroy(encoder);
	return NULL;
}

/* Packs and compresses the TimeSeries gathered so far into one request of `out`, then resets the arenas. */
static int flush(struct fx_rw_encoder *encoder, struct fx_rw_requests *out)
{
	if (encoder->n_series == 0)
		return 0;
	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 8;
		struct fx_rw_request *items = realloc(out->items, cap * sizeof(*items));
		if (!items)
			return FX_RW_E_NOMEM;
		out->items = items;
		out->cap = cap;
	}
	Prometheus__WriteRequest write_request = PROMETHEUS__WRITE_REQUEST__INIT;
	write_request.n_timeseries = encoder->n_series;
	write_request.timeseries = encoder->series_ptrs;

	size_t packed_len = prometheus__write_request__get_packed_size(&write_request);
	fx_buf_reset(&encoder->packed);
	if (fx_buf_reserve(&encoder->packed, packed_len) != 0)
		return FX_RW_E_NOMEM;
	if (prometheus__write_request__pack(&write_request, (uint8_t *)encoder->packed.data) != packed_len)
		return FX_RW_E_ENCODE;

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
		.n_samples = encoder->n_samples,
		.timestamp_ms = encoder->timestamp_ms,
	};
	encoder->n_series = 0;
	encoder->n_samples = 0;
	encoder->n_labels = 0;
	encoder->n_label_ptrs = 0;
	encoder->n_numbers = 0;
	encoder->request_epoch++;
	return 0;
}

/* Makes room for one more TimeSeries, flushing the current request when it is full. */
static int make_room(struct fx_rw_encoder *encoder, struct fx_rw_requests *out)
{
	if (encoder->n_series < encoder->max_series)
		return 0;
	return flush(encoder, out);
}

/* Adds one TimeSeries: `own` (n_own labels sorted by name, __name__ included) merged with the external
 * labels, one sample. The caller has made room. */
static void add_series(struct fx_rw_encoder *encoder, Prometheus__Label *const *own, size_t n_own,
		       uint64_t value_bits)
{
	Prometheus__Label **merged = &encoder->label_ptrs[encoder->n_label_ptrs];
	size_t n = 0, i = 0, k = 0;
	while (i < n_own || k < encoder->n_external) {
		if (k == encoder->n_external) {
			merged[n++] = own[i++];
		} else if (i == n_own) {
			merged[n++] = &encoder->external[k++];
		} else {
			int c = strcmp(own[i]->name, encoder->external[k].name);
			if (c <= 0) {
				if (c == 0)
					k++; /* the series' own label wins */
				merged[n++] = own[i++];
			} else {
				merged[n++] = &encoder->external[k++];
			}
		}
	}
	encoder->n_label_ptrs += n;

	Prometheus__TimeSeries *series = &encoder->series[encoder->n_series];
	series->n_labels = n;
	series->labels = merged;
	Prometheus__Sample *sample = &encoder->samples[encoder->n_series];
	memcpy(&sample->value, &value_bits, sizeof(value_bits));
	sample->timestamp = encoder->timestamp_ms;
	encoder->n_series++;
	encoder->n_samples++;
}

static uint64_t double_bits(double value)
{
	uint64_t bits;
	if (isnan(value))
		return FX_RW_NAN_BITS;
	memcpy(&bits, &value, sizeof(bits));
	return bits;
}

static char *number_string(struct fx_rw_encoder *encoder, uint32_t value)
{
	char *text = &encoder->numbers[encoder->n_numbers];
	size_t n = fx_u64_to_dec(value, text);
	text[n] = '\0';
	encoder->n_numbers += n + 1;
	return text;
}

static Prometheus__Label *new_label(struct fx_rw_encoder *encoder, const char *name, const char *value)
{
	Prometheus__Label *label = &encoder->labels[encoder->n_labels++];
	label->name = (char *)name;
	label->value = (char *)value;
	return label;
}

/* The value of flow label `bit` of a series, or NULL when the series does not carry it. */
static const char *flow_label_value(struct fx_rw_encoder *encoder, const struct fx_snapshot *snapshot,
				    const struct fx_series_key *key, unsigned bit)
{
	uint32_t mask = snapshot->label_mask;
	switch (1u << bit) {
	case FX_LABEL_HOSTNAME:
		return (mask & FX_LABEL_HOSTNAME) && (key->present & FX_LABEL_HOSTNAME) ? key->hostname : NULL;
	case FX_LABEL_SOURCE_AS:
		return (mask & FX_LABEL_SOURCE_AS) && (key->present & FX_LABEL_SOURCE_AS)
			       ? number_string(encoder, key->as_src)
			       : NULL;
	case FX_LABEL_SOURCE_AS_NAME:
		return (mask & FX_LABEL_SOURCE_AS_NAME) && (key->present & FX_LABEL_SOURCE_AS)
			       ? fx_asn_map_lookup(snapshot->names, key->as_src)
			       : NULL;
	case FX_LABEL_DESTINATION_AS:
		return (mask & FX_LABEL_DESTINATION_AS) && (key->present & FX_LABEL_DESTINATION_AS)
			       ? number_string(encoder, key->as_dst)
			       : NULL;
	case FX_LABEL_DESTINATION_AS_NAME:
		return (mask & FX_LABEL_DESTINATION_AS_NAME) && (key->present & FX_LABEL_DESTINATION_AS)
			       ? fx_asn_map_lookup(snapshot->names, key->as_dst)
			       : NULL;
	case FX_LABEL_IFACE_IN:
		return (mask & FX_LABEL_IFACE_IN) && (key->present & FX_LABEL_IFACE_IN)
			       ? number_string(encoder, key->iface_in)
			       : NULL;
	case FX_LABEL_IFACE_OUT:
		return (mask & FX_LABEL_IFACE_OUT) && (key->present & FX_LABEL_IFACE_OUT)
			       ? number_string(encoder, key->iface_out)
			       : NULL;
	default:
		return NULL;
	}
}

static void build_series_labels(struct fx_rw_encoder *encoder, const struct fx_snapshot *snapshot,
				const struct fx_series_key *key, struct series_labels *labels)
{
	labels->n = 0;
	for (size_t i = 0; i < N_FLOW_LABELS; i++) {
		unsigned bit = encoder->flow_label_order[i];
		const char *value = flow_label_value(encoder, snapshot, key, bit);
		if (value && value[0])
			labels->sorted[labels->n++] = new_label(encoder, fx_label_names[bit], value);
	}
	labels->built_epoch = encoder->request_epoch;
}

/* Adds the TimeSeries of one flow series (live, or a stale marker when `stale`). */
static int add_flow_series(struct fx_rw_encoder *encoder, const struct fx_snapshot *snapshot,
			   const struct fx_series *flow, bool stale, struct fx_rw_requests *out)
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
	struct series_labels labels = {.built_epoch = UINT64_MAX};
	for (size_t f = 0; f < N_FLOW_FAMILIES; f++) {
		enum fx_direction direction = families[f].direction;
		if (!(flow->seen & (1u << direction)))
			continue;
		int rc = make_room(encoder, out);
		if (rc)
			return rc;
		if (labels.built_epoch != encoder->request_epoch)
			build_series_labels(encoder, snapshot, &flow->key, &labels);

		/* __name__ sorts before every flow label ('_' < 'a'). */
		Prometheus__Label *own[MAX_OWN_LABELS];
		own[0] = &encoder->family_name[families[f].family];
		memcpy(&own[1], labels.sorted, labels.n * sizeof(own[0]));

		uint64_t bits;
		if (stale) {
			bits = FX_RW_STALE_NAN_BITS;
		} else {
			uint64_t counter =
				families[f].bytes ? flow->bytes[direction] : flow->packets[direction];
			bits = double_bits((double)counter);
		}
		add_series(encoder, own, 1 + labels.n, bits);
	}
	return 0;
}

static int compare_series_key(const void *key, const void *series)
{
	return fx_series_key_compare(key, &((const struct fx_series *)series)->key);
}

static int add_self_families(struct fx_rw_encoder *encoder, const struct fx_family_list *list,
			     struct fx_rw_requests *out)
{
	size_t n_families = fx_family_list_count(list);
	for (size_t f = 0; f < n_families; f++) {
		const struct fx_family *family = fx_family_list_get(list, f);
		for (size_t s = 0; s < family->n_samples; s++) {
			const struct fx_sample *sample = &family->samples[s];
			int rc = make_room(encoder, out);
			if (rc)
				return rc;
			/* Own labels: __name__ and the sample's non-empty labels, sorted by insertion. */
			Prometheus__Label *own[1 + FX_SAMPLE_MAX_LABELS];
			size_t n_own = 0;
			own[n_own++] = new_label(encoder, "__name__", family->name);
			for (size_t l = 0; l < sample->n_labels && l < FX_SAMPLE_MAX_LABELS; l++) {
				const struct fx_label *label = &sample->labels[l];
				if (!label->value || !label->value[0])
					continue;
				Prometheus__Label *added = new_label(encoder, label->name, label->value);
				size_t k = n_own;
				while (k > 0 && strcmp(own[k - 1]->name, added->name) > 0) {
					own[k] = own[k - 1];
					k--;
				}
				if (k > 0 && strcmp(own[k - 1]->name, added->name) == 0) {
					/* A duplicate name: keep the first, close the gap. */
					memmove(&own[k], &own[k + 1], (n_own - k) * sizeof(own[0]));
					encoder->n_labels--;
					continue;
				}
				own[k] = added;
				n_own++;
			}
			uint64_t bits = sample->is_integer ? double_bits((double)sample->integer)
							   : double_bits(sample->real);
			add_series(encoder, own, n_own, bits);
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
	encoder->n_samples = 0;
	encoder->n_labels = 0;
	encoder->n_label_ptrs = 0;
	encoder->n_numbers = 0;
	encoder->request_epoch++;

	for (size_t i = 0; i < snapshot->n_series; i++)
		if ((rc = add_flow_series(encoder, snapshot, &snapshot->series[i], false, out)))
			return rc;
	for (size_t i = 0; i < snapshot->n_expired; i++) {
		const struct fx_series *expired = &snapshot->expired[i];
		if (expired->updated_ms <= stale_since_ms)
			continue;
		/* A series that came back since it expired is live again: no marker. */
		if (snapshot->n_series && bsearch(&expired->key, snapshot->series, snapshot->n_series,
						  sizeof(*snapshot->series), compare_series_key))
			continue;
		if ((rc = add_flow_series(encoder, snapshot, expired, true, out)))
			return rc;
	}
	if (snapshot->self && (rc = add_self_families(encoder, snapshot->self, out)))
		return rc;
	return flush(encoder, out);
}
