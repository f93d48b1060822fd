"""A small, deterministic PyPI on 127.0.0.1 for tests, demos and benchmarks.

It serves a generated corpus of real, installable distributions with PyPI's protocols and exact
shapes (XML-RPC changelog, the simple API in JSON and HTML, the JSON API, content-addressed
files and ``.metadata``), lets time pass through mutations that get new serials, and injects
faults on demand. See :mod:`fullmirror.fakepypi.corpus` for the anchor projects.
"""

from __future__ import annotations

from fullmirror.fakepypi.corpus import (
    ANCHOR_DISPLAY_NAMES,
    ANCHORS,
    DEMO_APP,
    DEMO_CORE,
    DEMO_EMPTY,
    DEMO_FUTURE,
    DEMO_LIB,
    DEMO_NATIVE,
    DEMO_NEVER,
    DEMO_NOTHING,
    DEMO_PRE,
    DEMO_SPEEDUPS,
    DEMO_UTILS,
    ZOPE_EXTRA,
    generate_corpus,
)
from fullmirror.fakepypi.faults import Faults
from fullmirror.fakepypi.index import ChangelogRow, ChangeRejected, Index
from fullmirror.fakepypi.server import FakePyPI, NotLoopback
from fullmirror.fakepypi.stats import Stats

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
    "ChangeRejected",
    "ChangelogRow",
    "FakePyPI",
    "Faults",
    "Index",
    "NotLoopback",
    "Stats",
    "generate_corpus",
]
