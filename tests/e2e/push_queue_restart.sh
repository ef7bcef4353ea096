#!/bin/bash
# Long outage with a restart (issue 12): the remote-write receiver is down far longer than the in-memory
# backlog holds (--push-backlog=2s, one push a second), and the exporter is restarted (SIGTERM, then started
# again with the same --state-dir) in the middle of the outage. The pushes the memory could not keep go to
# the disk queue (<state-dir>/push-queue); when the receiver, a real Prometheus 2.42, is back, they are sent
# oldest first: every series that existed before the outage has a sample for every push interval of the
# outage (except the seconds the exporter itself was down), the final `sum by (hostname)` of every flow
# family is exact, the disk queue drains to 0 and nothing was dropped.
# A second exporter, running meanwhile against a receiver that is down, has a queue bounded by
# --push-queue-max-bytes: the oldest requests are dropped, and what its self-metrics say was dropped and is
# queued equals what the segment files hold (read by tests/e2e/lib/push_queue.py, not the exporter: records
# marked dropped, records queued, their bytes); all dropped ones are older than every queued one, and when
# the project's rw_receiver comes up it gets every queued request and none of the dropped.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

QUEUE_PY="$FX_LIB_DIR/push_queue.py"
CHUNKS=16
SET="$TEST_TMP/set"
push_set "$SET" 1204 4 16 --chunks "$CHUNKS"
LOCAL=$(cat "$SET/local")

start_mock --topic flows:4
produce_chunks() { # FIRST LAST: one chunk a second
	local c
	for ((c = $1; c <= $2; c++)); do
		produce_chunk "$c"
		sleep 1
	done
}
metric() { # PORT NAME [LABEL=VALUE...]
	exporter_value "$@" || fail "scrape of $1 failed"
}

PROM_PORT=$(free_port)
PROM="http://127.0.0.1:$PROM_PORT"
PROM_URL="$PROM/api/v1/write"
start_prometheus prom "$PROM_PORT" "$TEST_TMP/tsdb"

PORT=$(free_port)
ARGS=(--brokers="$BOOT" --topic=flows --group=pq --asn="$LOCAL" --asn-names="$SET/asn.txt"
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
	--state-dir="$TEST_TMP/state" --checkpoint-interval=200ms
	--remote-write-url="$PROM_URL" --push-interval=1s --push-backlog=2s --shutdown-timeout=2s
	--external-label=instance=pq)
start_exporter exporter "$PORT" "${ARGS[@]}"

# ---- the bounded queue, in the background of the long outage ------------------------------------------
RW_PORT=$(free_port)
RW_URL="http://127.0.0.1:$RW_PORT/api/v1/write"
BPORT=$(free_port)
BOUND=16384
BOUNDED_ARGS=(--brokers="$BOOT" --topic=flows --group=pq-bounded --asn="$LOCAL" --asn-names="$SET/asn.txt"
	--labels=hostname --kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
	--remote-write-url="$RW_URL" --remote-write-protocol=1.0 --push-interval=1s --push-backlog=1s
	--push-queue-dir="$TEST_TMP/bounded-queue" --push-queue-max-bytes="$BOUND" --external-label=instance=bounded)
start_exporter bounded "$BPORT" "${BOUNDED_ARGS[@]}"

