/* The SNMP poller (see snmp_poller.h).
 *
 * DESIGN
 * `states` holds one entry per exporter ever wanted or found in the cache (bounded by MAX_EXPORTERS), each
 * with its last interfaces and its poll schedule. The thread picks the most overdue wanted exporter with an
 * address, polls it with no lock held, stores the result, then rebuilds the whole SNMP map (an immutable
 * fx_iface_map handed to iface_info) and rewrites the cache. Failures keep the previous interfaces.
 *
 * Thread: `lock` guards states, the address map and `stop`; net-snmp is used by the poller thread only. */
#include "fx/snmp_poller.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fx/clock.h"
#include "fx/log.h"
#include "fx/thread_name.h"

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>

#define MAX_EXPORTERS 4096
#define MAX_INTERFACES_PER_AGENT 65536

struct exporter_state {
	char *hostname;
	char peer[64]; /* the address its records carry (peer_ip_src), "" when unknown */
	struct fx_snmp_interfaces interfaces;
	bool wanted;
	bool unaddressed;
	int64_t next_poll_ms;	 /* monotonic */
	int64_t last_success_ms; /* wall clock; 0 = never (this process or the cache) */
	uint64_t successes, failures;
};

struct address {
	char *exporter, *agent;
};

struct fx_snmp_poller {
	struct fx_snmp_auth auth;
	char *secrets[4]; /* owned copies behind auth's strings */
	char *addresses_file, *cache_file;
	int64_t refresh_ms, retry_ms;
	struct fx_iface_info *info;
	struct fx_exporter_peers *peers;

	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	struct exporter_state *states;
	size_t n_states;
	struct address *addresses;
	size_t n_addresses;
	pthread_t thread;
	bool started;
};

static char *copy_or_null(const char *text)
{
	return text ? strdup(text) : NULL;
}

static void free_addresses(struct address *addresses, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(addresses[i].exporter);
		free(addresses[i].agent);
	}
	free(addresses);
}

/* Reads --snmp-addresses: header `exporter,address`, then one exporter a line. */
static int load_addresses(const char *path, struct address **out, size_t *n, struct fx_parse_error *error)
{
	size_t len;
	struct fx_csv csv;
	struct fx_csv_record record;
	char *text = fx_read_file(path, 16u << 20, &len, error);
	if (!text)
		return -1;
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	struct address *addresses = calloc(lines, sizeof(*addresses));
	size_t count = 0;
	int rc = -1;
	fx_csv_init(&csv, text, len);
	int got = addresses ? fx_csv_next(&csv, &record, error) : -1;
	if (got == 0 || (got == 1 && (record.n_fields != 2 || strcmp(record.fields[0], "exporter") ||
				      strcmp(record.fields[1], "address")))) {
		fx_parse_fail(error, 1, "the first line must be the header \"exporter,address\"");
		goto out;
	}
	if (got < 0)
		goto out;
	while ((got = fx_csv_next(&csv, &record, error)) == 1) {
		if (record.n_fields != 2 || !record.lens[0] || !record.lens[1]) {
			fx_parse_fail(error, record.line, "expected 2 non-empty fields (exporter,address)");
			goto out;
		}
		for (size_t i = 0; i < count; i++)
			if (!strcmp(addresses[i].exporter, record.fields[0])) {
				fx_parse_fail(error, record.line, "exporter \"%s\" is named twice",
					      record.fields[0]);
				goto out;
			}
		addresses[count].exporter = strdup(record.fields[0]);
		addresses[count].agent = strdup(record.fields[1]);
		if (!addresses[count++].agent) {
			fx_parse_fail(error, record.line, "out of memory");
			goto out;
		}
	}
	if (got == 0) {
		*out = addresses;
		*n = count;
		addresses = NULL;
		count = 0;
		rc = 0;
	}
out:
	free_addresses(addresses, count);
	free(text);
	return rc;
}

/* A net-snmp peer name for an IP address at port 161, or false when text is no address. */
static bool agent_at(const char *text, char *buf, size_t size)
{
	unsigned char addr[16];
	if (inet_pton(AF_INET, text, addr) == 1) {
		snprintf(buf, size, "udp:%s:161", text);
		return true;
	}
	if (inet_pton(AF_INET6, text, addr) == 1) {
		snprintf(buf, size, "udp6:[%s]:161", text);
		return true;
	}
	return false;
}

/* The agent to poll for an exporter into buf, or false: --snmp-addresses, else its hostname when that is
 * an address, else the address its records carry. Under lock. */
