"""Fake time for the fake index: every serial has its own fixed instant.

Tying time to the serial keeps corpora deterministic and makes later changes continue where the
corpus stopped, without ever reading the wall clock. The instants start at 2020-01-01T00:00:00Z
and advance 61 seconds (plus a deterministic fraction) per serial, so XML-RPC timestamps stay far
below 2**31 even for millions of events.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["fake_epoch", "fake_iso", "fake_iso_seconds"]

_BASE_EPOCH = 1577836800  # 2020-01-01T00:00:00Z
_SECONDS_PER_SERIAL = 61


def fake_epoch(serial: int) -> int:
    """The whole UTC epoch second of the event with this serial (XML-RPC changelog timestamps)."""
    return _BASE_EPOCH + serial * _SECONDS_PER_SERIAL


def _microseconds(serial: int) -> int:
    return (serial * 7919 + 104729) % 1_000_000


def fake_iso_seconds(serial: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS``, the JSON API's ``upload_time``."""
    return datetime.fromtimestamp(fake_epoch(serial), UTC).strftime("%Y-%m-%dT%H:%M:%S")


def fake_iso(serial: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``, PEP 700's ``upload-time``."""
    return f"{fake_iso_seconds(serial)}.{_microseconds(serial):06d}Z"
