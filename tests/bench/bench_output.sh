#!/bin/bash
# bench_output.sh: the output side. First the in-process figures (bench_output: snapshot, /metrics plain
# and gzip, remote-write encoding and bytes per sample at 10k, 100k and 1M series); then the push path of
# the daemon itself, as users run it: ~N distinct series produced once
# into the mock Kafka cluster (tests/tools/fx_mock), consumed, then no records flowing while the exporter
# pushes every --push-interval to the recording receiver (tests/tools/rw_receiver, which decodes every
# request with the generated protobuf-c code and checks it against remote write 1.0), or with --protocol
# 2.0 to the decoding 2.0 receiver (tests/e2e/lib/rw2_receiver.py, Google's protobuf runtime: every rule of
# the spec checked on every request; none may break).
#
#   tests/bench/run_all.sh <build>   (or, alone:)
#   FX_BIN=build/flow-exporter FX_TOOLS=build/tests FX_TEST_DATA=tests/data \
#     tests/bench/bench_output.sh [--series 100000] [--minutes 3] [--scrape-minutes 1] [--interval 15]
#                                 [--inproc-series 10000,100000,1000000] [--no-inproc]
#                                 [--protocol 1.0|2.0] [--no-vmagent]
#
# Reports, over the push window (after the first push of the full set, no records flowing): the daemon's
# CPU seconds per minute (utime + stime from /proc/<pid>/stat), the samples delivered and the bytes per
# sample on the wire (request bodies as received); then, over a second window where /metrics is also
# fetched with gzip every interval (as Prometheus would), the CPU again; the daemon's peak RSS (VmHWM:
# since it started, ingestion of the set included) and its RSS at the end. Last, what users run instead
# of pushing: vmagent (Debian's) scraping the same /metrics every interval and remote-writing it to a
# second recording receiver, over --scrape-minutes: vmagent's CPU seconds per minute, its RSS and its
# bytes per sample on the wire, on the same series (vmagent adds job and instance labels to each).
# shellcheck source=../e2e/lib/common.sh disable=SC2154
source "$(dirname "$0")/../e2e/lib/common.sh"
# shellcheck source=../e2e/lib/push.sh
source "$(dirname "$0")/../e2e/lib/push.sh"

SERIES=100000
MINUTES=3
INTERVAL=15
SCRAPE_MINUTES=1
INPROC_SERIES=10000,100000,1000000
INPROC=1
PROTOCOL=1.0
VMAGENT=1
while (($#)); do
	case $1 in
	--series) SERIES=$2; shift 2 ;;
	--minutes) MINUTES=$2; shift 2 ;;
	--scrape-minutes) SCRAPE_MINUTES=$2; shift 2 ;;
	--interval) INTERVAL=$2; shift 2 ;;
	--inproc-series) INPROC_SERIES=$2; shift 2 ;;
	--no-inproc) INPROC=0; shift ;;
	--protocol) PROTOCOL=$2; shift 2 ;;
	--no-vmagent) VMAGENT=0; shift ;;
	*) fail "unknown argument $1" ;;
	esac
done
[[ $PROTOCOL == 1.0 || $PROTOCOL == 2.0 ]] || fail "--protocol 1.0 or 2.0"
: "${FX_SOURCE:=$(cd "$(dirname "$0")/../.." && pwd)}" # rw2_receiver.py's schemas (proto/)
if ((INPROC)); then
	BENCH=${FX_BENCH_TOOLS:-$FX_TOOLS/bench}/bench_output
	[[ -x $BENCH ]] || fail "no $BENCH (build the bench_output target)"
	"$BENCH" --series "$INPROC_SERIES" --runs 7 2>/dev/null
fi
# The mock keeps about 5 MiB per partition and drops the oldest data past it, silently: ~190 bytes a
# record here, so ~27,000 records a partition at most (16 partitions held 445,500 of 1,000,000).
PARTITIONS=$((SERIES > 240000 ? SERIES / 15000 : 16))

