#!/bin/bash
# The Debian package: CPack makes flow-exporter_<version>_<arch>.deb from the build tree, then
#   1. it installs with `dpkg -i` (plus `apt-get install -f` for its dependencies, from the mirror) into a
#      clean Debian 12 minbase root (chroot); the installed binary runs --help, and runs the embedded demo
#      as the service user with the settings of /etc/default/flow-exporter, and stops with 0 on SIGTERM;
#      `dpkg --purge` removes it again;
#   2. the same package's service runs under a real systemd (PID 1 of a podman container with the minbase
#      tree plus systemd): configured only through /etc/default/flow-exporter, the hardened unit consumes a
#      mock cluster on the host to the exact totals, downloads the AS names over HTTP into its state
#      directory, pushes by remote write to the project's recording receiver, and `systemctl stop` ends it
#      with status 0; systemd-analyze verify passes there too.
# The debootstrap tree, apt's downloads and the image layers are kept in $FX_DEPLOY_CACHE (lib/deploy.sh).
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/deploy.sh
source "$(dirname "$0")/lib/deploy.sh"

: "${FX_SOURCE:?FX_SOURCE must name the source tree}"
require_root_tools debootstrap cpack dpkg-deb chroot unshare podman buildah runc curl flock
CONTAINER=fx-e2e-deploy-deb-$$
DEPLOY_CONTAINERS+=("$CONTAINER") # removed when the test ends, whatever happens

# --- The package.
DEB=$(build_deb "$TEST_TMP/package")
log "package: $(basename "$DEB")"
dpkg-deb -f "$DEB" Depends >"$TEST_TMP/depends.txt"
for package in librdkafka1 libjansson4 libcurl4 libsnappy1v5 libprotobuf-c1 libmicrohttpd12 zlib1g; do
	grep -qE "(^|, )$package( |,|$)" "$TEST_TMP/depends.txt" ||
		fail "Depends lacks $package: $(cat "$TEST_TMP/depends.txt")"
done
dpkg-deb -c "$DEB" | awk '{print $6}' >"$TEST_TMP/contents.txt"
for path in ./usr/bin/flow-exporter ./lib/systemd/system/flow-exporter.service ./etc/default/flow-exporter \
	./var/lib/flow-exporter/ ./usr/lib/sysusers.d/flow-exporter.conf ./usr/share/doc/flow-exporter/README.md \
	./usr/share/doc/flow-exporter/examples/grafana/flow-exporter.json; do
	grep -qxF "$path" "$TEST_TMP/contents.txt" || fail "the package lacks $path"
done
dpkg-deb -I "$DEB" conffiles | grep -qx /etc/default/flow-exporter || fail "/etc/default/flow-exporter is no conffile"
grep -q '^ExecStart=/usr/bin/flow-exporter ' < <(dpkg-deb --fsys-tarfile "$DEB" |
	tar -xOf - ./lib/systemd/system/flow-exporter.service) || fail "the packaged unit does not run /usr/bin/flow-exporter"
log "package: dependencies, files, conffile and unit as expected"

# --- 1. dpkg -i into a clean root.
ROOT="$TEST_TMP/root"
new_root "$ROOT"
cp "$DEB" "$ROOT/tmp/flow-exporter.deb"
if in_root "$ROOT" dpkg -i /tmp/flow-exporter.deb >"$TEST_TMP/dpkg.log" 2>&1; then
	log "dpkg -i: installed (every dependency was already there)"
else
	grep -q 'dependency problems' "$TEST_TMP/dpkg.log" || fail "dpkg -i failed for another reason (see dpkg.log)"
	log "dpkg -i: dependencies missing, as expected in a minbase root; apt-get install -f"
	in_root "$ROOT" apt-get update >"$TEST_TMP/apt.log" 2>&1 || fail "apt-get update in the root (see apt.log)"
	in_root "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -f -y --no-install-recommends \
		>>"$TEST_TMP/apt.log" 2>&1 || fail "apt-get install -f in the root (see apt.log)"
fi
in_root "$ROOT" dpkg-query -W -f '${Status}\n' flow-exporter | grep -qx 'install ok installed' ||
	fail "flow-exporter is not installed: $(in_root "$ROOT" dpkg-query -W -f '${Status}' flow-exporter 2>&1)"
in_root "$ROOT" /usr/bin/flow-exporter --help >"$TEST_TMP/help.txt" 2>&1 || fail "the installed binary: --help failed"
grep -q -- '--brokers' "$TEST_TMP/help.txt" || fail "--help does not list --brokers"
in_root "$ROOT" getent passwd flow-exporter >"$TEST_TMP/user.txt" || fail "postinst made no flow-exporter user"
IFS=: read -r _ _ SERVICE_UID SERVICE_GID _ <"$TEST_TMP/user.txt"
((SERVICE_UID != 0)) || fail "the service user is root"
[[ $(stat -c %u:%a "$ROOT/var/lib/flow-exporter") == "$SERVICE_UID:750" ]] ||
	fail "/var/lib/flow-exporter: $(stat -c %U:%a "$ROOT/var/lib/flow-exporter") (want flow-exporter, 0750)"
