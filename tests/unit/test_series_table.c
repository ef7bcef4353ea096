/* The counter table against a reference model: a plain array with one entry per key of a fixed pool, so
 * that every sum the table keeps can be checked exactly. Random operations come from a fixed seed. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "fx/series_table.h"

/* ---- deterministic randomness ---- */

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint64_t rng_next(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)
{
	return rng_next() % n;
}

/* ---- the key pool ---- */

/* Hostnames as the table sees them: distinct pointers. The table only compares pointers, so distinct
 * string literals are as good as interned strings here. */
static const char *const hosts[] = {NULL, "r1.example.net", "r2.example.net", "r3.example.net", "edge-1.pop"};
#define N_HOSTS 5

/* The extra slots the tables of the current pass keep (main runs the tests with whole rows, none and
 * three), and the keys carry. */
static size_t table_extra = FX_KEY_EXTRA;

static struct fx_series_table *new_table(size_t max_series)
{
	return fx_series_table_create_narrow(max_series, table_extra);
}

/* Key number id, spelled in mixed radix over the fields, so that every id gives a distinct key. Many keys
 * differ in one small field only, and pairs differ only in `present`. */
static struct fx_series_key key_of(uint64_t id)
{
	struct fx_series_key key;
	memset(&key, 0, sizeof(key)); /* no padding: a key is its fields, absent ones zero */
	key.hostname = hosts[id % N_HOSTS];
	id /= N_HOSTS;
	key.present = (id % 2) ? FX_LABEL_ALL : (FX_LABEL_ALL & ~(uint32_t)FX_LABEL_IFACE_OUT);
	id /= 2;
	key.as_src = (uint32_t)(id % 13);
	id /= 13;
	key.as_dst = (uint32_t)(id % 11) * 65536u;
	id /= 11;
	key.iface_in = (uint32_t)(id % 3);
	id /= 3;
	key.iface_out = (uint32_t)id;
	for (size_t i = 0; i < table_extra; i++) /* a function of the id: keys stay distinct */
		key.extra[i] = (uint32_t)(id * 2654435761u + i);
	return key;
}

/* ---- the reference model ---- */

struct model_entry {
	bool live;
	uint64_t bytes[2], packets[2], records;
	int64_t updated_ms;
	uint32_t seen;
};

struct model {
	size_t n_keys;
	struct model_entry *entries; /* indexed by key id */
};

static struct model model_new(size_t n_keys)
{
	struct model m = {n_keys, calloc(n_keys, sizeof(struct model_entry))};
	return m;
}

static void model_add(struct model *m, size_t id, int dir, uint64_t bytes, uint64_t packets, int64_t now_ms)
{
	struct model_entry *e = &m->entries[id];
	if (!e->live || now_ms > e->updated_ms)
		e->updated_ms = now_ms;
	e->live = true;
	e->bytes[dir] += bytes;
	e->packets[dir] += packets;
	e->records++;
	e->seen |= 1u << dir;
}

static size_t model_count(const struct model *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n_keys; i++)
		n += m->entries[i].live;
	return n;
}

static bool series_matches(const struct fx_series *s, const struct model_entry *e)
{
	return s->bytes[0] == e->bytes[0] && s->bytes[1] == e->bytes[1] && s->packets[0] == e->packets[0] &&
	       s->packets[1] == e->packets[1] && s->records == e->records && s->updated_ms == e->updated_ms &&
	       s->seen == e->seen;
}

/* Whether the key of a row (of a table of the current pass: its extra slots past table_extra are not there)
 * is key. */
static bool row_key_equal(const struct fx_series *row, const struct fx_series_key *key)
{
	return memcmp(&row->key, key,
		      offsetof(struct fx_series_key, extra) + table_extra * sizeof(uint32_t)) == 0;
}

/* The table holds exactly the model's live keys, with the model's sums, and its dense array agrees with
 * find(). */
