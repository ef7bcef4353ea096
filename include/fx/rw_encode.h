/* Step (6b): Prometheus remote write 1.0 of a snapshot. Pure: snapshot in, compressed request bodies out.
 *
 * Every flow series gives one TimeSeries per family of each direction it has seen (flow_receive_bytes_total,
 * flow_receive_packets_total for receive; the transmit pair for transmit), with the flow labels that
 * series_labels.h gives for its key (the same the text format writes: label_mask and key.present, AS names
 * from the snapshot's map, empty values left out),
 * plus __name__ and the external labels; then the snapshot's self-metric families. Labels are sorted by name
 * and unique: when an external label has the name of a series' own label, the series' label wins.
 * Every sample of one encoding carries the one timestamp the caller gives.
 *
 * A series of snapshot->expired with updated_ms > stale_since_ms gets a stale marker (the value with bits
 * FX_RW_STALE_NAN_BITS) for every family it had, unless the snapshot also holds a live series with its key.
 * Nothing else is ever encoded with those bits: a NaN gauge is sent as FX_RW_NAN_BITS.
 *
 * The TimeSeries are split into requests of at most max_series_per_request each; each request is a
 * packed prometheus.WriteRequest compressed with snappy (block format).
 *
 * Thread: an encoder keeps reusable scratch memory, so one thread uses it at a time. */
#ifndef FX_RW_ENCODE_H
#define FX_RW_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "fx/family_list.h"
#include "fx/snapshot.h"

/* Prometheus' staleness marker (value.StaleNaN). */
#define FX_RW_STALE_NAN_BITS UINT64_C(0x7ff0000000000002)
/* What any other NaN becomes, so that it can never be mistaken for a stale marker. */
#define FX_RW_NAN_BITS UINT64_C(0x7ff8000000000001)

#define FX_RW_E_NOMEM (-1)
#define FX_RW_E_ENCODE (-2)
/* A series or a request past the encoder's bounds (a label value over FX_SERIES_LABEL_VALUE_MAX). */
#define FX_RW_E_TOO_BIG (-3)

/* The text of an FX_RW_E_* code. */
const char *fx_rw_strerror(int code);

struct fx_rw_encoder_config {
	/* Added to every TimeSeries. Copied. Validated by the config (config.c). */
	const struct fx_label *external_labels;
	size_t n_external_labels;
	size_t max_series_per_request; /* > 0 */
};

/* One HTTP body: a snappy-compressed WriteRequest. */
struct fx_rw_request {
	char *body; /* owned */
	size_t len;
	size_t n_series;  /* TimeSeries in it */
	size_t n_samples; /* samples in it (one per TimeSeries), stale markers included */
	int64_t timestamp_ms;
};

/* A growable list of requests; zero-initialise it. */
struct fx_rw_requests {
	struct fx_rw_request *items;
	size_t n, cap;
};

/* Frees the bodies and the array, and leaves the list empty. Accepts NULL. */
void fx_rw_requests_free(struct fx_rw_requests *requests);
void fx_rw_request_free(struct fx_rw_request *request);

struct fx_rw_encoder;

/* Returns NULL on allocation failure. */
struct fx_rw_encoder *fx_rw_encoder_create(const struct fx_rw_encoder_config *config);
/* Accepts NULL. */
void fx_rw_encoder_destroy(struct fx_rw_encoder *encoder);

/* Appends the requests for `snapshot` (borrowed) at `timestamp_ms` to `out`. On error what was appended
 * stays in `out` (the caller frees it). Returns 0, FX_RW_E_NOMEM, FX_RW_E_ENCODE or FX_RW_E_TOO_BIG (a
 * series past the encoder's bounds; see rw_encode.c "Bounds"). */
__attribute__((warn_unused_result)) int fx_rw_encode(struct fx_rw_encoder *encoder,
						     const struct fx_snapshot *snapshot, int64_t timestamp_ms,
						     int64_t stale_since_ms, struct fx_rw_requests *out);

/* Appends one request that carries only metadata (WriteRequest.metadata, as Prometheus sends it: a request
 * of its own): type counter or gauge, help, metric family name (the sample name: flow_receive_bytes_total)
 * and unit ("bytes" for the byte families), for the four flow families and every self-metric family with a
 * sample. Its n_series and n_samples are 0. Returns 0 or an FX_RW_E_* code. */
__attribute__((warn_unused_result)) int fx_rw_encode_metadata(struct fx_rw_encoder *encoder,
							      const struct fx_snapshot *snapshot,
							      struct fx_rw_requests *out);

#endif
