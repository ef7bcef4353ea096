/* pmacct JSON decoding: the captured pmacct messages decode to the values read off the fixtures by hand,
 * every rule of the contract has a case, a multi-value message keeps its good records around bad ones,
 * and the fast scanner and the jansson reference agree on every case and on thousands of mutations. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "fx/flow_decode.h"

#define MAX_RECORD 8192

/* The hostname as a C string for CHECK_STR ("(none)" when NULL). */
static const char *hostname_of(const struct fx_flow *flow)
{
	return flow->hostname ? flow->hostname : "(none)";
}

static bool same_peer(const struct fx_flow *a, const struct fx_flow *b)
{
	if ((a->peer_ip_src == NULL) != (b->peer_ip_src == NULL) || a->peer_ip_src_len != b->peer_ip_src_len)
		return false;
	return !a->peer_ip_src || memcmp(a->peer_ip_src, b->peer_ip_src, a->peer_ip_src_len) == 0;
}

static bool same_flow(const struct fx_flow *a, const struct fx_flow *b)
{
	if (a->hostname_len != b->hostname_len || (a->hostname == NULL) != (b->hostname == NULL))
		return false;
	if (a->hostname && (memcmp(a->hostname, b->hostname, a->hostname_len) != 0 ||
			    a->hostname[a->hostname_len] != '\0' || b->hostname[b->hostname_len] != '\0'))
		return false;
	return a->as_src == b->as_src && a->as_dst == b->as_dst && a->has_iface_in == b->has_iface_in &&
	       a->has_iface_out == b->has_iface_out && (!a->has_iface_in || a->iface_in == b->iface_in) &&
	       (!a->has_iface_out || a->iface_out == b->iface_out) && a->bytes == b->bytes &&
	       a->packets == b->packets && a->sampling_rate == b->sampling_rate && same_peer(a, b);
}

