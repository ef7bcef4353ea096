/* Remote-write sender: one thread per endpoint that pushes every interval, keeps a bounded backlog and
 * retries. It sends with http_client.c, follows push_retry.c's policy and counts in push_stats.c.
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
 * - Protocols (rw_sender.h): `version` is what is encoded now (1 or 2). While an auto endpoint has not
 *   proven that it speaks 2.0 (`confirmed`), every queued 2.0 request keeps the 1.0 encoding of the same
 *   series (`fallback`; both encoders split a snapshot at the same points), so a fallback re-sends exactly
 *   the data the 2.0 request carried, ahead of everything else. Once confirmed, the fallbacks are freed and
 *   only 2.0 is encoded. The cost: two encodings per push until the first answer (a backlog built while an
 *   auto endpoint was never reached holds both).
 * - The Written headers are read by on_header as curl receives them (the client's header callback).
 * - The queue on disk (push_queue.c) takes what the memory bound would drop: the oldest whole pushes, so
 *   the disk always holds requests older than (or of the same push as) everything in memory, and the disk
 *   is sent first. A disk request is read (peek), sent, and removed (pop) only once delivered or refused;
 *   a retry reads it again. While it is on the wire nothing is moved to disk (the disk's own bound could
 *   drop the very request in flight): the memory holds a few pushes more until the transfer ends. A 2.0
 *   request keeps its 1.0 encoding on disk too (two parts), so a fallback after a restart is exact. At
 *   shutdown what the memory still holds is written to disk, in order. Disk errors leave the request in
 *   the old memory-only path (dropped and counted as backlog_full), and never stop the sender.
 *
 * Thread: see rw_sender.h. */
#include "fx/rw_sender.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fx/clock.h"
#include "fx/log.h"
#include "fx/push_loop.h"
#include "fx/push_queue.h"
#include "fx/rw2_encode.h"
#include "fx/rw_encode.h"

/* ---- Sender ---- */

struct queued {
	struct fx_rw_request request;
	struct fx_rw_request fallback; /* auto, not yet confirmed: the 1.0 encoding of a 2.0 request */
	int version;		       /* of `request`: 1 or 2 */
	uint64_t push_seq;
};

/* What the Written headers of the answer in progress said. */
struct written {
	bool any; /* some X-Prometheus-Remote-Write-*-Written header */
	bool has_samples;
	uint64_t samples;
};

struct fx_rw_sender {
	struct fx_push_loop *loop; /* the thread, its schedule and the stop/final handshake */

	/* Owned by the thread. */
	struct fx_push_hooks hooks;
	int64_t interval_ms;
	uint64_t max_pushes;
	struct fx_rw_encoder *encoder;
	struct fx_rw2_encoder *encoder2;
	enum fx_rw_protocol protocol;
	int version;		/* encoded now: 1 or 2 */
	bool confirmed;		/* auto: a 2.0 answer carried a Written header */
	bool warned_no_written; /* 2.0 only: a 2xx without Written headers was logged */
	int64_t reprobe_ms, reprobe_at_ms;
	int64_t metadata_interval_ms, metadata_due_ms;
	struct written written;
	struct fx_ratelimit partial_log;
	struct fx_http_client *http;
	struct fx_push_stats *stats;
	struct queued *queue; /* queue[head .. n) */
	size_t head, n, cap;
	bool has_inflight;
	bool inflight_from_disk; /* `inflight` is the disk queue's oldest (peeked, not yet popped) */
	struct queued inflight;
	struct fx_push_queue *disk; /* NULL: no queue on disk */
	uint64_t disk_dropped_seen; /* the disk's dropped requests already added to dropped_backlog */
	bool spill_logged;	    /* the move to disk of this outage was logged */
	uint64_t push_seq;
	int64_t last_t;
	int64_t stale_since_ms;
	struct fx_push_retry retry;
	struct fx_ratelimit refused_log;
};

static void queued_free(struct queued *item)
{
	fx_rw_request_free(&item->request);
	fx_rw_request_free(&item->fallback);
}

static size_t queue_len(const struct fx_rw_sender *sender)
{
	return sender->n - sender->head;
}

