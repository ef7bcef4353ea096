/* The counting step: direction from the local ASNs, label selection merging series with exact sums, the
 * hostname fallback, the series limit, and every record kind counted in the statistics. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "fx/ingest.h"

static const char *record(const char *label, const char *peer, unsigned as_src, unsigned as_dst, unsigned in,
			  unsigned out, unsigned long long bytes, unsigned long long packets)
{
	static char text[512];
	snprintf(text, sizeof(text),
		 "{\"event_type\": \"purge\", \"label\": \"%s\", \"as_src\": %u, \"as_dst\": %u, \"peer_ip_src\": "
		 "\"%s\", \"iface_in\": %u, \"iface_out\": %u, \"packets\": %llu, \"bytes\": %llu}",
		 label, as_src, as_dst, peer, in, out, packets, bytes);
	return text;
}

struct fixture {
	struct fx_local_asns local;
	struct fx_intern *hostnames;
	struct fx_store *store;
	struct fx_ingest *ingest;
};

static void setup(struct fixture *f, uint32_t label_mask, size_t max_series)
{
	f->local = (struct fx_local_asns){.asn = {15169, 4200000001u}, .n = 2};
	f->hostnames = fx_intern_create(100);
	struct fx_store_config store = {.n_workers = 1, .max_series = 1000, .label_mask = label_mask};
	f->store = fx_store_create(&store);
	struct fx_ingest_config config = {
		.local = &f->local,
		.label_mask = label_mask,
		.max_series = max_series,
		.max_record_bytes = 4096,
		.hostnames = f->hostnames,
		.store = f->store,
	};
	f->ingest = fx_ingest_create(&config);
}

static void teardown(struct fixture *f)
{
	fx_ingest_destroy(f->ingest);
	fx_store_destroy(f->store);
	fx_intern_destroy(f->hostnames);
}

static struct fx_snapshot *flush(struct fixture *f)
{
	CHECK(fx_ingest_flush(f->ingest, true));
	return fx_store_snapshot(f->store);
}

static void count(struct fixture *f, const char *text)
{
	fx_ingest_message(f->ingest, text, strlen(text), 1000);
}

/* A transmit record of `label`/`peer` with a sampling_rate (none when rate < 0). */
static const char *sampled(const char *label, const char *peer, unsigned long long bytes,
			   unsigned long long packets, long long rate)
{
	static char text[512];
	char rate_text[48] = "";
	if (rate >= 0)
		snprintf(rate_text, sizeof(rate_text), ", \"sampling_rate\": %lld", rate);
	snprintf(
	    text, sizeof(text),
	    "{\"label\": \"%s\", \"peer_ip_src\": \"%s\", \"as_src\": 15169, \"as_dst\": 1, \"packets\": "
	    "%llu, \"bytes\": %llu%s}",
	    label, peer, packets, bytes, rate_text);
	return text;
}

static uint64_t bytes_of(const struct fx_snapshot *snapshot, const char *hostname)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < snapshot->n_series; i++)
		if (snapshot->series[i].key.hostname && !strcmp(snapshot->series[i].key.hostname, hostname))
			sum += snapshot->series[i].bytes[FX_DIR_TRANSMIT];
	return sum;
}

static uint64_t family_value(struct fx_family_list *list, const char *name, const char *label_value)
{
	for (size_t i = 0; i < fx_family_list_count(list); i++) {
		const struct fx_family *family = fx_family_list_get(list, i);
		if (strcmp(family->name, name))
			continue;
		for (size_t s = 0; s < family->n_samples; s++)
			if (!label_value || (family->samples[s].n_labels &&
					     !strcmp(family->samples[s].labels[0].value, label_value)))
				return family->samples[s].integer;
	}
	return UINT64_MAX;
}

static void write_text(const char *path, const char *text)
{
	FILE *file = fopen(path, "w");
	CHECK(file != NULL);
	if (!file)
		return;
	fputs(text, file);
	fclose(file);
}

/* Sampling: the file wins, then the record's rate (1 = pmacct renormalized: never multiplied again), then
 * --sampling-rate, else unknown (1:1, counted); an overflowing product is an invalid record; a reload
 * swaps the map between messages and a broken file keeps the old one. */
