# The README's flag table and --help come from the same table in src/config.c: every flag --help lists is
# in the README with the same default, and the README lists no flag the binary does not accept.
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

"$FX_BIN" --help >"$TEST_TMP/help.txt" || fail "--help exited non-zero"
"$PYTHON" - "$TEST_TMP/help.txt" "$FX_SOURCE/README.md" <<'PY' || fail "README flag table and --help differ"
import re, sys
help_text = open(sys.argv[1]).read().splitlines()
readme = open(sys.argv[2]).read()
flags = {}
for i, line in enumerate(help_text):
    m = re.match(r"  --([a-z0-9.-]+)(=VALUE)?$", line)
    if m:
        d = re.search(r' \(default "(.*)"\)$', help_text[i + 1])
        flags[m.group(1)] = d.group(1) if d else ("" if m.group(2) else "false")
table = {m.group(1): m.group(2) for m in re.finditer(r"^\| `--([a-z0-9.-]+)` \| `?([^|`]*)`? \|", readme, re.M)}
bad = 0
for name, default in flags.items():
    if name not in table:
        print("README lacks --%s" % name); bad = 1
    elif table[name].strip() != default:
        print("--%s: README default %r, --help %r" % (name, table[name].strip(), default)); bad = 1
for name in table:
    if name not in flags:
        print("README lists --%s, which the binary does not accept" % name); bad = 1
print("%d flags checked" % len(flags))
sys.exit(bad)
PY
log "ok"
