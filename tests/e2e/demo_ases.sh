#!/bin/bash
# The demo's --demo-ases knob (issue 10): the embedded demo spreads its traffic over exactly that many
# distinct remote ASes, so that the overflow and "other" series can be seen live.
# - --demo-ases=300: /metrics soon shows exactly 300 distinct remote ASes, never more;
# - --demo-ases=5000 --max-series=1000: flow_exporter_series reaches 1000 and never passes it, records go
#   to the overflow series (flow_exporter_records_overflow_total > 0, series with source_as="other");
# - --demo-ases=5000 --top-n=20: each hostname exposes at most 20 + 1 series (no demotion can happen
#   before the first window ends) and its "other" series is there.
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

CARD_PY="$FX_LIB_DIR/cardinality.py"
DEMO_LOCAL_AS=64500
printf '15169\tGOOGLE - Google LLC, US\n' >"$TEST_TMP/asn.txt"
common=(--asn-names="$TEST_TMP/asn.txt" --demo-rate=5000)
P_TAIL=$(free_port)
start_exporter tail "$P_TAIL" "${common[@]}" --demo-ases=300
P_LIMIT=$(free_port)
start_exporter limited "$P_LIMIT" "${common[@]}" --demo-ases=5000 --max-series=1000
P_TOPN=$(free_port)
start_exporter topn "$P_TOPN" "${common[@]}" --demo-ases=5000 --top-n=20 --top-n-window=1h

remote_ases() {
	scrape "$P_TAIL" "$TEST_TMP/tail.prom" || return 1
	local n
	n=$("$PYTHON" "$CARD_PY" remote-ases "$TEST_TMP/tail.prom" "$DEMO_LOCAL_AS")
	((n <= 300)) || fail "--demo-ases=300 shows $n distinct remote ASes"
	((n == 300))
}
wait_until 40 "exactly 300 distinct remote ASes with --demo-ases=300" remote_ases
log "--demo-ases=300: 300 distinct remote ASes"

max_held=0
limit_reached() {
	scrape "$P_LIMIT" "$TEST_TMP/limited.prom" || return 1
	local held
	held=$("$PYTHON" "$METRICS_PY" get "$TEST_TMP/limited.prom" flow_exporter_series)
	((held <= 1000)) || fail "flow_exporter_series = $held past --max-series=1000"
	((held > max_held)) && max_held=$held
	((held == 1000)) &&
		grep -q '^flow_receive_bytes_total{.*source_as="other"' "$TEST_TMP/limited.prom" &&
		(($("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/limited.prom" flow_exporter_records_overflow_total) > 0))
}
wait_until 40 "--max-series=1000 full, with overflow series" limit_reached
overflowed=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/limited.prom" flow_exporter_records_overflow_total)
log "--demo-ases=5000 --max-series=1000: 1000 series held, $overflowed records in the overflow series"

topn_other() {
	scrape "$P_TOPN" "$TEST_TMP/topn.prom" || return 1
	local most
	most=$("$PYTHON" "$CARD_PY" per-host "$TEST_TMP/topn.prom")
	((most <= 21)) || fail "--top-n=20: a hostname exposes $most series"
	((most > 0)) && grep -q '^flow_receive_bytes_total{.*source_as="other"' "$TEST_TMP/topn.prom"
}
wait_until 30 "--top-n=20: at most 21 series per hostname, other present" topn_other
log "--top-n=20: $(grep -c '^flow_receive_bytes_total' "$TEST_TMP/topn.prom") receive series exposed"

for name in tail limited topn; do
	pid_var="${name}_PID"
	stop_pid "${!pid_var}" || fail "$name exited with $STOP_RC"
	assert_clean_log "$TEST_TMP/$name.log"
done
log "ok"
