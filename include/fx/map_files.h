/* The operator's maps, as one part for main.c: the sampling rates (sampling.h), the interface names from
 * the file and from SNMP (iface_info.h, snmp_poller.h), the exporter addresses behind hostname labels
 * (exporter_peers.h), and their live reload (reload.h). Built from the configuration before anything
 * starts; a bad file or setting stops startup with a message naming the flag (exit code 2).
 *
 * Thread: create, register and destroy from main; the reload functions from any thread. */
#ifndef FX_MAP_FILES_H
#define FX_MAP_FILES_H

#include <stddef.h>

#include "fx/config.h"
#include "fx/exporter_peers.h"
#include "fx/iface_info.h"
#include "fx/sampling.h"
#include "fx/store.h"

#define FX_MAP_FILES_MAX_EXPORTERS 65536 /* hostnames whose address is noted */

struct fx_map_files;

/* Reads every map file given and starts the SNMP poller (with --snmp). Returns NULL with *status set: 2
 * for a bad file or setting (the message, naming the flag, is printed to stderr), 1 otherwise. */
struct fx_map_files *fx_map_files_create(const struct fx_config *config, int *status);
/* After every snapshot taker and consumer thread is gone. Accepts NULL. */
void fx_map_files_destroy(struct fx_map_files *maps);

/* Borrowed, for the consumer threads' ingest steps (fx_ingest_config). peers may be NULL. */
struct fx_sampling *fx_map_files_sampling(struct fx_map_files *maps);
struct fx_exporter_peers *fx_map_files_peers(struct fx_map_files *maps);
/* Borrowed: the interface names (the store acquires them for every snapshot). Never NULL. */
struct fx_iface_info *fx_map_files_interfaces(struct fx_map_files *maps);

/* Registers the collectors (rates, interface metrics, SNMP, reload). Before threads start. 0 or -1. */
int fx_map_files_register(struct fx_map_files *maps, struct fx_store *store);

/* Re-reads every file given (SIGHUP, POST /-/reload); see fx_reload_all. */
int fx_map_files_reload(struct fx_map_files *maps, const char *trigger, char *message, size_t size);
/* The same for POST /-/reload, in fx_http_server_set_reload's shape. */
int fx_map_files_reload_http(void *maps, char *message, size_t size);

#endif
