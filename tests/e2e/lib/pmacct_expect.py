#!/usr/bin/python3
"""The counters that what pmacct published must yield, for the real-pmacct end-to-end test.

    pmacct_expect.py names --out ASN_TXT
        Writes the AS names the test gives the exporter (cidr-report's asn.txt format). Some ASNs of
        deploy/pmacct/networks.lst are named, some are left unnamed on purpose.

    pmacct_expect.py expect --messages DUMP --local ASNS --out EXPECTED [--stats-out STATS.json]
        DUMP is what `kcat -C -e -f '%s\\x1e'` read back from one topic: every Kafka message followed by
        the byte 0x1e. Each message holds one JSON object, or several separated by '\\n'
        (kafka_multi_values). Records with "event_type": "purge" are summed into the exact
        flow_{receive,transmit}_{bytes,packets}_total series (flows.py's model: direction from the local
        ASNs, hostname = label or peer_ip_src, AS names from `names`, interfaces as labels); markers are
        skipped. STATS.json tells the test what the dump held (messages, records, markers, the largest
        number of records in one message, keys published in more than one message, hostnames, totals), so
        that it can insist the input exercised what it claims to.

The JSON is decoded here with Python's json module, independently of the exporter's decoder.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flows  # noqa: E402  (the sibling module: one model of the counting rules)

# Named: the local ASNs and one remote one; 64502 and 64497 stay unnamed (no *_as_name label).
NAMES = {
    64496: "EXAMPLE-LOCAL - Documentation AS",
    64501: 'NET-10-1 "quoted" \\ AS',
    4200000001: "EXAMPLE-32BIT - Private use",
    0: "-Reserved AS-",
}


def cmd_names(args):
    flows.write_names(args.out, NAMES)
    return 0


def cmd_expect(args):
    local = {int(a) for a in args.local.split(",")}
    with open(args.messages, "rb") as f:
        dump = f.read()
    messages = dump.split(flows.SEPARATOR)
    if messages and messages[-1] == b"":
        messages.pop()  # the separator after the last message
    totals = {}
    stats = {"messages": len(messages), "records": 0, "counted": 0, "not_local": 0, "markers": 0,
             "max_records_per_message": 0, "hostnames": [], "keys_in_several_messages": 0,
             "bytes": {"receive": 0, "transmit": 0}, "packets": {"receive": 0, "transmit": 0}}
    hostnames = set()
    key_messages = {}
    for index, message in enumerate(messages):
        records = 0
        for line in message.split(b"\n"):
            if not line.strip():
                continue
            record = json.loads(line.decode("utf-8"))
            if record.get("event_type") != "purge":
                stats["markers"] += 1
                continue
            records += 1
            host = flows.hostname_of(record.get("label"), record.get("peer_ip_src"))
            hostnames.add(host or "")
            labels = flows.series_labels(record, NAMES)
            key_messages.setdefault(labels, set()).add(index)
            direction = flows.direction_of(record, local)
            if direction is None:
                stats["not_local"] += 1
                continue
            stats["counted"] += 1
            total = totals.setdefault((direction, labels), [0, 0])
            total[0] += record["bytes"]
            total[1] += record["packets"]
            stats["bytes"][direction] += record["bytes"]
            stats["packets"][direction] += record["packets"]
        stats["records"] += records
        stats["max_records_per_message"] = max(stats["max_records_per_message"], records)
    stats["hostnames"] = sorted(hostnames)
    stats["keys_in_several_messages"] = sum(1 for m in key_messages.values() if len(m) > 1)
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(flows.format_samples(flows.samples(totals)))
    if args.stats_out:
        with open(args.stats_out, "w", encoding="utf-8") as out:
            json.dump(stats, out, indent=1, sort_keys=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    names = sub.add_parser("names")
    names.add_argument("--out", required=True)
    expect = sub.add_parser("expect")
    expect.add_argument("--messages", required=True)
    expect.add_argument("--local", required=True)
    expect.add_argument("--out", required=True)
    expect.add_argument("--stats-out")
    args = parser.parse_args()
    return {"names": cmd_names, "expect": cmd_expect}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
