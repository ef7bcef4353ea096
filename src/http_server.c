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
 * Security (the web configuration file, fx/web_config.h): every connection of an HTTPS server gets, when
 * it starts and before its handshake, the TLS session settings of the configuration then in force
 * (credentials, priority, client-certificate request), so a reload swaps the certificate for new
 * connections without restarting the listener; a connection keeps a reference to its configuration until
 * it closes. Every request, on every path, is checked against the users of the configuration in force and
 * gets its headers. Client certificates are verified in the handshake (verify_client).
 *
 * Bounds: accept_policy refuses a connection past --web-max-connections or past
 * --web-max-connections-per-ip from its address (counted by reason); the watchdog thread closes a
 * connection whose request head has not arrived within --web-read-timeout of its start or of its previous
 * response (a slow-header client), libmicrohttpd closes one idle for CONNECTION_TIMEOUT_S; a request head
 * past --web-max-header-bytes is answered 431 (and libmicrohttpd answers 431 itself past
 * CONNECTION_MEMORY_BYTES, the memory of one connection).
 *
 * Invariants: a slow or stuck client holds one of the connection slots for at most CONNECTION_TIMEOUT_S
 * seconds of inactivity; a body never exceeds MAX_BODY_BYTES (past it the response is cut, the connection
 * closed, and the scrape counted in flow_exporter_scrape_errors_total; a HEAD past it is answered 500).
 * Lock order: web_lock, conn_lock and reload_lock are never held together with another, except reload_lock
 * around web_lock; stats_lock is a leaf. */
#include "fx/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
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
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fx/buf.h"
#include "fx/clock.h"
#include "fx/expo_negotiate.h"
#include "fx/expo_text.h"
#include "fx/log.h"
#include "fx/thread_name.h"

#ifndef FX_VERSION
#define FX_VERSION "unknown"
#endif

#define CONNECTION_TIMEOUT_S 5
/* How often the watchdog looks for slow request heads, and for a changed web configuration file. */
#define WATCHDOG_TICK_MS 250
#define WEB_CONFIG_POLL_MS 2000
#define REALM "flow-exporter"
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

/* Why a connection or a request was refused: flow_exporter_http_refused_total{reason}. */
enum refusal {
	REFUSED_MAX_CONNECTIONS,
	REFUSED_PER_IP,
	REFUSED_READ_TIMEOUT,
	REFUSED_HEADER_TOO_LARGE,
	REFUSED_UNAUTHORIZED,
	REFUSED_METHOD,
	REFUSED_CLIENT_CERT,
	N_REFUSALS
};
static const char *const refusal_names[N_REFUSALS] = {
    "max_connections", "max_connections_per_ip", "read_timeout",      "header_too_large",
    "unauthorized",    "method_not_allowed",	 "client_certificate"};

/* One open connection, from libmicrohttpd's "started" notice to its "closed" one (its socket context).
 * The list and every field but tls_web are under conn_lock. */
struct conn {
	struct conn *prev, *next;
	struct fx_http_server *server;
	struct fx_web_config *tls_web; /* the configuration its TLS session was set up with (a reference) */
	struct sockaddr_storage addr;
	int fd;
	int64_t waiting_since_ms; /* when it began waiting for a request head */
	bool in_request;
	bool reaped;
};

struct fx_http_server {
	struct MHD_Daemon *daemon;
	struct fx_http_hooks hooks;
	struct fx_http_limits limits;
	char addr[128]; /* as configured, for log lines */
	bool tls;	/* fixed at start: a reload cannot turn HTTPS on or off */

	pthread_mutex_t web_lock; /* guards web */
	struct fx_web_config *web;
	char *web_config_file;
	pthread_mutex_t reload_lock; /* one reload at a time; guards stamp */
	struct fx_web_stamp stamp;   /* of the files as the last reload attempt saw them */

	pthread_mutex_t conn_lock; /* guards the connection list */
	struct conn *conns;
	size_t n_conns;

	pthread_t watchdog;
	bool watchdog_started;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	bool stopping;

	int (*reload)(void *opaque, char *message, size_t size); /* POST /-/reload; NULL: 404 */
	void *reload_opaque;

	pthread_mutex_t stats_lock; /* guards the fields below */
	uint64_t scrapes[N_ENCODINGS];
	uint64_t scrape_errors;
	double last_duration_seconds;
	uint64_t last_body_bytes;
	uint64_t refused[N_REFUSALS];
	uint64_t reloads[2]; /* failure, success */
	bool last_reload_ok;
	double last_reload_success_seconds;
	struct fx_ratelimit mhd_log_limit;
};

static void count_refusal(struct fx_http_server *server, enum refusal reason, uint64_t n)
{
	pthread_mutex_lock(&server->stats_lock);
	server->refused[reason] += n;
	pthread_mutex_unlock(&server->stats_lock);
}

