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
 * How it stays fast (100,000 series in tens of milliseconds): a series' labels come from series_labels.c,
 * whose caches make a key a few loads (an AS number's digits and name, a hostname's length, and whether a
 * value needs escaping at all); a sample line is then a few memcpy and a hand-formatted integer. A series'
 * label set is written again in each family it appears in (usually two: bytes and packets of its one
 * direction), which costs less than keeping every label set of the snapshot.
 *
 * Bounds: a label set holds at most FX_SERIES_LABELS_MAX labels of at most FX_SERIES_LABEL_VALUE_MAX bytes
 * each (escaped, twice that), so the label and line buffers have that maximum; a line past it fails the
 * render with FX_BUF_E_TOO_BIG, which the HTTP server counts in flow_exporter_scrape_errors_total and the
 * Pushgateway pusher logs as a failed push. `pending` holds one line at a time (a flow line that did not
 * fit the room, a HELP/TYPE header or one self-metric sample), never the whole self-metric text.
 *
 * OpenMetrics 1.0.0 (FX_EXPO_OPENMETRICS) is the same stream with the differences the format needs, so the
 * text format's bytes are untouched: a counter family is named without _total in HELP, TYPE (and UNIT for
 * the byte families, whose names end in _bytes) and its samples with it; every flow sample line is
 * followed by its `<family>_created` line (the series' created_ms, in seconds with milliseconds); HELP
 * escapes the double quote too; the body ends with "# EOF".
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
#include "fx/series_labels.h"

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

/* The OpenMetrics headers of the same families (series_labels.h has the names, help and units). */
static const struct {
	const char *header;
	size_t header_len;
	const char *created; /* "<family>_created" */
	size_t created_len;
} om_families[N_FLOW_FAMILIES] = {
    {LIT("# HELP flow_receive_bytes Bytes received.\n# TYPE flow_receive_bytes counter\n"
	 "# UNIT flow_receive_bytes bytes\n"),
     LIT("flow_receive_bytes_created")},
    {LIT("# HELP flow_transmit_bytes Bytes transferred.\n# TYPE flow_transmit_bytes counter\n"
	 "# UNIT flow_transmit_bytes bytes\n"),
     LIT("flow_transmit_bytes_created")},
    {LIT("# HELP flow_receive_packets Packets received.\n# TYPE flow_receive_packets counter\n"),
     LIT("flow_receive_packets_created")},
    {LIT("# HELP flow_transmit_packets Packets transmitted.\n# TYPE flow_transmit_packets counter\n"),
     LIT("flow_transmit_packets_created")},
};
#define OM_EOF "# EOF\n"
/* A created time: up to 19 digits of seconds, a dot and 3 digits of milliseconds. */
#define CREATED_MAX (19 + 4)

/* The longest label set (without braces): every label, its value escaped, `name="value"` and a comma. */
#define LABELS_MAX (FX_SERIES_LABELS_MAX * (FX_SERIES_LABEL_NAME_MAX + 4 + 2 * FX_SERIES_LABEL_VALUE_MAX))
/* The longest line: a flow line (the longest family name, braces, the labels, a space, 20 digits and the
 * newline), a HELP line or a self-metric sample, whose strings come from the collectors and are far shorter.
 */
#define LINE_MAX (LABELS_MAX + 64 + 4 + 20 + 1)

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

/* HELP text escapes only backslash and newline (OpenMetrics: the double quote too). */
static int append_help_escaped(struct fx_buf *out, const char *s, bool quote)
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
		} else if (quote && s[i] == '"') {
			*p++ = '\\';
			*p++ = '"';
		} else {
			*p++ = s[i];
		}
	}
	out->len = (size_t)(p - out->data);
	out->data[out->len] = '\0';
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

/* OpenMetrics: "<family>_created{labels} <seconds>.<milliseconds>\n" at p, which has room; returns the end.
 */
