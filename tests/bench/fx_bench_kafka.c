/* fx_bench_kafka: the Kafka side of the ingest benchmark (tests/bench/bench_ingest.py drives it).
 *
 *   fx_bench_kafka mock --partitions P --messages M --records R --hosts H --asns A --ifaces I
 *                       [--local-asn N] [--compression none|lz4|snappy|zstd|gzip]
 *       Starts librdkafka's mock cluster with topic "flows" of P partitions and produces M messages of R
 *       newline-separated records each (bench_gen.h), message k to partition k % P. Then checks that the
 *       mock kept every message (low watermark 0 and high watermark = messages produced, on every
 *       partition: the mock silently drops the oldest batches past ~5 MiB per partition), prints
 *       "BOOTSTRAP <addr>" and "READY messages=... records=... series=... bytes=... produce_s=...", and
 *       keeps serving until stdin ends or reads "quit". Exits 1 when anything was dropped.
 *
 *   fx_bench_kafka ceiling --brokers B --group G --messages M [--consumers C] [--batch N]
 *                          [--prefetch-bytes P] [--wait-ms W] [--kafka-opt key=value]...
 *       The count-only ceiling, built as the daemon's consumer is (src/consumer.c), so that the two are
 *       compared on the same design: one handle (one group member) in group G reads topic "flows" from the
 *       earliest offset; on assignment each partition's queue is forwarded to one of C counting threads,
 *       which take what their queue holds (rd_kafka_consume_batch_queue with timeout 0, up to N) and only
 *       count messages; the prefetch bound P is derived into librdkafka's settings as the daemon's
 *       --kafka-prefetch-bytes is (fx_consumer_prefetch; 0: librdkafka's defaults), then the given
 *       --kafka-opts; the fetcher is woken as the daemon wakes it (a queue that was at its bound before a
 *       batch and is below it after). --wait-ms W > 0: wait up to W ms for a full batch instead (the
 *       daemon's behaviour before issue 15). Times from the first assignment to the M-th message and prints
 *       "CEILING messages=... seconds=... per_s=... cpu_us=... hwm_kb=...".
 *
 * Thread: mock: the main thread produces, the mock cluster runs its own thread. ceiling: the main thread
 * serves the handle (rebalances, wake-ups), one thread per counting consumer; the totals are atomics. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "bench_gen.h"
#include "fx/consumer.h"

#define TOPIC "flows"
#define MAX_OPTS 64
#define MAX_CONSUMERS 64
#define RECORD_MAX 1024

static double now_s(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long hwm_kb(void)
{
	FILE *status = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (status && fgets(line, sizeof(line), status))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	if (status)
		fclose(status);
	return kb;
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char errstr[512];
	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "fx_bench_kafka: %s=%s: %s\n", key, value, errstr);
		return -1;
	}
	return 0;
}

static int conf_set_opt(rd_kafka_conf_t *conf, const char *opt)
{
	char key[256];
	const char *eq = strchr(opt, '=');
	if (!eq || (size_t)(eq - opt) >= sizeof(key)) {
		fprintf(stderr, "fx_bench_kafka: expected key=value: %s\n", opt);
		return -1;
	}
	memcpy(key, opt, (size_t)(eq - opt));
	key[eq - opt] = '\0';
	return conf_set(conf, key, eq + 1);
}

static unsigned long long arg_number(const char *name, const char *value)
{
	char *end = NULL;
	errno = 0;
	unsigned long long n = strtoull(value, &end, 10);
	if (errno || end == value || *end) {
		fprintf(stderr, "fx_bench_kafka: %s: not a number: %s\n", name, value);
		exit(2);
	}
	return n;
}

/* ------------------------------------------------------------------------------------------------- */

static atomic_size_t delivery_failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *message, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (message->err && atomic_fetch_add(&delivery_failed, 1) == 0)
		fprintf(stderr, "fx_bench_kafka: delivery failed: %s\n", rd_kafka_err2str(message->err));
}