static struct fx_web_config *current_web(struct fx_http_server *server)
{
	pthread_mutex_lock(&server->web_lock);
	struct fx_web_config *web = fx_web_config_ref(server->web);
	pthread_mutex_unlock(&server->web_lock);
	return web;
}

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

/* The headers of http_server_config, on every response. */
static enum MHD_Result add_web_headers(struct MHD_Response *response, const struct fx_web_config *web)
{
	const struct fx_web_header *headers;
	size_t n = fx_web_config_headers(web, &headers);
	for (size_t i = 0; i < n; i++)
		if (MHD_add_response_header(response, headers[i].name, headers[i].value) != MHD_YES)
			return MHD_NO;
	return MHD_YES;
}

static enum MHD_Result send_static(struct MHD_Connection *connection, const struct fx_web_config *web,
				   unsigned status, const char *content_type, const char *body, size_t len)
{
	struct MHD_Response *response =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!response)
		return MHD_NO;
	enum MHD_Result result =
	    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (result == MHD_YES)
		result = add_web_headers(response, web);
	if (result == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		result = MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	if (result == MHD_YES && status == MHD_HTTP_UNAUTHORIZED)
		result = MHD_queue_basic_auth_fail_response(connection, REALM, response);
	else if (result == MHD_YES)
		result = MHD_queue_response(connection, status, response);
	MHD_destroy_response(response);
	return result;
}

#define SEND_TEXT(connection, web, status, text)                                                             \
	send_static(connection, web, status, TEXT_PLAIN, text, sizeof(text) - 1)

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

static enum MHD_Result add_metrics_headers(struct MHD_Response *response, enum encoding encoding,
					   const char *content_type, const struct fx_web_config *web)
{
	enum MHD_Result result =
	    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	if (result == MHD_YES)
		result = add_web_headers(response, web);
	if (result == MHD_YES)
		result = MHD_add_response_header(response, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding");
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
					      struct MHD_Connection *connection, enum encoding encoding,
					      enum fx_expo_format format, const char *content_type,
					      const struct fx_web_config *web)
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
	scrape->text = fx_expo_stream_create(scrape->snapshot, format);
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
	enum MHD_Result result = add_metrics_headers(response, encoding, content_type, web);
	if (result == MHD_YES)
		result = MHD_queue_response(connection, MHD_HTTP_OK, response);
	MHD_destroy_response(response);
	return result;
fail:
	if (scrape)
		free_scrape(scrape);
	count_scrape_error(server);
	return SEND_TEXT(connection, web, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal Server Error\n");
}

/* HEAD: the whole body rendered into one buffer, for its Content-Length (GET streams it). */
static enum MHD_Result serve_metrics_buffered(struct fx_http_server *server,
					      struct MHD_Connection *connection, enum encoding encoding,
					      enum fx_expo_format format, const char *content_type,
					      const struct fx_web_config *web)
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
	rc = fx_expo_render(snapshot, format, &body);
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
	result = add_metrics_headers(response, encoding, content_type, web);
	if (result == MHD_YES)
		result = MHD_queue_response(connection, MHD_HTTP_OK, response);
	MHD_destroy_response(response);
	count_scrape(server, encoding, &start, len);
	return result;

fail:
	fx_snapshot_destroy(snapshot);
	fx_buf_free(&body);
	count_scrape_error(server);
	return SEND_TEXT(connection, web, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal Server Error\n");
}

static enum MHD_Result serve_metrics(struct fx_http_server *server, struct MHD_Connection *connection,
				     bool head, const struct fx_web_config *web)
{
	enum encoding encoding = accepts_gzip(connection) ? ENCODING_GZIP : ENCODING_IDENTITY;
	/* The format from Accept (expo_negotiate.c): OpenMetrics when preferred, else the text format. */
	const char *content_type;
	enum fx_expo_format format = fx_expo_negotiate(
	    MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT), &content_type);
	if (head)
		return serve_metrics_buffered(server, connection, encoding, format, content_type, web);
	return serve_metrics_streamed(server, connection, encoding, format, content_type, web);
}

/* ---- Routing ------------------------------------------------------------------------------------------ */

static struct conn *conn_of(struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return info ? info->socket_context : NULL;
}

/* Basic auth against the users in force; true when there are none. */
static bool authorized(struct MHD_Connection *connection, struct fx_web_config *web)
{
	if (!fx_web_config_has_users(web))
		return true;
	char *password = NULL;
	char *user = MHD_basic_auth_get_username_password(connection, &password);
	bool ok = user && password && fx_web_config_authenticate(web, user, password);
	if (password) {
		explicit_bzero(password, strlen(password));
		MHD_free(password);
	}
	if (user)
		MHD_free(user);
	return ok;
}

