/* flow-exporter: wiring only. Reads the config, creates each part in data-path order, waits for SIGTERM or
 * SIGINT while merging counts (SIGHUP reloads every file it was given), then destroys everything in reverse
 * order. The only file that knows every module.
 *
 * Signals are blocked in every thread and taken synchronously here with sigtimedwait, so no handler runs
 * inside a library call. */
#include <dirent.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fx/asn_names.h"
#include "fx/checkpoint.h"
#include "fx/clock.h"
#include "fx/config.h"
#include "fx/consumer.h"
#include "fx/demo.h"
#include "fx/http_server.h"
#include "fx/iface_info.h"
#include "fx/intern.h"
#include "fx/log.h"
#include "fx/map_files.h"
#include "fx/pushgateway.h"
#include "fx/rw_sender.h"
#include "fx/store.h"
#include "fx/web_config.h"

#define DEMO_LOCAL_ASN 64500
#define MAX_HOSTNAMES 65536
#define TICK_MS 200

struct exporter {
	struct fx_config config;
	struct fx_demo *demo;
	struct fx_asn_names *names;
	struct fx_intern *hostnames;
	struct fx_intern *strings; /* the extra dimensions' strings (config.layout.strings) */
	struct fx_store *store;
	struct fx_map_files *maps; /* sampling rates, interface names, their reload */
	struct fx_consumer *consumer;
	struct fx_checkpoint *checkpoint; /* --state-dir; NULL: none */
	char demo_state_dir[64];	  /* the demo's temporary state directory, removed at exit */
	struct fx_http_server *http;
	struct fx_rw_sender *senders[FX_MAX_REPEAT];
	size_t n_senders;
	struct fx_pushgateway *pushgateway;
	struct fx_push_stats *push_stats[FX_MAX_REPEAT + 1];
	struct fx_push_endpoints push_endpoints;
	struct fx_label
	    external_labels[FX_MAX_REPEAT + 2]; /* strings point into config, label_names and instance */
	size_t n_external_labels;
	char *label_names[FX_MAX_REPEAT]; /* the names of --external-label (the values are the config's) */
	char instance[256];
	int64_t started_ms;
};

static struct fx_asn_map *acquire_names(void *opaque)
{
	return fx_asn_names_acquire(opaque);
}

static struct fx_iface_names *acquire_interfaces(void *opaque)
{
	return fx_iface_info_acquire_names(opaque);
}

static struct fx_snapshot *take_snapshot(void *opaque)
{
	const struct exporter *exporter = opaque;
	return fx_store_snapshot(exporter->store);
}

static bool is_ready(void *opaque)
{
	const struct exporter *exporter = opaque;
	return fx_consumer_ready(exporter->consumer);
}

static int collect_build_info(void *opaque, struct fx_family_list *out)
{
	const struct exporter *exporter = opaque;
	struct fx_label labels[2] = {{"librdkafka", rd_kafka_version_str()}, {"version", FX_VERSION}};
	if (fx_family_begin(out, "flow_exporter_build_info", "Version of flow-exporter and of librdkafka.",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, 1, 2, labels) ||
	    fx_family_begin(out, "flow_exporter_start_time_seconds", "When the exporter started (Unix time).",
			    FX_METRIC_GAUGE) ||
	    fx_family_add_double(out, (double)exporter->started_ms / 1000.0, 0, NULL))
		return -1;
	return 0;
}

static int start_asn_names(struct exporter *exporter)
{
	const struct fx_config *config = &exporter->config;
	struct fx_asn_names_config names = {
	    .source = config->asn_names,
	    .cache_path = config->asn_names_cache[0] ? config->asn_names_cache : NULL,
	    .refresh_ms = config->asn_names_refresh_ms,
	    .timeout_ms = config->asn_names_timeout_ms,
	};
	/* The demo never reaches for the network: unless told otherwise it uses its built-in list. */
	if (exporter->demo && !strcmp(config->asn_names, FX_DEFAULT_ASN_NAMES_URL))
		names.embedded_text = fx_demo_asn_text;
	exporter->names = fx_asn_names_create(&names);
	return exporter->names ? 0 : -1;
}

