/* Interned label strings: one copy of each distinct string, so that series keys compare and hash the
 * pointer instead of the bytes.
 *
 * DESIGN
 * An open-addressing table (linear probing, load factor <= 0.5) of entries pointing at strings allocated
 * once each with their NUL. The table grows by doubling; the strings never move and are freed only by
 * fx_intern_destroy, which is what lets every thread keep the pointers with no reference count.
 *
 * Thread: any thread. One mutex covers lookup and insertion; the hot path is expected to cache what it
 * looked up (hostnames are few and repeat), so the lock is not taken per record.
 *
 * Invariants: count <= max_strings; index size >= 2 * count, so probes always reach an empty slot; equal
 * byte strings are present at most once.
 */
#include "fx/intern.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fx/hash.h"
#include "fx/log.h"

#define INTERN_MIN_SIZE 16

struct entry {
	char *string; /* NULL = empty slot */
	size_t len;
	uint64_t hash;
	uint32_t id; /* from 1, in order of insertion */
};

/* Ids -> strings: a directory of fixed chunks, allocated under the lock and never moved, so that
 * fx_intern_string reads without it. */
#define ID_CHUNK 4096

struct fx_intern {
	pthread_mutex_t lock;
	struct entry *slots; /* guarded by lock */
	size_t mask;	     /* slot count - 1; guarded by lock */
	size_t count;	     /* guarded by lock */
	size_t max_strings;  /* immutable */
	const char ***chunks; /* max_strings / ID_CHUNK + 1 pointers; chunk c holds ids c * ID_CHUNK + i */
};

struct fx_intern *fx_intern_create(size_t max_strings)
{
	struct fx_intern *pool = NULL;
	bool lock_ready = false;

	pool = calloc(1, sizeof(*pool));
	if (!pool)
		goto fail;
	if (pthread_mutex_init(&pool->lock, NULL) != 0)
		goto fail;
	lock_ready = true;
	pool->slots = calloc(INTERN_MIN_SIZE, sizeof(*pool->slots));
	if (!pool->slots)
		goto fail;
	pool->mask = INTERN_MIN_SIZE - 1;
	pool->max_strings = max_strings;
	pool->chunks = calloc(max_strings / ID_CHUNK + 1, sizeof(*pool->chunks));
	if (!pool->chunks)
		goto fail;
	return pool;
fail:
	fx_error("intern: out of resources creating a pool of %zu strings", max_strings);
	if (pool) {
		if (lock_ready)
			pthread_mutex_destroy(&pool->lock);
		free(pool->slots);
		free(pool);
	}
	return NULL;
}

void fx_intern_destroy(struct fx_intern *pool)
{
	if (!pool)
		return;
	for (size_t i = 0; i <= pool->mask; i++)
		free(pool->slots[i].string);
	for (size_t c = 0; c <= pool->max_strings / ID_CHUNK; c++)
		free(pool->chunks[c]);
	free(pool->chunks);
	free(pool->slots);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

static void place(struct entry *slots, size_t mask, const struct entry *e)
{
	size_t i = e->hash & mask;
	while (slots[i].string)
		i = (i + 1) & mask;
	slots[i] = *e;
}

/* Doubles the table. Called with the lock held; on failure the table is unchanged. */
static int grow(struct fx_intern *pool)
{
	size_t size = (pool->mask + 1) * 2;
	struct entry *slots = calloc(size, sizeof(*slots));
	if (!slots)
		return -1;
	for (size_t i = 0; i <= pool->mask; i++)
		if (pool->slots[i].string)
			place(slots, size - 1, &pool->slots[i]);
	free(pool->slots);
	pool->slots = slots;
	pool->mask = size - 1;
	return 0;
}

/* The entry of s[0..len), inserted when absent and there is room; NULL when full or out of memory.
 * @locks pool->lock held. */
static const struct entry *find_or_insert(struct fx_intern *pool, const char *s, size_t len)
{
	uint64_t hash = fx_hash_bytes(s, len);
	size_t i = hash & pool->mask;
	for (; pool->slots[i].string; i = (i + 1) & pool->mask) {
		const struct entry *e = &pool->slots[i];
		if (e->hash == hash && e->len == len && memcmp(e->string, s, len) == 0)
			return e;
	}
	if (pool->count >= pool->max_strings || len == SIZE_MAX)
		return NULL;
	uint32_t id = (uint32_t)pool->count + 1;
	const char **chunk = pool->chunks[id / ID_CHUNK];
	if (!chunk) {
		chunk = calloc(ID_CHUNK, sizeof(*chunk));
		if (!chunk)
			return NULL;
		pool->chunks[id / ID_CHUNK] = chunk;
	}
	if (2 * (pool->count + 1) > pool->mask + 1) {
		if (grow(pool) != 0)
			return NULL;
	}
	struct entry e = {.string = malloc(len + 1), .len = len, .hash = hash, .id = id};
	if (!e.string)
		return NULL;
	if (len)
		memcpy(e.string, s, len);
	e.string[len] = '\0';
	place(pool->slots, pool->mask, &e);
	chunk[id % ID_CHUNK] = e.string;
	pool->count++;
	for (i = hash & pool->mask; pool->slots[i].string != e.string; i = (i + 1) & pool->mask)
		;
	return &pool->slots[i];
}

const char *fx_intern_get(struct fx_intern *pool, const char *s, size_t len)
{
	assert(s || len == 0);
	assert(!len || !memchr(s, '\0', len));
	pthread_mutex_lock(&pool->lock);
	const struct entry *e = find_or_insert(pool, s, len);
	const char *result = e ? e->string : NULL;
	pthread_mutex_unlock(&pool->lock);
	return result;
}

uint32_t fx_intern_id(struct fx_intern *pool, const char *s, size_t len)
{
	assert(s || len == 0);
	assert(!len || !memchr(s, '\0', len));
	pthread_mutex_lock(&pool->lock);
	const struct entry *e = find_or_insert(pool, s, len);
	uint32_t id = e ? e->id : 0;
	pthread_mutex_unlock(&pool->lock);
	return id;
}

const char *fx_intern_string(const struct fx_intern *pool, uint32_t id)
{
	if (!pool || id == 0 || id > pool->max_strings)
		return NULL;
	const char **chunk = pool->chunks[id / ID_CHUNK];
	return chunk ? chunk[id % ID_CHUNK] : NULL;
}

size_t fx_intern_count(struct fx_intern *pool)
{
	pthread_mutex_lock(&pool->lock);
	size_t count = pool->count;
	pthread_mutex_unlock(&pool->lock);
	return count;
}
