# Kill loop (issue 12): records flow into 4 partitions (single and multi-value messages) while the
# exporter, with --state-dir, is killed with SIGKILL at random moments 20 times and restarted with the same
# state directory. Prometheus scrapes it every second and receives its remote write. At the end /metrics
# equals the generator's exact sums, Prometheus's last values (scraped and remote-written) add up to them,
# and resets() over the whole run is 0 for every flow series.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

SET="$TEST_TMP/set"
PARTITIONS=4
CHUNKS=10
KILLS=${FX_KILLS:-20}
push_set "$SET" 1212 "$PARTITIONS" 30 --chunks "$CHUNKS"
LOCAL=$(cat "$SET/local")
push_expect "$SET" "$TEST_TMP/expected" --counts-out "$TEST_TMP/expected-counts.json"

start_mock --topic flows:$PARTITIONS
PORT=$(free_port)
PROM_PORT=$(free_port)
cat >"$TEST_TMP/prom.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1m
scrape_configs:
  - job_name: scraped
    static_configs:
      - targets: ['127.0.0.1:$PORT']
EOF
start_bg prom /usr/bin/prometheus --config.file="$TEST_TMP/prom.yml" --storage.tsdb.path="$TEST_TMP/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver
wait_ready prom "$prom_PID" "http://127.0.0.1:$PROM_PORT/-/ready"

ARGS=(--brokers="$BOOT" --topic=flows --asn="$LOCAL" --asn-names="$SET/asn.txt" --group=g
	--kafka-opt=session.timeout.ms=3000 --kafka-opt=heartbeat.interval.ms=500
	--kafka-opt=auto.offset.reset=earliest
	--state-dir="$TEST_TMP/state" --checkpoint-interval=200ms --flush-interval=50ms
	--remote-write-url="http://127.0.0.1:$PROM_PORT/api/v1/write" --remote-write-protocol=1.0
	--push-interval=1s --external-label=job=pushed --external-label=instance=kill)

# The records, a chunk of every partition every second, in the background.
(
	for ((c = 0; c < CHUNKS; c++)); do
		for ((p = 0; p < PARTITIONS; p++)); do
			mock_cmd produce flows "$p" "$SET/chunk$c.p$p.msg" || exit 1
		done
		sleep 3
	done
) &
PRODUCER=$!
STARTED_PIDS+=("$PRODUCER")

start_exporter exporter "$PORT" "${ARGS[@]}"
ready() { curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$PORT/-/ready"; }
for ((k = 1; k <= KILLS; k++)); do
	wait_until 30 "partitions assigned" ready
	sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + (r % 120) / 100 }')"
	kill -KILL "$exporter_PID"
	wait "$exporter_PID" 2>/dev/null || true
	forget_pid "$exporter_PID"
	mv "$TEST_TMP/exporter.log" "$TEST_TMP/exporter.$k.log"
	assert_clean_log "$TEST_TMP/exporter.$k.log"
	start_exporter exporter "$PORT" "${ARGS[@]}"
done
log "$KILLS kills done"
wait "$PRODUCER" || fail "the producer failed"
forget_pid "$PRODUCER"

wait_metrics "$PORT" "$TEST_TMP/expected.prom" 60 "$TEST_TMP/expected-counts.json"
log "/metrics equals the generator's sums after $KILLS SIGKILLs"
grep -h 'restored .* checkpoint' "$TEST_TMP"/exporter.*.log | tail -1 >&2 || true
sleep 4 # a few more scrapes and pushes of the final values

query() {
	curl -fsS -m 10 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
		"$PYTHON" -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else "none")'
}
# resets() drops the metric name: one family at a time.
resets=$(query 'sum(resets(flow_receive_bytes_total[10m])) + sum(resets(flow_transmit_bytes_total[10m])) + sum(resets(flow_receive_packets_total[10m])) + sum(resets(flow_transmit_packets_total[10m]))')
log "resets() over the run, every flow series, scraped and pushed: $resets"
[[ $resets == 0 ]] || fail "a flow series was reset $resets time(s)"
want=$("$PYTHON" -c '
import sys
total = 0
for line in open(sys.argv[1]):
    if line.startswith("flow_") and "_bytes_total" in line:
        total += int(line.rsplit(" ", 1)[1])
print(total)' "$TEST_TMP/expected.prom")
for job in scraped pushed; do
	got=$(query "sum(last_over_time({__name__=~\"flow_(receive|transmit)_bytes_total\",job=\"$job\"}[1m]))")
	log "Prometheus, $job: last bytes $got, generator $want"
	[[ $got == "$want" ]] || fail "Prometheus's last $job values ($got) differ from the generator's ($want)"
done
stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
