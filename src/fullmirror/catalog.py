"""The mirror's own record of what it serves and what it still owes: ``<directory>/state.db``.

A SQLite database, because a PyPI-sized mirror has 700,000 projects and millions of files:
the root index is streamed from it in name order instead of scanning directories, a project's
old file list is looked up when upstream changes it (so removed files are deleted), and the
work still pending survives a kill. SQLite's journal makes every transaction atomic, which is
the guarantee the temp-then-rename rule gives the page files.

Tables: ``projects`` (name, display name, serial reached, file record), ``paths`` (which
project owns each file path, so no project can delete another's files), ``pending`` (changes
announced but not yet on disk, with the checkpoint they arrived after and their failures) and
``meta`` (the changelog cursor).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName

from fullmirror.errors import StateError, StorageError
from fullmirror.models import MirroredPage, MirroredProject
from fullmirror.state import BadState, decode_page, encode_extra, encode_files

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects(
    name TEXT PRIMARY KEY, display TEXT NOT NULL, serial INTEGER NOT NULL,
    files TEXT NOT NULL, extra TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS paths(path TEXT PRIMARY KEY, project TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS paths_by_project ON paths(project);
CREATE TABLE IF NOT EXISTS pending(
    name TEXT PRIMARY KEY, serial INTEGER NOT NULL, since INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, display TEXT);
"""

_RECOVER = "move it aside and run again: the mirror is rebuilt from upstream, reusing files on disk"


@dataclass(frozen=True, slots=True)
class Pending:
    name: NormalizedName
    #: The serial that announced the change: the project page must be at least this new.
    serial: int
    #: The checkpoint this change arrived after; ``status`` may not pass it until done.
    since: int
    attempts: int
    error: str | None
    display_name: str | None


class Catalog:
    """The state database of one mirror directory. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:
            raise StorageError(str(path), str(exc)) from exc
        except sqlite3.DatabaseError as exc:
            raise StateError(
                str(path), f"not a fullmirror state database ({exc})", _RECOVER
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta ------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self._write():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, value))

    # -- projects --------------------------------------------------------------------

    def serials(self) -> dict[NormalizedName, int]:
        with self._lock:
            rows = self._db.execute("SELECT name, serial FROM projects").fetchall()
        return {NormalizedName(name): serial for name, serial in rows}

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM projects").fetchone()[0])

    def get(self, name: NormalizedName) -> MirroredPage | None:
        with self._lock:
            row = self._db.execute(
                "SELECT display, serial, files, extra FROM projects WHERE name=?", (name,)
            ).fetchone()
        if row is None:
            return None
        return self._decode(name, row)

    def iter_projects(self) -> Iterator[MirroredProject]:
        """Every mirrored project in name order, for the root index."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, display, serial FROM projects ORDER BY name"
            ).fetchall()
        for name, display, serial in rows:
            yield MirroredProject(NormalizedName(name), display, serial)

    def iter_pages(self) -> Iterator[MirroredPage]:
        with self._lock:
            names = [r[0] for r in self._db.execute("SELECT name FROM projects ORDER BY name")]
        for name in names:
            page = self.get(NormalizedName(name))
            if page is not None:
                yield page

    def owner(self, path: str) -> NormalizedName | None:
        with self._lock:
            row = self._db.execute("SELECT project FROM paths WHERE path=?", (path,)).fetchone()
        return None if row is None else NormalizedName(row[0])

    def put_project(self, page: MirroredPage) -> None:
        """Record ``page`` as served and settle its pending change, in one transaction."""
        paths = [f.location for f in page.files if f.is_local]
        with self._lock, self._write():
            self._db.execute(
                "INSERT OR REPLACE INTO projects VALUES(?, ?, ?, ?, ?)",
                (
                    page.name,
                    page.display_name,
                    page.serial,
                    encode_files(page.files),
                    encode_extra(page),
                ),
            )
            self._db.execute("DELETE FROM paths WHERE project=?", (page.name,))
            self._db.executemany(
                "INSERT OR REPLACE INTO paths VALUES(?, ?)", ((p, page.name) for p in paths)
            )
            self._db.execute("DELETE FROM pending WHERE name=?", (page.name,))

    def drop_project(self, name: NormalizedName) -> None:
        with self._lock, self._write():
            self._db.execute("DELETE FROM projects WHERE name=?", (name,))
            self._db.execute("DELETE FROM paths WHERE project=?", (name,))
            self._db.execute("DELETE FROM pending WHERE name=?", (name,))

    # -- pending work ----------------------------------------------------------------

    def add_pending(
        self,
        changes: Mapping[NormalizedName, int],
        *,
        since: int,
        display_names: Mapping[NormalizedName, str] | None = None,
    ) -> None:
        """Record announced changes; an entry already pending keeps its older ``since``."""
        names = display_names or {}
        with self._lock, self._write():
            self._db.executemany(
                "INSERT INTO pending(name, serial, since, display) VALUES(?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET serial=max(serial, excluded.serial), "
                "display=coalesce(excluded.display, display)",
                ((n, s, since, names.get(n)) for n, s in changes.items()),
            )

    def pending(self) -> dict[NormalizedName, Pending]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, serial, since, attempts, error, display FROM pending"
            ).fetchall()
        return {
            NormalizedName(r[0]): Pending(NormalizedName(r[0]), r[1], r[2], r[3], r[4], r[5])
            for r in rows
        }

    def fail(self, name: NormalizedName, error: str) -> None:
        with self._lock, self._write():
            self._db.execute(
                "UPDATE pending SET attempts=attempts+1, error=? WHERE name=?", (error, name)
            )

    def settle(self, names: Iterable[NormalizedName]) -> None:
        """Forget pending changes that need no work (e.g. a project that never existed here)."""
        with self._lock, self._write():
            self._db.executemany("DELETE FROM pending WHERE name=?", ((n,) for n in names))

    def lowest_pending_since(self) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT min(since) FROM pending").fetchone()
        return None if row[0] is None else int(row[0])

    # -- internals -------------------------------------------------------------------

    def _decode(self, name: NormalizedName, row: tuple[str, int, str, str]) -> MirroredPage:
        try:
            return decode_page(name, row[0], row[1], row[2], row[3])
        except BadState as exc:
            raise StateError(str(self.path), str(exc), _RECOVER) from exc

    def _write(self) -> _Transaction:
        return _Transaction(self._db, str(self.path))


class _Transaction:
    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._db.execute("COMMIT")
            else:
                self._db.execute("ROLLBACK")
        except sqlite3.OperationalError as err:
            raise StorageError(self._path, str(err)) from err
