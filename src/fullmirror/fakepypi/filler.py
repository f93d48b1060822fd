"""Random but reproducible content: filler projects for the corpus and churn for benchmarks.

Everything draws from a ``random.Random`` handed in by the caller, so a seed fixes the outcome.
Filler projects depend only on projects that exist before them, so every dependency resolves.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

if TYPE_CHECKING:
    from fullmirror.fakepypi.index import Index
    from fullmirror.fakepypi.records import FileRecord

__all__ = ["FillerProject", "FillerRelease", "apply_random_changes", "filler_projects"]

_FIRST = (
    "amber", "brisk", "cedar", "delta", "ember", "fable", "gamma", "harbor", "ivory", "jolly",
    "kappa", "lunar", "maple", "nimbus", "onyx", "pixel", "quartz", "river", "solar", "tidal",
    "umber", "vivid", "willow", "xenon", "yonder", "zephyr",
)  # fmt: skip
_SECOND = (
    "arrow", "bridge", "cache", "drift", "engine", "forge", "grid", "hive", "iter", "joint",
    "kit", "loom", "mesh", "node", "orbit", "parse", "query", "relay", "shard", "tensor",
    "unit", "vault", "widget", "yarn", "zone",
)  # fmt: skip
_PLATFORMS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64",
    "musllinux_1_2_x86_64",
    "macosx_11_0_arm64",
    "win_amd64",
)
_PYTHONS = ("cp311", "cp312")
_PRE = ("a1", "b1", "rc1", ".dev0")


@dataclass(frozen=True, slots=True)
class FillerRelease:
    version: str
    requires_dist: tuple[str, ...]
    requires_python: str | None
    kinds: tuple[str, ...]
    #: None: not yanked; "": yanked without a reason; else the reason.
    yank_reason: str | None


@dataclass(frozen=True, slots=True)
class FillerProject:
    display_name: str
    releases: tuple[FillerRelease, ...]


def _display_name(rng: random.Random, number: int) -> str:
    first, second = rng.choice(_FIRST), rng.choice(_SECOND)
    style = rng.randrange(5)
    if style == 0:
        return f"{first.capitalize()}_{second.capitalize()}{number}"
    if style == 1:
        return f"{first}.{second}.{number}"
    if style == 2:
        return f"{first}{second}{number}"
    return f"{first}-{second}-{number}"


def _kinds(rng: random.Random) -> tuple[str, ...]:
    kinds: list[str] = []
    if rng.random() < 0.12:
        python = rng.choice(_PYTHONS)
        platforms = rng.sample(_PLATFORMS, rng.randint(1, len(_PLATFORMS)))
        kinds.extend(f"{python}-{python}-{platform}" for platform in sorted(platforms))
    if not kinds or rng.random() < 0.5:
        kinds.append("wheel")
    if rng.random() < 0.7:
        kinds.append("sdist")
    return tuple(kinds)


def _requirements(rng: random.Random, pool: Sequence[str]) -> tuple[str, ...]:
    requirements: list[str] = []
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        if not pool:
            break
        target = rng.choice(pool)
        if any(r.startswith(target + ">") or r == target for r in requirements):
            continue
        roll = rng.random()
        if roll < 0.15:
            requirements.append(f'{target}; python_version >= "3.8"')
        elif roll < 0.25:
            requirements.append(f'{target}; extra == "extras"')
        elif roll < 0.6:
            requirements.append(f"{target}>=0.1")
        else:
            requirements.append(target)
    return tuple(requirements)


def _releases(rng: random.Random, pool: list[str]) -> tuple[FillerRelease, ...]:
    count = rng.choice((1, 1, 2, 2, 3))
    major = rng.randrange(3)
    releases: list[FillerRelease] = []
    requires_python = ">=3.8" if rng.random() < 0.3 else None
    for position in range(count):
        version = f"{major}.{position}"
        last = position == count - 1
        if last and count > 1 and rng.random() < 0.1:
            version += rng.choice(_PRE)
        yank: str | None = None
        if not last and rng.random() < 0.06:
            yank = rng.choice(("", "superseded"))
        releases.append(
            FillerRelease(version, _requirements(rng, pool), requires_python, _kinds(rng), yank)
        )
    return tuple(releases)


def filler_projects(
    rng: random.Random, count: int, pool: list[str], taken: set[str]
) -> Iterator[FillerProject]:
    """``count`` projects with unique names; ``pool`` is extended with each new name."""
    number = 0
    produced = 0
    while produced < count:
        number += 1
        name = _display_name(rng, number)
        normalized = canonicalize_name(name)
        if normalized in taken:
            continue
        taken.add(normalized)
        project = FillerProject(name, _releases(rng, pool))
        pool.append(normalized)
        produced += 1
        yield project


def _next_version(versions: list[str]) -> str:
    if not versions:
        return "0.1"
    top = max(Version(v) for v in versions)
    return f"{top.major}.{top.minor + 1}"


def apply_random_changes(index: Index, n: int, rng: random.Random) -> list[NormalizedName]:
    """``n`` random events on unprotected projects; returns the distinct names touched."""
    names = [name for name in index.project_names() if name not in index.protected]
    touched: dict[NormalizedName, None] = {}
    for _ in range(n):
        roll = rng.random()
        if not names or roll < 0.08:
            display = f"{rng.choice(_FIRST)}-{rng.choice(_SECOND)}-churn{index.last_serial + 1}"
            name = index.create_project(display)
            index.add_release(name, "0.1", kinds=_kinds(rng))
            names.append(name)
            touched[name] = None
            continue
        name = rng.choice(names)
        view = index.view(name)
        assert view is not None  # names only holds projects this function has not removed
        touched[name] = None
        releases = list(view.releases)
        if roll < 0.12:
            index.remove_project(name)
            names.remove(name)
        elif roll < 0.22:
            index.add_role(name, "Maintainer", f"helper{rng.randrange(1000)}")
        elif roll < 0.57 or not releases:
            pool = [n for n in rng.sample(names, min(3, len(names))) if n != name]
            version = _next_version([r.version for r in releases])
            index.add_release(
                name, version, requires_dist=_requirements(rng, pool), kinds=_kinds(rng)
            )
        else:
            release = rng.choice(releases)
            _change_release(index, name, release.version, release.yanked, release.files, rng)
    return list(touched)


def _change_release(
    index: Index,
    name: str,
    version: str,
    yanked: bool,
    files: tuple[FileRecord, ...],
    rng: random.Random,
) -> None:
    roll = rng.random()
    if roll < 0.3:
        if yanked:
            index.unyank(name, version)
        else:
            index.yank(name, version, rng.choice((None, "churn says no")))
    elif roll < 0.55 and files:
        index.remove_file(name, rng.choice(files).filename)
    elif roll < 0.7:
        index.remove_release(name, version)
    else:
        existing = {f.kind for f in files}
        for kind in ("py3-none-any", "sdist", "cp312-cp312-win_amd64", "cp311-cp311-win_amd64"):
            if kind not in existing:
                index.add_file(name, version, kind)
                return
        index.yank(name, version, "churn")