# check_bounded: the bounded queue's counters equal its files; then its receiver comes up and gets exactly
# the queued requests.
check_bounded() {
for ((try = 0; ; try++)); do
	scrape "$BPORT" "$TEST_TMP/bounded.a.prom" || fail "scrape failed"
	"$PYTHON" "$QUEUE_PY" scan "$TEST_TMP/bounded-queue" >"$TEST_TMP/bounded-scan.json"
	scrape "$BPORT" "$TEST_TMP/bounded.b.prom" || fail "scrape failed"
	a=$(grep '^flow_exporter_push_queue_' "$TEST_TMP/bounded.a.prom")
	b=$(grep '^flow_exporter_push_queue_' "$TEST_TMP/bounded.b.prom")
	[[ $a != "$b" ]] || break # no push in between: the scan saw what the counters say
	((try < 10)) || fail "the bounded queue never held still between two scrapes"
done
"$PYTHON" - "$TEST_TMP/bounded.a.prom" "$TEST_TMP/bounded-scan.json" "$RW_URL" "$BOUND" "$FX_LIB_DIR" <<'EOF' || fail "the bounded queue's counters differ from its files"
import json, subprocess, sys
sys.path.insert(0, sys.argv[5])
import metrics
samples = {}
for name, labels, value in metrics.parse(open(sys.argv[1]).read()):
    if labels.get("url") == sys.argv[3] and (name.startswith("flow_exporter_push_queue_") or
                                            (name == "flow_exporter_push_dropped_batches_total" and labels.get("reason") == "backlog_full")):
        samples[name] = int(float(value))
scan = json.load(open(sys.argv[2]))
bound = int(sys.argv[4])
print("counters: %s" % samples, file=sys.stderr)
print("files: queued %d (%d bytes), dropped %d (%d bytes), %d segment(s), %d bad" % (
    scan["queued"], scan["queued_bytes"], scan["sent"], scan["sent_bytes"], scan["segments"], scan["bad"]), file=sys.stderr)
problems = []
def same(what, got, want):
    if got != want:
        problems.append("%s: counters %s, files %s" % (what, got, want))
same("queued requests", samples.get("flow_exporter_push_queue_requests"), scan["queued"])
same("queued bytes", samples.get("flow_exporter_push_queue_bytes"), scan["queued_bytes"])
same("dropped requests", samples.get("flow_exporter_push_queue_dropped_requests_total"), scan["sent"])
same("dropped bytes", samples.get("flow_exporter_push_queue_dropped_bytes_total"), scan["sent_bytes"])
same("dropped batches (backlog_full)", samples.get("flow_exporter_push_dropped_batches_total"), scan["sent"])
if scan["sent"] < 3:
    problems.append("only %d requests dropped: the bound was not passed enough to prove anything" % scan["sent"])
if scan["queued_bytes"] > bound:
    problems.append("%d bytes queued, past the bound %d" % (scan["queued_bytes"], bound))
if scan["sent_ts"] and scan["queued_ts"] and max(scan["sent_ts"]) >= min(scan["queued_ts"]):
    problems.append("a dropped request is newer than a queued one: not oldest first")
if scan["bad"]:
    problems.append("%d bad regions" % scan["bad"])
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
log "bounded queue: the counters equal the files (dropped oldest first)"
	# Stopped, it keeps its queue (the memory's last pushes go to disk, dropping more of the oldest); the
	# files then hold still. Started again with its receiver up, it must send exactly what they queue.
	stop_pid "$bounded_PID" TERM 15 || fail "bounded exporter exited $STOP_RC after SIGTERM"
	mv "$TEST_TMP/bounded.log" "$TEST_TMP/bounded.1.log"
	"$PYTHON" "$QUEUE_PY" scan "$TEST_TMP/bounded-queue" >"$TEST_TMP/bounded-scan.json"
	start_bg receiver "$FX_TOOLS/rw_receiver" --port "$RW_PORT" --log "$TEST_TMP/receiver.jsonl"
	wait_until 15 "rw_receiver listening" grep -q '^LISTEN ' "$TEST_TMP/receiver.log"
	start_exporter bounded "$BPORT" "${BOUNDED_ARGS[@]}"
	bounded_drained() { [[ $(metric "$BPORT" flow_exporter_push_queue_requests "url=$RW_URL") == 0 ]]; }
	wait_until 30 "the bounded queue to drain" bounded_drained
	"$PYTHON" - "$TEST_TMP/receiver.jsonl" "$TEST_TMP/bounded-scan.json" <<'EOF' || fail "the receiver did not get exactly the queued requests"
import json, sys
got = set()
for line in open(sys.argv[1], encoding="utf-8"):
    request = json.loads(line)
    if request.get("violations"):
        raise SystemExit("receiver violations: %s" % request["violations"])
    got.update(s["ts"] for s in request.get("samples", []))
scan = json.load(open(sys.argv[2]))
missing = [t for t in scan["queued_ts"] if t not in got]
resent = [t for t in scan["sent_ts"] if t in got]
print("receiver: %d timestamps; queued %d all received: %s; dropped %d none received: %s"
      % (len(got), len(scan["queued_ts"]), not missing, len(scan["sent_ts"]), not resent), file=sys.stderr)
sys.exit(1 if missing or resent else 0)
EOF
log "the receiver got every queued request and none of the dropped ones"
}

# ---- before the outage ---------------------------------------------------------------------------------
produce_chunks 0 1
push_expect "$SET" "$TEST_TMP/before" --chunks 0,1
wait_totals "Prometheus before the outage" "$PROM" "$TEST_TMP/before.hosts.json" 60
sleep 2

# ---- the outage, first part ----------------------------------------------------------------------------
OUTAGE_START=$(now_s)
stop_pid "$prom_PID" TERM 30 || fail "Prometheus exited $STOP_RC after SIGTERM"
log "Prometheus stopped"
produce_chunks 2 6
queued=$(metric "$PORT" flow_exporter_push_queue_requests "url=$PROM_URL")
backlog=$(metric "$PORT" flow_exporter_push_backlog_requests "url=$PROM_URL")
log "before the restart: $queued requests on disk, $backlog in memory"
((queued >= 2)) || fail "only $queued requests on disk after a 5 s outage with a 2 s backlog"
check_bounded

