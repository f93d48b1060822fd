"""Upstream documents in, typed values out: tables of literals, no network, no disk."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pytest
from packaging.utils import NormalizedName, canonicalize_name

from fullmirror.errors import MalformedResponse, UnsafeUpstreamData
from fullmirror.listings import parse_root_json
from fullmirror.models import (
    ChangelogEntry,
    CoreMetadata,
    Listing,
    MirroredFile,
    MirroredPage,
    ProjectPage,
    ReleaseFile,
)
from fullmirror.parse import (
    ParsedProject,
    check_filename,
    normalize_project_name,
    parse_changelog,
    parse_project_json,
)
from fullmirror.render import project_json

SHA = hashlib.sha256(b"wheel").hexdigest()
B2 = hashlib.blake2b(b"wheel", digest_size=32).hexdigest()
MD5 = hashlib.md5(b"wheel").hexdigest()
META_SHA = hashlib.sha256(b"METADATA").hexdigest()
PAGE_URL = "https://index.test/simple/demo/"
FILES_HOST = "https://files.test"
DEMO = NormalizedName("demo")
#: An override value meaning "leave this key out of the document".
_DROP = object()


def _doc(*files: dict[str, Any], **top: Any) -> bytes:
    document: dict[str, Any] = {"meta": {"api-version": "1.4", "_last-serial": 7}, "name": "demo"}
    document["files"] = list(files)
    document.update(top)
    return json.dumps(document).encode()


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": "demo-1.0-py3-none-any.whl",
        "url": f"{FILES_HOST}/packages/ab/cd/ef/demo-1.0-py3-none-any.whl",
        "hashes": {"sha256": SHA},
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not _DROP}


def _parse(body: bytes, header_serial: int | None = None) -> ParsedProject:
    return parse_project_json(body, project=DEMO, page_url=PAGE_URL, header_serial=header_serial)


def _one(**overrides: Any) -> ReleaseFile:
    parsed = _parse(_doc(_entry(**overrides)))
    assert parsed.rejected == ()
    (file,) = parsed.page.files
    return file


def _rejected(**overrides: Any) -> UnsafeUpstreamData:
    parsed = _parse(_doc(_entry(**overrides)))
    assert parsed.page.files == ()
    (exc,) = parsed.rejected
    return exc


# -- a PyPI-shaped page ---------------------------------------------------------------------

PYPI_PAGE = {
    "meta": {"api-version": "1.4", "_last-serial": 22406780},
    "name": "beautifulsoup4",
    "project-status": {"status": "active"},
    "versions": ["4.0.1", "4.12.3", "4.13.0b2"],
    "files": [
        {
            "filename": "beautifulsoup4-4.12.3-py3-none-any.whl",
            "url": f"{FILES_HOST}/packages/b1/fe/e8c6/beautifulsoup4-4.12.3-py3-none-any.whl",
            "hashes": {"sha256": SHA, "blake2b_256": B2},
            "requires-python": ">=3.6.0",
            "size": 147925,
            "upload-time": "2024-01-17T16:53:12.779164Z",
            "yanked": False,
            "core-metadata": {"sha256": META_SHA},
            "data-dist-info-metadata": {"sha256": META_SHA},
            "provenance": None,
        },
        {
            "filename": "beautifulsoup4-4.0.1.tar.gz",
            "url": f"{FILES_HOST}/packages/00/11/2233/beautifulsoup4-4.0.1.tar.gz",
            "hashes": {"sha256": SHA.upper(), "md5": MD5},
            "requires-python": None,
            "size": 51024,
            "upload-time": "2012-01-26T16:35:51Z",
            "yanked": "broken",
            "core-metadata": False,
            "data-dist-info-metadata": False,
        },
    ],
}

PYPI_EXPECTED = ProjectPage(
    name=NormalizedName("beautifulsoup4"),
    serial=22406780,
    files=(
        ReleaseFile(
            filename="beautifulsoup4-4.12.3-py3-none-any.whl",
            url=f"{FILES_HOST}/packages/b1/fe/e8c6/beautifulsoup4-4.12.3-py3-none-any.whl",
            hashes=(("blake2b_256", B2), ("sha256", SHA)),
            size=147925,
            upload_time="2024-01-17T16:53:12.779164Z",
            requires_python=">=3.6.0",
            core_metadata=CoreMetadata((("sha256", META_SHA),)),
        ),
        ReleaseFile(
            filename="beautifulsoup4-4.0.1.tar.gz",
            url=f"{FILES_HOST}/packages/00/11/2233/beautifulsoup4-4.0.1.tar.gz",
            hashes=(("md5", MD5), ("sha256", SHA)),
            size=51024,
            upload_time="2012-01-26T16:35:51Z",
            yanked=True,
            yanked_reason="broken",
        ),
    ),
    versions=("4.0.1", "4.12.3", "4.13.0b2"),
    status="active",
)


def test_pypi_page() -> None:
    parsed = parse_project_json(
        json.dumps(PYPI_PAGE).encode(),
        project=NormalizedName("beautifulsoup4"),
        page_url="https://index.test/simple/beautifulsoup4/",
        header_serial=None,
    )
    assert parsed == ParsedProject(PYPI_EXPECTED, ())


def test_header_serial_wins() -> None:
    assert _parse(_doc(), header_serial=99).page.serial == 99


@pytest.mark.parametrize(
    ("meta", "serial"),
    [
        ({"api-version": "1.0", "_last-serial": 5}, 5),
        ({"api-version": "1.0", "_last-serial": "123"}, 123),  # bandersnatch writes a string
        ({"api-version": "1.0"}, 0),
        ({}, 0),
    ],
)
def test_serial_from_meta(meta: dict[str, Any], serial: int) -> None:
    assert _parse(_doc(meta=meta)).page.serial == serial


@pytest.mark.parametrize("bad", ["abc", -1, True, 1.5, None, "", "1e5"])
def test_bad_meta_serial(bad: object) -> None:
    body = _doc(meta={"api-version": "1.0", "_last-serial": bad})
    with pytest.raises(MalformedResponse):
        _parse(body)
    assert _parse(body, header_serial=3).page.serial == 3  # not read when the header says it


def test_meta_absent_means_api_1_0() -> None:
    body = json.dumps({"files": [_entry()]}).encode()
    assert len(_parse(body).page.files) == 1


# -- round trip through fullmirror's own JSON -----------------------------------------------

MIRRORED = MirroredPage(
    name=NormalizedName("foo-bar"),
    display_name="Foo.Bar",
    serial=4242,
    files=(
        MirroredFile(
            filename="Foo_Bar-2.0-py3-none-any.whl",
            location=f"packages/{B2[:2]}/{B2[2:4]}/{B2[4:]}/Foo_Bar-2.0-py3-none-any.whl",
            hashes=(("blake2b_256", B2), ("sha256", SHA)),
            size=1234,
            upload_time="2025-01-02T03:04:05.678901Z",
            requires_python=">=3.9",
            metadata_hashes=(("sha256", META_SHA),),
        ),
        MirroredFile(
            filename="foo.bar-1.0+local.tar.gz",
            location="packages/aa/bb/cc/foo.bar-1.0+local.tar.gz",
            hashes=(("sha256", SHA),),
            size=10,
            yanked=True,
            yanked_reason="use 2.0",
            metadata_hashes=(),
        ),
        MirroredFile(
            filename="foo_bar-1.5.zip",
            location="https://elsewhere.test/files/foo_bar-1.5.zip",
            hashes=(("sha256", SHA),),
            size=None,
            yanked=True,
        ),
    ),
    versions=("1.0+local", "2.0", "1.5", "3.0"),
    status="deprecated",
    status_reason="use baz",
)


def test_round_trip_own_json() -> None:
    parsed = parse_project_json(
        project_json(MIRRORED).encode(),
        project=MIRRORED.name,
        page_url="http://host/simple/foo-bar/",
        header_serial=None,
    )
    assert parsed.rejected == ()
    page = parsed.page
    assert page.serial == 4242
    assert page.versions == ("1.0+local", "1.5", "2.0", "3.0")
    assert (page.status, page.status_reason) == ("deprecated", "use baz")
    by_name = {f.filename: f for f in page.files}
    assert set(by_name) == {f.filename for f in MIRRORED.files}
    for original in MIRRORED.files:
        got = by_name[original.filename]
        if original.is_local:
            assert got.url == "http://host/" + original.location
        else:
            assert got.url == original.location
        assert got.hashes == original.hashes
        assert got.size == original.size
        assert got.upload_time == original.upload_time
        assert got.requires_python == original.requires_python
        assert (got.yanked, got.yanked_reason) == (original.yanked, original.yanked_reason)
        expected_meta = (
            None if original.metadata_hashes is None else CoreMetadata(original.metadata_hashes)
        )
        assert got.core_metadata == expected_meta


# -- check_filename -------------------------------------------------------------------------

GOOD_FILENAMES = [
    ("foo-bar", "Foo_Bar-1.0-py3-none-any.whl"),
    ("foo-bar", "foo-bar-1.0.tar.gz"),
    ("foo-bar", "foo.bar-1.0.zip"),
    ("foo-bar", "foo_bar-1.0+local-cp312-cp312-manylinux_2_17_x86_64.whl"),
    ("foo", "foo-1!2.0-py3-none-any.whl"),
    ("foo", "foo-1.0.tar.bz2"),
    ("foo", "foo-1.0.tgz"),
    ("foo", "foo-1.0.tar"),
    ("foo", "foo-1.0-2.tar.gz"),  # legacy: parses as project "foo-1-0", version 2
    ("foo", "foo-2006p.tar.gz"),  # pre-PEP 440 version
    ("foo", "foo-1.0.win32.exe"),
    ("foo", "foo-1.0-py2.7.egg"),
    ("foo", "foo-1.0.linux-x86_64.msi"),
    ("foo", "foo-1.0<b>.tar.gz"),  # markup is the renderer's problem, not a path problem
    ("foo", "foo-1.0-" + "x" * (255 - len("foo-1.0-.tar.gz")) + ".tar.gz"),  # exactly 255
]


@pytest.mark.parametrize(("project", "filename"), GOOD_FILENAMES)
def test_good_filenames(project: str, filename: str) -> None:
    check_filename(filename, NormalizedName(project))


BAD_FILENAMES = [
    ("", "empty"),
    (".", "relative"),
    ("..", "relative"),
    ("foo/foo-1.0.tar.gz", "separator"),
    ("../foo-1.0.tar.gz", "separator"),
    ("foo-1.0/../../x.tar.gz", "separator"),
    ("..\\foo-1.0.tar.gz", "separator"),
    ("foo-1.0\\x.tar.gz", "separator"),
    ("foo-1.0\x00.tar.gz", "control"),
    ("foo-1.0\n.tar.gz", "control"),
    ("foo-1.0\r.tar.gz", "control"),
    ("foo-1.0\t.tar.gz", "control"),
    ("foo-1.0\x1b.tar.gz", "control"),
    ("foo-1.0\x7f.tar.gz", "control"),
    ("foo-1.0%2f.tar.gz", "percent-encoded"),
    ("foo-1.0%2F.tar.gz", "percent-encoded"),
    ("foo-1.0%5c.tar.gz", "percent-encoded"),
    ("foo-1.0%5C.tar.gz", "percent-encoded"),
    ("foo-1.0%2e%2e.tar.gz", "percent-encoded"),
    ("foo-1.0%2E%2e.tar.gz", "percent-encoded"),
    ("foo-1.0\udc80.tar.gz", "Unicode"),
    ("foo-1.0-" + "x" * (256 - len("foo-1.0-.tar.gz")) + ".tar.gz", "longer than"),
    ("foo-1.0-" + "é" * 130 + ".tar.gz", "longer than"),  # 260 bytes, fewer characters
    ("bar-1.0.tar.gz", "not a file of project"),
    ("bar-1.0-py3-none-any.whl", "not a file of project"),
    ("foo_bar-1.0-py3-none-any.whl", "not a file of project"),
    ("foo-bar-1.0.tar.gz", "not a file of project"),
    ("foobar-1.0.tar.gz", "not a file of project"),
    ("foobar-1.0.exe", "not a file of project"),
    ("foo.exe", "not a file of project"),
    (".htaccess", "not a file of project"),
    ("index.html", "not a file of project"),
]


@pytest.mark.parametrize(("filename", "reason"), BAD_FILENAMES)
def test_bad_filenames(filename: str, reason: str) -> None:
    with pytest.raises(UnsafeUpstreamData) as info:
        check_filename(filename, NormalizedName("foo"))
    assert info.value.what == "filename"
    assert reason in info.value.reason


def test_reported_value_is_truncated() -> None:
    with pytest.raises(UnsafeUpstreamData) as info:
        check_filename("x" * 100_000, NormalizedName("foo"))
    assert len(info.value.value) < 300


# -- URLs -----------------------------------------------------------------------------------

GOOD_URLS = [
    ("../../packages/ab/demo-1.0-py3-none-any.whl", "https://index.test/packages/ab/"),
    ("/packages/ab/demo-1.0-py3-none-any.whl", "https://index.test/packages/ab/"),
    ("//cdn.test/p/demo-1.0-py3-none-any.whl", "https://cdn.test/p/"),
    ("http://plain.test/p/demo-1.0-py3-none-any.whl", "http://plain.test/p/"),
    ("HTTPS://Up.Test/p/demo-1.0-py3-none-any.whl", "https://Up.Test/p/"),
    ("https://h.test/p/demo-1.0-py3-none-any.whl#sha256=00", "https://h.test/p/"),
    ("https://h.test:8443/p/demo-1.0-py3-none-any.whl?x=1", "https://h.test:8443/p/"),
]


@pytest.mark.parametrize(("url", "prefix"), GOOD_URLS)
def test_good_urls(url: str, prefix: str) -> None:
    got = _one(url=url).url
    assert got.startswith(prefix)
    assert "#" not in got


BAD_URLS = [
    "javascript:alert(1)",
    "file:///etc/passwd",
    "ftp://h.test/demo-1.0-py3-none-any.whl",
    "data:text/plain,hi",
    "mailto:a@b.test",
    "http:///nohost/demo-1.0-py3-none-any.whl",
    "http://[::1/demo-1.0-py3-none-any.whl",
    "https://h.test/a b/demo-1.0-py3-none-any.whl",
    "\thttps://evil.test/demo-1.0-py3-none-any.whl",
    " https://evil.test/demo-1.0-py3-none-any.whl",
    "https://h.test/x\n/demo-1.0-py3-none-any.whl",
    "https://h.test/\x00/demo-1.0-py3-none-any.whl",
    "https://h.test\\@evil.test/demo-1.0-py3-none-any.whl",
    "https://h.test/../../etc/demo-1.0-py3-none-any.whl",
    "https://h.test/%2e%2e/demo-1.0-py3-none-any.whl",
    "https://h.test/a%5c..%5cb/demo-1.0-py3-none-any.whl",
    "https://h.test/a%00b/demo-1.0-py3-none-any.whl",
    "https://h.test/\udc80/demo-1.0-py3-none-any.whl",
    "https://h.test/" + "a" * 9000 + "/demo-1.0-py3-none-any.whl",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_urls(url: str) -> None:
    assert _rejected(url=url).what == "url"


# -- hashes ---------------------------------------------------------------------------------

GOOD_HASHES = [
    ({"sha256": SHA}, (("sha256", SHA),)),
    ({"SHA256": SHA.upper()}, (("sha256", SHA),)),
    ({"sha256": SHA, "sha256x": "00"}, (("sha256", SHA),)),
    ({"sha256": SHA[:-1], "blake2b_256": B2}, (("blake2b_256", B2),)),
    ({"sha256": "z" * 64, "md5": MD5}, (("md5", MD5),)),
    ({"sha256": SHA, "SHA256": SHA}, (("sha256", SHA),)),
    ({"sha512": "ab" * 64}, (("sha512", "ab" * 64),)),
]


@pytest.mark.parametrize(("hashes", "expected"), GOOD_HASHES)
def test_hash_filtering(hashes: dict[str, Any], expected: tuple[tuple[str, str], ...]) -> None:
    assert _one(hashes=hashes).hashes == expected


BAD_HASHES: list[object] = [
    {},
    _DROP,
    {"sha256": SHA[:-2]},  # wrong length
    {"sha256": SHA + "00"},
    {"sha256": "g" * 64},  # not hex
    {"sha256": " " + SHA[1:]},
    {"sha256": 12},
    {"sha256": None},
    {"whirlpool": "ab" * 64},  # unknown algorithm only
    {"shake_128": "ab" * 16},
    {"sha256": SHA, "SHA256": B2},  # two spellings disagree
]


@pytest.mark.parametrize("hashes", BAD_HASHES)
def test_files_without_usable_hash_are_rejected(hashes: object) -> None:
    assert _rejected(hashes=hashes).what == "hashes"


def test_hashes_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        _parse(_doc(_entry(hashes=[SHA])))


# -- per-file fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yanked", "expected"),
    [
        (_DROP, (False, None)),
        (False, (False, None)),
        (True, (True, None)),
        ("", (True, None)),
        ("broken <b>", (True, "broken <b>")),
    ],
)
def test_yanked_forms(yanked: object, expected: tuple[bool, str | None]) -> None:
    file = _one(yanked=yanked)
    assert (file.yanked, file.yanked_reason) == expected


@pytest.mark.parametrize("yanked", [1, 0, None, [], {}])
def test_yanked_bad_type_is_malformed(yanked: object) -> None:
    with pytest.raises(MalformedResponse):
        _parse(_doc(_entry(yanked=yanked)))


@pytest.mark.parametrize(
    ("size", "expected"),
    [(5, 5), (0, 0), (-1, None), (True, None), ("5", None), (1.5, None), (2**70, None)],
)
def test_size_forms(size: object, expected: int | None) -> None:
    assert _one(size=size).size == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-17T16:53:12.779164Z", "2024-01-17T16:53:12.779164Z"),
        ("2024-01-17T16:53:12Z", "2024-01-17T16:53:12Z"),
        ("2024-01-17T16:53:12.7Z", "2024-01-17T16:53:12.7Z"),
        ("2024-01-17T16:53:12.1234567Z", None),
        ("2024-01-17T16:53:12", None),
        ("2024-01-17T16:53:12+00:00", None),
        ("2024-01-17 16:53:12Z", None),
        ("2024-01-17T16:53:12Z\n", None),
        (1705510392, None),
        (None, None),
    ],
)
def test_upload_time_forms(value: object, expected: str | None) -> None:
    assert _one(**{"upload-time": value}).upload_time == expected


@pytest.mark.parametrize(("value", "expected"), [(">=3.8", ">=3.8"), (None, None), (_DROP, None)])
def test_requires_python(value: object, expected: str | None) -> None:
    assert _one(**{"requires-python": value}).requires_python == expected


@pytest.mark.parametrize("value", [3.8, [">=3"], True])
def test_requires_python_bad_type_is_malformed(value: object) -> None:
    with pytest.raises(MalformedResponse):
        _parse(_doc(_entry(**{"requires-python": value})))


META = CoreMetadata((("sha256", META_SHA),))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, None),
        ({"core-metadata": True}, CoreMetadata(())),
        ({"core-metadata": False}, None),
        ({"core-metadata": {"sha256": META_SHA}}, META),
        ({"core-metadata": {"sha256": "bad"}}, CoreMetadata(())),
        ({"core-metadata": {}}, CoreMetadata(())),
        ({"core-metadata": "yes"}, None),
        ({"data-dist-info-metadata": {"sha256": META_SHA}}, META),
        ({"dist-info-metadata": True}, CoreMetadata(())),
        ({"core-metadata": False, "data-dist-info-metadata": True}, None),  # the PEP 714 name wins
        ({"data-dist-info-metadata": {"sha256": META_SHA}, "dist-info-metadata": False}, META),
    ],
)
def test_core_metadata_forms(fields: dict[str, Any], expected: CoreMetadata | None) -> None:
    assert _one(**fields).core_metadata == expected


def test_bad_entries_are_dropped_not_fatal() -> None:
    good = _entry()
    parsed = _parse(
        _doc(
            _entry(filename="../evil-1.0.tar.gz"),
            good,
            _entry(url="file:///etc/passwd"),
            _entry(hashes={}),
            _entry(filename="other-1.0.tar.gz"),
            dict(good, url=good["url"] + "?again"),  # the same filename a second time
        )
    )
    assert [f.filename for f in parsed.page.files] == ["demo-1.0-py3-none-any.whl"]
    assert [(r.what, r.reason) for r in parsed.rejected] == [
        ("filename", "contains a path separator"),
        ("url", "scheme 'file' is not http or https"),
        ("hashes", "no usable hash (known algorithm, hex of right length)"),
        ("filename", "not a file of project demo"),
        ("filename", "listed twice"),
    ]


# -- page-level fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        ({}, (None, None)),
        ({"project-status": {"status": "archived"}}, ("archived", None)),
        ({"project-status": {"status": "deprecated", "reason": "x"}}, ("deprecated", "x")),
        ({"project-status": {"status": "quarantined", "reason": 5}}, ("quarantined", None)),
        ({"project-status": None}, (None, None)),
        (
            {"meta": {"api-version": "1.4", "project-status": "archived"}},
            ("archived", None),
        ),
        (
            {
                "meta": {
                    "api-version": "1.4",
                    "project-status": "deprecated",
                    "project-status-reason": "moved",
                }
            },
            ("deprecated", "moved"),
        ),
        (
            {"meta": {"api-version": "1.4", "project-status": {"status": "archived"}}},
            ("archived", None),
        ),
    ],
)
def test_project_status(top: dict[str, Any], expected: tuple[str | None, str | None]) -> None:
    page = _parse(_doc(**top)).page
    assert (page.status, page.status_reason) == expected


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        (_DROP, ()),
        ([], ()),
        (["1.0", "2.0"], ("1.0", "2.0")),
        (["2.0", "1.0", "2.0"], ("2.0", "1.0")),
    ],
)
def test_versions(versions: object, expected: tuple[str, ...]) -> None:
    top = {} if versions is _DROP else {"versions": versions}
    assert _parse(_doc(**top)).page.versions == expected


@pytest.mark.parametrize("name", ["demo", "Demo", "DEMO", "dEmO"])
def test_name_matching(name: str) -> None:
    assert _parse(_doc(name=name)).page.name == DEMO


def test_other_names_normalize_to_the_project() -> None:
    body = json.dumps({"name": "Foo.Bar", "files": []}).encode()
    page = parse_project_json(
        body, project=NormalizedName("foo-bar"), page_url=PAGE_URL, header_serial=None
    ).page
    assert page.name == "foo-bar"


MALFORMED_PAGES = [
    b"",
    b"not json",
    b"\xff\xfe\x00",
    b"[" * 100_000 + b"]" * 100_000,
    b"1" * 5000,
    b"[]",
    b'"string"',
    b"null",
    b"{}",
    json.dumps({"files": {}}).encode(),
    json.dumps({"files": "x"}).encode(),
    json.dumps({"files": None}).encode(),
    json.dumps({"files": [1]}).encode(),
    json.dumps({"files": [None]}).encode(),
    json.dumps({"files": [[]]}).encode(),
    json.dumps({"files": [{"url": "https://h.test/x"}]}).encode(),
    json.dumps({"files": [{"filename": 5}]}).encode(),
    _doc(_entry(url=None)),
    _doc(_entry(url=5)),
    _doc(name="other"),
    _doc(name=5),
    _doc(meta=[]),
    _doc(meta={"api-version": "2.0"}),
    _doc(meta={"api-version": "0.9"}),
    _doc(meta={"api-version": "1"}),
    _doc(meta={"api-version": "1.0.0"}),
    _doc(meta={"api-version": "1" * 5000 + ".0"}),
    _doc(meta={"api-version": "v1.0"}),
    _doc(meta={"api-version": 1.0}),
    _doc(meta={"api-version": None}),
    _doc(versions="1.0"),
    _doc(versions=[1.0]),
    _doc(**{"project-status": "active"}),
    _doc(**{"project-status": {"reason": "x"}}),
]


@pytest.mark.parametrize("body", MALFORMED_PAGES, ids=range(len(MALFORMED_PAGES)))
def test_malformed_pages(body: bytes) -> None:
    with pytest.raises(MalformedResponse) as info:
        _parse(body)
    assert info.value.url == PAGE_URL


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.4", "1.9", "1.100", "01.5"])
def test_api_versions_accepted(version: str) -> None:
    assert _parse(_doc(meta={"api-version": version})).page.files == ()


# -- fuzz: arbitrary JSON never escapes as anything but MalformedResponse ----------------------

_KEYS = [
    "meta",
    "api-version",
    "_last-serial",
    "name",
    "files",
    "filename",
    "url",
    "hashes",
    "sha256",
    "size",
    "yanked",
    "core-metadata",
    "versions",
    "project-status",
    "status",
    "projects",
    "x",
]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 7, 2**65, -(2**65)])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308])
    if kind in (4, 5):
        return rng.choice(
            ["", "demo", "1.0", "2.0", "demo-1.0.tar.gz", "../x", SHA, "http://h/", "\x00", "%2f"]
        )
    if kind in (6, 7):
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(_KEYS): _junk(rng, depth + 1) for _ in range(rng.randrange(5))}


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """The value with one random subtree replaced by junk."""
    if depth > 0 and rng.random() < 0.3:
        return _junk(rng)
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        return dict(value, **{key: _mutate(rng, value[key], depth + 1)})
    if isinstance(value, list) and value:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate(rng, value[index], depth + 1), *value[index + 1 :]]
    return _junk(rng)


def _fuzz_documents() -> list[bytes]:
    rng = random.Random(20260101)
    documents = [json.dumps(_junk(rng)).encode() for _ in range(60)]
    documents += [json.dumps(_mutate(rng, PYPI_PAGE)).encode() for _ in range(300)]
    root = {"meta": {"api-version": "1.4", "_last-serial": 3}, "projects": [{"name": "a"}]}
    documents += [json.dumps(_mutate(rng, root)).encode() for _ in range(300)]
    return documents


FUZZ = _fuzz_documents()


def test_fuzz_project_pages_only_raise_malformed() -> None:
    outcomes = {"ok": 0, "malformed": 0}
    for body in FUZZ:
        try:
            parsed = parse_project_json(
                body,
                project=NormalizedName("beautifulsoup4"),
                page_url=PAGE_URL,
                header_serial=None,
            )
        except MalformedResponse:
            outcomes["malformed"] += 1
        else:
            assert isinstance(parsed, ParsedProject)
            outcomes["ok"] += 1
    # Both paths are exercised, or the fuzzing proves nothing.
    assert outcomes["ok"] > 20
    assert outcomes["malformed"] > 20


def test_fuzz_root_pages_only_raise_malformed() -> None:
    outcomes = {"ok": 0, "malformed": 0}
    for body in FUZZ:
        try:
            listing = parse_root_json(body, url=PAGE_URL)
        except MalformedResponse:
            outcomes["malformed"] += 1
        else:
            assert isinstance(listing, Listing)
            outcomes["ok"] += 1
    assert outcomes["ok"] > 10
    assert outcomes["malformed"] > 20


def test_fuzz_xmlrpc_values_only_raise_malformed() -> None:
    rng = random.Random(7)
    odd = [b"bytes", (1, 2), 2**70, "a" * 1000]
    values: list[object] = [_junk(rng) for _ in range(300)]
    # Five-item rows get past the outer checks and reach the fields.
    values += [[[_junk(rng) for _ in range(5)] for _ in range(3)] for _ in range(300)]
    values += [[["Foo", "1.0", 1, "new", rng.choice(odd)]] for _ in range(10)]
    parsed = 0
    for value in values:
        try:
            parse_changelog(value, url="x")
        except MalformedResponse:
            continue
        parsed += 1
    assert parsed > 10


# -- XML-RPC --------------------------------------------------------------------------------


def test_changelog_rows() -> None:
    rows = [
        ["Foo", "1.0", 1700000000, "new release", 10],
        ("bar", None, 1700000001, "remove project", 12),
        ["Foo", "1.0", 1700000002, "add py3 file foo-1.0-py3-none-any.whl", 11],
    ]
    assert parse_changelog(rows, url="x") == (
        ChangelogEntry("Foo", "1.0", 1700000000, "new release", 10),
        ChangelogEntry("bar", None, 1700000001, "remove project", 12),
        ChangelogEntry("Foo", "1.0", 1700000002, "add py3 file foo-1.0-py3-none-any.whl", 11),
    )


def test_changelog_empty() -> None:
    assert parse_changelog([], url="x") == ()


@pytest.mark.parametrize(
    "rows",
    [
        None,
        "rows",
        {"a": 1},
        [None],
        [["Foo", "1.0", 1, "new"]],
        [["Foo", "1.0", 1, "new", 2, 3]],
        [[None, "1.0", 1, "new", 2]],
        [["", "1.0", 1, "new", 2]],
        [["Foo", 1.0, 1, "new", 2]],
        [["Foo", "1.0", "1", "new", 2]],
        [["Foo", "1.0", True, "new", 2]],
        [["Foo", "1.0", 1, None, 2]],
        [["Foo", "1.0", 1, "new", "2"]],
        [["Foo", "1.0", 1, "new", -2]],
        [["Foo", "1.0", 1, "new", False]],
    ],
)
def test_changelog_malformed(rows: object) -> None:
    with pytest.raises(MalformedResponse):
        parse_changelog(rows, url="x")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Foo.Bar", "foo-bar"),
        ("foo__bar", "foo-bar"),
        ("A", "a"),
        ("0-._.-0", "0-0"),
        ("..", None),
        ("a/b", None),
        ("", None),
        ("foo\n", None),
        ("\u212a", None),  # Kelvin sign: lower() would turn it into ASCII "k"
        ("a" * 255, "a" * 255),
        ("a" * 256, None),
    ],
)
def test_normalize_project_name(name: str, expected: str | None) -> None:
    assert normalize_project_name(name) == expected
    if expected is not None:
        assert canonicalize_name(name) == expected
