/* The counting step: direction from the local ASNs, label selection merging series with exact sums, the
 * hostname fallback, the series limit, and every record kind counted in the statistics. */
#include <stdlib.h>

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
	while (!fx_ingest_flush(f->ingest))
		fx_store_tick(f->store);
	return fx_store_snapshot(f->store);
}

static void count(struct fixture *f, const char *text)
{
	fx_ingest_message(f->ingest, text, strlen(text), 1000);
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

	/* The delta table's limit: new series past it are refused and counted; existing ones keep counting. */
	setup(&f, FX_LABEL_ALL, 3);
	for (unsigned i = 0; i < 5; i++)
		count(&f, record("r1", "", 15169, 100 + i, 0, 0, 1, 1));
	count(&f, record("r1", "", 15169, 100, 0, 0, 1, 1));
	stats = fx_ingest_get_stats(f.ingest);
	CHECK_EQ_U64(stats->counted, 4);
	CHECK_EQ_U64(stats->refused_series_limit, 2);
	snapshot = flush(&f);
	CHECK_EQ_U64(snapshot->n_series, 3);
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
	return check_exit();
}
