#!/usr/bin/python3
"""Checks for the push tests: what Prometheus, VictoriaMetrics, a Pushgateway and the recording receiver
(tests/tools/rw_receiver) hold, compared exactly with what flows.py says the records add up to.

    push_check.py strip-huge SETDIR
        flows.py puts one record of 2^64-1 bytes (hostname "huge-c<chunk>", a message of its own) first in
        every chunk of partition 0. No float64 holds it, and remote write and the Pushgateway carry floats:
        the message is removed from every DIR/chunk<c>.p0.msg (use `expect` below for the expectation).
    push_check.py expect EXPECTED_IN EXPECTED_OUT [HOSTS_OUT]
        EXPECTED_IN (flows.py expect) without the huge-c<chunk> series; HOSTS_OUT gets
        {family: {hostname: total}} ('' for the series without hostname). Fails when a total reaches 2^53
        (not exact as a float64).
    push_check.py beats N BYTES PACKETS HOST OUT
        Adds to HOSTS file OUT (created when missing) the receive totals of N beat records of HOST.
    push_check.py totals URL HOSTS [--template T] [--time SECONDS]
        For each family of HOSTS, the instant query T (default "sum by (hostname) ({family})"; {family}
        is replaced) against the Prometheus HTTP API at URL; exit 0 when every answer is exactly the
        expectation (the same hostnames, the same integers), else prints the differences and exits 1.
    push_check.py vector URL EXPR [--time SECONDS]
        Prints the instant vector EXPR as {"<labels>": value} JSON (labels as k=v,... sorted).
    push_check.py gaps URL SELECTOR START END
        The raw samples of SELECTOR (one or more series) between START and END (Unix seconds) from a
        range-vector instant query; prints one JSON line per series: count, the largest gap between
        consecutive samples and whether the series has a sample before START.
    push_check.py pushgateway URL JOB INSTANCE EXPECTED
        The flow series of the Pushgateway group job=JOB, instance=INSTANCE (from its /metrics, where
        every pushed sample carries the grouping labels), without those two labels, must equal EXPECTED
        (flows.py expect format) exactly: the same series, labels and values. Exit 1 with the differences.
    push_check.py pushgateway-groups URL
        Prints the grouping labels of every group the Pushgateway holds (GET /api/v1/metrics), one JSON
        object a line, sorted.
    push_check.py receiver-stale LOG [--alive HOST]
        Reads rw_receiver's JSON log: fails on any violation the receiver recorded; prints, per flow
        series, how many stale markers (NaN 0x7ff0000000000002) it got, and exits 1 unless every series
        got exactly one stale marker as its last sample, except series of HOST (never any).

Every request goes straight to 127.0.0.1 (no proxy from the environment).
"""

import argparse
import glob
import json
import os
import sys
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics  # noqa: E402  (the sibling module)

FAMILIES = sorted(metrics.FLOW_FAMILIES)
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SEPARATOR = b"\x1e"
STALE_BITS = "0x7ff0000000000002"


def http_get(url, timeout=10):
    with OPENER.open(url, timeout=timeout) as answer:
        return answer.read()


def api(base, path, params):
    url = "%s%s?%s" % (base.rstrip("/"), path, urllib.parse.urlencode(params))
    body = json.loads(http_get(url))
    if body.get("status") != "success":
        raise SystemExit("push_check.py: %s: %s" % (url, body))
    return body["data"]