# ---- records: one per series, as pmacct would classify them (one side the local AS) -----------------
"$PYTHON" - "$SERIES" "$PARTITIONS" "$TEST_TMP" <<'EOF'
import json, sys
n, parts, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
words = ["TELIA", "COGENT", "LEVEL3", "HURRICANE", "AKAMAI", "AMAZON", "GOOGLE", "FASTLY", "OVH", "HETZNER",
         "NTT", "ZAYO", "COMCAST", "VODAFONE", "ORANGE", "TATA", "GTT", "LUMEN", "CLOUDFLARENET", "DTAG"]
asns = []
with open(out + "/asn.txt", "w") as names:
    names.write("64496\tEXAMPLE-ISP - Example Internet Service, DE\n")
    for a in range(4000):
        asn = 1000 + a * 31 if a % 2 else 131072 + a * 149
        if a % 97 == 0:
            asn = 4200000000 + a
        asns.append(asn)
        r = (a * 2654435761) & 0xffffffff
        names.write("%d\t%s-%s%d - %s Networks %s, %s\n" % (asn, words[r % 20], words[(r >> 5) % 20], r % 100,
                    words[(r >> 10) % 20], "Inc." if (r >> 15) % 2 else "GmbH", "US" if (r >> 16) % 2 else "DE"))
