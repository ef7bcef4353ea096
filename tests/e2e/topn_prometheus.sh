#!/bin/bash
# Top-N under real Prometheus 2.42 (issue 10), scraped and by remote write at once. Two hostnames x 8 keys
# (cardinality.py gen-phases): every key gets a record every 0.5 s tick, and the 3 heavy keys of a phase
# (100 times the bytes) rotate every 4 s, so that with --top-n=3 --top-n-window=3s the membership changes
# at most rankings. One Prometheus scrapes /metrics every second (job="fx") and receives the same
# exporter's remote write 1.0 every second (job="flow-exporter", the exporter's default identity). For each path (cardinality.py prom-check):
# - the sum over every series ever exposed of its last value (last_over_time over the whole run) equals
#   the exact total of what was produced, per family, per hostname: folding lost and doubled nothing;
# - resets() is 0 for every series: every exposed counter is monotonic through demotions and promotions;
# - at every 1 s step no hostname has more than N + 1 series growing through the seconds before and after
#   (the members and other; what else is exposed is frozen, constant) nor more than 2N + 1 exposed (N
#   frozen at most);
# - the membership did change (at least 3 appearances or departures per hostname).
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

CARD_PY="$FX_LIB_DIR/cardinality.py"
N=3 PHASES=8 TICKS=8
SET="$TEST_TMP/set"
"$PYTHON" "$CARD_PY" gen-phases --out "$SET" --hosts 2 --keys 8 --heavy "$N" --phases "$PHASES" --ticks "$TICKS"

start_mock --topic flows:4
PROM_PORT=$(free_port)
start_prometheus prom "$PROM_PORT" "$TEST_TMP/tsdb"
PORT=$(free_port)
# The scrape job, added to the helper's config; a reload (SIGHUP) applies it.
cat >>"$TEST_TMP/prom.yml" <<EOF
scrape_configs:
  - job_name: fx
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ['127.0.0.1:$PORT']
EOF
promtool check config "$TEST_TMP/prom.yml" >"$TEST_TMP/promtool-config.log" 2>&1 ||
	fail "promtool check config: $(cat "$TEST_TMP/promtool-config.log")"
kill -HUP "$prom_PID"
START=$(date +%s)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --asn=64496 --asn-names="$SET/asn.txt" \
	--group=g1 --kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest \
	--top-n="$N" --top-n-window=3s \
	--remote-write-url="http://127.0.0.1:$PROM_PORT/api/v1/write" --remote-write-protocol=1.0 --push-interval=1s
wait_until 20 "partitions assigned" \
	bash -c "curl -fsS -m 2 http://127.0.0.1:$PORT/metrics | grep -q '^flow_exporter_kafka_assigned_partitions [1-9]'"
wait_until 20 "Prometheus scrapes the exporter" bash -c \
	"curl -fsS -m 2 'http://127.0.0.1:$PROM_PORT/api/v1/query?query=up%7Bjob%3D%22fx%22%7D' | grep -q '\"1\"\]'"

for ((tick = 0; tick < PHASES * TICKS; tick++)); do
	must_mock produce flows $((tick % 4)) "$SET/tick$tick.msg"
	sleep 0.5
done
n_records=$("$PYTHON" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["records"]))' "$SET/records.json")
counted_all() {
	scrape "$PORT" "$TEST_TMP/now.prom" &&
		[[ $("$PYTHON" "$METRICS_PY" get "$TEST_TMP/now.prom" flow_exporter_records_counted_total) == "$n_records" ]]
}
wait_until 30 "all $n_records records counted" counted_all
# Two windows more: the last demoted series leave, and both paths carry the final values.
sleep 8
END=$(date +%s)
sleep 2
scrape "$PORT" "$TEST_TMP/final.prom" || fail "scrape"
log "exposed at the end: $("$PYTHON" "$METRICS_PY" get "$TEST_TMP/final.prom" flow_exporter_series_exposed) of $("$PYTHON" "$METRICS_PY" get "$TEST_TMP/final.prom" flow_exporter_series) held"

status=0
for selector in 'job="fx"' 'job="flow-exporter"'; do
	if "$PYTHON" "$CARD_PY" prom-check "$PROM_PORT" "$selector" "$SET/records.json" "$N" "$START" "$END" \
		>"$TEST_TMP/check.out" 2>&1; then
		log "$(tail -1 "$TEST_TMP/check.out")"
	else
		cat "$TEST_TMP/check.out" >&2
		status=1
	fi
done
((status == 0)) || fail "top-N as Prometheus saw it breaks a rule (above)"
failures=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/final.prom" flow_exporter_push_failures_total)
[[ $failures == 0 ]] || fail "$failures remote-write pushes failed"

stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
stop_pid "$prom_PID" TERM 15 || fail "prometheus exited with status $STOP_RC"
stop_mock
log "ok"
