/* Interned strings: equal strings share a pointer, the pool's bound holds, and many threads interning at
 * once agree on every pointer. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fx/intern.h"

static void test_equal_and_different(void)
{
	struct fx_intern *pool = fx_intern_create(100);
	CHECK(pool != NULL);
	char buffer_a[] = "router-1.example.net";
	char buffer_b[] = "router-1.example.net";
	const char *a = fx_intern_get(pool, buffer_a, strlen(buffer_a));
	const char *b = fx_intern_get(pool, buffer_b, strlen(buffer_b));
	CHECK(a != NULL);
	CHECK(a == b);
	CHECK(a != buffer_a);
	CHECK_STR(a, "router-1.example.net");

	/* The copy does not depend on the caller's buffer. */
	buffer_a[0] = 'X';
	CHECK_STR(a, "router-1.example.net");

	const char *c = fx_intern_get(pool, "router-2.example.net", 20);
	CHECK(c != NULL && c != a);
	CHECK_STR(c, "router-2.example.net");

	/* Only len bytes count: a prefix is a different string, and gets its own NUL. */
	const char *prefix = fx_intern_get(pool, "router-1.example.net", 8);
	CHECK(prefix != NULL && prefix != a);
	CHECK_STR(prefix, "router-1");
	CHECK(fx_intern_get(pool, "router-1 and more", 8) == prefix);

	const char *empty = fx_intern_get(pool, "", 0);
	CHECK(empty != NULL);
	CHECK_STR(empty, "");
	CHECK(fx_intern_get(pool, "ignored", 0) == empty);

	CHECK_EQ_U64(fx_intern_count(pool), 4);
	fx_intern_destroy(pool);
	fx_intern_destroy(NULL);
}

static void test_limit(void)
{
	struct fx_intern *pool = fx_intern_create(10);
	const char *kept[10];
	char name[32];
	for (int i = 0; i < 10; i++) {
		int len = snprintf(name, sizeof(name), "host-%d", i);
		kept[i] = fx_intern_get(pool, name, (size_t)len);
		CHECK(kept[i] != NULL);
	}
	CHECK_EQ_U64(fx_intern_count(pool), 10);
	CHECK(fx_intern_get(pool, "one-too-many", 12) == NULL);
	CHECK(fx_intern_get(pool, "another", 7) == NULL);
	CHECK_EQ_U64(fx_intern_count(pool), 10);
	/* Strings already in the pool are still returned once it is full. */
	for (int i = 0; i < 10; i++) {
		int len = snprintf(name, sizeof(name), "host-%d", i);
		CHECK(fx_intern_get(pool, name, (size_t)len) == kept[i]);
	}
	fx_intern_destroy(pool);

	struct fx_intern *none = fx_intern_create(0);
	CHECK(none != NULL);
	CHECK(fx_intern_get(none, "a", 1) == NULL);
	CHECK_EQ_U64(fx_intern_count(none), 0);
	fx_intern_destroy(none);
}

enum { MANY = 50000 };

static void test_growth(void)
{
	struct fx_intern *pool = fx_intern_create(MANY);
	const char **kept = calloc(MANY, sizeof(*kept));
	char name[32];
	for (int i = 0; i < MANY; i++) {
		int len = snprintf(name, sizeof(name), "h%d", i);
		kept[i] = fx_intern_get(pool, name, (size_t)len);
	}
	int wrong = 0;
	for (int i = 0; i < MANY; i++) {
		int len = snprintf(name, sizeof(name), "h%d", i);
		if (!kept[i] || fx_intern_get(pool, name, (size_t)len) != kept[i] ||
		    strcmp(kept[i], name) != 0)
			wrong++;
		if (i > 0 && kept[i] == kept[i - 1])
			wrong++;
	}
	CHECK(wrong == 0);
	CHECK_EQ_U64(fx_intern_count(pool), MANY);
	free(kept);
	fx_intern_destroy(pool);
}

/* Threads intern the same names in different orders and record the pointers they got. */
enum { THREADS = 8, NAMES = 2000 };

struct worker {
	struct fx_intern *pool;
	unsigned seed;
	const char *got[NAMES];
};

static void *intern_worker(void *arg)
{
	struct worker *w = arg;
	int order[NAMES];
	for (int i = 0; i < NAMES; i++)
		order[i] = i;
	uint64_t state = w->seed * 0x9e3779b97f4a7c15ull + 1;
	for (int i = NAMES - 1; i > 0; i--) {
		state ^= state << 13, state ^= state >> 7, state ^= state << 17;
		int j = (int)(state % (uint64_t)(i + 1));
		int t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	char name[32];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < NAMES; i++) {
			int n = order[i];
			int len = snprintf(name, sizeof(name), "edge-%d.pop", n);
			const char *p = fx_intern_get(w->pool, name, (size_t)len);
			if (round == 0)
				w->got[n] = p;
			else if (w->got[n] != p)
				w->got[n] = (const char *)1; /* marks a pointer that changed between rounds */
		}
	}
	return NULL;
}

static void run_threads(size_t max_strings)
{
	struct fx_intern *pool = fx_intern_create(max_strings);
	static struct worker workers[THREADS];
	pthread_t threads[THREADS];
	for (int t = 0; t < THREADS; t++) {
		workers[t].pool = pool;
		workers[t].seed = (unsigned)t + 1;
		CHECK(pthread_create(&threads[t], NULL, intern_worker, &workers[t]) == 0);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(threads[t], NULL);

	/* Every name is either interned with one pointer seen by all threads, or refused to all of them:
	 * a name refused once was refused because the pool was full, and a full pool stays full. */
	int inconsistent = 0, interned = 0;
	char name[32];
	for (int n = 0; n < NAMES; n++) {
		const char *p = workers[0].got[n];
		for (int t = 1; t < THREADS; t++)
			if (workers[t].got[n] != p)
				inconsistent++;
		if (p == (const char *)1) {
			inconsistent++;
			continue;
		}
		if (p) {
			interned++;
			snprintf(name, sizeof(name), "edge-%d.pop", n);
			if (strcmp(p, name) != 0)
				inconsistent++;
		}
	}
	CHECK(inconsistent == 0);
	size_t expected = max_strings < NAMES ? max_strings : NAMES;
	CHECK_EQ_U64(interned, expected);
	CHECK_EQ_U64(fx_intern_count(pool), expected);
	fx_intern_destroy(pool);
}

int main(void)
{
	test_equal_and_different();
	test_limit();
	test_growth();
	run_threads(100000);
	run_threads(NAMES / 2);
	return check_exit();
}
