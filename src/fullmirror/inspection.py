"""What ``verify`` finds on disk, one project at a time: its files against the catalog's
record, and its pages against the pages that record renders.

Checking only reads. What to do about a finding (report it, repair it, mark the project sound)
is :mod:`fullmirror.verify`'s business, so the same :class:`Inspector` runs in the verify
process itself or in the child processes of :mod:`fullmirror.inspectors`, each over its own
share of the catalog.

Small files are checked on the thread that reads the catalog: for a file of a few kilobytes in
the page cache, handing it to another thread costs more than hashing it, and threads trading
the GIL for every ``open`` and ``read`` made a pass twice as slow (``benchmarks/README.md``).
Files of a mebibyte and more go to a few threads, since hashing them runs without the GIL.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from packaging.utils import NormalizedName

from fullmirror import render
from fullmirror.models import Hashes, MirroredPage, hash_of
from fullmirror.plan import local_files, metadata_location
from fullmirror.storage import FileStat, Storage

Verdict = Literal["ok", "missing", "corrupt"]

#: Files from this size on are hashed on the inspector's threads; smaller ones inline.
BIG_FILE = 1 << 20
#: Big files in flight at most per thread (bounds memory and keeps results in catalog order).
_AHEAD_PER_THREAD = 4


@dataclass(frozen=True, slots=True)
class Expected:
    """One file a project page references, as the catalog records it."""

    project: NormalizedName
    filename: str
    #: Relative to ``web/``: ``packages/ab/cd/<60 hex>/<filename>[.metadata]``.
    location: str
    hashes: Hashes
    size: int | None
    kind: Literal["file", "metadata"] = "file"
    upload_time: str | None = None

    @property
    def rel(self) -> str:
        return "web/" + self.location


def expected_files(page: MirroredPage) -> list[Expected]:
    """Every local file (and ``.metadata`` sibling) ``page`` links, with what it must be."""
    out: list[Expected] = []
    for f in page.files:
        if not f.is_local:
            continue
        out.append(
            Expected(page.name, f.filename, f.location, f.hashes, f.size, "file", f.upload_time)
        )
        if f.metadata_hashes is not None:
            out.append(
                Expected(
                    page.name,
                    f.filename,
                    metadata_location(f.location),
                    f.metadata_hashes,
                    None,
                    "metadata",
                )
            )
    return out


def hash_to_check(hashes: Hashes) -> tuple[str, str] | None:
    """The (algorithm, digest) ``--hash`` compares: sha256 when recorded."""
    sha = hash_of(hashes, "sha256")
    if sha is not None:
        return "sha256", sha
    for algorithm, digest in hashes:
        if algorithm in ("sha384", "sha512", "blake2b_256", "sha224", "sha1", "md5"):
            return algorithm, digest
    return None


def classify(expected: Expected, stat: FileStat | None, digest: str | None) -> Verdict:
    """``digest`` is the hash of the bytes on disk (None on the fast path)."""
    if stat is None:
        return "missing"
    if expected.size is not None and stat.size != expected.size:
        return "corrupt"
    wanted = hash_to_check(expected.hashes)
    if digest is not None and wanted is not None and digest != wanted[1]:
        return "corrupt"
    return "ok"


def page_documents(page: MirroredPage, *, simple_format: str, digest_name: str) -> dict[str, bytes]:
    """The project pages the mirror should serve for ``page``, by path."""
    pages = render.project_pages(page, simple_format=simple_format, digest_name=digest_name)
    return {f"web/simple/{page.name}/{name}": data for name, data in pages.items()}


@dataclass(frozen=True, slots=True)
class Finding:
    """What checking one project found; crosses the process boundary pickled."""

    name: NormalizedName
    #: Files checked, and the bytes they hold on disk.
    files: int
    size: int
    #: Not checked: an interrupted pass of the same kind already found it sound.
    skipped: bool
    #: Every ``web/...`` path its page links, for the unreferenced-file check.
    linked: tuple[str, ...]
    bad_files: tuple[tuple[str, Verdict], ...] = ()
    bad_pages: tuple[str, ...] = ()

    @property
    def sound(self) -> bool:
        return not self.bad_files and not self.bad_pages


@dataclass(frozen=True)
class InspectOptions:
    full_hash: bool
    simple_format: str
    digest_name: str
    #: Threads for big files (at least 1).
    threads: int


class Inspector:
    """Checks projects' files and pages under one mirror root."""

    def __init__(self, storage: Storage, options: InspectOptions) -> None:
        self.storage = storage
        self.options = options

    def check_file(self, expected: Expected) -> tuple[Verdict, int]:
        """The verdict on one file, and the bytes it holds on disk."""
        wanted = hash_to_check(expected.hashes) if self.options.full_hash else None
        try:
            stat, digest = self.storage.inspect(
                expected.rel, None if wanted is None else wanted[0], expected.size
            )
        except FileNotFoundError:
            stat, digest = None, None
        return classify(expected, stat, digest), 0 if stat is None else stat.size

    def check_pages(self, page: MirroredPage) -> list[str]:
        """The pages of ``page`` that differ from what its record renders."""
        documents = page_documents(
            page, simple_format=self.options.simple_format, digest_name=self.options.digest_name
        )
        return [
            rel
            for rel, data in documents.items()
            if self.storage.read_bytes(rel, size=len(data)) != data
        ]

    def run(
        self, pages: Iterable[tuple[MirroredPage, bool]], *, skip_sound: bool
    ) -> Iterator[Finding]:
        """A finding for each of ``pages`` (each with whether an interrupted pass found it
        sound), in the order given."""
        threads = max(1, self.options.threads)
        queue: deque[_Open] = deque()
        ahead = 0
        with ThreadPoolExecutor(threads, thread_name_prefix="verify") as pool:
            for page, sound in pages:
                linked = tuple("web/" + rel for rel in local_files(page))
                if sound and skip_sound:
                    queue.append(_Open(page.name, linked, skipped=True))
                else:
                    queue.append(self._open(page, linked, pool))
                    ahead += len(queue[-1].waiting)
                while queue and (ahead > threads * _AHEAD_PER_THREAD or queue[0].ready()):
                    done = queue.popleft()
                    ahead -= len(done.waiting)
                    yield done.close()
            while queue:
                yield queue.popleft().close()

    def _open(self, page: MirroredPage, linked: tuple[str, ...], pool: ThreadPoolExecutor) -> _Open:
        """Start checking ``page``: big files on the pool, the rest here and now."""
        found = _Open(page.name, linked)
        for expected in expected_files(page):
            if expected.size is not None and expected.size >= BIG_FILE:
                found.waiting.append((expected, pool.submit(self.check_file, expected)))
            else:
                found.add(expected, *self.check_file(expected))
        found.bad_pages = tuple(self.check_pages(page))
        return found


class _Open:
    """A project being checked, whose big files may still be hashing."""

    def __init__(
        self, name: NormalizedName, linked: tuple[str, ...], skipped: bool = False
    ) -> None:
        self.name = name
        self.linked = linked
        self.skipped = skipped
        self.files = 0
        self.size = 0
        self.bad: list[tuple[str, Verdict]] = []
        self.bad_pages: tuple[str, ...] = ()
        self.waiting: list[tuple[Expected, Future[tuple[Verdict, int]]]] = []

    def add(self, expected: Expected, verdict: Verdict, held: int) -> None:
        self.files += 1
        self.size += held
        if verdict != "ok":
            self.bad.append((expected.rel, verdict))

    def ready(self) -> bool:
        return all(future.done() for _, future in self.waiting)

    def close(self) -> Finding:
        for expected, future in self.waiting:
            self.add(expected, *future.result())
        return Finding(
            self.name,
            self.files,
            self.size,
            self.skipped,
            self.linked,
            tuple(self.bad),
            self.bad_pages,
        )
