/* Interface names: the --interface-names CSV format (every malformed line refused with its line number),
 * built maps (SNMP), and the flow_interface_* families for the interfaces a snapshot's series use, named
 * from the file first, then SNMP. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "fx/iface_info.h"
#include "fx/iface_map.h"
#include "fx/intern.h"

#define HEADER "exporter,ifindex,name,description,speed\n"

static void test_parse_valid(void)
{
	const char *text = HEADER "router1,537,et-0/0/1,\"TRANSIT-ARELION, 100G\",100000000000\r\n"
				  "router1,2,ge-0/0/2,,\n"
				  "192.0.2.1,4294967295,\"x \"\"quoted\"\"\",caf\xc3\xa9,0\n"
				  "router1,1,lo0,loopback,\n";
	struct fx_iface_map *map = NULL;
	struct fx_parse_error error = {0};
	CHECK(fx_iface_map_parse(text, strlen(text), &map, &error) == 0);
	CHECK_EQ_U64(fx_iface_map_count(map), 4);
	const struct fx_iface_entry *e = fx_iface_map_lookup(map, "router1", 537);
	CHECK(e != NULL);
	if (e) {
		CHECK_STR(e->name, "et-0/0/1");
		CHECK_STR(e->description, "TRANSIT-ARELION, 100G");
		CHECK(e->has_speed && e->speed_bps == UINT64_C(100000000000));
	}
	e = fx_iface_map_lookup(map, "router1", 2);
	CHECK(e && !strcmp(e->description, "") && !e->has_speed);
	e = fx_iface_map_lookup(map, "192.0.2.1", 4294967295u);
	CHECK(e && !strcmp(e->name, "x \"quoted\"") && e->has_speed && e->speed_bps == 0);
	CHECK(fx_iface_map_lookup(map, "router1", 3) == NULL);
	CHECK(fx_iface_map_lookup(map, "router2", 537) == NULL);
	CHECK(fx_iface_map_lookup(NULL, "router1", 537) == NULL);
	/* Sorted by exporter, then ifindex. */
	CHECK_STR(fx_iface_map_entry(map, 0)->exporter, "192.0.2.1");
	CHECK_EQ_U64(fx_iface_map_entry(map, 1)->ifindex, 1);
	fx_iface_map_unref(map);
	CHECK(fx_iface_map_parse(HEADER, strlen(HEADER), &map, &error) == 0);
	CHECK_EQ_U64(fx_iface_map_count(map), 0);
	fx_iface_map_unref(map);
}

#define EXPECT_ERROR(text, want_line)                                                                        \
	do {                                                                                                 \
		struct fx_parse_error error_ = {0};                                                          \
		struct fx_iface_map *map_ = NULL;                                                            \
		CHECK(fx_iface_map_parse(text, strlen(text), &map_, &error_) == -1);                         \
		CHECK(map_ == NULL);                                                                         \
		CHECK_EQ_U64(error_.line, want_line);                                                        \
		CHECK(error_.message[0] != '\0');                                                            \
	} while (0)

static void test_parse_invalid(void)
{
	EXPECT_ERROR("", 1);
	EXPECT_ERROR("exporter,ifindex,name,description\nr1,1,a,b\n", 1);
	EXPECT_ERROR("r1,1,a,b,1\n", 1);
	EXPECT_ERROR(HEADER "r1,1,a,b\n", 2);	      /* four fields */
	EXPECT_ERROR(HEADER "r1,1,a,b,1,6\n", 2);     /* six */
	EXPECT_ERROR(HEADER "r1,1,a,,\n,2,b,,\n", 3); /* empty exporter */
	EXPECT_ERROR(HEADER "r1,x,a,,\n", 2);	      /* ifindex not a number */
	EXPECT_ERROR(HEADER "r1,-1,a,,\n", 2);
	EXPECT_ERROR(HEADER "r1,4294967296,a,,\n", 2); /* ifindex past 32 bits */
	EXPECT_ERROR(HEADER "r1,,a,,\n", 2);
	EXPECT_ERROR(HEADER "r1,1,,d,\n", 2);			    /* empty name */
	EXPECT_ERROR(HEADER "r1,1,a,,10G\n", 2);		    /* speed not in bits per second */
	EXPECT_ERROR(HEADER "r1,1,a,,18446744073709551616\n", 2);   /* past 64 bits */
	EXPECT_ERROR(HEADER "r1,1,a,,\n\nr2,1,b,,\nr1,1,c,,\n", 5); /* duplicate: the later line */
	EXPECT_ERROR(HEADER "r1,1,\"a,,\n", 2);			    /* never closed */
	EXPECT_ERROR(HEADER "r1,1,a\"b,,\n", 2);
	EXPECT_ERROR(HEADER "r1,1,\"ab\"c,,\n", 2);
	EXPECT_ERROR(HEADER "r1,1,\"two\nlines\",,\nr1,2,\xff,,\n", 4); /* after a two-line field */
}

