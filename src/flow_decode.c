/* Step (2) of the data path: one pmacct JSON record -> struct fx_flow, and a Kafka message -> its records.
 *
 * DESIGN
 * fx_decode_record is a single-pass, allocation-free scanner for the shape pmacct writes: one flat JSON
 * object whose values are strings, numbers and literals. It validates the whole record against RFC 8259
 * first (a syntax error anywhere outranks a wrong type earlier), remembering where the ten keys we read
 * are, then applies the record rules of flow_rules.h, the ones the reference decoder applies too. A
 * nested object or array, or more unknown keys than it dedups cheaply, sends the record to the reference
 * decoder (flow_decode_ref.c, on jansson) instead; the two give identical results on every input, which
 * the unit and fuzz tests check.
 *
 * fx_decode_message splits a message on newlines (pmacct's kafka_multi_values) and decodes each line.
 *
 * Thread: a decoder belongs to one consumer thread. The scratch buffer is reused by every call; the
 * hostname handed out points into it and is valid until the next call. */
#include "fx/flow_decode.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flow_rules.h"
#include "fx/log.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char *const kind_names[FX_REC_KIND_COUNT] = {
    [FX_REC_FLOW] = "flow",
    [FX_REC_MARKER] = "marker",
    [FX_REC_OTHER_EVENT] = "other_event",
    [FX_REC_INVALID_JSON] = "json",
    [FX_REC_INVALID_TYPE] = "type",
    [FX_REC_INVALID_MISSING] = "missing",
    [FX_REC_INVALID_RANGE] = "range",
    [FX_REC_INVALID_UTF8] = "utf8",
    [FX_REC_INVALID_TOO_LARGE] = "too_large",
    [FX_REC_INVALID_SAMPLING_OVERFLOW] = "sampling_overflow",
};

const char *fx_record_kind_name(enum fx_record_kind kind)
{
	if ((unsigned)kind >= FX_REC_KIND_COUNT)
		return "unknown";
	return kind_names[kind];
}

struct fx_decoder *fx_decoder_create(size_t max_record_bytes)
{
	struct fx_decoder *decoder = NULL;

	/* The reference decoder writes record offsets on 17 digits (SENTINEL_BASE in flow_decode_ref.c):
	 * far above any real bound, but refused rather than assumed. */
	if (max_record_bytes >= UINT64_C(100000000000000000)) {
		fx_error("flow decoder: max_record_bytes %zu is too large", max_record_bytes);
		return NULL;
	}
	decoder = calloc(1, sizeof(*decoder));
	if (!decoder)
		goto fail;
	decoder->max_record_bytes = max_record_bytes;
	decoder->scratch = malloc(max_record_bytes + 1);
	if (!decoder->scratch)
		goto fail;
	return decoder;

fail:
	fx_error("flow decoder: cannot allocate a %zu-byte scratch buffer", max_record_bytes);
	fx_decoder_destroy(decoder);
	return NULL;
}

