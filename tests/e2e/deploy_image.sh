#!/bin/bash
# The container image builds and runs here, with no registry: the base image is made from the Debian mirror
# (debootstrap --variant=minbase bookworm, podman import as debian:bookworm-slim), deploy/Dockerfile is built
# with buildah (chroot isolation, host network for apt), and the image runs under podman with runc:
#   - it holds the binary and the runtime libraries only (no compiler), runs as a non-root user, exposes
#     9590 and has the binary as its entrypoint;
#   - with no flags it serves /metrics from the embedded demo; the daemon is PID 1 and `podman stop`
#     (SIGTERM) ends it with status 0 within seconds;
#   - with the Go program's flags (--brokers --topic --asn) it counts the exact totals of a known set of
#     records produced into a mock cluster on the host, and stops cleanly again.
# The debootstrap tree, the base image and buildah's layer cache are kept in $FX_DEPLOY_CACHE (see
# lib/deploy.sh): about 1.5 minutes from nothing, about 12 s when the cache is warm.
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/deploy.sh
source "$(dirname "$0")/lib/deploy.sh"

: "${FX_SOURCE:?FX_SOURCE must name the source tree}"
require_root_tools debootstrap podman buildah runc curl flock
IMAGE=localhost/flow-exporter:e2e
CONTAINER=fx-e2e-deploy-image-$$
RUN_FLAGS=(--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 --network host)

DEPLOY_CONTAINERS+=("$CONTAINER") # removed when the test ends, whatever happens

deploy_base_image

started=$SECONDS
log "buildah bud -f deploy/Dockerfile (layer cache in $DEPLOY_STORAGE)"
fx_buildah bud --isolation chroot --network host --layers --pull=never \
	-f "$FX_SOURCE/deploy/Dockerfile" -t "$IMAGE" "$FX_SOURCE" >"$TEST_TMP/build.log" 2>&1 ||
	fail "the image does not build (see build.log)"
log "image built in $((SECONDS - started)) s"

# --- What the image is.
config=$(fx_podman image inspect "$IMAGE" --format '{{json .Config}}')
printf '%s\n' "$config" >"$TEST_TMP/image-config.json"
"$PYTHON" - "$TEST_TMP/image-config.json" <<'EOF' || fail "image configuration (see above)"
import json, sys
config = json.load(open(sys.argv[1]))
problems = []
if config.get("Entrypoint") != ["/usr/bin/flow-exporter"]:
    problems.append(f"Entrypoint is {config.get('Entrypoint')}, want the binary")
if config.get("Cmd"):
    problems.append(f"Cmd {config['Cmd']} would be appended to the user's flags")
user = (config.get("User") or "").split(":")[0]
if user in ("", "0", "root"):
    problems.append(f"runs as root (User={config.get('User')!r})")
if "9590/tcp" not in (config.get("ExposedPorts") or {}):
    problems.append(f"9590/tcp not exposed: {config.get('ExposedPorts')}")
