/* Remote-write 2.0 encoder. The differential test: for random snapshots (label masks, AS names, interface
 * names, external labels that sort anywhere or clash, stale markers, self families, request sizes), the 2.0
 * bytes decoded with protobuf-c from the reference schema (proto/io/prometheus/write/v2/types.proto) give the
 * same requests, series, labels, values and timestamps as the 1.0 request of the same snapshot; every rule of
 * the spec the receiver relies on holds (symbols[0] = "", each string once and used, references valid,
 * labels sorted, unique and non-empty, metadata and start timestamps); and protobuf-c packs what it decoded
 * back to exactly the encoder's bytes, once each Sample's start_timestamp is moved in front as the encoder
 * writes it. Then the timing of 100,000 series (printed, never asserted). */
#include <math.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_iface_names.h"
#include "fx/clock.h"
#include "fx/iface_names.h"
#include "fx/rw2_encode.h"
#include "fx/rw_encode.h"
#include "fx/series_labels.h"
#include "io/prometheus/write/v2/types.pb-c.h"
#include "remote.pb-c.h"
#include "types.pb-c.h"

/* One TimeSeries of either version, as text: `{a="b",c="d"}` (all labels, __name__ included, in order). */
struct flat {
	char labels[640];
	uint64_t bits;
	int64_t timestamp;
	int64_t start; /* v2 */
	int type;      /* v2 */
	char help[64]; /* v2 */
};

struct flat_set {
	struct flat *items;
	size_t n, cap;
	size_t *request_sizes; /* TimeSeries per request */
	size_t n_requests;
	int violations;
};

static struct flat *next_flat(struct flat_set *set)
{
	if (set->n == set->cap) {
		set->cap = set->cap ? 2 * set->cap : 64;
		set->items = realloc(set->items, set->cap * sizeof(*set->items));
	}
	struct flat *flat = &set->items[set->n++];
	memset(flat, 0, sizeof(*flat));
	return flat;
}

static void add_request_size(struct flat_set *set, size_t n)
{
	set->request_sizes = realloc(set->request_sizes, (set->n_requests + 1) * sizeof(size_t));
	set->request_sizes[set->n_requests++] = n;
}

static uint8_t *unsnappy(const struct fx_rw_request *request, size_t *len)
{
	CHECK(snappy_uncompressed_length(request->body, request->len, len) == SNAPPY_OK);
	uint8_t *raw = malloc(*len ? *len : 1);
	CHECK(snappy_uncompress(request->body, request->len, (char *)raw, len) == SNAPPY_OK);
	return raw;
}

static void append_label(char *out, size_t size, const char *name, const char *value)
{
	size_t len = strlen(out);
	snprintf(out + len, size - len, "%s%s=\"%s\"", len ? "," : "", name, value);
}

static void flatten_v1(const struct fx_rw_requests *requests, struct flat_set *set)
{
	for (size_t r = 0; r < requests->n; r++) {
		size_t len;
		uint8_t *raw = unsnappy(&requests->items[r], &len);
		Prometheus__WriteRequest *request = prometheus__write_request__unpack(NULL, len, raw);
		CHECK(request != NULL);
		free(raw);
		if (!request)
			continue;
		add_request_size(set, request->n_timeseries);
		for (size_t i = 0; i < request->n_timeseries; i++) {
			const Prometheus__TimeSeries *series = request->timeseries[i];
			struct flat *flat = next_flat(set);
			for (size_t l = 0; l < series->n_labels; l++)
				append_label(flat->labels, sizeof(flat->labels), series->labels[l]->name,
					     series->labels[l]->value);
			CHECK_EQ_U64(series->n_samples, 1);
			memcpy(&flat->bits, &series->samples[0]->value, 8);
			flat->timestamp = series->samples[0]->timestamp;
		}
		prometheus__write_request__free_unpacked(request, NULL);
	}
}