static void check_table_equals(const struct fx_series_table *table, const struct model *m, int line)
{
	size_t missing = 0, wrong = 0, extra = 0;
	for (size_t id = 0; id < m->n_keys; id++) {
		struct fx_series_key key = key_of(id);
		const struct fx_series *s = fx_series_table_find(table, &key);
		if (m->entries[id].live) {
			if (!s)
				missing++;
			else if (!series_matches(s, &m->entries[id]) || !row_key_equal(s, &key))
				wrong++;
		} else if (s) {
			extra++;
		}
	}
	size_t count = fx_series_table_count(table);
	size_t inconsistent = 0;
	for (size_t i = 0; i < count; i++) {
		const struct fx_series *row = fx_series_table_row(table, i);
		if (fx_series_table_find(table, &row->key) != row)
			inconsistent++;
	}
	if (missing || wrong || extra || inconsistent || count != model_count(m))
		fprintf(stderr, "line %d: missing %zu wrong %zu extra %zu inconsistent %zu count %zu/%zu\n",
			line, missing, wrong, extra, inconsistent, count, model_count(m));
	CHECK(missing == 0);
	CHECK(wrong == 0);
	CHECK(extra == 0);
	CHECK(inconsistent == 0);
	CHECK_EQ_U64(count, model_count(m));
}
#define CHECK_TABLE(table, model) check_table_equals((table), (model), __LINE__)

/* Adds one random record to both; bytes are sometimes huge so that sums wrap. */
static void random_add(struct fx_series_table *table, struct model *m, size_t key_lo, size_t key_hi,
		       int64_t time_lo, int64_t time_span)
{
	size_t id = key_lo + (size_t)rng_below(key_hi - key_lo);
	int dir = (int)rng_below(2);
	uint64_t bytes = rng_below(8) == 0 ? rng_next() : rng_below(1500);
	uint64_t packets = rng_below(64) + 1;
	int64_t now_ms = time_lo + (int64_t)rng_below((uint64_t)time_span);
	struct fx_series_key key = key_of(id);
	int rc = fx_series_table_add(table, &key, (enum fx_direction)dir, bytes, packets, now_ms);
	CHECK(rc == 0);
	model_add(m, id, dir, bytes, packets, now_ms);
}

/* ---- tests ---- */

enum { POOL = 4000, ADDS = 300000 };

static void test_random_adds(void)
{
	struct fx_series_table *table = new_table(1 << 20);
	struct model m = model_new(POOL);
	CHECK(table != NULL);
	CHECK_EQ_U64(fx_series_table_count(table), 0);
	/* Times go backwards too, and below zero: updated_ms is the maximum seen. */
	for (int i = 0; i < ADDS; i++)
		random_add(table, &m, 0, POOL, -1000000, 2000000);
	CHECK_TABLE(table, &m);
	fx_series_table_destroy(table);
	free(m.entries);
}

static void merge_model(struct model *dst, const struct model *src)
{
	for (size_t id = 0; id < src->n_keys; id++) {
		const struct model_entry *s = &src->entries[id];
		struct model_entry *d = &dst->entries[id];
		if (!s->live)
			continue;
		if (!d->live || s->updated_ms > d->updated_ms)
			d->updated_ms = s->updated_ms;
		d->live = true;
		for (int dir = 0; dir < 2; dir++) {
			d->bytes[dir] += s->bytes[dir];
			d->packets[dir] += s->packets[dir];
		}
		d->records += s->records;
		d->seen |= s->seen;
	}
}

static void test_merge(void)
{
	struct fx_series_table *a = new_table(1 << 20);
	struct fx_series_table *b = new_table(1 << 20);
	struct fx_series_table *c = new_table(1 << 20);
	struct model ma = model_new(POOL), mb = model_new(POOL), mc = model_new(POOL);

	/* a: keys [0, 3000), b: keys [2000, 4000): overlapping on [2000, 3000), disjoint elsewhere. */
	for (int i = 0; i < ADDS / 2; i++)
		random_add(a, &ma, 0, 3000, 0, 100000);
	for (int i = 0; i < ADDS / 2; i++)
		random_add(b, &mb, 2000, 4000, 50000, 100000);

	/* Into an empty table: a copy. */
	CHECK_EQ_U64(fx_series_table_merge(c, a), 0);
	merge_model(&mc, &ma);
	CHECK_TABLE(c, &mc);
	/* Then the overlapping one. */
	CHECK_EQ_U64(fx_series_table_merge(c, b), 0);
	merge_model(&mc, &mb);
	CHECK_TABLE(c, &mc);
	/* The source is left as it was. */
	CHECK_TABLE(b, &mb);
	/* Merging into a table that already counts on its own. */
	CHECK_EQ_U64(fx_series_table_merge(a, b), 0);
	merge_model(&ma, &mb);
	CHECK_TABLE(a, &ma);
	/* An empty source changes nothing. */
	struct fx_series_table *empty = new_table(10);
	CHECK_EQ_U64(fx_series_table_merge(a, empty), 0);
	CHECK_TABLE(a, &ma);

	fx_series_table_destroy(empty);
	fx_series_table_destroy(a);
	fx_series_table_destroy(b);
	fx_series_table_destroy(c);
	free(ma.entries);
	free(mb.entries);
	free(mc.entries);
}

