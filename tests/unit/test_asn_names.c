/* Tests of asn_names: the asn.txt parser, and the service loading from the embedded text, a file (with a
 * refresh) and the fake HTTP server (tests/support/fake_http.c, on 127.0.0.1) that changes its list, fails,
 * hangs and goes away. Nothing here contacts another host; temporary files live in a mkdtemp directory. */
#define _GNU_SOURCE /* nftw */
#include "fx/asn_names.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fake_http.h"
#include "fx/clock.h"
#include "fx/family_list.h"

static char tmp_dir[] = "/tmp/fx-test-asn-XXXXXX";

/* ---- Helpers ---- */

static char *read_all(const char *path, size_t *len)
{
	FILE *file = fopen(path, "rb");
	if (!file)
		return NULL;
	char *text = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *grown = realloc(text, cap);
			if (!grown) {
				free(text);
				fclose(file);
				return NULL;
			}
			text = grown;
		}
		size_t got = fread(text + n, 1, 4096, file);
		n += got;
		if (got == 0)
			break;
	}
	fclose(file);
	text[n] = '\0';
	*len = n;
	return text;
}

/* tests/data/asn/<name>: from FX_TEST_DATA (set by ctest), else next to this source file (run by hand). */
static char *data_path(const char *name)
{
	static char path[4096];
	const char *dir = getenv("FX_TEST_DATA");
	if (dir && dir[0]) {
		snprintf(path, sizeof(path), "%s/asn/%s", dir, name);
	} else {
		const char *slash = strrchr(__FILE__, '/');
		int dir_len = slash ? (int)(slash - __FILE__) : 1;
		snprintf(path, sizeof(path), "%.*s/../data/asn/%s", dir_len, slash ? __FILE__ : ".", name);
	}
	return path;
}

/* Writes a file atomically (tmp + rename), as an operator's update script would. */
static void write_file(const char *path, const char *text)
{
	char tmp_path[4200];
	snprintf(tmp_path, sizeof(tmp_path), "%s.new", path);
	FILE *file = fopen(tmp_path, "wb");
	CHECK(file != NULL);
	if (!file)
		return;
	CHECK(fwrite(text, 1, strlen(text), file) == strlen(text));
	CHECK(fclose(file) == 0);
	CHECK(rename(tmp_path, path) == 0);
}

/* The name of asn in the current map, copied into out ("" when unknown or no map). */
static const char *current_name(struct fx_asn_names *names, uint32_t asn, char *out, size_t out_size)
{
	struct fx_asn_map *map = fx_asn_names_acquire(names);
	const char *name = fx_asn_map_lookup(map, asn);
	snprintf(out, out_size, "%s", name ? name : "");
	fx_asn_map_unref(map);
	return out;
}

/* Polls until asn has the expected name, up to timeout_ms. */
static bool wait_for_name(struct fx_asn_names *names, uint32_t asn, const char *expected, int64_t timeout_ms)
{
	char name[256];
	int64_t deadline = fx_mono_ms() + timeout_ms;
	while (fx_mono_ms() < deadline) {
		if (strcmp(current_name(names, asn, name, sizeof(name)), expected) == 0)
			return true;
		usleep(10 * 1000);
	}
	fprintf(stderr, "timed out waiting for AS%u = \"%s\" (have \"%s\")\n", asn, expected, name);
	return false;
}

/* A self-metric's value (labels: a "result=...,source=..." string, or "" for none); -1 when absent. */
static double metric_value(struct fx_asn_names *names, const char *family_name, const char *labels)
{
	struct fx_family_list *list = fx_family_list_create();
	double value = -1;
	if (!list || fx_asn_names_collect(names, list) != 0) {
		fx_family_list_destroy(list);
		return -2;
	}
	for (size_t i = 0; i < fx_family_list_count(list); i++) {
		const struct fx_family *family = fx_family_list_get(list, i);
		if (strcmp(family->name, family_name) != 0)
			continue;
		for (size_t s = 0; s < family->n_samples; s++) {
			const struct fx_sample *sample = &family->samples[s];
			char have[256] = "";
			size_t used = 0;
			for (size_t l = 0; l < sample->n_labels; l++)
				used += (size_t)snprintf(have + used, sizeof(have) - used, "%s%s=%s",
							 l ? "," : "", sample->labels[l].name,
							 sample->labels[l].value);
			if (strcmp(have, labels) == 0)
				value = sample->is_integer ? (double)sample->integer : sample->real;
		}
	}
	fx_family_list_destroy(list);
	return value;
}

