/* Step (1): librdkafka consumer threads.
 *
 * DESIGN
 * Each worker thread owns one rd_kafka_t consumer and one fx_ingest. In group mode every worker is a member
 * of the consumer group, so Kafka spreads the partitions over the workers (and over other processes in the
 * same group). In the Go program's mode (--partitions) the partitions are dealt out to the workers
 * round-robin and assigned at the newest offset, with no group and no commits.
 *
 * A worker reads batches of messages, counts each one into its delta table, and only then stores the
 * offsets (enable.auto.offset.store=false), so the periodic auto-commit and the commit made when the
 * consumer closes or loses partitions never cover a message that was not counted. Every flush interval the
 * worker hands its delta to the store and publishes its statistics (under `stats_lock`, once per flush).
 *
 * librdkafka serves its callbacks (errors, rebalances) from the worker's own consume call
 * (rd_kafka_poll_set_consumer), so they run on the worker thread. Logs may come from librdkafka's threads
 * and go through fx_log, which is thread-safe. Errors after startup are logged and counted, never fatal:
 * librdkafka reconnects by itself when a broker comes back. */
#include "fx/consumer.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fx/clock.h"
#include "fx/log.h"

#define BATCH_MAX 1024
#define POLL_MS 100
#define MAX_ERROR_KINDS 32
/* How long a fetch wake-up waits (see watch_queue): the request only has to be sent, not answered. */
#define WAKE_TIMEOUT_MS 1

struct partition_lag {
	const char *topic; /* one of config.topics */
	int32_t partition;
	int64_t lag; /* -1: unknown yet */
};

struct worker {
	struct fx_consumer *consumer;
	size_t index;
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;
	struct fx_ingest *ingest;
	pthread_t thread;
	bool thread_started;
	rd_kafka_topic_partition_list_t *assignment; /* owned by the worker thread */
	struct fx_ratelimit error_log;

	/* Fetch wake-up (see wake_fetchers): this handle's prefetch bounds, an estimate of what is queued,
	 * and whether the queue reached a bound since the last wake-up. Worker thread only. */
	size_t queue_max_messages;
	uint64_t queue_max_bytes;
	uint64_t message_bytes_avg; /* moving average of message sizes, in bytes * 16 */
	bool fetch_held;

	/* Published under consumer->stats_lock. */
	struct fx_ingest_stats stats;
	struct partition_lag *lags;
	size_t n_lags;
	/* Whether the worker has partitions now: written under stats_lock, read without it by
	 * fx_consumer_ready. */
	atomic_bool assigned;
};

struct error_count {
	rd_kafka_resp_err_t err;
	uint64_t count;
};

