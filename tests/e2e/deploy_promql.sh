#!/bin/bash
# The Grafana dashboard and the Prometheus recipes of deploy/ against a real Prometheus 2.42:
#   - the dashboard JSON has the variables (job, router, iface_in, iface_out) and the panels of issue 4;
#   - `promtool check rules` and `promtool test rules` (each alert firing under its condition, not otherwise);
#   - `promtool check config` on the scrape and remote-write-receiver recipes;
#   - a Prometheus run from the scrape recipe (its job, its rule file; 1 s intervals, loopback targets)
#     scrapes two exporters on their embedded demo and receives remote write from one of them. The live
#     data is arranged so that the alert conditions hold: a dead target (FlowExporterDown), a push endpoint
#     answering 400 (FlowExporterPushesFailing, FlowExporterPushDataDropped), an exporter at its
#     --max-series (FlowExporterSeriesLimitReached), each firing for that target only. Every PromQL expression of the dashboard (template
#     variables substituted, all at "All" and at one real router/interface combination) and of the rules
#     must return a non-empty result, except FlowExporterConsumerLagGrowing: the lag cannot be made to grow
#     here, so it must only run (promtool test rules shows it firing); Prometheus must report every rule
#     healthy, and FlowExporterPushDataDropped (no `for`) firing.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

: "${FX_SOURCE:?FX_SOURCE must name the source tree}"
for tool in prometheus promtool; do
	command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh installs prometheus)"
done
DEPLOY="$FX_SOURCE/deploy"
DASHBOARD="$DEPLOY/grafana/flow-exporter.json"
RULES="$DEPLOY/prometheus/flow-exporter.rules.yml"
PROMQL_PY="$FX_LIB_DIR/deploy_promql.py"

# --- Static checks.
"$PYTHON" "$PROMQL_PY" dashboard "$DASHBOARD" >&2 || fail "the dashboard lacks variables or panels"
promtool check rules "$RULES" >"$TEST_TMP/check-rules.log" 2>&1 || {
	cat "$TEST_TMP/check-rules.log" >&2
	fail "promtool check rules"
}
(cd "$DEPLOY/prometheus" && promtool test rules flow-exporter.rules.test.yml) >"$TEST_TMP/test-rules.log" 2>&1 || {
	cat "$TEST_TMP/test-rules.log" >&2
	fail "promtool test rules"
}
"$PYTHON" - "$DEPLOY/prometheus/flow-exporter.rules.test.yml" "$RULES" <<'EOF' || fail "an alert is not tested both ways"
import sys, yaml
tests = yaml.safe_load(open(sys.argv[1]))["tests"]
alerts = [r["alert"] for g in yaml.safe_load(open(sys.argv[2]))["groups"] for r in g["rules"] if "alert" in r]
cases = [c for t in tests for c in t.get("alert_rule_test", [])]
for alert in alerts:
    mine = [c for c in cases if c["alertname"] == alert]
    if not any(c.get("exp_alerts") for c in mine) or not any(not c.get("exp_alerts") for c in mine):
        sys.exit(f"{alert}: promtool test rules must show it firing and not firing")
EOF
for config in prometheus.yml remote-write-receiver.yml; do
	promtool check config "$DEPLOY/prometheus/$config" >"$TEST_TMP/check-config.log" 2>&1 || {
		cat "$TEST_TMP/check-config.log" >&2
		fail "promtool check config $config"
	}
done
log "dashboard structure, promtool check/test rules and check config pass"

# --- Live data: two demo exporters, a push endpoint that refuses, a dead target.
"$FX_TOOLS/rw_receiver" --port 0 --script 400 --log "$TEST_TMP/rw.jsonl" >"$TEST_TMP/rw.out" 2>"$TEST_TMP/rw.log" &
STARTED_PIDS+=("$!")
wait_until 10 "rw_receiver to listen" grep -q '^LISTEN ' "$TEST_TMP/rw.out"
REFUSING_PORT=$(awk '/^LISTEN / {print $2; exit}' "$TEST_TMP/rw.out")
PROM_PORT=$(free_port)
A_PORT=$(free_port)
B_PORT=$(free_port)
DEAD_PORT=$(free_port)
NAMES="$FX_SOURCE/deploy/demo/asn-demo.txt"