static void publish_backlog(struct fx_rw_sender *sender)
{
	bool memory_inflight = sender->has_inflight && !sender->inflight_from_disk;
	fx_push_stats_set_backlog(sender->stats, queue_len(sender) + (memory_inflight ? 1 : 0));
	if (!sender->disk)
		return;
	struct fx_push_queue_stats disk;
	fx_push_queue_stats(sender->disk, &disk);
	fx_push_stats_set_queue(sender->stats, &disk);
	/* What the disk's bound dropped is lost like a backlog drop: counted as backlog_full too. */
	if (disk.dropped_requests > sender->disk_dropped_seen) {
		fx_warn(
		    "remote write %s: disk queue full (--push-queue-max-bytes), dropped the oldest %" PRIu64
		    " requests",
		    fx_http_client_display_url(sender->http),
		    disk.dropped_requests - sender->disk_dropped_seen);
		fx_push_stats_add(sender->stats, 0, 0, 0, disk.dropped_requests - sender->disk_dropped_seen);
		sender->disk_dropped_seen = disk.dropped_requests;
	}
}

/* Writes a request to the disk queue (both encodings while an auto endpoint is unconfirmed) and frees it.
 * Returns 0 when it is on disk (or dropped by the queue's bound, which counts it); otherwise the request is
 * lost and the caller counts it. */
static int spill(struct fx_rw_sender *sender, struct queued *item)
{
	struct fx_push_queue_entry entry = {.n_parts = 1};
	const struct fx_rw_request *parts[2] = {&item->request, &item->fallback};
	int versions[2] = {item->version, 1};
	for (size_t i = 0; i < 2 && parts[i]->body; i++) {
		struct fx_push_queue_part *part = &entry.parts[i];
		part->version = versions[i];
		snprintf(part->content_type, sizeof(part->content_type), "%s",
			 versions[i] == 2 ? FX_RW2_CONTENT_TYPE : "application/x-protobuf");
		part->body = parts[i]->body;
		part->len = parts[i]->len;
		part->n_series = parts[i]->n_series;
		part->n_samples = parts[i]->n_samples;
		part->timestamp_ms = parts[i]->timestamp_ms;
		entry.n_parts = i + 1;
	}
	int rc = fx_push_queue_append(sender->disk, &entry); /* borrows the bodies */
	queued_free(item);
	if (rc == FX_PQ_E_TOO_BIG)
		return 0; /* dropped and counted by the queue, and as backlog_full by publish_backlog */
	if (rc == 0 && !sender->spill_logged) {
		sender->spill_logged = true;
		fx_warn(
		    "remote write %s: the in-memory backlog (--push-backlog) is full: the oldest requests "
		    "go to the disk queue",
		    fx_http_client_display_url(sender->http));
	}
	return rc;
}

/* At shutdown: everything the memory holds, oldest first, to disk. */
static void spill_all(struct fx_rw_sender *sender)
{
	uint64_t lost = 0, spilled = 0;
	while (sender->disk && queue_len(sender) > 0) {
		if (spill(sender, &sender->queue[sender->head++]) == 0)
			spilled++;
		else
			lost++;
	}
	if (spilled)
		fx_info("remote write %s: %" PRIu64 " requests not delivered are kept in the disk queue",
			fx_http_client_display_url(sender->http), spilled);
	if (lost)
		fx_push_stats_add(sender->stats, 0, 0, 0, lost);
	publish_backlog(sender);
}

