/* Remote-write sender against the recording receiver (tests/tools/rw_receiver, run as a subprocess on
 * 127.0.0.1): conformance of every request, 500 then success, 4xx never retried, Retry-After, capped
 * backoff under 503, a slow receiver, connection refused / hang / 1 MB error body survived, the backlog
 * bound, creation refusals and secrets kept out of logs and metrics, the queue on disk across a restart. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fake_http.h"
#include "fx/clock.h"
#include "fx/log.h"
#include "fx/rw2_encode.h"
#include "fx/rw_encode.h"
#include "fx/rw_sender.h"

static char work_dir[256];

/* ---- The receiver subprocess ---- */

struct receiver {
	pid_t pid;
	unsigned port;
	char log_path[300];
};

static int start_receiver(struct receiver *receiver, unsigned port, const char *script, const char *name)
{
	const char *tools = getenv("FX_TOOLS");
	char path[512];
	snprintf(path, sizeof(path), "%s/rw_receiver", tools ? tools : ".");
	snprintf(receiver->log_path, sizeof(receiver->log_path), "%s/%s.jsonl", work_dir, name);
	unlink(receiver->log_path);
	char port_text[16];
	snprintf(port_text, sizeof(port_text), "%u", port);
	int pipe_fds[2];
	if (pipe(pipe_fds) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pipe_fds[1], 1);
		close(pipe_fds[0]);
		execl(path, path, "--port", port_text, "--log", receiver->log_path, "--script", script,
		      "--max-series", "100", (char *)NULL);
		_exit(127);
	}
	close(pipe_fds[1]);
	char line[64] = {0};
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		ssize_t got = read(pipe_fds[0], line + n, 1);
		if (got <= 0 || line[n] == '\n')
			break;
		n++;
	}
	close(pipe_fds[0]);
	receiver->pid = pid;
	if (sscanf(line, "LISTEN %u", &receiver->port) != 1) {
		fprintf(stderr, "receiver did not start (%s): \"%s\"\n", path, line);
		return -1;
	}
	return 0;
}

static void stop_receiver(struct receiver *receiver)
{
	if (receiver->pid <= 0)
		return;
	kill(receiver->pid, SIGTERM);
	waitpid(receiver->pid, NULL, 0);
	receiver->pid = 0;
}

/* Every JSON line the receiver logged so far. */
static json_t *read_log(const struct receiver *receiver)
{
	json_t *lines = json_array();
	FILE *file = fopen(receiver->log_path, "r");
	if (!file)
		return lines;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, file) > 0) {
		json_error_t error;
		json_t *value = json_loads(line, 0, &error);
		if (value)
			json_array_append_new(lines, value);
		else
			CHECK(!"receiver log line is not JSON");
	}
	free(line);
	fclose(file);
	return lines;
}

static long status_of(json_t *line)
{
	return (long)json_integer_value(json_object_get(line, "status"));
}
static int64_t arrival_of(json_t *line)
{
	return (int64_t)json_integer_value(json_object_get(line, "ms"));
}

static size_t count_status(json_t *lines, long status)
{
	size_t n = 0;
	for (size_t i = 0; i < json_array_size(lines); i++)
		n += status_of(json_array_get(lines, i)) == status;
	return n;
}

/* Waits until at least `want` requests answered `status` are logged, or timeout. */
static json_t *wait_for(const struct receiver *receiver, long status, size_t want, int64_t timeout_ms)
{
	int64_t end = fx_mono_ms() + timeout_ms;
	for (;;) {
		json_t *lines = read_log(receiver);
		if (count_status(lines, status) >= want || fx_mono_ms() > end)
			return lines;
		json_decref(lines);
		usleep(20000);
	}
}

static size_t total_violations(json_t *lines)
{
	size_t n = 0;
	for (size_t i = 0; i < json_array_size(lines); i++) {
		json_t *violations = json_object_get(json_array_get(lines, i), "violations");
		n += json_array_size(violations);
		for (size_t k = 0; k < json_array_size(violations); k++)
			fprintf(stderr, "violation: %s\n", json_string_value(json_array_get(violations, k)));
	}
	return n;
}

static int64_t first_ts(json_t *line)
{
	json_t *samples = json_object_get(line, "samples");
	return (int64_t)json_integer_value(json_object_get(json_array_get(samples, 0), "ts"));
}

static unsigned closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(addr);
	bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	getsockname(fd, (struct sockaddr *)&addr, &len);
	close(fd);
	return ntohs(addr.sin_port);
}

/* ---- A fake store: two series whose counters grow on every snapshot ---- */

struct fake_store {
	uint64_t snapshots;
	uint64_t collect_failures; /* counted on the pusher's thread, checked on the test's */
	struct fx_push_stats *stats[1];
	struct fx_push_endpoints endpoints;
};

