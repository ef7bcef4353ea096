#!/bin/bash
# The interface names inline (--labels with iface_in_name, iface_out_name, iface_in_description), from
# --interface-names: every flow series of /metrics carries the names of its interfaces (named by hostname,
# by the exporter's address, with a quote to escape; none for an interface the file does not name), with
# the exact totals of the records produced, and agrees with flow_interface_info. The file is rewritten
# and SIGHUP sent: the very next scrape after the reload carries the new names on the same totals, and the
# chunks produced after it add up exactly. Also: a name without its index is refused at startup (exit 2,
# naming --labels). OpenMetrics and promtool accept the bodies.
source "$(dirname "$0")/lib/common.sh"

LOCAL_ASNS=64496,4200000001,65551
SET="$TEST_TMP/set"
"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 23 --partitions 2 --chunks 4 --messages 50 --local "$LOCAL_ASNS"
NAMES="$TEST_TMP/interfaces.csv"
HEADER='exporter,ifindex,name,description,speed'
LABELS=hostname,source_as,source_as_name,destination_as,destination_as_name,iface_in,iface_out
LABELS+=,iface_in_name,iface_out_name,iface_in_description

# A name without its index: exit code 2, the flag named.
rc=0
"$FX_BIN" --brokers=127.0.0.1:9 --asn-names="$SET/asn.txt" --labels=hostname,iface_out,iface_in_name \
	>"$TEST_TMP/startup.log" 2>&1 || rc=$?
((rc == 2)) || fail "--labels=hostname,iface_out,iface_in_name: exit $rc, want 2"
grep -q -- '--labels: iface_in_name needs iface_in' "$TEST_TMP/startup.log" ||
	fail "the refusal does not name the flag: $(cat "$TEST_TMP/startup.log")"

# router2.example.net is named by its address (the peer_ip_src of its records); core"3\lab's name needs
# escaping; 198.51.100.8 has an empty description (no label); router1.example.net/523 is not named.
cat >"$NAMES" <<-EOF
	$HEADER
	router1.example.net,1,et-0/0/1,"TRANSIT-ARELION, 100G",100000000000
	router1.example.net,2,ge-0/0/2,uplink,
	192.0.2.2,10,xe-0/0/10,by address,
	"core""3\\lab",1,"lo""0",quoted,
	198.51.100.8,2,ge-0/0/2,,
EOF

start_mock --topic flows:2
PORT=$(free_port)
start_exporter exporter "$PORT" --brokers="$BOOT" --topic=flows --asn="$LOCAL_ASNS" --asn-names="$SET/asn.txt" \
	--group=iface-labels --labels="$LABELS" --interface-names="$NAMES" --kafka-opt=session.timeout.ms=6000 \
	--kafka-opt=auto.offset.reset=earliest
wait_until 30 "exporter /-/ready" curl -fsS -m 2 "http://127.0.0.1:$PORT/-/ready"

produce_chunk() {
	local p
	for p in 0 1; do
		must_mock produce flows "$p" "$SET/chunk$1.p$p.msg"
	done
	log "chunk $1 produced"
}

# expect_named CHUNKS NAMES_CSV OUT: the exact flow series of CHUNKS (flows.py) with the names of
# NAMES_CSV added as the exporter must add them (file by hostname, else by the address behind it).
expect_named() {
	"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --chunks "$1" --out "$TEST_TMP/plain.prom" \
		--counts-out "$TEST_TMP/expected-counts.json"
	"$PYTHON" - "$TEST_TMP/plain.prom" "$2" "$3" <<-'PY'
		import csv, glob, json, os, re, sys
		plain, names_csv, out = sys.argv[1:]
		peers = {"router1.example.net": "192.0.2.1", "router2.example.net": "192.0.2.2",
		         'core"3\\lab': "192.0.2.3", "routeur-é-😀": "192.0.2.4"}
		# The one record of each chunk labelled huge-cN carries the address of a random host.
		for path in glob.glob(os.path.join(os.path.dirname(names_csv), "set", "chunk*.msg")):
		    for text in re.findall(r"\{[^{}]*\}", open(path, encoding="utf-8", errors="replace").read()):
		        try:
		            record = json.loads(text)
		        except ValueError:
		            continue
		        if str(record.get("label", "")).startswith("huge-c") and record.get("peer_ip_src"):
		            peers[record["label"]] = record["peer_ip_src"]
		names = {}
		with open(names_csv, newline="", encoding="utf-8") as f:
		    for row in csv.DictReader(f):
		        names[(row["exporter"], row["ifindex"])] = (row["name"], row["description"])
		def unescape(v):
		    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)
		def escape(v):
		    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
		lines = []
		for line in open(plain, encoding="utf-8"):
		    name, rest = line.split("{", 1)
		    body, value = rest.rsplit("} ", 1)
		    labels = dict((k, unescape(v)) for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', body))
		    host = labels.get("hostname")
		    for side, keep_description in (("in", True), ("out", False)):
		        index = labels.get("iface_" + side)
		        if host is None or index is None:
		            continue
		        entry = names.get((host, index)) or names.get((peers.get(host, ""), index))
		        if not entry:
		            continue
		        labels["iface_%s_name" % side] = entry[0]
		        if keep_description and entry[1]:
		            labels["iface_%s_description" % side] = entry[1]
		    pairs = ",".join('%s="%s"' % (k, escape(labels[k])) for k in sorted(labels))
		    lines.append("%s{%s} %s" % (name, pairs, value))
		open(out, "w", encoding="utf-8").write("".join(lines))
		named = sum(1 for l in lines if "iface_in_name=" in l)
		print("%d samples, %d with iface_in_name" % (len(lines), named), file=sys.stderr)
		assert named > 0
	PY
}

