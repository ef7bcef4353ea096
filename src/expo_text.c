/* Step (6a): the Prometheus text exposition format 0.0.4 of a snapshot. Pure: snapshot in, bytes out, no
 * I/O, no locks, no state kept between calls.
 *
 * Thread: any thread; a call reads only its snapshot (immutable) and writes only its buffer.
 *
 * Streaming (fx_expo_text_stream): the text is produced a chunk at a time into the caller's memory, so a
 * scrape of 100,000 series (about 50 MB of text) never holds its body: the HTTP server hands libmicrohttpd
 * one chunk at a time, compressed or not. The stream keeps only its position (family, series) and, when a
 * line does not fit the room left, that one line (`pending`). fx_expo_text_render is the same stream
 * written into one buffer.
 *
 * How it stays fast (100,000 series in tens of milliseconds): the parts of a label set are cached: the
 * hostname fragment is escaped once per distinct (interned) hostname, and the AS fragments
 * (`destination_as="64500",destination_as_name="..."`, and the source pair) are rendered once per distinct
 * ASN in a direct-mapped cache; a sample line is then a few memcpy and hand-formatted integers. A series'
 * label set is assembled again in each family it appears in (usually two: bytes and packets of its one
 * direction), which costs less than keeping every label set of the snapshot.
 *
 * Invariants: families are contiguous, each with HELP and TYPE, and a family with no sample writes nothing;
 * labels are in alphabetical order of name; an empty value leaves its label out; on error, `out` is left
 * as it was on entry (fx_expo_text_render). */
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

/* AS fragments, cached per stream: one slot per ASN hash, most recent wins. */
#define ASN_CACHE_SLOTS 4096

struct asn_slot {
	uint32_t asn;
	bool filled;
	struct fx_buf destination; /* destination_as="N",destination_as_name="NAME" (as the mask keeps) */
	struct fx_buf source;	   /* source_as="N",source_as_name="NAME" */
};

/* Appends `name="<digits>"` and, when the AS has a name, `,name_name="<escaped>"` (each as kept). */
static int render_asn_fragment(struct fx_buf *out, bool keep_number, const char *number_prefix,
			       size_t number_prefix_len, uint32_t asn, const char *name,
			       const char *name_prefix, size_t name_prefix_len)
{
	int rc;
	fx_buf_reset(out);
	if ((rc = fx_buf_reserve(out, 0)))
		return rc;
	if (keep_number) {
		if ((rc = fx_buf_reserve(out, number_prefix_len + 12)))
			return rc;
		memcpy(out->data + out->len, number_prefix, number_prefix_len);
		out->len += number_prefix_len;
		out->len += fx_u64_to_dec(asn, out->data + out->len);
		out->data[out->len++] = '"';
	}
	if (name && name[0]) {
		if (out->len && (rc = fx_buf_append(out, ",", 1)))
			return rc;
		if ((rc = fx_buf_append(out, name_prefix, name_prefix_len)) ||
		    (rc = append_label_escaped(out, name)) || (rc = fx_buf_append(out, "\"", 1)))
			return rc;
	}
	out->data[out->len] = '\0';
	return 0;
}

struct render_state {
	const struct fx_snapshot *snapshot;
	struct asn_slot *asn_cache;  /* ASN_CACHE_SLOTS */
	struct asn_slot asn_spare;   /* see lookup_asn */
	const char *last_hostname;   /* the hostname whose fragment is in host_fragment */
	struct fx_buf host_fragment; /* hostname="<escaped>" */
};

/* The cache slot of asn, filled. `taken` is a slot the caller still reads (the destination AS's, when
 * looking up the source AS): when asn would evict it, the spare slot is filled instead. */
