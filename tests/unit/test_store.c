/* The store: deltas handed over by several threads at once add up exactly; snapshots are sorted copies that
 * later updates do not change; expired series become tombstones; collectors run on every snapshot. */
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "fx/clock.h"
#include "fx/store.h"

#define WORKERS 4
#define ROUNDS 2000
#define KEYS 50

static const char *const hosts[] = {"r1", "r2", "r3"};

static struct fx_series_key key_of(unsigned i)
{
	struct fx_series_key key = {.hostname = hosts[i % 3], .as_src = i, .as_dst = 64500, .present = 0x0b};
	return key;
}

struct worker_arg {
	struct fx_store *store;
	size_t index;
};

/* Each worker adds 1 byte / 1 packet per round to every key, receive direction, and flushes often. */
static void *worker_main(void *opaque)
{
	struct worker_arg *arg = opaque;
	struct fx_series_table *delta = fx_series_table_create(1000);
	for (unsigned round = 0; round < ROUNDS; round++) {
		for (unsigned k = 0; k < KEYS; k++) {
			struct fx_series_key key = key_of(k);
			if (fx_series_table_add(delta, &key, FX_DIR_RECEIVE, k + 1, 1, 1000 + round))
				abort();
		}
		if (round % 7 == 0)
			delta = fx_store_handoff(arg->store, arg->index, delta);
	}
	/* Hand the rest over, merging when the slot is still busy. */
	while (fx_series_table_count(delta)) {
		delta = fx_store_handoff(arg->store, arg->index, delta);
		if (fx_series_table_count(delta))
			fx_store_tick(arg->store);
	}
	fx_series_table_destroy(delta);
	return NULL;
}

static int collect_one(void *opaque, struct fx_family_list *out)
{
	int *calls = opaque;
	(*calls)++;
	return fx_family_begin(out, "test_metric", "A test.", FX_METRIC_GAUGE) || fx_family_add_u64(out, 7, 0, NULL);
}

int main(void)
{
	struct fx_store_config config = {.n_workers = WORKERS, .max_series = 1000, .label_mask = FX_LABEL_ALL};
	struct fx_store *store = fx_store_create(&config);
	int calls = 0;
	CHECK(fx_store_add_collector(store, collect_one, &calls) == 0);

	/* Concurrent hand-overs while another thread keeps taking snapshots. */
	pthread_t threads[WORKERS];
	struct worker_arg args[WORKERS];
	for (size_t i = 0; i < WORKERS; i++) {
		args[i] = (struct worker_arg){store, i};
		pthread_create(&threads[i], NULL, worker_main, &args[i]);
	}
	for (int i = 0; i < 20; i++) {
		struct fx_snapshot *snapshot = fx_store_snapshot(store);
		CHECK(snapshot != NULL);
		for (size_t s = 1; snapshot && s < snapshot->n_series; s++)
			CHECK(fx_series_key_compare(&snapshot->series[s - 1].key, &snapshot->series[s].key) < 0);
		fx_snapshot_destroy(snapshot);
	}
	for (size_t i = 0; i < WORKERS; i++)
		pthread_join(threads[i], NULL);

	struct fx_snapshot *snapshot = fx_store_snapshot(store);
	CHECK_EQ_U64(snapshot->n_series, KEYS);
	for (size_t s = 0; s < snapshot->n_series; s++) {
		const struct fx_series *series = &snapshot->series[s];
		uint64_t k = series->key.as_src;
		CHECK_EQ_U64(series->bytes[FX_DIR_RECEIVE], (k + 1) * ROUNDS * WORKERS);
		CHECK_EQ_U64(series->packets[FX_DIR_RECEIVE], (uint64_t)ROUNDS * WORKERS);
		CHECK_EQ_U64(series->bytes[FX_DIR_TRANSMIT], 0);
		CHECK(series->seen == 1u << FX_DIR_RECEIVE);
		if (s > 0)
			CHECK(fx_series_key_compare(&snapshot->series[s - 1].key, &series->key) < 0);
	}
	CHECK(calls == 21);
	CHECK(fx_family_list_count(snapshot->self) == 1);
	CHECK_STR(fx_family_list_get(snapshot->self, 0)->name, "test_metric");
	CHECK(snapshot->label_mask == FX_LABEL_ALL);

	/* A snapshot is a copy: counting on does not change it. */
	struct fx_series_table *delta = fx_series_table_create(10);
	struct fx_series_key key = key_of(0);
	CHECK(fx_series_table_add(delta, &key, FX_DIR_TRANSMIT, 5, 1, 2000) == 0);
	delta = fx_store_handoff(store, 0, delta);
	fx_store_tick(store);
	CHECK_EQ_U64(snapshot->series[0].bytes[FX_DIR_TRANSMIT], 0);
	fx_snapshot_destroy(snapshot);
	snapshot = fx_store_snapshot(store);
	CHECK_EQ_U64(snapshot->series[0].bytes[FX_DIR_TRANSMIT], 5);
	fx_snapshot_destroy(snapshot);
	fx_series_table_destroy(delta);
	fx_store_destroy(store);

	/* Expiry: series older than the TTL go, and come back once as tombstones for stale markers. */
	config = (struct fx_store_config){.n_workers = 1, .max_series = 10, .series_ttl_ms = 60000};
	store = fx_store_create(&config);
	delta = fx_series_table_create(10);
	int64_t now = fx_wall_ms();
	struct fx_series_key old_key = key_of(1), new_key = key_of(2);
	CHECK(fx_series_table_add(delta, &old_key, FX_DIR_RECEIVE, 1, 1, now - 120000) == 0);
	CHECK(fx_series_table_add(delta, &new_key, FX_DIR_RECEIVE, 1, 1, now) == 0);
	delta = fx_store_handoff(store, 0, delta);
	fx_store_tick(store);
	snapshot = fx_store_snapshot(store);
	CHECK_EQ_U64(snapshot->n_series, 1);
	CHECK(snapshot->series[0].key.as_src == 2);
	CHECK_EQ_U64(snapshot->n_expired, 1);
	CHECK(snapshot->n_expired == 1 && snapshot->expired[0].key.as_src == 1 &&
	      snapshot->expired[0].updated_ms >= now);
	fx_snapshot_destroy(snapshot);
	fx_series_table_destroy(delta);

	fx_store_destroy(store);

	/* The limit: the store refuses new series past max_series and counts their records exactly. */
	config = (struct fx_store_config){.n_workers = 1, .max_series = 2};
	store = fx_store_create(&config);
	delta = fx_series_table_create(10);
	for (unsigned k = 0; k < 4; k++) {
		struct fx_series_key limited = key_of(k);
		for (unsigned r = 0; r <= k; r++) /* key k gets k+1 records */
			CHECK(fx_series_table_add(delta, &limited, FX_DIR_RECEIVE, 1, 1, now) == 0);
	}
	delta = fx_store_handoff(store, 0, delta);
	struct fx_family_list *self = fx_family_list_create();
	fx_store_tick(store);
	CHECK(fx_store_collect(store, self) == 0);
	for (size_t f = 0; f < fx_family_list_count(self); f++) {
		const struct fx_family *family = fx_family_list_get(self, f);
		if (!strcmp(family->name, "flow_exporter_series"))
			CHECK_EQ_U64(family->samples[0].integer, 2);
		if (!strcmp(family->name, "flow_exporter_store_records_dropped_total"))
			CHECK_EQ_U64(family->samples[0].integer, 3 + 4); /* the two keys that did not fit */
	}
	fx_family_list_destroy(self);
	fx_series_table_destroy(delta);
	fx_store_destroy(store);
	return check_exit();
}
