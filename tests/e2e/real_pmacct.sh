#!/bin/bash
# Real pmacct end to end: nfacctd and sfacctd (Debian's pmacct 1.7.7) run the recipes of deploy/pmacct/ as
# shipped (only addresses, ports and map paths changed) and publish real JSON into the mock cluster from
# real NetFlow v5/v9, IPFIX and sFlow:
#   - pmacctd runs deploy/pmacct/pmacctd.conf (an nfprobe) on tests/data/pmacct/flows.pcap -> nfacctd;
#   - the captured nfgen-{v5,v9,ipfix}.bin datagrams go to nfacctd from three exporter addresses
#     (127.0.0.1 and .2 are named by pretag.map, 127.0.0.3 is not: its hostname is its peer_ip_src),
#     twice, before and after a purge, so the same keys arrive in several messages (deltas to add up);
#   - pmacctd as an sFlow probe (sfprobe) on the same pcap -> sfacctd, as agents 127.0.0.2 (named) and
#     127.0.0.3 (not named), then as 127.0.0.2 again after a purge.
# nfacctd publishes one object per message (pmacct.acct) and kafka_multi_values with purge markers
# (pmacct.multi); sfacctd publishes kafka_multi_values (pmacct.sflow). One exporter per topic counts it.
# Once the collectors have exited (SIGTERM, then one more datagram: see tests/data/pmacct/README.md), every
# message is read back with kcat and summed independently (lib/pmacct_expect.py); each exporter's flow_*
# series must equal those sums exactly.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/pmacct.sh"

for tool in /usr/sbin/nfacctd /usr/sbin/sfacctd /usr/sbin/pmacctd /usr/bin/kcat; do
	[[ -x $tool ]] || fail "$tool is missing (deploy/install-deps.sh installs pmacct and kcat)"
done

LOCAL_ASNS=64496,4200000001
PARTS=3
DATA="$FX_TEST_DATA/pmacct"
"$PYTHON" "$PMACCT_EXPECT_PY" names --out "$TEST_TMP/asn.txt"
cp "$PMACCT_RECIPES/pretag.map" "$PMACCT_RECIPES/networks.lst" "$TEST_TMP/"

start_mock --topic "pmacct.acct:$PARTS" --topic "pmacct.multi:$PARTS" --topic "pmacct.sflow:$PARTS"

# One exporter per topic, each in its own consumer group, ready before anything is published.
declare -A PORT
for topic in acct multi sflow; do
	PORT[$topic]=$(free_port)
	start_exporter "exporter_$topic" "${PORT[$topic]}" --brokers="$BOOT" --topic="pmacct.$topic" \
		--group="real-pmacct-$topic" --asn="$LOCAL_ASNS" --asn-names="$TEST_TMP/asn.txt" --workers=2 \
		--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
done
for topic in acct multi sflow; do
	wait_until 30 "exporter_$topic /-/ready" curl -fsS -m 2 "http://127.0.0.1:${PORT[$topic]}/-/ready"
done

NF_PORT=$(free_udp_port)
SF_PORT=$(free_udp_port)
render_recipe nfacctd.conf "$TEST_TMP/nfacctd.conf" "$NF_PORT"
render_recipe sfacctd.conf "$TEST_TMP/sfacctd.conf" "$SF_PORT"
render_recipe pmacctd.conf "$TEST_TMP/pmacctd.conf" "$NF_PORT"
start_collector nfacctd "$TEST_TMP/nfacctd.conf" "$NF_PORT"
start_collector sfacctd "$TEST_TMP/sfacctd.conf" "$SF_PORT"

# The sFlow probe is test input, not a recipe: pmacctd reports every packet of the pcap (sampling 1/1, its
# default) as sFlow agent AGENT.
sflow_probe() {
	local name=$1 agent=$2
	cat >"$TEST_TMP/$name.conf" <<-EOF
		daemonize: false
		pcap_savefile: $DATA/flows.pcap
		plugins: sfprobe[sf]
		sfprobe_receiver[sf]: 127.0.0.1:$SF_PORT
		sfprobe_agentip[sf]: $agent
		sfprobe_ifindex[sf]: 7
	EOF
	/usr/sbin/pmacctd -f "$TEST_TMP/$name.conf"
}