static bool wait_for_metric_at_least(struct fx_asn_names *names, const char *family_name, const char *labels,
				     double minimum, int64_t timeout_ms)
{
	int64_t deadline = fx_mono_ms() + timeout_ms;
	while (fx_mono_ms() < deadline) {
		if (metric_value(names, family_name, labels) >= minimum)
			return true;
		usleep(10 * 1000);
	}
	fprintf(stderr, "timed out waiting for %s{%s} >= %g\n", family_name, labels, minimum);
	return false;
}

static bool wait_for_file(const char *path, const char *expected, int64_t timeout_ms)
{
	int64_t deadline = fx_mono_ms() + timeout_ms;
	while (fx_mono_ms() < deadline) {
		size_t len = 0;
		char *text = read_all(path, &len);
		bool same = text && len == strlen(expected) && memcmp(text, expected, len) == 0;
		free(text);
		if (same)
			return true;
		usleep(10 * 1000);
	}
	fprintf(stderr, "timed out waiting for %s to hold the expected list\n", path);
	return false;
}

/* ---- Parser ---- */

static struct fx_asn_map *parse_string(const char *text, size_t *bad)
{
	return fx_asn_map_parse(text, strlen(text), bad);
}

static void test_parse_go_lines(void)
{
	size_t bad = 99;
	struct fx_asn_map *map = parse_string("15169\tGOOGLE - Google LLC, US\n"
					      "1\tLVLT-1 - Level 3 Parent, LLC, US\n",
					      &bad);
	CHECK(map != NULL);
	CHECK_EQ_U64(fx_asn_map_count(map), 2);
	CHECK_EQ_U64(bad, 0);
	CHECK_STR(fx_asn_map_lookup(map, 15169), "GOOGLE - Google LLC");
	/* The name is everything up to the last ", CC", commas included. */
	CHECK_STR(fx_asn_map_lookup(map, 1), "LVLT-1 - Level 3 Parent, LLC");
	CHECK(fx_asn_map_lookup(map, 2) == NULL);
	CHECK(fx_asn_map_lookup(map, 0) == NULL);
	CHECK(fx_asn_map_lookup(map, UINT32_MAX) == NULL);

	/* References: the map lives until the last unref. */
	CHECK(fx_asn_map_ref(map) == map);
	fx_asn_map_unref(map);
	CHECK_STR(fx_asn_map_lookup(map, 15169), "GOOGLE - Google LLC");
	fx_asn_map_unref(map);

	/* NULL-safe. */
	CHECK(fx_asn_map_lookup(NULL, 1) == NULL);
	CHECK_EQ_U64(fx_asn_map_count(NULL), 0);
	CHECK(fx_asn_map_ref(NULL) == NULL);
	fx_asn_map_unref(NULL);
}

static void test_parse_sample_file(void)
{
	size_t len = 0, bad = 0;
	char *text = read_all(data_path("asn-sample.txt"), &len);
	CHECK(text != NULL);
	if (!text)
		return;
	struct fx_asn_map *map = fx_asn_map_parse(text, len, &bad);
	free(text);
	CHECK_EQ_U64(fx_asn_map_count(map), 6);
	/* "# not a line", "AS174 ...", "174\tno country code", "4294967296 ..." (past 32 bits). */
	CHECK_EQ_U64(bad, 4);
	CHECK_STR(fx_asn_map_lookup(map, 3320), "DTAG Internet service provider operations");
	CHECK_STR(fx_asn_map_lookup(map, 4294967295u), "LAST-32-BIT");
	CHECK_STR(fx_asn_map_lookup(map, 0), "RESERVED-AS0"); /* AS 0 is a valid value */
	CHECK_STR(fx_asn_map_lookup(map, 13335), "CLOUDFLARENET - later duplicate wins");
	CHECK(fx_asn_map_lookup(map, 174) == NULL);
	fx_asn_map_unref(map);
}

