#!/bin/bash
# Overflow through Kafka (issue 10): 4 hostnames x 600 keys (2,400 distinct series keys), in single and
# kafka_multi_values messages over 4 partitions, into an exporter with --max-series=500. Whatever order
# the partitions deliver in, the rule decides where each record lands: a key held once takes all its
# records, a key refused stays refused (no expiry). So the test reads which keys are held from /metrics
# and checks (cardinality.py check-overflow): every held series equals the exact sum of its key's
# records, each hostname's overflow series the sum of the records of its keys not held, and
# flow_exporter_records_overflow_total{hostname} exactly the number of those records; held + overflow
# records = every record sent; per-hostname and total sums = the generator's. flow_exporter_series is
# polled through the run and never exceeds the limit; nothing is dropped; promtool accepts the body.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

CARD_PY="$FX_LIB_DIR/cardinality.py"
LIMIT=500
SET="$TEST_TMP/set"
"$PYTHON" "$CARD_PY" gen --out "$SET" --seed 10 --partitions 4 --messages 150 --hosts 4 --keys 600 >&2
n_records=$("$PYTHON" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["records"]))' "$SET/records.json")

start_mock --topic flows:4
PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --asn=64496 --asn-names="$SET/asn.txt" \
	--group=g1 --kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest \
	--max-series="$LIMIT"

# The poller: flow_exporter_series at every 0.2 s of the run, into series.poll.
(
	while :; do
		curl -fsS -m 2 "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
			awk '$1 == "flow_exporter_series" { print $2 }' >>"$TEST_TMP/series.poll" || true
		sleep 0.2
	done
) &
POLLER=$!
STARTED_PIDS+=("$POLLER")

# Half of each partition, then the rest: the table fills while records keep arriving.
for p in 0 1 2 3; do must_mock produce flows "$p" "$SET/p$p.msg"; done
log "produced $n_records records: ${MOCK_REPLY}"

counted_all() {
	scrape "$PORT" "$TEST_TMP/now.prom" &&
		[[ $("$PYTHON" "$METRICS_PY" get "$TEST_TMP/now.prom" flow_exporter_records_counted_total) == "$n_records" ]]
}
wait_until 60 "all $n_records records counted" counted_all
sleep 1.5 # a few snapshots more: the flow series catch up with the counters
scrape "$PORT" "$TEST_TMP/final.prom" || fail "scrape"
kill "$POLLER" 2>/dev/null || true
wait "$POLLER" 2>/dev/null || true
forget_pid "$POLLER"

if ! "$PYTHON" "$CARD_PY" check-overflow "$TEST_TMP/final.prom" "$SET/records.json" "$LIMIT" >"$TEST_TMP/check.out"; then
	cat "$TEST_TMP/check.out" >&2
	fail "the overflow rule does not hold"
fi
log "$(tail -1 "$TEST_TMP/check.out")"

polls=$(wc -l <"$TEST_TMP/series.poll")
max_held=$(sort -n "$TEST_TMP/series.poll" | tail -1)
((polls >= 5)) || fail "only $polls polls of flow_exporter_series"
((max_held <= LIMIT)) || fail "flow_exporter_series reached $max_held > --max-series=$LIMIT during the run"
held=$("$PYTHON" "$METRICS_PY" get "$TEST_TMP/final.prom" flow_exporter_series)
((held == LIMIT)) || fail "flow_exporter_series = $held at the end, want $LIMIT (2,400 keys were offered)"
log "flow_exporter_series over $polls polls: at most $max_held (limit $LIMIT)"
dropped=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/final.prom" flow_exporter_records_dropped_total)
((dropped == 0)) || fail "$dropped records dropped"
if ! promtool check metrics <"$TEST_TMP/final.prom" >"$TEST_TMP/promtool.log" 2>&1; then
	cat "$TEST_TMP/promtool.log" >&2
	fail "promtool check metrics rejects the body"
fi
stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
log "ok"