log "installed: --help runs, user flow-exporter ($SERVICE_UID), /var/lib/flow-exporter is its own"

# The demo, as the unit runs it: the service user, the settings file, ExecStart's $ARGS.
PORT=$(free_port)
printf 'FLOW_EXPORTER_ADDR=127.0.0.1:%s\n' "$PORT" >>"$ROOT/etc/default/flow-exporter"
(
	trap - INT QUIT
	exec unshare --mount --propagation private -- chroot --userspec="$SERVICE_UID:$SERVICE_GID" "$ROOT" \
		/bin/sh -c 'set -a; . /etc/default/flow-exporter; set +a; cd /var/lib/flow-exporter; exec /usr/bin/flow-exporter $ARGS'
) >"$TEST_TMP/chroot-demo.log" 2>&1 &
DEMO_PID=$!
STARTED_PIDS+=("$DEMO_PID")
demo_counts() {
	scrape "$PORT" "$TEST_TMP/chroot-demo.prom" 2>/dev/null && grep -q '^flow_receive_bytes_total{' "$TEST_TMP/chroot-demo.prom"
}
deadline=$((SECONDS + 30))
until demo_counts; do
	kill -0 "$DEMO_PID" 2>/dev/null || fail "the installed demo exited (see chroot-demo.log)"
	((SECONDS < deadline)) || fail "the installed demo served no flow counters within 30 s"
	sleep 0.3
done
log "installed demo: $(grep -c '^flow_receive_bytes_total{' "$TEST_TMP/chroot-demo.prom") receive series"
stop_pid "$DEMO_PID" TERM 10 || fail "the installed demo exited $STOP_RC on SIGTERM"
assert_clean_log "$TEST_TMP/chroot-demo.log"
in_root "$ROOT" dpkg --purge flow-exporter >"$TEST_TMP/purge.log" 2>&1 || fail "dpkg --purge failed (see purge.log)"
[[ ! -e $ROOT/usr/bin/flow-exporter && ! -e $ROOT/etc/default/flow-exporter && ! -e $ROOT/var/lib/flow-exporter ]] ||
	fail "dpkg --purge left files behind"
log "dpkg --purge removed the binary, the settings and the cache directory"
rm -rf "$ROOT"

