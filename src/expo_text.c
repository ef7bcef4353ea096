/* Step (6a): the Prometheus text exposition format 0.0.4 of a snapshot. Pure: snapshot in, bytes out, no
 * I/O, no locks, no state kept between calls.
 *
 * Thread: any thread; a call reads only its snapshot (immutable) and writes only its buffer.
 *
 * How it stays fast (100,000 series in tens of milliseconds): the label set of a series is the same in
 * the four flow families, so it is rendered once per series into a scratch buffer (pass 1), which also
 * gives the exact size of the output; the output is then reserved once and every sample line is written
 * with memcpy and hand-formatted integers, with no bounds check per line (pass 2). The hostname fragment
 * is escaped once per distinct (interned) hostname and AS names are looked up once per distinct ASN
 * through a small direct-mapped cache.
 *
 * Invariants: families are contiguous, each with HELP and TYPE, and a family with no sample writes nothing;
 * labels are in alphabetical order of name; an empty value leaves its label out; on error, `out` is left
 * as it was on entry. */
#include "fx/expo_text.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/classify.h"

#define LIT(s) s, (sizeof(s) - 1)

/* The flow families, in the order they are written. */
static const struct flow_family {
	const char *header; /* "# HELP ...\n# TYPE ...\n" */
	size_t header_len;
	const char *name;
	size_t name_len;
	enum fx_direction direction;
	bool packets;
} flow_families[] = {
    {LIT("# HELP flow_receive_bytes_total Bytes received.\n# TYPE flow_receive_bytes_total counter\n"),
     LIT("flow_receive_bytes_total"), FX_DIR_RECEIVE, false},
    {LIT("# HELP flow_transmit_bytes_total Bytes transferred.\n# TYPE flow_transmit_bytes_total counter\n"),
     LIT("flow_transmit_bytes_total"), FX_DIR_TRANSMIT, false},
    {LIT("# HELP flow_receive_packets_total Packets received.\n# TYPE flow_receive_packets_total counter\n"),
     LIT("flow_receive_packets_total"), FX_DIR_RECEIVE, true},
    {LIT("# HELP flow_transmit_packets_total Packets transmitted.\n"
	 "# TYPE flow_transmit_packets_total counter\n"),
     LIT("flow_transmit_packets_total"), FX_DIR_TRANSMIT, true},
};
#define N_FLOW_FAMILIES (sizeof(flow_families) / sizeof(flow_families[0]))

/* The longest "name=\"" prefix of a numeric label, plus its digits, closing quote and separator. */
#define NUMBER_LABEL_MAX (sizeof("destination_as=\"") - 1 + 20 + 2)
#define NAME_LABEL_PREFIX_MAX (sizeof("destination_as_name=\"") - 1)

/* AS-name lookups, cached per render: one slot per ASN hash, most recent wins. */
#define NAME_CACHE_SLOTS 4096

struct name_cache_slot {
	uint32_t asn;
	bool filled;
	bool needs_escape;
	const char *name; /* NULL when the ASN has no (non-empty) name */
	size_t len;
};

struct render_state {
	const struct fx_snapshot *snapshot;
	struct name_cache_slot *name_cache; /* NAME_CACHE_SLOTS; NULL when no name label is written */
	const char *last_hostname;	    /* the hostname whose fragment is in host_fragment */
	struct fx_buf host_fragment;	    /* hostname="<escaped>" */
};

static bool needs_label_escape(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\\' || c == '"' || c == '\n')
			return true;
	}
	return false;
}

/* Writes s escaped as a label value to out (room for 2 * len bytes) and returns the end. */
static char *write_label_escaped(char *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\\' || c == '"') {
			*out++ = '\\';
			*out++ = c;
		} else if (c == '\n') {
			*out++ = '\\';
			*out++ = 'n';
		} else {
			*out++ = c;
		}
	}
	return out;
}

static int append_label_escaped(struct fx_buf *out, const char *s)
{
	size_t len = strlen(s);
	int rc = fx_buf_reserve(out, 2 * len);
	if (rc)
		return rc;
	char *end = write_label_escaped(out->data + out->len, s, len);
	out->len = (size_t)(end - out->data);
	out->data[out->len] = '\0';
	return 0;
}

/* HELP text escapes only backslash and newline. */
static int append_help_escaped(struct fx_buf *out, const char *s)
{
	size_t len = strlen(s);
	int rc = fx_buf_reserve(out, 2 * len);
	if (rc)
		return rc;
	char *p = out->data + out->len;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\') {
			*p++ = '\\';
			*p++ = '\\';
		} else if (s[i] == '\n') {
			*p++ = '\\';
			*p++ = 'n';
		} else {
			*p++ = s[i];
		}
	}
	out->len = (size_t)(p - out->data);
	out->data[out->len] = '\0';
	return 0;
}