static void print_record(const char *record, size_t len)
{
	fputc('\'', stderr);
	for (size_t i = 0; i < len && i < 400; i++) {
		unsigned char c = (unsigned char)record[i];
		if (c >= 0x20 && c < 0x7F && c != '\\')
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fputs("'\n", stderr);
}

/* Runs both decoders (each with its own decoder, so neither sees the other's scratch buffer) and
 * checks they agree. Returns the fast decoder's kind; *flow holds its flow. */
static struct fx_decoder *fast_decoder, *reference_decoder;
static size_t disagreements;

static enum fx_record_kind decode_both(const char *record, size_t len, struct fx_flow *flow)
{
	struct fx_flow reference_flow;
	memset(flow, 0, sizeof(*flow));
	memset(&reference_flow, 0, sizeof(reference_flow));
	enum fx_record_kind kind = fx_decode_record(fast_decoder, record, len, flow);
	enum fx_record_kind reference =
	    fx_decode_record_jansson(reference_decoder, record, len, &reference_flow);
	bool agree = kind == reference && (kind != FX_REC_FLOW || same_flow(flow, &reference_flow));
	CHECK(agree);
	if (!agree) {
		disagreements++;
		fprintf(stderr, "  fast %s, jansson %s on ", fx_record_kind_name(kind),
			fx_record_kind_name(reference));
		print_record(record, len);
	}
	return kind;
}

static enum fx_record_kind decode_text(const char *record, struct fx_flow *flow)
{
	return decode_both(record, strlen(record), flow);
}

static void expect_kind_len(const char *record, size_t len, enum fx_record_kind expected, int line)
{
	struct fx_flow flow;
	enum fx_record_kind kind = decode_both(record, len, &flow);
	check_count++;
	if (kind != expected) {
		check_failures++;
		fprintf(stderr, "%s:%d: expected %s, got %s for ", __FILE__, line,
			fx_record_kind_name(expected), fx_record_kind_name(kind));
		print_record(record, len);
	}
}
#define EXPECT(record, kind) expect_kind_len(record, strlen(record), kind, __LINE__)

/* A valid flow with one part swapped: FLOW_WITH("\"bytes\": -1") replaces the bytes. The base holds
 * every field; `extra` comes first so that a duplicate of a later key is refused as JSON. */
#define BASE_TAIL                                                                                            \
	"\"event_type\": \"purge\", \"label\": \"r1\", \"peer_ip_src\": \"192.0.2.1\", \"as_src\": 1, "      \
	"\"as_dst\": 2, \"iface_in\": 3, \"iface_out\": 4"
#define FLOW_BASE "{" BASE_TAIL ", \"packets\": 5, \"bytes\": 6}"

/* ---------------------------------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------------------------------ */

struct expected {
	const char *hostname;
	uint32_t as_src, as_dst, iface_in, iface_out;
	uint64_t packets, bytes;
};

static char *read_fixture(const char *name, size_t *len)
{
	const char *dir = getenv("FX_TEST_DATA");
	char path[1024];
	snprintf(path, sizeof(path), "%s/pmacct/%s", dir ? dir : "tests/data", name);
	FILE *file = fopen(path, "rb");
	CHECK(file != NULL);
	if (!file) {
		fprintf(stderr, "cannot open %s (set FX_TEST_DATA)\n", path);
		return NULL;
	}
	fseek(file, 0, SEEK_END);
	long size = ftell(file);
	fseek(file, 0, SEEK_SET);
	char *text = malloc((size_t)size + 1);
	size_t got = fread(text, 1, (size_t)size, file);
	fclose(file);
	text[got] = '\0';
	*len = got;
	return text;
}

static void check_flow(const struct fx_flow *flow, const struct expected *expected, size_t row)
{
	size_t failures_before = (size_t)check_failures;
	CHECK_STR(hostname_of(flow), expected->hostname);
	CHECK_EQ_U64(flow->hostname_len, strlen(expected->hostname));
	CHECK_EQ_U64(flow->as_src, expected->as_src);
	CHECK_EQ_U64(flow->as_dst, expected->as_dst);
	CHECK(flow->has_iface_in && flow->has_iface_out);
	CHECK_EQ_U64(flow->iface_in, expected->iface_in);
	CHECK_EQ_U64(flow->iface_out, expected->iface_out);
	CHECK_EQ_U64(flow->packets, expected->packets);
	CHECK_EQ_U64(flow->bytes, expected->bytes);
	if ((size_t)check_failures != failures_before)
		fprintf(stderr, "  (row %zu)\n", row);
}

/* Decodes a .jsonl fixture one line at a time (one Kafka message each) against the expected rows. */
static void check_jsonl(const char *name, const struct expected *rows, size_t row_count,
			enum fx_record_kind kind_of_all)
{
	size_t len;
	char *text = read_fixture(name, &len);
	if (!text)
		return;
	size_t row = 0;
	for (char *line = text; line < text + len;) {
		char *newline = memchr(line, '\n', (size_t)(text + len - line));
		size_t line_len = (size_t)((newline ? newline : text + len) - line);
		struct fx_flow flow;
		enum fx_record_kind kind = decode_both(line, line_len, &flow);
		CHECK_EQ_U64(kind, kind_of_all);
		if (kind == FX_REC_FLOW && rows && row < row_count)
			check_flow(&flow, &rows[row], row);
		row++;
		line = newline ? newline + 1 : text + len;
	}
	CHECK_EQ_U64(row, row_count);
	free(text);
}

#define R1 "router1.example.net"
#define R2 "router2.example.net"

static const struct expected json_rows[] = {
    {R1, 64502, 64497, 0, 0, 5, 1430},
    {R1, 64501, 64496, 0, 0, 10, 11860},
    {R1, 64496, 64501, 0, 0, 12, 16632},
    {R1, 0, 64501, 0, 0, 8, 7888},
    {R2, 64501, 64496, 11, 21, 300, 450000},
    {R2, 64496, 64501, 21, 11, 360, UINT64_C(10705032704)},
    {R2, 64502, 64497, 12, 22, 15, 4290},
    {R2, 4200000001u, 64502, 13, 12, 21, 21000},
    {R2, 64501, 64496, 11, 21, 100, 150000},
    {R2, 64496, 64501, 21, 11, 120, UINT64_C(5000000000)},
    {R2, 64502, 64497, 12, 22, 5, 1430},
    {R2, 4200000001u, 64502, 13, 12, 7, 7000},
    /* the exporter with "label": "": named by peer_ip_src */
    {"127.0.0.3", 64501, 64496, 11, 21, 100, 150000},
    {"127.0.0.3", 64496, 64501, 21, 11, 120, UINT64_C(5000000000)},
    {"127.0.0.3", 64502, 64497, 12, 22, 5, 1430},
    {"127.0.0.3", 4200000001u, 64502, 13, 12, 7, 7000},
    {R1, 64502, 64497, 5, 0, 5, 1430},
    {R1, 64501, 64496, 5, 0, 10, 11860},
    {R1, 64496, 64501, 5, 0, 12, 16632},
    {R1, 0, 64501, 5, 0, 8, 7888},
    {R1, 64502, 64497, 5, 0, 5, 1430},
    {R1, 64501, 64496, 5, 0, 10, 11860},
    {R1, 64496, 64501, 5, 0, 12, 16632},
    {R1, 0, 64501, 5, 0, 8, 7888},
};

static const struct expected variant_rows[] = {
    {R2, 64496, 64501, 21, 11, 120, UINT64_C(5000000000)},
    {R1, 64501, 64496, 11, 21, 100, 150000},
    {R2, 64502, 64497, 12, 22, 5, 1430},
    {R1, 64502, 64497, 12, 22, 5, 1430},
    {R1, 59905, 64502, 13, 12, 7, 7000},
    {R2, 64501, 64496, 11, 21, 100, 150000},
    {R2, 4200000001u, 64502, 13, 12, 7, 7000},
    {R1, 64496, 64501, 21, 11, 120, 705032704},
};

static void test_fixtures(void)
{
	check_jsonl("pmacct-kafka-json.jsonl", json_rows, sizeof(json_rows) / sizeof(json_rows[0]),
		    FX_REC_FLOW);
	check_jsonl("pmacct-kafka-json-variant.jsonl", variant_rows,
		    sizeof(variant_rows) / sizeof(variant_rows[0]), FX_REC_FLOW);
	check_jsonl("pmacct-kafka-json-markers.jsonl", NULL, 4, FX_REC_MARKER);
}

/* What fx_decode_message reported, record by record. */
struct collected {
	size_t count;
	enum fx_record_kind kinds[64];
	struct fx_flow flows[64];
	char hostnames[64][64];
	size_t line_lens[64];
	uint64_t bytes, packets;
};

static void collect(void *opaque, enum fx_record_kind kind, const struct fx_flow *flow, const char *record,
		    size_t len)
{
	struct collected *collected = opaque;
	CHECK((kind == FX_REC_FLOW) == (flow != NULL));
	CHECK(record != NULL && len > 0);
	if (collected->count >= 64)
		return;
	size_t i = collected->count++;
	collected->kinds[i] = kind;
	collected->line_lens[i] = len;
	if (flow) {
		collected->flows[i] = *flow;
		/* The hostname is borrowed until the next record: copy it now. */
		snprintf(collected->hostnames[i], sizeof(collected->hostnames[i]), "%.*s",
			 (int)flow->hostname_len, flow->hostname ? flow->hostname : "");
		collected->bytes += flow->bytes;
		collected->packets += flow->packets;
	}
}

static void test_multi_values_fixture(void)
{
	size_t len;
	char *message = read_fixture("pmacct-kafka-json-multi-values.msg", &len);
	if (!message)
		return;
	CHECK(len > 0 && message[len - 1] == '\n');
	struct collected collected = {0};
	CHECK_EQ_U64(fx_decode_message(fast_decoder, message, len, collect, &collected), 8);
	CHECK_EQ_U64(collected.count, 8);
	for (size_t i = 0; i < collected.count && i < 8; i++) {
		CHECK_EQ_U64(collected.kinds[i], FX_REC_FLOW);
		collected.flows[i].hostname = collected.hostnames[i];
		check_flow(&collected.flows[i], &json_rows[i], i);
	}
	CHECK_EQ_U64(collected.packets, 731);
	CHECK_EQ_U64(collected.bytes, UINT64_C(10705545804));
	free(message);
}

/* Bad lines between good ones: every good record still counts, each bad one reports its reason. */
static void test_message_with_bad_lines(void)
{
	static const char message[] =
	    "{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 100, \"label\": \"a\"}\n"
	    "{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 100\n" /* truncated */
	    "\n"
	    "  \t \r\n" /* blank */
	    "{\"as_src\": 1, \"as_dst\": 2, \"packets\": 2, \"bytes\": 200, \"label\": \"b\"}\r\n"
	    "{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": -1}\n"
	    "{\"event_type\": \"purge_init\", \"writer_id\": \"x/1\"}\n"
	    "{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"label\": \"\xff\"}\n"
	    "not json\n"
	    "{\"as_src\": 1, \"as_dst\": 2, \"packets\": 4, \"bytes\": 400, \"label\": \"c\"}"; /* no final \n
												 */
	struct collected collected = {0};
	size_t records = fx_decode_message(fast_decoder, message, sizeof(message) - 1, collect, &collected);
	static const enum fx_record_kind expected[] = {
	    FX_REC_FLOW,   FX_REC_INVALID_JSON, FX_REC_FLOW,	     FX_REC_INVALID_RANGE,
	    FX_REC_MARKER, FX_REC_INVALID_UTF8, FX_REC_INVALID_JSON, FX_REC_FLOW,
	};
	CHECK_EQ_U64(records, 8);
	CHECK_EQ_U64(collected.count, 8);
	for (size_t i = 0; i < 8 && i < collected.count; i++)
		CHECK_EQ_U64(collected.kinds[i], expected[i]);
	CHECK_STR(collected.hostnames[0], "a");
	CHECK_STR(collected.hostnames[2], "b");
	CHECK_STR(collected.hostnames[7], "c");
	CHECK_EQ_U64(collected.bytes, 700);
	CHECK_EQ_U64(collected.packets, 7);
	/* The line handed back excludes its '\n' (a '\r' before it stays: it is JSON whitespace). */
	CHECK_EQ_U64(collected.line_lens[0],
		     strlen("{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": "
			    "100, \"label\": \"a\"}"));

	/* Empty and blank messages hold no record. */
	CHECK_EQ_U64(fx_decode_message(fast_decoder, "", 0, collect, &collected), 0);
	CHECK_EQ_U64(fx_decode_message(fast_decoder, "\n\r\n \n", 5, collect, &collected), 0);
}

