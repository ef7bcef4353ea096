#!/usr/bin/python3
"""Reads a Prometheus text exposition (format 0.0.4) and compares its flow series with an expectation.

    metrics.py compare BODY EXPECTED
        Exit 0 when the flow_{receive,transmit}_{bytes,packets}_total samples of BODY (a file, "-" for
        stdin) are exactly those of EXPECTED (written by flows.py expect): the same series, the same
        labels, the same integer values. Otherwise prints the differences and exits 1.
    metrics.py combine sum|union EXPECTED BODY...
        Exit 0 when the flow samples of the BODY files together are exactly those of EXPECTED: "sum" adds
        the values a series has in several bodies (exporters sharing series), "union" refuses a series in
        two bodies (exporters with disjoint series).
    metrics.py get BODY NAME [LABEL=VALUE ...]
        Prints the value of the one sample of NAME whose labels include those given; exit 1 if none,
        2 if several match.
    metrics.py sum BODY NAME [LABEL=VALUE ...]
        Prints the sum of the samples of NAME whose labels include those given (0 if none).
    metrics.py by-label BODY NAME LABEL
        Prints {"<value of LABEL>": value, ...} (JSON) for the samples of NAME.
    metrics.py unique BODY
        Exit 1 when any sample (of any family) appears twice with the same labels.
    metrics.py self-check BODY COUNTS
        Compares the exporter's record self-metrics (flow_exporter_records_*_total, messages) with the
        counts flows.py expect wrote (COUNTS.json); prints the differences and exits 1 when any differs.

Values are compared as exact decimals: an integer printed as a float that lost precision differs.
"""

import json
import re
import sys
from decimal import Decimal, InvalidOperation

FLOW_FAMILIES = {
    "flow_receive_bytes_total",
    "flow_receive_packets_total",
    "flow_transmit_bytes_total",
    "flow_transmit_packets_total",
}

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class ParseError(Exception):
    pass


def parse_labels(line, pos, lineno):
    """Parses `{name="value",...}` from line[pos] == '{'. Returns (labels dict, position after '}')."""
    labels = {}
    pos += 1
    while True:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return labels, pos + 1
        m = LABEL_NAME_RE.match(line, pos)
        if not m:
            raise ParseError("line %d: bad label name at column %d: %r" % (lineno, pos, line))
        name = m.group(0)
        pos = m.end()
        if line[pos:pos + 2] != '="':
            raise ParseError("line %d: expected =\" after %s: %r" % (lineno, name, line))
        pos += 2
        value = []
        while True:
            if pos >= len(line):
                raise ParseError("line %d: unterminated label value: %r" % (lineno, line))
            c = line[pos]
            if c == "\\":
                nxt = line[pos + 1:pos + 2]
                if nxt == "n":
                    value.append("\n")
                elif nxt in ('"', "\\"):
                    value.append(nxt)
                else:
                    raise ParseError("line %d: bad escape \\%s: %r" % (lineno, nxt, line))
                pos += 2
            elif c == '"':
                pos += 1
                break
            else:
                value.append(c)
                pos += 1
        if name in labels:
            raise ParseError("line %d: label %s twice: %r" % (lineno, name, line))
        labels[name] = "".join(value)
        if pos < len(line) and line[pos] == ",":
            pos += 1


def parse(text):
    """[(name, {labels}, value text)] of every sample; raises ParseError on a malformed line."""
    out = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        m = NAME_RE.match(line)
        if not m:
            raise ParseError("line %d: bad metric name: %r" % (lineno, line))
        name = m.group(0)
        pos = m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = parse_labels(line, pos, lineno)
        rest = line[pos:].split()
        if len(rest) not in (1, 2):
            raise ParseError("line %d: expected a value (and a timestamp): %r" % (lineno, line))
        out.append((name, labels, rest[0]))
    return out


def number(text):
    try:
        return Decimal(text)
    except InvalidOperation:
        if text in ("NaN", "+Inf", "-Inf"):
            return text
        raise ParseError("bad value %r" % text)


def flow_samples(parsed):
    """{(name, sorted labels tuple): Decimal} of the flow series; a repeated series raises ParseError."""
    table = {}
    for name, labels, value in parsed:
        if name not in FLOW_FAMILIES:
            continue
        key = (name, tuple(sorted(labels.items())))
        if key in table:
            raise ParseError("series twice: %s" % format_key(key))
        table[key] = number(value)
    return table


def format_key(key):
    name, labels = key
    return "%s{%s}" % (name, ",".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"')
                                                    .replace("\n", "\\n")) for k, v in labels))


