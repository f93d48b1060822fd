"""What a long command tells about its progress, and the silent default.

The CLI supplies the real ones (a progress bar, or a log line every half minute); the
sync and verify machinery only call these four methods.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def advance(self, name: str) -> None: ...
    def add_bytes(self, n: int) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, name: str) -> None:
        pass

    def add_bytes(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass
