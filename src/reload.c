/* Live reload (see reload.h): the sources in the order they were added, one reload at a time under
 * `lock`, and the outcome of the last one.
 *
 * Thread: any; `lock` serializes reloads and guards the outcome. */
#include "fx/reload.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/clock.h"
#include "fx/log.h"

struct source {
	char *what;
	fx_reload_fn fn;
	void *opaque;
};

struct fx_reload {
	struct source sources[FX_RELOAD_MAX_SOURCES];
	size_t n_sources;
	pthread_mutex_t lock;
	bool last_ok;
	int64_t last_success_ms;
	uint64_t successes, failures;
};

struct fx_reload *fx_reload_create(void)
{
	struct fx_reload *reload = calloc(1, sizeof(*reload));
	if (!reload)
		return NULL;
	pthread_mutex_init(&reload->lock, NULL);
	/* Like Prometheus: a process that never reloaded counts its start as the last good configuration. */
	reload->last_ok = true;
	reload->last_success_ms = fx_wall_ms();
	return reload;
}

void fx_reload_destroy(struct fx_reload *reload)
{
	if (!reload)
		return;
	for (size_t i = 0; i < reload->n_sources; i++)
		free(reload->sources[i].what);
	pthread_mutex_destroy(&reload->lock);
	free(reload);
}

int fx_reload_add(struct fx_reload *reload, const char *what, fx_reload_fn fn, void *opaque)
{
	if (reload->n_sources == FX_RELOAD_MAX_SOURCES)
		return -1;
	char *copy = strdup(what);
	if (!copy)
		return -1;
	reload->sources[reload->n_sources++] = (struct source){copy, fn, opaque};
	return 0;
}

int fx_reload_all(struct fx_reload *reload, const char *trigger, char *message, size_t size)
{
	size_t used = 0;
	bool ok = true;
	if (size)
		message[0] = '\0';
	pthread_mutex_lock(&reload->lock);
	fx_info("reload (%s): re-reading %zu file(s)", trigger, reload->n_sources);
	for (size_t i = 0; i < reload->n_sources; i++) {
		const struct source *source = &reload->sources[i];
		struct fx_parse_error error = {0};
		if (!source->fn(source->opaque, &error))
			continue;
		ok = false;
		char line[32] = "";
		if (error.line)
			snprintf(line, sizeof(line), "line %zu: ", error.line);
		fx_error("reload (%s): %s refused, the previous version stays in force: %s%s", trigger,
			 source->what, line, error.message);
		if (used < size) {
			int n = snprintf(message + used, size - used, "%s: %s%s\n", source->what, line,
					 error.message);
			used += n > 0 ? (size_t)n : 0;
		}
	}
	reload->last_ok = ok;
	if (ok) {
		reload->last_success_ms = fx_wall_ms();
		reload->successes++;
	} else {
		reload->failures++;
	}
	pthread_mutex_unlock(&reload->lock);
	return ok ? 0 : -1;
}

int fx_reload_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_reload *reload = opaque;
	pthread_mutex_lock(&reload->lock);
	bool ok = reload->last_ok;
	double last = (double)reload->last_success_ms / 1000.0;
	uint64_t successes = reload->successes, failures = reload->failures;
	pthread_mutex_unlock(&reload->lock);
	const struct fx_label success = {"result", "success"}, failure = {"result", "failure"};
	if (fx_family_begin(
		out, "flow_exporter_reload_last_successful",
		"Whether the last reload (SIGHUP, POST /-/reload) read every file (1) or kept an old "
		"version of one (0).",
		FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, ok ? 1 : 0, 0, NULL) ||
	    fx_family_begin(
		out, "flow_exporter_reload_last_success_timestamp_seconds",
		"When the files were last all read successfully (Unix time; the start time before any "
		"reload).",
		FX_METRIC_GAUGE) ||
	    fx_family_add_double(out, last, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_reloads_total", "Reloads, by result.", FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, successes, 1, &success) || fx_family_add_u64(out, failures, 1, &failure))
		return -1;
	return 0;
}
