"""A PyPI-sized listing is never held whole: it streams from the socket into the state
database, pending work is walked in batches, and the root pages stream back out.

Python's own allocations are traced (SQLite's page cache is not, and is bounded by itself).
Each bound is a growth rule, not a size: four times the projects may not cost much more memory
than one time, while the same listing held at once grows fourfold beside it.
"""

from __future__ import annotations

import json
import tracemalloc
import xmlrpc.client
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from packaging.utils import NormalizedName

from fullmirror import catalog as catalog_module
from fullmirror.catalog import Catalog
from fullmirror.models import MirroredPage
from fullmirror.rootpages import write_root_pages
from fullmirror.storage import Storage
from fullmirror.upstream import ListingSink, Upstream

SMALL, LARGE = 6_000, 24_000


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches keep the constant part of each peak small next to what would grow.
    monkeypatch.setattr(catalog_module, "BATCH", 500)


def _pieces(body: bytes, size: int = 16384) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _upstream(projects: int) -> Upstream:
    serials = {f"Project_{i}": 1000 + i for i in range(projects)}
    rpc = xmlrpc.client.dumps((serials,), methodresponse=True).encode()
    root = json.dumps(
        {
            "meta": {"api-version": "1.1", "_last-serial": 99_999},
            "projects": [{"name": n, "_last-serial": s} for n, s in serials.items()],
        }
    ).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/pypi":
            return httpx.Response(200, content=_pieces(rpc), headers={"Content-Type": "text/xml"})
        headers = {"Content-Type": "application/vnd.pypi.simple.v1+json"}
        return httpx.Response(200, content=_pieces(root), headers=headers)

    client = httpx.Client(transport=httpx.MockTransport(answer))
    return Upstream(client, "http://index.test", xmlrpc_delay=0)


def _peak(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _listing_peaks(directory: Path, projects: int) -> tuple[int, int]:
    """Peak of streaming both listings into pending work and walking it; peak of holding it."""
    upstream = _upstream(projects)
    catalog = Catalog(directory / f"state-{projects}.db")

    def stream(method: Callable[[ListingSink], object]) -> Callable[[], None]:
        def work() -> None:
            method(catalog.listing_sink())
            assert not catalog.unlisted()
            for batch in catalog.listed_changes():
                catalog.add_pending({p.name: p.serial for p in batch}, since=0)
            assert catalog.pending_count() == projects
            names: list[NormalizedName] = []
            walked = 0
            for item in catalog.iter_pending():
                walked += 1
                names.append(item.name)
                if len(names) == 500:
                    catalog.settle(names)
                    names = []
            catalog.settle(names)
            assert walked == projects

        return work

    streamed = max(_peak(stream(upstream.stream_serials)), _peak(stream(upstream.stream_listing)))
    held = _peak(upstream.list_packages_with_serial)
    catalog.close()
    return streamed, held


def test_a_listing_streams_through_the_database(tmp_path: Path) -> None:
    small, small_held = _listing_peaks(tmp_path, SMALL)
    large, large_held = _listing_peaks(tmp_path, LARGE)
    # The check itself can fail: holding the listing grows with it.
    assert large_held > 3 * small_held
    assert large < 1.5 * small, (small, large)
    assert large < large_held / 4, (large, large_held)


def _root_peak(directory: Path, projects: int) -> tuple[int, int]:
    catalog = Catalog(directory / f"state-{projects}.db")
    storage = Storage(directory / str(projects))
    for i in range(projects):
        catalog.put_project(MirroredPage(NormalizedName(f"project-{i}"), f"Project_{i}", i, ()))
    peak = _peak(lambda: write_root_pages(storage, catalog, 5, "ALL"))
    page = directory / str(projects) / "web/simple/index.v1_json"
    listed = json.loads(page.read_bytes())["projects"]
    assert len(listed) == projects
    assert listed[0] == {"_last-serial": 0, "name": "Project_0"}
    catalog.close()
    return peak, page.stat().st_size


def test_root_pages_stream_out_of_the_database(tmp_path: Path) -> None:
    small, _ = _root_peak(tmp_path, SMALL)
    large, size = _root_peak(tmp_path, LARGE)
    assert large < 1.5 * small, (small, large)
    # One of the three pages alone is bigger than what writing all of them held.
    assert large < size, (large, size)