int fx_decoder_set_keys(struct fx_decoder *decoder, const struct fx_decoder_key *keys, size_t n)
{
	if (n > FX_FLOW_EXTRA_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		for (size_t f = 0; f < FIELD_COUNT; f++)
			if (!strcmp(keys[i].name, field_names[f]))
				return -1;
	decoder->keys = keys;
	decoder->n_keys = n;
	decoder->n_guesses = 0; /* their fields were the old keys' */
	return 0;
}

void fx_decoder_destroy(struct fx_decoder *decoder)
{
	if (!decoder)
		return;
	free(decoder->scratch);
	free(decoder);
}

/* ---------------------------------------------------------------------------------------------------
 * The fast scanner.
 * ------------------------------------------------------------------------------------------------ */

enum value_type { VALUE_STRING, VALUE_NUMBER, VALUE_LITERAL };

/* Where a value sits in the record; interpreted only after the whole record proved to be valid JSON. */
struct raw_value {
	const char *text; /* string: between the quotes, still escaped; number: the token */
	size_t len;
	enum value_type type;
	bool escaped;	    /* string: holds at least one backslash escape */
	bool negative;	    /* number: starts with '-' (even -0) */
	bool integral;	    /* number: no fraction and no exponent */
	bool fits;	    /* number: its integer part fits in 64 bits, as integer */
	uint64_t integer;   /* number: the integer part's value, without the sign (when fits) */
};

enum scan_result { SCAN_OK, SCAN_BAD_JSON, SCAN_FALLBACK };

/* A key scanned the long way, to guess from in the next record (learn_keys). */
struct key_seen {
	const char *bytes; /* in the record; NULL: escaped, or too long to guess */
	uint8_t len;
	uint8_t field;
};

struct scan {
	const char *end;
	char *scratch_next; /* where the next unescaped string goes */
	unsigned seen;	    /* bit per enum field (never FIELD_UNKNOWN's) */
	struct raw_value fields[FIELD_ALL]; /* fields[FIELD_UNKNOWN] takes the values of unknown keys */
	size_t unknown_count;
	size_t n_keys;		/* keys scanned so far */
	size_t first_unguessed; /* the first key that was not decoder->guesses' (valid once !guessing) */
	bool guessing;		/* every key so far was the guess at its position */
	struct key_seen keys[KEY_GUESS_MAX]; /* keys first_unguessed.. of the record */
};

static inline bool is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline const char *skip_space(const char *p, const char *end)
{
	while (p < end && is_json_space(*p))
		p++;
	return p;
}

/* SWAR helpers: a byte-wise mask with the top bit set in each byte of `word` that matches. Only the
 * lowest flagged byte is exact (a match can set false flags above it), which is all we need. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
static inline uint64_t bytes_equal_to(uint64_t word, unsigned char c)
{
	uint64_t x = word ^ (ONES * c);
	return (x - ONES) & ~x & HIGHS;
}
static inline uint64_t bytes_below(uint64_t word, unsigned char limit)
{
	return (word - ONES * limit) & ~word & HIGHS;
}

/* The first byte in [p, end) that ends the plain run of a string: '"', '\\' or a control character.
 * Strings are most of a record, so this goes eight bytes at a time where the byte order allows. */
static inline __attribute__((always_inline)) const char *find_string_stop(const char *p, const char *end)
{
#ifdef __SSE2__
	/* x86-64 always has SSE2: sixteen bytes a step. A byte is a control character when min(byte, 0x1F)
	 * is the byte itself (unsigned compare). */
	const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
	const __m128i control_max = _mm_set1_epi8(0x1F);
	while (end - p >= 16) {
		__m128i chunk = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i stops =
		    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(chunk, quote), _mm_cmpeq_epi8(chunk, backslash)),
				 _mm_cmpeq_epi8(_mm_min_epu8(chunk, control_max), chunk));
		unsigned mask = (unsigned)_mm_movemask_epi8(stops);
		if (mask)
			return p + __builtin_ctz(mask);
		p += 16;
	}
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (end - p >= 8) {
		uint64_t word;
		memcpy(&word, p, sizeof(word));
		uint64_t stops =
		    bytes_equal_to(word, '"') | bytes_equal_to(word, '\\') | bytes_below(word, 0x20);
		if (stops)
			return p + (__builtin_ctzll(stops) >> 3);
		p += 8;
	}
#endif
	while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
		p++;
	return p;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 16-bit code unit of the 4 hex digits at p (callers checked there are 4 bytes), or -1. */
static long hex4(const char *p)
{
	long unit = 0;
	for (int i = 0; i < 4; i++) {
		int digit = hex_value(p[i]);
		if (digit < 0)
			return -1;
		unit = unit << 4 | digit;
	}
	return unit;
}

static inline bool is_high_surrogate(long unit)
{
	return unit >= 0xD800 && unit <= 0xDBFF;
}
static inline bool is_low_surrogate(long unit)
{
	return unit >= 0xDC00 && unit <= 0xDFFF;
}

/* Validates one escape; p is just after the backslash. Returns the byte after it, or NULL. A \u escape
 * for a surrogate must be a high one followed at once by a \u low one: lone halves are not text. */
static const char *scan_escape(const char *p, const char *end)
{
	if (p == end)
		return NULL;
	switch (*p) {
	case '"':
	case '\\':
	case '/':
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't':
		return p + 1;
	case 'u':
		break;
	default:
		return NULL;
	}
	if (end - p < 5)
		return NULL;
	long unit = hex4(p + 1);
	p += 5;
	if (unit < 0 || is_low_surrogate(unit))
		return NULL;
	if (is_high_surrogate(unit)) {
		if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !is_low_surrogate(hex4(p + 2)))
			return NULL;
		p += 6;
	}
	return p;
}

