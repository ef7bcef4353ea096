/* fx_http_server on loopback, driven by libcurl: routes, methods, content negotiation (gzip), readiness,
 * the scrape self-metrics, listen-address parsing, bind failures and the idle-connection timeout. */
#include "fx/http_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "fx/classify.h"
#include "fx/expo_text.h"

static const char router[] = "edge-1.example.net";
static const char asn_text[] = "15169\tGOOGLE - Google LLC, US\n64500\tEXAMPLE \"QUOTED\", ZZ\n";

struct test_context {
	atomic_bool ready;
	atomic_bool fail_snapshot;
	atomic_bool with_self;		       /* add the server's own self-metrics to snapshots */
	struct fx_http_server *_Atomic server; /* set once created, for fx_http_server_collect */
	atomic_int snapshots_taken;
};

/* A small snapshot: the same every time unless with_self is set. */
static struct fx_snapshot *build_snapshot(struct test_context *context)
{
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	if (!snapshot)
		return NULL;
	snapshot->label_mask = FX_LABEL_ALL;
	snapshot->n_series = 3;
	snapshot->series = calloc(3, sizeof(struct fx_series));
	snapshot->names = fx_asn_map_parse(asn_text, sizeof(asn_text) - 1, NULL);
	snapshot->self = fx_family_list_create();
	if (!snapshot->series || !snapshot->names || !snapshot->self) {
		fx_snapshot_destroy(snapshot);
		return NULL;
	}
	struct fx_series *series = snapshot->series;
	series[0].key = (struct fx_series_key){router, 15169, 64500, 1, 2, FX_LABEL_ALL, 0, {0}};
	series[0].bytes[FX_DIR_RECEIVE] = 1500;
	series[0].packets[FX_DIR_RECEIVE] = 1;
	series[0].seen = 1u << FX_DIR_RECEIVE;
	series[1].key = (struct fx_series_key){router, 64500, 15169, 2, 1, FX_LABEL_ALL, 0, {0}};
	series[1].bytes[FX_DIR_TRANSMIT] = 18446744073709551615u;
	series[1].packets[FX_DIR_TRANSMIT] = 12345678901234567;
	series[1].seen = 1u << FX_DIR_TRANSMIT;
	series[2].key = (struct fx_series_key){router, 64500, 64501, 3, 3, FX_LABEL_ALL, 0, {0}};
	series[2].bytes[FX_DIR_TRANSMIT] = 9;
	series[2].packets[FX_DIR_TRANSMIT] = 1;
	series[2].seen = 1u << FX_DIR_TRANSMIT;
	int rc = fx_family_begin(snapshot->self, "flow_exporter_records_total", "Records consumed.",
				 FX_METRIC_COUNTER);
	if (!rc)
		rc = fx_family_add_u64(snapshot->self, 42, 0, NULL);
	if (!rc && context && context->with_self && context->server)
		rc = fx_http_server_collect(context->server, snapshot->self);
	if (rc) {
		fx_snapshot_destroy(snapshot);
		return NULL;
	}
	return snapshot;
}

static struct fx_snapshot *hook_take_snapshot(void *opaque)
{
	struct test_context *context = opaque;
	context->snapshots_taken++;
	return context->fail_snapshot ? NULL : build_snapshot(context);
}

static bool hook_is_ready(void *opaque)
{
	struct test_context *context = opaque;
	return context->ready;
}

/* What /metrics must answer: the renderer's output for the same snapshot. */
static void expected_body(struct fx_buf *out)
{
	struct fx_snapshot *snapshot = build_snapshot(NULL);
	CHECK(snapshot != NULL);
	fx_buf_init(out, 1u << 20);
	CHECK(fx_expo_text_render(snapshot, out) == 0);
	fx_snapshot_destroy(snapshot);
}

/* ---- A small libcurl client ---------------------------------------------------------------------------- */

struct reply {
	long status;
	struct fx_buf body;
	struct fx_buf headers; /* raw header lines */
};

static size_t collect(char *data, size_t size, size_t n, void *buf)
{
	return fx_buf_append(buf, data, size * n) == 0 ? size * n : 0;
}

