/* rw_receiver: the project's recording remote-write receiver, for tests.
 *
 *   rw_receiver [--port N] [--log FILE] [--script STEPS | --script-file FILE] [--max-series N] [--no-samples]
 *
 * Listens on 127.0.0.1 (port 0 picks one) and prints "LISTEN <port>" on stdout once it accepts. Every
 * request is decoded with the project's generated protobuf-c code and snappy_uncompress and checked against
 * remote write 1.0: method POST; Content-Encoding: snappy; Content-Type: application/x-protobuf;
 * X-Prometheus-Remote-Write-Version: 0.1.0; a User-Agent; the body decodes; every series has __name__,
 * labels sorted by name and unique, no empty value, at least one sample; timestamps strictly increasing per
 * series across every request it accepted (2xx); at most --max-series series per request (default 2000).
 * One JSON line per request is appended to the log (default stdout):
 *   {"seq":1,"ms":<wall clock of arrival>,"method":"POST","path":"/api/v1/write","status":200,"step":"500",
 *    "headers":{"content-encoding":"snappy",...}, "series":2,
 *    "samples":[{"labels":{"__name__":"x","job":"j"},"value":"1","bits":"0x3ff0000000000000",
 *                "stale":false,"ts":1700000000000}],
 *    "sample_count":1, "violations":["..."]}
 * (--no-samples leaves "samples" empty: only the counts, for benchmarks.)
 *
 * Script: comma-separated steps, one per request; the last step repeats forever. A step is ':'-separated
 * items: a status (default 200), retry-after=VALUE (header), sleep=MS (wait, then answer),
 * hang=MS (wait, then close the connection without answering), bigbody=BYTES (an error body that long).
 * Examples: "500,200", "429:retry-after=1,200", "400", "sleep=5000", "hang=30000,200",
 * "bigbody=1048576:500,200". A step's body is "step N" unless bigbody is given.
 *
 * A remote write 2.0 request (X-Prometheus-Remote-Write-Version 2.x) is answered as Prometheus 2.42 and
 * other 1.0 receivers that ignore the content type answer it: 204 with no X-Prometheus-Remote-Write-*-Written
 * header, so that an `auto` sender falls back to 1.0. It takes no script step and writes no log line (only
 * a note on stderr), so a script and the log describe the 1.0 requests only. The 2.0 receiver that checks
 * those requests is tests/e2e/lib/rw2_receiver.py.
 *
 * Threads: libmicrohttpd runs one thread per connection so a sleeping answer does not stall the others;
 * the script position, the per-series timestamps and the log are under one mutex. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <snappy-c.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fx/buf.h"
#include "fx/clock.h"
#include "remote.pb-c.h"
#include "types.pb-c.h"

#define MAX_BODY (64u << 20)
#define MAX_STEPS 256
#define STALE_NAN_BITS UINT64_C(0x7ff0000000000002)

struct step {
	unsigned status;
	char retry_after[128];
	long sleep_ms;
	long hang_ms;
	size_t bigbody;
	char text[96];
};

/* Last accepted timestamp of every series, keyed by its labels as text. Open addressing, grows. */
struct series_entry {
	char *key;
	int64_t timestamp;
};

struct receiver {
	pthread_mutex_t lock;
	struct step steps[MAX_STEPS];
	size_t n_steps;
	size_t next_step;
	uint64_t seq;
	size_t max_series;
	bool no_samples; /* --no-samples: log sample counts only */
	FILE *log;
	struct series_entry *table;
	size_t table_cap, table_n;
};

struct upload {
	struct fx_buf body;
	bool too_big;
	int64_t arrival_ms; /* wall clock when the request's headers arrived */
};

/* Log lines are built in buffers with no practical maximum: append failures only shorten the line. */
static void put(struct fx_buf *out, const void *bytes, size_t n)
{
	if (fx_buf_append(out, bytes, n) != 0)
		return;
}

static void put_str(struct fx_buf *out, const char *text)
{
	put(out, text, strlen(text));
}

