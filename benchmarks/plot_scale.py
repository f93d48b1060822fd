"""Plot ``scale.csv`` (written by ``scale.py``) as ``scale.png``; runs in the benchmark venv.

``benchmarks/.work/venv/bin/python benchmarks/plot_scale.py SCALE.csv SCALE.png``

Left: wall time per scenario against the number of projects; right: peak memory (the summed RSS
of all the run's processes; older rows without it: the largest process's). Solid lines and
dots are measurements; where 700k was not measured, a dashed line continues each scenario to
700,000 projects along the straight line (a fixed cost plus a cost per project) through the two
largest measured sizes.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PYPI = 700_000


def _extrapolate(xs: list[float], ys: list[float]) -> float | None:
    """The straight line (fixed cost + cost per project) through the two largest sizes."""
    if len(xs) < 2 or xs[-1] >= PYPI:
        return None
    # A cost does not shrink as the index grows: a falling last segment is noise, kept flat.
    slope = max((ys[-1] - ys[-2]) / (xs[-1] - xs[-2]), 0.0)
    return ys[-1] + slope * (PYPI - xs[-1])


def main(source: str, target: str) -> int:
    series: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with open(source, newline="") as f:
        for row in csv.DictReader(f):
            # The repeated no-op is in the table; as a line it would be one point.
            if row["scenario"] == "upstream start" or "again" in row["scenario"]:
                continue
            # The run's whole memory: the summed RSS of all its processes where it was sampled.
            memory = row.get("tree_rss_mb") or row["maxrss_mb"]
            series[row["scenario"]].append(
                (float(row["projects"]), float(row["wall_s"]), float(memory))
            )
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for name, points in series.items():
        points.sort()
        xs = [p[0] for p in points]
        for axis, column in ((left, 1), (right, 2)):
            ys = [p[column] for p in points]
            (line,) = axis.plot(xs, ys, "o-", label=name)
            guess = _extrapolate(xs, ys)
            if guess is not None:
                axis.plot([xs[-1], PYPI], [ys[-1], guess], "--", color=line.get_color())
                axis.plot([PYPI], [guess], "x", color=line.get_color())
    grey = {"color": "grey", "linewidth": 0.9}
    left.axhline(0.5, linestyle=":", label="target: no-op < 0.5 s", **grey)
    left.axhline(5.0, linestyle="-.", label="target: root index < 5 s at 700k", **grey)
    right.axhline(200, linestyle=":", label="target: peak RSS <= 200 MB at 700k", **grey)
    right.legend(fontsize=8, loc="upper left")
    for axis, label in ((left, "wall time (s)"), (right, "peak RSS, all processes summed (MB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("projects upstream (metadata only, ~3.5 files each)")
        axis.set_ylabel(label)
        axis.axvline(PYPI, color="black", linewidth=0.6)
        axis.grid(True, which="both", linewidth=0.3)
    left.legend(fontsize=8)
    fig.suptitle("fullmirror cost against size (dashed: straight-line extrapolation to 700k)")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