/* The key id of a key: key_of() read backwards. POOL for a key outside the pool. */
static size_t id_of(const struct fx_series_key *key)
{
	size_t host = N_HOSTS;
	for (size_t h = 0; h < N_HOSTS; h++)
		if (hosts[h] == key->hostname)
			host = h;
	if (host == N_HOSTS || key->as_dst % 65536u != 0)
		return POOL;
	uint64_t id = key->iface_out;
	id = id * 3 + key->iface_in;
	id = id * 11 + key->as_dst / 65536u;
	id = id * 13 + key->as_src;
	id = id * 2 + (key->present == FX_LABEL_ALL);
	id = id * N_HOSTS + host;
	if (id >= POOL)
		return POOL;
	struct fx_series_key check = key_of(id);
	return memcmp(&check, key, offsetof(struct fx_series_key, extra) + table_extra * sizeof(uint32_t)) ==
		       0
		   ? (size_t)id
		   : POOL;
}

static void test_limit(void)
{
	enum { LIMIT = 50 };
	struct fx_series_table *table = new_table(LIMIT);
	struct model m = model_new(POOL);
	CHECK_EQ_U64(fx_series_table_max(table), LIMIT);

	int refused = 0;
	for (size_t id = 0; id < 2 * LIMIT; id++) {
		struct fx_series_key key = key_of(id);
		int rc = fx_series_table_add(table, &key, FX_DIR_RECEIVE, 100, 1, 1);
		if (id < LIMIT) {
			CHECK(rc == 0);
			model_add(&m, id, 0, 100, 1, 1);
		} else {
			refused += rc == FX_TABLE_E_FULL;
		}
	}
	CHECK_EQ_U64(refused, LIMIT);
	CHECK_EQ_U64(fx_series_table_count(table), LIMIT);
	/* Existing series keep counting once the table is full. */
	for (int i = 0; i < 10000; i++)
		random_add(table, &m, 0, LIMIT, 0, 1000);
	CHECK_TABLE(table, &m);

	/* Merge into a full-ish table: dst has keys [0, 30) of max 50, src has [20, 80). Which new keys get
	 * in follows src's array order; everything else is refused, and its records counted. */
	struct fx_series_table *dst = new_table(LIMIT);
	struct fx_series_table *src = new_table(1000);
	struct model md = model_new(POOL), ms = model_new(POOL);
	for (int i = 0; i < 5000; i++)
		random_add(dst, &md, 0, 30, 0, 1000);
	for (int i = 0; i < 20000; i++)
		random_add(src, &ms, 20, 80, 0, 1000);
	CHECK_EQ_U64(fx_series_table_count(dst), 30);
	CHECK_EQ_U64(fx_series_table_count(src), 60);

	uint64_t expected_refused = 0;
	size_t dst_count = fx_series_table_count(dst);
	struct model accepted = model_new(POOL);
	for (size_t i = 0; i < fx_series_table_count(src); i++) {
		size_t id = id_of(&fx_series_table_row(src, i)->key);
		CHECK(id < POOL);
		if (md.entries[id].live || dst_count < LIMIT) {
			dst_count += !md.entries[id].live;
			accepted.entries[id] = ms.entries[id];
		} else {
			expected_refused += ms.entries[id].records;
		}
	}
	CHECK(expected_refused > 0);
	CHECK_EQ_U64(fx_series_table_merge(dst, src), expected_refused);
	merge_model(&md, &accepted);
	CHECK_TABLE(dst, &md);
	CHECK_EQ_U64(fx_series_table_count(dst), LIMIT);

	/* A table of no series refuses every new one. */
	struct fx_series_table *none = new_table(0);
	CHECK(none != NULL);
	struct fx_series_key key = key_of(1);
	CHECK(fx_series_table_add(none, &key, FX_DIR_TRANSMIT, 1, 1, 1) == FX_TABLE_E_FULL);
	CHECK(fx_series_table_find(none, &key) == NULL);
	CHECK_EQ_U64(fx_series_table_merge(none, src), 20000);
	CHECK_EQ_U64(fx_series_table_count(none), 0);
	CHECK_EQ_U64(fx_series_table_expire(none, INT64_MAX, NULL, NULL), 0);
	fx_series_table_clear(none);

	fx_series_table_destroy(none);
	fx_series_table_destroy(dst);
	fx_series_table_destroy(src);
	fx_series_table_destroy(table);
	free(m.entries);
	free(md.entries);
	free(ms.entries);
	free(accepted.entries);
}