static void test_parse_crlf(void)
{
	size_t len = 0, bad = 0;
	char *text = read_all(data_path("asn-crlf.txt"), &len);
	CHECK(text != NULL);
	if (!text)
		return;
	struct fx_asn_map *map = fx_asn_map_parse(text, len, &bad);
	free(text);
	CHECK_EQ_U64(fx_asn_map_count(map), 3);
	CHECK_EQ_U64(bad, 1);
	CHECK_STR(fx_asn_map_lookup(map, 15169), "GOOGLE - Google LLC");
	CHECK_STR(fx_asn_map_lookup(map, 2914), "NTT-LTD-2914 - NTT America, Inc.");
	CHECK_STR(fx_asn_map_lookup(map, 8075), "MICROSOFT-CORP-MSN-AS-BLOCK");
	fx_asn_map_unref(map);
}

static void test_parse_invalid_utf8(void)
{
	size_t len = 0, bad = 0;
	char *text = read_all(data_path("asn-utf8.txt"), &len);
	CHECK(text != NULL);
	if (!text)
		return;
	struct fx_asn_map *map = fx_asn_map_parse(text, len, &bad);
	free(text);
	CHECK_EQ_U64(fx_asn_map_count(map), 4);
	CHECK_EQ_U64(bad, 1); /* 64504: nothing left of its name */
	CHECK_STR(fx_asn_map_lookup(map, 64500), "caf\xc3\xa9 BAD");
	CHECK_STR(fx_asn_map_lookup(map, 64501), "surrogate-gone");
	CHECK_STR(fx_asn_map_lookup(map, 64502), "euro \xe2\x82\xac trunc !");
	CHECK_STR(fx_asn_map_lookup(map, 64503), "emoji \xf0\x9f\x98\x80 big !");
	CHECK(fx_asn_map_lookup(map, 64504) == NULL);
	fx_asn_map_unref(map);
}

static void test_parse_edges(void)
{
	size_t bad = 0;
	struct fx_asn_map *map = parse_string("", &bad);
	CHECK(map != NULL);
	CHECK_EQ_U64(fx_asn_map_count(map), 0);
	CHECK_EQ_U64(bad, 0);
	fx_asn_map_unref(map);

	/* No final newline, several blanks, leading blanks, an embedded NUL, ASN overflow by many digits. */
	static const char text[] = "  7 \t SEVEN, US\n"
				   "8\tEI\0GHT, US\n"
				   "99999999999999999999999\tHUGE, US\n"
				   "9\t, US\n"
				   "10\tTEN, USA\n"
				   "11\tELEVEN,US\n"
				   "12\tTWELVE, US  \n"
				   "13\tTHIRTEEN, US";
	map = fx_asn_map_parse(text, sizeof(text) - 1, &bad);
	CHECK_STR(fx_asn_map_lookup(map, 7), "SEVEN");
	CHECK_STR(fx_asn_map_lookup(map, 8), "EIGHT");
	CHECK_STR(fx_asn_map_lookup(map, 12), "TWELVE");
	CHECK_STR(fx_asn_map_lookup(map, 13), "THIRTEEN");
	CHECK(fx_asn_map_lookup(map, 9) == NULL);  /* empty name */
	CHECK(fx_asn_map_lookup(map, 10) == NULL); /* three letters */
	CHECK(fx_asn_map_lookup(map, 11) == NULL); /* no space after the comma */
	CHECK_EQ_U64(fx_asn_map_count(map), 4);
	CHECK_EQ_U64(bad, 4);
	fx_asn_map_unref(map);

	/* Many entries in reverse order: sorted, each found. */
	size_t cap = 200000 * 32;
	char *big = malloc(cap);
	size_t used = 0;
	for (uint32_t asn = 200000; asn > 0; asn--)
		used += (size_t)snprintf(big + used, cap - used, "%u\tAS-%u, ZZ\n", asn * 3, asn);
	map = fx_asn_map_parse(big, used, NULL);
	free(big);
	CHECK_EQ_U64(fx_asn_map_count(map), 200000);
	CHECK_STR(fx_asn_map_lookup(map, 3), "AS-1");
	CHECK_STR(fx_asn_map_lookup(map, 600000), "AS-200000");
	CHECK_STR(fx_asn_map_lookup(map, 300000), "AS-100000");
	CHECK(fx_asn_map_lookup(map, 300001) == NULL);
	fx_asn_map_unref(map);
}

