/* Pushgateway pusher: every interval, the text exposition of a snapshot PUT to the group URL, on a thread of
 * its own (push_loop.c), with the HTTP client of http_client.c and the retry rules of push_retry.c.
 *
 * DESIGN
 * - At most one body waits: the Pushgateway keeps only the last push of a group, so a new interval replaces
 *   a body still being retried (the backoff continues). A 4xx other than 429 drops that body.
 * - What waits is the snapshot, not its text: the body is rendered as it is sent (fx_expo_text_stream,
 *   chunked transfer encoding), so a push of 100,000 series never holds its ~50 MB of text; a retry renders
 *   the same snapshot again. The store shares a snapshot's arrays while nothing changes, so keeping one
 *   costs little.
 * - The text has no timestamps (the Pushgateway refuses them) and none of the metrics the Pushgateway adds
 *   to a group itself (push_time_seconds, push_failure_time_seconds): the exporter's own are flow_exporter_*.
 * - Shutdown: a final PUT of the current values, or the DELETE of the group when asked, bounded by the
 *   caller's deadline.
 * - The thread, its schedule and the stop/final handshake are push_loop.c's; this file supplies what
 *   differs: taking an interval, sending the pending values, the final PUT or DELETE.
 *
 * Thread: the pusher's own (push_loop.c); create, start, shutdown and destroy from main. */
#include "fx/pushgateway.h"

#include <assert.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/clock.h"
#include "fx/expo_text.h"
#include "fx/log.h"
#include "fx/push_loop.h"

#define MAX_BODY (512u << 20)

struct fx_pushgateway {
	struct fx_push_loop *loop; /* the thread, its schedule and the stop/final handshake */

	/* Owned by the thread. */
	struct fx_push_hooks hooks;
	int64_t interval_ms;
	bool delete_on_shutdown;
	struct fx_http_client *put;
	struct fx_http_client *delete; /* NULL unless delete_on_shutdown */
	struct fx_push_stats *stats;
	struct fx_snapshot *pending; /* the values waiting to be sent; NULL = none */
	uint64_t pending_samples;
	struct fx_push_retry retry;
	struct fx_ratelimit refused_log;
};

static bool url_safe(const char *value)
{
	if (!value[0])
		return false;
	for (const char *p = value; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '.' || *p == '_' || *p == '~'))
			return false;
	return true;
}

static int append_base64url(struct fx_buf *out, const char *value)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *in = (const unsigned char *)value;
	size_t len = strlen(value);
	if (len == 0)
		return fx_buf_append(out, "=", 1); /* the Pushgateway's spelling of an empty value */
	int rc = fx_buf_reserve(out, (len + 2) / 3 * 4);
	if (rc)
		return rc;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t chunk = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			chunk |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			chunk |= in[i + 2];
		char quad[4] = {alphabet[(chunk >> 18) & 63], alphabet[(chunk >> 12) & 63],
				i + 1 < len ? alphabet[(chunk >> 6) & 63] : '=',
				i + 2 < len ? alphabet[chunk & 63] : '='};
		if ((rc = fx_buf_append(out, quad, 4)))
			return rc;
	}
	return 0;
}

static int append_group_label(struct fx_buf *out, const char *name, const char *value)
{
	int rc;
	if ((rc = fx_buf_append(out, "/", 1)) || (rc = fx_buf_append_str(out, name)))
		return rc;
	if (url_safe(value)) {
		if ((rc = fx_buf_append(out, "/", 1)) || (rc = fx_buf_append_str(out, value)))
			return rc;
		return 0;
	}
	if ((rc = fx_buf_append_str(out, "@base64/")))
		return rc;
	return append_base64url(out, value);
}

int fx_pushgateway_group_path(const char *job, const char *instance, struct fx_buf *out)
{
	size_t len = out->len;
	int rc;
	if ((rc = fx_buf_append_str(out, "/metrics")) || (rc = append_group_label(out, "job", job)) ||
	    (rc = append_group_label(out, "instance", instance))) {
		out->len = len;
		return rc;
	}
	return 0;
}

