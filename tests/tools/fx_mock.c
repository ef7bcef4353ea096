/* fx_mock: librdkafka's mock Kafka cluster as a process the end-to-end tests drive over a pipe.
 *
 * Starts a mock cluster (rdkafka_mock.h) on 127.0.0.1, creates the topics asked for, prints exactly one
 * line "BOOTSTRAP <host:port>[,...]" on stdout when ready, then answers one line per command read on
 * stdin, each answer starting with "OK" or "ERR <reason>":
 *
 *   produce <topic> <partition> <file>   messages separated by the byte 0x1e, produced synchronously;
 *                                        "OK <n> <first offset> <last offset>" (-1 -1 when n is 0)
 *   down | up                            every broker refuses connections / accepts them again
 *   rtt <ms>                             round-trip delay of every broker
 *   committed <group> <topic> <parts>    "OK p0=<offset> p1=..." (-1001: nothing committed)
 *   watermarks <topic> <parts>           "OK p0=<high> p1=..."
 *   quit                                 "OK", then exits
 *
 * It exits 0 on "quit", on the end of stdin and on SIGTERM or SIGINT.
 *
 * Thread: the main thread reads commands and owns the producer; the mock cluster runs its own thread.
 * Limits of librdkafka 2.0.2's mock: about 5 MiB kept per partition (older batches are dropped
 * silently), one batch per partition per fetch. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 16
#define MAX_BROKERS 16
#define MAX_PARTITIONS 1024
#define MAX_LINE 4096
#define MAX_MESSAGE_BYTES (64 * 1024 * 1024)
#define MESSAGE_SEPARATOR 0x1e
#define PRODUCE_TIMEOUT_MS 30000
#define QUERY_TIMEOUT_MS 10000

struct topic_spec {
	char *name; /* owned */
	int partitions;
};

struct options {
	int brokers;
	struct topic_spec topics[MAX_TOPICS];
	size_t n_topics;
};

/* Delivery results of one produce command, filled by the delivery report callback. */
struct delivery {
	size_t delivered;
	size_t failed;
	int64_t first_offset;
	int64_t last_offset;
	rd_kafka_resp_err_t first_error;
};

struct mock {
	rd_kafka_t *host; /* the handle that owns the mock cluster */
	rd_kafka_mock_cluster_t *cluster;
	rd_kafka_t *producer;
	char bootstraps[1024];
	int brokers;
};

static volatile sig_atomic_t stop_requested;

static void on_signal(int signo)
{
	(void)signo;
	stop_requested = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: fx_mock [--brokers N] [--topic name:partitions]...\n"
		"Hosts librdkafka's mock cluster; see the top of tests/tools/fx_mock.c for the commands.\n");
}

/* Parses a non-negative decimal int with no trailing bytes. Returns 0 or -1. */
static int parse_int(const char *text, long min, long max, long *out)
{
	char *end = NULL;
	errno = 0;
	long value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
		return -1;
	*out = value;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *options)
{
	options->brokers = 1;
	options->n_topics = 0;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *value = NULL;
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strncmp(arg, "--brokers=", 10) == 0) {
			value = arg + 10;
		} else if (strncmp(arg, "--topic=", 8) == 0) {
			value = arg + 8;
		} else if ((strcmp(arg, "--brokers") == 0 || strcmp(arg, "--topic") == 0) && i + 1 < argc) {
			value = argv[++i];
			arg = argv[i - 1];
		} else {
			fprintf(stderr, "fx_mock: unknown argument: %s\n", arg);
			return -1;
		}
		if (strncmp(arg, "--brokers", 9) == 0) {
			long brokers;
			if (parse_int(value, 1, MAX_BROKERS, &brokers) != 0) {
				fprintf(stderr, "fx_mock: --brokers: expected 1..%d, got %s\n", MAX_BROKERS,
					value);
				return -1;
			}
			options->brokers = (int)brokers;
			continue;
		}
		/* --topic name:partitions; the name is the text up to the last ':'. */
		const char *colon = strrchr(value, ':');
		long partitions;
		if (colon == NULL || colon == value || options->n_topics == MAX_TOPICS ||
		    parse_int(colon + 1, 1, MAX_PARTITIONS, &partitions) != 0) {
			fprintf(stderr, "fx_mock: --topic: expected name:partitions (1..%d), got %s\n",
				MAX_PARTITIONS, value);
			return -1;
		}
		char *name = strndup(value, (size_t)(colon - value));
		if (name == NULL)
			return -1;
		options->topics[options->n_topics].name = name;
		options->topics[options->n_topics].partitions = (int)partitions;
		options->n_topics++;
	}
	return 0;
}

