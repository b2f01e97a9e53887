#!/usr/bin/env python3
"""Charts our benchmark results against the fastest peer, per op and data size.

Reads result files of ../shared/bench/run-peers.sh (JSON lines, one object per peer and op,
WORKLOAD.md section 4) and writes

- an SVG bar chart (--svg): for every op, ours / fastest peer, one bar per data size N, with
  reference lines at 1.0 (parity) and at 1/3;
- a Markdown table on stdout: per op, our median at each N, our growth from the smallest N,
  the fastest peer's growth, and ours / fastest at each N.

Usage:
    python3 bench/chart.py results/n20000.jsonl results/n100000.jsonl --svg docs/bench-ratios.svg

Rules, the same as the README's benchmark tables (tools/compare.py checks the answers but
does not pick a fastest peer, so this file carries its own copy of that check):

- "ours" is --ours (default datahike-rs-file). Candidates for the fastest peer are the peers
  that are not ours (no datahike-rs-* peer) and answered the op correctly: result_count and
  check as in data/n<N>/expected.json when it is found (--data-root, else data/ beside the
  result file's folder, as run-peers.sh lays them out), else as most peers answered.
  Datalevin 1.2.8's wrong rule-depth answer (WORKLOAD.md) is excluded by this rule.
  Timeouts and errors are no candidates.
- tx-small is compared like with like: ours (durable) with the peers whose line says
  "durable": true; a second row, "tx-small (non-durable)", puts --ours-mem (default
  datahike-rs-mem) beside the peers that do not sync.
- Within one file a later line for the same (peer, op, N) wins, as in compare.py. When
  several files hold the same N (several runs), each (peer, op, N) gets the median of the
  runs' medians, and the table's caption says so.

Only the Python standard library is used.
"""
import argparse
import json
import math
import os
import statistics
import sys
from collections import Counter, defaultdict
from xml.sax.saxutils import escape

# The op order of tools/compare.py, then ops of this runner that the peers do not run.
OP_ORDER = [
    "load-bulk", "load-chunked", "q1", "q2", "q3", "q4", "qpred", "qpred-join", "qagg",
    "rule-hops", "rule-depth", "rule-reach", "pull-wildcard", "pull-nested",
    "lookup-email", "datoms-eavt", "tx-small",
]
# Lines that are not timings of an op (probes, byte counts, run-peers' failure markers).
NOT_TIMED = ("fsync-raw", "fsync-raw-append", "commit-bytes", "_run")
LIKE_WITH_LIKE = {"tx-small"}
NON_DURABLE_ROW = "tx-small (non-durable)"
COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2"]


def fmt_ms(x):
    if x is None:
        return "—"
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    if x >= 1:
        return "%.2f" % x
    return "%.3f" % x


def fmt_ratio(x):
    if x is None:
        return "—"
    return "%.2f" % x if x < 10 else "%.0f" % x


def fmt_growth(x):
    if x is None:
        return "—"
    return "×%.1f" % x if x < 100 else "×%.0f" % x


def plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def fmt_n(n):
    return "{:,}".format(n)


def read_runs(paths):
    """{n: [ {(peer, op): line}, ... one dict per file holding n ]} and each file's folder."""
    runs = defaultdict(list)
    folders = defaultdict(list)
    for path in paths:
        per_n = defaultdict(dict)
        with open(path, encoding="utf-8") as f:
            for text in f:
                text = text.strip()
                if not text.startswith("{"):
                    continue
                line = json.loads(text)
                if "op" not in line or "peer" not in line or "n" not in line:
                    continue  # run-peers' .env.jsonl lines
                per_n[line["n"]][(line["peer"], line["op"])] = line
        for n, cells in per_n.items():
            runs[n].append(cells)
            folders[n].append(os.path.dirname(os.path.abspath(path)))
    return runs, folders


def load_expected(n, data_root, folders):
    candidates = []
    if data_root:
        candidates.append(os.path.join(data_root, "n%d" % n, "expected.json"))
    candidates += [os.path.join(folder, "..", "data", "n%d" % n, "expected.json") for folder in folders]
    for path in candidates:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f), os.path.normpath(path)
    return None, None


def answered(line):
    return line is not None and not line.get("error") and line.get("timeout_s") is None \
        and isinstance(line.get("median_ms"), (int, float))


