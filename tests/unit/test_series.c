/* The series key of configured dimensions (series.c) end to end: --labels / --label-from parsed into a
 * layout, both decoders reading the extra keys alike (rule 7), the key built by the ingest step and its
 * labels rendered (numbers, interned strings, prefixes, "other"), and overflow: more distinct keys than
 * --max-series over several hostnames, with exact per-hostname sums, held series within the limit and the
 * overflow metric equal to the records of the overflow series (against a model of what was sent). */
#include <stdlib.h>

#include "check.h"
#include "fx/expo_text.h"
#include "fx/ingest.h"
#include "fx/intern.h"

static void test_layout_parse(void)
{
	struct fx_key_layout layout;
	char why[256];
	const char *from[] = {"as_path_len=as_path_len", "bgp_comms=comms"};
	CHECK(fx_key_layout_parse(&layout, "hostname,protocol,source_port,source_net,exporter", from, 2, NULL,
				  why, sizeof(why)) == 0);
	CHECK_EQ_U64(layout.n_extra, 6);
	CHECK_EQ_U64(layout.mask & FX_LABEL_ALL, FX_LABEL_HOSTNAME);
	CHECK_STR(layout.extra[0].label, "protocol");
	CHECK_STR(layout.extra[0].key, "ip_proto");
	CHECK_STR(layout.extra[2].mask_key, "mask_src");
	CHECK_STR(layout.extra[4].label, "as_path_len");
	CHECK_STR(layout.extra[5].key, "comms");
	CHECK(layout.mask & FX_LABEL_EXTRA(5));
	CHECK(fx_key_layout_parse(&layout, "hostname,bogus", NULL, 0, NULL, why, sizeof(why)) == -1);
	CHECK(strstr(why, "bogus") != NULL);
	CHECK(fx_key_layout_parse(&layout, "source_as_name", NULL, 0, NULL, why, sizeof(why)) == -1);
	const char *clash[] = {"protocol=ip_proto"};
	CHECK(fx_key_layout_parse(&layout, "none", clash, 1, NULL, why, sizeof(why)) == -1);
	const char *bad[] = {"1x=y"};
	CHECK(fx_key_layout_parse(&layout, "none", bad, 1, NULL, why, sizeof(why)) == -1);
	CHECK(fx_key_layout_parse(
		  &layout,
		  "protocol,source_port,destination_port,source_net,destination_net,source_peer_as,"
		  "destination_peer_as,tos,vlan_in",
		  NULL, 0, NULL, why, sizeof(why)) == -1); /* nine extra: one too many */
	CHECK(fx_key_layout_parse(&layout, "none", NULL, 0, NULL, why, sizeof(why)) == 0 && layout.mask == 0);
}

/* Folding keeps the kept labels and sets every other dimension to "other", zeroing its field. */
static void test_fold(void)
{
	struct fx_series_key key = {.hostname = "r1",
				    .as_src = 1,
				    .as_dst = 2,
				    .iface_in = 3,
				    .present = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS |
					       FX_LABEL_DESTINATION_AS | FX_LABEL_IFACE_IN |
					       FX_LABEL_EXTRA(0),
				    .extra = {7}};
	uint32_t dims = FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS | FX_LABEL_IFACE_IN |
			FX_LABEL_IFACE_OUT | FX_LABEL_EXTRA(0);
	struct fx_series_key out;
	fx_key_fold(&key, dims, FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN, &out);
	CHECK_STR(out.hostname, "r1");
	CHECK_EQ_U64(out.iface_in, 3);
	CHECK_EQ_U64(out.as_src + out.as_dst + out.extra[0], 0);
	CHECK_EQ_U64(out.other,
		     FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS | FX_LABEL_IFACE_OUT | FX_LABEL_EXTRA(0));
	CHECK_EQ_U64(out.present, dims);
	/* Folding twice is folding once; two keys of one group fold alike. */
	struct fx_series_key again, other = key;
	other.as_src = 99;
	other.extra[0] = 8;
	fx_key_fold(&out, dims, FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN, &again);
	CHECK(memcmp(&again, &out, sizeof(out)) == 0);
	fx_key_fold(&other, dims, FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN, &again);
	CHECK(memcmp(&again, &out, sizeof(out)) == 0);
	/* The hostname folded too: no pointer left. */
	fx_key_fold(&key, dims, 0, &out);
	CHECK(out.hostname == NULL && (out.other & FX_LABEL_HOSTNAME));
}

