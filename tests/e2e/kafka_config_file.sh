#!/bin/bash
# Kafka secrets from a file: --kafka-config-file (librdkafka properties, key=value lines, # comments, as
# kcat -F reads them) against the mock cluster (tests/tools/fx_mock). It shows that
# - a wrong key or value in the file stops startup with exit 2, naming the file and the line;
# - a secret given with --kafka-opt draws a warning pointing to the file, and a mistyped one is never
#   echoed;
# - every property of the file reaches librdkafka: auto.offset.reset=earliest given only in the file makes
#   an exporter count a topic produced before it started (exact totals), while an exporter whose file says
#   latest counts nothing; the command line wins over the file;
# - a SASL client configured from the file (the mock answers "SASL Handshake not supported by broker")
#   reports its failure, and with every secret in a file (the SASL password, the web password's hash) no
#   secret appears in ps, /proc/<pid>/cmdline, the log (librdkafka's debug included), /metrics or --help.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"
# shellcheck source=lib/web.sh
source "$FX_LIB_DIR/web.sh"

SECRET="sasl-$RANDOM$RANDOM-secret"
SET="$TEST_TMP/set"
"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 77 --partitions 2 --messages 80 --local 64496
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --out "$TEST_TMP/expected.prom"

# ---- bad files and secrets on the command line: exit 2 before anything starts ------------------------
run_bad() { # WHAT WANT_FRAGMENT ARGS...
	local what=$1 want=$2 rc=0
	shift 2
	timeout 20 "$FX_BIN" --brokers=127.0.0.1:9 --asn-names=/dev/null --addr=127.0.0.1:0 "$@" \
		>"$TEST_TMP/bad.out" 2>&1 || rc=$?
	((rc == 2)) || fail "$what: exit $rc, want 2: $(head -c 600 "$TEST_TMP/bad.out")"
	grep -qF -- "$want" "$TEST_TMP/bad.out" || fail "$what: no \"$want\" in: $(head -c 600 "$TEST_TMP/bad.out")"
	! grep -qF -- "$SECRET" "$TEST_TMP/bad.out" || fail "$what: the secret is in the message"
}
printf '# comment\n\nauto.offset.reset=earliest\nno.such.property=1\n' >"$TEST_TMP/bad-key.properties"
run_bad "unknown key" "--kafka-config-file: line 4: No such configuration property: \"no.such.property\"" \
	--kafka-config-file="$TEST_TMP/bad-key.properties"
grep -qF "$TEST_TMP/bad-key.properties" "$TEST_TMP/bad.out" || fail "the message does not name the file"
printf 'auto.offset.reset=sometimes\n' >"$TEST_TMP/bad-value.properties"
run_bad "bad value" "line 1: Invalid value \"sometimes\" for configuration property \"auto.offset.reset\"" \
	--kafka-config-file="$TEST_TMP/bad-value.properties"
printf 'auto.offset.reset\n' >"$TEST_TMP/no-eq.properties"
run_bad "no =" "line 1: expected key=value" --kafka-config-file="$TEST_TMP/no-eq.properties"
run_bad "missing file" "cannot open" --kafka-config-file="$TEST_TMP/none.properties"
run_bad "secret on the command line" "--kafka-opt sasl.password: a secret on the command line is visible" \
	--kafka-opt="sasl.password=$SECRET" --no-such-flag
grep -qF -- "--kafka-config-file" "$TEST_TMP/bad.out" || fail "the warning does not point to --kafka-config-file"
run_bad "a mistyped secret" "invalid value \"sasl.pasword=<not shown>\" for --kafka-opt" \
	--kafka-opt="sasl.pasword=$SECRET"
log "bad files: exit 2 naming the file and the line; a secret with --kafka-opt warns; no secret echoed"

# ---- every property of the file reaches librdkafka -----------------------------------------------------
start_mock --topic flows:2
for p in 0 1; do must_mock produce flows "$p" "$SET/chunk0.p$p.msg"; done
printf '# produced before the exporter started: only earliest reads it\n  auto.offset.reset = earliest \nsession.timeout.ms=6000\n' \
	>"$TEST_TMP/earliest.properties"
