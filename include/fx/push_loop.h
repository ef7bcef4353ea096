/* The thread skeleton both pushers share (rw_sender.c, pushgateway.c): an interval schedule, sending what
 * waits when it is due, sleeping until the next interval or retry unless woken, and the shutdown handshake
 * (final push bounded by a deadline, past it the transfer in progress is aborted).
 *
 * Thread: create, start, shutdown and destroy from the thread that owns the pusher (main); the callbacks
 * and fx_push_loop_tick run on the loop's own thread; fx_push_loop_aborted from any thread. */
#ifndef FX_PUSH_LOOP_H
#define FX_PUSH_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* What differs between pushers. All run on the loop's thread except wakeup. */
struct fx_push_loop_ops {
	/* Takes the values of the interval that is due (a snapshot). */
	void (*push_interval)(void *opaque);
	/* Whether something waits to be sent; if so, *due_mono_ms is when (its retry time). */
	bool (*waiting)(void *opaque, int64_t *due_mono_ms);
	/* Sends what waits, once, passing fx_push_loop_tick as the transfer's tick. */
	void (*send_one)(void *opaque);
	/* The final push, bounded by deadline_mono_ms; returns 0 when delivered, -1 otherwise. */
	int (*finish)(void *opaque, int64_t deadline_mono_ms);
	/* Interrupts the pusher's transfer in progress (fx_push_http_wakeup). Any thread; called with the
	 * loop's lock held, after the abort flag is set. */
	void (*wakeup)(void *opaque);
};

struct fx_push_loop;

/* ops is copied, opaque borrowed (the pusher). No thread yet. NULL on allocation failure. */
struct fx_push_loop *fx_push_loop_create(const struct fx_push_loop_ops *ops, void *opaque, int64_t interval_ms);

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

/* The flag that aborts transfers, for fx_push_http_set_abort; valid until destroy. */
const atomic_bool *fx_push_loop_abort_flag(const struct fx_push_loop *loop);
/* Whether the transfers are being aborted (shutdown past its deadline, or destroy). Any thread. */
bool fx_push_loop_aborted(const struct fx_push_loop *loop);

#endif
