/* Pushgateway pusher: the group path (plain and @base64), and PUT / DELETE against the fake server of
 * tests/support/fake_http.c, which records what it receives. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fake_http.h"
#include "fx/clock.h"
#include "fx/expo_text.h"
#include "fx/iface_names.h"
#include "fx/log.h"
#include "fx/pushgateway.h"

static void check_path(const char *job, const char *instance, const char *expected)
{
	struct fx_buf out;
	fx_buf_init(&out, 4096);
	CHECK(fx_pushgateway_group_path(job, instance, &out) == 0);
	CHECK_STR(out.data, expected);
	fx_buf_free(&out);
}

static void test_paths(void)
{
	check_path("flow-exporter", "collector-1", "/metrics/job/flow-exporter/instance/collector-1");
	check_path("a/b", "x", "/metrics/job@base64/YS9i/instance/x");
	check_path("flow-exporter", "", "/metrics/job/flow-exporter/instance@base64/=");
	check_path("j", "host:9590", "/metrics/job/j/instance@base64/aG9zdDo5NTkw");
	check_path("j", "a/", "/metrics/job/j/instance@base64/YS8=");
	check_path("j", "ab/", "/metrics/job/j/instance@base64/YWIv");
	check_path("j", "/var/tmp", "/metrics/job/j/instance@base64/L3Zhci90bXA=");
	check_path("j", "\xff\xfe?", "/metrics/job/j/instance@base64/__4_");
	check_path("j", "a b", "/metrics/job/j/instance@base64/YSBi");
}

/* ---- The fake server (tests/support/fake_http.c), answering statuses with empty bodies ---- */

static struct fake_http *start_server(const unsigned *statuses, size_t n)
{
	struct fake_http_answer answers[8] = {{0}};
	for (size_t i = 0; i < n; i++)
		answers[i].status = statuses[i];
	struct fake_http *server = fake_http_start(answers, n);
	CHECK(server != NULL);
	return server;
}

/* ---- A snapshot with one series and the push self-metrics ---- */

struct fake_store {
	uint64_t snapshots;
	uint64_t collect_failures; /* counted on the pusher's thread, checked on the test's */
	struct fx_push_stats *stats[1];
	struct fx_push_endpoints endpoints;
};

static struct fx_snapshot *take_snapshot(void *opaque)
{
	struct fake_store *store = opaque;
	store->snapshots++;
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	snapshot->taken_ms = fx_wall_ms();
	/* With an interface name inline, as /metrics writes it. */
	snapshot->label_mask = FX_LABEL_ALL | FX_LABEL_IFACE_IN_NAME;
	struct fx_iface_entry named = {"r1", 537, "et-0/0/1", "", 0, false};
	snapshot->interfaces = fx_iface_names_create(NULL, fx_iface_map_build(&named, 1), NULL);
	snapshot->n_series = 1;
	snapshot->series = calloc(1, sizeof(struct fx_series));
	snapshot->series[0].key =
	    (struct fx_series_key){.hostname = "r1",
				   .as_src = 64500,
				   .iface_in = 537,
				   .present = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS | FX_LABEL_IFACE_IN};
	snapshot->series[0].seen = 1u << FX_DIR_RECEIVE;
	snapshot->series[0].bytes[FX_DIR_RECEIVE] = 1000 * store->snapshots;
	snapshot->series[0].packets[FX_DIR_RECEIVE] = store->snapshots;
	snapshot->self = fx_family_list_create();
	/* The pusher's thread may take a snapshot before the test has set the endpoints: publish with
	 * release. */
	if (__atomic_load_n(&store->endpoints.n, __ATOMIC_ACQUIRE))
		if (fx_push_collect(&store->endpoints, snapshot->self) != 0)
			__atomic_add_fetch(&store->collect_failures, 1, __ATOMIC_RELAXED);
	return snapshot;
}

