"""The embedded server: PEP 691 negotiation, redirects, ranges, safety and the access log.

Every HTTP test talks to a real server on 127.0.0.1 (port 0) over a hand-built web/ tree, so
each expected body is a literal written below. Traversal attempts go through http.client,
because httpx would normalize ``..`` away before sending.
"""

from __future__ import annotations

import gzip
import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import run_cli, write_config
from fullmirror.errors import FullmirrorError, ServeError
from fullmirror.fakepypi import FakePyPI
from fullmirror.negotiation import (
    RangeNotSatisfiable,
    accepts_gzip,
    decode_path,
    negotiate,
    parse_accept,
    parse_range,
    query_param,
)
from fullmirror.serve import MirrorServer

JSON = "application/vnd.pypi.simple.v1+json"
V1HTML = "application/vnd.pypi.simple.v1+html"
HTML = "text/html"
ALL = (JSON, V1HTML, HTML)
PIP = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"  # noqa: E501
UV = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"  # noqa: E501
WHEEL = "packages/ab/cd/0123456789/foo_bar-1.0-py3-none-any.whl"
WHEEL_BYTES = bytes(range(256)) * 4

Served = tuple[MirrorServer, list[str]]


def _discard(line: str) -> None:
    pass


# -- the pure functions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "fmt", "available", "expected"),
    [
        (PIP, None, ALL, JSON),
        (UV, None, ALL, JSON),
        (PIP, None, (HTML, V1HTML), V1HTML),
        (UV, None, (HTML,), HTML),
        (None, None, ALL, HTML),
        ("", None, ALL, HTML),
        (None, None, (JSON,), JSON),
        ("*/*", None, ALL, HTML),
        ("*/*", None, (JSON, V1HTML), JSON),
        ("application/*", None, ALL, JSON),
        ("text/*", None, (JSON,), None),
        ("text/html", None, ALL, HTML),
        ("TEXT/HTML;charset=utf-8", None, ALL, HTML),
        ("application/vnd.pypi.simple.latest+json", None, ALL, JSON),
        ("application/vnd.pypi.simple.latest+html", None, ALL, V1HTML),
        (f"{V1HTML}, {JSON}", None, ALL, JSON),  # equal q: JSON first, order is meaningless
        (f"{JSON};q=0.5, {V1HTML}", None, ALL, V1HTML),
        (f"{JSON};q=0, */*", None, ALL, HTML),
        (f"{JSON};q=0, */*", None, (JSON,), None),  # the named q=0 beats the wildcard
        (f"{JSON};q=0", None, ALL, None),
        ("text/html;q=0.3, */*;q=0.9", None, ALL, JSON),
        ("text/html, */*;q=0.1", None, (JSON,), JSON),
        ("image/png", None, ALL, None),
        (f"{JSON};q=nope, text/html", None, ALL, HTML),  # a malformed element is dropped
        ("garbage, ,;q=1", None, ALL, HTML),  # nothing valid: the no-Accept default
        (PIP, HTML, ALL, HTML),  # ?format= overrides Accept
        ("text/html", JSON, ALL, JSON),
        (None, "application/vnd.pypi.simple.latest+json", ALL, JSON),
        (None, JSON, (HTML,), None),
        (PIP, "", ALL, JSON),  # an empty ?format= is ignored
    ],
)
def test_negotiate_table(
    accept: str | None, fmt: str | None, available: tuple[str, ...], expected: str | None
) -> None:
    assert negotiate(accept, fmt, available) == expected


def test_negotiate_ignores_unknown_offers() -> None:
    assert negotiate("*/*", None, ("application/json",)) is None


