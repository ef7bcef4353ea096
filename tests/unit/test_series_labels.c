/* fx_series_labels: the catalog (sorted, the same names as the --labels bits), a key's pairs in name order
 * with the mask, the key's present bits and empty values applied, escaping flags, two ASNs that share an AS
 * cache slot, and a new snapshot's map replacing the old one's names. The interface names: looked up by
 * (hostname, index) in the snapshot's interface names (file by hostname, by address, then SNMP), absent for
 * an unknown index, an empty description, an "other" interface or hostname; the catalog they make, alone
 * and with extra dimensions; a new snapshot's names replacing the old ones. */
#include "fx/series_labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fx/iface_names.h"

static const char router[] = "edge-1.example.net";
static const char router_quoted[] = "core \"east\"";

/* "name=value,name=value" of a label set. */
static void join(const struct fx_label_set *set, char *out, size_t size)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < set->n && len < size; i++) {
		const struct fx_label_pair *pair = &set->pairs[i];
		len += (size_t)snprintf(out + len, size - len, "%s%s=%.*s", i ? "," : "",
					fx_series_label_catalog[pair->label].name, (int)pair->value_len,
					pair->value);
	}
}

/* The same, with the names of the catalog labels was given (fx_series_labels_catalog). */
static void join_with(struct fx_series_labels *labels, const struct fx_label_set *set, char *out, size_t size)
{
	size_t n_catalog, len = 0;
	const struct fx_label_name *catalog = fx_series_labels_catalog(labels, &n_catalog);
	out[0] = '\0';
	for (size_t i = 0; i < set->n && len < size; i++) {
		const struct fx_label_pair *pair = &set->pairs[i];
		CHECK(pair->label < n_catalog);
		CHECK(pair->value_len > 0);
		if (i)
			CHECK(set->pairs[i - 1].label < pair->label); /* name order, each label once */
		len += (size_t)snprintf(out + len, size - len, "%s%s=%.*s", i ? "," : "",
					catalog[pair->label].name, (int)pair->value_len, pair->value);
	}
}

static struct fx_asn_map *names_of(const char *text)
{
	struct fx_asn_map *names = fx_asn_map_parse(text, strlen(text), NULL);
	CHECK(names != NULL);
	return names;
}

static void test_catalog(void)
{
	for (size_t i = 0; i < FX_SERIES_LABELS_BUILTIN; i++) {
		CHECK_EQ_U64(fx_series_label_catalog[i].len, strlen(fx_series_label_catalog[i].name));
		CHECK(fx_series_label_catalog[i].len <= FX_SERIES_LABEL_NAME_MAX);
		if (i)
			CHECK(strcmp(fx_series_label_catalog[i - 1].name, fx_series_label_catalog[i].name) <
			      0);
		size_t found = 0;
		for (size_t bit = 0; bit < FX_SERIES_LABELS_BUILTIN; bit++)
			found += strcmp(fx_label_names[bit], fx_series_label_catalog[i].name) == 0;
		CHECK_EQ_U64(found, 1);
	}
}

