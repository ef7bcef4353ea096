/* Remote-write encoder: round trips through snappy_uncompress and protobuf-c unpack of hand-made snapshots:
 * every label, value bit pattern and timestamp; stale markers; splitting; external labels; the interface
 * names among them; self families; the timing of 100,000 series (printed, never asserted). */
#include <math.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "test_iface_names.h"
#include "fx/buf.h"
#include "fx/clock.h"
#include "fx/iface_names.h"
#include "fx/rw_encode.h"
#include "fx/series_labels.h"
#include "remote.pb-c.h"
#include "types.pb-c.h"

/* Every decoded TimeSeries as `name{a="b",c="d"}` with its value bits and timestamp. */
struct decoded {
	char text[512];
	uint64_t bits;
	int64_t timestamp;
};

struct decoded_set {
	struct decoded *items;
	size_t n, cap;
	size_t n_requests;
	size_t max_series_in_request;
	int violations;	       /* unsorted / duplicate / empty / missing __name__ / not one sample */
	size_t bytes_compared; /* checked byte for byte against protobuf-c */
};

static uint64_t bits_of(double value)
{
	uint64_t bits;
	memcpy(&bits, &value, sizeof(bits));
	return bits;
}

static void decode_request(const struct fx_rw_request *request, struct decoded_set *set)
{
	size_t raw_len = 0;
	CHECK(snappy_uncompressed_length(request->body, request->len, &raw_len) == SNAPPY_OK);
	char *raw = malloc(raw_len ? raw_len : 1);
	CHECK(snappy_uncompress(request->body, request->len, raw, &raw_len) == SNAPPY_OK);
	Prometheus__WriteRequest *write_request =
	    prometheus__write_request__unpack(NULL, raw_len, (const uint8_t *)raw);
	CHECK(write_request != NULL);
	if (!write_request) {
		free(raw);
		return;
	}
	/* protobuf-c is the reference: packing what it decoded gives back exactly the encoder's bytes. */
	size_t repacked_len = prometheus__write_request__get_packed_size(write_request);
	CHECK_EQ_U64(repacked_len, raw_len);
	uint8_t *repacked = malloc(repacked_len ? repacked_len : 1);
	CHECK_EQ_U64(prometheus__write_request__pack(write_request, repacked), repacked_len);
	CHECK(repacked_len == raw_len && memcmp(repacked, raw, raw_len) == 0);
	set->bytes_compared += raw_len;
	free(repacked);
	free(raw);
	set->n_requests++;
	CHECK_EQ_U64(write_request->n_timeseries, request->n_series);
	if (write_request->n_timeseries > set->max_series_in_request)
		set->max_series_in_request = write_request->n_timeseries;
	for (size_t i = 0; i < write_request->n_timeseries; i++) {
		const Prometheus__TimeSeries *series = write_request->timeseries[i];
		if (set->n == set->cap) {
			set->cap = set->cap ? set->cap * 2 : 64;
			set->items = realloc(set->items, set->cap * sizeof(*set->items));
		}
		struct decoded *d = &set->items[set->n++];
		const char *name = NULL;
		for (size_t l = 0; l < series->n_labels; l++) {
			if (strcmp(series->labels[l]->name, "__name__") == 0)
				name = series->labels[l]->value;
			if (!series->labels[l]->value[0])
				set->violations++;
			if (l > 0 && strcmp(series->labels[l - 1]->name, series->labels[l]->name) >= 0)
				set->violations++;
		}
		if (!name)
			set->violations++;
		size_t len = (size_t)snprintf(d->text, sizeof(d->text), "%s{", name ? name : "?");
		int first = 1;
		for (size_t l = 0; l < series->n_labels; l++) {
			if (strcmp(series->labels[l]->name, "__name__") == 0)
				continue;
			len += (size_t)snprintf(d->text + len, sizeof(d->text) - len, "%s%s=\"%s\"",
						first ? "" : ",", series->labels[l]->name,
						series->labels[l]->value);
			first = 0;
		}
		snprintf(d->text + len, sizeof(d->text) - len, "}");
		if (series->n_samples != 1) {
			set->violations++;
			continue;
		}
		d->bits = bits_of(series->samples[0]->value);
		d->timestamp = series->samples[0]->timestamp;
	}
	prometheus__write_request__free_unpacked(write_request, NULL);
}

static struct decoded_set decode_all(const struct fx_rw_requests *requests)
{
	struct decoded_set set = {0};
	for (size_t i = 0; i < requests->n; i++)
		decode_request(&requests->items[i], &set);
	return set;
}

