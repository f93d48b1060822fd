"""Pure decisions of a sync: which projects changed, where each file lives in the tree, what a
project's update downloads and removes, and how far the checkpoint may honestly advance.

No I/O: everything here is tested with literals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from packaging.utils import NormalizedName, canonicalize_name

from fullmirror.errors import UnsafeUpstreamData
from fullmirror.models import (
    ChangelogEntry,
    Hashes,
    MirroredFile,
    MirroredPage,
    ReleaseFile,
)
from fullmirror.parse import check_filename

# PyPI's content-addressed layout: /packages/<2 hex>/<2 hex>/<60 hex>/<filename>.
_HASHED_PATH = re.compile(r"^/packages/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{60})/([^/]+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one upstream file goes in the mirror, and what its path promises."""

    file: ReleaseFile
    #: POSIX path relative to ``web/``: ``packages/ab/cd/<60 hex>/<filename>``.
    location: str
    #: The 64-hex content address the path encodes (blake2b-256 on PyPI's layout,
    #: sha256 when fullmirror derived the path itself); the bytes must hash to it.
    address: str


def place(file: ReleaseFile, project: NormalizedName) -> Placement:
    """The file's path in the hashed tree; UnsafeUpstreamData for anything hostile.

    PyPI's own path is kept verbatim when the URL has its layout, so an existing bandersnatch
    tree is reused file for file. Any other URL (a devpi ``+f`` path, a legacy predictable
    path, a path outside ``/packages/``) never decides where bytes land: the path is derived
    from the file's sha256 instead.
    """
    check_filename(file.filename, project)
    path = unquote(urlsplit(file.url).path)
    match = _HASHED_PATH.match(path)
    if match and match.group(4) == file.filename:
        a, b, rest, _ = match.groups()
        return Placement(file, f"packages/{a}/{b}/{rest}/{file.filename}", a + b + rest)
    sha = file.sha256
    if sha is None or not _SHA256.match(sha):
        raise UnsafeUpstreamData(
            "file", file.filename, "its URL is not in the hashed layout and it has no sha256"
        )
    return Placement(file, f"packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{file.filename}", sha)


def metadata_location(location: str) -> str:
    return location + ".metadata"


def changes_from_changelog(entries: Iterable[ChangelogEntry]) -> dict[NormalizedName, int]:
    """Every project any row names, with the highest serial that named it.

    Every action counts, role changes included: reconciling a project that did not really
    change costs one page fetch, missing one that did leaves the mirror wrong.
    """
    changes: dict[NormalizedName, int] = {}
    for entry in entries:
        try:
            name = canonicalize_name(entry.name, validate=True)
        except ValueError:
            continue
        if entry.serial > changes.get(name, -1):
            changes[name] = entry.serial
    return changes


def honest_status(target: int, lowest_pending_since: int | None) -> int:
    """The serial the mirror may claim: every change at or below it is on disk."""
    if lowest_pending_since is None:
        return target
    return min(target, lowest_pending_since)


def mirrored_file(
    placement: Placement, *, metadata_hashes: Hashes | None, local: bool, root_uri: str
) -> MirroredFile:
    """The page entry for a placed file; ``local`` is False for a release-files = false mirror."""
    f = placement.file
    if local:
        location = placement.location
    elif root_uri:
        location = root_uri.rstrip("/") + "/" + placement.location
    else:
        location = f.url
    return MirroredFile(
        filename=f.filename,
        location=location,
        hashes=f.hashes,
        size=f.size,
        upload_time=f.upload_time,
        requires_python=f.requires_python,
        yanked=f.yanked,
        yanked_reason=f.yanked_reason,
        metadata_hashes=metadata_hashes,
    )


def locations_to_remove(old: MirroredPage | None, new: MirroredPage) -> list[str]:
    """Local files (and ``.metadata`` siblings) the old page served and the new one does not."""
    if old is None:
        return []
    keep: set[str] = set()
    for f in new.files:
        if f.is_local:
            keep.add(f.location)
            if f.metadata_hashes is not None:
                keep.add(metadata_location(f.location))
    gone: list[str] = []
    for f in old.files:
        if not f.is_local:
            continue
        for loc in (f.location, metadata_location(f.location)):
            if loc not in keep and (loc == f.location or f.metadata_hashes is not None):
                gone.append(loc)
    return sorted(gone)


def local_files(page: MirroredPage | None) -> list[str]:
    """Every local path a recorded page serves, ``.metadata`` siblings included."""
    if page is None:
        return []
    out: list[str] = []
    for f in page.files:
        if f.is_local:
            out.append(f.location)
            if f.metadata_hashes is not None:
                out.append(metadata_location(f.location))
    return out


def upload_epoch(upload_time: str | None) -> float | None:
    """``2024-01-17T16:53:12.779164Z`` as seconds since the epoch (for file mtimes)."""
    if upload_time is None:
        return None
    try:
        return datetime.fromisoformat(upload_time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