static void test_pairs(void)
{
	struct fx_snapshot snapshot = {.label_mask = FX_LABEL_ALL,
				       .names = names_of("64500\tBACK\\SLASH \"Q\", ZZ\n64501\tPLAIN, FR\n")};
	struct fx_series_labels *labels = fx_series_labels_create();
	CHECK(labels != NULL);
	fx_series_labels_begin(labels, &snapshot);
	struct fx_label_set set;
	char text[512];

	struct fx_series_key all = {router_quoted, 64500, 64501, 10, 4294967295u, FX_LABEL_ALL, 0, {0}};
	fx_series_labels_get(labels, &all, &set);
	join(&set, text, sizeof(text));
	CHECK_STR(text, "destination_as=64501,destination_as_name=PLAIN,hostname=core \"east\",iface_in=10,"
			"iface_out=4294967295,source_as=64500,source_as_name=BACK\\SLASH \"Q\"");
	CHECK_EQ_U64(set.n, 7);
	CHECK(!set.pairs[0].escape && !set.pairs[1].escape && set.pairs[2].escape && set.pairs[6].escape);

	/* Not carried (present bits clear), an unknown AS (no name), an empty hostname: left out. */
	struct fx_series_key some = {"", 0, 7, 0, 0, FX_LABEL_HOSTNAME | FX_LABEL_DESTINATION_AS, 0, {0}};
	fx_series_labels_get(labels, &some, &set);
	join(&set, text, sizeof(text));
	CHECK_STR(text, "destination_as=7");

	/* The mask: only what it keeps. */
	snapshot.label_mask = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS_NAME;
	fx_series_labels_begin(labels, &snapshot);
	fx_series_labels_get(labels, &all, &set);
	join(&set, text, sizeof(text));
	CHECK_STR(text, "hostname=core \"east\",source_as_name=BACK\\SLASH \"Q\"");
	snapshot.label_mask = 0;
	fx_series_labels_begin(labels, &snapshot);
	fx_series_labels_get(labels, &all, &set);
	CHECK_EQ_U64(set.n, 0);

	/* A new snapshot with another map: the cache does not keep the old names. */
	fx_asn_map_unref(snapshot.names);
	snapshot.names = names_of("64500\tRENAMED, ZZ\n");
	snapshot.label_mask = FX_LABEL_ALL;
	fx_series_labels_begin(labels, &snapshot);
	struct fx_series_key plain = {router, 64500, 64501, 1, 2, FX_LABEL_ALL, 0, {0}};
	fx_series_labels_get(labels, &plain, &set);
	join(&set, text, sizeof(text));
	CHECK_STR(text,
		  "destination_as=64501,hostname=edge-1.example.net,iface_in=1,iface_out=2,source_as=64500,"
		  "source_as_name=RENAMED");
	fx_asn_map_unref(snapshot.names);
	fx_series_labels_destroy(labels);
	fx_series_labels_destroy(NULL);
}

/* 15169 and 4223 share a slot of the AS cache: as source and destination of one key, each keeps its own
 * number and name, in either order. */
static void test_asn_slot_collision(void)
{
	struct fx_snapshot snapshot = {.label_mask = FX_LABEL_ALL,
				       .names = names_of("15169\tGOOGLE, US\n4223\tCOLLIDING-AS, ZZ\n")};
	struct fx_series_labels *labels = fx_series_labels_create();
	fx_series_labels_begin(labels, &snapshot);
	struct fx_label_set set;
	char text[512];
	uint32_t present = FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS;
	for (int round = 0; round < 2; round++) {
		struct fx_series_key a = {NULL, 4223, 15169, 0, 0, present, 0, {0}},
				     b = {NULL, 15169, 4223, 0, 0, present, 0, {0}};
		fx_series_labels_get(labels, &a, &set);
		join(&set, text, sizeof(text));
		CHECK_STR(text, "destination_as=15169,destination_as_name=GOOGLE,source_as=4223,"
				"source_as_name=COLLIDING-AS");
		fx_series_labels_get(labels, &b, &set);
		join(&set, text, sizeof(text));
		CHECK_STR(text, "destination_as=4223,destination_as_name=COLLIDING-AS,source_as=15169,"
				"source_as_name=GOOGLE");
	}
	fx_asn_map_unref(snapshot.names);
	fx_series_labels_destroy(labels);
}

static struct fx_iface_map *iface_map_of(const char *text)
{
	struct fx_iface_map *map = NULL;
	struct fx_parse_error error = {0};
	CHECK(fx_iface_map_parse(text, strlen(text), &map, &error) == 0);
	return map;
}

#define IFACE_HEADER "exporter,ifindex,name,description,speed\n"
#define IFACE_ALL (FX_LABEL_ALL | FX_LABEL_IFACE_NAMES)

/* The sources of the interface tests: a file naming edge-1.example.net's interfaces by hostname and (9)
 * by its address, index 0 too; SNMP naming 7 (the file wins), 8, and 537 of core "east". */