for problem in problems:
    print("image:", problem, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
fx_podman run --rm "${RUN_FLAGS[@]}" --entrypoint /bin/sh "$IMAGE" -c \
	'for tool in gcc cc cmake make; do command -v $tool; done; ls -d /usr/include/librdkafka 2>/dev/null; echo checked' \
	>"$TEST_TMP/toolchain.log" 2>&1 || fail "the image's shell did not run (see toolchain.log)"
[[ $(cat "$TEST_TMP/toolchain.log") == checked ]] ||
	fail "the runtime image holds build tools: $(tr '\n' ' ' <"$TEST_TMP/toolchain.log")"
log "image: entrypoint, non-root user, port 9590, no toolchain"

# run_container NAME ARGS...: podman run in the background (attached, so the log is the daemon's output),
# tracked by common.sh's cleanup; sets CONTAINER_PID.
run_container() {
	local name=$1
	shift
	(
		if [[ -n $MOCK_IN ]]; then exec {MOCK_IN}>&- {MOCK_OUT}<&-; fi
		exec podman --root "$DEPLOY_STORAGE/storage" --runroot "$DEPLOY_STORAGE/run" --storage-driver "$DEPLOY_STORAGE_DRIVER" \
			run --rm --name "$CONTAINER" "${RUN_FLAGS[@]}" "$@"
	) >"$TEST_TMP/$name.log" 2>&1 &
	CONTAINER_PID=$!
	STARTED_PIDS+=("$CONTAINER_PID")
}

# stop_container: `podman stop` (SIGTERM to PID 1, SIGKILL after 20 s); the daemon must exit 0 within 10 s.
stop_container() {
	local start=$SECONDS
	fx_podman stop -t 20 "$CONTAINER" >/dev/null 2>&1 || fail "podman stop failed"
	local took=$((SECONDS - start))
	wait_pid "$CONTAINER_PID" 15 || fail "the container exited $STOP_RC after SIGTERM (want 0)"
	((took <= 10)) || fail "the container took ${took}s to stop on SIGTERM"
	log "stopped by SIGTERM in ${took}s, exit status 0"
}

# --- 1. No flags but the listening address: the embedded demo.
PORT=$(free_port)
run_container demo -e "FLOW_EXPORTER_ADDR=127.0.0.1:$PORT" "$IMAGE"
demo_counts() {
	scrape "$PORT" "$TEST_TMP/demo.prom" 2>/dev/null && grep -q '^flow_receive_bytes_total{' "$TEST_TMP/demo.prom" &&
		grep -q '^flow_transmit_bytes_total{' "$TEST_TMP/demo.prom"
}
deadline=$((SECONDS + 60))
until demo_counts; do
	kill -0 "$CONTAINER_PID" 2>/dev/null || fail "the container exited (see demo.log)"
	((SECONDS < deadline)) || fail "the container's demo served no flow counters within 60 s"
	sleep 0.5
done
grep -q 'flow-exporter demo' "$TEST_TMP/demo.log" || fail "the container did not announce its demo"
[[ $(fx_podman exec "$CONTAINER" cat /proc/1/comm) == flow-exporter ]] ||
	fail "PID 1 in the container is not the daemon"
uid=$(fx_podman exec "$CONTAINER" awk '/^Uid:/ {print $2}' /proc/1/status)
((uid != 0)) || fail "the daemon runs as root in the container"
log "demo: $(grep -cE '^flow_(receive|transmit)_' "$TEST_TMP/demo.prom") flow samples, PID 1 is flow-exporter (uid $uid)"
stop_container
grep -q 'SIGTERM received' "$TEST_TMP/demo.log" || fail "the daemon did not log the SIGTERM"
assert_clean_log "$TEST_TMP/demo.log"

# --- 2. The Go program's command line against a mock cluster on the host: exact totals.
LOCAL_ASNS=64496,4200000001,65551
SET="$TEST_TMP/set"
"$PYTHON" "$FLOWS_PY" gen --out "$SET" --seed 4 --partitions 4 --messages 120 --local "$LOCAL_ASNS"
"$PYTHON" "$FLOWS_PY" expect --manifest "$SET/manifest.json" --out "$TEST_TMP/expected.prom" \
	--counts-out "$TEST_TMP/expected-counts.json"
chmod -R a+rX "$SET"
start_mock --topic flows:4
for p in 0 1 2 3; do
	must_mock produce flows "$p" "$SET/chunk0.p$p.msg"
done
PORT=$(free_port)
run_container kafka -v "$SET:/data:ro" -e "FLOW_EXPORTER_ADDR=127.0.0.1:$PORT" "$IMAGE" \
	--brokers="$BOOT" --topic=flows --asn="$LOCAL_ASNS" \
	--asn-names=/data/asn.txt --group=deploy-image \
	--kafka-opt=session.timeout.ms=6000 --kafka-opt=auto.offset.reset=earliest
wait_until 30 "the container's /-/healthy" curl -fsS -m 2 "http://127.0.0.1:$PORT/-/healthy"
wait_metrics "$PORT" "$TEST_TMP/expected.prom" 60 "$TEST_TMP/expected-counts.json"
log "the container's flow series match the expected totals exactly"
stop_container
assert_clean_log "$TEST_TMP/kafka.log"
stop_mock