static struct fx_snapshot *take_snapshot(void *opaque)
{
	struct fake_store *store = opaque;
	uint64_t k = __atomic_add_fetch(&store->snapshots, 1, __ATOMIC_RELAXED);
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	snapshot->taken_ms = fx_wall_ms();
	snapshot->label_mask = FX_LABEL_ALL;
	snapshot->n_series = 2;
	snapshot->series = calloc(2, sizeof(struct fx_series));
	snapshot->series[0].key = (struct fx_series_key){
	    .hostname = "r1", .as_src = 64500, .present = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS};
	snapshot->series[0].seen = 1u << FX_DIR_RECEIVE;
	snapshot->series[0].bytes[FX_DIR_RECEIVE] = 1000 * k;
	snapshot->series[0].packets[FX_DIR_RECEIVE] = k;
	snapshot->series[1].key = (struct fx_series_key){
	    .hostname = "r2", .as_dst = 64501, .present = FX_LABEL_HOSTNAME | FX_LABEL_DESTINATION_AS};
	snapshot->series[1].seen = 1u << FX_DIR_TRANSMIT;
	snapshot->series[1].bytes[FX_DIR_TRANSMIT] = 2000 * k;
	snapshot->series[1].packets[FX_DIR_TRANSMIT] = 2 * k;
	snapshot->self = fx_family_list_create();
	/* The pusher's thread may take a snapshot before the test has set the endpoints: publish with
	 * release. */
	if (__atomic_load_n(&store->endpoints.n, __ATOMIC_ACQUIRE))
		if (fx_push_collect(&store->endpoints, snapshot->self) != 0)
			__atomic_add_fetch(&store->collect_failures, 1, __ATOMIC_RELAXED);
	return snapshot;
}

static struct fx_rw_sender_config base_config(struct fake_store *store, char *url, unsigned port)
{
	snprintf(url, 256, "http://127.0.0.1:%u/api/v1/write", port);
	static const struct fx_label external[] = {{"job", "flow-exporter"}, {"instance", "test"}};
	struct fx_rw_sender_config config = {
	    .http = {.url = url, .timeout_ms = 1000},
	    .backoff = {.min_ms = 100, .max_ms = 400},
	    .interval_ms = 200,
	    .backlog_ms = 60000,
	    .max_series_per_request = 2000,
	    .external_labels = external,
	    .n_external_labels = 2,
	    .hooks = {.take_snapshot = take_snapshot, .opaque = store},
	    .metadata_interval_ms = -1, /* these tests count sample requests; test_protocols sends metadata */
	};
	return config;
}

static struct fx_rw_sender *start_sender(const struct fx_rw_sender_config *config, struct fake_store *store)
{
	struct fx_rw_sender *sender = fx_rw_sender_create(config);
	CHECK(sender != NULL);
	CHECK(fx_rw_sender_start(sender) == 0);
	return sender;
}

/* Reads a counter of the sender's self-metrics. */
static double stat_value(struct fx_rw_sender *sender, const char *family_name, const char *label,
			 const char *value)
{
	struct fx_push_stats *stats[] = {fx_rw_sender_stats(sender)};
	struct fx_push_endpoints endpoints = {stats, 1};
	struct fx_family_list *list = fx_family_list_create();
	CHECK(fx_push_collect(&endpoints, list) == 0);
	double result = -1;
	for (size_t f = 0; f < fx_family_list_count(list); f++) {
		const struct fx_family *family = fx_family_list_get(list, f);
		if (strcmp(family->name, family_name) != 0)
			continue;
		for (size_t s = 0; s < family->n_samples; s++) {
			const struct fx_sample *sample = &family->samples[s];
			int match = !label;
			for (size_t l = 0; label && l < sample->n_labels; l++)
				match |= strcmp(sample->labels[l].name, label) == 0 &&
					 strcmp(sample->labels[l].value, value) == 0;
			if (match)
				result = sample->is_integer ? (double)sample->integer : sample->real;
		}
	}
	fx_family_list_destroy(list);
	return result;
}

/* stat_value once the sender has counted what the receiver already answered: the receiver logs a 200
 * before the sender's thread has read it, so the count may lag the log by a moment (3 s at most). */
static double settled_stat(struct fx_rw_sender *sender, const char *family_name, const char *label,
			   const char *value, double want)
{
	double got = stat_value(sender, family_name, label, value);
	for (int64_t deadline = fx_mono_ms() + 3000; got < want && fx_mono_ms() < deadline;) {
		struct timespec pause = {0, 10 * 1000 * 1000};
		nanosleep(&pause, NULL);
		got = stat_value(sender, family_name, label, value);
	}
	return got;
}

/* ---- Tests ---- */