static int run_mock(int argc, char **argv)
{
	long partitions = 64, records = 1;
	unsigned long long messages = 100000;
	uint32_t hosts = 5, asns = 5, ifaces = 2, local_asn = 64496;
	const char *compression = "none";
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *name = argv[i], *value = argv[i + 1];
		if (!strcmp(name, "--partitions"))
			partitions = (long)arg_number(name, value);
		else if (!strcmp(name, "--messages"))
			messages = arg_number(name, value);
		else if (!strcmp(name, "--records"))
			records = (long)arg_number(name, value);
		else if (!strcmp(name, "--hosts"))
			hosts = (uint32_t)arg_number(name, value);
		else if (!strcmp(name, "--asns"))
			asns = (uint32_t)arg_number(name, value);
		else if (!strcmp(name, "--ifaces"))
			ifaces = (uint32_t)arg_number(name, value);
		else if (!strcmp(name, "--local-asn"))
			local_asn = (uint32_t)arg_number(name, value);
		else if (!strcmp(name, "--compression"))
			compression = value;
		else {
			fprintf(stderr, "fx_bench_kafka mock: unknown option %s\n", name);
			return 2;
		}
	}
	if (partitions < 1 || partitions > 1024 || records < 1 || !hosts || !asns || !ifaces) {
		fprintf(stderr, "fx_bench_kafka mock: bad parameters\n");
		return 2;
	}
	struct bench_gen gen;
	bench_gen_init(&gen, hosts, asns, ifaces, local_asn);

	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	conf_set(conf, "log_level", "3");
	rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!host) {
		fprintf(stderr, "fx_bench_kafka: %s\n", errstr);
		return 1;
	}
	rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(host, 1);
	if (!cluster || rd_kafka_mock_topic_create(cluster, TOPIC, (int)partitions, 1)) {
		fprintf(stderr, "fx_bench_kafka: cannot start the mock cluster\n");
		return 1;
	}
	const char *bootstraps = rd_kafka_mock_cluster_bootstraps(cluster);

	/* The producer batches as a busy pmacct would (librdkafka's defaults, longer linger). */
	conf = rd_kafka_conf_new();
	if (conf_set(conf, "bootstrap.servers", bootstraps) || conf_set(conf, "linger.ms", "50") ||
	    conf_set(conf, "queue.buffering.max.messages", "1000000") ||
	    conf_set(conf, "queue.buffering.max.kbytes", "2097151") ||
	    conf_set(conf, "message.max.bytes", "10000000") ||
	    conf_set(conf, "compression.codec", compression) || conf_set(conf, "log_level", "3"))
		return 2;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!producer) {
		fprintf(stderr, "fx_bench_kafka: producer: %s\n", errstr);
		return 1;
	}

	double started = now_s(CLOCK_MONOTONIC);
	size_t cap = (size_t)records * RECORD_MAX;
	char *message = malloc(cap);
	unsigned long long total_bytes = 0;
	for (unsigned long long k = 0; k < messages; k++) {
		size_t len = 0;
		for (long r = 0; r < records; r++) {
			if (r)
				message[len++] = '\n';
			len += bench_gen_record(&gen, k * (unsigned long long)records + (unsigned long long)r,
						message + len, cap - len);
		}
		total_bytes += len;
		for (;;) {
			rd_kafka_resp_err_t err = rd_kafka_producev(
			    producer, RD_KAFKA_V_TOPIC(TOPIC),
			    RD_KAFKA_V_PARTITION((int32_t)(k % partitions)), RD_KAFKA_V_VALUE(message, len),
			    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
			if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
				break;
			if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
				fprintf(stderr, "fx_bench_kafka: produce: %s\n", rd_kafka_err2str(err));
				return 1;
			}
			rd_kafka_poll(producer, 10);
		}
	}
	free(message);
	if (rd_kafka_flush(producer, 120000) || atomic_load(&delivery_failed)) {
		fprintf(stderr, "fx_bench_kafka: %zu messages not delivered\n",
			atomic_load(&delivery_failed));
		return 1;
	}
	double produce_s = now_s(CLOCK_MONOTONIC) - started;

	/* Nothing dropped: every partition still starts at 0 and holds all it was given. */
	unsigned long long held = 0;
	for (long p = 0; p < partitions; p++) {
		int64_t low = -1, high = -1;
		rd_kafka_resp_err_t err =
		    rd_kafka_query_watermark_offsets(producer, TOPIC, (int32_t)p, &low, &high, 10000);
		unsigned long long expected =
		    messages / partitions + ((unsigned long long)p < messages % partitions);
		if (err || low != 0 || (unsigned long long)high != expected) {
			fprintf(stderr,
				"fx_bench_kafka: partition %ld holds [%" PRId64 ", %" PRId64
				") of %llu messages (%s): "
				"the mock dropped data; use more partitions or compression\n",
				p, low, high, expected, rd_kafka_err2str(err));
			return 1;
		}
		held += (unsigned long long)high;
	}
	rd_kafka_destroy(producer);

	printf("BOOTSTRAP %s\n", bootstraps);
	printf("READY messages=%llu records=%llu series=%llu bytes=%llu produce_s=%.2f\n", held,
	       held * (unsigned long long)records,
	       (unsigned long long)(gen.series < held * records ? gen.series : held * records), total_bytes,
	       produce_s);
	fflush(stdout);

	char line[256];
	while (fgets(line, sizeof(line), stdin) && strncmp(line, "quit", 4) != 0)
		;
	rd_kafka_mock_cluster_destroy(cluster);
	rd_kafka_destroy(host);
	return 0;
}

