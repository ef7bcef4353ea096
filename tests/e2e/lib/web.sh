# Helpers for the web-security tests (tests/e2e/web_*.sh): a test PKI made with openssl (a CA, a server
# certificate for 127.0.0.1, a client certificate, and a second, untrusted CA with its own client), bcrypt
# hashes from htpasswd -B, an exporter started with a web configuration file (HTTPS and/or basic auth), and
# scrapes of it with curl. Sourced after common.sh.
# shellcheck shell=bash disable=SC2034  # variables (PKI, ...) are for the tests

PKI="$TEST_TMP/pki"

# pki_cert NAME SUBJECT EXTENSIONS CA: a key and a certificate signed by CA (ca or other-ca).
pki_cert() {
	openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$1.key" -subj "$2" -out "$PKI/$1.csr" 2>/dev/null ||
		fail "openssl: key for $1"
	printf '%s\n' "$3" >"$PKI/$1.ext"
	openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$4.pem" -CAkey "$PKI/$4.key" -CAcreateserial -days 2 \
		-extfile "$PKI/$1.ext" -out "$PKI/$1.pem" 2>/dev/null || fail "openssl: certificate for $1"
}

# make_pki: ca, server (127.0.0.1), client (clientAuth), other-ca and untrusted (a client of other-ca).
make_pki() {
	mkdir -p "$PKI"
	local ca
	for ca in ca other-ca; do
		openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/$ca.key" -subj "/CN=flow-exporter $ca" \
			-days 2 -out "$PKI/$ca.pem" 2>/dev/null || fail "openssl: $ca"
	done
	pki_cert server "/CN=127.0.0.1" "subjectAltName=IP:127.0.0.1" ca
	pki_cert client "/CN=prometheus" $'extendedKeyUsage=clientAuth\nsubjectAltName=DNS:prometheus.test' ca
	pki_cert untrusted "/CN=intruder" "extendedKeyUsage=clientAuth" other-ca
}

# bcrypt_hash PASSWORD [COST]: the hash htpasswd -B makes ($2y$), as the toolkit's docs say to make it.
bcrypt_hash() {
	htpasswd -nbB -C "${2:-10}" "" "$1" | tr -d ':\n' || fail "htpasswd -B"
}

# Curl options of a trusted, authenticated client; the tests add -u USER:PASSWORD or --netrc-file.
CURL_CA=(--cacert "$PKI/ca.pem")
CURL_CLIENT=(--cert "$PKI/client.pem" --key "$PKI/client.key")

# start_web_exporter NAME PORT SCHEME CURL_ARGS_VAR ARGS...: the exporter with ARGS on 127.0.0.1:PORT, its
# log in NAME.log; waits until SCHEME://127.0.0.1:PORT/-/healthy answers 200 to curl with the options in
# the array named CURL_ARGS_VAR. Sets NAME_PID.
start_web_exporter() {
	local name=$1 port=$2 scheme=$3 curl_var=$4
	shift 4
	local -n curl_args=$curl_var
	local args=("$@" "--addr=127.0.0.1:$port" "--asn-names-cache=$TEST_TMP/$name-asn-cache.txt")
	log "start $name: $FX_BIN ${args[*]}"
	(
		if [[ -n $MOCK_IN ]]; then exec {MOCK_IN}>&- {MOCK_OUT}<&-; fi
		exec "$FX_BIN" "${args[@]}"
	) >"$TEST_TMP/$name.log" 2>&1 &
	local pid=$!
	STARTED_PIDS+=("$pid")
	printf -v "${name}_PID" '%s' "$pid"
	local deadline=$((SECONDS + 20))
	until curl -fsS -m 2 "${curl_args[@]}" -o /dev/null "$scheme://127.0.0.1:$port/-/healthy" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || fail "$name exited during startup (see $name.log)"
		((SECONDS < deadline)) || fail "$name: /-/healthy did not answer within 20 s"
		sleep 0.1
	done
	log "$name is healthy (pid $pid, $scheme port $port)"
}

# web_value URL CURL_ARGS_VAR NAME [LABEL=VALUE...]: the sum of the samples of NAME in the body at URL.
web_value() {
	local url=$1 curl_var=$2
	shift 2
	local -n value_args=$curl_var
	curl -fsS -m 5 "${value_args[@]}" -o "$TEST_TMP/web-value.prom" "$url" || return 1
	"$PYTHON" "$METRICS_PY" sum "$TEST_TMP/web-value.prom" "$@"
}

# http_code CURL_ARGS...: the status curl saw (000 when the connection or the handshake failed).
http_code() {
	curl -sS -m 5 -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true
}

# served_fingerprint PORT: the SHA-256 fingerprint of the certificate the server on PORT presents.
served_fingerprint() {
	openssl s_client -connect "127.0.0.1:$1" -servername 127.0.0.1 -CAfile "$PKI/ca.pem" \
		-cert "$PKI/client.pem" -key "$PKI/client.key" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
