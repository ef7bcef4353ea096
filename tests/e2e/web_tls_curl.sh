#!/bin/bash
# The web configuration file against curl and openssl: certificates made with openssl, hashes made with
# htpasswd -B (apache2-utils). It shows that
# - a bad file at start is exit 2 with a message naming the file and the key (and never the hash);
# - HTTPS with RequireAndVerifyClientCert and basic auth covers every endpoint: the right client gets 200
#   and the configured headers, a wrong password or an unknown user 401 with WWW-Authenticate, no client
#   certificate or one from another CA fails the handshake, and each refusal is counted;
# - TLS 1.2 is the minimum (TLS 1.1 refused), min_version TLS13 and cipher_suites are honoured;
# - each of the five client_auth_type values behaves as Go's crypto/tls does (switched by SIGHUP reloads);
# - a bad file on reload keeps the old one in force and is counted; a changed file is picked up without
#   a signal;
# - the certificate rotated in place and SIGHUP sent while a scrape loop runs: the new certificate is
#   served, and not one scrape of the loop failed.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_web_exporter
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/web.sh
source "$FX_LIB_DIR/web.sh"

command -v htpasswd >/dev/null || fail "htpasswd missing (apache2-utils, deploy/install-deps.sh)"
make_pki
PASSWORD="pw-$RANDOM-$RANDOM"
HASH=$(bcrypt_hash "$PASSWORD")
[[ $HASH == '$2y$10$'* ]] || fail "htpasswd -B made no \$2y\$ hash: $HASH"
WEB="$TEST_TMP/web.yml"

# write_web CLIENT_AUTH [EXTRA TLS LINES]: the web configuration with that client_auth_type.
write_web() {
	{
		printf 'tls_server_config:\n  cert_file: pki/server.pem\n  key_file: pki/server.key\n'
		printf '  client_ca_file: pki/ca.pem\n  client_auth_type: %s\n' "$1"
		[[ -z ${2:-} ]] || printf '%s\n' "$2"
		printf 'http_server_config:\n  http2: true\n  headers:\n    X-Content-Type-Options: nosniff\n'
		printf '    Strict-Transport-Security: max-age=31536000\n'
		printf 'basic_auth_users:\n  alice: %s\n' "$HASH"
	} >"$WEB.tmp"
	mv "$WEB.tmp" "$WEB"
}

# ---- a bad file at start: exit 2, naming the file and the key ---------------------------------------
bad_start() { # WHAT YAML EXPECTED_FRAGMENT
	printf '%s\n' "$2" >"$TEST_TMP/bad.yml"
	local rc=0
	timeout 20 "$FX_BIN" --addr=127.0.0.1:0 --asn-names=/dev/null --asn-names-cache="$TEST_TMP/c.txt" \
		--web.config.file="$TEST_TMP/bad.yml" >"$TEST_TMP/bad.out" 2>&1 || rc=$?
	((rc == 2)) || fail "$1: exit $rc, want 2: $(tail -c 600 "$TEST_TMP/bad.out")"
	grep -q -- "$3" "$TEST_TMP/bad.out" || fail "$1: the message does not say \"$3\": $(tail -c 600 "$TEST_TMP/bad.out")"
	grep -q "$TEST_TMP/bad.yml" "$TEST_TMP/bad.out" || fail "$1: the message does not name the file"
}
bad_start "unknown client_auth_type" $'tls_server_config:\n  cert_file: pki/server.pem\n  key_file: pki/server.key\n  client_auth_type: Maybe' \
	'client_auth_type: unknown value "Maybe"'
bad_start "a typo in a key" $'tls_server_config:\n  cert_file: pki/server.pem\n  keyfile: pki/server.key' \
	'line 3: tls_server_config.keyfile: unknown key'
bad_start "a key that is not the certificate's" $'tls_server_config:\n  cert_file: pki/server.pem\n  key_file: pki/client.key' \
	'cannot use cert_file with key_file'
