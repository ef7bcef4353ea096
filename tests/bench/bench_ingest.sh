#!/bin/bash
# Ingest: the daemon against librdkafka's mock cluster next to the count-only ceiling (bench_ingest.py),
# then the decoder alone (bench_decode). Environment from run_all.sh; FX_BENCH_RUNS (default 5) and
# FX_BENCH_ARGS (extra bench_ingest.py arguments, e.g. "--workers 1") tune it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${FX_BIN:?}" "${FX_BENCH_TOOLS:?}" "${FX_BENCH_OUT:?}"
# shellcheck disable=SC2086  # FX_BENCH_ARGS is a list of arguments
/usr/bin/python3 "$here/bench_ingest.py" --daemon "$FX_BIN" --tools "$FX_BENCH_TOOLS" \
	--runs "${FX_BENCH_RUNS:-5}" --json "$FX_BENCH_OUT/ingest.json" ${FX_BENCH_ARGS:-}
echo
echo "## decoder alone (one core, 200,000 distinct records, median of 5 passes)"
"$FX_BENCH_TOOLS/bench_decode" --records 200000 --repeat 5 | tail -1
"$FX_BENCH_TOOLS/bench_decode" --records 200000 --repeat 5 --per-message 100 --hosts 5 --asns 5 --ifaces 2 \
	--only counter | tail -1 | sed 's/^DECODE/COUNT_100_PER_MESSAGE/'
