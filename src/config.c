/* The command line. One table, `flags`, lists every flag with its default, its help and the function that
 * parses its value into struct fx_config; parsing, defaults and --help all read that table, and the README's
 * flag list is `flow-exporter --help`.
 *
 * Thread: main only, before any other thread starts. Every bad value is reported with the flag's name and
 * makes fx_config_parse return 2 (the exit code). */
#include "fx/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fx/http_server.h"
#include "fx/log.h"
#include "fx/series.h"
#include "fx/snmp_client.h"
#include "fx/strlist.h"

#define ERR_SIZE 256

typedef int (*parse_fn)(struct fx_config *config, const char *value, char *why);

struct flag {
	const char *name;
	const char *default_value; /* parsed at start like a given value; NULL: none */
	const char *help;
	parse_fn parse;
	bool is_bool;
	bool repeatable;
};

/* ---- value parsers: each returns 0, or -1 with a reason in why (ERR_SIZE bytes) ---- */

static int fail(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char *why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, ERR_SIZE, fmt, ap);
	va_end(ap);
	return -1;
}

/* A copy of one string value; the copies form a list headed by config->strings. A list, not an array: the
 * number of values is bounded only by argv and the environment, and a copy fails only when memory does. */
struct fx_config_strings {
	struct fx_config_strings *next;
	char text[];
};

static char *keep(struct fx_config *config, const char *value)
{
	size_t size = strlen(value) + 1;
	struct fx_config_strings *copy = malloc(sizeof(*copy) + size);
	if (!copy)
		return NULL;
	memcpy(copy->text, value, size);
	copy->next = config->strings;
	config->strings = copy;
	return copy->text;
}

static int set_string(struct fx_config *config, char **field, const char *value, char *why)
{
	*field = keep(config, value);
	return *field ? 0 : fail(why, "out of memory");
}

static int parse_u64(const char *text, uint64_t max, uint64_t *out)
{
	if (!isdigit((unsigned char)text[0]))
		return -1;
	errno = 0;
	char *end;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno || *end || value > max)
		return -1;
	*out = value;
	return 0;
}

int fx_duration_parse(const char *text, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	if (strcmp(text, "0") == 0) {
		*ms = 0;
		return 0;
	}
	int64_t total = 0;
	const char *p = text;
	if (!*p)
		return -1;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return -1;
		char *end;
		errno = 0;
		long long number = strtoll(p, &end, 10);
		if (errno || number > INT64_MAX / 86400000)
			return -1;
		size_t best = 0, best_len = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t len = strlen(units[i].unit);
			if (strncmp(end, units[i].unit, len) == 0 && len > best_len) {
				best = i;
				best_len = len;
			}
		}
		if (!best_len)
			return -1;
		total += number * units[best].ms;
		if (total < 0)
			return -1;
		p = end + best_len;
	}
	*ms = total;
	return 0;
}

/* A duration from min_ms to max_ms; `range` says so in words for the message. */
static int set_duration(int64_t *field, const char *value, int64_t min_ms, int64_t max_ms, const char *range,
			char *why)
{
	int64_t ms;
	if (fx_duration_parse(value, &ms))
		return fail(why, "not a duration (examples: 500ms, 15s, 5m, 24h, 1h30m)");
	if (ms < min_ms || ms > max_ms)
		return fail(why, "%s", range);
	*field = ms;
	return 0;
}

static int set_bool(bool *field, const char *value, char *why)
{
	if (!strcmp(value, "true") || !strcmp(value, "1"))
		*field = true;
	else if (!strcmp(value, "false") || !strcmp(value, "0"))
		*field = false;
	else
		return fail(why, "not a boolean (true or false)");
	return 0;
}

static int add_repeat(struct fx_config *config, const char **list, size_t *n, size_t max, const char *value,
		      char *why)
{
	if (*n == max)
		return fail(why, "given more than %zu times", max);
	list[*n] = keep(config, value);
	if (!list[*n])
		return fail(why, "out of memory");
	(*n)++;
	return 0;
}

/* Splits a comma-separated list, calling item() on each non-empty element (spaces around it trimmed). */
static int for_each_item(const char *value, int (*item)(void *ctx, const char *text, char *why), void *ctx,
			 char *why)
{
	char text[256];
	const char *cursor = *value ? value : NULL, *p;
	size_t len;
	while (fx_strlist_next(&cursor, &p, &len)) {
		if (len >= sizeof(text))
			return fail(why, "element \"%.20s...\" is too long", p);
		memcpy(text, p, len);
		text[len] = '\0';
		if (len && item(ctx, text, why))
			return -1;
	}
	return 0;
}

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static int asn_item(void *ctx, const char *text, char *why)
{
	struct fx_local_asns *local = ctx;
	uint64_t asn;
	if (parse_u64(text, UINT32_MAX, &asn))
		return fail(why, "\"%s\" is not an AS number (0 to 4294967295)", text);
	if (local->n == FX_MAX_LOCAL_ASNS)
		return fail(why, "more than %d ASNs", FX_MAX_LOCAL_ASNS);
	local->asn[local->n++] = (uint32_t)asn;
	return 0;
}

static int parse_asn(struct fx_config *config, const char *value, char *why)
{
	config->local.n = 0;
	if (for_each_item(value, asn_item, &config->local, why))
		return -1;
	if (config->local.n == 0)
		return fail(why, "no AS number given");
	qsort(config->local.asn, config->local.n, sizeof(uint32_t), compare_u32);
	size_t unique = 1;
	for (size_t i = 1; i < config->local.n; i++)
		if (config->local.asn[i] != config->local.asn[unique - 1])
			config->local.asn[unique++] = config->local.asn[i];
	config->local.n = unique;
	config->asn_given = true;
	return 0;
}

static int topic_item(void *ctx, const char *text, char *why)
{
	struct fx_config *config = ctx;
	return add_repeat(config, config->topics, &config->n_topics, FX_MAX_TOPICS, text, why);
}

static int parse_topic(struct fx_config *config, const char *value, char *why)
{
	config->n_topics = 0;
	if (for_each_item(value, topic_item, config, why))
		return -1;
	return config->n_topics ? 0 : fail(why, "no topic given");
}