/* Decimal digits, two at a time: fx_u64_to_dec's one division per digit was the largest cost of a render. */
static const char digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static size_t dec_len(uint64_t value)
{
	size_t n = 1;
	for (uint64_t limit = 10; value >= limit; limit *= 10) {
		n++;
		if (n == 20)
			break; /* 10^20 does not fit: every value past 10^19 has 20 digits */
	}
	return n;
}

/* Writes value in decimal at p and returns the end. */
static char *write_dec(char *p, uint64_t value)
{
	char *end = p + dec_len(value);
	char *q = end;
	while (value >= 100) {
		unsigned pair = (unsigned)(value % 100);
		value /= 100;
		q -= 2;
		memcpy(q, &digit_pairs[2 * pair], 2);
	}
	if (value >= 10) {
		q -= 2;
		memcpy(q, &digit_pairs[2 * value], 2);
	} else {
		*--q = (char)('0' + value);
	}
	assert(q == p);
	return end;
}

/* The same for 32-bit labels, with 32-bit divisions. */
static char *write_dec32(char *p, uint32_t value)
{
	size_t n = 1;
	for (uint32_t v = value; v >= 10; v /= 10)
		n++;
	char *end = p + n;
	char *q = end;
	while (value >= 100) {
		unsigned pair = value % 100;
		value /= 100;
		q -= 2;
		memcpy(q, &digit_pairs[2 * pair], 2);
	}
	if (value >= 10) {
		q -= 2;
		memcpy(q, &digit_pairs[2 * value], 2);
	} else {
		*--q = (char)('0' + value);
	}
	return end;
}

static const struct name_cache_slot *lookup_name(struct render_state *state, uint32_t asn)
{
	/* Fibonacci hashing spreads neighbouring ASNs over the slots. */
	struct name_cache_slot *slot = &state->name_cache[(uint32_t)(asn * 2654435769u) >> 20];
	if (!slot->filled || slot->asn != asn) {
		const char *name = fx_asn_map_lookup(state->snapshot->names, asn);
		size_t len = name ? strlen(name) : 0;
		slot->asn = asn;
		slot->filled = true;
		slot->name = len ? name : NULL;
		slot->len = len;
		slot->needs_escape = needs_label_escape(name, len);
	}
	return slot;
}

static int update_host_fragment(struct render_state *state, const char *hostname)
{
	if (hostname == state->last_hostname)
		return 0;
	fx_buf_reset(&state->host_fragment);
	if (hostname[0]) {
		int rc = fx_buf_append(&state->host_fragment, LIT("hostname=\""));
		if (!rc)
			rc = append_label_escaped(&state->host_fragment, hostname);
		if (!rc)
			rc = fx_buf_append(&state->host_fragment, LIT("\""));
		if (rc) {
			state->last_hostname = NULL;
			return rc;
		}
	}
	state->last_hostname = hostname;
	return 0;
}

static char *write_separator(char *p, const char *start)
{
	if (p != start)
		*p++ = ',';
	return p;
}

static char *write_number_label(char *p, const char *start, const char *prefix, size_t prefix_len,
				uint32_t value)
{
	p = write_separator(p, start);
	memcpy(p, prefix, prefix_len);
	p += prefix_len;
	p = write_dec32(p, value);
	*p++ = '"';
	return p;
}

static char *write_name_label(char *p, const char *start, const char *prefix, size_t prefix_len,
			      const struct name_cache_slot *name)
{
	p = write_separator(p, start);
	memcpy(p, prefix, prefix_len);
	p += prefix_len;
	if (name->needs_escape) {
		p = write_label_escaped(p, name->name, name->len);
	} else {
		memcpy(p, name->name, name->len);
		p += name->len;
	}
	*p++ = '"';
	return p;
}

/* Appends the label set of one series (without braces) to labels. */
static int render_series_labels(struct render_state *state, const struct fx_series_key *key,
				struct fx_buf *labels)
{
	uint32_t mask = state->snapshot->label_mask;
	uint32_t keep = mask & key->present;
	const struct name_cache_slot *src_name = NULL, *dst_name = NULL;
	size_t bound = 5 * NUMBER_LABEL_MAX;

