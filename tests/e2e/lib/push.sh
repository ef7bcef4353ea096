# Helpers for the push tests (tests/e2e/push_*.sh): the real receivers (Prometheus 2.42 with its
# remote-write receiver, VictoriaMetrics, the Pushgateway, the project's recording rw_receiver), each on a
# free 127.0.0.1 port with its data in $TEST_TMP, started as a process of the test (stopped by PID by
# common.sh's trap), and record sets whose totals a float64 holds exactly. Sourced after common.sh.
# shellcheck shell=bash disable=SC2034  # variables (PROM_URL, ...) are for the tests

PUSH_PY="$FX_LIB_DIR/push_check.py"

# push_set DIR SEED PARTITIONS MESSAGES [flows.py gen options...]: generates a record set (flows.py gen,
# local ASNs in DIR/local) and removes the one record per chunk that no float64 holds (push_check.py
# strip-huge). Use push_expect for its expectation.
push_set() {
	local dir=$1 seed=$2 partitions=$3 messages=$4
	shift 4
	"$PYTHON" "$FLOWS_PY" gen --out "$dir" --seed "$seed" --partitions "$partitions" --messages "$messages" "$@"
	"$PYTHON" "$PUSH_PY" strip-huge "$dir" || fail "strip-huge $dir"
	"$PYTHON" -c 'import json, sys; print(",".join(map(str, json.load(open(sys.argv[1]))["local"])))' \
		"$dir/manifest.json" >"$dir/local"
}

# push_expect DIR OUT_PREFIX [flows.py expect options...]: OUT_PREFIX.prom (every flow series, exact),
# OUT_PREFIX.hosts.json ({family: {hostname: total}}) and OUT_PREFIX.sum.json ({family: {"": total}}) of the
# messages selected.
push_expect() {
	local dir=$1 out=$2
	shift 2
	"$PYTHON" "$FLOWS_PY" expect --manifest "$dir/manifest.json" --out "$out.raw.prom" "$@"
	"$PYTHON" "$PUSH_PY" expect "$out.raw.prom" "$out.prom" "$out.hosts.json" || fail "push_check.py expect $out"
	"$PYTHON" -c 'import json, sys
hosts = json.load(open(sys.argv[1], encoding="utf-8"))
json.dump({family: {"": sum(by_host.values())} for family, by_host in hosts.items()}, open(sys.argv[2], "w"))' \
		"$out.hosts.json" "$out.sum.json"
}

# push_expect_chunks SET CHUNKS: for each c < CHUNKS, the expectation after chunks 0..c (push_expect) in
# $TEST_TMP/expected$c.*, with the record counts in $TEST_TMP/expected$c-counts.json (for wait_metrics).
push_expect_chunks() {
	local set=$1 chunks=$2 c
	for ((c = 0; c < chunks; c++)); do
		push_expect "$set" "$TEST_TMP/expected$c" --chunks "$(seq -s, 0 "$c")" \
			--counts-out "$TEST_TMP/expected$c-counts.json"
	done
}

# start_bg NAME COMMAND...: runs COMMAND with its output in $TEST_TMP/NAME.log, remembered for the trap;
# sets NAME_PID.
start_bg() {
	local name=$1
	shift
	(
		if [[ -n $MOCK_IN ]]; then exec {MOCK_IN}>&- {MOCK_OUT}<&-; fi
		exec "$@"
	) >>"$TEST_TMP/$name.log" 2>&1 &
	local pid=$!
	STARTED_PIDS+=("$pid")
	printf -v "${name}_PID" '%s' "$pid"
}

# wait_ready NAME PID URL [SECONDS]: until URL answers 2xx (30 s); fails if PID exits first.
wait_ready() {
	local name=$1 pid=$2 url=$3 timeout=${4:-30}
	local deadline=$((SECONDS + timeout))
	until curl -fsS -m 2 -o /dev/null "$url" 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || fail "$name exited during startup (see $name.log)"
		((SECONDS < deadline)) || fail "$name: $url did not answer within ${timeout}s"
		sleep 0.2
	done
}

# start_prometheus NAME PORT TSDB: Prometheus 2.42 with the remote-write receiver, no scrape job, on
# 127.0.0.1:PORT with its TSDB in TSDB (kept across restarts); sets NAME_PID, waits for /-/ready.
start_prometheus() {
	local name=$1 port=$2 tsdb=$3
	[[ -x /usr/bin/prometheus ]] || fail "/usr/bin/prometheus missing (deploy/install-deps.sh)"
	printf 'global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n' >"$TEST_TMP/$name.yml"
	start_bg "$name" /usr/bin/prometheus --config.file="$TEST_TMP/$name.yml" --storage.tsdb.path="$tsdb" \
		--web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver
	local pid_var="${name}_PID"
	wait_ready "$name" "${!pid_var}" "http://127.0.0.1:$port/-/ready"
	log "$name (Prometheus) ready on 127.0.0.1:$port (pid ${!pid_var})"
}

