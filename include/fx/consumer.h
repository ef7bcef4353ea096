/* Step (1) of the data path: the librdkafka consumer. One consumer handle per process (one member of the
 * consumer group), its partitions' queues forwarded to the worker threads, each of which owns one
 * fx_ingest; a worker stores a message's offset only after the message is counted, so a commit never
 * covers a record that was not counted. A control thread serves the handle (rebalances, errors,
 * statistics).
 *
 * Two modes: a consumer group (the default; offsets committed) or the Go program's mode (an explicit
 * partition list or "all", no group, starting at the newest offset, nothing committed). */
#ifndef FX_CONSUMER_H
#define FX_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/family_list.h"
#include "fx/ingest.h"

#define FX_MAX_TOPICS 16
#define FX_MAX_PARTITIONS 1024
#define FX_MAX_KAFKA_OPTS 64

struct fx_consumer_config {
	const char *brokers;
	const char *topics[FX_MAX_TOPICS];
	size_t n_topics;
	const char *group;    /* group mode when partitions_mode is false */
	bool partitions_mode; /* the Go program's mode */
	bool all_partitions;  /* partitions_mode: every partition of every topic */
	int32_t partitions[FX_MAX_PARTITIONS];
	size_t n_partitions;
	const char *kafka_opts[FX_MAX_KAFKA_OPTS]; /* "key=value", passed to librdkafka untouched */
	size_t n_kafka_opts;
	size_t n_workers;
	/* Bound on what librdkafka prefetches in all (--kafka-prefetch-bytes), derived into its settings by
	 * fx_consumer_prefetch; a --kafka-opt of the same keys wins. 0: librdkafka's defaults. */
	uint64_t prefetch_bytes;
	int64_t flush_ms;		  /* how often a worker hands its delta table to the store */
	struct fx_ingest_config counting; /* `worker` is set per thread */
	/* Durable mode (--state-dir); start_offset NULL: offsets auto-committed once counted, as before. Set,
	 * nothing is committed by the consumer itself (enable.auto.commit=false): the checkpoints commit
	 * through fx_consumer_commit, and every counted message's offset goes to the store with its counts
	 * (fx_ingest_note_offset). */
	struct fx_consumer_durable {
		/* Where the restored counters of topic[partition] stop, or -1: an assigned partition starts
		 * at the later of this and the group's committed offset. @locality the control thread (the
		 * rebalance callback). */
		int64_t (*start_offset)(void *opaque, const char *topic, int32_t partition);
		/* A checkpoint now (every worker's counts handed over first): on a revocation, before the
		 * partitions go, and at stop, before the handle closes. Returns 0 when committed.
		 * @locality the control thread (the workers parked at the revocation fence), or the thread
		 * calling fx_consumer_stop. */
		int (*checkpoint)(void *opaque);
		void *opaque;
	} durable;
	/* For tests: called by a worker thread with its number when it holds a batch, before counting it (a
	 * test can hold one worker there). NULL normally. */
	void (*batch_hook)(void *opaque, size_t worker);
	void *batch_hook_opaque;
};

struct fx_consumer;

/* fetch.wait.max.ms, ours unless a --kafka-opt says otherwise: how long a broker may hold a fetch that
 * finds nothing new. librdkafka's 500 ms stalled catching up: a partition whose worker queue is at its bound
 * is left out of the fetch sent next, and when that fetch holds only partitions at their end the broker
 * keeps it the whole wait; the paused partitions, drained meanwhile, wait for it to return (one fetch in
 * flight per broker), so a backlog's last records came in every 500 ms. At 50 ms an idle consumer sends 20
 * empty fetches a second per broker; new data is returned as soon as it comes either way. */
#define FX_KAFKA_FETCH_WAIT_MS "50"

/* The librdkafka settings a prefetch bound is derived into: half of it for the worker queues
 * (queued.max.messages.kbytes applies to each queue the partitions are forwarded to), a quarter for a fetch
 * response (fetch.max.bytes, at most FX_PREFETCH_FETCH_MAX) and another for the one in flight;
 * max.partition.fetch.bytes is librdkafka's 1 MiB or less. All 0 when prefetch_bytes is 0. */
#define FX_PREFETCH_FETCH_MAX 52428800u
struct fx_prefetch {
	uint64_t queue_kbytes;		/* queued.max.messages.kbytes */
	uint64_t fetch_bytes;		/* fetch.max.bytes */
	uint64_t partition_fetch_bytes; /* max.partition.fetch.bytes */
};
struct fx_prefetch fx_consumer_prefetch(uint64_t prefetch_bytes, size_t n_workers);

/* Creates the handles and checks every librdkafka setting. On failure returns NULL and writes a message
 * naming the bad setting to errstr. Strings in config must outlive the consumer. */
struct fx_consumer *fx_consumer_create(const struct fx_consumer_config *config, char *errstr,
				       size_t errstr_size);
/* Starts the worker threads. Returns 0 or -1 (logged). */
int fx_consumer_start(struct fx_consumer *consumer);
/* Stops the threads, hands the last deltas to the store, commits what was counted and closes the
 * handles, giving up on the broker after timeout_ms. The statistics stay readable (fx_consumer_collect)
 * until destroy. Idempotent. */
void fx_consumer_stop(struct fx_consumer *consumer, int64_t timeout_ms);
/* Stops (with no time for the broker) if not stopped yet, then frees. Accepts NULL. */
void fx_consumer_destroy(struct fx_consumer *consumer);

/* True while the process has partitions assigned (group joined, or partitions assigned). Reads one atomic
 * flag, no lock. @locality any thread, between fx_consumer_create and destroy. */
bool fx_consumer_ready(const struct fx_consumer *consumer);

/* Durable mode: commits each topic[partition] at next, through the handle, if it is assigned (partitions
 * not assigned are skipped: this process no longer owns them). Returns 0 when every commit sent was
 * accepted. @locality any thread, between fx_consumer_start and the end of fx_consumer_stop's checkpoint
 * (main stops the checkpoint thread before fx_consumer_stop). */
int fx_consumer_commit(struct fx_consumer *consumer, const struct fx_partition_offset *offsets, size_t n);

/* Durable mode: sets each offset's next to the group's committed offset (-1 when none). Returns 0, or -1
 * when the group could not be asked within timeout_ms. @locality main, before fx_consumer_start. */
int fx_consumer_committed(struct fx_consumer *consumer, struct fx_partition_offset *offsets, size_t n,
			  int timeout_ms);

/* Self-metrics: messages, records by result, Kafka errors, consumer lag per partition, what librdkafka
 * queues, its fetch requests and the prefetch bound. An fx_collect_fn:
 * `consumer` is a struct fx_consumer *. @locality any thread; takes the statistics lock. */
int fx_consumer_collect(void *consumer, struct fx_family_list *out);

#endif
