#!/bin/bash
# Sampling renormalization against real pmacct (Debian's 1.7.7): sfacctd and nfacctd, each twice, with and
# without *_renormalize, publish JSON with the sampling_rate primitive into the mock cluster. They are fed
# sampled exports that lib/sampled_gen.py builds (no capture carries a rate): sFlow v5 at 1:100 from agent
# 127.0.0.6, NetFlow v9 at 1:50 from 127.0.0.4, IPFIX at 1:25 from 127.0.0.5, plus the unsampled
# nfgen-v9.bin from 127.0.0.7 (nfacctd writes sampling_rate 0: no rate known).
# Three exporters read the topics:
#   raw     (not renormalized): counters = pmacct's sums x the record's rate, exactly;
#   renorm  (renormalized by pmacct: sampling_rate 1): counters = pmacct's sums, never multiplied again;
#   file    (not renormalized, --sampling-rates names 127.0.0.5 at 1:7, --sampling-rate=3 for rate 0):
#           the file's rate in place of the record's, the flag's for records with none.
# pmacct is checked too: what it renormalized equals what it did not, times the rate (so our
# multiplication is pmacct's own), and the raw records carry the rates sent.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/pmacct.sh"

for tool in /usr/sbin/nfacctd /usr/sbin/sfacctd /usr/bin/kcat; do
	[[ -x $tool ]] || fail "$tool is missing (deploy/install-deps.sh installs pmacct and kcat)"
done
GEN="$FX_LIB_DIR/sampled_gen.py"
EXPECT="$FX_LIB_DIR/sampling_expect.py"
LOCAL_ASNS=64496
PARTS=2
cp "$PMACCT_RECIPES/networks.lst" "$TEST_TMP/"
write_asn_names "$TEST_TMP/asn.txt"
printf 'exporter,rate\n"127.0.0.5",7\n' >"$TEST_TMP/rates.csv"

