/* Step (1): the librdkafka consumer: one handle, one group member, and the worker threads that count.
 *
 * DESIGN
 * The process has one rd_kafka_t consumer, so it is one member of the consumer group however many workers
 * it runs, and librdkafka's prefetch is bounded once for the process (--kafka-prefetch-bytes, derived in
 * prefetch_settings). Each worker thread owns a librdkafka queue of its own and an fx_ingest. When
 * partitions are assigned, each one's queue is forwarded to one worker's queue (rd_kafka_queue_get_partition
 * + rd_kafka_queue_forward, dealt round-robin), so a partition is read by exactly one worker and a worker
 * that is slow or stopped holds up only its own partitions: librdkafka checks the prefetch bound of a
 * partition against the queue it is forwarded to.
 *
 * The control thread serves the handle's own queue: the rebalance callback (assignment, revocation), errors,
 * the statistics callback, the lags, and the fetch wake-ups (see watch_queue). It never counts a record.
 * In the Go program's mode (--partitions) it assigns the given partitions at the newest offset, with no
 * group and no commits.
 *
 * A worker reads batches of messages, counts each one into its delta table, and only then stores the
 * offsets (enable.auto.offset.store=false), so the periodic auto-commit and the commit made when partitions
 * are revoked or the consumer closes never cover a message that was not counted. A revocation is served on
 * the control thread while the workers may hold a batch of the revoked partitions, so it first fences the
 * workers (each finishes and stores the batch it holds, then parks), and only then gives the partitions up
 * (which commits) and undoes the forwarding; messages of revoked partitions still queued are discarded by
 * librdkafka (their version is outdated). Every flush interval a worker hands its delta to the store and
 * publishes its statistics (under `stats_lock`, once per flush). Nothing takes a lock per record.
 *
 * Durable mode (--state-dir, config.durable set): nothing is auto-committed. Every counted message's
 * offset goes to the store with its counts (fx_ingest_note_offset), and the checkpoints commit what they
 * cover through fx_consumer_commit, on this one handle. An assigned partition starts at the later of the
 * restored checkpoint's offset and the group's (resume_positions). At a revocation the fenced workers
 * hand over all their counts before they park, and the control thread makes a checkpoint (which commits)
 * before the partitions go; at stop the checkpoint comes before the handle closes.
 *
 * Logs may come from librdkafka's threads and go through fx_log, which is thread-safe. Errors after startup
 * are logged and counted, never fatal: librdkafka reconnects by itself when a broker comes back. */
#include "fx/consumer.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fx/clock.h"
#include "fx/log.h"
#include "fx/thread_name.h"

#define BATCH_MAX 1024
#define POLL_MS 100
#define CONTROL_POLL_MS 100
#define MAX_ERROR_KINDS 32
#define FENCE_WAIT_MS 10000
/* How long a fetch wake-up waits (see watch_queue): the request only has to be sent, not answered. */
#define WAKE_TIMEOUT_MS 1
#define STATISTICS_INTERVAL "1000"

/* One assigned partition: which worker reads it, its forwarded queue and its lag. */
struct assigned {
	const char *topic; /* one of config.topics */
	int32_t partition;
	size_t worker;
	rd_kafka_queue_t *queue; /* the partition's queue, forwarded to the worker's */
	int64_t lag;		 /* -1: unknown yet */
};

struct worker {
	struct fx_consumer *consumer;
	size_t index;
	rd_kafka_queue_t *queue; /* this worker's partitions are forwarded here */
	struct fx_ingest *ingest;
	pthread_t thread;
	bool thread_started;

	/* Fetch wake-up (see watch_queue): an estimate of what is queued and whether the queue reached the
	 * bound since the last wake-up. Worker thread only. */
	uint64_t message_bytes_avg; /* moving average of message sizes, in bytes * 16 */
	bool fetch_held;

	/* Published under consumer->stats_lock. */
	struct fx_ingest_stats stats;
};

struct error_count {
	rd_kafka_resp_err_t err;
	uint64_t count;
};

struct fx_consumer {
	struct fx_consumer_config config;
	rd_kafka_t *rk;
	rd_kafka_queue_t *control_queue; /* the handle's consumer queue, served by the control thread */
	struct worker *workers;
	pthread_t control_thread;
	bool control_started;
	atomic_bool stop;
	/* Per worker queue: librdkafka's bound on it, read back from the handle (the user's --kafka-opt
	 * wins over the derived ones). */
	size_t queue_max_messages;
	uint64_t queue_max_bytes;
	uint64_t prefetch_limit; /* what librdkafka may hold in all, from its settings (see prefetch_limit) */

	pthread_mutex_t stats_lock; /* guards the fields below it, the workers' stats and errors[] */
	struct error_count errors[MAX_ERROR_KINDS];
	size_t n_errors;
	struct fx_ratelimit error_log;
	/* The assignment: written by the control thread (and the closing main thread) under stats_lock, read
	 * by the control thread without it. */
	struct assigned *assigned;
	size_t n_assigned;
	uint64_t queued_bytes, queued_messages, fetch_requests; /* from the statistics callback */
	uint64_t fetch_wakeups;
	atomic_bool ready; /* partitions assigned: read without a lock by fx_consumer_ready */

	/* The revocation fence (see fence_workers). */
	pthread_mutex_t fence_lock;
	pthread_cond_t fence_cond;
	atomic_bool fenced;
	size_t n_parked; /* workers parked at the fence or exited; under fence_lock */
	/* A worker asks the control thread for a fetch wake-up (see watch_queue). */
	atomic_bool wake_wanted;

	/* Group mode: the next offset to count of every partition this process has read, by topic index and
	 * partition ([topic * FX_MAX_PARTITIONS + partition], -1 when none), so that a partition coming back
	 * after a rebalance resumes where this process stopped counting, even when the commit made at the
	 * revocation failed (as it does during a rebalance or an outage). Guarded by positions_lock, taken
	 * once per batch and once per assignment. */
	pthread_mutex_t positions_lock;
	int64_t *positions;
	bool stopped; /* main thread only */
};

static ssize_t topic_index(const struct fx_consumer *consumer, const char *name)
{
	for (size_t i = 0; i < consumer->config.n_topics; i++)
		if (!strcmp(consumer->config.topics[i], name))
			return (ssize_t)i;
	return -1;
}

static const char *topic_of(const struct fx_consumer *consumer, const char *name)
{
	ssize_t i = topic_index(consumer, name);
	return i < 0 ? NULL : consumer->config.topics[i];
}

/* The slot of a partition in consumer->positions, or NULL for a topic or partition out of range. */
static int64_t *position_of(struct fx_consumer *consumer, const char *topic, int32_t partition)
{
	ssize_t t = topic_index(consumer, topic);
	if (t < 0 || partition < 0 || partition >= FX_MAX_PARTITIONS)
		return NULL;
	return &consumer->positions[(size_t)t * FX_MAX_PARTITIONS + (size_t)partition];
}

/* @locality any thread. */
static void count_error(struct fx_consumer *consumer, rd_kafka_resp_err_t err, const char *reason)
{
	pthread_mutex_lock(&consumer->stats_lock);
	size_t i = 0;
	while (i < consumer->n_errors && consumer->errors[i].err != err)
		i++;
	if (i == consumer->n_errors && consumer->n_errors < MAX_ERROR_KINDS)
		consumer->errors[consumer->n_errors++] = (struct error_count){err, 0};
	if (i < consumer->n_errors)
		consumer->errors[i].count++;
	uint64_t suppressed = 0;
	bool log = fx_ratelimit_allow(&consumer->error_log, fx_mono_ms(), &suppressed);
	pthread_mutex_unlock(&consumer->stats_lock);
	if (log)
		fx_warn("kafka: %s: %s%s", rd_kafka_err2name(err), reason,
			suppressed ? " (similar errors were not logged)" : "");
}

