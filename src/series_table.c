/* Step (4) of the data path: the counter table, keyed by the label tuple.
 *
 * DESIGN
 * The series live in a dense array (`series[0..count)`), so that merging, copying into a snapshot and
 * expiring are linear scans. Lookups go through an open-addressing index with linear probing: a
 * power-of-two array of slots, each holding the dense position plus one (0 = empty slot) and the upper
 * 32 bits of the key's hash. The hash fragment serves twice: a probe compares it before it touches the
 * dense entry, so a mismatch costs no cache miss on the (88-byte) series; and the home slot is the
 * fragment masked, so growing the index and shifting slots back after a deletion never rehash a key nor
 * read the dense array. Growth makes room in one step for what a merge may still bring, and a merge
 * hashes a few source keys ahead to prefetch their slots (a large destination misses the cache).
 *
 * Keys hash by the interned hostname pointer (equal strings have equal pointers), the four numbers and
 * `present`, field by field: padding bytes are never read.
 *
 * Thread: a table has one owner at a time and takes no lock.
 *
 * Invariants:
 * - count <= capacity <= max_series, and index_size >= 2 * capacity: the load factor stays <= 0.5, so
 *   there is always an empty slot and every probe ends.
 * - every series[i] has exactly one slot whose position is i + 1, found by probing from its home slot
 *   without crossing an empty slot (backward-shift deletion keeps this without tombstones).
 */
#include "fx/series_table.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fx/log.h"

/* Dense positions are stored as uint32 (plus one), and the home slot comes from a 32-bit hash fragment:
 * both bound the index to 2^32 slots, hence the table to 2^30 series (far above any real --max-series). */
#define TABLE_LIMIT ((size_t)1 << 30)
#define TABLE_INITIAL_CAPACITY 64
#define INDEX_MIN_SIZE 8

struct slot {
	uint32_t position; /* dense position + 1; 0 = empty */
	uint32_t hash;	   /* upper 32 bits of the key's hash; home slot = hash & index_mask */
};

struct fx_series_table {
	struct fx_series *series; /* dense, [0..count) in use, capacity allocated */
	size_t count;
	size_t capacity;
	size_t max_series; /* of held series: those whose key has no "other" label */
	size_t limit;	   /* max_series + FX_TABLE_FOLDED_MAX: what capacity may reach */
	size_t n_folded;   /* series whose key has "other" labels (overflow series) */
	const struct fx_key_layout *fold; /* when set, a new held series past max_series is folded */
	struct slot *index;
	size_t index_mask; /* index size - 1 */
};

/* 64x64->128 multiply folded to 64 bits (the "mum" of wyhash): one multiply mixes every input bit
 * into most output bits. */
static inline uint64_t mix_mul(uint64_t a, uint64_t b)
{
#ifdef __SIZEOF_INT128__
	unsigned __int128 r = (unsigned __int128)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
	/* No 128-bit product (32-bit targets): fold the high half in first, then mix the product. */
	uint64_t r = (a ^ (a >> 32)) * (b | 1);
	return r ^ (r >> 29);
#endif
}

_Static_assert(sizeof(struct fx_series_key) == 64, "a key is eight words with no padding");

/* The key as its eight 64-bit words, hashed as bytes: every byte is a field (no padding, absent fields
 * zero), so equal keys are equal bytes. */
static inline uint32_t key_hash(const struct fx_series_key *key)
{
	uint64_t w[8];
	memcpy(w, key, sizeof(w));
	uint64_t h = mix_mul(w[0] ^ 0xa0761d6478bd642full, w[1] ^ 0xe7037ed1a0b428dbull) ^
		     mix_mul(w[2] ^ 0x8ebc6af09c88c6e3ull, w[3] ^ 0x589965cc75374cc3ull);
	if (w[4] | w[5] | w[6] | w[7])
		h ^= mix_mul(w[4] ^ 0x1d8e4e27c47d124full, w[5] ^ 0xa0761d6478bd642full) ^
		     mix_mul(w[6] ^ 0xe7037ed1a0b428dbull, w[7] ^ 0x8ebc6af09c88c6e3ull);
	h = mix_mul(h ^ 0x1d8e4e27c47d124full, 0xa0761d6478bd642full);
	return (uint32_t)(h >> 32);
}