static const struct decoded *find(const struct decoded_set *set, const char *text)
{
	const struct decoded *found = NULL;
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->items[i].text, text) == 0) {
			CHECK(found == NULL); /* unique */
			found = &set->items[i];
		}
	if (!found)
		fprintf(stderr, "not found: %s\n", text);
	return found;
}

static void check_value(const struct decoded_set *set, const char *text, double value, int64_t timestamp)
{
	const struct decoded *d = find(set, text);
	CHECK(d != NULL);
	if (!d)
		return;
	CHECK_EQ_U64(d->bits, bits_of(value));
	CHECK_EQ_U64((uint64_t)d->timestamp, (uint64_t)timestamp);
}

static struct fx_snapshot *make_snapshot(size_t n_series, size_t n_expired)
{
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	snapshot->series = calloc(n_series ? n_series : 1, sizeof(struct fx_series));
	snapshot->expired = calloc(n_expired ? n_expired : 1, sizeof(struct fx_series));
	snapshot->n_series = n_series;
	snapshot->n_expired = n_expired;
	snapshot->self = fx_family_list_create();
	snapshot->label_mask = FX_LABEL_ALL;
	return snapshot;
}

static const char asn_text[] = "15169\tGOOGLE, US\n13335\tCLOUDFLARENET, US\n64500\t, ZZ\n";

static int compare_series_for_sort(const void *a, const void *b)
{
	return fx_series_key_compare(&((const struct fx_series *)a)->key,
				     &((const struct fx_series *)b)->key);
}

/* The round trip's snapshot: live series b, c, a (sorted), expired d (after `since` 5000: a stale marker),
 * e (at since: none) and a copy of a (live again: none); self families with a label, NaN and empty values. */
static struct fx_snapshot *round_trip_snapshot(void)
{
	struct fx_snapshot *snapshot = make_snapshot(3, 3);
	snapshot->taken_ms = 1700000000000;
	snapshot->names = fx_asn_map_parse(asn_text, strlen(asn_text), NULL);
	CHECK(snapshot->names != NULL);
	CHECK_STR(fx_asn_map_lookup(snapshot->names, 15169), "GOOGLE");

	/* Sorted below, as a snapshot is (fx_series_key_compare). */
	struct fx_series *b = &snapshot->series[0];
	b->key = (struct fx_series_key){
	    .as_src = 0, .as_dst = 13335, .present = FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS};
	b->seen = 3;
	b->bytes[FX_DIR_RECEIVE] = (UINT64_C(1) << 53) + 1; /* not exact in a double: rounded at encoding */
	b->packets[FX_DIR_RECEIVE] = 7;
	b->bytes[FX_DIR_TRANSMIT] = 0;
	b->packets[FX_DIR_TRANSMIT] = 0;
	struct fx_series *c = &snapshot->series[1];
	c->key = (struct fx_series_key){
	    .hostname = "", .iface_out = 4294967295u, .present = FX_LABEL_HOSTNAME | FX_LABEL_IFACE_OUT};
	c->seen = 1u << FX_DIR_TRANSMIT;
	c->bytes[FX_DIR_TRANSMIT] = 5;
	c->packets[FX_DIR_TRANSMIT] = 1;
	struct fx_series *a = &snapshot->series[2];
	a->key = (struct fx_series_key){.hostname = "r1",
					.as_src = 15169,
					.as_dst = 64500,
					.iface_in = 3,
					.iface_out = 0,
					.present = FX_LABEL_ALL};
	a->seen = 1u << FX_DIR_RECEIVE;
	a->bytes[FX_DIR_RECEIVE] = 1000;
	a->packets[FX_DIR_RECEIVE] = 10;

	/* Expired: d after since (marker), e at since (none), the live series a (none: it came back). */
	struct fx_series *d = &snapshot->expired[0];
	d->key = (struct fx_series_key){
	    .hostname = "gone", .as_src = 15169, .present = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS};
	d->seen = 1u << FX_DIR_TRANSMIT;
	d->updated_ms = 5001;
	d->bytes[FX_DIR_TRANSMIT] = 99;
	snapshot->expired[1] = *d;
	snapshot->expired[1].key.hostname = "old";
	snapshot->expired[1].updated_ms = 5000;
	snapshot->expired[2] = *a;
	snapshot->expired[2].updated_ms = 6000;
	qsort(snapshot->series, snapshot->n_series, sizeof(*snapshot->series), compare_series_for_sort);

