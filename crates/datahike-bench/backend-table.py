#!/usr/bin/env python3
"""The README's backend table from the JSON lines of run-backends.sh."""
import collections
import json
import sys


def fmt(x):
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def main(path):
    rows = collections.OrderedDict()
    for line in open(path):
        d = json.loads(line)
        row = rows.setdefault(d["peer"].replace("datahike-rs-", ""), {})
        if d["op"] == "connect-cold":
            row.setdefault("connect", []).append(d["median_ms"])
        else:
            row[d["op"]] = d
    print("| backend | load-bulk ms | durable tx/s | q1 ms | q2 ms | q4 ms | lookup-email ms "
          "| q2 cold ms | connect ms | readers 1 / 2 / 4 (q2/s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        def median(op):
            return row.get(op, {}).get("median_ms")
        tx = median("tx-small")
        tx_per_s = f"{1000 / (tx / 1000):.0f}" if tx else "—"
        connect = sorted(row.get("connect", []))
        readers = " / ".join(
            str(int(row[op]["queries_per_s"])) if op in row else "—"
            for op in ("readers-1", "readers-2", "readers-4"))
        print(f"| {name} | {fmt(median('load-bulk'))} | {tx_per_s} | {fmt(median('q1'))} "
              f"| {fmt(median('q2'))} | {fmt(median('q4'))} | {fmt(median('lookup-email'))} "
              f"| {fmt(median('q2-cold'))} | {fmt(connect[len(connect) // 2] if connect else None)} | {readers} |")


if __name__ == "__main__":
    main(sys.argv[1])
