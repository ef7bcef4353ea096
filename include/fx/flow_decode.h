/* Step (2) of the data path: pmacct JSON (one Kafka message) -> struct fx_flow records.
 *
 * A message holds one JSON object, or several separated by newlines (pmacct's kafka_multi_values).
 * Each object is decoded on its own: a bad one is reported with its reason and the others still count.
 *
 * The fast scanner is src/flow_decode.c, the jansson reference src/flow_decode_ref.c, and the record rules
 * both apply src/flow_rules.h.
 *
 * Thread: a decoder is owned by one thread (it keeps a scratch buffer for unescaped strings). */
#ifndef FX_FLOW_DECODE_H
#define FX_FLOW_DECODE_H

#include <stddef.h>

#include "fx/flow.h"

/* What a record turned out to be. Everything from FX_REC_INVALID_JSON on cannot be counted. */
enum fx_record_kind {
	FX_REC_FLOW = 0,	  /* a purge event with counters: *flow is filled */
	FX_REC_MARKER,		  /* purge_init / purge_close (kafka_markers) */
	FX_REC_OTHER_EVENT,	  /* any other event_type */
	FX_REC_INVALID_JSON,	  /* not a JSON object (syntax error, trailing bytes, duplicate key, ...) */
	FX_REC_INVALID_TYPE,	  /* a field we read has the wrong JSON type */
	FX_REC_INVALID_MISSING,	  /* bytes, packets, as_src or as_dst absent */
	FX_REC_INVALID_RANGE,	  /* negative, fractional, or too large for its field */
	FX_REC_INVALID_UTF8,	  /* a string is not valid UTF-8 or contains U+0000 */
	FX_REC_INVALID_TOO_LARGE, /* the record is longer than max_record_bytes */
	/* Never returned by the decoders: the counting step's verdict on a flow whose bytes or packets times
	 * its sampling rate do not fit in 64 bits. */
	FX_REC_INVALID_SAMPLING_OVERFLOW,
	FX_REC_KIND_COUNT
};

#define FX_REC_FIRST_INVALID FX_REC_INVALID_JSON

/* Stable short names for metrics and logs: "flow", "marker", "other_event", "json", "type", "missing",
 * "range", "utf8", "too_large", "sampling_overflow". */
const char *fx_record_kind_name(enum fx_record_kind kind);

struct fx_decoder;

/* max_record_bytes bounds one record (one line of a message). Returns NULL on allocation failure. */
struct fx_decoder *fx_decoder_create(size_t max_record_bytes);
void fx_decoder_destroy(struct fx_decoder *decoder);

/* The type an extra key must have (rule 7 of flow_rules.h). */
enum fx_key_type {
	FX_KEY_NUMBER, /* a non-negative integer up to `max` */
	FX_KEY_STRING, /* a string without U+0000 */
	FX_KEY_SCALAR, /* a string, a non-negative integer up to `max`, true or false */
};

struct fx_decoder_key {
	const char *name; /* borrowed for the decoder's life */
	enum fx_key_type type;
	uint64_t max;
};

/* Makes the decoder read these keys too (at most FX_FLOW_EXTRA_MAX, none of the ten keys the rules already
 * read), filling flow->extra[i] for keys[i]. An absent or null key is FX_VALUE_ABSENT; a value of the wrong
 * type or range makes the record invalid like a built-in field. Returns 0, or -1 when there are too many or
 * a name is one of the built-in keys. The keys are borrowed. */
int fx_decoder_set_keys(struct fx_decoder *decoder, const struct fx_decoder_key *keys, size_t n);

/* Decodes one record: exactly one JSON object, optionally surrounded by JSON whitespace. On FX_REC_FLOW
 * fills *flow, whose hostname is borrowed until the next call on this decoder. */
enum fx_record_kind fx_decode_record(struct fx_decoder *decoder, const char *record, size_t len,
				     struct fx_flow *flow);

/* Called once per non-blank line of a message. `flow` is non-NULL only for FX_REC_FLOW; `record` and
 * `len` are the line itself (for logging a bad one). */
typedef void (*fx_record_fn)(void *opaque, enum fx_record_kind kind, const struct fx_flow *flow,
			     const char *record, size_t len);

/* Splits a message on '\n' and decodes every non-blank line. Returns the number of records seen. */
size_t fx_decode_message(struct fx_decoder *decoder, const char *message, size_t len, fx_record_fn on_record,
			 void *opaque);

/* The reference decoder (src/flow_decode_ref.c), built on jansson: same contract and same record rules as
 * fx_decode_record. The scanner's fallback for records outside its flat shape, and the oracle of the
 * differential unit tests, the fuzzer and the benchmark. */
enum fx_record_kind fx_decode_record_jansson(struct fx_decoder *decoder, const char *record, size_t len,
					     struct fx_flow *flow);

#endif
