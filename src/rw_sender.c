/* Remote-write sender: one thread per endpoint that pushes every interval, keeps a bounded backlog and
 * retries. The HTTP client and the endpoint statistics it uses are in push_http.c.
 *
 * DESIGN
 * - The thread (push_loop.c: the schedule, the sleep, the stop and final-push handshake) owns the encoder,
 *   the backlog and the HTTP client; nothing else touches them. This file supplies what differs: taking an
 *   interval, sending the oldest request, the final push.
 * - The backlog is a queue of requests in push order. Before a request is sent it is taken out of the
 *   queue (`inflight`); on a retryable failure it goes back to the front. So the bound can drop the oldest
 *   waiting push without touching the request on the wire.
 * - While a transfer is in progress (up to the timeout), the interval keeps ticking: curl's progress
 *   callback calls back into the thread, which takes and encodes the next snapshot if one is due.
 * - Timestamps: t = max(snapshot->taken_ms, last t + 1), so every series' samples are strictly increasing
 *   across all requests, and requests are sent strictly in order.
 *
 * Thread: see rw_sender.h. */
#include "fx/rw_sender.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fx/clock.h"
#include "fx/log.h"
#include "fx/push_loop.h"
#include "fx/rw_encode.h"

/* ---- Sender ---- */

struct queued {
	struct fx_rw_request request;
	uint64_t push_seq;
};

struct fx_rw_sender {
	struct fx_push_loop *loop; /* the thread, its schedule and the stop/final handshake */

	/* Owned by the thread. */
	struct fx_push_hooks hooks;
	int64_t interval_ms;
	uint64_t max_pushes;
	struct fx_rw_encoder *encoder;
	struct fx_push_http *http;
	struct fx_push_stats *stats;
	struct queued *queue; /* queue[head .. n) */
	size_t head, n, cap;
	bool has_inflight;
	struct queued inflight;
	uint64_t push_seq;
	int64_t last_t;
	int64_t stale_since_ms;
	struct fx_push_retry retry;
	struct fx_ratelimit refused_log;
};

static size_t queue_len(const struct fx_rw_sender *sender) { return sender->n - sender->head; }

static void publish_backlog(struct fx_rw_sender *sender)
{
	fx_push_stats_set_backlog(sender->stats, queue_len(sender) + (sender->has_inflight ? 1 : 0));
}

static int queue_reserve(struct fx_rw_sender *sender, size_t more)
{
	if (sender->head > 0 && sender->head >= sender->n / 2) {
		memmove(sender->queue, sender->queue + sender->head, queue_len(sender) * sizeof(*sender->queue));
		sender->n -= sender->head;
		sender->head = 0;
	}
	if (sender->n + more <= sender->cap)
		return 0;
	size_t cap = sender->cap ? sender->cap : 16;
	while (cap < sender->n + more)
		cap *= 2;
	struct queued *queue = realloc(sender->queue, cap * sizeof(*queue));
	if (!queue)
		return -1;
	sender->queue = queue;
	sender->cap = cap;
	return 0;
}

/* Puts a request back in front of the queue. */
static int queue_push_front(struct fx_rw_sender *sender, const struct queued *item)
{
	if (sender->head == 0) {
		if (sender->n == sender->cap && queue_reserve(sender, 1) != 0)
			return -1;
		memmove(sender->queue + 1, sender->queue, sender->n * sizeof(*sender->queue));
		sender->n++;
		sender->head = 1;
	}
	sender->queue[--sender->head] = *item;
	return 0;
}

/* Drops the oldest waiting pushes while more than max_pushes are kept. The request in flight is never
 * dropped here: when it is the only one of the oldest push, it is dealt with once it comes back. */
static void enforce_bound(struct fx_rw_sender *sender)
{
	uint64_t dropped = 0;
	while (queue_len(sender) > 0) {
		uint64_t front = sender->queue[sender->head].push_seq;
		uint64_t oldest = sender->has_inflight && sender->inflight.push_seq < front ? sender->inflight.push_seq
											      : front;
		if (sender->push_seq - oldest + 1 <= sender->max_pushes || oldest != front)
			break;
		while (queue_len(sender) > 0 && sender->queue[sender->head].push_seq == front) {
			fx_rw_request_free(&sender->queue[sender->head].request);
			sender->head++;
			dropped++;
		}
	}
	if (dropped) {
		fx_warn("remote write %s: backlog full, dropped the oldest %" PRIu64 " requests",
			fx_push_http_display_url(sender->http), dropped);
		fx_push_stats_add(sender->stats, 0, 0, 0, dropped);
	}
}