	CHECK(fx_family_begin(snapshot->self, "flow_exporter_records_total", "Records.", FX_METRIC_COUNTER) ==
	      0);
	struct fx_label topic = {"topic", "pmacct"};
	CHECK(fx_family_add_u64(snapshot->self, 42, 1, &topic) == 0);
	struct fx_label hostname_label = {"hostname", "mine"}; /* beats the external label of that name */
	CHECK(fx_family_begin(snapshot->self, "flow_exporter_ratio", "A gauge.", FX_METRIC_GAUGE) == 0);
	CHECK(fx_family_add_double(snapshot->self, NAN, 1, &hostname_label) == 0);
	CHECK(fx_family_add_double(snapshot->self, -NAN, 0, NULL) == 0);
	CHECK(fx_family_begin(snapshot->self, "flow_exporter_empty_value", "Empty.", FX_METRIC_GAUGE) == 0);
	struct fx_label empty = {"reason", ""};
	CHECK(fx_family_add_double(snapshot->self, 1.5, 1, &empty) == 0);

	return snapshot;
}

#define EXT "instance=\"host:9590\",job=\"flow-exporter\""

/* The live flow series b, c and a of round_trip_snapshot, encoded at t. */
static void check_round_trip_flows(const struct decoded_set *set, int64_t t)
{
	/* "Zone" sorts before "__name__" (uppercase < '_'); it is printed after the name here only because
	 * the test's text form lists __name__ outside the braces. Sortedness is checked on the wire order. */
	check_value(set,
		    "flow_receive_bytes_total{Zone=\"eu\",destination_as=\"13335\",destination_as_name="
		    "\"CLOUDFLARENET\"," EXT ",source_as=\"0\"}",
		    (double)((UINT64_C(1) << 53) + 1), t);
	check_value(set,
		    "flow_receive_packets_total{Zone=\"eu\",destination_as=\"13335\",destination_as_name="
		    "\"CLOUDFLARENET\"," EXT ",source_as=\"0\"}",
		    7, t);
	check_value(set,
		    "flow_transmit_bytes_total{Zone=\"eu\",destination_as=\"13335\",destination_as_name="
		    "\"CLOUDFLARENET\"," EXT ",source_as=\"0\"}",
		    0, t);
	check_value(set,
		    "flow_transmit_packets_total{Zone=\"eu\",destination_as=\"13335\",destination_as_name="
		    "\"CLOUDFLARENET\"," EXT ",source_as=\"0\"}",
		    0, t);
	/* c: empty hostname left out; iface_out at its maximum. */
	check_value(set, "flow_transmit_bytes_total{Zone=\"eu\",iface_out=\"4294967295\"," EXT "}", 5, t);
	check_value(set, "flow_transmit_packets_total{Zone=\"eu\",iface_out=\"4294967295\"," EXT "}", 1, t);
	/* a: every label; AS 64500's empty name is left out; iface_out 0 is a value. */
	check_value(
	    set,
	    "flow_receive_bytes_total{Zone=\"eu\",destination_as=\"64500\",hostname=\"r1\",iface_in=\"3\","
	    "iface_out=\"0\"," EXT ",source_as=\"15169\",source_as_name=\"GOOGLE\"}",
	    1000, t);
	check_value(
	    set,
	    "flow_receive_packets_total{Zone=\"eu\",destination_as=\"64500\",hostname=\"r1\",iface_in=\"3\","
	    "iface_out=\"0\"," EXT ",source_as=\"15169\",source_as_name=\"GOOGLE\"}",
	    10, t);
}

/* The stale markers of d, and the self families, encoded at t. */
static void check_round_trip_stale_and_self(const struct decoded_set *set, int64_t t)
{
	/* d: stale markers with the exact bits, for the families it had. */
	const struct decoded *stale = find(set, "flow_transmit_bytes_total{Zone=\"eu\",hostname=\"gone\"," EXT
						",source_as=\"15169\",source_as_name=\"GOOGLE\"}");
	CHECK(stale && stale->bits == FX_RW_STALE_NAN_BITS && stale->timestamp == t);
	stale = find(set, "flow_transmit_packets_total{Zone=\"eu\",hostname=\"gone\"," EXT
			  ",source_as=\"15169\",source_as_name=\"GOOGLE\"}");
	CHECK(stale && stale->bits == FX_RW_STALE_NAN_BITS);
	size_t n_stale = 0;
	for (size_t i = 0; i < set->n; i++)
		n_stale += set->items[i].bits == FX_RW_STALE_NAN_BITS;
	CHECK_EQ_U64(n_stale, 2);
	/* Self families: the sample's hostname label wins over nothing; NaN gauges are not stale markers. */
	check_value(set, "flow_exporter_records_total{Zone=\"eu\"," EXT ",topic=\"pmacct\"}", 42, t);
	const struct decoded *nan_gauge =
	    find(set, "flow_exporter_ratio{Zone=\"eu\",hostname=\"mine\"," EXT "}");
	CHECK(nan_gauge && nan_gauge->bits == FX_RW_NAN_BITS);
	nan_gauge = find(set, "flow_exporter_ratio{Zone=\"eu\"," EXT "}");
	CHECK(nan_gauge && nan_gauge->bits == FX_RW_NAN_BITS);
	check_value(set, "flow_exporter_empty_value{Zone=\"eu\"," EXT "}", 1.5, t);
}

