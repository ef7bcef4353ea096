/* The HTTP endpoint (libmicrohttpd): /metrics (gzip when accepted), a landing page at /, /-/healthy and
 * /-/ready.
 *
 * Thread: libmicrohttpd's internal thread runs the handlers; they only call the hooks below. */
#ifndef FX_HTTP_SERVER_H
#define FX_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "fx/family_list.h"
#include "fx/snapshot.h"

struct fx_http_hooks {
	/* Returns a snapshot owned by the caller (the server destroys it), or NULL (answered 500). */
	struct fx_snapshot *(*take_snapshot)(void *opaque);
	/* True once the exporter consumes (answers /-/ready with 200, else 503). May be NULL: always ready. */
	bool (*is_ready)(void *opaque);
	void *opaque;
};

/* Parses a Go-style listen address: ":9590" (every address), "127.0.0.1:9590", "[::1]:9590",
 * "localhost:9590" is refused (numeric hosts only, nothing is resolved). Port 0 picks a free port.
 * Returns 0 or -1. */
int fx_http_addr_parse(const char *addr, struct sockaddr_storage *out, socklen_t *out_len);

struct fx_http_server;

/* Binds and starts serving. Returns NULL (and logs why, naming the address) on failure. hooks is copied. */
struct fx_http_server *fx_http_server_create(const char *addr, const struct fx_http_hooks *hooks);
/* Stops serving and frees. Accepts NULL. */
void fx_http_server_destroy(struct fx_http_server *server);
/* The bound port (useful when the address asked for port 0). */
unsigned fx_http_server_port(const struct fx_http_server *server);

/* Serves POST /-/reload with fn: 0 is answered 200, -1 500 with the message fn wrote. Without it the
 * path is 404. Call before requests arrive (right after create). */
void fx_http_server_set_reload(struct fx_http_server *server,
			       int (*fn)(void *opaque, char *message, size_t size), void *opaque);

/* Self-metrics: flow_exporter_scrapes_total{encoding}, flow_exporter_scrape_duration_seconds (last) ... */
int fx_http_server_collect(void *server, struct fx_family_list *out);

#endif
