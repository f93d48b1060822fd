"""The root index (``web/simple/`` as HTML and PEP 691 JSON), streamed from the catalog.

``mirror`` rewrites it after a run that changed projects, ``delete`` after removing some, and
``verify`` compares it with what the catalog renders. At PyPI's size each page is tens of
megabytes, so it is rendered and written piece by piece from one name-ordered walk and never
held whole.
"""

from __future__ import annotations

from collections.abc import Iterator

from fullmirror import render
from fullmirror.catalog import Catalog
from fullmirror.config import Config
from fullmirror.state import BadState, parse_status
from fullmirror.storage import Storage


def root_files(simple_format: str) -> list[tuple[list[str], str]]:
    """The root page paths ``simple-format`` asks for, grouped by identical content, with the
    kind of page ("html" or "json") each group holds."""
    groups: list[tuple[list[str], str]] = []
    if simple_format in ("ALL", "HTML"):
        groups.append((["web/simple/index.html", "web/simple/index.v1_html"], "html"))
    if simple_format in ("ALL", "JSON"):
        groups.append((["web/simple/index.v1_json"], "json"))
    return groups


def root_chunks(catalog: Catalog, kind: str, serial: int) -> Iterator[bytes]:
    """One root page, rendered piece by piece from the catalog in name order."""
    pieces = render.root_pieces(kind, catalog.project_batches(), serial=serial)
    return (piece.encode() for piece in pieces)


def write_root_pages(
    storage: Storage, catalog: Catalog, serial: int, simple_format: str
) -> list[str]:
    """Stream the root pages ``simple-format`` asks for from one walk of the catalog; the
    paths that changed. At PyPI's size each page is tens of megabytes."""
    groups = root_files(simple_format)
    kinds = [kind for _, kind in groups]

    def pieces() -> Iterator[list[bytes]]:
        yield [render.root_head(kind, serial=serial).encode() for kind in kinds]
        first = True
        for batch in catalog.project_batches():
            yield [render.root_piece(kind, batch, first=first).encode() for kind in kinds]
            first = False
        yield [render.root_tail(kind).encode() for kind in kinds]

    return storage.write_streams_if_changed([rels for rels, _ in groups], pieces())


def read_serial(storage: Storage) -> int:
    """The serial the mirror's ``status`` file claims; 0 when it is missing or unreadable."""
    raw = storage.read_bytes("status")
    if raw is None:
        return 0
    try:
        return parse_status(raw.decode("ascii", "replace"))
    except BadState:
        return 0


def write_root_index(storage: Storage, catalog: Catalog, config: Config) -> list[str]:
    """Rewrite the root pages from the catalog where they differ; the paths rewritten."""
    return write_root_pages(storage, catalog, read_serial(storage), config.simple_format)