static void reply_free(struct reply *reply)
{
	fx_buf_free(&reply->body);
	fx_buf_free(&reply->headers);
}

/* The value of a response header (first occurrence, case-insensitive name), copied to value; or false. */
static bool reply_header(const struct reply *reply, const char *name, char *value, size_t size)
{
	size_t name_len = strlen(name);
	const char *line = reply->headers.data;
	while (line && *line) {
		size_t line_len = strcspn(line, "\r\n");
		if (line_len > name_len && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
			const char *v = line + name_len + 1;
			while (*v == ' ')
				v++;
			snprintf(value, size, "%.*s", (int)(line_len - (size_t)(v - line)), v);
			return true;
		}
		line += line_len;
		while (*line == '\r' || *line == '\n')
			line++;
	}
	return false;
}

/* method: "GET", "HEAD", "POST"; accept_encoding: an Accept-Encoding header, or NULL for none. */
static struct reply request(const char *url, const char *method, const char *accept_encoding)
{
	struct reply reply = {0};
	fx_buf_init(&reply.body, 64u << 20);
	fx_buf_init(&reply.headers, 1u << 20);
	CURL *curl = curl_easy_init();
	CHECK(curl != NULL);
	struct curl_slist *headers = NULL;
	char header[256];
	if (accept_encoding) {
		snprintf(header, sizeof(header), "Accept-Encoding: %s", accept_encoding);
		headers = curl_slist_append(headers, header);
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "a=b");
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	}
	CURLcode rc = curl_easy_perform(curl);
	if (rc != CURLE_OK)
		fprintf(stderr, "curl %s %s: %s\n", method, url, curl_easy_strerror(rc));
	CHECK(rc == CURLE_OK);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
	CHECK(fx_buf_reserve(&reply.body, 0) == 0); /* a NUL-terminated body even when empty */
	return reply;
}

/* Inflates a gzip body; returns 0 and the text in out. */
static int gunzip(const struct fx_buf *in, struct fx_buf *out)
{
	z_stream stream;
	memset(&stream, 0, sizeof(stream));
	if (inflateInit2(&stream, 15 + 16) != Z_OK)
		return -1;
	stream.next_in = (Bytef *)in->data;
	stream.avail_in = (uInt)in->len;
	int zrc = Z_OK;
	while (zrc == Z_OK) {
		if (fx_buf_reserve(out, 65536)) {
			zrc = Z_MEM_ERROR;
			break;
		}
		stream.next_out = (Bytef *)out->data + out->len;
		stream.avail_out = 65536;
		zrc = inflate(&stream, Z_NO_FLUSH);
		out->len += 65536 - stream.avail_out;
	}
	bool complete = zrc == Z_STREAM_END && stream.avail_in == 0;
	inflateEnd(&stream);
	if (out->data)
		out->data[out->len] = '\0';
	return complete ? 0 : -1;
}

static bool body_equals(const struct fx_buf *body, const struct fx_buf *expected)
{
	return body->len == expected->len && memcmp(body->data, expected->data, expected->len) == 0;
}

/* ---- Tests --------------------------------------------------------------------------------------------- */

static void check_metrics_identity(const char *base, const char *accept_encoding,
				   const struct fx_buf *expected)
{
	char url[256], value[256];
	snprintf(url, sizeof(url), "%s/metrics", base);
	struct reply reply = request(url, "GET", accept_encoding);
	CHECK_EQ_U64(reply.status, 200);
	CHECK(reply_header(&reply, "Content-Type", value, sizeof(value)));
	CHECK_STR(value, FX_TEXT_CONTENT_TYPE);
	CHECK(!reply_header(&reply, "Content-Encoding", value, sizeof(value)));
	CHECK(body_equals(&reply.body, expected));
	if (!body_equals(&reply.body, expected))
		fprintf(stderr, "Accept-Encoding %s: identity body differs:\n%s\n",
			accept_encoding ? accept_encoding : "(none)", reply.body.data);
	reply_free(&reply);
}

