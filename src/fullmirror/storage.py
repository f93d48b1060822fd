"""The mirror directory on disk: with :mod:`fullmirror.parts` (its temp files and syncs), the
only code that writes files under it.

Every write goes to a temp file beside its target (``.<name>.part``) and is renamed over the
target once complete, so a reader — nginx, pip through ``file://``, a killed run's successor —
sees the old bytes or the new ones, never a mix. The temp name is fixed per target so that a
killed download can resume from it and a later run can sweep what was left.

Durability against power loss is grouped: a release file is renamed into place without its own
fsync, and before any page links it, one filesystem sync (:meth:`Storage.barrier`) makes every
file written so far durable; concurrent projects share that sync. A group of pages is written to
temp files, made durable by one barrier, and only then renamed. So a page that survives a crash
links only files that survived it, at the cost of one sync per batch instead of one per file.

Paths come in as POSIX strings relative to the mirror root (``web/simple/foo/index.html``) and
are refused if they could leave the root: absolute, ``..``, backslashes, NUL, or a planted
symlink that resolves outside.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat as stat_module
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import filelock

from fullmirror.errors import LockHeld, StorageError, UnsafePath
from fullmirror.parts import (
    PART_SUFFIX,
    WRITE_FLAGS,
    Barrier,
    Out,
    Part,
    describe,
    filesystem_sync,
    make_folder,
    part_name,
)

#: Files up to this size are hashed from one read instead of through a file object.
_SMALL_FILE = 1 << 20
#: Opening an existing file: never through a final symlink, never blocking on a FIFO.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
#: Seconds a run waits for sync processes of a killed earlier run to be gone.
HELPER_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class FileStat:
    size: int
    mtime: float


def _read_all(fd: int, size: int) -> bytes:
    """An open regular file's bytes, read to its end: one read when it holds the ``size``
    bytes its fstat gave (a file that changed since is read on until a read returns none)."""
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    chunks = [data]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


class Storage:
    """The mirror directory ``root`` (holding ``web/`` and the state files)."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self._real_root = os.path.realpath(root)
        self._real_dirs: dict[str, str] = {}
        self._helper_fd: int | None = None
        self._barrier = Barrier(filesystem_sync(self._real_root))
        self._fsync = fsync
        #: Absolute paths written during this run, for ``diff-file``.
        self.written: list[str] = []
        self.record_writes = False

    # -- paths ---------------------------------------------------------------------------

    def path(self, rel: str) -> Path:
        """The absolute path of ``rel``, or UnsafePath if it could leave the root."""
        return Path(self._abs(rel))

    def _abs(self, rel: str) -> str:
        """:meth:`path` as a string: the hot paths hand it straight to ``os`` calls, and
        building a ``Path`` cost more than the lookup itself."""
        if (
            not rel
            or rel.startswith("/")
            or "\\" in rel
            or "\x00" in rel
            or any(part in ("", ".", "..") for part in rel.split("/"))
        ):
            raise UnsafePath(rel)
        folder, _, name = rel.rpartition("/")
        parent = self._real_dir(folder)
        if parent is None:
            raise UnsafePath(rel)
        return f"{parent}/{name}"

    def _real_dir(self, folder: str) -> str | None:
        """The real path of ``folder`` (relative, already checked), or None if it leaves the
        root. Resolved one component at a time from the nearest folder already known, so a
        lookup costs one lstat instead of one per component of the absolute path; a symlink
        planted anywhere is followed with realpath and judged by where it lands. Folders that
        exist are remembered for the run (every file of a project shares its few folders)."""
        if not folder:
            return self._real_root
        found = self._real_dirs.get(folder)
        if found is not None:
            return found
        parent_rel, _, last = folder.rpartition("/")
        parent = self._real_dir(parent_rel)
        if parent is None:
            return None
        candidate = os.path.join(parent, last)
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            # Not there (yet): nothing to follow, and a folder made later is looked at again.
            return candidate
        if stat_module.S_ISLNK(mode):
            candidate = os.path.realpath(candidate)
            if candidate != self._real_root and not candidate.startswith(self._real_root + os.sep):
                return None
            if not os.path.isdir(candidate):
                return candidate
        elif not stat_module.S_ISDIR(mode):
            return candidate
        if len(self._real_dirs) > 65536:
            self._real_dirs.clear()
        self._real_dirs[folder] = candidate
        return candidate

    # -- reading -------------------------------------------------------------------------

    def read_bytes(self, rel: str, *, size: int | None = None) -> bytes | None:
        """The bytes of the regular file at ``rel``, or None: absent, or anything else there
        (a planted symlink, a folder, a FIFO). With ``size``: also None when the file is not
        that long, without reading it."""
        try:
            fd = os.open(self._abs(rel), _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            raise StorageError(rel, describe(exc)) from exc
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                return None
            if size is not None and st.st_size != size:
                return None
            return _read_all(fd, st.st_size)
        except OSError as exc:
            raise StorageError(rel, describe(exc)) from exc
        finally:
            os.close(fd)

    def stat(self, rel: str) -> FileStat | None:
        """Size and mtime of a regular file, or None (a planted symlink counts as absent)."""
        try:
            st = os.stat(self._abs(rel), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_module.S_ISREG(st.st_mode):
            return None
        return FileStat(st.st_size, st.st_mtime)

    def inspect(
        self, rel: str, algorithm: str | None, size: int | None
    ) -> tuple[FileStat | None, str | None]:
        """Size and mtime of a regular file and, when ``algorithm`` is given and the size is
        ``size`` (or unknown), its digest: both through one open descriptor, so a file costs
        one path lookup. Anything but a regular file (a planted symlink, a FIFO) is absent."""
        try:
            fd = os.open(self._abs(rel), _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None, None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None, None
            raise StorageError(rel, describe(exc)) from exc
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                return None, None
            found = FileStat(st.st_size, st.st_mtime)
            if algorithm is None or (size is not None and st.st_size != size):
                return found, None
            h = (
                hashlib.new(algorithm)
                if algorithm != "blake2b_256"
                else hashlib.blake2b(digest_size=32)
            )
            if st.st_size <= _SMALL_FILE:
                # Most files of a mirror are small: one read, no file object around it.
                h.update(_read_all(fd, st.st_size))
                return found, h.hexdigest()
            with open(fd, "rb", closefd=False) as f:
                # file_digest reads into one reused buffer and hashes without the GIL.
                return found, hashlib.file_digest(f, lambda: h).hexdigest()
        except OSError as exc:
            raise StorageError(rel, describe(exc)) from exc
        finally:
            os.close(fd)

    def hash_file(self, rel: str, algorithm: str) -> str:
        h = (
            hashlib.new(algorithm)
            if algorithm != "blake2b_256"
            else hashlib.blake2b(digest_size=32)
        )
        with open(self._abs(rel), "rb") as f:
            # file_digest reads into one reused buffer and hashes without holding the GIL.
            return hashlib.file_digest(f, lambda: h).hexdigest()

    # -- writing -------------------------------------------------------------------------

    def write_if_changed(self, rel: str, data: bytes) -> bool:
        """Atomically replace ``rel`` with ``data`` unless it already holds exactly that."""
        if self._holds(rel, data):
            return False
        with self.open_part(rel, resume=False) as part:
            try:
                part.file.write(data)
            except OSError as exc:
                raise StorageError(rel, describe(exc)) from exc
            part.commit()
        return True

    def write_stream_if_changed(self, rels: Sequence[str], chunks: Iterable[bytes]) -> list[str]:
        """Atomically replace each of ``rels`` with the concatenated ``chunks`` unless it
        already holds exactly those bytes; the targets that changed. See
        :meth:`write_streams_if_changed`."""
        return self.write_streams_if_changed([rels], ([chunk] for chunk in chunks))

    def write_streams_if_changed(
        self, groups: Sequence[Sequence[str]], pieces: Iterable[Sequence[bytes]]
    ) -> list[str]:
        """Write several documents from one pass of ``pieces``, each item holding the next
        piece of every document: the document ``i`` goes to every path of ``groups[i]``.

        For documents too big to hold at once: each target's old bytes are compared piece
        by piece while the new ones are written; a target that already held exactly the new
        document keeps its file untouched, the others are replaced atomically. Returns the
        targets that changed."""
        parts: list[list[Part]] = []
        olds: list[list[_Same]] = []
        try:
            for rels in groups:
                parts.append([])
                olds.append([])
                for rel in rels:
                    parts[-1].append(self.open_part(rel, resume=False))
                    olds[-1].append(_Same(self._open_old(rel)))
            for row in pieces:
                for chunk, group_parts, group_olds in zip(row, parts, olds, strict=True):
                    for part, old in zip(group_parts, group_olds, strict=True):
                        try:
                            part.file.write(chunk)
                        except OSError as exc:
                            raise StorageError(part.rel, describe(exc)) from exc
                        old.compare(chunk)
            changed = []
            for group_parts, group_olds in zip(parts, olds, strict=True):
                for part, old in zip(group_parts, group_olds, strict=True):
                    if not old.ends_here():
                        part.commit()
                        changed.append(part.rel)
            return changed
        finally:
            for group_olds in olds:
                for old in group_olds:
                    old.close()
            for group_parts in parts:
                for part in group_parts:
                    part.close(keep=False)

    def holds_stream(self, rel: str, chunks: Iterable[bytes]) -> bool:
        """Whether ``rel`` holds exactly the concatenated ``chunks``, compared piece by piece."""
        old = _Same(self._open_old(rel))
        try:
            for chunk in chunks:
                if not old.compare(chunk):
                    return False
            return old.ends_here()
        finally:
            old.close()

    def read_head(self, rel: str, size: int) -> bytes | None:
        """The first ``size`` bytes of a regular file, or None."""
        f = self._open_old(rel)
        if f is None:
            return None
        with f:
            return f.read(size)

    def _open_old(self, rel: str) -> BinaryIO | None:
        """The current regular file at ``rel`` for reading, or None."""
        if self.stat(rel) is None:
            return None
        try:
            return open(self._abs(rel), "rb")
        except OSError:
            return None

    def _holds(self, rel: str, data: bytes) -> bool:
        """Whether ``rel`` already holds exactly ``data``; the size tells most changes apart
        without reading the old bytes back."""
        return self.read_bytes(rel, size=len(data)) == data

    def barrier(self) -> None:
        """Make every file written so far durable (one filesystem sync, shared by threads)."""
        if not self._fsync:
            return
        try:
            self._barrier.wait()
        except OSError as exc:
            raise StorageError(str(self.root), describe(exc)) from exc

    def write_group(self, files: Mapping[str, bytes | None]) -> int:
        """Write several files so that none replaces its target before all are durable;
        ``None`` removes a file. Unchanged files are left alone. Returns how many changed.

        Entries given the very same bytes object (a project's ``index.html`` and
        ``index.v1_html``, the two JSON API copies) become hard links of one file: every
        write replaces a file whole and never changes one in place, so the names cannot
        drift apart, and each such name saves a file's creation and its inode."""
        staged: list[Part] = []
        twins: list[tuple[str, Part, bytes]] = []
        by_data: dict[int, Part] = {}
        try:
            for rel, data in files.items():
                if data is None:
                    continue
                if self._holds(rel, data):
                    continue
                twin = by_data.get(id(data))
                if twin is not None:
                    twins.append((rel, twin, data))
                    continue
                part = self.open_part(rel, resume=False)
                staged.append(part)
                by_data[id(data)] = part
                try:
                    part.file.write(data)
                    part.file.close()
                except OSError as exc:
                    raise StorageError(rel, describe(exc)) from exc
            if staged:
                self.barrier()
            for rel, twin, data in twins:
                self._link_twin(rel, twin, data)
            for part in staged:
                part.commit(durable=False)
        finally:
            for part in staged:
                part.close(keep=False)
        removed = sum(self.remove(rel) for rel, data in files.items() if data is None)
        return len(staged) + len(twins) + removed

    def _link_twin(self, rel: str, twin: Part, data: bytes) -> None:
        """Put at ``rel`` a hard link of ``twin``'s durable temp file (written as a file of
        its own where the filesystem has no hard links)."""
        target, temp, folder = self._target_and_temp(rel)
        try:
            make_folder(folder)
            if os.path.lexists(temp):
                self._remove_any(Path(temp))
            os.link(twin.temp, temp)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise StorageError(rel, describe(exc)) from exc
            self.write_if_changed(rel, data)
            return
        try:
            os.replace(temp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise StorageError(rel, describe(exc)) from exc
        if self.record_writes:
            self.written.append(target)

    def open_part(self, rel: str, *, resume: bool) -> Part:
        """A temp file beside ``rel``; ``resume`` keeps the bytes a killed attempt left."""
        target, temp, folder = self._target_and_temp(rel)
        flags = WRITE_FLAGS | (0 if resume else os.O_TRUNC)
        try:
            make_folder(folder)
            try:
                fd = os.open(temp, flags, 0o644)
            except OSError as exc:
                # ELOOP: a planted symlink; ENXIO: a FIFO; EISDIR: a folder. Removed, then
                # opened afresh; a second refusal is a real error.
                if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                    raise
                self._remove_any(Path(temp))
                fd = os.open(temp, flags, 0o644)
            try:
                st = os.fstat(fd)
                if not stat_module.S_ISREG(st.st_mode):
                    raise OSError(errno.EINVAL, "not a regular file")
                if stat_module.S_IMODE(st.st_mode) != 0o644:
                    os.fchmod(fd, 0o644)
            except BaseException:
                os.close(fd)
                raise
        except OSError as exc:
            raise StorageError(rel, describe(exc)) from exc
        written = self.written if self.record_writes else None
        return Part(rel, target, temp, Out(fd, st.st_size), fsync=self._fsync, written=written)

    def _target_and_temp(self, rel: str) -> tuple[str, str, str]:
        """The absolute paths of ``rel``, of its temp sibling, and of their folder."""
        target = self._abs(rel)
        # The temp file shares the target's folder, already resolved and checked.
        folder, _, name = target.rpartition("/")
        return target, f"{folder}/{part_name(name)}", folder

    def set_mtime(self, rel: str, when: float) -> None:
        try:
            os.utime(self._abs(rel), (when, when))
        except OSError as exc:
            raise StorageError(rel, describe(exc)) from exc

    def remove(self, rel: str, *, prune_up_to: str | None = None) -> bool:
        """Remove ``rel`` (and its temp sibling); prune emptied parents below ``prune_up_to``."""
        target = self.path(rel)
        removed = False
        for path in (target, self.path(part_name(rel))):
            try:
                path.unlink()
                removed = removed or path == target
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                pass
            except OSError as exc:
                raise StorageError(rel, describe(exc)) from exc
        if prune_up_to is not None:
            self._prune(target.parent, self.path(prune_up_to))
        return removed

    def remove_tree(self, rel: str) -> bool:
        target = self.path(rel)
        if not target.exists() and not target.is_symlink():
            return False
        try:
            self._remove_any(target)
        except OSError as exc:
            raise StorageError(rel, describe(exc)) from exc
        return True

    def sweep_parts(self, rel_dir: str) -> int:
        """Remove temp files a killed run left in one directory."""
        try:
            directory = self.path(rel_dir) if rel_dir else Path(self._real_root)
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return 0
        count = 0
        for name in names:
            if name.startswith(".") and name.endswith(PART_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    (directory / name).unlink()
                    count += 1
        return count

    def walk_files(self, rel_dir: str) -> Iterator[str]:
        """Every file below ``rel_dir`` as a root-relative path, folder by folder in name
        order (for verify and sweeps). Like ``os.walk``: a symlink to a file is listed, a
        symlinked folder is not entered, an unreadable folder is passed over."""
        base = str(self.path(rel_dir))
        rel = os.path.relpath(base, self._real_root).replace(os.sep, "/")
        # os.walk spends an lstat and a relpath on every folder, and the hashed tree has a
        # folder per file; the names scandir already returned say the same for free.
        stack = [(base, rel)]
        while stack:
            folder, rel = stack.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=_name)
            except OSError:
                continue
            below: list[tuple[str, str]] = []
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if not is_dir:
                    yield f"{rel}/{entry.name}"
                elif not entry.is_symlink():
                    below.append((entry.path, f"{rel}/{entry.name}"))
            stack.extend(reversed(below))

    def sync_dir(self, rel_dir: str) -> None:
        """fsync a directory so renames in it survive power loss."""
        if not self._fsync:
            return
        fd = os.open(self.path(rel_dir) if rel_dir else self._real_root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def makedirs(self, rel_dir: str) -> None:
        try:
            self.path(rel_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(rel_dir, describe(exc)) from exc

    # -- locking -------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``<root>/.lock`` for the whole run; a second run fails at once."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(str(self.root), describe(exc)) from exc
        lock_path = str(self.root / ".lock")
        lock = filelock.FileLock(lock_path, timeout=0.5)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise LockHeld(lock_path) from exc
        except OSError as exc:
            raise StorageError(lock_path, describe(exc)) from exc
        try:
            self._wait_for_helpers()
            yield
        finally:
            lock.release()

    def hold_as_helper(self) -> None:
        """Mark this process (a sync child of the lock holder) as writing here until it exits.

        The run lock dies with its holder; this shared lock dies with the last helper, so the
        next run can wait until nothing of a killed run still writes."""
        path = str(self.root / ".lock.helpers")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError as exc:
            raise StorageError(path, describe(exc)) from exc
        # Deliberately never closed: the lock is released by the kernel when the process ends.
        self._helper_fd = fd

    def _wait_for_helpers(self) -> None:
        path = str(self.root / ".lock.helpers")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(path, describe(exc)) from exc
        try:
            deadline = time.monotonic() + HELPER_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockHeld(path) from None
                    time.sleep(0.05)
                except OSError as exc:
                    raise StorageError(path, describe(exc)) from exc
        finally:
            os.close(fd)

    # -- internals -----------------------------------------------------------------------

    def _remove_any(self, path: Path) -> None:
        """Remove whatever is at ``path``: a file, a symlink (not what it points to), a FIFO,
        a folder with everything in it."""
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def _prune(self, directory: Path, stop: Path) -> None:
        while directory != stop and stop in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


class _Same:
    """An old file read alongside new bytes: does it hold exactly them?"""

    def __init__(self, f: BinaryIO | None) -> None:
        self._file = f
        self.same = f is not None

    def compare(self, chunk: bytes) -> bool:
        if self.same and self._file is not None and self._file.read(len(chunk)) != chunk:
            self.same = False
        return self.same

    def ends_here(self) -> bool:
        """True when every byte matched and the old file has nothing more."""
        return self.same and self._file is not None and self._file.read(1) == b""

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
