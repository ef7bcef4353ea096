/* The record rules both decoders apply (private to flow_decode.c and flow_decode_ref.c).
 *
 * Rules, first match wins:
 *  1. too large: the record is longer than max_record_bytes;
 *  2. not UTF-8, checked on the raw bytes before any parsing;
 *  3. not exactly one JSON object (each decoder's own parser). Two limits come from jansson and so hold
 *     for both decoders: an object key containing U+0000 is refused as invalid JSON (jansson cannot
 *     store it), and so is nesting deeper than 2048 levels;
 *  4. event_type: absent or "purge" reads on, "purge_init"/"purge_close" is a marker, any other string
 *     another event, any other type a type error;
 *  5. label, then peer_ip_src: a string without U+0000, absent reads as empty;
 *  6. as_src, as_dst, iface_in, iface_out, bytes, packets, sampling_rate, in that order (number_rules):
 * present when required, an integer, not negative, no fraction, at most the field's maximum. Then the
 * hostname is label if non-empty, else peer_ip_src if non-empty, else none.
 *  7. the extra keys of fx_decoder_set_keys, in their order: absent or null reads as absent; a number key
 * obeys the number rules of 6; a string key is a string without U+0000; a scalar key is either, or true /
 * false (read as that text); any other type is a type error.
 *
 * Everything here is static inline: the scanner is the hot path, and these are the same instructions as
 * when both decoders lived in one file. */
#ifndef FX_FLOW_RULES_H
#define FX_FLOW_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fx/flow_decode.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The fast scanner keeps unknown keys in a small array to refuse duplicates; a record with more than
 * this many (pmacct writes about five) goes to jansson, whose hash table keeps the check linear. */
#define FAST_MAX_UNKNOWN_KEYS 32

struct key_span {
	const char *bytes;
	size_t len;
};

/* The scanner's guess at the next record's keys: the keys of the last record it scanned, in their order
 * (pmacct writes the same keys in the same order in every record). A guessed key is its bytes and the
 * closing quote, compared at once, instead of a string scan and a lookup. */
#define KEY_GUESS_MAX 24
#define KEY_GUESS_BYTES 24 /* the key's bytes and its closing quote */

struct key_guess {
	uint8_t len;   /* the key's length (the quote not counted) */
	uint8_t field; /* enum field */
	char bytes[KEY_GUESS_BYTES];
};

struct fx_decoder {
	size_t max_record_bytes;
	/* max_record_bytes + 1 bytes: unescaped strings (scanner) or the rewritten copy of the record
	 * (reference), then the NUL-terminated hostname. Never more than the record plus one byte: every
	 * unescaped string is shorter than its quoted source. */
	char *scratch;
	struct key_span unknown_keys[FAST_MAX_UNKNOWN_KEYS]; /* scanner only */
	struct key_guess guesses[KEY_GUESS_MAX];	     /* scanner only */
	size_t n_guesses;
	const struct fx_decoder_key *keys; /* rule 7's extra keys (borrowed), n_keys of them */
	size_t n_keys;
};

/* The keys the rules read, in the order their rules apply. */
enum field {
	FIELD_EVENT_TYPE,
	FIELD_LABEL,
	FIELD_PEER_IP_SRC,
	FIELD_AS_SRC,
	FIELD_AS_DST,
	FIELD_IFACE_IN,
	FIELD_IFACE_OUT,
	FIELD_BYTES,
	FIELD_PACKETS,
	FIELD_SAMPLING_RATE,
	FIELD_COUNT,
	FIELD_UNKNOWN = FIELD_COUNT,
	/* Extra key i of rule 7 is field FIELD_EXTRA + i (the scanner's bit and slot for it). */
	FIELD_EXTRA,
	FIELD_ALL = FIELD_EXTRA + FX_FLOW_EXTRA_MAX
};

