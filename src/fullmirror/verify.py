"""``verify`` and ``delete``: check the mirror on disk against the catalog, repair what is
wrong, and remove projects on request.

Verify reads the catalog's record of every project (the same record the pages are rendered
from), so it needs neither upstream nor ``json = true`` to know what each file should be. The
fast check is the size; ``--hash`` reads every byte. Projects found sound are marked in the
catalog as the pass goes, so a killed pass resumes where it stopped; the marks are cleared when
a fresh pass starts and when a pass completes.

The decisions (what is missing, corrupt, unreferenced; what a page should hold) are pure
functions at the top; :class:`Verifier` and :func:`delete_projects` do the I/O.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from packaging.utils import NormalizedName

from fullmirror import render
from fullmirror.catalog import Catalog
from fullmirror.config import Config
from fullmirror.download import Downloader, Job, Result
from fullmirror.errors import FullmirrorError, StorageError, UpstreamStatus
from fullmirror.models import Hashes, MirroredPage, hash_of
from fullmirror.plan import local_files, metadata_location, upload_epoch
from fullmirror.project import make_downloader
from fullmirror.state import BadState, parse_status
from fullmirror.storage import FileStat, Storage
from fullmirror.sync import NoProgress, Progress, root_chunks, root_files, write_root_pages
from fullmirror.upstream import Upstream

log = logging.getLogger("fullmirror")

Verdict = Literal["ok", "missing", "corrupt"]

_HASHED = re.compile(r"^packages/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{60})/[^/]+$")
_PASS_KEY = "verify-pass"
_ROOT_SERIAL = re.compile(rb'\{"meta":\{"_last-serial":(\d+),')
#: Files in flight in the hashing pool at most (bounds memory on huge projects).
_WINDOW_FILES = 256
#: Bytes of files one verifier task hashes: small files go several to a task (a task per file
#: costs more than hashing it), big ones one each so the verifier threads share the work.
_GROUP_BYTES = 4 << 20
#: Paths and projects held before they are written to the catalog in one transaction; a pass
#: killed meanwhile checks at most a second's worth of projects again.
_FLUSH_PATHS = 20_000
_FLUSH_PROJECTS = 500
_FLUSH_SECONDS = 1.0


# -- pure decisions -----------------------------------------------------------------------------


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


def file_groups(files: list[Expected], limit: int | None) -> list[list[Expected]]:
    """``files`` cut into runs of at most ``limit`` bytes (a file of unknown size counts as
    ``limit``); None: one group."""
    if limit is None:
        return [files] if files else []
    groups: list[list[Expected]] = []
    current: list[Expected] = []
    weight = 0
    for expected in files:
        size = limit if expected.size is None else expected.size
        if current and weight + size > limit:
            groups.append(current)
            current, weight = [], 0
        current.append(expected)
        weight += size
    if current:
        groups.append(current)
    return groups


def unreferenced(
    on_disk: Iterable[str], unlinked: Callable[[list[str]], list[str]], batch: int = 5000
) -> list[str]:
    """Files under ``web/packages`` no page links (temp ``.part`` files included), sorted;
    ``unlinked`` picks them out of a batch of ``on_disk`` at a time."""
    found: list[str] = []
    paths: list[str] = []
    for rel in on_disk:
        paths.append(rel)
        if len(paths) >= batch:
            found.extend(unlinked(paths))
            paths = []
    if paths:
        found.extend(unlinked(paths))
    return sorted(found)


def page_documents(page: MirroredPage, config: Config) -> dict[str, bytes]:
    """The project pages the mirror should serve for ``page``, by path."""
    pages = render.project_pages(
        page, simple_format=config.simple_format, digest_name=config.digest_name
    )
    return {f"web/simple/{page.name}/{name}": data for name, data in pages.items()}


def upstream_url(master: str, location: str) -> str | None:
    """Where a PyPI-layout upstream serves a file the mirror keeps at ``location``."""
    if location.startswith("packages/"):
        return f"{master.rstrip('/')}/{location}"
    return None


def _address(location: str) -> str | None:
    match = _HASHED.match(location.removesuffix(".metadata"))
    if match is None or location.endswith(".metadata"):
        return None
    return "".join(match.groups())


# -- verify -------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    projects_checked: int = 0
    projects_skipped: int = 0
    files_checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)
    pages_bad: list[str] = field(default_factory=list)
    pages_fixed: int = 0
    unreferenced: list[str] = field(default_factory=list)
    deleted: int = 0
    resumed: bool = False
    seconds: float = 0.0

    @property
    def problems_left(self) -> bool:
        broken = len(self.missing) + len(self.corrupt) - len(self.repaired)
        return (
            broken > 0
            or len(self.pages_bad) > self.pages_fixed
            or len(self.unreferenced) > self.deleted
        )


def read_serial(storage: Storage) -> int:
    raw = storage.read_bytes("status")
    if raw is None:
        return 0
    try:
        return parse_status(raw.decode("ascii", "replace"))
    except BadState:
        return 0


def write_root_index(storage: Storage, catalog: Catalog, config: Config) -> list[str]:
    """Rewrite the root pages from the catalog where they differ; the paths rewritten."""
    return write_root_pages(storage, catalog, read_serial(storage), config.simple_format)


class Verifier:
    """One ``verify`` pass; ``upstream`` is needed only with ``repair``."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        catalog: Catalog,
        upstream: Upstream | None,
        *,
        full_hash: bool = False,
        repair: bool = False,
        delete: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.catalog = catalog
        self.upstream = upstream
        self.full_hash = full_hash
        self.repair = repair
        self.delete = delete
        self.dry_run = dry_run
        self.progress = progress or NoProgress()
        self.report = VerifyReport()
        self._linked: list[str] = []
        self._sound: list[NormalizedName] = []
        self._flushed = time.monotonic()
        self._downloader: Downloader | None = None
        if repair and not dry_run and upstream is not None:
            self._downloader = make_downloader(config, upstream, storage)

    def run(self) -> VerifyReport:
        started = time.monotonic()
        try:
            resumed = self._start_pass()
            self._check_projects(skip_sound=resumed)
            self._check_root()
            self._check_unreferenced()
            if not self.dry_run:
                # The pass is complete: the next one starts from scratch.
                self.catalog.clear_verified()
                self.catalog.set_meta(_PASS_KEY, "")
        finally:
            self.catalog.forget_references()
            if self._downloader is not None:
                self._downloader.close()
        self.report.seconds = time.monotonic() - started
        return self.report

    # -- resumable passes -------------------------------------------------------------------

    def _start_pass(self) -> bool:
        """Whether this pass resumes an interrupted one of the same kind, whose sound
        projects it then skips (the catalog holds the marks; nothing here grows with them)."""
        if self.dry_run:
            return False
        mode = "hash" if self.full_hash else "size"
        if self.catalog.get_meta(_PASS_KEY) == mode:
            self.report.resumed = True
            log.info(
                "resuming an interrupted verify pass: %d projects already verified",
                self.catalog.verified_count(),
            )
            return True
        self.catalog.clear_verified()
        self.catalog.set_meta(_PASS_KEY, mode)
        return False

    # -- files and pages --------------------------------------------------------------------

    def _check_projects(self, *, skip_sound: bool) -> None:
        self.progress.start(self.catalog.count())
        queue: deque[tuple[MirroredPage, list[tuple[list[Expected], Future[list[Verdict]]]]]]
        queue = deque()
        in_flight = 0
        limit = _GROUP_BYTES if self.full_hash else None
        try:
            with ThreadPoolExecutor(self.config.verifiers, thread_name_prefix="verify") as pool:
                for page, sound in self.catalog.iter_pages():
                    self._linked.extend("web/" + rel for rel in local_files(page))
                    if len(self._linked) >= _FLUSH_PATHS:
                        self._flush()
                    if sound and skip_sound:
                        self.report.projects_skipped += 1
                        self.progress.advance(page.name)
                        continue
                    checks = [
                        (group, pool.submit(self._check_files, group))
                        for group in file_groups(expected_files(page), limit)
                    ]
                    queue.append((page, checks))
                    in_flight += sum(len(group) for group, _ in checks)
                    while queue and (in_flight > _WINDOW_FILES or len(queue) > 64):
                        in_flight -= self._finish_project(*queue.popleft())
                while queue:
                    in_flight -= self._finish_project(*queue.popleft())
        finally:
            self._flush()
            self.progress.close()

    def _flush(self) -> None:
        """Record what the pass learned so far; batched because one SQLite transaction per
        project costs as much as checking a small project's files."""
        if self._linked:
            self.catalog.reference(self._linked)
            self._linked = []
        if self._sound:
            self.catalog.mark_verified(self._sound)
            self._sound = []
        self._flushed = time.monotonic()

    def _check_files(self, files: list[Expected]) -> list[Verdict]:
        """Runs in a verifier thread: one task per group of small files, not per file."""
        return [self._check_file(expected) for expected in files]

    def _check_file(self, expected: Expected) -> Verdict:
        wanted = hash_to_check(expected.hashes) if self.full_hash else None
        try:
            stat, digest = self.storage.inspect(
                expected.rel, None if wanted is None else wanted[0], expected.size
            )
        except FileNotFoundError:
            stat, digest = None, None
        if stat is not None:
            self.progress.add_bytes(stat.size)
        return classify(expected, stat, digest)

    def _finish_project(
        self, page: MirroredPage, checks: list[tuple[list[Expected], Future[list[Verdict]]]]
    ) -> int:
        bad: list[Expected] = []
        files = 0
        for group, future in checks:
            for expected, verdict in zip(group, future.result(), strict=True):
                files += 1
                self.report.files_checked += 1
                if verdict == "ok":
                    continue
                bad.append(expected)
                (self.report.missing if verdict == "missing" else self.report.corrupt).append(
                    expected.rel
                )
                log.warning("%s: %s %s", page.name, verdict, expected.rel)
        sound = True
        if bad:
            # A repair waits on the network: what the pass has learned is saved first.
            self._flush()
            sound = self._repair_files(page, bad)
        sound = self._check_pages(page) and sound
        self.report.projects_checked += 1
        if sound and not self.dry_run:
            self._sound.append(page.name)
            if (
                len(self._sound) >= _FLUSH_PROJECTS
                or time.monotonic() - self._flushed > _FLUSH_SECONDS
            ):
                self._flush()
        self.progress.advance(page.name)
        return files

    def _check_pages(self, page: MirroredPage) -> bool:
        sound = True
        for rel, data in page_documents(page, self.config).items():
            if self.storage.read_bytes(rel, size=len(data)) == data:
                continue
            self.report.pages_bad.append(rel)
            if self.repair and not self.dry_run:
                self.storage.write_if_changed(rel, data)
                self.report.pages_fixed += 1
                log.info("%s: rewrote %s", page.name, rel)
            else:
                sound = False
                log.warning("%s: page %s does not match the catalog", page.name, rel)
        return sound

    def _check_root(self) -> None:
        serial = read_serial(self.storage)
        for rels, kind in root_files(self.config.simple_format):
            for rel in rels:
                if self.storage.holds_stream(rel, root_chunks(self.catalog, kind, serial)):
                    continue
                if kind == "json":
                    # A run that synced nothing leaves the root alone while ``status`` moves
                    # on: the serial the page claims may lag, which is not damage.
                    claimed = _ROOT_SERIAL.match(self.storage.read_head(rel, 128) or b"")
                    if claimed is not None and self.storage.holds_stream(
                        rel, root_chunks(self.catalog, kind, int(claimed.group(1)))
                    ):
                        continue
                self.report.pages_bad.append(rel)
                if self.repair and not self.dry_run:
                    self.storage.write_stream_if_changed(
                        [rel], root_chunks(self.catalog, kind, serial)
                    )
                    self.report.pages_fixed += 1
                else:
                    log.warning("root index %s does not match the catalog", rel)

    # -- repair -----------------------------------------------------------------------------

    def _job(self, expected: Expected, url: str) -> Job:
        if expected.kind == "metadata":
            return Job(url, expected.rel, expected.hashes, kind="metadata")
        return Job(
            url,
            expected.rel,
            expected.hashes,
            expected.size,
            _address(expected.location),
            upload_epoch(expected.upload_time),
        )

    def _repair_files(self, page: MirroredPage, bad: list[Expected]) -> bool:
        """Download ``bad`` again; True when every one is back and verified."""
        if not self.repair or self.dry_run or self._downloader is None:
            self.report.unrepaired.extend(e.rel for e in bad)
            return False
        downloader = self._downloader
        again: list[Expected] = []
        failed: list[Expected] = []
        futures: list[tuple[Expected, Future[Result]]] = []
        for expected in bad:
            url = upstream_url(self.config.master, expected.location)
            if url is None:
                again.append(expected)
                continue
            futures.append((expected, downloader.submit(self._job(expected, url))))
        for expected, future in futures:
            try:
                future.result()
            except UpstreamStatus as exc:
                if exc.status != 404:
                    log.warning("%s: cannot repair %s: %s", page.name, expected.rel, exc)
                    failed.append(expected)
                    continue
                again.append(expected)
            except StorageError:
                raise
            except FullmirrorError as exc:
                log.warning("%s: cannot repair %s: %s", page.name, expected.rel, exc)
                failed.append(expected)
                continue
            else:
                self._repaired(page, expected)
        if again:
            failed += self._repair_from_page(page, again)
        self.report.unrepaired.extend(e.rel for e in failed)
        return not failed

    def _repair_from_page(self, page: MirroredPage, todo: list[Expected]) -> list[Expected]:
        """Fetch the upstream page for the files' URLs; the files still not repaired."""
        assert self.upstream is not None and self._downloader is not None
        try:
            parsed = self.upstream.project(page.name, at_least=0)
        except StorageError:
            raise
        except FullmirrorError as exc:
            log.warning("%s: cannot repair %d file(s): %s", page.name, len(todo), exc)
            return todo
        urls = {f.filename: f.url for f in parsed.page.files}
        failed: list[Expected] = []
        for expected in todo:
            url = urls.get(expected.filename)
            if url is None:
                log.warning("%s: %s is no longer upstream", page.name, expected.filename)
                failed.append(expected)
                continue
            if expected.kind == "metadata":
                url = metadata_location(url)
            try:
                self._downloader.fetch(self._job(expected, url))
            except StorageError:
                raise
            except FullmirrorError as exc:
                log.warning("%s: cannot repair %s: %s", page.name, expected.rel, exc)
                failed.append(expected)
                continue
            self._repaired(page, expected)
        return failed

    def _repaired(self, page: MirroredPage, expected: Expected) -> None:
        self.report.repaired.append(expected.rel)
        log.info("%s: repaired %s", page.name, expected.rel)

    # -- unreferenced files -----------------------------------------------------------------

    def _check_unreferenced(self) -> None:
        stray = unreferenced(self.storage.walk_files("web/packages"), self.catalog.unreferenced)
        self.report.unreferenced = stray
        for rel in stray:
            if self.delete and not self.dry_run:
                self.storage.remove(rel, prune_up_to="web/packages")
                self.report.deleted += 1
                log.info("deleted unreferenced %s", rel)
            else:
                log.warning("unreferenced %s", rel)