static void check_metrics_gzip(const char *base, const char *accept_encoding, const struct fx_buf *expected)
{
	char url[256], value[256];
	snprintf(url, sizeof(url), "%s/metrics", base);
	struct reply reply = request(url, "GET", accept_encoding);
	CHECK_EQ_U64(reply.status, 200);
	CHECK(reply_header(&reply, "Content-Type", value, sizeof(value)));
	CHECK_STR(value, FX_TEXT_CONTENT_TYPE);
	CHECK(reply_header(&reply, "Content-Encoding", value, sizeof(value)));
	CHECK_STR(value, "gzip");
	CHECK(reply_header(&reply, "Vary", value, sizeof(value)));
	CHECK_STR(value, "Accept, Accept-Encoding"); /* the format and the coding both depend on them */
	struct fx_buf decoded;
	fx_buf_init(&decoded, 64u << 20);
	CHECK(gunzip(&reply.body, &decoded) == 0);
	CHECK(body_equals(&decoded, expected));
	if (!body_equals(&decoded, expected))
		fprintf(stderr, "Accept-Encoding %s: gzip body differs\n", accept_encoding);
	fx_buf_free(&decoded);
	reply_free(&reply);
}

/* /metrics with and without gzip, by Accept-Encoding. */
static void check_route_encodings(const char *base, const struct fx_buf *expected)
{
	/* /metrics, identity: no Accept-Encoding, refused gzip, other codings only. */
	check_metrics_identity(base, NULL, expected);
	check_metrics_identity(base, "gzip;q=0", expected);
	check_metrics_identity(base, "GZIP ; Q=0.000, deflate", expected);
	check_metrics_identity(base, "identity", expected);
	check_metrics_identity(base, "deflate, br", expected);
	check_metrics_identity(base, "gzip;q=0, *", expected); /* an explicit refusal beats the wildcard */
	check_metrics_identity(base, "*;q=0", expected);
	check_metrics_identity(base, "gzipx, xgzip", expected);
	/* /metrics, gzip. */
	check_metrics_gzip(base, "gzip", expected);
	check_metrics_gzip(base, "deflate, GZip;q=0.5", expected);
	check_metrics_gzip(base, "br;q=1.0, gzip;q=0.001", expected);
	check_metrics_gzip(base, "*", expected);
	check_metrics_gzip(base, "identity;q=0.5, *;q=0.1", expected);
	check_metrics_gzip(base, "x-gzip", expected);
	check_metrics_gzip(base, "gzip, deflate, br", expected); /* what curl and browsers send */
}

/* HEAD: the headers of a GET, no body. */
static void check_route_head(const char *base, const struct fx_buf *expected)
{
	char url[128], value[256];
	snprintf(url, sizeof(url), "%s/metrics", base);
	struct reply reply = request(url, "HEAD", NULL);
	CHECK_EQ_U64(reply.status, 200);
	CHECK(reply_header(&reply, "Content-Type", value, sizeof(value)));
	CHECK_STR(value, FX_TEXT_CONTENT_TYPE);
	CHECK(reply_header(&reply, "Content-Length", value, sizeof(value)));
	CHECK_EQ_U64(strtoull(value, NULL, 10), expected->len);
	CHECK_EQ_U64(reply.body.len, 0);
	reply_free(&reply);
}

/* Not found; methods other than GET and HEAD. */
static void check_route_not_found_and_methods(const char *base)
{
	char url[128], value[256];
	snprintf(url, sizeof(url), "%s/nope", base);
	struct reply reply = request(url, "GET", NULL);
	CHECK_EQ_U64(reply.status, 404);
	reply_free(&reply);
	snprintf(url, sizeof(url), "%s/metricsx", base);
	reply = request(url, "GET", NULL);
	CHECK_EQ_U64(reply.status, 404);
	reply_free(&reply);
	const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS"};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		snprintf(url, sizeof(url), "%s/metrics", base);
		reply = request(url, methods[i], NULL);
		CHECK_EQ_U64(reply.status, 405);
		CHECK(reply_header(&reply, "Allow", value, sizeof(value)));
		CHECK_STR(value, "GET, HEAD");
		reply_free(&reply);
	}
}