static int queue_reserve(struct fx_rw_sender *sender, size_t more)
{
	if (sender->head > 0 && sender->head >= sender->n / 2) {
		memmove(sender->queue, sender->queue + sender->head,
			queue_len(sender) * sizeof(*sender->queue));
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
	if (sender->disk && sender->has_inflight && sender->inflight_from_disk)
		return; /* the disk's oldest is on the wire: move pushes to disk once it is back */
	uint64_t dropped = 0;
	while (queue_len(sender) > 0) {
		uint64_t front = sender->queue[sender->head].push_seq;
		uint64_t oldest = sender->has_inflight && sender->inflight.push_seq < front
				      ? sender->inflight.push_seq
				      : front;
		if (sender->push_seq - oldest + 1 <= sender->max_pushes || oldest != front)
			break;
		while (queue_len(sender) > 0 && sender->queue[sender->head].push_seq == front) {
			struct queued *item = &sender->queue[sender->head++];
			if (!sender->disk || spill(sender, item) != 0) {
				queued_free(item);
				dropped++;
			}
		}
	}
	if (dropped) {
		fx_warn("remote write %s: backlog full, dropped the oldest %" PRIu64 " requests",
			fx_http_client_display_url(sender->http), dropped);
		fx_push_stats_add(sender->stats, 0, 0, 0, dropped);
	}
}

/* Encodes a snapshot in the version in use: 2.0 (with the 1.0 fallbacks while an auto endpoint is not
 * confirmed), or 1.0 with the metadata request when it is due. */
static int encode(struct fx_rw_sender *sender, const struct fx_snapshot *snapshot, int64_t t,
		  struct fx_rw_requests *requests, struct fx_rw_requests *fallbacks)
{
	int64_t now = fx_push_loop_now(sender->loop);
	if (sender->version == 2) {
		int rc = fx_rw2_encode(sender->encoder2, snapshot, t, sender->stale_since_ms, requests);
		if (rc == 0 && sender->protocol == FX_RW_PROTOCOL_AUTO && !sender->confirmed) {
			rc = fx_rw_encode(sender->encoder, snapshot, t, sender->stale_since_ms, fallbacks);
			assert(rc != 0 || fallbacks->n == requests->n);
		}
		return rc;
	}
	int rc = fx_rw_encode(sender->encoder, snapshot, t, sender->stale_since_ms, requests);
	if (rc == 0 && now >= sender->metadata_due_ms) {
		rc = fx_rw_encode_metadata(sender->encoder, snapshot, requests);
		if (rc == 0)
			sender->metadata_due_ms = now + sender->metadata_interval_ms;
	}
	return rc;
}

/* auto: 2.0 again once reprobe_ms have passed since the fallback. */
static void maybe_reprobe(struct fx_rw_sender *sender)
{
	if (sender->protocol != FX_RW_PROTOCOL_AUTO || sender->version != 1 ||
	    fx_push_loop_now(sender->loop) < sender->reprobe_at_ms)
		return;
	sender->version = 2;
	sender->confirmed = false;
	fx_push_stats_set_protocol(sender->stats, 2);
	fx_info("remote write %s: trying remote write 2.0 again", fx_http_client_display_url(sender->http));
}

/* Takes a snapshot, encodes it and appends its requests to the backlog. */
static void push_interval(struct fx_rw_sender *sender)
{
	struct fx_snapshot *snapshot = sender->hooks.take_snapshot(sender->hooks.opaque);
	if (!snapshot) {
		fx_warn("remote write %s: no snapshot this interval",
			fx_http_client_display_url(sender->http));
		return;
	}
	maybe_reprobe(sender);
	int64_t t = snapshot->taken_ms > sender->last_t ? snapshot->taken_ms : sender->last_t + 1;
	struct fx_rw_requests requests = {0}, fallbacks = {0};
	int rc = encode(sender, snapshot, t, &requests, &fallbacks);
	if (rc == 0)
		sender->stale_since_ms = snapshot->taken_ms;
	fx_snapshot_destroy(snapshot);
	if (rc != 0 || queue_reserve(sender, requests.n) != 0) {
		fx_error("remote write %s: encoding failed: %s", fx_http_client_display_url(sender->http),
			 rc ? fx_rw_strerror(rc) : "out of memory");
		fx_push_stats_encode_failed(sender->stats);
		fx_rw_requests_free(&requests);
		fx_rw_requests_free(&fallbacks);
		return;
	}
	sender->last_t = t;
	sender->push_seq++;
	for (size_t i = 0; i < requests.n; i++) {
		struct queued item = {
		    .request = requests.items[i], .version = sender->version, .push_seq = sender->push_seq};
		if (i < fallbacks.n)
			item.fallback = fallbacks.items[i];
		sender->queue[sender->n++] = item;
	}
	free(requests.items);
	free(fallbacks.items);
	enforce_bound(sender);
	publish_backlog(sender);
}

/* ---- The version of an endpoint ---- */

/* Reads the Written headers of a 2.0 answer (the HTTP client's header callback). */
static void on_header(void *opaque, const char *line, size_t len)
{
	static const char prefix[] = "x-prometheus-remote-write-", samples[] = "samples-written:";
	size_t prefix_len = sizeof(prefix) - 1, samples_len = sizeof(samples) - 1;
	struct written *written = opaque;
	const char *colon = memchr(line, ':', len);
	if (!colon || (size_t)(colon - line) <= prefix_len || strncasecmp(line, prefix, prefix_len) != 0)
		return;
	size_t name_len = (size_t)(colon - line) + 1;
	if (name_len < prefix_len + 9 || strncasecmp(colon - 7, "written", 7) != 0)
		return;
	written->any = true;
	if (name_len != prefix_len + samples_len || strncasecmp(line + prefix_len, samples, samples_len) != 0)
		return;
	char digits[24];
	size_t n = 0;
	for (const char *c = colon + 1; c < line + len && n < sizeof(digits) - 1; c++)
		if (*c >= '0' && *c <= '9')
			digits[n++] = *c;
		else if (*c != ' ' && *c != '\t' && *c != '\r' && *c != '\n')
			return; /* not a number: as if absent */
	digits[n] = '\0';
	if (n) {
		written->has_samples = true;
		written->samples = strtoull(digits, NULL, 10);
	}
}

/* Switches an auto endpoint to 1.0: every queued 2.0 request is replaced by its 1.0 encoding (one that has
 * none, queued after the endpoint was confirmed, is dropped and counted). */
static void fall_back(struct fx_rw_sender *sender, const char *why)
{
	const char *url = fx_http_client_display_url(sender->http);
	int64_t now = fx_push_loop_now(sender->loop);
	fx_warn(
	    "remote write %s: %s: a 1.0 receiver; sending remote write 1.0 (2.0 is tried again in %" PRId64
	    " s or at a restart)",
	    url, why, sender->reprobe_ms / 1000);
	sender->version = 1;
	sender->confirmed = false;
	sender->reprobe_at_ms = now + sender->reprobe_ms;
	if (sender->metadata_due_ms != INT64_MAX)
		sender->metadata_due_ms = now; /* the next 1.0 push carries the metadata */
	fx_push_stats_set_protocol(sender->stats, 1);
	fx_push_stats_add_rw(sender->stats, 1, 0, 0);
	uint64_t dropped = 0;
	for (size_t i = sender->head; i < sender->n; i++) {
		struct queued *item = &sender->queue[i];
		if (item->version != 2)
			continue;
		fx_rw_request_free(&item->request);
		item->request = item->fallback;
		item->fallback = (struct fx_rw_request){0};
		item->version = 1;
		dropped += item->request.body == NULL;
	}
	if (dropped) {
		size_t kept = sender->head;
		for (size_t i = sender->head; i < sender->n; i++)
			if (sender->queue[i].request.body)
				sender->queue[kept++] = sender->queue[i];
		sender->n = kept;
		fx_push_stats_add(sender->stats, 0, 0, dropped, 0);
	}
}

/* A 2xx answer to a 2.0 request carried a Written header: the endpoint speaks 2.0. */
static void confirm(struct fx_rw_sender *sender)
{
	if (sender->protocol != FX_RW_PROTOCOL_AUTO || sender->confirmed)
		return;
	sender->confirmed = true;
	fx_info("remote write %s: the receiver speaks remote write 2.0",
		fx_http_client_display_url(sender->http));
	for (size_t i = sender->head; i < sender->n; i++)
		fx_rw_request_free(&sender->queue[i].fallback);
}

/* The samples a 2xx answer to a 2.0 request says were written; a shortfall is counted and logged. */
static uint64_t check_written(struct fx_rw_sender *sender, const struct fx_rw_request *request)
{
	uint64_t sent = request->n_samples;
	if (!sender->written.has_samples || sender->written.samples >= sent)
		return sent;
	uint64_t missing = sent - sender->written.samples, suppressed = 0;
	fx_push_stats_add_rw(sender->stats, 0, 1, missing);
	if (fx_ratelimit_allow(&sender->partial_log, fx_push_loop_now(sender->loop), &suppressed))
		fx_warn("remote write %s: partial write: %" PRIu64 " of %" PRIu64 " samples written%s",
			fx_http_client_display_url(sender->http), sender->written.samples, sent,
			suppressed ? " (more partial writes not logged)" : "");
	return sender->written.samples;
}

/* What the answer to a 2.0 request means for the endpoint's version. Returns true when the request is to
 * be sent again at once as 1.0 (it was put back in front of the queue). */
static bool handle_v2_answer(struct fx_rw_sender *sender, const struct fx_http_result *result)
{
	bool ok = result->status >= 200 && result->status < 300;
	if (ok && sender->written.any) {
		confirm(sender);
		return false;
	}
	if (!ok && result->status != 415)
		return false;
	if (sender->protocol != FX_RW_PROTOCOL_AUTO) {
		if (ok && !sender->warned_no_written) {
			sender->warned_no_written = true;
			fx_warn("remote write %s: a 2xx answer without X-Prometheus-Remote-Write-*-Written "
				"headers: "
				"is it a 1.0 receiver? (--remote-write-protocol=auto falls back)",
				fx_http_client_display_url(sender->http));
		}
		return false;
	}
	fall_back(sender, ok ? "a 2xx answer without X-Prometheus-Remote-Write-*-Written headers"
			     : "HTTP 415 to remote write 2.0");
	if (!sender->inflight.fallback.body)
		return false;
	if (sender->inflight_from_disk) { /* it stays on disk and is read again, as 1.0 now */
		queued_free(&sender->inflight);
		return true;
	}
	fx_rw_request_free(&sender->inflight.request);
	sender->inflight.request = sender->inflight.fallback;
	sender->inflight.fallback = (struct fx_rw_request){0};
	sender->inflight.version = 1;
	if (queue_push_front(sender, &sender->inflight) != 0) {
		queued_free(&sender->inflight);
		return false;
	}
	return true;
}

/* The disk queue's oldest request as `inflight`, in the encoding the endpoint takes now. Returns 1 when
 * set, 0 when the disk is empty, -1 when that request cannot be sent (removed, counted as refused), -2
 * when out of memory (tried again a second later). */
static int take_from_disk(struct fx_rw_sender *sender)
{
	struct fx_push_queue_entry entry;
	int rc = fx_push_queue_peek(sender->disk, &entry);
	if (rc != 0) {
		if (rc != FX_PQ_E_EMPTY)
			sender->retry.retry_at_ms = fx_push_loop_now(sender->loop) + 1000;
		return rc == FX_PQ_E_EMPTY ? 0 : -2;
	}
	size_t chosen = 0;
	for (size_t i = 0; i < entry.n_parts; i++)
		if (entry.parts[i].version == sender->version) {
			chosen = i;
			break;
		}
	struct fx_push_queue_part *part = &entry.parts[chosen];
	struct fx_push_queue_part *other = entry.n_parts == 2 ? &entry.parts[1 - chosen] : NULL;
	const char *type = part->version == 2 ? FX_RW2_CONTENT_TYPE : "application/x-protobuf";
	if (strcmp(part->content_type, type) != 0 ||
	    (sender->protocol == FX_RW_PROTOCOL_AUTO && sender->version == 1 && part->version == 2)) {
		fx_warn("remote write %s: a queued request encoded as %s (%s) cannot be sent now: dropped",
			fx_http_client_display_url(sender->http), part->content_type,
			part->version == 2 ? "2.0" : "1.0");
		fx_push_queue_entry_free(&entry);
		(void)fx_push_queue_pop(sender->disk);
		fx_push_stats_add(sender->stats, 0, 0, 1, 0);
		return -1;
	}
	sender->inflight = (struct queued){
	    .request = {part->body, part->len, part->n_series, part->n_samples, part->timestamp_ms},
	    .version = part->version};
	part->body = NULL;
	if (part->version == 2 && other && other->version == 1) {
		sender->inflight.fallback = (struct fx_rw_request){other->body, other->len, other->n_series,
								   other->n_samples, other->timestamp_ms};
		other->body = NULL;
	}
	fx_push_queue_entry_free(&entry);
	sender->has_inflight = sender->inflight_from_disk = true;
	return 1;
}

/* Done with `inflight` (delivered or refused): freed, and removed from the disk queue when it came from
 * there. */
static void release_inflight(struct fx_rw_sender *sender)
{
	queued_free(&sender->inflight);
	if (sender->inflight_from_disk)
		(void)fx_push_queue_pop(sender->disk); /* a failed mark is logged and counted */
}

/* Sends the oldest request: the disk's when it holds any, else the memory's. Returns its outcome. */
static enum fx_push_outcome send_oldest(struct fx_rw_sender *sender, int64_t deadline_ms, bool ticking)
{
	int from_disk = sender->disk ? take_from_disk(sender) : 0;
	if (from_disk < 0) {
		publish_backlog(sender);
		return from_disk == -1 ? FX_PUSH_DROP : FX_PUSH_RETRY;
	}
	if (!from_disk) {
		sender->inflight = sender->queue[sender->head++];
		sender->has_inflight = true;
	}
	struct fx_http_request request = {
	    .body = sender->inflight.request.body,
	    .len = sender->inflight.request.len,
	    .deadline_mono_ms = deadline_ms,
	    .tick = ticking ? fx_push_loop_tick : NULL,
	    .tick_opaque = sender->loop,
	    .on_header = on_header,
	    .header_opaque = &sender->written,
	    .alt_headers = sender->inflight.version == 2,
	};
	struct fx_http_result result;
	sender->written = (struct written){0};
	fx_http_client_send(sender->http, &request, &result);
	enum fx_push_outcome outcome = fx_push_outcome_of(&result);
	const char *url = fx_http_client_display_url(sender->http);
	sender->has_inflight = false;
	if (sender->inflight.version == 2 && handle_v2_answer(sender, &result)) {
		fx_push_stats_record(sender->stats, &result, false);
		sender->inflight_from_disk = false;
		publish_backlog(sender);
		return FX_PUSH_RETRY; /* re-sent as 1.0 next, without a backoff */
	}
	fx_push_stats_record(sender->stats, &result, true);
	if (outcome == FX_PUSH_OK) {
		uint64_t delivered = sender->inflight.version == 2
					 ? check_written(sender, &sender->inflight.request)
					 : sender->inflight.request.n_samples;
		fx_push_stats_add(sender->stats, delivered, 0, 0, 0);
		release_inflight(sender);
		fx_push_retry_ok(&sender->retry, "remote write", url);
		sender->spill_logged = false;
	} else if (outcome == FX_PUSH_DROP) {
		uint64_t suppressed = 0;
		if (fx_ratelimit_allow(&sender->refused_log, fx_push_loop_now(sender->loop), &suppressed))
			fx_error(
			    "remote write %s: HTTP %ld, request of %zu series dropped (not retried): %s%s",
			    url, result.status, sender->inflight.request.n_series, result.body_start,
			    suppressed ? " (more refusals not logged)" : "");
		fx_push_stats_add(sender->stats, 0, 0, 1, 0);
		release_inflight(sender);
	} else {
		/* Back to the front (or left on disk); the bound may then drop it if it is now too old. */
		if (sender->inflight_from_disk) {
			queued_free(&sender->inflight);
		} else if (queue_push_front(sender, &sender->inflight) != 0) {
			fx_error("remote write %s: out of memory, request dropped", url);
			queued_free(&sender->inflight);
			fx_push_stats_add(sender->stats, 0, 0, 0, 1);
		}
		fx_push_retry_failed(&sender->retry, &result, true, fx_push_loop_now(sender->loop),
				     "remote write", url);
		fx_push_stats_add(sender->stats, 0, 1, 0, 0);
	}
	sender->inflight_from_disk = false;
	enforce_bound(sender);
	publish_backlog(sender);
	return outcome;
}

/* ---- The callbacks of the push loop (push_loop.c), on the sender's thread ---- */

static void loop_push_interval(void *opaque)
{
	push_interval(opaque);
}

static bool loop_waiting(void *opaque)
{
	struct fx_rw_sender *sender = opaque;
	return queue_len(sender) > 0 || (sender->disk && fx_push_queue_requests(sender->disk) > 0);
}

static void loop_send_one(void *opaque)
{
	send_oldest(opaque, 0, true);
}

/* A final push of the current values, then the backlog (disk first) until it is empty or the deadline
 * passes; what is left in memory then goes to the disk queue. */
static int loop_finish(void *opaque, int64_t deadline_ms)
{
	struct fx_rw_sender *sender = opaque;
	push_interval(sender);
	int rc = 0;
	while (loop_waiting(sender)) {
		if (fx_push_loop_aborted(sender->loop) || fx_push_loop_now(sender->loop) >= deadline_ms) {
			rc = -1;
			break;
		}
		if (sender->retry.retry_at_ms > fx_push_loop_now(sender->loop)) {
			int64_t until = sender->retry.retry_at_ms;
			fx_push_loop_pause_until(sender->loop, until < deadline_ms ? until : deadline_ms);
			continue;
		}
		send_oldest(sender, deadline_ms, false);
	}
	spill_all(sender);
	return rc;
}

struct fx_push_stats *fx_rw_sender_stats(struct fx_rw_sender *sender)
{
	return sender->stats;
}

void fx_rw_sender_destroy(struct fx_rw_sender *sender)
{
	if (!sender)
		return;
	fx_push_loop_destroy(sender->loop); /* stops the thread first */
	for (size_t i = sender->head; i < sender->n; i++)
		queued_free(&sender->queue[i]);
	free(sender->queue);
	fx_push_queue_close(sender->disk);
	fx_http_client_destroy(sender->http);
	fx_rw_encoder_destroy(sender->encoder);
	fx_rw2_encoder_destroy(sender->encoder2);
	fx_push_stats_destroy(sender->stats);
	free(sender);
}

static const struct fx_push_loop_ops loop_ops = {
    .push_interval = loop_push_interval,
    .waiting = loop_waiting,
    .send_one = loop_send_one,
    .finish = loop_finish,
};

/* The endpoint's queue on disk, in its subdirectory of config->queue_dir; later pushes are timestamped
 * after what it holds. Returns 0 or -1 (logged). */
static int open_disk_queue(struct fx_rw_sender *sender, const struct fx_rw_sender_config *config)
{
	const char *url = fx_http_client_display_url(sender->http);
	char *key = fx_http_url_without_userinfo(config->http.url);
	char dir[4096];
	int rc = key ? fx_push_queue_dir_for(config->queue_dir, key, dir, sizeof(dir)) : -1;
	free(key);
	if (rc != 0) {
		fx_error("remote write %s: no directory for the disk queue under %s", url, config->queue_dir);
		return -1;
	}
	struct fx_push_queue_config queue = {.dir = dir, .what = url, .max_bytes = config->queue_max_bytes};
	sender->disk = fx_push_queue_open(&queue);
	if (!sender->disk)
		return -1;
	int64_t last = fx_push_queue_last_timestamp(sender->disk);
	if (last > sender->last_t)
		sender->last_t = last;
	fx_info("remote write %s: disk queue in %s, at most %" PRIu64 " bytes", url, dir,
		config->queue_max_bytes);
	publish_backlog(sender);
	return 0;
}

struct fx_rw_sender *fx_rw_sender_create(const struct fx_rw_sender_config *config)
{
	assert(config->interval_ms > 0 && config->backlog_ms > 0 && config->max_series_per_request > 0);
	assert(config->hooks.take_snapshot);
	struct fx_rw_sender *sender = calloc(1, sizeof(*sender));
	if (!sender)
		return NULL;
	sender->hooks = config->hooks;
	sender->interval_ms = config->interval_ms;
	sender->max_pushes = (uint64_t)(config->backlog_ms / config->interval_ms);
	if (sender->max_pushes < 1)
		sender->max_pushes = 1;
	sender->last_t = INT64_MIN;
	sender->stale_since_ms = INT64_MIN;
	fx_push_retry_init(&sender->retry, &config->backoff,
			   (unsigned)fx_mono_ms() ^ (unsigned)(uintptr_t)sender);

	struct fx_rw_encoder_config encoder_config = {
	    .external_labels = config->external_labels,
	    .n_external_labels = config->n_external_labels,
	    .max_series_per_request = config->max_series_per_request,
	};
	sender->encoder = fx_rw_encoder_create(&encoder_config);
	sender->protocol = config->protocol ? config->protocol : FX_RW_PROTOCOL_1_0;
	sender->version = sender->protocol == FX_RW_PROTOCOL_1_0 ? 1 : 2;
	sender->reprobe_ms = config->reprobe_ms > 0 ? config->reprobe_ms : FX_RW_REPROBE_DEFAULT_MS;
	sender->metadata_interval_ms =
	    config->metadata_interval_ms > 0 ? config->metadata_interval_ms : FX_RW_METADATA_DEFAULT_MS;
	sender->metadata_due_ms = config->metadata_interval_ms < 0 ? INT64_MAX : INT64_MIN;
	if (sender->version == 2)
		sender->encoder2 = fx_rw2_encoder_create(&encoder_config);
	sender->stats = fx_push_stats_create("");
	struct fx_push_loop_config loop = {loop_ops, sender, sender->interval_ms, &sender->retry, NULL};
	sender->loop = fx_push_loop_create(&loop);
	if (!sender->encoder || (sender->version == 2 && !sender->encoder2) || !sender->stats ||
	    !sender->loop) {
		fx_error("remote write: out of memory");
		goto fail;
	}
	static const char *const fixed[] = {
	    "Content-Encoding: snappy",
	    "Content-Type: application/x-protobuf",
	    "X-Prometheus-Remote-Write-Version: 0.1.0",
	};
	static const char *const fixed_v2[] = {
	    "Content-Encoding: snappy",
	    "Content-Type: " FX_RW2_CONTENT_TYPE,
	    "X-Prometheus-Remote-Write-Version: " FX_RW2_VERSION,
	};
	sender->http = fx_http_client_create(&config->http, "POST", fixed, 3);
	if (!sender->http)
		goto fail;
	bool has_disk = config->queue_dir && config->queue_dir[0];
	/* A queued 2.0 request may outlive a change of --remote-write-protocol: the 2.0 headers are ready. */
	if ((sender->version == 2 || has_disk) &&
	    fx_http_client_set_alt_headers(sender->http, fixed_v2, 3) != 0) {
		fx_error("remote write: out of memory");
		goto fail;
	}
	fx_push_stats_set_protocol(sender->stats, sender->version);
	fx_push_loop_attach(sender->loop, sender->http);
	if (fx_push_stats_set_url(sender->stats, fx_http_client_display_url(sender->http)) != 0)
		goto fail;
	if (has_disk && open_disk_queue(sender, config) != 0)
		goto fail;
	return sender;
fail:
	fx_rw_sender_destroy(sender);
	return NULL;
}

int fx_rw_sender_start(struct fx_rw_sender *sender)
{
	const char *url = fx_http_client_display_url(sender->http);
	int rc = fx_push_loop_start(sender->loop);
	if (rc > 0)
		return 0;
	if (rc < 0) {
		fx_error("remote write %s: cannot start the thread", url);
		return -1;
	}
	static const char *const protocols[] = {"", "1.0", "2.0", "auto (2.0, falling back to 1.0)"};
	fx_info("remote write %s: pushing every %" PRId64 " ms, backlog of %" PRIu64 " pushes, protocol %s",
		url, sender->interval_ms, sender->max_pushes, protocols[sender->protocol]);
	return 0;
}

int fx_rw_sender_shutdown(struct fx_rw_sender *sender, int64_t deadline_mono_ms)
{
	return fx_push_loop_shutdown(sender->loop, deadline_mono_ms);
}