/* scan_string past its first stop that is not the closing quote (p is at it): an escape, a control
 * character or the end. */
static const char *scan_string_rest(const char *p, const char *end, bool *escaped)
{
	for (;;) {
		if (p == end || (unsigned char)*p < 0x20)
			return NULL;
		if (*p == '"')
			return p;
		*escaped = true;
		p = scan_escape(p + 1, end);
		if (!p)
			return NULL;
		p = find_string_stop(p, end);
	}
}

/* Scans a string whose opening quote is just before p. Returns the closing quote, or NULL when the
 * string is not valid JSON. Sets *escaped when it holds an escape (and so must be unescaped to use).
 * Inlined: a record is mostly short strings without escapes, which end at the first stop. */
static inline __attribute__((always_inline)) const char *scan_string(const char *p, const char *end,
								     bool *escaped)
{
	*escaped = false;
	p = find_string_stop(p, end);
	if (p != end && *p == '"')
		return p;
	return scan_string_rest(p, end, escaped);
}

static char *put_utf8(char *out, uint32_t code_point)
{
	if (code_point < 0x80) {
		*out++ = (char)code_point;
	} else if (code_point < 0x800) {
		*out++ = (char)(0xC0 | code_point >> 6);
		*out++ = (char)(0x80 | (code_point & 0x3F));
	} else if (code_point < 0x10000) {
		*out++ = (char)(0xE0 | code_point >> 12);
		*out++ = (char)(0x80 | (code_point >> 6 & 0x3F));
		*out++ = (char)(0x80 | (code_point & 0x3F));
	} else {
		*out++ = (char)(0xF0 | code_point >> 18);
		*out++ = (char)(0x80 | (code_point >> 12 & 0x3F));
		*out++ = (char)(0x80 | (code_point >> 6 & 0x3F));
		*out++ = (char)(0x80 | (code_point & 0x3F));
	}
	return out;
}

/* Unescapes a string that scan_string accepted into out (at most len bytes). Returns the length. */
static size_t unescape(const char *text, size_t len, char *out)
{
	const char *end = text + len;
	char *start = out;
	while (text < end) {
		const char *backslash = memchr(text, '\\', (size_t)(end - text));
		size_t plain = (size_t)((backslash ? backslash : end) - text);
		memcpy(out, text, plain);
		out += plain;
		text += plain;
		if (!backslash)
			break;
		char escape = text[1];
		text += 2;
		switch (escape) {
		case 'b':
			*out++ = '\b';
			break;
		case 'f':
			*out++ = '\f';
			break;
		case 'n':
			*out++ = '\n';
			break;
		case 'r':
			*out++ = '\r';
			break;
		case 't':
			*out++ = '\t';
			break;
		case 'u': {
			uint32_t code_point = (uint32_t)hex4(text);
			text += 4;
			if (is_high_surrogate(code_point)) {
				uint32_t low = (uint32_t)hex4(text + 2);
				text += 6;
				code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
			}
			out = put_utf8(out, code_point);
			break;
		}
		default: /* '"', '\\', '/' stand for themselves */
			*out++ = escape;
			break;
		}
	}
	return (size_t)(out - start);
}

/* Scans a number per RFC 8259 (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?) starting at p, reading
 * the integer part's value on the way. Returns the byte after it, or NULL. What follows the token is
 * checked by the caller's grammar ("01" fails there, at the '1'). */
static const char *scan_number(const char *p, const char *end, struct raw_value *number)
{
	const char *start = p;
	number->negative = *p == '-';
	if (number->negative)
		p++;
	if (p == end || !is_digit(*p))
		return NULL;
	uint64_t total = 0;
	bool fits = true;
	if (*p == '0') {
		p++;
	} else {
		/* Up to 19 digits always fit (10^19 - 1 < 2^64): only the digits past them need the test. */
		const char *sure_end = end - p > 19 ? p + 19 : end;
		while (p < sure_end && is_digit(*p))
			total = total * 10 + (uint64_t)(*p++ - '0');
		for (; p < end && is_digit(*p); p++) {
			uint64_t digit = (uint64_t)(*p - '0');
			fits = fits && total <= (UINT64_MAX - digit) / 10;
			total = total * 10 + digit;
		}
	}
	number->integer = total;
	number->fits = fits;
	number->integral = true;
	if (p < end && *p == '.') {
		number->integral = false;
		if (++p == end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		number->integral = false;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || !is_digit(*p))
			return NULL;
		while (p < end && is_digit(*p))
			p++;
	}
	number->type = VALUE_NUMBER;
	number->text = start;
	number->len = (size_t)(p - start);
	return p;
}