static int partition_item(void *ctx, const char *text, char *why)
{
	struct fx_config *config = ctx;
	uint64_t partition;
	if (parse_u64(text, INT32_MAX, &partition))
		return fail(why, "\"%s\" is not a partition number", text);
	if (config->n_partitions == FX_MAX_PARTITIONS)
		return fail(why, "more than %d partitions", FX_MAX_PARTITIONS);
	config->partitions[config->n_partitions++] = (int32_t)partition;
	return 0;
}

static int parse_partitions(struct fx_config *config, const char *value, char *why)
{
	config->n_partitions = 0;
	config->all_partitions = false;
	config->partitions_mode = false;
	if (!*value)
		return 0; /* the default: a consumer group */
	config->partitions_mode = true;
	if (!strcmp(value, "all")) {
		config->all_partitions = true;
		return 0;
	}
	if (for_each_item(value, partition_item, config, why))
		return -1;
	return config->n_partitions ? 0 : fail(why, "expected \"all\" or comma-separated partition numbers");
}

/* --labels: names of the catalog (series.c); the layout itself is made once every flag is read
 * (finish_layout), with the --label-from rows. */
static int parse_labels(struct fx_config *config, const char *value, char *why)
{
	struct fx_key_layout layout;
	if (fx_key_layout_parse(&layout, value, NULL, 0, NULL, why, ERR_SIZE))
		return -1;
	config->label_mask = layout.mask & (FX_LABEL_ALL | FX_LABEL_IFACE_NAMES);
	config->labels = keep(config, value);
	return config->labels ? 0 : fail(why, "out of memory");
}

static int parse_label_from(struct fx_config *config, const char *value, char *why)
{
	struct fx_key_layout layout;
	if (!*value)
		return 0; /* the default: none */
	if (fx_key_layout_parse(&layout, "none", &value, 1, NULL, why, ERR_SIZE))
		return -1;
	return add_repeat(config, config->label_from, &config->n_label_from, FX_MAX_REPEAT, value, why);
}

static int parse_top_n_group(struct fx_config *config, const char *value, char *why)
{
	struct fx_key_layout layout;
	if (fx_key_layout_parse(&layout, value, NULL, 0, NULL, why, ERR_SIZE))
		return -1;
	config->top_n_group = keep(config, value);
	return config->top_n_group ? 0 : fail(why, "out of memory");
}

static int group_item(void *ctx, const char *text, char *why)
{
	struct fx_config *config = ctx;
	const struct fx_key_layout *layout = &config->layout;
	for (size_t i = 0; i < 7; i++)
		if (!strcmp(text, fx_label_names[i]) && (layout->mask & (1u << i)) &&
		    (1u << i) != FX_LABEL_SOURCE_AS_NAME && (1u << i) != FX_LABEL_DESTINATION_AS_NAME) {
			config->top_n_group_mask |= 1u << i;
			return 0;
		}
	for (size_t i = 0; i < layout->n_extra; i++)
		if (!strcmp(text, layout->extra[i].label)) {
			config->top_n_group_mask |= FX_LABEL_EXTRA(i);
			return 0;
		}
	return fail(why, "\"%s\" is not a label of --labels / --label-from (nor an AS or interface name)",
		    text);
}

/* The layout of --labels and --label-from, and the top-N group in it. Returns 0 or 2 (message in err). */
static int finish_layout(struct fx_config *config, FILE *err)
{
	char why[ERR_SIZE];
	if (fx_key_layout_parse(&config->layout, config->labels, config->label_from, config->n_label_from,
				NULL, why, ERR_SIZE)) {
		fprintf(err, "flow-exporter: invalid --labels / --label-from: %s\n", why);
		return 2;
	}
	config->top_n_group_mask = 0;
	if (config->top_n && strcmp(config->top_n_group, "none") &&
	    for_each_item(config->top_n_group, group_item, config, why)) {
		fprintf(err, "flow-exporter: invalid value for --top-n-group: %s\n", why);
		return 2;
	}
	for (size_t e = 0; e < config->n_external_labels; e++) {
		const char *eq = strchr(config->external_labels[e], '=');
		size_t len = (size_t)(eq - config->external_labels[e]);
		for (size_t i = 0; i < config->layout.n_extra; i++)
			if (strlen(config->layout.extra[i].label) == len &&
			    !strncmp(config->layout.extra[i].label, config->external_labels[e], len)) {
				fprintf(err,
					"flow-exporter: invalid value for --external-label: \"%.*s\" clashes "
					"with the flow label of the same name\n",
					(int)len, config->external_labels[e]);
				return 2;
			}
	}
	if (config->top_n_window_ms < 1000) {
		fprintf(err, "flow-exporter: invalid value for --top-n-window: at least 1s\n");
		return 2;
	}
	return 0;
}

/* ---- secrets off the command line (issue 14) ---- */

/* librdkafka properties whose value is a secret: given with --kafka-opt they are visible to every local
 * user (ps, /proc/<pid>/cmdline); they belong in --kafka-config-file. */
static bool is_secret_kafka_key(const char *key)
{
	static const char *const secrets[] = {"sasl.password",	       "ssl.key.password",
					      "ssl.keystore.password", "sasl.oauthbearer.client.secret",
					      "ssl.key.pem",	       "sasl.oauthbearer.config",
					      "ssl_key_password" /* alias */};
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (!strcmp(key, secrets[i]))
			return true;
	return false;
}

static int parse_kafka_opt(struct fx_config *config, const char *value, char *why);

/* A value as messages show it: "key=<not shown>" for --kafka-opt, whose value may be a secret. */
static const char *shown_value(const struct flag *f, const char *value, char *buf, size_t size)
{
	if (f->parse != parse_kafka_opt)
		return value;
	const char *eq = strchr(value, '=');
	snprintf(buf, size, "%.*s%s", eq ? (int)(eq - value) : (int)strlen(value), value,
		 eq ? "=<not shown>" : "");
	return buf;
}

/* Checks key=value with librdkafka; a secret's value never appears in why. */
static int check_kafka_setting(const char *key, const char *value, char *why)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char librdkafka_why[200];
	rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, key, value, librdkafka_why, sizeof(librdkafka_why));
	rd_kafka_conf_destroy(conf);
	if (res == RD_KAFKA_CONF_OK)
		return 0;
	if (is_secret_kafka_key(key))
		return fail(why, "invalid value for %s (not shown: it is a secret)", key);
	return fail(why, "%s", librdkafka_why);
}