	if ((mask & FX_LABEL_HOSTNAME) && key->hostname) {
		int rc = update_host_fragment(state, key->hostname);
		if (rc)
			return rc;
		bound += state->host_fragment.len + 1;
	}
	if (state->name_cache && (mask & FX_LABEL_SOURCE_AS_NAME) && (key->present & FX_LABEL_SOURCE_AS)) {
		src_name = lookup_name(state, key->as_src);
		if (!src_name->name)
			src_name = NULL;
		else
			bound += NAME_LABEL_PREFIX_MAX + 2 * src_name->len + 2;
	}
	if (state->name_cache && (mask & FX_LABEL_DESTINATION_AS_NAME) &&
	    (key->present & FX_LABEL_DESTINATION_AS)) {
		dst_name = lookup_name(state, key->as_dst);
		if (!dst_name->name)
			dst_name = NULL;
		else
			bound += NAME_LABEL_PREFIX_MAX + 2 * dst_name->len + 2;
	}
	int rc = fx_buf_reserve(labels, bound);
	if (rc)
		return rc;

	char *start = labels->data + labels->len;
	char *p = start;
	if (keep & FX_LABEL_DESTINATION_AS)
		p = write_number_label(p, start, LIT("destination_as=\""), key->as_dst);
	if (dst_name)
		p = write_name_label(p, start, LIT("destination_as_name=\""), dst_name);
	if ((mask & FX_LABEL_HOSTNAME) && key->hostname && state->host_fragment.len) {
		p = write_separator(p, start);
		memcpy(p, state->host_fragment.data, state->host_fragment.len);
		p += state->host_fragment.len;
	}
	if (keep & FX_LABEL_IFACE_IN)
		p = write_number_label(p, start, LIT("iface_in=\""), key->iface_in);
	if (keep & FX_LABEL_IFACE_OUT)
		p = write_number_label(p, start, LIT("iface_out=\""), key->iface_out);
	if (keep & FX_LABEL_SOURCE_AS)
		p = write_number_label(p, start, LIT("source_as=\""), key->as_src);
	if (src_name)
		p = write_name_label(p, start, LIT("source_as_name=\""), src_name);
	labels->len += (size_t)(p - start);
	assert(labels->len < labels->cap);
	return 0;
}

static uint64_t flow_value(const struct fx_series *series, const struct flow_family *family)
{
	return family->packets ? series->packets[family->direction] : series->bytes[family->direction];
}

/* Writes "name{labels} value\n" at p, which has room for it, and returns the end. */
static char *write_flow_line(char *p, const struct flow_family *family, const char *labels, size_t labels_len,
			     uint64_t value)
{
	memcpy(p, family->name, family->name_len);
	p += family->name_len;
	if (labels_len) {
		*p++ = '{';
		memcpy(p, labels, labels_len);
		p += labels_len;
		*p++ = '}';
	}
	*p++ = ' ';
	p = write_dec(p, value);
	*p++ = '\n';
	return p;
}

static int render_flow_families(const struct fx_snapshot *snapshot, struct fx_buf *out)
{
	struct render_state state = {.snapshot = snapshot};
	struct fx_buf labels;
	size_t *labels_end = NULL; /* labels_end[i]: where series i's label set ends in labels */
	bool family_used[N_FLOW_FAMILIES] = {false};
	size_t total = 0;
	int rc = FX_BUF_E_NOMEM;

	fx_buf_init(&labels, out->max);
	fx_buf_init(&state.host_fragment, out->max);
	if (snapshot->n_series == 0)
		return 0;
	labels_end = malloc(snapshot->n_series * sizeof(*labels_end));
	if (!labels_end)
		goto fail;
	rc = fx_buf_reserve(&labels, 0); /* labels.data is never NULL below, even when no series has labels */
	if (rc)
		goto fail;
	rc = FX_BUF_E_NOMEM;
	if (snapshot->names &&
	    (snapshot->label_mask & (FX_LABEL_SOURCE_AS_NAME | FX_LABEL_DESTINATION_AS_NAME))) {
		state.name_cache = calloc(NAME_CACHE_SLOTS, sizeof(*state.name_cache));
		if (!state.name_cache)
			goto fail;
	}

	/* Pass 1: every label set once, and the exact size of what pass 2 writes. */
	for (size_t i = 0; i < snapshot->n_series; i++) {
		const struct fx_series *series = &snapshot->series[i];
		size_t labels_start = labels.len;
		if (series->seen & ((1u << FX_DIR_RECEIVE) | (1u << FX_DIR_TRANSMIT))) {
			rc = render_series_labels(&state, &series->key, &labels);
			if (rc)
				goto fail;
		}
		labels_end[i] = labels.len;
		size_t labels_len = labels.len - labels_start;
		for (size_t f = 0; f < N_FLOW_FAMILIES; f++) {
			const struct flow_family *family = &flow_families[f];
			if (!(series->seen & (1u << family->direction)))
				continue;
			family_used[f] = true;
			total += family->name_len + (labels_len ? labels_len + 2 : 0) + 2 +
				 dec_len(flow_value(series, family));
		}
	}
	for (size_t f = 0; f < N_FLOW_FAMILIES; f++)
		total += family_used[f] ? flow_families[f].header_len : 0;

	rc = fx_buf_reserve(out, total);
	if (rc)
		goto fail;

	/* Pass 2: no bounds checks, the room is reserved. */
	char *p = out->data + out->len;
	const char *end = p + total;
	for (size_t f = 0; f < N_FLOW_FAMILIES; f++) {
		const struct flow_family *family = &flow_families[f];
		if (!family_used[f])
			continue;
		memcpy(p, family->header, family->header_len);
		p += family->header_len;
		for (size_t i = 0; i < snapshot->n_series; i++) {
			const struct fx_series *series = &snapshot->series[i];
			if (!(series->seen & (1u << family->direction)))
				continue;
			size_t labels_start = i ? labels_end[i - 1] : 0;
			p = write_flow_line(p, family, labels.data + labels_start,
					    labels_end[i] - labels_start, flow_value(series, family));
		}
	}
	assert(p == end);
	(void)end;
	out->len += total;
	out->data[out->len] = '\0';
	rc = 0;
fail:
	free(labels_end);
	free(state.name_cache);
	fx_buf_free(&labels);
	fx_buf_free(&state.host_fragment);
	return rc;
}