/* The field a key names. Keys are short, so their length and a memcmp pick them out. */
static enum field identify_key(const char *key, size_t len)
{
	switch (len) {
	case 5:
		if (memcmp(key, "bytes", 5) == 0)
			return FIELD_BYTES;
		if (memcmp(key, "label", 5) == 0)
			return FIELD_LABEL;
		break;
	case 6:
		if (memcmp(key, "as_src", 6) == 0)
			return FIELD_AS_SRC;
		if (memcmp(key, "as_dst", 6) == 0)
			return FIELD_AS_DST;
		break;
	case 7:
		if (memcmp(key, "packets", 7) == 0)
			return FIELD_PACKETS;
		break;
	case 8:
		if (memcmp(key, "iface_in", 8) == 0)
			return FIELD_IFACE_IN;
		break;
	case 9:
		if (memcmp(key, "iface_out", 9) == 0)
			return FIELD_IFACE_OUT;
		break;
	case 10:
		if (memcmp(key, "event_type", 10) == 0)
			return FIELD_EVENT_TYPE;
		break;
	case 11:
		if (memcmp(key, "peer_ip_src", 11) == 0)
			return FIELD_PEER_IP_SRC;
		break;
	case 13:
		if (memcmp(key, "sampling_rate", 13) == 0)
			return FIELD_SAMPLING_RATE;
		break;
	}
	return FIELD_UNKNOWN;
}

/* Notes a key, refusing a duplicate. Known keys are one bit each; unknown ones are compared with the
 * few seen before (an unknown key can never equal a known one). */
static enum scan_result remember_key(struct fx_decoder *decoder, struct scan *scan, const char *key,
				     size_t len, enum field *field)
{
	*field = identify_key(key, len);
	if (*field == FIELD_UNKNOWN && decoder->n_keys) {
		for (size_t i = 0; i < decoder->n_keys; i++)
			if (bytes_equal(decoder->keys[i].name, strlen(decoder->keys[i].name), key, len)) {
				*field = (enum field)(FIELD_EXTRA + i);
				break;
			}
	}
	if (*field != FIELD_UNKNOWN) {
		unsigned bit = 1u << *field;
		if (scan->seen & bit)
			return SCAN_BAD_JSON;
		scan->seen |= bit;
		return SCAN_OK;
	}
	for (size_t i = 0; i < scan->unknown_count; i++) {
		if (bytes_equal(decoder->unknown_keys[i].bytes, decoder->unknown_keys[i].len, key, len))
			return SCAN_BAD_JSON;
	}
	if (scan->unknown_count == FAST_MAX_UNKNOWN_KEYS)
		return SCAN_FALLBACK;
	decoder->unknown_keys[scan->unknown_count++] = (struct key_span){key, len};
	return SCAN_OK;
}

/* Whether the record at p holds the guessed key and its closing quote. The guess was a valid key without
 * escapes, so the quote after the same bytes closes it. */
static inline bool guess_matches(const char *p, const char *end, const struct key_guess *guess)
{
	size_t n = (size_t)guess->len + 1;
	if ((size_t)(end - p) < n)
		return false;
	if (n >= 8 && n <= 16) {
		/* The first and the last eight bytes (overlapping when n < 16) cover them all. */
		uint64_t a0, a1, b0, b1;
		memcpy(&a0, p, 8);
		memcpy(&a1, p + n - 8, 8);
		memcpy(&b0, guess->bytes, 8);
		memcpy(&b1, guess->bytes + n - 8, 8);
		return ((a0 ^ b0) | (a1 ^ b1)) == 0;
	}
	return memcmp(p, guess->bytes, n) == 0;
}

/* Takes the guess for the next key when the record holds it; else ends the guessing for this record.
 * A guessed key needs no duplicate check: the guesses are the keys of a valid record, all different, and
 * only a prefix of the record is guessed. It is noted as remember_key would, for the keys after it. */