/* base + group path, keeping the base's userinfo; NULL when the base does not parse. (libcurl's URL API
 * needs no curl_global_init: that is the HTTP client's, done once when the first client is created.) */
static char *group_url(const char *base, const char *job, const char *instance)
{
	CURLU *parsed = curl_url();
	char *path = NULL, *full = NULL, *copy = NULL;
	struct fx_buf buf;
	fx_buf_init(&buf, 1u << 16);
	if (!parsed || curl_url_set(parsed, CURLUPART_URL, base, 0) != CURLUE_OK ||
	    curl_url_get(parsed, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto done;
	size_t path_len = strlen(path);
	while (path_len > 0 && path[path_len - 1] == '/')
		path_len--;
	if (fx_buf_append(&buf, path, path_len) || fx_pushgateway_group_path(job, instance, &buf) ||
	    curl_url_set(parsed, CURLUPART_PATH, buf.data, 0) != CURLUE_OK ||
	    curl_url_get(parsed, CURLUPART_URL, &full, 0) != CURLUE_OK)
		goto done;
	copy = strdup(full);
done:
	curl_free(path);
	curl_free(full);
	curl_url_cleanup(parsed);
	fx_buf_free(&buf);
	return copy;
}

static uint64_t count_samples(const struct fx_snapshot *snapshot)
{
	uint64_t n = 0;
	for (size_t i = 0; i < snapshot->n_series; i++)
		n += 2 * (uint64_t)__builtin_popcount(snapshot->series[i].seen & 3u);
	for (size_t f = 0; f < fx_family_list_count(snapshot->self); f++)
		n += fx_family_list_get(snapshot->self, f)->n_samples;
	return n;
}

/* Takes the current values into `pending`, replacing those not yet delivered. */
static void render(struct fx_pushgateway *pushgateway)
{
	struct fx_snapshot *snapshot = pushgateway->hooks.take_snapshot(pushgateway->hooks.opaque);
	if (!snapshot) {
		fx_warn("pushgateway %s: no snapshot this interval",
			fx_http_client_display_url(pushgateway->put));
		return;
	}
	fx_snapshot_destroy(pushgateway->pending);
	pushgateway->pending = snapshot;
	pushgateway->pending_samples = count_samples(snapshot);
	fx_push_stats_set_backlog(pushgateway->stats, 1);
}

/* The body of one PUT, rendered as curl sends it. */
struct body_reader {
	struct fx_expo_text_stream *text;
	uint64_t sent;
	const char *url;
	bool failed; /* the body could not be rendered: the transfer was aborted */
};

static size_t read_body(void *opaque, char *buffer, size_t max)
{
	struct body_reader *reader = opaque;
	size_t written = 0;
	int rc = fx_expo_text_stream_read(reader->text, buffer, max, &written);
	if (rc == 0 && (reader->sent += written) <= MAX_BODY)
		return written;
	fx_error("pushgateway %s: rendering failed (%s)", reader->url,
		 rc ? "out of memory" : "larger than the body limit");
	reader->failed = true;
	return FX_HTTP_READ_ABORT;
}

/* Sends the pending values (moved out of `pending` meanwhile, so that a new interval during the transfer
 * does not touch them), or the DELETE when snapshot is NULL. */
static void send_request(struct fx_pushgateway *pushgateway, struct fx_http_client *http,
			 const struct fx_snapshot *snapshot, int64_t deadline_ms, bool ticking,
			 struct fx_http_result *result)
{
	struct fx_http_request request = {
	    .deadline_mono_ms = deadline_ms,
	    .tick = ticking ? fx_push_loop_tick : NULL,
	    .tick_opaque = pushgateway->loop,
	};
	struct body_reader reader = {NULL, 0, fx_http_client_display_url(http), false};
	if (snapshot) {
		reader.text = fx_expo_text_stream_create(snapshot);
		if (!reader.text) {
			memset(result, 0, sizeof(*result));
			snprintf(result->error, sizeof(result->error), "out of memory");
			return;
		}
		request.read = read_body;
		request.read_opaque = &reader;
	}
	fx_http_client_send(http, &request, result);
	fx_push_stats_record(pushgateway->stats, result, true);
	if (reader.failed)
		fx_push_stats_encode_failed(pushgateway->stats);
	fx_expo_text_stream_destroy(reader.text);
}

/* Sends the pending values (or the DELETE); returns its outcome. */
static enum fx_push_outcome send_once(struct fx_pushgateway *pushgateway, struct fx_http_client *http,
				      int64_t deadline_ms, bool ticking)
{
	bool is_delete = http == pushgateway->delete;
	struct fx_snapshot *snapshot = NULL;
	uint64_t samples = pushgateway->pending_samples;
	struct fx_http_result result;
	const char *url = fx_http_client_display_url(http);
	if (!is_delete) {
		snapshot = pushgateway->pending;
		pushgateway->pending = NULL;
	}
	send_request(pushgateway, http, snapshot, deadline_ms, ticking, &result);
	enum fx_push_outcome outcome = fx_push_outcome_of(&result);
	if (!is_delete && outcome == FX_PUSH_RETRY && !pushgateway->pending) {
		/* Nothing newer came meanwhile: keep these values for the retry. */
		pushgateway->pending = snapshot;
		pushgateway->pending_samples = samples;
	} else {
		fx_snapshot_destroy(snapshot);
	}
	int64_t now = fx_push_loop_now(pushgateway->loop);
	if (outcome == FX_PUSH_OK) {
		if (!is_delete)
			fx_push_stats_add(pushgateway->stats, samples, 0, 0, 0);
		fx_push_retry_ok(&pushgateway->retry, "pushgateway", url);
	} else if (outcome == FX_PUSH_DROP) {
		uint64_t suppressed = 0;
		if (fx_ratelimit_allow(&pushgateway->refused_log, now, &suppressed))
			fx_error("pushgateway %s: HTTP %ld to %s, dropped (not retried): %s", url,
				 result.status, is_delete ? "DELETE" : "PUT", result.body_start);
		fx_push_stats_add(pushgateway->stats, 0, 0, 1, 0);
	} else {
		fx_push_retry_failed(&pushgateway->retry, &result, false, now, "pushgateway", url);
		fx_push_stats_add(pushgateway->stats, 0, 1, 0, 0);
	}
	fx_push_stats_set_backlog(pushgateway->stats, pushgateway->pending ? 1 : 0);
	return outcome;
}

/* ---- The callbacks of the push loop (push_loop.c), on the pusher's thread ---- */

static void loop_push_interval(void *opaque)
{
	render(opaque);
}

static bool loop_waiting(void *opaque)
{
	const struct fx_pushgateway *pushgateway = opaque;
	return pushgateway->pending != NULL;
}

static void loop_send_one(void *opaque)
{
	struct fx_pushgateway *pushgateway = opaque;
	send_once(pushgateway, pushgateway->put, 0, true);
}

/* The final PUT of the current values, or the DELETE of the group, retried until the deadline. */
static int loop_finish(void *opaque, int64_t deadline_ms)
{
	struct fx_pushgateway *pushgateway = opaque;
	struct fx_http_client *http = pushgateway->delete ? pushgateway->delete : pushgateway->put;
	if (!pushgateway->delete) {
		render(pushgateway);
	} else {
		fx_snapshot_destroy(pushgateway->pending);
		pushgateway->pending = NULL;
	}
	pushgateway->retry.retry_at_ms = 0;
	pushgateway->retry.backoff_ms = 0;
	while (!fx_push_loop_aborted(pushgateway->loop) &&
	       fx_push_loop_now(pushgateway->loop) < deadline_ms) {
		if (!pushgateway->delete &&!pushgateway->pending)
			return -1; /* nothing to send (the snapshot failed) */
		if (fx_push_loop_now(pushgateway->loop) < pushgateway->retry.retry_at_ms) {
			int64_t until = pushgateway->retry.retry_at_ms;
			fx_push_loop_pause_until(pushgateway->loop,
						 until < deadline_ms ? until : deadline_ms);
			continue;
		}
		enum fx_push_outcome outcome = send_once(pushgateway, http, deadline_ms, false);
		if (outcome != FX_PUSH_RETRY)
			return outcome == FX_PUSH_OK ? 0 : -1;
	}
	return -1;
}

static const struct fx_push_loop_ops loop_ops = {
    .push_interval = loop_push_interval,
    .waiting = loop_waiting,
    .send_one = loop_send_one,
    .finish = loop_finish,
};

struct fx_push_stats *fx_pushgateway_stats(struct fx_pushgateway *pushgateway)
{
	return pushgateway->stats;
}

void fx_pushgateway_destroy(struct fx_pushgateway *pushgateway)
{
	if (!pushgateway)
		return;
	fx_push_loop_destroy(pushgateway->loop); /* stops the thread first */
	fx_http_client_destroy(pushgateway->put);
	fx_http_client_destroy(pushgateway->delete);
	fx_push_stats_destroy(pushgateway->stats);
	fx_snapshot_destroy(pushgateway->pending);
	free(pushgateway);
}

/* The PUT client, and the DELETE one when the group goes at shutdown, both to the group URL. */
static int create_clients(struct fx_pushgateway *pushgateway, const struct fx_pushgateway_config *config)
{
	char *url = group_url(config->http.url, config->job, config->instance);
	if (!url) {
		fx_error("pushgateway: invalid URL");
		return -1;
	}
	struct fx_http_client_config http = config->http;
	http.url = url;
	/* "Expect:" (empty) keeps curl from waiting for a 100 Continue before a chunked body. */
	static const char *const fixed[] = {"Content-Type: " FX_TEXT_CONTENT_TYPE, "Expect:"};
	pushgateway->put = fx_http_client_create(&http, "PUT", fixed, 2);
	if (pushgateway->put && config->delete_on_shutdown)
		pushgateway->delete = fx_http_client_create(&http, "DELETE", NULL, 0);
	free(url);
	if (!pushgateway->put || (config->delete_on_shutdown && !pushgateway->delete))
		return -1;
	fx_push_loop_attach(pushgateway->loop, pushgateway->put);
	if (pushgateway->delete)
		fx_push_loop_attach(pushgateway->loop, pushgateway->delete);
	return 0;
}

struct fx_pushgateway *fx_pushgateway_create(const struct fx_pushgateway_config *config)
{
	assert(config->interval_ms > 0 && config->hooks.take_snapshot && config->instance);
	struct fx_pushgateway *pushgateway = calloc(1, sizeof(*pushgateway));
	if (!pushgateway)
		return NULL;
	pushgateway->hooks = config->hooks;
	pushgateway->interval_ms = config->interval_ms;
	pushgateway->delete_on_shutdown = config->delete_on_shutdown;
	fx_push_retry_init(&pushgateway->retry, &config->backoff, 0);
	/* main.c always names a job (--external-label job=..., flow-exporter by default). */
	if (!config->job || !config->job[0]) {
		fx_error("pushgateway: a job name is required");
		goto fail;
	}
	pushgateway->stats = fx_push_stats_create("");
	struct fx_push_loop_config loop = {loop_ops, pushgateway, pushgateway->interval_ms,
					   &pushgateway->retry, NULL};
	pushgateway->loop = fx_push_loop_create(&loop);
	if (!pushgateway->stats || !pushgateway->loop || create_clients(pushgateway, config) != 0)
		goto fail;
	if (fx_push_stats_set_url(pushgateway->stats, fx_http_client_display_url(pushgateway->put)) != 0)
		goto fail;
	return pushgateway;
fail:
	fx_pushgateway_destroy(pushgateway);
	return NULL;
}

int fx_pushgateway_start(struct fx_pushgateway *pushgateway)
{
	int rc = fx_push_loop_start(pushgateway->loop);
	if (rc > 0)
		return 0;
	if (rc < 0) {
		fx_error("pushgateway: cannot start the thread");
		return -1;
	}
	fx_info("pushgateway %s: pushing every %" PRId64 " ms", fx_http_client_display_url(pushgateway->put),
		pushgateway->interval_ms);
	return 0;
}

int fx_pushgateway_shutdown(struct fx_pushgateway *pushgateway, int64_t deadline_mono_ms)
{
	return fx_push_loop_shutdown(pushgateway->loop, deadline_mono_ms);
}
