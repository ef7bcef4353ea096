#!/bin/bash
# Live reload of the interface names, with records flowing: chunks of known records are produced one after
# another while the --interface-names file is rewritten and SIGHUP sent (the new names appear), then
# broken and POST /-/reload sent (500 naming the line; the previous names stay; the reload gauge goes to 0).
# The exact totals of every chunk hold through all of it: a reload neither loses nor double-counts a record.
# Also: a bad file at startup stops it with exit code 2 naming the flag and the line; GET /-/reload is 405.
source "$(dirname "$0")/lib/common.sh"

LOCAL_ASNS=64496,4200000001,65551
SET="$TEST_TMP/set"
CHUNKS=6
"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 11 --partitions 2 --chunks $CHUNKS --messages 60 --local "$LOCAL_ASNS"
NAMES="$TEST_TMP/interfaces.csv"
HEADER='exporter,ifindex,name,description,speed'
# router2.example.net named by its address (the peer_ip_src of its records), 198.51.100.7 by its hostname.
printf '%s\n%s\n%s\n%s\n' "$HEADER" 'router1.example.net,1,et-0/0/1,"TRANSIT-ARELION, 100G",100000000000' \
	'198.51.100.7,2,ge-0/0/2,,' '192.0.2.2,1,by-address,,' >"$NAMES"

# A broken file at startup: exit code 2, the flag and the line named.
printf '%s\nrouter1.example.net,one,x,,\n' "$HEADER" >"$TEST_TMP/broken.csv"
rc=0
"$FX_BIN" --brokers=127.0.0.1:9 --interface-names="$TEST_TMP/broken.csv" --asn-names="$SET/asn.txt" \
	>"$TEST_TMP/startup.log" 2>&1 || rc=$?
((rc == 2)) || fail "a broken --interface-names file at startup: exit $rc, want 2"
grep -q -- '--interface-names .*broken.csv: line 2: ifindex "one"' "$TEST_TMP/startup.log" ||
	fail "the startup error does not name the flag and the line: $(cat "$TEST_TMP/startup.log")"
# The other map files and values of this issue, the same way: exit code 2 and the flag (and line) named.
printf 'exporter,rate\nrouter1.example.net,1000\nrouter2.example.net,0\n' >"$TEST_TMP/rates.csv"
startup_refused() { # PATTERN FLAGS...
	local pattern=$1 rc=0
	shift
	"$FX_BIN" --brokers=127.0.0.1:9 --asn-names="$SET/asn.txt" "$@" >"$TEST_TMP/startup.log" 2>&1 || rc=$?
	((rc == 2)) || fail "$*: exit $rc, want 2"
	grep -q -- "$pattern" "$TEST_TMP/startup.log" || fail "$*: the error does not say '$pattern': $(cat "$TEST_TMP/startup.log")"
}
startup_refused '--sampling-rates .*rates.csv: line 3: rate "0"' --sampling-rates="$TEST_TMP/rates.csv"
startup_refused '--sampling-rate: expected a whole number' --sampling-rate=1.5
startup_refused 'needs --snmp-community-file' --snmp
startup_refused '--snmp-community-file: cannot open' --snmp --snmp-community-file="$TEST_TMP/missing"
startup_refused '--snmp-addresses .*: the first line must be the header' --snmp \
	--snmp-community-file="$TEST_TMP/broken.csv" --snmp-addresses="$TEST_TMP/rates.csv"
startup_refused '--snmp-auth-protocol: unknown authentication protocol' --snmp-auth-protocol=SHA1

start_mock --topic flows:2
PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --asn="$LOCAL_ASNS" --asn-names="$SET/asn.txt" \
	--group=reload --interface-names="$NAMES" --kafka-opt=session.timeout.ms=6000 \
	--kafka-opt=auto.offset.reset=earliest
wait_until 30 "exporter /-/ready" curl -fsS -m 2 "http://127.0.0.1:$PORT/-/ready"

produced=()
produce_chunk() {
	local p
	for p in 0 1; do
		must_mock produce flows "$p" "$SET/chunk$1.p$p.msg"
	done
	produced+=("$1")
	log "chunk $1 produced"
}
# info HOSTNAME IFINDEX LABEL: that label of flow_interface_info{hostname, ifindex}, or "-" when absent.
info() {
	scrape "$PORT" "$TEST_TMP/info.prom" || return 1
	"$PYTHON" - "$TEST_TMP/info.prom" "$@" <<-'EOF'
		import re, sys
		body, host, ifindex, label = sys.argv[1:]
		for line in open(body, encoding="utf-8"):
		    if not line.startswith("flow_interface_info{"):
		        continue
		    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line.split("}")[0]))
		    if labels.get("hostname") == host and labels.get("ifindex") == ifindex:
		        print(labels.get(label, "")); sys.exit(0)
		print("-")
	EOF
}
gauge() {
	scrape "$PORT" "$TEST_TMP/gauge.prom" && "$PYTHON" "$METRICS_PY" get "$TEST_TMP/gauge.prom" "$@"
}
expect_info() { [[ $(info "$1" "$2" "$3") == "$4" ]]; }

