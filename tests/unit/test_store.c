/* The store: deltas handed over by several threads at once add up exactly; snapshots are sorted copies that
 * later updates do not change; expired series become tombstones; collectors run on every snapshot. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
		if (round % 7 == 0) /* when the totals are free; busy, the counts stay in delta */
			fx_store_handoff(arg->store, arg->index, delta, NULL, 0, false);
	}
	if (!fx_store_handoff(arg->store, arg->index, delta, NULL, 0, true)) /* the rest */
		abort();
	fx_series_table_destroy(delta);
	return NULL;
}

static int collect_one(void *opaque, struct fx_family_list *out)
{
	int *calls = opaque;
	(*calls)++;
	return fx_family_begin(out, "test_metric", "A test.", FX_METRIC_GAUGE) ||
	       fx_family_add_u64(out, 7, 0, NULL);
}

static int compare_series_keys(const void *a, const void *b)
{
	return fx_series_key_compare(&((const struct fx_series *)a)->key,
				     &((const struct fx_series *)b)->key);
}

/* Checks a snapshot against a reference: the live table's series, sorted by qsort. */
static void check_against(const struct fx_snapshot *snapshot, const struct fx_series_table *reference)
{
	size_t n = fx_series_table_count(reference);
	CHECK_EQ_U64(snapshot->n_series, n);
	if (snapshot->n_series != n)
		return;
	struct fx_series *sorted = malloc((n ? n : 1) * sizeof(*sorted));
	memcpy(sorted, fx_series_table_array(reference), n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), compare_series_keys);
	size_t differing = 0;
	for (size_t i = 0; i < n; i++)
		differing += memcmp(&sorted[i].key, &snapshot->series[i].key, sizeof(sorted[i].key)) != 0 ||
			     sorted[i].bytes[0] != snapshot->series[i].bytes[0] ||
			     sorted[i].bytes[1] != snapshot->series[i].bytes[1] ||
			     sorted[i].packets[0] != snapshot->series[i].packets[0] ||
			     sorted[i].records != snapshot->series[i].records;
	CHECK_EQ_U64(differing, 0);
	free(sorted);
}

/* Snapshots across many rounds of new series, updated series, nothing at all, and expiries: each equals the
 * reference sorted from scratch (the store's kept order, merged increments and in-place permutation); a
 * snapshot taken when nothing changed shares the previous one's arrays; a snapshot stays as it was taken. */
static void test_incremental_order(void)
{
	static const char *const names[] = {"b", "a", "c", "aa", "edge-1", "edge-10", "edge-2"};
	struct fx_store_config config = {.n_workers = 1, .max_series = 5000, .series_ttl_ms = 1000};
	struct fx_store *store = fx_store_create(&config);
	struct fx_series_table *delta = fx_series_table_create(5000);
	struct fx_series_table *reference = fx_series_table_create(5000);
	uint64_t state = 7;
	int64_t now;
	struct fx_snapshot *previous = NULL;
	uint64_t previous_first_bytes = 0;
	size_t shared_rounds = 0, expired_seen = 0;
	for (int round = 0; round < 120; round++) {
		int kind = round % 6; /* 0-2: new and old series, 3: updates only, 4: nothing, 5: expiry */
		size_t adds = kind == 4 || kind == 5 ? 0 : (size_t)(round % 5 == 0 ? 200 : 17);
		for (size_t k = 0; k < adds; k++) {
			state = state * 6364136223846793005u + 1442695040888963407u;
			uint32_t r = (uint32_t)(state >> 33);
			size_t existing = fx_series_table_count(reference);
			struct fx_series_key key;
			if (kind == 3 && existing) {
				key = fx_series_table_array(reference)[r % existing].key;
			} else {
				key = (struct fx_series_key){.hostname = r % 8 ? names[r % 7] : NULL,
							     .as_src = r % 97,
							     .as_dst = (r >> 8) % 5,
							     .iface_in = (r >> 12) % 3,
							     .present = FX_LABEL_ALL};
			}
			/* Old enough to expire at the next expiry round. */
			now = fx_wall_ms() - 5000;
			CHECK(fx_series_table_add(delta, &key, FX_DIR_RECEIVE, r % 1000, 1, now) == 0);
			CHECK(fx_series_table_add(reference, &key, FX_DIR_RECEIVE, r % 1000, 1, now) == 0);
		}
		if (kind == 5) {
			/* Everything not updated for a while expires: the store's series move. */
			state = state * 6364136223846793005u + 1442695040888963407u;
			struct fx_series_key fresh = {.hostname = names[round % 7],
						      .as_src = 100000u + (uint32_t)round,
						      .present = FX_LABEL_ALL};
			CHECK(fx_series_table_add(delta, &fresh, FX_DIR_TRANSMIT, 1, 1,
						  fx_wall_ms() + 10000) == 0);
			CHECK(fx_series_table_add(reference, &fresh, FX_DIR_TRANSMIT, 1, 1,
						  fx_wall_ms() + 10000) == 0);
			fx_series_table_expire(reference, fx_wall_ms() - 1000, NULL, NULL);
		}
		if (fx_series_table_count(delta)) {
			CHECK(fx_store_handoff(store, 0, delta, NULL, 0, false)); /* nothing else holds the lock */
			CHECK_EQ_U64(fx_series_table_count(delta), 0);
		}
		if (kind == 5) {
			/* Make the live series old enough to expire, except the fresh one. */
			fx_store_tick(store);
		}
		struct fx_snapshot *snapshot = fx_store_snapshot(store);
		CHECK(snapshot != NULL);
		check_against(snapshot, reference);
		if (previous && kind == 4) {
			/* Nothing changed: the same sorted arrays, shared. */
			CHECK(snapshot->series == previous->series);
			shared_rounds++;
		}
		if (previous && previous->n_series)
			CHECK_EQ_U64(previous->series[0].bytes[0], previous_first_bytes); /* untouched */
		fx_snapshot_destroy(previous);
		previous = snapshot;
		previous_first_bytes = snapshot->n_series ? snapshot->series[0].bytes[0] : 0;
		expired_seen += snapshot->n_expired;
	}
	CHECK(shared_rounds >= 15);
	CHECK(expired_seen > 0);
	fx_snapshot_destroy(previous);
	fx_series_table_destroy(reference);
	fx_series_table_destroy(delta);
	fx_store_destroy(store);
}

