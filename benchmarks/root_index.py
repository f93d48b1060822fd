"""Time one rewrite of a mirror's root index, the way a run does it at its end.

``python benchmarks/root_index.py DIRECTORY`` deletes ``web/simple/index.*`` (untimed), then
times streaming every root page from the state database into its file (temp file, fsync,
rename), as a run does. Prints one JSON line: projects, bytes, seconds. Run as a child, so its
peak RSS is its own. It calls fullmirror's internal ``write_root_pages`` and follows its API.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from fullmirror.catalog import Catalog
from fullmirror.rootpages import write_root_pages
from fullmirror.storage import Storage


def main(directory: Path) -> int:
    names = ("index.html", "index.v1_html", "index.v1_json")
    for name in names:
        (directory / "web" / "simple" / name).unlink(missing_ok=True)
    catalog = Catalog(directory / "state.db")
    storage = Storage(directory)
    serial = int((directory / "status").read_text().strip() or 0)
    started = time.perf_counter()
    write_root_pages(storage, catalog, serial, "ALL")
    seconds = time.perf_counter() - started
    catalog.close()
    size = sum((directory / "web" / "simple" / name).stat().st_size for name in names)
    print(json.dumps({"projects": catalog_count(directory), "bytes": size, "seconds": seconds}))
    return 0


def catalog_count(directory: Path) -> int:
    catalog = Catalog(directory / "state.db")
    try:
        return catalog.count()
    finally:
        catalog.close()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
