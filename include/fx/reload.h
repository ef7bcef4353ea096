/* Live reload: a list of reloadable sources (the map files the exporter was given), reloaded all at once
 * on SIGHUP or POST /-/reload. Each source builds its new map off the hot path and swaps a pointer; one
 * that fails keeps its previous map. The result of the last reload is a self-metric.
 *
 * Thread: fx_reload_add before threads start; fx_reload_all and fx_reload_collect from any thread (one
 * reload runs at a time). */
#ifndef FX_RELOAD_H
#define FX_RELOAD_H

#include <stddef.h>

#include "fx/csv.h"
#include "fx/family_list.h"

#define FX_RELOAD_MAX_SOURCES 8

/* Re-reads one source. Returns 0, or -1 with *error naming the failing line (0: not about a line). */
typedef int (*fx_reload_fn)(void *opaque, struct fx_parse_error *error);

struct fx_reload;

struct fx_reload *fx_reload_create(void);
void fx_reload_destroy(struct fx_reload *reload); /* accepts NULL */

/* what: how the logs and errors name the source, e.g. "--interface-names /etc/x.csv" (copied).
 * Returns 0, or -1 past FX_RELOAD_MAX_SOURCES or out of memory. */
int fx_reload_add(struct fx_reload *reload, const char *what, fx_reload_fn fn, void *opaque);

/* Reloads every source (each even when an earlier one failed). Returns 0 when all succeeded; else -1
 * with the failures in message ("<what>: line N: <why>", one a line). Logs each failure. `trigger` names
 * what asked ("SIGHUP", "POST /-/reload") in the log. */
int fx_reload_all(struct fx_reload *reload, const char *trigger, char *message, size_t size);

/* flow_exporter_reload_last_successful (1 or 0), flow_exporter_reload_last_success_timestamp_seconds
 * (the start time until a reload succeeds), flow_exporter_reloads_total{result}. An fx_collect_fn. */
int fx_reload_collect(void *reload, struct fx_family_list *out);

#endif