static int start_demo(struct exporter *exporter)
{
	struct fx_config *config = &exporter->config;
	if (!config->asn_given) {
		config->local.asn[0] = DEMO_LOCAL_ASN;
		config->local.n = 1;
	}
	struct fx_demo_config demo = {
	    .topic = config->topics[0],
	    .local_asn = config->local.asn[0],
	    .records_per_second = (unsigned)config->demo_rate,
	    .remote_ases = (unsigned)config->demo_ases,
	};
	exporter->demo = fx_demo_create(&demo);
	if (!exporter->demo)
		return -1;
	config->brokers = (char *)fx_demo_bootstraps(exporter->demo);
	printf("flow-exporter demo: no --brokers given, so an embedded Kafka (librdkafka's mock cluster) "
	       "runs at "
	       "%s with synthetic pmacct records on topic \"%s\" (local AS %u).\n"
	       "Publish more with: kcat -P -b %s -t %s\n",
	       config->brokers, config->topics[0], (unsigned)config->local.asn[0], config->brokers,
	       config->topics[0]);
	fflush(stdout);
	return 0;
}

/* Durable mode: the hooks between the consumer and the checkpoints. */
static int64_t restored_offset(void *opaque, const char *topic, int32_t partition)
{
	const struct exporter *exporter = opaque;
	return fx_checkpoint_start_offset(exporter->checkpoint, topic, partition);
}

static int checkpoint_now(void *opaque)
{
	struct exporter *exporter = opaque;
	return exporter->checkpoint ? fx_checkpoint_now(exporter->checkpoint) : -1;
}

static int commit_offsets(void *opaque, const struct fx_partition_offset *offsets, size_t n)
{
	struct exporter *exporter = opaque;
	return fx_consumer_commit(exporter->consumer, offsets, n);
}

static int committed_offsets(void *opaque, struct fx_partition_offset *offsets, size_t n)
{
	struct exporter *exporter = opaque;
	return fx_consumer_committed(exporter->consumer, offsets, n, 10000);
}

/* --state-dir: the checkpoints, and the restore of the counters before anything is served. The demo
 * without one uses a temporary directory (its embedded Kafka starts empty every time). Returns 0 or -1. */
static int start_checkpoints(struct exporter *exporter)
{
	struct fx_config *config = &exporter->config;
	const char *dir = config->state_dir;
	if (!dir[0] && exporter->demo) {
		snprintf(exporter->demo_state_dir, sizeof(exporter->demo_state_dir),
			 "/tmp/flow-exporter-demo.XXXXXX");
		if (!mkdtemp(exporter->demo_state_dir))
			exporter->demo_state_dir[0] = '\0';
		dir = exporter->demo_state_dir;
	}
	if (!dir[0])
		return 0;
	struct fx_checkpoint_config checkpoint = {
	    .dir = dir,
	    .interval_ms = config->checkpoint_interval_ms,
	    .store = exporter->store,
	    .layout = &config->layout,
	    .hostnames = exporter->hostnames,
	    .max_series = config->max_series,
	};
	if (!config->partitions_mode)
		checkpoint.hooks = (struct fx_checkpoint_hooks){commit_offsets, committed_offsets, exporter};
	exporter->checkpoint = fx_checkpoint_create(&checkpoint);
	if (!exporter->checkpoint || fx_checkpoint_restore(exporter->checkpoint))
		return -1;
	return fx_store_add_collector(exporter->store, fx_checkpoint_collect, exporter->checkpoint);
}

/* Removes the demo's temporary state directory and its files. */
static void remove_demo_state(struct exporter *exporter)
{
	if (!exporter->demo_state_dir[0])
		return;
	DIR *dir = opendir(exporter->demo_state_dir);
	struct dirent *entry;
	while (dir && (entry = readdir(dir))) {
		char path[512];
		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", exporter->demo_state_dir, entry->d_name);
		unlink(path);
	}
	if (dir)
		closedir(dir);
	rmdir(exporter->demo_state_dir);
}

