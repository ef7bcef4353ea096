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

#define FX_DEFAULT_ASN_NAMES_URL "http://www.cidr-report.org/as2.0/asn.txt"
#define FX_MAX_REPEAT 16

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
	int64_t flush_ms;
	uint64_t max_record_bytes;
	/* counting */
	struct fx_local_asns local;
	bool asn_given;
	uint32_t label_mask;
	uint64_t max_series;
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
	/* push */
	const char *remote_write_urls[FX_MAX_REPEAT];
	size_t n_remote_write_urls;
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
	/* process */
	uint64_t demo_rate;
	int64_t shutdown_timeout_ms;
	char *log_level;
	bool help;
	bool version;
	/* every string above is owned here */
	char *owned[256];
	size_t n_owned;
};

/* Sets every default, then parses argv. Returns 0 on success, 2 on a bad flag or value (the message,
 * naming it, is written to err). --help and --version set their field and return 0. */
int fx_config_parse(struct fx_config *config, int argc, char **argv, FILE *err);
void fx_config_free(struct fx_config *config);
/* Writes the usage: every flag with its default and help. */
void fx_config_usage(FILE *out);

/* Parses a Go-style duration ("100ms", "15s", "5m", "24h", "1h30m", "0") into milliseconds. Returns 0 or -1. */
int fx_duration_parse(const char *text, int64_t *ms);

#endif
