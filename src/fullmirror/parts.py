"""Temp files beside their targets, and the syncs that make them durable.

Every file of the mirror is written to a hidden ``.<name>.part`` in its target's folder and
renamed over the target only when it is complete, so no reader ever sees a partial file. A
temp file is durable before anything links it: by its own ``fsync`` at commit, or by one
filesystem sync (:class:`Barrier`) shared by every temp file written before it began.
:class:`~fullmirror.storage.Storage` decides where files go and which paths are safe; this
module owns the writing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from collections.abc import Callable

from fullmirror.errors import StorageError

PART_SUFFIX = ".part"
#: Opening a temp file: O_NONBLOCK so a FIFO planted there fails (ENXIO) instead of waiting.
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def part_name(rel: str) -> str:
    """The temp sibling of ``rel``: hidden, fixed, and never a name a page links to."""
    head, _, name = rel.rpartition("/")
    return f"{head}/.{name}{PART_SUFFIX}" if head else f".{name}{PART_SUFFIX}"


def make_folder(folder: str) -> None:
    """mkdir -p, in one system call when only the last folder is missing or none is."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        return
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)


def describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device; free some space"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{exc.strerror}; make the mirror directory writable by this user"
    return exc.strerror or str(exc)


def filesystem_sync(root: str) -> Callable[[], None]:
    """syncfs(2) on the mirror's filesystem where the C library has it, else sync(2)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return os.sync

    def run() -> None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code))
        finally:
            os.close(fd)

    return run


class Barrier:
    """Coalesced durability: one filesystem sync answers every request made before it began."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._cond = threading.Condition()
        self._asked = 0
        self._done = 0
        self._busy = False

    def wait(self) -> None:
        with self._cond:
            self._asked += 1
            mine = self._asked
            while self._done < mine:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                covers = self._asked
                self._cond.release()
                try:
                    self._sync()
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
                self._done = max(self._done, covers)


class Out:
    """The write end of a temp file: plain ``os.write`` on a descriptor opened with
    O_APPEND, keeping count of the bytes in the file (no buffering, no seeks)."""

    __slots__ = ("closed", "fd", "size")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.closed = False

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(data)
        return len(data)

    def truncate(self) -> None:
        os.ftruncate(self.fd, 0)
        self.size = 0

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


class Part:
    """An open temp file; ``commit()`` fsyncs and renames it over the target."""

    def __init__(
        self,
        rel: str,
        target: str,
        temp: str,
        f: Out,
        *,
        fsync: bool = True,
        written: list[str] | None = None,
    ) -> None:
        self.rel = rel
        self._fsync = fsync
        #: Where a committed target's path is recorded (for ``diff-file``), if anywhere.
        self._written = written
        self.target = target
        self.temp = temp
        self.file = f
        self.committed = False

    @property
    def offset(self) -> int:
        """Bytes in the temp file: what a killed attempt left, plus what was written since."""
        return self.file.size

    def truncate(self) -> None:
        self.file.truncate()

    def commit(self, *, durable: bool = True) -> None:
        """Rename the temp file over the target; ``durable=False`` leaves the fsync to a later
        :meth:`Storage.barrier`, which must come before anything links the file."""
        try:
            if not self.file.closed:
                if durable and self._fsync:
                    os.fsync(self.file.fileno())
                self.file.close()
            os.replace(self.temp, self.target)
        except OSError as exc:
            raise StorageError(self.rel, describe(exc)) from exc
        self.committed = True
        if self._written is not None:
            self._written.append(self.target)

    def __enter__(self) -> Part:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(keep=False)

    def close(self, *, keep: bool) -> None:
        """Close without committing; ``keep`` leaves the bytes for a Range resume."""
        if self.committed:
            return
        with contextlib.suppress(OSError):
            self.file.close()
        if not keep:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)
