#!/bin/bash
# Scale-out: two exporters in one consumer group (same --group, different --addr ports, so distinct default
# instance labels) push to the same real Prometheus 2.42 every second while records keep arriving (one
# chunk of a flows.py set a second into 4 partitions; every hostname names its partition). Kafka splits the
# partitions between them and the TSDB adds their series up:
# 1. with both running, `sum by (hostname)` of every flow family over both instances equals the exact
#    totals of what was produced, and both instances contributed;
# 2. one exporter is stopped gracefully (SIGTERM, exit 0) while records keep arriving: the other takes over
#    all four partitions, and the last value each instance pushed,
#    `sum by (hostname) (last_over_time(<family>[10m]))` (and the plain sum), equals the exact totals of
#    everything produced: nothing lost, nothing counted twice. The group's committed offsets reach the end
#    of every partition.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

CHUNKS=16
PHASE1=6 # chunks 0..5 with both exporters running
SET="$TEST_TMP/set"
push_set "$SET" 8080 4 12 --chunks "$CHUNKS" --host-per-partition

start_mock --topic flows:4
PROM_PORT=$(free_port)
start_prometheus prom "$PROM_PORT" "$TEST_TMP/tsdb"
PROM="http://127.0.0.1:$PROM_PORT"

common_args=(--brokers="$BOOT" --topic=flows --group=push-scale-out --asn="$(cat "$SET/local")"
	--asn-names="$SET/asn.txt" --kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
	--remote-write-url="$PROM/api/v1/write" --push-interval=1s --shutdown-timeout=10s)
PORT_A=$(free_port)
start_exporter a "$PORT_A" "${common_args[@]}"
PORT_B=$(free_port)
start_exporter b "$PORT_B" "${common_args[@]}"
INSTANCE_A="$(hostname):$PORT_A"
INSTANCE_B="$(hostname):$PORT_B"

# assigned PORT: the partitions the exporter on PORT reads now.
assigned() {
	exporter_value "$1" flow_exporter_kafka_assigned_partitions
}
both_assigned() {
	local a b
	a=$(assigned "$PORT_A") && b=$(assigned "$PORT_B") && ((a > 0 && b > 0 && a + b == 4))
}
wait_until 60 "both exporters to share the 4 partitions" both_assigned
log "partitions: a reads $(assigned "$PORT_A"), b reads $(assigned "$PORT_B")"

# ---- phase 1: both running ------------------------------------------------------------------------------
for ((c = 0; c < PHASE1; c++)); do
	produce_chunk "$c"
	sleep 1
done
push_expect "$SET" "$TEST_TMP/phase1" --chunks "$(seq -s, 0 $((PHASE1 - 1)))"
wait_totals "sum over both instances (chunks 0-$((PHASE1 - 1)))" "$PROM" "$TEST_TMP/phase1.hosts.json" 60
by_instance=$("$PYTHON" "$PUSH_PY" vector "$PROM" 'count by (instance) (flow_receive_bytes_total)')
log "series by instance: $by_instance"
"$PYTHON" - "$by_instance" "$INSTANCE_A" "$INSTANCE_B" <<'EOF' || fail "both instances must have pushed flow series, and only they"
import json, sys
got = json.loads(sys.argv[1])
want = {"instance=%s" % sys.argv[2], "instance=%s" % sys.argv[3]}
sys.exit(0 if set(got) == want and all(int(v) > 0 for v in got.values()) else 1)
EOF
log "phase 1: the sum over instances $INSTANCE_A and $INSTANCE_B is exact"

# ---- phase 2: a leaves while records keep arriving ------------------------------------------------------
produce_chunk "$PHASE1"
produce_chunk $((PHASE1 + 1))
log "SIGTERM to a (pid $a_PID) while records keep arriving"
kill -TERM "$a_PID"
produce_chunk $((PHASE1 + 2))
wait_pid "$a_PID" 30 || fail "a exited $STOP_RC after SIGTERM (want 0)"
log "a exited 0 after ${STOP_MS} ms"
assert_clean_log "$TEST_TMP/a.log"
for ((c = PHASE1 + 3; c < CHUNKS; c++)); do
	produce_chunk "$c"
	sleep 1
done
b_reads_all() {
	local n
	n=$(assigned "$PORT_B") && ((n == 4))
}
wait_until 60 "b to read all 4 partitions" b_reads_all
log "b reads all 4 partitions"

push_expect "$SET" "$TEST_TMP/all"
LAST='sum by (hostname) (last_over_time({family}[10m]))'
wait_totals "last values of both instances" "$PROM" "$TEST_TMP/all.hosts.json" 90 "$LAST"
totals_match "$PROM" "$TEST_TMP/all.sum.json" 'sum(last_over_time({family}[10m]))' || {
	cat "$TEST_TMP/totals.diff" >&2
	fail "sum(last_over_time(...[10m])) differs from the exact total"
}
log "sum over both instances' last values is exact: nothing lost, nothing counted twice"

# Both instances still contribute (a's final values were kept), and b alone went on counting.
by_instance=$("$PYTHON" "$PUSH_PY" vector "$PROM" 'sum by (instance) (last_over_time(flow_receive_bytes_total[10m]))')
log "last receive bytes by instance: $by_instance"
[[ $by_instance == *"instance=$INSTANCE_A\""* && $by_instance == *"instance=$INSTANCE_B\""* ]] ||
	fail "want both instances in the last values: $by_instance"

# Nothing counted late (a rebalance reading something twice would show now): still exact a few pushes on.
sleep 3
totals_match "$PROM" "$TEST_TMP/all.hosts.json" "$LAST" || {
	cat "$TEST_TMP/totals.diff" >&2
	fail "the totals changed after they were exact"
}
stop_pid "$b_PID" TERM 30 || fail "b exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/b.log"

# After b's SIGTERM, every message is counted and committed: the committed offsets are the end of every partition.
must_mock watermarks flows 4
high=$MOCK_REPLY
must_mock committed push-scale-out flows 4
log "high watermarks: ${high#OK }; committed: ${MOCK_REPLY#OK }"
[[ ${MOCK_REPLY#OK } == "${high#OK }" ]] || fail "committed offsets ${MOCK_REPLY#OK } are not the ends ${high#OK }"
