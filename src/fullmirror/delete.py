"""``fullmirror delete``: remove projects from the mirror and keep it consistent.

Pages go first, then the files the project owns, then its record, then the root index, so at
no moment does a page link a missing file. The catalog remembers the serial each deleted project
had, and ``mirror`` leaves it deleted until upstream changes it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from packaging.utils import NormalizedName, canonicalize_name

from fullmirror.catalog import Catalog
from fullmirror.config import Config
from fullmirror.project import owned_files, remove_served
from fullmirror.rootpages import write_root_index
from fullmirror.storage import Storage

log = logging.getLogger("fullmirror")


@dataclass
class DeleteReport:
    removed: list[NormalizedName] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    files_removed: int = 0


def normalize(name: str) -> NormalizedName | None:
    try:
        return canonicalize_name(name, validate=True)
    except ValueError:
        return None


def delete_projects(
    config: Config, storage: Storage, catalog: Catalog, names: Sequence[str], *, dry_run: bool
) -> DeleteReport:
    """Remove projects: pages first, then the files they own, then the record; then the root.

    The catalog remembers the serial each had, so ``mirror`` does not bring it back until
    upstream changes it again.
    """
    report = DeleteReport()
    for raw in names:
        name = normalize(raw)
        if name is not None and name in report.removed:
            continue
        page = catalog.get(name) if name is not None else None
        if name is None or page is None:
            report.unknown.append(raw)
            continue
        report.removed.append(name)
        files = owned_files(catalog, name, page)
        if dry_run:
            report.files_removed += sum(1 for loc in files if storage.stat("web/" + loc))
            continue
        report.files_removed += remove_served(storage, name, files)
        catalog.delete_project(name, page.serial)
        log.info("%s: deleted (%d files)", name, len(files))
    if report.removed and not dry_run:
        write_root_index(storage, catalog, config)
    return report
