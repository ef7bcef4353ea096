/* fx_expo_text_render: golden files (tests/data/expo/<case>.prom, compared byte for byte and checked by
 * `promtool check metrics`), the error path, streaming in chunks, numbers and label sets. (The time to render
 * 100,000 series is measured by tests/bench/bench_text.c.)
 *
 * FX_UPDATE_GOLDEN=1 rewrites the golden files from the current output (review the diff before committing).
 */
#include "fx/expo_text.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fx/classify.h"
#include "fx/iface_names.h"
#include "fx/series_labels.h"

#define RX (1u << FX_DIR_RECEIVE)
#define TX (1u << FX_DIR_TRANSMIT)
#define ALL_NUMBERS                                                                                          \
	(FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS | FX_LABEL_IFACE_IN |              \
	 FX_LABEL_IFACE_OUT)

/* Interned-looking hostnames: one pointer per distinct string, as the ingest step hands them over (intern.c).
 */
static const char router_a[] = "edge-1.example.net";
static const char router_escaped[] = "core\\2 \"east\"\nrack";
static const char router_empty[] = "";

static const char asn_text[] = "0\t-Reserved AS-, ZZ\n"
			       "15169\tGOOGLE - Google LLC, US\n"
			       "64500\tBACK\\SLASH \"QUOTED\" Networks, ZZ\n"
			       "64501\tÉcole Réseau, FR\n"
			       "64502\t, ZZ\n" /* an empty name: refused by the parser, so unknown */
			       "not a line\n";

static struct fx_asn_map *test_names(void)
{
	size_t bad = 0;
	struct fx_asn_map *names = fx_asn_map_parse(asn_text, sizeof(asn_text) - 1, &bad);
	CHECK(names != NULL);
	CHECK_EQ_U64(bad, 2);
	return names;
}

static int compare_series(const void *a, const void *b)
{
	return fx_series_key_compare(&((const struct fx_series *)a)->key,
				     &((const struct fx_series *)b)->key);
}

/* A heap snapshot as a store would hand it over: series copied and sorted; takes the names
 * reference and the self list. */
static struct fx_snapshot *make_snapshot(const struct fx_series *series, size_t n, uint32_t label_mask,
					 struct fx_asn_map *names, struct fx_family_list *self)
{
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	CHECK(snapshot != NULL);
	snapshot->label_mask = label_mask;
	snapshot->n_series = n;
	snapshot->series = calloc(n ? n : 1, sizeof(*series));
	CHECK(snapshot->series != NULL);
	if (n)
		memcpy(snapshot->series, series, n * sizeof(*series));
	qsort(snapshot->series, n, sizeof(*series), compare_series);
	snapshot->names = names;
	snapshot->self = self ? self : fx_family_list_create();
	CHECK(snapshot->self != NULL);
	return snapshot;
}

static struct fx_series series_of(const char *hostname, uint32_t as_src, uint32_t as_dst, uint32_t iface_in,
				  uint32_t iface_out, uint32_t present, uint32_t seen, uint64_t rx_bytes,
				  uint64_t rx_packets, uint64_t tx_bytes, uint64_t tx_packets)
{
	struct fx_series series = {
	    .key = {hostname, as_src, as_dst, iface_in, iface_out, present},
	    .bytes = {[FX_DIR_RECEIVE] = rx_bytes, [FX_DIR_TRANSMIT] = tx_bytes},
	    .packets = {[FX_DIR_RECEIVE] = rx_packets, [FX_DIR_TRANSMIT] = tx_packets},
	    .seen = seen,
	};
	return series;
}

