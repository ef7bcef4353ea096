/* The HTTP client (libcurl): one easy handle driven by a multi handle per endpoint. Every HTTP request the
 * exporter makes goes through here: remote write (rw_sender.c), the Pushgateway (pushgateway.c) and the
 * AS-name download (asn_names.c).
 *
 * DESIGN
 * - libcurl is initialised once for the process (pthread_once in create) and never cleaned up: the
 *   process exits with it, and no other thread can race a cleanup.
 * - A struct fx_http_client belongs to one thread: it holds the curl handles and the per-transfer state
 *   (the start of the response body, Retry-After), so only that thread sends with it. Other threads may
 *   only call fx_http_client_wakeup, after setting the abort flag the owner handed over.
 * - The transfer is driven by curl_multi so the owner's thread keeps ticking (its interval) while a slow
 *   request is on the wire, and so a wake-up interrupts the wait at once.
 * - Nothing is allocated per request: the body is borrowed (or streamed), the response's first
 *   RESPONSE_KEEP bytes go to a fixed buffer (or the whole body to the caller's bounded fx_buf).
 * - Secrets (password, token, URL userinfo) are handed to curl and never logged; they are wiped on destroy.
 *   The URL is logged and labelled without userinfo and query.
 *
 * Thread: see http_client.h. */
#include "fx/http_client.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fx/clock.h"
#include "fx/log.h"

/* Of a response body, only this much is kept (for the log) unless the request gives a buffer. */
#define RESPONSE_KEEP 4096

struct fx_http_client {
	CURL *curl;
	CURLM *multi; /* drives the one transfer, so the owner's thread can tick and be woken meanwhile */
	struct curl_slist *headers;
	struct curl_slist
	    *alt_headers; /* fx_http_client_set_alt_headers: other fixed headers, the same rest */
	size_t n_fixed;
	char *display_url;
	char *password; /* secret */
	char *token;	/* secret */
	int64_t timeout_ms;
	bool has_body; /* every method but GET */
	const atomic_bool *abort;

