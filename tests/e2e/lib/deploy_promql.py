#!/usr/bin/python3
"""The Grafana dashboard and the alerting rules of deploy/, checked against a real Prometheus.

    deploy_promql.py dashboard DASHBOARD.json
        Checks the dashboard's structure: the template variables (job, router, iface_in, iface_out, chained
        as Grafana queries them) and the panels issue 4 item 5 names, each found by the metric its queries
        read (traffic in and out per router, top source and destination ASes with names, per input and
        output interface, packets, consumer lag, invalid records, push failures, series and the limit).

    deploy_promql.py evaluate --prometheus URL --dashboard DASHBOARD.json --rules RULES.yml
                              [--job JOB] [--may-be-empty ALERT]... [--expect ALERT:LABEL=VALUE]...
                              [--timeout SECONDS]
        Resolves the template variables the way Grafana does (label_values through /api/v1/series), then
        runs every dashboard expression twice, with every variable at "All" and with one real
        (router, iface_in, iface_out) combination, and every alert expression once, as instant queries.
        Each must succeed and return a non-empty result (an alert listed with --may-be-empty only has to
        succeed); with the real combination every series returned must carry the chosen values; with
        --expect, every series an alert expression returns must carry LABEL=VALUE (it fires for the
        target set up to fail, and for no healthy one). Retries
        until --timeout (rate() needs two samples); prints one line per expression.
"""

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

# What Grafana puts in place of its built-in variables (the test Prometheus scrapes every second).
BUILTINS = {"__rate_interval": "30s", "__interval": "5s", "__range": "5m"}
FLOW_VARIABLES = ("router", "iface_in", "iface_out")
VARIABLE_LABEL = {"job": "job", "router": "hostname", "iface_in": "iface_in", "iface_out": "iface_out"}


def fail(message):
    print(f"deploy_promql: {message}", file=sys.stderr)
    sys.exit(1)