static const char *const field_names[FIELD_COUNT] = {
    [FIELD_EVENT_TYPE] = "event_type",	 [FIELD_LABEL] = "label",
    [FIELD_PEER_IP_SRC] = "peer_ip_src", [FIELD_AS_SRC] = "as_src",
    [FIELD_AS_DST] = "as_dst",		 [FIELD_IFACE_IN] = "iface_in",
    [FIELD_IFACE_OUT] = "iface_out",	 [FIELD_BYTES] = "bytes",
    [FIELD_PACKETS] = "packets",	 [FIELD_SAMPLING_RATE] = "sampling_rate",
};

/* Rule 6: the numeric fields, in the order they are checked. */
static const struct number_rule {
	enum field field;
	uint64_t max;
	bool required;
} number_rules[] = {
    {FIELD_AS_SRC, UINT32_MAX, true},	      {FIELD_AS_DST, UINT32_MAX, true},
    {FIELD_IFACE_IN, UINT32_MAX, false},      {FIELD_IFACE_OUT, UINT32_MAX, false},
    {FIELD_BYTES, UINT64_MAX, true},	      {FIELD_PACKETS, UINT64_MAX, true},
    {FIELD_SAMPLING_RATE, UINT32_MAX, false},
};
#define NUMBER_RULE_COUNT (sizeof(number_rules) / sizeof(number_rules[0]))

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 3629 (Unicode Table 3-7): refuses overlong forms, UTF-16 surrogates, code points above U+10FFFF
 * and truncated sequences. ASCII, almost all of a pmacct record, goes sixteen bytes at a time. */
static inline bool utf8_is_valid(const unsigned char *text, size_t len)
{
	size_t i = 0;
	while (i < len) {
#ifdef __SSE2__
		/* x86-64 always has SSE2: the top bit of every byte of sixteen in one instruction. */
		while (len - i >= 16 &&
		       _mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)(text + i))) == 0)
			i += 16;
#else
		while (len - i >= 16) {
			uint64_t words[2];
			memcpy(words, text + i, sizeof(words));
			if (((words[0] | words[1]) & UINT64_C(0x8080808080808080)) != 0)
				break;
			i += 16;
		}
#endif
		if (i == len)
			break;
		unsigned char lead = text[i];
		if (lead < 0x80) {
			i++;
			continue;
		}
		size_t trail;
		unsigned char second_min = 0x80, second_max = 0xBF;
		if (lead >= 0xC2 && lead <= 0xDF) {
			trail = 1;
		} else if (lead >= 0xE0 && lead <= 0xEF) {
			trail = 2;
			if (lead == 0xE0)
				second_min = 0xA0; /* overlong */
			else if (lead == 0xED)
				second_max = 0x9F; /* U+D800..U+DFFF */
		} else if (lead >= 0xF0 && lead <= 0xF4) {
			trail = 3;
			if (lead == 0xF0)
				second_min = 0x90; /* overlong */
			else if (lead == 0xF4)
				second_max = 0x8F; /* above U+10FFFF */
		} else {
			return false; /* continuation byte, C0/C1 overlong lead, or F5..FF */
		}
		if (len - i - 1 < trail)
			return false;
		if (text[i + 1] < second_min || text[i + 1] > second_max)
			return false;
		for (size_t k = 2; k <= trail; k++) {
			if ((text[i + k] & 0xC0) != 0x80)
				return false;
		}
		i += trail + 1;
	}
	return true;
}

/* Rules 1 and 2, before any parsing. Returns FX_REC_FLOW to mean "go on". */
static inline enum fx_record_kind check_raw_bytes(const struct fx_decoder *decoder, const char *record,
						  size_t len)
{
	if (len > decoder->max_record_bytes)
		return FX_REC_INVALID_TOO_LARGE;
	if (!utf8_is_valid((const unsigned char *)record, len))
		return FX_REC_INVALID_UTF8;
	return FX_REC_FLOW;
}

static inline bool bytes_equal(const char *a, size_t a_len, const char *b, size_t b_len)
{
	return a_len == b_len && memcmp(a, b, a_len) == 0;
}