/* Takes a snapshot, encodes it and appends its requests to the backlog. */
static void push_interval(struct fx_rw_sender *sender)
{
	struct fx_snapshot *snapshot = sender->hooks.take_snapshot(sender->hooks.opaque);
	if (!snapshot) {
		fx_warn("remote write %s: no snapshot this interval", fx_push_http_display_url(sender->http));
		return;
	}
	int64_t t = snapshot->taken_ms > sender->last_t ? snapshot->taken_ms : sender->last_t + 1;
	struct fx_rw_requests requests = {0};
	int rc = fx_rw_encode(sender->encoder, snapshot, t, sender->stale_since_ms, &requests);
	if (rc == 0)
		sender->stale_since_ms = snapshot->taken_ms;
	fx_snapshot_destroy(snapshot);
	if (rc != 0 || queue_reserve(sender, requests.n) != 0) {
		fx_error("remote write %s: encoding failed: %s", fx_push_http_display_url(sender->http),
			 rc ? fx_rw_strerror(rc) : "out of memory");
		fx_rw_requests_free(&requests);
		return;
	}
	sender->last_t = t;
	sender->push_seq++;
	for (size_t i = 0; i < requests.n; i++)
		sender->queue[sender->n++] = (struct queued){.request = requests.items[i], .push_seq = sender->push_seq};
	free(requests.items);
	enforce_bound(sender);
	publish_backlog(sender);
}

/* Sends the oldest request. Returns its outcome. */
static enum fx_push_outcome send_oldest(struct fx_rw_sender *sender, int64_t deadline_ms, bool ticking)
{
	sender->inflight = sender->queue[sender->head++];
	sender->has_inflight = true;
	struct fx_push_result result;
	fx_push_http_send(sender->http, sender->inflight.request.body, sender->inflight.request.len, deadline_ms,
			  ticking ? fx_push_loop_tick : NULL, sender->loop, &result);
	enum fx_push_outcome outcome = fx_push_outcome_of(&result);
	const char *url = fx_push_http_display_url(sender->http);
	sender->has_inflight = false;
	if (outcome == FX_PUSH_OK) {
		fx_push_stats_add(sender->stats, sender->inflight.request.n_samples, 0, 0, 0);
		fx_rw_request_free(&sender->inflight.request);
		fx_push_retry_ok(&sender->retry, "remote write", url);
	} else if (outcome == FX_PUSH_DROP) {
		uint64_t suppressed = 0;
		if (fx_ratelimit_allow(&sender->refused_log, fx_mono_ms(), &suppressed))
			fx_error("remote write %s: HTTP %ld, request of %zu series dropped (not retried): %s%s", url,
				 result.status, sender->inflight.request.n_series, result.body_start,
				 suppressed ? " (more refusals not logged)" : "");
		fx_push_stats_add(sender->stats, 0, 0, 1, 0);
		fx_rw_request_free(&sender->inflight.request);
	} else {
		/* Back to the front; the bound may then drop it if it is now too old. */
		if (queue_push_front(sender, &sender->inflight) != 0) {
			fx_error("remote write %s: out of memory, request dropped", url);
			fx_rw_request_free(&sender->inflight.request);
			fx_push_stats_add(sender->stats, 0, 0, 0, 1);
		}
		fx_push_retry_failed(&sender->retry, sender->http, &result, true, "remote write", url);
		fx_push_stats_add(sender->stats, 0, 1, 0, 0);
		enforce_bound(sender);
	}
	publish_backlog(sender);
	return outcome;
}

static int final_push(struct fx_rw_sender *sender, int64_t deadline_ms)
{
	push_interval(sender);
	while (queue_len(sender) > 0) {
		if (fx_push_loop_aborted(sender->loop) || fx_mono_ms() >= deadline_ms)
			return -1;
		if (sender->retry.retry_at_ms > fx_mono_ms()) {
			int64_t until = sender->retry.retry_at_ms;
			if (until > deadline_ms)
				until = deadline_ms;
			while (fx_mono_ms() < until && !fx_push_loop_aborted(sender->loop)) {
				struct timespec pause = {0, 20 * 1000000L};
				nanosleep(&pause, NULL);
			}
			continue;
		}
		send_oldest(sender, deadline_ms, false);
	}
	return 0;
}

/* ---- The callbacks of the push loop (push_loop.c), on the sender's thread except wakeup ---- */