/* Durable mode: where the restored counters of p stop counts as where this process stopped counting it.
 * @locks positions_lock held. */
static void resume_restored(struct fx_consumer *consumer, const rd_kafka_topic_partition_t *p, int64_t *ours)
{
	const struct fx_consumer_durable *durable = &consumer->config.durable;
	int64_t restored = durable->start_offset(durable->opaque, p->topic, p->partition);
	if (restored > *ours)
		*ours = restored;
}

/* Starts each assigned partition at the later of the committed offset and where this process stopped
 * counting it (in durable mode, or where the restored checkpoint stops). The committed offset wins when
 * another process counted further and committed. Returns the partitions where ours is ahead of the commit
 * (NULL if none): their offsets must be stored again once assigned, or a partition with nothing new to read
 * would never have its counted position committed by its new owner. @locality the control thread. */
static rd_kafka_topic_partition_list_t *resume_positions(struct fx_consumer *consumer,
							 rd_kafka_topic_partition_list_t *partitions)
{
	rd_kafka_topic_partition_list_t *ahead = NULL;
	rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(partitions);
	if (rd_kafka_committed(consumer->rk, committed, 5000))
		for (int i = 0; i < committed->cnt; i++)
			committed->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
	pthread_mutex_lock(&consumer->positions_lock);
	for (int i = 0; i < partitions->cnt; i++) {
		rd_kafka_topic_partition_t *p = &partitions->elems[i];
		int64_t *ours = position_of(consumer, p->topic, p->partition);
		if (ours && consumer->config.durable.start_offset)
			resume_restored(consumer, p, ours);
		if (!ours || *ours < 0)
			continue;
		int64_t theirs =
		    committed->elems[i].err ? RD_KAFKA_OFFSET_INVALID : committed->elems[i].offset;
		p->offset = theirs > *ours ? theirs : *ours;
		if (*ours > theirs) {
			if (!ahead)
				ahead = rd_kafka_topic_partition_list_new(partitions->cnt);
			rd_kafka_topic_partition_list_add(ahead, p->topic, p->partition)->offset = *ours;
		}
		fx_debug("kafka: %s[%d] resumes at offset %lld", p->topic, p->partition,
			 (long long)p->offset);
	}
	pthread_mutex_unlock(&consumer->positions_lock);
	rd_kafka_topic_partition_list_destroy(committed);
	return ahead;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	count_error(opaque, (rd_kafka_resp_err_t)err, reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *facility, const char *message)
{
	(void)rk;
	enum fx_log_level ours = level <= 3 ? FX_LOG_ERROR : level <= 5 ? FX_LOG_WARN : FX_LOG_DEBUG;
	fx_log(ours, "librdkafka %s: %s", facility, message);
}

/* Forwards each partition's queue to a worker's, dealing them round-robin, and publishes the assignment.
 * Forwarding comes before rd_kafka_assign, so no message of these partitions reaches the control queue.
 * @locality the control thread. */
static void forward_partitions(struct fx_consumer *consumer,
			       const rd_kafka_topic_partition_list_t *partitions)
{
	size_t n = (size_t)partitions->cnt;
	struct assigned *assigned = n ? calloc(n, sizeof(*assigned)) : NULL;
	size_t n_assigned = 0;
	for (size_t i = 0; assigned && i < n; i++) {
		const rd_kafka_topic_partition_t *p = &partitions->elems[i];
		const char *topic = topic_of(consumer, p->topic);
		rd_kafka_queue_t *queue = rd_kafka_queue_get_partition(consumer->rk, p->topic, p->partition);
		if (!topic || !queue) {
			count_error(consumer, RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
				    "cannot read a partition");
			if (queue)
				rd_kafka_queue_destroy(queue);
			continue;
		}
		size_t worker = n_assigned % consumer->config.n_workers;
		rd_kafka_queue_forward(queue, consumer->workers[worker].queue);
		assigned[n_assigned++] = (struct assigned){topic, p->partition, worker, queue, -1};
	}
	if (n && !assigned)
		count_error(consumer, RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE, "out of memory");
	pthread_mutex_lock(&consumer->stats_lock);
	free(consumer->assigned);
	consumer->assigned = assigned;
	consumer->n_assigned = n_assigned;
	atomic_store(&consumer->ready, n_assigned > 0);
	pthread_mutex_unlock(&consumer->stats_lock);
}

/* Undoes forward_partitions. @locality the control thread, or the main thread once it has stopped. */
static void unforward_partitions(struct fx_consumer *consumer)
{
	pthread_mutex_lock(&consumer->stats_lock);
	struct assigned *assigned = consumer->assigned;
	size_t n = consumer->n_assigned;
	consumer->assigned = NULL;
	consumer->n_assigned = 0;
	atomic_store(&consumer->ready, false);
	pthread_mutex_unlock(&consumer->stats_lock);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_queue_forward(assigned[i].queue, NULL);
		rd_kafka_queue_destroy(assigned[i].queue);
	}
	free(assigned);
}

/* Makes every worker finish the batch it holds (counted, offsets stored) and park, so that giving up
 * partitions, which commits, covers everything counted. Returns false when a worker did not park in time
 * (it is then counting something very slow; the revocation goes on). @locality the control thread. */
static bool fence_workers(struct fx_consumer *consumer)
{
	pthread_mutex_lock(&consumer->fence_lock);
	atomic_store(&consumer->fenced, true);
	pthread_mutex_unlock(&consumer->fence_lock);
	for (size_t i = 0; i < consumer->config.n_workers; i++)
		rd_kafka_queue_yield(consumer->workers[i].queue);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += FENCE_WAIT_MS / 1000;
	pthread_mutex_lock(&consumer->fence_lock);
	int rc = 0;
	while (consumer->n_parked < consumer->config.n_workers && rc == 0)
		rc = pthread_cond_timedwait(&consumer->fence_cond, &consumer->fence_lock, &deadline);
	bool all = consumer->n_parked == consumer->config.n_workers;
	pthread_mutex_unlock(&consumer->fence_lock);
	return all;
}

static void unfence_workers(struct fx_consumer *consumer)
{
	pthread_mutex_lock(&consumer->fence_lock);
	atomic_store(&consumer->fenced, false);
	pthread_cond_broadcast(&consumer->fence_cond);
	pthread_mutex_unlock(&consumer->fence_lock);
}

/* A worker waits at the fence until the control thread lifts it. @locality a worker thread. */
static void park(struct fx_consumer *consumer)
{
	pthread_mutex_lock(&consumer->fence_lock);
	consumer->n_parked++;
	pthread_cond_broadcast(&consumer->fence_cond);
	while (atomic_load(&consumer->fenced) && !atomic_load(&consumer->stop))
		pthread_cond_wait(&consumer->fence_cond, &consumer->fence_lock);
	consumer->n_parked--;
	pthread_mutex_unlock(&consumer->fence_lock);
}

/* Durable mode: the counts of the partitions going away (the fenced workers handed all theirs over) are
 * checkpointed, and their offsets committed, before their new owner starts from the group's offset.
 * @locality the control thread, the workers parked. */