# --- 2. The service under systemd.
deploy_base_image
mkdir -p "$TEST_TMP/image"
cp "$DEB" "$TEST_TMP/image/flow-exporter.deb"
cat >"$TEST_TMP/image/Containerfile" <<'EOF'
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends systemd systemd-sysv \
 && rm -rf /var/lib/apt/lists/*
COPY flow-exporter.deb /tmp/flow-exporter.deb
RUN apt-get update && (dpkg -i /tmp/flow-exporter.deb || apt-get install -f -y --no-install-recommends) \
 && dpkg-query -W -f '${Status}\n' flow-exporter | grep -qx 'install ok installed' \
 && rm -rf /var/lib/apt/lists/* /tmp/flow-exporter.deb
EOF
fx_buildah bud --isolation chroot --network host --layers --pull=never -t localhost/flow-exporter-systemd:e2e \
	"$TEST_TMP/image" >"$TEST_TMP/systemd-image.log" 2>&1 || fail "the systemd image does not build (see systemd-image.log)"
fx_podman run -d --name "$CONTAINER" --runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
	--network host --systemd=always localhost/flow-exporter-systemd:e2e /lib/systemd/systemd \
	>"$TEST_TMP/systemd-run.log" 2>&1 || fail "the systemd container does not start (see systemd-run.log)"
in_systemd() { fx_podman exec "$CONTAINER" "$@"; }
booted() { [[ $(in_systemd systemctl is-system-running 2>/dev/null) =~ ^(running|degraded)$ ]]; }
wait_until 60 "systemd to boot in the container" booted
log "systemd runs as PID 1 in $CONTAINER"
in_systemd systemd-analyze verify /lib/systemd/system/flow-exporter.service >"$TEST_TMP/verify.log" 2>&1 ||
	fail "systemd-analyze verify of the installed unit: $(cat "$TEST_TMP/verify.log")"
log "installed unit: systemd-analyze verify passes; $(in_systemd systemd-analyze security flow-exporter.service 2>&1 | tail -n1)"

LOCAL_ASNS=64496,4200000001,65551
SET="$TEST_TMP/set"
"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 12 --partitions 4 --messages 100 --local "$LOCAL_ASNS"
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --out "$TEST_TMP/expected.prom" \
	--counts-out "$TEST_TMP/expected-counts.json"
start_mock --topic flows:4
for p in 0 1 2 3; do
	must_mock produce flows "$p" "$SET/chunk0.p$p.msg"
done
HTTP_PORT=$(free_port)
"$PYTHON" -m http.server --bind 127.0.0.1 --directory "$SET" "$HTTP_PORT" >"$TEST_TMP/http.log" 2>&1 &
STARTED_PIDS+=("$!")
wait_until 10 "the AS-name server" curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$HTTP_PORT/asn.txt"
"$FX_TOOLS/rw_receiver" --port 0 --log "$TEST_TMP/rw.jsonl" >"$TEST_TMP/rw.out" 2>"$TEST_TMP/rw.log" &
STARTED_PIDS+=("$!")
wait_until 10 "rw_receiver to listen" grep -q '^LISTEN ' "$TEST_TMP/rw.out"
RW_PORT=$(awk '/^LISTEN / {print $2; exit}' "$TEST_TMP/rw.out")

PORT=$(free_port)
fx_podman exec -i "$CONTAINER" sh -c "cat >>/etc/default/flow-exporter" <<EOF
FLOW_EXPORTER_BROKERS=$BOOT
FLOW_EXPORTER_TOPIC=flows
FLOW_EXPORTER_GROUP=deploy-deb
FLOW_EXPORTER_ASN=$LOCAL_ASNS
FLOW_EXPORTER_ADDR=127.0.0.1:$PORT
FLOW_EXPORTER_ASN_NAMES=http://127.0.0.1:$HTTP_PORT/asn.txt
FLOW_EXPORTER_PUSH_INTERVAL=1s
ARGS=--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest --remote-write-url=http://127.0.0.1:$RW_PORT/api/v1/write
EOF
in_systemd systemctl enable --now flow-exporter.service >"$TEST_TMP/enable.log" 2>&1 ||
	fail "systemctl enable --now failed: $(cat "$TEST_TMP/enable.log")"
journal() { in_systemd journalctl -u flow-exporter.service --no-pager >"$TEST_TMP/journal.log" 2>&1 || true; }
# shellcheck disable=SC2034  # read by deploy_exit (lib/deploy.sh)
DEPLOY_ON_EXIT=journal # the service's journal is in the failure report
wait_until 20 "the service's /-/healthy" curl -fsS -m 2 "http://127.0.0.1:$PORT/-/healthy"
wait_metrics "$PORT" "$TEST_TMP/expected.prom" 60 "$TEST_TMP/expected-counts.json"
log "the service's flow series match the expected totals exactly (AS names from the HTTP download)"

main_pid=$(in_systemd systemctl show -P MainPID flow-exporter.service)
in_systemd grep -E '^(Uid|NoNewPrivs|Seccomp|CapBnd):' "/proc/$main_pid/status" >"$TEST_TMP/sandbox.txt"
grep -qE '^Uid:\s+0\s' "$TEST_TMP/sandbox.txt" && fail "the service runs as root"
grep -qE '^NoNewPrivs:\s+1$' "$TEST_TMP/sandbox.txt" || fail "NoNewPrivileges is not in effect: $(cat "$TEST_TMP/sandbox.txt")"
grep -qE '^Seccomp:\s+2$' "$TEST_TMP/sandbox.txt" || fail "the system call filter is not in effect"
grep -qE '^CapBnd:\s+0+$' "$TEST_TMP/sandbox.txt" || fail "the capability bounding set is not empty"
cache_written() { in_systemd test -s /var/lib/flow-exporter/asn-names.txt; }
wait_until 10 "the AS-name cache in the state directory" cache_written
pushed() { grep -q '"status":2[0-9][0-9]' "$TEST_TMP/rw.jsonl" 2>/dev/null; }
wait_until 20 "a remote-write push acknowledged by the receiver" pushed
if grep -q '"violations":\[[^]]' "$TEST_TMP/rw.jsonl"; then
	fail "the receiver found remote-write violations: $(grep -m1 '"violations":\[[^]]' "$TEST_TMP/rw.jsonl" | cut -c1-300)"
fi
log "sandboxed (pid $main_pid: $(tr -s '\t\n' ' ' <"$TEST_TMP/sandbox.txt")); AS-name cache written; remote write delivered"

in_systemd systemctl stop flow-exporter.service
result=$(in_systemd systemctl show -P Result flow-exporter.service)
status=$(in_systemd systemctl show -P ExecMainStatus flow-exporter.service)
[[ $result == success && $status == 0 ]] || fail "systemctl stop: Result=$result ExecMainStatus=$status"
journal
assert_clean_log "$TEST_TMP/journal.log"
log "systemctl stop: Result=success, exit status 0"
stop_mock