/* POST /-/reload (reload.h): 200, or 500 with the files that were refused. Any other method is 405. */
static enum MHD_Result serve_reload(struct fx_http_server *server, struct MHD_Connection *connection,
				    const char *method, const struct fx_web_config *web)
{
	char message[2048];
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
		count_refusal(server, REFUSED_METHOD, 1);
		struct MHD_Response *response = MHD_create_response_from_buffer(
		    sizeof("Method Not Allowed: POST only\n") - 1, (void *)"Method Not Allowed: POST only\n",
		    MHD_RESPMEM_PERSISTENT);
		if (!response)
			return MHD_NO;
		enum MHD_Result result = MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "POST");
		if (result == MHD_YES)
			result = add_web_headers(response, web);
		if (result == MHD_YES)
			result = MHD_queue_response(connection, MHD_HTTP_METHOD_NOT_ALLOWED, response);
		MHD_destroy_response(response);
		return result;
	}
	if (server->reload(server->reload_opaque, message, sizeof(message)) == 0)
		return SEND_TEXT(connection, web, MHD_HTTP_OK, "Reloaded\n");
	struct MHD_Response *response =
	    MHD_create_response_from_buffer(strlen(message), message, MHD_RESPMEM_MUST_COPY);
	if (!response)
		return MHD_NO;
	enum MHD_Result result = MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, TEXT_PLAIN);
	if (result == MHD_YES)
		result = add_web_headers(response, web);
	if (result == MHD_YES)
		result = MHD_queue_response(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, response);
	MHD_destroy_response(response);
	return result;
}

static enum MHD_Result route(struct fx_http_server *server, struct MHD_Connection *connection,
			     const char *url, const char *method, struct fx_web_config *web)
{
	const union MHD_ConnectionInfo *size =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	if (size && size->header_size > server->limits.max_header_bytes) {
		count_refusal(server, REFUSED_HEADER_TOO_LARGE, 1);
		return SEND_TEXT(connection, web, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
				 "Request Header Fields Too Large\n");
	}
	if (!authorized(connection, web)) {
		count_refusal(server, REFUSED_UNAUTHORIZED, 1);
		return SEND_TEXT(connection, web, MHD_HTTP_UNAUTHORIZED, "Unauthorized\n");
	}
	if (strcmp(url, "/-/reload") == 0 && server->reload)
		return serve_reload(server, connection, method, web);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		count_refusal(server, REFUSED_METHOD, 1);
		return SEND_TEXT(connection, web, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed\n");
	}
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(server, connection, strcmp(method, MHD_HTTP_METHOD_HEAD) == 0, web);
	if (strcmp(url, "/") == 0)
		return send_static(connection, web, MHD_HTTP_OK, "text/html; charset=utf-8", landing_page,
				   sizeof(landing_page) - 1);
	if (strcmp(url, "/-/healthy") == 0)
		return SEND_TEXT(connection, web, MHD_HTTP_OK, "Healthy\n");
	if (strcmp(url, "/-/ready") == 0) {
		if (!server->hooks.is_ready || server->hooks.is_ready(server->hooks.opaque))
			return SEND_TEXT(connection, web, MHD_HTTP_OK, "Ready\n");
		return SEND_TEXT(connection, web, MHD_HTTP_SERVICE_UNAVAILABLE, "Not Ready\n");
	}
	return SEND_TEXT(connection, web, MHD_HTTP_NOT_FOUND, "Not Found\n");
}

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *connection, const char *url,
				      const char *method, const char *version, const char *upload_data,
				      size_t *upload_data_size, void **request_state)
{
	static char
	    request_marker; /* *request_state once a request has begun: the answer is queued at once */
	struct fx_http_server *server = cls;
	/* GET and HEAD carry no body worth reading; every answer is queued on the first call. */
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	if (!*request_state) {
		*request_state = &request_marker;
		struct conn *conn = conn_of(connection);
		if (conn) { /* its head has arrived: the watchdog leaves it alone until it is answered */
			pthread_mutex_lock(&server->conn_lock);
			conn->in_request = true;
			pthread_mutex_unlock(&server->conn_lock);
		}
	}
	struct fx_web_config *web = current_web(server);
	enum MHD_Result result = route(server, connection, url, method, web);
	fx_web_config_unref(web);
	return result;
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **request_state,
			      enum MHD_RequestTerminationCode code)
{
	struct fx_http_server *server = cls;
	(void)request_state;
	(void)code;
	struct conn *conn = conn_of(connection);
	if (!conn)
		return;
	pthread_mutex_lock(&server->conn_lock);
	conn->in_request = false;
	conn->waiting_since_ms = fx_mono_ms();
	pthread_mutex_unlock(&server->conn_lock);
}