/* The spec's rules for one decoded request; returns the violations. */
static int check_v2_rules(const Io__Prometheus__Write__V2__Request *request)
{
	int bad = 0;
	size_t n = request->n_symbols;
	bad += n == 0 || request->symbols[0][0] != '\0';
	char *used = calloc(n ? n : 1, 1);
	for (size_t i = 1; i < n; i++)
		for (size_t j = 1; j < i; j++)
			bad += strcmp(request->symbols[i], request->symbols[j]) == 0; /* each string once */
	for (size_t t = 0; t < request->n_timeseries; t++) {
		const Io__Prometheus__Write__V2__TimeSeries *series = request->timeseries[t];
		bad += series->n_labels_refs % 2 != 0 || series->n_labels_refs == 0;
		for (size_t l = 0; l < series->n_labels_refs; l++) {
			uint32_t ref = series->labels_refs[l];
			if (ref >= n || ref == 0) {
				bad++; /* out of the table, or an empty name or value */
				continue;
			}
			used[ref] = 1;
			if (l % 2 == 0 && l >= 2 && ref < n && series->labels_refs[l - 2] < n)
				bad += strcmp(request->symbols[series->labels_refs[l - 2]],
					      request->symbols[ref]) >= 0;
		}
		const Io__Prometheus__Write__V2__Metadata *metadata = series->metadata;
		bad += !metadata || metadata->type == 0 || metadata->help_ref >= n || metadata->unit_ref >= n;
		if (metadata) {
			used[metadata->help_ref] = 1;
			used[metadata->unit_ref] = 1;
		}
		bad += series->n_samples != 1 || series->n_histograms || series->n_exemplars;
	}
	for (size_t i = 1; i < n; i++)
		bad += !used[i]; /* no symbol the request does not use */
	free(used);
	return bad;
}

/* A varint of `buf` at *at (advanced past it). */
static uint64_t read_varint(const uint8_t *buf, size_t *at)
{
	uint64_t value = 0;
	for (unsigned shift = 0;; shift += 7) {
		uint8_t byte = buf[(*at)++];
		value |= (uint64_t)(byte & 0x7f) << shift;
		if (byte < 0x80)
			return value;
	}
}

/* Moves, in every Sample of protobuf-c's packing of a Request, the start_timestamp field (field 3, last in
 * field-number order) in front of the others, as the encoder writes it; the rest of the bytes stay. */
static void start_timestamp_first(uint8_t *buf, size_t len)
{
	for (size_t at = 0; at < len;) {
		uint64_t key = read_varint(buf, &at), n = read_varint(buf, &at);
		CHECK((key & 7) == 2);
		for (size_t ts = at;
		     key == 0x2a && ts < at + n;) { /* a TimeSeries: every field length-delimited */
			uint64_t ts_key = read_varint(buf, &ts), ts_len = read_varint(buf, &ts);
			size_t field = ts;
			for (size_t f = ts; ts_key == 0x12 && f < ts + ts_len;) { /* a Sample */
				field = f;
				uint64_t sample_key = read_varint(buf, &f);
				if (sample_key == 0x09)
					f += 8;
				else
					(void)read_varint(buf, &f);
				if (sample_key == 0x18 && field > ts) {
					uint8_t moved[16];
					memcpy(moved, buf + field, f - field);
					memmove(buf + ts + (f - field), buf + ts, field - ts);
					memcpy(buf + ts, moved, f - field);
				}
			}
			ts += ts_len;
		}
		at += n;
	}
}

