"""The fake PyPI, exercised over real HTTP on 127.0.0.1 (httpx and xmlrpc.client)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
import xmlrpc.client
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.parsers.expat import ExpatError

import httpx
import pytest

import fullmirror.fakepypi
from fullmirror.fakepypi import (
    ANCHORS,
    DEMO_APP,
    DEMO_EMPTY,
    DEMO_FUTURE,
    DEMO_LIB,
    DEMO_NOTHING,
    DEMO_PRE,
    DEMO_SPEEDUPS,
    ZOPE_EXTRA,
    ChangeRejected,
    FakePyPI,
    Faults,
    NotLoopback,
    generate_corpus,
)
from fullmirror.fakepypi.cli import main as cli_main
from fullmirror.fakepypi.filebody import UNSATISFIABLE, parse_range
from fullmirror.fakepypi.negotiate import negotiate

JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"
PIP_ACCEPT = f"{JSON}, {V1_HTML}; q=0.1, text/html; q=0.01"
UV_ACCEPT = f"{JSON}, {V1_HTML};q=0.2, text/html;q=0.01"
SRC = Path(fullmirror.fakepypi.__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def up() -> Iterator[FakePyPI]:
    """A shared, read-only fake index."""
    with FakePyPI.start(projects=40, seed=1) as upstream:
        yield upstream


@pytest.fixture
def fresh() -> Iterator[FakePyPI]:
    """A private fake index the test may mutate and fault."""
    with FakePyPI.start(projects=20, seed=2) as upstream:
        yield upstream


@pytest.fixture
def client(up: FakePyPI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=up.url, timeout=10) as c:
        yield c


def simple_json(c: httpx.Client, name: str) -> dict[str, object]:
    response = c.get(f"/simple/{name}/", headers={"Accept": JSON})
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def files_of(page: dict[str, object]) -> list[dict[str, object]]:
    files = page["files"]
    assert isinstance(files, list)
    return files


def rpc(upstream: FakePyPI) -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(upstream.url + "/pypi", allow_none=True)


def rows_since(upstream: FakePyPI, serial: int) -> list[list[object]]:
    with rpc(upstream) as proxy:
        rows = proxy.changelog_since_serial(serial)
    assert isinstance(rows, list)
    return rows


# -- corpus ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_serials() -> None:
    first, second = generate_corpus(60, 7), generate_corpus(60, 7)
    assert first.last_serial == second.last_serial
    assert first.changelog_since(0, limit=10**6) == second.changelog_since(0, limit=10**6)
    assert first.project_names() == second.project_names()
    for name in first.project_names():
        for filename in first.filenames(name):
            assert first.file_content(filename) == second.file_content(filename), filename
    other = generate_corpus(60, 8)
    assert other.project_names() != first.project_names()


def test_corpus_size_and_anchors() -> None:
    assert generate_corpus(3, 0).project_names() == sorted(ANCHORS)
    index = generate_corpus(1000, 0)
    names = index.project_names()
    assert len(names) == 1000 and set(ANCHORS) <= set(names)
    assert [row.serial for row in index.changelog_since(0, limit=10**7)] == list(
        range(1, index.last_serial + 1)
    )
    lib = index.view(DEMO_LIB)
    assert lib is not None
    assert [(r.version, r.yanked, r.yanked_reason) for r in lib.releases] == [
        ("1.0", False, None),
        ("1.2", False, None),
        ("1.5", True, None),
        ("2.0", True, "broken build"),
    ]
    empty, nothing = index.view(DEMO_EMPTY), index.view(DEMO_NOTHING)
    assert empty is not None and [len(r.files) for r in empty.releases] == [0]
    assert nothing is not None and nothing.releases == ()
    zope = index.view(ZOPE_EXTRA)
    assert zope is not None and zope.display_name == "Zope.Interface_Extra"


def test_file_size_knob_adds_incompressible_payload() -> None:
    index = generate_corpus(0, 0, file_size=200_000)
    wheel = next(f for f in index.filenames("demo-core") if f.endswith(".whl"))
    data = index.file_content(wheel)
    assert 200_000 < len(data) < 210_000
    assert len(data) == len(generate_corpus(0, 0, file_size=200_000).file_content(wheel))


# -- files -----------------------------------------------------------------------------------


def record_digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_wheel_served_is_sound(up: FakePyPI, client: httpx.Client) -> None:
    page = simple_json(client, DEMO_APP)
    entry = next(f for f in files_of(page) if f["filename"] == "demo_app-1.1-py3-none-any.whl")
    url = str(entry["url"])
    data = client.get(url).content
    assert hashlib.sha256(data).hexdigest() == entry["hashes"]["sha256"]  # type: ignore[index]
    assert len(data) == entry["size"]
    blake = hashlib.blake2b(data, digest_size=32).hexdigest()
    assert url == f"{up.url}/packages/{blake[:2]}/{blake[2:4]}/{blake[4:]}/{entry['filename']}"

    archive = zipfile.ZipFile(io.BytesIO(data))
    record = archive.read("demo_app-1.1.dist-info/RECORD").decode()
    rows = list(csv.reader(io.StringIO(record)))
    assert sorted(r[0] for r in rows) == sorted(archive.namelist())
    for path, digest, size in rows:
        if path.endswith("RECORD"):
            assert (digest, size) == ("", "")
        else:
            assert digest == record_digest(archive.read(path)) and int(size) == len(
                archive.read(path)
            )
    metadata = archive.read("demo_app-1.1.dist-info/METADATA")
    text = metadata.decode()
    assert "Name: Demo_App\n" in text and "Version: 1.1\n" in text
    assert "Requires-Dist: demo-lib>=1.0\n" in text
    assert 'Requires-Dist: demo-never; python_version < "3.0"\n' in text
    assert 'Requires-Dist: demo-speedups; extra == "fast"\n' in text
    assert "Provides-Extra: fast\n" in text and "Requires-Python: >=3.8\n" in text
    wheel_text = archive.read("demo_app-1.1.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: true" in wheel_text and "Tag: py3-none-any" in wheel_text

    served = client.get(url + ".metadata")
    assert served.status_code == 200 and served.content == metadata
    core = entry["core-metadata"]
    assert core == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert entry["data-dist-info-metadata"] == core


def test_platform_wheels_and_sdist(client: httpx.Client) -> None:
    page = simple_json(client, DEMO_SPEEDUPS)
    names = sorted(str(f["filename"]) for f in files_of(page))
    assert names == [
        "demo_speedups-1.0-cp311-cp311-macosx_11_0_arm64.whl",
        "demo_speedups-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "demo_speedups-1.0-cp312-cp312-win_amd64.whl",
        "demo_speedups-1.0.tar.gz",
    ]
    by_name = {f["filename"]: f for f in files_of(page)}
    linux = by_name[names[1]]
    wheel = zipfile.ZipFile(io.BytesIO(client.get(str(linux["url"])).content))
    wheel_text = wheel.read("demo_speedups-1.0.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: false" in wheel_text
    assert "Tag: cp311-cp311-manylinux_2_17_x86_64\n" in wheel_text
    assert "Tag: cp311-cp311-manylinux2014_x86_64\n" in wheel_text
    sdist = by_name["demo_speedups-1.0.tar.gz"]
    assert sdist["core-metadata"] is False
    data = client.get(str(sdist["url"])).content
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getnames()
        pkg_info = archive.extractfile("demo_speedups-1.0/PKG-INFO")
        assert pkg_info is not None and b"Name: demo-speedups" in pkg_info.read()
    assert "demo_speedups-1.0/pyproject.toml" in members
    assert client.get(str(sdist["url"]) + ".metadata").status_code == 404


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=10-", (10, 100)),
        ("bytes=10-19", (10, 20)),
        ("bytes=90-500", (90, 100)),
        ("bytes=-5", (95, 100)),
        ("bytes=100-", UNSATISFIABLE),
        ("bytes=20-10", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
    ],
)
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


def test_range_requests(up: FakePyPI, client: httpx.Client) -> None:
    filename = up.index.filenames(DEMO_APP)[0]
    url = f"/{up.index.file_path(filename)}"
    whole = client.get(url).content
    tail = client.get(url, headers={"Range": "bytes=100-"})
    assert tail.status_code == 206 and tail.content == whole[100:]
    assert tail.headers["Content-Range"] == f"bytes 100-{len(whole) - 1}/{len(whole)}"
    middle = client.get(url, headers={"Range": "bytes=10-19"})
    assert middle.status_code == 206 and middle.content == whole[10:20]
    too_far = client.get(url, headers={"Range": f"bytes={len(whole)}-"})
    assert too_far.status_code == 416
    assert too_far.headers["Content-Range"] == f"bytes */{len(whole)}"
    head = client.head(url)
    assert head.headers["Content-Length"] == str(len(whole)) and head.content == b""
    assert head.headers["Content-Type"] == "application/octet-stream"


def test_unknown_or_mismatched_file_paths_404(up: FakePyPI, client: httpx.Client) -> None:
    path = up.index.file_path(up.index.filenames(DEMO_APP)[0])
    assert client.get(f"/{path}x").status_code == 404
    wrong = path.replace(path.split("/")[3], "0" * 60)
    assert client.get(f"/{wrong}").status_code == 404


# -- the simple API --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "query", "expected"),
    [
        (PIP_ACCEPT, "", JSON),
        (UV_ACCEPT, "", JSON),
        (None, "", "text/html"),
        ("*/*", "", "text/html"),
        ("text/html", "", "text/html"),
        (V1_HTML, "", V1_HTML),
        ("application/vnd.pypi.simple.latest+json", "", JSON),
        ("application/vnd.pypi.simple.latest+html", "", V1_HTML),
        (f"{JSON};q=0, text/html", "", "text/html"),
        ("text/html", f"?format={JSON}", JSON),
        (JSON, "?format=text/html", "text/html"),
        ("application/json", "", None),
        ("text/html", "?format=application/json", None),
    ],
)
@pytest.mark.parametrize("path", ["/simple/", f"/simple/{DEMO_APP}/"])
def test_content_negotiation(
    client: httpx.Client, path: str, accept: str | None, query: str, expected: str | None
) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    if accept is None:
        client.headers.pop("Accept", None)  # httpx sends */* unless told otherwise
    response = client.get(path + query, headers=headers)
    assert response.headers["Vary"] == "Accept"
    assert "X-PyPI-Last-Serial" in response.headers
    if expected is None:
        assert response.status_code == 406
        return
    assert response.status_code == 200
    assert response.headers["Content-Type"] == expected
    if expected == JSON:
        assert response.json()["meta"]["api-version"] == "1.4"
    else:
        assert '<meta name="pypi:repository-version" content="1.4">' in response.text


def test_negotiate_without_accept_is_html() -> None:
    assert negotiate(None) == "text/html"
    assert negotiate("") == "text/html"
    assert negotiate("application/*") == JSON


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple", "/simple/"),
        ("/simple?format=text/html", "/simple/?format=text/html"),
        ("/simple/demo-app", "/simple/demo-app/"),
        ("/simple/Demo_App/", "/simple/demo-app/"),
        ("/simple/Zope.Interface_Extra?x=1", "/simple/zope-interface-extra/?x=1"),
        ("/pypi/Demo_App/json", "/pypi/demo-app/json"),
        ("/pypi/Demo_App/1.0/json", "/pypi/demo-app/1.0/json"),
    ],
)
def test_redirects(client: httpx.Client, path: str, location: str) -> None:
    response = client.get(path)
    assert response.status_code == 301
    assert response.headers["Location"] == location
    assert "X-PyPI-Last-Serial" in response.headers


def test_unknown_project_404(client: httpx.Client) -> None:
    for path in ("/simple/no-such-thing/", "/pypi/no-such-thing/json", "/nowhere"):
        response = client.get(path)
        assert response.status_code == 404 and "X-PyPI-Last-Serial" in response.headers


def test_root_listing(up: FakePyPI, client: httpx.Client) -> None:
    response = client.get("/simple/", headers={"Accept": JSON})
    data = response.json()
    assert data["meta"] == {"api-version": "1.4", "_last-serial": up.index.last_serial}
    assert response.headers["X-PyPI-Last-Serial"] == str(up.index.last_serial)
    listed = {p["name"]: p["_last-serial"] for p in data["projects"]}
    assert listed == up.index.serials()
    assert "Demo_App" in listed and "demo-nothing" in listed
    page = client.get("/simple/").text
    assert '<a href="/simple/demo-app/">Demo_App</a>' in page
    assert '<a href="/simple/zope-interface-extra/">Zope.Interface_Extra</a>' in page


def test_project_json_shape(up: FakePyPI, client: httpx.Client) -> None:
    response = client.get(f"/simple/{DEMO_LIB}/", headers={"Accept": PIP_ACCEPT})
    page = response.json()
    serial = up.index.project_serial(DEMO_LIB)
    assert response.headers["X-PyPI-Last-Serial"] == str(serial)
    assert page["meta"] == {"api-version": "1.4", "_last-serial": serial}
    assert page["name"] == DEMO_LIB and page["project-status"] == {"status": "active"}
    assert page["versions"] == ["1.0", "1.2", "1.5", "2.0"]
    keys = {
        "filename", "url", "hashes", "requires-python", "size", "upload-time", "yanked",
        "core-metadata", "data-dist-info-metadata", "provenance",
    }  # fmt: skip
    files = page["files"]
    assert all(set(f) == keys for f in files)
    assert [f["filename"] for f in files] == sorted(
        (f["filename"] for f in files), key=lambda n: (n.split("-")[1], n)
    )
    yanked = {f["filename"]: f["yanked"] for f in files}
    assert yanked["demo_lib-2.0.tar.gz"] == "broken build"
    assert yanked["demo_lib-1.5.tar.gz"] is True and yanked["demo_lib-1.2.tar.gz"] is False
    assert all(f["requires-python"] is None and f["provenance"] is None for f in files)
    assert all(f["upload-time"].endswith("Z") and len(f["upload-time"]) == 27 for f in files)
    empty = simple_json(client, DEMO_EMPTY)
    assert empty["versions"] == ["1.0"] and empty["files"] == []
    assert simple_json(client, DEMO_NOTHING)["versions"] == []


def test_project_html_shape(up: FakePyPI, client: httpx.Client) -> None:
    html = client.get(f"/simple/{DEMO_LIB}/").text
    serial = up.index.project_serial(DEMO_LIB)
    assert html.rstrip().endswith(f"<!--SERIAL {serial}-->")
    assert '<meta name="pypi:project-status" content="active">' in html
    assert 'data-yanked="broken build">demo_lib-2.0.tar.gz</a>' in html
    assert 'data-yanked="">demo_lib-1.5.tar.gz</a>' in html
    assert 'data-core-metadata="sha256=' in html and "#sha256=" in html
    app = client.get(f"/simple/{DEMO_APP}/").text
    assert 'data-requires-python="&gt;=3.8"' in app


# -- the JSON API ----------------------------------------------------------------------------


def test_json_api_shape(up: FakePyPI, client: httpx.Client) -> None:
    response = client.get(f"/pypi/{DEMO_LIB}/json")
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    serial = up.index.project_serial(DEMO_LIB)
    assert response.headers["X-PyPI-Last-Serial"] == str(serial) and data["last_serial"] == serial
    assert set(data) == {"info", "last_serial", "releases", "urls", "vulnerabilities", "ownership"}
    info = data["info"]
    assert info["name"] == "demo-lib" and info["version"] == "1.2"
    assert info["requires_dist"] == ["demo-core>=1.0"] and info["yanked"] is False
    assert set(data["releases"]) == {"1.0", "1.2", "1.5", "2.0"}
    broken = data["releases"]["2.0"][0]
    assert broken["yanked"] is True and broken["yanked_reason"] == "broken build"
    assert data["releases"]["1.5"][0]["yanked_reason"] is None
    wheel = next(f for f in data["urls"] if f["packagetype"] == "bdist_wheel")
    assert set(wheel["digests"]) == {"md5", "sha256", "blake2b_256"}
    assert wheel["python_version"] == "py3" and wheel["upload_time_iso_8601"].endswith("Z")
    sdist = next(f for f in data["urls"] if f["packagetype"] == "sdist")
    assert sdist["python_version"] == "source" and sdist["core-metadata"] is False
    assert f"/packages/{wheel['digests']['blake2b_256'][:2]}/" in wheel["url"]

    assert client.get(f"/pypi/{DEMO_PRE}/json").json()["info"]["version"] == "1.0"
    future = client.get(f"/pypi/{DEMO_FUTURE}/json/").json()["info"]
    assert (future["version"], future["requires_python"]) == ("2.0", ">=3.99")
    empty = client.get(f"/pypi/{DEMO_EMPTY}/json").json()
    assert empty["releases"] == {"1.0": []} and empty["urls"] == []
    assert client.get(f"/pypi/{DEMO_NOTHING}/json").status_code == 404
    one = client.get(f"/pypi/{DEMO_LIB}/1.0/json").json()
    assert "releases" not in one and one["info"]["version"] == "1.0"
    assert client.get(f"/pypi/{DEMO_LIB}/9.9/json").status_code == 404


# -- XML-RPC, serials and mutations ----------------------------------------------------------


def test_xmlrpc_methods_and_paging(fresh: FakePyPI) -> None:
    fresh.index.changelog_page_size = 7
    with rpc(fresh) as proxy:
        last = proxy.changelog_last_serial()
        assert isinstance(last, int) and last == fresh.index.last_serial
        collected: list[list[object]] = []
        since = 0
        while True:
            page = proxy.changelog_since_serial(since)
            assert isinstance(page, list) and len(page) <= 7
            if not page:
                break
            collected.extend(page)
            since = int(page[-1][4])
        assert [row[4] for row in collected] == list(range(1, last + 1))
        assert collected[0][3] == "create" and collected[0][1] is None
        assert all(isinstance(row[2], int) for row in collected)
        assert proxy.list_packages_with_serial() == fresh.index.serials()
        with pytest.raises(xmlrpc.client.Fault) as fault:
            proxy.package_releases("demo-app")
        assert fault.value.faultCode == -32500
    assert fresh.stats["xmlrpc:changelog_since_serial"] >= 2
    with httpx.Client() as c:
        response = c.post(fresh.url + "/RPC2", content=b"<x/>", headers={"Content-Type": "a/b"})
        assert response.status_code == 415


def test_every_mutation_writes_pypi_action_strings(fresh: FakePyPI) -> None:
    index = fresh.index
    start = index.last_serial
    assert index.create_project("New_Thing") == "new-thing"
    files = index.add_release(
        "new-thing", "1.0", requires_dist=("demo-lib>=1.0",), requires_python=">=3.8",
        kinds=("wheel", "sdist", "cp311-cp311-manylinux_2_17_x86_64"),
    )  # fmt: skip
    assert files == [
        "new_thing-1.0-py3-none-any.whl",
        "new_thing-1.0.tar.gz",
        "new_thing-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    ]
    assert index.add_file("New.Thing", "1.0", "cp312-cp312-win_amd64").endswith("win_amd64.whl")
    index.yank("new-thing", "1.0", reason="broken")
    index.unyank("new-thing", "1.0")
    index.yank("new-thing", "1.0")
    index.remove_file("new-thing", "new_thing-1.0.tar.gz")
    index.remove_release("new-thing", "1.0")
    index.remove_project("new-thing")
    rows = rows_since(fresh, start)
    assert [row[4] for row in rows] == list(range(start + 1, index.last_serial + 1))
    assert {row[0] for row in rows} == {"New_Thing"}
    assert [(row[1], row[3]) for row in rows] == [
        (None, "create"),
        (None, "add Owner maintainer-of-new-thing"),
        ("1.0", "new release"),
        ("1.0", "add py3 file new_thing-1.0-py3-none-any.whl"),
        ("1.0", "add source file new_thing-1.0.tar.gz"),
        ("1.0", "add cp311 file new_thing-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        ("1.0", "add cp312 file new_thing-1.0-cp312-cp312-win_amd64.whl"),
        ("1.0", "yank release"),
        ("1.0", "unyank release"),
        ("1.0", "yank release"),
        ("1.0", "remove file new_thing-1.0.tar.gz"),
        ("1.0", "remove release"),
        (None, "remove project"),
    ]
    assert all(isinstance(r[2], int) and r[2] > 1577836800 for r in rows)
    with pytest.raises(ChangeRejected):
        index.yank("new-thing", "1.0")


def test_mutations_show_on_pages_and_files_404_when_gone(fresh: FakePyPI) -> None:
    index = fresh.index
    with httpx.Client(base_url=fresh.url) as c:
        before = simple_json(c, DEMO_APP)
        old_url = str(files_of(before)[0]["url"])
        index.add_release(DEMO_APP, "2.0", kinds=("wheel",))
        index.yank(DEMO_APP, "1.1", reason="bad")
        after = simple_json(c, DEMO_APP)
        meta = after["meta"]
        assert isinstance(meta, dict) and meta["_last-serial"] == index.last_serial
        assert after["versions"] == ["1.0", "1.1", "2.0"]
        yanks = {f["filename"]: f["yanked"] for f in files_of(after)}
        assert yanks["demo_app-1.1.tar.gz"] == "bad"
        assert c.get(f"/pypi/{DEMO_APP}/json").json()["info"]["version"] == "2.0"
        root = c.get("/simple/", headers={"Accept": JSON}).json()
        assert {"name": "Demo_App", "_last-serial": index.last_serial} in root["projects"]

        index.remove_file(DEMO_APP, "demo_app-1.0-py3-none-any.whl")
        assert c.get(old_url).status_code == 404
        survivor = str(files_of(simple_json(c, DEMO_APP))[0]["url"])
        assert c.get(survivor).status_code == 200
        index.remove_project(DEMO_APP)
        assert c.get(f"/simple/{DEMO_APP}/").status_code == 404
        assert c.get(f"/pypi/{DEMO_APP}/json").status_code == 404
        assert c.get(survivor).status_code == 404
        assert DEMO_APP not in index.project_names()


def test_random_changes_are_reproducible_and_spare_anchors() -> None:
    first, second = generate_corpus(40, 3), generate_corpus(40, 3)
    touched = first.random_changes(60, seed=11)
    assert touched == second.random_changes(60, seed=11)
    assert touched and not set(touched) & set(ANCHORS)
    assert first.last_serial == second.last_serial > generate_corpus(40, 3).last_serial
    assert first.changelog_since(0, 10**6) == second.changelog_since(0, 10**6)
    assert first.random_changes(5) == second.random_changes(5)


# -- faults ----------------------------------------------------------------------------------


def wheel_url(upstream: FakePyPI) -> str:
    filename = upstream.index.filenames(DEMO_APP)[0]
    return f"{upstream.url}/{upstream.index.file_path(filename)}"


def test_error_reset_and_stall_faults(fresh: FakePyPI) -> None:
    fresh.faults.seed(1)
    with httpx.Client(base_url=fresh.url, timeout=10) as c:
        fresh.faults.error_rate = 1.0
        statuses = {c.get("/simple/").status_code for _ in range(12)}
        assert statuses <= {500, 502, 503} and len(statuses) > 1
        fresh.faults.error_rate = 0.0
        fresh.faults.reset_rate = 1.0
        with pytest.raises(httpx.TransportError):
            c.get(f"/simple/{DEMO_APP}/")
        fresh.faults.reset_rate = 0.0
        fresh.faults.stall_rate, fresh.faults.stall_seconds = 1.0, 0.2
        started = time.monotonic()
        assert c.get(wheel_url(fresh)).status_code == 200
        assert time.monotonic() - started >= 0.4  # before the headers and halfway through
        fresh.faults.stall_rate = 0.0
        assert c.get("/simple/").status_code == 200


def test_truncate_and_corrupt_faults(fresh: FakePyPI) -> None:
    url = wheel_url(fresh)
    with httpx.Client(timeout=10) as c:
        good = c.get(url).content
        fresh.faults.truncate_rate = 1.0
        with pytest.raises(httpx.RemoteProtocolError):
            c.get(url)
        fresh.faults.truncate_rate = 0.0
        fresh.faults.corrupt_rate = 1.0
        bad = c.get(url).content
        assert len(bad) == len(good) and bad != good
        fresh.faults.corrupt_rate = 0.0
        fresh.faults.corrupt_files.add(url.rsplit("/", 1)[1])
        assert c.get(url).content != good
        fresh.faults.corrupt_files.clear()
        assert c.get(url).content == good


def test_stale_fault_serves_previous_page(fresh: FakePyPI) -> None:
    with httpx.Client(base_url=fresh.url, timeout=10) as c:
        old = c.get(f"/simple/{DEMO_LIB}/", headers={"Accept": JSON})
        old_serial = int(old.headers["X-PyPI-Last-Serial"])
        fresh.index.add_release(DEMO_LIB, "3.0")
        current = c.get(f"/simple/{DEMO_LIB}/", headers={"Accept": JSON})
        assert int(current.headers["X-PyPI-Last-Serial"]) == fresh.index.last_serial
        fresh.faults.stale_rate = 1.0
        stale = c.get(f"/simple/{DEMO_LIB}/", headers={"Accept": JSON})
        assert stale.content == old.content
        assert int(stale.headers["X-PyPI-Last-Serial"]) == old_serial
        never_seen = c.get(f"/pypi/{DEMO_LIB}/json")
        serial = fresh.index.project_serial(DEMO_LIB)
        assert serial is not None
        assert int(never_seen.headers["X-PyPI-Last-Serial"]) == serial - 1
        assert never_seen.json()["last_serial"] == serial - 1


def test_malformed_and_ratelimit_faults(fresh: FakePyPI) -> None:
    fresh.faults.malformed_rate = 1.0
    with httpx.Client(base_url=fresh.url, timeout=10) as c:
        response = c.get(f"/simple/{DEMO_APP}/", headers={"Accept": JSON})
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            response.json()
        with pytest.raises(json.JSONDecodeError):
            c.get(f"/pypi/{DEMO_APP}/json").json()
    with rpc(fresh) as proxy, pytest.raises(ExpatError):
        proxy.changelog_last_serial()
    fresh.faults.malformed_rate = 0.0
    fresh.faults.xmlrpc_ratelimit_rate, fresh.faults.ratelimit_seconds = 1.0, 7
    with rpc(fresh) as proxy, pytest.raises(xmlrpc.client.Fault) as fault:
        proxy.changelog_last_serial()
    assert fault.value.faultCode == -32500
    assert fault.value.faultString == (
        "HTTPTooManyRequests: The action could not be performed because there were too many "
        "requests by the client. Limit may reset in 7 seconds."
    )


def test_targeted_project_faults(fresh: FakePyPI) -> None:
    with httpx.Client(base_url=fresh.url, timeout=10) as c:
        fresh.faults.broken_projects.add("Demo_App")
        assert c.get(f"/simple/{DEMO_APP}/").status_code == 500
        assert c.get(f"/pypi/{DEMO_APP}/json").status_code == 500
        assert c.get(f"/simple/{DEMO_LIB}/").status_code == 200
        fresh.faults.broken_projects.clear()
        fresh.faults.gone_midrun.add(DEMO_LIB)
        assert c.get(f"/simple/{DEMO_LIB}/").status_code == 404
        assert c.get(f"/pypi/{DEMO_LIB}/json").status_code == 404
        assert "demo-lib" in {
            p["name"] for p in c.get("/simple/?format=" + JSON).json()["projects"]
        }


def test_scope_and_no_ranges(fresh: FakePyPI) -> None:
    fresh.faults.update({"error_rate": "1", "scope": "file,metadata", "no_ranges": "true"})
    url = wheel_url(fresh)
    with httpx.Client(base_url=fresh.url, timeout=10) as c:
        assert c.get(f"/simple/{DEMO_APP}/").status_code == 200
        assert c.get(url).status_code in {500, 502, 503}
        fresh.faults.error_rate = 0.0
        whole = c.get(url, headers={"Range": "bytes=5-"})
        assert whole.status_code == 200 and "Accept-Ranges" not in whole.headers
    assert fresh.faults.as_dict()["scope"] == ["file", "metadata"]


def test_faults_update_validates() -> None:
    faults = Faults()
    faults.update({"error_rate": "0.25", "broken_projects": "a,b", "seed": "4"})
    assert faults.error_rate == 0.25 and faults.broken_projects == {"a", "b"}
    for bad in ({"error_rate": "2"}, {"nope": 1}, {"scope": "everything"}, {"no_ranges": "x"}):
        with pytest.raises(ValueError):
            faults.update(bad)
    faults.clear()
    assert faults.error_rate == 0.0 and faults.broken_projects == set()


def test_stop_is_prompt_even_with_a_stalled_request() -> None:
    upstream = FakePyPI.start(projects=0)
    upstream.faults.stall_rate, upstream.faults.stall_seconds = 1.0, 60
    with httpx.Client(timeout=10) as c:
        outcome: list[object] = []

        def fetch() -> None:
            try:
                outcome.append(c.get(upstream.url + "/simple/").status_code)
            except httpx.TransportError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=fetch)
        thread.start()
        time.sleep(0.2)
        started = time.monotonic()
        upstream.stop()
        thread.join(5)
        assert time.monotonic() - started < 3 and outcome


# -- admin and command line ------------------------------------------------------------------


def test_admin_endpoint(fresh: FakePyPI) -> None:
    with httpx.Client(base_url=fresh.url, timeout=10) as c:
        c.get("/simple/")
        done = c.post(
            "/_fake/change",
            json={"op": "add_release", "name": "demo-core", "version": "9.0", "kinds": ["sdist"]},
        )
        assert done.status_code == 200
        assert done.json() == {
            "op": "add_release",
            "result": ["demo_core-9.0.tar.gz"],
            "last_serial": fresh.index.last_serial,
        }
        assert c.post("/_fake/change", json={"op": "explode"}).status_code == 400
        assert c.post("/_fake/change", json={"op": "unyank", "name": "x"}).status_code == 400
        assert c.post("/_fake/faults", json={"error_rate": 0.5}).json()["error_rate"] == 0.5
        assert fresh.faults.error_rate == 0.5
        assert c.post("/_fake/faults", json={"bogus": 1}).status_code == 400
        assert c.get("/_fake/stats").json() == {"simple-root": 1}
        assert fresh.stats.snapshot() == {"simple-root": 1}


def test_cli_refuses_non_loopback_and_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["serve", "--bind", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert cli_main(["serve", "--fault", "error_rate=7"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert cli_main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fakepypi: error:") and err.count("\n") == 1
    with pytest.raises(NotLoopback):
        FakePyPI.start(host="192.0.2.1")


def test_cli_serve_change_faults_stats(capsys: pytest.CaptureFixture[str]) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "fullmirror.fakepypi", "serve", "--port", "0", "--projects", "15",
         "--fault", "stall_seconds=1", "--page-size", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fake PyPI serving 15 projects at http://127.0.0.1:")
        url = line.split(" at ")[1].split()[0]
        serial = int(line.rsplit("serial ", 1)[1].rstrip(")\n"))
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.get(f"/simple/{DEMO_APP}/").status_code == 200
        assert cli_main(["change", "--url", url, "add_release", "demo-core", "5.0",
                         "--kind", "wheel", "--requires-dist", "demo-utils"]) == 0  # fmt: skip
        answer = json.loads(capsys.readouterr().out)
        assert answer["result"] == ["demo_core-5.0-py3-none-any.whl"]
        assert answer["last_serial"] == serial + 2
        assert cli_main(["change", "--url", url, "yank", "demo-core", "5.0", "--reason", "x"]) == 0
        assert json.loads(capsys.readouterr().out)["last_serial"] == serial + 3
        assert cli_main(["change", "--url", url, "remove_project", "nope"]) == 1
        assert "no project 'nope'" in capsys.readouterr().err
        assert cli_main(["faults", "--url", url, "stall_rate=0", "corrupt_files=a.whl,b.whl"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["stall_seconds"] == 1.0 and shown["corrupt_files"] == ["a.whl", "b.whl"]
        assert cli_main(["faults", "--url", url, "error_rate=2"]) == 2
        assert "between 0 and 1" in capsys.readouterr().err
        assert cli_main(["stats", "--url", url]) == 0
        assert json.loads(capsys.readouterr().out) == {"simple-project": 1}
        with xmlrpc.client.ServerProxy(url + "/pypi") as proxy:
            rows = proxy.changelog_since_serial(0)
            assert isinstance(rows, list) and len(rows) == 5
    finally:
        process.terminate()
        assert process.wait(10) == 0
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


# -- real clients ----------------------------------------------------------------------------


@pytest.mark.clients
def test_uv_and_pip_install_from_the_fake_index(up: FakePyPI, tmp_path: Path) -> None:
    index_url = f"{up.url}/simple/"
    bindir = Path(sys.executable).parent
    uv = bindir / "uv"
    if not uv.exists():
        pytest.skip("uv is not installed next to this Python")
    uv_run = subprocess.run(
        [str(uv), "pip", "install", "--no-cache", "--python", sys.executable, "--target",
         str(tmp_path / "uv"), "--index-url", index_url, "demo-app[fast]", "demo-future"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert uv_run.returncode == 0, uv_run.stderr
    installed = {p.name for p in (tmp_path / "uv").iterdir()}
    assert {"demo_app", "demo_lib", "demo_core", "demo_utils", "demo_speedups"} <= installed
    assert "demo_never" not in installed and "demo_future-1.0.dist-info" in installed
    pip_run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
         "--target", str(tmp_path / "pip"), "--index-url", index_url, "demo-app"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert pip_run.returncode == 0, pip_run.stderr
    assert (tmp_path / "pip" / "demo_lib-1.2.dist-info").is_dir()
