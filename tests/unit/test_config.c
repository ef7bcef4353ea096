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

#define ARGS(...)                                                                                            \
	(char *[])                                                                                           \
	{                                                                                                    \
		"flow-exporter", __VA_ARGS__                                                                 \
	}
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

static void test_defaults(void)
{
	struct fx_config config;
	char err[512] = {0};
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
	/* The flag table is the one source of defaults: these are what the modules get. */
	CHECK(config.push_timeout_ms == 30000);
	CHECK(config.push_backlog_ms == 15 * 60000);
	CHECK(config.asn_names_timeout_ms == 60000);
	CHECK(config.asn_names_refresh_ms == 24 * 3600000);
	CHECK(config.flush_ms == 100);
	CHECK(config.series_ttl_ms == 0);
	CHECK(config.shutdown_timeout_ms == 5000);
	CHECK(config.remote_write_max_series == 2000);
	CHECK(config.n_external_labels == 0);
	fx_config_free(&config);
}

static void test_go_forms_and_lists(void)
{
	struct fx_config config;
	char err[512] = {0};
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
		    ARGS("--asn=4200000001,15169, 15169", "--partitions=0,2", "--kafka-opt",
			 "fetch.max.bytes=1000", "--kafka-opt=security.protocol=ssl",
			 "--labels=hostname,source_as", "--push-insecure-skip-verify")) == 0);
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
}

/* The interface names are kept by --labels like the AS names, never a dimension of the key. */
static void test_iface_name_labels(void)
{
	struct fx_config config;
	char err[512] = {0};
	int rc = parse(&config, err, sizeof(err), 2,
		       ARGS("--labels=hostname,iface_in,iface_out,iface_in_name,iface_out_name,"
			    "iface_in_description,iface_out_description"));
	CHECK(rc == 0);
	CHECK_EQ_U64(config.label_mask,
		     FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN | FX_LABEL_IFACE_OUT | FX_LABEL_IFACE_NAMES);
	CHECK_EQ_U64(config.layout.mask, config.label_mask);
	CHECK_EQ_U64(fx_key_layout_dims(&config.layout),
		     FX_LABEL_HOSTNAME | FX_LABEL_IFACE_IN | FX_LABEL_IFACE_OUT);
	fx_config_free(&config);
}

static void test_bad_values(void)
{
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
	EXPECT_ERROR("for --labels: iface_in_name needs iface_in", "--labels=hostname,iface_in_name");
	EXPECT_ERROR("iface_out_description needs iface_out",
		     "--labels=hostname,iface_in,iface_out_description");
	EXPECT_ERROR("iface_out_name needs hostname", "--labels=iface_out,iface_out_name");
	EXPECT_ERROR("--top-n-group: \"iface_in_name\" is not a label", "--top-n=5",
		     "--labels=hostname,iface_in,iface_in_name",
		     "--top-n-group=hostname,iface_in,iface_in_name");
	EXPECT_ERROR("--kafka-opt", "--kafka-opt=novalue");
	EXPECT_ERROR("needs a value", "--brokers");
	EXPECT_ERROR("unexpected argument", "kafka:9092");
	EXPECT_ERROR("cannot be overridden", "--push-header=Content-Encoding: gzip");
	EXPECT_ERROR("cannot be overridden", "--push-header=user-agent: me");
	EXPECT_ERROR("--remote-write-url", "--remote-write-url=ftp://x");
	EXPECT_ERROR("--log-level", "--log-level=loud");
	EXPECT_ERROR("--asn-names: expected a file path or an http(s) URL", "--asn-names=");
	EXPECT_ERROR("--push-insecure-skip-verify", "--push-insecure-skip-verify=maybe");
	EXPECT_ERROR("--push-key-file needs --push-cert-file", "--push-key-file=/k");
	EXPECT_ERROR("--push-password-file needs --push-username", "--push-password-file=/p");
	EXPECT_ERROR("exclude each other", "--push-username=u", "--push-password-file=/p",
		     "--push-bearer-token-file=/t");
}

/* The durations the modules take as given: a bound of 0 is refused, a 0 that means never is kept. */
static void test_duration_bounds(void)
{
	EXPECT_ERROR("--push-interval: at least 1s", "--push-interval=999ms");
	EXPECT_ERROR("--flush-interval: from 1ms to 60s", "--flush-interval=0");
	EXPECT_ERROR("--flush-interval: from 1ms to 60s", "--flush-interval=61s");
	EXPECT_ERROR("--push-timeout: must be more than 0", "--push-timeout=0");
	EXPECT_ERROR("--push-backlog: must be more than 0", "--push-backlog=0");
	EXPECT_ERROR("--asn-names-timeout: must be more than 0", "--asn-names-timeout=0");
	EXPECT_ERROR("--series-ttl", "--series-ttl=5");

	struct fx_config config;
	char err[512] = {0};
	CHECK(parse(&config, err, sizeof(err), 6,
		    ARGS("--series-ttl=0", "--asn-names-refresh=0", "--shutdown-timeout=0",
			 "--push-interval=1s", "--flush-interval=60s")) == 0);
	CHECK(config.series_ttl_ms == 0 && config.asn_names_refresh_ms == 0 &&
	      config.shutdown_timeout_ms == 0);
	CHECK(config.push_interval_ms == 1000 && config.flush_ms == 60000);
	fx_config_free(&config);
}