static void flatten_v2(const struct fx_rw_requests *requests, struct flat_set *set, size_t *bytes_compared)
{
	for (size_t r = 0; r < requests->n; r++) {
		size_t len;
		uint8_t *raw = unsnappy(&requests->items[r], &len);
		Io__Prometheus__Write__V2__Request *request =
		    io__prometheus__write__v2__request__unpack(NULL, len, raw);
		CHECK(request != NULL);
		if (!request) {
			free(raw);
			continue;
		}
		size_t repacked_len = io__prometheus__write__v2__request__get_packed_size(request);
		uint8_t *repacked = malloc(repacked_len ? repacked_len : 1);
		io__prometheus__write__v2__request__pack(request, repacked);
		start_timestamp_first(repacked, repacked_len);
		CHECK(repacked_len == len && memcmp(repacked, raw, len) == 0);
		*bytes_compared += len;
		free(repacked);
		free(raw);
		set->violations += check_v2_rules(request);
		add_request_size(set, request->n_timeseries);
		CHECK_EQ_U64(request->n_timeseries, requests->items[r].n_series);
		for (size_t i = 0; i < request->n_timeseries; i++) {
			const Io__Prometheus__Write__V2__TimeSeries *series = request->timeseries[i];
			struct flat *flat = next_flat(set);
			for (size_t l = 0; l + 1 < series->n_labels_refs; l += 2)
				if (series->labels_refs[l + 1] < request->n_symbols &&
				    series->labels_refs[l] < request->n_symbols)
					append_label(flat->labels, sizeof(flat->labels),
						     request->symbols[series->labels_refs[l]],
						     request->symbols[series->labels_refs[l + 1]]);
			if (series->n_samples != 1)
				continue;
			memcpy(&flat->bits, &series->samples[0]->value, 8);
			flat->timestamp = series->samples[0]->timestamp;
			flat->start = series->samples[0]->start_timestamp;
			if (series->metadata && series->metadata->help_ref < request->n_symbols) {
				flat->type = series->metadata->type;
				snprintf(flat->help, sizeof(flat->help), "%s",
					 request->symbols[series->metadata->help_ref]);
			}
		}
		io__prometheus__write__v2__request__free_unpacked(request, NULL);
	}
}

static int compare_series_for_sort(const void *a, const void *b)
{
	return fx_series_key_compare(&((const struct fx_series *)a)->key,
				     &((const struct fx_series *)b)->key);
}

/* With the interface names (some of them) every fifth round. */
static struct fx_snapshot *random_snapshot(int round, uint64_t *state, struct fx_asn_map *names,
					   struct fx_iface_names *interfaces)
{
	static const char *const hosts[] = {"r1", "edge-2.example.net", "", "a\"b\\c\nd", "z"};
	static const uint32_t asns[] = {0, 1, 2, 70000, 4200000000u, 4294967295u};
	static const uint64_t values[] = {0, 1, 1000, UINT64_MAX, (UINT64_C(1) << 53) + 1};
	size_t n = (size_t)(round % 37), n_expired = n / 3;
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	snapshot->series = calloc(n + 1, sizeof(struct fx_series));
	snapshot->expired = calloc(n_expired + 1, sizeof(struct fx_series));
	snapshot->n_series = n;
	snapshot->n_expired = n_expired;
	snapshot->self = fx_family_list_create();
	snapshot->names = round % 3 ? fx_asn_map_ref(names) : NULL;
	snapshot->label_mask = round % 4 == 0 ? FX_LABEL_ALL : (uint32_t)(round * 2654435761u) & FX_LABEL_ALL;
	if (round % 5 == 2) {
		snapshot->label_mask |=
		    ((uint32_t)(round * 40503u) | FX_LABEL_IFACE_IN_NAME) & FX_LABEL_IFACE_NAMES;
		snapshot->interfaces = fx_iface_names_ref(interfaces);
	}
	for (size_t i = 0; i < n + n_expired; i++) {
		struct fx_series *series = i < n ? &snapshot->series[i] : &snapshot->expired[i - n];
		*state = *state * 6364136223846793005u + 1442695040888963407u;
		uint32_t r = (uint32_t)(*state >> 32);
		series->key = (struct fx_series_key){
		    .hostname = r & 1 ? hosts[r % 5] : NULL,
		    .as_src = asns[(r >> 3) % 6],
		    .as_dst = asns[(r >> 6) % 6],
		    .iface_in = r >> 20,
		    .iface_out = (r >> 9) % 3 == 0 ? 0 : r,
		    .present = (r >> 12) & FX_LABEL_ALL,
		};
		if (series->key.hostname)
			series->key.present |= FX_LABEL_HOSTNAME;
		else
			series->key.present &= ~(uint32_t)FX_LABEL_HOSTNAME;
		series->seen = 1 + (r >> 24) % 3;
		series->bytes[0] = values[(r >> 4) % 5];
		series->bytes[1] = values[(r >> 7) % 5];
		series->packets[0] = values[(r >> 10) % 5];
		series->packets[1] = r;
		series->updated_ms = 100 + (int64_t)(r % 3);
		series->created_ms = 1700000000000 + (int64_t)(r % 1000);
	}
	qsort(snapshot->series, n, sizeof(struct fx_series), compare_series_for_sort);
	CHECK(fx_family_begin(snapshot->self, "flow_exporter_x", "X.", FX_METRIC_GAUGE) == 0);
	struct fx_label self_labels[] = {{"zeta", "1"}, {"alpha", "2"}, {"job", "own"}, {"alpha", "dup"}};
	CHECK(fx_family_add_double(snapshot->self, round % 2 ? -0.0 : NAN, 4, self_labels) == 0);
	CHECK(fx_family_add_double(snapshot->self, 0.0, 0, NULL) == 0);
	CHECK(fx_family_begin(snapshot->self, "flow_exporter_y_total", "Y, a counter.", FX_METRIC_COUNTER) ==
	      0);
	CHECK(fx_family_add_u64(snapshot->self, UINT64_MAX, 1, self_labels) == 0);
	return snapshot;
}