static int start_consumer(struct exporter *exporter)
{
	const struct fx_config *config = &exporter->config;
	struct fx_consumer_config consumer = {
	    .brokers = config->brokers,
	    .n_topics = config->n_topics,
	    .group = config->group,
	    .partitions_mode = config->partitions_mode,
	    .all_partitions = config->all_partitions,
	    .n_partitions = config->n_partitions,
	    .n_workers = config->workers,
	    .prefetch_bytes = config->kafka_prefetch_bytes,
	    .flush_ms = config->flush_ms,
	    .counting =
		{
		    .local = &config->local,
		    .label_mask = config->label_mask,
		    .layout = &config->layout,
		    .max_series = config->max_series,
		    .max_record_bytes = config->max_record_bytes,
		    .hostnames = exporter->hostnames,
		    .store = exporter->store,
		    .sampling = fx_map_files_sampling(exporter->maps),
		    .peers = fx_map_files_peers(exporter->maps),
		},
	};
	if (config->state_dir[0] || exporter->demo)
		consumer.durable = (struct fx_consumer_durable){restored_offset, checkpoint_now, exporter};
	memcpy(consumer.topics, config->topics, sizeof(consumer.topics));
	memcpy(consumer.partitions, config->partitions, sizeof(consumer.partitions));
	/* librdkafka's mock cluster makes a rejoining group wait session.timeout.ms (45 s by default): keep
	 * the demo's rebalances short. The operator's settings come after ours and win. */
	if (exporter->demo)
		consumer.kafka_opts[consumer.n_kafka_opts++] = "session.timeout.ms=6000";
	if (consumer.n_kafka_opts + config->n_kafka_opts > FX_MAX_KAFKA_OPTS) {
		fprintf(stderr,
			"flow-exporter: invalid value for --kafka-opt: the demo takes one of the %d "
			"librdkafka settings, so at most %d are left\n",
			FX_MAX_KAFKA_OPTS, FX_MAX_KAFKA_OPTS - 1);
		return 2;
	}
	for (size_t i = 0; i < config->n_kafka_opts; i++)
		consumer.kafka_opts[consumer.n_kafka_opts++] = config->kafka_opts[i];
	char errstr[512];
	exporter->consumer = fx_consumer_create(&consumer, errstr, sizeof(errstr));
	if (!exporter->consumer) {
		fprintf(stderr, "flow-exporter: %s\n", errstr);
		return 2; /* a bad --kafka-opt, or librdkafka refusing the settings */
	}
	return 0;
}

/* --remote-write-protocol of the i-th --remote-write-url: the i-th value, or the one value for all. */
static enum fx_rw_protocol rw_protocol(const struct fx_config *config, size_t i)
{
	size_t n = config->n_remote_write_protocols;
	const char *value = n == 0 ? "auto" : config->remote_write_protocols[n == 1 ? 0 : i];
	return !strcmp(value, "1.0")   ? FX_RW_PROTOCOL_1_0
	       : !strcmp(value, "2.0") ? FX_RW_PROTOCOL_2_0
				       : FX_RW_PROTOCOL_AUTO;
}

/* The labels every pushed series carries: the user's --external-label, plus job and instance unless given,
 * so that two exporters never collide in one TSDB (instance = this host's name and the /metrics port). */
static int make_external_labels(struct exporter *exporter)
{
	const struct fx_config *config = &exporter->config;
	bool has_job = false, has_instance = false;
	for (size_t i = 0; i < config->n_external_labels; i++) {
		const char *text = config->external_labels[i]; /* "name=value", checked by config.c */
		const char *eq = strchr(text, '=');
		char *name = strndup(text, (size_t)(eq - text));
		if (!name)
			return -1;
		exporter->label_names[i] = name;
		exporter->external_labels[exporter->n_external_labels++] = (struct fx_label){name, eq + 1};
		has_job = has_job || !strcmp(name, "job");
		has_instance = has_instance || !strcmp(name, "instance");
	}
	if (!has_job)
		exporter->external_labels[exporter->n_external_labels++] =
		    (struct fx_label){"job", "flow-exporter"};
	if (!has_instance) {
		char host[200] = "localhost";
		gethostname(host, sizeof(host) - 1);
		snprintf(exporter->instance, sizeof(exporter->instance), "%s:%u", host,
			 fx_http_server_port(exporter->http));
		exporter->external_labels[exporter->n_external_labels++] =
		    (struct fx_label){"instance", exporter->instance};
	}
	return 0;
}

static const char *label_value(const struct exporter *exporter, const char *name)
{
	for (size_t i = 0; i < exporter->n_external_labels; i++)
		if (!strcmp(exporter->external_labels[i].name, name))
			return exporter->external_labels[i].value;
	return "";
}

/* Remote-write senders and the Pushgateway pusher. A bad option (unreadable password file, TLS file,
 * reserved header) is a configuration error: exit code 2. */