/* Rule 7 in both decoders: every type and range verdict, values and absence, in the scanner's flat shape
 * and in the reference's nested fallback. */
static void test_decode_extras(void)
{
	static const struct fx_decoder_key keys[] = {
	    {"ip_proto", FX_KEY_SCALAR, UINT64_MAX}, {"port_src", FX_KEY_NUMBER, UINT32_MAX},
	    {"net_src", FX_KEY_STRING, 0},	     {"mask_src", FX_KEY_NUMBER, 128},
	    {"tag", FX_KEY_SCALAR, UINT64_MAX},
	};
	static const struct {
		const char *extra;
		enum fx_record_kind kind;
		const char *expect; /* the extra values as text, "-" for absent */
	} cases[] = {
	    {"", FX_REC_FLOW, "- - - - -"},
	    {", \"ip_proto\": \"tcp\", \"port_src\": 443, \"net_src\": \"192.0.2.0\", \"mask_src\": 24",
	     FX_REC_FLOW, "tcp 443 192.0.2.0 24 -"},
	    {", \"ip_proto\": 89, \"tag\": 18446744073709551615", FX_REC_FLOW,
	     "89 - - - 18446744073709551615"},
	    {", \"tag\": true, \"ip_proto\": null, \"net_src\": \"a\\u00e9\\\"b\"", FX_REC_FLOW,
	     "- - a\xc3\xa9\"b - true"},
	    {", \"port_src\": \"443\"", FX_REC_INVALID_TYPE, ""},
	    {", \"port_src\": -1", FX_REC_INVALID_RANGE, ""},
	    {", \"port_src\": 4294967296", FX_REC_INVALID_RANGE, ""},
	    {", \"mask_src\": 129", FX_REC_INVALID_RANGE, ""},
	    {", \"net_src\": 1", FX_REC_INVALID_TYPE, ""},
	    {", \"net_src\": \"a\\u0000\"", FX_REC_INVALID_UTF8, ""},
	    {", \"tag\": 1.5", FX_REC_INVALID_RANGE, ""},
	    {", \"tag\": false, \"port_src\": true", FX_REC_INVALID_TYPE, ""},
	    {", \"port_src\": 1, \"port_src\": 2", FX_REC_INVALID_JSON, ""},
	};
	struct fx_decoder *decoders[2] = {fx_decoder_create(4096), fx_decoder_create(4096)};
	for (int d = 0; d < 2; d++)
		CHECK(fx_decoder_set_keys(decoders[d], keys, sizeof(keys) / sizeof(keys[0])) == 0);
	static const struct fx_decoder_key builtin[] = {{"bytes", FX_KEY_NUMBER, 1}};
	CHECK(fx_decoder_set_keys(decoders[0], builtin, 1) == -1);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (int nested = 0; nested < 2; nested++) {
			char record[1024];
			snprintf(record, sizeof(record),
				 "{\"label\": \"r1\", \"as_src\": 1, \"as_dst\": 2, \"bytes\": 10, "
				 "\"packets\": 1%s%s}",
				 cases[c].extra, nested ? ", \"nested\": {\"a\": [1]}" : "");
			for (int d = 0; d < 2; d++) {
				struct fx_flow flow;
				enum fx_record_kind kind =
				    d == 0 ? fx_decode_record(decoders[d], record, strlen(record), &flow)
					   : fx_decode_record_jansson(decoders[d], record, strlen(record),
								      &flow);
				CHECK_EQ_U64(kind, cases[c].kind);
				if (kind != FX_REC_FLOW || kind != cases[c].kind)
					continue;
				char text[512] = "";
				size_t len = 0;
				for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
					const struct fx_flow_value *v = &flow.extra[k];
					const char *sep = k ? " " : "";
					if (v->type == FX_VALUE_ABSENT)
						len += (size_t)snprintf(text + len, sizeof(text) - len, "%s-",
									sep);
					else if (v->type == FX_VALUE_NUMBER)
						len +=
						    (size_t)snprintf(text + len, sizeof(text) - len, "%s%llu",
								     sep, (unsigned long long)v->number);
					else
						len += (size_t)snprintf(text + len, sizeof(text) - len,
									"%s%.*s", sep, (int)v->len, v->text);
				}
				CHECK_STR(text, cases[c].expect);
				CHECK_STR(flow.hostname, "r1");
			}
		}
	}
	fx_decoder_destroy(decoders[0]);
	fx_decoder_destroy(decoders[1]);
}