/* Encoded again at t + 1 with nothing expired after since and a narrower label mask. */
static void check_round_trip_narrow_mask(struct fx_rw_encoder *encoder, struct fx_snapshot *snapshot,
					 int64_t t)
{
	struct fx_rw_requests requests = {0};
	struct decoded_set set;
	/* Nothing expired after since: no stale marker. A narrower label mask drops labels. */
	snapshot->label_mask = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS_NAME;
	CHECK(fx_rw_encode(encoder, snapshot, t + 1, 6000, &requests) == 0);
	set = decode_all(&requests);
	CHECK_EQ_U64(set.n, 12);
	CHECK_EQ_U64(set.violations, 0);
	check_value(&set,
		    "flow_receive_bytes_total{Zone=\"eu\",hostname=\"r1\"," EXT ",source_as_name=\"GOOGLE\"}",
		    1000, t + 1);
	/* b (no hostname) and c (empty hostname) now carry the same labels; a store with this mask would have
	 * counted them as one series, as its key keeps only the labels of the mask. */
	check_value(&set, "flow_receive_packets_total{Zone=\"eu\"," EXT "}", 7, t + 1);
	for (size_t i = 0; i < set.n; i++)
		CHECK(set.items[i].bits != FX_RW_STALE_NAN_BITS);
	free(set.items);
	fx_rw_requests_free(&requests);
}

static void test_round_trip(void)
{
	struct fx_snapshot *snapshot = round_trip_snapshot();
	struct fx_label external[] = {{"job", "flow-exporter"}, {"instance", "host:9590"}, {"Zone", "eu"}};
	struct fx_rw_encoder_config config = {
	    .external_labels = external, .n_external_labels = 3, .max_series_per_request = 2000};
	struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
	CHECK(encoder != NULL);
	struct fx_rw_requests requests = {0};
	int64_t t = 1700000000123;
	CHECK(fx_rw_encode(encoder, snapshot, t, 5000, &requests) == 0);
	CHECK_EQ_U64(requests.n, 1);
	struct decoded_set set = decode_all(&requests);
	CHECK_EQ_U64(set.violations, 0);
	/* b: 4, c: 2, a: 2, d stale: 2, self: 4 */
	CHECK_EQ_U64(set.n, 14);
	CHECK_EQ_U64(requests.items[0].n_samples, 14);
	CHECK_EQ_U64((uint64_t)requests.items[0].timestamp_ms, (uint64_t)t);

	check_round_trip_flows(&set, t);
	check_round_trip_stale_and_self(&set, t);
	free(set.items);
	fx_rw_requests_free(&requests);
	check_round_trip_narrow_mask(encoder, snapshot, t);
	fx_rw_encoder_destroy(encoder);
	fx_snapshot_destroy(snapshot);
}

/* Two ASNs that share a slot of the AS cache (series_labels.c; 15169 and 4223) as the source and destination
 * of one series: each keeps its own number and name. */
static void test_asn_cache_collision(void)
{
	static const char text[] = "15169\tGOOGLE, US\n4223\tCOLLIDING-AS, ZZ\n";
	struct fx_snapshot *snapshot = make_snapshot(2, 0);
	snapshot->names = fx_asn_map_parse(text, strlen(text), NULL);
	CHECK(snapshot->names != NULL);
	uint32_t pairs[2][2] = {{4223, 15169}, {15169, 4223}};
	for (size_t i = 0; i < 2; i++) {
		struct fx_series *series = &snapshot->series[i];
		series->key = (struct fx_series_key){.as_src = pairs[i][0],
						     .as_dst = pairs[i][1],
						     .present = FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS};
		series->seen = 1u << FX_DIR_RECEIVE;
		series->bytes[FX_DIR_RECEIVE] = 100 + i;
		series->packets[FX_DIR_RECEIVE] = 1;
	}
	struct fx_rw_encoder_config config = {.max_series_per_request = 2000};
	struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
	struct fx_rw_requests requests = {0};
	CHECK(fx_rw_encode(encoder, snapshot, 1000, 0, &requests) == 0);
	struct decoded_set set = decode_all(&requests);
	check_value(&set,
		    "flow_receive_bytes_total{destination_as=\"15169\",destination_as_name=\"GOOGLE\","
		    "source_as=\"4223\",source_as_name=\"COLLIDING-AS\"}",
		    100, 1000);
	check_value(&set,
		    "flow_receive_bytes_total{destination_as=\"4223\",destination_as_name=\"COLLIDING-AS\","
		    "source_as=\"15169\",source_as_name=\"GOOGLE\"}",
		    101, 1000);
	free(set.items);
	fx_rw_requests_free(&requests);
	fx_rw_encoder_destroy(encoder);
	fx_snapshot_destroy(snapshot);
}

