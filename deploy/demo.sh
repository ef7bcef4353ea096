#!/bin/sh
# Quick start 1: install the Debian packages, build, and run flow-exporter on its embedded default
# (a mock Kafka cluster fed with synthetic pmacct records). Then open http://127.0.0.1:9590/metrics.
# Extra arguments go to flow-exporter, e.g. deploy/demo.sh --addr=127.0.0.1:9590
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then ./deploy/install-deps.sh; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target flow-exporter
exec ./build/flow-exporter --asn-names-cache= "$@"
