"""The simple-API pages the mirror writes: PEP 503/691 HTML and JSON, project and root.

Pure: typed values in, ``str`` out. Output is deterministic (sorted, fixed key order), so the
storage layer can skip rewriting a page whose text did not change.

Everything that came from upstream is treated as hostile text. HTML escapes it with
``html.escape(quote=True)`` and is emitted as pure ASCII (character references for the rest),
so the page means the same whatever charset a server or browser assumes. JSON is ASCII too, and
``<``, ``>`` and ``&`` are written as ``\\u`` escapes so that a JSON page served as HTML by
mistake still cannot inject markup.

File hrefs are relative (``../../packages/...`` from ``web/simple/<name>/``) so the same tree
works over HTTP and as a ``file://`` index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from html import escape
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from urllib.parse import quote

from packaging.version import InvalidVersion, Version

from fullmirror.models import MirroredFile, MirroredPage, MirroredProject, hash_of

__all__ = ["API_VERSION", "project_html", "project_json", "root_html", "root_json"]

#: PEP 629 repository version: 1.1 for PEP 700 fields, 1.4 for PEP 792 project status.
API_VERSION = "1.4"

# Project pages live at web/simple/<name>/; local locations are relative to web/.
_TO_WEB_ROOT = "../../"
# Local locations are raw paths: "%" and ":" must be encoded, "+" and "!" stay readable.
_LOCAL_SAFE = "/+!@~"
# Absolute locations are already URLs: keep reserved characters and existing escapes, encode
# only what cannot appear in a URL at all (blanks, quotes, angle brackets, non-ASCII).
_URL_SAFE = ":/?[]@!$&'()*+,;=%~"
# Strings that need neither quoting nor escaping: the fast path for 700k-entry root pages.
_PLAIN_NAME = re.compile(r"[a-z0-9-]+")
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9._-]+")


def _text(value: str) -> str:
    return escape(value, quote=True)


def _ascii_html(document: str) -> str:
    if document.isascii():  # O(1) in CPython: the common case costs nothing
        return document
    return document.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _json_text(document: str) -> str:
    # Outside strings JSON never contains these three characters, so a blind replace is exact.
    return document.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _href(file: MirroredFile) -> str:
    """The link to a file as seen from its project page, without fragment."""
    if file.is_local:
        return _TO_WEB_ROOT + quote(file.location, safe=_LOCAL_SAFE)
    return quote(file.location.partition("#")[0], safe=_URL_SAFE)


def _by_filename(page: MirroredPage) -> list[MirroredFile]:
    return sorted(page.files, key=attrgetter("filename"))


# -- project pages ------------------------------------------------------------------------------


def _fragment(file: MirroredFile, digest_name: str) -> str:
    """``#alg=hex``: the requested digest, else sha256, else any; empty without hashes."""
    for algorithm in (digest_name, "sha256"):
        digest = hash_of(file.hashes, algorithm)
        if digest is not None:
            return f"#{algorithm}={digest}"
    if file.hashes:
        algorithm, digest = file.hashes[0]
        return f"#{algorithm}={digest}"
    return ""


def _anchor(file: MirroredFile, digest_name: str) -> str:
    attributes = [f'href="{_text(_href(file) + _fragment(file, digest_name))}"']
    if file.requires_python is not None:
        attributes.append(f'data-requires-python="{_text(file.requires_python)}"')
    if file.yanked:
        attributes.append(f'data-yanked="{_text(file.yanked_reason or "")}"')
    if file.metadata_hashes is not None:
        digest = hash_of(file.metadata_hashes, "sha256")
        value = _text(f"sha256={digest}") if digest is not None else "true"
        # PEP 714: the legacy attribute, when present, must carry the same value.
        attributes.append(f'data-core-metadata="{value}"')
        attributes.append(f'data-dist-info-metadata="{value}"')
    return f"    <a {' '.join(attributes)}>{_text(file.filename)}</a><br />\n"


def project_html(page: MirroredPage, *, digest_name: str = "sha256") -> str:
    """The PEP 503 project page (with PEP 592/629/658/714/792 additions), sorted by filename."""
    name = _text(page.display_name)
    parts = [
        "<!DOCTYPE html>\n<html>\n  <head>\n",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n',
    ]
    if page.status is not None:
        parts.append(f'    <meta name="pypi:project-status" content="{_text(page.status)}">\n')
        if page.status_reason is not None:
            parts.append(
                '    <meta name="pypi:project-status-reason" '
                f'content="{_text(page.status_reason)}">\n'
            )
    parts.append(f"    <title>Links for {name}</title>\n  </head>\n  <body>\n")
    parts.append(f"    <h1>Links for {name}</h1>\n")
    parts.extend(_anchor(file, digest_name) for file in _by_filename(page))
    parts.append(f"  </body>\n</html>\n<!--SERIAL {int(page.serial)}-->\n")
    return _ascii_html("".join(parts))


def _sorted_versions(versions: Iterable[str]) -> list[str]:
    """PEP 440 order, then the unparseable ones in string order."""
    parsed: list[tuple[Version, str]] = []
    legacy: list[str] = []
    for text in set(versions):
        try:
            parsed.append((Version(text), text))
        except InvalidVersion:
            legacy.append(text)
    parsed.sort()
    return [text for _, text in parsed] + sorted(legacy)