static void fill_series(struct fx_snapshot *snapshot, char (*hostnames)[16], size_t n_hosts)
{
	for (size_t i = 0; i < snapshot->n_series; i++) {
		struct fx_series *series = &snapshot->series[i];
		series->key = (struct fx_series_key){
		    .hostname = hostnames[i % n_hosts],
		    .as_src = (uint32_t)(i % 1000 == 0 ? 15169 : 64512 + i / 64),
		    .as_dst = (uint32_t)(13335 + i % 7),
		    .iface_in = (uint32_t)(i % 64),
		    .iface_out = (uint32_t)(i % 13),
		    .present = FX_LABEL_ALL,
		};
		series->seen = 1u << (i % 2);
		series->bytes[i % 2] = 1000000 + i * 1499;
		series->packets[i % 2] = 1000 + i;
	}
}

static void test_split(void)
{
	static char hostnames[4][16] = {"r1", "r2", "r3", "r4"};
	struct fx_snapshot *snapshot = make_snapshot(10, 0);
	fill_series(snapshot, hostnames, 4);
	snapshot->series[3].seen = 3;
	struct fx_rw_encoder_config config = {.max_series_per_request = 3};
	struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
	struct fx_rw_requests requests = {0};
	CHECK(fx_rw_encode(encoder, snapshot, 1000, 0, &requests) == 0);
	/* 10 series x 2 families + 2 more for the one with both directions = 22 TimeSeries -> 8 requests. */
	CHECK_EQ_U64(requests.n, 8);
	struct decoded_set set = decode_all(&requests);
	CHECK_EQ_U64(set.n, 22);
	CHECK_EQ_U64(set.max_series_in_request, 3);
	CHECK_EQ_U64(set.violations, 0);
	size_t total = 0;
	for (size_t i = 0; i < requests.n; i++) {
		total += requests.items[i].n_series;
		CHECK(requests.items[i].n_series <= 3);
	}
	CHECK_EQ_U64(total, 22);
	/* A series whose families straddle two requests keeps every label in both. */
	for (size_t i = 0; i < set.n; i++)
		CHECK(strstr(set.items[i].text, "hostname=") != NULL &&
		      strstr(set.items[i].text, "source_as=") != NULL);
	free(set.items);
	fx_rw_requests_free(&requests);

	/* An empty snapshot gives no request. */
	struct fx_snapshot *empty = make_snapshot(0, 0);
	CHECK(fx_rw_encode(encoder, empty, 1000, 0, &requests) == 0);
	CHECK_EQ_U64(requests.n, 0);
	fx_snapshot_destroy(empty);
	fx_rw_encoder_destroy(encoder);
	fx_snapshot_destroy(snapshot);
}

static void test_timing(void)
{
	static char hostnames[64][16];
	for (size_t i = 0; i < 64; i++)
		snprintf(hostnames[i], sizeof(hostnames[i]), "router-%02zu", i);
	struct fx_snapshot *snapshot = make_snapshot(100000, 0);
	fill_series(snapshot, hostnames, 64);
	snapshot->names = fx_asn_map_parse(asn_text, strlen(asn_text), NULL);
	struct fx_label external[] = {{"job", "flow-exporter"}, {"instance", "collector-1.example.net:9590"}};
	struct fx_rw_encoder_config config = {
	    .external_labels = external, .n_external_labels = 2, .max_series_per_request = 2000};
	struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
	struct fx_rw_requests requests = {0};
	double best = 1e9;
	size_t bytes = 0, samples = 0;
	for (int round = 0; round < 3; round++) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		CHECK(fx_rw_encode(encoder, snapshot, 1000 + round, 0, &requests) == 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (ms < best)
			best = ms;
		bytes = samples = 0;
		for (size_t i = 0; i < requests.n; i++) {
			bytes += requests.items[i].len;
			samples += requests.items[i].n_samples;
		}
		CHECK_EQ_U64(samples, 200000);
		if (round < 2)
			fx_rw_requests_free(&requests);
	}
	struct decoded_set set = decode_all(&requests);
	CHECK_EQ_U64(set.n, 200000);
	CHECK_EQ_U64(set.violations, 0);
	CHECK_EQ_U64(set.max_series_in_request, 2000);
	free(set.items);
	fprintf(
	    stderr,
	    "timing: 100000 flow series (200000 samples, 9 labels each) in %zu requests: best of 3 %.1f ms, "
	    "%zu bytes after snappy, %.1f bytes/sample\n",
	    requests.n, best, bytes, (double)bytes / (double)samples);
	fx_rw_requests_free(&requests);
	fx_rw_encoder_destroy(encoder);
	fx_snapshot_destroy(snapshot);
}