static void test_sampling(void)
{
	char path[] = "/tmp/fx-test-rates-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	write_text(path, "exporter,rate\r\nr2,1000\r\n\"10.0.0.7\",3\r\n");
	struct fx_parse_error error = {0};
	struct fx_sampling_config sampling_config = {.default_rate = 10, .rates_file = path, .n_workers = 1};
	struct fx_sampling *sampling = fx_sampling_create(&sampling_config, &error);
	CHECK(sampling != NULL);
	if (!sampling)
		return;
	struct fixture f;
	struct fx_local_asns local = {.asn = {15169}, .n = 1};
	f.hostnames = fx_intern_create(100);
	struct fx_store_config store = {.n_workers = 1, .max_series = 1000, .label_mask = FX_LABEL_HOSTNAME};
	f.store = fx_store_create(&store);
	struct fx_ingest_config config = {.local = &local,
					  .label_mask = FX_LABEL_HOSTNAME,
					  .max_series = 100,
					  .max_record_bytes = 4096,
					  .hostnames = f.hostnames,
					  .store = f.store,
					  .sampling = sampling};
	f.ingest = fx_ingest_create(&config);
	count(&f, sampled("r1", "10.0.0.1", 1000, 2, 100)); /* record: x100 */
	count(&f, sampled("r1", "10.0.0.1", 7, 1, 1));	    /* renormalized by pmacct: x1 */
	count(&f, sampled("r1", "10.0.0.1", 5, 1, -1));	    /* no rate: --sampling-rate x10 */
	count(&f, sampled("r1", "10.0.0.1", 3, 1, 0));	    /* nfacctd's 0: --sampling-rate x10 */
	count(&f, sampled("r2", "10.0.0.2", 2, 1, 100));    /* the file wins: x1000 */
	count(&f, sampled("", "10.0.0.7", 4, 1, -1));	    /* the file by peer_ip_src: x3 */
	count(&f, sampled("r3", "10.0.0.7", 6, 1, 50));	    /* label not in the file, its peer is: x3 */
	count(&f, sampled("r1", "10.0.0.1", UINT64_C(1) << 62, 1, 4)); /* 2^64 does not fit: invalid */
	count(&f, sampled("r1", "10.0.0.1", 1, UINT64_C(1) << 62, 4)); /* nor in packets */
	count(&f, sampled("r1", "10.0.0.1", UINT64_C(1) << 62, 1, 3)); /* 3 * 2^62 < 2^64: counted */
	struct fx_snapshot *snapshot = flush(&f);
	CHECK_EQ_U64(bytes_of(snapshot, "r1"), 100000 + 7 + 50 + 30 + 3 * (UINT64_C(1) << 62));
	CHECK_EQ_U64(bytes_of(snapshot, "r2"), 2000);
	CHECK_EQ_U64(bytes_of(snapshot, "10.0.0.7"), 12);
	CHECK_EQ_U64(bytes_of(snapshot, "r3"), 18);
	const struct fx_ingest_stats *stats = fx_ingest_get_stats(f.ingest);
	CHECK_EQ_U64(stats->records[FX_REC_INVALID_SAMPLING_OVERFLOW], 2);
	CHECK_EQ_U64(stats->records[FX_REC_FLOW], 8);
	CHECK_EQ_U64(stats->counted, 8);
	struct fx_family_list *self = fx_family_list_create();
	CHECK(fx_sampling_collect(sampling, self) == 0);
	CHECK_EQ_U64(family_value(self, "flow_exporter_records_sampling_rate_total", "record"), 2);
	CHECK_EQ_U64(family_value(self, "flow_exporter_records_sampling_rate_total", "record_one"), 1);
	CHECK_EQ_U64(family_value(self, "flow_exporter_records_sampling_rate_total", "flag"), 2);
	CHECK_EQ_U64(family_value(self, "flow_exporter_records_sampling_rate_total", "file"), 3);
	CHECK_EQ_U64(family_value(self, "flow_exporter_records_sampling_rate_total", "unknown"), 0);
	CHECK_EQ_U64(family_value(self, "flow_exporter_sampling_rates", NULL), 2);
	fx_family_list_destroy(self);
	fx_snapshot_destroy(snapshot);

	/* Reload: the next message sees the new rate; a broken file is refused with its line, the old map
	 * stays. */
	write_text(path, "exporter,rate\nr2,5\n");
	CHECK(fx_sampling_reload(sampling, &error) == 0);
	count(&f, sampled("r2", "10.0.0.2", 2, 1, 100));
	write_text(path, "exporter,rate\nr2,7\nr4,zero\n");
	CHECK(fx_sampling_reload(sampling, &error) == -1);
	CHECK_EQ_U64(error.line, 3);
	count(&f, sampled("r2", "10.0.0.2", 2, 1, 100));
	snapshot = flush(&f);
	CHECK_EQ_U64(bytes_of(snapshot, "r2"), 2000 + 10 + 10);
	fx_snapshot_destroy(snapshot);
	teardown(&f);
	fx_sampling_destroy(sampling);

	/* No rate anywhere: counted 1:1 and visible as unknown. */
	struct fx_sampling_config none = {.n_workers = 1};
	sampling = fx_sampling_create(&none, &error);
	setup(&f, FX_LABEL_HOSTNAME, 100);
	fx_ingest_destroy(f.ingest);
	config.store = f.store;
	config.hostnames = f.hostnames;
	config.sampling = sampling;
	f.ingest = fx_ingest_create(&config);
	count(&f, sampled("r1", "10.0.0.1", 9, 1, -1));
	snapshot = flush(&f);
	CHECK_EQ_U64(bytes_of(snapshot, "r1"), 9);
	self = fx_family_list_create();
	CHECK(fx_sampling_collect(sampling, self) == 0);
	CHECK_EQ_U64(family_value(self, "flow_exporter_records_sampling_rate_total", "unknown"), 1);
	fx_family_list_destroy(self);
	fx_snapshot_destroy(snapshot);
	teardown(&f);
	fx_sampling_destroy(sampling);
	unlink(path);
}

