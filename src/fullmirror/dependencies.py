"""``[allowlist] dependencies = true``: the allowlist grows into everything it needs to install.

The pure fixpoint lives in :mod:`fullmirror.closure`; this module feeds it from the upstream
and the mirror. A project's releases come from its upstream page after the mirror's own
filters (targets, min-age, release filters); a release's Requires-Dist comes from its PEP 658
``.metadata`` file, which is downloaded, verified and renamed into the place the mirror serves
it from, so the sync that follows finds it current and fetches it only once. A wheel without
``.metadata`` is read the same way: it is wanted anyway, so it lands in its final place and its
``METADATA`` is read from the archive.

The resolved closure is kept in the catalog with the settings it was computed for. A run
resolves again only when those settings change, when no closure was kept, or when upstream
changed a project inside it (a new release may need something new).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import zipfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import compat32

from packaging.utils import NormalizedName, canonicalize_name

from fullmirror.catalog import Catalog
from fullmirror.closure import Closure, resolve
from fullmirror.download import Downloader, Job
from fullmirror.errors import FullmirrorError, ProjectGone, StorageError, UnsafeUpstreamData
from fullmirror.filters import FilterSettings, project_allowed
from fullmirror.models import ProjectPage, ReleaseFile
from fullmirror.parse import ParsedProject
from fullmirror.plan import metadata_location, place, upload_epoch
from fullmirror.releasefilters import select_releases, version_key
from fullmirror.storage import Storage
from fullmirror.targets import Target
from fullmirror.upstream import Upstream

log = logging.getLogger("fullmirror")

__all__ = ["ClosureScope", "MirrorProvider", "current_scope", "seeds"]

_META_KEY = "closure"
#: Core metadata larger than this is not a real METADATA file.
_MAX_METADATA = 16 * 1024 * 1024


def seeds(settings: FilterSettings) -> list[str]:
    """The allowlist and requirements lines, as PEP 508 requirement strings."""
    rules = [*settings.allowlist, *settings.requirements]
    return sorted({f"{rule.name}{rule.specifier}" for rule in rules})


@dataclass(frozen=True)
class ClosureScope:
    """The closure seen through the filters' :class:`~fullmirror.filters.Scope` seam."""

    closure: Closure
    #: The settings the closure was resolved for; a different one means resolve again.
    basis: str

    def extra_projects(self) -> frozenset[NormalizedName]:
        return frozenset(self.closure.wanted)

    def allows(self, name: NormalizedName, version: str) -> bool:
        versions = self.closure.wanted.get(name)
        # The closure names versions as filenames spell them (normalized); pages may not.
        return versions is not None and version_key(version) in versions

    def token(self) -> str:
        text = json.dumps(
            {name: sorted(v) for name, v in sorted(self.closure.wanted.items())}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def encode(self) -> str:
        return json.dumps(
            {
                "basis": self.basis,
                "wanted": {name: sorted(v) for name, v in sorted(self.closure.wanted.items())},
                "chains": {
                    name: list(chain) for name, chain in sorted(self.closure.chains.items())
                },
                "problems": list(self.closure.problems),
            },
            sort_keys=True,
        )


def decode_scope(text: str) -> ClosureScope | None:
    """A stored closure, or None when the record is unreadable (it is then resolved again)."""
    try:
        data = json.loads(text)
        wanted = {
            NormalizedName(name): frozenset(str(v) for v in versions)
            for name, versions in data["wanted"].items()
        }
        chains = {
            NormalizedName(name): tuple(NormalizedName(n) for n in chain)
            for name, chain in data["chains"].items()
        }
        problems = tuple(str(p) for p in data["problems"])
        return ClosureScope(Closure(wanted, chains, problems), str(data["basis"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def basis(settings: FilterSettings) -> str:
    """What the closure depends on besides upstream: seeds, targets and file rules."""
    targets = " ".join(t.spec for t in settings.targets)
    rules = repr((settings.enabled, settings.blocklist, settings.release_patterns,
                  settings.project_patterns, settings.prerelease_projects, settings.latest_keep,
                  settings.latest_sort_by, settings.platform_patterns, settings.sdists,
                  settings.min_age))  # fmt: skip
    return hashlib.sha256(f"{seeds(settings)}|{targets}|{rules}".encode()).hexdigest()[:16]


class MirrorProvider:
    """The closure's view of upstream: filtered releases and Requires-Dist, each fetched once.

    Pages fetched here are kept so the sync that follows does not fetch them again.
    """

    def __init__(
        self,
        settings: FilterSettings,
        upstream: Upstream,
        storage: Storage,
        downloader: Downloader | None,
        now: float,
    ) -> None:
        """With no ``downloader`` (``fullmirror plan``) nothing is written: metadata not yet
        on disk is read into memory and checked against its advertised sha256."""
        self.settings = settings
        self.upstream = upstream
        self.storage = storage
        self.downloader = downloader
        self.now = now
        self.pages: dict[NormalizedName, ParsedProject] = {}
        self._lock = threading.Lock()

    def prefetch(self, names: Iterable[NormalizedName], workers: int) -> None:
        """Fetch several pages at once; the resolver then asks for them one by one."""
        todo = [n for n in dict.fromkeys(names) if n not in self.pages]
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="closure") as pool:
            list(pool.map(self._page, todo))

    def _page(self, name: NormalizedName) -> ParsedProject | None:
        with self._lock:
            if name in self.pages:
                return self.pages[name]
        try:
            parsed = self.upstream.project(name, at_least=0)
        except ProjectGone:
            return None
        except FullmirrorError as exc:
            log.warning("%s: page not fetched for the dependency closure: %s", name, exc)
            return None
        with self._lock:
            self.pages[name] = parsed
        return parsed

    def releases(self, name: NormalizedName) -> Mapping[str, tuple[ReleaseFile, ...]] | None:
        if not project_allowed(self.settings, name, extra=(name,)):
            return None  # a blocklist or a name pattern still wins over the closure
        parsed = self._page(name)
        if parsed is None:
            return None
        page: ProjectPage = parsed.page
        chosen = select_releases(self.settings, page, self.now, None)
        groups: dict[str, list[ReleaseFile]] = {}
        for f in chosen.files:
            version = f.version
            if version is not None:
                groups.setdefault(version, []).append(f)
        return {version: tuple(files) for version, files in groups.items()}

    def requires(
        self, name: NormalizedName, version: str, file: ReleaseFile
    ) -> tuple[str, ...] | None:
        try:
            location = "web/" + place(file, name).location
        except UnsafeUpstreamData:
            return None
        if file.core_metadata is not None:
            target = metadata_location(location)
            if self.storage.stat(target) is None and self.downloader is None:
                return self._in_memory(metadata_location(file.url), file.core_metadata.sha256)
            if self.storage.stat(target) is None:
                job = Job(
                    metadata_location(file.url), target, file.core_metadata.hashes, kind="metadata"
                )
                if not self._fetch(job, file.filename):
                    return None
            data = self.storage.read_bytes(target)
            return None if data is None else requires_dist(data)
        if file.filename.endswith(".whl"):
            return self._from_wheel(name, file, location)
        return None

    def _in_memory(self, url: str, sha256: str | None) -> tuple[str, ...] | None:
        body = bytearray()

        def sink(chunk: bytes) -> None:
            body.extend(chunk)
            if len(body) > _MAX_METADATA:
                raise UnsafeUpstreamData("metadata", url, "larger than any real METADATA")

        try:
            self.upstream.fetch_file(url, offset=0, on_start=lambda _: None, sink=sink)
        except FullmirrorError as exc:
            log.warning("%s: metadata not fetched for the dependency closure: %s", url, exc)
            return None
        if sha256 is not None and hashlib.sha256(body).hexdigest() != sha256:
            log.warning("%s: metadata does not match its advertised sha256", url)
            return None
        return requires_dist(bytes(body))

    def _from_wheel(
        self, name: NormalizedName, file: ReleaseFile, location: str
    ) -> tuple[str, ...] | None:
        if self.storage.stat(location) is None and self.downloader is None:
            return None  # a plan downloads no release file; the dependencies stay unknown
        if self.storage.stat(location) is None:
            placement = place(file, name)
            job = Job(
                file.url,
                location,
                file.hashes,
                file.size,
                placement.address,
                upload_epoch(file.upload_time),
            )
            if not self._fetch(job, file.filename):
                return None
        try:
            with zipfile.ZipFile(self.storage.path(location)) as archive:
                for member in archive.infolist():
                    parts = member.filename.split("/")
                    if (
                        len(parts) == 2
                        and parts[0].endswith(".dist-info")
                        and parts[1] == "METADATA"
                        and member.file_size <= _MAX_METADATA
                    ):
                        return requires_dist(archive.read(member))
        except (OSError, zipfile.BadZipFile) as exc:
            log.warning("%s: cannot read its METADATA: %s", file.filename, exc)
        return None

    def _fetch(self, job: Job, filename: str) -> bool:
        assert self.downloader is not None
        try:
            self.downloader.submit(job).result()
        except StorageError:
            raise
        except FullmirrorError as exc:
            log.warning("%s: metadata not fetched for the dependency closure: %s", filename, exc)
            return False
        return True


def requires_dist(data: bytes) -> tuple[str, ...]:
    """The Requires-Dist lines of a core metadata file (any metadata version)."""
    message = BytesParser(policy=compat32).parsebytes(data, headersonly=True)
    return tuple(str(value).strip() for value in message.get_all("Requires-Dist") or ())


def resolve_scope(settings: FilterSettings, provider: MirrorProvider, workers: int) -> ClosureScope:
    """Resolve the closure of the configured seeds over every target."""
    names = [canonicalize_name(r.name) for r in (*settings.allowlist, *settings.requirements)]
    provider.prefetch(names, workers)
    targets = tuple(t for t in settings.targets if isinstance(t, Target))
    closure = resolve(seeds(settings), targets, provider)
    for problem in closure.problems:
        log.warning("dependency closure: %s", problem)
    return ClosureScope(closure, basis(settings))


def kept_scope(catalog: Catalog, settings: FilterSettings) -> ClosureScope | None:
    """The closure the catalog keeps, if it was resolved for these settings."""
    text = catalog.get_meta(_META_KEY)
    if not text:
        return None
    scope = decode_scope(text)
    return scope if scope is not None and scope.basis == basis(settings) else None


def current_scope(
    settings: FilterSettings,
    catalog: Catalog,
    provider: MirrorProvider,
    changed: Iterable[NormalizedName],
    workers: int,
) -> ClosureScope:
    """The closure this run mirrors: the kept one, unless the settings changed or upstream
    changed a project inside it (a new release may need projects the closure lacks)."""
    kept = kept_scope(catalog, settings)
    if kept is not None:
        touched = kept.extra_projects().intersection(changed)
        if not touched:
            return kept
        log.info("dependency closure: %d of its projects changed upstream", len(touched))
    scope = resolve_scope(settings, provider, workers)
    log.info(
        "dependency closure: %d projects, %d versions",
        len(scope.closure.wanted),
        sum(len(v) for v in scope.closure.wanted.values()),
    )
    catalog.set_meta(_META_KEY, scope.encode())
    return scope
