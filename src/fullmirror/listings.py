"""Upstream project listings, parsed as their bytes arrive.

A full index lists some 700,000 projects. Parsed whole, a listing costs its body (tens of MB)
plus a Python object per project plus the parser's own tree, all alive at once, in every sync
process. The readers here take the body in chunks as the network delivers it, return the
``(display name, serial)`` pairs each chunk completed, and keep only the unfinished tail, so
memory is bounded by the largest single value, not by the document.

* :class:`SerialsReader` reads XML-RPC ``list_packages_with_serial`` (a ``{name: serial}``
  struct) with expat, keeping one member's text at a time.
* :class:`RootJsonReader` reads a PEP 691 root page, decoding one project object at a time.

Both are as strict as the whole-document parsers of :mod:`fullmirror.parse` they replace:
anything that is not the protocol raises :class:`~fullmirror.errors.MalformedResponse`, and how
the body was split into chunks never changes the outcome. Pure: no network, no disk.
"""

from __future__ import annotations

import codecs
import json
import re
import xmlrpc.client
from collections.abc import Iterable
from typing import Any
from xml.parsers import expat

from packaging.utils import NormalizedName

from fullmirror.errors import MalformedResponse
from fullmirror.models import ListedProject, Listing
from fullmirror.parse import load_meta, normalize_project_name, serial_value

__all__ = [
    "RootJsonReader",
    "SerialsReader",
    "listed",
    "parse_root_json",
    "parse_serials_xml",
    "unique_sorted",
]

# Whatever a reader must hold before it can decide (a fault, one token, one text) stays small.
_MAX_HELD = 1 << 20

# -- XML-RPC ----------------------------------------------------------------------------------

_INT_TAGS = frozenset({"int", "i1", "i2", "i4", "i8", "biginteger"})
_XML_INT = re.compile(r"[ \t\r\n]*([+-]?[0-9]{1,19})[ \t\r\n]*")
# Where the reader stands. The *_FULL states are elements whose one allowed child has been read.
(
    _DOC, _RESPONSE, _RESPONSE_FULL, _FAULT, _PARAMS, _PARAMS_FULL, _PARAM, _PARAM_FULL,
    _TOP, _TOP_FULL, _STRUCT, _MEMBER, _NAME, _VALUE, _INT, _TYPED, _END,
) = range(17)  # fmt: skip
# The envelope around the struct: each of these elements holds exactly one child.
_OUTER_START = {
    (_DOC, "methodResponse"): _RESPONSE,
    (_RESPONSE, "params"): _PARAMS,
    (_RESPONSE, "fault"): _FAULT,
    (_PARAMS, "param"): _PARAM,
    (_PARAM, "value"): _TOP,
    (_TOP, "struct"): _STRUCT,
}
_AFTER_END = {
    _STRUCT: _TOP_FULL,
    _TOP_FULL: _PARAM_FULL,
    _PARAM_FULL: _PARAMS_FULL,
    _PARAMS_FULL: _RESPONSE_FULL,
    _RESPONSE_FULL: _END,
}
_EMPTY = {
    _RESPONSE: "an empty methodResponse",
    _PARAMS: "a methodResponse without a param",
    _PARAM: "a param without a value",
    _TOP: "list_packages_with_serial did not return a struct",
}


