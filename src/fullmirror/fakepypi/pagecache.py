"""Rendered pages, kept per (representation, project) and keyed by the serial they show.

A project's serial changes with every event that touches it, so a cached page is valid exactly
while its serial is the project's last serial: no explicit invalidation is needed. When a page is
replaced, the old rendering is kept as the "previous" one, which the stale fault serves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["Page", "PageCache"]

#: (serial the page shows, body)
Page = tuple[int, bytes]


class PageCache:
    def __init__(self, limit: int = 20_000) -> None:
        self._lock = threading.Lock()
        self._current: OrderedDict[Hashable, Page] = OrderedDict()
        self._previous: dict[Hashable, Page] = {}
        self._limit = limit

    def get(
        self, key: Hashable, serial: int, render: Callable[[], bytes]
    ) -> tuple[bytes, Page | None]:
        """The body for ``serial`` (rendered if needed) and the previous page, if one is kept."""
        with self._lock:
            current = self._current.get(key)
            if current is not None and current[0] == serial:
                self._current.move_to_end(key)
                return current[1], self._previous.get(key)
        # Rendered outside the lock: it may build files and must not hold other requests up.
        body = render()
        with self._lock:
            current = self._current.get(key)
            if current is None or current[0] < serial:
                if current is not None:
                    self._previous[key] = current
                self._current[key] = (serial, body)
                self._current.move_to_end(key)
                while len(self._current) > self._limit:
                    old, _ = self._current.popitem(last=False)
                    self._previous.pop(old, None)
            return body, self._previous.get(key)
