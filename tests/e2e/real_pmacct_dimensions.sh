#!/bin/bash
# Real nfacctd with more dimensions (issue 10): deploy/pmacct/nfacctd-dimensions.conf as shipped (only
# addresses, ports and map paths changed) aggregates by protocol, ports, source and destination prefixes
# (from networks-peers.lst, so net_src/mask_src are real prefixes, not 0.0.0.0/0) and peer ASes besides the
# default keys, and publishes kafka_multi_values with markers into the mock cluster. Input: pmacctd's
# nfprobe on tests/data/pmacct/flows.pcap and the captured nfgen-{v5,v9,ipfix}.bin datagrams from three
# exporter addresses, twice (before and after a purge). Once nfacctd has exited, every message is read
# back with kcat and summed by the configured labels' values (cardinality.py pmacct-expect, Python's json,
# README's catalog); the exporter with --labels naming those dimensions must show exactly those series.
# The dimensions must really vary (several protocols, ports, prefixes with a mask, peer ASes), or the test
# proves nothing.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/pmacct.sh
source "$(dirname "$0")/lib/pmacct.sh"

for tool in /usr/sbin/nfacctd /usr/sbin/pmacctd /usr/bin/kcat; do
	[[ -x $tool ]] || fail "$tool is missing (deploy/install-deps.sh installs pmacct and kcat)"
done
CARD_PY="$FX_LIB_DIR/cardinality.py"
LOCAL_ASNS=64496,64497,4200000001
PARTS=3
DATA="$FX_TEST_DATA/pmacct"
LABELS=hostname,source_as,destination_as,iface_in,iface_out,protocol,source_port,destination_port,source_net,destination_net,source_peer_as,destination_peer_as
printf '15169\tGOOGLE - Google LLC, US\n' >"$TEST_TMP/asn.txt"
cp "$PMACCT_RECIPES/pretag.map" "$PMACCT_RECIPES/networks-peers.lst" "$TEST_TMP/"

start_mock --topic "pmacct.dims:$PARTS"
PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=pmacct.dims --group=dims --asn="$LOCAL_ASNS" \
	--asn-names="$TEST_TMP/asn.txt" --labels="$LABELS" --kafka-opt=session.timeout.ms=6000 \
	--kafka-opt=auto.offset.reset=earliest
NF_PORT=$(free_udp_port)
render_recipe nfacctd-dimensions.conf "$TEST_TMP/nfacctd.conf" "$NF_PORT"
render_recipe pmacctd.conf "$TEST_TMP/pmacctd.conf" "$NF_PORT"
start_collector nfacctd "$TEST_TMP/nfacctd.conf" "$NF_PORT"

send_nfgen() {
	local source
	for source in 127.0.0.1 127.0.0.2 127.0.0.3; do
		send_datagrams "$NF_PORT" "$source" "$DATA/nfgen-v5.bin" "$DATA/nfgen-v9.bin" "$DATA/nfgen-ipfix.bin"
	done
}
log "round 1: pmacctd (nfprobe) on flows.pcap, nfgen datagrams from 3 exporters"
/usr/sbin/pmacctd -f "$TEST_TMP/pmacctd.conf" >"$TEST_TMP/nfprobe.log" 2>&1 ||
	grep -q 'no more plugins active' "$TEST_TMP/nfprobe.log" || fail "pmacctd failed (see nfprobe.log)"
send_nfgen
published() {
	topic_messages pmacct.dims "$PARTS"
	((TOPIC_MESSAGES > 2)) # more than the purge markers
}
wait_until 20 "nfacctd publishes round 1" published
log "round 2: the nfgen datagrams again"
send_nfgen
stop_collector nfacctd "$NF_PORT" "$DATA/nfgen-v9.bin" 127.0.0.1

read_topic pmacct.dims "$TEST_TMP/dims.dump"
"$PYTHON" "$CARD_PY" pmacct-expect --messages "$TEST_TMP/dims.dump" --local "$LOCAL_ASNS" --labels "$LABELS" \
	--out "$TEST_TMP/expected.prom" --stats-out "$TEST_TMP/stats.json"
log "published: $(tr -d '\n ' <"$TEST_TMP/stats.json" | cut -c1-600)"

# The dimensions were really there and varied.
"$PYTHON" - "$TEST_TMP/stats.json" <<'EOF' || fail "the input does not exercise the dimensions (stats.json)"
import json, sys
stats = json.load(open(sys.argv[1]))
want = {"protocol": 2, "source_port": 3, "destination_port": 3, "source_net": 2, "destination_net": 2,
        "source_peer_as": 1, "destination_peer_as": 2}
bad = {k: stats["distinct"].get(k, 0) for k, n in want.items() if stats["distinct"].get(k, 0) < n}
nets = [v for k in ("source_net", "destination_net") for v in stats["values"].get(k, [])]
if bad or not any("/" in v and not v.endswith("/0") for v in nets):
    sys.exit("too few distinct values %s, or no real prefix among %s" % (bad, nets))
EOF

wait_metrics "$PORT" "$TEST_TMP/expected.prom" 30
log "every series equals what nfacctd published keyed by the same values ($(grep -c '' "$TEST_TMP/expected.prom") samples)"
sleep 1
assert_metrics "$PORT" "$TEST_TMP/expected.prom"
invalid=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/last-scrape.prom" flow_exporter_records_invalid_total)
((invalid == 0)) || fail "$invalid records invalid"
scrape "$PORT" "$TEST_TMP/final.prom" || fail "scrape"
promtool check metrics <"$TEST_TMP/final.prom" >"$TEST_TMP/promtool.log" 2>&1 ||
	fail "promtool check metrics: $(head -c 2000 "$TEST_TMP/promtool.log")"
stop_pid "$exporter_PID" TERM 10 || fail "exporter exited with status $STOP_RC"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
log "ok"