def compare(actual, expected, limit=15):
    """A list of lines describing the differences; empty when equal."""
    lines = []
    missing = sorted(k for k in expected if k not in actual)
    extra = sorted(k for k in actual if k not in expected)
    wrong = sorted(k for k in expected if k in actual and actual[k] != expected[k])
    for title, keys, show in (
        ("missing (expected, not in /metrics)", missing, lambda k: "want %s" % expected[k]),
        ("unexpected (in /metrics, not expected)", extra, lambda k: "got %s" % actual[k]),
        ("wrong value", wrong, lambda k: "got %s want %s (diff %s)" % (actual[k], expected[k],
                                                                      actual[k] - expected[k])),
    ):
        if not keys:
            continue
        lines.append("%s: %d series" % (title, len(keys)))
        for k in keys[:limit]:
            lines.append("  %s  %s" % (format_key(k), show(k)))
        if len(keys) > limit:
            lines.append("  ... %d more" % (len(keys) - limit))
    if lines:
        lines.append("(%d series in /metrics, %d expected, %d equal)" % (
            len(actual), len(expected), len(expected) - len(missing) - len(wrong)))
    return lines


# The exporter's record self-metrics: (name, labels) -> how to compute it from flows.py's counts.
INVALID_REASONS = ("json", "type", "missing", "range", "utf8", "too_large")


def expected_self_metrics(counts):
    expected = {
        ("flow_exporter_kafka_messages_total", ()): counts["messages"],
        ("flow_exporter_records_total", ()): counts["flow"] + counts["marker"] + counts["other_event"]
        + counts["invalid"],
        ("flow_exporter_records_counted_total", ()): counts["flow"] - counts["not_local"],
        ("flow_exporter_records_ignored_total", (("reason", "marker"),)): counts["marker"],
        ("flow_exporter_records_ignored_total", (("reason", "other_event"),)): counts["other_event"],
        ("flow_exporter_records_ignored_total", (("reason", "not_local"),)): counts["not_local"],
    }
    for reason in INVALID_REASONS:
        expected[("flow_exporter_records_invalid_total", (("reason", reason),))] = counts[reason]
    return expected


def self_check(parsed, counts):
    actual = {(n, tuple(sorted(l.items()))): number(v) for n, l, v in parsed}
    lines = []
    for key, want in sorted(expected_self_metrics(counts).items()):
        got = actual.get(key)
        if got is None:
            lines.append("missing: %s  want %d" % (format_key(key), want))
        elif got != want:
            lines.append("wrong: %s  got %s want %d (diff %s)" % (format_key(key), got, want, got - want))
    return lines


def read(path):
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return data.decode("utf-8", errors="surrogateescape")


def matching(parsed, name, wanted):
    return [(labels, value) for n, labels, value in parsed
            if n == name and all(labels.get(k) == v for k, v in wanted.items())]


def parse_pairs(items):
    wanted = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise SystemExit("metrics.py: expected LABEL=VALUE, got %r" % item)
        wanted[k] = v
    return wanted


def combine(mode, bodies):
    """The flow samples of several bodies together: "sum" adds a series' values, "union" wants each series in
    one body only (None and the series when one is in two)."""
    total = {}
    for path in bodies:
        for key, value in flow_samples(parse(read(path))).items():
            if mode == "union" and key in total:
                return None, key
            total[key] = total.get(key, 0) + value
    return total, None


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, body = argv[1], argv[2]
    if command == "combine" and len(argv) >= 5 and body in ("sum", "union"):
        total, twice = combine(body, argv[4:])
        if twice is not None:
            print("in two expositions: %s" % format_key(twice))
            return 1
        diff = compare(total, flow_samples(parse(read(argv[3]))))
        print("\n".join(diff))
        return 1 if diff else 0
    try:
        parsed = parse(read(body))
        if command == "compare" and len(argv) == 4:
            diff = compare(flow_samples(parsed), flow_samples(parse(read(argv[3]))))
            for line in diff:
                print(line)
            return 1 if diff else 0
        if command == "self-check" and len(argv) == 4:
            with open(argv[3], encoding="utf-8") as f:
                diff = self_check(parsed, json.load(f))
            for line in diff:
                print(line)
            return 1 if diff else 0
        if command in ("get", "sum") and len(argv) >= 4:
            found = matching(parsed, argv[3], parse_pairs(argv[4:]))
            if command == "sum":
                print(sum((number(v) for _, v in found), Decimal(0)))
                return 0
            if len(found) != 1:
                print("metrics.py: %d samples of %s match %s" % (len(found), argv[3], argv[4:]), file=sys.stderr)
                return 1 if not found else 2
            print(found[0][1])
            return 0
        if command == "unique" and len(argv) == 3:
            seen, twice = set(), []
            for name, labels, _ in parsed:
                key = (name, tuple(sorted(labels.items())))
                if key in seen:
                    twice.append(format_key(key))
                seen.add(key)
            for key in twice:
                print("sample twice: %s" % key, file=sys.stderr)
            return 1 if twice else 0
        if command == "by-label" and len(argv) == 5:
            out = {}
            for labels, value in matching(parsed, argv[3], {}):
                out[labels.get(argv[4], "")] = int(number(value))
            print(json.dumps(out, sort_keys=True))
            return 0
    except ParseError as e:
        print("metrics.py: %s" % e, file=sys.stderr)
        return 3
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