/* ---- Connections: limits, TLS settings, the watchdog ------------------------------------------------- */

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr *b)
{
	if (a->ss_family != b->sa_family)
		return false;
	if (b->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (b->sa_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
	return false;
}

/* libmicrohttpd asks before it takes a new connection. The counts change only in notify_connection, on
 * the same thread, so they cannot move between this check and the connection's start. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t addr_len)
{
	struct fx_http_server *server = cls;
	(void)addr_len;
	enum refusal reason = N_REFUSALS;
	pthread_mutex_lock(&server->conn_lock);
	if (server->n_conns >= server->limits.max_connections) {
		reason = REFUSED_MAX_CONNECTIONS;
	} else {
		unsigned from_address = 0;
		for (const struct conn *conn = server->conns; conn; conn = conn->next)
			from_address += same_address(&conn->addr, addr);
		if (from_address >= server->limits.max_connections_per_ip)
			reason = REFUSED_PER_IP;
	}
	pthread_mutex_unlock(&server->conn_lock);
	if (reason == N_REFUSALS)
		return MHD_YES;
	count_refusal(server, reason, 1);
	return MHD_NO;
}

/* The TLS settings of web on a session that has not shaken hands yet. */
static int setup_tls(struct MHD_Connection *connection, const struct fx_web_config *web)
{
	static const gnutls_certificate_request_t requests[] = {
	    [FX_CLIENT_AUTH_NONE] = GNUTLS_CERT_IGNORE,
	    [FX_CLIENT_AUTH_REQUEST] = GNUTLS_CERT_REQUEST,
	    /* Required ones too are only requested: verify_client refuses a missing certificate, so that
	     * every refusal is counted (GnuTLS's own would not be). */
	    [FX_CLIENT_AUTH_REQUIRE_ANY] = GNUTLS_CERT_REQUEST,
	    [FX_CLIENT_AUTH_VERIFY_IF_GIVEN] = GNUTLS_CERT_REQUEST,
	    [FX_CLIENT_AUTH_REQUIRE_AND_VERIFY] = GNUTLS_CERT_REQUEST,
	};
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t session = info ? info->tls_session : NULL;
	if (!session || gnutls_priority_set(session, fx_web_config_priority(web)) != GNUTLS_E_SUCCESS ||
	    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, fx_web_config_credentials(web)) !=
		GNUTLS_E_SUCCESS)
		return -1;
	gnutls_certificate_server_set_request(session, requests[fx_web_config_client_auth(web)]);
	return 0;
}

static void connection_started(struct fx_http_server *server, struct MHD_Connection *connection,
			       void **socket_context)
{
	const union MHD_ConnectionInfo *fd_info =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *addr_info =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct conn *conn = calloc(1, sizeof(*conn));
	if (conn && server->tls) {
		conn->tls_web = current_web(server);
		if (setup_tls(connection, conn->tls_web) != 0) {
			fx_web_config_unref(conn->tls_web);
			free(conn);
			conn = NULL;
		}
	}
	if (!conn) {
		/* No session settings, no client-certificate check: this connection must not go on. */
		fx_error("http: cannot set up a connection (out of memory); closed");
		if (fd_info)
			shutdown(fd_info->connect_fd, SHUT_RDWR);
		return;
	}
	conn->server = server;
	conn->fd = fd_info ? fd_info->connect_fd : -1;
	if (addr_info && addr_info->client_addr) {
		size_t len = addr_info->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
									   : sizeof(struct sockaddr_in);
		memcpy(&conn->addr, addr_info->client_addr, len);
	}
	conn->waiting_since_ms = fx_mono_ms();
	pthread_mutex_lock(&server->conn_lock);
	conn->next = server->conns;
	if (server->conns)
		server->conns->prev = conn;
	server->conns = conn;
	server->n_conns++;
	pthread_mutex_unlock(&server->conn_lock);
	*socket_context = conn;
}

/* libmicrohttpd calls "closed" after it has ended the TLS session and before it closes the socket: the
 * watchdog, which holds conn_lock while it shuts sockets down, never touches a reused descriptor. */
static void notify_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
			      enum MHD_ConnectionNotificationCode code)
{
	struct fx_http_server *server = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		connection_started(server, connection, socket_context);
		return;
	}
	struct conn *conn = *socket_context;
	if (!conn)
		return;
	pthread_mutex_lock(&server->conn_lock);
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		server->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	server->n_conns--;
	pthread_mutex_unlock(&server->conn_lock);
	fx_web_config_unref(conn->tls_web);
	free(conn);
	*socket_context = NULL;
}

/* GnuTLS calls this in the handshake once the client's certificate (or its absence) is known; non-zero
 * fails the handshake. RequestClientCert and RequireAnyClientCert take any certificate, as in Go. */
