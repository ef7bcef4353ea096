/* Interface names: an immutable (exporter, ifindex) -> name, description, speed map, parsed from the
 * --interface-names CSV file (RFC 4180) with the header line `exporter,ifindex,name,description,speed`, as
 * operators export it from their inventory. `exporter` is the value of the `hostname` label (pmacct's
 * label, else the exporter's IP), `speed` is in bits per second; `description` and `speed` may be empty.
 * Pure: text in, map out, no I/O. Maps are reference-counted and never change once built.
 *
 * Thread: any. */
#ifndef FX_IFACE_MAP_H
#define FX_IFACE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fx/csv.h"

#define FX_IFACE_MAP_MAX_ENTRIES 1000000

struct fx_iface_entry {
	const char *exporter; /* NUL-terminated, owned by the map */
	uint32_t ifindex;
	const char *name;	 /* never empty */
	const char *description; /* "" when none */
	uint64_t speed_bps;
	bool has_speed;
};

struct fx_iface_map;

/* Parses the file's text. Returns 0 with *out set (the caller's reference), or -1 with *error naming the
 * line (a missing or wrong header, a wrong number of fields, an empty exporter or name, an ifindex or
 * speed that is not a whole number in range, a duplicate (exporter, ifindex), bad CSV or UTF-8). */
__attribute__((warn_unused_result)) int
fx_iface_map_parse(const char *text, size_t len, struct fx_iface_map **out, struct fx_parse_error *error);

/* Builds a map from entries (copied), for sources other than the file (SNMP). A later entry for the same
 * (exporter, ifindex) is ignored. Returns NULL on allocation failure. */
struct fx_iface_map *fx_iface_map_build(const struct fx_iface_entry *entries, size_t n);

/* The entry of (exporter, ifindex), or NULL (also when map is NULL). Valid while the reference is held. */
const struct fx_iface_entry *fx_iface_map_lookup(const struct fx_iface_map *map, const char *exporter,
						 uint32_t ifindex);
size_t fx_iface_map_count(const struct fx_iface_map *map);
/* Entry i, in (exporter, ifindex) order. */
const struct fx_iface_entry *fx_iface_map_entry(const struct fx_iface_map *map, size_t i);
struct fx_iface_map *fx_iface_map_ref(struct fx_iface_map *map);
void fx_iface_map_unref(struct fx_iface_map *map); /* accepts NULL */

#endif