struct removal_log {
	const struct model *model;
	size_t seen;
	size_t wrong;
	bool *removed; /* by key id */
};

static void on_removed(void *opaque, const struct fx_series *series)
{
	struct removal_log *log = opaque;
	size_t id = id_of(&series->key);
	log->seen++;
	struct fx_series_key want = id < POOL ? key_of(id) : (struct fx_series_key){0};
	/* A whole copy: the key's slots past the table's width are zero, not the next row's bytes. */
	if (id == POOL || log->removed[id] || !series_matches(series, &log->model->entries[id]) ||
	    memcmp(&series->key, &want, sizeof(want)) != 0)
		log->wrong++;
	else
		log->removed[id] = true;
}

static void expire_model(struct model *m, int64_t cutoff_ms, bool *removed, size_t *expected, size_t *wrong)
{
	for (size_t id = 0; id < m->n_keys; id++) {
		struct model_entry *e = &m->entries[id];
		if (e->live && e->updated_ms < cutoff_ms) {
			(*expected)++;
			*wrong += !removed[id];
			memset(e, 0, sizeof(*e));
		} else {
			*wrong += removed[id];
		}
	}
}

static void test_expire(void)
{
	struct fx_series_table *table = new_table(1 << 20);
	struct model m = model_new(POOL);
	bool *removed = calloc(POOL, sizeof(bool));
	for (int i = 0; i < ADDS / 3; i++)
		random_add(table, &m, 0, POOL, 0, 100000);

	/* Nothing is older than the oldest update. */
	struct removal_log log = {&m, 0, 0, removed};
	CHECK_EQ_U64(fx_series_table_expire(table, 0, on_removed, &log), 0);
	CHECK_EQ_U64(log.seen, 0);

	/* Per key, updated_ms is the maximum of ~25 draws over [0, 100000): a cutoff near the top removes
	 * a good share. */
	size_t expected = 0, wrong = 0;
	size_t n = fx_series_table_expire(table, 97000, on_removed, &log);
	expire_model(&m, 97000, removed, &expected, &wrong);
	CHECK(expected > 0 && expected < POOL);
	CHECK_EQ_U64(n, expected);
	CHECK_EQ_U64(log.seen, expected);
	CHECK_EQ_U64(log.wrong, 0);
	CHECK_EQ_U64(wrong, 0);
	CHECK_TABLE(table, &m);

	/* Interleaved rounds: time moves on, keys come and go, with and without a callback. */
	int64_t now = 100000;
	for (int round = 0; round < 300; round++) {
		int adds = (int)rng_below(3000);
		/* A shifting subset of the keys is active, so that whole groups expire. */
		size_t lo = (size_t)rng_below(POOL / 2);
		for (int i = 0; i < adds; i++)
			random_add(table, &m, lo, lo + POOL / 2, now, 1000);
		now += 1000;
		int64_t cutoff = now - (int64_t)rng_below(5000);
		memset(removed, 0, POOL * sizeof(bool));
		log = (struct removal_log){&m, 0, 0, removed};
		expected = 0;
		wrong = 0;
		bool with_callback = round % 4 != 0;
		n = fx_series_table_expire(table, cutoff, with_callback ? on_removed : NULL, &log);
		if (with_callback) {
			expire_model(&m, cutoff, removed, &expected, &wrong);
			CHECK_EQ_U64(wrong, 0);
			CHECK_EQ_U64(log.wrong, 0);
			CHECK_EQ_U64(log.seen, n);
		} else {
			size_t before = model_count(&m);
			for (size_t id = 0; id < POOL; id++)
				if (m.entries[id].live && m.entries[id].updated_ms < cutoff)
					memset(&m.entries[id], 0, sizeof(m.entries[id]));
			expected = before - model_count(&m);
		}
		CHECK_EQ_U64(n, expected);
		if (round % 10 == 0 || round == 299)
			CHECK_TABLE(table, &m);
	}
	CHECK_TABLE(table, &m);

	/* Everything goes. */
	n = fx_series_table_expire(table, INT64_MAX, NULL, NULL);
	CHECK_EQ_U64(n, model_count(&m));
	CHECK_EQ_U64(fx_series_table_count(table), 0);
	memset(m.entries, 0, POOL * sizeof(*m.entries));
	CHECK_TABLE(table, &m);
	for (int i = 0; i < 20000; i++)
		random_add(table, &m, 0, POOL, 0, 100);
	CHECK_TABLE(table, &m);

	free(removed);
	free(m.entries);
	fx_series_table_destroy(table);
}

