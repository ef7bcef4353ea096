#!/usr/bin/python3
"""Operations on expectation files (flows.py expect output, Prometheus text of flow series).

    expect_ops.py keep LABELS IN OUT
        Drops every label not in LABELS (comma-separated) and adds up the series that become equal: what
        the exporter must show with --labels=LABELS.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics  # noqa: E402


def write(table, path):
    with open(path, "w", encoding="utf-8") as out:
        for key in sorted(table):
            out.write("%s %s\n" % (metrics.format_key(key), table[key]))


def keep(labels, source, path):
    kept = set(labels.split(","))
    table = {}
    for (name, pairs), value in metrics.flow_samples(metrics.parse(metrics.read(source))).items():
        key = (name, tuple((k, v) for k, v in pairs if k in kept))
        table[key] = table.get(key, 0) + value
    write(table, path)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "keep":
        keep(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