static rd_kafka_conf_t *conf_new(const char *const *settings, size_t n_settings)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (conf == NULL)
		return NULL;
	for (size_t i = 0; i + 1 < n_settings; i += 2) {
		if (rd_kafka_conf_set(conf, settings[i], settings[i + 1], errstr, sizeof(errstr)) !=
		    RD_KAFKA_CONF_OK) {
			fprintf(stderr, "fx_mock: %s=%s: %s\n", settings[i], settings[i + 1], errstr);
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	}
	return conf;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque)
{
	(void)rk;
	(void)opaque;
	struct delivery *delivery = message->_private;
	if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (delivery->failed == 0)
			delivery->first_error = message->err;
		delivery->failed++;
		return;
	}
	if (delivery->first_offset < 0 || message->offset < delivery->first_offset)
		delivery->first_offset = message->offset;
	if (message->offset > delivery->last_offset)
		delivery->last_offset = message->offset;
	delivery->delivered++;
}

static int mock_start(struct mock *mock, const struct options *options)
{
	char errstr[512];
	/* The host handle only carries the cluster; it never connects anywhere. */
	static const char *const host_settings[] = {"log_level", "3"};
	rd_kafka_conf_t *conf = conf_new(host_settings, 2);
	if (conf == NULL)
		return -1;
	mock->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (mock->host == NULL) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, "fx_mock: rd_kafka_new: %s\n", errstr);
		return -1;
	}
	mock->brokers = options->brokers;
	mock->cluster = rd_kafka_mock_cluster_new(mock->host, options->brokers);
	if (mock->cluster == NULL) {
		fprintf(stderr, "fx_mock: rd_kafka_mock_cluster_new failed\n");
		return -1;
	}
	snprintf(mock->bootstraps, sizeof(mock->bootstraps), "%s",
		 rd_kafka_mock_cluster_bootstraps(mock->cluster));
	for (size_t i = 0; i < options->n_topics; i++) {
		rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mock->cluster, options->topics[i].name,
								     options->topics[i].partitions, 1);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			fprintf(stderr, "fx_mock: topic %s: %s\n", options->topics[i].name,
				rd_kafka_err2str(err));
			return -1;
		}
	}

	/* acks=all with one request in flight keeps every partition's messages in the order of the files,
	 * at consecutive offsets, so the tests can tell which record sits at which offset. */
	/* clang-format off */
	const char *const producer_settings[] = {
		"bootstrap.servers", mock->bootstraps,
		"acks", "all",
		"max.in.flight.requests.per.connection", "1",
		"linger.ms", "5",
		"message.max.bytes", "100000000",
		"message.timeout.ms", "20000",
		"reconnect.backoff.max.ms", "500",
		"log_level", "3",
	};
	/* clang-format on */
	conf = conf_new(producer_settings, sizeof(producer_settings) / sizeof(producer_settings[0]));
	if (conf == NULL)
		return -1;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	mock->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (mock->producer == NULL) {
		rd_kafka_conf_destroy(conf);
		fprintf(stderr, "fx_mock: producer: %s\n", errstr);
		return -1;
	}
	return 0;
}

static void mock_stop(struct mock *mock)
{
	if (mock->producer != NULL) {
		rd_kafka_flush(mock->producer, 2000);
		rd_kafka_destroy(mock->producer);
	}
	if (mock->cluster != NULL)
		rd_kafka_mock_cluster_destroy(mock->cluster);
	if (mock->host != NULL)
		rd_kafka_destroy(mock->host);
}