static void put_printf(struct fx_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_printf(struct fx_buf *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	char *text = malloc((size_t)n + 1);
	if (!text)
		return;
	va_start(ap, fmt);
	vsnprintf(text, (size_t)n + 1, fmt, ap);
	va_end(ap);
	put(out, text, (size_t)n);
	free(text);
}

static uint64_t hash_text(const char *text)
{
	uint64_t h = 1469598103934665603u;
	for (; *text; text++)
		h = (h ^ (unsigned char)*text) * 1099511628211u;
	return h;
}

/* Returns the entry of key (inserted with timestamp INT64_MIN when new), or NULL on allocation failure. */
static struct series_entry *series_lookup(struct receiver *receiver, const char *key)
{
	if (receiver->table_n * 2 >= receiver->table_cap) {
		size_t cap = receiver->table_cap ? receiver->table_cap * 2 : 1024;
		struct series_entry *table = calloc(cap, sizeof(*table));
		if (!table)
			return NULL;
		for (size_t i = 0; i < receiver->table_cap; i++) {
			if (!receiver->table[i].key)
				continue;
			size_t j = hash_text(receiver->table[i].key) & (cap - 1);
			while (table[j].key)
				j = (j + 1) & (cap - 1);
			table[j] = receiver->table[i];
		}
		free(receiver->table);
		receiver->table = table;
		receiver->table_cap = cap;
	}
	size_t j = hash_text(key) & (receiver->table_cap - 1);
	while (receiver->table[j].key) {
		if (strcmp(receiver->table[j].key, key) == 0)
			return &receiver->table[j];
		j = (j + 1) & (receiver->table_cap - 1);
	}
	receiver->table[j].key = strdup(key);
	if (!receiver->table[j].key)
		return NULL;
	receiver->table[j].timestamp = INT64_MIN;
	receiver->table_n++;
	return &receiver->table[j];
}

static int parse_step(const char *text, size_t len, struct step *step)
{
	memset(step, 0, sizeof(*step));
	step->status = 200;
	snprintf(step->text, sizeof(step->text), "%.*s", (int)len, text);
	char item[128];
	const char *end = text + len;
	while (text < end) {
		const char *colon = memchr(text, ':', (size_t)(end - text));
		if (!colon)
			colon = end;
		snprintf(item, sizeof(item), "%.*s", (int)(colon - text), text);
		char *rest;
		if (strncmp(item, "retry-after=", 12) == 0) {
			snprintf(step->retry_after, sizeof(step->retry_after), "%s", item + 12);
		} else if (strncmp(item, "sleep=", 6) == 0) {
			step->sleep_ms = strtol(item + 6, &rest, 10);
			if (*rest)
				return -1;
		} else if (strncmp(item, "hang=", 5) == 0) {
			step->hang_ms = strtol(item + 5, &rest, 10);
			if (*rest)
				return -1;
		} else if (strncmp(item, "bigbody=", 8) == 0) {
			step->bigbody = strtoul(item + 8, &rest, 10);
			if (*rest)
				return -1;
		} else {
			unsigned long status = strtoul(item, &rest, 10);
			if (*rest || status < 100 || status > 599)
				return -1;
			step->status = (unsigned)status;
		}
		text = colon + 1;
	}
	return 0;
}

static int parse_script(struct receiver *receiver, const char *script)
{
	receiver->n_steps = 0;
	const char *p = script;
	while (*p) {
		size_t len = strcspn(p, ",\n");
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\r'))
			len--;
		while (len && *p == ' ') {
			p++;
			len--;
		}
		if (len) {
			if (receiver->n_steps == MAX_STEPS ||
			    parse_step(p, len, &receiver->steps[receiver->n_steps]))
				return -1;
			receiver->n_steps++;
		}
		p += strcspn(p, ",\n");
		if (*p)
			p++;
	}
	if (receiver->n_steps == 0)
		return parse_step("200", 3, &receiver->steps[receiver->n_steps++]);
	return 0;
}

static void json_string(struct fx_buf *out, const char *text)
{
	put(out, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\') {
			char escaped[2] = {'\\', (char)*p};
			put(out, escaped, 2);
		} else if (*p < 0x20) {
			put_printf(out, "\\u%04x", *p);
		} else {
			put(out, p, 1);
		}
	}
	put(out, "\"", 1);
}

struct check_ctx {
	struct fx_buf violations; /* a JSON array's items */
	size_t n_violations;
};