static int verify_client(gnutls_session_t session)
{
	struct MHD_Connection *connection = gnutls_session_get_ptr(session);
	struct conn *conn = connection ? conn_of(connection) : NULL;
	if (!conn || !conn->tls_web)
		return GNUTLS_E_CERTIFICATE_ERROR;
	enum fx_client_auth mode = fx_web_config_client_auth(conn->tls_web);
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(session, &n);
	bool ok = true;
	const char *why = "";
	if (!certs || n == 0) {
		ok = mode != FX_CLIENT_AUTH_REQUIRE_ANY && mode != FX_CLIENT_AUTH_REQUIRE_AND_VERIFY;
		why = "no client certificate";
	} else {
		if (mode == FX_CLIENT_AUTH_VERIFY_IF_GIVEN || mode == FX_CLIENT_AUTH_REQUIRE_AND_VERIFY) {
			unsigned status = 0;
			gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID,
							 (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0};
			ok = gnutls_certificate_verify_peers(session, &purpose, 1, &status) == 0 &&
			     status == 0;
			why = "the client certificate does not verify against client_ca_file";
		}
		if (ok && !fx_web_config_san_allowed(conn->tls_web, &certs[0])) {
			ok = false;
			why = "the client certificate has none of client_allowed_sans";
		}
	}
	if (ok)
		return 0;
	char host[INET6_ADDRSTRLEN] = "?";
	const void *ip = conn->addr.ss_family == AF_INET6
			     ? (const void *)&((const struct sockaddr_in6 *)&conn->addr)->sin6_addr
			     : (const void *)&((const struct sockaddr_in *)&conn->addr)->sin_addr;
	inet_ntop(conn->addr.ss_family == AF_INET6 ? AF_INET6 : AF_INET, ip, host, sizeof(host));
	fx_debug("http: TLS handshake from %s refused: %s", host, why);
	count_refusal(conn->server, REFUSED_CLIENT_CERT, 1);
	return GNUTLS_E_CERTIFICATE_ERROR;
}

/* ---- Lifetime ----------------------------------------------------------------------------------------- */

/* libmicrohttpd's messages (failed handshakes among them) are rate-limited: a flood of bad connections
 * must not flood the log. Called on libmicrohttpd's threads (one at a time) and at start. */
