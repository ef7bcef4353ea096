#!/bin/bash
# Interface names from SNMP against a real agent: Debian's snmpd on a free loopback port, configured here
# with a v2c community and a v3 user (authPriv, SHA + AES), serving this machine's interfaces.
#   - two exporters, one polling with v2c, one with v3, name every interface the flows use exactly as
#     snmpwalk (Debian's snmp) reads ifName, ifAlias and ifHighSpeed from the same agent;
#   - snmpd stopped: records keep being counted (exact totals), the failed polls are counted per
#     exporter, and the names already read stay;
#   - the v2c exporter restarted with snmpd still down names the interfaces from its cache;
#   - the v3 exporter also carries the names inline (--labels with iface_in_name, iface_out_name,
#     iface_in_description), the same as its flow_interface_info;
#   - no secret (community, passphrases) appears in a log, in /metrics, in --help or in the cache.
source "$(dirname "$0")/lib/common.sh"

for tool in /usr/sbin/snmpd /usr/bin/snmpwalk; do
	[[ -x $tool ]] || fail "$tool is missing (deploy/install-deps.sh installs snmpd and snmp)"
done
COMMUNITY="fx-community-$RANDOM$RANDOM"
AUTH_PASS="fx-auth-pass-$RANDOM$RANDOM"
PRIV_PASS="fx-priv-pass-$RANDOM$RANDOM"
printf '%s\n' "$COMMUNITY" >"$TEST_TMP/community"
printf '%s\n' "$AUTH_PASS" >"$TEST_TMP/auth-pass"
printf '%s\n' "$PRIV_PASS" >"$TEST_TMP/priv-pass"
chmod 600 "$TEST_TMP/community" "$TEST_TMP/auth-pass" "$TEST_TMP/priv-pass"
# net-snmp's state stays in the test's directory; snmpd and snmpwalk load no MIB (Debian ships none of the
# IETF ones). The exporter gets no such help: it must stay quiet about MIBs by itself.
export SNMP_PERSISTENT_DIR="$TEST_TMP/snmp-persist"
mkdir -p "$TEST_TMP/no-mibs"

SNMP_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
	printf 'agentAddress udp:127.0.0.1:%s\n' "$SNMP_PORT"
	printf 'rocommunity %s 127.0.0.1\n' "$COMMUNITY"
	printf 'createUser fxuser SHA "%s" AES "%s"\n' "$AUTH_PASS" "$PRIV_PASS"
	printf 'rouser fxuser priv\n'
} >"$TEST_TMP/snmpd.conf"
MIBS="" MIBDIRS="$TEST_TMP/no-mibs" /usr/sbin/snmpd -f -Lo -C -c "$TEST_TMP/snmpd.conf" >"$TEST_TMP/snmpd.log" 2>&1 &
SNMPD_PID=$!
STARTED_PIDS+=("$SNMPD_PID")
wait_until 15 "snmpd answers on UDP $SNMP_PORT" snmpwalk -m '' -v2c -c "$COMMUNITY" -t 1 -r 0 \
	"127.0.0.1:$SNMP_PORT" 1.3.6.1.2.1.31.1.1.1.1
log "snmpd on 127.0.0.1:$SNMP_PORT (pid $SNMPD_PID)"

# What the agent serves, read by snmpwalk (v3, as the v3 exporter reads it; v2c must agree):
# ifindex -> ifName, ifAlias, ifHighSpeed x 10^6.
walk() { # COLUMN VERSION-ARGS...
	local column=$1
	shift
	snmpwalk -m '' -On -Oq -t 2 -r 1 "$@" "127.0.0.1:$SNMP_PORT" "1.3.6.1.2.1.31.1.1.1.$column"
}
v3=(-v3 -u fxuser -l authPriv -a SHA -A "$AUTH_PASS" -x AES -X "$PRIV_PASS")
for column in 1 18 15; do
	walk "$column" "${v3[@]}" >"$TEST_TMP/walk-$column.txt" || fail "snmpwalk v3 of column $column"
	walk "$column" -v2c -c "$COMMUNITY" >"$TEST_TMP/walk2c-$column.txt" || fail "snmpwalk v2c of column $column"
	cmp -s "$TEST_TMP/walk-$column.txt" "$TEST_TMP/walk2c-$column.txt" || fail "v2c and v3 walks differ"
