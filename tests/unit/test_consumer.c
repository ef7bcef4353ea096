/* The consumer (step 1) against librdkafka's mock cluster on loopback: offsets are committed only for
 * counted records, a rebalance (a second member joins, then leaves) keeps the counts exact, a restart in
 * the same group neither loses nor counts twice, and the partitions mode reads from the newest offset
 * without committing. A process is one group member whatever its workers, two processes of two workers
 * share eight partitions exactly, and a worker held on a batch never holds up another's partitions.
 *
 * Every message is one pmacct record with a byte count no other message has, labelled with its partition
 * (hostname "p<partition>"), so the tests compare per partition both the number of records and their sum
 * of bytes with what was produced: a record lost or counted twice changes both.
 *
 * The mock's consumer groups are slow to form (DESIGN.md): the first join waits about 3 s, a rejoin after
 * every member left waits session.timeout.ms minus 1 s, hence session.timeout.ms=6000 everywhere. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "c11_threads_tsan.h"
#include "check.h"
#include "fx/clock.h"
#include "fx/consumer.h"
#include "fx/intern.h"
#include "fx/log.h"
#include "fx/store.h"

#define PARTITIONS 4	 /* of most tests' topics */
#define MAX_PARTITIONS 8 /* the most of any topic here */
#define LOCAL_AS 15169
#define WAIT_MS 30000
#define FLUSH_MS 50

/* What was produced, or what was counted, per partition. */
struct totals {
	uint64_t records[MAX_PARTITIONS];
	uint64_t bytes[MAX_PARTITIONS];
};

struct cluster {
	rd_kafka_t *host;
	rd_kafka_mock_cluster_t *mock;
	rd_kafka_t *producer;
	char bootstraps[256];
	uint64_t next_bytes; /* every message gets a different byte count */
	int partitions;	     /* of the topic created last, which the test uses */
};

/* One exporter process: a consumer counting into a store of its own. */
struct exporter {
	struct fx_local_asns local;
	struct fx_intern *hostnames;
	struct fx_store *store;
	struct fx_consumer *consumer;
};

/* A partition with no commit yet is read from the beginning, so that a member taking over a partition its
 * previous owner did not commit would count it twice, which the tests would see. Commits every 200 ms, so
 * that a test can wait for the periodic commit (see test_rebalance). */
static const char *const kafka_opts[] = {"session.timeout.ms=6000", "heartbeat.interval.ms=500",
					 "auto.offset.reset=earliest", "auto.commit.interval.ms=200"};

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *const *settings, size_t n)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	for (size_t i = 0; i + 1 < n; i += 2)
		if (rd_kafka_conf_set(conf, settings[i], settings[i + 1], errstr, sizeof(errstr))) {
			fprintf(stderr, "%s: %s\n", settings[i], errstr);
			abort();
		}
	rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "rd_kafka_new: %s\n", errstr);
		abort();
	}
	return rk;
}

static void cluster_start(struct cluster *cluster)
{
	const char *const host[] = {"log_level", "3"};
	cluster->host = client(RD_KAFKA_PRODUCER, host, 2);
	cluster->mock = rd_kafka_mock_cluster_new(cluster->host, 1);
	CHECK(cluster->mock != NULL);
	snprintf(cluster->bootstraps, sizeof(cluster->bootstraps), "%s",
		 rd_kafka_mock_cluster_bootstraps(cluster->mock));
	/* Small batches, so that a fetch (one batch per partition in the mock) returns a few messages. */
	const char *const producer[] = {"bootstrap.servers",
					cluster->bootstraps,
					"acks",
					"all",
					"batch.num.messages",
					"10",
					"linger.ms",
					"1",
					"log_level",
					"3"};
	cluster->producer = client(RD_KAFKA_PRODUCER, producer, sizeof(producer) / sizeof(producer[0]));
	cluster->next_bytes = 1;
}

static void cluster_stop(struct cluster *cluster)
{
	rd_kafka_destroy(cluster->producer);
	rd_kafka_mock_cluster_destroy(cluster->mock);
	rd_kafka_destroy(cluster->host);
}

static void topic_create_n(struct cluster *cluster, const char *topic, int partitions)
{
	CHECK(rd_kafka_mock_topic_create(cluster->mock, topic, partitions, 1) == RD_KAFKA_RESP_ERR_NO_ERROR);
	cluster->partitions = partitions;
}

