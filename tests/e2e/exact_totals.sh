# Exact totals end to end: a known set of pmacct records (several partitions, hosts, ASNs and interfaces,
# multi-value messages, markers and malformed records mixed in) produced into the mock cluster; the
# exporter, as its own process, must show exactly the series and sums the generator computed, count every
# bad record by its reason, count nothing twice, and serve a body promtool accepts.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

LOCAL_ASNS=64496,4200000001,65551
SET="$TEST_TMP/set"

"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 20261126 --partitions 4 --messages 250 --local "$LOCAL_ASNS"
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --out "$TEST_TMP/expected.prom" \
	--counts-out "$TEST_TMP/expected-counts.json"
log "expecting $(wc -l <"$TEST_TMP/expected.prom") flow samples; counts: $(tr -d ' \n' <"$TEST_TMP/expected-counts.json")"

start_mock --topic flows:4
for p in 0 1 2 3; do
	must_mock produce flows "$p" "$SET/chunk0.p$p.msg"
	[[ $MOCK_REPLY == "OK 250 0 249" ]] || fail "partition $p: unexpected produce answer: $MOCK_REPLY"
done

PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --asn="$LOCAL_ASNS" \
	--asn-names="$SET/asn.txt" --group=g1 \
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest

wait_metrics "$PORT" "$TEST_TMP/expected.prom" 60 "$TEST_TMP/expected-counts.json"
log "flow series match exactly"

# Every bad record counted by its reason, every marker and foreign flow ignored, once. The self-metrics
# may trail the flow series by a flush: wait a little for them too.
self_check() {
	scrape "$PORT" "$TEST_TMP/self.prom" &&
		"$PYTHON" "$METRICS_PY" self-check "$TEST_TMP/self.prom" "$TEST_TMP/expected-counts.json" \
			>"$TEST_TMP/self.diff" 2>&1
}
deadline=$((SECONDS + 10))
until self_check; do
	if ((SECONDS >= deadline)); then
		cat "$TEST_TMP/self.diff" >&2
		fail "the record self-metrics differ from the generated counts"
	fi
	sleep 0.5
done
log "record self-metrics match"

# Nothing counted twice: two seconds later (several flushes and snapshots) the same values.
sleep 2
assert_metrics "$PORT" "$TEST_TMP/expected.prom"
self_check || {
	cat "$TEST_TMP/self.diff" >&2
	fail "the record self-metrics changed after they matched"
}
assert_alive "$exporter_PID" exporter

# Every sample once, self-metrics included (promtool does not check this).
scrape "$PORT" "$TEST_TMP/unique.prom" || fail "scrape"
"$PYTHON" "$METRICS_PY" unique "$TEST_TMP/unique.prom" || fail "a sample appears twice in /metrics"

# The body as a scraper sees it: Content-Type and a clean promtool lint.
headers=$(curl -fsS -m 5 -D - -o "$TEST_TMP/final.prom" "http://127.0.0.1:$PORT/metrics")
grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' <<<"$headers" ||
	fail "unexpected Content-Type: $(grep -i '^content-type' <<<"$headers")"
if ! promtool check metrics <"$TEST_TMP/final.prom" >"$TEST_TMP/promtool.log" 2>&1; then
	cat "$TEST_TMP/promtool.log" >&2
	fail "promtool check metrics rejects the body"
fi

stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"

# SIGTERM commits what was counted: every message of every partition, so that a restart in the same
# group counts nothing again.
must_mock committed g1 flows 4
log "committed after SIGTERM: ${MOCK_REPLY#OK }"
for p in 0 1 2 3; do
	[[ $(reply_field p$p) == 250 ]] ||
		fail "after SIGTERM the group's committed offsets are ${MOCK_REPLY#OK } (want 250 on every partition: all were counted)"
done
stop_mock