/* ------------------------------------------------------------------------------------------------- */

struct ceiling {
	const char *brokers, *group;
	const char *opts[MAX_OPTS];
	size_t n_opts;
	unsigned long long target, prefetch_bytes;
	size_t batch, consumers;
	unsigned long long
	    wait_ms; /* --wait-ms: 0, take what is queued; N, wait up to N ms for a full batch */
	rd_kafka_t *rk;
	rd_kafka_queue_t *main_queue;
	rd_kafka_queue_t *queues[MAX_CONSUMERS]; /* one per counting thread */
	rd_kafka_queue_t *forwarded[4096];	 /* the assigned partitions' queues */
	size_t n_forwarded;
	uint64_t queue_max_messages, queue_max_bytes;
	atomic_ullong counted;
	atomic_bool done, wake_wanted;
	pthread_mutex_t lock; /* guards the times */
	double first_assign_s, first_assign_cpu_s, end_s, end_cpu_s;
};

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *partitions,
			 void *opaque)
{
	struct ceiling *ceiling = opaque;
	for (size_t i = 0; i < ceiling->n_forwarded; i++) {
		rd_kafka_queue_forward(ceiling->forwarded[i], NULL);
		rd_kafka_queue_destroy(ceiling->forwarded[i]);
	}
	ceiling->n_forwarded = 0;
	if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		rd_kafka_assign(rk, NULL);
		return;
	}
	for (int i = 0; i < partitions->cnt && ceiling->n_forwarded < 4096; i++) {
		rd_kafka_queue_t *queue = rd_kafka_queue_get_partition(rk, partitions->elems[i].topic,
								       partitions->elems[i].partition);
		rd_kafka_queue_forward(queue, ceiling->queues[ceiling->n_forwarded % ceiling->consumers]);
		ceiling->forwarded[ceiling->n_forwarded++] = queue;
	}
	pthread_mutex_lock(&ceiling->lock);
	if (ceiling->first_assign_s == 0) {
		ceiling->first_assign_s = now_s(CLOCK_MONOTONIC);
		ceiling->first_assign_cpu_s = now_s(CLOCK_PROCESS_CPUTIME_ID);
	}
	pthread_mutex_unlock(&ceiling->lock);
	rd_kafka_assign(rk, partitions);
}

/* What the daemon's take_batch does: what is queued, else wait for one message and take what came. */
static ssize_t take_batch(struct ceiling *ceiling, rd_kafka_queue_t *queue, rd_kafka_message_t **batch)
{
	if (ceiling->wait_ms)
		return rd_kafka_consume_batch_queue(queue, (int)ceiling->wait_ms, batch, ceiling->batch);
	ssize_t n = rd_kafka_consume_batch_queue(queue, 0, batch, ceiling->batch);
	if (n != 0)
		return n;
	batch[0] = rd_kafka_consume_queue(queue, 100);
	if (!batch[0])
		return 0;
	n = rd_kafka_consume_batch_queue(queue, 0, batch + 1, ceiling->batch - 1);
	return n < 0 ? 1 : n + 1;
}

struct counter {
	struct ceiling *ceiling;
	rd_kafka_queue_t *queue;
	uint64_t message_bytes_avg; /* * 16 */
	bool held;
};

