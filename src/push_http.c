/* Push transport shared by the remote-write sender and the Pushgateway pusher: the HTTP client (libcurl,
 * one easy handle driven by a multi handle per endpoint) and the per-endpoint statistics reported by
 * fx_push_collect.
 *
 * DESIGN
 * - A struct fx_push_http belongs to one pusher thread: it holds the curl handles and the per-transfer state
 *   (the start of the response body, Retry-After), so only that thread sends with it. Other threads may only
 *   call fx_push_http_wakeup, after setting the abort flag the owner handed over.
 * - The transfer is driven by curl_multi so the owner's thread keeps ticking (its interval) while a slow
 *   request is on the wire, and so a wake-up interrupts the wait at once.
 * - Nothing is allocated per request: the body is borrowed (or streamed), the response's first
 *   FX_PUSH_BODY_KEEP bytes go to a fixed buffer, the result is the caller's.
 * - Secrets (password, token, URL userinfo) are handed to curl and never logged; they are wiped on destroy.
 *   The URL is logged and labelled without userinfo and query.
 * - struct fx_push_stats is written by the owner's thread and read by fx_push_collect from the thread that
 *   takes a snapshot; its own mutex guards every field.
 *
 * Thread: see push_http.h. */
#include "fx/push_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fx/clock.h"
#include "fx/log.h"

/* ---- Statistics ---- */

enum status_class { CLASS_2XX, CLASS_4XX, CLASS_5XX, CLASS_NETWORK, N_CLASSES };
static const char *const class_names[N_CLASSES] = {"2xx", "4xx", "5xx", "network"};

struct fx_push_stats {
	pthread_mutex_t lock;
	char *url;
	uint64_t requests[N_CLASSES];
	uint64_t samples;
	uint64_t retries;
	uint64_t dropped_4xx;
	uint64_t dropped_backlog;
	uint64_t backlog_requests;
	int64_t last_success_ms; /* wall clock; 0 = never */
	int64_t last_duration_ms;
};

struct fx_push_stats *fx_push_stats_create(const char *url)
{
	struct fx_push_stats *stats = calloc(1, sizeof(*stats));
	if (!stats)
		return NULL;
	stats->url = strdup(url);
	if (!stats->url) {
		free(stats);
		return NULL;
	}
	pthread_mutex_init(&stats->lock, NULL);
	return stats;
}

void fx_push_stats_destroy(struct fx_push_stats *stats)
{
	if (!stats)
		return;
	pthread_mutex_destroy(&stats->lock);
	free(stats->url);
	free(stats);
}

int fx_push_stats_set_url(struct fx_push_stats *stats, const char *url)
{
	char *copy = strdup(url);
	if (!copy)
		return -1;
	pthread_mutex_lock(&stats->lock);
	free(stats->url);
	stats->url = copy;
	pthread_mutex_unlock(&stats->lock);
	return 0;
}

void fx_push_stats_add(struct fx_push_stats *stats, uint64_t samples, uint64_t retries, uint64_t dropped_4xx,
		       uint64_t dropped_backlog)
{
	pthread_mutex_lock(&stats->lock);
	stats->samples += samples;
	stats->retries += retries;
	stats->dropped_4xx += dropped_4xx;
	stats->dropped_backlog += dropped_backlog;
	pthread_mutex_unlock(&stats->lock);
}

void fx_push_stats_set_backlog(struct fx_push_stats *stats, uint64_t requests)
{
	pthread_mutex_lock(&stats->lock);
	stats->backlog_requests = requests;
	pthread_mutex_unlock(&stats->lock);
}

/* 429 counts as 4xx (it is still retried); an unexpected 1xx or 3xx final status counts as 4xx too. */
static void stats_record_request(struct fx_push_stats *stats, const struct fx_push_result *result)
{
	enum status_class class = CLASS_4XX;
	if (result->status == 0)
		class = CLASS_NETWORK;
	else if (result->status >= 200 && result->status < 300)
		class = CLASS_2XX;
	else if (result->status >= 500)
		class = CLASS_5XX;
	pthread_mutex_lock(&stats->lock);
	stats->requests[class]++;
	stats->last_duration_ms = result->duration_ms;
	if (class == CLASS_2XX)
		stats->last_success_ms = fx_wall_ms();
	pthread_mutex_unlock(&stats->lock);
}

