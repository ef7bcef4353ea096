/* Pushgateway pusher: the group path (plain and @base64), and PUT / DELETE against an in-process
 * libmicrohttpd server on 127.0.0.1 that records what it receives. */
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fx/clock.h"
#include "fx/expo_text.h"
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

/* ---- In-process server ---- */

#define MAX_RECORDED 64

struct recorded {
	char method[16];
	char url[256];
	char content_type[128];
	char user_agent[128];
	char *body;
	size_t body_len;
};

struct server {
	pthread_mutex_t lock;
	struct recorded requests[MAX_RECORDED];
	size_t n;
	unsigned statuses[8]; /* answers in order; the last repeats */
	size_t n_statuses;
	struct MHD_Daemon *daemon;
	unsigned port;
};

struct upload {
	char *data;
	size_t len;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *connection, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **req_cls)
{
	struct server *server = cls;
	struct upload *upload = *req_cls;
	if (!upload) {
		*req_cls = calloc(1, sizeof(*upload));
		return *req_cls ? MHD_YES : MHD_NO;
	}
	if (*upload_data_size) {
		char *data = realloc(upload->data, upload->len + *upload_data_size + 1);
		if (!data)
			return MHD_NO;
		memcpy(data + upload->len, upload_data, *upload_data_size);
		upload->data = data;
		upload->len += *upload_data_size;
		upload->data[upload->len] = '\0';
		*upload_data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&server->lock);
	size_t index = server->n;
	unsigned status = server->statuses[index < server->n_statuses ? index : server->n_statuses - 1];
	if (server->n < MAX_RECORDED) {
		struct recorded *r = &server->requests[server->n++];
		const char *content_type =
		    MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Content-Type");
		const char *user_agent =
		    MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "User-Agent");
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->url, sizeof(r->url), "%s", url);
		snprintf(r->content_type, sizeof(r->content_type), "%s", content_type ? content_type : "");
		snprintf(r->user_agent, sizeof(r->user_agent), "%s", user_agent ? user_agent : "");
		r->body = upload->data ? upload->data : strdup("");
		r->body_len = upload->len;
		upload->data = NULL;
	}
	pthread_mutex_unlock(&server->lock);
	struct MHD_Response *response =
	    MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	enum MHD_Result result = MHD_queue_response(connection, status, response);
	MHD_destroy_response(response);
	return result;
}

static void completed(void *cls, struct MHD_Connection *connection, void **req_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct upload *upload = *req_cls;
	if (upload) {
		free(upload->data);
		free(upload);
	}
	*req_cls = NULL;
}

static void server_start(struct server *server, const unsigned *statuses, size_t n_statuses)
{
	memset(server, 0, sizeof(*server));
	pthread_mutex_init(&server->lock, NULL);
	memcpy(server->statuses, statuses, n_statuses * sizeof(*statuses));
	server->n_statuses = n_statuses;
	struct sockaddr_in addr = {.sin_family = AF_INET};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server->daemon =
	    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
			     answer, server, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
			     MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
	CHECK(server->daemon != NULL);
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
	server->port = info ? info->port : 0;
}

static void server_stop(struct server *server)
{
	MHD_stop_daemon(server->daemon);
	for (size_t i = 0; i < server->n; i++)
		free(server->requests[i].body);
	pthread_mutex_destroy(&server->lock);
}

static size_t server_count(struct server *server)
{
	pthread_mutex_lock(&server->lock);
	size_t n = server->n;
	pthread_mutex_unlock(&server->lock);
	return n;
}

static int wait_count(struct server *server, size_t want, int64_t timeout_ms)
{
	int64_t end = fx_mono_ms() + timeout_ms;
	while (server_count(server) < want && fx_mono_ms() < end)
		usleep(10000);
	return server_count(server) >= want ? 0 : -1;
}

/* ---- A snapshot with one series and the push self-metrics ---- */

struct fake_store {
	uint64_t snapshots;
	struct fx_push_stats *stats[1];
	struct fx_push_endpoints endpoints;
};

static struct fx_snapshot *take_snapshot(void *opaque)
{
	struct fake_store *store = opaque;
	store->snapshots++;
	struct fx_snapshot *snapshot = calloc(1, sizeof(*snapshot));
	snapshot->taken_ms = fx_wall_ms();
	snapshot->label_mask = FX_LABEL_ALL;
	snapshot->n_series = 1;
	snapshot->series = calloc(1, sizeof(struct fx_series));
	snapshot->series[0].key = (struct fx_series_key){
	    .hostname = "r1", .as_src = 64500, .present = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS};
	snapshot->series[0].seen = 1u << FX_DIR_RECEIVE;
	snapshot->series[0].bytes[FX_DIR_RECEIVE] = 1000 * store->snapshots;
	snapshot->series[0].packets[FX_DIR_RECEIVE] = store->snapshots;
	snapshot->self = fx_family_list_create();
	/* The pusher's thread may take a snapshot before the test has set the endpoints: publish with
	 * release. */
	if (__atomic_load_n(&store->endpoints.n, __ATOMIC_ACQUIRE))
		CHECK(fx_push_collect(&store->endpoints, snapshot->self) == 0);
	return snapshot;
}