static void test_500_then_success(void)
{
	struct receiver receiver;
	CHECK(start_receiver(&receiver, 0, "500,200", "t500") == 0);
	struct fake_store store = {0};
	char url[256];
	struct fx_rw_sender_config config = base_config(&store, url, receiver.port);
	config.interval_ms = 5000; /* one push, then the retry */
	struct fx_rw_sender *sender = start_sender(&config, &store);
	json_t *lines = wait_for(&receiver, 200, 1, 5000);
	CHECK(json_array_size(lines) >= 2);
	if (json_array_size(lines) >= 2) {
		json_t *first = json_array_get(lines, 0), *second = json_array_get(lines, 1);
		CHECK_EQ_U64(status_of(first), 500);
		CHECK_EQ_U64(status_of(second), 200);
		/* The same samples, later. */
		char *a = json_dumps(json_object_get(first, "samples"), JSON_SORT_KEYS);
		char *b = json_dumps(json_object_get(second, "samples"), JSON_SORT_KEYS);
		CHECK(a && b && strcmp(a, b) == 0);
		free(a);
		free(b);
		CHECK(arrival_of(second) - arrival_of(first) >= 90);
		json_t *headers = json_object_get(first, "headers");
		CHECK_STR(json_string_value(json_object_get(headers, "user-agent")),
			  "flow-exporter/" FX_VERSION);
		CHECK_STR(json_string_value(json_object_get(headers, "content-encoding")), "snappy");
		CHECK_STR(json_string_value(json_object_get(headers, "content-type")),
			  "application/x-protobuf");
		CHECK_STR(json_string_value(json_object_get(headers, "x-prometheus-remote-write-version")),
			  "0.1.0");
		CHECK(json_object_get(headers, "expect") == NULL);
		CHECK_EQ_U64(json_integer_value(json_object_get(second, "series")), 4);
	}
	CHECK_EQ_U64(total_violations(lines), 0);
	json_decref(lines);
	CHECK(stat_value(sender, "flow_exporter_push_retries_total", NULL, NULL) == 1);
	CHECK(stat_value(sender, "flow_exporter_push_requests_total", "status_class", "5xx") == 1);
	CHECK(settled_stat(sender, "flow_exporter_push_samples_total", NULL, NULL, 4) == 4);
	CHECK(settled_stat(sender, "flow_exporter_push_last_success_timestamp_seconds", NULL, NULL, 1.6e9) >
	      1.6e9);

	/* Shutdown: a final push of the current values, delivered before the deadline. */
	int64_t start = fx_mono_ms();
	CHECK(fx_rw_sender_shutdown(sender, fx_mono_ms() + 3000) == 0);
	CHECK(fx_mono_ms() - start < 2000);
	lines = read_log(&receiver);
	CHECK_EQ_U64(count_status(lines, 200), 2);
	CHECK_EQ_U64(total_violations(lines), 0);
	json_decref(lines);
	fx_rw_sender_destroy(sender);
	stop_receiver(&receiver);
}

static void test_4xx_never_retried(void)
{
	static const char *const statuses[] = {"400", "401", "404", "413"};
	for (size_t i = 0; i < 4; i++) {
		struct receiver receiver;
		char script[32], name[32];
		snprintf(script, sizeof(script), "%s,200", statuses[i]);
		snprintf(name, sizeof(name), "t%s", statuses[i]);
		CHECK(start_receiver(&receiver, 0, script, name) == 0);
		struct fake_store store = {0};
		char url[256];
		struct fx_rw_sender_config config = base_config(&store, url, receiver.port);
		config.interval_ms = 10000;
		struct fx_rw_sender *sender = start_sender(&config, &store);
		usleep(800000); /* the backoff (100 ms) would have retried several times by now */
		json_t *lines = read_log(&receiver);
		CHECK_EQ_U64(json_array_size(lines), 1);
		json_decref(lines);
		CHECK(stat_value(sender, "flow_exporter_push_dropped_batches_total", "reason", "4xx") == 1);
		CHECK(stat_value(sender, "flow_exporter_push_retries_total", NULL, NULL) == 0);
		CHECK(stat_value(sender, "flow_exporter_push_backlog_requests", NULL, NULL) == 0);
		/* The next push goes through with a later timestamp. */
		CHECK(fx_rw_sender_shutdown(sender, fx_mono_ms() + 3000) == 0);
		lines = read_log(&receiver);
		CHECK_EQ_U64(json_array_size(lines), 2);
		if (json_array_size(lines) == 2)
			CHECK(first_ts(json_array_get(lines, 1)) > first_ts(json_array_get(lines, 0)));
		CHECK_EQ_U64(total_violations(lines), 0);
		json_decref(lines);
		fx_rw_sender_destroy(sender);
		stop_receiver(&receiver);
	}
}

