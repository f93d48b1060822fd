"""A no-op ``mirror`` run with everything in the page cache, then with the interpreter's
files and the mirror evicted from it, alternately.

    .venv/bin/python benchmarks/cold_start.py [--projects 1000] [--runs 3]

Starts a metadata-only fake upstream (the scale corpus), mirrors it once with
``api-method = xmlrpc``, then times no-op runs: "warm" as they come, "cold" after
``posix_fadvise(DONTNEED)`` on the standard library, the venv's site-packages, fullmirror's
source and the mirror (``page_cache`` in ``common.py``). Prints wall time, CPU and what each run
read from the disk.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    WORK,
    Upstream,
    log,
    metadata_conf,
    page_cache,
    precompile,
    remove_tree,
    run_measured,
)

import fullmirror


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    precompile()
    base = WORK / "cold-start"
    mirror = base / "mirror"
    remove_tree(mirror)
    paths = sysconfig.get_paths()
    interpreter = [
        Path(paths["stdlib"]),
        Path(paths["purelib"]),
        Path(fullmirror.__file__).parent,
    ]
    with Upstream(
        projects=args.projects, seed=1, synthetic=True, log_path=base / "upstream.log"
    ) as up:
        conf = base / "mirror.conf"
        conf.write_text(metadata_conf(mirror, up.url))
        argv = [sys.executable, "-m", "fullmirror", "-q", "-c", str(conf), "mirror"]
        first = run_measured(argv, base / "runs.log")
        log(f"first sync: {first.wall:.2f} s, rc {first.rc}")
        for _ in range(args.runs):
            for label in ("warm", "cold"):
                if label == "cold":
                    for folder in (*interpreter, mirror):
                        page_cache(folder, warm=False)
                m = run_measured(argv, base / "runs.log")
                log(
                    f"no-op {label}: {m.wall:.3f} s wall, {m.cpu:.3f} s CPU, "
                    f"{m.disk_read_mb:.1f} MB read from the disk, rc {m.rc}"
                )
    remove_tree(mirror)
    return 0


if __name__ == "__main__":
    sys.exit(main())