/* One line of a properties file into "key=value", spaces around both trimmed. Returns 0 (out empty for
 * a blank or comment line) or -1 with why. */
static int properties_line(char *line, char *out, size_t size, char *why)
{
	line[strcspn(line, "\r\n")] = '\0';
	char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	out[0] = '\0';
	if (!*p || *p == '#')
		return 0;
	char *eq = strchr(p, '=');
	if (!eq || eq == p)
		return fail(why, "expected key=value");
	char *key_end = eq;
	while (key_end > p && (key_end[-1] == ' ' || key_end[-1] == '\t'))
		key_end--;
	char *value = eq + 1;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t value_len = strlen(value);
	while (value_len && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
		value_len--;
	value[value_len] = '\0';
	*key_end = '\0';
	if ((size_t)snprintf(out, size, "%s=%s", p, value) >= size)
		return fail(why, "line too long");
	return check_kafka_setting(p, value, why);
}

/* --kafka-config-file: librdkafka properties (key=value lines, # comments, as kcat -F reads them). They
 * go before every --kafka-opt, wherever the flags stand, so that the command line wins. */
static int parse_kafka_config_file(struct fx_config *config, const char *value, char *why)
{
	if (!*value)
		return set_string(config, &config->kafka_config_file, value, why);
	FILE *file = fopen(value, "re");
	if (!file)
		return fail(why, "cannot open: %s", strerror(errno));
	const char *settings[FX_MAX_KAFKA_OPTS];
	size_t n = 0, line_no = 0;
	char line[4096], setting[4096], line_why[ERR_SIZE];
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), file)) {
		line_no++;
		if (properties_line(line, setting, sizeof(setting), line_why))
			rc = fail(why, "line %zu: %s", line_no, line_why);
		else if (setting[0] && n + config->n_kafka_opts >= FX_MAX_KAFKA_OPTS)
			rc = fail(why, "line %zu: more than %d librdkafka settings in all", line_no,
				  FX_MAX_KAFKA_OPTS);
		else if (setting[0] && !(settings[n++] = keep(config, setting)))
			rc = fail(why, "out of memory");
	}
	if (rc == 0 && ferror(file))
		rc = fail(why, "cannot read: %s", strerror(errno));
	fclose(file);
	explicit_bzero(line, sizeof(line));
	explicit_bzero(setting, sizeof(setting));
	if (rc)
		return rc;
	memmove(config->kafka_opts + n, config->kafka_opts,
		config->n_kafka_opts * sizeof(config->kafka_opts[0]));
	memcpy(config->kafka_opts, settings, n * sizeof(settings[0]));
	config->n_kafka_opts += n;
	return set_string(config, &config->kafka_config_file, value, why);
}

static int parse_kafka_opt(struct fx_config *config, const char *value, char *why)
{
	const char *eq = strchr(value, '=');
	if (!eq || eq == value)
		return fail(why, "expected key=value, e.g. security.protocol=ssl");
	/* Ask librdkafka now, so that a bad setting stops startup before anything starts. */
	char key[256];
	size_t len = (size_t)(eq - value);
	if (len >= sizeof(key))
		return fail(why, "key too long");
	memcpy(key, value, len);
	key[len] = '\0';
	if (check_kafka_setting(key, eq + 1, why))
		return -1;
	if (is_secret_kafka_key(key))
		fx_warn("--kafka-opt %s: a secret on the command line is visible to every local user (ps, "
			"/proc/<pid>/cmdline); put it in --kafka-config-file instead",
			key);
	return add_repeat(config, config->kafka_opts, &config->n_kafka_opts, FX_MAX_KAFKA_OPTS, value, why);
}

/* [a-zA-Z_][a-zA-Z0-9_]*, the Prometheus label name rule, in ASCII whatever the locale. */
static bool is_label_name(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!letter && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return len > 0;
}

/* The one check of the external labels: the remote-write encoder and the Pushgateway path take them as
 * given. A pushed series carries them beside its flow labels, so a name must be valid, not reserved, not
 * a flow label's and given once; and a value must not be empty, which remote write would read as the
 * label being absent. */
static int parse_external_label(struct fx_config *config, const char *value, char *why)
{
	const char *eq = strchr(value, '=');
	if (!eq)
		return fail(why, "expected name=value, e.g. instance=pop1");
	int len = (int)(eq - value);
	if (!is_label_name(value, (size_t)len))
		return fail(why, "\"%.*s\" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)", len, value);
	if (len >= 2 && value[0] == '_' && value[1] == '_')
		return fail(why, "label \"%.*s\": names starting with __ are reserved", len, value);
	if (!eq[1])
		return fail(why, "label \"%.*s\" has an empty value", len, value);
	for (size_t i = 0; i < sizeof(fx_label_names) / sizeof(fx_label_names[0]); i++)
		if (strlen(fx_label_names[i]) == (size_t)len &&
		    !strncmp(value, fx_label_names[i], (size_t)len))
			return fail(why, "\"%s\" clashes with the flow label of the same name",
				    fx_label_names[i]);
	for (size_t i = 0; i < sizeof(fx_iface_label_names) / sizeof(fx_iface_label_names[0]); i++)
		if (strlen(fx_iface_label_names[i]) == (size_t)len &&
		    !strncmp(value, fx_iface_label_names[i], (size_t)len))
			return fail(why, "\"%s\" clashes with the flow label of the same name",
				    fx_iface_label_names[i]);
	for (size_t i = 0; i < config->n_external_labels; i++)
		if (!strncmp(config->external_labels[i], value, (size_t)len + 1))
			return fail(why, "label \"%.*s\" given twice", len, value);
	return add_repeat(config, config->external_labels, &config->n_external_labels, FX_MAX_REPEAT, value,
			  why);
}

