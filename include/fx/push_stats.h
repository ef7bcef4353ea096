/* The statistics of one push endpoint (remote write or Pushgateway) and the collector that reports them as
 * self-metrics.
 *
 * Thread: every function may be called from any thread (each stats takes its own lock), except create and
 * destroy, which belong to the thread that owns the pusher. */
#ifndef FX_PUSH_STATS_H
#define FX_PUSH_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/family_list.h"
#include "fx/http_client.h"
#include "fx/push_queue.h"

/* Counters of one endpoint; read by fx_push_collect. */
struct fx_push_stats;

/* The endpoints whose self-metrics one collector reports, every family once with one sample set per
 * endpoint (url="<URL without userinfo or query>"):
 *   flow_exporter_push_requests_total{url,status_class="2xx|4xx|5xx|network"}
 *   flow_exporter_push_samples_total{url}, flow_exporter_push_retries_total{url}
 *   flow_exporter_push_dropped_batches_total{url,reason="4xx|backlog_full|encode"} (a batch is one request)
 *   flow_exporter_push_backlog_requests{url} (gauge)
 *   flow_exporter_push_last_success_timestamp_seconds{url}, flow_exporter_push_duration_seconds{url} (last)
 * The arrays are borrowed for the collector's lifetime. */
struct fx_push_endpoints {
	struct fx_push_stats *const *stats;
	size_t n;
};

/* An fx_collect_fn; `endpoints` is a struct fx_push_endpoints *. Takes each stats' lock in turn. */
int fx_push_collect(void *endpoints, struct fx_family_list *out);

/* Statistics of an endpoint whose label is url (copied). NULL on failure. */
struct fx_push_stats *fx_push_stats_create(const char *url);
/* Accepts NULL. No other thread may use the stats any more (the collector is gone, the pusher stopped). */
void fx_push_stats_destroy(struct fx_push_stats *stats);
/* Replaces the url label. Returns 0 or -1 (memory). */
__attribute__((warn_unused_result)) int fx_push_stats_set_url(struct fx_push_stats *stats, const char *url);
/* Counts one request by its status class (429, and an unexpected 1xx or 3xx, count as 4xx) and its
 * duration; a 2xx that delivered (delivered: not a remote-write 2.0 probe answered by a 1.0 receiver, whose
 * data is sent again as 1.0) is the time of the last success. */
void fx_push_stats_record(struct fx_push_stats *stats, const struct fx_http_result *result, bool delivered);
void fx_push_stats_add(struct fx_push_stats *stats, uint64_t samples, uint64_t retries, uint64_t dropped_4xx,
		       uint64_t dropped_backlog);
void fx_push_stats_set_backlog(struct fx_push_stats *stats, uint64_t requests);
/* A push that could not be encoded (a body past its bound, or no memory): dropped, reason="encode". */
void fx_push_stats_encode_failed(struct fx_push_stats *stats);
/* Remote write: the major version now sent (1 or 2), which makes the collector report, for this endpoint,
 *   flow_exporter_remote_write_protocol{url,protocol="1.0|2.0"} (gauge: 1 for the one in use, 0 the other)
 *   flow_exporter_remote_write_fallbacks_total{url}, flow_exporter_remote_write_partial_writes_total{url},
 *   flow_exporter_remote_write_samples_not_written_total{url} */
void fx_push_stats_set_protocol(struct fx_push_stats *stats, int major);
void fx_push_stats_add_rw(struct fx_push_stats *stats, uint64_t fallbacks, uint64_t partial_writes,
			  uint64_t samples_not_written);
/* Remote write with a queue on disk (--push-queue-dir): its counters, which makes the collector report, for
 * this endpoint,
 *   flow_exporter_push_queue_bytes{url}, flow_exporter_push_queue_requests{url} (gauges: queued now)
 *   flow_exporter_push_queue_dropped_requests_total{url}, flow_exporter_push_queue_dropped_bytes_total{url}
 *   flow_exporter_push_queue_disk_errors_total{url}, flow_exporter_push_queue_corrupt_total{url} */
void fx_push_stats_set_queue(struct fx_push_stats *stats, const struct fx_push_queue_stats *queue);

#endif
