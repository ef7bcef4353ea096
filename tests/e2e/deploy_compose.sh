#!/bin/bash
# deploy/docker-compose.yml: it parses with a compose tool from Debian (docker-compose 1.29, `config`
# validates and resolves it without a container engine), its service commands use only flags their
# programs accept (checked against `--help` of flow-exporter, prometheus and prometheus-pushgateway), and
# the stack it describes works: the exporter, Prometheus and the Pushgateway run here with exactly the
# compose commands and the compose Prometheus configuration (only the stack's host names replaced by
# loopback addresses), and Prometheus ends up with the flows scraped, remote-written and through the
# Pushgateway, each under its own job. (Grafana and the Kafka image are not packaged here: their parts are
# checked by structure.)
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

: "${FX_SOURCE:?FX_SOURCE must name the source tree}"
for tool in docker-compose prometheus promtool prometheus-pushgateway; do
	command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh installs it)"
done
COMPOSE_PY="$FX_LIB_DIR/deploy_compose.py"
DEPLOY="$FX_SOURCE/deploy"

# --- Parse and resolve (defaults of the ${VARIABLES} as a user without a .env file gets them).
(
	cd "$DEPLOY"
	env -u FLOW_EXPORTER_BROKERS -u FLOW_EXPORTER_TOPIC -u FLOW_EXPORTER_ASN -u GRAFANA_ADMIN_PASSWORD \
		docker-compose -f docker-compose.yml --profile kafka config
) >"$TEST_TMP/resolved.yml" 2>"$TEST_TMP/compose.log" || {
	cat "$TEST_TMP/compose.log" >&2
	fail "docker-compose config rejects deploy/docker-compose.yml"
}
log "docker-compose $(docker-compose version --short 2>/dev/null) parses the file: $(
	cd "$DEPLOY" && docker-compose -f docker-compose.yml --profile kafka config --services 2>/dev/null | tr '\n' ' '
)"

mkdir -p "$TEST_TMP/help"
"$FX_BIN" --help >"$TEST_TMP/help/flow-exporter.txt" 2>&1
prometheus --help >"$TEST_TMP/help/prometheus.txt" 2>&1 || true
prometheus-pushgateway --help >"$TEST_TMP/help/pushgateway.txt" 2>&1 || true
grep -q -- '--brokers' "$TEST_TMP/help/flow-exporter.txt" || fail "flow-exporter --help lists no --brokers"
grep -q -- '--web.enable-remote-write-receiver' "$TEST_TMP/help/prometheus.txt" || fail "prometheus --help is not as expected"
grep -q -- '--persistence.file' "$TEST_TMP/help/pushgateway.txt" || fail "prometheus-pushgateway --help is not as expected"
"$PYTHON" "$COMPOSE_PY" check "$TEST_TMP/resolved.yml" "$TEST_TMP/help" >&2 || fail "the compose file's services"
# As the container sees it: both files mounted in /etc/prometheus.
mkdir -p "$TEST_TMP/etc-prometheus"
cp "$DEPLOY/compose/prometheus.yml" "$DEPLOY/prometheus/flow-exporter.rules.yml" "$TEST_TMP/etc-prometheus/"
promtool check config "$TEST_TMP/etc-prometheus/prometheus.yml" >"$TEST_TMP/check-config.log" 2>&1 || {
	cat "$TEST_TMP/check-config.log" >&2
	fail "promtool check config deploy/compose/prometheus.yml"
}
log "every service command uses accepted flags; the stack's Prometheus configuration is valid"

# --- The stack, here: the compose commands with loopback addresses.
PROM_PORT=$(free_port)
PGW_PORT=$(free_port)
EXPORTER_PORT=$(free_port)
MAP=("prometheus:9090=127.0.0.1:$PROM_PORT" "pushgateway:9091=127.0.0.1:$PGW_PORT"
	"flow-exporter:9590=127.0.0.1:$EXPORTER_PORT")
service_command() {
	mapfile -t COMMAND < <("$PYTHON" "$COMPOSE_PY" command "$TEST_TMP/resolved.yml" "$1" "${MAP[@]}")
}

# Prometheus: the compose configuration (scrape every second here) and the rules it mounts.
"$PYTHON" - "$DEPLOY/compose/prometheus.yml" "$TEST_TMP/prometheus.yml" "$DEPLOY/prometheus/flow-exporter.rules.yml" "${MAP[@]}" <<'EOF'
import sys, yaml
source, out, rules, *mappings = sys.argv[1:]
text = open(source).read()
for mapping in mappings:
    host, address = mapping.split("=", 1)
    text = text.replace(host, address)
config = yaml.safe_load(text)
config["global"].update(scrape_interval="1s", evaluation_interval="1s")
config["rule_files"] = [rules]
for job in config["scrape_configs"]:
    job["scrape_timeout"] = "1s"
yaml.safe_dump(config, open(out, "w"))
EOF
service_command prometheus
args=()
for argument in "${COMMAND[@]}"; do
	case $argument in
	--config.file=*) args+=("--config.file=$TEST_TMP/prometheus.yml") ;;
	--storage.tsdb.path=*) args+=("--storage.tsdb.path=$TEST_TMP/tsdb") ;;
	*) args+=("$argument") ;;
	esac
done
log "prometheus ${args[*]}"
prometheus "${args[@]}" --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$TEST_TMP/prometheus.log" 2>&1 &
STARTED_PIDS+=("$!")

service_command pushgateway
args=()
for argument in "${COMMAND[@]}"; do
	case $argument in
	--persistence.file=*) args+=("--persistence.file=$TEST_TMP/pushgateway.db") ;;
	*) args+=("$argument") ;;
	esac
done
log "prometheus-pushgateway ${args[*]}"
prometheus-pushgateway "${args[@]}" --web.listen-address="127.0.0.1:$PGW_PORT" >"$TEST_TMP/pushgateway.log" 2>&1 &
STARTED_PIDS+=("$!")
wait_until 30 "Prometheus to be ready" curl -fsS -m 2 "http://127.0.0.1:$PROM_PORT/-/ready"
wait_until 30 "the Pushgateway to be ready" curl -fsS -m 2 "http://127.0.0.1:$PGW_PORT/-/ready"

# The exporter: the compose command as is (the embedded demo), a 1 s push interval, a loopback address.
service_command flow-exporter
args=()
for argument in "${COMMAND[@]}"; do
	case $argument in
	--push-interval=*) args+=("--push-interval=1s") ;;
	*) args+=("$argument") ;;
	esac
done
start_exporter exporter "$EXPORTER_PORT" "${args[@]}" --asn-names="$DEPLOY/demo/asn-demo.txt"

# The same flows, three ways into Prometheus.
has_job() {
	curl -fsS -m 5 --get "http://127.0.0.1:$PROM_PORT/api/v1/query" \
		--data-urlencode "query=count(flow_receive_bytes_total{$1}) > 0" | grep -q '"value"'
}
wait_until 60 "scraped flows (job=flow-exporter)" has_job 'job="flow-exporter"'
wait_until 60 "remote-written flows (job=flow-exporter-push)" has_job 'job="flow-exporter-push"'
wait_until 60 "flows through the Pushgateway (job=pushgateway)" has_job 'job="pushgateway",exported_job="flow-exporter-push"'
log "Prometheus holds the flows scraped, by remote write and through the Pushgateway"
if grep -Ei 'out of order|duplicate sample|error' "$TEST_TMP/prometheus.log" >&2; then
	fail "Prometheus reports errors (see prometheus.log)"
fi

stop_pid "$exporter_PID" TERM 15 || fail "the exporter exited $STOP_RC on SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