static int start_pushers(struct exporter *exporter)
{
	const struct fx_config *config = &exporter->config;
	if (make_external_labels(exporter))
		return 1;
	struct fx_http_client_config http = {
	    .timeout_ms = config->push_timeout_ms,
	    .basic_auth_user = config->push_username[0] ? config->push_username : NULL,
	    .basic_auth_password_file = config->push_password_file[0] ? config->push_password_file : NULL,
	    .bearer_token_file = config->push_bearer_token_file[0] ? config->push_bearer_token_file : NULL,
	    .ca_file = config->push_ca_file[0] ? config->push_ca_file : NULL,
	    .cert_file = config->push_cert_file[0] ? config->push_cert_file : NULL,
	    .key_file = config->push_key_file[0] ? config->push_key_file : NULL,
	    .insecure_skip_verify = config->push_insecure_skip_verify,
	    .headers = config->push_headers,
	    .n_headers = config->n_push_headers,
	};
	struct fx_push_hooks hooks = {take_snapshot, exporter};
	struct fx_push_backoff backoff = {FX_PUSH_BACKOFF_MIN_MS, FX_PUSH_BACKOFF_MAX_MS};
	for (size_t i = 0; i < config->n_remote_write_urls; i++) {
		struct fx_rw_sender_config sender = {
		    .http = http,
		    .backoff = backoff,
		    .interval_ms = config->push_interval_ms,
		    .backlog_ms = config->push_backlog_ms,
		    .queue_dir = config->push_queue_dir,
		    .queue_max_bytes = config->push_queue_max_bytes,
		    .max_series_per_request = (size_t)config->remote_write_max_series,
		    .external_labels = exporter->external_labels,
		    .n_external_labels = exporter->n_external_labels,
		    .hooks = hooks,
		};
		sender.http.url = config->remote_write_urls[i];
		sender.protocol = rw_protocol(config, i);
		exporter->senders[i] = fx_rw_sender_create(&sender);
		if (!exporter->senders[i])
			return 2;
		exporter->n_senders++;
		exporter->push_stats[exporter->push_endpoints.n++] = fx_rw_sender_stats(exporter->senders[i]);
	}
	if (config->pushgateway_url[0]) {
		struct fx_pushgateway_config pushgateway = {
		    .http = http,
		    .backoff = backoff,
		    .job = label_value(exporter, "job"),
		    .instance = label_value(exporter, "instance"),
		    .interval_ms = config->push_interval_ms,
		    .delete_on_shutdown = config->pushgateway_delete,
		    .hooks = hooks,
		};
		pushgateway.http.url = config->pushgateway_url;
		exporter->pushgateway = fx_pushgateway_create(&pushgateway);
		if (!exporter->pushgateway)
			return 2;
		exporter->push_stats[exporter->push_endpoints.n++] =
		    fx_pushgateway_stats(exporter->pushgateway);
	}
	exporter->push_endpoints.stats = exporter->push_stats;
	if (exporter->push_endpoints.n &&
	    fx_store_add_collector(exporter->store, fx_push_collect, &exporter->push_endpoints))
		return 1;
	/* Threads start only now: their first snapshot must see the push collector registered. */
	for (size_t i = 0; i < exporter->n_senders; i++)
		if (fx_rw_sender_start(exporter->senders[i]))
			return 1;
	if (exporter->pushgateway && fx_pushgateway_start(exporter->pushgateway))
		return 1;
	return 0;
}

/* The final push of every endpoint, all bounded by the same deadline. */
static void stop_pushers(struct exporter *exporter, int64_t deadline)
{
	for (size_t i = 0; i < exporter->n_senders; i++)
		if (fx_rw_sender_shutdown(exporter->senders[i], deadline))
			fx_warn(
			    "remote write: the final push did not reach every endpoint before the deadline");
	if (exporter->pushgateway && fx_pushgateway_shutdown(exporter->pushgateway, deadline))
		fx_warn("pushgateway: the final push did not get through before the deadline");
}

/* SIGHUP and POST /-/reload: every file the exporter can re-read without a restart (the web configuration,
 * the maps). A bad file keeps the one in force, is logged and counted; its error goes to message. Returns 0
 * or -1. */
