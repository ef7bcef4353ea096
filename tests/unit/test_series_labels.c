/* fx_series_labels: the catalog (sorted, the same names as the --labels bits), a key's pairs in name order
 * with the mask, the key's present bits and empty values applied, escaping flags, two ASNs that share an AS
 * cache slot, and a new snapshot's map replacing the old one's names. */
#include "fx/series_labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

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

int main(void)
{
	test_catalog();
	test_pairs();
	test_asn_slot_collision();
	return check_exit();
}
