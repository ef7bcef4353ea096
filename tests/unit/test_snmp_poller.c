/* The SNMP poller without an agent: its settings and the --snmp-addresses format (every malformed line
 * refused with its line number, naming the flag), a secret never echoed in an error, the cache loaded at
 * start (names before any poll), and an exporter with no address counted as unaddressed. The polls
 * themselves run against a real snmpd in tests/e2e/snmp_interfaces.sh. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fx/iface_info.h"
#include "fx/snmp_poller.h"

static char dir[] = "/tmp/fx-test-snmp-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char paths[8][256];
	static int next;
	char *path = paths[next++ % 8];
	snprintf(path, 256, "%s/%s", dir, name);
	FILE *file = fopen(path, "w");
	if (file) {
		fputs(text, file);
		fclose(file);
	}
	return path;
}

static struct fx_snmp_poller_config base_config(struct fx_iface_info *info)
{
	struct fx_snmp_poller_config config = {
	    .auth = {.version = 2, .timeout_ms = 100, .retries = 0},
	    .community_file = write_file("community", "s3cret-community\n"),
	    .refresh_ms = 60000,
	    .retry_ms = 60000,
	    .info = info,
	};
	return config;
}

static void expect_refused(struct fx_iface_info *info, const char *addresses, size_t want_line)
{
	struct fx_snmp_poller_config config = base_config(info);
	config.addresses_file = write_file("addresses.csv", addresses);
	struct fx_parse_error error = {0};
	struct fx_snmp_poller *poller = fx_snmp_poller_create(&config, &error);
	CHECK(poller == NULL);
	fx_snmp_poller_destroy(poller);
	CHECK_EQ_U64(error.line, want_line);
	CHECK(strstr(error.message, "--snmp-addresses") != NULL);
}

static void test_settings(struct fx_iface_info *info)
{
	struct fx_parse_error error = {0};
	struct fx_snmp_poller_config config = base_config(info);
	config.community_file = write_file("empty", "\n");
	CHECK(fx_snmp_poller_create(&config, &error) == NULL);
	CHECK(strstr(error.message, "--snmp-community-file") && strstr(error.message, "empty"));
	config.community_file = "/nonexistent/community";
	CHECK(fx_snmp_poller_create(&config, &error) == NULL);
	CHECK(strstr(error.message, "--snmp-community-file") != NULL);
	config.community_file = NULL;
	CHECK(fx_snmp_poller_create(&config, &error) == NULL);
	CHECK(strstr(error.message, "needs --snmp-community-file") != NULL);
	config = base_config(info);
	config.auth.version = 3;
	CHECK(fx_snmp_poller_create(&config, &error) == NULL);
	CHECK(strstr(error.message, "--snmp-user") != NULL);
	config.auth.user = "fxuser";
	config.priv_passphrase_file = write_file("priv", "privacy-passphrase\n");
	CHECK(fx_snmp_poller_create(&config, &error) == NULL);
	CHECK(strstr(error.message, "needs --snmp-auth-passphrase-file") != NULL);
	CHECK(strstr(error.message, "privacy-passphrase") == NULL);
	char why[256];
	CHECK(fx_snmp_check_protocols("SHA-256", "AES-256", why, sizeof(why)) == 0);
	CHECK(fx_snmp_check_protocols("SHA1", "AES", why, sizeof(why)) == -1);
	CHECK(fx_snmp_check_protocols("md5", "3DES", why, sizeof(why)) == -1);

	expect_refused(info, "", 1);
	expect_refused(info, "exporter,agent\nr1,udp:127.0.0.1:161\n", 1);
	expect_refused(info, "exporter,address\nr1,udp:127.0.0.1:161\nr2\n", 3);
	expect_refused(info, "exporter,address\nr1,\n", 2);
	expect_refused(info, "exporter,address\n,udp:127.0.0.1:161\n", 2);
	expect_refused(info, "exporter,address\nr1,a\n\nr1,b\n", 4);
	expect_refused(info, "exporter,address\nr1,a,b\n", 2);
	expect_refused(info, "exporter,address\n\"r1,a\n", 2);
}

static uint64_t unaddressed(struct fx_snmp_poller *poller)
{
	struct fx_family_list *list = fx_family_list_create();
	uint64_t value = UINT64_MAX;
	CHECK(fx_snmp_poller_collect(poller, list) == 0);
	for (size_t i = 0; i < fx_family_list_count(list); i++) {
		const struct fx_family *f = fx_family_list_get(list, i);
		if (!strcmp(f->name, "flow_exporter_snmp_exporters_unaddressed") && f->n_samples == 1)
			value = f->samples[0].integer;
	}
	fx_family_list_destroy(list);
	return value;
}

static void test_cache_and_unaddressed(struct fx_iface_info *info)
{
	struct fx_snmp_poller_config config = base_config(info);
	config.cache_file = write_file("cache.csv", "exporter,ifindex,name,description,speed\n"
						    "r1,3,et-0/0/3,\"UPLINK, 10G\",10000000000\n");
	config.addresses_file = write_file("addresses.csv", "exporter,address\nr1,udp:127.0.0.1:9\n");
	struct fx_parse_error error = {0};
	struct fx_snmp_poller *poller = fx_snmp_poller_create(&config, &error);
	CHECK(poller != NULL);
	if (!poller)
		return;
	/* The cache's names are there before any poll. */
	struct fx_iface_map *file, *snmp;
	fx_iface_info_acquire(info, &file, &snmp);
	const struct fx_iface_entry *entry = fx_iface_map_lookup(snmp, "r1", 3);
	CHECK(entry && !strcmp(entry->name, "et-0/0/3") && !strcmp(entry->description, "UPLINK, 10G"));
	fx_iface_map_unref(file);
	fx_iface_map_unref(snmp);
	/* A label with no address and no peer_ip_src cannot be polled: counted, within a second or two. */
	const char *hostnames[] = {"router-without-address"};
	fx_snmp_poller_want(poller, hostnames, 1);
	for (int i = 0; i < 40 && unaddressed(poller) != 1; i++)
		nanosleep(&(struct timespec){0, 100000000}, NULL);
	CHECK_EQ_U64(unaddressed(poller), 1);
	fx_snmp_poller_destroy(poller);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	struct fx_parse_error error = {0};
	struct fx_iface_info *info = fx_iface_info_create(NULL, &error);
	test_settings(info);
	test_cache_and_unaddressed(info);
	fx_iface_info_destroy(info);
	const char *names[] = {"community", "empty", "priv", "addresses.csv", "cache.csv"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	return check_exit();
}
