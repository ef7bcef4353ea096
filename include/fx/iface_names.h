/* The interface names in force, as one value: a reference to the --interface-names map and one to the SNMP
 * map, the registry of the addresses behind hostname labels, and the one rule that picks an interface's
 * entry among them. flow_interface_info (iface_info.c) and the inline labels iface_in_name ...
 * (series_labels.c) both name interfaces through fx_iface_names_find, so they always agree.
 *
 * A snapshot carries one (fx_snapshot.interfaces), taken when the snapshot is taken: a reload or an SNMP
 * refresh that swaps a map applies from the next snapshot, and a snapshot's names never change.
 *
 * Thread: any. Immutable once made; reference-counted. The address registry locks itself. */
#ifndef FX_IFACE_NAMES_H
#define FX_IFACE_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "fx/exporter_peers.h"
#include "fx/iface_map.h"

struct fx_iface_names;

/* Takes ownership of the references file and snmp (either may be NULL). peers is borrowed (NULL: the file
 * names exporters by hostname only) and must outlive every reference to the result. NULL on allocation
 * failure (the map references are then dropped). The reference returned is the caller's. */
struct fx_iface_names *fx_iface_names_create(struct fx_iface_map *file, struct fx_iface_map *snmp,
					     struct fx_exporter_peers *peers);
struct fx_iface_names *fx_iface_names_ref(struct fx_iface_names *names);
void fx_iface_names_unref(struct fx_iface_names *names); /* accepts NULL */

/* The entry naming interface ifindex of the exporter whose hostname label is `hostname` (interned): the
 * file's by hostname, else the file's by the address noted behind the hostname (peer_ip_src), else
 * SNMP's; NULL when none names it (or names is NULL). Valid while the reference is held. Takes the
 * registry's lock only when the file has entries but none for the hostname. */
const struct fx_iface_entry *fx_iface_names_find(const struct fx_iface_names *names, const char *hostname,
						 uint32_t ifindex);

/* The maps (borrowed from names; NULL when none): for counting what each source names. */
const struct fx_iface_map *fx_iface_names_file(const struct fx_iface_names *names);
const struct fx_iface_map *fx_iface_names_snmp(const struct fx_iface_names *names);

#endif
