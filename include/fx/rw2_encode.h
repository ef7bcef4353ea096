/* Step (6b), remote write 2.0: a snapshot as io.prometheus.write.v2.Request bodies. Pure: snapshot in,
 * compressed request bodies out, no I/O.
 *
 * The same series as the 1.0 encoder (rw_encode.h) in the same order, split at the same points (at most
 * max_series_per_request TimeSeries a request), so that request i of a 2.0 encoding carries exactly the
 * TimeSeries of request i of the 1.0 encoding of the same snapshot: the sender can re-send any request as
 * 1.0 when an endpoint turns out to be a 1.0 receiver. The same labels, external labels and stale markers.
 *
 * Each request has its own symbol table: symbols[0] is "", every other string of the request (label names
 * and values, help texts, units) appears once, and every reference points into it. Every TimeSeries
 * carries its metadata (type counter or gauge, help, unit "bytes" for the byte families), labels sorted by
 * name and unique, no empty name or value, and one sample whose start_timestamp is the series' created_ms
 * (when it started counting) for a flow series, 0 (unknown) for a self-metric.
 *
 * Thread: an encoder keeps reusable scratch memory, so one thread uses it at a time. */
#ifndef FX_RW2_ENCODE_H
#define FX_RW2_ENCODE_H

#include <stdint.h>

#include "fx/rw_encode.h"

/* The request headers of remote write 2.0 (the spec's). */
#define FX_RW2_CONTENT_TYPE "application/x-protobuf;proto=io.prometheus.write.v2.Request"
#define FX_RW2_VERSION "2.0.0"

struct fx_rw2_encoder;

/* Uses the config of the 1.0 encoder (external labels copied, max series per request). NULL on allocation
 * failure. */
struct fx_rw2_encoder *fx_rw2_encoder_create(const struct fx_rw_encoder_config *config);
/* Accepts NULL. */
void fx_rw2_encoder_destroy(struct fx_rw2_encoder *encoder);

/* Appends the requests for `snapshot` (borrowed) at `timestamp_ms` to `out`, like fx_rw_encode (stale
 * markers for the series expired after stale_since_ms). Returns 0 or an FX_RW_E_* code; on error what was
 * appended stays in `out`. */
__attribute__((warn_unused_result)) int fx_rw2_encode(struct fx_rw2_encoder *encoder,
						      const struct fx_snapshot *snapshot,
						      int64_t timestamp_ms, int64_t stale_since_ms,
						      struct fx_rw_requests *out);

#endif
