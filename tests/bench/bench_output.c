/* bench_output: the output side at 10k, 100k and 1M series, in one process, on synthetic but realistic
 * series (router hostnames, 16- and 32-bit ASNs with names from an asn.txt-style list, interface indexes;
 * most series see one direction, one in ten both).
 *
 *   bench_output [--series 10000,100000,1000000] [--runs 7]
 *                [--only store,snapshot,render,http,rw,rw2,queue,checkpoint]
 *                [--max-series M] [--top-n N] [--hosts H] [--labels LIST]
 *
 * --max-series, --top-n and --hosts (default: every series held and exposed, 64 routers) build the store as
 * the daemon's flags of those names do: past M held series the records go to the overflow series, and the
 * snapshots (so every section below) expose the top N per router.
 * For each size it builds a real fx_store through a worker's delta table and reports, as
 * "median [min..max]" over the runs:
 *   store      series held and exposed; bytes per held series kept by the store (malloc'ed bytes / series)
 *              and by one snapshot
 *   snapshot   fx_store_snapshot with nothing changed, and after a hand-over that touched 1% of the series;
 *              the longest wait of a thread taking the store's lock meanwhile (what a tick or a second
 *              reader waits)
 *   render     the text exposition into one buffer, plain (and its size) and with gzip level 1
 *   http       GET /metrics through fx_http_server on loopback with libcurl: end to end (snapshot +
 *              render + send), plain and gzip; the process's extra peak RSS during the scrape
 *   rw         fx_rw_encode of the snapshot (remote write: protobuf + snappy): time, bytes after snappy per
 *              sample; then a second encode of the same values at a new timestamp (a push with nothing
 *              flowing)
 *   rw2        the same with fx_rw2_encode (remote write 2.0: a symbol table per request, metadata and a
 *              start timestamp on every series)
 *   queue      the remote-write queue on disk (--push-queue-dir): bytes per queued request, append and drain
 *              times of a push
 *   checkpoint (only when named in --only: it writes to /var/tmp) the checkpoints of --state-dir: the
 *              first, full one; a minute at one a second with 1% and then every series changed (CPU, wall
 *              time, bytes written); the restore of the last one into an empty store
 * --labels: the labels kept, as the daemon's --labels (built-in labels and the interface names only; the
 * default is the daemon's). With iface_in_name ... every router's interfaces 1..160 are named (a file map
 * of 64 x 160 entries, "et-0/0/<index>", a description "TRANSIT-<index>, 100G"), looked up when encoding.
 * Figures are noisy on a shared machine: compare medians, or instruction counts under callgrind. */
#include <curl/curl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "fx/asn_names.h"
#include "fx/buf.h"
#include "fx/checkpoint.h"
#include "fx/expo_text.h"
#include "fx/http_server.h"
#include "fx/iface_names.h"
#include "fx/intern.h"
#include "fx/push_queue.h"
#include "fx/rw2_encode.h"
#include "fx/rw_encode.h"
#include "fx/series_table.h"
#include "fx/store.h"

#define MAX_RUNS 64
#define N_HOSTS 64
#define N_ASNS 4000
#define N_NAMED_IFACES 160 /* iface_in reaches 1 + 3 * 32 + 31 at 1M series, iface_out 48 */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* "median [min..max]" of values[0..n). */
static void print_stat(const char *what, double *values, size_t n, const char *unit)
{
	qsort(values, n, sizeof(*values), compare_double);
	printf("  %-44s %10.2f %s  [%.2f..%.2f]\n", what, values[n / 2], unit, values[0], values[n - 1]);
	fflush(stdout);
}

static long status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	size_t len = strlen(field);
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, len) == 0)
			kb = strtol(line + len + 1, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0). */
static void reset_peak_rss(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	if (f) {
		fputs("5", f);
		fclose(f);
	}
}

/* ---- The synthetic world ---- */

/* --max-series, --top-n, --hosts: the store as the daemon runs it with those flags (issue 10's full-table
 * benchmark: a million keys over four routers, 200,000 held, the top 100 exposed per router). */
struct world_options {
	size_t max_series; /* 0: every series held */
	size_t top_n;	   /* 0: every series exposed */
	size_t n_hosts;
	const char *labels; /* --labels: built-in labels and interface names */
};

struct world {
	size_t n_series;
	size_t max_series; /* 0: every series held */
	size_t n_hosts;
	struct fx_key_layout layout; /* the default --labels */
	struct fx_intern *hostnames;
	const char *hosts[N_HOSTS];
	uint32_t asns[N_ASNS];
	struct fx_asn_map *names;
	struct fx_iface_names *interfaces;   /* NULL unless --labels keeps an interface name */
	struct fx_store_config store_config; /* to make another store like it (checkpoint section) */
	struct fx_store *store;
	struct fx_series_table *delta;
	uint64_t rng;
};

