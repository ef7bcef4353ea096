#!/bin/bash
# Remote write to two real TSDBs at once: ONE exporter pushes every second to Prometheus 2.42 (its
# remote-write receiver), to VictoriaMetrics and to the project's recording receiver (rw_receiver, which
# checks every request against remote write 1.0 and records the samples).
#
# Phase 1, totals: a known record set (flows.py: several partitions, hosts, ASNs, interfaces, multi-value
# messages, markers and malformed records; the one 2^64-1 record no float holds left out) is consumed;
# `sum by (hostname) (<family>)` of all four flow families, queried from Prometheus and from
# VictoriaMetrics, must equal the generator's totals exactly (same hostnames, same integers); the series
# carry the default job and instance labels.
#
# Phase 2, series lifecycle (--series-ttl=20s): the record set's series get no more records, while one
# more hostname (alive.example, on a second topic) gets a record every second. Prometheus's instant query
# must stop returning every series of the set (only a stale marker does that within the 5-minute lookback)
# while alive.example stays; a range query still finds the set's earlier samples (last_over_time gives
# the exact totals back). Then the beats stop and alive.example goes too. The recording receiver must have
# seen exactly one stale marker (NaN 0x7ff0000000000002) as the last sample of every series, and no
# request breaking remote write 1.0.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

TTL=20
ALIVE=alive.example
BEAT_BYTES=1000
BEAT_PACKETS=3
SET="$TEST_TMP/set"
push_set "$SET" 3103 4 150
push_expect "$SET" "$TEST_TMP/expected"
log "expecting $(wc -l <"$TEST_TMP/expected.prom") flow samples"

start_mock --topic flows:4 --topic beat:1
for p in 0 1 2 3; do
	must_mock produce flows "$p" "$SET/chunk0.p$p.msg"
done
# One beat record: receive (destination AS local) for hostname alive.example.
printf '{"event_type": "purge", "label": "%s", "as_src": 15169, "as_dst": 64496, "peer_ip_src": "192.0.2.99", "iface_in": 7, "iface_out": 8, "packets": %d, "bytes": %d}' \
	"$ALIVE" "$BEAT_PACKETS" "$BEAT_BYTES" >"$TEST_TMP/beat.msg"

PROM_PORT=$(free_port)
start_prometheus prom "$PROM_PORT" "$TEST_TMP/tsdb"
PROM="http://127.0.0.1:$PROM_PORT"
VM_PORT=$(free_port)
start_victoria vm "$VM_PORT" "$TEST_TMP/vmdata"
VM="http://127.0.0.1:$VM_PORT"
start_receiver recv
RECV_PORT=$recv_PORT

PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows,beat --group=push-two \
	--asn="$(cat "$SET/local")" --asn-names="$SET/asn.txt" \
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest \
	--remote-write-url="$PROM/api/v1/write" --remote-write-url="$VM/api/v1/write" \
	--remote-write-url="http://127.0.0.1:$RECV_PORT/api/v1/write" \
	--push-interval=1s --series-ttl="${TTL}s"

# ---- phase 1: exact totals in both TSDBs -------------------------------------------------------------
# Both polled together: each must match before the set's series expire (--series-ttl after the last
# record), which a slow second check could miss.
prom_ok=0
vm_ok=0
deadline=$((SECONDS + 60))
while ((!prom_ok || !vm_ok)); do
	if ((!prom_ok)) && totals_match "$PROM" "$TEST_TMP/expected.hosts.json"; then
		prom_ok=1
		log "Prometheus: sum by (hostname) of every flow family is exact"
	fi
	if ((!vm_ok)) && totals_match "$VM" "$TEST_TMP/expected.hosts.json"; then
		vm_ok=1
		log "VictoriaMetrics: sum by (hostname) of every flow family is exact"
	fi
	((prom_ok && vm_ok)) && break
	if ((SECONDS >= deadline)); then
		((prom_ok)) || totals_match "$PROM" "$TEST_TMP/expected.hosts.json" || head -n 40 "$TEST_TMP/totals.diff" >&2
		((vm_ok)) || totals_match "$VM" "$TEST_TMP/expected.hosts.json" || head -n 40 "$TEST_TMP/totals.diff" >&2
		fail "totals not exact after 60s (Prometheus ok=$prom_ok, VictoriaMetrics ok=$vm_ok)"
	fi
	sleep 0.5
done

# Identity: every pushed series has the default job and instance (<host>:<http port>).
want_identity="{\"instance=$(hostname):$PORT,job=flow-exporter\": \"$(wc -l <"$TEST_TMP/expected.prom")\"}"
for url in "$PROM" "$VM"; do
	identity=$("$PYTHON" "$PUSH_PY" vector "$url" \
		'count by (job, instance) ({__name__=~"flow_(receive|transmit)_(bytes|packets)_total"})')
	[[ $identity == "$want_identity" ]] ||
		fail "$url: series by job and instance: $identity (want $want_identity: every series, default labels)"
