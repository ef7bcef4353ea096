#!/usr/bin/python3
"""Many distinct series keys for the cardinality tests (issue 10: overflow, top-N, the demo's tail).

    cardinality.py gen --out DIR [--seed N] [--partitions P] [--messages M] [--hosts H] [--keys K]
                       [--local ASN]
        Writes DIR/p<p>.msg (partition p's messages, separated by the byte 0x1e, for fx_mock's `produce`),
        DIR/asn.txt and DIR/records.json (every record as generated). Each of the H hostnames has K keys
        (remote AS x iface_in, receive for an even key, transmit for an odd one); a message is one record
        or a kafka_multi_values batch of 2..20. A few keys carry most records, the rest a long tail.

    cardinality.py gen-phases --out DIR [--seed N] [--hosts H] [--keys K] [--heavy N] [--phases P]
                              [--ticks T] [--local ASN]
        Traffic whose mix shifts, for top-N: P phases of T ticks; in every tick every key of every
        hostname gets a record (so an exposed series that is not frozen always grows), and the N heavy keys
        of the phase (rotating by N keys a phase) carry ~100 times the bytes. DIR/tick<i>.msg holds tick
        i's messages (one kafka_multi_values message per hostname, separated by 0x1e), DIR/records.json as
        for gen.

    cardinality.py prom-check PORT SELECTOR RECORDS N START END
        Top-N as a TSDB saw it: Prometheus on PORT, the flow series matching SELECTOR (e.g. job="fx")
        between START and END (Unix seconds). Exit 1 unless: sum(last_over_time(F[run])) of each family,
        in total and by hostname, equals the exact sums of RECORDS (the last value of every series ever
        exposed: shown + other = everything); resets(F[run]) is 0 for every series; at every 1 s step of a
        query_range, no hostname has more than N + 1 series that grew over both the second before and
        the second after (members through that time and other: a frozen series is constant, a ranking
        happens at most once in 2 s), nor more than 2N + 1 exposed in all (N frozen at most after a ranking); membership changed (series that appeared later or left
        during the run) at least 3 times per hostname.

    cardinality.py pmacct-expect --messages DUMP --local ASNS --labels L1,L2,... --out EXPECTED
                                 [--stats-out STATS.json]
        What pmacct published (DUMP: kcat's messages, each followed by 0x1e; one JSON object or several
        separated by '\n') summed by the values of the configured labels, read from pmacct's own keys
        as README's catalog maps them (protocol <- ip_proto, source_port <- port_src, source_net <-
        net_src/mask_src, source_peer_as <- peer_as_src, ...; an absent or null key gives no label), into
        the exact flow series (metrics.py's format). STATS.json: how many distinct values each label took
        and how many records carried it, so that the test can insist the dimensions were really there.

    cardinality.py check-overflow BODY RECORDS LIMIT
        The overflow rule against a /metrics BODY, whatever order the records arrived in: the series held
        (every flow series whose source_as is not "other") are at most LIMIT and each equals, in all four
        families, the exact sum of every record of its key (a key held once takes all its records; one
        refused stays refused, nothing expires); each hostname's overflow series equals the sum of the
        records of its keys that are not held, and flow_exporter_records_overflow_total{hostname} counts
        exactly those records; held + overflow records = every record; the sums per hostname and in
        total equal the generator's. Prints a summary; exit 1 with the differences.

    cardinality.py remote-ases BODY LOCAL
        The number of distinct remote ASes in a body's flow series (source_as of receive, destination_as
        of transmit; "other" and LOCAL excluded).

    cardinality.py per-host BODY
        The most series one hostname exposes in BODY (a series counted once over the four families).

    cardinality.py totals RECORDS
        {"flow_receive_bytes_total": N, ...}: the exact sum of each family over every record (JSON).
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics  # noqa: E402  (the project's exposition parser)

SEPARATOR = b"\x1e"
FAMILIES = ("flow_receive_bytes_total", "flow_receive_packets_total", "flow_transmit_bytes_total",
            "flow_transmit_packets_total")
REMOTE_BASE = 4200001000  # unnamed 32-bit private-use ASNs: no AS-name labels


def key_fields(host, key, local):
    """(labels of the series, direction) of key number `key` of a hostname."""
    remote = REMOTE_BASE + key // 4
    iface_in = 1 + key % 4
    receive = key % 2 == 0
    src, dst = (remote, local) if receive else (local, remote)
    labels = {"hostname": host, "source_as": str(src), "destination_as": str(dst), "iface_in": str(iface_in),
              "iface_out": "10"}
    return labels, "receive" if receive else "transmit"


def cmd_gen(args):
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    hosts = ["card%d.example.net" % h for h in range(args.hosts)]
    records, partitions = [], [[] for _ in range(args.partitions)]
    heavy = max(1, args.keys // 50)
    for p in range(args.partitions):
        for _ in range(args.messages):
            n = 1 if rng.random() < 0.4 else rng.randrange(2, 21)
            lines = []
            for _ in range(n):
                host = rng.randrange(args.hosts)
                key = rng.randrange(heavy) if rng.random() < 0.3 else rng.randrange(args.keys)
                labels, _ = key_fields(hosts[host], key, args.local)
                nbytes = rng.randrange(40, 3_000_000)
                packets = rng.randrange(1, 2000)
                record = {"event_type": "purge", "label": labels["hostname"], "as_src": int(labels["source_as"]),
                          "as_dst": int(labels["destination_as"]), "peer_ip_src": "192.0.2.%d" % (1 + host),
                          "iface_in": int(labels["iface_in"]), "iface_out": 10, "packets": packets,
                          "bytes": nbytes, "writer_id": "card/%d" % p}
                lines.append(json.dumps(record).encode())
                records.append([host, key, nbytes, packets])
            partitions[p].append(b"\n".join(lines) + (b"\n" if n > 1 else b""))
    for p, texts in enumerate(partitions):
        with open(os.path.join(args.out, "p%d.msg" % p), "wb") as out:
            out.write(SEPARATOR.join(texts))
    with open(os.path.join(args.out, "asn.txt"), "w", encoding="utf-8") as out:
        out.write("15169\tGOOGLE - Google LLC, US\n")
    with open(os.path.join(args.out, "records.json"), "w", encoding="utf-8") as out:
        json.dump({"hosts": hosts, "local": args.local, "records": records}, out)
    print("%d records in %d messages, %d hostnames x %d keys" %
          (len(records), args.partitions * args.messages, args.hosts, args.keys))
    return 0


def cmd_gen_phases(args):
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    hosts = ["topn%d.example.net" % h for h in range(args.hosts)]
    records = []
    for tick in range(args.phases * args.ticks):
        phase = tick // args.ticks
        heavy = {(phase * args.heavy + i) % args.keys for i in range(args.heavy)}
        texts = []
        for h, host in enumerate(hosts):
            lines = []
            for key in range(args.keys):
                labels, _ = key_fields(host, key, args.local)
                nbytes = rng.randrange(200_000, 300_000) if key in heavy else rng.randrange(1_000, 3_000)
                packets = 1 + nbytes // 1000
                record = {"event_type": "purge", "label": host, "as_src": int(labels["source_as"]),
                          "as_dst": int(labels["destination_as"]), "peer_ip_src": "192.0.2.%d" % (1 + h),
                          "iface_in": int(labels["iface_in"]), "iface_out": 10, "packets": packets,
                          "bytes": nbytes, "writer_id": "topn/1"}
                lines.append(json.dumps(record).encode())
                records.append([h, key, nbytes, packets])
            texts.append(b"\n".join(lines) + b"\n")
        with open(os.path.join(args.out, "tick%d.msg" % tick), "wb") as out:
            out.write(SEPARATOR.join(texts))
    with open(os.path.join(args.out, "asn.txt"), "w", encoding="utf-8") as out:
        out.write("15169\tGOOGLE - Google LLC, US\n")
    with open(os.path.join(args.out, "records.json"), "w", encoding="utf-8") as out:
        json.dump({"hosts": hosts, "local": args.local, "records": records}, out)
    return 0


def prom_get(port, path, params):
    import urllib.parse
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    url = "http://127.0.0.1:%s%s?%s" % (port, path, urllib.parse.urlencode(params))
    with opener.open(url, timeout=20) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit("%s %s: %s" % (path, params, body))
    return body["data"]["result"]


def cmd_prom_check(args):
    spec = load(args.records)
    hosts, n, errors = spec["hosts"], args.n, []
    run = "%ds" % (int(args.end - args.start) + 5)
    want = {}
    for host, key, nbytes, packets in spec["records"]:
        _, direction = key_fields(hosts[host], key, spec["local"])
        for family, v in (("flow_%s_bytes_total" % direction, nbytes), ("flow_%s_packets_total" % direction, packets)):
            want.setdefault(family, {}).setdefault(hosts[host], 0)
            want[family][hosts[host]] += v
    for family in FAMILIES:
        expected = want.get(family, {})
        if sum(expected.values()) >= 2 ** 53:
            raise SystemExit("%s: a float cannot hold the expected sum" % family)
        result = prom_get(args.port, "/api/v1/query", {
            "query": "sum by (hostname) (last_over_time(%s{%s}[%s]))" % (family, args.selector, run),
            "time": args.end})
        got = {item["metric"].get("hostname", ""): float(item["value"][1]) for item in result}
        if got != {h: float(v) for h, v in expected.items()}:
            errors.append("%s: sum of the last values by hostname %s, want %s" % (family, got, expected))
        resets = prom_get(args.port, "/api/v1/query", {
            "query": "resets(%s{%s}[%s]) > 0" % (family, args.selector, run), "time": args.end})
        if resets:
            errors.append("%s: %d series reset, e.g. %s" % (family, len(resets), resets[0]["metric"]))
    # Every flow series over the run, one value a second.
    matrix = prom_get(args.port, "/api/v1/query_range", {
        "query": '{__name__=~"flow_(receive|transmit)_bytes_total",%s}' % args.selector,
        "start": args.start, "end": args.end, "step": "1s"})
    series = {}
    for item in matrix:
        labels = {k: v for k, v in item["metric"].items() if k not in ("__name__", "job", "instance")}
        series.setdefault(tuple(sorted(labels.items())), {})
        for t, v in item["values"]:
            values = series[tuple(sorted(labels.items()))]
            values[int(float(t))] = values.get(int(float(t)), 0) + float(v)
    steps = sorted({t for values in series.values() for t in values})
    most_growing, most_exposed, changes = {}, {}, {}
    for t in steps:
        growing, exposed = {}, {}
        for key, values in series.items():
            if t not in values:
                continue
            host = dict(key).get("hostname", "")
            exposed[host] = exposed.get(host, 0) + 1
            if t - 1 in values and t + 1 in values and values[t - 1] < values[t] < values[t + 1]:
                growing[host] = growing.get(host, 0) + 1
        for host, count in growing.items():
            most_growing[host] = max(most_growing.get(host, 0), count)
            if count > n + 1:
                errors.append("at %d, %s: %d series grew (N + 1 = %d)" % (t, host, count, n + 1))
        for host, count in exposed.items():
            most_exposed[host] = max(most_exposed.get(host, 0), count)
            if count > 2 * n + 1:
                errors.append("at %d, %s: %d series exposed (2N + 1 = %d)" % (t, host, count, 2 * n + 1))
    for key, values in series.items():
        host = dict(key).get("hostname", "")
        present = [t in values for t in steps]
        changes[host] = changes.get(host, 0) + sum(1 for a, b in zip(present, present[1:]) if a != b)
    for host in hosts:
        if changes.get(host, 0) < 3:
            errors.append("%s: membership changed %d times, want >= 3 (the test proves nothing)" %
                          (host, changes.get(host, 0)))
    for line in errors[:20]:
        print(line)
    print("%s: %d series ever exposed over %d steps; most growing at once %s, most exposed %s, "
          "membership changes %s" % (args.selector, len(series), len(steps), most_growing, most_exposed, changes))
    return 1 if errors else 0


# README's catalog: label -> (pmacct key, its mask key for a prefix).
CATALOG = {
    "source_as": ("as_src", None), "destination_as": ("as_dst", None),
    "iface_in": ("iface_in", None), "iface_out": ("iface_out", None),
    "protocol": ("ip_proto", None), "source_port": ("port_src", None), "destination_port": ("port_dst", None),
    "source_net": ("net_src", "mask_src"), "destination_net": ("net_dst", "mask_dst"),
    "source_peer_as": ("peer_as_src", None), "destination_peer_as": ("peer_as_dst", None),
    "exporter": ("peer_ip_src", None), "tos": ("tos", None), "vlan_in": ("vlan_in", None),
    "vlan_out": ("vlan_out", None),
}


def label_value(record, label):
    if label == "hostname":
        return record.get("label") or record.get("peer_ip_src") or None
    key, mask_key = CATALOG[label]
    value = record.get(key)
    if value is None or value == "":
        return None
    value = str(value)
    if mask_key is not None and record.get(mask_key) is not None:
        value = "%s/%d" % (value, record[mask_key])
    return value


def cmd_pmacct_expect(args):
    local = {int(a) for a in args.local.split(",")}
    labels_wanted = args.labels.split(",")
    with open(args.messages, "rb") as f:
        messages = f.read().split(SEPARATOR)
    if messages and messages[-1] == b"":
        messages.pop()
    totals, values, carried, counted = {}, {}, {}, 0
    for message in messages:
        for line in message.split(b"\n"):
            if not line.strip():
                continue
            record = json.loads(line.decode("utf-8"))
            if record.get("event_type") != "purge":
                continue
            if record["as_src"] in local:
                direction = "transmit"
            elif record["as_dst"] in local:
                direction = "receive"
            else:
                continue
            counted += 1
            labels = []
            for label in labels_wanted:
                value = label_value(record, label)
                if value is not None:
                    labels.append((label, value))
                    values.setdefault(label, set()).add(value)
                    carried[label] = carried.get(label, 0) + 1
            for unit in ("bytes", "packets"):
                key = ("flow_%s_%s_total" % (direction, unit), tuple(sorted(labels)))
                totals[key] = totals.get(key, 0) + record[unit]
    with open(args.out, "w", encoding="utf-8") as out:
        for key in sorted(totals):
            out.write("%s %d\n" % (metrics.format_key(key), totals[key]))
    if args.stats_out:
        with open(args.stats_out, "w", encoding="utf-8") as out:
            json.dump({"counted": counted, "carried": carried,
                       "distinct": {k: len(v) for k, v in values.items()},
                       "values": {k: sorted(v)[:20] for k, v in values.items()}}, out, indent=1, sort_keys=True)
    return 0


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def per_key(spec):
    """{(host index, key): [records, bytes, packets]}"""
    table = {}
    for host, key, nbytes, packets in spec["records"]:
        entry = table.setdefault((host, key), [0, 0, 0])
        entry[0] += 1
        entry[1] += nbytes
        entry[2] += packets
    return table


def family_values(direction, nbytes, packets):
    values = dict.fromkeys(FAMILIES, 0)
    values["flow_%s_bytes_total" % direction] = nbytes
    values["flow_%s_packets_total" % direction] = packets
    return values


def cmd_check_overflow(args):
    spec = load(args.records)
    parsed = metrics.parse(metrics.read(args.body))
    hosts = spec["hosts"]
    keys = per_key(spec)
    by_labels = {}
    for (host, key), entry in keys.items():
        labels, direction = key_fields(hosts[host], key, spec["local"])
        by_labels[tuple(sorted(labels.items()))] = (host, key, direction, entry)
    held, overflow, errors = {}, {}, []
    for name, labels, value in parsed:
        if name not in FAMILIES:
            continue
        value = int(metrics.number(value))
        if labels.get("source_as") == "other":
            want = {"hostname", "source_as", "destination_as", "iface_in", "iface_out"}
            if set(labels) != want or any(labels[k] != "other" for k in want - {"hostname"}):
                errors.append("overflow series with unexpected labels: %s" % labels)
            overflow.setdefault(labels.get("hostname"), dict.fromkeys(FAMILIES, 0))[name] += value
            continue
        found = by_labels.get(tuple(sorted(labels.items())))
        if found is None:
            errors.append("a series no record has: %s %s" % (name, labels))
            continue
        held.setdefault(found[:2], dict.fromkeys(FAMILIES, 0))[name] = value
    if len(held) > args.limit:
        errors.append("%d series held, the limit is %d" % (len(held), args.limit))
    expected_overflow = {h: dict.fromkeys(FAMILIES, 0) for h in hosts}
    overflow_records = dict.fromkeys(hosts, 0)
    held_records = 0
    for (host, key), entry in keys.items():
        _, direction = key_fields(hosts[host], key, spec["local"])
        values = family_values(direction, entry[1], entry[2])
        if (host, key) in held:
            held_records += entry[0]
            if held[(host, key)] != values:
                errors.append("held series %s key %d: %s, its records sum to %s" %
                              (hosts[host], key, held[(host, key)], values))
        else:
            overflow_records[hosts[host]] += entry[0]
            for family in FAMILIES:
                expected_overflow[hosts[host]][family] += values[family]
    for host in hosts:
        got = overflow.get(host, dict.fromkeys(FAMILIES, 0))
        if got != expected_overflow[host]:
            errors.append("overflow series of %s: %s, want %s" % (host, got, expected_overflow[host]))
        counted = [v for n, labels, v in parsed
                   if n == "flow_exporter_records_overflow_total" and labels.get("hostname") == host]
        got_records = int(metrics.number(counted[0])) if counted else 0
        if got_records != overflow_records[host]:
            errors.append("flow_exporter_records_overflow_total{hostname=%s} = %d, want %d" %
                          (host, got_records, overflow_records[host]))
    if held_records + sum(overflow_records.values()) != len(spec["records"]):
        errors.append("held %d + overflow %d records != %d sent" %
                      (held_records, sum(overflow_records.values()), len(spec["records"])))
    # Per hostname and in total: every family's sum over the body equals the generator's.
    for host_index, host in enumerate(hosts + [None]):
        want = dict.fromkeys(FAMILIES, 0)
        for (h, key), entry in keys.items():
            if host is None or h == host_index:
                _, direction = key_fields(hosts[h], key, spec["local"])
                for family, v in family_values(direction, entry[1], entry[2]).items():
                    want[family] += v
        got = dict.fromkeys(FAMILIES, 0)
        for name, labels, value in parsed:
            if name in FAMILIES and (host is None or labels.get("hostname") == host):
                got[name] += int(metrics.number(value))
        if got != want:
            errors.append("sums of %s: %s, want %s" % (host or "every hostname", got, want))
    for line in errors[:20]:
        print(line)
    print("held %d series (limit %d) with %d records; overflow records %s; %d records sent" %
          (len(held), args.limit, held_records, overflow_records, len(spec["records"])))
    return 1 if errors else 0


def cmd_remote_ases(args):
    parsed = metrics.parse(metrics.read(args.body))
    seen = set()
    for name, labels, _ in parsed:
        if name.startswith("flow_receive_"):
            seen.add(labels.get("source_as"))
        elif name.startswith("flow_transmit_"):
            seen.add(labels.get("destination_as"))
    seen -= {None, "other", str(args.local)}
    print(len(seen))
    return 0


def exposed_per_host(parsed):
    """{hostname: number of distinct series (label sets) over the four flow families}"""
    seen = {}
    for name, labels, _ in parsed:
        if name in FAMILIES:
            seen.setdefault(labels.get("hostname"), set()).add(tuple(sorted(labels.items())))
    return {host: len(series) for host, series in seen.items()}


def cmd_per_host(args):
    counts = exposed_per_host(metrics.parse(metrics.read(args.body)))
    print(max(counts.values(), default=0))
    return 0


def cmd_totals(args):
    spec = load(args.records)
    totals = dict.fromkeys(FAMILIES, 0)
    for host, key, nbytes, packets in spec["records"]:
        _, direction = key_fields(spec["hosts"][host], key, spec["local"])
        totals["flow_%s_bytes_total" % direction] += nbytes
        totals["flow_%s_packets_total" % direction] += packets
    print(json.dumps(totals, sort_keys=True))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("gen")
    gen.add_argument("--out", required=True)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--partitions", type=int, default=4)
    gen.add_argument("--messages", type=int, default=150, help="messages per partition")
    gen.add_argument("--hosts", type=int, default=4)
    gen.add_argument("--keys", type=int, default=600, help="distinct keys per hostname")
    gen.add_argument("--local", type=int, default=64496)
    phases = sub.add_parser("gen-phases")
    phases.add_argument("--out", required=True)
    phases.add_argument("--seed", type=int, default=1)
    phases.add_argument("--hosts", type=int, default=2)
    phases.add_argument("--keys", type=int, default=8)
    phases.add_argument("--heavy", type=int, default=3)
    phases.add_argument("--phases", type=int, default=8)
    phases.add_argument("--ticks", type=int, default=8)
    phases.add_argument("--local", type=int, default=64496)
    prom = sub.add_parser("prom-check")
    prom.add_argument("port")
    prom.add_argument("selector")
    prom.add_argument("records")
    prom.add_argument("n", type=int)
    prom.add_argument("start", type=float)
    prom.add_argument("end", type=float)
    pexp = sub.add_parser("pmacct-expect")
    pexp.add_argument("--messages", required=True)
    pexp.add_argument("--local", required=True)
    pexp.add_argument("--labels", required=True)
    pexp.add_argument("--out", required=True)
    pexp.add_argument("--stats-out")
    check = sub.add_parser("check-overflow")
    check.add_argument("body")
    check.add_argument("records")
    check.add_argument("limit", type=int)
    remote = sub.add_parser("remote-ases")
    remote.add_argument("body")
    remote.add_argument("local", type=int)
    per_host = sub.add_parser("per-host")
    per_host.add_argument("body")
    totals = sub.add_parser("totals")
    totals.add_argument("records")
    args = parser.parse_args()
    return {"gen": cmd_gen, "gen-phases": cmd_gen_phases, "prom-check": cmd_prom_check, "pmacct-expect": cmd_pmacct_expect, "check-overflow": cmd_check_overflow, "remote-ases": cmd_remote_ases, "per-host": cmd_per_host,
            "totals": cmd_totals}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
