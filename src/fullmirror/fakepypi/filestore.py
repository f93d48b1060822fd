"""Bytes and digests of release files, computed on demand.

No file is built up front: a file's bytes are a pure function of its release and kind, so they
are rebuilt whenever needed. Digests are computed once and kept on the record (pages need them
for every file they list); the bytes themselves live in a bounded LRU, so a 100,000-project
corpus never holds more than the LRU's budget in memory.

Two knobs exist for benchmarks only, off by default (so a seed's files never change unless they
are set): ``file_size_max`` spreads wheel payloads over ``file_size..file_size_max`` bytes (the
size drawn from the file's own payload seed), and ``synthetic`` replaces every file's bytes with a
few deterministic bytes that are not an archive, so a metadata-scale corpus (hundreds of
thousands of projects, ``release-files = false``) costs microseconds per digest, not a zip build.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from fullmirror.fakepypi.build import DistSpec, build_distribution, metadata_bytes
from fullmirror.fakepypi.records import FileInfo, FileRecord

__all__ = ["DEFAULT_BYTE_CACHE", "FileStore"]

#: Bytes of built files kept in memory; older ones are rebuilt on demand.
DEFAULT_BYTE_CACHE = 256 * 1024 * 1024


class FileStore:
    def __init__(self, seed: int, file_size: int, byte_cache: int = DEFAULT_BYTE_CACHE) -> None:
        self.seed = seed
        self.file_size = file_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[FileRecord, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._limit = byte_cache
        #: > file_size: wheel payloads range over file_size..file_size_max bytes (benchmarks).
        self.file_size_max = 0
        #: True: tiny non-archive bytes instead of real distributions (metadata benchmarks).
        self.synthetic = False

    def set_byte_cache(self, limit: int) -> None:
        """Change the LRU's budget (bytes); a big benchmark corpus may fit in memory whole."""
        with self._lock:
            self._limit = max(limit, 0)

    def spec(self, record: FileRecord) -> DistSpec:
        release = record.release
        seed_text = f"{self.seed}:{record.filename}".encode()
        payload_seed = int.from_bytes(hashlib.sha256(seed_text).digest()[:8], "big")
        payload_size = self.file_size if record.is_wheel else 0
        if record.is_wheel and self.file_size_max > self.file_size:
            payload_size += payload_seed % (self.file_size_max - self.file_size + 1)
        return DistSpec(
            display_name=release.project.display_name,
            version=release.version,
            kind=record.kind,
            requires_dist=release.requires_dist,
            requires_python=release.requires_python,
            summary=release.summary,
            payload_size=payload_size,
            payload_seed=payload_seed,
        )

    def content(self, record: FileRecord) -> bytes:
        with self._lock:
            cached = self._cache.get(record)
            if cached is not None:
                self._cache.move_to_end(record)
                return cached
        # Built outside the lock: a 20 MB wheel takes a while and the bytes are deterministic,
        # so two threads racing here merely do the work twice.
        if self.synthetic:
            data = f"synthetic {self.seed} {record.filename}\n".encode()
        else:
            data = build_distribution(self.spec(record))
        with self._lock:
            if record not in self._cache:
                self._cache[record] = data
                self._cached_bytes += len(data)
            while self._cached_bytes > self._limit and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= len(old)
        return data

    def metadata(self, record: FileRecord) -> bytes | None:
        """The ``.metadata`` bytes (wheels only): exactly the dist-info ``METADATA`` member."""
        return metadata_bytes(self.spec(record)) if record.is_wheel else None

    def info(self, record: FileRecord) -> FileInfo:
        info = record.info
        if info is None:
            data = self.content(record)
            blake = hashlib.blake2b(data, digest_size=32).hexdigest()
            metadata = self.metadata(record)
            info = FileInfo(
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                md5=hashlib.md5(data).hexdigest(),
                blake2b_256=blake,
                metadata_sha256=hashlib.sha256(metadata).hexdigest() if metadata else None,
                path=f"packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}/{record.filename}",
            )
            record.info = info
        return info

    def forget(self, record: FileRecord) -> None:
        """Drop the bytes of a removed file."""
        with self._lock:
            cached = self._cache.pop(record, None)
            if cached is not None:
                self._cached_bytes -= len(cached)