static const char *take_guess(struct fx_decoder *decoder, struct scan *scan, const char *p, enum field *field)
{
	size_t k = scan->n_keys;
	if (k < decoder->n_guesses && guess_matches(p, scan->end, &decoder->guesses[k])) {
		const struct key_guess *guess = &decoder->guesses[k];
		*field = (enum field)guess->field;
		if (*field == FIELD_UNKNOWN)
			decoder->unknown_keys[scan->unknown_count++] = (struct key_span){p, guess->len};
		else
			scan->seen |= 1u << *field;
		return p + guess->len;
	}
	scan->guessing = false;
	scan->first_unguessed = k;
	return NULL;
}

/* After a record that scanned as valid: its keys from the first one not guessed become the guesses (up to
 * the first escaped or overlong one). */
static void learn_keys(struct fx_decoder *decoder, const struct scan *scan)
{
	size_t k = scan->first_unguessed;
	for (; k < scan->n_keys && k < KEY_GUESS_MAX && scan->keys[k].bytes; k++) {
		struct key_guess *guess = &decoder->guesses[k];
		guess->len = scan->keys[k].len;
		guess->field = scan->keys[k].field;
		memcpy(guess->bytes, scan->keys[k].bytes, guess->len);
		guess->bytes[guess->len] = '"';
	}
	decoder->n_guesses = k;
}

/* Scans one key (p is just after its opening quote) up to and including the ':' after it. */
static const char *scan_key(struct fx_decoder *decoder, struct scan *scan, const char *p, enum field *field,
			    enum scan_result *result)
{
	const char *close = scan->guessing ? take_guess(decoder, scan, p, field) : NULL;
	if (!close) {
		bool escaped;
		close = scan_string(p, scan->end, &escaped);
		*result = SCAN_BAD_JSON;
		if (!close)
			return NULL;
		const char *key = p;
		size_t len = (size_t)(close - p);
		if (escaped) {
			/* Keys compare by their unescaped bytes ("by\u0074es" is bytes). */
			len = unescape(p, len, scan->scratch_next);
			key = scan->scratch_next;
			scan->scratch_next += len;
			if (memchr(key, '\0', len))
				return NULL; /* jansson cannot hold such a key: invalid for both decoders */
		}
		*result = remember_key(decoder, scan, key, len, field);
		if (*result != SCAN_OK)
			return NULL;
		if (scan->n_keys < KEY_GUESS_MAX) {
			bool guessable = !escaped && len < KEY_GUESS_BYTES;
			scan->keys[scan->n_keys] =
			    (struct key_seen){guessable ? p : NULL, (uint8_t)len, (uint8_t)*field};
		}
	}
	scan->n_keys++;
	p = skip_space(close + 1, scan->end);
	if (p == scan->end || *p != ':') {
		*result = SCAN_BAD_JSON;
		return NULL;
	}
	return p + 1;
}

static const char *scan_literal(const char *p, const char *end, const char *word, size_t len)
{
	if ((size_t)(end - p) < len || memcmp(p, word, len) != 0)
		return NULL;
	return p + len;
}

/* Scans one value starting at p into *value. Returns the byte after it, or NULL with *result set. */
static const char *scan_value(const char *p, const char *end, struct raw_value *value,
			      enum scan_result *result)
{
	*result = SCAN_BAD_JSON;
	switch (*p) {
	case '"': {
		const char *close = scan_string(p + 1, end, &value->escaped);
		if (!close)
			return NULL;
		value->type = VALUE_STRING;
		value->text = p + 1;
		value->len = (size_t)(close - (p + 1));
		return close + 1;
	}
	case '-':
	case '0':
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
	case '8':
	case '9':
		return scan_number(p, end, value);
	case 't':
		value->type = VALUE_LITERAL;
		value->text = p;
		return scan_literal(p, end, "true", 4);
	case 'f':
		value->type = VALUE_LITERAL;
		value->text = p;
		return scan_literal(p, end, "false", 5);
	case 'n':
		value->type = VALUE_LITERAL;
		value->text = p;
		return scan_literal(p, end, "null", 4);
	case '{':
	case '[':
		*result = SCAN_FALLBACK; /* outside the flat shape: jansson decides */
		return NULL;
	default:
		return NULL;
	}
}