/* Health and readiness. */
static void check_route_health(const char *base, struct test_context *context)
{
	char url[128];
	snprintf(url, sizeof(url), "%s/-/healthy", base);
	struct reply reply = request(url, "GET", NULL);
	CHECK_EQ_U64(reply.status, 200);
	CHECK_STR(reply.body.data, "Healthy\n");
	reply_free(&reply);
	snprintf(url, sizeof(url), "%s/-/ready", base);
	reply = request(url, "GET", NULL);
	CHECK_EQ_U64(reply.status, 503);
	reply_free(&reply);
	context->ready = true;
	reply = request(url, "GET", NULL);
	CHECK_EQ_U64(reply.status, 200);
	CHECK_STR(reply.body.data, "Ready\n");
	reply_free(&reply);
}

/* The landing page. */
static void check_route_landing(const char *base)
{
	char url[128], value[256];
	snprintf(url, sizeof(url), "%s/", base);
	struct reply reply = request(url, "GET", NULL);
	CHECK_EQ_U64(reply.status, 200);
	CHECK(reply_header(&reply, "Content-Type", value, sizeof(value)));
	CHECK_STR(value, "text/html; charset=utf-8");
	CHECK(strstr(reply.body.data, "<title>flow-exporter</title>") != NULL);
	CHECK(strstr(reply.body.data, "href=\"/metrics\"") != NULL);
	CHECK(strstr(reply.body.data, FX_VERSION) != NULL);
	reply_free(&reply);
}

/* No snapshot: 500, counted; then the self-metrics of every request so far. */
static void check_route_failure_and_self(const char *base, struct test_context *context,
					 struct fx_http_server *server, const struct fx_buf *expected)
{
	char url[128];
	context->fail_snapshot = true;
	snprintf(url, sizeof(url), "%s/metrics", base);
	struct reply reply = request(url, "GET", NULL);
	CHECK_EQ_U64(reply.status, 500);
	reply_free(&reply);
	context->fail_snapshot = false;

	/* Self-metrics: 8 identity scrapes, 7 gzip and 1 HEAD so far (HEAD renders the body too). */
	context->with_self = true;
	reply = request(url, "GET", NULL);
	CHECK_EQ_U64(reply.status, 200);
	CHECK(strstr(reply.body.data, "\nflow_exporter_scrapes_total{encoding=\"identity\"} 9\n") != NULL);
	CHECK(strstr(reply.body.data, "\nflow_exporter_scrapes_total{encoding=\"gzip\"} 7\n") != NULL);
	CHECK(strstr(reply.body.data, "\nflow_exporter_scrape_errors_total 1\n") != NULL);
	CHECK(strstr(reply.body.data, "# TYPE flow_exporter_scrape_duration_seconds gauge\n") != NULL);
	/* The last scrape before this one was the 500: its size is the last successful one (the HEAD). */
	char bytes_line[64];
	snprintf(bytes_line, sizeof(bytes_line), "\nflow_exporter_scrape_bytes %zu\n", expected->len);
	CHECK(strstr(reply.body.data, bytes_line) != NULL);
	if (!strstr(reply.body.data, bytes_line))
		fprintf(stderr, "%s\n", reply.body.data);
	reply_free(&reply);
	struct fx_family_list *self = fx_family_list_create();
	CHECK(fx_http_server_collect(server, self) == 0);
	const struct fx_family *duration = fx_family_list_get(self, 2);
	CHECK(duration && strcmp(duration->name, "flow_exporter_scrape_duration_seconds") == 0);
	CHECK(duration && duration->n_samples == 1 && duration->samples[0].real > 0 &&
	      duration->samples[0].real < 10);
	fx_family_list_destroy(self);
}

static void test_routes(void)
{
	struct test_context context = {0};
	struct fx_http_hooks hooks = {hook_take_snapshot, hook_is_ready, &context};
	struct fx_http_server *server = fx_http_server_create("127.0.0.1:0", &hooks);
	CHECK(server != NULL);
	if (!server)
		return;
	context.server = server;
	unsigned port = fx_http_server_port(server);
	CHECK(port > 0 && port < 65536);
	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", port);
	struct fx_buf expected;
	expected_body(&expected);

	check_route_encodings(base, &expected);
	check_route_head(base, &expected);
	check_route_not_found_and_methods(base);
	check_route_health(base, &context);
	check_route_landing(base);
	check_route_failure_and_self(base, &context, server, &expected);

	fx_buf_free(&expected);
	fx_http_server_destroy(server);
}

