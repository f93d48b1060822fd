"""Dependency closure: every project and version needed to install the seeds on each target.

Starting from seed requirements (the allowlist and requirements files), :func:`resolve` follows
Requires-Dist to a fixpoint, once per target, evaluating environment markers and extras the way
the target's installer would. It keeps every version a requirement allows rather than the one a
resolver would pick: the mirror cannot know which one an installer ends up with once other
requirements constrain it, and each kept version's own dependencies are followed too.

Version selection copies pip's rules so that what pip accepts is what is kept:

* a version counts for a target only if one of its files installs there
  (:meth:`~fullmirror.targets.Target.supports_file`, which also applies Requires-Python);
* pre-releases count only when the specifier names one, or when no final release matches;
* yanked files count only for a specifier pinned with ``==``/``===`` that nothing but yanked
  files satisfy (PEP 592).

Pure: all I/O goes through the caller's :class:`Provider`, whose every answer is asked for at
most once per call, so rerunning :func:`resolve` as upstream publishes stays cheap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from fullmirror.models import ReleaseFile
from fullmirror.targets import Target

__all__ = ["Closure", "Provider", "resolve"]


class Provider(Protocol):
    def releases(self, name: NormalizedName) -> Mapping[str, tuple[ReleaseFile, ...]] | None:
        """Version -> that version's files, after the mirror's own filters; None: unknown."""
        ...

    def requires(
        self, name: NormalizedName, version: str, file: ReleaseFile
    ) -> tuple[str, ...] | None:
        """Requires-Dist lines of ``file``'s metadata; None: no metadata to be had."""
        ...


@dataclass(frozen=True, slots=True)
class Closure:
    #: Project -> the versions to mirror, the union over all targets.
    wanted: Mapping[NormalizedName, frozenset[str]]
    #: Project -> shortest chain back to a seed, the project first: (urllib3, requests, app).
    chains: Mapping[NormalizedName, tuple[NormalizedName, ...]]
    #: Human-readable reasons some install may fail, sorted.
    problems: tuple[str, ...]

    def chain_text(self, name: NormalizedName) -> str:
        return " <- ".join(self.chains.get(name, (name,)))