produce_chunk 0
wait_until 20 "the first names" expect_info router1.example.net 1 name et-0/0/1
[[ $(info router1.example.net 1 description) == "TRANSIT-ARELION, 100G" ]] || fail "description: $(info router1.example.net 1 description)"
[[ $(info 198.51.100.7 2 name) == ge-0/0/2 ]] || fail "the peer-named interface: $(info 198.51.100.7 2 name)"
[[ $(info router2.example.net 1 name) == by-address ]] || fail "the interface named by address: $(info router2.example.net 1 name)"
[[ $(gauge flow_interface_speed_bps hostname=router1.example.net ifindex=1) == 100000000000 ]] ||
	fail "speed of router1.example.net/1"
[[ $(info router2.example.net 10 name) == - ]] || fail "an interface the file does not name has an info sample"

log "rewrite the file and SIGHUP, records flowing"
produce_chunk 1
printf '%s\n%s\n%s\n' "$HEADER" 'router1.example.net,1,et-0/0/1,RENAMED,' 'router2.example.net,10,xe-1/0/10,,' >"$NAMES.new"
mv "$NAMES.new" "$NAMES"
kill -HUP "$exporter_PID"
produce_chunk 2
wait_until 10 "the names after SIGHUP" expect_info router2.example.net 10 name xe-1/0/10
[[ $(info router1.example.net 1 description) == RENAMED ]] || fail "router1.example.net/1 not renamed"
[[ $(info 198.51.100.7 2 name) == - ]] || fail "198.51.100.7/2 was removed from the file but is still named"
[[ $(gauge flow_exporter_reload_last_successful) == 1 ]] || fail "reload gauge after a good SIGHUP"
produce_chunk 3

log "break the file and POST /-/reload, records flowing"
printf '%s\nrouter1.example.net,1,et-0/0/1,,\n"unterminated,1,x,,\n' "$HEADER" >"$NAMES"
status=$(curl -sS -m 5 -o "$TEST_TMP/reload.body" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/-/reload")
[[ $status == 500 ]] || fail "POST /-/reload with a broken file: $status, want 500"
grep -q "interfaces.csv: line 3: a quoted field is never closed" "$TEST_TMP/reload.body" ||
	fail "the 500 body does not name the line: $(cat "$TEST_TMP/reload.body")"
grep -q "refused, the previous version stays in force: line 3" "$TEST_TMP/exporter.log" ||
	fail "the refused file is not logged with its line"
produce_chunk 4
[[ $(gauge flow_exporter_reload_last_successful) == 0 ]] || fail "reload gauge after a refused file"
[[ $(gauge flow_exporter_reloads_total result=failure) == 1 ]] || fail "failed reloads counted"
[[ $(info router2.example.net 10 name) == xe-1/0/10 ]] || fail "the previous names are not kept"
status=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/reload")
[[ $status == 405 ]] || fail "GET /-/reload: $status, want 405"

log "repair the file and POST /-/reload"
printf '%s\nrouter1.example.net,1,et-0/0/1,REPAIRED,\n' "$HEADER" >"$NAMES"
status=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/-/reload")
[[ $status == 200 ]] || fail "POST /-/reload with a good file: $status, want 200"
produce_chunk 5
[[ $(gauge flow_exporter_reload_last_successful) == 1 ]] || fail "reload gauge after the repair"
[[ $(info router1.example.net 1 description) == REPAIRED ]] || fail "repaired names"

chunks=$(IFS=,; echo "${produced[*]}")
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --chunks "$chunks" --out "$TEST_TMP/expected.prom" \
	--counts-out "$TEST_TMP/expected-counts.json"
wait_metrics "$PORT" "$TEST_TMP/expected.prom" 30 "$TEST_TMP/expected-counts.json"
log "exact totals of chunks $chunks through two reloads and a refused one ($(grep -c '' "$TEST_TMP/expected.prom") samples)"
sleep 1
assert_metrics "$PORT" "$TEST_TMP/expected.prom"
scrape "$PORT" "$TEST_TMP/final.prom" || fail "scrape"
promtool check metrics <"$TEST_TMP/final.prom" >"$TEST_TMP/promtool.log" 2>&1 ||
	fail "promtool rejects the body: $(cat "$TEST_TMP/promtool.log")"
"$PYTHON" "$METRICS_PY" unique "$TEST_TMP/final.prom" || fail "a sample appears twice"

stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