struct world {
	struct fx_local_asns local;
	struct fx_intern *hostnames, *strings;
	struct fx_key_layout layout;
	struct fx_store *store;
	struct fx_ingest *ingest;
};

static void world_create(struct world *w, const char *labels, size_t max_series)
{
	char why[256];
	w->local = (struct fx_local_asns){.asn = {65000}, .n = 1};
	w->hostnames = fx_intern_create(100);
	w->strings = fx_intern_create(100000);
	CHECK(fx_key_layout_parse(&w->layout, labels, NULL, 0, w->strings, why, sizeof(why)) == 0);
	struct fx_store_config store = {.n_workers = 1, .max_series = max_series, .layout = &w->layout};
	w->store = fx_store_create(&store);
	struct fx_ingest_config config = {.local = &w->local,
					  .layout = &w->layout,
					  .max_series = max_series,
					  .max_record_bytes = 4096,
					  .hostnames = w->hostnames,
					  .store = w->store};
	w->ingest = fx_ingest_create(&config);
	CHECK(w->store && w->ingest);
}

static void world_destroy(struct world *w)
{
	fx_ingest_destroy(w->ingest);
	fx_store_destroy(w->store);
	fx_intern_destroy(w->hostnames);
	fx_intern_destroy(w->strings);
}

static struct fx_snapshot *world_snapshot(struct world *w)
{
	CHECK(fx_ingest_flush(w->ingest, true));
	return fx_store_snapshot(w->store);
}

static char *render(const struct fx_snapshot *snapshot)
{
	struct fx_buf out;
	fx_buf_init(&out, (size_t)1 << 30);
	CHECK(fx_expo_text_render(snapshot, &out) == 0);
	CHECK(fx_buf_reserve(&out, 1) == 0);
	out.data[out.len] = '\0';
	return out.data;
}

/* Extra dimensions end to end: the labels of one record each. */
static void test_extra_labels(void)
{
	struct world w;
	world_create(&w, "hostname,source_as,protocol,source_port,source_net,exporter", 100);
	const char *records = "{\"label\": \"r1\", \"peer_ip_src\": \"10.0.0.1\", \"as_src\": 65000, "
			      "\"as_dst\": 2, \"bytes\": 10, "
			      "\"packets\": 1, \"ip_proto\": \"tcp\", \"port_src\": 0, \"net_src\": "
			      "\"192.0.2.0\", \"mask_src\": 24}\n"
			      "{\"label\": \"r1\", \"as_src\": 65000, \"as_dst\": 2, \"bytes\": 5, "
			      "\"packets\": 1, \"ip_proto\": 17, "
			      "\"net_src\": \"2001:db8::\", \"mask_src\": 32}\n";
	fx_ingest_message(w.ingest, records, strlen(records), 1000);
	struct fx_snapshot *snapshot = world_snapshot(&w);
	char *text = render(snapshot);
	CHECK(strstr(text, "flow_transmit_bytes_total{exporter=\"10.0.0.1\",hostname=\"r1\",protocol=\"tcp\","
			   "source_as=\"65000\",source_net=\"192.0.2.0/24\",source_port=\"0\"} 10") != NULL);
	CHECK(strstr(text, "flow_transmit_bytes_total{hostname=\"r1\",protocol=\"17\",source_as=\"65000\","
			   "source_net=\"2001:db8::/32\"} 5") != NULL);
	free(text);
	fx_snapshot_destroy(snapshot);
	world_destroy(&w);
}