int fx_push_collect(void *opaque, struct fx_family_list *out)
{
	const struct fx_push_endpoints *endpoints = opaque;
	size_t n = endpoints->n;
	if (n == 0)
		return 0;
	struct fx_push_stats *copies = calloc(n, sizeof(*copies));
	if (!copies)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct fx_push_stats *stats = endpoints->stats[i];
		pthread_mutex_lock(&stats->lock);
		copies[i] = *stats;
		pthread_mutex_unlock(&stats->lock);
	}
	int rc = 0;
	rc |= fx_family_begin(out, "flow_exporter_push_requests_total",
			      "Push requests by endpoint and by result (network: no HTTP status).", FX_METRIC_COUNTER);
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < N_CLASSES; c++) {
			struct fx_label labels[] = {{"status_class", class_names[c]}, {"url", copies[i].url}};
			rc |= fx_family_add_u64(out, copies[i].requests[c], 2, labels);
		}
	rc |= fx_family_begin(out, "flow_exporter_push_samples_total", "Samples delivered (acknowledged by 2xx).",
			      FX_METRIC_COUNTER);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_u64(out, copies[i].samples, 1, &(struct fx_label){"url", copies[i].url});
	rc |= fx_family_begin(out, "flow_exporter_push_retries_total",
			      "Requests sent again after a 5xx, a 429 or a network error.", FX_METRIC_COUNTER);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_u64(out, copies[i].retries, 1, &(struct fx_label){"url", copies[i].url});
	rc |= fx_family_begin(out, "flow_exporter_push_dropped_batches_total",
			      "Requests dropped: refused with a 4xx other than 429, or oldest past the backlog bound.",
			      FX_METRIC_COUNTER);
	for (size_t i = 0; i < n; i++) {
		struct fx_label refused[] = {{"reason", "4xx"}, {"url", copies[i].url}};
		struct fx_label full[] = {{"reason", "backlog_full"}, {"url", copies[i].url}};
		rc |= fx_family_add_u64(out, copies[i].dropped_4xx, 2, refused);
		rc |= fx_family_add_u64(out, copies[i].dropped_backlog, 2, full);
	}
	rc |= fx_family_begin(out, "flow_exporter_push_backlog_requests", "Requests waiting to be sent.",
			      FX_METRIC_GAUGE);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_u64(out, copies[i].backlog_requests, 1, &(struct fx_label){"url", copies[i].url});
	rc |= fx_family_begin(out, "flow_exporter_push_last_success_timestamp_seconds",
			      "Wall-clock time of the last 2xx answer (0: never).", FX_METRIC_GAUGE);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_double(out, (double)copies[i].last_success_ms / 1000.0, 1,
					   &(struct fx_label){"url", copies[i].url});
	rc |= fx_family_begin(out, "flow_exporter_push_duration_seconds", "Duration of the last push request.",
			      FX_METRIC_GAUGE);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_double(out, (double)copies[i].last_duration_ms / 1000.0, 1,
					   &(struct fx_label){"url", copies[i].url});
	free(copies);
	return rc ? -1 : 0;
}

/* ---- HTTP client ---- */

struct fx_push_http {
	CURL *curl;
	CURLM *multi; /* drives the one transfer, so the owner's thread can tick and be woken meanwhile */
	struct curl_slist *headers;
	char *display_url;
	char *password; /* secret */
	char *token;    /* secret */
	int64_t timeout_ms;
	int64_t backoff_min_ms, backoff_max_ms;
	struct fx_push_stats *stats;
	unsigned jitter_seed;

	/* Per transfer. */
	char body[FX_PUSH_BODY_KEEP];
	size_t body_len;
	int64_t retry_after_ms;
	int64_t deadline_mono_ms;
	const atomic_bool *abort;
};

static const char *const reserved_headers[] = {
	"Content-Encoding", "Content-Type", "X-Prometheus-Remote-Write-Version", "User-Agent", "Content-Length",
	"Host",
};

/* Reads a secret file: the whole file, one trailing newline removed. Returns NULL (and logs the path, never
 * the contents) when it cannot be read or is empty. */
