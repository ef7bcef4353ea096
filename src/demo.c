/* The embedded default: a librdkafka mock cluster on 127.0.0.1 and a producer thread that writes synthetic
 * pmacct records into it, shaped like nfacctd's kafka_output json (see tests/data/pmacct/): a few routers,
 * one of them with no pre_tag_map label, traffic to and from well-known ASes, interface indexes, a share of
 * kafka_multi_values messages and purge markers, and some transit traffic that is not counted.
 * With --demo-ases=N the remote side spans exactly N distinct ASes (the ten well-known ones first, then
 * 32-bit private-use ASNs from 4200000100 on); half the records go to the first ten (at most) of them, so
 * a few heavy pairs stand out of a long tail, as in a full BGP table: enough to see the overflow series
 * (--max-series) and the top-N "other" series live.
 *
 * Thread: the producer thread writes; create/destroy run on main. Deterministic (a fixed-seed xorshift). */
#include "fx/demo.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fx/buf.h"
#include "fx/clock.h"
#include "fx/log.h"
#include "fx/thread_name.h"

#define DEMO_PARTITIONS 4
#define TICK_MS 100

struct fx_demo {
	struct fx_demo_config config;
	rd_kafka_t *cluster_handle; /* hosts the mock cluster */
	rd_kafka_mock_cluster_t *cluster;
	rd_kafka_t *producer;
	char bootstraps[128];
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	uint64_t rng;
};

struct router {
	const char *label; /* "" like a router no pre_tag_map rule matches */
	const char *peer_ip;
};

static const struct router routers[] = {
	{"edge1.demo.example", "192.0.2.1"},
	{"edge2.demo.example", "192.0.2.2"},
	{"", "192.0.2.3"},
};
static const uint32_t remote_asns[] = {15169, 13335, 16509, 32934, 2906, 8075, 3356, 1299, 6939, 4200000001u};
#define WELL_KNOWN (sizeof(remote_asns) / sizeof(remote_asns[0]))
/* Private use (RFC 6996), clear of 4200000001 and of the 64496 transit AS. */
#define TAIL_FIRST_ASN 4200000100u

static uint64_t next_random(struct fx_demo *demo)
{
	demo->rng ^= demo->rng << 13;
	demo->rng ^= demo->rng >> 7;
	demo->rng ^= demo->rng << 17;
	return demo->rng;
}

/* The i-th remote AS of the demo: the well-known ones, then the private-use tail. */
static uint32_t remote_as_at(unsigned i)
{
	return i < WELL_KNOWN ? remote_asns[i] : TAIL_FIRST_ASN + (i - (unsigned)WELL_KNOWN);
}

/* One remote AS: with the default (0) one of the ten well-known ones, uniformly, as before. With N:
 * half of the records pick among the first min(N, 10), the other half among all N, so every one of the N
 * is seen soon (at 2000 records/s and N = 5000, each tail AS about every 5 s). */
static uint32_t remote_as(struct fx_demo *demo)
{
	unsigned n = demo->config.remote_ases ? demo->config.remote_ases : (unsigned)WELL_KNOWN;
	unsigned heavy = n < WELL_KNOWN ? n : (unsigned)WELL_KNOWN;
	uint64_t pick = next_random(demo);
	if (!demo->config.remote_ases)
		return remote_as_at((unsigned)(pick % n));
	return remote_as_at((unsigned)((pick & 1) ? (pick >> 1) % heavy : (pick >> 1) % n));
}

static int append_record(struct fx_demo *demo, struct fx_buf *out, const char *stamp)
{
	const struct router *router = &routers[next_random(demo) % 3];
	uint32_t local = demo->config.local_asn;
	uint32_t remote = remote_as(demo);
	unsigned roll = (unsigned)(next_random(demo) % 100);
	uint32_t as_src = roll < 60 ? remote : roll < 95 ? local : remote; /* 60% in, 35% out, 5% transit */
	uint32_t as_dst = roll < 60 ? local : roll < 95 ? remote : 64496;
	uint32_t iface_in = 1 + (uint32_t)(next_random(demo) % 4);
	uint32_t iface_out = 10 + (uint32_t)(next_random(demo) % 4);
	uint64_t packets = 1 + next_random(demo) % 2000;
	uint64_t bytes = packets * (64 + next_random(demo) % 1437);
	return fx_buf_printf(out,
			     "{\"event_type\": \"purge\", \"label\": \"%s\", \"as_src\": %u, \"as_dst\": %u, "
			     "\"peer_ip_src\": \"%s\", \"iface_in\": %u, \"iface_out\": %u, \"stamp_inserted\": "
			     "\"%s\", \"stamp_updated\": \"%s\", \"packets\": %llu, \"bytes\": %llu, "
			     "\"writer_id\": \"demo/1\"}",
			     router->label, as_src, as_dst, router->peer_ip, iface_in, iface_out, stamp, stamp,
			     (unsigned long long)packets, (unsigned long long)bytes);
}

