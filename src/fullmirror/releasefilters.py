"""The release and file stage of the filters: which versions and files of a project stay.

Pure, like :mod:`fullmirror.filters` (which calls :func:`select_releases` once the project and
metadata stages let the project through). Every dropped release or file is counted under the
name of the rule that dropped it, so a log line or a ``plan`` can say why.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from fullmirror.models import ProjectPage, ReleaseFile
from fullmirror.plan import upload_epoch

if TYPE_CHECKING:
    from fullmirror.filters import FilterSettings, Scope

# bandersnatch's prerelease_release patterns, applied with re.match to the version as
# upstream spells it (so "2.0b1" and "1.0rc12" match; "2.0.post1" does not).
_PRERELEASE = (r".+rc\d+$", r".+a(lpha)?\d+$", r".+b(eta)?\d+$", r".+dev\d+$")
_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar", ".tar.z")
_BINARY_SUFFIXES = (
    (".whl", "bdist_wheel"),
    (".egg", "bdist_egg"),
    (".exe", "bdist_wininst"),
    (".msi", "bdist_msi"),
    (".dmg", "bdist_dmg"),
    (".rpm", "bdist_rpm"),
)


@dataclass(frozen=True, slots=True)
class Selection:
    """What :func:`fullmirror.filters.select` keeps of one project page, and why the rest goes."""

    files: tuple[ReleaseFile, ...]
    #: The page's versions still served: a kept release with files kept, or one that never
    #: had files.
    versions: tuple[str, ...]
    #: Set when the whole project is dropped: the rule that dropped it, and why.
    project_reason: str | None = None
    #: (rule, number of files it dropped), sorted by rule.
    dropped: tuple[tuple[str, int], ...] = ()
    #: (version, rule) for every release a release-level rule dropped, sorted by version text.
    dropped_releases: tuple[tuple[str, str], ...] = ()
    #: The earliest time (epoch seconds) a release held back by min-age becomes old enough.
    held_until: float | None = None

    @property
    def kept(self) -> bool:
        return self.project_reason is None

    @property
    def files_dropped(self) -> int:
        return sum(count for _, count in self.dropped)


def version_key(version: str) -> str:
    """The normalized form, so ``1.0.0-rc1`` on a page and ``1.0.0rc1`` in a filename meet."""
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def release_versions(page: ProjectPage) -> list[str]:
    """Every release of the page: PEP 700 versions, plus versions only filenames name."""
    seen = {version_key(v): v for v in page.versions}
    for f in page.files:
        version = f.version
        if version is not None and version_key(version) not in seen:
            seen[version_key(version)] = version
    return list(seen.values())


def is_sdist(filename: str) -> bool:
    lower = filename.lower()
    suffix = next((s for s in _SDIST_SUFFIXES if lower.endswith(s)), None)
    if suffix is None:
        return False
    # A "dumb" binary zip or tarball has a platform after the version, which does not parse.
    _, _, version = filename[: -len(suffix)].rpartition("-")
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def packagetype(filename: str) -> str:
    """The JSON API's ``packagetype`` (which simple pages lack), judged from the filename."""
    lower = filename.lower()
    for suffix, kind in _BINARY_SUFFIXES:
        if lower.endswith(suffix):
            return kind
    return "sdist" if is_sdist(filename) else "bdist_dumb"


def select_releases(
    settings: FilterSettings, page: ProjectPage, now: float, scope: Scope | None
) -> Selection:
    """The release and file stages for a project the earlier stages let through."""
    groups: dict[str, list[ReleaseFile]] = {}
    spelled: dict[str, str] = {}
    for version in page.versions:
        spelled.setdefault(version_key(version), version)
        groups.setdefault(version_key(version), [])
    for f in page.files:
        key = _file_key(f)
        spelled.setdefault(key, f.version or "")
        groups.setdefault(key, []).append(f)

    verdict: dict[str, str | None] = {}
    held: list[float] = []
    for key, files in groups.items():
        reason = _release_reason(settings, page.name, spelled[key], files, scope)
        if reason is None and settings.min_age > 0:
            born = _born(files)
            # A release whose files carry no upload time has no age to wait out: it is kept,
            # or an upstream that omits upload times would never be mirrored at all.
            if born is not None and now - born < settings.min_age:
                reason = "min-age"
                held.append(born + settings.min_age)
        verdict[key] = reason
    if settings.on("latest_release") and settings.latest_keep > 0:
        for key in _older_than_latest(settings, groups, verdict):
            verdict[key] = "latest_release"

    kept: list[ReleaseFile] = []
    counts: Counter[str] = Counter()
    for f in page.files:
        reason = verdict[_file_key(f)] or _file_reason(settings, f)
        if reason is None:
            kept.append(f)
        else:
            counts[reason] += 1
    with_files = {_file_key(f) for f in kept}
    versions = tuple(
        v
        for v in page.versions
        if verdict[version_key(v)] is None
        and (version_key(v) in with_files or not groups[version_key(v)])
    )
    dropped_releases = sorted((spelled[k], r) for k, r in verdict.items() if r is not None)
    return Selection(
        files=tuple(kept),
        versions=versions,
        dropped=tuple(sorted(counts.items())),
        dropped_releases=tuple(dropped_releases),
        held_until=min(held) if held else None,
    )


