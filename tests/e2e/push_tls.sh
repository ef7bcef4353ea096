#!/bin/bash
# TLS on the push path, against a real Prometheus 2.42 serving its remote-write receiver over HTTPS and
# requiring a client certificate (--web.config.file): a CA, a server certificate for 127.0.0.1 and a client
# certificate are made with openssl. Four exporters read the same records (one consumer group each):
# - with --push-ca-file and the client certificate: delivered, exact totals;
# - with --push-insecure-skip-verify and the client certificate, no CA: delivered, exact totals;
# - with the CA but no client certificate: refused by the server (network errors), nothing delivered;
# - with the client certificate but no CA: the server's certificate is not trusted, nothing delivered.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

PKI="$TEST_TMP/pki"
mkdir -p "$PKI"
make_cert() { # NAME SUBJECT [EXTENSIONS]: a key and a certificate signed by the test CA
	openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$1.key" -subj "$2" -out "$PKI/$1.csr" 2>/dev/null
	printf '%s\n' "${3:-basicConstraints=CA:FALSE}" >"$PKI/$1.ext"
	openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
		-extfile "$PKI/$1.ext" -out "$PKI/$1.pem" 2>/dev/null || fail "openssl: $1"
}
openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -subj "/CN=flow-exporter test CA" \
	-days 2 -out "$PKI/ca.pem" 2>/dev/null || fail "openssl: CA"
make_cert server "/CN=127.0.0.1" "subjectAltName=IP:127.0.0.1"
make_cert client "/CN=flow-exporter" "extendedKeyUsage=clientAuth"

SET="$TEST_TMP/set"
push_set "$SET" 443 2 40
push_expect "$SET" "$TEST_TMP/expected"
expected_rx=$("$PYTHON" -c 'import json,sys; print(sum(json.load(open(sys.argv[1]))["flow_receive_bytes_total"].values()))' \
	"$TEST_TMP/expected.hosts.json")
((expected_rx > 0)) || fail "the record set has no received bytes: the test could not fail"

PROM_PORT=$(free_port)
cat >"$TEST_TMP/web.yml" <<EOW
tls_server_config:
  cert_file: $PKI/server.pem
  key_file: $PKI/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: $PKI/ca.pem
EOW
printf 'global:\n  scrape_interval: 1m\n' >"$TEST_TMP/prom.yml"
start_bg prom /usr/bin/prometheus --config.file="$TEST_TMP/prom.yml" --storage.tsdb.path="$TEST_TMP/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver \
	--web.config.file="$TEST_TMP/web.yml"
CURL_TLS=(--cacert "$PKI/ca.pem" --cert "$PKI/client.pem" --key "$PKI/client.key")
deadline=$((SECONDS + 30))
until curl -fsS -m 2 "${CURL_TLS[@]}" -o /dev/null "https://127.0.0.1:$PROM_PORT/-/ready" 2>/dev/null; do
	((SECONDS < deadline)) || fail "Prometheus did not answer over TLS"
	sleep 0.2
done
# The server really requires a client certificate: without one, the handshake fails.
if curl -fsS -m 2 --cacert "$PKI/ca.pem" -o /dev/null "https://127.0.0.1:$PROM_PORT/-/ready" 2>/dev/null; then
	fail "Prometheus answered without a client certificate: the test could not fail"
fi
log "Prometheus serves HTTPS with client certificates on 127.0.0.1:$PROM_PORT"

start_mock --topic flows:2
for p in 0 1; do must_mock produce flows "$p" "$SET/chunk0.p$p.msg"; done

URL="https://127.0.0.1:$PROM_PORT/api/v1/write"
start_pusher() { # NAME ARGS...
	local name=$1 port
	shift
	port=$(free_port)
	printf -v "${name}_PORT" '%s' "$port"
	start_exporter "$name" "$port" --brokers="$BOOT" --topic=flows --group="tls-$name" \
		--asn="$(cat "$SET/local")" --asn-names="$SET/asn.txt" --kafka-opt=session.timeout.ms=6000 \
		--kafka-opt=auto.offset.reset=earliest --remote-write-url="$URL" --push-interval=1s \
		--push-timeout=3s --external-label=instance="$name" "$@"
}
start_pusher verified --push-ca-file="$PKI/ca.pem" --push-cert-file="$PKI/client.pem" \
	--push-key-file="$PKI/client.key"
start_pusher insecure --push-insecure-skip-verify --push-cert-file="$PKI/client.pem" \
	--push-key-file="$PKI/client.key"
start_pusher no_client_cert --push-ca-file="$PKI/ca.pem"
start_pusher untrusted --push-cert-file="$PKI/client.pem" --push-key-file="$PKI/client.key"

query() { # INSTANCE: sum(flow_receive_bytes_total{instance=INSTANCE}) as Prometheus answers it, or "none"
	curl -fsS -m 5 "${CURL_TLS[@]}" "https://127.0.0.1:$PROM_PORT/api/v1/query" \
		--data-urlencode "query=sum(flow_receive_bytes_total{instance=\"$1\"})" |
		"$PYTHON" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'
}
for name in verified insecure; do
	deadline=$((SECONDS + 60))
	until [[ $(query "$name") == "$expected_rx" ]]; do
		((SECONDS < deadline)) || fail "$name: Prometheus has $(query "$name"), expected $expected_rx"
		sleep 0.5
	done
	log "$name: delivered over TLS, sum(flow_receive_bytes_total) = $expected_rx"
done

# The two that must fail have had as long to push: nothing of theirs arrived, and they counted why.
for name in no_client_cert untrusted; do
	port_var="${name}_PORT"
	failures=$(exporter_value "${!port_var}" flow_exporter_push_requests_total status_class=network)
	delivered=$(exporter_value "${!port_var}" flow_exporter_push_requests_total status_class=2xx)
	[[ $(query "$name") == none ]] || fail "$name: Prometheus holds data it should have refused"
	((failures > 0 && delivered == 0)) || fail "$name: $failures network failures, $delivered delivered"
	log "$name: refused as it must be ($failures failed requests, none delivered)"
done
for name in verified insecure no_client_cert untrusted; do
	pid_var="${name}_PID"
	stop_pid "${!pid_var}" || fail "$name exited with $STOP_RC"
done
log "ok"