static void loop_push_interval(void *opaque) { push_interval(opaque); }

static bool loop_waiting(void *opaque, int64_t *due_mono_ms)
{
	struct fx_rw_sender *sender = opaque;
	*due_mono_ms = sender->retry.retry_at_ms;
	return queue_len(sender) > 0;
}

static void loop_send_one(void *opaque) { send_oldest(opaque, 0, true); }

static int loop_finish(void *opaque, int64_t deadline_mono_ms) { return final_push(opaque, deadline_mono_ms); }

/* Any thread: the http handle is set once at create. */
static void loop_wakeup(void *opaque)
{
	struct fx_rw_sender *sender = opaque;
	fx_push_http_wakeup(sender->http);
}

struct fx_push_stats *fx_rw_sender_stats(struct fx_rw_sender *sender) { return sender->stats; }

void fx_rw_sender_destroy(struct fx_rw_sender *sender)
{
	if (!sender)
		return;
	fx_push_loop_destroy(sender->loop); /* stops the thread first */
	for (size_t i = sender->head; i < sender->n; i++)
		fx_rw_request_free(&sender->queue[i].request);
	free(sender->queue);
	fx_push_http_destroy(sender->http);
	fx_rw_encoder_destroy(sender->encoder);
	fx_push_stats_destroy(sender->stats);
	free(sender);
}

struct fx_rw_sender *fx_rw_sender_create(const struct fx_rw_sender_config *config)
{
	struct fx_rw_sender *sender = calloc(1, sizeof(*sender));
	if (!sender)
		return NULL;
	sender->hooks = config->hooks;
	sender->interval_ms = config->interval_ms > 0 ? config->interval_ms : FX_PUSH_DEFAULT_INTERVAL_MS;
	int64_t backlog_ms = config->backlog_ms > 0 ? config->backlog_ms : FX_PUSH_DEFAULT_BACKLOG_MS;
	sender->max_pushes = (uint64_t)(backlog_ms / sender->interval_ms);
	if (sender->max_pushes < 1)
		sender->max_pushes = 1;
	sender->last_t = INT64_MIN;
	sender->stale_since_ms = INT64_MIN;

	if (!config->hooks.take_snapshot) {
		fx_error("remote write: no snapshot hook");
		goto fail;
	}
	struct fx_rw_encoder_config encoder_config = {
		.external_labels = config->external_labels,
		.n_external_labels = config->n_external_labels,
		.max_series_per_request = config->max_series_per_request,
	};
	sender->encoder = fx_rw_encoder_create(&encoder_config);
	sender->stats = fx_push_stats_create("");
	static const struct fx_push_loop_ops ops = {
		.push_interval = loop_push_interval,
		.waiting = loop_waiting,
		.send_one = loop_send_one,
		.finish = loop_finish,
		.wakeup = loop_wakeup,
	};
	sender->loop = fx_push_loop_create(&ops, sender, sender->interval_ms);
	if (!sender->encoder || !sender->stats || !sender->loop) {
		fx_error("remote write: out of memory");
		goto fail;
	}
	static const char *const fixed[] = {
		"Content-Encoding: snappy",
		"Content-Type: application/x-protobuf",
		"X-Prometheus-Remote-Write-Version: 0.1.0",
	};
	sender->http = fx_push_http_create(&config->http, "POST", fixed, 3, sender->stats);
	if (!sender->http)
		goto fail;
	fx_push_http_set_abort(sender->http, fx_push_loop_abort_flag(sender->loop));
	const char *label = fx_push_http_display_url(sender->http);
	if (fx_push_stats_set_url(sender->stats, label) != 0)
		goto fail;

	return sender;
fail:
	fx_rw_sender_destroy(sender);
	return NULL;
}

int fx_rw_sender_start(struct fx_rw_sender *sender)
{
	const char *url = fx_push_http_display_url(sender->http);
	int rc = fx_push_loop_start(sender->loop);
	if (rc > 0)
		return 0;
	if (rc < 0) {
		fx_error("remote write %s: cannot start the thread", url);
		return -1;
	}
	fx_info("remote write %s: pushing every %" PRId64 " ms, backlog of %" PRIu64 " pushes", url,
		sender->interval_ms, sender->max_pushes);
	return 0;
}

int fx_rw_sender_shutdown(struct fx_rw_sender *sender, int64_t deadline_mono_ms)
{
	return fx_push_loop_shutdown(sender->loop, deadline_mono_ms);
}
