#!/bin/bash
# The hardened HTTP surface under abuse, with the default limits: for 24 s, 1,000 idle connections (from
# 127.0.0.2..9), 200 slow-header clients (127.0.0.12..19) and a flood of bad requests (random bytes, 64 KB
# headers, an unknown method; 127.0.0.20..22) while a real Prometheus 2.42 scrapes every second from
# 127.0.0.1 and records are produced in three more chunks. All of 127/8 is loopback on Linux, so the
# per-address limit (32) keeps each abusive address to its share and the total under --web-max-connections
# (512): 8 x 32 idle + 200 slow + a few flood connections. It shows that every scrape succeeded
# (min_over_time(up) == 1 over the whole abuse, one sample a second), ingestion kept up (each chunk counted
# within seconds, exact totals at the end), RSS stayed bounded, each kind of abuse was refused and counted
# (per-address limit, read timeout, 431, 405), and the daemon answers correctly afterwards.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

[[ -x /usr/bin/prometheus ]] || fail "/usr/bin/prometheus missing (deploy/install-deps.sh)"
ABUSE_SECONDS=24
SET="$TEST_TMP/set"
"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 99 --partitions 2 --chunks 4 --messages 40 --local 64496
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --out "$TEST_TMP/expected.prom" \
	--counts-out "$TEST_TMP/counts.json"
start_mock --topic flows:2
produce_chunk() {
	for p in 0 1; do must_mock produce flows "$p" "$SET/chunk$1.p$p.msg"; done
}
produce_chunk 0

PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --group=abuse --asn=64496 \
	--asn-names="$SET/asn.txt" --kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
messages_at_least() { # N: flow_exporter_kafka_messages_total >= N
	local value
	value=$(exporter_value "$PORT" flow_exporter_kafka_messages_total) && ((value >= $1))
}
wait_until 30 "chunk 0 consumed" messages_at_least 80

PROM_PORT=$(free_port)
cat >"$TEST_TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: flow-exporter
    static_configs:
      - targets: ['127.0.0.1:$PORT']
EOF
start_bg prometheus /usr/bin/prometheus --config.file="$TEST_TMP/prometheus.yml" \
	--storage.tsdb.path="$TEST_TMP/tsdb" --web.listen-address="127.0.0.1:$PROM_PORT"
wait_ready prometheus "$prometheus_PID" "http://127.0.0.1:$PROM_PORT/-/ready"
promql() { # EXPR: the single value of an instant query, or "none"
	curl -fsS -m 5 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
		"$PYTHON" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'
}
scraped_once() { [[ $(promql 'up{job="flow-exporter"}') == 1 ]]; }
wait_until 30 "the first scrape" scraped_once
sleep 2
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$exporter_PID/status"; }
RSS_BEFORE=$(rss_kib)
log "Prometheus scrapes every second; exporter RSS $RSS_BEFORE KiB; abuse for ${ABUSE_SECONDS}s"

start_bg abuse "$PYTHON" "$FX_LIB_DIR/abuse.py" "$PORT" "$ABUSE_SECONDS" "$TEST_TMP/abuse.json"
ABUSE_START=$SECONDS
RSS_MAX=$RSS_BEFORE
CONN_MAX=0
for chunk in 1 2 3; do
	sleep 5
	produce_chunk "$chunk"
	want=$((80 * (chunk + 1)))
	deadline=$((SECONDS + 8))
	until messages_at_least "$want"; do
		((SECONDS < deadline)) || fail "under abuse, chunk $chunk was not consumed within 8 s"
		sleep 0.3
	done
	rss=$(rss_kib)
	((rss > RSS_MAX)) && RSS_MAX=$rss
	conns=$(exporter_value "$PORT" flow_exporter_http_connections)
	((conns > CONN_MAX)) && CONN_MAX=$conns
	log "chunk $chunk consumed under abuse ($want messages); RSS $rss KiB, $conns connections open"
done
while kill -0 "$abuse_PID" 2>/dev/null; do
	rss=$(rss_kib)
	((rss > RSS_MAX)) && RSS_MAX=$rss
	sleep 0.5
done
wait_pid "$abuse_PID" 30 || fail "abuse.py exited $STOP_RC (see abuse.log)"
ABUSE_TOOK=$((SECONDS - ABUSE_START))
log "abuse.py: $(tr -d '\n ' <"$TEST_TMP/abuse.json")"

# Every scrape of the abuse window succeeded: one sample a second, all up.
sleep 2
window="$((ABUSE_TOOK + 2))s"
up_min=$(promql "min_over_time(up{job=\"flow-exporter\"}[$window])")
up_count=$(promql "count_over_time(up{job=\"flow-exporter\"}[$window])")
[[ $up_min == 1 ]] || fail "a scrape failed during the abuse: min_over_time(up[$window]) = $up_min"
((up_count >= ABUSE_TOOK - 2)) || fail "only $up_count scrapes in $window"
duration_max=$(promql "max_over_time(scrape_duration_seconds{job=\"flow-exporter\"}[$window])")
log "Prometheus: $up_count scrapes in $window, all up (slowest ${duration_max}s)"

# Ingestion: the exact totals of all four chunks.
wait_metrics "$PORT" "$TEST_TMP/expected.prom" 20 "$TEST_TMP/counts.json"
# RSS bounded: the connections' memory is mapped per connection and given back when they close.
((RSS_MAX - RSS_BEFORE < 65536)) || fail "RSS grew from $RSS_BEFORE KiB to $RSS_MAX KiB under abuse"
((CONN_MAX <= 512)) || fail "$CONN_MAX connections open at once, past --web-max-connections"
log "exact totals after the abuse; RSS $RSS_BEFORE -> max $RSS_MAX KiB; at most $CONN_MAX connections open"

# Each kind of abuse refused and counted.
scrape "$PORT" "$TEST_TMP/after.prom" || fail "scrape after the abuse"
refused() { "$PYTHON" "$METRICS_PY" sum "$TEST_TMP/after.prom" flow_exporter_http_refused_total "reason=$1"; }
per_ip=$(refused max_connections_per_ip)
timeouts=$(refused read_timeout)
too_large=$(refused header_too_large)
methods=$(refused method_not_allowed)
global=$(refused max_connections)
((per_ip >= 744 && timeouts >= 200 && too_large > 0 && methods > 0)) ||
	fail "refused: per address $per_ip (want >= 744), read timeout $timeouts (want >= 200), 431 $too_large, 405 $methods"
"$PYTHON" - "$TEST_TMP/abuse.json" <<'EOF' || fail "the flood was not answered as it should be"
import json, sys
seen = json.load(open(sys.argv[1]))
flood = seen["flood"]
assert flood.get("big_header:431", 0) > 0, flood
assert flood.get("unknown_method:405", 0) > 0, flood
assert not any(k.startswith(("big_header:2", "unknown_method:2", "random:2")) for k in flood), flood
assert seen["slow_closed"] >= 200, seen
EOF
log "refused: $per_ip past the per-address limit, $timeouts slow heads, $too_large heads too large (431), $methods unknown methods (405), $global past the global limit"

# And afterwards, correct answers.
[[ $(curl -sS -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/") == 200 ]] || fail "/ after the abuse"
[[ $(curl -sS -m 5 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/metrics") == 405 ]] || fail "POST after the abuse"
assert_metrics "$PORT" "$TEST_TMP/expected.prom"
stop_pid "$prometheus_PID" TERM 15 || fail "prometheus exited $STOP_RC"
stop_pid "$exporter_PID" TERM 10 || fail "the exporter exited $STOP_RC"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
log "ok"