static void checkpoint_before_revoke(struct fx_consumer *consumer)
{
	const struct fx_consumer_durable *durable = &consumer->config.durable;
	if (durable->checkpoint && durable->checkpoint(durable->opaque))
		fx_warn("kafka: the checkpoint at the revocation failed: the new owner of the partitions may "
			"count records this process counted since the last checkpoint");
}

/* @locality the control thread (served from its poll call). Offsets of counted messages are stored before
 * the partitions go; librdkafka commits them when they are revoked (auto-commit is on), or, in durable
 * mode, the checkpoint made here commits them. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *partitions,
			 void *opaque)
{
	struct fx_consumer *consumer = opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		fx_info("kafka: assigned %d partition(s) for %zu worker(s)", partitions->cnt,
			consumer->config.n_workers);
		rd_kafka_topic_partition_list_t *ahead = resume_positions(consumer, partitions);
		forward_partitions(consumer, partitions);
		rd_kafka_assign(rk, partitions);
		if (ahead) {
			rd_kafka_resp_err_t store_err = rd_kafka_offsets_store(rk, ahead);
			if (store_err)
				count_error(consumer, store_err, "cannot store the resumed offsets");
			rd_kafka_topic_partition_list_destroy(ahead);
		}
	} else {
		if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
			count_error(consumer, err, "rebalance failed");
		fx_info("kafka: lost %d partition(s)", partitions->cnt);
		if (!fence_workers(consumer))
			fx_warn(
			    "kafka: a worker did not finish its batch in time; its records may be counted "
			    "again by the partitions' next owner");
		checkpoint_before_revoke(consumer);
		rd_kafka_assign(rk, NULL);
		unforward_partitions(consumer);
		unfence_workers(consumer);
	}
}

/* Adds what one statistics JSON says to the sums: the bytes and messages queued (a partition's fetchq_*
 * follow its forwarding, so they are the worker queue's: taken once per worker) and the fetch requests
 * sent to every broker. @locality the control thread. */
static void read_statistics(struct fx_consumer *consumer, json_t *root)
{
	uint64_t fetches = 0, bytes = 0, messages = 0;
	const char *name;
	json_t *broker, *topic;
	json_object_foreach(json_object_get(root, "brokers"), name, broker)
	{
		json_t *n = json_object_get(json_object_get(broker, "req"), "Fetch");
		fetches +=
		    json_is_integer(n) && json_integer_value(n) > 0 ? (uint64_t)json_integer_value(n) : 0;
	}
	bool *seen = calloc(consumer->config.n_workers, sizeof(*seen));
	for (size_t i = 0; seen && i < consumer->n_assigned; i++) {
		const struct assigned *a = &consumer->assigned[i];
		if (seen[a->worker])
			continue;
		char partition[16];
		snprintf(partition, sizeof(partition), "%d", a->partition);
		topic = json_object_get(json_object_get(root, "topics"), a->topic);
		json_t *p = json_object_get(json_object_get(topic, "partitions"), partition);
		json_t *size = json_object_get(p, "fetchq_size"), *count = json_object_get(p, "fetchq_cnt");
		if (!json_is_integer(size) || !json_is_integer(count))
			continue;
		seen[a->worker] = true;
		bytes += json_integer_value(size) > 0 ? (uint64_t)json_integer_value(size) : 0;
		messages += json_integer_value(count) > 0 ? (uint64_t)json_integer_value(count) : 0;
	}
	free(seen);
	pthread_mutex_lock(&consumer->stats_lock);
	consumer->fetch_requests = fetches;
	consumer->queued_bytes = bytes;
	consumer->queued_messages = messages;
	pthread_mutex_unlock(&consumer->stats_lock);
}

static int on_statistics(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
	(void)rk;
	json_t *root = json_loadb(json, json_len, 0, NULL);
	if (root)
		read_statistics(opaque, root);
	json_decref(root);
	return 0; /* librdkafka frees json */
}

/* Our settings, then the operator's: any of ours can be overridden. Returns 0, or -1 with errstr set. */
static int apply_settings(rd_kafka_conf_t *conf, const struct fx_consumer_config *config, char *errstr,
			  size_t errstr_size)
{
	char queue_kbytes[32], fetch_bytes[32], partition_bytes[32];
	struct fx_prefetch prefetch = fx_consumer_prefetch(config->prefetch_bytes, config->n_workers);
	snprintf(queue_kbytes, sizeof(queue_kbytes), "%llu", (unsigned long long)prefetch.queue_kbytes);
	snprintf(fetch_bytes, sizeof(fetch_bytes), "%llu", (unsigned long long)prefetch.fetch_bytes);
	snprintf(partition_bytes, sizeof(partition_bytes), "%llu",
		 (unsigned long long)prefetch.partition_fetch_bytes);
	bool bounded = config->prefetch_bytes > 0;
	struct {
		const char *key, *value;
	} ours[] = {
	    {"bootstrap.servers", config->brokers},
	    {"client.id", "flow-exporter"},
	    {"enable.auto.commit",
	     config->partitions_mode || config->durable.start_offset ? "false" : "true"},
	    {"enable.auto.offset.store", "false"},
	    /* librdkafka needs a group.id for assign() too; without subscribe() no group is joined. */
	    {"group.id", config->group},
	    {"statistics.interval.ms", STATISTICS_INTERVAL},
	    {"fetch.wait.max.ms", FX_KAFKA_FETCH_WAIT_MS},
	    {"queued.max.messages.kbytes", bounded ? queue_kbytes : NULL},
	    {"fetch.max.bytes", bounded ? fetch_bytes : NULL},
	    {"max.partition.fetch.bytes", bounded ? partition_bytes : NULL},
	};
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
		if (ours[i].value && rd_kafka_conf_set(conf, ours[i].key, ours[i].value, errstr,
						       errstr_size) != RD_KAFKA_CONF_OK)
			return -1;
	}
	for (size_t i = 0; i < config->n_kafka_opts; i++) {
		char key[256];
		const char *opt = config->kafka_opts[i];
		const char *eq = strchr(opt, '=');
		size_t len = eq ? (size_t)(eq - opt) : 0;
		if (!eq || len >= sizeof(key)) {
			snprintf(errstr, errstr_size, "--kafka-opt \"%s\": expected key=value", opt);
			return -1;
		}
		memcpy(key, opt, len);
		key[len] = '\0';
		char why[256];
		if (rd_kafka_conf_set(conf, key, eq + 1, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
			snprintf(errstr, errstr_size, "--kafka-opt %s: %s", key, why);
			return -1;
		}
	}
	return 0;
}