def _file_json(file: MirroredFile) -> dict[str, object]:
    metadata: object
    if file.metadata_hashes is None:
        metadata = False
    elif file.metadata_hashes:
        metadata = dict(file.metadata_hashes)
    else:
        metadata = True
    entry: dict[str, object] = {
        "filename": file.filename,
        "url": _href(file),
        "hashes": dict(file.hashes),
        "requires-python": file.requires_python,
        # PEP 700 makes size mandatory; a mirrored file's size is always known, so null only
        # appears for a page built from incomplete data, and clients read it as "unknown".
        "size": file.size,
        "yanked": (file.yanked_reason or True) if file.yanked else False,
        # Never "dist-info-metadata": pip 22.3 to 23.1 crash on it (PEP 714).
        "core-metadata": metadata,
        "data-dist-info-metadata": metadata,
    }
    if file.upload_time is not None:
        entry["upload-time"] = file.upload_time
    return entry


def project_json(page: MirroredPage, *, digest_name: str = "sha256") -> str:
    """The PEP 691 project page (API 1.4), byte-identical for equal pages.

    ``digest_name`` is accepted for symmetry with :func:`project_html`; JSON lists every hash.
    """
    del digest_name
    document: dict[str, object] = {
        "meta": {"api-version": API_VERSION, "_last-serial": int(page.serial)},
        "name": page.name,
        "versions": _sorted_versions(page.versions),
        "files": [_file_json(file) for file in _by_filename(page)],
    }
    if page.status is not None:
        status = {"status": page.status}
        if page.status_reason is not None:
            status["reason"] = page.status_reason
        document["project-status"] = status
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _json_text(text) + "\n"


# -- root pages ---------------------------------------------------------------------------------


def _by_name(projects: Iterable[MirroredProject]) -> list[MirroredProject]:
    return sorted(projects, key=attrgetter("name"))


def root_html(projects: Iterable[MirroredProject]) -> str:
    """The PEP 503 root page: one relative link per project, sorted by normalized name."""
    return "".join(root_pieces("html", [_by_name(projects)], serial=0))


def root_json(projects: Iterable[MirroredProject], *, serial: int) -> str:
    """The PEP 691 root page; what another fullmirror reads back with ``parse_root_json``."""
    return "".join(root_pieces("json", [_by_name(projects)], serial=serial))


def root_pieces(
    kind: str, batches: Iterable[Sequence[MirroredProject]], *, serial: int
) -> Iterator[str]:
    """A root page ("html" or "json") in pieces, one per batch of projects in name order: at
    PyPI's size the page is tens of megabytes and never needs to exist as one string."""
    yield root_head(kind, serial=serial)
    first = True
    for batch in batches:
        if batch:
            yield root_piece(kind, batch, first=first)
            first = False
    yield root_tail(kind)


def root_head(kind: str, *, serial: int) -> str:
    if kind == "json":
        return (
            f'{{"meta":{{"_last-serial":{int(serial)},"api-version":"{API_VERSION}"}},"projects":['
        )
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
    )


def root_piece(kind: str, batch: Sequence[MirroredProject], *, first: bool) -> str:
    """The entries of ``batch``; ``first``: no separator before them.

    The escaping functions work character by character, so applying them piece by piece
    equals applying them to the whole page. The JSON is written by hand rather than through
    ``json.dumps`` of a list of dicts, which is measurably slower at PyPI's size; the result is
    exactly what ``json.dumps(sort_keys=True)`` gives."""
    if kind == "json":
        entries = [
            f'{{"_last-serial":{int(p.serial)},"name":{encode_basestring_ascii(p.display_name)}}}'
            for p in batch
        ]
        return ("" if first else ",") + _json_text(",".join(entries))
    plain_name, plain_text = _PLAIN_NAME.fullmatch, _PLAIN_TEXT.fullmatch
    parts: list[str] = []
    append = parts.append
    for project in batch:
        name, display = project.name, project.display_name
        # quote() keeps dots, and a name of ".." must not become a link to the parent.
        href = name if plain_name(name) else _text(quote(name, safe="").replace(".", "%2E"))
        text = display if plain_text(display) else _text(display)
        append(f'    <a href="{href}/">{text}</a><br />\n')
    return _ascii_html("".join(parts))


def root_tail(kind: str) -> str:
    return "]}\n" if kind == "json" else "  </body>\n</html>\n"


#: Every page file a simple directory can hold; which are written depends on simple-format.
PAGE_FILES = ("index.html", "index.v1_html", "index.v1_json")


def project_pages(
    page: MirroredPage, *, simple_format: str, digest_name: str = "sha256"
) -> dict[str, bytes]:
    """The page files of one project for ``simple-format`` (ALL, HTML or JSON), by file name."""
    pages: dict[str, bytes] = {}
    if simple_format in ("ALL", "HTML"):
        html = project_html(page, digest_name=digest_name).encode()
        pages["index.html"] = html
        pages["index.v1_html"] = html
    if simple_format in ("ALL", "JSON"):
        pages["index.v1_json"] = project_json(page, digest_name=digest_name).encode()
    return pages
