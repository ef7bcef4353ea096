# Helpers every end-to-end test sources: a temporary directory, the mock Kafka cluster (tests/tools/fx_mock)
# driven over two fifos, the exporter as its own process, bounded waits, and a trap that stops only the
# processes this test started (by PID) and removes the directory.
#
# Environment (set by ctest, see tests/CMakeLists.txt): FX_BIN (the daemon), FX_TOOLS (the test tools),
# FX_TEST_DATA (tests/data), FX_SOURCE (the source tree). FX_KEEP_TMP=1 keeps the directory.
# Everything listens on 127.0.0.1. This file is sourced, not run: it is not a test by itself.
# shellcheck shell=bash disable=SC2034  # variables (FLOWS_PY, STOP_RC, ...) are for the tests

set -euo pipefail

: "${FX_BIN:?FX_BIN must name the flow-exporter binary}"
: "${FX_TOOLS:?FX_TOOLS must name the directory of the test tools}"
: "${FX_TEST_DATA:?FX_TEST_DATA must name tests/data}"

# The exporter also reads FLOW_EXPORTER_<FLAG> from the environment: a test sees only its own flags.
while read -r variable; do unset "$variable"; done < <(compgen -e | grep '^FLOW_EXPORTER_' || true)

FX_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=/usr/bin/python3
FLOWS_PY="$FX_LIB_DIR/flows.py"
METRICS_PY="$FX_LIB_DIR/metrics.py"
TEST_NAME=$(basename "$0" .sh)
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/fx-e2e-$TEST_NAME.XXXXXX")
STARTED_PIDS=()  # every process this test started and has not waited for yet
MOCK_PID=""
MOCK_IN=""       # fd: commands to the mock
MOCK_OUT=""      # fd: its answers
MOCK_REPLY=""    # the last answer of mock_cmd
BOOT=""          # the mock's bootstrap address

log() { printf '[%s %s] %s\n' "$(date +%T.%3N)" "$TEST_NAME" "$*" >&2; }

fail() {
	log "FAIL: $*"
	exit 1
}

# forget_pid PID: removes PID from the list the trap cleans up.
forget_pid() {
	local keep=() pid
	for pid in "${STARTED_PIDS[@]}"; do
		[[ $pid == "$1" ]] || keep+=("$pid")
	done
	STARTED_PIDS=("${keep[@]}")
}

# Commands the trap runs once the processes are stopped, before $TEST_TMP is removed (a test's mounts).
CLEANUP_COMMANDS=()