# The scrape recipe with loopback targets and 1 s intervals; everything else as shipped.
"$PYTHON" - "$DEPLOY/prometheus/prometheus.yml" "$TEST_TMP/prometheus.yml" "$RULES" \
	"127.0.0.1:$A_PORT" "127.0.0.1:$B_PORT" "127.0.0.1:$DEAD_PORT" <<'EOF'
import sys, yaml
recipe, out, rules, *targets = sys.argv[1:]
config = yaml.safe_load(open(recipe))
config["global"].update(scrape_interval="1s", evaluation_interval="1s")
config["rule_files"] = [rules]
jobs = [job for job in config["scrape_configs"] if job["job_name"] == "flow-exporter"]
assert len(jobs) == 1, "the recipe has no flow-exporter job"
jobs[0]["static_configs"] = [{"targets": targets}]
jobs[0]["scrape_timeout"] = "1s"
yaml.safe_dump(config, open(out, "w"))
EOF
prometheus --config.file="$TEST_TMP/prometheus.yml" --storage.tsdb.path="$TEST_TMP/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver --log.level=warn \
	>"$TEST_TMP/prometheus.log" 2>&1 &
STARTED_PIDS+=("$!")
wait_until 30 "Prometheus to be ready" curl -fsS -m 2 "http://127.0.0.1:$PROM_PORT/-/ready"

# Interface names for the demo's routers, some interfaces left unnamed: the interface panels show names by
# the flow_interface_info join and fall back to the ifIndex for the others.
IFACES="$FX_SOURCE/deploy/demo/interfaces.csv"
start_exporter exporter_a "$A_PORT" --asn-names="$NAMES" --interface-names="$IFACES" --push-interval=1s \
	--remote-write-url="http://127.0.0.1:$PROM_PORT/api/v1/write" \
	--remote-write-url="http://127.0.0.1:$REFUSING_PORT/api/v1/write" --external-label=job=flow-exporter-push
start_exporter exporter_b "$B_PORT" --asn-names="$NAMES" --interface-names="$IFACES" --max-series=20

# Every dashboard and rule expression, on the scraped job and on the remote-written one.
"$PYTHON" "$PROMQL_PY" evaluate --prometheus "http://127.0.0.1:$PROM_PORT" --dashboard "$DASHBOARD" \
	--rules "$RULES" --job flow-exporter --may-be-empty FlowExporterConsumerLagGrowing --timeout 90 \
	--expect "FlowExporterDown:instance=127.0.0.1:$DEAD_PORT" \
	--expect "FlowExporterPushesFailing:url=http://127.0.0.1:$REFUSING_PORT/api/v1/write" \
	--expect "FlowExporterPushDataDropped:url=http://127.0.0.1:$REFUSING_PORT/api/v1/write" \
	--expect "FlowExporterPushDataDropped:reason=4xx" \
	--expect "FlowExporterSeriesLimitReached:instance=127.0.0.1:$B_PORT" \
	>"$TEST_TMP/evaluate.log" || {
	cat "$TEST_TMP/evaluate.log" >&2
	fail "a dashboard or rule expression fails on the scraped data"
}
cat "$TEST_TMP/evaluate.log" >&2
log "every dashboard and rule expression returns data from the scraped exporters"