/* Reads a whole file into a fresh NUL-terminated buffer. Returns NULL (with *reason set) on failure. */
static char *read_file(const char *path, size_t *len, const char **reason)
{
	FILE *file = fopen(path, "rb");
	char *content = NULL;
	size_t size = 0;
	size_t cap = 0;
	if (file == NULL) {
		*reason = strerror(errno);
		return NULL;
	}
	for (;;) {
		if (size == cap) {
			if (cap >= MAX_MESSAGE_BYTES * 4) {
				*reason = "file too large";
				goto fail;
			}
			size_t new_cap = cap == 0 ? 65536 : cap * 2;
			char *grown = realloc(content, new_cap + 1);
			if (grown == NULL) {
				*reason = "out of memory";
				goto fail;
			}
			content = grown;
			cap = new_cap;
		}
		size_t n = fread(content + size, 1, cap - size, file);
		size += n;
		if (n == 0)
			break;
	}
	if (ferror(file)) {
		*reason = "read error";
		goto fail;
	}
	fclose(file);
	content[size] = '\0';
	*len = size;
	return content;
fail:
	fclose(file);
	free(content);
	return NULL;
}

static void cmd_produce(struct mock *mock, char **args, size_t n_args)
{
	long partition;
	const char *reason = NULL;
	size_t len = 0;
	if (n_args != 3 || parse_int(args[1], 0, MAX_PARTITIONS - 1, &partition) != 0) {
		printf("ERR usage: produce <topic> <partition> <file>\n");
		return;
	}
	char *content = read_file(args[2], &len, &reason);
	if (content == NULL) {
		printf("ERR %s: %s\n", args[2], reason);
		return;
	}
	struct delivery delivery = {.first_offset = -1, .last_offset = -1};
	size_t queued = 0;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	/* Messages are the runs between separators; a trailing separator does not start an empty message. */
	size_t start = 0;
	while (start < len) {
		const char *separator = memchr(content + start, MESSAGE_SEPARATOR, len - start);
		size_t end = separator != NULL ? (size_t)(separator - content) : len;
		for (;;) {
			err = rd_kafka_producev(mock->producer, RD_KAFKA_V_TOPIC(args[0]),
						RD_KAFKA_V_PARTITION((int32_t)partition),
						RD_KAFKA_V_VALUE(content + start, end - start),
						RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
						RD_KAFKA_V_OPAQUE(&delivery), RD_KAFKA_V_END);
			if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				break;
			rd_kafka_poll(mock->producer, 100);
		}
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		queued++;
		start = end + 1;
	}
	free(content);
	rd_kafka_resp_err_t flush_err = rd_kafka_flush(mock->producer, PRODUCE_TIMEOUT_MS);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		printf("ERR produce after %zu messages: %s\n", queued, rd_kafka_err2str(err));
	} else if (flush_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		printf("ERR flush: %s (%zu of %zu delivered)\n", rd_kafka_err2str(flush_err),
		       delivery.delivered, queued);
	} else if (delivery.failed > 0) {
		printf("ERR %zu of %zu messages failed: %s\n", delivery.failed, queued,
		       rd_kafka_err2str(delivery.first_error));
	} else {
		printf("OK %zu %" PRId64 " %" PRId64 "\n", delivery.delivered, delivery.first_offset,
		       delivery.last_offset);
	}
}

static void cmd_brokers(struct mock *mock, const char *what, long rtt_ms)
{
	for (int32_t id = 1; id <= mock->brokers; id++) {
		rd_kafka_resp_err_t err;
		if (strcmp(what, "down") == 0)
			err = rd_kafka_mock_broker_set_down(mock->cluster, id);
		else if (strcmp(what, "up") == 0)
			err = rd_kafka_mock_broker_set_up(mock->cluster, id);
		else
			err = rd_kafka_mock_broker_set_rtt(mock->cluster, id, (int)rtt_ms);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			printf("ERR broker %" PRId32 ": %s\n", id, rd_kafka_err2str(err));
			return;
		}
	}
	printf("OK\n");
}