# dump_logs: the end of every log of the test, for a failure's diagnosis.
dump_logs() {
	local file
	for file in "$TEST_TMP"/*.log; do
		[[ -s $file ]] || continue
		printf '\n----- %s (last 40 lines) -----\n' "$(basename "$file")" >&2
		tail -n 40 "$file" | cut -c1-400 >&2
	done
}

cleanup() {
	local status=$? pid i reversed=()
	trap - EXIT
	# Newest first: the exporters stop while the mock cluster they talk to is still there.
	for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
		reversed+=("${STARTED_PIDS[i]}")
	done
	for pid in "${reversed[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
		sleep 0.2
	done
	for pid in "${reversed[@]}"; do
		local waited=0
		while kill -0 "$pid" 2>/dev/null && ((waited < 50)); do
			sleep 0.1
			waited=$((waited + 1))
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	for i in "${CLEANUP_COMMANDS[@]}"; do
		eval "$i" || true
	done
	if [[ -n $MOCK_IN ]]; then exec {MOCK_IN}>&- || true; fi
	if [[ -n $MOCK_OUT ]]; then exec {MOCK_OUT}<&- || true; fi
	if ((status != 0)); then
		dump_logs
		log "failed (exit $status); files in $TEST_TMP"
	elif [[ ${FX_KEEP_TMP:-0} == 1 ]]; then
		log "passed; files kept in $TEST_TMP"
	else
		rm -rf "$TEST_TMP"
		log "passed"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port: prints a TCP port of 127.0.0.1 that the kernel just handed out (bound to 0, then closed).
free_port() {
	"$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds; fails the test after
# SECONDS. The command's output is discarded.
wait_until() {
	local timeout=$1 what=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for: $what"
		sleep 0.2
	done
}

# start_mock [fx_mock options]: starts the mock cluster, sets MOCK_PID and BOOT.
start_mock() {
	local in="$TEST_TMP/mock.in" out="$TEST_TMP/mock.out" line
	mkfifo "$in" "$out"
	"$FX_TOOLS/fx_mock" "$@" <"$in" >"$out" 2>"$TEST_TMP/mock.log" &
	MOCK_PID=$!
	STARTED_PIDS+=("$MOCK_PID")
	# The child opens "in" first, then "out"; open them in the same order or both sides block.
	exec {MOCK_IN}>"$in"
	exec {MOCK_OUT}<"$out"
	read -r -t 15 -u "$MOCK_OUT" line || fail "fx_mock printed no BOOTSTRAP line"
	[[ $line == "BOOTSTRAP "* ]] || fail "fx_mock: unexpected first line: $line"
	BOOT=${line#BOOTSTRAP }
	log "mock cluster at $BOOT (pid $MOCK_PID)"
}

# mock_cmd COMMAND...: sends one command, sets MOCK_REPLY to the answer; returns 0 for OK, 1 for ERR.
# A mock that stops answering fails the test.
mock_cmd() {
	printf '%s\n' "$*" >&"$MOCK_IN" || fail "fx_mock is gone (command: $*)"
	read -r -t "${MOCK_TIMEOUT:-90}" -u "$MOCK_OUT" MOCK_REPLY || fail "fx_mock did not answer: $*"
	[[ $MOCK_REPLY == OK* ]]
}

# must_mock COMMAND...: mock_cmd that fails the test on ERR.
must_mock() {
	mock_cmd "$@" || fail "fx_mock: $* -> $MOCK_REPLY"
}

# produce_chunk C [SET [PARTITIONS]]: produces chunk C of a flows.py set (its chunkC.pP.msg files) into
# partitions 0 .. PARTITIONS-1 of the topic "flows" ($SET, and $PARTITIONS or 4, by default).
produce_chunk() {
	local chunk=$1 set=${2:-$SET} partitions=${3:-${PARTITIONS:-4}} p
	for ((p = 0; p < partitions; p++)); do
		must_mock produce flows "$p" "$set/chunk$chunk.p$p.msg"
	done
}

# stop_mock: "quit", then waits for it.
stop_mock() {
	mock_cmd quit || true
	stop_pid "$MOCK_PID" TERM 10 || true
}

# reply_field NAME: the value of NAME=VALUE in MOCK_REPLY ("OK p0=3 p1=-1001" -> reply_field p1 = -1001).
reply_field() {
	local word
	for word in $MOCK_REPLY; do
		if [[ $word == "$1="* ]]; then
			printf '%s\n' "${word#*=}"
			return 0
		fi
	done
	fail "no $1 in mock answer: $MOCK_REPLY"
}

# write_asn_names FILE: a small asn.txt, so that the exporter never fetches its default URL.
write_asn_names() {
	printf '15169\tGOOGLE - Google LLC, US\n13335\tCLOUDFLARENET - Cloudflare, Inc., US\n' >"$1"
}

# start_exporter NAME PORT ARGS...: runs "$FX_BIN" ARGS... --addr=127.0.0.1:PORT with its output in
# $TEST_TMP/NAME.log; sets the variable NAME_PID; waits until /-/healthy answers (20 s). ARGS must
# include --asn-names (a local file): the default URL is never fetched by a test.
start_exporter() {
	local name=$1 port=$2 pid
	shift 2
	local args=("$@" "--addr=127.0.0.1:$port")
	[[ " ${args[*]} " == *" --asn-names="* ]] || fail "start_exporter $name: pass --asn-names=<local file>"
	args+=("--asn-names-cache=$TEST_TMP/$name-asn-cache.txt")
	log "start $name: $FX_BIN ${args[*]}"
	(
		# The exporter must not hold the mock's command pipe open: the mock ends at its EOF.
		if [[ -n $MOCK_IN ]]; then exec {MOCK_IN}>&- {MOCK_OUT}<&-; fi
		# A background command of a non-interactive shell may start with SIGINT ignored; the shutdown
		# test sends SIGINT, so the exporter starts with the default disposition, as from a terminal.
		trap - INT QUIT
		exec "$FX_BIN" "${args[@]}"
	) >"$TEST_TMP/$name.log" 2>&1 &
	pid=$!
	STARTED_PIDS+=("$pid")
	printf -v "${name}_PID" '%s' "$pid"
	local deadline=$((SECONDS + 20))
	until curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$port/-/healthy" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || fail "$name exited during startup (see $name.log)"
		((SECONDS < deadline)) || fail "$name: /-/healthy did not answer within 20 s"
		sleep 0.1
	done
	log "$name is healthy (pid $pid, port $port)"
}

# scrape PORT FILE: /metrics into FILE; returns non-zero when the request fails.
scrape() {
	curl -fsS -m 5 -o "$2" "http://127.0.0.1:$1/metrics"
}

# metrics_match PORT EXPECTED: scrapes and compares the flow series exactly; keeps the last body and
# the differences in $TEST_TMP/last-scrape.{prom,diff}.
metrics_match() {
	scrape "$1" "$TEST_TMP/last-scrape.prom" || return 1
	"$PYTHON" "$METRICS_PY" compare "$TEST_TMP/last-scrape.prom" "$2" >"$TEST_TMP/last-scrape.diff" 2>&1
}

# wait_metrics PORT EXPECTED SECONDS [COUNTS]: waits until /metrics matches EXPECTED exactly; on timeout
# prints the last differences and fails. With COUNTS (flows.py expect --counts-out), it also shows how the
# record self-metrics differ, and fails at once when more Kafka messages were consumed than produced
# (something was read twice: the flow series can never come back down to the expectation).
wait_metrics() {
	local port=$1 expected=$2 timeout=$3 counts=${4:-}
	local deadline=$((SECONDS + timeout)) reason=""
	until metrics_match "$port" "$expected"; do
		if [[ -n $counts ]] && over_consumed "$TEST_TMP/last-scrape.prom" "$counts"; then
			reason="more Kafka messages consumed than produced"
			sleep 1 # let the flush show everything
			metrics_match "$port" "$expected" || true
		elif ((SECONDS >= deadline)); then
			reason="timed out after ${timeout}s"
		else
			sleep 0.5
			continue
		fi
		log "last differences from $(basename "$expected"):"
		cat "$TEST_TMP/last-scrape.diff" >&2 || true
		if [[ -n $counts ]]; then
			log "record self-metrics against $(basename "$counts"):"
			"$PYTHON" "$METRICS_PY" self-check "$TEST_TMP/last-scrape.prom" "$counts" >&2 || true
		fi
		fail "/metrics on $port does not match $(basename "$expected"): $reason"
	done
}

# over_consumed BODY COUNTS: true when flow_exporter_kafka_messages_total in BODY exceeds the messages
# in COUNTS.
over_consumed() {
	local consumed produced
	consumed=$("$PYTHON" "$METRICS_PY" get "$1" flow_exporter_kafka_messages_total 2>/dev/null) || return 1
	produced=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["messages"])' "$2")
	((consumed > produced))
}

# assert_metrics PORT EXPECTED: one scrape must match exactly.
assert_metrics() {
	if ! metrics_match "$1" "$2"; then
		cat "$TEST_TMP/last-scrape.diff" >&2 || true
		fail "/metrics on $1 no longer matches $(basename "$2")"
	fi
}

# wait_pid PID [SECONDS]: waits for a process this test started to exit by itself; sets STOP_RC (its exit
# status) and STOP_MS (how long the wait took). After SECONDS (10) it is killed with SIGKILL and the test
# fails. Returns STOP_RC.
wait_pid() {
	local pid=$1 timeout=${2:-10}
	local start end rc=0 marker="$TEST_TMP/killed.$pid"
	start=$(date +%s%N)
	# The watchdog polls in short sleeps so that killing it leaves no long sleep holding ctest's pipes.
	(
		for ((i = 0; i < timeout * 10; i++)); do
			sleep 0.1
			kill -0 "$pid" 2>/dev/null || exit 0
		done
		: >"$marker"
		kill -KILL "$pid" 2>/dev/null || true
	) >/dev/null 2>&1 &
	local watchdog=$!
	wait "$pid" || rc=$?
	end=$(date +%s%N)
	kill "$watchdog" 2>/dev/null || true
	wait "$watchdog" 2>/dev/null || true
	forget_pid "$pid"
	STOP_RC=$rc
	STOP_MS=$(((end - start) / 1000000))
	[[ ! -e $marker ]] || fail "pid $pid did not exit within ${timeout}s (killed)"
	return "$rc"
}

# stop_pid PID [SIGNAL [SECONDS]]: sends SIGNAL (TERM) to a process this test started, then wait_pid.
stop_pid() {
	kill -"${2:-TERM}" "$1" 2>/dev/null || true
	wait_pid "$1" "${3:-10}"
}

# assert_alive PID WHAT
assert_alive() {
	kill -0 "$1" 2>/dev/null || fail "$2 (pid $1) is not running"
}

# assert_clean_log FILE: no sanitizer report, crash or assertion in an exporter's log.
assert_clean_log() {
	if grep -E -n 'AddressSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:|Assertion .* failed|Segmentation fault|LeakSanitizer' "$1" >&2; then
		fail "$(basename "$1") reports a crash or a sanitizer finding"
	fi
}
