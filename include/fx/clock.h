/* Clocks in milliseconds. */
#ifndef FX_CLOCK_H
#define FX_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall-clock time in milliseconds since the Unix epoch (sample timestamps). */
static inline int64_t fx_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic milliseconds (intervals, timeouts, rate limits). */
static inline int64_t fx_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A monotonic clock that can be replaced: push_loop.c runs on one, so that its tests move time by hand.
 * NULL stands for fx_mono_ms. */
struct fx_clock {
	int64_t (*mono_ms)(void *opaque);
	void *opaque;
};

static inline int64_t fx_clock_now(const struct fx_clock *clock)
{
	return clock ? clock->mono_ms(clock->opaque) : fx_mono_ms();
}

#endif