static char *read_secret(const char *path, const char *what)
{
	FILE *file = fopen(path, "r");
	if (!file) {
		fx_error("%s file %s cannot be read: %s", what, path, strerror(errno));
		return NULL;
	}
	char buffer[4096];
	size_t n = fread(buffer, 1, sizeof(buffer) - 1, file);
	int failed = ferror(file);
	int more = !feof(file);
	fclose(file);
	if (failed || more) {
		fx_error("%s file %s: %s", what, path, failed ? "read error" : "longer than 4 KiB");
		return NULL;
	}
	while (n > 0 && (buffer[n - 1] == '\n' || buffer[n - 1] == '\r'))
		n--;
	if (n == 0) {
		fx_error("%s file %s is empty", what, path);
		return NULL;
	}
	buffer[n] = '\0';
	char *secret = strdup(buffer);
	memset(buffer, 0, sizeof(buffer));
	return secret;
}

static char *display_url_of(const char *url)
{
	CURLU *parsed = curl_url();
	char *text = NULL, *copy = NULL;
	if (!parsed || curl_url_set(parsed, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto done;
	curl_url_set(parsed, CURLUPART_USER, NULL, 0);
	curl_url_set(parsed, CURLUPART_PASSWORD, NULL, 0);
	curl_url_set(parsed, CURLUPART_OPTIONS, NULL, 0);
	curl_url_set(parsed, CURLUPART_QUERY, NULL, 0);
	curl_url_set(parsed, CURLUPART_FRAGMENT, NULL, 0);
	if (curl_url_get(parsed, CURLUPART_URL, &text, 0) != CURLUE_OK)
		goto done;
	copy = strdup(text);
done:
	curl_free(text);
	curl_url_cleanup(parsed);
	return copy;
}

static bool header_valid(const char *header, char *name, size_t name_size)
{
	const char *colon = strchr(header, ':');
	if (!colon || colon == header || (size_t)(colon - header) >= name_size)
		return false;
	for (const char *p = header; p < colon; p++)
		if (!(*p > 32 && *p < 127) || strchr("()<>@,;\\\"/[]?={}", *p))
			return false;
	for (const char *p = colon + 1; *p; p++)
		if (*p == '\r' || *p == '\n')
			return false;
	memcpy(name, header, (size_t)(colon - header));
	name[colon - header] = '\0';
	return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct fx_push_http *http = opaque;
	size_t n = size * nmemb;
	size_t keep = sizeof(http->body) - http->body_len;
	if (keep > n)
		keep = n;
	memcpy(http->body + http->body_len, data, keep);
	http->body_len += keep;
	return n; /* the rest is read and discarded */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct fx_push_http *http = opaque;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";
	if (n > sizeof(name) - 1 && n < 256 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		char value[256];
		size_t len = n - (sizeof(name) - 1);
		memcpy(value, data + sizeof(name) - 1, len);
		value[len] = '\0';
		char *start = value;
		while (*start == ' ' || *start == '\t')
			start++;
		char *end = start + strlen(start);
		while (end > start && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
			*--end = '\0';
		char *rest;
		errno = 0;
		long long seconds = strtoll(start, &rest, 10);
		int64_t ms = -1;
		if (rest != start && *rest == '\0' && errno == 0 && seconds >= 0) {
			ms = seconds > FX_PUSH_RETRY_AFTER_MAX_MS / 1000 ? FX_PUSH_RETRY_AFTER_MAX_MS : seconds * 1000;
		} else {
			time_t when = curl_getdate(start, NULL);
			if (when != -1) {
				int64_t delta = (int64_t)when * 1000 - fx_wall_ms();
				ms = delta < 0 ? 0 : delta > FX_PUSH_RETRY_AFTER_MAX_MS ? FX_PUSH_RETRY_AFTER_MAX_MS : delta;
			}
		}
		if (ms >= 0)
			http->retry_after_ms = ms;
	}
	return n;
}

/* Aborts a transfer when the owner is stopping (the multi loop checks too; this covers curl's own waits). */
static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct fx_push_http *http = opaque;
	return http->abort && atomic_load(http->abort) ? 1 : 0;
}

void fx_push_http_destroy(struct fx_push_http *http)
{
	if (!http)
		return;
	if (http->curl)
		curl_easy_cleanup(http->curl);
	if (http->multi)
		curl_multi_cleanup(http->multi);
	curl_slist_free_all(http->headers);
	free(http->display_url);
	if (http->password) {
		memset(http->password, 0, strlen(http->password));
		free(http->password);
	}
	if (http->token) {
		memset(http->token, 0, strlen(http->token));
		free(http->token);
	}
	free(http);
	curl_global_cleanup();
}

struct fx_push_http *fx_push_http_create(const struct fx_push_http_config *config, const char *method,
					 const char *const *fixed_headers, size_t n_fixed,
					 struct fx_push_stats *stats)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fx_error("push: curl_global_init failed");
		return NULL;
	}
	struct fx_push_http *http = calloc(1, sizeof(*http));
	if (!http) {
		curl_global_cleanup();
		return NULL;
	}
	http->stats = stats;
	http->timeout_ms = config->timeout_ms > 0 ? config->timeout_ms : FX_PUSH_DEFAULT_TIMEOUT_MS;
	http->backoff_min_ms = config->backoff_min_ms > 0 ? config->backoff_min_ms : FX_PUSH_DEFAULT_BACKOFF_MIN_MS;
	http->backoff_max_ms = config->backoff_max_ms > 0 ? config->backoff_max_ms : FX_PUSH_DEFAULT_BACKOFF_MAX_MS;
	if (http->backoff_max_ms < http->backoff_min_ms)
		http->backoff_max_ms = http->backoff_min_ms;
	http->jitter_seed = (unsigned)fx_mono_ms() ^ (unsigned)(uintptr_t)http;

	if (!config->url || !config->url[0]) {
		fx_error("push: no URL");
		goto fail;
	}
	if (strncmp(config->url, "http://", 7) != 0 && strncmp(config->url, "https://", 8) != 0) {
		fx_error("push: URL must start with http:// or https:// (got a URL with another scheme)");
		goto fail;
	}
	http->display_url = display_url_of(config->url);
	if (!http->display_url) {
		fx_error("push: invalid URL");
		goto fail;
	}
	const char *url = http->display_url;
	bool basic = config->basic_auth_user || config->basic_auth_password_file;
	if (basic && !(config->basic_auth_user && config->basic_auth_password_file)) {
		fx_error("push %s: basic auth needs both a user and a password file", url);
		goto fail;
	}
	if (basic && config->bearer_token_file) {
		fx_error("push %s: basic auth and a bearer token are exclusive", url);
		goto fail;
	}
	if ((config->cert_file != NULL) != (config->key_file != NULL)) {
		fx_error("push %s: a client certificate needs both a certificate and a key file", url);
		goto fail;
	}
	for (size_t i = 0; i < config->n_headers; i++) {
		char name[128];
		if (!header_valid(config->headers[i], name, sizeof(name))) {
			fx_error("push %s: header \"%.60s\" is not \"Name: value\"", url, config->headers[i]);
			goto fail;
		}
		for (size_t r = 0; r < sizeof(reserved_headers) / sizeof(reserved_headers[0]); r++)
			if (strcasecmp(name, reserved_headers[r]) == 0) {
				fx_error("push %s: header %s is reserved and cannot be set", url, name);
				goto fail;
			}
		if ((basic || config->bearer_token_file) && strcasecmp(name, "Authorization") == 0) {
			fx_error("push %s: header Authorization clashes with the configured auth", url);
			goto fail;
		}
	}
	if (basic && !(http->password = read_secret(config->basic_auth_password_file, "password")))
		goto fail;
	if (config->bearer_token_file && !(http->token = read_secret(config->bearer_token_file, "bearer token")))
		goto fail;
	const char *files[] = {config->ca_file, config->cert_file, config->key_file};
	for (size_t i = 0; i < 3; i++) {
		if (!files[i])
			continue;
		FILE *file = fopen(files[i], "r");
		if (!file) {
			fx_error("push %s: TLS file %s cannot be read: %s", url, files[i], strerror(errno));
			goto fail;
		}
		fclose(file);
	}

	for (size_t i = 0; i < n_fixed; i++) {
		struct curl_slist *list = curl_slist_append(http->headers, fixed_headers[i]);
		if (!list)
			goto fail;
		http->headers = list;
	}
	for (size_t i = 0; i < config->n_headers; i++) {
		struct curl_slist *list = curl_slist_append(http->headers, config->headers[i]);
		if (!list)
			goto fail;
		http->headers = list;
	}
	/* curl adds "Expect: 100-continue" to large POSTs: a round trip for nothing. */
	struct curl_slist *list = curl_slist_append(http->headers, "Expect:");
	if (!list)
		goto fail;
	http->headers = list;

	CURL *curl = http->curl = curl_easy_init();
	http->multi = curl_multi_init();
	if (!curl || !http->multi)
		goto fail;
	int rc = CURLE_OK;
	rc |= curl_easy_setopt(curl, CURLOPT_URL, config->url);
	rc |= curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	rc |= curl_easy_setopt(curl, CURLOPT_POST, 1L);
	rc |= curl_easy_setopt(curl, CURLOPT_HTTPHEADER, http->headers);
	rc |= curl_easy_setopt(curl, CURLOPT_USERAGENT, FX_PUSH_USER_AGENT);
	rc |= curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	rc |= curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	rc |= curl_easy_setopt(curl, CURLOPT_WRITEDATA, http);
	rc |= curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	rc |= curl_easy_setopt(curl, CURLOPT_HEADERDATA, http);
	rc |= curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	rc |= curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	rc |= curl_easy_setopt(curl, CURLOPT_XFERINFODATA, http);
	if (basic) {
		rc |= curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		rc |= curl_easy_setopt(curl, CURLOPT_USERNAME, config->basic_auth_user);
		rc |= curl_easy_setopt(curl, CURLOPT_PASSWORD, http->password);
	}
	if (http->token) {
		rc |= curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		rc |= curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, http->token);
	}
	if (config->ca_file)
		rc |= curl_easy_setopt(curl, CURLOPT_CAINFO, config->ca_file);
	if (config->cert_file) {
		rc |= curl_easy_setopt(curl, CURLOPT_SSLCERT, config->cert_file);
		rc |= curl_easy_setopt(curl, CURLOPT_SSLKEY, config->key_file);
	}
	if (config->insecure_skip_verify) {
		rc |= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
		rc |= curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (rc != CURLE_OK) {
		fx_error("push %s: libcurl refused an option", url);
		goto fail;
	}
	return http;
fail:
	fx_push_http_destroy(http);
	return NULL;
}

