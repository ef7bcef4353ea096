/* Step (4) of the data path: the counter table, keyed by the label tuple.
 *
 * DESIGN
 * The series live in a dense array of rows (`rows[0..count)`), so that merging, copying into a snapshot and
 * expiring are linear scans. A row is a struct fx_series cut after the last extra dimension the table's
 * layout uses (`stride` bytes; the key is the struct's last member and its extra slots the key's): with
 * the default labels a row is 96 bytes instead of 128. Rows are read through `struct fx_series *` for the
 * fields they have; whole structs are only ever copied in and out (fx_series_table_copy_row, _copy_out).
 * Lookups go through an open-addressing index with linear probing: a power-of-two array of slots, each
 * holding the dense position plus one (0 = empty slot) and the upper 32 bits of the key's hash. The hash
 * fragment serves twice: a probe compares it before it touches the dense entry, so a mismatch costs no cache
 * miss on the row; and the home slot is the fragment masked, so growing the index and shifting slots back
 * after a deletion never rehash a key nor read the dense array. Growth makes room in one step for what a
 * merge may still bring, and a merge hashes a few source keys ahead to prefetch their slots (a large
 * destination misses the cache).
 *
 * Keys hash and compare as their first `key_bytes` bytes (the extra slots past the table's width are zero in
 * every key given to it, by the layout that made them): the hash of a key is the same in tables of every
 * width, so a merge from a wider table finds the same series.
 *
 * Thread: a table has one owner at a time and takes no lock.
 *
 * Invariants:
 * - count <= capacity <= limit, and index_size >= 2 * capacity: the load factor stays <= 0.5, so
 *   there is always an empty slot and every probe ends.
 * - every row i has exactly one slot whose position is i + 1, found by probing from its home slot
 *   without crossing an empty slot (backward-shift deletion keeps this without tombstones).
 */
#include "fx/series_table.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fx/hash.h"
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
	unsigned char *rows; /* dense, [0..count) in use, capacity allocated, `stride` bytes each */
	size_t stride;	     /* bytes of a row: struct fx_series up to key.extra[key_extra] */
	size_t key_bytes;    /* bytes of a row's key: struct fx_series_key up to extra[key_extra] */
	size_t key_extra;    /* extra dimension slots kept */
	size_t count;
	size_t capacity;
	size_t max_series;		  /* of held series: those whose key has no "other" label */
	size_t limit;			  /* max_series + FX_TABLE_FOLDED_MAX: what capacity may reach */
	size_t n_folded;		  /* series whose key has "other" labels (overflow series) */
	const struct fx_key_layout *fold; /* when set, a new held series past max_series is folded */
	struct slot *index;
	size_t index_mask; /* index size - 1 */
};

_Static_assert(sizeof(struct fx_series_key) == 64, "a key is eight words with no padding");
_Static_assert(offsetof(struct fx_series_key, extra) == 32, "the extra slots end the key");
_Static_assert(offsetof(struct fx_series, key) + sizeof(struct fx_series_key) == sizeof(struct fx_series),
	       "the key ends the series");
_Static_assert(offsetof(struct fx_series, key) % 8 == 0, "a row starts aligned");

#define KEY_HEAD_BYTES offsetof(struct fx_series_key, extra)

static inline struct fx_series *row_at(const struct fx_series_table *table, size_t i)
{
	return (struct fx_series *)(void *)(table->rows + i * table->stride);
}

/* The key as its eight 64-bit words (the extra slots a table does not keep are zero), hashed as bytes:
 * every byte is a field (no padding, absent fields zero), so equal keys are equal bytes. */
static inline uint32_t key_hash(const struct fx_series_key *key, size_t key_bytes)
{
	uint64_t w[8] = {0};
	memcpy(w, key, KEY_HEAD_BYTES);
	if (key_bytes > KEY_HEAD_BYTES)
		memcpy(&w[4], key->extra, key_bytes - KEY_HEAD_BYTES);
	uint64_t h = fx_hash_mix(w[0] ^ 0xa0761d6478bd642full, w[1] ^ 0xe7037ed1a0b428dbull) ^
		     fx_hash_mix(w[2] ^ 0x8ebc6af09c88c6e3ull, w[3] ^ 0x589965cc75374cc3ull);
	if (w[4] | w[5] | w[6] | w[7])
		h ^= fx_hash_mix(w[4] ^ 0x1d8e4e27c47d124full, w[5] ^ 0xa0761d6478bd642full) ^
		     fx_hash_mix(w[6] ^ 0xe7037ed1a0b428dbull, w[7] ^ 0x8ebc6af09c88c6e3ull);
	h = fx_hash_mix(h ^ 0x1d8e4e27c47d124full, 0xa0761d6478bd642full);
	return (uint32_t)(h >> 32);
}

