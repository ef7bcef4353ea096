#!/bin/bash
# OpenMetrics on /metrics. After a known record set is consumed:
# - a scrape asking for OpenMetrics (Prometheus 2.42's default Accept) gets
#   "application/openmetrics-text; version=1.0.0; charset=utf-8", and the body parses with the strict parser
#   of Debian's python3-prometheus-client (prometheus_client.openmetrics.parser): every flow family, a
#   _created sample for every flow series, "# EOF" last; gzip gives the same body;
# - a scrape that does not ask (or asks for text/plain) gets the text format 0.0.4 with the same flow
#   samples as before (the golden files of test_expo_text hold it byte for byte);
# - Prometheus 2.42 scraping with its default Accept gets OpenMetrics (it stores the _created samples as
#   their own series, which only OpenMetrics carries) and holds the exact totals.
# shellcheck source=lib/common.sh disable=SC2154
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

SET="$TEST_TMP/set"
push_set "$SET" 4711 4 60
push_expect "$SET" "$TEST_TMP/expected"
start_mock --topic flows:4
for p in 0 1 2 3; do
	must_mock produce flows "$p" "$SET/chunk0.p$p.msg"
done
PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --group=om \
	--asn="$(cat "$SET/local")" --asn-names="$SET/asn.txt" \
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
wait_until 40 "every record counted" bash -c '[[ $(curl -fsS "http://127.0.0.1:$0/metrics" | grep -c "^flow_.*_total{") -ge $1 ]]' \
	"$PORT" "$(wc -l <"$TEST_TMP/expected.prom")"

PROM_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
URL="http://127.0.0.1:$PORT/metrics"
curl -fsS -D "$TEST_TMP/om.headers" -H "Accept: $PROM_ACCEPT" -o "$TEST_TMP/om.txt" "$URL" || fail "OpenMetrics scrape"
grep -qi '^content-type: application/openmetrics-text; version=1.0.0; charset=utf-8' "$TEST_TMP/om.headers" ||
	fail "OpenMetrics Content-Type: $(grep -i content-type "$TEST_TMP/om.headers")"
curl -fsS -H "Accept: $PROM_ACCEPT" -H 'Accept-Encoding: gzip' "$URL" | gunzip >"$TEST_TMP/om-gzip.txt" ||
	fail "gzip OpenMetrics scrape"
curl -fsS -D "$TEST_TMP/text.headers" -o "$TEST_TMP/text.txt" "$URL" || fail "text scrape"
curl -fsS -H 'Accept: text/plain;version=0.0.4' -o "$TEST_TMP/text2.txt" "$URL" || fail "text scrape"
grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$TEST_TMP/text.headers" || fail "text Content-Type"

"$PYTHON" - "$TEST_TMP/om.txt" "$TEST_TMP/om-gzip.txt" "$TEST_TMP/text.txt" "$TEST_TMP/text2.txt" "$TEST_TMP/expected.prom" <<'PY' || fail "OpenMetrics body"
import sys
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
from prometheus_client.openmetrics.parser import text_string_to_metric_families
om, om_gzip, text, text2, expected = (open(p, encoding="utf-8").read() for p in sys.argv[1:6])
assert om.endswith("# EOF\n"), "no # EOF at the end"
families = {f.name: f for f in text_string_to_metric_families(om)}  # strict: raises on any error
flow_lines = lambda body: sorted(l for l in body.splitlines() if l.startswith(("flow_receive_", "flow_transmit_")) and "_total" in l)
want = sorted(l for l in expected.splitlines() if l)
for name in ("flow_receive_bytes", "flow_transmit_bytes", "flow_receive_packets", "flow_transmit_packets"):
    f = families[name]
    assert f.type == "counter", (name, f.type)
    totals = {tuple(sorted(s.labels.items())): s.value for s in f.samples if s.name == name + "_total"}
    created = {tuple(sorted(s.labels.items())) for s in f.samples if s.name == name + "_created"}
    assert totals and set(totals) == created, name + ": a series without _created"
n = sum(1 for l in flow_lines(om))
assert n == len(want), "OpenMetrics has %d flow samples, want %d" % (n, len(want))
assert flow_lines(om) == flow_lines(text), "OpenMetrics and text flow samples differ"
assert flow_lines(om_gzip) == flow_lines(om) and om_gzip.endswith("# EOF\n"), "gzip OpenMetrics differs"
assert "# EOF" not in text and "_created" not in text and flow_lines(text) == flow_lines(text2)
assert "# TYPE flow_receive_bytes_total counter" in text, "the text format's family names changed"
print("OpenMetrics: %d families, %d flow samples with _created, # EOF last" % (len(families), n))
PY
log "OpenMetrics body parses strictly, the text format is unchanged for scrapers that do not ask"

PROM_PORT=$(free_port)
printf 'global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: fx\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' \
	"$PORT" >"$TEST_TMP/prometheus.yml"
start_bg prom /usr/bin/prometheus --config.file="$TEST_TMP/prometheus.yml" --storage.tsdb.path="$TEST_TMP/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT"
wait_ready prom "$prom_PID" "http://127.0.0.1:$PROM_PORT/-/ready"
PROM="http://127.0.0.1:$PROM_PORT"
wait_totals "Prometheus scraping OpenMetrics" "$PROM" "$TEST_TMP/expected.hosts.json" 40
created=$("$PYTHON" "$PUSH_PY" vector "$PROM" 'count({__name__=~"flow_(receive|transmit)_(bytes|packets)_created"})')
[[ $created == "{\"\": \"$(wc -l <"$TEST_TMP/expected.prom")\"}" ]] ||
	fail "Prometheus holds $created _created series: it did not get OpenMetrics"
log "Prometheus 2.42 (default Accept) got OpenMetrics (one _created series per flow series) and holds the exact totals"
assert_clean_log "$TEST_TMP/exporter.log"
log "PASS"
