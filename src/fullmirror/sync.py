"""One ``mirror`` run: learn what changed, bring each changed project onto disk, write the
pages, advance the checkpoint only as far as the data on disk allows.

The order inside a project is what keeps a killed run harmless: files first (each verified and
renamed into place), then the project's pages, then removal of files it no longer serves, and
last the catalog record that settles its pending change. A run killed anywhere repeats at most
that one project's work next time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Protocol

from packaging.utils import NormalizedName

from fullmirror import render
from fullmirror.catalog import BATCH, Catalog, Pending
from fullmirror.config import Config
from fullmirror.errors import (
    StateError,
    StorageError,
)
from fullmirror.filters import FilterSettings, Scope, fingerprint, project_allowed
from fullmirror.parts import part_name
from fullmirror.plan import changes_from_changelog, honest_status
from fullmirror.processes import shard_count
from fullmirror.progress import NoProgress, Progress
from fullmirror.project import Counters, ProjectSync
from fullmirror.rootpages import root_files, write_root_pages
from fullmirror.shards import ShardPool, ShardSpec, ShardTotals
from fullmirror.state import (
    GENERATION,
    GENERATION_TEXT,
    BadState,
    format_last_modified,
    format_status,
    parse_generation,
    parse_status,
)
from fullmirror.storage import Storage
from fullmirror.upstream import Upstream

log = logging.getLogger("fullmirror")


class _Runner(Protocol):
    def submit(self, item: Pending) -> Future[str]: ...

    def close(self, *, clean: bool) -> ShardTotals: ...


class _Threads:
    """Projects synced by threads of this process."""

    def __init__(self, worker: ProjectSync, workers: int) -> None:
        self._worker = worker
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="project")

    def submit(self, item: Pending) -> Future[str]:
        return self._pool.submit(self._worker.attempt, item)

    def close(self, *, clean: bool) -> ShardTotals:
        # Projects already started finish either way: each leaves the mirror consistent.
        self._pool.shutdown(wait=True, cancel_futures=not clean)
        return ShardTotals(Counters(), {}, [])


#: Runs in a row a project may fail before it is reported as persistently failing.
LOUD_AFTER = 3


@dataclass
class Report:
    serial_from: int = 0
    serial_to: int = 0
    target: int = 0
    projects_synced: int = 0
    projects_removed: int = 0
    #: Projects the filters dropped whole this run (size, version count, name rules).
    projects_filtered: int = 0
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    files_removed: int = 0
    rejected: int = 0
    failures: dict[NormalizedName, str] = field(default_factory=dict)
    persistent: dict[NormalizedName, tuple[int, str]] = field(default_factory=dict)
    seconds: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False
    #: What the dependency closure could not follow (missing projects, unknown metadata).
    closure_problems: list[str] = field(default_factory=list)


class Mirror:
    """Everything one run needs, wired together by the CLI."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        catalog: Catalog,
        upstream: Upstream,
        *,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.time,
        scope: Scope | None = None,
    ) -> None:
        """``scope`` widens and narrows what the filters select (the dependency closure of
        ``[allowlist] dependencies = true`` plugs in here); None: the filters alone decide."""
        self.config = config
        self.scope = scope
        self.storage = storage
        self.catalog = catalog
        self.upstream = upstream
        self.progress = progress or NoProgress()
        self.clock = clock
        self.report = Report()
        self.worker = ProjectSync(
            config,
            storage,
            catalog,
            upstream,
            on_bytes=self.progress.add_bytes,
            scope=scope,
            clock=clock,
        )

    # -- the run -------------------------------------------------------------------------

    def run(self) -> Report:
        try:
            return self._run()
        finally:
            self.worker.close()

    def run_named(self, names: list[NormalizedName]) -> Report:
        """Sync ``names`` now, whatever the serial says; the checkpoint does not move."""
        try:
            monotonic = time.monotonic()
            status = self._prepare()
            self.report.serial_from = self.report.serial_to = self.report.target = status
            asked = dict.fromkeys(names, 0)
            if self.config.filters.dependencies:
                self._keep_closure(asked)
            for name in names:
                if not self._allowed(name):
                    self.report.failures[name] = "the configured filters do not allow it"
            self.catalog.forget_deleted(names)
            self.catalog.add_pending(asked, since=status)
            items = self.catalog.pending_for(asked)
            if self._sync_projects(len(items), items) or self._root_missing():
                self.write_root_index()
            for name in names:
                if name not in self.report.failures and self.catalog.get(name) is None:
                    self.report.failures[name] = "not mirrored: upstream has no such project"
            self.report.seconds = time.monotonic() - monotonic
            self.report.requests = dict(self.upstream.requests)
            return self.report
        finally:
            self.worker.close()

    def _run(self) -> Report:
        started = self.clock()
        monotonic = time.monotonic()
        status = self._prepare()
        self.report.serial_from = status
        target = self._collect_changes(status)
        self.report.target = target
        total = self.catalog.pending_count()
        log.info("%d projects to sync (serial %d -> %d)", total, status, target)
        changed = self._sync_projects(total, self.catalog.iter_pending())
        if changed or self._root_missing():
            self.write_root_index()
        reached = honest_status(target, self.catalog.lowest_pending_since())
        self._write_status(reached)
        if not self.catalog.pending_count():
            self.storage.write_if_changed(
                "web/last-modified", format_last_modified(started).encode()
            )
        self.report.serial_to = reached
        self._report_persistent()
        self.report.seconds = time.monotonic() - monotonic
        self.report.requests = dict(self.upstream.requests)
        return self.report

    def _prepare(self) -> int:
        """Check what format the directory holds; return the serial it claims."""
        for d in ("web/simple", "web/packages"):
            self.storage.makedirs(d)
        self.storage.sweep_parts("")
        self.storage.sweep_parts("web")
        # Listing web/simple would read one entry per project; only the root pages' temp
        # files can stand there (each project folder is swept when its pages are written).
        for page_file in render.PAGE_FILES:
            self.storage.remove(part_name("web/simple/" + page_file))
        raw_generation = self.storage.read_bytes("generation")
        generation = None if raw_generation is None else raw_generation.decode("ascii", "replace")
        if generation is not None:
            try:
                tool, number = parse_generation(generation)
            except BadState as exc:
                raise StateError(
                    str(self.storage.path("generation")),
                    str(exc),
                    "this directory was not written by fullmirror; point `directory` elsewhere",
                ) from exc
            if tool == "bandersnatch":
                log.warning(
                    "adopting a bandersnatch mirror (generation %d): every project is "
                    "re-listed once; files already on disk are verified and reused",
                    number,
                )
                self.catalog.set_meta("cursor", "")
                self.storage.remove("status")
            elif number > GENERATION:
                raise StateError(
                    str(self.storage.path("generation")),
                    f"written by a newer fullmirror (format {number}, this one knows {GENERATION})",
                    "upgrade fullmirror",
                )
        if generation is None or generation.strip() != GENERATION_TEXT:
            self.storage.write_if_changed("generation", GENERATION_TEXT.encode())
        raw_status = self.storage.read_bytes("status")
        if raw_status is None:
            return 0
        try:
            return parse_status(raw_status.decode("ascii", "replace"))
        except BadState as exc:
            raise StateError(
                str(self.storage.path("status")),
                str(exc),
                "delete the file to check every project against upstream again",
            ) from exc

    def _collect_changes(self, status: int) -> int:
        """Record what upstream changed since the cursor as pending work; return the target."""
        cursor_text = self.catalog.get_meta("cursor")
        cursor = int(cursor_text) if cursor_text and cursor_text.isdigit() else None
        listed_all = self.config.api_method == "simple" or cursor is None
        if cursor is None or self.config.api_method == "simple":
            target = self._collect_listed(status)
        else:
            entries = self.upstream.changelog_since(cursor)
            changes = changes_from_changelog(entries)
            target = max([cursor, *(e.serial for e in entries)])
            if self.config.filters.dependencies:
                self._keep_closure(changes)
            self.catalog.add_pending(self._wanted(changes), since=status)
        self.catalog.set_meta("cursor", str(target))
        self._recheck_after_filter_change(status, listed_all)
        due = self.catalog.due_holds(self.clock())
        if due:
            log.info("%d projects have releases old enough for min-age now", len(due))
            self.catalog.add_pending(due, since=status)
        return target

    def _collect_listed(self, status: int) -> int:
        """Compare upstream's whole project list with the mirror; return the target serial.

        The list (700,000 entries at PyPI's size) goes into the state database as it
        arrives and is compared there, a batch at a time, never held whole."""
        if self.config.api_method == "simple":
            serial = self._load_listing()
            target = max(status, self.catalog.listing_max_serial() if serial is None else serial)
        else:
            target = self.upstream.changelog_last_serial()
            self._load_listing()
        gone = self.catalog.unlisted()
        if self.config.filters.dependencies:
            # The closure is worked out over every change at once; it serves filtered
            # mirrors, whose change sets are small.
            changes: dict[NormalizedName, int] = {}
            names: dict[NormalizedName, str] = {}
            for batch in self.catalog.listed_changes():
                changes.update((p.name, p.serial) for p in batch)
                names.update((p.name, p.display_name) for p in batch)
            self._keep_closure(changes)
            self.catalog.add_pending(self._wanted(changes), since=status, display_names=names)
        else:
            for batch in self.catalog.listed_changes():
                self.catalog.add_pending(
                    self._wanted({p.name: p.serial for p in batch}),
                    since=status,
                    display_names={p.name: p.display_name for p in batch},
                )
        self.catalog.clear_listing()
        for name in gone:
            self._remove_project(name)
        return target

    def _load_listing(self) -> int | None:
        """Stream upstream's whole project list into the catalog's ``listing`` table; the
        index-wide serial a PEP 691 root names, if any."""
        sink = self.catalog.listing_sink()
        if self.config.api_method == "simple":
            return self.upstream.stream_listing(sink)
        self.upstream.stream_serials(sink)
        return None

    # -- filters ---------------------------------------------------------------------------

    def _keep_closure(self, changes: dict[NormalizedName, int]) -> None:
        """Make the dependency closure this run's scope; a new closure changes the filter
        fingerprint, so the mirror is re-checked against it like after a config change."""
        from fullmirror.dependencies import MirrorProvider, current_scope

        provider = MirrorProvider(
            self.config.filters, self.upstream, self.storage, self.worker.downloader, self.clock()
        )
        scope = current_scope(
            self.config.filters, self.catalog, provider, changes, self.config.workers
        )
        self.scope = self.worker.scope = scope
        self.report.closure_problems = list(scope.closure.problems)

    def _allowed(self, name: NormalizedName) -> bool:
        extra = self.scope.extra_projects() if self.scope is not None else frozenset()
        return project_allowed(self.config.filters, name, extra)

    def _wanted(self, changes: dict[NormalizedName, int]) -> dict[NormalizedName, int]:
        """The changes the project filters let through; a refused mirrored project goes."""
        if not self.config.filters.filters_anything and self.scope is None:
            return changes
        wanted = {}
        for name, serial in changes.items():
            if self._allowed(name):
                wanted[name] = serial
            elif self.catalog.get(name) is not None:
                self._remove_project(name, why="filtered out")
        return wanted

    def _recheck_after_filter_change(self, status: int, listed_all: bool) -> None:
        """When the filter fingerprint differs from the last run's, check every mirrored
        project again (or remove it) and queue every newly allowed one: no upstream change or
        --force-check is needed for a filter change to take effect."""
        settings = self.config.filters
        current = fingerprint(settings, self.scope)
        previous = self.catalog.get_meta("filters") or fingerprint(FilterSettings())
        if current == previous:
            return
        log.info("the filter settings changed: checking every project against them again")
        recheck: dict[NormalizedName, int] = {}
        for project in self.catalog.iter_projects():
            if self._allowed(project.name):
                recheck[project.name] = project.serial
                if len(recheck) >= BATCH:
                    self.catalog.add_pending(recheck, since=status)
                    recheck = {}
            else:
                self._remove_project(project.name, why="filtered out")
        extra = self.scope.extra_projects() if self.scope is not None else frozenset()
        if settings.has_allowlist() or extra:
            for name in sorted(settings.wanted_names() | extra):
                if self.catalog.get(name) is None and self._allowed(name):
                    recheck[name] = 0
        elif not listed_all:
            # A loosened filter may allow any upstream project: the changelog since the
            # cursor cannot say which, the full listing can.
            self._load_listing()
            for batch in self.catalog.listed_changes():
                self.catalog.add_pending(
                    {p.name: p.serial for p in batch if self._allowed(p.name)},
                    since=status,
                    display_names={p.name: p.display_name for p in batch},
                )
            self.catalog.clear_listing()
        self.catalog.add_pending(recheck, since=status)
        self.catalog.set_meta("filters", current)

    def _sync_projects(self, total: int, pending: Iterable[Pending]) -> bool:
        """Bring the ``total`` ``pending`` projects onto disk, several at a time; ``pending``
        is read as the window frees up, never all at once."""
        self.progress.start(total)
        changed = self.report.projects_removed > 0
        window = max(4 * self.config.workers, 16)
        running: dict[Future[str], Pending] = {}
        # Each finished project lands here; waiting on one queue costs nothing per project,
        # where re-arming a wait over the whole window did on every completion.
        finished: SimpleQueue[Future[str]] = SimpleQueue()
        fatal: BaseException | None = None
        runner = self._runner(total)
        clean = False
        try:
            queue = iter(pending)
            while True:
                while fatal is None and len(running) < window and not self.report.stopped_early:
                    item = next(queue, None)
                    if item is None:
                        break
                    future = runner.submit(item)
                    running[future] = item
                    future.add_done_callback(finished.put)
                if not running:
                    break
                future = finished.get()
                item = running.pop(future)
                self.progress.advance(item.name)
                try:
                    outcome = future.result()
                except (StorageError, StateError) as exc:
                    fatal = fatal or exc
                    continue
                changed = self._count(item.name, outcome) or changed
            clean = True
        finally:
            try:
                totals = runner.close(clean=clean)
            finally:
                self.progress.close()
        self.upstream.add_requests(totals.requests)
        self.storage.written += totals.written
        counters = self.worker.counters() + totals.counters
        self.report.files_downloaded = counters.files_downloaded
        self.report.bytes_downloaded = counters.bytes_downloaded
        self.report.files_removed = counters.files_removed
        self.report.rejected = counters.rejected
        if fatal is not None:
            raise fatal
        return changed

    def _runner(self, projects: int) -> _Runner:
        """Child processes for a large run (see :mod:`fullmirror.shards`), else threads here.

        The dependency closure is the parent's own state, so a run that has one stays here."""
        count = shard_count(self.config.processes, projects, os.cpu_count())
        if count < 2 or self.scope is not None:
            return _Threads(self.worker, self.config.workers)
        spec = ShardSpec(
            self.config, self.storage.record_writes, log.getEffectiveLevel(), os.getpid()
        )
        log.info("syncing in %d processes", count)
        return ShardPool(spec, count, on_bytes=self.progress.add_bytes)

    def _count(self, name: NormalizedName, outcome: str) -> bool:
        """Tally one project's outcome; True when the root index must be rewritten."""
        if outcome == "synced":
            self.report.projects_synced += 1
            return True
        if outcome.startswith("removed"):
            self.report.projects_removed += 1
            why = outcome.partition(":")[2] or "gone upstream"
            if why == "filtered out":
                self.report.projects_filtered += 1
            log.info("%s: removed (%s)", name, why)
            return True
        if outcome == "excluded":
            self.report.projects_filtered += 1
            return False
        if outcome == "gone":
            return False
        self.report.failures[name] = outcome.removeprefix("failed:")
        if self.config.stop_on_error:
            self.report.stopped_early = True
        return False

    # -- removal, index, checkpoint --------------------------------------------------------

    def _remove_project(self, name: NormalizedName, why: str = "") -> None:
        removed = self.worker.remove(name)
        self._count(name, (f"removed:{why}" if why else "removed") if removed else "gone")

    def _root_missing(self) -> bool:
        """True when a root page the configured simple-format needs is not on disk."""
        return any(
            self.storage.stat(rel) is None
            for rels, _ in root_files(self.config.simple_format)
            for rel in rels
        )

    def write_root_index(self) -> None:
        serial = honest_status(self.report.target or 0, self.catalog.lowest_pending_since())
        write_root_pages(self.storage, self.catalog, serial, self.config.simple_format)

    def _write_status(self, serial: int) -> None:
        # Everything the serial covers must be durable before the serial says so.
        self.storage.barrier()
        if self.storage.write_if_changed("status", format_status(serial).encode()):
            self.storage.sync_dir("")

    def _report_persistent(self) -> None:
        for item in self.catalog.failing(LOUD_AFTER):
            self.report.persistent[item.name] = (item.attempts, item.error or "unknown")
            log.error(
                "%s has failed %d runs in a row and is not mirrored: %s",
                item.name,
                item.attempts,
                item.error,
            )