static void test_429_retry_after(void)
{
	struct receiver receiver;
	CHECK(start_receiver(&receiver, 0, "429:retry-after=1,200", "t429") == 0);
	struct fake_store store = {0};
	char url[256];
	struct fx_rw_sender_config config = base_config(&store, url, receiver.port);
	config.interval_ms = 10000;
	struct fx_rw_sender *sender = start_sender(&config, &store);
	json_t *lines = wait_for(&receiver, 200, 1, 5000);
	CHECK_EQ_U64(json_array_size(lines), 2);
	if (json_array_size(lines) == 2) {
		int64_t gap = arrival_of(json_array_get(lines, 1)) - arrival_of(json_array_get(lines, 0));
		fprintf(stderr, "429 Retry-After: 1 -> next attempt after %lld ms\n", (long long)gap);
		CHECK(gap >= 999);
		CHECK(gap < 2000);
	}
	CHECK_EQ_U64(total_violations(lines), 0);
	json_decref(lines);
	fx_rw_sender_destroy(sender);
	stop_receiver(&receiver);
}

static void test_503_backoff_capped(void)
{
	struct receiver receiver;
	CHECK(start_receiver(&receiver, 0, "503", "t503") == 0);
	struct fake_store store = {0};
	char url[256];
	struct fx_rw_sender_config config = base_config(&store, url, receiver.port);
	config.interval_ms = 20000;
	struct fx_rw_sender *sender = start_sender(&config, &store);
	usleep(3000000);
	int64_t start = fx_mono_ms();
	fx_rw_sender_destroy(sender); /* no final push: stops at once */
	int64_t stop_ms = fx_mono_ms() - start;
	CHECK(stop_ms < 500);
	json_t *lines = read_log(&receiver);
	size_t n = json_array_size(lines);
	CHECK(n >= 8);
	fprintf(stderr, "503 gaps (ms):");
	int64_t previous_gap = 0;
	for (size_t i = 1; i < n; i++) {
		int64_t gap = arrival_of(json_array_get(lines, i)) - arrival_of(json_array_get(lines, i - 1));
		fprintf(stderr, " %lld", (long long)gap);
		if (i <= 3)
			CHECK(gap > previous_gap); /* growing: ~100, ~200, ~400 */
		CHECK(gap >= 85);
		CHECK(gap <= 400 + 100); /* capped (the cap is 400 ms here) */
		if (i >= 4)
			CHECK(gap >= 350); /* stays at the cap (10% jitter) */
		previous_gap = gap;
	}
	fprintf(stderr, "; stop took %lld ms\n", (long long)stop_ms);
	CHECK_EQ_U64(total_violations(lines), 0);
	json_decref(lines);
	stop_receiver(&receiver);
}

static void test_slow_receiver(void)
{
	struct receiver receiver;
	CHECK(start_receiver(&receiver, 0, "sleep=1500", "tslow") == 0);
	struct fake_store store = {0};
	char url[256];
	struct fx_rw_sender_config config = base_config(&store, url, receiver.port);
	config.interval_ms = 300;
	config.http.timeout_ms = 5000;
	struct fx_rw_sender *sender = start_sender(&config, &store);
	usleep(5000000);
	fx_rw_sender_destroy(sender);
	json_t *lines = read_log(&receiver);
	CHECK(count_status(lines, 200) >= 3);
	/* The receiver checks that every series' timestamps strictly increase across requests. */
	CHECK_EQ_U64(total_violations(lines), 0);
	/* The interval kept ticking while requests were slow: more pushes than requests answered. */
	fprintf(stderr, "slow receiver: %zu requests answered, %llu snapshots taken\n",
		json_array_size(lines),
		(unsigned long long)__atomic_load_n(&store.snapshots, __ATOMIC_RELAXED));
	CHECK(__atomic_load_n(&store.snapshots, __ATOMIC_RELAXED) > json_array_size(lines) + 3);
	json_decref(lines);
	stop_receiver(&receiver);
}

