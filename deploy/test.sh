#!/bin/sh
# Quick start 2: the whole test suite. Installs the Debian packages (as root), then builds and runs every
# test twice: a normal build, and a build with AddressSanitizer + UndefinedBehaviorSanitizer.
# FX_TEST_BUILDS="plain" or "asan" runs only one of them.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then ./deploy/install-deps.sh; fi
jobs=$(nproc)
status=0
for kind in ${FX_TEST_BUILDS:-plain asan}; do
	case $kind in
	plain) dir=build-test flags="" ;;
	asan) dir=build-asan flags="-DFX_SANITIZE=ON" ;;
	*) echo "unknown build kind $kind" >&2; exit 2 ;;
	esac
	echo "=== $kind build ($dir) ==="
	# shellcheck disable=SC2086
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo $flags >/dev/null
	cmake --build "$dir" -j"$jobs"
	(cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600) || status=1
done
exit $status
