#!/usr/bin/python3
"""Deterministic pmacct-style flow records for the end-to-end tests, and the counters they must yield.

    flows.py gen --out DIR [--seed N] [--partitions P] [--chunks C] [--messages M] [--local ASNS]
                 [--max-record BYTES] [--host-per-partition]
        Writes DIR/asn.txt (AS names, cidr-report's asn.txt format), DIR/chunk<c>.p<p>.msg (the messages
        of chunk c for partition p, separated by the byte 0x1e, ready for fx_mock's `produce`) and
        DIR/manifest.json (what each message holds). Partition p's messages are meant to be produced chunk
        after chunk into a fresh partition, so the j-th message of partition p over all chunks sits at
        offset j.

    flows.py expect --manifest FILE [--from p0=N,...] [--until p0=N,...] [--chunks 0,1]
                    --out EXPECTED [--counts-out COUNTS.json]
        Sums the messages selected (offset >= from, offset < until, chunk in chunks) into the exact
        flow_{receive,transmit}_{bytes,packets}_total series they must produce (one sample a line, labels
        sorted, as metrics.py reads it), and the records by kind (flow, marker, other_event, not_local and
        the invalid reasons json, type, missing, range, utf8, too_large) into COUNTS.json.

    flows.py prefix --manifest FILE --metrics BODY
        For a set generated with --host-per-partition: finds, per partition, how many leading messages the
        flow series in a /metrics body add up to exactly. Prints "p0=LO-HI p1=..." (a range when messages
        that count nothing make several prefixes equal); exits 1 when the body is no prefix.

The expected values are computed here from the records as generated (Python dicts), not by decoding the
JSON, so that the test compares the exporter against an independent model:
- direction: source AS local -> transmit, else destination AS local -> receive, else not counted;
- hostname: `label`, or `peer_ip_src` when the label is empty or absent; no hostname label when neither;
- source_as_name / destination_as_name from the generated names; absent for an unknown AS;
- iface_in / iface_out absent when the record has none; label values never empty.
"""

import argparse
import json
import os
import random
import sys

SEPARATOR = b"\x1e"
FAMILIES = {
    ("receive", "bytes"): "flow_receive_bytes_total",
    ("receive", "packets"): "flow_receive_packets_total",
    ("transmit", "bytes"): "flow_transmit_bytes_total",
    ("transmit", "packets"): "flow_transmit_packets_total",
}
INVALID_REASONS = ("json", "type", "missing", "range", "utf8", "too_large")
KINDS = ("flow", "marker", "other_event", "not_local") + INVALID_REASONS
U64_MAX = (1 << 64) - 1

DEFAULT_LOCAL = "64496,4200000001,65551"
REMOTE_ASNS = [0, 15169, 13335, 16509, 3356, 4200000002, 64511, 23456, 4294967295]
# The names the generated asn.txt gives. 64511, 4200000002, 4294967295 and 65551 stay unnamed.
AS_NAMES = {
    0: "-Reserved AS-",
    15169: "GOOGLE - Google LLC",
    13335: "CLOUDFLARENET - Cloudflare, Inc.",
    16509: "AMAZON-02 - Amazon.com, Inc.",
    3356: 'LEVEL3 "Lumen" \\ backslash',
    23456: "-Reserved AS- (AS_TRANS) Télécom",
    64496: "EXAMPLE-LOCAL - Documentation AS",
    4200000001: "EXAMPLE-32BIT - Private use",
}

# (label, peer_ip_src): label None = absent, peer None = absent.
HOSTS = [
    ("router1.example.net", "192.0.2.1"),
    ("router2.example.net", "192.0.2.2"),
    ("", "198.51.100.7"),        # empty label: the peer address is the hostname
    (None, "198.51.100.8"),      # no label at all
    ('core"3\\lab', "192.0.2.3"),  # needs escaping in the exposition
    ("routeur-é-😀", "192.0.2.4"),  # non-ASCII, sometimes \u-escaped in the JSON
]
HOSTLESS = (None, None)  # neither: the series has no hostname label
IFACES = [1, 2, 10]  # most records use these, so series add up many records
RARE_IFACES = [0, 523, 4294967295]
COMMON_REMOTE = [15169, 13335, 0]


