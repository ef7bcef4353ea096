/* Step (6b), second half: delivery of remote-write requests to one endpoint, with retries and a bounded
 * backlog. The HTTP client and the per-endpoint statistics it shares with the Pushgateway: push_http.h.
 *
 * One sender = one endpoint = one thread, so a dead endpoint never delays another. Every push interval the
 * thread takes a snapshot through its hooks, encodes it (fx_rw_encode) at t = max(snapshot->taken_ms,
 * previous t + 1) and appends the requests to its backlog; it sends the backlog oldest first, one request
 * at a time: 2xx -> next; 5xx, 429 and network errors (timeouts included) -> the same request again after a
 * capped exponential backoff (or Retry-After); any other 4xx -> logged, counted, that request dropped.
 * The backlog keeps at most backlog_ms / interval_ms pushes; past it the oldest push is dropped and counted.
 *
 * Thread: create, start, shutdown, destroy and fx_rw_sender_stats may be called from any thread (main, and
 * the thread that takes a snapshot); everything else runs on the sender's own thread. */
#ifndef FX_RW_SENDER_H
#define FX_RW_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/family_list.h"
#include "fx/push_http.h"
#include "fx/snapshot.h"

/* Outage kept by default. */
#define FX_PUSH_DEFAULT_BACKLOG_MS (60 * 60 * 1000)

struct fx_rw_sender_config {
	struct fx_push_http_config http;
	int64_t interval_ms;           /* 0 = FX_PUSH_DEFAULT_INTERVAL_MS */
	int64_t backlog_ms;            /* outage kept; 0 = FX_PUSH_DEFAULT_BACKLOG_MS; at least one push */
	size_t max_series_per_request; /* 0 = FX_RW_DEFAULT_MAX_SERIES_PER_REQUEST */
	const struct fx_label *external_labels; /* copied; validated by the config (config.c) */
	size_t n_external_labels;
	struct fx_push_hooks hooks;
};

struct fx_rw_sender;

/* Checks the options (reserved headers, auth files, TLS files given but unreadable, external labels) and
 * prepares the sender; no thread yet, so its statistics can be registered as a collector first.
 * Returns NULL and logs a clear reason (never a secret) on failure. */
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
