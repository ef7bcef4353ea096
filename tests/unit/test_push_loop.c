/* The pushers' thread skeleton (push_loop.c) on a clock the test moves by hand: intervals (and no catching
 * up after a late tick), a retry sent when it is due and not before, and the shutdown deadline (the final
 * push is waited for until it, then aborted). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "fx/clock.h"
#include "fx/push_loop.h"

/* ---- A clock that moves only when the test says ---- */

static atomic_llong fake_now;

static int64_t fake_mono_ms(void *opaque)
{
	return atomic_load(&fake_now);
}

static const struct fx_clock fake_clock = {fake_mono_ms, NULL};

/* ---- A pusher that counts what the loop asks of it ---- */

struct pusher {
	atomic_int intervals, sends, finishes;
	atomic_bool pending;	 /* something waits to be sent */
	atomic_bool finish_hang; /* finish waits until the loop aborts */
	struct fx_push_retry retry;
	struct fx_push_loop *loop;
};

static void on_interval(void *opaque)
{
	struct pusher *pusher = opaque;
	atomic_fetch_add(&pusher->intervals, 1);
}

static bool on_waiting(void *opaque)
{
	struct pusher *pusher = opaque;
	return atomic_load(&pusher->pending);
}

static void on_send(void *opaque)
{
	struct pusher *pusher = opaque;
	atomic_fetch_add(&pusher->sends, 1);
	atomic_store(&pusher->pending, false);
}

static int on_finish(void *opaque, int64_t deadline_mono_ms)
{
	struct pusher *pusher = opaque;
	atomic_fetch_add(&pusher->finishes, 1);
	if (!atomic_load(&pusher->finish_hang))
		return 0;
	while (!fx_push_loop_aborted(pusher->loop))
		usleep(1000);
	return -1;
}

static const struct fx_push_loop_ops ops = {on_interval, on_waiting, on_send, on_finish};

static void start(struct pusher *pusher, int64_t interval_ms)
{
	atomic_store(&fake_now, 1000000);
	struct fx_push_backoff backoff = {100, 1000};
	fx_push_retry_init(&pusher->retry, &backoff, 1);
	struct fx_push_loop_config config = {ops, pusher, interval_ms, &pusher->retry, &fake_clock};
	pusher->loop = fx_push_loop_create(&config);
	CHECK(pusher->loop != NULL);
	CHECK(fx_push_loop_start(pusher->loop) == 0);
	CHECK(fx_push_loop_start(pusher->loop) == 1); /* already running */
}

/* Moves the clock and lets the loop's thread look at it. */
static void advance(struct pusher *pusher, int64_t ms)
{
	atomic_fetch_add(&fake_now, ms);
	fx_push_loop_poke(pusher->loop);
	usleep(30000);
}

/* Waits (real time, bounded) until *counter reaches want. */
static int wait_count(atomic_int *counter, int want)
{
	for (int i = 0; i < 200 && atomic_load(counter) < want; i++)
		usleep(5000);
	return atomic_load(counter);
}

static void test_intervals(void)
{
	struct pusher pusher = {0};
	start(&pusher, 1000);
	CHECK_EQ_U64(wait_count(&pusher.intervals, 1), 1); /* the first interval is due at once */
	advance(&pusher, 999);
	CHECK_EQ_U64(atomic_load(&pusher.intervals), 1);
	advance(&pusher, 1);
	CHECK_EQ_U64(wait_count(&pusher.intervals, 2), 2);
	/* Late by three intervals: one push, and the next one interval from now (no catching up). */
	advance(&pusher, 3500);
	CHECK_EQ_U64(wait_count(&pusher.intervals, 3), 3);
	advance(&pusher, 999);
	CHECK_EQ_U64(atomic_load(&pusher.intervals), 3);
	advance(&pusher, 1);
	CHECK_EQ_U64(wait_count(&pusher.intervals, 4), 4);
	CHECK_EQ_U64(atomic_load(&pusher.sends), 0);
	fx_push_loop_destroy(pusher.loop);
	CHECK_EQ_U64(atomic_load(&pusher.finishes), 0); /* destroy without shutdown: no final push */
}

static void test_retry_timing(void)
{
	struct pusher pusher = {0};
	start(&pusher, 10000);
	CHECK_EQ_U64(wait_count(&pusher.intervals, 1), 1);
	/* Something waits, due 500 ms from now: not sent before, sent once it is due. */
	pusher.retry.retry_at_ms = atomic_load(&fake_now) + 500;
	atomic_store(&pusher.pending, true);
	advance(&pusher, 0);
	CHECK_EQ_U64(atomic_load(&pusher.sends), 0);
	advance(&pusher, 499);
	CHECK_EQ_U64(atomic_load(&pusher.sends), 0);
	advance(&pusher, 1);
	CHECK_EQ_U64(wait_count(&pusher.sends, 1), 1);
	CHECK_EQ_U64(atomic_load(&pusher.intervals), 1); /* the interval is still 10 s away */
	fx_push_loop_destroy(pusher.loop);
}

static void test_shutdown_delivered(void)
{
	struct pusher pusher = {0};
	start(&pusher, 1000);
	CHECK_EQ_U64(wait_count(&pusher.intervals, 1), 1);
	CHECK(fx_push_loop_shutdown(pusher.loop, atomic_load(&fake_now) + 5000) == 0);
	CHECK_EQ_U64(atomic_load(&pusher.finishes), 1);
	CHECK(!fx_push_loop_aborted(pusher.loop));
	CHECK(fx_push_loop_shutdown(pusher.loop, 0) == -1); /* not running any more */
	fx_push_loop_destroy(pusher.loop);
}

/* The shutdown of a loop whose final push hangs, in a thread of its own. */
struct shutdown_call {
	struct pusher *pusher;
	int64_t deadline;
	atomic_bool done;
	int rc;
};

static void *call_shutdown(void *opaque)
{
	struct shutdown_call *call = opaque;
	call->rc = fx_push_loop_shutdown(call->pusher->loop, call->deadline);
	atomic_store(&call->done, true);
	return NULL;
}

static void test_shutdown_deadline(void)
{
	struct pusher pusher = {0};
	atomic_store(&pusher.finish_hang, true);
	start(&pusher, 1000);
	CHECK_EQ_U64(wait_count(&pusher.intervals, 1), 1);
	struct shutdown_call call = {.pusher = &pusher, .deadline = atomic_load(&fake_now) + 2000};
	pthread_t thread;
	CHECK(pthread_create(&thread, NULL, call_shutdown, &call) == 0);
	CHECK_EQ_U64(wait_count(&pusher.finishes, 1), 1);
	advance(&pusher, 1999);
	CHECK(!atomic_load(&call.done));
	CHECK(!fx_push_loop_aborted(pusher.loop));
	advance(&pusher, 1); /* the deadline: the final push is aborted */
	pthread_join(thread, NULL);
	CHECK(atomic_load(&call.done));
	CHECK(call.rc == -1);
	CHECK(fx_push_loop_aborted(pusher.loop));
	fx_push_loop_destroy(pusher.loop);
}

int main(void)
{
	test_intervals();
	test_retry_timing();
	test_shutdown_delivered();
	test_shutdown_deadline();
	return check_exit();
}
