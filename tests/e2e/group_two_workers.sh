#!/bin/bash
# One group member per process: two exporters of two workers each in one consumer group on an 8-partition
# topic are two members, not four. Each logs one assignment of 4 partitions for its 2 workers (a process
# that were two members would log one per worker, and could get 3 or 5 of the 8), each reads 4 partitions
# (flow_exporter_kafka_assigned_partitions), and together they count exactly what was produced: every
# hostname names its partition, so the two expositions are disjoint and their union is compared, series by
# series, with the expectation. Records keep arriving in chunks, so both workers of both processes count.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

LOCAL_ASNS=64496,4200000001,65551
SET="$TEST_TMP/set"
PARTITIONS=8
CHUNKS=4
MESSAGES=40

"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 815 --partitions "$PARTITIONS" --chunks "$CHUNKS" \
	--messages "$MESSAGES" --local "$LOCAL_ASNS" --host-per-partition
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --out "$TEST_TMP/expected.prom"

start_mock --topic flows:$PARTITIONS
common_args=(--brokers="$BOOT" --topic=flows --group=two-workers --asn="$LOCAL_ASNS" --asn-names="$SET/asn.txt"
	--workers=2 --kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest)
PORT_A=$(free_port)
start_exporter a "$PORT_A" "${common_args[@]}"
PORT_B=$(free_port)
start_exporter b "$PORT_B" "${common_args[@]}"

# assigned PORT: the partitions the exporter on PORT reads now.
assigned() {
	scrape "$1" "$TEST_TMP/assigned.prom" || return 1
	"$PYTHON" "$METRICS_PY" sum "$TEST_TMP/assigned.prom" flow_exporter_kafka_assigned_partitions
}
four_each() {
	local a b
	a=$(assigned "$PORT_A") && b=$(assigned "$PORT_B") && ((a == 4 && b == 4))
}
wait_until 60 "both exporters to read 4 of the 8 partitions" four_each
log "partitions: a reads $(assigned "$PORT_A"), b reads $(assigned "$PORT_B")"

for ((c = 0; c < CHUNKS; c++)); do
	produce_chunk "$c"
	sleep 0.5
done

# union_matches: the flow series of both expositions, taken together, are exactly the expectation.
union_matches() {
	scrape "$PORT_A" "$TEST_TMP/a.prom" && scrape "$PORT_B" "$TEST_TMP/b.prom" || return 1
	"$PYTHON" "$METRICS_PY" combine union "$TEST_TMP/expected.prom" "$TEST_TMP/a.prom" "$TEST_TMP/b.prom" \
		>"$TEST_TMP/union.diff" 2>&1
}
deadline=$((SECONDS + 60))
until union_matches; do
	if ((SECONDS >= deadline)); then
		cat "$TEST_TMP/union.diff" >&2
		fail "the two exporters together do not count exactly what was produced"
	fi
	sleep 0.5
done
log "a and b together counted every record exactly once"
for e in a b; do
	n=$(grep -c "kafka: assigned [0-9]* partition(s) for 2 worker(s)" "$TEST_TMP/$e.log" || true)
	grep -q "kafka: assigned 4 partition(s) for 2 worker(s)" "$TEST_TMP/$e.log" ||
		fail "$e: no single assignment of 4 partitions for its 2 workers in its log"
	log "$e: $n assignment(s) logged, the last: $(grep "kafka: assigned" "$TEST_TMP/$e.log" | tail -1)"
done
((($(assigned "$PORT_A") + $(assigned "$PORT_B")) == PARTITIONS)) || fail "the 8 partitions are not all read"

stop_pid "$a_PID" TERM 15 || fail "a exited $STOP_RC after SIGTERM (want 0)"
stop_pid "$b_PID" TERM 15 || fail "b exited $STOP_RC after SIGTERM (want 0)"
assert_clean_log "$TEST_TMP/a.log"
assert_clean_log "$TEST_TMP/b.log"
log "ok"