/* Self-metric families with integer, double and special values, labels, escaping, and an empty family. */
static struct fx_family_list *test_self(void)
{
	struct fx_family_list *self = fx_family_list_create();
	CHECK(self != NULL);
	struct fx_label endpoint_a[] = {{"endpoint", "http://mimir:9009/api/v1/push"}, {"result", "ok"}};
	struct fx_label endpoint_b[] = {{"result", "failed"}, {"endpoint", "a\\b \"c\"\nd"}};
	struct fx_label empty_value[] = {{"endpoint", ""}};
	CHECK(fx_family_begin(self, "flow_exporter_records_total", "Flow records consumed.",
			      FX_METRIC_COUNTER) == 0);
	CHECK(fx_family_add_u64(self, 18446744073709551615u, 0, NULL) == 0);
	CHECK(fx_family_begin(self, "flow_exporter_empty_total", "A family with no samples.",
			      FX_METRIC_COUNTER) == 0);
	CHECK(fx_family_begin(self, "flow_exporter_pushes_total", "Help with a backslash \\ and a\nnewline.",
			      FX_METRIC_COUNTER) == 0);
	CHECK(fx_family_add_u64(self, 7, 2, endpoint_a) == 0);
	CHECK(fx_family_add_u64(self, 0, 2, endpoint_b) == 0);
	CHECK(fx_family_add_u64(self, 3, 1, empty_value) == 0);
	CHECK(fx_family_begin(self, "flow_exporter_values", "Doubles that must parse back exactly.",
			      FX_METRIC_GAUGE) == 0);
	const double values[] = {0.1, 1.0 / 3.0, 1e300, -2.5, 0.0, 1234567890123.0, 5e-324};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char index[8];
		snprintf(index, sizeof(index), "%zu", i);
		struct fx_label label = {"index", index};
		CHECK(fx_family_add_double(self, values[i], 1, &label) == 0);
	}
	CHECK(fx_family_begin(self, "flow_exporter_specials", "NaN and infinities.", FX_METRIC_GAUGE) == 0);
	struct fx_label nan_label = {"value", "nan"}, pinf_label = {"value", "pinf"},
			ninf_label = {"value", "ninf"};
	CHECK(fx_family_add_double(self, NAN, 1, &nan_label) == 0);
	CHECK(fx_family_add_double(self, INFINITY, 1, &pinf_label) == 0);
	CHECK(fx_family_add_double(self, -INFINITY, 1, &ninf_label) == 0);
	return self;
}

/* Every flow case: direction bits, absent labels, unknown and empty AS names, escaping, extremes. */
static size_t test_series(struct fx_series *out)
{
	size_t n = 0;
	/* All labels, both directions. */
	out[n++] = series_of(router_a, 15169, 64496, 10, 20, FX_LABEL_ALL, RX | TX, 1000, 10, 2000, 20);
	/* Receive only, then transmit only. */
	out[n++] = series_of(router_a, 15169, 64496, 11, 20, FX_LABEL_ALL, RX, 1500, 15, 0, 0);
	out[n++] = series_of(router_a, 64496, 15169, 10, 21, FX_LABEL_ALL, TX, 0, 0, 2500, 25);
	/* No direction yet: written nowhere. */
	out[n++] = series_of(router_a, 64496, 15169, 12, 21, FX_LABEL_ALL, 0, 0, 0, 0, 0);
	/* No interfaces in the record (present bits clear, fields zero). */
	out[n++] = series_of(router_a, 64496, 0, 0, 0,
			     ALL_NUMBERS & ~(FX_LABEL_IFACE_IN | FX_LABEL_IFACE_OUT), TX, 0, 0, 300, 3);
	/* AS 0 with a name, an unknown AS (no name label) and an AS with an empty name (no name label). */
	out[n++] = series_of(router_a, 64502, 0, 1, 2, FX_LABEL_ALL, RX, 42, 1, 0, 0);
	/* Escaping in the hostname and in an AS name; UTF-8 passes through. */
	out[n++] = series_of(router_escaped, 64500, 64501, 1, 1, FX_LABEL_ALL, RX | TX, 5, 1, 6, 1);
	/* The largest counters. */
	out[n++] = series_of(router_escaped, 64501, 64500, 2, 2, FX_LABEL_ALL, RX | TX, UINT64_MAX,
			     UINT64_MAX, UINT64_MAX, UINT64_MAX);
	/* An empty hostname is absent; no hostname at all, no source AS. */
	out[n++] = series_of(router_empty, 64496, 15169, 3, 3, FX_LABEL_ALL, TX, 0, 0, 1, 1);
	out[n++] = series_of(NULL, 0, 15169, 0, 0, FX_LABEL_DESTINATION_AS, RX, 9, 9, 0, 0);
	/* Nothing present at all: a sample with no labels. */
	out[n++] = series_of(NULL, 0, 0, 0, 0, 0, RX | TX, 0, 0, 0, 0);
	return n;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *file = fopen(path, "rb");
	if (!file)
		return NULL;
	struct fx_buf buf;
	fx_buf_init(&buf, 64u << 20);
	char chunk[4096];
	size_t n;
	int rc = 0;
	while (!rc && (n = fread(chunk, 1, sizeof(chunk), file)) > 0)
		rc = fx_buf_append(&buf, chunk, n);
	fclose(file);
	if (rc || fx_buf_reserve(&buf, 0)) {
		fx_buf_free(&buf);
		return NULL;
	}
	*len = buf.len;
	return buf.data;
}

