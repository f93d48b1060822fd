"""PEP 691 content negotiation and the other request-header decisions, as pure functions.

The embedded server (:mod:`fullmirror.serve`) asks :func:`negotiate` which of the page files a
request should get, and uses the helpers below for Accept-Encoding, Range, the query string and
the request path. Nothing here touches the disk or the network, so every decision table is
unit-tested with literals.

Rules, in the order they apply:

* ``?format=<media type>`` replaces the Accept header (PEP 691); an empty one is ignored.
* No Accept header means ``*/*``.
* Each offered type takes the q-value of the most specific range that matches it (an exact type
  beats ``application/*``, which beats ``*/*``); q=0 means "not acceptable".
* ``…latest+json`` / ``…latest+html`` name the v1 types: the reply carries the concrete type.
* The highest q wins. On a tie a type the client named outright beats one reached through a
  wildcard; among named types JSON comes first, then v1 HTML, then ``text/html``; among
  wildcard matches ``text/html`` comes first, so curl, browsers and ``*/*`` get the PEP 503 page
  as they do from nginx and from the reference index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"

# Preference among types the client names outright (and the order 406 bodies list them in).
PREFERENCE = (SIMPLE_JSON, SIMPLE_HTML, TEXT_HTML)
# Preference among types reached only through a wildcard: the plain page first.
_WILDCARD_PREFERENCE = (TEXT_HTML, SIMPLE_JSON, SIMPLE_HTML)

# Media ranges that name a type outright, and the concrete type each one selects.
_ALIASES = {
    SIMPLE_JSON: SIMPLE_JSON,
    "application/vnd.pypi.simple.latest+json": SIMPLE_JSON,
    SIMPLE_HTML: SIMPLE_HTML,
    "application/vnd.pypi.simple.latest+html": SIMPLE_HTML,
    TEXT_HTML: TEXT_HTML,
}

# At most 19 digits: a longer number is not a real offset and int() of a huge one is slow.
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})", re.IGNORECASE)

# Specificity of a match: higher wins when both a wildcard and a named range match a type.
_EXACT, _SUBTYPE_WILDCARD, _FULL_WILDCARD = 3, 2, 1


def parse_accept(header: str) -> list[tuple[str, float]]:
    """``(media range, q)`` pairs of an Accept header, lower-cased, malformed elements dropped."""
    ranges: list[tuple[str, float]] = []
    for element in header.split(","):
        media, *params = (part.strip() for part in element.split(";"))
        media = media.lower()
        if media.count("/") != 1 or not all(media.split("/")):
            continue
        q = 1.0
        valid = True
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() != "q":
                continue  # other parameters (charset, level) do not change the choice
            try:
                q = float(value.strip())
            except ValueError:
                valid = False
            if not 0.0 <= q <= 1.0:  # also false for NaN
                valid = False
        if valid:
            ranges.append((media, q))
    return ranges


def _match(media_range: str, offered: str) -> int:
    """How specifically ``media_range`` matches the concrete type ``offered`` (0: not at all)."""
    if _ALIASES.get(media_range) == offered:
        return _EXACT
    if media_range == "*/*":
        return _FULL_WILDCARD
    major, _, minor = media_range.partition("/")
    if minor == "*" and offered.split("/")[0] == major:
        return _SUBTYPE_WILDCARD
    return 0


def negotiate(accept: str | None, fmt: str | None, available: Sequence[str]) -> str | None:
    """The concrete media type to answer with, among ``available``; ``None`` means 406."""
    header = fmt.strip() if fmt and fmt.strip() else accept
    if header is None or not header.strip():
        header = "*/*"
    # A header with no usable element is treated as absent rather than as "nothing fits".
    ranges = parse_accept(header) or [("*/*", 1.0)]
    best: tuple[float, int, int] | None = None
    chosen: str | None = None
    for offered in available:
        if offered not in PREFERENCE:
            continue
        specificity, q = 0, 0.0
        for media_range, range_q in ranges:
            level = _match(media_range, offered)
            # The most specific match decides; equal specificity (v1 and latest) takes the max.
            if level > specificity or (level == specificity and level and range_q > q):
                specificity, q = level, range_q
        if not specificity or q <= 0.0:
            continue
        order = PREFERENCE if specificity == _EXACT else _WILDCARD_PREFERENCE
        named = 1 if specificity == _EXACT else 0
        key = (q, named, -order.index(offered))
        if best is None or key > best:
            best, chosen = key, offered
    return chosen


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header allows a gzip body (``gzip``, ``x-gzip`` or ``*``)."""
    if not header:
        return False
    verdict: dict[str, float] = {}
    for element in header.split(","):
        coding, *params = (part.strip() for part in element.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        verdict[coding.lower()] = q
    for name in ("gzip", "x-gzip", "*"):
        if name in verdict:
            return verdict[name] > 0.0
    return False


class RangeNotSatisfiable(Exception):
    """A Range header that no byte of the file satisfies (416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions of a single-range request, or None.

    None means "send the whole file": no header, several ranges or a malformed one (RFC 9110
    lets a server ignore any Range it does not want to serve). Raises :class:`RangeNotSatisfiable`.
    """
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # "-n": the last n bytes
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - int(last)), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return start, min(int(last), size - 1) if last else size - 1


def query_param(query: str, key: str) -> str | None:
    """The first value of ``key``; a literal "+" stays a plus (``v1+json`` is often unescaped)."""
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and unquote(name) == key:
            return unquote(value)
    return None


def decode_path(raw: str) -> list[str] | None:
    """The decoded segments of a request path, or None when any of them could escape or hide.

    Splitting before decoding keeps ``%2F`` from forming a separator; ``.``/``..``, hidden
    names, backslashes and NUL are refused outright. A trailing slash leaves a last ``""``.
    """
    parts = raw.split("/")[1:]
    segments: list[str] = []
    for index, part in enumerate(parts):
        try:
            segment = unquote(part, errors="strict")
        except UnicodeDecodeError:
            return None
        if not segment:
            if index != len(parts) - 1:
                return None  # "//": no file name is empty
        elif segment.startswith(".") or any(c in segment for c in "/\\\x00"):
            return None
        segments.append(segment)
    return segments