static int parse_push_header(struct fx_config *config, const char *value, char *why)
{
	static const char *const reserved[] = {
	    "content-encoding", "content-type", "content-length", "x-prometheus-remote-write-version",
	    "user-agent",	"host",		"authorization"};
	const char *colon = strchr(value, ':');
	if (!colon)
		colon = strchr(value, '=');
	if (!colon || colon == value)
		return fail(why, "expected \"Name: value\"");
	size_t len = (size_t)(colon - value);
	for (size_t i = 0; i < len; i++)
		if (!(isalnum((unsigned char)value[i]) || value[i] == '-' || value[i] == '_'))
			return fail(why, "\"%.*s\" is not a valid header name", (int)len, value);
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == len && !strncasecmp(value, reserved[i], len))
			return fail(why, "header %.*s is set by flow-exporter and cannot be overridden",
				    (int)len, value);
	char header[1024];
	const char *v = colon + 1;
	while (*v == ' ')
		v++;
	if ((size_t)snprintf(header, sizeof(header), "%.*s: %s", (int)len, value, v) >= sizeof(header))
		return fail(why, "too long");
	return add_repeat(config, config->push_headers, &config->n_push_headers, FX_MAX_REPEAT, header, why);
}

static int parse_url(const char *value, char *why)
{
	if (strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
		return fail(why, "not an http:// or https:// URL");
	return 0;
}

static int parse_remote_write_url(struct fx_config *config, const char *value, char *why)
{
	if (parse_url(value, why))
		return -1;
	return add_repeat(config, config->remote_write_urls, &config->n_remote_write_urls, FX_MAX_REPEAT,
			  value, why);
}

/* Repeatable with a default: the default (parsed first) is replaced by the first value given. */
static int parse_remote_write_protocol(struct fx_config *config, const char *value, char *why)
{
	if (strcmp(value, "1.0") && strcmp(value, "2.0") && strcmp(value, "auto"))
		return fail(why, "not 1.0, 2.0 or auto");
	bool first = config->n_remote_write_protocols == 0;
	if (config->remote_write_protocol_defaulted) {
		config->n_remote_write_protocols = 0;
		config->remote_write_protocol_defaulted = false;
	}
	int rc = add_repeat(config, config->remote_write_protocols, &config->n_remote_write_protocols,
			    FX_MAX_REPEAT, value, why);
	if (first)
		config->remote_write_protocol_defaulted = true;
	return rc;
}

static int parse_addr(struct fx_config *config, const char *value, char *why)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (fx_http_addr_parse(value, &ss, &len))
		return fail(why, "expected [host]:port with a numeric host, e.g. :9590 or 127.0.0.1:9590");
	return set_string(config, &config->addr, value, why);
}

static int parse_log_level(struct fx_config *config, const char *value, char *why)
{
	enum fx_log_level level;
	if (fx_log_level_parse(value, &level))
		return fail(why, "expected error, warn, info or debug");
	return set_string(config, &config->log_level, value, why);
}

static int parse_positive(uint64_t *field, const char *value, uint64_t max, char *why)
{
	if (parse_u64(value, max, field) || *field == 0)
		return fail(why, "expected a whole number from 1 to %" PRIu64, max);
	return 0;
}

static int parse_workers(struct fx_config *config, const char *value, char *why)
{
	if (!strcmp(value, "auto")) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		config->workers = cores > 0 ? (uint64_t)cores : 1;
		if (config->workers > 64)
			config->workers = 64;
		return 0;
	}
	return parse_positive(&config->workers, value, 64, why);
}

#define STRING_FIELD(fn, field)                                                                              \
	static int fn(struct fx_config *config, const char *value, char *why)                                \
	{                                                                                                    \
		return set_string(config, &config->field, value, why);                                       \
	}
#define DURATION_FIELD(fn, field, min_ms, max_ms, range)                                                     \
	static int fn(struct fx_config *config, const char *value, char *why)                                \
	{                                                                                                    \
		return set_duration(&config->field, value, min_ms, max_ms, range, why);                      \
	}
#define BOOL_FIELD(fn, field)                                                                                \
	static int fn(struct fx_config *config, const char *value, char *why)                                \
	{                                                                                                    \
		return set_bool(&config->field, value, why);                                                 \
	}
#define COUNT_FIELD(fn, field, max)                                                                          \
	static int fn(struct fx_config *config, const char *value, char *why)                                \
	{                                                                                                    \
		return parse_positive(&config->field, value, max, why);                                      \
	}

STRING_FIELD(parse_brokers, brokers)
STRING_FIELD(parse_group, group)
STRING_FIELD(parse_asn_names_cache, asn_names_cache)
STRING_FIELD(parse_push_username, push_username)
STRING_FIELD(parse_push_password_file, push_password_file)
STRING_FIELD(parse_push_bearer_token_file, push_bearer_token_file)
STRING_FIELD(parse_push_ca_file, push_ca_file)
STRING_FIELD(parse_push_cert_file, push_cert_file)
STRING_FIELD(parse_push_key_file, push_key_file)
STRING_FIELD(parse_web_config_file, web_config_file)
COUNT_FIELD(parse_web_max_connections, web_max_connections, 1000000)
COUNT_FIELD(parse_web_max_connections_per_ip, web_max_connections_per_ip, 1000000)
COUNT_FIELD(parse_web_max_header_bytes, web_max_header_bytes, 1u << 20)
/* The modules take these as given: a bound or an interval of 0 would be no bound or a busy loop, so only
 * the durations whose 0 has a meaning (never, or no waiting) accept it. */
#define ANY_MS INT64_MAX
#define MORE_THAN_0 "must be more than 0"
DURATION_FIELD(parse_flush, flush_ms, 1, 60000, "from 1ms to 60s")
DURATION_FIELD(parse_web_read_timeout, web_read_timeout_ms, 100, ANY_MS, "at least 100ms")
DURATION_FIELD(parse_asn_names_refresh, asn_names_refresh_ms, 0, ANY_MS, "") /* 0: never */
DURATION_FIELD(parse_asn_names_timeout, asn_names_timeout_ms, 1, ANY_MS, MORE_THAN_0)
DURATION_FIELD(parse_push_interval, push_interval_ms, 1000, ANY_MS, "at least 1s")
DURATION_FIELD(parse_push_timeout, push_timeout_ms, 1, ANY_MS, MORE_THAN_0)
DURATION_FIELD(parse_push_backlog, push_backlog_ms, 1, ANY_MS, MORE_THAN_0)
DURATION_FIELD(parse_series_ttl, series_ttl_ms, 0, ANY_MS, "")		   /* 0: never */
DURATION_FIELD(parse_shutdown_timeout, shutdown_timeout_ms, 0, ANY_MS, "") /* 0: no waiting */
BOOL_FIELD(parse_push_insecure, push_insecure_skip_verify)
BOOL_FIELD(parse_pushgateway_delete, pushgateway_delete)
BOOL_FIELD(parse_help, help)
BOOL_FIELD(parse_version, version)
COUNT_FIELD(parse_max_series, max_series, 100000000)
COUNT_FIELD(parse_max_record_bytes, max_record_bytes, 64u << 20)
COUNT_FIELD(parse_remote_write_max_series, remote_write_max_series, 1000000)
COUNT_FIELD(parse_demo_rate, demo_rate, 10000000)

