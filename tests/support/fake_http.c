/* The fake HTTP server of fake_http.h.
 *
 * DESIGN
 * - One lock guards the script, the recorded requests and the count. A request is recorded whole under
 *   the lock before the count moves, so a test that saw the count may read the entry without the lock.
 * - A hanging answer is a callback response that sends its body, then sleeps in short steps until stop;
 *   with a thread per connection that stalls only its own connection. */
#include "fake_http.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fx/clock.h"

struct script_entry {
	unsigned status;
	char *body;
	char *retry_after;
	bool hang;
};

struct fake_http {
	struct MHD_Daemon *daemon;
	unsigned port;
	pthread_mutex_t lock;
	struct script_entry script[FAKE_HTTP_MAX_ANSWERS];
	size_t n_script, next; /* under lock */
	struct fake_http_request requests[FAKE_HTTP_MAX_RECORDED];
	size_t n;	     /* under lock */
	atomic_bool hanging; /* a hanging answer sent its body */
	atomic_bool stopping;
};

/* The body of one upload, gathered over the calls of one request. */
struct upload {
	char *data;
	size_t len;
};

/* A hanging answer's state: its own copy of the body. */
struct hang {
	struct fake_http *server;
	char *body;
	size_t len;
};

static void free_script(struct fake_http *server)
{
	for (size_t i = 0; i < server->n_script; i++) {
		free(server->script[i].body);
		free(server->script[i].retry_after);
	}
	server->n_script = 0;
}

void fake_http_script(struct fake_http *server, const struct fake_http_answer *answers, size_t n)
{
	if (n > FAKE_HTTP_MAX_ANSWERS)
		n = FAKE_HTTP_MAX_ANSWERS;
	pthread_mutex_lock(&server->lock);
	free_script(server);
	for (size_t i = 0; i < n; i++)
		server->script[i] = (struct script_entry){
		    answers[i].status, strdup(answers[i].body ? answers[i].body : ""),
		    answers[i].retry_after ? strdup(answers[i].retry_after) : NULL, answers[i].hang};
	server->n_script = n;
	server->next = 0;
	pthread_mutex_unlock(&server->lock);
}

void fake_http_serve(struct fake_http *server, const char *body)
{
	struct fake_http_answer answer = {200, body, NULL, false};
	fake_http_script(server, &answer, 1);
}

static ssize_t hang_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct hang *hang = cls;
	if (pos < hang->len) {
		size_t n = hang->len - pos < max ? hang->len - pos : max;
		memcpy(buf, hang->body + pos, n);
		return (ssize_t)n;
	}
	atomic_store(&hang->server->hanging, true);
	for (int i = 0; i < 1000 && !atomic_load(&hang->server->stopping); i++)
		usleep(10 * 1000);
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void hang_free(void *cls)
{
	struct hang *hang = cls;
	free(hang->body);
	free(hang);
}

static void copy_header(struct MHD_Connection *connection, const char *name, char *out, size_t size)
{
	const char *value = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, name);
	snprintf(out, size, "%s", value ? value : "");
}

/* Records the request (taking the upload's body) and picks its answer. Under the lock. */
static struct script_entry record(struct fake_http *server, struct MHD_Connection *connection,
				  const char *url, const char *method, struct upload *upload)
{
	size_t index = server->next < server->n_script ? server->next++ : server->n_script - 1;
	struct script_entry answer = server->script[index];
	if (server->n < FAKE_HTTP_MAX_RECORDED) {
		struct fake_http_request *r = &server->requests[server->n];
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->url, sizeof(r->url), "%s", url);
		copy_header(connection, "Content-Type", r->content_type, sizeof(r->content_type));
		copy_header(connection, "User-Agent", r->user_agent, sizeof(r->user_agent));
		copy_header(connection, "Authorization", r->authorization, sizeof(r->authorization));
		r->body = upload->data ? upload->data : strdup("");
		r->body_len = upload->len;
		r->arrival_ms = fx_mono_ms();
		upload->data = NULL;
	}
	server->n++;
	return answer;
}

static struct MHD_Response *make_response(struct fake_http *server, const struct script_entry *answer)
{
	struct MHD_Response *response;
	if (answer->hang) {
		struct hang *hang = calloc(1, sizeof(*hang));
		if (!hang)
			return NULL;
		*hang = (struct hang){server, strdup(answer->body), strlen(answer->body)};
		response =
		    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, hang_reader, hang, hang_free);
	} else {
		response = MHD_create_response_from_buffer(strlen(answer->body), answer->body,
							   MHD_RESPMEM_MUST_COPY);
	}
	if (response && answer->retry_after)
		MHD_add_response_header(response, "Retry-After", answer->retry_after);
	return response;
}

static enum MHD_Result answer_request(void *cls, struct MHD_Connection *connection, const char *url,
				      const char *method, const char *version, const char *upload_data,
				      size_t *upload_data_size, void **req_cls)
{
	struct fake_http *server = cls;
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
	struct script_entry answer = record(server, connection, url, method, upload);
	/* The answer's strings are copied into the response under the lock: a new script may free them. */
	struct MHD_Response *response = make_response(server, &answer);
	pthread_mutex_unlock(&server->lock);
	if (!response)
		return MHD_NO;
	enum MHD_Result result = MHD_queue_response(connection, answer.status, response);
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

struct fake_http *fake_http_start(const struct fake_http_answer *answers, size_t n)
{
	struct fake_http *server = calloc(1, sizeof(*server));
	if (!server || pthread_mutex_init(&server->lock, NULL) != 0) {
		free(server);
		return NULL;
	}
	fake_http_script(server, answers, n);
	struct sockaddr_in addr = {.sin_family = AF_INET};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	server->daemon =
	    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
			     answer_request, server, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
			     MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
	const union MHD_DaemonInfo *info =
	    server->daemon ? MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
	server->port = info ? info->port : 0;
	if (!server->port) {
		fprintf(stderr, "fake_http: cannot start the server\n");
		fake_http_stop(server);
		return NULL;
	}
	return server;
}

void fake_http_stop(struct fake_http *server)
{
	if (!server)
		return;
	atomic_store(&server->stopping, true);
	if (server->daemon)
		MHD_stop_daemon(server->daemon);
	size_t recorded = server->n < FAKE_HTTP_MAX_RECORDED ? server->n : FAKE_HTTP_MAX_RECORDED;
	for (size_t i = 0; i < recorded; i++)
		free(server->requests[i].body);
	free_script(server);
	pthread_mutex_destroy(&server->lock);
	free(server);
}

unsigned fake_http_port(const struct fake_http *server)
{
	return server->port;
}

size_t fake_http_count(struct fake_http *server)
{
	pthread_mutex_lock(&server->lock);
	size_t n = server->n;
	pthread_mutex_unlock(&server->lock);
	return n;
}

int fake_http_wait(struct fake_http *server, size_t want, int64_t timeout_ms)
{
	int64_t end = fx_mono_ms() + timeout_ms;
	while (fake_http_count(server) < want && fx_mono_ms() < end)
		usleep(10000);
	return fake_http_count(server) >= want ? 0 : -1;
}

const struct fake_http_request *fake_http_request(struct fake_http *server, size_t i)
{
	size_t n = fake_http_count(server);
	return i < n && i < FAKE_HTTP_MAX_RECORDED ? &server->requests[i] : NULL;
}

bool fake_http_hanging(struct fake_http *server)
{
	return atomic_load(&server->hanging);
}
