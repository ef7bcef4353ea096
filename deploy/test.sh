#!/bin/sh
# Quick start 2: the whole test suite. Installs the Debian packages (as root), then builds and runs every
# test in a normal build and in a build with AddressSanitizer + UndefinedBehaviorSanitizer, and the unit
# tests (the modules' threads, locks and hand-overs) in a ThreadSanitizer build.
# FX_TEST_BUILDS="plain", "asan" or "tsan" (or any list of them) runs only those.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then ./deploy/install-deps.sh; fi
jobs=$(nproc)
# ctest runs one test more than there are cores: most end-to-end tests spend their time waiting on their
# components, and the suite has to fit in CI's 25 minutes.
status=0
for kind in ${FX_TEST_BUILDS:-plain asan tsan}; do
	select=""
	case $kind in
	plain) dir=build-test flags="" ;;
	asan) dir=build-asan flags="-DFX_SANITIZE=ON" ;;
	tsan) dir=build-tsan flags="-DFX_TSAN=ON" select="-L unit" ;;
	*) echo "unknown build kind $kind" >&2; exit 2 ;;
	esac
	echo "=== $kind build ($dir) ==="
	# shellcheck disable=SC2086
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo $flags >/dev/null
	cmake --build "$dir" -j"$jobs"
	# shellcheck disable=SC2086
	(cd "$dir" && ctest --output-on-failure -j"$((jobs + 1))" --timeout 600 $select) || status=1
done
exit $status