static void test_addr_parse(void)
{
	struct sockaddr_storage sa;
	socklen_t len = 0;

	CHECK(fx_http_addr_parse(":9590", &sa, &len) == 0);
	CHECK(sa.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6));
	CHECK(IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&sa)->sin6_addr));
	CHECK_EQ_U64(ntohs(((struct sockaddr_in6 *)&sa)->sin6_port), 9590);

	CHECK(fx_http_addr_parse("127.0.0.1:0", &sa, &len) == 0);
	CHECK(sa.ss_family == AF_INET && len == sizeof(struct sockaddr_in));
	CHECK_EQ_U64(ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr), 0x7f000001);
	CHECK_EQ_U64(ntohs(((struct sockaddr_in *)&sa)->sin_port), 0);

	CHECK(fx_http_addr_parse("0.0.0.0:65535", &sa, &len) == 0);
	CHECK_EQ_U64(ntohs(((struct sockaddr_in *)&sa)->sin_port), 65535);

	CHECK(fx_http_addr_parse("[::1]:0", &sa, &len) == 0);
	CHECK(sa.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6));
	CHECK(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&sa)->sin6_addr));
	CHECK(fx_http_addr_parse("[2001:db8::1]:9590", &sa, &len) == 0);
	CHECK(fx_http_addr_parse("[fe80::1%1]:9590", &sa, &len) == 0);
	CHECK_EQ_U64(((struct sockaddr_in6 *)&sa)->sin6_scope_id, 1);
	CHECK(fx_http_addr_parse("[fe80::1%lo]:9590", &sa, &len) == 0);
	CHECK(((struct sockaddr_in6 *)&sa)->sin6_scope_id != 0);

	const char *bad[] = {
	    "localhost:9590",
	    "1.2.3.4",
	    ":99999",
	    "",
	    ":",
	    "127.0.0.1:",
	    "127.0.0.1:-1",
	    "127.0.0.1:+80",
	    "127.0.0.1:0x50",
	    "127.0.0.1:080000",
	    "1.2.3:80",
	    "1.2.3.256:80",
	    "::1:9590",
	    "[::1]",
	    "[::1:9590",
	    "::1]:9590",
	    "[]:9590",
	    "[127.0.0.1]:9590",
	    " 127.0.0.1:9590",
	    "127.0.0.1:9590 ",
	    "[fe80::1%]:80",
	    "[fe80::1%no-such-if0]:80",
	    "example.com:80",
	    "http://127.0.0.1:80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = fx_http_addr_parse(bad[i], &sa, &len);
		if (rc != -1)
			fprintf(stderr, "accepted bad address \"%s\"\n", bad[i]);
		CHECK(rc == -1);
	}
	CHECK(fx_http_addr_parse(NULL, &sa, &len) == -1);
}

static bool ipv6_loopback_available(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	bool ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	close(fd);
	return ok;
}

static void check_healthy(const char *base)
{
	char url[128];
	snprintf(url, sizeof(url), "%s/-/healthy", base);
	struct reply reply = request(url, "GET", NULL);
	CHECK_EQ_U64(reply.status, 200);
	reply_free(&reply);
}