static const char *find_promtool(void)
{
	static char path[4096];
	const char *env = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof(dirs), "%s:/usr/bin:/usr/local/bin", env ? env : "");
	for (const char *dir = dirs; *dir;) {
		size_t len = strcspn(dir, ":");
		snprintf(path, sizeof(path), "%.*s/promtool", (int)len, dir);
		if (len && access(path, X_OK) == 0)
			return path;
		dir += len + (dir[len] == ':');
	}
	return NULL;
}

/* Feeds text to `promtool check metrics` on its stdin; returns its exit status (0 = clean), or -1 when
 * promtool is not installed. */
static int promtool_check(const char *name, const char *text, size_t len)
{
	const char *promtool = find_promtool();
	if (!promtool) {
		fprintf(stderr, "SKIP promtool check of %s: promtool not found\n", name);
		return -1;
	}
	char command[4200];
	snprintf(command, sizeof(command), "'%s' check metrics", promtool);
	FILE *pipe = popen(command, "w");
	CHECK(pipe != NULL);
	if (!pipe)
		return 1;
	fwrite(text, 1, len, pipe);
	int status = pclose(pipe);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	if (code != 0)
		fprintf(stderr, "promtool check metrics of %s exited %d\n", name, code);
	return code;
}

/* Feeds an OpenMetrics body to the strict parser of Debian's python3-prometheus-client; returns its exit
 * status (0 = parsed, every flow sample with its _created), or -1 when it is not installed. */
static int openmetrics_check(const char *name, const char *text, size_t len)
{
	if (access("/usr/lib/python3/dist-packages/prometheus_client/openmetrics/parser.py", R_OK) != 0) {
		fprintf(stderr, "SKIP OpenMetrics parser check of %s: python3-prometheus-client not found\n",
			name);
		return -1;
	}
	static const char script[] =
	    "import sys\n"
	    "from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n"
	    "text = sys.stdin.read()\n"
	    "families = list(parse(text))\n"
	    "for f in families:\n"
	    "    if f.name.startswith('flow_') and not f.name.startswith('flow_exporter_'):\n"
	    "        totals = [s for s in f.samples if s.name.endswith('_total')]\n"
	    "        created = [s for s in f.samples if s.name.endswith('_created')]\n"
	    "        assert len(totals) == len(created), f.name\n";
	char command[600];
	snprintf(command, sizeof(command), "/usr/bin/python3 -c \"%s\"", script);
	FILE *pipe = popen(command, "w");
	CHECK(pipe != NULL);
	if (!pipe)
		return 1;
	fwrite(text, 1, len, pipe);
	int status = pclose(pipe);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	if (code != 0)
		fprintf(stderr, "the OpenMetrics parser refused %s (exit %d)\n", name, code);
	return code;
}

/* Renders in `format`, compares with tests/data/expo/<name>, and runs promtool (text) or the OpenMetrics
 * parser on the output. */
static void check_golden_as(const char *name, const struct fx_snapshot *snapshot, enum fx_expo_format format)
{
	struct fx_buf out;
	fx_buf_init(&out, 64u << 20);
	CHECK(fx_expo_render(snapshot, format, &out) == 0);
	const char *text = out.data ? out.data : "";

	const char *data = getenv("FX_TEST_DATA");
	char path[4096];
	snprintf(path, sizeof(path), "%s/expo/%s", data ? data : "tests/data", name);
	if (getenv("FX_UPDATE_GOLDEN")) {
		FILE *file = fopen(path, "wb");
		CHECK(file != NULL);
		if (file) {
			fwrite(text, 1, out.len, file);
			fclose(file);
		}
		fprintf(stderr, "updated %s\n", path);
	}
	size_t golden_len = 0;
	char *golden = read_file(path, &golden_len);
	CHECK(golden != NULL);
	if (golden) {
		bool same = golden_len == out.len && memcmp(golden, text, out.len) == 0;
		CHECK(same);
		if (!same)
			fprintf(stderr, "%s differs; got:\n%s\n---\n", name, text);
	}
	free(golden);
	if (out.len > 0 && format == FX_EXPO_TEXT)
		CHECK(promtool_check(name, text, out.len) <= 0);
	if (format == FX_EXPO_OPENMETRICS)
		CHECK(openmetrics_check(name, text, out.len) <= 0);
	fx_buf_free(&out);
}

