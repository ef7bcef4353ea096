/* What the two pushers (remote write, rw_sender.h; Pushgateway, pushgateway.h) share: their transport
 * options and defaults, the snapshot hook, the HTTP client (libcurl) with its retry rules, and the
 * per-endpoint statistics with the collector that reports them.
 *
 * Thread: an fx_push_http is used by the one pusher thread that owns it, except fx_push_http_wakeup (any
 * thread). The fx_push_stats_* functions and fx_push_collect may be called from any thread (each stats
 * takes its own lock); create and destroy from the thread that owns the pusher. */
#ifndef FX_PUSH_HTTP_H
#define FX_PUSH_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/family_list.h"
#include "fx/snapshot.h"

#define FX_PUSH_DEFAULT_INTERVAL_MS 15000
#define FX_PUSH_DEFAULT_TIMEOUT_MS 10000
#define FX_PUSH_DEFAULT_BACKOFF_MIN_MS 500
#define FX_PUSH_DEFAULT_BACKOFF_MAX_MS 30000
/* A Retry-After longer than this is cut to it. */
#define FX_PUSH_RETRY_AFTER_MAX_MS (5 * 60 * 1000)
/* Of a response body, only this much is kept (for the log); the rest is read and discarded. */
#define FX_PUSH_BODY_KEEP 4096
#define FX_PUSH_USER_AGENT "flow-exporter/" FX_VERSION

/* Transport options of one endpoint (remote write or Pushgateway). Strings are borrowed during create. */
struct fx_push_http_config {
	const char *url;
	int64_t timeout_ms;                   /* per request; 0 = FX_PUSH_DEFAULT_TIMEOUT_MS */
	const char *basic_auth_user;          /* with basic_auth_password_file; NULL = no basic auth */
	const char *basic_auth_password_file; /* read once at create; unreadable -> create fails */
	const char *bearer_token_file;        /* read once at create; NULL = no bearer token */
	const char *ca_file;                  /* NULL = the system's CAs */
	const char *cert_file, *key_file;     /* client certificate and key, or NULL */
	bool insecure_skip_verify;
	const char *const *headers; /* "Name: value"; the reserved ones are refused */
	size_t n_headers;
	int64_t backoff_min_ms; /* first retry delay; 0 = FX_PUSH_DEFAULT_BACKOFF_MIN_MS */
	int64_t backoff_max_ms; /* cap of the doubling; 0 = FX_PUSH_DEFAULT_BACKOFF_MAX_MS */
};

/* Where a pusher gets its values from. */
struct fx_push_hooks {
	/* Returns a snapshot owned by the caller, or NULL (that interval is skipped and logged). Called on the
	 * pusher's thread. */
	struct fx_snapshot *(*take_snapshot)(void *opaque);
	void *opaque;
};

/* ---- Statistics ---- */

/* Counters of one endpoint; read by fx_push_collect. */
struct fx_push_stats;

/* The endpoints whose self-metrics one collector reports, every family once with one sample set per
 * endpoint (url="<URL without userinfo or query>"):
 *   flow_exporter_push_requests_total{url,status_class="2xx|4xx|5xx|network"}
 *   flow_exporter_push_samples_total{url}, flow_exporter_push_retries_total{url}
 *   flow_exporter_push_dropped_batches_total{url,reason="4xx|backlog_full"} (a batch is one request)
 *   flow_exporter_push_backlog_requests{url} (gauge)
 *   flow_exporter_push_last_success_timestamp_seconds{url}, flow_exporter_push_duration_seconds{url} (last)
 * The arrays are borrowed for the collector's lifetime. */
struct fx_push_endpoints {
	struct fx_push_stats *const *stats;
	size_t n;
};

/* An fx_collect_fn; `endpoints` is a struct fx_push_endpoints *. Any thread; takes each stats' lock in
 * turn. */
int fx_push_collect(void *endpoints, struct fx_family_list *out);

/* Statistics of an endpoint whose label is url (copied). NULL on allocation failure. */
struct fx_push_stats *fx_push_stats_create(const char *url);
/* Accepts NULL. No other thread may use the stats any more (the collector is gone, the pusher stopped). */
void fx_push_stats_destroy(struct fx_push_stats *stats);
/* Replaces the url label. Returns 0 or -1 (memory). Any thread. */
int fx_push_stats_set_url(struct fx_push_stats *stats, const char *url);
/* Any thread; normally the pusher's. */
void fx_push_stats_add(struct fx_push_stats *stats, uint64_t samples, uint64_t retries, uint64_t dropped_4xx,
		       uint64_t dropped_backlog);
