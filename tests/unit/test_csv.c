/* The map files' CSV reader (RFC 4180) and the --sampling-rates format: quoting, line ends, and every
 * malformed line refused with its line number. */
#include <stdlib.h>

#include "check.h"
#include "fx/csv.h"
#include "fx/sampling.h"

/* Reads every record of text; returns how many, or -1 with *error set. fields[r][f] copies them. */
static int read_all(const char *text, char fields[8][8][32], size_t n_fields[8], struct fx_parse_error *error)
{
	size_t len = strlen(text);
	char *copy = malloc(len + 1);
	memcpy(copy, text, len + 1);
	struct fx_csv csv;
	struct fx_csv_record record;
	fx_csv_init(&csv, copy, len);
	int n = 0, rc;
	while ((rc = fx_csv_next(&csv, &record, error)) == 1 && n < 8) {
		n_fields[n] = record.n_fields;
		for (size_t f = 0; f < record.n_fields && f < 8; f++) {
			CHECK_EQ_U64(strlen(record.fields[f]), record.lens[f]);
			snprintf(fields[n][f], 32, "%s", record.fields[f]);
		}
		n++;
	}
	free(copy);
	return rc < 0 ? -1 : n;
}

static void test_csv_valid(void)
{
	char fields[8][8][32];
	size_t n[8];
	struct fx_parse_error error;
	CHECK_EQ_U64(read_all("a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n\n\"two\nlines\",\n", fields, n, &error),
		     3);
	CHECK_STR(fields[0][1], "b");
	CHECK_STR(fields[1][0], "x,1");
	CHECK_STR(fields[1][1], "say \"hi\"");
	CHECK_STR(fields[2][0], "two\nlines");
	CHECK_EQ_U64(n[2], 2);
	CHECK_STR(fields[2][1], "");
	/* No line end at the end of the file, a trailing comma, CR alone at the end. */
	CHECK_EQ_U64(read_all("a,b", fields, n, &error), 1);
	CHECK_STR(fields[0][1], "b");
	CHECK_EQ_U64(read_all("a,", fields, n, &error), 1);
	CHECK_EQ_U64(n[0], 2);
	CHECK_EQ_U64(read_all("a,b\r", fields, n, &error), 1);
	CHECK_STR(fields[0][1], "b");
	CHECK_EQ_U64(read_all("\"\"", fields, n, &error), 1);
	CHECK_STR(fields[0][0], "");
	CHECK_EQ_U64(read_all("caf\xc3\xa9,\xe2\x82\xac", fields, n, &error), 1);
	CHECK_EQ_U64(read_all("", fields, n, &error), 0);
}

#define EXPECT_CSV_ERROR(text, want_line)                                                                    \
	do {                                                                                                 \
		struct fx_parse_error error_ = {0};                                                          \
		CHECK(read_all(text, fields, n, &error_) == -1);                                             \
		CHECK_EQ_U64(error_.line, want_line);                                                        \
		CHECK(error_.message[0] != '\0');                                                            \
	} while (0)

static void test_csv_invalid(void)
{
	char fields[8][8][32];
	size_t n[8];
	EXPECT_CSV_ERROR("a,b\nc,\"open\n\nstill open", 2); /* never closed */
	EXPECT_CSV_ERROR("a,b\n\"x\"y,z\n", 2);		    /* text after the closing quote */
	EXPECT_CSV_ERROR("a,b\n\nx,y\"z\n", 3);		    /* a quote in an unquoted field */
	EXPECT_CSV_ERROR("a\n\"two\nlines\",\"x\"y\n", 3);  /* the line after a multi-line field */
	EXPECT_CSV_ERROR("a\nb\nc,\xff\n", 3);		    /* not UTF-8 */
	EXPECT_CSV_ERROR("a\nb\xc0\xaf\n", 2);		    /* overlong */
	EXPECT_CSV_ERROR("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n", 1);
}

#define EXPECT_RATES_ERROR(text, want_line)                                                                  \
	do {                                                                                                 \
		struct fx_parse_error error_ = {0};                                                          \
		struct fx_rate_map *map_ = NULL;                                                             \
		CHECK(fx_rate_map_parse(text, strlen(text), &map_, &error_) == -1);                          \
		CHECK(map_ == NULL);                                                                         \
		CHECK_EQ_U64(error_.line, want_line);                                                        \
		if (error_.line != want_line)                                                                \
			fprintf(stderr, "  (%s)\n", error_.message);                                         \
	} while (0)

static void test_rates(void)
{
	struct fx_parse_error error = {0};
	struct fx_rate_map *map = NULL;
	const char *text = "exporter,rate\nrouter1.example.net,1000\n192.0.2.1,1\n\"a,b\",4294967295\n";
	CHECK(fx_rate_map_parse(text, strlen(text), &map, &error) == 0);
	CHECK_EQ_U64(fx_rate_map_count(map), 3);
	CHECK_EQ_U64(fx_rate_map_lookup(map, "router1.example.net", 19), 1000);
	CHECK_EQ_U64(fx_rate_map_lookup(map, "192.0.2.1", 9), 1);
	CHECK_EQ_U64(fx_rate_map_lookup(map, "a,b", 3), 4294967295u);
	CHECK_EQ_U64(fx_rate_map_lookup(map, "192.0.2.", 8), 0);
	CHECK_EQ_U64(fx_rate_map_lookup(NULL, "x", 1), 0);
	fx_rate_map_unref(map);
	/* A header alone is an empty, valid map. */
	CHECK(fx_rate_map_parse("exporter,rate\n", 14, &map, &error) == 0);
	CHECK_EQ_U64(fx_rate_map_count(map), 0);
	fx_rate_map_unref(map);

	EXPECT_RATES_ERROR("", 1);
	EXPECT_RATES_ERROR("exporter,sampling\nr1,5\n", 1);
	EXPECT_RATES_ERROR("r1,5\n", 1);
	EXPECT_RATES_ERROR("exporter,rate\nr1,5\nr2\n", 3);
	EXPECT_RATES_ERROR("exporter,rate\nr1,5,6\n", 2);
	EXPECT_RATES_ERROR("exporter,rate\nr1,0\n", 2);
	EXPECT_RATES_ERROR("exporter,rate\nr1,-5\n", 2);
	EXPECT_RATES_ERROR("exporter,rate\nr1,4294967296\n", 2);
	EXPECT_RATES_ERROR("exporter,rate\nr1, 5\n", 2);
	EXPECT_RATES_ERROR("exporter,rate\nr1,\n", 2);
	EXPECT_RATES_ERROR("exporter,rate\n,5\n", 2);
	EXPECT_RATES_ERROR("exporter,rate\nr1,5\n\nr1,6\n", 4);
	EXPECT_RATES_ERROR("exporter,rate\r\nr1,5\r\n\"r2,7\r\n", 3);
}

int main(void)
{
	test_csv_valid();
	test_csv_invalid();
	test_rates();
	return check_exit();
}