static int reload_files(struct exporter *exporter, const char *trigger, char *message, size_t size)
{
	fx_info("%s: reloading", trigger);
	fx_asn_names_reload(exporter->names); /* asynchronous: its result is in its own self-metrics */
	int web = fx_http_server_reload(exporter->http);
	int maps = fx_map_files_reload(exporter->maps, trigger, message, size);
	if (web && !maps)
		snprintf(message, size, "--web.config.file: refused (the log says why)\n");
	return web || maps ? -1 : 0;
}

static int reload_http(void *opaque, char *message, size_t size)
{
	return reload_files(opaque, "POST /-/reload", message, size);
}

/* The HTTP server with the web configuration file read first: a bad file is a configuration error (exit
 * code 2 in *status), named with its key. Returns 0 or -1. */
static int start_http(struct exporter *exporter, const struct fx_http_hooks *hooks, int *status)
{
	const struct fx_config *config = &exporter->config;
	struct fx_http_server_config http = {
	    .addr = config->addr,
	    .web_config_file = config->web_config_file,
	    .limits =
		{
		    .max_connections = (unsigned)config->web_max_connections,
		    .max_connections_per_ip = (unsigned)config->web_max_connections_per_ip,
		    .read_timeout_ms = config->web_read_timeout_ms,
		    .max_header_bytes = config->web_max_header_bytes,
		},
	};
	if (config->web_config_file[0]) {
		char why[512];
		http.web_config = fx_web_config_load(config->web_config_file, why, sizeof(why));
		if (!http.web_config) {
			fprintf(stderr, "flow-exporter: invalid --web.config.file: %s\n", why);
			*status = 2;
			return -1;
		}
	}
	exporter->http = fx_http_server_start(&http, hooks); /* takes the web configuration */
	return exporter->http ? 0 : -1;
}