static uint32_t next_random(struct world *world)
{
	world->rng = world->rng * 6364136223846793005u + 1442695040888963407u;
	return (uint32_t)(world->rng >> 33);
}

static struct fx_asn_map *acquire_names(void *opaque)
{
	return fx_asn_map_ref(((struct world *)opaque)->names);
}

static struct fx_iface_names *acquire_interfaces(void *opaque)
{
	return fx_iface_names_ref(((struct world *)opaque)->interfaces);
}

/* Names for interfaces 1..N_NAMED_IFACES of every router. */
static struct fx_iface_names *world_interfaces(const struct world *world)
{
	static char names[N_NAMED_IFACES][16], descriptions[N_NAMED_IFACES][32];
	struct fx_iface_entry *entries = calloc(N_HOSTS * N_NAMED_IFACES, sizeof(*entries));
	if (!entries)
		abort();
	for (uint32_t i = 0; i < N_NAMED_IFACES; i++) {
		snprintf(names[i], sizeof(names[i]), "et-0/0/%u", i + 1);
		snprintf(descriptions[i], sizeof(descriptions[i]), "TRANSIT-%u, 100G", i + 1);
	}
	for (size_t h = 0; h < N_HOSTS; h++)
		for (uint32_t i = 0; i < N_NAMED_IFACES; i++)
			entries[h * N_NAMED_IFACES + i] = (struct fx_iface_entry){
			    world->hosts[h], i + 1, names[i], descriptions[i], 0, false};
	struct fx_iface_map *map = fx_iface_map_build(entries, N_HOSTS * N_NAMED_IFACES);
	free(entries);
	struct fx_iface_names *interfaces = map ? fx_iface_names_create(map, NULL, NULL) : NULL;
	if (!interfaces)
		abort();
	return interfaces;
}

static const char *const words[] = {"TELIA",  "COGENT", "LEVEL3",  "HURRICANE",	    "AKAMAI",
				    "AMAZON", "GOOGLE", "FASTLY",  "OVH",	    "HETZNER",
				    "NTT",    "ZAYO",	"COMCAST", "VODAFONE",	    "ORANGE",
				    "TATA",   "GTT",	"LUMEN",   "CLOUDFLARENET", "DTAG"};

/* Series i, a deterministic function of i so that a later pass updates the same series. As pmacct's
 * records are classified, one side of every series is a local AS (the exporter's own network, one per
 * half of the routers) and the other a peer: transmit when the source is local, receive otherwise; a
 * series sees one direction, except a few (both ends local) that see both. */
static void world_keys(struct world *world, size_t i, struct fx_series_key *key, enum fx_direction *direction,
		       int *both)
{
	uint64_t h = (uint64_t)i * 0x9e3779b97f4a7c15u;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9u;
	h ^= h >> 32;
	size_t host = i % world->n_hosts, j = i / world->n_hosts;
	uint32_t local = host % 2 ? 64496 : 4200000001u;
	uint32_t peer = world->asns[j % N_ASNS];
	uint32_t combo = (uint32_t)(j / N_ASNS); /* past N_ASNS peers per router, more interface pairs */
	*direction = h & 1 ? FX_DIR_TRANSMIT : FX_DIR_RECEIVE;
	key->hostname = world->hosts[host];
	key->as_src = *direction == FX_DIR_TRANSMIT ? local : peer;
	key->as_dst = *direction == FX_DIR_TRANSMIT ? peer : local;
	key->iface_in = 1 + combo * 32 + (uint32_t)((h >> 8) % 32);
	key->iface_out = 1 + (uint32_t)((h >> 16) % 48);
	key->present = FX_LABEL_ALL;
	*both = (h >> 24) % 50 == 0;
}

static void world_flush(struct world *world);

/* One record into the worker's delta; a full delta is handed over first, as the daemon's ingest does
 * (fx_store_handoff_full), and the store folds what its limit leaves out. */
static void world_count(struct world *world, const struct fx_series_key *key, enum fx_direction direction,
			uint64_t bytes, uint64_t packets, int64_t now_ms)
{
	int rc = fx_series_table_add(world->delta, key, direction, bytes, packets, now_ms);
	if (rc == FX_TABLE_E_FULL) {
		world_flush(world);
		rc = fx_series_table_add(world->delta, key, direction, bytes, packets, now_ms);
	}
	if (rc != 0)
		abort();
}

static void world_add(struct world *world, size_t i, uint64_t bytes, int64_t now_ms)
{
	struct fx_series_key key;
	memset(&key, 0, sizeof(key)); /* a key is its fields: those world_keys leaves out are zero */
	enum fx_direction direction;
	int both;
	world_keys(world, i, &key, &direction, &both);
	world_count(world, &key, direction, bytes, bytes / 700 + 1, now_ms);
	if (both)
		world_count(world, &key, !direction, bytes / 3, bytes / 2100 + 1, now_ms);
}