static void topic_create(struct cluster *cluster, const char *topic)
{
	topic_create_n(cluster, topic, PARTITIONS);
}

/* Produces n messages labelled "<label><partition>" to every partition of topic and adds them to *produced
 * (may be NULL). */
static void produce_labelled(struct cluster *cluster, const char *topic, const char *label, size_t n,
			     struct totals *produced)
{
	for (size_t i = 0; i < n; i++) {
		for (int32_t p = 0; p < cluster->partitions; p++) {
			uint64_t bytes = cluster->next_bytes++;
			char text[256];
			int len =
			    snprintf(text, sizeof(text),
				     "{\"event_type\": \"purge\", \"label\": \"%s%d\", \"as_src\": %d, "
				     "\"as_dst\": 64496, \"peer_ip_src\": \"10.0.0.1\", \"iface_in\": 1, "
				     "\"iface_out\": 2, \"packets\": 1, \"bytes\": %llu}",
				     label, (int)p, LOCAL_AS, (unsigned long long)bytes);
			rd_kafka_resp_err_t err;
			while ((err = rd_kafka_producev(cluster->producer, RD_KAFKA_V_TOPIC(topic),
							RD_KAFKA_V_PARTITION(p),
							RD_KAFKA_V_VALUE(text, (size_t)len),
							RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(cluster->producer, 10);
			CHECK(err == RD_KAFKA_RESP_ERR_NO_ERROR);
			if (produced) {
				produced->records[p]++;
				produced->bytes[p] += bytes;
			}
		}
	}
	CHECK(rd_kafka_flush(cluster->producer, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void produce(struct cluster *cluster, const char *topic, size_t n, struct totals *produced)
{
	produce_labelled(cluster, topic, "p", n, produced);
}

/* The group's committed offset of every partition (RD_KAFKA_OFFSET_INVALID when none). */
static void committed(struct cluster *cluster, const char *group, const char *topic, int64_t *offsets)
{
	const char *const settings[] = {"bootstrap.servers",  cluster->bootstraps,
					"group.id",	      group,
					"enable.auto.commit", "false",
					"log_level",	      "3"};
	rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, settings, sizeof(settings) / sizeof(settings[0]));
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(cluster->partitions);
	for (int32_t p = 0; p < cluster->partitions; p++)
		rd_kafka_topic_partition_list_add(list, topic, p);
	CHECK(rd_kafka_committed(rk, list, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
	for (int32_t p = 0; p < cluster->partitions; p++)
		offsets[p] = list->elems[p].err ? RD_KAFKA_OFFSET_INVALID : list->elems[p].offset;
	rd_kafka_topic_partition_list_destroy(list);
	rd_kafka_destroy(rk);
}

struct exporter_options {
	const char *topic;
	const char *group;
	size_t workers;
	bool partitions_mode;
	int32_t partitions[PARTITIONS];
	size_t n_partitions;
	void (*batch_hook)(void *opaque, size_t worker);
	void *batch_hook_opaque;
};

static void exporter_start(struct exporter *exporter, struct cluster *cluster,
			   const struct exporter_options *o)
{
	exporter->local = (struct fx_local_asns){.asn = {LOCAL_AS}, .n = 1};
	exporter->hostnames = fx_intern_create(100);
	struct fx_store_config store = {
	    .n_workers = o->workers, .max_series = 1000, .label_mask = FX_LABEL_HOSTNAME};
	exporter->store = fx_store_create(&store);
	struct fx_consumer_config config = {
	    .brokers = cluster->bootstraps,
	    .topics = {o->topic},
	    .n_topics = 1,
	    .group = o->group,
	    .partitions_mode = o->partitions_mode,
	    .n_partitions = o->n_partitions,
	    .n_kafka_opts = 4,
	    .kafka_opts = {kafka_opts[0], kafka_opts[1], kafka_opts[2], kafka_opts[3]},
	    .n_workers = o->workers,
	    .flush_ms = FLUSH_MS,
	    .counting = {.local = &exporter->local,
			 .label_mask = FX_LABEL_HOSTNAME,
			 .max_series = 1000,
			 .max_record_bytes = 4096,
			 .hostnames = exporter->hostnames,
			 .store = exporter->store},
	    .batch_hook = o->batch_hook,
	    .batch_hook_opaque = o->batch_hook_opaque,
	};
	memcpy(config.partitions, o->partitions, sizeof(o->partitions));
	char errstr[512] = "";
	exporter->consumer = fx_consumer_create(&config, errstr, sizeof(errstr));
	if (!exporter->consumer)
		fprintf(stderr, "fx_consumer_create: %s\n", errstr);
	CHECK(exporter->consumer != NULL);
	CHECK(fx_consumer_start(exporter->consumer) == 0);
}

/* Stops the consumer (the final hand-over and commit) but keeps the store for counting. */
static void exporter_stop(struct exporter *exporter)
{
	fx_consumer_stop(exporter->consumer, 10000);
}

static void exporter_destroy(struct exporter *exporter)
{
	fx_consumer_destroy(exporter->consumer);
	fx_store_destroy(exporter->store);
	fx_intern_destroy(exporter->hostnames);
	memset(exporter, 0, sizeof(*exporter));
}

/* Adds what the exporter's store holds to *counted, but for the probes (see test_partitions_mode). */
static void add_counted(struct exporter *exporter, struct totals *counted)
{
	struct fx_snapshot *snapshot = fx_store_snapshot(exporter->store);
	CHECK(snapshot != NULL);
	for (size_t i = 0; snapshot && i < snapshot->n_series; i++) {
		const struct fx_series *series = &snapshot->series[i];
		const char *hostname = series->key.hostname;
		if (hostname && !strncmp(hostname, "probe", 5))
			continue;
		char *end = NULL;
		long p = hostname && hostname[0] == 'p' ? strtol(hostname + 1, &end, 10) : -1;
		if (p < 0 || p >= MAX_PARTITIONS || *end) {
			CHECK(!"a series of no partition");
			continue;
		}
		counted->records[p] += series->records;
		counted->bytes[p] += series->bytes[FX_DIR_TRANSMIT];
	}
	fx_snapshot_destroy(snapshot);
}

static struct totals counted_by(struct exporter *exporters, size_t n)
{
	struct totals counted = {0};
	for (size_t i = 0; i < n; i++)
		if (exporters[i].store)
			add_counted(&exporters[i], &counted);
	return counted;
}

static uint64_t all_records(const struct totals *totals)
{
	uint64_t n = 0;
	for (int p = 0; p < MAX_PARTITIONS; p++)
		n += totals->records[p];
	return n;
}

static bool same_totals(const struct totals *a, const struct totals *b)
{
	return !memcmp(a, b, sizeof(*a));
}

static void check_totals(const struct totals *counted, const struct totals *expected, const char *what)
{
	for (int p = 0; p < MAX_PARTITIONS; p++) {
		if (counted->records[p] != expected->records[p] || counted->bytes[p] != expected->bytes[p]) {
			fprintf(stderr,
				"%s: partition %d: counted %llu records (%llu bytes), expected %llu (%llu)\n",
				what, p, (unsigned long long)counted->records[p],
				(unsigned long long)counted->bytes[p],
				(unsigned long long)expected->records[p],
				(unsigned long long)expected->bytes[p]);
			CHECK(!"exact counts");
		}
	}
}

/* Waits until the exporters together have counted exactly *expected; then checks it. */
static void wait_for_totals(struct exporter *exporters, size_t n, const struct totals *expected,
			    const char *what)
{
	struct totals counted = counted_by(exporters, n);
	for (int64_t deadline = fx_mono_ms() + WAIT_MS;
	     !same_totals(&counted, expected) && fx_mono_ms() < deadline;) {
		sleep_ms(FLUSH_MS);
		counted = counted_by(exporters, n);
	}
	check_totals(&counted, expected, what);
}

static void wait_ready(const struct fx_consumer *consumer)
{
	for (int64_t deadline = fx_mono_ms() + WAIT_MS;
	     !fx_consumer_ready(consumer) && fx_mono_ms() < deadline;)
		sleep_ms(20);
	CHECK(fx_consumer_ready(consumer));
}

/* The group's commit is exactly what was produced to each partition (offsets start at 0). */
static void check_committed(struct cluster *cluster, const char *group, const char *topic,
			    const struct totals *expected)
{
	int64_t offsets[MAX_PARTITIONS];
	committed(cluster, group, topic, offsets);
	for (int p = 0; p < cluster->partitions; p++)
		if (offsets[p] != (int64_t)expected->records[p]) {
			fprintf(stderr, "%s[%d]: committed %lld, counted %llu\n", topic, p,
				(long long)offsets[p], (unsigned long long)expected->records[p]);
			CHECK(!"committed offset = records counted");
		}
}

/* Stopped in the middle of a backlog, the consumer commits exactly what it counted, partition by partition;
 * a new consumer in the same group counts exactly the rest. */
static void test_commit_and_resume(struct cluster *cluster)
{
	const char *topic = "resume", *group = "g-resume";
	topic_create(cluster, topic);
	struct totals produced = {0};
	produce(cluster, topic, 1000, &produced);
	/* Slow fetches (a few messages a partition, 20 ms each), so that the stop falls inside the backlog.
	 */
	CHECK(rd_kafka_mock_broker_set_rtt(cluster->mock, 1, 20) == RD_KAFKA_RESP_ERR_NO_ERROR);
	struct exporter runs[2];
	memset(runs, 0, sizeof(runs));
	struct exporter_options options = {.topic = topic, .group = group, .workers = 2};
	exporter_start(&runs[0], cluster, &options);
	struct totals counted = {0};
	for (int64_t deadline = fx_mono_ms() + WAIT_MS;
	     all_records(&counted) < 200 && fx_mono_ms() < deadline;) {
		sleep_ms(10);
		counted = counted_by(runs, 1);
	}
	exporter_stop(&runs[0]);
	counted = counted_by(runs, 1);
	uint64_t first_run = all_records(&counted);
	fprintf(stderr, "resume: the first run counted %llu of %llu records\n", (unsigned long long)first_run,
		(unsigned long long)all_records(&produced));
	CHECK(first_run >= 200 && first_run < all_records(&produced));
	check_committed(cluster, group, topic, &counted);
	CHECK(rd_kafka_mock_broker_set_rtt(cluster->mock, 1, 0) == RD_KAFKA_RESP_ERR_NO_ERROR);

	/* More records while no member is in the group, then a restart: nothing lost, nothing twice. */
	produce(cluster, topic, 50, &produced);
	exporter_start(&runs[1], cluster, &options);
	wait_for_totals(runs, 2, &produced, "resume");
	exporter_stop(&runs[1]);
	counted = counted_by(runs, 2);
	check_totals(&counted, &produced, "resume, stopped");
	check_committed(cluster, group, topic, &produced);
	exporter_destroy(&runs[0]);
	exporter_destroy(&runs[1]);
}

/* A self-metric of the consumer with no labels, e.g. flow_exporter_kafka_assigned_partitions. */
static uint64_t consumer_metric(struct fx_consumer *consumer, const char *name)
{
	struct fx_family_list *list = fx_family_list_create();
	CHECK(fx_consumer_collect(consumer, list) == 0);
	uint64_t value = UINT64_MAX;
	for (size_t i = 0; i < fx_family_list_count(list); i++) {
		const struct fx_family *family = fx_family_list_get(list, i);
		if (!strcmp(family->name, name) && family->n_samples == 1)
			value = family->samples[0].integer;
	}
	fx_family_list_destroy(list);
	return value;
}

/* Waits until the group's commit covers every record of *expected. */
static void wait_for_commit(struct cluster *cluster, const char *group, const char *topic,
			    const struct totals *expected)
{
	int64_t offsets[MAX_PARTITIONS];
	for (int64_t deadline = fx_mono_ms() + WAIT_MS; fx_mono_ms() < deadline; sleep_ms(100)) {
		committed(cluster, group, topic, offsets);
		int p = 0;
		while (p < cluster->partitions && offsets[p] == (int64_t)expected->records[p])
			p++;
		if (p == cluster->partitions)
			return;
	}
	check_committed(cluster, group, topic, expected);
}

/* A second member joins, then leaves while records arrive: the two count every record once, and the
 * group's commit ends at the end of every partition.
 *
 * The mock refuses every commit while the group rebalances (REBALANCE_IN_PROGRESS), where a Kafka broker
 * accepts the commit a member makes when its partitions are revoked. A member taking over a partition then
 * starts from the previous owner's last periodic commit, and records counted after it would be counted
 * twice; so the join waits for the first member's periodic commit, with no records in flight. The leave
 * needs no such care: the leaving member commits before it leaves, and the remaining one takes its own
 * partitions back where it stopped counting them, whatever its failed commit left in the group. */
static void test_rebalance(struct cluster *cluster)
{
	const char *topic = "rebalance", *group = "g-rebalance";
	topic_create(cluster, topic);
	struct totals produced = {0};
	struct exporter members[2];
	memset(members, 0, sizeof(members));
	struct exporter_options options = {.topic = topic, .group = group, .workers = 1};
	exporter_start(&members[0], cluster, &options);
	produce(cluster, topic, 100, &produced);
	wait_for_totals(members, 1, &produced, "rebalance, one member");
	wait_for_commit(cluster, group, topic, &produced);

	exporter_start(&members[1], cluster, &options);
	wait_ready(members[1].consumer);
	produce(cluster, topic, 100, &produced);
	wait_for_totals(members, 2, &produced, "rebalance, two members");
	CHECK(consumer_metric(members[0].consumer, "flow_exporter_kafka_assigned_partitions") == 2);
	CHECK(consumer_metric(members[1].consumer, "flow_exporter_kafka_assigned_partitions") == 2);
	struct totals second = counted_by(&members[1], 1);
	CHECK(all_records(&second) > 0 && all_records(&second) < all_records(&produced));

	/* The second member leaves; records keep coming while its partitions go back to the first. */
	exporter_stop(&members[1]);
	for (int64_t deadline = fx_mono_ms() + WAIT_MS; fx_mono_ms() < deadline; sleep_ms(100)) {
		produce(cluster, topic, 5, &produced);
		if (consumer_metric(members[0].consumer, "flow_exporter_kafka_assigned_partitions") ==
		    PARTITIONS)
			break;
	}
	produce(cluster, topic, 100, &produced);
	wait_for_totals(members, 2, &produced, "rebalance, after the leave");
	CHECK(consumer_metric(members[0].consumer, "flow_exporter_kafka_assigned_partitions") == PARTITIONS);
	exporter_stop(&members[0]);
	struct totals counted = counted_by(members, 2);
	check_totals(&counted, &produced, "rebalance, stopped");
	check_committed(cluster, group, topic, &produced);
	exporter_destroy(&members[0]);
	exporter_destroy(&members[1]);
}

/* Bit p set when a probe of partition p was counted. */
static unsigned probes_counted(struct exporter *exporter)
{
	struct fx_snapshot *snapshot = fx_store_snapshot(exporter->store);
	unsigned seen = 0;
	for (size_t i = 0; snapshot && i < snapshot->n_series; i++) {
		const char *hostname = snapshot->series[i].key.hostname;
		if (hostname && !strncmp(hostname, "probe", 5) && hostname[5] >= '0' &&
		    hostname[5] < '0' + PARTITIONS)
			seen |= 1u << (hostname[5] - '0');
	}
	fx_snapshot_destroy(snapshot);
	return seen;
}

/* --partitions=0,2: those two from the newest offset, dealt to two workers, and no commit. */
static void test_partitions_mode(struct cluster *cluster)
{
	const char *topic = "partitions", *group = "g-partitions";
	topic_create(cluster, topic);
	produce(cluster, topic, 100, NULL); /* before the start: never read */
	struct exporter exporter = {0};
	struct exporter_options options = {.topic = topic,
					   .group = group,
					   .workers = 2,
					   .partitions_mode = true,
					   .partitions = {0, 2},
					   .n_partitions = 2};
	exporter_start(&exporter, cluster, &options);
	wait_ready(exporter.consumer);
	/* Ready is the assignment; the newest offset is looked up after it. Probes (not in the totals) show
	 * when the two partitions are read: what comes after them must be counted, all of it. */
	for (int64_t deadline = fx_mono_ms() + WAIT_MS; fx_mono_ms() < deadline;) {
		produce_labelled(cluster, topic, "probe", 1, NULL);
		if (probes_counted(&exporter) == ((1u << 0) | (1u << 2)))
			break;
		sleep_ms(FLUSH_MS);
	}
	CHECK(probes_counted(&exporter) == ((1u << 0) | (1u << 2)));
	struct totals produced = {0};
	produce(cluster, topic, 100, &produced);
	struct totals expected = produced;
	expected.records[1] = expected.bytes[1] = expected.records[3] = expected.bytes[3] = 0;
	wait_for_totals(&exporter, 1, &expected, "partitions");
	exporter_stop(&exporter);
	struct totals counted = counted_by(&exporter, 1);
	check_totals(&counted, &expected, "partitions, stopped");
	int64_t offsets[MAX_PARTITIONS];
	committed(cluster, group, topic, offsets);
	for (int p = 0; p < PARTITIONS; p++)
		CHECK(offsets[p] == RD_KAFKA_OFFSET_INVALID);
	exporter_destroy(&exporter);
}

/* A plain librdkafka member of a group, for test_one_member. */
static rd_kafka_t *probe_start(struct cluster *cluster, const char *group, const char *topic)
{
	const char *const settings[] = {"bootstrap.servers",
					cluster->bootstraps,
					"group.id",
					group,
					"session.timeout.ms",
					"6000",
					"heartbeat.interval.ms",
					"500",
					"enable.auto.commit",
					"false",
					"log_level",
					"3"};
	rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, settings, sizeof(settings) / sizeof(settings[0]));
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
	CHECK(rd_kafka_subscribe(rk, topics) == RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_topic_partition_list_destroy(topics);
	return rk;
}

/* Partitions the probe holds now, polling it for a while (its rebalances are served in the poll). */
static int probe_assigned(rd_kafka_t *probe, int poll_ms)
{
	for (int64_t end = fx_mono_ms() + poll_ms; fx_mono_ms() < end;) {
		rd_kafka_message_t *message = rd_kafka_consumer_poll(probe, 20);
		if (message)
			rd_kafka_message_destroy(message);
	}
	rd_kafka_topic_partition_list_t *assignment = NULL;
	if (rd_kafka_assignment(probe, &assignment))
		return -1;
	int n = assignment->cnt;
	rd_kafka_topic_partition_list_destroy(assignment);
	return n;
}

/* An exporter with two workers is one member of the group: a second member (a plain consumer) gets half
 * of eight partitions under the range assignor, where it would get two or three if each worker were a
 * member. The counts stay exact through the rebalance (the exporter's revocation fences its workers). */
static void test_one_member(struct cluster *cluster)
{
	const char *topic = "one-member", *group = "g-one-member";
	topic_create_n(cluster, topic, 8);
	struct totals produced = {0};
	struct exporter exporter = {0};
	struct exporter_options options = {.topic = topic, .group = group, .workers = 2};
	exporter_start(&exporter, cluster, &options);
	wait_ready(exporter.consumer);
	produce(cluster, topic, 50, &produced);
	wait_for_totals(&exporter, 1, &produced, "one member, alone");
	CHECK(consumer_metric(exporter.consumer, "flow_exporter_kafka_assigned_partitions") == 8);
	wait_for_commit(cluster, group, topic, &produced);

	rd_kafka_t *probe = probe_start(cluster, group, topic);
	int probe_has = 0;
	uint64_t exporter_has = 0;
	for (int64_t deadline = fx_mono_ms() + WAIT_MS; fx_mono_ms() < deadline;) {
		probe_has = probe_assigned(probe, 100);
		exporter_has = consumer_metric(exporter.consumer, "flow_exporter_kafka_assigned_partitions");
		if (probe_has > 0 && probe_has + (int)exporter_has == 8)
			break;
	}
	fprintf(stderr, "one member: the probe holds %d partitions, the exporter %llu\n", probe_has,
		(unsigned long long)exporter_has);
	CHECK(probe_has == 4 && exporter_has == 4);
	/* The exporter counts exactly what its partitions get (the probe reads and counts nothing). */
	rd_kafka_topic_partition_list_t *assignment = NULL;
	CHECK(rd_kafka_assignment(probe, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR);
	struct totals more = {0};
	produce(cluster, topic, 50, &more);
	for (int p = 0; p < 8; p++) {
		bool probes = rd_kafka_topic_partition_list_find(assignment, topic, p) != NULL;
		produced.records[p] += probes ? 0 : more.records[p];
		produced.bytes[p] += probes ? 0 : more.bytes[p];
	}
	rd_kafka_topic_partition_list_destroy(assignment);
	wait_for_totals(&exporter, 1, &produced, "one member, with the probe");
	rd_kafka_consumer_close(probe);
	rd_kafka_destroy(probe);
	exporter_stop(&exporter);
	exporter_destroy(&exporter);
}

/* Two exporters of two workers each: two members, four of the eight partitions each, exact totals. */
static void test_two_processes(struct cluster *cluster)
{
	const char *topic = "two-processes", *group = "g-two-processes";
	topic_create_n(cluster, topic, 8);
	struct totals produced = {0};
	struct exporter exporters[2];
	memset(exporters, 0, sizeof(exporters));
	struct exporter_options options = {.topic = topic, .group = group, .workers = 2};
	exporter_start(&exporters[0], cluster, &options);
	wait_ready(exporters[0].consumer);
	exporter_start(&exporters[1], cluster, &options);
	uint64_t a = 0, b = 0;
	for (int64_t deadline = fx_mono_ms() + WAIT_MS; fx_mono_ms() < deadline && !(a == 4 && b == 4);
	     sleep_ms(50)) {
		a = consumer_metric(exporters[0].consumer, "flow_exporter_kafka_assigned_partitions");
		b = consumer_metric(exporters[1].consumer, "flow_exporter_kafka_assigned_partitions");
	}
	CHECK(a == 4 && b == 4);
	produce(cluster, topic, 200, &produced);
	wait_for_totals(exporters, 2, &produced, "two processes");
	struct totals first = counted_by(&exporters[0], 1), second = counted_by(&exporters[1], 1);
	CHECK(all_records(&first) == 4 * 200 && all_records(&second) == 4 * 200);
	/* The periodic commits first: the mock refuses the commits of a member while the group rebalances,
	 * as it does once the first exporter leaves (see test_rebalance). */
	wait_for_commit(cluster, group, topic, &produced);
	exporter_stop(&exporters[1]);
	exporter_stop(&exporters[0]);
	struct totals counted = counted_by(exporters, 2);
	check_totals(&counted, &produced, "two processes, stopped");
	check_committed(cluster, group, topic, &produced);
	exporter_destroy(&exporters[0]);
	exporter_destroy(&exporters[1]);
}

/* test_held_worker's hook: worker 1 waits while `held` is set, holding the batch it was given. */
struct hold {
	atomic_bool held;
	atomic_bool holding; /* worker 1 is waiting in the hook */
};

static void hold_worker(void *opaque, size_t worker)
{
	struct hold *hold = opaque;
	if (worker != 1)
		return;
	while (atomic_load(&hold->held)) {
		atomic_store(&hold->holding, true);
		sleep_ms(5);
	}
	atomic_store(&hold->holding, false);
}

/* A worker held on a batch holds up only its own partitions: the other worker's partitions are counted to
 * the end meanwhile; once released, every record is counted once. */
static void test_held_worker(struct cluster *cluster)
{
	const char *topic = "held", *group = "g-held";
	topic_create(cluster, topic);
	struct hold hold;
	atomic_init(&hold.held, true);
	atomic_init(&hold.holding, false);
	struct exporter exporter = {0};
	struct exporter_options options = {.topic = topic,
					   .group = group,
					   .workers = 2,
					   .batch_hook = hold_worker,
					   .batch_hook_opaque = &hold};
	exporter_start(&exporter, cluster, &options);
	wait_ready(exporter.consumer);
	struct totals produced = {0};
	produce(cluster, topic, 300, &produced);
	/* Two partitions (worker 0's) complete while worker 1 holds its first batch. */
	int complete = 0;
	struct totals counted = {0};
	for (int64_t deadline = fx_mono_ms() + WAIT_MS; fx_mono_ms() < deadline && complete < 2;
	     sleep_ms(FLUSH_MS)) {
		counted = counted_by(&exporter, 1);
		complete = 0;
		for (int p = 0; p < PARTITIONS; p++)
			complete += counted.records[p] == produced.records[p];
	}
	sleep_ms(300); /* time for anything of worker 1's to show up, were it counted */
	counted = counted_by(&exporter, 1);
	complete = 0;
	for (int p = 0; p < PARTITIONS; p++)
		complete += counted.records[p] == produced.records[p];
	fprintf(stderr, "held worker: %d of %d partitions complete, %llu of %llu records\n", complete,
		PARTITIONS, (unsigned long long)all_records(&counted),
		(unsigned long long)all_records(&produced));
	CHECK(atomic_load(&hold.holding));
	CHECK(complete == 2);
	atomic_store(&hold.held, false);
	wait_for_totals(&exporter, 1, &produced, "held worker, released");
	exporter_stop(&exporter);
	check_committed(cluster, group, topic, &produced);
	exporter_destroy(&exporter);
}

/* The prefetch bound's settings: half for the queues (per worker queue), a quarter per fetch. */
static void test_prefetch_settings(struct cluster *cluster)
{
	(void)cluster;
	struct fx_prefetch none = fx_consumer_prefetch(0, 2);
	CHECK(none.queue_kbytes == 0 && none.fetch_bytes == 0 && none.partition_fetch_bytes == 0);
	struct fx_prefetch p = fx_consumer_prefetch(32u << 20, 2);
	CHECK(p.queue_kbytes == 8192 && p.fetch_bytes == 8u << 20 && p.partition_fetch_bytes == 1048576);
	p = fx_consumer_prefetch(4u << 20, 1);
	CHECK(p.queue_kbytes == 2048 && p.fetch_bytes == 1u << 20 && p.partition_fetch_bytes == 1048576);
	p = fx_consumer_prefetch(16ull << 30, 1);
	CHECK(p.fetch_bytes == FX_PREFETCH_FETCH_MAX && p.queue_kbytes == 2097151);
}

/* flow_exporter_kafka_prefetch_bytes_limit of a consumer of two workers created (not started) with the
 * given bound and, when not NULL, one more librdkafka setting. */
static uint64_t prefetch_limit_of(struct cluster *cluster, uint64_t prefetch_bytes, const char *opt)
{
	struct fx_intern *hostnames = fx_intern_create(10);
	struct fx_store_config store_config = {
	    .n_workers = 2, .max_series = 10, .label_mask = FX_LABEL_HOSTNAME};
	struct fx_store *store = fx_store_create(&store_config);
	struct fx_local_asns local = {.asn = {LOCAL_AS}, .n = 1};
	struct fx_consumer_config config = {
	    .brokers = cluster->bootstraps,
	    .topics = {"prefetch"},
	    .n_topics = 1,
	    .group = "g-prefetch",
	    .n_kafka_opts = opt ? 1 : 0,
	    .kafka_opts = {opt},
	    .n_workers = 2,
	    .prefetch_bytes = prefetch_bytes,
	    .flush_ms = FLUSH_MS,
	    .counting = {.local = &local,
			 .label_mask = FX_LABEL_HOSTNAME,
			 .max_series = 10,
			 .max_record_bytes = 4096,
			 .hostnames = hostnames,
			 .store = store},
	};
	char errstr[512] = "";
	struct fx_consumer *consumer = fx_consumer_create(&config, errstr, sizeof(errstr));
	CHECK(consumer != NULL);
	uint64_t limit = consumer ? consumer_metric(consumer, "flow_exporter_kafka_prefetch_bytes_limit") : 0;
	fx_consumer_destroy(consumer);
	fx_store_destroy(store);
	fx_intern_destroy(hostnames);
	return limit;
}

/* The bound reaches the one handle and its self-metric: 8 MiB for two workers is two 2 MiB queues and two
 * 2 MiB fetches; a --kafka-opt of a derived key wins over the derived value. */
static void test_prefetch_limit(struct cluster *cluster)
{
	CHECK(prefetch_limit_of(cluster, 8u << 20, NULL) == 8u << 20);
	CHECK(prefetch_limit_of(cluster, 8u << 20, "queued.max.messages.kbytes=1024") == 6u << 20);
	/* 0: librdkafka's own 64 MiB queues and 50 MiB fetches. */
	CHECK(prefetch_limit_of(cluster, 0, NULL) == 2 * (65536ull << 10) + 2 * 52428800ull);
}

/* Runs the tests named on the command line, or all of them. */
int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(struct cluster *cluster);
	} tests[] = {
	    {"partitions_mode", test_partitions_mode},
	    {"commit_and_resume", test_commit_and_resume},
	    {"rebalance", test_rebalance},
	    {"one_member", test_one_member},
	    {"two_processes", test_two_processes},
	    {"held_worker", test_held_worker},
	    {"prefetch_settings", test_prefetch_settings},
	    {"prefetch_limit", test_prefetch_limit},
	};
	fx_log_set_level(FX_LOG_WARN);
	struct cluster cluster;
	cluster_start(&cluster);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		bool wanted = argc < 2;
		for (int a = 1; a < argc; a++)
			wanted = wanted || !strcmp(argv[a], tests[i].name);
		if (!wanted)
			continue;
		int64_t start = fx_mono_ms();
		tests[i].run(&cluster);
		fprintf(stderr, "%s: %lld ms\n", tests[i].name, (long long)(fx_mono_ms() - start));
	}
	cluster_stop(&cluster);
	return check_exit();
}