static bool agent_of(const struct fx_snmp_poller *poller, const struct exporter_state *state, char *buf,
		     size_t size)
{
	for (size_t i = 0; i < poller->n_addresses; i++)
		if (!strcmp(poller->addresses[i].exporter, state->hostname)) {
			snprintf(buf, size, "%s", poller->addresses[i].agent);
			return true;
		}
	return agent_at(state->hostname, buf, size) || agent_at(state->peer, buf, size);
}

static struct exporter_state *state_of(struct fx_snmp_poller *poller, const char *hostname, bool create)
{
	for (size_t i = 0; i < poller->n_states; i++)
		if (!strcmp(poller->states[i].hostname, hostname))
			return &poller->states[i];
	if (!create || poller->n_states == MAX_EXPORTERS)
		return NULL;
	struct exporter_state *state = &poller->states[poller->n_states];
	*state = (struct exporter_state){.hostname = strdup(hostname)};
	if (!state->hostname)
		return NULL;
	poller->n_states++;
	return state;
}

/* Writes one CSV field, quoted (RFC 4180). */
static void put_field(FILE *file, const char *text, bool last)
{
	fputc('"', file);
	for (const char *p = text; *p; p++) {
		if (*p == '"')
			fputc('"', file);
		fputc(*p, file);
	}
	fputs(last ? "\"\n" : "\",", file);
}

static void write_cache(const struct fx_snmp_poller *poller, const struct fx_iface_map *map)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", poller->cache_file);
	FILE *file = fopen(tmp, "w");
	if (!file) {
		fx_warn("snmp: cannot write the cache %s: %s", tmp, strerror(errno));
		return;
	}
	fputs("exporter,ifindex,name,description,speed\n", file);
	for (size_t i = 0; i < fx_iface_map_count(map); i++) {
		const struct fx_iface_entry *entry = fx_iface_map_entry(map, i);
		put_field(file, entry->exporter, false);
		fprintf(file, "%" PRIu32 ",", entry->ifindex);
		put_field(file, entry->name, false);
		put_field(file, entry->description, false);
		if (entry->has_speed)
			fprintf(file, "%" PRIu64, entry->speed_bps);
		fputc('\n', file);
	}
	bool ok = fflush(file) == 0 && fsync(fileno(file)) == 0;
	ok = fclose(file) == 0 && ok;
	if (!ok || rename(tmp, poller->cache_file) != 0)
		fx_warn("snmp: cannot write the cache %s: %s", poller->cache_file, strerror(errno));
}

/* Rebuilds the SNMP map from every exporter's last interfaces and hands it over. Under lock. */
static struct fx_iface_map *publish(struct fx_snmp_poller *poller)
{
	size_t total = 0;
	for (size_t i = 0; i < poller->n_states; i++)
		total += poller->states[i].interfaces.n;
	struct fx_iface_entry *entries = calloc(total ? total : 1, sizeof(*entries));
	if (!entries)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < poller->n_states; i++) {
		const struct exporter_state *state = &poller->states[i];
		for (size_t r = 0; r < state->interfaces.n; r++) {
			const struct fx_snmp_interface *row = &state->interfaces.rows[r];
			entries[n++] =
			    (struct fx_iface_entry){state->hostname, row->ifindex,   row->name,
						    row->alias,	     row->speed_bps, row->has_speed};
		}
	}
	struct fx_iface_map *map = fx_iface_map_build(entries, n);
	free(entries);
	if (map)
		fx_iface_info_set_snmp(poller->info, fx_iface_map_ref(map));
	return map;
}

/* The cache file's interfaces, as if polled before (their time unknown): names from the start. */
static void load_cache(struct fx_snmp_poller *poller)
{
	struct fx_parse_error error = {0};
	struct fx_iface_map *map = NULL;
	size_t len;
	char *text = fx_read_file(poller->cache_file, 256u << 20, &len, &error);
	if (!text || fx_iface_map_parse(text, len, &map, &error)) {
		if (text || access(poller->cache_file, F_OK) == 0)
			fx_warn("snmp: cache %s not used: line %zu: %s", poller->cache_file, error.line,
				error.message);
		free(text);
		return;
	}
	free(text);
	for (size_t i = 0; i < fx_iface_map_count(map); i++) {
		const struct fx_iface_entry *entry = fx_iface_map_entry(map, i);
		struct exporter_state *state = state_of(poller, entry->exporter, true);
		struct fx_snmp_interface *rows =
		    state ? realloc(state->interfaces.rows, (state->interfaces.n + 1) * sizeof(*rows)) : NULL;
		if (!rows)
			break;
		state->interfaces.rows = rows;
		rows[state->interfaces.n++] = (struct fx_snmp_interface){entry->ifindex, strdup(entry->name),
									 strdup(entry->description),
									 entry->speed_bps, entry->has_speed};
	}
	fx_info("snmp: %zu interfaces of %zu exporters from the cache %s", fx_iface_map_count(map),
		poller->n_states, poller->cache_file);
	fx_iface_map_unref(map);
	fx_iface_map_unref(publish(poller));
}