/* Merges the delta into the store. */
static void world_flush(struct world *world)
{
	if (!fx_store_handoff(world->store, 0, world->delta, NULL, 0, true))
		abort();
}

static void world_create(struct world *world, size_t n_series, const struct world_options *options)
{
	memset(world, 0, sizeof(*world));
	world->n_series = n_series;
	world->n_hosts = options->n_hosts;
	world->max_series = options->max_series;
	world->rng = 0x853c49e6748fea9bu;
	world->hostnames = fx_intern_create(1024);
	for (size_t h = 0; h < world->n_hosts; h++) {
		char name[64];
		int len = snprintf(name, sizeof(name), "%s%02zu.%s.example.net", h % 3 ? "edge" : "core", h,
				   (const char *[]){"fra1", "ams2", "lon1", "nyc3", "sjc1"}[h % 5]);
		world->hosts[h] = fx_intern_get(world->hostnames, name, (size_t)len);
	}
	struct fx_buf list;
	fx_buf_init(&list, 1u << 24);
	for (int a = 0; a < N_ASNS; a++) {
		uint32_t r = next_random(world);
		/* Half 16-bit, half 32-bit (RFC 6793), as in today's DFZ table; distinct by construction. */
		uint32_t asn = a % 2 ? 1000 + (uint32_t)a * 31 : 131072 + (uint32_t)a * 149;
		if (a % 97 == 0)
			asn = 4200000000u + (uint32_t)a; /* private 32-bit */
		world->asns[a] = asn;
		if (fx_buf_printf(&list, "%u\t%s-%s%u - %s Networks %s, %s\n", asn, words[r % 20],
				  words[(r >> 5) % 20], r % 100, words[(r >> 10) % 20],
				  (r >> 15) % 2 ? "Inc." : "GmbH", (r >> 16) % 2 ? "US" : "DE") != 0)
			abort();
	}
	if (fx_buf_printf(&list,
			  "64496\tEXAMPLE-ISP - Example Internet Service, DE\n4200000001\tEXAMPLE-AS, DE\n"))
		abort();
	world->names = fx_asn_map_parse(list.data, list.len, NULL);
	fx_buf_free(&list);
	char why[256];
	if (fx_key_layout_parse(&world->layout, options->labels, NULL, 0, NULL, why, sizeof(why)) != 0)
		abort();
	uint32_t label_mask = world->layout.mask;
	struct fx_store_config config = {
	    .n_workers = 1,
	    .max_series = options->max_series ? options->max_series : n_series + 16,
	    .label_mask = label_mask,
	    .layout = &world->layout,
	    .top_n = options->top_n,
	    .top_n_window_ms = 300000,
	    .top_n_group = FX_LABEL_HOSTNAME,
	    .acquire_names = acquire_names,
	    .names_opaque = world,
	};
	if (label_mask & FX_LABEL_IFACE_NAMES) {
		world->interfaces = world_interfaces(world);
		config.acquire_interfaces = acquire_interfaces;
		config.interfaces_opaque = world;
	}
	world->store_config = config;
	world->store = fx_store_create(&config);
	/* As the daemon's ingest makes it (ingest.c): as wide as the layout's keys, handed over when full. */
	world->delta = fx_series_table_create_narrow(config.max_series, world->layout.n_extra);
	if (!world->names || !world->store || !world->delta)
		abort();
	if (fx_store_add_collector(world->store, fx_store_collect, world->store) != 0)
		abort();
}

/* Series i's first record: at a time of the last hour, as in a daemon that has run that long, so that each
 * series starts counting at its own millisecond (remote write 2.0 carries it as the start timestamp; the
 * same instant for every series would compress as no real push does). FX_BENCH_SAME_START=1: every series
 * starts at the same millisecond (the figures before 2026-12-02). */
static void world_fill(struct world *world)
{
	int64_t now = (int64_t)time(NULL) * 1000;
	const char *same = getenv("FX_BENCH_SAME_START");
	bool spread = !same || strcmp(same, "1") != 0;
	for (size_t i = 0; i < world->n_series; i++) {
		uint64_t h = ((uint64_t)i + 1) * 0x2545f4914f6cdd1du;
		int64_t first = spread ? now - (int64_t)((h >> 40) % 3600000) : now;
		world_add(world, i, 1500 + (uint64_t)next_random(world) % 100000000, first);
	}
	world_flush(world);
}

/* Updates 1% of the series, as records flowing between two scrapes would. */
static void world_touch(struct world *world)
{
	int64_t now = (int64_t)time(NULL) * 1000;
	size_t n = world->n_series / 100 + 1;
	for (size_t k = 0; k < n; k++)
		world_add(world, (size_t)next_random(world) % world->n_series, 1500, now);
	world_flush(world);
}

static void world_destroy(struct world *world)
{
	fx_series_table_destroy(world->delta);
	fx_store_destroy(world->store);
	fx_asn_map_unref(world->names);
	fx_iface_names_unref(world->interfaces);
	fx_intern_destroy(world->hostnames);
}