static rd_kafka_t *create_handle(struct fx_consumer *consumer, char *errstr, size_t errstr_size)
{
	const struct fx_consumer_config *config = &consumer->config;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (apply_settings(conf, config, errstr, errstr_size))
		goto fail;
	rd_kafka_conf_set_opaque(conf, consumer);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_conf_set_stats_cb(conf, on_statistics);
	if (!config->partitions_mode)
		rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
	if (!rk)
		goto fail; /* conf is still ours on failure */
	return rk;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

/* Partitions mode with "all": the partition numbers of topic t from the metadata. Returns 0, or -1 (counted)
 * when the metadata does not have the topic yet. */
static int list_partitions(struct fx_consumer *consumer, size_t t, int32_t *ids, size_t *n)
{
	rd_kafka_topic_t *topic = rd_kafka_topic_new(consumer->rk, consumer->config.topics[t], NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err = rd_kafka_metadata(consumer->rk, 0, topic, &md, 2000);
	rd_kafka_topic_destroy(topic);
	if (!err && md->topic_cnt == 1)
		err = md->topics[0].err;
	if (err || md->topic_cnt != 1) {
		count_error(consumer, err, "cannot list the topic's partitions yet; retrying");
		if (md)
			rd_kafka_metadata_destroy(md);
		return -1;
	}
	*n = 0;
	for (int i = 0; i < md->topics[0].partition_cnt && *n < FX_MAX_PARTITIONS; i++)
		ids[(*n)++] = md->topics[0].partitions[i].id;
	rd_kafka_metadata_destroy(md);
	return 0;
}

/* Where a partition of --partitions starts: where the counts of the restored checkpoint stop (--state-dir),
 * else the newest offset. Counts the resumed ones in *resumed. */
static int64_t manual_start(const struct fx_consumer *consumer, const char *topic, int32_t partition,
			    int *resumed)
{
	const struct fx_consumer_durable *durable = &consumer->config.durable;
	int64_t restored =
	    durable->start_offset ? durable->start_offset(durable->opaque, topic, partition) : -1;
	if (restored < 0)
		return RD_KAFKA_OFFSET_END;
	fx_debug("kafka: %s[%d] resumes at offset %lld (checkpoint)", topic, partition, (long long)restored);
	(*resumed)++;
	return restored;
}

/* Partitions mode: assigns the given partitions of every topic at the newest offset, or where the restored
 * checkpoint stops. Returns 0, or -1 to be tried again later. @locality the control thread. */
static int assign_partitions(struct fx_consumer *consumer)
{
	const struct fx_consumer_config *config = &consumer->config;
	rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(16);
	int resumed = 0;
	for (size_t t = 0; t < config->n_topics; t++) {
		int32_t ids[FX_MAX_PARTITIONS];
		const int32_t *partitions = config->partitions;
		size_t n = config->n_partitions;
		if (config->all_partitions) {
			if (list_partitions(consumer, t, ids, &n)) {
				rd_kafka_topic_partition_list_destroy(all);
				return -1;
			}
			partitions = ids;
		}
		for (size_t i = 0; i < n; i++)
			rd_kafka_topic_partition_list_add(all, config->topics[t], partitions[i])->offset =
			    manual_start(consumer, config->topics[t], partitions[i], &resumed);
	}
	forward_partitions(consumer, all);
	rd_kafka_resp_err_t err = rd_kafka_assign(consumer->rk, all);
	if (err) {
		count_error(consumer, err, "cannot assign partitions");
		unforward_partitions(consumer);
	} else {
		fx_info("kafka: reads %d partition(s) with %zu worker(s): %d where the checkpoint stops, the "
			"others from the newest offset",
			all->cnt, config->n_workers, resumed);
	}
	rd_kafka_topic_partition_list_destroy(all);
	return err ? -1 : 0;
}

/* Stores offset+1 of the last counted message of every partition in the batch. A batch holds runs of
 * messages of one partition (a fetch response's batches), so the partitions are collected run by run,
 * comparing the handle and number only, and the list is built once with what the runs found. */
#define STORE_RUNS_MAX 64
static void store_offsets(struct worker *worker, rd_kafka_message_t **batch, size_t n)
{
	struct run {
		rd_kafka_topic_t *topic;
		int32_t partition;
		int64_t next;
	} runs[STORE_RUNS_MAX];
	size_t n_runs = 0, rest = n;
	struct run *last = NULL;
	for (size_t i = 0; i < n; i++) {
		const rd_kafka_message_t *message = batch[i];
		if (message->err)
			continue;
		if (!last || last->topic != message->rkt || last->partition != message->partition) {
			last = NULL;
			for (size_t r = 0; r < n_runs && !last; r++)
				if (runs[r].topic == message->rkt && runs[r].partition == message->partition)
					last = &runs[r];
			if (!last) {
				if (n_runs == STORE_RUNS_MAX) {
					/* More partitions in one batch than runs here: these first (stores
					 * overwrite, so a partition's later offsets must come last), then the
					 * rest. */
					rest = i;
					break;
				}
				last = &runs[n_runs++];
				*last = (struct run){message->rkt, message->partition, -1};
			}
		}
		if (message->offset + 1 > last->next)
			last->next = message->offset + 1;
	}
	if (!n_runs)
		return;
	rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new((int)n_runs);
	struct fx_consumer *consumer = worker->consumer;
	pthread_mutex_lock(&consumer->positions_lock);
	for (size_t r = 0; r < n_runs; r++) {
		const char *topic = rd_kafka_topic_name(runs[r].topic);
		rd_kafka_topic_partition_list_add(offsets, topic, runs[r].partition)->offset = runs[r].next;
		int64_t *ours = position_of(consumer, topic, runs[r].partition);
		if (ours && runs[r].next > *ours)
			*ours = runs[r].next;
	}
	pthread_mutex_unlock(&consumer->positions_lock);
	rd_kafka_resp_err_t err = rd_kafka_offsets_store(consumer->rk, offsets);
	if (err && err != RD_KAFKA_RESP_ERR__STATE) /* _STATE: the partition was revoked meanwhile */
		count_error(consumer, err, "cannot store offsets");
	rd_kafka_topic_partition_list_destroy(offsets);
	if (rest < n)
		store_offsets(worker, batch + rest, n - rest);
}

/* @locality the control thread. */
static void update_lags(struct fx_consumer *consumer)
{
	size_t n = consumer->n_assigned;
	if (!n)
		return;
	rd_kafka_topic_partition_list_t *positions = rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(positions, consumer->assigned[i].topic,
						  consumer->assigned[i].partition);
	rd_kafka_position(consumer->rk, positions);
	pthread_mutex_lock(&consumer->stats_lock);
	for (size_t i = 0; i < n; i++) {
		struct assigned *a = &consumer->assigned[i];
		const rd_kafka_topic_partition_t *p = &positions->elems[i];
		int64_t low, high;
		if (p->offset < 0 ||
		    rd_kafka_get_watermark_offsets(consumer->rk, a->topic, a->partition, &low, &high) ||
		    high < 0)
			continue;
		a->lag = high > p->offset ? high - p->offset : 0;
	}
	pthread_mutex_unlock(&consumer->stats_lock);
	rd_kafka_topic_partition_list_destroy(positions);
}

/* Hands the worker's delta to the store and publishes its statistics. `all`: waits until the whole delta
 * is taken (at the end, and at a durable revocation), so that a commit or checkpoint made next covers it. */
static void publish(struct worker *worker, bool all)
{
	fx_ingest_flush(worker->ingest, all);
	pthread_mutex_lock(&worker->consumer->stats_lock);
	worker->stats = *fx_ingest_get_stats(worker->ingest);
	pthread_mutex_unlock(&worker->consumer->stats_lock);
}

/* A numeric setting of the handle, or `fallback`. */
static uint64_t conf_number(rd_kafka_t *rk, const char *key, uint64_t fallback)
{
	char value[64];
	size_t size = sizeof(value);
	if (rd_kafka_conf_get(rd_kafka_conf(rk), key, value, &size) != RD_KAFKA_CONF_OK)
		return fallback;
	char *end = NULL;
	unsigned long long number = strtoull(value, &end, 10);
	return end != value && *end == '\0' ? number : fallback;
}

/* librdkafka 2.0.2 stops fetching a partition while the queue it feeds holds queued.min.messages messages
 * or queued.max.messages.kbytes, and its broker thread looks at the queue again only when something wakes
 * it: a network event, an operation, or a 1 s timer. A worker that drains its queue faster therefore waits
 * for nothing. So when the queue was at a bound before the worker took its batch (the broker thread may
 * have stopped) and is below it after, the worker asks the control thread to wake the broker threads (see
 * wake_fetchers) and counts the batch while the fetch is on its way.
 *
 * Both halves matter. The queue is judged with the batch still in it: a batch (BATCH_MAX messages) can
 * hold the whole queue when messages are large (a 4 MiB queue of 29 KB multi-value messages is 140
 * messages), and a queue sampled only after the batch never looks full, so the fetcher was never woken
 * and every refill waited for librdkafka's own timer (~130 ms idle gaps, half the multi-value rate with a
 * 16 MiB queue). And the wake-up comes before the counting, not after it, so the fetch overlaps the work.
 * @locality the worker thread. */
static void watch_queue(struct worker *worker, rd_kafka_message_t **batch, size_t n)
{
	const struct fx_consumer *consumer = worker->consumer;
	uint64_t batch_bytes = 0;
	for (size_t i = 0; i < n; i++)
		batch_bytes += batch[i]->len;
	uint64_t queued = rd_kafka_queue_length(worker->queue);
	uint64_t queued_bytes = queued * worker->message_bytes_avg / 16;
	uint64_t before = queued + n, before_bytes = queued_bytes + batch_bytes;
	/* Margins: the queue is sampled once a batch, so a peak may fall between two samples. */
	if (before + BATCH_MAX / 8 >= consumer->queue_max_messages ||
	    before_bytes + before_bytes / 8 >= consumer->queue_max_bytes)
		worker->fetch_held = true;
	if (!worker->fetch_held || queued >= consumer->queue_max_messages ||
	    queued_bytes >= consumer->queue_max_bytes)
		return;
	worker->fetch_held = false;
	atomic_store(&worker->consumer->wake_wanted, true);
	rd_kafka_queue_yield(consumer->control_queue);
}

/* Sends a ListOffsets request for the assigned partitions to their leaders: a request to send is what
 * wakes a broker thread. It waits WAKE_TIMEOUT_MS, not for the answer (which librdkafka drops).
 * @locality the control thread. */
static void wake_fetchers(struct fx_consumer *consumer)
{
	if (!consumer->n_assigned)
		return;
	rd_kafka_topic_partition_list_t *partitions =
	    rd_kafka_topic_partition_list_new((int)consumer->n_assigned);
	for (size_t i = 0; i < consumer->n_assigned; i++)
		rd_kafka_topic_partition_list_add(partitions, consumer->assigned[i].topic,
						  consumer->assigned[i].partition)
		    ->offset = RD_KAFKA_OFFSET_END;
	/* Errors do not matter: the request was sent, which is what wakes the broker threads. */
	rd_kafka_offsets_for_times(consumer->rk, partitions, WAKE_TIMEOUT_MS);
	rd_kafka_topic_partition_list_destroy(partitions);
	pthread_mutex_lock(&consumer->stats_lock);
	consumer->fetch_wakeups++;
	pthread_mutex_unlock(&consumer->stats_lock);
}

static void handle_message(struct worker *worker, const rd_kafka_message_t *message, int64_t now_ms)
{
	if (message->err) {
		if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			count_error(worker->consumer, message->err, rd_kafka_message_errstr(message));
		return;
	}
	fx_ingest_message(worker->ingest, message->payload ? message->payload : "", message->len, now_ms);
	if (worker->consumer->config.durable.start_offset &&
	    fx_ingest_note_offset(worker->ingest, rd_kafka_topic_name(message->rkt), message->partition,
				  message->offset + 1))
		count_error(worker->consumer, RD_KAFKA_RESP_ERR__FAIL, "out of memory noting an offset");
	/* Moving average over about 64 messages, in sixteenths of a byte. */
	int64_t delta = (int64_t)message->len * 16 - (int64_t)worker->message_bytes_avg;
	worker->message_bytes_avg = (uint64_t)((int64_t)worker->message_bytes_avg + delta / 64);
}

/* Takes what the worker's queue holds, up to BATCH_MAX messages, waiting up to POLL_MS only when it is
 * empty. rd_kafka_consume_batch_queue with a timeout waits until the batch is full: with a prefetch bound
 * smaller than BATCH_MAX messages (multi-value messages are ~29 KB) the worker sat idle collecting
 * messages as they were fetched, then counted them all while the full queue held the fetcher, so
 * fetching and counting took turns instead of overlapping. So: what is there now (timeout 0), else wait
 * for one message and take what came with it. @locality the worker thread. */
static ssize_t take_batch(struct worker *worker, rd_kafka_message_t **batch)
{
	ssize_t n = rd_kafka_consume_batch_queue(worker->queue, 0, batch, BATCH_MAX);
	if (n != 0)
		return n;
	batch[0] = rd_kafka_consume_queue(worker->queue, POLL_MS);
	if (!batch[0])
		return 0;
	n = rd_kafka_consume_batch_queue(worker->queue, 0, batch + 1, BATCH_MAX - 1);
	return n < 0 ? 1 : n + 1;
}

static void *worker_main(void *arg)
{
	struct worker *worker = arg;
	struct fx_consumer *consumer = worker->consumer;
	rd_kafka_message_t *batch[BATCH_MAX];
	int64_t last_flush = fx_mono_ms();
	while (!atomic_load(&consumer->stop)) {
		if (atomic_load(&consumer->fenced)) {
			/* Durable mode: the checkpoint made at the revocation must cover all of it. */
			publish(worker, consumer->config.durable.checkpoint != NULL);
			park(consumer);
			continue;
		}
		ssize_t n = take_batch(worker, batch);
		if (n > 0) {
			watch_queue(worker, batch, (size_t)n);
			if (consumer->config.batch_hook)
				consumer->config.batch_hook(consumer->config.batch_hook_opaque,
							    worker->index);
			int64_t now_ms = fx_wall_ms();
			for (ssize_t i = 0; i < n; i++)
				handle_message(worker, batch[i], now_ms);
			if (!consumer->config.partitions_mode)
				store_offsets(worker, batch, (size_t)n);
			for (ssize_t i = 0; i < n; i++)
				rd_kafka_message_destroy(batch[i]);
		}
		if (fx_mono_ms() - last_flush >= consumer->config.flush_ms) {
			publish(worker, false);
			last_flush = fx_mono_ms();
		}
	}
	publish(worker, true);
	/* An exited worker holds no batch: a fence no longer waits for it. */
	pthread_mutex_lock(&consumer->fence_lock);
	consumer->n_parked++;
	pthread_cond_broadcast(&consumer->fence_cond);
	pthread_mutex_unlock(&consumer->fence_lock);
	return NULL;
}

/* The control thread: serves the handle's queue (callbacks: rebalances, errors, statistics), assigns the
 * partitions in partitions mode, wakes the fetchers when a worker asks, and updates the lags. */
static void *control_main(void *arg)
{
	struct fx_consumer *consumer = arg;
	int64_t last_lags = fx_mono_ms(), last_assign_try = 0;
	bool need_assign = consumer->config.partitions_mode;
	while (!atomic_load(&consumer->stop)) {
		if (need_assign && fx_mono_ms() - last_assign_try >= 1000) {
			last_assign_try = fx_mono_ms();
			need_assign = assign_partitions(consumer) != 0;
		}
		rd_kafka_message_t *message = rd_kafka_consumer_poll(consumer->rk, CONTROL_POLL_MS);
		if (message) {
			if (message->err && message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				count_error(consumer, message->err, rd_kafka_message_errstr(message));
			else if (!message->err)
				fx_error("kafka: a message of %s[%d] reached the control queue: not counted",
					 rd_kafka_topic_name(message->rkt), message->partition);
			rd_kafka_message_destroy(message);
		}
		if (atomic_exchange(&consumer->wake_wanted, false))
			wake_fetchers(consumer);
		if (fx_mono_ms() - last_lags >= consumer->config.flush_ms) {
			update_lags(consumer);
			last_lags = fx_mono_ms();
		}
	}
	return NULL;
}

/* Commits the stored offsets and waits for the answer until the deadline. This runs after the workers
 * stopped and before the member leaves the group. */
static void commit_final(struct fx_consumer *consumer, int64_t deadline_ms)
{
	rd_kafka_queue_t *result = rd_kafka_queue_new(consumer->rk);
	rd_kafka_resp_err_t err = rd_kafka_commit_queue(consumer->rk, NULL, result, NULL, NULL);
	if (err) {
		if (err != RD_KAFKA_RESP_ERR__NO_OFFSET)
			fx_warn("kafka: final commit: %s", rd_kafka_err2str(err));
		rd_kafka_queue_destroy(result);
		return;
	}
	while (fx_mono_ms() < deadline_ms) {
		rd_kafka_event_t *event = rd_kafka_queue_poll(result, 50);
		if (!event || rd_kafka_event_type(event) != RD_KAFKA_EVENT_OFFSET_COMMIT) {
			rd_kafka_event_destroy(event);
			continue;
		}
		err = rd_kafka_event_error(event);
		if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
			fx_warn("kafka: final commit failed: %s; the records counted since the last commit "
				"will be read again after a restart",
				rd_kafka_err2str(err));
		else
			fx_debug("kafka: final commit done");
		rd_kafka_event_destroy(event);
		break;
	}
	rd_kafka_queue_destroy(result);
}

/* Closes the consumer (leaving the group, committing once more) and serves its queue until it is closed or
 * the deadline passes, so that shutdown stays bounded when the broker is unreachable. Events, not
 * callbacks: the queue also carries errors and rebalances that have no callback to serve them (librdkafka
 * asserts on those in rd_kafka_queue_poll_callback). A rebalance while closing is answered by dropping the
 * assignment; the workers have stopped, so no fence is needed. */
static void close_handle(struct fx_consumer *consumer, int64_t deadline_ms)
{
	rd_kafka_queue_t *queue = rd_kafka_queue_new(consumer->rk);
	rd_kafka_error_t *error = rd_kafka_consumer_close_queue(consumer->rk, queue);
	if (error) {
		fx_warn("kafka: close: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
	while (!rd_kafka_consumer_closed(consumer->rk) && fx_mono_ms() < deadline_ms) {
		rd_kafka_event_t *event = rd_kafka_queue_poll(queue, 20);
		if (event && rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE) {
			rd_kafka_assign(consumer->rk, NULL);
			unforward_partitions(consumer);
		}
		rd_kafka_event_destroy(event);
	}
	if (!rd_kafka_consumer_closed(consumer->rk))
		fx_warn("kafka: the consumer did not close in time");
	rd_kafka_queue_destroy(queue);
}

struct fx_prefetch fx_consumer_prefetch(uint64_t prefetch_bytes, size_t n_workers)
{
	struct fx_prefetch p = {0};
	if (!prefetch_bytes || !n_workers)
		return p;
	/* Half for the worker queues, a quarter for the fetch response being queued, a quarter for the one
	 * in flight. librdkafka raises fetch.max.bytes to message.max.bytes (1,000,000) by itself. */
	p.fetch_bytes = prefetch_bytes / 4;
	if (p.fetch_bytes > FX_PREFETCH_FETCH_MAX)
		p.fetch_bytes = FX_PREFETCH_FETCH_MAX;
	p.partition_fetch_bytes = p.fetch_bytes < 1048576 ? p.fetch_bytes : 1048576;
	p.queue_kbytes = prefetch_bytes / 2 / n_workers / 1024;
	if (p.queue_kbytes < 1)
		p.queue_kbytes = 1;
	if (p.queue_kbytes > 2097151)
		p.queue_kbytes = 2097151;
	return p;
}

static int create_locks(struct fx_consumer *consumer)
{
	if (pthread_mutex_init(&consumer->stats_lock, NULL))
		return -1;
	if (pthread_mutex_init(&consumer->positions_lock, NULL))
		goto fail_positions;
	if (pthread_mutex_init(&consumer->fence_lock, NULL))
		goto fail_fence;
	if (pthread_cond_init(&consumer->fence_cond, NULL))
		goto fail_cond;
	return 0;
fail_cond:
	pthread_mutex_destroy(&consumer->fence_lock);
fail_fence:
	pthread_mutex_destroy(&consumer->positions_lock);
fail_positions:
	pthread_mutex_destroy(&consumer->stats_lock);
	return -1;
}

/* Reads back what librdkafka will hold: each worker queue's bounds and, in all, the queues plus two fetch
 * responses (the one being queued, the one in flight). */
static void read_bounds(struct fx_consumer *consumer)
{
	rd_kafka_t *rk = consumer->rk;
	consumer->queue_max_messages = (size_t)conf_number(rk, "queued.min.messages", 100000);
	consumer->queue_max_bytes = conf_number(rk, "queued.max.messages.kbytes", 65536) * 1024;
	uint64_t fetch = conf_number(rk, "fetch.max.bytes", 52428800);
	uint64_t message_max = conf_number(rk, "message.max.bytes", 1000000);
	if (fetch < message_max)
		fetch = message_max;
	consumer->prefetch_limit = consumer->queue_max_bytes * consumer->config.n_workers + 2 * fetch;
}

struct fx_consumer *fx_consumer_create(const struct fx_consumer_config *config, char *errstr,
				       size_t errstr_size)
{
	struct fx_consumer *consumer = calloc(1, sizeof(*consumer));
	if (!consumer || (consumer->config = *config, create_locks(consumer))) {
		free(consumer);
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	atomic_init(&consumer->stop, false);
	atomic_init(&consumer->fenced, false);
	atomic_init(&consumer->ready, false);
	atomic_init(&consumer->wake_wanted, false);
	size_t n_positions = config->n_topics * FX_MAX_PARTITIONS;
	consumer->positions = malloc(n_positions * sizeof(*consumer->positions));
	consumer->workers = calloc(config->n_workers, sizeof(*consumer->workers));
	if (!consumer->positions || !consumer->workers) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n_positions; i++)
		consumer->positions[i] = -1;
	consumer->rk = create_handle(consumer, errstr, errstr_size);
	if (!consumer->rk)
		goto fail;
	rd_kafka_poll_set_consumer(consumer->rk);
	consumer->control_queue = rd_kafka_queue_get_consumer(consumer->rk);
	read_bounds(consumer);
	for (size_t i = 0; i < config->n_workers; i++) {
		struct worker *worker = &consumer->workers[i];
		worker->consumer = consumer;
		worker->index = i;
		struct fx_ingest_config counting = config->counting;
		counting.worker = i;
		worker->ingest = fx_ingest_create(&counting);
		worker->queue = rd_kafka_queue_new(consumer->rk);
		if (!worker->ingest || !worker->queue) {
			snprintf(errstr, errstr_size, "out of memory");
			goto fail;
		}
	}
	return consumer;
fail:
	fx_consumer_destroy(consumer);
	return NULL;
}

int fx_consumer_start(struct fx_consumer *consumer)
{
	const struct fx_consumer_config *config = &consumer->config;
	if (!config->partitions_mode) {
		rd_kafka_topic_partition_list_t *topics =
		    rd_kafka_topic_partition_list_new((int)config->n_topics);
		for (size_t t = 0; t < config->n_topics; t++)
			rd_kafka_topic_partition_list_add(topics, config->topics[t], RD_KAFKA_PARTITION_UA);
		rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer->rk, topics);
		rd_kafka_topic_partition_list_destroy(topics);
		if (err) {
			fx_error("kafka: cannot subscribe: %s", rd_kafka_err2str(err));
			return -1;
		}
	}
	for (size_t i = 0; i < config->n_workers; i++) {
		struct worker *worker = &consumer->workers[i];
		if (pthread_create(&worker->thread, NULL, worker_main, worker)) {
			fx_error("kafka: cannot start a consumer thread");
			return -1;
		}
		worker->thread_started = true;
		fx_thread_name(worker->thread, "worker", (long)i);
	}
	if (pthread_create(&consumer->control_thread, NULL, control_main, consumer)) {
		fx_error("kafka: cannot start the consumer's control thread");
		return -1;
	}
	consumer->control_started = true;
	fx_thread_name(consumer->control_thread, "kafka", -1);
	if (config->partitions_mode)
		fx_info("kafka: consuming %s partitions of %zu topic(s) from the newest offset, no consumer "
			"group",
			config->all_partitions ? "all" : "the given", config->n_topics);
	else
		fx_info("kafka: consuming %zu topic(s) in consumer group \"%s\" with %zu worker(s)",
			config->n_topics, config->group, config->n_workers);
	return 0;
}

void fx_consumer_stop(struct fx_consumer *consumer, int64_t timeout_ms)
{
	if (!consumer || consumer->stopped)
		return;
	consumer->stopped = true;
	atomic_store(&consumer->stop, true);
	int64_t deadline = fx_mono_ms() + timeout_ms;
	if (!consumer->workers)
		return;
	/* Wakes a worker parked at a fence; the control thread's fence wait ends with the workers' exits. */
	pthread_mutex_lock(&consumer->fence_lock);
	pthread_cond_broadcast(&consumer->fence_cond);
	pthread_mutex_unlock(&consumer->fence_lock);
	bool started = consumer->control_started;
	for (size_t i = 0; i < consumer->config.n_workers; i++) {
		struct worker *worker = &consumer->workers[i];
		started = started && worker->thread_started;
		if (worker->thread_started)
			pthread_join(worker->thread, NULL);
	}
	if (consumer->control_started)
		pthread_join(consumer->control_thread, NULL);
	/* Every count is handed over before any commit, so the commit covers only counted records. Half the
	 * time for the commit: the close (leaving the group) needs the rest. */
	if (started && consumer->config.durable.checkpoint) {
		if (consumer->config.durable.checkpoint(consumer->config.durable.opaque))
			fx_warn("kafka: the final checkpoint was not committed: a restart reads the records "
				"since the last committed one again (counted once)");
	} else if (started && !consumer->config.partitions_mode) {
		commit_final(consumer, fx_mono_ms() + timeout_ms / 2);
	}
	if (started)
		close_handle(consumer, deadline);
	unforward_partitions(consumer);
	/* The handle goes; the statistics stay for the last snapshots (the final push). */
	for (size_t i = 0; i < consumer->config.n_workers; i++) {
		struct worker *worker = &consumer->workers[i];
		if (worker->queue)
			rd_kafka_queue_destroy(worker->queue);
		worker->queue = NULL;
		fx_ingest_destroy(worker->ingest);
		worker->ingest = NULL;
	}
	if (consumer->control_queue)
		rd_kafka_queue_destroy(consumer->control_queue);
	consumer->control_queue = NULL;
	if (consumer->rk)
		rd_kafka_destroy_flags(consumer->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	consumer->rk = NULL;
}

void fx_consumer_destroy(struct fx_consumer *consumer)
{
	if (!consumer)
		return;
	fx_consumer_stop(consumer, 0);
	free(consumer->workers);
	free(consumer->positions);
	free(consumer->assigned);
	pthread_mutex_destroy(&consumer->stats_lock);
	pthread_mutex_destroy(&consumer->positions_lock);
	pthread_mutex_destroy(&consumer->fence_lock);
	pthread_cond_destroy(&consumer->fence_cond);
	free(consumer);
}

bool fx_consumer_ready(const struct fx_consumer *consumer)
{
	return atomic_load(&consumer->ready);
}

static int add_kind(struct fx_family_list *out, const struct fx_ingest_stats *sum, enum fx_record_kind kind)
{
	struct fx_label reason = {"reason", fx_record_kind_name(kind)};
	return fx_family_add_u64(out, sum->records[kind], 1, &reason);
}

/* The record families. @locks stats_lock held. */
static int collect_records(struct fx_consumer *consumer, uint64_t store_refused, struct fx_family_list *out)
{
	struct fx_ingest_stats sum = {0};
	for (size_t i = 0; i < consumer->config.n_workers; i++) {
		const struct fx_ingest_stats *s = &consumer->workers[i].stats;
		sum.messages += s->messages;
		for (int k = 0; k < FX_REC_KIND_COUNT; k++)
			sum.records[k] += s->records[k];
		sum.counted += s->counted;
		sum.not_local += s->not_local;
		sum.refused_series_limit += s->refused_series_limit;
		sum.refused_hostname_limit += s->refused_hostname_limit;
	}
	uint64_t records = 0;
	for (int k = 0; k < FX_REC_KIND_COUNT; k++)
		records += sum.records[k];

	if (fx_family_begin(out, "flow_exporter_kafka_messages_total", "Kafka messages consumed.",
			    FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, sum.messages, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_records_total", "pmacct records read from Kafka messages.",
			    FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, records, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_records_counted_total",
			    "Flow records added to a consumer thread's counters.", FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, sum.counted, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_records_invalid_total",
			    "Records that could not be counted, by reason.", FX_METRIC_COUNTER))
		return -1;
	for (int k = FX_REC_FIRST_INVALID; k < FX_REC_KIND_COUNT; k++)
		if (add_kind(out, &sum, (enum fx_record_kind)k))
			return -1;
	const struct fx_label not_local = {"reason", "not_local"};
	const struct fx_label series_limit_consumer[2] = {{"reason", "series_limit"}, {"stage", "consumer"}};
	const struct fx_label series_limit_store[2] = {{"reason", "series_limit"}, {"stage", "store"}};
	const struct fx_label hostname_limit[2] = {{"reason", "hostname_limit"}, {"stage", "consumer"}};
	if (fx_family_begin(
		out, "flow_exporter_records_ignored_total",
		"Records skipped on purpose: pmacct markers, other events, and flows with no local AS.",
		FX_METRIC_COUNTER) ||
	    add_kind(out, &sum, FX_REC_MARKER) || add_kind(out, &sum, FX_REC_OTHER_EVENT) ||
	    fx_family_add_u64(out, sum.not_local, 1, &not_local) ||
	    fx_family_begin(
		out, "flow_exporter_records_dropped_total",
		"Flow records refused by a limit (--max-series, or too many hostnames), by stage: a "
		"consumer thread's table, or later the cumulative table (stage=\"store\": such records "
		"are in flow_exporter_records_counted_total too).",
		FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, sum.refused_series_limit, 2, series_limit_consumer) ||
	    fx_family_add_u64(out, store_refused, 2, series_limit_store) ||
	    fx_family_add_u64(out, sum.refused_hostname_limit, 2, hostname_limit))
		return -1;
	return 0;
}

/* The Kafka families. @locks stats_lock held. */
static int collect_kafka(struct fx_consumer *consumer, struct fx_family_list *out)
{
	if (fx_family_begin(out, "flow_exporter_kafka_errors_total",
			    "Kafka errors, by librdkafka error name.", FX_METRIC_COUNTER))
		return -1;
	for (size_t i = 0; i < consumer->n_errors; i++) {
		struct fx_label error = {"error", rd_kafka_err2name(consumer->errors[i].err)};
		if (fx_family_add_u64(out, consumer->errors[i].count, 1, &error))
			return -1;
	}
	if (fx_family_begin(out, "flow_exporter_kafka_consumer_lag",
			    "Messages between the consumer's position and the partition's high watermark.",
			    FX_METRIC_GAUGE))
		return -1;
	for (size_t i = 0; i < consumer->n_assigned; i++) {
		const struct assigned *a = &consumer->assigned[i];
		if (a->lag < 0)
			continue;
		char partition[16];
		snprintf(partition, sizeof(partition), "%d", a->partition);
		struct fx_label labels[2] = {{"partition", partition}, {"topic", a->topic}};
		if (fx_family_add_u64(out, (uint64_t)a->lag, 2, labels))
			return -1;
	}
	if (fx_family_begin(out, "flow_exporter_kafka_assigned_partitions",
			    "Kafka partitions this process reads now.", FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, consumer->n_assigned, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_kafka_queued_bytes",
			    "Bytes of fetched messages librdkafka holds for the consumer threads (statistics "
			    "callback, every second).",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, consumer->queued_bytes, 0, NULL) ||
	    fx_family_begin(
		out, "flow_exporter_kafka_queued_messages",
		"Fetched messages librdkafka holds for the consumer threads (statistics callback).",
		FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, consumer->queued_messages, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_kafka_fetch_requests_total",
			    "Fetch requests sent to the brokers (statistics callback).", FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, consumer->fetch_requests, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_kafka_fetch_wakeups_total",
			    "Times a consumer thread woke librdkafka's fetcher after its queue drained.",
			    FX_METRIC_COUNTER) ||
	    fx_family_add_u64(out, consumer->fetch_wakeups, 0, NULL) ||
	    fx_family_begin(out, "flow_exporter_kafka_prefetch_bytes_limit",
			    "What librdkafka may hold of fetched messages in all, from its settings: the "
			    "consumer threads' queues (queued.max.messages.kbytes each) and two fetch "
			    "responses (fetch.max.bytes).",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, consumer->prefetch_limit, 0, NULL))
		return -1;
	return 0;
}

int fx_consumer_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_consumer *consumer = opaque;
	uint64_t store_refused = fx_store_refused_records(consumer->config.counting.store);
	pthread_mutex_lock(&consumer->stats_lock);
	int rc = collect_records(consumer, store_refused, out) || collect_kafka(consumer, out) ? -1 : 0;
	pthread_mutex_unlock(&consumer->stats_lock);
	return rc;
}

/* ---- Durable mode: explicit commits of checkpointed offsets ---- */

/* Whether the group already has every offset of `offsets` (0), or some is behind ours (-1: those counts are
 * not the group's, so they must not be exposed yet). */
static int unowned_committed(struct fx_consumer *consumer, const struct fx_partition_offset *offsets,
			     size_t n)
{
	struct fx_partition_offset *theirs = malloc((n ? n : 1) * sizeof(*theirs));
	if (!theirs)
		return -1;
	memcpy(theirs, offsets, n * sizeof(*theirs));
	int rc = fx_consumer_committed(consumer, theirs, n, 5000);
	for (size_t i = 0; i < n && !rc; i++)
		if (theirs[i].next < offsets[i].next)
			rc = -1;
	free(theirs);
	return rc;
}

/* Splits `offsets` into the assigned ones, as a list to commit (*mine, NULL when none), and the others,
 * copied to unowned. Returns the number of unowned ones, or -1 when the assignment cannot be read. */
static ssize_t split_assigned(struct fx_consumer *consumer, const struct fx_partition_offset *offsets,
			      size_t n, rd_kafka_topic_partition_list_t **mine,
			      struct fx_partition_offset *unowned)
{
	rd_kafka_topic_partition_list_t *assignment = NULL;
	*mine = NULL;
	if (rd_kafka_assignment(consumer->rk, &assignment) || !assignment)
		return -1;
	size_t n_unowned = 0;
	for (size_t i = 0; i < n; i++) {
		if (!rd_kafka_topic_partition_list_find(assignment, offsets[i].topic, offsets[i].partition)) {
			unowned[n_unowned++] = offsets[i];
			continue;
		}
		if (!*mine)
			*mine = rd_kafka_topic_partition_list_new((int)n);
		rd_kafka_topic_partition_list_add(*mine, offsets[i].topic, offsets[i].partition)->offset =
		    offsets[i].next;
	}
	rd_kafka_topic_partition_list_destroy(assignment);
	return (ssize_t)n_unowned;
}

int fx_consumer_commit(struct fx_consumer *consumer, const struct fx_partition_offset *offsets, size_t n)
{
	if (!consumer->rk)
		return -1;
	struct fx_partition_offset *unowned = malloc((n ? n : 1) * sizeof(*unowned));
	if (!unowned)
		return -1;
	rd_kafka_topic_partition_list_t *mine = NULL;
	ssize_t n_unowned = split_assigned(consumer, offsets, n, &mine, unowned);
	int rc = n_unowned < 0 ? -1 : 0;
	if (n_unowned > 0 && unowned_committed(consumer, unowned, (size_t)n_unowned))
		rc = -1;
	free(unowned);
	if (!mine)
		return rc;
	rd_kafka_resp_err_t err = rd_kafka_commit(consumer->rk, mine, 0);
	for (int i = 0; !err && i < mine->cnt; i++)
		err = mine->elems[i].err;
	if (err) {
		count_error(consumer, err, "cannot commit the checkpointed offsets");
		rc = -1;
	}
	rd_kafka_topic_partition_list_destroy(mine);
	return rc;
}

int fx_consumer_committed(struct fx_consumer *consumer, struct fx_partition_offset *offsets, size_t n,
			  int timeout_ms)
{
	if (!consumer->rk)
		return -1;
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(list, offsets[i].topic, offsets[i].partition);
	rd_kafka_resp_err_t err = rd_kafka_committed(consumer->rk, list, timeout_ms);
	for (size_t i = 0; i < n && !err; i++) {
		const rd_kafka_topic_partition_t *p = &list->elems[i];
		offsets[i].next = p->err || p->offset < 0 ? -1 : p->offset;
	}
	rd_kafka_topic_partition_list_destroy(list);
	if (err)
		fx_warn("kafka: cannot read the group's committed offsets: %s", rd_kafka_err2str(err));
	return err ? -1 : 0;
}
