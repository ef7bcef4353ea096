/* Per-endpoint push statistics and their self-metrics (fx_push_collect).
 *
 * DESIGN
 * - A struct fx_push_stats is written by the pusher's thread and read by fx_push_collect from the thread
 *   that takes a snapshot; its own mutex guards every field. The collector copies under each lock and
 *   encodes outside it.
 *
 * Thread: see push_stats.h. */
#include "fx/push_stats.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fx/clock.h"
#include "fx/log.h"

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
	uint64_t dropped_encode;
	uint64_t backlog_requests;
	int64_t last_success_ms; /* wall clock; 0 = never */
	int64_t last_duration_ms;
	/* Remote write only (protocol 0: a Pushgateway endpoint, none of these reported). */
	int protocol; /* 1 or 2: the remote-write major version in use */
	uint64_t fallbacks;
	uint64_t partial_writes;
	uint64_t samples_not_written;
	/* Remote write with a queue on disk only. */
	bool has_queue;
	struct fx_push_queue_stats queue;
};

struct fx_push_stats *fx_push_stats_create(const char *url)
{
	struct fx_push_stats *stats = calloc(1, sizeof(*stats));
	if (!stats)
		return NULL;
	stats->url = strdup(url);
	if (!stats->url || pthread_mutex_init(&stats->lock, NULL) != 0) {
		fx_error("push: cannot create the statistics of %s", url);
		free(stats->url);
		free(stats);
		return NULL;
	}
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

void fx_push_stats_encode_failed(struct fx_push_stats *stats)
{
	pthread_mutex_lock(&stats->lock);
	stats->dropped_encode++;
	pthread_mutex_unlock(&stats->lock);
}

void fx_push_stats_set_protocol(struct fx_push_stats *stats, int major)
{
	pthread_mutex_lock(&stats->lock);
	stats->protocol = major;
	pthread_mutex_unlock(&stats->lock);
}

void fx_push_stats_add_rw(struct fx_push_stats *stats, uint64_t fallbacks, uint64_t partial_writes,
			  uint64_t samples_not_written)
{
	pthread_mutex_lock(&stats->lock);
	stats->fallbacks += fallbacks;
	stats->partial_writes += partial_writes;
	stats->samples_not_written += samples_not_written;
	pthread_mutex_unlock(&stats->lock);
}

void fx_push_stats_set_queue(struct fx_push_stats *stats, const struct fx_push_queue_stats *queue)
{
	pthread_mutex_lock(&stats->lock);
	stats->has_queue = true;
	stats->queue = *queue;
	pthread_mutex_unlock(&stats->lock);
}

void fx_push_stats_set_backlog(struct fx_push_stats *stats, uint64_t requests)
{
	pthread_mutex_lock(&stats->lock);
	stats->backlog_requests = requests;
	pthread_mutex_unlock(&stats->lock);
}

/* 429 counts as 4xx (it is still retried); an unexpected 1xx or 3xx final status counts as 4xx too. */
void fx_push_stats_record(struct fx_push_stats *stats, const struct fx_http_result *result, bool delivered)
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
	if (class == CLASS_2XX && delivered)
		stats->last_success_ms = fx_wall_ms();
	pthread_mutex_unlock(&stats->lock);
}

/* The remote-write endpoints' protocol families (push_stats.h). */
static int collect_remote_write(const struct fx_push_stats *copies, size_t n, struct fx_family_list *out)
{
	size_t n_rw = 0;
	for (size_t i = 0; i < n; i++)
		n_rw += copies[i].protocol != 0;
	if (n_rw == 0)
		return 0;
	int rc = fx_family_begin(
	    out, "flow_exporter_remote_write_protocol",
	    "Remote-write protocol in use by endpoint: 1 for the version sent now, 0 for the other.",
	    FX_METRIC_GAUGE);
	for (size_t i = 0; i < n; i++)
		for (int major = 1; copies[i].protocol && major <= 2; major++) {
			struct fx_label labels[] = {{"protocol", major == 1 ? "1.0" : "2.0"},
						    {"url", copies[i].url}};
			rc |= fx_family_add_u64(out, copies[i].protocol == major, 2, labels);
		}
	static const struct {
		const char *name, *help;
		size_t offset;
	} counters[] = {
	    {"flow_exporter_remote_write_fallbacks_total",
	     "Switches of an auto endpoint from 2.0 to 1.0 (a 415, or a 2xx without the Written headers).",
	     offsetof(struct fx_push_stats, fallbacks)},
	    {"flow_exporter_remote_write_partial_writes_total",
	     "2.0 requests whose X-Prometheus-Remote-Write-Samples-Written was below the samples sent.",
	     offsetof(struct fx_push_stats, partial_writes)},
	    {"flow_exporter_remote_write_samples_not_written_total",
	     "Samples sent in 2.0 requests that the receiver said it did not write.",
	     offsetof(struct fx_push_stats, samples_not_written)},
	};
	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
		rc |= fx_family_begin(out, counters[c].name, counters[c].help, FX_METRIC_COUNTER);
		for (size_t i = 0; i < n; i++) {
			uint64_t value;
			memcpy(&value, (const char *)&copies[i] + counters[c].offset, sizeof(value));
			if (copies[i].protocol)
				rc |= fx_family_add_u64(out, value, 1,
							&(struct fx_label){"url", copies[i].url});
		}
	}
	return rc;
}