/* The interface names inline: sorted among the flow labels and the external labels that fall between them
 * (iface_in_m between iface_in_description and iface_in_name, instance after every iface_*); absent for an
 * unknown index; the encoder follows the catalog from a snapshot without them to one with them and back. */
static void test_interface_names(void)
{
	struct fx_iface_map *file = NULL;
	struct fx_parse_error error = {0};
	static const char text[] = "exporter,ifindex,name,description,speed\n"
				   "r1,537,et-0/0/1,TRANSIT,\nr1,2,ge-0/0/2,,\n";
	CHECK(fx_iface_map_parse(text, sizeof(text) - 1, &file, &error) == 0);
	struct fx_snapshot *snapshot = make_snapshot(2, 0);
	uint32_t present = FX_LABEL_ALL;
	snapshot->series[0].key = (struct fx_series_key){"r1", 64500, 15169, 537, 2, present, 0, {0}};
	snapshot->series[0].bytes[FX_DIR_TRANSMIT] = 1000;
	snapshot->series[0].seen = 1u << FX_DIR_TRANSMIT;
	snapshot->series[1].key = (struct fx_series_key){"r1", 64500, 15169, 2, 999, present, 0, {0}};
	snapshot->series[1].bytes[FX_DIR_TRANSMIT] = 30;
	snapshot->series[1].seen = 1u << FX_DIR_TRANSMIT;
	snapshot->names = fx_asn_map_parse(asn_text, sizeof(asn_text) - 1, NULL);
	struct fx_label external[] = {{"job", "j"}, {"instance", "i:1"}, {"iface_in_m", "between"}};
	struct fx_rw_encoder_config config = {
	    .external_labels = external, .n_external_labels = 3, .max_series_per_request = 2000};
	struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
	for (int round = 0; round < 3; round++) {
		bool named = round == 1;
		fx_iface_names_unref(snapshot->interfaces);
		snapshot->interfaces =
		    named ? fx_iface_names_create(fx_iface_map_ref(file), NULL, NULL) : NULL;
		snapshot->label_mask = FX_LABEL_ALL | (named ? FX_LABEL_IFACE_NAMES : 0);
		struct fx_rw_requests requests = {0};
		CHECK(fx_rw_encode(encoder, snapshot, 1000 + round, 0, &requests) == 0);
		struct decoded_set set = decode_all(&requests);
		CHECK_EQ_U64(set.violations, 0);
		CHECK_EQ_U64(set.n, 4);
		check_value(
		    &set,
		    named
			? "flow_transmit_bytes_total{destination_as=\"15169\",destination_as_name=\"GOOGLE\","
			  "hostname=\"r1\",iface_in=\"537\",iface_in_description=\"TRANSIT\",iface_in_m="
			  "\"between\","
			  "iface_in_name=\"et-0/0/1\",iface_out=\"2\",iface_out_name=\"ge-0/0/"
			  "2\",instance=\"i:1\","
			  "job=\"j\",source_as=\"64500\"}"
			: "flow_transmit_bytes_total{destination_as=\"15169\",destination_as_name=\"GOOGLE\","
			  "hostname=\"r1\",iface_in=\"537\",iface_in_m=\"between\",iface_out=\"2\",instance="
			  "\"i:1\","
			  "job=\"j\",source_as=\"64500\"}",
		    1000, 1000 + round);
		check_value(
		    &set,
		    named
			? "flow_transmit_bytes_total{destination_as=\"15169\",destination_as_name=\"GOOGLE\","
			  "hostname=\"r1\",iface_in=\"2\",iface_in_m=\"between\",iface_in_name=\"ge-0/0/2\","
			  "iface_out=\"999\",instance=\"i:1\",job=\"j\",source_as=\"64500\"}"
			: "flow_transmit_bytes_total{destination_as=\"15169\",destination_as_name=\"GOOGLE\","
			  "hostname=\"r1\",iface_in=\"2\",iface_in_m=\"between\",iface_out=\"999\",instance="
			  "\"i:1\","
			  "job=\"j\",source_as=\"64500\"}",
		    30, 1000 + round);
		free(set.items);
		fx_rw_requests_free(&requests);
	}
	fx_rw_encoder_destroy(encoder);
	fx_snapshot_destroy(snapshot);
	fx_iface_map_unref(file);
}

