/* The interface metrics: flow_interface_info{hostname, ifindex, name, description} 1 and
 * flow_interface_speed_bps{hostname, ifindex} for every interface the flow series use (their hostname with
 * iface_in or iface_out), so that PromQL can join names onto the flow counters without a label per sample.
 *
 * Names come from the --interface-names file and from SNMP (snmp_poller.h); the file wins for the
 * interfaces it names. Each source is an immutable map swapped by reference: a reload or an SNMP refresh
 * builds a new one off the hot path; a snapshot takes the current ones for the time of one collect.
 *
 * Thread: every function from any thread. */
#ifndef FX_IFACE_INFO_H
#define FX_IFACE_INFO_H

#include "fx/csv.h"
#include "fx/exporter_peers.h"
#include "fx/family_list.h"
#include "fx/iface_map.h"
#include "fx/iface_names.h"
#include "fx/snapshot.h"

struct fx_iface_info;

/* names_file: --interface-names, NULL or "" for none (copied). Reads it before returning: NULL with *error
 * set when it cannot be read or parsed (a startup error) or on allocation failure. */
struct fx_iface_info *fx_iface_info_create(const char *names_file, struct fx_parse_error *error);
void fx_iface_info_destroy(struct fx_iface_info *info); /* accepts NULL */

/* Re-reads the file (nothing to do without one). On failure the previous names stay and *error names the
 * line. Returns 0 or -1. */
int fx_iface_info_reload(void *info, struct fx_parse_error *error);

/* Replaces the SNMP map; takes ownership of the caller's reference (NULL: none). */
void fx_iface_info_set_snmp(struct fx_iface_info *info, struct fx_iface_map *map);

/* Told, at each collect, the distinct hostnames whose interfaces the series use (the SNMP poller's
 * fx_snmp_poller_want). Call before threads start. */
void fx_iface_info_set_listener(struct fx_iface_info *info,
				void (*want)(void *opaque, const char *const *hostnames, size_t n),
				void *opaque);

/* Where the file may also name an exporter by its address (peer_ip_src) when its hostname is a label.
 * Borrowed; call before threads start. */
void fx_iface_info_set_peers(struct fx_iface_info *info, struct fx_exporter_peers *peers);

/* The current maps with a reference each (fx_iface_map_unref them); either may be NULL. */
void fx_iface_info_acquire(struct fx_iface_info *info, struct fx_iface_map **file,
			   struct fx_iface_map **snmp);

/* The names in force (the current maps and the address registry) as one value for a snapshot, with the
 * caller's reference; NULL on allocation failure. The value borrows the registry of fx_iface_info_set_peers,
 * which outlives every snapshot (map_files.h: destroyed after every snapshot taker). */
struct fx_iface_names *fx_iface_info_acquire_names(struct fx_iface_info *info);

/* flow_interface_info, flow_interface_speed_bps, flow_exporter_interface_names{source},
 * flow_exporter_interfaces_unnamed. Named with the snapshot's own names (snapshot->interfaces) when it
 * carries them, so that the info family and the inline labels of one snapshot agree; else with the names
 * in force. An fx_snapshot_collect_fn. */
int fx_iface_info_collect(void *info, const struct fx_snapshot *snapshot, struct fx_family_list *out);

#endif
