/* The HTTP client (http_client.c) against the fake server (tests/support/fake_http.c): a POST with its
 * headers, a 500 and a 429 with Retry-After reported, a GET into a bounded buffer (and one too big), a
 * streamed body, a network error, and the URL shown without its secrets. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "fake_http.h"
#include "fx/http_client.h"

static struct fx_http_client *client_for(struct fake_http *server, const char *method)
{
	char url[128];
	snprintf(url, sizeof(url), "http://user:pw@127.0.0.1:%u/path?token=secret", fake_http_port(server));
	static const char *const fixed[] = {"Content-Type: application/x-test"};
	static const char *const extra[] = {"X-Scope-OrgID: tenant-1"};
	struct fx_http_client_config config = {
	    .url = url, .timeout_ms = 2000, .headers = extra, .n_headers = 1};
	return fx_http_client_create(&config, method, fixed, 1);
}

static void test_post_and_statuses(void)
{
	struct fake_http_answer answers[] = {
	    {500, "overloaded", NULL, false}, {429, NULL, "7", false}, {204, NULL, NULL, false}};
	struct fake_http *server = fake_http_start(answers, 3);
	CHECK(server != NULL);
	struct fx_http_client *client = client_for(server, "POST");
	CHECK(client != NULL);
	char expected_url[128];
	snprintf(expected_url, sizeof(expected_url), "http://127.0.0.1:%u/path", fake_http_port(server));
	CHECK_STR(fx_http_client_display_url(client), expected_url);
	struct fx_http_request request = {.body = "hello", .len = 5};
	struct fx_http_result result;
	fx_http_client_send(client, &request, &result);
	CHECK_EQ_U64(result.status, 500);
	CHECK_STR(result.body_start, "overloaded");
	CHECK_STR(result.retry_after, "");
	fx_http_client_send(client, &request, &result);
	CHECK_EQ_U64(result.status, 429);
	CHECK_STR(result.retry_after, "7");
	fx_http_client_send(client, &request, &result);
	CHECK_EQ_U64(result.status, 204);
	CHECK_EQ_U64(fake_http_count(server), 3);
	const struct fake_http_request *first = fake_http_request(server, 0);
	CHECK(first != NULL);
	if (first) {
		CHECK_STR(first->method, "POST");
		CHECK_STR(first->url, "/path");
		CHECK_STR(first->body, "hello");
		CHECK_STR(first->content_type, "application/x-test");
		CHECK_STR(first->user_agent, FX_HTTP_USER_AGENT);
		CHECK(strncmp(first->authorization, "Basic ", 6) == 0); /* the URL's userinfo */
	}
	fx_http_client_destroy(client);
	fake_http_stop(server);
}

struct chunks {
	int left;
};

static size_t read_chunk(void *opaque, char *buffer, size_t max)
{
	struct chunks *chunks = opaque;
	if (chunks->left == 0)
		return 0;
	chunks->left--;
	memcpy(buffer, "abc", 3);
	return 3;
}

static void test_get_and_stream(void)
{
	struct fake_http_answer list = {200, "15169\tGOOGLE, US\n", NULL, false};
	struct fake_http *server = fake_http_start(&list, 1);
	CHECK(server != NULL);
	struct fx_http_client *get = client_for(server, "GET");
	struct fx_buf body;
	fx_buf_init(&body, 1024);
	struct fx_http_request request = {.response = &body};
	struct fx_http_result result;
	fx_http_client_send(get, &request, &result);
	CHECK_EQ_U64(result.status, 200);
	CHECK(!result.too_big);
	CHECK(body.len == 17 && memcmp(body.data, "15169\tGOOGLE, US\n", 17) == 0);
	fx_buf_free(&body);
	fx_buf_init(&body, 4); /* too small */
	fx_http_client_send(get, &request, &result);
	CHECK_EQ_U64(result.status, 0);
	CHECK(result.too_big);
	fx_buf_free(&body);
	fx_http_client_destroy(get);

	struct fx_http_client *put = client_for(server, "PUT");
	struct chunks chunks = {3};
	struct fx_http_request streamed = {.read = read_chunk, .read_opaque = &chunks};
	fx_http_client_send(put, &streamed, &result);
	CHECK_EQ_U64(result.status, 200);
	const struct fake_http_request *last = fake_http_request(server, 2);
	CHECK(last && strcmp(last->method, "PUT") == 0 && strcmp(last->body, "abcabcabc") == 0);
	fx_http_client_destroy(put);
	fake_http_stop(server);
}

static void test_network_error(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in addr = {.sin_family = AF_INET};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(addr);
	bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	getsockname(fd, (struct sockaddr *)&addr, &len);
	close(fd); /* nothing listens there now */
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ntohs(addr.sin_port));
	struct fx_http_client_config config = {.url = url, .timeout_ms = 1000};
	struct fx_http_client *client = fx_http_client_create(&config, "POST", NULL, 0);
	struct fx_http_request request = {0};
	struct fx_http_result result;
	fx_http_client_send(client, &request, &result);
	CHECK_EQ_U64(result.status, 0);
	CHECK(result.error[0] != '\0');
	fx_http_client_destroy(client);
	/* A file that cannot be read refuses the client. */
	config.bearer_token_file = "/nonexistent/token";
	CHECK(fx_http_client_create(&config, "POST", NULL, 0) == NULL);
}

int main(void)
{
	test_post_and_statuses();
	test_get_and_stream();
	test_network_error();
	return check_exit();
}