# start_victoria NAME PORT DATA: VictoriaMetrics on 127.0.0.1:PORT (remote write at /api/v1/write); the
# latency offset at 1 s (else the last 30 s are hidden) and no query cache.
start_victoria() {
	local name=$1 port=$2 data=$3
	[[ -x /usr/bin/victoria-metrics ]] || fail "/usr/bin/victoria-metrics missing (deploy/install-deps.sh)"
	start_bg "$name" /usr/bin/victoria-metrics -httpListenAddr="127.0.0.1:$port" -storageDataPath="$data" \
		-search.latencyOffset=1s -search.disableCache
	local pid_var="${name}_PID"
	wait_ready "$name" "${!pid_var}" "http://127.0.0.1:$port/health"
	log "$name (VictoriaMetrics) ready on 127.0.0.1:$port (pid ${!pid_var})"
}

# start_pushgateway NAME PORT: the Pushgateway on 127.0.0.1:PORT, persisting to $TEST_TMP/NAME.persist.
start_pushgateway() {
	local name=$1 port=$2
	[[ -x /usr/bin/prometheus-pushgateway ]] || fail "/usr/bin/prometheus-pushgateway missing"
	start_bg "$name" /usr/bin/prometheus-pushgateway --web.listen-address="127.0.0.1:$port" \
		--persistence.file="$TEST_TMP/$name.persist"
	local pid_var="${name}_PID"
	wait_ready "$name" "${!pid_var}" "http://127.0.0.1:$port/-/ready"
	log "$name (Pushgateway) ready on 127.0.0.1:$port (pid ${!pid_var})"
}

# start_receiver NAME [rw_receiver options]: the recording receiver on a free port, its JSON log in
# $TEST_TMP/NAME.jsonl; sets NAME_PID and NAME_PORT.
start_receiver() {
	local name=$1 line
	shift
	start_bg "$name" "$FX_TOOLS/rw_receiver" --port 0 --log "$TEST_TMP/$name.jsonl" "$@"
	# start_bg sends stdout to NAME.log: LISTEN <port> appears there.
	local pid_var="${name}_PID" deadline=$((SECONDS + 15))
	until line=$(grep -m1 '^LISTEN ' "$TEST_TMP/$name.log" 2>/dev/null); do
		kill -0 "${!pid_var}" 2>/dev/null || fail "$name (rw_receiver) exited during startup"
		((SECONDS < deadline)) || fail "$name (rw_receiver) printed no LISTEN line"
		sleep 0.1
	done
	printf -v "${name}_PORT" '%s' "${line#LISTEN }"
	log "$name (rw_receiver) listening on 127.0.0.1:${line#LISTEN }"
}

# totals_match URL HOSTS [TEMPLATE]: one push_check.py totals; the differences in $TEST_TMP/totals.diff.
totals_match() {
	local args=("$PYTHON" "$PUSH_PY" totals "$1" "$2")
	[[ -z ${3:-} ]] || args+=(--template "$3")
	# VictoriaMetrics (see push_check.py totals --relative-error): within one part in 10^12.
	[[ $1 != "${VM:-none}" ]] || args+=(--relative-error 1e-12)
	"${args[@]}" >"$TEST_TMP/totals.diff" 2>&1
}

# wait_totals WHAT URL HOSTS SECONDS [TEMPLATE]: waits until every family's query (default
# "sum by (hostname) (<family>)") at URL equals HOSTS exactly; prints the last differences and fails after
# SECONDS.
wait_totals() {
	local what=$1 url=$2 hosts=$3 timeout=$4 template=${5:-}
	local deadline=$((SECONDS + timeout))
	until totals_match "$url" "$hosts" "$template"; do
		if ((SECONDS >= deadline)); then
			log "last differences ($what):"
			head -n 40 "$TEST_TMP/totals.diff" >&2
			fail "$what: the totals are not exact after ${timeout}s"
		fi
		sleep 0.5
	done
}

# exporter_value PORT NAME [LABEL=VALUE...]: the sum of the samples of NAME on the exporter's /metrics.
exporter_value() {
	local port=$1
	shift
	scrape "$port" "$TEST_TMP/value.prom" || return 1
	"$PYTHON" "$METRICS_PY" sum "$TEST_TMP/value.prom" "$@"
}

# now_s: Unix time with milliseconds.
now_s() {
	date +%s.%3N
}

RW2_PY="$FX_LIB_DIR/rw2_receiver.py"

# start_rw2_receiver NAME: the remote-write 2.0 decoding receiver (rw2_receiver.py, on Google's protobuf
# runtime, its modules generated by protoc from proto/ in a temporary directory) on a free port; sets
# NAME_PORT (its paths /ok, /415, /nowritten, /partial: see rw2_receiver.py).
start_rw2_receiver() {
	local name=$1
	command -v protoc >/dev/null || fail "protoc missing (protobuf-compiler; deploy/install-deps.sh)"
	start_bg "$name" "$PYTHON" "$RW2_PY" serve "$FX_SOURCE/proto" "$TEST_TMP/$name.port" "$TEST_TMP/$name.jsonl"
	local pid_var="${name}_PID" deadline=$((SECONDS + 20))
	until [[ -s $TEST_TMP/$name.port ]]; do
		kill -0 "${!pid_var}" 2>/dev/null || fail "$name (rw2_receiver.py) exited during startup"
		((SECONDS < deadline)) || fail "$name (rw2_receiver.py) wrote no port"
		sleep 0.1
	done
	printf -v "${name}_PORT" '%s' "$(cat "$TEST_TMP/$name.port")"
	log "$name (rw2_receiver.py) listening on 127.0.0.1:$(cat "$TEST_TMP/$name.port")"
}