# The interface panels name the interfaces: named ones carry the file's name, unnamed ones stay, by ifIndex.
interface_names() {
	"$PYTHON" - "$FX_LIB_DIR" "$DASHBOARD" "http://127.0.0.1:$PROM_PORT" "$IFACES" <<'PY'
import csv, json, sys
sys.path.insert(0, sys.argv[1])
import deploy_promql as d
dashboard, base = json.load(open(sys.argv[2])), sys.argv[3]
names = {(r["exporter"], r["ifindex"]): r["name"] for r in csv.DictReader(open(sys.argv[4]))}
values = {"job": "flow-exporter", "datasource": "prometheus", "router": ".*", "iface_in": ".*", "iface_out": ".*"}
for panel in d.all_panels(dashboard):
    for target in panel.get("targets", []):
        if "{{name}}" not in target.get("legendFormat", ""):
            continue
        iface = "iface_in" if "{{iface_in}} {{name}}" in target["legendFormat"] else "iface_out"
        _, result = d.run(base, d.substitute(target["expr"], values))
        named = [r["metric"] for r in result if "name" in r["metric"]]
        bad = [m for m in named if names.get((m["hostname"], m[iface])) != m["name"]]
        unnamed = [r["metric"] for r in result if "name" not in r["metric"]]
        wrong = [m for m in unnamed if (m["hostname"], m[iface]) in names]
        print(f"{panel['title']!r}: {len(named)} named, {len(unnamed)} by ifIndex, wrong {bad + wrong}")
        if not named or not unnamed or bad or wrong:
            sys.exit(1)
PY
}
wait_until 30 "the interface panels to show the file's names" interface_names
log "interface panels: $(interface_names | tr '\n' ' ')"

# Pushed data has no `up` (the exporter is not scraped under that job): that panel may be empty there.
"$PYTHON" - "$DASHBOARD" "$TEST_TMP/dashboard-push.json" <<'EOF'
import json, sys
dashboard = json.load(open(sys.argv[1]))
for panel in dashboard["panels"]:
    panel["targets"] = [t for t in panel.get("targets", []) if not t.get("expr", "").startswith("up{")]
json.dump(dashboard, open(sys.argv[2], "w"))
EOF
printf 'groups: []\n' >"$TEST_TMP/no-rules.yml"
"$PYTHON" "$PROMQL_PY" evaluate --prometheus "http://127.0.0.1:$PROM_PORT" --dashboard "$TEST_TMP/dashboard-push.json" \
	--rules "$TEST_TMP/no-rules.yml" --job flow-exporter-push --timeout 30 >"$TEST_TMP/evaluate-push.log" || {
	cat "$TEST_TMP/evaluate-push.log" >&2
	fail "a dashboard expression fails on the remote-written data"
}
log "every dashboard expression returns data from the remote-written series too"

# Prometheus's own view of the rules: all loaded and healthy, the unconditional one firing.
rules_state() {
	curl -fsS -m 5 "http://127.0.0.1:$PROM_PORT/api/v1/rules" >"$TEST_TMP/rules.json" &&
		"$PYTHON" - "$TEST_TMP/rules.json" "$RULES" <<'EOF'
import json, sys, yaml
state = json.load(open(sys.argv[1]))["data"]["groups"]
loaded = {r["name"]: r for g in state for r in g["rules"]}
wanted = [r["alert"] for g in yaml.safe_load(open(sys.argv[2]))["groups"] for r in g["rules"]]
bad = [f"{n}: {loaded[n].get('health')} {loaded[n].get('lastError', '')}" for n in wanted if n in loaded and loaded[n].get("health") != "ok"]
missing = [n for n in wanted if n not in loaded]
firing = loaded.get("FlowExporterPushDataDropped", {}).get("state")
print(f"missing={missing} unhealthy={bad} FlowExporterPushDataDropped={firing}")
sys.exit(0 if not missing and not bad and firing == "firing" else 1)
EOF
}
wait_until 30 "Prometheus to load every rule healthy and fire FlowExporterPushDataDropped" rules_state
log "Prometheus: every rule healthy; FlowExporterPushDataDropped firing; $(rules_state)"

for name in exporter_a exporter_b; do
	pid_var="${name}_PID"
	stop_pid "${!pid_var}" TERM 15 || fail "$name exited $STOP_RC on SIGTERM"
	assert_clean_log "$TEST_TMP/$name.log"
done