messages = [[] for _ in range(parts)]
batch = [[] for _ in range(parts)]
for i in range(n):
    host, j = i % 64, i // 64
    peer = asns[j % 4000]
    combo = j // 4000
    h = (i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    tx = h & 1
    record = {"event_type": "purge", "label": "%s%02d.%s.example.net" % ("edge" if host % 3 else "core", host,
              ["fra1", "ams2", "lon1", "nyc3", "sjc1"][host % 5]),
              "as_src": 64496 if tx else peer, "as_dst": peer if tx else 64496, "peer_ip_src": "192.0.2.1",
              "iface_in": 1 + combo * 32 + (h >> 8) % 32, "iface_out": 1 + (h >> 16) % 48,
              "packets": 1 + (h >> 24) % 1000, "bytes": 64 + (h >> 24) % 1000000}
    p = i % parts
    batch[p].append(json.dumps(record, separators=(",", ":")))
    if len(batch[p]) == 100:  # kafka_multi_values: 100 records a message
        messages[p].append("\n".join(batch[p]) + "\n")
        batch[p] = []
for p in range(parts):
    if batch[p]:
        messages[p].append("\n".join(batch[p]) + "\n")
    with open("%s/p%d.msg" % (out, p), "wb") as f:
        f.write(b"\x1e".join(m.encode() for m in messages[p]))
EOF

start_mock --topic "flows:$PARTITIONS"
for ((p = 0; p < PARTITIONS; p++)); do
	MOCK_TIMEOUT=120 must_mock produce flows "$p" "$TEST_TMP/p$p.msg"
done

# The recording receiver; its log (recv.jsonl) holds one line per request with the sizes, not the samples.
if [[ $PROTOCOL == 1.0 ]]; then
	start_receiver recv --no-samples --max-series 2000
	URL="http://127.0.0.1:$recv_PORT/api/v1/write"
else
	start_rw2_receiver recv
	URL="http://127.0.0.1:$recv_PORT/ok"
fi

PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --group=bench-output --asn=64496 \
	--asn-names="$TEST_TMP/asn.txt" --kafka-opt=session.timeout.ms=6000 \
	--kafka-opt=auto.offset.reset=earliest --max-series=$((SERIES * 2)) \
	--remote-write-url="$URL" --remote-write-protocol="$PROTOCOL" --push-interval="${INTERVAL}s"
PID=$exporter_PID

metric() { # metric NAME: the value of an unlabelled (or first) sample of NAME in /metrics
	curl -fsS -m 30 "http://127.0.0.1:$PORT/metrics" | awk -v name="$1" '$1 == name || index($1, name "{") == 1 { print $2; exit }'
}
samples_pushed() {
	curl -fsS -m 30 "http://127.0.0.1:$PORT/metrics" | awk '$1 ~ /^flow_exporter_push_samples_total/ { print $2; exit }'
}
wait_until 300 "$SERIES series consumed" bash -c "[[ \$(curl -fsS -m 30 http://127.0.0.1:$PORT/metrics | awk '\$1 == \"flow_exporter_series\" { print \$2 }') -ge $SERIES ]]"
log "$SERIES series consumed; waiting for a push of the full set"
sleep $((INTERVAL + 2))

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
status_kb() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$PID/status"; }
TICKS=$(getconf CLK_TCK)

# wire_bytes LOG FROM_MS TO_MS: "bytes samples" of the requests logged in LOG that arrived in the window
# (rw_receiver's log, or rw2_receiver.py's)
wire_bytes() {
	"$PYTHON" - "$@" <<'PY'
import json, sys
total = samples = 0
for line in open(sys.argv[1]):
    request = json.loads(line)
    if int(sys.argv[2]) <= request["ms"] < int(sys.argv[3]) and request["status"] // 100 == 2:
        total += request.get("body_bytes", request.get("bytes", 0))
        samples += request.get("sample_count", request.get("samples", 0))
print(total, samples)
PY
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# window PHASE MINUTES SCRAPE: prints "PHASE cpu1 cpu0 t1 t0 scrapes samples1 samples0 bytes wire_samples"
window() {
	local phase=$1 minutes=$2 scrape=$3 scrapes=0
	local samples0 cpu0 t0 end
	samples0=$(samples_pushed)
	cpu0=$(cpu_ticks)
	t0=$(date +%s.%N)
	local ms0
	ms0=$(now_ms)
	end=$((SECONDS + minutes * 60))
	while ((SECONDS < end)); do
		if ((scrape)); then
			curl -fsS -m 30 -H 'Accept-Encoding: gzip' -o /dev/null "http://127.0.0.1:$PORT/metrics" &&
				scrapes=$((scrapes + 1))
		fi
		sleep "$INTERVAL"
	done
	echo "$phase $(cpu_ticks) $cpu0 $(date +%s.%N) $t0 $scrapes $(samples_pushed) $samples0" \
		"$(wire_bytes "$TEST_TMP/recv.jsonl" "$ms0" "$(now_ms)")"
}
PUSH_LINE=$(window push "$MINUTES" 0)
SCRAPE_LINE=$(window scrape "$SCRAPE_MINUTES" 1)
HWM=$(status_kb VmHWM)
RSS=$(status_kb VmRSS)
curl -fsS -m 30 "http://127.0.0.1:$PORT/metrics" >"$TEST_TMP/last.prom"
LINES=$(grep -c '^flow_' "$TEST_TMP/last.prom" || true)
kill -0 "$recv_PID" || fail "the receiver died"
# The receiver answers 400 to a request that breaks remote write 1.0: none may have been refused.
REFUSED=$(awk '$1 ~ /^flow_exporter_push_requests_total/ && /status_class="4xx"/ { s += $2 } END { print s + 0 }' "$TEST_TMP/last.prom")
((REFUSED == 0)) || fail "$REFUSED push requests refused by the receiver (see $TEST_TMP/recv.log)"
if [[ $PROTOCOL == 2.0 ]]; then
	# rw2_receiver.py's checks of the spec: none may have failed.
	curl -fsS -m 60 "http://127.0.0.1:$recv_PORT/state/ok" >"$TEST_TMP/recv-state.json"
	"$PYTHON" -c 'import json, sys; s = json.load(open(sys.argv[1])); sys.exit("2.0 rules broken: %s" % s["violations"][:5] if s["violations"] or not s["v2"] else 0)' \
		"$TEST_TMP/recv-state.json" || fail "rw2_receiver.py found violations"
fi

# ---- vmagent scraping the same /metrics, remote-writing to a second recording receiver -----------------
VM_LINE="vmagent not installed"
((VMAGENT)) || VM_LINE="vmagent not run (--no-vmagent)"
if ((VMAGENT)) && command -v vmagent >/dev/null; then
	start_receiver vmrecv --no-samples --max-series 100000
	printf '%s\n' "global:" "  scrape_interval: ${INTERVAL}s" "  scrape_timeout: ${INTERVAL}s" \
		"scrape_configs:" "  - job_name: flow-exporter" "    static_configs:" \
		"      - targets: ['127.0.0.1:$PORT']" >"$TEST_TMP/vmagent.yml"
	start_bg vmagent vmagent -promscrape.config="$TEST_TMP/vmagent.yml" -httpListenAddr="127.0.0.1:$(free_port)" \
		-remoteWrite.url="http://127.0.0.1:$vmrecv_PORT/api/v1/write" \
		-remoteWrite.tmpDataPath="$TEST_TMP/vmagent-data" -loggerLevel=WARN -promscrape.maxScrapeSize=2GiB
	VM_PID=$vmagent_PID
	# Its first scrape and push of the full set, then a window as long as the scrape window.
	wait_until 120 "vmagent's first push" test -s "$TEST_TMP/vmrecv.jsonl"
	sleep $((INTERVAL + 2))
	vm_ticks() { awk '{ print $14 + $15 }' "/proc/$VM_PID/stat"; }
	VM_CPU0=$(vm_ticks)
	VM_T0=$(date +%s.%N)
	VM_MS0=$(now_ms)
	sleep $((SCRAPE_MINUTES * 60))
	VM_LINE="vmagent $(vm_ticks) $VM_CPU0 $(date +%s.%N) $VM_T0 $(awk '$1 == "VmHWM:" { print $2 }' "/proc/$VM_PID/status")"
	VM_LINE="$VM_LINE $(wire_bytes "$TEST_TMP/vmrecv.jsonl" "$VM_MS0" "$(now_ms)")"
	VM_BROKEN=$(grep -c -v '"violations":\[\]' "$TEST_TMP/vmrecv.jsonl" || true)
	((VM_BROKEN == 0)) || fail "$VM_BROKEN of vmagent's requests break remote write 1.0 (see $TEST_TMP/vmrecv.jsonl)"
	# A scrape vmagent refused (its -promscrape.maxScrapeSize, 16 MiB by default: ~60,000 series) leaves
	# it pushing its own few samples: no comparison.
	VM_SAMPLES=${VM_LINE##* }
	((VM_SAMPLES >= SERIES)) || fail "vmagent delivered $VM_SAMPLES samples in the window, fewer than the $SERIES series: its scrapes failed"
fi

"$PYTHON" - "$TICKS" "$HWM" "$RSS" "$SERIES" "$INTERVAL" "$LINES" "$PUSH_LINE" "$SCRAPE_LINE" "$VM_LINE" "$PROTOCOL" <<'EOF'
import sys
ticks, hwm, rss, series, interval, lines = sys.argv[1:7]
protocol = sys.argv[10]
print("daemon at %s series (%s flow sample lines), push every %ss with remote write %s, no records flowing:" %
      (series, lines, interval, protocol))
for line in sys.argv[7:9]:
    phase, cpu1, cpu0, t1, t0, scrapes, s1, s0, wire, wire_samples = line.split()
    minutes = (float(t1) - float(t0)) / 60
    cpu = (int(cpu1) - int(cpu0)) / int(ticks)
    what = "push only" if phase == "push" else "push + %s gzip scrapes" % scrapes
    print("  %-32s %.3f CPU-s per minute over %.1f min; %d samples delivered, %.1f bytes/sample on the wire" %
          (what + ":", cpu / minutes, minutes, int(float(s1) - float(s0)), int(wire) / max(int(wire_samples), 1)))
print("  peak RSS (VmHWM, ingestion included): %.1f MB; RSS at the end: %.1f MB" % (int(hwm) / 1024, int(rss) / 1024))
vm = sys.argv[9].split()
if len(vm) != 8:
    print("  (%s)" % sys.argv[9])
else:
    cpu1, cpu0, t1, t0, vm_hwm, wire, wire_samples = vm[1:]
    minutes = (float(t1) - float(t0)) / 60
    print("vmagent scraping the daemon every %ss and remote-writing what it scraped (the alternative to pushing):" % interval)
    print("  vmagent alone: %.3f CPU-s per minute over %.1f min; peak RSS %.1f MB; %s samples, %.1f bytes/sample on the wire" %
          ((int(cpu1) - int(cpu0)) / int(ticks) / minutes, minutes, int(vm_hwm) / 1024, wire_samples,
           int(wire) / max(int(wire_samples), 1)))
EOF
