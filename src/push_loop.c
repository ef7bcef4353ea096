/* The pushers' thread: every interval it takes the values (ops->push_interval), sends what waits once it
 * is due (ops->send_one), and otherwise sleeps until the next interval or retry; on shutdown it makes the
 * final push (ops->finish) and exits.
 *
 * DESIGN
 * - Other threads only set `stop` or `final_requested` under `lock` and signal `wake`; the thread sleeps on
 *   `wake` (a CLOCK_MONOTONIC condvar) with a timeout, so a stop or a shutdown is seen at once.
 * - The schedule (next_push_ms) belongs to the thread. A transfer calls fx_push_loop_tick about every 50 ms
 *   so an interval is never missed while a slow request is on the wire. A late tick does not catch up: the
 *   next interval is then counted from now.
 * - Shutdown waits for the final push until the deadline; past it, the abort flag stops the transfer in
 *   progress (ops->wakeup interrupts its wait) and shutdown waits for the thread to notice.
 *
 * Thread: see push_loop.h. */
#include "fx/push_loop.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "fx/clock.h"

struct fx_push_loop {
	pthread_t thread;
	bool thread_started; /* owner's thread */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop, final_requested, final_done; /* under lock */
	int64_t final_deadline_ms;               /* under lock */
	int final_result;                        /* under lock */
	atomic_bool abort;                       /* stops a transfer in progress */

	struct fx_push_loop_ops ops;
	void *opaque;
	int64_t interval_ms;
	int64_t next_push_ms; /* mono; loop thread */
};

void fx_push_loop_tick(void *opaque)
{
	struct fx_push_loop *loop = opaque;
	int64_t now = fx_mono_ms();
	if (now < loop->next_push_ms)
		return;
	loop->ops.push_interval(loop->opaque);
	loop->next_push_ms += loop->interval_ms;
	if (loop->next_push_ms <= now)
		loop->next_push_ms = now + loop->interval_ms;
}

static void sleep_until(struct fx_push_loop *loop, int64_t wake_mono_ms)
{
	int64_t delay = wake_mono_ms - fx_mono_ms();
	if (delay <= 0)
		return;
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += delay / 1000;
	until.tv_nsec += (delay % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&loop->lock);
	while (!loop->stop && !loop->final_requested)
		if (pthread_cond_timedwait(&loop->wake, &loop->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&loop->lock);
}

static void *run(void *opaque)
{
	struct fx_push_loop *loop = opaque;
	loop->next_push_ms = fx_mono_ms();
	for (;;) {
		pthread_mutex_lock(&loop->lock);
		bool stop = loop->stop, final = loop->final_requested;
		int64_t deadline = loop->final_deadline_ms;
		pthread_mutex_unlock(&loop->lock);
		if (final) {
			int rc = loop->ops.finish(loop->opaque, deadline);
			pthread_mutex_lock(&loop->lock);
			loop->final_done = true;
			loop->final_result = rc;
			pthread_cond_broadcast(&loop->wake);
			pthread_mutex_unlock(&loop->lock);
			break;
		}
		if (stop)
			break;
		fx_push_loop_tick(loop);
		int64_t due = 0;
		bool waiting = loop->ops.waiting(loop->opaque, &due);
		if (waiting && fx_mono_ms() >= due) {
			loop->ops.send_one(loop->opaque);
			continue;
		}
		int64_t wake = loop->next_push_ms;
		if (waiting && due < wake)
			wake = due;
		if (!waiting)
			malloc_trim(0); /* all sent: the snapshot and the request bodies are freed, give them back */
		sleep_until(loop, wake);
	}
	return NULL;
}

struct fx_push_loop *fx_push_loop_create(const struct fx_push_loop_ops *ops, void *opaque, int64_t interval_ms)
{
	struct fx_push_loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return NULL;
	pthread_mutex_init(&loop->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&loop->wake, &attr);
	pthread_condattr_destroy(&attr);
	atomic_init(&loop->abort, false);
	loop->ops = *ops;
	loop->opaque = opaque;
	loop->interval_ms = interval_ms;
	return loop;
}

int fx_push_loop_start(struct fx_push_loop *loop)
{
	if (loop->thread_started)
		return 1;
	if (pthread_create(&loop->thread, NULL, run, loop) != 0)
		return -1;
	loop->thread_started = true;
	return 0;
}

int fx_push_loop_shutdown(struct fx_push_loop *loop, int64_t deadline_mono_ms)
{
	if (!loop->thread_started)
		return -1;
	pthread_mutex_lock(&loop->lock);
	loop->final_requested = true;
	loop->final_deadline_ms = deadline_mono_ms;
	pthread_cond_broadcast(&loop->wake);
	/* The thread may be in a transfer: it is bounded by the timeout; past the deadline, abort it. */
	struct timespec until = {deadline_mono_ms / 1000, (deadline_mono_ms % 1000) * 1000000L};
	while (!loop->final_done) {
		if (pthread_cond_timedwait(&loop->wake, &loop->lock, &until) == ETIMEDOUT) {
			atomic_store(&loop->abort, true);
			loop->ops.wakeup(loop->opaque);
			while (!loop->final_done)
				pthread_cond_wait(&loop->wake, &loop->lock);
		}
	}
	int rc = loop->final_result;
	pthread_mutex_unlock(&loop->lock);
	pthread_join(loop->thread, NULL);
	loop->thread_started = false;
	return rc;
}

void fx_push_loop_destroy(struct fx_push_loop *loop)
{
	if (!loop)
		return;
	if (loop->thread_started) {
		pthread_mutex_lock(&loop->lock);
		loop->stop = true;
		atomic_store(&loop->abort, true);
		loop->ops.wakeup(loop->opaque);
		pthread_cond_broadcast(&loop->wake);
		pthread_mutex_unlock(&loop->lock);
		pthread_join(loop->thread, NULL);
	}
	pthread_cond_destroy(&loop->wake);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}

const atomic_bool *fx_push_loop_abort_flag(const struct fx_push_loop *loop) { return &loop->abort; }

bool fx_push_loop_aborted(const struct fx_push_loop *loop) { return atomic_load(&loop->abort); }
