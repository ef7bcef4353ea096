# Disk faults (issue 12): the state directory is a tiny ext4 file system of the test's own (a loop-mounted
# image, errors=remount-ro). Records flow while it fills up, and later while it turns read-only (ext4's
# trigger_fs_error: what a failing disk does): each time the exporter keeps serving and counting (every
# record produced is read), reports the failure (checkpoint_healthy 0, checkpoints_total{result="failure"}
# grows, the error logged) and exposes nothing newer than its last durable checkpoint. Once space returns
# it ends exact; the read-only file system is repaired the way an operator would (the exporter is killed,
# the file system checked and mounted again) and the restart restores the last good checkpoint and ends
# exact. Needs root (mount, loop devices), as CI has.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

STATE="$TEST_TMP/state"
IMAGE="$TEST_TMP/state.img"
mkdir -p "$STATE"
truncate -s 8M "$IMAGE"
mkfs.ext4 -q -F -m 0 "$IMAGE" || fail "mkfs.ext4 $IMAGE"
mount_state() { mount -o loop,errors=remount-ro "$IMAGE" "$STATE" || fail "cannot mount $IMAGE (root needed)"; }
mount_state
# Unmounted by common.sh's trap once the processes are stopped (the loop device goes with it).
CLEANUP_COMMANDS+=('umount -l "$STATE" 2>/dev/null')

SET="$TEST_TMP/set"
PARTITIONS=4
CHUNKS=4
push_set "$SET" 1414 "$PARTITIONS" 25 --chunks "$CHUNKS"
LOCAL=$(cat "$SET/local")
push_expect_chunks "$SET" "$CHUNKS"

start_mock --topic flows:$PARTITIONS
PORT=$(free_port)
ARGS=(--brokers="$BOOT" --topic=flows --asn="$LOCAL" --asn-names="$SET/asn.txt" --group=g
	--kafka-opt=session.timeout.ms=3000 --kafka-opt=heartbeat.interval.ms=500
	--kafka-opt=auto.offset.reset=earliest
	--state-dir="$STATE" --checkpoint-interval=200ms --flush-interval=50ms)
value() { # value NAME [LABEL=VALUE...]: from a fresh scrape
	scrape "$PORT" "$TEST_TMP/now.prom" || return 1
	"$PYTHON" "$METRICS_PY" sum "$TEST_TMP/now.prom" "$@"
}
healthy_is() { [[ $(value flow_exporter_checkpoint_healthy) == "$1" ]]; }
# Every record produced has been read (no partition lags) and the records read grew past $1.
read_all_past() {
	local records lag
	records=$(value flow_exporter_records_total) || return 1
	lag=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/now.prom" flow_exporter_kafka_consumer_lag)
	((records > $1 && lag == 0))
}

start_exporter exporter "$PORT" "${ARGS[@]}"
produce_chunk 0
wait_metrics "$PORT" "$TEST_TMP/expected0.prom" 60 "$TEST_TMP/expected0-counts.json"
healthy_is 1 || fail "checkpoints unhealthy before any fault"
log "chunk 0 exact and durable"

# run_fault NAME CHUNK BREAK REPAIR (two functions). Breaks the disk, sends CHUNK, checks the exporter counts it but
# exposes nothing past the last durable checkpoint, repairs the disk, and waits until it is exact again.
run_fault() {
	local name=$1 chunk=$2 break_cmd=$3 repair_cmd=$4 failures records
	failures=$(value flow_exporter_checkpoints_total result=failure)
	records=$(value flow_exporter_records_total)
	"$break_cmd"
	produce_chunk "$chunk" # a checkpoint is written when something changed
	wait_until 20 "a failed checkpoint ($name)" healthy_is 0
	wait_until 30 "the records sent to the $name disk counted" read_all_past "$records"
	# Counting went on; what is exposed stayed at the last durable checkpoint (the previous chunk).
	assert_metrics "$PORT" "$TEST_TMP/expected$((chunk - 1)).prom"
	(($(value flow_exporter_checkpoints_total result=failure) > failures)) ||
		fail "the $name disk's failures were not counted"
	assert_alive "$exporter_PID" "the exporter on a $name disk"
	log "$name disk: serving, counting ($records -> $(value flow_exporter_records_total) records read), exposing the last durable values, failure counted"
	"$repair_cmd"
	# Unexposed records are not lost: they are exposed once a checkpoint succeeds (or, after a restart,
	# read again from the group's committed offsets).
	wait_metrics "$PORT" "$TEST_TMP/expected$chunk.prom" 60 "$TEST_TMP/expected$chunk-counts.json"
	healthy_is 1 || fail "checkpoints still unhealthy after the $name disk was repaired"
	log "$name disk repaired: exact"
}

# The fillers take every block left (dd stops at ENOSPC; the second one takes what is less than 64 KiB), so
# the next checkpoint cannot be written.
fill_up() {
	dd if=/dev/zero of="$STATE/filler" bs=64k 2>/dev/null || true
	dd if=/dev/zero of="$STATE/filler2" bs=1k 2>/dev/null || true
}
make_room() { rm -f "$STATE/filler" "$STATE/filler2"; }
run_fault full 1 fill_up make_room
grep -q -i "no space left" "$TEST_TMP/exporter.log" || fail "the full disk was not logged"

# Read-only: ext4 declares an error and remounts itself read-only; nothing can be written until it is
# checked and mounted again, which is done with the exporter stopped (SIGKILL: no final checkpoint).
DEVICE=$(findmnt -n -o SOURCE "$STATE")
make_read_only() { echo fx-test >"/sys/fs/ext4/$(basename "$DEVICE")/trigger_fs_error"; }
repair_read_only() {
	kill -KILL "$exporter_PID"
	wait "$exporter_PID" 2>/dev/null || true
	forget_pid "$exporter_PID"
	assert_clean_log "$TEST_TMP/exporter.log"
	mv "$TEST_TMP/exporter.log" "$TEST_TMP/exporter.1.log"
	umount "$STATE" || fail "umount $STATE"
	local rc=0
	e2fsck -f -y "$IMAGE" >"$TEST_TMP/e2fsck.log" 2>&1 || rc=$?
	((rc < 4)) || fail "e2fsck could not repair $IMAGE (exit $rc)"
	mount_state
	start_exporter exporter "$PORT" "${ARGS[@]}"
}
run_fault read-only 2 make_read_only repair_read_only
grep -q -i "read-only file system" "$TEST_TMP/exporter.1.log" || fail "the read-only disk was not logged"
[[ $(value flow_exporter_checkpoint_restored checkpoint=newest) == 1 ]] ||
	fail "the restart did not restore the newest checkpoint"

# And on from there: the last chunk, exact.
produce_chunk 3
wait_metrics "$PORT" "$TEST_TMP/expected3.prom" 60 "$TEST_TMP/expected3-counts.json"
healthy_is 1 || fail "checkpoints unhealthy at the end"
log "after the repair and restart: restored the newest checkpoint, exact"
stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
