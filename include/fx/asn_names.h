/* AS names from cidr-report's asn.txt format ("<asn>\t<name>, <CC>" per line), as the Go program used.
 *
 * A source is a file path or an http(s) URL. The last good download is cached on disk so a restart with no
 * network still has names; the list is refreshed in the background; a failure keeps the previous names.
 * Readers take an immutable, reference-counted map, so a refresh never blocks them.
 *
 * Thread: fx_asn_names runs one background thread of its own; every other function may be called from any
 * thread. */
#ifndef FX_ASN_NAMES_H
#define FX_ASN_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "fx/asn_map.h"
#include "fx/family_list.h"

struct fx_asn_names_config {
	const char *source;	   /* file path or http(s):// URL; ignored when embedded_text is set */
	const char *cache_path;	   /* where a downloaded list is kept; NULL for none */
	const char *embedded_text; /* a built-in list (the demo); NUL-terminated; borrowed for the lifetime */
	int64_t refresh_ms;	   /* re-read or re-download every so often; 0 = never */
	int64_t timeout_ms;	   /* bound on one download */
};

struct fx_asn_names;

/* Loads the cache (or the file, or the embedded text) before returning, then starts the background thread
 * that downloads and refreshes. The config's strings are copied. Returns NULL (and logs why) on failure to
 * start; a source that cannot be read is not a failure (it is logged, counted, and retried). */
struct fx_asn_names *fx_asn_names_create(const struct fx_asn_names_config *config);
/* Stops the thread (aborting a download in progress) and drops the current map. Accepts NULL. */
void fx_asn_names_destroy(struct fx_asn_names *names);

/* SIGHUP and POST /-/reload: the background thread re-reads the file (even when it looks unchanged) or
 * downloads the list now, instead of at the next --asn-names-refresh. Asynchronous: the result shows in
 * the AS-name self-metrics, and a failure keeps the names in force. No-op for the embedded list. */
void fx_asn_names_reload(struct fx_asn_names *names);

/* The current map with a reference the caller must drop with fx_asn_map_unref; NULL when none is loaded. */
struct fx_asn_map *fx_asn_names_acquire(struct fx_asn_names *names);

/* Self-metrics: flow_exporter_asn_names (gauge), flow_exporter_asn_names_loads_total{result},
 * flow_exporter_asn_names_last_success_timestamp_seconds. An fx_collect_fn. */
int fx_asn_names_collect(void *names, struct fx_family_list *out);

#endif
