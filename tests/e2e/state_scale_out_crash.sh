#!/bin/bash
# Scale-out with a crash (issue 12): two exporters in one consumer group, each with its own --state-dir,
# push to the same real Prometheus 2.42 every second while records keep arriving (a chunk of a flows.py
# set every second or so into 4 partitions; every hostname names its partition). One is SIGKILLed while
# records flow, the other takes its partitions over from the group's committed offsets (which never run
# ahead of what the killed one had made durable and exposed), and 30 s later the killed one is restarted
# with its state: it resumes its counters (no reset) and the partitions it gets back where the group is.
# At the end `sum(last_over_time(<family>[10m]))` over both instances, and by hostname, equals the exact
# totals of everything produced: nothing lost, nothing counted twice.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

CHUNKS=24
SET="$TEST_TMP/set"
push_set "$SET" 9191 4 10 --chunks "$CHUNKS" --host-per-partition

start_mock --topic flows:4
PROM_PORT=$(free_port)
start_prometheus prom "$PROM_PORT" "$TEST_TMP/tsdb"
PROM="http://127.0.0.1:$PROM_PORT"

common_args=(--brokers="$BOOT" --topic=flows --group=state-scale-out --asn="$(cat "$SET/local")"
	--asn-names="$SET/asn.txt" --kafka-opt=session.timeout.ms=6000 --kafka-opt=heartbeat.interval.ms=500
	--kafka-opt=auto.offset.reset=earliest --remote-write-url="$PROM/api/v1/write" --push-interval=1s
	--checkpoint-interval=200ms --flush-interval=50ms --shutdown-timeout=10s)
PORT_A=$(free_port)
PORT_B=$(free_port)
start_a() { start_exporter a "$PORT_A" "${common_args[@]}" --state-dir="$TEST_TMP/state-a"; }
start_a
start_exporter b "$PORT_B" "${common_args[@]}" --state-dir="$TEST_TMP/state-b"
INSTANCE_A="$(hostname):$PORT_A"

assigned() { exporter_value "$1" flow_exporter_kafka_assigned_partitions; }
both_assigned() {
	local a b
	a=$(assigned "$PORT_A") && b=$(assigned "$PORT_B") && ((a > 0 && b > 0 && a + b == 4))
}
wait_until 60 "both exporters to share the 4 partitions" both_assigned
log "partitions: a reads $(assigned "$PORT_A"), b reads $(assigned "$PORT_B")"

c=0
for (( ; c < 4; c++)); do
	produce_chunk "$c"
	sleep 1
done
push_expect "$SET" "$TEST_TMP/phase1" --chunks "$(seq -s, 0 3)"
wait_totals "sum over both instances (chunks 0-3)" "$PROM" "$TEST_TMP/phase1.hosts.json" 60
log "phase 1: the sum over both instances is exact"

# ---- a is SIGKILLed in the middle of the flow and stays down 30 s ---------------------------------------
produce_chunk $((c++))
log "SIGKILL to a (pid $a_PID) while records arrive"
kill -KILL "$a_PID"
produce_chunk $((c++))
wait "$a_PID" 2>/dev/null || true
forget_pid "$a_PID"
assert_clean_log "$TEST_TMP/a.log"
mv "$TEST_TMP/a.log" "$TEST_TMP/a.1.log"
down_since=$SECONDS
while ((SECONDS - down_since < 30)); do
	((c < CHUNKS - 4)) && produce_chunk $((c++))
	sleep 2
done
b_read_all() {
	local n
	n=$(assigned "$PORT_B") && ((n == 4))
}
b_read_all || fail "b did not take a's partitions over within 30 s"
log "b took a's partitions over; restarting a with its state after $((SECONDS - down_since)) s"

# ---- a comes back with its state --------------------------------------------------------------------------
start_a
grep -q "restored .* from the newest checkpoint" "$TEST_TMP/a.log" ||
	fail "a did not restore its checkpoint: $(grep -i checkpoint "$TEST_TMP/a.log" | head -3)"
wait_until 60 "both exporters to share the 4 partitions again" both_assigned
for (( ; c < CHUNKS; c++)); do
	produce_chunk "$c"
	sleep 1
done

push_expect "$SET" "$TEST_TMP/all"
LAST='sum by (hostname) (last_over_time({family}[10m]))'
wait_totals "last values of both instances" "$PROM" "$TEST_TMP/all.hosts.json" 90 "$LAST"
totals_match "$PROM" "$TEST_TMP/all.sum.json" 'sum(last_over_time({family}[10m]))' || {
	cat "$TEST_TMP/totals.diff" >&2
	fail "sum(last_over_time(...[10m])) differs from the exact total"
}
log "sum over both instances' last values is exact after the crash: nothing lost, nothing counted twice"

# a resumed its counters: no flow series of a was ever reset in the TSDB.
resets=$("$PYTHON" "$PUSH_PY" vector "$PROM" "sum(resets(flow_receive_bytes_total{instance=\"$INSTANCE_A\"}[10m])) + sum(resets(flow_transmit_bytes_total{instance=\"$INSTANCE_A\"}[10m]))")
log "resets() of a's byte series: $resets"
[[ $resets == *'"": "0"'* || $resets == *'": "0"'* ]] || fail "a's series were reset: $resets"

sleep 3 # still exact a few pushes on (a late double count would show now)
totals_match "$PROM" "$TEST_TMP/all.hosts.json" "$LAST" || {
	cat "$TEST_TMP/totals.diff" >&2
	fail "the totals changed after they were exact"
}
stop_pid "$a_PID" TERM 30 || fail "a exited $STOP_RC after SIGTERM"
stop_pid "$b_PID" TERM 30 || fail "b exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/a.log"
assert_clean_log "$TEST_TMP/b.log"
stop_mock