/* The v2 fields a v1 request cannot show: metadata and start timestamps, against the snapshot. */
static void check_v2_extras(const struct flat_set *v2)
{
	for (size_t i = 0; i < v2->n; i++) {
		const struct flat *flat = &v2->items[i];
		bool flow = strstr(flat->labels, "__name__=\"flow_exporter_") == NULL;
		if (flow) {
			CHECK(flat->start >= 1700000000000 && flat->start < 1700000001000);
			CHECK_EQ_U64(flat->type, 1);
			CHECK(strstr(flat->help, "received") || strstr(flat->help, "transmitted") ||
			      strstr(flat->help, "transferred"));
		} else {
			CHECK_EQ_U64(flat->start, 0);
			CHECK(flat->type == 1 || flat->type == 2);
		}
	}
}

static void test_differential(void)
{
	static const char names_text[] = "1\tONE, US\n2\t, ZZ\n70000\tSEVENTY THOUSAND Networks, DE\n"
					 "4200000000\tPRIVATE-4B, ZZ\n";
	struct fx_asn_map *names = fx_asn_map_parse(names_text, strlen(names_text), NULL);
	CHECK(names != NULL);
	static const struct fx_label external_sets[][3] = {
	    {{"job", "j"}, {"instance", "i:1"}, {NULL, NULL}},
	    {{"Zone", "eu"}, {"_a", "x"}, {"zz", "last"}},
	    {{"hostname", "clash-host"}, {"iface_in", "clash-if"}, {"destination_as_a", "between"}},
	    {{"__name__", "never"}, {"A", "first"}, {"source_as_name", "clash-name"}},
	};
	static const size_t n_external[] = {2, 3, 3, 3};
	static const int64_t timestamps[] = {1700000000123, 0, -1, 1, INT64_MAX};
	uint64_t state = 7;
	size_t bytes_compared = 0, compared = 0, named = 0;
	struct fx_iface_names *interfaces = fx_test_iface_names();
	for (int round = 0; round < 300; round++) {
		struct fx_snapshot *snapshot = random_snapshot(round, &state, names, interfaces);
		size_t set_index = (size_t)round % 4;
		struct fx_rw_encoder_config config = {.external_labels = external_sets[set_index],
						      .n_external_labels = n_external[set_index],
						      .max_series_per_request = 1 + (size_t)round % 7};
		struct fx_rw_encoder *v1 = fx_rw_encoder_create(&config);
		struct fx_rw2_encoder *v2 = fx_rw2_encoder_create(&config);
		CHECK(v1 && v2);
		struct fx_rw_requests requests1 = {0}, requests2 = {0};
		int64_t t = timestamps[round % 5];
		CHECK(fx_rw_encode(v1, snapshot, t, 100, &requests1) == 0);
		CHECK(fx_rw2_encode(v2, snapshot, t, 100, &requests2) == 0);
		struct flat_set set1 = {0}, set2 = {0};
		flatten_v1(&requests1, &set1);
		flatten_v2(&requests2, &set2, &bytes_compared);
		CHECK_EQ_U64(set2.violations, 0);
		CHECK_EQ_U64(set1.n_requests, set2.n_requests);
		for (size_t r = 0; r < set1.n_requests && r < set2.n_requests; r++)
			CHECK_EQ_U64(set1.request_sizes[r], set2.request_sizes[r]);
		CHECK_EQ_U64(set1.n, set2.n);
		for (size_t i = 0; i < set1.n && i < set2.n; i++) {
			CHECK_STR(set1.items[i].labels, set2.items[i].labels);
			named += strstr(set2.items[i].labels, "iface_in_name=") != NULL;
			CHECK_EQ_U64(set1.items[i].bits, set2.items[i].bits);
			CHECK_EQ_U64((uint64_t)set1.items[i].timestamp, (uint64_t)set2.items[i].timestamp);
			compared++;
		}
		check_v2_extras(&set2);
		free(set1.items);
		free(set2.items);
		free(set1.request_sizes);
		free(set2.request_sizes);
		fx_rw_requests_free(&requests1);
		fx_rw_requests_free(&requests2);
		fx_rw_encoder_destroy(v1);
		fx_rw2_encoder_destroy(v2);
		fx_snapshot_destroy(snapshot);
	}
	CHECK(compared > 3000);
	CHECK(named > 100);
	fx_iface_names_unref(interfaces);
	CHECK(bytes_compared > 50000);
	fprintf(stderr,
		"differential: %zu TimeSeries identical in 1.0 and 2.0, %zu bytes matched protobuf-c\n",
		compared, bytes_compared);
	fx_asn_map_unref(names);
}