# run_bg NAME COMMAND...: runs COMMAND in the background with its output in NAME.log; sets NAME_PID.
run_bg() {
	local name=$1
	shift
	"$@" >"$TEST_TMP/$name.log" 2>&1 &
	local pid=$!
	STARTED_PIDS+=("$pid")
	printf -v "${name}_PID" '%s' "$pid"
}
# wait_bg NAME SECONDS: waits for a run_bg job; it must exit 0 within SECONDS. pmacctd at the end of a
# pcap_savefile sometimes exits 1 because its plugin finished first ("connection lost to '<plugin>'",
# "no more plugins active"): that is accepted once the plugin logged its own clean shutdown.
wait_bg() {
	local pid_var="${1}_PID"
	stop_pid "${!pid_var}" 0 "$2" && return 0
	if ((STOP_RC == 1)) && grep -q 'no more plugins active' "$TEST_TMP/$1.log" &&
		grep -q 'probe ): Shutting down on user request' "$TEST_TMP/$1.log"; then
		log "$1: pmacctd exited 1 after its plugin had finished (pmacctd's exit race; its flows were sent)"
		return 0
	fi
	fail "$1 exited with status $STOP_RC (see $1.log)"
}

send_nfgen() {
	local source
	for source in 127.0.0.1 127.0.0.2 127.0.0.3; do
		send_datagrams "$NF_PORT" "$source" "$DATA/nfgen-v5.bin" "$DATA/nfgen-v9.bin" "$DATA/nfgen-ipfix.bin"
	done
}

log "round 1: pmacctd (nfprobe) and pmacctd (sfprobe) on flows.pcap, nfgen datagrams from 3 exporters"
run_bg nfprobe /usr/sbin/pmacctd -f "$TEST_TMP/pmacctd.conf"
run_bg sfprobe1 sflow_probe sfprobe1 127.0.0.2
run_bg sfprobe2 sflow_probe sfprobe2 127.0.0.3
send_nfgen
wait_bg nfprobe 30
wait_bg sfprobe1 30
wait_bg sfprobe2 30

# A purge must have published round 1 before round 2 arrives, so that keys repeat across messages.
published() {
	local topic
	for topic in acct multi sflow; do
		topic_messages "pmacct.$topic" "$PARTS"
		((TOPIC_MESSAGES > 0)) || return 1
	done
}
deadline=$((SECONDS + 20))
until published; do
	((SECONDS < deadline)) || fail "nfacctd/sfacctd published nothing within 20 s (see nfacctd.log, sfacctd.log)"
	sleep 0.5
done

log "round 2: the same input again"
run_bg sfprobe3 sflow_probe sfprobe3 127.0.0.2
send_nfgen
wait_bg sfprobe3 30

# One more datagram after SIGTERM: nfgen-v9.bin for nfacctd (its flows are published with the last
# purge and read back like the rest), an sFlow datagram with no samples for sfacctd.
sflow_empty_datagram "$TEST_TMP/sflow-empty.bin"
stop_collector nfacctd "$NF_PORT" "$DATA/nfgen-v9.bin" 127.0.0.1
stop_collector sfacctd "$SF_PORT" "$TEST_TMP/sflow-empty.bin"

for topic in acct multi sflow; do
	read_topic "pmacct.$topic" "$TEST_TMP/$topic.dump"
	"$PYTHON" "$PMACCT_EXPECT_PY" expect --messages "$TEST_TMP/$topic.dump" --local "$LOCAL_ASNS" \
		--out "$TEST_TMP/$topic.expected" --stats-out "$TEST_TMP/$topic.stats.json"
	log "pmacct.$topic: $(tr -d '\n ' <"$TEST_TMP/$topic.stats.json")"
done