/* A partition list 0..n-1 of topic, or NULL on a bad count (answered). */
static rd_kafka_topic_partition_list_t *partition_list(const char *topic, const char *count_text)
{
	long count;
	if (parse_int(count_text, 1, MAX_PARTITIONS, &count) != 0) {
		printf("ERR bad partition count: %s\n", count_text);
		return NULL;
	}
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)count);
	for (int32_t p = 0; p < (int32_t)count; p++)
		rd_kafka_topic_partition_list_add(list, topic, p);
	return list;
}

static void cmd_committed(struct mock *mock, char **args, size_t n_args)
{
	char errstr[512];
	rd_kafka_t *consumer = NULL;
	rd_kafka_topic_partition_list_t *list = NULL;
	if (n_args != 3) {
		printf("ERR usage: committed <group> <topic> <partitions>\n");
		return;
	}
	list = partition_list(args[1], args[2]);
	if (list == NULL)
		return;
	/* A consumer handle that never subscribes: it only asks the group coordinator (OffsetFetch). */
	/* clang-format off */
	const char *const settings[] = {
		"bootstrap.servers", mock->bootstraps,
		"group.id", args[0],
		"enable.auto.commit", "false",
		"log_level", "3",
	};
	/* clang-format on */
	rd_kafka_conf_t *conf = conf_new(settings, sizeof(settings) / sizeof(settings[0]));
	if (conf == NULL) {
		printf("ERR consumer configuration\n");
		goto done;
	}
	consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (consumer == NULL) {
		rd_kafka_conf_destroy(conf);
		printf("ERR consumer: %s\n", errstr);
		goto done;
	}
	rd_kafka_resp_err_t err = rd_kafka_committed(consumer, list, QUERY_TIMEOUT_MS);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		printf("ERR committed: %s\n", rd_kafka_err2str(err));
		goto done;
	}
	for (int i = 0; i < list->cnt; i++) {
		if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			printf("ERR committed p%" PRId32 ": %s\n", list->elems[i].partition,
			       rd_kafka_err2str(list->elems[i].err));
			goto done;
		}
	}
	printf("OK");
	for (int i = 0; i < list->cnt; i++)
		printf(" p%" PRId32 "=%" PRId64, list->elems[i].partition, list->elems[i].offset);
	printf("\n");
done:
	if (consumer != NULL)
		rd_kafka_destroy(consumer);
	rd_kafka_topic_partition_list_destroy(list);
}

static void cmd_watermarks(struct mock *mock, char **args, size_t n_args)
{
	if (n_args != 2) {
		printf("ERR usage: watermarks <topic> <partitions>\n");
		return;
	}
	rd_kafka_topic_partition_list_t *list = partition_list(args[0], args[1]);
	if (list == NULL)
		return;
	char answer[MAX_PARTITIONS * 24 + 8];
	size_t used = (size_t)snprintf(answer, sizeof(answer), "OK");
	for (int i = 0; i < list->cnt; i++) {
		int64_t low = -1;
		int64_t high = -1;
		rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
		    mock->producer, args[0], list->elems[i].partition, &low, &high, QUERY_TIMEOUT_MS);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			printf("ERR watermarks p%" PRId32 ": %s\n", list->elems[i].partition,
			       rd_kafka_err2str(err));
			rd_kafka_topic_partition_list_destroy(list);
			return;
		}
		used += (size_t)snprintf(answer + used, sizeof(answer) - used, " p%" PRId32 "=%" PRId64,
					 list->elems[i].partition, high);
	}
	printf("%s\n", answer);
	rd_kafka_topic_partition_list_destroy(list);
}