static void test_clear(void)
{
	struct fx_series_table *table = new_table(1 << 20);
	struct model m = model_new(POOL);
	for (int i = 0; i < 50000; i++)
		random_add(table, &m, 0, POOL, 0, 1000);
	fx_series_table_clear(table);
	memset(m.entries, 0, POOL * sizeof(*m.entries));
	CHECK_EQ_U64(fx_series_table_count(table), 0);
	CHECK_TABLE(table, &m);
	for (int i = 0; i < 50000; i++)
		random_add(table, &m, 0, POOL, 0, 1000);
	CHECK_TABLE(table, &m);
	fx_series_table_destroy(table);
	free(m.entries);
}

static void test_wrap_present_and_seen(void)
{
	struct fx_series_table *table = new_table(100);
	struct fx_series_key key = {
	    .hostname = "r1", .as_src = 64512, .as_dst = 15169, .present = FX_LABEL_ALL};
	CHECK(fx_series_table_add(table, &key, FX_DIR_TRANSMIT, UINT64_MAX, UINT64_MAX, 10) == 0);
	const struct fx_series *s = fx_series_table_find(table, &key);
	CHECK(s != NULL);
	CHECK_EQ_U64(s->bytes[FX_DIR_TRANSMIT], UINT64_MAX);
	CHECK_EQ_U64(s->bytes[FX_DIR_RECEIVE], 0);
	CHECK_EQ_U64(s->seen, 1u << FX_DIR_TRANSMIT);
	CHECK(fx_series_table_add(table, &key, FX_DIR_TRANSMIT, UINT64_MAX, 2, 5) == 0);
	s = fx_series_table_find(table, &key);
	CHECK_EQ_U64(s->bytes[FX_DIR_TRANSMIT], UINT64_MAX - 1); /* (2^64 - 1) * 2 mod 2^64 */
	CHECK_EQ_U64(s->packets[FX_DIR_TRANSMIT], 1);
	CHECK_EQ_U64(s->records, 2);
	CHECK(s->updated_ms == 10); /* the maximum, not the last */
	CHECK(fx_series_table_add(table, &key, FX_DIR_RECEIVE, 1, 1, 11) == 0);
	CHECK_EQ_U64(s->seen, (1u << FX_DIR_TRANSMIT) | (1u << FX_DIR_RECEIVE));
	CHECK(s->updated_ms == 11);

	/* Merging wraps the same way. */
	struct fx_series_table *other = new_table(100);
	CHECK(fx_series_table_add(other, &key, FX_DIR_TRANSMIT, 3, UINT64_MAX, -5) == 0);
	CHECK_EQ_U64(fx_series_table_merge(table, other), 0);
	s = fx_series_table_find(table, &key);
	CHECK_EQ_U64(s->bytes[FX_DIR_TRANSMIT], 1);
	CHECK_EQ_U64(s->packets[FX_DIR_TRANSMIT], 0);
	CHECK(s->updated_ms == 11);
	/* seen is a union: a source that saw one direction keeps the other one set. */
	CHECK_EQ_U64(s->seen, (1u << FX_DIR_TRANSMIT) | (1u << FX_DIR_RECEIVE));
	struct fx_series_table *receive = new_table(10), *transmit = new_table(10);
	struct fx_series_key one = {.as_dst = 9, .present = FX_LABEL_DESTINATION_AS};
	CHECK(fx_series_table_add(receive, &one, FX_DIR_RECEIVE, 1, 1, 1) == 0);
	CHECK(fx_series_table_add(transmit, &one, FX_DIR_TRANSMIT, 1, 1, 1) == 0);
	CHECK_EQ_U64(fx_series_table_merge(receive, transmit), 0);
	CHECK_EQ_U64(fx_series_table_find(receive, &one)->seen,
		     (1u << FX_DIR_TRANSMIT) | (1u << FX_DIR_RECEIVE));
	fx_series_table_destroy(receive);
	fx_series_table_destroy(transmit);

	/* Keys differing only in `present` are distinct series; so are NULL and non-NULL hostnames. */
	struct fx_series_key other_present = key;
	other_present.present = FX_LABEL_ALL & ~(uint32_t)FX_LABEL_HOSTNAME;
	CHECK(fx_series_table_find(table, &other_present) == NULL);
	CHECK(fx_series_table_add(table, &other_present, FX_DIR_RECEIVE, 7, 1, 1) == 0);
	CHECK_EQ_U64(fx_series_table_count(table), 2);
	CHECK_EQ_U64(fx_series_table_find(table, &other_present)->bytes[FX_DIR_RECEIVE], 7);
	CHECK_EQ_U64(fx_series_table_find(table, &key)->bytes[FX_DIR_RECEIVE], 1);
	struct fx_series_key no_host = key;
	no_host.hostname = NULL;
	CHECK(fx_series_table_find(table, &no_host) == NULL);

	/* A negative first time is kept (a new series does not start at 0). */
	struct fx_series_key early = {.as_src = 1, .present = FX_LABEL_SOURCE_AS};
	CHECK(fx_series_table_add(table, &early, FX_DIR_RECEIVE, 1, 1, -42) == 0);
	CHECK(fx_series_table_find(table, &early)->updated_ms == -42);

	fx_series_table_destroy(other);
	fx_series_table_destroy(table);
	fx_series_table_destroy(NULL);
}

