/* The pushers' retry policy (push_retry.c): which answers are retried, the capped backoff and its jitter,
 * Retry-After in seconds and as an HTTP date. */
#include <string.h>

#include "check.h"
#include "fx/clock.h"
#include "fx/push_retry.h"

static enum fx_push_outcome outcome_of(long status)
{
	struct fx_http_result result = {.status = status};
	return fx_push_outcome_of(&result);
}

static void test_outcomes(void)
{
	CHECK(outcome_of(200) == FX_PUSH_OK);
	CHECK(outcome_of(204) == FX_PUSH_OK);
	CHECK(outcome_of(0) == FX_PUSH_RETRY); /* network error */
	CHECK(outcome_of(500) == FX_PUSH_RETRY);
	CHECK(outcome_of(503) == FX_PUSH_RETRY);
	CHECK(outcome_of(429) == FX_PUSH_RETRY);
	CHECK(outcome_of(400) == FX_PUSH_DROP);
	CHECK(outcome_of(401) == FX_PUSH_DROP);
	CHECK(outcome_of(413) == FX_PUSH_DROP);
	CHECK(outcome_of(302) == FX_PUSH_DROP);
}

static void test_backoff(void)
{
	struct fx_push_backoff backoff = {100, 400};
	CHECK_EQ_U64(fx_push_backoff_next(&backoff, 0), 100);
	CHECK_EQ_U64(fx_push_backoff_next(&backoff, 100), 200);
	CHECK_EQ_U64(fx_push_backoff_next(&backoff, 200), 400);
	CHECK_EQ_U64(fx_push_backoff_next(&backoff, 400), 400);
	struct fx_push_retry retry;
	fx_push_retry_init(&retry, &backoff, 7);
	for (int i = 0; i < 100; i++) {
		int64_t delay = fx_push_backoff_jitter(&retry, 1000);
		CHECK(delay > 900 && delay <= 1000);
	}
	CHECK_EQ_U64(fx_push_backoff_jitter(&retry, 5), 5); /* too small to spread */
}

static void test_retry_after(void)
{
	int64_t now = 1700000000000;
	CHECK(fx_push_retry_after_ms("", now) == -1);
	CHECK(fx_push_retry_after_ms("soon", now) == -1);
	CHECK(fx_push_retry_after_ms("-3", now) == -1);
	CHECK(fx_push_retry_after_ms("2", now) == 2000);
	CHECK(fx_push_retry_after_ms("0", now) == 0);
	CHECK(fx_push_retry_after_ms("99999", now) == FX_PUSH_RETRY_AFTER_MAX_MS);
	/* 1700000000 s is Tue, 14 Nov 2023 22:13:20 GMT. */
	CHECK(fx_push_retry_after_ms("Tue, 14 Nov 2023 22:13:30 GMT", now) == 10000);
	CHECK(fx_push_retry_after_ms("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0); /* past */
	CHECK(fx_push_retry_after_ms("Wed, 15 Nov 2023 22:13:20 GMT", now) == FX_PUSH_RETRY_AFTER_MAX_MS);
}

static void test_retry_state(void)
{
	struct fx_push_backoff backoff = {100, 400};
	struct fx_push_retry retry;
	fx_push_retry_init(&retry, &backoff, 1);
	struct fx_http_result network = {.status = 0};
	fx_push_retry_failed(&retry, &network, false, 1000, "test", "http://x");
	CHECK(retry.failing);
	CHECK_EQ_U64(retry.retry_at_ms, 1100);
	fx_push_retry_failed(&retry, &network, false, 2000, "test", "http://x");
	CHECK_EQ_U64(retry.retry_at_ms, 2200);
	/* Retry-After longer than the backoff wins. */
	struct fx_http_result busy = {.status = 429};
	strcpy(busy.retry_after, "1");
	fx_push_retry_failed(&retry, &busy, true, 3000, "test", "http://x");
	CHECK_EQ_U64(retry.retry_at_ms, 4000);
	fx_push_retry_ok(&retry, "test", "http://x");
	CHECK(!retry.failing);
	CHECK_EQ_U64(retry.backoff_ms, 0);
	CHECK_EQ_U64(retry.backoff.max_ms, 400); /* the policy stays */
}

int main(void)
{
	test_outcomes();
	test_backoff();
	test_retry_after();
	test_retry_state();
	return check_exit();
}
