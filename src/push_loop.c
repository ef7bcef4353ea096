/* The pushers' thread: every interval it takes the values (ops->push_interval), sends what waits once it
 * is due (ops->send_one), and otherwise sleeps until the next interval or retry; on shutdown it makes the
 * final push (ops->finish) and exits.
 *
 * DESIGN
 * - Other threads only set `stop` or `final_requested` under `lock` and signal `wake`; the thread sleeps on
 *   `wake` (a CLOCK_MONOTONIC condvar) with a timeout, so a stop or a shutdown is seen at once.
 * - Every time is read from the loop's clock (fx_mono_ms unless a test gives its own); a wait on the
 *   condvar is the clock's remaining delay, and fx_push_loop_poke makes every waiter read the clock again.
 * - The schedule (next_push_ms) belongs to the thread. A transfer calls fx_push_loop_tick about every 50 ms
 *   so an interval is never missed while a slow request is on the wire. A late tick does not catch up: the
 *   next interval is then counted from now.
 * - Shutdown waits for the final push until the deadline; past it, the abort flag stops the transfer in
 *   progress (each attached client is woken) and shutdown waits for the thread to notice.
 *
 * Thread: see push_loop.h. */
#include "fx/push_loop.h"

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "fx/log.h"
#include "fx/thread_name.h"

#define MAX_CLIENTS 2

struct fx_push_loop {
	pthread_t thread;
	bool thread_started; /* owner's thread */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop, final_requested, final_done; /* under lock */
	int64_t final_deadline_ms;		/* under lock */
	int final_result;			/* under lock */
	uint64_t pokes;				/* under lock */
	atomic_bool abort;			/* stops a transfer in progress */

	struct fx_push_loop_config config;
	struct fx_http_client *clients[MAX_CLIENTS]; /* set before start; woken from any thread */
	size_t n_clients;
	int64_t next_push_ms; /* loop's clock; loop thread */
};

int64_t fx_push_loop_now(const struct fx_push_loop *loop)
{
	return fx_clock_now(loop->config.clock);
}

void fx_push_loop_tick(void *opaque)
{
	struct fx_push_loop *loop = opaque;
	int64_t now = fx_push_loop_now(loop);
	if (now < loop->next_push_ms)
		return;
	loop->config.ops.push_interval(loop->config.opaque);
	loop->next_push_ms += loop->config.interval_ms;
	if (loop->next_push_ms <= now)
		loop->next_push_ms = now + loop->config.interval_ms;
}