static inline bool key_equal(const struct fx_series_key *a, const struct fx_series_key *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

static size_t index_size_for(size_t capacity)
{
	size_t size = INDEX_MIN_SIZE;
	while (size < 2 * capacity)
		size <<= 1;
	return size;
}

/* Returns the slot holding `key`, or the empty slot where it would go. */
static inline size_t probe(const struct fx_series_table *table, const struct fx_series_key *key,
			   uint32_t hash)
{
	size_t i = hash & table->index_mask;
	for (;;) {
		const struct slot *s = &table->index[i];
		if (s->position == 0)
			return i;
		if (s->hash == hash && key_equal(&table->series[s->position - 1].key, key))
			return i;
		i = (i + 1) & table->index_mask;
	}
}

/* Puts (position, hash) in the first empty slot from its home: the key is known to be absent. */
static void index_place(struct slot *index, size_t mask, uint32_t position, uint32_t hash)
{
	size_t i = hash & mask;
	while (index[i].position != 0)
		i = (i + 1) & mask;
	index[i].position = position;
	index[i].hash = hash;
}

/* Doubles the capacity until it holds `wanted` series (never past max_series), and the index with it.
 * On failure the table is unchanged. */
static int grow(struct fx_series_table *table, size_t wanted)
{
	assert(table->capacity < table->limit && wanted > table->capacity);
	size_t capacity = table->capacity ? table->capacity * 2 : TABLE_INITIAL_CAPACITY;
	while (capacity < wanted && capacity < table->limit)
		capacity *= 2;
	if (capacity > table->limit)
		capacity = table->limit;
	size_t index_size = index_size_for(capacity);
	struct slot *index = NULL;

	if (index_size - 1 != table->index_mask) {
		index = calloc(index_size, sizeof(*index));
		if (!index)
			goto fail;
	}
	struct fx_series *series = realloc(table->series, capacity * sizeof(*series));
	if (!series)
		goto fail;
	table->series = series;
	table->capacity = capacity;
	if (index) {
		/* Reinsert from the old index alone: the slots carry the hash, the dense positions do not
		 * move. */
		size_t old_size = table->index_mask + 1;
		for (size_t i = 0; i < old_size; i++)
			if (table->index[i].position)
				index_place(index, index_size - 1, table->index[i].position,
					    table->index[i].hash);
		free(table->index);
		table->index = index;
		table->index_mask = index_size - 1;
	}
	return 0;
fail:
	free(index);
	return FX_TABLE_E_NOMEM;
}

struct fx_series_table *fx_series_table_create(size_t max_series)
{
	struct fx_series_table *table = NULL;

	if (max_series > TABLE_LIMIT) {
		fx_warn("series table: max_series %zu lowered to %zu", max_series, TABLE_LIMIT);
		max_series = TABLE_LIMIT;
	}
	table = calloc(1, sizeof(*table));
	if (!table)
		goto fail;
	table->max_series = max_series;
	table->limit = max_series + FX_TABLE_FOLDED_MAX;
	table->capacity = 0;
	table->index_mask = INDEX_MIN_SIZE - 1;
	table->index = calloc(INDEX_MIN_SIZE, sizeof(*table->index));
	if (!table->index)
		goto fail;
	if (grow(table, 1) != 0)
		goto fail;
	return table;
fail:
	fx_error("series table: out of memory creating a table of %zu series", max_series);
	fx_series_table_destroy(table);
	return NULL;
}

void fx_series_table_destroy(struct fx_series_table *table)
{
	if (!table)
		return;
	free(table->series);
	free(table->index);
	free(table);
}

/* Finds the series of `key` (whose hash is `hash`), creating it with zero counters when absent and there
 * is room. `upcoming` is how many new series may follow this one (at least 1): growth makes room for them
 * in one step. Returns the dense entry, or NULL with *error set to FX_TABLE_E_FULL or FX_TABLE_E_NOMEM. */
static inline struct fx_series *find_or_insert(struct fx_series_table *table, const struct fx_series_key *key,
					       uint32_t hash, size_t upcoming, int *error)
{
	size_t i = probe(table, key, hash);
	if (table->index[i].position)
		return &table->series[table->index[i].position - 1];

	if (key->other ? table->n_folded == FX_TABLE_FOLDED_MAX
		       : table->count - table->n_folded == table->max_series) {
		*error = FX_TABLE_E_FULL;
		return NULL;
	}
	if (table->count == table->capacity) {
		if (grow(table, table->count + upcoming) != 0) {
			*error = FX_TABLE_E_NOMEM;
			return NULL;
		}
		i = probe(table, key, hash);
	}
	struct fx_series *series = &table->series[table->count];
	memset(series, 0, sizeof(*series));
	series->key = *key;
	/* So that the first update's max() takes its time, whatever its sign. */
	series->updated_ms = INT64_MIN;
	series->created_ms = INT64_MAX; /* and its min() */
	table->count++;
	table->n_folded += key->other != 0;
	table->index[i].position = (uint32_t)table->count;
	table->index[i].hash = hash;
	return series;
}

int fx_series_table_add(struct fx_series_table *table, const struct fx_series_key *key,
			enum fx_direction direction, uint64_t bytes, uint64_t packets, int64_t now_ms)
{
	assert(direction == FX_DIR_RECEIVE || direction == FX_DIR_TRANSMIT);
	int error = 0;
	struct fx_series *series = find_or_insert(table, key, key_hash(key), 1, &error);
	if (!series && error == FX_TABLE_E_FULL && table->fold && !key->other) {
		struct fx_series_key folded;
		fx_key_overflow(table->fold, key, &folded);
		series = find_or_insert(table, &folded, key_hash(&folded), 1, &error);
		if (series)
			error = FX_TABLE_FOLDED;
	}
	if (!series)
		return error;
	if (now_ms > series->updated_ms)
		series->updated_ms = now_ms;
	if (now_ms < series->created_ms)
		series->created_ms = now_ms;
	series->bytes[direction] += bytes;
	series->packets[direction] += packets;
	series->records++;
	series->seen |= 1u << direction;
	return error;
}

/* How far ahead fx_series_table_merge hashes the source keys and prefetches their index slots: enough to
 * cover a cache miss on a large destination, few enough that the slots are still cached when reached. */
#define MERGE_PREFETCH 8

uint64_t fx_series_table_merge(struct fx_series_table *dst, const struct fx_series_table *src)
{
	assert(dst != src);
	uint64_t refused = 0;
	struct fx_series_key folded;
	uint32_t hashes[MERGE_PREFETCH];
	for (size_t n = 0; n < src->count && n < MERGE_PREFETCH; n++) {
		hashes[n] = key_hash(&src->series[n].key);
		__builtin_prefetch(&dst->index[hashes[n] & dst->index_mask]);
	}
	for (size_t n = 0; n < src->count; n++) {
		const struct fx_series *from = &src->series[n];
		uint32_t hash = hashes[n % MERGE_PREFETCH];
		if (n + MERGE_PREFETCH < src->count) {
			uint32_t ahead = key_hash(&src->series[n + MERGE_PREFETCH].key);
			hashes[n % MERGE_PREFETCH] = ahead;
			/* A hint only: if dst grows meanwhile, the slot is simply looked up again. */
			__builtin_prefetch(&dst->index[ahead & dst->index_mask]);
		}
		int error = 0;
		struct fx_series *to = find_or_insert(dst, &from->key, hash, src->count - n, &error);
		if (!to && error == FX_TABLE_E_FULL && dst->fold && !from->key.other) {
			/* Overflow: the records of a new series past max_series go to its hostname's
			 * overflow series. */
			fx_key_overflow(dst->fold, &from->key, &folded);
			to = find_or_insert(dst, &folded, key_hash(&folded), 1, &error);
		}
		if (!to) {
			/* Out of memory is counted with the full table: either way these records are not
			 * kept. */
			refused += from->records;
			continue;
		}
		if (from->updated_ms > to->updated_ms)
			to->updated_ms = from->updated_ms;
		if (from->created_ms < to->created_ms)
			to->created_ms = from->created_ms;
		to->bytes[0] += from->bytes[0];
		to->bytes[1] += from->bytes[1];
		to->packets[0] += from->packets[0];
		to->packets[1] += from->packets[1];
		to->records += from->records;
		to->seen |= from->seen;
	}
	return refused;
}

/* Empties slot i and shifts the following run back so that no probe chain crosses a hole
 * (Knuth's algorithm R for linear probing): an entry at j may move to the hole when its home slot is not
 * cyclically within (hole, j]. */
static void index_delete(struct fx_series_table *table, size_t hole)
{
	size_t mask = table->index_mask;
	size_t j = hole;
	for (;;) {
		j = (j + 1) & mask;
		if (table->index[j].position == 0)
			break;
		size_t home = table->index[j].hash & mask;
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			table->index[hole] = table->index[j];
			hole = j;
		}
	}
	table->index[hole].position = 0;
	table->index[hole].hash = 0;
}