	/* Per transfer. */
	char body[RESPONSE_KEEP];
	size_t body_len;
	struct fx_buf *response;
	const struct fx_http_request *request; /* for its on_header */
	bool too_big;
	char retry_after[64];
	char error[CURL_ERROR_SIZE];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static bool global_ok;

static void global_init(void)
{
	global_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* ---- Create: the options that need the filesystem, the headers, the curl handle ---- */

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

/* url less its userinfo and fragment, and less its query unless keep_query. */
static char *strip_url(const char *url, bool keep_query)
{
	CURLU *parsed = curl_url();
	char *text = NULL, *copy = NULL;
	if (!parsed || curl_url_set(parsed, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto done;
	curl_url_set(parsed, CURLUPART_USER, NULL, 0);
	curl_url_set(parsed, CURLUPART_PASSWORD, NULL, 0);
	curl_url_set(parsed, CURLUPART_OPTIONS, NULL, 0);
	if (!keep_query)
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

static char *display_url_of(const char *url)
{
	return strip_url(url, false);
}

char *fx_http_url_without_userinfo(const char *url)
{
	return strip_url(url, true);
}

/* What config.c cannot check: pairs it leaves open, line breaks in a header value, files to read. */
static int check_options(struct fx_http_client *client, const struct fx_http_client_config *config)
{
	const char *url = client->display_url;
	bool basic = config->basic_auth_user || config->basic_auth_password_file;
	/* config.c refuses a password file without a user, and a token with a password file. */
	assert(!config->basic_auth_password_file || config->basic_auth_user);
	assert(!(config->basic_auth_password_file && config->bearer_token_file));
	assert(!config->key_file || config->cert_file);
	if (basic && !config->basic_auth_password_file) {
		fx_error("push %s: basic auth needs both a user and a password file", url);
		return -1;
	}
	if (config->cert_file && !config->key_file) {
		fx_error("push %s: a client certificate needs both a certificate and a key file", url);
		return -1;
	}
	for (size_t i = 0; i < config->n_headers; i++)
		if (strpbrk(config->headers[i], "\r\n")) {
			fx_error("push %s: header \"%.60s\" is not \"Name: value\"", url, config->headers[i]);
			return -1;
		}
	if (basic && !(client->password = read_secret(config->basic_auth_password_file, "password")))
		return -1;
	if (config->bearer_token_file &&
	    !(client->token = read_secret(config->bearer_token_file, "bearer token")))
		return -1;
	const char *files[] = {config->ca_file, config->cert_file, config->key_file};
	for (size_t i = 0; i < 3; i++) {
		if (!files[i])
			continue;
		FILE *file = fopen(files[i], "r");
		if (!file) {
			fx_error("push %s: TLS file %s cannot be read: %s", url, files[i], strerror(errno));
			return -1;
		}
		fclose(file);
	}
	return 0;
}

static int append_headers(struct fx_http_client *client, const char *const *headers, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct curl_slist *list = curl_slist_append(client->headers, headers[i]);
		if (!list)
			return -1;
		client->headers = list;
	}
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct fx_http_client *client = opaque;
	size_t n = size * nmemb;
	size_t keep = sizeof(client->body) - client->body_len;
	if (keep > n)
		keep = n;
	memcpy(client->body + client->body_len, data, keep);
	client->body_len += keep;
	if (client->response) {
		int rc = fx_buf_append(client->response, data, n);
		if (rc != 0) {
			client->too_big = rc == FX_BUF_E_TOO_BIG;
			return 0; /* anything but n makes curl fail with CURLE_WRITE_ERROR */
		}
	}
	return n; /* without a response buffer the rest is read and discarded */
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
	struct fx_http_client *client = opaque;
	size_t n = size * nmemb;
	if (client->request && client->request->on_header)
		client->request->on_header(client->request->header_opaque, data, n);
	static const char name[] = "retry-after:";
	size_t name_len = sizeof(name) - 1;
	if (n <= name_len || n >= 256 || strncasecmp(data, name, name_len) != 0)
		return n;
	const char *start = data + name_len, *end = data + n;
	while (start < end && (*start == ' ' || *start == '\t'))
		start++;
	while (end > start && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	snprintf(client->retry_after, sizeof(client->retry_after), "%.*s", (int)(end - start), start);
	return n;
}

/* Aborts a transfer when the owner is stopping (the multi loop checks too; this covers curl's own waits). */
static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct fx_http_client *client = opaque;
	return client->abort && atomic_load(client->abort) ? 1 : 0;
}

static int set_auth_and_tls(struct fx_http_client *client, const struct fx_http_client_config *config)
{
	CURL *curl = client->curl;
	int rc = CURLE_OK;
	if (client->password) {
		rc |= curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		rc |= curl_easy_setopt(curl, CURLOPT_USERNAME, config->basic_auth_user);
		rc |= curl_easy_setopt(curl, CURLOPT_PASSWORD, client->password);
	}
	if (client->token) {
		rc |= curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		rc |= curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, client->token);
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
	return rc;
}

static int set_options(struct fx_http_client *client, const struct fx_http_client_config *config,
		       const char *method)
{
	CURL *curl = client->curl;
	int rc = CURLE_OK;
	rc |= curl_easy_setopt(curl, CURLOPT_URL, config->url);
	if (client->has_body) {
		rc |= curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
		rc |= curl_easy_setopt(curl, CURLOPT_POST, 1L);
	} else {
		rc |= curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	}
	rc |= curl_easy_setopt(curl, CURLOPT_HTTPHEADER, client->headers);
	rc |= curl_easy_setopt(curl, CURLOPT_USERAGENT, FX_HTTP_USER_AGENT);
	rc |= curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	rc |= curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, client->error);
	rc |= curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	rc |= curl_easy_setopt(curl, CURLOPT_WRITEDATA, client);
	rc |= curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	rc |= curl_easy_setopt(curl, CURLOPT_HEADERDATA, client);
	rc |= curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	rc |= curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	rc |= curl_easy_setopt(curl, CURLOPT_XFERINFODATA, client);
	if (config->ignore_proxy_env)
		rc |= curl_easy_setopt(curl, CURLOPT_PROXY, "");
	if (config->accept_encoding)
		rc |= curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
	return rc | set_auth_and_tls(client, config);
}

void fx_http_client_destroy(struct fx_http_client *client)
{
	if (!client)
		return;
	if (client->curl)
		curl_easy_cleanup(client->curl);
	if (client->multi)
		curl_multi_cleanup(client->multi);
	curl_slist_free_all(client->headers);
	curl_slist_free_all(client->alt_headers);
	free(client->display_url);
	if (client->password) {
		memset(client->password, 0, strlen(client->password));
		free(client->password);
	}
	if (client->token) {
		memset(client->token, 0, strlen(client->token));
		free(client->token);
	}
	free(client);
}

struct fx_http_client *fx_http_client_create(const struct fx_http_client_config *config, const char *method,
					     const char *const *fixed_headers, size_t n_fixed)
{
	assert(config->url &&
	       (!strncasecmp(config->url, "http://", 7) || !strncasecmp(config->url, "https://", 8)));
	assert(config->timeout_ms > 0);
	pthread_once(&global_once, global_init);
	if (!global_ok) {
		fx_error("http: curl_global_init failed");
		return NULL;
	}
	struct fx_http_client *client = calloc(1, sizeof(*client));
	if (!client)
		return NULL;
	client->timeout_ms = config->timeout_ms;
	client->has_body = strcmp(method, "GET") != 0;
	client->display_url = display_url_of(config->url);
	if (!client->display_url) {
		fx_error("http: invalid URL");
		goto fail;
	}
	if (check_options(client, config) != 0)
		goto fail;
	/* curl adds "Expect: 100-continue" to large POSTs: a round trip for nothing. */
	static const char *const no_expect[] = {"Expect:"};
	client->n_fixed = n_fixed;
	if (append_headers(client, fixed_headers, n_fixed) ||
	    append_headers(client, config->headers, config->n_headers) ||
	    (client->has_body && append_headers(client, no_expect, 1)))
		goto fail;
	client->curl = curl_easy_init();
	client->multi = curl_multi_init();
	if (!client->curl || !client->multi)
		goto fail;
	if (set_options(client, config, method) != CURLE_OK) {
		fx_error("http %s: libcurl refused an option", client->display_url);
		goto fail;
	}
	return client;
fail:
	fx_http_client_destroy(client);
	return NULL;
}

int fx_http_client_set_alt_headers(struct fx_http_client *client, const char *const *fixed_headers,
				   size_t n_fixed)
{
	struct curl_slist *list = NULL;
	for (size_t i = 0; i < n_fixed; i++) {
		struct curl_slist *longer = curl_slist_append(list, fixed_headers[i]);
		if (!longer)
			goto fail;
		list = longer;
	}
	/* The user's headers and "Expect:", as the main set has them after its own fixed ones. */
	const struct curl_slist *rest = client->headers;
	for (size_t i = 0; rest && i < client->n_fixed; i++)
		rest = rest->next;
	for (; rest; rest = rest->next) {
		struct curl_slist *longer = curl_slist_append(list, rest->data);
		if (!longer)
			goto fail;
		list = longer;
	}
	curl_slist_free_all(client->alt_headers);
	client->alt_headers = list;
	return 0;
fail:
	curl_slist_free_all(list);
	return -1;
}

/* ---- Send ---- */

const char *fx_http_client_display_url(const struct fx_http_client *client)
{
	return client->display_url;
}

void fx_http_client_set_abort(struct fx_http_client *client, const atomic_bool *abort)
{
	client->abort = abort;
}

void fx_http_client_wakeup(struct fx_http_client *client)
{
	curl_multi_wakeup(client->multi);
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

struct stream_source {
	fx_http_read_fn read;
	void *opaque;
};

static size_t on_read(char *buffer, size_t size, size_t n, void *opaque)
{
	const struct stream_source *source = opaque;
	size_t got = source->read(source->opaque, buffer, size * n);
	return got == FX_HTTP_READ_ABORT ? CURL_READFUNC_ABORT : got;
}

/* Sets the per-request state, the timeouts and the body of one transfer. Returns the start time. */
static int64_t begin_transfer(struct fx_http_client *client, const struct fx_http_request *request,
			      struct stream_source *source)
{
	client->body_len = 0;
	client->retry_after[0] = '\0';
	client->error[0] = '\0';
	client->too_big = false;
	client->response = request->response;
	client->request = request;
	curl_easy_setopt(client->curl, CURLOPT_HTTPHEADER,
			 request->alt_headers && client->alt_headers ? client->alt_headers : client->headers);

	int64_t start = fx_mono_ms();
	int64_t timeout = client->timeout_ms;
	if (request->deadline_mono_ms > 0 && request->deadline_mono_ms - start < timeout)
		timeout = request->deadline_mono_ms - start;
	if (timeout < 1)
		timeout = 1;
	CURL *curl = client->curl;
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
	curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
			 (curl_off_t)(request->response ? request->response->max : 0));
	if (!client->has_body)
		return start;
	if (request->read) {
		/* No POSTFIELDS and an unknown size: curl reads the body from on_read, chunked. */
		*source = (struct stream_source){request->read, request->read_opaque};
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
		curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(curl, CURLOPT_READDATA, source);
	} else {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request->body ? request->body : "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->len);
	}
	return start;
}

/* Drives the transfer to its end, an abort or a failure of curl_multi. Returns curl's result. */
static CURLcode perform(struct fx_http_client *client, const struct fx_http_request *request)
{
	CURLcode code = CURLE_FAILED_INIT;
	if (curl_multi_add_handle(client->multi, client->curl) != CURLM_OK)
		return code;
	for (;;) {
		int running = 0;
		if (curl_multi_perform(client->multi, &running) != CURLM_OK)
			break;
		struct CURLMsg *message;
		int left;
		while ((message = curl_multi_info_read(client->multi, &left)))
			if (message->msg == CURLMSG_DONE)
				code = message->data.result;
		if (!running)
			break;
		if (client->abort && atomic_load(client->abort)) {
			code = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		/* The owner's interval keeps ticking while a slow request is on the wire. */
		if (request->tick)
			request->tick(request->tick_opaque);
		curl_multi_poll(client->multi, NULL, 0, 50, NULL);
	}
	curl_multi_remove_handle(client->multi, client->curl);
	return code;
}

void fx_http_client_send(struct fx_http_client *client, const struct fx_http_request *request,
			 struct fx_http_result *result)
{
	struct stream_source source;
	memset(result, 0, sizeof(*result));
	int64_t start = begin_transfer(client, request, &source);
	CURLcode code = perform(client, request);
	if (request->read) {
		curl_easy_setopt(client->curl, CURLOPT_READFUNCTION, NULL);
		curl_easy_setopt(client->curl, CURLOPT_READDATA, NULL);
	}
	client->response = NULL;
	client->request = NULL;
	result->duration_ms = fx_mono_ms() - start;
	result->too_big = client->too_big || code == CURLE_FILESIZE_EXCEEDED;
	if (code != CURLE_OK) {
		result->status = 0;
		/* curl's own message names the host, port and time; its generic text when it left none. */
		snprintf(result->error, sizeof(result->error), "%s",
			 client->error[0] ? client->error : curl_easy_strerror(code));
		return;
	}
	curl_easy_getinfo(client->curl, CURLINFO_RESPONSE_CODE, &result->status);
	snprintf(result->retry_after, sizeof(result->retry_after), "%s", client->retry_after);
	printable_copy(result->body_start, sizeof(result->body_start), client->body, client->body_len);
}
