#!/bin/bash
# Real Prometheus: Prometheus 2.42 (Debian's /usr/bin/prometheus) scrapes the exporter every second on
# loopback after a known record set (flows.py: several partitions, hosts, ASNs, interfaces, multi-value
# messages, markers and malformed records) has been consumed. PromQL must give back the exact totals:
# sum() of each flow family, and sum by (hostname) of each, compared as integers (every total here stays
# below 2^53, so the float Prometheus stores is exact; the test checks that). `promtool check metrics`
# must accept the exporter's body (exit 0, no lint problem).
source "$(dirname "$0")/lib/common.sh"

[[ -x /usr/bin/prometheus && -x /usr/bin/promtool ]] || fail "prometheus/promtool missing (deploy/install-deps.sh)"

PARTS=4
SET="$TEST_TMP/set"
"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 42 --partitions "$PARTS" --messages 150
LOCAL=$("$PYTHON" -c 'import json, sys; print(",".join(map(str, json.load(open(sys.argv[1]))["local"])))' "$SET/manifest.json")

# flows.py puts one record of 2^64-1 bytes first in partition 0 (for the exposition's exactness tests);
# a float cannot hold it, so this test leaves that message out: partition 0 starts at its message 1.
"$PYTHON" - "$SET/chunk0.p0.msg" <<'EOF'
import sys
path = sys.argv[1]
messages = open(path, "rb").read().split(b"\x1e")
open(path, "wb").write(b"\x1e".join(messages[1:]))
EOF
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --from p0=1 --out "$TEST_TMP/expected.prom" \
	--counts-out "$TEST_TMP/counts.json"

start_mock --topic "pmacct.acct:$PARTS"
for ((p = 0; p < PARTS; p++)); do
	must_mock produce pmacct.acct "$p" "$SET/chunk0.p$p.msg"
done
log "produced: $(tr -d '\n ' <"$TEST_TMP/counts.json")"

PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=pmacct.acct --group=prometheus-scrape \
	--asn="$LOCAL" --asn-names="$SET/asn.txt" --kafka-opt=session.timeout.ms=6000 \
	--kafka-opt=auto.offset.reset=earliest
wait_metrics "$PORT" "$TEST_TMP/expected.prom" 60
log "the exporter's counters are exact; now Prometheus"

# promtool reads the body on stdin: exit 0 only with no parse error (1) and no lint problem (3).
scrape "$PORT" "$TEST_TMP/body.prom" || fail "scrape failed"
promtool check metrics <"$TEST_TMP/body.prom" >"$TEST_TMP/promtool.log" 2>&1 ||
	fail "promtool check metrics exited $?: $(head -c 2000 "$TEST_TMP/promtool.log")"

# The expected PromQL answers, from the expectation file (integers).
FX_LIB="$FX_LIB_DIR" "$PYTHON" - "$TEST_TMP/expected.prom" "$TEST_TMP/promql-expected.json" <<'EOF'
import json, os, sys
sys.path.insert(0, os.environ["FX_LIB"])
import metrics
samples = metrics.flow_samples(metrics.parse(open(sys.argv[1], encoding="utf-8").read()))
want = {}
for family in sorted(metrics.FLOW_FAMILIES):
    total, by_host = 0, {}
    for (name, labels), value in samples.items():
        if name != family:
            continue
        host = dict(labels).get("hostname", "")
        by_host[host] = by_host.get(host, 0) + int(value)
        total += int(value)
    if total >= 2 ** 53:
        sys.exit("%s sums to %d, not exact as a float: the set is unusable here" % (family, total))
    want["sum(%s)" % family] = {"": total}
    want["sum by (hostname) (%s)" % family] = by_host
json.dump(want, open(sys.argv[2], "w"), indent=1, sort_keys=True)
EOF
[[ -s $TEST_TMP/promql-expected.json ]] || fail "no PromQL expectation"

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
promtool check config "$TEST_TMP/prometheus.yml" >"$TEST_TMP/promtool-config.log" 2>&1 ||
	fail "promtool check config: $(cat "$TEST_TMP/promtool-config.log")"
prometheus --config.file="$TEST_TMP/prometheus.yml" --storage.tsdb.path="$TEST_TMP/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" >"$TEST_TMP/prometheus.log" 2>&1 &
PROM_PID=$!
STARTED_PIDS+=("$PROM_PID")
wait_until 30 "Prometheus /-/ready" curl -fsS -m 2 "http://127.0.0.1:$PROM_PORT/-/ready"
log "Prometheus ready on 127.0.0.1:$PROM_PORT (pid $PROM_PID)"

# query_all: every query of promql-expected.json against Prometheus; exit 0 when each answer equals its
# expectation exactly, else prints the differences.
query_all() {
	"$PYTHON" - "$PROM_PORT" "$TEST_TMP/promql-expected.json" <<'EOF'
import json, sys, urllib.parse, urllib.request
port, want = sys.argv[1], json.load(open(sys.argv[2]))
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy

def query(expr):
    url = "http://127.0.0.1:%s/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr}))
    with opener.open(url, timeout=5) as r:
        body = json.load(r)
    if body.get("status") != "success" or body["data"]["resultType"] != "vector":
        raise SystemExit("%s: %s" % (expr, body))
    out = {}
    for item in body["data"]["result"]:
        value = item["value"][1]
        number = float(value)
        if number != int(number):
            raise SystemExit("%s: not an integer: %s" % (expr, value))
        out[item["metric"].get("hostname", "")] = int(number)
    return out

up = query('up{job="flow-exporter"}')
if up != {"": 1}:
    print("up{job=\"flow-exporter\"} = %s (no successful scrape yet)" % up)
    sys.exit(1)
bad = 0
for expr, expected in sorted(want.items()):
    got = query(expr)
    if got != expected:
        bad += 1
        print("%s:\n  got  %s\n  want %s" % (expr, json.dumps(got, sort_keys=True)[:600],
                                            json.dumps(expected, sort_keys=True)[:600]))
sys.exit(1 if bad else 0)
EOF
}

deadline=$((SECONDS + 30))
until query_all >"$TEST_TMP/promql.diff" 2>&1; do
	if ((SECONDS >= deadline)); then
		cat "$TEST_TMP/promql.diff" >&2
		fail "Prometheus's sums did not equal the expected totals within 30 s"
	fi
	sleep 1
done
log "PromQL: $(grep -c '^ "sum' "$TEST_TMP/promql-expected.json") queries, each exact: $(
	"$PYTHON" -c 'import json, sys; w = json.load(open(sys.argv[1])); print(", ".join("%s=%d" % (k, v[""]) for k, v in sorted(w.items()) if k.startswith("sum(")))' "$TEST_TMP/promql-expected.json")"

stop_pid "$PROM_PID" TERM 15 || fail "prometheus exited with status $STOP_RC"
stop_pid "$exporter_PID" TERM 10 || fail "the exporter exited with status $STOP_RC"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