/* Checks that [record, end) is exactly one flat JSON object, noting the fields we read. */
static enum scan_result scan_object(struct fx_decoder *decoder, struct scan *scan, const char *record)
{
	const char *end = scan->end;
	const char *p = skip_space(record, end);
	if (p == end || *p != '{')
		return SCAN_BAD_JSON;
	p = skip_space(p + 1, end);
	if (p < end && *p == '}') {
		p++;
	} else {
		for (;;) {
			enum scan_result result;
			enum field field;
			if (p == end || *p != '"')
				return SCAN_BAD_JSON;
			p = scan_key(decoder, scan, p + 1, &field, &result);
			if (!p)
				return result;
			p = skip_space(p, end);
			if (p == end)
				return SCAN_BAD_JSON;
			p = scan_value(p, end, &scan->fields[field], &result);
			if (!p)
				return result;
			p = skip_space(p, end);
			if (p == end)
				return SCAN_BAD_JSON;
			if (*p == '}') {
				p++;
				break;
			}
			if (*p != ',')
				return SCAN_BAD_JSON;
			p = skip_space(p + 1, end);
		}
	}
	return skip_space(p, end) == end ? SCAN_OK : SCAN_BAD_JSON;
}

/* Applies the number rules to a field the scan found. Returns FX_REC_FLOW when *out holds the value. */
static enum fx_record_kind read_number(const struct raw_value *value, uint64_t max, uint64_t *out)
{
	if (value->type != VALUE_NUMBER)
		return FX_REC_INVALID_TYPE;
	if (value->negative || !value->integral)
		return FX_REC_INVALID_RANGE;
	if (!value->fits || value->integer > max)
		return FX_REC_INVALID_RANGE;
	*out = value->integer;
	return FX_REC_FLOW;
}

static enum fx_record_kind read_string(struct scan *scan, const struct raw_value *value, struct text *out)
{
	if (value->type != VALUE_STRING)
		return FX_REC_INVALID_TYPE;
	if (!value->escaped) {
		/* Raw control bytes are invalid JSON, so without escapes there is no U+0000. */
		*out = (struct text){value->text, value->len, false};
		return FX_REC_FLOW;
	}
	char *unescaped = scan->scratch_next;
	size_t len = unescape(value->text, value->len, unescaped);
	unescaped[len] = '\0';
	scan->scratch_next += len + 1;
	*out = (struct text){unescaped, len, true};
	return check_no_nul(unescaped, len);
}

static enum fx_record_kind read_event_type(struct scan *scan)
{
	if (!(scan->seen & 1u << FIELD_EVENT_TYPE))
		return FX_REC_FLOW;
	const struct raw_value *value = &scan->fields[FIELD_EVENT_TYPE];
	if (value->type != VALUE_STRING)
		return FX_REC_INVALID_TYPE;
	const char *text = value->text;
	size_t len = value->len;
	if (value->escaped) {
		len = unescape(value->text, value->len, scan->scratch_next);
		text = scan->scratch_next;
		scan->scratch_next += len;
	}
	return classify_event_type(text, len);
}

/* Rule 7 on extra key i, present in the record. */
static enum fx_record_kind read_extra(struct scan *scan, const struct fx_decoder_key *key,
				      const struct raw_value *value, struct fx_flow_value *out)
{
	if (value->type == VALUE_LITERAL && value->text[0] == 'n') {
		out->type = FX_VALUE_ABSENT;
		return FX_REC_FLOW;
	}
	if (key->type == FX_KEY_SCALAR && value->type == VALUE_LITERAL) {
		set_literal(out, value->text[0] == 't');
		return FX_REC_FLOW;
	}
	if (value->type == VALUE_NUMBER && key->type != FX_KEY_STRING) {
		out->type = FX_VALUE_NUMBER;
		return read_number(value, key->max, &out->number);
	}
	if (value->type == VALUE_STRING && key->type != FX_KEY_NUMBER) {
		struct text text;
		enum fx_record_kind kind = read_string(scan, value, &text);
		out->type = FX_VALUE_TEXT;
		out->text = text.bytes;
		out->len = text.len;
		return kind;
	}
	return FX_REC_INVALID_TYPE;
}

