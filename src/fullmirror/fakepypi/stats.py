"""Request counters of the fake index, by kind of request."""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Stats"]


class Stats:
    """Thread-safe counters: ``xmlrpc:<method>``, ``simple-root``, ``simple-project``,
    ``json-api``, ``file``, ``metadata`` and ``other``. The admin endpoint is not counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def incr(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def __getitem__(self, kind: str) -> int:
        with self._lock:
            return self._counts[kind]

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