/* The CLOCK_MONOTONIC time delay_ms from now, for pthread_cond_timedwait. */
static struct timespec real_time_after(int64_t delay_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += delay_ms / 1000;
	until.tv_nsec += (delay_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	return until;
}

/* Sleeps until wake_ms (the loop's clock), a stop, a shutdown request or a poke. */
static void sleep_until(struct fx_push_loop *loop, int64_t wake_ms)
{
	int64_t delay = wake_ms - fx_push_loop_now(loop);
	if (delay <= 0)
		return;
	struct timespec until = real_time_after(delay);
	pthread_mutex_lock(&loop->lock);
	uint64_t pokes = loop->pokes;
	while (!loop->stop && !loop->final_requested && loop->pokes == pokes)
		if (pthread_cond_timedwait(&loop->wake, &loop->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&loop->lock);
}

/* The final push, and the news of it to shutdown. */
static void run_final(struct fx_push_loop *loop, int64_t deadline)
{
	int rc = loop->config.ops.finish(loop->config.opaque, deadline);
	pthread_mutex_lock(&loop->lock);
	loop->final_done = true;
	loop->final_result = rc;
	pthread_cond_broadcast(&loop->wake);
	pthread_mutex_unlock(&loop->lock);
}

static void *run(void *opaque)
{
	struct fx_push_loop *loop = opaque;
	const struct fx_push_loop_ops *ops = &loop->config.ops;
	void *pusher = loop->config.opaque;
	loop->next_push_ms = fx_push_loop_now(loop);
	for (;;) {
		pthread_mutex_lock(&loop->lock);
		bool stop = loop->stop, final = loop->final_requested;
		int64_t deadline = loop->final_deadline_ms;
		pthread_mutex_unlock(&loop->lock);
		if (final) {
			run_final(loop, deadline);
			break;
		}
		if (stop)
			break;
		fx_push_loop_tick(loop);
		bool waiting = ops->waiting(pusher);
		int64_t due = waiting ? loop->config.retry->retry_at_ms : 0;
		if (waiting && fx_push_loop_now(loop) >= due) {
			ops->send_one(pusher);
			continue;
		}
		int64_t wake = loop->next_push_ms;
		if (waiting && due < wake)
			wake = due;
		if (!waiting)
			malloc_trim(
			    0); /* all sent: the snapshot and the request bodies are freed, give them back */
		sleep_until(loop, wake);
	}
	return NULL;
}

/* Sets the abort flag and interrupts the transfers' waits. Under the lock. */
static void abort_transfers(struct fx_push_loop *loop)
{
	atomic_store(&loop->abort, true);
	for (size_t i = 0; i < loop->n_clients; i++)
		fx_http_client_wakeup(loop->clients[i]);
}

struct fx_push_loop *fx_push_loop_create(const struct fx_push_loop_config *config)
{
	assert(config->interval_ms > 0 && config->retry);
	struct fx_push_loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		goto fail;
	pthread_condattr_t attr;
	if (pthread_condattr_init(&attr) != 0)
		goto fail;
	int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(&loop->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (rc != 0)
		goto fail;
	if (pthread_mutex_init(&loop->lock, NULL) != 0) {
		pthread_cond_destroy(&loop->wake);
		goto fail;
	}
	atomic_init(&loop->abort, false);
	loop->config = *config;
	return loop;
fail:
	fx_error("push: cannot create the pusher's thread state");
	free(loop);
	return NULL;
}

void fx_push_loop_attach(struct fx_push_loop *loop, struct fx_http_client *client)
{
	assert(loop->n_clients < MAX_CLIENTS && !loop->thread_started);
	fx_http_client_set_abort(client, &loop->abort);
	loop->clients[loop->n_clients++] = client;
}

int fx_push_loop_start(struct fx_push_loop *loop)
{
	if (loop->thread_started)
		return 1;
	if (pthread_create(&loop->thread, NULL, run, loop) != 0)
		return -1;
	loop->thread_started = true;
	fx_thread_name(loop->thread, "push", -1);
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
	while (!loop->final_done) {
		int64_t left = deadline_mono_ms - fx_push_loop_now(loop);
		if (left <= 0) {
			abort_transfers(loop);
			while (!loop->final_done)
				pthread_cond_wait(&loop->wake, &loop->lock);
			break;
		}
		struct timespec until = real_time_after(left);
		pthread_cond_timedwait(&loop->wake, &loop->lock, &until);
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
		abort_transfers(loop);
		pthread_cond_broadcast(&loop->wake);
		pthread_mutex_unlock(&loop->lock);
		pthread_join(loop->thread, NULL);
	}
	pthread_cond_destroy(&loop->wake);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}

bool fx_push_loop_pause_until(struct fx_push_loop *loop, int64_t until_mono_ms)
{
	while (fx_push_loop_now(loop) < until_mono_ms && !fx_push_loop_aborted(loop)) {
		struct timespec pause = {0, 20 * 1000000L};
		nanosleep(&pause, NULL);
	}
	return !fx_push_loop_aborted(loop);
}

bool fx_push_loop_aborted(const struct fx_push_loop *loop)
{
	return atomic_load(&loop->abort);
}

void fx_push_loop_poke(struct fx_push_loop *loop)
{
	pthread_mutex_lock(&loop->lock);
	loop->pokes++;
	pthread_cond_broadcast(&loop->wake);
	pthread_mutex_unlock(&loop->lock);
}
