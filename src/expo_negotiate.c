/* Accept -> exposition format (see expo_negotiate.h).
 *
 * DESIGN
 * - The header is read once, range by range, into a small fixed array (MAX_RANGES; ranges past it are
 *   ignored: an Accept header is a handful of ranges, and the one a scraper prefers comes first); each keeps
 *   its type, subtype and version as (pointer, length) into the header, and q in thousandths.
 * - Sorted by q descending, then specificity (type/subtype before type/x before x/x), stable otherwise:
 *   goautoneg's order, which client_golang walks.
 *
 * Thread: any (no state). */
#include "fx/expo_negotiate.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#define MAX_RANGES 32

struct span {
	const char *s;
	size_t len;
};

struct media_range {
	struct span type, subtype, version;
	int q; /* thousandths */
	int specificity;
};

static struct span trim(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return (struct span){s, (size_t)(end - s)};
}

static bool span_is(struct span span, const char *text)
{
	return span.len == strlen(text) && strncasecmp(span.s, text, span.len) == 0;
}

/* q = 0, 0.x, 0.xx, 0.xxx or 1 (RFC 9110); anything else is taken as 1, as goautoneg does not refuse it. */
static int parse_q(struct span value)
{
	if (value.len == 0 || (value.s[0] != '0' && value.s[0] != '1'))
		return 1000;
	int q = (value.s[0] - '0') * 1000, scale = 100;
	for (size_t i = 2; i < value.len && i < 5 && value.s[1] == '.'; i++, scale /= 10) {
		if (value.s[i] < '0' || value.s[i] > '9')
			break;
		q += (value.s[i] - '0') * scale;
	}
	return q > 1000 ? 1000 : q;
}

/* One media range "type/subtype;k=v;..." of [s, end). Returns false when it is not one. */
static bool parse_range(const char *s, const char *end, struct media_range *range)
{
	const char *semicolon = memchr(s, ';', (size_t)(end - s));
	const char *type_end = semicolon ? semicolon : end;
	const char *slash = memchr(s, '/', (size_t)(type_end - s));
	if (!slash)
		return false;
	*range =
	    (struct media_range){.type = trim(s, slash), .subtype = trim(slash + 1, type_end), .q = 1000};
	if (!range->type.len || !range->subtype.len)
		return false;
	range->specificity = !span_is(range->type, "*") + !span_is(range->subtype, "*");
	while (semicolon) {
		const char *param = semicolon + 1;
		semicolon = memchr(param, ';', (size_t)(end - param));
		const char *param_end = semicolon ? semicolon : end;
		const char *eq = memchr(param, '=', (size_t)(param_end - param));
		if (!eq)
			continue;
		struct span key = trim(param, eq), value = trim(eq + 1, param_end);
		if (value.len >= 2 && value.s[0] == '"' && value.s[value.len - 1] == '"')
			value = (struct span){value.s + 1, value.len - 2};
		if (span_is(key, "q"))
			range->q = parse_q(value);
		else if (span_is(key, "version"))
			range->version = value;
	}
	return true;
}

static size_t parse_accept(const char *accept, struct media_range *ranges)
{
	size_t n = 0;
	const char *s = accept, *end = accept + strlen(accept);
	while (s < end && n < MAX_RANGES) {
		const char *comma = memchr(s, ',', (size_t)(end - s));
		const char *range_end = comma ? comma : end;
		struct media_range range;
		if (parse_range(s, range_end, &range) && range.q > 0) {
			/* Insertion keeps equal ranges in header order. */
			size_t k = n;
			while (k > 0 && (ranges[k - 1].q < range.q ||
					 (ranges[k - 1].q == range.q &&
					  ranges[k - 1].specificity < range.specificity))) {
				ranges[k] = ranges[k - 1];
				k--;
			}
			ranges[k] = range;
			n++;
		}
		s = comma ? comma + 1 : end;
	}
	return n;
}

enum fx_expo_format fx_expo_negotiate(const char *accept, const char **content_type)
{
	*content_type = FX_TEXT_CONTENT_TYPE;
	if (!accept)
		return FX_EXPO_TEXT;
	struct media_range ranges[MAX_RANGES];
	size_t n = parse_accept(accept, ranges);
	for (size_t i = 0; i < n; i++) {
		const struct media_range *range = &ranges[i];
		if (span_is(range->type, "text") && span_is(range->subtype, "plain") &&
		    (range->version.len == 0 || span_is(range->version, "0.0.4")))
			return FX_EXPO_TEXT;
		if (span_is(range->type, "application") && span_is(range->subtype, "openmetrics-text") &&
		    (range->version.len == 0 || span_is(range->version, "1.0.0") ||
		     span_is(range->version, "0.0.1"))) {
			*content_type = span_is(range->version, "1.0.0") ? FX_OPENMETRICS_CONTENT_TYPE
									 : FX_OPENMETRICS_0_0_1_CONTENT_TYPE;
			return FX_EXPO_OPENMETRICS;
		}
	}
	return FX_EXPO_TEXT;
}
