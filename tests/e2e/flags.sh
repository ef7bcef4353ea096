#!/bin/bash
# The command line. The Go program's exact line `--brokers=... --topic=pmacct.acct --asn=15169` starts the
# exporter on :9590 and it counts; Go's single-dash form and the `--flag value` form work and count too;
# --help (and -help) lists every flag with its default and exits 0; each bad flag or value exits 2 with a
# message naming the flag and prints nothing on stdout.
#
# The exact Go line has no --asn-names, so the exporter tries its default Internet URL, and it ignores
# http_proxy/https_proxy on purpose (src/asn_names.c sets CURLOPT_PROXY ""), so a proxy cannot fence it in.
# The whole test therefore re-runs itself in a network namespace of its own (unshare --net, loopback only):
# nothing can leave the machine, the download fails at once, the exporter must still serve, and :9590 is
# free there whatever this machine runs. Without unshare (no privileges) the exact-line variant is skipped
# with a message; every other check runs. The proxies still point at a closed loopback port, for a libcurl
# that would honour them.
if [[ -z ${FX_FLAGS_NETNS:-} ]] && command -v ip >/dev/null && unshare --net true 2>/dev/null; then
	exec unshare --net env FX_FLAGS_NETNS=1 bash -c 'ip link set lo up && exec bash "$0"' "$0"
fi
source "$(dirname "$0")/lib/common.sh"

PARTS=2
CLOSED_PORT=$(free_port) # bound, then closed at once: nothing listens there
# Only for the exporter: curl and kcat of the test itself must not go through them.
PROXY_ENV=(http_proxy="http://127.0.0.1:$CLOSED_PORT" https_proxy="http://127.0.0.1:$CLOSED_PORT"
	HTTP_PROXY="http://127.0.0.1:$CLOSED_PORT" HTTPS_PROXY="http://127.0.0.1:$CLOSED_PORT"
	ALL_PROXY="http://127.0.0.1:$CLOSED_PORT" no_proxy= NO_PROXY=)
write_asn_names "$TEST_TMP/asn.txt"

