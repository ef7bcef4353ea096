/* A fake HTTP server for the unit tests: libmicrohttpd on 127.0.0.1 (a port the system picks), a thread per
 * connection, answering a script of answers in order (the last one repeats) and recording every request.
 *
 * Thread: the test's thread calls every function; the server answers on its own threads. */
#ifndef FX_TEST_FAKE_HTTP_H
#define FX_TEST_FAKE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAKE_HTTP_MAX_ANSWERS 16
#define FAKE_HTTP_MAX_RECORDED 64

struct fake_http_answer {
	unsigned status;
	const char *body;	 /* copied; NULL = empty */
	const char *retry_after; /* a Retry-After value, copied; NULL = none */
	bool hang;		 /* send the body, then stall (never end it) until fake_http_stop */
};

struct fake_http_request {
	char method[16];
	char url[256];
	char content_type[128];
	char user_agent[128];
	char authorization[256];
	char *body; /* NUL-terminated */
	size_t body_len;
	int64_t arrival_ms; /* fx_mono_ms when it was answered */
};

struct fake_http;

/* Answers `answers` (n >= 1, copied) from the first request. NULL when it cannot start. */
struct fake_http *fake_http_start(const struct fake_http_answer *answers, size_t n);
/* Stops (ending a stalled answer), frees the recorded requests. Accepts NULL. */
void fake_http_stop(struct fake_http *server);
unsigned fake_http_port(const struct fake_http *server);

/* Replaces the script; the next request gets answers[0]. */
void fake_http_script(struct fake_http *server, const struct fake_http_answer *answers, size_t n);
/* Answers 200 with body from now on. */
void fake_http_serve(struct fake_http *server, const char *body);

/* Requests answered so far (all of them, also past the FAKE_HTTP_MAX_RECORDED that are recorded). */
size_t fake_http_count(struct fake_http *server);
/* Waits until count >= want. Returns 0, or -1 after timeout_ms. */
int fake_http_wait(struct fake_http *server, size_t want, int64_t timeout_ms);
/* The i-th request (from 0), or NULL when it was not recorded (yet). Valid until stop. */
const struct fake_http_request *fake_http_request(struct fake_http *server, size_t i);
/* Whether a hanging answer has sent its body and is now stalled. */
bool fake_http_hanging(struct fake_http *server);

#endif