/* ---------------------------------------------------------------------------------------------------
 * The rules, one case each (and both decoders on every one)
 * ------------------------------------------------------------------------------------------------ */

static void test_valid_base_and_whitespace(void)
{
	struct fx_flow flow;
	CHECK_EQ_U64(decode_text(FLOW_BASE, &flow), FX_REC_FLOW);
	CHECK_STR(hostname_of(&flow), "r1");
	CHECK_EQ_U64(flow.as_src, 1);
	CHECK_EQ_U64(flow.as_dst, 2);
	CHECK(flow.has_iface_in && flow.has_iface_out);
	CHECK_EQ_U64(flow.iface_in, 3);
	CHECK_EQ_U64(flow.iface_out, 4);
	CHECK_EQ_U64(flow.packets, 5);
	CHECK_EQ_U64(flow.bytes, 6);

	/* Whitespace of all four kinds around every token, and none at all. */
	CHECK_EQ_U64(
	    decode_text(" \t\r\n{ \"as_src\" :\t1 ,\r\n\"as_dst\":2,\"packets\":3,\"bytes\":4 } \r\n ",
			&flow),
	    FX_REC_FLOW);
	CHECK(flow.hostname == NULL && flow.hostname_len == 0);
	CHECK(!flow.has_iface_in && !flow.has_iface_out);
	CHECK_EQ_U64(flow.bytes, 4);
}

/* Counters to 2^64 - 1, AS numbers to 2^32 - 1. */
static void test_valid_number_limits(void)
{
	struct fx_flow flow;
	CHECK_EQ_U64(decode_text("{\"as_src\": 4294967295, \"as_dst\": 4200000001, \"iface_in\": 4294967295, "
				 "\"packets\": 18446744073709551615, \"bytes\": 18446744073709551615}",
				 &flow),
		     FX_REC_FLOW);
	CHECK_EQ_U64(flow.as_src, UINT32_MAX);
	CHECK_EQ_U64(flow.as_dst, 4200000001u);
	CHECK_EQ_U64(flow.iface_in, UINT32_MAX);
	CHECK_EQ_U64(flow.bytes, UINT64_MAX);
	CHECK_EQ_U64(flow.packets, UINT64_MAX);
	CHECK_EQ_U64(
	    decode_text("{\"as_src\": 0, \"as_dst\": 0, \"packets\": 9223372036854775808, \"bytes\": "
			"9223372036854775807}",
			&flow),
	    FX_REC_FLOW);
	CHECK_EQ_U64(flow.packets, UINT64_C(9223372036854775808));
	CHECK_EQ_U64(flow.bytes, UINT64_C(9223372036854775807));
}