static void produce(struct fx_demo *demo, const struct fx_buf *message)
{
	rd_kafka_resp_err_t err = rd_kafka_producev(
		demo->producer, RD_KAFKA_V_TOPIC(demo->config.topic),
		RD_KAFKA_V_PARTITION((int32_t)(next_random(demo) % DEMO_PARTITIONS)),
		RD_KAFKA_V_VALUE(message->data, message->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
	if (err)
		fx_debug("demo: produce: %s", rd_kafka_err2str(err));
}

static void *producer_main(void *arg)
{
	struct fx_demo *demo = arg;
	struct fx_buf message;
	fx_buf_init(&message, 1 << 20);
	double owed = 0;
	while (!atomic_load(&demo->stop)) {
		char stamp[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:00", &tm);
		owed += demo->config.records_per_second * (TICK_MS / 1000.0);
		while (owed >= 1) {
			fx_buf_reset(&message);
			/* One message in four is a kafka_multi_values batch of up to 20 records. */
			unsigned records = next_random(demo) % 4 == 0 ? 1 + (unsigned)(next_random(demo) % 20) : 1;
			if (records > owed)
				records = (unsigned)owed;
			for (unsigned i = 0; i < records; i++) {
				if (append_record(demo, &message, stamp) || fx_buf_append(&message, "\n", records > 1))
					break;
			}
			owed -= records;
			produce(demo, &message);
		}
		if (next_random(demo) % 50 == 0) {
			fx_buf_reset(&message);
			if (!fx_buf_append_str(&message, "{\"event_type\": \"purge_init\", \"writer_id\": \"demo/1\"}"))
				produce(demo, &message);
		}
		rd_kafka_poll(demo->producer, 0);
		struct timespec pause = {0, TICK_MS * 1000000L};
		nanosleep(&pause, NULL);
	}
	fx_buf_free(&message);
	return NULL;
}

struct fx_demo *fx_demo_create(const struct fx_demo_config *config)
{
	char errstr[256];
	struct fx_demo *demo = calloc(1, sizeof(*demo));
	if (!demo)
		goto fail;
	demo->config = *config;
	demo->rng = 0x9e3779b97f4a7c15ull;
	atomic_init(&demo->stop, false);

	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
	demo->cluster_handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!demo->cluster_handle) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	demo->cluster = rd_kafka_mock_cluster_new(demo->cluster_handle, 1);
	if (!demo->cluster) {
		snprintf(errstr, sizeof(errstr), "cannot start the mock cluster");
		goto fail;
	}
	snprintf(demo->bootstraps, sizeof(demo->bootstraps), "%s", rd_kafka_mock_cluster_bootstraps(demo->cluster));
	if (rd_kafka_mock_topic_create(demo->cluster, config->topic, DEMO_PARTITIONS, 1)) {
		snprintf(errstr, sizeof(errstr), "cannot create the demo topic");
		goto fail;
	}

	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", demo->bootstraps, errstr, sizeof(errstr)) ||
	    rd_kafka_conf_set(conf, "linger.ms", "50", errstr, sizeof(errstr))) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	demo->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!demo->producer) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	if (pthread_create(&demo->thread, NULL, producer_main, demo)) {
		snprintf(errstr, sizeof(errstr), "cannot start the producer thread");
		goto fail;
	}
	demo->thread_started = true;
	fx_thread_name(demo->thread, "demo", -1);
	return demo;
fail:
	fx_error("demo: %s", demo ? errstr : "out of memory");
	fx_demo_destroy(demo);
	return NULL;
}

const char *fx_demo_bootstraps(const struct fx_demo *demo) { return demo->bootstraps; }

void fx_demo_destroy(struct fx_demo *demo)
{
	if (!demo)
		return;
	atomic_store(&demo->stop, true);
	if (demo->thread_started)
		pthread_join(demo->thread, NULL);
	if (demo->producer) {
		rd_kafka_flush(demo->producer, 1000);
		rd_kafka_destroy(demo->producer);
	}
	if (demo->cluster)
		rd_kafka_mock_cluster_destroy(demo->cluster);
	if (demo->cluster_handle)
		rd_kafka_destroy(demo->cluster_handle);
	free(demo);
}
