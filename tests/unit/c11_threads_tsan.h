/* ThreadSanitizer and librdkafka: Debian's librdkafka runs its threads with C11 <threads.h> (thrd_create,
 * mtx_lock, cnd_wait from glibc), which ThreadSanitizer does not intercept. Its threads then run with no
 * sanitizer state (the first malloc in a broker thread crashes) and their locks are invisible to it. Under
 * ThreadSanitizer only, a test that starts librdkafka includes this file once: it defines those functions
 * in the test executable, which the dynamic linker binds librdkafka's calls to, and maps each one to the
 * POSIX function the sanitizer does intercept. glibc implements them the same way, with the same types
 * (thrd_t is a pthread_t, mtx_t and cnd_t hold a pthread_mutex_t and a pthread_cond_t). */
#ifndef FX_TEST_C11_THREADS_TSAN_H
#define FX_TEST_C11_THREADS_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define FX_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FX_TEST_TSAN 1
#endif
#endif

#ifdef FX_TEST_TSAN
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

_Static_assert(sizeof(mtx_t) >= sizeof(pthread_mutex_t), "mtx_t holds a pthread_mutex_t");
_Static_assert(sizeof(cnd_t) >= sizeof(pthread_cond_t), "cnd_t holds a pthread_cond_t");
_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "thrd_t is a pthread_t");

struct c11_start {
	thrd_start_t func;
	void *arg;
};

static void *c11_trampoline(void *opaque)
{
	struct c11_start start = *(struct c11_start *)opaque;
	free(opaque);
	return (void *)(intptr_t)start.func(start.arg);
}

static int c11_result(int err)
{
	return err == 0		  ? thrd_success
	       : err == ETIMEDOUT ? thrd_timedout
	       : err == EBUSY	  ? thrd_busy
				  : thrd_error;
}

int thrd_create(thrd_t *thread, thrd_start_t func, void *arg)
{
	struct c11_start *start = malloc(sizeof(*start));
	if (!start)
		return thrd_nomem;
	*start = (struct c11_start){func, arg};
	int err = pthread_create((pthread_t *)thread, NULL, c11_trampoline, start);
	if (err)
		free(start);
	return err == EAGAIN ? thrd_nomem : c11_result(err);
}

int thrd_join(thrd_t thread, int *result)
{
	void *value = NULL;
	int err = pthread_join((pthread_t)thread, &value);
	if (!err && result)
		*result = (int)(intptr_t)value;
	return c11_result(err);
}

int mtx_init(mtx_t *mutex, int type)
{
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	if (type & mtx_recursive)
		pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	int err = pthread_mutex_init((pthread_mutex_t *)mutex, &attr);
	pthread_mutexattr_destroy(&attr);
	return c11_result(err);
}

int mtx_lock(mtx_t *mutex)
{
	return c11_result(pthread_mutex_lock((pthread_mutex_t *)mutex));
}

int mtx_unlock(mtx_t *mutex)
{
	return c11_result(pthread_mutex_unlock((pthread_mutex_t *)mutex));
}

void mtx_destroy(mtx_t *mutex)
{
	pthread_mutex_destroy((pthread_mutex_t *)mutex);
}

int cnd_init(cnd_t *cond)
{
	return c11_result(pthread_cond_init((pthread_cond_t *)cond, NULL));
}

int cnd_signal(cnd_t *cond)
{
	return c11_result(pthread_cond_signal((pthread_cond_t *)cond));
}

int cnd_broadcast(cnd_t *cond)
{
	return c11_result(pthread_cond_broadcast((pthread_cond_t *)cond));
}

int cnd_wait(cnd_t *cond, mtx_t *mutex)
{
	return c11_result(pthread_cond_wait((pthread_cond_t *)cond, (pthread_mutex_t *)mutex));
}

int cnd_timedwait(cnd_t *restrict cond, mtx_t *restrict mutex, const struct timespec *restrict deadline)
{
	return c11_result(pthread_cond_timedwait((pthread_cond_t *)cond, (pthread_mutex_t *)mutex, deadline));
}

void cnd_destroy(cnd_t *cond)
{
	pthread_cond_destroy((pthread_cond_t *)cond);
}

/* librdkafka orders some of its own threads' work with atomic reference counts, in code the sanitizer
 * does not see: an rwlock it destroys after another thread used it is reported although the count ordered
 * the two. The project's code takes no rwlock, so suppressed are only the reports whose top frame is
 * pthread_rwlock_destroy.
 *
 * The same holds for a fetch response: its messages go to the worker threads of the partitions it holds
 * (one consumer handle, partition queues forwarded to the workers), each message holds a reference to the
 * response's buffer, and whichever worker drops the last reference frees it inside librdkafka, after
 * another worker read its own messages from it. So the interceptors librdkafka itself calls (its free,
 * memcpy, ...) are not checked (called_from_lib); the library's plain accesses are not instrumented
 * anyway, and the project's own accesses stay checked. AddressSanitizer would see a use after free. */
/* And librdkafka's own mutexes go through this file's mtx_* (called from the library only): a report with
 * one of them in a stack is a lock of librdkafka's racing its own initialisation, ordered by what the
 * sanitizer does not see (seen once in test_consumer: an mtx_init in rd_kafka_new and an mtx_lock on one of
 * the handle's threads). */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
	return "race_top:pthread_rwlock_destroy\ncalled_from_lib:librdkafka.so.1\nrace:c11_threads_tsan.h\n";
}
#endif

#endif