static struct fx_iface_names *iface_sources(struct fx_exporter_peers *peers)
{
	fx_exporter_peers_note(peers, router, "192.0.2.1", 9);
	struct fx_iface_map *file =
	    iface_map_of(IFACE_HEADER "edge-1.example.net,537,et-0/0/1,\"TRANSIT-ARELION, 100G\","
				      "100000000000\n"
				      "edge-1.example.net,2,ge-0/0/2,,\n"
				      "192.0.2.1,9,by-address,\"say \"\"hi\"\"\",\n"
				      "edge-1.example.net,7,file-wins,,\n"
				      "edge-1.example.net,0,index-zero,,\n");
	struct fx_iface_entry snmp_entries[] = {{router, 7, "snmp-loses", "", 0, false},
						{router, 8, "xe-0/0/8", "from SNMP", 0, false},
						{router_quoted, 537, "on-the-other-router", "", 0, false}};
	struct fx_iface_map *snmp = fx_iface_map_build(snmp_entries, 3);
	struct fx_iface_names *names = fx_iface_names_create(file, snmp, peers);
	CHECK(names != NULL);
	return names;
}

static void test_iface_names(void)
{
	struct fx_exporter_peers *peers = fx_exporter_peers_create(16);
	struct fx_snapshot snapshot = {.label_mask = IFACE_ALL, .interfaces = iface_sources(peers)};
	struct fx_series_labels *labels = fx_series_labels_create();
	fx_series_labels_begin(labels, &snapshot);
	size_t n_catalog;
	const struct fx_label_name *catalog = fx_series_labels_catalog(labels, &n_catalog);
	CHECK_EQ_U64(n_catalog, 11);
	for (size_t i = 1; i < n_catalog; i++)
		CHECK(strcmp(catalog[i - 1].name, catalog[i].name) < 0);
	struct fx_label_set set;
	char text[512];

	struct fx_series_key key = {router, 64500, 64501, 537, 2, FX_LABEL_ALL, 0, {0}};
	fx_series_labels_get(labels, &key, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text, "destination_as=64501,hostname=edge-1.example.net,iface_in=537,"
			"iface_in_description=TRANSIT-ARELION, 100G,iface_in_name=et-0/0/1,iface_out=2,"
			"iface_out_name=ge-0/0/2,source_as=64500");
	/* By the address behind the hostname (escaped description), the file over SNMP, SNMP alone. */
	key.iface_in = 9;
	key.iface_out = 7;
	fx_series_labels_get(labels, &key, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text, "destination_as=64501,hostname=edge-1.example.net,iface_in=9,"
			"iface_in_description=say \"hi\",iface_in_name=by-address,iface_out=7,"
			"iface_out_name=file-wins,source_as=64500");
	CHECK(set.pairs[3].escape && !set.pairs[4].escape);
	key.iface_in = 8;
	key.iface_out = 999; /* named by no source */
	fx_series_labels_get(labels, &key, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text,
		  "destination_as=64501,hostname=edge-1.example.net,iface_in=8,"
		  "iface_in_description=from SNMP,iface_in_name=xe-0/0/8,iface_out=999,source_as=64500");
	/* Another hostname, no hostname, no iface_out in the key. */
	struct fx_series_key other_router = {router_quoted, 1, 2, 537, 2, FX_LABEL_ALL, 0, {0}};
	fx_series_labels_get(labels, &other_router, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text,
		  "destination_as=2,hostname=core \"east\",iface_in=537,iface_in_name=on-the-other-router,"
		  "iface_out=2,source_as=1");
	struct fx_series_key hostless = {NULL, 1,  2, 537, 2, FX_LABEL_ALL & ~(uint32_t)FX_LABEL_HOSTNAME,
					 0,    {0}};
	fx_series_labels_get(labels, &hostless, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text, "destination_as=2,iface_in=537,iface_out=2,source_as=1");
	struct fx_series_key in_only = {router, 1,  2, 537, 0, FX_LABEL_ALL & ~(uint32_t)FX_LABEL_IFACE_OUT,
					0,	{0}};
	fx_series_labels_get(labels, &in_only, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text, "destination_as=2,hostname=edge-1.example.net,iface_in=537,"
			"iface_in_description=TRANSIT-ARELION, 100G,iface_in_name=et-0/0/1,source_as=1");
	/* "other" (overflow, top-N): an other interface or hostname has no name (its index is 0 in the key,
	 * which the file names); a kept one (a top-N group of hostname and iface_in) keeps it. */
	struct fx_series_key folded = {
	    router, 0, 0, 0, 0, FX_LABEL_ALL, FX_LABEL_ALL & ~(uint32_t)FX_LABEL_HOSTNAME, {0}};
	fx_series_labels_get(labels, &folded, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text, "destination_as=other,hostname=edge-1.example.net,iface_in=other,iface_out=other,"
			"source_as=other");
	folded.iface_in = 537;
	folded.other &= ~(uint32_t)FX_LABEL_IFACE_IN;
	fx_series_labels_get(labels, &folded, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text, "destination_as=other,hostname=edge-1.example.net,iface_in=537,"
			"iface_in_description=TRANSIT-ARELION, 100G,iface_in_name=et-0/0/1,iface_out=other,"
			"source_as=other");
	struct fx_series_key no_host = {
	    NULL, 0, 0, 537, 0, FX_LABEL_ALL, FX_LABEL_ALL & ~(uint32_t)FX_LABEL_IFACE_IN, {0}};
	fx_series_labels_get(labels, &no_host, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text, "destination_as=other,hostname=other,iface_in=537,iface_out=other,source_as=other");

	fx_iface_names_unref(snapshot.interfaces);
	fx_series_labels_destroy(labels);
	fx_exporter_peers_destroy(peers);
}