/* Shortest of %.15g, %.16g, %.17g that parses back to the same double; Prometheus spellings for the
 * special values. Formatting assumes the "C" numeric locale, which the exporter never changes. */
static size_t format_double(double value, char *out, size_t size)
{
	if (isnan(value))
		return (size_t)snprintf(out, size, "NaN");
	if (isinf(value))
		return (size_t)snprintf(out, size, value > 0 ? "+Inf" : "-Inf");
	int n = 0;
	for (int precision = 15; precision <= 17; precision++) {
		n = snprintf(out, size, "%.*g", precision, value);
		if (strtod(out, NULL) == value)
			break;
	}
	return (size_t)n;
}

static int render_sample(struct fx_buf *out, const struct fx_family *family, const struct fx_sample *sample)
{
	int rc = fx_buf_append_str(out, family->name);
	bool open = false;
	for (size_t i = 0; !rc && i < sample->n_labels; i++) {
		const struct fx_label *label = &sample->labels[i];
		if (!label->value || !label->value[0])
			continue;
		rc = fx_buf_append(out, open ? "," : "{", 1);
		open = true;
		if (!rc)
			rc = fx_buf_append_str(out, label->name);
		if (!rc)
			rc = fx_buf_append(out, LIT("=\""));
		if (!rc)
			rc = append_label_escaped(out, label->value);
		if (!rc)
			rc = fx_buf_append(out, LIT("\""));
	}
	if (!rc && open)
		rc = fx_buf_append(out, LIT("}"));
	if (!rc)
		rc = fx_buf_append(out, LIT(" "));
	if (rc)
		return rc;
	char number[40];
	size_t len = sample->is_integer ? fx_u64_to_dec(sample->integer, number)
					: format_double(sample->real, number, sizeof(number));
	number[len++] = '\n';
	return fx_buf_append(out, number, len);
}

static int render_self_families(const struct fx_family_list *self, struct fx_buf *out)
{
	size_t n = self ? fx_family_list_count(self) : 0;
	for (size_t f = 0; f < n; f++) {
		const struct fx_family *family = fx_family_list_get(self, f);
		if (family->n_samples == 0)
			continue;
		int rc = fx_buf_append(out, LIT("# HELP "));
		if (!rc)
			rc = fx_buf_append_str(out, family->name);
		if (!rc)
			rc = fx_buf_append(out, LIT(" "));
		if (!rc)
			rc = append_help_escaped(out, family->help);
		if (!rc)
			rc = fx_buf_append(out, LIT("\n# TYPE "));
		if (!rc)
			rc = fx_buf_append_str(out, family->name);
		if (!rc)
			rc = family->type == FX_METRIC_COUNTER ? fx_buf_append(out, LIT(" counter\n"))
							       : fx_buf_append(out, LIT(" gauge\n"));
		for (size_t s = 0; !rc && s < family->n_samples; s++)
			rc = render_sample(out, family, &family->samples[s]);
		if (rc)
			return rc;
	}
	return 0;
}

int fx_expo_text_render(const struct fx_snapshot *snapshot, struct fx_buf *out)
{
	size_t entry_len = out->len;
	int rc = render_flow_families(snapshot, out);
	if (!rc)
		rc = render_self_families(snapshot->self, out);
	if (rc && out->data) {
		out->len = entry_len;
		out->data[out->len] = '\0';
	}
	return rc;
}
