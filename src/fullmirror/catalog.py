"""The mirror's own record of what it serves and what it still owes: ``<directory>/state.db``.

A SQLite database, because a PyPI-sized mirror has 700,000 projects and millions of files:
the root index is streamed from it in name order instead of scanning directories, a project's
old file list is looked up when upstream changes it (so removed files are deleted), and the
work still pending survives a kill. SQLite's journal makes every transaction atomic, which is
the guarantee the temp-then-rename rule gives the page files.

Tables: ``projects`` (name, display name, serial reached, file record), ``paths`` (which
project owns each file path, so no project can delete another's files), ``pending`` (changes
announced but not yet on disk, with the checkpoint they arrived after and their failures) and
``meta`` (the changelog cursor), ``deleted`` (projects removed by ``fullmirror delete``, with the
serial they had, so that only a newer change upstream brings them back), ``verified``
(projects a ``verify`` pass has finished, so a killed pass resumes) and ``held`` (projects with
a release that ``min-age`` holds back, and when it becomes old enough to mirror), ``listing``
(upstream's whole project list while a run compares it with ``projects``: at PyPI's size that
list is too big to hold as Python objects).

Nothing here reads a whole table into memory: long walks go in name order, a batch at a time.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName

from fullmirror.errors import StateError, StorageError
from fullmirror.models import ListedProject, MirroredPage, MirroredProject, SizeSample
from fullmirror.state import BadState, decode_files, decode_page, encode_extra, encode_files

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects(
    name TEXT PRIMARY KEY, display TEXT NOT NULL, serial INTEGER NOT NULL,
    files TEXT NOT NULL, extra TEXT NOT NULL);
-- The root index walks name, display name and serial only: from this index it reads ~40 MB at
-- PyPI's size instead of every row's file record (over a gigabyte), 2.6 s against 7.6 s cold.
CREATE INDEX IF NOT EXISTS projects_by_name ON projects(name, display, serial);
CREATE TABLE IF NOT EXISTS paths(path TEXT PRIMARY KEY, project TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS paths_by_project ON paths(project);
CREATE TABLE IF NOT EXISTS pending(
    name TEXT PRIMARY KEY, serial INTEGER NOT NULL, since INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, display TEXT);
CREATE TABLE IF NOT EXISTS deleted(name TEXT PRIMARY KEY, serial INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS verified(name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS held(name TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS listing(
    name TEXT PRIMARY KEY, display TEXT NOT NULL, serial INTEGER NOT NULL);
"""

#: Rows one query of a name-ordered walk fetches: memory stays flat whatever the mirror's size.
BATCH = 2000
#: Project records read at once by :meth:`Catalog.iter_pages`.
PAGE_BATCH = 200

#: Project records :meth:`Catalog.sample_sizes` reads.
SAMPLE = 64

