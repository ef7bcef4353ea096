#!/bin/bash
# Push options the exporter must refuse at startup, each with exit code 2 and a message naming the
# problem: a reserved header (Content-Type, Content-Encoding in lower case, the remote-write version), an
# external label clashing with a flow label (hostname, iface_in), an unreadable password file (missing, a
# directory) and an unreadable bearer-token file.
# Then secrets: with basic auth (user + password file) and then a bearer token file, pushing at debug log
# level to the recording receiver (rw_receiver, answering a 500, a 401 and 200s) and to a real Pushgateway,
# the receiver gets the right Authorization header, and neither the password, the token nor the encoded
# credentials ever appear in the exporter's output or its /metrics (nor in the refusals' output).
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

PASSWORD='pw-S3cr3t-7d41e'
TOKEN='tok-A9f3c2e1b7'
USER_NAME=alice
printf '%s' "$PASSWORD" >"$TEST_TMP/password"
printf '%s' "$TOKEN" >"$TEST_TMP/token"
CREDENTIALS_B64=$(printf '%s:%s' "$USER_NAME" "$PASSWORD" | base64 -w0)
write_asn_names "$TEST_TMP/asn.txt"
mkdir "$TEST_TMP/a-directory"

start_mock --topic flows:1
DEAD_URL="http://127.0.0.1:$(free_port)/api/v1/write" # nothing listens: the refusals push nowhere anyway
base_args=(--brokers="$BOOT" --topic=flows --asn=64496 --asn-names="$TEST_TMP/asn.txt"
	--kafka-opt=session.timeout.ms=6000 --remote-write-url="$DEAD_URL" --push-interval=1s)

# no_secret FILE WHAT: none of the secrets (nor the base64 credentials) in FILE.
no_secret() {
	local secret
	for secret in "$PASSWORD" "$TOKEN" "$CREDENTIALS_B64"; do
		if grep -n -F -- "$secret" "$1" >&2; then
			fail "$2 contains a secret ($(basename "$1"))"
		fi
	done
}

# refused NAME PATTERN ARGS...: (NAME: letters, digits and _) the exporter started with ARGS must exit 2 within 15 s and its output must
# match the extended regex PATTERN (case-insensitive), and hold no secret.
refused() {
	local name=$1 pattern=$2
	shift 2
	local port
	port=$(free_port)
	start_bg "$name" "$FX_BIN" "${base_args[@]}" "$@" --addr="127.0.0.1:$port" \
		--asn-names-cache="$TEST_TMP/$name-cache.txt"
	local pid_var="${name}_PID"
	wait_pid "${!pid_var}" 15 || true
	[[ $STOP_RC == 2 ]] || fail "$name: exit $STOP_RC (want 2) with $*; output: $(head -c 1500 "$TEST_TMP/$name.log")"
	grep -q -i -E -- "$pattern" "$TEST_TMP/$name.log" ||
		fail "$name: exit 2 but no message matching /$pattern/: $(head -c 1500 "$TEST_TMP/$name.log")"
	no_secret "$TEST_TMP/$name.log" "the refusal's output ($name)"
	log "$name: exit 2: $(grep -i -E -m1 -- "$pattern" "$TEST_TMP/$name.log" | cut -c1-200)"
}

refused header_content_type 'content-type.*(reserved|overrid|cannot)|(reserved|overrid|cannot).*content-type' \
	--push-header="Content-Type: x" --push-username="$USER_NAME" --push-password-file="$TEST_TMP/password"
refused header_content_encoding 'content-encoding.*(reserved|overrid|cannot)|(reserved|overrid|cannot).*content-encoding' \
	--push-header="content-encoding: gzip"
refused header_rw_version 'x-prometheus-remote-write-version.*(reserved|overrid|cannot)|(reserved|overrid|cannot).*x-prometheus-remote-write-version' \
	--push-header="X-Prometheus-Remote-Write-Version: 2.0.0" --push-bearer-token-file="$TEST_TMP/token"
refused label_hostname 'hostname.*(clash|flow label|reserved|conflict)|(clash|flow label|reserved|conflict).*hostname' \
	--external-label=hostname=x --push-username="$USER_NAME" --push-password-file="$TEST_TMP/password"
refused label_iface_in 'iface_in.*(clash|flow label|reserved|conflict)|(clash|flow label|reserved|conflict).*iface_in' \
	--external-label=iface_in=7