# ---- the restart ---------------------------------------------------------------------------------------
STOP1=$(now_s)
stop_pid "$exporter_PID" TERM 15 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
mv "$TEST_TMP/exporter.log" "$TEST_TMP/exporter.1.log"
"$PYTHON" "$QUEUE_PY" scan "$TEST_TMP/state/push-queue" >"$TEST_TMP/scan1.json"
on_disk=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["queued"])' "$TEST_TMP/scan1.json")
log "stopped: $on_disk requests in the disk queue (memory included)"
((on_disk > queued)) || fail "the shutdown did not move the memory backlog to disk ($on_disk <= $queued)"
start_exporter exporter "$PORT" "${ARGS[@]}"
START2=$(now_s)
grep -q "requests (.* bytes) from a previous run" "$TEST_TMP/exporter.log" ||
	wait_until 10 "the queue of the previous run read" grep -q "from a previous run" "$TEST_TMP/exporter.log"

# ---- the outage, second part ---------------------------------------------------------------------------
produce_chunks 7 11
start_prometheus prom "$PROM_PORT" "$TEST_TMP/tsdb"
OUTAGE_END=$(now_s)
log "Prometheus back after $(awk "BEGIN { printf \"%.1f\", $OUTAGE_END - $OUTAGE_START }")s, exporter down $(awk "BEGIN { printf \"%.1f\", $START2 - $STOP1 }")s of it"
produce_chunks 12 $((CHUNKS - 1))
push_expect "$SET" "$TEST_TMP/all"
wait_totals "Prometheus after the outage" "$PROM" "$TEST_TMP/all.hosts.json" 60
log "final totals exact in Prometheus"
drained() {
	[[ $(metric "$PORT" flow_exporter_push_queue_requests "url=$PROM_URL") == 0 &&
		$(metric "$PORT" flow_exporter_push_backlog_requests "url=$PROM_URL") == 0 ]]
}
wait_until 30 "the disk queue to drain" drained
[[ $("$PYTHON" "$QUEUE_PY" scan "$TEST_TMP/state/push-queue" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["queued"])') == 0 ]] ||
	fail "records still queued on disk after the drain"

# ---- every push interval of the outage has its sample --------------------------------------------------
check_window() { # START END WHAT
	local intervals
	intervals=$(awk "BEGIN { printf \"%d\", $2 - $1 }")
	"$PYTHON" "$PUSH_PY" gaps "$PROM" 'flow_receive_bytes_total{instance="pq"}' "$1" "$2" >"$TEST_TMP/gaps.jsonl" ||
		fail "range query failed"
	"$PYTHON" - "$TEST_TMP/gaps.jsonl" "$intervals" "$3" <<'EOF' || fail "samples missing in the $3 (see above)"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
intervals, what = int(sys.argv[2]), sys.argv[3]
old = [r for r in rows if r["before"]]
# One push a second: a window of L seconds holds floor(L) or floor(L) + 1 of them, and one missing push
# leaves a gap of about 2 s (a stalled, late push a shorter one).
bad = [r for r in old if r["count"] < intervals or r["max_gap"] >= 1.9]
print("%s: %d series existed before; %d intervals; counts %d..%d; largest gap %.3fs"
      % (what, len(old), intervals, min((r["count"] for r in old), default=0),
         max((r["count"] for r in old), default=0), max((r["max_gap"] for r in old), default=0)), file=sys.stderr)
for r in bad[:10]:
    print("  %s: %d samples (want >= %d), largest gap %.3fs" % (r["series"], r["count"], intervals,
                                                                 r["max_gap"]), file=sys.stderr)
sys.exit(1 if bad or len(old) < 10 else 0)
EOF
}
sleep 1
# The first window ends a second after the SIGTERM: the final push (made after it, its values the last
# checkpoint) must be there too, written to disk at the shutdown.
check_window "$OUTAGE_START" "$(awk "BEGIN { printf \"%.3f\", $STOP1 + 1 }")" "outage before the restart"
check_window "$(awk "BEGIN { printf \"%.3f\", $START2 + 1 }")" "$(awk "BEGIN { printf \"%.3f\", $OUTAGE_END + 2 }")" \
	"outage after the restart"
log "no gap: a sample for every push interval of the outage, on both sides of the restart"

scrape "$PORT" "$TEST_TMP/final.prom" || fail "scrape failed"
for check in "flow_exporter_push_dropped_batches_total url=$PROM_URL" \
	"flow_exporter_push_requests_total url=$PROM_URL status_class=4xx" \
	"flow_exporter_push_queue_dropped_requests_total url=$PROM_URL" \
	"flow_exporter_push_queue_disk_errors_total url=$PROM_URL" \
	"flow_exporter_push_queue_corrupt_total url=$PROM_URL"; do
	# shellcheck disable=SC2086  # the name and the labels are separate words
	value=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/final.prom" $check)
	[[ $value == 0 ]] || fail "$check: $value (want 0)"
done

stop_pid "$bounded_PID" TERM 15 || fail "bounded exporter exited $STOP_RC after SIGTERM"
stop_pid "$exporter_PID" TERM 15 || fail "exporter exited $STOP_RC after SIGTERM"
for f in "$TEST_TMP"/exporter*.log "$TEST_TMP"/bounded*.log; do assert_clean_log "$f"; done
log "ok"