static void test_put_and_delete(void)
{
	static const unsigned statuses[] = {503, 200};
	struct fake_http *server = start_server(statuses, 2);
	struct fake_store store = {0};
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/prefix/", fake_http_port(server));
	struct fx_pushgateway_config config = {
	    .http = {.url = url, .timeout_ms = 2000},
	    .backoff = {.min_ms = 100, .max_ms = 200},
	    .job = "flow-exporter",
	    .instance = "collector/1",
	    .interval_ms = 10000,
	    .delete_on_shutdown = true,
	    .hooks = {.take_snapshot = take_snapshot, .opaque = &store},
	};
	struct fx_pushgateway *pushgateway = fx_pushgateway_create(&config);
	CHECK(pushgateway != NULL);
	if (!pushgateway) {
		fake_http_stop(server);
		return;
	}
	store.stats[0] = fx_pushgateway_stats(pushgateway);
	store.endpoints.stats = store.stats;
	__atomic_store_n(&store.endpoints.n, 1, __ATOMIC_RELEASE);
	CHECK(fx_pushgateway_start(pushgateway) == 0);
	/* 503, then the same body again with 200. */
	CHECK(fake_http_wait(server, 2, 3000) == 0);
	CHECK(fx_pushgateway_shutdown(pushgateway, fx_mono_ms() + 3000) == 0);
	fx_pushgateway_destroy(pushgateway);
	CHECK_EQ_U64(fake_http_count(server), 3);
	CHECK_EQ_U64(__atomic_load_n(&store.collect_failures, __ATOMIC_RELAXED), 0);
	const char *path = "/prefix/metrics/job/flow-exporter/instance@base64/Y29sbGVjdG9yLzE=";
	for (size_t i = 0; i < fake_http_count(server) && i < 3; i++) {
		const struct fake_http_request *r = fake_http_request(server, i);
		CHECK_STR(r->url, path);
		CHECK_STR(r->method, i < 2 ? "PUT" : "DELETE");
		if (i < 2) {
			CHECK_STR(r->content_type, FX_TEXT_CONTENT_TYPE);
			CHECK_STR(r->user_agent, "flow-exporter/" FX_VERSION);
			CHECK(strstr(r->body, "# TYPE flow_receive_bytes_total counter\n") != NULL);
			CHECK(strstr(r->body, "flow_receive_bytes_total{hostname=\"r1\",iface_in=\"537\","
					      "iface_in_name=\"et-0/0/1\","
					      "source_as=\"64500\"} 1000\n") != NULL);
			/* What the Pushgateway adds itself must not be pushed. */
			CHECK(strstr(r->body, "\npush_time_seconds") == NULL);
			CHECK(strstr(r->body, "\npush_failure_time_seconds") == NULL);
		}
	}
	if (fake_http_count(server) >= 2)
		CHECK_STR(fake_http_request(server, 0)->body,
			  fake_http_request(server, 1)->body); /* the retry carries the same body */
	if (fake_http_count(server) >= 2)
		fprintf(stderr, "PUT body:\n%s", fake_http_request(server, 1)->body);
	fake_http_stop(server);
}

static void test_final_put(void)
{
	/* Without delete, shutdown PUTs the current values; a 400 is dropped, not retried. */
	static const unsigned statuses[] = {400, 200};
	struct fake_http *server = start_server(statuses, 2);
	struct fake_store store = {0};
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", fake_http_port(server));
	struct fx_pushgateway_config config = {
	    .http = {.url = url, .timeout_ms = 10000},
	    .backoff = {.min_ms = 50, .max_ms = 30000},
	    .job = "j",
	    .instance = "i",
	    .interval_ms = 10000,
	    .hooks = {.take_snapshot = take_snapshot, .opaque = &store},
	};
	struct fx_pushgateway *pushgateway = fx_pushgateway_create(&config);
	CHECK(pushgateway != NULL);
	CHECK(fx_pushgateway_start(pushgateway) == 0);
	CHECK(fake_http_wait(server, 1, 3000) == 0);
	usleep(400000);
	CHECK_EQ_U64(fake_http_count(server), 1);
	CHECK(fx_pushgateway_shutdown(pushgateway, fx_mono_ms() + 3000) == 0);
	fx_pushgateway_destroy(pushgateway);
	CHECK_EQ_U64(fake_http_count(server), 2);
	if (fake_http_count(server) == 2) {
		CHECK_STR(fake_http_request(server, 1)->method, "PUT");
		CHECK_STR(fake_http_request(server, 1)->url, "/metrics/job/j/instance/i");
		CHECK(strstr(fake_http_request(server, 1)->body, "} 2000\n") !=
		      NULL); /* the values of the second snapshot */
	}
	fake_http_stop(server);

	/* Refusals at creation. (A reserved header is refused by config.c: test_config.c and
	 * e2e/push_startup_errors.sh.) */
	config.job = "";
	CHECK(fx_pushgateway_create(&config) == NULL);
}

