"""Serving release files and their ``.metadata`` siblings: ranges, streaming, and file faults.

Files live at PyPI's content-addressed path ``/packages/<b2[:2]>/<b2[2:4]>/<b2[4:]>/<filename>``;
a path whose digest is not the file's answers 404, exactly like a removed file.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from fullmirror.fakepypi.handler import Handler

__all__ = ["corrupt", "parse_range", "send_file"]

_PATH = re.compile(r"/packages/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{60})/([^/]+)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CHUNK = 64 * 1024
_OCTETS = "application/octet-stream"
_METADATA = ".metadata"
#: parse_range's answer for a range that selects nothing.
UNSATISFIABLE = (-1, -1)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)``, :data:`UNSATISFIABLE`, or None to ignore the header.

    Only single ranges are honoured; multipart answers are optional and clients ask for one.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        return (max(size - suffix, 0), size) if suffix > 0 and size > 0 else UNSATISFIABLE
    start = int(first)
    end = size if not last else int(last) + 1
    if last and end <= start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return start, min(end, size)


def corrupt(data: bytes) -> bytes:
    """Same length, wrong bytes: flips bytes all over, so any sub-range is also wrong."""
    spoiled = bytearray(data)
    for position in range(7 % max(len(data), 1), len(data), 1021):
        spoiled[position] ^= 0xFF
    if spoiled:
        spoiled[-1] ^= 0xFF
    return bytes(spoiled)


def send_file(handler: Handler, path: str, kind: str, stalled: bool) -> None:
    server = handler.server
    index = server.index
    match = _PATH.fullmatch(path)
    filename = unquote(match.group(4)) if match else ""
    record = index.find_file(filename) if match else None
    metadata = False
    if record is None and kind == "metadata":
        record = index.find_file(filename[: -len(_METADATA)])
        metadata = record is not None and record.is_wheel
        record = record if metadata else None
    if match is None or record is None:
        handler.respond_text(404, "no such file")
        return
    if index.file_info(record).blake2b_256 != "".join(match.groups()[:3]):
        handler.respond_text(404, "no such file")
        return
    data = index.file_metadata(record) if metadata else index.file_bytes(record)
    assert data is not None  # metadata is only set for wheels, which always have it
    faults = server.faults
    if filename in faults.corrupt_files or faults.roll(faults.corrupt_rate, kind):
        data = corrupt(data)

    status, start, end = 200, 0, len(data)
    headers: dict[str, str] = {}
    range_header = handler.headers.get("Range")
    if not faults.no_ranges:
        headers["Accept-Ranges"] = "bytes"
        chosen = parse_range(range_header, len(data)) if range_header else None
        if chosen == UNSATISFIABLE:
            handler.respond(416, b"", _OCTETS, headers={"Content-Range": f"bytes */{len(data)}"})
            return
        if chosen is not None:
            status, (start, end) = 206, chosen
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
    truncate = faults.roll(faults.truncate_rate, kind)
    handler.send_head(status, _OCTETS, end - start, headers=headers)
    if handler.command == "HEAD":
        return
    _stream(handler, memoryview(data)[start:end], stalled, truncate)


def _stream(handler: Handler, body: memoryview, stalled: bool, truncate: bool) -> None:
    half = len(body) // 2
    stop = half if truncate else len(body)
    position = 0
    while position < stop:
        limit = min(position + _CHUNK, stop)
        if stalled and position < half <= limit:
            # Stall halfway: send up to the middle, wait, then go on.
            handler.wfile.write(body[position:half])
            handler.server.pause(handler.server.faults.stall_seconds)
            position = half
            continue
        handler.wfile.write(body[position:limit])
        position = limit
    if truncate:
        handler.reset()