def wrong_answers(cells, expected):
    """{(peer, op)} whose result_count or check is wrong: against expected.json if given, else
    against the answer most peers gave for the op."""
    wrong = set()
    by_op = defaultdict(list)
    for (peer, op), line in cells.items():
        if answered(line):
            by_op[op].append((peer, line))
    for op, lines in by_op.items():
        if expected is not None:
            exp = expected.get(op, {})
            for peer, line in lines:
                ck = line.get("check")
                if "result_count" in exp and line.get("result_count") != exp["result_count"]:
                    wrong.add((peer, op))
                if ck is not None and "check" in exp and ck != exp["check"]:
                    wrong.add((peer, op))
        else:
            votes = Counter((line.get("result_count"), line.get("check")) for _, line in lines)
            if len(votes) > 1:
                (top, count), = votes.most_common(1)
                if count > len(lines) / 2:
                    for peer, line in lines:
                        if (line.get("result_count"), line.get("check")) != top:
                            wrong.add((peer, op))
    return wrong


def is_ours(peer):
    return peer.startswith("datahike-rs")


def combine(runs, data_root, folders, field):
    """Per n: {(peer, op): value} (median over the runs), the durable flag of each (peer, op),
    the wrong (peer, op) pairs, where expected answers came from, and the number of runs."""
    out = {}
    for n, files in runs.items():
        expected, source = load_expected(n, data_root, folders[n])
        values = defaultdict(list)
        durable = {}
        wrong = set()
        for cells in files:
            wrong |= wrong_answers(cells, expected)
            for key, line in cells.items():
                if key[1] in NOT_TIMED or not answered(line):
                    continue
                value = line.get(field)
                if isinstance(value, (int, float)):
                    values[key].append(float(value))
                    durable[key] = bool(line.get("durable"))
        medians = {key: statistics.median(v) for key, v in values.items()}
        peer_runs = Counter(peer for cells in files for peer in {p for (p, _) in cells})
        out[n] = {"values": medians, "durable": durable, "wrong": wrong, "expected": source, "runs": len(files),
                  "peer_runs": peer_runs}
    return out


def rows_of(data, ours, ours_mem):
    """[(row name, op, our peer, like with like?)]: the ops present, in compare.py's order."""
    ops = set()
    for d in data.values():
        ops |= {op for (_, op) in d["values"]}
    ordered = [o for o in OP_ORDER if o in ops] + sorted(ops - set(OP_ORDER))
    rows = []
    for op in ordered:
        if op in LIKE_WITH_LIKE:
            rows.append((op, op, ours, True))
            if ours_mem != ours and any((ours_mem, op) in d["values"] for d in data.values()):
                rows.append((NON_DURABLE_ROW, op, ours_mem, True))
        else:
            rows.append((op, op, ours, False))
    return rows


def fastest(d, op, durable, exclude):
    """(peer, value) of the fastest correct peer for op that is not in exclude nor one of ours,
    and whose durable flag is durable unless that is None; or None."""
    best = None
    for (peer, o), value in d["values"].items():
        if o != op or is_ours(peer) or peer in exclude or (peer, op) in d["wrong"]:
            continue
        if durable is not None and d["durable"].get((peer, op)) != durable:
            continue
        if best is None or value < best[1]:
            best = (peer, value)
    return best


def analyse(data, ours, ours_mem):
    """Per row: {n: (ours value, ours wrong?, fastest (peer, value) or None, ratio or None)}."""
    table = []
    for name, op, peer, like_with_like in rows_of(data, ours, ours_mem):
        cells = {}
        for n, d in data.items():
            mine = d["values"].get((peer, op))
            durable = d["durable"].get((peer, op), True) if like_with_like else None
            best = fastest(d, op, durable, {ours, ours_mem})
            ratio = mine / best[1] if mine is not None and best and best[1] > 0 else None
            cells[n] = (mine, (peer, op) in d["wrong"], best, ratio)
        if any(c[0] is not None for c in cells.values()):
            table.append((name, cells))
    return table


