/* One SNMP agent's interfaces (IF-MIB ifName, ifAlias, ifHighSpeed), read with net-snmp's single-session
 * API (GETBULK walks, SNMP v2c or v3 USM). No state between calls; blocking for at most about
 * timeout x (retries + 1) per request.
 *
 * Thread: the poller thread only (net-snmp is initialised there; see snmp_poller.c). */
#ifndef FX_SNMP_CLIENT_H
#define FX_SNMP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fx_snmp_auth {
	int version;		     /* 2 (v2c) or 3 */
	const char *community;	     /* v2c: the community (a secret, read from a file) */
	const char *user;	     /* v3 */
	const char *auth_protocol;   /* v3: "MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512" */
	const char *auth_passphrase; /* v3: NULL = noAuthNoPriv */
	const char *priv_protocol;   /* v3: "DES", "AES", "AES-192", "AES-256" */
	const char *priv_passphrase; /* v3: NULL = no privacy */
	int64_t timeout_ms;
	int retries;
};

struct fx_snmp_interface {
	uint32_t ifindex;
	char *name;	    /* ifName; never empty */
	char *alias;	    /* ifAlias; "" when none */
	uint64_t speed_bps; /* ifHighSpeed x 1,000,000 */
	bool has_speed;
};

struct fx_snmp_interfaces {
	struct fx_snmp_interface *rows; /* by ifindex */
	size_t n;
};

/* Whether the protocol names are known. Returns 0 or -1 with why (for the flags). */
int fx_snmp_check_protocols(const char *auth_protocol, const char *priv_protocol, char *why, size_t size);

/* Walks the agent (a net-snmp peer name: "host", "host:port", "udp:host:port", "udp6:[addr]:port").
 * Returns 0 with *out filled (free with fx_snmp_interfaces_free), or -1 with why set (never holding a
 * secret). At most max_rows interfaces are read. */
int fx_snmp_walk_interfaces(const struct fx_snmp_auth *auth, const char *agent, size_t max_rows,
			    struct fx_snmp_interfaces *out, char *why, size_t size);
void fx_snmp_interfaces_free(struct fx_snmp_interfaces *interfaces);

#endif