__attribute__((format(printf, 2, 0))) static void log_mhd(void *cls, const char *fmt, va_list ap)
{
	struct fx_http_server *server = cls;
	uint64_t suppressed = 0;
	pthread_mutex_lock(&server->stats_lock);
	bool allowed = fx_ratelimit_allow(&server->mhd_log_limit, fx_mono_ms(), &suppressed);
	pthread_mutex_unlock(&server->stats_lock);
	if (!allowed)
		return;
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t len = strlen(line);
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	fx_error("http %s: %s%s", server->addr, line,
		 suppressed ? " (similar messages were not logged)" : "");
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

/* ---- The watchdog: slow request heads, a changed web configuration file ------------------------------ */

/* Closes every connection whose request head is overdue. shutdown() only ends the stream: libmicrohttpd
 * sees the end on its thread and closes the connection as usual (conn_lock keeps the descriptor ours). */
static void reap_slow(struct fx_http_server *server)
{
	int64_t now = fx_mono_ms();
	pthread_mutex_lock(&server->conn_lock);
	for (struct conn *conn = server->conns; conn; conn = conn->next) {
		if (conn->in_request || conn->reaped ||
		    now - conn->waiting_since_ms < server->limits.read_timeout_ms)
			continue;
		/* Counted before the client can see the close (stats_lock inside conn_lock, never the reverse). */
		count_refusal(server, REFUSED_READ_TIMEOUT, 1);
		if (conn->fd >= 0)
			shutdown(conn->fd, SHUT_RDWR);
		conn->reaped = true;
	}
	pthread_mutex_unlock(&server->conn_lock);
}

static void count_reload(struct fx_http_server *server, bool ok)
{
	pthread_mutex_lock(&server->stats_lock);
	server->reloads[ok]++;
	server->last_reload_ok = ok;
	if (ok)
		server->last_reload_success_seconds = (double)fx_wall_ms() / 1000.0;
	pthread_mutex_unlock(&server->stats_lock);
}

/* The reload itself; reload_lock is held. */
static int reload_locked(struct fx_http_server *server)
{
	char why[512];
	struct fx_web_config *old = current_web(server);
	fx_web_config_stamp(old, server->web_config_file, &server->stamp);
	struct fx_web_config *web = fx_web_config_load(server->web_config_file, why, sizeof(why));
	if (web && fx_web_config_tls(web) != server->tls) {
		snprintf(why, sizeof(why), "%s: %s", server->web_config_file,
			 server->tls ? "tls_server_config cannot be removed without a restart"
				     : "tls_server_config cannot be added without a restart");
		fx_web_config_unref(web);
		web = NULL;
	}
	if (!web) {
		fx_web_config_unref(old);
		fx_error("http: web configuration not reloaded, the previous one stays in force: %s", why);
		count_reload(server, false);
		return -1;
	}
	if (server->tls)
		gnutls_certificate_set_verify_function(fx_web_config_credentials(web), verify_client);
	pthread_mutex_lock(&server->web_lock);
	server->web = web;
	pthread_mutex_unlock(&server->web_lock);
	fx_web_config_unref(old); /* the server's reference */
	fx_web_config_stamp(web, server->web_config_file, &server->stamp);
	fx_web_config_unref(old); /* ours; connections may hold it still */
	fx_info("http: web configuration %s reloaded", server->web_config_file);
	count_reload(server, true);
	return 0;
}

int fx_http_server_reload(struct fx_http_server *server)
{
	if (!server->web_config_file)
		return 0;
	pthread_mutex_lock(&server->reload_lock);
	int rc = reload_locked(server);
	pthread_mutex_unlock(&server->reload_lock);
	return rc;
}

/* Re-reads the file when it, or a file it names, has changed since the last attempt. */
static void reload_if_changed(struct fx_http_server *server)
{
	if (!server->web_config_file)
		return;
	pthread_mutex_lock(&server->reload_lock);
	struct fx_web_config *web = current_web(server);
	struct fx_web_stamp now;
	fx_web_config_stamp(web, server->web_config_file, &now);
	fx_web_config_unref(web);
	if (!fx_web_stamp_equal(&now, &server->stamp)) {
		fx_info("http: %s (or a file it names) changed: reloading", server->web_config_file);
		reload_locked(server);
	}
	pthread_mutex_unlock(&server->reload_lock);
}

static void *watchdog(void *opaque)
{
	struct fx_http_server *server = opaque;
	int64_t next_poll = fx_mono_ms() + WEB_CONFIG_POLL_MS;
	pthread_mutex_lock(&server->stop_lock);
	while (!server->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += WATCHDOG_TICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&server->stop_cond, &server->stop_lock, &until);
		if (server->stopping)
			break;
		pthread_mutex_unlock(&server->stop_lock);
		reap_slow(server);
		if (fx_mono_ms() >= next_poll) {
			reload_if_changed(server);
			next_poll = fx_mono_ms() + WEB_CONFIG_POLL_MS;
		}
		pthread_mutex_lock(&server->stop_lock);
	}
	pthread_mutex_unlock(&server->stop_lock);
	return NULL;
}

/* ---- Lifetime ----------------------------------------------------------------------------------------- */

/* `port` (host order) is only used in libmicrohttpd's messages when an address is given; the caller passes
 * it because reading it back through a sockaddr cast trips -Warray-bounds at -O3 for the IPv4 case. */
static struct MHD_Daemon *start_daemon(struct fx_http_server *server, unsigned flags,
				       const struct sockaddr *sockaddr, uint16_t port)
{
	/* libmicrohttpd's own connection limit is a backstop: accept_policy refuses first, and counts. */
	struct MHD_OptionItem options[16] = {
	    {MHD_OPTION_SOCK_ADDR, 0, (void *)sockaddr},
	    {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)server->limits.max_connections + 16, NULL},
	    {MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S, NULL},
	    {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)CONNECTION_MEMORY_BYTES, NULL},
	    {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_connection, server},
	    {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)request_completed, server},
	};
	size_t n = 6;
	if (server->tls) {
		/* The daemon's own credentials are never used: connection_started gives every session those
		 * of the configuration in force. libmicrohttpd needs a certificate to start, so it gets that
		 * one's. */
		flags |= MHD_USE_TLS;
		options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
						       (void *)fx_web_config_key_pem(server->web)};
		options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
						       (void *)fx_web_config_cert_pem(server->web)};
		options[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
						       (void *)fx_web_config_priority_string(server->web)};
	}
	options[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	/* The logger first, so that libmicrohttpd reports problems with the options after it through it. */
	return MHD_start_daemon(flags | MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, port, accept_policy,
				server, handle_request, server, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, server,
				MHD_OPTION_ARRAY, options, MHD_OPTION_END);
}