/* Records "<what><detail>". */
static void violation(struct check_ctx *ctx, const char *what, const char *detail)
{
	if (ctx->n_violations >= 100)
		return;
	char text[512];
	snprintf(text, sizeof(text), "%s%s", what, detail ? detail : "");
	if (ctx->n_violations++)
		put(&ctx->violations, ",", 1);
	json_string(&ctx->violations, text);
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct fx_buf *out = cls;
	if (out->len && out->data[out->len - 1] != '{')
		put(out, ",", 1);
	char lower[256];
	size_t i = 0;
	for (; key[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
	lower[i] = '\0';
	json_string(out, lower);
	put(out, ":", 1);
	json_string(out, value ? value : "");
	return MHD_YES;
}

static void check_header(struct MHD_Connection *connection, struct check_ctx *ctx, const char *name,
			 const char *expected)
{
	const char *value = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
	char detail[300];
	if (!value) {
		snprintf(detail, sizeof(detail), "%s", name);
		violation(ctx, "missing header ", detail);
	} else if (expected && strcmp(value, expected) != 0) {
		snprintf(detail, sizeof(detail), "%s: %s", name, value);
		violation(ctx, "wrong header ", detail);
	}
}

/* Decodes and checks the body; appends "series" and "samples" to line. Records timestamps when accepted.
 * Called with the receiver's lock held. */
static void check_body(struct receiver *receiver, const struct fx_buf *body, bool accepted,
		       struct check_ctx *ctx, struct fx_buf *line)
{
	size_t raw_len = 0;
	if (snappy_uncompressed_length(body->data ? body->data : "", body->len, &raw_len) != SNAPPY_OK ||
	    raw_len > MAX_BODY) {
		violation(ctx, "body is not snappy block format", NULL);
		put_str(line, ",\"series\":0,\"samples\":[]");
		return;
	}
	char *raw = malloc(raw_len ? raw_len : 1);
	if (!raw || snappy_uncompress(body->data, body->len, raw, &raw_len) != SNAPPY_OK) {
		free(raw);
		violation(ctx, "body is not snappy block format", NULL);
		put_str(line, ",\"series\":0,\"samples\":[]");
		return;
	}
	Prometheus__WriteRequest *request = prometheus__write_request__unpack(NULL, raw_len, (uint8_t *)raw);
	free(raw);
	if (!request) {
		violation(ctx, "body is not a prometheus.WriteRequest", NULL);
		put_str(line, ",\"series\":0,\"samples\":[]");
		return;
	}
	put_printf(line, ",\"series\":%zu,\"samples\":[", request->n_timeseries);
	size_t n_samples = 0;
	if (request->n_timeseries > receiver->max_series) {
		char detail[64];
		snprintf(detail, sizeof(detail), "%zu > %zu", request->n_timeseries, receiver->max_series);
		violation(ctx, "too many series in one request: ", detail);
	}
	struct fx_buf key, labels;
	fx_buf_init(&key, MAX_BODY);
	fx_buf_init(&labels, MAX_BODY);
	bool first_sample = true;
	for (size_t i = 0; i < request->n_timeseries; i++) {
		const Prometheus__TimeSeries *series = request->timeseries[i];
		fx_buf_reset(&key);
		fx_buf_reset(&labels);
		put(&labels, "{", 1);
		bool has_name = false;
		for (size_t l = 0; l < series->n_labels; l++) {
			const Prometheus__Label *label = series->labels[l];
			if (strcmp(label->name, "__name__") == 0)
				has_name = true;
			if (!label->value[0])
				violation(ctx, "empty value of label ", label->name);
			if (!label->name[0])
				violation(ctx, "empty label name", NULL);
			if (l > 0) {
				int c = strcmp(series->labels[l - 1]->name, label->name);
				if (c == 0)
					violation(ctx, "duplicate label ", label->name);
				else if (c > 0)
					violation(ctx, "labels not sorted at ", label->name);
				put(&labels, ",", 1);
			}
			json_string(&labels, label->name);
			put(&labels, ":", 1);
			json_string(&labels, label->value);
			put_printf(&key, "%s=%s\x1f", label->name, label->value);
		}
		put(&labels, "}", 1);
		if (!has_name)
			violation(ctx, "series without __name__", NULL);
		if (series->n_samples == 0 && series->n_histograms == 0)
			violation(ctx, "series without samples", NULL);
		struct series_entry *entry = series_lookup(receiver, key.data ? key.data : "");
		int64_t previous = entry ? entry->timestamp : INT64_MIN;
		for (size_t s = 0; s < series->n_samples; s++) {
			const Prometheus__Sample *sample = series->samples[s];
			uint64_t bits;
			memcpy(&bits, &sample->value, sizeof(bits));
			if (sample->timestamp <= previous) {
				char detail[160];
				snprintf(detail, sizeof(detail), "%" PRId64 " after %" PRId64,
					 sample->timestamp, previous);
				violation(ctx, "timestamp not increasing: ", detail);
			}
			previous = sample->timestamp;
			n_samples++;
			if (receiver->no_samples)
				continue;
			put_printf(line,
				   "%s{\"labels\":%s,\"value\":\"%.17g\",\"bits\":\"0x%016" PRIx64
				   "\",\"stale\":%s,\"ts\":%" PRId64 "}",
				   first_sample ? "" : ",", labels.data, sample->value, bits,
				   bits == STALE_NAN_BITS ? "true" : "false", sample->timestamp);
			first_sample = false;
		}
		if (accepted && entry && previous > entry->timestamp)
			entry->timestamp = previous;
	}
	put_printf(line, "],\"sample_count\":%zu", n_samples);
	fx_buf_free(&key);
	fx_buf_free(&labels);
	prometheus__write_request__free_unpacked(request, NULL);
}

/* A 2.0 request, answered as a 1.0 receiver that ignores the content type would (see the top). */
static enum MHD_Result answer_as_v1_receiver(struct MHD_Connection *connection)
{
	fprintf(stderr, "rw_receiver: a remote write 2.0 request, answered 204 without Written headers\n");
	struct MHD_Response *response = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	if (!response)
		return MHD_NO;
	enum MHD_Result result = MHD_queue_response(connection, 204, response);
	MHD_destroy_response(response);
	return result;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *connection, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	struct receiver *receiver = cls;
	struct upload *upload = *req_cls;
	if (!upload) {
		upload = calloc(1, sizeof(*upload));
		if (!upload)
			return MHD_NO;
		fx_buf_init(&upload->body, MAX_BODY);
		upload->arrival_ms = fx_wall_ms();
		*req_cls = upload;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (fx_buf_append(&upload->body, upload_data, *upload_data_size) != 0)
			upload->too_big = true;
		*upload_data_size = 0;
		return MHD_YES;
	}

	const char *version_header =
	    MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-Prometheus-Remote-Write-Version");
	if (version_header && strncmp(version_header, "2.", 2) == 0)
		return answer_as_v1_receiver(connection);

	/* One lock from the script step to the log line, so that log order is arrival order. */
	pthread_mutex_lock(&receiver->lock);
	struct step step = receiver->steps[receiver->next_step];
	if (receiver->next_step + 1 < receiver->n_steps)
		receiver->next_step++;
	uint64_t seq = ++receiver->seq;

	bool answered = step.hang_ms == 0;
	bool accepted = answered && step.status >= 200 && step.status < 300;

	struct check_ctx ctx;
	fx_buf_init(&ctx.violations, 1u << 20);
	ctx.n_violations = 0;
	struct fx_buf line;
	fx_buf_init(&line, SIZE_MAX / 2);
	put_printf(&line, "{\"seq\":%" PRIu64 ",\"ms\":%" PRId64 ",\"method\":", seq, upload->arrival_ms);
	json_string(&line, method);
	put_str(&line, ",\"path\":");
	json_string(&line, url);
	put_printf(&line,
		   ",\"status\":%u,\"answered\":%s,\"body_bytes\":%zu,\"step\":", answered ? step.status : 0,
		   answered ? "true" : "false", upload->body.len);
	json_string(&line, step.text);
	put_str(&line, ",\"headers\":{");
	MHD_get_connection_values(connection, MHD_HEADER_KIND, collect_header, &line);
	put(&line, "}", 1);

	if (strcmp(method, "POST") != 0)
		violation(&ctx, "method is not POST: ", method);
	check_header(connection, &ctx, "Content-Encoding", "snappy");
	check_header(connection, &ctx, "Content-Type", "application/x-protobuf");
	check_header(connection, &ctx, "X-Prometheus-Remote-Write-Version", "0.1.0");
	check_header(connection, &ctx, "User-Agent", NULL);
	if (upload->too_big)
		violation(&ctx, "body larger than the receiver's limit", NULL);

	check_body(receiver, &upload->body, accepted, &ctx, &line);
	put_str(&line, ",\"violations\":[");
	if (ctx.violations.len)
		put(&line, ctx.violations.data, ctx.violations.len);
	put_str(&line, "]}\n");
	fwrite(line.data, 1, line.len, receiver->log);
	fflush(receiver->log);
	pthread_mutex_unlock(&receiver->lock);
	fx_buf_free(&line);
	fx_buf_free(&ctx.violations);

	/* Wait only now, as a slow receiver would: the request was checked and logged in arrival order. */
	long wait_ms = step.hang_ms ? step.hang_ms : step.sleep_ms;
	if (wait_ms > 0) {
		struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	if (!answered)
		return MHD_NO; /* closes the connection without a response */

	struct MHD_Response *response;
	if (step.bigbody) {
		char *big = malloc(step.bigbody);
		if (!big)
			return MHD_NO;
		memset(big, 'x', step.bigbody);
		response = MHD_create_response_from_buffer(step.bigbody, big, MHD_RESPMEM_MUST_FREE);
	} else {
		char text[64];
		int n = snprintf(text, sizeof(text), "step %" PRIu64 "\n", seq);
		response = MHD_create_response_from_buffer((size_t)n, text, MHD_RESPMEM_MUST_COPY);
	}
	if (!response)
		return MHD_NO;
	if (step.retry_after[0])
		MHD_add_response_header(response, "Retry-After", step.retry_after);
	enum MHD_Result result = MHD_queue_response(connection, step.status, response);
	MHD_destroy_response(response);
	return result;
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
			      enum MHD_RequestTerminationCode toe)
{
	struct upload *upload = *req_cls;
	if (!upload)
		return;
	fx_buf_free(&upload->body);
	free(upload);
	*req_cls = NULL;
}

static char *read_file(const char *path)
{
	FILE *file = fopen(path, "r");
	if (!file)
		return NULL;
	struct fx_buf text;
	fx_buf_init(&text, 1u << 20);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), file)) > 0)
		if (fx_buf_append(&text, chunk, n) != 0)
			break;
	fclose(file);
	if (fx_buf_append(&text, "", 1) != 0) {
		fx_buf_free(&text);
		return NULL;
	}
	return text.data;
}