/* ---- Lock probe: a thread that takes the store's lock (through its collector) in a loop ---- */

struct probe {
	struct fx_store *store;
	atomic_bool stop;
	double max_wait_ms;
	pthread_t thread;
};

static void *probe_main(void *opaque)
{
	struct probe *probe = opaque;
	struct fx_family_list *list = NULL;
	while (!atomic_load(&probe->stop)) {
		list = fx_family_list_create();
		double start = now_ms();
		(void)fx_store_collect(probe->store, list); /* takes total_lock briefly */
		double waited = now_ms() - start;
		if (waited > probe->max_wait_ms)
			probe->max_wait_ms = waited;
		fx_family_list_destroy(list);
		struct timespec pause = {0, 100000};
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/* ---- Sections ---- */

static const char *dump_path; /* --dump: where the render section writes one body */

static bool wanted(const char *only, const char *section)
{
	return !only || strstr(only, section) != NULL;
}

/* Bytes malloc'ed, small and mmap'ed blocks alike. */
static size_t heap_bytes(void)
{
	struct mallinfo2 info = mallinfo2();
	return info.uordblks + info.hblkhd;
}

static void bench_store(struct world *world)
{
	size_t before = heap_bytes();
	world_fill(world);
	size_t store_bytes = heap_bytes() - before;
	struct fx_snapshot *snapshot = fx_store_snapshot(world->store);
	size_t snapshot_bytes = heap_bytes() - before - store_bytes;
	size_t held =
	    world->max_series && world->max_series < world->n_series ? world->max_series : world->n_series;
	printf("  %-44s %10zu held, %zu exposed\n", "store: series", held, snapshot->n_series);
	printf("  %-44s %10.1f B/series (%zu MB)\n", "store: held by the store",
	       (double)store_bytes / (double)held, store_bytes >> 20);
	printf("  %-44s %10.1f B/series\n", "store: one more snapshot",
	       (double)snapshot_bytes / (double)held);
	fx_snapshot_destroy(snapshot);
}

static void bench_snapshot(struct world *world, int runs)
{
	double unchanged[MAX_RUNS], changed[MAX_RUNS], waits[MAX_RUNS];
	struct fx_snapshot *snapshot = fx_store_snapshot(world->store); /* warm */
	fx_snapshot_destroy(snapshot);
	for (int r = 0; r < runs; r++) {
		double start = now_ms();
		snapshot = fx_store_snapshot(world->store);
		unchanged[r] = now_ms() - start;
		fx_snapshot_destroy(snapshot);
	}
	for (int r = 0; r < runs; r++) {
		world_touch(world);
		struct probe probe = {.store = world->store};
		atomic_init(&probe.stop, false);
		pthread_create(&probe.thread, NULL, probe_main, &probe);
		struct timespec pause = {0, 2000000};
		nanosleep(&pause, NULL);
		double start = now_ms();
		snapshot = fx_store_snapshot(world->store);
		changed[r] = now_ms() - start;
		nanosleep(&pause, NULL);
		atomic_store(&probe.stop, true);
		pthread_join(probe.thread, NULL);
		waits[r] = probe.max_wait_ms;
		fx_snapshot_destroy(snapshot);
	}
	print_stat("snapshot: nothing changed", unchanged, (size_t)runs, "ms");
	print_stat("snapshot: 1% of the series changed", changed, (size_t)runs, "ms");
	print_stat("snapshot: longest wait for the store lock", waits, (size_t)runs, "ms");
}

static size_t gzip_len(const char *data, size_t len, int level)
{
	z_stream stream;
	memset(&stream, 0, sizeof(stream));
	if (deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	static unsigned char out[1 << 16];
	stream.next_in = (Bytef *)data;
	stream.avail_in = (uInt)len;
	int rc;
	do {
		stream.next_out = out;
		stream.avail_out = sizeof(out);
		rc = deflate(&stream, Z_FINISH);
	} while (rc == Z_OK);
	size_t total = stream.total_out;
	deflateEnd(&stream);
	return total;
}

static void bench_render(struct world *world, int runs)
{
	double plain[MAX_RUNS], gzip[MAX_RUNS];
	struct fx_snapshot *snapshot = fx_store_snapshot(world->store);
	size_t text_len = 0, compressed = 0;
	for (int r = 0; r < runs; r++) {
		struct fx_buf out;
		fx_buf_init(&out, (size_t)4 << 30);
		double start = now_ms();
		if (fx_expo_text_render(snapshot, &out) != 0)
			abort();
		plain[r] = now_ms() - start;
		text_len = out.len;
		if (dump_path && r == 0) {
			FILE *f = fopen(dump_path, "wb");
			if (f) {
				fwrite(out.data, 1, out.len, f);
				fclose(f);
			}
		}
		start = now_ms();
		compressed = gzip_len(out.data, out.len, 1);
		gzip[r] = plain[r] + now_ms() - start;
		fx_buf_free(&out);
	}
	print_stat("render: text into one buffer", plain, (size_t)runs, "ms");
	size_t lines = 0;
	for (size_t i = 0; i < snapshot->n_series; i++)
		lines += 2 * (size_t)__builtin_popcount(snapshot->series[i].seen & 3u);
	printf("  %-44s %10.1f MB (%zu sample lines, %.0f B/line)\n", "render: body size",
	       (double)text_len / 1e6, lines, (double)text_len / (double)(lines ? lines : 1));
	print_stat("render + gzip level 1 (zlib)", gzip, (size_t)runs, "ms");
	printf("  %-44s %10.2f MB\n", "render: gzip body size", (double)compressed / 1e6);
	fx_snapshot_destroy(snapshot);
}

static struct fx_snapshot *take_snapshot(void *opaque)
{
	return fx_store_snapshot(opaque);
}

static size_t discard(char *data, size_t size, size_t n, void *opaque)
{
	(void)data;
	*(size_t *)opaque += size * n;
	return size * n;
}

static void bench_http(struct world *world, int runs)
{
	struct fx_http_hooks hooks = {.take_snapshot = take_snapshot, .opaque = world->store};
	struct fx_http_server *server = fx_http_server_create("127.0.0.1:0", &hooks);
	if (!server)
		abort();
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", fx_http_server_port(server));
	CURL *curl = curl_easy_init();
	struct curl_slist *gzip_header = curl_slist_append(NULL, "Accept-Encoding: gzip");
	for (int gz = 0; gz < 3; gz++) {
		/* 0: plain, 1: gzip, 2: plain with records flowing (1% of the series updated before each). */
		double times[MAX_RUNS], peaks[MAX_RUNS];
		size_t received = 0;
		for (int r = 0; r < runs; r++) {
			received = 0;
			curl_easy_setopt(curl, CURLOPT_URL, url);
			curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
			curl_easy_setopt(curl, CURLOPT_WRITEDATA, &received);
			curl_easy_setopt(curl, CURLOPT_HTTPHEADER, gz == 1 ? gzip_header : NULL);
			if (gz == 2)
				world_touch(world);
			long rss = status_kb("VmRSS");
			reset_peak_rss();
			double start = now_ms();
			CURLcode code = curl_easy_perform(curl);
			times[r] = now_ms() - start;
			peaks[r] = (double)(status_kb("VmHWM") - rss) / 1024.0;
			long status = 0;
			curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
			if (code != CURLE_OK || status != 200) {
				fprintf(stderr, "GET /metrics: %s, HTTP %ld\n", curl_easy_strerror(code),
					status);
				abort();
			}
		}
		static const char *const what[][2] = {
		    {"http: GET /metrics, plain, end to end", "http: extra peak RSS while scraping"},
		    {"http: GET /metrics, gzip, end to end", "http: extra peak RSS while scraping (gzip)"},
		    {"http: GET /metrics, plain, 1% changed", "http: extra peak RSS (1% changed)"},
		};
		print_stat(what[gz][0], times, (size_t)runs, "ms");
		print_stat(what[gz][1], peaks, (size_t)runs, "MB");
		printf("  %-44s %10.2f MB\n", "http: bytes received", (double)received / 1e6);
	}
	curl_slist_free_all(gzip_header);
	curl_easy_cleanup(curl);
	fx_http_server_destroy(server);
}

/* FX_BENCH_RW_DUMP=PREFIX: writes the compressed bodies of the last run's requests to
 * PREFIX.<what>.<i>.snappy, to see what snappy leaves as literals (tests/bench/rw_bytes.py). */
static void dump_requests(const struct fx_rw_requests *requests, const char *what)
{
	const char *prefix = getenv("FX_BENCH_RW_DUMP");
	for (size_t i = 0; prefix && i < requests->n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s.%s.%zu.snappy", prefix, what, i);
		FILE *f = fopen(path, "wb");
		if (!f ||
		    fwrite(requests->items[i].body, 1, requests->items[i].len, f) != requests->items[i].len)
			abort();
		fclose(f);
	}
}

static void bench_rw(struct world *world, int runs)
{
	struct fx_label external[] = {{"job", "flow-exporter"}, {"instance", "collector-1.example.net:9590"}};
	struct fx_rw_encoder_config config = {
	    .external_labels = external, .n_external_labels = 2, .max_series_per_request = 2000};
	struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
	double first[MAX_RUNS], again[MAX_RUNS];
	size_t bytes = 0, samples = 0, n_requests = 0;
	int64_t t = (int64_t)time(NULL) * 1000;
	for (int r = 0; r < runs; r++) {
		/* A new encoder state each run for "first"; the same snapshot values again for "again". */
		fx_rw_encoder_destroy(encoder);
		encoder = fx_rw_encoder_create(&config);
		struct fx_snapshot *snapshot = fx_store_snapshot(world->store);
		struct fx_rw_requests requests = {0};
		double start = now_ms();
		if (fx_rw_encode(encoder, snapshot, ++t, 0, &requests) != 0)
			abort();
		first[r] = now_ms() - start;
		bytes = samples = 0;
		n_requests = requests.n;
		for (size_t i = 0; i < requests.n; i++) {
			bytes += requests.items[i].len;
			samples += requests.items[i].n_samples;
		}
		dump_requests(&requests, "v1");
		fx_rw_requests_free(&requests);
		fx_snapshot_destroy(snapshot);
		snapshot = fx_store_snapshot(world->store);
		start = now_ms();
		if (fx_rw_encode(encoder, snapshot, ++t, 0, &requests) != 0)
			abort();
		again[r] = now_ms() - start;
		fx_rw_requests_free(&requests);
		fx_snapshot_destroy(snapshot);
	}
	print_stat("rw: encode, first push", first, (size_t)runs, "ms");
	print_stat("rw: encode, next push (same values)", again, (size_t)runs, "ms");
	printf("  %-44s %10.2f B/sample (%zu samples, %zu requests, %.2f MB)\n", "rw: after snappy",
	       (double)bytes / (double)samples, samples, n_requests, (double)bytes / 1e6);
	fx_rw_encoder_destroy(encoder);
}

/* Remote write 2.0: the same series as bench_rw, in io.prometheus.write.v2.Request. */
static void bench_rw2(struct world *world, int runs)
{
	struct fx_label external[] = {{"job", "flow-exporter"}, {"instance", "collector-1.example.net:9590"}};
	struct fx_rw_encoder_config config = {
	    .external_labels = external, .n_external_labels = 2, .max_series_per_request = 2000};
	/* FX_BENCH_RW_MAX_SERIES: another --remote-write-max-series (2.0 amortises its symbols over more). */
	const char *max = getenv("FX_BENCH_RW_MAX_SERIES");
	if (max)
		config.max_series_per_request = strtoull(max, NULL, 10);
	struct fx_rw2_encoder *encoder = fx_rw2_encoder_create(&config);
	double first[MAX_RUNS];
	size_t bytes = 0, samples = 0, n_requests = 0;
	int64_t t = (int64_t)time(NULL) * 1000;
	for (int r = 0; r < runs; r++) {
		struct fx_snapshot *snapshot = fx_store_snapshot(world->store);
		struct fx_rw_requests requests = {0};
		double start = now_ms();
		if (fx_rw2_encode(encoder, snapshot, ++t, 0, &requests) != 0)
			abort();
		first[r] = now_ms() - start;
		bytes = samples = 0;
		n_requests = requests.n;
		for (size_t i = 0; i < requests.n; i++) {
			bytes += requests.items[i].len;
			samples += requests.items[i].n_samples;
		}
		dump_requests(&requests, "v2");
		fx_rw_requests_free(&requests);
		fx_snapshot_destroy(snapshot);
	}
	print_stat("rw2: encode (2.0)", first, (size_t)runs, "ms");
	printf("  %-44s %10.2f B/sample (%zu samples, %zu requests, %.2f MB)\n", "rw2: after snappy",
	       (double)bytes / (double)samples, samples, n_requests, (double)bytes / 1e6);
	fx_rw2_encoder_destroy(encoder);
}

/* --labels as the daemon parses it; the world's keys carry the built-in labels only. */
/* ---- Checkpoints (--state-dir) ---- */

static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* flow_exporter_checkpoint_bytes_written_total of cp. */
static uint64_t checkpoint_bytes(struct fx_checkpoint *cp)
{
	struct fx_family_list *list = fx_family_list_create();
	uint64_t bytes = 0;
	if (!list || fx_checkpoint_collect(cp, list))
		abort();
	for (size_t i = 0; i < fx_family_list_count(list); i++) {
		const struct fx_family *family = fx_family_list_get(list, i);
		if (strcmp(family->name, "flow_exporter_checkpoint_bytes_written_total") == 0)
			bytes = family->samples[0].integer;
	}
	fx_family_list_destroy(list);
	return bytes;
}

/* A minute of checkpoints, one a second, with `touch` run before each: CPU and wall time per checkpoint
 * (median), and the bytes written over the minute. */
static void checkpoint_minute(struct world *world, struct fx_checkpoint *cp, const char *what,
			      void (*touch)(struct world *))
{
	enum { PER_MINUTE = 60 };
	double cpu[PER_MINUTE], wall[PER_MINUTE];
	uint64_t before = checkpoint_bytes(cp);
	for (int i = 0; i < PER_MINUTE; i++) {
		touch(world);
		double c0 = cpu_ms(), t0 = now_ms();
		if (fx_checkpoint_now(cp) != 0)
			abort();
		cpu[i] = cpu_ms() - c0;
		wall[i] = now_ms() - t0;
	}
	char label[96];
	snprintf(label, sizeof(label), "checkpoint, %s: CPU", what);
	print_stat(label, cpu, PER_MINUTE, "ms");
	snprintf(label, sizeof(label), "checkpoint, %s: wall (fsync)", what);
	print_stat(label, wall, PER_MINUTE, "ms");
	printf("  %-44s %10.2f MB/min\n", "checkpoint: bytes written",
	       (double)(checkpoint_bytes(cp) - before) / 1e6);
}

static void touch_all(struct world *world)
{
	world_fill(world); /* every series gains a record */
}

/* The checkpoint thread's work, run in this thread (fx_checkpoint_now) in a directory of /var/tmp (a disk,
 * not a tmpfs): the first, full checkpoint; a minute at one a second while 1% and then every series
 * change between two; then a restart: the restore of the last checkpoint into an empty store. */
static void bench_checkpoint(struct world *world)
{
	char dir[] = "/var/tmp/fx-bench-checkpoint.XXXXXX";
	if (!mkdtemp(dir))
		abort();
	struct fx_checkpoint_config config = {.dir = dir,
					      .interval_ms = 1000,
					      .store = world->store,
					      .layout = &world->layout,
					      .hostnames = world->hostnames,
					      .max_series = world->store_config.max_series};
	struct fx_checkpoint *cp = fx_checkpoint_create(&config);
	if (!cp)
		abort();
	double c0 = cpu_ms(), t0 = now_ms();
	if (fx_checkpoint_now(cp) != 0)
		abort();
	printf("  %-44s %10.2f ms CPU, %.2f ms wall, %.2f MB\n", "checkpoint: the first (full)",
	       cpu_ms() - c0, now_ms() - t0, (double)checkpoint_bytes(cp) / 1e6);
	checkpoint_minute(world, cp, "1% changed", world_touch);
	checkpoint_minute(world, cp, "all changed", touch_all);
	fx_checkpoint_destroy(cp);

	struct fx_store *store = fx_store_create(&world->store_config);
	config.store = store;
	cp = fx_checkpoint_create(&config);
	c0 = cpu_ms();
	t0 = now_ms();
	if (!store || !cp || fx_checkpoint_restore(cp) != 0)
		abort();
	printf("  %-44s %10.2f ms CPU, %.2f ms wall\n", "checkpoint: restart (restore)", cpu_ms() - c0,
	       now_ms() - t0);
	fx_checkpoint_destroy(cp);
	fx_store_destroy(store);
	char command[128];
	snprintf(command, sizeof(command), "rm -rf %s", dir);
	if (system(command) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* The disk queue (--push-queue-dir): one push of the snapshot appended as 1.0 requests, and as an
 * unconfirmed auto endpoint keeps it (2.0 requests with their 1.0 encoding), then read back and removed;
 * bytes on disk per request and per push, time to append and to drain a push. In a temporary directory
 * under $TMPDIR (/tmp). */
static void bench_queue(struct world *world, int runs)
{
	struct fx_label external[] = {{"job", "flow-exporter"}, {"instance", "collector-1.example.net:9590"}};
	struct fx_rw_encoder_config config = {
	    .external_labels = external, .n_external_labels = 2, .max_series_per_request = 2000};
	struct fx_rw_encoder *encoder = fx_rw_encoder_create(&config);
	struct fx_rw2_encoder *encoder2 = fx_rw2_encoder_create(&config);
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/fx-bench-queue.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		abort();
	int64_t t = (int64_t)time(NULL) * 1000;
	for (int two_parts = 0; two_parts <= 1; two_parts++) {
		double append[MAX_RUNS], drain[MAX_RUNS];
		struct fx_push_queue_stats stats = {0};
		for (int r = 0; r < runs; r++) {
			struct fx_push_queue_config queue_config = {
			    .dir = dir, .what = "bench", .max_bytes = 1ull << 30};
			struct fx_push_queue *queue = fx_push_queue_open(&queue_config);
			struct fx_snapshot *snapshot = fx_store_snapshot(world->store);
			struct fx_rw_requests v1 = {0}, v2 = {0};
			if (fx_rw_encode(encoder, snapshot, ++t, 0, &v1) != 0 ||
			    (two_parts && fx_rw2_encode(encoder2, snapshot, t, 0, &v2) != 0))
				abort();
			double start = now_ms();
			for (size_t i = 0; i < v1.n; i++) {
				struct fx_push_queue_entry entry = {.n_parts = 1};
				const struct fx_rw_request *parts[2] = {
				    two_parts ? &v2.items[i] : &v1.items[i], &v1.items[i]};
				for (size_t p = 0; p < (two_parts ? 2u : 1u); p++) {
					bool is_v2 = two_parts && p == 0;
					entry.parts[p] =
					    (struct fx_push_queue_part){.version = is_v2 ? 2 : 1,
									.body = parts[p]->body,
									.len = parts[p]->len,
									.n_series = parts[p]->n_series,
									.n_samples = parts[p]->n_samples,
									.timestamp_ms = t};
					snprintf(entry.parts[p].content_type,
						 sizeof(entry.parts[p].content_type), "%s",
						 is_v2 ? FX_RW2_CONTENT_TYPE : "application/x-protobuf");
					entry.n_parts = p + 1;
				}
				if (fx_push_queue_append(queue, &entry) != 0)
					abort();
			}
			append[r] = now_ms() - start;
			fx_push_queue_stats(queue, &stats);
			start = now_ms();
			struct fx_push_queue_entry entry;
			while (fx_push_queue_peek(queue, &entry) == 0) {
				fx_push_queue_entry_free(&entry);
				if (fx_push_queue_pop(queue) != 0)
					abort();
			}
			drain[r] = now_ms() - start;
			fx_rw_requests_free(&v1);
			fx_rw_requests_free(&v2);
			fx_snapshot_destroy(snapshot);
			fx_push_queue_close(queue);
		}
		const char *what = two_parts ? "queue (auto: 2.0 + 1.0)" : "queue (1.0)";
		char label[64];
		snprintf(label, sizeof(label), "%s: append a push", what);
		print_stat(label, append, (size_t)runs, "ms");
		snprintf(label, sizeof(label), "%s: read+remove a push", what);
		print_stat(label, drain, (size_t)runs, "ms");
		snprintf(label, sizeof(label), "%s: on disk", what);
		printf("  %-44s %10.0f B/request (%" PRIu64 " requests, %.2f MB a push on disk)\n", label,
		       (double)stats.bytes / (double)stats.requests, stats.requests,
		       (double)stats.bytes / 1e6);
	}
	rmdir(dir);
	fx_rw_encoder_destroy(encoder);
	fx_rw2_encoder_destroy(encoder2);
}

static int parse_labels(const char *text)
{
	struct fx_key_layout layout;
	char why[256];
	if (fx_key_layout_parse(&layout, text, NULL, 0, NULL, why, sizeof(why)) || layout.n_extra) {
		fprintf(stderr, "--labels %s: %s\n", text,
			layout.n_extra ? "only built-in labels and names" : why);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *sizes = "10000,100000,1000000";
	const char *only = NULL;
	int runs = 7;
	struct world_options options = {
	    .n_hosts = N_HOSTS,
	    .labels =
		"hostname,source_as,source_as_name,destination_as,destination_as_name,iface_in,iface_out"};
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--series") == 0)
			sizes = argv[i + 1];
		else if (strcmp(argv[i], "--max-series") == 0)
			options.max_series = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--top-n") == 0)
			options.top_n = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--hosts") == 0)
			options.n_hosts = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--runs") == 0)
			runs = (int)strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--only") == 0)
			only = argv[i + 1];
		else if (strcmp(argv[i], "--dump") == 0)
			dump_path = argv[i + 1];
		else if (strcmp(argv[i], "--labels") == 0 && parse_labels(argv[i + 1]))
			return 2;
		else if (strcmp(argv[i], "--labels") == 0)
			options.labels = argv[i + 1];
		else {
			fprintf(stderr,
				"usage: %s [--series N,N...] [--runs R] [--only "
				"store,snapshot,render,http,rw,rw2,queue,checkpoint] [--dump FILE] "
				"[--max-series M] [--top-n N] "
				"[--hosts H (1..%d)] [--labels LIST]\n",
				argv[0], N_HOSTS);
			return 2;
		}
	}
	if (runs < 1 || runs > MAX_RUNS)
		runs = 7;
	if (options.n_hosts < 1 || options.n_hosts > N_HOSTS)
		options.n_hosts = N_HOSTS;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	char *list = strdup(sizes);
	for (char *save = NULL, *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		size_t n = strtoull(item, NULL, 10);
		struct world world;
		world_create(&world, n, &options);
		printf("%zu series (%d runs; median [min..max]; labels %s)\n", n, runs, options.labels);
		bench_store(&world);
		int section_runs = n >= 1000000 && runs > 3 ? 3 : runs;
		if (wanted(only, "snapshot"))
			bench_snapshot(&world, section_runs);
		if (wanted(only, "render"))
			bench_render(&world, section_runs);
		if (wanted(only, "http"))
			bench_http(&world, section_runs);
		if (wanted(only, "rw"))
			bench_rw(&world, section_runs);
		if (only && wanted(only, "checkpoint")) /* writes to disk: only when asked */
			bench_checkpoint(&world);
		if (wanted(only, "rw2"))
			bench_rw2(&world, section_runs);
		if (wanted(only, "queue"))
			bench_queue(&world, section_runs);
		world_destroy(&world);
	}
	free(list);
	curl_global_cleanup();
	return 0;
}
