"""What the mirror keeps: bandersnatch's filter plugins, a release cooldown and target
environments, as pure functions of the settings and one upstream project page.

Pure: no I/O (neither ``os`` nor ``httpx``), so every rule is tested with literals. The settings
come from :mod:`fullmirror.filterconfig`; release-level rules live in
:mod:`fullmirror.releasefilters`.

Three stages, as in bandersnatch, and a project or file stays only if every enabled rule of a
stage lets it through:

* project rules look at the name only (:func:`project_allowed`), so a project they refuse is
  never fetched;
* metadata rules look at the whole page (total size, number of versions) and drop the project;
* release and file rules drop versions and files (:func:`select`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Protocol

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from fullmirror.models import ProjectPage
from fullmirror.releasefilters import Selection, is_sdist, release_versions, select_releases

__all__ = [
    "PLUGINS",
    "FilterSettings",
    "Scope",
    "Selection",
    "TargetLike",
    "VersionRule",
    "fingerprint",
    "is_sdist",
    "project_allowed",
    "select",
]

#: The bandersnatch filter plugins fullmirror implements, by their bandersnatch names.
PLUGINS = (
    "allowlist_project", "blocklist_project", "allowlist_release", "blocklist_release",
    "project_requirements", "project_requirements_pinned", "regex_project", "regex_release",
    "prerelease_release", "latest_release", "exclude_platform", "size_project_metadata",
    "versions_count_project_metadata",
)  # fmt: skip


class TargetLike(Protocol):
    """What the selection needs from :class:`fullmirror.targets.Target`."""

    @property
    def spec(self) -> str: ...
    def supports_file(self, filename: str, requires_python: str | None) -> bool: ...
    def supports_python(self, requires_python: str | None) -> bool: ...


class Scope(Protocol):
    """The seam for ``[allowlist] dependencies = true``: decides which more projects and which
    versions are wanted, beyond the configured filters (e.g. an allowlist's dependency closure).

    ``extra_projects`` count as allowlisted (a blocklist still wins); ``allows`` may refuse a
    version the filters keep. ``token`` changes whenever the answers change, so a run re-checks
    the mirror as it does after a config change.
    """

    def extra_projects(self) -> frozenset[NormalizedName]: ...
    def allows(self, name: NormalizedName, version: str) -> bool: ...
    def token(self) -> str: ...


@dataclass(frozen=True, slots=True)
class VersionRule:
    """One requirement line: a project and a PEP 440 specifier (``""``: every version)."""

    name: NormalizedName
    specifier: str = ""

    def contains(self, version: str, *, prereleases: bool | None = None) -> bool:
        """Whether ``version`` matches; an invalid version never does (as bandersnatch)."""
        try:
            parsed = Version(version)
        except InvalidVersion:
            return False
        return SpecifierSet(self.specifier).contains(parsed, prereleases=prereleases)


@dataclass(frozen=True, slots=True)
class FilterSettings:
    """Every setting that decides what is mirrored; the default filters nothing."""

    #: ``[plugins] enabled``, resolved (``all`` expanded), in :data:`PLUGINS` order.
    enabled: tuple[str, ...] = ()
    #: ``[allowlist] packages``: every line, with or without a specifier.
    allowlist: tuple[VersionRule, ...] = ()
    #: ``[blocklist] packages``: plain names block projects, specifiers block releases.
    blocklist: tuple[VersionRule, ...] = ()
    #: The lines of the ``[allowlist] requirements`` files, read when the config was loaded.
    requirements: tuple[VersionRule, ...] = ()
    #: ``[filter_regex] packages`` and ``releases``: ``re.match`` drops what they match.
    project_patterns: tuple[str, ...] = ()
    release_patterns: tuple[str, ...] = ()
    #: ``[filter_prerelease] packages``; empty: the prerelease filter applies to every project.
    prerelease_projects: tuple[NormalizedName, ...] = ()
    #: ``[latest_release] keep`` (0: keep all) and ``sort_by`` (``version`` or ``time``).
    latest_keep: int = 0
    latest_sort_by: str = "version"
    #: ``[blocklist] platforms``, turned into filename substrings and package types.
    platform_patterns: tuple[str, ...] = ()
    platform_packagetypes: tuple[str, ...] = ()
    #: ``[size_project_metadata] max_package_size`` in bytes (0: no limit).
    max_package_size: int = 0
    #: ``[versions_count_project_metadata]``: fewer than min or more than max drops (0: none).
    min_versions: int = 0
    max_versions: int = 0
    #: ``[targets] environments`` and ``sdists``; no targets: every environment.
    targets: tuple[TargetLike, ...] = ()
    sdists: bool = True
    #: ``[mirror] min-age`` in seconds: a release younger than this waits (0: off).
    min_age: float = 0.0
    #: ``[allowlist] dependencies``: the closure is supplied as a :class:`Scope`.
    dependencies: bool = False

    def on(self, plugin: str) -> bool:
        return plugin in self.enabled

    @property
    def filters_anything(self) -> bool:
        return bool(self.enabled or self.targets or self.min_age > 0)

    def allowlisted(self) -> frozenset[NormalizedName]:
        return frozenset(rule.name for rule in self.allowlist)

    def has_allowlist(self) -> bool:
        """True when only listed names can be mirrored, so the mirror need not list upstream."""
        return (self.on("allowlist_project") and bool(self.allowlist)) or (
            self.on("project_requirements") and bool(self.requirements)
        )

    def wanted_names(self) -> frozenset[NormalizedName]:
        """Every name an allowlist names (meaningful when :meth:`has_allowlist`)."""
        names: set[NormalizedName] = set()
        if self.on("allowlist_project"):
            names |= self.allowlisted()
        if self.on("project_requirements"):
            names |= {rule.name for rule in self.requirements}
        return frozenset(names)


def fingerprint(settings: FilterSettings, scope: Scope | None = None) -> str:
    """A stable text that changes whenever the settings would select differently."""
    parts = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name == "targets":
            value = tuple(target.spec for target in value)
        parts.append(f"{f.name}={value!r}")
    if scope is not None:
        parts.append(f"scope={scope.token()}")
    return ";".join(parts)


def project_allowed(
    settings: FilterSettings,
    name: NormalizedName,
    extra: Iterable[NormalizedName] = (),
) -> bool:
    """Whether the name-only rules let ``name`` be mirrored; ``extra`` names count as
    allowlisted (a :class:`Scope`'s closure). Only enabled plugins judge."""
    bonus = frozenset(extra)
    listed = settings.allowlisted() | bonus
    required = frozenset(r.name for r in settings.requirements) | bonus
    refused = (
        (settings.on("allowlist_project") and bool(settings.allowlist) and name not in listed),
        (
            settings.on("project_requirements")
            and bool(settings.requirements)
            and name not in required
        ),
        # Only plain names block a project; a line with a specifier is blocklist_release's.
        settings.on("blocklist_project")
        and any(r.name == name and not r.specifier for r in settings.blocklist),
        settings.on("regex_project")
        and any(re.match(pattern, name) for pattern in settings.project_patterns),
    )
    return not any(refused)


def metadata_reason(settings: FilterSettings, page: ProjectPage) -> str | None:
    """Why the page-level rules drop the whole project, or None."""
    if settings.on("size_project_metadata") and settings.max_package_size > 0:
        total = sum(f.size or 0 for f in page.files)
        # As bandersnatch: an allowlisted name is exempt from the size limit.
        if total > settings.max_package_size and page.name not in settings.allowlisted():
            return (
                f"size_project_metadata: {total} bytes is over max_package_size "
                f"({settings.max_package_size})"
            )
    if settings.on("versions_count_project_metadata"):
        count = len(release_versions(page))
        if settings.min_versions and count < settings.min_versions:
            return f"versions_count_project_metadata: {count} versions, fewer than min_versions"
        if settings.max_versions and count > settings.max_versions:
            return f"versions_count_project_metadata: {count} versions, more than max_versions"
    return None


def select(
    settings: FilterSettings,
    page: ProjectPage,
    now: float,
    scope: Scope | None = None,
) -> Selection:
    """The files and versions of ``page`` the settings keep at time ``now``."""
    extra = scope.extra_projects() if scope is not None else frozenset()
    every = len(page.files)
    if not project_allowed(settings, page.name, extra):
        refused = "project filters: the name is not allowed"
        return Selection((), (), refused, (("project", every),) if every else ())
    reason = metadata_reason(settings, page)
    if reason is not None:
        rule = reason.partition(":")[0]
        return Selection((), (), reason, ((rule, every),) if every else ())
    return select_releases(settings, page, now, scope)