/* Rule 4 on an event_type string. Returns FX_REC_FLOW to mean "read the flow". */
static inline enum fx_record_kind classify_event_type(const char *value, size_t len)
{
	if (bytes_equal(value, len, "purge", 5))
		return FX_REC_FLOW;
	if (bytes_equal(value, len, "purge_init", 10) || bytes_equal(value, len, "purge_close", 11))
		return FX_REC_MARKER;
	return FX_REC_OTHER_EVENT;
}

/* Rule 5's end: a string field's unescaped bytes may not hold U+0000. */
static inline enum fx_record_kind check_no_nul(const char *text, size_t len)
{
	return memchr(text, '\0', len) ? FX_REC_INVALID_UTF8 : FX_REC_FLOW;
}

/* A string field (label or peer_ip_src) as a decoder read it: its unescaped bytes. */
struct text {
	const char *bytes;
	size_t len;
	bool in_scratch; /* already NUL-terminated in the decoder's scratch buffer */
};

/* The hostname rule: label if non-empty, else peer_ip_src if non-empty, else none. A chosen string not
 * yet in the scratch buffer is copied, NUL-terminated, to `scratch` (room for it is guaranteed by the
 * scratch buffer's size). */
static inline void set_hostname(struct fx_flow *flow, const struct text *label, const struct text *peer,
				char *scratch)
{
	const struct text *chosen = label->len ? label : peer->len ? peer : NULL;
	flow->hostname = NULL;
	flow->hostname_len = 0;
	if (!chosen)
		return;
	if (chosen->in_scratch) {
		flow->hostname = chosen->bytes;
	} else {
		memcpy(scratch, chosen->bytes, chosen->len);
		scratch[chosen->len] = '\0';
		flow->hostname = scratch;
	}
	flow->hostname_len = chosen->len;
}

/* peer_ip_src as the flow carries it: the hostname itself when the label was empty, else the string where
 * it is (the record or the scratch buffer), or a NUL-terminated copy at `copy_to` when not NULL (the
 * reference decoder: jansson's strings die with the tree). */
static inline void set_peer(struct fx_flow *flow, const struct text *label, const struct text *peer,
			    char *copy_to)
{
	flow->peer_ip_src = NULL;
	flow->peer_ip_src_len = peer->len;
	if (!peer->len)
		return;
	if (!label->len) {
		flow->peer_ip_src = flow->hostname;
	} else if (copy_to) {
		memcpy(copy_to, peer->bytes, peer->len);
		copy_to[peer->len] = '\0';
		flow->peer_ip_src = copy_to;
	} else {
		flow->peer_ip_src = peer->bytes;
	}
}

/* Rule 7 on a literal of a scalar key: true and false read as their text; null is absent (handled by the
 * callers); other types are not scalars. */
static inline void set_literal(struct fx_flow_value *out, bool truth)
{
	out->type = FX_VALUE_TEXT;
	out->text = truth ? "true" : "false";
	out->len = truth ? 4 : 5;
}

/* The numeric fields of a flow that passed rule 6; values[] is indexed by enum field, 0 when absent. */
static inline void set_numbers(struct fx_flow *flow, const uint64_t values[FIELD_COUNT], bool has_iface_in,
			       bool has_iface_out)
{
	flow->as_src = (uint32_t)values[FIELD_AS_SRC];
	flow->as_dst = (uint32_t)values[FIELD_AS_DST];
	flow->has_iface_in = has_iface_in;
	flow->has_iface_out = has_iface_out;
	flow->iface_in = (uint32_t)values[FIELD_IFACE_IN];
	flow->iface_out = (uint32_t)values[FIELD_IFACE_OUT];
	flow->bytes = values[FIELD_BYTES];
	flow->packets = values[FIELD_PACKETS];
	flow->sampling_rate = (uint32_t)values[FIELD_SAMPLING_RATE];
}

#endif
