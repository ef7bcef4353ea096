/* bench_text: the text exposition alone, on a hand-built snapshot (no store): 100,000 series from 20
 * routers and 2,000 ASNs with names of a typical length (cidr-report's average is about 25 bytes), interface
 * indexes, every label kept, both directions: 400,000 sample lines. Prints the best of a few runs for the
 * render alone and for render + gzip (level 1, as the HTTP server does). Moved from test_expo_text.c, where
 * it ran as part of a unit test; bench_output.c measures the same render on a store's snapshot.
 *
 *   bench_text [--series N] [--runs R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "fx/expo_text.h"

#define N_ASNS 2000
#define N_HOSTS 20

static void require(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "bench_text: %s failed\n", what);
		exit(1);
	}
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_series(const void *a, const void *b)
{
	return fx_series_key_compare(&((const struct fx_series *)a)->key,
				     &((const struct fx_series *)b)->key);
}

static struct fx_asn_map *make_names(void)
{
	struct fx_buf asn_list;
	fx_buf_init(&asn_list, 1u << 20);
	for (uint32_t asn = 64000; asn < 64000 + N_ASNS; asn++)
		require(fx_buf_printf(&asn_list, "%u\tEXAMPLE-%u - Example Inc., ZZ\n", asn, asn) == 0,
			"AS list");
	struct fx_asn_map *names = fx_asn_map_parse(asn_list.data, asn_list.len, NULL);
	fx_buf_free(&asn_list);
	require(names != NULL, "AS-name map");
	return names;
}

/* A sorted heap snapshot of n series, as a store would hand it over. */
static struct fx_snapshot *make_snapshot(size_t n)
{
	static char hostnames[N_HOSTS][48];
	for (int h = 0; h < N_HOSTS; h++)
		snprintf(hostnames[h], sizeof(hostnames[h]), "router-%02d.pop.example.net", h);
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	require(snapshot != NULL, "snapshot");
	snapshot->series = calloc(n ? n : 1, sizeof(*snapshot->series));
	snapshot->self = fx_family_list_create();
	require(snapshot->series && snapshot->self, "snapshot");
	uint64_t state = 0x9e3779b97f4a7c15u;
	for (size_t i = 0; i < n; i++) {
		state = state * 6364136223846793005u + 1442695040888963407u;
		uint32_t r = (uint32_t)(state >> 33);
		snapshot->series[i] = (struct fx_series){
		    .key = {hostnames[i % N_HOSTS], 64000 + (uint32_t)(i / N_HOSTS) % N_ASNS,
			    64000 + r % N_ASNS, (uint32_t)(i / (N_HOSTS * N_ASNS)), r % 48, FX_LABEL_ALL},
		    .bytes = {[FX_DIR_RECEIVE] = r * 1500ull, [FX_DIR_TRANSMIT] = (uint64_t)r * 97},
		    .packets = {[FX_DIR_RECEIVE] = r, [FX_DIR_TRANSMIT] = r / 3},
		    .seen = (1u << FX_DIR_RECEIVE) | (1u << FX_DIR_TRANSMIT),
		};
	}
	qsort(snapshot->series, n, sizeof(*snapshot->series), compare_series);
	snapshot->n_series = n;
	snapshot->label_mask = FX_LABEL_ALL;
	snapshot->names = make_names();
	return snapshot;
}

static size_t gzip_len(const char *data, size_t len)
{
	z_stream stream;
	memset(&stream, 0, sizeof(stream));
	require(deflateInit2(&stream, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
	uLong bound = deflateBound(&stream, len);
	unsigned char *compressed = malloc(bound);
	require(compressed != NULL, "gzip buffer");
	stream.next_in = (Bytef *)data;
	stream.avail_in = (uInt)len;
	stream.next_out = compressed;
	stream.avail_out = (uInt)bound;
	require(deflate(&stream, Z_FINISH) == Z_STREAM_END, "deflate");
	size_t total = stream.total_out;
	deflateEnd(&stream);
	free(compressed);
	return total;
}

int main(int argc, char **argv)
{
	size_t n_series = 100000;
	int runs = 3;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--series") == 0)
			n_series = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--runs") == 0)
			runs = (int)strtol(argv[i + 1], NULL, 10);
	}
	if (runs < 1)
		runs = 1;
	struct fx_snapshot *snapshot = make_snapshot(n_series);
	double best_render = 1e9, best_gzip = 1e9;
	size_t text_len = 0, compressed_len = 0;
	for (int run = 0; run < runs; run++) {
		struct fx_buf out;
		fx_buf_init(&out, (size_t)4 << 30);
		double start = now_seconds();
		require(fx_expo_text_render(snapshot, &out) == 0, "render");
		double rendered = now_seconds();
		compressed_len = gzip_len(out.data, out.len);
		double compressed_at = now_seconds();
		text_len = out.len;
		if (rendered - start < best_render)
			best_render = rendered - start;
		if (compressed_at - start < best_gzip)
			best_gzip = compressed_at - start;
		fx_buf_free(&out);
	}
	printf(
	    "bench_text: %zu series (%zu lines): render %.1f ms (%zu bytes); render + gzip level 1 %.1f ms "
	    "(%zu bytes); best of %d\n",
	    n_series, 4 * n_series, best_render * 1e3, text_len, best_gzip * 1e3, compressed_len, runs);
	fx_snapshot_destroy(snapshot);
	return 0;
}