/* The tombstones are bounded by max_series: an expired series refused one (it gets no stale marker) is
 * counted in flow_exporter_series_expired_unmarked_total. */
static uint64_t self_metric(struct fx_store *store, const char *name)
{
	struct fx_family_list *self = fx_family_list_create();
	uint64_t value = UINT64_MAX;
	CHECK(fx_store_collect(store, self) == 0);
	for (size_t f = 0; f < fx_family_list_count(self); f++) {
		const struct fx_family *family = fx_family_list_get(self, f);
		if (!strcmp(family->name, name))
			value = family->samples[0].integer;
	}
	fx_family_list_destroy(self);
	return value;
}

static void test_tombstone_bound(void)
{
	struct fx_store_config config = {.n_workers = 1, .max_series = 2, .series_ttl_ms = 60000};
	struct fx_store *store = fx_store_create(&config);
	struct fx_series_table *delta = fx_series_table_create(2);
	int64_t old = fx_wall_ms() - 120000;
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned k = 0; k < 2; k++) {
			struct fx_series_key key = key_of(10 * round + k);
			CHECK(fx_series_table_add(delta, &key, FX_DIR_RECEIVE, 1, 1, old) == 0);
		}
		CHECK(fx_store_handoff(store, 0, delta, NULL, 0, true));
		fx_store_tick(store); /* the two series expire: the first round fills the tombstones */
	}
	CHECK_EQ_U64(self_metric(store, "flow_exporter_series"), 0);
	CHECK_EQ_U64(self_metric(store, "flow_exporter_series_expired_total"), 2);
	CHECK_EQ_U64(self_metric(store, "flow_exporter_series_expired_unmarked_total"), 2);
	struct fx_snapshot *snapshot = fx_store_snapshot(store);
	CHECK(snapshot != NULL);
	CHECK_EQ_U64(snapshot->n_expired, 2);
	CHECK(snapshot->expired[0].key.as_src < 10 && snapshot->expired[1].key.as_src < 10);
	fx_snapshot_destroy(snapshot);
	fx_series_table_destroy(delta);
	fx_store_destroy(store);
}

/* Durable states: a take when nothing changed returns the last state itself; a state whose last reference
 * went gives its arrays to the next take, which holds the new totals and offsets in full (a growing table
 * too), while a state still referenced stays as it was taken. */