static const struct asn_slot *lookup_asn(struct render_state *state, uint32_t asn,
					 const struct asn_slot *taken, int *rc)
{
	/* Fibonacci hashing spreads neighbouring ASNs over the slots. */
	struct asn_slot *slot = &state->asn_cache[(uint32_t)(asn * 2654435769u) >> 20];
	if (slot == taken && slot->asn != asn) {
		slot = &state->asn_spare;
		slot->filled = false;
	}
	if (!slot->filled || slot->asn != asn) {
		uint32_t mask = state->snapshot->label_mask;
		const char *name =
		    state->snapshot->names ? fx_asn_map_lookup(state->snapshot->names, asn) : NULL;
		slot->filled = false;
		if ((*rc = render_asn_fragment(
			 &slot->destination, mask & FX_LABEL_DESTINATION_AS, LIT("destination_as=\""), asn,
			 mask & FX_LABEL_DESTINATION_AS_NAME ? name : NULL, LIT("destination_as_name=\""))) ||
		    (*rc = render_asn_fragment(&slot->source, mask & FX_LABEL_SOURCE_AS, LIT("source_as=\""),
					       asn, mask & FX_LABEL_SOURCE_AS_NAME ? name : NULL,
					       LIT("source_as_name=\""))))
			return NULL;
		slot->asn = asn;
		slot->filled = true;
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

static char *write_part(char *p, const char *start, const char *part, size_t len)
{
	if (!len)
		return p;
	if (p != start)
		*p++ = ',';
	memcpy(p, part, len);
	return p + len;
}

static char *write_number_label(char *p, const char *start, const char *prefix, size_t prefix_len,
				uint32_t value)
{
	if (p != start)
		*p++ = ',';
	memcpy(p, prefix, prefix_len);
	p += prefix_len;
	p += fx_u64_to_dec(value, p);
	*p++ = '"';
	return p;
}

/* Writes the label set of one series (without braces) into labels (reset first). */
static int render_series_labels(struct render_state *state, const struct fx_series_key *key,
				struct fx_buf *labels)
{
	uint32_t mask = state->snapshot->label_mask;
	uint32_t keep = mask & key->present;
	const struct fx_buf *src = NULL, *dst = NULL, *host = NULL;
	size_t bound = 2 * NUMBER_LABEL_MAX + 4;
	int rc = 0;

	if ((mask & FX_LABEL_HOSTNAME) && key->hostname) {
		if ((rc = update_host_fragment(state, key->hostname)))
			return rc;
		host = &state->host_fragment;
		bound += host->len;
	}
	const struct asn_slot *dst_slot = NULL;
	if (key->present & FX_LABEL_DESTINATION_AS) {
		dst_slot = lookup_asn(state, key->as_dst, NULL, &rc);
		if (!dst_slot)
			return rc;
		dst = &dst_slot->destination;
		bound += dst->len;
	}
	if (key->present & FX_LABEL_SOURCE_AS) {
		const struct asn_slot *slot = lookup_asn(state, key->as_src, dst_slot, &rc);
		if (!slot)
			return rc;
		src = &slot->source;
		bound += src->len;
	}
	fx_buf_reset(labels);
	if ((rc = fx_buf_reserve(labels, bound)))
		return rc;

	char *start = labels->data;
	char *p = start;
	if (dst)
		p = write_part(p, start, dst->data, dst->len);
	if (host)
		p = write_part(p, start, host->data, host->len);
	if (keep & FX_LABEL_IFACE_IN)
		p = write_number_label(p, start, LIT("iface_in=\""), key->iface_in);
	if (keep & FX_LABEL_IFACE_OUT)
		p = write_number_label(p, start, LIT("iface_out=\""), key->iface_out);
	if (src)
		p = write_part(p, start, src->data, src->len);
	labels->len = (size_t)(p - start);
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
	p += fx_u64_to_dec(value, p);
	*p++ = '\n';
	return p;
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

/* ---- The stream ---- */

enum stream_phase { PHASE_FLOW, PHASE_SELF, PHASE_DONE };

struct fx_expo_text_stream {
	const struct fx_snapshot *snapshot; /* borrowed */
	struct render_state state;
	bool family_used[N_FLOW_FAMILIES];
	enum stream_phase phase;
	size_t family;	       /* PHASE_FLOW: the family being written */
	size_t series;	       /* PHASE_FLOW: the next series of that family */
	bool header_written;   /* PHASE_FLOW: the family's HELP and TYPE are out */
	struct fx_buf labels;  /* the label set of the series being written */
	struct fx_buf pending; /* bytes made but not yet handed out: a line that did not fit, the self text */
	size_t pending_at;     /* how much of pending was handed out */
	uint64_t produced;     /* bytes handed out so far */
};

struct fx_expo_text_stream *fx_expo_text_stream_create(const struct fx_snapshot *snapshot)
{
	struct fx_expo_text_stream *stream = calloc(1, sizeof(*stream));
	if (!stream)
		return NULL;
	stream->snapshot = snapshot;
	stream->state.snapshot = snapshot;
	fx_buf_init(&stream->state.host_fragment, SIZE_MAX / 2);
	fx_buf_init(&stream->state.asn_spare.destination, SIZE_MAX / 2);
	fx_buf_init(&stream->state.asn_spare.source, SIZE_MAX / 2);
	fx_buf_init(&stream->labels, SIZE_MAX / 2);
	fx_buf_init(&stream->pending, SIZE_MAX / 2);
	stream->state.asn_cache = calloc(ASN_CACHE_SLOTS, sizeof(*stream->state.asn_cache));
	if (!stream->state.asn_cache || fx_buf_reserve(&stream->labels, 256)) {
		fx_expo_text_stream_destroy(stream);
		return NULL;
	}
	for (size_t i = 0; i < ASN_CACHE_SLOTS; i++) {
		fx_buf_init(&stream->state.asn_cache[i].destination, SIZE_MAX / 2);
		fx_buf_init(&stream->state.asn_cache[i].source, SIZE_MAX / 2);
	}
	for (size_t i = 0; i < snapshot->n_series; i++)
		for (size_t f = 0; f < N_FLOW_FAMILIES; f++)
			if (snapshot->series[i].seen & (1u << flow_families[f].direction))
				stream->family_used[f] = true;
	stream->phase = PHASE_FLOW;
	return stream;
}

void fx_expo_text_stream_destroy(struct fx_expo_text_stream *stream)
{
	if (!stream)
		return;
	if (stream->state.asn_cache) {
		for (size_t i = 0; i < ASN_CACHE_SLOTS; i++) {
			fx_buf_free(&stream->state.asn_cache[i].destination);
			fx_buf_free(&stream->state.asn_cache[i].source);
		}
		free(stream->state.asn_cache);
	}
	fx_buf_free(&stream->state.asn_spare.destination);
	fx_buf_free(&stream->state.asn_spare.source);
	fx_buf_free(&stream->state.host_fragment);
	fx_buf_free(&stream->labels);
	fx_buf_free(&stream->pending);
	free(stream);
}

uint64_t fx_expo_text_stream_produced(const struct fx_expo_text_stream *stream)
{
	return stream->produced;
}

/* Hands out what `pending` still holds, as much as fits. */
static size_t drain_pending(struct fx_expo_text_stream *stream, char *out, size_t room)
{
	size_t left = stream->pending.len - stream->pending_at;
	size_t n = left < room ? left : room;
	memcpy(out, stream->pending.data + stream->pending_at, n);
	stream->pending_at += n;
	if (stream->pending_at == stream->pending.len) {
		fx_buf_reset(&stream->pending);
		stream->pending_at = 0;
	}
	return n;
}

/* Writes bytes at out + *written when they fit in room, else keeps them in pending. Returns 0 or an fx_buf
 * error. */
static int emit(struct fx_expo_text_stream *stream, char *out, size_t room, size_t *written,
		const char *bytes, size_t len)
{
	if (stream->pending.len == 0 && len <= room - *written) {
		memcpy(out + *written, bytes, len);
		*written += len;
		return 0;
	}
	return fx_buf_append(&stream->pending, bytes, len);
}

int fx_expo_text_stream_read(struct fx_expo_text_stream *stream, char *out, size_t room, size_t *written)
{
	const struct fx_snapshot *snapshot = stream->snapshot;
	int rc = 0;
	*written = 0;
	while (*written < room) {
		if (stream->pending.len) {
			*written += drain_pending(stream, out + *written, room - *written);
			continue;
		}
		if (stream->phase == PHASE_DONE)
			break;
		if (stream->phase == PHASE_SELF) {
			if ((rc = render_self_families(snapshot->self, &stream->pending)))
				return rc;
			stream->phase = PHASE_DONE;
			continue;
		}
		if (stream->family == N_FLOW_FAMILIES) {
			stream->phase = PHASE_SELF;
			continue;
		}
		const struct flow_family *family = &flow_families[stream->family];
		if (!stream->family_used[stream->family]) {
			stream->family++;
			continue;
		}
		if (!stream->header_written) {
			stream->header_written = true;
			if ((rc = emit(stream, out, room, written, family->header, family->header_len)))
				return rc;
			continue;
		}
		/* Sample lines, straight into out while they fit; the first that does not goes to pending. */
		unsigned direction_bit = 1u << family->direction;
		size_t i = stream->series;
		for (; i < snapshot->n_series; i++) {
			const struct fx_series *series = &snapshot->series[i];
			if (!(series->seen & direction_bit))
				continue;
			if ((rc = render_series_labels(&stream->state, &series->key, &stream->labels)))
				return rc;
			uint64_t value = flow_value(series, family);
			size_t labels_len = stream->labels.len;
			size_t line_len =
			    family->name_len + (labels_len ? labels_len + 2 : 0) + 2 + fx_dec_len(value);
			if (line_len <= room - *written) {
				char *end = write_flow_line(out + *written, family, stream->labels.data,
							    labels_len, value);
				assert((size_t)(end - (out + *written)) == line_len);
				(void)end;
				*written += line_len;
				continue;
			}
			if ((rc = fx_buf_reserve(&stream->pending, line_len)))
				return rc;
			write_flow_line(stream->pending.data, family, stream->labels.data, labels_len, value);
			stream->pending.len = line_len;
			i++;
			break;
		}
		stream->series = i;
		if (i == snapshot->n_series) {
			/* The family is written (its last line may still be pending, ahead of what follows).
			 */
			stream->family++;
			stream->series = 0;
			stream->header_written = false;
		}
	}
	stream->produced += *written;
	return 0;
}

int fx_expo_text_render(const struct fx_snapshot *snapshot, struct fx_buf *out)
{
	/* Chunks big enough that the per-call work is noise, small enough not to over-reserve. */
	enum { CHUNK = 1 << 16 };
	size_t entry_len = out->len;
	int rc = FX_BUF_E_NOMEM;
	struct fx_expo_text_stream *stream = fx_expo_text_stream_create(snapshot);
	if (!stream)
		goto fail;
	for (;;) {
		size_t room = out->max - out->len < CHUNK ? out->max - out->len : CHUNK;
		if ((rc = fx_buf_reserve(out, room)))
			goto fail;
		size_t written = 0;
		if ((rc = fx_expo_text_stream_read(stream, out->data + out->len, room, &written)))
			goto fail;
		out->len += written;
		if (written < room)
			break; /* a short read is the end */
		if (out->len == out->max) {
			/* Full: the end only if nothing is left. */
			char probe;
			if ((rc = fx_expo_text_stream_read(stream, &probe, 1, &written)))
				goto fail;
			if (written) {
				rc = FX_BUF_E_TOO_BIG;
				goto fail;
			}
			break;
		}
	}
	out->data[out->len] = '\0';
	fx_expo_text_stream_destroy(stream);
	return 0;
fail:
	fx_expo_text_stream_destroy(stream);
	if (out->data) {
		out->len = entry_len;
		out->data[out->len] = '\0';
	}
	return rc;
}