static void check_golden(const char *name, const struct fx_snapshot *snapshot)
{
	check_golden_as(name, snapshot, FX_EXPO_TEXT);
}

/* The promtool wiring itself: a malformed exposition must be reported, or the golden checks prove nothing. */
static void test_promtool_catches_errors(void)
{
	static const char broken[] = "flow_receive_bytes_total{hostname=\"unterminated} 1\n";
	int code = promtool_check("a deliberately broken exposition (an error is expected)", broken,
				  sizeof(broken) - 1);
	CHECK(code != 0);
}

static void test_full(void)
{
	struct fx_series series[32];
	size_t n = test_series(series);
	struct fx_snapshot *snapshot = make_snapshot(series, n, FX_LABEL_ALL, test_names(), test_self());
	check_golden("full.prom", snapshot);
	fx_snapshot_destroy(snapshot);
}

/* OpenMetrics of the same snapshots: the golden .om files, strictly parsed; the text format of the same
 * snapshot is still full.prom (the format is chosen per render, never by state). */
static void test_openmetrics(void)
{
	struct fx_series series[32];
	size_t n = test_series(series);
	for (size_t i = 0; i < n; i++)
		series[i].created_ms = 1700000000000 + (int64_t)i * 1001;
	struct fx_snapshot *snapshot = make_snapshot(series, n, FX_LABEL_ALL, test_names(), test_self());
	check_golden_as("full.om", snapshot, FX_EXPO_OPENMETRICS);
	check_golden("full.prom", snapshot);
	fx_snapshot_destroy(snapshot);
	snapshot = make_snapshot(NULL, 0, FX_LABEL_ALL, NULL, NULL);
	check_golden_as("empty.om", snapshot, FX_EXPO_OPENMETRICS); /* "# EOF" alone */
	fx_snapshot_destroy(snapshot);
}

/* --labels without the interfaces and the destination AS name, with names loaded. */
static void test_label_mask(void)
{
	struct fx_series series[8];
	size_t n = 0;
	/* Keys as the ingest step builds them for this mask: dropped labels are zero and not present. */
	uint32_t present = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS;
	series[n++] = series_of(router_a, 15169, 64496, 0, 0, present, RX | TX, 1, 2, 3, 4);
	series[n++] = series_of(router_a, 64500, 15169, 0, 0, present, TX, 0, 0, 5, 6);
	/* A key carrying more than the mask keeps (a table built before a config change): the mask decides.
	 */
	series[n++] = series_of(router_escaped, 0, 15169, 7, 8, FX_LABEL_ALL, RX, 7, 8, 0, 0);
	uint32_t mask =
	    FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS | FX_LABEL_SOURCE_AS_NAME | FX_LABEL_DESTINATION_AS;
	struct fx_snapshot *snapshot = make_snapshot(series, n, mask, test_names(), NULL);
	check_golden("label_mask.prom", snapshot);
	fx_snapshot_destroy(snapshot);

	/* Names asked for, but no names loaded: no name labels. */
	snapshot = make_snapshot(series, n, FX_LABEL_ALL, NULL, NULL);
	check_golden("no_names.prom", snapshot);
	fx_snapshot_destroy(snapshot);
}

/* --labels with the interface names: named inline from the snapshot's interface names (an escaped
 * description, an empty one left out, an unknown index without any, the overflow series without any), the
 * labels in name order; the text format (promtool) and OpenMetrics (the strict parser) alike. */