/* The wanted exporter with an address whose poll is most overdue, or NULL; *wait_ms until the next one
 * is due. Under lock. */
static struct exporter_state *next_due(struct fx_snmp_poller *poller, char *agent, size_t size,
				       int64_t *wait_ms)
{
	int64_t now = fx_mono_ms();
	struct exporter_state *best = NULL;
	*wait_ms = 1000;
	for (size_t i = 0; i < poller->n_states; i++) {
		struct exporter_state *state = &poller->states[i];
		char candidate[512];
		state->unaddressed = state->wanted && !agent_of(poller, state, candidate, sizeof(candidate));
		if (!state->wanted || state->unaddressed)
			continue;
		if (state->next_poll_ms > now) {
			if (state->next_poll_ms - now < *wait_ms)
				*wait_ms = state->next_poll_ms - now;
			continue;
		}
		if (!best || state->next_poll_ms < best->next_poll_ms) {
			best = state;
			snprintf(agent, size, "%s", candidate);
		}
	}
	return best;
}

static void poll_one(struct fx_snmp_poller *poller, struct exporter_state *state, const char *agent)
{
	char hostname[1024], why[512] = "";
	struct fx_snmp_interfaces interfaces;
	snprintf(hostname, sizeof(hostname), "%s", state->hostname);
	pthread_mutex_unlock(&poller->lock);
	int rc = fx_snmp_walk_interfaces(&poller->auth, agent, MAX_INTERFACES_PER_AGENT, &interfaces, why,
					 sizeof(why));
	pthread_mutex_lock(&poller->lock);
	/* states never moves and never shrinks: the pointer is still this exporter's. */
	if (rc) {
		state->failures++;
		state->next_poll_ms = fx_mono_ms() + poller->retry_ms;
		fx_warn("snmp: %s (%s): %s; its previous names stay", hostname, agent, why);
		return;
	}
	fx_snmp_interfaces_free(&state->interfaces);
	state->interfaces = interfaces;
	state->successes++;
	state->last_success_ms = fx_wall_ms();
	state->next_poll_ms = fx_mono_ms() + poller->refresh_ms;
	fx_info("snmp: %s (%s): %zu interfaces", hostname, agent, interfaces.n);
	struct fx_iface_map *map = publish(poller);
	if (map && poller->cache_file)
		write_cache(poller, map);
	fx_iface_map_unref(map);
}

static void *run(void *opaque)
{
	struct fx_snmp_poller *poller = opaque;
	/* net-snmp keeps no state on disk for us and logs nothing by itself: errors come back per call. */
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_LOAD, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_SAVE, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_PERSIST_STATE, 1);
	/* Numeric OIDs only: no MIB is read, so none can be missing (Debian ships net-snmp without the IETF
	 * MIBs, and loading them otherwise prints hundreds of lines at startup). */
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_MIB_ERRORS, 0);
	netsnmp_ds_set_int(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_MIB_WARNINGS, 0);
	netsnmp_set_mib_directory("");
	/* A handler that drops everything: with none at all, net-snmp falls back to stderr. */
	snmp_disable_log();
	netsnmp_register_loghandler(NETSNMP_LOGHANDLER_NONE, LOG_EMERG);
	init_snmp("flow-exporter");
	pthread_mutex_lock(&poller->lock);
	while (!poller->stop) {
		char agent[512];
		int64_t wait_ms;
		struct exporter_state *state = next_due(poller, agent, sizeof(agent), &wait_ms);
		if (state) {
			poll_one(poller, state, agent);
			continue;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait_ms / 1000;
		until.tv_nsec += (wait_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&poller->wake, &poller->lock, &until);
	}
	pthread_mutex_unlock(&poller->lock);
	snmp_shutdown("flow-exporter");
	return NULL;
}

/* A secret from a file: its first line, without the line end. NULL for no file; *failed when unreadable
 * or empty (the error names the flag, never the secret). */