/* The slot that points at dense position `position` (0-based). It exists by the invariants. */
static size_t slot_of(const struct fx_series_table *table, size_t position)
{
	uint32_t hash = key_hash(&table->series[position].key);
	size_t i = hash & table->index_mask;
	while (table->index[i].position != position + 1) {
		assert(table->index[i].position != 0);
		i = (i + 1) & table->index_mask;
	}
	return i;
}

size_t fx_series_table_expire(struct fx_series_table *table, int64_t cutoff_ms,
			      void (*on_removed)(void *opaque, const struct fx_series *series), void *opaque)
{
	size_t removed = 0;
	size_t n = 0;
	while (n < table->count) {
		/* Overflow series stay: they are few (one per hostname), and their records are what
		 * flow_exporter_records_overflow_total counts, which must not go back. */
		if (table->series[n].updated_ms >= cutoff_ms || table->series[n].key.other) {
			n++;
			continue;
		}
		if (on_removed)
			on_removed(opaque, &table->series[n]);
		index_delete(table, slot_of(table, n));
		size_t last = table->count - 1;
		if (n != last) {
			/* Fill the hole with the last series and repoint its slot; then look at n again,
			 * since the moved series has not been checked yet. */
			size_t moved = slot_of(table, last);
			table->series[n] = table->series[last];
			table->index[moved].position = (uint32_t)(n + 1);
		}
		table->count--;
		removed++;
	}
	return removed;
}

