/* Live reload: every source is tried even after one fails, the failures are reported with their lines,
 * and the last result is exposed (flow_exporter_reload_last_successful, the last success time). */
#include <stdlib.h>

#include "check.h"
#include "fx/reload.h"

static int calls;

static int good(void *opaque, struct fx_parse_error *error)
{
	(void)opaque;
	(void)error;
	calls++;
	return 0;
}

static int bad(void *opaque, struct fx_parse_error *error)
{
	calls++;
	return fx_parse_fail(error, *(size_t *)opaque, "rate \"x\" is not a whole number");
}

static double value_of(struct fx_family_list *list, const char *name, const char *result)
{
	for (size_t i = 0; i < fx_family_list_count(list); i++) {
		const struct fx_family *f = fx_family_list_get(list, i);
		if (strcmp(f->name, name))
			continue;
		for (size_t s = 0; s < f->n_samples; s++) {
			const struct fx_sample *sample = &f->samples[s];
			if (result && (!sample->n_labels || strcmp(sample->labels[0].value, result)))
				continue;
			return sample->is_integer ? (double)sample->integer : sample->real;
		}
	}
	return -1;
}

int main(void)
{
	size_t line = 7;
	struct fx_reload *reload = fx_reload_create();
	CHECK(fx_reload_add(reload, "--interface-names a.csv", good, NULL) == 0);
	CHECK(fx_reload_add(reload, "--sampling-rates b.csv", bad, &line) == 0);
	CHECK(fx_reload_add(reload, "--x c.csv", good, NULL) == 0);

	struct fx_family_list *list = fx_family_list_create();
	CHECK(fx_reload_collect(reload, list) == 0);
	CHECK(value_of(list, "flow_exporter_reload_last_successful", NULL) == 1);
	double started = value_of(list, "flow_exporter_reload_last_success_timestamp_seconds", NULL);
	CHECK(started > 1.7e9);
	fx_family_list_destroy(list);

	char message[256];
	CHECK(fx_reload_all(reload, "SIGHUP", message, sizeof(message)) == -1);
	CHECK_EQ_U64(calls, 3); /* the third source is reloaded after the second failed */
	CHECK_STR(message, "--sampling-rates b.csv: line 7: rate \"x\" is not a whole number\n");
	list = fx_family_list_create();
	CHECK(fx_reload_collect(reload, list) == 0);
	CHECK(value_of(list, "flow_exporter_reload_last_successful", NULL) == 0);
	CHECK(value_of(list, "flow_exporter_reload_last_success_timestamp_seconds", NULL) == started);
	CHECK(value_of(list, "flow_exporter_reloads_total", "failure") == 1);
	CHECK(value_of(list, "flow_exporter_reloads_total", "success") == 0);
	fx_family_list_destroy(list);

	/* A message buffer too small is cut, never overrun. */
	char tiny[8];
	CHECK(fx_reload_all(reload, "POST /-/reload", tiny, sizeof(tiny)) == -1);
	CHECK(strlen(tiny) < sizeof(tiny));
	fx_reload_destroy(reload);

	reload = fx_reload_create();
	CHECK(fx_reload_add(reload, "--interface-names a.csv", good, NULL) == 0);
	CHECK(fx_reload_all(reload, "SIGHUP", message, sizeof(message)) == 0);
	CHECK_STR(message, "");
	list = fx_family_list_create();
	CHECK(fx_reload_collect(reload, list) == 0);
	CHECK(value_of(list, "flow_exporter_reload_last_successful", NULL) == 1);
	CHECK(value_of(list, "flow_exporter_reloads_total", "success") == 1);
	fx_family_list_destroy(list);
	fx_reload_destroy(reload);
	fx_reload_destroy(NULL);
	return check_exit();
}