/* The disk queues' families (push_stats.h), for the endpoints that have one. */
static int collect_queue(const struct fx_push_stats *copies, size_t n, struct fx_family_list *out)
{
	static const struct {
		const char *name, *help;
		enum fx_metric_type type;
		size_t offset;
	} families[] = {
	    {"flow_exporter_push_queue_bytes", "Bytes of the requests queued on disk (--push-queue-dir).",
	     FX_METRIC_GAUGE, offsetof(struct fx_push_queue_stats, bytes)},
	    {"flow_exporter_push_queue_requests", "Requests queued on disk.", FX_METRIC_GAUGE,
	     offsetof(struct fx_push_queue_stats, requests)},
	    {"flow_exporter_push_queue_dropped_requests_total",
	     "Oldest requests dropped from the disk queue past --push-queue-max-bytes.", FX_METRIC_COUNTER,
	     offsetof(struct fx_push_queue_stats, dropped_requests)},
	    {"flow_exporter_push_queue_dropped_bytes_total",
	     "Bytes of the requests dropped from the disk queue.", FX_METRIC_COUNTER,
	     offsetof(struct fx_push_queue_stats, dropped_bytes)},
	    {"flow_exporter_push_queue_disk_errors_total",
	     "Disk operations of the queue that failed (the requests then stay in memory only).",
	     FX_METRIC_COUNTER, offsetof(struct fx_push_queue_stats, disk_errors)},
	    {"flow_exporter_push_queue_corrupt_total",
	     "Torn or corrupt regions of the disk queue detected and skipped.", FX_METRIC_COUNTER,
	     offsetof(struct fx_push_queue_stats, corrupt)},
	};
	size_t n_queues = 0;
	for (size_t i = 0; i < n; i++)
		n_queues += copies[i].has_queue;
	int rc = 0;
	for (size_t f = 0; n_queues && f < sizeof(families) / sizeof(families[0]); f++) {
		rc |= fx_family_begin(out, families[f].name, families[f].help, families[f].type);
		for (size_t i = 0; i < n; i++) {
			uint64_t value;
			memcpy(&value, (const char *)&copies[i].queue + families[f].offset, sizeof(value));
			if (copies[i].has_queue)
				rc |= fx_family_add_u64(out, value, 1,
							&(struct fx_label){"url", copies[i].url});
		}
	}
	return rc;
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
			      "Push requests by endpoint and by result (network: no HTTP status).",
			      FX_METRIC_COUNTER);
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < N_CLASSES; c++) {
			struct fx_label labels[] = {{"status_class", class_names[c]}, {"url", copies[i].url}};
			rc |= fx_family_add_u64(out, copies[i].requests[c], 2, labels);
		}
	rc |= fx_family_begin(out, "flow_exporter_push_samples_total",
			      "Samples delivered (acknowledged by 2xx).", FX_METRIC_COUNTER);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_u64(out, copies[i].samples, 1, &(struct fx_label){"url", copies[i].url});
	rc |=
	    fx_family_begin(out, "flow_exporter_push_retries_total",
			    "Requests sent again after a 5xx, a 429 or a network error.", FX_METRIC_COUNTER);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_u64(out, copies[i].retries, 1, &(struct fx_label){"url", copies[i].url});
	rc |= fx_family_begin(out, "flow_exporter_push_dropped_batches_total",
			      "Requests dropped: refused with a 4xx other than 429, oldest past the backlog "
			      "bound, or not encoded "
			      "(a body past its bound, or no memory).",
			      FX_METRIC_COUNTER);
	for (size_t i = 0; i < n; i++) {
		struct fx_label refused[] = {{"reason", "4xx"}, {"url", copies[i].url}};
		struct fx_label full[] = {{"reason", "backlog_full"}, {"url", copies[i].url}};
		rc |= fx_family_add_u64(out, copies[i].dropped_4xx, 2, refused);
		rc |= fx_family_add_u64(out, copies[i].dropped_backlog, 2, full);
		struct fx_label unencoded[] = {{"reason", "encode"}, {"url", copies[i].url}};
		rc |= fx_family_add_u64(out, copies[i].dropped_encode, 2, unencoded);
	}
	rc |= fx_family_begin(out, "flow_exporter_push_backlog_requests", "Requests waiting to be sent.",
			      FX_METRIC_GAUGE);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_u64(out, copies[i].backlog_requests, 1,
					&(struct fx_label){"url", copies[i].url});
	rc |= fx_family_begin(out, "flow_exporter_push_last_success_timestamp_seconds",
			      "Wall-clock time of the last 2xx answer (0: never).", FX_METRIC_GAUGE);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_double(out, (double)copies[i].last_success_ms / 1000.0, 1,
					   &(struct fx_label){"url", copies[i].url});
	rc |= fx_family_begin(out, "flow_exporter_push_duration_seconds",
			      "Duration of the last push request.", FX_METRIC_GAUGE);
	for (size_t i = 0; i < n; i++)
		rc |= fx_family_add_double(out, (double)copies[i].last_duration_ms / 1000.0, 1,
					   &(struct fx_label){"url", copies[i].url});
	rc |= collect_remote_write(copies, n, out);
	rc |= collect_queue(copies, n, out);
	free(copies);
	return rc ? -1 : 0;
}
