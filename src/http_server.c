/* The HTTP endpoint on libmicrohttpd: /metrics (the text exposition, gzip when the scraper accepts it),
 * a landing page at /, /-/healthy and /-/ready. Everything else is 404; methods other than GET and HEAD
 * are 405.
 *
 * Thread: libmicrohttpd's internal polling thread (epoll on Linux) runs every handler, one request at a
 * time; a scrape takes a snapshot through the hooks there. fx_http_server_collect may be called from any
 * thread (including from inside take_snapshot, on the server's thread): the scrape statistics are kept
 * under `stats_lock`, which is never held while calling a hook.
 *
 * Streaming: a GET of /metrics is answered with chunked transfer encoding from a callback that renders
 * the snapshot a chunk at a time (fx_expo_text_stream) and, for gzip, deflates it as it goes; the body is
 * never held whole, so a scrape of 100,000 series costs a few hundred KiB besides its snapshot (which the
 * store usually shares). A HEAD is rendered into one buffer, as its Content-Length must be known.
 * The snapshot is kept until the response is done; the scrape is counted (and its duration and size
 * recorded) when its last byte has been handed to libmicrohttpd.
 *
 * Invariants: a slow or stuck client holds one of MAX_CONNECTIONS slots for at most CONNECTION_TIMEOUT_S
 * seconds of inactivity; a body never exceeds MAX_BODY_BYTES (past it the response is cut, the connection
 * closed, and the scrape counted in flow_exporter_scrape_errors_total; a HEAD past it is answered 500). */
#include "fx/http_server.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <microhttpd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fx/buf.h"
#include "fx/expo_text.h"
#include "fx/log.h"

#ifndef FX_VERSION
#define FX_VERSION "unknown"
#endif

#define MAX_CONNECTIONS 64
#define CONNECTION_TIMEOUT_S 5
#define MAX_BODY_BYTES ((size_t)512 * 1024 * 1024)
/* Per-connection memory of libmicrohttpd, which bounds the chunks of a streamed body: bigger chunks mean
 * fewer system calls (a 50 MB body in 32 KiB chunks is 1,600 writes). Pages are only touched when used. */
#define CONNECTION_MEMORY_BYTES ((size_t)256 * 1024)
/* Text rendered ahead of the compressor, per gzip scrape. */
#define GZIP_INPUT_BYTES ((size_t)64 * 1024)
/* zlib level 1: a scrape body compresses about 10x at level 1, and levels above cost several times the
 * CPU for a few percent less. */
#define GZIP_LEVEL 1

#define TEXT_PLAIN "text/plain; charset=utf-8"

static const char landing_page[] = "<!DOCTYPE html>\n"
				   "<html>\n"
				   "<head><meta charset=\"utf-8\"><title>flow-exporter</title></head>\n"
				   "<body>\n"
				   "<h1>flow-exporter</h1>\n"
				   "<p>Version " FX_VERSION "</p>\n"
				   "<p><a href=\"/metrics\">Metrics</a></p>\n"
				   "</body>\n"
				   "</html>\n";

enum encoding { ENCODING_IDENTITY, ENCODING_GZIP, N_ENCODINGS };
static const char *const encoding_names[N_ENCODINGS] = {"identity", "gzip"};

struct fx_http_server {
	struct MHD_Daemon *daemon;
	struct fx_http_hooks hooks;
	char addr[128]; /* as configured, for log lines */
	int (*reload)(void *opaque, char *message, size_t size); /* POST /-/reload; NULL: 404 */
	void *reload_opaque;

	pthread_mutex_t stats_lock; /* guards the fields below */
	uint64_t scrapes[N_ENCODINGS];
	uint64_t scrape_errors;
	double last_duration_seconds;
	uint64_t last_body_bytes;
};

/* ---- Listen address ---------------------------------------------------------------------------------- */

static int parse_port(const char *text, uint16_t *port)
{
	uint32_t value = 0;
	size_t n = 0;
	for (; text[n]; n++) {
		if (text[n] < '0' || text[n] > '9' || n >= 5)
			return -1;
		value = value * 10 + (uint32_t)(text[n] - '0');
	}
	if (n == 0 || value > 65535)
		return -1;
	*port = (uint16_t)value;
	return 0;
}