bad_start "a broken hash" "basic_auth_users:
  alice: ${HASH:0:40}" 'basic_auth_users.alice: not a bcrypt hash'
grep -qF -- "${HASH:7:20}" "$TEST_TMP/bad.out" && fail "the message about a broken hash shows the hash"
printf 'tls_server_config: {}\n' >"$TEST_TMP/bad.yml"
rc=0
timeout 5 "$FX_BIN" --web-config-file="$TEST_TMP/no-such.yml" --addr=127.0.0.1:0 --asn-names=/dev/null \
	>"$TEST_TMP/bad.out" 2>&1 || rc=$?
((rc == 2)) && grep -q "no-such.yml" "$TEST_TMP/bad.out" || fail "a missing file (--web-config-file): exit $rc"
log "bad files at start: exit 2, each message names the file and the key, no hash shown"

# ---- HTTPS, RequireAndVerifyClientCert, basic auth ----------------------------------------------------
cp -r "$PKI" "$TEST_TMP/pki-orig"
write_web RequireAndVerifyClientCert
PORT=$(free_port)
BASE="https://127.0.0.1:$PORT"
GOOD=("${CURL_CA[@]}" "${CURL_CLIENT[@]}" -u "alice:$PASSWORD")
start_web_exporter exporter "$PORT" https GOOD --web.config.file="$WEB" --asn-names=/dev/null

for path in /metrics / /-/healthy /-/ready; do
	code=$(http_code "${GOOD[@]}" "$BASE$path")
	# /-/ready is 503 until the consumer group has joined: answered, that is, not refused.
	[[ $code == 200 || ($path == /-/ready && $code == 503) ]] || fail "GET $path with the right client: $code"
	code=$(http_code "${CURL_CA[@]}" "${CURL_CLIENT[@]}" "$BASE$path")
	[[ $code == 401 ]] || fail "GET $path without a password: $code, want 401"
done
headers=$(curl -fsS -m 5 "${GOOD[@]}" -D - -o /dev/null "$BASE/metrics")
grep -qi '^x-content-type-options: nosniff' <<<"$headers" || fail "no X-Content-Type-Options header"
grep -qi '^strict-transport-security: max-age=31536000' <<<"$headers" || fail "no Strict-Transport-Security"
for creds in "alice:wrong" "mallory:$PASSWORD" ""; do
	args=("${CURL_CA[@]}" "${CURL_CLIENT[@]}")
	[[ -z $creds ]] || args+=(-u "$creds")
	headers=$(curl -sS -m 5 "${args[@]}" -D - -o /dev/null "$BASE/metrics" || true)
	grep -q '^HTTP/1.1 401' <<<"$headers" || fail "credentials \"${creds%%:*}\": not 401: $headers"
	grep -qi '^www-authenticate: basic' <<<"$headers" || fail "401 without WWW-Authenticate: Basic"
done
[[ $(http_code "${GOOD[@]}" -X POST "$BASE/metrics") == 405 ]] || fail "POST /metrics is not 405"
[[ $(http_code "${CURL_CA[@]}" -u "alice:$PASSWORD" "$BASE/metrics") == 000 ]] || fail "no client certificate: not refused"
[[ $(http_code "${CURL_CA[@]}" --cert "$PKI/untrusted.pem" --key "$PKI/untrusted.key" -u "alice:$PASSWORD" \
	"$BASE/metrics") == 000 ]] || fail "a client certificate of another CA: not refused"