/* Any thread; normally the pusher's. */
void fx_push_stats_set_backlog(struct fx_push_stats *stats, uint64_t requests);

/* ---- HTTP client ---- */

/* The HTTP client of one endpoint: a libcurl easy handle with the transport options applied. */
struct fx_push_http;

struct fx_push_result {
	long status;            /* HTTP status; 0 for a network error (connect, TLS, timeout, abort) */
	int64_t retry_after_ms; /* from Retry-After (seconds or HTTP date), capped; -1 when absent */
	char error[256];        /* curl's message for a network error */
	char body_start[256];   /* the first bytes of the body, printable, for the log */
	int64_t duration_ms;
};

/* What a result means for the request that got it. Pure. */
enum fx_push_outcome { FX_PUSH_OK, FX_PUSH_RETRY, FX_PUSH_DROP };
enum fx_push_outcome fx_push_outcome_of(const struct fx_push_result *result);

/* fixed_headers are the protocol's own ("Content-Type: ..."); config->headers may not name a reserved
 * header. stats (borrowed, may be NULL) receives the request counters (status_class, duration, last
 * success). NULL on failure (logged). */
struct fx_push_http *fx_push_http_create(const struct fx_push_http_config *config, const char *method,
					 const char *const *fixed_headers, size_t n_fixed,
					 struct fx_push_stats *stats);
/* Accepts NULL. Not while a transfer is in progress. */
void fx_push_http_destroy(struct fx_push_http *http);

/* Sends one request on the owner's thread. The transfer is bounded by the timeout and by deadline_mono_ms
 * (0 = none), and is aborted once the flag given to fx_push_http_set_abort is true (then wake it with
 * fx_push_http_wakeup). tick (may be NULL) is called about every 50 ms during the transfer. */
void fx_push_http_send(struct fx_push_http *http, const void *body, size_t len, int64_t deadline_mono_ms,
		       void (*tick)(void *opaque), void *tick_opaque, struct fx_push_result *result);

/* A streamed body: writes up to max bytes to buffer and returns how many (0 at the end), or
 * FX_PUSH_READ_ABORT to abort the transfer (reported as a network error). */
#define FX_PUSH_READ_ABORT ((size_t)-1)
typedef size_t (*fx_push_read_fn)(void *opaque, char *buffer, size_t max);

/* fx_push_http_send with a body of unknown size read from `read` as it is sent (chunked transfer
 * encoding), so that it is never held whole. Owner's thread. */
void fx_push_http_send_stream(struct fx_push_http *http, fx_push_read_fn read, void *read_opaque,
			      int64_t deadline_mono_ms, void (*tick)(void *opaque), void *tick_opaque,
			      struct fx_push_result *result);

/* The flag that aborts transfers (borrowed; may be NULL). Set before the owner's thread starts. */
void fx_push_http_set_abort(struct fx_push_http *http, const atomic_bool *abort);
/* Interrupts the wait of a transfer in progress so that it sees the abort flag. Any thread. */
void fx_push_http_wakeup(struct fx_push_http *http);

/* The URL with userinfo and query removed, for logs and labels. Any thread; valid until destroy. */
const char *fx_push_http_display_url(const struct fx_push_http *http);

/* The next backoff delay after `current_ms` (0: the first), doubled and capped; no jitter. Any thread. */
int64_t fx_push_backoff_next(const struct fx_push_http *http, int64_t current_ms);

/* delay_ms less up to 10% (random, from the client's own seed). Owner's thread (it advances the seed). */
int64_t fx_push_backoff_jitter(struct fx_push_http *http, int64_t delay_ms);

/* The retry state of one endpoint, shared by both pushers: the current backoff, when to try again
 * (fx_mono_ms clock), and whether the current run of failures was logged. Owned by the pusher's thread;
 * zero-initialised means "nothing failed". */
struct fx_push_retry {
	int64_t backoff_ms;
	int64_t retry_at_ms;
	bool failing;
};

/* After a delivery: logs the recovery once (what: "remote write" or "pushgateway") and clears the state. */
void fx_push_retry_ok(struct fx_push_retry *retry, const char *what, const char *url);
/* After a retryable failure: the next backoff (with the endpoint's jitter when `jitter`), or Retry-After
 * when longer, sets retry_at_ms; logs the first failure of a run. */
void fx_push_retry_failed(struct fx_push_retry *retry, struct fx_push_http *http,
			  const struct fx_push_result *result, bool jitter, const char *what, const char *url);

#endif
