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

#include "fx/log.h"

#define INTERN_MIN_SIZE 16

struct entry {
	char *string; /* NULL = empty slot */
	size_t len;
	uint64_t hash;
};

struct fx_intern {
	pthread_mutex_t lock;
	struct entry *slots; /* guarded by lock */
	size_t mask;	     /* slot count - 1; guarded by lock */
	size_t count;	     /* guarded by lock */
	size_t max_strings;  /* immutable */
};

/* FNV-1a, 64 bit: simple and good enough for short names; the table's size is a power of two, so the
 * final xor-shift folds the high bits into the low ones that pick the slot. */
static uint64_t string_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 32);
}

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

const char *fx_intern_get(struct fx_intern *pool, const char *s, size_t len)
{
	assert(s || len == 0);
	assert(!len || !memchr(s, '\0', len));
	uint64_t hash = string_hash(s, len);
	const char *result = NULL;

	pthread_mutex_lock(&pool->lock);
	size_t i = hash & pool->mask;
	for (; pool->slots[i].string; i = (i + 1) & pool->mask) {
		const struct entry *e = &pool->slots[i];
		if (e->hash == hash && e->len == len && memcmp(e->string, s, len) == 0) {
			result = e->string;
			goto out;
		}
	}
	if (pool->count >= pool->max_strings || len == SIZE_MAX)
		goto out;
	if (2 * (pool->count + 1) > pool->mask + 1) {
		if (grow(pool) != 0)
			goto out;
	}
	struct entry e = {.string = malloc(len + 1), .len = len, .hash = hash};
	if (!e.string)
		goto out;
	if (len)
		memcpy(e.string, s, len);
	e.string[len] = '\0';
	place(pool->slots, pool->mask, &e);
	pool->count++;
	result = e.string;
out:
	pthread_mutex_unlock(&pool->lock);
	return result;
}

size_t fx_intern_count(struct fx_intern *pool)
{
	pthread_mutex_lock(&pool->lock);
	size_t count = pool->count;
	pthread_mutex_unlock(&pool->lock);
	return count;
}