/* A whole number from 0 (off) to max. */
#define COUNT0_FIELD(fn, field, max)                                                                         \
	static int fn(struct fx_config *config, const char *value, char *why)                                \
	{                                                                                                    \
		if (parse_u64(value, max, &config->field))                                                   \
			return fail(why, "expected a whole number from 0 to %llu",                           \
				    (unsigned long long)(max));                                              \
		return 0;                                                                                    \
	}
COUNT0_FIELD(parse_demo_ases, demo_ases, 10000000)
COUNT0_FIELD(parse_top_n, top_n, 10000000)
DURATION_FIELD(parse_top_n_window, top_n_window_ms, 1000, ANY_MS, "at least 1s")
STRING_FIELD(parse_sampling_rates, sampling_rates)
STRING_FIELD(parse_interface_names, interface_names)
BOOL_FIELD(parse_snmp, snmp)
STRING_FIELD(parse_snmp_community_file, snmp_community_file)
STRING_FIELD(parse_snmp_user, snmp_user)
STRING_FIELD(parse_snmp_auth_passphrase_file, snmp_auth_passphrase_file)
STRING_FIELD(parse_snmp_priv_passphrase_file, snmp_priv_passphrase_file)
STRING_FIELD(parse_snmp_addresses, snmp_addresses)
STRING_FIELD(parse_snmp_cache, snmp_cache)
DURATION_FIELD(parse_snmp_timeout, snmp_timeout_ms, 1, ANY_MS, MORE_THAN_0)
DURATION_FIELD(parse_snmp_refresh, snmp_refresh_ms, 1, ANY_MS, MORE_THAN_0)

static int parse_snmp_version(struct fx_config *config, const char *value, char *why)
{
	if (!strcmp(value, "2c") || !strcmp(value, "3")) {
		config->snmp_version = value[0] - '0';
		return 0;
	}
	return fail(why, "expected 2c or 3");
}

static int parse_snmp_retries(struct fx_config *config, const char *value, char *why)
{
	if (parse_u64(value, 10, &config->snmp_retries))
		return fail(why, "expected a whole number from 0 to 10");
	return 0;
}

static int parse_snmp_protocol(char **field, struct fx_config *config, const char *value, bool priv,
			       char *why)
{
	char reason[ERR_SIZE];
	if (fx_snmp_check_protocols(priv ? "SHA" : value, priv ? value : "AES", reason, sizeof(reason)))
		return fail(why, "%s", reason);
	return set_string(config, field, value, why);
}

static int parse_snmp_auth_protocol(struct fx_config *config, const char *value, char *why)
{
	return parse_snmp_protocol(&config->snmp_auth_protocol, config, value, false, why);
}

static int parse_snmp_priv_protocol(struct fx_config *config, const char *value, char *why)
{
	return parse_snmp_protocol(&config->snmp_priv_protocol, config, value, true, why);
}
STRING_FIELD(parse_state_dir, state_dir)
DURATION_FIELD(parse_checkpoint_interval, checkpoint_interval_ms, 10, ANY_MS, "at least 10ms")
STRING_FIELD(parse_push_queue_dir, push_queue_dir)

/* A size in bytes: a whole number with an optional unit (B, KB, MB, GB, TB: powers of 1000; KiB, MiB, GiB,
 * TiB: powers of 1024), from 1 KiB to 1 PiB. */
static int parse_push_queue_max_bytes(struct fx_config *config, const char *value, char *why)
{
	static const struct {
		const char *unit;
		uint64_t bytes;
	} units[] = {{"", 1},
		     {"B", 1},
		     {"KB", 1000},
		     {"MB", 1000000},
		     {"GB", 1000000000},
		     {"TB", 1000000000000},
		     {"KiB", 1ull << 10},
		     {"MiB", 1ull << 20},
		     {"GiB", 1ull << 30},
		     {"TiB", 1ull << 40}};
	const uint64_t max = 1ull << 50;
	char *end = NULL;
	errno = 0;
	unsigned long long number = isdigit((unsigned char)value[0]) ? strtoull(value, &end, 10) : 0;
	for (size_t i = 0; end && !errno && i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(end, units[i].unit) && number <= max / units[i].bytes &&
		    number * units[i].bytes >= 1024) {
			config->push_queue_max_bytes = number * units[i].bytes;
			return 0;
		}
	return fail(why, "expected a size from 1KiB to 1PiB, e.g. 1GiB, 500MB or 1048576");
}

static int parse_sampling_rate(struct fx_config *config, const char *value, char *why)
{
	if (parse_u64(value, UINT32_MAX, &config->sampling_rate))
		return fail(why, "expected a whole number from 0 (none) to 4294967295");
	return 0;
}

static int parse_asn_names(struct fx_config *config, const char *value, char *why)
{
	if (!*value)
		return fail(why, "expected a file path or an http(s) URL");
	return set_string(config, &config->asn_names, value, why);
}

static int parse_pushgateway_url(struct fx_config *config, const char *value, char *why)
{
	if (*value && parse_url(value, why)) /* empty: no Pushgateway */
		return -1;
	return set_string(config, &config->pushgateway_url, value, why);
}

