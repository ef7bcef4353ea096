/* The interface names in force (see iface_names.h): two map references and the address registry, and the
 * rule that names an interface. The file wins over SNMP for the interfaces it names; it names an exporter
 * by its hostname label or by its address (the hostname wins when both name an interface).
 *
 * Thread: any; nothing changes after create but the reference count (atomic). */
#include "fx/iface_names.h"

#include <stdatomic.h>
#include <stdlib.h>

#define PEER_MAX 64 /* an IPv6 address in text is at most 45 bytes */

struct fx_iface_names {
	atomic_uint refs;
	struct fx_iface_map *file;
	struct fx_iface_map *snmp;
	struct fx_exporter_peers *peers; /* borrowed; NULL: none */
};

struct fx_iface_names *fx_iface_names_create(struct fx_iface_map *file, struct fx_iface_map *snmp,
					     struct fx_exporter_peers *peers)
{
	struct fx_iface_names *names = malloc(sizeof(*names));
	if (!names) {
		fx_iface_map_unref(file);
		fx_iface_map_unref(snmp);
		return NULL;
	}
	atomic_init(&names->refs, 1);
	names->file = file;
	names->snmp = snmp;
	names->peers = peers;
	return names;
}

struct fx_iface_names *fx_iface_names_ref(struct fx_iface_names *names)
{
	atomic_fetch_add_explicit(&names->refs, 1, memory_order_relaxed);
	return names;
}

void fx_iface_names_unref(struct fx_iface_names *names)
{
	if (!names || atomic_fetch_sub_explicit(&names->refs, 1, memory_order_acq_rel) != 1)
		return;
	fx_iface_map_unref(names->file);
	fx_iface_map_unref(names->snmp);
	free(names);
}

const struct fx_iface_entry *fx_iface_names_find(const struct fx_iface_names *names, const char *hostname,
						 uint32_t ifindex)
{
	if (!names || !hostname)
		return NULL;
	const struct fx_iface_entry *entry = fx_iface_map_lookup(names->file, hostname, ifindex);
	char peer[PEER_MAX];
	if (!entry && fx_iface_map_count(names->file) &&
	    fx_exporter_peers_get(names->peers, hostname, peer, sizeof(peer)))
		entry = fx_iface_map_lookup(names->file, peer, ifindex);
	if (!entry)
		entry = fx_iface_map_lookup(names->snmp, hostname, ifindex);
	return entry;
}

const struct fx_iface_map *fx_iface_names_file(const struct fx_iface_names *names)
{
	return names ? names->file : NULL;
}

const struct fx_iface_map *fx_iface_names_snmp(const struct fx_iface_names *names)
{
	return names ? names->snmp : NULL;
}
