#!/bin/sh
# No function in src/ longer than 100 lines, none in tests/ longer than 120 (issue 9: functions a reader
# can hold in their head). clang-tidy's readability-function-size counts the lines of each body.
# Usage: function_size.sh SOURCE_DIR BUILD_DIR (BUILD_DIR holds compile_commands.json).
set -eu
src=$1 build=$2
[ -f "$build/compile_commands.json" ] || { echo "no $build/compile_commands.json" >&2; exit 2; }
check() { # threshold files...
	limit=$1
	shift
	clang-tidy -p "$build" --quiet -checks='-*,readability-function-size' \
		-config="{CheckOptions: [{key: readability-function-size.LineThreshold, value: $limit}]}" "$@" 2>/dev/null |
		grep 'warning: function' || true
}
long=$(check 100 "$src"/src/*.c)
long_tests=$(check 120 "$src"/tests/unit/*.c "$src"/tests/tools/*.c)
if [ -n "$long$long_tests" ]; then
	printf 'functions over the bound (src: 100 lines, tests: 120):\n%s\n%s\n' "$long" "$long_tests"
	exit 1
fi
echo "every function within its bound"