static char *write_created_line(char *p, size_t family, const char *labels, size_t labels_len,
				int64_t created_ms)
{
	memcpy(p, om_families[family].created, om_families[family].created_len);
	p += om_families[family].created_len;
	if (labels_len) {
		*p++ = '{';
		memcpy(p, labels, labels_len);
		p += labels_len;
		*p++ = '}';
	}
	*p++ = ' ';
	p += fx_u64_to_dec((uint64_t)created_ms / 1000, p);
	unsigned ms = (unsigned)((uint64_t)created_ms % 1000);
	*p++ = '.';
	*p++ = (char)('0' + ms / 100);
	*p++ = (char)('0' + ms / 10 % 10);
	*p++ = (char)('0' + ms % 10);
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

static int render_sample(struct fx_buf *out, const struct fx_family *family, const struct fx_sample *sample,
			 const char *suffix)
{
	int rc = fx_buf_append_str(out, family->name);
	if (!rc && suffix)
		rc = fx_buf_append_str(out, suffix);
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

/* OpenMetrics: the length of a counter family's name without its _total (the samples keep it, or get it:
 * om_sample_suffix); every other name whole. */
static size_t om_family_name_len(const struct fx_family *family)
{
	size_t len = strlen(family->name);
	if (family->type == FX_METRIC_COUNTER && len > 6 && strcmp(family->name + len - 6, "_total") == 0)
		return len - 6;
	return len;
}

static const char *om_sample_suffix(const struct fx_family *family)
{
	return family->type == FX_METRIC_COUNTER && om_family_name_len(family) == strlen(family->name)
		   ? "_total"
		   : NULL;
}

/* Writes the HELP and TYPE lines of a self-metric family into out. */
static int render_self_header(struct fx_buf *out, const struct fx_family *family, bool openmetrics)
{
	size_t name_len = openmetrics ? om_family_name_len(family) : strlen(family->name);
	int rc = fx_buf_append(out, LIT("# HELP "));
	if (!rc)
		rc = fx_buf_append(out, family->name, name_len);
	if (!rc)
		rc = fx_buf_append(out, LIT(" "));
	if (!rc)
		rc = append_help_escaped(out, family->help, openmetrics);
	if (!rc)
		rc = fx_buf_append(out, LIT("\n# TYPE "));
	if (!rc)
		rc = fx_buf_append(out, family->name, name_len);
	if (!rc)
		rc = family->type == FX_METRIC_COUNTER ? fx_buf_append(out, LIT(" counter\n"))
						       : fx_buf_append(out, LIT(" gauge\n"));
	return rc;
}

/* ---- The stream ---- */

enum stream_phase { PHASE_FLOW, PHASE_SELF, PHASE_DONE };

struct fx_expo_text_stream {
	const struct fx_snapshot *snapshot; /* borrowed */
	bool openmetrics;
	bool eof_written;
	struct fx_series_labels *series_labels;
	bool family_used[N_FLOW_FAMILIES];
	enum stream_phase phase;
	size_t family;	       /* the family being written (flow, then self) */
	size_t series;	       /* PHASE_FLOW: the next series of that family; PHASE_SELF: the next sample */
	bool header_written;   /* the family's HELP and TYPE are out */
	struct fx_buf labels;  /* the label set of the series being written; at most LABELS_MAX */
	struct fx_buf pending; /* one line made but not yet handed out; at most LINE_MAX */
	size_t pending_at;     /* how much of pending was handed out */
	uint64_t produced;     /* bytes handed out so far */
};

/* Writes the label set of one series (without braces) into stream->labels (reset first). */
static int render_series_labels(struct fx_expo_text_stream *stream, const struct fx_series_key *key)
{
	struct fx_label_set set;
	size_t n_catalog;
	const struct fx_label_name *catalog = fx_series_labels_catalog(stream->series_labels, &n_catalog);
	fx_series_labels_get(stream->series_labels, key, &set);
	size_t bound = 0;
	for (size_t i = 0; i < set.n; i++) {
		const struct fx_label_pair *pair = &set.pairs[i];
		bound += catalog[pair->label].len + 4 + (pair->escape ? 2 : 1) * pair->value_len;
	}
	struct fx_buf *labels = &stream->labels;
	fx_buf_reset(labels);
	int rc = fx_buf_reserve(labels, bound);
	if (rc)
		return rc;
	char *p = labels->data;
	for (size_t i = 0; i < set.n; i++) {
		const struct fx_label_pair *pair = &set.pairs[i];
		const struct fx_label_name *name = &catalog[pair->label];
		if (i)
			*p++ = ',';
		memcpy(p, name->name, name->len);
		p += name->len;
		*p++ = '=';
		*p++ = '"';
		if (pair->escape) {
			p = write_label_escaped(p, pair->value, pair->value_len);
		} else {
			memcpy(p, pair->value, pair->value_len);
			p += pair->value_len;
		}
		*p++ = '"';
	}
	labels->len = (size_t)(p - labels->data);
	assert(labels->len <= bound);
	return 0;
}

struct fx_expo_text_stream *fx_expo_text_stream_create(const struct fx_snapshot *snapshot)
{
	return fx_expo_stream_create(snapshot, FX_EXPO_TEXT);
}

struct fx_expo_text_stream *fx_expo_stream_create(const struct fx_snapshot *snapshot,
						  enum fx_expo_format format)
{
	struct fx_expo_text_stream *stream = calloc(1, sizeof(*stream));
	if (!stream)
		return NULL;
	stream->snapshot = snapshot;
	stream->openmetrics = format == FX_EXPO_OPENMETRICS;
	fx_buf_init(&stream->labels, LABELS_MAX);
	fx_buf_init(&stream->pending, 2 * LINE_MAX); /* OpenMetrics: a sample line and its _created line */
	stream->series_labels = fx_series_labels_create();
	if (!stream->series_labels || fx_buf_reserve(&stream->labels, 256)) {
		fx_expo_text_stream_destroy(stream);
		return NULL;
	}
	fx_series_labels_begin(stream->series_labels, snapshot);
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
	fx_series_labels_destroy(stream->series_labels);
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

/* The next line of the self-metric families into pending (empty): a header or a sample; moves on to
 * PHASE_DONE after the last. */
static int next_self_line(struct fx_expo_text_stream *stream)
{
	const struct fx_family_list *self = stream->snapshot->self;
	size_t n_families = self ? fx_family_list_count(self) : 0;
	while (stream->family < n_families) {
		const struct fx_family *family = fx_family_list_get(self, stream->family);
		if (!stream->header_written && family->n_samples) {
			stream->header_written = true;
			return render_self_header(&stream->pending, family, stream->openmetrics);
		}
		if (stream->series < family->n_samples)
			return render_sample(&stream->pending, family, &family->samples[stream->series++],
					     stream->openmetrics ? om_sample_suffix(family) : NULL);
		stream->family++;
		stream->series = 0;
		stream->header_written = false;
	}
	stream->phase = PHASE_DONE;
	if (stream->openmetrics && !stream->eof_written) {
		stream->eof_written = true;
		return fx_buf_append(&stream->pending, LIT(OM_EOF));
	}
	return 0;
}

/* Sample lines of the current flow family from stream->series on, straight into out while they fit; the
 * first that does not goes to pending. Moves on to the next family after the last series. */
static int write_flow_lines(struct fx_expo_text_stream *stream, char *out, size_t room, size_t *written)
{
	const struct fx_snapshot *snapshot = stream->snapshot;
	const struct flow_family *family = &flow_families[stream->family];
	unsigned direction_bit = 1u << family->direction;
	size_t i = stream->series;
	int rc;
	for (; i < snapshot->n_series; i++) {
		const struct fx_series *series = &snapshot->series[i];
		if (!(series->seen & direction_bit))
			continue;
		if ((rc = render_series_labels(stream, &series->key)))
			return rc;
		uint64_t value = flow_value(series, family);
		size_t labels_len = stream->labels.len;
		size_t line_len =
		    family->name_len + (labels_len ? labels_len + 2 : 0) + 2 + fx_dec_len(value);
		int64_t created = stream->openmetrics ? series->created_ms : 0;
		if (created > 0 && created != INT64_MAX)
			line_len += om_families[stream->family].created_len +
				    (labels_len ? labels_len + 2 : 0) + 2 +
				    fx_dec_len((uint64_t)created / 1000) + 4;
		else
			created = 0;
		char *at = out + *written;
		bool fits = line_len <= room - *written;
		if (!fits) {
			if ((rc = fx_buf_reserve(&stream->pending, line_len)))
				return rc;
			at = stream->pending.data;
		}
		char *end = write_flow_line(at, family, stream->labels.data, labels_len, value);
		if (created)
			end =
			    write_created_line(end, stream->family, stream->labels.data, labels_len, created);
		assert((size_t)(end - at) == line_len);
		(void)end;
		if (fits) {
			*written += line_len;
			continue;
		}
		stream->pending.len = line_len;
		i++;
		break;
	}
	stream->series = i;
	if (i == snapshot->n_series) {
		/* The family is written (its last line may still be pending, ahead of what follows). */
		stream->family++;
		stream->series = 0;
		stream->header_written = false;
	}
	return 0;
}

int fx_expo_text_stream_read(struct fx_expo_text_stream *stream, char *out, size_t room, size_t *written)
{
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
			if ((rc = next_self_line(stream)))
				return rc;
			continue;
		}
		if (stream->family == N_FLOW_FAMILIES) {
			stream->phase = PHASE_SELF;
			stream->family = 0;
			continue;
		}
		const struct flow_family *family = &flow_families[stream->family];
		if (!stream->family_used[stream->family]) {
			stream->family++;
			continue;
		}
		if (!stream->header_written) {
			stream->header_written = true;
			const char *header =
			    stream->openmetrics ? om_families[stream->family].header : family->header;
			size_t header_len =
			    stream->openmetrics ? om_families[stream->family].header_len : family->header_len;
			if ((rc = emit(stream, out, room, written, header, header_len)))
				return rc;
			continue;
		}
		if ((rc = write_flow_lines(stream, out, room, written)))
			return rc;
	}
	stream->produced += *written;
	return 0;
}

int fx_expo_text_render(const struct fx_snapshot *snapshot, struct fx_buf *out)
{
	return fx_expo_render(snapshot, FX_EXPO_TEXT, out);
}

int fx_expo_render(const struct fx_snapshot *snapshot, enum fx_expo_format format, struct fx_buf *out)
{
	/* Chunks big enough that the per-call work is noise, small enough not to over-reserve. */
	enum { CHUNK = 1 << 16 };
	size_t entry_len = out->len;
	int rc = FX_BUF_E_NOMEM;
	struct fx_expo_text_stream *stream = fx_expo_stream_create(snapshot, format);
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
