"""Bringing one project onto disk: fetch its page, keep what the filters select, place and
download those files, write its pages, remove what it no longer serves, record it in the
catalog — in that order.

Files of every project share one download pool, so a project with 2,000 files is fetched by
all workers at once instead of serialising behind one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName

from fullmirror import render
from fullmirror.catalog import Catalog, Pending
from fullmirror.config import Config
from fullmirror.download import Downloader, Job, Result
from fullmirror.errors import (
    FullmirrorError,
    ProjectGone,
    StateError,
    StorageError,
    UnsafeUpstreamData,
    UpstreamStatus,
)
from fullmirror.filters import Scope, Selection, project_allowed, select
from fullmirror.models import Hashes, MirroredFile, MirroredPage, ProjectPage, ReleaseFile
from fullmirror.plan import (
    Placement,
    local_files,
    locations_to_remove,
    metadata_location,
    mirrored_file,
    place,
    upload_epoch,
)
from fullmirror.storage import Storage

if TYPE_CHECKING:
    # Only a type here: ``delete`` uses this module's removal helpers without the HTTP client.
    from fullmirror.upstream import Upstream

log = logging.getLogger("fullmirror")


class ProjectFailed(FullmirrorError):
    """Some of a project's files could not be brought onto disk this run."""

    def __init__(self, name: str, errors: list[str]) -> None:
        self.name = name
        self.errors = errors
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{errors[0]}{more}")


class ProjectExcluded(FullmirrorError):
    """The filters drop the whole project: it was removed from the mirror (if it was there)."""

    def __init__(self, name: str, reason: str, was_mirrored: bool) -> None:
        self.name = name
        self.reason = reason
        self.was_mirrored = was_mirrored
        super().__init__(f"{name}: {reason}")


@dataclass(frozen=True, slots=True)
class Counters:
    """What a project worker did over a run, summed into the report."""

    files_downloaded: int = 0
    bytes_downloaded: int = 0
    files_removed: int = 0
    rejected: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.files_downloaded + other.files_downloaded,
            self.bytes_downloaded + other.bytes_downloaded,
            self.files_removed + other.files_removed,
            self.rejected + other.rejected,
        )


@dataclass
class _Entry:
    placement: Placement
    file_job: Future[Result] | None
    metadata_job: Future[Result] | None
    metadata_hashes: Hashes | None