def hostname_of(label, peer):
    if label:
        return label
    if peer:
        return peer
    return None


def series_labels(record, names):
    """The label pairs of the series a counted record lands in, sorted by name, empty values absent."""
    labels = {}
    host = hostname_of(record.get("label"), record.get("peer_ip_src"))
    if host:
        labels["hostname"] = host
    labels["source_as"] = str(record["as_src"])
    labels["destination_as"] = str(record["as_dst"])
    if names.get(record["as_src"]):
        labels["source_as_name"] = names[record["as_src"]]
    if names.get(record["as_dst"]):
        labels["destination_as_name"] = names[record["as_dst"]]
    for field in ("iface_in", "iface_out"):
        if field in record:
            labels[field] = str(record[field])
    return tuple(sorted(labels.items()))


def direction_of(record, local):
    if record["as_src"] in local:
        return "transmit"
    if record["as_dst"] in local:
        return "receive"
    return None


class Generator:
    def __init__(self, seed, local, max_record, host_per_partition):
        self.rng = random.Random(seed)
        self.local = local
        self.max_record = max_record
        self.host_per_partition = host_per_partition
        self.names = dict(AS_NAMES)
        self.stamp = 0

    # ---- good records ---------------------------------------------------------------------------------
    def host(self, partition):
        label, peer = self.rng.choice(HOSTS)
        if not self.host_per_partition:
            if self.rng.random() < 0.03:
                return HOSTLESS
            return label, peer
        # Every hostname names its partition, so the series of each partition can be told apart.
        if label:
            label = "%s-p%d" % (label, partition)
        elif peer:
            peer = "%s%d" % (peer, partition)  # 198.51.100.70, 198.51.100.71, ...
        return label, peer

    def flow_record(self, partition):
        rng = self.rng
        local = sorted(self.local)
        shape = rng.random()
        remote = rng.choice(COMMON_REMOTE if rng.random() < 0.7 else REMOTE_ASNS)
        if shape < 0.45:
            as_src, as_dst = rng.choice(local), remote
        elif shape < 0.80:
            as_src, as_dst = remote, rng.choice(local)
        elif shape < 0.88:
            as_src, as_dst = rng.choice(local), rng.choice(local)
        else:
            as_src, as_dst = rng.choice(REMOTE_ASNS), rng.choice(REMOTE_ASNS)
        size = rng.random()
        if size < 0.06:
            nbytes = rng.randrange(1 << 32, 1 << 38)  # above 2^32
        elif size < 0.08:
            nbytes = 0
        else:
            nbytes = rng.randrange(40, 2_000_000)
        packets = rng.randrange(1 << 32, 1 << 34) if size < 0.02 else rng.randrange(0 if nbytes == 0 else 1, 1500)
        label, peer = self.host(partition)
        self.stamp += 1
        record = {"event_type": "purge"}
        if label is not None:
            record["label"] = label
        record["as_src"] = as_src
        record["as_dst"] = as_dst
        if peer is not None:
            record["peer_ip_src"] = peer
        for field in ("iface_in", "iface_out"):
            if rng.random() > 0.08:
                record[field] = rng.choice(IFACES if rng.random() < 0.9 else RARE_IFACES)
        record["stamp_inserted"] = "2026-11-26 14:%02d:00" % (self.stamp // 60 % 60)
        record["stamp_updated"] = "2026-11-26 14:%02d:%02d" % (self.stamp // 60 % 60, self.stamp % 60)
        record["packets"] = packets
        record["bytes"] = nbytes
        record["writer_id"] = "flows/%d" % (1000 + partition)
        return record

    def encode(self, record):
        """JSON text of a record: pmacct's key order mostly, sometimes shuffled; raw UTF-8 or \\u escapes."""
        items = list(record.items())
        if self.rng.random() < 0.2:
            self.rng.shuffle(items)
        separators = (", ", ": ") if self.rng.random() < 0.7 else (",", ":")
        text = json.dumps(dict(items), ensure_ascii=self.rng.random() < 0.5, separators=separators)
        return text.encode("utf-8")

    # ---- records that are not counted -----------------------------------------------------------------
    def bad_record(self, partition):
        """(bytes of one record, invalid reason). Each is invalid for exactly one reason."""
        good = self.flow_record(partition)

        def with_field(key, raw):
            fields = ['"%s": %s' % (k, json.dumps(v)) for k, v in good.items() if k != key]
            fields.insert(3, '"%s": %s' % (key, raw))
            return ("{" + ", ".join(fields) + "}").encode("utf-8")

        def without(key):
            return json.dumps({k: v for k, v in good.items() if k != key}).encode("utf-8")

        choices = [
            (lambda: json.dumps(good).encode()[:-7], "json"),  # truncated
            (lambda: b"this is not json", "json"),
            (lambda: b"[1, 2, 3]", "json"),
            (lambda: b'"purge"', "json"),
            (lambda: json.dumps(good).encode() + b" {}", "json"),  # trailing bytes
            (lambda: json.dumps(good).encode()[:-1] + b', "bytes": 5}', "json"),  # duplicate key
            (lambda: with_field("bytes", '"12"'), "type"),
            (lambda: with_field("packets", '"3"'), "type"),
            (lambda: with_field("as_src", '"15169"'), "type"),
            (lambda: with_field("bytes", "true"), "type"),
            (lambda: with_field("iface_in", '"3"'), "type"),
            (lambda: with_field("label", "42"), "type"),
            (lambda: without("bytes"), "missing"),
            (lambda: without("packets"), "missing"),
            (lambda: without("as_src"), "missing"),
            (lambda: without("as_dst"), "missing"),
            (lambda: with_field("bytes", "-5"), "range"),
            (lambda: with_field("packets", "-1"), "range"),
            (lambda: with_field("bytes", "1.5"), "range"),
            (lambda: with_field("bytes", "18446744073709551616"), "range"),
            (lambda: with_field("as_dst", "4294967296"), "range"),
            (lambda: with_field("iface_out", "-1"), "range"),
            (lambda: with_field("label", '"bad-\xff-utf8"').replace(b"\xc3\xbf", b"\xff"), "utf8"),
            (lambda: with_field("label", '"trunc-\xe9"').replace(b"\xc3\xa9", b"\xc3"), "utf8"),
            (lambda: with_field("label", '"nul\\u0000inside"'), "utf8"),
            (lambda: self.too_large(good), "too_large"),
        ]
        make, reason = self.rng.choice(choices)
        return make(), reason

    def too_large(self, record):
        padded = dict(record)
        padded["writer_id"] = "x" * (self.max_record + 64)
        return json.dumps(padded).encode("utf-8")

    def marker(self, kind, partition):
        if kind == "purge_init":
            return json.dumps({"event_type": "purge_init", "writer_id": "flows/%d" % (1000 + partition)}).encode()
        return json.dumps({"event_type": "purge_close", "writer_id": "flows/%d" % (1000 + partition),
                           "purged_entries": 8, "total_entries": 8, "duration": 0}).encode()

    # ---- messages ------------------------------------------------------------------------------------
    def message(self, partition, chunk, index):
        """(bytes, summary). A message is one record, or several joined by '\\n' (kafka_multi_values)."""
        rng = self.rng
        series = {}
        kinds = {k: 0 for k in KINDS}
        lines = []

        def add_good(record):
            lines.append(self.encode(record))
            kinds["flow"] += 1
            direction = direction_of(record, self.local)
            if direction is None:
                kinds["not_local"] += 1
                return
            key = (direction, series_labels(record, self.names))
            total = series.setdefault(key, [0, 0])
            total[0] += record["bytes"]
            total[1] += record["packets"]

        def add_bad():
            raw, reason = self.bad_record(partition)
            lines.append(raw)
            kinds[reason] += 1

        shape = rng.random()
        if index == 0 and partition == 0:
            # One record with the largest byte count, in a series of its own (no sum can overflow).
            record = self.flow_record(partition)
            record["label"] = "huge-c%d" % chunk
            record["as_src"] = sorted(self.local)[0]
            record["bytes"] = U64_MAX
            record["packets"] = (1 << 63) + 11
            add_good(record)
            text = lines[0]
        elif shape < 0.06:
            kind = rng.choice(["purge_init", "purge_close"])
            lines.append(self.marker(kind, partition))
            kinds["marker"] += 1
            text = lines[0]
        elif shape < 0.08:
            lines.append(json.dumps({"event_type": "trigger", "writer_id": "x"}).encode())
            kinds["other_event"] += 1
            text = lines[0]
        elif shape < 0.40:
            if rng.random() < 0.15:
                add_bad()
            else:
                add_good(self.flow_record(partition))
            text = lines[0] + (b"\n" if rng.random() < 0.3 else b"")
        else:
            # kafka_multi_values: records separated by '\n', a trailing '\n', bad ones in between.
            for _ in range(rng.randrange(2, 12)):
                if rng.random() < 0.12:
                    add_bad()
                else:
                    add_good(self.flow_record(partition))
                if rng.random() < 0.05:
                    lines.append(b"")  # a blank line is no record
            text = b"\n".join(lines) + b"\n"
        assert SEPARATOR not in text
        summary = {
            "chunk": chunk,
            "series": [[d, [list(p) for p in labels], b, p] for (d, labels), (b, p) in sorted(series.items())],
            "kinds": {k: v for k, v in kinds.items() if v},
        }
        return text, summary


def write_names(path, names):
    with open(path, "w", encoding="utf-8") as out:
        for asn in sorted(names):
            out.write("%d\t%s, %s\n" % (asn, names[asn], "US" if asn % 2 else "ZZ"))
        out.write("not a line of asn.txt\n")  # skipped by the parser


def cmd_gen(args):
    local = {int(a) for a in args.local.split(",")}
    gen = Generator(args.seed, local, args.max_record, args.host_per_partition)
    os.makedirs(args.out, exist_ok=True)
    write_names(os.path.join(args.out, "asn.txt"), gen.names)
    partitions = [[] for _ in range(args.partitions)]
    for chunk in range(args.chunks):
        for p in range(args.partitions):
            texts = []
            for i in range(args.messages):
                text, summary = gen.message(p, chunk, i)
                texts.append(text)
                partitions[p].append(summary)
            with open(os.path.join(args.out, "chunk%d.p%d.msg" % (chunk, p)), "wb") as out:
                out.write(SEPARATOR.join(texts))
    manifest = {
        "seed": args.seed,
        "local": sorted(local),
        "names": {str(k): v for k, v in gen.names.items()},
        "partitions": partitions,
        "chunks": args.chunks,
        "messages_per_chunk": args.messages,
    }
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as out:
        json.dump(manifest, out)
    return 0


def parse_offsets(text, n_partitions, default):
    offsets = [default] * n_partitions
    if not text:
        return offsets
    for item in text.replace(",", " ").split():
        name, _, value = item.partition("=")
        if not name.startswith("p") or not value:
            raise SystemExit("flows.py: bad offset %r (want pN=OFFSET)" % item)
        offsets[int(name[1:])] = int(value)
    return offsets


def selected(manifest, args):
    n = len(manifest["partitions"])
    start = parse_offsets(args.from_offsets, n, 0)
    # A committed offset of -1001 (none) means the consumer starts at the beginning here.
    start = [0 if s < 0 else s for s in start]
    until = parse_offsets(args.until, n, 1 << 62)
    chunks = None if not args.chunks else {int(c) for c in args.chunks.split(",")}
    for p, messages in enumerate(manifest["partitions"]):
        for offset, message in enumerate(messages):
            if offset < start[p] or offset >= until[p]:
                continue
            if chunks is not None and message["chunk"] not in chunks:
                continue
            yield p, offset, message


def add_message(totals, message):
    for direction, labels, nbytes, packets in message["series"]:
        key = (direction, tuple(tuple(p) for p in labels))
        total = totals.setdefault(key, [0, 0])
        total[0] += nbytes
        total[1] += packets


def samples(totals):
    """{(metric name, labels tuple): value} of a series table."""
    out = {}
    for (direction, labels), (nbytes, packets) in totals.items():
        out[(FAMILIES[(direction, "bytes")], labels)] = nbytes
        out[(FAMILIES[(direction, "packets")], labels)] = packets
    return out


def escape(value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_samples(table):
    lines = []
    for (name, labels), value in sorted(table.items()):
        body = ",".join('%s="%s"' % (k, escape(v)) for k, v in labels)
        lines.append("%s{%s} %d\n" % (name, body, value))
    return "".join(lines)


def cmd_expect(args):
    with open(args.manifest, encoding="utf-8") as f:
        manifest = json.load(f)
    totals = {}
    counts = {k: 0 for k in KINDS}
    n_messages = 0
    for _, _, message in selected(manifest, args):
        add_message(totals, message)
        for kind, n in message["kinds"].items():
            counts[kind] += n
        n_messages += 1
    for (direction, _), (nbytes, packets) in totals.items():
        if nbytes > U64_MAX or packets > U64_MAX:
            raise SystemExit("flows.py: a series overflows uint64; the generated set is unusable")
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(format_samples(samples(totals)))
    if args.counts_out:
        counts["messages"] = n_messages
        counts["invalid"] = sum(counts[r] for r in INVALID_REASONS)
        with open(args.counts_out, "w", encoding="utf-8") as out:
            json.dump(counts, out, indent=1, sort_keys=True)
    return 0


def cmd_prefix(args):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import metrics  # noqa: E402  (the sibling module)

    with open(args.manifest, encoding="utf-8") as f:
        manifest = json.load(f)
    with open(args.metrics, encoding="utf-8", errors="surrogateescape") as f:
        actual = metrics.flow_samples(metrics.parse(f.read()))
    claimed = set()
    ranges = []
    ok = True
    for p, messages in enumerate(manifest["partitions"]):
        keys = set()
        for message in messages:
            for name_labels in samples({(d, tuple(tuple(x) for x in labels)): [0, 0]
                                        for d, labels, _, _ in message["series"]}):
                keys.add(name_labels)
        claimed |= keys
        wanted = {k: v for k, v in actual.items() if k in keys}
        totals = {}
        matches = [0] if not wanted else []
        for count, message in enumerate(messages, start=1):
            add_message(totals, message)
            if samples(totals) == wanted:
                matches.append(count)
        if not matches:
            print("p%d: the counters are not the sum of any prefix of the partition" % p, file=sys.stderr)
            ok = False
            ranges.append("p%d=?" % p)
        else:
            ranges.append("p%d=%d-%d" % (p, matches[0], matches[-1]))
    stray = set(actual) - claimed
    if stray:
        print("series from no partition: %s" % sorted(stray)[:5], file=sys.stderr)
        ok = False
    print(" ".join(ranges))
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("gen")
    gen.add_argument("--out", required=True)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--partitions", type=int, default=4)
    gen.add_argument("--chunks", type=int, default=1)
    gen.add_argument("--messages", type=int, default=200, help="messages per chunk and partition")
    gen.add_argument("--local", default=DEFAULT_LOCAL)
    gen.add_argument("--max-record", type=int, default=65536, help="the exporter's --max-record-bytes")
    gen.add_argument("--host-per-partition", action="store_true")
    expect = sub.add_parser("expect")
    expect.add_argument("--manifest", required=True)
    expect.add_argument("--from", dest="from_offsets", default="")
    expect.add_argument("--until", default="")
    expect.add_argument("--chunks", default="")
    expect.add_argument("--out", required=True)
    expect.add_argument("--counts-out")
    prefix = sub.add_parser("prefix")
    prefix.add_argument("--manifest", required=True)
    prefix.add_argument("--metrics", required=True)
    args = parser.parse_args()
    return {"gen": cmd_gen, "expect": cmd_expect, "prefix": cmd_prefix}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
