"""``fullmirror plan``: what the next ``mirror`` run would fetch and remove, changing nothing.

It asks upstream the same questions a run asks (the changelog since the cursor, or the
listing), re-checks the mirror when the filter settings changed, resolves the dependency
closure when one is configured, and compares each candidate project's filtered page with the
catalog's record and the disk. No release file is downloaded; metadata the closure needs and
the mirror lacks is read into memory. Nothing in the mirror directory is written.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from packaging.utils import NormalizedName

from fullmirror.catalog import Catalog
from fullmirror.config import Config
from fullmirror.dependencies import ClosureScope, MirrorProvider, kept_scope, resolve_scope
from fullmirror.errors import FullmirrorError, ProjectGone, UnsafeUpstreamData
from fullmirror.filters import FilterSettings, Scope, fingerprint, project_allowed, select
from fullmirror.models import MirroredPage
from fullmirror.plan import (
    changes_from_changelog,
    local_files,
    metadata_location,
    place,
)
from fullmirror.storage import Storage
from fullmirror.upstream import Upstream

log = logging.getLogger("fullmirror")

__all__ = ["FileToFetch", "Plan", "ProjectPlan", "make_plan"]


@dataclass(frozen=True, slots=True)
class FileToFetch:
    filename: str
    #: Path relative to ``web/``.
    location: str
    size: int | None


@dataclass(frozen=True, slots=True)
class ProjectPlan:
    name: NormalizedName
    #: ``add`` (not mirrored yet), ``update``, ``remove``, ``unchanged`` or ``error``.
    action: str
    fetch: tuple[FileToFetch, ...] = ()
    #: Paths relative to ``web/`` that leave the disk (release files and ``.metadata``).
    remove: tuple[str, ...] = ()
    #: Why a project is removed or could not be planned.
    reason: str = ""
    #: For a project the dependency closure adds: the chain back to a seed.
    chain: str = ""

    @property
    def bytes(self) -> int:
        return sum(f.size or 0 for f in self.fetch)


@dataclass
class Plan:
    serial_from: int
    serial_to: int
    projects: list[ProjectPlan] = field(default_factory=list)
    closure_problems: tuple[str, ...] = ()

    @property
    def changed(self) -> list[ProjectPlan]:
        return [p for p in self.projects if p.action != "unchanged"]


def make_plan(
    config: Config, catalog: Catalog, upstream: Upstream, storage: Storage, now: float
) -> Plan:
    settings = config.filters
    cursor_text = catalog.get_meta("cursor")
    cursor = int(cursor_text) if cursor_text and cursor_text.isdigit() else None
    serial_from = cursor or 0
    gone: set[NormalizedName] = set()
    if config.api_method == "simple" or cursor is None:
        # The listing (700,000 entries at PyPI's size) is compared in SQL, as a run compares
        # it, but in a temporary table: the state database stays as it was.
        catalog.scratch_listing()
        sink = catalog.listing_sink()
        if config.api_method == "simple":
            serial_to = upstream.stream_listing(sink) or serial_from
        else:
            serial_to = upstream.changelog_last_serial() or serial_from
            upstream.stream_serials(sink)
        changes = {p.name: p.serial for batch in catalog.listed_changes() for p in batch}
        gone = set(catalog.unlisted())
    else:
        entries = upstream.changelog_since(cursor)
        changes = changes_from_changelog(entries)
        serial_to = max([cursor, *(e.serial for e in entries)])
    candidates = dict(changes)
    for name, item in catalog.pending().items():
        candidates.setdefault(name, item.serial)
    candidates.update(catalog.due_holds(now))

    scope: ClosureScope | None = None
    if settings.dependencies:
        provider = MirrorProvider(settings, upstream, storage, None, now)
        scope = kept_scope(catalog, settings)
        if scope is None or scope.extra_projects() & set(candidates):
            scope = resolve_scope(settings, provider, config.workers)
    extra = scope.extra_projects() if scope is not None else frozenset()
    previous = catalog.get_meta("filters") or fingerprint(FilterSettings())
    if fingerprint(settings, scope) != previous:
        mirrored = catalog.serials()
        candidates.update(mirrored)
        if settings.has_allowlist() or extra:
            candidates.update(dict.fromkeys(settings.wanted_names() | extra, 0))
        else:
            listed = (
                upstream.listing().projects
                if config.api_method == "simple"
                else upstream.list_packages_with_serial()
            )
            candidates.update({p.name: p.serial for p in listed if p.name not in mirrored})

    plan = Plan(serial_from, serial_to, closure_problems=scope.closure.problems if scope else ())
    for name in sorted(gone):
        plan.projects.append(_removal(catalog, name, "removed upstream"))
    filtering = settings.filters_anything or scope is not None

    def one(name: NormalizedName) -> ProjectPlan:
        return _project(config, catalog, upstream, storage, name, now, scope, filtering)

    with ThreadPoolExecutor(config.workers, thread_name_prefix="plan") as pool:
        plan.projects += pool.map(one, sorted(n for n in candidates if n not in gone))
    if scope is not None:
        seeds = {rule.name for rule in (*settings.allowlist, *settings.requirements)}
        plan.projects = [
            _with_chain(p, scope) if p.name not in seeds and p.action != "remove" else p
            for p in plan.projects
        ]
    return plan


def _with_chain(project: ProjectPlan, scope: ClosureScope) -> ProjectPlan:
    if project.name not in scope.closure.chains:
        return project
    return ProjectPlan(
        project.name,
        project.action,
        project.fetch,
        project.remove,
        project.reason,
        scope.closure.chain_text(project.name),
    )


def _removal(catalog: Catalog, name: NormalizedName, reason: str) -> ProjectPlan:
    old = catalog.get(name)
    if old is None:
        return ProjectPlan(name, "unchanged", reason=reason)
    return ProjectPlan(name, "remove", remove=_local(old), reason=reason)


def _local(page: MirroredPage | None) -> tuple[str, ...]:
    return tuple(sorted(local_files(page)))


def _project(
    config: Config,
    catalog: Catalog,
    upstream: Upstream,
    storage: Storage,
    name: NormalizedName,
    now: float,
    scope: Scope | None,
    filtering: bool,
) -> ProjectPlan:
    extra = scope.extra_projects() if scope is not None else frozenset()
    if filtering and not project_allowed(config.filters, name, extra):
        return _removal(catalog, name, "filtered out")
    try:
        parsed = upstream.project(name, at_least=0)
    except ProjectGone:
        return _removal(catalog, name, "gone upstream")
    except FullmirrorError as exc:
        return ProjectPlan(name, "error", reason=str(exc))
    files = parsed.page.files
    if filtering:
        selection = select(config.filters, parsed.page, now, scope)
        if selection.project_reason is not None:
            return _removal(catalog, name, selection.project_reason)
        files = selection.files
    old = catalog.get(name)
    keep: set[str] = set()
    fetch: list[FileToFetch] = []
    for f in files:
        try:
            location = place(f, name).location
        except UnsafeUpstreamData:
            continue
        keep.add(location)
        if not config.release_files:
            continue
        st = storage.stat("web/" + location)
        if st is None or (f.size is not None and st.size != f.size):
            fetch.append(FileToFetch(f.filename, location, f.size))
        if (
            config.core_metadata
            and f.core_metadata is not None
            and storage.stat("web/" + metadata_location(location)) is None
        ):
            fetch.append(FileToFetch(f.filename + ".metadata", metadata_location(location), None))
    served = {loc for loc in keep} | {metadata_location(loc) for loc in keep}
    remove = tuple(loc for loc in _local(old) if loc not in served)
    if old is None:
        action = "add"
    elif fetch or remove or {f.location for f in old.files} != keep:
        action = "update"
    else:
        action = "unchanged"
    return ProjectPlan(name, action, tuple(fetch), remove)