# The input exercised what this test claims, or it proves nothing.
stat_of() { "$PYTHON" -c 'import json, sys; v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v[k]
print(json.dumps(v) if isinstance(v, list) else v)' "$TEST_TMP/$1.stats.json" "$2"; }
(($(stat_of acct max_records_per_message) == 1)) || fail "pmacct.acct: a message with several records"
(($(stat_of acct markers) == 0)) || fail "pmacct.acct: markers, though the recipe sets none"
(($(stat_of multi max_records_per_message) >= 2)) || fail "pmacct.multi: no multi-value message"
(($(stat_of multi markers) >= 2)) || fail "pmacct.multi: no purge_init/purge_close markers"
(($(stat_of sflow max_records_per_message) >= 2)) || fail "pmacct.sflow: no multi-value message"
for topic in acct multi sflow; do
	(($(stat_of "$topic" keys_in_several_messages) > 0)) || fail "pmacct.$topic: no key published twice"
	(($(stat_of "$topic" counted) > 0 && $(stat_of "$topic" not_local) > 0)) ||
		fail "pmacct.$topic: want records counted and records not counted (transit)"
	(($(stat_of "$topic" bytes.receive) > 0 && $(stat_of "$topic" bytes.transmit) > 0)) ||
		fail "pmacct.$topic: want both directions"
done
(($(stat_of acct bytes.transmit) > 4294967295)) || fail "pmacct.acct: no byte total above 2^32"
[[ $(stat_of acct hostnames) == '["127.0.0.3", "router1.example.net", "router2.example.net"]' ]] ||
	fail "pmacct.acct hostnames: $(stat_of acct hostnames)"
[[ $(stat_of sflow hostnames) == '["127.0.0.3", "router2.example.net"]' ]] ||
	fail "pmacct.sflow hostnames: $(stat_of sflow hostnames)"
# Both nfacctd plugins saw the same flows: the two topics must add up to the same counters.
cmp -s "$TEST_TMP/acct.expected" "$TEST_TMP/multi.expected" ||
	fail "pmacct.acct and pmacct.multi do not sum to the same counters (diff $TEST_TMP/{acct,multi}.expected)"

for topic in acct multi sflow; do
	wait_metrics "${PORT[$topic]}" "$TEST_TMP/$topic.expected" 30
	log "exporter_$topic: every flow series equals what pmacct.$topic holds ($(grep -c '' "$TEST_TMP/$topic.expected") samples)"
done
# The self-metrics agree with what was published: every message consumed, every marker and transit flow
# ignored for its reason, nothing invalid.
self_metrics_match() {
	local port=$1 stats=$2 body="$TEST_TMP/self-$1.prom"
	scrape "$port" "$body" || return 1
	"$PYTHON" - "$METRICS_PY" "$body" "$stats" <<-'EOF'
		import json, subprocess, sys
		metrics_py, body, stats = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
		def value(name, *labels):
		    out = subprocess.run([sys.executable, metrics_py, "sum", body, name, *labels], capture_output=True, text=True)
		    return int(out.stdout.strip())
		want = {
		    "kafka messages": (value("flow_exporter_kafka_messages_total"), stats["messages"]),
		    "records": (value("flow_exporter_records_total"), stats["records"] + stats["markers"]),
		    "counted": (value("flow_exporter_records_counted_total"), stats["counted"]),
		    "not_local": (value("flow_exporter_records_ignored_total", "reason=not_local"), stats["not_local"]),
		    "markers": (value("flow_exporter_records_ignored_total", "reason=marker"), stats["markers"]),
		    "invalid": (value("flow_exporter_records_invalid_total"), 0),
		}
		bad = {k: v for k, v in want.items() if v[0] != v[1]}
		print("self-metrics (got, want) that differ: %s" % bad if bad else "ok")
		sys.exit(1 if bad else 0)
	EOF
}
for topic in acct multi sflow; do
	if ! self_metrics_match "${PORT[$topic]}" "$TEST_TMP/$topic.stats.json" >"$TEST_TMP/self-$topic.txt"; then
		sleep 2 # counters and self-metrics may be published a flush apart
		self_metrics_match "${PORT[$topic]}" "$TEST_TMP/$topic.stats.json" >"$TEST_TMP/self-$topic.txt" ||
			fail "exporter_$topic: $(cat "$TEST_TMP/self-$topic.txt")"
	fi
done

# Still exact a moment later: nothing counted twice after the fact.
sleep 1
for topic in acct multi sflow; do
	assert_metrics "${PORT[$topic]}" "$TEST_TMP/$topic.expected"
done

for topic in acct multi sflow; do
	pid_var="exporter_${topic}_PID"
	stop_pid "${!pid_var}" TERM 10 || fail "exporter_$topic exited with status $STOP_RC"
	assert_clean_log "$TEST_TMP/exporter_$topic.log"
done
stop_mock