static struct MHD_Daemon *listen_on(struct fx_http_server *server, const struct sockaddr_storage *sockaddr,
				    const char *addr)
{
	struct MHD_Daemon *daemon;
	if (sockaddr->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sockaddr;
		bool any = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
		daemon = start_daemon(server, any ? MHD_USE_DUAL_STACK : MHD_USE_IPv6,
				      (const struct sockaddr *)sockaddr, ntohs(sin6->sin6_port));
		if (!daemon && any && !ipv6_available()) {
			/* No IPv6 on this host: every IPv4 address. */
			struct sockaddr_in sin;
			memset(&sin, 0, sizeof(sin));
			sin.sin_family = AF_INET;
			sin.sin_addr.s_addr = htonl(INADDR_ANY);
			sin.sin_port = sin6->sin6_port;
			fx_warn("http: no IPv6 on this host; listening on %s over IPv4 only", addr);
			daemon = start_daemon(server, 0, (const struct sockaddr *)&sin, ntohs(sin.sin_port));
		}
	} else {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sockaddr;
		daemon = start_daemon(server, 0, (const struct sockaddr *)sockaddr, ntohs(sin->sin_port));
	}
	return daemon;
}

/* Every connection is a descriptor: make room for them beyond the default soft limit of 1024, up to the
 * hard limit (as Go's runtime does for every Go exporter). */
static void raise_fd_limit(unsigned connections)
{
	struct rlimit limit;
	rlim_t want = (rlim_t)connections + 1024; /* Kafka, files, the listener */
	if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= want)
		return;
	limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > want ? want : limit.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
		fx_warn("http: cannot raise the open-file limit to %llu: %s", (unsigned long long)want,
			strerror(errno));
}

static void set_limits(struct fx_http_limits *limits, const struct fx_http_limits *given)
{
	*limits = *given;
	if (!limits->max_connections)
		limits->max_connections = FX_HTTP_DEFAULT_MAX_CONNECTIONS;
	if (!limits->max_connections_per_ip)
		limits->max_connections_per_ip = FX_HTTP_DEFAULT_MAX_CONNECTIONS_PER_IP;
	if (!limits->read_timeout_ms)
		limits->read_timeout_ms = FX_HTTP_DEFAULT_READ_TIMEOUT_MS;
	if (!limits->max_header_bytes)
		limits->max_header_bytes = FX_HTTP_DEFAULT_MAX_HEADER_BYTES;
}

static int init_locks(struct fx_http_server *server)
{
	pthread_condattr_t attr;
	if (pthread_condattr_init(&attr) != 0)
		return -1;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	int rc =
	    pthread_mutex_init(&server->stats_lock, NULL) || pthread_mutex_init(&server->web_lock, NULL) ||
	    pthread_mutex_init(&server->reload_lock, NULL) || pthread_mutex_init(&server->conn_lock, NULL) ||
	    pthread_mutex_init(&server->stop_lock, NULL) || pthread_cond_init(&server->stop_cond, &attr);
	pthread_condattr_destroy(&attr);
	return rc ? -1 : 0;
}

static void stop_watchdog(struct fx_http_server *server)
{
	if (!server->watchdog_started)
		return;
	pthread_mutex_lock(&server->stop_lock);
	server->stopping = true;
	pthread_cond_signal(&server->stop_cond);
	pthread_mutex_unlock(&server->stop_lock);
	pthread_join(server->watchdog, NULL);
	server->watchdog_started = false;
}

struct fx_http_server *fx_http_server_start(const struct fx_http_server_config *config,
					    const struct fx_http_hooks *hooks)
{
	struct fx_http_server *server = NULL;
	struct fx_web_config *web = config->web_config;
	struct sockaddr_storage sockaddr;
	socklen_t sockaddr_len;
	const char *addr = config->addr;

	if (fx_http_addr_parse(addr, &sockaddr, &sockaddr_len) != 0) {
		fx_error(
		    "http: invalid listen address \"%s\" (want [host]:port with a numeric host, e.g. :9590, "
		    "127.0.0.1:9590, [::1]:9590)",
		    addr ? addr : "");
		goto fail;
	}
	if (!web && !(web = fx_web_config_empty()))
		goto fail;
	server = calloc(1, sizeof(*server));
	if (!server || init_locks(server) != 0)
		goto fail;
	server->hooks = *hooks;
	set_limits(&server->limits, &config->limits);
	snprintf(server->addr, sizeof(server->addr), "%s", addr);
	if (config->web_config_file && config->web_config_file[0] &&
	    !(server->web_config_file = strdup(config->web_config_file)))
		goto fail;
	server->web = web;
	web = NULL;
	server->tls = fx_web_config_tls(server->web);
	if (server->tls)
		gnutls_certificate_set_verify_function(fx_web_config_credentials(server->web), verify_client);
	fx_web_config_stamp(server->web, server->web_config_file, &server->stamp);
	server->last_reload_ok = true;
	raise_fd_limit(server->limits.max_connections);

	server->daemon = listen_on(server, &sockaddr, addr);
	if (!server->daemon) {
		fx_error("http: cannot listen on %s", addr);
		goto fail;
	}
	if (pthread_create(&server->watchdog, NULL, watchdog, server) != 0) {
		fx_error("http: cannot start the watchdog thread");
		goto fail;
	}
	server->watchdog_started = true;
	fx_thread_name(server->watchdog, "http-watch", -1);
	if (fx_web_config_has_users(server->web) && !server->tls)
		fx_warn(
		    "http: basic auth without tls_server_config: passwords cross the network in the clear");
	fx_info("http: listening on %s (port %u, %s%s)", addr, fx_http_server_port(server),
		server->tls ? "HTTPS" : "HTTP", fx_web_config_has_users(server->web) ? ", basic auth" : "");
	return server;

fail:
	fx_web_config_unref(web);
	fx_http_server_destroy(server);
	return NULL;
}

