"""``verify`` and ``delete``: check the mirror on disk against the catalog, repair what is
wrong, and remove projects on request.

Verify reads the catalog's record of every project (the same record the pages are rendered
from), so it needs neither upstream nor ``json = true`` to know what each file should be. The
fast check is the size; ``--hash`` reads every byte. Projects found sound are marked in the
catalog as the pass goes, so a killed pass resumes where it stopped; the marks are cleared when
a fresh pass starts and when a pass completes.

Checking a project's files and pages is :mod:`fullmirror.inspection`'s, run here or, on a
large mirror, in the child processes of :mod:`fullmirror.inspectors`; :class:`Verifier` takes
what they find, reports it, repairs what it may and records the sound projects. The other
decisions (what is unreferenced, where upstream serves a file) are pure functions at the top.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName

from fullmirror.catalog import Catalog
from fullmirror.config import Config
from fullmirror.download import Downloader, Job, Result
from fullmirror.errors import FullmirrorError, StorageError, UpstreamStatus
from fullmirror.inspection import (
    Expected,
    Finding,
    InspectOptions,
    Inspector,
    expected_files,
    page_documents,
)
from fullmirror.inspectors import Inspectors
from fullmirror.models import MirroredPage
from fullmirror.plan import metadata_location, upload_epoch
from fullmirror.processes import hashing_bound, shard_count
from fullmirror.progress import NoProgress, Progress
from fullmirror.rootpages import read_serial, root_chunks, root_files
from fullmirror.storage import Storage

if TYPE_CHECKING:
    from fullmirror.upstream import Upstream

log = logging.getLogger("fullmirror")

_HASHED = re.compile(r"^packages/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{60})/[^/]+$")
_PASS_KEY = "verify-pass"
_ROOT_SERIAL = re.compile(rb'\{"meta":\{"_last-serial":(\d+),')
#: Paths and projects held before they are written to the catalog in one transaction; a pass
#: killed meanwhile checks at most a second's worth of projects again.
_FLUSH_PATHS = 20_000
_FLUSH_PROJECTS = 500
_FLUSH_SECONDS = 1.0
#: Paths found on disk written to the catalog's scratch table in one transaction.
_PROBE_BATCH = 5000


# -- pure decisions -----------------------------------------------------------------------------


def batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


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
        self._walker: Future[None] | None = None
        self._walk_stopped = False
        self._downloader: Downloader | None = None
        if repair and not dry_run and upstream is not None:
            # Only a repair needs the sync machinery and its HTTP client: a plain check
            # starts without importing them.
            from fullmirror.project import make_downloader

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
        for found in (
            self.report.missing,
            self.report.corrupt,
            self.report.repaired,
            self.report.unrepaired,
            self.report.pages_bad,
        ):
            # Child processes report in the order they finish; the report reads in path order.
            found.sort()
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
        """Check every project; repairs (which wait on the network) come after the checks,
        so a pass records every sound project before it starts downloading."""
        self.progress.start(self.catalog.count())
        damaged: list[Finding] = []
        try:
            with self._findings(skip_sound) as findings:
                for finding in findings:
                    if not self._take(finding):
                        damaged.append(finding)
            self._flush()
            for finding in damaged:
                self._settle(finding)
        finally:
            self._flush()
            self.progress.close()

    @contextmanager
    def _findings(self, skip_sound: bool) -> Iterator[Iterable[Finding]]:
        """What checking finds, from child processes on a large mirror, else from here."""
        count = min(
            shard_count(self.config.processes, self.catalog.count(), os.cpu_count()),
            self.config.verifiers,
        )
        threads = max(1, -(-self.config.verifiers // count))
        if count > 1 and not self.config.processes and self.full_hash:
            sample = self.catalog.sample_sizes()
            if hashing_bound(sample):
                # As many reads at once as the children would make (their threads, and each
                # one's own thread checking small files): from the disk that is what counts.
                threads = count * threads + count - 1
                count = 1
                log.info(
                    "verifying in 1 process, %d threads: files average %d KiB",
                    threads,
                    sample.size // max(1, sample.files) // 1024,
                )
        options = InspectOptions(
            full_hash=self.full_hash,
            simple_format=self.config.simple_format,
            digest_name=self.config.digest_name,
            threads=threads,
        )
        if count == 1:
            inspector = Inspector(self.storage, options)
            yield inspector.run(self.catalog.iter_pages(), skip_sound=skip_sound)
            return
        log.info("verifying in %d processes", count)
        with (
            Inspectors(self.config.directory, count, options, skip_sound=skip_sound) as pool,
            ThreadPoolExecutor(1, thread_name_prefix="walk") as walker,
        ):
            # While the children check, this process walks the tree for unreferenced files.
            self._walker = walker.submit(self._list_files)
            try:
                yield pool.findings()
            except BaseException:
                self._walk_stopped = True  # leaving: do not wait for the rest of the walk
                raise

    def _take(self, finding: Finding) -> bool:
        """Count and record one project's finding; False when it needs :meth:`_settle`."""
        self._linked.extend(finding.linked)
        if len(self._linked) >= _FLUSH_PATHS:
            self._flush()
        self.progress.add_bytes(finding.size)
        self.progress.advance(finding.name)
        if finding.skipped:
            self.report.projects_skipped += 1
            return True
        self.report.projects_checked += 1
        self.report.files_checked += finding.files
        if not finding.sound:
            return False
        self._sound_project(finding.name)
        return True

    def _sound_project(self, name: NormalizedName) -> None:
        if self.dry_run:
            return
        self._sound.append(name)
        if len(self._sound) >= _FLUSH_PROJECTS or time.monotonic() - self._flushed > _FLUSH_SECONDS:
            self._flush()

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

    def _settle(self, finding: Finding) -> None:
        """Report a damaged project and repair what the options allow."""
        page = self.catalog.get(finding.name)
        if page is None:
            return
        verdicts = dict(finding.bad_files)
        bad = [e for e in expected_files(page) if e.rel in verdicts]
        for expected in bad:
            verdict = verdicts[expected.rel]
            (self.report.missing if verdict == "missing" else self.report.corrupt).append(
                expected.rel
            )
            log.warning("%s: %s %s", page.name, verdict, expected.rel)
        sound = self._repair_files(page, bad) if bad else True
        if finding.bad_pages:
            documents = page_documents(
                page,
                simple_format=self.config.simple_format,
                digest_name=self.config.digest_name,
            )
            for rel in finding.bad_pages:
                self.report.pages_bad.append(rel)
                if self.repair and not self.dry_run:
                    self.storage.write_if_changed(rel, documents[rel])
                    self.report.pages_fixed += 1
                    log.info("%s: rewrote %s", page.name, rel)
                else:
                    sound = False
                    log.warning("%s: page %s does not match the catalog", page.name, rel)
        if sound:
            self._sound_project(page.name)

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

    def _list_files(self) -> None:
        """Every file under ``web/packages`` into the catalog's scratch table, for
        :meth:`_check_unreferenced`: it is the walk that costs, not the memory."""
        for batch in batches(self.storage.walk_files("web/packages"), _PROBE_BATCH):
            if self._walk_stopped:
                return
            self.catalog.probe(batch)

    def _check_unreferenced(self) -> None:
        if self._walker is None:
            self._list_files()
        else:
            self._walker.result()
        stray = self.catalog.unreferenced()
        if self._walker is not None and self.report.repaired:
            # The walk ran beside the checks: a temp file a repair has since renamed into
            # place is gone.
            stray = [rel for rel in stray if os.path.lexists(self.storage.path(rel))]
        self.report.unreferenced = stray
        for rel in stray:
            if self.delete and not self.dry_run:
                self.storage.remove(rel, prune_up_to="web/packages")
                self.report.deleted += 1
                log.info("deleted unreferenced %s", rel)
            else:
                log.warning("unreferenced %s", rel)