printf 'auto.offset.reset=latest\nsession.timeout.ms=6000\n' >"$TEST_TMP/latest.properties"
COMMON=(--brokers="$BOOT" --topic=flows --asn=64496 --asn-names="$SET/asn.txt")
P_EARLIEST=$(free_port)
P_LATEST=$(free_port)
P_OVERRIDE=$(free_port)
start_exporter earliest "$P_EARLIEST" "${COMMON[@]}" --group=from-file --kafka-config-file="$TEST_TMP/earliest.properties"
start_exporter latest "$P_LATEST" "${COMMON[@]}" --group=latest --kafka-config-file="$TEST_TMP/latest.properties"
start_exporter override "$P_OVERRIDE" "${COMMON[@]}" --group=override --kafka-opt=auto.offset.reset=earliest \
	--kafka-config-file="$TEST_TMP/latest.properties"
wait_metrics "$P_EARLIEST" "$TEST_TMP/expected.prom" 40
wait_metrics "$P_OVERRIDE" "$TEST_TMP/expected.prom" 20
# The latest one joined its group as early: assigned, and it read nothing that was there before it.
wait_until 20 "latest: partitions assigned" curl -fsS -m 2 "http://127.0.0.1:$P_LATEST/-/ready"
sleep 1
consumed=$(exporter_value "$P_LATEST" flow_exporter_kafka_messages_total)
((consumed == 0)) || fail "the exporter whose file says latest consumed $consumed messages: the test could not fail"
log "auto.offset.reset=earliest from the file: exact totals; latest from the file: $consumed messages; --kafka-opt over the file: exact totals"
for name in earliest latest override; do
	pid_var="${name}_PID"
	stop_pid "${!pid_var}" TERM 10 || fail "$name exited $STOP_RC"
	assert_clean_log "$TEST_TMP/$name.log"
done

# ---- SASL from the file, every secret in a file: none in ps, logs, /metrics, --help ------------------
WEB_PASSWORD="web-$RANDOM$RANDOM"
HASH=$(bcrypt_hash "$WEB_PASSWORD" 6)
printf 'basic_auth_users:\n  prometheus: %s\n' "$HASH" >"$TEST_TMP/web.yml"
printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=flow\nsasl.password=%s\nsession.timeout.ms=6000\n' \
	"$SECRET" >"$TEST_TMP/sasl.properties"
chmod 600 "$TEST_TMP/sasl.properties"
P_SASL=$(free_port)
AUTH=(-u "prometheus:$WEB_PASSWORD")
start_web_exporter sasl "$P_SASL" http AUTH "${COMMON[@]}" --group=sasl --log-level=debug \
	--kafka-opt=debug=security,conf,broker --kafka-config-file="$TEST_TMP/sasl.properties" \
	--web.config.file="$TEST_TMP/web.yml"
sasl_failed() { grep -E ' (warn|error) .*SASL' "$TEST_TMP/sasl.log" >/dev/null; }
wait_until 20 "the SASL failure reported" sasl_failed
grep -q 'redacted' "$TEST_TMP/sasl.log" || fail "librdkafka's configuration dump (debug=conf) is not in the log: the test could not fail"
curl -fsS -m 5 "${AUTH[@]}" -o "$TEST_TMP/sasl-metrics.prom" "http://127.0.0.1:$P_SASL/metrics" || fail "scrape"
errors=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/sasl-metrics.prom" flow_exporter_kafka_errors_total)
((errors > 0)) || fail "no Kafka error counted for the SASL failure"
[[ $(http_code "http://127.0.0.1:$P_SASL/metrics") == 401 ]] || fail "/metrics without the password is not 401"
"$FX_BIN" --help >"$TEST_TMP/help.txt"
ps -ww -eo pid,args >"$TEST_TMP/ps.txt"
tr '\0' ' ' <"/proc/$sasl_PID/cmdline" >"$TEST_TMP/cmdline.txt"
for secret in "$SECRET" "$WEB_PASSWORD" "${HASH:7}"; do
	for file in sasl.log sasl-metrics.prom help.txt ps.txt cmdline.txt; do
		! grep -qF -- "$secret" "$TEST_TMP/$file" || fail "a secret (${secret:0:4}...) is in $file"
	done
done
log "SASL from the file: failure reported ($(grep -E -m1 -o ' (warn|error) .*SASL.{0,60}' "$TEST_TMP/sasl.log")), $errors Kafka errors counted; no secret in ps, cmdline, $(wc -l <"$TEST_TMP/sasl.log") log lines, /metrics or --help"
stop_pid "$sasl_PID" TERM 10 || fail "sasl exited $STOP_RC"
assert_clean_log "$TEST_TMP/sasl.log"
stop_mock
log "ok"
