/* fx_expo_negotiate: the Accept headers scrapers send (Prometheus 2.42's default, client_golang's cases),
 * q-values and their order, versions, wildcards, and malformed headers (always the text format). */
#include "fx/expo_negotiate.h"

#include "check.h"

static void expect(const char *accept, enum fx_expo_format format, const char *content_type)
{
	const char *got_type = NULL;
	enum fx_expo_format got = fx_expo_negotiate(accept, &got_type);
	CHECK_EQ_U64(got, format);
	CHECK_STR(got_type, content_type);
	if (got != format)
		fprintf(stderr, "  for Accept: %s\n", accept ? accept : "(none)");
}

int main(void)
{
	const char *om = FX_OPENMETRICS_CONTENT_TYPE, *om001 = FX_OPENMETRICS_0_0_1_CONTENT_TYPE;
	const char *text = FX_TEXT_CONTENT_TYPE;
	/* Prometheus 2.42's scrape default. */
	expect("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
	       "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
	       FX_EXPO_OPENMETRICS, om);
	/* No header, curl's, a browser's: text. */
	expect(NULL, FX_EXPO_TEXT, text);
	expect("*/*", FX_EXPO_TEXT, text);
	expect("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", FX_EXPO_TEXT, text);
	expect("text/plain", FX_EXPO_TEXT, text);
	expect("text/plain;version=0.0.4", FX_EXPO_TEXT, text);
	/* q decides, not the order in the header. */
	expect("text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0",
	       FX_EXPO_OPENMETRICS, om);
	expect("application/openmetrics-text;version=1.0.0;q=0.4,text/plain;q=0.5", FX_EXPO_TEXT, text);
	/* Equal q: the header's order. */
	expect("text/plain, application/openmetrics-text; version=1.0.0", FX_EXPO_TEXT, text);
	expect("application/openmetrics-text; version=1.0.0, text/plain", FX_EXPO_OPENMETRICS, om);
	/* Versions: 0.0.1 or none answer version 0.0.1 (client_golang); unknown ones are skipped. */
	expect("application/openmetrics-text;version=0.0.1", FX_EXPO_OPENMETRICS, om001);
	expect("application/openmetrics-text", FX_EXPO_OPENMETRICS, om001);
	expect("application/openmetrics-text;version=2.0.0,text/plain;q=0.1", FX_EXPO_TEXT, text);
	expect("text/plain;version=1.0.0,application/openmetrics-text;q=0.2", FX_EXPO_OPENMETRICS, om001);
	/* q=0 is "not acceptable"; case and spaces do not matter. */
	expect("application/openmetrics-text;version=1.0.0;q=0", FX_EXPO_TEXT, text);
	expect("  Application/OpenMetrics-Text ; Version=\"1.0.0\" ; Q=1.0 ", FX_EXPO_OPENMETRICS, om);
	/* Protobuf is not offered: the next acceptable one. */
	expect("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
	       "application/openmetrics-text;version=1.0.0;q=0.9",
	       FX_EXPO_OPENMETRICS, om);
	/* Malformed: text. */
	expect("", FX_EXPO_TEXT, text);
	expect(",,;;==/", FX_EXPO_TEXT, text);
	expect("application", FX_EXPO_TEXT, text);
	expect("application/openmetrics-text;q=abc", FX_EXPO_OPENMETRICS, om001);
	return check_exit();
}
