# --partitions with --state-dir (issue 12): with no consumer group, the checkpoint is the only record of
# where counting stopped. Records flow into 4 partitions; the exporter (--partitions=all) is killed with
# SIGKILL, records are produced while it is down, and it is started again with the same state: it resumes
# every partition where its checkpoint stops (not at the newest offset, as without a state dir), so
# /metrics ends equal to the generator's sums of everything produced, twice over (a SIGKILL, then a
# SIGTERM).
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

SET="$TEST_TMP/set"
PARTITIONS=4
CHUNKS=5
push_set "$SET" 1515 "$PARTITIONS" 20 --chunks "$CHUNKS"
LOCAL=$(cat "$SET/local")
push_expect_chunks "$SET" "$CHUNKS"

start_mock --topic flows:$PARTITIONS
PORT=$(free_port)
ARGS=(--brokers="$BOOT" --topic=flows --partitions=all --asn="$LOCAL" --asn-names="$SET/asn.txt"
	--state-dir="$TEST_TMP/state" --checkpoint-interval=200ms --flush-interval=50ms)
# From the "reads N partition(s) with W worker(s): M where the checkpoint stops" line: N (all) or M (resumed).
assigned_in_log() {
	grep -o 'reads [0-9]* partition(s)[^:]*: [0-9]* where' "$TEST_TMP/exporter.log" |
		awk -v resumed="$([[ $1 == resumed ]] && echo 1 || echo 0)" \
			'{ n += (resumed ? $(NF - 1) : $2) } END { print n + 0 }'
}
reading() { (($(assigned_in_log all) == PARTITIONS)); }
# restart SIGNAL: stops the exporter, produces the next chunk while it is down, starts it again.
restart() {
	if [[ $1 == KILL ]]; then
		kill -KILL "$exporter_PID"
		wait "$exporter_PID" 2>/dev/null || true
		forget_pid "$exporter_PID"
	else
		stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
	fi
	assert_clean_log "$TEST_TMP/exporter.log"
	mv "$TEST_TMP/exporter.log" "$TEST_TMP/exporter.$2.log"
	produce_chunk "$2"
	start_exporter exporter "$PORT" "${ARGS[@]}"
	wait_until 30 "the partitions assigned" reading
	(($(assigned_in_log resumed) == PARTITIONS)) ||
		fail "the partitions did not resume from the checkpoint: $(grep 'partition(s)' "$TEST_TMP/exporter.log")"
}

start_exporter exporter "$PORT" "${ARGS[@]}"
wait_until 30 "the partitions assigned" reading
produce_chunk 0
wait_metrics "$PORT" "$TEST_TMP/expected0.prom" 60 "$TEST_TMP/expected0-counts.json"
produce_chunk 1
wait_metrics "$PORT" "$TEST_TMP/expected1.prom" 60 "$TEST_TMP/expected1-counts.json"
log "chunks 0-1 exact"

restart KILL 2
wait_metrics "$PORT" "$TEST_TMP/expected2.prom" 60 "$TEST_TMP/expected2-counts.json"
log "SIGKILL, a chunk produced while down, restart: resumed from the checkpoint, exact"
restart TERM 3
wait_metrics "$PORT" "$TEST_TMP/expected3.prom" 60 "$TEST_TMP/expected3-counts.json"
log "SIGTERM, a chunk produced while down, restart: exact"
produce_chunk 4
wait_metrics "$PORT" "$TEST_TMP/expected4.prom" 60 "$TEST_TMP/expected4-counts.json"
log "and on: exact"
stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
