"""Time no-op runs against a mirror's existing state, with a fresh fake upstream of its size.

``python benchmarks/noop_again.py DIRECTORY PROJECTS [--runs 4]`` starts ``fakepypi serve
--projects PROJECTS --synthetic-files --warm`` (the scale corpus), points a metadata-only xmlrpc
config at it and DIRECTORY (a copy of a scale run's mirror, or just its ``state.db``, ``status``
and ``web/simple/index.*``), and runs ``fullmirror mirror`` RUNS times. The upstream's serial is
not past the mirror's cursor, so each run is a no-op: one ``changelog_since_serial`` request.
Prints wall, CPU, peak RSS and requests per run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK, Upstream, log, metadata_conf, run_measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("projects", type=int)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    logs = WORK / "noop-again"
    logs.mkdir(parents=True, exist_ok=True)
    with Upstream(
        projects=args.projects, seed=1, synthetic=True, log_path=logs / "upstream.log"
    ) as up:
        conf = logs / "mirror.conf"
        conf.write_text(metadata_conf(args.directory.resolve(), up.url))
        argv = [sys.executable, "-m", "fullmirror", "-q", "-c", str(conf), "mirror"]
        for i in range(args.runs):
            up.take_stats()
            m = run_measured(argv, logs / "runs.log")
            log(
                f"no-op {i}: {m.wall:.3f} s wall, {m.cpu:.3f} s CPU, {m.maxrss_mb:.1f} MB, "
                f"rc {m.rc}, requests {up.take_stats()}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