done
"$PYTHON" "$FX_LIB_DIR/snmp_expect.py" agent "$TEST_TMP" >"$TEST_TMP/agent.json"
N_IFACES=$("$PYTHON" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$TEST_TMP/agent.json")
((N_IFACES >= 1)) || fail "snmpd serves no interface with an ifName"
log "the agent serves $N_IFACES interfaces: $(tr -d '\n ' <"$TEST_TMP/agent.json")"

# Two routers by pmacct label (their agents come from --snmp-addresses), a record per interface.
LOCAL_ASN=64496
printf 'exporter,address\nrouter-v2c,udp:127.0.0.1:%s\nrouter-v3,udp:127.0.0.1:%s\n' "$SNMP_PORT" "$SNMP_PORT" \
	>"$TEST_TMP/addresses.csv"
write_asn_names "$TEST_TMP/asn.txt"
start_mock --topic flows:1
common=(--brokers="$BOOT" --topic=flows --asn=$LOCAL_ASN --asn-names="$TEST_TMP/asn.txt" --snmp
	--snmp-addresses="$TEST_TMP/addresses.csv" --snmp-timeout=500ms --snmp-retries=0 --snmp-refresh=2s
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest)
V2C=(--group=snmp-v2c --snmp-community-file="$TEST_TMP/community" --snmp-cache="$TEST_TMP/cache-v2c.csv")
V3=(--group=snmp-v3 --snmp-version=3 --snmp-user=fxuser --snmp-auth-protocol=SHA
	--snmp-auth-passphrase-file="$TEST_TMP/auth-pass" --snmp-priv-protocol=AES
	--snmp-priv-passphrase-file="$TEST_TMP/priv-pass" --snmp-cache="$TEST_TMP/cache-v3.csv"
	--labels=hostname,source_as,source_as_name,destination_as,destination_as_name,iface_in,iface_out,iface_in_name,iface_out_name,iface_in_description)
PORT_V2C=$(free_port)
PORT_V3=$(free_port)
start_exporter exporter_v2c "$PORT_V2C" "${common[@]}" "${V2C[@]}"
start_exporter exporter_v3 "$PORT_V3" "${common[@]}" "${V3[@]}"

CHUNKS=0
produce_chunk() {
	"$PYTHON" "$FX_LIB_DIR/snmp_expect.py" chunk "$TEST_TMP/agent.json" "$CHUNKS" "$LOCAL_ASN" \
		>"$TEST_TMP/chunk$CHUNKS.msg"
	must_mock produce flows 0 "$TEST_TMP/chunk$CHUNKS.msg"
	CHUNKS=$((CHUNKS + 1))
}
# total_is PORT HOSTNAME FIRST_CHUNK: HOSTNAME's flow_transmit_bytes_total = chunks FIRST_CHUNK.. produced.
total_is() {
	local want
	want=$("$PYTHON" "$FX_LIB_DIR/snmp_expect.py" total "$TEST_TMP/agent.json" "$3" "$CHUNKS")
	scrape "$1" "$TEST_TMP/total.prom" &&
		[[ $("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/total.prom" flow_transmit_bytes_total "hostname=$2") == "$want" ]]
}
# names_match PORT HOSTNAME: flow_interface_info and flow_interface_speed_bps of HOSTNAME = the agent's.
names_match() {
	scrape "$1" "$TEST_TMP/names-$1.prom" &&
		"$PYTHON" "$FX_LIB_DIR/snmp_expect.py" names "$TEST_TMP/names-$1.prom" "$TEST_TMP/agent.json" "$2" \
			>"$TEST_TMP/names.diff"
}

produce_chunk
for port in "$PORT_V2C" "$PORT_V3"; do
	wait_until 30 "exporter on $port counts chunk 0" total_is "$port" router-v2c 0
done
wait_until 20 "v2c names = snmpwalk" names_match "$PORT_V2C" router-v2c
wait_until 20 "v3 names = snmpwalk" names_match "$PORT_V3" router-v3
names_match "$PORT_V2C" router-v3 || fail "v2c exporter, router-v3: $(cat "$TEST_TMP/names.diff")"
inline_match() {
	scrape "$PORT_V3" "$TEST_TMP/inline.prom" &&
		"$PYTHON" "$FX_LIB_DIR/snmp_expect.py" inline "$TEST_TMP/inline.prom" "$TEST_TMP/agent.json" "$1" \
			>"$TEST_TMP/inline.diff"
}
wait_until 10 "v3 names inline = snmpwalk" inline_match router-v3
inline_match router-v2c || fail "v3 exporter, router-v2c inline: $(cat "$TEST_TMP/inline.diff")"
log "both exporters name every interface as snmpwalk reads it ($N_IFACES interfaces, v2c and v3)"
wait_until 10 "the v2c cache is written" test -s "$TEST_TMP/cache-v2c.csv"

log "stop snmpd: counting goes on, failures are counted, names stay"
stop_pid "$SNMPD_PID" TERM 10 || fail "snmpd exited $STOP_RC"
started=$SECONDS
produce_chunk
produce_chunk
for port in "$PORT_V2C" "$PORT_V3"; do
	wait_until 10 "exporter on $port counts with snmpd down" total_is "$port" router-v3 0
done
log "chunks 1 and 2 counted within $((SECONDS - started)) s of snmpd stopping"
failures() {
	scrape "$1" "$TEST_TMP/failures.prom" &&
		(($("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/failures.prom" flow_exporter_snmp_polls_total \
			"hostname=$2" result=failure) >= 1))
}
wait_until 20 "v2c failures counted for router-v2c" failures "$PORT_V2C" router-v2c
wait_until 20 "v3 failures counted for router-v3" failures "$PORT_V3" router-v3
names_match "$PORT_V2C" router-v2c || fail "the names were lost when snmpd stopped: $(cat "$TEST_TMP/names.diff")"
total_is "$PORT_V2C" router-v2c 0 || fail "the totals changed while SNMP failed"

log "restart the v2c exporter with snmpd still down: names from the cache"
stop_pid "$exporter_v2c_PID" TERM 10 || fail "exporter_v2c exited $STOP_RC"
mv "$TEST_TMP/exporter_v2c.log" "$TEST_TMP/exporter_v2c-first.log"
# A new consumer group (from the earliest offset): the test does not depend on the last commit.
start_exporter exporter_v2c "$PORT_V2C" "${common[@]}" "${V2C[@]}" --group=snmp-v2c-restarted
produce_chunk
wait_until 30 "the restarted exporter counts" total_is "$PORT_V2C" router-v2c 0
wait_until 10 "names from the cache" names_match "$PORT_V2C" router-v2c
scrape "$PORT_V2C" "$TEST_TMP/restart.prom" || fail "scrape"
[[ $("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/restart.prom" flow_exporter_snmp_polls_total result=success) == 0 ]] ||
	fail "the restarted exporter polled successfully: its names must come from the cache"

# No secret anywhere it could leak.
scrape "$PORT_V3" "$TEST_TMP/v3.prom" || fail "scrape"
"$FX_BIN" --help >"$TEST_TMP/help.txt"
for secret in "$COMMUNITY" "$AUTH_PASS" "$PRIV_PASS"; do
	if grep -l -F -- "$secret" "$TEST_TMP"/exporter_*.log "$TEST_TMP/restart.prom" "$TEST_TMP/v3.prom" \
		"$TEST_TMP/help.txt" "$TEST_TMP/cache-v2c.csv" "$TEST_TMP/cache-v3.csv"; then
		fail "a secret appears in the file(s) above"
	fi
done
for name in v2c v3; do
	pid_var="exporter_${name}_PID"
	stop_pid "${!pid_var}" TERM 10 || fail "exporter_$name exited $STOP_RC"
	assert_clean_log "$TEST_TMP/exporter_$name.log"
	if grep -q "Cannot find module\|MIB search path" "$TEST_TMP/exporter_$name.log"; then
		fail "exporter_$name logs net-snmp's MIB loading"
	fi
done
stop_mock