# ---- --help ----------------------------------------------------------------------------------------------
# Every flag of the issue, with the default it must show ("-" for a flag with no default shown).
declare -A DEFAULTS=(
	[brokers]='""' [topic]='"pmacct.acct"' [asn]='"0"' [addr]='":9590"' [partitions]='""'
	[group]='"flow-exporter"' [kafka-opt]=- [labels]='"hostname,source_as,source_as_name,destination_as,destination_as_name,iface_in,iface_out"'
	[max-series]=- [asn-names]='"http://www.cidr-report.org/as2.0/asn.txt"' [help]=-
)
for form in --help -help; do
	rc=0
	timeout 10 "$FX_BIN" "$form" >"$TEST_TMP/help.out" 2>"$TEST_TMP/help.err" || rc=$?
	((rc == 0)) || fail "$form exited $rc: $(head -c 500 "$TEST_TMP/help.err")"
	[[ ! -s $TEST_TMP/help.err ]] || fail "$form wrote on stderr: $(head -c 500 "$TEST_TMP/help.err")"
	for flag in "${!DEFAULTS[@]}"; do
		# The flag's entry: its line and the help line(s) after it, up to the next flag.
		entry=$(awk -v f="--$flag" '$1 == f || index($1, f "=") == 1 {on = 1; print; next}
			/^  --/ {on = 0} on {print}' "$TEST_TMP/help.out")
		[[ -n $entry ]] || fail "$form does not list --$flag"
		if [[ ${DEFAULTS[$flag]} != - ]]; then
			[[ $entry == *"(default ${DEFAULTS[$flag]})"* ]] ||
				fail "$form: --$flag does not show (default ${DEFAULTS[$flag]}): $entry"
		fi
	done
	# Every flag listed has a help text; every non-boolean one a default or "repeatable".
	listed=$(grep -c '^  -' "$TEST_TMP/help.out")
	((listed >= ${#DEFAULTS[@]})) || fail "$form lists $listed flags"
done
log "--help and -help list all $listed flags with their defaults, exit 0"

# ---- bad flags and values: exit 2, a message naming the flag, nothing on stdout --------------------------
# CASE|NAMED: the arguments (space-separated) and the flag name stderr must mention.
bad_cases=(
	"--no-such-flag=1|--no-such-flag"
	"--asn=abc|--asn"
	"-asn=abc|asn"
	"--asn=4294967296|--asn"
	"--partitions=x|--partitions"
	"--max-series=0|--max-series"
	"--addr=nonsense|--addr"
	"--labels=bogus|--labels"
	"--kafka-opt=unknown.librdkafka.key=1|--kafka-opt"
	"--brokers=127.0.0.1:$CLOSED_PORT --kafka-opt=unknown.librdkafka.key=1|--kafka-opt"
	"--kafka-opt=novalue|--kafka-opt"
	"--topic|--topic"
	"stray-argument|stray-argument"
)
failures=()
for case in "${bad_cases[@]}"; do
	args=${case%|*} named=${case##*|}
	rc=0
	# shellcheck disable=SC2086 # the arguments are split on purpose
	# The local AS names first: a bad line must fail before anything, but never fetch the default URL
	# if it does not. The case last: "--topic" at the end has no value.
	env "${PROXY_ENV[@]}" timeout 20 "$FX_BIN" --asn-names="$TEST_TMP/asn.txt" --asn-names-cache="$TEST_TMP/bad-cache.txt" $args \
		>"$TEST_TMP/bad.out" 2>"$TEST_TMP/bad.err" </dev/null || rc=$?
	problems=""
	((rc == 2)) || problems+=" exit $rc (want 2);"
	grep -q -F -- "$named" "$TEST_TMP/bad.err" || problems+=" stderr does not name $named;"
	[[ ! -s $TEST_TMP/bad.out ]] || problems+=" stdout not empty: $(head -c 300 "$TEST_TMP/bad.out" | tr '\n' ' ');"
	if [[ -n $problems ]]; then
		failures+=("[$args]$problems stderr: $(head -c 300 "$TEST_TMP/bad.err" | tr '\n' ' ')")
	else
		log "ok: [$args] -> 2: $(grep -m1 -F -- "$named" "$TEST_TMP/bad.err" | cut -c1-160)"
	fi
done
# Reported at the end, so that the forms below are tested too.
for problem in "${failures[@]}"; do
	log "NOT REFUSED CLEANLY: $problem"
done

# ---- the forms that must start and count ---------------------------------------------------------------
start_mock --topic "pmacct.acct:$PARTS" --topic "pmacct.dash:$PARTS" --topic "pmacct.space:$PARTS"

# A known record set: one object, a kafka_multi_values message, a marker, a transit flow. With local AS
# 15169: transmit 1800 bytes / 4 packets, receive 700 bytes / 2 packets (each partition gets it once).
{
	printf '%s\x1e' '{"event_type": "purge", "label": "go-cli", "as_src": 15169, "as_dst": 64500, "peer_ip_src": "192.0.2.1", "iface_in": 1, "iface_out": 2, "packets": 3, "bytes": 1500}'
	printf '%s\n' '{"event_type": "purge", "label": "", "as_src": 64500, "as_dst": 15169, "peer_ip_src": "192.0.2.9", "iface_in": 2, "iface_out": 1, "packets": 2, "bytes": 700}' \
		'{"event_type": "purge", "label": "go-cli", "as_src": 15169, "as_dst": 0, "peer_ip_src": "192.0.2.1", "packets": 1, "bytes": 300}'
	printf '\x1e%s\x1e' '{"event_type": "purge_init", "writer_id": "flows/1"}'
	printf '%s' '{"event_type": "purge", "label": "go-cli", "as_src": 3356, "as_dst": 1299, "peer_ip_src": "192.0.2.1", "packets": 9, "bytes": 9999}'
} >"$TEST_TMP/records.msg"

# assigned PORT: the exporter reads every partition. A new group starts at the newest offset (librdkafka's
# default, and the Go program's), so check_counts then leaves 2 s for the offset lookup before producing.
assigned() {
	scrape "$1" "$TEST_TMP/assigned.prom" || return 1
	[[ $("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/assigned.prom" flow_exporter_kafka_assigned_partitions) == "$PARTS" ]]
}

# check_counts NAME PORT TOPIC: waits for the assignment, produces the record set to TOPIC, then the
# exporter's counters must equal the known totals (20 s).
check_counts() {
	local name=$1 port=$2 topic=$3
	wait_until 30 "$name: partitions assigned" assigned "$port"
	sleep 2
	local p
	for ((p = 0; p < PARTS; p++)); do
		must_mock produce "$topic" "$p" "$TEST_TMP/records.msg"
	done
	local deadline=$((SECONDS + 20))
	until counts_exact "$port" >"$TEST_TMP/counts.diff" 2>&1; do
		((SECONDS < deadline)) || fail "$name: counters not exact: $(cat "$TEST_TMP/counts.diff")"
		sleep 0.3
	done
	log "$name counts exactly"
}

# counts_exact PORT: the four families add up to the known totals (the set is produced to each of the
# PARTS partitions, so every total is twice the set's); the empty label falls back to peer_ip_src.
counts_exact() {
	scrape "$1" "$TEST_TMP/counts.prom" || return 1
	local family want got
	for family in transmit_bytes:3600 transmit_packets:8 receive_bytes:1400 receive_packets:4; do
		want=${family#*:}
		got=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/counts.prom" "flow_${family%:*}_total")
		[[ $got == "$want" ]] || { echo "flow_${family%:*}_total: got $got want $want"; return 1; }
	done
	"$PYTHON" "$METRICS_PY" get "$TEST_TMP/counts.prom" flow_receive_bytes_total hostname=192.0.2.9 >/dev/null
}

# (1) The Go program's exact command line: no --addr (so :9590), no --asn-names (so the default URL, which
# cannot be reached from this namespace). The AS-name cache goes to the temporary directory through the
# environment (FLOW_EXPORTER_<FLAG>), which leaves the command line exactly the Go one; so does the short
# session timeout the mock cluster needs to finish a rebalance quickly (DESIGN.md).
if [[ -z ${FX_FLAGS_NETNS:-} ]]; then
	log "SKIP the exact Go command line: no network namespace of its own (unshare --net and ip needed), and" \
		"the exporter would try to fetch its default AS-name URL from the Internet"
elif ss -Htln 'sport = :9590' | grep -q .; then
	log "SKIP the exact Go command line: port 9590 is in use ($(ss -Htlnp 'sport = :9590' | head -1))"
else
	log "in a network namespace with only a loopback: $(ip -br addr | tr '\n' ' ')"
	GO_LINE=(--brokers="$BOOT" --topic=pmacct.acct --asn=15169)
	log "start: $FX_BIN ${GO_LINE[*]}"
	(
		exec {MOCK_IN}>&- {MOCK_OUT}<&-
		exec env "${PROXY_ENV[@]}" FLOW_EXPORTER_ASN_NAMES_CACHE="$TEST_TMP/go-asn-cache.txt" \
			FLOW_EXPORTER_KAFKA_OPT=session.timeout.ms=6000 "$FX_BIN" "${GO_LINE[@]}"
	) >"$TEST_TMP/go_line.log" 2>&1 &
	GO_PID=$!
	STARTED_PIDS+=("$GO_PID")
	deadline=$((SECONDS + 20))
	until curl -fsS -m 2 -o /dev/null "http://127.0.0.1:9590/-/healthy" 2>/dev/null; do
		kill -0 "$GO_PID" 2>/dev/null || fail "the Go command line: the exporter exited (see go_line.log)"
		((SECONDS < deadline)) || fail "the Go command line: :9590 did not answer within 20 s"
		sleep 0.1
	done
	# It binds every address (":9590"), as the Go program did.
	ss -Htln 'sport = :9590' | grep -q -E '(\*|0\.0\.0\.0|\[::\]):9590' ||
		fail "the Go command line does not listen on every address: $(ss -Htln 'sport = :9590')"
	check_counts "the Go command line" 9590 pmacct.acct
	# The AS names could not be fetched (nothing beyond the loopback): no name label, the failure
	# counted, and the exporter still serves.
	scrape 9590 "$TEST_TMP/go.prom" || fail "the Go command line: /metrics failed"
	! grep -q '_as_name=' "$TEST_TMP/go.prom" || fail "AS names appeared, though no list was reachable"
	wait_until 20 "an AS-name load failure counted" bash -c \
		"curl -fsS -m 2 http://127.0.0.1:9590/metrics | grep -E '^flow_exporter_asn_names_loads_total\{[^}]*result=\"failure\"[^}]*\} [1-9]'"
	kill -0 "$GO_PID" 2>/dev/null || fail "the Go command line: the exporter died after the AS-name failure"
	stop_pid "$GO_PID" TERM 10 || fail "the Go command line: exit status $STOP_RC on SIGTERM"
	assert_clean_log "$TEST_TMP/go_line.log"
fi

# (2) Go's single-dash form, (3) the `--flag value` form.
DASH_PORT=$(free_port)
start_exporter dash "$DASH_PORT" -brokers="$BOOT" -topic=pmacct.dash -asn=15169 -group=flags-dash \
	-kafka-opt=session.timeout.ms=6000 --asn-names="$TEST_TMP/asn.txt"
SPACE_PORT=$(free_port)
start_exporter space "$SPACE_PORT" --brokers "$BOOT" --topic pmacct.space --asn 15169 --group flags-space \
	--kafka-opt session.timeout.ms=6000 --asn-names="$TEST_TMP/asn.txt"
check_counts "-flag=value" "$DASH_PORT" pmacct.dash
check_counts "--flag value" "$SPACE_PORT" pmacct.space
# --asn-names given: the names appear.
scrape "$DASH_PORT" "$TEST_TMP/dash.prom"
grep -q 'source_as_name="GOOGLE - Google LLC"' "$TEST_TMP/dash.prom" || fail "-flag=value: no AS name from --asn-names"

for name in dash space; do
	pid_var="${name}_PID"
	stop_pid "${!pid_var}" TERM 10 || fail "$name: exit status $STOP_RC on SIGTERM"
	assert_clean_log "$TEST_TMP/$name.log"
done
stop_mock
((${#failures[@]} == 0)) || fail "${#failures[@]} of ${#bad_cases[@]} bad command lines were not refused cleanly (see above)"