/* The daemon's watch_queue: a wake-up when the queue was at its bound before the batch and is below after. */
static void watch_queue(struct counter *counter, rd_kafka_message_t **batch, size_t n)
{
	struct ceiling *ceiling = counter->ceiling;
	uint64_t batch_bytes = 0;
	for (size_t i = 0; i < n; i++)
		batch_bytes += batch[i]->len;
	if (n)
		counter->message_bytes_avg +=
		    ((int64_t)(batch_bytes * 16 / n) - (int64_t)counter->message_bytes_avg) / 8;
	uint64_t queued = rd_kafka_queue_length(counter->queue);
	uint64_t queued_bytes = queued * counter->message_bytes_avg / 16;
	uint64_t before = queued + n, before_bytes = queued_bytes + batch_bytes;
	if (before + ceiling->batch / 8 >= ceiling->queue_max_messages ||
	    before_bytes + before_bytes / 8 >= ceiling->queue_max_bytes)
		counter->held = true;
	if (!counter->held || queued >= ceiling->queue_max_messages ||
	    queued_bytes >= ceiling->queue_max_bytes)
		return;
	counter->held = false;
	atomic_store(&ceiling->wake_wanted, true);
	rd_kafka_queue_yield(ceiling->main_queue);
}

static void *consume(void *arg)
{
	struct counter *counter = arg;
	struct ceiling *ceiling = counter->ceiling;
	rd_kafka_message_t **batch = malloc(ceiling->batch * sizeof(*batch));
	while (!atomic_load(&ceiling->done)) {
		ssize_t n = take_batch(ceiling, counter->queue, batch);
		if (n > 0)
			watch_queue(counter, batch, (size_t)n);
		unsigned long long good = 0;
		for (ssize_t i = 0; i < n; i++) {
			good += batch[i]->err == RD_KAFKA_RESP_ERR_NO_ERROR;
			rd_kafka_message_destroy(batch[i]);
		}
		if (good && atomic_fetch_add(&ceiling->counted, good) + good >= ceiling->target &&
		    !atomic_exchange(&ceiling->done, true)) {
			pthread_mutex_lock(&ceiling->lock);
			ceiling->end_s = now_s(CLOCK_MONOTONIC);
			ceiling->end_cpu_s = now_s(CLOCK_PROCESS_CPUTIME_ID);
			pthread_mutex_unlock(&ceiling->lock);
		}
	}
	free(batch);
	return NULL;
}

static uint64_t conf_number(rd_kafka_t *rk, const char *key)
{
	char value[64];
	size_t size = sizeof(value);
	if (rd_kafka_conf_get(rd_kafka_conf(rk), key, value, &size) != RD_KAFKA_CONF_OK)
		return 0;
	return strtoull(value, NULL, 10);
}

static rd_kafka_t *ceiling_handle(struct ceiling *ceiling)
{
	char errstr[512], text[3][32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (conf_set(conf, "bootstrap.servers", ceiling->brokers) ||
	    conf_set(conf, "group.id", ceiling->group) || conf_set(conf, "auto.offset.reset", "earliest") ||
	    conf_set(conf, "enable.auto.commit", "false") || conf_set(conf, "log_level", "3") ||
	    conf_set(conf, "fetch.wait.max.ms", FX_KAFKA_FETCH_WAIT_MS))
		exit(2);
	struct fx_prefetch prefetch = fx_consumer_prefetch(ceiling->prefetch_bytes, ceiling->consumers);
	snprintf(text[0], sizeof(text[0]), "%llu", (unsigned long long)prefetch.queue_kbytes);
	snprintf(text[1], sizeof(text[1]), "%llu", (unsigned long long)prefetch.fetch_bytes);
	snprintf(text[2], sizeof(text[2]), "%llu", (unsigned long long)prefetch.partition_fetch_bytes);
	if (ceiling->prefetch_bytes && (conf_set(conf, "queued.max.messages.kbytes", text[0]) ||
					conf_set(conf, "fetch.max.bytes", text[1]) ||
					conf_set(conf, "max.partition.fetch.bytes", text[2])))
		exit(2);
	for (size_t i = 0; i < ceiling->n_opts; i++)
		if (conf_set_opt(conf, ceiling->opts[i]))
			exit(2);
	rd_kafka_conf_set_opaque(conf, ceiling);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "fx_bench_kafka: consumer: %s\n", errstr);
		exit(1);
	}
	return rk;
}

