/* Step (6a): the Prometheus text exposition format 0.0.4 of a snapshot. Pure: snapshot in, bytes out.
 *
 * Flow families first (flow_receive_bytes_total, flow_transmit_bytes_total, flow_receive_packets_total,
 * flow_transmit_packets_total), then the snapshot's self-metric families, each contiguous with HELP and
 * TYPE; the flow labels those of series_labels.h, in name order; label values escaped (backslash, double
 * quote, newline); empty label values left out. */
#ifndef FX_EXPO_TEXT_H
#define FX_EXPO_TEXT_H

#include "fx/buf.h"
#include "fx/snapshot.h"

#define FX_TEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define FX_OPENMETRICS_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"
#define FX_OPENMETRICS_0_0_1_CONTENT_TYPE "application/openmetrics-text; version=0.0.1; charset=utf-8"

/* The formats of a render: the text format 0.0.4 (the default), or OpenMetrics 1.0.0 (expo_text.c's top
 * says what differs: counter families named without _total, a _created line per flow sample, # EOF). */
enum fx_expo_format { FX_EXPO_TEXT, FX_EXPO_OPENMETRICS };

/* Appends the exposition to out. Returns 0, or the fx_buf error when out's maximum is reached (or a line
 * past the renderer's own bound: a label value over FX_SERIES_LABEL_VALUE_MAX). */
__attribute__((warn_unused_result)) int fx_expo_text_render(const struct fx_snapshot *snapshot,
							    struct fx_buf *out);

/* fx_expo_text_render in either format. */
__attribute__((warn_unused_result)) int fx_expo_render(const struct fx_snapshot *snapshot,
						       enum fx_expo_format format, struct fx_buf *out);

/* A render a chunk at a time, for bodies too large to hold (a scrape of many series). The stream borrows
 * the snapshot until it is destroyed. Thread: one thread at a time per stream. */
struct fx_expo_text_stream;

/* NULL on allocation failure. */
struct fx_expo_text_stream *fx_expo_text_stream_create(const struct fx_snapshot *snapshot);
/* The same stream in either format. */
struct fx_expo_text_stream *fx_expo_stream_create(const struct fx_snapshot *snapshot,
						  enum fx_expo_format format);
/* Accepts NULL. */
void fx_expo_text_stream_destroy(struct fx_expo_text_stream *stream);
/* Writes the next bytes of the exposition to out (up to room bytes, room > 0) and their count to
 * *written; fewer than room bytes means the end was reached (0 once everything was read). Returns 0 or an
 * fx_buf error (out of memory, or FX_BUF_E_TOO_BIG for a line past the stream's bound). The bytes are exactly
 * those fx_expo_text_render appends. */
__attribute__((warn_unused_result)) int fx_expo_text_stream_read(struct fx_expo_text_stream *stream,
								 char *out, size_t room, size_t *written);
/* Bytes handed out so far. */
uint64_t fx_expo_text_stream_produced(const struct fx_expo_text_stream *stream);

#endif
