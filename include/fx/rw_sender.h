/* Step (6b), second half: delivery of remote-write requests to one endpoint, with retries and a bounded
 * backlog. What it shares with the Pushgateway: the HTTP client (http_client.h), the retry policy
 * (push_retry.h), the statistics (push_stats.h) and the thread (push_loop.h).
 *
 * One sender = one endpoint = one thread, so a dead endpoint never delays another. Every push interval the
 * thread takes a snapshot through its hooks, encodes it (fx_rw_encode) at t = max(snapshot->taken_ms,
 * previous t + 1) and appends the requests to its backlog; it sends the backlog oldest first, one request
 * at a time: 2xx -> next; 5xx, 429 and network errors (timeouts included) -> the same request again after a
 * capped exponential backoff (or Retry-After); any other 4xx -> logged, counted, that request dropped.
 * The backlog keeps at most backlog_ms / interval_ms pushes; past it the oldest push is dropped and counted,
 * or, with a queue on disk (queue_dir, push_queue.h), moved there: the disk then holds the oldest requests
 * and is sent first; what the memory holds at shutdown goes there too, so that a restart sends it.
 *
 * Protocols: 1.0 sends prometheus.WriteRequest (plus a metadata-only request at the first push and then
 * every metadata_interval_ms); 2.0 sends io.prometheus.write.v2.Request with the spec's headers and checks
 * X-Prometheus-Remote-Write-Samples-Written against what was sent (a shortfall is counted and logged).
 * auto sends 2.0 and, until a 2xx answer carries a X-Prometheus-Remote-Write-*-Written header, also keeps
 * the 1.0 encoding of each request: a 415, or a 2xx without any Written header (a 1.0 receiver that ignored
 * the content type), switches the endpoint to 1.0, logged, counted, and the same requests are re-sent as 1.0
 * at once. 2.0 is tried again reprobe_ms later.
 *
 * Thread: create, start, shutdown, destroy and fx_rw_sender_stats may be called from any thread (main, and
 * the thread that takes a snapshot); everything else runs on the sender's own thread. */
#ifndef FX_RW_SENDER_H
#define FX_RW_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/family_list.h"
#include "fx/http_client.h"
#include "fx/push_loop.h"
#include "fx/push_retry.h"
#include "fx/push_stats.h"
#include "fx/snapshot.h"

/* The remote-write protocol of an endpoint (--remote-write-protocol). */
enum fx_rw_protocol {
	FX_RW_PROTOCOL_1_0 = 1, /* remote write 1.0 only (prometheus.WriteRequest, with metadata) */
	FX_RW_PROTOCOL_2_0 = 2, /* 2.0 only (io.prometheus.write.v2.Request); a 415 drops the request */
	FX_RW_PROTOCOL_AUTO = 3 /* 2.0 until the endpoint shows it is a 1.0 receiver, then 1.0 (see below) */
};

/* auto: after a fallback to 1.0, 2.0 is tried again this long after (or at a restart). */
#define FX_RW_REPROBE_DEFAULT_MS (60 * 60 * 1000)
/* 1.0: metadata is sent once a minute (and at the first push), like Prometheus. */
#define FX_RW_METADATA_DEFAULT_MS (60 * 1000)

/* Validated values (config.c); the sender asserts them. */
struct fx_rw_sender_config {
	struct fx_http_client_config http;
	struct fx_push_backoff backoff;
	int64_t interval_ms;			/* > 0 */
	int64_t backlog_ms;			/* outage kept, > 0; at least one push is kept */
	size_t max_series_per_request;		/* > 0 */
	const struct fx_label *external_labels; /* copied; valid names and values (config.c) */
	size_t n_external_labels;
	struct fx_push_hooks hooks;
	enum fx_rw_protocol protocol; /* 0 = FX_RW_PROTOCOL_1_0 */
	int64_t reprobe_ms;	      /* 0 = FX_RW_REPROBE_DEFAULT_MS */
	int64_t metadata_interval_ms; /* 0 = FX_RW_METADATA_DEFAULT_MS; < 0: no metadata (tests) */
	/* The queue on disk: NULL or "" for none; else the parent directory, in which the endpoint's queue
	 * is the subdirectory fx_push_queue_dir_for names (a hash of the URL without userinfo). */
	const char *queue_dir;
	uint64_t queue_max_bytes; /* > 0 with queue_dir */
};

struct fx_rw_sender;

/* Checks what needs the filesystem (auth files, TLS files given but unreadable) and prepares the sender; no
 * thread yet, so its statistics can be registered as a collector first. Returns NULL and logs a clear reason
 * (never a secret) on failure. */
struct fx_rw_sender *fx_rw_sender_create(const struct fx_rw_sender_config *config);

/* Starts the thread; the first push is made at once. Returns 0 or -1 (logged). */
int fx_rw_sender_start(struct fx_rw_sender *sender);

/* Makes a final push of the current values, sends what the backlog holds until it is empty or
 * deadline_mono_ms (fx_mono_ms clock) passes, then stops the thread. Returns 0 when everything was
 * delivered (or dropped as 4xx), -1 otherwise. Call at most once, before destroy. */
int fx_rw_sender_shutdown(struct fx_rw_sender *sender, int64_t deadline_mono_ms);

/* Stops the thread (aborting a transfer in progress) if shutdown was not called, and frees. Accepts NULL. */
void fx_rw_sender_destroy(struct fx_rw_sender *sender);

/* The statistics of a sender, valid until it is destroyed. */
struct fx_push_stats *fx_rw_sender_stats(struct fx_rw_sender *sender);

#endif
