/* The one HTTP client of the process (libcurl): the remote-write sender, the Pushgateway pusher and the
 * AS-name download all send through it. One client = one endpoint and method, with its transport options
 * (timeout, auth, TLS, headers) applied once at create.
 *
 * Thread: a client is used by the one thread that owns it, except fx_http_client_wakeup (any thread).
 * Create and destroy from the thread that owns it (before it starts, after it stopped). */
#ifndef FX_HTTP_CLIENT_H
#define FX_HTTP_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/buf.h"

#define FX_HTTP_USER_AGENT "flow-exporter/" FX_VERSION

/* Transport options of one endpoint. Validated by config.c (http(s) URL, reserved headers, auth pairs);
 * only what needs the filesystem is checked here. Strings are borrowed during create. */
struct fx_http_client_config {
	const char *url;		      /* http:// or https://, not empty */
	int64_t timeout_ms;		      /* per request, > 0 */
	const char *basic_auth_user;	      /* with basic_auth_password_file; NULL = no basic auth */
	const char *basic_auth_password_file; /* read once at create; unreadable -> create fails */
	const char *bearer_token_file;	      /* read once at create; NULL = no bearer token */
	const char *ca_file;		      /* NULL = the system's CAs */
	const char *cert_file, *key_file;     /* client certificate and key, or NULL */
	bool insecure_skip_verify;
	const char *const *headers; /* "Name: value", not a reserved one (config.c refuses those) */
	size_t n_headers;
	bool ignore_proxy_env; /* contact only this URL, never a proxy named by the environment */
	bool accept_encoding;  /* offer every response compression libcurl supports */
};

struct fx_http_result {
	long status;	      /* HTTP status; 0 for a network error (connect, TLS, timeout, abort) */
	char retry_after[64]; /* the Retry-After header's value, trimmed; "" when absent */
	bool too_big;	      /* the response body did not fit the request's response buffer */
	char error[256];      /* curl's message for a network error */
	char body_start[256]; /* the first bytes of the response body, printable, for the log */
	int64_t duration_ms;
};

/* A streamed request body: writes up to max bytes to buffer and returns how many (0 at the end), or
 * FX_HTTP_READ_ABORT to abort the transfer (reported as a network error). */
#define FX_HTTP_READ_ABORT ((size_t)-1)
typedef size_t (*fx_http_read_fn)(void *opaque, char *buffer, size_t max);

/* One request. The body is either held whole (body, len), streamed (read; chunked transfer encoding, so it
 * is never held whole), or absent (a GET). Everything is borrowed for the call. */
struct fx_http_request {
	const void *body;
	size_t len;
	fx_http_read_fn read; /* NULL: the body is (body, len) */
	void *read_opaque;
	struct fx_buf *response;  /* the whole response body is appended here, bounded by its max; NULL = only
				   * result->body_start is kept */
	int64_t deadline_mono_ms; /* 0 = only the timeout bounds the transfer */
	void (*tick)(void *opaque); /* may be NULL; called about every 50 ms during the transfer */
	void *tick_opaque;
	/* May be NULL: called with every response header line as received ("Name: value\r\n", not
	 * NUL-terminated), on the owner's thread during the transfer. */
	void (*on_header)(void *opaque, const char *line, size_t len);
	void *header_opaque;
	bool alt_headers; /* send the alternative fixed headers (fx_http_client_set_alt_headers) */
};

struct fx_http_client;

/* method: "POST", "PUT", "DELETE" or "GET". fixed_headers are the protocol's own ("Content-Type: ...").
 * Initialises libcurl once for the process. NULL on failure (logged, never a secret). */
struct fx_http_client *fx_http_client_create(const struct fx_http_client_config *config, const char *method,
					     const char *const *fixed_headers, size_t n_fixed);
/* Accepts NULL. Not while a transfer is in progress. Wipes the secrets. */
void fx_http_client_destroy(struct fx_http_client *client);

/* A second set of fixed headers (copied), used by requests that set alt_headers, with the same user
 * headers (remote write 2.0 and 1.0 on one endpoint). Owner's thread, between transfers. 0 or -1 (memory). */
__attribute__((warn_unused_result)) int fx_http_client_set_alt_headers(struct fx_http_client *client,
								       const char *const *fixed_headers,
								       size_t n_fixed);

/* Sends one request on the owner's thread. The transfer is bounded by the timeout and the request's
 * deadline, and is aborted once the flag given to fx_http_client_set_abort is true (then wake it with
 * fx_http_client_wakeup). */
void fx_http_client_send(struct fx_http_client *client, const struct fx_http_request *request,
			 struct fx_http_result *result);

/* The flag that aborts transfers (borrowed; may be NULL). Set before the owner's thread starts. */
void fx_http_client_set_abort(struct fx_http_client *client, const atomic_bool *abort);
/* Interrupts the wait of a transfer in progress so that it sees the abort flag. Any thread. */
void fx_http_client_wakeup(struct fx_http_client *client);

/* The URL with userinfo and query removed, for logs and labels. Any thread; valid until destroy. */
const char *fx_http_client_display_url(const struct fx_http_client *client);

/* url without its userinfo (user, password, options) and fragment, query kept: what names an endpoint
 * without its credentials (the push queue's directory). malloc'd; NULL when not a URL or out of memory. */
char *fx_http_url_without_userinfo(const char *url);

#endif