done
log "every series carries job=flow-exporter, instance=$(hostname):$PORT"

# ---- phase 2: expiry and stale markers ---------------------------------------------------------------
HOSTS_EXPR='group by (hostname) ({__name__=~"flow_(receive|transmit)_(bytes|packets)_total"})'
beats=0
alive_seen=0
gone=0
deadline=$((SECONDS + TTL + 40))
while ((SECONDS < deadline)); do
	must_mock produce beat 0 "$TEST_TMP/beat.msg"
	beats=$((beats + 1))
	present=$("$PYTHON" "$PUSH_PY" vector "$PROM" "$HOSTS_EXPR") || fail "query failed: $HOSTS_EXPR"
	if [[ $present == *"hostname=$ALIVE\""* ]]; then
		alive_seen=1
	elif ((alive_seen)); then
		fail "$ALIVE, updated every second, vanished from Prometheus (instant query: $present)"
	fi
	if [[ $present == "{\"hostname=$ALIVE\": \"1\"}" ]]; then
		gone=1
		break
	fi
	sleep 1
done
((gone)) || fail "after $((TTL + 40))s, Prometheus still returns series of hostnames that got no record for longer than --series-ttl=${TTL}s: $present"
log "Prometheus's instant query returns only $ALIVE: every expired series ended (stale marker)"

# The earlier samples are still there: the last value of each series before its marker is the exact total.
LAST='sum by (hostname) (last_over_time({family}[10m]))'
cp "$TEST_TMP/expected.hosts.json" "$TEST_TMP/with-beats.hosts.json"
"$PYTHON" "$PUSH_PY" beats "$beats" "$BEAT_BYTES" "$BEAT_PACKETS" "$ALIVE" "$TEST_TMP/with-beats.hosts.json"
"$PYTHON" "$PUSH_PY" beats "$beats" "$BEAT_BYTES" "$BEAT_PACKETS" "$ALIVE" "$TEST_TMP/beats.hosts.json"
# VictoriaMetrics too (it honours stale markers as well; logged, not asserted: it also ends a series that
# stops on its own after a few missed intervals).
vm_present=$("$PYTHON" "$PUSH_PY" vector "$VM" "$HOSTS_EXPR") || true
log "VictoriaMetrics's instant query now returns: $vm_present"

# The beats stopped with the last produce: alive.example adds up to exactly $beats records, then expires.
wait_totals "Prometheus ($ALIVE)" "$PROM" "$TEST_TMP/beats.hosts.json" 30
wait_totals "Prometheus (range query)" "$PROM" "$TEST_TMP/with-beats.hosts.json" 10 "$LAST"
wait_totals "VictoriaMetrics (range query)" "$VM" "$TEST_TMP/with-beats.hosts.json" 30 "$LAST"
log "range queries give back the exact totals of every series, expired or not ($beats beats)"
wait_until $((TTL + 30)) "$ALIVE to expire in Prometheus" \
	bash -c '[[ $("$0" "$1" vector "$2" "$3") == "{}" ]]' "$PYTHON" "$PUSH_PY" "$PROM" "$HOSTS_EXPR"
log "$ALIVE expired too"

scrape "$PORT" "$TEST_TMP/final.prom" || fail "scrape failed"
series=$("$PYTHON" "$METRICS_PY" get "$TEST_TMP/final.prom" flow_exporter_series) || fail "no flow_exporter_series"
[[ $series == 0 ]] || fail "flow_exporter_series is $series after every series expired"
if grep -E '^flow_(receive|transmit)_' "$TEST_TMP/final.prom" | head -3 >&2; then
	fail "/metrics still serves expired flow series"
fi
for url in "$PROM" "$VM"; do
	failed=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/final.prom" flow_exporter_push_dropped_batches_total \
		"url=$url/api/v1/write")
	[[ $failed == 0 ]] || fail "$url: $failed batches dropped"
done

# Exactly one stale marker per series, as its last sample; every request valid remote write 1.0.
sleep 2 # the pushes after the last expiry have arrived
if ! "$PYTHON" "$PUSH_PY" receiver-stale "$TEST_TMP/recv.jsonl" >"$TEST_TMP/stale.txt" 2>&1; then
	cat "$TEST_TMP/stale.txt" >&2
	fail "the recording receiver did not get exactly one stale marker per series (or saw a violation)"
fi
log "recording receiver: $(head -n 1 "$TEST_TMP/stale.txt")"

stop_pid "$exporter_PID" TERM 15 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