static void test_build(void)
{
	struct fx_iface_entry entries[] = {
	    {"10.0.0.1", 3, "eth3", "uplink", 1000000000, true},
	    {"10.0.0.1", 1, "lo", "", 0, false},
	    {"10.0.0.1", 3, "dup", "ignored", 0, false},
	};
	struct fx_iface_map *map = fx_iface_map_build(entries, 3);
	CHECK_EQ_U64(fx_iface_map_count(map), 2);
	const struct fx_iface_entry *e = fx_iface_map_lookup(map, "10.0.0.1", 3);
	CHECK(e && !strcmp(e->name, "eth3") && e->speed_bps == 1000000000);
	fx_iface_map_unref(map);
}

static const struct fx_sample *find_sample(const struct fx_family_list *list, const char *family,
					   const char *hostname, const char *ifindex)
{
	for (size_t i = 0; i < fx_family_list_count(list); i++) {
		const struct fx_family *f = fx_family_list_get(list, i);
		if (strcmp(f->name, family))
			continue;
		for (size_t s = 0; s < f->n_samples; s++) {
			const struct fx_sample *sample = &f->samples[s];
			int match = 0;
			for (size_t l = 0; l < sample->n_labels; l++)
				match += (!strcmp(sample->labels[l].name, "hostname") &&
					  !strcmp(sample->labels[l].value, hostname)) ||
					 (!strcmp(sample->labels[l].name, "ifindex") &&
					  !strcmp(sample->labels[l].value, ifindex));
			if (match == 2)
				return sample;
		}
	}
	return NULL;
}

static const char *label_of(const struct fx_sample *sample, const char *name)
{
	for (size_t l = 0; sample && l < sample->n_labels; l++)
		if (!strcmp(sample->labels[l].name, name))
			return sample->labels[l].value;
	return NULL;
}

static size_t family_size(const struct fx_family_list *list, const char *family)
{
	for (size_t i = 0; i < fx_family_list_count(list); i++)
		if (!strcmp(fx_family_list_get(list, i)->name, family))
			return fx_family_list_get(list, i)->n_samples;
	return 0;
}

