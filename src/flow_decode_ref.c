/* The reference decoder: one pmacct JSON record -> struct fx_flow, on jansson.
 *
 * DESIGN
 * fx_decode_record_jansson has the contract of the fast scanner (flow_decode.c) and applies the same
 * record rules (flow_rules.h), but leaves the JSON grammar to jansson, a parser written apart from ours.
 * It serves twice: in production, as the scanner's fallback for the records outside its flat shape
 * (nested values, many unknown keys), so it stays in the core library; and as the oracle the unit tests,
 * the fuzzer (tests/fuzz/) and the benchmark compare the scanner with.
 *
 * jansson cannot hold every JSON number (see rewrite_unrepresentable_numbers), so it parses a copy of the
 * record in which those few number tokens are replaced by stand-ins with the same meaning for our rules.
 *
 * Thread: a decoder belongs to one thread; the copy and the hostname go to its scratch buffer, which is
 * reused by every call: the hostname handed out is valid until the next call. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flow_rules.h"
#include "fx/flow_decode.h"

/* jansson stores integers as int64_t and reals as double, and refuses a number outside them ("too big
 * integer", "real number overflow"). It also reads "-0" as the integer 0, which loses the sign our range
 * rule needs. So before parsing, the number tokens it cannot represent are replaced in a copy of the
 * record by tokens of the same meaning for our rules, padded with spaces to the same length:
 *  - "-0"                                     -> "-1"       (negative either way: range error)
 *  - a negative integer of 18 or more digits  -> "-1"       (negative either way)
 *  - a real whose magnitude may reach 1e308   -> "0.0"      (a fraction either way: range error)
 *  - a positive integer of 19 or more digits  -> "-1" followed by its offset in the record on 17
 *    digits, a "sentinel" in [-(2e17 - 1), -1e17]. No genuine token can hold such a value, because every
 *    negative 18-digit integer was replaced by "-1" above; so a sentinel found in a field we read is
 *    decoded by re-reading the original token at that offset with strtoull (read_sentinel).
 *
 * Every stand-in is a number, so a string field still sees a wrong type, and it gets the same verdict
 * as the original in every numeric field (negative, fractional or too large stay so; a sentinel gives
 * the exact value back). This keeps jansson the judge of validity: only runs that are exactly one
 * RFC 8259 number are replaced, always by another valid number followed by JSON whitespace, so a record
 * is valid after the rewrite exactly when it was valid before (string contents, keys and structure are
 * untouched). Runs found outside strings only because the record is already invalid change nothing: it
 * stays invalid.
 *
 * Why not re-parse at jansson's error.position instead: that needs one parse per such token, quadratic
 * on a hostile record (this fallback also serves production traffic), and "-0" raises no error at all.
 * One linear pass covers all three cases. */
#define SENTINEL_BASE INT64_C(100000000000000000) /* 1e17: "-1" + 17 digits */
#define SENTINEL_LEN 19

struct number_shape {
	bool negative;
	bool real;
	size_t int_digits;
	long exponent; /* saturated at +-1000000 */
};

/* Whether [text, text + len) is exactly one RFC 8259 number, and its shape. Written apart from
 * scan_number on purpose: the differential tests compare the two. */
static bool number_shape(const char *text, size_t len, struct number_shape *shape)
{
	size_t i = 0;
	shape->negative = len > 0 && text[0] == '-';
	shape->real = false;
	shape->exponent = 0;
	if (shape->negative)
		i++;
	size_t int_start = i;
	if (i < len && text[i] == '0') {
		i++;
	} else {
		if (i == len || text[i] < '1' || text[i] > '9')
			return false;
		while (i < len && is_digit(text[i]))
			i++;
	}
	shape->int_digits = i - int_start;
	if (i < len && text[i] == '.') {
		shape->real = true;
		size_t fraction_start = ++i;
		while (i < len && is_digit(text[i]))
			i++;
		if (i == fraction_start)
			return false;
	}
	if (i < len && (text[i] == 'e' || text[i] == 'E')) {
		shape->real = true;
		i++;
		bool exponent_negative = false;
		if (i < len && (text[i] == '+' || text[i] == '-'))
			exponent_negative = text[i++] == '-';
		size_t exponent_start = i;
		long exponent = 0;
		while (i < len && is_digit(text[i])) {
			if (exponent < 1000000)
				exponent = exponent * 10 + (text[i] - '0');
			i++;
		}
		if (i == exponent_start)
			return false;
		shape->exponent = exponent_negative ? -exponent : exponent;
	}
	return i == len;
}

static void replace_token(char *token, size_t len, const char *with, size_t with_len)
{
	memcpy(token, with, with_len);
	memset(token + with_len, ' ', len - with_len);
}

