# Shutdown: SIGTERM and SIGINT each make the exporter exit 0 within 5 s: with the broker up, with the
# broker gone after the group was joined, and when the broker was never reachable at all.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter
source "$(dirname "$0")/lib/common.sh"

LIMIT_MS=5000
NAMES="$TEST_TMP/asn.txt"
write_asn_names "$NAMES"

start_mock --topic flows:2

ready() { curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$1/-/ready"; }
# Both partitions assigned: the group's rebalance is over (a signal in the middle of one waits for it, up
# to --shutdown-timeout, which is not the case measured here).
settled() {
	curl -fsS -m 2 "http://127.0.0.1:$1/metrics" | grep -q '^flow_exporter_kafka_assigned_partitions 2$'
}

# run_case NAME SIGNAL BROKER: BROKER is "up" (stays up), "down-after-join" (taken down once the exporter
# has its partitions) or "down-from-start" (down before the exporter starts).
run_case() {
	local name=$1 signal=$2 broker=$3 port pid_var
	port=$(free_port)
	[[ $broker != down-from-start ]] || must_mock down
	start_exporter "$name" "$port" --brokers="$BOOT" --topic=flows --asn=64496 --asn-names="$NAMES" \
		--group="shutdown-$name" --kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
	pid_var="${name}_PID"
	if [[ $broker != down-from-start ]]; then
		wait_until 30 "$name has its partitions (/-/ready)" ready "$port"
		wait_until 30 "$name's group to settle (both partitions assigned)" settled "$port"
	else
		sleep 2 # let it try and fail to connect
	fi
	[[ $broker != down-after-join ]] || {
		must_mock down
		sleep 2 # the connections are gone; the consumer is retrying
	}
	assert_alive "${!pid_var}" "$name"
	stop_pid "${!pid_var}" "$signal" 15 || fail "$name: exit status $STOP_RC after SIG$signal (want 0)"
	log "$name: SIG$signal, broker $broker: exit 0 after ${STOP_MS} ms"
	((STOP_MS <= LIMIT_MS)) || fail "$name: took ${STOP_MS} ms to exit after SIG$signal (limit ${LIMIT_MS} ms)"
	assert_clean_log "$TEST_TMP/$name.log"
	[[ $broker == up ]] || must_mock up
}

run_case term_up TERM up
run_case int_up INT up
run_case term_down TERM down-after-join
run_case int_down INT down-after-join
run_case term_never TERM down-from-start
run_case int_never INT down-from-start
stop_mock