/* Splits line on spaces and tabs into at most max_args words, in place. Returns the count. */
static size_t split_words(char *line, char **words, size_t max_words)
{
	size_t n = 0;
	char *cursor = line;
	while (*cursor != '\0' && n < max_words) {
		while (*cursor == ' ' || *cursor == '\t')
			cursor++;
		if (*cursor == '\0')
			break;
		words[n++] = cursor;
		while (*cursor != '\0' && *cursor != ' ' && *cursor != '\t')
			cursor++;
		if (*cursor != '\0')
			*cursor++ = '\0';
	}
	return n;
}

/* Runs one command line. Returns false when the command was "quit". */
static bool run_command(struct mock *mock, char *line)
{
	char *words[8];
	size_t n = split_words(line, words, sizeof(words) / sizeof(words[0]));
	bool keep_going = true;
	long rtt_ms;
	if (n == 0) {
		printf("ERR empty command\n");
	} else if (strcmp(words[0], "produce") == 0) {
		cmd_produce(mock, words + 1, n - 1);
	} else if ((strcmp(words[0], "down") == 0 || strcmp(words[0], "up") == 0) && n == 1) {
		cmd_brokers(mock, words[0], 0);
	} else if (strcmp(words[0], "rtt") == 0 && n == 2 && parse_int(words[1], 0, INT_MAX, &rtt_ms) == 0) {
		cmd_brokers(mock, "rtt", rtt_ms);
	} else if (strcmp(words[0], "committed") == 0) {
		cmd_committed(mock, words + 1, n - 1);
	} else if (strcmp(words[0], "watermarks") == 0) {
		cmd_watermarks(mock, words + 1, n - 1);
	} else if (strcmp(words[0], "quit") == 0 && n == 1) {
		printf("OK\n");
		keep_going = false;
	} else {
		printf("ERR unknown command: %s\n", words[0]);
	}
	fflush(stdout);
	return keep_going;
}

/* Reads commands from stdin until "quit", EOF or a signal. Lines longer than MAX_LINE are refused. */
static void command_loop(struct mock *mock)
{
	char buffer[MAX_LINE];
	size_t used = 0;
	bool discarding = false; /* inside an over-long line */
	while (!stop_requested) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		int ready = poll(&pfd, 1, 200);
		if (ready < 0 && errno != EINTR)
			return;
		if (ready <= 0)
			continue;
		ssize_t n = read(STDIN_FILENO, buffer + used, sizeof(buffer) - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* EOF: the test is gone */
		used += (size_t)n;
		char *newline;
		while ((newline = memchr(buffer, '\n', used)) != NULL) {
			*newline = '\0';
			size_t line_len = (size_t)(newline - buffer);
			if (line_len > 0 && buffer[line_len - 1] == '\r')
				buffer[line_len - 1] = '\0';
			bool keep_going = true;
			if (discarding) {
				printf("ERR line too long\n");
				fflush(stdout);
				discarding = false;
			} else {
				keep_going = run_command(mock, buffer);
			}
			size_t consumed = line_len + 1;
			memmove(buffer, buffer + consumed, used - consumed);
			used -= consumed;
			if (!keep_going)
				return;
		}
		if (used == sizeof(buffer)) {
			discarding = true;
			used = 0;
		}
	}
}

int main(int argc, char **argv)
{
	struct options options;
	struct mock mock = {0};
	int status = 1;
	if (parse_options(argc, argv, &options) != 0) {
		usage(stderr);
		return 2;
	}

	struct sigaction action = {0};
	action.sa_handler = on_signal;
	sigemptyset(&action.sa_mask);
	sigaction(SIGTERM, &action, NULL);
	sigaction(SIGINT, &action, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (mock_start(&mock, &options) != 0)
		goto done;
	/* Bootstrap addresses are "127.0.0.1:port,..."; the tests read the first line of stdout. */
	printf("BOOTSTRAP %s\n", mock.bootstraps);
	fflush(stdout);
	command_loop(&mock);
	status = 0;
done:
	mock_stop(&mock);
	for (size_t i = 0; i < options.n_topics; i++)
		free(options.topics[i].name);
	return status;
}
