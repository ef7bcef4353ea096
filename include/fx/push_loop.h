/* The thread skeleton both pushers share (rw_sender.c, pushgateway.c): an interval schedule, sending what
 * waits when it is due, sleeping until the next interval or retry unless woken, and the shutdown handshake
 * (final push bounded by a deadline, past it the transfer in progress is aborted).
 *
 * Thread: create, attach, start, shutdown and destroy from the thread that owns the pusher (main); the
 * callbacks, fx_push_loop_tick, fx_push_loop_now and fx_push_loop_pause_until run on the loop's own
 * thread; fx_push_loop_aborted and fx_push_loop_poke from any thread. */
#ifndef FX_PUSH_LOOP_H
#define FX_PUSH_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fx/clock.h"
#include "fx/http_client.h"
#include "fx/push_retry.h"
#include "fx/snapshot.h"

/* Where a pusher gets its values from. */
struct fx_push_hooks {
	/* Returns a snapshot owned by the caller, or NULL (that interval is skipped and logged). Called on
	 * the pusher's thread. */
	struct fx_snapshot *(*take_snapshot)(void *opaque);
	void *opaque;
};

/* What differs between pushers. All run on the loop's thread, with the pusher as opaque. */
struct fx_push_loop_ops {
	/* Takes the values of the interval that is due (a snapshot). */
	void (*push_interval)(void *opaque);
	/* Whether something waits to be sent; it is due at the retry state's retry_at_ms. */
	bool (*waiting)(void *opaque);
	/* Sends what waits, once, passing fx_push_loop_tick as the transfer's tick. */
	void (*send_one)(void *opaque);
	/* The final push, bounded by deadline_mono_ms; returns 0 when delivered, -1 otherwise. */
	int (*finish)(void *opaque, int64_t deadline_mono_ms);
};

struct fx_push_loop_config {
	struct fx_push_loop_ops ops;
	void *opaque;			   /* the pusher; borrowed */
	int64_t interval_ms;		   /* > 0 */
	const struct fx_push_retry *retry; /* the pusher's retry state, read on the loop's thread; borrowed */
	const struct fx_clock *clock;	   /* NULL: fx_mono_ms; borrowed */
};

struct fx_push_loop;

/* No thread yet. NULL on failure (logged). */
struct fx_push_loop *fx_push_loop_create(const struct fx_push_loop_config *config);

/* Hands the loop's abort flag to a client of the pusher, and has the loop wake its transfer when it
 * aborts. At most two clients. Before start. */
void fx_push_loop_attach(struct fx_push_loop *loop, struct fx_http_client *client);

/* Starts the thread; the first interval is due at once. Returns 0, 1 when it was already running, or -1
 * (the caller logs). */
int fx_push_loop_start(struct fx_push_loop *loop);

/* Asks the thread for its final push (ops->finish) with deadline_mono_ms and waits for it; past the deadline
 * sets the abort flag and wakes the transfer. Then joins the thread. Returns finish's result, or -1 when the
 * thread was not running. */
int fx_push_loop_shutdown(struct fx_push_loop *loop, int64_t deadline_mono_ms);

/* Stops the thread (aborting a transfer in progress) if it runs, and frees. Call before freeing what the
 * callbacks use. Accepts NULL. */
void fx_push_loop_destroy(struct fx_push_loop *loop);

/* Takes the values of an interval if one is due. Loop thread only (between transfers, and as the tick of a
 * transfer: `loop` is a struct fx_push_loop *). */
void fx_push_loop_tick(void *loop);

/* The loop's clock. */
int64_t fx_push_loop_now(const struct fx_push_loop *loop);

/* For a final push: waits until until_mono_ms (the loop's clock). Returns false at once when aborted. */
bool fx_push_loop_pause_until(struct fx_push_loop *loop, int64_t until_mono_ms);

/* Whether the transfers are being aborted (shutdown past its deadline, or destroy). Any thread. */
bool fx_push_loop_aborted(const struct fx_push_loop *loop);

/* Makes the thread, and a shutdown waiting for it, look at the clock again: for a clock moved by hand. */
void fx_push_loop_poke(struct fx_push_loop *loop);

#endif