/* Many random snapshots (label masks, absent labels, AS names with and without, external labels before,
 * between and clashing with the flow labels, zero, -0.0, NaN and huge values, negative and zero
 * timestamps, stale markers, small requests): every request equals protobuf-c's packing of its decoding
 * byte for byte (checked in decode_request), and decodes to the expected TimeSeries count. */
static void test_random_snapshots_match_protobuf_c(void)
{
	static const char *const hosts[] = {"r1", "edge-2.example.net", "", "a\"b\\c\nd", "z"};
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
	struct fx_iface_names *interfaces = fx_test_iface_names();
	uint64_t state = 42;
	size_t total_bytes = 0;
	for (int round = 0; round < 200; round++) {
		size_t n = (size_t)(round % 37);
		struct fx_snapshot *snapshot = make_snapshot(n, n / 3);
		snapshot->names = round % 3 ? fx_asn_map_ref(names) : NULL;
		snapshot->label_mask =
		    round % 4 == 0 ? FX_LABEL_ALL : (uint32_t)(round * 2654435761u) & FX_LABEL_ALL;
		/* Every fifth round with interface names (some of them), looked up in SNMP-like names. */
		if (round % 5 == 2) {
			snapshot->label_mask |=
			    ((uint32_t)(round * 40503u) | FX_LABEL_IFACE_IN_NAME) & FX_LABEL_IFACE_NAMES;
			snapshot->interfaces = fx_iface_names_ref(interfaces);
		}
		for (size_t i = 0; i < n + n / 3; i++) {
			struct fx_series *series = i < n ? &snapshot->series[i] : &snapshot->expired[i - n];
			state = state * 6364136223846793005u + 1442695040888963407u;
			uint32_t r = (uint32_t)(state >> 32);
			static const uint32_t asns[] = {0, 1, 2, 70000, 4200000000u, 4294967295u};
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
			static const uint64_t values[] = {0, 1, 1000, UINT64_MAX, (UINT64_C(1) << 53) + 1};
			series->bytes[0] = values[(r >> 4) % 5];
			series->bytes[1] = values[(r >> 7) % 5];
			series->packets[0] = values[(r >> 10) % 5];
			series->packets[1] = r;
			series->updated_ms = 100 + (int64_t)(r % 3);
		}
		qsort(snapshot->series, n, sizeof(struct fx_series), compare_series_for_sort);
		CHECK(fx_family_begin(snapshot->self, "flow_exporter_x", "X.", FX_METRIC_GAUGE) == 0);
		struct fx_label self_labels[] = {
		    {"zeta", "1"}, {"alpha", "2"}, {"job", "own"}, {"alpha", "dup"}};
		CHECK(fx_family_add_double(snapshot->self, round % 2 ? -0.0 : NAN, 4, self_labels) == 0);
		CHECK(fx_family_add_double(snapshot->self, 0.0, 0, NULL) == 0);
		CHECK(fx_family_add_u64(snapshot->self, UINT64_MAX, 1, self_labels) == 0);

		size_t set_index = (size_t)round % 4;
		struct fx_rw_encoder_config config = {.external_labels = external_sets[set_index],
						      .n_external_labels = n_external[set_index],
						      .max_series_per_request = 1 + (size_t)round % 7};
		struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
		CHECK(encoder != NULL);
		struct fx_rw_requests requests = {0};
		CHECK(fx_rw_encode(encoder, snapshot, timestamps[round % 5], 100, &requests) == 0);
		size_t expected = 3;
		for (size_t i = 0; i < n; i++)
			expected += 2 * (size_t)__builtin_popcount(snapshot->series[i].seen & 3u);
		struct decoded_set set = decode_all(&requests);
		CHECK(set.n >= expected);
		CHECK_EQ_U64(set.violations, 0);
		total_bytes += set.bytes_compared;
		free(set.items);
		fx_rw_requests_free(&requests);
		fx_rw_encoder_destroy(encoder);
		fx_snapshot_destroy(snapshot);
	}
	CHECK(total_bytes > 100000);
	fx_asn_map_unref(names);
	fx_iface_names_unref(interfaces);
}

/* A series past the encoder's bounds (a hostname longer than every flow label at its maximum) fails the
 * encode with FX_RW_E_TOO_BIG; the encoder then encodes the next snapshot as before. */
