/* Step (6a): the Prometheus text exposition format 0.0.4 of a snapshot. Pure: snapshot in, bytes out.
 *
 * Flow families first (flow_receive_bytes_total, flow_transmit_bytes_total, flow_receive_packets_total,
 * flow_transmit_packets_total), then the snapshot's self-metric families, each contiguous with HELP and
 * TYPE; label values escaped (backslash, double quote, newline); empty label values left out. */
#ifndef FX_EXPO_TEXT_H
#define FX_EXPO_TEXT_H

#include "fx/buf.h"
#include "fx/snapshot.h"

#define FX_TEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends the exposition to out. Returns 0, or the fx_buf error when out's maximum is reached. */
__attribute__((warn_unused_result)) int fx_expo_text_render(const struct fx_snapshot *snapshot,
							     struct fx_buf *out);

#endif
