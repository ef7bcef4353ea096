/* The AS-name map: an immutable ASN -> name table parsed from cidr-report's asn.txt format
 * ("<asn>\t<name>, <CC>" per line, as the Go program used), shared by reference count. Pure: asn_names.h
 * loads, caches and refreshes it.
 *
 * Thread: any; a map may be read by any number of threads while they hold a reference. */
#ifndef FX_ASN_MAP_H
#define FX_ASN_MAP_H

#include <stddef.h>
#include <stdint.h>

/* An immutable ASN -> name map. */
struct fx_asn_map;

/* Parses asn.txt text. Lines that do not match are skipped and counted in *bad_lines (may be NULL).
 * Names are stored without the trailing ", CC" country code, with invalid UTF-8 removed.
 * Returns NULL on allocation failure. */
struct fx_asn_map *fx_asn_map_parse(const char *text, size_t len, size_t *bad_lines);
/* The name of asn, or NULL when unknown (or map is NULL). Valid while the caller holds its reference. */
const char *fx_asn_map_lookup(const struct fx_asn_map *map, uint32_t asn);
size_t fx_asn_map_count(const struct fx_asn_map *map);
struct fx_asn_map *fx_asn_map_ref(struct fx_asn_map *map);
/* Drops a reference; the last one frees the map. Accepts NULL. */
void fx_asn_map_unref(struct fx_asn_map *map);

#endif
