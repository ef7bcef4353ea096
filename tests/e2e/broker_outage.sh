# Broker outage: the mock's brokers refuse every connection for ten seconds while the exporter is
# consuming, then come back. The exporter must stay up (its process alive, /-/healthy and /metrics
# answering), count the Kafka errors, and end with exactly the totals of everything produced.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

LOCAL_ASNS=64496,4200000001,65551
SET="$TEST_TMP/set"
PARTITIONS=4
OUTAGE_SECONDS=10

"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 777 --partitions $PARTITIONS --chunks 3 --messages 120 \
	--local "$LOCAL_ASNS"
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --chunks 0 --out "$TEST_TMP/expected-0.prom" \
	--counts-out "$TEST_TMP/expected-0-counts.json"
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --out "$TEST_TMP/expected-all.prom" \
	--counts-out "$TEST_TMP/expected-all-counts.json"

start_mock --topic flows:$PARTITIONS
produce_chunk 0

PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --asn="$LOCAL_ASNS" \
	--asn-names="$SET/asn.txt" --group=outage \
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
wait_metrics "$PORT" "$TEST_TMP/expected-0.prom" 60 "$TEST_TMP/expected-0-counts.json"
log "first chunk counted; producing the second and taking the brokers down at once"

# Producing fails while the brokers are down, so the second chunk goes in just before: the exporter is
# likely still fetching it when the connections drop.
produce_chunk 1
must_mock down
for ((i = 0; i < OUTAGE_SECONDS; i++)); do
	sleep 1
	assert_alive "$exporter_PID" "the exporter during the outage"
	curl -fsS -m 3 -o /dev/null "http://127.0.0.1:$PORT/-/healthy" ||
		fail "/-/healthy did not answer during the outage (second $i)"
	scrape "$PORT" "$TEST_TMP/outage.prom" || fail "/metrics did not answer during the outage (second $i)"
done
must_mock up
log "brokers are back after ${OUTAGE_SECONDS}s"

produce_chunk 2
wait_metrics "$PORT" "$TEST_TMP/expected-all.prom" 90 "$TEST_TMP/expected-all-counts.json"
sleep 2
assert_metrics "$PORT" "$TEST_TMP/expected-all.prom"
log "totals exact after the outage"

scrape "$PORT" "$TEST_TMP/final.prom" || fail "/metrics failed"
if ! "$PYTHON" "$METRICS_PY" self-check "$TEST_TMP/final.prom" "$TEST_TMP/expected-all-counts.json" >&2; then
	fail "the record self-metrics differ from what was produced"
fi
errors=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/final.prom" flow_exporter_kafka_errors_total)
log "flow_exporter_kafka_errors_total sums to $errors"
[[ $errors != 0 ]] || fail "the outage left flow_exporter_kafka_errors_total at 0 (errors must be counted)"

stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM (want 0)"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