/* A body of 20,000 series (several MB, sent chunked as it is rendered) arrives exactly as
 * fx_expo_text_render writes the same snapshot. */
static struct fx_snapshot *take_big_snapshot(void *opaque)
{
	static const char *const hosts[] = {"edge-1.example.net", "core \"2\"", "r3"};
	(void)opaque;
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	snapshot->taken_ms = 1700000000000;
	snapshot->label_mask = FX_LABEL_ALL;
	snapshot->n_series = 20000;
	snapshot->series = calloc(snapshot->n_series, sizeof(struct fx_series));
	for (size_t i = 0; i < snapshot->n_series; i++) {
		struct fx_series *series = &snapshot->series[i];
		series->key = (struct fx_series_key){.hostname = hosts[i / 8000],
						     .as_src = (uint32_t)i,
						     .as_dst = 64496,
						     .iface_in = (uint32_t)(i % 7),
						     .present = FX_LABEL_ALL};
		series->seen = i % 5 ? 1u << FX_DIR_RECEIVE : 3u;
		series->bytes[0] = i * 1499;
		series->bytes[1] = i;
		series->packets[0] = i / 3;
		series->packets[1] = UINT64_MAX - i;
	}
	snapshot->self = fx_family_list_create();
	return snapshot;
}

static void test_streamed_body(void)
{
	static const unsigned statuses[] = {200};
	struct fake_http *server = start_server(statuses, 1);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", fake_http_port(server));
	struct fx_pushgateway_config config = {
	    .http = {.url = url, .timeout_ms = 10000},
	    .backoff = {.min_ms = 50, .max_ms = 30000},
	    .job = "j",
	    .instance = "i",
	    .interval_ms = 60000,
	    .hooks = {.take_snapshot = take_big_snapshot},
	};
	struct fx_pushgateway *pushgateway = fx_pushgateway_create(&config);
	CHECK(pushgateway != NULL);
	CHECK(fx_pushgateway_start(pushgateway) == 0);
	CHECK(fake_http_wait(server, 1, 10000) == 0);
	CHECK(fx_pushgateway_shutdown(pushgateway, fx_mono_ms() + 10000) == 0);
	fx_pushgateway_destroy(pushgateway);
	struct fx_snapshot *snapshot = take_big_snapshot(NULL);
	struct fx_buf expected;
	fx_buf_init(&expected, 1u << 30);
	CHECK(fx_expo_text_render(snapshot, &expected) == 0);
	CHECK(expected.len > (size_t)2 << 20);
	CHECK_EQ_U64(fake_http_count(server), 2);
	for (size_t i = 0; i < fake_http_count(server) && i < 2; i++)
		CHECK(fake_http_request(server, i)->body &&
		      strcmp(fake_http_request(server, i)->body, expected.data) == 0);
	fx_buf_free(&expected);
	fx_snapshot_destroy(snapshot);
	fake_http_stop(server);
}

int main(void)
{
	fx_log_set_level(FX_LOG_INFO);
	test_paths();
	test_put_and_delete();
	test_final_put();
	test_streamed_body();
	return check_exit();
}
