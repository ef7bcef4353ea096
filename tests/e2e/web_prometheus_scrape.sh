#!/bin/bash
# Real Prometheus 2.42 scraping the exporter over HTTPS with basic auth and a client certificate
# (RequireAndVerifyClientCert), with certificates made by openssl and the hash by htpasswd -B. One
# Prometheus, one target, five jobs: "good" (the CA, the client certificate, the right password) must give
# the exact totals of a known record set through PromQL; "wrong_password", "no_client_cert",
# "untrusted_client" (a client certificate of another CA) must fail (up == 0) and be counted as refused by
# the exporter; "untrusted_server" (Prometheus does not trust the exporter's CA) must fail too.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_web_exporter
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"
# shellcheck source=lib/web.sh
source "$FX_LIB_DIR/web.sh"

[[ -x /usr/bin/prometheus ]] || fail "/usr/bin/prometheus missing (deploy/install-deps.sh)"
make_pki
PASSWORD="pw-$RANDOM-$RANDOM"
printf '%s' "$PASSWORD" >"$TEST_TMP/password"
printf 'not-%s' "$PASSWORD" >"$TEST_TMP/wrong-password"
cat >"$TEST_TMP/web.yml" <<EOF
tls_server_config:
  cert_file: $PKI/server.pem
  key_file: $PKI/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: $PKI/ca.pem
basic_auth_users:
  prometheus: $(bcrypt_hash "$PASSWORD")
EOF

SET="$TEST_TMP/set"
push_set "$SET" 1414 2 60
push_expect "$SET" "$TEST_TMP/expected"
start_mock --topic flows:2
for p in 0 1; do must_mock produce flows "$p" "$SET/chunk0.p$p.msg"; done

PORT=$(free_port)
GOOD=("${CURL_CA[@]}" "${CURL_CLIENT[@]}" -u "prometheus:$PASSWORD")
start_web_exporter exporter "$PORT" https GOOD --brokers="$BOOT" --topic=flows --group=web-prom \
	--asn="$(cat "$SET/local")" --asn-names="$SET/asn.txt" --kafka-opt=session.timeout.ms=6000 \
	--kafka-opt=auto.offset.reset=earliest --web.config.file="$TEST_TMP/web.yml"

PROM_PORT=$(free_port)
job() { # NAME CA CERT KEY PASSWORD_FILE
	printf '  - job_name: %s\n    scheme: https\n    tls_config:\n      ca_file: %s\n' "$1" "$2"
	[[ -z $3 ]] || printf '      cert_file: %s\n      key_file: %s\n' "$3" "$4"
	printf '    basic_auth:\n      username: prometheus\n      password_file: %s\n' "$5"
	printf "    static_configs:\n      - targets: ['127.0.0.1:%s']\n" "$PORT"
}
{
	printf 'global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n'
	job good "$PKI/ca.pem" "$PKI/client.pem" "$PKI/client.key" "$TEST_TMP/password"
	job wrong_password "$PKI/ca.pem" "$PKI/client.pem" "$PKI/client.key" "$TEST_TMP/wrong-password"
	job no_client_cert "$PKI/ca.pem" "" "" "$TEST_TMP/password"
	job untrusted_client "$PKI/ca.pem" "$PKI/untrusted.pem" "$PKI/untrusted.key" "$TEST_TMP/password"
	job untrusted_server "$PKI/other-ca.pem" "$PKI/client.pem" "$PKI/client.key" "$TEST_TMP/password"
} >"$TEST_TMP/prometheus.yml"
promtool check config "$TEST_TMP/prometheus.yml" >"$TEST_TMP/promtool.log" 2>&1 ||
	fail "promtool check config: $(cat "$TEST_TMP/promtool.log")"
start_bg prometheus /usr/bin/prometheus --config.file="$TEST_TMP/prometheus.yml" \
	--storage.tsdb.path="$TEST_TMP/tsdb" --web.listen-address="127.0.0.1:$PROM_PORT"
wait_ready prometheus "$prometheus_PID" "http://127.0.0.1:$PROM_PORT/-/ready"
log "Prometheus ready on 127.0.0.1:$PROM_PORT (pid $prometheus_PID)"

# check_prometheus: every job's up as expected and the good job's sums by hostname exact; prints why not.
check_prometheus() {
	"$PYTHON" - "$PROM_PORT" "$TEST_TMP/expected.hosts.json" <<'EOF'
import json, sys, urllib.parse, urllib.request
port, want = sys.argv[1], json.load(open(sys.argv[2]))
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def query(expr):
    url = "http://127.0.0.1:%s/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr}))
    with opener.open(url, timeout=5) as r:
        return json.load(r)["data"]["result"]
up = {item["metric"]["job"]: item["value"][1] for item in query("up")}
want_up = {"good": "1", "wrong_password": "0", "no_client_cert": "0", "untrusted_client": "0",
           "untrusted_server": "0"}
if up != want_up:
    sys.exit("up = %s, want %s" % (up, want_up))
for family, by_host in sorted(want.items()):
    got = {item["metric"].get("hostname", ""): float(item["value"][1])
           for item in query('sum by (hostname) (%s{job="good"})' % family)}
    if got != {host: float(total) for host, total in by_host.items()}:
        sys.exit("%s: got %s, want %s" % (family, got, by_host))
print("up: %s; %d families exact" % (up, len(want)))
EOF
}
deadline=$((SECONDS + 40))
until check_prometheus >"$TEST_TMP/check.out" 2>&1; do
	((SECONDS < deadline)) || fail "Prometheus: $(tail -c 1500 "$TEST_TMP/check.out")"
	sleep 1
done
log "Prometheus over HTTPS + client certificate + basic auth: $(cat "$TEST_TMP/check.out")"

unauthorized=$(web_value "https://127.0.0.1:$PORT/metrics" GOOD flow_exporter_http_refused_total reason=unauthorized)
cert_refused=$(web_value "https://127.0.0.1:$PORT/metrics" GOOD flow_exporter_http_refused_total reason=client_certificate)
((unauthorized > 0 && cert_refused > 0)) ||
	fail "the exporter counted unauthorized=$unauthorized, client_certificate=$cert_refused (both must be > 0)"
log "refused by the exporter: unauthorized=$unauthorized (wrong password), client_certificate=$cert_refused (no or untrusted certificate)"

stop_pid "$prometheus_PID" TERM 15 || fail "prometheus exited $STOP_RC"
stop_pid "$exporter_PID" TERM 10 || fail "the exporter exited $STOP_RC"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
log "ok"