static void test_collect(void)
{
	char path[] = "/tmp/fx-test-ifaces-XXXXXX";
	int fd = mkstemp(path);
	const char *text = HEADER "r1,10,et-0/0/1,TRANSIT,100000000000\nr1,11,et-0/0/2,,\nr9,1,unused,,\n";
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	struct fx_parse_error error = {0};
	struct fx_iface_info *info = fx_iface_info_create(path, &error);
	CHECK(info != NULL);
	if (!info)
		return;
	struct fx_intern *pool = fx_intern_create(10);
	const char *r1 = fx_intern_get(pool, "r1", 2), *r2 = fx_intern_get(pool, "r2", 2);
	struct fx_series series[3] = {0};
	uint32_t both = FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN | FX_LABEL_IFACE_OUT;
	series[0].key =
	    (struct fx_series_key){.hostname = r1, .iface_in = 10, .iface_out = 11, .present = both};
	series[1].key =
	    (struct fx_series_key){.hostname = r1, .iface_in = 11, .iface_out = 12, .present = both};
	series[2].key =
	    (struct fx_series_key){.hostname = r2, .iface_in = 10, .present = both & ~FX_LABEL_IFACE_OUT};
	struct fx_snapshot snapshot = {.n_series = 3, .series = series};
	/* SNMP names r1/12 and r2/10, and r1/10, which the file names too: the file wins. */
	struct fx_iface_entry snmp[] = {{"r1", 12, "snmp-12", "", 10000, true},
					{"r2", 10, "snmp-r2", "x", 0, false},
					{"r1", 10, "snmp-loses", "", 1, true}};
	fx_iface_info_set_snmp(info, fx_iface_map_build(snmp, 3));
	struct fx_family_list *out = fx_family_list_create();
	CHECK(fx_iface_info_collect(info, &snapshot, out) == 0);
	CHECK_EQ_U64(family_size(out, "flow_interface_info"), 4); /* r1/10, r1/11, r1/12, r2/10 */
	CHECK_STR(label_of(find_sample(out, "flow_interface_info", "r1", "10"), "name"), "et-0/0/1");
	CHECK_STR(label_of(find_sample(out, "flow_interface_info", "r1", "10"), "description"), "TRANSIT");
	CHECK_STR(label_of(find_sample(out, "flow_interface_info", "r1", "12"), "name"), "snmp-12");
	CHECK_STR(label_of(find_sample(out, "flow_interface_info", "r2", "10"), "name"), "snmp-r2");
	CHECK(find_sample(out, "flow_interface_info", "r9", "1") == NULL); /* no flow uses it */
	CHECK_STR(label_of(find_sample(out, "flow_interface_info", "r1", "11"), "name"), "et-0/0/2");
	const struct fx_sample *speed = find_sample(out, "flow_interface_speed_bps", "r1", "10");
	CHECK(speed && speed->integer == UINT64_C(100000000000));
	CHECK_EQ_U64(family_size(out, "flow_interface_speed_bps"), 2); /* r1/10 (file), r1/12 (SNMP) */
	fx_family_list_destroy(out);

	/* The file names r2's interface 10 by its address: the one its records carry, noted by ingest. */
	struct fx_exporter_peers *peers = fx_exporter_peers_create(4);
	fx_iface_info_set_peers(info, peers);
	fx_exporter_peers_note(peers, r2, "192.0.2.2", 9);
	char peer[64];
	CHECK(fx_exporter_peers_get(peers, r2, peer, sizeof(peer)) && !strcmp(peer, "192.0.2.2"));
	CHECK(!fx_exporter_peers_get(peers, r1, peer, sizeof(peer)));
	FILE *f = fopen(path, "w");
	fputs(HEADER "192.0.2.2,10,by-address,,\nr1,10,et-0/0/1,TRANSIT,\n", f);
	fclose(f);
	CHECK(fx_iface_info_reload(info, &error) == 0);
	out = fx_family_list_create();
	CHECK(fx_iface_info_collect(info, &snapshot, out) == 0);
	CHECK_STR(label_of(find_sample(out, "flow_interface_info", "r2", "10"), "name"), "by-address");
	fx_family_list_destroy(out);
	fx_iface_info_set_peers(info, NULL);
	fx_exporter_peers_destroy(peers);

	/* Reload: a new file applies at the next collect; a broken one is refused and the old names stay. */
	f = fopen(path, "w");
	fputs(HEADER "r1,10,renamed,,\n", f);
	fclose(f);
	CHECK(fx_iface_info_reload(info, &error) == 0);
	f = fopen(path, "w");
	fputs(HEADER "r1,10,broken,,\nr1,x,a,,\n", f);
	fclose(f);
	CHECK(fx_iface_info_reload(info, &error) == -1);
	CHECK_EQ_U64(error.line, 3);
	out = fx_family_list_create();
	CHECK(fx_iface_info_collect(info, &snapshot, out) == 0);
	CHECK_STR(label_of(find_sample(out, "flow_interface_info", "r1", "10"), "name"), "renamed");
	CHECK(find_sample(out, "flow_interface_info", "r1", "11") == NULL);
	fx_family_list_destroy(out);
	fx_iface_info_destroy(info);
	fx_intern_destroy(pool);
	unlink(path);
	CHECK(fx_iface_info_create("/nonexistent/ifaces.csv", &error) == NULL && error.line == 0);
}

int main(void)
{
	test_parse_valid();
	test_parse_invalid();
	test_build();
	test_collect();
	return check_exit();
}