static void test_interface_names(void)
{
	static const char file[] =
	    "exporter,ifindex,name,description,speed\n"
	    "edge-1.example.net,537,et-0/0/1,\"TRANSIT-ARELION, 100G \"\"A\"\"\\x\",100000000000\n"
	    "edge-1.example.net,2,ge-0/0/2,,\n"
	    "edge-1.example.net,0,index-zero,never on an other series,\n";
	struct fx_iface_map *map = NULL;
	struct fx_parse_error error = {0};
	CHECK(fx_iface_map_parse(file, sizeof(file) - 1, &map, &error) == 0);
	struct fx_iface_entry snmp_entries[] = {{router_escaped, 537, "xe-1/0/0", "from SNMP", 0, false}};
	struct fx_series series[8];
	size_t n = 0;
	series[n++] = series_of(router_a, 15169, 64496, 537, 2, ALL_NUMBERS, RX, 1000, 2, 0, 0);
	series[n++] = series_of(router_a, 64496, 15169, 2, 999, ALL_NUMBERS, TX, 0, 0, 30, 4);
	series[n++] = series_of(router_escaped, 64496, 13335, 537, 537, ALL_NUMBERS, TX, 0, 0, 5, 6);
	series[n] = series_of(router_a, 0, 0, 0, 0, ALL_NUMBERS, RX, 7, 8, 0, 0); /* the overflow series */
	series[n++].key.other = ALL_NUMBERS & ~(uint32_t)FX_LABEL_HOSTNAME;
	for (size_t i = 0; i < n; i++)
		series[i].created_ms = 1700000000000 + (int64_t)i * 1001;
	struct fx_snapshot *snapshot =
	    make_snapshot(series, n, FX_LABEL_ALL | FX_LABEL_IFACE_NAMES, test_names(), NULL);
	snapshot->interfaces = fx_iface_names_create(map, fx_iface_map_build(snmp_entries, 1), NULL);
	check_golden("iface_names.prom", snapshot);
	check_golden_as("iface_names.om", snapshot, FX_EXPO_OPENMETRICS);
	fx_snapshot_destroy(snapshot);
}

/* Two ASNs that share a slot of the AS cache (series_labels.c; 15169 and 4223) as the source and destination
 * of one series: each keeps its own number and name. */
static void test_asn_cache_collision(void)
{
	static const char text[] = "15169\tGOOGLE, US\n4223\tCOLLIDING-AS, ZZ\n";
	struct fx_asn_map *names = fx_asn_map_parse(text, sizeof(text) - 1, NULL);
	CHECK(names != NULL);
	uint32_t present = FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS;
	struct fx_series series[2] = {series_of(NULL, 4223, 15169, 0, 0, present, RX, 100, 1, 0, 0),
				      series_of(NULL, 15169, 4223, 0, 0, present, RX, 101, 1, 0, 0)};
	struct fx_snapshot *snapshot = make_snapshot(series, 2, FX_LABEL_ALL, names, NULL);
	struct fx_buf out;
	fx_buf_init(&out, 1u << 20);
	CHECK(fx_expo_text_render(snapshot, &out) == 0);
	CHECK(strstr(out.data,
		     "flow_receive_bytes_total{destination_as=\"15169\",destination_as_name=\"GOOGLE\","
		     "source_as=\"4223\",source_as_name=\"COLLIDING-AS\"} 100\n") != NULL);
	CHECK(strstr(out.data,
		     "flow_receive_bytes_total{destination_as=\"4223\",destination_as_name=\"COLLIDING-AS\","
		     "source_as=\"15169\",source_as_name=\"GOOGLE\"} 101\n") != NULL);
	fx_buf_free(&out);
	fx_snapshot_destroy(snapshot);
}

static void test_empty(void)
{
	/* No series and no self families: no bytes at all. */
	struct fx_snapshot *snapshot = make_snapshot(NULL, 0, FX_LABEL_ALL, NULL, NULL);
	check_golden("empty.prom", snapshot);
	fx_snapshot_destroy(snapshot);

	/* Series that saw no direction, and a self family without samples: still nothing. */
	struct fx_series series[1] = {series_of(router_a, 1, 2, 3, 4, FX_LABEL_ALL, 0, 0, 0, 0, 0)};
	struct fx_family_list *self = fx_family_list_create();
	CHECK(fx_family_begin(self, "flow_exporter_x_total", "Nothing.", FX_METRIC_COUNTER) == 0);
	snapshot = make_snapshot(series, 1, FX_LABEL_ALL, NULL, self);
	struct fx_buf out;
	fx_buf_init(&out, 1024);
	CHECK(fx_expo_text_render(snapshot, &out) == 0);
	CHECK_EQ_U64(out.len, 0);
	fx_buf_free(&out);
	fx_snapshot_destroy(snapshot);
}