const char *fx_push_http_display_url(const struct fx_push_http *http) { return http->display_url; }

int64_t fx_push_backoff_next(const struct fx_push_http *http, int64_t current_ms)
{
	int64_t next = current_ms <= 0 ? http->backoff_min_ms : current_ms * 2;
	if (next > http->backoff_max_ms)
		next = http->backoff_max_ms;
	return next;
}

int64_t fx_push_backoff_jitter(struct fx_push_http *http, int64_t delay_ms)
{
	int64_t spread = delay_ms / 10;
	if (spread <= 0)
		return delay_ms;
	return delay_ms - (int64_t)((unsigned)rand_r(&http->jitter_seed) % (unsigned)spread);
}

static void printable_copy(char *out, size_t out_size, const char *in, size_t len)
{
	size_t n = len < out_size - 1 ? len : out_size - 1;
	if (n > 200)
		n = 200;
	for (size_t i = 0; i < n; i++)
		out[i] = (in[i] >= 32 && in[i] < 127) ? in[i] : '.';
	out[n] = '\0';
}

void fx_push_http_set_abort(struct fx_push_http *http, const atomic_bool *abort) { http->abort = abort; }

void fx_push_http_wakeup(struct fx_push_http *http) { curl_multi_wakeup(http->multi); }

/* Prepares a transfer's per-request state and timeouts. Returns the start time. */
static int64_t begin_transfer(struct fx_push_http *http, int64_t deadline_mono_ms, struct fx_push_result *result)
{
	memset(result, 0, sizeof(*result));
	result->retry_after_ms = -1;
	http->body_len = 0;
	http->retry_after_ms = -1;

	int64_t start = fx_mono_ms();
	int64_t timeout = http->timeout_ms;
	if (deadline_mono_ms > 0 && deadline_mono_ms - start < timeout)
		timeout = deadline_mono_ms - start;
	if (timeout < 1)
		timeout = 1;
	curl_easy_setopt(http->curl, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(http->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
	return start;
}

static void perform(struct fx_push_http *http, int64_t start, void (*tick)(void *opaque), void *tick_opaque,
		    struct fx_push_result *result);

void fx_push_http_send(struct fx_push_http *http, const void *body, size_t len, int64_t deadline_mono_ms,
		       void (*tick)(void *opaque), void *tick_opaque, struct fx_push_result *result)
{
	int64_t start = begin_transfer(http, deadline_mono_ms, result);
	curl_easy_setopt(http->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(http->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	perform(http, start, tick, tick_opaque, result);
}

struct stream_source {
	fx_push_read_fn read;
	void *opaque;
};

static size_t on_read(char *buffer, size_t size, size_t n, void *opaque)
{
	const struct stream_source *source = opaque;
	size_t got = source->read(source->opaque, buffer, size * n);
	return got == FX_PUSH_READ_ABORT ? CURL_READFUNC_ABORT : got;
}

void fx_push_http_send_stream(struct fx_push_http *http, fx_push_read_fn read, void *read_opaque,
			      int64_t deadline_mono_ms, void (*tick)(void *opaque), void *tick_opaque,
			      struct fx_push_result *result)
{
	struct stream_source source = {read, read_opaque};
	int64_t start = begin_transfer(http, deadline_mono_ms, result);
	/* No POSTFIELDS and an unknown size: curl reads the body from on_read, chunked. */
	curl_easy_setopt(http->curl, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(http->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
	curl_easy_setopt(http->curl, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(http->curl, CURLOPT_READDATA, &source);
	perform(http, start, tick, tick_opaque, result);
	curl_easy_setopt(http->curl, CURLOPT_READFUNCTION, NULL);
	curl_easy_setopt(http->curl, CURLOPT_READDATA, NULL);
}

static void perform(struct fx_push_http *http, int64_t start, void (*tick)(void *opaque), void *tick_opaque,
		    struct fx_push_result *result)
{
	CURLcode code = CURLE_FAILED_INIT;
	if (curl_multi_add_handle(http->multi, http->curl) == CURLM_OK) {
		for (;;) {
			int running = 0;
			if (curl_multi_perform(http->multi, &running) != CURLM_OK)
				break;
			struct CURLMsg *message;
			int left;
			while ((message = curl_multi_info_read(http->multi, &left)))
				if (message->msg == CURLMSG_DONE)
					code = message->data.result;
			if (!running)
				break;
			if (http->abort && atomic_load(http->abort)) {
				code = CURLE_ABORTED_BY_CALLBACK;
				break;
			}
			/* The owner's interval keeps ticking while a slow request is on the wire. */
			if (tick)
				tick(tick_opaque);
			curl_multi_poll(http->multi, NULL, 0, 50, NULL);
		}
		curl_multi_remove_handle(http->multi, http->curl);
	}
	result->duration_ms = fx_mono_ms() - start;
	if (code != CURLE_OK) {
		result->status = 0;
		snprintf(result->error, sizeof(result->error), "%s", curl_easy_strerror(code));
	} else {
		long status = 0;
		curl_easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &status);
		result->status = status;
		result->retry_after_ms = http->retry_after_ms;
		printable_copy(result->body_start, sizeof(result->body_start), http->body, http->body_len);
	}
	if (http->stats)
		stats_record_request(http->stats, result);
}

enum fx_push_outcome fx_push_outcome_of(const struct fx_push_result *result)
{
	if (result->status >= 200 && result->status < 300)
		return FX_PUSH_OK;
	if (result->status == 0 || result->status >= 500 || result->status == 429)
		return FX_PUSH_RETRY;
	return FX_PUSH_DROP;
}

void fx_push_retry_ok(struct fx_push_retry *retry, const char *what, const char *url)
{
	if (retry->failing)
		fx_info("%s %s: delivering again", what, url);
	*retry = (struct fx_push_retry){0};
}

void fx_push_retry_failed(struct fx_push_retry *retry, struct fx_push_http *http,
			  const struct fx_push_result *result, bool jitter, const char *what, const char *url)
{
	retry->backoff_ms = fx_push_backoff_next(http, retry->backoff_ms);
	int64_t delay = jitter ? fx_push_backoff_jitter(http, retry->backoff_ms) : retry->backoff_ms;
	if (result->retry_after_ms > delay)
		delay = result->retry_after_ms;
	retry->retry_at_ms = fx_mono_ms() + delay;
	if (!retry->failing) {
		if (result->status)
			fx_warn("%s %s: HTTP %ld, retrying with backoff: %s", what, url, result->status,
				result->body_start);
		else
			fx_warn("%s %s: %s, retrying with backoff", what, url, result->error);
	}
	retry->failing = true;
}