/* ---- Embedded text and files ---- */

static void test_embedded(void)
{
	struct fx_asn_names_config config = {
	    .source = "http://192.0.2.1/never-contacted",
	    .embedded_text = "64512\tDEMO-ONE, ZZ\n64513\tDEMO-TWO, ZZ\n",
	    .refresh_ms = 100,
	};
	struct fx_asn_names *names = fx_asn_names_create(&config);
	CHECK(names != NULL);
	char name[64];
	CHECK_STR(current_name(names, 64513, name, sizeof(name)), "DEMO-TWO");
	CHECK(metric_value(names, "flow_exporter_asn_names", "") == 2);
	CHECK(metric_value(names, "flow_exporter_asn_names_loads_total", "result=success,source=embedded") ==
	      1);
	CHECK(metric_value(names, "flow_exporter_asn_names_last_success_timestamp_seconds", "") > 1.5e9);
	fx_asn_names_destroy(names);
	fx_asn_names_destroy(NULL);

	struct fx_asn_names_config no_source = {.refresh_ms = 0};
	CHECK(fx_asn_names_create(&no_source) == NULL);
}

static void test_file_source(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/names.txt", tmp_dir);

	/* Missing at create: not fatal; counted; loaded when it appears. */
	struct fx_asn_names_config config = {.source = path, .refresh_ms = 100, .timeout_ms = 1000};
	struct fx_asn_names *names = fx_asn_names_create(&config);
	CHECK(names != NULL);
	if (!names)
		return;
	struct fx_asn_map *map = fx_asn_names_acquire(names);
	CHECK(map == NULL);
	CHECK(metric_value(names, "flow_exporter_asn_names_loads_total", "result=failure,source=file") == 1);
	CHECK(metric_value(names, "flow_exporter_asn_names_last_success_timestamp_seconds", "") == 0);
	CHECK(metric_value(names, "flow_exporter_asn_names", "") == 0);

	write_file(path, "15169\tGOOGLE - Google LLC, US\n13335\tCLOUDFLARENET - Cloudflare, Inc., US\n");
	CHECK(wait_for_name(names, 13335, "CLOUDFLARENET - Cloudflare, Inc.", 3000));

	/* A map acquired before a refresh stays valid and unchanged after it. */
	map = fx_asn_names_acquire(names);
	write_file(path, "15169\tGOOGLE - Google LLC, US\n13335\tCLOUDFLARE - renamed, US\n");
	CHECK(wait_for_name(names, 13335, "CLOUDFLARE - renamed", 3000));
	CHECK_STR(fx_asn_map_lookup(map, 13335), "CLOUDFLARENET - Cloudflare, Inc.");
	fx_asn_map_unref(map);
	CHECK(metric_value(names, "flow_exporter_asn_names_loads_total", "result=success,source=file") == 2);

	/* A list without names keeps the previous names; the failure is counted once, not every refresh. */
	write_file(path, "garbage\n");
	CHECK(wait_for_metric_at_least(names, "flow_exporter_asn_names_loads_total",
				       "result=failure,source=file", 2, 3000));
	usleep(300 * 1000);
	CHECK(metric_value(names, "flow_exporter_asn_names_loads_total", "result=failure,source=file") == 2);
	char name[128];
	CHECK_STR(current_name(names, 13335, name, sizeof(name)), "CLOUDFLARE - renamed");

	/* Deleted: still the previous names. */
	CHECK(unlink(path) == 0);
	CHECK(wait_for_metric_at_least(names, "flow_exporter_asn_names_loads_total",
				       "result=failure,source=file", 3, 3000));
	CHECK_STR(current_name(names, 15169, name, sizeof(name)), "GOOGLE - Google LLC");
	fx_asn_names_destroy(names);

	/* Read synchronously at create; destroy is prompt while the thread sleeps a long refresh. */
	write_file(path, "64496\tDOC-ASN, ZZ\n");
	config.refresh_ms = 3600 * 1000;
	names = fx_asn_names_create(&config);
	CHECK_STR(current_name(names, 64496, name, sizeof(name)), "DOC-ASN");
	int64_t start = fx_mono_ms();
	fx_asn_names_destroy(names);
	CHECK(fx_mono_ms() - start < 500);

	/* refresh_ms 0: read once, no thread. */
	config.refresh_ms = 0;
	names = fx_asn_names_create(&config);
	CHECK_STR(current_name(names, 64496, name, sizeof(name)), "DOC-ASN");
	fx_asn_names_destroy(names);
	unlink(path);
}

