/* The operator's maps (see map_files.h): created in order (rates, interface names, addresses, reload list,
 * SNMP poller), destroyed in reverse.
 *
 * Thread: main creates, registers and destroys; reloads come from main's signal loop or the HTTP thread. */
#include "fx/map_files.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "fx/iface_info.h"
#include "fx/reload.h"
#include "fx/snmp_poller.h"

#define SNMP_MAX_RETRY_MS 30000

struct fx_map_files {
	struct fx_sampling *sampling;
	struct fx_iface_info *interfaces;
	struct fx_exporter_peers *peers; /* with --interface-names or --snmp, else NULL */
	struct fx_reload *reload;
	struct fx_snmp_poller *snmp;
};

/* Prints why a map file given on the command line was refused. Returns 2, the exit code. */
static int file_error(const char *flag, const char *path, const struct fx_parse_error *error)
{
	if (error->line)
		fprintf(stderr, "flow-exporter: invalid --%s %s: line %zu: %s\n", flag, path, error->line,
			error->message);
	else
		fprintf(stderr, "flow-exporter: invalid --%s: %s\n", flag, error->message);
	return 2;
}

static void want_snmp(void *opaque, const char *const *hostnames, size_t n)
{
	fx_snmp_poller_want(opaque, hostnames, n);
}

/* Adds a reloadable source when its file was given. Returns 0 or 1. */
static int add_source(struct fx_map_files *maps, const char *flag, const char *path, fx_reload_fn fn,
		      void *opaque)
{
	char what[4096];
	if (!path[0])
		return 0;
	snprintf(what, sizeof(what), "--%s %s", flag, path);
	return fx_reload_add(maps->reload, what, fn, opaque) ? 1 : 0;
}

/* --snmp: the secrets and the address map are read now; a bad one is exit code 2. */
static int start_snmp(struct fx_map_files *maps, const struct fx_config *config)
{
	struct fx_parse_error error = {0};
	if (!config->snmp)
		return 0;
	assert(config->snmp_refresh_ms > 0 && config->snmp_timeout_ms > 0); /* config.c */
	struct fx_snmp_poller_config snmp = {
	    .auth = {.version = config->snmp_version,
		     .user = config->snmp_user,
		     .auth_protocol = config->snmp_auth_protocol,
		     .priv_protocol = config->snmp_priv_protocol,
		     .timeout_ms = config->snmp_timeout_ms,
		     .retries = (int)config->snmp_retries},
	    .community_file = config->snmp_community_file,
	    .auth_passphrase_file = config->snmp_auth_passphrase_file,
	    .priv_passphrase_file = config->snmp_priv_passphrase_file,
	    .addresses_file = config->snmp_addresses,
	    .cache_file = config->snmp_cache,
	    .refresh_ms = config->snmp_refresh_ms,
	    .retry_ms =
		config->snmp_refresh_ms < SNMP_MAX_RETRY_MS ? config->snmp_refresh_ms : SNMP_MAX_RETRY_MS,
	    .info = maps->interfaces,
	    .peers = maps->peers,
	};
	if (!(maps->snmp = fx_snmp_poller_create(&snmp, &error))) {
		if (error.line)
			fprintf(stderr, "flow-exporter: invalid SNMP settings: line %zu: %s\n", error.line,
				error.message);
		else
			fprintf(stderr, "flow-exporter: invalid SNMP settings: %s\n", error.message);
		return 2;
	}
	fx_iface_info_set_listener(maps->interfaces, want_snmp, maps->snmp);
	return add_source(maps, "snmp-addresses", config->snmp_addresses, fx_snmp_poller_reload, maps->snmp);
}

static int start(struct fx_map_files *maps, const struct fx_config *config)
{
	struct fx_parse_error error = {0};
	struct fx_sampling_config sampling = {(uint32_t)config->sampling_rate, config->sampling_rates,
					      config->workers};
	if (!(maps->sampling = fx_sampling_create(&sampling, &error)))
		return file_error("sampling-rates", config->sampling_rates, &error);
	if (!(maps->interfaces = fx_iface_info_create(config->interface_names, &error)))
		return file_error("interface-names", config->interface_names, &error);
	if ((config->interface_names[0] || config->snmp) &&
	    !(maps->peers = fx_exporter_peers_create(FX_MAP_FILES_MAX_EXPORTERS)))
		return 1;
	fx_iface_info_set_peers(maps->interfaces, maps->peers);
	if (!(maps->reload = fx_reload_create()) ||
	    add_source(maps, "sampling-rates", config->sampling_rates, fx_sampling_reload, maps->sampling) ||
	    add_source(maps, "interface-names", config->interface_names, fx_iface_info_reload,
		       maps->interfaces))
		return 1;
	return start_snmp(maps, config);
}

struct fx_map_files *fx_map_files_create(const struct fx_config *config, int *status)
{
	struct fx_map_files *maps = calloc(1, sizeof(*maps));
	*status = 1;
	if (!maps)
		return NULL;
	*status = start(maps, config);
	if (*status) {
		fx_map_files_destroy(maps);
		return NULL;
	}
	return maps;
}

void fx_map_files_destroy(struct fx_map_files *maps)
{
	if (!maps)
		return;
	fx_snmp_poller_destroy(maps->snmp); /* it hands names to interfaces: first */
	fx_reload_destroy(maps->reload);
	fx_iface_info_destroy(maps->interfaces);
	fx_exporter_peers_destroy(maps->peers);
	fx_sampling_destroy(maps->sampling);
	free(maps);
}

struct fx_sampling *fx_map_files_sampling(struct fx_map_files *maps)
{
	return maps->sampling;
}

struct fx_exporter_peers *fx_map_files_peers(struct fx_map_files *maps)
{
	return maps->peers;
}

struct fx_iface_info *fx_map_files_interfaces(struct fx_map_files *maps)
{
	return maps->interfaces;
}

int fx_map_files_register(struct fx_map_files *maps, struct fx_store *store)
{
	if (fx_store_add_collector(store, fx_sampling_collect, maps->sampling) ||
	    fx_store_add_snapshot_collector(store, fx_iface_info_collect, maps->interfaces) ||
	    fx_store_add_collector(store, fx_reload_collect, maps->reload) ||
	    (maps->snmp && fx_store_add_collector(store, fx_snmp_poller_collect, maps->snmp)))
		return -1;
	return 0;
}

int fx_map_files_reload(struct fx_map_files *maps, const char *trigger, char *message, size_t size)
{
	return fx_reload_all(maps->reload, trigger, message, size);
}

int fx_map_files_reload_http(void *maps, char *message, size_t size)
{
	return fx_map_files_reload(maps, "POST /-/reload", message, size);
}
