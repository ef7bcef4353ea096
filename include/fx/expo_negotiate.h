/* Content negotiation of /metrics on the Accept header, as client_golang's expfmt.Negotiate (with
 * OpenMetrics enabled) does it: the media ranges sorted by q-value (then the more specific first), the first
 * one the exporter can write wins; OpenMetrics for application/openmetrics-text with version 1.0.0, 0.0.1 or
 * none (1.0.0 answers "version=1.0.0", the others "version=0.0.1", as client_golang), the text format
 * 0.0.4 for text/plain with version 0.0.4 or none, and the text format when nothing matches (no header,
 * wildcards only, protobuf). A range with q=0 is never chosen.
 *
 * Pure; any thread. */
#ifndef FX_EXPO_NEGOTIATE_H
#define FX_EXPO_NEGOTIATE_H

#include "fx/expo_text.h"

/* The format for an Accept header value (NULL: absent) and, in *content_type, its Content-Type (static). */
enum fx_expo_format fx_expo_negotiate(const char *accept, const char **content_type);

#endif
