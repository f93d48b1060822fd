"""The exception tree of fullmirror.

Every failure the mirror knows how to name is a leaf of :class:`FullmirrorError` and carries
its context as attributes, so callers catch at the depth they care about and the CLI can turn
any of them into a one-line message and an exit code::

    FullmirrorError
    ├── ConfigError                 bad or missing configuration            (exit 2)
    ├── LockHeld                    another run holds the mirror lock       (exit 3)
    ├── StateError                  a corrupt or foreign state file         (exit 6)
    ├── StorageError                the mirror directory cannot be written  (exit 5)
    │   └── UnsafePath              a path that would leave the mirror root
    ├── UpstreamError               anything the upstream did wrong
    │   ├── UpstreamUnreachable     connection refused, DNS, TLS, timeouts  (exit 4)
    │   ├── UpstreamStatus          an unexpected HTTP status
    │   ├── RateLimited             XML-RPC Fault -32500 with a reset time
    │   ├── StaleResponse           a serial older than the one announced
    │   ├── ProjectGone             404 for a project
    │   └── MalformedResponse       JSON, HTML or XML-RPC that does not parse
    ├── IntegrityError              bytes that are not what upstream promised
    │   ├── HashMismatch
    │   └── SizeMismatch
    ├── UnsafeUpstreamData          hostile names, paths or URLs
    ├── ShardDied                   a sync child process ended without finishing (exit 1)
    ├── InspectorDied               a verify child process ended without finishing (exit 1)
    └── ServeError                  `serve` cannot listen on its address    (exit 2)
"""

from __future__ import annotations


class FullmirrorError(Exception):
    """Base of every error fullmirror raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:
        # Leaves take their own arguments, not the message: rebuild from args and attributes
        # so an error crosses from a sync child process to the parent intact.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[FullmirrorError], args: tuple[object, ...], state: dict[str, object]
) -> FullmirrorError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(FullmirrorError):
    """A configuration value is missing or not allowed."""

    def __init__(self, key: str, message: str, *, path: str | None = None) -> None:
        self.key = key
        self.message = message
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(f"{where}[{key}] {message}" if key else f"{where}{message}")


class LockHeld(FullmirrorError):
    """Another fullmirror process holds the lock on this mirror directory."""

    def __init__(self, lock_path: str) -> None:
        self.lock_path = lock_path
        super().__init__(
            f"another fullmirror run holds the lock {lock_path}; "
            "wait for it to finish (this run changed nothing)"
        )


class StateError(FullmirrorError):
    """A state file of the mirror is corrupt or was written by something else."""

    def __init__(self, path: str, reason: str, fix: str) -> None:
        self.path = path
        self.reason = reason
        self.fix = fix
        super().__init__(f"{path}: {reason}; {fix}")


class StorageError(FullmirrorError):
    """Writing to the mirror directory failed (disk full, read-only, permissions)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot write {path}: {reason}")


class UnsafePath(StorageError):
    """A path that resolves outside the mirror root or through a symlink."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "the path leaves the mirror directory; refused")


class UpstreamError(FullmirrorError):
    """The upstream index answered with something fullmirror cannot use."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class UpstreamUnreachable(UpstreamError):
    """No usable answer at all: refused, reset, timed out, TLS or DNS failure."""


class UpstreamStatus(UpstreamError):
    """An HTTP status fullmirror does not expect for this request."""

    def __init__(self, url: str, status: int) -> None:
        self.status = status
        super().__init__(url, f"HTTP {status}")


class RateLimited(UpstreamError):
    """The upstream asked us to slow down (XML-RPC Fault -32500 or HTTP 429)."""

    def __init__(self, url: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(url, f"rate limited; retry after {retry_after:g} s")


class StaleResponse(UpstreamError):
    """A page older than the serial that announced the change (a stale CDN copy)."""

    def __init__(self, url: str, got: int | None, want: int) -> None:
        self.got = got
        self.want = want
        super().__init__(url, f"stale page: serial {got} is older than the announced {want}")


class ProjectGone(UpstreamError):
    """The upstream has no such project (HTTP 404): it was removed."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        super().__init__(url, f"project {name} does not exist upstream")


class MalformedResponse(UpstreamError):
    """JSON, HTML or XML-RPC that does not parse or lacks what the protocol requires."""


class IntegrityError(FullmirrorError):
    """Downloaded bytes differ from what the index promised."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


class HashMismatch(IntegrityError):
    def __init__(self, url: str, algorithm: str, expected: str, actual: str) -> None:
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual
        super().__init__(url, f"{algorithm} is {actual}, the index says {expected}")


class SizeMismatch(IntegrityError):
    def __init__(self, url: str, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(url, f"size is {actual} bytes or more, the index says {expected}")


class UnsafeUpstreamData(FullmirrorError):
    """Upstream data that could escape the mirror or inject markup: rejected, never used."""

    def __init__(self, what: str, value: str, reason: str) -> None:
        self.what = what
        self.value = value
        self.reason = reason
        super().__init__(f"rejected {what} {value!r}: {reason}")


class ShardDied(FullmirrorError):
    """A child process syncing projects ended before it reported back (killed, out of memory)."""

    def __init__(self, pid: int, exitcode: int | None) -> None:
        self.pid = pid
        self.exitcode = exitcode
        super().__init__(
            f"sync process {pid} ended unexpectedly ({_ending(exitcode)}); projects it held "
            "stay pending and are retried next run (set [mirror] processes = 1 to sync in one "
            "process)"
        )


class InspectorDied(FullmirrorError):
    """A child process of ``verify`` ended before it reported back (killed, out of memory)."""

    def __init__(self, pid: int, exitcode: int | None, detail: str = "") -> None:
        self.pid = pid
        self.exitcode = exitcode
        self.detail = detail
        how = detail or _ending(exitcode)
        super().__init__(
            f"verify process {pid} ended unexpectedly ({how});"
            " run verify again, it resumes (set [mirror] processes = 1 to verify in one process)"
        )


def _ending(exitcode: int | None) -> str:
    """How a child process ended, as its exit status tells it."""
    if exitcode is None:
        return "no exit status"
    return f"exit code {exitcode}" if exitcode >= 0 else f"signal {-exitcode}"


class ServeError(FullmirrorError):
    """The embedded server cannot start: the address is taken, unknown or not allowed."""

    def __init__(self, bind: str, port: int, reason: str, fix: str = "") -> None:
        self.bind = bind
        self.port = port
        self.reason = reason
        self.fix = fix
        host = f"[{bind}]" if ":" in bind else bind
        super().__init__(f"cannot listen on {host}:{port}: {reason}" + (f"; {fix}" if fix else ""))