/* --external-label is checked here only: the remote-write encoder and the Pushgateway take it as given. */
static void test_external_labels(void)
{
	EXPECT_ERROR("clashes with the flow label", "--external-label=hostname=x");
	EXPECT_ERROR("not a valid label name", "--external-label=1job=x");
	EXPECT_ERROR("\"hostname\" clashes with the flow label", "--external-label=job=x",
		     "--external-label=hostname=h");
	EXPECT_ERROR("clashes with the flow label", "--external-label=iface_in=7");
	EXPECT_ERROR("\"iface_out_description\" clashes with the flow label",
		     "--external-label=iface_out_description=x");
	EXPECT_ERROR("label \"job\" given twice", "--external-label=job=x", "--external-label=job=y");
	EXPECT_ERROR("\"1job\" is not a valid label name", "--external-label=1job=x");
	EXPECT_ERROR("\"a-b\" is not a valid label name", "--external-label=a-b=x");
	EXPECT_ERROR("--external-label", "--external-label==x");
	EXPECT_ERROR("label \"__name__\": names starting with __ are reserved",
		     "--external-label=__name__=x");
	EXPECT_ERROR("label \"__x\": names starting with __ are reserved", "--external-label=__x=1");
	EXPECT_ERROR("label \"job\" has an empty value", "--external-label=job=");
	EXPECT_ERROR("--external-label", "--external-label=job");
	/* Each message names the flag. */
	EXPECT_ERROR("for --external-label:", "--external-label=job=");

	struct fx_config config;
	char err[512] = {0};
	CHECK(parse(&config, err, sizeof(err), 1, ARGS(NULL)) == 0); /* none at all */
	CHECK(config.n_external_labels == 0);
	fx_config_free(&config);
	CHECK(parse(&config, err, sizeof(err), 4,
		    ARGS("--external-label=job=flow-exporter", "--external-label=instance=host:9590",
			 "--external-label=_Zone9=eu=west")) == 0);
	CHECK(config.n_external_labels == 3);
	CHECK_STR(config.external_labels[1], "instance=host:9590");
	CHECK_STR(config.external_labels[2], "_Zone9=eu=west");
	fx_config_free(&config);
}

static void test_environment(void)
{
	struct fx_config config;
	char err[512] = {0};
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
}

/* Every value is a copy the config owns, however many there are. */
static void test_many_values(void)
{
	enum { N = 600 };
	static char *argv[N + 1];
	static char text[N][32];
	argv[0] = "flow-exporter";
	for (int i = 0; i < N; i++) {
		snprintf(text[i], sizeof(text[i]), "--group=group-%d", i);
		argv[i + 1] = text[i];
	}
	struct fx_config config;
	char err[512] = {0};
	CHECK(parse(&config, err, sizeof(err), N + 1, argv) == 0);
	CHECK_STR(config.group, "group-599");
	for (int i = 0; i < N; i++)
		text[i][0] = '\0'; /* the config kept copies, not argv */
	CHECK_STR(config.group, "group-599");
	fx_config_free(&config);
}

static void test_durations_and_usage(void)
{
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
	const char *flags[] = {"--brokers",
			       "--topic",
			       "--asn",
			       "--addr",
			       "--partitions",
			       "--group",
			       "--kafka-opt",
			       "--labels",
			       "--max-series",
			       "--asn-names",
			       "--remote-write-url",
			       "--pushgateway-url"};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		CHECK(strstr(usage, flags[i]) != NULL);
	CHECK(strstr(usage, "(default \":9590\")") != NULL);
}

/* --push-queue-dir: inside --state-dir by default, none without one, "" turns it off; the size's units. */
static void test_push_queue(void)
{
	struct fx_config config;
	char err[512] = {0};
	CHECK(parse(&config, err, sizeof(err), 1, ARGS(NULL)) == 0);
	CHECK_STR(config.push_queue_dir, "");
	CHECK(config.push_queue_max_bytes == 1ull << 30);
	fx_config_free(&config);
	CHECK(parse(&config, err, sizeof(err), NARGS("--state-dir=/s"), ARGS("--state-dir=/s")) == 0);
	CHECK_STR(config.push_queue_dir, "/s/push-queue");
	fx_config_free(&config);
	CHECK(parse(&config, err, sizeof(err), NARGS("--state-dir=/s", "--push-queue-dir="),
		    ARGS("--state-dir=/s", "--push-queue-dir=")) == 0);
	CHECK_STR(config.push_queue_dir, "");
	fx_config_free(&config);
	CHECK(parse(&config, err, sizeof(err), NARGS("--push-queue-dir=/q", "--push-queue-max-bytes=500MB"),
		    ARGS("--push-queue-dir=/q", "--push-queue-max-bytes=500MB")) == 0);
	CHECK_STR(config.push_queue_dir, "/q");
	CHECK(config.push_queue_max_bytes == 500000000);
	fx_config_free(&config);
	CHECK(parse(&config, err, sizeof(err), NARGS("--push-queue-max-bytes=2KiB"),
		    ARGS("--push-queue-max-bytes=2KiB")) == 0);
	CHECK(config.push_queue_max_bytes == 2048);
	fx_config_free(&config);
	EXPECT_ERROR("--push-queue-max-bytes", "--push-queue-max-bytes=100");
	EXPECT_ERROR("--push-queue-max-bytes", "--push-queue-max-bytes=1GB2");
	EXPECT_ERROR("--push-queue-max-bytes", "--push-queue-max-bytes=-1");
	EXPECT_ERROR("--push-queue-max-bytes", "--push-queue-max-bytes=99999999999999999999");
	EXPECT_ERROR("--push-queue-max-bytes", "--push-queue-max-bytes=2PiB");
}

int main(void)
{
	test_push_queue();
	test_defaults();
	test_go_forms_and_lists();
	test_bad_values();
	test_iface_name_labels();
	test_duration_bounds();
	test_external_labels();
	test_environment();
	test_many_values();
	test_durations_and_usage();
	return check_exit();
}