class ProjectSync:
    """Syncs and removes projects; one instance serves every worker thread of a run."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        catalog: Catalog,
        upstream: Upstream,
        *,
        on_bytes: Callable[[int], None] = lambda n: None,
        scope: Scope | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.scope = scope
        self.clock = clock
        self.storage = storage
        self.catalog = catalog
        self.upstream = upstream
        self.downloader = make_downloader(
            config, upstream, storage, on_bytes=on_bytes, grouped_durability=True
        )
        self.files_downloaded = 0
        self.bytes_downloaded = 0
        self.files_removed = 0
        self.rejected = 0
        # Counters are bumped from every project thread.
        self._tally = threading.Lock()

    def close(self) -> None:
        self.downloader.close()

    # -- sync ----------------------------------------------------------------------------

    def attempt(self, item: Pending) -> str:
        """Sync ``item`` and say what happened, for the run to count: ``synced``, ``excluded``,
        ``gone``, ``removed[:why]`` or ``failed:<reason>`` (recorded for the next run).
        StorageError and StateError are raised: they end the run."""
        try:
            self.sync(item)
        except ProjectExcluded as exc:
            return "removed:filtered out" if exc.was_mirrored else "excluded"
        except ProjectGone:
            return "removed" if self.remove(item.name) else "gone"
        except (StorageError, StateError):
            raise
        except FullmirrorError as exc:
            self.catalog.fail(item.name, str(exc))
            log.warning("%s: failed, will retry next run: %s", item.name, exc)
            return f"failed:{exc}"
        return "synced"

    def counters(self) -> Counters:
        with self._tally:
            return Counters(
                self.files_downloaded, self.bytes_downloaded, self.files_removed, self.rejected
            )

    def sync(self, item: Pending) -> MirroredPage:
        """Bring ``item`` onto disk; ProjectExcluded when the filters drop it whole."""
        name = item.name
        filtering = self.config.filters.filters_anything or self.scope is not None
        extra = self.scope.extra_projects() if self.scope is not None else frozenset()
        if filtering and not project_allowed(self.config.filters, name, extra):
            # Not even fetched: the name alone decides.
            raise self._exclude(name, "project filters: the name is not allowed")
        parsed = self.upstream.project(name, at_least=item.serial)
        for bad in parsed.rejected:
            self._reject(name, bad)
        selection = self._select(parsed.page) if filtering else None
        if selection is not None and selection.project_reason is not None:
            raise self._exclude(name, selection.project_reason)
        wanted = selection.files if selection is not None else parsed.page.files
        old = self.catalog.get(name)
        entries = self._start_downloads(name, wanted, old)
        # This thread fetches the JSON API document while the pool downloads the files: over
        # a network with latency, one round trip less per project, and no download slot taken.
        json_files = self._json_api_files(name) if self.config.json else {}
        files, errors = self._finish_downloads(entries)
        if errors:
            raise ProjectFailed(name, errors)
        display = item.display_name or (old.display_name if old else None) or name
        page = MirroredPage(
            name=name,
            display_name=display,
            serial=parsed.page.serial,
            files=tuple(files),
            versions=selection.versions if selection is not None else parsed.page.versions,
            status=parsed.page.status,
            status_reason=parsed.page.status_reason,
        )
        changed = self._write_pages(page, json_files)
        if not changed and any(e.file_job or e.metadata_job for e in entries):
            # Pages that already link these paths: the new bytes must be durable all the same.
            self.storage.barrier()
        stale = locations_to_remove(old, page)
        served = set(local_files(page))
        for location in self.catalog.claimed(name):
            if location not in served:
                # Placed by a run killed before it recorded the project, and now gone upstream.
                stale += [location, metadata_location(location)]
        owners = self.catalog.owners(stale)
        for location in dict.fromkeys(stale):
            if owners.get(location) in (None, name):
                self._remove_file(location)
        if changed:
            # The catalog must not record pages a power cut could still take back.
            self.storage.barrier()
        self.catalog.put_project(page)
        if filtering:
            self.catalog.set_hold(name, selection.held_until if selection is not None else None)
        return page

    def _select(self, page: ProjectPage) -> Selection:
        selection = select(self.config.filters, page, self.clock(), self.scope)
        if selection.files_dropped:
            why = ", ".join(f"{rule} {count}" for rule, count in selection.dropped)
            log.info(
                "%s: %d of %d files filtered out (%s)",
                page.name,
                selection.files_dropped,
                len(page.files),
                why,
            )
        return selection

    def _exclude(self, name: NormalizedName, reason: str) -> ProjectExcluded:
        """Remove a project the filters drop (pages, files, record) and say so."""
        was_mirrored = self.remove(name)
        log.info("%s: not mirrored: %s", name, reason)
        return ProjectExcluded(name, reason, was_mirrored)

    def _start_downloads(
        self, name: NormalizedName, files: tuple[ReleaseFile, ...], old: MirroredPage | None
    ) -> list[_Entry]:
        recorded = {f.location: f for f in old.files} if old else {}
        placed: list[Placement] = []
        for f in files:
            try:
                placed.append(place(f, name))
            except UnsafeUpstreamData as exc:
                self._reject(name, exc)
        owners = self.catalog.owners(p.location for p in placed)
        placements: list[Placement] = []
        seen: set[str] = set()
        for placement in placed:
            owner = owners.get(placement.location)
            f = placement.file
            if placement.location in seen or owner not in (None, name):
                self._reject(
                    name,
                    UnsafeUpstreamData(
                        "file", f.filename, f"its path is already served by {owner or name}"
                    ),
                )
                continue
            seen.add(placement.location)
            placements.append(placement)
        if self.config.release_files:
            self.catalog.claim(name, [p.location for p in placements])
        return [self._plan_entry(p, recorded.get(p.location)) for p in placements]

    def _plan_entry(self, placement: Placement, recorded: MirroredFile | None) -> _Entry:
        f = placement.file
        target = "web/" + placement.location
        file_job = None
        metadata_job = None
        metadata_hashes: Hashes | None = None
        if self.config.release_files:
            if not self._is_current(target, f.hashes, f.size, f.upload_time, recorded):
                file_job = self.downloader.submit(
                    Job(
                        f.url,
                        target,
                        f.hashes,
                        f.size,
                        placement.address,
                        upload_epoch(f.upload_time),
                    )
                )
            if self.config.core_metadata and f.core_metadata is not None:
                meta_target = metadata_location(target)
                wanted = f.core_metadata.hashes
                known = recorded.metadata_hashes if recorded else None
                if self._metadata_current(meta_target, wanted, known):
                    metadata_hashes = wanted or known
                else:
                    metadata_job = self.downloader.submit(
                        Job(metadata_location(f.url), meta_target, wanted, kind="metadata")
                    )
        elif self.config.core_metadata and f.core_metadata is not None and f.core_metadata.hashes:
            # Metadata-only mirror: links point upstream, and so does the .metadata beside them.
            metadata_hashes = f.core_metadata.hashes
        return _Entry(placement, file_job, metadata_job, metadata_hashes)

    def _finish_downloads(self, entries: list[_Entry]) -> tuple[list[MirroredFile], list[str]]:
        files: list[MirroredFile] = []
        errors: list[str] = []
        for entry in entries:
            f = entry.placement.file
            if entry.file_job is not None:
                try:
                    result = entry.file_job.result()
                except StorageError:
                    raise  # the disk, not the project: stop the run (exit 5)
                except FullmirrorError as exc:
                    errors.append(f"{f.filename}: {exc}")
                    continue
                with self._tally:
                    self.files_downloaded += 1
                    self.bytes_downloaded += result.bytes_fetched
            metadata_hashes = entry.metadata_hashes
            if entry.metadata_job is not None:
                try:
                    meta = entry.metadata_job.result()
                    metadata_hashes = f.core_metadata.hashes if f.core_metadata else None
                    if not metadata_hashes:
                        metadata_hashes = (("sha256", meta.sha256),)
                    with self._tally:
                        self.files_downloaded += 1
                except StorageError:
                    raise
                except UpstreamStatus as exc:
                    if exc.status != 404:
                        errors.append(f"{f.filename}.metadata: {exc}")
                        continue
                    # Advertised but absent: serve the file without advertising metadata.
                    log.warning("%s: upstream advertises .metadata but has none", f.filename)
                except FullmirrorError as exc:
                    errors.append(f"{f.filename}.metadata: {exc}")
                    continue
            files.append(
                mirrored_file(
                    entry.placement,
                    metadata_hashes=metadata_hashes,
                    local=self.config.release_files,
                    root_uri=self.config.root_uri,
                )
            )
        return files, errors

    def _is_current(
        self,
        target: str,
        hashes: Hashes,
        size: int | None,
        upload_time: str | None,
        recorded: MirroredFile | None,
    ) -> bool:
        st = self.storage.stat(target)
        if st is None or (size is not None and st.size != size):
            return False
        sha256 = dict(hashes).get("sha256")
        if recorded is not None and recorded.sha256 == sha256:
            # Verified when it was written, and the catalog says so: trust size on the fast path.
            return True
        if self.config.compare_method == "stat":
            when = upload_epoch(upload_time)
            return when is not None and abs(st.mtime - when) < 1
        return sha256 is not None and self.storage.hash_file(target, "sha256") == sha256

    def _metadata_current(self, target: str, wanted: Hashes, known: Hashes | None) -> bool:
        if self.storage.stat(target) is None:
            return False
        want = dict(wanted).get("sha256")
        if want is None:
            return known is not None
        if known is not None and dict(known).get("sha256") == want:
            return True
        return self.storage.hash_file(target, "sha256") == want

    # -- pages ---------------------------------------------------------------------------

    def _write_pages(self, page: MirroredPage, extra: dict[str, bytes]) -> int:
        """Write the project's pages (and ``extra`` files) as one durable group: the barrier
        inside it also makes every file the pages link durable before any page is renamed."""
        base = f"web/simple/{page.name}/"
        self.storage.sweep_parts(base.rstrip("/"))
        pages = render.project_pages(
            page, simple_format=self.config.simple_format, digest_name=self.config.digest_name
        )
        group: dict[str, bytes | None] = {
            base + file_name: pages.get(file_name) for file_name in render.PAGE_FILES
        }
        group.update(extra)
        return self.storage.write_group(group)

    def _json_api_files(self, name: NormalizedName) -> dict[str, bytes]:
        """The JSON API copies to write with the pages; empty when they stay as they are."""
        try:
            document = self.upstream.json_api(name)
        except ProjectGone:
            # Upstream has no JSON document for it (e.g. no releases left): drop a stale copy.
            self.storage.remove(f"web/json/{name}")
            self.storage.remove(f"web/pypi/{name}/json", prune_up_to="web/pypi")
            return {}
        except FullmirrorError as exc:
            # The JSON API copy is a convenience; the simple pages are what clients need.
            log.warning("%s: JSON API copy not refreshed: %s", name, exc)
            return {}
        return {f"web/json/{name}": document, f"web/pypi/{name}/json": document}

    # -- removal -------------------------------------------------------------------------

    def remove(self, name: NormalizedName) -> bool:
        """Remove a project's files, pages, JSON copies and record. False if it was unknown."""
        old = self.catalog.get(name)
        removed = remove_served(self.storage, name, owned_files(self.catalog, name, old))
        with self._tally:
            self.files_removed += removed
        self.catalog.drop_project(name)
        return old is not None

    def _remove_file(self, location: str) -> None:
        if self.storage.remove("web/" + location, prune_up_to="web/packages"):
            with self._tally:
                self.files_removed += 1

    def _reject(self, name: NormalizedName, exc: UnsafeUpstreamData) -> None:
        with self._tally:
            self.rejected += 1
        log.warning("%s: %s", name, exc)