refused password_missing "$TEST_TMP/no-such-password" \
	--push-username="$USER_NAME" --push-password-file="$TEST_TMP/no-such-password"
refused password_directory "$TEST_TMP/a-directory" \
	--push-username="$USER_NAME" --push-password-file="$TEST_TMP/a-directory"
refused token_missing "$TEST_TMP/no-such-token" --push-bearer-token-file="$TEST_TMP/no-such-token"
if ((EUID != 0)); then # root reads a file of mode 000: only meaningful for another user
	cp "$TEST_TMP/password" "$TEST_TMP/password-000"
	chmod 000 "$TEST_TMP/password-000"
	refused password_unreadable "$TEST_TMP/password-000" \
		--push-username="$USER_NAME" --push-password-file="$TEST_TMP/password-000"
fi

# ---- secrets stay secret --------------------------------------------------------------------------------
PG_PORT=$(free_port)
start_pushgateway pg "$PG_PORT"

# check_secret NAME WANT_AUTH ARGS...: an exporter at debug level pushing to a fresh recording receiver
# (500, then 200s, a 401, 200s) and the Pushgateway; the receiver must see Authorization == WANT_AUTH on
# every request, and the exporter's output and /metrics hold no secret.
check_secret() {
	local name=$1 want_auth=$2
	shift 2
	start_receiver "${name}_recv" --script "500,200,200,401,200"
	local recv_port_var="${name}_recv_PORT"
	local recv_port=${!recv_port_var}
	local port
	port=$(free_port)
	start_exporter "$name" "$port" --brokers="$BOOT" --topic=flows --asn=64496 --asn-names="$TEST_TMP/asn.txt" \
		--group="$name" --kafka-opt=session.timeout.ms=6000 --log-level=debug --push-interval=1s \
		--remote-write-url="http://127.0.0.1:$recv_port/api/v1/write" --pushgateway-url="http://127.0.0.1:$PG_PORT" \
		"$@"
	wait_until 30 "$name: 6 requests at the receiver" \
		bash -c '(($(grep -c "^{" "$0" 2>/dev/null || true) >= 6))' "$TEST_TMP/${name}_recv.jsonl"
	"$PYTHON" - "$TEST_TMP/${name}_recv.jsonl" "$want_auth" <<'EOF' || fail "$name: wrong Authorization header at the receiver"
import json, sys
want = sys.argv[2]
requests = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.startswith("{")]
bad = [(r.get("seq"), r["headers"].get("authorization")) for r in requests if r["headers"].get("authorization") != want]
for seq, got in bad[:5]:
    print("request %s: Authorization %r" % (seq, got), file=sys.stderr)
sys.exit(1 if bad or not requests else 0)
EOF
	wait_until 30 "$name: a push accepted by the Pushgateway" \
		bash -c '[[ $(curl -fsS -m 5 "http://127.0.0.1:$0/metrics" | grep "^flow_exporter_push_requests_total{status_class=\"2xx\",url=\"http://127.0.0.1:$1\"}") != *" 0" ]]' \
		"$port" "$PG_PORT"
	scrape "$port" "$TEST_TMP/$name-metrics.prom" || fail "scrape failed"
	curl -fsS -m 5 -o "$TEST_TMP/$name-metrics-gzip.prom" --compressed "http://127.0.0.1:$port/metrics" ||
		fail "scrape (gzip) failed"
	curl -fsS -m 5 -o "$TEST_TMP/$name-landing.html" "http://127.0.0.1:$port/" || fail "GET / failed"
	local pid_var="${name}_PID"
	stop_pid "${!pid_var}" TERM 15 || fail "$name exited $STOP_RC after SIGTERM"
	local file
	for file in "$TEST_TMP/$name.log" "$TEST_TMP/$name-metrics.prom" "$TEST_TMP/$name-metrics-gzip.prom" \
		"$TEST_TMP/$name-landing.html"; do
		no_secret "$file" "$name"
	done
	grep -q -i 'debug' "$TEST_TMP/$name.log" || log "note: $name logged nothing at debug level"
	log "$name: the receiver got the credentials; no secret in the log ($(wc -l <"$TEST_TMP/$name.log") lines), /metrics or /"
}

check_secret basic "Basic $CREDENTIALS_B64" --push-username="$USER_NAME" --push-password-file="$TEST_TMP/password"
check_secret bearer "Bearer $TOKEN" --push-bearer-token-file="$TEST_TMP/token"