/* The main thread: serves the handle's queue (rebalances) and the wake-ups until the counting is done. */
static void serve_ceiling(struct ceiling *ceiling)
{
	while (!atomic_load(&ceiling->done)) {
		rd_kafka_message_t *message = rd_kafka_consumer_poll(ceiling->rk, 100);
		if (message)
			rd_kafka_message_destroy(message);
		if (!atomic_exchange(&ceiling->wake_wanted, false) || !ceiling->n_forwarded)
			continue;
		rd_kafka_topic_partition_list_t *assignment = NULL;
		if (rd_kafka_assignment(ceiling->rk, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR) {
			for (int i = 0; i < assignment->cnt; i++)
				assignment->elems[i].offset = RD_KAFKA_OFFSET_END;
			rd_kafka_offsets_for_times(ceiling->rk, assignment, 1);
			rd_kafka_topic_partition_list_destroy(assignment);
		}
	}
}

static int run_ceiling(int argc, char **argv)
{
	static struct ceiling ceiling = {.batch = 1024, .consumers = 1};
	pthread_mutex_init(&ceiling.lock, NULL);
	for (int i = 2; i + 1 < argc; i += 2) {
		const char *name = argv[i], *value = argv[i + 1];
		if (!strcmp(name, "--brokers"))
			ceiling.brokers = value;
		else if (!strcmp(name, "--group"))
			ceiling.group = value;
		else if (!strcmp(name, "--messages"))
			ceiling.target = arg_number(name, value);
		else if (!strcmp(name, "--consumers"))
			ceiling.consumers = arg_number(name, value);
		else if (!strcmp(name, "--batch"))
			ceiling.batch = arg_number(name, value);
		else if (!strcmp(name, "--wait-ms"))
			ceiling.wait_ms = arg_number(name, value);
		else if (!strcmp(name, "--prefetch-bytes"))
			ceiling.prefetch_bytes = arg_number(name, value);
		else if (!strcmp(name, "--kafka-opt") && ceiling.n_opts < MAX_OPTS)
			ceiling.opts[ceiling.n_opts++] = value;
		else {
			fprintf(stderr, "fx_bench_kafka ceiling: unknown option %s\n", name);
			return 2;
		}
	}
	if (!ceiling.brokers || !ceiling.group || !ceiling.target || !ceiling.consumers ||
	    ceiling.consumers > MAX_CONSUMERS || ceiling.batch < 2) {
		fprintf(stderr, "fx_bench_kafka ceiling: --brokers, --group and --messages are required\n");
		return 2;
	}
	ceiling.rk = ceiling_handle(&ceiling);
	rd_kafka_poll_set_consumer(ceiling.rk);
	ceiling.main_queue = rd_kafka_queue_get_consumer(ceiling.rk);
	ceiling.queue_max_messages = conf_number(ceiling.rk, "queued.min.messages");
	ceiling.queue_max_bytes = conf_number(ceiling.rk, "queued.max.messages.kbytes") * 1024;
	static struct counter counters[MAX_CONSUMERS];
	pthread_t threads[MAX_CONSUMERS];
	for (size_t i = 0; i < ceiling.consumers; i++) {
		ceiling.queues[i] = rd_kafka_queue_new(ceiling.rk);
		counters[i] = (struct counter){&ceiling, ceiling.queues[i], 0, false};
	}
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, TOPIC, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(ceiling.rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	for (size_t i = 0; i < ceiling.consumers; i++)
		pthread_create(&threads[i], NULL, consume, &counters[i]);
	serve_ceiling(&ceiling);
	for (size_t i = 0; i < ceiling.consumers; i++)
		pthread_join(threads[i], NULL);
	double seconds = ceiling.end_s - ceiling.first_assign_s;
	unsigned long long n = atomic_load(&ceiling.counted);
	printf("CEILING messages=%llu seconds=%.4f per_s=%.0f cpu_us=%.3f hwm_kb=%ld\n", n, seconds,
	       n / seconds, (ceiling.end_cpu_s - ceiling.first_assign_cpu_s) * 1e6 / n, hwm_kb());
	fflush(stdout);
	_exit(0); /* no close: the group's other members are fresh groups of their own */
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && !strcmp(argv[1], "mock"))
		return run_mock(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "ceiling"))
		return run_ceiling(argc, argv);
	fprintf(
	    stderr,
	    "usage: fx_bench_kafka mock|ceiling [options] (see the top of tests/bench/fx_bench_kafka.c)\n");
	return 2;
}