/* The key with value v in one field (0: present, 1: as_src, 2: as_dst, 3: iface_in, 4: iface_out). */
static struct fx_series_key key_varying(int field, uint32_t v)
{
	struct fx_series_key key = {.present = FX_LABEL_ALL};
	uint32_t *fields[] = {&key.present, &key.as_src, &key.as_dst, &key.iface_in, &key.iface_out};
	*fields[field] = v;
	return key;
}

static void test_growth(void)
{
	/* Many keys that differ in one field only. Besides growing through 13 doublings, 300,000 keys hold a
	 * dozen pairs with equal 32-bit hash fragments (birthday bound), so the full key comparison behind a
	 * matching fragment is exercised for every field. */
	enum { MANY = 300000 };
	for (int field = 0; field < 5; field++) {
		struct fx_series_table *table = new_table(1 << 20);
		int failed = 0;
		for (uint32_t i = 0; i < MANY; i++) {
			struct fx_series_key key = key_varying(field, i);
			failed += fx_series_table_add(table, &key, FX_DIR_RECEIVE, i, 1, i) != 0;
		}
		CHECK(failed == 0);
		CHECK_EQ_U64(fx_series_table_count(table), MANY);
		int wrong = 0;
		for (uint32_t i = 0; i < MANY; i++) {
			struct fx_series_key key = key_varying(field, i);
			const struct fx_series *s = fx_series_table_find(table, &key);
			wrong += !s || s->bytes[FX_DIR_RECEIVE] != i || s->records != 1;
		}
		CHECK(wrong == 0);
		fx_series_table_destroy(table);
	}

	struct fx_series_table *table;
	/* A bound that is not a power of two is reached exactly. */
	table = new_table(1000);
	int ok = 0, full = 0;
	for (uint32_t i = 0; i < 1500; i++) {
		struct fx_series_key key = {.iface_in = i, .present = FX_LABEL_IFACE_IN};
		int rc = fx_series_table_add(table, &key, FX_DIR_TRANSMIT, 1, 1, 0);
		ok += rc == 0;
		full += rc == FX_TABLE_E_FULL;
	}
	CHECK_EQ_U64(ok, 1000);
	CHECK_EQ_U64(full, 500);
	CHECK_EQ_U64(fx_series_table_count(table), 1000);
	fx_series_table_destroy(table);
}