def markdown(table, data, ours, field):
    sizes = sorted(data)
    n0 = sizes[0]
    larger = sizes[1:]
    lines = []
    runs = {n: data[n]["runs"] for n in sizes}
    caption = "**%s against the fastest peer** (%s; N = %s)" % (
        ours, field, ", ".join(fmt_n(n) for n in sizes))
    if any(r > 1 for r in runs.values()):
        caption += (". Several result files per size: each (peer, op, N) is the median of the medians of "
                    "the runs that have it (%s)") % "; ".join(
            "N = %s: %s, %s in %d" % (fmt_n(n), plural(runs[n], "file"), ours, data[n]["peer_runs"][ours])
            for n in sizes)
    else:
        caption += ", one run per size"
    lines.append(caption + ".")
    lines.append("")
    notes = [
        "Growth is the time at N over the time at N = %s (the data grows %s)." % (
            fmt_n(n0), ", ".join("×%g" % (n / n0) for n in larger) if larger else "not at all: one size"),
        "Fastest peer: the fastest correct answer among the peers that are not datahike-rs; the "
        "fastest peer's growth compares the fastest times, whichever peer gave them.",
        "tx-small is compared like with like: ours (durable) with the peers that sync, \"%s\" "
        "the memory backend with those that do not." % NON_DURABLE_ROW,
    ]
    for n in sizes:
        excluded = sorted(p for p in data[n]["wrong"] if not is_ours(p[0]))
        source = data[n]["expected"] or "the majority answer of the peers (no expected.json found)"
        line = "N = %s: answers checked against %s" % (fmt_n(n), source)
        if excluded:
            line += "; excluded as wrong: " + ", ".join("%s %s" % (peer, op) for peer, op in excluded)
        notes.append(line + ".")
    lines.extend("- " + x for x in notes)
    lines.append("")
    head = ["op"]
    head += ["ours ms N=%s" % fmt_n(n) for n in sizes]
    head += ["ours growth %s" % fmt_n(n) for n in larger]
    head += ["fastest peer N=%s" % fmt_n(n) for n in sizes]
    head += ["fastest growth %s" % fmt_n(n) for n in larger]
    head += ["ours / fastest N=%s" % fmt_n(n) for n in sizes]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|" + "---:|" * (len(head) - 1))
    for name, cells in table:
        mine0, _, best0, _ = cells.get(n0, (None, False, None, None))
        row = [name]
        for n in sizes:
            mine, wrong, _, _ = cells.get(n, (None, False, None, None))
            row.append(fmt_ms(mine) + (" WRONG" if wrong else ""))
        for n in larger:
            mine = cells.get(n, (None,))[0]
            row.append(fmt_growth(mine / mine0 if mine is not None and mine0 else None))
        for n in sizes:
            best = cells.get(n, (None, False, None, None))[2]
            row.append("%s %s" % (best[0], fmt_ms(best[1])) if best else "—")
        for n in larger:
            best = cells.get(n, (None, False, None, None))[2]
            row.append(fmt_growth(best[1] / best0[1] if best and best0 and best0[1] else None))
        for n in sizes:
            row.append(fmt_ratio(cells.get(n, (None, False, None, None))[3]))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def nice_ticks(lo, hi, log):
    if log:
        ticks = []
        e = math.floor(math.log10(lo))
        while 10 ** e <= hi * 1.0001:
            for m in (1, 2, 5):
                t = m * 10 ** e
                if lo * 0.9999 <= t <= hi * 1.0001:
                    ticks.append(t)
            e += 1
        return ticks
    step = 10 ** math.floor(math.log10(hi / 5)) if hi > 0 else 0.1
    for m in (1, 2, 2.5, 5, 10):
        if hi / (step * m) <= 8:
            step *= m
            break
    return [i * step for i in range(int(hi / step) + 2) if i * step <= hi * 1.0001]