static void test_outage_survived(void)
{
	/* Connection refused first, then a hang longer than the timeout, then a 1 MB error body, then
	 * success: everything pushed meanwhile is delivered, oldest first, with no gap. */
	unsigned port = closed_port();
	struct fake_store store = {0};
	char url[256];
	struct fx_rw_sender_config config = base_config(&store, url, port);
	config.interval_ms = 200;
	config.http.timeout_ms = 1000;
	struct fx_rw_sender *sender = start_sender(&config, &store);
	usleep(1200000);
	CHECK(stat_value(sender, "flow_exporter_push_requests_total", "status_class", "network") >= 2);
	CHECK(stat_value(sender, "flow_exporter_push_backlog_requests", NULL, NULL) >= 4);
	struct receiver receiver;
	CHECK(start_receiver(&receiver, port, "hang=3000,bigbody=1048576:500,200", "toutage") == 0);
	usleep(3500000);
	uint64_t snapshots = __atomic_load_n(&store.snapshots, __ATOMIC_RELAXED);
	/* Drained: the backlog is empty again. */
	int64_t end = fx_mono_ms() + 5000;
	while (stat_value(sender, "flow_exporter_push_backlog_requests", NULL, NULL) > 1 &&
	       fx_mono_ms() < end)
		usleep(50000);
	fx_rw_sender_destroy(sender);
	json_t *lines = read_log(&receiver);
	CHECK(json_array_size(lines) >= 3);
	if (json_array_size(lines) >= 3) {
		CHECK_EQ_U64(json_is_true(json_object_get(json_array_get(lines, 0), "answered")), 0);
		CHECK_EQ_U64(status_of(json_array_get(lines, 1)), 500);
		CHECK_EQ_U64(status_of(json_array_get(lines, 2)), 200);
	}
	/* Every push from the start is delivered, in order, none missing: consecutive timestamps of one
	 * series are about one interval apart. */
	int64_t previous = 0, max_gap = 0;
	size_t delivered = 0;
	for (size_t i = 0; i < json_array_size(lines); i++) {
		json_t *line = json_array_get(lines, i);
		if (status_of(line) != 200)
			continue;
		int64_t ts = first_ts(line);
		if (previous && ts - previous > max_gap)
			max_gap = ts - previous;
		previous = ts;
		delivered++;
	}
	fprintf(stderr, "outage: %zu pushes delivered of %llu taken, largest gap %lld ms\n", delivered,
		(unsigned long long)snapshots, (long long)max_gap);
	CHECK(delivered + 2 >= snapshots);
	CHECK(max_gap < 2 * 200 + 150);
	CHECK_EQ_U64(total_violations(lines), 0);
	json_decref(lines);
	stop_receiver(&receiver);
}

static void test_backlog_bound(void)
{
	unsigned port = closed_port();
	struct fake_store store = {0};
	char url[256];
	struct fx_rw_sender_config config = base_config(&store, url, port);
	config.interval_ms = 100;
	config.backlog_ms = 500; /* five pushes */
	config.backoff.max_ms = 100;
	int64_t start_wall = fx_wall_ms();
	struct fx_rw_sender *sender = start_sender(&config, &store);
	usleep(1500000);
	double backlog = stat_value(sender, "flow_exporter_push_backlog_requests", NULL, NULL);
	double dropped =
	    stat_value(sender, "flow_exporter_push_dropped_batches_total", "reason", "backlog_full");
	fprintf(stderr, "backlog bound: %.0f requests kept, %.0f dropped\n", backlog, dropped);
	CHECK(backlog <= 5 && backlog >= 4);
	CHECK(dropped >= 8);
	struct receiver receiver;
	CHECK(start_receiver(&receiver, port, "200", "tbacklog") == 0);
	json_t *lines = wait_for(&receiver, 200, 6, 3000);
	CHECK(json_array_size(lines) >= 6);
	/* Oldest first among what was kept; the oldest pushes were the ones dropped. */
	if (json_array_size(lines) >= 1)
		CHECK(first_ts(json_array_get(lines, 0)) > start_wall + 700);
	CHECK_EQ_U64(total_violations(lines), 0);
	json_decref(lines);
	fx_rw_sender_destroy(sender);
	stop_receiver(&receiver);
}

static char *read_whole(const char *path)
{
	FILE *file = fopen(path, "r");
	if (!file)
		return strdup("");
	static char buffer[1 << 20];
	size_t n = fread(buffer, 1, sizeof(buffer) - 1, file);
	fclose(file);
	buffer[n] = '\0';
	return strdup(buffer);
}

