#!/bin/bash
# Durable mode (--state-dir) on the one-handle consumer through a rebalance: exporter a (2 workers) counts
# a backlog of 8 partitions alone and checkpoints it (its commits go through its one handle); exporter b (2
# workers, a state directory of its own) joins, a loses half of the partitions at a revocation that fences
# its workers and checkpoints, and b starts them at the offsets a committed (resume_positions takes the
# later of the group's and the restored checkpoint's). More records follow while both count; at the end
# the sum of the two expositions (every hostname names its partition; a keeps exposing the counts of the
# partitions it gave up) is exactly what was produced: nothing counted twice, nothing lost.
#
# a is idle when b joins, on purpose: librdkafka 2.0.2's mock cluster refuses every commit while the group
# rebalances (REBALANCE_IN_PROGRESS), so the commit of the checkpoint made at the revocation fails there
# (with one handle or with one per worker, as on main before issue 15), and records counted since the last
# periodic checkpoint would then be counted again by the new owner. A Kafka broker accepts commits of the
# current generation until the member rejoins.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

LOCAL_ASNS=64496,4200000001,65551
SET="$TEST_TMP/set"
PARTITIONS=8
CHUNKS=6
MESSAGES=150

"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 1512 --partitions "$PARTITIONS" --chunks "$CHUNKS" \
	--messages "$MESSAGES" --local "$LOCAL_ASNS" --host-per-partition
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --out "$TEST_TMP/expected.prom"

start_mock --topic flows:$PARTITIONS
common_args=(--brokers="$BOOT" --topic=flows --group=durable-rebalance --asn="$LOCAL_ASNS"
	--asn-names="$SET/asn.txt" --workers=2 --flush-interval=50ms --checkpoint-interval=200ms
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=heartbeat.interval.ms=500
	--kafka-opt=auto.offset.reset=earliest)
PORT_A=$(free_port)
start_exporter a "$PORT_A" "${common_args[@]}" --state-dir="$TEST_TMP/state-a"
ready_a() { curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$PORT_A/-/ready"; }
wait_until 30 "a to be assigned its partitions" ready_a

for ((c = 0; c < CHUNKS / 2; c++)); do
	produce_chunk "$c"
done
# counted PORT: the records the exporter on PORT has counted so far (not only checkpointed).
counted() {
	scrape "$1" "$TEST_TMP/counted.prom" || return 1
	"$PYTHON" "$METRICS_PY" sum "$TEST_TMP/counted.prom" flow_exporter_records_counted_total
}
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --chunks 0,1,2 --out "$TEST_TMP/first.prom"
wait_metrics "$PORT_A" "$TEST_TMP/first.prom" 60
log "a counted and checkpointed the first half ($(counted "$PORT_A") records) before b joins"

PORT_B=$(free_port)
start_exporter b "$PORT_B" "${common_args[@]}" --state-dir="$TEST_TMP/state-b"
# Idle until the rebalance is over (b assigned, a assigned again after its revocation): a record a counts
# during the rebalance would be counted again by b (see above: the mock refuses the revocation's commit).
ready_b() { curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$PORT_B/-/ready"; }
a_rejoined() { grep -A1000 "kafka: lost [0-9]* partition(s)" "$TEST_TMP/a.log" | grep -q "kafka: assigned"; }
wait_until 30 "b to be assigned its partitions" ready_b
wait_until 30 "a to be assigned its share again" a_rejoined
for ((c = CHUNKS / 2; c < CHUNKS; c++)); do
	produce_chunk "$c"
	sleep 0.5
done

# sum_matches: the flow series of both expositions, added up, are exactly the expectation.
sum_matches() {
	scrape "$PORT_A" "$TEST_TMP/a.prom" && scrape "$PORT_B" "$TEST_TMP/b.prom" || return 1
	"$PYTHON" "$METRICS_PY" combine sum "$TEST_TMP/expected.prom" "$TEST_TMP/a.prom" "$TEST_TMP/b.prom" \
		>"$TEST_TMP/sum.diff" 2>&1
}
deadline=$((SECONDS + 60))
until sum_matches; do
	if ((SECONDS >= deadline)); then
		cat "$TEST_TMP/sum.diff" >&2
		fail "a and b together do not expose exactly what was produced"
	fi
	sleep 0.5
done
log "a and b together expose every record exactly once"
grep -q "kafka: lost [0-9]* partition(s)" "$TEST_TMP/a.log" || fail "a logged no revocation"
grep -q "did not finish its batch in time" "$TEST_TMP/a.log" && fail "a's workers did not park at the fence"
log "a: $(grep -c "kafka: lost" "$TEST_TMP/a.log") revocation(s), b: $(grep "kafka: assigned" "$TEST_TMP/b.log" | tail -1)"

stop_pid "$b_PID" TERM 15 || fail "b exited $STOP_RC after SIGTERM (want 0)"
stop_pid "$a_PID" TERM 15 || fail "a exited $STOP_RC after SIGTERM (want 0)"
assert_clean_log "$TEST_TMP/a.log"
assert_clean_log "$TEST_TMP/b.log"
log "ok"
