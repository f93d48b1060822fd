"""The fake upstream's state: projects, releases, files, serials and the changelog.

Pure Python and thread-safe: one re-entrant lock guards every read and write of the structure,
so the HTTP server may read while a test mutates. Every change appends changelog rows with the
next serial, exactly as PyPI's journal does, and a project's last serial is the highest serial
of any row naming it. File bytes and digests come from a :class:`~.filestore.FileStore`, lazily.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from fullmirror.fakepypi.build import DistSpec, wheel_tags
from fullmirror.fakepypi.clock import fake_epoch
from fullmirror.fakepypi.filestore import DEFAULT_BYTE_CACHE, FileStore
from fullmirror.fakepypi.filler import apply_random_changes
from fullmirror.fakepypi.records import (
    ChangelogRow,
    ChangeRejected,
    FileInfo,
    FileRecord,
    ProjectRecord,
    ProjectView,
    ReleaseRecord,
    ReleaseView,
)

__all__ = [
    "ChangeRejected",
    "ChangelogRow",
    "FileInfo",
    "FileRecord",
    "Index",
    "ProjectView",
    "ReleaseView",
    "owner_of",
]

DEFAULT_KINDS = ("wheel", "sdist")


def _version_key(version: str) -> Version:
    return Version(version)


def _normalize_version(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion as exc:
        raise ChangeRejected(f"invalid version {version!r}") from exc


def _normalize_kind(kind: str) -> str:
    if kind == "wheel":
        return "py3-none-any"
    if kind == "sdist":
        return kind
    parts = kind.split("-")
    if len(parts) != 3 or not all(parts) or not wheel_tags(kind):
        raise ChangeRejected(f"kind {kind!r} is neither 'wheel', 'sdist' nor a wheel tag triple")
    return kind


class Index:
    """The whole upstream. Names may be given in display or normalized form everywhere."""

    def __init__(
        self, *, seed: int = 0, file_size: int = 0, byte_cache: int = DEFAULT_BYTE_CACHE
    ) -> None:
        self.seed = seed
        self.file_size = file_size
        #: At most this many rows per ``changelog_since_serial`` call (PyPI: 50,000).
        self.changelog_page_size = 50_000
        #: Normalized names :meth:`random_changes` leaves alone (the corpus's anchors).
        self.protected: frozenset[str] = frozenset()
        self._lock = threading.RLock()
        self._projects: dict[NormalizedName, ProjectRecord] = {}
        self._files: dict[str, FileRecord] = {}
        # (display name, version, action); the serial is the position + 1 and the timestamp
        # derives from the serial, which halves the memory of a big changelog.
        self._rows: list[tuple[str, str | None, str]] = []
        self._store = FileStore(seed, file_size, byte_cache)
        self._random_calls = 0
        # Hostile data for tests (see "hostile injections" below): raw file entries and
        # top-level fields added to project pages, and raw bodies served at arbitrary paths.
        self._extra_entries: dict[NormalizedName, list[dict[str, object]]] = {}
        self._page_fields: dict[NormalizedName, dict[str, object]] = {}
        self._blobs: dict[str, tuple[bytes, int]] = {}

    # -- reading ---------------------------------------------------------------------------

    @property
    def last_serial(self) -> int:
        return len(self._rows)

    def project_names(self) -> list[NormalizedName]:
        with self._lock:
            return sorted(self._projects)

    def exists(self, name: str) -> bool:
        with self._lock:
            return canonicalize_name(name) in self._projects

    def project_serial(self, name: str) -> int | None:
        with self._lock:
            project = self._projects.get(canonicalize_name(name))
            return project.last_serial if project else None

    def serials(self) -> dict[str, int]:
        """``{display_name: last_serial}`` for every project (``list_packages_with_serial``)."""
        with self._lock:
            return {p.display_name: p.last_serial for p in self._projects.values()}

    def listing(self) -> tuple[int, list[tuple[str, NormalizedName, int]]]:
        """The global serial and (display name, normalized name, last serial), by name."""
        with self._lock:
            entries = [(p.display_name, p.name, p.last_serial) for p in self._projects.values()]
            serial = self.last_serial
        entries.sort(key=lambda entry: entry[1])
        return serial, entries

    def view(self, name: str) -> ProjectView | None:
        with self._lock:
            project = self._projects.get(canonicalize_name(name))
            if project is None:
                return None
            releases = [
                ReleaseView(
                    r.version,
                    r.requires_dist,
                    r.requires_python,
                    r.summary,
                    r.yanked,
                    r.yanked_reason,
                    tuple(sorted(r.files.values(), key=lambda f: f.filename)),
                )
                for r in project.releases.values()
            ]
            view_serial = project.last_serial
        releases.sort(key=lambda r: _version_key(r.version))
        return ProjectView(project.name, project.display_name, view_serial, tuple(releases))

    def filenames(self, name: str) -> list[str]:
        view = self.view(name)
        return [] if view is None else [f.filename for r in view.releases for f in r.files]

    def changelog_since(self, since: int, limit: int | None = None) -> list[ChangelogRow]:
        """Rows with serial > ``since``, ascending, at most ``limit`` (default: the page size)."""
        count = self.changelog_page_size if limit is None else limit
        start = max(since, 0)
        with self._lock:
            chunk = self._rows[start : start + max(count, 0)]
        return [
            ChangelogRow(name, version, fake_epoch(serial), action, serial)
            for serial, (name, version, action) in enumerate(chunk, start + 1)
        ]

    def find_file(self, filename: str) -> FileRecord | None:
        with self._lock:
            return self._files.get(filename)

    # -- file bytes ------------------------------------------------------------------------

    def spec(self, record: FileRecord) -> DistSpec:
        return self._store.spec(record)

    def file_bytes(self, record: FileRecord) -> bytes:
        return self._store.content(record)

    def file_metadata(self, record: FileRecord) -> bytes | None:
        """The ``.metadata`` bytes (wheels only): exactly the dist-info ``METADATA`` member."""
        return self._store.metadata(record)

    def file_info(self, record: FileRecord) -> FileInfo:
        return self._store.info(record)

    def file_path(self, filename: str) -> str:
        """``packages/ab/cd/.../<filename>`` of a live file (raises ChangeRejected if none)."""
        return self.file_info(self._need_file(filename)).path

    def file_content(self, filename: str) -> bytes:
        return self.file_bytes(self._need_file(filename))

    def tune_files(
        self,
        *,
        file_size_max: int | None = None,
        byte_cache: int | None = None,
        synthetic: bool | None = None,
    ) -> None:
        """Benchmark knobs of the file store (see :mod:`.filestore`); call before serving.

        ``file_size_max`` spreads wheel payloads over ``file_size..file_size_max`` bytes,
        ``byte_cache`` sets the in-memory budget for built files, ``synthetic`` swaps every
        file's bytes for a few deterministic non-archive bytes.
        """
        with self._lock:
            if file_size_max is not None:
                self._store.file_size_max = file_size_max
            if synthetic is not None:
                self._store.synthetic = synthetic
            if byte_cache is not None:
                self._store.set_byte_cache(byte_cache)

    def warm(self) -> int:
        """Compute every live file's digests now (and fill the byte cache); returns the count.

        A benchmark calls this before serving, so no client pays for first-use builds.
        """
        with self._lock:
            records = list(self._files.values())
        for record in records:
            self._store.info(record)
        return len(records)

    # -- mutations -------------------------------------------------------------------------

    def create_project(self, name: str) -> NormalizedName:
        """``create`` (then an ``add Owner`` noise row, as PyPI writes)."""
        with self._lock:
            normalized = canonicalize_name(name)
            if not normalized or normalized in self._projects:
                raise ChangeRejected(f"project {name!r} exists or is not a valid name")
            project = ProjectRecord(name, normalized)
            self._projects[normalized] = project
            self._row(project, None, "create")
            self._row(project, None, f"add Owner {owner_of(normalized)}")
            return normalized

    def add_release(
        self,
        name: str,
        version: str,
        *,
        requires_dist: tuple[str, ...] | list[str] = (),
        requires_python: str | None = None,
        kinds: tuple[str, ...] | list[str] = DEFAULT_KINDS,
        summary: str | None = None,
    ) -> list[str]:
        """``new release`` plus one ``add ... file`` row per kind; returns the filenames."""
        with self._lock:
            project = self._need_project(name)
            key = _normalize_version(version)
            if key in project.releases:
                raise ChangeRejected(f"{project.name} {key} exists; use add_file")
            normalized_kinds = [_normalize_kind(kind) for kind in kinds]
            text = summary if summary is not None else f"{project.display_name} test distribution"
            release = ReleaseRecord(project, key, tuple(requires_dist), requires_python, text)
            project.releases[key] = release
            self._row(project, key, "new release")
            return [self._add_file(release, kind) for kind in normalized_kinds]

    def add_file(self, name: str, version: str, kind: str) -> str:
        with self._lock:
            release = self._need_release(name, version)
            return self._add_file(release, _normalize_kind(kind))

    def yank(self, name: str, version: str, reason: str | None = None) -> None:
        with self._lock:
            release = self._need_release(name, version)
            release.yanked, release.yanked_reason = True, reason or None
            self._row(release.project, release.version, "yank release")

    def unyank(self, name: str, version: str) -> None:
        with self._lock:
            release = self._need_release(name, version)
            if not release.yanked:
                raise ChangeRejected(f"{release.project.name} {release.version} is not yanked")
            release.yanked, release.yanked_reason = False, None
            self._row(release.project, release.version, "unyank release")

    def remove_file(self, name: str, filename: str) -> None:
        with self._lock:
            project = self._need_project(name)
            record = self._files.get(filename)
            if record is None or record.release.project is not project:
                raise ChangeRejected(f"{project.name} has no file {filename!r}")
            del record.release.files[filename]
            self._forget_file(record)
            self._row(project, record.release.version, f"remove file {filename}")

    def remove_release(self, name: str, version: str) -> None:
        with self._lock:
            release = self._need_release(name, version)
            for record in release.files.values():
                self._forget_file(record)
            del release.project.releases[release.version]
            self._row(release.project, release.version, "remove release")

    def remove_project(self, name: str) -> None:
        with self._lock:
            project = self._need_project(name)
            for release in project.releases.values():
                for record in release.files.values():
                    self._forget_file(record)
            del self._projects[project.name]
            self._extra_entries.pop(project.name, None)
            self._page_fields.pop(project.name, None)
            self._row(project, None, "remove project")

    def add_role(self, name: str, role: str, user: str) -> None:
        """Role noise (``add Maintainer someone``): changes nothing a mirror serves."""
        with self._lock:
            self._row(self._need_project(name), None, f"add {role} {user}")

    def random_changes(self, n: int, seed: int | None = None) -> list[NormalizedName]:
        """``n`` random events of mixed kinds; returns the distinct names touched, in order.

        The projects in :attr:`protected` (the corpus anchors) are never touched, so tests that
        rely on them stay valid under churn. Without a seed, each call continues a sequence
        derived from the corpus seed, so runs remain reproducible.
        """
        with self._lock:
            if seed is None:
                self._random_calls += 1
                seed = self.seed * 1_000_003 + self._random_calls
            return apply_random_changes(self, n, random.Random(seed))

    # -- hostile injections ----------------------------------------------------------------
    #
    # Not PyPI behaviour: a way for tests to make the index say things PyPI never would.
    # Each injection writes a changelog row naming the project, so mirrors see the change.

    def inject_file_entry(self, name: str, entry: Mapping[str, object]) -> None:
        """Append ``entry`` verbatim to the project's simple JSON ``files`` (and HTML links).

        Nothing is checked: the filename, URL, hashes, size, yanked reason and requires-python
        are whatever the test wrote.
        """
        with self._lock:
            project = self._need_project(name)
            self._extra_entries.setdefault(project.name, []).append(dict(entry))
            self._row(project, None, "fake: inject file entry")

    def override_page(self, name: str, **fields: object) -> None:
        """Replace top-level fields of the project's simple JSON page (``versions``, ``name``,
        ``project_status``...); ``_`` in keyword names is written as ``-``."""
        with self._lock:
            project = self._need_project(name)
            page = self._page_fields.setdefault(project.name, {})
            page.update({key.replace("_", "-"): value for key, value in fields.items()})
            self._row(project, None, "fake: override page")

    def injected(self, name: str) -> tuple[list[dict[str, object]], dict[str, object]]:
        """The injected file entries and page fields of a project (copies)."""
        with self._lock:
            normalized = canonicalize_name(name)
            entries = [dict(e) for e in self._extra_entries.get(normalized, [])]
            return entries, dict(self._page_fields.get(normalized, {}))

    def inject_blob(self, path: str, body: bytes, repeat: int = 1) -> None:
        """Serve ``body`` repeated ``repeat`` times (streamed, with that Content-Length) at
        ``path`` (e.g. ``/elsewhere/x.whl`` or ``/packages/...``), whatever the index holds."""
        if not path.startswith("/") or repeat < 1:
            raise ChangeRejected(f"a blob needs an absolute path and repeat >= 1, not {path!r}")
        with self._lock:
            self._blobs[path] = (bytes(body), repeat)

    def blob(self, path: str) -> tuple[bytes, int] | None:
        with self._lock:
            return self._blobs.get(path)

    def clear_injections(self) -> None:
        """Forget every injection (touched projects get a changelog row)."""
        with self._lock:
            names = set(self._extra_entries) | set(self._page_fields)
            self._extra_entries.clear()
            self._page_fields.clear()
            self._blobs.clear()
            for name in sorted(names):
                project = self._projects.get(name)
                if project is not None:
                    self._row(project, None, "fake: clear injections")

    # -- internals -------------------------------------------------------------------------

    def _row(self, project: ProjectRecord, version: str | None, action: str) -> None:
        self._rows.append((project.display_name, version, action))
        project.last_serial = len(self._rows)

    def _add_file(self, release: ReleaseRecord, kind: str) -> str:
        # The normalized name only has "-" separators, so this is the PEP 427 stem, cheaply.
        stem = f"{release.project.name.replace('-', '_')}-{release.version}"
        filename = f"{stem}.tar.gz" if kind == "sdist" else f"{stem}-{kind}.whl"
        if filename in self._files:
            raise ChangeRejected(f"file {filename} exists")
        record = FileRecord(filename, release, kind, self.last_serial + 1)
        release.files[filename] = record
        self._files[filename] = record
        self._row(release.project, release.version, f"add {record.python_version} file {filename}")
        return filename

    def _forget_file(self, record: FileRecord) -> None:
        self._files.pop(record.filename, None)
        self._store.forget(record)

    def _need_project(self, name: str) -> ProjectRecord:
        project = self._projects.get(canonicalize_name(name))
        if project is None:
            raise ChangeRejected(f"no project {name!r}")
        return project

    def _need_release(self, name: str, version: str) -> ReleaseRecord:
        project = self._need_project(name)
        release = project.releases.get(_normalize_version(version))
        if release is None:
            raise ChangeRejected(f"{project.name} has no release {version!r}")
        return release

    def _need_file(self, filename: str) -> FileRecord:
        record = self.find_file(filename)
        if record is None:
            raise ChangeRejected(f"no file {filename!r}")
        return record

    # Fast paths for corpus generation: trusted input, no validation.

    def _bulk_project(self, display_name: str) -> ProjectRecord:
        project = ProjectRecord(display_name, canonicalize_name(display_name))
        self._projects[project.name] = project
        self._row(project, None, "create")
        self._row(project, None, f"add Owner {owner_of(project.name)}")
        return project

    def _bulk_release(
        self,
        project: ProjectRecord,
        version: str,
        requires_dist: tuple[str, ...],
        requires_python: str | None,
        kinds: tuple[str, ...],
    ) -> ReleaseRecord:
        summary = f"{project.display_name} test distribution"
        release = ReleaseRecord(project, version, requires_dist, requires_python, summary)
        project.releases[version] = release
        self._row(project, version, "new release")
        for kind in kinds:
            self._add_file(release, "py3-none-any" if kind == "wheel" else kind)
        return release


def owner_of(name: str) -> str:
    """The user every project's ``add Owner`` row names."""
    return f"maintainer-of-{name}"[:40]
