"""The records the fake index is made of, and the frozen views it hands out.

``ProjectRecord`` and ``ReleaseRecord`` are mutable and belong to :class:`~.index.Index`, which
guards them with its lock; everything else reads :class:`ProjectView` snapshots. A
:class:`FileRecord` never changes after upload, except for the digests cached on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from packaging.utils import NormalizedName

from fullmirror.fakepypi.build import python_tag

__all__ = [
    "ChangeRejected",
    "ChangelogRow",
    "FileInfo",
    "FileRecord",
    "ProjectRecord",
    "ProjectView",
    "ReleaseRecord",
    "ReleaseView",
]


class ChangeRejected(ValueError):
    """A mutation that makes no sense for the current state (unknown name, duplicate...)."""


class ChangelogRow(NamedTuple):
    """One row as XML-RPC ``changelog_since_serial`` returns it."""

    name: str
    version: str | None
    timestamp: int
    action: str
    serial: int


@dataclass(frozen=True, slots=True)
class FileInfo:
    size: int
    sha256: str
    md5: str
    blake2b_256: str
    #: sha256 of the ``.metadata`` sibling; None for sdists (PyPI extracts it from wheels only).
    metadata_sha256: str | None
    #: ``packages/ab/cd/<rest>/<filename>``, PyPI's content-addressed layout.
    path: str


class ProjectRecord:
    __slots__ = ("display_name", "last_serial", "name", "releases")

    def __init__(self, display_name: str, name: NormalizedName) -> None:
        self.display_name = display_name
        self.name = name
        self.releases: dict[str, ReleaseRecord] = {}
        self.last_serial = 0


class ReleaseRecord:
    __slots__ = (
        "files",
        "project",
        "requires_dist",
        "requires_python",
        "summary",
        "version",
        "yanked",
        "yanked_reason",
    )

    def __init__(
        self,
        project: ProjectRecord,
        version: str,
        requires_dist: tuple[str, ...],
        requires_python: str | None,
        summary: str,
    ) -> None:
        self.project = project
        self.version = version
        self.requires_dist = requires_dist
        self.requires_python = requires_python
        self.summary = summary
        self.yanked = False
        self.yanked_reason: str | None = None
        self.files: dict[str, FileRecord] = {}


class FileRecord:
    """One uploaded file. Its bytes are a pure function of its release and kind."""

    __slots__ = ("filename", "info", "kind", "release", "serial")

    def __init__(self, filename: str, release: ReleaseRecord, kind: str, serial: int) -> None:
        self.filename = filename
        self.release = release
        self.kind = kind
        #: The serial of its ``add ... file`` row; its upload time derives from it.
        self.serial = serial
        #: Digests, size and path, computed by the file store on first use.
        self.info: FileInfo | None = None

    @property
    def is_wheel(self) -> bool:
        return self.kind != "sdist"

    @property
    def python_version(self) -> str:
        return python_tag(self.kind)

    @property
    def packagetype(self) -> str:
        return "sdist" if self.kind == "sdist" else "bdist_wheel"


@dataclass(frozen=True, slots=True)
class ReleaseView:
    """A release as it is at one instant (yank state copied, files frozen)."""

    version: str
    requires_dist: tuple[str, ...]
    requires_python: str | None
    summary: str
    yanked: bool
    yanked_reason: str | None
    files: tuple[FileRecord, ...]


@dataclass(frozen=True, slots=True)
class ProjectView:
    """A project as it is at one instant; releases sorted by version."""

    name: NormalizedName
    display_name: str
    serial: int
    releases: tuple[ReleaseView, ...]