/* --kafka-prefetch-bytes: bytes, or a whole number of KiB, MiB or GiB; 0 leaves librdkafka's settings. */
static int parse_kafka_prefetch_bytes(struct fx_config *config, const char *value, char *why)
{
	static const struct {
		const char *unit;
		uint64_t bytes;
	} units[] = {{"", 1}, {"KiB", 1u << 10}, {"MiB", 1u << 20}, {"GiB", 1u << 30}};
	char number[32];
	size_t digits = strspn(value, "0123456789");
	uint64_t n;
	for (size_t i = 0; digits && digits < sizeof(number) && i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(value + digits, units[i].unit))
			continue;
		memcpy(number, value, digits);
		number[digits] = '\0';
		if (parse_u64(number, (16ull << 30) / units[i].bytes, &n))
			break;
		n *= units[i].bytes;
		if (n && n < (4u << 20))
			break;
		config->kafka_prefetch_bytes = n;
		return 0;
	}
	return fail(why, "expected 0 or a size from 4MiB to 16GiB (bytes, or a number with KiB, MiB or GiB)");
}

static const struct flag flags[] = {
    /* Kafka (the Go program's flags first) */
    {"brokers", "",
     "Comma-separated Kafka brokers (host:port). Empty: run the embedded demo (a mock Kafka "
     "cluster fed with synthetic pmacct records)",
     parse_brokers, false, false},
    {"topic", "pmacct.acct", "Kafka topic(s) with pmacct JSON records, comma-separated", parse_topic, false,
     false},
    {"asn", "0",
     "Local AS number(s), comma-separated: source AS local = transmit, destination AS local = "
     "receive",
     parse_asn, false, false},
    {"addr", ":9590", "Listen address for /metrics ([host]:port)", parse_addr, false, false},
    /* HTTP security (issue 14) */
    {"web-config-file", "",
     "Web configuration file (exporter-toolkit format: TLS, client certificates, basic "
     "auth, headers); re-read on SIGHUP and on change",
     parse_web_config_file, false, false},
    {"web.config.file", "", "Same as --web-config-file (the exporter-toolkit's name)", parse_web_config_file,
     false, false},
    {"web-max-connections", "512", "Most HTTP connections open at once; more are closed at once and counted",
     parse_web_max_connections, false, false},
    {"web-max-connections-per-ip", "32", "Most HTTP connections open at once from one client address",
     parse_web_max_connections_per_ip, false, false},
    {"web-read-timeout", "10s",
     "A request head must arrive within this long of the connection's start or "
     "of its previous response, or the connection is closed",
     parse_web_read_timeout, false, false},
    {"web-max-header-bytes", "32768",
     "Largest request head (request line and headers); larger is answered "
     "431",
     parse_web_max_header_bytes, false, false},
    {"partitions", "",
     "The Go program's mode: \"all\" or comma-separated partition numbers, read from the "
     "newest offset with no consumer group. Empty: consumer group mode",
     parse_partitions, false, false},
    {"group", "flow-exporter", "Kafka consumer group (offsets are committed only for counted records)",
     parse_group, false, false},
    {"kafka-opt", NULL, "librdkafka setting key=value, passed through (TLS, SASL, fetch sizes); repeatable",
     parse_kafka_opt, false, true},
    {"kafka-config-file", "",
     "librdkafka properties file (key=value lines, # comments, as kcat -F reads): "
     "secrets such as sasl.password go here, not in --kafka-opt; --kafka-opt wins",
     parse_kafka_config_file, false, false},
    {"workers", "auto", "Consumer threads (\"auto\": one per core)", parse_workers, false, false},
    {"kafka-prefetch-bytes", "8MiB",
     "Bound on the messages librdkafka fetches ahead, in all (bytes, KiB, MiB or GiB; 0: librdkafka's "
     "defaults): sets queued.max.messages.kbytes, fetch.max.bytes and max.partition.fetch.bytes; "
     "--kafka-opt wins",
     parse_kafka_prefetch_bytes, false, false},
    {"flush-interval", "100ms", "How often consumer threads publish their counts to /metrics and pushes",
     parse_flush, false, false},
    {"max-record-bytes", "65536", "Largest pmacct record accepted (bytes); longer ones are counted invalid",
     parse_max_record_bytes, false, false},
    /* counting */
    {"labels", "hostname,source_as,source_as_name,destination_as,destination_as_name,iface_in,iface_out",
     "Flow labels kept, comma-separated, from the catalog in the README (\"none\" for none); dropping one "
     "merges the series it separated. iface_in_name, iface_out_name, iface_in_description and "
     "iface_out_description add the names of --interface-names / --snmp inline (with hostname and the index)",
     parse_labels, false, false},
    {"label-from", "",
     "NAME=KEY: label NAME from pmacct's JSON key KEY (a string, integer, true or false); "
     "repeatable",
     parse_label_from, false, true},
    {"max-series", "500000",
     "Most flow series held; records of new series past it go to their hostname's "
     "overflow series (every other label \"other\") and are counted",
     parse_max_series, false, false},
    {"top-n", "0",
     "Expose per --top-n-group only the N series with the most bytes over --top-n-window, the "
     "rest as one \"other\" series (0: every series)",
     parse_top_n, false, false},
    {"top-n-window", "5m", "The window --top-n ranks over; membership changes at most once per window",
     parse_top_n_window, false, false},
    {"top-n-group", "hostname",
     "Labels of a --top-n group, comma-separated (\"none\": one group); each "
     "group keeps its own N and other",
     parse_top_n_group, false, false},
    {"sampling-rate", "0",
     "Sampling rate of records that carry none (no sampling_rate, or 0): bytes and "
     "packets are multiplied by it. 0: none (such records count 1:1 and are counted "
     "as unknown)",
     parse_sampling_rate, false, false},
    {"sampling-rates", "",
     "CSV file \"exporter,rate\" (exporter = hostname label or peer_ip_src): that rate "
     "in place of what the exporter's records carry; re-read on SIGHUP and POST /-/reload",
     parse_sampling_rates, false, false},
	{"interface-names", "", "CSV file \"exporter,ifindex,name,description,speed\": flow_interface_info and "
				"flow_interface_speed_bps for the interfaces the flows use (and the iface_*_name labels "
				"of --labels); re-read on SIGHUP and POST /-/reload",
	 parse_interface_names, false, false},
	{"snmp", "false", "Name the interfaces the flows use by SNMP (ifName, ifAlias, ifHighSpeed), polled in the "
			  "background; --interface-names wins for the interfaces it names",
	 parse_snmp, true, false},
	{"snmp-version", "2c", "SNMP version: 2c or 3", parse_snmp_version, false, false},
	{"snmp-community-file", "", "File holding the SNMP v2c community", parse_snmp_community_file, false,
	 false},
	{"snmp-user", "", "SNMP v3 user (USM security name)", parse_snmp_user, false, false},
	{"snmp-auth-protocol", "SHA", "SNMP v3 authentication: MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512",
	 parse_snmp_auth_protocol, false, false},
	{"snmp-auth-passphrase-file", "", "File holding the SNMP v3 authentication passphrase (none: "
					  "noAuthNoPriv)",
	 parse_snmp_auth_passphrase_file, false, false},
	{"snmp-priv-protocol", "AES", "SNMP v3 privacy: DES, AES, AES-192 or AES-256", parse_snmp_priv_protocol,
	 false, false},
	{"snmp-priv-passphrase-file", "", "File holding the SNMP v3 privacy passphrase (none: authNoPriv)",
	 parse_snmp_priv_passphrase_file, false, false},
	{"snmp-addresses", "", "CSV file \"exporter,address\": the SNMP agent of an exporter (hostname label), "
			       "e.g. udp:192.0.2.1:161; default: the hostname when it is an IP address, port 161",
	 parse_snmp_addresses, false, false},
	{"snmp-timeout", "2s", "Bound on one SNMP request", parse_snmp_timeout, false, false},
	{"snmp-retries", "1", "SNMP retries after a timeout", parse_snmp_retries, false, false},
	{"snmp-refresh", "1h", "How often each exporter's interfaces are polled again", parse_snmp_refresh, false,
	 false},
	{"snmp-cache", "/var/lib/flow-exporter/snmp-interfaces.csv", "Where the last SNMP names are kept (the "
								      "--interface-names format) for restarts",
	 parse_snmp_cache, false, false},
    /* AS names */
    {"asn-names", FX_DEFAULT_ASN_NAMES_URL,
     "AS names: a file or an http(s) URL in cidr-report's asn.txt "
     "format",
     parse_asn_names, false, false},
    {"asn-names-cache", "/var/lib/flow-exporter/asn-names.txt",
     "Where the last downloaded AS-name list is "
     "kept for restarts without network",
     parse_asn_names_cache, false, false},
    {"asn-names-refresh", "24h", "How often the AS names are downloaded (or the file re-read) again",
     parse_asn_names_refresh, false, false},
    {"asn-names-timeout", "60s", "Bound on one AS-name download", parse_asn_names_timeout, false, false},
    /* push */
    {"remote-write-url", NULL,
     "Prometheus remote-write endpoint to push to (1.0 or 2.0: "
     "--remote-write-protocol); repeatable",
     parse_remote_write_url, false, true},
    {"remote-write-protocol", "auto",
     "Remote-write protocol: 1.0, 2.0 or auto (2.0, falling back to 1.0 "
     "for a 1.0 receiver); one for every --remote-write-url, or the k-th for the k-th; repeatable",
     parse_remote_write_protocol, false, true},
    {"push-interval", "15s", "How often counters are pushed (remote write and Pushgateway)",
     parse_push_interval, false, false},
    {"remote-write-max-series", "2000", "Most series in one remote-write request",
     parse_remote_write_max_series, false, false},
    {"external-label", NULL,
     "Label name=value added to every pushed series (defaults: job=flow-exporter, "
     "instance=<host>:<port>); repeatable",
     parse_external_label, false, true},
    {"push-header", NULL, "Extra HTTP header \"Name: value\" on every push; repeatable", parse_push_header,
     false, true},
    {"push-username", "", "Basic-auth user for pushes (with --push-password-file)", parse_push_username,
     false, false},
    {"push-password-file", "", "File holding the basic-auth password for pushes", parse_push_password_file,
     false, false},
    {"push-bearer-token-file", "", "File holding a bearer token for pushes", parse_push_bearer_token_file,
     false, false},
    {"push-ca-file", "", "CA certificate(s) to verify push endpoints", parse_push_ca_file, false, false},
    {"push-cert-file", "", "Client certificate for push endpoints (TLS)", parse_push_cert_file, false, false},
    {"push-key-file", "", "Client key for push endpoints (TLS)", parse_push_key_file, false, false},
    {"push-insecure-skip-verify", "false", "Do not verify push endpoints' TLS certificates",
     parse_push_insecure, true, false},
    {"push-timeout", "30s", "Bound on one push request", parse_push_timeout, false, false},
    {"push-backlog", "15m", "How much missed pushing is kept for an endpoint that is down, as time",
     parse_push_backlog, false, false},
    {"series-ttl", "0", "Remove a series not updated for this long (0: never); a stale marker is pushed",
     parse_series_ttl, false, false},
    {"pushgateway-url", "", "Pushgateway to PUT the counters to every --push-interval", parse_pushgateway_url,
     false, false},
    {"pushgateway-delete-on-shutdown", "false", "Delete the Pushgateway group on shutdown",
     parse_pushgateway_delete, true, false},
    /* durable state (issue 12) */
    {"state-dir", "",
     "Directory for the checkpoints of the counters and of the offsets they cover, so that a restart "
     "resumes exactly (created 0700; the package sets /var/lib/flow-exporter). Empty: counters start at zero",
     parse_state_dir, false, false},
    {"checkpoint-interval", "1s",
     "How often the counters are checkpointed to --state-dir; /metrics and pushes show the last checkpoint",
     parse_checkpoint_interval, false, false},
    {"push-queue-dir", NULL,
     "Directory of the remote-write queue on disk (one subdirectory per --remote-write-url): pushes an "
     "endpoint could not take beyond --push-backlog are kept there across restarts and sent oldest first. "
     "Default: <--state-dir>/push-queue with --state-dir, else none; empty: none",
     parse_push_queue_dir, false, false},
    {"push-queue-max-bytes", "1GiB",
     "Bound on each endpoint's disk queue (KB, MB, GB or KiB, MiB, GiB); past it the oldest requests are "
     "dropped and counted",
     parse_push_queue_max_bytes, false, false},
    /* process */
    {"demo-rate", "2000", "Records per second the embedded demo produces", parse_demo_rate, false, false},
    {"demo-ases", "0",
     "Distinct remote ASes in the demo's traffic (0: ten well-known ones); thousands, "
     "with a lower --max-series or --top-n, show the overflow and other series",
     parse_demo_ases, false, false},
    {"shutdown-timeout", "5s", "Bound on the final commit and push at shutdown", parse_shutdown_timeout,
     false, false},
    {"log-level", "info", "error, warn, info or debug", parse_log_level, false, false},
    {"help", "false", "Show this help and exit", parse_help, true, false},
    {"version", "false", "Show the version and exit", parse_version, true, false},
};