@dataclass(frozen=True, slots=True)
class _Need:
    """One requirement to satisfy on one target."""

    name: NormalizedName
    specifier: SpecifierSet
    extras: frozenset[str]
    target: Target
    #: ``(project, version)`` that asked for it; None for a seed.
    parent: tuple[NormalizedName, str] | None

    def describe(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        text = f"{self.name}{extras}{self.specifier}"
        if self.parent is None:
            return f"seed {text} on {self.target.spec}"
        return f"{text} (needed by {self.parent[0]} {self.parent[1]} on {self.target.spec})"


def _pinned(specifier: SpecifierSet) -> bool:
    # pip's test: an exact pin, not a prefix match like ==1.*.
    return any(
        s.operator == "===" or (s.operator == "==" and not s.version.endswith(".*"))
        for s in specifier
    )


def _representatives(
    files: tuple[ReleaseFile, ...], usable: tuple[ReleaseFile, ...]
) -> list[ReleaseFile]:
    """Files whose metadata to try, best first: the target's own wheels, its sdists, the rest.

    Wheels first because their METADATA is static; an sdist's may be computed at build time.
    Any file of the version will do as a fallback, since Requires-Dist rarely differs between
    the files of one release and markers already encode the platform differences.
    """
    own = {f.filename for f in usable}
    return sorted(
        (*usable, *(f for f in files if f.filename not in own)),
        key=lambda f: (f.filename not in own, not f.filename.endswith(".whl"), f.filename),
    )


class _Resolver:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.releases: dict[NormalizedName, Mapping[str, tuple[ReleaseFile, ...]] | None] = {}
        self.metadata: dict[tuple[NormalizedName, str, str], tuple[str, ...] | None] = {}
        self.queue: deque[_Need] = deque()
        self.seen_needs: set[tuple[NormalizedName, str, str, frozenset[str]]] = set()
        #: (project, version, target spec) -> extras already followed ("" is the base).
        self.done_extras: dict[tuple[NormalizedName, str, str], set[str]] = {}
        self.wanted: dict[NormalizedName, set[str]] = {}
        self.edges: dict[NormalizedName, set[NormalizedName]] = {}
        self.problems: set[str] = set()

    def add(self, need: _Need) -> None:
        key = (need.name, need.target.spec, str(need.specifier), need.extras)
        if key not in self.seen_needs:
            self.seen_needs.add(key)
            self.queue.append(need)

    def project(self, name: NormalizedName) -> Mapping[str, tuple[ReleaseFile, ...]] | None:
        if name not in self.releases:
            self.releases[name] = self.provider.releases(name)
        return self.releases[name]

    def select(
        self, need: _Need, releases: Mapping[str, tuple[ReleaseFile, ...]]
    ) -> dict[str, tuple[ReleaseFile, ...]]:
        """Versions ``need`` allows on its target -> the files of each pip would accept there."""
        target = need.target
        candidates: dict[Version, tuple[str, tuple[ReleaseFile, ...]]] = {}
        for text, files in releases.items():
            try:
                version = Version(text)
            except InvalidVersion:
                continue  # pip skips versions it cannot parse; so do we
            usable = tuple(f for f in files if target.supports_file(f.filename, f.requires_python))
            if usable:
                candidates[version] = (text, usable)
        # pip applies the specifier (and its pre-release fallback) before looking at yanks.
        matching = [candidates[v] for v in need.specifier.filter(candidates)]
        if not matching:
            allowed = {str(v) for v in need.specifier.filter(_versions(releases))}
            if not allowed:
                why = "no version matches"
            elif any(files for text, files in releases.items() if text in allowed):
                why = f"no file installs on {target.spec}"
            else:
                why = "the matching versions have no files"
            self.problems.add(f"{need.describe()}: {why}")
            return {}
        all_yanked = all(f.yanked for _, files in matching for f in files)
        if all_yanked and _pinned(need.specifier):
            return dict(matching)
        chosen: dict[str, tuple[ReleaseFile, ...]] = {}
        for text, files in matching:
            kept = tuple(f for f in files if not f.yanked)
            if kept:
                chosen[text] = kept
        if not chosen:
            self.problems.add(f"{need.describe()}: only yanked versions match")
        return chosen

    def requires(
        self, name: NormalizedName, version: str, files: list[ReleaseFile]
    ) -> tuple[str, ...] | None:
        for file in files:
            key = (name, version, file.filename)
            if key not in self.metadata:
                self.metadata[key] = self.provider.requires(name, version, file)
            if self.metadata[key] is not None:
                return self.metadata[key]
        self.problems.add(f"{name} {version}: no metadata, its dependencies are unknown")
        return None

    def follow(self, need: _Need, version: str, usable: tuple[ReleaseFile, ...]) -> None:
        """Queue the dependencies of one version for the extras not followed yet."""
        name, target = need.name, need.target
        done = self.done_extras.setdefault((name, version, target.spec), set())
        todo = sorted(({""} | need.extras) - done)
        if not todo:
            return
        done.update(todo)
        files = self.project(name) or {}
        lines = self.requires(name, version, _representatives(files.get(version, ()), usable))
        if lines is None:
            return
        environment = target.markers()
        for line in lines:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                self.problems.add(f"{name} {version}: ignoring invalid Requires-Dist {line!r}")
                continue
            if req.url:
                self.problems.add(f"{name} {version}: {req.name} comes from a URL, not the index")
                continue
            try:
                applies = _applies(req, environment, todo)
            except _MARKER_ERRORS as exc:
                self.problems.add(f"{name} {version}: cannot evaluate {line!r}: {exc}")
                continue
            if not applies:
                continue
            dep = canonicalize_name(req.name)
            specifier = req.specifier
            if dep == name and not specifier:
                # A project requiring its own extras means this very version, not any.
                specifier = SpecifierSet(f"=={version}")
            extras = frozenset(canonicalize_name(e) for e in req.extras)
            self.add(_Need(dep, specifier, extras, target, (name, version)))

    def run(self) -> None:
        while self.queue:
            need = self.queue.popleft()
            releases = self.project(need.name)
            if releases is None:
                where = "seed " if need.parent is None else ""
                self.problems.add(f"{where}{need.name}: not found upstream")
                continue
            chosen = self.select(need, releases)
            if chosen and need.parent is not None and need.parent[0] != need.name:
                self.edges.setdefault(need.parent[0], set()).add(need.name)
            for version in sorted(chosen, key=Version):
                self.wanted.setdefault(need.name, set()).add(version)
                self.follow(need, version, chosen[version])


# What evaluating a well-formed marker can still raise, e.g. a version comparison on a value
# that is not a version.
_MARKER_ERRORS = (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName)


def _applies(req: Requirement, environment: Mapping[str, str], extras: Iterable[str]) -> bool:
    """Whether ``req`` applies on the environment for any of ``extras`` ("" is none)."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**environment, "extra": extra}) for extra in extras)


def _versions(releases: Mapping[str, object]) -> Iterable[Version]:
    for text in releases:
        try:
            yield Version(text)
        except InvalidVersion:
            continue


def _chains(
    seeds: Iterable[NormalizedName],
    edges: Mapping[NormalizedName, set[NormalizedName]],
    wanted: Mapping[NormalizedName, object],
) -> dict[NormalizedName, tuple[NormalizedName, ...]]:
    """Shortest path from a seed to each wanted project; ties go to the earliest in sort order."""
    chains: dict[NormalizedName, tuple[NormalizedName, ...]] = {}
    frontier = sorted({s for s in seeds if s in wanted})
    for seed in frontier:
        chains[seed] = (seed,)
    while frontier:
        reached: dict[NormalizedName, tuple[NormalizedName, ...]] = {}
        for parent in frontier:
            for child in sorted(edges.get(parent, ())):
                if child in chains or child not in wanted:
                    continue
                chain = (child, *chains[parent])
                if child not in reached or chain < reached[child]:
                    reached[child] = chain
        chains.update(reached)
        frontier = sorted(reached)
    return chains


def resolve(
    seeds: Sequence[Requirement | str], targets: Sequence[Target], provider: Provider
) -> Closure:
    """The projects and versions needed to install ``seeds`` on every one of ``targets``."""
    resolver = _Resolver(provider)
    seed_names: list[NormalizedName] = []
    for seed in seeds:
        try:
            req = seed if isinstance(seed, Requirement) else Requirement(seed)
        except InvalidRequirement as exc:
            resolver.problems.add(f"seed {seed!r}: not a requirement: {exc}")
            continue
        name = canonicalize_name(req.name)
        if req.url:
            resolver.problems.add(f"seed {name}: comes from a URL, not the index")
            continue
        seed_names.append(name)
        extras = frozenset(canonicalize_name(e) for e in req.extras)
        for target in targets:
            # A seed's marker decides which targets need it at all, as it would in a
            # requirements file installed there.
            try:
                if _applies(req, target.markers(), [""]):
                    resolver.add(_Need(name, req.specifier, extras, target, None))
            except _MARKER_ERRORS as exc:
                resolver.problems.add(f"seed {seed!s}: cannot evaluate its marker: {exc}")
                break
    resolver.run()
    wanted = {name: frozenset(resolver.wanted[name]) for name in sorted(resolver.wanted)}
    chains = _chains(seed_names, resolver.edges, wanted)
    return Closure(
        wanted=wanted,
        chains={name: chains[name] for name in sorted(chains)},
        problems=tuple(sorted(resolver.problems)),
    )