/* ---- timing (printed, never asserted) ---- */

static double seconds_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_timing(void)
{
	enum { KEYS = 10000, N_ADDS = 4000000, MERGE_SERIES = 100000 };
	struct fx_series_key *keys = malloc(KEYS * sizeof(*keys));
	uint32_t *order = malloc(N_ADDS * sizeof(*order));
	for (uint32_t i = 0; i < KEYS; i++)
		keys[i] = (struct fx_series_key){.hostname = hosts[1 + i % 4],
						 .as_src = i % 97,
						 .as_dst = i,
						 .iface_in = i % 7,
						 .iface_out = i % 5,
						 .present = FX_LABEL_ALL};
	for (uint32_t i = 0; i < N_ADDS; i++)
		order[i] = (uint32_t)rng_below(KEYS);

	struct fx_series_table *table = new_table(1 << 20);
	for (uint32_t i = 0; i < KEYS; i++)
		(void)!fx_series_table_add(table, &keys[i], FX_DIR_RECEIVE, 1, 1, 0);
	double t0 = seconds_now();
	int failed = 0;
	for (uint32_t i = 0; i < N_ADDS; i++)
		failed |= fx_series_table_add(table, &keys[order[i]], (enum fx_direction)(i & 1), 1000, 1, i);
	double t1 = seconds_now();
	CHECK(failed == 0);
	fprintf(stderr, "timing: add to an existing series (%d series): %.1f ns/add\n", KEYS,
		(t1 - t0) * 1e9 / N_ADDS);
	fx_series_table_destroy(table);

	struct fx_series_table *src = new_table(1 << 20);
	struct fx_series_table *dst = new_table(1 << 20);
	for (uint32_t i = 0; i < MERGE_SERIES; i++) {
		struct fx_series_key key = {
		    .hostname = hosts[1 + i % 4], .as_src = i, .as_dst = i % 1000, .present = FX_LABEL_ALL};
		(void)!fx_series_table_add(src, &key, FX_DIR_TRANSMIT, 1, 1, 0);
	}
	t0 = seconds_now();
	CHECK_EQ_U64(fx_series_table_merge(dst, src), 0);
	t1 = seconds_now();
	CHECK_EQ_U64(fx_series_table_merge(dst, src), 0);
	double t2 = seconds_now();
	fx_series_table_clear(dst);
	double t3 = seconds_now();
	CHECK_EQ_U64(fx_series_table_merge(dst, src), 0);
	double t4 = seconds_now();
	/* The first figure includes the kernel's page faults on the new memory; a cleared table keeps it. */
	fprintf(stderr,
		"timing: merge of %d series: %.2f ms into a new table, %.2f ms into one holding them, "
		"%.2f ms into a cleared one\n",
		MERGE_SERIES, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t4 - t3) * 1e3);
	fx_series_table_destroy(src);
	fx_series_table_destroy(dst);
	free(keys);
	free(order);
}

/* A narrow table holds what a whole one holds, merges with tables of every width (a checkpoint restores into
 * the totals from a whole table) and copies its rows out as whole structs, the slots past its width zero. */