def instant(base, expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = "%.3f" % float(at)
    return api(base, "/api/v1/query", params)


def as_int(text, what):
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")) or value != int(value):
        raise ValueError("%s: not an integer: %s" % (what, text))
    return int(value)


def label_key(metric):
    return ",".join("%s=%s" % (k, metric[k]) for k in sorted(metric))


# ---- the record set --------------------------------------------------------------------------------
def cmd_strip_huge(args):
    files = sorted(glob.glob(os.path.join(args.setdir, "chunk*.p0.msg")))
    if not files:
        raise SystemExit("push_check.py: no chunk*.p0.msg in %s" % args.setdir)
    for path in files:
        with open(path, "rb") as f:
            messages = f.read().split(SEPARATOR)
        if b'"huge-c' not in messages[0]:
            raise SystemExit("push_check.py: %s does not start with the huge record" % path)
        with open(path, "wb") as f:
            f.write(SEPARATOR.join(messages[1:]))
    return 0


def hosts_of(samples):
    out = {family: {} for family in FAMILIES}
    for (name, labels), value in samples.items():
        host = dict(labels).get("hostname", "")
        out[name][host] = out[name].get(host, 0) + int(value)
    for family, by_host in out.items():
        for host, total in by_host.items():
            if total >= 2 ** 53:
                raise SystemExit("push_check.py: %s{hostname=%r} = %d is not exact as a float64" % (
                    family, host, total))
    return out


def cmd_expect(args):
    with open(args.expected_in, encoding="utf-8") as f:
        samples = metrics.flow_samples(metrics.parse(f.read()))
    kept = {k: v for k, v in samples.items() if not dict(k[1]).get("hostname", "").startswith("huge-c")}
    if len(kept) == len(samples):
        raise SystemExit("push_check.py: no huge-c series in %s: is this a flows.py expectation?" % args.expected_in)
    with open(args.expected_out, "w", encoding="utf-8") as out:
        for (name, labels), value in sorted(kept.items()):
            out.write("%s %d\n" % (metrics.format_key((name, labels)), value))
    if args.hosts_out:
        with open(args.hosts_out, "w", encoding="utf-8") as out:
            json.dump(hosts_of(kept), out, indent=1, sort_keys=True, ensure_ascii=False)
    return 0


def cmd_beats(args):
    hosts = {family: {} for family in FAMILIES}
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            hosts = json.load(f)
    if args.n:
        for family, value in (("flow_receive_bytes_total", args.bytes), ("flow_receive_packets_total", args.packets)):
            hosts[family][args.host] = hosts[family].get(args.host, 0) + args.n * value
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(hosts, out, indent=1, sort_keys=True, ensure_ascii=False)
    return 0


# ---- Prometheus HTTP API -------------------------------------------------------------------------------
def cmd_totals(args):
    with open(args.hosts, encoding="utf-8") as f:
        want = json.load(f)
    problems = []
    for family in sorted(want):
        expr = args.template.replace("{family}", family)
        data = instant(args.url, expr, args.time)
        if data["resultType"] != "vector":
            raise SystemExit("push_check.py: %s: a %s, not a vector" % (expr, data["resultType"]))
        got = {}
        for item in data["result"]:
            host = item["metric"].get("hostname", "")
            if host in got:
                problems.append("%s: hostname %r twice in the answer" % (expr, host))
            try:
                if args.relative_error:
                    got[host] = float(item["value"][1])
                else:
                    got[host] = as_int(item["value"][1], "%s{hostname=%r}" % (expr, host))
            except ValueError as e:
                problems.append(str(e))
        expected = want[family]
        for host in sorted(set(got) | set(expected)):
            if (args.relative_error and host in got and host in expected and
                    abs(got[host] - expected[host]) <= args.relative_error * max(1, expected[host])):
                continue
            if got.get(host) != expected.get(host):
                problems.append("%s  hostname=%r: got %s want %s%s" % (
                    expr, host, got.get(host), expected.get(host),
                    "" if host not in got or host not in expected else " (diff %s)" % (got[host] - expected[host])))
    for line in problems[:40]:
        print(line)
    if len(problems) > 40:
        print("... %d more" % (len(problems) - 40))
    return 1 if problems else 0


def cmd_vector(args):
    data = instant(args.url, args.expr, args.time)
    out = {}
    for item in data["result"]:
        out[label_key(item["metric"])] = item["value"][1]
    print(json.dumps(out, sort_keys=True, ensure_ascii=False))
    return 0


def cmd_gaps(args):
    start, end = float(args.start), float(args.end)
    window = int(end - start) + 120  # reaches well before START: shows which series existed then
    data = instant(args.url, "%s[%ds]" % (args.selector, window), end)
    if data["resultType"] != "matrix":
        raise SystemExit("push_check.py: range selector gave a %s" % data["resultType"])
    for item in sorted(data["result"], key=lambda i: label_key(i["metric"])):
        stamps = [float(t) for t, _ in item["values"]]
        inside = [t for t in stamps if start <= t <= end]
        edges = [start] + inside + [end]
        gap = max(b - a for a, b in zip(edges, edges[1:]))
        print(json.dumps({"series": label_key(item["metric"]), "count": len(inside), "max_gap": round(gap, 3),
                          "before": any(t < start for t in stamps)}, ensure_ascii=False))
    return 0


# ---- Pushgateway ---------------------------------------------------------------------------------------
def cmd_pushgateway(args):
    text = http_get(args.url.rstrip("/") + "/metrics").decode("utf-8", errors="surrogateescape")
    actual = {}
    for name, labels, value in metrics.parse(text):
        if name not in metrics.FLOW_FAMILIES:
            continue
        if labels.get("job") != args.job or labels.get("instance") != args.instance:
            continue
        rest = {k: v for k, v in labels.items() if k not in ("job", "instance")}
        key = (name, tuple(sorted(rest.items())))
        if key in actual:
            print("series twice: %s" % metrics.format_key(key))
            return 1
        actual[key] = metrics.number(value)
    with open(args.expected, encoding="utf-8") as f:
        expected = metrics.flow_samples(metrics.parse(f.read()))
    diff = metrics.compare(actual, expected)
    for line in diff:
        print(line)
    return 1 if diff else 0


def cmd_pushgateway_groups(args):
    data = json.loads(http_get(args.url.rstrip("/") + "/api/v1/metrics"))
    if data.get("status") != "success":
        raise SystemExit("push_check.py: /api/v1/metrics: %s" % data)
    groups = sorted(json.dumps(group["labels"], sort_keys=True, ensure_ascii=False) for group in data["data"])
    for group in groups:
        print(group)
    return 0


# ---- rw_receiver's log ---------------------------------------------------------------------------------
def cmd_receiver_stale(args):
    last = {}
    stale = {}
    violations = []
    with open(args.log, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            request = json.loads(line)
            if request.get("violations"):
                violations.append("request %s: %s" % (request.get("seq"), request["violations"]))
            if not 200 <= int(request.get("status", 0)) < 300:
                continue
            for sample in request.get("samples", []):
                labels = sample["labels"]
                if labels.get("__name__") not in metrics.FLOW_FAMILIES:
                    continue
                key = label_key(labels)
                is_stale = bool(sample.get("stale"))
                if is_stale != (sample.get("bits") == STALE_BITS):
                    violations.append("%s: stale=%s but bits %s" % (key, is_stale, sample.get("bits")))
                stale[key] = stale.get(key, 0) + (1 if is_stale else 0)
                last[key] = is_stale
    problems = list(violations)
    alive_prefix = None if args.alive is None else args.alive
    n_stale = 0
    for key in sorted(last):
        host = dict(p.split("=", 1) for p in key.split(",") if "=" in p).get("hostname")
        if alive_prefix is not None and host == alive_prefix:
            if stale[key]:
                problems.append("%s: %d stale marker(s) for a series still updated" % (key, stale[key]))
            continue
        if stale[key] != 1 or not last[key]:
            problems.append("%s: %d stale marker(s), last sample %s" % (
                key, stale[key], "stale" if last[key] else "a value"))
        else:
            n_stale += 1
    print("%d flow series seen, %d ended with exactly one stale marker" % (len(last), n_stale))
    for line in problems[:30]:
        print(line)
    if len(problems) > 30:
        print("... %d more" % (len(problems) - 30))
    return 1 if problems or not last else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("strip-huge")
    p.add_argument("setdir")
    p = sub.add_parser("expect")
    p.add_argument("expected_in")
    p.add_argument("expected_out")
    p.add_argument("hosts_out", nargs="?")
    p = sub.add_parser("beats")
    p.add_argument("n", type=int)
    p.add_argument("bytes", type=int)
    p.add_argument("packets", type=int)
    p.add_argument("host")
    p.add_argument("out")
    p = sub.add_parser("totals")
    p.add_argument("url")
    p.add_argument("hosts")
    p.add_argument("--template", default="sum by (hostname) ({family})")
    p.add_argument("--time")
    # VictoriaMetrics keeps values as decimal mantissa and exponent: a sum of exact integers may come
    # back as 6156238635.999999. Its answers are compared within this relative error, Prometheus's exactly.
    p.add_argument("--relative-error", type=float, default=0.0)
    p = sub.add_parser("vector")
    p.add_argument("url")
    p.add_argument("expr")
    p.add_argument("--time")
    p = sub.add_parser("gaps")
    p.add_argument("url")
    p.add_argument("selector")
    p.add_argument("start")
    p.add_argument("end")
    p = sub.add_parser("pushgateway")
    p.add_argument("url")
    p.add_argument("job")
    p.add_argument("instance")
    p.add_argument("expected")
    p = sub.add_parser("pushgateway-groups")
    p.add_argument("url")
    p = sub.add_parser("receiver-stale")
    p.add_argument("log")
    p.add_argument("--alive")
    args = parser.parse_args()
    handler = {
        "strip-huge": cmd_strip_huge, "expect": cmd_expect, "beats": cmd_beats, "totals": cmd_totals,
        "vector": cmd_vector, "gaps": cmd_gaps, "pushgateway": cmd_pushgateway,
        "pushgateway-groups": cmd_pushgateway_groups, "receiver-stale": cmd_receiver_stale,
    }[args.command]
    try:
        return handler(args)
    except (OSError, ValueError, metrics.ParseError) as e:
        print("push_check.py %s: %s" % (args.command, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
