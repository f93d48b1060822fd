"""The deterministic corpus the fake index starts with.

``generate_corpus(projects, seed, file_size)`` builds an :class:`~fullmirror.fakepypi.index.Index`
whose changelog already holds serials 1..N: the anchors first, then random filler projects up to
``projects`` in total. Same arguments, same serials and byte-identical files.

Anchor projects, present whatever ``projects`` is (display name in brackets):

``demo-app`` [``Demo_App``]
    1.0 and 1.1, pure wheel + sdist, Requires-Python ``>=3.8``. Requires-Dist ``demo-lib>=1.0``,
    ``demo-utils; python_version >= "3.8"``, ``demo-never; python_version < "3.0"`` and, for the
    extra ``fast``, ``demo-speedups; extra == "fast"``.
``demo-lib``
    Requires ``demo-core>=1.0``. 1.0 and 1.2 are good, 1.5 is yanked without a reason and 2.0 is
    yanked with the reason ``broken build``. Chain: demo-app -> demo-lib -> demo-core.
``demo-core``
    1.0 and 1.1, no dependencies.
``demo-utils`` [``demo_utils``]
    1.0, no dependencies.
``demo-speedups``
    1.0 with platform wheels only (cp311 manylinux_2_17_x86_64/manylinux2014_x86_64, cp312
    win_amd64, cp311 macosx_11_0_arm64) plus an sdist.
``demo-never``
    1.0, wheel + sdist; only reachable through a marker no modern Python satisfies.
``demo-native`` [``Demo.Native``]
    1.0 with cp311 and cp312 wheels for manylinux x86_64, musllinux_1_2_x86_64, macosx arm64 and
    win_amd64, plus an sdist.
``zope-interface-extra`` [``Zope.Interface_Extra``]
    1.0 and 1.1, wheel + sdist: a name that needs PEP 503 normalization.
``demo-future``
    1.0 (Requires-Python ``>=3.8``) and 2.0 (Requires-Python ``>=3.99``).
``demo-pre``
    1.0 final and 2.0b1, so its newest version is a pre-release.
``demo-empty``
    1.0, a release with no files.
``demo-nothing``
    Created, no releases at all (the JSON API answers 404).
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass

from fullmirror.fakepypi.filler import filler_projects
from fullmirror.fakepypi.index import Index

__all__ = [
    "ANCHORS",
    "ANCHOR_DISPLAY_NAMES",
    "DEMO_APP",
    "DEMO_CORE",
    "DEMO_EMPTY",
    "DEMO_FUTURE",
    "DEMO_LIB",
    "DEMO_NATIVE",
    "DEMO_NEVER",
    "DEMO_NOTHING",
    "DEMO_PRE",
    "DEMO_SPEEDUPS",
    "DEMO_UTILS",
    "ZOPE_EXTRA",
    "generate_corpus",
]

DEMO_APP = "demo-app"
DEMO_LIB = "demo-lib"
DEMO_CORE = "demo-core"
DEMO_UTILS = "demo-utils"
DEMO_SPEEDUPS = "demo-speedups"
DEMO_NEVER = "demo-never"
DEMO_NATIVE = "demo-native"
ZOPE_EXTRA = "zope-interface-extra"
DEMO_FUTURE = "demo-future"
DEMO_PRE = "demo-pre"
DEMO_EMPTY = "demo-empty"
DEMO_NOTHING = "demo-nothing"

_PURE = ("wheel", "sdist")
_MANYLINUX = "manylinux_2_17_x86_64.manylinux2014_x86_64"
_NATIVE_PLATFORMS = (_MANYLINUX, "musllinux_1_2_x86_64", "macosx_11_0_arm64", "win_amd64")


@dataclass(frozen=True, slots=True)
class _Release:
    version: str
    kinds: tuple[str, ...] = _PURE
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None
    #: None: not yanked; "": yanked without a reason; else the reason.
    yank: str | None = None


@dataclass(frozen=True, slots=True)
class _Anchor:
    display_name: str
    releases: tuple[_Release, ...]


_APP_DEPS = (
    "demo-lib>=1.0",
    'demo-utils; python_version >= "3.8"',
    'demo-never; python_version < "3.0"',
    'demo-speedups; extra == "fast"',
)
_LIB_DEPS = ("demo-core>=1.0",)

# Dependencies come before their dependents, so serials grow along the dependency chain.
_ANCHORS: dict[str, _Anchor] = {
    DEMO_CORE: _Anchor("demo-core", (_Release("1.0"), _Release("1.1"))),
    DEMO_UTILS: _Anchor("demo_utils", (_Release("1.0"),)),
    DEMO_NEVER: _Anchor("demo-never", (_Release("1.0"),)),
    DEMO_SPEEDUPS: _Anchor(
        "demo-speedups",
        (
            _Release(
                "1.0",
                kinds=(
                    f"cp311-cp311-{_MANYLINUX}",
                    "cp312-cp312-win_amd64",
                    "cp311-cp311-macosx_11_0_arm64",
                    "sdist",
                ),
            ),
        ),
    ),
    DEMO_LIB: _Anchor(
        "demo-lib",
        (
            _Release("1.0", requires_dist=_LIB_DEPS),
            _Release("1.2", requires_dist=_LIB_DEPS),
            _Release("1.5", requires_dist=_LIB_DEPS, yank=""),
            _Release("2.0", requires_dist=_LIB_DEPS, yank="broken build"),
        ),
    ),
    DEMO_APP: _Anchor(
        "Demo_App",
        (
            _Release("1.0", requires_dist=_APP_DEPS, requires_python=">=3.8"),
            _Release("1.1", requires_dist=_APP_DEPS, requires_python=">=3.8"),
        ),
    ),
    DEMO_NATIVE: _Anchor(
        "Demo.Native",
        (
            _Release(
                "1.0",
                kinds=(
                    *(
                        f"{py}-{py}-{plat}"
                        for py in ("cp311", "cp312")
                        for plat in _NATIVE_PLATFORMS
                    ),
                    "sdist",
                ),
            ),
        ),
    ),
    ZOPE_EXTRA: _Anchor("Zope.Interface_Extra", (_Release("1.0"), _Release("1.1"))),
    DEMO_FUTURE: _Anchor(
        "demo-future",
        (_Release("1.0", requires_python=">=3.8"), _Release("2.0", requires_python=">=3.99")),
    ),
    DEMO_PRE: _Anchor("demo-pre", (_Release("1.0"), _Release("2.0b1"))),
    DEMO_EMPTY: _Anchor("demo-empty", (_Release("1.0", kinds=()),)),
    DEMO_NOTHING: _Anchor("demo-nothing", ()),
}

#: Normalized names of the anchor projects, in creation order.
ANCHORS: tuple[str, ...] = tuple(_ANCHORS)
#: Normalized name -> display name of every anchor.
ANCHOR_DISPLAY_NAMES: dict[str, str] = {name: a.display_name for name, a in _ANCHORS.items()}


def generate_corpus(projects: int, seed: int, file_size: int = 0) -> Index:
    """The anchors plus random filler projects up to ``projects`` in total.

    ``file_size`` > 0 adds an incompressible member of that many bytes to every wheel. No file
    is built here: bytes and digests are computed on first use.
    """
    index = Index(seed=seed, file_size=file_size)
    # Hundreds of thousands of small objects and no cycles: the collector would only rescan
    # them again and again, which costs more than building them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _populate(index, projects, seed)
    finally:
        if collecting:
            gc.enable()
    index.protected = frozenset(ANCHORS)
    return index


def _populate(index: Index, projects: int, seed: int) -> None:
    for anchor in _ANCHORS.values():
        project = index._bulk_project(anchor.display_name)
        for release in anchor.releases:
            index._bulk_release(
                project, release.version, release.requires_dist, release.requires_python,
                release.kinds,
            )  # fmt: skip
            if release.yank is not None:
                index.yank(project.name, release.version, release.yank)
    rng = random.Random(seed)
    pool = [DEMO_CORE, DEMO_UTILS]
    taken = set(ANCHORS)
    for filler in filler_projects(rng, max(0, projects - len(ANCHORS)), pool, taken):
        project = index._bulk_project(filler.display_name)
        for fr in filler.releases:
            index._bulk_release(project, fr.version, fr.requires_dist, fr.requires_python, fr.kinds)
            if fr.yank_reason is not None:
                index.yank(project.name, fr.version, fr.yank_reason)
