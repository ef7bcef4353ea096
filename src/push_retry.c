/* The pushers' retry policy: the outcome of an answer, the capped exponential backoff with jitter, and
 * Retry-After.
 *
 * DESIGN
 * - Only 5xx, 429 and network errors (timeouts included) are retried: any other 4xx would fail again the
 *   same way, and retrying it would delay every push behind it.
 * - The jitter (up to 10% less) spreads the retries of exporters that failed together; it comes from the
 *   endpoint's own seed so that no lock is shared between pushers.
 *
 * Thread: see push_retry.h. */
#include "fx/push_retry.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>

#include "fx/clock.h"
#include "fx/log.h"

enum fx_push_outcome fx_push_outcome_of(const struct fx_http_result *result)
{
	if (result->status >= 200 && result->status < 300)
		return FX_PUSH_OK;
	if (result->status == 0 || result->status >= 500 || result->status == 429)
		return FX_PUSH_RETRY;
	return FX_PUSH_DROP;
}

int64_t fx_push_retry_after_ms(const char *value, int64_t now_wall_ms)
{
	if (!value[0])
		return -1;
	char *rest;
	errno = 0;
	long long seconds = strtoll(value, &rest, 10);
	if (rest != value && *rest == '\0' && errno == 0 && seconds >= 0)
		return seconds > FX_PUSH_RETRY_AFTER_MAX_MS / 1000 ? FX_PUSH_RETRY_AFTER_MAX_MS
								   : seconds * 1000;
	/* curl_getdate parses the HTTP date forms; it needs no curl_global_init. */
	time_t when = curl_getdate(value, NULL);
	if (when == -1)
		return -1;
	int64_t delta = (int64_t)when * 1000 - now_wall_ms;
	return delta < 0 ? 0 : delta > FX_PUSH_RETRY_AFTER_MAX_MS ? FX_PUSH_RETRY_AFTER_MAX_MS : delta;
}

void fx_push_retry_init(struct fx_push_retry *retry, const struct fx_push_backoff *backoff, unsigned seed)
{
	assert(backoff->min_ms > 0 && backoff->max_ms >= backoff->min_ms);
	*retry = (struct fx_push_retry){.backoff = *backoff, .jitter_seed = seed};
}

int64_t fx_push_backoff_next(const struct fx_push_backoff *backoff, int64_t current_ms)
{
	int64_t next = current_ms <= 0 ? backoff->min_ms : current_ms * 2;
	if (next > backoff->max_ms)
		next = backoff->max_ms;
	return next;
}

int64_t fx_push_backoff_jitter(struct fx_push_retry *retry, int64_t delay_ms)
{
	int64_t spread = delay_ms / 10;
	if (spread <= 0)
		return delay_ms;
	return delay_ms - (int64_t)((unsigned)rand_r(&retry->jitter_seed) % (unsigned)spread);
}

void fx_push_retry_ok(struct fx_push_retry *retry, const char *what, const char *url)
{
	if (retry->failing)
		fx_info("%s %s: delivering again", what, url);
	retry->backoff_ms = 0;
	retry->retry_at_ms = 0;
	retry->failing = false;
}

void fx_push_retry_failed(struct fx_push_retry *retry, const struct fx_http_result *result, bool jitter,
			  int64_t now_mono_ms, const char *what, const char *url)
{
	retry->backoff_ms = fx_push_backoff_next(&retry->backoff, retry->backoff_ms);
	int64_t delay = jitter ? fx_push_backoff_jitter(retry, retry->backoff_ms) : retry->backoff_ms;
	int64_t retry_after = result->status ? fx_push_retry_after_ms(result->retry_after, fx_wall_ms()) : -1;
	if (retry_after > delay)
		delay = retry_after;
	retry->retry_at_ms = now_mono_ms + delay;
	if (!retry->failing) {
		if (result->status)
			fx_warn("%s %s: HTTP %ld, retrying with backoff: %s", what, url, result->status,
				result->body_start);
		else
			fx_warn("%s %s: %s, retrying with backoff", what, url, result->error);
	}
	retry->failing = true;
}