void fx_series_table_clear(struct fx_series_table *table)
{
	memset(table->index, 0, (table->index_mask + 1) * sizeof(*table->index));
	table->count = 0;
	table->n_folded = 0;
}

struct fx_series *fx_series_table_upsert(struct fx_series_table *table, const struct fx_series_key *key,
					bool *created)
{
	int error = 0;
	size_t before = table->count;
	struct fx_series *series = find_or_insert(table, key, key_hash(key), 1, &error);
	*created = table->count != before;
	return series;
}

void fx_series_table_set_fold(struct fx_series_table *table, const struct fx_key_layout *layout)
{
	table->fold = layout;
}

const struct fx_key_layout *fx_series_table_fold(const struct fx_series_table *table)
{
	return table->fold;
}

size_t fx_series_table_count_held(const struct fx_series_table *table)
{
	return table->count - table->n_folded;
}

size_t fx_series_table_count(const struct fx_series_table *table)
{
	return table->count;
}

size_t fx_series_table_max(const struct fx_series_table *table)
{
	return table->max_series;
}

const struct fx_series *fx_series_table_array(const struct fx_series_table *table)
{
	return table->series;
}

const struct fx_series *fx_series_table_find(const struct fx_series_table *table,
					     const struct fx_series_key *key)
{
	size_t i = probe(table, key, key_hash(key));
	return table->index[i].position ? &table->series[table->index[i].position - 1] : NULL;
}
