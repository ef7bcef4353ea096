# The Go program's mode and the cardinality controls, end to end against the mock cluster:
# - --partitions=all and --partitions=0,1 read from the newest offset with no group: records produced
#   before the exporter started are not counted, those produced after are, exactly, and only from the
#   partitions given;
# - --labels=hostname,destination_as merges the series it no longer separates, with exact sums;
# - --max-series bounds the series held; records of new series past it go to their hostname's overflow
#   series (issue 10), so the limited exporter's sums equal the unlimited one's, and the overflow metric
#   counts them.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

LOCAL_ASNS=64496,4200000001,65551
OLD="$TEST_TMP/old" NEW="$TEST_TMP/new"
"$PYTHON" "$FLOWS_PY" gen --out "$OLD" --seed 7 --partitions 4 --messages 60 --local "$LOCAL_ASNS"
"$PYTHON" "$FLOWS_PY" gen --out "$NEW" --seed 8 --partitions 4 --messages 120 --local "$LOCAL_ASNS"
"$PYTHON" "$FLOWS_PY" expect --manifest "$NEW/manifest.json" --out "$TEST_TMP/all.prom" \
	--counts-out "$TEST_TMP/all-counts.json"
"$PYTHON" "$FLOWS_PY" expect --manifest "$NEW/manifest.json" --until p2=0,p3=0 --out "$TEST_TMP/p01.prom"
"$PYTHON" "$(dirname "$0")/lib/expect_ops.py" keep hostname,destination_as "$TEST_TMP/all.prom" \
	"$TEST_TMP/merged.prom"
[[ $(wc -l <"$TEST_TMP/merged.prom") -lt $(wc -l <"$TEST_TMP/all.prom") ]] ||
	fail "the label selection case would merge nothing: the test could not fail"

start_mock --topic flows:4
# History the Go mode must skip: it starts at the newest offset.
for p in 0 1 2 3; do must_mock produce flows "$p" "$OLD/chunk0.p$p.msg"; done

common=(--brokers="$BOOT" --topic=flows --asn="$LOCAL_ASNS" --asn-names="$NEW/asn.txt")
P_ALL=$(free_port)
start_exporter go_all "$P_ALL" "${common[@]}" --partitions=all
P_01=$(free_port)
start_exporter go_01 "$P_01" "${common[@]}" --partitions=0,1
P_MERGED=$(free_port)
start_exporter merged "$P_MERGED" "${common[@]}" --partitions=all --labels=hostname,destination_as
P_LIMIT=$(free_port)
start_exporter limited "$P_LIMIT" "${common[@]}" --partitions=all --max-series=7

for port in "$P_ALL" "$P_01" "$P_MERGED" "$P_LIMIT"; do
	wait_until 20 "partitions assigned on :$port" \
		bash -c "curl -fsS -m 2 http://127.0.0.1:$port/metrics | grep -q '^flow_exporter_kafka_assigned_partitions [1-9]'"
done
# The assignment is asynchronous: give the fetchers a moment to resolve the newest offsets.
sleep 2
for p in 0 1 2 3; do must_mock produce flows "$p" "$NEW/chunk0.p$p.msg"; done

wait_metrics "$P_ALL" "$TEST_TMP/all.prom" 60
log "--partitions=all: exactly the records produced after the start"
wait_metrics "$P_01" "$TEST_TMP/p01.prom" 60
log "--partitions=0,1: exactly those partitions"
wait_metrics "$P_MERGED" "$TEST_TMP/merged.prom" 60
log "--labels=hostname,destination_as: merged series with exact sums"

# The limit: at most 7 held series; nothing is lost: the overflow series carry the rest, exactly.
sleep 1
scrape "$P_ALL" "$TEST_TMP/all-final.prom" || fail "scrape"
scrape "$P_LIMIT" "$TEST_TMP/limited.prom" || fail "scrape"
series=$("$PYTHON" "$METRICS_PY" get "$TEST_TMP/limited.prom" flow_exporter_series)
counted_all=$("$PYTHON" "$METRICS_PY" get "$TEST_TMP/all-final.prom" flow_exporter_records_counted_total)
counted=$("$PYTHON" "$METRICS_PY" get "$TEST_TMP/limited.prom" flow_exporter_records_counted_total)
dropped=$("$PYTHON" "$METRICS_PY" get "$TEST_TMP/limited.prom" flow_exporter_records_dropped_total \
	reason=series_limit stage=consumer)
dropped_later=$("$PYTHON" "$METRICS_PY" get "$TEST_TMP/limited.prom" flow_exporter_records_dropped_total \
	reason=series_limit stage=store)
overflow=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/limited.prom" flow_exporter_records_overflow_total)
log "limited: series=$series counted=$counted dropped=$dropped+$dropped_later overflow=$overflow of $counted_all flows"
((series == 7)) || fail "--max-series=7 holds $series series"
((dropped + dropped_later == 0)) || fail "records were dropped by the limit"
((overflow > 0)) || fail "no record went to an overflow series"
((counted == counted_all)) || fail "counted $counted != $counted_all flows"
for family in flow_receive_packets_total flow_transmit_packets_total flow_receive_bytes_total flow_transmit_bytes_total; do
	want=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/all-final.prom" "$family")
	got=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/limited.prom" "$family")
	[[ "$want" == "$got" ]] || fail "$family: limited sums $got, unlimited $want"
done
overflow_series=$(grep -c '^flow_receive_packets_total{.*source_as="other"' "$TEST_TMP/limited.prom" || true)
((overflow_series > 0)) || fail "no overflow series in /metrics"

for name in go_all go_01 merged limited; do
	pid_var="${name}_PID"
	stop_pid "${!pid_var}" || fail "$name exited with $STOP_RC"
done
log "ok"
