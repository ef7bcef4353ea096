/* Step (6c): the text exposition (fx_expo_text_stream, no timestamps) PUT to a Pushgateway every interval,
 * to <url>/metrics/job/<job>/instance/<instance>, a value that needs it written with the Pushgateway's
 * @base64 path encoding. Same transport options and retry rules as remote write, but no backlog: the
 * Pushgateway keeps only the last value, so a new interval replaces a push still waiting to be retried.
 * Optionally the group is deleted on shutdown.
 *
 * Thread: one thread of its own; create, start, shutdown, destroy and stats from any thread. */
#ifndef FX_PUSHGATEWAY_H
#define FX_PUSHGATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "fx/buf.h"
#include "fx/http_client.h"
#include "fx/push_loop.h"
#include "fx/push_retry.h"
#include "fx/push_stats.h"

/* Validated values (config.c); the pusher asserts them. */
struct fx_pushgateway_config {
	struct fx_http_client_config
	    http; /* http.url: the Pushgateway's base URL, e.g. http://pushgateway:9091 */
	struct fx_push_backoff backoff;
	const char *job;	 /* grouping key; required, copied */
	const char *instance;	 /* grouping key; required (may be empty), copied */
	int64_t interval_ms;	 /* > 0 */
	bool delete_on_shutdown; /* DELETE the group at shutdown instead of a final PUT */
	struct fx_push_hooks hooks;
};

/* Appends "/metrics/job/<job>/instance/<instance>" to out: a value made only of [A-Za-z0-9._~-] as it is,
 * any other (one with '/', an empty one, ...) as "<name>@base64/<base64url of the value, padded>".
 * Returns 0 or the fx_buf error. */
__attribute__((warn_unused_result)) int fx_pushgateway_group_path(const char *job, const char *instance,
								  struct fx_buf *out);

struct fx_pushgateway;

/* Checks what needs the filesystem like fx_rw_sender_create and prepares; no thread yet. NULL (logged) on
 * failure. */
struct fx_pushgateway *fx_pushgateway_create(const struct fx_pushgateway_config *config);
/* Starts the thread; the first PUT is made at once. Returns 0 or -1 (logged). */
int fx_pushgateway_start(struct fx_pushgateway *pushgateway);
/* A final PUT of the current values (or the DELETE of the group when delete_on_shutdown), retried until
 * deadline_mono_ms, then stops the thread. Returns 0 when it was delivered, -1 otherwise. Call once. */
int fx_pushgateway_shutdown(struct fx_pushgateway *pushgateway, int64_t deadline_mono_ms);
/* Stops the thread (aborting a transfer) if shutdown was not called, and frees. Accepts NULL. */
void fx_pushgateway_destroy(struct fx_pushgateway *pushgateway);

/* Its statistics for fx_push_collect (url label: the group URL without userinfo), valid until destroy. */
struct fx_push_stats *fx_pushgateway_stats(struct fx_pushgateway *pushgateway);

#endif