int main(void)
{
	struct fixture f;

	/* Direction and the hostname fallback, all labels kept. */
	setup(&f, FX_LABEL_ALL, 100);
	count(&f, record("r1", "10.0.0.1", 15169, 64496, 1, 2, 1000, 10));       /* transmit */
	count(&f, record("r1", "10.0.0.1", 64496, 4200000001u, 1, 2, 500, 5));   /* receive */
	count(&f, record("", "10.0.0.9", 64496, 15169, 3, 4, 7, 1));             /* receive, hostname = peer */
	count(&f, record("r1", "10.0.0.1", 64496, 64497, 1, 2, 99, 9));          /* neither: not counted */
	count(&f, record("r1", "10.0.0.1", 15169, 15169, 1, 2, 11, 1));          /* both local: transmit */
	struct fx_snapshot *snapshot = flush(&f);
	CHECK_EQ_U64(snapshot->n_series, 4);
	uint64_t rx = 0, tx = 0;
	int fallback = 0;
	for (size_t i = 0; i < snapshot->n_series; i++) {
		rx += snapshot->series[i].bytes[FX_DIR_RECEIVE];
		tx += snapshot->series[i].bytes[FX_DIR_TRANSMIT];
		if (snapshot->series[i].key.hostname && !strcmp(snapshot->series[i].key.hostname, "10.0.0.9"))
			fallback++;
		CHECK(snapshot->series[i].key.present ==
		      (FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS | FX_LABEL_IFACE_IN |
		       FX_LABEL_IFACE_OUT));
	}
	CHECK_EQ_U64(rx, 507);
	CHECK_EQ_U64(tx, 1011);
	CHECK(fallback == 1);
	const struct fx_ingest_stats *stats = fx_ingest_get_stats(f.ingest);
	CHECK_EQ_U64(stats->messages, 5);
	CHECK_EQ_U64(stats->counted, 4);
	CHECK_EQ_U64(stats->not_local, 1);
	CHECK_EQ_U64(stats->records[FX_REC_FLOW], 5);
	fx_snapshot_destroy(snapshot);
	teardown(&f);

	/* Dropping labels merges series, with exact sums: keep only hostname. */
	setup(&f, FX_LABEL_HOSTNAME, 100);
	for (unsigned i = 0; i < 50; i++)
		count(&f, record(i % 2 ? "r1" : "r2", "10.0.0.1", 64496 + i, 15169, i, i + 1, 1000 + i, 1));
	snapshot = flush(&f);
	CHECK_EQ_U64(snapshot->n_series, 2);
	uint64_t r1 = 0, r2 = 0;
	for (unsigned i = 0; i < 50; i++)
		*(i % 2 ? &r1 : &r2) += 1000 + i;
	for (size_t i = 0; i < snapshot->n_series; i++) {
		const struct fx_series *series = &snapshot->series[i];
		CHECK(series->key.present == FX_LABEL_HOSTNAME);
		CHECK(series->key.as_src == 0 && series->key.iface_in == 0);
		CHECK_EQ_U64(series->bytes[FX_DIR_RECEIVE], !strcmp(series->key.hostname, "r1") ? r1 : r2);
		CHECK_EQ_U64(series->packets[FX_DIR_RECEIVE], 25);
	}
	fx_snapshot_destroy(snapshot);
	teardown(&f);

	/* A message with several records and bad ones between them (kafka_multi_values). */
	setup(&f, FX_LABEL_ALL, 100);
	char message[2048];
	snprintf(message, sizeof(message), "%s\n{\"bytes\": \n", record("r1", "", 15169, 1, 0, 0, 10, 1));
	size_t len = strlen(message);
	snprintf(message + len, sizeof(message) - len, "%s\n{\"event_type\": \"purge_init\"}\n",
		 record("r1", "", 15169, 1, 0, 0, 32, 2));
	count(&f, message);
	snapshot = flush(&f);
	CHECK_EQ_U64(snapshot->n_series, 1);
	CHECK_EQ_U64(snapshot->series[0].bytes[FX_DIR_TRANSMIT], 42);
	CHECK_EQ_U64(snapshot->series[0].packets[FX_DIR_TRANSMIT], 3);
	stats = fx_ingest_get_stats(f.ingest);
	CHECK_EQ_U64(stats->records[FX_REC_INVALID_JSON], 1);
	CHECK_EQ_U64(stats->records[FX_REC_MARKER], 1);
	CHECK_EQ_U64(stats->counted, 2);
	fx_snapshot_destroy(snapshot);
	teardown(&f);

	/* The delta table's bound: a delta full of keys is handed over at once, so nothing is refused
	 * there; only the store's own limit (1000 here) decides what is held. Twice over the bound, so that
	 * the second hand-over finds the first one not merged yet. */
	setup(&f, FX_LABEL_ALL, 3);
	for (unsigned i = 0; i < 8; i++)
		count(&f, record("r1", "", 15169, 100 + i, 0, 0, 1, 1));
	count(&f, record("r1", "", 15169, 100, 0, 0, 1, 1));
	stats = fx_ingest_get_stats(f.ingest);
	CHECK_EQ_U64(stats->counted, 9);
	CHECK_EQ_U64(stats->refused_series_limit, 0);
	snapshot = flush(&f);
	CHECK_EQ_U64(snapshot->n_series, 8);
	uint64_t bytes_100 = 0;
	for (size_t i = 0; i < snapshot->n_series; i++)
		if (snapshot->series[i].key.as_dst == 100)
			bytes_100 = snapshot->series[i].bytes[FX_DIR_TRANSMIT];
	CHECK_EQ_U64(bytes_100, 2);
	fx_snapshot_destroy(snapshot);
	teardown(&f);

	/* The classifier alone: several local ASNs, AS 0 as a valid local AS, many ASNs (bisection). */
	struct fx_local_asns local = {.asn = {0, 15169}, .n = 2};
	CHECK(fx_classify(&local, 0, 5) == FX_DIR_TRANSMIT);
	CHECK(fx_classify(&local, 5, 15169) == FX_DIR_RECEIVE);
	CHECK(fx_classify(&local, 5, 6) == FX_DIR_NONE);
	struct fx_local_asns many = {.n = 40};
	for (unsigned i = 0; i < 40; i++)
		many.asn[i] = 1000 + 2 * i;
	CHECK(fx_classify(&many, 1078, 1) == FX_DIR_TRANSMIT);
	CHECK(fx_classify(&many, 1, 1000) == FX_DIR_RECEIVE);
	CHECK(fx_classify(&many, 1001, 1079) == FX_DIR_NONE);
	test_sampling();
	return check_exit();
}