static void test_put_and_delete(void)
{
	static const unsigned statuses[] = {503, 200};
	struct server server;
	server_start(&server, statuses, 2);
	struct fake_store store = {0};
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/prefix/", server.port);
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
		server_stop(&server);
		return;
	}
	store.stats[0] = fx_pushgateway_stats(pushgateway);
	store.endpoints.stats = store.stats;
	__atomic_store_n(&store.endpoints.n, 1, __ATOMIC_RELEASE);
	CHECK(fx_pushgateway_start(pushgateway) == 0);
	/* 503, then the same body again with 200. */
	CHECK(wait_count(&server, 2, 3000) == 0);
	CHECK(fx_pushgateway_shutdown(pushgateway, fx_mono_ms() + 3000) == 0);
	fx_pushgateway_destroy(pushgateway);
	CHECK_EQ_U64(server_count(&server), 3);
	const char *path = "/prefix/metrics/job/flow-exporter/instance@base64/Y29sbGVjdG9yLzE=";
	for (size_t i = 0; i < server.n && i < 3; i++) {
		struct recorded *r = &server.requests[i];
		CHECK_STR(r->url, path);
		CHECK_STR(r->method, i < 2 ? "PUT" : "DELETE");
		if (i < 2) {
			CHECK_STR(r->content_type, FX_TEXT_CONTENT_TYPE);
			CHECK_STR(r->user_agent, "flow-exporter/" FX_VERSION);
			CHECK(strstr(r->body, "# TYPE flow_receive_bytes_total counter\n") != NULL);
			CHECK(
			    strstr(r->body,
				   "flow_receive_bytes_total{hostname=\"r1\",source_as=\"64500\"} 1000\n") !=
			    NULL);
			/* What the Pushgateway adds itself must not be pushed. */
			CHECK(strstr(r->body, "\npush_time_seconds") == NULL);
			CHECK(strstr(r->body, "\npush_failure_time_seconds") == NULL);
		}
	}
	if (server.n >= 2)
		CHECK_STR(server.requests[0].body,
			  server.requests[1].body); /* the retry carries the same body */
	if (server.n >= 2)
		fprintf(stderr, "PUT body:\n%s", server.requests[1].body);
	server_stop(&server);
}

static void test_final_put(void)
{
	/* Without delete, shutdown PUTs the current values; a 400 is dropped, not retried. */
	static const unsigned statuses[] = {400, 200};
	struct server server;
	server_start(&server, statuses, 2);
	struct fake_store store = {0};
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", server.port);
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
	CHECK(wait_count(&server, 1, 3000) == 0);
	usleep(400000);
	CHECK_EQ_U64(server_count(&server), 1);
	CHECK(fx_pushgateway_shutdown(pushgateway, fx_mono_ms() + 3000) == 0);
	fx_pushgateway_destroy(pushgateway);
	CHECK_EQ_U64(server_count(&server), 2);
	if (server.n == 2) {
		CHECK_STR(server.requests[1].method, "PUT");
		CHECK_STR(server.requests[1].url, "/metrics/job/j/instance/i");
		CHECK(strstr(server.requests[1].body, "} 2000\n") !=
		      NULL); /* the values of the second snapshot */
	}
	server_stop(&server);

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
	struct server server;
	server_start(&server, statuses, 1);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", server.port);
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
	CHECK(wait_count(&server, 1, 10000) == 0);
	CHECK(fx_pushgateway_shutdown(pushgateway, fx_mono_ms() + 10000) == 0);
	fx_pushgateway_destroy(pushgateway);
	struct fx_snapshot *snapshot = take_big_snapshot(NULL);
	struct fx_buf expected;
	fx_buf_init(&expected, 1u << 30);
	CHECK(fx_expo_text_render(snapshot, &expected) == 0);
	CHECK(expected.len > (size_t)2 << 20);
	CHECK_EQ_U64(server_count(&server), 2);
	for (size_t i = 0; i < server.n && i < 2; i++)
		CHECK(server.requests[i].body && strcmp(server.requests[i].body, expected.data) == 0);
	fx_buf_free(&expected);
	fx_snapshot_destroy(snapshot);
	server_stop(&server);
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