[[ $(http_code "${GOOD[@]}" --tlsv1.1 --tls-max 1.1 "$BASE/metrics") == 000 ]] || fail "TLS 1.1 accepted"
[[ $(http_code "${GOOD[@]}" --tlsv1.2 --tls-max 1.2 "$BASE/metrics") == 200 ]] || fail "TLS 1.2 refused"
[[ $(http_code "${GOOD[@]}" --tlsv1.3 "$BASE/metrics") == 200 ]] || fail "TLS 1.3 refused"
unauthorized=$(web_value "$BASE/metrics" GOOD flow_exporter_http_refused_total reason=unauthorized)
cert_refused=$(web_value "$BASE/metrics" GOOD flow_exporter_http_refused_total reason=client_certificate)
((unauthorized == 7 && cert_refused == 2)) || fail "refusals counted: unauthorized=$unauthorized (want 7), client_certificate=$cert_refused (want 2)"
log "RequireAndVerifyClientCert + basic auth: 200 for the right client on every path, 401 x7, handshake refused x2 (counted), TLS 1.1 refused, 1.2 and 1.3 served"

# ---- the five client_auth_type values, switched by SIGHUP ---------------------------------------------
RELOADS=0
reloads_at_least() { # RESULT N: flow_exporter_web_config_reloads_total{result=RESULT} >= N
	local value
	value=$(web_value "$BASE/metrics" GOOD flow_exporter_web_config_reloads_total "result=$1") && ((value >= $2))
}
reload() { # [signal|change]: waits until one more successful reload is counted
	[[ ${1:-signal} == signal ]] && kill -HUP "$exporter_PID"
	RELOADS=$((RELOADS + 1))
	wait_until 10 "reload $RELOADS" reloads_at_least success "$RELOADS"
}
matrix() { # MODE WANT_NONE WANT_TRUSTED WANT_UNTRUSTED
	local none trusted untrusted
	none=$(http_code "${CURL_CA[@]}" -u "alice:$PASSWORD" "$BASE/-/healthy")
	trusted=$(http_code "${GOOD[@]}" "$BASE/-/healthy")
	untrusted=$(http_code "${CURL_CA[@]}" --cert "$PKI/untrusted.pem" --key "$PKI/untrusted.key" -u "alice:$PASSWORD" "$BASE/-/healthy")
	[[ "$none $trusted $untrusted" == "$2 $3 $4" ]] ||
		fail "$1: no certificate / trusted / untrusted gave $none $trusted $untrusted, want $2 $3 $4"
	log "$1: no certificate $none, trusted $trusted, other CA's $untrusted"
}
for spec in "NoClientCert 200 200 200" "RequestClientCert 200 200 200" "RequireAnyClientCert 000 200 200" \
	"VerifyClientCertIfGiven 200 200 000" "RequireAndVerifyClientCert 000 200 000"; do
	read -r mode a b c <<<"$spec"
	write_web "$mode"
	reload signal
	matrix "$mode" "$a" "$b" "$c"
done

write_web RequireAndVerifyClientCert "  min_version: TLS13"
reload signal
[[ $(http_code "${GOOD[@]}" --tlsv1.2 --tls-max 1.2 "$BASE/-/healthy") == 000 ]] || fail "min_version TLS13: TLS 1.2 accepted"
[[ $(http_code "${GOOD[@]}" --tlsv1.3 "$BASE/-/healthy") == 200 ]] || fail "min_version TLS13: TLS 1.3 refused"
write_web RequireAndVerifyClientCert $'  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]'
reload signal
[[ $(http_code "${GOOD[@]}" --ciphers ECDHE-RSA-AES256-GCM-SHA384 "$BASE/-/healthy") == 000 ]] || fail "cipher_suites: another suite accepted"
[[ $(http_code "${GOOD[@]}" --ciphers ECDHE-RSA-AES128-GCM-SHA256 "$BASE/-/healthy") == 200 ]] || fail "cipher_suites: the listed suite refused"
[[ $(http_code "${GOOD[@]}" --tlsv1.3 "$BASE/-/healthy") == 000 ]] || fail "max_version TLS12: TLS 1.3 accepted"
log "min_version TLS13, max_version TLS12 and cipher_suites honoured"

