/* The command line: the Go program's forms, defaults, lists, and bad values refused with exit code 2 and a
 * message naming the flag. */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "fx/config.h"
#include "fx/series.h"

static int parse(struct fx_config *config, char *err_text, size_t err_size, int argc, char **argv)
{
	FILE *err = fmemopen(err_text, err_size, "w");
	int rc = fx_config_parse(config, argc, argv, err);
	fclose(err);
	return rc;
}

#define ARGS(...) (char *[]){"flow-exporter", __VA_ARGS__}
#define NARGS(...) (int)(sizeof((char *[]){"flow-exporter", __VA_ARGS__}) / sizeof(char *))

static void expect_error(const char *needle, int argc, char **argv)
{
	struct fx_config config;
	char err[512] = {0};
	CHECK(parse(&config, err, sizeof(err), argc, argv) == 2);
	if (!strstr(err, needle)) {
		fprintf(stderr, "expected \"%s\" in: %s\n", needle, err);
		CHECK(0);
	}
	fx_config_free(&config);
}

#define EXPECT_ERROR(needle, ...) expect_error(needle, NARGS(__VA_ARGS__), ARGS(__VA_ARGS__))

int main(void)
{
	struct fx_config config;
	char err[512] = {0};

	/* Defaults. */
	CHECK(parse(&config, err, sizeof(err), 1, ARGS(NULL)) == 0);
	CHECK_STR(config.brokers, "");
	CHECK_STR(config.addr, ":9590");
	CHECK_STR(config.group, "flow-exporter");
	CHECK_STR(config.topics[0], "pmacct.acct");
	CHECK(!config.partitions_mode);
	CHECK(config.label_mask == FX_LABEL_ALL);
	CHECK(config.local.n == 1 && config.local.asn[0] == 0 && !config.asn_given);
	CHECK_STR(config.asn_names, FX_DEFAULT_ASN_NAMES_URL);
	CHECK(config.push_interval_ms == 15000);
	CHECK(config.workers >= 1);
	fx_config_free(&config);

	/* The Go program's exact command line, and its single-dash form. */
	CHECK(parse(&config, err, sizeof(err), 4,
		    ARGS("--brokers=kafka:9092", "--topic=pmacct.acct", "--asn=15169")) == 0);
	CHECK_STR(config.brokers, "kafka:9092");
	CHECK(config.local.n == 1 && config.local.asn[0] == 15169 && config.asn_given);
	fx_config_free(&config);
	CHECK(parse(&config, err, sizeof(err), 6,
		    ARGS("-brokers=kafka:9092", "-topic", "pmacct.acct", "-asn", "15169")) == 0);
	CHECK_STR(config.brokers, "kafka:9092");
	CHECK(config.local.asn[0] == 15169);
	fx_config_free(&config);

	/* Lists: ASNs sorted and unique; partitions; repeatable flags; booleans. */
	CHECK(parse(&config, err, sizeof(err), 8,
		    ARGS("--asn=4200000001,15169, 15169", "--partitions=0,2", "--kafka-opt", "fetch.max.bytes=1000",
			 "--kafka-opt=security.protocol=ssl", "--labels=hostname,source_as",
			 "--push-insecure-skip-verify")) == 0);
	CHECK(config.local.n == 2 && config.local.asn[0] == 15169 && config.local.asn[1] == 4200000001u);
	CHECK(config.partitions_mode && !config.all_partitions && config.n_partitions == 2 &&
	      config.partitions[1] == 2);
	CHECK(config.n_kafka_opts == 2);
	CHECK_STR(config.kafka_opts[1], "security.protocol=ssl");
	CHECK(config.label_mask == (FX_LABEL_HOSTNAME | FX_LABEL_SOURCE_AS));
	CHECK(config.push_insecure_skip_verify);
	fx_config_free(&config);
	CHECK(parse(&config, err, sizeof(err), 3, ARGS("--partitions=all", "--push-interval=1m30s")) == 0);
	CHECK(config.partitions_mode && config.all_partitions);
	CHECK(config.push_interval_ms == 90000);
	fx_config_free(&config);

	/* Bad flags and values: exit code 2 and the flag's name in the message. */
	EXPECT_ERROR("unknown flag --nope", "--nope=1");
	EXPECT_ERROR("--asn", "--asn=4294967296");
	EXPECT_ERROR("--asn", "--asn=AS15169");
	EXPECT_ERROR("--asn", "--asn=");
	EXPECT_ERROR("--partitions", "--partitions=1,x");
	EXPECT_ERROR("--addr", "--addr=localhost:9590");
	EXPECT_ERROR("--addr", "--addr=:99999");
	EXPECT_ERROR("--max-series", "--max-series=0");
	EXPECT_ERROR("--max-series", "--max-series=-5");
	EXPECT_ERROR("--push-interval", "--push-interval=15");
	EXPECT_ERROR("--labels", "--labels=hostname,vlan");
	EXPECT_ERROR("source_as_name needs source_as", "--labels=source_as_name");
	EXPECT_ERROR("--kafka-opt", "--kafka-opt=novalue");
	EXPECT_ERROR("needs a value", "--brokers");
	EXPECT_ERROR("unexpected argument", "kafka:9092");
	EXPECT_ERROR("clashes with the flow label", "--external-label=hostname=x");
	EXPECT_ERROR("not a valid label name", "--external-label=1job=x");
	EXPECT_ERROR("cannot be overridden", "--push-header=Content-Encoding: gzip");
	EXPECT_ERROR("cannot be overridden", "--push-header=user-agent: me");
	EXPECT_ERROR("--remote-write-url", "--remote-write-url=ftp://x");
	EXPECT_ERROR("--log-level", "--log-level=loud");
	EXPECT_ERROR("--push-insecure-skip-verify", "--push-insecure-skip-verify=maybe");

	/* The environment sets a flag; the command line wins over it. */
	setenv("FLOW_EXPORTER_ASN_NAMES", "/tmp/names.txt", 1);
	setenv("FLOW_EXPORTER_MAX_SERIES", "1234", 1);
	CHECK(parse(&config, err, sizeof(err), 2, ARGS("--max-series=99")) == 0);
	CHECK_STR(config.asn_names, "/tmp/names.txt");
	CHECK(config.max_series == 99);
	fx_config_free(&config);
	setenv("FLOW_EXPORTER_MAX_SERIES", "zero", 1);
	EXPECT_ERROR("FLOW_EXPORTER_MAX_SERIES", "--asn=1");
	unsetenv("FLOW_EXPORTER_MAX_SERIES");
	unsetenv("FLOW_EXPORTER_ASN_NAMES");

	/* Durations. */
	int64_t ms;
	CHECK(fx_duration_parse("250ms", &ms) == 0 && ms == 250);
	CHECK(fx_duration_parse("24h", &ms) == 0 && ms == 86400000);
	CHECK(fx_duration_parse("1h30m", &ms) == 0 && ms == 5400000);
	CHECK(fx_duration_parse("0", &ms) == 0 && ms == 0);
	CHECK(fx_duration_parse("10", &ms) == -1);
	CHECK(fx_duration_parse("s", &ms) == -1);
	CHECK(fx_duration_parse("5x", &ms) == -1);

	/* --help lists every flag with its default. */
	char usage[16384] = {0};
	FILE *out = fmemopen(usage, sizeof(usage), "w");
	fx_config_usage(out);
	fclose(out);
	const char *flags[] = {"--brokers", "--topic", "--asn", "--addr", "--partitions", "--group", "--kafka-opt",
			       "--labels", "--max-series", "--asn-names", "--remote-write-url", "--pushgateway-url"};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		CHECK(strstr(usage, flags[i]) != NULL);
	CHECK(strstr(usage, "(default \":9590\")") != NULL);
	return check_exit();
}
