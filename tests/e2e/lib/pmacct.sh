# Helpers for the tests that run pmacct itself (nfacctd, sfacctd, pmacctd from the Debian package) against
# the mock cluster: render deploy/pmacct's recipes for loopback, send datagrams, stop a collector the way
# it needs (tests/data/pmacct/README.md: SIGTERM is acted on only after one more datagram), and read a
# topic back. Sourced after common.sh.
# shellcheck shell=bash

: "${FX_SOURCE:?FX_SOURCE must name the source tree}"
PMACCT_RECIPES="$FX_SOURCE/deploy/pmacct"
PMACCT_EXPECT_PY="$FX_LIB_DIR/pmacct_expect.py"

# render_recipe RECIPE OUT UDP_PORT: deploy/pmacct/RECIPE with the Kafka broker set to the mock ($BOOT),
# the collector bound to 127.0.0.1:UDP_PORT, the pmacctd probe sending there and reading
# tests/data/pmacct/flows.pcap instead of capturing an interface, and /etc/pmacct/ (the map files)
# replaced by $TEST_TMP/. Nothing else changes: the test runs the recipe as shipped.
render_recipe() {
	local recipe=$1 out=$2 udp_port=$3
	local host=${BOOT%%,*}
	host=${host%:*}
	local kafka_port=${BOOT%%,*}
	kafka_port=${kafka_port##*:}
	sed -e "s/^\(kafka_broker_host[^:]*\): .*/\1: $host/" \
		-e "s/^\(kafka_broker_port[^:]*\): .*/\1: $kafka_port/" \
		-e "s/^\([ns]facctd_ip\): .*/\1: 127.0.0.1/" \
		-e "s/^\([ns]facctd_port\): .*/\1: $udp_port/" \
		-e "s/^\(nfprobe_receiver[^:]*\): .*/\1: 127.0.0.1:$udp_port/" \
		-e "s#^pcap_interface: .*#pcap_savefile: $FX_TEST_DATA/pmacct/flows.pcap#" \
		-e "s#/etc/pmacct/#$TEST_TMP/#g" \
		"$PMACCT_RECIPES/$recipe" >"$out"
	# The rendered file must differ from the recipe only where asked: the keys the test relies on.
	grep -q "^kafka_broker_port.*: $kafka_port\$\|^nfprobe_receiver.*:$udp_port\$" "$out" ||
		fail "render_recipe $recipe: no Kafka port or receiver replaced (did the recipe's keys change?)"
}

# free_udp_port: a UDP port of 127.0.0.1 the kernel just handed out.
free_udp_port() {
	"$PYTHON" -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# udp_bound PORT: true when something listens on UDP 127.0.0.1:PORT.
udp_bound() {
	ss -Hunl "sport = :$1" | grep -q .
}

# send_datagrams PORT SOURCE_IP FILE...: sends each FILE as one UDP datagram from SOURCE_IP (a loopback
# address: 127.0.0.0/8 is all local on Linux) to 127.0.0.1:PORT.
send_datagrams() {
	local port=$1 source=$2
	shift 2
	"$PYTHON" - "$port" "$source" "$@" <<'EOF'
import socket, sys
port, source, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((source, 0))
for name in files:
    with open(name, "rb") as f:
        s.sendto(f.read(), ("127.0.0.1", port))
EOF
}

# sflow_empty_datagram FILE: an sFlow v5 datagram with no samples (agent 127.0.0.9): wakes sfacctd up
# without adding to any counter.
sflow_empty_datagram() {
	"$PYTHON" -c 'import struct, sys; open(sys.argv[1], "wb").write(struct.pack("!7I", 5, 1, 0x7f000009, 0, 1, 1000, 0))' "$1"
}

# running PID: true while PID exists and is no zombie.
running() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

# start_collector NAME CONFIG UDP_PORT: runs /usr/sbin/NAME -f CONFIG (NAME.log), waits until it listens on
# UDP_PORT (15 s); sets NAME_PID and NAME_PLUGINS (its plugin processes, which flush at exit). Every PID
# joins STARTED_PIDS so that the trap stops them if the test fails.
start_collector() {
	local name=$1 config=$2 port=$3 pid
	"/usr/sbin/$name" -f "$config" >"$TEST_TMP/$name.log" 2>&1 &
	pid=$!
	STARTED_PIDS+=("$pid")
	printf -v "${name}_PID" '%s' "$pid"
	local deadline=$((SECONDS + 15))
	until udp_bound "$port"; do
		running "$pid" || fail "$name exited during startup (see $name.log)"
		((SECONDS < deadline)) || fail "$name does not listen on UDP $port within 15 s"
		sleep 0.1
	done
	# Its plugins are forked at startup: wait until every one named in the config runs.
	local wanted plugins=()
	wanted=$(grep -c '' < <(grep '^plugins:' "$config" | tr ',' '\n'))
	deadline=$((SECONDS + 10))
	while :; do
		mapfile -t plugins < <(pgrep -P "$pid" || true)
		((${#plugins[@]} >= wanted)) && break
		((SECONDS < deadline)) || fail "$name: ${#plugins[@]} plugin processes, expected $wanted"
		sleep 0.1
	done
	STARTED_PIDS+=("${plugins[@]}")
	printf -v "${name}_PLUGINS" '%s' "${plugins[*]}"
	log "$name listens on 127.0.0.1:$port (pid $pid, plugins ${plugins[*]})"
}

# stop_collector NAME UDP_PORT DATAGRAM [SOURCE_IP]: SIGTERM, then DATAGRAM every 0.5 s until the
# collector exits (it acts on SIGTERM only once a datagram arrives), then waits until its plugins have
# flushed their last purge and exited. 20 s in all, or the test fails.
stop_collector() {
	local name=$1 port=$2 datagram=$3 source=${4:-127.0.0.9}
	local pid_var="${name}_PID" plugins_var="${name}_PLUGINS"
	local pid=${!pid_var} plugin rc=0
	local deadline=$((SECONDS + 20))
	kill -TERM "$pid"
	while running "$pid"; do
		((SECONDS < deadline)) || fail "$name (pid $pid) did not stop within 20 s of SIGTERM"
		send_datagrams "$port" "$source" "$datagram"
		sleep 0.5
	done
	wait "$pid" || rc=$?
	forget_pid "$pid"
	for plugin in ${!plugins_var}; do
		while running "$plugin"; do
			((SECONDS < deadline)) || fail "$name plugin (pid $plugin) still runs 20 s after SIGTERM"
			sleep 0.1
		done
		forget_pid "$plugin"
	done
	((rc == 0)) || fail "$name exited with status $rc (see $name.log)"
	grep -q 'OK, Exiting' "$TEST_TMP/$name.log" || fail "$name: no clean exit in $name.log"
	log "$name stopped"
}

# read_topic TOPIC FILE: every message of TOPIC, each followed by the byte 0x1e (kcat, 30 s bound).
read_topic() {
	timeout 30 kcat -C -q -b "$BOOT" -t "$1" -o beginning -e -f '%s\x1e' >"$2" ||
		fail "kcat could not read $1 back"
}

# topic_messages TOPIC PARTITIONS: sets TOPIC_MESSAGES to how many messages TOPIC holds (the sum of its
# high watermarks: the topics of these tests start empty).
topic_messages() {
	must_mock watermarks "$1" "$2"
	local total=0 p word
	for ((p = 0; p < $2; p++)); do
		word=$(reply_field "p$p")
		total=$((total + word))
	done
	TOPIC_MESSAGES=$total
}