struct fx_consumer {
	struct fx_consumer_config config;
	struct worker *workers;
	atomic_bool stop;
	pthread_mutex_t stats_lock; /* guards the workers' published fields and errors[] */
	struct error_count errors[MAX_ERROR_KINDS];
	size_t n_errors;
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
 * counting it. The committed offset wins when another process counted further and committed. Returns the
 * partitions where ours is ahead of the commit (NULL if none): their offsets must be stored again on this
 * handle once assigned, or a partition with nothing new to read would never have its counted position
 * committed by its new owner. */
static rd_kafka_topic_partition_list_t *resume_positions(struct worker *worker,
							 rd_kafka_topic_partition_list_t *partitions)
{
	struct fx_consumer *consumer = worker->consumer;
	rd_kafka_topic_partition_list_t *ahead = NULL;
	rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(partitions);
	if (rd_kafka_committed(worker->rk, committed, 5000))
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

/* @locality any thread. */
static void count_error(struct worker *worker, rd_kafka_resp_err_t err, const char *reason)
{
	struct fx_consumer *consumer = worker->consumer;
	pthread_mutex_lock(&consumer->stats_lock);
	size_t i = 0;
	while (i < consumer->n_errors && consumer->errors[i].err != err)
		i++;
	if (i == consumer->n_errors && consumer->n_errors < MAX_ERROR_KINDS)
		consumer->errors[consumer->n_errors++] = (struct error_count){err, 0};
	if (i < consumer->n_errors)
		consumer->errors[i].count++;
	uint64_t suppressed = 0;
	bool log = fx_ratelimit_allow(&worker->error_log, fx_mono_ms(), &suppressed);
	pthread_mutex_unlock(&consumer->stats_lock);
	if (log)
		fx_warn("kafka: %s: %s%s", rd_kafka_err2name(err), reason,
			suppressed ? " (similar errors were not logged)" : "");
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

static void set_assignment(struct worker *worker, const rd_kafka_topic_partition_list_t *partitions)
{
	if (worker->assignment)
		rd_kafka_topic_partition_list_destroy(worker->assignment);
	worker->assignment = partitions ? rd_kafka_topic_partition_list_copy(partitions) : NULL;
	size_t n = partitions ? (size_t)partitions->cnt : 0;
	struct partition_lag *lags = n ? calloc(n, sizeof(*lags)) : NULL;
	size_t n_lags = 0;
	for (size_t i = 0; lags && i < n; i++) {
		const char *topic = topic_of(worker->consumer, partitions->elems[i].topic);
		if (topic)
			lags[n_lags++] = (struct partition_lag){topic, partitions->elems[i].partition, -1};
	}
	pthread_mutex_lock(&worker->consumer->stats_lock);
	free(worker->lags);
	worker->lags = lags;
	worker->n_lags = n_lags;
	atomic_store(&worker->assigned, n > 0);
	pthread_mutex_unlock(&worker->consumer->stats_lock);
}

/* Durable mode: the counts of the partitions going away are handed over and checkpointed, and their
 * offsets committed, before their new owner starts from the group's offset. @locality the worker thread. */
static void checkpoint_before_revoke(struct worker *worker)
{
	const struct fx_consumer_durable *durable = &worker->consumer->config.durable;
	if (!durable->checkpoint)
		return;
	while (!fx_ingest_flush(worker->ingest))
		fx_store_tick(worker->consumer->config.counting.store);
	if (durable->checkpoint(durable->opaque))
		fx_warn("kafka: worker %zu: the checkpoint at the revocation failed: the new owner of its "
			"partitions may count records this process counted since the last checkpoint",
			worker->index);
}

/* @locality the worker thread (served from its consume call). Offsets of counted messages were stored
 * before this runs; librdkafka commits them when the partitions are revoked (auto-commit is on). */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *partitions,
			 void *opaque)
{
	struct worker *worker = opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		fx_info("kafka: worker %zu assigned %d partition(s)", worker->index, partitions->cnt);
		rd_kafka_topic_partition_list_t *ahead = resume_positions(worker, partitions);
		rd_kafka_assign(rk, partitions);
		if (ahead) {
			rd_kafka_resp_err_t store_err = rd_kafka_offsets_store(rk, ahead);
			if (store_err)
				count_error(worker, store_err, "cannot store the resumed offsets");
			rd_kafka_topic_partition_list_destroy(ahead);
		}
		set_assignment(worker, partitions);
	} else {
		if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
			count_error(worker, err, "rebalance failed");
		fx_info("kafka: worker %zu lost %d partition(s)", worker->index, partitions->cnt);
		checkpoint_before_revoke(worker);
		rd_kafka_assign(rk, NULL);
		set_assignment(worker, NULL);
	}
}

static rd_kafka_t *create_handle(struct worker *worker, char *errstr, size_t errstr_size)
{
	const struct fx_consumer_config *config = &worker->consumer->config;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char client_id[64];
	snprintf(client_id, sizeof(client_id), "flow-exporter-%zu", worker->index);
	struct {
		const char *key, *value;
	} ours[] = {
	    {"bootstrap.servers", config->brokers},
	    {"client.id", client_id},
	    {"enable.auto.commit", config->partitions_mode || config->durable.start_offset ? "false" : "true"},
	    {"enable.auto.offset.store", "false"},
	    /* librdkafka needs a group.id for assign() too; without subscribe() no group is joined. */
	    {"group.id", config->group},
	};
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
		if (ours[i].value && rd_kafka_conf_set(conf, ours[i].key, ours[i].value, errstr,
						       errstr_size) != RD_KAFKA_CONF_OK)
			goto fail;
	}
	/* The operator's settings come last, so any of ours can be overridden. */
	for (size_t i = 0; i < config->n_kafka_opts; i++) {
		char key[256];
		const char *opt = config->kafka_opts[i];
		const char *eq = strchr(opt, '=');
		size_t len = eq ? (size_t)(eq - opt) : 0;
		if (!eq || len >= sizeof(key)) {
			snprintf(errstr, errstr_size, "--kafka-opt \"%s\": expected key=value", opt);
			goto fail;
		}
		memcpy(key, opt, len);
		key[len] = '\0';
		char why[256];
		if (rd_kafka_conf_set(conf, key, eq + 1, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
			snprintf(errstr, errstr_size, "--kafka-opt %s: %s", key, why);
			goto fail;
		}
	}
	rd_kafka_conf_set_opaque(conf, worker);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_log_cb(conf, on_log);
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

/* Partitions mode: this worker's share, every n-th (topic, partition) pair, at the newest offset. */
static rd_kafka_topic_partition_list_t *partition_share(struct worker *worker, const int32_t *partitions,
							size_t n_partitions, size_t topic_index)
{
	const struct fx_consumer_config *config = &worker->consumer->config;
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n_partitions);
	for (size_t i = 0; i < n_partitions; i++) {
		if ((topic_index * n_partitions + i) % config->n_workers != worker->index)
			continue;
		rd_kafka_topic_partition_t *p =
		    rd_kafka_topic_partition_list_add(list, config->topics[topic_index], partitions[i]);
		p->offset = RD_KAFKA_OFFSET_END;
	}
	return list;
}

/* Partitions mode with "all": the partition numbers of topic t from the metadata. Returns 0, or -1 (counted)
 * when the metadata does not have the topic yet. */
static int list_partitions(struct worker *worker, size_t t, int32_t *ids, size_t *n)
{
	rd_kafka_topic_t *topic = rd_kafka_topic_new(worker->rk, worker->consumer->config.topics[t], NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t err = rd_kafka_metadata(worker->rk, 0, topic, &md, 2000);
	rd_kafka_topic_destroy(topic);
	if (!err && md->topic_cnt == 1)
		err = md->topics[0].err;
	if (err || md->topic_cnt != 1) {
		count_error(worker, err, "cannot list the topic's partitions yet; retrying");
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
 * else p's offset (the newest). Counts the resumed ones in *resumed. */
static int64_t manual_start(const struct worker *worker, const rd_kafka_topic_partition_t *p, int *resumed)
{
	const struct fx_consumer_durable *durable = &worker->consumer->config.durable;
	int64_t restored =
	    durable->start_offset ? durable->start_offset(durable->opaque, p->topic, p->partition) : -1;
	if (restored < 0)
		return p->offset;
	fx_debug("kafka: %s[%d] resumes at offset %lld (checkpoint)", p->topic, p->partition,
		 (long long)restored);
	(*resumed)++;
	return restored;
}

/* Partitions mode: assigns this worker's share of every topic at the newest offset, or where the restored
 * checkpoint stops. Returns 0, or -1 to be tried again later. */
static int assign_partitions(struct worker *worker)
{
	const struct fx_consumer_config *config = &worker->consumer->config;
	rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(16);
	int resumed = 0;
	for (size_t t = 0; t < config->n_topics; t++) {
		rd_kafka_topic_partition_list_t *share;
		if (config->all_partitions) {
			int32_t ids[FX_MAX_PARTITIONS];
			size_t n;
			if (list_partitions(worker, t, ids, &n)) {
				rd_kafka_topic_partition_list_destroy(all);
				return -1;
			}
			share = partition_share(worker, ids, n, t);
		} else {
			share = partition_share(worker, config->partitions, config->n_partitions, t);
		}
		for (int i = 0; i < share->cnt; i++)
			rd_kafka_topic_partition_list_add(all, share->elems[i].topic,
							  share->elems[i].partition)
			    ->offset = manual_start(worker, &share->elems[i], &resumed);
		rd_kafka_topic_partition_list_destroy(share);
	}
	rd_kafka_resp_err_t err = rd_kafka_assign(worker->rk, all);
	if (err)
		count_error(worker, err, "cannot assign partitions");
	else {
		fx_info("kafka: worker %zu reads %d partition(s): %d where the checkpoint stops, the others "
			"from the newest offset",
			worker->index, all->cnt, resumed);
		set_assignment(worker, all);
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
	rd_kafka_resp_err_t err = rd_kafka_offsets_store(worker->rk, offsets);
	if (err && err != RD_KAFKA_RESP_ERR__STATE) /* _STATE: the partition was revoked meanwhile */
		count_error(worker, err, "cannot store offsets");
	rd_kafka_topic_partition_list_destroy(offsets);
	if (rest < n)
		store_offsets(worker, batch + rest, n - rest);
}

static void update_lags(struct worker *worker)
{
	if (!worker->assignment || worker->assignment->cnt == 0)
		return;
	rd_kafka_topic_partition_list_t *positions = rd_kafka_topic_partition_list_copy(worker->assignment);
	rd_kafka_position(worker->rk, positions);
	pthread_mutex_lock(&worker->consumer->stats_lock);
	for (size_t i = 0; i < worker->n_lags; i++) {
		struct partition_lag *lag = &worker->lags[i];
		rd_kafka_topic_partition_t *p =
		    rd_kafka_topic_partition_list_find(positions, lag->topic, lag->partition);
		int64_t low, high;
		if (!p || p->offset < 0 ||
		    rd_kafka_get_watermark_offsets(worker->rk, lag->topic, lag->partition, &low, &high) ||
		    high < 0)
			continue;
		lag->lag = high > p->offset ? high - p->offset : 0;
	}
	pthread_mutex_unlock(&worker->consumer->stats_lock);
	rd_kafka_topic_partition_list_destroy(positions);
}

static void publish(struct worker *worker, bool final)
{
	/* At the end every count must reach the store before the consumer commits on close. */
	while (!fx_ingest_flush(worker->ingest) && final)
		fx_store_tick(worker->consumer->config.counting.store);
	update_lags(worker);
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

/* librdkafka 2.0.2 stops fetching while the consumer queue holds queued.min.messages messages or
 * queued.max.messages.kbytes, and its broker threads look at the queue again only when something wakes
 * them: a network event, an operation, or a 1 s timer. A worker that drains the queue faster than 1 s
 * therefore waits for nothing (a backlog was read at a third of the rate the transport allows). So when
 * the queue has reached a bound and been drained to half of it, the worker wakes the broker threads with
 * a ListOffsets request for its partitions (sent to every leader), while half a queue of messages still
 * keeps it busy. Sending the request is what wakes them, so the worker waits WAKE_TIMEOUT_MS, not for the
 * answer (librdkafka drops an answer that comes after its caller gave up): waiting for the round trip
 * held 100-record messages at 1.9 M records/s instead of 2.3 M in tests/bench. librdkafka 2.1 made this
 * backoff tunable (fetch.queue.backoff.ms).
 * @locality the worker thread. */
static void watch_queue(struct worker *worker)
{
	uint64_t queued = rd_kafka_queue_length(worker->queue);
	uint64_t queued_bytes = queued * worker->message_bytes_avg / 16;
	/* Margins: the queue is sampled once a batch, so a peak may fall between two samples. */
	if (queued + BATCH_MAX >= worker->queue_max_messages ||
	    queued_bytes + queued_bytes / 8 >= worker->queue_max_bytes) {
		worker->fetch_held = true;
		return;
	}
	if (!worker->fetch_held || queued > worker->queue_max_messages / 2 ||
	    queued_bytes > worker->queue_max_bytes / 2 || !worker->assignment || worker->assignment->cnt == 0)
		return;
	worker->fetch_held = false;
	rd_kafka_topic_partition_list_t *partitions = rd_kafka_topic_partition_list_copy(worker->assignment);
	for (int i = 0; i < partitions->cnt; i++)
		partitions->elems[i].offset = RD_KAFKA_OFFSET_END;
	/* Errors do not matter: the request was sent, which is what wakes the broker threads. */
	rd_kafka_offsets_for_times(worker->rk, partitions, WAKE_TIMEOUT_MS);
	rd_kafka_topic_partition_list_destroy(partitions);
}

static void handle_message(struct worker *worker, const rd_kafka_message_t *message, int64_t now_ms)
{
	if (message->err) {
		if (message->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			count_error(worker, message->err, rd_kafka_message_errstr(message));
		return;
	}
	fx_ingest_message(worker->ingest, message->payload ? message->payload : "", message->len, now_ms);
	if (worker->consumer->config.durable.start_offset &&
	    fx_ingest_note_offset(worker->ingest, rd_kafka_topic_name(message->rkt), message->partition,
				  message->offset + 1))
		count_error(worker, RD_KAFKA_RESP_ERR__FAIL, "out of memory noting an offset");
	/* Moving average over about 64 messages, in sixteenths of a byte. */
	int64_t delta = (int64_t)message->len * 16 - (int64_t)worker->message_bytes_avg;
	worker->message_bytes_avg = (uint64_t)((int64_t)worker->message_bytes_avg + delta / 64);
}

/* Commits the stored offsets of every worker at once and waits for the answers until the deadline. This
 * runs after the workers stopped and before any of them leaves the group: a member leaving starts a
 * rebalance, during which the other members' commits would be refused. */
static void commit_all(struct fx_consumer *consumer, int64_t deadline_ms)
{
	size_t n = consumer->config.n_workers;
	rd_kafka_queue_t **results = calloc(n, sizeof(*results));
	if (!results)
		return;
	for (size_t i = 0; i < n; i++) {
		struct worker *worker = &consumer->workers[i];
		results[i] = rd_kafka_queue_new(worker->rk);
		rd_kafka_resp_err_t err = rd_kafka_commit_queue(worker->rk, NULL, results[i], NULL, NULL);
		if (err) {
			if (err != RD_KAFKA_RESP_ERR__NO_OFFSET)
				fx_warn("kafka: worker %zu: final commit: %s", i, rd_kafka_err2str(err));
			rd_kafka_queue_destroy(results[i]);
			results[i] = NULL;
		}
	}
	for (size_t i = 0; i < n; i++) {
		while (results[i] && fx_mono_ms() < deadline_ms) {
			rd_kafka_event_t *event = rd_kafka_queue_poll(results[i], 50);
			if (!event || rd_kafka_event_type(event) != RD_KAFKA_EVENT_OFFSET_COMMIT) {
				rd_kafka_event_destroy(event);
				continue;
			}
			rd_kafka_resp_err_t err = rd_kafka_event_error(event);
			if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
				fx_warn("kafka: worker %zu: final commit failed: %s; the records counted "
					"since the last "
					"commit will be read again after a restart",
					i, rd_kafka_err2str(err));
			else
				fx_debug("kafka: worker %zu: final commit done", i);
			rd_kafka_event_destroy(event);
			break;
		}
		if (results[i])
			rd_kafka_queue_destroy(results[i]);
	}
	free(results);
}

/* Serves one event of a closing consumer's queue. Events, not callbacks: the queue also carries errors and
 * rebalances that have no callback to serve them (librdkafka asserts on those in
 * rd_kafka_queue_poll_callback). A rebalance while closing is answered by dropping the assignment. */
static void serve_close_queue(struct worker *worker, rd_kafka_queue_t *queue)
{
	rd_kafka_event_t *event = rd_kafka_queue_poll(queue, 20);
	if (!event)
		return;
	if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE) {
		rd_kafka_assign(worker->rk, NULL);
		set_assignment(worker, NULL);
	}
	rd_kafka_event_destroy(event);
}

/* Closes every consumer at once (leaving the group, committing once more) and serves their queues until
 * all are closed or the deadline passes, so that shutdown stays bounded when the broker is unreachable. */
static void close_all(struct fx_consumer *consumer, int64_t deadline_ms)
{
	size_t n = consumer->config.n_workers;
	rd_kafka_queue_t **queues = calloc(n, sizeof(*queues));
	if (!queues)
		return;
	for (size_t i = 0; i < n; i++) {
		struct worker *worker = &consumer->workers[i];
		queues[i] = rd_kafka_queue_new(worker->rk);
		rd_kafka_error_t *error = rd_kafka_consumer_close_queue(worker->rk, queues[i]);
		if (error) {
			fx_warn("kafka: worker %zu: close: %s", i, rd_kafka_error_string(error));
			rd_kafka_error_destroy(error);
		}
	}
	for (bool open = true; open && fx_mono_ms() < deadline_ms;) {
		open = false;
		for (size_t i = 0; i < n; i++) {
			if (!rd_kafka_consumer_closed(consumer->workers[i].rk)) {
				open = true;
				serve_close_queue(&consumer->workers[i], queues[i]);
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!rd_kafka_consumer_closed(consumer->workers[i].rk))
			fx_warn("kafka: worker %zu: the consumer did not close in time", i);
		rd_kafka_queue_destroy(queues[i]);
	}
	free(queues);
}

static void *worker_main(void *arg)
{
	struct worker *worker = arg;
	struct fx_consumer *consumer = worker->consumer;
	rd_kafka_message_t *batch[BATCH_MAX];
	int64_t last_flush = fx_mono_ms();
	int64_t last_assign_try = 0;
	bool need_assign = consumer->config.partitions_mode;
	while (!atomic_load(&consumer->stop)) {
		if (need_assign && fx_mono_ms() - last_assign_try >= 1000) {
			last_assign_try = fx_mono_ms();
			need_assign = assign_partitions(worker) != 0;
		}
		ssize_t n = rd_kafka_consume_batch_queue(worker->queue, POLL_MS, batch, BATCH_MAX);
		if (n > 0) {
			int64_t now_ms = fx_wall_ms();
			for (ssize_t i = 0; i < n; i++)
				handle_message(worker, batch[i], now_ms);
			if (!consumer->config.partitions_mode)
				store_offsets(worker, batch, (size_t)n);
			for (ssize_t i = 0; i < n; i++)
				rd_kafka_message_destroy(batch[i]);
			watch_queue(worker);
		}
		if (fx_mono_ms() - last_flush >= consumer->config.flush_ms) {
			publish(worker, false);
			last_flush = fx_mono_ms();
		}
	}
	publish(worker, true);
	return NULL;
}

struct fx_consumer *fx_consumer_create(const struct fx_consumer_config *config, char *errstr,
				       size_t errstr_size)
{
	struct fx_consumer *consumer = calloc(1, sizeof(*consumer));
	if (!consumer) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	consumer->config = *config;
	/* The locks first: destroy, on the failure path below, needs them. */
	if (pthread_mutex_init(&consumer->stats_lock, NULL)) {
		free(consumer);
		snprintf(errstr, errstr_size, "cannot create a lock");
		return NULL;
	}
	if (pthread_mutex_init(&consumer->positions_lock, NULL)) {
		pthread_mutex_destroy(&consumer->stats_lock);
		free(consumer);
		snprintf(errstr, errstr_size, "cannot create a lock");
		return NULL;
	}
	atomic_init(&consumer->stop, false);
	size_t n_positions = config->n_topics * FX_MAX_PARTITIONS;
	consumer->positions = malloc(n_positions * sizeof(*consumer->positions));
	if (!consumer->positions) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n_positions; i++)
		consumer->positions[i] = -1;
	consumer->workers = calloc(config->n_workers, sizeof(*consumer->workers));
	if (!consumer->workers) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < config->n_workers; i++) {
		struct worker *worker = &consumer->workers[i];
		worker->consumer = consumer;
		worker->index = i;
		struct fx_ingest_config counting = config->counting;
		counting.worker = i;
		worker->ingest = fx_ingest_create(&counting);
		if (!worker->ingest) {
			snprintf(errstr, errstr_size, "out of memory");
			goto fail;
		}
		worker->rk = create_handle(worker, errstr, errstr_size);
		if (!worker->rk)
			goto fail;
		rd_kafka_poll_set_consumer(worker->rk);
		worker->queue = rd_kafka_queue_get_consumer(worker->rk);
		worker->queue_max_messages = (size_t)conf_number(worker->rk, "queued.min.messages", 100000);
		worker->queue_max_bytes = conf_number(worker->rk, "queued.max.messages.kbytes", 65536) * 1024;
	}
	return consumer;
fail:
	fx_consumer_destroy(consumer);
	return NULL;
}

int fx_consumer_start(struct fx_consumer *consumer)
{
	const struct fx_consumer_config *config = &consumer->config;
	for (size_t i = 0; i < config->n_workers; i++) {
		struct worker *worker = &consumer->workers[i];
		if (!config->partitions_mode) {
			rd_kafka_topic_partition_list_t *topics =
			    rd_kafka_topic_partition_list_new((int)config->n_topics);
			for (size_t t = 0; t < config->n_topics; t++)
				rd_kafka_topic_partition_list_add(topics, config->topics[t],
								  RD_KAFKA_PARTITION_UA);
			rd_kafka_resp_err_t err = rd_kafka_subscribe(worker->rk, topics);
			rd_kafka_topic_partition_list_destroy(topics);
			if (err) {
				fx_error("kafka: cannot subscribe: %s", rd_kafka_err2str(err));
				return -1;
			}
		}
		if (pthread_create(&worker->thread, NULL, worker_main, worker)) {
			fx_error("kafka: cannot start a consumer thread");
			return -1;
		}
		worker->thread_started = true;
	}
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
	for (size_t i = 0; i < consumer->config.n_workers; i++) {
		struct worker *worker = &consumer->workers[i];
		if (worker->thread_started)
			pthread_join(worker->thread, NULL);
	}
	/* Every count is handed over before any commit, so the commit covers only counted records. */
	bool started = consumer->workers[consumer->config.n_workers - 1].thread_started;
	/* Half the time for the commit: the close (leaving the group) needs the rest. */
	if (started && consumer->config.durable.checkpoint) {
		if (consumer->config.durable.checkpoint(consumer->config.durable.opaque))
			fx_warn("kafka: the final checkpoint was not committed: a restart reads the records since "
				"the last committed one again (counted once)");
	} else if (started && !consumer->config.partitions_mode) {
		commit_all(consumer, fx_mono_ms() + timeout_ms / 2);
	}
	if (started)
		close_all(consumer, deadline);
	/* The handles go; the statistics stay for the last snapshots (the final push). */
	for (size_t i = 0; i < consumer->config.n_workers; i++) {
		struct worker *worker = &consumer->workers[i];
		if (worker->queue)
			rd_kafka_queue_destroy(worker->queue);
		worker->queue = NULL;
		if (worker->rk)
			rd_kafka_destroy_flags(worker->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
		worker->rk = NULL;
		if (worker->assignment)
			rd_kafka_topic_partition_list_destroy(worker->assignment);
		worker->assignment = NULL;
		fx_ingest_destroy(worker->ingest);
		worker->ingest = NULL;
	}
}

void fx_consumer_destroy(struct fx_consumer *consumer)
{
	if (!consumer)
		return;
	fx_consumer_stop(consumer, 0);
	if (consumer->workers)
		for (size_t i = 0; i < consumer->config.n_workers; i++)
			free(consumer->workers[i].lags);
	free(consumer->workers);
	free(consumer->positions);
	pthread_mutex_destroy(&consumer->stats_lock);
	pthread_mutex_destroy(&consumer->positions_lock);
	free(consumer);
}

bool fx_consumer_ready(const struct fx_consumer *consumer)
{
	for (size_t i = 0; i < consumer->config.n_workers; i++)
		if (atomic_load(&consumer->workers[i].assigned))
			return true;
	return false;
}

static int add_kind(struct fx_family_list *out, const struct fx_ingest_stats *sum, enum fx_record_kind kind)
{
	struct fx_label reason = {"reason", fx_record_kind_name(kind)};
	return fx_family_add_u64(out, sum->records[kind], 1, &reason);
}

int fx_consumer_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_consumer *consumer = opaque;
	struct fx_ingest_stats sum = {0};
	int rc = -1;
	uint64_t store_refused = fx_store_refused_records(consumer->config.counting.store);
	pthread_mutex_lock(&consumer->stats_lock);
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
		goto out;
	for (int k = FX_REC_FIRST_INVALID; k < FX_REC_KIND_COUNT; k++)
		if (add_kind(out, &sum, (enum fx_record_kind)k))
			goto out;
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
	    fx_family_add_u64(out, sum.refused_hostname_limit, 2, hostname_limit) ||
	    fx_family_begin(out, "flow_exporter_kafka_errors_total",
			    "Kafka errors, by librdkafka error name.", FX_METRIC_COUNTER))
		goto out;
	for (size_t i = 0; i < consumer->n_errors; i++) {
		struct fx_label error = {"error", rd_kafka_err2name(consumer->errors[i].err)};
		if (fx_family_add_u64(out, consumer->errors[i].count, 1, &error))
			goto out;
	}
	uint64_t assigned = 0;
	if (fx_family_begin(out, "flow_exporter_kafka_consumer_lag",
			    "Messages between the consumer's position and the partition's high watermark.",
			    FX_METRIC_GAUGE))
		goto out;
	for (size_t i = 0; i < consumer->config.n_workers; i++) {
		const struct worker *worker = &consumer->workers[i];
		assigned += worker->n_lags;
		for (size_t p = 0; p < worker->n_lags; p++) {
			if (worker->lags[p].lag < 0)
				continue;
			char partition[16];
			snprintf(partition, sizeof(partition), "%d", worker->lags[p].partition);
			struct fx_label labels[2] = {{"partition", partition},
						     {"topic", worker->lags[p].topic}};
			if (fx_family_add_u64(out, (uint64_t)worker->lags[p].lag, 2, labels))
				goto out;
		}
	}
	if (fx_family_begin(out, "flow_exporter_kafka_assigned_partitions",
			    "Kafka partitions this process reads now.", FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, assigned, 0, NULL))
		goto out;
	rc = 0;
out:
	pthread_mutex_unlock(&consumer->stats_lock);
	return rc;
}

/* ---- Durable mode: explicit commits of checkpointed offsets ---- */

/* The offsets of `offsets` assigned to rk, or NULL when none. */
static rd_kafka_topic_partition_list_t *assigned_part(rd_kafka_t *rk, const struct fx_partition_offset *offsets,
						      size_t n)
{
	rd_kafka_topic_partition_list_t *assignment = NULL, *mine = NULL;
	if (rd_kafka_assignment(rk, &assignment) || !assignment)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!rd_kafka_topic_partition_list_find(assignment, offsets[i].topic, offsets[i].partition))
			continue;
		if (!mine)
			mine = rd_kafka_topic_partition_list_new((int)n);
		rd_kafka_topic_partition_list_add(mine, offsets[i].topic, offsets[i].partition)->offset =
		    offsets[i].next;
	}
	rd_kafka_topic_partition_list_destroy(assignment);
	return mine;
}

/* Whether the group already has every offset of `offsets` that no handle of ours is assigned (0), or some
 * is behind ours (-1: those counts are not the group's, so they must not be exposed yet). */
static int unowned_committed(struct fx_consumer *consumer, const struct fx_partition_offset *offsets, size_t n)
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

int fx_consumer_commit(struct fx_consumer *consumer, const struct fx_partition_offset *offsets, size_t n)
{
	int rc = 0;
	struct fx_partition_offset *unowned = malloc((n ? n : 1) * sizeof(*unowned));
	size_t n_unowned = 0;
	if (!unowned)
		return -1;
	for (size_t i = 0; i < n; i++) {
		bool owned = false;
		for (size_t w = 0; w < consumer->config.n_workers && !owned; w++) {
			rd_kafka_topic_partition_list_t *assignment = NULL;
			rd_kafka_t *rk = consumer->workers[w].rk;
			if (rk && !rd_kafka_assignment(rk, &assignment) && assignment)
				owned = rd_kafka_topic_partition_list_find(assignment, offsets[i].topic,
									   offsets[i].partition) != NULL;
			if (assignment)
				rd_kafka_topic_partition_list_destroy(assignment);
		}
		if (!owned)
			unowned[n_unowned++] = offsets[i];
	}
	if (n_unowned && unowned_committed(consumer, unowned, n_unowned))
		rc = -1;
	free(unowned);
	for (size_t w = 0; w < consumer->config.n_workers; w++) {
		struct worker *worker = &consumer->workers[w];
		if (!worker->rk)
			continue;
		rd_kafka_topic_partition_list_t *mine = assigned_part(worker->rk, offsets, n);
		if (!mine)
			continue;
		rd_kafka_resp_err_t err = rd_kafka_commit(worker->rk, mine, 0);
		for (int i = 0; !err && i < mine->cnt; i++)
			err = mine->elems[i].err;
		if (err) {
			count_error(worker, err, "cannot commit the checkpointed offsets");
			rc = -1;
		}
		rd_kafka_topic_partition_list_destroy(mine);
	}
	return rc;
}

int fx_consumer_committed(struct fx_consumer *consumer, struct fx_partition_offset *offsets, size_t n,
			  int timeout_ms)
{
	if (!consumer->config.n_workers || !consumer->workers[0].rk)
		return -1;
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)(n ? n : 1));
	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(list, offsets[i].topic, offsets[i].partition);
	rd_kafka_resp_err_t err = rd_kafka_committed(consumer->workers[0].rk, list, timeout_ms);
	for (size_t i = 0; i < n && !err; i++) {
		const rd_kafka_topic_partition_t *p = &list->elems[i];
		offsets[i].next = p->err || p->offset < 0 ? -1 : p->offset;
	}
	rd_kafka_topic_partition_list_destroy(list);
	if (err)
		fx_warn("kafka: cannot read the group's committed offsets: %s", rd_kafka_err2str(err));
	return err ? -1 : 0;
}
