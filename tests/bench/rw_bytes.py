#!/usr/bin/python3
"""rw_bytes.py: where the bytes of one compressed remote-write request go.

    FX_BENCH_RW_DUMP=/tmp/req bench_output --series 100000 --runs 1 --only rw,rw2
    tests/bench/rw_bytes.py /tmp/req.v2.snappy [/tmp/req.v1.snappy]

Decompresses the snappy block by hand (so that every output byte is known to come from a literal or a
copy), walks the protobuf of a remote write 2.0 Request (or 1.0 WriteRequest, told apart by the field
numbers) and prints, per kind of field, the bytes before compression, the bytes snappy left as literals
and the compressed bytes charged to it (a literal costs its bytes, a copy element its 1-5 bytes shared
over the fields it covers). Only the standard library: no snappy or protobuf module needed.
"""
import collections
import sys


def varint(data, i):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def unsnappy(data):
    """Returns (raw bytes, cost): cost[k] is the compressed bytes charged to output byte k."""
    length, i = varint(data, 0)
    out = bytearray()
    cost = []
    literal = []
    while i < len(data):
        tag = data[i]
        kind = tag & 3
        if kind == 0:
            n = tag >> 2
            head = 1
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(data[i + 1:i + 1 + extra], "little")
                head += extra
            n += 1
            i += head
            out += data[i:i + n]
            cost += [1.0 + head / n] * n
            literal += [True] * n
            i += n
            continue
        if kind == 1:
            n = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | data[i + 1]
            size = 2
        elif kind == 2:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[i + 1:i + 3], "little")
            size = 3
        else:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[i + 1:i + 5], "little")
            size = 5
        i += size
        for _ in range(n):
            out.append(out[-offset])
        cost += [size / n] * n
        literal += [False] * n
    assert len(out) == length, (len(out), length)
    return bytes(out), cost, literal


def fields(data, start, end):
    i = start
    while i < end:
        key, j = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, k = varint(data, j)
            yield number, wire, i, j, k
        elif wire == 1:
            yield number, wire, i, j, j + 8
            k = j + 8
        elif wire == 2:
            n, j = varint(data, j)
            k = j + n
            yield number, wire, i, j, k
        elif wire == 5:
            k = j + 4
            yield number, wire, i, j, k
        else:
            raise ValueError("wire type %d at %d" % (wire, i))
        i = k


def classify(raw):
    """kind[k] for every raw byte k: which field (or framing of it) the byte belongs to."""
    kind = ["?"] * len(raw)

    def mark(a, b, what):
        for k in range(a, b):
            kind[k] = what

    numbers = {number for number, *_ in fields(raw, 0, len(raw))}
    v2 = 4 in numbers or 5 in numbers
    for number, wire, tag, body, end in fields(raw, 0, len(raw)):
        mark(tag, body, "framing")
        if v2 and number == 4:
            mark(body, end, "symbols")
        elif (v2 and number == 5) or (not v2 and number == 1):
            for n2, _, t2, b2, e2 in fields(raw, body, end):
                mark(t2, b2, "framing")
                if v2 and n2 == 1:
                    mark(b2, e2, "label refs")
                elif not v2 and n2 == 1:  # Label
                    for n3, _, t3, b3, e3 in fields(raw, b2, e2):
                        mark(t3, b3, "framing")
                        mark(b3, e3, "label names" if n3 == 1 else "label values")
                elif n2 == 2:  # Sample
                    for n3, _, t3, b3, e3 in fields(raw, b2, e2):
                        mark(t3, b3, "framing")
                        mark(b3, e3, {1: "value", 2: "timestamp", 3: "start timestamp"}.get(n3, "?"))
                elif v2 and n2 == 5:
                    mark(b2, e2, "metadata")
                else:
                    mark(b2, e2, "other")
        else:
            mark(body, end, "other")
    return kind, v2


def report(path):
    data = open(path, "rb").read()
    raw, cost, literal = unsnappy(data)
    kind, v2 = classify(raw)
    series = sum(1 for number, *_ in fields(raw, 0, len(raw)) if number == (5 if v2 else 1))
    rows = collections.OrderedDict()
    for k, what in enumerate(kind):
        row = rows.setdefault(what, [0, 0, 0.0])
        row[0] += 1
        row[1] += literal[k]
        row[2] += cost[k]
    print("%s: %s, %d TimeSeries, %d bytes raw, %d compressed (%.2f B/sample)" %
          (path, "2.0" if v2 else "1.0", series, len(raw), len(data), len(data) / max(series, 1)))
    print("  %-16s %12s %12s %12s %10s" % ("field", "raw B/ser", "literal B/ser", "cost B/ser", "cost %"))
    for what, (n, lit, c) in sorted(rows.items(), key=lambda r: -r[1][2]):
        print("  %-16s %12.2f %12.2f %12.2f %9.1f%%" % (what, n / series, lit / series, c / series,
                                                     100 * c / len(data)))


for path in sys.argv[1:]:
    report(path)
