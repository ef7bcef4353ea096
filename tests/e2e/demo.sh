#!/bin/bash
# The embedded demo: `flow-exporter --addr=...` with no --brokers runs librdkafka's mock cluster and a
# producer of synthetic pmacct records. It must print the broker address on stdout; /metrics must show
# flow_*_total counters that grow between two scrapes, with AS names from the built-in list; /-/ready must
# become 200; a record published with kcat to the printed address must appear with exactly its bytes and
# packets; SIGTERM must end it with status 0 within 5 s. Nothing here needs the network: the demo uses its
# built-in AS names (no --asn-names), and its cache is pointed into the temporary directory through the
# environment so that the command line stays the plain demo one.
source "$(dirname "$0")/lib/common.sh"

command -v kcat >/dev/null || fail "kcat is missing (deploy/install-deps.sh)"

PORT=$(free_port)
log "start: $FX_BIN --addr=127.0.0.1:$PORT"
FLOW_EXPORTER_ASN_NAMES_CACHE="$TEST_TMP/asn-cache.txt" "$FX_BIN" --addr="127.0.0.1:$PORT" \
	>"$TEST_TMP/demo.out" 2>"$TEST_TMP/demo.log" &
DEMO_PID=$!
STARTED_PIDS+=("$DEMO_PID")

# The broker address, from the banner on stdout.
deadline=$((SECONDS + 20))
until grep -q -E 'kcat -P -b [^ ]+' "$TEST_TMP/demo.out" 2>/dev/null; do
	kill -0 "$DEMO_PID" 2>/dev/null || fail "the demo exited during startup (see demo.log)"
	((SECONDS < deadline)) || fail "the demo printed no broker address within 20 s: $(cat "$TEST_TMP/demo.out")"
	sleep 0.1
done
DEMO_BROKER=$(grep -o -E 'kcat -P -b [^ ]+' "$TEST_TMP/demo.out" | head -1 | awk '{print $4}')
DEMO_TOPIC=$(grep -o -E 'kcat -P -b [^ ]+ -t [^ ]+' "$TEST_TMP/demo.out" | head -1 | awk '{print $6}')
LOCAL_AS=$(grep -o -E 'local AS [0-9]+' "$TEST_TMP/demo.out" | head -1 | awk '{print $3}')
[[ $DEMO_BROKER =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "the demo's broker is not on loopback: '$DEMO_BROKER'"
[[ -n $DEMO_TOPIC && -n $LOCAL_AS ]] || fail "banner without topic or local AS: $(cat "$TEST_TMP/demo.out")"
grep -q -F "$DEMO_BROKER" "$TEST_TMP/demo.out" || fail "no broker address on stdout"
log "demo broker $DEMO_BROKER, topic $DEMO_TOPIC, local AS $LOCAL_AS"

wait_until 20 "/-/healthy" curl -fsS -m 2 "http://127.0.0.1:$PORT/-/healthy"
wait_until 30 "/-/ready answers 200" curl -fsS -m 2 "http://127.0.0.1:$PORT/-/ready"

# total FILE FAMILY: the sum of a flow family in a scraped body.
total() { "$PYTHON" "$METRICS_PY" sum "$1" "$2"; }
has_flows() {
	scrape "$PORT" "$TEST_TMP/first.prom" &&
		[[ $(total "$TEST_TMP/first.prom" flow_receive_bytes_total) != 0 ]] &&
		[[ $(total "$TEST_TMP/first.prom" flow_transmit_bytes_total) != 0 ]]
}
wait_until 30 "flow counters on /metrics" has_flows
sleep 1.5
scrape "$PORT" "$TEST_TMP/second.prom" || fail "second scrape failed"
for family in flow_receive_bytes_total flow_transmit_bytes_total flow_receive_packets_total \
	flow_transmit_packets_total; do
	first=$(total "$TEST_TMP/first.prom" "$family")
	second=$(total "$TEST_TMP/second.prom" "$family")
	((second > first)) || fail "$family did not grow between two scrapes 1.5 s apart: $first -> $second"
	log "$family: $first -> $second"
done
grep -q '^# TYPE flow_receive_bytes_total counter$' "$TEST_TMP/second.prom" || fail "no TYPE counter line"

# AS names from the built-in list (deploy/demo/asn-demo.txt), the local AS's name included.
grep -q -E '(source|destination)_as_name="GOOGLE - Google LLC"' "$TEST_TMP/second.prom" ||
	fail "no series named GOOGLE - Google LLC"
grep -q -F '_as_name="DEMO-NET - Demo Network \"Example\" Operator"' "$TEST_TMP/second.prom" ||
	fail "the local AS has no (correctly escaped) name"

# One record published with kcat to the printed address: its own series, exactly its bytes and packets.
HOST="kcat-e2e-$$-$RANDOM.example"
printf '{"event_type": "purge", "label": "%s", "as_src": %s, "as_dst": 15169, "peer_ip_src": "203.0.113.9", "iface_in": 7, "iface_out": 8, "packets": 4321, "bytes": 123456789012}\n' \
	"$HOST" "$LOCAL_AS" >"$TEST_TMP/record.json"
timeout 20 kcat -P -b "$DEMO_BROKER" -t "$DEMO_TOPIC" "$TEST_TMP/record.json" 2>"$TEST_TMP/kcat.log" ||
	fail "kcat could not publish to $DEMO_BROKER: $(cat "$TEST_TMP/kcat.log")"
record_counted() {
	scrape "$PORT" "$TEST_TMP/record.prom" || return 1
	local labels=(hostname="$HOST" source_as="$LOCAL_AS" destination_as=15169
		destination_as_name="GOOGLE - Google LLC" iface_in=7 iface_out=8)
	[[ $("$PYTHON" "$METRICS_PY" get "$TEST_TMP/record.prom" flow_transmit_bytes_total "${labels[@]}") == 123456789012 ]] &&
		[[ $("$PYTHON" "$METRICS_PY" get "$TEST_TMP/record.prom" flow_transmit_packets_total "${labels[@]}") == 4321 ]]
}
wait_until 20 "the kcat record counted on /metrics" record_counted
# Nothing else carries that hostname: one transmit series, no receive series.
[[ $(grep -c -F "hostname=\"$HOST\"" "$TEST_TMP/record.prom") == 2 ]] ||
	fail "the kcat record is not exactly one series per transmit family: $(grep -F "$HOST" "$TEST_TMP/record.prom")"
log "kcat record counted: $(grep -F "flow_transmit_bytes_total{" "$TEST_TMP/record.prom" | grep -F "$HOST")"

# promtool, when present, accepts the demo's body too.
if command -v promtool >/dev/null; then
	promtool check metrics <"$TEST_TMP/record.prom" >"$TEST_TMP/promtool.log" 2>&1 ||
		fail "promtool check metrics: $(head -c 1000 "$TEST_TMP/promtool.log")"
fi

stop_pid "$DEMO_PID" TERM 5 || fail "the demo exited with status $STOP_RC on SIGTERM"
log "SIGTERM: exit 0 after ${STOP_MS} ms"
assert_clean_log "$TEST_TMP/demo.log"