static void rewrite_number(char *token, size_t len, size_t offset)
{
	struct number_shape shape;
	if (!number_shape(token, len, &shape))
		return; /* not a number: left for jansson to refuse */
	if (shape.real) {
		/* |value| < 10^(int_digits + exponent), and 10^308 < DBL_MAX: below that nothing overflows.
		 */
		if ((long)shape.int_digits + shape.exponent > 308)
			replace_token(token, len, "0.0", 3);
	} else if (shape.negative) {
		if (shape.int_digits >= 18 || (len == 2 && token[1] == '0'))
			replace_token(token, len, "-1", 2);
	} else if (shape.int_digits >= 19) {
		char sentinel[SENTINEL_LEN];
		uint64_t rest = (uint64_t)offset;
		sentinel[0] = '-';
		sentinel[1] = '1';
		for (int i = SENTINEL_LEN - 1; i >= 2; i--) {
			sentinel[i] = (char)('0' + rest % 10);
			rest /= 10;
		}
		replace_token(token, len, sentinel, SENTINEL_LEN);
	}
}

static void rewrite_unrepresentable_numbers(char *text, size_t len)
{
	size_t i = 0;
	while (i < len) {
		char c = text[i];
		if (c == '"') {
			/* Skip the string: a backslash always escapes the byte after it. */
			for (i++; i < len && text[i] != '"'; i++) {
				if (text[i] == '\\')
					i++;
			}
			i++;
		} else if (c == '-' || is_digit(c)) {
			size_t start = i;
			while (i < len && (is_digit(text[i]) || text[i] == '-' || text[i] == '+' ||
					   text[i] == '.' || text[i] == 'e' || text[i] == 'E'))
				i++;
			rewrite_number(text + start, i - start, start);
		} else {
			i++;
		}
	}
}

/* The original token behind a sentinel: a positive integer of at least 19 digits at `offset`. */
static enum fx_record_kind read_sentinel(const char *record, size_t len, json_int_t sentinel, uint64_t max,
					 uint64_t *out)
{
	size_t offset = (size_t)(-(sentinel + SENTINEL_BASE));
	size_t digits = 0;
	while (offset + digits < len && is_digit(record[offset + digits]))
		digits++;
	char token[24];
	if (digits >= sizeof(token))
		return FX_REC_INVALID_RANGE; /* no leading zeros: more than 23 digits is far above 2^64 */
	memcpy(token, record + offset, digits);
	token[digits] = '\0';
	errno = 0;
	unsigned long long value = strtoull(token, NULL, 10);
	if (errno == ERANGE || value > max)
		return FX_REC_INVALID_RANGE;
	*out = value;
	return FX_REC_FLOW;
}

static bool is_sentinel(json_int_t value)
{
	return value <= -SENTINEL_BASE && value > -2 * SENTINEL_BASE;
}

static enum fx_record_kind json_read_number(const json_t *value, const char *record, size_t len, uint64_t max,
					    uint64_t *out)
{
	if (json_is_real(value))
		return FX_REC_INVALID_RANGE;
	if (!json_is_integer(value))
		return FX_REC_INVALID_TYPE;
	json_int_t number = json_integer_value(value);
	if (is_sentinel(number))
		return read_sentinel(record, len, number, max, out);
	if (number < 0 || (uint64_t)number > max)
		return FX_REC_INVALID_RANGE;
	*out = (uint64_t)number;
	return FX_REC_FLOW;
}

/* Rule 5: label or peer_ip_src; absent reads as the empty string. */
static enum fx_record_kind json_read_string(const json_t *root, enum field field, struct text *out)
{
	const json_t *value = json_object_get(root, field_names[field]);
	*out = (struct text){"", 0, false};
	if (!value)
		return FX_REC_FLOW;
	if (!json_is_string(value))
		return FX_REC_INVALID_TYPE;
	*out = (struct text){json_string_value(value), json_string_length(value), false};
	return check_no_nul(out->bytes, out->len);
}

/* Rule 7 on the extra keys, in their order. Strings are copied to `next` in the scratch buffer (jansson's
 * die with the tree); there is room: each is shorter than its quoted source in the record. */