def _file_key(f: ReleaseFile) -> str:
    # A legacy filename whose version cannot be read belongs to the release "".
    version = f.version
    return version_key(version) if version is not None else ""


def _born(files: list[ReleaseFile]) -> float | None:
    """A release's age counts from its first upload."""
    times = [t for t in (upload_epoch(f.upload_time) for f in files) if t is not None]
    return min(times) if times else None


def _release_reason(
    settings: FilterSettings,
    name: NormalizedName,
    version: str,
    files: list[ReleaseFile],
    scope: Scope | None,
) -> str | None:
    reason = _plugin_reason(settings, name, version)
    if reason is not None:
        return reason
    if scope is not None and not scope.allows(name, version):
        return "scope"
    if settings.targets:
        requires = next((f.requires_python for f in files if f.requires_python), None)
        if requires and not any(t.supports_python(requires) for t in settings.targets):
            return "targets-python"
    return None


def _plugin_reason(settings: FilterSettings, name: NormalizedName, version: str) -> str | None:
    """bandersnatch's release plugins; the first one that refuses names the reason."""
    if settings.on("project_requirements_pinned") and settings.requirements:
        rules = [r for r in settings.requirements if r.name == name]
        if not any(r.contains(version, prereleases=True) for r in rules):
            return "project_requirements_pinned"
        if any(r.specifier for r in rules):
            # As bandersnatch: a project the requirements pin is judged by its pins alone.
            return None
    # Default prerelease handling for the blocklist, as bandersnatch's `version in specifier`.
    if settings.on("blocklist_release") and any(
        r.name == name and r.specifier and r.contains(version) for r in settings.blocklist
    ):
        return "blocklist_release"
    # A project the allowlist does not name keeps no release at all, as in bandersnatch.
    if (
        settings.on("allowlist_release")
        and settings.allowlist
        and not any(
            r.name == name and r.contains(version, prereleases=True) for r in settings.allowlist
        )
    ):
        return "allowlist_release"
    if settings.on("regex_release") and any(
        re.match(pattern, version) for pattern in settings.release_patterns
    ):
        return "regex_release"
    applies = not settings.prerelease_projects or name in settings.prerelease_projects
    if (
        settings.on("prerelease_release")
        and applies
        and any(re.match(pattern, version) for pattern in _PRERELEASE)
    ):
        return "prerelease_release"
    return None


def _file_reason(settings: FilterSettings, f: ReleaseFile) -> str | None:
    kind = packagetype(f.filename)
    if settings.on("exclude_platform") and kind != "sdist":  # sdists are never excluded
        if kind in settings.platform_packagetypes:
            return "exclude_platform"
        if any(pattern in f.filename for pattern in settings.platform_patterns):
            return "exclude_platform"
    if settings.targets:
        # Without targets an sdist is always kept; sdists = false only narrows a target set.
        if kind == "sdist" and not settings.sdists:
            return "sdists"
        if not any(t.supports_file(f.filename, f.requires_python) for t in settings.targets):
            return "targets"
    return None


def _sortable(key: str) -> tuple[int, Version, str]:
    # Versions that do not parse sort below every valid one, so latest_release drops them first.
    try:
        return (1, Version(key), "")
    except InvalidVersion:
        return (0, Version("0"), key)


def _older_than_latest(
    settings: FilterSettings, groups: dict[str, list[ReleaseFile]], verdict: dict[str, str | None]
) -> list[str]:
    """The surviving releases latest_release drops: all but the ``keep`` newest."""
    alive = [key for key in groups if verdict[key] is None]
    if len(alive) <= settings.latest_keep:
        return []
    if settings.latest_sort_by == "time":
        order = sorted(alive, key=lambda k: (_born(groups[k]) or -math.inf, _sortable(k)))
    else:
        order = sorted(alive, key=_sortable)
    latest = order[-settings.latest_keep :]
    # As bandersnatch, the project's current version (the JSON API's info.version: the newest
    # final release not wholly yanked) is never dropped: it takes the oldest slot.
    finals = [
        k
        for k in groups
        if _sortable(k)[0]
        and not Version(k).is_prerelease
        and not (groups[k] and all(f.yanked for f in groups[k]))
    ]
    current = max(finals, key=_sortable) if finals else None
    if current is not None and current in alive and current not in latest:
        latest[0] = current
    return [key for key in alive if key not in latest]