def test_parse_accept_reads_q_and_drops_junk() -> None:
    assert parse_accept("a/b;q=0.5, c/d, nonsense, e/f;q=2, g/h; level=1; Q=0") == [
        ("a/b", 0.5),
        ("c/d", 1.0),
        ("g/h", 0.0),
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("gzip, deflate, zstd", True),
        ("deflate, br", False),
        ("GZIP;q=0.5", True),
        ("gzip;q=0, *", False),
        ("*", True),
        ("identity, *;q=0", False),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=90-500", (90, 99)),
        ("BYTES=1-1", (1, 1)),
        ("bytes=5-1", None),  # invalid: ignored, the whole file goes out
        ("bytes=0-1,5-6", None),  # several ranges: ignored too
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=" + "9" * 5000 + "-", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-1", 0)]
)
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_decode_path_and_query() -> None:
    assert decode_path("/simple/foo/") == ["simple", "foo", ""]
    assert decode_path("/") == [""]
    assert decode_path("/a%20b") == ["a b"]
    for bad in ("/a/../b", "/%2e%2e/x", "/a%2fb", "/a%5cb", "/a%00", "//x", "/.hidden", "/%ff"):
        assert decode_path(bad) is None, bad
    assert query_param("format=application/vnd.pypi.simple.v1+json", "format") == JSON
    assert query_param("x=1&format=text%2Fhtml", "format") == HTML
    assert query_param("formats=1", "format") is None


# -- over HTTP ------------------------------------------------------------------------------


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One tree and one server for the module: nothing below writes to the tree, and a server
    # per test would spend most of the run waiting for shutdown's poll.
    tmp_path = tmp_path_factory.mktemp("serve")
    web = tmp_path / "web"
    for folder in ("simple", "simple/foo-bar"):
        _write(web / folder / "index.html", f"html {folder}")
        _write(web / folder / "index.v1_html", f"v1html {folder}")
        _write(web / folder / "index.v1_json", f'{{"page": "{folder}"}}')
    _write(web / "simple/jsononly/index.v1_json", '{"page": "jsononly"}')
    _write(web / "simple/empty/.index.html.part", "half a page")
    _write(web / WHEEL, WHEEL_BYTES)
    _write(web / (WHEEL + ".metadata"), "Metadata-Version: 2.1\nName: foo-bar\n")
    _write(web / "packages/ab/cd/0123456789/.foo_bar-2.0.tar.gz.part", "partial")
    _write(web / "packages/ab/cd/0123456789/foo_bar-3.0.tar.gz.part", "partial")
    _write(web / "pypi/foo-bar/json", '{"info": {"name": "foo-bar"}}')
    _write(web / "json/foo-bar", '{"info": {"name": "foo-bar"}}')
    _write(web / "last-modified", "20240102T030405\n")
    _write(tmp_path / "secret.txt", "TOP SECRET")
    _write(tmp_path / "outside/index.html", "TOP SECRET page")
    (web / "packages/escape").symlink_to(tmp_path)
    (web / "simple/outside").symlink_to(tmp_path / "outside")
    return web


@pytest.fixture(scope="module")
def server(web: Path) -> Iterator[Served]:
    lines: list[str] = []
    with MirrorServer(web, port=0, log=lines.append) as srv:
        yield srv, lines


@pytest.fixture
def client(server: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0].url, timeout=5) as c:
        yield c


