#!/usr/bin/env python3
"""Per-kernel device time of one decode step, from ncu's raw CSV.

Input: `ncu --csv --page raw --metrics gpu__time_duration.sum ...` over
decode steps only (bench_gpu --profile-decode under ncu --profile-from-start
off; decode_kernels.sh does both). A step starts at its embedding kernel;
the last complete step is summed per (kernel, grid, block), largest first.
Standard library only.
  python3 bench/gpu/ncu_step_breakdown.py ncu.csv
"""
import csv
import re
import sys


def load(path):
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own log lines are not CSV
    rows = csv.reader(lines)
    try:
        hdr = next(rows)
        next(rows)  # units
    except StopIteration:
        sys.exit(f"{path}: no ncu CSV rows (did ncu profile any kernel?)")
    for col in ("Kernel Name", "gpu__time_duration.sum", "Grid Size", "Block Size"):
        if col not in hdr:
            sys.exit(f"{path}: column '{col}' missing (run ncu with --csv --page raw "
                     "--metrics gpu__time_duration.sum)")
    ki, ti = hdr.index("Kernel Name"), hdr.index("gpu__time_duration.sum")
    gi, bi = hdr.index("Grid Size"), hdr.index("Block Size")
    out = []
    for n, r in enumerate(rows, start=3):
        if len(r) <= max(ki, ti, gi, bi):
            sys.exit(f"{path}: CSV row {n} has {len(r)} fields")
        name = re.sub(r"\(.*", "", r[ki])
        name = re.sub(r"void |<unnamed>::|\(anonymous namespace\)::", "", name)
        try:
            ns = float(r[ti].replace(",", ""))
        except ValueError:
            sys.exit(f"{path}: CSV row {n}: duration '{r[ti]}' is not a number")
        out.append((name, ns / 1000.0, r[gi], r[bi]))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ncu_step_breakdown.py NCU_RAW.csv")
    rows = load(sys.argv[1])
    starts = [i for i, r in enumerate(rows) if r[0].startswith("embed")]
    if len(starts) < 2:
        sys.exit(f"{sys.argv[1]}: {len(rows)} launches, {len(starts)} step starts "
                 "(embed kernels): need a complete step between two starts")
    step = rows[starts[-2]:starts[-1]]
    total = sum(r[1] for r in step)
    agg = {}
    for name, us, grid, block in step:
        a = agg.setdefault((name, grid, block), [0, 0.0])
        a[0] += 1
        a[1] += us
    print(f"{len(rows)} launches, {len(starts)} step starts; the last complete step: "
          f"{len(step)} kernels, {total:.1f} us of kernel time")
    print("| kernel | grid | block | launches | us each | us per step | share |")
    print("|---|---|---|---|---|---|---|")
    for (name, grid, block), (c, us) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print(f"| {name} | {grid} | {block} | {c} | {us / c:.2f} | {us:.1f} | "
              f"{100 * us / total:.0f}% |")


if __name__ == "__main__":
    main()
