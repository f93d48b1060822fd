"""How fullmirror's cost grows with the number of projects, up to PyPI's size (700,000).

    .venv/bin/python benchmarks/scale.py          # 1k, 10k, 30k, 100k within --budget-minutes 20
    .venv/bin/python benchmarks/scale.py --sizes 1000,10000,100000,700000 --budget-minutes 60

A metadata-only mirror (``release-files = false``, ``json = false``, ``api-method = xmlrpc``)
of a fake upstream whose files are synthetic (a few bytes each, so digests cost microseconds and
the upstream stays fast; ``fakepypi serve --synthetic-files --warm``). For each size: the first
sync, a no-op run (xmlrpc, then simple), an incremental run after 1,000 seeded random events, and
one rewrite of the root index (``root_index.py``), each a measured child process (wall, CPU, peak
RSS, upstream requests and CPU). A size whose first sync would not fit in what is left of
``--budget-minutes`` (predicted linearly from the size before) is skipped and extrapolated
instead. Writes ``benchmarks/scale.csv`` and plots ``benchmarks/scale.png`` with the benchmark
venv's matplotlib.
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    HERE,
    WORK,
    Upstream,
    bench_venv,
    log,
    metadata_conf,
    precompile,
    remove_tree,
    run_measured,
)

CHANGES = 1_000
FIELDS = [
    "projects", "scenario", "wall_s", "cpu_s", "maxrss_mb", "tree_rss_mb", "disk_read_mb",
    "disk_write_mb", "requests", "upstream_cpu_s", "rc", "note",
]  # fmt: skip


def measure_size(
    projects: int, seed: int, profile_bin: Path | None, *, keep: bool = False
) -> list[dict[str, object]]:
    base = WORK / "scale"
    logs = base / "logs"
    directory = base / f"mirror-{projects}"
    remove_tree(directory)
    rows: list[dict[str, object]] = []
    with Upstream(
        projects=projects, seed=seed, synthetic=True, log_path=logs / "upstream.log"
    ) as up:
        log(f"{projects} projects: upstream up in {up.startup_seconds:.1f} s, {up.rss_mb():.0f} MB")
        confs = {}
        for method in ("xmlrpc", "simple"):
            confs[method] = base / f"mirror-{projects}-{method}.conf"
            confs[method].write_text(metadata_conf(directory, up.url, method))
        mirror = [sys.executable, "-m", "fullmirror", "-q"]
        plan = [
            ("first sync", [*mirror, "-c", str(confs["xmlrpc"]), "mirror"]),
            ("no-op (xmlrpc)", [*mirror, "-c", str(confs["xmlrpc"]), "mirror"]),
            # Once more: the first no-op after a long sync finds the interpreter's own files
            # evicted from this VM's page cache (see "page_cache" in common.py).
            ("no-op (xmlrpc, again)", [*mirror, "-c", str(confs["xmlrpc"]), "mirror"]),
            ("no-op (simple)", [*mirror, "-c", str(confs["simple"]), "mirror"]),
            (f"incremental ({CHANGES} events)", [*mirror, "-c", str(confs["xmlrpc"]), "mirror"]),
            # Twice the events right after: if the cost is per changed project, this one costs
            # about twice the other less the fixed part (start-up and the root index).
            (
                f"incremental ({2 * CHANGES} events)",
                [*mirror, "-c", str(confs["xmlrpc"]), "mirror"],
            ),
            ("root index", [sys.executable, str(HERE / "root_index.py"), str(directory)]),
        ]
        rows.append(_row(projects, "upstream start", up.startup_seconds, 0, up.rss_mb(), {}, 0, 0))
        for scenario, argv in plan:
            note = ""
            if scenario.startswith("incremental"):
                events = int(scenario.split("(")[1].split()[0])
                touched = up.random_changes(events, seed=4242 * (events // CHANGES))
                note = f"{touched} projects touched"
            up.take_stats()
            before = up.cpu()
            log_path = logs / f"{projects}-{scenario.split()[0]}.log"
            watch = _Progress(directory / "state.db") if scenario == "first sync" else None
            m = run_measured(argv, log_path)
            if watch is not None:
                watch.stop()
                watch.write(HERE / "results" / f"scale-{projects}-first-sync-progress.csv")
            spent = up.cpu() - before
            requests = up.take_stats()
            if scenario == "root index":
                lines = [x for x in log_path.read_text().splitlines() if x.startswith("{")]
                if lines:
                    result = json.loads(lines[-1])
                    note = f"render+write {result['seconds']:.2f} s, {result['bytes']} bytes"
            rows.append(_row(projects, scenario, m.wall, m.cpu, m.maxrss_mb, requests, spent, m.rc))
            rows[-1]["note"] = note
            rows[-1]["tree_rss_mb"] = round(m.tree_mb, 1)
            rows[-1]["disk_read_mb"] = round(m.disk_read_mb, 1)
            rows[-1]["disk_write_mb"] = round(m.disk_write_mb, 1)
            log(
                f"  {scenario:24} {m.wall:8.2f} s {m.cpu:8.2f} s cpu {m.maxrss_mb:7.0f} MB "
                f"(all processes {m.tree_mb:.0f} MB) disk read {m.disk_read_mb:.0f} MB "
                f"rc {m.rc} upstream {spent:.1f} s {sum(requests.values())} requests {note}"
            )
        if profile_bin is not None:
            _profile(projects, up, plan, profile_bin, base)
        rows[0]["note"] = f"upstream peak RSS {up.rss_mb():.0f} MB"
    if keep:
        log(f"  kept {directory}")
    else:
        remove_tree(directory)
    return rows


class _Progress(threading.Thread):
    """Every 30 s of a first sync: projects in the catalog, and where the machine's time went
    (busy, waiting for I/O, stolen by the hypervisor), to see why the rate changes with size."""

    def __init__(self, state: Path) -> None:
        super().__init__(daemon=True)
        self._state = state
        self._done = threading.Event()
        self.rows: list[dict[str, object]] = []
        self.start()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        started = time.monotonic()
        last = _cpu_times()
        while not self._done.wait(30):
            now = _cpu_times()
            spent = {k: now[k] - last[k] for k in now}
            total = sum(spent.values()) or 1
            last = now
            self.rows.append(
                {
                    "seconds": round(time.monotonic() - started),
                    "projects": _count(self._state),
                    "busy_pct": round(100 * (spent["user"] + spent["system"]) / total),
                    "iowait_pct": round(100 * spent["iowait"] / total),
                    "steal_pct": round(100 * spent["steal"] / total),
                }
            )

    def write(self, path: Path) -> None:
        if not self.rows:
            return
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)


def _cpu_times() -> dict[str, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return {
        "user": user + nice,
        "system": system + irq + softirq,
        "idle": idle,
        "iowait": iowait,
        "steal": steal,
    }


def _count(state: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT count(*) FROM projects").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return -1


def _profile(
    projects: int, up: Upstream, plan: list[tuple[str, list[str]]], bindir: Path, base: Path
) -> None:
    """After the measurements: py-spy a no-op run and one more incremental run (not timed)."""
    spy = [str(bindir / "py-spy"), "record", "--subprocesses", "--format", "raw", "-r", "250"]
    argv = dict(plan)
    noop, incremental = argv["no-op (xmlrpc)"], argv[f"incremental ({CHANGES} events)"]
    for label, argv in (("noop", noop), ("incremental", incremental)):
        if label == "incremental":
            up.random_changes(CHANGES, seed=9999)
        out = base / f"profile-{projects}-{label}.txt"
        run_measured([*spy, "-o", str(out), "--", *argv], base / "logs" / f"profile-{label}.log")
        log(f"  profiled {label}: {out}")


def _row(
    projects: int,
    scenario: str,
    wall: float,
    cpu: float,
    rss: float,
    requests: dict[str, int],
    upstream_cpu: float,
    rc: int,
) -> dict[str, object]:
    return {
        "projects": projects,
        "scenario": scenario,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "maxrss_mb": round(rss, 1),
        "tree_rss_mb": "",
        "requests": " ".join(f"{k}={v}" for k, v in sorted(requests.items())),
        "upstream_cpu_s": round(upstream_cpu, 3),
        "rc": rc,
        "note": "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,30000,100000", help="comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget-minutes", type=float, default=20.0)
    parser.add_argument("--csv", default=str(HERE / "scale.csv"))
    parser.add_argument("--png", default=str(HERE / "scale.png"))
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the CSV")
    parser.add_argument("--append", action="store_true",
                        help="keep the CSV's rows for sizes not measured now")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="then py-spy a no-op and an incremental run")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help="leave each size's mirror in place (removing 700k folders "
                        "takes this disk about 20 minutes of I/O)")  # fmt: skip
    args = parser.parse_args()
    bindir = bench_venv()
    precompile()
    if not args.plot_only:
        sizes = sorted(int(s) for s in args.sizes.split(","))
        deadline = time.monotonic() + 60 * args.budget_minutes
        rows: list[dict[str, object]] = []
        kept: list[dict[str, object]] = []
        if args.append and Path(args.csv).exists():
            with open(args.csv, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["projects"]) not in sizes]
        previous: tuple[int, float] | None = None
        for size in sizes:
            if previous is not None:
                predicted = previous[1] * size / previous[0]
                if time.monotonic() + 1.5 * predicted > deadline:
                    log(f"skipping {size}: its first sync would take ~{predicted:.0f} s")
                    continue
            started = time.monotonic()
            rows += measure_size(size, args.seed, bindir if args.profile else None, keep=args.keep)
            previous = (size, time.monotonic() - started)
            ordered = sorted(kept + rows, key=lambda r: int(str(r["projects"])))
            _write_csv(Path(args.csv), ordered)
    plot = [str(bindir / "python"), str(HERE / "plot_scale.py"), args.csv, args.png]
    subprocess.run(plot, check=True)
    log(f"wrote {args.csv} and {args.png}")
    return 0


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