def svg(table, data, ours, field):
    sizes = sorted(data)
    ratios = [c[3] for _, cells in table for c in cells.values() if c[3] is not None]
    bars = [(name, cells) for name, cells in table if any(c[3] is not None for c in cells.values())]
    if not bars:
        raise SystemExit("chart.py: no op has both our time and a peer's; nothing to chart")
    lo = min(ratios + [1 / 3])
    hi = max(ratios + [1.0])
    log = hi / lo > 8
    if log:
        # Widen to the next third of a decade below, and by two thirds above for the labels.
        lo = 10 ** (math.floor(math.log10(lo) * 3 - 0.01) / 3)
        hi = 10 ** (math.ceil(math.log10(hi) * 3 + 0.01) / 3 + 0.34)
    else:
        lo, hi = 0.0, hi * 1.15
    bar_w, bar_gap, group_gap = 16, 2, 18
    group_w = len(sizes) * (bar_w + bar_gap) - bar_gap
    left, right, top, bottom = 70, 70, 76, 130
    plot_h = 360
    plot_w = len(bars) * (group_w + group_gap) + group_gap
    width, height = left + plot_w + right, top + plot_h + bottom

    def y(v):
        if log:
            return top + plot_h * (math.log10(hi) - math.log10(v)) / (math.log10(hi) - math.log10(lo))
        return top + plot_h * (hi - v) / (hi - lo)

    out = []
    add = out.append
    add('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">' % (width, height, width, height))
    add('<rect width="100%" height="100%" fill="white"/>')
    runs = {n: data[n]["runs"] for n in sizes}
    title = "%s / fastest peer, %s" % (ours, field)
    sub = "below 1.0 we are faster; %s scale%s; tx-small like with like (durable with durable); %s" % (
        "log" if log else "linear", ", bars start at 1.0" if log else "",
        "medians of several runs' medians" if any(r > 1 for r in runs.values()) else "one run per size")
    add('<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>' % (left, escape(title)))
    add('<text x="%d" y="44" fill="#444">%s</text>' % (left, escape(sub)))
    # Legend: one colour per N.
    x = left
    for i, n in enumerate(sizes):
        add('<rect x="%d" y="54" width="12" height="12" fill="%s"/>' % (x, COLORS[i % len(COLORS)]))
        label = "N = %s" % fmt_n(n) + (" (%s)" % plural(runs[n], "file") if runs[n] > 1 else "")
        add('<text x="%d" y="64">%s</text>' % (x + 16, escape(label)))
        x += 24 + 7 * len(label)
    # Grid and axis.
    for t in nice_ticks(lo if log else 0.0, hi, log):
        ty = y(t)
        add('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/>' % (left, left + plot_w, ty, ty))
        add('<text x="%d" y="%.1f" text-anchor="end" fill="#444">%s</text>' % (left - 6, ty + 4, "%g" % t))
    add('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#888"/>' % (left, left, top, top + plot_h))
    add('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#888"/>' % (left, left + plot_w, top + plot_h, top + plot_h))
    add('<text transform="translate(18 %d) rotate(-90)" text-anchor="middle" fill="#444">'
        'ours / fastest peer</text>' % (top + plot_h / 2))
    base = y(1.0) if log else y(0.0)
    labels = []  # drawn last, over the reference lines
    for g, (name, cells) in enumerate(bars):
        gx = left + group_gap + g * (group_w + group_gap)
        for i, n in enumerate(sizes):
            mine, wrong, best, ratio = cells.get(n, (None, False, None, None))
            x = gx + i * (bar_w + bar_gap)
            if ratio is None:
                add('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#999">–</text>' % (x + bar_w / 2, base - 3))
                continue
            ry = y(min(max(ratio, lo), hi))
            y0, y1 = min(ry, base), max(ry, base)
            tip = "%s, N = %s: ours %s ms, fastest %s %s ms, ratio %s%s" % (
                name, fmt_n(n), fmt_ms(mine), best[0], fmt_ms(best[1]), fmt_ratio(ratio),
                " (our answer is WRONG)" if wrong else "")
            add('<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"%s><title>%s</title></rect>' % (
                x, y0, bar_w, max(y1 - y0, 1), COLORS[i % len(COLORS)],
                ' stroke="#d00" stroke-width="2"' if wrong else "", escape(tip)))
            label_y = y0 - 4 if ry <= base else y1 + 4
            labels.append('<text transform="translate(%.1f %.1f) rotate(-90)" font-size="9" fill="#333" stroke="white" '
                'stroke-width="3" paint-order="stroke" text-anchor="%s" dominant-baseline="middle">%s</text>' % (
                    x + bar_w / 2, label_y, "start" if ry <= base else "end", fmt_ratio(ratio)))
        add('<text transform="translate(%.1f %d) rotate(-40)" text-anchor="end">%s</text>' % (
            gx + group_w / 2 + 4, top + plot_h + 14, escape(name)))
    # Reference lines over the bars.
    for value, label in ((1.0, "1.0"), (1 / 3, "1/3")):
        if lo <= value <= hi:
            ry = y(value)
            add('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>'
                % (left, left + plot_w, ry, ry, "#c00" if value == 1.0 else "#080"))
            add('<text x="%d" y="%.1f" font-size="11" fill="%s">%s</text>' % (
                left + plot_w + 4, ry + 4, "#c00" if value == 1.0 else "#080", label))
    out.extend(labels)
    add("</svg>")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="result files of run-peers.sh (JSON lines)")
    ap.add_argument("--svg", help="write the bar chart here")
    ap.add_argument("--ours", default="datahike-rs-file", help="our peer (default datahike-rs-file)")
    ap.add_argument("--ours-mem", default="datahike-rs-mem",
                    help="our peer for the non-durable tx-small row (default datahike-rs-mem)")
    ap.add_argument("--data-root", help="folder of data/n<N>/expected.json (default: data/ beside the results' folder)")
    ap.add_argument("--field", default="median_ms", help="median_ms | min_ms | max_ms | first_ms")
    args = ap.parse_args(argv)
    runs, folders = read_runs(args.files)
    if not runs:
        raise SystemExit("chart.py: no result lines in %s" % ", ".join(args.files))
    data = combine(runs, args.data_root, folders, args.field)
    table = analyse(data, args.ours, args.ours_mem)
    if not table:
        raise SystemExit("chart.py: no line of peer %s in the files" % args.ours)
    print(markdown(table, data, args.ours, args.field))
    if args.svg:
        os.makedirs(os.path.dirname(os.path.abspath(args.svg)), exist_ok=True)
        with open(args.svg, "w", encoding="utf-8") as f:
            f.write(svg(table, data, args.ours, args.field))
    return 0


if __name__ == "__main__":
    sys.exit(main())
