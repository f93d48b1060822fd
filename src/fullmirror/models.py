"""Typed values for everything that crosses the mirror: upstream pages, listings, changelog rows
and the mirror's own record of what it serves.

Pure: no I/O. Upstream JSON becomes these frozen dataclasses in :mod:`fullmirror.parse` and
nowhere else; past that boundary no code indexes a dict by string.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)

#: (algorithm, lowercase hex digest) pairs, sorted by algorithm name.
Hashes = tuple[tuple[str, str], ...]


def hash_of(hashes: Hashes, algorithm: str) -> str | None:
    for name, digest in hashes:
        if name == algorithm:
            return digest
    return None


def version_from_filename(filename: str) -> str | None:
    """The version a distribution filename names, or None for legacy names we cannot parse."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    """PEP 658 core metadata advertised for a file. Empty hashes: advertised without a hash."""

    hashes: Hashes = ()

    @property
    def sha256(self) -> str | None:
        return hash_of(self.hashes, "sha256")


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    """One distribution file as an upstream project page describes it."""

    filename: str
    #: Absolute URL, already resolved against the page it came from.
    url: str
    hashes: Hashes
    size: int | None = None
    #: ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (UTC), as PEP 700 spells it.
    upload_time: str | None = None
    requires_python: str | None = None
    yanked: bool = False
    #: Only meaningful when ``yanked``; None when yanked without a reason.
    yanked_reason: str | None = None
    core_metadata: CoreMetadata | None = None

    @property
    def sha256(self) -> str | None:
        return hash_of(self.hashes, "sha256")

    @property
    def version(self) -> str | None:
        return version_from_filename(self.filename)


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """A project as the upstream serves it right now (PEP 691 project JSON)."""

    name: NormalizedName
    #: The project's last serial upstream: ``X-PyPI-Last-Serial`` or ``meta._last-serial``.
    serial: int
    files: tuple[ReleaseFile, ...]
    #: PEP 700 versions, including releases that have no files.
    versions: tuple[str, ...] = ()
    #: PEP 792 project status (``active``, ``archived``, ``quarantined``, ``deprecated``).
    status: str | None = None
    status_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ListedProject:
    """One entry of an upstream root listing (PEP 691 root JSON, or XML-RPC)."""

    name: NormalizedName
    display_name: str
    serial: int


@dataclass(frozen=True, slots=True)
class Listing:
    """The upstream's whole project list with the serial each project last changed at."""

    #: The index-wide serial the listing reflects, when the upstream says so.
    serial: int | None
    projects: tuple[ListedProject, ...]


@dataclass(frozen=True, slots=True)
class ChangelogEntry:
    """One row of XML-RPC ``changelog_since_serial``."""

    #: The display name at the time of the event: normalize before use.
    name: str
    version: str | None
    timestamp: int
    action: str
    serial: int


@dataclass(frozen=True, slots=True)
class MirroredFile:
    """A release file as the mirror serves it."""

    filename: str
    #: Where the bytes are: a POSIX path relative to ``web/`` (``packages/ab/cd/.../f.whl``),
    #: or an absolute URL when release files are not mirrored (``release-files = false``).
    location: str
    hashes: Hashes
    size: int | None = None
    upload_time: str | None = None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    #: Hashes of the ``.metadata`` sibling the mirror serves; None when it serves none.
    metadata_hashes: Hashes | None = None

    @property
    def sha256(self) -> str | None:
        return hash_of(self.hashes, "sha256")

    @property
    def is_local(self) -> bool:
        return "://" not in self.location


@dataclass(frozen=True, slots=True)
class MirroredPage:
    """Everything one project's simple pages show; also the mirror's record of that project."""

    name: NormalizedName
    display_name: str
    serial: int
    files: tuple[MirroredFile, ...]
    versions: tuple[str, ...] = ()
    status: str | None = None
    status_reason: str | None = None


@dataclass(frozen=True, slots=True)
class MirroredProject:
    """A root-index entry: a project the mirror serves and the serial it reached."""

    name: NormalizedName
    display_name: str
    serial: int


@dataclass(frozen=True, slots=True)
class SizeSample:
    """Some of a mirror's projects, with how many files they list and those files' bytes."""

    projects: int
    files: int
    size: int