def _raw(srv: MirrorServer, target: str, method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("headers", "path", "ctype", "body"),
    [
        ({"Accept": PIP}, "/simple/foo-bar/", JSON, '{"page": "simple/foo-bar"}'),
        ({"Accept": UV}, "/simple/foo-bar/", JSON, '{"page": "simple/foo-bar"}'),
        ({"Accept": PIP}, "/simple/", JSON, '{"page": "simple"}'),
        ({}, "/simple/foo-bar/", "text/html; charset=utf-8", "html simple/foo-bar"),
        ({"Accept": "*/*"}, "/simple/", "text/html; charset=utf-8", "html simple"),
        ({"Accept": V1HTML}, "/simple/foo-bar/", V1HTML, "v1html simple/foo-bar"),
        (
            {"Accept": "application/vnd.pypi.simple.latest+json"},
            "/simple/foo-bar/",
            JSON,
            '{"page": "simple/foo-bar"}',
        ),
        ({"Accept": f"{JSON};q=0, {V1HTML}"}, "/simple/foo-bar/", V1HTML, "v1html simple/foo-bar"),
        (
            {"Accept": PIP},
            "/simple/foo-bar/?format=text/html",
            "text/html; charset=utf-8",
            "html simple/foo-bar",
        ),
        ({}, f"/simple/foo-bar/?format={JSON}", JSON, '{"page": "simple/foo-bar"}'),
        ({}, "/simple/jsononly/", JSON, '{"page": "jsononly"}'),
        ({"Accept": PIP}, "/simple/jsononly/", JSON, '{"page": "jsononly"}'),
    ],
)
def test_negotiated_pages(
    client: httpx.Client, headers: dict[str, str], path: str, ctype: str, body: str
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == ctype
    assert response.text == body
    assert "Accept" in response.headers["vary"]
    assert response.headers["cache-control"] == "max-age=60"
    assert (
        "content-encoding" not in response.headers or response.headers["content-encoding"] == "gzip"
    )


def test_406_lists_what_exists(client: httpx.Client) -> None:
    response = client.get("/simple/jsononly/", headers={"Accept": "text/html"})
    assert response.status_code == 406
    assert JSON in response.text and "text/html" not in response.text.split(":", 1)[1]
    assert client.get("/simple/foo-bar/?format=image/png").status_code == 406
    assert response.headers["vary"] == "Accept"


def test_gzip_pages_not_packages(client: httpx.Client) -> None:
    response = client.get("/simple/foo-bar/", headers={"Accept": PIP, "Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept, Accept-Encoding"
    assert response.text == '{"page": "simple/foo-bar"}'  # httpx decoded it
    raw = client.get("/pypi/foo-bar/json", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    package = client.get(f"/{WHEEL}", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in package.headers
    assert package.content == WHEEL_BYTES
    plain = client.get("/simple/foo-bar/", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with client.stream("GET", "/simple/", headers={"Accept-Encoding": "gzip"}) as r:
        assert gzip.decompress(b"".join(r.iter_raw())) == b"html simple"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple", "/simple/"),
        ("/simple?format=text/html", "/simple/?format=text/html"),
        ("/simple/foo-bar", "/simple/foo-bar/"),
        ("/simple/Foo_Bar/", "/simple/foo-bar/"),
        ("/simple/FOO.bar", "/simple/foo-bar/"),
        ("/simple/foo__bar/?format=text/html", "/simple/foo-bar/?format=text/html"),
        ("/simple/Not.Here/", "/simple/not-here/"),
        ("/pypi/Foo_Bar/json", "/pypi/foo-bar/json"),
    ],
)
def test_redirects_are_relative(client: httpx.Client, path: str, location: str) -> None:
    response = client.get(path)
    assert response.status_code == 301
    assert response.headers["location"] == location


def test_not_mirrored_is_404(client: httpx.Client) -> None:
    response = client.get("/simple/not-here/", headers={"Accept": PIP})
    assert response.status_code == 404
    assert response.headers["vary"] == "Accept"
    assert client.get("/simple/empty/").status_code == 404  # only a temp file inside
    assert client.get("/simple/-bad-/").status_code == 404


def test_fallback_redirects_only_missing_projects(web: Path) -> None:
    with (
        MirrorServer(
            web, port=0, fallback_url="https://index.invalid/simple/", log=_discard
        ) as srv,
        httpx.Client(base_url=srv.url) as client,
    ):
        missing = client.get("/simple/not-here/?format=text/html")
        assert missing.status_code == 302
        assert (
            missing.headers["location"] == "https://index.invalid/simple/not-here/?format=text/html"
        )
        assert client.get("/simple/foo-bar/").status_code == 200
        assert client.get("/simple/").status_code == 200
        assert client.get("/simple/Not_Here/").status_code == 301  # normalize first
        assert client.get("/packages/zz/none.whl").status_code == 404


def test_root_of_an_empty_tree_is_404_not_fallback(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    with (
        MirrorServer(
            tmp_path / "web", port=0, fallback_url="http://x.invalid/simple", log=_discard
        ) as srv,
        httpx.Client(base_url=srv.url) as client,
    ):
        assert client.get("/simple/").status_code == 404


def test_packages_and_ranges(client: httpx.Client) -> None:
    whole = client.get(f"/{WHEEL}")
    assert whole.status_code == 200
    assert whole.content == WHEEL_BYTES
    assert whole.headers["content-type"] == "application/octet-stream"
    assert whole.headers["content-length"] == "1024"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["cache-control"] == "max-age=31536000, immutable"
    assert "last-modified" in whole.headers
    part = client.get(f"/{WHEEL}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == WHEEL_BYTES[10:20]
    assert part.headers["content-range"] == "bytes 10-19/1024"
    tail = client.get(f"/{WHEEL}", headers={"Range": "bytes=-4"})
    assert (tail.status_code, tail.content) == (206, WHEEL_BYTES[-4:])
    open_ended = client.get(f"/{WHEEL}", headers={"Range": "bytes=1000-"})
    assert open_ended.content == WHEEL_BYTES[1000:]
    bad = client.get(f"/{WHEEL}", headers={"Range": "bytes=2000-"})
    assert bad.status_code == 416
    assert bad.headers["content-range"] == "bytes */1024"
    stale = client.get(f"/{WHEEL}", headers={"Range": "bytes=0-1", "If-Range": "Mon, 01 Jan 2001"})
    assert (stale.status_code, len(stale.content)) == (200, 1024)
    metadata = client.get(f"/{WHEEL}.metadata")
    assert metadata.text.startswith("Metadata-Version")


def test_head_has_headers_and_no_body(client: httpx.Client, server: Served) -> None:
    for path, headers in (
        (f"/{WHEEL}", {}),
        ("/simple/foo-bar/", {"Accept": PIP}),
        ("/simple/foo-bar/", {"Accept-Encoding": "gzip"}),
    ):
        response = client.head(path, headers=headers)
        assert response.status_code == 200
        assert response.content == b""
        assert int(response.headers["content-length"]) > 0
    assert client.head(f"/{WHEEL}").headers["content-length"] == "1024"
    assert _raw(server[0], "/simple/foo-bar/", "HEAD") == (200, b"")


def test_not_modified(client: httpx.Client) -> None:
    first = client.get(f"/{WHEEL}")
    again = client.get(f"/{WHEEL}", headers={"If-Modified-Since": first.headers["last-modified"]})
    assert again.status_code == 304
    assert again.content == b""


def test_json_api_and_text_files(client: httpx.Client) -> None:
    for path in ("/pypi/foo-bar/json", "/pypi/foo-bar/json/", "/pypi/foo-bar/", "/json/foo-bar"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"info": {"name": "foo-bar"}}
    assert client.get("/pypi/nope/json").status_code == 404
    assert client.get("/last-modified").text == "20240102T030405\n"
    assert client.get("/").status_code == 200
    assert client.get("/packages/").status_code == 404  # no directory listings
    assert client.get("/simple/foo-bar/index.v1_json").status_code == 404
    assert client.get("/elsewhere").status_code == 404


@pytest.mark.parametrize(
    "target",
    [
        "/packages/../../secret.txt",
        "/packages/../../../../../../etc/passwd",
        "/packages/%2e%2e/%2e%2e/secret.txt",
        "/packages/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/packages/..%2f..%2fsecret.txt",
        "/packages/ab%00/x",
        "/packages/escape/secret.txt",  # a symlink out of web/
        "/simple/outside/",
        "/packages/ab/cd/0123456789/.foo_bar-2.0.tar.gz.part",
        "/packages/ab/cd/0123456789/foo_bar-3.0.tar.gz.part",
        "/packages/ab/cd/0123456789/%2efoo_bar-2.0.tar.gz.part",
        "/json/..%5c..%5csecret.txt",
        "//etc/passwd",
        "http://example.invalid/etc/passwd",
    ],
)
def test_nothing_outside_web(server: Served, target: str) -> None:
    status, body = _raw(server[0], target)
    assert status == 404, target
    assert b"SECRET" not in body and b"partial" not in body


def test_only_get_and_head(server: Served, client: httpx.Client) -> None:
    response = client.post("/simple/")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert _raw(server[0], "/simple/", "BREW")[0] == 405


def test_access_log(web: Path) -> None:
    lines: list[str] = []
    with (
        MirrorServer(web, port=0, log=lines.append) as srv,
        httpx.Client(base_url=srv.url) as client,
    ):
        client.get("/simple/foo-bar/", headers={"Accept": PIP, "Accept-Encoding": "identity"})
        client.get("/nowhere")
        _raw(srv, '/a"b')
    assert len(lines) == 3
    first = lines[0].split(" ")
    assert first[0] == "127.0.0.1"
    assert " ".join(first[1:4]) == '"GET /simple/foo-bar/ HTTP/1.1"'
    assert first[4:7] == ["200", "26", JSON]
    assert first[7].endswith("ms")
    assert " 404 " in lines[1] and "text/plain" in lines[1]
    assert '/a\\"b' in lines[2]


def test_url_and_port_zero(web: Path) -> None:
    with MirrorServer(web, bind="127.0.0.1", port=0, log=_discard) as srv:
        assert srv.port > 0
        assert srv.url == f"http://127.0.0.1:{srv.port}"
    try:
        srv6 = MirrorServer(web, bind="::1", port=0, log=_discard)
    except ServeError:
        pytest.skip("no IPv6 loopback here")
    with srv6:
        assert srv6.url == f"http://[::1]:{srv6.port}"


def test_port_in_use_is_a_serve_error(web: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError) as caught:
            MirrorServer(web, port=port, log=_discard)
    error = caught.value
    assert isinstance(error, FullmirrorError)
    assert (error.bind, error.port) == ("127.0.0.1", port)
    assert str(error) == (
        f"cannot listen on 127.0.0.1:{port}: address already in use; "
        "stop the other server or pick another --port"
    )


def test_bad_address_missing_tree_and_shutdown_twice(web: Path, tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1: never an address of this machine.
    with pytest.raises(ServeError, match=r"no such address|unknown host"):
        MirrorServer(web, bind="192.0.2.1", port=0, log=_discard)
    with pytest.raises(ServeError, match="not a directory"):
        MirrorServer(tmp_path / "nope", port=0)
    srv = MirrorServer(web, port=0, log=_discard)
    srv.shutdown()  # never started: must not hang
    srv.shutdown()


def test_serves_a_real_mirror(tmp_path: Path, upstream: FakePyPI) -> None:
    result = run_cli(write_config(tmp_path, upstream.url), "mirror")
    assert result.returncode == 0, result.stderr
    web = tmp_path / "mirror" / "web"
    with MirrorServer(web, port=0, log=_discard) as srv, httpx.Client(base_url=srv.url) as client:
        root = client.get("/simple/", headers={"Accept": UV})
        assert root.headers["content-type"] == JSON
        name = root.json()["projects"][0]["name"]
        page = client.get(f"/simple/{name}/", headers={"Accept": UV}, follow_redirects=True)
        assert page.status_code == 200
        file = page.json()["files"][0]
        url = httpx.URL(str(page.url)).join(file["url"])
        whole = client.get(url)
        assert whole.status_code == 200
        assert len(whole.content) == file["size"]
        download = client.get(url, headers={"Range": "bytes=0-3"})
        assert (download.status_code, download.content) == (206, whole.content[:4])
