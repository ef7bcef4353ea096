#!/bin/bash
# An outage of the remote-write receiver loses nothing: the exporter pushes to a real Prometheus 2.42 every
# second while records keep arriving (one chunk of a flows.py set per second into 4 partitions). Prometheus
# is stopped (SIGTERM) for several push intervals, then started again on the same port with the same TSDB.
# The pushes missed meanwhile must be kept and sent oldest first: afterwards every series that existed
# before the outage has a sample for every interval across it (the raw samples of a range selector: count
# >= intervals - 1, no gap near the outage's length), the final `sum by (hostname)` of every flow family
# is exact, the exporter saw the outage (network errors) and dropped nothing.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

CHUNKS=12
BEFORE=4  # chunks produced before the outage
DURING=5  # chunks produced (one a second) while Prometheus is down
SET="$TEST_TMP/set"
push_set "$SET" 5150 4 12 --chunks "$CHUNKS"

start_mock --topic flows:4
PROM_PORT=$(free_port)
start_prometheus prom "$PROM_PORT" "$TEST_TMP/tsdb"
PROM="http://127.0.0.1:$PROM_PORT"
PROM_URL="$PROM/api/v1/write"

PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --group=push-outage \
	--asn="$(cat "$SET/local")" --asn-names="$SET/asn.txt" \
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest \
	--remote-write-url="$PROM_URL" --push-interval=1s --push-backlog=5m

for ((c = 0; c < BEFORE; c++)); do
	produce_chunk "$c"
	sleep 1
done
push_expect "$SET" "$TEST_TMP/before" --chunks "$(seq -s, 0 $((BEFORE - 1)))"
wait_totals "Prometheus before the outage" "$PROM" "$TEST_TMP/before.hosts.json" 60
log "Prometheus has the exact totals of chunks 0-$((BEFORE - 1)); a few more intervals, then the outage"
sleep 3

# ---- the outage ---------------------------------------------------------------------------------------
OUTAGE_START=$(now_s)
stop_pid "$prom_PID" TERM 30 || fail "Prometheus exited $STOP_RC after SIGTERM"
log "Prometheus stopped"
for ((c = BEFORE; c < BEFORE + DURING; c++)); do
	produce_chunk "$c"
	sleep 1
done
network=$(exporter_value "$PORT" flow_exporter_push_requests_total "url=$PROM_URL" status_class=network) ||
	fail "scrape failed"
backlog=$(exporter_value "$PORT" flow_exporter_push_backlog_requests "url=$PROM_URL") || fail "scrape failed"
log "during the outage: $network failed (network) requests, backlog of $backlog requests"
((network > 0)) || fail "no push failed while Prometheus was down: the outage was not seen"
((backlog >= 3)) || fail "backlog of $backlog requests after a ${DURING}s outage (want the missed pushes kept)"
start_prometheus prom "$PROM_PORT" "$TEST_TMP/tsdb"
OUTAGE_END=$(now_s)
log "Prometheus back after $(awk "BEGIN { printf \"%.1f\", $OUTAGE_END - $OUTAGE_START }")s"

for ((c = BEFORE + DURING; c < CHUNKS; c++)); do
	produce_chunk "$c"
	sleep 1
done
push_expect "$SET" "$TEST_TMP/all"
wait_totals "Prometheus after the outage" "$PROM" "$TEST_TMP/all.hosts.json" 90
log "final totals exact in Prometheus"
wait_until 30 "the backlog to drain" \
	bash -c '[[ $(curl -fsS -m 5 "http://127.0.0.1:$0/metrics" | grep -F "flow_exporter_push_backlog_requests{url=\"$1\"}") == *" 0" ]]' \
	"$PORT" "$PROM_URL"

# ---- no gap: every interval across the outage has its sample --------------------------------------------
sleep 2
CHECK_START=$(awk "BEGIN { printf \"%.3f\", $OUTAGE_START - 3 }")
CHECK_END=$(awk "BEGIN { printf \"%.3f\", $OUTAGE_END + 5 }")
INTERVALS=$(awk "BEGIN { printf \"%d\", $CHECK_END - $CHECK_START }")
"$PYTHON" "$PUSH_PY" gaps "$PROM" 'flow_receive_bytes_total' "$CHECK_START" "$CHECK_END" >"$TEST_TMP/gaps.jsonl" ||
	fail "range query failed"
"$PYTHON" - "$TEST_TMP/gaps.jsonl" "$INTERVALS" <<'EOF' || fail "samples missing across the outage (see above)"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
intervals = int(sys.argv[2])
old = [r for r in rows if r["before"]]
bad = [r for r in old if r["count"] < intervals - 1 or r["max_gap"] >= 4]
print("%d series existed before the outage; %d intervals checked; counts %d..%d; largest gap %.3fs"
      % (len(old), intervals, min(r["count"] for r in old) if old else 0,
         max(r["count"] for r in old) if old else 0, max((r["max_gap"] for r in old), default=0)),
      file=sys.stderr)
for r in bad[:10]:
    print("  %s: %d samples (want >= %d), largest gap %.3fs" % (r["series"], r["count"], intervals - 1,
                                                                 r["max_gap"]), file=sys.stderr)
sys.exit(1 if bad or len(old) < 10 else 0)
EOF
log "no gap: every series had a sample in each of the $INTERVALS intervals across the outage"

scrape "$PORT" "$TEST_TMP/final.prom" || fail "scrape failed"
dropped=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/final.prom" flow_exporter_push_dropped_batches_total "url=$PROM_URL")
[[ $dropped == 0 ]] || fail "$dropped batches dropped"
four=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/final.prom" flow_exporter_push_requests_total "url=$PROM_URL" status_class=4xx)
[[ $four == 0 ]] || fail "Prometheus rejected $four requests (4xx): see prom.log"

stop_pid "$exporter_PID" TERM 15 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