/* Appends after what the buffer holds; past the maximum, fails and leaves the buffer as it was. */
static void test_append_and_limit(void)
{
	struct fx_series series[32];
	size_t n = test_series(series);
	struct fx_snapshot *snapshot = make_snapshot(series, n, FX_LABEL_ALL, test_names(), test_self());
	struct fx_buf whole;
	fx_buf_init(&whole, 1u << 20);
	CHECK(fx_expo_text_render(snapshot, &whole) == 0);

	struct fx_buf out;
	fx_buf_init(&out, 1u << 20);
	CHECK(fx_buf_append_str(&out, "# prefix\n") == 0);
	CHECK(fx_expo_text_render(snapshot, &out) == 0);
	CHECK_EQ_U64(out.len, whole.len + 9);
	CHECK(memcmp(out.data + 9, whole.data, whole.len) == 0);
	fx_buf_free(&out);

	/* Too small for the flow families, then too small only for the self families. */
	size_t flow_len = (size_t)(strstr(whole.data, "# HELP flow_exporter_") - whole.data);
	size_t limits[] = {100, flow_len + 9 + 10, whole.len + 9 - 1};
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		fx_buf_init(&out, limits[i]);
		CHECK(fx_buf_append_str(&out, "# prefix\n") == 0);
		CHECK(fx_expo_text_render(snapshot, &out) == FX_BUF_E_TOO_BIG);
		CHECK_EQ_U64(out.len, 9);
		CHECK_STR(out.data, "# prefix\n");
		fx_buf_free(&out);
	}
	/* Exactly big enough. */
	fx_buf_init(&out, whole.len + 9);
	CHECK(fx_buf_append_str(&out, "# prefix\n") == 0);
	CHECK(fx_expo_text_render(snapshot, &out) == 0);
	fx_buf_free(&out);
	fx_buf_free(&whole);
	fx_snapshot_destroy(snapshot);
}

/* The stream read with any room (1 byte, odd sizes, lines longer than the room) gives exactly the text of
 * fx_expo_text_render, then reads of 0 bytes. */
static void test_stream_chunks(void)
{
	struct fx_series series[32];
	size_t n = test_series(series);
	struct fx_snapshot *snapshot = make_snapshot(series, n, FX_LABEL_ALL, test_names(), test_self());
	struct fx_buf whole;
	fx_buf_init(&whole, 1u << 20);
	CHECK(fx_expo_text_render(snapshot, &whole) == 0);
	static const size_t rooms[] = {1, 2, 3, 7, 64, 100, 333, 4096, 1 << 20};
	for (size_t r = 0; r < sizeof(rooms) / sizeof(rooms[0]); r++) {
		struct fx_expo_text_stream *stream = fx_expo_text_stream_create(snapshot);
		CHECK(stream != NULL);
		char *got = malloc(whole.len + 1);
		char *chunk = malloc(rooms[r]);
		size_t len = 0, written = 0, reads = 0;
		do {
			CHECK(fx_expo_text_stream_read(stream, chunk, rooms[r], &written) == 0);
			CHECK(written <= rooms[r]);
			if (len + written > whole.len)
				break;
			memcpy(got + len, chunk, written);
			len += written;
			reads++;
		} while (written == rooms[r]);
		CHECK_EQ_U64(len, whole.len);
		CHECK(len == whole.len && memcmp(got, whole.data, len) == 0);
		CHECK_EQ_U64(fx_expo_text_stream_produced(stream), whole.len);
		CHECK(fx_expo_text_stream_read(stream, chunk, rooms[r], &written) == 0 && written == 0);
		CHECK(reads >= whole.len / rooms[r]);
		free(chunk);
		free(got);
		fx_expo_text_stream_destroy(stream);
	}
	fx_buf_free(&whole);
	fx_snapshot_destroy(snapshot);
}

