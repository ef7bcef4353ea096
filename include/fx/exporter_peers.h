/* Which exporter address (pmacct's peer_ip_src) stands behind each hostname label: the consumer threads
 * note it (rarely: a per-thread cache answers almost every record), the interface names look it up, so that
 * --interface-names can name an exporter by its IP and SNMP can poll a labelled exporter at its address.
 * Bounded: hostnames past `max` are not noted (and counted).
 *
 * Thread: every function from any thread (one mutex; consumer threads take it only for a new pair). */
#ifndef FX_EXPORTER_PEERS_H
#define FX_EXPORTER_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fx_exporter_peers;

struct fx_exporter_peers *fx_exporter_peers_create(size_t max);
void fx_exporter_peers_destroy(struct fx_exporter_peers *peers); /* accepts NULL */

/* hostname is interned (compared by pointer, kept borrowed: the intern pool outlives this registry). */
void fx_exporter_peers_note(struct fx_exporter_peers *peers, const char *hostname, const char *peer,
			    size_t len);

/* The last address noted for hostname into buf (NUL-terminated); false when none (or peers is NULL). */
bool fx_exporter_peers_get(struct fx_exporter_peers *peers, const char *hostname, char *buf, size_t size);

/* Notes refused by the bound, since creation. */
uint64_t fx_exporter_peers_refused(struct fx_exporter_peers *peers);

#endif
