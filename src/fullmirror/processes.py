"""Child processes, as ``mirror`` (:mod:`fullmirror.shards`) and ``verify``
(:mod:`fullmirror.inspectors`) both use them: how many to start, and how a child makes sure it
does not outlive its parent.

Kept apart from both so that ``verify`` can count its children without importing the sync
machinery (the HTTP client among it), which it does not otherwise need.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

from fullmirror.models import SizeSample

#: Below this many projects a run stays in one process: starting a child (imports, client,
#: database) costs about 0.3 s of CPU, which a few dozen small projects do not win back
#: (measured in benchmarks/README.md).
AUTO_MIN_PROJECTS = 64
#: More children than this gain nothing for a network- and disk-bound job on any machine.
AUTO_MAX = 8
#: prctl(2) option: the signal the kernel sends this process when its parent ends.
_PR_SET_PDEATHSIG = 1


def shard_count(setting: int, pending: int, cpus: int | None) -> int:
    """How many child processes share ``pending`` projects; 1 means none (threads only).

    ``setting`` is ``[mirror] processes``: 0 for auto, else the number asked for."""
    if pending < 2:
        return 1
    if setting:
        return min(setting, pending)
    if pending < AUTO_MIN_PROJECTS or not cpus or cpus < 2:
        return 1
    return min(cpus, AUTO_MAX)


#: A --hash pass's costs on one core of the benchmark machine (benchmarks/README.md): sha256
#: runs at about a gigabyte a second; a project's record and pages, and each file's open, stat
#: and path checks, cost Python work that holds the GIL.
_HASH_BYTES_PER_SECOND = 1.0e9
_PROJECT_SECONDS = 0.5e-3
_FILE_SECONDS = 0.1e-3
#: How much more hashing than Python work makes a pass hashing-bound.
_HASHING_BOUND = 10


def hashing_bound(sample: SizeSample) -> bool:
    """Whether a ``verify --hash`` pass over a mirror like ``sample`` is nearly all hashing.

    hashlib releases the GIL, so then the threads of one process already keep every core
    busy, and child processes would only add their start-up (about 0.12 s each)."""
    if not sample.projects:
        return False
    hashing = sample.size / _HASH_BYTES_PER_SECOND
    python = sample.projects * _PROJECT_SECONDS + sample.files * _FILE_SECONDS
    return hashing >= _HASHING_BOUND * python


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this child process when ``parent`` ends (Linux)."""
    # A child left running after a killed parent would work beside the next run; the shared
    # helper lock (Storage.hold_as_helper) makes the next run wait for it everywhere else.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)  # the parent died before the line above took effect