static enum fx_record_kind json_read_extras(const struct fx_decoder *decoder, const json_t *root,
					    const char *record, size_t len, char *next, struct fx_flow *flow)
{
	for (size_t i = 0; i < decoder->n_keys; i++) {
		const struct fx_decoder_key *key = &decoder->keys[i];
		struct fx_flow_value *out = &flow->extra[i];
		const json_t *value = json_object_get(root, key->name);
		out->type = FX_VALUE_ABSENT;
		if (!value || json_is_null(value))
			continue;
		enum fx_record_kind kind = FX_REC_INVALID_TYPE;
		if (key->type == FX_KEY_SCALAR && json_is_boolean(value)) {
			set_literal(out, json_is_true(value));
			kind = FX_REC_FLOW;
		} else if (json_is_number(value) && key->type != FX_KEY_STRING) {
			out->type = FX_VALUE_NUMBER;
			kind = json_read_number(value, record, len, key->max, &out->number);
		} else if (json_is_string(value) && key->type != FX_KEY_NUMBER) {
			size_t n = json_string_length(value);
			kind = check_no_nul(json_string_value(value), n);
			memcpy(next, json_string_value(value), n);
			next[n] = '\0';
			*out = (struct fx_flow_value){.type = FX_VALUE_TEXT, .text = next, .len = n};
			next += n + 1;
		}
		if (kind != FX_REC_FLOW)
			return kind;
	}
	return FX_REC_FLOW;
}

/* Rules 4 to 6 (flow_rules.h) on a parsed object. */
static enum fx_record_kind json_read_flow(struct fx_decoder *decoder, const json_t *root, const char *record,
					  size_t len, struct fx_flow *flow)
{
	uint64_t values[FIELD_COUNT] = {0};
	struct text label, peer;
	enum fx_record_kind kind;

	const json_t *event_type = json_object_get(root, field_names[FIELD_EVENT_TYPE]);
	if (event_type) {
		if (!json_is_string(event_type))
			return FX_REC_INVALID_TYPE;
		kind = classify_event_type(json_string_value(event_type), json_string_length(event_type));
		if (kind != FX_REC_FLOW)
			return kind;
	}
	kind = json_read_string(root, FIELD_LABEL, &label);
	if (kind != FX_REC_FLOW)
		return kind;
	kind = json_read_string(root, FIELD_PEER_IP_SRC, &peer);
	if (kind != FX_REC_FLOW)
		return kind;
	for (size_t i = 0; i < NUMBER_RULE_COUNT; i++) {
		enum field field = number_rules[i].field;
		const json_t *value = json_object_get(root, field_names[field]);
		if (!value) {
			if (number_rules[i].required)
				return FX_REC_INVALID_MISSING;
			continue;
		}
		kind = json_read_number(value, record, len, number_rules[i].max, &values[field]);
		if (kind != FX_REC_FLOW)
			return kind;
	}

	/* jansson's strings die with the tree: the hostname is copied to the scratch buffer, which the
	 * rewritten record no longer needs. */
	set_hostname(flow, &label, &peer, decoder->scratch);
	/* After the hostname: both fit, the record holds both strings quoted and their keys. */
	set_peer(flow, &label, &peer, decoder->scratch + (flow->hostname ? flow->hostname_len + 1 : 0));
	set_numbers(flow, values, json_object_get(root, field_names[FIELD_IFACE_IN]) != NULL,
		    json_object_get(root, field_names[FIELD_IFACE_OUT]) != NULL);
	if (!decoder->n_keys)
		return FX_REC_FLOW;
	char *next = decoder->scratch + (flow->hostname ? flow->hostname_len + 1 : 0);
	if (flow->peer_ip_src && flow->peer_ip_src == next)
		next += flow->peer_ip_src_len + 1;
	return json_read_extras(decoder, root, record, len, next, flow);
}

enum fx_record_kind fx_decode_record_jansson(struct fx_decoder *decoder, const char *record, size_t len,
					     struct fx_flow *flow)
{
	enum fx_record_kind kind = check_raw_bytes(decoder, record, len);
	if (kind != FX_REC_FLOW)
		return kind;

	/* A raw NUL byte is never valid JSON (not whitespace, not a token, a control character inside a
	 * string), but jansson 2.14 skips one that directly follows a number or a literal: after it puts the
	 * byte back, its one-character buffer reads as empty. Refuse it here so that both decoders agree. */
	if (memchr(record, '\0', len))
		return FX_REC_INVALID_JSON;

	memcpy(decoder->scratch, record, len);
	rewrite_unrepresentable_numbers(decoder->scratch, len);
	json_error_t error;
	/* JSON_ALLOW_NUL: "\u0000" is valid JSON; only label and peer_ip_src refuse it (rule 5). Any failure
	 * is invalid JSON, including jansson's own limits (a NUL in a key, nesting deeper than 2048) and an
	 * out-of-memory, which jansson does not tell apart. */
	json_t *root = json_loadb(decoder->scratch, len,
				  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
	if (!root)
		return FX_REC_INVALID_JSON;
	kind = json_is_object(root) ? json_read_flow(decoder, root, record, len, flow) : FX_REC_INVALID_JSON;
	json_decref(root);
	return kind;
}
