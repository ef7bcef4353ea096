# Torn and corrupt checkpoints at start, end to end with the consumer group (issue 12). The exporter counts
# a chunk of 4 partitions with --state-dir and stops with SIGTERM (its last checkpoint made and committed).
# Then the log is left as a crash in the middle of the next checkpoint's write would leave it: a copy of its
# last checkpoint appended and cut inside its last record. The exporter starts again while the next chunk
# waits in Kafka: it reports the log torn, restores the checkpoint before the tear, resumes at the group's
# offsets and ends equal to the generator's sums. The same again with a copy whose bytes are whole but one
# flipped (corrupt, by its CRC).
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

SET="$TEST_TMP/set"
PARTITIONS=4
CHUNKS=3
push_set "$SET" 1616 "$PARTITIONS" 20 --chunks "$CHUNKS"
LOCAL=$(cat "$SET/local")
push_expect_chunks "$SET" "$CHUNKS"

start_mock --topic flows:$PARTITIONS
PORT=$(free_port)
LOG_FILE="$TEST_TMP/state/checkpoint"
ARGS=(--brokers="$BOOT" --topic=flows --asn="$LOCAL" --asn-names="$SET/asn.txt" --group=g
	--kafka-opt=session.timeout.ms=3000 --kafka-opt=heartbeat.interval.ms=500
	--kafka-opt=auto.offset.reset=earliest
	--state-dir="$TEST_TMP/state" --checkpoint-interval=200ms --flush-interval=50ms)

# damage MODE: appends a copy of the log's last checkpoint (from its BEGIN record to the end), cut 5 bytes
# before its end (MODE torn: inside the END record) or whole with one byte of its middle flipped (corrupt).
damage() {
	"$PYTHON" - "$LOG_FILE" "$1" <<'EOF'
import struct, sys
path, mode = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
at, last_begin = 12, None  # after the file header: records of type, length, payload, CRC
while at + 8 <= len(data):
    kind, length = struct.unpack_from("<II", data, at)
    if kind == 1:
        last_begin = at
    at += 8 + length + 4
assert last_begin is not None and at == len(data), "not a log of whole records"
copy = bytearray(data[last_begin:])
if mode == "torn":
    copy = copy[:-5]
else:
    copy[len(copy) // 2] ^= 0x40
open(path, "ab").write(copy)
print(len(data), len(copy))
EOF
}

# restart MODE CHUNK: stops the exporter, damages the log, starts it with CHUNK waiting in Kafka.
restart() {
	stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
	assert_clean_log "$TEST_TMP/exporter.log"
	mv "$TEST_TMP/exporter.log" "$TEST_TMP/exporter.before-$1.log"
	local sizes
	sizes=$(damage "$1") || fail "could not damage the checkpoint log"
	log "$1: a log of $(cut -d' ' -f1 <<<"$sizes") bytes, $(cut -d' ' -f2 <<<"$sizes") bytes of a checkpoint appended"
	produce_chunk "$2"
	start_exporter exporter "$PORT" "${ARGS[@]}"
	restored() { grep -q "restored .* from the newest checkpoint" "$TEST_TMP/exporter.log"; }
	wait_until 30 "a checkpoint restored" restored
	grep -q "checkpoint: .*/checkpoint is $1 after [1-9][0-9]* complete checkpoint(s)" "$TEST_TMP/exporter.log" ||
		fail "the $1 log was not reported: $(grep 'checkpoint:' "$TEST_TMP/exporter.log")"
	scrape "$PORT" "$TEST_TMP/after-$1.prom" || fail "/metrics did not answer"
	grep -q "^flow_exporter_checkpoint_load_errors_total{reason=\"$1\"} 1\$" "$TEST_TMP/after-$1.prom" ||
		fail "flow_exporter_checkpoint_load_errors_total{reason=\"$1\"} is not 1"
}

start_exporter exporter "$PORT" "${ARGS[@]}"
produce_chunk 0
wait_metrics "$PORT" "$TEST_TMP/expected0.prom" 60 "$TEST_TMP/expected0-counts.json"
log "chunk 0 exact"

restart torn 1
wait_metrics "$PORT" "$TEST_TMP/expected1.prom" 60 "$TEST_TMP/expected1-counts.json"
log "a torn checkpoint at start: reported, the one before restored, chunk 1 read from the group's offsets: exact"

restart corrupt 2
wait_metrics "$PORT" "$TEST_TMP/expected2.prom" 60 "$TEST_TMP/expected2-counts.json"
log "a corrupt checkpoint at start: reported, the one before restored, chunk 2: exact"

stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