/* Counter values around every power of ten, against the C library's formatting. */
static void test_numbers(void)
{
	uint64_t values[64];
	size_t n = 0;
	values[n++] = 0;
	for (uint64_t power = 1; n < 60; power *= 10) {
		values[n++] = power - 1;
		values[n++] = power;
		values[n++] = power + 1;
		if (power > UINT64_MAX / 10)
			break;
	}
	values[n++] = UINT64_MAX - 1;
	values[n++] = UINT64_MAX;
	for (size_t i = 0; i < n; i++) {
		uint32_t label = (uint32_t)values[i];
		struct fx_series series =
		    series_of(NULL, label, 0, 0, 0, FX_LABEL_SOURCE_AS, RX, values[i], 0, 0, 0);
		struct fx_snapshot *snapshot = make_snapshot(&series, 1, FX_LABEL_ALL, NULL, NULL);
		struct fx_buf out;
		fx_buf_init(&out, 4096);
		CHECK(fx_expo_text_render(snapshot, &out) == 0);
		char expected[512];
		snprintf(expected, sizeof(expected),
			 "# HELP flow_receive_bytes_total Bytes received.\n"
			 "# TYPE flow_receive_bytes_total counter\n"
			 "flow_receive_bytes_total{source_as=\"%" PRIu32 "\"} %" PRIu64 "\n"
			 "# HELP flow_receive_packets_total Packets received.\n"
			 "# TYPE flow_receive_packets_total counter\n"
			 "flow_receive_packets_total{source_as=\"%" PRIu32 "\"} 0\n",
			 label, values[i], label);
		CHECK_STR(out.data, expected);
		fx_buf_free(&out);
		fx_snapshot_destroy(snapshot);
	}
}

/* --labels keeping nothing: samples without braces. */
static void test_no_labels(void)
{
	struct fx_series series = series_of(router_a, 1, 2, 3, 4, FX_LABEL_ALL, TX, 0, 0, 5, 6);
	struct fx_snapshot *snapshot = make_snapshot(&series, 1, 0, test_names(), NULL);
	struct fx_buf out;
	fx_buf_init(&out, 4096);
	CHECK(fx_expo_text_render(snapshot, &out) == 0);
	CHECK_STR(out.data, "# HELP flow_transmit_bytes_total Bytes transferred.\n"
			    "# TYPE flow_transmit_bytes_total counter\n"
			    "flow_transmit_bytes_total 5\n"
			    "# HELP flow_transmit_packets_total Packets transmitted.\n"
			    "# TYPE flow_transmit_packets_total counter\n"
			    "flow_transmit_packets_total 6\n");
	fx_buf_free(&out);
	fx_snapshot_destroy(snapshot);
}

/* A line past the renderer's bound (a hostname that, escaped, is longer than every flow label at its
 * maximum) fails the render with FX_BUF_E_TOO_BIG and leaves the buffer as it was. */
static void test_line_bound(void)
{
	size_t len = (FX_SERIES_LABELS_MAX + 1) * FX_SERIES_LABEL_VALUE_MAX;
	char *huge = malloc(len + 1);
	CHECK(huge != NULL);
	memset(huge, '"', len);
	huge[len] = '\0';
	struct fx_series series = series_of(huge, 0, 0, 0, 0, FX_LABEL_HOSTNAME, RX, 1, 1, 0, 0);
	struct fx_snapshot *snapshot = make_snapshot(&series, 1, FX_LABEL_ALL, NULL, NULL);
	struct fx_buf out;
	fx_buf_init(&out, (size_t)64 << 20);
	CHECK(fx_expo_text_render(snapshot, &out) == FX_BUF_E_TOO_BIG);
	CHECK_EQ_U64(out.len, 0);
	fx_buf_free(&out);
	fx_snapshot_destroy(snapshot);
	free(huge);
}

int main(void)
{
	test_promtool_catches_errors();
	test_full();
	test_openmetrics();
	test_label_mask();
	test_asn_cache_collision();
	test_interface_names();
	test_empty();
	test_append_and_limit();
	test_stream_chunks();
	test_numbers();
	test_no_labels();
	test_line_bound();
	return check_exit();
}