/* The catalogs interface names make: only those kept, with extra dimensions; a reload's names. */
static void test_iface_catalogs(void)
{
	struct fx_exporter_peers *peers = fx_exporter_peers_create(16);
	struct fx_snapshot snapshot = {.interfaces = iface_sources(peers)};
	struct fx_series_labels *labels = fx_series_labels_create();
	struct fx_series_key key = {router, 64500, 64501, 537, 2, FX_LABEL_ALL, 0, {0}};
	struct fx_label_set set;
	char text[512];
	size_t n_catalog;
	const struct fx_label_name *catalog;

	/* Only some of them kept: the catalog has only those. */
	snapshot.label_mask =
	    FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN | FX_LABEL_IFACE_OUT | FX_LABEL_IFACE_OUT_NAME;
	fx_series_labels_begin(labels, &snapshot);
	catalog = fx_series_labels_catalog(labels, &n_catalog);
	CHECK_EQ_U64(n_catalog, 8);
	fx_series_labels_get(labels, &key, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text, "hostname=edge-1.example.net,iface_in=537,iface_out=2,iface_out_name=ge-0/0/2");
	/* No names in the snapshot: none. */
	struct fx_snapshot bare = {.label_mask = IFACE_ALL};
	fx_series_labels_begin(labels, &bare);
	fx_series_labels_get(labels, &key, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(
	    text,
	    "destination_as=64501,hostname=edge-1.example.net,iface_in=537,iface_out=2,source_as=64500");

	/* A reload: the next snapshot's names, not the cached ones. */
	struct fx_snapshot next = {
	    .label_mask = IFACE_ALL,
	    .interfaces = fx_iface_names_create(
		iface_map_of(IFACE_HEADER "edge-1.example.net,537,et-0/0/1,RENAMED,\n"), NULL, peers)};
	fx_series_labels_begin(labels, &next);
	fx_series_labels_get(labels, &key, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(
	    text,
	    "destination_as=64501,hostname=edge-1.example.net,iface_in=537,iface_in_description=RENAMED,"
	    "iface_in_name=et-0/0/1,iface_out=2,source_as=64500");
	fx_iface_names_unref(next.interfaces);

	/* With extra dimensions: one catalog in name order; the pairs sorted. */
	struct fx_key_layout layout;
	char why[256];
	CHECK(fx_key_layout_parse(&layout,
				  "hostname,iface_in,iface_in_name,protocol,iface_out,iface_out_description",
				  NULL, 0, NULL, why, sizeof(why)) == 0);
	snapshot.layout = &layout;
	snapshot.label_mask = layout.mask;
	fx_series_labels_begin(labels, &snapshot);
	catalog = fx_series_labels_catalog(labels, &n_catalog);
	CHECK_EQ_U64(n_catalog, 7 + 2 + 1);
	for (size_t i = 1; i < n_catalog; i++)
		CHECK(strcmp(catalog[i - 1].name, catalog[i].name) < 0);
	struct fx_series_key extra = {router,
				      0,
				      0,
				      537,
				      8,
				      FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN | FX_LABEL_IFACE_OUT |
					  FX_LABEL_EXTRA(0),
				      FX_LABEL_EXTRA(0),
				      {0}};
	fx_series_labels_get(labels, &extra, &set);
	join_with(labels, &set, text, sizeof(text));
	CHECK_STR(text, "hostname=edge-1.example.net,iface_in=537,iface_in_name=et-0/0/1,iface_out=8,"
			"iface_out_description=from SNMP,protocol=other");

	fx_iface_names_unref(snapshot.interfaces);
	fx_series_labels_destroy(labels);
	fx_exporter_peers_destroy(peers);
}

/* --labels: a name needs its index and the hostname; the name bits are no dimension of the key. */
static void test_iface_layout(void)
{
	struct fx_key_layout layout;
	char why[256];
	CHECK(fx_key_layout_parse(&layout, "hostname,iface_in,iface_in_name,iface_in_description", NULL, 0,
				  NULL, why, sizeof(why)) == 0);
	CHECK_EQ_U64(layout.mask & FX_LABEL_IFACE_NAMES,
		     FX_LABEL_IFACE_IN_NAME | FX_LABEL_IFACE_IN_DESCRIPTION);
	CHECK_EQ_U64(fx_key_layout_dims(&layout), FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN);
	CHECK_EQ_U64(layout.n_extra, 0);
	CHECK(fx_key_layout_parse(&layout, "hostname,iface_out,iface_in_name", NULL, 0, NULL, why,
				  sizeof(why)) == -1);
	CHECK_STR(why, "iface_in_name needs iface_in");
	CHECK(fx_key_layout_parse(&layout, "hostname,iface_in,iface_out_description", NULL, 0, NULL, why,
				  sizeof(why)) == -1);
	CHECK_STR(why, "iface_out_description needs iface_out");
	CHECK(fx_key_layout_parse(&layout, "iface_out,iface_out_name", NULL, 0, NULL, why, sizeof(why)) ==
	      -1);
	CHECK(strstr(why, "iface_out_name needs hostname") != NULL);
	const char *from = "iface_in_name=ifname";
	CHECK(fx_key_layout_parse(&layout, "hostname", &from, 1, NULL, why, sizeof(why)) == -1);
	CHECK(strstr(why, "is a label of the catalog") != NULL);
	/* Overflow keeps no name bit in the key. */
	CHECK(fx_key_layout_parse(&layout, "hostname,iface_in,iface_in_name,iface_out,iface_out_name", NULL,
				  0, NULL, why, sizeof(why)) == 0);
	struct fx_series_key key = {router, 0,	0,
				    537,    2,	FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN | FX_LABEL_IFACE_OUT,
				    0,	    {0}},
			     out;
	fx_key_overflow(&layout, &key, &out);
	CHECK_EQ_U64(out.present, FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN | FX_LABEL_IFACE_OUT);
	CHECK_EQ_U64(out.other, FX_LABEL_IFACE_IN | FX_LABEL_IFACE_OUT);
}

int main(void)
{
	test_catalog();
	test_pairs();
	test_asn_slot_collision();
	test_iface_names();
	test_iface_catalogs();
	test_iface_layout();
	return check_exit();
}
