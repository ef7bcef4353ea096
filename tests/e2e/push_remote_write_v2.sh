#!/bin/bash
# Remote write 2.0 and its fallbacks, ONE exporter pushing every second to six endpoints at once:
#   the decoding receiver (rw2_receiver.py, Google's protobuf runtime, not the project's encoder) as
#     /ok (2.0, answers with the Written headers), /partial (2.0, Samples-Written one short),
#     /415 (auto: answers 2.0 with 415) and /nowritten (auto: answers 2.0 with 204 and no Written header);
#   Prometheus 2.42 (auto: a 1.0 receiver that answers 204 to anything) and VictoriaMetrics (auto).
# Every 2.0 request must follow the spec (rw2_receiver.py lists the rules), and every endpoint must end
# with the exact totals of a known record set (nothing lost in a fallback): /ok and /partial through 2.0,
# the others through 1.0 after one fallback each. Then --series-ttl ends every series: /ok must have seen
# a stale marker as the last sample of each. The self-metrics must show the protocol of each endpoint,
# one fallback for each auto endpoint that fell back, and the partial writes of /partial.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

TTL=25
SET="$TEST_TMP/set"
push_set "$SET" 1313 4 60
push_expect "$SET" "$TEST_TMP/expected"
log "expecting $(wc -l <"$TEST_TMP/expected.prom") flow samples"
start_mock --topic flows:4
for p in 0 1 2 3; do
	must_mock produce flows "$p" "$SET/chunk0.p$p.msg"
done

start_rw2_receiver rw2
R="http://127.0.0.1:$rw2_PORT"
PROM_PORT=$(free_port)
start_prometheus prom "$PROM_PORT" "$TEST_TMP/tsdb"
PROM="http://127.0.0.1:$PROM_PORT"
VM_PORT=$(free_port)
start_victoria vm "$VM_PORT" "$TEST_TMP/vmdata"
VM="http://127.0.0.1:$VM_PORT"

PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --group=push-v2 \
	--asn="$(cat "$SET/local")" --asn-names="$SET/asn.txt" \
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest \
	--remote-write-url="$R/ok" --remote-write-protocol=2.0 \
	--remote-write-url="$R/partial" --remote-write-protocol=2.0 \
	--remote-write-url="$R/415" --remote-write-protocol=auto \
	--remote-write-url="$R/nowritten" --remote-write-protocol=auto \
	--remote-write-url="$PROM/api/v1/write" --remote-write-protocol=auto \
	--remote-write-url="$VM/api/v1/write" --remote-write-protocol=auto \
	--push-interval=1s --series-ttl="${TTL}s"

# ---- exact totals everywhere, before the series expire ------------------------------------------------
declare -A done=()
deadline=$((SECONDS + 45))
while ((${#done[@]} < 6)); do
	for path in /ok /partial /415 /nowritten; do
		[[ -n ${done[$path]:-} ]] && continue
		if "$PYTHON" "$RW2_PY" check "$R" "$path" "$TEST_TMP/expected.prom" >"$TEST_TMP/check-${path#/}.out" 2>&1; then
			done[$path]=1
			log "rw2_receiver $path: every series exact, no rule broken: $(head -n 1 "$TEST_TMP/check-${path#/}.out")"
		fi
	done
	for url in "$PROM" "$VM"; do
		[[ -n ${done[$url]:-} ]] && continue
		if totals_match "$url" "$TEST_TMP/expected.hosts.json"; then
			done[$url]=1
			log "$url: sum by (hostname) of every flow family is exact"
		fi
	done
	if ((SECONDS >= deadline)); then
		for path in /ok /partial /415 /nowritten; do
			[[ -n ${done[$path]:-} ]] || { log "$path:"; head -n 20 "$TEST_TMP/check-${path#/}.out" >&2; }
		done
		fail "not every endpoint exact after 45 s: ${!done[*]}"
	fi
	sleep 0.5
done

# ---- which protocol each endpoint speaks, as the exporter reports it ------------------------------------
scrape "$PORT" "$TEST_TMP/self.prom" || fail "scrape failed"
proto() { "$PYTHON" "$METRICS_PY" sum "$TEST_TMP/self.prom" flow_exporter_remote_write_protocol "url=$1" "protocol=$2"; }
fallbacks() { "$PYTHON" "$METRICS_PY" sum "$TEST_TMP/self.prom" flow_exporter_remote_write_fallbacks_total "url=$1"; }
for url in "$R/ok" "$R/partial"; do
	[[ $(proto "$url" 2.0) == 1 && $(fallbacks "$url") == 0 ]] || fail "$url: not on 2.0 without fallback"
done
for url in "$R/415" "$R/nowritten" "$PROM/api/v1/write"; do
	[[ $(proto "$url" 1.0) == 1 && $(fallbacks "$url") == 1 ]] || fail "$url: not on 1.0 after one fallback"
done
vm_v2=$(proto "$VM/api/v1/write" 2.0)
log "VictoriaMetrics ($(dpkg-query -W -f="${Version}" victoria-metrics 2>/dev/null)): on 2.0? $vm_v2, fallbacks $(fallbacks "$VM/api/v1/write")"
grep -E "VM|$VM_PORT.*(1.0 receiver|speaks)" "$TEST_TMP/exporter.log" | head -n 2 >&2 || true
partial=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/self.prom" flow_exporter_remote_write_partial_writes_total "url=$R/partial")
((partial > 0)) || fail "/partial: no partial write counted"
grep -q "partial write: " "$TEST_TMP/exporter.log" || fail "/partial: no partial write logged"
for url in "$R/ok" "$R/415" "$R/nowritten" "$PROM/api/v1/write" "$VM/api/v1/write"; do
	dropped=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/self.prom" flow_exporter_push_dropped_batches_total "url=$url")
	[[ $dropped == 0 ]] || fail "$url: $dropped requests dropped"
done
n_logged=$(grep -c "a 1.0 receiver; sending remote write 1.0" "$TEST_TMP/exporter.log")
log "fallbacks logged: $n_logged (once per auto endpoint that fell back)"

# ---- stale markers in 2.0 -------------------------------------------------------------------------------
wait_until $((TTL + 20)) "every series of /ok to end with a stale marker" bash -c \
	'curl -fsS "$0/state/ok" | "$1" -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if d[\"stale\"] and not d[\"values\"] and not d[\"violations\"] else 1)"' \
	"$R" "$PYTHON"
log "/ok: every flow series ended with one stale marker, no 2.0 rule broken"
assert_clean_log "$TEST_TMP/exporter.log"
log "PASS"