#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

static const struct flag *find_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < N_FLAGS; i++)
		if (strlen(flags[i].name) == len && !strncmp(flags[i].name, name, len))
			return &flags[i];
	return NULL;
}

void fx_config_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: flow-exporter [flags]\n\n"
	    "Consumes pmacct JSON flow records from Kafka and exports them as Prometheus counters.\n"
	    "Flags take --flag=value, --flag value or -flag=value. Each flag can also be set in the\n"
	    "environment as FLOW_EXPORTER_<FLAG> (e.g. FLOW_EXPORTER_ASN_NAMES); the command line wins.\n\n");
	for (size_t i = 0; i < N_FLAGS; i++) {
		const struct flag *f = &flags[i];
		fprintf(out, "  --%s", f->name);
		if (!f->is_bool)
			fprintf(out, "=VALUE");
		fprintf(out, "\n        %s", f->help);
		if (f->default_value && !f->is_bool)
			fprintf(out, " (default \"%s\")", f->default_value);
		fprintf(out, "\n");
	}
}

/* FLOW_EXPORTER_<FLAG>, e.g. FLOW_EXPORTER_ASN_NAMES for --asn-names. */
static int parse_environment(struct fx_config *config, FILE *err)
{
	char why[ERR_SIZE];
	for (size_t i = 0; i < N_FLAGS; i++) {
		char env_name[64] = "FLOW_EXPORTER_";
		size_t len = strlen(env_name);
		for (const char *c = flags[i].name; *c && len < sizeof(env_name) - 1; c++)
			env_name[len++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
		env_name[len] = '\0';
		const char *value = getenv(env_name);
		char shown[ERR_SIZE];
		if (value && flags[i].parse(config, value, why)) {
			fprintf(err, "flow-exporter: invalid value \"%s\" for %s (--%s): %s\n",
				shown_value(&flags[i], value, shown, sizeof(shown)), env_name, flags[i].name,
				why);
			return 2;
		}
	}
	return 0;
}

static int parse_arguments(struct fx_config *config, int argc, char **argv, FILE *err)
{
	char why[ERR_SIZE];
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (arg[0] != '-' || arg[1] == '\0') {
			fprintf(err, "flow-exporter: unexpected argument \"%s\" (flags start with --)\n",
				arg);
			return 2;
		}
		const char *name = arg + (arg[1] == '-' ? 2 : 1);
		const char *eq = strchr(name, '=');
		size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
		const struct flag *f = find_flag(name, name_len);
		if (!f) {
			fprintf(err, "flow-exporter: unknown flag --%.*s (see --help)\n", (int)name_len,
				name);
			return 2;
		}
		const char *value;
		if (eq)
			value = eq + 1;
		else if (f->is_bool)
			value = "true";
		else if (i + 1 < argc)
			value = argv[++i];
		else {
			fprintf(err, "flow-exporter: flag --%s needs a value\n", f->name);
			return 2;
		}
		char shown[ERR_SIZE];
		if (f->parse(config, value, why)) {
			fprintf(err, "flow-exporter: invalid value \"%s\" for --%s: %s\n",
				shown_value(f, value, shown, sizeof(shown)), f->name, why);
			return 2;
		}
	}
	return 0;
}