# ---- a bad file on reload keeps the old one; a changed file is read without a signal -----------------
printf 'tls_server_config:\n  cert_file: pki/server.pem\n  key_file: pki/server.key\n  client_auth_type: Sometimes\n' >"$WEB"
kill -HUP "$exporter_PID"
wait_until 10 "the failed reload counted" reloads_at_least failure 1
[[ $(web_value "$BASE/metrics" GOOD flow_exporter_web_config_last_reload_successful) == 0 ]] || fail "last_reload_successful is not 0"
[[ $(http_code "${GOOD[@]}" --ciphers ECDHE-RSA-AES128-GCM-SHA256 "$BASE/-/healthy") == 200 ]] || fail "the old file is no longer in force"
[[ $(http_code "${CURL_CA[@]}" -u "alice:$PASSWORD" "$BASE/-/healthy") == 000 ]] || fail "the bad file relaxed client certificates"
grep -q 'web configuration not reloaded.*client_auth_type: unknown value "Sometimes"' "$TEST_TMP/exporter.log" ||
	fail "the failed reload is not logged with its reason"
write_web RequireAndVerifyClientCert # no signal: the watchdog sees the change
reload change
[[ $(web_value "$BASE/metrics" GOOD flow_exporter_web_config_last_reload_successful) == 1 ]] || fail "last_reload_successful is not 1"
log "a bad file on reload kept the old one (counted, logged); the corrected file was read on change"

# ---- rotation: new certificate in place + SIGHUP while a scrape loop runs -----------------------------
before=$(served_fingerprint "$PORT")
[[ -n $before ]] || fail "no certificate fingerprint from openssl s_client"
(
	ok=0 failed=0
	while [[ ! -e $TEST_TMP/stop-loop ]]; do
		if curl -fsS -m 5 "${GOOD[@]}" -o /dev/null "$BASE/metrics" 2>>"$TEST_TMP/loop.err"; then
			ok=$((ok + 1))
		else failed=$((failed + 1)); fi
		sleep 0.05
	done
	echo "$ok $failed" >"$TEST_TMP/loop.result"
) &
LOOP_PID=$!
STARTED_PIDS+=("$LOOP_PID")
sleep 1
pki_cert server2 "/CN=127.0.0.1" "subjectAltName=IP:127.0.0.1" ca
cp "$PKI/server2.key" "$PKI/server.key.new"
cp "$PKI/server2.pem" "$PKI/server.pem.new"
mv "$PKI/server.key.new" "$PKI/server.key"
mv "$PKI/server.pem.new" "$PKI/server.pem"
success_before=$(web_value "$BASE/metrics" GOOD flow_exporter_web_config_reloads_total result=success)
kill -HUP "$exporter_PID"
new_certificate_served() { [[ $(served_fingerprint "$PORT") != "$before" ]]; }
wait_until 10 "the rotated certificate served" new_certificate_served
sleep 1
: >"$TEST_TMP/stop-loop"
wait_pid "$LOOP_PID" 15 || true
read -r loop_ok loop_failed <"$TEST_TMP/loop.result"
after=$(served_fingerprint "$PORT")
want=$(openssl x509 -in "$PKI/server2.pem" -noout -fingerprint -sha256 | cut -d= -f2)
[[ $after == "$want" ]] || fail "served $after, want the new certificate $want"
((loop_failed == 0 && loop_ok > 10)) || fail "scrape loop across the rotation: $loop_ok ok, $loop_failed failed: $(head -c 500 "$TEST_TMP/loop.err")"
success_after=$(web_value "$BASE/metrics" GOOD flow_exporter_web_config_reloads_total result=success)
log "rotation: certificate $before -> $after, $loop_ok scrapes during it, none failed (reloads $success_before -> $success_after)"

stop_pid "$exporter_PID" TERM 10 || fail "the exporter exited $STOP_RC"
assert_clean_log "$TEST_TMP/exporter.log"
grep -qF -- "$PASSWORD" "$TEST_TMP/exporter.log" && fail "the password is in the log"
grep -qF -- "${HASH:7}" "$TEST_TMP/exporter.log" && fail "the hash is in the log"
log "ok"
