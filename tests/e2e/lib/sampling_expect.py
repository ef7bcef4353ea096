#!/usr/bin/python3
"""The counters a renormalizing exporter must show for what pmacct published (tests/e2e/sampling_pmacct.sh).

    sampling_expect.py --messages DUMP[,DUMP...] --local ASNS --out EXPECTED --stats-out STATS.json
                       [--multiply] [--rates FILE] [--default-rate N]

DUMP is what kcat read back (messages followed by 0x1e; records separated by newlines). Without
--multiply the records' bytes and packets are summed as they are (pmacct already renormalized); with it
they are multiplied by the rate sampling.h defines: --rates' rate for the exporter (label, else
peer_ip_src), else the record's sampling_rate when it is 1 or more, else --default-rate, else 1.
STATS.json: records, counted, their sampling_rate values, rate sources, byte totals raw and multiplied,
and record_values: the distinct (series, bytes, packets) of the counted records after multiplication, which
the test compares between two collectors that saw the same datagrams (a purge may publish a key more than
once, so the totals of two collectors can differ while each record agrees).
"""
import argparse
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flows  # noqa: E402


def rate_of(record, rates, default):
    for exporter in (record.get("label"), record.get("peer_ip_src")):
        if exporter and exporter in rates:
            return rates[exporter], "file"
    carried = record.get("sampling_rate", 0)
    if carried >= 1:
        return carried, "record_one" if carried == 1 else "record"
    if default:
        return default, "flag"
    return 1, "unknown"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", required=True)
    parser.add_argument("--local", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stats-out", required=True)
    parser.add_argument("--multiply", action="store_true")
    parser.add_argument("--rates")
    parser.add_argument("--default-rate", type=int, default=0)
    args = parser.parse_args()
    local = {int(a) for a in args.local.split(",")}
    rates = {}
    if args.rates:
        with open(args.rates, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        rates = {row[0]: int(row[1]) for row in rows[1:] if row}
    totals = {}
    stats = {"records": 0, "counted": 0, "rates_seen": [], "sources": {}, "raw_bytes": 0, "bytes": 0,
             "raw_packets": 0, "packets": 0}
    seen = set()
    values = set()
    for dump in args.messages.split(","):
        with open(dump, "rb") as f:
            messages = f.read().split(flows.SEPARATOR)
        for message in messages:
            for line in message.split(b"\n"):
                if not line.strip():
                    continue
                record = json.loads(line.decode("utf-8"))
                if record.get("event_type") != "purge":
                    continue
                stats["records"] += 1
                seen.add(record.get("sampling_rate", -1))
                direction = flows.direction_of(record, local)
                if direction is None:
                    continue
                rate, source = rate_of(record, rates, args.default_rate) if args.multiply else (1, "as_is")
                stats["counted"] += 1
                stats["sources"][source] = stats["sources"].get(source, 0) + 1
                stats["raw_bytes"] += record["bytes"]
                stats["raw_packets"] += record["packets"]
                stats["bytes"] += record["bytes"] * rate
                stats["packets"] += record["packets"] * rate
                values.add((repr(flows.series_labels(record, {})), record["bytes"] * rate, record["packets"] * rate))
                total = totals.setdefault((direction, flows.series_labels(record, {})), [0, 0])
                total[0] += record["bytes"] * rate
                total[1] += record["packets"] * rate
    stats["rates_seen"] = sorted(seen)
    stats["record_values"] = sorted(list(v) for v in values)
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(flows.format_samples(flows.samples(totals)))
    with open(args.stats_out, "w", encoding="utf-8") as out:
        json.dump(stats, out, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