static void wait_for_signal(struct exporter *exporter, const sigset_t *signals)
{
	struct timespec tick = {0, TICK_MS * 1000000L};
	for (;;) {
		int sig = sigtimedwait(signals, NULL, &tick);
		if (sig == SIGHUP) {
			char message[2048];
			reload_files(exporter, "SIGHUP received", message, sizeof(message));
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT) {
			fx_info("%s received: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
			return;
		}
		if (sig < 0 && errno != EAGAIN && errno != EINTR)
			return;
		fx_store_tick(exporter->store);
	}
}

/* The flags; --help and --version answered here. Returns -1 to go on, else the exit status. */
static int read_config(struct fx_config *config, int argc, char **argv)
{
	int rc = fx_config_parse(config, argc, argv, stderr);
	if (rc == 0 && config->help)
		fx_config_usage(stdout);
	else if (rc == 0 && config->version)
		printf("flow-exporter %s (librdkafka %s)\n", FX_VERSION, rd_kafka_version_str());
	if (rc == 0 && !config->help && !config->version) {
		enum fx_log_level level = FX_LOG_INFO;
		fx_log_level_parse(config->log_level, &level);
		fx_log_set_level(level);
		return -1;
	}
	fx_config_free(config);
	return rc;
}

/* Blocks the signals in every thread created from here on; only wait_for_signal takes them. */
static void block_signals(sigset_t *signals)
{
	sigemptyset(signals);
	sigaddset(signals, SIGTERM);
	sigaddset(signals, SIGINT);
	sigaddset(signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, signals, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int start_store(struct exporter *exporter)
{
	const struct fx_config *config = &exporter->config;
	exporter->hostnames = fx_intern_create(MAX_HOSTNAMES);
	/* Strings of the extra dimensions: a few per held series at most; past the bound a record goes to
	 * its overflow series. */
	exporter->strings = fx_intern_create(MAX_HOSTNAMES + 4 * (size_t)config->max_series);
	exporter->config.layout.strings = exporter->strings;
	struct fx_store_config store = {
	    .n_workers = config->workers,
	    .max_series = config->max_series,
	    .label_mask = config->label_mask,
	    .layout = &config->layout,
	    .top_n = (size_t)config->top_n,
	    .top_n_window_ms = config->top_n_window_ms,
	    .top_n_group = config->top_n_group_mask,
	    .series_ttl_ms = config->series_ttl_ms,
	    .acquire_names = acquire_names,
	    .names_opaque = exporter->names,
	    .acquire_interfaces = acquire_interfaces,
	    .interfaces_opaque = fx_map_files_interfaces(exporter->maps),
	};
	exporter->store = exporter->hostnames && exporter->strings ? fx_store_create(&store) : NULL;
	return exporter->store ? 0 : -1;
}

/* /metrics and the self-metrics of every part created so far (the pushers add theirs). Returns 0, or the
 * exit status. */
static int start_http_server(struct exporter *exporter)
{
	struct fx_store *store = exporter->store;
	if (fx_store_add_collector(store, collect_build_info, exporter) ||
	    fx_store_add_collector(store, fx_consumer_collect, exporter->consumer) ||
	    fx_store_add_collector(store, fx_store_collect, store) ||
	    fx_store_add_collector(store, fx_asn_names_collect, exporter->names) ||
	    fx_map_files_register(exporter->maps, store))
		return 1;
	struct fx_http_hooks hooks = {take_snapshot, is_ready, exporter};
	int status = 1;
	if (start_http(exporter, &hooks, &status))
		return status;
	fx_http_server_set_reload(exporter->http, reload_http, exporter);
	if (fx_store_add_collector(store, fx_http_server_collect, exporter->http))
		return 1;
	return 0;
}

/* Every part in data-path order. Returns 0, or the exit status. */
static int start(struct exporter *exporter)
{
	const struct fx_config *config = &exporter->config;
	int rc;
	if (!(exporter->maps = fx_map_files_create(config, &rc)))
		return rc;
	if (!config->brokers[0] && start_demo(exporter))
		return 1;
	if (!config->asn_given && !exporter->demo)
		fx_warn("no --asn given: AS 0 is taken as the local AS, as the Go program did; set --asn");
	if (start_asn_names(exporter) || start_store(exporter))
		return 1;
	if ((rc = start_consumer(exporter)))
		return rc;
	if (start_checkpoints(exporter))
		return 1;
	if ((rc = start_http_server(exporter)))
		return rc;
	if ((rc = start_pushers(exporter)))
		return rc;
	if (exporter->checkpoint && fx_checkpoint_start(exporter->checkpoint))
		return 1;
	if (fx_consumer_start(exporter->consumer))
		return 1;
	fx_info("serving /metrics on %s (port %u)", config->addr, fx_http_server_port(exporter->http));
	return 0;
}

/* Reverse order. The consumer goes first: it hands its last counts to the store and commits them; then the
 * pushers push those final values (only after a clean run). */
static void stop(struct exporter *exporter, bool final_push)
{
	const struct fx_config *config = &exporter->config;
	int64_t deadline = fx_mono_ms() + config->shutdown_timeout_ms;
	/* Half of --shutdown-timeout for the final commit and close, the rest (at least) for the final push.
	 */
	/* The consumer makes the final checkpoint itself, before its handles close. */
	fx_checkpoint_stop(exporter->checkpoint);
	fx_consumer_stop(exporter->consumer, config->shutdown_timeout_ms / 2);
	if (exporter->store)
		fx_store_tick(exporter->store);
	if (final_push)
		stop_pushers(exporter, deadline);
	fx_pushgateway_destroy(exporter->pushgateway);
	for (size_t i = 0; i < exporter->n_senders; i++)
		fx_rw_sender_destroy(exporter->senders[i]);
	fx_http_server_destroy(exporter->http);
	/* Last of the snapshot takers gone: the collectors' owners can go. */
	fx_consumer_destroy(exporter->consumer);
	fx_checkpoint_destroy(exporter->checkpoint);
	remove_demo_state(exporter);
	fx_store_destroy(exporter->store);
	fx_map_files_destroy(exporter->maps);
	fx_intern_destroy(exporter->hostnames);
	fx_intern_destroy(exporter->strings);
	fx_asn_names_destroy(exporter->names);
	fx_demo_destroy(exporter->demo);
	for (size_t i = 0; i < FX_MAX_REPEAT; i++)
		free(exporter->label_names[i]);
}

int main(int argc, char **argv)
{
	struct exporter exporter = {0};
	int status = read_config(&exporter.config, argc, argv);
	if (status >= 0)
		return status;
	exporter.started_ms = fx_wall_ms();
	sigset_t signals;
	block_signals(&signals);
	status = start(&exporter);
	if (status == 0)
		wait_for_signal(&exporter, &signals);
	stop(&exporter, status == 0);
	fx_config_free(&exporter.config);
	if (status == 0)
		fx_info("stopped");
	return status;
}