def load_dashboard(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def all_panels(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def dashboard_queries(dashboard):
    """(panel title, refId, expr) for every query of every panel."""
    out = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                out.append((panel.get("title", "?"), target.get("refId", "?"), target["expr"]))
    return out


def variables(dashboard):
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(variable):
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query")
    return query or variable.get("definition", "")


# ---- dashboard structure

def check_dashboard(path):
    dashboard = load_dashboard(path)
    problems = []
    found = variables(dashboard)
    label_values = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>\w+)\)$")
    for name in ("job",) + FLOW_VARIABLES:
        variable = found.get(name)
        if not variable:
            problems.append(f"no template variable {name}")
            continue
        match = label_values.match(variable_query(variable))
        if variable.get("type") != "query" or not match:
            problems.append(f"variable {name} is not a label_values() query")
            continue
        if match.group("label") != VARIABLE_LABEL[name]:
            problems.append(f"variable {name} lists {match.group('label')}, want {VARIABLE_LABEL[name]}")
        if name in FLOW_VARIABLES and not (variable.get("includeAll") and variable.get("allValue") == ".*"):
            problems.append(f"variable {name} has no All (.*) choice")
    # Chaining: interfaces are those of the chosen routers.
    for name, needs in (("router", "$job"), ("iface_in", "$router"), ("iface_out", "$router")):
        if name in found and needs not in variable_query(found[name]):
            problems.append(f"variable {name} does not depend on {needs}")

    queries = dashboard_queries(dashboard)
    # Every flow query is filtered by every flow variable.
    for title, ref, expr in queries:
        if re.search(r"flow_(receive|transmit)_", expr):
            for name in ("job",) + FLOW_VARIABLES:
                if f"${name}" not in expr:
                    problems.append(f"panel {title!r} {ref}: not filtered by ${name}")

    def panel_with(what, *patterns):
        for panel in all_panels(dashboard):
            exprs = [t.get("expr", "") for t in panel.get("targets", [])]
            if all(any(re.search(p, e) for e in exprs) for p in patterns):
                return panel.get("title")
        problems.append(f"no panel for {what} (queries matching {patterns})")
        return None

    wanted = [
        ("traffic in per router", r"sum by \(hostname\) \(rate\(flow_receive_bytes_total"),
        ("traffic out per router", r"sum by \(hostname\) \(rate\(flow_transmit_bytes_total"),
        ("top source ASes with names", r"topk\(\d+, sum by \(source_as, source_as_name\)"),
        ("top destination ASes with names", r"topk\(\d+, sum by \(destination_as, destination_as_name\)"),
        ("traffic per input interface", r"sum by \([^)]*\biface_in\b[^)]*\) \(rate\(flow_receive_bytes_total"),
        ("traffic per output interface", r"sum by \([^)]*\biface_out\b[^)]*\) \(rate\(flow_transmit_bytes_total"),
        ("input interfaces by name", r"on \(hostname, iface_in\) group_left \(name[^)]*\) max by \([^)]*\) "
         r"\(label_replace\(flow_interface_info\{[^}]*\}, \"iface_in\", \"\$1\", \"ifindex\""),
        ("output interfaces by name", r"on \(hostname, iface_out\) group_left \(name[^)]*\) max by \([^)]*\) "
         r"\(label_replace\(flow_interface_info\{[^}]*\}, \"iface_out\", \"\$1\", \"ifindex\""),
        ("packets", r"flow_receive_packets_total", r"flow_transmit_packets_total"),
        ("consumer lag", r"flow_exporter_kafka_consumer_lag"),
        ("invalid records", r"flow_exporter_records_invalid_total"),
        ("push failures", r'flow_exporter_push_requests_total\{[^}]*status_class!="2xx"',
         r"flow_exporter_push_dropped_batches_total"),
        ("series count against the limit", r"flow_exporter_series\{", r"flow_exporter_series_limit"),
    ]
    for entry in wanted:
        title = panel_with(*entry)
        if title:
            print(f"  panel for {entry[0]}: {title!r}")
    for problem in problems:
        print(f"dashboard: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"dashboard: {len(found)} variables, {len(queries)} queries, every required panel present")


# ---- evaluation against Prometheus

def api(base, path, params):
    url = f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        body = json.load(error)
    if body.get("status") != "success":
        raise RuntimeError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


def regex_literal(value):
    """A value as Grafana renders it into a regex matcher: regex-escaped, then escaped for a PromQL string."""
    escaped = re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", value)
    return escaped.replace("\\", "\\\\").replace('"', '\\"')


def substitute(text, values):
    def replace(match):
        name = match.group("braced") or match.group("plain") or match.group("square")
        if name.isdigit():
            return match.group(0)  # label_replace's "$1": Grafana leaves what names no variable as it is
        if name in BUILTINS:
            return BUILTINS[name]
        if name in values:
            return values[name]
        fail(f"unknown variable ${name} in {text}")

    return re.sub(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\[\[(?P<square>\w+)\]\]|\$(?P<plain>\w+)", replace, text)


def label_values(base, query, values):
    """Grafana's label_values(selector, label) through the series API."""
    match = re.match(r"^label_values\((?P<selector>.*),\s*(?P<label>\w+)\)$", query)
    if not match:
        fail(f"not a label_values() query: {query}")
    selector = substitute(match.group("selector"), values)
    series = api(base, "/api/v1/series", {"match[]": selector, "start": time.time() - 600, "end": time.time()})
    return sorted({s[match.group("label")] for s in series if match.group("label") in s})


def resolve(base, dashboard, job):
    """Two substitutions: every flow variable at All, and one real combination (by label_values chaining)."""
    found = variables(dashboard)
    jobs = label_values(base, variable_query(found["job"]), {})
    if job not in jobs:
        raise RuntimeError(f"job {job!r} not among the job variable's values {jobs}")
    every = {"job": regex_literal(job), "datasource": "prometheus"}
    every.update({name: ".*" for name in FLOW_VARIABLES})
    chosen_values = {"job": job}
    chosen = dict(every)
    for name in FLOW_VARIABLES:
        options = label_values(base, variable_query(found[name]), chosen)
        if not options:
            raise RuntimeError(f"variable {name} has no values yet")
        # The middle value: not the first, so that a filter that matches nothing specific shows up.
        chosen_values[name] = options[len(options) // 2]
        chosen[name] = regex_literal(chosen_values[name])
    return every, chosen, chosen_values


def run(base, expr):
    data = api(base, "/api/v1/query", {"query": expr, "time": time.time()})
    return data["resultType"], data["result"]


def evaluate_once(args, dashboard, rules, report):
    every, chosen, chosen_values = resolve(args.prometheus, dashboard, args.job)
    report.append(f"variables: job={args.job} " + " ".join(f"{k}={v}" for k, v in chosen_values.items() if k != "job"))
    problems = []
    for title, ref, expr in dashboard_queries(dashboard):
        for kind, values in (("all", every), ("chosen", chosen)):
            query = substitute(expr, values)
            try:
                _, result = run(args.prometheus, query)
            except RuntimeError as error:
                problems.append(f"panel {title!r} {ref} ({kind}): {error}: {query}")
                continue
            if not result:
                problems.append(f"panel {title!r} {ref} ({kind}): empty result: {query}")
                continue
            if kind == "chosen":
                for sample in result:
                    metric = sample.get("metric", {})
                    for name, value in chosen_values.items():
                        label = VARIABLE_LABEL[name]
                        if label in metric and metric[label] != value:
                            problems.append(f"panel {title!r} {ref}: {label}={metric[label]} passed the filter {label}={value}")
            report.append(f"  ok {len(result):4d} series  [{kind:6s}] {title} / {ref}")
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            try:
                _, result = run(args.prometheus, rule["expr"])
            except RuntimeError as error:
                problems.append(f"rule {name}: {error}")
                continue
            if not result and name not in args.may_be_empty:
                problems.append(f"rule {name}: empty result (its condition is set up to hold): {rule['expr']}")
                continue
            for expectation in args.expect:
                alert, _, pair = expectation.partition(":")
                label, _, value = pair.partition("=")
                if alert != name:
                    continue
                for sample in result:
                    if sample["metric"].get(label) != value:
                        problems.append(f"rule {name}: fires for {sample['metric']}, want only {label}={value}")
            report.append(f"  ok {len(result):4d} series  [alert ] {name}" + ("" if result else " (may be empty)"))
    return problems


def evaluate(args):
    dashboard = load_dashboard(args.dashboard)
    with open(args.rules, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    deadline = time.time() + args.timeout
    while True:
        report = []
        try:
            problems = evaluate_once(args, dashboard, rules, report)
        except (RuntimeError, OSError) as error:
            problems = [str(error)]
        if not problems:
            print("\n".join(report))
            return
        if time.time() >= deadline:
            print("\n".join(report))
            for problem in problems:
                print(f"FAIL {problem}", file=sys.stderr)
            sys.exit(1)
        time.sleep(2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dash = sub.add_parser("dashboard")
    dash.add_argument("dashboard")
    ev = sub.add_parser("evaluate")
    ev.add_argument("--prometheus", required=True)
    ev.add_argument("--dashboard", required=True)
    ev.add_argument("--rules", required=True)
    ev.add_argument("--job", default="flow-exporter")
    ev.add_argument("--may-be-empty", action="append", default=[])
    ev.add_argument("--expect", action="append", default=[])
    ev.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()
    if args.command == "dashboard":
        check_dashboard(args.dashboard)
    else:
        evaluate(args)


if __name__ == "__main__":
    main()