struct fx_http_server *fx_http_server_create(const char *addr, const struct fx_http_hooks *hooks)
{
	struct fx_http_server_config config = {.addr = addr};
	return fx_http_server_start(&config, hooks);
}

void fx_http_server_destroy(struct fx_http_server *server)
{
	if (!server)
		return;
	stop_watchdog(server);
	if (server->daemon)
		MHD_stop_daemon(server->daemon);
	fx_web_config_unref(server->web);
	free(server->web_config_file);
	pthread_mutex_destroy(&server->stats_lock);
	pthread_mutex_destroy(&server->web_lock);
	pthread_mutex_destroy(&server->reload_lock);
	pthread_mutex_destroy(&server->conn_lock);
	pthread_mutex_destroy(&server->stop_lock);
	pthread_cond_destroy(&server->stop_cond);
	free(server);
}

void fx_http_server_set_reload(struct fx_http_server *server,
			       int (*fn)(void *opaque, char *message, size_t size), void *opaque)
{
	server->reload = fn;
	server->reload_opaque = opaque;
}

unsigned fx_http_server_port(const struct fx_http_server *server)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
	return info ? info->port : 0;
}

/* The security families: connections, refusals, reloads of the web configuration, the certificate. */
static int collect_security(struct fx_http_server *server, struct fx_family_list *out)
{
	uint64_t refused[N_REFUSALS], reloads[2];
	bool last_ok;
	double last_success;
	pthread_mutex_lock(&server->stats_lock);
	memcpy(refused, server->refused, sizeof(refused));
	memcpy(reloads, server->reloads, sizeof(reloads));
	last_ok = server->last_reload_ok;
	last_success = server->last_reload_success_seconds;
	pthread_mutex_unlock(&server->stats_lock);
	pthread_mutex_lock(&server->conn_lock);
	uint64_t open_connections = server->n_conns;
	pthread_mutex_unlock(&server->conn_lock);
	struct fx_web_config *web = current_web(server);
	long long not_after = fx_web_config_cert_not_after(web);
	fx_web_config_unref(web);

	if (fx_family_begin(out, "flow_exporter_http_connections", "HTTP connections open now.",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, open_connections, 0, NULL) ||
	    fx_family_begin(
		out, "flow_exporter_http_refused_total",
		"HTTP connections and requests refused, by reason (connection limits, slow request "
		"heads, oversized heads, failed authentication, methods, client certificates).",
		FX_METRIC_COUNTER))
		return -1;
	for (int r = 0; r < N_REFUSALS; r++) {
		struct fx_label label = {"reason", refusal_names[r]};
		if (fx_family_add_u64(out, refused[r], 1, &label))
			return -1;
	}
	if (fx_family_begin(out, "flow_exporter_web_config_reloads_total",
			    "Reloads of --web.config.file (on SIGHUP or on change), by result.",
			    FX_METRIC_COUNTER))
		return -1;
	static const char *const results[2] = {"failure", "success"};
	for (int r = 0; r < 2; r++) {
		struct fx_label label = {"result", results[r]};
		if (fx_family_add_u64(out, reloads[r], 1, &label))
			return -1;
	}
	if (fx_family_begin(
		out, "flow_exporter_web_config_last_reload_successful",
		"1 when the last reload of --web.config.file succeeded (or none was tried), else 0.",
		FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, last_ok ? 1 : 0, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_web_config_last_reload_success_timestamp_seconds",
			    "When --web.config.file was last reloaded successfully (Unix time; 0: never).",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_double(out, last_success, 0, NULL))
		return -1;
	if (server->tls &&
	    (fx_family_begin(out, "flow_exporter_web_tls_certificate_expiry_timestamp_seconds",
			     "When the served TLS certificate expires (its notAfter, Unix time).",
			     FX_METRIC_GAUGE) ||
	     fx_family_add_double(out, (double)not_after, 0, NULL)))
		return -1;
	return 0;
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
	return collect_security(server, out);
}