/* "fe80::1%eth0" or "fe80::1%2": the zone becomes the scope id (an interface name is looked up locally,
 * nothing is resolved). */
static int parse_ipv6(const char *text, size_t len, struct sockaddr_in6 *sin6)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, text, len);
	host[len] = '\0';
	char *zone = strchr(host, '%');
	if (zone) {
		*zone++ = '\0';
		if (!*zone)
			return -1;
		uint16_t numeric;
		if (parse_port(zone, &numeric) == 0) /* a small decimal number */
			sin6->sin6_scope_id = numeric;
		else if ((sin6->sin6_scope_id = if_nametoindex(zone)) == 0)
			return -1;
	}
	return inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1 ? 0 : -1;
}

int fx_http_addr_parse(const char *addr, struct sockaddr_storage *out, socklen_t *out_len)
{
	if (!addr)
		return -1;
	const char *colon = strrchr(addr, ':');
	if (!colon)
		return -1;
	uint16_t port;
	if (parse_port(colon + 1, &port) != 0)
		return -1;
	const char *host = addr;
	size_t host_len = (size_t)(colon - addr);
	memset(out, 0, sizeof(*out));

	if (host_len == 0) {
		/* Every address: IPv6 any, served dual-stack by fx_http_server_create (IPv4 when IPv6 is
		 * off). */
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons(port);
		*out_len = sizeof(*sin6);
		return 0;
	}
	if (host[0] == '[') {
		if (host_len < 3 || host[host_len - 1] != ']')
			return -1;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		if (parse_ipv6(host + 1, host_len - 2, sin6) != 0)
			return -1;
		*out_len = sizeof(*sin6);
		return 0;
	}
	/* IPv4 in dotted-quad form only (inet_pton, unlike inet_aton, refuses "1.2.3" and hex). */
	char text[INET_ADDRSTRLEN];
	if (host_len >= sizeof(text))
		return -1;
	memcpy(text, host, host_len);
	text[host_len] = '\0';
	struct sockaddr_in *sin = (struct sockaddr_in *)out;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
		return -1;
	*out_len = sizeof(*sin);
	return 0;
}

/* ---- Responses ---------------------------------------------------------------------------------------- */

static enum MHD_Result send_static(struct MHD_Connection *connection, unsigned status,
				   const char *content_type, const char *body, size_t len)
{
	struct MHD_Response *response =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!response)
		return MHD_NO;
	enum MHD_Result result =
	    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (result == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		result = MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (result == MHD_YES)
		result = MHD_queue_response(connection, status, response);
	MHD_destroy_response(response);
	return result;
}

#define SEND_TEXT(connection, status, text)                                                                  \
	send_static(connection, status, TEXT_PLAIN, text, sizeof(text) - 1)

/* ---- Accept-Encoding ---------------------------------------------------------------------------------- */

