"""How the mirror's state is spelled on disk: the ``status`` serial, the ``generation`` marker,
``web/last-modified`` and the catalog's per-project record. Pure: strings in, values out.

``status`` and ``last-modified`` keep bandersnatch's spelling so tools that read them keep
working. ``generation`` says which on-disk format a directory holds; bandersnatch writes a bare
small integer there, fullmirror writes ``fullmirror-<n>``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from packaging.utils import NormalizedName

from fullmirror.models import Hashes, MirroredFile, MirroredPage

#: The on-disk format this version writes. Bump it, and add a migration, when the format changes.
GENERATION = 1
GENERATION_TEXT = f"fullmirror-{GENERATION}"


class BadState(ValueError):
    """A state file's content is not what fullmirror writes."""


def parse_status(text: str) -> int:
    value = text.strip()
    if not value.isdigit():
        raise BadState(f"expected a serial number, found {value[:40]!r}")
    return int(value)


def format_status(serial: int) -> str:
    return str(serial)


def parse_generation(text: str) -> tuple[str, int]:
    """``("fullmirror", n)`` or ``("bandersnatch", n)``; BadState for anything else."""
    value = text.strip()
    if value.isdigit():
        return "bandersnatch", int(value)
    tool, _, number = value.partition("-")
    if tool != "fullmirror" or not number.isdigit():
        raise BadState(f"unknown generation marker {value[:40]!r}")
    return "fullmirror", int(number)


def format_last_modified(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H:%M:%S\n", time.gmtime(epoch))


def _hashes_out(hashes: Hashes) -> dict[str, str]:
    return dict(hashes)


def _hashes_in(raw: Any) -> Hashes:
    if not isinstance(raw, dict):
        raise BadState("hashes must be an object")
    return tuple(sorted((str(k), str(v)) for k, v in raw.items()))


def encode_files(files: tuple[MirroredFile, ...]) -> str:
    """The catalog's compact record of a project's files."""
    rows = []
    for f in files:
        row: dict[str, Any] = {"f": f.filename, "l": f.location, "h": _hashes_out(f.hashes)}
        if f.size is not None:
            row["s"] = f.size
        if f.upload_time is not None:
            row["t"] = f.upload_time
        if f.requires_python is not None:
            row["r"] = f.requires_python
        if f.yanked:
            row["y"] = f.yanked_reason if f.yanked_reason is not None else True
        if f.metadata_hashes is not None:
            row["m"] = _hashes_out(f.metadata_hashes)
        rows.append(row)
    return json.dumps(rows, separators=(",", ":"), sort_keys=True)


def decode_files(text: str) -> tuple[MirroredFile, ...]:
    try:
        rows = json.loads(text)
        files = []
        for row in rows:
            yanked = row.get("y", False)
            files.append(
                MirroredFile(
                    filename=row["f"],
                    location=row["l"],
                    hashes=_hashes_in(row["h"]),
                    size=row.get("s"),
                    upload_time=row.get("t"),
                    requires_python=row.get("r"),
                    yanked=yanked is not False,
                    yanked_reason=yanked if isinstance(yanked, str) else None,
                    metadata_hashes=_hashes_in(row["m"]) if "m" in row else None,
                )
            )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadState(f"unreadable file record: {exc}") from exc
    return tuple(files)


def encode_extra(page: MirroredPage) -> str:
    """Page fields other than files: versions and project status."""
    extra: dict[str, Any] = {"v": list(page.versions)}
    if page.status is not None:
        extra["st"] = page.status
    if page.status_reason is not None:
        extra["sr"] = page.status_reason
    return json.dumps(extra, separators=(",", ":"), sort_keys=True)


def decode_page(
    name: NormalizedName, display_name: str, serial: int, files: str, extra: str
) -> MirroredPage:
    try:
        more = json.loads(extra)
        versions = tuple(str(v) for v in more.get("v", []))
        status, reason = more.get("st"), more.get("sr")
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadState(f"unreadable project record for {name}: {exc}") from exc
    return MirroredPage(
        name=name,
        display_name=display_name,
        serial=serial,
        files=decode_files(files),
        versions=versions,
        status=status,
        status_reason=reason,
    )
