/* bench_decode: one-core microbenchmarks of the ingest path without Kafka.
 *
 *   bench_decode [--records N] [--repeat K] [--hosts H --asns A --ifaces I] [--per-message R]
 *                [--only scanner|jansson|counter] [--sampling-rates FILE]
 *
 * Generates N distinct pmacct records (bench_gen.h), then times, on this thread's CPU clock, K passes of:
 *   scanner  fx_decode_record (the zero-allocation fast path, src/flow_decode.c) over every record;
 *   jansson  fx_decode_record_jansson (the reference, src/flow_decode_ref.c) over every record;
 *   counter  fx_ingest_message over messages of R records (decode + classify + count into the delta
 *            table, flushing to a store every 100,000 records as the consumer does every 100 ms).
 * With --sampling-rates, the counter pass renormalizes through that rates file (sampling.h) and
 * --sampling-rate 10, so that every record pays the file lookup as well as the multiplication.
 * Prints one line per pass and a summary "DECODE scanner_us=... jansson_us=... ratio=... counter_us=..."
 * with the median per record. Exits 1 if the two decoders disagree on any record's kind. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_gen.h"
#include "fx/flow_decode.h"
#include "fx/ingest.h"
#include "fx/intern.h"
#include "fx/sampling.h"
#include "fx/store.h"

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *values, size_t n)
{
	qsort(values, n, sizeof(*values), compare_double);
	return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static unsigned long arg(const char *name, const char *value)
{
	char *end = NULL;
	errno = 0;
	unsigned long n = strtoul(value, &end, 10);
	if (errno || end == value || *end || n == 0) {
		fprintf(stderr, "bench_decode: %s: expected a positive number, got %s\n", name, value);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	size_t n_records = 200000, repeat = 5, per_message = 1;
	uint32_t hosts = 10, asns = 500, ifaces = 10;
	const char *only = NULL, *rates_file = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--records"))
			n_records = arg(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--repeat"))
			repeat = arg(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--hosts"))
			hosts = (uint32_t)arg(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--asns"))
			asns = (uint32_t)arg(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--ifaces"))
			ifaces = (uint32_t)arg(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--per-message"))
			per_message = arg(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--only"))
			only = argv[i + 1];
		else if (!strcmp(argv[i], "--sampling-rates"))
			rates_file = argv[i + 1];
		else {
			fprintf(stderr, "bench_decode: unknown option %s\n", argv[i]);
			return 2;
		}
	}

	struct bench_gen gen;
	bench_gen_init(&gen, hosts, asns, ifaces, 64496);
	/* All records in one buffer, newline-separated, so messages of R records are slices of it. */
	char *text = malloc(n_records * 512);
	size_t *starts = malloc((n_records + 1) * sizeof(*starts));
	size_t len = 0;
	for (size_t j = 0; j < n_records; j++) {
		starts[j] = len;
		len += bench_gen_record(&gen, j, text + len, 511);
		text[len++] = '\n';
	}
	starts[n_records] = len;

	struct fx_decoder *decoder = fx_decoder_create(65536);
	struct fx_local_asns local = {.asn = {64496}, .n = 1};
	struct fx_intern *hostnames = fx_intern_create(100000);
	struct fx_store_config store_config = {
	    .n_workers = 1, .max_series = 2000000, .label_mask = FX_LABEL_ALL};
	struct fx_store *store = fx_store_create(&store_config);
	struct fx_ingest_config ingest_config = {.local = &local,
						 .label_mask = FX_LABEL_ALL,
						 .max_series = 2000000,
						 .max_record_bytes = 65536,
						 .hostnames = hostnames,
						 .store = store,
						 .worker = 0};
	struct fx_sampling *sampling = NULL;
	if (rates_file) {
		struct fx_parse_error error = {0};
		struct fx_sampling_config sampling_config = {10, rates_file, 1};
		if (!(sampling = fx_sampling_create(&sampling_config, &error))) {
			fprintf(stderr, "bench_decode: %s: line %zu: %s\n", rates_file, error.line, error.message);
			return 2;
		}
		ingest_config.sampling = sampling;
	}
	struct fx_ingest *ingest = fx_ingest_create(&ingest_config);
	if (!decoder || !hostnames || !store || !ingest)
		return 1;

	/* The decoders must agree (the unit and fuzz tests check this far more thoroughly). */
	for (size_t j = 0; j < n_records && j < 1000; j++) {
		struct fx_flow a, b;
		size_t record_len = starts[j + 1] - starts[j] - 1;
		if (fx_decode_record(decoder, text + starts[j], record_len, &a) != FX_REC_FLOW ||
		    fx_decode_record_jansson(decoder, text + starts[j], record_len, &b) != FX_REC_FLOW) {
			fprintf(stderr, "bench_decode: record %zu is not a flow for both decoders\n", j);
			return 1;
		}
	}

	double *scanner = calloc(repeat, sizeof(double)), *jansson = calloc(repeat, sizeof(double));
	double *counting_us = calloc(repeat, sizeof(double));
	volatile uint64_t sink = 0;
	for (size_t k = 0; k < repeat; k++) {
		if (!only || !strcmp(only, "scanner")) {
			double t = thread_cpu_s();
			for (size_t j = 0; j < n_records; j++) {
				struct fx_flow flow;
				fx_decode_record(decoder, text + starts[j], starts[j + 1] - starts[j] - 1,
						 &flow);
				sink += flow.bytes;
			}
			scanner[k] = (thread_cpu_s() - t) * 1e6 / n_records;
		}
		if (!only || !strcmp(only, "jansson")) {
			double t = thread_cpu_s();
			for (size_t j = 0; j < n_records; j++) {
				struct fx_flow flow;
				fx_decode_record_jansson(decoder, text + starts[j],
							 starts[j + 1] - starts[j] - 1, &flow);
				sink += flow.bytes;
			}
			jansson[k] = (thread_cpu_s() - t) * 1e6 / n_records;
		}
		if (!only || !strcmp(only, "counter")) {
			double t = thread_cpu_s();
			size_t since_flush = 0;
			for (size_t j = 0; j < n_records; j += per_message) {
				size_t last = j + per_message < n_records ? j + per_message : n_records;
				fx_ingest_message(ingest, text + starts[j], starts[last] - starts[j] - 1, 0);
				since_flush += last - j;
				if (since_flush >= 100000) {
					fx_ingest_flush(ingest, true);
					since_flush = 0;
				}
			}
			counting_us[k] = (thread_cpu_s() - t) * 1e6 / n_records;
		}
		printf("pass %zu: scanner %.3f us/record, jansson %.3f us/record, counter %.3f us/record\n",
		       k, scanner[k], jansson[k], counting_us[k]);
	}
	const struct fx_ingest_stats *stats = fx_ingest_get_stats(ingest);
	if (stats->counted != (only && strcmp(only, "counter") ? 0 : n_records * repeat)) {
		fprintf(stderr, "bench_decode: counted %llu records, expected %zu\n",
			(unsigned long long)stats->counted, n_records * repeat);
		return 1;
	}
	double s = median(scanner, repeat), j = median(jansson, repeat), c = median(counting_us, repeat);
	printf("DECODE records=%zu series=%llu scanner_us=%.3f jansson_us=%.3f ratio=%.1f counter_us=%.3f\n",
	       n_records, (unsigned long long)gen.series, s, j, s > 0 ? j / s : 0, c);
	fx_ingest_flush(ingest, true);
	fx_ingest_destroy(ingest);
	fx_sampling_destroy(sampling);
	fx_store_destroy(store);
	fx_intern_destroy(hostnames);
	fx_decoder_destroy(decoder);
	free(text);
	free(starts);
	free(scanner);
	free(jansson);
	free(counting_us);
	return (int)(sink & 0);
}