static void test_state_take(void)
{
	struct fx_store_config config = {.n_workers = 1, .max_series = 1000, .label_mask = FX_LABEL_ALL};
	struct fx_store *store = fx_store_create(&config);
	struct fx_series_table *delta = fx_series_table_create(1000);
	struct fx_store_state *kept = NULL;
	uint64_t expected_bytes = 0;
	for (unsigned round = 1; round <= 6; round++) {
		for (unsigned k = 0; k < 100 * round; k++) { /* 100 more series every round */
			struct fx_series_key key = key_of(k);
			CHECK(fx_series_table_add(delta, &key, FX_DIR_RECEIVE, 3, 1, 1000) == 0);
		}
		expected_bytes += 3 * 100 * round;
		struct fx_partition_offset offset = {.topic = "t", .partition = 0, .next = round};
		CHECK(fx_store_handoff(store, 0, delta, &offset, 1, false));
		struct fx_store_state *state = fx_store_state_take(store, kept);
		CHECK(state != NULL && state != kept);
		if (!state)
			break;
		CHECK_EQ_U64(state->n_series, 100 * round);
		uint64_t bytes = 0;
		for (size_t i = 0; i < state->n_series; i++)
			bytes += state->series[i].bytes[0];
		CHECK_EQ_U64(bytes, expected_bytes);
		CHECK_EQ_U64(state->n_offsets, 1);
		CHECK_EQ_U64((uint64_t)state->offsets[0].next, round);
		struct fx_store_state *again = fx_store_state_take(store, state); /* nothing changed */
		CHECK(again == state);
		fx_store_state_unref(again);
		if (kept) { /* still referenced by the caller: unchanged by the takes after it */
			CHECK_EQ_U64(kept->n_series, 100 * (round - 1));
			CHECK_EQ_U64((uint64_t)kept->offsets[0].next, round - 1);
			fx_store_state_unref(kept);
		}
		kept = state;
	}
	/* Without growth, a take copies into the arrays of the state that went before it. */
	const struct fx_series *kept_series = kept->series;
	struct fx_store_state *taken[2] = {NULL, NULL};
	for (int i = 0; i < 2; i++) {
		struct fx_series_key key = key_of(0);
		CHECK(fx_series_table_add(delta, &key, FX_DIR_RECEIVE, 1, 1, 1000) == 0);
		CHECK(fx_store_handoff(store, 0, delta, NULL, 0, true));
		taken[i] = fx_store_state_take(store, i ? taken[0] : kept);
		CHECK(taken[i] != NULL);
		if (i == 0)
			fx_store_state_unref(kept);
	}
	CHECK(taken[1] && taken[1]->series == kept_series);
	if (taken[1])
		CHECK_EQ_U64(taken[1]->series[0].bytes[0], 6 * 3 + 2);
	fx_store_state_unref(taken[0]);
	fx_store_state_unref(taken[1]);
	fx_series_table_destroy(delta);
	fx_store_destroy(store);
}

int main(void)
{
	test_state_take();
	test_incremental_order();
	test_tombstone_bound();
	struct fx_store_config config = {
	    .n_workers = WORKERS, .max_series = 1000, .label_mask = FX_LABEL_ALL};
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
			CHECK(fx_series_key_compare(&snapshot->series[s - 1].key, &snapshot->series[s].key) <
			      0);
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
	CHECK(fx_store_handoff(store, 0, delta, NULL, 0, true));
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
	CHECK(fx_store_handoff(store, 0, delta, NULL, 0, true));
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
	CHECK(fx_store_handoff(store, 0, delta, NULL, 0, true));
	struct fx_family_list *self = fx_family_list_create();
	fx_store_tick(store);
	CHECK(fx_store_collect(store, self) == 0);
	for (size_t f = 0; f < fx_family_list_count(self); f++) {
		const struct fx_family *family = fx_family_list_get(self, f);
		if (!strcmp(family->name, "flow_exporter_series"))
			CHECK_EQ_U64(family->samples[0].integer, 2);
	}
	CHECK_EQ_U64(fx_store_refused_records(store), 3 + 4); /* the two keys that did not fit */
	/* Every self-metric family once, each with samples of distinct label sets. */
	for (size_t f = 0; f < fx_family_list_count(self); f++) {
		const struct fx_family *family = fx_family_list_get(self, f);
		CHECK(family->n_samples == 1); /* the store's families have no labels */
		for (size_t g = f + 1; g < fx_family_list_count(self); g++)
			CHECK(strcmp(family->name, fx_family_list_get(self, g)->name) != 0);
	}
	fx_family_list_destroy(self);
	fx_series_table_destroy(delta);
	fx_store_destroy(store);
	return check_exit();
}