# check_body FILE: promtool, and flow_interface_info names what the inline labels name.
check_body() {
	promtool check metrics <"$1" >"$TEST_TMP/promtool.log" 2>&1 ||
		fail "promtool rejects $1: $(cat "$TEST_TMP/promtool.log")"
	"$PYTHON" - "$1" <<-'PY' || fail "flow_interface_info and the inline names disagree"
		import re, sys
		info, inline = {}, {}
		for line in open(sys.argv[1], encoding="utf-8"):
		    if not line.startswith(("flow_interface_info{", "flow_receive_", "flow_transmit_")):
		        continue
		    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line.split("} ")[0]))
		    if line.startswith("flow_interface_info{"):
		        info[(labels["hostname"], labels["ifindex"])] = labels["name"]
		        continue
		    for side in ("in", "out"):
		        if "iface_%s_name" % side in labels:
		            inline[(labels["hostname"], labels["iface_" + side])] = labels["iface_%s_name" % side]
		assert inline and inline == info, (inline, info)
	PY
}

produce_chunk 0
produce_chunk 1
expect_named 0,1 "$NAMES" "$TEST_TMP/expected01.prom"
wait_metrics "$PORT" "$TEST_TMP/expected01.prom" 30 "$TEST_TMP/expected-counts.json"
log "chunks 0,1: exact totals with the names inline"
check_body "$TEST_TMP/last-scrape.prom"
curl -fsS -m 5 -H 'Accept: application/openmetrics-text; version=1.0.0' -o "$TEST_TMP/om.txt" \
	"http://127.0.0.1:$PORT/metrics" || fail "OpenMetrics scrape"
"$PYTHON" - "$TEST_TMP/om.txt" <<-'PY' || fail "the OpenMetrics parser refuses the body, or it lacks the names"
	import sys
	from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse
	families = {f.name: f for f in parse(open(sys.argv[1], encoding="utf-8").read())}
	samples = families["flow_receive_bytes"].samples + families["flow_transmit_bytes"].samples
	assert any(s.labels.get("iface_in_name") == "et-0/0/1" and
	           s.labels.get("iface_in_description") == "TRANSIT-ARELION, 100G" for s in samples)
	assert any(s.labels.get("iface_in_name") == 'lo"0' for s in samples)
PY

log "rewrite the file and SIGHUP"
cat >"$NAMES.new" <<-EOF
	$HEADER
	router1.example.net,1,et-0/0/1,RENAMED,
	router2.example.net,1,xe-1/0/1,,
	198.51.100.7,10,ae10,"bundle ""10""",
EOF
mv "$NAMES.new" "$NAMES"
kill -HUP "$exporter_PID"
wait_until 10 "the reload" bash -c "curl -fsS -m 2 http://127.0.0.1:$PORT/metrics |
	grep -q '^flow_exporter_reloads_total{result=\"success\"} 1$'"
# The next scrape after the reload: the new names, the same totals (nothing was produced meanwhile).
expect_named 0,1 "$NAMES" "$TEST_TMP/expected01-renamed.prom"
assert_metrics "$PORT" "$TEST_TMP/expected01-renamed.prom"
check_body "$TEST_TMP/last-scrape.prom"
grep -q 'iface_in_name="et-0/0/1"' "$TEST_TMP/last-scrape.prom" || fail "router1.example.net/1 lost its name"
! grep -q 'xe-0/0/10\|TRANSIT-ARELION' "$TEST_TMP/last-scrape.prom" || fail "a name removed from the file is still shown"
log "the scrape after SIGHUP shows the new names on the same totals"

produce_chunk 2
produce_chunk 3
expect_named 0,1,2,3 "$NAMES" "$TEST_TMP/expected.prom"
wait_metrics "$PORT" "$TEST_TMP/expected.prom" 30 "$TEST_TMP/expected-counts.json"
sleep 1
assert_metrics "$PORT" "$TEST_TMP/expected.prom"
check_body "$TEST_TMP/last-scrape.prom"
"$PYTHON" "$METRICS_PY" unique "$TEST_TMP/last-scrape.prom" || fail "a sample appears twice"
log "chunks 0-3: exact totals with the new names ($(grep -c '' "$TEST_TMP/expected.prom") samples)"

stop_pid "$exporter_PID" TERM 10 || fail "exporter exited $STOP_RC after SIGTERM"
assert_clean_log "$TEST_TMP/exporter.log"
stop_mock