static void test_bound(void)
{
	size_t len = (2 * FX_SERIES_LABELS_MAX + 3) * FX_SERIES_LABEL_VALUE_MAX;
	char *huge = malloc(len + 1);
	CHECK(huge != NULL);
	memset(huge, 'h', len);
	huge[len] = '\0';
	struct fx_snapshot *snapshot = make_snapshot(1, 0);
	snapshot->series[0].key = (struct fx_series_key){.hostname = huge, .present = FX_LABEL_HOSTNAME};
	snapshot->series[0].seen = 1u << FX_DIR_RECEIVE;
	struct fx_rw_encoder_config config = {.max_series_per_request = 2000};
	struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
	struct fx_rw_requests requests = {0};
	CHECK(fx_rw_encode(encoder, snapshot, 1, 0, &requests) == FX_RW_E_TOO_BIG);
	CHECK(strstr(fx_rw_strerror(FX_RW_E_TOO_BIG), "bound") != NULL);
	fx_rw_requests_free(&requests);
	snapshot->series[0].key.hostname = "r1";
	CHECK(fx_rw_encode(encoder, snapshot, 2, 0, &requests) == 0);
	CHECK_EQ_U64(requests.n, 1);
	fx_rw_requests_free(&requests);
	fx_rw_encoder_destroy(encoder);
	fx_snapshot_destroy(snapshot);
	free(huge);
}

/* The metadata request: only metadata, decoded by protobuf-c: the four flow families as counters with their
 * help and unit, then the self families with a sample (type, help). */
static void test_metadata(void)
{
	struct fx_snapshot *snapshot = make_snapshot(0, 0);
	CHECK(fx_family_begin(snapshot->self, "flow_exporter_records_total", "Records.", FX_METRIC_COUNTER) ==
	      0);
	CHECK(fx_family_add_u64(snapshot->self, 1, 0, NULL) == 0);
	CHECK(fx_family_begin(snapshot->self, "flow_exporter_series", "Series held.", FX_METRIC_GAUGE) == 0);
	CHECK(fx_family_add_u64(snapshot->self, 1, 0, NULL) == 0);
	CHECK(fx_family_begin(snapshot->self, "flow_exporter_nothing", "No sample.", FX_METRIC_GAUGE) == 0);
	struct fx_rw_encoder_config config = {.max_series_per_request = 2000};
	struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
	struct fx_rw_requests requests = {0};
	CHECK(fx_rw_encode_metadata(encoder, snapshot, &requests) == 0);
	CHECK_EQ_U64(requests.n, 1);
	CHECK_EQ_U64(requests.items[0].n_samples, 0);
	size_t raw_len = 0;
	CHECK(snappy_uncompressed_length(requests.items[0].body, requests.items[0].len, &raw_len) ==
	      SNAPPY_OK);
	char *raw = malloc(raw_len);
	CHECK(snappy_uncompress(requests.items[0].body, requests.items[0].len, raw, &raw_len) == SNAPPY_OK);
	Prometheus__WriteRequest *request =
	    prometheus__write_request__unpack(NULL, raw_len, (const uint8_t *)raw);
	CHECK(request != NULL);
	if (request) {
		CHECK_EQ_U64(request->n_timeseries, 0);
		CHECK_EQ_U64(request->n_metadata, 6);
		CHECK_STR(request->metadata[0]->metric_family_name, "flow_receive_bytes_total");
		CHECK_EQ_U64(request->metadata[0]->type, PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER);
		CHECK_STR(request->metadata[0]->help, "Bytes received.");
		CHECK_STR(request->metadata[0]->unit, "bytes");
		CHECK_STR(request->metadata[3]->metric_family_name, "flow_transmit_packets_total");
		CHECK_STR(request->metadata[3]->unit, "");
		CHECK_STR(request->metadata[4]->metric_family_name, "flow_exporter_records_total");
		CHECK_STR(request->metadata[5]->help, "Series held.");
		CHECK_EQ_U64(request->metadata[5]->type, PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE);
		size_t repacked_len = prometheus__write_request__get_packed_size(request);
		uint8_t *repacked = malloc(repacked_len);
		prometheus__write_request__pack(request, repacked);
		CHECK(repacked_len == raw_len && memcmp(repacked, raw, raw_len) == 0);
		free(repacked);
		prometheus__write_request__free_unpacked(request, NULL);
	}
	free(raw);
	fx_rw_requests_free(&requests);
	fx_rw_encoder_destroy(encoder);
	fx_snapshot_destroy(snapshot);
}

int main(void)
{
	test_metadata();
	test_random_snapshots_match_protobuf_c();
	test_round_trip();
	test_asn_cache_collision();
	test_interface_names();
	test_split();
	test_timing();
	test_bound();
	return check_exit();
}
