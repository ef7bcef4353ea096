# Group restart: exporter A counts a first batch, then is stopped with SIGTERM while a second batch is
# being produced; exporter B joins the same group and must count exactly the records at and after the
# offsets A committed: nothing lost, nothing twice.
#
# Every hostname of the generated set names its partition, so the counters of one partition can be told
# apart in /metrics: A's last scrape before SIGTERM must be the sum of a prefix of each partition, and A's
# committed offsets must cover at least that prefix (what was counted is committed at shutdown).
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

LOCAL_ASNS=64496,4200000001,65551
SET="$TEST_TMP/set"
PARTITIONS=4
CHUNKS=8 # chunk 0 is the first batch; 1..7 are produced while A runs
MESSAGES=60
KAFKA_OPTS=(--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest)

"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 4242 --partitions "$PARTITIONS" --chunks "$CHUNKS" \
	--messages "$MESSAGES" --local "$LOCAL_ASNS" --host-per-partition
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --chunks 0 --out "$TEST_TMP/expected-a.prom" \
	--counts-out "$TEST_TMP/expected-a-counts.json"

start_mock --topic flows:$PARTITIONS
for ((p = 0; p < PARTITIONS; p++)); do
	must_mock produce flows "$p" "$SET/chunk0.p$p.msg"
done

PORT_A=$(free_port)
start_exporter A "$PORT_A" --brokers="$BOOT" --topic=flows --asn="$LOCAL_ASNS" --asn-names="$SET/asn.txt" \
	--group=g "${KAFKA_OPTS[@]}"
wait_metrics "$PORT_A" "$TEST_TMP/expected-a.prom" 60 "$TEST_TMP/expected-a-counts.json"
log "A counted the first batch exactly"

# The second batch, chunk after chunk, in the background. Only this subshell talks to the mock until it
# is waited for.
PROGRESS="$TEST_TMP/produced"
echo 0 >"$PROGRESS"
(
	for ((c = 1; c < CHUNKS; c++)); do
		for ((p = 0; p < PARTITIONS; p++)); do
			mock_cmd produce flows "$p" "$SET/chunk$c.p$p.msg" || {
				log "produce chunk $c partition $p: $MOCK_REPLY"
				exit 1
			}
		done
		echo "$c" >"$PROGRESS"
		sleep 1
	done
) &
PRODUCER=$!
STARTED_PIDS+=("$PRODUCER")

# Mid-stream: after three chunks of the second batch, while more are coming.
produced_at_least() { (($(cat "$PROGRESS") >= $1)); }
wait_until 60 "three chunks of the second batch produced" produced_at_least 3
scrape "$PORT_A" "$TEST_TMP/a-last.prom" || fail "A: /metrics failed"
stop_pid "$A_PID" TERM 10 || fail "A exited with status $STOP_RC after SIGTERM (want 0)"
log "A stopped with status 0 after ${STOP_MS} ms, after chunk $(cat "$PROGRESS") was produced"
((STOP_MS <= 5000)) || fail "A took ${STOP_MS} ms to stop (want <= 5000)"
assert_clean_log "$TEST_TMP/A.log"

wait_pid "$PRODUCER" 120 || fail "the background producer failed"
[[ $(cat "$PROGRESS") == $((CHUNKS - 1)) ]] || fail "the background producer stopped early"

must_mock watermarks flows $PARTITIONS
for ((p = 0; p < PARTITIONS; p++)); do
	[[ $(reply_field p$p) == $((CHUNKS * MESSAGES)) ]] || fail "partition $p holds $MOCK_REPLY messages, want $((CHUNKS * MESSAGES))"
done

must_mock committed g flows $PARTITIONS
COMMITTED=${MOCK_REPLY#OK }
log "A committed: $COMMITTED"

# What A had counted just before SIGTERM is a prefix of every partition, and is covered by the commit.
prefix=$("$PYTHON" "$FLOWS_PY" prefix --manifest "$SET/manifest.json" --metrics "$TEST_TMP/a-last.prom") ||
	fail "A's last /metrics is not the sum of a prefix of each partition: $prefix"
log "A's last scrape covers messages: $prefix"
for ((p = 0; p < PARTITIONS; p++)); do
	committed=$(reply_field p$p)
	for word in $prefix; do
		[[ $word == "p$p="* ]] || continue
		low=${word#*=}
		low=${low%-*}
		((committed >= low)) || fail "partition $p: A counted $low messages before SIGTERM but committed only $committed (B will count them again)"
		((committed <= CHUNKS * MESSAGES)) || fail "partition $p: committed offset $committed is past the end"
	done
done

# B starts where A's commits say, and must count exactly the records from there on.
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --from "$COMMITTED" \
	--out "$TEST_TMP/expected-b.prom" --counts-out "$TEST_TMP/expected-b-counts.json"
PORT_B=$(free_port)
start_exporter B "$PORT_B" --brokers="$BOOT" --topic=flows --asn="$LOCAL_ASNS" --asn-names="$SET/asn.txt" \
	--group=g "${KAFKA_OPTS[@]}"
wait_metrics "$PORT_B" "$TEST_TMP/expected-b.prom" 90 "$TEST_TMP/expected-b-counts.json"
sleep 2
assert_metrics "$PORT_B" "$TEST_TMP/expected-b.prom"
scrape "$PORT_B" "$TEST_TMP/b-final.prom" || fail "B: /metrics failed"
if ! "$PYTHON" "$METRICS_PY" self-check "$TEST_TMP/b-final.prom" "$TEST_TMP/expected-b-counts.json" >&2; then
	fail "B's record self-metrics differ from the records after the committed offsets"
fi
log "B counted exactly the records after A's commits"

stop_pid "$B_PID" TERM 10 || fail "B exited with status $STOP_RC after SIGTERM (want 0)"
assert_clean_log "$TEST_TMP/B.log"

# B committed everything it counted: the whole topic.
must_mock committed g flows $PARTITIONS
for ((p = 0; p < PARTITIONS; p++)); do
	[[ $(reply_field p$p) == $((CHUNKS * MESSAGES)) ]] || fail "after B: committed $MOCK_REPLY, want $((CHUNKS * MESSAGES)) everywhere"
done
stop_mock