/* A reload (SIGHUP, POST /-/reload) re-reads the file now, long before the next refresh, even when its size
 * and time look unchanged; a bad file keeps the names in force. */
static void test_reload(void)
{
	char path[512], name[128];
	snprintf(path, sizeof(path), "%s/reload.txt", tmp_dir);
	write_file(path, "64496\tDOC-ASN, ZZ\n");
	struct fx_asn_names_config config = {.source = path, .refresh_ms = 3600 * 1000, .timeout_ms = 1000};
	struct fx_asn_names *names = fx_asn_names_create(&config);
	CHECK(names != NULL);
	if (!names)
		return;
	CHECK_STR(current_name(names, 64496, name, sizeof(name)), "DOC-ASN");
	write_file(path, "64496\tDOC-RENAMED, ZZ\n");
	fx_asn_names_reload(names);
	CHECK(wait_for_name(names, 64496, "DOC-RENAMED", 3000));
	write_file(path, "garbage\n");
	fx_asn_names_reload(names);
	CHECK(wait_for_metric_at_least(names, "flow_exporter_asn_names_loads_total",
				       "result=failure,source=file", 1, 3000));
	CHECK_STR(current_name(names, 64496, name, sizeof(name)), "DOC-RENAMED");
	fx_asn_names_destroy(names);
	fx_asn_names_reload(NULL);
	unlink(path);
}

/* ---- The fake HTTP server (tests/support/fake_http.c) serving a list ---- */

enum serve_mode { SERVE_500, SERVE_NO_NAMES, SERVE_HANG };

struct test_server {
	struct fake_http *http;
	char url[128];
};

static bool server_start(struct test_server *server)
{
	struct fake_http_answer empty = {200, "", NULL, false};
	server->http = fake_http_start(&empty, 1);
	if (!server->http)
		return false;
	snprintf(server->url, sizeof(server->url), "http://127.0.0.1:%u/asn.txt",
		 fake_http_port(server->http));
	return true;
}

static void server_set_list(struct test_server *server, const char *list)
{
	fake_http_serve(server->http, list);
}

static void server_set_mode(struct test_server *server, enum serve_mode mode)
{
	static const struct fake_http_answer answers[] = {
	    [SERVE_500] = {500, "15169\tSHOULD-NOT-BE-USED, US\n", NULL, false},
	    [SERVE_NO_NAMES] = {200, "<html>not a list</html>\n", NULL, false},
	    /* A partial list, then a stall. */
	    [SERVE_HANG] = {200, "15169\tGOOGLE - Google LLC, US\n64496\tPART", NULL, true},
	};
	fake_http_script(server->http, &answers[mode], 1);
}