static volatile sig_atomic_t stop;
static void on_signal(int signo)
{
	stop = 1;
}

int main(int argc, char **argv)
{
	static struct receiver receiver;
	pthread_mutex_init(&receiver.lock, NULL);
	receiver.max_series = 2000;
	receiver.log = stdout;
	const char *script = "200";
	char *script_text = NULL;
	unsigned long port = 0;
	static const struct option options[] = {
	    {"port", required_argument, NULL, 'p'},
	    {"log", required_argument, NULL, 'l'},
	    {"script", required_argument, NULL, 's'},
	    {"script-file", required_argument, NULL, 'f'},
	    {"max-series", required_argument, NULL, 'm'},
	    {"no-samples", no_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	char *end;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			port = strtoul(optarg, &end, 10);
			if (*end || port > 65535) {
				fprintf(stderr, "rw_receiver: bad --port\n");
				return 2;
			}
			break;
		case 'l':
			receiver.log = fopen(optarg, "a");
			if (!receiver.log) {
				fprintf(stderr, "rw_receiver: cannot open %s: %s\n", optarg, strerror(errno));
				return 2;
			}
			break;
		case 's':
			script = optarg;
			break;
		case 'f':
			script_text = read_file(optarg);
			if (!script_text) {
				fprintf(stderr, "rw_receiver: cannot read %s\n", optarg);
				return 2;
			}
			script = script_text;
			break;
		case 'm':
			receiver.max_series = strtoul(optarg, &end, 10);
			if (*end || receiver.max_series == 0) {
				fprintf(stderr, "rw_receiver: bad --max-series\n");
				return 2;
			}
			break;
		case 'n':
			receiver.no_samples = true;
			break;
		default:
			fprintf(stderr,
				"usage: rw_receiver [--port N] [--log FILE] [--script STEPS | --script-file "
				"FILE] [--max-series N] [--no-samples]\n");
			return 2;
		}
	}
	if (parse_script(&receiver, script) != 0) {
		fprintf(stderr, "rw_receiver: bad script \"%s\"\n", script);
		return 2;
	}

	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *daemon = MHD_start_daemon(
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
	    (uint16_t)port, NULL, NULL, answer, &receiver, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	    MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)120, MHD_OPTION_END);
	if (!daemon) {
		fprintf(stderr, "rw_receiver: cannot listen on 127.0.0.1:%lu\n", port);
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
	printf("LISTEN %u\n", info ? (unsigned)info->port : (unsigned)port);
	fflush(stdout);

	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	while (!stop)
		pause();
	/* Exit at once: a connection thread may be in a long hang= step, which MHD_stop_daemon would wait
	 * for. The lock makes sure no log line is cut in half. */
	pthread_mutex_lock(&receiver.lock);
	fflush(receiver.log);
	_exit(0);
}