/* A stale marker keeps its series' start timestamp; an encoding split mid-series re-interns the tail. */
static void test_stale_and_split(void)
{
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	snapshot->series = calloc(1, sizeof(struct fx_series));
	snapshot->expired = calloc(1, sizeof(struct fx_series));
	snapshot->n_series = 1;
	snapshot->n_expired = 1;
	snapshot->self = fx_family_list_create();
	snapshot->label_mask = FX_LABEL_ALL;
	snapshot->series[0] = (struct fx_series){
	    .key = {.hostname = "r1", .as_src = 5, .present = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS},
	    .bytes = {10, 20},
	    .packets = {1, 2},
	    .seen = 3,
	    .created_ms = 1000};
	snapshot->expired[0] = snapshot->series[0];
	snapshot->expired[0].key.hostname = "gone";
	snapshot->expired[0].updated_ms = 50;
	snapshot->expired[0].created_ms = 900;
	struct fx_rw_encoder_config config = {.max_series_per_request = 3};
	struct fx_rw2_encoder *encoder = fx_rw2_encoder_create(&config);
	struct fx_rw_requests requests = {0};
	CHECK(fx_rw2_encode(encoder, snapshot, 2000, 0, &requests) == 0);
	CHECK_EQ_U64(requests.n, 3); /* 4 live + 4 stale = 8 TimeSeries, 3 a request */
	struct flat_set set = {0};
	size_t bytes = 0;
	flatten_v2(&requests, &set, &bytes);
	CHECK_EQ_U64(set.violations, 0);
	CHECK_EQ_U64(set.n, 8);
	for (size_t i = 0; i < set.n; i++) {
		bool stale = strstr(set.items[i].labels, "gone") != NULL;
		CHECK_EQ_U64(set.items[i].bits, stale ? FX_RW_STALE_NAN_BITS : set.items[i].bits);
		CHECK_EQ_U64(set.items[i].start, stale ? 900 : 1000);
		CHECK(strstr(set.items[i].labels, "hostname=") != NULL); /* the tail survived the split */
	}
	free(set.items);
	free(set.request_sizes);
	fx_rw_requests_free(&requests);
	fx_rw2_encoder_destroy(encoder);
	fx_snapshot_destroy(snapshot);
}

int main(void)
{
	test_differential();
	test_stale_and_split();
	return check_exit();
}