static void server_stop(struct test_server *server)
{
	fake_http_stop(server->http);
	server->http = NULL;
}

static const char list_one[] =
    "15169\tGOOGLE - Google LLC, US\n13335\tCLOUDFLARENET - Cloudflare, Inc., US\n";
static const char list_two[] = "15169\tGOOGLE - Google LLC, US\n13335\tCLOUDFLARE - changed, US\n"
			       "1\tLVLT-1 - Level 3 Parent, LLC, US\n";

static void test_url_source(void)
{
	struct test_server server;
	CHECK(server_start(&server));
	if (!server.http)
		return;
	server_set_list(&server, list_one);

	char cache_path[512], name[128];
	snprintf(cache_path, sizeof(cache_path), "%s/cache/made/by/create/asn.txt", tmp_dir);
	struct fx_asn_names_config config = {
	    .source = server.url, .cache_path = cache_path, .refresh_ms = 100, .timeout_ms = 2000};
	struct fx_asn_names *names = fx_asn_names_create(&config);
	CHECK(names != NULL);
	if (!names) {
		server_stop(&server);
		return;
	}

	/* The first download, then the cache written (directories created). */
	CHECK(wait_for_name(names, 13335, "CLOUDFLARENET - Cloudflare, Inc.", 5000));
	CHECK(wait_for_file(cache_path, list_one, 5000));
	const struct fake_http_request *first = fake_http_request(server.http, 0);
	CHECK_STR(first ? first->user_agent : NULL, "flow-exporter/" FX_VERSION);
	CHECK(metric_value(names, "flow_exporter_asn_names_last_success_timestamp_seconds", "") > 1.5e9);

	/* A changed list: the refresh changes a name and the cache. */
	server_set_list(&server, list_two);
	CHECK(wait_for_name(names, 13335, "CLOUDFLARE - changed", 5000));
	CHECK(wait_for_file(cache_path, list_two, 5000));
	CHECK(metric_value(names, "flow_exporter_asn_names", "") == 3);

	/* 500: the previous names stay, the failure is counted. */
	server_set_mode(&server, SERVE_500);
	CHECK(wait_for_metric_at_least(names, "flow_exporter_asn_names_loads_total",
				       "result=failure,source=url", 2, 5000));
	CHECK_STR(current_name(names, 15169, name, sizeof(name)), "GOOGLE - Google LLC");
	CHECK_STR(current_name(names, 13335, name, sizeof(name)), "CLOUDFLARE - changed");

	/* 200 with no names: also a failure that keeps the names and the cache. */
	double failures =
	    metric_value(names, "flow_exporter_asn_names_loads_total", "result=failure,source=url");
	server_set_mode(&server, SERVE_NO_NAMES);
	CHECK(wait_for_metric_at_least(names, "flow_exporter_asn_names_loads_total",
				       "result=failure,source=url", failures + 2, 5000));
	CHECK_STR(current_name(names, 13335, name, sizeof(name)), "CLOUDFLARE - changed");
	CHECK(wait_for_file(cache_path, list_two, 100));
	CHECK(metric_value(names, "flow_exporter_asn_names_cache_write_failures_total", "") == 0);
	fx_asn_names_destroy(names);

	/* The server goes away: a restart has the cached names at once, and counts the failed download. */
	server_stop(&server);
	names = fx_asn_names_create(&config);
	CHECK(names != NULL);
	CHECK_STR(current_name(names, 13335, name, sizeof(name)), "CLOUDFLARE - changed");
	CHECK_STR(current_name(names, 1, name, sizeof(name)), "LVLT-1 - Level 3 Parent, LLC");
	CHECK(metric_value(names, "flow_exporter_asn_names_loads_total", "result=success,source=cache") == 1);
	CHECK(wait_for_metric_at_least(names, "flow_exporter_asn_names_loads_total",
				       "result=failure,source=url", 1, 5000));
	CHECK_STR(current_name(names, 13335, name, sizeof(name)), "CLOUDFLARE - changed");
	fx_asn_names_destroy(names);
}