class SerialsReader:
    """An XML-RPC ``list_packages_with_serial`` response (``{display_name: serial}`` struct),
    parsed as it arrives."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._state = _DOC
        self._depth = 0  # nesting inside <fault>, which xmlrpc.client reads for us
        # The chunks before <params>; if a fault comes instead, xmlrpc.client parses them.
        self._head: list[bytes] | None = []
        self._fed = 0
        self._mark = 0  # where the last <member> (or element around the struct) started
        self._name: str | None = None
        self._serial = -1
        self._pairs: list[tuple[str, int]] = []
        self._text: list[str] = []
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.ordered_attributes = True  # attributes are ignored; a list is cheaper than a dict
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        # A C method as the handler: text is the most frequent event, and needs no Python frame.
        parser.CharacterDataHandler = self._text.append
        # A methodResponse has no DTD; refusing one also refuses entity expansion bombs.
        parser.StartDoctypeDeclHandler = self._doctype
        self._parser = parser

    def feed(self, data: bytes) -> list[tuple[str, int]]:
        if self._head is not None:
            self._head.append(bytes(data))  # no copy for bytes; bytearrays may change later
        self._fed += len(data)
        self._parse(data, final=False)
        self._check_held(self._fed)
        return self._take()

    def close(self) -> list[tuple[str, int]]:
        self._parse(b"", final=True)
        self._check_held(self._fed)
        if self._state != _END:
            raise self._bad("the document ends early")
        if self._head is not None:
            self._raise_fault()
        return self._take()

    def _take(self) -> list[tuple[str, int]]:
        pairs, self._pairs = self._pairs, []
        return pairs

    def _parse(self, data: bytes, *, final: bool) -> None:
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            # At close() this is also how a cut-off document shows: "no element found".
            raise self._bad(f"not XML: {exc}") from None

    def _bad(self, reason: str) -> MalformedResponse:
        return MalformedResponse(self._url, reason)

    def _check_held(self, index: int) -> None:
        # All this reader and expat hold (one member's text, one unfinished token, a fault)
        # lies after the last <member>: bounding that distance bounds them. Checked on the
        # document's own positions, so the outcome does not depend on the chunks.
        if index - self._mark > _MAX_HELD:
            raise self._bad(f"more than {_MAX_HELD} bytes without a new struct member")

    def _move_mark(self) -> None:
        index = self._parser.CurrentByteIndex
        self._check_held(index)
        self._mark = index

    def _doctype(self, *_: object) -> None:
        raise self._bad("a DOCTYPE in an XML-RPC response")

    def _start(self, tag: str, _attributes: object) -> None:
        self._text.clear()
        state = self._state
        # The per-project states first: they are all but a handful of the calls.
        if state == _MEMBER:
            if tag == "name" and self._name is None:
                self._state = _NAME
            elif tag == "value" and self._serial < 0:
                self._state = _VALUE
            else:
                raise self._bad(f"unexpected <{tag:.40}> in a struct member")
        elif state == _VALUE:
            if tag not in _INT_TAGS:
                raise self._bad(f"a serial is not an integer: <{tag:.40}>")
            self._state = _INT
        elif state == _STRUCT and tag == "member":
            self._state = _MEMBER
            self._name = None
            self._serial = -1
            self._move_mark()
        elif state == _FAULT:
            self._depth += 1
        elif (state, tag) in _OUTER_START:
            self._state = _OUTER_START[state, tag]
            self._move_mark()
            if self._state == _PARAMS:
                self._head = None  # not a fault: nothing more to hold
        else:
            raise self._bad(_EMPTY[_TOP] if state == _TOP else f"unexpected <{tag:.40}>")

    def _end(self, _tag: str) -> None:
        # expat checks that tags nest, so the state alone says which element ended.
        state = self._state
        if state == _NAME:
            self._name = "".join(self._text)
            self._state = _MEMBER
        elif state == _INT:
            self._serial = self._integer("".join(self._text))
            self._state = _TYPED
        elif state == _TYPED:
            self._state = _MEMBER
        elif state == _MEMBER:
            if self._name is None:
                raise self._bad("a struct member without a name")
            if self._serial < 0:
                raise self._bad(f"project {self._name!r:.80} has no serial")
            self._pairs.append((self._name, self._serial))
            self._state = _STRUCT
        elif state == _VALUE:  # no type element: XML-RPC's untyped value is a string
            raise self._bad(f"a serial is not an integer: {''.join(self._text)!r:.40}")
        elif state == _FAULT:
            if self._depth:
                self._depth -= 1
            else:
                self._state = _RESPONSE_FULL
        elif state in _AFTER_END:
            self._state = _AFTER_END[state]
        else:
            raise self._bad(_EMPTY.get(state, "unexpected end of an element"))

    def _integer(self, text: str) -> int:
        # isdigit() alone would take "²"; the length cap keeps int() cheap.
        if len(text) <= 19 and text.isascii() and text.isdigit():
            return int(text)
        match = _XML_INT.fullmatch(text)
        if match is None:
            raise self._bad(f"a serial is not an integer: {text!r:.40}")
        serial = int(match.group(1))
        if serial < 0:
            raise self._bad(f"a negative serial: {serial}")
        return serial

    def _raise_fault(self) -> None:
        # <params> never came, so the whole (small) document is in _head.
        assert self._head is not None
        try:
            xmlrpc.client.loads(b"".join(self._head))
        except xmlrpc.client.Fault:
            raise
        except (xmlrpc.client.Error, expat.ExpatError, TypeError, ValueError, LookupError) as exc:
            raise self._bad(f"an XML-RPC fault that does not parse: {exc}") from None
        raise self._bad("an XML-RPC fault that does not parse")


# -- PEP 691 root JSON ------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER_CHARS = re.compile(r"[0-9.eE+-]*")
# The longest token prefix the JSON decoder reports as a bad value ("-Infinit"): an error
# this close to the end of the text may just be a token cut by a chunk boundary.
_CUT_TOKEN = 9
# Characters of projects decoded in one call: few enough that their objects stay small.
_WINDOW = 1 << 18
(
    _OPEN, _FIRST_KEY, _KEY, _COLON, _FIELD, _NEXT_KEY, _FIRST_ITEM, _ITEM, _NEXT_ITEM, _CLOSED,
) = range(10)  # fmt: skip
_PUNCTUATION = {
    (_OPEN, "{"): _FIRST_KEY,
    (_FIRST_KEY, "}"): _CLOSED,
    (_NEXT_KEY, "}"): _CLOSED,
    (_NEXT_KEY, ","): _KEY,
    (_COLON, ":"): _FIELD,
    (_FIRST_ITEM, "]"): _NEXT_KEY,
    (_NEXT_ITEM, "]"): _NEXT_KEY,
    (_NEXT_ITEM, ","): _ITEM,
}


class _Wait(Exception):
    """The text so far ends inside a value: decode it again once more has arrived."""


class RootJsonReader:
    """A PEP 691 root page (``{"meta": {...}, "projects": [{"name": ..., "_last-serial": ...},
    ...]}``), parsed as it arrives."""

    serial: int | None

    def __init__(self, url: str) -> None:
        #: ``meta._last-serial``, None when absent; valid after :meth:`close`.
        self.serial = None
        self._url = url
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._bytes = 0
        self._decode = json.JSONDecoder().raw_decode
        self._pending: list[str] = []
        self._pending_size = 0
        self._retry_at = 0
        self._dropped = 0  # characters already consumed: error positions count from the start
        self._slow_until = 0  # the end of a window that failed, counted like _dropped
        self._state = _OPEN
        self._key = ""
        # "meta" and "projects" once read: a second one would silently replace the first.
        self._seen: set[str] = set()

    def feed(self, data: bytes) -> list[tuple[str, int]]:
        return self._advance(self._utf8_text(data, final=False), final=False)

    def close(self) -> list[tuple[str, int]]:
        pairs = self._advance(self._utf8_text(b"", final=True), final=True)
        if self._state != _CLOSED:
            raise self._bad("not JSON: the document ends early")
        if "projects" not in self._seen:
            raise self._bad("projects is missing or not a list")
        return pairs

    def _utf8_text(self, data: bytes, *, final: bool) -> str:
        held = self._utf8.getstate()[0]  # the start of a character cut by the last chunk
        try:
            text = self._utf8.decode(data, final)
        except UnicodeDecodeError as exc:
            # Errors in document order, as with any other split: the text before this first.
            self._retry_at = 0
            self._advance((held + data)[: exc.start].decode(), final=False)
            where = self._bytes - len(held) + exc.start
            raise self._bad(f"not JSON: bad UTF-8 ({exc.reason}) at byte {where}") from None
        self._bytes += len(data)
        return text

    def _bad(self, reason: str) -> MalformedResponse:
        return MalformedResponse(self._url, reason)

    def _advance(self, text: str, *, final: bool) -> list[tuple[str, int]]:
        self._pending.append(text)
        self._pending_size += len(text)
        # Decoding the held text again on every chunk would make one huge value cost
        # quadratic time; waiting until it has doubled keeps the total linear.
        if not final and self._pending_size < self._retry_at:
            return []
        buf = "".join(self._pending)
        pairs: list[tuple[str, int]] = []
        pos = 0
        try:
            pos = self._run(buf, pairs, final)
        except _Wait as wait:
            pos = wait.args[0]
            self._retry_at = 2 * (len(buf) - pos)
        else:
            self._retry_at = 0
        self._pending = [buf[pos:]]
        self._pending_size = len(buf) - pos
        self._dropped += pos
        return pairs

    def _value(self, buf: str, pos: int, final: bool) -> tuple[Any, int]:
        """The JSON value at ``pos`` and where it ends; raises :class:`_Wait` if it may go on."""
        try:
            return self._decode(buf, pos)
        except json.JSONDecodeError as exc:
            # "Unterminated string" is only ever said at the end of the text.
            cut = exc.msg.startswith("Unterminated") or len(buf) - exc.pos <= _CUT_TOKEN
            if cut and not final:
                raise _Wait(pos) from None
            raise self._bad(f"not JSON: {exc.msg} at character {self._dropped + exc.pos}") from None
        except (ValueError, RecursionError) as exc:  # too deep, or an int past int()'s limit
            raise self._bad(f"not JSON: {exc}") from None

    def _run(self, buf: str, pairs: list[tuple[str, int]], final: bool) -> int:
        size = len(buf)
        # json.loads(bytes) skips a byte order mark at the very start, so this does too.
        pos = 1 if self._dropped == 0 and buf.startswith("\ufeff") else 0
        while True:
            # State lives in self so that a _Wait leaves it where the held text starts.
            state = self._state
            pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]  # matches ""
            if pos == size:
                return pos
            char = buf[pos]
            if state == _ITEM:
                pos = self._items(buf, pos, pairs, final)
            elif (state, char) in _PUNCTUATION:
                self._state = _PUNCTUATION[state, char]
                pos += 1
            elif state == _FIRST_ITEM:
                self._state = _ITEM
            elif state == _FIELD:
                pos = self._field(buf, pos, final)
            elif state in (_FIRST_KEY, _KEY) and char == '"':
                self._key, pos = self._value(buf, pos, final)
                self._state = _COLON
            elif state == _OPEN:
                raise self._bad("the document is not a JSON object")
            else:
                where = self._dropped + pos
                raise self._bad(f"not JSON: unexpected {char!r} at character {where}")

    def _field(self, buf: str, pos: int, final: bool) -> int:
        key = self._key
        if key in self._seen:
            raise self._bad(f"a second {key} key")
        if key == "projects":
            if buf[pos] != "[":
                raise self._bad("projects is missing or not a list")
            self._seen.add(key)
            self._state = _FIRST_ITEM
            return pos + 1
        value, end = self._value(buf, pos, final)
        # A number is the one value that may go on after its last character in the text.
        if (
            not final
            and type(value) in (int, float)
            and _NUMBER_CHARS.match(buf, end).end() == len(buf)  # type: ignore[union-attr]
        ):
            raise _Wait(pos)
        if key == "meta":
            meta = load_meta({"meta": value}, self._url)
            if "_last-serial" in meta:
                self.serial = serial_value(meta["_last-serial"], self._url, "meta._last-serial")
            self._seen.add(key)
        self._state = _NEXT_KEY
        return end

    def _items(self, buf: str, pos: int, pairs: list[tuple[str, int]], final: bool) -> int:
        """Projects from ``pos`` until the text ends or the list does: the hot loop."""
        size = len(buf)
        while True:
            # One C call for a window of projects instead of one Python round per project.
            # "}," may also end a nested object or sit in a string, but then the bracketed
            # slice is not valid JSON, never a different reading of it.
            cut = buf.rfind("},", pos, pos + _WINDOW) + 1
            if cut and self._dropped + pos >= self._slow_until:
                try:
                    window, end = self._decode(f"[{buf[pos:cut]}]")
                except (ValueError, RecursionError):
                    window, end = None, 0
                if end == cut - pos + 2:
                    self._collect(window, pairs)
                    pos = _WS.match(buf, cut + 1).end()  # type: ignore[union-attr]
                    if pos == size:
                        return pos
                    continue
                self._slow_until = self._dropped + cut  # one project at a time up to there
            entry, end = self._value(buf, pos, final)
            self._collect([entry], pairs)
            if end < size and buf[end] == ",":
                pos = _WS.match(buf, end + 1).end()  # type: ignore[union-attr]
                if pos < size:
                    continue
                return pos  # the next project has not arrived yet
            self._state = _NEXT_ITEM
            return end

    def _collect(self, entries: list[Any], pairs: list[tuple[str, int]]) -> None:
        append = pairs.append
        for entry in entries:
            name = entry.get("name") if type(entry) is dict else None
            if type(name) is not str:
                raise self._bad("a project entry is not an object with a string name")
            serial = entry.get("_last-serial", 0)  # absent in a bandersnatch root: unknown
            # type() is exact: it keeps the common case fast and sends bools on to fail.
            if type(serial) is not int or serial < 0:
                serial = serial_value(serial, self._url, "a project's _last-serial")
            append((name, serial))


def listed(pairs: Iterable[tuple[str, int]]) -> list[ListedProject]:
    """The pairs as projects, in their order, without the names no mirror could serve.

    Names outside PEP 508's grammar (path tricks, control characters) are skipped. Duplicates
    after normalization are kept: a streaming caller sees each pair once, as it comes.
    """
    projects: list[ListedProject] = []
    for display, serial in pairs:
        name = normalize_project_name(display)
        if name is not None:
            projects.append(ListedProject(name, display, serial))
    return projects


def unique_sorted(projects: Iterable[ListedProject]) -> tuple[ListedProject, ...]:
    """One entry per normalized name, sorted by it; the highest serial wins, with its display
    name (on a tie, the first seen)."""
    best: dict[NormalizedName, ListedProject] = {}
    for project in projects:
        known = best.get(project.name)
        if known is None or project.serial > known.serial:
            best[project.name] = project
    return tuple([best[name] for name in sorted(best)])


def parse_root_json(body: bytes, *, url: str) -> Listing:
    """Parse a whole PEP 691 root page into a :class:`Listing` sorted by normalized name.

    Invalid names are skipped (see :func:`listed`). An entry without ``_last-serial`` (a
    bandersnatch root) gets serial 0, meaning "unknown", so the caller must not read 0 as
    "unchanged"; a present but non-numeric serial is malformed. Duplicates after normalization
    keep the highest serial.
    """
    reader = RootJsonReader(url)
    pairs = reader.feed(body)
    pairs += reader.close()
    return Listing(serial=reader.serial, projects=unique_sorted(listed(pairs)))


def parse_serials_xml(body: bytes, *, url: str) -> tuple[ListedProject, ...]:
    """Parse a whole ``list_packages_with_serial`` response as :func:`parse_root_json` does.

    An XML-RPC fault is raised as :class:`xmlrpc.client.Fault`.
    """
    reader = SerialsReader(url)
    pairs = reader.feed(body)
    pairs += reader.close()
    return unique_sorted(listed(pairs))
