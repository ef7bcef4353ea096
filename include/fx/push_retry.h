/* The retry policy both pushers follow: which answers are retried (5xx, 429, network errors), dropped (any
 * other 4xx, and 1xx/3xx finals) or delivered (2xx); capped exponential backoff with jitter; Retry-After
 * (seconds or an HTTP date) honoured when longer, up to FX_PUSH_RETRY_AFTER_MAX_MS.
 *
 * Thread: pure functions, and a struct fx_push_retry owned by the pusher's thread. */
#ifndef FX_PUSH_RETRY_H
#define FX_PUSH_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "fx/http_client.h"

/* A Retry-After longer than this is cut to it. */
#define FX_PUSH_RETRY_AFTER_MAX_MS (5 * 60 * 1000)
/* The backoff of the daemon's pushers. No flag sets them: main.c passes these, tests their own. */
#define FX_PUSH_BACKOFF_MIN_MS 500
#define FX_PUSH_BACKOFF_MAX_MS 30000

struct fx_push_backoff {
	int64_t min_ms; /* first retry delay, > 0 */
	int64_t max_ms; /* cap of the doubling, >= min_ms */
};

/* What an answer means for the request that got it. */
enum fx_push_outcome { FX_PUSH_OK, FX_PUSH_RETRY, FX_PUSH_DROP };
enum fx_push_outcome fx_push_outcome_of(const struct fx_http_result *result);

/* A Retry-After value (delay in seconds, or an HTTP date compared with now_wall_ms) in milliseconds,
 * capped at FX_PUSH_RETRY_AFTER_MAX_MS; -1 when empty or not understood. */
int64_t fx_push_retry_after_ms(const char *value, int64_t now_wall_ms);

/* The retry state of one endpoint: the current backoff, when to try again (fx_mono_ms clock), and whether
 * the current run of failures was logged. */
struct fx_push_retry {
	struct fx_push_backoff backoff;
	unsigned jitter_seed;
	int64_t backoff_ms; /* 0: nothing failed */
	int64_t retry_at_ms;
	bool failing;
};

void fx_push_retry_init(struct fx_push_retry *retry, const struct fx_push_backoff *backoff, unsigned seed);

/* The next backoff delay after current_ms (0: the first), doubled and capped; no jitter. */
int64_t fx_push_backoff_next(const struct fx_push_backoff *backoff, int64_t current_ms);
/* delay_ms less up to 10% (random, from the retry's own seed, which it advances). */
int64_t fx_push_backoff_jitter(struct fx_push_retry *retry, int64_t delay_ms);

/* After a delivery: logs the recovery once (what: "remote write" or "pushgateway") and clears the state. */
void fx_push_retry_ok(struct fx_push_retry *retry, const char *what, const char *url);
/* After a retryable failure at now_mono_ms: the next backoff (with jitter when `jitter`), or Retry-After
 * when longer, sets retry_at_ms; logs the first failure of a run. */
void fx_push_retry_failed(struct fx_push_retry *retry, const struct fx_http_result *result, bool jitter,
			  int64_t now_mono_ms, const char *what, const char *url);

#endif
