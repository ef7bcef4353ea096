/* The command line: one table of flags (name, default, help, parser) drives parsing, defaults and --help.
 * Accepts the Go program's forms: --flag=value, --flag value, -flag=value, -flag value; booleans as
 * --flag or --flag=true|false. Repeatable flags accumulate. */
#ifndef FX_CONFIG_H
#define FX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fx/classify.h"
#include "fx/consumer.h"
#include "fx/series.h"

#define FX_DEFAULT_ASN_NAMES_URL "http://www.cidr-report.org/as2.0/asn.txt"
#define FX_MAX_REPEAT 16

/* The strings a config owns (copies of defaults, environment and argv values). Opaque: config.c's. */
struct fx_config_strings;

struct fx_config {
	/* Kafka */
	char *brokers; /* empty: run the embedded demo */
	const char *topics[FX_MAX_TOPICS];
	size_t n_topics;
	char *group;
	bool partitions_mode;
	bool all_partitions;
	int32_t partitions[FX_MAX_PARTITIONS];
	size_t n_partitions;
	const char *kafka_opts[FX_MAX_KAFKA_OPTS];
	size_t n_kafka_opts;
	uint64_t workers;
	uint64_t kafka_prefetch_bytes; /* 0: librdkafka's own prefetch settings */
	int64_t flush_ms;
	uint64_t max_record_bytes;
	/* counting */
	struct fx_local_asns local;
	bool asn_given;
	uint32_t label_mask; /* the built-in labels of --labels, and the interface names kept */
	uint64_t max_series;
	/* issue 10: the key's dimensions and top-N */
	const char *labels; /* --labels as given */
	const char *label_from[FX_MAX_REPEAT];
	size_t n_label_from;
	struct fx_key_layout layout; /* --labels and --label-from; layout.strings is set by main */
	uint64_t top_n;		     /* 0: every series exposed */
	int64_t top_n_window_ms;
	const char *top_n_group;
	uint32_t top_n_group_mask; /* FX_LABEL_* of the layout */
	/* sampling (sampling.h) */
	uint64_t sampling_rate; /* 0: none */
	char *sampling_rates;	/* file; "" for none */
	/* interface names (iface_info.h) */
	char *interface_names; /* file; "" for none */
	/* SNMP interface names (snmp_poller.h) */
	bool snmp;
	int snmp_version; /* 2 (v2c) or 3 */
	char *snmp_community_file;
	char *snmp_user;
	char *snmp_auth_protocol;
	char *snmp_auth_passphrase_file;
	char *snmp_priv_protocol;
	char *snmp_priv_passphrase_file;
	char *snmp_addresses;
	int64_t snmp_timeout_ms;
	uint64_t snmp_retries;
	int64_t snmp_refresh_ms;
	char *snmp_cache;
	/* AS names */
	char *asn_names;
	char *asn_names_cache;
	int64_t asn_names_refresh_ms;
	int64_t asn_names_timeout_ms;
	/* HTTP */
	char *addr;
	/* HTTP security and Kafka secrets (issue 14) */
	char *web_config_file; /* empty: none */
	uint64_t web_max_connections;
	uint64_t web_max_connections_per_ip;
	int64_t web_read_timeout_ms;
	uint64_t web_max_header_bytes;
	char *kafka_config_file; /* its settings are in kafka_opts, first */
	/* push */
	const char *remote_write_urls[FX_MAX_REPEAT];
	size_t n_remote_write_urls;
	/* "1.0", "2.0" or "auto": one for every URL, or the k-th for the k-th URL */
	const char *remote_write_protocols[FX_MAX_REPEAT];
	size_t n_remote_write_protocols;
	bool remote_write_protocol_defaulted; /* the one value is the table's default, replaced by a given one */
	int64_t push_interval_ms;
	uint64_t remote_write_max_series;
	const char *external_labels[FX_MAX_REPEAT]; /* "name=value" */
	size_t n_external_labels;
	const char *push_headers[FX_MAX_REPEAT]; /* "Name: value" */
	size_t n_push_headers;
	char *push_username;
	char *push_password_file;
	char *push_bearer_token_file;
	char *push_ca_file;
	char *push_cert_file;
	char *push_key_file;
	bool push_insecure_skip_verify;
	int64_t push_timeout_ms;
	int64_t push_backlog_ms;
	int64_t series_ttl_ms;
	char *pushgateway_url;
	bool pushgateway_delete;
	/* durable state (issue 12) */
	char *state_dir; /* empty: none (counters start at zero, offsets auto-committed) */
	int64_t checkpoint_interval_ms;
	char *push_queue_dir;	      /* "" : no disk queue; default <state_dir>/push-queue (fx_config_parse) */
	uint64_t push_queue_max_bytes; /* per remote-write endpoint, >= 1 KiB */
	/* process */
	uint64_t demo_rate;
	uint64_t demo_ases; /* 0: the demo's ten well-known ASes */
	int64_t shutdown_timeout_ms;
	char *log_level;
	bool help;
	bool version;
	/* The copies every string above points to; private to config.c, freed by fx_config_free. */
	struct fx_config_strings *strings;
};

/* Sets every default, then the environment, then parses argv. Returns 0 on success, 2 on a bad flag or
 * value (the message, naming it, is written to err). --help and --version set their field and return 0.
 * This is the one place the command line is checked: every value in struct fx_config is valid for the
 * module it goes to. Call fx_config_free afterwards whatever the result. */
int fx_config_parse(struct fx_config *config, int argc, char **argv, FILE *err);
/* Frees the strings the config owns. The config must have been through fx_config_parse. */
void fx_config_free(struct fx_config *config);
/* Writes the usage: every flag with its default and help. */
void fx_config_usage(FILE *out);

/* Parses a Go-style duration ("100ms", "15s", "5m", "24h", "1h30m", "0") into milliseconds. Returns 0 or -1.
 */
int fx_duration_parse(const char *text, int64_t *ms);

#endif
