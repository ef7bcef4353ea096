#!/bin/bash
# A real Pushgateway (1.5, with a persistence file): two exporters consume the same known record set
# (flows.py, the one 2^64-1 record left out) in two consumer groups and PUT it every second:
# - a: --external-label=instance=edge/rtr-1 (a '/' needs the @base64 path encoding) and
#   --pushgateway-delete-on-shutdown;
# - b: the default job and instance (<host>:<http port>), no delete.
# The Pushgateway must hold exactly the groups {job=flow-exporter, instance=edge/rtr-1} and
# {job=flow-exporter, instance=<host>:<port of b>}; each group's flow series, read back from its /metrics
# without the grouping labels, must be exactly the expected series (every label, every value); no push is
# refused. After SIGTERM (exit 0), a's group is gone and b's stays, still exact.
# shellcheck source=lib/common.sh disable=SC2154  # NAME_PID variables are set by start_exporter/start_bg
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/push.sh
source "$FX_LIB_DIR/push.sh"

SET="$TEST_TMP/set"
push_set "$SET" 4242 4 100
push_expect "$SET" "$TEST_TMP/expected"
log "expecting $(wc -l <"$TEST_TMP/expected.prom") flow series"

start_mock --topic flows:4
for p in 0 1 2 3; do
	must_mock produce flows "$p" "$SET/chunk0.p$p.msg"
done

PG_PORT=$(free_port)
start_pushgateway pg "$PG_PORT"
PG="http://127.0.0.1:$PG_PORT"

common_args=(--brokers="$BOOT" --topic=flows --asn="$(cat "$SET/local")" --asn-names="$SET/asn.txt"
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
	--pushgateway-url="$PG" --push-interval=1s)
INSTANCE_A="edge/rtr-1"
PORT_A=$(free_port)
start_exporter a "$PORT_A" "${common_args[@]}" --group=pg-a --external-label="instance=$INSTANCE_A" \
	--pushgateway-delete-on-shutdown
PORT_B=$(free_port)
start_exporter b "$PORT_B" "${common_args[@]}" --group=pg-b
INSTANCE_B="$(hostname):$PORT_B"

group_json() {
	printf '{"instance": "%s", "job": "flow-exporter"}' "$1"
}
groups() {
	"$PYTHON" "$PUSH_PY" pushgateway-groups "$PG"
}
group_matches() {
	"$PYTHON" "$PUSH_PY" pushgateway "$PG" flow-exporter "$1" "$TEST_TMP/expected.prom" >"$TEST_TMP/pg.diff" 2>&1
}
wait_group() {
	local instance=$1 deadline=$((SECONDS + 60))
	until group_matches "$instance"; do
		if ((SECONDS >= deadline)); then
			head -n 40 "$TEST_TMP/pg.diff" >&2
			log "groups: $(groups | tr '\n' ' ')"
			fail "the Pushgateway group instance=$instance is not exact after 60s"
		fi
		sleep 0.5
	done
	log "group job=flow-exporter instance=$instance: every series exact"
}
wait_group "$INSTANCE_A"
wait_group "$INSTANCE_B"

want_groups=$(printf '%s\n%s' "$(group_json "$INSTANCE_A")" "$(group_json "$INSTANCE_B")" | sort)
got_groups=$(groups)
[[ $got_groups == "$want_groups" ]] || fail "Pushgateway groups:
$got_groups
want:
$want_groups"
log "the Pushgateway holds exactly the two groups (instance edge/rtr-1 arrived intact)"

for port in "$PORT_A" "$PORT_B"; do
	scrape "$port" "$TEST_TMP/self-$port.prom" || fail "scrape failed"
	ok=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/self-$port.prom" flow_exporter_push_requests_total status_class=2xx)
	refused=$("$PYTHON" "$METRICS_PY" sum "$TEST_TMP/self-$port.prom" flow_exporter_push_requests_total status_class=4xx)
	log "exporter on $port: $ok pushes accepted, $refused refused"
	[[ $refused == 0 ]] || fail "the Pushgateway refused $refused pushes of the exporter on $port (see pg.log)"
	((ok > 0)) || fail "the exporter on $port counts no accepted push"
done

# ---- shutdown: a deletes its group, b leaves its own -------------------------------------------------
stop_pid "$a_PID" TERM 15 || fail "a exited $STOP_RC after SIGTERM"
got_groups=$(groups)
[[ $got_groups == "$(group_json "$INSTANCE_B")" ]] ||
	fail "after a's SIGTERM (--pushgateway-delete-on-shutdown) the groups are:
$got_groups
want only b's"
log "a's group is gone after its SIGTERM"
stop_pid "$b_PID" TERM 15 || fail "b exited $STOP_RC after SIGTERM"
got_groups=$(groups)
[[ $got_groups == "$(group_json "$INSTANCE_B")" ]] || fail "after b's SIGTERM (no delete flag) the groups are: $got_groups"
group_matches "$INSTANCE_B" || {
	cat "$TEST_TMP/pg.diff" >&2
	fail "b's group is no longer exact after its SIGTERM"
}
log "b's group stays, exact, after its SIGTERM"
assert_clean_log "$TEST_TMP/a.log"
assert_clean_log "$TEST_TMP/b.log"