static char *read_secret(const char *flag, const char *path, bool *failed, struct fx_parse_error *error)
{
	size_t len;
	if (!path || !path[0] || *failed)
		return NULL;
	char *text = fx_read_file(path, 4096, &len, error);
	if (text) {
		text[strcspn(text, "\r\n")] = '\0';
		if (text[0])
			return text;
		free(text);
		fx_parse_fail(error, 0, "--%s %s is empty", flag, path);
	} else {
		char why[sizeof(error->message)];
		snprintf(why, sizeof(why), "%s", error->message);
		fx_parse_fail(error, 0, "--%s: %s", flag, why);
	}
	*failed = true;
	return NULL;
}

static int copy_config(struct fx_snmp_poller *poller, const struct fx_snmp_poller_config *config,
		       struct fx_parse_error *error)
{
	bool failed = false;
	poller->auth = config->auth;
	poller->secrets[0] = read_secret("snmp-community-file", config->community_file, &failed, error);
	poller->secrets[1] = copy_or_null(config->auth.user);
	poller->secrets[2] =
	    read_secret("snmp-auth-passphrase-file", config->auth_passphrase_file, &failed, error);
	poller->secrets[3] =
	    read_secret("snmp-priv-passphrase-file", config->priv_passphrase_file, &failed, error);
	if (failed)
		return -1;
	if (config->auth.version != 3 && !poller->secrets[0])
		return fx_parse_fail(error, 0, "--snmp with v2c needs --snmp-community-file");
	if (config->auth.version == 3 && (!config->auth.user || !config->auth.user[0]))
		return fx_parse_fail(error, 0, "--snmp with v3 needs --snmp-user");
	if (poller->secrets[3] && !poller->secrets[2])
		return fx_parse_fail(error, 0,
				     "--snmp-priv-passphrase-file needs --snmp-auth-passphrase-file");
	poller->auth.community = poller->secrets[0] ? poller->secrets[0] : "";
	poller->auth.user = poller->secrets[1] ? poller->secrets[1] : "";
	poller->auth.auth_passphrase = poller->secrets[2];
	poller->auth.priv_passphrase = poller->secrets[3];
	poller->addresses_file =
	    config->addresses_file && config->addresses_file[0] ? strdup(config->addresses_file) : NULL;
	poller->cache_file = config->cache_file && config->cache_file[0] ? strdup(config->cache_file) : NULL;
	poller->refresh_ms = config->refresh_ms;
	poller->retry_ms = config->retry_ms;
	poller->info = config->info;
	poller->peers = config->peers;
	poller->states = calloc(MAX_EXPORTERS, sizeof(*poller->states));
	return poller->states ? 0 : fx_parse_fail(error, 0, "out of memory");
}