static void test_refusals_and_secrets(void)
{
	struct fake_store store = {0};
	char url[256];
	struct fx_rw_sender_config config = base_config(&store, url, 9);
	/* Reserved and malformed headers and external labels clashing with a flow label are refused by
	 * config.c, the one place that validates them (test_config.c, e2e/push_startup_errors.sh). What needs
	 * the filesystem is checked at create: */
	config.http.basic_auth_user = "alice";
	config.http.basic_auth_password_file = "/nonexistent/password";
	CHECK(fx_rw_sender_create(&config) == NULL);
	config.http.basic_auth_user = NULL;
	config.http.basic_auth_password_file = NULL;
	config.http.bearer_token_file = "/nonexistent/token";
	CHECK(fx_rw_sender_create(&config) == NULL);
	config.http.bearer_token_file = NULL;

	/* Secrets: password from a file, userinfo and a query in the URL; a failure makes it log. */
	char password_path[300], log_path[300];
	snprintf(password_path, sizeof(password_path), "%s/password", work_dir);
	snprintf(log_path, sizeof(log_path), "%s/stderr.log", work_dir);
	FILE *file = fopen(password_path, "w");
	fputs("s3cr3t-pw\n", file);
	fclose(file);
	struct receiver receiver;
	CHECK(start_receiver(&receiver, 0, "500,401,200", "tsecret") == 0);
	config = base_config(&store, url, receiver.port);
	char secret_url[300];
	snprintf(secret_url, sizeof(secret_url), "http://bob:urlpass@127.0.0.1:%u/api/v1/write?key=qsecret",
		 receiver.port);
	config.http.url = secret_url;
	config.http.basic_auth_user = "alice";
	config.http.basic_auth_password_file = password_path;
	static const char *const custom[] = {"X-Scope-OrgID: tenant-1"};
	config.http.headers = custom;
	config.http.n_headers = 1;
	config.interval_ms = 300;

	fflush(stderr);
	int saved = dup(2);
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
	fx_log_set_level(FX_LOG_DEBUG);
	/* Nothing is checked while stderr goes to the file: a failure's message would end up there. */
	struct fx_rw_sender *sender = fx_rw_sender_create(&config);
	int started = -1;
	json_t *lines = NULL;
	if (sender) {
		store.stats[0] = fx_rw_sender_stats(sender);
		store.endpoints.stats = store.stats;
		__atomic_store_n(&store.endpoints.n, 1, __ATOMIC_RELEASE);
		started = fx_rw_sender_start(sender);
		lines = wait_for(&receiver, 200, 2, 5000);
		fx_rw_sender_destroy(sender);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fx_log_set_level(FX_LOG_INFO);

	char *logged = read_whole(log_path);
	int failures_before = check_failures;
	CHECK(sender != NULL);
	CHECK(started == 0);
	CHECK_EQ_U64(__atomic_load_n(&store.collect_failures, __ATOMIC_RELAXED), 0);
	CHECK(strstr(logged, "s3cr3t-pw") == NULL);
	CHECK(strstr(logged, "urlpass") == NULL);
	CHECK(strstr(logged, "qsecret") == NULL);
	CHECK(strstr(logged, "http://127.0.0.1:") != NULL); /* it did log, with the URL cleaned */
	CHECK(strstr(logged, "401") != NULL);
	CHECK(json_array_size(lines) >= 3);
	char *dump = json_dumps(lines, JSON_COMPACT);
	/* The receiver saw basic auth for alice (base64 of "alice:s3cr3t-pw") and the custom header. */
	CHECK(strstr(dump, "Basic YWxpY2U6czNjcjN0LXB3") != NULL);
	CHECK(strstr(dump, "tenant-1") != NULL);
	/* The self-metrics pushed with the values carry the cleaned URL and no secret. */
	CHECK(strstr(dump, "flow_exporter_push_requests_total") != NULL);
	CHECK(strstr(dump, "urlpass") == NULL && strstr(dump, "qsecret") == NULL &&
	      strstr(dump, "s3cr3t") == NULL);
	char expected_label[128];
	snprintf(expected_label, sizeof(expected_label), "\"url\":\"http://127.0.0.1:%u/api/v1/write\"",
		 receiver.port);
	CHECK(strstr(dump, expected_label) != NULL);
	free(dump);
	CHECK_EQ_U64(total_violations(lines), 0);
	if (check_failures != failures_before)
		fprintf(stderr, "the sender's log in this test:\n%s\n", logged);
	free(logged);
	json_decref(lines);
	stop_receiver(&receiver);
}

/* auto against a 1.0 receiver that answers 2.0 with a 204 and no Written header (rw_receiver, as Prometheus
 * 2.42): the same push is re-sent as 1.0 at once, with its metadata request; the endpoint stays on 1.0
 * (the next push is 1.0 only) and the self-metrics say so. */
static void test_auto_falls_back_on_2xx(void)
{
	struct receiver receiver;
	CHECK(start_receiver(&receiver, 0, "200", "tauto") == 0);
	struct fake_store store = {0};
	char url[256];
	struct fx_rw_sender_config config = base_config(&store, url, receiver.port);
	config.protocol = FX_RW_PROTOCOL_AUTO;
	config.metadata_interval_ms = 0; /* the default: once a minute */
	config.interval_ms = 300;
	struct fx_rw_sender *sender = start_sender(&config, &store);
	json_t *lines = wait_for(&receiver, 200, 3, 5000); /* samples + metadata, then the next push */
	CHECK(json_array_size(lines) >= 3);
	size_t samples = 0, metadata = 0;
	for (size_t i = 0; i < json_array_size(lines); i++) {
		json_t *line = json_array_get(lines, i);
		json_t *headers = json_object_get(line, "headers");
		CHECK_STR(json_string_value(json_object_get(headers, "x-prometheus-remote-write-version")),
			  "0.1.0");
		if (json_integer_value(json_object_get(line, "series")) == 4)
			samples++;
		else
			metadata++;
	}
	CHECK(samples >= 2);
	CHECK_EQ_U64(metadata, 1); /* once a minute: only with the first 1.0 push */
	CHECK_EQ_U64(total_violations(lines), 0);
	json_decref(lines);
	CHECK(stat_value(sender, "flow_exporter_remote_write_protocol", "protocol", "1.0") == 1);
	CHECK(stat_value(sender, "flow_exporter_remote_write_protocol", "protocol", "2.0") == 0);
	CHECK(stat_value(sender, "flow_exporter_remote_write_fallbacks_total", NULL, NULL) == 1);
	CHECK(stat_value(sender, "flow_exporter_push_dropped_batches_total", "reason", "4xx") == 0);
	CHECK(fx_rw_sender_shutdown(sender, fx_mono_ms() + 3000) == 0);
	fx_rw_sender_destroy(sender);
	stop_receiver(&receiver);
}

/* auto against a receiver that answers 2.0 with 415: the request is re-sent as 1.0 and delivered; with
 * 2.0 only, a 415 drops the request like any other 4xx. */
static void test_415(void)
{
	for (int only_v2 = 0; only_v2 <= 1; only_v2++) {
		struct fake_http_answer answers[] = {{.status = 415}, {.status = 204}};
		struct fake_http *server = fake_http_start(answers, 2);
		CHECK(server != NULL);
		if (!server)
			return;
		struct fake_store store = {0};
		char url[256];
		struct fx_rw_sender_config config = base_config(&store, url, fake_http_port(server));
		config.protocol = only_v2 ? FX_RW_PROTOCOL_2_0 : FX_RW_PROTOCOL_AUTO;
		config.interval_ms = 60000;
		struct fx_rw_sender *sender = start_sender(&config, &store);
		CHECK(fake_http_wait(server, only_v2 ? 1 : 2, 5000) == 0);
		const struct fake_http_request *first = fake_http_request(server, 0);
		CHECK(first && strcmp(first->content_type, FX_RW2_CONTENT_TYPE) == 0);
		if (!only_v2) {
			const struct fake_http_request *second = fake_http_request(server, 1);
			CHECK(second && strcmp(second->content_type, "application/x-protobuf") == 0);
			CHECK(stat_value(sender, "flow_exporter_remote_write_fallbacks_total", NULL, NULL) ==
			      1);
			CHECK(stat_value(sender, "flow_exporter_push_samples_total", NULL, NULL) == 4);
		} else {
			CHECK(stat_value(sender, "flow_exporter_push_dropped_batches_total", "reason",
					 "4xx") == 1);
			CHECK(stat_value(sender, "flow_exporter_remote_write_protocol", "protocol", "2.0") ==
			      1);
		}
		fx_rw_sender_destroy(sender);
		fake_http_stop(server);
	}
}

/* The disk queue: an auto endpoint that is down (never confirmed, so every request keeps its 1.0 encoding)
 * while the memory backlog holds three pushes; the rest go to disk, and at shutdown the memory too. A new
 * sender on the same directory sends them oldest first once a 1.0 receiver is up (falling back to 1.0 with
 * the encodings from disk: nothing dropped), then its own pushes: every push of both senders is delivered
 * in order, the queue drains, its segments are deleted, and the URL's password is nowhere on disk. */
static void test_disk_queue(void)
{
	unsigned port = closed_port();
	struct fake_store store = {0};
	char url[256], dir[300], command[700];
	struct fx_rw_sender_config config = base_config(&store, url, port);
	snprintf(url, sizeof(url), "http://user:s3cr3t-pw@127.0.0.1:%u/api/v1/write", port);
	snprintf(dir, sizeof(dir), "%s/queue", work_dir);
	config.protocol = FX_RW_PROTOCOL_AUTO;
	config.interval_ms = 100;
	config.backlog_ms = 300;
	config.backoff.max_ms = 100;
	config.queue_dir = dir;
	config.queue_max_bytes = 1 << 20;
	struct fx_rw_sender *sender = start_sender(&config, &store);
	usleep(1200000);
	double on_disk = stat_value(sender, "flow_exporter_push_queue_requests", NULL, NULL);
	double in_memory = stat_value(sender, "flow_exporter_push_backlog_requests", NULL, NULL);
	fprintf(stderr, "disk queue: %.0f requests on disk, %.0f in memory\n", on_disk, in_memory);
	CHECK(on_disk >= 5 && in_memory <= 4);
	CHECK(stat_value(sender, "flow_exporter_push_dropped_batches_total", "reason", "backlog_full") == 0);
	CHECK(fx_rw_sender_shutdown(sender, fx_mono_ms() + 200) == -1);
	fx_rw_sender_destroy(sender);
	uint64_t first_run = __atomic_load_n(&store.snapshots, __ATOMIC_RELAXED);
	snprintf(command, sizeof(command), "grep -rq s3cr3t-pw '%s'", dir);
	CHECK(system(command) != 0);

	struct receiver receiver;
	CHECK(start_receiver(&receiver, port, "200", "tdisk") == 0);
	sender = start_sender(&config, &store);
	int64_t end = fx_mono_ms() + 8000;
	while (stat_value(sender, "flow_exporter_push_queue_requests", NULL, NULL) != 0 && fx_mono_ms() < end)
		usleep(50000);
	usleep(300000);
	CHECK(fx_rw_sender_shutdown(sender, fx_mono_ms() + 3000) == 0);
	CHECK(stat_value(sender, "flow_exporter_remote_write_fallbacks_total", NULL, NULL) == 1);
	CHECK(stat_value(sender, "flow_exporter_push_dropped_batches_total", "reason", "4xx") == 0);
	CHECK(stat_value(sender, "flow_exporter_push_queue_corrupt_total", NULL, NULL) == 0);
	CHECK(stat_value(sender, "flow_exporter_push_queue_disk_errors_total", NULL, NULL) == 0);
	fx_rw_sender_destroy(sender);
	uint64_t snapshots = __atomic_load_n(&store.snapshots, __ATOMIC_RELAXED);
	json_t *lines = read_log(&receiver);
	int64_t previous = 0, max_gap = 0;
	size_t delivered = 0;
	for (size_t i = 0; i < json_array_size(lines); i++) {
		json_t *line = json_array_get(lines, i);
		if (status_of(line) != 200 || json_integer_value(json_object_get(line, "series")) != 4)
			continue;
		int64_t ts = first_ts(line);
		CHECK(ts > previous);
		if (previous && ts - previous > max_gap)
			max_gap = ts - previous;
		previous = ts;
		delivered++;
	}
	fprintf(
	    stderr,
	    "disk queue: %zu pushes delivered of %llu taken (%llu before the restart), largest gap %lld ms\n",
	    delivered, (unsigned long long)snapshots, (unsigned long long)first_run, (long long)max_gap);
	CHECK_EQ_U64(delivered, snapshots);
	CHECK(max_gap < 2 * 100 + 150);
	CHECK_EQ_U64(total_violations(lines), 0);
	json_decref(lines);
	stop_receiver(&receiver);
	snprintf(command, sizeof(command), "test -z \"$(find '%s' -name '*.seg')\"", dir);
	CHECK(system(command) == 0);
}

/* A disk queue too small for the outage: what its bound drops (whether a request is dropped past the bound
 * or alone larger than it) is counted once, in the queue's counters and in backlog_full alike. */
static void test_disk_queue_bound(void)
{
	for (int tiny = 0; tiny <= 1; tiny++) {
		unsigned port = closed_port();
		struct fake_store store = {0};
		char url[256], dir[300];
		struct fx_rw_sender_config config = base_config(&store, url, port);
		snprintf(dir, sizeof(dir), "%s/queue-bound-%d", work_dir, tiny);
		config.interval_ms = 100;
		config.backlog_ms = 100;
		config.backoff.max_ms = 100;
		config.queue_dir = dir;
		config.queue_max_bytes = tiny ? 256 : 2048; /* 256 bytes: smaller than one request */
		struct fx_rw_sender *sender = start_sender(&config, &store);
		usleep(1500000);
		CHECK(fx_rw_sender_shutdown(sender, fx_mono_ms() + 100) ==
		      -1); /* then the counters hold still */
		double queue_dropped =
		    stat_value(sender, "flow_exporter_push_queue_dropped_requests_total", NULL, NULL);
		double backlog_full =
		    stat_value(sender, "flow_exporter_push_dropped_batches_total", "reason", "backlog_full");
		double queued = stat_value(sender, "flow_exporter_push_queue_requests", NULL, NULL);
		double bytes = stat_value(sender, "flow_exporter_push_queue_bytes", NULL, NULL);
		fprintf(stderr,
			"disk queue bound %llu: %.0f dropped (backlog_full %.0f), %.0f queued (%.0f bytes)\n",
			(unsigned long long)config.queue_max_bytes, queue_dropped, backlog_full, queued,
			bytes);
		CHECK(queue_dropped >= 3);
		CHECK(backlog_full == queue_dropped);
		CHECK(bytes <= (double)config.queue_max_bytes);
		CHECK(tiny ? queued == 0 : queued >= 1);
		CHECK(stat_value(sender, "flow_exporter_push_queue_disk_errors_total", NULL, NULL) == 0);
		fx_rw_sender_destroy(sender);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(work_dir, sizeof(work_dir), "/tmp/test_rw_sender.XXXXXX");
	if (!mkdtemp(work_dir)) {
		perror("mkdtemp");
		return 1;
	}
	fx_log_set_level(FX_LOG_INFO);
	test_refusals_and_secrets();
	test_500_then_success();
	test_4xx_never_retried();
	test_429_retry_after();
	test_503_backoff_capped();
	test_slow_receiver();
	test_outage_survived();
	test_backlog_bound();
	test_auto_falls_back_on_2xx();
	test_415();
	test_disk_queue();
	test_disk_queue_bound();
	char command[300];
	snprintf(command, sizeof(command), "rm -rf %s", work_dir);
	if (check_failures == 0 && system(command) != 0)
		fprintf(stderr, "could not remove %s\n", work_dir);
	return check_exit();
}
