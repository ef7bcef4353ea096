/* Interface names from SNMP (--snmp): a background thread polls each exporter the flow series use for
 * ifName, ifAlias and ifHighSpeed (snmp_client.h), every refresh interval, and hands the names to
 * iface_info as one immutable map. The exporter's agent is its address from --snmp-addresses (CSV
 * `exporter,address`), else its hostname when that is an IP address, else the peer_ip_src its records
 * carry (exporter_peers.h), port 161. The last names
 * are kept in a cache file (the --interface-names format) that is loaded at start, so a restart with the
 * agents unreachable still has names. A dead agent only delays the poller thread; counting never waits.
 *
 * Thread: fx_snmp_poller runs one thread of its own; fx_snmp_poller_want and fx_snmp_poller_collect may
 * be called from any thread. */
#ifndef FX_SNMP_POLLER_H
#define FX_SNMP_POLLER_H

#include <stdint.h>

#include "fx/csv.h"
#include "fx/family_list.h"
#include "fx/iface_info.h"
#include "fx/snmp_client.h"

struct fx_snmp_poller_config {
	/* version, user, protocols, timeout and retries; the secrets are read from the files below. */
	struct fx_snmp_auth auth;
	const char *community_file;	  /* --snmp-community-file (v2c) */
	const char *auth_passphrase_file; /* --snmp-auth-passphrase-file (v3; NULL or "": noAuthNoPriv) */
	const char *priv_passphrase_file; /* --snmp-priv-passphrase-file (v3; NULL or "": no privacy) */
	const char *addresses_file;	  /* --snmp-addresses; NULL or "" for none */
	const char *cache_file;		  /* NULL or "" for none */
	int64_t refresh_ms;
	int64_t retry_ms;		 /* after a failure */
	struct fx_iface_info *info;	 /* borrowed; receives the names */
	struct fx_exporter_peers *peers; /* borrowed; the address behind a hostname label; may be NULL */
};

struct fx_snmp_poller;

/* Reads the secret files and the addresses file (a bad one: NULL with *error naming the flag, a startup
 * error) and the cache (a bad or missing
 * cache is logged, not fatal), then starts the thread. */
struct fx_snmp_poller *fx_snmp_poller_create(const struct fx_snmp_poller_config *config,
					     struct fx_parse_error *error);
void fx_snmp_poller_destroy(struct fx_snmp_poller *poller); /* stops the thread; accepts NULL */

/* The hostnames the flow series use now (borrowed for the call). Cheap: compared with the last list. */
void fx_snmp_poller_want(struct fx_snmp_poller *poller, const char *const *hostnames, size_t n);

/* Re-reads the addresses file. An fx_reload_fn. */
int fx_snmp_poller_reload(void *poller, struct fx_parse_error *error);

/* flow_exporter_snmp_polls_total{hostname, result}, flow_exporter_snmp_last_success_timestamp_seconds
 * {hostname}, flow_exporter_snmp_exporters_unaddressed. An fx_collect_fn. */
int fx_snmp_poller_collect(void *poller, struct fx_family_list *out);

#endif