start_mock --topic "sf.raw:$PARTS" --topic "sf.renorm:$PARTS" --topic "nf.raw:$PARTS" --topic "nf.renorm:$PARTS"
host=${BOOT%%,*}
kafka_port=${host##*:}
host=${host%:*}

declare -A PORT
PORT[raw]=$(free_port)
PORT[renorm]=$(free_port)
PORT[file]=$(free_port)
common=(--brokers="$BOOT" --asn="$LOCAL_ASNS" --asn-names="$TEST_TMP/asn.txt" --workers=2
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest)
start_exporter exporter_raw "${PORT[raw]}" "${common[@]}" --topic=sf.raw,nf.raw --group=sampling-raw
start_exporter exporter_renorm "${PORT[renorm]}" "${common[@]}" --topic=sf.renorm,nf.renorm --group=sampling-renorm
start_exporter exporter_file "${PORT[file]}" "${common[@]}" --topic=sf.raw,nf.raw --group=sampling-file \
	--sampling-rates="$TEST_TMP/rates.csv" --sampling-rate=3
for name in raw renorm file; do
	wait_until 30 "exporter_$name /-/ready" curl -fsS -m 2 "http://127.0.0.1:${PORT[$name]}/-/ready"
done

# collector_conf DAEMON MODE PORT RENORMALIZE: a collector publishing to topic <sf|nf>.MODE.
collector_conf() {
	local daemon=$1 mode=$2 port=$3 renormalize=$4 prefix=${1:0:2}
	cat <<-EOF
		daemonize: false
		${daemon}_ip: 127.0.0.1
		${daemon}_port: $port
		${daemon}_renormalize: $renormalize
		${daemon}_as: file
		${daemon}_net: file
		networks_file: $TEST_TMP/networks.lst
		plugins: kafka[k]
		aggregate[k]: peer_src_ip, src_as, dst_as, in_iface, out_iface, sampling_rate
		kafka_output[k]: json
		kafka_broker_host[k]: $host
		kafka_broker_port[k]: $kafka_port
		kafka_topic[k]: $prefix.$mode
		kafka_refresh_time[k]: 2
		kafka_multi_values[k]: 65536
	EOF
	[[ $daemon == nfacctd ]] && echo "nfacctd_time_new: true"
	return 0
}

declare -A UDP
for daemon in sfacctd nfacctd; do
	for mode in raw renorm; do
		key="${daemon}_$mode"
		UDP[$key]=$(free_udp_port)
		renormalize=false
		[[ $mode == renorm ]] && renormalize=true
		collector_conf "$daemon" "$mode" "${UDP[$key]}" "$renormalize" >"$TEST_TMP/$key.conf"
	done
done
# start_copy KEY: lib/pmacct.sh's start_collector for two instances of one daemon (DAEMON_MODE): the
# PID, plugin and log names follow KEY, which stop_collector reads back.
start_copy() {
	local key=$1 daemon=${1%_*} pid
	"/usr/sbin/$daemon" -f "$TEST_TMP/$key.conf" >"$TEST_TMP/$key.log" 2>&1 &
	pid=$!
	STARTED_PIDS+=("$pid")
	printf -v "${key}_PID" '%s' "$pid"
	wait_until 15 "$key listens on UDP ${UDP[$key]}" udp_bound "${UDP[$key]}"
	local plugins=()
	wait_until 10 "$key forks its plugin" pgrep -P "$pid"
	mapfile -t plugins < <(pgrep -P "$pid")
	STARTED_PIDS+=("${plugins[@]}")
	printf -v "${key}_PLUGINS" '%s' "${plugins[*]}"
}
for key in sfacctd_raw sfacctd_renorm nfacctd_raw nfacctd_renorm; do
	start_copy "$key"
done

send_round() {
	local mode
	for mode in raw renorm; do
		"$PYTHON" "$GEN" sflow "${UDP[sfacctd_$mode]}" 127.0.0.6 100
		"$PYTHON" "$GEN" netflow9 "${UDP[nfacctd_$mode]}" 127.0.0.4 50
		"$PYTHON" "$GEN" ipfix "${UDP[nfacctd_$mode]}" 127.0.0.5 25
		send_datagrams "${UDP[nfacctd_$mode]}" 127.0.0.7 "$FX_TEST_DATA/pmacct/nfgen-v9.bin"
	done
}
published() {
	local topic
	for topic in sf.raw sf.renorm nf.raw nf.renorm; do
		topic_messages "$topic" "$PARTS"
		((TOPIC_MESSAGES > 0)) || return 1
	done
}
log "round 1"
send_round
wait_until 20 "every collector published" published
log "round 2 (after a purge: the same keys again, as deltas)"
send_round

# Stop each collector the way it needs: SIGTERM, then a datagram (an empty sFlow one, an unsampled
# NetFlow v9 one from 127.0.0.7, which is published with the last purge like the rest).
sflow_empty_datagram "$TEST_TMP/sflow-empty.bin"
for key in sfacctd_raw sfacctd_renorm nfacctd_raw nfacctd_renorm; do
	datagram="$TEST_TMP/sflow-empty.bin" source=127.0.0.9
	[[ $key == nf* ]] && datagram="$FX_TEST_DATA/pmacct/nfgen-v9.bin" source=127.0.0.7
	stop_collector "$key" "${UDP[$key]}" "$datagram" "$source"
done

for topic in sf.raw sf.renorm nf.raw nf.renorm; do
	read_topic "$topic" "$TEST_TMP/$topic.dump"
done
"$PYTHON" "$EXPECT" --messages "$TEST_TMP/sf.raw.dump,$TEST_TMP/nf.raw.dump" --local "$LOCAL_ASNS" --multiply \
	--out "$TEST_TMP/raw.expected" --stats-out "$TEST_TMP/raw.stats.json"
# The renormalized topics under the exporter's rule (--multiply) and as they are: the same, since every
# sampled record carries 1.
"$PYTHON" "$EXPECT" --messages "$TEST_TMP/sf.renorm.dump,$TEST_TMP/nf.renorm.dump" --local "$LOCAL_ASNS" --multiply \
	--out "$TEST_TMP/renorm.expected" --stats-out "$TEST_TMP/renorm.stats.json"
"$PYTHON" "$EXPECT" --messages "$TEST_TMP/sf.renorm.dump,$TEST_TMP/nf.renorm.dump" --local "$LOCAL_ASNS" \
	--out "$TEST_TMP/renorm-as-is.expected" --stats-out "$TEST_TMP/renorm-as-is.stats.json"
cmp -s "$TEST_TMP/renorm.expected" "$TEST_TMP/renorm-as-is.expected" ||
	fail "renormalized records would be multiplied again (diff $TEST_TMP/renorm{,-as-is}.expected)"
"$PYTHON" "$EXPECT" --messages "$TEST_TMP/sf.raw.dump,$TEST_TMP/nf.raw.dump" --local "$LOCAL_ASNS" --multiply \
	--rates "$TEST_TMP/rates.csv" --default-rate 3 --out "$TEST_TMP/file.expected" --stats-out "$TEST_TMP/file.stats.json"
for name in raw renorm file; do
	log "$name: $("$PYTHON" -c 'import json, sys; s = json.load(open(sys.argv[1])); s.pop("record_values"); print(json.dumps(s, sort_keys=True))' "$TEST_TMP/$name.stats.json")"
done

stat_of() { "$PYTHON" -c 'import json, sys; v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v = v.get(k, 0) if isinstance(v, dict) else v
print(json.dumps(v) if isinstance(v, list) else v)' "$TEST_TMP/$1.stats.json" "$2"; }
# What pmacct did, checked rather than assumed: without renormalization the records carry the rates sent
# (0 for the unsampled export); with it, 1 for every sampled one, and the same totals as ours.
[[ $(stat_of raw rates_seen) == "[0, 25, 50, 100]" ]] || fail "raw sampling_rate values: $(stat_of raw rates_seen)"
[[ $(stat_of renorm rates_seen) == "[0, 1]" ]] || fail "renormalized sampling_rate values: $(stat_of renorm rates_seen)"
(($(stat_of raw raw_bytes) < $(stat_of raw bytes))) || fail "raw: the rates multiplied nothing"
# pmacct's renormalization = its raw records x rate, for the keys both collectors published alike: under load
# a collector can split or miss a round (UDP, purge timing), which the exporter's own checks above do not
# mind (each compares with what that collector published), so this check asks for sFlow and for NetFlow
# or IPFIX keys that agree, not for every key.
"$PYTHON" - "$TEST_TMP/raw.stats.json" "$TEST_TMP/renorm.stats.json" <<'PY' ||
import collections, json, sys
def by_key(path):
    keys = collections.defaultdict(list)
    for key, byte_count, packets in json.load(open(path))["record_values"]:
        keys[key].append((byte_count, packets))
    return {key: sorted(values) for key, values in keys.items()}
raw, renorm = by_key(sys.argv[1]), by_key(sys.argv[2])
alike = [key for key in raw if renorm.get(key) == raw[key]]
sflow = any("'127.0.0.6'" in key for key in alike)
netflow = any("'127.0.0.4'" in key or "'127.0.0.5'" in key for key in alike)
print("keys alike: %d of %d (raw) / %d (renormalized)" % (len(alike), len(raw), len(renorm)), file=sys.stderr)
sys.exit(0 if sflow and netflow else 1)
PY
	fail "pmacct's renormalized records differ from its raw records x rate (record_values in $TEST_TMP/{raw,renorm}.stats.json)"
(($(stat_of renorm sources.record_one) > 0 && $(stat_of renorm sources.record) == 0)) ||
	fail "renorm: want records at rate 1 only"
(($(stat_of file sources.file) > 0 && $(stat_of file sources.flag) > 0 && $(stat_of file sources.record) > 0)) ||
	fail "file: want rates from the file, the flag and the records"

for name in raw renorm file; do
	wait_metrics "${PORT[$name]}" "$TEST_TMP/$name.expected" 30
	log "exporter_$name equals its expectation exactly ($(grep -c '' "$TEST_TMP/$name.expected") samples)"
done

# The rate sources the exporters report equal those of the records (source label by source label).
sources_match() {
	local name=$1 body="$TEST_TMP/self-$1.prom" source got want
	scrape "${PORT[$name]}" "$body" || return 1
	for source in record record_one file flag unknown; do
		got=$("$PYTHON" "$METRICS_PY" sum "$body" flow_exporter_records_sampling_rate_total "source=$source")
		want=$(stat_of "$name" "sources.$source")
		((got == want)) || { log "exporter_$name source=$source: $got, want $want"; return 1; }
	done
	[[ $("$PYTHON" "$METRICS_PY" sum "$body" flow_exporter_records_invalid_total) == 0 ]]
}
for name in raw renorm file; do
	sources_match "$name" || { sleep 2; sources_match "$name"; } || fail "exporter_$name: rate sources differ"
done
log "rate sources: raw $(stat_of raw sources.record) from records, $(stat_of raw sources.unknown) unknown;" \
	"file $(stat_of file sources.file) from the file, $(stat_of file sources.flag) from --sampling-rate"

for name in raw renorm file; do
	pid_var="exporter_${name}_PID"
	stop_pid "${!pid_var}" TERM 10 || fail "exporter_$name exited with status $STOP_RC"
	assert_clean_log "$TEST_TMP/exporter_$name.log"
done
stop_mock