#: Seconds a write waits for another process's transaction before it counts as a failure.
BUSY_WAIT = 60.0

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
        #: The listing lives in a temporary table of this connection (see :meth:`scratch_listing`).
        self._scratch = False
        try:
            # The sync child processes of a run share this database: a writer waits its turn.
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=BUSY_WAIT
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:
            raise StorageError(str(path), _reason(exc)) from exc
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
        """Every mirrored project in name order."""
        for batch in self.project_batches():
            yield from batch

    def project_batches(self) -> Iterator[list[MirroredProject]]:
        """Every mirrored project in name order, :data:`BATCH` at a time (the root index)."""
        for rows in self._pages("SELECT name, display, serial FROM projects"):
            yield [MirroredProject(NormalizedName(n), d, s) for n, d, s in rows]

    def iter_pages(self, share: tuple[int, int] = (0, 1)) -> Iterator[tuple[MirroredPage, bool]]:
        """Every mirrored project's record in name order, each with whether the current
        verify pass already found it sound; read :data:`PAGE_BATCH` at a time (records of
        large projects run to megabytes, so fewer than :data:`BATCH`). ``share`` (k, n): only
        the k-th of n disjoint shares, for n processes splitting a pass."""
        part, parts = share
        query = (
            "SELECT p.name, p.display, p.serial, p.files, p.extra, v.name IS NOT NULL"
            " FROM projects p LEFT JOIN verified v ON v.name = p.name"
        )
        if parts > 1:
            query += f" WHERE p.rowid % {int(parts)} = {int(part)}"
        for rows in self._pages(query, table="p", where=parts > 1, limit=PAGE_BATCH):
            for name, display, serial, files, extra, sound in rows:
                page = self._decode(NormalizedName(name), (display, serial, files, extra))
                yield page, bool(sound)

    def sample_sizes(self, count: int = SAMPLE) -> SizeSample:
        """The files and bytes of up to ``count`` projects spread over the whole catalog,
        looked up by row number, so the cost is the same at any size."""
        with self._lock:
            top = self._db.execute("SELECT max(rowid) FROM projects").fetchone()[0]
            if top is None:
                return SizeSample(0, 0, 0)
            # Rows deleted since leave gaps: a few numbers find nothing, which only shrinks
            # the sample.
            rowids = sorted({1 + k * (int(top) - 1) // max(1, count - 1) for k in range(count)})
            marks = ",".join("?" * len(rowids))
            records = self._db.execute(
                f"SELECT files FROM projects WHERE rowid IN ({marks})", rowids
            ).fetchall()
        files = size = 0
        for (text,) in records:
            try:
                listed = decode_files(text)
            except BadState as exc:
                raise StateError(str(self.path), str(exc), _RECOVER) from exc
            files += len(listed)
            size += sum(f.size or 0 for f in listed)
        return SizeSample(len(records), files, size)

    def owners(self, paths: Iterable[str]) -> dict[str, NormalizedName]:
        """The project that owns each of ``paths`` that has an owner, in one query per 500."""
        wanted = list(dict.fromkeys(paths))
        found: dict[str, NormalizedName] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._db.execute(
                    f"SELECT path, project FROM paths WHERE path IN ({marks})", chunk
                ).fetchall()
            found.update((str(path), NormalizedName(project)) for path, project in rows)
        return found

    def claim(self, name: NormalizedName, paths: Iterable[str]) -> None:
        """Make ``name`` the owner of ``paths`` before it writes them, so files a killed run
        placed are still known (and removed) if upstream drops them before the project settles."""
        rows = [(p, name) for p in paths]  # read before locking: ``paths`` may read this catalog
        with self._lock, self._write():
            self._db.executemany("INSERT OR IGNORE INTO paths VALUES(?, ?)", rows)

    def claimed(self, name: NormalizedName) -> list[str]:
        """Every file path ``name`` owns: the ones it serves and the ones it has claimed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT path FROM paths WHERE project=? ORDER BY path", (name,)
            ).fetchall()
        return [str(r[0]) for r in rows]

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
            self._db.execute("DELETE FROM deleted WHERE name=?", (page.name,))
            self._db.execute("DELETE FROM verified WHERE name=?", (page.name,))

    def drop_project(self, name: NormalizedName) -> None:
        with self._lock, self._write():
            self._db.execute("DELETE FROM projects WHERE name=?", (name,))
            self._db.execute("DELETE FROM paths WHERE project=?", (name,))
            self._db.execute("DELETE FROM pending WHERE name=?", (name,))
            self._db.execute("DELETE FROM verified WHERE name=?", (name,))
            self._db.execute("DELETE FROM held WHERE name=?", (name,))

    def delete_project(self, name: NormalizedName, serial: int) -> None:
        """Drop ``name`` on request and remember it: only a change newer than ``serial`` returns."""
        with self._lock, self._write():
            self._db.execute("DELETE FROM projects WHERE name=?", (name,))
            self._db.execute("DELETE FROM paths WHERE project=?", (name,))
            self._db.execute("DELETE FROM pending WHERE name=?", (name,))
            self._db.execute("DELETE FROM verified WHERE name=?", (name,))
            self._db.execute("DELETE FROM held WHERE name=?", (name,))
            self._db.execute("INSERT OR REPLACE INTO deleted VALUES(?, ?)", (name, serial))

    # -- releases held back by min-age -----------------------------------------------

    def set_hold(self, name: NormalizedName, until: float | None) -> None:
        """Remember when ``name`` has a held-back release to mirror (None: it has none)."""
        with self._lock, self._write():
            if until is None:
                self._db.execute("DELETE FROM held WHERE name=?", (name,))
            else:
                self._db.execute("INSERT OR REPLACE INTO held VALUES(?, ?)", (name, until))

    def due_holds(self, now: float) -> dict[NormalizedName, int]:
        """Projects whose held-back release is old enough by ``now``, with their serial."""
        with self._lock:
            rows = self._db.execute(
                "SELECT held.name, coalesce(projects.serial, 0) FROM held "
                "LEFT JOIN projects ON projects.name = held.name WHERE held.until <= ?",
                (now,),
            ).fetchall()
        return {NormalizedName(name): int(serial) for name, serial in rows}

    # -- verify passes ---------------------------------------------------------------

    def verified_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM verified").fetchone()[0])

    def mark_verified(self, names: Iterable[NormalizedName]) -> None:
        rows = [(n,) for n in names]
        with self._lock, self._write():
            self._db.executemany("INSERT OR REPLACE INTO verified VALUES(?)", rows)

    def clear_verified(self) -> None:
        with self._lock, self._write():
            self._db.execute("DELETE FROM verified")

    # -- files a verify pass found linked ----------------------------------------------

    def reference(self, paths: Iterable[str]) -> None:
        """Remember ``paths`` as linked by a page, for this connection only: a verify pass
        over millions of files keeps the set here instead of in Python objects."""
        rows = [(p,) for p in paths]
        with self._lock, self._temp():
            self._db.executemany("INSERT OR IGNORE INTO temp.referenced VALUES(?)", rows)

    def probe(self, paths: Iterable[str]) -> None:
        """Remember ``paths`` as found on disk, for :meth:`unreferenced`; for this connection
        only, like :meth:`reference`."""
        rows = [(p,) for p in paths]
        with self._lock, self._temp():
            self._db.executemany("INSERT INTO temp.probe VALUES(?)", rows)

    def unreferenced(self) -> list[str]:
        """The paths :meth:`probe` was given that no :meth:`reference` call named, sorted."""
        with self._lock, self._temp():
            found = self._db.execute(
                "SELECT path FROM temp.probe WHERE path NOT IN (SELECT path FROM temp.referenced)"
                " ORDER BY path"
            ).fetchall()
        return [str(path) for (path,) in found]

    def forget_references(self) -> None:
        with self._lock:
            self._db.execute("DROP TABLE IF EXISTS temp.referenced")
            self._db.execute("DROP TABLE IF EXISTS temp.probe")

    @contextlib.contextmanager
    def _temp(self) -> Iterator[None]:
        """One transaction over this connection's scratch tables (made on first use); a
        deferred BEGIN that touches only ``temp`` takes no lock other processes would see."""
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS referenced(path TEXT PRIMARY KEY)")
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS probe(path TEXT)")
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- pending work ----------------------------------------------------------------

    def add_pending(
        self,
        changes: Mapping[NormalizedName, int],
        *,
        since: int,
        display_names: Mapping[NormalizedName, str] | None = None,
    ) -> None:
        """Record announced changes; an entry already pending keeps its older ``since``.

        A project removed by ``fullmirror delete`` is skipped unless the change is newer than
        the serial it had when it was deleted; a newer change forgets the deletion.
        """
        names = display_names or {}
        with self._lock, self._write():
            deleted = dict(self._db.execute("SELECT name, serial FROM deleted").fetchall())
            if deleted:
                changes = {n: s for n, s in changes.items() if s > deleted.get(n, -1)}
                self._db.executemany(
                    "DELETE FROM deleted WHERE name=?", ((n,) for n in changes if n in deleted)
                )
            self._db.executemany(
                "INSERT INTO pending(name, serial, since, display) VALUES(?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET serial=max(serial, excluded.serial), "
                "display=coalesce(excluded.display, display)",
                ((n, s, since, names.get(n)) for n, s in changes.items()),
            )

    def forget_deleted(self, names: Iterable[NormalizedName]) -> None:
        """Let ``fullmirror sync`` bring back projects ``fullmirror delete`` removed."""
        rows = [(n,) for n in names]
        with self._lock, self._write():
            self._db.executemany("DELETE FROM deleted WHERE name=?", rows)

    def pending(self) -> dict[NormalizedName, Pending]:
        """Every pending change at once; a run walks them with :meth:`iter_pending` instead."""
        return {p.name: p for p in self.iter_pending()}

    def iter_pending(self) -> Iterator[Pending]:
        """Pending changes in name order; ones settled meanwhile are skipped, not repeated."""
        query = "SELECT name, serial, since, attempts, error, display FROM pending"
        for r in self._walk(query):
            yield _pending(r)

    def pending_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])

    def pending_for(self, names: Iterable[NormalizedName]) -> list[Pending]:
        query = "SELECT name, serial, since, attempts, error, display FROM pending WHERE name=?"
        found = []
        wanted = list(names)
        with self._lock:
            for name in wanted:
                r = self._db.execute(query, (name,)).fetchone()
                if r is not None:
                    found.append(_pending(r))
        return found

    def failing(self, attempts: int) -> list[Pending]:
        """Pending changes that have failed at least ``attempts`` runs in a row, by name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, serial, since, attempts, error, display FROM pending "
                "WHERE attempts >= ? ORDER BY name",
                (attempts,),
            ).fetchall()
        return [_pending(r) for r in rows]

    def fail(self, name: NormalizedName, error: str) -> None:
        with self._lock, self._write():
            self._db.execute(
                "UPDATE pending SET attempts=attempts+1, error=? WHERE name=?", (error, name)
            )

    def settle(self, names: Iterable[NormalizedName]) -> None:
        """Forget pending changes that need no work (e.g. a project that never existed here)."""
        rows = [(n,) for n in names]
        with self._lock, self._write():
            self._db.executemany("DELETE FROM pending WHERE name=?", rows)

    def lowest_pending_since(self) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT min(since) FROM pending").fetchone()
        return None if row[0] is None else int(row[0])

    # -- upstream's listing ----------------------------------------------------------

    def listing_sink(self) -> ListingLoad:
        """Where a streamed upstream listing is stored, to be compared with the mirror here."""
        return ListingLoad(self)

    def listed_changes(self) -> Iterator[list[ListedProject]]:
        """Batches, in name order, of listed projects newer than the mirror's copy (or not
        mirrored). A listed serial of 0 means the upstream does not say (a bandersnatch tree
        served as an index): such projects are always checked."""
        # Left to itself SQLite looks the serial up through the primary key, in the table's
        # rows (file records and all): at PyPI's size that read 1.28 GB from a cold disk per
        # run; the covering index holds the serial too, in 92 MB (benchmarks/README.md).
        query = (
            "SELECT listing.name, listing.display, listing.serial FROM listing "
            "LEFT JOIN projects INDEXED BY projects_by_name ON projects.name = listing.name "
            "WHERE (projects.serial IS NULL OR listing.serial > projects.serial "
            "OR listing.serial = 0)"
        )
        batch: list[ListedProject] = []
        for name, display, serial in self._walk(query, table="listing", where=True):
            batch.append(ListedProject(NormalizedName(name), display, serial))
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def unlisted(self) -> list[NormalizedName]:
        """Mirrored projects the stored listing does not name: upstream removed them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name FROM projects WHERE name NOT IN (SELECT name FROM listing) "
                "ORDER BY name"
            ).fetchall()
        return [NormalizedName(r[0]) for r in rows]

    def listing_max_serial(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT max(serial) FROM listing").fetchone()
        return int(row[0] or 0)

    def clear_listing(self) -> None:
        with self._lock, self._listing_write():
            self._db.execute("DELETE FROM listing")

    def scratch_listing(self) -> None:
        """From now on keep upstream's listing in a temporary table of this connection: its
        name hides the stored one, so the comparisons above read it unchanged, while the state
        database is neither written nor locked (``plan`` writes nothing, and a run may be
        using the database)."""
        with self._lock:
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS listing("
                "name TEXT PRIMARY KEY, display TEXT NOT NULL, serial INTEGER NOT NULL)"
            )
            self._scratch = True

    def _listing_write(self) -> _Transaction:
        # A temporary table needs no lock on the database file itself.
        return _Transaction(self._db, str(self.path), immediate=not self._scratch)

    # -- internals -------------------------------------------------------------------

    def _walk(self, query: str, *, table: str = "", where: bool = False) -> Iterator[Any]:
        """Rows of ``query`` in name order (see :meth:`_pages`)."""
        for rows in self._pages(query, table=table, where=where):
            yield from rows

    def _pages(
        self, query: str, *, table: str = "", where: bool = False, limit: int = 0
    ) -> Iterator[list[Any]]:
        """Rows of ``query`` in name order, fetched :data:`BATCH` at a time after the last
        name seen, so no cursor stays open between batches (other threads share the
        connection) and rows removed meanwhile are simply not met."""
        column = f"{table}.name" if table else "name"
        joiner = " AND " if where else " WHERE "
        limit = limit or BATCH
        paged = f"{query}{joiner}{column} > ? ORDER BY {column} LIMIT {limit}"
        after = ""
        while True:
            with self._lock:
                rows = self._db.execute(paged, (after,)).fetchall()
            if rows:
                yield rows
            if len(rows) < limit:
                return
            after = str(rows[-1][0])

    def _decode(self, name: NormalizedName, row: tuple[str, int, str, str]) -> MirroredPage:
        try:
            return decode_page(name, row[0], row[1], row[2], row[3])
        except BadState as exc:
            raise StateError(str(self.path), str(exc), _RECOVER) from exc

    def _write(self) -> _Transaction:
        return _Transaction(self._db, str(self.path))


class ListingLoad:
    """The ``listing`` table filled from a stream: one entry per project, the highest serial
    (and the display name sent with it) winning when several spellings normalize alike."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def restart(self) -> None:
        self._catalog.clear_listing()

    def add(self, batch: list[ListedProject]) -> None:
        if not batch:
            return
        catalog = self._catalog
        with catalog._lock, catalog._listing_write():
            catalog._db.executemany(
                "INSERT INTO listing VALUES(?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "display=excluded.display, serial=excluded.serial "
                "WHERE excluded.serial > listing.serial",
                ((p.name, p.display_name, p.serial) for p in batch),
            )


class _Transaction:
    def __init__(self, db: sqlite3.Connection, path: str, *, immediate: bool = True) -> None:
        self._db = db
        self._path = path
        self._begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    def __enter__(self) -> None:
        try:
            self._db.execute(self._begin)
        except sqlite3.OperationalError as err:
            raise StorageError(self._path, _reason(err)) from err

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._db.execute("COMMIT")
            else:
                self._db.execute("ROLLBACK")
        except sqlite3.OperationalError as err:
            raise StorageError(self._path, _reason(err)) from err
        if isinstance(exc, sqlite3.OperationalError):
            # A write inside the transaction failed (disk full, read-only): not a traceback.
            raise StorageError(self._path, _reason(exc)) from exc


def _pending(row: Any) -> Pending:
    name, serial, since, attempts, error, display = row
    return Pending(NormalizedName(str(name)), serial, since, attempts, error, display)


def _reason(err: sqlite3.Error) -> str:
    """SQLite's complaint, in the words the rest of the tool uses for a full or read-only disk."""
    code = getattr(err, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return "no space left on the device; free some space"
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return f"{err}; make the mirror directory writable by this user"
    return str(err)
