#!/usr/bin/env python3
"""Draws bench/run.sh's results: the large and small workloads side by side, one bar per store.

    python3 bench/plot.py RESULTS_DIR RUNS OUT.png

Reads RESULTS_DIR/{dd,server,cluster,garage}-{1..RUNS}.jsonl, the files run.sh's report reads,
and plots the median of each figure over the runs; dd's write is the physical reference line.
Stores and figures that are missing are left out. Needs matplotlib.
"""
import json
import os
import statistics
import sys
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

STORES = {"server": "cairn server", "cluster": "cluster R=2", "garage": "Garage"}
PANELS = [  # workload, unit, figure suffix, figures
    ("large", "MiB/s", "_mib_s", ["put", "multipart_put", "get", "ranged_get"]),
    ("small", "ops/s", "_ops_s", ["put", "get", "delete"]),
]


def load(results, runs):
    """target -> workload -> field -> [value per run]"""
    data = {}
    for target in ["dd", *STORES]:
        for run in range(1, runs + 1):
            path = os.path.join(results, f"{target}-{run}.jsonl")
            if not os.path.exists(path):
                continue
            with open(path) as f:
                for line in filter(str.strip, f):
                    record = json.loads(line)
                    fields = data.setdefault(target, {}).setdefault(record.pop("workload"), {})
                    for name, value in record.items():
                        fields.setdefault(name, []).append(value)
    return data


def median(data, target, workload, field):
    values = [v for v in data.get(target, {}).get(workload, {}).get(field, []) if v is not None]
    return statistics.median(values) if values else None


def draw(ax, data, workload, unit, suffix, names):
    def value(store, name):
        return median(data, store, workload, name + suffix)

    stores = [s for s in STORES if any(value(s, n) is not None for n in names)]
    names = [n for n in names if any(value(s, n) is not None for s in stores)]
    ax.set_title(f"{workload} ({unit}, higher is better)")
    ax.set_ylabel(unit)
    if not names:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    width = 0.8 / max(len(stores), 1)
    for i, store in enumerate(stores):
        offset = (i - (len(stores) - 1) / 2) * width
        points = [(x + offset, value(store, n)) for x, n in enumerate(names)]
        points = [(x, v) for x, v in points if v is not None]
        bars = ax.bar([x for x, _ in points], [v for _, v in points], width, label=STORES[store])
        ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=2)
    ax.set_xticks(range(len(names)), names)
    ax.margins(y=0.1)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def main():
    results, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    data = load(results, runs)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(13, 5))
    dd = median(data, "dd", "dd", "write_mib_s")
    if dd is not None:  # the physical reference, on the large (MiB/s) panel
        axes[0].axhline(dd, color="black", linestyle="--", linewidth=1,
                        label=f"dd write, fsync ({dd:.0f} MiB/s)")
    for ax, panel in zip(axes, PANELS):
        draw(ax, data, *panel)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fig.suptitle(f"cairn bench all, medians of {runs} runs — {stamp}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