static uint64_t sample_of(const struct fx_snapshot *snapshot, const char *family_name, const char *hostname)
{
	for (size_t f = 0; f < fx_family_list_count(snapshot->self); f++) {
		const struct fx_family *family = fx_family_list_get(snapshot->self, f);
		if (strcmp(family->name, family_name))
			continue;
		for (size_t s = 0; s < family->n_samples; s++)
			if (!hostname || (family->samples[s].n_labels &&
					  !strcmp(family->samples[s].labels[0].value, hostname)))
				return family->samples[s].integer;
	}
	return 0;
}

/* Overflow: random records over far more keys than the limit, multi-value and single messages, four
 * hostnames, flushed at random points; the model is the sum sent per hostname. */
static void test_overflow(void)
{
	enum { LIMIT = 300, HOSTS = 4, MESSAGES = 4000 };
	static const char *const hosts[HOSTS] = {"r1", "r2", "r3", "r4"};
	struct world w;
	world_create(&w, "hostname,source_as,destination_as,destination_port", LIMIT);
	fx_store_add_collector(w.store, fx_store_collect, w.store);
	uint64_t sent[HOSTS] = {0}, records = 0, rng = 88172645463325252ull;
	char message[8192];
	for (int m = 0; m < MESSAGES; m++) {
		size_t len = 0;
		int n = (m % 3) ? 1 : 1 + (int)(rng % 20);
		for (int r = 0; r < n; r++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			unsigned host = (unsigned)(rng % HOSTS), asn = (unsigned)(rng >> 8) % 500,
				 port = (unsigned)(rng >> 20) % 7;
			uint64_t bytes = 1 + (rng >> 40) % 1500;
			len += (size_t)snprintf(
			    message + len, sizeof(message) - len,
			    "{\"label\": \"%s\", \"as_src\": 65000, \"as_dst\": %u, \"port_dst\": %u, "
			    "\"bytes\": %llu, \"packets\": 1}\n",
			    hosts[host], asn, port, (unsigned long long)bytes);
			sent[host] += bytes;
			records++;
		}
		fx_ingest_message(w.ingest, message, len, 1000 + m);
		if (rng % 97 == 0) {
			fx_ingest_flush(w.ingest, false);
		}
	}
	struct fx_snapshot *snapshot = world_snapshot(&w);
	uint64_t got[HOSTS] = {0}, held = 0, overflow_records = 0, held_records = 0;
	for (size_t i = 0; i < snapshot->n_series; i++) {
		const struct fx_series *s = &snapshot->series[i];
		for (int h = 0; h < HOSTS; h++)
			if (s->key.hostname && !strcmp(s->key.hostname, hosts[h]))
				got[h] += s->bytes[FX_DIR_TRANSMIT];
		if (s->key.other) {
			CHECK_EQ_U64(s->key.other,
				     FX_LABEL_SOURCE_AS | FX_LABEL_DESTINATION_AS | FX_LABEL_EXTRA(0));
			overflow_records += s->records;
			CHECK_EQ_U64(
			    sample_of(snapshot, "flow_exporter_records_overflow_total", s->key.hostname),
			    s->records);
		} else {
			held++;
			held_records += s->records;
		}
	}
	for (int h = 0; h < HOSTS; h++)
		CHECK_EQ_U64(got[h], sent[h]);
	CHECK(held <= LIMIT);
	CHECK_EQ_U64(held, LIMIT); /* 14,000 keys were offered */
	CHECK_EQ_U64(sample_of(snapshot, "flow_exporter_series", NULL), held);
	CHECK_EQ_U64(overflow_records + held_records, records);
	CHECK(overflow_records > 0);
	char *text = render(snapshot);
	CHECK(strstr(text, "flow_transmit_bytes_total{destination_as=\"other\",destination_port=\"other\","
			   "hostname=\"r1\",source_as=\"other\"}") != NULL);
	free(text);
	fx_snapshot_destroy(snapshot);
	world_destroy(&w);
}

int main(void)
{
	test_layout_parse();
	test_fold();
	test_decode_extras();
	test_extra_labels();
	test_overflow();
	return check_exit();
}