static inline bool key_equal(const struct fx_series_key *a, const struct fx_series_key *b, size_t key_bytes)
{
	/* The default layout's width spelled out, so that the compiler inlines its compare. */
	if (key_bytes == KEY_HEAD_BYTES)
		return memcmp(a, b, KEY_HEAD_BYTES) == 0;
	return memcmp(a, b, key_bytes) == 0;
}

/* Whether the extra slots of key past the table's width are zero, as they must be. */
static bool key_fits(const struct fx_series_table *table, const struct fx_series_key *key)
{
	for (size_t i = table->key_extra; i < FX_KEY_EXTRA; i++)
		if (key->extra[i])
			return false;
	return true;
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
		if (s->hash == hash && key_equal(&row_at(table, s->position - 1)->key, key, table->key_bytes))
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

/* Grows the rows to hold `wanted` series, and by an eighth at least (never past the limit), and the index
 * with them. An eighth, not a doubling: the rows are most of the memory, and what a table never fills is
 * malloc'ed all the same (a merge asks for what it brings in one step; growth by one record is amortised:
 * O(8) row copies per series). On failure the table is unchanged. */
static int grow(struct fx_series_table *table, size_t wanted)
{
	assert(table->capacity < table->limit && wanted > table->capacity);
	size_t capacity = table->capacity ? table->capacity + table->capacity / 8 : TABLE_INITIAL_CAPACITY;
	if (capacity < wanted)
		capacity = wanted;
	if (capacity > table->limit)
		capacity = table->limit;
	size_t index_size = index_size_for(capacity);
	struct slot *index = NULL;

	if (index_size - 1 != table->index_mask) {
		index = calloc(index_size, sizeof(*index));
		if (!index)
			goto fail;
	}
	unsigned char *rows = realloc(table->rows, capacity * table->stride);
	if (!rows)
		goto fail;
	table->rows = rows;
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
	return fx_series_table_create_narrow(max_series, FX_KEY_EXTRA);
}

struct fx_series_table *fx_series_table_create_narrow(size_t max_series, size_t key_extra)
{
	struct fx_series_table *table = NULL;
	assert(key_extra <= FX_KEY_EXTRA);

	if (max_series > TABLE_LIMIT) {
		fx_warn("series table: max_series %zu lowered to %zu", max_series, TABLE_LIMIT);
		max_series = TABLE_LIMIT;
	}
	table = calloc(1, sizeof(*table));
	if (!table)
		goto fail;
	table->key_extra = key_extra;
	table->key_bytes = KEY_HEAD_BYTES + key_extra * sizeof(uint32_t);
	table->stride = (offsetof(struct fx_series, key) + table->key_bytes + 7) & ~(size_t)7;
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
	free(table->rows);
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
		return row_at(table, table->index[i].position - 1);
	assert(key_fits(table, key));

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
	struct fx_series *series = row_at(table, table->count);
	memset(series, 0, table->stride);
	memcpy(&series->key, key, table->key_bytes);
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
	struct fx_series *series = find_or_insert(table, key, key_hash(key, table->key_bytes), 1, &error);
	if (!series && error == FX_TABLE_E_FULL && table->fold && !key->other) {
		struct fx_series_key folded;
		fx_key_overflow(table->fold, key, &folded);
		series = find_or_insert(table, &folded, key_hash(&folded, table->key_bytes), 1, &error);
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

/* The key of a row of `table`, whole: its slots past the table's width zero. */
static void whole_key(const struct fx_series_table *table, const struct fx_series *row,
		      struct fx_series_key *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out, &row->key, table->key_bytes);
}

/* The key of row `from` of src, as dst keeps keys: the row's own key when the widths agree, else a whole
 * key in *whole. NULL when the key carries a dimension dst has no slot for (a table of another layout: a
 * bug). */
static const struct fx_series_key *key_for(const struct fx_series_table *dst,
					   const struct fx_series_table *src, const struct fx_series *from,
					   struct fx_series_key *whole)
{
	if (src->key_extra == dst->key_extra)
		return &from->key;
	whole_key(src, from, whole);
	return key_fits(dst, whole) ? whole : NULL;
}

uint64_t fx_series_table_merge(struct fx_series_table *dst, const struct fx_series_table *src)
{
	assert(dst != src);
	uint64_t refused = 0;
	struct fx_series_key folded, whole;
	uint32_t hashes[MERGE_PREFETCH];
	/* Hashes do not depend on the width (key_hash), so src's hash is dst's. */
	for (size_t n = 0; n < src->count && n < MERGE_PREFETCH; n++) {
		hashes[n] = key_hash(&row_at(src, n)->key, src->key_bytes);
		__builtin_prefetch(&dst->index[hashes[n] & dst->index_mask]);
	}
	for (size_t n = 0; n < src->count; n++) {
		const struct fx_series *from = row_at(src, n);
		uint32_t hash = hashes[n % MERGE_PREFETCH];
		if (n + MERGE_PREFETCH < src->count) {
			uint32_t ahead = key_hash(&row_at(src, n + MERGE_PREFETCH)->key, src->key_bytes);
			hashes[n % MERGE_PREFETCH] = ahead;
			/* A hint only: if dst grows meanwhile, the slot is simply looked up again. */
			__builtin_prefetch(&dst->index[ahead & dst->index_mask]);
		}
		const struct fx_series_key *key = key_for(dst, src, from, &whole);
		int error = 0;
		struct fx_series *to = key ? find_or_insert(dst, key, hash, src->count - n, &error) : NULL;
		if (!to && key && error == FX_TABLE_E_FULL && dst->fold && !key->other) {
			/* Overflow: the records of a new series past max_series go to its hostname's
			 * overflow series. fx_key_overflow reads a whole key. */
			whole_key(src, from, &whole);
			fx_key_overflow(dst->fold, &whole, &folded);
			to = find_or_insert(dst, &folded, key_hash(&folded, dst->key_bytes), 1, &error);
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
	uint32_t hash = key_hash(&row_at(table, position)->key, table->key_bytes);
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
		const struct fx_series *row = row_at(table, n);
		if (row->updated_ms >= cutoff_ms || row->key.other) {
			n++;
			continue;
		}
		if (on_removed) {
			struct fx_series whole;
			fx_series_table_copy_row(table, n, &whole);
			on_removed(opaque, &whole);
		}
		index_delete(table, slot_of(table, n));
		size_t last = table->count - 1;
		if (n != last) {
			/* Fill the hole with the last series and repoint its slot; then look at n again,
			 * since the moved series has not been checked yet. */
			size_t moved = slot_of(table, last);
			memcpy(row_at(table, n), row_at(table, last), table->stride);
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
	struct fx_series *series = find_or_insert(table, key, key_hash(key, table->key_bytes), 1, &error);
	*created = table->count != before;
	return series;
}

void fx_series_table_set_fold(struct fx_series_table *table, const struct fx_key_layout *layout)
{
	table->fold = layout;
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

size_t fx_series_table_key_extra(const struct fx_series_table *table)
{
	return table->key_extra;
}

const struct fx_series *fx_series_table_array(const struct fx_series_table *table)
{
	assert(table->stride == sizeof(struct fx_series));
	return (const struct fx_series *)(const void *)table->rows;
}

const struct fx_series *fx_series_table_row(const struct fx_series_table *table, size_t i)
{
	assert(i < table->count);
	return row_at(table, i);
}

void fx_series_table_copy_row(const struct fx_series_table *table, size_t i, struct fx_series *out)
{
	assert(i < table->count);
	memset(&out->key.extra[table->key_extra], 0, (FX_KEY_EXTRA - table->key_extra) * sizeof(uint32_t));
	memcpy(out, row_at(table, i), offsetof(struct fx_series, key) + table->key_bytes);
}

void fx_series_table_copy_out(const struct fx_series_table *table, struct fx_series *out)
{
	if (table->stride == sizeof(*out)) {
		if (table->count)
			memcpy(out, table->rows, table->count * sizeof(*out));
		return;
	}
	for (size_t i = 0; i < table->count; i++)
		fx_series_table_copy_row(table, i, &out[i]);
}

const struct fx_series *fx_series_table_find(const struct fx_series_table *table,
					     const struct fx_series_key *key)
{
	size_t i = probe(table, key, key_hash(key, table->key_bytes));
	return table->index[i].position ? row_at(table, table->index[i].position - 1) : NULL;
}