struct fx_snmp_poller *fx_snmp_poller_create(const struct fx_snmp_poller_config *config,
					     struct fx_parse_error *error)
{
	struct fx_snmp_poller *poller = calloc(1, sizeof(*poller));
	if (!poller) {
		fx_parse_fail(error, 0, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&poller->lock, NULL);
	pthread_cond_init(&poller->wake, NULL);
	if (copy_config(poller, config, error))
		goto fail;
	if (poller->addresses_file &&
	    load_addresses(poller->addresses_file, &poller->addresses, &poller->n_addresses, error)) {
		char why[sizeof(error->message)];
		snprintf(why, sizeof(why), "%s", error->message);
		fx_parse_fail(error, error->line, "--snmp-addresses %s: %s", poller->addresses_file, why);
		goto fail;
	}
	if (poller->cache_file)
		load_cache(poller);
	if (pthread_create(&poller->thread, NULL, run, poller)) {
		fx_parse_fail(error, 0, "cannot start the SNMP thread");
		goto fail;
	}
	poller->started = true;
	fx_thread_name(poller->thread, "snmp", -1);
	return poller;
fail:
	fx_snmp_poller_destroy(poller);
	return NULL;
}

void fx_snmp_poller_destroy(struct fx_snmp_poller *poller)
{
	if (!poller)
		return;
	if (poller->started) {
		pthread_mutex_lock(&poller->lock);
		poller->stop = true;
		pthread_cond_signal(&poller->wake);
		pthread_mutex_unlock(&poller->lock);
		pthread_join(poller->thread, NULL); /* at most one poll's timeout x (retries + 1) x 3 walks */
	}
	for (size_t i = 0; poller->states && i < poller->n_states; i++) {
		free(poller->states[i].hostname);
		fx_snmp_interfaces_free(&poller->states[i].interfaces);
	}
	free(poller->states);
	free_addresses(poller->addresses, poller->n_addresses);
	for (size_t i = 0; i < 4; i++) {
		if (poller->secrets[i])
			memset(poller->secrets[i], 0, strlen(poller->secrets[i]));
		free(poller->secrets[i]);
	}
	free(poller->addresses_file);
	free(poller->cache_file);
	pthread_mutex_destroy(&poller->lock);
	pthread_cond_destroy(&poller->wake);
	free(poller);
}

void fx_snmp_poller_want(struct fx_snmp_poller *poller, const char *const *hostnames, size_t n)
{
	bool added = false;
	pthread_mutex_lock(&poller->lock);
	for (size_t i = 0; i < poller->n_states; i++)
		poller->states[i].wanted = false;
	for (size_t i = 0; i < n; i++) {
		size_t before = poller->n_states;
		struct exporter_state *state = state_of(poller, hostnames[i], true);
		if (!state)
			continue;
		state->wanted = true;
		/* hostnames[] are the interned pointers the consumer threads noted the addresses under. */
		if (!fx_exporter_peers_get(poller->peers, hostnames[i], state->peer, sizeof(state->peer)))
			state->peer[0] = '\0';
		added = added || poller->n_states != before;
	}
	if (added)
		pthread_cond_signal(&poller->wake);
	pthread_mutex_unlock(&poller->lock);
}

int fx_snmp_poller_reload(void *opaque, struct fx_parse_error *error)
{
	struct fx_snmp_poller *poller = opaque;
	struct address *addresses = NULL;
	size_t n = 0;
	if (!poller->addresses_file)
		return 0;
	if (load_addresses(poller->addresses_file, &addresses, &n, error))
		return -1;
	pthread_mutex_lock(&poller->lock);
	free_addresses(poller->addresses, poller->n_addresses);
	poller->addresses = addresses;
	poller->n_addresses = n;
	for (size_t i = 0; i < poller->n_states; i++)
		poller->states[i].next_poll_ms = 0; /* an address may have changed: poll again now */
	pthread_cond_signal(&poller->wake);
	pthread_mutex_unlock(&poller->lock);
	return 0;
}

static int add_state(struct fx_family_list *out, const struct exporter_state *state, int family)
{
	struct fx_label labels[2] = {{"hostname", state->hostname},
				     {"result", family == 0 ? "success" : "failure"}};
	switch (family) {
	case 0:
		return fx_family_add_u64(out, state->successes, 2, labels);
	case 1:
		return fx_family_add_u64(out, state->failures, 2, labels);
	case 2:
		return state->last_success_ms
			   ? fx_family_add_double(out, (double)state->last_success_ms / 1000.0, 1, labels)
			   : 0;
	default:
		return fx_family_add_u64(out, state->interfaces.n, 1, labels);
	}
}

int fx_snmp_poller_collect(void *opaque, struct fx_family_list *out)
{
	struct fx_snmp_poller *poller = opaque;
	static const char *const names[][2] = {
	    {"flow_exporter_snmp_polls_total", "SNMP polls of each exporter's interfaces, by result."},
	    {NULL, NULL},
	    {"flow_exporter_snmp_last_success_timestamp_seconds",
	     "When each exporter was last polled (Unix time)."},
	    {"flow_exporter_snmp_interfaces", "Interfaces SNMP (or its cache) names, per exporter."},
	};
	static const enum fx_metric_type types[] = {FX_METRIC_COUNTER, FX_METRIC_COUNTER, FX_METRIC_GAUGE,
						    FX_METRIC_GAUGE};
	int rc = -1;
	size_t unaddressed = 0;
	pthread_mutex_lock(&poller->lock);
	for (int family = 0; family < 4; family++) {
		if (names[family][0] &&
		    fx_family_begin(out, names[family][0], names[family][1], types[family]))
			goto out;
		for (size_t i = 0; i < poller->n_states; i++)
			if ((poller->states[i].wanted || poller->states[i].interfaces.n) &&
			    add_state(out, &poller->states[i], family))
				goto out;
	}
	for (size_t i = 0; i < poller->n_states; i++)
		unaddressed += poller->states[i].wanted && poller->states[i].unaddressed;
	if (fx_family_begin(
		out, "flow_exporter_snmp_exporters_unaddressed",
		"Exporters the flows use that SNMP cannot poll: their hostname is not an IP address and "
		"--snmp-addresses does not name them.",
		FX_METRIC_GAUGE) ||
	    fx_family_add_u64(out, unaddressed, 0, NULL))
		goto out;
	rc = 0;
out:
	pthread_mutex_unlock(&poller->lock);
	return rc;
}
