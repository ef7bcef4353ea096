/* The HTTP endpoint (libmicrohttpd): /metrics (gzip when accepted), a landing page at /, /-/healthy and
 * /-/ready; HTTPS, client certificates, basic auth and response headers from the web configuration file
 * (fx/web_config.h), and bounds on connections, per-address connections, request-head time and size.
 *
 * Thread: libmicrohttpd's internal thread runs the handlers; they only call the hooks below. The server's
 * own watchdog thread closes connections past --web-read-timeout and re-reads the web configuration file
 * when it changes. */
#ifndef FX_HTTP_SERVER_H
#define FX_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "fx/family_list.h"
#include "fx/snapshot.h"
#include "fx/web_config.h"

struct fx_http_hooks {
	/* Returns a snapshot owned by the caller (the server destroys it), or NULL (answered 500). */
	struct fx_snapshot *(*take_snapshot)(void *opaque);
	/* True once the exporter consumes (answers /-/ready with 200, else 503). May be NULL: always ready.
	 */
	bool (*is_ready)(void *opaque);
	void *opaque;
};

/* Parses a Go-style listen address: ":9590" (every address), "127.0.0.1:9590", "[::1]:9590",
 * "localhost:9590" is refused (numeric hosts only, nothing is resolved). Port 0 picks a free port.
 * Returns 0 or -1. */
int fx_http_addr_parse(const char *addr, struct sockaddr_storage *out, socklen_t *out_len);

struct fx_http_server;

/* Bounds of the HTTP surface; a zero field takes the default below. */
#define FX_HTTP_DEFAULT_MAX_CONNECTIONS 512
#define FX_HTTP_DEFAULT_MAX_CONNECTIONS_PER_IP 32
#define FX_HTTP_DEFAULT_READ_TIMEOUT_MS 10000
#define FX_HTTP_DEFAULT_MAX_HEADER_BYTES 32768
struct fx_http_limits {
	unsigned max_connections;	 /* open connections; past it new ones are closed at once */
	unsigned max_connections_per_ip; /* open connections from one client address */
	int64_t read_timeout_ms; /* a request head must arrive within this of the connection's start or
				    of its previous response */
	size_t max_header_bytes; /* request line and headers; larger is answered 431 */
};

struct fx_http_server_config {
	const char *addr;
	/* The web configuration in force at start: the server takes this reference (the caller NULLs its
	 * pointer). NULL: plain HTTP, no authentication. */
	struct fx_web_config *web_config;
	/* The file it came from, re-read by fx_http_server_reload and when it (or a file it names) changes;
	 * NULL or "": none. Copied. */
	const char *web_config_file;
	struct fx_http_limits limits;
};

/* Binds and starts serving. Returns NULL (and logs why, naming the address) on failure; the web
 * configuration's reference is dropped then too. hooks is copied. */
struct fx_http_server *fx_http_server_start(const struct fx_http_server_config *config,
					    const struct fx_http_hooks *hooks);
/* fx_http_server_start with the default limits and no web configuration. */
struct fx_http_server *fx_http_server_create(const char *addr, const struct fx_http_hooks *hooks);
/* Re-reads the web configuration file: a good file replaces the one in force (new connections use its
 * TLS settings, every request its users and headers); a bad one is logged and counted, and the old one
 * stays. Returns 0 when the new file is in force (or there is no file), -1 otherwise. Thread: any (one
 * reload at a time). */
int fx_http_server_reload(struct fx_http_server *server);
/* Stops serving and frees. Accepts NULL. */
void fx_http_server_destroy(struct fx_http_server *server);
/* The bound port (useful when the address asked for port 0). */
unsigned fx_http_server_port(const struct fx_http_server *server);

/* Serves POST /-/reload with fn: 0 is answered 200, -1 500 with the message fn wrote. Without it the
 * path is 404. Call before requests arrive (right after create). */
void fx_http_server_set_reload(struct fx_http_server *server,
			       int (*fn)(void *opaque, char *message, size_t size), void *opaque);

/* Self-metrics: flow_exporter_scrapes_total{encoding}, flow_exporter_scrape_duration_seconds (last),
 * flow_exporter_http_connections, flow_exporter_http_refused_total{reason},
 * flow_exporter_web_config_reloads_total{result}, flow_exporter_web_config_last_reload_successful ... */
int fx_http_server_collect(void *server, struct fx_family_list *out);

#endif