static void test_cache_write_failure(void)
{
	struct test_server server;
	CHECK(server_start(&server));
	if (!server.http)
		return;
	server_set_list(&server, list_one);

	/* The cache's directory cannot be created: a regular file is in the way. */
	char blocker[512], cache_path[600], name[128];
	snprintf(blocker, sizeof(blocker), "%s/blocker", tmp_dir);
	write_file(blocker, "not a directory\n");
	snprintf(cache_path, sizeof(cache_path), "%s/sub/asn.txt", blocker);
	struct fx_asn_names_config config = {
	    .source = server.url, .cache_path = cache_path, .refresh_ms = 100, .timeout_ms = 2000};
	struct fx_asn_names *names = fx_asn_names_create(&config);
	CHECK(names != NULL);
	CHECK(wait_for_metric_at_least(names, "flow_exporter_asn_names_cache_write_failures_total", "", 1,
				       5000));
	CHECK_STR(current_name(names, 15169, name, sizeof(name)), "GOOGLE - Google LLC");
	/* A cache that cannot be read (a directory) is a counted failure at create, not a fatal one. */
	struct fx_asn_names_config dir_cache = config;
	dir_cache.cache_path = tmp_dir;
	struct fx_asn_names *other = fx_asn_names_create(&dir_cache);
	CHECK(other != NULL);
	CHECK(metric_value(other, "flow_exporter_asn_names_loads_total", "result=failure,source=cache") == 1);
	fx_asn_names_destroy(other);
	fx_asn_names_destroy(names);
	server_stop(&server);
	unlink(blocker);
}

static void test_destroy_mid_download(void)
{
	struct test_server server;
	CHECK(server_start(&server));
	if (!server.http)
		return;
	server_set_mode(&server, SERVE_HANG);

	struct fx_asn_names_config config = {.source = server.url, .refresh_ms = 100, .timeout_ms = 60000};
	struct fx_asn_names *names = fx_asn_names_create(&config);
	CHECK(names != NULL);
	int64_t deadline = fx_mono_ms() + 5000;
	while (!fake_http_hanging(server.http) && fx_mono_ms() < deadline)
		usleep(10 * 1000);
	CHECK(fake_http_hanging(server.http));
	usleep(200 * 1000); /* well into the stalled transfer */
	int64_t start = fx_mono_ms();
	fx_asn_names_destroy(names);
	int64_t took = fx_mono_ms() - start;
	fprintf(stderr, "destroy mid-download took %lld ms\n", (long long)took);
	CHECK(took < 1000);
	server_stop(&server);

	/* A download that exceeds timeout_ms fails (counted) instead of hanging the refresh thread. */
	CHECK(server_start(&server));
	server_set_mode(&server, SERVE_HANG);
	config.source = server.url;
	config.timeout_ms = 300;
	names = fx_asn_names_create(&config);
	CHECK(wait_for_metric_at_least(names, "flow_exporter_asn_names_loads_total",
				       "result=failure,source=url", 1, 5000));
	CHECK(fx_asn_names_acquire(names) == NULL); /* a partial body is never used */
	fx_asn_names_destroy(names);
	server_stop(&server);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	if (remove(path) != 0)
		fprintf(stderr, "could not remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* Removes our mkdtemp directory and everything in it (depth first, symlinks not followed). */
static void remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	/* A proxy from the environment must not matter: the module disables it; make sure of it here. */
	setenv("http_proxy", "http://127.0.0.1:9/", 1);
	setenv("HTTP_PROXY", "http://127.0.0.1:9/", 1);

	test_parse_go_lines();
	test_parse_sample_file();
	test_parse_crlf();
	test_parse_invalid_utf8();
	test_parse_edges();
	test_embedded();

	if (!mkdtemp(tmp_dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_file_source();
	test_reload();
	test_url_source();
	test_cache_write_failure();
	test_destroy_mid_download();
	remove_tree(tmp_dir);
	return check_exit();
}
