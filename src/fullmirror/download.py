"""Release-file downloads: a pool of workers shared by every project of a run.

Each file streams into its temp sibling while every promised hash is computed; only bytes whose
size, hashes and content address all match are renamed into place. A body longer than the
declared size is cut off as it arrives. A download interrupted by the network keeps its temp
file and the next attempt (or the next run) resumes it with a Range request; the resumed prefix
is re-hashed from disk so the whole file is still verified.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from fullmirror.errors import (
    HashMismatch,
    IntegrityError,
    SizeMismatch,
    StorageError,
    UpstreamError,
    UpstreamStatus,
)
from fullmirror.models import Hashes
from fullmirror.parts import describe
from fullmirror.storage import Storage

_VERIFIABLE = frozenset({"sha256", "sha384", "sha512", "sha1", "sha224", "md5", "blake2b_256"})
#: A ``.metadata`` document has no declared size; none on PyPI comes near this, and an upstream
#: that streams more must not fill the disk until ``global-timeout``.
MAX_METADATA_BYTES = 64 << 20


class Fetcher(Protocol):
    def fetch_file(
        self,
        url: str,
        *,
        offset: int,
        on_start: Callable[[int], None],
        sink: Callable[[bytes], None],
        kind: str = ...,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Job:
    url: str
    #: Path relative to the mirror root (``web/packages/...``).
    target: str
    hashes: Hashes
    size: int | None = None
    #: The 64-hex address the path promises (blake2b-256 or sha256 of the bytes), if any.
    address: str | None = None
    mtime: float | None = None
    kind: str = "file"


@dataclass(frozen=True, slots=True)
class Result:
    job: Job
    bytes_fetched: int
    #: sha256 of the bytes on disk (for ``.metadata`` advertised without a hash).
    sha256: str


def _new(algorithm: str) -> Any:
    if algorithm == "blake2b_256":
        return hashlib.blake2b(digest_size=32)
    return hashlib.new(algorithm)


class _Hashers:
    def __init__(self, job: Job) -> None:
        algos = {a for a, _ in job.hashes if a in _VERIFIABLE} | {"sha256"}
        if job.address is not None:
            algos |= {"blake2b_256"}
        self.h = {a: _new(a) for a in sorted(algos)}
        self.count = 0

    def update(self, data: bytes) -> None:
        self.count += len(data)
        for h in self.h.values():
            h.update(data)

    def check(self, job: Job, url: str) -> str:
        if job.size is not None and self.count != job.size:
            raise SizeMismatch(url, job.size, self.count)
        for algorithm, expected in job.hashes:
            if algorithm in self.h:
                actual = self.h[algorithm].hexdigest()
                if actual != expected:
                    raise HashMismatch(url, algorithm, expected, actual)
        if job.address is not None:
            addresses = {self.h["blake2b_256"].hexdigest(), self.h["sha256"].hexdigest()}
            if job.address not in addresses:
                raise HashMismatch(url, "path", job.address, self.h["blake2b_256"].hexdigest())
        return str(self.h["sha256"].hexdigest())


class Downloader:
    """A bounded pool that fetches Jobs; ``submit`` from any thread."""

    def __init__(
        self,
        fetcher: Fetcher,
        storage: Storage,
        *,
        workers: int,
        retries: int = 3,
        pause: Callable[[int], None] = lambda attempt: None,
        download_mirror: str = "",
        mirror_only: bool = False,
        on_bytes: Callable[[int], None] = lambda n: None,
        durable: bool = True,
    ) -> None:
        self._fetcher = fetcher
        self._durable = durable
        self._storage = storage
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download")
        self._retries = retries
        self._pause = pause
        self._download_mirror = download_mirror.rstrip("/")
        self._mirror_only = mirror_only
        self._on_bytes = on_bytes
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()

    def submit(self, job: Job) -> Future[Result]:
        return self._pool.submit(self.fetch, job)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def fetch(self, job: Job) -> Result:
        with self._busy_lock:
            if job.target in self._busy:
                raise StorageError(job.target, "already being written by another download")
            self._busy.add(job.target)
        try:
            return self._fetch(job)
        finally:
            with self._busy_lock:
                self._busy.discard(job.target)

    def _candidates(self, job: Job) -> list[str]:
        if not self._download_mirror:
            return [job.url]
        split = urlsplit(job.url)
        mirrored = self._download_mirror + split.path
        return [mirrored] if self._mirror_only else [mirrored, job.url]

    def _fetch(self, job: Job) -> Result:
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                self._pause(attempt - 1)
            for url in self._candidates(job):
                try:
                    return self._attempt(job, url)
                except (UpstreamError, IntegrityError) as exc:
                    last = exc
                    if isinstance(exc, UpstreamStatus) and exc.status == 404:
                        continue
        assert last is not None
        raise last

    def _attempt(self, job: Job, url: str) -> Result:
        part = self._storage.open_part(job.target, resume=True)
        keep = False
        try:
            hashers = _Hashers(job)
            offset = part.offset
            cap = MAX_METADATA_BYTES if job.size is None and job.kind == "metadata" else None
            limit = job.size if job.size is not None else cap
            if limit is not None and offset > limit:
                part.truncate()
                offset = 0
            if offset:
                # Re-hash the prefix a killed attempt left, so the whole file is verified.
                self._feed_existing(part.temp, hashers)
            fetched = 0

            def on_start(start: int) -> None:
                nonlocal hashers
                if start == 0 and part.offset:
                    part.truncate()
                    hashers = _Hashers(job)

            def sink(chunk: bytes) -> None:
                nonlocal fetched
                if job.size is not None and hashers.count + len(chunk) > job.size:
                    raise SizeMismatch(url, job.size, hashers.count + len(chunk))
                if cap is not None and hashers.count + len(chunk) > cap:
                    raise IntegrityError(url, f"larger than {cap} bytes; refused as metadata")
                part.file.write(chunk)
                hashers.update(chunk)
                fetched += len(chunk)
                self._on_bytes(len(chunk))

            try:
                self._fetcher.fetch_file(
                    url, offset=offset, on_start=on_start, sink=sink, kind=job.kind
                )
            except UpstreamError:
                # Network trouble: the bytes so far are good and a Range request can resume.
                keep = job.size is None or hashers.count < job.size
                raise
            except OSError as exc:
                raise StorageError(job.target, describe(exc)) from exc
            sha256 = hashers.check(job, url)
            part.commit(durable=self._durable)
        finally:
            part.close(keep=keep)
        if job.mtime is not None:
            self._storage.set_mtime(job.target, job.mtime)
        return Result(job, fetched, sha256)

    @staticmethod
    def _feed_existing(path: object, hashers: _Hashers) -> None:
        with open(str(path), "rb") as f:
            while chunk := f.read(1 << 20):
                hashers.update(chunk)