static enum fx_record_kind read_extras(const struct fx_decoder *decoder, struct scan *scan, struct fx_flow *flow)
{
	for (size_t i = 0; i < decoder->n_keys; i++) {
		flow->extra[i].type = FX_VALUE_ABSENT;
		if (!(scan->seen & 1u << (FIELD_EXTRA + i)))
			continue;
		enum fx_record_kind kind =
		    read_extra(scan, &decoder->keys[i], &scan->fields[FIELD_EXTRA + i], &flow->extra[i]);
		if (kind != FX_REC_FLOW)
			return kind;
	}
	return FX_REC_FLOW;
}

/* Rules 4 to 6 (flow_rules.h) on a record that scanned as valid JSON. */
static enum fx_record_kind read_flow(const struct fx_decoder *decoder, struct scan *scan, struct fx_flow *flow)
{
	uint64_t values[FIELD_COUNT] = {0};
	struct text label = {NULL, 0, false}, peer = {NULL, 0, false};

	enum fx_record_kind kind = read_event_type(scan);
	if (kind != FX_REC_FLOW)
		return kind;
	if (scan->seen & 1u << FIELD_LABEL) {
		kind = read_string(scan, &scan->fields[FIELD_LABEL], &label);
		if (kind != FX_REC_FLOW)
			return kind;
	}
	if (scan->seen & 1u << FIELD_PEER_IP_SRC) {
		kind = read_string(scan, &scan->fields[FIELD_PEER_IP_SRC], &peer);
		if (kind != FX_REC_FLOW)
			return kind;
	}
	for (size_t i = 0; i < NUMBER_RULE_COUNT; i++) {
		enum field field = number_rules[i].field;
		if (!(scan->seen & 1u << field)) {
			if (number_rules[i].required)
				return FX_REC_INVALID_MISSING;
			continue;
		}
		kind = read_number(&scan->fields[field], number_rules[i].max, &values[field]);
		if (kind != FX_REC_FLOW)
			return kind;
	}
	if (decoder->n_keys && (kind = read_extras(decoder, scan, flow)) != FX_REC_FLOW)
		return kind;

	set_hostname(flow, &label, &peer, scan->scratch_next);
	set_peer(flow, &label, &peer, NULL);
	set_numbers(flow, values, scan->seen & 1u << FIELD_IFACE_IN, scan->seen & 1u << FIELD_IFACE_OUT);
	return FX_REC_FLOW;
}

enum fx_record_kind fx_decode_record(struct fx_decoder *decoder, const char *record, size_t len,
				     struct fx_flow *flow)
{
	enum fx_record_kind kind = check_raw_bytes(decoder, record, len);
	if (kind != FX_REC_FLOW)
		return kind;

	struct scan scan;
	scan.end = record + len;
	scan.scratch_next = decoder->scratch;
	scan.seen = 0;
	scan.unknown_count = 0;
	scan.n_keys = 0;
	scan.guessing = true;
	switch (scan_object(decoder, &scan, record)) {
	case SCAN_OK:
		if (!scan.guessing)
			learn_keys(decoder, &scan);
		return read_flow(decoder, &scan, flow);
	case SCAN_FALLBACK:
		return fx_decode_record_jansson(decoder, record, len, flow);
	case SCAN_BAD_JSON:
		break;
	}
	return FX_REC_INVALID_JSON;
}

/* ---------------------------------------------------------------------------------------------------
 * Messages.
 * ------------------------------------------------------------------------------------------------ */

static bool is_blank(const char *p, const char *end)
{
	for (; p < end; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\r')
			return false;
	}
	return true;
}

size_t fx_decode_message(struct fx_decoder *decoder, const char *message, size_t len, fx_record_fn on_record,
			 void *opaque)
{
	size_t records = 0;
	if (len == 0)
		return 0;
	const char *end = message + len;
	const char *line = message;
	for (;;) {
		const char *newline = memchr(line, '\n', (size_t)(end - line));
		const char *line_end = newline ? newline : end;
		if (!is_blank(line, line_end)) {
			struct fx_flow flow;
			size_t line_len = (size_t)(line_end - line);
			enum fx_record_kind kind = fx_decode_record(decoder, line, line_len, &flow);
			on_record(opaque, kind, kind == FX_REC_FLOW ? &flow : NULL, line, line_len);
			records++;
		}
		if (!newline || newline + 1 == end)
			break;
		line = newline + 1;
	}
	return records;
}