/* Flags that are valid alone but not together. */
static int check_combinations(const struct fx_config *config, FILE *err)
{
	const char *problem = NULL;
	if (config->push_key_file[0] && !config->push_cert_file[0])
		problem = "--push-key-file needs --push-cert-file";
	else if (config->push_password_file[0] && !config->push_username[0])
		problem = "--push-password-file needs --push-username";
	else if (config->push_bearer_token_file[0] && config->push_password_file[0])
		problem = "--push-bearer-token-file and --push-password-file exclude each other";
	if (problem) {
		fprintf(err, "flow-exporter: %s\n", problem);
		return 2;
	}
	if (config->n_remote_write_protocols > 1 &&
	    config->n_remote_write_protocols != config->n_remote_write_urls) {
		fprintf(err,
			"flow-exporter: --remote-write-protocol given %zu times for %zu --remote-write-url: "
			"give one for all, or one for each\n",
			config->n_remote_write_protocols, config->n_remote_write_urls);
		return 2;
	}
	return 0;
}

/* --push-queue-dir not given: inside --state-dir when there is one, else none. */
static int resolve_push_queue_dir(struct fx_config *config, FILE *err)
{
	if (config->push_queue_dir)
		return 0;
	char dir[4096] = "";
	if (config->state_dir[0] &&
	    snprintf(dir, sizeof(dir), "%s/push-queue", config->state_dir) >= (int)sizeof(dir)) {
		fprintf(err, "flow-exporter: invalid value for --state-dir: too long\n");
		return 2;
	}
	config->push_queue_dir = keep(config, dir);
	if (!config->push_queue_dir) {
		fprintf(err, "flow-exporter: out of memory\n");
		return 1;
	}
	return 0;
}

int fx_config_parse(struct fx_config *config, int argc, char **argv, FILE *err)
{
	char why[ERR_SIZE];
	memset(config, 0, sizeof(*config));
	for (size_t i = 0; i < N_FLAGS; i++) {
		if (flags[i].default_value && flags[i].parse(config, flags[i].default_value, why)) {
			fprintf(err, "flow-exporter: bad default for --%s: %s\n", flags[i].name, why);
			return 2;
		}
	}
	config->asn_given = false;
	/* Then the environment, then the command line: the command line wins. */
	int rc = parse_environment(config, err);
	if (!rc)
		rc = parse_arguments(config, argc, argv, err);
	if (!rc)
		rc = check_combinations(config, err);
	if (!rc)
		rc = finish_layout(config, err);
	if (!rc)
		rc = resolve_push_queue_dir(config, err);
	return rc;
}

void fx_config_free(struct fx_config *config)
{
	while (config->strings) {
		struct fx_config_strings *next = config->strings->next;
		free(config->strings);
		config->strings = next;
	}
}