static void test_listen(void)
{
	struct test_context context = {0};
	struct fx_http_hooks hooks = {hook_take_snapshot, NULL, &context};
	char base[64];
	bool ipv6 = ipv6_loopback_available();

	/* Every address (dual-stack when IPv6 works): reachable over IPv4, and over IPv6 when available. */
	struct fx_http_server *any = fx_http_server_create(":0", &hooks);
	CHECK(any != NULL);
	if (any) {
		snprintf(base, sizeof(base), "http://127.0.0.1:%u", fx_http_server_port(any));
		check_healthy(base);
		if (ipv6) {
			snprintf(base, sizeof(base), "http://[::1]:%u", fx_http_server_port(any));
			check_healthy(base);
		}
		/* is_ready NULL: always ready. */
		snprintf(base, sizeof(base), "http://127.0.0.1:%u/-/ready", fx_http_server_port(any));
		struct reply reply = request(base, "GET", NULL);
		CHECK_EQ_U64(reply.status, 200);
		reply_free(&reply);
	}

	if (ipv6) {
		struct fx_http_server *v6 = fx_http_server_create("[::1]:0", &hooks);
		CHECK(v6 != NULL);
		if (v6) {
			snprintf(base, sizeof(base), "http://[::1]:%u", fx_http_server_port(v6));
			check_healthy(base);
		}
		fx_http_server_destroy(v6);
	} else {
		fprintf(stderr, "SKIP [::1]:0: no IPv6 loopback on this host\n");
	}

	/* A port in use: NULL (and an error naming the address in the log). */
	struct fx_http_server *first = fx_http_server_create("127.0.0.1:0", &hooks);
	CHECK(first != NULL);
	if (first) {
		char addr[64];
		snprintf(addr, sizeof(addr), "127.0.0.1:%u", fx_http_server_port(first));
		struct fx_http_server *second = fx_http_server_create(addr, &hooks);
		CHECK(second == NULL);
		fx_http_server_destroy(second);
		if (any) {
			snprintf(addr, sizeof(addr), ":%u", fx_http_server_port(any));
			second = fx_http_server_create(addr, &hooks);
			CHECK(second == NULL);
			fx_http_server_destroy(second);
		}
	}
	fx_http_server_destroy(first);
	fx_http_server_destroy(any);

	/* Bad addresses: NULL. */
	CHECK(fx_http_server_create("localhost:0", &hooks) == NULL);
	CHECK(fx_http_server_create("", &hooks) == NULL);
	fx_http_server_destroy(NULL);
}

/* A client that sends half a request and then nothing is disconnected after the connection timeout. */
static void test_idle_timeout(void)
{
	struct test_context context = {0};
	struct fx_http_hooks hooks = {hook_take_snapshot, NULL, &context};
	struct fx_http_server *server = fx_http_server_create("127.0.0.1:0", &hooks);
	CHECK(server != NULL);
	if (!server)
		return;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons((uint16_t)fx_http_server_port(server))};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	const char partial[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
	CHECK(send(fd, partial, sizeof(partial) - 1, 0) == (ssize_t)(sizeof(partial) - 1));
	struct timeval limit = {.tv_sec = 15};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	char byte;
	ssize_t n = recv(fd, &byte, 1, 0);
	clock_gettime(CLOCK_MONOTONIC, &end);
	double waited = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
	CHECK(n == 0); /* closed by the server, not by our receive timeout */
	CHECK(waited < 12);
	fprintf(stderr, "idle connection closed after %.1f s\n", waited);
	close(fd);
	fx_http_server_destroy(server);
}

/* ---- the bounds: connections per address and in all, slow request heads, head size, methods ---- */

/* The server's self-metric `name`: the sample whose one label has the value `reason`, or the family's one
 * sample when reason is NULL; UINT64_MAX when absent. */
static uint64_t server_value(struct fx_http_server *server, const char *name, const char *reason)
{
	struct fx_family_list *list = fx_family_list_create();
	uint64_t value = UINT64_MAX;
	CHECK(list && fx_http_server_collect(server, list) == 0);
	for (size_t f = 0; list && f < fx_family_list_count(list); f++) {
		const struct fx_family *family = fx_family_list_get(list, f);
		if (strcmp(family->name, name))
			continue;
		for (size_t i = 0; i < family->n_samples; i++)
			if (!reason || !strcmp(family->samples[i].labels[0].value, reason))
				value = family->samples[i].integer;
	}
	fx_family_list_destroy(list);
	return value;
}

static uint64_t refused_count(struct fx_http_server *server, const char *reason)
{
	return server_value(server, "flow_exporter_http_refused_total", reason);
}

/* Waits (5 s at most) until the server has seen every connection the test closed: a connection the client
 * closed still counts against the limits until the server's thread notices. */