static void test_valid_escapes_and_hostnames(void)
{
	struct fx_flow flow;
	/* Keys compare after unescaping; event_type too. */
	CHECK_EQ_U64(
	    decode_text("{\"event_type\": \"purg\\u0065\", \"\\u0061s_src\": 7, \"as_dst\": 8, \"packets\": "
			"1, \"by\\u0074es\": 42}",
			&flow),
	    FX_REC_FLOW);
	CHECK_EQ_U64(flow.as_src, 7);
	CHECK_EQ_U64(flow.bytes, 42);

	/* Hostname: label, else peer_ip_src, else none; unescaped and NUL-terminated. */
	CHECK_EQ_U64(
	    decode_text("{\"label\": \"\", \"peer_ip_src\": \"10.0.0.1\", \"as_src\": 1, \"as_dst\": 2, "
			"\"packets\": 1, \"bytes\": 1}",
			&flow),
	    FX_REC_FLOW);
	CHECK_STR(hostname_of(&flow), "10.0.0.1");
	CHECK_EQ_U64(
	    decode_text("{\"peer_ip_src\": \"10.0.0.2\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, "
			"\"bytes\": 1}",
			&flow),
	    FX_REC_FLOW);
	CHECK_STR(hostname_of(&flow), "10.0.0.2");
	CHECK_EQ_U64(decode_text("{\"label\": \"\", \"peer_ip_src\": \"\", \"as_src\": 1, \"as_dst\": 2, "
				 "\"packets\": 1, \"bytes\": 1}",
				 &flow),
		     FX_REC_FLOW);
	CHECK(flow.hostname == NULL && flow.hostname_len == 0);
	CHECK_EQ_U64(decode_text("{\"label\": \"r\\u00e9\\/x\\\"\\\\\\t\\ud83d\\ude00\", \"as_src\": 1, "
				 "\"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
				 &flow),
		     FX_REC_FLOW);
	CHECK_STR(hostname_of(&flow), "r\xc3\xa9/x\"\\\t\xf0\x9f\x98\x80");
	CHECK_EQ_U64(flow.hostname_len, 12);
	CHECK_EQ_U64(decode_text("{\"label\": \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\", \"as_src\": 1, "
				 "\"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
				 &flow),
		     FX_REC_FLOW);
	CHECK_STR(hostname_of(&flow), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

/* Unknown keys are ignored whatever their valid value, nested ones included (the jansson fallback). */
static void test_valid_unknown_keys(void)
{
	struct fx_flow flow;
	CHECK_EQ_U64(decode_text("{\"x\": null, \"y\": true, \"z\": false, \"w\": -0, \"v\": -1.5e-7, \"u\": "
				 "1e400, \"t\": 123456789012345678901234567890, \"s\": \"\\u0000\", "
				 "\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 9}",
				 &flow),
		     FX_REC_FLOW);
	CHECK_EQ_U64(flow.bytes, 9);
	CHECK_EQ_U64(
	    decode_text("{\"tags\": {\"a\": [1, 2, {\"b\": null}], \"c\": []}, \"big\": "
			"[-0, 1e999, 99999999999999999999, -99999999999999999999], \"label\": \"n\", "
			"\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 18446744073709551615}",
			&flow),
	    FX_REC_FLOW);
	CHECK_STR(hostname_of(&flow), "n");
	CHECK_EQ_U64(flow.bytes, UINT64_MAX);
	/* The same through jansson with the big values in our fields. */
	CHECK_EQ_U64(decode_text("{\"nested\": {}, \"as_src\": 4200000001, \"as_dst\": 2, \"iface_out\": 0, "
				 "\"packets\": 10000000000000000000, \"bytes\": 9223372036854775808}",
				 &flow),
		     FX_REC_FLOW);
	CHECK_EQ_U64(flow.as_src, 4200000001u);
	CHECK(!flow.has_iface_in && flow.has_iface_out);
	CHECK_EQ_U64(flow.packets, UINT64_C(10000000000000000000));
	CHECK_EQ_U64(flow.bytes, UINT64_C(9223372036854775808));

	/* A value that looks like the reference decoder's internal stand-in is an ordinary negative number.
	 */
	EXPECT("{\"x\": [], \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": -100000000000000001}",
	       FX_REC_INVALID_RANGE);
	EXPECT("{\"x\": [], \"y\": 10000000000000000000, \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, "
	       "\"bytes\": "
	       "-100000000000000007}",
	       FX_REC_INVALID_RANGE);

	/* More unknown keys than the fast scanner dedups go to jansson, still decoded. */
	char many[2048];
	size_t used = 0;
	used += (size_t)snprintf(many + used, sizeof(many) - used, "{");
	for (int i = 0; i < 40; i++)
		used += (size_t)snprintf(many + used, sizeof(many) - used, "\"k%d\": %d, ", i, i);
	snprintf(many + used, sizeof(many) - used,
		 "\"as_src\": 1, \"as_dst\": 2, \"packets\": 3, \"bytes\": 4}");
	CHECK_EQ_U64(decode_text(many, &flow), FX_REC_FLOW);
	CHECK_EQ_U64(flow.packets, 3);
	memcpy(strstr(many, "\"k39\""), "\"k38\"", 5); /* a duplicate among many */
	EXPECT(many, FX_REC_INVALID_JSON);
}

static void test_markers_and_events(void)
{
	EXPECT("{\"event_type\": \"purge_init\"}", FX_REC_MARKER);
	EXPECT("{\"event_type\": \"purge_close\", \"bytes\": -1, \"label\": 5}", FX_REC_MARKER);
	EXPECT("{\"event_type\": \"purge_\\u0069nit\"}", FX_REC_MARKER);
	EXPECT("{\"event_type\": \"trigger\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_OTHER_EVENT);
	EXPECT("{\"event_type\": \"\"}", FX_REC_OTHER_EVENT);
	EXPECT("{\"event_type\": \"PURGE\"}", FX_REC_OTHER_EVENT);
	EXPECT("{\"event_type\": \"purge \"}", FX_REC_OTHER_EVENT);
	EXPECT("{\"event_type\": \"purge\\u0000\"}", FX_REC_OTHER_EVENT);
	EXPECT("{\"event_type\": 1, \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_INVALID_TYPE);
	EXPECT("{\"event_type\": null}", FX_REC_INVALID_TYPE);
	EXPECT("{\"event_type\": [\"purge\"]}", FX_REC_INVALID_TYPE);
	/* A syntax error anywhere outranks the event type. */
	EXPECT("{\"event_type\": \"purge_init\",}", FX_REC_INVALID_JSON);
}

/* Each case of a list of records that are not exactly one JSON object. */
#define EXPECT_ALL_INVALID_JSON(cases)                                                                       \
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)                                        \
	EXPECT(cases[i], FX_REC_INVALID_JSON)

static void test_invalid_json_structure(void)
{
	static const char *const cases[] = {
	    "",
	    " ",
	    "\r\n",
	    "{",
	    "}",
	    "[]",
	    "[{}]",
	    "\"purge\"",
	    "5",
	    "null",
	    "true",
	    "{\"a\"}",
	    "{\"a\":}",
	    "{\"a\" 1}",
	    "{\"a\":1,}",
	    "{,\"a\":1}",
	    "{\"a\":1 \"b\":2}",
	    "{a:1}",
	    "{'a':1}",
	    "{\"a\":1}}",
	    "{\"a\":1} x",
	    "{\"a\":1}{}",
	    "{} {}",
	    "{\"a\":1} // c",
	    "/* c */ {}",
	    "{\"a\":\"b}",
	    "{\"a\":\"b\\\"}",
	    "{\"a\":[1,]}",
	    "{\"a\":[}",
	    "{\"a\":{\"b\":1,\"b\":2}}",
	};
	EXPECT_ALL_INVALID_JSON(cases);
}

static void test_invalid_json_numbers(void)
{
	static const char *const cases[] = {
	    "{\"a\":01}",
	    "{\"a\":-01}",
	    "{\"a\":00}",
	    "{\"a\":+1}",
	    "{\"a\":.5}",
	    "{\"a\":1.}",
	    "{\"a\":1.e5}",
	    "{\"a\":1e}",
	    "{\"a\":1e+}",
	    "{\"a\":1E-}",
	    "{\"a\":-}",
	    "{\"a\":--1}",
	    "{\"a\":-.5}",
	    "{\"a\":0x10}",
	    "{\"a\":1_000}",
	    "{\"a\":NaN}",
	    "{\"a\":Infinity}",
	    "{\"a\":-Infinity}",
	    "{\"a\":1.5.3}",
	    "{\"a\":1e5e5}",
	    "{\"a\":1-2}",
	    "{\"a\":1+2}",
	    "{\"a\":- 1}",
	    "{\"a\":1 2}",
	    "{\"a\":018446744073709551615}",
	    "{\"a\":-0018446744073709551615}",
	    "{\"a\":[01e999]}",
	    "{\"a\":true1e999}",
	    "{\"a\":[true1]}",
	    "{\"a\":1e999.5}",
	    "{\"a\":+1e999}",
	};
	EXPECT_ALL_INVALID_JSON(cases);
}

static void test_invalid_json_tokens(void)
{
	static const char *const cases[] = {
	    /* whitespace: only space, tab, CR, LF */
	    "{\"a\":\f1}",
	    "{\"a\":\v1}",
	    "{\"a\":\xc2\xa0\x31}",
	    "\xef\xbb\xbf{}",
	    /* literals */
	    "{\"a\":tru}",
	    "{\"a\":nul}",
	    "{\"a\":True}",
	    "{\"a\":nulll}",
	    "{\"a\":truefalse}",
	    /* strings */
	    "{\"a\":\"x\ty\"}",
	    "{\"a\":\"x\ny\"}",
	    "{\"a\":\"\x01\"}",
	    "{\"a\":\"\x1f\"}",
	    "{\"a\":\"\\x\"}",
	    "{\"a\":\"\\u12\"}",
	    "{\"a\":\"\\u12g4\"}",
	    "{\"a\":\"\\U0041\"}",
	    "{\"a\":\"\\ud800\"}",
	    "{\"a\":\"\\udc00\"}",
	    "{\"a\":\"\\ud800\\u0041\"}",
	    "{\"a\":\"\\ud800\\n\"}",
	    "{\"a\":\"\\udbff\\udbff\"}",
	    "{\"a\":\"\\ude00\\ud83d\"}",
	    "{\"a\":\"\\",
	    "{\"a\":\"\\u",
	    "{\"a\":\"\\ud83d\\ude0\"}",
	    "{\"a\":\"\\'\"}",
	};
	EXPECT_ALL_INVALID_JSON(cases);
}

static void test_invalid_json_keys(void)
{
	static const char *const cases[] = {
	    "{\"bytes\":1,\"bytes\":2}",
	    "{\"x\":1,\"x\":2}",
	    "{\"bytes\":1,\"by\\u0074es\":2}",
	    "{\"\":1,\"\":2}",
	    "{\"a\\u0000\":1}",
	    "{1:2}",
	    "{null:1}",
	};
	EXPECT_ALL_INVALID_JSON(cases);
}

/* The scanner guesses a record's keys from the record before it (flow_decode.c, take_guess): each case
 * follows a record that taught it the keys the case then breaks. */
static void test_key_guesses(void)
{
#define TEACH "{\"x\": 1, \"as_src\": 1, \"as_dst\": 2, \"packets\": 3, \"bytes\": 4}"
	static const struct {
		const char *record;
		enum fx_record_kind kind;
	} cases[] = {
	    {TEACH, FX_REC_FLOW}, /* every key guessed */
	    /* Duplicates of guessed keys: after the guesses, in the place of one, an unknown and a known one.
	     */
	    {"{\"x\": 1, \"as_src\": 1, \"as_dst\": 2, \"packets\": 3, \"bytes\": 4, \"x\": 5}",
	     FX_REC_INVALID_JSON},
	    {"{\"x\": 1, \"as_src\": 1, \"as_dst\": 2, \"packets\": 3, \"bytes\": 4, \"as_src\": 5}",
	     FX_REC_INVALID_JSON},
	    {"{\"x\": 1, \"as_src\": 1, \"x\": 2, \"packets\": 3, \"bytes\": 4}", FX_REC_INVALID_JSON},
	    {"{\"x\": 1, \"as_src\": 1, \"packets\": 3, \"as_src\": 2, \"bytes\": 4}", FX_REC_INVALID_JSON},
	    /* A guessed key spelled with an escape, longer, shorter, cut off. */
	    {"{\"x\": 1, \"as_src\": 1, \"as_d\\u0073t\": 2, \"packets\": 3, \"bytes\": 4}", FX_REC_FLOW},
	    {"{\"x\": 1, \"as_src\": 1, \"as_dstx\": 2, \"packets\": 3, \"bytes\": 4}",
	     FX_REC_INVALID_MISSING},
	    {"{\"x\": 1, \"as_src\": 1, \"as_ds\": 2, \"packets\": 3, \"bytes\": 4}", FX_REC_INVALID_MISSING},
	    {"{\"x\": 1, \"as_src", FX_REC_INVALID_JSON},
	    {"{\"x\": 1, \"as_src\"", FX_REC_INVALID_JSON},
	    /* Fewer keys than guessed, then other ones. */
	    {"{\"x\": 1, \"as_src\": 1, \"as_dst\": 2, \"packets\": 3}", FX_REC_INVALID_MISSING},
	    {"{\"y\": 1, \"as_src\": 1, \"as_dst\": 2, \"packets\": 3, \"bytes\": 4}", FX_REC_FLOW},
	    /* A key too long to guess, twice (the second record guesses nothing). */
	    {"{\"a_key_longer_than_a_guess_holds\": 1, \"as_src\": 1, \"as_dst\": 2, \"packets\": 3, "
	     "\"bytes\": 4}",
	     FX_REC_FLOW},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EXPECT(TEACH, FX_REC_FLOW);
		EXPECT(cases[i].record, cases[i].kind);
		EXPECT(cases[i].record, cases[i].kind); /* now taught by itself */
	}
	struct fx_flow flow;
	EXPECT(TEACH, FX_REC_FLOW);
	CHECK(decode_text("{\"x\": 1, \"as_src\": 1, \"as_d\\u0073t\": 2, \"packets\": 3, \"bytes\": 4}",
			  &flow) == FX_REC_FLOW);
	CHECK(flow.as_dst == 2 && flow.bytes == 4 && flow.packets == 3);
	CHECK(decode_text(TEACH, &flow) == FX_REC_FLOW && flow.as_src == 1 && flow.bytes == 4);
#undef TEACH
}

/* Raw NUL bytes, an error after a bad field, nesting past jansson's limit. */
static void test_invalid_json_nul_order_depth(void)
{
	expect_kind_len("{\"a\":1}\0", 8, FX_REC_INVALID_JSON, __LINE__);
	expect_kind_len("{\"a\":\"\0\"}", 9, FX_REC_INVALID_JSON, __LINE__);
	/* jansson 2.14 alone would skip a NUL right after a number or a literal. */
	static const char nul_after_number[] =
	    "{\"as_src\": 1\0, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}";
	static const char nul_after_literal[] =
	    "{\"a\":[true\0], \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, "
	    "\"bytes\": 1}";
	expect_kind_len(nul_after_number, sizeof(nul_after_number) - 1, FX_REC_INVALID_JSON, __LINE__);
	expect_kind_len(nul_after_literal, sizeof(nul_after_literal) - 1, FX_REC_INVALID_JSON, __LINE__);

	/* A duplicate or a syntax error after a bad field still makes the record invalid JSON. */
	EXPECT("{\"bytes\": -1, \"as_src\": 1, \"as_src\": 2}", FX_REC_INVALID_JSON);
	EXPECT("{\"label\": 5, \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1,}",
	       FX_REC_INVALID_JSON);
	EXPECT("{\"label\": \"\\u0000\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1",
	       FX_REC_INVALID_JSON);

	/* Deep nesting: jansson's limit of 2048 levels holds for both decoders. */
	char deep[5000];
	size_t used = 0;
	used += (size_t)snprintf(deep, sizeof(deep), "{\"a\":");
	for (int i = 0; i < 2100; i++)
		deep[used++] = '[';
	for (int i = 0; i < 2100; i++)
		deep[used++] = ']';
	deep[used++] = '}';
	expect_kind_len(deep, used, FX_REC_INVALID_JSON, __LINE__);
}

static void test_invalid_utf8(void)
{
	static const char *const cases[] = {
	    "{\"label\": \"\xff\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	    "{\"label\": \"\xc0\xaf\"}",	 /* overlong '/' */
	    "{\"label\": \"\xc1\xbf\"}",	 /* overlong */
	    "{\"label\": \"\xe0\x80\xaf\"}",	 /* overlong, 3 bytes */
	    "{\"label\": \"\xf0\x80\x80\xaf\"}", /* overlong, 4 bytes */
	    "{\"label\": \"\xed\xa0\x80\"}",	 /* U+D800 encoded */
	    "{\"label\": \"\xed\xbf\xbf\"}",	 /* U+DFFF encoded */
	    "{\"label\": \"\xf4\x90\x80\x80\"}", /* U+110000 */
	    "{\"label\": \"\xf5\x80\x80\x80\"}", /* F5 lead */
	    "{\"label\": \"\xe2\x82\"}",	 /* truncated */
	    "{\"label\": \"\x80\"}",		 /* lone continuation */
	    "{\"label\": \"\xc3\"}",		 /* truncated at the quote */
	    "{\"x\": 1} \xc3",			 /* truncated at the end, after the object */
	    "{\"x\": \xff}",			 /* outside a string, where it would be a JSON error */
	    "{\"x\": 1,} \xff",			 /* a JSON error first, bad UTF-8 later: UTF-8 wins */
	    "\xff",
	    "{\"\xfe\": 1}",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		EXPECT(cases[i], FX_REC_INVALID_UTF8);

	/* U+0000 in label or peer_ip_src after unescaping; anywhere else in a value it is fine. */
	EXPECT("{\"label\": \"a\\u0000b\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_INVALID_UTF8);
	EXPECT(
	    "{\"label\": \"ok\", \"peer_ip_src\": \"\\u0000\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, "
	    "\"bytes\": 1}",
	    FX_REC_INVALID_UTF8);
	EXPECT("{\"writer_id\": \"\\u0000\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_FLOW);
	/* In order: label's U+0000 comes before a bad as_src... */
	EXPECT("{\"as_src\": -1, \"label\": \"\\u0000\"}", FX_REC_INVALID_UTF8);
	/* ...but after event_type, and after a wrongly typed label. */
	EXPECT("{\"event_type\": \"purge_init\", \"label\": \"\\u0000\"}", FX_REC_MARKER);
	EXPECT("{\"label\": 1, \"peer_ip_src\": \"\\u0000\"}", FX_REC_INVALID_TYPE);
	/* Valid edge code points. */
	EXPECT("{\"label\": \"\xf4\x8f\xbf\xbf\xef\xbf\xbf\xed\x9f\xbf\xee\x80\x80\xc2\x80\x7f\", "
	       "\"as_src\": 1, "
	       "\"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_FLOW);
}

static void test_types_missing_ranges(void)
{
	/* wrong types: strings where numbers belong and the reverse; null is a wrong type */
	EXPECT("{\"label\": 5, \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_INVALID_TYPE);
	EXPECT("{\"label\": null, \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_INVALID_TYPE);
	EXPECT("{\"peer_ip_src\": true, \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_INVALID_TYPE);
	EXPECT("{\"peer_ip_src\": {}, \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_INVALID_TYPE);
	EXPECT("{\"as_src\": \"1\", \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}", FX_REC_INVALID_TYPE);
	EXPECT("{\"as_src\": 1, \"as_dst\": null, \"packets\": 1, \"bytes\": 1}", FX_REC_INVALID_TYPE);
	EXPECT("{\"as_src\": 1, \"as_dst\": 2, \"iface_in\": \"3\", \"packets\": 1, \"bytes\": 1}",
	       FX_REC_INVALID_TYPE);
	EXPECT("{\"as_src\": 1, \"as_dst\": 2, \"iface_out\": false, \"packets\": 1, \"bytes\": 1}",
	       FX_REC_INVALID_TYPE);
	EXPECT("{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": null}", FX_REC_INVALID_TYPE);
	EXPECT("{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": [1]}", FX_REC_INVALID_TYPE);
	EXPECT("{\"as_src\": 1, \"as_dst\": 2, \"packets\": {\"n\": 1}, \"bytes\": 1}", FX_REC_INVALID_TYPE);
	EXPECT("{\"as_src\": 1, \"as_dst\": 2, \"packets\": \"1\", \"bytes\": 1}", FX_REC_INVALID_TYPE);

	/* missing required fields; iface_* are optional */
	EXPECT("{}", FX_REC_INVALID_MISSING);
	EXPECT("{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1}", FX_REC_INVALID_MISSING);
	EXPECT("{\"as_src\": 1, \"as_dst\": 2, \"bytes\": 1}", FX_REC_INVALID_MISSING);
	EXPECT("{\"as_dst\": 2, \"packets\": 1, \"bytes\": 1}", FX_REC_INVALID_MISSING);
	EXPECT("{\"as_src\": 1, \"packets\": 1, \"bytes\": 1}", FX_REC_INVALID_MISSING);
	EXPECT("{\"event_type\": \"purge\", \"label\": \"r\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 1, "
	       "\"bytes\": 1}",
	       FX_REC_FLOW);
	EXPECT("{\"Bytes\": 1, \"as_src\": 1, \"as_dst\": 2, \"packets\": 1}", FX_REC_INVALID_MISSING);

	/* ranges */
	static const char *const bad_counters[] = {
	    "-1",
	    "-0",
	    "-0.0",
	    "0.0",
	    "1.0",
	    "0.5",
	    "1e3",
	    "1E3",
	    "1e+0",
	    "1e-0",
	    "-1e400",
	    "1e400",
	    "18446744073709551616",
	    "18446744073709551617",
	    "99999999999999999999",
	    "100000000000000000000",
	    "340282366920938463463374607431768211456",
	    "-9223372036854775808",
	    "-9223372036854775809",
	    "-18446744073709551615",
	    "-100000000000000000",
	    "-199999999999999999",
	    "-100000000000000042",
	};
	char record[256];
	for (size_t i = 0; i < sizeof(bad_counters) / sizeof(bad_counters[0]); i++) {
		snprintf(record, sizeof(record),
			 "{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": %s}", bad_counters[i]);
		EXPECT(record, FX_REC_INVALID_RANGE);
		snprintf(record, sizeof(record),
			 "{\"n\": [], \"as_src\": 1, \"as_dst\": 2, \"packets\": %s, "
			 "\"bytes\": 1}",
			 bad_counters[i]);
		EXPECT(record, FX_REC_INVALID_RANGE);
	}
	static const char *const bad_32[] = {
	    "4294967296", "4294967297", "10000000000", "18446744073709551615", "-1", "-0",
	    "1.5",	  "4e9",	"1e400"};
	static const char *const fields_32[] = {"as_src", "as_dst", "iface_in", "iface_out"};
	for (size_t f = 0; f < 4; f++) {
		for (size_t i = 0; i < sizeof(bad_32) / sizeof(bad_32[0]); i++) {
			/* as_src/as_dst given once: the field under test, else a valid value. */
			snprintf(record, sizeof(record),
				 "{\"as_src\": %s, \"as_dst\": %s, \"%s\": %s, \"packets\": 1, "
				 "\"bytes\": 1}",
				 f == 0 ? bad_32[i] : "1", f == 1 ? bad_32[i] : "2",
				 f < 2 ? "iface_in" : fields_32[f], f < 2 ? "0" : bad_32[i]);
			EXPECT(record, FX_REC_INVALID_RANGE);
		}
	}
	struct fx_flow flow;
	CHECK_EQ_U64(
	    decode_text("{\"as_src\": 4200000001, \"as_dst\": 0, \"packets\": 0, \"bytes\": 0}", &flow),
	    FX_REC_FLOW);
	CHECK_EQ_U64(flow.as_src, 4200000001u);

	/* Field order decides between several faults. */
	EXPECT("{\"event_type\": 5, \"label\": 5}", FX_REC_INVALID_TYPE);
	EXPECT("{\"bytes\": -1, \"packets\": \"x\", \"as_src\": 1, \"as_dst\": 2}", FX_REC_INVALID_RANGE);
	EXPECT("{\"packets\": -1, \"bytes\": \"x\", \"as_src\": 1, \"as_dst\": 2}", FX_REC_INVALID_TYPE);
	EXPECT("{\"as_dst\": 1e3, \"bytes\": null}", FX_REC_INVALID_MISSING); /* as_src first */
	EXPECT("{\"as_src\": 1, \"as_dst\": 1e3}", FX_REC_INVALID_RANGE);
	EXPECT("{\"label\": 7, \"as_src\": -1}", FX_REC_INVALID_TYPE);
	EXPECT("{\"peer_ip_src\": 7, \"label\": \"\\u0000\"}", FX_REC_INVALID_UTF8);
	EXPECT("{\"iface_in\": -1, \"as_src\": 1, \"as_dst\": 2}", FX_REC_INVALID_RANGE);
	EXPECT("{\"iface_out\": \"x\", \"as_src\": 1, \"as_dst\": 2, \"packets\": -1}", FX_REC_INVALID_TYPE);
}

static void test_too_large(void)
{
	struct fx_decoder *small = fx_decoder_create(64);
	CHECK(small != NULL);
	char record[128];
	memset(record, ' ', sizeof(record));
	const char *body = "{\"as_src\": 1, \"as_dst\": 2, \"packets\": 1, \"bytes\": 1}";
	memcpy(record, body, strlen(body));
	struct fx_flow flow;
	CHECK_EQ_U64(fx_decode_record(small, record, 64, &flow), FX_REC_FLOW);
	CHECK_EQ_U64(fx_decode_record_jansson(small, record, 64, &flow), FX_REC_FLOW);
	CHECK_EQ_U64(fx_decode_record(small, record, 65, &flow), FX_REC_INVALID_TOO_LARGE);
	CHECK_EQ_U64(fx_decode_record_jansson(small, record, 65, &flow), FX_REC_INVALID_TOO_LARGE);
	record[70] = '\xff'; /* too large outranks bad UTF-8 */
	CHECK_EQ_U64(fx_decode_record(small, record, 128, &flow), FX_REC_INVALID_TOO_LARGE);
	CHECK_EQ_U64(fx_decode_record_jansson(small, record, 128, &flow), FX_REC_INVALID_TOO_LARGE);

	/* In a message, the bound applies to each line, not to the message. */
	char message[200];
	size_t len = 0;
	for (int i = 0; i < 3; i++) {
		memcpy(message + len, body, strlen(body));
		len += strlen(body);
		message[len++] = '\n';
	}
	struct collected collected = {0};
	CHECK_EQ_U64(fx_decode_message(small, message, len, collect, &collected), 3);
	CHECK(collected.kinds[0] == FX_REC_FLOW && collected.kinds[2] == FX_REC_FLOW);
	fx_decoder_destroy(small);

	struct fx_decoder *zero = fx_decoder_create(0);
	CHECK(zero != NULL);
	CHECK_EQ_U64(fx_decode_record(zero, "{}", 2, &flow), FX_REC_INVALID_TOO_LARGE);
	CHECK_EQ_U64(fx_decode_record(zero, "", 0, &flow), FX_REC_INVALID_JSON);
	fx_decoder_destroy(zero);
	fx_decoder_destroy(NULL);
}

/* pmacct's sampling_rate (optional, 0 to 2^32 - 1) and peer_ip_src, which the counting step needs beside
 * the hostname: the rates file names an exporter by either. */
static void test_sampling_rate_and_peer(void)
{
	struct fx_flow flow;
#define BASE                                                                                                 \
	"{\"label\": \"r1\", \"peer_ip_src\": \"192.0.2.1\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 3, " \
	"\"bytes\": 4%s}"
	char record[512];
	snprintf(record, sizeof(record), BASE, ", \"sampling_rate\": 100");
	CHECK_EQ_U64(decode_text(record, &flow), FX_REC_FLOW);
	CHECK_EQ_U64(flow.sampling_rate, 100);
	CHECK_STR(hostname_of(&flow), "r1");
	CHECK(flow.peer_ip_src && flow.peer_ip_src_len == 9 && !memcmp(flow.peer_ip_src, "192.0.2.1", 9));
	snprintf(record, sizeof(record), BASE, "");
	CHECK_EQ_U64(decode_text(record, &flow), FX_REC_FLOW);
	CHECK_EQ_U64(flow.sampling_rate, 0);
	snprintf(record, sizeof(record), BASE, ", \"sampling_rate\": 4294967295");
	CHECK_EQ_U64(decode_text(record, &flow), FX_REC_FLOW);
	CHECK_EQ_U64(flow.sampling_rate, 4294967295u);
	snprintf(record, sizeof(record), BASE, ", \"sampling_rate\": 4294967296");
	EXPECT(record, FX_REC_INVALID_RANGE);
	snprintf(record, sizeof(record), BASE, ", \"sampling_rate\": -1");
	EXPECT(record, FX_REC_INVALID_RANGE);
	snprintf(record, sizeof(record), BASE, ", \"sampling_rate\": 1.5");
	EXPECT(record, FX_REC_INVALID_RANGE);
	snprintf(record, sizeof(record), BASE, ", \"sampling_rate\": \"100\"");
	EXPECT(record, FX_REC_INVALID_TYPE);
	snprintf(record, sizeof(record), BASE, ", \"sampling_rate\": 1, \"sampling_rate\": 1");
	EXPECT(record, FX_REC_INVALID_JSON);
	/* Nested (the jansson path) and escaped: both decoders give the same peer. */
	snprintf(record, sizeof(record), BASE, ", \"sampling_rate\": 7, \"x\": [1]");
	CHECK_EQ_U64(decode_text(record, &flow), FX_REC_FLOW);
	CHECK_EQ_U64(flow.sampling_rate, 7);
	CHECK_EQ_U64(
	    decode_text("{\"label\": \"\", \"peer_ip_src\": \"10.0.0.\\u0031\", \"as_src\": 1, \"as_dst\": "
			"2, \"packets\": 3, \"bytes\": 4}",
			&flow),
	    FX_REC_FLOW);
	CHECK(flow.peer_ip_src == flow.hostname && flow.peer_ip_src_len == 8);
	CHECK_EQ_U64(
	    decode_text(
		"{\"label\": \"r\\u0031\", \"as_src\": 1, \"as_dst\": 2, \"packets\": 3, \"bytes\": 4}",
		&flow),
	    FX_REC_FLOW);
	CHECK(flow.peer_ip_src == NULL && flow.peer_ip_src_len == 0);
#undef BASE
}

static void test_kind_names(void)
{
	static const char *const names[] = {"flow",	 "marker",	     "other_event", "json",
					    "type",	 "missing",	     "range",	    "utf8",
					    "too_large", "sampling_overflow"};
	CHECK_EQ_U64(sizeof(names) / sizeof(names[0]), FX_REC_KIND_COUNT);
	for (int kind = 0; kind < FX_REC_KIND_COUNT; kind++)
		CHECK_STR(fx_record_kind_name((enum fx_record_kind)kind), names[kind]);
	CHECK(fx_record_kind_name(FX_REC_KIND_COUNT) != NULL);
}

/* ---------------------------------------------------------------------------------------------------
 * Differential test: both decoders on random mutations of realistic records
 * ------------------------------------------------------------------------------------------------ */

static uint64_t rng_state = UINT64_C(0x9E3779B97F4A7C15); /* fixed seed: failures reproduce */

static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static size_t rng_below(size_t n)
{
	return n ? (size_t)(rng_next() % n) : 0;
}

/* Bytes and snippets that reach the interesting branches of both decoders. */
static const char *const snippets[] = {
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "-",
    "0",
    "9",
    ".",
    "e",
    "E",
    "+",
    " ",
    "\t",
    "\r",
    "\n",
    "\x00",
    "\x1f",
    "\x7f",
    "\x80",
    "\xc3",
    "\xc3\xa9",
    "\xe2\x82\xac",
    "\xf0\x9f\x98\x80",
    "\xed\xa0\x80",
    "\xff",
    "u",
    "\\u",
    "\\u0000",
    "\\u0041",
    "\\ud83d\\ude00",
    "\\ud800",
    "\\udc00",
    "\\\"",
    "\\n",
    "null",
    "true",
    "false",
    "-0",
    "1e400",
    "1.5",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "4294967295",
    "4294967296",
    "100000000000000000",
    "-100000000000000000",
    "-100000000000000042",
    "\"bytes\":",
    "\"label\":",
    "\"as_src\":",
    "\"event_type\":",
    "\"purge_init\"",
    "[]",
    "{}",
    "[1,{\"a\":2}]",
    "\"x\":1,",
};

static size_t mutate(char *record, size_t len, size_t capacity)
{
	int rounds = 1 + (int)rng_below(4);
	for (int round = 0; round < rounds; round++) {
		size_t at = rng_below(len + 1);
		switch (rng_below(7)) {
		case 0: /* replace one byte with any byte */
			if (len)
				record[rng_below(len)] = (char)rng_next();
			break;
		case 1: /* delete a short range */ {
			size_t n = 1 + rng_below(4);
			if (at + n <= len) {
				memmove(record + at, record + at + n, len - at - n);
				len -= n;
			}
			break;
		}
		case 2: /* truncate */
			len = at;
			break;
		case 3: /* duplicate a short range (makes duplicate keys and nested garbage) */ {
			size_t from = rng_below(len + 1), n = rng_below(24);
			if (from + n <= len && len + n <= capacity) {
				memmove(record + at + n, record + at, len - at);
				memmove(record + at, record + (from >= at ? from + n : from), n);
				len += n;
			}
			break;
		}
		default: /* insert or overwrite with a snippet */ {
			const char *snippet = snippets[rng_below(sizeof(snippets) / sizeof(snippets[0]))];
			size_t n = snippet[0] ? strlen(snippet) : 1; /* "\x00" is one NUL byte */
			if (len + n > capacity)
				break;
			if (rng_below(2)) {
				memmove(record + at + n, record + at, len - at);
				len += n;
			} else if (at + n > len) {
				break;
			}
			memcpy(record + at, snippet, n);
			break;
		}
		}
	}
	return len;
}

static void test_differential(void)
{
	static const char *const seeds[] = {
	    FLOW_BASE,
	    "{\"event_type\": \"purge\", \"label\": \"router2.example.net\", \"as_src\": 64496, \"as_dst\": "
	    "64501, "
	    "\"peer_ip_src\": \"127.0.0.2\", \"iface_in\": 21, \"iface_out\": 11, \"stamp_inserted\": "
	    "\"2026-11-26 14:23:00\", \"stamp_updated\": \"2026-11-26 14:23:26\", \"packets\": 120, "
	    "\"bytes\": "
	    "5000000000, \"writer_id\": \"flows/1184\"}",
	    "{\"event_type\": \"purge\", \"label\": \"\", \"as_src\": 4200000001, \"as_dst\": 64502, "
	    "\"peer_ip_src\": \"127.0.0.3\", \"packets\": 18446744073709551615, \"bytes\": "
	    "9223372036854775808}",
	    "{\"label\": \"r\\u00e9\\ud83d\\ude00\", \"by\\u0074es\": 1, \"as_src\": 0, \"as_dst\": 0, "
	    "\"packets\": "
	    "1, \"x\": [1, -0, 1e400, {\"y\": null}]}",
	    "{\"event_type\": \"purge_close\", \"writer_id\": \"multi/555\", \"purged_entries\": 0}",
	    "{\"as_src\": -0, \"as_dst\": 1.5e3, \"packets\": 99999999999999999999, \"bytes\": "
	    "-100000000000000042}",
	};
	char record[1024];
	size_t before = disagreements;
	int mutations = 0;
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		for (int i = 0; i < 5000; i++) {
			size_t len = strlen(seeds[s]);
			memcpy(record, seeds[s], len);
			len = mutate(record, len, sizeof(record));
			struct fx_flow flow;
			decode_both(record, len, &flow);
			mutations++;
		}
	}
	fprintf(stderr, "differential: %d mutated records, %zu disagreements\n", mutations,
		disagreements - before);
}

/* ---------------------------------------------------------------------------------------------------
 * Timing (printed, never asserted)
 * ------------------------------------------------------------------------------------------------ */

static double now_seconds(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void print_timing(void)
{
	size_t len;
	char *text = read_fixture("pmacct-kafka-json.jsonl", &len);
	if (!text)
		return;
	const char *lines[64];
	size_t lens[64], count = 0;
	for (char *line = text; line < text + len && count < 64;) {
		char *newline = memchr(line, '\n', (size_t)(text + len - line));
		lines[count] = line;
		lens[count++] = (size_t)((newline ? newline : text + len) - line);
		line = newline ? newline + 1 : text + len;
	}
	enum fx_record_kind (*const decoders[2])(struct fx_decoder *, const char *, size_t,
						 struct fx_flow *) = {fx_decode_record,
								      fx_decode_record_jansson};
	const char *names[2] = {"fast scanner", "jansson"};
	for (int d = 0; d < 2; d++) {
		/* The best of five runs: a shared machine only ever makes a run slower. */
		int rounds = d == 0 ? 4000 : 400;
		double best = 0;
		uint64_t bytes = 0;
		for (int run = 0; run < 5; run++) {
			double start = now_seconds();
			for (int r = 0; r < rounds; r++) {
				for (size_t i = 0; i < count; i++) {
					struct fx_flow flow;
					if (decoders[d](fast_decoder, lines[i], lens[i], &flow) ==
					    FX_REC_FLOW)
						bytes += flow.bytes;
				}
			}
			double elapsed = now_seconds() - start;
			if (run == 0 || elapsed < best)
				best = elapsed;
		}
		fprintf(
		    stderr,
		    "timing: %s %.3f us/record (best of 5 runs of %zu fixture records x %d; checksum %" PRIu64
		    ")\n",
		    names[d], best * 1e6 / ((double)rounds * (double)count), count, rounds, bytes);
	}
	free(text);
}

int main(void)
{
	fast_decoder = fx_decoder_create(MAX_RECORD);
	reference_decoder = fx_decoder_create(MAX_RECORD);
	CHECK(fast_decoder != NULL && reference_decoder != NULL);
	if (!fast_decoder || !reference_decoder)
		return check_exit();

	test_fixtures();
	test_multi_values_fixture();
	test_message_with_bad_lines();
	test_valid_base_and_whitespace();
	test_valid_number_limits();
	test_valid_escapes_and_hostnames();
	test_valid_unknown_keys();
	test_markers_and_events();
	test_invalid_json_structure();
	test_invalid_json_numbers();
	test_invalid_json_tokens();
	test_invalid_json_keys();
	test_key_guesses();
	test_invalid_json_nul_order_depth();
	test_invalid_utf8();
	test_types_missing_ranges();
	test_too_large();
	test_kind_names();
	test_sampling_rate_and_peer();
	test_differential();
	if (!getenv("FX_NO_TIMING"))
		print_timing();

	fx_decoder_destroy(fast_decoder);
	fx_decoder_destroy(reference_decoder);
	return check_exit();
}
