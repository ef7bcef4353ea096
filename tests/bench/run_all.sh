#!/bin/bash
# Runs every benchmark of this folder: each tests/bench/bench_*.sh, in name order, with the same
# environment. Usage: tests/bench/run_all.sh <build-dir> [output-dir]
# The build should be Release (cmake -DCMAKE_BUILD_TYPE=Release). Each script gets FX_BUILD (the build
# directory), FX_BIN (the daemon), FX_TOOLS (the build's tests, as for the e2e tests), FX_TEST_DATA
# (tests/data), FX_BENCH_TOOLS (the build's tests/bench) and FX_BENCH_OUT (where to write its results),
# and prints its figures on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run_all.sh <build-dir> [output-dir]}" && pwd)
out=${2:-$build/bench-results}
mkdir -p "$out"
export FX_BUILD=$build FX_BIN=$build/flow-exporter FX_TOOLS=$build/tests FX_TEST_DATA=$here/../data
export FX_BENCH_TOOLS=$build/tests/bench FX_BENCH_OUT=$out
status=0
for script in "$here"/bench_*.sh; do
	name=$(basename "$script" .sh)
	echo "=== $name ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
	if ! bash "$script" 2>&1 | tee "$out/$name.txt"; then
		echo "=== $name FAILED" >&2
		status=1
	fi
done
exit $status