static void wait_connections_closed(struct fx_http_server *server)
{
	for (int i = 0; i < 500 && server_value(server, "flow_exporter_http_connections", NULL) != 0; i++) {
		struct timespec pause = {0, 10 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	CHECK_EQ_U64(server_value(server, "flow_exporter_http_connections", NULL), 0);
}

/* A connection from source (127.0.0.x) to the server; -1 when connect fails. */
static int connect_from(const char *source, unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
	inet_pton(AF_INET, source, &from.sin_addr);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons((uint16_t)port);
	if (bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0 ||
	    connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
		close(fd);
		return -1;
	}
	struct timeval limit = {.tv_sec = 0, .tv_usec = 150000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
	return fd;
}

/* True when the server has closed fd (recv sees the end within the receive timeout). */
static bool closed_by_server(int fd)
{
	char byte;
	ssize_t n = recv(fd, &byte, 1, 0);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* The status of the answer to request, on a new connection. */
static int status_of(unsigned port, const char *request, size_t len)
{
	int fd = connect_from("127.0.0.1", port);
	char answer[64] = "";
	int status = -1;
	if (fd >= 0 && send(fd, request, len, 0) == (ssize_t)len &&
	    recv(fd, answer, sizeof(answer) - 1, 0) > 12)
		status = atoi(answer + 9);
	if (fd >= 0)
		close(fd);
	return status;
}

static void test_limits(void)
{
	struct test_context context = {0};
	struct fx_http_hooks hooks = {hook_take_snapshot, NULL, &context};
	struct fx_http_server_config config = {
	    .addr = "127.0.0.1:0",
	    .limits = {.max_connections = 4,
		       .max_connections_per_ip = 2,
		       .read_timeout_ms = 2500,
		       .max_header_bytes = 1024},
	};
	struct fx_http_server *server = fx_http_server_start(&config, &hooks);
	CHECK(server != NULL);
	if (!server)
		return;
	unsigned port = fx_http_server_port(server);
	int fds[5];
	const char *sources[5] = {"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"};
	for (int i = 0; i < 5; i++)
		fds[i] = connect_from(sources[i], port);
	/* The third from 127.0.0.1 is past its address's limit; the two from 127.0.0.2 get in. */
	CHECK(!closed_by_server(fds[0]) && !closed_by_server(fds[1]));
	CHECK(closed_by_server(fds[2]));
	CHECK(!closed_by_server(fds[3]) && !closed_by_server(fds[4]));
	int over = connect_from("127.0.0.3", port); /* four open: past the server's limit */
	CHECK(closed_by_server(over));
	close(over);
	CHECK_EQ_U64(refused_count(server, "max_connections_per_ip"), 1);
	CHECK_EQ_U64(refused_count(server, "max_connections"), 1);
	/* A slow head: a byte every 150 ms keeps the idle timeout away, not the read timeout. */
	CHECK(send(fds[0], "GET / HTTP/1.1\r\n", 16, 0) == 16);
	bool closed = false;
	for (int i = 0; i < 30 && !closed; i++) {
		if (send(fds[0], "X", 1, MSG_NOSIGNAL) != 1)
			break;
		closed = closed_by_server(fds[0]);
	}
	CHECK(closed);
	for (int i = 0; i < 5; i++)
		close(fds[i]);
	CHECK(refused_count(server, "read_timeout") >= 1);
	wait_connections_closed(server);

	char big[2048];
	int len = snprintf(big, sizeof(big), "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: %01500d\r\n\r\n", 0);
	CHECK_EQ_U64(status_of(port, big, (size_t)len), 431);
	const char brew[] = "BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK_EQ_U64(status_of(port, brew, sizeof(brew) - 1), 405);
	const char healthy[] = "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";
	CHECK_EQ_U64(status_of(port, healthy, sizeof(healthy) - 1), 200);
	CHECK_EQ_U64(refused_count(server, "header_too_large"), 1);
	CHECK_EQ_U64(refused_count(server, "method_not_allowed"), 1);
	fx_http_server_destroy(server);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	test_addr_parse();
	test_routes();
	test_listen();
	test_idle_timeout();
	test_limits();
	curl_global_cleanup();
	return check_exit();
}