static void test_widths_agree(void)
{
	table_extra = 3;
	struct fx_series_table *narrow = fx_series_table_create_narrow(1 << 20, 3);
	struct fx_series_table *whole = fx_series_table_create(1 << 20);
	struct model m = model_new(POOL), unused = model_new(POOL);
	CHECK_EQ_U64(fx_series_table_key_extra(narrow), 3);
	CHECK_EQ_U64(fx_series_table_key_extra(whole), FX_KEY_EXTRA);
	for (int i = 0; i < ADDS / 4; i++) {
		uint64_t state = rng_state;
		random_add(narrow, &m, 0, POOL, 0, 100000);
		rng_state = state; /* the same record into both */
		random_add(whole, &unused, 0, POOL, 0, 100000);
	}
	CHECK_TABLE(narrow, &m);
	CHECK_TABLE(whole, &m);

	size_t n = fx_series_table_count(narrow);
	struct fx_series *out = malloc(n * sizeof(*out));
	memset(out, 0xa5, n * sizeof(*out));
	fx_series_table_copy_out(narrow, out);
	size_t differ = 0;
	for (size_t i = 0; i < n; i++) {
		const struct fx_series *w = fx_series_table_find(whole, &out[i].key);
		differ += !w || memcmp(w, &out[i], sizeof(*w)) != 0;
	}
	CHECK_EQ_U64(differ, 0);

	/* whole -> narrow (a restore), narrow -> whole, narrow -> narrow: the same sums every way. */
	struct fx_series_table *into_narrow = fx_series_table_create_narrow(1 << 20, 3);
	struct fx_series_table *into_whole = fx_series_table_create(1 << 20);
	CHECK_EQ_U64(fx_series_table_merge(into_narrow, whole), 0);
	CHECK_EQ_U64(fx_series_table_merge(into_narrow, narrow), 0);
	CHECK_EQ_U64(fx_series_table_merge(into_whole, narrow), 0);
	CHECK_EQ_U64(fx_series_table_merge(into_whole, whole), 0);
	struct model twice = model_new(POOL);
	merge_model(&twice, &m);
	merge_model(&twice, &m);
	CHECK_TABLE(into_narrow, &twice);
	CHECK_TABLE(into_whole, &twice);

	/* A key with a dimension the narrow table has no slot for is refused by the merge, not truncated. */
	struct fx_series_table *wide = fx_series_table_create(10);
	struct fx_series_key key = key_of(1);
	key.extra[5] = 7;
	CHECK(fx_series_table_add(wide, &key, FX_DIR_RECEIVE, 100, 1, 1) == 0);
	CHECK_EQ_U64(fx_series_table_merge(into_narrow, wide), 1);
	CHECK_TABLE(into_narrow, &twice);

	fx_series_table_destroy(wide);
	fx_series_table_destroy(into_narrow);
	fx_series_table_destroy(into_whole);
	fx_series_table_destroy(narrow);
	fx_series_table_destroy(whole);
	free(out);
	free(m.entries);
	free(unused.entries);
	free(twice.entries);
}

/* A full narrow table folds what a merge brings past its limit into one overflow series per hostname, and
 * keeps every byte. */
static void test_narrow_fold(void)
{
	table_extra = 0;
	struct fx_key_layout layout;
	char why[128];
	CHECK(fx_key_layout_parse(&layout, "hostname,source_as,destination_as,iface_in,iface_out", NULL, 0,
				  NULL, why, sizeof(why)) == 0);
	struct fx_series_table *src = fx_series_table_create_narrow(1 << 20, 0);
	struct fx_series_table *dst = fx_series_table_create_narrow(10, 0);
	fx_series_table_set_fold(dst, &layout);
	uint64_t bytes = 0;
	for (size_t id = 0; id < POOL; id++) {
		struct fx_series_key key = key_of(id);
		CHECK(fx_series_table_add(src, &key, FX_DIR_RECEIVE, id + 1, 1, 1) == 0);
		bytes += id + 1;
	}
	CHECK_EQ_U64(fx_series_table_merge(dst, src), 0);
	/* Ten held series, and an overflow series for each of the N_HOSTS hostnames (one is "none"). */
	CHECK_EQ_U64(fx_series_table_count_held(dst), 10);
	CHECK_EQ_U64(fx_series_table_count(dst), 10 + N_HOSTS);
	uint64_t sum = 0;
	for (size_t i = 0; i < fx_series_table_count(dst); i++)
		sum += fx_series_table_row(dst, i)->bytes[FX_DIR_RECEIVE];
	CHECK_EQ_U64(sum, bytes);
	fx_series_table_destroy(src);
	fx_series_table_destroy(dst);
}

int main(void)
{
	/* The whole suite on tables of whole rows, of no extra slot (the default labels) and of three. */
	static const size_t widths[] = {FX_KEY_EXTRA, 0, 3};
	for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
		table_extra = widths[w];
		test_random_adds();
		test_merge();
		test_limit();
		test_expire();
		test_clear();
		test_wrap_present_and_seen();
		test_growth();
	}
	test_widths_agree();
	test_narrow_fold();
	table_extra = FX_KEY_EXTRA;
	print_timing();
	return check_exit();
}