/* Parses a qvalue ("0", "0.5", "1", "1.000") as thousandths; -1 when malformed. */
static int parse_qvalue(const char *s, size_t len)
{
	if (len == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	int value = (s[0] - '0') * 1000;
	if (len == 1)
		return value;
	if (s[1] != '.' || len > 5)
		return -1;
	int scale = 100;
	for (size_t i = 2; i < len; i++, scale /= 10) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		value += (s[i] - '0') * scale;
	}
	return value > 1000 ? -1 : value;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *len)
{
	while (*len && is_ows(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_ows((*s)[*len - 1]))
		(*len)--;
}

/* What one Accept-Encoding header says about gzip, folded into the state of all of them:
 * an explicit "gzip" (or "x-gzip") decides; otherwise "*" does. q in thousandths; -1 = not mentioned. */
struct gzip_acceptance {
	int gzip_q;
	int star_q;
};

static void scan_accept_encoding(const char *value, struct gzip_acceptance *acceptance)
{
	const char *element = value;
	while (*element) {
		size_t element_len = strcspn(element, ",");
		const char *next = element + element_len + (element[element_len] == ',');
		/* coding *( OWS ";" OWS param ) */
		size_t coding_len = strcspn(element, ",;");
		const char *param = element + coding_len;
		const char *coding = element;
		trim(&coding, &coding_len);
		int q = 1000;
		while (param < element + element_len && *param == ';') {
			param++;
			size_t param_len = strcspn(param, ",;");
			const char *name = param;
			size_t name_len = param_len;
			trim(&name, &name_len);
			if (name_len >= 2 && (name[0] == 'q' || name[0] == 'Q')) {
				const char *rest = name + 1;
				size_t rest_len = name_len - 1;
				trim(&rest, &rest_len);
				if (rest_len && rest[0] == '=') {
					rest++;
					rest_len--;
					trim(&rest, &rest_len);
					q = parse_qvalue(rest, rest_len);
					if (q < 0)
						q = 0; /* malformed: refuse rather than guess */
				}
			}
			param += param_len;
		}
		if ((coding_len == 4 && strncasecmp(coding, "gzip", 4) == 0) ||
		    (coding_len == 6 && strncasecmp(coding, "x-gzip", 6) == 0)) {
			if (q > acceptance->gzip_q)
				acceptance->gzip_q = q;
		} else if (coding_len == 1 && coding[0] == '*') {
			if (q > acceptance->star_q)
				acceptance->star_q = q;
		}
		element = next;
	}
}

static enum MHD_Result accept_encoding_header(void *cls, enum MHD_ValueKind kind, const char *key,
					      const char *value)
{
	(void)kind; /* always MHD_HEADER_KIND: the only kind asked for */
	if (strcasecmp(key, MHD_HTTP_HEADER_ACCEPT_ENCODING) == 0 && value)
		scan_accept_encoding(value, cls);
	return MHD_YES;
}

static bool accepts_gzip(struct MHD_Connection *connection)
{
	struct gzip_acceptance acceptance = {-1, -1};
	MHD_get_connection_values(connection, MHD_HEADER_KIND, accept_encoding_header, &acceptance);
	int q = acceptance.gzip_q >= 0 ? acceptance.gzip_q : acceptance.star_q;
	return q > 0;
}

/* ---- /metrics ----------------------------------------------------------------------------------------- */

/* Compresses body into a gzip member. Returns a malloc'ed buffer (its size in *out_len) or NULL. */
static char *gzip_body(const char *body, size_t len, size_t *out_len)
{
	z_stream stream;
	memset(&stream, 0, sizeof(stream));
	/* windowBits 15 + 16: a gzip header and trailer instead of zlib's. */
	if (deflateInit2(&stream, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	uLong bound = deflateBound(&stream, (uLong)len);
	char *compressed = malloc(bound);
	if (!compressed || len > UINT32_MAX) {
		deflateEnd(&stream);
		free(compressed);
		return NULL;
	}
	stream.next_in = (Bytef *)body;
	stream.avail_in = (uInt)len;
	stream.next_out = (Bytef *)compressed;
	stream.avail_out = (uInt)bound;
	int zrc = deflate(&stream, Z_FINISH);
	*out_len = stream.total_out;
	deflateEnd(&stream);
	if (zrc != Z_STREAM_END) {
		free(compressed);
		return NULL;
	}
	/* The bound is about the size of the input: give back what the compression did not use while the
	 * response is being sent. */
	char *shrunk = realloc(compressed, *out_len ? *out_len : 1);
	return shrunk ? shrunk : compressed;
}

static double seconds_since(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void count_scrape_error(struct fx_http_server *server)
{
	pthread_mutex_lock(&server->stats_lock);
	server->scrape_errors++;
	pthread_mutex_unlock(&server->stats_lock);
}

static void count_scrape(struct fx_http_server *server, enum encoding encoding, const struct timespec *start,
			 uint64_t body_bytes)
{
	double duration = seconds_since(start);
	pthread_mutex_lock(&server->stats_lock);
	server->scrapes[encoding]++;
	server->last_duration_seconds = duration;
	server->last_body_bytes = body_bytes;
	pthread_mutex_unlock(&server->stats_lock);
}

static enum MHD_Result add_metrics_headers(struct MHD_Response *response, enum encoding encoding)
{
	enum MHD_Result result =
	    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, FX_TEXT_CONTENT_TYPE);
	if (result == MHD_YES)
		result =
		    MHD_add_response_header(response, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
	if (result == MHD_YES && encoding == ENCODING_GZIP)
		result = MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
	return result;
}

/* One streamed scrape: owned by its libmicrohttpd response, freed by free_scrape. */
struct scrape {
	struct fx_http_server *server;
	struct fx_snapshot *snapshot;
	struct fx_expo_text_stream *text;
	enum encoding encoding;
	struct timespec start;
	uint64_t sent;
	bool failed;
	/* gzip only */
	z_stream deflate;
	bool deflate_ready;
	bool text_ended;
	char *input; /* GZIP_INPUT_BYTES of rendered text waiting for the compressor */
};

static void free_scrape(void *cls)
{
	struct scrape *scrape = cls;
	if (scrape->deflate_ready)
		deflateEnd(&scrape->deflate);
	free(scrape->input);
	fx_expo_text_stream_destroy(scrape->text);
	fx_snapshot_destroy(scrape->snapshot);
	free(scrape);
	malloc_trim(0); /* give the snapshot's memory back (see main.c) */
}

static ssize_t scrape_failed(struct scrape *scrape, const char *why)
{
	if (!scrape->failed) {
		scrape->failed = true;
		fx_error("http: /metrics: %s; response cut", why);
		count_scrape_error(scrape->server);
	}
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* The next deflated bytes, up to max; 0 at the end. Returns the count, or -1 with *why set. */
static ssize_t read_gzip(struct scrape *scrape, char *buf, size_t max, const char **why)
{
	z_stream *z = &scrape->deflate;
	z->next_out = (Bytef *)buf;
	z->avail_out = (uInt)(max > UINT32_MAX ? UINT32_MAX : max);
	uInt room = z->avail_out;
	while (z->avail_out > 0) {
		if (z->avail_in == 0 && !scrape->text_ended) {
			size_t got = 0;
			if (fx_expo_text_stream_read(scrape->text, scrape->input, GZIP_INPUT_BYTES, &got) !=
			    0) {
				*why = "rendering failed (out of memory)";
				return -1;
			}
			scrape->text_ended = got < GZIP_INPUT_BYTES;
			z->next_in = (Bytef *)scrape->input;
			z->avail_in = (uInt)got;
		}
		int zrc = deflate(z, scrape->text_ended ? Z_FINISH : Z_NO_FLUSH);
		if (zrc == Z_STREAM_END)
			break;
		if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
			*why = "gzip failed";
			return -1;
		}
	}
	return (ssize_t)(room - z->avail_out);
}

/* libmicrohttpd's content reader: the body, a chunk at a time. */
static ssize_t read_scrape(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct scrape *scrape = cls;
	(void)pos; /* always the bytes sent so far: the response is read once, in order */
	if (scrape->failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	const char *why = NULL;
	ssize_t n;
	if (scrape->encoding == ENCODING_GZIP) {
		n = read_gzip(scrape, buf, max, &why);
	} else {
		size_t written = 0;
		n = fx_expo_text_stream_read(scrape->text, buf, max, &written) == 0 ? (ssize_t)written : -1;
		if (n < 0)
			why = "rendering failed (out of memory)";
	}
	if (n < 0)
		return scrape_failed(scrape, why);
	if (n == 0) {
		count_scrape(scrape->server, scrape->encoding, &scrape->start, scrape->sent);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	scrape->sent += (uint64_t)n;
	if (scrape->sent > MAX_BODY_BYTES)
		return scrape_failed(scrape, "larger than the body limit");
	return n;
}

static enum MHD_Result serve_metrics_streamed(struct fx_http_server *server,
					      struct MHD_Connection *connection, enum encoding encoding)
{
	struct scrape *scrape = calloc(1, sizeof(*scrape));
	struct MHD_Response *response = NULL;
	if (!scrape)
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &scrape->start);
	scrape->server = server;
	scrape->encoding = encoding;
	scrape->snapshot =
	    server->hooks.take_snapshot ? server->hooks.take_snapshot(server->hooks.opaque) : NULL;
	if (!scrape->snapshot) {
		fx_error("http: /metrics: no snapshot");
		goto fail;
	}
	scrape->text = fx_expo_text_stream_create(scrape->snapshot);
	if (!scrape->text)
		goto fail;
	if (encoding == ENCODING_GZIP) {
		scrape->input = malloc(GZIP_INPUT_BYTES);
		/* windowBits 15 + 16: a gzip header and trailer instead of zlib's. */
		if (!scrape->input || deflateInit2(&scrape->deflate, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8,
						   Z_DEFAULT_STRATEGY) != Z_OK)
			goto fail;
		scrape->deflate_ready = true;
	}
	response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, CONNECTION_MEMORY_BYTES / 2,
						     read_scrape, scrape, free_scrape);
	if (!response)
		goto fail;
	scrape = NULL; /* the response owns it now */
	enum MHD_Result result = add_metrics_headers(response, encoding);
	if (result == MHD_YES)
		result = MHD_queue_response(connection, MHD_HTTP_OK, response);
	MHD_destroy_response(response);
	return result;
fail:
	if (scrape)
		free_scrape(scrape);
	count_scrape_error(server);
	return SEND_TEXT(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal Server Error\n");
}

/* HEAD (and the fallback): the whole body in one buffer, for its Content-Length. */
static enum MHD_Result serve_metrics_buffered(struct fx_http_server *server,
					      struct MHD_Connection *connection, enum encoding encoding)
{
	struct fx_snapshot *snapshot = NULL;
	struct fx_buf body;
	struct MHD_Response *response;
	enum MHD_Result result;
	struct timespec start;
	char *data;
	size_t len;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &start);
	fx_buf_init(&body, MAX_BODY_BYTES);
	if (fx_buf_reserve(&body, 0)) /* so that even an empty body has memory to hand over */
		goto fail;
	snapshot = server->hooks.take_snapshot ? server->hooks.take_snapshot(server->hooks.opaque) : NULL;
	if (!snapshot) {
		fx_error("http: /metrics: no snapshot");
		goto fail;
	}
	rc = fx_expo_text_render(snapshot, &body);
	fx_snapshot_destroy(snapshot);
	snapshot = NULL;
	if (rc) {
		fx_error("http: /metrics: rendering failed (%s)",
			 rc == FX_BUF_E_TOO_BIG ? "larger than the body limit" : "out of memory");
		goto fail;
	}

	if (encoding == ENCODING_GZIP) {
		data = gzip_body(body.data, body.len, &len);
		if (!data) {
			fx_error("http: /metrics: gzip failed");
			goto fail;
		}
		fx_buf_free(&body);
	} else {
		data = body.data;
		len = body.len;
		fx_buf_init(&body, MAX_BODY_BYTES); /* the response owns the memory now */
	}
	/* Handed over without a copy: libmicrohttpd frees the body once the response is sent. */
	response = MHD_create_response_from_buffer_with_free_callback(len, data, free);
	if (!response) {
		free(data);
		goto fail;
	}
	result = add_metrics_headers(response, encoding);
	if (result == MHD_YES)
		result = MHD_queue_response(connection, MHD_HTTP_OK, response);
	MHD_destroy_response(response);
	count_scrape(server, encoding, &start, len);
	return result;

fail:
	fx_snapshot_destroy(snapshot);
	fx_buf_free(&body);
	count_scrape_error(server);
	return SEND_TEXT(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal Server Error\n");
}

static enum MHD_Result serve_metrics(struct fx_http_server *server, struct MHD_Connection *connection,
				     bool head)
{
	enum encoding encoding = accepts_gzip(connection) ? ENCODING_GZIP : ENCODING_IDENTITY;
	if (head)
		return serve_metrics_buffered(server, connection, encoding);
	return serve_metrics_streamed(server, connection, encoding);
}

/* ---- Routing ------------------------------------------------------------------------------------------ */

/* POST /-/reload (reload.h): 200, or 500 with the files that were refused. Any other method is 405. */
static enum MHD_Result serve_reload(struct fx_http_server *server, struct MHD_Connection *connection,
				    const char *method)
{
	char message[2048];
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
		struct MHD_Response *response = MHD_create_response_from_buffer(
		    sizeof("Method Not Allowed: POST only\n") - 1, (void *)"Method Not Allowed: POST only\n",
		    MHD_RESPMEM_PERSISTENT);
		if (!response)
			return MHD_NO;
		enum MHD_Result result = MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "POST");
		if (result == MHD_YES)
			result = MHD_queue_response(connection, MHD_HTTP_METHOD_NOT_ALLOWED, response);
		MHD_destroy_response(response);
		return result;
	}
	if (server->reload(server->reload_opaque, message, sizeof(message)) == 0)
		return SEND_TEXT(connection, MHD_HTTP_OK, "Reloaded\n");
	struct MHD_Response *response =
	    MHD_create_response_from_buffer(strlen(message), message, MHD_RESPMEM_MUST_COPY);
	if (!response)
		return MHD_NO;
	enum MHD_Result result = MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, TEXT_PLAIN);
	if (result == MHD_YES)
		result = MHD_queue_response(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, response);
	MHD_destroy_response(response);
	return result;
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *connection, const char *url,
				      const char *method, const char *version, const char *upload_data,
				      size_t *upload_data_size, void **request_state)
{
	struct fx_http_server *server = cls;
	/* GET and HEAD carry no body worth reading, and no handler keeps state between calls. */
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)request_state;

	if (strcmp(url, "/-/reload") == 0 && server->reload)
		return serve_reload(server, connection, method);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return SEND_TEXT(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed\n");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(server, connection, strcmp(method, MHD_HTTP_METHOD_HEAD) == 0);
	if (strcmp(url, "/") == 0)
		return send_static(connection, MHD_HTTP_OK, "text/html; charset=utf-8", landing_page,
				   sizeof(landing_page) - 1);
	if (strcmp(url, "/-/healthy") == 0)
		return SEND_TEXT(connection, MHD_HTTP_OK, "Healthy\n");
	if (strcmp(url, "/-/ready") == 0) {
		if (!server->hooks.is_ready || server->hooks.is_ready(server->hooks.opaque))
			return SEND_TEXT(connection, MHD_HTTP_OK, "Ready\n");
		return SEND_TEXT(connection, MHD_HTTP_SERVICE_UNAVAILABLE, "Not Ready\n");
	}
	return SEND_TEXT(connection, MHD_HTTP_NOT_FOUND, "Not Found\n");
}

/* ---- Lifetime ----------------------------------------------------------------------------------------- */

void fx_http_server_set_reload(struct fx_http_server *server,
			       int (*fn)(void *opaque, char *message, size_t size), void *opaque)
{
	server->reload = fn;
	server->reload_opaque = opaque;
}

__attribute__((format(printf, 2, 0))) static void log_mhd(void *cls, const char *fmt, va_list ap)
{
	const struct fx_http_server *server = cls;
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t len = strlen(line);
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	fx_error("http %s: %s", server->addr, line);
}

/* Whether this host can listen on IPv6 at all (a kernel booted with ipv6.disable=1, or a container without
 * IPv6, cannot): decides if a failed dual-stack listen falls back to IPv4, so that a port already in use
 * is reported as such rather than silently served on IPv4 only. */
static bool ipv6_available(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 any;
	memset(&any, 0, sizeof(any));
	any.sin6_family = AF_INET6;
	any.sin6_addr = in6addr_any;
	bool available = bind(fd, (const struct sockaddr *)&any, sizeof(any)) == 0;
	close(fd);
	return available;
}

/* `port` (host order) is only used in libmicrohttpd's messages when an address is given; the caller passes
 * it because reading it back through a sockaddr cast trips -Warray-bounds at -O3 for the IPv4 case. */
static struct MHD_Daemon *start_daemon(struct fx_http_server *server, unsigned flags,
				       const struct sockaddr *sockaddr, uint16_t port)
{
	/* The logger first, so that libmicrohttpd reports problems with the options after it through it. */
	return MHD_start_daemon(flags | MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, port, NULL, NULL,
				handle_request, server, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, server,
				MHD_OPTION_SOCK_ADDR, sockaddr, MHD_OPTION_CONNECTION_LIMIT,
				(unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				CONNECTION_MEMORY_BYTES, MHD_OPTION_END);
}

struct fx_http_server *fx_http_server_create(const char *addr, const struct fx_http_hooks *hooks)
{
	struct fx_http_server *server = NULL;
	struct sockaddr_storage sockaddr;
	socklen_t sockaddr_len;
	bool lock_ready = false;

	if (fx_http_addr_parse(addr, &sockaddr, &sockaddr_len) != 0) {
		fx_error(
		    "http: invalid listen address \"%s\" (want [host]:port with a numeric host, e.g. :9590, "
		    "127.0.0.1:9590, [::1]:9590)",
		    addr ? addr : "");
		goto fail;
	}
	server = calloc(1, sizeof(*server));
	if (!server)
		goto fail;
	server->hooks = *hooks;
	snprintf(server->addr, sizeof(server->addr), "%s", addr);
	if (pthread_mutex_init(&server->stats_lock, NULL) != 0)
		goto fail;
	lock_ready = true;

	if (sockaddr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&sockaddr;
		bool any = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
		server->daemon = start_daemon(server, any ? MHD_USE_DUAL_STACK : MHD_USE_IPv6,
					      (const struct sockaddr *)&sockaddr, ntohs(sin6->sin6_port));
		if (!server->daemon && any && !ipv6_available()) {
			/* No IPv6 on this host: every IPv4 address. */
			struct sockaddr_in sin;
			memset(&sin, 0, sizeof(sin));
			sin.sin_family = AF_INET;
			sin.sin_addr.s_addr = htonl(INADDR_ANY);
			sin.sin_port = sin6->sin6_port;
			fx_warn("http: no IPv6 on this host; listening on %s over IPv4 only", addr);
			server->daemon =
			    start_daemon(server, 0, (const struct sockaddr *)&sin, ntohs(sin.sin_port));
		}
	} else {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&sockaddr;
		server->daemon =
		    start_daemon(server, 0, (const struct sockaddr *)&sockaddr, ntohs(sin->sin_port));
	}
	if (!server->daemon) {
		fx_error("http: cannot listen on %s", addr);
		goto fail;
	}
	fx_info("http: listening on %s (port %u)", addr, fx_http_server_port(server));
	return server;

fail:
	if (server && lock_ready)
		pthread_mutex_destroy(&server->stats_lock);
	free(server);
	return NULL;
}

void fx_http_server_destroy(struct fx_http_server *server)
{
	if (!server)
		return;
	MHD_stop_daemon(server->daemon);
	pthread_mutex_destroy(&server->stats_lock);
	free(server);
}

unsigned fx_http_server_port(const struct fx_http_server *server)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
	return info ? info->port : 0;
}

int fx_http_server_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_http_server *server = opaque;
	uint64_t scrapes[N_ENCODINGS], scrape_errors, last_body_bytes;
	double last_duration_seconds;

	pthread_mutex_lock(&server->stats_lock);
	memcpy(scrapes, server->scrapes, sizeof(scrapes));
	scrape_errors = server->scrape_errors;
	last_duration_seconds = server->last_duration_seconds;
	last_body_bytes = server->last_body_bytes;
	pthread_mutex_unlock(&server->stats_lock);

	if (fx_family_begin(out, "flow_exporter_scrapes_total",
			    "Scrapes of /metrics answered, by body encoding.", FX_METRIC_COUNTER))
		return -1;
	for (int e = 0; e < N_ENCODINGS; e++) {
		struct fx_label label = {"encoding", encoding_names[e]};
		if (fx_family_add_u64(out, scrapes[e], 1, &label))
			return -1;
	}
	if (fx_family_begin(
		out, "flow_exporter_scrape_errors_total",
		"Scrapes of /metrics answered 500 (no snapshot, body past its limit, or no memory).",
		FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, scrape_errors, 0, NULL))
		return -1;
	if (fx_family_begin(
		out, "flow_exporter_scrape_duration_seconds",
		"Time the last scrape of /metrics took to snapshot, render, compress and hand to the socket.",
		FX_METRIC_GAUGE) ||
	    fx_family_add_double(out, last_duration_seconds, 0, NULL))
		return -1;
	if (fx_family_begin(out, "flow_exporter_scrape_bytes",
			    "Size of the last /metrics body sent, in bytes.", FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, last_body_bytes, 0, NULL))
		return -1;
	return 0;
}