def owned_files(catalog: Catalog, name: NormalizedName, page: MirroredPage | None) -> list[str]:
    """Every local path the project serves or has claimed that no other project owns."""
    locations = local_files(page)
    # Paths claimed by a killed sync but never served are the project's files too.
    for location in catalog.claimed(name):
        locations += [location, metadata_location(location)]
    owners = catalog.owners(locations)
    return [loc for loc in dict.fromkeys(locations) if owners.get(loc) in (None, name)]


def remove_served(storage: Storage, name: NormalizedName, files: list[str]) -> int:
    """Remove a project's pages, JSON copies and ``files``; pages go first so none dangles."""
    storage.remove_tree(f"web/simple/{name}")
    storage.remove(f"web/json/{name}")
    storage.remove_tree(f"web/pypi/{name}")
    return sum(storage.remove("web/" + loc, prune_up_to="web/packages") for loc in files)


def make_downloader(
    config: Config,
    upstream: Upstream,
    storage: Storage,
    *,
    on_bytes: Callable[[int], None] = lambda n: None,
    grouped_durability: bool = False,
) -> Downloader:
    """The download pool as the config asks for it (workers, retries, download-mirror).

    ``grouped_durability``: files are not fsynced one by one; the caller runs
    :meth:`Storage.barrier` before anything links them."""
    return Downloader(
        upstream,
        storage,
        workers=config.workers,
        retries=config.retries,
        pause=upstream._pause,
        download_mirror=config.download_mirror,
        mirror_only=config.download_mirror_no_fallback,
        on_bytes=on_bytes,
        durable=not grouped_durability,
    )
